// The account: display name, address (changed only once the new mailbox confirms it), email
// verification, password change, data export, account deletion.
import { useEffect, useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, errorMessage, forgetCsrf, rememberCsrf, type Schemas } from "../api/client";
import { ErrorLine, Field, useSubmit } from "../forms";
import { loadMe, me } from "../session";

export function Account() {
  const user = me.value?.user;
  if (!user) return null;
  return (
    <section>
      <h1>Your account</h1>
      <p>{user.display_name} · <code>{user.email}</code> · {user.email_verified ? "verified" : "not verified"}</p>
      {!user.email_verified && <Resend />}
      <Profile name={user.display_name} />
      <ChangeEmail current={user.email} />
      <ChangePassword />
      <Agents />
      <Export />
      <DeleteAccount />
    </section>
  );
}

function Resend() {
  const [said, setSaid] = useState("");
  const send = async () => {
    const { error, response } = await api.POST("/api/v1/me/verification");
    setSaid(response.ok ? "A new verification link is on its way." : errorMessage(error, response.status));
  };
  return (
    <div class="card">
      <h2>Verify your address</h2>
      <p>Publishing and access keys need a verified address.</p>
      <button type="button" onClick={() => void send()}>Email a new link</button>
      {said && <p role="status">{said}</p>}
    </div>
  );
}

function Profile({ name }: { name: string }) {
  const [value, setValue] = useState(name);
  const { submit, outcome } = useSubmit(async () => {
    const { data, error: err, response } = await api.PATCH("/api/v1/me", { body: { display_name: value } });
    if (!data) return { error: errorMessage(err, response.status) };
    await loadMe();
    return { done: "Name saved." };
  });
  return (
    <form class="card" onSubmit={submit}>
      <h2>Display name</h2>
      <Field label="Display name" name="display_name" value={value} onInput={setValue} autoComplete="name" hint="Shown to the members of your workspaces; 1 to 100 characters." />
      <button type="submit">Save name</button>
      {outcome}
    </form>
  );
}

function ChangeEmail({ current }: { current: string }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const { submit, outcome } = useSubmit(async () => {
    if (email.trim().toLowerCase() === current.toLowerCase()) return { error: "This is already your address." };
    const { data, error: err, response } = await api.POST("/api/v1/me/email", { body: { new_email: email.trim(), current_password: password } });
    if (!data) return { error: errorMessage(err, response.status) };
    setPassword("");
    return { done: data.message };
  });
  return (
    <form class="card" onSubmit={submit}>
      <h2>Change email address</h2>
      <p>We email a link to the new address; your address changes when you open it while signed in. Until then you keep using <code>{current}</code>.</p>
      <Field label="New email address" name="new_email" type="email" value={email} onInput={setEmail} autoComplete="email" />
      <Field label="Your password" name="email_password" type="password" value={password} onInput={setPassword} autoComplete="current-password" />
      <button type="submit">Send the confirmation link</button>
      {outcome}
    </form>
  );
}

function ChangePassword() {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const { submit, outcome } = useSubmit(async () => {
    const { data, error: err, response } = await api.POST("/api/v1/me/password", { body: { current_password: current, new_password: next } });
    if (!data) return { error: errorMessage(err, response.status) };
    rememberCsrf(data);
    setCurrent("");
    setNext("");
    return { done: "Password changed; every other session was signed out." };
  });
  return (
    <form class="card" onSubmit={submit}>
      <h2>Change password</h2>
      <Field label="Current password" name="current_password" type="password" value={current} onInput={setCurrent} autoComplete="current-password" />
      <Field label="New password" name="new_password" type="password" value={next} onInput={setNext} autoComplete="new-password" minLength={10} hint="10 characters or more, not a common password." />
      <button type="submit">Change password</button>
      {outcome}
    </form>
  );
}

type AgentConnection = Schemas["AgentConnection"];

/** Agents connected to FlowCP's own MCP server (`/mcp`) as this account, and disconnecting them. */
function Agents() {
  const [items, setItems] = useState<AgentConnection[] | null>(null);
  const [error, setError] = useState("");
  const load = async () => {
    const { data, error: err, response } = await api.GET("/api/v1/me/connections");
    if (!data) return setError(errorMessage(err, response.status));
    setItems(data.items);
  };
  useEffect(() => void load(), []);
  const disconnect = async (c: AgentConnection) => {
    if (!confirm(`Disconnect ${c.client_name ?? "this agent"}? It stops working at once.`)) return;
    const { error: err, response } = await api.DELETE("/api/v1/me/connections/{conn}", { params: { path: { conn: c.connection_hash } } });
    if (!response.ok) return setError(errorMessage(err, response.status));
    setError("");
    await load();
  };
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  return (
    <div class="card">
      <h2>Connected agents</h2>
      <p>
        Agents such as Claude Code or Cursor that you connected to FlowCP's own MCP server at <code>{window.location.origin}/mcp</code>.
        Each one works in the one workspace you chose, with your role there. Changing your password disconnects them all.
      </p>
      {items === null && !error && <p aria-busy="true">Loading…</p>}
      {items && items.length === 0 && <p>No agent is connected.</p>}
      {items && items.length > 0 && (
        <table>
          <thead><tr><th>Agent</th><th>Workspace</th><th>Connected</th><th>Last refreshed</th><th></th></tr></thead>
          <tbody>
            {items.map((c) => (
              <tr key={c.connection_hash}>
                <td>{c.client_name ?? "An MCP client"}</td>
                <td>{c.workspace_name ?? "a deleted workspace"}</td>
                <td>{day(c.created_at)}</td>
                <td>{c.last_used_at ? day(c.last_used_at) : "never"}</td>
                <td>
                  {c.revoked_at
                    ? `disconnected ${day(c.revoked_at)}`
                    : <button type="button" onClick={() => void disconnect(c)} aria-label={`Disconnect ${c.client_name ?? "agent"} (${c.workspace_name ?? ""})`}>Disconnect</button>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ErrorLine>{error}</ErrorLine>
    </div>
  );
}

function Export() {
  const [error, setError] = useState("");
  const download = async () => {
    const { data, error: err, response } = await api.GET("/api/v1/me/export");
    if (!data) return setError(errorMessage(err, response.status));
    const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = "flowcp-export.json";
    a.click();
    URL.revokeObjectURL(url);
  };
  return (
    <div class="card">
      <h2>Export your data</h2>
      <p>Everything FlowCP holds about your account and workspaces, as JSON; never a secret value, hash or token.</p>
      <button type="button" onClick={() => void download()}>Download the export</button>
      <ErrorLine>{error}</ErrorLine>
    </div>
  );
}

function DeleteAccount() {
  const { route } = useLocation();
  const [password, setPassword] = useState("");
  const [error, setError] = useState("");
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!confirm("Delete your account? Workspaces you alone own are deleted with their servers.")) return;
    const { error: err, response } = await api.DELETE("/api/v1/me", { body: { password } });
    if (!response.ok) return setError(errorMessage(err, response.status));
    forgetCsrf();
    await loadMe();
    route("/sign-in");
  };
  return (
    <form class="card danger-zone" onSubmit={submit}>
      <h2>Delete your account</h2>
      <p>Workspaces you alone own are deleted, with their apps, servers and logs; published servers go off the air.</p>
      <Field label="Password to confirm" name="delete_password" type="password" value={password} onInput={setPassword} autoComplete="current-password" />
      <button type="submit" class="danger">Delete my account</button>
      <ErrorLine>{error}</ErrorLine>
    </form>
  );
}
