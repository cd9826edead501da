//! The results the runtime answers, as types: `initialize`, `tools/list`, `server/discover`
//! (`tools/call` is the engine's [`crate::invoke::CallToolResult`]). The golden files in
//! `tests/golden/mcp` pin their exact JSON.

use serde::Serialize;
use serde_json::Value;

use super::version::ProtocolVersion;
use crate::manifest::Manifest;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerInfo {
    pub name: String,
    pub title: String,
    pub version: String,
}

impl ServerInfo {
    pub fn of(m: &Manifest) -> Self {
        ServerInfo { name: format!("flowcp-{}", m.server_id), title: m.name.clone(), version: m.version.to_string() }
    }
}

/// FlowCP servers offer tools, and their list changes only on publish (a new manifest).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capabilities {
    pub tools: ToolsCapability,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolsCapability {
    pub list_changed: bool,
}

impl Capabilities {
    pub const TOOLS: Capabilities = Capabilities { tools: ToolsCapability { list_changed: false } };
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    #[serde(serialize_with = "version_str")]
    pub protocol_version: ProtocolVersion,
    pub capabilities: Capabilities,
    pub server_info: ServerInfo,
    pub instructions: String,
}

fn version_str<S: serde::Serializer>(v: &ProtocolVersion, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}

/// One page of `tools/list`; the tools are the manifest's, already in MCP form.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListToolsResult {
    pub tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl ListToolsResult {
    /// The result as JSON, moving the rendered page rather than copying it again.
    pub fn into_value(self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("tools".into(), Value::Array(self.tools));
        if let Some(c) = self.next_cursor {
            m.insert("nextCursor".into(), Value::String(c));
        }
        Value::Object(m)
    }
}

/// `server/discover` (2026-07-28).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoverResult {
    pub supported_versions: Vec<&'static str>,
    pub capabilities: Capabilities,
    pub server_info: ServerInfo,
    pub instructions: String,
    pub ttl_ms: u64,
    pub cache_scope: &'static str,
}

/// Any result as the JSON-RPC `result` member.
pub fn value<T: Serialize>(result: &T) -> Value {
    serde_json::to_value(result).unwrap_or(Value::Null)
}
