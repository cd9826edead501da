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

/// The lowercased texts `search_tools` looks in, per tool (in manifest order): built once per
/// isolate for a discovery server ([`super::cache::prepare`]) instead of for every tool on every
/// search (issue 18: that was most of a search's time on GitHub's 1,223 tools).
#[derive(Default)]
pub(crate) struct SearchIndex {
    /// (lowercased name, lowercased "name title description operation").
    texts: Vec<(String, String)>,
}

impl SearchIndex {
    pub(crate) fn of(manifest: &Manifest) -> Self {
        let texts = manifest
            .tools
            .iter()
            .map(|t| {
                let name = t.name.to_lowercase();
                let hay =
                    format!("{} {} {} {}", name, t.title.as_deref().unwrap_or(""), t.description, t.operation_key)
                        .to_lowercase();
                (name, hay)
            })
            .collect();
        SearchIndex { texts }
    }

    /// Bytes it holds, charged to the isolate's manifest cache.
    pub(crate) fn cost(&self) -> usize {
        self.texts.iter().map(|(n, h)| n.len() + h.len() + 48).sum()
    }
}

/// `search_tools` without a prepared index (the skills' search): builds one for this call.
pub(crate) fn search(manifest: &Manifest, args: &Value) -> Value {
    search_indexed(manifest, &SearchIndex::of(manifest), args)
}

/// `search_tools` over `index`, which must be `manifest`'s (an index of another length is
/// rebuilt, so a mismatch costs time, never a wrong answer).
pub(crate) fn search_indexed(manifest: &Manifest, index: &SearchIndex, args: &Value) -> Value {
    if index.texts.len() != manifest.tools.len() {
        return search(manifest, args);
    }
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
        .zip(&index.texts)
        .filter(|(t, _)| tag.is_none_or(|g| t.tags.iter().any(|x| x.eq_ignore_ascii_case(g))))
        .filter_map(|(t, (name, hay))| {
            if words.is_empty() {
                return Some((0, t));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let doc = json!({
            "openapi": "3.0.3", "info": { "title": "T", "version": "1" }, "servers": [{ "url": "https://api.example" }],
            "paths": {
                "/pulls": { "get": { "operationId": "list_pulls", "summary": "List Pull Requests", "tags": ["pulls"], "responses": { "200": { "description": "ok" } } } },
                "/pulls/{n}/comments": { "post": { "operationId": "comment_pull", "summary": "Comment on a pull request", "tags": ["pulls", "issues"], "parameters": [{ "name": "n", "in": "path", "required": true, "schema": { "type": "integer" } }], "responses": { "200": { "description": "ok" } } } },
                "/gists": { "get": { "operationId": "list_gists", "description": "Lists GISTS\nof the user", "tags": ["gists"], "responses": { "200": { "description": "ok" } } } }
            }
        });
        let mut m: Manifest = serde_json::from_value(json!({
            "format": 2, "serverId": "s", "workspaceId": "w", "version": 1, "publishedAt": 0, "name": "T",
            "auth": { "mode": "none", "public": true }, "discovery": true, "tools": []
        }))
        .unwrap();
        m.tools = crate::tools::import(doc.to_string().as_bytes()).expect("imports").tools;
        m
    }

    /// The prepared index answers exactly what a search without one answers (case-insensitive
    /// words, tags, limits, no words), and an index of another manifest is not trusted.
    #[test]
    fn the_prepared_index_answers_what_a_fresh_search_answers() {
        let m = manifest();
        let index = SearchIndex::of(&m);
        assert!(index.cost() > 0);
        for args in [
            json!({ "query": "PULL request" }),
            json!({ "query": "gists" }),
            json!({ "query": "comment", "tag": "ISSUES" }),
            json!({ "query": "list", "limit": 1 }),
            json!({}),
            json!({ "query": "nothing-matches" }),
        ] {
            let fresh = search(&m, &args);
            assert_eq!(search_indexed(&m, &index, &args).to_string(), fresh.to_string(), "{args}");
            assert_eq!(search_indexed(&m, &SearchIndex::default(), &args).to_string(), fresh.to_string(), "{args}");
        }
        assert_eq!(search(&m, &json!({ "query": "pull" }))["matched"], 2);
        assert_eq!(search(&m, &json!({ "query": "pull", "tag": "issues" }))["tools"][0]["name"], "comment_pull");
    }
}
