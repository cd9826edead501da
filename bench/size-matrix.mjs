// `make size-matrix` (issue 18): the Worker built at opt-level z, s and 3, each with and without
// wasm-opt, measured in one run on one machine. For each build: the bundle (raw, gzip), its
// start under Miniflare directly against the trivial floor Worker's (ready, first request, first
// API request: wasm compile + instantiate + the lazily compiled code of the first request), and
// the hot path (raw JSON-RPC tools/call p50 at 1 client, req/s at 8; tools/list p50). Ends with
// the default build (scripts/build-worker.sh's) in build/. Writes bench/results/size-*.json.
import { spawnSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { ROOT, freePort, newState, sleep, testSecrets } from "../tests/e2e/harness.mjs";
import { runLoad } from "./load.mjs";
import { flowcpServer, petstoreFor, rawTarget } from "./lib.mjs";
import { startMiniflare } from "./miniflare.mjs";

// The last one is the default build (left in build/ at the end).
const VARIANTS = [
  { level: "z", flag: null },
  { level: "z", flag: "-Oz" },
  { level: "s", flag: null },
  { level: "s", flag: "-Os" },
  { level: "3", flag: null },
  { level: "3", flag: "-O3" },
  { level: "z", flag: "-Os" },
].filter((v) => !process.env.MATRIX_LEVELS || process.env.MATRIX_LEVELS.split(",").includes(v.level));
const RUNS = Number(process.env.MATRIX_START_RUNS ?? 5);
const log = (...a) => console.error("[size-matrix]", ...a);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x) => Math.round(x * 100) / 100;

function build({ level, flag }) {
  const env = { ...process.env, FLOWCP_WASM_OPT_LEVEL: level, FLOWCP_WASM_OPT: flag ? "1" : "0", FLOWCP_WASM_OPT_FLAG: flag ?? "" };
  // Each opt-level keeps its own target directory, so switching levels does not rebuild the others.
  if (level !== "z") env.CARGO_TARGET_DIR = join(ROOT, `target/matrix-${level}`);
  delete env.FLOWCP_SKIP_BUILD;
  const t0 = performance.now();
  const r = spawnSync("sh", ["scripts/build-worker.sh"], { cwd: ROOT, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`build failed (${level} ${flag}):\n${r.stderr.slice(-3000)}`);
  return Math.round((performance.now() - t0) / 1000);
}

function bundleSize() {
  let raw = 0;
  let gz = 0;
  for (const f of readdirSync(join(ROOT, "build"))) {
    if (!/\.(wasm|m?js)$/.test(f)) continue;
    const data = readFileSync(join(ROOT, "build", f));
    raw += data.length;
    gz += gzipSync(data, { level: 9 }).length;
  }
  return { raw_kib: round(raw / 1024), gzip_kib: round(gz / 1024) };
}

/** Start-up of a Worker under Miniflare, RUNS times: ready, first request, first `second` request. */
async function startup(config, first, second, vars) {
  const ready = [];
  const firstMs = [];
  const secondMs = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const w = await startMiniflare({ config, port: await freePort(), vars });
    ready.push(performance.now() - t0);
    let t = performance.now();
    await (await fetch(w.url + first.path, first.init)).arrayBuffer();
    firstMs.push(performance.now() - t);
    t = performance.now();
    await (await fetch(w.url + second.path, second.init)).arrayBuffer();
    secondMs.push(performance.now() - t);
    await w.stop();
  }
  return { ready_ms: round(median(ready)), first_request_ms: round(median(firstMs)), second_request_ms: round(median(secondMs)) };
}

async function hotPath(upstream, doc, vars) {
  const w = await startMiniflare({ config: join(ROOT, "wrangler.toml"), port: await freePort(), vars, stateDir: newState() });
  try {
    const pet = await flowcpServer(w, upstream, JSON.stringify(doc));
    await pet.c.post(pet.P(`/servers/${pet.srv.id}/publish`));
    await sleep(1100);
    const target = rawTarget("FlowCP", pet.srv.mcp_url, { Authorization: `Bearer ${pet.key}` });
    const c1 = await runLoad({ ...target, concurrency: 1, durationMs: 3000, warmupCalls: 300 });
    const c8 = await runLoad({ ...target, concurrency: 8, durationMs: 3000, warmupCalls: 20 });
    const list = await runLoad({ ...target, call: (c, k) => target.list(c, k), concurrency: 1, durationMs: 2000, warmupCalls: 50 });
    return { call_p50_ms_c1: c1.p50_ms, call_rps_c8: c8.rps, call_p50_ms_c8: c8.p50_ms, list_p50_ms: list.p50_ms, errors: c1.errors + c8.errors + list.errors };
  } finally {
    await w.stop();
  }
}

const upPort = await freePort();
const up = spawn(process.execPath, [join(ROOT, "bench/upstream.mjs"), String(upPort)], { stdio: "ignore" });
const upstream = `http://127.0.0.1:${upPort}`;
const results = { started_at: new Date().toISOString(), variants: [] };
try {
  for (let i = 0; i < 50; i++) { try { if ((await fetch(`${upstream}/v2/store/inventory`)).ok) break; } catch { await sleep(100); } }
  const { doc } = petstoreFor(upstream);
  const vars = { ...testSecrets(), FLOWCP_ALLOW_LOCAL_FETCH: "1", FLOWCP_LOG_REQUESTS: "0", FLOWCP_RATE_LIMITS: "off" };
  const post = { method: "POST", headers: { "content-type": "application/json" }, body: "{}" };
  results.floor = await startup(join(ROOT, "bench/floor/wrangler.toml"), { path: "/mcp/floor", init: post }, { path: "/mcp/floor", init: post }, { UPSTREAM: upstream });
  log("floor", JSON.stringify(results.floor));
  for (const v of VARIANTS) {
    const name = `opt-level ${v.level}${v.flag ? ` + wasm-opt ${v.flag}` : ""}`;
    log(`building ${name}`);
    const build_s = build(v);
    const size = bundleSize();
    const start = await startup(join(ROOT, "wrangler.toml"), { path: "/healthz" }, { path: "/api/v1/openapi.json" }, vars);
    const hot = await hotPath(upstream, doc, vars);
    const row = { name, build_s, ...size, ...start, ...hot };
    log(JSON.stringify(row));
    results.variants.push(row);
  }
} finally {
  up.kill();
}
const f = results.floor;
console.log(`\nfloor Worker under Miniflare: ready ${f.ready_ms} ms, first request ${f.first_request_ms} ms`);
const cols = ["name", "gzip_kib", "raw_kib", "ready_ms", "first_request_ms", "second_request_ms", "call_p50_ms_c1", "call_p50_ms_c8", "call_rps_c8", "list_p50_ms"];
const rows = [["build", "gzip KiB", "raw KiB", "ready ms (floor +)", "1st request ms", "1st API request ms", "call p50 c=1", "call p50 c=8", "req/s c=8", "list p50"]];
for (const r of results.variants) rows.push(cols.map((c) => (c === "ready_ms" ? `${r.ready_ms} (+${round(r.ready_ms - f.ready_ms)})` : r[c])));
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
console.log(rows.map((r) => r.map((c, i) => String(c).padEnd(widths[i])).join("  ")).join("\n"));
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
const file = join(ROOT, "bench/results", `size-${results.started_at.replace(/[:.]/g, "-")}.json`);
writeFileSync(file, JSON.stringify(results, null, 2));
console.log(`written: ${file}`);
setTimeout(() => process.exit(0), 300).unref();
