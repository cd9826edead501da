// Activity buckets (GET /activity) as the aligned columns uPlot draws. Pure, unit-tested.

export interface Bucket {
  start: number;
  calls: number;
  errors: number;
  p50_ms: number;
  p95_ms: number;
}

/** x in seconds; calls and errors are 0 in empty buckets, latencies a gap (null). */
export type Columns = [number[], number[], number[], (number | null)[], (number | null)[]];

export function toColumns(buckets: Bucket[], since: number, until: number, bucketMs: number): Columns {
  const n = Math.max(0, Math.ceil((until - since) / bucketMs));
  const cols: Columns = [[], [], [], [], []];
  const byIndex = new Map(buckets.map((b) => [Math.round((b.start - since) / bucketMs), b]));
  for (let i = 0; i < n; i++) {
    const b = byIndex.get(i);
    cols[0].push((since + i * bucketMs) / 1000);
    cols[1].push(b?.calls ?? 0);
    cols[2].push(b?.errors ?? 0);
    cols[3].push(b ? b.p50_ms : null);
    cols[4].push(b ? b.p95_ms : null);
  }
  return cols;
}

/** The windows the activity screen offers. */
export const WINDOWS = [
  { label: "Last hour", ms: 3_600_000 },
  { label: "Last 24 hours", ms: 86_400_000 },
  { label: "Last 7 days", ms: 7 * 86_400_000 },
  { label: "Last 30 days", ms: 30 * 86_400_000 },
] as const;

/** A share as a percentage with one decimal, "–" for none. */
export function errorRate(calls: number, errors: number): string {
  return calls === 0 ? "–" : `${((100 * errors) / calls).toFixed(1)}%`;
}
