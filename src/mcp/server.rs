//! The MCP dispatcher for one published server: the transport rules, the manifest, access
//! control, then each message to its era's dispatcher.
//!
//! Reads only KV (the live-version pointer, the immutable manifest — cached per isolate — the
//! access-key mirror and the sealed credential); D1 is written only by the caller, after the
//! response, with the audit events this returns.

use std::cell::RefCell;

use serde_json::{json, Value};

use super::access::authorize;
use super::jsonrpc::{self, Message, INVALID_PARAMS, METHOD_NOT_FOUND};
use super::methods::{initialize, tools_call, tools_list};
use super::modern;
use super::results;
use super::runtime::{header, reject, CallCtx, CallToolResult, RpcError};
use super::transport::{self, Body};
use crate::net::Http;
use crate::store::audit::AuditEvent;
use crate::store::Kv;

pub use super::access::{protected_resource_metadata, resource_metadata_url};
pub use super::cache::{
    load_manifest, Loaded, ManifestCache, ManifestError, Reads, ToolRef, KV_TTL_MS, MANIFEST_CACHE_BYTES,
    MAX_PART_LOADS, PART_CACHE_BYTES,
};
pub use super::call::UPSTREAM_MAX_BYTES;
pub use super::methods::PAGE_SIZE;
pub use super::runtime::UPSTREAM_TIMEOUT_MS;
pub use super::runtime::{
    internal_error, Admitted, GateFuture, KeyGate, McpRequest, McpResponse, OverQuota, QuotaFuture, QuotaGate, Runtime,
};

/// Handles one request to `/mcp/<server_id>` (POST, or the CORS preflight). A browser caller
/// whose Origin the server allows gets CORS headers on every answer; one it does not allow
/// gets 403 without them.
pub async fn handle<K: Kv, H: Http>(rt: &Runtime<'_, K, H>, server_id: &str, req: &McpRequest<'_>) -> McpResponse {
    let origin = header(req.headers, "origin");
    let (mut out, cors) = serve(rt, server_id, req, origin).await;
    if let (Some(o), true) = (origin, cors) {
        out.headers.extend(transport::cors_headers(o));
    }
    out
}

/// The answer, and whether a cross-origin caller may read it.
async fn serve<K: Kv, H: Http>(
    rt: &Runtime<'_, K, H>,
    server_id: &str,
    req: &McpRequest<'_>,
    origin: Option<&str>,
) -> (McpResponse, bool) {
    let started = (rt.clock)();
    if req.method == "OPTIONS" {
        return match load_manifest(rt.kv, rt.cache, server_id, started).await {
            Ok(Some(l)) => match origin {
                Some(o) if !transport::origin_allowed(o, &rt.origin, l.manifest.allowed_origins.as_deref()) => {
                    (transport::forbidden_origin().into(), false)
                }
                _ => {
                    let mut r = McpResponse::new(204, None);
                    r.headers.push(("allow".into(), "POST, OPTIONS".into()));
                    if let Some(o) = origin {
                        // `handle` adds the common CORS headers.
                        r.headers.extend(transport::cors_preflight(o).into_iter().filter(|(k, _)| {
                            !matches!(
                                k.as_str(),
                                "access-control-allow-origin" | "access-control-expose-headers" | "vary"
                            )
                        }));
                    }
                    (r, true)
                }
            },
            Ok(None) => (reject(404, "Not Found: no published MCP server at this URL."), true),
            Err(_) => (reject(503, "This server's published configuration could not be read; try again."), true),
        };
    }
    let mut readable = true;
    let r = serve_post(rt, server_id, req, origin, started, &mut readable).await;
    (r, readable)
}

async fn serve_post<K: Kv, H: Http>(
    rt: &Runtime<'_, K, H>,
    server_id: &str,
    req: &McpRequest<'_>,
    origin: Option<&str>,
    started: i64,
    readable: &mut bool,
) -> McpResponse {
    let pre = match transport::preflight(req.method, req.headers, &rt.origin) {
        Ok(p) => p,
        Err(mut r) => {
            // An unsupported version is answered to the request that carried it (its id).
            if let Some(Value::Object(err)) = r.body.as_mut() {
                if err.get("error").and_then(|e| e.get("code")) == Some(&json!(transport::UNSUPPORTED_VERSION)) {
                    if let Some(id) = transport::request_id(req.body) {
                        err.insert("id".into(), id);
                    }
                }
            }
            return r.into();
        }
    };
    let loaded = match load_manifest(rt.kv, rt.cache, server_id, started).await {
        Ok(Some(l)) => l,
        Ok(None) => return reject(404, "Not Found: no published MCP server at this URL."),
        Err(e) => {
            let mut r = reject(503, "This server's published configuration could not be read; try again.");
            r.internal = Some(format!("manifest of {server_id}: {e}"));
            return r;
        }
    };
    if let Some(o) = origin {
        if !transport::origin_allowed(o, &rt.origin, loaded.manifest.allowed_origins.as_deref()) {
            *readable = false;
            return transport::forbidden_origin().into();
        }
    }
    let manifest_done = (rt.clock)();
    let caller = match authorize(rt, &loaded, req).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let phases = [("manifest", manifest_done - started), ("auth", (rt.clock)() - manifest_done)];
    respond(rt, &loaded, &caller, &pre, req, started, &phases).await
}

/// FlowCP's own management server (issue 15): `loaded` is built in-process, not published,
/// and the caller was authorized by its grant before (`connection`: the audit's connection
/// hash). The transport rules, origin check and dispatch are those of every published server.
pub async fn handle_builtin<K: Kv, H: Http>(
    rt: &Runtime<'_, K, H>,
    loaded: &Loaded,
    connection: Option<&str>,
    req: &McpRequest<'_>,
) -> McpResponse {
    let started = (rt.clock)();
    let origin = header(req.headers, "origin");
    if let Some(o) = origin {
        if !transport::origin_allowed(o, &rt.origin, loaded.manifest.allowed_origins.as_deref()) {
            return transport::forbidden_origin().into();
        }
    }
    let pre = match transport::preflight(req.method, req.headers, &rt.origin) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    let caller = super::access::Caller {
        connection: connection.map(str::to_string),
        upstream_token: None,
        upstream_problem: None,
    };
    let mut out = respond(rt, loaded, &caller, &pre, req, started, &[]).await;
    if let Some(o) = origin {
        out.headers.extend(transport::cors_headers(o));
    }
    out
}

/// The answer to an accepted request: its messages dispatched, with the Server-Timing phases
/// that came before (`phases`).
async fn respond<K: Kv, H: Http>(
    rt: &Runtime<'_, K, H>,
    loaded: &Loaded,
    caller: &super::access::Caller,
    pre: &transport::Preflight,
    req: &McpRequest<'_>,
    started: i64,
    phases: &[(&'static str, i64)],
) -> McpResponse {
    let body = match transport::parse_body(req.body, pre) {
        Ok(b) => b,
        Err(r) => return r.into(),
    };
    let ctx = CallCtx {
        rt,
        loaded,
        connection: caller.connection.as_deref(),
        upstream_token: caller.upstream_token.as_deref(),
        upstream_problem: caller.upstream_problem.as_deref(),
        upstream_refused: std::cell::Cell::new(None),
        pre,
        timings: RefCell::new(Vec::new()),
        single: matches!(body, Body::Single(_)),
        page: RefCell::new(None),
        problem: RefCell::new(None),
        reads: super::cache::Reads::new(rt.kv, rt.cache),
    };
    let mut audit = Vec::new();
    let mut out = match body {
        Body::Single(v) => match dispatch_single(&ctx, &v, req.headers, &mut audit).await {
            Some((status, resp)) => McpResponse::new(status, Some(resp)),
            None => McpResponse::new(202, None),
        },
        Body::Batch(items) => {
            let mut out = Vec::new();
            for v in &items {
                if let Some(resp) = dispatch(&ctx, v, &mut audit).await {
                    out.push(resp);
                }
            }
            one_invalid_row(&mut audit);
            if out.is_empty() {
                McpResponse::new(202, None)
            } else {
                McpResponse::new(200, Some(Value::Array(out)))
            }
        }
    };
    out.audit = audit;
    out.internal = ctx.problem.take();
    // A stored page stands for `result.tools` only in a successful answer.
    out.page = ctx.page.take().filter(|_| out.body.as_ref().is_some_and(|b| b.get("result").is_some()));
    if let Some(refused) = ctx.upstream_refused.get() {
        // The upstream refused the end user's token: an OAuth challenge, not a tool result, so
        // the client refreshes, re-authorises or asks for the scopes (the audit rows are kept).
        let mut r = super::access::upstream_refusal(&rt.origin, &loaded.manifest, refused);
        r.audit = std::mem::take(&mut out.audit);
        return r;
    }
    // Server-Timing: where the wall time of this request went (I/O waits dominate; on Workers
    // the clock only advances across I/O, so pure CPU phases read as 0).
    let mut phases = phases.to_vec();
    phases.extend(ctx.timings.borrow().iter().copied());
    phases.push(("total", (rt.clock)() - started));
    let header = phases.iter().map(|(n, d)| format!("{n};dur={d}")).collect::<Vec<_>>().join(", ");
    out.headers.push(("server-timing".into(), header));
    out
}

/// One message of the 2026-07-28 era or of the initialize-based versions, told apart by the
/// request itself: `initialize` is legacy; a `_meta` protocol version is modern.
async fn dispatch_single<K: Kv, H: Http>(
    ctx: &CallCtx<'_, '_, K, H>,
    v: &Value,
    headers: &[(String, String)],
    audit: &mut Vec<AuditEvent>,
) -> Option<(u16, Value)> {
    // A message that is not JSON-RPC at all is a transport-level error (400).
    let (id, method, params) = match jsonrpc::classify(v) {
        Err(e) => return Some((400, e)),
        Ok(Message::Notification { .. } | Message::Response) => return None,
        Ok(Message::Request { id, method, params }) => (id, method, params),
    };
    let meta_version = params.pointer("/_meta/io.modelcontextprotocol~1protocolVersion");
    // `initialize` is legacy, unless it arrives in the modern envelope (where it was removed).
    let modern_initialize = meta_version.and_then(Value::as_str).is_some_and(modern::speaks);
    if method != "initialize" || modern_initialize {
        if let Some(version) = meta_version {
            return Some(modern::dispatch(ctx, id, &method, &params, version, headers, audit).await);
        }
        if header(headers, "mcp-protocol-version").is_some_and(|h| modern::speaks(h.trim())) {
            return Some((
                400,
                jsonrpc::error(id, INVALID_PARAMS, "This protocol version needs the _meta envelope (io.modelcontextprotocol/protocolVersion) on every request."),
            ));
        }
    }
    Some((200, dispatch_request(ctx, id, &method, &params, audit).await))
}

/// A request writes at most one audit row for calls refused as invalid (the first): a batch of
/// a thousand invalid calls is one row, so failing validation cannot flood the audit log, while
/// calls that reached the upstream keep a row each.
fn one_invalid_row(audit: &mut Vec<AuditEvent>) {
    let mut seen = false;
    audit.retain(|e| e.outcome != crate::store::audit::Outcome::Invalid || !std::mem::replace(&mut seen, true));
}

/// One message of a legacy batch (2025-03-26): `None` for notifications and client responses.
async fn dispatch<K: Kv, H: Http>(
    ctx: &CallCtx<'_, '_, K, H>,
    v: &Value,
    audit: &mut Vec<AuditEvent>,
) -> Option<Value> {
    match jsonrpc::classify(v) {
        Err(e) => Some(e),
        Ok(Message::Notification { .. } | Message::Response) => None,
        Ok(Message::Request { id, method, params }) => Some(dispatch_request(ctx, id, &method, &params, audit).await),
    }
}

/// A request of the initialize-based versions.
async fn dispatch_request<K: Kv, H: Http>(
    ctx: &CallCtx<'_, '_, K, H>,
    id: Value,
    method: &str,
    params: &Value,
    audit: &mut Vec<AuditEvent>,
) -> Value {
    let not_found = |message: String| RpcError { code: METHOD_NOT_FOUND, message };
    let result = match method {
        "initialize" => Ok(results::value(&initialize(ctx, params))),
        "ping" => Ok(json!({})),
        "tools/list" => tools_list(ctx, params).await.map(results::ListToolsResult::into_value),
        "tools/call" => tools_call(ctx, params, audit).await.map(CallToolResult::into_value),
        "resources/list" | "prompts/list" | "resources/templates/list" => {
            Err(not_found(format!("Method not found: {method} (this server offers tools only)")))
        }
        _ => Err(not_found(format!("Method not found: {method}"))),
    };
    match result {
        Ok(r) => jsonrpc::result(id, r),
        Err(e) => jsonrpc::error(id, e.code, e.message),
    }
}
