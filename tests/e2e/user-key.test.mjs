// Issue 16: `user_key` servers through the real runtime (wrangler dev). An end user signs in at
// the server's portal through a fake Entra ID on 127.0.0.1 (authorize, token with rotating
// refresh tokens and an ID token), gets a per-user key, and the official MCP SDK client calls
// with it as `X-API-Key`; the fake API sees that user's own delegated token. Then re-issue,
// revocation, forged/expired/foreign keys, a refresh with rotation, consent revoked at the
// provider ("sign in again"), and a scan of D1 and KV for the tokens in clear.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createHmac, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Client as McpClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";
import { Client, d1, sleep, startWorker, testSecrets } from "./harness.mjs";

const CHROMIUM = process.env.FLOWCP_CHROMIUM ?? "/usr/bin/chromium";
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const CLIENT_ID = "pa-client-id";
const CLIENT_SECRET = "entra-client-secret-" + randomBytes(8).toString("hex");
let w, fake, owner, ws, server, other, secrets;

/** A fake Entra ID (authorize, token) and a fake Power Automate API in one server. */
function startFake() {
  const state = {
    nextUser: "alice",
    expiresIn: 3600,
    issued: [], // every token handed out (the scan looks for them)
    current: new Map(), // user -> { access, refresh }
    revoked: new Set(), // users whose consent was revoked
    tokenRequests: [],
    paRequests: [],
    apiAuth: [],
    down: false,
  };
  const srv = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url, "http://x");
      const body = Buffer.concat(chunks).toString();
      const json = (status, v) => { res.writeHead(status, { "content-type": "application/json" }); res.end(JSON.stringify(v)); };
      const base = `http://127.0.0.1:${srv.address().port}`;
      if (url.pathname === "/openapi.json") {
        return json(200, {
          openapi: "3.0.3", info: { title: "Power Automate (fake)", version: "1" }, servers: [{ url: base }],
          paths: {
            "/environments/{environment}/flows": { get: { operationId: "list_live_flows", summary: "List the flows of an environment",
              parameters: [{ name: "environment", in: "path", required: true, schema: { type: "string" } }],
              responses: { 200: { description: "ok", content: { "application/json": { schema: { type: "object", properties: { value: { type: "array", items: { type: "object" } } } } } } } } } },
          },
        });
      }
      if (url.pathname === "/tenant/oauth2/v2.0/authorize") {
        const back = new URL(url.searchParams.get("redirect_uri"));
        back.searchParams.set("code", `code-${state.nextUser}-${randomBytes(4).toString("hex")}`);
        back.searchParams.set("state", url.searchParams.get("state"));
        state.lastAuthorize = Object.fromEntries(url.searchParams);
        res.writeHead(302, { location: back.toString() });
        return res.end();
      }
      if (url.pathname === "/tenant/oauth2/v2.0/token") {
        const p = Object.fromEntries(new URLSearchParams(body));
        state.tokenRequests.push(p);
        if (p.client_id !== CLIENT_ID || p.client_secret !== CLIENT_SECRET) return json(401, { error: "invalid_client" });
        let user;
        if (p.grant_type === "authorization_code") {
          user = p.code.split("-")[1];
          state.revoked.delete(user);
        } else if (p.grant_type === "refresh_token") {
          user = [...state.current.entries()].find(([, t]) => t.refresh === p.refresh_token)?.[0];
          if (!user || state.revoked.has(user)) return json(400, { error: "invalid_grant", error_description: "AADSTS70008: the refresh token has expired or was revoked" });
        } else return json(400, { error: "unsupported_grant_type" });
        const t = { access: `eyJ0eXAi.at-${user}-${randomBytes(6).toString("hex")}`, refresh: `0.AR-rt-${user}-${randomBytes(6).toString("hex")}` };
        state.current.set(user, t); // Entra rotates: the previous refresh token no longer works here
        state.issued.push(t.access, t.refresh);
        const idToken = [{ alg: "RS256" }, { iss: `${base}/tenant/v2.0`, sub: `sub-${user}`, aud: CLIENT_ID, name: user }, "sig"]
          .map((x, i) => (i < 2 ? Buffer.from(JSON.stringify(x)).toString("base64url") : x)).join(".");
        return json(200, { token_type: "Bearer", access_token: t.access, refresh_token: t.refresh, expires_in: state.expiresIn, id_token: idToken, scope: "https://service.flow.microsoft.com//.default" });
      }
      // The Power Automate management API as the template calls it (api-version fixed by the document).
      const pa = url.pathname.match(/^\/providers\/Microsoft\.ProcessSimple\/environments\/([^/]+)\/flows(?:\/([^/]+)\/runs\/([^/]+)\/actions)?$/);
      if (pa) {
        const auth = req.headers.authorization ?? "";
        state.paRequests.push({ path: url.pathname, query: Object.fromEntries(url.searchParams), auth });
        if (state.down) return json(503, { error: "down" });
        if (url.searchParams.get("api-version") !== "2016-11-01") return json(400, { error: { code: "InvalidApiVersionParameter" } });
        const user = [...state.current.entries()].find(([, t]) => auth === `Bearer ${t.access}`)?.[0];
        if (!user) return json(401, { error: { code: "InvalidAuthenticationToken" } });
        if (pa[2]) return json(200, { value: [{ name: "Send_an_email", properties: { status: url.searchParams.get("$filter") === "status eq 'Failed'" ? "Failed" : "?", error: { code: "ConnectionAuthorizationFailed" } } }] });
        return json(200, { value: [{ name: `flow-of-${user}`, properties: { displayName: "Invoice approvals", state: "Started", environment: pa[1] } }] });
      }
      const m = url.pathname.match(/^\/environments\/([^/]+)\/flows$/);
      if (m) {
        const auth = req.headers.authorization ?? "";
        state.apiAuth.push(auth);
        if (state.down) return json(503, { error: "down" });
        const user = [...state.current.entries()].find(([, t]) => auth === `Bearer ${t.access}`)?.[0];
        if (!user) return json(401, { error: { code: "InvalidAuthenticationToken" } });
        return json(200, { value: [{ name: `flow-of-${user}`, environment: m[1] }] });
      }
      json(404, {});
    });
  });
  const base = () => `http://127.0.0.1:${srv.address().port}`;
  return new Promise((r) => srv.listen(0, "127.0.0.1", () => r({ state, base, close: () => new Promise((c) => srv.close(c)) })));
}

const P = (p) => `/api/v1/workspaces/${ws}${p}`;
const must = (r, status = 200) => { if (r.status !== status) throw new Error(`${r.status} ${JSON.stringify(r.body)}`); return r.body; };

async function publishUserKeyServer(name) {
  const app = must(await owner.post(P("/apps"), { name }), 201);
  must(await owner.post(P(`/apps/${app.id}/imports`), { url: `${fake.base()}/openapi.json` }), 201);
  const srv = must(await owner.post(P("/servers"), { app_id: app.id, name }), 201);
  const base = fake.base();
  must(await owner.patch(P(`/servers/${srv.id}`), { usage_target: "environment", auth_mode: "user_key", auth_config: { authorize_url: `${base}/tenant/oauth2/v2.0/authorize`, token_url: `${base}/tenant/oauth2/v2.0/token`, client_id: CLIENT_ID, scopes: ["https://service.flow.microsoft.com//.default"] } }));
  must(await owner.put(P(`/servers/${srv.id}/credential`), { value: CLIENT_SECRET, origin: base }));
  const v = must(await owner.post(P(`/servers/${srv.id}/verify`)));
  assert.equal(v.state, "verified", JSON.stringify(v));
  must(await owner.post(P(`/servers/${srv.id}/publish`)));
  return must(await owner.get(P(`/servers/${srv.id}`)));
}

before(async () => {
  fake = await startFake();
  secrets = testSecrets();
  w = await startWorker({ vars: secrets });
  owner = new Client(w.url);
  ws = (await owner.signup("user-key-e2e@example.com")).workspace.id;
  server = await publishUserKeyServer("Power Automate as you");
  other = await publishUserKeyServer("Another server");
});
after(async () => { await w?.stop(); w?.cleanup(); await fake?.close(); });

const manual = (url, init = {}) => fetch(url, { redirect: "manual", ...init });

/** The portal's sign-in as a browser does it: FlowCP, the fake Entra, the callback. */
async function portalSignIn(srv, user) {
  fake.state.nextUser = user;
  const start = await manual(`${w.url}/oauth/portal/${srv.id}/sign-in`);
  assert.equal(start.status, 302);
  const toProvider = new URL(start.headers.get("location"));
  assert.equal(toProvider.origin + toProvider.pathname, `${fake.base()}/tenant/oauth2/v2.0/authorize`);
  const scopes = toProvider.searchParams.get("scope").split(" ");
  assert.ok(scopes.includes("openid") && scopes.includes("https://service.flow.microsoft.com//.default"), scopes.join(" "));
  assert.equal(toProvider.searchParams.get("code_challenge_method"), "S256");
  const stateCookie = start.headers.get("set-cookie").split(";")[0];
  const callback = (await manual(toProvider)).headers.get("location");
  assert.ok(callback.startsWith(`${w.url}/oauth/callback/${srv.id}?`), callback);
  assert.equal((await manual(callback)).status, 400, "the callback needs the browser that started the sign-in");
  const back = await manual(callback, { headers: { cookie: stateCookie } });
  assert.equal(back.status, 302, await back.text());
  assert.equal(back.headers.get("location"), `${w.url}/portal/${srv.id}`);
  assert.equal((await manual(callback, { headers: { cookie: stateCookie } })).status, 400, "the state is single use");
  const session = back.headers.getSetCookie().map((c) => c.split(";")[0]).find((c) => c.startsWith("__Host-fcp_portal="));
  assert.ok(session, "the portal session cookie");
  return session;
}

async function portal(srv, session, method, action = "", { origin = w.url } = {}) {
  const headers = { cookie: session };
  if (origin) headers.origin = origin;
  const r = await fetch(`${w.url}/oauth/portal/${srv.id}${action ? `/${action}` : ""}`, { method, headers });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null, headers: r.headers };
}

async function newKey(srv, session) {
  const r = await portal(srv, session, "POST", "key");
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal(r.headers.get("cache-control"), "no-store");
  return r.body.key;
}

/** One raw tools/call with a key in a header. */
async function rawCall(srv, headers, name = "list_live_flows", args = { environment: "Default-1" }) {
  const r = await fetch(srv.mcp_url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: args } }) });
  return { status: r.status, body: await r.json() };
}

async function sdk(srv, key) {
  const transport = new StreamableHTTPClientTransport(new URL(srv.mcp_url), { requestInit: { headers: { "x-api-key": key } } });
  const client = new McpClient({ name: "user-key-e2e", version: "1" });
  await client.connect(transport);
  return client;
}

/** Signs a key as FlowCP would (the test knows the deployment's secret): forged claims. */
function mint(claims, { kid = "t1", alg = "HS256", secret = secrets.FLOWCP_TOKEN_SECRET.split(":")[1] } = {}) {
  const enc = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const input = `${enc({ alg, typ: "JWT", kid })}.${enc(claims)}`;
  return `${input}.${createHmac("sha256", Buffer.from(secret, "hex")).update(input).digest("base64url")}`;
}
const claimsOf = (key) => JSON.parse(Buffer.from(key.split(".")[1], "base64url").toString());

let aliceSession, aliceKey;

test("an end user signs in at the portal, gets a key, and the SDK client calls as them with X-API-Key", async () => {
  assert.ok(server.portal_url.endsWith(`/portal/${server.id}`), "the owner's view names the portal");
  assert.deepEqual(Object.keys(server.client_config.cursor.mcpServers[Object.keys(server.client_config.cursor.mcpServers)[0]].headers), ["X-API-Key"]);
  // Before signing in: no key, and the server refuses without one.
  const none = await rawCall(server, {});
  assert.equal(none.status, 401);
  assert.match(none.body.error.message, new RegExp(`/portal/${server.id}`));
  aliceSession = await portalSignIn(server, "alice");
  const status = await portal(server, aliceSession, "GET");
  assert.equal(status.status, 200);
  assert.equal(status.body.signed_in, true);
  assert.equal(status.body.user.status, "active");
  assert.equal(status.body.server.key_header, "X-API-Key");
  assert.equal(fake.state.tokenRequests.at(-1).client_secret, CLIENT_SECRET, "the owner's secret went to the token endpoint");
  // Changes need FlowCP's own origin.
  assert.equal((await portal(server, aliceSession, "POST", "key", { origin: "https://evil.example" })).status, 403);
  assert.equal((await portal(server, aliceSession, "POST", "key", { origin: null })).status, 403);
  aliceKey = await newKey(server, aliceSession);
  const c = claimsOf(aliceKey);
  assert.equal(c.aud, server.mcp_url);
  assert.equal(c.exp - c.iat, 30 * 86400, "30 days");

  const client = await sdk(server, aliceKey);
  const tools = (await client.listTools()).tools.map((t) => t.name);
  assert.ok(tools.includes("list_live_flows"), tools.join(","));
  const r = await client.callTool({ name: "list_live_flows", arguments: { environment: "Default-1" } });
  assert.ok(!r.isError, JSON.stringify(r));
  assert.equal(r.structuredContent.value[0].name, "flow-of-alice");
  assert.equal(fake.state.apiAuth.at(-1), `Bearer ${fake.state.current.get("alice").access}`, "the API got alice's delegated token");
  await client.close();
  // Also as a Bearer, for clients that only send that.
  const bearer = await rawCall(server, { authorization: `Bearer ${aliceKey}` });
  assert.equal(bearer.status, 200);
  assert.equal(bearer.body.result.structuredContent.value[0].name, "flow-of-alice");

  // The call is audited under the user's hash, with latency and bytes.
  let rows = [];
  for (let i = 0; i < 40 && rows.length < 2; i++) {
    await sleep(100);
    rows = must(await owner.get(P(`/audit?server=${server.id}&limit=50`))).items;
  }
  const row = rows.find((e) => e.tool_name === "list_live_flows");
  assert.ok(row, JSON.stringify(rows));
  assert.equal(row.connection_hash, status.body.user.user_hash);
  assert.equal(row.upstream_status, 200);
  assert.ok(row.response_bytes > 0 && row.latency_ms >= 0, JSON.stringify(row));
  assert.equal(row.target, "Default-1", "the usage row names the environment the call was for");
  // The user sees their own usage; the owner sees it per user (hashed).
  const mine = await portal(server, aliceSession, "GET", "usage");
  assert.equal(mine.status, 200);
  assert.ok(mine.body.calls_30d >= 2 && mine.body.calls.every((c) => c.connection_hash === status.body.user.user_hash), JSON.stringify(mine.body));
  assert.equal(mine.body.calls[0].target, "Default-1");
  const users = must(await owner.get(P(`/servers/${server.id}/key-users`))).items;
  assert.ok(users.find((u) => u.user_hash === status.body.user.user_hash).calls_30d >= 2, JSON.stringify(users));
});

test("a second user is kept apart, and forged, expired and foreign keys are refused", async () => {
  const bobSession = await portalSignIn(server, "bob");
  const bobKey = await newKey(server, bobSession);
  const r = await rawCall(server, { "x-api-key": bobKey });
  assert.equal(r.body.result.structuredContent.value[0].name, "flow-of-bob");
  assert.notEqual(claimsOf(bobKey).sub, claimsOf(aliceKey).sub);
  // Alice's key still works beside Bob's.
  assert.equal((await rawCall(server, { "x-api-key": aliceKey })).body.result.structuredContent.value[0].name, "flow-of-alice");

  const c = claimsOf(aliceKey);
  const now = Math.floor(Date.now() / 1000);
  const refused = [
    ["a tampered signature", aliceKey.slice(0, -4) + (aliceKey.endsWith("AAAA") ? "BBBB" : "AAAA")],
    ["claims swapped under the same signature", `${aliceKey.split(".")[0]}.${Buffer.from(JSON.stringify({ ...c, sub: claimsOf(bobKey).sub })).toString("base64url")}.${aliceKey.split(".")[2]}`],
    ["an expired key", mint({ ...c, iat: now - 40 * 86400, exp: now - 10 * 86400 })],
    ["a key for another server", mint({ ...c, aud: other.mcp_url })],
    ["a key of another issuer", mint({ ...c, iss: "https://evil.example" })],
    ["alg none", `${Buffer.from(JSON.stringify({ alg: "none", kid: "t1" })).toString("base64url")}.${aliceKey.split(".")[1]}.`],
    ["an unknown key id", mint(c, { kid: "t9" })],
    ["another secret", mint(c, { secret: randomBytes(32).toString("hex") })],
    ["a stale epoch", mint({ ...c, epoch: c.epoch - 1 })],
    ["garbage", "not-a-key"],
  ];
  for (const [why, key] of refused) {
    const x = await rawCall(server, { "x-api-key": key });
    assert.equal(x.status, 401, `${why}: ${JSON.stringify(x.body)}`);
  }
  // A genuine key of this server is refused by another one.
  assert.equal((await rawCall(other, { "x-api-key": aliceKey })).status, 401);
  // Positive control: a key minted with the right claims works (the refusals above are for
  // their one difference).
  assert.equal((await rawCall(server, { "x-api-key": mint(c) })).status, 200);
});

test("re-issuing ends the old key; revoking ends every key and deletes the tokens", async () => {
  const old = aliceKey;
  aliceKey = await newKey(server, aliceSession);
  assert.equal((await rawCall(server, { "x-api-key": old })).status, 401, "the old key");
  assert.equal((await rawCall(server, { "x-api-key": aliceKey })).status, 200, "the new key");

  const rv = await portal(server, aliceSession, "POST", "revoke");
  assert.equal(rv.status, 200);
  assert.match(rv.headers.get("set-cookie"), /Max-Age=0/);
  const after = await rawCall(server, { "x-api-key": aliceKey });
  assert.equal(after.status, 401, JSON.stringify(after.body));
  // Signed out by the revocation.
  assert.equal((await portal(server, aliceSession, "POST", "key")).status, 401);

  // Signing in again does not revive the revoked key; a new one works.
  aliceSession = await portalSignIn(server, "alice");
  assert.equal((await rawCall(server, { "x-api-key": aliceKey })).status, 401);
  aliceKey = await newKey(server, aliceSession);
  assert.equal((await rawCall(server, { "x-api-key": aliceKey })).body.result.structuredContent.value[0].name, "flow-of-alice");
});

test("skills: list_skills and tool_search over the owner's bundles, never audited; `instead` lists only them", async () => {
  const auditCount = async () => must(await owner.get(P(`/audit?server=${server.id}&limit=200`))).items.length;
  const bundles = [{ name: "discover", description: "Find flows", tools: ["list_live_flows"] }];
  // Bad skills are refused with a reason, and nothing is changed.
  const bad = await owner.patch(P(`/servers/${server.id}`), { skills: { mode: "alongside", bundles: [{ name: "Bad Name", description: "", tools: ["list_live_flows"] }] } });
  assert.equal(bad.status, 400, JSON.stringify(bad.body));
  assert.equal((await owner.patch(P(`/servers/${server.id}`), { skills: { mode: "alongside", bundles: [{ name: "x", description: "", tools: ["no_such_tool"] }] } })).status, 200);
  must(await owner.post(P(`/servers/${server.id}/verify`)));
  const unknown = await owner.post(P(`/servers/${server.id}/publish`));
  assert.equal(unknown.status, 400, "a skill naming a tool that is not enabled cannot be published");
  assert.match(unknown.body.error.message, /no_such_tool/);
  must(await owner.patch(P(`/servers/${server.id}`), { skills: { mode: "alongside", bundles } }));
  must(await owner.post(P(`/servers/${server.id}/verify`)));
  must(await owner.post(P(`/servers/${server.id}/publish`)));
  await sleep(1100); // an isolate trusts the live-version pointer it read for 1 s

  const client = await sdk(server, aliceKey); // republishing with the same provider keeps every key
  const names = (await client.listTools()).tools.map((t) => t.name);
  assert.deepEqual(names, ["list_skills", "tool_search", "list_live_flows"]);
  await sleep(300);
  const before = await auditCount();
  const skills = await client.callTool({ name: "list_skills", arguments: {} });
  assert.deepEqual(skills.structuredContent.skills, bundles);
  const bySkill = await client.callTool({ name: "tool_search", arguments: { query: "skill:discover" } });
  assert.equal(bySkill.structuredContent.tools[0].name, "list_live_flows");
  assert.equal(bySkill.structuredContent.tools[0].inputSchema.required[0], "environment");
  const picked = await client.callTool({ name: "tool_search", arguments: { query: "select:list_live_flows,nope" } });
  assert.deepEqual(picked.structuredContent.missing, ["nope"]);
  const words = await client.callTool({ name: "tool_search", arguments: { query: "flows" } });
  assert.equal(words.structuredContent.tools[0].name, "list_live_flows");
  const wrong = await client.callTool({ name: "tool_search", arguments: { query: "skill:nope" } });
  assert.equal(wrong.isError, true);
  await sleep(500);
  assert.equal(await auditCount(), before, "meta-tool calls write no audit row (they never count)");
  await client.close();

  // `instead`: only the meta-tools are listed; the tools are still called by name.
  must(await owner.patch(P(`/servers/${server.id}`), { skills: { mode: "instead", bundles: null } }));
  must(await owner.post(P(`/servers/${server.id}/verify`)));
  must(await owner.post(P(`/servers/${server.id}/publish`)));
  await sleep(1100);
  const lean = await sdk(server, aliceKey);
  assert.deepEqual((await lean.listTools()).tools.map((t) => t.name), ["list_skills", "tool_search"]);
  const byTag = (await lean.callTool({ name: "list_skills", arguments: {} })).structuredContent.skills;
  assert.ok(byTag.length >= 1 && byTag.every((b) => /^[a-z0-9-]+$/.test(b.name)), JSON.stringify(byTag));
  const called = await lean.callTool({ name: "list_live_flows", arguments: { environment: "Default-1" } });
  assert.equal(called.structuredContent.value[0].name, "flow-of-alice");
  await lean.close();
  must(await owner.patch(P(`/servers/${server.id}`), { skills: null }));
  must(await owner.post(P(`/servers/${server.id}/verify`)));
  must(await owner.post(P(`/servers/${server.id}/publish`)));
  await sleep(1100);
});

test("quotas: the call after a caller's monthly quota is refused, and meta-tool calls are not counted", async () => {
  const ops = (body, { token = secrets.FLOWCP_OPERATOR_TOKEN, workspace = ws } = {}) =>
    fetch(`${w.url}/ops/plan?workspace=${workspace}`, { method: "PUT", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) })
      .then(async (r) => ({ status: r.status, body: await r.json() }));
  // The operator sets plans; nobody else can, and bad input changes nothing.
  assert.equal((await ops({ plan: "free" }, { token: "x".repeat(64) })).status, 401);
  assert.equal((await ops({ plan: "gold" })).status, 400);
  assert.equal((await ops({ plan: "free" }, { workspace: "ws_nope" })).status, 404);
  assert.equal(must(await owner.get(P("/plan"))).plan, null, "still unmetered");
  must(await owner.patch(P(`/servers/${server.id}`), { skills: { mode: "alongside", bundles: [{ name: "discover", description: "Find flows", tools: ["list_live_flows"] }] } }));
  must(await owner.post(P(`/servers/${server.id}/verify`)));
  must(await owner.post(P(`/servers/${server.id}/publish`)));
  const set = await ops({ plan: "free", limits: { calls_per_user_month: 2 } });
  assert.equal(set.status, 200, JSON.stringify(set.body));
  assert.deepEqual([set.body.plan, set.body.default, set.body.limits.calls_per_user_month], ["free", false, 2]);
  await sleep(1100);
  // A user who has not called yet: the isolate reads the new plan with their counters.
  const dave = await portalSignIn(server, "dave");
  const client = await sdk(server, await newKey(server, dave));
  const call = () => client.callTool({ name: "list_live_flows", arguments: { environment: "Default-1" } });
  for (let i = 0; i < 3; i++) {
    assert.ok(!(await client.callTool({ name: "list_skills", arguments: {} })).isError);
    assert.ok(!(await client.callTool({ name: "tool_search", arguments: { query: "flows" } })).isError);
  }
  const seen = fake.state.apiAuth.length;
  assert.ok(!(await call()).isError, "first call");
  assert.ok(!(await call()).isError, "second call");
  const over = await call();
  assert.equal(over.isError, true, JSON.stringify(over));
  assert.match(over.content[0].text, /Monthly quota reached: each caller may make 2 calls a month to this server on its free plan/);
  assert.match(over.content[0].text, /resets on \d{4}-\d{2}-01 \(UTC\)/);
  assert.equal(fake.state.apiAuth.length, seen + 2, "the refused call never reached the API");
  await client.close();
  // The counters after the flush: the user's portal and the owner's plan view; each usage row
  // names the plan it was made under.
  let usage;
  for (let i = 0; i < 40; i++) {
    await sleep(100);
    usage = (await portal(server, dave, "GET", "usage")).body;
    if (usage.month_calls >= 2) break;
  }
  assert.deepEqual([usage.month_calls, usage.monthly_limit], [2, 2], JSON.stringify(usage));
  assert.deepEqual(usage.calls.map((c) => [c.outcome, c.plan]), [["denied", "free"], ["ok", "free"], ["ok", "free"]]);
  const plan = must(await owner.get(P("/plan")));
  assert.ok(plan.usage.find((u) => u.server_id === server.id).calls >= 2, JSON.stringify(plan));
  // Back to unmetered; isolates see it within their 10 s cache bound.
  assert.equal((await ops({ plan: null })).body.plan, null);
  must(await owner.patch(P(`/servers/${server.id}`), { skills: null }));
  must(await owner.post(P(`/servers/${server.id}/verify`)));
  must(await owner.post(P(`/servers/${server.id}/publish`)));
  await sleep(10_100);
});

test("the Power Automate template: one click makes the user_key server; a signed-in user's calls reach the API with its fixed api-version", async () => {
  const list = must(await owner.get("/api/v1/templates")).items;
  assert.ok(list.some((t) => t.id === "power-automate" && t.auth_mode === "user_key"), JSON.stringify(list));
  assert.equal((await owner.post(P("/templates/no-such-template"), {})).status, 404);
  const made = must(await owner.post(P("/templates/power-automate"), { tenant: "contoso.onmicrosoft.com" }), 201);
  assert.equal(made.tools, 12);
  const pa = made.server;
  assert.equal(pa.auth_mode, "user_key");
  assert.equal(pa.usage_target, "environmentName");
  assert.deepEqual(pa.skills.bundles.map((b) => b.name), ["discover", "build-flow", "debug-flow", "monitor-flow"]);
  assert.equal(pa.auth_config.authorize_url, "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize", "the Entra preset");
  // Here the provider and the API are fakes on 127.0.0.1: the owner points the server at them.
  const base = fake.base();
  must(await owner.patch(P(`/servers/${pa.id}`), { base_url: base, auth_config: { authorize_url: `${base}/tenant/oauth2/v2.0/authorize`, token_url: `${base}/tenant/oauth2/v2.0/token`, client_id: CLIENT_ID, scopes: ["https://service.flow.microsoft.com//.default"] } }));
  must(await owner.put(P(`/servers/${pa.id}/credential`), { value: CLIENT_SECRET, origin: base }));
  assert.equal(must(await owner.post(P(`/servers/${pa.id}/verify`))).state, "verified");
  must(await owner.post(P(`/servers/${pa.id}/publish`)));
  await sleep(1100);
  const session = await portalSignIn(pa, "erin");
  const client = await sdk(pa, await newKey(pa, session));
  const names = (await client.listTools()).tools.map((t) => t.name);
  assert.deepEqual(names.slice(0, 2), ["list_skills", "tool_search"]);
  assert.ok(names.includes("list_live_flows") && names.includes("get_live_flow_run_error"), names.join(","));
  const skills = (await client.callTool({ name: "list_skills", arguments: {} })).structuredContent.skills;
  assert.ok(skills.find((b) => b.name === "debug-flow").tools.includes("get_live_flow_run_error"));
  const debug = (await client.callTool({ name: "tool_search", arguments: { query: "skill:debug-flow" } })).structuredContent.tools;
  const errorTool = debug.find((t) => t.name === "get_live_flow_run_error");
  assert.ok(errorTool, JSON.stringify(debug.map((t) => t.name)));
  assert.ok(!("api-version" in errorTool.inputSchema.properties) && !("$filter" in errorTool.inputSchema.properties), JSON.stringify(errorTool.inputSchema));
  const flows = await client.callTool({ name: "list_live_flows", arguments: { environmentName: "Default-1" } });
  assert.ok(!flows.isError, JSON.stringify(flows));
  assert.equal(flows.structuredContent.value[0].name, "flow-of-erin");
  let seen = fake.state.paRequests.at(-1);
  assert.equal(seen.path, "/providers/Microsoft.ProcessSimple/environments/Default-1/flows");
  assert.equal(seen.query["api-version"], "2016-11-01");
  assert.equal(seen.auth, `Bearer ${fake.state.current.get("erin").access}`, "erin's own delegated token");
  const failed = await client.callTool({ name: "get_live_flow_run_error", arguments: { environmentName: "Default-1", flowName: "f1", runName: "r1" } });
  assert.equal(failed.structuredContent.value[0].properties.status, "Failed", JSON.stringify(failed));
  seen = fake.state.paRequests.at(-1);
  assert.deepEqual([seen.query["api-version"], seen.query["$filter"]], ["2016-11-01", "status eq 'Failed'"]);
  await client.close();
  // The usage row names the environment the call was for.
  let rows = [];
  for (let i = 0; i < 40 && !rows.some((r) => r.tool_name === "list_live_flows"); i++) {
    await sleep(100);
    rows = must(await owner.get(P(`/audit?server=${pa.id}&limit=50`))).items;
  }
  assert.equal(rows.find((r) => r.tool_name === "list_live_flows").target, "Default-1");

  // Store tools (team plan): list_live_flows is synced; its store tool answers from the cache,
  // with its age, after the API has gone down.
  const ops = (body) => fetch(`${w.url}/ops/plan?workspace=${ws}`, { method: "PUT", headers: { authorization: `Bearer ${secrets.FLOWCP_OPERATOR_TOKEN}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  assert.equal((await ops({ plan: "pro" })).status, 200);
  must(await owner.patch(P(`/servers/${pa.id}`), { store_tools: ["list_live_flows"] }));
  must(await owner.post(P(`/servers/${pa.id}/verify`)));
  const refused = await owner.post(P(`/servers/${pa.id}/publish`));
  assert.equal(refused.status, 403, JSON.stringify(refused.body));
  assert.match(refused.body.error.message, /team plan/);
  assert.equal((await ops({ plan: "team" })).status, 200);
  must(await owner.post(P(`/servers/${pa.id}/publish`)));
  await sleep(1100);
  const again = await sdk(pa, await newKey(pa, session));
  assert.ok((await again.listTools()).tools.some((t) => t.name === "list_store_flows"));
  const before = await again.callTool({ name: "list_store_flows", arguments: { environmentName: "Default-1" } });
  assert.equal(before.isError, true, "nothing stored yet");
  assert.ok(!(await again.callTool({ name: "list_live_flows", arguments: { environmentName: "Default-1" } })).isError);
  fake.state.down = true;
  try {
    const live = await again.callTool({ name: "list_live_flows", arguments: { environmentName: "Default-1" } });
    assert.equal(live.isError, true, "the API is down");
    await sleep(1100);
    const stored = await again.callTool({ name: "list_store_flows", arguments: { environmentName: "Default-1" } });
    assert.ok(!stored.isError, JSON.stringify(stored));
    assert.equal(stored.structuredContent.value.value[0].name, "flow-of-erin");
    assert.ok(stored.structuredContent.age_seconds >= 1, JSON.stringify(stored.structuredContent));
    assert.match(stored.structuredContent.fetched_at, /^\d{4}-\d{2}-\d{2}T/);
  } finally {
    fake.state.down = false;
  }
  await again.close();
  assert.equal((await ops({ plan: null })).status, 200);
  await sleep(10_100); // isolates see the plan change within 10 s
});

test("an expired access token is refreshed once with rotation; consent revoked at the provider asks the user to sign in again", async () => {
  // Tokens that expire in 61 s are due for refresh (the margin is 60 s) after one second.
  fake.state.expiresIn = 61;
  aliceSession = await portalSignIn(server, "alice");
  aliceKey = await newKey(server, aliceSession);
  const before = fake.state.current.get("alice");
  await sleep(1500);
  const refreshesBefore = fake.state.tokenRequests.filter((p) => p.grant_type === "refresh_token").length;
  // Concurrent calls: one refresh (single flight), every call served.
  const calls = await Promise.all([1, 2, 3, 4].map(() => rawCall(server, { "x-api-key": aliceKey })));
  for (const r of calls) assert.equal(r.body.result?.structuredContent?.value?.[0]?.name, "flow-of-alice", JSON.stringify(r.body));
  const refreshes = fake.state.tokenRequests.filter((p) => p.grant_type === "refresh_token");
  assert.equal(refreshes.length - refreshesBefore, 1, "one refresh for concurrent calls");
  assert.equal(refreshes.at(-1).refresh_token, before.refresh, "the refresh used the stored refresh token");
  assert.notEqual(fake.state.current.get("alice").access, before.access, "a new access token");

  // Next refresh uses the rotated refresh token (the old one would be invalid_grant here).
  await sleep(1500);
  const rotated = fake.state.current.get("alice").refresh;
  assert.equal((await rawCall(server, { "x-api-key": aliceKey })).status, 200);
  assert.equal(fake.state.tokenRequests.filter((p) => p.grant_type === "refresh_token").at(-1).refresh_token, rotated);

  // Consent revoked at Microsoft: the refresh gets invalid_grant and the user is told to sign in again.
  fake.state.revoked.add("alice");
  await sleep(1500);
  const r = await rawCall(server, { "x-api-key": aliceKey });
  assert.equal(r.status, 200);
  assert.equal(r.body.result.isError, true, JSON.stringify(r.body));
  assert.match(r.body.result.content[0].text, /sign in again/i);
  assert.match(r.body.result.content[0].text, new RegExp(`/portal/${server.id}`));
  assert.equal((await portal(server, aliceSession, "GET")).body.user.status, "disconnected");
  // Listing still works; after signing in again the same key works.
  assert.equal((await fetch(server.mcp_url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "x-api-key": aliceKey }, body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }) })).status, 200);
  fake.state.expiresIn = 3600;
  aliceSession = await portalSignIn(server, "alice");
  assert.equal((await rawCall(server, { "x-api-key": aliceKey })).body.result.structuredContent.value[0].name, "flow-of-alice");
});

test("the user exports and deletes their data; the portal answers only for user_key servers", async () => {
  const exported = await portal(server, aliceSession, "GET", "export");
  assert.equal(exported.status, 200);
  assert.equal(exported.body.holds_refresh_token, true);
  assert.ok(exported.body.usage.length >= 1, "the export holds the user's usage");
  const hash = exported.body.user_hash;
  const auditOf = async () => must(await owner.get(P(`/audit?server=${server.id}&limit=200`))).items.filter((e) => e.connection_hash === hash).length;
  assert.ok((await auditOf()) >= 1);
  assert.ok(!JSON.stringify(exported.body).includes(fake.state.current.get("alice").refresh), "no token in the export");
  assert.equal((await portal(server, aliceSession, "DELETE", "me")).status, 200);
  assert.equal(await auditOf(), 0, "deleting the user's data deletes their usage rows");
  assert.equal((await rawCall(server, { "x-api-key": aliceKey })).status, 401, "the deleted user's key");
  assert.equal((await portal(server, aliceSession, "GET")).body.signed_in, false);
  assert.equal((await fetch(`${w.url}/oauth/portal/srv_nope`)).status, 404);
  assert.equal((await fetch(`${w.url}/oauth/portal/..%2Fapi`)).status, 404);
});

test("in a real browser, the portal signs the user in, shows the key once, and revokes", async () => {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("dialog", (d) => void d.accept());
    const axe = async (what) => {
      await page.addScriptTag({ content: AXE });
      const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
      const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
      assert.deepEqual(bad.map((v) => `${v.id}: ${v.help}`), [], what);
    };
    fake.state.nextUser = "carol";
    await page.goto(`${w.url}/portal/${server.id}`);
    await page.getByRole("heading", { name: server.name }).waitFor();
    await axe("portal, signed out");
    await page.getByRole("link", { name: "Sign in to get your key" }).click();
    await page.waitForURL(`${w.url}/portal/${server.id}`);
    await page.getByRole("button", { name: "Get my key" }).click();
    const key = await page.getByLabel("Your key").inputValue();
    assert.equal(claimsOf(key).aud, server.mcp_url);
    await axe("portal, key shown");
    const r = await rawCall(server, { "x-api-key": key });
    assert.equal(r.body.result.structuredContent.value[0].name, "flow-of-carol");
    // Reloading does not show the key again.
    await page.reload();
    await page.getByRole("button", { name: "Issue a new key" }).waitFor();
    assert.equal(await page.getByLabel("Your key").count(), 0);
    await page.getByRole("button", { name: "Revoke access" }).click();
    await page.getByRole("status").filter({ hasText: "Revoked" }).waitFor();
    assert.equal((await rawCall(server, { "x-api-key": key })).status, 401);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test("after unpublishing, a user can still revoke, export and delete; publishing off user_key revokes every user", async () => {
  const session = await portalSignIn(other, "dave");
  const key = await newKey(other, session);
  assert.equal((await rawCall(other, { "x-api-key": key })).status, 200);
  must(await owner.post(P(`/servers/${other.id}/unpublish`)));
  const st = await portal(other, session, "GET");
  assert.equal(st.status, 200);
  assert.equal(st.body.server.published, false);
  assert.equal(st.body.user.status, "active");
  assert.equal((await portal(other, session, "GET", "export")).status, 200);
  assert.equal((await portal(other, session, "POST", "key")).status, 404, "no new key for a server that is not offered");
  assert.equal((await fetch(`${w.url}/oauth/portal/${other.id}`)).status, 404, "a signed-out visitor learns nothing more");
  // The owner publishes it again with another mode: the stored tokens go, every key ends.
  must(await owner.patch(P(`/servers/${other.id}`), { auth_mode: "none", auth_config: {} }));
  must(await owner.post(P(`/servers/${other.id}/verify`)));
  must(await owner.post(P(`/servers/${other.id}/publish`)));
  const users = must(await owner.get(P(`/servers/${other.id}/key-users`))).items;
  assert.deepEqual(users.map((u) => u.status), ["revoked"]);
  assert.equal((await portal(other, session, "DELETE", "me")).status, 200, "delete still works");
  assert.deepEqual(must(await owner.get(P(`/servers/${other.id}/key-users`))).items, []);
});

test("sign-ins are rate limited per client address", async () => {
  let limited = null;
  for (let i = 0; i < 70 && !limited; i++) {
    const r = await manual(`${w.url}/oauth/portal/${server.id}/sign-in`);
    if (r.status === 429) limited = r;
    else assert.equal(r.status, 302);
  }
  assert.ok(limited, "the 61st sign-in within a minute is refused");
  assert.ok(Number(limited.headers.get("retry-after")) > 0);
});

test("no upstream token is stored in clear in D1 or KV", async () => {
  assert.ok(fake.state.issued.length >= 8);
  await w.stop();
  const rows = d1(w.stateDir, "SELECT * FROM key_users");
  assert.ok(rows.some((r) => r.refresh_sealed), "a sealed refresh token is stored");
  const files = [];
  const walk = (d) => { for (const f of readdirSync(d)) { const p = join(d, f); if (statSync(p).isDirectory()) walk(p); else files.push(p); } };
  walk(w.stateDir);
  const haystack = files.map((f) => readFileSync(f).toString("latin1")).join("\n");
  for (const t of fake.state.issued) {
    assert.ok(!haystack.includes(t), `a token in clear in the local D1 or KV: ${t.slice(0, 12)}…`);
    assert.ok(!haystack.includes(t.split("-").at(-1)), "no part of a token either");
  }
  assert.ok(!haystack.includes(CLIENT_SECRET), "the client secret only sealed");
  w.cleanup();
  w = null;
});
