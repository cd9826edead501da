//! FlowCP as the OAuth authorization server of published servers (issue 13): the pieces that
//! decide, as plain host-testable functions, and the endpoints built on them ([`http`]).
//!
//! - [`resource`]: which server a grant is for (RFC 8707 `resource`, normalised; or the
//!   server-scoped scope when a client omits it), with path-boundary matching.
//! - [`redirect`]: which redirect URIs a client may register and how a request matches one
//!   (exact, except loopback on any port; `javascript:` and the like refused).
//! - [`pkce`]: S256 only.
//! - [`tokens`]: FlowCP's authorization codes, access and refresh tokens: AES-256-GCM
//!   envelopes that hold the upstream tokens, bound by AAD to kind, server audience,
//!   connection and key id. FlowCP stores none of them.
//! - [`register`]: dynamic client registration (public clients).
//! - [`cimd`]: clients identified by their metadata document URL (fetched, cached).
//! - [`providers`]: the owner's upstream provider: presets, OpenID discovery, extra parameters.
//! - [`grant`]: codes and tokens as the callback and the token endpoint issue them; refresh.
//! - [`account`]: FlowCP's own MCP server (`<origin>/mcp`): a FlowCP account signs in and
//!   grants an agent one of its workspaces (no upstream provider).
//! - [`pages`]: what the OAuth pages share (the sealed consent ticket, cookies, HTML).
//! - [`http`]: the endpoints: metadata, registration, authorize and consent, callback, token,
//!   revocation.

pub mod account;
pub mod cimd;
pub mod flow;
pub mod grant;
pub mod http;
pub mod keys;
pub mod pages;
pub mod pkce;
pub mod portal;
pub mod providers;
pub mod redirect;
pub mod register;
pub mod resource;
pub mod store_refresh;
pub mod store_tools;
pub mod tokens;
pub mod upstream;

use serde_json::json;

/// An OAuth error answer (RFC 6749 §5.2 shape: `{"error", "error_description"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError { status, error, description: description.into() }
    }

    pub fn to_response(&self) -> crate::api::Response {
        crate::api::Response::json(self.status, json!({ "error": self.error, "error_description": self.description }))
            .with_header("cache-control", "no-store")
    }
}
