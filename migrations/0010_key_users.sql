-- Issue 16: `user_key` servers. An end user signs in once at the server's portal with the
-- server's OAuth provider; FlowCP keeps their upstream refresh token, sealed, and hands them an
-- API key (an HS256 JWT, never stored) that carries the user's `epoch`. Issuing a key again or
-- revoking bumps the epoch, which ends every older key.
--
-- The sealed refresh token and the sealed access-token cache live here, in the user's own row,
-- not in KV: rotation (a compare-and-set on `generation`), single-flight refresh (`lease_until`)
-- and revocation (epoch, status and both tokens in one UPDATE) need D1's read-your-writes.
-- Both envelopes are AES-256-GCM with AAD naming the server and the user (docs/storage.md).
CREATE TABLE key_users (
  server_id          TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  -- Opaque, random; the key's `sub`. Logs and the owner see only its truncated SHA-256.
  user_id            TEXT NOT NULL,
  -- Truncated SHA-256 of user_id: what the owner, the audit log and the user's portal show.
  user_hash          TEXT NOT NULL,
  workspace_id       TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  -- SHA-256 of the provider's issuer and subject: the same person signing in again is the same
  -- user (their usage and quota follow them). Never the subject in clear.
  subject_hash       TEXT NOT NULL,
  -- The provider configuration the tokens came from (oauth::tokens::provider_binding): a
  -- publish with another provider, or off user_key, revokes the rows of the old one.
  provider           TEXT NOT NULL,
  epoch              INTEGER NOT NULL DEFAULT 0,
  -- active | disconnected (the provider refused the refresh: consent revoked) | revoked
  status             TEXT NOT NULL,
  refresh_sealed     TEXT,
  access_sealed      TEXT,
  access_expires_at  INTEGER,
  generation         INTEGER NOT NULL DEFAULT 0,
  lease_until        INTEGER,
  created_at         INTEGER NOT NULL,
  signed_in_at       INTEGER NOT NULL,
  key_issued_at      INTEGER,
  PRIMARY KEY (server_id, user_id),
  UNIQUE (server_id, subject_hash),
  UNIQUE (server_id, user_hash)
);
CREATE INDEX idx_key_users_workspace ON key_users(workspace_id);

-- `servers.auth_mode` has a CHECK (0001) that predates `user_key`. SQLite cannot change a CHECK
-- in place, and rebuilding `servers` would cascade a DROP to every table that references it, so
-- a `user_key` server is stored as `auth_mode = 'oauth'` with this flag (store::servers).
ALTER TABLE servers ADD COLUMN user_keys INTEGER NOT NULL DEFAULT 0 CHECK (user_keys IN (0, 1));
