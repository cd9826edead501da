//! The `connections` table: one end user's OAuth grant to one published server, or one FlowCP
//! account's grant to an agent on FlowCP's own MCP server (bound to one workspace), as metadata
//! only (DESIGN §5): the tokens, and the user's upstream tokens in them, are sealed and held by
//! the client.
//! And `oauth_used`: single-use markers (a code or state, by hash) until they expire.

use schemars::JsonSchema;
use serde::Serialize;

use super::{opt_i64, opt_text, row_i64, text, Db, StoreError};

/// Shown to the owner as is, without its id (in the user's tokens), server, workspace and
/// refresh generation: the connection hash identifies it there and in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Connection {
    #[serde(skip)]
    pub id: String,
    /// The published server; `None` for a connection to FlowCP's own MCP server.
    #[serde(skip)]
    pub server_id: Option<String>,
    /// FlowCP's own MCP server: the account the agent acts as (`None` for a published server).
    #[serde(skip)]
    pub user_id: Option<String>,
    #[serde(skip)]
    pub workspace_id: String,
    /// Truncated SHA-256 of the id: what the audit log and the owner see.
    pub connection_hash: String,
    pub client_id: Option<String>,
    pub client_name: Option<String>,
    pub scopes: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    #[serde(skip)]
    pub generation: i64,
}

fn connection(r: &super::Row) -> Result<Connection, StoreError> {
    Ok(Connection {
        id: text(r, "id")?,
        server_id: opt_text(r, "server_id"),
        user_id: opt_text(r, "user_id"),
        workspace_id: text(r, "workspace_id")?,
        connection_hash: text(r, "connection_hash")?,
        client_id: opt_text(r, "client_id"),
        client_name: opt_text(r, "client_name"),
        scopes: opt_text(r, "scopes"),
        created_at: row_i64(r, "created_at")?,
        last_used_at: opt_i64(r, "last_used_at")?,
        revoked_at: opt_i64(r, "revoked_at")?,
        generation: row_i64(r, "generation")?,
    })
}

pub async fn insert(db: &impl Db, c: &Connection) -> Result<(), StoreError> {
    let sql = "INSERT INTO connections (id, server_id, user_id, workspace_id, connection_hash, client_id, \
               client_name, scopes, created_at, generation) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
    db.execute(
        sql,
        &[
            c.id.as_str().into(),
            c.server_id.clone().into(),
            c.user_id.clone().into(),
            c.workspace_id.as_str().into(),
            c.connection_hash.as_str().into(),
            c.client_id.clone().into(),
            c.client_name.clone().into(),
            c.scopes.clone().into(),
            c.created_at.into(),
            c.generation.into(),
        ],
    )
    .await
    .map(|_| ())
}

pub async fn get(db: &impl Db, id: &str) -> Result<Option<Connection>, StoreError> {
    db.query("SELECT * FROM connections WHERE id = ?1", &[id.into()]).await?.first().map(connection).transpose()
}

/// A server's connections, newest first (at most 1,000).
pub async fn list_for_server(db: &impl Db, ws: &str, server_id: &str) -> Result<Vec<Connection>, StoreError> {
    let sql =
        "SELECT * FROM connections WHERE workspace_id = ?1 AND server_id = ?2 ORDER BY created_at DESC, id LIMIT 1000";
    db.query(sql, &[ws.into(), server_id.into()]).await?.iter().map(connection).collect()
}

/// A connection of this workspace's server by its hash.
pub async fn get_by_hash(
    db: &impl Db,
    ws: &str,
    server_id: &str,
    hash: &str,
) -> Result<Option<Connection>, StoreError> {
    let sql = "SELECT * FROM connections WHERE workspace_id = ?1 AND server_id = ?2 AND connection_hash = ?3";
    db.query(sql, &[ws.into(), server_id.into(), hash.into()]).await?.first().map(connection).transpose()
}

/// Most live agent connections one account may have.
pub const MAX_LIVE_PER_USER: i64 = 50;

/// One agent connection of an account, as its user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AgentConnection {
    /// Truncated SHA-256 of the connection's id: how the user names it to revoke it, and what
    /// the workspace's audit log shows for the agent's calls.
    pub connection_hash: String,
    pub client_id: Option<String>,
    pub client_name: Option<String>,
    pub workspace_id: String,
    /// `None` once the workspace is gone.
    pub workspace_name: Option<String>,
    pub created_at: i64,
    /// The last token refresh.
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// An account's agent connections (FlowCP's own MCP server) whose code was redeemed: the live
/// ones first (at most [`MAX_LIVE_PER_USER`] exist), then the ended ones, newest first; at most
/// 200 in all.
pub async fn list_for_user(db: &impl Db, user_id: &str) -> Result<Vec<AgentConnection>, StoreError> {
    let sql = "SELECT c.connection_hash, c.client_id, c.client_name, c.workspace_id, w.name AS workspace_name, \
               c.created_at, c.last_used_at, c.revoked_at FROM connections c \
               LEFT JOIN workspaces w ON w.id = c.workspace_id \
               WHERE c.user_id = ?1 AND c.last_used_at IS NOT NULL \
               ORDER BY c.revoked_at IS NULL DESC, c.created_at DESC, c.id LIMIT 200";
    db.query(sql, &[user_id.into()])
        .await?
        .iter()
        .map(|r| {
            Ok(AgentConnection {
                connection_hash: text(r, "connection_hash")?,
                client_id: opt_text(r, "client_id"),
                client_name: opt_text(r, "client_name"),
                workspace_id: text(r, "workspace_id")?,
                workspace_name: opt_text(r, "workspace_name"),
                created_at: row_i64(r, "created_at")?,
                last_used_at: opt_i64(r, "last_used_at")?,
                revoked_at: opt_i64(r, "revoked_at")?,
            })
        })
        .collect()
}

/// An account's agent connection by its hash (`None` for another account's).
pub async fn get_for_user_by_hash(db: &impl Db, user_id: &str, hash: &str) -> Result<Option<Connection>, StoreError> {
    let sql = "SELECT * FROM connections WHERE user_id = ?1 AND connection_hash = ?2";
    db.query(sql, &[user_id.into(), hash.into()]).await?.first().map(connection).transpose()
}

/// Revokes every live agent connection of an account (`?1` user id, `?2` now): a password
/// change or reset ends them, as it ends the account's other sessions. For `Db::batch`.
pub const REVOKE_ALL_FOR_USER: &str =
    "UPDATE connections SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL";

/// Revokes the live agent connections an account gave one workspace (`?1` workspace, `?2`
/// user, `?3` now): its membership ended. For `Db::batch`.
pub const REVOKE_FOR_MEMBER: &str =
    "UPDATE connections SET revoked_at = ?3 WHERE workspace_id = ?1 AND user_id = ?2 AND revoked_at IS NULL";

/// Marks an agent connection's code redeemed (its first `last_used_at`): until then it is a
/// consent nobody completed, not listed, and deleted by retention after [`UNREDEEMED_TTL_MS`].
pub async fn mark_redeemed(db: &impl Db, id: &str, now_ms: i64) -> Result<(), StoreError> {
    let sql = "UPDATE connections SET last_used_at = ?2 WHERE id = ?1 AND user_id IS NOT NULL AND last_used_at IS NULL";
    db.execute(sql, &[id.into(), now_ms.into()]).await.map(|_| ())
}

/// How long an agent connection may wait for its code to be redeemed (the code lives a minute).
pub const UNREDEEMED_TTL_MS: i64 = 10 * 60_000;

/// Agent connections whose code was never redeemed, older than `before_ms`, at most `limit`.
pub async fn delete_unredeemed(db: &impl Db, before_ms: i64, limit: i64) -> Result<u64, StoreError> {
    let sql = "DELETE FROM connections WHERE id IN (SELECT id FROM connections \
               WHERE user_id IS NOT NULL AND last_used_at IS NULL AND created_at < ?1 LIMIT ?2)";
    db.execute(sql, &[before_ms.into(), limit.into()]).await
}

/// How many live agent connections an account has (a cap keeps the list reviewable): redeemed,
/// not revoked, and used since `since_ms` (a connection idle longer has no refresh token left).
pub async fn count_live_for_user(db: &impl Db, user_id: &str, since_ms: i64) -> Result<i64, StoreError> {
    let sql = "SELECT COUNT(*) AS n FROM connections WHERE user_id = ?1 AND revoked_at IS NULL \
               AND last_used_at IS NOT NULL AND last_used_at > ?2";
    let rows = db.query(sql, &[user_id.into(), since_ms.into()]).await?;
    rows.first().map(|r| row_i64(r, "n")).transpose().map(|n| n.unwrap_or(0))
}

/// Deletes an account's agent connections (`?1` user id). For `Db::batch`.
pub const DELETE_FOR_USER: &str = "DELETE FROM connections WHERE user_id = ?1";

/// Revokes a connection (idempotent): its refresh tokens stop at once.
pub async fn revoke(db: &impl Db, id: &str, now_ms: i64) -> Result<(), StoreError> {
    db.execute(
        "UPDATE connections SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        &[id.into(), now_ms.into()],
    )
    .await
    .map(|_| ())
}

/// Moves a live connection from generation `from` to `from + 1`; `false` when another refresh
/// got there first (or the connection was revoked).
pub async fn advance_generation(db: &impl Db, id: &str, from: i64, now_ms: i64) -> Result<bool, StoreError> {
    let sql = "UPDATE connections SET generation = generation + 1, last_used_at = ?3 \
               WHERE id = ?1 AND generation = ?2 AND revoked_at IS NULL";
    Ok(db.execute(sql, &[id.into(), from.into(), now_ms.into()]).await? == 1)
}

/// Marks a single-use value (by its hash) used until `expires_at`; `false` when it already was.
pub async fn use_once(db: &impl Db, value_hash: &str, expires_at: i64) -> Result<bool, StoreError> {
    let sql = "INSERT INTO oauth_used (id, expires_at) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING";
    Ok(db.execute(sql, &[value_hash.into(), expires_at.into()]).await? == 1)
}

/// Expired single-use markers, at most `limit`.
pub async fn delete_expired_markers(db: &impl Db, now_ms: i64, limit: i64) -> Result<u64, StoreError> {
    let sql = "DELETE FROM oauth_used WHERE id IN (SELECT id FROM oauth_used WHERE expires_at < ?1 LIMIT ?2)";
    db.execute(sql, &[now_ms.into(), limit.into()]).await
}

/// Records the sealed outcome of the upstream refresh that moved `connection_id` to
/// `generation` (kept until `expires_at`); a later attempt at the same generation (after a
/// failed one moved it back) replaces it.
pub async fn put_refresh_result(
    db: &impl Db,
    connection_id: &str,
    generation: i64,
    sealed: &str,
    expires_at: i64,
) -> Result<(), StoreError> {
    let sql = "INSERT INTO oauth_refresh_results (connection_id, generation, sealed, expires_at) \
               VALUES (?1, ?2, ?3, ?4) ON CONFLICT (connection_id, generation) DO UPDATE SET sealed = excluded.sealed, expires_at = excluded.expires_at";
    db.execute(sql, &[connection_id.into(), generation.into(), sealed.into(), expires_at.into()]).await.map(|_| ())
}

/// The sealed outcome of the refresh that moved `connection_id` to `generation`, unexpired.
pub async fn get_refresh_result(
    db: &impl Db,
    connection_id: &str,
    generation: i64,
    now_ms: i64,
) -> Result<Option<String>, StoreError> {
    let sql =
        "SELECT sealed FROM oauth_refresh_results WHERE connection_id = ?1 AND generation = ?2 AND expires_at > ?3";
    let rows = db.query(sql, &[connection_id.into(), generation.into(), now_ms.into()]).await?;
    rows.first().map(|r| text(r, "sealed")).transpose()
}

/// Expired refresh outcomes, at most `limit`.
pub async fn delete_expired_refresh_results(db: &impl Db, now_ms: i64, limit: i64) -> Result<u64, StoreError> {
    let sql = "DELETE FROM oauth_refresh_results WHERE rowid IN \
               (SELECT rowid FROM oauth_refresh_results WHERE expires_at < ?1 LIMIT ?2)";
    db.execute(sql, &[now_ms.into(), limit.into()]).await
}

/// Moves a connection back from generation `from` to `from - 1`, with its previous
/// `last_used_at` (its refresh failed upstream, so the client's refresh token stays current);
/// `false` when it moved on meanwhile.
pub async fn retreat_generation(
    db: &impl Db,
    id: &str,
    from: i64,
    last_used_at: Option<i64>,
) -> Result<bool, StoreError> {
    let sql = "UPDATE connections SET generation = generation - 1, last_used_at = ?3 WHERE id = ?1 AND generation = ?2";
    Ok(db.execute(sql, &[id.into(), from.into(), last_used_at.into()]).await? == 1)
}

/// Is this single-use marker (by hash) set and unexpired?
pub async fn is_marked(db: &impl Db, value_hash: &str, now_ms: i64) -> Result<bool, StoreError> {
    let rows = db
        .query("SELECT 1 AS one FROM oauth_used WHERE id = ?1 AND expires_at > ?2", &[value_hash.into(), now_ms.into()])
        .await?;
    Ok(!rows.is_empty())
}
