// Profiles FlowCP's hot path once: a CPU profile of the Worker (V8 inside workerd, through
// wrangler's DevTools inspector) while an MCP client calls tools/call in a loop. Prints the
// functions with the most self time. `node bench/profile.mjs` (after `make build`).
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { Client as McpClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Client, ROOT, freePort, sleep, startWorker, testSecrets } from "../tests/e2e/harness.mjs";

const upPort = await freePort();
const upstream = spawn(process.execPath, [join(ROOT, "bench/upstream.mjs"), String(upPort)], { stdio: "ignore" });
const inspectorPort = await freePort();
const w = await startWorker({ vars: { ...testSecrets(), FLOWCP_ALLOW_LOCAL_FETCH: "1", FLOWCP_LOG_REQUESTS: "0", FLOWCP_RATE_LIMITS: "off" }, logLevel: "warn", extraArgs: ["--inspector-port", String(inspectorPort)] });
try {
  const c = new Client(w.url);
  const ws = (await c.signup("profile@example.com")).workspace.id;
  const P = (p) => `/api/v1/workspaces/${ws}${p}`;
  const app = (await c.post(P("/apps"), { name: "Pet" })).body;
  const doc = readFileSync(join(ROOT, "../shared/corpus/openapi/examples/3.0/petstore.json"), "utf8");
  await c.call("POST", P(`/apps/${app.id}/imports`), { body: doc, contentType: "application/json" });
  const srv = (await c.post(P("/servers"), { app_id: app.id })).body;
  await c.patch(P(`/servers/${srv.id}`), { base_url: `http://127.0.0.1:${upPort}/v2`, probe_tool: "getInventory" });
  await c.post(P(`/servers/${srv.id}/verify`));
  await c.post(P(`/servers/${srv.id}/publish`));
  const key = (await c.post(P(`/servers/${srv.id}/keys`), {})).body.key;
  const mc = new McpClient({ name: "profile", version: "1" });
  await mc.connect(new StreamableHTTPClientTransport(new URL(srv.mcp_url), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
  for (let i = 0; i < 50; i++) await mc.callTool({ name: "getPetById", arguments: { petId: i } });

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
  const N = 400;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await mc.callTool({ name: "getPetById", arguments: { petId: i } });
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
  await mc.close();
  const profile = result.profile;
  mkdirSync(join(ROOT, "bench/results"), { recursive: true });
  writeFileSync(join(ROOT, "bench/results/hot-path.cpuprofile"), JSON.stringify(profile));
  // Self time per function from the samples.
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const deltas = profile.timeDeltas;
  profile.samples.forEach((s, i) => {
    const n = byId.get(s);
    const cf = n.callFrame;
    const where = cf.url ? `${cf.url.split("/").pop()}:${cf.lineNumber + 1}:${cf.columnNumber + 1}` : "";
    let name = `${cf.functionName || "(anonymous)"} ${where}`.trim();
    const lines = sources.get(cf.scriptId);
    if (lines && process.env.PROFILE_SOURCE) name += `  «${(lines[cf.lineNumber] ?? "").slice(Math.max(0, cf.columnNumber - 20), cf.columnNumber + 100)}»`;
    self.set(name, (self.get(name) ?? 0) + (deltas[i] ?? 0));
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const idle = (self.get("(idle)") ?? 0) + (self.get("(program)") ?? 0);
  console.log(`${N} tools/call in ${elapsed.toFixed(0)} ms (${(elapsed / N).toFixed(2)} ms each, client included)`);
  console.log(`worker isolate busy ${((total - idle) / 1000 / N).toFixed(3)} ms per call (sampled ${(total / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms)`);
  const groups = {};
  profile.samples.forEach((sid, i) => {
    const cf = byId.get(sid).callFrame;
    const g = /\.wasm/.test(cf.url) || /^js-to-wasm|^wasm-to-js/.test(cf.functionName) ? "Rust/wasm + wasm<->JS transitions"
      : /shim\.js$/.test(cf.url) ? "JS glue (wasm-bindgen, worker shim, wrangler dev middleware)"
      : ["(idle)", "(program)"].includes(cf.functionName) ? "idle / runtime (I/O waits, workerd)"
      : cf.functionName === "(garbage collector)" ? "garbage collector" : "JS builtins (fetch, URL, Response, KV/D1 bindings)";
    groups[g] = (groups[g] ?? 0) + (deltas[i] ?? 0);
  });
  console.log("where the isolate's time goes per call:");
  for (const [g, us] of Object.entries(groups).sort((a, b) => b[1] - a[1])) console.log(`  ${(us / 1000 / N).toFixed(2).padStart(6)} ms  ${(100 * us / total).toFixed(1).padStart(5)}%  ${g}`);
  console.log("top Rust/wasm functions (self):");
  for (const [name, us] of [...self.entries()].filter(([n]) => /\.wasm/.test(n)).sort((a, b) => b[1] - a[1]).slice(0, 15)) {
    console.log(`  ${(us / 1000).toFixed(1).padStart(8)} ms  ${name.replace(/::h[0-9a-f]{16}/, "").slice(0, 120)}`);
  }
  console.log("top self time:");
  for (const [name, us] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
    console.log(`  ${(us / 1000).toFixed(1).padStart(8)} ms  ${(100 * us / total).toFixed(1).padStart(5)}%  ${name.slice(0, 110)}`);
  }
} finally {
  await w.stop();
  w.cleanup();
  upstream.kill();
  setTimeout(() => process.exit(0), 300).unref();
}
