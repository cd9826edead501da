//! Who is calling: the signed-in user behind a request (session cookie, CSRF), or a grant to
//! one workspace (FlowCP's own MCP server), and their membership of the workspace a route names.
//! Every session and workspace route passes here first (`api::handle_as`); non-members, and a
//! grant naming another workspace, get the same 404 as a workspace that does not exist.

use super::{Request, Services};
use crate::auth::session;
use crate::error::{ApiError, ErrorCode};
use crate::net::Http;
use crate::store::workspaces::Workspace;
use crate::store::{sessions, users, workspaces, Db, Kv};
use crate::vocab::Role;

/// The signed-in user behind a request.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    pub id_hash: String,
    /// Whether the account proved it owns `email`.
    pub email_verified: bool,
    /// SHA-256 of the session's CSRF token (which session secret made it tells `GET /me`
    /// which token to hand back during a rotation). Empty for a grant.
    pub csrf_hash: String,
    /// A grant's one workspace: no other is visible or reachable.
    pub only_workspace: Option<String>,
}

impl SessionUser {
    /// Whether this caller is a workspace grant (no browser session, no CSRF token).
    pub fn is_grant(&self) -> bool {
        self.only_workspace.is_some()
    }
}

/// The workspaces the caller may see: its memberships (verified rules apply), and for a grant
/// only its workspace.
pub async fn visible_workspaces<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    s: &SessionUser,
) -> Result<Vec<Workspace>, ApiError> {
    let all = workspaces::list_visible(svc.db, &s.user_id, s.email_verified).await?;
    Ok(match &s.only_workspace {
        Some(ws) => all.into_iter().filter(|w| &w.id == ws).collect(),
        None => all,
    })
}

/// The caller of a grant: its account as it is now, bound to `workspace_id` (a deleted account,
/// or one no longer a member there, is unauthenticated). No CSRF applies: a grant is presented
/// as a bearer token, never a cookie.
pub async fn grant_user<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    user_id: &str,
    workspace_id: &str,
) -> Result<SessionUser, ApiError> {
    let gone =
        || ApiError::new(ErrorCode::Unauthenticated, "This connection no longer reaches its workspace; connect again.");
    let user = users::find_by_id(svc.db, user_id).await?.ok_or_else(gone)?;
    let email_verified = user.email_verified();
    // A grant lives only as long as the membership it was given for (checked on every call,
    // so a removed member's connection is dead for every route, `me` included).
    workspaces::get_for_user(svc.db, &user.id, workspace_id, email_verified).await?.ok_or_else(gone)?;
    Ok(SessionUser {
        user_id: user.id,
        email: user.email,
        display_name: user.display_name,
        id_hash: String::new(),
        email_verified,
        csrf_hash: String::new(),
        only_workspace: Some(workspace_id.to_string()),
    })
}

fn is_safe_method(m: &str) -> bool {
    matches!(m, "GET" | "HEAD" | "OPTIONS")
}

/// Finds the live session of the request's cookie and checks CSRF for state-changing methods.
pub async fn require_session<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
) -> Result<SessionUser, ApiError> {
    find_session(svc, req, true).await
}

/// The live session of the request's cookie, for a server-rendered page whose form carries its
/// own proof of origin (the OAuth consent page's sealed ticket bound to a cookie nonce): no
/// `X-CSRF-Token` header is asked for.
pub async fn signed_in_user<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
) -> Result<SessionUser, ApiError> {
    find_session(svc, req, false).await
}

async fn find_session<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    check_csrf: bool,
) -> Result<SessionUser, ApiError> {
    let unauthenticated = || ApiError::new(ErrorCode::Unauthenticated, "Log in to continue.");
    let cookie = req.header("cookie").ok_or_else(unauthenticated)?;
    // The current session secret, then the one being rotated out.
    let id_hash = svc
        .secrets
        .session_secrets()
        .find_map(|secret| session::session_id_hash_from_cookie_header(cookie, secret))
        .ok_or_else(unauthenticated)?;
    let (rec, user) = sessions::find_live(svc.db, &id_hash, svc.now_ms).await?.ok_or_else(unauthenticated)?;
    if check_csrf && !is_safe_method(&req.method) && !session::csrf_ok(req.header("x-csrf-token"), &rec.csrf_hash) {
        return Err(ApiError::new(
            ErrorCode::CsrfFailed,
            "The X-CSRF-Token header is missing or wrong; reload and try again.",
        ));
    }
    sessions::touch(svc.db, &id_hash, svc.now_ms).await?;
    let email_verified = user.email_verified();
    Ok(SessionUser {
        user_id: user.id,
        email: user.email,
        display_name: user.display_name,
        id_hash,
        email_verified,
        csrf_hash: rec.csrf_hash,
        only_workspace: None,
    })
}

/// The caller's membership of the workspace a route names.
#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: String,
    pub workspace_id: String,
    pub role: Role,
    /// Whether the member's account proved it owns its address.
    pub email_verified: bool,
}

impl Member {
    pub fn can_admin(&self) -> bool {
        self.role.can_admin()
    }

    /// Owners and admins manage what touches credentials and what is on the air (server auth,
    /// credentials, access keys, publishing, secrets, deletions); members import and curate.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.can_admin() {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::Forbidden, "Only workspace owners and admins can do this."))
        }
    }

    /// What reaches beyond the workspace (access keys, publishing, invitations) needs an
    /// address the account has proved it owns.
    pub fn require_verified(&self) -> Result<(), ApiError> {
        require_verified(self.email_verified)
    }
}

/// `403 email_unverified` unless `verified`.
pub fn require_verified(verified: bool) -> Result<(), ApiError> {
    if verified {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::EmailUnverified,
            "Verify your email address first: open the link FlowCP sent you (POST /api/v1/me/verification sends a new one).",
        ))
    }
}

pub async fn require_member<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    s: &SessionUser,
    ws: &str,
) -> Result<Member, ApiError> {
    if s.only_workspace.as_deref().is_some_and(|only| only != ws) {
        return Err(ApiError::not_found());
    }
    match workspaces::get_for_user(svc.db, &s.user_id, ws, s.email_verified).await? {
        Some(w) => Ok(Member {
            user_id: s.user_id.clone(),
            workspace_id: w.id,
            role: w.role,
            email_verified: s.email_verified,
        }),
        None => Err(ApiError::not_found()),
    }
}
