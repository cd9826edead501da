//! Workspace secrets, audit listing, and data rights (export, delete workspace, delete account).
//!
//! Secret values are sealed into KV (AAD `secret|<workspace>|<name>`) and never returned.
//! Deleting a workspace removes every D1 row (cascade + audit rows) and every KV key it owns.

use serde::Deserialize;
use serde_json::{json, Value};

use super::context::{Member, SessionUser};
use super::{Request, Response, Services};
use crate::auth::password;
use crate::crypto::aad_workspace_secret;
use crate::error::{limits, ApiError, ErrorCode};
use crate::net::Http;
use crate::store::audit::{self, AuditFilter, Outcome};
use crate::store::servers as servers_store;
use crate::store::{apps as apps_store, row_i64, secrets as secrets_store, sessions, users, workspaces, Db, Kv};
use crate::vocab::Role;

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
    let rows = secrets_store::list(svc.db, &m.workspace_id).await?;
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
        return Err(ApiError::new(
            ErrorCode::InvalidSecretName,
            "Secret names are 1 to 64 letters, digits, '_' or '-'.",
        ));
    }
    if body.value.is_empty() || body.value.len() > 16 * 1024 {
        return Err(ApiError::new(ErrorCode::InvalidSecret, "A secret value must be 1 byte to 16 KiB."));
    }
    let sealed = svc.secrets.keyring.seal(body.value.as_bytes(), &aad_workspace_secret(&m.workspace_id, name))?;
    let key = secret_kv_key(&m.workspace_id, name);
    svc.kv.put(&key, sealed.as_bytes(), None).await?;
    secrets_store::upsert(svc.db, &m.workspace_id, name, &key, svc.now_ms).await?;
    Ok(Response::ok(json!({ "name": name, "set": true, "updated_at": svc.now_ms })))
}

pub async fn delete_secret<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    name: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    if !secrets_store::delete(svc.db, &m.workspace_id, name).await? {
        return Err(ApiError::not_found());
    }
    svc.kv.delete(&secret_kv_key(&m.workspace_id, name)).await?;
    Ok(Response::no_content())
}

/// `GET .../audit`: newest first; filters `server`, `tool`, `outcome`, `since`, `until` (ms).
pub async fn list_audit<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
) -> Result<Response, ApiError> {
    let bad = |what: &str| ApiError::new(ErrorCode::InvalidFilter, format!("{what} is not valid."));
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
            let (a, b) = c.split_once('.').ok_or_else(|| ApiError::new(ErrorCode::InvalidCursor, "Bad cursor."))?;
            (
                a.parse().map_err(|_| ApiError::new(ErrorCode::InvalidCursor, "Bad cursor."))?,
                b.parse().map_err(|_| ApiError::new(ErrorCode::InvalidCursor, "Bad cursor."))?,
            )
        }
    };
    let outcome = match req.query_param("outcome") {
        Some(o) => Some(Outcome::parse(o).ok_or_else(|| bad("outcome"))?),
        None => None,
    };
    let filter = AuditFilter {
        server: req.query_param("server").map(str::to_string),
        tool: req.query_param("tool").map(str::to_string),
        outcome,
        since: num("since")?,
        until: num("until")?,
    };
    let mut rows = audit::page(svc.db, &m.workspace_id, &filter, (before_ts, before_id), limit).await?;
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
        crate::service::lifecycle::delete_all(svc.db, svc.kv, &s).await?;
    }
    for key in apps_store::workspace_document_keys(svc.db, ws).await? {
        svc.kv.delete(&key).await?;
    }
    for key in secrets_store::kv_keys(svc.db, ws).await? {
        svc.kv.delete(&key).await?;
    }
    audit::delete_for_workspace(svc.db, ws).await?;
    workspaces::delete(svc.db, ws).await?;
    Ok(())
}

pub async fn delete_workspace<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
) -> Result<Response, ApiError> {
    if m.role != Role::Owner {
        return Err(ApiError::new(ErrorCode::Forbidden, "Only an owner can delete a workspace."));
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
        return Err(ApiError::new(ErrorCode::WrongPassword, "The password is wrong."));
    }
    for w in workspaces::list_for_user(svc.db, &s.user_id).await? {
        let owners = workspaces::members(svc.db, &w.id)
            .await?
            .iter()
            .filter(|m| m.role == Role::Owner && m.user_id != s.user_id)
            .count();
        if w.role == Role::Owner && owners == 0 {
            delete_workspace_data(svc, &w.id).await?;
        }
    }
    crate::service::accounts::delete_user(svc.db, &s.user_id).await?;
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
                "tools": tools.iter().map(|t| super::views::tool_json(t, false)).collect::<Vec<_>>(),
            }));
        }
        let mut servers_json = Vec::new();
        for srv in servers_store::list(svc.db, ws).await? {
            let keys = servers_store::list_keys(svc.db, ws, &srv.id).await?;
            servers_json
                .push(json!({ "server": srv, "credential_set": srv.credential_key.is_some(), "access_keys": keys }));
        }
        let secrets = secrets_store::list(svc.db, ws).await?;
        let audit = audit::export(svc.db, ws).await?;
        out_ws.push(json!({
            "workspace": w,
            "members": workspaces::members(svc.db, ws).await?,
            "apps": apps_json,
            "servers": servers_json,
            "secrets": secrets,
            "audit_events": audit,
        }));
    }
    let sessions = sessions::export_for_user(svc.db, &s.user_id).await?;
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
