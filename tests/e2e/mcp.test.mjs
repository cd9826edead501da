// The MCP runtime end to end: published servers driven by the official MCP TypeScript SDK
// client against a fake upstream that records the exact requests it receives.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client as McpClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Client, startWorker, testSecrets, sleep } from "./harness.mjs";
import { startEchoUpstream } from "./echo-upstream.mjs";

const secrets = { ...testSecrets(), FLOWCP_UPSTREAM_TIMEOUT_MS: "1500" };
const API_KEY = "upstream-key-" + Math.random().toString(36).slice(2);
const TOKEN = "upstream-token-" + Math.random().toString(36).slice(2);
let w, up, owner, ws, appId;
const accessKeys = [];

const P = (p) => `/api/v1/workspaces/${ws}${p}`;

async function publish(name, { auth_mode = "none", auth_config, credential, is_public = false, discovery_mode = false, allowed_origins } = {}) {
  const srv = (await owner.post(P("/servers"), { app_id: appId, name })).body;
  const patch = { auth_mode, is_public, discovery_mode, probe_tool: "ping" };
  if (allowed_origins) patch.allowed_origins = allowed_origins;
  if (auth_config) patch.auth_config = auth_config;
  let r = await owner.patch(P(`/servers/${srv.id}`), patch);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  if (credential) await owner.put(P(`/servers/${srv.id}/credential`), { value: credential, origin: new URL(up.url).origin });
  r = await owner.post(P(`/servers/${srv.id}/verify`));
  assert.equal(r.body.state, "verified", JSON.stringify(r.body));
  r = await owner.post(P(`/servers/${srv.id}/publish`));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  let key = null;
  if (!is_public) {
    key = (await owner.post(P(`/servers/${srv.id}/keys`), {})).body.key;
    accessKeys.push(key);
  }
  return { id: srv.id, url: srv.mcp_url, key };
}

async function connect(server, headers = null) {
  const h = headers ?? (server.key ? { Authorization: `Bearer ${server.key}` } : {});
  const transport = new StreamableHTTPClientTransport(new URL(server.url), { requestInit: { headers: h } });
  const client = new McpClient({ name: "flowcp-e2e", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

function lastUpstream(pathPrefix) {
  const hits = up.received.filter((r) => r.url.startsWith(pathPrefix));
  assert.ok(hits.length > 0, `upstream never received ${pathPrefix}`);
  return hits[hits.length - 1];
}

let plain, client;
before(async () => {
  up = await startEchoUpstream();
  w = await startWorker({ vars: secrets });
  owner = new Client(w.url);
  ws = (await owner.signup("mcp-owner@example.com")).workspace.id;
  appId = (await owner.post(P("/apps"), { name: "Echo" })).body.id;
  const imp = await owner.post(P(`/apps/${appId}/imports`), { url: `${up.url}/openapi.json` });
  assert.equal(imp.status, 201, JSON.stringify(imp.body));
  // Browser origins are restricted on this one (any origin is the default; see strict-clients).
  plain = await publish("Echo none", { allowed_origins: ["https://app.example"] });
  client = await connect(plain);
});
after(async () => { await client?.close(); await w?.stop(); w?.cleanup(); await up?.close(); });

test("initialize negotiates the newest version and names the server", async () => {
  assert.equal(client.getServerVersion().title, "Echo none");
  assert.ok(client.getServerCapabilities().tools);
  const raw = await fetch(plain.url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${plain.key}` },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-03-26", capabilities: {}, clientInfo: { name: "raw", version: "1" } } }),
  });
  assert.equal((await raw.json()).result.protocolVersion, "2025-03-26");
  const future = await fetch(plain.url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json", authorization: `Bearer ${plain.key}` },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2099-01-01", capabilities: {}, clientInfo: { name: "raw", version: "1" } } }),
  });
  assert.equal((await future.json()).result.protocolVersion, "2025-11-25");
});

test("tools/list comes from the manifest in a stable order; a bad cursor is -32602", async () => {
  const a = await client.listTools();
  const b = await client.listTools();
  assert.deepEqual(a.tools.map((t) => t.name), b.tools.map((t) => t.name));
  assert.deepEqual(a.tools.map((t) => t.name).sort(), ["getItem", "html", "huge", "hugeChunked", "hugeGzip", "labelStyle", "matrixStyle", "ping", "postForm", "postJson", "postMultipart", "postText", "redirectAway", "redirectSame", "slow", "status"]);
  const get = a.tools.find((t) => t.name === "getItem");
  assert.equal(get.inputSchema.type, "object");
  assert.equal(get.annotations.readOnlyHint, true);
  await assert.rejects(client.listTools({ cursor: "bogus" }), (e) => e.code === -32602);
});

test("every parameter location and style reaches the upstream exactly", async () => {
  const r = await client.callTool({ name: "getItem", arguments: {
    id: "a b/c", tags: ["x", "y"], ids: [1, 2], colors: ["r", "g"], words: ["hello", "world"],
    filter: { min: 1, max: 5 }, "X-Trace": "t1", session_hint: "h",
  } });
  assert.equal(r.isError, undefined, JSON.stringify(r));
  const got = lastUpstream("/items/");
  assert.equal(got.method, "GET");
  assert.equal(got.url, "/items/a%20b%2Fc?tags=x&tags=y&ids=1,2&colors=r%7Cg&words=hello%20world&filter[min]=1&filter[max]=5");
  assert.equal(got.headers["x-trace"], "t1");
  assert.equal(got.headers.cookie, "session_hint=h");
  await client.callTool({ name: "labelStyle", arguments: { val: ["a", "b"] } });
  assert.equal(lastUpstream("/label/").url, "/label/.a,b");
  await client.callTool({ name: "matrixStyle", arguments: { val: ["a", "b"] } });
  assert.equal(lastUpstream("/matrix/").url, "/matrix/;val=a;val=b");
});

test("every body kind reaches the upstream exactly", async () => {
  await client.callTool({ name: "postJson", arguments: { name: "n", count: 3 } });
  let got = lastUpstream("/json");
  assert.equal(got.headers["content-type"], "application/json");
  assert.deepEqual(JSON.parse(got.body), { name: "n", count: 3 });
  await client.callTool({ name: "postForm", arguments: { a: "x y", b: 2 } });
  got = lastUpstream("/form");
  assert.equal(got.headers["content-type"], "application/x-www-form-urlencoded");
  assert.equal(got.body, "a=x%20y&b=2");
  await client.callTool({ name: "postMultipart", arguments: { title: "T", file: "hello" } });
  got = lastUpstream("/multipart");
  const boundary = got.headers["content-type"].match(/^multipart\/form-data; boundary=(.+)$/)[1];
  assert.equal(got.body, `--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nT\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="file"\r\nContent-Type: application/octet-stream\r\n\r\nhello\r\n--${boundary}--\r\n`);
  await client.callTool({ name: "postText", arguments: { body: "plain text" } });
  got = lastUpstream("/text");
  assert.equal(got.headers["content-type"], "text/plain");
  assert.equal(got.body, "plain text");
});

test("invalid arguments are a tool error and never reach the upstream", async () => {
  const before = up.received.length;
  const r = await client.callTool({ name: "postJson", arguments: { count: "three" } });
  assert.equal(r.isError, true);
  assert.match(r.content[0].text, /name/);
  assert.equal(up.received.length, before);
  await assert.rejects(client.callTool({ name: "noSuchTool", arguments: {} }), (e) => e.code === -32602);
});

test("upstream 4xx/5xx, timeout, huge, non-JSON and redirects map to results", async () => {
  let r = await client.callTool({ name: "status", arguments: { code: 404 } });
  assert.equal(r.isError, true);
  assert.match(r.content[0].text, /404/);
  r = await client.callTool({ name: "status", arguments: { code: 503 } });
  assert.equal(r.isError, true);
  assert.match(r.content[0].text, /503/);
  r = await client.callTool({ name: "slow", arguments: {} });
  assert.equal(r.isError, true);
  assert.match(r.content[0].text, /timed out/);
  r = await client.callTool({ name: "huge", arguments: {} });
  assert.equal(r.isError, true, "a body over the budget cannot be the declared structured content");
  assert.ok(r.content[0].text.length < 100_000, "the huge body is cut to the budget");
  assert.match(r.content[0].text, /truncated/i);
  // Over the read cap with no declared length, and compressed with only the compressed length
  // declared: read piece by piece and cut at the cap, never read whole.
  for (const name of ["hugeChunked", "hugeGzip"]) {
    r = await client.callTool({ name, arguments: {} });
    assert.equal(r.isError, true, name);
    assert.ok(r.content[0].text.length < 100_000, `${name}: cut to the budget`);
    assert.match(r.content[0].text, /truncated/i, name);
  }
  r = await client.callTool({ name: "html", arguments: {} });
  assert.equal(r.isError, true, "HTML where the document declares a JSON object");
  assert.match(r.content[0].text, /hello/);
  r = await client.callTool({ name: "redirectSame", arguments: {} });
  assert.equal(r.isError, undefined);
  assert.match(r.content[0].text, /pong/);
  r = await client.callTool({ name: "redirectAway", arguments: {} });
  assert.equal(r.isError, true);
  assert.match(r.content[0].text, /another host/);
});

test("each auth mode and placement sends the credential where it belongs", async () => {
  const cases = [
    ["header", { auth_mode: "api_key", auth_config: { in: "header", name: "X-Api-Key" }, credential: API_KEY }, (g) => assert.equal(g.headers["x-api-key"], API_KEY)],
    ["query", { auth_mode: "api_key", auth_config: { in: "query", name: "api_key" }, credential: API_KEY }, (g) => assert.match(g.url, new RegExp(`[?&]api_key=${API_KEY}$`))],
    ["cookie", { auth_mode: "api_key", auth_config: { in: "cookie", name: "key" }, credential: API_KEY }, (g) => assert.equal(g.headers.cookie, `key=${API_KEY}`)],
    ["bearer", { auth_mode: "bearer", credential: TOKEN }, (g) => assert.equal(g.headers.authorization, `Bearer ${TOKEN}`)],
    ["none", { auth_mode: "none", is_public: true }, (g) => { assert.equal(g.headers.authorization, undefined); assert.equal(g.headers["x-api-key"], undefined); }],
  ];
  for (const [label, cfg, check] of cases) {
    const s = await publish(`Echo ${label}`, cfg);
    const c = await connect(s);
    const r = await c.callTool({ name: "ping", arguments: {} });
    assert.equal(r.isError, undefined, `${label}: ${JSON.stringify(r)}`);
    check(lastUpstream("/ping"));
    await c.close();
  }
});

test("discovery mode exposes search, describe and call", async () => {
  const s = await publish("Echo discovery", { discovery_mode: true });
  const c = await connect(s);
  const list = await c.listTools();
  assert.deepEqual(list.tools.map((t) => t.name), ["search_tools", "describe_tool", "call_tool"]);
  let r = await c.callTool({ name: "search_tools", arguments: { query: "json" } });
  assert.equal(r.structuredContent.tools[0].name, "postJson");
  r = await c.callTool({ name: "describe_tool", arguments: { name: "postJson" } });
  assert.deepEqual(r.structuredContent.inputSchema.required, ["name"]);
  r = await c.callTool({ name: "call_tool", arguments: { name: "postJson", arguments: { name: "via discovery" } } });
  assert.equal(r.isError, undefined, JSON.stringify(r));
  assert.deepEqual(JSON.parse(lastUpstream("/json").body), { name: "via discovery" });
  await c.close();
});

async function raw(url, { method = "POST", headers = {}, body } = {}) {
  const r = await fetch(url, { method, headers, body });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* empty */ }
  return { status: r.status, headers: r.headers, json, text };
}

const INIT = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" });
// A call that would reach the upstream (GET /ping) and write an audit row if it were let through.
const CALL_PING = JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "ping", arguments: {} } });
const JSON_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" };
const withKey = (key) => ({ ...JSON_HEADERS, authorization: `Bearer ${key}` });

/** Every audit row of one server (all pages). */
async function auditRows(serverId) {
  const rows = [];
  let cursor = null;
  do {
    const page = await owner.get(P(`/audit?server=${serverId}&limit=200${cursor ? `&cursor=${cursor}` : ""}`));
    assert.equal(page.status, 200, JSON.stringify(page.body));
    rows.push(...page.body.items);
    cursor = page.body.next_cursor;
  } while (cursor);
  return rows;
}

/** Audit rows are written after the response: polls until there are at least `n` (≤ 10 s). */
async function waitForAudit(serverId, n) {
  let rows = [];
  for (let attempt = 0; attempt < 50; attempt++) {
    rows = await auditRows(serverId);
    if (rows.length >= n) break;
    await sleep(200);
  }
  return rows;
}

test("HTTP rules: a tools/call without a key, with a wrong key or from an Origin the owner did not allow is refused and has no effect", async () => {
  // Positive control: the same call with the key reaches the upstream and is audited.
  await sleep(300); // earlier tests' after-response audit writes settle
  const audited = (await auditRows(plain.id)).length;
  let before = up.received.length;
  let r = await raw(plain.url, { headers: withKey(plain.key), body: CALL_PING });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.result.isError, undefined, r.text);
  assert.match(r.json.result.content[0].text, /pong/);
  assert.equal(up.received.length, before + 1, "the control call reached the upstream");
  assert.equal(up.received[up.received.length - 1].url, "/ping");
  assert.equal((await waitForAudit(plain.id, audited + 1)).length, audited + 1, "the control call was audited");

  before = up.received.length;
  r = await raw(plain.url, { headers: { ...withKey(plain.key), origin: "https://evil.example" }, body: CALL_PING });
  assert.equal(r.status, 403, r.text);
  assert.match(r.json.error.message, /Origin/);
  r = await raw(plain.url, { headers: JSON_HEADERS, body: CALL_PING });
  assert.equal(r.status, 401, r.text);
  assert.match(r.json.error.message, /access key/);
  assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="flowcp"');
  r = await raw(plain.url, { headers: withKey("fcp_sk_wrong"), body: CALL_PING });
  assert.equal(r.status, 401, r.text);
  assert.match(r.json.error.message, /not valid for this server/);
  r = await raw(plain.url, { headers: { ...JSON_HEADERS, "x-api-key": "fcp_sk_wrong" }, body: CALL_PING });
  assert.equal(r.status, 401, r.text);
  assert.equal(up.received.length, before, "no refused call reached the upstream");
  await sleep(1000);
  assert.equal((await auditRows(plain.id)).length, audited + 1, "no refused call wrote an audit row");
});

test("an access key opens only its own server: another private server's key is 401 and reaches nothing", async () => {
  const other = await publish("Echo other");
  // Positive control: each server's own key works.
  let r = await raw(other.url, { headers: withKey(other.key), body: CALL_PING });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.result.isError, undefined, r.text);
  assert.equal((await waitForAudit(other.id, 1)).length, 1);
  await sleep(300);
  const plainAudited = (await auditRows(plain.id)).length;
  const before = up.received.length;
  // plain.key was used a moment ago, so the isolate has its mirror cached: the check must
  // compare the mirror's server id, not merely find the key.
  r = await raw(plain.url, { headers: withKey(plain.key), body: INIT });
  assert.equal(r.status, 200, r.text);
  r = await raw(other.url, { headers: withKey(plain.key), body: CALL_PING });
  assert.equal(r.status, 401, r.text);
  assert.match(r.json.error.message, /not valid for this server/);
  r = await raw(other.url, { headers: { ...JSON_HEADERS, "x-api-key": plain.key }, body: CALL_PING });
  assert.equal(r.status, 401, r.text);
  r = await raw(plain.url, { headers: withKey(other.key), body: CALL_PING });
  assert.equal(r.status, 401, r.text);
  assert.equal(up.received.length, before, "a foreign key reached the upstream");
  await sleep(1000);
  assert.equal((await auditRows(other.id)).length, 1, "a foreign key wrote an audit row on the other server");
  assert.equal((await auditRows(plain.id)).length, plainAudited, "a foreign key wrote an audit row on the key's server");
});

test("HTTP rules: X-API-Key, 404, 405, 406, 415, 202, -32700, -32601, batch and version checks", async () => {
  const base = JSON_HEADERS;
  const auth = withKey(plain.key);
  let r = await raw(plain.url, { headers: { ...base, "x-api-key": plain.key }, body: INIT });
  assert.equal(r.status, 200, "X-API-Key works too");
  r = await raw(`${w.url}/mcp/srv_doesnotexist`, { headers: auth, body: INIT });
  assert.equal(r.status, 404);
  r = await raw(plain.url, { method: "GET", headers: auth });
  assert.equal(r.status, 405);
  r = await raw(plain.url, { method: "DELETE", headers: auth });
  assert.equal(r.status, 405);
  r = await raw(plain.url, { headers: { ...auth, accept: "text/html" }, body: INIT });
  assert.equal(r.status, 406);
  r = await raw(plain.url, { headers: { ...auth, "content-type": "text/plain" }, body: INIT });
  assert.equal(r.status, 415);
  r = await raw(plain.url, { headers: auth, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) });
  assert.equal(r.status, 202);
  assert.equal(r.text, "");
  r = await raw(plain.url, { headers: auth, body: "{oops" });
  assert.equal(r.json.error.code, -32700);
  r = await raw(plain.url, { headers: auth, body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "nope/nothing" }) });
  assert.equal(r.json.error.code, -32601);
  r = await raw(plain.url, { headers: { ...auth, "mcp-protocol-version": "2025-06-18" }, body: `[${INIT}]` });
  assert.equal(r.status, 400, "no batches after 2025-03-26");
  r = await raw(plain.url, { headers: { ...auth, "mcp-protocol-version": "2025-03-26" }, body: `[${INIT}]` });
  assert.equal(r.status, 200);
  assert.equal(r.json.length, 1);
  r = await raw(plain.url, { headers: { ...auth, "mcp-protocol-version": "1999-01-01" }, body: INIT });
  assert.equal(r.status, 400);
});

test("batch boundary (2025-03-26): exactly 32 messages are answered; 33 and an empty batch are 400 and run nothing", async () => {
  const h = { ...withKey(plain.key), "mcp-protocol-version": "2025-03-26" };
  const batch = (n, make) => JSON.stringify(Array.from({ length: n }, (_, i) => make(i + 1)));
  const ping = (id) => ({ jsonrpc: "2.0", id, method: "ping" });
  let r = await raw(plain.url, { headers: h, body: batch(32, ping) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.length, 32);
  assert.deepEqual(r.json.map((x) => x.id).sort((a, b) => a - b), Array.from({ length: 32 }, (_, i) => i + 1));
  assert.ok(r.json.every((x) => x.jsonrpc === "2.0" && x.error === undefined && typeof x.result === "object"), r.text);
  r = await raw(plain.url, { headers: h, body: batch(33, ping) });
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error.message, /at most 32/);
  r = await raw(plain.url, { headers: h, body: "[]" });
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error.message, /empty batch/);
  // An oversized batch of tool calls is refused whole: not one of them reaches the upstream.
  const before = up.received.length;
  const call = (id) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "ping", arguments: {} } });
  r = await raw(plain.url, { headers: h, body: batch(33, call) });
  assert.equal(r.status, 400, r.text);
  await sleep(200);
  assert.equal(up.received.length, before);
});

test("an oauth server answers 401 with resource metadata", async () => {
  const srv = (await owner.post(P("/servers"), { app_id: appId, name: "Echo oauth" })).body;
  await owner.patch(P(`/servers/${srv.id}`), { auth_mode: "oauth", auth_config: { authorize_url: `${up.url}/authorize`, token_url: `${up.url}/token`, client_id: "cid", scopes: ["read"] } });
  await owner.put(P(`/servers/${srv.id}/credential`), { value: "client-secret-xyz", origin: new URL(up.url).origin });
  let r = await owner.post(P(`/servers/${srv.id}/verify`));
  assert.equal(r.body.state, "verified", JSON.stringify(r.body));
  await owner.post(P(`/servers/${srv.id}/publish`));
  r = await raw(srv.mcp_url, { headers: { "content-type": "application/json", accept: "application/json" }, body: INIT });
  assert.equal(r.status, 401);
  const meta = `${w.url}/.well-known/oauth-protected-resource/mcp/${srv.id}`;
  assert.equal(r.headers.get("www-authenticate"), `Bearer resource_metadata="${meta}", scope="mcp:${srv.id} read"`);
  const doc = await raw(meta, { method: "GET" });
  assert.equal(doc.status, 200);
  assert.equal(doc.json.resource, srv.mcp_url);
  // One authorization server for the whole origin (issue 13).
  assert.deepEqual(doc.json.authorization_servers, [w.url]);
  assert.deepEqual(doc.json.scopes_supported, [`mcp:${srv.id}`, "read"]);
  const as = await raw(`${w.url}/.well-known/oauth-authorization-server`, { method: "GET" });
  assert.equal(as.status, 200);
  assert.equal(as.json.issuer, w.url);
  assert.deepEqual(as.json.code_challenge_methods_supported, ["S256"]);
  // Dynamic client registration, as the TypeScript SDK sends it.
  const reg = await raw(as.json.registration_endpoint, { headers: { "content-type": "application/json" }, body: JSON.stringify({ client_name: "e2e", redirect_uris: ["http://localhost:3334/callback"], grant_types: ["authorization_code", "refresh_token"], token_endpoint_auth_method: "none" }) });
  assert.equal(reg.status, 201, reg.text);
  assert.match(reg.json.client_id, /^fcp_cl_/);
  assert.equal(Number.isInteger(reg.json.client_id_issued_at), true);
  const evil = await raw(as.json.registration_endpoint, { headers: { "content-type": "application/json" }, body: JSON.stringify({ redirect_uris: ["javascript:alert(1)"] }) });
  assert.equal(evil.status, 400);
  assert.equal(evil.json.error, "invalid_redirect_uri");
  // Anyone may register, so registrations per client address are limited.
  const statuses = [];
  for (let i = 0; i < 25; i++) {
    const r2 = await raw(as.json.registration_endpoint, { headers: { "content-type": "application/json" }, body: JSON.stringify({ redirect_uris: ["http://localhost:3334/callback"] }) });
    statuses.push(r2.status);
  }
  assert.ok(statuses.includes(429), `a burst of registrations is limited: ${statuses}`);
});

test("unpublished servers answer 404", async () => {
  const s = await publish("Echo short-lived");
  await owner.post(P(`/servers/${s.id}/unpublish`));
  const r = await raw(s.url, { headers: { "content-type": "application/json", accept: "application/json", authorization: `Bearer ${s.key}` }, body: INIT });
  assert.equal(r.status, 404);
});

test("a burst of concurrent calls writes exactly one audit row each, with no secrets", async () => {
  const s = await publish("Echo audit", { auth_mode: "api_key", auth_config: { in: "header", name: "X-Api-Key" }, credential: API_KEY });
  const clients = await Promise.all(Array.from({ length: 4 }, () => connect(s)));
  const N = 40;
  const results = await Promise.all(Array.from({ length: N }, (_, i) => clients[i % 4].callTool({ name: "ping", arguments: {} })));
  assert.equal(results.filter((r) => !r.isError).length, N);
  await Promise.all(clients.map((c) => c.close()));
  let rows = await waitForAudit(s.id, N);
  assert.equal(rows.length, N);
  // Stopping at N would miss duplicates written later: wait, re-read, and the count still holds.
  await sleep(500);
  rows = await auditRows(s.id);
  assert.equal(rows.length, N, "late duplicate audit rows");
  assert.ok(rows.every((r) => r.tool_name === "ping" && r.outcome === "ok" && r.upstream_status === 200));
  assert.ok(rows.every((r) => /^[0-9a-f]{16}$/.test(r.connection_hash)));
  const text = JSON.stringify(rows);
  for (const secret of [API_KEY, s.key]) assert.ok(!text.includes(secret));
});

test("F5: a flood of 32 clients against one public server gets 429 with Retry-After, and the audit counts exactly the calls admitted", async () => {
  const s = await publish("Echo flood", { is_public: true });
  const total = 2600; // over the per-server limit (1,200 a minute) even if a window turns mid-flood
  let next = 0;
  const statuses = [];
  let retryAfter = null;
  const worker = async () => {
    while (next < total) {
      const id = next++;
      const r = await fetch(s.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18" },
        body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "ping", arguments: {} } }),
      });
      if (r.status === 429) retryAfter = r.headers.get("retry-after");
      await r.arrayBuffer();
      statuses.push(r.status);
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  const admitted = statuses.filter((x) => x === 200).length;
  const limited = statuses.filter((x) => x === 429).length;
  assert.equal(admitted + limited, total, `other statuses: ${[...new Set(statuses)]}`);
  assert.ok(limited > 0, `no 429 in ${total} calls`);
  assert.ok(admitted >= 1200, `only ${admitted} calls admitted`);
  assert.match(retryAfter ?? "", /^\d+$/);
  const rows = await waitForAudit(s.id, admitted);
  await sleep(1000);
  assert.equal((await auditRows(s.id)).length, admitted, "one audit row per admitted call, none for refused ones");
  assert.equal(rows.filter((r) => r.outcome !== "ok").length, 0);
});

function modern(method, params = {}, id = 1) {
  return {
    jsonrpc: "2.0", id, method,
    params: { ...params, _meta: {
      "io.modelcontextprotocol/protocolVersion": "2026-07-28",
      "io.modelcontextprotocol/clientCapabilities": {},
      "io.modelcontextprotocol/clientInfo": { name: "modern-e2e", version: "1" },
    } },
  };
}

function modernHeaders(method, name) {
  const h = { "content-type": "application/json", accept: "application/json, text/event-stream",
    authorization: `Bearer ${plain.key}`, "mcp-protocol-version": "2026-07-28", "mcp-method": method };
  if (name) h["mcp-name"] = name;
  return h;
}

test("2026-07-28 era: server/discover, tools/list and tools/call without initialize", async () => {
  let r = await raw(plain.url, { headers: modernHeaders("server/discover"), body: JSON.stringify(modern("server/discover")) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.result.resultType, "complete");
  assert.ok(r.json.result.supportedVersions.includes("2026-07-28"));
  assert.ok(r.json.result.supportedVersions.includes("2025-11-25"));
  assert.ok(r.json.result.capabilities.tools);
  assert.equal(r.json.result._meta["io.modelcontextprotocol/serverInfo"].title, "Echo none");
  r = await raw(plain.url, { headers: modernHeaders("tools/list"), body: JSON.stringify(modern("tools/list")) });
  assert.equal(r.json.result.resultType, "complete");
  assert.equal(r.json.result.cacheScope, "private");
  assert.ok(r.json.result.ttlMs > 0);
  assert.equal(r.json.result.tools.length, 16);
  r = await raw(plain.url, { headers: modernHeaders("tools/call", "ping"), body: JSON.stringify(modern("tools/call", { name: "ping", arguments: {} })) });
  assert.equal(r.json.result.resultType, "complete");
  assert.equal(r.json.result.structuredContent.pong, true);
  const b64 = `=?base64?${Buffer.from("ping").toString("base64")}?=`;
  r = await raw(plain.url, { headers: modernHeaders("tools/call", b64), body: JSON.stringify(modern("tools/call", { name: "ping", arguments: {} })) });
  assert.equal(r.status, 200, "a base64-sentinel Mcp-Name is decoded");
});

test("2026-07-28 era: header mismatches, unsupported versions and unknown methods", async () => {
  let r = await raw(plain.url, { headers: modernHeaders("tools/list"), body: JSON.stringify(modern("server/discover")) });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, -32020);
  r = await raw(plain.url, { headers: modernHeaders("tools/call", "other"), body: JSON.stringify(modern("tools/call", { name: "ping" })) });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, -32020);
  const old = modern("server/discover");
  old.params._meta["io.modelcontextprotocol/protocolVersion"] = "1900-01-01";
  // Header and envelope disagree: the mismatch wins (as the official conformance suite's
  // server-stateless scenario expects), whatever either version is.
  r = await raw(plain.url, { headers: { ...modernHeaders("server/discover"), "mcp-protocol-version": "2025-11-25" }, body: JSON.stringify(old) });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, -32020);
  // Both name an unsupported version: -32022, answered to the request's own id.
  r = await raw(plain.url, { headers: { ...modernHeaders("server/discover"), "mcp-protocol-version": "1900-01-01" }, body: JSON.stringify(old) });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, -32022);
  assert.equal(r.json.error.data.requested, "1900-01-01");
  assert.equal(r.json.id, 1);
  // The envelope must carry the client's capabilities; initialize is gone in this era.
  const bare = modern("server/discover");
  delete bare.params._meta["io.modelcontextprotocol/clientCapabilities"];
  r = await raw(plain.url, { headers: modernHeaders("server/discover"), body: JSON.stringify(bare) });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, -32602);
  r = await raw(plain.url, { headers: modernHeaders("initialize"), body: JSON.stringify(modern("initialize", { protocolVersion: "2026-07-28", capabilities: {}, clientInfo: { name: "x", version: "1" } })) });
  assert.equal(r.status, 404, "initialize was removed in 2026-07-28");
  assert.equal(r.json.error.code, -32601);
  r = await raw(plain.url, { headers: modernHeaders("ping"), body: JSON.stringify(modern("ping")) });
  assert.equal(r.status, 404, "ping is gone in 2026-07-28");
  assert.equal(r.json.error.code, -32601);
  r = await raw(plain.url, { headers: { ...modernHeaders("x"), "mcp-protocol-version": "1900-01-01" }, body: JSON.stringify(modern("tools/list")) });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, -32022);
});

test("hostile MCP bodies: oversized is 413, deeply nested is -32700, wrong shapes are -32600/-32602", async () => {
  const h = { "content-type": "application/json", accept: "application/json", authorization: `Bearer ${plain.key}` };
  let r = await raw(plain.url, { headers: h, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping", params: { pad: "x".repeat(5 * 1024 * 1024) } }) });
  assert.equal(r.status, 413);
  r = await raw(plain.url, { headers: h, body: "[".repeat(10_000) + "]".repeat(10_000) });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, -32700);
  r = await raw(plain.url, { headers: h, body: JSON.stringify({ jsonrpc: "2.0", id: { a: 1 }, method: "ping" }) });
  assert.equal(r.json.error.code, -32600);
  r = await raw(plain.url, { headers: h, body: JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: 5 } }) });
  assert.equal(r.json.error.code, -32602);
  r = await raw(plain.url, { headers: h, body: JSON.stringify({ jsonrpc: "2.0", id: 4, method: "tools/call", params: { name: "ping", arguments: [1, 2] } }) });
  assert.equal(r.json.error.code, -32602);
  const deep = JSON.parse("{\"a\":".repeat(100) + "1" + "}".repeat(100));
  // postJson's body schema declares name and count and does not allow additional properties
  // explicitly, so an undeclared argument is dropped: the deep value is never forwarded.
  let before = up.received.length;
  r = await raw(plain.url, { headers: h, body: JSON.stringify({ jsonrpc: "2.0", id: 5, method: "tools/call", params: { name: "postJson", arguments: { name: "n", extra: deep } } }) });
  assert.equal(r.status, 200, "deep arguments are validated, not a crash");
  assert.ok(r.json.result, r.text);
  assert.equal(r.json.result.isError, undefined, r.text);
  assert.equal(up.received.length, before + 1);
  assert.equal(up.received[up.received.length - 1].url, "/json");
  assert.equal(up.received[up.received.length - 1].body, JSON.stringify({ name: "n" }), "the undeclared deep argument is dropped");
  // The same deep value where the schema declares a string is a validation error and is not sent.
  before = up.received.length;
  r = await raw(plain.url, { headers: h, body: JSON.stringify({ jsonrpc: "2.0", id: 6, method: "tools/call", params: { name: "postJson", arguments: { name: deep } } }) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.result.isError, true, r.text);
  assert.match(r.json.result.content[0].text, /name/);
  assert.equal(up.received.length, before, "an invalid deep argument reached the upstream");
  r = await client.callTool({ name: "ping", arguments: {} });
  assert.equal(r.isError, undefined, "the server still answers normally afterwards");
});

// Keep this the last test of the file, so every call above is covered.
test("no credential, token or access key appears in the worker log (after every other test)", async () => {
  await sleep(300); // after-response work (audit writes) logs its errors too
  const logs = w.logs();
  assert.ok(accessKeys.length >= 8, `only ${accessKeys.length} access keys were collected`);
  for (const secret of [API_KEY, TOKEN, "client-secret-xyz", secrets.FLOWCP_SESSION_SECRET, secrets.FLOWCP_ENCRYPTION_KEYS.slice(3), ...accessKeys]) {
    assert.ok(!logs.includes(secret), `the log leaked ${secret.slice(0, 10)}…`);
  }
});
