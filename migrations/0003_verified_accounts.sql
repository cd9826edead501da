-- Verified accounts and consented membership (security review F1, F7).
-- An account proves it owns its address by redeeming an emailed single-use link; until then it
-- can sign in but cannot join workspaces, create access keys or publish. Existing accounts are
-- unverified (NULL) and verify at their next sign-in: the fail-closed reading of old rows.
ALTER TABLE users ADD COLUMN email_verified_at INTEGER;

-- Single-use emailed links: email verification and password reset. Only the SHA-256 of the
-- token is stored; a redeemed token's row is deleted in the statement that redeems it.
CREATE TABLE email_tokens (
  token_hash  TEXT PRIMARY KEY,
  purpose     TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
  user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  email       TEXT NOT NULL COLLATE NOCASE,  -- the address the link was sent to
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL
);
CREATE INDEX idx_email_tokens_user ON email_tokens(user_id, purpose);
CREATE INDEX idx_email_tokens_expires ON email_tokens(expires_at);

-- Invitations replace adding a member directly: nothing links the invitee to the workspace
-- until they accept, signed in and verified as the invited address. One pending invitation per
-- address and workspace (inviting again replaces it). Only the SHA-256 of the token is stored.
CREATE TABLE invitations (
  id            TEXT PRIMARY KEY,              -- inv_
  workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  email         TEXT NOT NULL COLLATE NOCASE,
  role          TEXT NOT NULL CHECK (role IN ('admin', 'member')),
  token_hash    TEXT NOT NULL UNIQUE,
  invited_by    TEXT REFERENCES users(id) ON DELETE SET NULL,
  created_at    INTEGER NOT NULL,
  expires_at    INTEGER NOT NULL,
  UNIQUE (workspace_id, email)
);
CREATE INDEX idx_invitations_expires ON invitations(expires_at);
