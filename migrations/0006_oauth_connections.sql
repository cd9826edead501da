-- Issue 13: per-user OAuth connections. `connections` (0001) keeps metadata only — never a
-- token; `generation` counts refresh rotations (compare-and-set, so concurrent refreshes of one
-- connection make one upstream refresh). `oauth_used` marks single-use values (authorization
-- codes, upstream `state`s) by hash until they expire.
ALTER TABLE connections ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
CREATE TABLE oauth_used (
  id          TEXT PRIMARY KEY,      -- SHA-256 hex of the value
  expires_at  INTEGER NOT NULL
);
CREATE INDEX idx_oauth_used_expires ON oauth_used(expires_at);
