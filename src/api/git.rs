//! The Git integration's routes (issue 17; docs/git.md): a workspace's connections to GitHub
//! (OAuth with PKCE; the callback is `/git/callback`), an app's source (repository, branch,
//! path; a webhook created for it when the connection may), "test connection", "sync now", and
//! the signed webhook endpoint `/git/webhooks/{source}`.
//!
//! Invariants: connecting is an admin's act and completes only in the browser session of the
//! admin who started it (a callback in anyone else's session changes nothing); tokens never
//! leave the sealed columns except into a provider request's `Authorization` header; a webhook
//! delivery is acted on only with a valid signature, once per delivery id.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::context::{self, Member};
use super::git_sync::{self, SyncReport, Trigger};
use super::views::Items;
use super::{Request, Response, Services};
use crate::crypto::{random_id, random_token, sha256_hex};
use crate::error::{limits, ApiError, ErrorCode};
use crate::git::github::GitHub;
use crate::git::{
    hook_secret_aad, token_aad, valid_branch, valid_path, valid_repo, DeliveryError, Event, GitProvider, GitSettings,
    HeadCheck,
};
use crate::net::Http;
use crate::store::apps as apps_store;
use crate::store::git::{self as store, ConnStatus, Connection, Source, SyncStatus};
use crate::store::{Db, Kv};

/// The callback path registered at the provider.
pub const CALLBACK_PATH: &str = "/git/callback";
/// Webhook deliveries: `/git/webhooks/{source id}`.
pub const WEBHOOK_PREFIX: &str = "/git/webhooks/";
/// Largest webhook delivery read (GitHub caps payloads at 25 MB; a push lists at most 20
/// commits, so real ones are far smaller; a larger one is refused and the poll catches up).
pub const MAX_DELIVERY: usize = 2 * 1024 * 1024;
/// How long the owner has at the provider's consent page.
const PENDING_MS: i64 = 10 * 60 * 1000;

fn settings<'a, D: Db, K: Kv, H: Http>(svc: &Services<'a, D, K, H>) -> Result<&'a GitSettings, ApiError> {
    svc.git.ok_or_else(|| {
        ApiError::unavailable(
            ErrorCode::NotConfigured,
            "GitHub is not set up on this deployment: its operator sets FLOWCP_GITHUB_CLIENT_ID and FLOWCP_GITHUB_CLIENT_SECRET (docs/git.md).",
        )
    })
}

/// The origin the provider calls back and delivers to (a host this deployment serves).
fn public_origin<'a, D: Db, K: Kv, H: Http>(svc: &'a Services<'_, D, K, H>) -> Result<&'a str, ApiError> {
    svc.link_origin.as_deref().ok_or_else(|| {
        ApiError::unavailable(
            ErrorCode::NotConfigured,
            "This host is not one the deployment serves (FLOWCP_ALLOWED_HOSTS).",
        )
    })
}

/// A stopped provider call as an API error.
fn stop_error(outcome: git_sync::Outcome, message: String) -> ApiError {
    use git_sync::Outcome;
    match outcome {
        Outcome::Broken => ApiError::new(ErrorCode::GitConnectionBroken, message),
        Outcome::Unavailable => ApiError::new(ErrorCode::GitUnavailable, message),
        _ => ApiError::new(ErrorCode::GitNotFound, message),
    }
}

pub async fn list_connections<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
) -> Result<Response, ApiError> {
    Response::ok(&Items { items: store::list_connections(svc.db, &m.workspace_id).await? })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "provider": "github", "return_to_app": "app_1" }))]
pub struct ConnectBody {
    /// `github`.
    provider: String,
    /// The app whose page the browser returns to after the consent (default: the home page).
    return_to_app: Option<String>,
}

/// A connection started: send the browser to `authorize_url`.
#[derive(Serialize, JsonSchema)]
pub struct Connecting {
    pub connection: Connection,
    /// The provider's consent page (single use, valid 10 minutes).
    pub authorize_url: String,
}

/// `POST .../git/connections`: a pending connection and the provider's consent URL.
pub async fn connect<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let body: ConnectBody = req.json(limits::API_JSON)?;
    if body.provider != "github" {
        return Err(ApiError::new(
            ErrorCode::InvalidGitSource,
            "The provider must be github (GitLab and Bitbucket are not supported yet).",
        ));
    }
    let return_to = match body.return_to_app {
        Some(app) => {
            apps_store::get_app(svc.db, &m.workspace_id, &app).await?.ok_or_else(ApiError::not_found)?;
            Some(format!("/apps/{app}"))
        }
        None => None,
    };
    let gh = GitHub { settings: settings(svc)? };
    let callback = format!("{}{CALLBACK_PATH}", public_origin(svc)?);
    let id = random_id("gitc_")?;
    let state = random_token("")?;
    let verifier = random_token("")?;
    let conn = Connection {
        id: id.clone(),
        workspace_id: m.workspace_id.clone(),
        provider: gh.name().into(),
        account: None,
        status: ConnStatus::Pending,
        status_message: None,
        created_by: m.user_id.clone(),
        created_at: svc.now_ms,
        updated_at: svc.now_ms,
        state_hash: Some(sha256_hex(state.as_bytes())),
        verifier_sealed: Some(
            svc.secrets.keyring.seal(verifier.as_bytes(), &token_aad(&m.workspace_id, &id, "verifier"))?,
        ),
        return_to,
        refresh_sealed: None,
        access_sealed: None,
        access_expires_at: None,
        generation: 0,
        lease_until: None,
    };
    store::insert_pending(svc.db, &conn).await?;
    let authorize_url = gh.authorize_url(&callback, &state, &crate::oauth::pkce::challenge_s256(&verifier));
    Response::created(&Connecting { connection: conn, authorize_url })
}

/// `GET /git/callback?code&state`: the provider's redirect after the consent. The browser goes
/// back to the dashboard with `?git=connected` or `?git=<why not>`.
pub async fn callback<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request) -> Response {
    let back = |path: Option<&str>, outcome: &str| {
        Response { status: 302, body: None, headers: Vec::new() }
            .with_header("location", format!("{}?git={outcome}", path.unwrap_or("/")))
    };
    let Some(state) = req.query_param("state").filter(|s| !s.is_empty() && s.len() <= 200) else {
        return back(None, "expired");
    };
    let Ok(Some(pending)) = store::pending_by_state(svc.db, &sha256_hex(state.as_bytes())).await else {
        return back(None, "expired");
    };
    let to = pending.return_to.as_deref();
    // Only in the session of the admin who started it: a consent link sent to someone else
    // cannot attach their Git account to the starter's workspace, nor the reverse.
    let Ok(session) = context::require_session(svc, req).await else { return back(to, "signed_out") };
    if session.user_id != pending.created_by {
        return back(to, "wrong_account");
    }
    // Still an admin of the workspace (a demotion within the 10 minutes ends the attempt).
    if !matches!(git_sync::admin(svc, &pending.workspace_id, &pending.created_by).await, Ok(Some(_))) {
        return back(to, "wrong_account");
    }
    let pending_id = pending.id.clone();
    let finish = |outcome: &'static str| {
        let id = pending_id.clone();
        async move {
            let _ = store::delete_pending(svc.db, &id).await;
            back(to, outcome)
        }
    };
    if svc.now_ms - pending.created_at > PENDING_MS {
        return finish("expired").await;
    }
    if req.query_param("error").is_some() {
        return finish("denied").await;
    }
    let (Some(code), Ok(settings)) =
        (req.query_param("code").filter(|c| !c.is_empty() && c.len() <= 512), settings(svc))
    else {
        return finish("denied").await;
    };
    let verifier = pending
        .verifier_sealed
        .as_deref()
        .and_then(|v| svc.secrets.keyring.open(v, &token_aad(&pending.workspace_id, &pending.id, "verifier")).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let (Some(verifier), Ok(origin)) = (verifier, public_origin(svc)) else { return finish("unavailable").await };
    let gh = GitHub { settings };
    let callback = format!("{origin}{CALLBACK_PATH}");
    let tokens = match gh.exchange_code(svc.http, code, &callback, &verifier, svc.now_ms).await {
        Ok(t) => t,
        Err(crate::git::TokenError::Refused) => return finish("refused").await,
        Err(crate::git::TokenError::Unusable(_)) => return finish("unavailable").await,
    };
    let Ok(account) = gh.account(svc.http, &tokens.access_token).await else { return finish("unavailable").await };
    let seal = |purpose: &str, v: &str| {
        svc.secrets.keyring.seal(v.as_bytes(), &token_aad(&pending.workspace_id, &pending.id, purpose))
    };
    let (Ok(access), Ok(refresh)) =
        (seal("access", &tokens.access_token), tokens.refresh_token.as_deref().map(|r| seal("refresh", r)).transpose())
    else {
        return finish("unavailable").await;
    };
    match store::activate(
        svc.db,
        &pending.id,
        &account,
        refresh.as_deref(),
        &access,
        tokens.access_expires_at,
        svc.now_ms,
    )
    .await
    {
        Ok(true) => back(to, "connected"),
        _ => back(to, "expired"),
    }
}

/// `DELETE .../git/connections/{conn}`: its tokens are deleted and its sources stop syncing
/// (the webhooks FlowCP created are removed first, as far as the provider still lets it).
pub async fn disconnect<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let conn = store::get_connection(svc.db, &m.workspace_id, id).await?.ok_or_else(ApiError::not_found)?;
    if let (Some(settings), ConnStatus::Active) = (svc.git, conn.status) {
        for src in store::workspace_sources(svc.db, &m.workspace_id).await? {
            if src.connection_id.as_deref() == Some(id) {
                remove_hook(svc, settings, &conn, &src).await;
            }
        }
    }
    store::delete_connection(svc.db, &m.workspace_id, id, svc.now_ms).await?;
    Ok(Response::no_content())
}

/// Best effort: the webhook FlowCP created for `src` is deleted at the provider.
async fn remove_hook<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    settings: &GitSettings,
    conn: &Connection,
    src: &Source,
) {
    let Some(hook) = src.hook_id.as_deref() else { return };
    let gh = GitHub { settings };
    let tk = git_sync::tokens(svc, &gh);
    let _ = git_sync::call(&tk, conn, |t| {
        let gh = &gh;
        async move { gh.delete_hook(svc.http, &t, &src.repo, hook).await }
    })
    .await;
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "connection_id": "gitc_1", "repo": "octo/pets", "branch": "main", "path": "openapi.yaml" }))]
pub struct TestBody {
    connection_id: String,
    /// `owner/name`.
    repo: String,
    /// Check this branch and, with `path`, the document on it.
    branch: Option<String>,
    path: Option<String>,
}

/// What "test connection" found.
#[derive(Serialize, JsonSchema)]
pub struct TestResult {
    /// The provider account the connection acts as.
    pub account: Option<String>,
    /// The repository's branches (at most 1,000).
    pub branches: Vec<String>,
    pub branch_found: Option<bool>,
    pub file: Option<FileCheck>,
}

/// The document at the branch head, imported as a trial (nothing is stored).
#[derive(Serialize, JsonSchema)]
pub struct FileCheck {
    pub ok: bool,
    pub title: Option<String>,
    pub version: Option<String>,
    pub tool_count: u64,
    pub warning_count: u64,
    /// Why it cannot be imported.
    pub error: Option<String>,
    pub commit: Option<String>,
}

/// A source of the workspace as `m` sets it up now, not synced yet.
fn new_source(m: &Member, now: i64, id: String, conn: &str, (repo, branch, path): (String, String, String)) -> Source {
    Source {
        id,
        app_id: String::new(),
        workspace_id: m.workspace_id.clone(),
        connection_id: Some(conn.to_string()),
        repo,
        branch,
        path,
        auto_publish: false,
        webhook_secret_sealed: String::new(),
        hook_id: None,
        last_sha: None,
        etag: None,
        checked_at: None,
        status: SyncStatus::New,
        message: None,
        report_json: None,
        created_by: m.user_id.clone(),
        created_at: now,
        updated_at: now,
    }
}

fn source_fields(repo: &str, branch: Option<&str>, path: Option<&str>) -> Result<(), ApiError> {
    if !valid_repo(repo) {
        return Err(ApiError::new(
            ErrorCode::InvalidGitSource,
            "repo must be owner/name (letters, digits, '-', '_', '.').",
        ));
    }
    if branch.is_some_and(|b| !valid_branch(b)) {
        return Err(ApiError::new(ErrorCode::InvalidGitSource, "branch is not a valid Git branch name."));
    }
    if path.is_some_and(|p| !valid_path(p)) {
        return Err(ApiError::new(
            ErrorCode::InvalidGitSource,
            "path must be the document's path in the repository, such as api/openapi.yaml (no leading '/', no '..').",
        ));
    }
    Ok(())
}

async fn active_connection<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
) -> Result<Connection, ApiError> {
    // Another workspace's connection is not found, like one that does not exist.
    let conn = store::get_connection(svc.db, &m.workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "There is no such Git connection in this workspace."))?;
    match conn.status {
        ConnStatus::Active if git_sync::admin(svc, &m.workspace_id, &conn.created_by).await?.is_none() => {
            Err(ApiError::new(ErrorCode::GitConnectionBroken, git_sync::CREATOR_GONE))
        }
        ConnStatus::Active => Ok(conn),
        ConnStatus::Pending => {
            Err(ApiError::new(ErrorCode::GitConnectionBroken, "The connection is waiting for its consent at GitHub."))
        }
        ConnStatus::Broken => Err(ApiError::new(
            ErrorCode::GitConnectionBroken,
            conn.status_message.unwrap_or_else(|| crate::git::tokens::REFUSED.to_string()),
        )),
    }
}

/// `POST .../git/test`: the repository's branches and, with a branch and path, whether the
/// document there imports.
pub async fn test<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
) -> Result<Response, ApiError> {
    // It reads through the connection's account (private repositories included): an admin's act.
    m.require_admin()?;
    let body: TestBody = req.json(limits::API_JSON)?;
    source_fields(&body.repo, body.branch.as_deref(), body.path.as_deref())?;
    let gh = GitHub { settings: settings(svc)? };
    let conn = active_connection(svc, m, &body.connection_id).await?;
    let tk = git_sync::tokens(svc, &gh);
    let branches = git_sync::call(&tk, &conn, |t| {
        let gh = &gh;
        let repo = body.repo.clone();
        async move { gh.branches(svc.http, &t, &repo).await }
    })
    .await
    .map_err(|s| stop_error(s.outcome, s.message))?;
    let mut out = TestResult { account: conn.account.clone(), branch_found: None, file: None, branches };
    let Some(branch) = body.branch else { return Response::ok(&out) };
    out.branch_found = Some(out.branches.contains(&branch));
    let (Some(path), Some(true)) = (body.path, out.branch_found) else { return Response::ok(&out) };
    let head = git_sync::call(&tk, &conn, |t| {
        let (gh, repo, branch) = (&gh, body.repo.clone(), branch.clone());
        async move { gh.head(svc.http, &t, &repo, &branch, None).await }
    })
    .await
    .map_err(|s| stop_error(s.outcome, s.message))?;
    let HeadCheck::Now(head) = head else { return Response::ok(&out) };
    let trial = new_source(m, svc.now_ms, String::new(), &conn.id, (body.repo.clone(), branch, path));
    let mut check = FileCheck {
        ok: false,
        title: None,
        version: None,
        tool_count: 0,
        warning_count: 0,
        error: None,
        commit: Some(head.sha.clone()),
    };
    match git_sync::document(&tk, &conn, &trial, &head.sha).await {
        Err(s) if s.outcome == git_sync::Outcome::Failed => check.error = Some(s.message),
        Err(s) => return Err(stop_error(s.outcome, s.message)),
        Ok(bytes) => match crate::tools::import(&bytes) {
            Ok(report) => {
                check.ok = true;
                check.title = Some(report.title.clone());
                check.version = Some(report.version.clone());
                check.tool_count = report.tools.len() as u64;
                check.warning_count = report.problems.len() as u64;
            }
            Err(e) => check.error = Some(format!("The document cannot be imported: {e}")),
        },
    }
    out.file = Some(check);
    Response::ok(&out)
}

/// An app's source as members see it (no secret).
#[derive(Serialize, JsonSchema)]
pub struct SourceView {
    pub id: String,
    pub app_id: String,
    pub connection_id: Option<String>,
    pub repo: String,
    pub branch: String,
    pub path: String,
    /// Publish the servers on the air after a sync whose verification passes.
    pub auto_publish: bool,
    /// Where the provider delivers pushes (HMAC-signed with the source's secret).
    pub webhook_url: String,
    /// Whether FlowCP created the webhook (`false`: add it by hand, or rely on the 5-minute poll).
    pub webhook_created: bool,
    pub status: SyncStatus,
    pub message: Option<String>,
    /// The commit last synced (or found unchanged).
    pub last_sha: Option<String>,
    pub checked_at: Option<i64>,
    /// The last sync's report.
    pub last_sync: Option<SyncReport>,
    pub created_by: String,
    pub created_at: i64,
}

fn view(origin: &str, s: &Source) -> SourceView {
    SourceView {
        id: s.id.clone(),
        app_id: s.app_id.clone(),
        connection_id: s.connection_id.clone(),
        repo: s.repo.clone(),
        branch: s.branch.clone(),
        path: s.path.clone(),
        auto_publish: s.auto_publish,
        webhook_url: format!("{origin}{WEBHOOK_PREFIX}{}", s.id),
        webhook_created: s.hook_id.is_some(),
        status: s.status,
        message: s.message.clone(),
        last_sha: s.last_sha.clone(),
        checked_at: s.checked_at,
        last_sync: s.report_json.as_deref().and_then(|r| serde_json::from_str(r).ok()),
        created_by: s.created_by.clone(),
        created_at: s.created_at,
    }
}

async fn load_source<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    app_id: &str,
) -> Result<Source, ApiError> {
    apps_store::get_app(svc.db, &m.workspace_id, app_id).await?.ok_or_else(ApiError::not_found)?;
    store::source_of_app(svc.db, &m.workspace_id, app_id).await?.ok_or_else(ApiError::not_found)
}

pub async fn get_source<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    app_id: &str,
) -> Result<Response, ApiError> {
    let src = load_source(svc, m, app_id).await?;
    Response::ok(&view(svc.link_origin.as_deref().unwrap_or(&svc.origin), &src))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "connection_id": "gitc_1", "repo": "octo/pets", "branch": "main", "path": "openapi.yaml", "auto_publish": true }))]
pub struct SourceBody {
    connection_id: String,
    /// `owner/name`.
    repo: String,
    branch: String,
    /// The document's path in the repository (JSON or YAML; `$ref`s to other files of the
    /// repository are followed).
    path: String,
    /// Publish the servers on the air after a sync whose verification passes (default false).
    #[serde(default)]
    auto_publish: bool,
}

/// The source as set, and its first sync.
#[derive(Serialize, JsonSchema)]
pub struct SourceSet {
    pub source: SourceView,
    /// Shown once, only when FlowCP could not create the webhook: add a webhook at the
    /// repository with `webhook_url`, content type JSON, the push event and this secret.
    pub webhook_secret: Option<String>,
    pub sync: SyncReport,
}

/// `PUT .../apps/{app}/source`: the app follows a document in Git (replacing what it followed).
pub async fn put_source<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
    app_id: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let body: SourceBody = req.json(limits::API_JSON)?;
    source_fields(&body.repo, Some(&body.branch), Some(&body.path))?;
    apps_store::get_app(svc.db, &m.workspace_id, app_id).await?.ok_or_else(ApiError::not_found)?;
    let settings = settings(svc)?;
    let origin = public_origin(svc)?.to_string();
    let conn = active_connection(svc, m, &body.connection_id).await?;
    let gh = GitHub { settings };
    let tk = git_sync::tokens(svc, &gh);
    // The branch must exist now (a typo is caught here, not at the first poll).
    git_sync::call(&tk, &conn, |t| {
        let (gh, repo, branch) = (&gh, body.repo.clone(), body.branch.clone());
        async move { gh.head(svc.http, &t, &repo, &branch, None).await }
    })
    .await
    .map_err(|s| stop_error(s.outcome, s.message))?;
    if let Some(old) = store::source_of_app(svc.db, &m.workspace_id, app_id).await? {
        if let Ok(old_conn) = git_sync::connection_of(svc.db, &old).await {
            remove_hook(svc, settings, &old_conn, &old).await;
        }
    }
    let id = random_id("gsrc_")?;
    let secret = hex::encode(crate::crypto::random_bytes::<32>()?);
    let src = Source {
        app_id: app_id.to_string(),
        auto_publish: body.auto_publish,
        webhook_secret_sealed: svc.secrets.keyring.seal(secret.as_bytes(), &hook_secret_aad(&m.workspace_id, &id))?,
        ..new_source(m, svc.now_ms, id.clone(), &conn.id, (body.repo, body.branch, body.path))
    };
    store::put_source(svc.db, &src).await?;
    let url = format!("{origin}{WEBHOOK_PREFIX}{id}");
    let hook = git_sync::call(&tk, &conn, |t| {
        let (gh, repo, url, secret) = (&gh, src.repo.clone(), url.clone(), secret.clone());
        async move { gh.create_hook(svc.http, &t, &repo, &url, &secret).await }
    })
    .await
    .ok();
    store::set_hook(svc.db, &id, hook.as_deref()).await?;
    let src = Source { hook_id: hook.clone(), ..src };
    let sync = git_sync::sync(svc, &src, Trigger::Setup).await?;
    let src = store::source_by_id(svc.db, &id).await?.ok_or_else(ApiError::not_found)?;
    Response::ok(&SourceSet { source: view(&origin, &src), webhook_secret: hook.is_none().then_some(secret), sync })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "auto_publish": true }))]
pub struct UpdateSourceBody {
    auto_publish: bool,
}

/// `PATCH .../apps/{app}/source`: turn auto-publish on or off.
pub async fn update_source<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
    app_id: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let body: UpdateSourceBody = req.json(limits::API_JSON)?;
    load_source(svc, m, app_id).await?;
    store::set_auto_publish(svc.db, &m.workspace_id, app_id, body.auto_publish, svc.now_ms).await?;
    get_source(svc, m, app_id).await
}

/// `DELETE .../apps/{app}/source`: the app stops following Git (its tools and imports stay).
pub async fn delete_source<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    app_id: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let src = load_source(svc, m, app_id).await?;
    if let (Some(settings), Ok(conn)) = (svc.git, git_sync::connection_of(svc.db, &src).await) {
        remove_hook(svc, settings, &conn, &src).await;
    }
    store::delete_source(svc.db, &m.workspace_id, app_id).await?;
    Ok(Response::no_content())
}

/// `POST .../apps/{app}/source/sync`: sync now (it may publish: an admin's act).
pub async fn sync_now<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    app_id: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let src = load_source(svc, m, app_id).await?;
    Response::ok(&git_sync::sync(svc, &src, Trigger::Manual).await?)
}

// TODO(issue 17): no per-address rate limit on /git/* (a forged delivery costs a body read of at
// most MAX_DELIVERY and one D1 read before its signature is refused).
/// `POST /git/webhooks/{source}`: a provider's delivery. The answer, and the source to sync
/// when it is a push to the followed branch (the caller syncs after answering: providers wait
/// only about 10 s).
pub async fn webhook<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    source_id: &str,
) -> Result<(Response, Option<Source>), ApiError> {
    let answer = |status: u16, what: &str| Response::json(status, serde_json::json!({ "status": what }));
    if req.method != "POST" {
        return Err(ApiError::method_not_allowed());
    }
    if !crate::vocab::is_plain_id(source_id, 64) {
        return Err(ApiError::not_found());
    }
    let src = store::source_by_id(svc.db, source_id).await?.ok_or_else(ApiError::not_found)?;
    let secret = svc.secrets.keyring.open(&src.webhook_secret_sealed, &hook_secret_aad(&src.workspace_id, &src.id))?;
    // Every provider is GitHub today; the source's connection will name it when there are more.
    let delivery = match svc.git {
        Some(settings) => GitHub { settings }.delivery(&req.headers, &req.body, &secret),
        None => return Ok((answer(503, "the Git integration is off"), None)),
    };
    let delivery = match delivery {
        Ok(d) => d,
        Err(DeliveryError::BadSignature) => {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "The delivery's signature does not match this webhook's secret.",
            ))
        }
        Err(DeliveryError::Malformed) => return Err(ApiError::bad_request("The delivery is not one GitHub sends.")),
    };
    if !store::record_delivery(svc.db, &src.id, &delivery.id, svc.now_ms).await? {
        return Ok((answer(200, "duplicate delivery: ignored"), None));
    }
    match delivery.event {
        Event::Ping => Ok((answer(200, "pong"), None)),
        Event::Push { repo, branch }
            if repo.eq_ignore_ascii_case(&src.repo) && branch.as_deref() == Some(src.branch.as_str()) =>
        {
            Ok((answer(202, "sync started"), Some(src)))
        }
        Event::Push { .. } => Ok((answer(202, "another branch or repository: ignored"), None)),
        Event::Other(_) => Ok((answer(202, "event ignored"), None)),
    }
}

/// The `/git/` paths outside the API: the OAuth callback and webhook deliveries.
pub async fn public<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
) -> Result<(Response, Option<Source>), ApiError> {
    if req.path == CALLBACK_PATH {
        if req.method != "GET" {
            return Err(ApiError::method_not_allowed());
        }
        return Ok((callback(svc, req).await, None));
    }
    match req.path.strip_prefix(WEBHOOK_PREFIX) {
        Some(id) => webhook(svc, req, id).await,
        None => Err(ApiError::not_found()),
    }
}
