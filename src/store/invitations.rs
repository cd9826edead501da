//! The `invitations` table: an owner or admin invites an address to a workspace; nothing links
//! the invitee to the workspace until they accept (`service::invitations`). Only the SHA-256 of
//! the emailed token is stored. One pending invitation per address and workspace: inviting
//! again replaces it, and the earlier link stops working.

use serde::Serialize;

use super::{parsed, row_i64, text, Db, Row, SqlValue, StoreError};
use crate::vocab::Role;

/// A pending invitation as admins see it (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Invitation {
    pub id: String,
    pub email: String,
    pub role: Role,
    /// Who invited (`null` once their account is deleted).
    pub invited_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// What a token opens: the invitation and its workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: String,
    pub workspace_id: String,
    pub email: String,
    pub role: Role,
}

pub const UPSERT: &str = "INSERT INTO invitations \
    (id, workspace_id, email, role, token_hash, invited_by, created_at, expires_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
    ON CONFLICT(workspace_id, email) DO UPDATE SET id = excluded.id, role = excluded.role, \
    token_hash = excluded.token_hash, invited_by = excluded.invited_by, created_at = excluded.created_at, \
    expires_at = excluded.expires_at";

pub const LIST_PENDING: &str = "SELECT id, email, role, invited_by, created_at, expires_at FROM invitations \
    WHERE workspace_id = ?1 AND expires_at > ?2 ORDER BY created_at DESC, id LIMIT 500";

pub const FIND_LIVE_BY_TOKEN: &str = "SELECT id, workspace_id, email, role FROM invitations \
    WHERE token_hash = ?1 AND expires_at > ?2";

/// Accepting, as one transaction: the membership comes from the invitation row itself (so a
/// withdrawn or expired invitation adds nobody), then the row goes.
pub const ACCEPT_INSERT_MEMBERSHIP: &str = "INSERT INTO memberships (workspace_id, user_id, role, created_at) \
    SELECT workspace_id, ?2, role, ?3 FROM invitations WHERE id = ?1 AND expires_at > ?3 \
    ON CONFLICT(workspace_id, user_id) DO NOTHING";
pub const ACCEPT_DELETE: &str = "DELETE FROM invitations WHERE id = ?1 AND expires_at > ?2";

/// Every pending invitation one person sent in a workspace (they were removed or demoted: an
/// invitation does not outlive its inviter's authority).
pub const DELETE_BY_INVITER: &str = "DELETE FROM invitations WHERE workspace_id = ?1 AND invited_by = ?2";
/// Every pending invitation one person sent, anywhere (their account is deleted).
pub const DELETE_ALL_BY_INVITER: &str = "DELETE FROM invitations WHERE invited_by = ?1";

pub async fn delete_by_inviter(db: &impl Db, ws: &str, user_id: &str) -> Result<u64, StoreError> {
    db.execute(DELETE_BY_INVITER, &[ws.into(), user_id.into()]).await
}

pub const WITHDRAW: &str = "DELETE FROM invitations WHERE id = ?1 AND workspace_id = ?2";

/// Deletes at most `?2` invitations that expired before `?1` (uses `idx_invitations_expires`).
pub const DELETE_EXPIRED: &str = "DELETE FROM invitations WHERE id IN \
    (SELECT id FROM invitations WHERE expires_at < ?1 ORDER BY expires_at LIMIT ?2)";

fn invitation(r: &Row) -> Result<Invitation, StoreError> {
    Ok(Invitation {
        id: text(r, "id")?,
        email: text(r, "email")?,
        role: parsed(r, "role", Role::parse)?,
        invited_by: super::opt_text(r, "invited_by"),
        created_at: row_i64(r, "created_at")?,
        expires_at: row_i64(r, "expires_at")?,
    })
}

pub struct NewInvitation<'a> {
    pub id: &'a str,
    pub workspace_id: &'a str,
    pub email: &'a str,
    pub role: Role,
    pub token_hash: &'a str,
    pub invited_by: &'a str,
    pub expires_at: i64,
}

/// Stores an invitation, replacing a pending one for the same address and workspace.
pub async fn upsert(db: &impl Db, i: &NewInvitation<'_>, now_ms: i64) -> Result<(), StoreError> {
    db.execute(
        UPSERT,
        &[
            i.id.into(),
            i.workspace_id.into(),
            i.email.into(),
            i.role.as_str().into(),
            i.token_hash.into(),
            i.invited_by.into(),
            now_ms.into(),
            i.expires_at.into(),
        ],
    )
    .await?;
    Ok(())
}

pub async fn list_pending(db: &impl Db, ws: &str, now_ms: i64) -> Result<Vec<Invitation>, StoreError> {
    db.query(LIST_PENDING, &[ws.into(), now_ms.into()]).await?.iter().map(invitation).collect()
}

pub async fn find_live_by_token(db: &impl Db, token_hash: &str, now_ms: i64) -> Result<Option<Pending>, StoreError> {
    let rows = db.query(FIND_LIVE_BY_TOKEN, &[token_hash.into(), now_ms.into()]).await?;
    rows.first()
        .map(|r| {
            Ok(Pending {
                id: text(r, "id")?,
                workspace_id: text(r, "workspace_id")?,
                email: text(r, "email")?,
                role: parsed(r, "role", Role::parse)?,
            })
        })
        .transpose()
}

/// Accepts a live invitation for `user_id` atomically; returns false when it was no longer
/// there (withdrawn, expired or accepted by a parallel request).
pub async fn accept(db: &impl Db, id: &str, user_id: &str, now_ms: i64) -> Result<bool, StoreError> {
    let changed = db
        .batch(&[
            (ACCEPT_INSERT_MEMBERSHIP, vec![id.into(), user_id.into(), now_ms.into()]),
            (ACCEPT_DELETE, vec![id.into(), now_ms.into()]),
        ])
        .await?;
    Ok(changed.get(1).copied().unwrap_or(0) > 0)
}

/// Withdraws a pending invitation; false when it is not one of this workspace's.
pub async fn withdraw(db: &impl Db, ws: &str, id: &str) -> Result<bool, StoreError> {
    Ok(db.execute(WITHDRAW, &[id.into(), ws.into()]).await? > 0)
}

/// Deletes up to `limit` expired invitations; returns how many.
pub async fn delete_expired(db: &impl Db, now_ms: i64, limit: i64) -> Result<u64, StoreError> {
    db.execute(DELETE_EXPIRED, &[SqlValue::from(now_ms), limit.into()]).await
}
