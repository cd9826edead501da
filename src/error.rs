//! The top-level error of FlowCP (DESIGN §9).
//!
//! An [`ApiError`] knows its HTTP status, a stable machine `code`, the message that is safe to
//! show to the caller, and an internal message that only goes to the (redacted) log. Lower
//! layers keep their own HTTP-agnostic error enums and convert with `From`.
//!
//! Invariant: `message` never contains a secret, a token, a password or a stored value; callers
//! put anything sensitive or diagnostic into `internal`, which is never serialised to a client.

use serde_json::json;

use crate::crypto::CryptoError;
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub internal: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), internal: None }
    }

    /// Attach a diagnostic for the log only (never shown to the client).
    pub fn with_internal(mut self, internal: impl Into<String>) -> Self {
        self.internal = Some(internal.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }
    pub fn not_found() -> Self {
        Self::new(404, "not_found", "The requested resource does not exist.")
    }
    pub fn method_not_allowed() -> Self {
        Self::new(405, "method_not_allowed", "This method is not allowed on this resource.")
    }
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(413, "payload_too_large", format!("The request body exceeds the limit of {limit} bytes."))
    }
    pub fn unsupported_media_type(expected: &str) -> Self {
        Self::new(415, "unsupported_media_type", format!("Expected a request body of type {expected}."))
    }
    pub fn internal(internal: impl Into<String>) -> Self {
        Self::new(500, "internal", "Something went wrong on our side; it has been logged.").with_internal(internal)
    }
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(503, code, message)
    }

    /// The JSON body every dashboard-API error has: `{"error":{"code","message"}}`.
    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code, "message": self.message } })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)?;
        if let Some(internal) = &self.internal {
            write!(f, " ({internal})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(format!("store: {e}"))
    }
}

impl From<CryptoError> for ApiError {
    fn from(e: CryptoError) -> Self {
        // A stored envelope that does not open is a server-side problem, never the caller's.
        ApiError::internal(format!("crypto: {e}"))
    }
}

/// Checks a declared `Content-Length` against a limit before the body is read.
/// A missing or unparsable header passes here; the read itself is bounded by [`check_body_len`].
pub fn check_declared_len(content_length: Option<&str>, limit: usize) -> Result<(), ApiError> {
    match content_length.map(|v| v.trim().parse::<u64>()) {
        Some(Ok(n)) if n > limit as u64 => Err(ApiError::payload_too_large(limit)),
        Some(Err(_)) => Err(ApiError::bad_request("The Content-Length header is not a number.")),
        _ => Ok(()),
    }
}

/// Checks the length of a body that has been read.
pub fn check_body_len(len: usize, limit: usize) -> Result<(), ApiError> {
    if len > limit {
        Err(ApiError::payload_too_large(limit))
    } else {
        Ok(())
    }
}

/// Body limits per kind of request (bytes).
pub mod limits {
    /// Dashboard JSON API bodies.
    pub const API_JSON: usize = 256 * 1024;
    /// Uploaded OpenAPI documents (DESIGN §4: ~20 MB cap).
    pub const DOCUMENT: usize = 20 * 1024 * 1024;
    /// One MCP JSON-RPC message.
    pub const MCP_MESSAGE: usize = 4 * 1024 * 1024;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_hides_internal_message() {
        let e = ApiError::internal("db password=hunter2 failed");
        let body = e.body().to_string();
        assert!(!body.contains("hunter2"), "{body}");
        assert_eq!(e.status, 500);
        assert_eq!(e.body()["error"]["code"], "internal");
    }

    #[test]
    fn declared_length_over_limit_is_413() {
        assert_eq!(check_declared_len(Some("1025"), 1024).unwrap_err().status, 413);
        assert!(check_declared_len(Some("1024"), 1024).is_ok());
        assert!(check_declared_len(None, 1024).is_ok());
        assert_eq!(check_declared_len(Some("ten"), 1024).unwrap_err().status, 400);
    }

    #[test]
    fn read_length_over_limit_is_413() {
        assert_eq!(check_body_len(11, 10).unwrap_err().code, "payload_too_large");
        assert!(check_body_len(10, 10).is_ok());
    }
}
