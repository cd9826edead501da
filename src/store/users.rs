//! The `users` table: dashboard accounts.
//!
//! `email` has `COLLATE NOCASE UNIQUE` in the schema, so lookups are case-insensitive (ASCII,
//! which is SQLite's NOCASE) and two sign-ups that differ only in case cannot both land; the
//! address is stored as the user typed it. `password_hash` is an argon2id PHC string
//! (`crate::auth::password`); [`User`] never prints it and is not `Serialize`, so it cannot leak
//! into a log line or an API body by accident.

use super::{row_i64, text, Db, Row, SqlValue, StoreError};
use crate::crypto::random_id;

/// Inserts unless the email (case-insensitively) is taken; `changes() == 0` means taken.
pub const INSERT: &str = "INSERT INTO users \
    (id, email, display_name, password_hash, terms_accepted_at, privacy_accepted_at, created_at, updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) ON CONFLICT(email) DO NOTHING";

const INSERT_FIRST_WORKSPACE: &str = "INSERT INTO workspaces (id, name, created_by, created_at) \
    SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?3)";
const INSERT_FIRST_MEMBERSHIP: &str = "INSERT INTO memberships (workspace_id, user_id, role, created_at) \
    SELECT ?1, ?2, 'owner', ?3 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?2)";

pub const SELECT_BY_EMAIL: &str = "SELECT id, email, display_name, password_hash, terms_accepted_at, \
    privacy_accepted_at, created_at, updated_at, email_verified_at FROM users WHERE email = ?1";

pub const SELECT_BY_ID: &str = "SELECT id, email, display_name, password_hash, terms_accepted_at, \
    privacy_accepted_at, created_at, updated_at, email_verified_at FROM users WHERE id = ?1";

pub const UPDATE_PASSWORD: &str = "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1";

pub const DELETE: &str = "DELETE FROM users WHERE id = ?1";

/// A dashboard account.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: String,
    /// argon2id PHC string. Never printed.
    pub password_hash: String,
    pub terms_accepted_at: i64,
    pub privacy_accepted_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// When the account proved it owns `email` (an emailed link was redeemed); `None`: not yet.
    pub email_verified_at: Option<i64>,
}

impl User {
    pub fn email_verified(&self) -> bool {
        self.email_verified_at.is_some()
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .field("password_hash", &"<redacted>")
            .field("terms_accepted_at", &self.terms_accepted_at)
            .field("privacy_accepted_at", &self.privacy_accepted_at)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("email_verified_at", &self.email_verified_at)
            .finish()
    }
}

/// What sign-up supplies. The handler has validated the email, checked the password policy and
/// hashed the password already.
#[derive(Clone)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
    pub terms_accepted_at: i64,
    pub privacy_accepted_at: i64,
}

/// Reads a user from a row whose user columns carry `prefix` (`""` or `"u_"` in joins).
pub(crate) fn user_from_row(row: &Row, prefix: &str) -> Result<User, StoreError> {
    let col = |c: &str| format!("{prefix}{c}");
    Ok(User {
        id: text(row, &col("id"))?,
        email: text(row, &col("email"))?,
        display_name: text(row, &col("display_name"))?,
        password_hash: text(row, &col("password_hash"))?,
        terms_accepted_at: row_i64(row, &col("terms_accepted_at"))?,
        privacy_accepted_at: row_i64(row, &col("privacy_accepted_at"))?,
        created_at: row_i64(row, &col("created_at"))?,
        updated_at: row_i64(row, &col("updated_at"))?,
        email_verified_at: super::opt_i64(row, &col("email_verified_at"))?,
    })
}

/// Creates an account with a fresh `usr_` id and its first workspace `(id, name)` with the owner's
/// membership, in one atomic write: a failure leaves no account without a workspace (whose
/// address could not sign up again). `Ok(None)`: the email (in any case) is taken, and nothing
/// is written.
pub async fn create(
    db: &impl Db,
    new: &NewUser<'_>,
    workspace: (&str, &str),
    now_ms: i64,
) -> Result<Option<User>, StoreError> {
    let id = random_id("usr_").map_err(|e| StoreError::Backend(format!("user id: {e}")))?;
    let user = (
        INSERT,
        vec![
            SqlValue::from(id.as_str()),
            new.email.into(),
            new.display_name.into(),
            new.password_hash.into(),
            new.terms_accepted_at.into(),
            new.privacy_accepted_at.into(),
            now_ms.into(),
        ],
    );
    // The workspace rows are written only when the user row was (a taken address writes none).
    let (ws, owner) = (workspace.0, SqlValue::from(id.as_str()));
    let changed = db
        .batch(&[
            user,
            (INSERT_FIRST_WORKSPACE, vec![ws.into(), workspace.1.into(), owner.clone(), now_ms.into()]),
            (INSERT_FIRST_MEMBERSHIP, vec![ws.into(), owner, now_ms.into()]),
        ])
        .await?;
    if changed.first() != Some(&1) {
        return Ok(None);
    }
    Ok(Some(User {
        id,
        email: new.email.to_string(),
        display_name: new.display_name.to_string(),
        password_hash: new.password_hash.to_string(),
        terms_accepted_at: new.terms_accepted_at,
        privacy_accepted_at: new.privacy_accepted_at,
        created_at: now_ms,
        updated_at: now_ms,
        email_verified_at: None,
    }))
}

/// Case-insensitive lookup (the column's NOCASE collation applies to `=`).
pub async fn find_by_email(db: &impl Db, email: &str) -> Result<Option<User>, StoreError> {
    let rows = db.query(SELECT_BY_EMAIL, &[email.into()]).await?;
    rows.first().map(|r| user_from_row(r, "")).transpose()
}

pub async fn find_by_id(db: &impl Db, id: &str) -> Result<Option<User>, StoreError> {
    let rows = db.query(SELECT_BY_ID, &[id.into()]).await?;
    rows.first().map(|r| user_from_row(r, "")).transpose()
}

/// Marks the account verified, only while its address is still `?2` (the one the link was sent
/// to). Returns the rows changed.
pub const MARK_VERIFIED: &str =
    "UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?3), updated_at = ?3 \
    WHERE id = ?1 AND email = ?2";

pub async fn mark_verified(db: &impl Db, user_id: &str, email: &str, now_ms: i64) -> Result<bool, StoreError> {
    Ok(db.execute(MARK_VERIFIED, &[user_id.into(), email.into(), now_ms.into()]).await? > 0)
}

/// Moves an account to a proved new address (verified, since its link was redeemed), unless
/// another account took the address meanwhile. Returns whether it moved.
pub const CHANGE_EMAIL: &str = "UPDATE users SET email = ?2, email_verified_at = ?3, updated_at = ?3 \
    WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM users WHERE email = ?2 AND id != ?1)";

const RENAME: &str = "UPDATE users SET display_name = ?2, updated_at = ?3 WHERE id = ?1";

pub async fn set_display_name(db: &impl Db, user_id: &str, name: &str, now_ms: i64) -> Result<(), StoreError> {
    db.execute(RENAME, &[user_id.into(), name.into(), now_ms.into()]).await.map(|_| ())
}

const REHASH: &str = "UPDATE users SET password_hash = ?3, updated_at = ?4 WHERE id = ?1 AND password_hash = ?2";

/// Replaces the password hash only if it is still `old_hash` (a rehash at login with today's
/// parameters: same password, so no session is revoked; a password changed meanwhile wins).
/// Returns whether it was replaced.
pub async fn rehash_password(
    db: &impl Db,
    user_id: &str,
    old_hash: &str,
    new_hash: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    Ok(db.execute(REHASH, &[user_id.into(), old_hash.into(), new_hash.into(), now_ms.into()]).await? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_password_hash() {
        let u = User {
            id: "usr_1".into(),
            email: "a@b.c".into(),
            display_name: "A".into(),
            password_hash: "$argon2id$v=19$SECRET".into(),
            terms_accepted_at: 1,
            privacy_accepted_at: 1,
            created_at: 1,
            updated_at: 1,
            email_verified_at: None,
        };
        let shown = format!("{u:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("usr_1"));
    }
}
