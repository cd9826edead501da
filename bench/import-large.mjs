// Imports inside the Worker, under Miniflare directly (issue 18): GitHub (13 MB JSON), Stripe
// (6 MB YAML) and a generated 20 MB document of 10,000 operations (`flowcp large-doc`), each
// into a fresh Worker so its wasm memory high-water mark (wasm memory never shrinks) is that
// import's alone. Prints request time, tools and the high-water mark; writes
// bench/results/import-large-<time>.json. Not a test: `make import-large` (after `make build`).
//
// BASELINE_CONFIG=<other checkout>/wrangler.toml measures that build in the same run.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { gunzipSync } from "node:zlib";
import { join } from "node:path";
import { Client, ROOT, freePort, newState, testSecrets } from "../tests/e2e/harness.mjs";
import { startMiniflare } from "./miniflare.mjs";
import { CORPUS } from "./lib.mjs";

/** Signs up, makes an app and imports `text` into it: the request's time and the tool count. */
async function importInto(w, text, contentType) {
  const c = new Client(w.url);
  await c.signup(`large-${Math.random().toString(36).slice(2)}@example.com`);
  const ws = (await c.get("/api/v1/me")).body.workspaces[0].id;
  const app = (await c.post(`/api/v1/workspaces/${ws}/apps`, { name: "Large" })).body;
  const t0 = performance.now();
  const imp = await c.call("POST", `/api/v1/workspaces/${ws}/apps/${app.id}/imports`, { body: text, contentType });
  const request_ms = Math.round(performance.now() - t0);
  if (imp.status !== 201) throw new Error(`import: ${imp.status} ${JSON.stringify(imp.body).slice(0, 300)}`);
  return { request_ms, tools: imp.body.tool_count };
}

const exe = join(ROOT, "target/release/flowcp");
const large = "/tmp/flowcp-bench-large-10000.json";
const made = spawnSync(exe, ["large-doc", "10000", large], { encoding: "utf8" });
if (made.status !== 0) throw new Error(`flowcp large-doc: ${made.stderr}`);
const docs = [
  ["GitHub (13 MB JSON)", gunzipSync(readFileSync(join(CORPUS, "real/github-api.json.gz"))).toString("utf8"), "application/json"],
  ["Stripe (6 MB YAML)", gunzipSync(readFileSync(join(CORPUS, "real/stripe.yaml.gz"))).toString("utf8"), "application/yaml"],
  ["Generated (10,000 operations, 19.5 MB JSON)", readFileSync(large, "utf8"), "application/json"],
];
const builds = [["this build", join(ROOT, "wrangler.toml")]];
if (process.env.BASELINE_CONFIG) builds.push(["baseline", process.env.BASELINE_CONFIG]);

const vars = { ...testSecrets(), FLOWCP_ALLOW_LOCAL_FETCH: "1", FLOWCP_LOG_REQUESTS: "0", FLOWCP_RATE_LIMITS: "off" };
const rows = [];
for (const [build, config] of builds) {
  for (const [label, text, contentType] of docs) {
    const w = await startMiniflare({ config, port: await freePort(), vars, stateDir: newState() });
    try {
      const deep = { headers: { authorization: `Bearer ${vars.FLOWCP_OPERATOR_TOKEN}` } };
      const wasmMb = async () => Math.round((await (await fetch(`${w.url}/healthz`, deep)).json()).memory.wasm_bytes / 2 ** 20);
      const before = await wasmMb();
      const row = { build, document: label, bytes: Buffer.byteLength(text), wasm_memory_mb_before: before };
      try {
        Object.assign(row, await importInto(w, text, contentType));
      } catch (e) {
        row.error = e.message.slice(0, 300);
      }
      try {
        row.wasm_memory_mb_peak = await wasmMb();
      } catch (e) {
        row.wasm_memory_mb_peak = `the Worker did not answer: ${e.message}`;
      }
      rows.push(row);
      console.log(JSON.stringify(row));
    } finally {
      await w.stop();
    }
  }
}
console.log("\n| build | document | request ms | tools | wasm high-water MB |\n|---|---|---|---|---|");
for (const r of rows) console.log(`| ${r.build} | ${r.document} | ${r.request_ms ?? r.error} | ${r.tools ?? "-"} | ${r.wasm_memory_mb_peak} |`);
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
const out = join(ROOT, `bench/results/import-large-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(out, JSON.stringify({ started_at: new Date().toISOString(), rows }, null, 2));
console.log(`\nwritten: ${out}`);
process.exit(0);
