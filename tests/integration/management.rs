//! Issue 15 (first part): FlowCP's own MCP tools come from FlowCP's own OpenAPI document through
//! the engine, with the committed curation. No drift: every operation of the live document has a
//! decision (exposed, or excluded with a reason), and every decision names an operation.

use std::collections::BTreeSet;

use flowcp::api::routes::ROUTES;
use flowcp::mcp::management::{curation, tools, Decision};
use flowcp::tools::names::is_valid_tool_name;
use serde_json::Value;

#[test]
fn every_route_has_a_decision_and_every_decision_a_route() {
    let decisions = curation().expect("the curation parses");
    let doc = flowcp::api::contract::openapi_document("https://flowcp.example");
    let mut ops = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                ops.insert(id.to_string());
            }
        }
    }
    assert_eq!(ops.len(), ROUTES.len(), "one operation per route");
    let decided: BTreeSet<String> = decisions.keys().cloned().collect();
    let undecided: Vec<_> = ops.difference(&decided).collect();
    let stale: Vec<_> = decided.difference(&ops).collect();
    assert!(
        undecided.is_empty() && stale.is_empty(),
        "new routes need a decision in src/mcp/management_tools.json: {undecided:?}; stale decisions: {stale:?}"
    );
    for (op, d) in &decisions {
        match d {
            Decision::Exclude { exclude } => assert!(exclude.len() > 20, "{op}: say why it is excluded"),
            Decision::Expose { description, .. } => assert!(description.len() > 20, "{op}: describe it for agents"),
        }
    }
}

#[test]
fn the_tools_are_generated_named_and_described_as_curated() {
    let tools = tools("https://flowcp.example").expect("no drift");
    let exposed = curation().unwrap().values().filter(|d| matches!(d, Decision::Expose { .. })).count();
    assert_eq!(tools.len(), exposed);
    let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), tools.len(), "names are unique");
    assert!(tools.iter().all(|t| is_valid_tool_name(&t.name)), "names are valid tool names");
    // The exclusions: no account deletion, password change or sign-up.
    for op in ["deleteAccount", "changePassword", "signup", "login"] {
        assert!(tools.iter().all(|t| t.operation_id.as_deref() != Some(op)), "{op} is exposed");
    }
    let by = |name: &str| tools.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name} missing"));
    let publish = by("publish_server");
    assert_eq!(publish.request.path, "/api/v1/workspaces/{ws}/servers/{srv}/publish");
    assert!(
        publish.request.servers.iter().any(|s| s.starts_with("https://flowcp.example")),
        "{:?}",
        publish.request.servers
    );
    assert_eq!(publish.annotations.destructive_hint, Some(false), "curated annotations apply");
    assert_eq!(by("list_tools").annotations.read_only_hint, Some(true), "the method's annotations stay");
    assert_eq!(by("delete_app").annotations.destructive_hint, Some(true));
    let import = by("import_document");
    assert!(import.description.starts_with("Import the app's OpenAPI"), "{}", import.description);
    let required = import.input_schema["required"].as_array().cloned().unwrap_or_default();
    assert!(required.contains(&Value::from("ws")) && required.contains(&Value::from("app")), "{required:?}");
}

#[test]
fn a_decision_must_be_one_or_the_other() {
    let mixed = serde_json::json!({ "exclude": "because it is not for agents", "name": "x", "description": "y" });
    assert!(serde_json::from_value::<Decision>(mixed).is_err(), "a decision with both shapes is refused");
    let neither = serde_json::json!({ "name": "x" });
    assert!(serde_json::from_value::<Decision>(neither).is_err());
}
