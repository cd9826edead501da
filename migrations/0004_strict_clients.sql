-- Issue 12 (strict clients). A 2xx that does not match the tool's documented output shape is its own audit
-- outcome, `unexpected_response`. SQLite cannot change a CHECK in place, so the table is
-- rebuilt with the same columns and indexes and every row copied.
CREATE TABLE audit_events_new (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  ts               INTEGER NOT NULL,
  workspace_id     TEXT NOT NULL,
  server_id        TEXT NOT NULL,
  tool_name        TEXT NOT NULL,
  outcome          TEXT NOT NULL CHECK (outcome IN ('ok', 'tool_error', 'upstream_error', 'denied', 'invalid', 'unexpected_response')),
  upstream_status  INTEGER,
  latency_ms       INTEGER NOT NULL,
  request_bytes    INTEGER NOT NULL,
  response_bytes   INTEGER NOT NULL,
  connection_hash  TEXT
);
INSERT INTO audit_events_new (id, ts, workspace_id, server_id, tool_name, outcome, upstream_status, latency_ms,
                              request_bytes, response_bytes, connection_hash)
  SELECT id, ts, workspace_id, server_id, tool_name, outcome, upstream_status, latency_ms,
         request_bytes, response_bytes, connection_hash FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
CREATE INDEX idx_audit_ts ON audit_events(ts);
CREATE INDEX idx_audit_workspace_ts ON audit_events(workspace_id, ts);
CREATE INDEX idx_audit_server_ts ON audit_events(server_id, ts);

-- Issue 12: browser origins allowed to call a published server (a JSON list of
-- `scheme://host[:port]`); NULL = any origin (credentials travel in headers, not cookies).
ALTER TABLE servers ADD COLUMN allowed_origins_json TEXT;
