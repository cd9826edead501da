//! Shared helpers: corpus paths, gzip reading, snapshot files, schema structure checks.

use std::io::Read;
use std::path::PathBuf;

use flowcp_engine::tools::names::{is_valid_arg_name, is_valid_tool_name};
use flowcp_engine::tools::ToolDef;
use serde_json::Value;

pub fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus/openapi"))
}

pub fn snapshot_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/tools"))
}

/// Every corpus document, relative path and bytes (gzip decompressed).
pub fn corpus_documents() -> Vec<(String, Vec<u8>)> {
    let root = corpus_dir();
    let mut out = Vec::new();
    for sub in ["examples/2.0", "examples/3.0", "examples/3.1", "real"] {
        let dir = root.join(sub);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus dir {}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                let n = p.to_string_lossy();
                n.ends_with(".json") || n.ends_with(".yaml") || n.ends_with(".gz")
            })
            .collect();
        entries.sort();
        for p in entries {
            let rel = format!("{sub}/{}", p.file_name().unwrap_or_default().to_string_lossy());
            out.push((rel, read_maybe_gz(&p)));
        }
    }
    out
}

pub fn read_maybe_gz(p: &std::path::Path) -> Vec<u8> {
    let raw = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    if p.to_string_lossy().ends_with(".gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).expect("gunzip");
        out
    } else {
        raw
    }
}

pub fn corpus_file(rel: &str) -> Vec<u8> {
    read_maybe_gz(&corpus_dir().join(rel))
}

/// Snapshots rewritten in this run (see [`fail_if_snapshots_were_rewritten`]).
static SNAPSHOTS_REWRITTEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Never a silent pass: a test that rewrote snapshots fails, so they are reviewed and the
/// tests run again without `FLOWCP_SNAPSHOT`.
pub fn fail_if_snapshots_were_rewritten() {
    let n = SNAPSHOTS_REWRITTEN.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(n, 0, "{n} snapshot(s) rewritten; review them and re-run without FLOWCP_SNAPSHOT");
}

/// Compare `actual` with the stored snapshot; `FLOWCP_SNAPSHOT=overwrite` rewrites it (and the
/// calling test then fails through [`fail_if_snapshots_were_rewritten`]).
pub fn assert_snapshot(file_name: &str, actual: &str) {
    let path = snapshot_dir().join(file_name);
    if std::env::var("FLOWCP_SNAPSHOT").as_deref() == Ok("overwrite") {
        std::fs::create_dir_all(snapshot_dir()).expect("snapshot dir");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(actual) {
            std::fs::write(&path, actual).expect("write snapshot");
            SNAPSHOTS_REWRITTEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing snapshot {}; run with FLOWCP_SNAPSHOT=overwrite", path.display()));
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "snapshot {} differs from line {} on:\n  stored: {:?}\n  actual: {:?}\n(re-run with FLOWCP_SNAPSHOT=overwrite to accept)",
            path.display(),
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

const JSON_TYPES: &[&str] = &["object", "array", "string", "number", "integer", "boolean", "null"];
const SUB_MAPS: &[&str] = &["properties", "patternProperties", "dependentSchemas"];
const SUB_LISTS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
const SUB_ONE: &[&str] = &[
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
];

/// Structural check of a schema in JSON Schema 2020-12 terms; returns problems.
pub fn schema_problems(schema: &Value, at: &str, depth: usize, out: &mut Vec<String>) {
    assert!(depth < 200, "schema nesting unbounded at {at}");
    let m = match schema {
        Value::Bool(_) => return,
        Value::Object(m) => m,
        other => {
            out.push(format!("{at}: schema is {other}"));
            return;
        }
    };
    for bad in ["$ref", "nullable", "x-nullable", "discriminator", "example"] {
        if m.contains_key(bad) {
            out.push(format!("{at}: leftover `{bad}`"));
        }
    }
    match m.get("type") {
        None => {}
        Some(Value::String(t)) if JSON_TYPES.contains(&t.as_str()) => {}
        Some(Value::Array(ts)) if ts.iter().all(|t| t.as_str().is_some_and(|t| JSON_TYPES.contains(&t))) => {}
        Some(other) => out.push(format!("{at}: bad type {other}")),
    }
    for k in ["exclusiveMinimum", "exclusiveMaximum"] {
        if let Some(v) = m.get(k) {
            if !v.is_number() {
                out.push(format!("{at}: {k} is not a number"));
            }
        }
    }
    if let Some(r) = m.get("required") {
        if !r.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
            out.push(format!("{at}: required is not a list of strings"));
        }
    }
    for k in SUB_MAPS {
        if let Some(v) = m.get(*k) {
            match v.as_object() {
                Some(props) => {
                    for (pk, pv) in props {
                        schema_problems(pv, &format!("{at}/{k}/{pk}"), depth + 1, out);
                    }
                }
                None => out.push(format!("{at}: {k} is not an object")),
            }
        }
    }
    for k in SUB_LISTS {
        if let Some(v) = m.get(*k) {
            match v.as_array() {
                Some(list) => {
                    for (i, s) in list.iter().enumerate() {
                        schema_problems(s, &format!("{at}/{k}/{i}"), depth + 1, out);
                    }
                }
                None => out.push(format!("{at}: {k} is not a list")),
            }
        }
    }
    for k in SUB_ONE {
        if let Some(v) = m.get(*k) {
            schema_problems(v, &format!("{at}/{k}"), depth + 1, out);
        }
    }
}

/// A tool's input schema: an object schema whose `required` names only its properties,
/// with valid argument names, and valid JSON Schema below.
pub fn tool_problems(tool: &ToolDef) -> Vec<String> {
    let mut out = Vec::new();
    let s = &tool.input_schema;
    if s.get("type").and_then(Value::as_str) != Some("object") {
        out.push("input schema type is not object".into());
    }
    let Some(props) = s.get("properties").and_then(Value::as_object) else {
        out.push("input schema has no properties map".into());
        return out;
    };
    for k in props.keys() {
        if !is_valid_arg_name(k) {
            out.push(format!("invalid argument name {k:?}"));
        }
    }
    if let Some(req) = s.get("required").and_then(Value::as_array) {
        for r in req {
            if !r.as_str().is_some_and(|r| props.contains_key(r)) {
                out.push(format!("required {r} is not a property"));
            }
        }
    }
    schema_problems(s, "inputSchema", 0, &mut out);
    if let Some(o) = &tool.output_schema {
        if o.get("type").and_then(Value::as_str) != Some("object") {
            out.push("output schema type is not object".into());
        }
        schema_problems(o, "outputSchema", 0, &mut out);
    }
    if !is_valid_tool_name(&tool.name) {
        out.push(format!("invalid tool name {:?}", tool.name));
    }
    for p in &tool.request.params {
        if !props.contains_key(&p.arg) {
            out.push(format!("param {} has no schema property", p.arg));
        }
    }
    out
}
