// Workspace isolation and hostile requests: a second account gets 404 on every
// workspace-scoped route of the first, and also under its own workspace with the first's
// resource ids (the route lists come from the API's own OpenAPI document, so a new route cannot
// be forgotten), and the owner's view is unchanged afterwards; CSRF, roles, forged and expired
// sessions, SSRF targets, Host-only DNS rebinding, oversized, malformed and mistyped bodies get
// their exact status and code, with no effect.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { Client, d1, inviteAndAccept, startWorker, testSecrets } from "./harness.mjs";
import { startFakeUpstream } from "./fake-upstream.mjs";
import { connectGitHub, githubVars, startFakeGitHub } from "./fake-github.mjs";

let secrets;
let w, up, gh, a, b, ids, bobWs;

before(async () => {
  up = await startFakeUpstream();
  gh = await startFakeGitHub();
  secrets = { ...testSecrets(), ...githubVars(gh) };
  w = await startWorker({ vars: secrets });
  a = new Client(w.url);
  b = new Client(w.url);
  const ra = await a.signup("alice@example.com");
  bobWs = (await b.signup("bob@example.com")).workspace.id;
  const ws = ra.workspace.id;
  const P = (p) => `/api/v1/workspaces/${ws}${p}`;
  const app = (await a.post(P("/apps"), { name: "A" })).body;
  assert.equal((await a.post(P(`/apps/${app.id}/imports`), { url: `${up.url}/openapi.json` })).status, 201);
  const tool = (await a.get(P(`/apps/${app.id}/tools`))).body.items[0];
  const srv = (await a.post(P("/servers"), { app_id: app.id })).body;
  const key = (await a.post(P(`/servers/${srv.id}/keys`), {})).body;
  assert.equal((await a.put(P("/secrets/TOKEN"), { value: "alice-secret-value" })).status, 200);
  const inv = (await a.post(P("/invitations"), { email: "pending@example.com", role: "member" })).body;
  // Alice's app also follows a document in Git (her source, connection and imports).
  gh.addRepo("alice/api", { files: { "openapi.json": await (await fetch(`${up.url}/openapi.json`)).text() } });
  const git = await connectGitHub(a, ws);
  const source = await a.put(P(`/apps/${app.id}/source`), { connection_id: git.id, repo: "alice/api", branch: "main", path: "openapi.json" });
  assert.equal(source.status, 200, JSON.stringify(source.body));
  const imp = (await a.get(P(`/apps/${app.id}/imports`))).body.items[0];
  // A connection hash of the right shape (alice's server has no OAuth sign-ins; every hostile
  // call must be 404 whatever the hash).
  ids = { ws, app: app.id, tool: tool?.id, srv: srv.id, key: key.id, name: "TOKEN", user: ra.user.id, inv: inv.id, conn: "0123456789abcdef", template: "power-automate", import: imp.id, gitConn: git.id };
});
after(async () => { await w?.stop(); w?.cleanup(); await up?.close(); await gh?.close(); });

/** Everything alice can see of her workspace, to compare before and after hostile calls. */
async function aliceView() {
  const P = (p) => `/api/v1/workspaces/${ids.ws}${p}`;
  const out = {};
  for (const [name, path] of [
    ["workspace", ""], ["members", "/members"], ["apps", "/apps"], ["app", `/apps/${ids.app}`],
    ["imports", `/apps/${ids.app}/imports`], ["tools", `/apps/${ids.app}/tools`], ["servers", "/servers"],
    ["server", `/servers/${ids.srv}`], ["keys", `/servers/${ids.srv}/keys`], ["connections", `/servers/${ids.srv}/connections`], ["key users", `/servers/${ids.srv}/key-users`],
    ["secrets", "/secrets"], ["audit", "/audit"], ["git connections", "/git/connections"], ["source", `/apps/${ids.app}/source`],
    ["invitations", "/invitations"],
  ]) {
    const r = await a.get(P(path));
    assert.equal(r.status, 200, `alice GET ${path}: ${JSON.stringify(r.body)}`);
    out[name] = r.body;
  }
  return out;
}

/** The workspace-scoped routes of the API's own OpenAPI document, as [method, pattern, operationId]. */
async function workspaceRoutes(client) {
  const doc = (await client.get("/api/v1/openapi.json")).body;
  const routes = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    if (!path.includes("{ws}")) continue;
    for (const [method, op] of Object.entries(item)) routes.push([method.toUpperCase(), path, op.operationId]);
  }
  return routes;
}

const fill = (pattern, values) => pattern.replace(/\{(\w+)\}/g, (_, p) => {
  assert.ok(values[p] !== undefined, `no value for {${p}}`);
  return values[p];
});

test("another account gets 404 on every workspace-scoped route (and the owner gets 200 on the same GETs)", async () => {
  for (const [k, v] of Object.entries(ids)) assert.ok(typeof v === "string" && v.length > 0, `ids.${k} is ${v}`);
  const routes = await workspaceRoutes(b);
  assert.ok(routes.length >= 30, `only ${routes.length} workspace routes found`);
  // Positive control: the concrete GET calls name things alice can read.
  const gets = routes.filter(([m]) => m === "GET");
  assert.ok(gets.length >= 10, `only ${gets.length} GET routes`);
  for (const [method, pattern] of gets) {
    const r = await a.call(method, fill(pattern, ids));
    assert.equal(r.status, 200, `alice: ${method} ${pattern} answered ${r.status} ${JSON.stringify(r.body)}`);
  }
  const before = await aliceView();
  for (const [method, pattern] of routes) {
    const path = fill(pattern, ids);
    const r = await b.call(method, path, { json: method === "GET" || method === "DELETE" ? undefined : { name: "x" } });
    assert.equal(r.status, 404, `${method} ${path} answered ${r.status} ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, "not_found");
  }
  // And the owner still sees everything exactly as it was: nothing was changed by the attempts.
  assert.deepEqual(await aliceView(), before);
});

/** A valid body for each workspace route, so that the id lookup (not body validation) decides. */
function validBody(operationId) {
  return {
    updateMember: { role: "member" },
    addMember: { email: "alice@example.com", role: "member" },
    updateApp: { name: "hijacked" },
    updateWorkspace: { name: "hijacked", audit_retention_days: 7 },
    createImport: { url: `${up.url}/openapi.json` },
    updateTool: { description: "hijacked" },
    bulkUpdateTools: { tool_ids: [ids.tool], enabled: false },
    updateServer: { is_public: true },
    putCredential: { value: "bob-credential" },
    createKey: {},
    putSecret: { value: "bob-value" },
    tryTool: { tool: "listWidgets", run: true },
    onboard: { url: `${up.url}/openapi.json` },
    createFromTemplate: {},
    connectGit: { provider: "github" },
    testGitSource: { connection_id: ids.gitConn, repo: "alice/api", branch: "main", path: "openapi.json" },
    putAppSource: { connection_id: ids.gitConn, repo: "alice/api", branch: "main", path: "openapi.json", auto_publish: true },
    updateAppSource: { auto_publish: true },
  }[operationId];
}

test("cross-workspace IDOR: bob's own workspace with alice's ids in paths and bodies reaches nothing of alice's", async () => {
  const B = (p) => `/api/v1/workspaces/${bobWs}${p}`;
  // Bob's own app (with tools) and server, so that mixed paths (his parent, alice's child) exist.
  const bobApp = (await b.post(B("/apps"), { name: "Bob's" })).body;
  assert.equal((await b.post(B(`/apps/${bobApp.id}/imports`), { url: `${up.url}/openapi.json` })).status, 201);
  const bobSrv = (await b.post(B("/servers"), { app_id: bobApp.id })).body;
  assert.ok(bobApp.id && bobSrv.id);
  const before = await aliceView();
  const upBefore = up.received.length;

  const routes = await workspaceRoutes(b);
  const FOREIGN = ["app", "tool", "srv", "key", "user"];
  const calls = [];
  for (const [method, pattern, op] of routes) {
    const params = [...pattern.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    if (params.some((p) => FOREIGN.includes(p))) {
      // alice's ids under bob's workspace
      calls.push([method, fill(pattern, { ...ids, ws: bobWs }), op]);
      // bob's own parent (app or server), alice's child (tool or key)
      if (params.includes("tool") || params.includes("key")) {
        calls.push([method, fill(pattern, { ...ids, ws: bobWs, app: bobApp.id, srv: bobSrv.id }), op]);
      }
    } else if (params.includes("name") && method === "DELETE") {
      calls.push([method, fill(pattern, { ...ids, ws: bobWs }), op]); // bob has no secret TOKEN; alice's must stay
    }
  }
  assert.ok(calls.length >= 20, `only ${calls.length} IDOR calls generated`);
  for (const [method, path, op] of calls) {
    const r = await b.call(method, path, { json: validBody(op) });
    assert.equal(r.status, 404, `${method} ${path} answered ${r.status} ${JSON.stringify(r.body)}`);
    assert.ok(["not_found", "app_not_found"].includes(r.body.error.code), `${method} ${path}: ${JSON.stringify(r.body)}`);
  }
  // Foreign ids in bodies.
  let r = await b.post(B("/servers"), { app_id: ids.app });
  assert.equal(r.status, 404, JSON.stringify(r.body));
  assert.equal(r.body.error.code, "app_not_found");
  r = await b.post(B(`/apps/${bobApp.id}/tools/bulk`), { tool_ids: [ids.tool], enabled: false });
  assert.equal(r.status, 404, JSON.stringify(r.body));
  const bobTool = (await b.get(B(`/apps/${bobApp.id}/tools`))).body.items[0];
  r = await b.post(B(`/apps/${bobApp.id}/tools/bulk`), { tool_ids: [bobTool.id, ids.tool], enabled: false });
  assert.equal(r.status, 404, "a batch with one foreign id is refused whole");
  assert.ok((await b.get(B(`/apps/${bobApp.id}/tools`))).body.items.every((t) => t.enabled), "bob's tools changed by a refused batch");
  // Alice's Git connection, named in bob's workspace: not found, and nothing is read with it.
  const ghBefore = gh.requests.length;
  assert.equal((await b.del(B(`/git/connections/${ids.gitConn}`))).status, 404);
  r = await b.put(B(`/apps/${bobApp.id}/source`), { connection_id: ids.gitConn, repo: "alice/api", branch: "main", path: "openapi.json" });
  assert.equal(r.status, 404, JSON.stringify(r.body));
  r = await b.post(B("/git/test"), { connection_id: ids.gitConn, repo: "alice/api" });
  assert.equal(r.status, 404, JSON.stringify(r.body));
  assert.equal(gh.requests.length, ghBefore, "alice's GitHub token was not used for bob");

  // As alice: nothing changed, and no verify probe or import fetch went to the upstream for her.
  assert.deepEqual(await aliceView(), before);
  assert.ok(before.tools.items.find((t) => t.id === ids.tool).enabled, "alice's tool is enabled");
  assert.equal(up.received.length, upBefore, `the upstream was called: ${JSON.stringify(up.received.slice(upBefore).map((x) => x.url))}`);
});

test("a state-changing call without the CSRF token (or with another session's) is 403 csrf_failed and changes nothing", async () => {
  const P = (p) => `/api/v1/workspaces/${ids.ws}${p}`;
  const before = await aliceView();
  let r = await a.call("POST", P("/apps"), { json: { name: "nope" }, csrf: false });
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "csrf_failed");
  r = await a.call("POST", P("/apps"), { json: { name: "nope" }, csrf: false, headers: { "x-csrf-token": "forged" } });
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "csrf_failed");
  // Bob's valid token is not alice's: the token is bound to its session.
  assert.ok(b.csrf && b.csrf !== a.csrf);
  r = await a.call("POST", P("/apps"), { json: { name: "nope" }, csrf: false, headers: { "x-csrf-token": b.csrf } });
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "csrf_failed");
  // The same for PATCH, PUT and DELETE on alice's resources.
  for (const [method, path, json] of [
    ["PATCH", `/apps/${ids.app}`, { name: "renamed" }],
    ["PATCH", `/servers/${ids.srv}`, { is_public: true }],
    ["PUT", "/secrets/TOKEN", { value: "overwritten" }],
    ["PUT", `/servers/${ids.srv}/credential`, { value: "planted" }],
    ["DELETE", `/apps/${ids.app}`, undefined],
    ["DELETE", `/servers/${ids.srv}/keys/${ids.key}`, undefined],
    ["DELETE", "/secrets/TOKEN", undefined],
    ["DELETE", "", undefined],
  ]) {
    for (const headers of [{}, { "x-csrf-token": b.csrf }]) {
      r = await a.call(method, P(path), { json, csrf: false, headers });
      assert.equal(r.status, 403, `${method} ${path} ${JSON.stringify(headers)}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, "csrf_failed");
    }
  }
  r = await a.call("DELETE", "/api/v1/me", { json: { password: "correct horse battery staple" }, csrf: false });
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "csrf_failed");
  const after = await aliceView();
  assert.ok(!after.apps.items.some((x) => x.name === "nope"), "an app named nope was created");
  assert.deepEqual(after, before);
  assert.equal((await a.get("/api/v1/me")).status, 200);
});

test("a forged session cookie is 401 unauthenticated", async () => {
  const forged = new Client(w.url);
  const [name, value] = a.cookie.split("=");
  const [id] = value.split(".");
  for (const cookie of [`${name}=${id}.AAAA`, `${name}=garbage`, `${name}=`, "other=1"]) {
    forged.cookie = cookie;
    const r = await forged.get("/api/v1/me");
    assert.equal(r.status, 401, cookie);
    assert.equal(r.body.error.code, "unauthenticated");
  }
});

test("SSRF targets are refused with 422 url_not_allowed", async () => {
  const P = `/api/v1/workspaces/${ids.ws}/apps/${ids.app}/imports`;
  for (const url of ["https://169.254.169.254/latest/meta-data", "https://10.0.0.1/openapi.json", "https://192.168.1.10/x", "file:///etc/passwd", "https://metadata.google.internal/x", "https://[::ffff:10.0.0.1]/x", `${up.url}/redirect-to-metadata`]) {
    const r = await a.post(P, { url });
    assert.equal(r.status, 422, `${url}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, "url_not_allowed", url);
  }
});

test("malformed, mistyped and oversized bodies get 400, 415, 413; nothing stored is lost", async () => {
  const P = `/api/v1/workspaces/${ids.ws}/apps`;
  let r = await a.call("POST", P, { body: "{not json", contentType: "application/json" });
  assert.equal(r.status, 400);
  assert.equal(r.body.error.code, "invalid_json");
  r = await a.call("POST", P, { body: "name=x", contentType: "application/x-www-form-urlencoded" });
  assert.equal(r.status, 415);
  assert.equal(r.body.error.code, "unsupported_media_type");
  r = await a.post(P, { name: 42 });
  assert.equal(r.status, 400);
  r = await a.post(P, { name: "x", extra: true });
  assert.equal(r.status, 400, "unknown fields are refused");
  r = await a.post(P, { name: "x".repeat(300 * 1024) });
  assert.equal(r.status, 413);
  assert.equal(r.body.error.code, "payload_too_large");
  r = await a.call("POST", `${P}/${ids.app}/imports`, { body: "{\"openapi\": \"3.0.0\", \"paths\": [", contentType: "application/json" });
  assert.equal(r.status, 422);
  assert.equal(r.body.error.code, "unreadable_document");
  r = await a.call("POST", `${P}/${ids.app}/imports`, { body: "<html>", contentType: "text/html" });
  assert.equal(r.status, 415);
  const tools = await a.get(`${P}/${ids.app}/tools`);
  assert.equal(tools.body.items.length, 3, "failed imports left the tools as they were");
});

test("roles: a member can read and curate, but only owners and admins manage servers, secrets and deletions", async () => {
  await inviteAndAccept(a, ids.ws, b, "bob@example.com");
  const P = (p) => `/api/v1/workspaces/${ids.ws}${p}`;
  assert.equal((await b.get(P("/apps"))).status, 200);
  assert.equal((await b.patch(P(`/apps/${ids.app}/tools/${ids.tool}`), { description: "Curated by a member." })).status, 200);
  const before = await aliceView();
  assert.equal(before.server.credential_set, false);
  assert.equal(before.server.published, false);
  assert.equal(before.server.is_public, false);
  const upBefore = up.received.length;
  for (const [method, path, body] of [
    ["POST", "/servers", { app_id: ids.app }],
    ["PUT", `/servers/${ids.srv}/credential`, { value: "member-secret" }],
    ["DELETE", `/servers/${ids.srv}/credential`, undefined],
    ["POST", `/servers/${ids.srv}/publish`, undefined],
    ["POST", `/servers/${ids.srv}/unpublish`, undefined],
    ["POST", `/servers/${ids.srv}/verify`, undefined],
    ["POST", `/servers/${ids.srv}/keys`, {}],
    ["DELETE", `/servers/${ids.srv}/keys/${ids.key}`, undefined],
    ["PATCH", `/servers/${ids.srv}`, { is_public: true }],
    ["DELETE", `/servers/${ids.srv}`, undefined],
    ["PUT", "/secrets/OTHER", { value: "v" }],
    ["PUT", "/secrets/TOKEN", { value: "overwritten by a member" }],
    ["DELETE", "/secrets/TOKEN", undefined],
    ["DELETE", `/apps/${ids.app}`, undefined],
    ["DELETE", "", undefined],
    ["POST", "/invitations", { email: "carol@example.com", role: "member" }],
    ["GET", "/invitations", undefined],
  ]) {
    const res = await b.call(method, P(path), { json: body });
    assert.equal(res.status, 403, `${method} ${path}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error.code, "forbidden");
  }
  // Nothing the member tried took effect.
  const after = await aliceView();
  assert.equal(after.server.credential_set, false);
  assert.equal(after.server.published, false);
  assert.equal(after.server.is_public, false);
  assert.deepEqual(after.server.verification, before.server.verification);
  assert.equal(after.keys.items.length, before.keys.items.length);
  assert.ok(after.keys.items.every((k) => !k.revoked_at));
  assert.deepEqual(after.secrets.items.map((x) => x.name), ["TOKEN"]);
  assert.equal(after.apps.items.length, 1);
  assert.deepEqual(after.members.items.map((m) => [m.email, m.role]).sort(), [["alice@example.com", "owner"], ["bob@example.com", "member"]]);
  assert.deepEqual(after, before, "alice's workspace changed");
  assert.equal(up.received.length, upBefore, "the upstream got a verify probe");
  const bobId = (await b.get("/api/v1/me")).body.user.id;
  assert.equal((await b.patch(P(`/members/${bobId}`), { role: "owner" })).status, 403, "members cannot promote themselves");
  let res = await a.patch(P(`/members/${ids.user}`), { role: "member" });
  assert.equal(res.status, 409, "the last owner cannot step down");
  assert.equal(res.body.error.code, "last_owner");
  res = await a.patch(P(`/members/${bobId}`), { role: "admin" });
  assert.equal(res.status, 200);
  assert.equal((await b.call("DELETE", P(`/members/${ids.user}`))).status, 403, "admins cannot remove owners");
  assert.equal((await b.call("DELETE", P(`/members/${bobId}`))).status, 204, "anyone may leave");
  assert.equal((await b.get(P("/apps"))).status, 404, "after leaving, the workspace is gone for bob");
});

test("login does not enumerate users: an unknown email and a wrong password answer the same", async () => {
  const anon = new Client(w.url);
  let r = await anon.post("/api/v1/auth/login", { email: "nobody@example.com", password: "whatever password" });
  assert.equal(r.status, 401);
  const unknown = r.body;
  r = await anon.post("/api/v1/auth/login", { email: "alice@example.com", password: "wrong password!!" });
  assert.equal(r.status, 401);
  assert.deepEqual(r.body, unknown, "unknown email and wrong password answer the same");
});

test("repeated failed logins are throttled with 429", async () => {
  const anon = new Client(w.url);
  let last;
  for (let i = 0; i < 8; i++) {
    last = await anon.post("/api/v1/auth/login", { email: "bob@example.com", password: `wrong password ${i}` });
  }
  assert.equal(last.status, 429);
  assert.equal(last.body.error.code, "too_many_attempts");
  const good = await anon.post("/api/v1/auth/login", { email: "bob@example.com", password: "correct horse battery staple" });
  assert.equal(good.status, 429, "even the right password waits out the lock");
});

test("DNS rebinding with the Host header alone (no Origin) is refused by the host allow-list", async () => {
  const P = (p) => `/api/v1/workspaces/${ids.ws}${p}`;
  const srv = (await a.post(P("/servers"), { app_id: ids.app, name: "Rebinding target" })).body;
  assert.equal((await a.patch(P(`/servers/${srv.id}`), { is_public: true })).status, 200);
  assert.equal((await a.post(P(`/servers/${srv.id}/verify`))).body.state, "verified");
  assert.equal((await a.post(P(`/servers/${srv.id}/publish`))).status, 200);
  const port = Number(new URL(w.url).port);
  const post = (host) => new Promise((resolve, reject) => {
    const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" });
    const req = request({
      host: "127.0.0.1", port, path: `/mcp/${srv.id}`, method: "POST",
      headers: { Host: host, "content-type": "application/json", accept: "application/json", "content-length": Buffer.byteLength(body) },
    }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
  let r = await post(`evil.example.com:${port}`);
  assert.equal(r.status, 403, r.text);
  assert.match(JSON.parse(r.text).error.message, /this host is not served here/);
  r = await post("evil.example.com");
  assert.equal(r.status, 403, r.text);
  // Positive control: an allowed host name is served.
  r = await post(`localhost:${port}`);
  assert.notEqual(r.status, 403, r.text);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(JSON.parse(r.text).result, {});
});

test("an expired session is 401 (checked after restarting on the same state)", async () => {
  await w.stop();
  d1(w.stateDir, "UPDATE sessions SET expires_at = 1");
  const restarted = await startWorker({ vars: secrets, stateDir: w.stateDir });
  try {
    const c = new Client(restarted.url);
    c.cookie = a.cookie;
    const r = await c.get("/api/v1/me");
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, "unauthenticated");
  } finally {
    await restarted.stop();
  }
});
