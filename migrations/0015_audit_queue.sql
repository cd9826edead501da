-- Issue 19: audit events travel through a Cloudflare Queue (at-least-once delivery), so their
-- insert must be idempotent. Each event carries a random id made where the call ends; a
-- redelivered or re-sent event is ignored by the unique index (`ON CONFLICT (workspace_id,
-- event_id) DO NOTHING`). The index is per workspace, so no id, however made, can suppress
-- another workspace's event. Rows written before this migration have no id (NULLs are distinct
-- in a unique index).
ALTER TABLE audit_events ADD COLUMN event_id TEXT;
CREATE UNIQUE INDEX idx_audit_event_id ON audit_events(workspace_id, event_id);

-- The plans' monthly counters (migration 0012) are now kept by this trigger, from the rows
-- actually inserted: an event ignored as a duplicate counts nothing, and the row and its counts
-- commit together, so no delivery path can count a call twice or count one with no row.
-- `metered`: the call counts toward the quotas (it was sent upstream from a published server).
-- The month is the UTC `YYYY-MM` of the event's time (`crate::plans::month_of`).
ALTER TABLE audit_events ADD COLUMN metered INTEGER NOT NULL DEFAULT 0 CHECK (metered IN (0, 1));

CREATE TRIGGER audit_events_usage AFTER INSERT ON audit_events
WHEN NEW.metered = 1 AND NEW.plan IS NOT NULL
BEGIN
  INSERT INTO usage_counters (server_id, subject, month, workspace_id, calls)
    VALUES (NEW.server_id, '', strftime('%Y-%m', NEW.ts / 1000, 'unixepoch'), NEW.workspace_id, 1)
    ON CONFLICT (server_id, subject, month) DO UPDATE SET calls = calls + 1;
  INSERT INTO usage_counters (server_id, subject, month, workspace_id, calls)
    SELECT NEW.server_id, NEW.connection_hash, strftime('%Y-%m', NEW.ts / 1000, 'unixepoch'), NEW.workspace_id, 1
    WHERE NEW.connection_hash IS NOT NULL
    ON CONFLICT (server_id, subject, month) DO UPDATE SET calls = calls + 1;
END;
