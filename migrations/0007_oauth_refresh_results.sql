-- Issue 13: the outcome of one upstream refresh, kept a few minutes so that a concurrent refresh
-- of the same connection (the "loser" of the generation compare-and-set) gets the winner's
-- result instead of refreshing upstream a second time. `sealed` is AES-256-GCM under the key
-- ring with AAD naming the connection, the generation and the SHA-256 of the refresh token the
-- client presented: only a holder of that token can have it opened, so the table holds nothing
-- FlowCP could read back on its own. Rows expire after minutes (retention deletes them).
CREATE TABLE oauth_refresh_results (
  connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
  generation    INTEGER NOT NULL,
  sealed        TEXT NOT NULL,
  expires_at    INTEGER NOT NULL,
  PRIMARY KEY (connection_id, generation)
);
CREATE INDEX idx_oauth_refresh_results_expires ON oauth_refresh_results(expires_at);
