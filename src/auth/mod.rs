//! Accounts: password hashing, server-side sessions and failed-login throttling (DESIGN §7), and
//! the per-user API keys of `user_key` servers ([`user_key`], issue 16).
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
pub mod user_key;

use crate::crypto::CryptoError;
use crate::error::{ApiError, ErrorCode};

/// Errors of the account layer. None of them carries a password, token or stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The system random source failed (salt, session id or CSRF token).
    Random,
    /// The password hasher failed (bad parameters or out of memory); the message is for logs.
    Hash(String),
    /// Too many failed logins for this email or address; retry after this many seconds.
    Throttled { retry_after_s: i64 },
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Random => f.write_str("random source failed"),
            AuthError::Hash(why) => write!(f, "password hashing failed: {why}"),
            AuthError::Throttled { retry_after_s } => {
                write!(f, "too many failed logins; retry after {retry_after_s} s")
            }
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
            AuthError::Throttled { retry_after_s } => ApiError {
                retry_after_s: Some(retry_after_s),
                ..ApiError::new(
                    ErrorCode::TooManyAttempts,
                    format!("Too many attempts. Try again in {} minute(s).", (retry_after_s + 59) / 60),
                )
            },
        }
    }
}
