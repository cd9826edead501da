-- Issue 15: FlowCP's own MCP server (`/mcp`) signs agents in with FlowCP accounts. Its
-- connections use the same sealed tokens, refresh rotation and revocation as the connections of
-- published servers, so they are rows of `connections` too; but one belongs to an account and
-- the one workspace its user chose, not to a server. `server_id` becomes optional and `user_id`
-- names the account: exactly one of the two is set. SQLite cannot relax NOT NULL in place, so
-- the table is rebuilt with its rows. (Dropping the old table also drops the few-minute refresh
-- outcomes of `oauth_refresh_results`; a refresh under way at that moment is asked to retry.)
PRAGMA defer_foreign_keys = true;
CREATE TABLE connections_new (
  id               TEXT PRIMARY KEY,
  server_id        TEXT REFERENCES servers(id) ON DELETE CASCADE,
  user_id          TEXT REFERENCES users(id) ON DELETE CASCADE,
  workspace_id     TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  connection_hash  TEXT NOT NULL UNIQUE,
  client_id        TEXT,
  client_name      TEXT,
  scopes           TEXT,
  created_at       INTEGER NOT NULL,
  last_used_at     INTEGER,
  revoked_at       INTEGER,
  generation       INTEGER NOT NULL DEFAULT 0,
  CHECK ((server_id IS NULL) <> (user_id IS NULL))
);
INSERT INTO connections_new (id, server_id, workspace_id, connection_hash, client_id, client_name, scopes,
                             created_at, last_used_at, revoked_at, generation)
  SELECT id, server_id, workspace_id, connection_hash, client_id, client_name, scopes,
         created_at, last_used_at, revoked_at, generation FROM connections;
DROP TABLE connections;
ALTER TABLE connections_new RENAME TO connections;
CREATE INDEX idx_connections_server ON connections(server_id);
CREATE INDEX idx_connections_user ON connections(user_id, created_at);
