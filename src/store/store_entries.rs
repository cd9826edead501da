//! The `store_entries` table (issue 16, migration 0013): the latest answer of a synced tool
//! for one `user_key` user and one set of arguments, sealed, for the `*_store_*` tools and the
//! hourly refresh (`crate::oauth::store_tools`).

use super::{row_i64, text, Db, Row, SqlValue, StoreError};

/// One cached answer, as stored (both payloads sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub server_id: String,
    pub user_id: String,
    pub tool: String,
    pub args_hash: String,
    pub workspace_id: String,
    pub args_sealed: String,
    pub body_sealed: String,
    pub fetched_at: i64,
    pub refreshed_at: i64,
    /// When the user last used it (a live call of the tool, or a store read).
    pub used_at: i64,
}

fn entry(r: &Row) -> Result<Entry, StoreError> {
    Ok(Entry {
        server_id: text(r, "server_id")?,
        user_id: text(r, "user_id")?,
        tool: text(r, "tool")?,
        args_hash: text(r, "args_hash")?,
        workspace_id: text(r, "workspace_id")?,
        args_sealed: text(r, "args_sealed")?,
        body_sealed: text(r, "body_sealed")?,
        fetched_at: row_i64(r, "fetched_at")?,
        refreshed_at: row_i64(r, "refreshed_at")?,
        used_at: row_i64(r, "used_at")?,
    })
}

/// Most entries one user keeps on one server (each distinct set of arguments is one).
pub const MAX_PER_USER: i64 = 50;
/// Most entries one workspace keeps (all its servers and users).
pub const MAX_PER_WORKSPACE: i64 = 10_000;

/// Stores a fresh answer: a live call (`e.used_at` is now) or a refresh (it keeps the stored
/// `used_at`). Only for a user who is active (a revocation in flight does not bring an entry
/// back), and a new entry only within [`MAX_PER_USER`] and [`MAX_PER_WORKSPACE`] (`false`).
pub async fn put(db: &impl Db, e: &Entry) -> Result<bool, StoreError> {
    let sql = "INSERT INTO store_entries (server_id, user_id, tool, args_hash, workspace_id, args_sealed, body_sealed, \
               fetched_at, refreshed_at, used_at) \
               SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?10 \
               WHERE EXISTS (SELECT 1 FROM key_users WHERE server_id = ?1 AND user_id = ?2 AND status = 'active') \
                 AND (EXISTS (SELECT 1 FROM store_entries WHERE server_id = ?1 AND user_id = ?2 AND tool = ?3 AND args_hash = ?4) \
                  OR ((SELECT COUNT(*) FROM store_entries WHERE server_id = ?1 AND user_id = ?2) < ?9 \
                  AND (SELECT COUNT(*) FROM store_entries WHERE workspace_id = ?5) < ?11)) \
               ON CONFLICT (server_id, user_id, tool, args_hash) DO UPDATE SET \
               body_sealed = excluded.body_sealed, fetched_at = excluded.fetched_at, refreshed_at = excluded.refreshed_at, \
               used_at = MAX(used_at, excluded.used_at)";
    let n = db
        .execute(
            sql,
            &[
                e.server_id.as_str().into(),
                e.user_id.as_str().into(),
                e.tool.as_str().into(),
                e.args_hash.as_str().into(),
                e.workspace_id.as_str().into(),
                e.args_sealed.as_str().into(),
                e.body_sealed.as_str().into(),
                e.fetched_at.into(),
                MAX_PER_USER.into(),
                e.used_at.into(),
                MAX_PER_WORKSPACE.into(),
            ],
        )
        .await?;
    Ok(n > 0)
}

/// One user's entry for a tool and arguments.
pub async fn get(
    db: &impl Db,
    server_id: &str,
    user_id: &str,
    tool: &str,
    args_hash: &str,
) -> Result<Option<Entry>, StoreError> {
    let rows = db
        .query(
            &format!("SELECT * FROM store_entries WHERE {KEY}"),
            &[server_id.into(), user_id.into(), tool.into(), args_hash.into()],
        )
        .await?;
    rows.first().map(entry).transpose()
}

/// Entries not refreshed since `before_ms` and used since `used_since_ms`, oldest first, at
/// most `limit` (the hourly refresh). A row that does not read as an entry is skipped.
pub async fn due(db: &impl Db, before_ms: i64, used_since_ms: i64, limit: u32) -> Result<Vec<Entry>, StoreError> {
    let sql = "SELECT * FROM store_entries WHERE refreshed_at < ?1 AND used_at >= ?2 ORDER BY refreshed_at LIMIT ?3";
    let rows = db.query(sql, &[before_ms.into(), used_since_ms.into(), SqlValue::Integer(i64::from(limit))]).await?;
    Ok(rows.iter().filter_map(|r| entry(r).ok()).collect())
}

/// A store read used an entry: it stays refreshed and kept 30 more days.
pub async fn mark_used(db: &impl Db, e: &Entry, now_ms: i64) -> Result<(), StoreError> {
    db.execute(&format!("UPDATE store_entries SET used_at = ?5 WHERE {KEY}"), &keyed(e, Some(now_ms))).await.map(|_| ())
}

/// An entry's key as the parameters `?1`..`?4` of a statement, then `extra`.
fn keyed(e: &Entry, extra: Option<i64>) -> Vec<SqlValue> {
    let mut p: Vec<SqlValue> = vec![
        e.server_id.as_str().into(),
        e.user_id.as_str().into(),
        e.tool.as_str().into(),
        e.args_hash.as_str().into(),
    ];
    p.extend(extra.map(SqlValue::Integer));
    p
}

const KEY: &str = "server_id = ?1 AND user_id = ?2 AND tool = ?3 AND args_hash = ?4";

/// A refresh was tried (whatever came of it): not tried again for an hour.
pub async fn touch(db: &impl Db, e: &Entry, now_ms: i64) -> Result<(), StoreError> {
    db.execute(&format!("UPDATE store_entries SET refreshed_at = ?5 WHERE {KEY}"), &keyed(e, Some(now_ms)))
        .await
        .map(|_| ())
}

/// Deletes one entry (its tool is no longer synced, or its user cannot be called as).
pub async fn delete(db: &impl Db, e: &Entry) -> Result<(), StoreError> {
    db.execute(&format!("DELETE FROM store_entries WHERE {KEY}"), &keyed(e, None)).await.map(|_| ())
}

/// The user revoked (or was revoked): their cached answers go.
pub const DELETE_FOR_USER: &str = "DELETE FROM store_entries WHERE server_id = ?1 AND user_id = ?2";

/// Every revoked user's entries on a server (a publish revoked them).
pub const DELETE_FOR_REVOKED: &str = "DELETE FROM store_entries WHERE server_id = ?1 AND user_id IN \
    (SELECT user_id FROM key_users WHERE server_id = ?1 AND status = 'revoked')";

/// Entries the user has not used since `before_ms` (30 days; a workspace off the team plan
/// cannot use them), at most `limit`.
pub async fn delete_stale(db: &impl Db, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
    db.execute(
        "DELETE FROM store_entries WHERE rowid IN (SELECT rowid FROM store_entries WHERE used_at < ?1 LIMIT ?2)",
        &[before_ms.into(), SqlValue::Integer(i64::from(limit))],
    )
    .await
}

/// How many entries a user has on a server (their portal and export).
pub async fn count_for_user(db: &impl Db, server_id: &str, user_id: &str) -> Result<i64, StoreError> {
    let rows = db
        .query(
            "SELECT COUNT(*) AS n FROM store_entries WHERE server_id = ?1 AND user_id = ?2",
            &[server_id.into(), user_id.into()],
        )
        .await?;
    rows.first().map(|r| row_i64(r, "n")).unwrap_or(Ok(0))
}
