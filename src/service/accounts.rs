//! Account use cases that touch several tables, each one atomic (`Db::batch`).

use crate::store::tokens::{self, Purpose};
use crate::store::{connections, sessions, users, workspaces, Db, StoreError};

/// Replaces the password hash and revokes every other session of the user and every agent
/// connection (a password change is what a user does when they suspect someone else is signed
/// in); `keep_session` is the id hash of the session making the change, if any. All or none.
/// Returns whether the user exists.
pub async fn change_password(
    db: &impl Db,
    user_id: &str,
    new_hash: &str,
    keep_session: Option<&str>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let changed = db
        .batch(&[
            (users::UPDATE_PASSWORD, vec![user_id.into(), new_hash.into(), now_ms.into()]),
            (sessions::REVOKE_ALL_FOR_USER_EXCEPT, vec![user_id.into(), now_ms.into(), keep_session.into()]),
            (connections::REVOKE_ALL_FOR_USER, vec![user_id.into(), now_ms.into()]),
            (tokens::DELETE_FOR_USER, vec![user_id.into(), Purpose::ResetPassword.as_str().into()]),
            (tokens::DELETE_FOR_USER, vec![user_id.into(), Purpose::ChangeEmail.as_str().into()]),
        ])
        .await?;
    Ok(changed.first().copied().unwrap_or(0) > 0)
}

/// Moves the account to a proved new address, unless another account took it meanwhile, and
/// voids every emailed link of the account (reset and verification links in the old mailbox
/// among them) in the same batch. Returns whether it moved.
pub async fn change_email(db: &impl Db, user_id: &str, new_email: &str, now_ms: i64) -> Result<bool, StoreError> {
    let changed = db
        .batch(&[
            (users::CHANGE_EMAIL, vec![user_id.into(), new_email.into(), now_ms.into()]),
            (tokens::DELETE_ALL_IF_MOVED, vec![user_id.into(), new_email.into()]),
        ])
        .await?;
    Ok(changed.first().copied().unwrap_or(0) > 0)
}

/// A redeemed password-reset link: the new hash, every session and agent connection revoked,
/// every other reset link voided, and the address verified if it is still the one the link was
/// sent to. All or none.
pub async fn reset_password(
    db: &impl Db,
    user_id: &str,
    sent_to: &str,
    new_hash: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let changed = db
        .batch(&[
            (users::UPDATE_PASSWORD, vec![user_id.into(), new_hash.into(), now_ms.into()]),
            (sessions::REVOKE_ALL_FOR_USER_EXCEPT, vec![user_id.into(), now_ms.into(), None::<&str>.into()]),
            (connections::REVOKE_ALL_FOR_USER, vec![user_id.into(), now_ms.into()]),
            (tokens::DELETE_FOR_USER, vec![user_id.into(), Purpose::ResetPassword.as_str().into()]),
            (tokens::DELETE_FOR_USER, vec![user_id.into(), Purpose::ChangeEmail.as_str().into()]),
            (users::MARK_VERIFIED, vec![user_id.into(), sent_to.into(), now_ms.into()]),
        ])
        .await?;
    Ok(changed.first().copied().unwrap_or(0) > 0)
}

/// Deletes the user row with their sessions and memberships, atomically (explicit, not left to
/// ON DELETE CASCADE, so it holds even where foreign keys are off). Workspaces are the caller's
/// decision first (`api::data::delete_account` deletes those the user alone owns). Returns
/// whether the user existed.
pub async fn delete_user(db: &impl Db, user_id: &str, now_ms: i64) -> Result<bool, StoreError> {
    let changed = db
        .batch(&[
            // A key the user made while the deletion ran (another session) goes with them too.
            (crate::store::servers::REVOKE_ALL_KEYS_CREATED_BY, vec![user_id.into(), now_ms.into()]),
            (sessions::DELETE_FOR_USER, vec![user_id.into()]),
            (connections::DELETE_FOR_USER, vec![user_id.into()]),
            (tokens::DELETE_ALL_FOR_USER, vec![user_id.into()]),
            (crate::store::invitations::DELETE_ALL_BY_INVITER, vec![user_id.into()]),
            (workspaces::DELETE_MEMBERSHIPS_OF_USER, vec![user_id.into()]),
            (users::DELETE, vec![user_id.into()]),
        ])
        .await?;
    Ok(changed.last().copied().unwrap_or(0) > 0)
}
