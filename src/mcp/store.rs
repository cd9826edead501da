//! Store tools (issue 16): for each *synced* tool of a `user_key` server (an enabled GET tool the
//! owner chose, `Manifest::store`), FlowCP keeps each user's latest answer per set of arguments
//! and serves it through a `*_store_*` tool with its age, also when the API is down. The answer
//! is kept when the user calls the live tool and refreshed hourly in their delegated context
//! (`crate::oauth::store_tools`); the runtime reaches the cache through the key gate
//! (`KeyGate::store_read`, called from `methods::store_call`), which holds D1 and knows the user.
//!
//! A store tool takes the live tool's arguments and answers
//! `{ value, fetched_at, age_seconds }` (`value`: the API's JSON answer as it was).

use serde_json::{json, Map, Value};

use crate::manifest::Manifest;
use crate::tools::ToolDef;

/// Most tools one server syncs.
pub const MAX_SYNCED: usize = 20;
/// Largest answer kept (a larger one is served live only).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The store tool of a live tool: `list_live_flows` -> `list_store_flows` (FlowStudio's names),
/// otherwise `get_store_<name>` (cut to 64 characters).
pub fn store_name(live: &str) -> String {
    let name =
        if live.contains("_live_") { live.replacen("_live_", "_store_", 1) } else { format!("get_store_{live}") };
    name.chars().take(64).collect()
}

/// The live tool a store tool name serves, if the manifest syncs it.
pub fn target<'m>(m: &'m Manifest, name: &str) -> Option<&'m ToolDef> {
    let synced = m.store.as_ref()?;
    let live = synced.iter().find(|t| store_name(t) == name)?;
    m.synced_tool(live)
}

/// The `tools/list` entries of a manifest's store tools.
pub fn listed(m: &Manifest) -> Vec<Value> {
    let Some(synced) = &m.store else { return Vec::new() };
    synced
        .iter()
        .filter_map(|name| m.synced_tool(name))
        .map(|t| {
            json!({
                "name": store_name(&t.name),
                "description": format!(
                    "{} From FlowCP's store: your last answer of {} for these arguments, refreshed hourly as you, with its age; it answers when the API is down. Call {} once to store an answer.",
                    t.description.trim_end(), t.name, t.name
                ),
                "inputSchema": t.input_schema,
                "annotations": { "readOnlyHint": true, "openWorldHint": false },
            })
        })
        .collect()
}

/// Longest arguments kept (their canonical JSON): a call with more is answered live, not stored.
pub const MAX_ARGS_BYTES: usize = 4 * 1024;

/// Only the arguments the tool declares (an extra property never reaches the API, so it must
/// not make another entry or fill the store).
pub fn declared(tool: &ToolDef, args: &Value) -> Value {
    let props = tool.input_schema.get("properties").and_then(Value::as_object);
    match (args, props) {
        (Value::Object(a), Some(p)) => {
            Value::Object(a.iter().filter(|(k, _)| p.contains_key(*k)).map(|(k, v)| (k.clone(), v.clone())).collect())
        }
        _ => Value::Object(Map::new()),
    }
}

/// JSON with object keys sorted at every level: equal arguments hash equally whatever their
/// order on the wire.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), canonical(&m[k]))).collect::<Map<String, Value>>())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The key of one set of arguments: SHA-256 of their canonical JSON.
pub fn args_hash(args: &Value) -> String {
    crate::crypto::sha256_hex(canonical(args).to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_follow_flowstudio_and_arguments_hash_in_any_order() {
        assert_eq!(store_name("list_live_flows"), "list_store_flows");
        assert_eq!(store_name("listPets"), "get_store_listPets");
        assert_eq!(store_name(&"x".repeat(80)).len(), 64);
        let a = serde_json::json!({ "b": 1, "a": { "y": [1, { "d": 2, "c": 3 }], "x": null } });
        let b = serde_json::json!({ "a": { "x": null, "y": [1, { "c": 3, "d": 2 }] }, "b": 1 });
        assert_eq!(args_hash(&a), args_hash(&b));
        assert_ne!(args_hash(&a), args_hash(&serde_json::json!({ "b": 2 })));
    }
}
