//! Documents built to amplify on import (security review F3), for the tests, the peak-memory
//! test and the RSS figures (`flowcp hostile-docs DIR`). Each is small (under 1.5 MB) and,
//! without the import ledger, would copy gigabytes.

use serde_json::{json, Map, Value};

fn words(n: usize) -> Vec<Value> {
    (0..n).map(|i| Value::String(format!("w{i:08}"))).collect()
}

fn doc(paths: Value, components: Value) -> Value {
    json!({"openapi": "3.0.3", "info": {"title": "hostile", "version": "1"}, "paths": paths, "components": components})
}

fn body_of(props: Map<String, Value>) -> Value {
    json!({"operationId": "x", "responses": {"200": {"description": "ok"}},
        "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": props}}}}})
}

/// One operation whose body has `uses` properties, each a `$ref` to an enum of `size` words.
fn enum_fanout(size: usize, uses: usize) -> Value {
    let props = (0..uses).map(|i| (format!("p{i}"), json!({"$ref": "#/components/schemas/E"}))).collect();
    doc(json!({"/x": {"post": body_of(props)}}), json!({"schemas": {"E": {"type": "string", "enum": words(size)}}}))
}

/// (name, JSON bytes). Names starting `fits-` are under the budget and import.
pub fn hostile_documents() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    // The review's document: a 400 KB enum inlined into 2,500 properties (~1 GB of copies).
    out.push(("enum-fanout".into(), enum_fanout(40_000, 2_500)));
    // The same with the ref's siblings set, which takes the un-memoised path.
    let props =
        (0..2_500).map(|i| (format!("p{i}"), json!({"$ref": "#/components/schemas/E", "description": "d"}))).collect();
    out.push((
        "sibling-fanout".into(),
        doc(
            json!({"/x": {"post": body_of(props)}}),
            json!({"schemas": {"E": {"type": "string", "enum": words(40_000)}}}),
        ),
    ));
    // A `default` value (an unknown-to-us keyword copied whole) of 1 MB behind a chain of refs.
    let props = (0..1_000).map(|i| (format!("p{i}"), json!({"$ref": "#/components/schemas/A"}))).collect();
    out.push((
        "default-chain".into(),
        doc(
            json!({"/x": {"post": body_of(props)}}),
            json!({"schemas": {"A": {"$ref": "#/components/schemas/B"},
                "B": {"type": "array", "default": words(80_000)}}}),
        ),
    ));
    // One shared parameter (a 1 MB enum) used by 5,000 one-line operations.
    let paths: Map<String, Value> = (0..5_000)
        .map(|i| {
            (format!("/p{i}"), json!({"get": {"parameters": [{"$ref": "#/components/parameters/P"}], "responses": {}}}))
        })
        .collect();
    out.push((
        "shared-parameter".into(),
        doc(
            Value::Object(paths),
            json!({"parameters": {"P": {"name": "p", "in": "query", "schema": {"type": "string", "enum": words(80_000)}}}}),
        ),
    ));
    // Swagger 2.0: one body parameter with a 1 MB inline schema, shared by 5,000 operations
    // (the 2.0 upgrade copies it into each).
    let paths: Map<String, Value> = (0..5_000)
        .map(|i| (format!("/s{i}"), json!({"post": {"parameters": [{"$ref": "#/parameters/B"}], "responses": {}}})))
        .collect();
    out.push((
        "swagger2-shared-body".into(),
        json!({"swagger": "2.0", "info": {"title": "hostile", "version": "1"}, "paths": paths,
            "parameters": {"B": {"name": "b", "in": "body", "schema": {"type": "string", "enum": words(80_000)}}}}),
    ));
    // Under the budget: 12 uses of the 400 KB enum (about 40 MB in memory).
    out.push(("fits-enum-fanout".into(), enum_fanout(40_000, 12)));
    out.into_iter().map(|(n, v)| (n, serde_json::to_vec(&v).unwrap_or_default())).collect()
}
