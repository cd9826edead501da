// The scheduled handler deletes audit events older than 30 days from local D1 and keeps the rest.
import { test } from "node:test";
import assert from "node:assert/strict";
import { d1, newState, startWorker } from "./harness.mjs";

const DAY = 86_400_000;

test("scheduled retention deletes old audit rows and keeps recent ones", async () => {
  const state = newState();
  const rows = [
    ["very_old", 90 * DAY],
    ["old", 31 * DAY],
    ["recent", 29 * DAY],
    ["fresh", 0],
  ];
  const values = rows
    .map(([tool, age]) => `(CAST(strftime('%s','now') AS INTEGER) * 1000 - ${age}, 'ws_e2e', 'srv_e2e', '${tool}', 'ok', 200, 5, 1, 1, NULL)`)
    .join(", ");
  d1(state, `INSERT INTO audit_events (ts, workspace_id, server_id, tool_name, outcome, upstream_status, latency_ms, request_bytes, response_bytes, connection_hash) VALUES ${values}`);

  const w = await startWorker({ stateDir: state });
  try {
    const r = await fetch(`${w.url}/__scheduled?cron=${encodeURIComponent("17 * * * *")}`);
    assert.equal(r.status, 200);
    await w.waitForLog(/retention: deleted 2 audit events/);
  } finally {
    await w.stop();
  }
  try {
    const left = d1(state, "SELECT tool_name FROM audit_events ORDER BY ts").map((r) => r.tool_name);
    assert.deepEqual(left, ["recent", "fresh"]);
  } finally {
    w.cleanup();
  }
});
