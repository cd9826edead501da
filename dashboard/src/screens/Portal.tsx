// The end-user portal of a per-user-key (`user_key`) server, at /portal/<server id>: sign in
// with the server's provider, see your key once and copy it, issue a new one (the old one stops
// working), revoke (FlowCP deletes your sign-in and every key stops working), export or delete
// your data. No FlowCP account is involved: the Worker's /oauth/portal/<id> routes answer with
// a portal session cookie of their own.
import { useEffect, useState } from "preact/hooks";
import { ErrorLine } from "../forms";

type Status = {
  server: { id: string; name: string | null; published: boolean; mcp_url: string; portal_url: string; key_header: string; key_ttl_days: number };
  signed_in: boolean;
  user: null | { user_hash: string; status: "active" | "disconnected" | "revoked"; created_at: number; signed_in_at: number; key_issued_at: number | null };
};

/** The server id of a portal path, or null. */
export function portalServer(path: string): string | null {
  const m = /^\/portal\/([A-Za-z0-9_-]{1,64})\/?$/.exec(path);
  return m ? m[1] : null;
}

async function call(server: string, method: string, action = ""): Promise<{ status: number; body: any }> {
  const r = await fetch(`/oauth/portal/${server}${action ? `/${action}` : ""}`, { method, credentials: "same-origin" });
  const text = await r.text();
  let body: any = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  return { status: r.status, body };
}

const when = (ms: number | null | undefined) => (ms ? new Date(ms).toLocaleString() : "never");

export function Portal({ server }: { server: string }) {
  const [status, setStatus] = useState<Status | null>(null);
  const [error, setError] = useState("");
  const [key, setKey] = useState<{ key: string; expires_at: number } | null>(null);
  const [said, setSaid] = useState("");
  const [usage, setUsage] = useState<{ month_calls: number; monthly_limit: number | null; resets_on: string } | null>(null);

  const load = async () => {
    const r = await call(server, "GET");
    if (r.status !== 200) { setError(r.body?.error?.message ?? `This portal could not be loaded (HTTP ${r.status}).`); return; }
    setStatus(r.body as Status);
    const mine = r.body?.signed_in ? await call(server, "GET", "usage") : null;
    setUsage(mine?.status === 200 ? mine.body : null);
  };
  useEffect(() => { void load(); }, [server]);

  const act = async (method: string, action: string, confirmText?: string) => {
    if (confirmText && !confirm(confirmText)) return;
    setError(""); setSaid("");
    const r = await call(server, method, action);
    if (r.status >= 400) { setError(r.body?.error?.message ?? `The request failed (HTTP ${r.status}).`); return r; }
    return r;
  };

  if (error && !status) return <main><h1>Portal</h1><ErrorLine>{error}</ErrorLine></main>;
  if (!status) return <main><p aria-busy="true">Loading…</p></main>;
  const s = status.server;
  const u = status.user;
  return (
    <main>
      <h1>{s.name ?? "This server is no longer offered"}</h1>
      {!s.published && <p>You can still revoke, export or delete what FlowCP holds about you.</p>}
      <p>Use this API from your AI assistant as yourself. Sign in once; FlowCP keeps your sign-in (encrypted) and gives you a personal key for your MCP client.</p>
      <ErrorLine>{error}</ErrorLine>
      {said && <p role="status">{said}</p>}
      {!status.signed_in || !u ? (s.published &&
        <div class="card">
          <h2>Sign in</h2>
          <p>You will sign in at the API's own provider and consent there. FlowCP never sees your password.</p>
          <a class="button" href={`/oauth/portal/${server}/sign-in`}>Sign in to get your key</a>
        </div>
      ) : (
        <>
          <div class="card">
            <h2>Your key</h2>
            <p>Status: <strong>{u.status === "active" ? "signed in" : u.status === "disconnected" ? "sign-in ended at the provider: sign in again" : "revoked"}</strong> · last key issued {when(u.key_issued_at)}</p>
            {u.status !== "active" && <a class="button" href={`/oauth/portal/${server}/sign-in`}>Sign in again</a>}
            {key ? (
              <>
                <p>Copy it now: it is shown only once and works for {s.key_ttl_days} days.</p>
                <p class="field">
                  <label for="p-key">Your key</label>
                  <input id="p-key" readOnly value={key.key} onFocus={(e) => (e.currentTarget as HTMLInputElement).select()} />
                </p>
                <button type="button" onClick={() => void navigator.clipboard?.writeText(key.key).then(() => setSaid("Copied."))}>Copy</button>
                <p>In your MCP client: URL <code>{s.mcp_url}</code>, header <code>{s.key_header}: &lt;your key&gt;</code> (or <code>Authorization: Bearer &lt;your key&gt;</code>).</p>
              </>
            ) : (
              u.status === "active" && (
                <button type="button" onClick={async () => {
                  const r = await act("POST", "key", u.key_issued_at ? "A new key replaces your current one, which stops working. Continue?" : undefined);
                  if (r && r.status === 201) { setKey(r.body); await load(); }
                }}>{u.key_issued_at ? "Issue a new key" : "Get my key"}</button>
              )
            )}
          </div>
          <div class="card">
            <h2>Your data</h2>
            <p>Your id here: <code>{u.user_hash}</code> (what the server's owner sees) · signed in {when(u.signed_in_at)}.</p>
            {usage && usage.monthly_limit !== null && (
              <p>This month: {usage.month_calls} of {usage.monthly_limit} calls (the quota resets on {usage.resets_on}, UTC).</p>
            )}
            <button type="button" onClick={async () => {
              const r = await act("GET", "export");
              if (r && r.status === 200) {
                const a = document.createElement("a");
                a.href = URL.createObjectURL(new Blob([JSON.stringify(r.body, null, 2)], { type: "application/json" }));
                a.download = "flowcp-my-data.json";
                a.click();
              }
            }}>Export my data</button>
            <button type="button" class="danger" onClick={async () => {
              const r = await act("POST", "revoke", "Revoke? FlowCP deletes your sign-in and every key of yours stops working at once.");
              if (r && r.status === 200) { setKey(null); setSaid("Revoked: your sign-in is deleted and your keys no longer work."); await load(); }
            }}>Revoke access</button>
            <button type="button" class="danger" onClick={async () => {
              const r = await act("DELETE", "me", "Delete everything FlowCP holds about you for this server? Your keys stop working.");
              if (r && r.status === 200) { setKey(null); setSaid(r.body?.deleted ? "Deleted." : r.body?.message ?? "Delete again to finish."); await load(); }
            }}>Delete my data</button>
            <button type="button" class="link" onClick={async () => { await act("POST", "sign-out"); setKey(null); await load(); }}>Sign out</button>
          </div>
        </>
      )}
      <p><small>Powered by FlowCP · <a href="/privacy">Privacy</a></small></p>
    </main>
  );
}
