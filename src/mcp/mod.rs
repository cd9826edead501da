//! The MCP runtime: Streamable HTTP (stateless, JSON responses) for published servers.
//!
//! - `transport`: the HTTP-level rules (method, Accept, Content-Type, Origin, protocol version
//!   header, batches) before any JSON-RPC is dispatched.
//! - `jsonrpc`: message types and the spec's error codes.
//! - `server`: the dispatcher (initialize, ping, tools/list, tools/call, discovery toolset),
//!   written against the ports so it runs on the host in tests.
//!
//! Invariants: the hot path reads the published manifest (isolate cache, then KV) and never
//! D1 or an OpenAPI document; an upstream failure is a tool result with `isError: true`, a
//! protocol problem is a JSON-RPC error; no credential or access key is ever logged or echoed.

pub mod jsonrpc;
pub mod server;
pub mod transport;

/// Protocol versions negotiated in `initialize`, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
pub const LATEST_VERSION: &str = "2025-11-25";
/// Versions of the initialize-free era, served on the same endpoint (see `server::modern`).
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];
/// The version a request without `MCP-Protocol-Version` is assumed to speak (spec rule).
pub const DEFAULT_VERSION: &str = "2025-03-26";
