-- Issue 16: store tools. A `user_key` server's owner marks list and get tools as synced
-- (`store_tools_json`, a JSON array of tool names; NULL: none; needs the team plan). FlowCP then
-- keeps, per signed-in user, the latest answer of each synced tool for each set of arguments
-- the user called it with, refreshes it hourly in that user's delegated context, and serves it
-- through the matching `*_store_*` tool with its age, also when the API is down.
--
-- Arguments (only those the tool declares, at most 4 KB) and answers (at most 64 KB) are
-- AES-256-GCM sealed (AAD: server, user, tool, arguments hash). Rows go with the user (revoke,
-- "delete my data": cascade from key_users), the server or the workspace (cascade), and 30
-- days after the user last used them (`used_at`: a live call of the tool or a store read; the
-- cron refreshes only rows used in the last 30 days, and a workspace off the team plan cannot
-- use them).
ALTER TABLE servers ADD COLUMN store_tools_json TEXT;
CREATE TABLE store_entries (
  server_id      TEXT NOT NULL,
  user_id        TEXT NOT NULL,
  tool           TEXT NOT NULL,
  args_hash      TEXT NOT NULL,
  workspace_id   TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  args_sealed    TEXT NOT NULL,
  body_sealed    TEXT NOT NULL,
  fetched_at     INTEGER NOT NULL,
  refreshed_at   INTEGER NOT NULL,
  used_at        INTEGER NOT NULL,
  PRIMARY KEY (server_id, user_id, tool, args_hash),
  FOREIGN KEY (server_id, user_id) REFERENCES key_users(server_id, user_id) ON DELETE CASCADE
);
CREATE INDEX idx_store_entries_refreshed ON store_entries(refreshed_at);
CREATE INDEX idx_store_entries_used ON store_entries(used_at);
CREATE INDEX idx_store_entries_workspace ON store_entries(workspace_id);

-- The retention job deletes old months of usage counters by month.
CREATE INDEX IF NOT EXISTS idx_usage_counters_month ON usage_counters(month);

-- Refresh on an upstream 401 (issue 16): when a user's cached access token was last dropped
-- because the API refused it; at most one drop per user per 5 minutes across isolates.
ALTER TABLE key_users ADD COLUMN access_dropped_at INTEGER;
