//! The `usage_counters` table and the workspace plan columns (issue 16, migration 0012): the
//! monthly call counts that quotas are checked against, so no quota ever scans the log.
//!
//! One row per server and month (`subject` = `''`) and one per server, caller and month
//! (`subject` = the audit's connection hash). Migration 0015's trigger adds to them as each
//! metered audit row is inserted, in the same transaction (a redelivered event counts nothing);
//! the hot path reads a server's and a caller's counts with the workspace's plan in one query
//! ([`snapshot`]).

use super::{opt_i64, opt_text, row_i64, text, Db, SqlValue, StoreError};
use crate::vocab::Plan;

/// The whole server's subject.
pub const SERVER: &str = "";

/// What the hot path needs to decide a call: the workspace's stored plan and overrides, and
/// this month's counts of the server and of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `None`: the workspace has no plan of its own (the deployment's default applies).
    pub plan: Option<Plan>,
    /// The operator's overrides (JSON, `plans::LimitOverrides`), as stored.
    pub overrides: Option<String>,
    pub server_calls: i64,
    pub user_calls: i64,
    /// Every server of the workspace, deleted ones included.
    pub workspace_calls: i64,
}

const SNAPSHOT: &str = "SELECT w.plan, w.plan_limits, \
    (SELECT calls FROM usage_counters WHERE server_id = ?2 AND subject = '' AND month = ?3) AS server_calls, \
    (SELECT calls FROM usage_counters WHERE server_id = ?2 AND subject = ?4 AND month = ?3) AS user_calls, \
    (SELECT SUM(calls) FROM usage_counters WHERE workspace_id = ?1 AND month = ?3 AND subject = '') AS workspace_calls \
    FROM workspaces w WHERE w.id = ?1";

/// One D1 read: the plan of `workspace_id` and the counts of `server_id` and `subject` in
/// `month` (`YYYY-MM`). `subject` `None`: a caller without a connection (public servers).
pub async fn snapshot(
    db: &impl Db,
    workspace_id: &str,
    server_id: &str,
    subject: Option<&str>,
    month: &str,
) -> Result<Snapshot, StoreError> {
    // A subject that cannot be a connection hash matches no row.
    let params = [workspace_id.into(), server_id.into(), month.into(), subject.unwrap_or("-").into()];
    let rows = db.query(SNAPSHOT, &params).await?;
    let Some(row) = rows.first() else {
        return Ok(Snapshot { plan: None, overrides: None, server_calls: 0, user_calls: 0, workspace_calls: 0 });
    };
    let plan = match opt_text(row, "plan") {
        None => None,
        Some(p) => Some(Plan::parse(&p).ok_or_else(|| StoreError::Corrupt("workspaces.plan".into()))?),
    };
    Ok(Snapshot {
        plan,
        overrides: opt_text(row, "plan_limits"),
        server_calls: opt_i64(row, "server_calls")?.unwrap_or(0),
        user_calls: opt_i64(row, "user_calls")?.unwrap_or(0),
        workspace_calls: opt_i64(row, "workspace_calls")?.unwrap_or(0),
    })
}

/// Each server's calls in `month`, for a workspace (the owner's plan view).
pub async fn server_totals(db: &impl Db, workspace_id: &str, month: &str) -> Result<Vec<(String, i64)>, StoreError> {
    let sql = "SELECT server_id, calls FROM usage_counters WHERE workspace_id = ?1 AND month = ?2 AND subject = '' \
               ORDER BY server_id";
    db.query(sql, &[workspace_id.into(), month.into()])
        .await?
        .iter()
        .map(|r| Ok((text(r, "server_id")?, row_i64(r, "calls")?)))
        .collect()
}

/// One caller's calls on one server in `month` (their portal).
pub async fn calls_of(db: &impl Db, server_id: &str, subject: &str, month: &str) -> Result<i64, StoreError> {
    let sql = "SELECT calls FROM usage_counters WHERE server_id = ?1 AND subject = ?2 AND month = ?3";
    let rows = db.query(sql, &[server_id.into(), subject.into(), month.into()]).await?;
    rows.first().map(|r| row_i64(r, "calls")).unwrap_or(Ok(0))
}

/// The workspace's stored plan and overrides; `None`: no such workspace.
pub async fn plan_of(db: &impl Db, workspace_id: &str) -> Result<Option<(Option<Plan>, Option<String>)>, StoreError> {
    let rows = db.query("SELECT plan, plan_limits FROM workspaces WHERE id = ?1", &[workspace_id.into()]).await?;
    let Some(row) = rows.first() else { return Ok(None) };
    let plan = match opt_text(row, "plan") {
        None => None,
        Some(p) => Some(Plan::parse(&p).ok_or_else(|| StoreError::Corrupt("workspaces.plan".into()))?),
    };
    Ok(Some((plan, opt_text(row, "plan_limits"))))
}

/// Sets a workspace's plan and overrides (the operator's `/ops/plan`); `false`: no such workspace.
pub async fn set_plan(
    db: &impl Db,
    workspace_id: &str,
    plan: Option<Plan>,
    overrides: Option<&str>,
) -> Result<bool, StoreError> {
    let n = db
        .execute(
            "UPDATE workspaces SET plan = ?2, plan_limits = ?3 WHERE id = ?1",
            &[workspace_id.into(), plan.map(Plan::as_str).into(), overrides.into()],
        )
        .await?;
    Ok(n > 0)
}

/// How many workspaces an account made (and still exist).
pub async fn workspaces_created_by(db: &impl Db, user_id: &str) -> Result<i64, StoreError> {
    let rows = db.query("SELECT COUNT(*) AS n FROM workspaces WHERE created_by = ?1", &[user_id.into()]).await?;
    rows.first().map(|r| row_i64(r, "n")).unwrap_or(Ok(0))
}

/// How many servers the workspace has (its plan limits them).
pub async fn server_count(db: &impl Db, workspace_id: &str) -> Result<i64, StoreError> {
    let rows = db.query("SELECT COUNT(*) AS n FROM servers WHERE workspace_id = ?1", &[workspace_id.into()]).await?;
    rows.first().map(|r| row_i64(r, "n")).unwrap_or(Ok(0))
}

/// Deletes one caller's counters on a server (their "delete my data").
pub async fn delete_for_subject(db: &impl Db, server_id: &str, subject: &str) -> Result<u64, StoreError> {
    db.execute("DELETE FROM usage_counters WHERE server_id = ?1 AND subject = ?2", &[server_id.into(), subject.into()])
        .await
}

/// Deletes counters of months before `month` (the retention job: quotas only read the current
/// month), at most `limit` rows.
pub async fn delete_before(db: &impl Db, month: &str, limit: u32) -> Result<u64, StoreError> {
    db.execute(
        "DELETE FROM usage_counters WHERE rowid IN (SELECT rowid FROM usage_counters WHERE month < ?1 LIMIT ?2)",
        &[month.into(), SqlValue::Integer(i64::from(limit))],
    )
    .await
}

/// A workspace is about to be deleted: a tombstone lets the retention job delete what an
/// in-flight audit flush writes after the deletion ([`sweep_deleted`]; it spares a workspace
/// that still exists, should the deletion fail half-way).
pub async fn tombstone(db: &impl Db, workspace_id: &str, now_ms: i64) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO deleted_workspaces (id, deleted_at) VALUES (?1, ?2) \
         ON CONFLICT (id) DO UPDATE SET deleted_at = excluded.deleted_at",
        &[workspace_id.into(), now_ms.into()],
    )
    .await
    .map(|_| ())
}

/// A deleted workspace's counters (after its row is gone: a failed deletion keeps its quota).
pub async fn delete_for_workspace(db: &impl Db, workspace_id: &str) -> Result<u64, StoreError> {
    db.execute("DELETE FROM usage_counters WHERE workspace_id = ?1", &[workspace_id.into()]).await
}

/// How long a tombstone stays: far past any flush (an isolate writes its events within seconds).
pub const TOMBSTONE_MS: i64 = 86_400_000;

/// The retention job's pass over deleted workspaces: audit rows and counters written after
/// the deletion, at most `limit` of each; tombstones older than [`TOMBSTONE_MS`] go last.
/// Returns the audit rows deleted.
pub async fn sweep_deleted(db: &impl Db, now_ms: i64, limit: u32) -> Result<u64, StoreError> {
    let limit = SqlValue::Integer(i64::from(limit));
    let audit = db
        .execute(
            "DELETE FROM audit_events WHERE id IN (SELECT a.id FROM deleted_workspaces d \
             JOIN audit_events a ON a.workspace_id = d.id \
             WHERE NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.id = d.id) LIMIT ?1)",
            std::slice::from_ref(&limit),
        )
        .await?;
    db.execute(
        "DELETE FROM usage_counters WHERE rowid IN (SELECT c.rowid FROM deleted_workspaces d \
         JOIN usage_counters c ON c.workspace_id = d.id \
         WHERE NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.id = d.id) LIMIT ?1)",
        std::slice::from_ref(&limit),
    )
    .await?;
    db.execute("DELETE FROM deleted_workspaces WHERE deleted_at < ?1", &[(now_ms - TOMBSTONE_MS).into()]).await?;
    Ok(audit)
}
