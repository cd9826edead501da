// Issue 13: per-user OAuth driven by the official MCP TypeScript SDK client and its OAuth client
// provider, through the real runtime (wrangler dev). A fake on 127.0.0.1 plays the upstream
// provider (authorize, token with rotating refresh tokens) and the API (it checks the bearer it
// gets is the user's current upstream token). The browser part (FlowCP's consent page, the
// provider's sign-in, the callback) is driven with fetch, as a user's browser would.
//
// - with dynamic client registration: PRM, metadata, registration, authorize, consent, upstream
//   sign-in, callback, token, tools/call as the user; then the upstream refuses the token (401)
//   and the SDK refreshes through FlowCP, which refreshes upstream once; a scope the API wants
//   gives 403 insufficient_scope and the SDK asks to re-authorise; revocation ends it all;
// - with a Client ID Metadata Document served on 127.0.0.1 instead of registration; then three
//   concurrent refreshes of one token make exactly one upstream refresh;
// - the negative cases, raw;
// - the official conformance suite's authorization-server scenarios (metadata, and the code
//   grant with its consent and upstream sign-in driven here);
// - after it all, nothing FlowCP stored (every D1 and KV file) holds an upstream token.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createHash, randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Client as McpClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { Client, ROOT, approveInBrowser, freePort, publishOAuthServer, startWorker, testSecrets, sleep } from "./harness.mjs";

let w, fake, owner, ws, server;
const REDIRECT = "http://127.0.0.1:7777/callback";

// The provider and the API in one fake. Access tokens are random per issue; a refresh rotates
// both tokens; `expireAll()` makes the API refuse every token issued so far (the user's token
// was revoked or expired at the provider).
function startFake() {
  const state = { issued: [], valid: new Set(), refreshes: new Map(), codeGrants: 0, refreshGrants: 0, apiAuth: [] };
  const issue = () => {
    const t = { access_token: "gho_" + randomBytes(16).toString("hex"), refresh_token: "ghr_" + randomBytes(16).toString("hex"), expires_in: 28800, token_type: "bearer" };
    state.issued.push(t.access_token, t.refresh_token);
    state.valid.add(t.access_token);
    state.refreshes.set(t.refresh_token, true);
    return t;
  };
  const srv = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url, "http://x");
      const body = Buffer.concat(chunks).toString();
      const json = (status, v, headers = {}) => { res.writeHead(status, { "content-type": "application/json", ...headers }); res.end(JSON.stringify(v)); };
      const op = (id) => ({ get: { operationId: id, responses: { 200: { description: "ok", content: { "application/json": { schema: { type: "object", properties: { login: { type: "string" } } } } } } } } });
      if (url.pathname === "/openapi.json") {
        return json(200, { openapi: "3.0.3", info: { title: "Me", version: "1" }, servers: [{ url: base() }], paths: { "/user": op("getUser"), "/admin": op("getAdmin") } });
      }
      if (url.pathname === "/client.json") {
        return json(200, { client_id: `${base()}/client.json`, client_name: "CIMD e2e client", redirect_uris: ["http://127.0.0.1/callback"], token_endpoint_auth_method: "none", grant_types: ["authorization_code", "refresh_token"], response_types: ["code"] });
      }
      if (url.pathname === "/authorize") {
        const back = new URL(url.searchParams.get("redirect_uri"));
        back.searchParams.set("code", "upstream-code-" + randomBytes(6).toString("hex"));
        back.searchParams.set("state", url.searchParams.get("state"));
        res.writeHead(302, { location: back.toString() });
        return res.end();
      }
      if (url.pathname === "/token") {
        const p = Object.fromEntries(new URLSearchParams(body));
        if (p.client_secret !== "owner-client-secret") return json(401, { error: "invalid_client" });
        if (p.grant_type === "authorization_code") {
          if (!p.code?.startsWith("upstream-code-")) return json(400, { error: "invalid_grant" });
          state.codeGrants++;
          return json(200, issue());
        }
        if (p.grant_type === "refresh_token") {
          state.refreshGrants++;
          if (!state.refreshes.get(p.refresh_token)) return json(400, { error: "invalid_grant" });
          state.refreshes.set(p.refresh_token, false); // rotated: single use
          return json(200, issue());
        }
        return json(400, { error: "unsupported_grant_type" });
      }
      const bearer = (req.headers.authorization ?? "").replace(/^Bearer /, "");
      if (url.pathname === "/user") {
        state.apiAuth.push(bearer);
        if (!state.valid.has(bearer)) return json(401, { message: "Bad credentials" });
        return json(200, { login: "octocat" });
      }
      if (url.pathname === "/admin") {
        return json(403, { message: "needs admin:org" }, { "www-authenticate": 'Bearer error="insufficient_scope", scope="admin:org"' });
      }
      json(404, {});
    });
  });
  const base = () => `http://127.0.0.1:${srv.address().port}`;
  return new Promise((r) => srv.listen(0, "127.0.0.1", () => r({ state, base, expireAll: () => state.valid.clear(), close: () => new Promise((c) => srv.close(c)) })));
}


before(async () => {
  fake = await startFake();
  w = await startWorker({ vars: { ...testSecrets(), FLOWCP_RATE_LIMITS: "off" } });
  owner = new Client(w.url);
  ws = (await owner.signup("oauth-sdk-e2e@example.com")).workspace.id;
  const { srv, verification: v } = await publishOAuthServer(owner, ws, fake.base());
  assert.ok(v.findings.some((f) => f.check === "provider" && f.status === "pass"), JSON.stringify(v.findings));
  server = srv;
});
after(async () => { await w?.stop(); w?.cleanup(); await fake?.close(); });

const manual = (url, init = {}) => fetch(url, { redirect: "manual", ...init });
const form = (pairs) => ({ method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(pairs).toString() });

// The SDK's OAuth client provider, in memory; the "browser" is driven by `browse`.
class MemoryProvider {
  constructor({ clientInformation } = {}) { this.client = clientInformation; this.authUrls = []; }
  get redirectUrl() { return REDIRECT; }
  get clientMetadata() {
    return { client_name: "SDK e2e client", redirect_uris: [REDIRECT], grant_types: ["authorization_code", "refresh_token"], response_types: ["code"], token_endpoint_auth_method: "none" };
  }
  clientInformation() { return this.client; }
  saveClientInformation(c) { this.client = c; }
  tokens() { return this.saved; }
  saveTokens(t) { this.saved = t; }
  redirectToAuthorization(url) { this.authUrls.push(url); }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
}

// The browser part, then the checks on the answer to the client.
async function browse(authUrl, opts) {
  const toClient = await approveInBrowser(authUrl, opts);
  assert.equal(toClient.searchParams.get("iss"), w.url);
  return toClient.searchParams.get("code");
}

// Connects the SDK client: the first attempt is refused (401 with the PRM), the provider
// registers (or uses its client id), the browser signs in, and the second attempt works.
async function connectAs(provider) {
  const url = new URL(server.mcp_url);
  let transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
  await assert.rejects(new McpClient({ name: "sdk-e2e", version: "1" }).connect(transport), UnauthorizedError);
  assert.equal(provider.authUrls.length, 1);
  const authUrl = provider.authUrls[0];
  assert.equal(authUrl.origin, w.url, "FlowCP is the authorization server");
  assert.equal(authUrl.searchParams.get("resource"), server.mcp_url);
  assert.equal(authUrl.searchParams.get("code_challenge_method"), "S256");
  await transport.finishAuth(await browse(authUrl));
  transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
  const client = new McpClient({ name: "sdk-e2e", version: "1" });
  await client.connect(transport);
  return client;
}

test("the SDK client registers, signs the user in, calls as the user, refreshes after an upstream 401, steps up on 403 and ends at revocation", async () => {
  const provider = new MemoryProvider();
  const client = await connectAs(provider);
  assert.match(provider.client.client_id, /^fcp_cl_/, "dynamic client registration");
  assert.ok(provider.tokens().access_token.startsWith("fcp_at."));
  let r = await client.callTool({ name: "getUser", arguments: {} });
  assert.equal(r.isError, undefined, JSON.stringify(r));
  assert.equal(r.structuredContent.login, "octocat");
  const firstUpstream = fake.state.apiAuth.at(-1);
  assert.ok(fake.state.valid.has(firstUpstream), "the API got the user's own upstream token");
  assert.ok(!firstUpstream.startsWith("fcp_"), "never FlowCP's token");

  // The provider revokes the user's access token: the API answers 401, FlowCP answers the SDK
  // with a 401 invalid_token challenge, the SDK refreshes through FlowCP, FlowCP refreshes
  // upstream (once), and the retried call runs with the user's new upstream token.
  fake.expireAll();
  const refreshesBefore = fake.state.refreshGrants;
  const oldAccess = provider.tokens().access_token;
  r = await client.callTool({ name: "getUser", arguments: {} });
  assert.equal(r.structuredContent?.login, "octocat", JSON.stringify(r));
  assert.equal(fake.state.refreshGrants, refreshesBefore + 1, "one upstream refresh");
  assert.notEqual(provider.tokens().access_token, oldAccess, "the SDK holds rotated FlowCP tokens");
  assert.notEqual(fake.state.apiAuth.at(-1), firstUpstream);

  // A scope the API wants: 403 insufficient_scope; the SDK asks the user to authorise again.
  await assert.rejects(client.callTool({ name: "getAdmin", arguments: {} }), (e) => e instanceof UnauthorizedError || /403|insufficient/i.test(String(e)));
  const raw = await fetch(server.mcp_url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${provider.tokens().access_token}` },
    body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/call", params: { name: "getAdmin", arguments: {} } }) });
  assert.equal(raw.status, 403);
  assert.match(raw.headers.get("www-authenticate"), new RegExp(`^Bearer error="insufficient_scope", scope="mcp:${server.id} read:user"`));

  // The user signs out (RFC 7009 revocation of the refresh token): refresh stops at once, and
  // within the stated bound the access token too; the SDK then needs a new authorization.
  const tokens = provider.tokens();
  assert.equal((await fetch(`${w.url}/oauth/revoke`, form({ token: tokens.refresh_token }))).status, 200);
  const again = await (await fetch(`${w.url}/oauth/token`, form({ grant_type: "refresh_token", refresh_token: tokens.refresh_token }))).json();
  assert.equal(again.error, "invalid_grant");
  let refused = null;
  for (let i = 0; i < 40 && !refused; i++) {
    try { await client.callTool({ name: "getUser", arguments: {} }); await sleep(250); } catch (e) { refused = e; }
  }
  // The SDK's refresh got invalid_grant (it then needs the user to authorise again).
  assert.ok(refused instanceof UnauthorizedError || refused?.constructor?.name === "InvalidGrantError", String(refused));
  await client.close();
});

test("a client identified by its metadata document signs in, and concurrent refreshes make one upstream refresh", async () => {
  const clientId = `${fake.base()}/client.json`;
  const provider = new MemoryProvider({ clientInformation: { client_id: clientId } });
  const client = await connectAs(provider);
  const page = await (await manual(provider.authUrls[0])).text();
  assert.match(page, /CIMD e2e client/, "the consent page names the document's client");
  assert.match(page, /Client information published at 127\.0\.0\.1/);
  const r = await client.callTool({ name: "getUser", arguments: {} });
  assert.equal(r.structuredContent.login, "octocat");
  await client.close();

  // Three refreshes of the same token at once (a client's tabs racing): all succeed, with
  // tokens for the same new upstream grant, and the provider saw one refresh.
  const before = fake.state.refreshGrants;
  const rt = provider.tokens().refresh_token;
  const answers = await Promise.all([0, 1, 2].map(() => fetch(`${w.url}/oauth/token`, form({ grant_type: "refresh_token", refresh_token: rt, client_id: clientId }))));
  const bodies = await Promise.all(answers.map((a) => a.json()));
  assert.deepEqual(answers.map((a) => a.status), [200, 200, 200], JSON.stringify(bodies));
  assert.equal(fake.state.refreshGrants, before + 1, "exactly one upstream refresh");
  for (const b of bodies) {
    const mcp = await fetch(server.mcp_url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${b.access_token}` },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "getUser", arguments: {} } }) });
    assert.equal(mcp.status, 200);
    assert.equal((await mcp.json()).result.structuredContent.login, "octocat", "each answer carries the live upstream token");
  }
});

test("the negative cases: PKCE, codes, redirect URIs, tokens, state and consent", async () => {
  const reg = async (uris) => fetch(`${w.url}/oauth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ client_name: "neg", redirect_uris: uris }) });
  // javascript: (and data:) redirect URIs are refused at registration.
  for (const bad of ["javascript:alert(1)", "data:text/html,x"]) {
    const r = await reg([bad]);
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error, "invalid_redirect_uri");
  }
  const clientId = (await (await reg(["http://127.0.0.1/callback"])).json()).client_id;
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const q = (over = {}) => new URLSearchParams({ response_type: "code", client_id: clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: "S256", state: "s", resource: server.mcp_url, ...over });
  // Plain PKCE, a missing challenge, an unregistered redirect URI: no consent page.
  for (const over of [{ code_challenge_method: "plain" }, { code_challenge: "" }, { redirect_uri: "https://evil.example/cb" }]) {
    const r = await manual(`${w.url}/oauth/authorize?${q(over)}`);
    assert.equal(r.status, 400, JSON.stringify(over));
    assert.equal(r.headers.get("location"), null, "never redirected automatically");
  }
  const code = await browse(new URL(`${w.url}/oauth/authorize?${q()}`));
  const exchange = (over = {}) => fetch(`${w.url}/oauth/token`, form({ grant_type: "authorization_code", code, client_id: clientId, redirect_uri: REDIRECT, code_verifier: verifier, ...over }));
  // A wrong, missing or plain verifier, or another redirect URI at the token endpoint.
  for (const over of [{ code_verifier: randomBytes(32).toString("base64url") }, { code_verifier: "" }, { code_verifier: challenge }, { redirect_uri: "http://127.0.0.1:7778/other" }]) {
    assert.equal((await (await exchange(over)).json()).error, "invalid_grant", JSON.stringify(over));
  }
  const tokens = await (await exchange()).json();
  assert.ok(tokens.access_token, JSON.stringify(tokens));
  // A replayed code is refused and ends the connection it made.
  assert.equal((await (await exchange()).json()).error, "invalid_grant");
  assert.equal((await (await fetch(`${w.url}/oauth/token`, form({ grant_type: "refresh_token", refresh_token: tokens.refresh_token }))).json()).error, "invalid_grant");
  // Tampered, forged and foreign tokens, and a token in the query string: 401 invalid_token.
  const call = (token, url = server.mcp_url) => fetch(url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "getUser", arguments: {} } }) });
  const [head, conn, env] = tokens.access_token.split(".");
  const flipped = env.slice(0, 10) + (env[10] === "A" ? "B" : "A") + env.slice(11);
  for (const t of [`${head}.${conn}.${flipped}`, "fcp_at.conn_x." + "A".repeat(80), tokens.refresh_token]) {
    const r = await call(t);
    assert.equal(r.status, 401);
    assert.match(r.headers.get("www-authenticate"), /error="invalid_token"/);
  }
  const inQuery = await call(null, `${server.mcp_url}?access_token=${encodeURIComponent(tokens.access_token)}`);
  assert.equal(inQuery.status, 401);
  // Consent skipped: a callback with a state FlowCP never issued, or without the approving
  // browser's cookie, is refused.
  const cb = await manual(`${w.url}/oauth/callback/${server.id}?code=upstream-code-x&state=fcp1.k1.${"A".repeat(60)}`);
  assert.equal(cb.status, 400);
});

// The suite prints the authorization URL, waits for its callback on 127.0.0.1:<port>, then
// redeems the code at the token endpoint; the consent page and the provider are driven here.
test("the conformance suite's authorization-server scenarios pass", { timeout: 600_000 }, async () => {
  const reg = await fetch(`${w.url}/oauth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ client_name: "conformance", redirect_uris: ["http://127.0.0.1/callback"] }) });
  const clientId = (await reg.json()).client_id;
  const port = await freePort();
  const child = spawn("npx", ["-y", "-p", "node@22", "-p", "@modelcontextprotocol/conformance@0.2.0-alpha.12", "--", "conformance", "authorization",
    "--url", w.url, "--client-id", clientId, "--resource", server.mcp_url, "--port", String(port)], { cwd: ROOT, env: { ...process.env, npm_config_yes: "true" } });
  let out = "";
  let browsed = null;
  const done = new Promise((resolve) => child.on("close", resolve));
  const onData = (d) => {
    out += d;
    const url = out.match(/^(http:\/\/127\.0\.0\.1:\d+\/oauth\/authorize\?\S+)$/m)?.[1];
    if (url && !browsed) browsed = browse(new URL(url), { deliver: true }).catch((e) => { out += `\nbrowse failed: ${e}`; });
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const status = await done;
  await browsed;
  const plain = out.replace(/\x1b\[[0-9;]*m/g, "");
  assert.ok(browsed, `the suite printed no authorization URL:\n${plain}`);
  assert.equal(status, 0, plain);
  assert.match(plain, /authorization-server-metadata-endpoint/, plain);
  assert.match(plain, /authorization-code-grant/, plain);
  assert.doesNotMatch(plain, /FAILURE|SKIPPED/, plain);
});

test("nothing FlowCP stored holds an upstream token", () => {
  // Every file of the local D1 and KV state (databases, write-ahead logs, blobs), as bytes.
  const files = [];
  const walk = (d) => { for (const e of readdirSync(d)) { const p = join(d, e); statSync(p).isDirectory() ? walk(p) : files.push(p); } };
  walk(w.stateDir);
  const stored = Buffer.concat(files.map((f) => readFileSync(f)));
  assert.ok(stored.includes(Buffer.from("SDK e2e client")), "the scan sees what is stored (the client's name)");
  assert.ok(fake.state.issued.length >= 8, `${fake.state.issued.length} upstream tokens issued`);
  for (const token of fake.state.issued) {
    assert.ok(!stored.includes(Buffer.from(token)), "an upstream token is stored");
  }
  assert.ok(!stored.includes(Buffer.from("owner-client-secret")), "the owner's client secret is stored in the clear");
});
