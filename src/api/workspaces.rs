//! Workspaces and members. `require_member` is the isolation check every workspace-scoped route
//! passes through: non-members get the same 404 as a workspace that does not exist.

use schemars::JsonSchema;
use serde::Deserialize;

use super::context::{Member, SessionUser};
use super::input::clean_name;
use super::views::{Items, MemberRole};
use super::{Request, Response, Services};
use crate::crypto::random_id;
use crate::error::{limits, ApiError, ErrorCode};
use crate::net::Http;
use crate::service::members as rules;
use crate::store::{users, workspaces, Db, Kv};
use crate::vocab::Role;

pub async fn list<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, s: &SessionUser) -> Result<Response, ApiError> {
    let items = workspaces::list_for_user(svc.db, &s.user_id).await?;
    Response::ok(&Items { items })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "CreateWorkspaceBody")]
pub struct CreateBody {
    name: String,
}

pub async fn create<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    s: &SessionUser,
) -> Result<Response, ApiError> {
    let body: CreateBody = req.json(limits::API_JSON)?;
    let name = clean_name(&body.name, "workspace name")?;
    let id = random_id("ws_")?;
    workspaces::create(svc.db, &id, &name, &s.user_id, svc.now_ms).await?;
    Response::created(&workspaces::Workspace { id, name, role: Role::Owner, created_at: svc.now_ms })
}

pub async fn get<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, m: &Member) -> Result<Response, ApiError> {
    let w = workspaces::get_for_user(svc.db, &m.user_id, &m.workspace_id).await?.ok_or_else(ApiError::not_found)?;
    Response::ok(&w)
}

pub async fn members<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, m: &Member) -> Result<Response, ApiError> {
    Response::ok(&Items { items: workspaces::members(svc.db, &m.workspace_id).await? })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "email": "ada@example.com", "role": "member" }))]
pub struct AddMemberBody {
    /// The email of an existing account.
    email: String,
    #[schemars(with = "Role")]
    role: String,
}

pub async fn add_member<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
) -> Result<Response, ApiError> {
    let body: AddMemberBody = req.json(limits::API_JSON)?;
    let role = rules::may_add(m.role, Role::parse(&body.role))?;
    // Adding requires an existing account; the answer for an unknown email is a plain 404 on the
    // user, which a workspace admin may learn (they are inviting by email on purpose).
    let user = users::find_by_email(svc.db, &body.email)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::UserNotFound, "No account uses this email address."))?;
    if !workspaces::add_member(svc.db, &m.workspace_id, &user.id, role, svc.now_ms).await? {
        return Err(ApiError::new(ErrorCode::AlreadyMember, "This user is already a member."));
    }
    Response::created(&MemberRole { user_id: user.id, role })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    #[schemars(with = "Role")]
    role: String,
}

/// Owners change roles; a workspace always keeps at least one owner.
pub async fn update_member<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
    user_id: &str,
) -> Result<Response, ApiError> {
    let body: RoleBody = req.json(limits::API_JSON)?;
    if m.role != Role::Owner {
        return Err(ApiError::new(ErrorCode::Forbidden, "Only owners can change roles."));
    }
    let new = Role::parse(&body.role)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidRole, "The role must be owner, admin or member."))?;
    let members = workspaces::members(svc.db, &m.workspace_id).await?;
    let target = members.iter().find(|x| x.user_id == user_id).ok_or_else(ApiError::not_found)?;
    let owners = members.iter().filter(|x| x.role == Role::Owner).count();
    rules::may_change_role(m.role, target.role, new, owners)?;
    workspaces::set_role(svc.db, &m.workspace_id, user_id, new).await?;
    Response::ok(&MemberRole { user_id: user_id.to_string(), role: new })
}

/// Owners and admins remove members (admins cannot remove owners); anyone may leave, except
/// the last owner.
pub async fn remove_member<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    user_id: &str,
) -> Result<Response, ApiError> {
    let members = workspaces::members(svc.db, &m.workspace_id).await?;
    let target = members.iter().find(|x| x.user_id == user_id).ok_or_else(ApiError::not_found)?;
    let owners = members.iter().filter(|x| x.role == Role::Owner).count();
    rules::may_remove(m.role, user_id == m.user_id, target.role, owners)?;
    rules::remove_and_revoke_keys(svc.db, svc.kv, &m.workspace_id, user_id, svc.now_ms).await?;
    Ok(Response::no_content())
}
