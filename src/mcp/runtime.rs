//! What every part of the MCP runtime shares: the ports and settings of a request
//! ([`Runtime`]), the request and response shapes, the per-request context and the small
//! result builders.

use std::cell::RefCell;

use serde_json::Value;

use super::cache::{Loaded, ManifestCache};
use super::jsonrpc::{self, INTERNAL_ERROR};
use super::shards::RawPage;
use super::transport::{Preflight, Rejection};
use crate::crypto::Keyring;
use crate::net::{FetchPolicy, Http};
use crate::store::audit::AuditEvent;
use crate::store::Kv;

/// Upstream call budget.
pub const UPSTREAM_TIMEOUT_MS: u32 = 20_000;

/// What the runtime needs: ports, keys, the clock, and where it is reachable.
pub struct Runtime<'a, K: Kv, H: Http> {
    pub kv: &'a K,
    /// The isolate's hot-path caches.
    pub cache: &'a ManifestCache,
    pub http: &'a H,
    pub keyring: &'a Keyring,
    pub fetch_policy: FetchPolicy,
    /// `scheme://host[:port]` as clients reach this server.
    pub origin: String,
    /// Milliseconds since the epoch; used for audit timestamps and latency.
    pub clock: &'a dyn Fn() -> i64,
    /// Upstream call budget (`FLOWCP_UPSTREAM_TIMEOUT_MS`, default [`UPSTREAM_TIMEOUT_MS`]).
    pub upstream_timeout_ms: u32,
    /// How `user_key` servers admit a key (`None`: they answer 503).
    pub key_gate: Option<&'a dyn KeyGate>,
    /// The plans' monthly quotas (`crate::plans::Gate`); `None`: calls are not metered (FlowCP's
    /// own management server, host tests).
    pub quota: Option<&'a dyn QuotaGate>,
}

/// A `user_key` server's caller, admitted by its key (issue 16). `Debug` never prints the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Truncated SHA-256 of the opaque user id: the audit's connection hash.
    pub connection: String,
    /// The user's upstream access token for this request.
    pub upstream_token: Option<String>,
    /// Why the user's calls cannot reach the API now (their sign-in at the provider ended): every
    /// tool call answers this as a tool error.
    pub problem: Option<String>,
}

impl std::fmt::Debug for Admitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admitted")
            .field("connection", &self.connection)
            .field("upstream_token", &self.upstream_token.as_ref().map(|_| "[redacted]"))
            .field("problem", &self.problem)
            .finish()
    }
}

/// The future a [`KeyGate`] returns.
pub type GateFuture<'g> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Admitted, McpResponse>> + 'g>>;

/// What [`KeyGate::store_read`] answers: the stored answer and when it was fetched, `None` when
/// nothing is stored, or why the store cannot answer.
pub type StoreFuture<'g> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<(String, i64)>, String>> + 'g>>;

/// Admits the holder of a per-user key of a `user_key` server, or answers why not (401, 503).
/// It needs D1 (the user's epoch and sealed tokens) and the provider, which the runtime does not
/// otherwise reach: the glue passes `oauth::keys::Gate`.
pub trait KeyGate {
    fn admit<'g>(&'g self, m: &'g crate::manifest::Manifest, key: Option<&'g str>) -> GateFuture<'g>;
    /// The API answered 401 to the token [`KeyGate::admit`] gave for this request: the gate may
    /// drop it so the user's next call refreshes (bounded by the gate).
    fn upstream_refused<'g>(
        &'g self,
        m: &'g crate::manifest::Manifest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'g>>;
    /// The admitted user's stored answer of a synced tool for these arguments: the answer and
    /// when it was fetched, `None` when nothing is stored, or why the store cannot answer.
    fn store_read<'g>(&'g self, m: &'g crate::manifest::Manifest, tool: &'g str, args: &'g Value) -> StoreFuture<'g>;
    /// Keeps the admitted user's fresh answer of a synced tool (best effort).
    fn store_write<'g>(
        &'g self,
        m: &'g crate::manifest::Manifest,
        tool: &'g str,
        args: &'g Value,
        body: &'g [u8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'g>>;
}

/// The future a [`QuotaGate`] returns: the workspace's plan (`None`: unmetered), or why the
/// call is refused.
pub type QuotaFuture<'g> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<crate::vocab::Plan>, OverQuota>> + 'g>>;

/// A call refused by a quota: the plan it was refused under and what the caller is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverQuota {
    pub plan: crate::vocab::Plan,
    pub message: String,
}

/// Reserves one call of a published server's monthly quotas before it is sent upstream (issue
/// 16): the server's and the caller's (`connection`). It needs D1, which the runtime does not
/// otherwise reach: the glue passes `crate::plans::Gate`.
pub trait QuotaGate {
    fn reserve<'g>(&'g self, m: &'g crate::manifest::Manifest, connection: Option<&'g str>) -> QuotaFuture<'g>;
}

/// The HTTP request as the runtime sees it (header names in any case).
pub struct McpRequest<'a> {
    pub method: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq)]
pub struct McpResponse {
    pub status: u16,
    /// The JSON-RPC answer; with [`McpResponse::page`], its `result.tools` is a placeholder.
    pub body: Option<Value>,
    /// A stored `tools/list` page (format 3) that the body's `result.tools` stands for: sent as
    /// its bytes ([`McpResponse::body_bytes`]), never re-parsed.
    pub page: Option<std::rc::Rc<RawPage>>,
    pub headers: Vec<(String, String)>,
    /// One event per `tools/call`, to be written after the response.
    pub audit: Vec<AuditEvent>,
    /// Why a request failed on our side (5xx), for the operator log; never shown to clients.
    /// The glue logs it through the request's redactor.
    pub internal: Option<String>,
}

impl McpResponse {
    /// A response without a page.
    pub fn new(status: u16, body: Option<Value>) -> Self {
        McpResponse { status, body, page: None, headers: Vec::new(), audit: Vec::new(), internal: None }
    }

    /// The body as sent: JSON, with a stored page spliced in as its bytes.
    pub fn body_bytes(&self) -> Option<Vec<u8>> {
        let body = self.body.as_ref()?;
        let bytes = match &self.page {
            Some(page) => serde_json::to_vec(&Spliced { value: body, page: page.raw(), depth: 0 }),
            None => serde_json::to_vec(body),
        };
        // Values and raw JSON always serialise.
        Some(bytes.unwrap_or_default())
    }

    /// The body as a value (the page parsed in): for tests and callers that inspect answers.
    pub fn body_json(&self) -> Option<Value> {
        match &self.page {
            None => self.body.clone(),
            Some(_) => serde_json::from_slice(&self.body_bytes()?).ok(),
        }
    }
}

/// Serialises a JSON-RPC answer with `page` in place of `result.tools`.
struct Spliced<'a> {
    value: &'a Value,
    page: &'a serde_json::value::RawValue,
    depth: u8,
}

impl serde::Serialize for Spliced<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Value::Object(m) = self.value else { return self.value.serialize(s) };
        let mut map = s.serialize_map(Some(m.len()))?;
        for (k, v) in m {
            match (self.depth, k.as_str()) {
                (0, "result") => map.serialize_entry(k, &Spliced { value: v, page: self.page, depth: 1 })?,
                (1, "tools") => map.serialize_entry(k, self.page)?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

impl From<Rejection> for McpResponse {
    fn from(r: Rejection) -> Self {
        McpResponse {
            status: r.status,
            body: r.body,
            page: None,
            headers: r.headers,
            audit: Vec::new(),
            internal: None,
        }
    }
}

pub(crate) fn reject(status: u16, message: &str) -> McpResponse {
    McpResponse::new(status, Some(jsonrpc::error(Value::Null, jsonrpc::INVALID_REQUEST, message)))
}

pub(crate) use crate::net::header;

/// How the upstream refused an end user's token (OAuth servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// 401: the token is no longer valid there.
    Unauthorized,
    /// 403 for a missing scope: the upstream said `insufficient_scope` in its challenge, or
    /// (GitHub) named the scopes the route accepts.
    InsufficientScope,
}

impl Refused {
    pub(crate) fn of(status: u16, headers: &[(String, String)]) -> Option<Refused> {
        match status {
            401 => Some(Refused::Unauthorized),
            403 => {
                let challenge = header(headers, "www-authenticate").is_some_and(|v| v.contains("insufficient_scope"));
                // GitHub names the scopes a route accepts (any one suffices) and those the
                // token has, on most 403s: only a token holding none of them lacks a scope (a
                // rate limit or an SSO requirement is not a scope problem).
                let list = |name: &str| -> Vec<String> {
                    header(headers, name)
                        .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
                        .unwrap_or_default()
                };
                let accepted = list("x-accepted-oauth-scopes");
                let granted = list("x-oauth-scopes");
                let github = !accepted.is_empty()
                    && header(headers, "x-oauth-scopes").is_some()
                    && !accepted.iter().any(|a| granted.contains(a))
                    && header(headers, "x-ratelimit-remaining") != Some("0");
                (challenge || github).then_some(Refused::InsufficientScope)
            }
            _ => None,
        }
    }
}

pub(crate) struct CallCtx<'c, 'a, K: Kv, H: Http> {
    pub(crate) rt: &'c Runtime<'a, K, H>,
    pub(crate) loaded: &'c Loaded,
    pub(crate) connection: Option<&'c str>,
    /// OAuth servers: the end user's upstream access token for this request.
    pub(crate) upstream_token: Option<&'c str>,
    /// `user_key` servers whose user must sign in again: the tool error every call answers.
    pub(crate) upstream_problem: Option<&'c str>,
    /// Set when the upstream refused that token: the request is answered with the OAuth
    /// challenge, so the client refreshes, re-authorises or asks for more scopes.
    pub(crate) upstream_refused: std::cell::Cell<Option<Refused>>,
    pub(crate) pre: &'c Preflight,
    /// Named I/O phases of this request (ms), reported in `Server-Timing`.
    pub(crate) timings: RefCell<Vec<(&'static str, i64)>>,
    /// Whether the request is a single message (not a batch): its `tools/list` answer may carry
    /// a stored page as bytes ([`CallCtx::page`]).
    pub(crate) single: bool,
    /// A stored `tools/list` page that goes in the answer's `result.tools` ([`McpResponse::page`]).
    pub(crate) page: RefCell<Option<std::rc::Rc<RawPage>>>,
    /// Why a part of the manifest could not be read, for the operator log.
    pub(crate) problem: RefCell<Option<String>>,
    /// Where parts of a format-3 manifest are read from, within a per-request budget.
    pub(crate) reads: super::cache::Reads<'c, K>,
}

impl<K: Kv, H: Http> CallCtx<'_, '_, K, H> {
    /// A part of the published manifest could not be read: the caller gets an internal error
    /// (try again), the operator log the reason.
    pub(crate) fn unreadable(&self, e: super::cache::ManifestError) -> RpcError {
        if e == super::cache::ManifestError::TooManyParts {
            return RpcError::invalid_params(
                "This request names tools from too many parts of this server's manifest at once; ask for fewer per request.",
            );
        }
        *self.problem.borrow_mut() = Some(format!("manifest of {}: {e}", self.loaded.manifest.server_id));
        RpcError {
            code: jsonrpc::INTERNAL_ERROR,
            message: "This server's published configuration could not be read; try again.".into(),
        }
    }
}

/// A JSON-RPC error: code and message (the spec's codes are in `jsonrpc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RpcError {
    pub(crate) code: i64,
    pub(crate) message: String,
}

impl RpcError {
    pub(crate) fn invalid_params(message: impl Into<String>) -> Self {
        RpcError { code: jsonrpc::INVALID_PARAMS, message: message.into() }
    }
}

pub(crate) use crate::invoke::CallToolResult;

/// An internal failure as a JSON-RPC error (used by the glue when it cannot even start).
pub fn internal_error(message: &str) -> Value {
    jsonrpc::error(Value::Null, INTERNAL_ERROR, message)
}
