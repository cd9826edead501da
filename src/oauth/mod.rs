//! FlowCP as the OAuth authorization server of published servers (issue 13): the pieces that
//! decide, as plain host-testable functions. No routes use them yet; the flow (metadata,
//! registration, authorize, consent, callback, token, revocation) is built on them next.
//!
//! - [`resource`]: which server a grant is for (RFC 8707 `resource`, normalised; or the
//!   server-scoped scope when a client omits it), with path-boundary matching.
//! - [`redirect`]: which redirect URIs a client may register and how a request matches one
//!   (exact, except loopback on any port; `javascript:` and the like refused).
//! - [`pkce`]: S256 only.
//! - [`tokens`]: FlowCP's authorization codes, access and refresh tokens: AES-256-GCM
//!   envelopes that hold the upstream tokens, bound by AAD to kind, server audience,
//!   connection and key id. FlowCP stores none of them.

pub mod pkce;
pub mod redirect;
pub mod resource;
pub mod tokens;
