//! Accounts: password hashing, server-side sessions and failed-login throttling (DESIGN §7).
//!
//! Everything here is pure and host-testable: no Worker types, no clock (callers pass `now_ms`),
//! and storage only through the `Db` port (`crate::store::{users, sessions}`). The HTTP handlers
//! that use it live elsewhere and only translate.
//!
//! Invariants: a password, a raw session id or a raw CSRF token is never stored, logged or put
//! into an error; only their hashes reach the database. Every comparison of a secret is constant
//! time. Hostile input (a forged cookie, a garbage PHC string) yields "no" and never a panic.

pub mod password;
pub mod session;
pub mod throttle;

use crate::crypto::CryptoError;
use crate::error::ApiError;

/// Errors of the account layer. None of them carries a password, token or stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The system random source failed (salt, session id or CSRF token).
    Random,
    /// The password hasher failed (bad parameters or out of memory); the message is for logs.
    Hash(String),
    /// Unknown email or wrong password; deliberately does not say which.
    InvalidCredentials,
    /// No valid session cookie.
    Unauthenticated,
    /// A state-changing request without the session's CSRF token.
    CsrfFailed,
    /// Too many failed logins for this email or address; retry after this many seconds.
    Throttled { retry_after_s: i64 },
    /// The new password breaks the policy; the message is safe to show.
    WeakPassword(&'static str),
    /// Sign-up with an email that already has an account.
    EmailTaken,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Random => f.write_str("random source failed"),
            AuthError::Hash(why) => write!(f, "password hashing failed: {why}"),
            AuthError::InvalidCredentials => f.write_str("invalid credentials"),
            AuthError::Unauthenticated => f.write_str("not signed in"),
            AuthError::CsrfFailed => f.write_str("missing or wrong CSRF token"),
            AuthError::Throttled { retry_after_s } => {
                write!(f, "too many failed logins; retry after {retry_after_s} s")
            }
            AuthError::WeakPassword(why) => write!(f, "password policy: {why}"),
            AuthError::EmailTaken => f.write_str("email already registered"),
        }
    }
}

impl std::error::Error for AuthError {}

impl From<CryptoError> for AuthError {
    fn from(_: CryptoError) -> Self {
        // The only crypto call of this layer that can fail is the random source.
        AuthError::Random
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Random | AuthError::Hash(_) => ApiError::internal(format!("auth: {e}")),
            AuthError::InvalidCredentials => {
                ApiError::new(401, "invalid_credentials", "The email or password is incorrect.")
            }
            AuthError::Unauthenticated => ApiError::new(401, "unauthenticated", "Please sign in."),
            AuthError::CsrfFailed => {
                ApiError::new(403, "csrf_failed", "The request is missing a valid CSRF token; reload the page.")
            }
            AuthError::Throttled { retry_after_s } => ApiError::new(
                429,
                "too_many_attempts",
                format!("Too many failed sign-in attempts. Try again in {} minute(s).", (retry_after_s + 59) / 60),
            ),
            AuthError::WeakPassword(why) => ApiError::new(400, "weak_password", why),
            AuthError::EmailTaken => {
                ApiError::new(409, "email_taken", "An account with this email already exists; sign in instead.")
            }
        }
    }
}
