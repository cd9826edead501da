//! All Rust integration tests in one binary (keeps link time down on 2 cores).

mod auth;
mod crypto_envelopes;
mod engine;
mod health;
mod mcp;
mod retention;
mod support;
