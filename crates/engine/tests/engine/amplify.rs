//! Documents that amplify on import (security review F3): a small document whose `$ref`s,
//! shared parameters or Swagger 2.0 bodies copy large values into every use. Each must end
//! in a clear error naming what was too large, within a bounded output, and shared targets
//! are expanded once, not once per use.
//!
//! The same builders are used by `tests/import_memory.rs` (peak allocation) and written out
//! by `flowcp hostile-docs DIR` for the RSS figures.

use flowcp_engine::openapi::{Ledger, LoadError, IMPORT_OUTPUT_BYTES};
use flowcp_engine::tools::{import, import_within};
use serde_json::json;

use flowcp_engine::tools::hostile_documents;

fn too_large(name: &str, bytes: &[u8]) -> Vec<(String, usize)> {
    match import(bytes) {
        Err(LoadError::OutputTooLarge { limit, largest }) => {
            assert_eq!(limit, IMPORT_OUTPUT_BYTES, "{name}");
            largest
        }
        Err(LoadError::TooManyValues { limit }) => vec![(format!("the whole document (over {limit} values)"), 0)],
        Err(LoadError::TooMuchParsing { limit }) => vec![(format!("the document's parts (over {limit} bytes)"), 0)],
        Err(e) => panic!("{name}: expected OutputTooLarge, got {e}"),
        Ok(r) => panic!("{name}: imported {} tools; expected OutputTooLarge", r.tools.len()),
    }
}

#[test]
fn an_enum_inlined_thousands_of_times_ends_in_output_too_large() {
    let docs = hostile_documents();
    let (_, bytes) = docs.iter().find(|(n, _)| n == "enum-fanout").expect("enum-fanout");
    assert!(bytes.len() < 1024 * 1024, "the attack document is small: {} bytes", bytes.len());
    let largest = too_large("enum-fanout", bytes);
    assert_eq!(largest.first().map(|(p, _)| p.as_str()), Some("/paths/~1x/post"), "{largest:?}");
    let message = import(bytes).map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("/paths/~1x/post") && message.contains("72 MB"), "{message}");
}

#[test]
fn every_amplifying_document_ends_in_a_clear_error() {
    for (name, bytes) in hostile_documents() {
        if name.starts_with("fits-") {
            continue;
        }
        let largest = too_large(&name, &bytes);
        assert!(!largest.is_empty(), "{name}: the error names no operation");
    }
}

#[test]
fn a_shared_schema_used_thousands_of_times_is_expanded_once_per_situation() {
    // 2,000 uses of one small component: it fits, and all but the first two come from the memo.
    let props: serde_json::Map<String, serde_json::Value> =
        (0..2_000).map(|i| (format!("p{i}"), json!({"$ref": "#/components/schemas/S"}))).collect();
    let doc = json!({"openapi": "3.0.3", "info": {"title": "m", "version": "1"},
        "paths": {"/x": {"post": {"operationId": "x", "responses": {"200": {"description": "ok"}},
            "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": props}}}}}}},
        "components": {"schemas": {"S": {"type": "string", "enum": ["a", "b", "c"], "description": "S"}}}});
    let ledger = Ledger::default();
    let r = import_within(&serde_json::to_vec(&doc).expect("json"), &ledger).expect("import");
    let schema = &r.tools[0].input_schema["properties"];
    assert_eq!(schema["p0"], schema["p1999"]);
    assert_eq!(schema["p1999"]["enum"], json!(["a", "b", "c"]));
    assert!(ledger.memo_hits() >= 1_998, "memo hits: {}", ledger.memo_hits());
}

/// Documents that are cut down, not refused: each imports, with what was left out reported,
/// and nothing in the report is longer than a problem may be.
#[test]
fn documents_cut_to_size_import_with_bounded_reports() {
    use flowcp_engine::openapi::MAX_PROBLEM_TEXT;
    for (name, bytes) in hostile_documents() {
        if !name.starts_with("fits-") {
            continue;
        }
        let r = import(&bytes)
            .unwrap_or_else(|e| panic!("{name}: {}", e.to_string().chars().take(300).collect::<String>()));
        assert!(r.problems.len() <= 2_001, "{name}: {} problems", r.problems.len());
        for p in &r.problems {
            assert!(p.pointer.len() <= MAX_PROBLEM_TEXT && p.message.len() <= MAX_PROBLEM_TEXT, "{name}: {p:?}");
        }
        for t in &r.tools {
            assert!(
                t.request.servers.len() <= 16 && t.request.servers.iter().all(|s| s.len() <= 2_048),
                "{name}: servers"
            );
            let bytes = serde_json::to_vec(t).map(|v| v.len()).unwrap_or(0);
            assert!(bytes < 16 << 20, "{name}: a tool of {bytes} bytes");
        }
    }
}

#[test]
fn a_path_longer_than_the_limit_is_skipped_with_an_error() {
    let docs = hostile_documents();
    let (_, bytes) = docs.iter().find(|(n, _)| n == "fits-long-path").expect("fits-long-path");
    let r = import(bytes).expect("imports");
    assert!(r.tools.is_empty());
    assert!(r.problems.iter().any(|p| p.message.contains("is longer than 2048 characters")), "{:?}", r.problems);
}
