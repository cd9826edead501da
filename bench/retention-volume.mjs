// Retention at volume (issue 19): seeds a local D1 with ROWS expired audit rows (default
// 1,000,000, 40 days old, in a workspace keeping the default 30 days) plus 10,000 recent ones,
// then runs the hourly cron under wrangler dev (`/__scheduled`) until a run reports that nothing
// expired is left. Prints each run's rows, batches and wall time, and the time per 100k rows;
// checks the recent rows are all kept. Writes bench/results/retention-volume-<time>.json.
// Not a test: `make retention-volume` (after `make build`).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, d1, newState, startWorker, testSecrets } from "../tests/e2e/harness.mjs";

const ROWS = Number(process.env.ROWS ?? 1_000_000);
const RECENT = 10_000;
const DAY = 86_400_000;
const CRON = "17 * * * *";

const state = newState();
const now = Date.now();
const seed = (n, ageMs, tool) =>
  `INSERT INTO audit_events (ts, workspace_id, server_id, tool_name, outcome, upstream_status, latency_ms, request_bytes, response_bytes, connection_hash, event_id) ` +
  `WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ${n}) ` +
  `SELECT ${now - ageMs} - i, 'ws_vol', 'srv_vol', '${tool}', 'ok', 200, 5, 100, 200, 'c0ffee00c0ffee00', '${tool}-' || i FROM k`;
d1(state, "INSERT INTO workspaces (id, name, created_at) VALUES ('ws_vol', 'Volume', 0)");
let t0 = performance.now();
d1(state, seed(ROWS, 40 * DAY, "expired"));
d1(state, seed(RECENT, DAY, "recent"));
const seed_s = ((performance.now() - t0) / 1000).toFixed(1);
const [{ n: seeded }] = d1(state, "SELECT COUNT(*) AS n FROM audit_events");
console.log(`seeded ${seeded} audit rows (${ROWS} expired, ${RECENT} recent) in ${seed_s} s`);

const w = await startWorker({ vars: testSecrets(), stateDir: state });
const runs = [];
try {
  for (let run = 1; run <= 100; run++) {
    const logged = (w.logs().match(/retention: deleted/g) ?? []).length;
    t0 = performance.now();
    const r = await fetch(`${w.url}/__scheduled?cron=${encodeURIComponent(CRON)}`);
    if (r.status !== 200) throw new Error(`/__scheduled: ${r.status}`);
    // The handler's log line comes with (or just after) the answer.
    for (const end = Date.now() + 120_000; (w.logs().match(/retention: deleted/g) ?? []).length <= logged; ) {
      if (Date.now() > end) throw new Error(`no retention log line:\n${w.logs().slice(-2000)}`);
      await new Promise((res) => setTimeout(res, 20));
    }
    const ms = performance.now() - t0;
    const lines = [...w.logs().matchAll(/retention: deleted (\d+) audit events older than \d+ ms in (\d+) batches \(complete: (true|false)\)/g)];
    const [, deleted, batches, complete] = lines[lines.length - 1];
    runs.push({ run, deleted: Number(deleted), batches: Number(batches), complete: complete === "true", ms: Math.round(ms) });
    console.log(`run ${run}: deleted ${deleted} rows in ${batches} batches, ${Math.round(ms)} ms (complete: ${complete})`);
    if (complete === "true") break;
  }
} finally {
  await w.stop();
}
const left = d1(state, "SELECT tool_name, COUNT(*) AS n FROM audit_events GROUP BY tool_name");
w.cleanup();
const deleted = runs.reduce((s, r) => s + r.deleted, 0);
const total_ms = runs.reduce((s, r) => s + r.ms, 0);
const summary = {
  rows_expired: ROWS,
  deleted,
  runs: runs.length,
  total_ms,
  ms_per_100k: Math.round((total_ms / deleted) * 100_000),
  slowest_run_ms: Math.max(...runs.map((r) => r.ms)),
  left,
};
console.log(JSON.stringify(summary));
const recentLeft = left.find((r) => r.tool_name === "recent")?.n ?? 0;
const expiredLeft = left.find((r) => r.tool_name === "expired")?.n ?? 0;
if (deleted !== ROWS || expiredLeft !== 0 || recentLeft !== RECENT) {
  console.error(`retention-volume: expected ${ROWS} deleted and ${RECENT} kept; got ${deleted}, left ${JSON.stringify(left)}`);
  process.exitCode = 1;
}
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
const out = join(ROOT, `bench/results/retention-volume-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(out, JSON.stringify({ started_at: new Date(now).toISOString(), runs, summary }, null, 2));
console.log(`written: ${out}`);
