// The scheduled handler deletes audit events past their workspace's retention (30 days by
// default, 90 for the second workspace here) from local D1 and keeps the rest.
import { test } from "node:test";
import assert from "node:assert/strict";
import { d1, newState, startWorker } from "./harness.mjs";

const DAY = 86_400_000;

test("scheduled retention deletes old audit rows and keeps recent ones", async () => {
  const state = newState();
  d1(state, "INSERT INTO workspaces (id, name, created_at) VALUES ('ws_e2e', 'W', 0), ('ws_keep', 'K', 0)");
  d1(state, "UPDATE workspaces SET audit_retention_days = 90 WHERE id = 'ws_keep'");
  const rows = [
    ["very_old", 91 * DAY, "ws_e2e"],
    ["old", 31 * DAY, "ws_e2e"],
    ["kept_longer", 31 * DAY + 1, "ws_keep"],
    ["recent", 29 * DAY, "ws_e2e"],
    ["fresh", 0, "ws_e2e"],
  ];
  const values = rows
    .map(([tool, age, ws]) => `(CAST(strftime('%s','now') AS INTEGER) * 1000 - ${age}, '${ws}', 'srv_e2e', '${tool}', 'ok', 200, 5, 1, 1, NULL)`)
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
    assert.deepEqual(left, ["kept_longer", "recent", "fresh"]);
  } finally {
    w.cleanup();
  }
});
