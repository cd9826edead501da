//! The `key_users` table: the end users of `user_key` servers (issue 16). One row per person
//! (by the provider's subject, hashed) per server: their revocation epoch, their status, and
//! their upstream tokens sealed (AES-256-GCM, AAD naming server and user; see
//! `oauth::keys`). Every change of the tokens is a compare-and-set on `generation`, so a
//! rotated refresh token is never overwritten by an older one.

use super::{opt_i64, opt_text, row_i64, text, Db, StoreError};

/// Where an end user stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Signed in: their keys work while their epoch matches.
    Active,
    /// The provider refused their refresh token (consent revoked or expired there): their calls
    /// get a "sign in again" tool error until they do.
    Disconnected,
    /// They revoked in the portal: tokens deleted, every key ended.
    Revoked,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Disconnected => "disconnected",
            Status::Revoked => "revoked",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [Status::Active, Status::Disconnected, Status::Revoked].into_iter().find(|v| v.as_str() == s)
    }
}

/// Shown to the owner as is: the user's hash, status and times (no id, epoch or token).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct KeyUser {
    #[serde(skip)]
    pub server_id: String,
    #[serde(skip)]
    pub user_id: String,
    /// Truncated SHA-256 of the user's opaque id: what the audit log and the portal show.
    pub user_hash: String,
    #[serde(skip)]
    pub workspace_id: String,
    #[serde(skip)]
    pub epoch: i64,
    pub status: Status,
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
    pub created_at: i64,
    pub signed_in_at: i64,
    pub key_issued_at: Option<i64>,
}

const COLUMNS: &str = "server_id, user_id, user_hash, workspace_id, epoch, status, refresh_sealed, access_sealed, \
                       access_expires_at, generation, lease_until, created_at, signed_in_at, key_issued_at";

fn key_user(r: &super::Row) -> Result<KeyUser, StoreError> {
    Ok(KeyUser {
        server_id: text(r, "server_id")?,
        user_id: text(r, "user_id")?,
        user_hash: text(r, "user_hash")?,
        workspace_id: text(r, "workspace_id")?,
        epoch: row_i64(r, "epoch")?,
        status: super::parsed(r, "status", Status::parse)?,
        refresh_sealed: opt_text(r, "refresh_sealed"),
        access_sealed: opt_text(r, "access_sealed"),
        access_expires_at: opt_i64(r, "access_expires_at")?,
        generation: row_i64(r, "generation")?,
        lease_until: opt_i64(r, "lease_until")?,
        created_at: row_i64(r, "created_at")?,
        signed_in_at: row_i64(r, "signed_in_at")?,
        key_issued_at: opt_i64(r, "key_issued_at")?,
    })
}

fn one(rows: Vec<super::Row>) -> Result<Option<KeyUser>, StoreError> {
    rows.first().map(key_user).transpose()
}

pub async fn get(db: &impl Db, server_id: &str, user_id: &str) -> Result<Option<KeyUser>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM key_users WHERE server_id = ?1 AND user_id = ?2");
    one(db.query(&sql, &[server_id.into(), user_id.into()]).await?)
}

/// A user of a server by the hash the owner sees.
pub async fn by_hash(
    db: &impl Db,
    workspace_id: &str,
    server_id: &str,
    user_hash: &str,
) -> Result<Option<KeyUser>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM key_users WHERE workspace_id = ?1 AND server_id = ?2 AND user_hash = ?3");
    one(db.query(&sql, &[workspace_id.into(), server_id.into(), user_hash.into()]).await?)
}

/// The user a provider subject already is on this server.
pub async fn by_subject(db: &impl Db, server_id: &str, subject_hash: &str) -> Result<Option<KeyUser>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM key_users WHERE server_id = ?1 AND subject_hash = ?2");
    one(db.query(&sql, &[server_id.into(), subject_hash.into()]).await?)
}

/// A sign-in: a new user's row, or the person's existing row made active with the new sealed
/// tokens (a provider that sends no refresh token on a repeated consent, Google's, leaves the
/// stored one in place; its epoch kept: a key issued before still works after signing in again, unless it
/// was revoked, which bumped the epoch). `user_id` must be the row's id when it exists (the
/// envelopes' AAD names it); `false` when another sign-in created the row under another id
/// meanwhile (read it again and seal for that id).
pub async fn sign_in(db: &impl Db, u: &KeyUser, subject_hash: &str, provider: &str) -> Result<bool, StoreError> {
    let sql = "INSERT INTO key_users (server_id, user_id, workspace_id, subject_hash, epoch, status, refresh_sealed, \
               access_sealed, access_expires_at, generation, created_at, signed_in_at, user_hash, provider) \
               VALUES (?1, ?2, ?3, ?4, 0, 'active', ?5, ?6, ?7, 0, ?8, ?8, ?9, ?10) \
               ON CONFLICT (server_id, subject_hash) DO UPDATE SET status = 'active', \
               refresh_sealed = COALESCE(excluded.refresh_sealed, key_users.refresh_sealed), \
               access_sealed = excluded.access_sealed, \
               access_expires_at = excluded.access_expires_at, generation = key_users.generation + 1, \
               lease_until = NULL, signed_in_at = excluded.signed_in_at, provider = excluded.provider \
               WHERE key_users.user_id = excluded.user_id";
    let changed = db
        .execute(
            sql,
            &[
                u.server_id.as_str().into(),
                u.user_id.as_str().into(),
                u.workspace_id.as_str().into(),
                subject_hash.into(),
                u.refresh_sealed.clone().into(),
                u.access_sealed.clone().into(),
                u.access_expires_at.into(),
                u.signed_in_at.into(),
                u.user_hash.as_str().into(),
                provider.into(),
            ],
        )
        .await?;
    Ok(changed == 1)
}

/// A new key: the epoch moves on (every older key ends) and the issue time is recorded. The
/// new epoch, or `None` when the user is not active.
pub async fn bump_for_key(
    db: &impl Db,
    server_id: &str,
    user_id: &str,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let sql = "UPDATE key_users SET epoch = epoch + 1, key_issued_at = ?3 \
               WHERE server_id = ?1 AND user_id = ?2 AND status = 'active' RETURNING epoch";
    let rows = db.query(sql, &[server_id.into(), user_id.into(), now_ms.into()]).await?;
    rows.first().map(|r| row_i64(r, "epoch")).transpose()
}

/// Revocation in the portal, in one statement: every key ends (epoch), both tokens are deleted.
pub async fn revoke(db: &impl Db, server_id: &str, user_id: &str) -> Result<bool, StoreError> {
    let sql = "UPDATE key_users SET epoch = epoch + 1, status = 'revoked', refresh_sealed = NULL, \
               access_sealed = NULL, access_expires_at = NULL, lease_until = NULL, generation = generation + 1 \
               WHERE server_id = ?1 AND user_id = ?2";
    // Their store tools' cached answers go in the same transaction.
    let changed = db
        .batch(&[
            (sql, vec![server_id.into(), user_id.into()]),
            (super::store_entries::DELETE_FOR_USER, vec![server_id.into(), user_id.into()]),
        ])
        .await?;
    Ok(changed.first().copied() == Some(1))
}

/// At publish: every user whose tokens came from another provider configuration than `keep`
/// (all of them when the server is no longer `user_key`: `None`) is revoked, so no stored token
/// outlives the configuration it was given to, and their keys end. How many were revoked.
pub async fn revoke_stale(
    db: &impl Db,
    workspace_id: &str,
    server_id: &str,
    keep: Option<&str>,
) -> Result<u64, StoreError> {
    let sql = "UPDATE key_users SET epoch = epoch + 1, status = 'revoked', refresh_sealed = NULL, \
               access_sealed = NULL, access_expires_at = NULL, lease_until = NULL, generation = generation + 1 \
               WHERE workspace_id = ?1 AND server_id = ?2 AND status <> 'revoked' AND (?3 IS NULL OR provider <> ?3)";
    let changed = db
        .batch(&[
            (sql, vec![workspace_id.into(), server_id.into(), keep.into()]),
            (super::store_entries::DELETE_FOR_REVOKED, vec![server_id.into()]),
        ])
        .await?;
    Ok(changed.first().copied().unwrap_or(0))
}

/// The user's data deleted (the portal's "delete my data").
pub async fn delete(db: &impl Db, server_id: &str, user_id: &str) -> Result<bool, StoreError> {
    let sql = "DELETE FROM key_users WHERE server_id = ?1 AND user_id = ?2";
    Ok(db.execute(sql, &[server_id.into(), user_id.into()]).await? == 1)
}

/// Takes the refresh lease of the user's current generation until `until_ms` (single flight
/// across isolates): `true` for the one caller that got it.
pub async fn claim_lease(
    db: &impl Db,
    server_id: &str,
    user_id: &str,
    generation: i64,
    now_ms: i64,
    until_ms: i64,
) -> Result<bool, StoreError> {
    let sql = "UPDATE key_users SET lease_until = ?5 WHERE server_id = ?1 AND user_id = ?2 AND status = 'active' \
               AND generation = ?3 AND (lease_until IS NULL OR lease_until <= ?4)";
    let changed =
        db.execute(sql, &[server_id.into(), user_id.into(), generation.into(), now_ms.into(), until_ms.into()]).await?;
    Ok(changed == 1)
}

/// The lease holder's result: the rotated tokens of the next generation.
pub async fn store_refreshed(
    db: &impl Db,
    server_id: &str,
    user_id: &str,
    generation: i64,
    refresh_sealed: &str,
    access_sealed: &str,
    access_expires_at: Option<i64>,
) -> Result<bool, StoreError> {
    let sql = "UPDATE key_users SET refresh_sealed = ?4, access_sealed = ?5, access_expires_at = ?6, \
               generation = generation + 1, lease_until = NULL \
               WHERE server_id = ?1 AND user_id = ?2 AND generation = ?3 AND status = 'active'";
    let changed = db
        .execute(
            sql,
            &[
                server_id.into(),
                user_id.into(),
                generation.into(),
                refresh_sealed.into(),
                access_sealed.into(),
                access_expires_at.into(),
            ],
        )
        .await?;
    Ok(changed == 1)
}

/// The re-seal job: the same tokens under the primary key, unless the row moved on meanwhile.
pub async fn reseal(
    db: &impl Db,
    server_id: &str,
    user_id: &str,
    generation: i64,
    refresh_sealed: Option<&str>,
    access_sealed: Option<&str>,
) -> Result<bool, StoreError> {
    let sql = "UPDATE key_users SET refresh_sealed = ?4, access_sealed = ?5 \
               WHERE server_id = ?1 AND user_id = ?2 AND generation = ?3";
    let changed = db
        .execute(
            sql,
            &[server_id.into(), user_id.into(), generation.into(), refresh_sealed.into(), access_sealed.into()],
        )
        .await?;
    Ok(changed == 1)
}

/// The lease holder gave up (the provider could not be reached): the next call tries again.
pub async fn release_lease(db: &impl Db, server_id: &str, user_id: &str, generation: i64) -> Result<(), StoreError> {
    let sql = "UPDATE key_users SET lease_until = NULL WHERE server_id = ?1 AND user_id = ?2 AND generation = ?3";
    db.execute(sql, &[server_id.into(), user_id.into(), generation.into()]).await?;
    Ok(())
}

/// How often a user's access token may be dropped on a 401, across isolates.
pub const DROP_EVERY_MS: i64 = 300_000;

/// The API refused the user's cached access token (401) before its expiry: it is dropped, so
/// the next call refreshes. Only the generation the caller used (a token refreshed meanwhile
/// stays), only when a refresh token can replace it, and at most once per [`DROP_EVERY_MS`].
/// Returns whether it was dropped.
pub async fn drop_access(
    db: &impl Db,
    server_id: &str,
    user_id: &str,
    generation: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let sql = "UPDATE key_users SET access_sealed = NULL, access_expires_at = NULL, access_dropped_at = ?4 \
               WHERE server_id = ?1 AND user_id = ?2 AND generation = ?3 AND status = 'active' \
               AND access_sealed IS NOT NULL AND refresh_sealed IS NOT NULL \
               AND (access_dropped_at IS NULL OR access_dropped_at <= ?5)";
    let params = [server_id.into(), user_id.into(), generation.into(), now_ms.into(), (now_ms - DROP_EVERY_MS).into()];
    Ok(db.execute(sql, &params).await? == 1)
}

/// The provider refused the refresh token (`invalid_grant`): tokens deleted, the user must sign
/// in again; their keys stay (a new sign-in makes them work again).
pub async fn disconnect(db: &impl Db, server_id: &str, user_id: &str, generation: i64) -> Result<(), StoreError> {
    let sql = "UPDATE key_users SET status = 'disconnected', refresh_sealed = NULL, access_sealed = NULL, \
               access_expires_at = NULL, lease_until = NULL, generation = generation + 1 \
               WHERE server_id = ?1 AND user_id = ?2 AND generation = ?3 AND status = 'active'";
    db.execute(sql, &[server_id.into(), user_id.into(), generation.into()]).await?;
    Ok(())
}

/// The users of a server, for its owner (no tokens).
pub async fn list_for_server(db: &impl Db, workspace_id: &str, server_id: &str) -> Result<Vec<KeyUser>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM key_users WHERE workspace_id = ?1 AND server_id = ?2 ORDER BY created_at, user_id \
         LIMIT 1000"
    );
    db.query(&sql, &[workspace_id.into(), server_id.into()]).await?.iter().map(key_user).collect()
}
