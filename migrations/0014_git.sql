-- Issue 17: Git integration. A workspace connects a Git provider (GitHub first); an app follows
-- a document on a branch of a repository through that connection.
--
-- The connection's tokens are AES-256-GCM sealed here in D1, not in KV (AAD names the workspace,
-- the connection and the token's purpose; `git::token_aad`). GitHub rotates the refresh token
-- on every use, so its store must be read-your-writes and compare-and-set: KV is neither (an
-- eventually consistent read elsewhere would hand back a refresh token GitHub has already
-- killed). Every token change is a CAS on `generation`; one refresh at a time holds the
-- `lease_until` lease (the design of `key_users`, issue 16).
--
-- A pending connection (the owner is at GitHub's consent page) keeps the SHA-256 of its OAuth
-- `state`, its PKCE verifier, sealed, and the dashboard page to return to; it becomes active at
-- the callback, or the retention job deletes it after an hour.
CREATE TABLE git_connections (
  id                TEXT PRIMARY KEY,
  workspace_id      TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  provider          TEXT NOT NULL,
  account           TEXT,
  status            TEXT NOT NULL,
  status_message    TEXT,
  created_by        TEXT NOT NULL,
  state_hash        TEXT,
  verifier_sealed   TEXT,
  return_to         TEXT,
  refresh_sealed    TEXT,
  access_sealed     TEXT,
  access_expires_at INTEGER,
  generation        INTEGER NOT NULL DEFAULT 0,
  lease_until       INTEGER,
  created_at        INTEGER NOT NULL,
  updated_at        INTEGER NOT NULL
);
CREATE INDEX idx_git_connections_workspace ON git_connections(workspace_id);
CREATE UNIQUE INDEX idx_git_connections_state ON git_connections(state_hash) WHERE state_hash IS NOT NULL;

-- What an app follows. `id` is in the webhook URL (`/git/webhooks/<id>`); the webhook's HMAC
-- secret is sealed (AAD: workspace and source). `created_by` is the admin who set it up: syncs
-- act as them, and stop when they are no longer an admin of the workspace. Disconnecting the
-- connection leaves the source (connection_id NULL, status `broken`) until it is pointed at
-- another connection or removed.
CREATE TABLE app_sources (
  id                    TEXT PRIMARY KEY,
  app_id                TEXT NOT NULL UNIQUE REFERENCES apps(id) ON DELETE CASCADE,
  workspace_id          TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  connection_id         TEXT REFERENCES git_connections(id) ON DELETE SET NULL,
  repo                  TEXT NOT NULL,
  branch                TEXT NOT NULL,
  path                  TEXT NOT NULL,
  auto_publish          INTEGER NOT NULL DEFAULT 0,
  webhook_secret_sealed TEXT NOT NULL,
  hook_id               TEXT,
  last_sha              TEXT,
  etag                  TEXT,
  checked_at            INTEGER,
  status                TEXT NOT NULL,
  message               TEXT,
  report_json           TEXT,
  created_by            TEXT NOT NULL,
  created_at            INTEGER NOT NULL,
  updated_at            INTEGER NOT NULL
);
CREATE INDEX idx_app_sources_checked ON app_sources(checked_at);
CREATE INDEX idx_app_sources_workspace ON app_sources(workspace_id);

-- Webhook deliveries already acted on (de-duplication of replays), kept 3 days: GitHub
-- redelivers only deliveries of the last 3 days.
CREATE TABLE git_deliveries (
  source_id    TEXT NOT NULL,
  delivery_id  TEXT NOT NULL,
  received_at  INTEGER NOT NULL,
  PRIMARY KEY (source_id, delivery_id)
);
CREATE INDEX idx_git_deliveries_received ON git_deliveries(received_at);

-- Imports: two new kinds (`git`: a sync; `rollback`: an earlier import's document restored),
-- the commit an import came from (`{"sha","author","message","url"}`) and the import a rollback
-- restored. SQLite cannot change a CHECK constraint in place, so the table is rebuilt (nothing
-- references it). Foreign keys are checked at the end of the migration, as in 0009.
PRAGMA defer_foreign_keys = true;
CREATE TABLE imports_v14 (
  id              TEXT PRIMARY KEY,
  app_id          TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
  workspace_id    TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  source_kind     TEXT NOT NULL CHECK (source_kind IN ('url', 'upload', 'git', 'rollback')),
  source_url      TEXT,
  document_key    TEXT NOT NULL,
  document_sha256 TEXT NOT NULL,
  document_bytes  INTEGER NOT NULL,
  spec_version    TEXT,
  title           TEXT,
  api_version     TEXT,
  tool_count      INTEGER NOT NULL DEFAULT 0,
  warning_count   INTEGER NOT NULL DEFAULT 0,
  added_count     INTEGER NOT NULL DEFAULT 0,
  removed_count   INTEGER NOT NULL DEFAULT 0,
  changed_count   INTEGER NOT NULL DEFAULT 0,
  report_json     TEXT NOT NULL,
  created_by      TEXT REFERENCES users(id) ON DELETE SET NULL,
  created_at      INTEGER NOT NULL,
  commit_json     TEXT,
  restored_from   TEXT
);
INSERT INTO imports_v14 (id, app_id, workspace_id, source_kind, source_url, document_key, document_sha256,
  document_bytes, spec_version, title, api_version, tool_count, warning_count, added_count, removed_count,
  changed_count, report_json, created_by, created_at)
SELECT id, app_id, workspace_id, source_kind, source_url, document_key, document_sha256, document_bytes,
  spec_version, title, api_version, tool_count, warning_count, added_count, removed_count, changed_count,
  report_json, created_by, created_at FROM imports;
DROP TABLE imports;
ALTER TABLE imports_v14 RENAME TO imports;
CREATE INDEX idx_imports_app ON imports(app_id, created_at);
