//! Workspaces, members and invitations. `require_member` is the isolation check every workspace-scoped route
//! passes through: non-members get the same 404 as a workspace that does not exist.

use schemars::JsonSchema;
use serde::Deserialize;

use super::accounts::{send_mail, TokenBody};
use super::context::{Member, SessionUser};
use super::input::{clean_name, valid_email};
use super::views::{Items, MemberRole};
use super::{Request, Response, Services};
use crate::auth::throttle;
use crate::crypto::{random_id, random_token, sha256_hex};
use crate::error::{limits, ApiError, ErrorCode};
use crate::mail;
use crate::net::Http;
use crate::service::members as rules;
use crate::store::invitations::{self, Invitation};
use crate::store::{users, workspaces, Db, Kv};
use crate::vocab::Role;

pub async fn list<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, s: &SessionUser) -> Result<Response, ApiError> {
    let items = super::context::visible_workspaces(svc, s).await?;
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
    // Under plans, every workspace has its own quotas: an account makes a bounded number of them.
    if svc.default_plan.is_some() {
        let made = crate::store::usage::workspaces_created_by(svc.db, &s.user_id).await?;
        if made >= crate::plans::MAX_WORKSPACES_PER_ACCOUNT {
            return Err(ApiError::new(
                ErrorCode::PlanLimit,
                format!(
                    "An account can own at most {} workspaces on this deployment; delete one or ask its operator.",
                    crate::plans::MAX_WORKSPACES_PER_ACCOUNT
                ),
            ));
        }
    }
    let id = random_id("ws_")?;
    workspaces::create(svc.db, &id, &name, &s.user_id, svc.now_ms).await?;
    Response::created(&workspaces::Workspace {
        id,
        name,
        role: Role::Owner,
        created_at: svc.now_ms,
        audit_retention_days: 30,
    })
}

pub async fn get<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, m: &Member) -> Result<Response, ApiError> {
    let w = workspaces::get_for_user(svc.db, &m.user_id, &m.workspace_id, m.email_verified)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Response::ok(&w)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "audit_retention_days": 90 }))]
pub struct UpdateWorkspaceBody {
    name: Option<String>,
    /// How long the audit log (the usage log) keeps a call: 7 to 90 days (30 by default).
    audit_retention_days: Option<i64>,
}

/// `PATCH /workspaces/{ws}`: the name (owners and admins) and the audit retention (owners: a
/// shorter retention deletes older rows at the next hourly run, for good).
pub async fn update<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let body: UpdateWorkspaceBody = req.json(limits::API_JSON)?;
    if body.audit_retention_days.is_some() && m.role != crate::vocab::Role::Owner {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "Only an owner of the workspace sets how long its calls are kept.",
        ));
    }
    let name = body.name.as_deref().map(|n| clean_name(n, "workspace name")).transpose()?;
    if let Some(d) = body.audit_retention_days {
        if !(7..=90).contains(&d) {
            return Err(ApiError::bad_request("audit_retention_days must be 7 to 90."));
        }
    }
    workspaces::update(svc.db, &m.workspace_id, name.as_deref(), body.audit_retention_days).await?;
    get(svc, m).await
}

/// A workspace's plan and this month's use of it (issue 16, `crate::plans`).
#[derive(serde::Serialize, JsonSchema)]
pub struct PlanView {
    /// `null`: unmetered (no plan of its own and no deployment default): no limits.
    pub plan: Option<crate::vocab::Plan>,
    /// The plan is the deployment's default, not one set for this workspace.
    pub default: bool,
    /// `null` when unmetered.
    pub limits: Option<crate::plans::Limits>,
    /// The month counted (`YYYY-MM`, UTC) and the day its quotas reset.
    pub month: String,
    pub resets_on: String,
    /// Servers the workspace has.
    pub servers: i64,
    /// Calls each server made this month (servers without calls are left out).
    pub usage: Vec<ServerCalls>,
}

#[derive(serde::Serialize, JsonSchema)]
pub struct ServerCalls {
    pub server_id: String,
    pub calls: i64,
}

/// `GET /workspaces/{ws}/plan`: every member sees the plan and its use.
pub async fn plan<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, m: &Member) -> Result<Response, ApiError> {
    Response::ok(
        &plan_view(svc.db, &m.workspace_id, svc.default_plan, svc.now_ms).await?.ok_or_else(ApiError::not_found)?,
    )
}

/// The plan view of a workspace (`None`: no such workspace), for members and the operator.
pub async fn plan_view(
    db: &impl Db,
    ws: &str,
    default_plan: Option<crate::vocab::Plan>,
    now_ms: i64,
) -> Result<Option<PlanView>, ApiError> {
    let Some((own, overrides)) = crate::store::usage::plan_of(db, ws).await? else { return Ok(None) };
    let effective = crate::plans::effective(own, overrides.as_deref(), default_plan);
    let month = crate::plans::month_of(now_ms);
    let usage = crate::store::usage::server_totals(db, ws, &month)
        .await?
        .into_iter()
        .map(|(server_id, calls)| ServerCalls { server_id, calls })
        .collect();
    Ok(Some(PlanView {
        plan: effective.plan,
        default: effective.default,
        limits: effective.limits,
        resets_on: crate::plans::resets_on(&month),
        month,
        servers: crate::store::usage::server_count(db, ws).await?,
        usage,
    }))
}

/// The operator's `PUT /ops/plan?workspace=<id>` body: a plan (`null`: the deployment's
/// default) and overrides of single limits (a custom contract; they need a plan of its own).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPlanBody {
    /// Required: a plan, or `null` for the deployment's default.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schemars(with = "Option<crate::vocab::Plan>")]
    plan: Option<Option<String>>,
    #[serde(default)]
    limits: Option<crate::plans::LimitOverrides>,
}

/// Sets a workspace's plan (the operator's `/ops/plan`; billing is out of scope). `Ok(None)`: no
/// such workspace.
pub async fn set_plan(
    db: &impl Db,
    ws: &str,
    body: &[u8],
    default_plan: Option<crate::vocab::Plan>,
    now_ms: i64,
) -> Result<Option<PlanView>, ApiError> {
    let body: SetPlanBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("The request body is not valid: {e}.")))?;
    let Some(plan) = body.plan else {
        return Err(ApiError::bad_request("plan is required: free, pro, team, or null for the deployment's default."));
    };
    let plan = match plan.as_deref() {
        None => None,
        Some(p) => Some(
            crate::vocab::Plan::parse(p)
                .ok_or_else(|| ApiError::bad_request("plan must be free, pro, team or null."))?,
        ),
    };
    let limits = body.limits.filter(|l| !l.is_empty());
    if let Some(l) = &limits {
        l.check().map_err(ApiError::bad_request)?;
        if plan.is_none() {
            return Err(ApiError::bad_request("limits need a plan of the workspace's own."));
        }
    }
    let overrides =
        limits.map(|l| serde_json::to_string(&l)).transpose().map_err(|e| ApiError::internal(e.to_string()))?;
    if !crate::store::usage::set_plan(db, ws, plan, overrides.as_deref()).await? {
        return Ok(None);
    }
    plan_view(db, ws, default_plan, now_ms).await
}

pub async fn members<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, m: &Member) -> Result<Response, ApiError> {
    Response::ok(&Items { items: workspaces::members(svc.db, &m.workspace_id).await? })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "email": "ada@example.com", "role": "member" }))]
pub struct InviteBody {
    /// The address to invite; it need not have an account yet.
    email: String,
    /// `member`, or `admin` (owners only).
    #[schemars(with = "Role")]
    role: String,
}

/// How long an invitation link works.
pub const INVITATION_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Invites an address (owners and admins with a verified address). The answer is the same
/// whether or not an account uses the address, and nothing links anyone to the workspace until
/// the invitee accepts (`accept_invitation`). Inviting the same address again replaces the
/// pending invitation. Throttled per inviter and per workspace.
pub async fn invite<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
) -> Result<Response, ApiError> {
    let body: InviteBody = req.json(limits::API_JSON)?;
    let role = rules::may_add(m.role, Role::parse(&body.role))?;
    m.require_verified()?;
    let email = body.email.trim().to_string();
    if !valid_email(&email) {
        return Err(ApiError::new(ErrorCode::InvalidEmail, "Enter a valid email address."));
    }
    let per_inviter =
        throttle::LoginKeys::counter(&format!("invite-by:{}", m.user_id), throttle::Policy::INVITES_PER_INVITER);
    let per_workspace =
        throttle::LoginKeys::counter(&format!("invite-in:{}", m.workspace_id), throttle::Policy::INVITES_PER_WORKSPACE);
    // Per recipient and workspace too: one workspace cannot make FlowCP mail an address without
    // end, and nobody can use up another workspace's chance to invite that address.
    let per_recipient = throttle::LoginKeys::mail_to(&format!("invite:{}", m.workspace_id), &email, None);
    for keys in [&per_inviter, &per_workspace, &per_recipient] {
        throttle::reserve(svc.db, keys, svc.now_ms).await?.into_result()?;
    }
    // Members (and their addresses) are visible to every member already, so this says nothing new.
    let current = workspaces::members(svc.db, &m.workspace_id).await?;
    if current.iter().any(|x| x.email.eq_ignore_ascii_case(&email)) {
        return Err(ApiError::new(ErrorCode::AlreadyMember, "Someone with this address is a member already."));
    }
    let ws = workspaces::get_for_user(svc.db, &m.user_id, &m.workspace_id, m.email_verified)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let inviter = users::find_by_id(svc.db, &m.user_id).await?.ok_or_else(ApiError::not_found)?;
    let id = random_id("inv_")?;
    let token = random_token("")?;
    let new = invitations::NewInvitation {
        id: &id,
        workspace_id: &m.workspace_id,
        email: &email,
        role,
        token_hash: &sha256_hex(token.as_bytes()),
        invited_by: &m.user_id,
        expires_at: svc.now_ms + INVITATION_TTL_MS,
    };
    invitations::upsert(svc.db, &new, svc.now_ms).await?;
    let expires_at = new.expires_at;
    let inviter_name = format!("{} ({})", inviter.display_name, inviter.email);
    let message = mail::invitation(svc.link_origin()?, &email, &token, &inviter_name, &ws.name, role.as_str());
    if let Err(e) = send_mail(svc, &message).await {
        // An invitation nobody received is not left pending.
        invitations::withdraw(svc.db, &m.workspace_id, &id).await?;
        return Err(e);
    }
    let view = Invitation { id, email, role, invited_by: Some(m.user_id.clone()), created_at: svc.now_ms, expires_at };
    Response::view(202, &view)
}

/// Pending invitations (owners and admins).
pub async fn invitations<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, m: &Member) -> Result<Response, ApiError> {
    m.require_admin()?;
    Response::ok(&Items { items: invitations::list_pending(svc.db, &m.workspace_id, svc.now_ms).await? })
}

/// Withdraws a pending invitation (owners and admins): its link stops working at once.
pub async fn withdraw_invitation<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    if !invitations::withdraw(svc.db, &m.workspace_id, id).await? {
        return Err(ApiError::not_found());
    }
    Ok(Response::no_content())
}

/// Accepts an invitation: the signed-in account must have verified the very address that was
/// invited. Any other case (unknown, expired, withdrawn or used link, another address) answers
/// the same 404 and leaves the invitation as it was.
pub async fn accept_invitation<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    s: &SessionUser,
) -> Result<Response, ApiError> {
    let body: TokenBody = req.json(limits::API_JSON)?;
    super::context::require_verified(s.email_verified)?;
    let invalid = || {
        ApiError::new(
            ErrorCode::LinkInvalid,
            "This invitation is not valid for this account: it may have expired, been withdrawn or used, or be for another address.",
        )
    };
    let pending = invitations::find_live_by_token(svc.db, &sha256_hex(body.token.trim().as_bytes()), svc.now_ms)
        .await?
        .ok_or_else(invalid)?;
    if !pending.email.eq_ignore_ascii_case(&s.email) {
        return Err(invalid());
    }
    if !invitations::accept(svc.db, &pending.id, &s.user_id, svc.now_ms).await? {
        return Err(invalid());
    }
    let ws = workspaces::get_for_user(svc.db, &s.user_id, &pending.workspace_id, true).await?.ok_or_else(invalid)?;
    Response::ok(&ws)
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
    if !new.can_admin() {
        // Invitations do not outlive the authority that sent them.
        invitations::delete_by_inviter(svc.db, &m.workspace_id, user_id).await?;
    }
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
