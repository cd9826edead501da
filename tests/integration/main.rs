//! All Rust integration tests in one binary (keeps link time down on 2 cores).

pub(crate) mod api;
mod architecture;
mod audit_queue;
mod auth;
mod cli;
mod crypto_envelopes;
mod faults;
mod git;
mod golden;
mod health;
mod management;
mod mcp;
mod net;
mod oauth;
mod plans;
mod retention;
mod support;
mod user_keys;
