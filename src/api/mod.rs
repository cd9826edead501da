//! The dashboard's JSON API (`/api/v1`) and other HTTP handlers, written against the storage
//! ports so they run on the host in tests. The glue turns a Worker request into a [`Request`],
//! calls [`handle`], and writes the [`Response`].
//!
//! Invariants: every workspace-scoped route checks membership before it reads anything, and a
//! workspace the caller is not a member of answers 404 exactly like one that does not exist;
//! every state-changing route with a session requires the CSRF token; no response carries a
//! secret value.

pub mod accounts;
pub mod apps;
pub mod context;
pub mod data;
pub mod health;
pub mod input;
pub mod routes;
pub mod servers;
pub mod views;
pub mod workspaces;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::Secrets;
use crate::error::{check_body_len, ApiError, ErrorCode};
use crate::net::{FetchPolicy, Http};
use crate::store::{Db, Kv};

/// A handler's answer for simple JSON routes (used by `/healthz`).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonResponse {
    pub status: u16,
    pub body: Value,
}

/// An HTTP request, already read (the glue bounds the body before it gets here).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Decoded query pairs in order.
    pub query: Vec<(String, String)>,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client address (CF-Connecting-IP), for throttling only.
    pub client_addr: Option<String>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The media type of the body without parameters, lowercased.
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
    }

    /// Parses a JSON body: 415 unless `application/json`, 413 over `limit`, 400 `invalid_json`
    /// naming line and column when it does not parse or does not have the expected shape.
    pub fn json<T: DeserializeOwned>(&self, limit: usize) -> Result<T, ApiError> {
        check_body_len(self.body.len(), limit)?;
        match self.media_type().as_deref() {
            Some("application/json") => {}
            _ => return Err(ApiError::unsupported_media_type("application/json")),
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("The request body is not valid: {e}.")))
    }
}

/// For PATCH fields where `null` means "clear" and absence means "leave as it is":
/// `#[serde(default, deserialize_with = "double_option")] field: Option<Option<String>>`.
pub(crate) fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    use serde::Deserialize;
    Option::<String>::deserialize(d).map(Some)
}

/// An HTTP response from core code.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

impl Response {
    pub fn json(status: u16, body: Value) -> Self {
        Response { status, body: Some(body), headers: Vec::new() }
    }
    pub fn ok(body: Value) -> Self {
        Self::json(200, body)
    }
    pub fn created(body: Value) -> Self {
        Self::json(201, body)
    }
    pub fn no_content() -> Self {
        Response { status: 204, body: None, headers: Vec::new() }
    }
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
    pub fn from_error(e: &ApiError) -> Self {
        Self::json(e.status, e.body())
    }
}

/// What handlers may use: the storage ports, the secrets, the clock and settings.
pub struct Services<'a, D: Db, K: Kv, H: Http> {
    pub db: &'a D,
    pub kv: &'a K,
    pub http: &'a H,
    pub fetch_policy: FetchPolicy,
    pub secrets: &'a Secrets,
    pub now_ms: i64,
    /// `https://host` as clients see it (MCP URLs and client configuration are built from it).
    pub origin: String,
}

/// Handles one API request; never panics on input, never returns a 500 with backend details.
pub async fn handle<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request) -> Result<Response, ApiError> {
    routes::dispatch(svc, req).await
}
