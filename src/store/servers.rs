//! The `servers` and `server_access_keys` tables.
//!
//! A server row holds only non-secret configuration: the auth mode, where the credential goes,
//! and the KV key of the encrypted credential (never its value). Access keys are stored as
//! SHA-256 hashes; KV mirrors live ones under `akey:<hash>` so the MCP hot path needs no D1 read.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use super::{opt_text, parsed, row_i64, text, Db, Row, SqlValue, StoreError};
use crate::openapi::ApiKeyLocation;
use crate::vocab::{AuthMode, VerificationReport, VerificationState};

/// The documented shape of a server's `auth_config`: the API accepts these fields only (an
/// allow-list, so no secret can hide under another name).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
pub struct AuthConfig {
    /// `api_key` mode: where the key goes.
    #[serde(rename = "in")]
    location: Option<ApiKeyLocation>,
    /// `api_key` mode: the header, query parameter or cookie name.
    name: Option<String>,
    /// `oauth` mode: scopes to request.
    scopes: Option<Vec<String>>,
    /// `oauth` mode: a provider preset that fills the endpoints: `custom` (default: give
    /// `authorize_url` and `token_url`), `github`, `google`, `entra` (with `tenant`) or `oidc`
    /// (with `discovery_url`).
    provider: Option<String>,
    /// `oauth` mode, `entra`: the tenant id or domain, `organizations` (default), `common` or
    /// `consumers`.
    tenant: Option<String>,
    /// `oauth` mode, `oidc`: the issuer's `/.well-known/openid-configuration`, fetched when set.
    discovery_url: Option<String>,
    /// `oauth` mode: the provider's issuer (from discovery, or set for a custom provider): a
    /// callback naming another issuer is refused.
    issuer: Option<String>,
    /// `oauth` mode: extra authorize parameters (`prompt`, `access_type`, `audience`...), at
    /// most 16; never one FlowCP sets itself.
    authorize_params: Option<std::collections::BTreeMap<String, String>>,
    /// `oauth` mode: the upstream's authorization endpoint.
    authorize_url: Option<String>,
    /// `oauth` mode: the upstream's token endpoint.
    token_url: Option<String>,
    /// `oauth` mode: FlowCP's client id at the upstream (not a secret).
    client_id: Option<String>,
    /// Set by FlowCP when the credential is stored: the only origin it is ever sent to.
    credential_origin: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Server {
    pub id: String,
    pub workspace_id: String,
    pub app_id: String,
    pub name: String,
    pub auth_mode: AuthMode,
    #[schemars(with = "AuthConfig")]
    pub auth_config: Value,
    #[serde(skip)]
    pub credential_key: Option<String>,
    pub is_public: bool,
    pub discovery_mode: bool,
    pub base_url_override: Option<String>,
    pub probe_tool: Option<String>,
    /// Browser origins (`https://app.example`) allowed to call the published server; `null`
    /// allows any origin (credentials travel in headers, so there is no cookie to protect).
    pub allowed_origins: Option<Vec<String>>,
    /// Skills: `list_skills` and `tool_search` over named bundles of the tools (issue 16).
    pub skills: Option<crate::manifest::SkillsConfig>,
    /// The argument whose value each call's usage row records as its target (`environment`).
    pub usage_target: Option<String>,
    /// Synced tools (issue 16): their answers are kept per user and served by `*_store_*` tools.
    pub store_tools: Option<Vec<String>>,
    pub verification_state: VerificationState,
    pub verification: Option<VerificationReport>,
    pub verified_at: Option<i64>,
    pub published_version: Option<i64>,
    pub published_at: Option<i64>,
    pub draft_changed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

fn opt_i64(row: &Row, col: &str) -> Option<i64> {
    row_i64(row, col).ok()
}

fn server(r: &Row) -> Result<Server, StoreError> {
    fn json<T: serde::de::DeserializeOwned>(r: &Row, col: &str) -> Result<Option<T>, StoreError> {
        opt_text(r, col)
            .map(|t| serde_json::from_str(&t).map_err(|_| StoreError::Corrupt(format!("servers.{col}"))))
            .transpose()
    }
    Ok(Server {
        id: text(r, "id")?,
        workspace_id: text(r, "workspace_id")?,
        app_id: text(r, "app_id")?,
        name: text(r, "name")?,
        auth_mode: match (parsed(r, "auth_mode", AuthMode::parse)?, opt_i64(r, "user_keys")) {
            // Stored as `oauth` with the `user_keys` flag (migration 0010).
            (AuthMode::Oauth, Some(1)) => AuthMode::UserKey,
            (mode, _) => mode,
        },
        auth_config: json(r, "auth_config_json")?.unwrap_or(Value::Object(Default::default())),
        credential_key: opt_text(r, "credential_key"),
        is_public: row_i64(r, "is_public")? != 0,
        discovery_mode: row_i64(r, "discovery_mode")? != 0,
        base_url_override: opt_text(r, "base_url_override"),
        probe_tool: opt_text(r, "probe_tool"),
        allowed_origins: json(r, "allowed_origins_json")?,
        skills: json(r, "skills_json")?,
        usage_target: opt_text(r, "usage_target"),
        store_tools: json(r, "store_tools_json")?,
        verification_state: parsed(r, "verification_state", VerificationState::parse)?,
        verification: json(r, "verification_json")?,
        verified_at: opt_i64(r, "verified_at"),
        published_version: opt_i64(r, "published_version"),
        published_at: opt_i64(r, "published_at"),
        draft_changed_at: opt_i64(r, "draft_changed_at"),
        created_at: row_i64(r, "created_at")?,
        updated_at: row_i64(r, "updated_at")?,
    })
}

/// A new server with its first auth configuration (`{}` for none), in one write.
pub async fn create(
    db: &impl Db,
    id: &str,
    ws: &str,
    app_id: &str,
    name: &str,
    auth_config: &Value,
    now: i64,
) -> Result<(), StoreError> {
    let sql = "INSERT INTO servers (id, workspace_id, app_id, name, auth_config_json, created_at, updated_at, \
               draft_changed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)";
    let config = auth_config.to_string();
    db.execute(sql, &[id.into(), ws.into(), app_id.into(), name.into(), config.into(), now.into()]).await.map(|_| ())
}

pub async fn list(db: &impl Db, ws: &str) -> Result<Vec<Server>, StoreError> {
    let sql = "SELECT * FROM servers WHERE workspace_id = ?1 ORDER BY created_at, id";
    db.query(sql, &[ws.into()]).await?.iter().map(server).collect()
}

pub async fn get(db: &impl Db, ws: &str, id: &str) -> Result<Option<Server>, StoreError> {
    let sql = "SELECT * FROM servers WHERE workspace_id = ?1 AND id = ?2";
    db.query(sql, &[ws.into(), id.into()]).await?.first().map(server).transpose()
}

/// The `auth_mode` column's value: its CHECK (migration 0001) predates `user_key`, which is
/// stored as `oauth` with `user_keys = 1` (a SQLite CHECK cannot change without rebuilding the
/// table, and dropping `servers` would cascade to every table that references it).
fn stored_mode(mode: AuthMode) -> AuthMode {
    match mode {
        AuthMode::UserKey => AuthMode::Oauth,
        m => m,
    }
}

/// Saves the editable configuration and resets verification (any change makes it a draft).
pub async fn save_config(db: &impl Db, s: &Server, now: i64) -> Result<(), StoreError> {
    let sql =
        "UPDATE servers SET name = ?3, auth_mode = ?4, auth_config_json = ?5, credential_key = ?6, is_public = ?7, \
               discovery_mode = ?8, base_url_override = ?9, probe_tool = ?10, allowed_origins_json = ?12, user_keys = ?13, skills_json = ?14, usage_target = ?15, store_tools_json = ?16, \
               verification_state = 'unverified', verification_json = NULL, verified_at = NULL, \
               draft_changed_at = ?11, updated_at = ?11 \
               WHERE workspace_id = ?1 AND id = ?2";
    db.execute(
        sql,
        &[
            s.workspace_id.as_str().into(),
            s.id.as_str().into(),
            s.name.as_str().into(),
            stored_mode(s.auth_mode).as_str().into(),
            s.auth_config.to_string().into(),
            s.credential_key.clone().into(),
            i64::from(s.is_public).into(),
            i64::from(s.discovery_mode).into(),
            s.base_url_override.clone().into(),
            s.probe_tool.clone().into(),
            now.into(),
            s.allowed_origins.as_ref().map(|o| serde_json::to_string(o).unwrap_or_default()).into(),
            i64::from(s.auth_mode == AuthMode::UserKey).into(),
            s.skills.as_ref().map(|k| serde_json::to_string(k).unwrap_or_default()).into(),
            s.usage_target.clone().into(),
            s.store_tools.as_ref().map(|t| serde_json::to_string(t).unwrap_or_default()).into(),
        ],
    )
    .await
    .map(|_| ())
}

/// Tool curation changed: every server of the app goes back to unverified draft.
/// Every server of an app back to unverified (`?1` workspace, `?2` app, `?3` now).
pub const RESET_FOR_APP: &str = "UPDATE servers SET verification_state = 'unverified', verification_json = NULL, \
    verified_at = NULL, draft_changed_at = ?3 WHERE workspace_id = ?1 AND app_id = ?2";

pub async fn reset_for_app(db: &impl Db, ws: &str, app_id: &str, now: i64) -> Result<(), StoreError> {
    db.execute(RESET_FOR_APP, &[ws.into(), app_id.into(), now.into()]).await.map(|_| ())
}

pub async fn set_verification(
    db: &impl Db,
    ws: &str,
    id: &str,
    state: VerificationState,
    report: &VerificationReport,
    now: i64,
) -> Result<(), StoreError> {
    let sql = "UPDATE servers SET verification_state = ?3, verification_json = ?4, verified_at = ?5 \
               WHERE workspace_id = ?1 AND id = ?2";
    db.execute(
        sql,
        &[
            ws.into(),
            id.into(),
            state.as_str().into(),
            serde_json::to_string(report).unwrap_or_default().into(),
            now.into(),
        ],
    )
    .await
    .map(|_| ())
}

pub async fn set_published(db: &impl Db, ws: &str, id: &str, version: Option<i64>, now: i64) -> Result<(), StoreError> {
    let sql = "UPDATE servers SET published_version = ?3, published_at = ?4, updated_at = ?4 WHERE workspace_id = ?1 AND id = ?2";
    db.execute(sql, &[ws.into(), id.into(), version.into(), SqlValue::Integer(now)]).await.map(|_| ())
}

/// One published version of a server (the manifest itself is in KV).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct VersionRow {
    pub version: i64,
    pub published_at: i64,
    /// Who published it (`null` once their account is gone).
    pub published_by: Option<String>,
    pub tool_count: i64,
    pub bytes: i64,
}

/// Records a publish, and the server's live version with it, in one batch.
/// Records a published version; `false` when the server is gone (deleted meanwhile): nothing is
/// recorded then.
pub async fn record_publish(db: &impl Db, ws: &str, id: &str, v: &VersionRow, now: i64) -> Result<bool, StoreError> {
    let set = "UPDATE servers SET published_version = ?3, published_at = ?4, updated_at = ?4 WHERE workspace_id = ?1 AND id = ?2";
    let insert =
        "INSERT OR REPLACE INTO server_versions (server_id, version, published_at, published_by, tool_count, bytes) \
                  SELECT id, ?3, ?4, ?5, ?6, ?7 FROM servers WHERE workspace_id = ?1 AND id = ?2";
    db.batch(&[
        (set, vec![ws.into(), id.into(), v.version.into(), SqlValue::Integer(now)]),
        (
            insert,
            vec![
                ws.into(),
                id.into(),
                v.version.into(),
                v.published_at.into(),
                v.published_by.clone().into(),
                v.tool_count.into(),
                v.bytes.into(),
            ],
        ),
    ])
    .await
    .map(|changed| changed.first() == Some(&1))
}

/// Puts back the version recorded before `version`, if `version` is still the recorded one (a
/// publish whose live pointer could not be written; a later publish is left alone).
pub async fn unrecord_publish(
    db: &impl Db,
    ws: &str,
    id: &str,
    version: i64,
    before: Option<i64>,
) -> Result<(), StoreError> {
    let sql =
        "UPDATE servers SET published_version = ?4 WHERE workspace_id = ?1 AND id = ?2 AND published_version = ?3";
    db.execute(sql, &[ws.into(), id.into(), version.into(), before.into()]).await.map(|_| ())
}

/// The newest 50 published versions of a server of workspace `ws`, newest first.
pub async fn list_versions(db: &impl Db, ws: &str, id: &str) -> Result<Vec<VersionRow>, StoreError> {
    let sql = "SELECT v.version, v.published_at, v.published_by, v.tool_count, v.bytes FROM server_versions v \
               JOIN servers s ON s.id = v.server_id WHERE s.workspace_id = ?1 AND s.id = ?2 \
               ORDER BY v.version DESC LIMIT 50";
    db.query(sql, &[ws.into(), id.into()])
        .await?
        .iter()
        .map(|r| {
            Ok(VersionRow {
                version: row_i64(r, "version")?,
                published_at: row_i64(r, "published_at")?,
                published_by: opt_text(r, "published_by"),
                tool_count: row_i64(r, "tool_count")?,
                bytes: row_i64(r, "bytes")?,
            })
        })
        .collect()
}

pub async fn delete(db: &impl Db, ws: &str, id: &str) -> Result<bool, StoreError> {
    Ok(db.execute("DELETE FROM servers WHERE workspace_id = ?1 AND id = ?2", &[ws.into(), id.into()]).await? == 1)
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AccessKey {
    pub id: String,
    pub name: Option<String>,
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The user who created it (`null` for keys made before creators were recorded). Removing
    /// that member, or deleting their account, revokes it.
    pub created_by: Option<String>,
    #[serde(skip)]
    pub key_hash: String,
}

/// Revokes every live key a user created in a workspace (their removal or account deletion).
pub const REVOKE_KEYS_CREATED_BY: &str = "UPDATE server_access_keys SET revoked_at = ?3 \
    WHERE workspace_id = ?1 AND created_by = ?2 AND revoked_at IS NULL";

pub async fn revoke_keys_created_by(db: &impl Db, ws: &str, user_id: &str, now: i64) -> Result<u64, StoreError> {
    db.execute(REVOKE_KEYS_CREATED_BY, &[ws.into(), user_id.into(), now.into()]).await
}

/// The hashes of the keys a user created in a workspace (every workspace: `ws` `None`) that are
/// live or were revoked at `now` or later: what a departure revoked, whose mirrors it deletes
/// again after its write (a key created while it ran is caught; older revocations are not
/// swept again, so the sweep stays bounded).
pub async fn key_hashes_created_by(
    db: &impl Db,
    ws: Option<&str>,
    user_id: &str,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    let sql = "SELECT key_hash FROM server_access_keys WHERE (?1 IS NULL OR workspace_id = ?1) AND created_by = ?2 \
               AND (revoked_at IS NULL OR revoked_at >= ?3)";
    db.query(sql, &[ws.into(), user_id.into(), now.into()]).await?.iter().map(|r| text(r, "key_hash")).collect()
}

/// Revokes every key a user created, in every workspace (`?1` user, `?2` now): part of an
/// account's deletion.
pub const REVOKE_ALL_KEYS_CREATED_BY: &str =
    "UPDATE server_access_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE created_by = ?1";

/// Whether a key is still one to admit: not revoked, its server there, its creator still a
/// member (a key made while its creator was being removed, or its server deleted, is not).
pub async fn key_admitted(db: &impl Db, ws: &str, key_id: &str) -> Result<bool, StoreError> {
    let sql = "SELECT 1 AS ok FROM server_access_keys k \
               JOIN servers s ON s.id = k.server_id AND s.workspace_id = k.workspace_id \
               JOIN memberships m ON m.workspace_id = k.workspace_id AND m.user_id = k.created_by \
               WHERE k.workspace_id = ?1 AND k.id = ?2 AND k.revoked_at IS NULL";
    Ok(!db.query(sql, &[ws.into(), key_id.into()]).await?.is_empty())
}

/// The hashes of the live keys a user created in a workspace (their KV mirrors go with them).
pub async fn live_key_hashes_created_by(db: &impl Db, ws: &str, user_id: &str) -> Result<Vec<String>, StoreError> {
    let sql =
        "SELECT key_hash FROM server_access_keys WHERE workspace_id = ?1 AND created_by = ?2 AND revoked_at IS NULL";
    db.query(sql, &[ws.into(), user_id.into()]).await?.iter().map(|r| text(r, "key_hash")).collect()
}

pub async fn create_key(db: &impl Db, ws: &str, server_id: &str, k: &AccessKey) -> Result<(), StoreError> {
    let sql = "INSERT INTO server_access_keys (id, server_id, workspace_id, name, prefix, key_hash, created_at, \
               created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    db.execute(
        sql,
        &[
            k.id.as_str().into(),
            server_id.into(),
            ws.into(),
            k.name.clone().into(),
            k.prefix.as_str().into(),
            k.key_hash.as_str().into(),
            k.created_at.into(),
            k.created_by.clone().into(),
        ],
    )
    .await
    .map(|_| ())
}

pub async fn list_keys(db: &impl Db, ws: &str, server_id: &str) -> Result<Vec<AccessKey>, StoreError> {
    let sql = "SELECT * FROM server_access_keys WHERE workspace_id = ?1 AND server_id = ?2 ORDER BY created_at, id";
    db.query(sql, &[ws.into(), server_id.into()])
        .await?
        .iter()
        .map(|r| {
            Ok(AccessKey {
                id: text(r, "id")?,
                name: opt_text(r, "name"),
                prefix: text(r, "prefix")?,
                created_at: row_i64(r, "created_at")?,
                last_used_at: opt_i64(r, "last_used_at"),
                revoked_at: opt_i64(r, "revoked_at"),
                created_by: opt_text(r, "created_by"),
                key_hash: text(r, "key_hash")?,
            })
        })
        .collect()
}

/// The hash of one of a server's keys (revoked or not), or `None` when it has no such key.
pub async fn key_hash(db: &impl Db, ws: &str, server_id: &str, key_id: &str) -> Result<Option<String>, StoreError> {
    let sql = "SELECT key_hash FROM server_access_keys WHERE workspace_id = ?1 AND server_id = ?2 AND id = ?3";
    db.query(sql, &[ws.into(), server_id.into(), key_id.into()]).await?.first().map(|r| text(r, "key_hash")).transpose()
}

/// Marks a key revoked (a revoked key keeps its first revocation time).
pub async fn revoke_key(db: &impl Db, ws: &str, key_id: &str, now: i64) -> Result<(), StoreError> {
    let sql = "UPDATE server_access_keys SET revoked_at = COALESCE(revoked_at, ?3) WHERE workspace_id = ?1 AND id = ?2";
    db.execute(sql, &[ws.into(), key_id.into(), now.into()]).await.map(|_| ())
}

/// Deletes a key's row (a key whose KV mirror could not be written: it never worked).
pub async fn delete_key(db: &impl Db, ws: &str, key_id: &str) -> Result<(), StoreError> {
    let sql = "DELETE FROM server_access_keys WHERE workspace_id = ?1 AND id = ?2";
    db.execute(sql, &[ws.into(), key_id.into()]).await.map(|_| ())
}
