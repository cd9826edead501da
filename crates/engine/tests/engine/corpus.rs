//! Every corpus document imports; generated tools are snapshotted and structurally valid.

use std::collections::{HashMap, HashSet};

use flowcp_engine::openapi::{ApiKeyLocation, Ledger, SecuritySchemeKind, Severity, IMPORT_OUTPUT_BYTES};
use flowcp_engine::tools::{import, import_value, import_within, ImportReport, Importer, ToolDef};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::support::{
    assert_snapshot, corpus_documents, corpus_file, fail_if_snapshots_were_rewritten, snapshot_dir, tool_problems,
};

const DIGEST_DOCS: &[&str] = &["real/github-api.json.gz", "real/stripe.yaml.gz"];

/// Every corpus document imported once per test run (GitHub's 13 MB included), shared by the
/// tests below.
pub(crate) fn imported() -> &'static [(String, ImportReport)] {
    static IMPORTED: std::sync::OnceLock<Vec<(String, ImportReport)>> = std::sync::OnceLock::new();
    IMPORTED.get_or_init(|| {
        corpus_documents()
            .into_iter()
            .map(|(rel, bytes)| {
                let report = import(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"));
                (rel, report)
            })
            .collect()
    })
}

fn imported_doc(rel: &str) -> &'static ImportReport {
    &imported().iter().find(|(r, _)| r == rel).unwrap_or_else(|| panic!("{rel} is not in the corpus")).1
}

#[test]
fn every_corpus_document_imports_without_errors() {
    let docs = imported();
    assert!(docs.len() >= 60, "corpus has {} documents", docs.len());
    for (rel, report) in docs {
        let errors: Vec<_> = report.problems.iter().filter(|p| p.severity == Severity::Error).collect();
        assert!(errors.is_empty(), "{rel}: {errors:?}");
        if !rel.ends_with("webhooks.json") {
            assert!(!report.tools.is_empty(), "{rel}: no tools");
        }
        assert_eq!(report.tools.len(), report.operations_total, "{rel}: operations skipped");
    }
}

#[test]
fn real_documents_yield_every_operation() {
    assert_eq!(imported_doc("real/github-api.json.gz").tools.len(), 1223);
    assert_eq!(imported_doc("real/stripe.yaml.gz").tools.len(), 588);
}

fn digest_line(t: &ToolDef) -> String {
    let required: Vec<&str> = t
        .input_schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let a = &t.annotations;
    let flag = |b: Option<bool>, c: char| if b == Some(true) { c } else { '-' };
    let hints: String =
        [flag(a.read_only_hint, 'R'), flag(a.destructive_hint, 'D'), flag(a.idempotent_hint, 'I')].iter().collect();
    let hash = hex::encode(Sha256::digest(t.input_schema.to_string().as_bytes()));
    format!(
        "{} {} required=[{}] {} out={} in={}\n",
        t.name,
        t.operation_key,
        required.join(","),
        hints,
        if t.output_schema.is_some() { "yes" } else { "no" },
        &hash[..12]
    )
}

#[test]
fn generated_tools_match_snapshots() {
    for (rel, report) in imported() {
        let stem = rel.replace('/', "__");
        let stem = stem.strip_suffix(".json").unwrap_or(&stem);
        if DIGEST_DOCS.contains(&rel.as_str()) {
            let mut text = format!(
                "# {} {} (spec {}) — {} tools; name, operation, required args, hints R/D/I, output schema, sha256(inputSchema)\n",
                report.title, report.version, report.spec_version_string, report.tools.len()
            );
            for t in &report.tools {
                text.push_str(&digest_line(t));
            }
            for p in &report.problems {
                text.push_str(&format!("! {:?} {} {}\n", p.severity, p.pointer, p.message));
            }
            assert_snapshot(&format!("{stem}.digest.txt"), &text);
        } else {
            let v = json!({
                "title": report.title,
                "specVersion": report.spec_version_string,
                "servers": report.servers,
                "securitySchemes": report.security_schemes,
                "tools": report.tools,
                "problems": report.problems,
            });
            let text = serde_json::to_string_pretty(&v).expect("json") + "\n";
            assert_snapshot(&format!("{stem}.json"), &text);
        }
    }
    fail_if_snapshots_were_rewritten();
}

#[test]
fn snapshots_stay_under_five_megabytes() {
    let total: u64 = std::fs::read_dir(snapshot_dir())
        .expect("snapshot dir")
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(total < 5 * 1024 * 1024, "snapshots take {total} bytes");
}

#[test]
fn every_input_schema_is_a_2020_12_object_schema() {
    for (rel, report) in imported() {
        for t in &report.tools {
            let problems = tool_problems(t);
            assert!(problems.is_empty(), "{rel} {}: {problems:?}", t.name);
        }
    }
}

#[test]
fn tool_names_are_valid_and_unique_per_document() {
    for (rel, report) in imported() {
        let mut seen = HashSet::new();
        for t in &report.tools {
            assert!(seen.insert(t.name.clone()), "{rel}: duplicate name {}", t.name);
        }
        let keys: HashSet<_> = report.tools.iter().map(|t| &t.operation_key).collect();
        assert_eq!(keys.len(), report.tools.len(), "{rel}: duplicate operation keys");
    }
}

/// KV values are at most 25 MiB: the biggest real API's manifest (its tools) must fit with room.
#[test]
fn the_largest_manifest_fits_a_kv_value() {
    for rel in DIGEST_DOCS {
        let bytes = serde_json::to_vec(&imported_doc(rel).tools).expect("json").len();
        assert!(bytes < 25 * 1024 * 1024 / 2, "{rel}: {bytes} bytes of tools, over half the KV value limit");
    }
}

/// The import output budget leaves the largest real documents a quarter of it spare, and
/// what the ledger charges is at least what the tools take as JSON (it bounds them).
#[test]
fn real_documents_fit_the_import_output_budget_with_room() {
    for rel in DIGEST_DOCS {
        let ledger = Ledger::default();
        let report = import_within(&corpus_file(rel), &ledger).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let tools = serde_json::to_vec(&report.tools).expect("json").len();
        let used = ledger.total();
        println!("{rel}: charged {used} bytes for {tools} bytes of tools; {} copied transiently", ledger.transient());
        assert!(used < IMPORT_OUTPUT_BYTES / 4 * 3, "{rel}: charged {used} of {IMPORT_OUTPUT_BYTES}");
        assert!(used >= tools, "{rel}: charged {used}, below the {tools} bytes produced");
    }
}

#[test]
fn names_do_not_depend_on_document_order() {
    let bytes = corpus_file("real/github-api.json.gz");
    let mut doc: Value = serde_json::from_slice(&bytes).expect("json");
    let forward = imported_doc("real/github-api.json.gz");
    let paths = doc.get_mut("paths").and_then(Value::as_object_mut).expect("paths");
    let reversed: serde_json::Map<String, Value> = paths.iter().rev().map(|(k, v)| (k.clone(), v.clone())).collect();
    *paths = reversed;
    let backward = import_value(doc).expect("import");
    let by_key = |r: &ImportReport| -> HashMap<String, String> {
        r.tools.iter().map(|t| (t.operation_key.clone(), t.name.clone())).collect()
    };
    assert_eq!(by_key(forward), by_key(&backward));
}

#[test]
fn colliding_operation_ids_get_hash_suffixes_that_survive_reimport() {
    let doc = json!({
        "openapi": "3.0.3", "info": {"title": "t", "version": "1"},
        "paths": {
            "/b": {"get": {"operationId": "same", "responses": {}}},
            "/a": {"get": {"operationId": "same", "responses": {}}},
            "/c": {"get": {"operationId": "x".repeat(100), "responses": {}}}
        }
    });
    let r = import_value(doc).expect("import");
    let names: HashMap<_, _> = r.tools.iter().map(|t| (t.operation_key.as_str(), t.name.as_str())).collect();
    assert_eq!(names["GET /a"], "same");
    assert!(names["GET /b"].starts_with("same_") && names["GET /b"].len() == 11, "{}", names["GET /b"]);
    assert_eq!(names["GET /c"].len(), 64);
}

#[test]
fn tooldef_round_trips_through_serde() {
    let r = import(&corpus_file("examples/3.0/parameters-style.json")).expect("import");
    let text = serde_json::to_string(&r.tools).expect("ser");
    let back: Vec<ToolDef> = serde_json::from_str(&text).expect("de");
    assert_eq!(back, r.tools);
}

#[test]
fn swagger_2_is_upgraded_with_servers_bodies_and_security() {
    let r = import(&corpus_file("examples/2.0/petstore.json")).expect("import");
    assert_eq!(r.servers, vec!["http://petstore.swagger.io/v2"]);
    let upload = r.tools.iter().find(|t| t.name == "uploadFile").expect("uploadFile");
    let body = upload.request.body.as_ref().expect("body");
    assert_eq!(body.content_type, "multipart/form-data");
    assert!(body.encoding.iter().any(|e| e.field == "file" && e.file));
    let api_key = r.security_schemes.iter().find(|s| s.name == "api_key").expect("api_key");
    assert_eq!(api_key.kind, SecuritySchemeKind::ApiKey { location: ApiKeyLocation::Header, name: "api_key".into() });
    let oauth = r.security_schemes.iter().find(|s| s.name == "petstore_auth").expect("oauth");
    let SecuritySchemeKind::OAuth2 { flows } = &oauth.kind else { panic!("not oauth2") };
    assert_eq!(flows[0].flow, "implicit");
    assert_eq!(flows[0].scopes, vec!["write:pets", "read:pets"]);
}

#[test]
fn discriminator_branches_get_a_const_tag() {
    let r = import(&corpus_file("examples/3.0/discriminators.json")).expect("import");
    let text = serde_json::to_string(&r.tools).expect("ser");
    assert!(text.contains("\"const\""), "no const from discriminator");
    assert!(!text.contains("\"discriminator\""));
}

#[test]
fn nullable_becomes_a_type_array() {
    let doc = json!({
        "openapi": "3.0.0", "info": {"title": "t", "version": "1"},
        "paths": {"/x": {"post": {"operationId": "x", "requestBody": {"required": true, "content": {"application/json": {"schema": {
            "type": "object", "required": ["n"],
            "properties": {
                "n": {"type": "integer", "nullable": true, "minimum": 1, "exclusiveMinimum": true, "example": 3},
                "e": {"type": "string", "enum": ["a"], "nullable": true},
                "ro": {"type": "string", "readOnly": true}
            }
        }}}}, "responses": {}}}}
    });
    let r = import_value(doc).expect("import");
    assert_eq!(
        r.tools[0].input_schema,
        json!({"type": "object", "properties": {
            "n": {"type": ["integer", "null"], "exclusiveMinimum": 1, "examples": [3]},
            "e": {"type": ["string", "null"], "enum": ["a", null]}
        }, "required": ["n"]})
    );
}

/// The batch importer (issue 18) gives exactly what one whole import gives, whatever the batch
/// size, and a JSON document read in parts gives exactly what its parsed tree gives.
#[test]
fn batches_and_parts_give_exactly_the_whole_import() {
    for (rel, bytes) in corpus_documents() {
        let whole = imported_doc(&rel);
        for size in [1, 7, 200] {
            let ledger = Ledger::default();
            let batched = Importer::new(&bytes, &ledger).and_then(|i| i.collect(size)).expect("imports");
            assert!(batched == *whole, "{rel}: batches of {size} differ from the whole import");
        }
        if rel.ends_with(".json") || rel.ends_with(".json.gz") {
            let tree: Value = serde_json::from_slice(&bytes).expect("json");
            let from_tree = import_value(tree).expect("imports");
            assert!(from_tree == *whole, "{rel}: the parts reader and the tree differ");
        }
    }
}

/// A generated document of 10,000 operations and about 20 MB (the size of the biggest public
/// APIs) imports in batches; one whole import of it would pass the per-batch budget.
#[test]
fn ten_thousand_operations_import_in_batches() {
    let bytes = flowcp_engine::tools::large_document(10_000);
    assert!(bytes.len() > 19_000_000 && bytes.len() <= flowcp_engine::openapi::MAX_DOCUMENT_BYTES, "{}", bytes.len());
    let ledger = Ledger::default();
    let mut importer = Importer::new(&bytes, &ledger).expect("reads");
    let (mut tools, mut names) = (0, HashSet::new());
    while let Some(batch) = importer.next_batch(flowcp_engine::tools::IMPORT_BATCH_TOOLS).expect("imports") {
        assert!(batch.len() <= flowcp_engine::tools::IMPORT_BATCH_TOOLS + 2);
        tools += batch.len();
        names.extend(batch.into_iter().map(|t| t.name));
    }
    let tail = importer.finish();
    assert_eq!((tools, names.len(), tail.operations_total), (10_000, 10_000, 10_000));
    assert!(tail.problems.iter().all(|p| p.severity != Severity::Error), "{:?}", tail.problems.first());
    assert!(matches!(import(&bytes), Err(flowcp_engine::openapi::LoadError::OutputTooLarge { .. })));
}
