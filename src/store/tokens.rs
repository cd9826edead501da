//! The `email_tokens` table: single-use links sent by email (address verification, password
//! reset, address change). Only the SHA-256 of a token is stored, so a copy of the database opens nothing; a
//! token is redeemed by the one statement that deletes its row, so it works once, even under a
//! burst of parallel redemptions.

use super::{text, Db, SqlValue, StoreError};

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
    /// A new address for an account: it takes effect when the link is redeemed.
    ChangeEmail,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ResetPassword => "reset_password",
            Purpose::ChangeEmail => "change_email",
        }
    }
}

pub const INSERT: &str = "INSERT INTO email_tokens (token_hash, purpose, user_id, email, created_at, expires_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Redeems a live token (only if it is `?4`'s, when `?4` is not NULL): deletes its row and
/// returns who it was for. A verification or reset link works only while the account still uses
/// the address it was sent to (a link in a mailbox the account has left opens nothing); an
/// address-change link is sent to the address the account does not use yet.
pub const REDEEM: &str = "DELETE FROM email_tokens WHERE token_hash = ?1 AND purpose = ?2 AND expires_at > ?3 \
    AND (?4 IS NULL OR user_id = ?4) \
    AND (purpose = 'change_email' OR email = (SELECT u.email FROM users u WHERE u.id = email_tokens.user_id)) \
    RETURNING user_id, email";

/// Forgets every token of one purpose of a user (a redeemed reset voids the others).
pub const DELETE_FOR_USER: &str = "DELETE FROM email_tokens WHERE user_id = ?1 AND purpose = ?2";

/// Every token of a user, if the account now uses `?2` (an address change voids every link).
pub const DELETE_ALL_IF_MOVED: &str =
    "DELETE FROM email_tokens WHERE user_id = ?1 AND EXISTS (SELECT 1 FROM users WHERE id = ?1 AND email = ?2)";

/// Every token of a user (account deletion).
pub const DELETE_ALL_FOR_USER: &str = "DELETE FROM email_tokens WHERE user_id = ?1";

/// Deletes at most `?2` tokens that expired before `?1` (uses `idx_email_tokens_expires`).
pub const DELETE_EXPIRED: &str = "DELETE FROM email_tokens WHERE token_hash IN \
    (SELECT token_hash FROM email_tokens WHERE expires_at < ?1 ORDER BY expires_at LIMIT ?2)";

/// A redeemed token: the account and the address the link was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    pub user_id: String,
    pub email: String,
}

pub struct NewToken<'a> {
    pub token_hash: &'a str,
    pub purpose: Purpose,
    pub user_id: &'a str,
    pub email: &'a str,
    pub expires_at: i64,
}

/// Stores a new token and voids the user's earlier ones of the same purpose, in one
/// transaction (two parallel requests cannot leave two live links).
pub async fn replace(db: &impl Db, t: &NewToken<'_>, now_ms: i64) -> Result<(), StoreError> {
    let insert = vec![
        t.token_hash.into(),
        t.purpose.as_str().into(),
        t.user_id.into(),
        t.email.into(),
        now_ms.into(),
        t.expires_at.into(),
    ];
    db.batch(&[(DELETE_FOR_USER, vec![t.user_id.into(), t.purpose.as_str().into()]), (INSERT, insert)]).await?;
    Ok(())
}

/// Redeems the token with this hash for `purpose`, if it is live (and, with `only_for`, that
/// account's): at most one caller ever gets `Some` for a token.
pub async fn redeem(
    db: &impl Db,
    token_hash: &str,
    purpose: Purpose,
    only_for: Option<&str>,
    now_ms: i64,
) -> Result<Option<Redeemed>, StoreError> {
    let params = [token_hash.into(), purpose.as_str().into(), now_ms.into(), only_for.into()];
    let rows = db.query(REDEEM, &params).await?;
    rows.first().map(|r| Ok(Redeemed { user_id: text(r, "user_id")?, email: text(r, "email")? })).transpose()
}

/// Deletes up to `limit` expired tokens; returns how many.
pub async fn delete_expired(db: &impl Db, now_ms: i64, limit: i64) -> Result<u64, StoreError> {
    db.execute(DELETE_EXPIRED, &[SqlValue::from(now_ms), limit.into()]).await
}
