// Issue 13: per-user OAuth through the real runtime (wrangler dev), driven step by step as a
// browser and an MCP client would: dynamic registration, authorize, FlowCP's consent page and
// its cookie, the upstream provider (a fake on 127.0.0.1 that signs the user in at once), the
// callback, FlowCP's code, the token endpoint, then tools/call with FlowCP's access token, which
// reaches a fake API as the user's own upstream token. Then refresh and revocation.
// The same flow driven by the official SDK client is in oauth-sdk.test.mjs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createHash, randomBytes } from "node:crypto";
import { Client, publishOAuthServer, startWorker, testSecrets, sleep } from "./harness.mjs";

const USER_TOKEN = "gho_" + randomBytes(12).toString("hex");
const USER_REFRESH = "ghr_" + randomBytes(12).toString("hex");
let w, fake, owner, ws, server;

// One fake on 127.0.0.1: the provider (authorize, token) and the API (checks the bearer).
function startFake() {
  const seen = { tokenRequests: [], apiAuth: [] };
  const srv = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url, "http://x");
      const body = Buffer.concat(chunks).toString();
      const json = (status, v) => { res.writeHead(status, { "content-type": "application/json" }); res.end(JSON.stringify(v)); };
      if (url.pathname === "/openapi.json") {
        return json(200, { openapi: "3.0.3", info: { title: "Me", version: "1" }, servers: [{ url: base() }],
          paths: { "/user": { get: { operationId: "getUser", responses: { 200: { description: "ok", content: { "application/json": { schema: { type: "object", properties: { login: { type: "string" } } } } } } } } } } });
      }
      if (url.pathname === "/authorize") {
        // The user signs in and consents at once: back to FlowCP's callback with a code.
        const back = new URL(url.searchParams.get("redirect_uri"));
        back.searchParams.set("code", "upstream-code-" + url.searchParams.get("code_challenge").slice(0, 8));
        back.searchParams.set("state", url.searchParams.get("state"));
        res.writeHead(302, { location: back.toString() });
        return res.end();
      }
      if (url.pathname === "/token") {
        seen.tokenRequests.push(Object.fromEntries(new URLSearchParams(body)));
        return json(200, { access_token: USER_TOKEN, refresh_token: USER_REFRESH, expires_in: 28800, token_type: "bearer" });
      }
      if (url.pathname === "/user") {
        seen.apiAuth.push(req.headers.authorization ?? "");
        if (req.headers.authorization !== `Bearer ${USER_TOKEN}`) return json(401, { message: "Bad credentials" });
        return json(200, { login: "octocat" });
      }
      json(404, {});
    });
  });
  const base = () => `http://127.0.0.1:${srv.address().port}`;
  return new Promise((r) => srv.listen(0, "127.0.0.1", () => r({ seen, base, close: () => new Promise((c) => srv.close(c)) })));
}

const P = (p) => `/api/v1/workspaces/${ws}${p}`;

before(async () => {
  fake = await startFake();
  w = await startWorker({ vars: testSecrets() });
  owner = new Client(w.url);
  ws = (await owner.signup("oauth-e2e@example.com")).workspace.id;
  const { srv } = await publishOAuthServer(owner, ws, fake.base());
  server = srv;
});
after(async () => { await w?.stop(); w?.cleanup(); await fake?.close(); });

const manual = (url, init = {}) => fetch(url, { redirect: "manual", ...init });
const form = (pairs) => ({ method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(pairs).toString() });

async function signIn(clientId, verifier) {
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const q = new URLSearchParams({ response_type: "code", client_id: clientId, redirect_uri: "http://localhost:7777/callback", code_challenge: challenge, code_challenge_method: "S256", state: "client-state", resource: server.mcp_url, scope: `mcp:${server.id}` });
  const page = await manual(`${w.url}/oauth/authorize?${q}`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type"), /text\/html/);
  assert.match(page.headers.get("content-security-policy"), /frame-ancestors 'none'/);
  const html = await page.text();
  assert.match(html, /e2e client/);
  const cookie = page.headers.get("set-cookie").split(";")[0];
  const ticket = html.match(/name="ticket" value="([^"]+)"/)[1];
  const decided = await manual(`${w.url}/oauth/authorize`, { ...form({ ticket, decision: "approve" }), headers: { "content-type": "application/x-www-form-urlencoded", cookie } });
  assert.equal(decided.status, 302);
  const toProvider = decided.headers.get("location");
  assert.ok(toProvider.startsWith(`${fake.base()}/authorize?`), toProvider);
  assert.equal(new URL(toProvider).searchParams.get("resource"), null, "the client's resource is not forwarded");
  // The upstream leg is bound to this browser (a state sent to someone else does not complete).
  const stateCookie = decided.headers.getSetCookie().map((c) => c.split(";")[0]).find((c) => c.startsWith("__Host-fcp_state="));
  assert.ok(stateCookie, "the decision sets the state cookie");
  const fromProvider = await manual(toProvider);
  const callback = fromProvider.headers.get("location");
  assert.ok(callback.startsWith(`${w.url}/oauth/callback/${server.id}?`), callback);
  assert.equal((await manual(callback)).status, 400, "without the approving browser's cookie");
  const back = await manual(callback, { headers: { cookie: stateCookie } });
  assert.equal(back.status, 302, await back.text());
  const toClient = new URL(back.headers.get("location"));
  assert.equal(toClient.origin + toClient.pathname, "http://localhost:7777/callback");
  assert.equal(toClient.searchParams.get("iss"), w.url);
  assert.equal(toClient.searchParams.get("state"), "client-state");
  return { code: toClient.searchParams.get("code"), callback, stateCookie };
}

test("a user signs in through FlowCP's consent page and the provider, and tools/call runs as that user", async () => {
  const reg = await fetch(`${w.url}/oauth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ client_name: "e2e client", redirect_uris: ["http://localhost/callback"] }) });
  assert.equal(reg.status, 201);
  const clientId = (await reg.json()).client_id;
  const verifier = randomBytes(32).toString("base64url");
  const { code, callback, stateCookie } = await signIn(clientId, verifier);
  assert.equal(fake.seen.tokenRequests.at(-1).client_secret, "owner-client-secret");
  // The provider's state is single use.
  assert.equal((await manual(callback, { headers: { cookie: stateCookie } })).status, 400);
  // A wrong PKCE verifier is refused; the right one gets tokens.
  let t = await fetch(`${w.url}/oauth/token`, form({ grant_type: "authorization_code", code, client_id: clientId, redirect_uri: "http://localhost:7777/callback", code_verifier: randomBytes(32).toString("base64url") }));
  assert.equal((await t.json()).error, "invalid_grant");
  t = await fetch(`${w.url}/oauth/token`, form({ grant_type: "authorization_code", code, client_id: clientId, redirect_uri: "http://localhost:7777/callback", code_verifier: verifier }));
  assert.equal(t.status, 200);
  assert.equal(t.headers.get("cache-control"), "no-store");
  const tokens = await t.json();
  assert.equal(tokens.token_type, "Bearer");

  const mcp = (token) => fetch(server.mcp_url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}` },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "getUser", arguments: {} } }) });
  let r = await mcp(tokens.access_token);
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  assert.equal(body.result.structuredContent.login, "octocat");
  assert.equal(fake.seen.apiAuth.at(-1), `Bearer ${USER_TOKEN}`, "the API got the user's token, not FlowCP's");

  // The owner sees the connection (metadata only: no token exists to show).
  const conns = (await owner.get(P(`/servers/${server.id}/connections`))).body.items;
  assert.equal(conns.length, 1);
  assert.equal(conns[0].client_name, "e2e client");
  assert.ok(!JSON.stringify(conns).includes(USER_TOKEN));

  // Refresh rotates; revocation ends refresh at once and access within the stated bound.
  const refreshed = await (await fetch(`${w.url}/oauth/token`, form({ grant_type: "refresh_token", refresh_token: tokens.refresh_token }))).json();
  assert.ok(refreshed.access_token && refreshed.refresh_token, JSON.stringify(refreshed));
  assert.equal((await fetch(`${w.url}/oauth/revoke`, form({ token: refreshed.refresh_token }))).status, 200);
  const after = await (await fetch(`${w.url}/oauth/token`, form({ grant_type: "refresh_token", refresh_token: refreshed.refresh_token }))).json();
  assert.equal(after.error, "invalid_grant");
  let status;
  for (let i = 0; i < 40; i++) {
    status = (await mcp(refreshed.access_token)).status;
    if (status === 401) break;
    await sleep(250);
  }
  assert.equal(status, 401, "a revoked connection's access token stops working");
  // A token for this server is refused at another path, and a forged one everywhere.
  r = await fetch(server.mcp_url.replace(server.id, `${server.id}x`), { method: "POST", headers: { "content-type": "application/json", accept: "application/json", authorization: `Bearer ${tokens.access_token}` }, body: "{}" });
  assert.notEqual(r.status, 200);
  r = await mcp(tokens.access_token.slice(0, -4) + "AAAA");
  assert.equal(r.status, 401);
  assert.match(r.headers.get("www-authenticate"), /error="invalid_token"/);
});
