// Issue 19: audit events travel through a Cloudflare Queue, run for real by wrangler dev (the
// producer binding and this Worker's own consumer, wrangler.toml). 64 official SDK clients make
// 50 calls each; exactly 3,200 rows land, each counted once in the plan's counters, also when
// the consumer fails every first delivery (the queue redelivers) and when every send fails
// (the events are written directly).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Client as McpClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Client, startWorker, testSecrets, sleep, d1 } from "./harness.mjs";
import { startEchoUpstream } from "./echo-upstream.mjs";

const up = await startEchoUpstream();
// Every Worker started here is stopped at the end, also when a test fails half-way (a leaked
// wrangler dev keeps a core busy and skews whatever runs next).
const workers = [];
after(async () => {
  for (const w of workers) await w.stop();
  await up.close();
});

/** A Worker with one published api_key server; `faults` are the development-only fault vars. */
async function setUp(faults) {
  const w = await startWorker({
    vars: { ...testSecrets(), FLOWCP_RATE_LIMITS: "off", FLOWCP_DEFAULT_PLAN: "pro", ...faults },
  });
  workers.push(w);
  const owner = new Client(w.url);
  const ws = (await owner.signup(`queue-${Math.random().toString(36).slice(2)}@example.com`)).workspace.id;
  const P = (p) => `/api/v1/workspaces/${ws}${p}`;
  const app = (await owner.post(P("/apps"), { name: "Echo" })).body.id;
  assert.equal((await owner.post(P(`/apps/${app}/imports`), { url: `${up.url}/openapi.json` })).status, 201);
  const srv = (await owner.post(P("/servers"), { app_id: app, name: "Queued" })).body;
  assert.equal((await owner.patch(P(`/servers/${srv.id}`), { auth_mode: "none", probe_tool: "ping" })).status, 200);
  assert.equal((await owner.post(P(`/servers/${srv.id}/verify`))).body.state, "verified");
  assert.equal((await owner.post(P(`/servers/${srv.id}/publish`))).status, 200);
  const key = (await owner.post(P(`/servers/${srv.id}/keys`), {})).body.key;
  const calls = async () => (await owner.get(P(`/activity?server=${srv.id}`))).body.total.calls;
  return { w, srv, key, calls };
}

/** `clients` SDK clients making `each` sequential calls; every call must succeed. */
async function load({ srv, key }, clients, each) {
  const connected = await Promise.all(Array.from({ length: clients }, async () => {
    const transport = new StreamableHTTPClientTransport(new URL(srv.mcp_url), { requestInit: { headers: { Authorization: `Bearer ${key}` } } });
    const c = new McpClient({ name: "queue-e2e", version: "1.0.0" });
    await c.connect(transport);
    return c;
  }));
  const failures = [];
  await Promise.all(connected.map(async (c) => {
    for (let i = 0; i < each; i++) {
      const r = await c.callTool({ name: "ping", arguments: {} });
      if (r.isError) failures.push(r.content?.[0]?.text);
    }
  }));
  await Promise.all(connected.map((c) => c.close()));
  assert.deepEqual(failures, [], "every call succeeds");
}

/** Waits for `n` audited calls, then checks no late duplicate arrives; returns the D1 counts. */
async function settle(setup, n) {
  const { w, srv, calls } = setup;
  let seen = 0;
  for (const end = Date.now() + 120_000; Date.now() < end; await sleep(500)) {
    seen = await calls();
    if (seen >= n) break;
  }
  assert.equal(seen, n, `audited calls after the load: ${seen} of ${n}`);
  await sleep(6_000); // a duplicate redelivery (the fault's retries come after 1 s) would land within this
  assert.equal(await calls(), n, "no late duplicate");
  await w.stop();
  const [rows] = d1(w.stateDir, `SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids FROM audit_events WHERE server_id = '${srv.id}'`);
  const counters = d1(w.stateDir, `SELECT subject, calls FROM usage_counters WHERE server_id = '${srv.id}' ORDER BY subject`);
  w.cleanup();
  return { rows, counters };
}

test("64 clients x 50 calls through the queue: exactly 3,200 audit rows, each counted once", async () => {
  const setup = await setUp({});
  await load(setup, 64, 50);
  const logs = () => setup.w.logs();
  const { rows, counters } = await settle(setup, 3200);
  assert.deepEqual(rows, { n: 3200, ids: 3200 });
  assert.equal(counters.length, 2, JSON.stringify(counters));
  assert.ok(counters.every((c) => c.calls === 3200), JSON.stringify(counters));
  assert.doesNotMatch(logs(), /writing them directly|audit write of/, "every event went through the queue");
});

test("the consumer failing every first delivery: the queue retries, still 3,200 rows and no duplicates", async () => {
  const setup = await setUp({ FLOWCP_FAULT_AUDIT_CONSUMER: "fail-first" });
  await load(setup, 64, 50);
  const { rows, counters } = await settle(setup, 3200);
  assert.match(setup.w.logs(), /audit queue: fault injected, retrying \d+ first deliveries/);
  assert.deepEqual(rows, { n: 3200, ids: 3200 });
  assert.ok(counters.every((c) => c.calls === 3200), JSON.stringify(counters));
});

test("every queue send failing: the events are written directly, none lost, and the fallback is logged", async () => {
  const setup = await setUp({ FLOWCP_FAULT_AUDIT_QUEUE: "send" });
  await load(setup, 16, 25);
  const { rows, counters } = await settle(setup, 400);
  assert.match(setup.w.logs(), /audit queue: a send of \d+ events failed \(fault injected \(FLOWCP_FAULT_AUDIT_QUEUE=send\)\); writing them directly \(\d+ events so far in this isolate\)/);
  assert.deepEqual(rows, { n: 400, ids: 400 });
  assert.ok(counters.every((c) => c.calls === 400), JSON.stringify(counters));
});
