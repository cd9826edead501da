-- Issue 16: plans and quotas. A workspace's plan (NULL: the deployment's default plan,
-- FLOWCP_DEFAULT_PLAN, or no limits) and the operator's overrides of its limits (JSON,
-- `plans::LimitOverrides`); the plan each usage row was made under; and the monthly call
-- counters the hot path checks quotas against (never the log: one row per server and month,
-- subject '', and one per server, caller and month, subject = the audit's connection hash).
ALTER TABLE workspaces ADD COLUMN plan TEXT CHECK (plan IS NULL OR plan IN ('free', 'pro', 'team'));
ALTER TABLE workspaces ADD COLUMN plan_limits TEXT;
ALTER TABLE audit_events ADD COLUMN plan TEXT;
CREATE TABLE usage_counters (
  server_id TEXT NOT NULL,
  subject TEXT NOT NULL,
  month TEXT NOT NULL,
  workspace_id TEXT NOT NULL,
  calls INTEGER NOT NULL DEFAULT 0 CHECK (calls >= 0),
  PRIMARY KEY (server_id, subject, month)
);
CREATE INDEX idx_usage_counters_workspace ON usage_counters(workspace_id, month);

-- Workspaces deleted in the last day: their deletion removes their audit rows and counters, and
-- the retention job removes those an in-flight audit flush wrote after it (then the tombstone).
CREATE TABLE deleted_workspaces (
  id TEXT PRIMARY KEY,
  deleted_at INTEGER NOT NULL
);
