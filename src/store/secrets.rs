//! The `workspace_secrets` table: names and the KV key of each sealed value (never the value).

use schemars::JsonSchema;
use serde::Serialize;

use super::{row_i64, text, Db, StoreError};

/// A secret as the owner sees it: its name and times, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SecretInfo {
    pub name: String,
    /// Always `true`: a listed secret has a value (write-only).
    pub set: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

pub const LIST: &str =
    "SELECT name, created_at, updated_at FROM workspace_secrets WHERE workspace_id = ?1 ORDER BY name";
const UPSERT: &str = "INSERT INTO workspace_secrets (workspace_id, name, kv_key, created_at, updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (workspace_id, name) DO UPDATE SET updated_at = excluded.updated_at";
const DELETE: &str = "DELETE FROM workspace_secrets WHERE workspace_id = ?1 AND name = ?2";
const KV_KEYS: &str = "SELECT kv_key FROM workspace_secrets WHERE workspace_id = ?1";

/// Names with their times, by name.
pub async fn list(db: &impl Db, ws: &str) -> Result<Vec<SecretInfo>, StoreError> {
    db.query(LIST, &[ws.into()])
        .await?
        .iter()
        .map(|r| {
            Ok(SecretInfo {
                name: text(r, "name")?,
                set: true,
                created_at: row_i64(r, "created_at")?,
                updated_at: row_i64(r, "updated_at")?,
            })
        })
        .collect()
}

/// Records a secret (or its new update time).
pub async fn upsert(db: &impl Db, ws: &str, name: &str, kv_key: &str, now: i64) -> Result<(), StoreError> {
    db.execute(UPSERT, &[ws.into(), name.into(), kv_key.into(), now.into()]).await.map(|_| ())
}

/// Deletes a secret's row; returns whether it existed.
pub async fn delete(db: &impl Db, ws: &str, name: &str) -> Result<bool, StoreError> {
    Ok(db.execute(DELETE, &[ws.into(), name.into()]).await? > 0)
}

/// KV keys of every secret of a workspace (for its deletion).
pub async fn kv_keys(db: &impl Db, ws: &str) -> Result<Vec<String>, StoreError> {
    db.query(KV_KEYS, &[ws.into()]).await?.iter().map(|r| text(r, "kv_key")).collect()
}
