//! The dashboard's JSON API (`/api/v1`) and other HTTP handlers, written against the storage
//! ports so they run on the host in tests. The glue turns a Worker request into a [`Request`],
//! calls [`handle`], and writes the [`Response`].
//!
//! Invariants: every workspace-scoped route checks membership before it reads anything, and a
//! workspace the caller is not a member of answers 404 exactly like one that does not exist;
//! every state-changing route with a session requires the CSRF token; no response carries a
//! secret value.

pub mod accounts;
pub mod apps;
pub mod context;
pub mod contract;
pub mod data;
pub mod git;
pub mod git_sync;
pub mod health;
pub mod input;
pub mod onboard;
pub mod routes;
pub mod servers;
pub mod templates;
pub mod views;
pub mod workspaces;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::Secrets;
use crate::error::{check_body_len, ApiError, ErrorCode};
use crate::net::{FetchPolicy, Http};
use crate::store::{Db, Kv};

/// A handler's answer for simple JSON routes (used by `/healthz`).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonResponse {
    pub status: u16,
    pub body: Value,
}

/// An HTTP request, already read (the glue bounds the body before it gets here).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Decoded query pairs in order.
    pub query: Vec<(String, String)>,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client address (CF-Connecting-IP), for throttling only.
    pub client_addr: Option<String>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::net::header(&self.headers, name)
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The media type of the body without parameters, lowercased.
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
    }

    /// Parses a JSON body: 415 unless `application/json`, 413 over `limit`, 400 `invalid_json`
    /// naming line and column when it does not parse or does not have the expected shape.
    pub fn json<T: DeserializeOwned>(&self, limit: usize) -> Result<T, ApiError> {
        check_body_len(self.body.len(), limit)?;
        match self.media_type().as_deref() {
            Some("application/json") => {}
            _ => return Err(ApiError::unsupported_media_type("application/json")),
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("The request body is not valid: {e}.")))
    }
}

/// For PATCH fields where `null` means "clear" and absence means "leave as it is":
/// `#[serde(default, deserialize_with = "double_option")] field: Option<Option<String>>`.
pub(crate) fn double_option<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    use serde::Deserialize;
    Option::<T>::deserialize(d).map(Some)
}

/// An HTTP response from core code.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

impl Response {
    pub fn json(status: u16, body: Value) -> Self {
        Response { status, body: Some(body), headers: Vec::new() }
    }
    /// An answer whose body is one of the typed views (`views`, or a stored row shown as is):
    /// the owner API's document is derived from the same types.
    pub fn view<T: serde::Serialize>(status: u16, body: &T) -> Result<Self, ApiError> {
        let body = serde_json::to_value(body).map_err(|e| ApiError::internal(format!("view: {e}")))?;
        Ok(Self::json(status, body))
    }
    pub fn ok<T: serde::Serialize>(body: &T) -> Result<Self, ApiError> {
        Self::view(200, body)
    }
    pub fn created<T: serde::Serialize>(body: &T) -> Result<Self, ApiError> {
        Self::view(201, body)
    }
    pub fn no_content() -> Self {
        Response { status: 204, body: None, headers: Vec::new() }
    }
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
    pub fn from_error(e: &ApiError) -> Self {
        let r = Self::json(e.status, e.body());
        match e.retry_after_s {
            Some(s) => r.with_header("retry-after", s.to_string()),
            None => r,
        }
    }
}

/// What handlers may use: the storage ports, the secrets, the clock and settings.
pub struct Services<'a, D: Db, K: Kv, H: Http> {
    pub db: &'a D,
    pub kv: &'a K,
    pub http: &'a H,
    pub fetch_policy: FetchPolicy,
    pub secrets: &'a Secrets,
    /// How email leaves (`crate::mail`).
    pub mailer: &'a crate::mail::Mailer,
    pub now_ms: i64,
    /// Milliseconds since the epoch, read when called (durations: a try-it run's latency).
    pub clock: fn() -> i64,
    /// `https://host` as clients see it (MCP URLs and client configuration are built from it).
    pub origin: String,
    /// The origin emailed links point at: the request's origin only when its host is one this
    /// deployment serves (`FLOWCP_ALLOWED_HOSTS`), so a forged `Host` cannot send someone a
    /// link to another site; `None`: no link is sent (503 `email_unavailable`).
    pub link_origin: Option<String>,
    /// `FLOWCP_DEFAULT_PLAN`: the plan of workspaces without one of their own (`None`:
    /// unmetered; `crate::plans`).
    pub default_plan: Option<crate::vocab::Plan>,
    /// The deployment's GitHub registration (`None`: the Git integration is off).
    pub git: Option<&'a crate::git::GitSettings>,
}

impl<D: Db, K: Kv, H: Http> Services<'_, D, K, H> {
    /// [`Services::link_origin`], or `503 email_unavailable`.
    pub fn link_origin(&self) -> Result<&str, ApiError> {
        self.link_origin.as_deref().ok_or_else(|| {
            ApiError::unavailable(ErrorCode::EmailUnavailable, ErrorCode::EmailUnavailable.default_message())
                .with_internal("the request's host is not in FLOWCP_ALLOWED_HOSTS: no link is emailed")
        })
    }
}

/// Handles one API request; never panics on input, never returns a 500 with backend details.
/// Finds the route, checks the session and workspace membership its access level asks for,
/// then calls the handler.
pub async fn handle<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request) -> Result<Response, ApiError> {
    handle_as(svc, req, &Principal::Cookie).await
}

/// Who a request acts for.
#[derive(Debug, Clone, Copy)]
pub enum Principal<'p> {
    /// The session cookie (the dashboard, API clients), with CSRF on state-changing methods.
    Cookie,
    /// A grant to one workspace, made in-process by FlowCP's own MCP server: the user as they are
    /// now, only `workspace_id` (any other answers 404, as if it did not exist), only `routes`
    /// (any other answers 404), roles as in the API.
    Grant { user_id: &'p str, workspace_id: &'p str, routes: &'p [routes::RouteId] },
}

/// [`handle`] for a given principal.
pub async fn handle_as<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    principal: &Principal<'_>,
) -> Result<Response, ApiError> {
    use routes::{Access, RouteId::*};
    let (route, params) = routes::find(&req.method, &req.path)?;
    let session = match (principal, route.access) {
        (Principal::Grant { routes, .. }, _) if !routes.contains(&route.id) => return Err(ApiError::not_found()),
        (Principal::Grant { .. }, Access::Public) => return Err(ApiError::not_found()),
        // The only account-level routes a grant may reach, whatever a curation says: every
        // other one (export, invitations, new workspaces, the account itself) spans or leaves
        // the grant's workspace.
        (Principal::Grant { .. }, Access::Session) if !matches!(route.id, Me | ListWorkspaces) => {
            return Err(ApiError::not_found())
        }
        (_, Access::Public) => None,
        (Principal::Cookie, Access::Session | Access::Workspace) => Some(context::require_session(svc, req).await?),
        (Principal::Grant { user_id, workspace_id, .. }, Access::Session | Access::Workspace) => {
            Some(context::grant_user(svc, user_id, workspace_id).await?)
        }
    };
    let ctx = match (&session, route.access) {
        (Some(s), Access::Workspace) => Some(context::require_member(svc, s, params.get("ws")).await?),
        _ => None,
    };
    match (route.id, session, ctx) {
        (Signup, _, _) => accounts::signup(svc, req).await,
        (Login, _, _) => accounts::login(svc, req).await,
        (Logout, Some(s), _) => accounts::logout(svc, &s).await,
        (VerifyEmail, Some(s), _) => accounts::verify_email(svc, req, &s).await,
        (RequestPasswordReset, _, _) => accounts::request_password_reset(svc, req).await,
        (ConfirmPasswordReset, _, _) => accounts::confirm_password_reset(svc, req).await,
        (ResendVerification, Some(s), _) => accounts::resend_verification(svc, req, &s).await,
        (AcceptInvitation, Some(s), _) => workspaces::accept_invitation(svc, req, &s).await,
        (Me, Some(s), _) => accounts::me(svc, &s).await,
        (ChangePassword, Some(s), _) => accounts::change_password(svc, req, &s).await,
        (UpdateMe, Some(s), _) => accounts::update_me(svc, req, &s).await,
        (ChangeEmail, Some(s), _) => accounts::change_email(svc, req, &s).await,
        (ConfirmEmail, Some(s), _) => accounts::confirm_email(svc, req, &s).await,
        (ListAgentConnections, Some(s), _) => accounts::agent_connections(svc, &s).await,
        (RevokeAgentConnection, Some(s), _) => accounts::revoke_agent_connection(svc, &s, params.get("conn")).await,
        (ListWorkspaces, Some(s), _) => workspaces::list(svc, &s).await,
        (ListTemplates, Some(s), _) => templates::list(svc, &s).await,
        (CreateWorkspace, Some(s), _) => workspaces::create(svc, req, &s).await,
        (GetWorkspace, _, Some(m)) => workspaces::get(svc, &m).await,
        (UpdateWorkspace, _, Some(m)) => workspaces::update(svc, req, &m).await,
        (GetPlan, _, Some(m)) => workspaces::plan(svc, &m).await,
        (CreateFromTemplate, _, Some(m)) => templates::create(svc, req, &m, params.get("template")).await,
        (ListMembers, _, Some(m)) => workspaces::members(svc, &m).await,
        (Invite, _, Some(m)) => workspaces::invite(svc, req, &m).await,
        (ListInvitations, _, Some(m)) => workspaces::invitations(svc, &m).await,
        (WithdrawInvitation, _, Some(m)) => workspaces::withdraw_invitation(svc, &m, params.get("inv")).await,
        (UpdateMember, _, Some(m)) => workspaces::update_member(svc, req, &m, params.get("user")).await,
        (RemoveMember, _, Some(m)) => workspaces::remove_member(svc, &m, params.get("user")).await,
        (ListApps, _, Some(m)) => apps::list(svc, req, &m).await,
        (CreateApp, _, Some(m)) => apps::create(svc, req, &m).await,
        (GetApp, _, Some(m)) => apps::get(svc, &m, params.get("app")).await,
        (UpdateApp, _, Some(m)) => apps::update(svc, req, &m, params.get("app")).await,
        (DeleteApp, _, Some(m)) => apps::delete(svc, &m, params.get("app")).await,
        (CreateImport, _, Some(m)) => apps::import(svc, req, &m, params.get("app")).await,
        (ListImports, _, Some(m)) => apps::imports(svc, &m, params.get("app")).await,
        (RestoreImport, _, Some(m)) => apps::restore(svc, &m, params.get("app"), params.get("import")).await,
        (ListGitConnections, _, Some(m)) => git::list_connections(svc, &m).await,
        (ConnectGit, _, Some(m)) => git::connect(svc, req, &m).await,
        (DisconnectGit, _, Some(m)) => git::disconnect(svc, &m, params.get("conn")).await,
        (TestGitSource, _, Some(m)) => git::test(svc, req, &m).await,
        (GetAppSource, _, Some(m)) => git::get_source(svc, &m, params.get("app")).await,
        (PutAppSource, _, Some(m)) => git::put_source(svc, req, &m, params.get("app")).await,
        (UpdateAppSource, _, Some(m)) => git::update_source(svc, req, &m, params.get("app")).await,
        (DeleteAppSource, _, Some(m)) => git::delete_source(svc, &m, params.get("app")).await,
        (SyncAppSource, _, Some(m)) => git::sync_now(svc, &m, params.get("app")).await,
        (ListTools, _, Some(m)) => apps::tools(svc, req, &m, params.get("app")).await,
        (UpdateTool, _, Some(m)) => apps::update_tool(svc, req, &m, params.get("app"), params.get("tool")).await,
        (BulkUpdateTools, _, Some(m)) => apps::bulk_tools(svc, req, &m, params.get("app")).await,
        (ListServers, _, Some(m)) => servers::list(svc, &m).await,
        (CreateServer, _, Some(m)) => servers::create(svc, req, &m).await,
        (GetServer, _, Some(m)) => servers::get(svc, &m, params.get("srv")).await,
        (UpdateServer, _, Some(m)) => servers::update(svc, req, &m, params.get("srv")).await,
        (DeleteServer, _, Some(m)) => servers::delete(svc, &m, params.get("srv")).await,
        (PutCredential, _, Some(m)) => servers::put_credential(svc, req, &m, params.get("srv")).await,
        (DeleteCredential, _, Some(m)) => servers::delete_credential(svc, &m, params.get("srv")).await,
        (CreateKey, _, Some(m)) => servers::create_key(svc, req, &m, params.get("srv")).await,
        (ListKeys, _, Some(m)) => servers::list_keys(svc, &m, params.get("srv")).await,
        (RevokeKey, _, Some(m)) => servers::revoke_key(svc, &m, params.get("srv"), params.get("key")).await,
        (ListConnections, _, Some(m)) => servers::list_connections(svc, &m, params.get("srv")).await,
        (RevokeConnection, _, Some(m)) => {
            servers::revoke_connection(svc, &m, params.get("srv"), params.get("conn")).await
        }
        (ListKeyUsers, _, Some(m)) => servers::list_key_users(svc, &m, params.get("srv")).await,
        (RevokeKeyUser, _, Some(m)) => servers::revoke_key_user(svc, &m, params.get("srv"), params.get("user")).await,
        (Verify, _, Some(m)) => servers::verify(svc, &m, params.get("srv")).await,
        (Publish, _, Some(m)) => servers::publish(svc, &m, params.get("srv")).await,
        (Unpublish, _, Some(m)) => servers::unpublish(svc, &m, params.get("srv")).await,
        (ListVersions, _, Some(m)) => servers::versions(svc, &m, params.get("srv")).await,
        (TryTool, _, Some(m)) => servers::try_tool(svc, req, &m, params.get("srv")).await,
        (Onboard, _, Some(m)) => onboard::onboard(svc, req, &m).await,
        (ListSecrets, _, Some(m)) => data::list_secrets(svc, &m).await,
        (PutSecret, _, Some(m)) => data::put_secret(svc, req, &m, params.get("name")).await,
        (DeleteSecret, _, Some(m)) => data::delete_secret(svc, &m, params.get("name")).await,
        (ListAudit, _, Some(m)) => data::list_audit(svc, req, &m).await,
        (Activity, _, Some(m)) => data::activity(svc, req, &m).await,
        (DeleteWorkspace, _, Some(m)) => data::delete_workspace(svc, &m).await,
        (DeleteAccount, Some(s), _) => data::delete_account(svc, req, &s).await,
        (Export, Some(s), _) => data::export(svc, &s).await,
        (ApiDocument, _, _) => Ok(Response::json(200, contract::openapi_document(&svc.origin))),
        // Unreachable by construction (access levels above); fail closed all the same.
        _ => Err(ApiError::not_found()),
    }
}
