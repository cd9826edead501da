//! The `oauth_clients` table: clients registered by dynamic client registration, and clients
//! known by their metadata document (keyed by its URL, cached). No secrets.

use super::{opt_i64, text, Db, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub id: String,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub application_type: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

pub async fn insert(db: &impl Db, c: &OAuthClient) -> Result<(), StoreError> {
    write(db, c, "").await
}

/// Records a client fetched from its metadata document (keyed by its URL), replacing an older
/// copy; `created_at` is when it was fetched.
pub async fn upsert(db: &impl Db, c: &OAuthClient) -> Result<(), StoreError> {
    let replace = " ON CONFLICT (id) DO UPDATE SET client_name = excluded.client_name, \
                   redirect_uris_json = excluded.redirect_uris_json, application_type = excluded.application_type, \
                   created_at = excluded.created_at";
    write(db, c, replace).await
}

async fn write(db: &impl Db, c: &OAuthClient, on_conflict: &str) -> Result<(), StoreError> {
    let uris = serde_json::to_string(&c.redirect_uris).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let sql = format!(
        "INSERT INTO oauth_clients (id, client_name, redirect_uris_json, application_type, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5){on_conflict}"
    );
    db.execute(
        &sql,
        &[
            c.id.as_str().into(),
            c.client_name.as_str().into(),
            uris.into(),
            c.application_type.as_str().into(),
            c.created_at.into(),
        ],
    )
    .await
    .map(|_| ())
}

pub async fn get(db: &impl Db, id: &str) -> Result<Option<OAuthClient>, StoreError> {
    let rows = db.query("SELECT * FROM oauth_clients WHERE id = ?1", &[id.into()]).await?;
    let Some(r) = rows.first() else { return Ok(None) };
    let redirect_uris = serde_json::from_str(&text(r, "redirect_uris_json")?)
        .map_err(|_| StoreError::Corrupt("oauth_clients.redirect_uris_json".into()))?;
    Ok(Some(OAuthClient {
        id: text(r, "id")?,
        client_name: text(r, "client_name")?,
        redirect_uris,
        application_type: text(r, "application_type")?,
        created_at: super::row_i64(r, "created_at")?,
        last_used_at: opt_i64(r, "last_used_at")?,
    }))
}

/// Clients never used within `unused_ms` of registering, or not used for `idle_ms`, at most
/// `limit` per call (anyone can register one, so they must not pile up).
pub async fn delete_stale(
    db: &impl Db,
    now_ms: i64,
    unused_ms: i64,
    idle_ms: i64,
    limit: i64,
) -> Result<u64, StoreError> {
    let sql = "DELETE FROM oauth_clients WHERE id IN (SELECT id FROM oauth_clients \
               WHERE (last_used_at IS NULL AND created_at < ?1) OR last_used_at < ?2 LIMIT ?3)";
    db.execute(sql, &[(now_ms - unused_ms).into(), (now_ms - idle_ms).into(), limit.into()]).await
}

/// Records a use (a token issued or refreshed for the client), which keeps it from expiring.
pub async fn touch(db: &impl Db, id: &str, now_ms: i64) -> Result<(), StoreError> {
    db.execute("UPDATE oauth_clients SET last_used_at = ?2 WHERE id = ?1", &[id.into(), now_ms.into()])
        .await
        .map(|_| ())
}
