//! Workspace secrets, audit listing, and data rights (export, delete workspace, delete account).
//!
//! Secret values are sealed into KV (AAD `secret|<workspace>|<name>`) and never returned.
//! Deleting a workspace removes every D1 row (cascade + audit rows) and every KV key it owns.

use serde::Deserialize;
use serde_json::{json, Value};

use super::accounts::SessionUser;
use super::workspaces::Member;
use super::{servers, Request, Response, Services};
use crate::auth::password;
use crate::crypto::aad_workspace_secret;
use crate::error::{limits, ApiError};
use crate::net::Http;
use crate::store::servers as servers_store;
use crate::store::{apps as apps_store, row_i64, text, users, workspaces, Db, Kv, SqlValue};

pub fn secret_kv_key(ws: &str, name: &str) -> String {
    format!("wsec:{ws}:{name}")
}

fn valid_secret_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub async fn list_secrets<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
) -> Result<Response, ApiError> {
    let sql = "SELECT name, created_at, updated_at FROM workspace_secrets WHERE workspace_id = ?1 ORDER BY name";
    let rows = svc.db.query(sql, &[m.workspace_id.as_str().into()]).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| json!({ "name": r.get("name"), "set": true, "created_at": r.get("created_at"), "updated_at": r.get("updated_at") }))
        .collect();
    Ok(Response::ok(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    value: String,
}

pub async fn put_secret<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
    name: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let body: SecretBody = req.json(limits::API_JSON)?;
    if !valid_secret_name(name) {
        return Err(ApiError::new(422, "invalid_secret_name", "Secret names are 1 to 64 letters, digits, '_' or '-'."));
    }
    if body.value.is_empty() || body.value.len() > 16 * 1024 {
        return Err(ApiError::new(422, "invalid_secret", "A secret value must be 1 byte to 16 KiB."));
    }
    let sealed = svc.secrets.keyring.seal(body.value.as_bytes(), &aad_workspace_secret(&m.workspace_id, name))?;
    let key = secret_kv_key(&m.workspace_id, name);
    svc.kv.put(&key, sealed.as_bytes(), None).await?;
    let sql = "INSERT INTO workspace_secrets (workspace_id, name, kv_key, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4) \
               ON CONFLICT (workspace_id, name) DO UPDATE SET updated_at = excluded.updated_at";
    svc.db.execute(sql, &[m.workspace_id.as_str().into(), name.into(), key.into(), svc.now_ms.into()]).await?;
    Ok(Response::ok(json!({ "name": name, "set": true, "updated_at": svc.now_ms })))
}

pub async fn delete_secret<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    name: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let n = svc
        .db
        .execute(
            "DELETE FROM workspace_secrets WHERE workspace_id = ?1 AND name = ?2",
            &[m.workspace_id.as_str().into(), name.into()],
        )
        .await?;
    if n == 0 {
        return Err(ApiError::not_found());
    }
    svc.kv.delete(&secret_kv_key(&m.workspace_id, name)).await?;
    Ok(Response::no_content())
}

const AUDIT_COLS: &str = "id, ts, server_id, tool_name, outcome, upstream_status, latency_ms, request_bytes, response_bytes, connection_hash";

/// `GET .../audit`: newest first; filters `server`, `tool`, `outcome`, `since`, `until` (ms).
pub async fn list_audit<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
) -> Result<Response, ApiError> {
    let bad = |what: &str| ApiError::new(400, "invalid_filter", format!("{what} is not valid."));
    let num = |name: &str| -> Result<Option<i64>, ApiError> {
        req.query_param(name).map(|v| v.parse::<i64>().map_err(|_| bad(name))).transpose()
    };
    let limit = num("limit")?.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(bad("limit"));
    }
    let (before_ts, before_id) = match req.query_param("cursor") {
        None => (i64::MAX, i64::MAX),
        Some(c) => {
            let (a, b) = c.split_once('.').ok_or_else(|| ApiError::new(400, "invalid_cursor", "Bad cursor."))?;
            (
                a.parse().map_err(|_| ApiError::new(400, "invalid_cursor", "Bad cursor."))?,
                b.parse().map_err(|_| ApiError::new(400, "invalid_cursor", "Bad cursor."))?,
            )
        }
    };
    if let Some(o) = req.query_param("outcome") {
        if !matches!(o, "ok" | "tool_error" | "upstream_error" | "denied" | "invalid") {
            return Err(bad("outcome"));
        }
    }
    let sql = format!(
        "SELECT {AUDIT_COLS} FROM audit_events WHERE workspace_id = ?1 AND (ts < ?2 OR (ts = ?2 AND id < ?3)) \
         AND (?4 IS NULL OR server_id = ?4) AND (?5 IS NULL OR tool_name = ?5) AND (?6 IS NULL OR outcome = ?6) \
         AND (?7 IS NULL OR ts >= ?7) AND (?8 IS NULL OR ts < ?8) ORDER BY ts DESC, id DESC LIMIT ?9"
    );
    let params = [
        m.workspace_id.as_str().into(),
        before_ts.into(),
        before_id.into(),
        req.query_param("server").map(str::to_string).into(),
        req.query_param("tool").map(str::to_string).into(),
        req.query_param("outcome").map(str::to_string).into(),
        num("since")?.into(),
        num("until")?.into(),
        SqlValue::Integer(limit + 1),
    ];
    let mut rows = svc.db.query(&sql, &params).await?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().and_then(|r| Some(format!("{}.{}", row_i64(r, "ts").ok()?, row_i64(r, "id").ok()?)))
    } else {
        None
    };
    Ok(Response::ok(json!({ "items": rows, "next_cursor": next })))
}

/// Deletes a workspace: KV keys first (documents, server keys, secrets), then audit rows, then
/// the workspace row, whose deletion cascades to every other table.
pub async fn delete_workspace_data<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    ws: &str,
) -> Result<(), ApiError> {
    for s in servers_store::list(svc.db, ws).await? {
        servers::delete_server_kv(svc, &s).await?;
    }
    let docs = svc.db.query("SELECT document_key FROM imports WHERE workspace_id = ?1", &[ws.into()]).await?;
    for d in docs {
        svc.kv.delete(&text(&d, "document_key")?).await?;
    }
    let secrets = svc.db.query("SELECT kv_key FROM workspace_secrets WHERE workspace_id = ?1", &[ws.into()]).await?;
    for s in secrets {
        svc.kv.delete(&text(&s, "kv_key")?).await?;
    }
    svc.db.execute("DELETE FROM audit_events WHERE workspace_id = ?1", &[ws.into()]).await?;
    svc.db.execute(workspaces::DELETE, &[ws.into()]).await?;
    Ok(())
}

pub async fn delete_workspace<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
) -> Result<Response, ApiError> {
    if m.role != "owner" {
        return Err(ApiError::new(403, "forbidden", "Only an owner can delete a workspace."));
    }
    delete_workspace_data(svc, &m.workspace_id).await?;
    Ok(Response::no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteAccountBody {
    password: String,
}

/// Deletes the account: workspaces where the user is the only owner are deleted whole; other
/// memberships are removed; then the user row (sessions cascade).
pub async fn delete_account<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    s: &SessionUser,
) -> Result<Response, ApiError> {
    let body: DeleteAccountBody = req.json(limits::API_JSON)?;
    let user = users::find_by_id(svc.db, &s.user_id).await?.ok_or_else(ApiError::not_found)?;
    if !password::verify_password(&body.password, &user.password_hash) {
        return Err(ApiError::new(403, "invalid_credentials", "The password is wrong."));
    }
    for w in workspaces::list_for_user(svc.db, &s.user_id).await? {
        let owners = workspaces::members(svc.db, &w.id)
            .await?
            .iter()
            .filter(|m| m.role == "owner" && m.user_id != s.user_id)
            .count();
        if w.role == "owner" && owners == 0 {
            delete_workspace_data(svc, &w.id).await?;
        }
    }
    svc.db.execute("DELETE FROM memberships WHERE user_id = ?1", &[s.user_id.as_str().into()]).await?;
    users::delete(svc.db, &s.user_id).await?;
    Ok(Response::no_content().with_header("set-cookie", crate::auth::session::clear_cookie()))
}

/// Everything FlowCP holds about the account and its workspaces, as JSON — never a secret
/// value, password hash, key hash or token.
pub async fn export<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, s: &SessionUser) -> Result<Response, ApiError> {
    let user = users::find_by_id(svc.db, &s.user_id).await?.ok_or_else(ApiError::not_found)?;
    let mut out_ws = Vec::new();
    for w in workspaces::list_for_user(svc.db, &s.user_id).await? {
        let ws = w.id.as_str();
        let apps = apps_store::list_apps(svc.db, ws, None, 10_000).await?;
        let mut apps_json = Vec::new();
        for a in &apps {
            let tools = apps_store::all_tools(svc.db, ws, &a.id).await?;
            let imports = apps_store::list_imports(svc.db, ws, &a.id).await?;
            apps_json.push(json!({
                "app": a,
                "imports": imports,
                "tools": tools.iter().map(|t| super::apps::tool_json(t, false)).collect::<Vec<_>>(),
            }));
        }
        let mut servers_json = Vec::new();
        for srv in servers_store::list(svc.db, ws).await? {
            let keys = servers_store::list_keys(svc.db, ws, &srv.id).await?;
            servers_json
                .push(json!({ "server": srv, "credential_set": srv.credential_key.is_some(), "access_keys": keys }));
        }
        let secrets = svc
            .db
            .query("SELECT name, created_at, updated_at FROM workspace_secrets WHERE workspace_id = ?1", &[ws.into()])
            .await?;
        let audit = svc
            .db
            .query(
                &format!("SELECT {AUDIT_COLS} FROM audit_events WHERE workspace_id = ?1 ORDER BY ts DESC LIMIT 10000"),
                &[ws.into()],
            )
            .await?;
        out_ws.push(json!({
            "workspace": w,
            "members": workspaces::members(svc.db, ws).await?,
            "apps": apps_json,
            "servers": servers_json,
            "secrets": secrets,
            "audit_events": audit,
        }));
    }
    let sessions = svc
        .db
        .query(
            "SELECT created_at, last_seen_at, expires_at, revoked_at FROM sessions WHERE user_id = ?1",
            &[s.user_id.as_str().into()],
        )
        .await?;
    Ok(Response::ok(json!({
        "exported_at": svc.now_ms,
        "user": {
            "id": user.id,
            "email": user.email,
            "display_name": user.display_name,
            "terms_accepted_at": user.terms_accepted_at,
            "privacy_accepted_at": user.privacy_accepted_at,
            "created_at": user.created_at,
        },
        "sessions": sessions,
        "workspaces": out_ws,
    }))
    .with_header("content-disposition", "attachment; filename=\"flowcp-export.json\""))
}
