//! Workspace secrets, audit listing, and data rights (export, delete workspace, delete account).
//!
//! Secret values are sealed into KV (AAD `secret|<workspace>|<name>`) and never returned.
//! Deleting a workspace removes every D1 row (cascade + audit rows) and every KV key it owns.

use schemars::JsonSchema;
use serde::Deserialize;

use super::context::{Member, SessionUser};
use super::input::{cursor_int, page_cursor, page_limit};
use super::views::{
    ActivitySeries, Export, ExportedApp, ExportedServer, ExportedUser, ExportedWorkspace, Items, Page, SecretSet,
    ToolView,
};
use super::{Request, Response, Services};
use crate::crypto::aad_workspace_secret;
use crate::error::{limits, ApiError, ErrorCode};
use crate::net::Http;
use crate::store::audit::{self, AuditFilter, Outcome};
use crate::store::servers as servers_store;
use crate::store::{apps as apps_store, secrets as secrets_store, sessions, users, workspaces, Db, Kv};
use crate::vocab::Role;

pub fn secret_kv_key(ws: &str, name: &str) -> String {
    format!("wsec:{ws}:{name}")
}

fn valid_secret_name(name: &str) -> bool {
    crate::vocab::is_plain_id(name, 64)
}

pub async fn list_secrets<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
) -> Result<Response, ApiError> {
    Response::ok(&Items { items: secrets_store::list(svc.db, &m.workspace_id).await? })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretBody {
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
    Response::ok(&SecretSet { name: name.to_string(), set: true, updated_at: svc.now_ms })
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

fn bad_filter(what: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidFilter, format!("{what} is not valid."))
}

/// A query parameter in ms (or any integer).
fn query_int(req: &Request, name: &str) -> Result<Option<i64>, ApiError> {
    req.query_param(name).map(|v| v.parse::<i64>().map_err(|_| bad_filter(name))).transpose()
}

/// The audit log's filters, shared by the listing and the activity series.
fn audit_filter(req: &Request) -> Result<AuditFilter, ApiError> {
    let outcome = match req.query_param("outcome") {
        Some(o) => Some(Outcome::parse(o).ok_or_else(|| bad_filter("outcome"))?),
        None => None,
    };
    Ok(AuditFilter {
        server: req.query_param("server").map(str::to_string),
        tool: req.query_param("tool").map(str::to_string),
        outcome,
        since: query_int(req, "since")?,
        until: query_int(req, "until")?,
    })
}

/// `GET .../audit`: newest first; filters `server`, `tool`, `outcome`, `since`, `until` (ms).
pub async fn list_audit<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
) -> Result<Response, ApiError> {
    let limit = i64::from(page_limit(req)?);
    let (before_ts, before_id) = match page_cursor(req, 2)? {
        None => (i64::MAX, i64::MAX),
        Some(p) => (cursor_int(&p[0])?, cursor_int(&p[1])?),
    };
    let filter = audit_filter(req)?;
    let mut rows = audit::page(svc.db, &m.workspace_id, &filter, (before_ts, before_id), limit).await?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| crate::cursor::encode(&[&r.ts.to_string(), &r.id.to_string()]))
    } else {
        None
    };
    Response::ok(&Page { items: rows, next_cursor: next })
}

/// The widest activity window: the audit retention.
const ACTIVITY_MAX_RANGE_MS: i64 = 31 * 24 * 3600 * 1000;
/// The most buckets one answer holds.
const ACTIVITY_MAX_BUCKETS: i64 = 500;

/// Calls, errors and p50/p95 latency over time, with the busiest tools, filtered like the
/// audit log. The window defaults to the last 24 hours in about 60 buckets of whole minutes.
pub async fn activity<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
) -> Result<Response, ApiError> {
    let mut filter = audit_filter(req)?;
    let until = filter.until.unwrap_or(svc.now_ms);
    let since = match filter.since {
        Some(s) => s,
        None => until.checked_sub(24 * 3600 * 1000).ok_or_else(|| bad_filter("until"))?,
    };
    if since < 0 || until <= since || until - since > ACTIVITY_MAX_RANGE_MS {
        return Err(ApiError::new(
            ErrorCode::InvalidFilter,
            "since must be before until, at most 31 days apart (the audit log keeps 30 days).",
        ));
    }
    let range = until - since;
    let bucket = match query_int(req, "bucket")? {
        Some(b) if b < 1000 || range / b > ACTIVITY_MAX_BUCKETS => {
            return Err(ApiError::new(
                ErrorCode::InvalidFilter,
                format!("bucket must be at least 1000 ms and make at most {ACTIVITY_MAX_BUCKETS} buckets."),
            ))
        }
        Some(b) => b,
        None => ((range / 60 + 59_999) / 60_000).max(1) * 60_000,
    };
    (filter.since, filter.until) = (Some(since), Some(until));
    let buckets = audit::series(svc.db, &m.workspace_id, &filter, (since, until), bucket).await?;
    let tools = audit::by_tool(svc.db, &m.workspace_id, &filter, (since, until)).await?;
    let total = audit::series(svc.db, &m.workspace_id, &filter, (since, until), range).await?;
    let total =
        total.into_iter().next().map(|b| b.stats).unwrap_or(audit::Stats { calls: 0, errors: 0, p50_ms: 0, p95_ms: 0 });
    let capped = total.calls >= audit::SERIES_MAX_EVENTS;
    Response::ok(&ActivitySeries { since, until, bucket_ms: bucket, buckets, total, tools, capped })
}

/// Deletes a workspace: KV keys first (documents, server keys, secrets), then audit rows, then
/// the workspace row, whose deletion cascades to every other table.
pub async fn delete_workspace_data<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    ws: &str,
) -> Result<(), ApiError> {
    let mut seen = Vec::new();
    for s in servers_store::list(svc.db, ws).await? {
        let v = crate::service::lifecycle::delete_all(svc.db, svc.kv, &s).await?;
        seen.push((s, v));
    }
    for key in apps_store::workspace_document_keys(svc.db, ws).await? {
        svc.kv.delete(&key).await?;
    }
    for key in secrets_store::kv_keys(svc.db, ws).await? {
        svc.kv.delete(&key).await?;
    }
    // The tombstone first: rows an in-flight audit flush writes after this go at the next
    // retention run.
    crate::store::usage::tombstone(svc.db, ws, svc.now_ms).await?;
    audit::delete_for_workspace(svc.db, ws).await?;
    workspaces::delete(svc.db, ws).await?;
    // Versions a racing publish staged after `delete_all` looked (`lifecycle::sweep_after_delete`).
    for (s, v) in &seen {
        crate::service::lifecycle::sweep_after_delete(svc.kv, s, *v).await;
    }
    crate::store::usage::delete_for_workspace(svc.db, ws).await?;
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

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountBody {
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
    super::accounts::reauthenticate(svc, req, s, &user, &body.password, "The password is wrong.").await?;
    let visible: Vec<String> =
        workspaces::list_visible(svc.db, &s.user_id, s.email_verified).await?.into_iter().map(|w| w.id).collect();
    for w in workspaces::list_for_user(svc.db, &s.user_id).await? {
        let owners = workspaces::members(svc.db, &w.id)
            .await?
            .iter()
            .filter(|m| m.role == Role::Owner && m.user_id != s.user_id)
            .count();
        // A workspace the account cannot open (unverified, not its creator) is never deleted
        // by it; its membership and keys go like any other.
        if w.role == Role::Owner && owners == 0 && visible.contains(&w.id) {
            delete_workspace_data(svc, &w.id).await?;
        } else {
            // The workspace stays: the keys this user created there must not.
            crate::service::members::revoke_keys_created_by(svc.db, svc.kv, &w.id, &s.user_id, svc.now_ms).await?;
        }
    }
    crate::service::accounts::delete_user(svc.db, &s.user_id, svc.now_ms).await?;
    // The mirrors of every key the account revoked now, in any workspace, go again: one made
    // by another of its sessions while this ran is caught here.
    for h in servers_store::key_hashes_created_by(svc.db, None, &s.user_id, svc.now_ms).await? {
        svc.kv.delete(&crate::manifest::access_key_key(&h)).await?;
    }
    Ok(Response::no_content().with_header("set-cookie", crate::auth::session::clear_cookie()))
}

/// Everything FlowCP holds about the account and its workspaces, as JSON — never a secret
/// value, password hash, key hash or token.
pub async fn export<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, s: &SessionUser) -> Result<Response, ApiError> {
    let user = users::find_by_id(svc.db, &s.user_id).await?.ok_or_else(ApiError::not_found)?;
    let mut workspaces_out = Vec::new();
    // What the account may open: a membership an unverified account cannot use is not exported.
    for w in workspaces::list_visible(svc.db, &s.user_id, s.email_verified).await? {
        let ws = w.id.clone();
        let mut apps = Vec::new();
        for app in apps_store::list_apps(svc.db, &ws, None, 10_000).await? {
            let tools = apps_store::all_tools(svc.db, &ws, &app.id).await?;
            let imports = apps_store::list_imports(svc.db, &ws, &app.id).await?;
            apps.push(ExportedApp { imports, tools: tools.iter().map(|t| ToolView::of(t, false)).collect(), app });
        }
        let mut servers = Vec::new();
        for server in servers_store::list(svc.db, &ws).await? {
            let access_keys = servers_store::list_keys(svc.db, &ws, &server.id).await?;
            servers.push(ExportedServer { credential_set: server.credential_key.is_some(), access_keys, server });
        }
        workspaces_out.push(ExportedWorkspace {
            members: workspaces::members(svc.db, &ws).await?,
            apps,
            servers,
            secrets: secrets_store::list(svc.db, &ws).await?,
            audit_events: audit::export(svc.db, &ws).await?,
            git_connections: crate::store::git::list_connections(svc.db, &ws).await?,
            git_sources: crate::store::git::workspace_sources(svc.db, &ws).await?,
            workspace: w,
        });
    }
    let view = Export {
        exported_at: svc.now_ms,
        user: ExportedUser {
            id: user.id.clone(),
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            terms_accepted_at: user.terms_accepted_at,
            privacy_accepted_at: user.privacy_accepted_at,
            created_at: user.created_at,
        },
        sessions: sessions::export_for_user(svc.db, &s.user_id).await?,
        workspaces: workspaces_out,
    };
    Ok(Response::ok(&view)?.with_header("content-disposition", "attachment; filename=\"flowcp-export.json\""))
}
