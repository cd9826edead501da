//! The MCP runtime: Streamable HTTP (stateless, JSON responses) for published servers.
//!
//! - `transport`: the HTTP-level rules (method, Accept, Content-Type, Origin, protocol version
//!   header, batches) before any JSON-RPC is dispatched.
//! - `jsonrpc`: message types and the spec's error codes.
//! - `server`: the dispatcher, written against the ports so it runs on the host in tests; it
//!   passes each message to `methods` (initialize, tools/list, tools/call) or `modern` (the
//!   2026-07-28 era), with `access` (who may call), `cache` (the isolate's manifests),
//!   `discovery` (the search/describe/call toolset), `call` (one upstream call) and `runtime`
//!   (what they share).
//!
//! Invariants: the hot path reads the published manifest (isolate cache, then KV) and never
//! D1 or an OpenAPI document; an upstream failure is a tool result with `isError: true`, a
//! protocol problem is a JSON-RPC error; no credential or access key is ever logged or echoed.

pub mod access;
mod cache;
mod call;
mod discovery;
pub mod jsonrpc;
pub mod management;
mod methods;
mod modern;
mod results;
pub mod runtime;
pub mod server;
pub mod shards;
pub mod skills;
pub mod store;
pub mod transport;
pub mod version;

pub use version::{Era, ProtocolVersion};
