//! The 2026-07-28 era: no `initialize`, `server/discover`, a `_meta` envelope on every request,
//! `Mcp-Method`/`Mcp-Name` headers, `resultType` on every result, cacheable lists.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::jsonrpc::{self, INVALID_PARAMS, METHOD_NOT_FOUND};
use super::methods::{instructions, tools_call, tools_list};
use super::results::{self, Capabilities, DiscoverResult, ServerInfo};
use super::runtime::{header, CallCtx, CallToolResult};
use super::{Era, ProtocolVersion};
use crate::net::Http;
use crate::store::audit::AuditEvent;
use crate::store::Kv;

pub use super::transport::UNSUPPORTED_VERSION;
pub const HEADER_MISMATCH: i64 = -32020;
/// How long clients may cache `tools/list` and `server/discover` (a publish changes them).
pub const TTL_MS: u64 = 60_000;

fn all_versions() -> Vec<&'static str> {
    ProtocolVersion::all_strs()
}

/// Is `v` a version of this era?
pub fn speaks(v: &str) -> bool {
    ProtocolVersion::parse(v).is_some_and(|v| v.era() == Era::Envelope)
}

/// `=?base64?…?=` sentinel values of `Mcp-Name` are decoded before comparing.
fn decode_name(raw: &str) -> Option<String> {
    match raw.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?=")) {
        Some(b64) => STANDARD.decode(b64).ok().and_then(|b| String::from_utf8(b).ok()),
        None => Some(raw.to_string()),
    }
}

fn mismatch(id: Value, what: &str) -> (u16, Value) {
    (400, jsonrpc::error(id, HEADER_MISMATCH, format!("Header mismatch: {what}")))
}

pub async fn dispatch<K: Kv, H: Http>(
    ctx: &CallCtx<'_, '_, K, H>,
    id: Value,
    method: &str,
    params: &Value,
    version: &Value,
    headers: &[(String, String)],
    audit: &mut Vec<AuditEvent>,
) -> (u16, Value) {
    let requested = version.as_str().unwrap_or("");
    // The envelope and its header must agree before either is judged.
    if header(headers, "mcp-protocol-version").map(str::trim) != Some(requested) {
        return mismatch(id, "MCP-Protocol-Version must equal the _meta protocol version");
    }
    if !speaks(requested) {
        let data = json!({ "supported": all_versions(), "requested": version });
        return (400, jsonrpc::error_with_data(id, UNSUPPORTED_VERSION, "Unsupported protocol version", data));
    }
    if !params.pointer("/_meta/io.modelcontextprotocol~1clientCapabilities").is_some_and(Value::is_object) {
        return (
            400,
            jsonrpc::error(
                id,
                INVALID_PARAMS,
                "Invalid params: _meta must carry io.modelcontextprotocol/clientCapabilities (an object).",
            ),
        );
    }
    if header(headers, "mcp-method").map(str::trim) != Some(method) {
        return mismatch(id, "Mcp-Method must name the request's method");
    }
    if method == "tools/call" {
        let name = params.get("name").and_then(Value::as_str);
        if header(headers, "mcp-name").and_then(|h| decode_name(h.trim())).as_deref() != name || name.is_none() {
            return mismatch(id, "Mcp-Name must name the tool being called");
        }
    }
    let m = &ctx.loaded.manifest;
    let server_info = ServerInfo::of(m);
    let cache_scope = if m.auth.public { "public" } else { "private" };
    let result = match method {
        "server/discover" => Ok(results::value(&DiscoverResult {
            supported_versions: all_versions(),
            capabilities: Capabilities::TOOLS,
            server_info: server_info.clone(),
            instructions: instructions(m),
            ttl_ms: TTL_MS,
            cache_scope,
        })),
        // The 2026-07-28 era adds its cache hints to the list.
        "tools/list" => tools_list(ctx, params).await.map(|r| {
            let mut r = r.into_value();
            r["ttlMs"] = json!(TTL_MS);
            r["cacheScope"] = json!(cache_scope);
            r
        }),
        "tools/call" => tools_call(ctx, params, audit).await.map(CallToolResult::into_value),
        _ => return (404, jsonrpc::error(id, METHOD_NOT_FOUND, format!("Method not found: {method}"))),
    };
    match result {
        Ok(mut r) => {
            r["resultType"] = json!("complete");
            r["_meta"] = json!({ "io.modelcontextprotocol/serverInfo": server_info });
            (200, jsonrpc::result(id, r))
        }
        // A part of the manifest that could not be read (try again) is the server's failure.
        Err(e) => {
            let status = match e.code {
                INVALID_PARAMS => 200,
                jsonrpc::INTERNAL_ERROR => 503,
                _ => 400,
            };
            (status, jsonrpc::error(id, e.code, e.message))
        }
    }
}
