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

/// Every error code the owner API answers with: one status each (a code never means two
/// things), a default message, and the `enum` of the API document's error schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    InvalidJson,
    InvalidCursor,
    InvalidFilter,
    InvalidLimit,
    EmptyDocument,
    Unauthenticated,
    InvalidCredentials,
    WrongPassword,
    CsrfFailed,
    Forbidden,
    EmailUnverified,
    NotFound,
    AppNotFound,
    LinkInvalid,
    MethodNotAllowed,
    AlreadyMember,
    AlreadyVerified,
    EmailTaken,
    LastOwner,
    NotVerified,
    ToolNameTaken,
    PayloadTooLarge,
    UnsupportedMediaType,
    ConsentRequired,
    DocumentTooLarge,
    ManifestTooLarge,
    /// The workspace's plan does not allow it (more servers or tools than its limits).
    PlanLimit,
    InvalidAuthConfig,
    InvalidAuthMode,
    InvalidBaseUrl,
    InvalidOrigin,
    InvalidCredential,
    InvalidDescription,
    InvalidEmail,
    InvalidImport,
    InvalidName,
    InvalidRole,
    InvalidSecret,
    InvalidSecretName,
    InvalidToolIds,
    InvalidToolName,
    NoApiOrigin,
    SeveralApiOrigins,
    OriginUnconfirmed,
    UnreadableDocument,
    UrlNotAllowed,
    WeakPassword,
    TooManyAttempts,
    Internal,
    FetchFailed,
    NotConfigured,
    EmailUnavailable,
    /// A Git source names a repository, branch or path that is not well formed.
    InvalidGitSource,
    /// The Git connection is not usable (broken, pending, removed): connect again.
    GitConnectionBroken,
    /// The Git provider has no such repository, branch or file (or hides it from the connection).
    GitNotFound,
    /// The Git provider could not be reached or failed.
    GitUnavailable,
    /// An earlier import's document is no longer stored.
    DocumentMissing,
}

impl ErrorCode {
    /// Every code, in the order of the API document's enum.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::BadRequest,
        ErrorCode::InvalidJson,
        ErrorCode::InvalidCursor,
        ErrorCode::InvalidFilter,
        ErrorCode::InvalidLimit,
        ErrorCode::EmptyDocument,
        ErrorCode::Unauthenticated,
        ErrorCode::InvalidCredentials,
        ErrorCode::WrongPassword,
        ErrorCode::CsrfFailed,
        ErrorCode::Forbidden,
        ErrorCode::EmailUnverified,
        ErrorCode::NotFound,
        ErrorCode::AppNotFound,
        ErrorCode::LinkInvalid,
        ErrorCode::MethodNotAllowed,
        ErrorCode::AlreadyMember,
        ErrorCode::AlreadyVerified,
        ErrorCode::EmailTaken,
        ErrorCode::LastOwner,
        ErrorCode::NotVerified,
        ErrorCode::ToolNameTaken,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::ConsentRequired,
        ErrorCode::DocumentTooLarge,
        ErrorCode::ManifestTooLarge,
        ErrorCode::PlanLimit,
        ErrorCode::InvalidAuthConfig,
        ErrorCode::InvalidAuthMode,
        ErrorCode::InvalidBaseUrl,
        ErrorCode::InvalidOrigin,
        ErrorCode::InvalidCredential,
        ErrorCode::InvalidDescription,
        ErrorCode::InvalidEmail,
        ErrorCode::InvalidImport,
        ErrorCode::InvalidName,
        ErrorCode::InvalidRole,
        ErrorCode::InvalidSecret,
        ErrorCode::InvalidSecretName,
        ErrorCode::InvalidToolIds,
        ErrorCode::InvalidToolName,
        ErrorCode::NoApiOrigin,
        ErrorCode::SeveralApiOrigins,
        ErrorCode::OriginUnconfirmed,
        ErrorCode::UnreadableDocument,
        ErrorCode::UrlNotAllowed,
        ErrorCode::WeakPassword,
        ErrorCode::TooManyAttempts,
        ErrorCode::Internal,
        ErrorCode::FetchFailed,
        ErrorCode::NotConfigured,
        ErrorCode::EmailUnavailable,
        ErrorCode::InvalidGitSource,
        ErrorCode::GitConnectionBroken,
        ErrorCode::GitNotFound,
        ErrorCode::GitUnavailable,
        ErrorCode::DocumentMissing,
    ];

    /// The code as it appears in `{"error":{"code"}}`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidCursor => "invalid_cursor",
            ErrorCode::InvalidFilter => "invalid_filter",
            ErrorCode::InvalidLimit => "invalid_limit",
            ErrorCode::EmptyDocument => "empty_document",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::WrongPassword => "wrong_password",
            ErrorCode::CsrfFailed => "csrf_failed",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::EmailUnverified => "email_unverified",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AppNotFound => "app_not_found",
            ErrorCode::LinkInvalid => "link_invalid",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::AlreadyMember => "already_member",
            ErrorCode::AlreadyVerified => "already_verified",
            ErrorCode::EmailTaken => "email_taken",
            ErrorCode::LastOwner => "last_owner",
            ErrorCode::NotVerified => "not_verified",
            ErrorCode::ToolNameTaken => "tool_name_taken",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::DocumentTooLarge => "document_too_large",
            ErrorCode::ManifestTooLarge => "manifest_too_large",
            ErrorCode::PlanLimit => "plan_limit",
            ErrorCode::InvalidAuthConfig => "invalid_auth_config",
            ErrorCode::InvalidAuthMode => "invalid_auth_mode",
            ErrorCode::InvalidBaseUrl => "invalid_base_url",
            ErrorCode::InvalidOrigin => "invalid_origin",
            ErrorCode::InvalidCredential => "invalid_credential",
            ErrorCode::InvalidDescription => "invalid_description",
            ErrorCode::InvalidEmail => "invalid_email",
            ErrorCode::InvalidImport => "invalid_import",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::InvalidRole => "invalid_role",
            ErrorCode::InvalidSecret => "invalid_secret",
            ErrorCode::InvalidSecretName => "invalid_secret_name",
            ErrorCode::InvalidToolIds => "invalid_tool_ids",
            ErrorCode::InvalidToolName => "invalid_tool_name",
            ErrorCode::NoApiOrigin => "no_api_origin",
            ErrorCode::SeveralApiOrigins => "several_api_origins",
            ErrorCode::OriginUnconfirmed => "origin_unconfirmed",
            ErrorCode::UnreadableDocument => "unreadable_document",
            ErrorCode::UrlNotAllowed => "url_not_allowed",
            ErrorCode::WeakPassword => "weak_password",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::Internal => "internal",
            ErrorCode::FetchFailed => "fetch_failed",
            ErrorCode::NotConfigured => "not_configured",
            ErrorCode::EmailUnavailable => "email_unavailable",
            ErrorCode::InvalidGitSource => "invalid_git_source",
            ErrorCode::GitConnectionBroken => "git_connection_broken",
            ErrorCode::GitNotFound => "git_not_found",
            ErrorCode::GitUnavailable => "git_unavailable",
            ErrorCode::DocumentMissing => "document_missing",
        }
    }

    /// The HTTP status of every answer with this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::InvalidJson
            | ErrorCode::InvalidCursor
            | ErrorCode::InvalidFilter
            | ErrorCode::InvalidLimit
            | ErrorCode::EmptyDocument => 400,
            ErrorCode::Unauthenticated | ErrorCode::InvalidCredentials => 401,
            ErrorCode::WrongPassword
            | ErrorCode::CsrfFailed
            | ErrorCode::Forbidden
            | ErrorCode::EmailUnverified
            | ErrorCode::PlanLimit => 403,
            ErrorCode::NotFound | ErrorCode::AppNotFound | ErrorCode::LinkInvalid => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::AlreadyMember
            | ErrorCode::AlreadyVerified
            | ErrorCode::EmailTaken
            | ErrorCode::LastOwner
            | ErrorCode::NotVerified
            | ErrorCode::OriginUnconfirmed
            | ErrorCode::ToolNameTaken
            | ErrorCode::GitConnectionBroken
            | ErrorCode::DocumentMissing => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::ConsentRequired
            | ErrorCode::DocumentTooLarge
            | ErrorCode::ManifestTooLarge
            | ErrorCode::InvalidAuthConfig
            | ErrorCode::InvalidAuthMode
            | ErrorCode::InvalidBaseUrl
            | ErrorCode::InvalidOrigin
            | ErrorCode::InvalidCredential
            | ErrorCode::InvalidDescription
            | ErrorCode::InvalidEmail
            | ErrorCode::InvalidImport
            | ErrorCode::InvalidName
            | ErrorCode::InvalidRole
            | ErrorCode::InvalidSecret
            | ErrorCode::InvalidSecretName
            | ErrorCode::InvalidToolIds
            | ErrorCode::InvalidToolName
            | ErrorCode::NoApiOrigin
            | ErrorCode::SeveralApiOrigins
            | ErrorCode::UnreadableDocument
            | ErrorCode::UrlNotAllowed
            | ErrorCode::WeakPassword
            | ErrorCode::InvalidGitSource
            | ErrorCode::GitNotFound => 422,
            ErrorCode::TooManyAttempts => 429,
            ErrorCode::Internal => 500,
            ErrorCode::FetchFailed | ErrorCode::GitUnavailable => 502,
            ErrorCode::NotConfigured | ErrorCode::EmailUnavailable => 503,
        }
    }

    /// A message for when the call site has nothing more specific to say.
    pub fn default_message(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "The request is not valid.",
            ErrorCode::InvalidJson => "The request body is not valid JSON of the expected shape.",
            ErrorCode::InvalidCursor => "The cursor is not one this API issued.",
            ErrorCode::InvalidFilter => "A filter parameter is not valid.",
            ErrorCode::InvalidLimit => "The limit is not a number in the allowed range.",
            ErrorCode::EmptyDocument => "The document is empty.",
            ErrorCode::Unauthenticated => "Log in to continue.",
            ErrorCode::InvalidCredentials => "The email or password is wrong.",
            ErrorCode::WrongPassword => "The password is wrong.",
            ErrorCode::CsrfFailed => "The X-CSRF-Token header is missing or wrong; reload and try again.",
            ErrorCode::Forbidden => "Only workspace owners and admins can do this.",
            ErrorCode::EmailUnverified => "Verify your email address first: open the link FlowCP sent you.",
            ErrorCode::NotFound => "The requested resource does not exist.",
            ErrorCode::AppNotFound => "The app does not exist in this workspace.",
            ErrorCode::LinkInvalid => "This link is not valid: it may have expired or been used already.",
            ErrorCode::MethodNotAllowed => "This method is not allowed on this resource.",
            ErrorCode::AlreadyMember => "The user is already a member of this workspace.",
            ErrorCode::AlreadyVerified => "This email address is verified already.",
            ErrorCode::EmailTaken => "An account with this email already exists; log in instead.",
            ErrorCode::LastOwner => "A workspace keeps at least one owner.",
            ErrorCode::NotVerified => "Verify the server before publishing.",
            ErrorCode::ToolNameTaken => "Another tool of this app has this name.",
            ErrorCode::PayloadTooLarge => "The request body is too large.",
            ErrorCode::UnsupportedMediaType => "The request body has an unsupported media type.",
            ErrorCode::ConsentRequired => "Accept the terms of service and the privacy policy to sign up.",
            ErrorCode::DocumentTooLarge => "The document is too large.",
            ErrorCode::ManifestTooLarge => "The server's tools are too large to publish.",
            ErrorCode::PlanLimit => "The workspace's plan does not allow this.",
            ErrorCode::InvalidAuthConfig => "The auth configuration is not valid.",
            ErrorCode::InvalidAuthMode => "auth_mode must be none, api_key, bearer or oauth.",
            ErrorCode::InvalidBaseUrl => "base_url must be an absolute http(s) URL.",
            ErrorCode::InvalidOrigin => "allowed_origins must list origins such as https://app.example.",
            ErrorCode::InvalidCredential => "The credential is not valid.",
            ErrorCode::InvalidDescription => "The description is not valid.",
            ErrorCode::InvalidEmail => "Enter a valid email address.",
            ErrorCode::InvalidImport => "The import request is not valid.",
            ErrorCode::InvalidName => "The name is not valid.",
            ErrorCode::InvalidRole => "The role must be owner, admin or member.",
            ErrorCode::InvalidSecret => "The secret value is not valid.",
            ErrorCode::InvalidSecretName => "The secret name is not valid.",
            ErrorCode::InvalidToolIds => "The tool ids are not valid.",
            ErrorCode::InvalidToolName => "The tool name is not valid.",
            ErrorCode::NoApiOrigin => "The document names no absolute server URL; set base_url first.",
            ErrorCode::SeveralApiOrigins => "The tools call more than one host; set base_url.",
            ErrorCode::OriginUnconfirmed => "Confirm the origin this credential may be sent to.",
            ErrorCode::UnreadableDocument => "The document could not be read.",
            ErrorCode::UrlNotAllowed => "The URL is not allowed.",
            ErrorCode::WeakPassword => "The password does not meet the policy.",
            ErrorCode::TooManyAttempts => "Too many attempts; try again later.",
            ErrorCode::Internal => "Something went wrong on our side; it has been logged.",
            ErrorCode::FetchFailed => "The URL could not be fetched.",
            ErrorCode::NotConfigured => "FlowCP is not configured.",
            ErrorCode::EmailUnavailable => "FlowCP cannot send email right now; try again later.",
            ErrorCode::InvalidGitSource => "Name a repository (owner/name), a branch and a file path.",
            ErrorCode::GitConnectionBroken => "The Git connection is not usable; connect again.",
            ErrorCode::GitNotFound => "The repository, branch or file was not found.",
            ErrorCode::GitUnavailable => "The Git provider could not be reached; try again later.",
            ErrorCode::DocumentMissing => "That import's document is no longer stored.",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Always `code.status()`.
    pub status: u16,
    pub code: ErrorCode,
    pub message: String,
    pub internal: Option<String>,
    /// Seconds to wait before trying again (`Retry-After` on a 429).
    pub retry_after_s: Option<i64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { status: code.status(), code, message: message.into(), internal: None, retry_after_s: None }
    }

    /// An error with its code's default message.
    pub fn of(code: ErrorCode) -> Self {
        Self::new(code, code.default_message())
    }

    /// Attach a diagnostic for the log only (never shown to the client).
    pub fn with_internal(mut self, internal: impl Into<String>) -> Self {
        self.internal = Some(internal.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
    pub fn not_found() -> Self {
        Self::of(ErrorCode::NotFound)
    }
    pub fn method_not_allowed() -> Self {
        Self::of(ErrorCode::MethodNotAllowed)
    }
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, format!("The request body exceeds the limit of {limit} bytes."))
    }
    pub fn unsupported_media_type(expected: &str) -> Self {
        Self::new(ErrorCode::UnsupportedMediaType, format!("Expected a request body of type {expected}."))
    }
    pub fn internal(internal: impl Into<String>) -> Self {
        Self::of(ErrorCode::Internal).with_internal(internal)
    }
    pub fn unavailable(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(code, message)
    }

    /// The JSON body every dashboard-API error has: `{"error":{"code","message"}}`.
    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code.as_str(), "message": self.message } })
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

    #[test]
    fn every_code_is_unique_snake_case_with_an_error_status() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert!(c.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{c}");
            assert!((400..600).contains(&c.status()), "{c}");
            assert!(!c.default_message().is_empty());
            assert_eq!(ApiError::of(*c).status, c.status());
        }
        // The two meanings that shared a code before now have one each.
        assert_eq!((ErrorCode::InvalidCredentials.status(), ErrorCode::WrongPassword.status()), (401, 403));
        assert_eq!(ErrorCode::WeakPassword.status(), 422);
    }
}
