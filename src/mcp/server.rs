//! The MCP dispatcher for one published server: access control, `initialize`, `ping`,
//! `tools/list`, `tools/call` and the discovery toolset.
//!
//! Reads only KV (the live-version pointer, the immutable manifest — cached per isolate — the
//! access-key mirror and the sealed credential); D1 is written only by the caller, after the
//! response, with the audit events this returns.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::jsonrpc::{self, Message, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND};
use super::transport::{self, Body, Preflight, Rejection};
use super::{LATEST_VERSION, SUPPORTED_VERSIONS};
use crate::crypto::{sha256_hex, sha256_hex_truncated, Keyring};
use crate::invoke::{build_request, invalid_arguments_result, map_response, validate_arguments, Credential};
use crate::manifest::{self, Manifest};
use crate::net::{check_url, FetchPolicy, Http, HttpRequest};
use crate::redact::Redactor;
use crate::store::audit::{AuditEvent, Outcome};
use crate::store::Kv;
use crate::tools::ToolDef;
use crate::vocab::AuthMode;

/// Tools per `tools/list` page.
pub const PAGE_SIZE: usize = 100;
/// Upstream call budget.
pub const UPSTREAM_TIMEOUT_MS: u32 = 20_000;
/// Bytes of an upstream body read at most (the result is cut further by the response budget).
pub const UPSTREAM_MAX_BYTES: usize = 4 * 1024 * 1024;
const MAX_REDIRECTS: u8 = 3;
const MANIFEST_CACHE_ENTRIES: usize = 64;

/// What the runtime needs: ports, keys, the clock, and where it is reachable.
pub struct Runtime<'a, K: Kv, H: Http> {
    pub kv: &'a K,
    /// The isolate's hot-path caches.
    pub cache: &'a ManifestCache,
    pub http: &'a H,
    pub keyring: &'a Keyring,
    pub fetch_policy: FetchPolicy,
    /// `scheme://host[:port]` as clients reach this server.
    pub origin: String,
    /// Milliseconds since the epoch; used for audit timestamps and latency.
    pub clock: &'a dyn Fn() -> i64,
    /// Upstream call budget (`FLOWCP_UPSTREAM_TIMEOUT_MS`, default [`UPSTREAM_TIMEOUT_MS`]).
    pub upstream_timeout_ms: u32,
}

/// The HTTP request as the runtime sees it (header names in any case).
pub struct McpRequest<'a> {
    pub method: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq)]
pub struct McpResponse {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
    /// One event per `tools/call`, to be written after the response.
    pub audit: Vec<AuditEvent>,
    /// Why a request failed on our side (5xx), for the operator log; never shown to clients.
    /// The glue logs it through the request's redactor.
    pub internal: Option<String>,
}

impl From<Rejection> for McpResponse {
    fn from(r: Rejection) -> Self {
        McpResponse { status: r.status, body: r.body, headers: r.headers, audit: Vec::new(), internal: None }
    }
}

fn reject(status: u16, message: &str) -> McpResponse {
    McpResponse {
        status,
        body: Some(jsonrpc::error(Value::Null, jsonrpc::INVALID_REQUEST, message)),
        headers: Vec::new(),
        audit: Vec::new(),
        internal: None,
    }
}

/// A manifest with what the hot path derives from it once per isolate.
pub struct Loaded {
    pub manifest: Manifest,
    /// Exposed tools as `tools/list` shows them (the discovery tools in discovery mode).
    pub listed: Vec<Value>,
    /// Tool name -> index in `manifest.tools`.
    pub index: HashMap<String, usize>,
}

/// How long an isolate trusts what it read of small mutable KV entries (the live-version
/// pointer, access-key mirrors). KV itself propagates writes globally within ~60 s, so this adds
/// no new staleness in production; it saves one or two KV reads per MCP request under load.
pub const KV_TTL_MS: i64 = 1_000;
const SMALL_CACHE_ENTRIES: usize = 4_096;

/// A KV value (or its absence) and when it was read.
type CachedValue = (Option<Vec<u8>>, i64);

/// The isolate's caches of the hot path: prepared manifests by (server, version) — immutable,
/// so never stale — and small KV entries (live pointers, access-key mirrors) for
/// [`KV_TTL_MS`]. The glue owns one per isolate and passes it in; tests make their own.
#[derive(Default)]
pub struct ManifestCache {
    manifests: RefCell<HashMap<(String, i64), Rc<Loaded>>>,
    /// KV key -> (value, read at): short-lived cache of small KV entries (negative ones too).
    small: RefCell<HashMap<String, CachedValue>>,
}

impl ManifestCache {
    /// Reads a small KV entry through the short-lived cache.
    async fn get(&self, kv: &impl Kv, key: &str, now_ms: i64) -> Result<Option<Vec<u8>>, String> {
        let hit = self
            .small
            .borrow()
            .get(key)
            .filter(|(_, at)| now_ms - at < KV_TTL_MS && now_ms >= *at)
            .map(|(v, _)| v.clone());
        if let Some(v) = hit {
            return Ok(v);
        }
        let v = kv.get(key).await.map_err(|e| e.to_string())?;
        let mut c = self.small.borrow_mut();
        if c.len() >= SMALL_CACHE_ENTRIES {
            c.clear();
        }
        c.insert(key.to_string(), (v.clone(), now_ms));
        Ok(v)
    }
}

async fn live_version(
    kv: &impl Kv,
    cache: &ManifestCache,
    server_id: &str,
    now_ms: i64,
) -> Result<Option<i64>, String> {
    let Some(v) = cache.get(kv, &manifest::live_key(server_id), now_ms).await? else { return Ok(None) };
    std::str::from_utf8(&v)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| "corrupt live pointer".to_string())
}

fn prepare(manifest: Manifest) -> Loaded {
    let index = manifest.tools.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
    let listed = if manifest.discovery {
        discovery_tools(manifest.tools.len())
    } else {
        manifest.tools.iter().map(ToolDef::to_mcp_json).collect()
    };
    Loaded { manifest, listed, index }
}

/// The live manifest of a server: one KV read for the live version, then the isolate cache
/// (manifests are immutable per version) or a second KV read.
pub async fn load_manifest(
    kv: &impl Kv,
    cache: &ManifestCache,
    server_id: &str,
    now_ms: i64,
) -> Result<Option<Rc<Loaded>>, String> {
    let Some(version) = live_version(kv, cache, server_id, now_ms).await? else { return Ok(None) };
    let key = (server_id.to_string(), version);
    if let Some(hit) = cache.manifests.borrow().get(&key).cloned() {
        return Ok(Some(hit));
    }
    let Some(bytes) = kv.get(&manifest::manifest_key(server_id, version)).await.map_err(|e| e.to_string())? else {
        return Err(format!("manifest version {version} is missing"));
    };
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| format!("corrupt manifest: {e}"))?;
    if m.server_id != server_id || m.format != manifest::FORMAT {
        return Err("manifest does not belong to this server or has an unknown format".into());
    }
    let loaded = Rc::new(prepare(m));
    let mut c = cache.manifests.borrow_mut();
    if c.len() >= MANIFEST_CACHE_ENTRIES {
        c.clear();
    }
    c.insert(key, loaded.clone());
    Ok(Some(loaded))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The URL of the protected-resource metadata of a server (RFC 9728).
pub fn resource_metadata_url(origin: &str, server_id: &str) -> String {
    format!("{origin}/.well-known/oauth-protected-resource/mcp/{server_id}")
}

/// RFC 9728 protected-resource metadata for an OAuth-mode server.
pub fn protected_resource_metadata(origin: &str, m: &Manifest) -> Value {
    json!({
        "resource": format!("{origin}/mcp/{}", m.server_id),
        "authorization_servers": [format!("{origin}/oauth/{}", m.server_id)],
        "scopes_supported": m.auth.scopes,
        "bearer_methods_supported": ["header"],
        "resource_name": m.name,
    })
}

/// Who is calling: `Some(hash)` for an access key (truncated SHA-256 of its id), `None` for a
/// public server.
async fn authorize<K: Kv, H: Http>(
    rt: &Runtime<'_, K, H>,
    loaded: &Loaded,
    req: &McpRequest<'_>,
) -> Result<Option<String>, McpResponse> {
    let m = &loaded.manifest;
    if m.auth.mode == AuthMode::Oauth {
        // TODO-correctness: the OAuth flow itself is a later issue; until then every request
        // is told where the metadata is and denied (fail closed).
        let www = format!("Bearer resource_metadata=\"{}\"", resource_metadata_url(&rt.origin, &m.server_id));
        let mut r = reject(
            401,
            "Unauthorized: this server uses OAuth; obtain an access token via the protected resource metadata.",
        );
        r.headers.push(("www-authenticate".into(), www));
        return Err(r);
    }
    if m.auth.public {
        return Ok(None);
    }
    let presented = header(req.headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .or_else(|| header(req.headers, "x-api-key"))
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let denied = |msg: &str| {
        let mut r = reject(401, msg);
        r.headers.push(("www-authenticate".into(), "Bearer realm=\"flowcp\"".into()));
        r
    };
    let Some(key) = presented else {
        return Err(denied(
            "Unauthorized: send this server's access key as `Authorization: Bearer fcp_sk_...` or `X-API-Key`.",
        ));
    };
    let mirror =
        rt.cache.get(rt.kv, &manifest::access_key_key(&sha256_hex(key.as_bytes())), (rt.clock)()).await.map_err(
            |e| {
                let mut r = reject(503, "The access-key store is unavailable; try again.");
                r.internal = Some(format!("access-key read failed: {e}"));
                r
            },
        )?;
    let Some(mirror) = mirror.and_then(|b| serde_json::from_slice::<Value>(&b).ok()) else {
        return Err(denied("Unauthorized: the access key is not valid for this server (revoked or mistyped)."));
    };
    if mirror.get("server_id").and_then(Value::as_str) != Some(m.server_id.as_str()) {
        return Err(denied("Unauthorized: the access key is not valid for this server (revoked or mistyped)."));
    }
    let key_id = mirror.get("key_id").and_then(Value::as_str).unwrap_or("");
    Ok(Some(sha256_hex_truncated(key_id.as_bytes(), 16)))
}

/// Handles one POST to `/mcp/<server_id>`.
pub async fn handle<K: Kv, H: Http>(rt: &Runtime<'_, K, H>, server_id: &str, req: &McpRequest<'_>) -> McpResponse {
    let started = (rt.clock)();
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
    let manifest_done = (rt.clock)();
    let connection = match authorize(rt, &loaded, req).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let auth_done = (rt.clock)();
    let body = match transport::parse_body(req.body, &pre) {
        Ok(b) => b,
        Err(r) => return r.into(),
    };
    let ctx = CallCtx {
        rt,
        loaded: &loaded,
        connection: connection.as_deref(),
        pre: &pre,
        timings: RefCell::new(Vec::new()),
    };
    let mut audit = Vec::new();
    let mut out = match body {
        Body::Single(v) => match dispatch_single(&ctx, &v, req.headers, &mut audit).await {
            Some((status, resp)) => {
                McpResponse { status, body: Some(resp), headers: Vec::new(), audit, internal: None }
            }
            None => McpResponse { status: 202, body: None, headers: Vec::new(), audit, internal: None },
        },
        Body::Batch(items) => {
            let mut out = Vec::new();
            for v in &items {
                if let Some(resp) = dispatch(&ctx, v, &mut audit).await {
                    out.push(resp);
                }
            }
            if out.is_empty() {
                McpResponse { status: 202, body: None, headers: Vec::new(), audit, internal: None }
            } else {
                McpResponse { status: 200, body: Some(Value::Array(out)), headers: Vec::new(), audit, internal: None }
            }
        }
    };
    // Server-Timing: where the wall time of this request went (I/O waits dominate; on Workers
    // the clock only advances across I/O, so pure CPU phases read as 0).
    let mut phases = vec![("manifest", manifest_done - started), ("auth", auth_done - manifest_done)];
    phases.extend(ctx.timings.borrow().iter().copied());
    phases.push(("total", (rt.clock)() - started));
    let header = phases.iter().map(|(n, d)| format!("{n};dur={d}")).collect::<Vec<_>>().join(", ");
    out.headers.push(("server-timing".into(), header));
    out
}

struct CallCtx<'c, 'a, K: Kv, H: Http> {
    rt: &'c Runtime<'a, K, H>,
    loaded: &'c Loaded,
    connection: Option<&'c str>,
    pre: &'c Preflight,
    /// Named I/O phases of this request (ms), reported in `Server-Timing`.
    timings: RefCell<Vec<(&'static str, i64)>>,
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
    let modern_initialize = meta_version.and_then(Value::as_str).is_some_and(|v| modern::VERSIONS.contains(&v));
    if method != "initialize" || modern_initialize {
        if let Some(version) = meta_version {
            return Some(modern::dispatch(ctx, id, &method, &params, version, headers, audit).await);
        }
        if header(headers, "mcp-protocol-version").is_some_and(|h| modern::VERSIONS.contains(&h.trim())) {
            return Some((
                400,
                jsonrpc::error(id, INVALID_PARAMS, "This protocol version needs the _meta envelope (io.modelcontextprotocol/protocolVersion) on every request."),
            ));
        }
    }
    Some((200, dispatch_request(ctx, id, &method, &params, audit).await))
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
    let result = match method {
        "initialize" => Ok(initialize(ctx, params)),
        "ping" => Ok(json!({})),
        "tools/list" => tools_list(ctx.loaded, params),
        "tools/call" => tools_call(ctx, params, audit).await,
        "resources/list" | "prompts/list" | "resources/templates/list" => {
            Err((METHOD_NOT_FOUND, format!("Method not found: {method} (this server offers tools only)")))
        }
        _ => Err((METHOD_NOT_FOUND, format!("Method not found: {method}"))),
    };
    match result {
        Ok(r) => jsonrpc::result(id, r),
        Err((code, msg)) => jsonrpc::error(id, code, msg),
    }
}

/// The 2026-07-28 era: no `initialize`, `server/discover`, a `_meta` envelope on every request,
/// `Mcp-Method`/`Mcp-Name` headers, `resultType` on every result, cacheable lists.
mod modern {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde_json::{json, Value};

    use super::super::jsonrpc::{self, INVALID_PARAMS, METHOD_NOT_FOUND};
    use super::super::SUPPORTED_VERSIONS;
    use super::{header, tools_call, tools_list, AuditEvent, CallCtx, Http, Kv};

    pub use super::super::transport::UNSUPPORTED_VERSION;
    pub use super::super::MODERN_VERSIONS as VERSIONS;
    pub const HEADER_MISMATCH: i64 = -32020;
    /// How long clients may cache `tools/list` and `server/discover` (a publish changes them).
    pub const TTL_MS: u64 = 60_000;

    fn all_versions() -> Vec<&'static str> {
        VERSIONS.iter().chain(SUPPORTED_VERSIONS.iter()).copied().collect()
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
        if !VERSIONS.contains(&requested) {
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
        let server_info =
            json!({ "name": format!("flowcp-{}", m.server_id), "title": m.name, "version": m.version.to_string() });
        let cache_scope = if m.auth.public { "public" } else { "private" };
        let result = match method {
            "server/discover" => Ok(json!({
                "supportedVersions": all_versions(),
                "capabilities": { "tools": { "listChanged": false } },
                "serverInfo": server_info,
                "instructions": super::instructions(m),
                "ttlMs": TTL_MS,
                "cacheScope": cache_scope,
            })),
            "tools/list" => tools_list(ctx.loaded, params).map(|mut r| {
                r["ttlMs"] = json!(TTL_MS);
                r["cacheScope"] = json!(cache_scope);
                r
            }),
            "tools/call" => tools_call(ctx, params, audit).await,
            _ => return (404, jsonrpc::error(id, METHOD_NOT_FOUND, format!("Method not found: {method}"))),
        };
        match result {
            Ok(mut r) => {
                r["resultType"] = json!("complete");
                r["_meta"] = json!({ "io.modelcontextprotocol/serverInfo": server_info });
                (200, jsonrpc::result(id, r))
            }
            Err((code, msg)) => (if code == INVALID_PARAMS { 200 } else { 400 }, jsonrpc::error(id, code, msg)),
        }
    }
}

fn initialize<K: Kv, H: Http>(ctx: &CallCtx<'_, '_, K, H>, params: &Value) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str).unwrap_or(ctx.pre.version.as_str());
    let version = if SUPPORTED_VERSIONS.contains(&asked) { asked } else { LATEST_VERSION };
    let m = &ctx.loaded.manifest;
    let instructions = instructions(m);
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": { "name": format!("flowcp-{}", m.server_id), "title": m.name, "version": format!("{}", m.version) },
        "instructions": instructions,
    })
}

fn instructions(m: &Manifest) -> String {
    if m.discovery {
        format!(
            "{} exposes {} API operations through three tools: search_tools to find one, describe_tool to read its input schema, call_tool to call it.",
            m.name,
            m.tools.len()
        )
    } else {
        format!("Tools of {} generated from its OpenAPI document by FlowCP.", m.name)
    }
}

type RpcResult = Result<Value, (i64, String)>;

fn encode_cursor(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("o:{offset}"))
}

fn decode_cursor(c: &str, len: usize) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(c).ok()?;
    let offset: usize = std::str::from_utf8(&raw).ok()?.strip_prefix("o:")?.parse().ok()?;
    (offset <= len).then_some(offset)
}

fn tools_list(loaded: &Loaded, params: &Value) -> RpcResult {
    let total = loaded.listed.len();
    let start = match params.get("cursor") {
        None | Some(Value::Null) => 0,
        Some(Value::String(c)) => {
            decode_cursor(c, total).ok_or((INVALID_PARAMS, "Invalid params: unknown cursor".to_string()))?
        }
        Some(_) => return Err((INVALID_PARAMS, "Invalid params: cursor must be a string".into())),
    };
    let end = (start + PAGE_SIZE).min(total);
    let mut out = json!({ "tools": loaded.listed[start..end] });
    if end < total {
        out["nextCursor"] = json!(encode_cursor(end));
    }
    Ok(out)
}

const SEARCH: &str = "search_tools";
const DESCRIBE: &str = "describe_tool";
const CALL: &str = "call_tool";

fn discovery_tools(count: usize) -> Vec<Value> {
    vec![
        json!({
            "name": SEARCH,
            "title": "Search the API's operations",
            "description": format!("Finds operations of this API ({count} in all) by words in their name, title, description or path, and/or by tag. Returns names and one-line summaries; use describe_tool for the input schema."),
            "inputSchema": { "type": "object", "properties": {
                "query": { "type": "string", "description": "Words to look for" },
                "tag": { "type": "string", "description": "Only operations with this tag" },
                "limit": { "type": "integer", "minimum": 1, "maximum": 50, "default": 20 }
            } },
            "annotations": { "readOnlyHint": true, "openWorldHint": false }
        }),
        json!({
            "name": DESCRIBE,
            "title": "Describe one operation",
            "description": "Returns one operation's full description, input schema and annotations, by name (from search_tools).",
            "inputSchema": { "type": "object", "properties": { "name": { "type": "string" } }, "required": ["name"] },
            "annotations": { "readOnlyHint": true, "openWorldHint": false }
        }),
        json!({
            "name": CALL,
            "title": "Call one operation",
            "description": "Calls an operation by name with arguments matching its input schema (see describe_tool).",
            "inputSchema": { "type": "object", "properties": {
                "name": { "type": "string" },
                "arguments": { "type": "object" }
            }, "required": ["name"] },
            "annotations": { "openWorldHint": true }
        }),
    ]
}

fn text_result(value: &Value) -> Value {
    json!({ "content": [{ "type": "text", "text": value.to_string() }], "structuredContent": value })
}

fn error_result(message: &str) -> Value {
    json!({ "content": [{ "type": "text", "text": message }], "isError": true })
}

fn search(loaded: &Loaded, args: &Value) -> Value {
    let words: Vec<String> =
        args.get("query").and_then(Value::as_str).unwrap_or("").split_whitespace().map(str::to_lowercase).collect();
    let tag = args.get("tag").and_then(Value::as_str);
    let limit = args.get("limit").and_then(Value::as_u64).unwrap_or(20).clamp(1, 50) as usize;
    let mut scored: Vec<(usize, &ToolDef)> = loaded
        .manifest
        .tools
        .iter()
        .filter(|t| tag.is_none_or(|g| t.tags.iter().any(|x| x.eq_ignore_ascii_case(g))))
        .filter_map(|t| {
            if words.is_empty() {
                return Some((0, t));
            }
            let name = t.name.to_lowercase();
            let hay = format!("{} {} {} {}", name, t.title.as_deref().unwrap_or(""), t.description, t.operation_key)
                .to_lowercase();
            let hits = words.iter().filter(|w| hay.contains(w.as_str())).count();
            let bonus = words.iter().filter(|w| name.contains(w.as_str())).count();
            (hits > 0).then_some((hits * 2 + bonus, t))
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
    let total = scored.len();
    let items: Vec<Value> = scored
        .into_iter()
        .take(limit)
        .map(|(_, t)| {
            let summary: String = t.description.lines().next().unwrap_or("").chars().take(160).collect();
            json!({ "name": t.name, "title": t.title, "summary": summary, "tags": t.tags, "operation": t.operation_key })
        })
        .collect();
    json!({ "tools": items, "matched": total })
}

async fn tools_call<K: Kv, H: Http>(
    ctx: &CallCtx<'_, '_, K, H>,
    params: &Value,
    audit: &mut Vec<AuditEvent>,
) -> RpcResult {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or((INVALID_PARAMS, "Invalid params: name is required".to_string()))?;
    let args = match params.get("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err((INVALID_PARAMS, "Invalid params: arguments must be an object".into())),
    };
    let loaded = ctx.loaded;
    if loaded.manifest.discovery {
        return match name {
            SEARCH => Ok(text_result(&search(loaded, &args))),
            DESCRIBE => {
                let target = args.get("name").and_then(Value::as_str).unwrap_or("");
                Ok(match loaded.index.get(target) {
                    Some(&i) => text_result(&loaded.manifest.tools[i].to_mcp_json()),
                    None => error_result(&format!("No operation is named {target:?}; use search_tools to find one.")),
                })
            }
            CALL => {
                let target = args.get("name").and_then(Value::as_str).unwrap_or("");
                let inner = args.get("arguments").cloned().unwrap_or(Value::Object(Map::new()));
                match loaded.index.get(target) {
                    Some(&i) if inner.is_object() => {
                        Ok(call_upstream(ctx, &loaded.manifest.tools[i], &inner, audit).await)
                    }
                    Some(_) => Ok(error_result("arguments must be an object")),
                    None => {
                        Ok(error_result(&format!("No operation is named {target:?}; use search_tools to find one.")))
                    }
                }
            }
            _ => Err((INVALID_PARAMS, format!("Unknown tool: {name}"))),
        };
    }
    let &i = loaded.index.get(name).ok_or((INVALID_PARAMS, format!("Unknown tool: {name}")))?;
    Ok(call_upstream(ctx, &loaded.manifest.tools[i], &args, audit).await)
}

/// Opens the server's sealed credential and places it as the mode says. `Err` means the call
/// must be denied (fail closed), with a message safe to show.
async fn credential<K: Kv, H: Http>(rt: &Runtime<'_, K, H>, m: &Manifest) -> Result<Credential, &'static str> {
    const MISSING: &str = "The server's upstream credential is not available; the owner must set it and publish again.";
    let value = match (m.auth.mode, m.auth.credential_ref.as_deref()) {
        (AuthMode::None, _) => None,
        (AuthMode::ApiKey | AuthMode::Bearer, Some(key)) => {
            manifest::open_credential(rt.kv, rt.keyring, &m.server_id, key).await.map_err(|_| MISSING)?
        }
        (AuthMode::ApiKey | AuthMode::Bearer, None) => return Err(MISSING),
        // TODO-correctness: per-user OAuth (issue 13); until then an oauth server never calls.
        (AuthMode::Oauth, _) => return Err("This server's auth mode cannot call the API yet."),
    };
    manifest::place_credential(m.auth.mode, m.auth.placement.as_ref(), value).ok_or(MISSING)
}

/// Replaces the credential's value, in every form it can take on the wire or in an echo
/// (see [`Redactor::text`]), in text shown to the model.
fn redact_credential(text: &str, cred: &Credential) -> String {
    match cred.secret() {
        Some(value) => Redactor::of_values([value]).text(text),
        None => text.to_string(),
    }
}

fn same_authority(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

async fn call_upstream<K: Kv, H: Http>(
    ctx: &CallCtx<'_, '_, K, H>,
    tool: &ToolDef,
    args: &Value,
    audit: &mut Vec<AuditEvent>,
) -> Value {
    let rt = ctx.rt;
    let m = &ctx.loaded.manifest;
    let started = (rt.clock)();
    let mut event = AuditEvent {
        ts_ms: started,
        workspace_id: m.workspace_id.clone(),
        server_id: m.server_id.clone(),
        tool_name: tool.name.clone(),
        outcome: Outcome::Ok,
        upstream_status: None,
        latency_ms: 0,
        request_bytes: 0,
        response_bytes: 0,
        connection_hash: ctx.connection.map(str::to_string),
    };
    let result = call_upstream_inner(ctx, m, tool, args, &mut event).await;
    event.latency_ms = (rt.clock)() - started;
    audit.push(event);
    result
}

async fn call_upstream_inner<K: Kv, H: Http>(
    ctx: &CallCtx<'_, '_, K, H>,
    m: &Manifest,
    tool: &ToolDef,
    args: &Value,
    event: &mut AuditEvent,
) -> Value {
    let problems = validate_arguments(&tool.input_schema, args);
    if !problems.is_empty() {
        event.outcome = Outcome::Invalid;
        return invalid_arguments_result(&problems);
    }
    let rt = ctx.rt;
    let t0 = (rt.clock)();
    let cred = credential(rt, m).await;
    ctx.timings.borrow_mut().push(("credential", (rt.clock)() - t0));
    let cred = match cred {
        Ok(c) => c,
        Err(msg) => {
            event.outcome = Outcome::Denied;
            return error_result(msg);
        }
    };
    let plan = match build_request(tool, args, &cred, m.base_url.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            event.outcome = Outcome::Invalid;
            return error_result(&format!("The request could not be built: {e}."));
        }
    };
    let Ok(mut url) = check_url(&plan.url, rt.fetch_policy) else {
        event.outcome = Outcome::Denied;
        return error_result(
            "The API's address is not allowed (private or non-https); the owner must fix the base URL.",
        );
    };
    // The credential only goes to the origin it was entered for (fail closed otherwise).
    if cred != Credential::None && Some(url.origin().ascii_serialization()) != m.auth.credential_origin {
        event.outcome = Outcome::Denied;
        return error_result(
            "The API's address is not the one this server's credential was set for; the owner must set the credential again and publish.",
        );
    }
    event.request_bytes = plan.body.as_ref().map_or(0, |b| b.len() as i64);
    let mut req = HttpRequest {
        method: plan.method.clone(),
        url: url.to_string(),
        headers: plan.headers.clone(),
        body: plan.body.clone(),
        timeout_ms: rt.upstream_timeout_ms,
    };
    let mut redirects = 0;
    let resp = loop {
        let t0 = (rt.clock)();
        let sent = rt.http.send(&req, UPSTREAM_MAX_BYTES).await;
        ctx.timings.borrow_mut().push(("upstream", (rt.clock)() - t0));
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                event.outcome = Outcome::UpstreamError;
                return error_result(&redact_credential(&format!("The API could not be reached: {e}."), &cred));
            }
        };
        let redirect = matches!(resp.status, 301 | 302 | 303 | 307 | 308);
        if !redirect || redirects >= MAX_REDIRECTS {
            break resp;
        }
        let next = resp.header("location").and_then(|l| url.join(l).ok());
        match next {
            Some(n) if same_authority(&url, &n) => {
                redirects += 1;
                if resp.status == 303 {
                    req.method = "GET".into();
                    req.body = None;
                }
                req.url = n.to_string();
                url = n;
            }
            _ => {
                event.outcome = Outcome::UpstreamError;
                event.upstream_status = Some(resp.status);
                return error_result(&format!(
                    "The API answered HTTP {} with a redirect to another host, which is not followed.",
                    resp.status
                ));
            }
        }
    };
    event.upstream_status = Some(resp.status);
    event.response_bytes = resp.body.len() as i64;
    // Never hand an upstream's echo of the credential back to the model, in any spelling. The
    // body is redacted whole before the result budget cuts it (a cut could otherwise leave a
    // prefix of the secret that no pattern matches), and on its decoded JSON strings (escape
    // spellings); the finished result once more, structurally (see `Redactor::json`).
    let redactor = cred.secret().map(|v| Redactor::of_values([v]));
    let content_type = resp.header("content-type").map(str::to_string);
    let body = match &redactor {
        Some(r) => r.body(resp.body),
        None => resp.body,
    };
    let mut result = map_response(tool, resp.status, content_type.as_deref(), &body);
    if result.get("isError") == Some(&Value::Bool(true)) {
        event.outcome = Outcome::UpstreamError;
    }
    if let Some(r) = &redactor {
        r.json(&mut result);
    }
    result
}

/// An internal failure as a JSON-RPC error (used by the glue when it cannot even start).
pub fn internal_error(message: &str) -> Value {
    jsonrpc::error(Value::Null, INTERNAL_ERROR, message)
}
