-- FlowCP schema v1 (DESIGN §1, §5, §8). Every table and KV prefix is documented in
-- docs/storage.md. Times are Unix milliseconds (INTEGER). Ids are random text ids with a
-- type prefix (usr_, ws_, app_, imp_, tool_, srv_, key_, cli_, con_).
-- Secret values never live in D1: credentials and workspace secrets are envelopes in KV.

CREATE TABLE users (
  id                   TEXT PRIMARY KEY,
  email                TEXT NOT NULL COLLATE NOCASE UNIQUE,
  display_name         TEXT NOT NULL,
  password_hash        TEXT NOT NULL,            -- PHC string (argon2id)
  terms_accepted_at    INTEGER NOT NULL,
  privacy_accepted_at  INTEGER NOT NULL,
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL
);

CREATE TABLE workspaces (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  created_by  TEXT REFERENCES users(id) ON DELETE SET NULL,
  created_at  INTEGER NOT NULL
);

CREATE TABLE memberships (
  workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role          TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
  created_at    INTEGER NOT NULL,
  PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX idx_memberships_user ON memberships(user_id);

CREATE TABLE sessions (
  id_hash       TEXT PRIMARY KEY,                -- SHA-256 of the random session id
  user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  csrf_hash     TEXT NOT NULL,                   -- SHA-256 of the CSRF token
  created_at    INTEGER NOT NULL,
  last_seen_at  INTEGER NOT NULL,
  expires_at    INTEGER NOT NULL,
  revoked_at    INTEGER
);
CREATE INDEX idx_sessions_user ON sessions(user_id);
CREATE INDEX idx_sessions_expires ON sessions(expires_at);

-- Failed-login throttling, keyed by SHA-256 of (email) and of (client address).
CREATE TABLE login_throttle (
  key           TEXT PRIMARY KEY,
  failures      INTEGER NOT NULL,
  window_start  INTEGER NOT NULL,
  locked_until  INTEGER
);

CREATE TABLE apps (
  id            TEXT PRIMARY KEY,
  workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  name          TEXT NOT NULL,
  source_url    TEXT,                            -- Swagger URL when imported by URL
  current_import_id TEXT,
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL
);
CREATE INDEX idx_apps_workspace ON apps(workspace_id, created_at);

CREATE TABLE imports (
  id              TEXT PRIMARY KEY,
  app_id          TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
  workspace_id    TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  source_kind     TEXT NOT NULL CHECK (source_kind IN ('url', 'upload')),
  source_url      TEXT,
  document_key    TEXT NOT NULL,                 -- KV key of the raw document (doc:<import id>)
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
  report_json     TEXT NOT NULL,                 -- import report without the tool bodies
  created_by      TEXT REFERENCES users(id) ON DELETE SET NULL,
  created_at      INTEGER NOT NULL
);
CREATE INDEX idx_imports_app ON imports(app_id, created_at);

-- Generated tools with the owner's curation overlay. `operation_key` ("GET /pets/{id}") is
-- stable across re-imports and is what curation is matched by.
CREATE TABLE tools (
  id                    TEXT PRIMARY KEY,
  app_id                TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
  workspace_id          TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  operation_key         TEXT NOT NULL,
  generated_name        TEXT NOT NULL,
  name                  TEXT NOT NULL,           -- curated name (defaults to generated)
  description           TEXT,                    -- curated description, NULL = generated
  enabled               INTEGER NOT NULL DEFAULT 1,
  method                TEXT NOT NULL,
  path                  TEXT NOT NULL,
  tags_json             TEXT NOT NULL DEFAULT '[]',
  def_json              TEXT NOT NULL,           -- generated ToolDef (schemas + request plan)
  removed_at            INTEGER,                 -- set when a re-import no longer has it
  updated_at            INTEGER NOT NULL,
  UNIQUE (app_id, operation_key)
);
CREATE INDEX idx_tools_app_name ON tools(app_id, name);

CREATE TABLE servers (
  id                  TEXT PRIMARY KEY,
  workspace_id        TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  app_id              TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
  name                TEXT NOT NULL,
  auth_mode           TEXT NOT NULL DEFAULT 'none' CHECK (auth_mode IN ('none', 'api_key', 'bearer', 'oauth')),
  auth_config_json    TEXT NOT NULL DEFAULT '{}', -- placement, scopes, OAuth URLs; never secret values
  credential_key      TEXT,                       -- KV key of the encrypted credential, if set
  is_public           INTEGER NOT NULL DEFAULT 0,
  discovery_mode      INTEGER NOT NULL DEFAULT 0,
  base_url_override   TEXT,
  probe_tool          TEXT,
  verification_state  TEXT NOT NULL DEFAULT 'unverified' CHECK (verification_state IN ('unverified', 'verified', 'failed')),
  verification_json   TEXT,
  verified_at         INTEGER,
  published_version   INTEGER,                    -- manifest version on the air, NULL = not published
  published_at        INTEGER,
  draft_changed_at    INTEGER,
  created_at          INTEGER NOT NULL,
  updated_at          INTEGER NOT NULL
);
CREATE INDEX idx_servers_workspace ON servers(workspace_id, created_at);
CREATE INDEX idx_servers_app ON servers(app_id);

CREATE TABLE server_access_keys (
  id            TEXT PRIMARY KEY,
  server_id     TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  name          TEXT,
  prefix        TEXT NOT NULL,                   -- first characters, for display
  key_hash      TEXT NOT NULL UNIQUE,            -- SHA-256 hex of the full key
  created_at    INTEGER NOT NULL,
  last_used_at  INTEGER,
  revoked_at    INTEGER
);
CREATE INDEX idx_access_keys_server ON server_access_keys(server_id);

-- MCP clients registered with a server's OAuth authorization server (RFC 7591 / CIMD).
CREATE TABLE oauth_clients (
  id                  TEXT PRIMARY KEY,
  server_id           TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  client_id           TEXT NOT NULL UNIQUE,
  client_name         TEXT,
  redirect_uris_json  TEXT NOT NULL,
  metadata_json       TEXT NOT NULL DEFAULT '{}',
  created_at          INTEGER NOT NULL
);
CREATE INDEX idx_oauth_clients_server ON oauth_clients(server_id);

-- Connection metadata only: no end-user token is ever stored (DESIGN §5).
CREATE TABLE connections (
  id               TEXT PRIMARY KEY,
  server_id        TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  workspace_id     TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  connection_hash  TEXT NOT NULL UNIQUE,
  client_id        TEXT,
  client_name      TEXT,
  scopes           TEXT,
  created_at       INTEGER NOT NULL,
  last_used_at     INTEGER,
  revoked_at       INTEGER
);
CREATE INDEX idx_connections_server ON connections(server_id);

-- Named workspace secrets: metadata here, the encrypted value in KV (wsec:<ws>:<name>).
CREATE TABLE workspace_secrets (
  workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  name          TEXT NOT NULL,
  kv_key        TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL,
  PRIMARY KEY (workspace_id, name)
);

-- One row per tools/call. No bodies, tokens or personal data; retained 30 days.
CREATE TABLE audit_events (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  ts               INTEGER NOT NULL,
  workspace_id     TEXT NOT NULL,
  server_id        TEXT NOT NULL,
  tool_name        TEXT NOT NULL,
  outcome          TEXT NOT NULL CHECK (outcome IN ('ok', 'tool_error', 'upstream_error', 'denied', 'invalid')),
  upstream_status  INTEGER,
  latency_ms       INTEGER NOT NULL,
  request_bytes    INTEGER NOT NULL,
  response_bytes   INTEGER NOT NULL,
  connection_hash  TEXT
);
CREATE INDEX idx_audit_ts ON audit_events(ts);
CREATE INDEX idx_audit_workspace_ts ON audit_events(workspace_id, ts);
CREATE INDEX idx_audit_server_ts ON audit_events(server_id, ts);
