// Git integration end to end (issue 17), under wrangler dev against a fake GitHub on 127.0.0.1
// (OAuth with PKCE and refresh rotation, REST branches, commits with ETags, contents and hooks,
// signed push deliveries) and a fake upstream API: an app follows a branch; a push triggers a
// signed webhook, a re-import with curation kept and a change report; with auto-publish on, the
// official MCP SDK client sees the new tool. Bad signatures, replays and broken documents change
// nothing; a revoked token breaks the connection with a message; tokens are stored only sealed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Client as McpClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Client, d1, sleep, startWorker, testSecrets } from "./harness.mjs";
import { startFakeUpstream } from "./fake-upstream.mjs";
import { connectGitHub, githubVars, startFakeGitHub } from "./fake-github.mjs";

const REPO = "octo/widgets";
let w, up, gh, owner, ws, appId, conn, srv;
const P = (p) => `/api/v1/workspaces/${ws}${p}`;

/** The upstream's document at `version` (1: list/get/create; 2: create dropped, delete added). */
async function upstreamDoc(version) {
  up.setVersion(version);
  return JSON.stringify(await (await fetch(`${up.url}/openapi.json`)).json(), null, 2);
}

/** Waits until the source's last sync is newer than `since` (a webhook syncs after answering). */
async function syncedAfter(since) {
  for (let i = 0; i < 100; i++) {
    const s = (await owner.get(P(`/apps/${appId}/source`))).body;
    if (s.checked_at && s.checked_at > since) return s;
    await sleep(100);
  }
  throw new Error("no sync after the delivery");
}

async function toolNames() {
  return (await owner.get(P(`/apps/${appId}/tools`))).body.items.map((t) => t.name).sort();
}

before(async () => {
  up = await startFakeUpstream();
  gh = await startFakeGitHub();
  gh.addRepo(REPO, { files: { "api/openapi.json": await upstreamDoc(1), "README.md": "widgets" } });
  w = await startWorker({ vars: { ...testSecrets(), ...githubVars(gh) } });
  owner = new Client(w.url);
  ws = (await owner.signup("git-owner@example.com")).workspace.id;
  appId = (await owner.post(P("/apps"), { name: "Widgets" })).body.id;
});
after(async () => { await w?.stop(); w?.cleanup(); await up?.close(); await gh?.close(); });

test("connecting GitHub: consent with PKCE, back to the app page, listed without tokens", async () => {
  const c = await connectGitHub(owner, ws, { app: appId });
  assert.equal(c.status, 302);
  assert.equal(c.location, `/apps/${appId}?git=connected`);
  const url = new URL(c.started.authorize_url);
  assert.equal(url.searchParams.get("code_challenge_method"), "S256");
  assert.equal(url.searchParams.get("redirect_uri"), `${w.url}/git/callback`);
  conn = c.id;
  const list = (await owner.get(P("/git/connections"))).body.items;
  assert.deepEqual(list.map((x) => [x.id, x.status, x.account]), [[conn, "active", "octocat"]]);
  assert.ok(!JSON.stringify(list).match(/gh[ur]_/), "no token in the listing");
  assert.equal(gh.stats.codeExchanges, 1);
});

test("test connection lists branches and checks that the document parses", async () => {
  const r = await owner.post(P("/git/test"), { connection_id: conn, repo: REPO, branch: "main", path: "api/openapi.json" });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body.branches, ["main"]);
  assert.equal(r.body.file.ok, true);
  assert.equal(r.body.file.tool_count, 3);
  const bad = await owner.post(P("/git/test"), { connection_id: conn, repo: REPO, branch: "main", path: "README.md" });
  assert.equal(bad.body.file.ok, false);
  assert.match(bad.body.file.error, /cannot be imported/);
  const missing = await owner.post(P("/git/test"), { connection_id: conn, repo: "octo/nope" });
  assert.equal(missing.status, 422);
  assert.equal(missing.body.error.code, "git_not_found");
});

test("a connected app follows a branch: webhook created, first sync imported, server published", async () => {
  const r = await owner.put(P(`/apps/${appId}/source`), { connection_id: conn, repo: REPO, branch: "main", path: "api/openapi.json", auto_publish: true });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.sync.outcome, "imported");
  assert.equal(r.body.source.webhook_created, true);
  assert.equal(r.body.webhook_secret, null);
  const hooks = gh.hooks(REPO);
  assert.equal(hooks.length, 1);
  assert.equal(hooks[0].url, `${w.url}/git/webhooks/${r.body.source.id}`);
  await gh.settled();
  assert.equal(gh.deliveries.find((d) => d.event === "ping")?.status, 200, "GitHub's ping is answered");
  assert.deepEqual(await toolNames(), ["createWidget", "getWidget", "listWidgets"]);
  const imp = (await owner.get(P(`/apps/${appId}/imports`))).body.items[0];
  assert.equal(imp.source_kind, "git");
  assert.equal(imp.commit.sha.length, 40);
  assert.ok(imp.source_url.startsWith(`${gh.url}/${REPO}/blob/`));

  // The owner curates and puts a server on the air.
  const tools = (await owner.get(P(`/apps/${appId}/tools`))).body.items;
  const list = tools.find((t) => t.name === "listWidgets");
  assert.equal((await owner.patch(P(`/apps/${appId}/tools/${list.id}`), { name: "list_all_widgets" })).status, 200);
  srv = (await owner.post(P("/servers"), { app_id: appId, name: "Widgets" })).body;
  assert.equal((await owner.patch(P(`/servers/${srv.id}`), { is_public: true, probe_tool: "list_all_widgets" })).status, 200);
  assert.equal((await owner.post(P(`/servers/${srv.id}/verify`))).body.state, "verified");
  assert.equal((await owner.post(P(`/servers/${srv.id}/publish`))).status, 200);
});

test("push to publish: a signed webhook re-imports with curation kept, reports the change, and the MCP client sees the new tool", async () => {
  const since = Date.now();
  const pushed = await gh.push(REPO, "main", { "api/openapi.json": await upstreamDoc(2) }, { message: "Drop create, add delete\n\nDetails", author: "Grace" });
  assert.equal(pushed.deliveries.length, 1);
  assert.equal(pushed.deliveries[0].status, 202, pushed.deliveries[0].body);
  const source = await syncedAfter(since);
  const report = source.last_sync;
  assert.equal(report.outcome, "imported", JSON.stringify(report));
  assert.equal(report.trigger, "webhook");
  assert.equal(report.commit.sha, pushed.sha);
  assert.equal(report.commit.author, "Grace");
  assert.equal(report.commit.message, "Drop create, add delete");
  assert.deepEqual(report.added, ["deleteWidget"]);
  assert.deepEqual(report.removed, ["createWidget"]);
  assert.equal(report.servers.length, 1);
  assert.equal(report.servers[0].verification, "verified", JSON.stringify(report.servers));
  assert.equal(report.servers[0].published_version, 2);
  assert.deepEqual(await toolNames(), ["deleteWidget", "getWidget", "list_all_widgets"], "the curated name survived");

  await sleep(1100); // an isolate trusts the live-version pointer for 1 s
  const transport = new StreamableHTTPClientTransport(new URL(srv.mcp_url));
  const client = new McpClient({ name: "flowcp-git-e2e", version: "1.0.0" });
  await client.connect(transport);
  const names = (await client.listTools()).tools.map((t) => t.name).sort();
  await client.close();
  assert.deepEqual(names, ["deleteWidget", "getWidget", "list_all_widgets"]);
});

test("a bad signature, a replayed delivery and a push to another branch change nothing", async () => {
  const importsBefore = (await owner.get(P(`/apps/${appId}/imports`))).body.items.length;
  const hook = gh.hooks(REPO)[0];
  const body = JSON.stringify({ ref: "refs/heads/main", after: "f".repeat(40), repository: { full_name: REPO } });
  const forged = await gh.deliverRaw(hook.url, {
    headers: { "content-type": "application/json", "x-github-event": "push", "x-github-delivery": "forged-1", "x-hub-signature-256": gh.sign("not-the-secret", body) },
    body,
  });
  assert.equal(forged.status, 401);
  const unsigned = await gh.deliverRaw(hook.url, { headers: { "content-type": "application/json", "x-github-event": "push", "x-github-delivery": "forged-2" }, body });
  assert.equal(unsigned.status, 401);
  const last = gh.deliveries.filter((d) => d.event === "push").at(-1);
  const replay = await gh.redeliver(last.id);
  assert.equal(replay.status, 200);
  assert.match(replay.body, /duplicate/);
  const other = await gh.push(REPO, "dev", { "api/openapi.json": "{}" });
  assert.equal(other.deliveries[0].status, 202);
  assert.match(other.deliveries[0].body, /ignored/);
  assert.equal((await owner.get(P(`/apps/${appId}/imports`))).body.items.length, importsBefore);
  assert.equal((await owner.get(`/git/webhooks/${"x".repeat(10)}`)).status, 405, "only POST");
  assert.equal((await owner.post("/git/webhooks/gsrc_nope", {})).status, 404);
});

test("a pushed document that does not parse changes nothing and the owner sees why", async () => {
  const before = await toolNames();
  const since = Date.now();
  const pushed = await gh.push(REPO, "main", { "api/openapi.json": "{ \"openapi\": \"3.0.3\", \"paths\": {" });
  assert.equal(pushed.deliveries[0].status, 202);
  const source = await syncedAfter(since);
  assert.equal(source.status, "failed");
  assert.equal(source.last_sync.outcome, "failed");
  assert.match(source.message, /tools are unchanged/);
  assert.deepEqual(await toolNames(), before);
  // "Sync now" after a fix recovers, with the ETag poll costing one request when nothing moved.
  await gh.push(REPO, "main", { "api/openapi.json": await upstreamDoc(2) }, { deliver: false });
  const r = await owner.post(P(`/apps/${appId}/source/sync`));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.notEqual(r.body.outcome, "failed", JSON.stringify(r.body));
  assert.equal((await owner.get(P(`/apps/${appId}/source`))).body.status, "ok");
});

test("rollback publishes the tools of an earlier import", async () => {
  const imports = (await owner.get(P(`/apps/${appId}/imports`))).body.items;
  const first = imports.at(-1);
  const r = await owner.post(P(`/apps/${appId}/imports/${first.id}/restore`));
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal(r.body.restored_from, first.id);
  assert.deepEqual(await toolNames(), ["createWidget", "getWidget", "list_all_widgets"]);
  assert.equal((await owner.post(P(`/servers/${srv.id}/verify`))).body.state, "verified");
  assert.equal((await owner.post(P(`/servers/${srv.id}/publish`))).status, 200);
});

test("a token revoked at GitHub marks the connection broken with a clear message", async () => {
  gh.expireAccessTokens();
  const refreshesBefore = gh.stats.refreshes;
  await gh.push(REPO, "main", { "api/openapi.json": (await upstreamDoc(1)).replace("List widgets", "List every widget") }, { deliver: false });
  let r = await owner.post(P(`/apps/${appId}/source/sync`));
  assert.equal(r.body.outcome, "imported", JSON.stringify(r.body));
  assert.equal(gh.stats.refreshes, refreshesBefore + 1, "an expired access token is refreshed once, with rotation");
  gh.revokeAll();
  await gh.push(REPO, "main", { "api/openapi.json": await upstreamDoc(2) }, { deliver: false });
  r = await owner.post(P(`/apps/${appId}/source/sync`));
  assert.equal(r.body.outcome, "broken");
  assert.match(r.body.message, /connect GitHub again/);
  const c = (await owner.get(P("/git/connections"))).body.items[0];
  assert.equal(c.status, "broken");
  assert.match(c.status_message, /refused/);
  assert.equal((await owner.get(P(`/apps/${appId}/source`))).body.status, "broken");
  assert.equal(gh.stats.tokenInUrl, 0, "no token ever in a URL");
});

test("the Git tokens are stored only sealed in D1 and KV; disconnecting deletes them", async () => {
  // Connect again (the broken connection stays until removed), then remove the broken one.
  const again = await connectGitHub(owner, ws);
  assert.equal(again.location, "/?git=connected");
  assert.equal((await owner.get(P("/git/connections"))).body.items.length, 2);
  assert.equal((await owner.del(P(`/git/connections/${conn}`))).status, 204);
  assert.deepEqual((await owner.get(P("/git/connections"))).body.items.map((c) => c.status), ["active"]);
  const source = (await owner.get(P(`/apps/${appId}/source`))).body;
  assert.equal(source.status, "broken");
  assert.equal(source.connection_id, null);
  // The local D1 is read only once the Worker is stopped (a second process on its SQLite file
  // while wrangler dev runs can break the running one).
  await w.stop();
  const live = d1(w.stateDir, "SELECT refresh_sealed, access_sealed FROM git_connections");
  assert.equal(live.length, 1, "the removed connection's row and tokens are gone");
  assert.match(live[0].refresh_sealed, /^fcp1\./);
  assert.match(live[0].access_sealed, /^fcp1\./);
  const files = [];
  const walk = (d) => { for (const f of readdirSync(d)) { const p = join(d, f); if (statSync(p).isDirectory()) walk(p); else files.push(p); } };
  walk(w.stateDir);
  const haystack = files.map((f) => readFileSync(f).toString("latin1")).join("\n");
  assert.ok(gh.tokens.length >= 3, "two consents and a refresh");
  for (const t of gh.tokens) {
    assert.ok(!haystack.includes(t.access_token), `an access token in clear: ${t.access_token.slice(0, 8)}…`);
    if (t.refresh_token) assert.ok(!haystack.includes(t.refresh_token), `a refresh token in clear: ${t.refresh_token.slice(0, 8)}…`);
  }
  for (const h of gh.hooks(REPO)) assert.ok(!haystack.includes(h.secret), "the webhook secret only sealed");
  assert.ok(!haystack.includes(gh.clientSecret), "the client secret is never stored");
  w.cleanup();
  w = null;
});
