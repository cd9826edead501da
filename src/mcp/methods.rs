//! The methods both protocol eras share: `initialize` (legacy only), `tools/list` with opaque
//! cursors and `tools/call` (plain or through the discovery toolset).

use serde_json::{json, Map, Value};

use super::cache::Page;
use super::call::call_upstream;
use super::discovery::{search_indexed, CALL, DESCRIBE, SEARCH};
use super::results::{Capabilities, InitializeResult, ListToolsResult, ServerInfo};
use super::runtime::{CallCtx, CallToolResult, RpcError};
use super::skills::{self, LIST_SKILLS, TOOL_SEARCH};
use super::{Era, ProtocolVersion};
use crate::invoke::{invalid_arguments_result, validate_tool_arguments};
use crate::manifest::Manifest;
use crate::net::Http;
use crate::store::audit::AuditEvent;
use crate::store::Kv;
use crate::tools::ToolDef;

/// Tools per `tools/list` page.
pub const PAGE_SIZE: usize = crate::manifest::SHARD_TOOLS;

pub(crate) fn initialize<K: Kv, H: Http>(ctx: &CallCtx<'_, '_, K, H>, params: &Value) -> InitializeResult {
    // The version the client asks for (else the one its header declares), if we speak it in
    // this era; an unknown or other-era version gets the latest we do.
    let asked = match params.get("protocolVersion").and_then(Value::as_str) {
        Some(v) => ProtocolVersion::parse(v),
        None => Some(ctx.pre.version),
    };
    let version = match asked {
        Some(v) if v.era() == Era::Initialize => v,
        _ => ProtocolVersion::LATEST_INITIALIZE,
    };
    let m = &ctx.loaded.manifest;
    InitializeResult {
        protocol_version: version,
        capabilities: Capabilities::TOOLS,
        server_info: ServerInfo::of(m),
        instructions: instructions(m),
    }
}

pub(crate) fn instructions(m: &Manifest) -> String {
    if let (Some(s), false) = (&m.skills, m.discovery) {
        let names: Vec<&str> = s.bundles.iter().map(|b| b.name.as_str()).collect();
        return format!(
            "{} has {} tools in skills ({}). Call list_skills, then tool_search with skill:<name> to load a skill's tools, and call them by name.",
            m.name,
            m.tool_count(),
            names.join(", ")
        );
    }
    if m.discovery {
        format!(
            "{} exposes {} API operations through three tools: search_tools to find one, describe_tool to read its input schema, call_tool to call it.",
            m.name,
            m.tool_count()
        )
    } else {
        format!("Tools of {} generated from its OpenAPI document by FlowCP.", m.name)
    }
}

pub(crate) fn encode_cursor(offset: usize) -> String {
    crate::cursor::encode(&[&offset.to_string()])
}

pub(crate) fn decode_cursor(c: &str, len: usize) -> Option<usize> {
    let offset: usize = crate::cursor::decode(c, 1)?.first()?.parse().ok()?;
    (offset <= len).then_some(offset)
}

/// `tools/list`: a page of the meta-tools and tools. A format-3 page is stored pre-serialised:
/// the answer to a single message carries its bytes ([`CallCtx::page`]) instead of values.
pub(crate) async fn tools_list<K: Kv, H: Http>(
    ctx: &CallCtx<'_, '_, K, H>,
    params: &Value,
) -> Result<ListToolsResult, RpcError> {
    let loaded = ctx.loaded;
    let total = loaded.listed_len();
    let start = match params.get("cursor") {
        None | Some(Value::Null) => 0,
        Some(Value::String(c)) => {
            decode_cursor(c, total).ok_or_else(|| RpcError::invalid_params("Invalid params: unknown cursor"))?
        }
        Some(_) => return Err(RpcError::invalid_params("Invalid params: cursor must be a string")),
    };
    let end = (start + PAGE_SIZE).min(total);
    let next_cursor = (end < total).then(|| encode_cursor(end));
    let tools = match loaded.page_at(&ctx.reads, start).await.map_err(|e| ctx.unreadable(e))? {
        Page::Values(v) => v,
        Page::Raw(page) if ctx.single => {
            *ctx.page.borrow_mut() = Some(page);
            Vec::new()
        }
        Page::Raw(page) => page.to_values(),
    };
    Ok(ListToolsResult { tools, next_cursor })
}

pub(crate) async fn tools_call<K: Kv, H: Http>(
    ctx: &CallCtx<'_, '_, K, H>,
    params: &Value,
    audit: &mut Vec<AuditEvent>,
) -> Result<CallToolResult, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("Invalid params: name is required"))?;
    let args = match params.get("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(RpcError::invalid_params("Invalid params: arguments must be an object")),
    };
    let loaded = ctx.loaded;
    if let (Some(skills), false) = (&loaded.manifest.skills, loaded.manifest.discovery) {
        // The meta-tools: no upstream call, no audit row, no quota.
        match name {
            LIST_SKILLS => return Ok(CallToolResult::structured(skills::list(skills))),
            TOOL_SEARCH => {
                let q = match skills::parse(skills, &args) {
                    Ok(q) => q,
                    Err(message) => return Ok(CallToolResult::error(message)),
                };
                let index = match q {
                    skills::Query::Keywords { .. } => {
                        loaded.search_index(&ctx.reads).await.map_err(|e| ctx.unreadable(e))?
                    }
                    _ => Default::default(),
                };
                let (names, matched) = skills::names(&q, &index);
                let mut found = Vec::with_capacity(names.len());
                for n in &names {
                    found.push(
                        loaded.tool(&ctx.reads, n).await.map_err(|e| ctx.unreadable(e))?.map(|t| t.to_mcp_json()),
                    );
                }
                return Ok(CallToolResult::structured(skills::answer(&q, &names, found, matched)));
            }
            _ => {}
        }
    }
    if loaded.manifest.discovery {
        let target = args.get("name").and_then(Value::as_str).unwrap_or("");
        let unknown =
            || CallToolResult::error(format!("No operation is named {target:?}; use search_tools to find one."));
        return match name {
            SEARCH => {
                let index = loaded.search_index(&ctx.reads).await.map_err(|e| ctx.unreadable(e))?;
                Ok(CallToolResult::structured(search_indexed(&index, &args)))
            }
            DESCRIBE => Ok(match loaded.tool(&ctx.reads, target).await.map_err(|e| ctx.unreadable(e))? {
                Some(t) => CallToolResult::structured(t.to_mcp_json()),
                None => unknown(),
            }),
            CALL => {
                let inner = args.get("arguments").cloned().unwrap_or(Value::Object(Map::new()));
                match loaded.tool(&ctx.reads, target).await.map_err(|e| ctx.unreadable(e))? {
                    Some(t) if inner.is_object() => Ok(call_upstream(ctx, &t, &inner, audit).await),
                    Some(_) => Ok(CallToolResult::error("arguments must be an object")),
                    None => Ok(unknown()),
                }
            }
            _ => Err(RpcError::invalid_params(format!("Unknown tool: {name}"))),
        };
    }
    if let Some(live) = super::store::target(&loaded.manifest, name) {
        // A store tool: the user's stored answer, no upstream call.
        return Ok(store_call(ctx, live, &args).await);
    }
    let tool = loaded
        .tool(&ctx.reads, name)
        .await
        .map_err(|e| ctx.unreadable(e))?
        .ok_or_else(|| RpcError::invalid_params(format!("Unknown tool: {name}")))?;
    Ok(call_upstream(ctx, &tool, &args, audit).await)
}

/// A store tool's call (issue 16, `super::store`): the live tool's arguments checked, then the user's stored answer.
pub(crate) async fn store_call<K: Kv, H: Http>(
    ctx: &CallCtx<'_, '_, K, H>,
    live: &ToolDef,
    args: &Value,
) -> CallToolResult {
    let problems = validate_tool_arguments(live, args);
    if !problems.is_empty() {
        return invalid_arguments_result(&problems);
    }
    let Some(gate) = ctx.rt.key_gate else {
        return CallToolResult::error("Store tools are not available on this deployment.");
    };
    let now = (ctx.rt.clock)();
    match gate.store_read(&ctx.loaded.manifest, &live.name, &super::store::declared(live, args)).await {
        Err(message) => CallToolResult::error(message),
        Ok(None) => CallToolResult::error(format!(
            "Nothing is stored for these arguments yet: call {} with them once; FlowCP keeps its answer and refreshes it hourly.",
            live.name
        )),
        Ok(Some((body, fetched_at))) => {
            let value = serde_json::from_str::<Value>(&body).unwrap_or(Value::String(body));
            CallToolResult::structured(json!({
                "value": value,
                "fetched_at": crate::civil::rfc3339_utc(fetched_at),
                "age_seconds": ((now - fetched_at) / 1000).max(0),
            }))
        }
    }
}
