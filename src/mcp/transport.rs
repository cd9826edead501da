//! HTTP-level rules of Streamable HTTP for a stateless, JSON-only server.
//!
//! Checked in this order, before any JSON-RPC is read: method (POST only; GET and DELETE
//! answer 405 since we offer no SSE stream and no sessions; OPTIONS is the CORS preflight,
//! answered by the server), Content-Type (`application/json`, else 415), Accept
//! (must admit `application/json`, else 406; absent is tolerated), `MCP-Protocol-Version`
//! (unsupported -> 400). Then the body: unparsable JSON -> -32700; a batch is accepted only for
//! 2025-03-26, the last version that had batches.

use serde_json::Value;

use super::jsonrpc::{self, INVALID_REQUEST, PARSE_ERROR};
use super::ProtocolVersion;

/// JSON-RPC code of an unsupported protocol version (2026-07-28 era; older clients read the 400).
pub const UNSUPPORTED_VERSION: i64 = -32022;

/// An HTTP answer decided by the transport rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

impl Rejection {
    fn new(status: u16, message: &str) -> Self {
        Rejection { status, body: Some(jsonrpc::error(Value::Null, INVALID_REQUEST, message)), headers: Vec::new() }
    }
}

use crate::net::header;

/// What the transport learned from the headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    /// The protocol version the request declares (or the spec's default when absent).
    pub version: ProtocolVersion,
    pub version_header_present: bool,
}

/// Is `host` (the Host header, `name[:port]`) one of `allowed` (`name` matches any port,
/// `name:port` only that port)? An empty list allows no host (fail closed; the configuration
/// refuses an empty list, see `config::allowed_hosts`).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let (name, port) = match host.rfind(':') {
        Some(i) if !host.ends_with(']') => (&host[..i], Some(&host[i..])),
        _ => (host.as_str(), None),
    };
    // A fully qualified name (`example.com.`) is the same host.
    let name = name.strip_suffix('.').unwrap_or(name);
    let host = format!("{name}{}", port.unwrap_or(""));
    allowed.iter().any(|a| {
        let a = a.trim().to_ascii_lowercase();
        a == host || a == name
    })
}

/// May a browser page at `origin` call a server whose owner allows `allowed` (`None`: any)?
/// FlowCP's own origin always may. The DNS-rebinding defence is the Host allow-list (checked
/// before this): a rebound name arrives with a Host this deployment does not serve.
pub fn origin_allowed(origin: &str, own_origin: &str, allowed: Option<&[String]>) -> bool {
    let origin = origin.trim();
    if origin.eq_ignore_ascii_case(own_origin) {
        return true;
    }
    match allowed {
        None => true,
        Some(list) => list.iter().any(|a| a.eq_ignore_ascii_case(origin)),
    }
}

/// The refusal of a browser origin the owner did not allow.
pub fn forbidden_origin() -> Rejection {
    Rejection::new(403, "Forbidden: this server does not accept requests from this Origin.")
}

/// Headers a browser may send to a published server, and read from its answers (the OAuth
/// challenge, the session and version headers, the rate-limit wait).
pub const CORS_ALLOW_HEADERS: &str =
    "Authorization, Content-Type, Accept, Mcp-Protocol-Version, Mcp-Session-Id, Last-Event-ID, X-Api-Key";
pub const CORS_EXPOSE_HEADERS: &str = "WWW-Authenticate, Mcp-Session-Id, Mcp-Protocol-Version, Retry-After";

/// Response headers for a cross-origin caller at `origin` (never with credentials: access
/// keys travel in headers, and there is no cookie to send).
pub fn cors_headers(origin: &str) -> Vec<(String, String)> {
    vec![
        ("access-control-allow-origin".into(), origin.trim().to_string()),
        ("access-control-expose-headers".into(), CORS_EXPOSE_HEADERS.into()),
        ("vary".into(), "Origin".into()),
    ]
}

/// The answer to a CORS preflight that passed.
pub fn cors_preflight(origin: &str) -> Vec<(String, String)> {
    let mut h = cors_headers(origin);
    h.push(("access-control-allow-methods".into(), "POST, GET, DELETE, OPTIONS".into()));
    h.push(("access-control-allow-headers".into(), CORS_ALLOW_HEADERS.into()));
    h.push(("access-control-max-age".into(), "86400".into()));
    h
}

/// `own_origin`: `scheme://host[:port]` of this server (kept for the signature's callers).
pub fn preflight(method: &str, headers: &[(String, String)], _own_origin: &str) -> Result<Preflight, Rejection> {
    match method {
        "POST" => {}
        "GET" | "DELETE" | "PUT" | "PATCH" | "HEAD" | "OPTIONS" => {
            let mut r =
                Rejection::new(405, "Method not allowed: this MCP endpoint accepts POST (no SSE stream, no sessions).");
            r.headers.push(("allow".into(), "POST".into()));
            return Err(r);
        }
        _ => return Err(Rejection::new(405, "Method not allowed.")),
    }
    let content_type =
        header(headers, "content-type").map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if content_type.as_deref() != Some("application/json") {
        return Err(Rejection::new(415, "Unsupported Media Type: send the JSON-RPC message as application/json."));
    }
    if let Some(accept) = header(headers, "accept") {
        let ok = accept.split(',').any(|part| {
            let t = part.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            t == "application/json" || t == "*/*" || t == "application/*"
        });
        if !ok {
            return Err(Rejection::new(406, "Not Acceptable: the Accept header must include application/json."));
        }
    }
    let declared = header(headers, "mcp-protocol-version").map(str::trim);
    let version = match declared {
        None => ProtocolVersion::DEFAULT,
        Some(v) => match ProtocolVersion::parse(v) {
            Some(known) => known,
            None => {
                let supported = ProtocolVersion::all_strs();
                let mut r = Rejection::new(400, "");
                r.body = Some(jsonrpc::error_with_data(
                    Value::Null,
                    UNSUPPORTED_VERSION,
                    format!("Unsupported protocol version {v:?}; supported: {}.", supported.join(", ")),
                    serde_json::json!({ "supported": supported, "requested": v }),
                ));
                return Err(r);
            }
        },
    };
    Ok(Preflight { version, version_header_present: declared.is_some() })
}

/// Messages per batch (2025-03-26 only): bounds the upstream calls and audit rows one request
/// can cause.
pub const MAX_BATCH: usize = 32;

/// The parsed body: one message or a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Single(Value),
    Batch(Vec<Value>),
}

/// Parses the body: -32700 for bad JSON; batches only where the version allows them.
pub fn parse_body(body: &[u8], pre: &Preflight) -> Result<Body, Rejection> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Rejection {
        status: 400,
        body: Some(jsonrpc::error(Value::Null, PARSE_ERROR, format!("Parse error: {e}"))),
        headers: Vec::new(),
    })?;
    match value {
        Value::Array(items) => {
            if !pre.version.allows_batches() {
                return Err(Rejection::new(
                    400,
                    "Batches are not supported in this protocol version; send one message per request.",
                ));
            }
            if items.is_empty() {
                return Err(Rejection::new(400, "An empty batch is not a valid request."));
            }
            if items.len() > MAX_BATCH {
                return Err(Rejection::new(400, &format!("A batch may hold at most {MAX_BATCH} messages.")));
            }
            Ok(Body::Batch(items))
        }
        v => Ok(Body::Single(v)),
    }
}

/// The `id` of a single JSON-RPC request body, if it has a valid one (to answer a refusal
/// decided before the body is read to the request it belongs to).
pub fn request_id(body: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(body).ok()?;
    match v.get("id")? {
        id @ (Value::String(_) | Value::Number(_)) => Some(id.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "https://flowcp.example";

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn ok_headers() -> Vec<(String, String)> {
        h(&[("content-type", "application/json"), ("accept", "application/json, text/event-stream")])
    }

    #[test]
    fn a_well_formed_post_passes_with_the_default_version() {
        let p = preflight("POST", &ok_headers(), ORIGIN).unwrap();
        assert_eq!(p.version, ProtocolVersion::DEFAULT);
        assert!(!p.version_header_present);
    }

    #[test]
    fn each_http_rule_has_its_status() {
        assert_eq!(preflight("GET", &ok_headers(), ORIGIN).unwrap_err().status, 405);
        assert_eq!(preflight("DELETE", &ok_headers(), ORIGIN).unwrap_err().status, 405);
        let mut same = ok_headers();
        same.push(("Origin".into(), ORIGIN.into()));
        assert!(preflight("POST", &same, ORIGIN).is_ok());
        assert_eq!(preflight("POST", &h(&[("content-type", "text/plain")]), ORIGIN).unwrap_err().status, 415);
        assert_eq!(
            preflight("POST", &h(&[("content-type", "application/json"), ("accept", "text/html")]), ORIGIN)
                .unwrap_err()
                .status,
            406
        );
        let mut bad_version = ok_headers();
        bad_version.push(("MCP-Protocol-Version".into(), "1999-01-01".into()));
        assert_eq!(preflight("POST", &bad_version, ORIGIN).unwrap_err().status, 400);
    }

    #[test]
    fn origins_are_allowed_by_the_owner_list_or_any_when_there_is_none() {
        for origin in ["https://inspector.example", "null", "http://localhost:6274"] {
            assert!(origin_allowed(origin, ORIGIN, None), "{origin}");
        }
        let list = vec!["https://app.example".to_string(), "http://localhost:6274".to_string()];
        assert!(origin_allowed("https://app.example", ORIGIN, Some(&list)));
        assert!(origin_allowed("HTTPS://APP.EXAMPLE", ORIGIN, Some(&list)), "origins compare case-insensitively");
        assert!(origin_allowed(ORIGIN, ORIGIN, Some(&[])), "FlowCP's own origin always");
        for origin in ["https://evil.example", "null", "", "https://app.example:8443", "http://app.example"] {
            assert!(!origin_allowed(origin, ORIGIN, Some(&list)), "{origin:?}");
        }
        let h = cors_preflight("https://app.example");
        assert!(h.contains(&("access-control-allow-origin".into(), "https://app.example".into())));
        assert!(h.iter().any(|(k, v)| k == "access-control-expose-headers"
            && v.contains("WWW-Authenticate")
            && v.contains("Mcp-Session-Id")));
        assert!(!h.iter().any(|(k, _)| k == "access-control-allow-credentials"), "never with credentials");
    }

    #[test]
    fn refusals_say_what_is_allowed_and_lenient_accepts_pass() {
        for m in ["GET", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"] {
            let r = preflight(m, &ok_headers(), ORIGIN).unwrap_err();
            assert_eq!((r.status, r.headers.clone()), (405, vec![("allow".to_string(), "POST".to_string())]), "{m}");
        }
        for accept in ["*/*", "application/*", "application/json;q=0.9", "text/event-stream, APPLICATION/JSON"] {
            let hs = h(&[("content-type", "application/json; charset=utf-8"), ("accept", accept)]);
            assert!(preflight("POST", &hs, ORIGIN).is_ok(), "Accept {accept:?}");
        }
        assert!(preflight("POST", &h(&[("content-type", "application/json")]), ORIGIN).is_ok(), "no Accept");
        for accept in ["text/html", "text/event-stream", "application/xml"] {
            let hs = h(&[("content-type", "application/json"), ("accept", accept)]);
            assert_eq!(preflight("POST", &hs, ORIGIN).unwrap_err().status, 406, "Accept {accept:?}");
        }
        let mut bad_version = ok_headers();
        bad_version.push(("mcp-protocol-version".into(), "1999-01-01".into()));
        let body = preflight("POST", &bad_version, ORIGIN).unwrap_err().body.unwrap();
        assert_eq!(body["error"]["code"], -32022);
        assert_eq!(body["error"]["data"]["requested"], "1999-01-01");
        assert_eq!(request_id(br#"{"jsonrpc":"2.0","id":301,"method":"x"}"#), Some(serde_json::json!(301)));
        assert_eq!(request_id(br#"{"jsonrpc":"2.0","id":"a","method":"x"}"#), Some(serde_json::json!("a")));
        for none in [&br#"{"id":{"a":1}}"#[..], &b"[{\"id\":1}]"[..], &b"{nope"[..], &b"{}"[..]] {
            assert_eq!(request_id(none), None);
        }
    }

    #[test]
    fn host_allow_list_defends_against_dns_rebinding() {
        let local: Vec<String> = ["127.0.0.1", "localhost", "[::1]"].iter().map(|s| s.to_string()).collect();
        assert!(host_allowed("127.0.0.1:8787", &local));
        assert!(host_allowed("LOCALHOST:1", &local));
        assert!(host_allowed("[::1]:8787", &local));
        assert!(!host_allowed("evil.example.com", &local));
        assert!(!host_allowed("evil.example.com:8787", &local));
        assert!(!host_allowed("anything", &[]), "an empty list fails closed");
        assert!(!host_allowed("", &local), "an empty Host is not a listed host");
        assert!(!host_allowed("127.0.0.1.evil.example", &local));
        assert!(host_allowed("mcp.flowcp.dev:443", &["mcp.flowcp.dev:443".to_string()]));
        assert!(host_allowed("LOCALHOST.:8787", &local), "a trailing dot names the same host");
        assert!(!host_allowed("localhost..:8787", &local));
        assert!(!host_allowed("mcp.flowcp.dev:444", &["mcp.flowcp.dev:443".to_string()]));
    }

    #[test]
    fn batches_only_in_2025_03_26() {
        let old = Preflight { version: ProtocolVersion::V2025_03_26, version_header_present: true };
        let new = Preflight { version: ProtocolVersion::V2025_06_18, version_header_present: true };
        assert!(matches!(parse_body(b"[{}]", &old), Ok(Body::Batch(_))));
        let batch = |n: usize| format!("[{}]", vec!["{}"; n].join(","));
        assert!(matches!(parse_body(batch(MAX_BATCH).as_bytes(), &old), Ok(Body::Batch(b)) if b.len() == MAX_BATCH));
        assert_eq!(parse_body(batch(MAX_BATCH + 1).as_bytes(), &old).unwrap_err().status, 400);
        assert_eq!(parse_body(b"[]", &old).unwrap_err().status, 400, "an empty batch");
        assert_eq!(parse_body(b"[{}]", &new).unwrap_err().status, 400);
        let e = parse_body(b"{nope", &new).unwrap_err();
        assert_eq!(e.body.unwrap()["error"]["code"], PARSE_ERROR);
    }
}
