//! Who may add, re-role and remove workspace members (pure: the caller reads the membership
//! list and applies the verdict), and the removal itself, which takes the member's access keys
//! with it.
//!
//! Rules: owners and admins add members; only owners add admins; nobody is added as owner
//! (ownership is given by changing a role). Only owners change roles. Owners remove anyone,
//! admins remove non-owners, and anyone may leave. A workspace always keeps one owner.

use crate::error::{ApiError, ErrorCode};
use crate::store::{invitations, servers, workspaces, Db, Kv, StoreError};
use crate::vocab::Role;

/// May `actor` add someone with `role` (`None`: a role name that is not one)? Returns the role.
pub fn may_add(actor: Role, role: Option<Role>) -> Result<Role, ApiError> {
    if !actor.can_admin() {
        return Err(ApiError::new(ErrorCode::Forbidden, "Only owners and admins can add members."));
    }
    match (role, actor) {
        (Some(r @ Role::Member), _) | (Some(r @ Role::Admin), Role::Owner) => Ok(r),
        (Some(Role::Admin), Role::Admin | Role::Member) | (Some(Role::Owner), _) | (None, _) => {
            Err(ApiError::new(ErrorCode::InvalidRole, "The role must be \"admin\" (owners only) or \"member\"."))
        }
    }
}

/// May `actor` give `target` (currently `current`) the role `new`, with `owners` owners now?
pub fn may_change_role(actor: Role, current: Role, new: Role, owners: usize) -> Result<(), ApiError> {
    if actor != Role::Owner {
        return Err(ApiError::new(ErrorCode::Forbidden, "Only owners can change roles."));
    }
    if current == Role::Owner && new != Role::Owner && owners <= 1 {
        return Err(last_owner());
    }
    Ok(())
}

/// May `actor` remove `target` (with `target_role`; `leaving` when it is the actor), with
/// `owners` owners now?
pub fn may_remove(actor: Role, leaving: bool, target_role: Role, owners: usize) -> Result<(), ApiError> {
    let allowed = leaving
        || match actor {
            Role::Owner => true,
            Role::Admin => target_role != Role::Owner,
            Role::Member => false,
        };
    if !allowed {
        return Err(ApiError::new(ErrorCode::Forbidden, "Only owners (or admins, for non-owners) can remove members."));
    }
    if target_role == Role::Owner && owners <= 1 {
        return Err(last_owner());
    }
    Ok(())
}

// TODO-security(issue 11): the last-owner check and the write are separate statements; two
// concurrent demotions can leave no owner. Fold both into one `Db::batch` with a guard.
fn last_owner() -> ApiError {
    ApiError::new(ErrorCode::LastOwner, "A workspace needs an owner; make someone else owner first.")
}

/// Removes a member and, in the same atomic write, revokes every live access key they created
/// in the workspace (they may have copied them) and every agent connection they gave it (a
/// re-invited member connects again), and withdraws the invitations they sent. The keys' KV
/// mirrors go first, so the MCP hot path stops accepting them at once: if the write then fails,
/// the keys are refused but still listed, and the same removal sent again finishes (in the
/// other order a failed mirror delete left working keys that no later call would find).
pub async fn remove_and_revoke_keys(
    db: &impl Db,
    kv: &impl Kv,
    ws: &str,
    user_id: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let hashes = servers::live_key_hashes_created_by(db, ws, user_id).await?;
    for h in &hashes {
        kv.delete(&crate::manifest::access_key_key(h)).await?;
    }
    db.batch(&[
        (workspaces::REMOVE_MEMBER, vec![ws.into(), user_id.into()]),
        (servers::REVOKE_KEYS_CREATED_BY, vec![ws.into(), user_id.into(), now_ms.into()]),
        (crate::store::connections::REVOKE_FOR_MEMBER, vec![ws.into(), user_id.into(), now_ms.into()]),
        (invitations::DELETE_BY_INVITER, vec![ws.into(), user_id.into()]),
    ])
    .await?;
    drop_mirrors_created_by(db, kv, ws, user_id, now_ms).await
}

/// Revokes every live access key a user created in a workspace (account deletion, where the
/// memberships go with the user row).
pub async fn revoke_keys_created_by(
    db: &impl Db,
    kv: &impl Kv,
    ws: &str,
    user_id: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    // Mirrors first, as in [`remove_and_revoke_keys`].
    for h in servers::live_key_hashes_created_by(db, ws, user_id).await? {
        kv.delete(&crate::manifest::access_key_key(&h)).await?;
    }
    servers::revoke_keys_created_by(db, ws, user_id, now_ms).await?;
    drop_mirrors_created_by(db, kv, ws, user_id, now_ms).await
}

/// After a departure's write: the mirrors of every key the user created in the workspace go
/// (again). A key whose row or mirror was written while the departure ran would otherwise keep
/// working (`create_key` checks its own key once its mirror is written, for the other order).
async fn drop_mirrors_created_by(
    db: &impl Db,
    kv: &impl Kv,
    ws: &str,
    user_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    for h in servers::key_hashes_created_by(db, Some(ws), user_id, now).await? {
        kv.delete(&crate::manifest::access_key_key(&h)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::{Admin, Member, Owner};

    fn code<T>(r: Result<T, ApiError>) -> &'static str {
        r.map_or_else(|e| e.code.as_str(), |_| "ok")
    }

    #[test]
    fn adding_members() {
        let table = [
            (Owner, Member, "ok"),
            (Owner, Admin, "ok"),
            (Owner, Owner, "invalid_role"),
            (Admin, Member, "ok"),
            (Admin, Admin, "invalid_role"),
            (Admin, Owner, "invalid_role"),
            (Member, Member, "forbidden"),
            (Member, Admin, "forbidden"),
        ];
        for (actor, role, want) in table {
            assert_eq!(code(may_add(actor, Some(role))), want, "{actor:?} adds {role:?}");
        }
        assert_eq!(code(may_add(Owner, None)), "invalid_role", "an unknown role name");
        assert_eq!(code(may_add(Member, None)), "forbidden", "members learn nothing about roles");
    }

    #[test]
    fn changing_roles() {
        let table = [
            (Owner, Member, Admin, 1, "ok"),
            (Owner, Admin, Owner, 1, "ok"),
            (Owner, Owner, Member, 2, "ok"),
            (Owner, Owner, Member, 1, "last_owner"),
            (Owner, Owner, Owner, 1, "ok"),
            (Admin, Member, Admin, 1, "forbidden"),
            (Member, Member, Owner, 1, "forbidden"),
        ];
        for (actor, current, new, owners, want) in table {
            assert_eq!(code(may_change_role(actor, current, new, owners)), want, "{actor:?}: {current:?} -> {new:?}");
        }
    }

    #[test]
    fn removing_members() {
        let table = [
            (Owner, false, Member, 1, "ok"),
            (Owner, false, Owner, 2, "ok"),
            (Owner, false, Owner, 1, "last_owner"),
            (Owner, true, Owner, 1, "last_owner"),
            (Admin, false, Member, 1, "ok"),
            (Admin, false, Admin, 1, "ok"),
            (Admin, false, Owner, 2, "forbidden"),
            (Member, false, Member, 1, "forbidden"),
            (Member, true, Member, 1, "ok"),
            (Admin, true, Admin, 1, "ok"),
        ];
        for (actor, leaving, target, owners, want) in table {
            assert_eq!(code(may_remove(actor, leaving, target, owners)), want, "{actor:?} removes {target:?}");
        }
    }
}
