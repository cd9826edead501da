// Accounts end to end, each with its effect: log out (the old cookie and CSRF token are dead),
// change password (wrong current password, other sessions revoked, the current one kept),
// list and create workspaces, delete the account (wrong password; a sole owner with a published
// server, whose MCP endpoint goes away), the sign-up throttle per client address — and no
// password, session cookie, CSRF token or access key in the worker log.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client, inviteAndAccept, sleep, startWorker, testSecrets } from "./harness.mjs";
import { startFakeUpstream } from "./fake-upstream.mjs";

const secrets = testSecrets();
const rand = () => Math.random().toString(36).slice(2);
let w, up;
/** Every password, session cookie value, CSRF token and access key this file used. */
const sensitive = new Set();

/** A client that records its cookies and CSRF tokens for the log check at the end. */
function client() {
  const c = new Client(w.url);
  const orig = c.call.bind(c);
  c.call = async (...args) => {
    const r = await orig(...args);
    if (c.cookie) sensitive.add(c.cookie.slice(c.cookie.indexOf("=") + 1));
    if (c.csrf) sensitive.add(c.csrf);
    return r;
  };
  return c;
}

function password(label) {
  const p = `${label} password ${rand()}`;
  sensitive.add(p);
  return p;
}

async function login(email, pw) {
  const c = client();
  const r = await c.post("/api/v1/auth/login", { email, password: pw });
  return { c, r };
}

/** A client that carries someone's cookie and CSRF token by hand. */
function withSession(cookie, csrf) {
  const c = client();
  c.cookie = cookie;
  c.csrf = csrf;
  return c;
}

before(async () => {
  up = await startFakeUpstream();
  w = await startWorker({ vars: secrets });
});
after(async () => { await w?.stop(); w?.cleanup(); await up?.close(); });

test("F1: a squatter of a colleague's address stays out; the mailbox owner resets the password and joins by the emailed invitation", async () => {
  const owner = client();
  const ws = (await owner.signup("owner-f1@victim.example", password("owner-f1"), "Victim")).workspace.id;
  const squatter = client();
  const squatterPw = password("squatter");
  const signed = await squatter.signup("alice-f1@victim.example", squatterPw, "Squat", { verify: false });
  assert.equal(signed.user.email_verified, false);
  let r = await owner.post(`/api/v1/workspaces/${ws}/invitations`, { email: "alice-f1@victim.example", role: "admin" });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const unknown = await owner.post(`/api/v1/workspaces/${ws}/invitations`, { email: "nobody-f1@victim.example", role: "admin" });
  assert.deepEqual(Object.keys(unknown.body).sort(), Object.keys(r.body).sort(), "the same answer for an address without an account");
  assert.equal((await squatter.get(`/api/v1/workspaces/${ws}`)).status, 404);
  assert.ok(!(await squatter.get("/api/v1/me")).body.workspaces.some((x) => x.id === ws));
  const invite = await squatter.linkToken("alice-f1@victim.example", "/invitations/accept");
  r = await squatter.post("/api/v1/invitations/accept", { token: invite });
  assert.equal(r.status, 403, "an unverified account cannot accept even a forwarded link");
  assert.equal(r.body.error.code, "email_unverified");

  // The real Alice reads her mailbox (the local outbox): reset, which ends the squatter's session.
  const alice = client();
  assert.equal((await alice.post("/api/v1/auth/password-reset", { email: "alice-f1@victim.example" })).status, 202);
  const reset = await alice.linkToken("alice-f1@victim.example", "/reset-password");
  const alicePw = password("alice");
  r = await alice.post("/api/v1/auth/password-reset/confirm", { token: reset, new_password: alicePw });
  assert.equal(r.status, 204, JSON.stringify(r.body));
  assert.equal((await squatter.get("/api/v1/me")).status, 401, "the squatter's session ended");
  assert.equal((await login("alice-f1@victim.example", squatterPw)).r.status, 401);
  assert.equal((await alice.post("/api/v1/auth/login", { email: "alice-f1@victim.example", password: alicePw })).status, 200);
  r = await alice.post("/api/v1/invitations/accept", { token: invite });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.role, "admin");
  const members = (await owner.get(`/api/v1/workspaces/${ws}/members`)).body.items.map((m) => [m.email, m.role]);
  assert.deepEqual(members.sort(), [["alice-f1@victim.example", "admin"], ["owner-f1@victim.example", "owner"]]);
});

test("log out: 204, the cookie is cleared, and the old cookie and CSRF token are dead", async () => {
  const pw = password("logout");
  const c = client();
  const signup = await c.signup("logout@example.com", pw, "Logout WS");
  const oldCookie = c.cookie;
  const oldCsrf = c.csrf;
  assert.ok(oldCookie && oldCsrf);
  assert.equal((await c.get("/api/v1/me")).status, 200);
  // Log out is state-changing: without the CSRF token it is refused and the session lives on.
  let r = await c.post("/api/v1/auth/logout", undefined, { csrf: false });
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "csrf_failed");
  assert.equal((await c.get("/api/v1/me")).status, 200);

  r = await c.post("/api/v1/auth/logout");
  assert.equal(r.status, 204);
  const setCookie = r.headers.getSetCookie();
  assert.equal(setCookie.length, 1, JSON.stringify(setCookie));
  assert.match(setCookie[0], /^__Host-flowcp_session=;/);
  assert.match(setCookie[0], /; Max-Age=0;/);
  assert.equal(c.cookie, null, "the client dropped the cleared cookie");

  const old = withSession(oldCookie, oldCsrf);
  r = await old.get("/api/v1/me");
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, "unauthenticated");
  r = await old.post("/api/v1/workspaces", { name: "After logout" });
  assert.equal(r.status, 401, "the old cookie with the old CSRF token");
  assert.equal(r.body.error.code, "unauthenticated");
  r = await old.post("/api/v1/auth/logout");
  assert.equal(r.status, 401);

  // Nothing was created by the dead session; logging in again works and starts a new session.
  const again = await login("logout@example.com", pw);
  assert.equal(again.r.status, 200);
  assert.notEqual(again.c.cookie, oldCookie);
  const list = await again.c.get("/api/v1/workspaces");
  assert.deepEqual(list.body.items.map((x) => x.id), [signup.workspace.id]);
});

test("change password: a wrong current password is 403 and changes nothing; a right one revokes the other sessions only", async () => {
  const email = "password@example.com";
  const pw1 = password("old");
  const pw2 = password("new");
  const c = client();
  await c.signup(email, pw1, "Password WS");
  const other = await login(email, pw1);
  assert.equal(other.r.status, 200);
  assert.equal((await other.c.get("/api/v1/me")).status, 200);

  let r = await c.post("/api/v1/me/password", { current_password: "not the password at all", new_password: pw2 });
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "wrong_password");
  r = await c.post("/api/v1/me/password", { current_password: pw1, new_password: "short" });
  assert.equal(r.status, 422);
  assert.equal(r.body.error.code, "weak_password");
  r = await c.post("/api/v1/me/password", { current_password: pw1, new_password: pw2 }, { csrf: false });
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "csrf_failed");
  // None of these took effect: the old password logs in, the new one does not, sessions live.
  assert.equal((await login(email, pw1)).r.status, 200, "the old password still logs in");
  assert.equal((await login(email, pw2)).r.status, 401, "the new password was set anyway");
  assert.equal((await other.c.get("/api/v1/me")).status, 200);

  const oldCookie = c.cookie;
  r = await c.post("/api/v1/me/password", { current_password: pw1, new_password: pw2 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  // This session is rotated: the old cookie is dead, the client holds the new one.
  assert.notEqual(c.cookie, oldCookie);
  const stale = await fetch(`${w.url}/api/v1/me`, { headers: { cookie: oldCookie } });
  assert.equal(stale.status, 401, "the old cookie of this session ends too");
  // The other session is revoked...
  r = await other.c.get("/api/v1/me");
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, "unauthenticated");
  // ...the new one works, reads and writes (with the CSRF token the answer carried)...
  r = await c.get("/api/v1/me");
  assert.equal(r.status, 200);
  assert.equal(r.body.user.email, email);
  r = await c.post("/api/v1/workspaces", { name: "After the change" });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  // ...the old password no longer logs in, the new one does.
  r = (await login(email, pw1)).r;
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, "invalid_credentials");
  const fresh = await login(email, pw2);
  assert.equal(fresh.r.status, 200);
  assert.equal((await fresh.c.get("/api/v1/me")).body.user.email, email);
});

test("workspaces: list shows the user's, create adds an owned one that works; bad names and missing CSRF add nothing", async () => {
  const c = client();
  const first = (await c.signup("workspaces@example.com", password("ws"), "First")).workspace;
  let r = await c.get("/api/v1/workspaces");
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.items.map((x) => [x.id, x.name, x.role]), [[first.id, "First", "owner"]]);

  r = await c.post("/api/v1/workspaces", { name: "  Second  " });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const second = r.body;
  assert.match(second.id, /^ws_/);
  assert.equal(second.name, "Second", "the name is trimmed");
  assert.equal(second.role, "owner");
  r = await c.get("/api/v1/workspaces");
  assert.deepEqual(r.body.items.map((x) => [x.id, x.role]).sort(), [[first.id, "owner"], [second.id, "owner"]].sort());
  r = await c.get(`/api/v1/workspaces/${second.id}`);
  assert.equal(r.status, 200);
  assert.equal(r.body.name, "Second");
  r = await c.get(`/api/v1/workspaces/${second.id}/members`);
  assert.deepEqual(r.body.items.map((m) => [m.email, m.role]), [["workspaces@example.com", "owner"]]);
  r = await c.post(`/api/v1/workspaces/${second.id}/apps`, { name: "In the second" });
  assert.equal(r.status, 201, "the new workspace is usable");
  assert.equal((await c.get(`/api/v1/workspaces/${first.id}/apps`)).body.items.length, 0, "and separate from the first");
  assert.deepEqual((await c.get("/api/v1/me")).body.workspaces.map((x) => x.id).sort(), [first.id, second.id].sort());

  for (const [body, code] of [[{ name: "" }, "invalid_name"], [{ name: "x".repeat(101) }, "invalid_name"], [{ name: "a\u0000b" }, "invalid_name"]]) {
    r = await c.post("/api/v1/workspaces", body);
    assert.equal(r.status, 422, JSON.stringify(body));
    assert.equal(r.body.error.code, code);
  }
  r = await c.post("/api/v1/workspaces", { name: "Third", extra: 1 });
  assert.equal(r.status, 400);
  r = await c.post("/api/v1/workspaces", { name: "Third" }, { csrf: false });
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "csrf_failed");
  assert.equal((await c.get("/api/v1/workspaces")).body.items.length, 2, "a refused create added a workspace");
  // Another account sees none of them.
  const stranger = client();
  await stranger.signup("stranger@example.com", password("stranger"), "Elsewhere");
  assert.equal((await stranger.get("/api/v1/workspaces")).body.items.length, 1);
  assert.equal((await stranger.get(`/api/v1/workspaces/${second.id}`)).status, 404);
});

test("delete the account with a wrong password: 403 wrong_password and nothing is deleted", async () => {
  const pw = password("keep");
  const c = client();
  const ws = (await c.signup("keeper@example.com", pw, "Kept")).workspace;
  let r = await c.del("/api/v1/me", { password: "not my password at all" });
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "wrong_password");
  assert.deepEqual(r.headers.getSetCookie(), [], "a refused deletion does not clear the cookie");
  r = await c.del("/api/v1/me", {});
  assert.equal(r.status, 400, "no password at all");
  r = await c.del("/api/v1/me", { password: pw }, { csrf: false });
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "csrf_failed");
  r = await c.get("/api/v1/me");
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.workspaces.map((x) => x.id), [ws.id]);
  assert.equal((await c.get(`/api/v1/workspaces/${ws.id}`)).status, 200);
  assert.equal((await login("keeper@example.com", pw)).r.status, 200);
});

test("delete the account of a sole owner: the published server's /mcp answers 404 for its key, and the session is 401", async () => {
  const pw = password("leaver");
  const c = client();
  const ws = (await c.signup("leaver@example.com", pw, "Leaving")).workspace.id;
  const P = (p) => `/api/v1/workspaces/${ws}${p}`;
  // A member of the leaver's workspace, and a workspace of someone else where the leaver is a member.
  const member = client();
  const memberWs = (await member.signup("stays@example.com", password("stays"), "Stays")).workspace.id;
  await inviteAndAccept(c, ws, member, "stays@example.com");
  await inviteAndAccept(member, memberWs, c, "leaver@example.com");

  const app = (await c.post(P("/apps"), { name: "Widgets" })).body;
  assert.equal((await c.post(P(`/apps/${app.id}/imports`), { url: `${up.url}/openapi.json` })).status, 201);
  const srv = (await c.post(P("/servers"), { app_id: app.id, name: "Leaving MCP" })).body;
  let r = await c.post(P(`/servers/${srv.id}/verify`));
  assert.equal(r.body.state, "verified", JSON.stringify(r.body));
  r = await c.post(P(`/servers/${srv.id}/publish`));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  r = await c.post(P(`/servers/${srv.id}/keys`), { name: "agent" });
  assert.equal(r.status, 201);
  const key = r.body.key;
  sensitive.add(key);
  const callMcp = async () => {
    const res = await fetch(srv.mcp_url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "listWidgets", arguments: {} } }),
    });
    const text = await res.text();
    return { status: res.status, text, json: JSON.parse(text) };
  };
  let m = await callMcp();
  assert.equal(m.status, 200, m.text);
  assert.equal(m.json.result.isError, undefined, m.text);
  assert.deepEqual(m.json.result.structuredContent, { items: [{ id: 1, name: "gear" }] });
  const oldCookie = c.cookie;
  const oldCsrf = c.csrf;

  r = await c.del("/api/v1/me", { password: pw });
  assert.equal(r.status, 204, JSON.stringify(r.body));
  assert.match(r.headers.getSetCookie()[0] ?? "", /^__Host-flowcp_session=; Max-Age=0;/);

  await sleep(1100); // the isolate trusts what it read of the live pointer and the key for 1 s
  const before = up.received.length;
  m = await callMcp();
  assert.equal(m.status, 404, m.text);
  assert.equal(up.received.length, before, "the deleted server still reached the upstream");
  r = await withSession(oldCookie, oldCsrf).get("/api/v1/me");
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, "unauthenticated");
  r = (await login("leaver@example.com", pw)).r;
  assert.equal(r.status, 401, "the account is gone");
  // The sole-owned workspace is gone for its member too; the other workspace stays, without the leaver.
  assert.equal((await member.get(P(""))).status, 404);
  assert.deepEqual((await member.get("/api/v1/me")).body.workspaces.map((x) => x.id), [memberWs]);
  r = await member.get(`/api/v1/workspaces/${memberWs}/members`);
  assert.deepEqual(r.body.items.map((x) => x.email), ["stays@example.com"]);
  // The address can be used again.
  const reborn = client();
  const again = await reborn.signup("leaver@example.com", password("reborn"), "New start");
  assert.notEqual(again.workspace.id, ws);
  assert.equal((await reborn.get(P(""))).status, 404, "a new account with the same email gets nothing of the old one");
});

test("sign-up throttle: duplicate sign-ups from one client address get 429 too_many_attempts after 5", async () => {
  // wrangler dev passes a client-sent CF-Connecting-IP through to the Worker (checked: a second
  // address is not throttled below), so the throttle's address key can be chosen here.
  const taken = "taken@example.com";
  await client().signup(taken, password("taken"), "Taken");
  const pw = password("dup");
  const signup = (email, ip) => client().post("/api/v1/auth/signup", {
    email, password: pw, display_name: "Dup", workspace_name: "Dup", accept_terms: true, accept_privacy: true,
  }, { headers: { "cf-connecting-ip": ip } });
  const statuses = [];
  for (let i = 0; i < 5; i++) {
    const r = await signup(taken, "203.0.113.7");
    statuses.push(r.status);
    assert.equal(r.body.error.code, "email_taken");
  }
  assert.deepEqual(statuses, [409, 409, 409, 409, 409]);
  let r = await signup(taken, "203.0.113.7");
  assert.equal(r.status, 429, JSON.stringify(r.body));
  assert.equal(r.body.error.code, "too_many_attempts");
  // The lock is on the address: a new email from it waits too, and no account is made...
  r = await signup("fresh-from-locked@example.com", "203.0.113.7");
  assert.equal(r.status, 429);
  assert.equal((await login("fresh-from-locked@example.com", pw)).r.status, 401);
  // ...while another address is not affected.
  r = await signup(taken, "203.0.113.8");
  assert.equal(r.status, 409);
  assert.equal(r.body.error.code, "email_taken");
  r = await signup("fresh-from-other@example.com", "203.0.113.8");
  assert.equal(r.status, 201, JSON.stringify(r.body));
});

// Keep this the last test of the file, so every call above is covered.
test("no password, session cookie, CSRF token or access key appears in the worker log (after every other test)", async () => {
  await sleep(300);
  const logs = w.logs();
  assert.ok(sensitive.size >= 20, `only ${sensitive.size} secrets were collected`);
  for (const s of [...sensitive, secrets.FLOWCP_SESSION_SECRET, secrets.FLOWCP_ENCRYPTION_KEYS.slice(3)]) {
    assert.ok(s.length >= 16, `${s.slice(0, 4)}… is too short to search for`);
    assert.ok(!logs.includes(s), `the log leaked ${s.slice(0, 8)}…`);
  }
});
