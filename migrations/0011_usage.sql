-- Issue 16: skills, the owner's bundles of a server's tools and how `tools/list` shows them, as
-- JSON (`manifest::SkillsConfig`); NULL: no skills.
ALTER TABLE servers ADD COLUMN skills_json TEXT;

-- Issue 16: usage. Each audit row may name the target its call was for (the value of the
-- argument the server's owner chose, such as a Power Automate environment: `servers.usage_target`),
-- and each workspace chooses how long its audit rows are kept (7 to 90 days, 30 by default; the
-- hourly cron applies it).
ALTER TABLE audit_events ADD COLUMN target TEXT;
ALTER TABLE servers ADD COLUMN usage_target TEXT;
ALTER TABLE workspaces ADD COLUMN audit_retention_days INTEGER NOT NULL DEFAULT 30
  CHECK (audit_retention_days BETWEEN 7 AND 90);
CREATE INDEX idx_audit_server_connection_ts ON audit_events(server_id, connection_hash, ts);
