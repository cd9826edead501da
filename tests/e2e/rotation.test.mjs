// The key-rotation drill (security review S5) under wrangler dev, on one persisted state:
//   1. with key k1: servers with credentials are published, secrets are stored, an owner signs in;
//   2. restart with `k2,k1` and a new session secret (the old one as previous): the re-seal job
//      runs page by page until done; the owner's session still works;
//   3. restart with `k2` only (k1 removed) and no previous session secret: every server still
//      calls its API with its credential (official MCP SDK client), a dry run opens every
//      envelope, and the old session is signed out.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Client as McpClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Client, d1, newState, startWorker, testSecrets } from "./harness.mjs";
import { startFakeUpstream } from "./fake-upstream.mjs";

const UPSTREAM_KEY = "upstream-key-for-rotation-0042";
const k1 = "k1:" + randomBytes(32).toString("hex");
const k2 = "k2:" + randomBytes(32).toString("hex");
const base = testSecrets();
const oldSession = base.FLOWCP_SESSION_SECRET;
const newSession = randomBytes(32).toString("hex");
const stateDir = newState();
let up, w;
after(async () => { await w?.stop(); w?.cleanup(); await up?.close(); });

async function reseal(url, query = "") {
  const r = await fetch(`${url}/ops/reseal${query}`, {
    method: "POST", headers: { authorization: `Bearer ${base.FLOWCP_OPERATOR_TOKEN}` },
  });
  return { status: r.status, body: await r.json() };
}

async function callWidgets(server) {
  // The Worker's port changes with each restart: the server's path stays.
  const transport = new StreamableHTTPClientTransport(new URL(`${w.url}/mcp/${server.id}`), {
    requestInit: { headers: { Authorization: `Bearer ${server.key}` } },
  });
  const client = new McpClient({ name: "rotation-drill", version: "1.0.0" });
  await client.connect(transport);
  try {
    return await client.callTool({ name: "listWidgets", arguments: {} });
  } finally {
    await client.close();
  }
}

test("rotation drill: re-seal under k2, remove k1, everything still opens and calls its API", async () => {
  up = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  // 1. Everything sealed under k1.
  w = await startWorker({ vars: { ...base, FLOWCP_ENCRYPTION_KEYS: k1 }, stateDir });
  const owner = new Client(w.url);
  const ws = (await owner.signup("rotation@example.com")).workspace.id;
  const P = (p) => `/api/v1/workspaces/${ws}${p}`;
  const app = (await owner.post(P("/apps"), { name: "Widgets" })).body;
  assert.equal((await owner.post(P(`/apps/${app.id}/imports`), { url: `${up.url}/openapi.json` })).status, 201);
  const servers = [];
  for (const name of ["one", "two", "three"]) {
    const srv = (await owner.post(P("/servers"), { app_id: app.id, name })).body;
    assert.equal((await owner.patch(P(`/servers/${srv.id}`), { auth_mode: "api_key", auth_config: { in: "header", name: "X-Api-Key" } })).status, 200);
    assert.equal((await owner.put(P(`/servers/${srv.id}/credential`), { value: UPSTREAM_KEY, origin: up.url })).status, 200);
    assert.equal((await owner.post(P(`/servers/${srv.id}/verify`))).body.state, "verified");
    assert.equal((await owner.post(P(`/servers/${srv.id}/publish`))).status, 200);
    const key = (await owner.post(P(`/servers/${srv.id}/keys`), {})).body.key;
    servers.push({ id: srv.id, key });
  }
  for (const name of ["ALPHA", "BETA"]) {
    assert.equal((await owner.put(P(`/secrets/${name}`), { value: `value-of-${name}` })).status, 200);
  }
  const before = await callWidgets(servers[0]);
  assert.equal(before.isError, undefined, JSON.stringify(before));
  // Without the operator token the job is refused.
  assert.equal((await fetch(`${w.url}/ops/reseal`, { method: "POST" })).status, 401);
  await w.stop();
  // The job leaves records changed in the last two minutes for a later run (KV reads lag D1);
  // age them instead of waiting.
  d1(stateDir, "UPDATE servers SET updated_at = updated_at - 600000; UPDATE workspace_secrets SET updated_at = updated_at - 600000");

  // 2. k2 first, k1 still there; the session secret rotated with the old one as previous.
  w = await startWorker({
    vars: { ...base, FLOWCP_ENCRYPTION_KEYS: `${k2},${k1}`, FLOWCP_SESSION_SECRET: newSession, FLOWCP_SESSION_SECRET_PREVIOUS: oldSession },
    stateDir,
  });
  owner.base = w.url;
  assert.equal((await owner.get("/api/v1/me")).status, 200, "the session signed with the previous secret still works");
  assert.equal((await owner.post(P("/apps"), { name: "During rotation" })).status, 201, "and so do its writes (CSRF)");
  assert.equal((await reseal(w.url, "?cursor=garbage")).status, 400);
  assert.equal((await reseal(w.url, "?limit=many")).status, 400);
  const get = await fetch(`${w.url}/ops/reseal`, { headers: { authorization: `Bearer ${base.FLOWCP_OPERATOR_TOKEN}` } });
  assert.equal(get.status, 405, "the job runs only on POST");
  const dry = await reseal(w.url, "?dry_run=1");
  assert.equal(dry.status, 200, JSON.stringify(dry.body));
  // Three servers (draft + live copy each) and two secrets.
  assert.deepEqual([dry.body.examined, dry.body.opened_with_older_key, dry.body.resealed], [8, 8, 0], JSON.stringify(dry.body));
  let cursor = null, calls = 0, resealed = 0;
  do {
    const r = await reseal(w.url, `?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.failed, []);
    assert.equal(r.body.primary_key_id, "k2");
    resealed += r.body.resealed;
    cursor = r.body.next_cursor ?? null;
    calls += 1;
    assert.ok(calls < 10, "the job ends");
  } while (cursor);
  assert.equal(resealed, 8);
  assert.ok(calls >= 3, "the job ran in pages");
  await w.stop();

  // 3. k1 removed, previous session secret dropped.
  w = await startWorker({ vars: { ...base, FLOWCP_ENCRYPTION_KEYS: k2, FLOWCP_SESSION_SECRET: newSession }, stateDir });
  for (const s of servers) {
    const r = await callWidgets(s);
    assert.equal(r.isError, undefined, `${s.id}: ${JSON.stringify(r)}`);
    assert.deepEqual(r.structuredContent, { items: [{ id: 1, name: "gear" }] });
  }
  const check = await reseal(w.url, "?dry_run=1");
  assert.deepEqual([check.body.examined, check.body.current, check.body.failed.length], [8, 8, 0], JSON.stringify(check.body));
  const old = new Client(w.url);
  old.cookie = owner.cookie;
  assert.equal((await old.get("/api/v1/me")).status, 401, "the previous secret is gone: signed out");
  for (const r of [dry, check]) assert.ok(!JSON.stringify(r.body).includes(UPSTREAM_KEY));
});
