//! FlowCP's own MCP server (issue 15): its tools are FlowCP's engine applied to FlowCP's own
//! `GET /api/v1/openapi.json`, curated by the data in `management_tools.json` (one decision per
//! operation: exposed with an agent-facing name, description and annotations, or excluded with
//! its reason). Nothing here is written by hand per tool, so a new API route shows up as an
//! undecided operation (a failing test), not as a silently missing or silently exposed tool.
//!
//! TODO(issue 15): the `/mcp` endpoint itself (the runtime serving these tools with the calls
//! dispatched in-process to `api::handle`), the OAuth sign-in with workspace choice, the
//! `onboard_api` tool and `docs/mcp-management.md`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::tools::{Annotations, ToolDef};

/// The curation, as committed.
pub const CURATION_JSON: &str = include_str!("management_tools.json");

/// What is done with one owner-API operation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Decision {
    /// Not offered to agents, and why.
    Exclude { exclude: String },
    /// Offered as a tool named `name`; `annotations` override what the HTTP method implies.
    Expose {
        name: String,
        description: String,
        #[serde(default)]
        annotations: Option<Annotations>,
    },
}

/// The decisions by operationId (the `_about` note left out).
pub fn curation() -> Result<BTreeMap<String, Decision>, String> {
    let mut raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(CURATION_JSON).map_err(|e| format!("management_tools.json: {e}"))?;
    raw.remove("_about");
    raw.into_iter()
        .map(|(op, v)| serde_json::from_value::<Decision>(v).map(|d| (op.clone(), d)).map_err(|e| format!("{op}: {e}")))
        .collect()
}

/// The management server's tools for a deployment at `origin`, by name: the engine's tools of
/// the exposed operations, renamed, described and annotated as curated. `Err` names every
/// operation without a decision and every decision without an operation.
pub fn tools(origin: &str) -> Result<Vec<ToolDef>, String> {
    let decisions = curation()?;
    let report = crate::tools::import_value(crate::api::contract::openapi_document(origin))
        .map_err(|e| format!("FlowCP's own document does not import: {e}"))?;
    let mut seen = Vec::new();
    let mut undecided = Vec::new();
    let mut out = Vec::new();
    for mut tool in report.tools {
        let Some(op) = tool.operation_id.clone() else {
            undecided.push(tool.operation_key.clone());
            continue;
        };
        seen.push(op.clone());
        match decisions.get(&op) {
            None => undecided.push(op),
            Some(Decision::Exclude { .. }) => {}
            Some(Decision::Expose { name, description, annotations }) => {
                tool.name = name.clone();
                tool.description = description.clone();
                if let Some(a) = annotations {
                    let base = std::mem::take(&mut tool.annotations);
                    tool.annotations = Annotations {
                        title: a.title.clone().or(base.title),
                        read_only_hint: a.read_only_hint.or(base.read_only_hint),
                        destructive_hint: a.destructive_hint.or(base.destructive_hint),
                        idempotent_hint: a.idempotent_hint.or(base.idempotent_hint),
                        open_world_hint: a.open_world_hint.or(base.open_world_hint),
                    };
                }
                out.push(tool);
            }
        }
    }
    let stale: Vec<&String> = decisions.keys().filter(|op| !seen.contains(op)).collect();
    if !undecided.is_empty() || !stale.is_empty() {
        return Err(format!(
            "management tools drift: operations without a decision {undecided:?}; decisions without an operation {stale:?} (edit src/mcp/management_tools.json)"
        ));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
