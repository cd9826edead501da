//! The methods both protocol eras share: `initialize` (legacy only), `tools/list` with opaque
//! cursors and `tools/call` (plain or through the discovery toolset).

use serde_json::{json, Map, Value};

use super::cache::Loaded;
use super::call::call_upstream;
use super::discovery::{search, CALL, DESCRIBE, SEARCH};
use super::jsonrpc::INVALID_PARAMS;
use super::runtime::{error_result, text_result, CallCtx, RpcResult};
use super::{LATEST_VERSION, SUPPORTED_VERSIONS};
use crate::manifest::Manifest;
use crate::net::Http;
use crate::store::audit::AuditEvent;
use crate::store::Kv;

/// Tools per `tools/list` page.
pub const PAGE_SIZE: usize = 100;

pub(crate) fn initialize<K: Kv, H: Http>(ctx: &CallCtx<'_, '_, K, H>, params: &Value) -> Value {
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

pub(crate) fn instructions(m: &Manifest) -> String {
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

pub(crate) fn encode_cursor(offset: usize) -> String {
    crate::cursor::encode(&[&offset.to_string()])
}

pub(crate) fn decode_cursor(c: &str, len: usize) -> Option<usize> {
    let offset: usize = crate::cursor::decode(c, 1)?.first()?.parse().ok()?;
    (offset <= len).then_some(offset)
}

pub(crate) fn tools_list(loaded: &Loaded, params: &Value) -> RpcResult {
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

pub(crate) async fn tools_call<K: Kv, H: Http>(
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
            SEARCH => Ok(text_result(&search(&loaded.manifest, &args))),
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
