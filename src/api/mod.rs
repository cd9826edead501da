//! Handlers of the Worker's HTTP API, written against the storage ports so they run on the
//! host in tests. The glue parses the request, calls a handler, and writes its response.

pub mod health;

/// A handler's answer: status and JSON body. Glue turns it into a `Response`.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonResponse {
    pub status: u16,
    pub body: serde_json::Value,
}
