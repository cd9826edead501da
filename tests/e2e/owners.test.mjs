// The owner journey through the JSON API against wrangler dev (real D1 and KV): sign up,
// import by URL and by upload, curate, configure, verify (live probe), publish, re-import with
// curation kept, unpublish, export, delete — and no secret in any response or log line.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client, sleep, startWorker, testSecrets } from "./harness.mjs";
import { startFakeUpstream } from "./fake-upstream.mjs";

const UPSTREAM_KEY = "sk_test_e2e_" + Math.random().toString(36).slice(2);
const PASSWORD = "owner password " + Math.random().toString(36).slice(2);
const secrets = testSecrets();
let w, up, c, ws, shownAccessKey;
let lastCookie, lastCsrf; // the session's cookie and CSRF token (the account deletion clears them)
const seen = []; // every response body, to search for secrets at the end

before(async () => {
  up = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  w = await startWorker({ vars: secrets });
  c = new Client(w.url);
  const orig = c.call.bind(c);
  c.call = async (...a) => {
    const r = await orig(...a);
    seen.push(JSON.stringify(r.body));
    if (c.cookie) lastCookie = c.cookie;
    if (c.csrf) lastCsrf = c.csrf;
    return r;
  };
});
after(async () => { await w?.stop(); w?.cleanup(); await up?.close(); });

const P = (p) => `/api/v1/workspaces/${ws}${p}`;

test("sign up creates the account, a workspace and a session", async () => {
  const r = await c.signup("owner@example.com", PASSWORD, "Acme");
  ws = r.workspace.id;
  assert.match(ws, /^ws_/);
  assert.ok(c.cookie.startsWith("__Host-flowcp_session="));
  const me = await c.get("/api/v1/me");
  assert.equal(me.status, 200);
  assert.equal(me.body.user.email, "owner@example.com");
  assert.deepEqual(me.body.workspaces.map((x) => x.role), ["owner"]);
});

let app, tools;
test("import by URL from a fake upstream generates tools", async () => {
  app = (await c.post(P("/apps"), { name: "Widgets" })).body;
  const r = await c.post(P(`/apps/${app.id}/imports`), { url: `${up.url}/openapi.json` });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal(r.body.tool_count, 3);
  assert.equal(r.body.source_kind, "url");
  assert.deepEqual(r.body.report.added.sort(), ["createWidget", "getWidget", "listWidgets"]);
  assert.deepEqual(r.body.report.security_schemes.map((s) => s.name), ["key"]);
  tools = (await c.get(P(`/apps/${app.id}/tools`))).body.items;
  assert.deepEqual(tools.map((t) => t.name), ["createWidget", "getWidget", "listWidgets"]);
});

test("import by upload accepts YAML", async () => {
  const other = (await c.post(P("/apps"), { name: "Uploaded" })).body;
  const yaml = "openapi: 3.1.0\ninfo: {title: Up, version: '1'}\nservers: [{url: 'https://api.example.com'}]\npaths:\n  /ping:\n    get: {operationId: ping, responses: {'200': {description: ok}}}\n";
  const r = await c.call("POST", P(`/apps/${other.id}/imports`), { body: yaml, contentType: "application/yaml" });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal(r.body.tool_count, 1);
  const hist = await c.get(P(`/apps/${other.id}/imports`));
  assert.equal(hist.body.items.length, 1);
});

test("curation: rename, rewrite, disable; bad names are refused", async () => {
  const get = tools.find((t) => t.name === "getWidget");
  let r = await c.patch(P(`/apps/${app.id}/tools/${get.id}`), { name: "fetch_widget", description: "Fetch one widget by id." });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.name, "fetch_widget");
  assert.equal(r.body.description_curated, true);
  r = await c.patch(P(`/apps/${app.id}/tools/${get.id}`), { name: "has space" });
  assert.equal(r.status, 422);
  assert.equal(r.body.error.code, "invalid_tool_name");
  r = await c.patch(P(`/apps/${app.id}/tools/${get.id}`), { name: "listWidgets" });
  assert.equal(r.status, 409);
  const create = tools.find((t) => t.name === "createWidget");
  r = await c.post(P(`/apps/${app.id}/tools/bulk`), { tool_ids: [create.id], enabled: false });
  assert.equal(r.status, 200);
  r = await c.get(P(`/apps/${app.id}/tools?enabled=true`));
  assert.deepEqual(r.body.items.map((t) => t.name), ["fetch_widget", "listWidgets"]);
  r = await c.get(P(`/apps/${app.id}/tools?tag=admin`));
  assert.deepEqual(r.body.items.map((t) => t.name), ["createWidget"]);
  r = await c.get(P(`/apps/${app.id}/tools?q=fetch%20one`));
  assert.deepEqual(r.body.items.map((t) => t.name), ["fetch_widget"]);
  r = await c.get(P(`/apps/${app.id}/tools?limit=1`));
  assert.equal(r.body.items.length, 1);
  const page2 = await c.get(P(`/apps/${app.id}/tools?limit=1&cursor=${r.body.next_cursor}`));
  assert.notEqual(page2.body.items[0].id, r.body.items[0].id);
  assert.equal((await c.get(P(`/apps/${app.id}/tools?cursor=garbage`))).body.error.code, "invalid_cursor");
});

let srv;
test("server: configure api_key auth, credential write-only, verify with a live probe, publish", async () => {
  let r = await c.post(P("/servers"), { app_id: app.id, name: "Widgets MCP" });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  srv = r.body;
  assert.deepEqual(srv.auth_config, { in: "header", name: "X-API-Key" }, "placement comes from the document");
  assert.equal(srv.mcp_url, `${w.url}/mcp/${srv.id}`);
  r = await c.patch(P(`/servers/${srv.id}`), { auth_mode: "api_key" });
  assert.equal(r.body.credential_set, false);
  r = await c.post(P(`/servers/${srv.id}/verify`));
  assert.equal(r.body.state, "failed");
  assert.equal(r.body.findings.find((f) => f.check === "auth").status, "fail");
  r = await c.post(P(`/servers/${srv.id}/publish`));
  assert.equal(r.status, 409);
  assert.equal(r.body.error.code, "not_verified");
  r = await c.put(P(`/servers/${srv.id}/credential`), { value: UPSTREAM_KEY });
  assert.equal(r.status, 409, "the origin the document names must be confirmed");
  assert.equal(r.body.error.code, "origin_unconfirmed");
  r = await c.put(P(`/servers/${srv.id}/credential`), { value: UPSTREAM_KEY, origin: up.url });
  assert.deepEqual(r.body, { credential_set: true, credential_origin: up.url }, "bound to the API's origin");
  const before = up.received.length;
  r = await c.post(P(`/servers/${srv.id}/verify`));
  assert.equal(r.body.state, "verified", JSON.stringify(r.body));
  const probe = up.received.slice(before).find((x) => x.url.startsWith("/api/widgets"));
  assert.equal(probe.method, "GET");
  assert.equal(probe.headers["x-api-key"], UPSTREAM_KEY, "the probe sends the decrypted key where the scheme says");
  r = await c.post(P(`/servers/${srv.id}/publish`));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.manifest.version, 1);
  assert.equal(r.body.manifest.tools, 2);
  assert.equal(r.body.server.published, true);
  assert.ok(r.body.server.client_config.cursor.mcpServers);
});

/** One MCP tools/call on the server with an access key, raw (every response is kept for the leak check). */
async function mcpCall(key) {
  const r = await fetch(srv.mcp_url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "listWidgets", arguments: {} } }),
  });
  const text = await r.text();
  seen.push(text);
  return { status: r.status, text, json: JSON.parse(text) };
}

test("access keys are shown once, listed without secrets, and a key revoked through the API stops working on /mcp", async () => {
  let r = await c.post(P(`/servers/${srv.id}/keys`), { name: "laptop" });
  assert.equal(r.status, 201);
  shownAccessKey = r.body.key;
  assert.match(shownAccessKey, /^fcp_sk_/);
  r = await c.get(P(`/servers/${srv.id}/keys`));
  assert.equal(r.body.items.length, 1);
  assert.ok(!JSON.stringify(r.body).includes(shownAccessKey));
  assert.equal(r.body.items[0].prefix, shownAccessKey.slice(0, 12));
  // The published server answers with the key, and the call reaches the upstream.
  let before = up.received.length;
  let m = await mcpCall(shownAccessKey);
  assert.equal(m.status, 200, m.text);
  assert.equal(m.json.result.isError, undefined, m.text);
  assert.deepEqual(m.json.result.structuredContent, { items: [{ id: 1, name: "gear" }] });
  assert.equal(up.received.length, before + 1);
  const del = await c.del(P(`/servers/${srv.id}/keys/${r.body.items[0].id}`));
  assert.equal(del.status, 204);
  r = await c.get(P(`/servers/${srv.id}/keys`));
  assert.ok(r.body.items[0].revoked_at > 0);
  await sleep(1100); // the isolate trusts what it read of an access key for KV_TTL_MS = 1 s
  before = up.received.length;
  m = await mcpCall(shownAccessKey);
  assert.equal(m.status, 401, m.text);
  assert.match(m.json.error.message, /not valid for this server/);
  assert.equal(up.received.length, before, "a revoked key reached the upstream");
});

test("re-import keeps curation, reports the diff, and resets verification", async () => {
  up.setVersion(2);
  const r = await c.post(P(`/apps/${app.id}/imports`), { url: `${up.url}/openapi.json` });
  assert.equal(r.status, 201);
  assert.deepEqual(r.body.report.added, ["deleteWidget"]);
  assert.deepEqual(r.body.report.removed, ["createWidget"]);
  const names = (await c.get(P(`/apps/${app.id}/tools`))).body.items.map((t) => t.name);
  assert.deepEqual(names, ["deleteWidget", "fetch_widget", "listWidgets"]);
  const t = (await c.get(P(`/apps/${app.id}/tools?q=fetch_widget`))).body.items[0];
  assert.equal(t.description, "Fetch one widget by id.");
  const s = (await c.get(P(`/servers/${srv.id}`))).body;
  assert.equal(s.verification.state, "unverified");
  assert.equal(s.published, true, "edits stay draft: the published version stays on the air");
  assert.equal(s.has_draft_changes, true);
  const hist = (await c.get(P(`/apps/${app.id}/imports`))).body.items;
  assert.equal(hist.length, 2);
});

test("unpublish takes the server off the air", async () => {
  const r = await c.post(P(`/servers/${srv.id}/unpublish`));
  assert.equal(r.status, 200);
  assert.equal(r.body.published, false);
});

test("workspace secrets are write-only", async () => {
  let r = await c.put(P("/secrets/STRIPE_KEY"), { value: "sk_live_never_shown_" + UPSTREAM_KEY });
  assert.equal(r.status, 200);
  r = await c.get(P("/secrets"));
  assert.deepEqual(r.body.items.map((s) => s.name), ["STRIPE_KEY"]);
  assert.ok(!JSON.stringify(r.body).includes("sk_live_never_shown_"));
});

test("export holds the account's data and no secret", async () => {
  const r = await c.get("/api/v1/me/export");
  assert.equal(r.status, 200);
  const text = JSON.stringify(r.body);
  assert.equal(r.body.user.email, "owner@example.com");
  assert.ok(r.body.user.terms_accepted_at > 0 && r.body.user.privacy_accepted_at > 0);
  assert.equal(r.body.workspaces[0].apps.length, 2);
  for (const s of [UPSTREAM_KEY, shownAccessKey, PASSWORD, "$argon2"]) assert.ok(!text.includes(s), `export leaks ${s.slice(0, 8)}`);
});

test("delete the workspace: its ids answer 404 afterwards", async () => {
  let r = await c.del(P(""));
  assert.equal(r.status, 204);
  r = await c.get(P(`/apps/${app.id}`));
  assert.equal(r.status, 404);
  r = await c.get("/api/v1/me");
  assert.deepEqual(r.body.workspaces, []);
});

test("delete the account: the session ends", async () => {
  let r = await c.del("/api/v1/me", { password: PASSWORD });
  assert.equal(r.status, 204);
  r = await c.get("/api/v1/me");
  assert.equal(r.status, 401);
});

// Keep this the last test of the file, so the delete tests above are covered too.
test("no secret appears in any API response or in the worker log (after every other test)", async () => {
  assert.ok(seen.length > 40, `only ${seen.length} responses were recorded`);
  const all = seen.join("\n");
  assert.equal(all.split(shownAccessKey).length - 1, 1, "the access key is shown exactly once, on creation");
  const bodies = all.replace(shownAccessKey, "");
  const cookieValue = lastCookie.split("=").slice(1).join("=");
  for (const s of [UPSTREAM_KEY, PASSWORD, shownAccessKey, cookieValue, secrets.FLOWCP_SESSION_SECRET, secrets.FLOWCP_ENCRYPTION_KEYS.slice(3)]) {
    assert.ok(!bodies.includes(s), `a response leaked ${s.slice(0, 6)}…`);
  }
  await sleep(300);
  const logs = w.logs();
  for (const s of [UPSTREAM_KEY, PASSWORD, shownAccessKey, cookieValue, lastCsrf, secrets.FLOWCP_SESSION_SECRET, secrets.FLOWCP_ENCRYPTION_KEYS.slice(3)]) {
    assert.ok(!logs.includes(s), `the log leaked ${s.slice(0, 6)}…`);
  }
});
