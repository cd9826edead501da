// Profiles FlowCP's hot path once: a CPU profile of the Worker (V8 inside workerd under Miniflare
// directly, through its DevTools inspector) while raw JSON-RPC tools/call requests (the bench's
// three operations, round robin) arrive one at a time. Prints where the isolate's time goes and
// the functions with the most self time. `node bench/profile.mjs` (after `make build`; a build
// with FLOWCP_WASM_OPT=0 CARGO_PROFILE_RELEASE_STRIP=none keeps Rust function names).
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { Client, ROOT, freePort, newState, sleep, testSecrets } from "../tests/e2e/harness.mjs";
import { CORPUS, flowcpServer, petstoreFor, rawTarget } from "./lib.mjs";
import { gunzipSync } from "node:zlib";
import { startMiniflare } from "./miniflare.mjs";

// PROFILE=call (default): the bench's three Petstore operations, round robin. PROFILE=list:
// every tools/list page of the GitHub server (1,223 tools). PROFILE=search: the GitHub server in
// discovery mode, search_tools calls.
const PROFILE = process.env.PROFILE ?? "call";
const WARMUP = { call: 600, list: 20, search: 300 };
const ROUNDS = { call: 2000, list: 50, search: 1000 };
const QUERIES = ["pull request", "issue comment", "repository webhook", "actions secret", "gist", "release asset"];

async function setUp(kind) {
  if (kind === "call") {
    const { doc } = petstoreFor(`http://127.0.0.1:${upPort}`);
    const pet = await flowcpServer(w, `http://127.0.0.1:${upPort}`, JSON.stringify(doc));
    await pet.c.post(pet.P(`/servers/${pet.srv.id}/publish`));
    await sleep(1100); // the isolate trusts its cached live version for a second
    const raw = rawTarget("FlowCP", pet.srv.mcp_url, { authorization: `Bearer ${pet.key}` });
    return { op: (i) => raw.call(null, i), what: "tools/call" };
  }
  const github = gunzipSync(readFileSync(join(CORPUS, "real/github-api.json.gz"))).toString("utf8");
  const gh = await flowcpServer(w, `http://127.0.0.1:${upPort}`, github, { name: "GitHub", discovery: kind === "search" });
  const pub = await gh.c.post(gh.P(`/servers/${gh.srv.id}/publish`));
  if (pub.status !== 200) throw new Error(`publish: ${JSON.stringify(pub.body).slice(0, 300)}`);
  await sleep(1100);
  const post = async (body) => {
    const r = await fetch(gh.srv.mcp_url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json", authorization: `Bearer ${gh.key}` }, body: JSON.stringify(body) });
    const text = await r.text();
    if (!r.ok || text.includes('"isError":true')) throw new Error(`${r.status} ${text.slice(0, 200)}`);
    return JSON.parse(text).result;
  };
  if (kind === "search") {
    return { op: (i) => post({ jsonrpc: "2.0", id: i, method: "tools/call", params: { name: "search_tools", arguments: { query: QUERIES[i % QUERIES.length] } } }), what: "search_tools call" };
  }
  return {
    what: "listing of all tools/list pages",
    async op(i) {
      let cursor;
      do {
        const page = await post({ jsonrpc: "2.0", id: i, method: "tools/list", params: cursor ? { cursor } : {} });
        cursor = page.nextCursor;
      } while (cursor);
    },
  };
}

const upPort = await freePort();
const upstream = spawn(process.execPath, [join(ROOT, "bench/upstream.mjs"), String(upPort)], { stdio: "ignore" });
const inspectorPort = await freePort();
const vars = { ...testSecrets(), FLOWCP_ALLOW_LOCAL_FETCH: "1", FLOWCP_LOG_REQUESTS: "0", FLOWCP_RATE_LIMITS: "off" };
// PROFILE_CONFIG: another checkout's wrangler.toml (an earlier build, for the profile before a change).
const w = await startMiniflare({ config: process.env.PROFILE_CONFIG ?? join(ROOT, "wrangler.toml"), port: await freePort(), vars, stateDir: newState(), inspectorPort });
try {
  const { op, what } = await setUp(PROFILE);
  // Warm: V8 tiers the hot wasm functions up before the profile starts.
  for (let i = 0; i < WARMUP[PROFILE]; i++) await op(i);

  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
  const target = targets.find((t) => /flowcp/i.test(t.title ?? "") || /flowcp/i.test(t.url ?? "")) ?? targets[0];
  const sock = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((r) => sock.once("open", r));
  let id = 0;
  const pending = new Map();
  sock.on("message", (m) => { const msg = JSON.parse(m); if (pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); } });
  const send = (method, params = {}) => new Promise((r) => { const i = ++id; pending.set(i, r); sock.send(JSON.stringify({ id: i, method, params })); });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 100 });
  await send("Profiler.start");
  const N = Number(process.env.PROFILE_CALLS ?? ROUNDS[PROFILE]);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await op(i);
  const elapsed = performance.now() - t0;
  const { result } = await send("Profiler.stop");
  await send("Debugger.enable");
  const sources = new Map();
  for (const n of result.profile.nodes) {
    const sid = n.callFrame.scriptId;
    if (sid && sid !== "0" && !sources.has(sid) && /\.js$/.test(n.callFrame.url)) {
      const r = await send("Debugger.getScriptSource", { scriptId: sid });
      sources.set(sid, (r.result?.scriptSource ?? "").split("\n"));
    }
  }
  sock.close();
  const profile = result.profile;
  mkdirSync(join(ROOT, "bench/results"), { recursive: true });
  writeFileSync(join(ROOT, `bench/results/hot-path${PROFILE === "call" ? "" : `-${PROFILE}`}${process.env.PROFILE_TAG ? `-${process.env.PROFILE_TAG}` : ""}.cpuprofile`), JSON.stringify(profile));
  // Self time per function from the samples.
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const wasmNames = new Set();
  const deltas = profile.timeDeltas;
  profile.samples.forEach((s, i) => {
    const n = byId.get(s);
    const cf = n.callFrame;
    const where = cf.url ? `${cf.url.split("/").pop()}:${cf.lineNumber + 1}:${cf.columnNumber + 1}` : "";
    let name = `${cf.functionName || "(anonymous)"} ${where}`.trim();
    const lines = sources.get(cf.scriptId);
    if (lines && process.env.PROFILE_SOURCE) name += `  «${(lines[cf.lineNumber] ?? "").slice(Math.max(0, cf.columnNumber - 20), cf.columnNumber + 100)}»`;
    self.set(name, (self.get(name) ?? 0) + (deltas[i] ?? 0));
    if (/^wasm:/.test(cf.url)) wasmNames.add(name);
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const idle = (self.get("(idle)") ?? 0) + (self.get("(program)") ?? 0);
  console.log(`${N} tools/call in ${elapsed.toFixed(0)} ms (${(elapsed / N).toFixed(2)} ms each, client included)`);
  console.log(`worker isolate busy ${((total - idle) / 1000 / N).toFixed(3)} ms per ${what} (sampled ${(total / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms)`);
  const groups = {};
  profile.samples.forEach((sid, i) => {
    const cf = byId.get(sid).callFrame;
    const g = /^wasm:/.test(cf.url) || /^js-to-wasm|^wasm-to-js/.test(cf.functionName) ? "Rust/wasm + wasm<->JS transitions"
      : /(^|\/)(index\.js|shim\.mjs)$/.test(cf.url) ? "JS glue (wasm-bindgen, worker-build shim)"
      : cf.url ? "JS outside the Worker (Miniflare's entry and assets router)"
      : ["(idle)", "(program)"].includes(cf.functionName) ? "idle / runtime (I/O waits, workerd)"
      : cf.functionName === "(garbage collector)" ? "garbage collector" : "JS builtins (fetch, URL, Response, KV/D1 bindings)";
    groups[g] = (groups[g] ?? 0) + (deltas[i] ?? 0);
  });
  console.log("where the isolate's time goes per call:");
  for (const [g, us] of Object.entries(groups).sort((a, b) => b[1] - a[1])) console.log(`  ${(us / 1000 / N).toFixed(2).padStart(6)} ms  ${(100 * us / total).toFixed(1).padStart(5)}%  ${g}`);
  console.log("top Rust/wasm functions (self):");
  for (const [name, us] of [...self.entries()].filter(([n]) => wasmNames.has(n)).sort((a, b) => b[1] - a[1]).slice(0, 15)) {
    console.log(`  ${(us / 1000).toFixed(1).padStart(8)} ms  ${name.replace(/::h[0-9a-f]{16}/, "").slice(0, 120)}`);
  }
  console.log("top self time:");
  for (const [name, us] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
    console.log(`  ${(us / 1000).toFixed(1).padStart(8)} ms  ${(100 * us / total).toFixed(1).padStart(5)}%  ${name.slice(0, 110)}`);
  }
} finally {
  await w.stop();
  upstream.kill();
  setTimeout(() => process.exit(0), 300).unref();
}
