//! Skills (issue 16): named bundles of a server's tools, and two meta-tools for clients that
//! should not load every schema up front. `list_skills` names the bundles; `tool_search` answers
//! `skill:<bundle>` (that bundle's tools), `select:a,b` (those tools) or keywords, with each
//! tool's own schema. Results are in a fixed order (bundle order, the order asked, or score then
//! name). Neither reaches the API, writes an audit row or counts toward a quota.

use serde_json::{json, Value};

use crate::manifest::Skills;

pub(crate) const LIST_SKILLS: &str = "list_skills";
pub(crate) const TOOL_SEARCH: &str = "tool_search";
/// The names a server with skills keeps for itself.
pub const META_TOOLS: [&str; 2] = [LIST_SKILLS, TOOL_SEARCH];
/// Tools `tool_search` returns at most (each with its schema).
pub(crate) const MAX_RESULTS: usize = 50;

pub(crate) fn meta_tools(skills: &Skills, tool_count: usize) -> Vec<Value> {
    let names: Vec<&str> = skills.bundles.iter().map(|b| b.name.as_str()).take(20).collect();
    vec![
        json!({
            "name": LIST_SKILLS,
            "title": "List the skills",
            "description": format!("Lists the named bundles of this API's {tool_count} tools (skills), each with its description and tool names. Start here, then load a skill's tools with tool_search."),
            "inputSchema": { "type": "object", "properties": {} },
            "annotations": { "readOnlyHint": true, "openWorldHint": false }
        }),
        json!({
            "name": TOOL_SEARCH,
            "title": "Load tools",
            "description": format!("Returns tools with their input schemas. query is `skill:<name>` for a skill's tools ({}), `select:<tool>,<tool>` for tools by name, or keywords. Call the tools it returns by name.", names.join(", ")),
            "inputSchema": { "type": "object", "properties": {
                "query": { "type": "string", "description": "skill:<name>, select:<tool>,<tool>, or keywords" },
                "limit": { "type": "integer", "minimum": 1, "maximum": MAX_RESULTS, "default": 20, "description": "Most keyword matches to return" },
                "offset": { "type": "integer", "minimum": 0, "default": 0, "description": "skill: where to continue (next_offset of the previous answer)" }
            }, "required": ["query"] },
            "annotations": { "readOnlyHint": true, "openWorldHint": false }
        }),
    ]
}

pub(crate) fn list(skills: &Skills) -> Value {
    let items: Vec<Value> = skills
        .bundles
        .iter()
        .map(|b| json!({ "name": b.name, "description": b.description, "tools": b.tools }))
        .collect();
    json!({ "skills": items })
}

/// What a `tool_search` call asks for.
pub(crate) enum Query {
    /// A skill's tools `offset..offset+MAX_RESULTS` (`names`), of `total`.
    Skill { skill: String, names: Vec<String>, total: usize, next_offset: Option<usize> },
    /// Tools by name, in the order asked, once each.
    Select(Vec<String>),
    /// Keywords, searched like `search_tools`.
    Keywords { query: String, limit: usize },
}

/// Reads a `tool_search` call: `Err` is a message for a tool error.
pub(crate) fn parse(skills: &Skills, args: &Value) -> Result<Query, String> {
    let query = args.get("query").and_then(Value::as_str).map(str::trim).unwrap_or("");
    if query.is_empty() {
        return Err("query is required: skill:<name>, select:<tool>,<tool>, or keywords.".into());
    }
    if let Some(name) = query.strip_prefix("skill:") {
        let name = name.trim();
        let Some(b) = skills.bundles.iter().find(|b| b.name == name) else {
            let known: Vec<&str> = skills.bundles.iter().map(|b| b.name.as_str()).collect();
            return Err(format!("No skill is named {:?}; the skills are: {}.", shown(name), known.join(", ")));
        };
        // At most MAX_RESULTS schemas per answer, like every other query.
        let offset = args.get("offset").and_then(Value::as_u64).unwrap_or(0).min(b.tools.len() as u64) as usize;
        let end = (offset + MAX_RESULTS).min(b.tools.len());
        return Ok(Query::Skill {
            skill: b.name.clone(),
            names: b.tools[offset..end].to_vec(),
            total: b.tools.len(),
            next_offset: (end < b.tools.len()).then_some(end),
        });
    }
    if let Some(list) = query.strip_prefix("select:") {
        let mut seen = std::collections::HashSet::new();
        let names = list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .take(MAX_RESULTS)
            .filter(|n| seen.insert(*n))
            .map(str::to_string)
            .collect();
        return Ok(Query::Select(names));
    }
    let limit = args.get("limit").and_then(Value::as_u64).unwrap_or(20).clamp(1, MAX_RESULTS as u64) as usize;
    Ok(Query::Keywords { query: query.to_string(), limit })
}

/// What is echoed of the caller's input is bounded.
fn shown(s: &str) -> String {
    s.chars().take(128).collect()
}

/// The tool names a query answers with, and (keywords) how many matched: a keyword query is
/// searched in `index`.
pub(crate) fn names(q: &Query, index: &super::discovery::SearchIndex) -> (Vec<String>, Value) {
    match q {
        Query::Skill { names, .. } | Query::Select(names) => (names.clone(), Value::Null),
        Query::Keywords { query, limit } => {
            let found = super::discovery::search_indexed(index, &json!({ "query": query, "limit": limit }));
            let names = found["tools"]
                .as_array()
                .map(|a| a.iter().filter_map(|t| t["name"].as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            (names, found["matched"].clone())
        }
    }
}

/// The answer, given each name's tool as MCP shows it (`found[i]` for `names[i]`; `None`: the
/// server has no such tool).
pub(crate) fn answer(q: &Query, names: &[String], found: Vec<Option<Value>>, matched: Value) -> Value {
    let missing: Vec<String> = names.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(n, _)| shown(n)).collect();
    let tools: Vec<Value> = found.into_iter().flatten().collect();
    match q {
        Query::Skill { skill, total, next_offset, .. } => {
            let mut out = json!({ "skill": skill, "tools": tools, "total": total });
            if let Some(n) = next_offset {
                out["next_offset"] = json!(n);
            }
            out
        }
        Query::Select(_) => json!({ "tools": tools, "missing": missing }),
        Query::Keywords { .. } => json!({ "tools": tools, "matched": matched }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Bundle, Manifest, SkillsMode};

    /// `tool_search` over a whole manifest, composed as the runtime composes it.
    fn search(m: &Manifest, skills: &Skills, args: &Value) -> Result<Value, String> {
        let q = parse(skills, args)?;
        let (wanted, matched) = super::names(&q, &crate::mcp::discovery::SearchIndex::of(&m.tools));
        let found = wanted.iter().map(|n| m.tools.iter().find(|t| &t.name == n).map(|t| t.to_mcp_json())).collect();
        Ok(answer(&q, &wanted, found, matched))
    }

    fn manifest() -> Manifest {
        let doc = json!({
            "openapi": "3.0.3", "info": { "title": "PA", "version": "1" }, "servers": [{ "url": "https://api.example" }],
            "paths": {
                "/flows": { "get": { "operationId": "list_live_flows", "summary": "List the flows", "tags": ["flows"], "responses": { "200": { "description": "ok" } } } },
                "/flows/{id}": { "get": { "operationId": "get_live_flow", "summary": "Get one flow", "tags": ["flows"], "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }], "responses": { "200": { "description": "ok" } } } },
                "/runs": { "get": { "operationId": "get_live_flow_runs", "summary": "Runs of a flow", "tags": ["runs"], "responses": { "200": { "description": "ok" } } } }
            }
        });
        let tools = crate::tools::import(doc.to_string().as_bytes()).expect("imports").tools;
        let mut m: Manifest = serde_json::from_value(json!({
            "format": 2, "serverId": "s", "workspaceId": "w", "version": 1, "publishedAt": 0, "name": "PA",
            "auth": { "mode": "none", "public": true }, "discovery": false, "tools": []
        }))
        .unwrap();
        m.tools = tools;
        m.tools.sort_by(|a, b| a.name.cmp(&b.name));
        m
    }

    fn skills() -> Skills {
        Skills {
            mode: SkillsMode::Alongside,
            bundles: vec![
                Bundle {
                    name: "monitor-flow".into(),
                    description: "Watch runs".into(),
                    tools: vec!["get_live_flow_runs".into(), "list_live_flows".into()],
                },
                Bundle {
                    name: "discover".into(),
                    description: "Find flows".into(),
                    tools: vec!["list_live_flows".into()],
                },
            ],
        }
    }

    fn names(v: &Value) -> Vec<String> {
        v["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn the_grammar_answers_in_a_fixed_order_with_each_tools_schema() {
        let m = manifest();
        let s = skills();
        let by_skill = search(&m, &s, &json!({ "query": "skill:monitor-flow" })).unwrap();
        assert_eq!(names(&by_skill), ["get_live_flow_runs", "list_live_flows"], "bundle order");
        assert!(by_skill["tools"][0]["inputSchema"].is_object(), "with its schema");
        let selected =
            search(&m, &s, &json!({ "query": "select:list_live_flows, nope ,get_live_flow,list_live_flows" })).unwrap();
        assert_eq!(names(&selected), ["list_live_flows", "get_live_flow"], "the order asked, once each");
        assert_eq!(selected["missing"], json!(["nope"]));
        let words = search(&m, &s, &json!({ "query": "runs" })).unwrap();
        assert_eq!(names(&words)[0], "get_live_flow_runs");
        assert_eq!(
            search(&m, &s, &json!({ "query": "flow" })).unwrap(),
            search(&m, &s, &json!({ "query": "flow" })).unwrap(),
            "deterministic"
        );
        assert!(search(&m, &s, &json!({ "query": "skill:nope" })).unwrap_err().contains("monitor-flow, discover"));
        assert!(search(&m, &s, &json!({})).is_err());
        assert_eq!(list(&s)["skills"][0]["tools"], json!(["get_live_flow_runs", "list_live_flows"]));
    }

    #[test]
    fn a_big_skill_is_answered_in_pages() {
        let m = manifest();
        let many = Skills {
            mode: SkillsMode::Alongside,
            bundles: vec![Bundle {
                name: "all".into(),
                description: String::new(),
                tools: vec!["list_live_flows".into(); 120],
            }],
        };
        let first = search(&m, &many, &json!({ "query": "skill:all" })).unwrap();
        assert_eq!((first["tools"].as_array().unwrap().len(), &first["next_offset"]), (MAX_RESULTS, &json!(50)));
        let last = search(&m, &many, &json!({ "query": "skill:all", "offset": 100 })).unwrap();
        assert_eq!(last["tools"].as_array().unwrap().len(), 20);
        assert!(last.get("next_offset").is_none());
        let past = search(&m, &many, &json!({ "query": "skill:all", "offset": u64::MAX })).unwrap();
        assert!(past["tools"].as_array().unwrap().is_empty());
        let long = search(&m, &many, &json!({ "query": format!("skill:{}", "x".repeat(100_000)) })).unwrap_err();
        assert!(long.len() < 400, "the echo is bounded");
    }

    #[test]
    fn a_huge_select_is_bounded() {
        let m = manifest();
        let q = format!("select:{}", vec!["list_live_flows"; 10_000].join(","));
        let r = search(&m, &skills(), &json!({ "query": q })).unwrap();
        assert_eq!(names(&r), ["list_live_flows"]);
    }
}
