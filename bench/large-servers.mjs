// Large toolsets on the hot path (issue 18), under Miniflare directly, each build in a Worker of
// its own, in one run:
// - GitHub's server (1,223 tools): every tools/list page as raw JSON-RPC (the median of 5 rounds
//   after a warm one), and search_tools in discovery mode (p50 at 1 client);
// - a server of all 10,000 tools of the generated 20 MB document (`flowcp large-doc`): publish
//   time, every page, and tools/call of one resource read (p50) beside Petstore's getPetById in
//   the same Worker (the "costs the same as on Petstore, within noise"); the wasm
//   high-water mark after all of it.
// Not a test: `make large-servers` (after `make build`). BASELINE_CONFIG=<other checkout>/wrangler.toml
// measures that build in the same run. Writes bench/results/large-servers-<time>.json.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { spawn, spawnSync } from "node:child_process";
import { gunzipSync } from "node:zlib";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { ROOT, freePort, newState, sleep, testSecrets } from "../tests/e2e/harness.mjs";
import { startMiniflare } from "./miniflare.mjs";
import { CORPUS, flowcpServer, petstoreFor } from "./lib.mjs";
import { runLoad } from "./load.mjs";

const upstreamProc = spawn(process.execPath, [join(ROOT, "bench/upstream.mjs"), "0"], { stdio: ["ignore", "pipe", "inherit"] });
const upstream = await new Promise((resolve) => upstreamProc.stdout.once("data", (d) => resolve(`http://127.0.0.1:${String(d).match(/\d+/)[0]}`)));

const exe = join(ROOT, "target/release/flowcp");
const largeFile = "/tmp/flowcp-bench-large-10000.json";
const made = spawnSync(exe, ["large-doc", "10000", largeFile], { encoding: "utf8" });
if (made.status !== 0) throw new Error(`flowcp large-doc: ${made.stderr}`);
const github = gunzipSync(readFileSync(join(CORPUS, "real/github-api.json.gz"))).toString("utf8");
const large = readFileSync(largeFile, "utf8");
const petstore = JSON.stringify(petstoreFor(upstream).doc);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rpc = async (s, body) => {
  const r = await fetch(s.srv.mcp_url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json", authorization: `Bearer ${s.key}` }, body: JSON.stringify(body) });
  const text = await r.text();
  const v = JSON.parse(text);
  if (r.status !== 200 || v.error || v.result?.isError) throw new Error(`${r.status} ${text.slice(0, 300)}`);
  return text;
};
/** Every tools/list page as raw JSON-RPC: total ms, pages, bytes. */
async function allPages(s) {
  const t0 = performance.now();
  let cursor;
  let pages = 0;
  let bytes = 0;
  do {
    const text = await rpc(s, { jsonrpc: "2.0", id: pages, method: "tools/list", params: cursor ? { cursor } : {} });
    bytes += text.length;
    cursor = JSON.parse(text).result.nextCursor;
    pages++;
  } while (cursor);
  return { ms: performance.now() - t0, pages, bytes };
}
async function pagesMedian(s) {
  await allPages(s);
  const rounds = [];
  for (let i = 0; i < 5; i++) rounds.push(await allPages(s));
  return { all_pages_ms: +median(rounds.map((r) => r.ms)).toFixed(1), pages: rounds[0].pages, bytes: rounds[0].bytes };
}
const p50Of = async (call) => {
  const r = await runLoad({ makeClient: async () => null, call: async (_c, k) => call(k), concurrency: 1, durationMs: 3000, warmupCalls: 50 });
  return { p50_ms: +r.p50_ms.toFixed(2), p99_ms: +r.p99_ms.toFixed(2), errors: r.errors, calls: r.calls };
};
const publish = async (s) => {
  const t0 = performance.now();
  const r = await s.c.post(s.P(`/servers/${s.srv.id}/publish`));
  return { status: r.status, ms: Math.round(performance.now() - t0), error: r.status === 200 ? undefined : JSON.stringify(r.body).slice(0, 200) };
};

const builds = [["this build", join(ROOT, "wrangler.toml")]];
if (process.env.BASELINE_CONFIG) builds.push(["baseline", process.env.BASELINE_CONFIG]);
const vars = { ...testSecrets(), FLOWCP_ALLOW_LOCAL_FETCH: "1", FLOWCP_LOG_REQUESTS: "0", FLOWCP_RATE_LIMITS: "off" };
const rows = [];
for (const [build, config] of builds) {
  const w = await startMiniflare({ config, port: await freePort(), vars, stateDir: newState() });
  const deep = { headers: { authorization: `Bearer ${vars.FLOWCP_OPERATOR_TOKEN}` } };
  const wasmMb = async () => Math.round((await (await fetch(`${w.url}/healthz`, deep)).json()).memory.wasm_bytes / 2 ** 20);
  const row = { build };
  try {
    const pet = await flowcpServer(w, upstream, petstore);
    await publish(pet);
    const gh = await flowcpServer(w, upstream, github, { name: "GitHub" });
    const ghDisc = await flowcpServer(w, upstream, github, { name: "GitHub", discovery: true });
    row.github_publish = await publish(gh);
    await publish(ghDisc);
    await sleep(1100);
    row.github_pages = await pagesMedian(gh);
    const queries = ["pull request", "issue comment", "repository webhook", "actions secret", "gist", "release asset"];
    row.github_search = await p50Of((k) => rpc(ghDisc, { jsonrpc: "2.0", id: k, method: "tools/call", params: { name: "search_tools", arguments: { query: queries[k % queries.length] } } }));
    row.petstore_call = await p50Of((k) => rpc(pet, { jsonrpc: "2.0", id: k, method: "tools/call", params: { name: "getPetById", arguments: { petId: 7 } } }));
    const big = await flowcpServer(w, upstream, large, { name: "Large" });
    row.large_publish = await publish(big);
    if (row.large_publish.status === 200) {
      await sleep(1100);
      row.large_pages = await pagesMedian(big);
      const id = "0b6e5f4e-9a51-4c43-9a53-2f8e7e0c7777";
      row.large_call = await p50Of((k) => rpc(big, { jsonrpc: "2.0", id: k, method: "tools/call", params: { name: `getRes${1_800 + (k % 400)}`, arguments: { id } } }));
      row.petstore_call_after = await p50Of((k) => rpc(pet, { jsonrpc: "2.0", id: k, method: "tools/call", params: { name: "getPetById", arguments: { petId: 7 } } }));
    }
  } catch (e) {
    row.error = e.message.slice(0, 300);
  }
  row.wasm_memory_mb_peak = await wasmMb().catch((e) => `the Worker did not answer: ${e.message}`);
  rows.push(row);
  console.log(JSON.stringify(row));
  await w.stop();
}
upstreamProc.kill();
const fmt = (x, k) => (x && x[k] !== undefined ? x[k] : "-");
console.log("\n| build | GitHub all pages ms | GitHub search p50 ms | Petstore call p50 ms | 10k publish ms | 10k all pages ms | 10k call p50 ms | Petstore call p50 after ms | wasm MB |\n|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${r.build} | ${fmt(r.github_pages, "all_pages_ms")} (${fmt(r.github_pages, "pages")} pages) | ${fmt(r.github_search, "p50_ms")} | ${fmt(r.petstore_call, "p50_ms")} | ${r.large_publish?.status === 200 ? r.large_publish.ms : r.large_publish?.error ?? r.error} | ${fmt(r.large_pages, "all_pages_ms")} | ${fmt(r.large_call, "p50_ms")} | ${fmt(r.petstore_call_after, "p50_ms")} | ${r.wasm_memory_mb_peak} |`);
}
const [a, b] = rows;
if (a && b && a.github_pages && b.github_pages) {
  console.log(`\nGitHub all pages: ${(b.github_pages.all_pages_ms / a.github_pages.all_pages_ms).toFixed(2)}x faster than the baseline; search p50 ${(b.github_search.p50_ms / a.github_search.p50_ms).toFixed(2)}x`);
}
if (a?.large_call) console.log(`10k server tools/call p50 / Petstore's: ${(a.large_call.p50_ms / a.petstore_call_after.p50_ms).toFixed(2)}x`);
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
const out = join(ROOT, `bench/results/large-servers-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(out, JSON.stringify({ started_at: new Date().toISOString(), upstream, rows }, null, 2));
console.log(`\nwritten: ${out}`);
process.exit(0);
