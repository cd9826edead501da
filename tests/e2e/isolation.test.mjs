// Workspace isolation and hostile requests: a second account gets 404 on every
// workspace-scoped route of the first (the route list comes from the API's own OpenAPI
// document, so a new route cannot be forgotten), and CSRF, forged and expired sessions,
// SSRF targets, oversized, malformed and mistyped bodies get their exact status and code.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client, d1, startWorker, testSecrets } from "./harness.mjs";
import { startFakeUpstream } from "./fake-upstream.mjs";

const secrets = testSecrets();
let w, up, a, b, ids;

before(async () => {
  up = await startFakeUpstream();
  w = await startWorker({ vars: secrets });
  a = new Client(w.url);
  b = new Client(w.url);
  const ra = await a.signup("alice@example.com");
  await b.signup("bob@example.com");
  const ws = ra.workspace.id;
  const P = (p) => `/api/v1/workspaces/${ws}${p}`;
  const app = (await a.post(P("/apps"), { name: "A" })).body;
  await a.post(P(`/apps/${app.id}/imports`), { url: `${up.url}/openapi.json` });
  const tool = (await a.get(P(`/apps/${app.id}/tools`))).body.items[0];
  const srv = (await a.post(P("/servers"), { app_id: app.id })).body;
  const key = (await a.post(P(`/servers/${srv.id}/keys`), {})).body;
  await a.put(P("/secrets/TOKEN"), { value: "alice-secret-value" });
  ids = { ws, app: app.id, tool: tool.id, srv: srv.id, key: key.id, name: "TOKEN", user: ra.user.id };
});
after(async () => { await w?.stop(); w?.cleanup(); await up?.close(); });

test("another account gets 404 on every workspace-scoped route", async () => {
  const doc = (await b.get("/api/v1/openapi.json")).body;
  const calls = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    if (!path.includes("{ws}")) continue;
    for (const method of Object.keys(item)) {
      const concrete = path.replace(/\{(\w+)\}/g, (_, p) => ids[p]);
      calls.push([method.toUpperCase(), concrete]);
    }
  }
  assert.ok(calls.length >= 30, `only ${calls.length} workspace routes found`);
  for (const [method, path] of calls) {
    const r = await b.call(method, path, { json: method === "GET" || method === "DELETE" ? undefined : { name: "x" } });
    assert.equal(r.status, 404, `${method} ${path} answered ${r.status} ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, "not_found");
  }
  // And the owner still sees everything: nothing was changed by the attempts.
  const apps = await a.get(`/api/v1/workspaces/${ids.ws}/apps`);
  assert.equal(apps.body.items.length, 1);
  const secrets = await a.get(`/api/v1/workspaces/${ids.ws}/secrets`);
  assert.deepEqual(secrets.body.items.map((s) => s.name), ["TOKEN"]);
});

test("a state-changing call without the CSRF token is 403 csrf_failed", async () => {
  const r = await a.call("POST", `/api/v1/workspaces/${ids.ws}/apps`, { json: { name: "nope" }, csrf: false });
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "csrf_failed");
  const wrong = await a.call("POST", `/api/v1/workspaces/${ids.ws}/apps`, { json: { name: "nope" }, csrf: false, headers: { "x-csrf-token": "forged" } });
  assert.equal(wrong.status, 403);
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
  for (const url of ["https://169.254.169.254/latest/meta-data", "http://10.0.0.1/openapi.json", "https://192.168.1.10/x", "file:///etc/passwd", "https://metadata.google.internal/x", "https://[::ffff:10.0.0.1]/x", `${up.url}/redirect-to-metadata`]) {
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
  const r = await a.post(`/api/v1/workspaces/${ids.ws}/members`, { email: "bob@example.com", role: "member" });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const P = (p) => `/api/v1/workspaces/${ids.ws}${p}`;
  assert.equal((await b.get(P("/apps"))).status, 200);
  assert.equal((await b.patch(P(`/apps/${ids.app}/tools/${ids.tool}`), { description: "Curated by a member." })).status, 200);
  for (const [method, path, body] of [
    ["PUT", `/servers/${ids.srv}/credential`, { value: "member-secret" }],
    ["POST", `/servers/${ids.srv}/publish`, undefined],
    ["POST", `/servers/${ids.srv}/verify`, undefined],
    ["POST", `/servers/${ids.srv}/keys`, {}],
    ["PATCH", `/servers/${ids.srv}`, { is_public: true }],
    ["PUT", "/secrets/OTHER", { value: "v" }],
    ["DELETE", `/apps/${ids.app}`, undefined],
    ["DELETE", "", undefined],
    ["POST", "/members", { email: "alice@example.com", role: "admin" }],
  ]) {
    const res = await b.call(method, P(path), { json: body });
    assert.equal(res.status, 403, `${method} ${path}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error.code, "forbidden");
  }
  const srv = await a.get(P(`/servers/${ids.srv}`));
  assert.equal(srv.body.is_public, false, "nothing the member tried took effect");
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

test("signup and login do not enumerate users", async () => {
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
