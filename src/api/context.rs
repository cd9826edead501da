//! Who is calling: the signed-in user behind a request (session cookie, CSRF) and their
//! membership of the workspace a route names. Every session and workspace route passes here
//! first (`api::handle`); non-members get the same 404 as a workspace that does not exist.

use super::{Request, Services};
use crate::auth::session;
use crate::error::{ApiError, ErrorCode};
use crate::net::Http;
use crate::store::{sessions, workspaces, Db, Kv};
use crate::vocab::Role;

/// The signed-in user behind a request.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    pub id_hash: String,
}

fn is_safe_method(m: &str) -> bool {
    matches!(m, "GET" | "HEAD" | "OPTIONS")
}

/// Finds the live session of the request's cookie and checks CSRF for state-changing methods.
pub async fn require_session<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
) -> Result<SessionUser, ApiError> {
    let unauthenticated = || ApiError::new(ErrorCode::Unauthenticated, "Log in to continue.");
    let cookie = req.header("cookie").ok_or_else(unauthenticated)?;
    let id_hash =
        session::session_id_hash_from_cookie_header(cookie, &svc.secrets.session_secret).ok_or_else(unauthenticated)?;
    let (rec, user) = sessions::find_live(svc.db, &id_hash, svc.now_ms).await?.ok_or_else(unauthenticated)?;
    if !is_safe_method(&req.method) && !session::csrf_ok(req.header("x-csrf-token"), &rec.csrf_hash) {
        return Err(ApiError::new(
            ErrorCode::CsrfFailed,
            "The X-CSRF-Token header is missing or wrong; reload and try again.",
        ));
    }
    sessions::touch(svc.db, &id_hash, svc.now_ms).await?;
    Ok(SessionUser { user_id: user.id, email: user.email, display_name: user.display_name, id_hash })
}

/// The caller's membership of the workspace a route names.
#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: String,
    pub workspace_id: String,
    pub role: Role,
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
}

pub async fn require_member<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    s: &SessionUser,
    ws: &str,
) -> Result<Member, ApiError> {
    match workspaces::get_for_user(svc.db, &s.user_id, ws).await? {
        Some(w) => Ok(Member { user_id: s.user_id.clone(), workspace_id: w.id, role: w.role }),
        None => Err(ApiError::not_found()),
    }
}
