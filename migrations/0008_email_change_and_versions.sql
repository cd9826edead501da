-- Issue 14 (the owners' dashboard).
--
-- 1. Changing an account's address: a `change_email` link is sent to the new address, and the
--    address changes only when that link is redeemed by the account's own session (the new
--    mailbox is proved before it takes effect). SQLite cannot widen a CHECK in place, so the
--    table is rebuilt with its rows and indexes.
CREATE TABLE email_tokens_new (
  token_hash  TEXT PRIMARY KEY,
  purpose     TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password', 'change_email')),
  user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  email       TEXT NOT NULL COLLATE NOCASE,  -- the address the link was sent to
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL
);
INSERT INTO email_tokens_new (token_hash, purpose, user_id, email, created_at, expires_at)
  SELECT token_hash, purpose, user_id, email, created_at, expires_at FROM email_tokens;
DROP TABLE email_tokens;
ALTER TABLE email_tokens_new RENAME TO email_tokens;
CREATE INDEX idx_email_tokens_user ON email_tokens(user_id, purpose);
CREATE INDEX idx_email_tokens_expires ON email_tokens(expires_at);

-- 2. A server's published versions, one small row per publish (the manifests themselves stay in
--    KV, one key per version). Versions published before this migration have no row.
CREATE TABLE server_versions (
  server_id     TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  version       INTEGER NOT NULL,
  published_at  INTEGER NOT NULL,
  published_by  TEXT REFERENCES users(id) ON DELETE SET NULL,
  tool_count    INTEGER NOT NULL,
  bytes         INTEGER NOT NULL,
  PRIMARY KEY (server_id, version)
);
