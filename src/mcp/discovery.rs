//! The discovery toolset (`search_tools`, `describe_tool`, `call_tool`) that a server in
//! discovery mode shows instead of every tool.

use serde_json::{json, Value};

use crate::manifest::Manifest;
use crate::tools::ToolDef;

pub(crate) const SEARCH: &str = "search_tools";
pub(crate) const DESCRIBE: &str = "describe_tool";
pub(crate) const CALL: &str = "call_tool";

pub(crate) fn discovery_tools(count: usize) -> Vec<Value> {
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

/// At most this many query characters and words are searched for (security review S4: the
/// work is words x tools x text, and a query may be megabytes).
pub(crate) const MAX_QUERY_CHARS: usize = 256;
pub(crate) const MAX_QUERY_WORDS: usize = 16;

pub(crate) fn search(manifest: &Manifest, args: &Value) -> Value {
    let query = args.get("query").and_then(Value::as_str).unwrap_or("");
    let query = match query.char_indices().nth(MAX_QUERY_CHARS) {
        Some((cut, _)) => &query[..cut],
        None => query,
    };
    let words: Vec<String> = query.split_whitespace().take(MAX_QUERY_WORDS).map(str::to_lowercase).collect();
    let tag = args.get("tag").and_then(Value::as_str);
    let limit = args.get("limit").and_then(Value::as_u64).unwrap_or(20).clamp(1, 50) as usize;
    let mut scored: Vec<(usize, &ToolDef)> = manifest
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
