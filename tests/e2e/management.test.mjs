// Issue 15: FlowCP's own MCP server at `/mcp`, driven by the official MCP TypeScript SDK client
// with its OAuth client provider, through the real runtime (wrangler dev).
//
// - Sign-in: the SDK finds the protected-resource metadata, registers (DCR), and sends the
//   "browser" to FlowCP's authorize page, which sends a signed-out browser to the dashboard's
//   sign-in and, signed in, shows the consent page with the account's workspaces; the user
//   picks one.
// - Agent-driven onboarding: with MCP tool calls only, the agent takes a fake upstream API's
//   document from nothing to a published server, then connects to that server with the
//   configuration it was given and calls a tool that reaches the fake API.
// - Workspace binding: every tool that names a workspace answers "not found" for the account's
//   other workspace; a member's token cannot publish.
// - The account sees the connection in the API and disconnects it: the agent is refused.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client as McpClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { Client, inviteAndAccept, startWorker, testSecrets } from "./harness.mjs";
import { startFakeUpstream } from "./fake-upstream.mjs";

const UPSTREAM_KEY = "upstream-key-for-the-agent-e2e";
const REDIRECT = "http://127.0.0.1:7788/callback";
let w, up, owner, wsA, wsB;

before(async () => {
  up = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  w = await startWorker({ vars: { ...testSecrets(), FLOWCP_RATE_LIMITS: "off" } });
  owner = new Client(w.url);
  wsB = (await owner.signup("agent-owner@example.com", undefined, "Personal")).workspace.id;
  const r = await owner.post("/api/v1/workspaces", { name: "Billing" });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  wsA = r.body.id;
});
after(async () => { await w?.stop(); w?.cleanup(); await up?.close(); });

const manual = (url, init = {}) => fetch(url, { redirect: "manual", ...init });

// The SDK's OAuth client provider, in memory.
class MemoryProvider {
  constructor(name) { this.name = name; this.authUrls = []; }
  get redirectUrl() { return REDIRECT; }
  get clientMetadata() {
    return { client_name: this.name, redirect_uris: [REDIRECT], grant_types: ["authorization_code", "refresh_token"], response_types: ["code"], token_endpoint_auth_method: "none" };
  }
  clientInformation() { return this.client; }
  saveClientInformation(c) { this.client = c; }
  tokens() { return this.saved; }
  saveTokens(t) { this.saved = t; }
  redirectToAuthorization(url) { this.authUrls.push(url); }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
}

// The user's browser: signed out it is sent to sign in (and back); signed in (`user`'s session
// cookie) it sees the consent page and picks `workspace`. Returns the code for the client.
async function approve(authUrl, user, workspace) {
  const signedOut = await manual(authUrl);
  assert.equal(signedOut.status, 302, "a signed-out browser goes to sign in");
  const signIn = new URL(signedOut.headers.get("location"), w.url);
  assert.equal(signIn.pathname, "/sign-in");
  assert.equal(new URL(signIn.searchParams.get("next"), w.url).toString(), authUrl.toString(), "and comes back to this request");
  const page = await manual(authUrl, { headers: { cookie: user.cookie } });
  const html = await page.text();
  assert.equal(page.status, 200, html.slice(0, 300));
  const nonce = page.headers.get("set-cookie").split(";")[0];
  const ticket = html.match(/name="ticket" value="([^"]+)"/)[1];
  const options = [...html.matchAll(/<option value="([^"]+)">([^<]+)<\/option>/g)].map((m) => ({ id: m[1], label: m[2] }));
  assert.ok(options.some((o) => o.id === workspace), `the page offers ${workspace}: ${JSON.stringify(options)}`);
  const decided = await manual(new URL("/oauth/authorize", w.url), {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie: `${user.cookie}; ${nonce}` },
    body: new URLSearchParams({ ticket, workspace, decision: "approve" }).toString(),
  });
  assert.equal(decided.status, 302, await decided.text());
  const back = new URL(decided.headers.get("location"));
  assert.equal(back.origin + back.pathname, REDIRECT);
  assert.equal(back.searchParams.get("iss"), w.url);
  return { code: back.searchParams.get("code"), options };
}

// Connects the SDK client to `/mcp` as `user`, bound to `workspace`.
async function connect(user, workspace, name = "Agent e2e") {
  const url = new URL(`${w.url}/mcp`);
  const provider = new MemoryProvider(name);
  let transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
  await assert.rejects(new McpClient({ name: "agent-e2e", version: "1" }).connect(transport), UnauthorizedError);
  assert.equal(provider.authUrls.length, 1);
  const authUrl = provider.authUrls[0];
  assert.equal(authUrl.origin, w.url, "FlowCP is the authorization server");
  assert.equal(authUrl.searchParams.get("resource"), `${w.url}/mcp`);
  assert.match(provider.client.client_id, /^fcp_cl_/, "dynamic client registration");
  const { code, options } = await approve(authUrl, user, workspace);
  await transport.finishAuth(code);
  transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
  const client = new McpClient({ name: "agent-e2e", version: "1" });
  await client.connect(transport);
  return { client, provider, options };
}

// A tool call's JSON answer (the structured content, or the text parsed); fails on a tool error.
async function call(client, name, args = {}) {
  const r = await client.callTool({ name, arguments: args });
  assert.notEqual(r.isError, true, `${name}: ${JSON.stringify(r.content)}`);
  return r.structuredContent ?? JSON.parse(r.content[0].text);
}

let agent;
test("an agent signs in with DCR, FlowCP's login and a workspace choice, and onboards an API with tool calls only", async () => {
  const meta = await (await fetch(`${w.url}/.well-known/oauth-protected-resource/mcp`)).json();
  assert.deepEqual([meta.resource, meta.authorization_servers], [`${w.url}/mcp`, [w.url]]);
  agent = await connect(owner, wsA);
  assert.ok(agent.options.some((o) => o.label === "Billing (owner)") && agent.options.some((o) => o.id === wsB), "both workspaces were offered");
  const { tools } = await agent.client.listTools();
  const names = tools.map((t) => t.name);
  for (const n of ["list_workspaces", "create_app", "import_document", "list_tools", "set_tools_enabled", "create_server", "configure_server", "set_credential", "verify_server", "publish_server", "create_access_key", "get_server"]) {
    assert.ok(names.includes(n), `${n} in ${names}`);
  }
  assert.ok(!names.some((n) => /password|delete_account|signup/.test(n)), names.join());

  // Only the chosen workspace exists for this connection.
  const spaces = await call(agent.client, "list_workspaces");
  assert.deepEqual(spaces.items.map((x) => x.id), [wsA]);

  // From nothing to a published server.
  const app = await call(agent.client, "create_app", { ws: wsA, name: "Widgets" });
  const report = await call(agent.client, "import_document", { ws: wsA, app: app.id, body: { url: `${up.url}/openapi.json` } });
  assert.equal(report.tool_count, 3, JSON.stringify(report));
  const listed = await call(agent.client, "list_tools", { ws: wsA, app: app.id, tag: "admin" });
  assert.deepEqual(listed.items.map((t) => t.name), ["createWidget"]);
  await call(agent.client, "set_tools_enabled", { ws: wsA, app: app.id, tool_ids: listed.items.map((t) => t.id), enabled: false });
  const srv = await call(agent.client, "create_server", { ws: wsA, app_id: app.id, name: "Widgets MCP" });
  await call(agent.client, "configure_server", { ws: wsA, srv: srv.id, auth_mode: "api_key" });
  await call(agent.client, "set_credential", { ws: wsA, srv: srv.id, value: UPSTREAM_KEY, origin: up.url });
  const verified = await call(agent.client, "verify_server", { ws: wsA, srv: srv.id });
  assert.equal(verified.state, "verified", JSON.stringify(verified));
  const published = await call(agent.client, "publish_server", { ws: wsA, srv: srv.id });
  assert.equal(published.server.published, true);
  const key = await call(agent.client, "create_access_key", { ws: wsA, srv: srv.id, name: "for the user" });
  const config = published.server.client_config;
  assert.ok(config, JSON.stringify(published.server));

  // The configuration it was given works: a strict SDK client calls a tool that reaches the API.
  const seen = up.received.length;
  const served = new McpClient({ name: "end-user", version: "1" });
  await served.connect(new StreamableHTTPClientTransport(new URL(published.server.mcp_url), { requestInit: { headers: { authorization: `Bearer ${key.key}` } } }));
  const widgets = await served.callTool({ name: "listWidgets", arguments: {} });
  assert.notEqual(widgets.isError, true, JSON.stringify(widgets));
  assert.ok(up.received.slice(seen).some((r) => r.url.startsWith("/api/widgets") && r.headers["x-api-key"] === UPSTREAM_KEY), "the call reached the fake API with the owner's key");
  assert.deepEqual((await served.listTools()).tools.map((t) => t.name).sort(), ["getWidget", "listWidgets"], "the disabled tool is not served");
  await served.close();

  // Every step is in the workspace's audit log, under the agent's connection.
  let audit;
  for (let i = 0; i < 20; i++) {
    audit = await owner.get(`/api/v1/workspaces/${wsA}/audit?server=flowcp`);
    if (audit.body?.items?.length >= 10) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(audit.status, 200, JSON.stringify(audit.body));
  assert.ok(audit.body.items.length >= 10, JSON.stringify(audit.body.items.length));
  assert.ok(audit.body.items.every((e) => e.server_id === "flowcp" && e.connection_hash), JSON.stringify(audit.body.items[0]));
});

test("onboard_api does the whole job in one call, and reports every step", async () => {
  const out = await call(agent.client, "onboard_api", {
    ws: wsA, url: `${up.url}/openapi.json`, name: "Widgets (read-only)", read_only: true,
    auth_mode: "api_key", credential: UPSTREAM_KEY, credential_origin: up.url,
  });
  assert.equal(out.published, true, JSON.stringify(out.steps));
  assert.deepEqual(out.steps.map((s) => s.step), ["create the app", "import the document", "choose the tools", "create the server", "configure auth", "set the credential", "verify", "publish", "create an access key"]);
  const served = new McpClient({ name: "end-user", version: "1" });
  await served.connect(new StreamableHTTPClientTransport(new URL(out.server.mcp_url), { requestInit: { headers: { authorization: `Bearer ${out.access_key}` } } }));
  assert.deepEqual((await served.listTools()).tools.map((t) => t.name).sort(), ["getWidget", "listWidgets"], "read-only tools only");
  const r = await served.callTool({ name: "getWidget", arguments: { widgetId: 1 } });
  assert.notEqual(r.isError, true, JSON.stringify(r));
  await served.close();
  // A bad URL stops at the import, with the reason, and names what was made.
  const bad = await call(agent.client, "onboard_api", { ws: wsA, url: `${up.url}/no-such-document.json` });
  assert.equal(bad.published, false);
  assert.deepEqual(bad.steps.map((s) => [s.step, s.ok]), [["create the app", true], ["import the document", false]]);
  assert.match(bad.steps[1].detail, /import_document/);
  assert.ok(bad.app_id);
});

// A value of the right shape for a required argument, so that a refusal is about the workspace.
function filler(schema = {}) {
  if (schema.enum) return schema.enum[0];
  if (schema.oneOf || schema.anyOf) return filler((schema.oneOf ?? schema.anyOf)[0]);
  if (schema.type === "object" || schema.properties) {
    return Object.fromEntries((schema.required ?? []).map((p) => [p, filler(schema.properties?.[p])]));
  }
  switch (Array.isArray(schema.type) ? schema.type[0] : schema.type) {
    case "integer": case "number": return 1;
    case "boolean": return true;
    case "array": return [];
    default: return schema.minLength > 3 ? "x".repeat(schema.minLength) : "value_1";
  }
}

test("a token bound to one workspace gets not-found for every tool naming another", async () => {
  const { tools } = await agent.client.listTools();
  const naming = tools.filter((t) => t.inputSchema.properties?.ws);
  assert.ok(naming.length >= 25, `${naming.length} tools name a workspace`);
  for (const t of naming) {
    const args = { ws: wsB };
    for (const p of t.inputSchema.required ?? []) if (p !== "ws") args[p] = filler(t.inputSchema.properties[p]);
    const r = await agent.client.callTool({ name: t.name, arguments: args });
    assert.equal(r.isError, true, `${t.name}: ${JSON.stringify(r)}`);
    assert.match(r.content[0].text, /404|not found/i, `${t.name}: ${r.content[0].text}`);
  }
  // Nothing was made in the other workspace.
  const apps = await owner.get(`/api/v1/workspaces/${wsB}/apps`);
  assert.deepEqual(apps.body.items, []);
});

test("a member's token cannot publish; the account lists and disconnects its agents", async () => {
  const member = new Client(w.url);
  await member.signup("agent-member@example.com");
  await inviteAndAccept(owner, wsA, member, "agent-member@example.com", "member");
  const m = await connect(member, wsA, "Member agent");
  const servers = await call(m.client, "list_servers", { ws: wsA });
  const srv = servers.items[0];
  const r = await m.client.callTool({ name: "publish_server", arguments: { ws: wsA, srv: srv.id } });
  assert.equal(r.isError, true);
  assert.match(r.content[0].text, /403/, r.content[0].text);
  const keys = await m.client.callTool({ name: "create_access_key", arguments: { ws: wsA, srv: srv.id, name: "nope" } });
  assert.equal(keys.isError, true, "nor create access keys");

  // The owner's own connections: listed with their workspace, and ended at once.
  const mine = await owner.get("/api/v1/me/connections");
  assert.equal(mine.status, 200);
  assert.deepEqual(mine.body.items.map((c) => [c.client_name, c.workspace_name]), [["Agent e2e", "Billing"]]);
  assert.equal((await member.get("/api/v1/me/connections")).body.items.length, 1, "each account sees its own");
  const gone = await owner.del(`/api/v1/me/connections/${mine.body.items[0].connection_hash}`);
  assert.equal(gone.status, 204);
  const raw = await fetch(`${w.url}/mcp`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${agent.provider.tokens().access_token}` },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} }),
  });
  assert.equal(raw.status, 401);
  assert.match(raw.headers.get("www-authenticate"), /invalid_token/);
  const refresh = await fetch(`${w.url}/oauth/token`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: agent.provider.tokens().refresh_token }).toString() });
  assert.equal((await refresh.json()).error, "invalid_grant");
  assert.equal((await owner.get("/api/v1/me/connections")).body.items[0].revoked_at > 0, true);
  await m.client.close();
});
