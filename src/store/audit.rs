//! The `audit_events` table: one row per `tools/call` (DESIGN §8).
//!
//! Rows never hold a body, a token, a key or personal data: the caller is identified only by a
//! truncated SHA-256 connection hash. Every write goes through [`insert_chunks`]: idempotent by
//! the event's id (a Queue delivers at least once, `crate::jobs::audit`), and it keeps the
//! plans' counters through migration 0015's trigger.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{opt_text, parsed, row_i64, text, Db, Row, SqlValue, StoreError};

/// Deletes at most `?2` rows older than `?1` (ms). Uses the `idx_audit_ts` index; bounded so
/// one statement never holds the database for long.
pub const DELETE_OLDER_THAN: &str = "DELETE FROM audit_events WHERE id IN \
    (SELECT id FROM audit_events WHERE ts < ?1 ORDER BY ts LIMIT ?2)";

/// Rows past their workspace's retention when it keeps less than the longest (90 days): each
/// workspace's expired rows through `idx_audit_workspace_ts`, so a batch reads what it deletes
/// (plus one probe per such workspace), never the rows other workspaces keep. `?1` now.
pub const DELETE_EXPIRED: &str = "DELETE FROM audit_events WHERE id IN \
    (SELECT a.id FROM workspaces w JOIN audit_events a \
       ON a.workspace_id = w.id AND a.ts < ?1 - w.audit_retention_days * 86400000 \
     WHERE w.audit_retention_days < 90 LIMIT ?2)";

pub const COUNT: &str = "SELECT COUNT(*) AS n FROM audit_events";

/// How a tool call ended. (The table's CHECK also admits the legacy `tool_error`, which
/// nothing writes: an upstream failure is `upstream_error`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    UpstreamError,
    Denied,
    Invalid,
    /// A 2xx that is not the documented shape: reported to the client as an error that may
    /// have taken effect (the body did not match the tool's output schema).
    UnexpectedResponse,
}

impl Outcome {
    pub const ALL: [Outcome; 5] =
        [Outcome::Ok, Outcome::UpstreamError, Outcome::Denied, Outcome::Invalid, Outcome::UnexpectedResponse];

    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Denied => "denied",
            Outcome::Invalid => "invalid",
            Outcome::UnexpectedResponse => "unexpected_response",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// A stored value: also the legacy `tool_error` the table's CHECK admits (an upstream
    /// failure), so such a row cannot break the listing or the export.
    pub fn parse_stored(s: &str) -> Option<Self> {
        match s {
            "tool_error" => Some(Outcome::UpstreamError),
            _ => Self::parse(s),
        }
    }
}

/// One audited call: a row of `audit_events`, and the body of a message on the audit queue
/// (`crate::jobs::audit`, which bounds what it accepts). A field added later needs
/// `#[serde(default)]`: messages already queued (or dead-lettered) lack it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Random, made where the call ends ([`event_id`]): a redelivered event is written once.
    pub id: String,
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
    /// What the call was for: the value of the argument the server's owner named
    /// (`usage_target`), cut to 128 characters.
    pub target: Option<String>,
    /// The workspace's plan when the call was made (`None`: unmetered).
    pub plan: Option<crate::vocab::Plan>,
    /// The call counts toward the monthly quotas (it was sent upstream from a published
    /// server): its insert adds it to `usage_counters` (migration 0015).
    pub metered: bool,
}

/// A new event id: 128 random bits in hex. Should the random source fail (it does not on
/// Workers), the time and an isolate counter still make it unique enough not to drop events.
pub fn event_id(now_ms: i64) -> String {
    match crate::crypto::random_bytes::<16>() {
        Ok(b) => hex::encode(b),
        Err(_) => {
            thread_local!(static N: std::cell::Cell<u64> = const { std::cell::Cell::new(0) });
            format!("t{now_ms:x}-{:x}", N.with(|n| n.replace(n.get() + 1)))
        }
    }
}

pub async fn insert(db: &impl Db, e: &AuditEvent) -> Result<(), StoreError> {
    insert_many(db, std::slice::from_ref(e)).await
}

/// D1 binds at most 100 parameters per statement: 7 rows of 14 columns per INSERT.
pub const ROWS_PER_INSERT: usize = 7;
/// Bound parameters per row (D1 allows 100 per statement).
const PARAMS_PER_ROW: usize = 14;

/// Writes events with multi-row statements, each its own transaction (with the counters its
/// rows add). An event whose id is already stored is skipped, and so is one of a workspace
/// that no longer exists (a late delivery after the workspace's deletion). A failing statement
/// is tried again one row at a time, so one bad event cannot hold back the others of its chunk
/// (other tenants' among them); the events still not written come back as index ranges into
/// `events`, with their error.
pub async fn insert_chunks(db: &impl Db, events: &[AuditEvent]) -> Vec<(std::ops::Range<usize>, StoreError)> {
    let mut failed = Vec::new();
    for (k, chunk) in events.chunks(ROWS_PER_INSERT).enumerate() {
        let start = k * ROWS_PER_INSERT;
        let Err(e) = insert_rows(db, chunk).await else { continue };
        if chunk.len() == 1 {
            failed.push((start..start + 1, e));
            continue;
        }
        for (i, row) in chunk.iter().enumerate() {
            if let Err(e) = insert_rows(db, std::slice::from_ref(row)).await {
                failed.push((start + i..start + i + 1, e));
            }
        }
    }
    failed
}

/// One multi-row INSERT of at most [`ROWS_PER_INSERT`] events.
async fn insert_rows(db: &impl Db, rows: &[AuditEvent]) -> Result<u64, StoreError> {
    let mut sql = String::from(
        "INSERT INTO audit_events (event_id, ts, workspace_id, server_id, tool_name, outcome, upstream_status, \
         latency_ms, request_bytes, response_bytes, connection_hash, target, plan, metered) \
         SELECT v.* FROM (VALUES ",
    );
    let mut params = Vec::with_capacity(rows.len() * PARAMS_PER_ROW);
    for (i, e) in rows.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        let b = i * PARAMS_PER_ROW;
        let marks: Vec<String> = (1..=PARAMS_PER_ROW).map(|k| format!("?{}", b + k)).collect();
        sql.push('(');
        sql.push_str(&marks.join(", "));
        sql.push(')');
        params.extend([
            e.id.as_str().into(),
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
            e.target.clone().into(),
            e.plan.map(crate::vocab::Plan::as_str).into(),
            i64::from(e.metered).into(),
        ]);
    }
    // `column3` is the workspace id. The WHERE also settles the upsert's parse (SQLite).
    sql.push_str(
        ") AS v WHERE EXISTS (SELECT 1 FROM workspaces w WHERE w.id = v.column3) \
         ON CONFLICT (workspace_id, event_id) DO NOTHING",
    );
    db.execute(&sql, &params).await
}

/// [`insert_chunks`], with one error that says how many events were not written.
pub async fn insert_many(db: &impl Db, events: &[AuditEvent]) -> Result<(), StoreError> {
    let failed = insert_chunks(db, events).await;
    let n: usize = failed.iter().map(|(r, _)| r.len()).sum();
    match failed.into_iter().next() {
        None => Ok(()),
        Some((_, e)) => Err(StoreError::Backend(format!("{n} of {} audit events not written: {e}", events.len()))),
    }
}

/// One batch of [`DELETE_EXPIRED`].
pub async fn delete_expired(db: &impl Db, now_ms: i64, limit: u32) -> Result<u64, StoreError> {
    db.execute(DELETE_EXPIRED, &[SqlValue::Integer(now_ms), SqlValue::Integer(i64::from(limit))]).await
}

/// A `user_key` user's own calls on one server, newest first (their portal and export).
pub async fn for_connection(
    db: &impl Db,
    server_id: &str,
    connection_hash: &str,
    limit: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    let sql = format!("SELECT {COLS} FROM audit_events WHERE server_id = ?1 AND connection_hash = ?2 ORDER BY ts DESC, id DESC LIMIT ?3");
    db.query(&sql, &[server_id.into(), connection_hash.into(), limit.into()]).await?.iter().map(audit_row).collect()
}

/// Deletes a `user_key` user's calls on one server (their "delete my data"), at most `limit`.
pub async fn delete_for_connection(
    db: &impl Db,
    server_id: &str,
    connection_hash: &str,
    limit: i64,
) -> Result<u64, StoreError> {
    let sql = "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE server_id = ?1 AND connection_hash = ?2 LIMIT ?3)";
    db.execute(sql, &[server_id.into(), connection_hash.into(), limit.into()]).await
}

/// One connection's calls on one server since `since_ms`.
pub async fn counts_by_connection_one(
    db: &impl Db,
    server_id: &str,
    connection_hash: &str,
    since_ms: i64,
) -> Result<i64, StoreError> {
    let sql = "SELECT COUNT(*) AS n FROM audit_events WHERE server_id = ?1 AND connection_hash = ?2 AND ts >= ?3";
    let rows = db.query(sql, &[server_id.into(), connection_hash.into(), since_ms.into()]).await?;
    rows.first().map(|r| row_i64(r, "n")).unwrap_or(Ok(0))
}

/// Calls per connection on one server since `since_ms` (the owner's per-user usage).
pub async fn counts_by_connection(
    db: &impl Db,
    server_id: &str,
    since_ms: i64,
) -> Result<Vec<(String, i64)>, StoreError> {
    let sql = "SELECT connection_hash, COUNT(*) AS n FROM audit_events WHERE server_id = ?1 AND ts >= ?2 \
               AND connection_hash IS NOT NULL GROUP BY connection_hash";
    db.query(sql, &[server_id.into(), since_ms.into()])
        .await?
        .iter()
        .map(|r| Ok((text(r, "connection_hash")?, row_i64(r, "n")?)))
        .collect()
}

pub async fn delete_older_than(db: &impl Db, cutoff_ms: i64, limit: u32) -> Result<u64, StoreError> {
    db.execute(DELETE_OLDER_THAN, &[SqlValue::Integer(cutoff_ms), SqlValue::Integer(i64::from(limit))]).await
}

pub async fn count(db: &impl Db) -> Result<i64, StoreError> {
    let rows = db.query(COUNT, &[]).await?;
    let row = rows.first().ok_or_else(|| StoreError::Corrupt("COUNT returned no row".into()))?;
    row_i64(row, "n")
}

/// The columns an owner sees of an audit event.
const COLS: &str =
    "id, ts, server_id, tool_name, outcome, upstream_status, latency_ms, request_bytes, response_bytes, \
                    connection_hash, target, plan";

/// A stored event as the owner sees it (listing and export).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AuditRow {
    pub id: i64,
    /// When the call ended (ms since the epoch).
    pub ts: i64,
    pub server_id: String,
    pub tool_name: String,
    pub outcome: Outcome,
    pub upstream_status: Option<i64>,
    pub latency_ms: i64,
    pub request_bytes: i64,
    pub response_bytes: i64,
    /// Truncated SHA-256 of the access key or connection; `null` for public servers.
    pub connection_hash: Option<String>,
    /// What the call was for (the argument the server's owner named, such as an environment).
    pub target: Option<String>,
    /// The workspace's plan when the call was made; `null`: unmetered.
    pub plan: Option<crate::vocab::Plan>,
}

fn audit_row(r: &Row) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        id: row_i64(r, "id")?,
        ts: row_i64(r, "ts")?,
        server_id: text(r, "server_id")?,
        tool_name: text(r, "tool_name")?,
        outcome: parsed(r, "outcome", Outcome::parse_stored)?,
        upstream_status: row_i64(r, "upstream_status").ok(),
        latency_ms: row_i64(r, "latency_ms")?,
        request_bytes: row_i64(r, "request_bytes")?,
        response_bytes: row_i64(r, "response_bytes")?,
        connection_hash: opt_text(r, "connection_hash"),
        target: opt_text(r, "target"),
        plan: opt_text(r, "plan").and_then(|p| crate::vocab::Plan::parse(&p)),
    })
}

/// Filters of the audit listing (all optional but the workspace).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub server: Option<String>,
    pub tool: Option<String>,
    pub outcome: Option<Outcome>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// One page of a workspace's events, newest first, strictly before `(before_ts, before_id)`;
/// `limit + 1` rows are read so the caller knows whether another page follows.
pub async fn page(
    db: &impl Db,
    ws: &str,
    f: &AuditFilter,
    (before_ts, before_id): (i64, i64),
    limit: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    let sql = format!(
        "SELECT {COLS} FROM audit_events WHERE workspace_id = ?1 AND (ts < ?2 OR (ts = ?2 AND id < ?3)) \
         AND (?4 IS NULL OR server_id = ?4) AND (?5 IS NULL OR tool_name = ?5) AND (?6 IS NULL OR outcome = ?6) \
         AND (?7 IS NULL OR ts >= ?7) AND (?8 IS NULL OR ts < ?8) ORDER BY ts DESC, id DESC LIMIT ?9"
    );
    let params = [
        ws.into(),
        before_ts.into(),
        before_id.into(),
        f.server.clone().into(),
        f.tool.clone().into(),
        f.outcome.map(|o| o.as_str().to_string()).into(),
        f.since.into(),
        f.until.into(),
        SqlValue::Integer(limit + 1),
    ];
    db.query(&sql, &params).await?.iter().map(audit_row).collect()
}

/// Calls, errors and nearest-rank p50/p95 latency of one group of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Stats {
    pub calls: i64,
    /// Calls that did not end `ok`.
    pub errors: i64,
    pub p50_ms: i64,
    pub p95_ms: i64,
}

/// One time bucket of [`series`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Bucket {
    /// The bucket's first millisecond.
    pub start: i64,
    #[serde(flatten)]
    pub stats: Stats,
}

/// One tool's share of [`by_tool`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ToolStats {
    pub server_id: String,
    pub tool_name: String,
    #[serde(flatten)]
    pub stats: Stats,
}

/// The events of `ws` matching `f` (whose `since` and `until` must be set), numbered within
/// each group of `group` by latency, so that the nearest-rank percentiles are one `MIN` each:
/// the p-th percentile of n values is the smallest with rank >= p% of n. All in SQL: only the
/// groups leave the database.
/// At most this many events (the newest) are read by one query: a busy workspace's 30 days
/// cost a bounded sort, not one that holds the shared database.
pub const SERIES_MAX_EVENTS: i64 = 100_000;

fn grouped(group: &str, select: &str) -> String {
    format!(
        "WITH w AS (SELECT ts, server_id, tool_name, latency_ms, outcome FROM audit_events \
           WHERE workspace_id = ?1 AND ts >= ?2 AND ts < ?3 \
           AND (?4 IS NULL OR server_id = ?4) AND (?5 IS NULL OR tool_name = ?5) AND (?6 IS NULL OR outcome = ?6) \
           ORDER BY ts DESC LIMIT {SERIES_MAX_EVENTS}), \
         e AS (SELECT server_id, tool_name, latency_ms, outcome, {group} AS g, \
           ROW_NUMBER() OVER (PARTITION BY {group} ORDER BY latency_ms) AS rn, \
           COUNT(*) OVER (PARTITION BY {group}) AS n FROM w) \
         SELECT {select}, COUNT(*) AS calls, SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END) AS errors, \
           MIN(CASE WHEN rn * 100 >= n * 50 THEN latency_ms END) AS p50, \
           MIN(CASE WHEN rn * 100 >= n * 95 THEN latency_ms END) AS p95 \
         FROM e GROUP BY g"
    )
}

fn window_params(ws: &str, f: &AuditFilter, since: i64, until: i64) -> Vec<SqlValue> {
    vec![
        ws.into(),
        since.into(),
        until.into(),
        f.server.clone().into(),
        f.tool.clone().into(),
        f.outcome.map(|o| o.as_str().to_string()).into(),
    ]
}

fn stats(r: &Row) -> Result<Stats, StoreError> {
    Ok(Stats {
        calls: row_i64(r, "calls")?,
        errors: row_i64(r, "errors")?,
        p50_ms: row_i64(r, "p50")?,
        p95_ms: row_i64(r, "p95")?,
    })
}

/// Buckets of `bucket_ms` from `since` to `until` that hold at least one event, oldest first.
pub async fn series(
    db: &impl Db,
    ws: &str,
    f: &AuditFilter,
    (since, until): (i64, i64),
    bucket_ms: i64,
) -> Result<Vec<Bucket>, StoreError> {
    // D1 binds numbers as JS numbers: CAST keeps the bucket arithmetic integral.
    let sql = grouped("(ts - CAST(?2 AS INTEGER)) / CAST(?7 AS INTEGER)", "g") + " ORDER BY g";
    let mut params = window_params(ws, f, since, until);
    params.push(bucket_ms.into());
    db.query(&sql, &params)
        .await?
        .iter()
        .map(|r| Ok(Bucket { start: since + row_i64(r, "g")? * bucket_ms, stats: stats(r)? }))
        .collect()
}

/// The 20 busiest tools from `since` to `until`.
pub async fn by_tool(
    db: &impl Db,
    ws: &str,
    f: &AuditFilter,
    (since, until): (i64, i64),
) -> Result<Vec<ToolStats>, StoreError> {
    let sql = grouped("server_id || '/' || tool_name", "MIN(server_id) AS server_id, MIN(tool_name) AS tool_name")
        + " ORDER BY calls DESC, tool_name LIMIT 20";
    db.query(&sql, &window_params(ws, f, since, until))
        .await?
        .iter()
        .map(|r| Ok(ToolStats { server_id: text(r, "server_id")?, tool_name: text(r, "tool_name")?, stats: stats(r)? }))
        .collect()
}

/// The newest 10,000 events of a workspace (the data export).
pub async fn export(db: &impl Db, ws: &str) -> Result<Vec<AuditRow>, StoreError> {
    db.query(
        &format!("SELECT {COLS} FROM audit_events WHERE workspace_id = ?1 ORDER BY ts DESC LIMIT 10000"),
        &[ws.into()],
    )
    .await?
    .iter()
    .map(audit_row)
    .collect()
}

/// Deletes every event of a workspace (its deletion).
pub async fn delete_for_workspace(db: &impl Db, ws: &str) -> Result<u64, StoreError> {
    db.execute("DELETE FROM audit_events WHERE workspace_id = ?1", &[ws.into()]).await
}
