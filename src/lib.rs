//! FlowCP: turns OpenAPI documents into hosted remote MCP servers.
//!
//! Everything outside `glue` is plain Rust that `cargo test` runs on the host. `glue` is the
//! only module that touches the Workers runtime (crate `worker`), and it is compiled for
//! wasm32 only, so core code cannot reach for JS-backed types by accident.

pub mod api;
pub mod auth;
pub mod civil;
pub mod config;
pub mod crypto;
pub mod cursor;
pub mod demo;
pub mod error;
pub mod git;
pub mod jobs;
pub mod mail;
pub mod manifest;
pub mod mcp;
pub mod net;
pub mod oauth;
pub mod plans;
pub mod redact;
pub mod security_txt;
pub mod service;
pub mod store;
pub mod vocab;

/// The OpenAPI engine (`crates/engine`), re-exported under its old paths.
pub use flowcp_engine::{invoke, openapi, tools};

#[cfg(target_arch = "wasm32")]
mod glue;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision the Worker was built from (set by `scripts/build-worker.sh`).
pub const GIT_REV: &str = match option_env!("FLOWCP_GIT_REV") {
    Some(rev) => rev,
    None => "dev",
};

/// The build version reported by `/healthz`: `<crate version>+<git revision>`.
pub fn build_version() -> String {
    format!("{VERSION}+{GIT_REV}")
}
