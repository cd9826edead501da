// The one load generator every target is measured with: `concurrency` workers, each with its
// own client (or one shared client where a target supports only one session), calling in a
// closed loop for `durationMs` after a warm-up; latencies are per call.
import { performance } from "node:perf_hooks";

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/**
 * makeClient(i) -> client (called once per worker, or once when shared);
 * call(client, n) -> Promise (throws on a failed call).
 */
export async function runLoad({ makeClient, closeClient = async () => {}, call, concurrency, durationMs = 4000, warmupCalls = 20, shared = false }) {
  const clients = [];
  if (shared) {
    const c = await makeClient(0);
    for (let i = 0; i < concurrency; i++) clients.push(c);
  } else {
    for (let i = 0; i < concurrency; i++) clients.push(await makeClient(i));
  }
  for (let i = 0; i < warmupCalls; i++) await call(clients[i % clients.length], i);
  const latencies = [];
  let errors = 0;
  let n = 0;
  const start = performance.now();
  const deadline = start + durationMs;
  await Promise.all(clients.map(async (c) => {
    while (performance.now() < deadline) {
      const k = n++;
      const t0 = performance.now();
      try {
        await call(c, k);
        latencies.push(performance.now() - t0);
      } catch {
        errors++;
      }
    }
  }));
  const elapsed = (performance.now() - start) / 1000;
  for (const c of shared ? clients.slice(0, 1) : clients) await closeClient(c);
  latencies.sort((a, b) => a - b);
  return {
    concurrency,
    calls: latencies.length,
    errors,
    p50_ms: round(percentile(latencies, 50)),
    p99_ms: round(percentile(latencies, 99)),
    rps: round(latencies.length / elapsed),
  };
}

function round(x) {
  return Number.isFinite(x) ? Math.round(x * 100) / 100 : null;
}
