//! The `audit_events` table: one row per `tools/call` (DESIGN §8).
//!
//! Rows never hold a body, a token, a key or personal data: the caller is identified only by a
//! truncated SHA-256 connection hash. All audit writes go through [`insert`] so that moving them
//! to a Queue later is a local change.

use super::{row_i64, Db, SqlValue, StoreError};

/// Deletes at most `?2` rows older than `?1` (ms). Uses the `idx_audit_ts` index; bounded so
/// one statement never holds the database for long.
pub const DELETE_OLDER_THAN: &str = "DELETE FROM audit_events WHERE id IN \
    (SELECT id FROM audit_events WHERE ts < ?1 ORDER BY ts LIMIT ?2)";

pub const COUNT: &str = "SELECT COUNT(*) AS n FROM audit_events";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    ToolError,
    UpstreamError,
    Denied,
    Invalid,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Denied => "denied",
            Outcome::Invalid => "invalid",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub ts_ms: i64,
    pub workspace_id: String,
    pub server_id: String,
    pub tool_name: String,
    pub outcome: Outcome,
    pub upstream_status: Option<u16>,
    pub latency_ms: i64,
    pub request_bytes: i64,
    pub response_bytes: i64,
    /// Truncated SHA-256 hex of the access key id or connection; `None` for public servers.
    pub connection_hash: Option<String>,
}

pub async fn insert(db: &impl Db, e: &AuditEvent) -> Result<(), StoreError> {
    insert_many(db, std::slice::from_ref(e)).await
}

/// D1 binds at most 100 parameters per statement: 9 rows of 10 columns per INSERT.
pub const ROWS_PER_INSERT: usize = 9;

/// Inserts many events with multi-row INSERTs (the coalesced audit writer's path).
pub async fn insert_many(db: &impl Db, events: &[AuditEvent]) -> Result<(), StoreError> {
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let mut sql = String::from(
            "INSERT INTO audit_events (ts, workspace_id, server_id, tool_name, outcome, upstream_status, latency_ms, \
             request_bytes, response_bytes, connection_hash) VALUES ",
        );
        let mut params = Vec::with_capacity(chunk.len() * 10);
        for (i, e) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let b = i * 10;
            sql.push_str(&format!(
                "(?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9,
                b + 10
            ));
            params.extend([
                e.ts_ms.into(),
                e.workspace_id.as_str().into(),
                e.server_id.as_str().into(),
                e.tool_name.as_str().into(),
                e.outcome.as_str().into(),
                e.upstream_status.map(i64::from).into(),
                e.latency_ms.into(),
                e.request_bytes.into(),
                e.response_bytes.into(),
                e.connection_hash.clone().into(),
            ]);
        }
        db.execute(&sql, &params).await?;
    }
    Ok(())
}

pub async fn delete_older_than(db: &impl Db, cutoff_ms: i64, limit: u32) -> Result<u64, StoreError> {
    db.execute(DELETE_OLDER_THAN, &[SqlValue::Integer(cutoff_ms), SqlValue::Integer(i64::from(limit))]).await
}

pub async fn count(db: &impl Db) -> Result<i64, StoreError> {
    let rows = db.query(COUNT, &[]).await?;
    let row = rows.first().ok_or_else(|| StoreError::Corrupt("COUNT returned no row".into()))?;
    row_i64(row, "n")
}
