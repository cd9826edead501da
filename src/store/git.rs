//! The `git_connections`, `app_sources` and `git_deliveries` tables (issue 17; migration 0014).
//!
//! A connection's tokens are sealed (`git::token_aad`) and every change of them is a
//! compare-and-set on `generation`, so a refresh token the provider rotated is never overwritten
//! by an older one; `lease_until` makes refreshes single-flight across isolates.

use schemars::JsonSchema;
use serde::Serialize;

use super::{opt_i64, opt_text, parsed, row_i64, text, Db, Row, StoreError};

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "GitConnectionStatus")]
pub enum ConnStatus {
    /// The owner is at the provider's consent page.
    Pending,
    /// Tokens held; syncs work.
    Active,
    /// The provider refused the tokens (revoked, expired, app uninstalled): connect again.
    Broken,
}

impl ConnStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnStatus::Pending => "pending",
            ConnStatus::Active => "active",
            ConnStatus::Broken => "broken",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [ConnStatus::Pending, ConnStatus::Active, ConnStatus::Broken].into_iter().find(|v| v.as_str() == s)
    }
}

/// A workspace's connection to a Git provider; shown to members without any token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "GitConnection")]
pub struct Connection {
    pub id: String,
    #[serde(skip)]
    pub workspace_id: String,
    /// `github`.
    pub provider: String,
    /// The provider account the tokens act as (its login), once connected.
    pub account: Option<String>,
    pub status: ConnStatus,
    /// Why it is broken, in words for the owner.
    pub status_message: Option<String>,
    /// The member who connected it.
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(skip)]
    pub state_hash: Option<String>,
    #[serde(skip)]
    pub verifier_sealed: Option<String>,
    /// The dashboard page the callback returns to (a local path).
    #[serde(skip)]
    pub return_to: Option<String>,
    #[serde(skip)]
    pub refresh_sealed: Option<String>,
    #[serde(skip)]
    pub access_sealed: Option<String>,
    #[serde(skip)]
    pub access_expires_at: Option<i64>,
    #[serde(skip)]
    pub generation: i64,
    #[serde(skip)]
    pub lease_until: Option<i64>,
}

const CONN_COLS: &str = "id, workspace_id, provider, account, status, status_message, created_by, state_hash, \
                         verifier_sealed, return_to, refresh_sealed, access_sealed, access_expires_at, generation, lease_until, \
                         created_at, updated_at";

fn connection(r: &Row) -> Result<Connection, StoreError> {
    Ok(Connection {
        id: text(r, "id")?,
        workspace_id: text(r, "workspace_id")?,
        provider: text(r, "provider")?,
        account: opt_text(r, "account"),
        status: parsed(r, "status", ConnStatus::parse)?,
        status_message: opt_text(r, "status_message"),
        created_by: text(r, "created_by")?,
        state_hash: opt_text(r, "state_hash"),
        verifier_sealed: opt_text(r, "verifier_sealed"),
        return_to: opt_text(r, "return_to"),
        refresh_sealed: opt_text(r, "refresh_sealed"),
        access_sealed: opt_text(r, "access_sealed"),
        access_expires_at: opt_i64(r, "access_expires_at")?,
        generation: row_i64(r, "generation")?,
        lease_until: opt_i64(r, "lease_until")?,
        created_at: row_i64(r, "created_at")?,
        updated_at: row_i64(r, "updated_at")?,
    })
}

/// A connection waiting for its callback: the state's hash and the sealed PKCE verifier.
pub async fn insert_pending(db: &impl Db, c: &Connection) -> Result<(), StoreError> {
    let sql = "INSERT INTO git_connections (id, workspace_id, provider, status, created_by, state_hash, \
               verifier_sealed, return_to, generation, created_at, updated_at) \
               VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?8, 0, ?7, ?7)";
    db.execute(
        sql,
        &[
            c.id.as_str().into(),
            c.workspace_id.as_str().into(),
            c.provider.as_str().into(),
            c.created_by.as_str().into(),
            c.state_hash.clone().into(),
            c.verifier_sealed.clone().into(),
            c.created_at.into(),
            c.return_to.clone().into(),
        ],
    )
    .await
    .map(|_| ())
}

/// The pending connection an OAuth `state` (by its hash) belongs to.
pub async fn pending_by_state(db: &impl Db, state_hash: &str) -> Result<Option<Connection>, StoreError> {
    let sql = format!("SELECT {CONN_COLS} FROM git_connections WHERE state_hash = ?1 AND status = 'pending'");
    db.query(&sql, &[state_hash.into()]).await?.first().map(connection).transpose()
}

/// The callback's result: the pending connection becomes active with its sealed tokens (once:
/// the state is cleared, so it cannot be redeemed twice). `false` when it was not pending.
pub async fn activate(
    db: &impl Db,
    id: &str,
    account: &str,
    refresh_sealed: Option<&str>,
    access_sealed: &str,
    access_expires_at: Option<i64>,
    now: i64,
) -> Result<bool, StoreError> {
    let sql = "UPDATE git_connections SET status = 'active', account = ?2, refresh_sealed = ?3, access_sealed = ?4, \
               access_expires_at = ?5, state_hash = NULL, verifier_sealed = NULL, return_to = NULL, generation = generation + 1, \
               status_message = NULL, updated_at = ?6 WHERE id = ?1 AND status = 'pending'";
    let changed = db
        .execute(
            sql,
            &[
                id.into(),
                account.into(),
                refresh_sealed.into(),
                access_sealed.into(),
                access_expires_at.into(),
                now.into(),
            ],
        )
        .await?;
    Ok(changed == 1)
}

/// A pending connection whose callback failed: it is deleted (the owner starts again).
pub async fn delete_pending(db: &impl Db, id: &str) -> Result<(), StoreError> {
    db.execute("DELETE FROM git_connections WHERE id = ?1 AND status = 'pending'", &[id.into()]).await.map(|_| ())
}

/// The workspace's connections (pending ones too, so an abandoned consent is visible).
pub async fn list_connections(db: &impl Db, ws: &str) -> Result<Vec<Connection>, StoreError> {
    let sql = format!("SELECT {CONN_COLS} FROM git_connections WHERE workspace_id = ?1 ORDER BY created_at, id");
    db.query(&sql, &[ws.into()]).await?.iter().map(connection).collect()
}

pub async fn get_connection(db: &impl Db, ws: &str, id: &str) -> Result<Option<Connection>, StoreError> {
    let sql = format!("SELECT {CONN_COLS} FROM git_connections WHERE workspace_id = ?1 AND id = ?2");
    db.query(&sql, &[ws.into(), id.into()]).await?.first().map(connection).transpose()
}

/// Disconnecting: the row and its sealed tokens are deleted; sources that used it keep their
/// settings with no connection (ON DELETE SET NULL) and are marked broken.
pub async fn delete_connection(db: &impl Db, ws: &str, id: &str, now: i64) -> Result<bool, StoreError> {
    let mark = "UPDATE app_sources SET status = 'broken', message = ?3, updated_at = ?4 \
                WHERE workspace_id = ?1 AND connection_id = ?2";
    let message = "The Git connection was removed; choose another connection or connect again.";
    let results = db
        .batch(&[
            (mark, vec![ws.into(), id.into(), message.into(), now.into()]),
            ("DELETE FROM git_connections WHERE workspace_id = ?1 AND id = ?2", vec![ws.into(), id.into()]),
        ])
        .await?;
    Ok(results.get(1).copied() == Some(1))
}

/// The provider refused the tokens: they are deleted and the connection is broken with a
/// message, unless another refresh moved it on meanwhile.
pub async fn mark_broken(db: &impl Db, id: &str, generation: i64, message: &str, now: i64) -> Result<bool, StoreError> {
    let sql = "UPDATE git_connections SET status = 'broken', status_message = ?3, refresh_sealed = NULL, \
               access_sealed = NULL, access_expires_at = NULL, lease_until = NULL, generation = generation + 1, \
               updated_at = ?4 WHERE id = ?1 AND generation = ?2";
    Ok(db.execute(sql, &[id.into(), generation.into(), message.into(), now.into()]).await? == 1)
}

/// Takes the refresh lease of the connection's current generation until `until_ms`: `true` for
/// the one caller that got it.
pub async fn claim_lease(db: &impl Db, id: &str, generation: i64, now: i64, until: i64) -> Result<bool, StoreError> {
    let sql = "UPDATE git_connections SET lease_until = ?4 WHERE id = ?1 AND status = 'active' AND generation = ?2 \
               AND (lease_until IS NULL OR lease_until <= ?3)";
    Ok(db.execute(sql, &[id.into(), generation.into(), now.into(), until.into()]).await? == 1)
}

/// The lease holder's result: the rotated tokens, as the next generation.
pub async fn store_refreshed(
    db: &impl Db,
    id: &str,
    generation: i64,
    refresh_sealed: Option<&str>,
    access_sealed: &str,
    access_expires_at: Option<i64>,
    now: i64,
) -> Result<bool, StoreError> {
    let sql = "UPDATE git_connections SET refresh_sealed = COALESCE(?3, refresh_sealed), access_sealed = ?4, \
               access_expires_at = ?5, generation = generation + 1, lease_until = NULL, updated_at = ?6 \
               WHERE id = ?1 AND generation = ?2 AND status = 'active'";
    let changed = db
        .execute(
            sql,
            &[
                id.into(),
                generation.into(),
                refresh_sealed.into(),
                access_sealed.into(),
                access_expires_at.into(),
                now.into(),
            ],
        )
        .await?;
    Ok(changed == 1)
}

/// The lease holder gave up (the provider could not be reached): the next sync tries again.
pub async fn release_lease(db: &impl Db, id: &str, generation: i64) -> Result<(), StoreError> {
    let sql = "UPDATE git_connections SET lease_until = NULL WHERE id = ?1 AND generation = ?2";
    db.execute(sql, &[id.into(), generation.into()]).await.map(|_| ())
}

/// The re-seal job: the same tokens under the primary key, unless the row moved on meanwhile.
pub async fn reseal_connection(
    db: &impl Db,
    id: &str,
    generation: i64,
    refresh_sealed: Option<&str>,
    access_sealed: Option<&str>,
) -> Result<bool, StoreError> {
    let sql = "UPDATE git_connections SET refresh_sealed = ?3, access_sealed = ?4 WHERE id = ?1 AND generation = ?2";
    Ok(db.execute(sql, &[id.into(), generation.into(), refresh_sealed.into(), access_sealed.into()]).await? == 1)
}

/// The re-seal job: a source's webhook secret under the primary key, unless it changed meanwhile.
pub async fn reseal_hook_secret(db: &impl Db, id: &str, old: &str, new: &str) -> Result<bool, StoreError> {
    let sql = "UPDATE app_sources SET webhook_secret_sealed = ?3 WHERE id = ?1 AND webhook_secret_sealed = ?2";
    Ok(db.execute(sql, &[id.into(), old.into(), new.into()]).await? == 1)
}

/// The retention job, in one round trip: pending connections created before `pending_before`
/// (abandoned consents) and delivery ids received before `deliveries_before`, at most `limit`
/// of each.
pub async fn delete_stale(
    db: &impl Db,
    pending_before: i64,
    deliveries_before: i64,
    limit: u32,
) -> Result<u64, StoreError> {
    let limit = i64::from(limit);
    let done = db
        .batch(&[
            (
                "DELETE FROM git_connections WHERE id IN (SELECT id FROM git_connections WHERE status = 'pending' \
                 AND created_at < ?1 LIMIT ?2)",
                vec![pending_before.into(), limit.into()],
            ),
            (
                "DELETE FROM git_deliveries WHERE rowid IN (SELECT rowid FROM git_deliveries WHERE received_at < ?1 \
                 LIMIT ?2)",
                vec![deliveries_before.into(), limit.into()],
            ),
        ])
        .await?;
    Ok(done.iter().sum())
}

/// How an app's last sync went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// Not synced yet.
    New,
    /// The last sync imported the document, or found it unchanged.
    Ok,
    /// The last sync could not import the document (it does not parse, it is missing): the
    /// app's tools are unchanged.
    Failed,
    /// Syncing cannot run until the owner acts (connection removed or broken, repository gone,
    /// the member who set it up is no longer an admin).
    Broken,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::New => "new",
            SyncStatus::Ok => "ok",
            SyncStatus::Failed => "failed",
            SyncStatus::Broken => "broken",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [SyncStatus::New, SyncStatus::Ok, SyncStatus::Failed, SyncStatus::Broken].into_iter().find(|v| v.as_str() == s)
    }
}

/// What an app follows (as the data export shows it: no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "GitSource")]
pub struct Source {
    pub id: String,
    pub app_id: String,
    pub workspace_id: String,
    pub connection_id: Option<String>,
    /// `owner/name`.
    pub repo: String,
    pub branch: String,
    /// The document's path in the repository.
    pub path: String,
    pub auto_publish: bool,
    #[serde(skip)]
    pub webhook_secret_sealed: String,
    /// The provider's id of the webhook FlowCP created (`None`: none, or added by hand).
    pub hook_id: Option<String>,
    /// The commit the app's tools were last synced from (or found unchanged at).
    pub last_sha: Option<String>,
    /// The provider's ETag of the branch head as last seen (a conditional poll).
    #[serde(skip)]
    pub etag: Option<String>,
    pub checked_at: Option<i64>,
    pub status: SyncStatus,
    pub message: Option<String>,
    /// The last sync's outcome (`api::git::SyncReport` as JSON).
    pub report_json: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const SOURCE_COLS: &str = "id, app_id, workspace_id, connection_id, repo, branch, path, auto_publish, \
                           webhook_secret_sealed, hook_id, last_sha, etag, checked_at, status, message, report_json, \
                           created_by, created_at, updated_at";

fn source(r: &Row) -> Result<Source, StoreError> {
    Ok(Source {
        id: text(r, "id")?,
        app_id: text(r, "app_id")?,
        workspace_id: text(r, "workspace_id")?,
        connection_id: opt_text(r, "connection_id"),
        repo: text(r, "repo")?,
        branch: text(r, "branch")?,
        path: text(r, "path")?,
        auto_publish: row_i64(r, "auto_publish")? != 0,
        webhook_secret_sealed: text(r, "webhook_secret_sealed")?,
        hook_id: opt_text(r, "hook_id"),
        last_sha: opt_text(r, "last_sha"),
        etag: opt_text(r, "etag"),
        checked_at: opt_i64(r, "checked_at")?,
        status: parsed(r, "status", SyncStatus::parse)?,
        message: opt_text(r, "message"),
        report_json: opt_text(r, "report_json"),
        created_by: text(r, "created_by")?,
        created_at: row_i64(r, "created_at")?,
        updated_at: row_i64(r, "updated_at")?,
    })
}

/// Sets what an app follows, replacing an earlier source of the app (a new id, so an old
/// webhook URL stops working; the sync state starts over).
pub async fn put_source(db: &impl Db, s: &Source) -> Result<(), StoreError> {
    let sql = "INSERT INTO app_sources (id, app_id, workspace_id, connection_id, repo, branch, path, auto_publish, \
               webhook_secret_sealed, hook_id, status, created_by, created_at, updated_at) \
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, 'new', ?10, ?11, ?11) \
               ON CONFLICT (app_id) DO UPDATE SET id = excluded.id, connection_id = excluded.connection_id, \
               repo = excluded.repo, branch = excluded.branch, path = excluded.path, \
               auto_publish = excluded.auto_publish, webhook_secret_sealed = excluded.webhook_secret_sealed, \
               hook_id = NULL, last_sha = NULL, etag = NULL, checked_at = NULL, status = 'new', message = NULL, \
               report_json = NULL, created_by = excluded.created_by, updated_at = excluded.updated_at \
               WHERE app_sources.workspace_id = excluded.workspace_id";
    db.execute(
        sql,
        &[
            s.id.as_str().into(),
            s.app_id.as_str().into(),
            s.workspace_id.as_str().into(),
            s.connection_id.clone().into(),
            s.repo.as_str().into(),
            s.branch.as_str().into(),
            s.path.as_str().into(),
            i64::from(s.auto_publish).into(),
            s.webhook_secret_sealed.as_str().into(),
            s.created_by.as_str().into(),
            s.created_at.into(),
        ],
    )
    .await
    .map(|_| ())
}

pub async fn set_hook(db: &impl Db, source_id: &str, hook_id: Option<&str>) -> Result<(), StoreError> {
    db.execute("UPDATE app_sources SET hook_id = ?2 WHERE id = ?1", &[source_id.into(), hook_id.into()])
        .await
        .map(|_| ())
}

pub async fn set_auto_publish(db: &impl Db, ws: &str, app_id: &str, on: bool, now: i64) -> Result<bool, StoreError> {
    let sql = "UPDATE app_sources SET auto_publish = ?3, updated_at = ?4 WHERE workspace_id = ?1 AND app_id = ?2";
    Ok(db.execute(sql, &[ws.into(), app_id.into(), i64::from(on).into(), now.into()]).await? == 1)
}

/// The source of an app of the workspace.
pub async fn source_of_app(db: &impl Db, ws: &str, app_id: &str) -> Result<Option<Source>, StoreError> {
    let sql = format!("SELECT {SOURCE_COLS} FROM app_sources WHERE workspace_id = ?1 AND app_id = ?2");
    db.query(&sql, &[ws.into(), app_id.into()]).await?.first().map(source).transpose()
}

/// A source by its id (a webhook delivery names only that).
pub async fn source_by_id(db: &impl Db, id: &str) -> Result<Option<Source>, StoreError> {
    let sql = format!("SELECT {SOURCE_COLS} FROM app_sources WHERE id = ?1");
    db.query(&sql, &[id.into()]).await?.first().map(source).transpose()
}

pub async fn delete_source(db: &impl Db, ws: &str, app_id: &str) -> Result<bool, StoreError> {
    let sql = "DELETE FROM app_sources WHERE workspace_id = ?1 AND app_id = ?2";
    Ok(db.execute(sql, &[ws.into(), app_id.into()]).await? == 1)
}

/// A check found the branch where it was (or the document unchanged at a new commit).
pub async fn set_checked(
    db: &impl Db,
    id: &str,
    sha: Option<&str>,
    etag: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let sql = "UPDATE app_sources SET last_sha = COALESCE(?2, last_sha), etag = COALESCE(?3, etag), checked_at = ?4 \
               WHERE id = ?1";
    db.execute(sql, &[id.into(), sha.into(), etag.into(), now.into()]).await.map(|_| ())
}

/// A sync's outcome. `sha` is recorded only when the commit was dealt with (imported, found
/// unchanged, or found unimportable: a broken document is not fetched again until the next push).
#[allow(clippy::too_many_arguments)]
pub async fn set_outcome(
    db: &impl Db,
    id: &str,
    status: SyncStatus,
    message: Option<&str>,
    sha: Option<&str>,
    etag: Option<&str>,
    report_json: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let sql = "UPDATE app_sources SET status = ?2, message = ?3, last_sha = COALESCE(?4, last_sha), \
               etag = CASE WHEN ?4 IS NULL THEN etag ELSE ?5 END, report_json = COALESCE(?6, report_json), \
               checked_at = ?7, updated_at = ?7 WHERE id = ?1";
    db.execute(
        sql,
        &[id.into(), status.as_str().into(), message.into(), sha.into(), etag.into(), report_json.into(), now.into()],
    )
    .await
    .map(|_| ())
}

/// Sources the cron polls: not broken, with a connection, least recently checked first, checked
/// before `before`.
pub async fn due_sources(db: &impl Db, before: i64, limit: u32) -> Result<Vec<Source>, StoreError> {
    let sql = format!(
        "SELECT {SOURCE_COLS} FROM app_sources WHERE status != 'broken' AND connection_id IS NOT NULL \
         AND (checked_at IS NULL OR checked_at < ?1) ORDER BY checked_at IS NOT NULL, checked_at LIMIT ?2"
    );
    db.query(&sql, &[before.into(), i64::from(limit).into()]).await?.iter().map(source).collect()
}

/// The workspace's sources (the data export).
pub async fn workspace_sources(db: &impl Db, ws: &str) -> Result<Vec<Source>, StoreError> {
    let sql = format!("SELECT {SOURCE_COLS} FROM app_sources WHERE workspace_id = ?1 ORDER BY created_at, id");
    db.query(&sql, &[ws.into()]).await?.iter().map(source).collect()
}

/// Records a webhook delivery: `false` when it was seen already (a replay).
pub async fn record_delivery(db: &impl Db, source_id: &str, delivery_id: &str, now: i64) -> Result<bool, StoreError> {
    let sql = "INSERT INTO git_deliveries (source_id, delivery_id, received_at) VALUES (?1, ?2, ?3) \
               ON CONFLICT (source_id, delivery_id) DO NOTHING";
    Ok(db.execute(sql, &[source_id.into(), delivery_id.into(), now.into()]).await? == 1)
}
