-- Issue 13: OAuth clients registered with FlowCP's authorization server by dynamic client
-- registration (RFC 7591). Public clients only: no secret is issued or stored. Clients that
-- were never used are deleted after a day, the others 90 days after their last use.
-- The table of migration 0001 was per server (one issuer per server, a design since replaced
-- by one issuer for the origin) and nothing ever wrote to it: it is replaced.
DROP INDEX IF EXISTS idx_oauth_clients_server;
DROP TABLE IF EXISTS oauth_clients;
CREATE TABLE oauth_clients (
  id                  TEXT PRIMARY KEY,          -- the client_id issued (fcp_cl_...)
  client_name         TEXT NOT NULL,
  redirect_uris_json  TEXT NOT NULL,             -- the validated redirect URIs, a JSON list
  application_type    TEXT NOT NULL CHECK (application_type IN ('web', 'native')),
  created_at          INTEGER NOT NULL,
  last_used_at        INTEGER
);
CREATE INDEX idx_oauth_clients_created ON oauth_clients(created_at);
CREATE INDEX idx_oauth_clients_last_used ON oauth_clients(last_used_at);
