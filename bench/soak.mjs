// Load and soak (issue 19): N official MCP SDK clients over M published servers under wrangler
// dev (the real runtime, its local D1, KV and Queues), for a set time, against a fake upstream
// that injects 503s, hangs and resets (bench/soak-upstream.mjs). Each client loops: mostly
// `tools/call`, some `tools/list`, and on the discovery server `search_tools` and `call_tool`.
//
// It reports req/s, p50/p99 per kind of request, the results by kind (ok, each upstream fault
// as the tool error it became, and any protocol or transport error, which must be none), the
// audit rows written against the audited calls made (must be equal, counted in D1 after the
// queue drains), and workerd's RSS and the isolate's wasm memory over time (must be flat).
// Exit code 1 when a check fails. Not part of `make test`: `make soak` (after `make build`).
//
// SOAK_CLIENTS (32, up to 128), SOAK_SERVERS (4), SOAK_SECONDS (600), SOAK_SAMPLE_SECONDS (15),
// and the upstream's fault shares (see bench/soak-upstream.mjs).
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Client as McpClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Client, ROOT, d1, freePort, sleep, startWorker, testSecrets } from "../tests/e2e/harness.mjs";
import { CORPUS } from "./lib.mjs";
import { percentile } from "./load.mjs";

const CLIENTS = Math.min(128, Number(process.env.SOAK_CLIENTS ?? 32));
const SERVERS = Math.max(2, Number(process.env.SOAK_SERVERS ?? 4));
const SECONDS = Number(process.env.SOAK_SECONDS ?? 600);
const SAMPLE_S = Number(process.env.SOAK_SAMPLE_SECONDS ?? 15);
const UPSTREAM_TIMEOUT_MS = 1000;
const log = (...a) => console.error("[soak]", ...a);

// Nothing else may be measured: a leaked workerd of an earlier run would share the RSS figures.
const stray = spawnSync("pgrep", ["-f", "workerd serve"], { encoding: "utf8" }).stdout.trim();
if (stray) {
  console.error(`soak: workerd is already running (pids ${stray.split("\n").join(", ")}); stop it first`);
  process.exit(2);
}

// The fake upstream, in its own process.
const upPort = await freePort();
const upstream = spawn(process.execPath, [join(ROOT, "bench/soak-upstream.mjs"), String(upPort)], { stdio: ["ignore", "pipe", "inherit"], detached: true });
const up = `http://127.0.0.1:${upPort}`;
for (let i = 0; ; i++) {
  try { if ((await fetch(`${up}/__stats`)).ok) break; } catch { /* not yet */ }
  if (i > 100) throw new Error("the fake upstream did not start");
  await sleep(100);
}

const vars = { ...testSecrets(), FLOWCP_RATE_LIMITS: "off", FLOWCP_DEFAULT_PLAN: "team", FLOWCP_UPSTREAM_TIMEOUT_MS: String(UPSTREAM_TIMEOUT_MS) };
const w = await startWorker({ vars, logLevel: "warn" });
const stopAll = async () => {
  await w.stop();
  try { process.kill(-upstream.pid, "SIGTERM"); } catch { /* gone */ }
};
process.on("SIGINT", async () => { await stopAll(); process.exit(130); });

// M servers, each in its own workspace (its own tenant): api_key and none alternate; the last
// is in discovery mode. Every client gets its own access key (its own audit connection).
const doc = JSON.parse(readFileSync(join(CORPUS, "examples/3.0/petstore.json"), "utf8"));
doc.servers = [{ url: `${up}/v2` }];
const servers = [];
for (let s = 0; s < SERVERS; s++) {
  const owner = new Client(w.url);
  const ws = (await owner.signup(`soak-${s}-${Date.now()}@example.com`)).workspace.id;
  const P = (p) => `/api/v1/workspaces/${ws}${p}`;
  const app = (await owner.post(P("/apps"), { name: `Petstore ${s}` })).body.id;
  const imp = await owner.call("POST", P(`/apps/${app}/imports`), { body: JSON.stringify(doc), contentType: "application/json" });
  if (imp.status !== 201) throw new Error(`import: ${imp.status} ${JSON.stringify(imp.body)}`);
  const srv = (await owner.post(P("/servers"), { app_id: app, name: `Soak ${s}` })).body;
  const discovery = s === SERVERS - 1;
  const mode = s % 2 === 0 ? "api_key" : "none";
  const patch = { auth_mode: mode, discovery_mode: discovery, probe_tool: "getInventory", base_url: `${up}/v2` };
  if (mode === "api_key") patch.auth_config = { in: "header", name: "api_key" };
  let r = await owner.patch(P(`/servers/${srv.id}`), patch);
  if (r.status !== 200) throw new Error(`patch: ${JSON.stringify(r.body)}`);
  if (mode === "api_key") await owner.put(P(`/servers/${srv.id}/credential`), { value: `soak-secret-${s}`, origin: up });
  r = await owner.post(P(`/servers/${srv.id}/verify`));
  if (r.body.state !== "verified") throw new Error(`verify: ${JSON.stringify(r.body)}`);
  r = await owner.post(P(`/servers/${srv.id}/publish`));
  if (r.status !== 200) throw new Error(`publish: ${JSON.stringify(r.body)}`);
  servers.push({ owner, P, srv, discovery, mode });
}
const keys = [];
for (let i = 0; i < CLIENTS; i++) {
  const s = servers[i % SERVERS];
  const r = await s.owner.post(s.P(`/servers/${s.srv.id}/keys`), {});
  if (r.status !== 201) throw new Error(`key ${i}: ${r.status} ${JSON.stringify(r.body)}`);
  keys.push(r.body.key);
}
log(`${SERVERS} servers published (${servers.map((s) => `${s.mode}${s.discovery ? "+discovery" : ""}`).join(", ")}); ${CLIENTS} clients`);

// What a call's answer was, by kind. Tool errors name the upstream fault they came from.
function kindOf(result) {
  if (!result.isError) return "ok";
  const text = result.content?.[0]?.text ?? "";
  if (/HTTP 503/.test(text)) return "tool_error:upstream_503";
  if (/timed out|timeout/i.test(text)) return "tool_error:upstream_timeout";
  if (/could not be reached/.test(text)) return "tool_error:upstream_reset";
  return `tool_error:other: ${text.slice(0, 80)}`;
}

const OPS = [
  ["getPetById", { petId: 7 }],
  ["findPetsByStatus", { status: ["available"] }],
  ["addPet", { name: "rex", photoUrls: [] }],
];
const stats = { latencies: { call: [], list: [], search: [] }, kinds: {}, audited: new Map(), errors: [] };
const count = (k) => (stats.kinds[k] = (stats.kinds[k] ?? 0) + 1);
let done = 0;

async function runClient(i, deadline) {
  const s = servers[i % SERVERS];
  const transport = new StreamableHTTPClientTransport(new URL(s.srv.mcp_url), { requestInit: { headers: { Authorization: `Bearer ${keys[i]}` } } });
  const c = new McpClient({ name: `soak-${i}`, version: "1.0.0" });
  await c.connect(transport);
  const audited = (n = 1) => stats.audited.set(s.srv.id, (stats.audited.get(s.srv.id) ?? 0) + n);
  for (let k = 0; performance.now() < deadline; k++) {
    const t0 = performance.now();
    let what = "call";
    try {
      if (k % 10 === 9) {
        what = "list";
        await c.listTools();
        count("list_ok");
      } else if (s.discovery && k % 2 === 0) {
        what = "search";
        const r = await c.callTool({ name: "search_tools", arguments: { query: "pet status" } });
        count(r.isError ? "search_error" : "search_ok");
      } else {
        const [name, args] = OPS[k % OPS.length];
        const r = s.discovery
          ? await c.callTool({ name: "call_tool", arguments: { name, arguments: args } })
          : await c.callTool({ name, arguments: args });
        audited();
        count(kindOf(r));
      }
      stats.latencies[what].push(performance.now() - t0);
    } catch (e) {
      // A protocol or transport error: the SDK refused the answer or the request failed.
      // `tools/call`s that failed so are counted as audited only if the server answered.
      count(`protocol_or_transport_error:${what}`);
      if (stats.errors.length < 20) stats.errors.push(`${what}: ${String(e?.message ?? e).slice(0, 200)}`);
    }
    done++;
  }
  await c.close();
}

// Samples: requests done, workerd RSS (all its processes), the isolate's wasm memory.
const deep = { headers: { authorization: `Bearer ${vars.FLOWCP_OPERATOR_TOKEN}` } };
const rssMb = () => {
  const r = spawnSync("sh", ["-c", "for p in $(pgrep -f 'workerd serve'); do grep VmRSS /proc/$p/status; done"], { encoding: "utf8" });
  return Math.round(r.stdout.split("\n").reduce((a, l) => a + (Number(l.replace(/\D+/g, "")) || 0), 0) / 1024);
};
const wasmMb = async () => {
  try { return Math.round((await (await fetch(`${w.url}/healthz`, deep)).json()).memory.wasm_bytes / 2 ** 20); } catch { return null; }
};
const samples = [];
const t0 = performance.now();
const sample = async () => {
  const t = (performance.now() - t0) / 1000;
  const last = samples.at(-1);
  const rps = last ? (done - last.done) / (t - last.t) : 0;
  samples.push({ t: Math.round(t), done, rps: Math.round(rps), workerd_rss_mb: rssMb(), wasm_mb: await wasmMb() });
  const x = samples.at(-1);
  log(`t=${x.t}s requests=${x.done} req/s=${x.rps} workerd RSS=${x.workerd_rss_mb} MB wasm=${x.wasm_mb} MB`);
};

let failed = [];
let report;
try {
  await sample();
  const deadline = performance.now() + SECONDS * 1000;
  const timer = setInterval(sample, SAMPLE_S * 1000);
  await Promise.all(Array.from({ length: CLIENTS }, (_, i) => runClient(i, deadline)));
  clearInterval(timer);
  await sample();
  const elapsed = (performance.now() - t0) / 1000;
  const upstreamStats = await (await fetch(`${up}/__stats`)).json();

  // The queue drains: wait (through the owner API) until the audited calls reach the calls
  // made, and a little longer for late duplicates; then count the rows in D1 itself.
  const expected = [...stats.audited.values()].reduce((a, b) => a + b, 0);
  const activity = async () => {
    let n = 0;
    for (const s of servers) n += (await s.owner.get(s.P(`/activity?server=${s.srv.id}`))).body?.total?.calls ?? 0;
    return n;
  };
  const drainStart = performance.now();
  for (let i = 0; i < 120 && (await activity()) < expected; i++) await sleep(1000);
  const drain_s = Math.round((performance.now() - drainStart) / 100) / 10;
  await sleep(5000);
  await w.stop();
  const [audit] = d1(w.stateDir, "SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids FROM audit_events");
  const perServer = d1(w.stateDir, "SELECT server_id, COUNT(*) AS n FROM audit_events GROUP BY server_id");
  // What an audit row costs in D1 (the table and its indexes; SQLite's page accounting).
  let auditBytes = null;
  try {
    auditBytes = d1(w.stateDir, "SELECT SUM(pgsize) AS b FROM dbstat WHERE name = 'audit_events' OR name IN (SELECT name FROM sqlite_master WHERE tbl_name = 'audit_events')")[0]?.b ?? null;
  } catch { /* no dbstat in this SQLite */ }
  const lat = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return { n: s.length, p50_ms: Math.round(percentile(s, 50) * 10) / 10, p99_ms: Math.round(percentile(s, 99) * 10) / 10 };
  };
  const afterWarmup = samples.filter((x) => x.t >= Math.min(60, SECONDS / 4));
  const half = samples.filter((x) => x.t <= SECONDS / 2);
  const secondHalf = samples.filter((x) => x.t > SECONDS / 2);
  report = {
    started_at: new Date(Date.now() - elapsed * 1000).toISOString(),
    clients: CLIENTS,
    servers: SERVERS,
    seconds: SECONDS,
    requests: done,
    req_per_s: Math.round(done / SECONDS),
    latency: { tools_call: lat(stats.latencies.call), tools_list: lat(stats.latencies.list), discovery_search: lat(stats.latencies.search) },
    results_by_kind: stats.kinds,
    upstream_served: upstreamStats,
    audit: { calls_made: expected, rows: audit.n, distinct_event_ids: audit.ids, drain_s, bytes_per_row: auditBytes ? Math.round(auditBytes / audit.n) : null, per_server: perServer, expected_per_server: Object.fromEntries(stats.audited) },
    memory: {
      workerd_rss_mb_start: afterWarmup[0]?.workerd_rss_mb,
      workerd_rss_mb_end: samples.at(-1).workerd_rss_mb,
      workerd_rss_mb_max: Math.max(...afterWarmup.map((x) => x.workerd_rss_mb)),
      workerd_rss_mb_max_first_half: Math.max(...half.map((x) => x.workerd_rss_mb)),
      workerd_rss_mb_max_second_half: Math.max(...secondHalf.map((x) => x.workerd_rss_mb)),
      wasm_mb_start: afterWarmup[0]?.wasm_mb,
      wasm_mb_end: samples.at(-1).wasm_mb,
    },
    samples,
    first_errors: stats.errors,
  };
  const protocolErrors = Object.entries(stats.kinds).filter(([k]) => k.startsWith("protocol_or_transport_error") || k.startsWith("tool_error:other") || k === "search_error");
  if (protocolErrors.length) failed.push(`errors that are not upstream faults: ${JSON.stringify(Object.fromEntries(protocolErrors))}`);
  if (audit.n !== expected || audit.ids !== audit.n) failed.push(`audit rows ${audit.n} (${audit.ids} distinct) for ${expected} calls`);
  const m = report.memory;
  // Flat: workerd's RSS climbs at first under any Worker, then levels off (the trivial
  // forwarding Worker does the same: bench/runtime-rss.mjs); a leak keeps climbing. So the
  // second half's peak must stay within 10% of the first half's, and the isolate's wasm
  // memory (FlowCP's own heap) must not grow after the warm-up.
  if (m.workerd_rss_mb_max_second_half > m.workerd_rss_mb_max_first_half * 1.1) failed.push(`workerd RSS kept growing: first half peak ${m.workerd_rss_mb_max_first_half} MB, second half ${m.workerd_rss_mb_max_second_half} MB`);
  if (m.wasm_mb_end > m.wasm_mb_start) failed.push(`wasm memory grew ${m.wasm_mb_start} -> ${m.wasm_mb_end} MB`);
  const faults = upstreamStats["5xx"] + upstreamStats.timeout + upstreamStats.reset;
  const faultResults = Object.entries(stats.kinds).filter(([k]) => k.startsWith("tool_error:upstream")).reduce((a, [, n]) => a + n, 0);
  if (faultResults !== faults) failed.push(`${faults} upstream faults injected, ${faultResults} tool errors reported for them`);
  report.checks = failed.length ? failed : "all passed";
} finally {
  await stopAll();
}
w.cleanup?.();

const print = (k, v) => console.log(`${k.padEnd(34)} ${v}`);
console.log(`\nmake soak: ${CLIENTS} SDK clients, ${SERVERS} servers, ${SECONDS} s, wrangler dev`);
print("requests (req/s)", `${report.requests} (${report.req_per_s})`);
for (const [k, v] of Object.entries(report.latency)) print(`${k} p50 / p99 (n)`, `${v.p50_ms} / ${v.p99_ms} ms (${v.n})`);
for (const [k, v] of Object.entries(report.results_by_kind).sort()) print(`  ${k}`, v);
print("upstream served", JSON.stringify(report.upstream_served));
print("audit rows / audited calls", `${report.audit.rows} / ${report.audit.calls_made} (distinct ids ${report.audit.distinct_event_ids})`);
print("audit queue drained / bytes per row", `${report.audit.drain_s} s after the load / ${report.audit.bytes_per_row ?? "n/a"}`);
print("workerd RSS after warm-up, end", `${report.memory.workerd_rss_mb_start}, ${report.memory.workerd_rss_mb_end} MB`);
print("workerd RSS peak 1st / 2nd half", `${report.memory.workerd_rss_mb_max_first_half} / ${report.memory.workerd_rss_mb_max_second_half} MB`);
print("wasm memory after warm-up, end", `${report.memory.wasm_mb_start}, ${report.memory.wasm_mb_end} MB`);
print("checks", failed.length ? failed.join("; ") : "all passed");
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
const out = join(ROOT, `bench/results/soak-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(out, JSON.stringify(report, null, 2));
console.log(`written: ${out}`);
if (failed.length) process.exitCode = 1;
