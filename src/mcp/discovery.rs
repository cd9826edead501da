//! The discovery toolset (`search_tools`, `describe_tool`, `call_tool`) that a server in
//! discovery mode shows instead of every tool.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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

/// One tool as `search_tools` sees it: what it answers (name, title, one-line summary, tags,
/// operation) and the lowercased text it looks in. A format-3 manifest stores these in its
/// search part (`crate::mcp::shards`), so a search loads no tool shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SearchEntry {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    summary: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    operation: String,
    /// Lowercased "name title description operation".
    text: String,
    /// Lowercased name (derived when read).
    #[serde(skip)]
    lower_name: String,
}

impl SearchEntry {
    pub(crate) fn of(t: &ToolDef) -> Self {
        let lower_name = t.name.to_lowercase();
        let text = format!("{} {} {} {}", lower_name, t.title.as_deref().unwrap_or(""), t.description, t.operation_key)
            .to_lowercase();
        SearchEntry {
            name: t.name.clone(),
            title: t.title.clone(),
            summary: t.description.lines().next().unwrap_or("").chars().take(160).collect(),
            tags: t.tags.clone(),
            operation: t.operation_key.clone(),
            text,
            lower_name,
        }
    }
}

/// What `search_tools` looks in, per tool (in name order): built once per isolate for a
/// discovery server ([`super::cache::prepare`], or read from a format-3 search part) instead of
/// for every tool on every search (issue 18: that was most of a search's time on GitHub's 1,223
/// tools).
#[derive(Debug, Default)]
pub(crate) struct SearchIndex {
    entries: Vec<SearchEntry>,
}

impl SearchIndex {
    pub(crate) fn of(tools: &[ToolDef]) -> Self {
        SearchIndex { entries: tools.iter().map(SearchEntry::of).collect() }
    }

    /// An index of stored entries (their lowercased names derived here).
    pub(crate) fn from_entries(mut entries: Vec<SearchEntry>) -> Self {
        for e in &mut entries {
            e.lower_name = e.name.to_lowercase();
        }
        SearchIndex { entries }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes it holds, charged to the isolate's manifest cache.
    pub(crate) fn cost(&self) -> usize {
        self.entries.iter().map(Self::entry_cost).sum()
    }

    /// Bytes one entry holds once read.
    pub(crate) fn entry_cost(e: &SearchEntry) -> usize {
        2 * e.name.len()
            + e.title.as_ref().map_or(0, String::len)
            + e.summary.len()
            + e.tags.iter().map(|t| t.len() + 24).sum::<usize>()
            + e.operation.len()
            + e.text.len()
            + 160
    }
}

/// `search_tools` over `index`.
pub(crate) fn search_indexed(index: &SearchIndex, args: &Value) -> Value {
    let query = args.get("query").and_then(Value::as_str).unwrap_or("");
    let query = match query.char_indices().nth(MAX_QUERY_CHARS) {
        Some((cut, _)) => &query[..cut],
        None => query,
    };
    let words: Vec<String> = query.split_whitespace().take(MAX_QUERY_WORDS).map(str::to_lowercase).collect();
    let tag = args.get("tag").and_then(Value::as_str);
    let limit = args.get("limit").and_then(Value::as_u64).unwrap_or(20).clamp(1, 50) as usize;
    let mut scored: Vec<(usize, &SearchEntry)> = index
        .entries
        .iter()
        .filter(|e| tag.is_none_or(|g| e.tags.iter().any(|x| x.eq_ignore_ascii_case(g))))
        .filter_map(|e| {
            if words.is_empty() {
                return Some((0, e));
            }
            let hits = words.iter().filter(|w| e.text.contains(w.as_str())).count();
            let bonus = words.iter().filter(|w| e.lower_name.contains(w.as_str())).count();
            (hits > 0).then_some((hits * 2 + bonus, e))
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
    let total = scored.len();
    let items: Vec<Value> = scored
        .into_iter()
        .take(limit)
        .map(|(_, e)| json!({ "name": e.name, "title": e.title, "summary": e.summary, "tags": e.tags, "operation": e.operation }))
        .collect();
    json!({ "tools": items, "matched": total })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<ToolDef> {
        let doc = json!({
            "openapi": "3.0.3", "info": { "title": "T", "version": "1" }, "servers": [{ "url": "https://api.example" }],
            "paths": {
                "/pulls": { "get": { "operationId": "list_pulls", "summary": "List Pull Requests", "tags": ["pulls"], "responses": { "200": { "description": "ok" } } } },
                "/pulls/{n}/comments": { "post": { "operationId": "comment_pull", "summary": "Comment on a pull request", "tags": ["pulls", "issues"], "parameters": [{ "name": "n", "in": "path", "required": true, "schema": { "type": "integer" } }], "responses": { "200": { "description": "ok" } } } },
                "/gists": { "get": { "operationId": "list_gists", "description": "Lists GISTS\nof the user", "tags": ["gists"], "responses": { "200": { "description": "ok" } } } }
            }
        });
        crate::tools::import(doc.to_string().as_bytes()).expect("imports").tools
    }

    /// An index read back from its stored entries (a format-3 search part) answers exactly what
    /// the index built from the tools answers (case-insensitive words, tags, limits, no words).
    #[test]
    fn a_stored_index_answers_what_the_built_one_answers() {
        let tools = tools();
        let built = SearchIndex::of(&tools);
        let stored: Vec<SearchEntry> = serde_json::from_slice(&serde_json::to_vec(&built.entries).unwrap()).unwrap();
        let read = SearchIndex::from_entries(stored);
        assert_eq!((built.cost(), read.len()), (read.cost(), 3));
        for args in [
            json!({ "query": "PULL request" }),
            json!({ "query": "gists" }),
            json!({ "query": "comment", "tag": "ISSUES" }),
            json!({ "query": "list", "limit": 1 }),
            json!({}),
            json!({ "query": "nothing-matches" }),
        ] {
            assert_eq!(search_indexed(&read, &args).to_string(), search_indexed(&built, &args).to_string(), "{args}");
        }
        assert_eq!(search_indexed(&built, &json!({ "query": "pull" }))["matched"], 2);
        assert_eq!(
            search_indexed(&built, &json!({ "query": "pull", "tag": "issues" }))["tools"][0]["name"],
            "comment_pull"
        );
        let gists = search_indexed(&read, &json!({ "query": "GISTS" }));
        assert_eq!(
            gists["tools"][0],
            json!({ "name": "list_gists", "title": null, "summary": "Lists GISTS", "tags": ["gists"], "operation": "GET /gists" })
        );
    }
}
