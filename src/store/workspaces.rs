//! The `workspaces` and `memberships` tables. Every workspace-scoped query elsewhere starts from
//! a membership found here.

use serde::Serialize;

use super::{parsed, row_i64, text, Db, Row, StoreError};
use crate::vocab::Role;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
    /// How long its audit rows (the usage log) are kept: 7 to 90 days, 30 by default.
    pub audit_retention_days: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub added_at: i64,
}

pub const INSERT: &str = "INSERT INTO workspaces (id, name, created_by, created_at) VALUES (?1, ?2, ?3, ?4)";
pub const INSERT_MEMBERSHIP: &str =
    "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES (?1, ?2, ?3, ?4)";
pub const LIST_FOR_USER: &str = "SELECT w.id, w.name, m.role, w.created_at, w.audit_retention_days FROM workspaces w \
    JOIN memberships m ON m.workspace_id = w.id WHERE m.user_id = ?1 ORDER BY w.created_at, w.id";
/// `?3 = 0` (an account that has not verified its address): only the workspaces it created —
/// a membership it got before verification existed (migration 0003) waits for verification.
pub const GET_FOR_USER: &str = "SELECT w.id, w.name, m.role, w.created_at, w.audit_retention_days FROM workspaces w \
    JOIN memberships m ON m.workspace_id = w.id WHERE m.user_id = ?1 AND w.id = ?2 \
    AND (?3 = 1 OR w.created_by = ?1)";
pub const LIST_VISIBLE_FOR_USER: &str =
    "SELECT w.id, w.name, m.role, w.created_at, w.audit_retention_days FROM workspaces w \
    JOIN memberships m ON m.workspace_id = w.id WHERE m.user_id = ?1 AND (?2 = 1 OR w.created_by = ?1) \
    ORDER BY w.created_at, w.id";
pub const LIST_MEMBERS: &str = "SELECT u.id AS user_id, u.email, u.display_name, m.role, m.created_at \
    FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = ?1 ORDER BY m.created_at, u.id";
pub const DELETE: &str = "DELETE FROM workspaces WHERE id = ?1";

fn workspace(row: &Row) -> Result<Workspace, StoreError> {
    Ok(Workspace {
        id: text(row, "id")?,
        name: text(row, "name")?,
        role: parsed(row, "role", Role::parse)?,
        created_at: row_i64(row, "created_at")?,
        audit_retention_days: row_i64(row, "audit_retention_days")?,
    })
}

/// Renames a workspace and sets its audit retention (each when given).
pub async fn update(
    db: &impl Db,
    ws: &str,
    name: Option<&str>,
    retention_days: Option<i64>,
) -> Result<bool, StoreError> {
    let sql =
        "UPDATE workspaces SET name = COALESCE(?2, name), audit_retention_days = COALESCE(?3, audit_retention_days) \
               WHERE id = ?1";
    Ok(db.execute(sql, &[ws.into(), name.into(), retention_days.into()]).await? == 1)
}

/// Creates a workspace with `user_id` as its owner.
/// A workspace and its owner's membership, in one atomic write (never a workspace without an
/// owner). A sign-up's first workspace is written with its account (`users::create`).
pub async fn create(db: &impl Db, id: &str, name: &str, user_id: &str, now: i64) -> Result<(), StoreError> {
    db.batch(&[
        (INSERT, vec![id.into(), name.into(), user_id.into(), now.into()]),
        (INSERT_MEMBERSHIP, vec![id.into(), user_id.into(), "owner".into(), now.into()]),
    ])
    .await
    .map(|_| ())
}

/// Every workspace the user is a member of (their data export, their account's deletion).
pub async fn list_for_user(db: &impl Db, user_id: &str) -> Result<Vec<Workspace>, StoreError> {
    db.query(LIST_FOR_USER, &[user_id.into()]).await?.iter().map(workspace).collect()
}

/// The workspaces the user may open: all of them once the address is verified, else only those
/// the account created.
pub async fn list_visible(db: &impl Db, user_id: &str, verified: bool) -> Result<Vec<Workspace>, StoreError> {
    let params = [user_id.into(), i64::from(verified).into()];
    db.query(LIST_VISIBLE_FOR_USER, &params).await?.iter().map(workspace).collect()
}

/// The workspace with the caller's role, or `None` when it does not exist, the user is not a
/// member, or (`verified` false) the account did not create it — callers answer 404 for all.
pub async fn get_for_user(
    db: &impl Db,
    user_id: &str,
    ws: &str,
    verified: bool,
) -> Result<Option<Workspace>, StoreError> {
    let params = [user_id.into(), ws.into(), i64::from(verified).into()];
    db.query(GET_FOR_USER, &params).await?.first().map(workspace).transpose()
}

pub async fn members(db: &impl Db, ws: &str) -> Result<Vec<Member>, StoreError> {
    db.query(LIST_MEMBERS, &[ws.into()])
        .await?
        .iter()
        .map(|r| {
            Ok(Member {
                user_id: text(r, "user_id")?,
                email: text(r, "email")?,
                display_name: text(r, "display_name")?,
                role: parsed(r, "role", Role::parse)?,
                added_at: row_i64(r, "created_at")?,
            })
        })
        .collect()
}

/// Changes a member's role; returns false when the user is not a member.
pub async fn set_role(db: &impl Db, ws: &str, user_id: &str, role: Role) -> Result<bool, StoreError> {
    let sql = "UPDATE memberships SET role = ?3 WHERE workspace_id = ?1 AND user_id = ?2";
    Ok(db.execute(sql, &[ws.into(), user_id.into(), role.as_str().into()]).await? == 1)
}

/// Removes a membership; returns false when the user was not a member.
pub const REMOVE_MEMBER: &str = "DELETE FROM memberships WHERE workspace_id = ?1 AND user_id = ?2";

pub async fn remove_member(db: &impl Db, ws: &str, user_id: &str) -> Result<bool, StoreError> {
    Ok(db.execute(REMOVE_MEMBER, &[ws.into(), user_id.into()]).await? == 1)
}

/// Deletes a workspace; every workspace-scoped row cascades (audit events are not keyed to it
/// and go first, see `audit::delete_for_workspace`).
pub async fn delete(db: &impl Db, ws: &str) -> Result<bool, StoreError> {
    Ok(db.execute(DELETE, &[ws.into()]).await? > 0)
}

/// Every membership of a user (their account's deletion, `service::accounts::delete_user`).
pub const DELETE_MEMBERSHIPS_OF_USER: &str = "DELETE FROM memberships WHERE user_id = ?1";
