// Seeds the local demo when the database is empty: a demo account, a workspace, an app
// imported from the demo API the Worker serves under /demo/, and a verified, published server
// with an access key. Run by scripts/dev.sh once wrangler dev answers. Local only.
const base = process.argv[2] ?? "http://127.0.0.1:8787";
const EMAIL = "demo@flowcp.local";
const PASSWORD = "flowcp-demo-password";

let cookie = null;
let csrf = null;
async function call(method, path, json) {
  const headers = {};
  if (cookie) headers.cookie = cookie;
  if (csrf && method !== "GET") headers["x-csrf-token"] = csrf;
  if (json !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(base + path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) });
  for (const c of r.headers.getSetCookie()) cookie = c.split(";")[0];
  const body = await r.json().catch(() => null);
  if (body?.csrf_token) csrf = body.csrf_token;
  return { status: r.status, body };
}

async function waitForWorker() {
  for (let i = 0; i < 240; i++) {
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error("the worker did not become healthy");
}

function must(r, what) {
  if (r.status >= 300) throw new Error(`${what}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

await waitForWorker();
const signup = await call("POST", "/api/v1/auth/signup", {
  email: EMAIL, password: PASSWORD, display_name: "Demo Owner", workspace_name: "Demo workspace",
  accept_terms: true, accept_privacy: true,
});
if (signup.status === 409) {
  console.log(`\nFlowCP demo: already seeded. Log in at ${base}/ as ${EMAIL} / ${PASSWORD}\n`);
  process.exit(0);
}
must(signup, "sign up");
// The demo account verifies its address through the local outbox, as a person would by email.
const outbox = await (await fetch(`${base}/dev/outbox?to=${encodeURIComponent(EMAIL)}`)).json();
const link = outbox.messages.map((m) => m.text.match(/\/verify-email#token=(\S+)/)).filter(Boolean).pop();
if (!link) throw new Error("no verification link in the local outbox");
must(await call("POST", "/api/v1/auth/verify-email", { token: link[1] }), "verify email");
const ws = signup.body.workspace.id;
const P = (p) => `/api/v1/workspaces/${ws}${p}`;
const app = must(await call("POST", P("/apps"), { name: "Demo Bookshop" }), "create app");
must(await call("POST", P(`/apps/${app.id}/imports`), { url: `${base}/demo/openapi.json` }), "import");
const srv = must(await call("POST", P("/servers"), { app_id: app.id, name: "Demo Bookshop" }), "create server");
const key = must(await call("POST", P(`/servers/${srv.id}/keys`), { name: "demo" }), "access key");
const verify = must(await call("POST", P(`/servers/${srv.id}/verify`)), "verify");
if (verify.state !== "verified") throw new Error(`verification failed: ${JSON.stringify(verify.findings)}`);
must(await call("POST", P(`/servers/${srv.id}/publish`)), "publish");

console.log(`
FlowCP demo seeded (local only):
  dashboard   ${base}/   log in as ${EMAIL} / ${PASSWORD}
  MCP server  ${srv.mcp_url}
  access key  ${key.key}   (Authorization: Bearer <key>)
  try it      npx @modelcontextprotocol/inspector  (Streamable HTTP, URL and header above)
  mail        ${base}/dev/outbox?to=<address>   (what FlowCP "sent": verification, reset, invitations)
`);
