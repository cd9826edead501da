// One server: its auth (mode, placement, write-only credential with its bound origin), verify
// (the findings as a checklist), publish with the draft-vs-live diff and the versions, access
// keys (shown once), and how to connect clients.
import { useEffect, useState } from "preact/hooks";
import { useRoute } from "preact-iso";
import { api, errorMessage, type Schemas } from "../api/client";
import { ErrorLine, Field, useSubmit } from "../forms";
import { workspaceId } from "../workspace";

type Server = Schemas["ServerView"];

export function ServerPage() {
  const { params } = useRoute();
  const ws = workspaceId.value;
  const path = { ws: ws ?? "", srv: params.id };
  const [s, setS] = useState<Server | null>(null);
  const [error, setError] = useState("");
  const [key, setKey] = useState("");
  const load = async () => {
    const { data, error: err, response } = await api.GET("/api/v1/workspaces/{ws}/servers/{srv}", { params: { path } });
    if (!data) return setError(errorMessage(err, response.status));
    setS(data);
  };
  useEffect(() => { if (ws) void load(); }, [ws, params.id]);
  if (!ws || !s) return error ? <ErrorLine>{error}</ErrorLine> : <p aria-busy="true">Loading…</p>;
  const act = async (what: "verify" | "publish" | "unpublish") => {
    setError("");
    const p = { params: { path } };
    const { error: err, response } =
      what === "verify" ? await api.POST("/api/v1/workspaces/{ws}/servers/{srv}/verify", p)
        : what === "publish" ? await api.POST("/api/v1/workspaces/{ws}/servers/{srv}/publish", p)
          : await api.POST("/api/v1/workspaces/{ws}/servers/{srv}/unpublish", p);
    if (!response.ok) setError(errorMessage(err, response.status));
    await load();
  };
  const newKey = async () => {
    const { data, error: err, response } = await api.POST("/api/v1/workspaces/{ws}/servers/{srv}/keys", { params: { path }, body: {} });
    if (!data) return setError(errorMessage(err, response.status));
    setKey(data.key);
  };
  const v = s.verification;
  return (
    <section>
      <p><a href={`/apps/${s.app_id}`}>← App</a></p>
      <h1>{s.name}</h1>
      <p>
        {s.published ? <strong>Live</strong> : "Not published"}
        {s.published && s.has_draft_changes ? " · changed since publishing" : ""} · MCP URL <code>{s.mcp_url}</code>
      </p>
      {s.portal_url && <p>End users get their key at <a href={s.portal_url}>{s.portal_url}</a></p>}
      <ErrorLine>{error}</ErrorLine>
      <Auth server={s} path={path} onSaved={load} />
      <Options server={s} path={path} onSaved={load} />
      <div class="card">
        <h2>Verify and publish</h2>
        <p>Verification: <strong>{v.state}</strong></p>
        {v.findings.length > 0 && (
          <ul class="checklist" aria-label="Verification findings">
            {v.findings.map((f) => (
              <li key={f.check} class={f.status}><span class="mark" aria-hidden="true">{f.status === "pass" ? "✓" : f.status === "fail" ? "✗" : "–"}</span> <strong>{f.check}</strong> ({f.status}): {f.message}</li>
            ))}
          </ul>
        )}
        <p class="inline">
          <button type="button" onClick={() => void act("verify")}>Verify</button>
          <button type="button" disabled={v.state !== "verified"} onClick={() => void act("publish")}>Publish</button>
          {s.published && <button type="button" onClick={() => void act("unpublish")}>Unpublish</button>}
        </p>
        <Versions path={path} stamp={`${s.published_version ?? ""}|${s.updated_at}`} />
      </div>
      <div class="card">
        <h2>Access keys</h2>
        <p>MCP clients send a key as <code>Authorization: Bearer …</code>. A key is shown once.</p>
        <Keys path={path} fresh={key} />
        <button type="button" onClick={() => void newKey()}>Create an access key</button>
        {key && (
          <p>
            <label for="new-key">Your new key (copy it now)</label>{" "}
            <input id="new-key" readOnly value={key} size={48} /> <Copy text={key} />
          </p>
        )}
      </div>
      {s.auth_mode === "oauth" && <Connections path={path} />}
      {s.auth_mode === "user_key" && <KeyUsers path={path} />}
      <Connect server={s} accessKey={key} />
    </section>
  );
}

const PRESETS = [
  ["github", "GitHub"],
  ["google", "Google"],
  ["entra", "Microsoft Entra ID"],
  ["oidc", "Any OpenID Connect provider (discovery URL)"],
  ["custom", "Other OAuth 2 provider (endpoints)"],
] as const;

function Auth({ server, path, onSaved }: { server: Server; path: { ws: string; srv: string }; onSaved: () => Promise<void> }) {
  const cfg = server.auth_config;
  const [mode, setMode] = useState(server.auth_mode);
  const [name, setName] = useState(cfg.name ?? "X-Api-Key");
  const [place, setPlace] = useState<"header" | "query" | "cookie">(cfg.in ?? "header");
  const [secret, setSecret] = useState("");
  const [origin, setOrigin] = useState(cfg.credential_origin ?? "");
  const [o, setO] = useState({
    provider: cfg.provider ?? "github",
    client_id: cfg.client_id ?? "",
    scopes: (cfg.scopes ?? []).join(" "),
    tenant: cfg.tenant ?? "",
    discovery_url: cfg.discovery_url ?? "",
    authorize_url: cfg.authorize_url ?? "",
    token_url: cfg.token_url ?? "",
  });
  const setOf = (k: keyof typeof o) => (v: string) => setO({ ...o, [k]: v });
  const { submit: save, outcome } = useSubmit(async () => {
    const oauth = {
      provider: o.provider,
      client_id: o.client_id,
      scopes: o.scopes.split(/\s+/).filter(Boolean),
      ...(o.provider === "entra" && o.tenant ? { tenant: o.tenant } : {}),
      ...(o.provider === "oidc" ? { discovery_url: o.discovery_url } : {}),
      ...(o.provider === "custom" ? { authorize_url: o.authorize_url, token_url: o.token_url } : {}),
    };
    const auth_config = mode === "api_key" ? { in: place, name } : mode === "oauth" || mode === "user_key" ? oauth : {};
    const r = await api.PATCH("/api/v1/workspaces/{ws}/servers/{srv}", { params: { path }, body: { auth_mode: mode, auth_config } });
    if (!r.response.ok) return { error: errorMessage(r.error, r.response.status) };
    if (secret) {
      const c = await api.PUT("/api/v1/workspaces/{ws}/servers/{srv}/credential", { params: { path }, body: { value: secret, origin: origin || null } });
      if (!c.response.ok) return { error: errorMessage(c.error, c.response.status) };
      setSecret("");
    }
    await onSaved();
    return { done: "Saved. Verify again before publishing." };
  });
  const signsIn = mode === "oauth" || mode === "user_key";
  const secretLabel = signsIn ? "Client secret" : "Credential";
  return (
    <form class="card" onSubmit={save}>
      <h2>How FlowCP calls the API</h2>
      <p class="field">
        <label for="f-mode">Authentication</label>
        <select id="f-mode" value={mode} onChange={(e) => setMode((e.currentTarget as HTMLSelectElement).value as Server["auth_mode"])}>
          <option value="none">None</option>
          <option value="api_key">API key</option>
          <option value="bearer">Bearer token</option>
          <option value="oauth">Each user signs in (OAuth)</option>
          <option value="user_key">Each user signs in once and gets a key (per-user keys)</option>
        </select>
      </p>
      {mode === "api_key" && (
        <div class="inline">
          <p class="field">
            <label for="f-place">Key goes in</label>
            <select id="f-place" value={place} onChange={(e) => setPlace((e.currentTarget as HTMLSelectElement).value as typeof place)}>
              <option value="header">a header</option>
              <option value="query">the query string</option>
              <option value="cookie">a cookie</option>
            </select>
          </p>
          <Field label={place === "header" ? "Header name" : place === "query" ? "Query parameter" : "Cookie name"} name="key_header" value={name} onInput={setName} />
        </div>
      )}
      {mode === "user_key" && (
        <p>Each end user signs in once at the server's portal with the provider below and copies their own key, which their MCP client sends as <code>X-API-Key</code>. FlowCP keeps each user's refresh token, encrypted, until they revoke. The provider must be OpenID Connect (it names the user).</p>
      )}
      {signsIn && (
        <>
          <p class="field">
            <label for="f-provider">Sign-in provider</label>
            <select id="f-provider" value={o.provider} onChange={(e) => setOf("provider")((e.currentTarget as HTMLSelectElement).value)}>
              {PRESETS.map(([v, l]) => <option key={v} value={v}>{l}</option>)}
            </select>
          </p>
          {o.provider === "entra" && <Field label="Tenant" name="tenant" value={o.tenant} onInput={setOf("tenant")} required={false} hint="Tenant id or domain; organizations by default." />}
          {o.provider === "oidc" && <Field label="Discovery URL" name="discovery_url" value={o.discovery_url} onInput={setOf("discovery_url")} hint="https://issuer/.well-known/openid-configuration" />}
          {o.provider === "custom" && (
            <>
              <Field label="Authorize URL" name="authorize_url" value={o.authorize_url} onInput={setOf("authorize_url")} />
              <Field label="Token URL" name="token_url" value={o.token_url} onInput={setOf("token_url")} />
            </>
          )}
          <Field label="Client ID" name="client_id" value={o.client_id} onInput={setOf("client_id")} />
          <Field label="Scopes" name="scopes" value={o.scopes} onInput={setOf("scopes")} required={false} hint="Space-separated, as the provider names them (Entra: add offline_access)." />
          <p>Register this callback at the provider: <code>{location.origin}/oauth/callback/{server.id}</code></p>
        </>
      )}
      {mode !== "none" && (
        <>
          <Field label={server.credential_set ? `Replace the stored ${secretLabel.toLowerCase()}` : secretLabel} name="secret" type="password" value={secret} onInput={setSecret} required={false}
            hint={server.credential_set ? `Stored, write-only; bound to ${cfg.credential_origin ?? "its origin"}.` : "Write-only: never shown again."} />
          <Field label="API origin" name="origin" value={origin} onInput={setOrigin} required={false}
            hint={signsIn ? "https://host of the API: the only place users' tokens are sent." : "https://host of the API: the only place the credential is sent (required unless the server has a base URL)."} />
        </>
      )}
      <button type="submit">Save</button>
      {outcome}
    </form>
  );
}

/** Name, who may call (the public switch), discovery mode, base URL, probe tool, browser origins. */
function Options({ server, path, onSaved }: { server: Server; path: { ws: string; srv: string }; onSaved: () => Promise<void> }) {
  const [name, setName] = useState(server.name);
  const [isPublic, setPublic] = useState(server.is_public);
  const [discovery, setDiscovery] = useState(server.discovery_mode);
  const [baseUrl, setBaseUrl] = useState(server.base_url ?? "");
  const [probe, setProbe] = useState(server.probe_tool ?? "");
  const [origins, setOrigins] = useState((server.allowed_origins ?? []).join(" "));
  const [skillsMode, setSkillsMode] = useState<"off" | "alongside" | "instead">(server.skills?.mode ?? "off");
  const [bundles, setBundles] = useState(server.skills?.bundles ? JSON.stringify(server.skills.bundles, null, 2) : "");
  const [synced, setSynced] = useState((server.store_tools ?? []).join(" "));
  const { submit: save, outcome } = useSubmit(async () => {
    if (isPublic && !server.is_public && !confirm("Make this server public? Anyone with its URL can call its tools, with your credential, without an access key.")) return;
    const list = origins.split(/[\s,]+/).filter(Boolean);
    let parsed: Schemas["Bundle"][] | null = null;
    if (skillsMode !== "off" && bundles.trim()) {
      try { parsed = JSON.parse(bundles) as Schemas["Bundle"][]; } catch { return { error: "The skills must be JSON: a list of {name, description, tools}." }; }
    }
    const skills = skillsMode === "off" ? null : { mode: skillsMode, bundles: parsed };
    const storeTools = synced.split(/[\s,]+/).filter(Boolean);
    const { error: err, response } = await api.PATCH("/api/v1/workspaces/{ws}/servers/{srv}", {
      params: { path },
      body: { name, is_public: isPublic, discovery_mode: discovery, base_url: baseUrl.trim() || null, probe_tool: probe.trim() || null, allowed_origins: list.length ? list : null, skills, ...(server.auth_mode === "user_key" ? { store_tools: storeTools.length ? storeTools : null } : {}) },
    });
    if (!response.ok) return { error: errorMessage(err, response.status) };
    await onSaved();
    return { done: "Saved. Changes reach clients at the next publish." };
  });
  return (
    <form class="card" onSubmit={save} aria-label="Server options">
      <h2>Access and options</h2>
      <Field label="Server name" name="server_name" value={name} onInput={setName} />
      <p class="check">
        <input id="f-public" type="checkbox" checked={isPublic} aria-describedby="f-public-hint" onChange={(e) => setPublic((e.currentTarget as HTMLInputElement).checked)} />
        <label for="f-public">Public: no access key needed</label>
      </p>
      <p id="f-public-hint" class={isPublic ? "error" : "muted"}>
        {isPublic ? "Warning: anyone who finds the URL can call every enabled tool, with the server's credential. Keep it for APIs that are public anyway." : "Clients need an access key (or, for OAuth servers, a signed-in user)."}
      </p>
      <p class="check">
        <input id="f-discovery" type="checkbox" checked={discovery} aria-describedby="f-discovery-hint" onChange={(e) => setDiscovery((e.currentTarget as HTMLInputElement).checked)} />
        <label for="f-discovery">Discovery mode</label>
      </p>
      <p id="f-discovery-hint" class="muted">For large APIs: clients see a few tools that search and call the others, instead of every tool at once.</p>
      <p class="field">
        <label for="f-skills">Skills</label>
        <select id="f-skills" value={skillsMode} aria-describedby="f-skills-hint" onChange={(e) => setSkillsMode((e.currentTarget as HTMLSelectElement).value as typeof skillsMode)}>
          <option value="off">Off</option>
          <option value="alongside">list_skills and tool_search, then every tool</option>
          <option value="instead">Only list_skills and tool_search</option>
        </select>
        <small id="f-skills-hint">Named bundles of tools that clients load on demand (not with discovery mode).</small>
      </p>
      {skillsMode !== "off" && (
        <p class="field">
          <label for="f-bundles">Skills as JSON</label>
          <textarea id="f-bundles" rows={6} value={bundles} aria-describedby="f-bundles-hint" onInput={(e) => setBundles((e.currentTarget as HTMLTextAreaElement).value)} />
          <small id="f-bundles-hint">{'[{"name": "monitor-flow", "description": "...", "tools": ["get_live_flow_runs"]}]'}; empty makes one skill per tag at publish.</small>
        </p>
      )}
      {server.auth_mode === "user_key" && (
        <Field label="Synced tools" name="store_tools" value={synced} onInput={setSynced} required={false} hint="Team plan: GET tools whose answers FlowCP keeps for each user, refreshes hourly as them, and serves through *_store_* tools when the API is down (space-separated names)." />
      )}
      <Field label="Base URL" name="base_url" value={baseUrl} onInput={setBaseUrl} required={false} hint="Overrides the document's server URL (https://api.example.com/v1); empty uses the document's." />
      <Field label="Probe tool" name="probe_tool" value={probe} onInput={setProbe} required={false} hint="The tool verification calls; empty picks the first GET without required arguments." />
      <Field label="Allowed browser origins" name="allowed_origins" value={origins} onInput={setOrigins} required={false} hint="Space-separated (https://app.example); empty allows any origin." />
      <button type="submit">Save options</button>
      {outcome}
    </form>
  );
}

/** What publishing now would change against the live version, and the versions published. */
function Versions({ path, stamp }: { path: { ws: string; srv: string }; stamp: string }) {
  const [v, setV] = useState<Schemas["Versions"] | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    void (async () => {
      const { data, error: err, response } = await api.GET("/api/v1/workspaces/{ws}/servers/{srv}/versions", { params: { path } });
      if (!data) return setError(errorMessage(err, response.status));
      setV(data);
    })();
  }, [path.srv, stamp]);
  if (error) return <ErrorLine>{error}</ErrorLine>;
  if (!v) return null;
  const d = v.draft;
  const changes = d ? d.added.length + d.removed.length + d.changed.length + d.settings.length : 0;
  return (
    <div aria-label="Draft and versions" role="region">
      <h3>Draft against live</h3>
      {!d ? <p class="muted">Nothing is live: publishing puts every enabled tool on the air.</p>
        : changes === 0 ? <p>The draft is the same as live version {v.live_version}.</p> : (
          <ul class="diff">
            {d.added.length > 0 && <li class="added">Adds {d.added.length}: {d.added.slice(0, 50).join(", ")}{d.added.length > 50 ? "…" : ""}</li>}
            {d.removed.length > 0 && <li class="removed">Removes {d.removed.length}: {d.removed.slice(0, 50).join(", ")}{d.removed.length > 50 ? "…" : ""}</li>}
            {d.changed.length > 0 && <li class="changed">Changes {d.changed.length}: {d.changed.slice(0, 50).join(", ")}{d.changed.length > 50 ? "…" : ""}</li>}
            {d.settings.length > 0 && <li class="changed">Settings: {d.settings.join(", ")}</li>}
          </ul>
        )}
      {v.versions.length > 0 && (
        <details>
          <summary>Versions ({v.versions.length})</summary>
          <table class="grid" aria-label="Versions">
            <thead><tr><th>Version</th><th>Published (UTC)</th><th>Tools</th><th>Size</th></tr></thead>
            <tbody>
              {v.versions.map((x) => (
                <tr key={x.version}>
                  <td>v{x.version}{x.version === v.live_version ? <strong> live</strong> : ""}</td>
                  <td>{new Date(x.published_at).toISOString().replace("T", " ").slice(0, 16)}</td>
                  <td>{x.tool_count}</td>
                  <td>{(x.bytes / 1024).toFixed(1)} KiB</td>
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      )}
    </div>
  );
}

function Copy({ text }: { text: string }) {
  const [done, setDone] = useState(false);
  return (
    <button type="button" class="secondary" onClick={async () => { await navigator.clipboard.writeText(text).catch(() => {}); setDone(true); }}>
      {done ? "Copied" : "Copy"}
    </button>
  );
}

function Connect({ server, accessKey }: { server: Server; accessKey: string }) {
  const withKey = (t: string) => (accessKey ? t.replaceAll("<your server access key>", accessKey) : t);
  const cfg = server.client_config;
  const entries: [string, string][] = [
    ["Claude Code", withKey(cfg.claude_code)],
    ["Cursor (~/.cursor/mcp.json)", withKey(JSON.stringify(cfg.cursor, null, 2))],
    ["VS Code (.vscode/mcp.json)", withKey(JSON.stringify(cfg.vscode, null, 2))],
    ["Claude.ai and ChatGPT", `Settings › Connectors › Add custom connector: ${server.mcp_url}`],
  ];
  return (
    <div class="card">
      <h2>Connect a client</h2>
      {entries.map(([label, text]) => (
        <div key={label} class="snippet">
          <h3>{label}</h3>
          <pre tabIndex={0} aria-label={`${label} configuration`}><code>{text}</code></pre>
          <Copy text={text} />
        </div>
      ))}
    </div>
  );
}

/** The server's access keys (never their secrets), with revoke. */
function Keys({ path, fresh }: { path: { ws: string; srv: string }; fresh: string }) {
  const [keys, setKeys] = useState<Schemas["AccessKey"][]>([]);
  const [error, setError] = useState("");
  const load = async () => {
    const { data, error: err, response } = await api.GET("/api/v1/workspaces/{ws}/servers/{srv}/keys", { params: { path } });
    if (!data) return setError(errorMessage(err, response.status));
    setKeys(data.items);
  };
  useEffect(() => { void load(); }, [path.srv, fresh]);
  const revoke = async (id: string) => {
    const { error: err, response } = await api.DELETE("/api/v1/workspaces/{ws}/servers/{srv}/keys/{key}", { params: { path: { ...path, key: id } } });
    if (!response.ok) return setError(errorMessage(err, response.status));
    await load();
  };
  const live = keys.filter((k) => !k.revoked_at);
  return (
    <>
      {live.length > 0 && (
        <ul class="list" aria-label="Access keys">
          {live.map((k) => (
            <li key={k.id}>
              <code>{k.prefix}…</code> created {new Date(k.created_at).toISOString().slice(0, 10)}
              {k.last_used_at ? `, last used ${new Date(k.last_used_at).toISOString().slice(0, 10)}` : ", never used"}{" "}
              <button type="button" class="link" onClick={() => void revoke(k.id)}>Revoke {k.prefix}</button>
            </li>
          ))}
        </ul>
      )}
      <ErrorLine>{error}</ErrorLine>
    </>
  );
}

/** End users' OAuth connections (metadata only: no token exists to show), with revoke. */
function Connections({ path }: { path: { ws: string; srv: string } }) {
  const [list, setList] = useState<Schemas["Connection"][] | null>(null);
  const [error, setError] = useState("");
  const load = async () => {
    const { data, error: err, response } = await api.GET("/api/v1/workspaces/{ws}/servers/{srv}/connections", { params: { path } });
    if (!data) return setError(errorMessage(err, response.status));
    setList(data.items);
  };
  useEffect(() => { void load(); }, [path.srv]);
  const revoke = async (hash: string) => {
    const { error: err, response } = await api.DELETE("/api/v1/workspaces/{ws}/servers/{srv}/connections/{conn}", { params: { path: { ...path, conn: hash } } });
    if (!response.ok) return setError(errorMessage(err, response.status));
    await load();
  };
  return (
    <div class="card">
      <h2>Connections</h2>
      {!list || list.length === 0 ? <p>No user has connected yet.</p> : (
        <table class="grid" aria-label="Connections">
          <thead><tr><th>Client</th><th>Scopes</th><th>Connected</th><th>Last refreshed</th><th>Connection</th><th></th></tr></thead>
          <tbody>
            {list.map((c) => (
              <tr key={c.connection_hash}>
                <td>{c.client_name ?? "MCP client"}</td>
                <td><code>{c.scopes ?? ""}</code></td>
                <td>{new Date(c.created_at).toISOString().slice(0, 10)}</td>
                <td>{c.last_used_at ? new Date(c.last_used_at).toISOString().slice(0, 10) : "never"}</td>
                <td><code>{c.connection_hash}</code></td>
                <td>{c.revoked_at ? "revoked" : <button type="button" class="link" onClick={() => void revoke(c.connection_hash)}>Revoke</button>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ErrorLine>{error}</ErrorLine>
    </div>
  );
}

/** End users of a per-user-key server (hashes and status; no identity, no token), with revoke. */
function KeyUsers({ path }: { path: { ws: string; srv: string } }) {
  const [list, setList] = useState<Schemas["KeyUserUsage"][] | null>(null);
  const [error, setError] = useState("");
  const load = async () => {
    const { data, error: err, response } = await api.GET("/api/v1/workspaces/{ws}/servers/{srv}/key-users", { params: { path } });
    if (!data) return setError(errorMessage(err, response.status));
    setList(data.items);
  };
  useEffect(() => { void load(); }, [path.srv]);
  const revoke = async (hash: string) => {
    const { error: err, response } = await api.DELETE("/api/v1/workspaces/{ws}/servers/{srv}/key-users/{user}", { params: { path: { ...path, user: hash } } });
    if (!response.ok) return setError(errorMessage(err, response.status));
    await load();
  };
  const day = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString().slice(0, 10) : "never");
  return (
    <div class="card">
      <h2>Users</h2>
      {!list || list.length === 0 ? <p>No user has signed in at the portal yet.</p> : (
        <table class="grid" aria-label="Users">
          <thead><tr><th>User</th><th>Status</th><th>Calls (30 days)</th><th>Signed in</th><th>Key issued</th><th></th></tr></thead>
          <tbody>
            {list.map((u) => (
              <tr key={u.user_hash}>
                <td><code>{u.user_hash}</code></td>
                <td>{u.status}</td>
                <td>{u.calls_30d}</td>
                <td>{day(u.signed_in_at)}</td>
                <td>{day(u.key_issued_at)}</td>
                <td>{u.status === "revoked" ? "" : <button type="button" class="link" onClick={() => void revoke(u.user_hash)}>Revoke</button>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ErrorLine>{error}</ErrorLine>
    </div>
  );
}
