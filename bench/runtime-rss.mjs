// What the local runtime's own memory does under load (issue 19's soak): the trivial forwarding
// Worker (bench/floor, one upstream fetch per call) under Miniflare (or `RUNTIME=wrangler`:
// wrangler dev, as the soak runs), 8 raw JSON-RPC loops for RUNTIME_RSS_SECONDS (300), workerd's
// RSS (all its processes) printed every 15 s: the baseline for reading `make soak`'s RSS samples.
// `node bench/runtime-rss.mjs` (after `make setup`).
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { ROOT, freePort, sleep } from "../tests/e2e/harness.mjs";
import { rawTarget } from "./lib.mjs";
import { startMiniflare } from "./miniflare.mjs";

const SECONDS = Number(process.env.RUNTIME_RSS_SECONDS ?? 300);
const upPort = await freePort();
const upstream = spawn(process.execPath, [join(ROOT, "bench/upstream.mjs"), String(upPort)], { stdio: "ignore", detached: true });
const up = `http://127.0.0.1:${upPort}`;
await sleep(500);
let w;
if (process.env.RUNTIME === "wrangler") {
  const port = await freePort();
  const args = ["dev", "--config", join(ROOT, "bench/floor/wrangler.toml"), "--ip", "127.0.0.1", "--port", String(port), "--show-interactive-dev-session=false", "--log-level", "warn", "--var", `UPSTREAM:${up}`, "--var", "TOOLS:petstore"];
  const p = spawn(join(ROOT, "node_modules/.bin/wrangler"), args, { cwd: ROOT, env: { ...process.env, CI: "1", WRANGLER_SEND_METRICS: "false" }, detached: true, stdio: "ignore" });
  w = { url: `http://127.0.0.1:${port}`, stop: async () => process.kill(-p.pid, "SIGTERM") };
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${w.url}/mcp/forward`, { method: "POST", body: "{}" })).ok) break; } catch { /* not yet */ }
    if (i > 600) throw new Error("the floor Worker did not start");
    await sleep(100);
  }
} else {
  w = await startMiniflare({ config: join(ROOT, "bench/floor/wrangler.toml"), port: await freePort(), vars: { UPSTREAM: up, TOOLS: "petstore" } });
}
const target = rawTarget("forwarding floor", `${w.url}/mcp/forward`, {});
const rssMb = () => {
  const r = spawnSync("sh", ["-c", "for p in $(pgrep -f 'workerd serve'); do grep VmRSS /proc/$p/status; done"], { encoding: "utf8" });
  return Math.round(r.stdout.split("\n").reduce((a, l) => a + (Number(l.replace(/\D+/g, "")) || 0), 0) / 1024);
};
let n = 0;
let errors = 0;
const t0 = Date.now();
const line = () => console.log(`t=${Math.round((Date.now() - t0) / 1000)}s requests=${n} errors=${errors} workerd RSS=${rssMb()} MB`);
line();
const timer = setInterval(line, 15_000);
const end = t0 + SECONDS * 1000;
await Promise.all(Array.from({ length: 8 }, async () => {
  while (Date.now() < end) {
    try { await target.call(null, n++); } catch { errors++; }
  }
}));
clearInterval(timer);
line();
await w.stop();
process.kill(-upstream.pid, "SIGTERM");
