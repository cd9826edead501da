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
    // An operation of 700,000 tiny values (1.4 MB): parsed, 56 MB of values. (Values no
    // operation reaches are never parsed: `fits-unread-values`.)
    let values = Value::Array(vec![json!(0); 700_000]);
    out.push((
        "too-many-values".into(),
        doc(json!({"/x": {"get": {"responses": {}, "x-data": values.clone()}}}), json!({})),
    ));
    let mut d = doc(json!({"/x": {"get": {"responses": {}}}}), json!({}));
    d["x-data"] = values;
    out.push(("fits-unread-values".into(), d));
    // A 2 MB part reached from 20,000 path items (each naming chunk and batch of a document
    // read in parts parses what it reaches): bounded by the import's parsing work.
    let paths: Map<String, Value> = (0..20_000).map(|i| (format!("/r{i}"), json!({"$ref": "#/x-h/0"}))).collect();
    let mut d = doc(Value::Object(paths), json!({}));
    d["x-h"] = json!([{"get": {"responses": {}}}, "h".repeat(2 << 20)]);
    out.push(("reparsed-part".into(), d));
    // From the attacker review of the ledger (each would have taken gigabytes):
    // a path naming 20,000 undeclared parameters (one problem each, each with the path).
    let path: String = (0..20_000).map(|i| format!("{{a{i}}}")).collect();
    out.push(("fits-long-path".into(), doc(json!({ path: {"get": {"responses": {}}} }), json!({}))));
    // 100,000 non-schema properties: one warning each.
    let props = (0..100_000).map(|i| (format!("k{i}"), json!(0))).collect();
    out.push(("fits-warning-flood".into(), doc(json!({"/x": {"post": body_of(props)}}), json!({}))));
    // A server URL of 100,000 variables, each defaulting to 10 KB.
    let mut d = doc(json!({"/x": {"get": {"responses": {}}}}), json!({}));
    d["servers"] = json!([{"url": "{v}".repeat(100_000), "variables": {"v": {"default": "x".repeat(10_000)}}}]);
    out.push(("fits-server-variables".into(), d));
    // 50,000 servers copied into each of 1,000 tools.
    let paths: Map<String, Value> = (0..1_000).map(|i| (format!("/s{i}"), json!({"get": {"responses": {}}}))).collect();
    let mut d = doc(Value::Object(paths), json!({}));
    d["servers"] = Value::Array((0..50_000).map(|i| json!({"url": format!("https://s{i}.example")})).collect());
    out.push(("fits-many-servers".into(), d));
    // A 1 MB discriminator property name over 50,000 branches, and a long mapping.
    let branches: Vec<Value> = (0..50_000).map(|_| json!({"$ref": "#/components/schemas/A"})).collect();
    let mapping: Map<String, Value> = (0..20_000).map(|i| (format!("m{i}"), json!(format!("#/x/{i}")))).collect();
    let schema = json!({"oneOf": branches, "discriminator": {"propertyName": "p".repeat(1 << 20), "mapping": mapping}});
    out.push((
        "fits-discriminator".into(),
        doc(
            json!({"/x": {"post": body_of(Map::from_iter([("d".to_string(), schema)]))}}),
            json!({"schemas": {"A": {"type": "object"}}}),
        ),
    ));
    // Swagger 2.0: one body of a 20,000-word enum, consumed as 10,000 media types.
    let consumes: Vec<String> = (0..10_000).map(|i| format!("application/x-{i}+json")).collect();
    out.push((
        "fits-swagger2-consumes".into(),
        json!({"swagger": "2.0", "info": {"title": "hostile", "version": "1"}, "consumes": consumes,
            "paths": {"/c": {"post": {"parameters": [{"name": "b", "in": "body", "schema": {"type": "string", "enum": words(20_000)}}], "responses": {}}}}}),
    ));
    // allOf of two parts requiring 100,000 names each (merged pairwise).
    let names: Vec<Value> = (0..100_000).map(|i| json!(format!("n{i}"))).collect();
    let schema = json!({"allOf": [{"type": "object", "required": names}, {"type": "object", "required": names}]});
    out.push((
        "fits-required-merge".into(),
        doc(json!({"/x": {"post": body_of(Map::from_iter([("r".to_string(), schema)]))}}), json!({})),
    ));
    // allOf of 400 parts, each requiring the same 1,000 names (merging compared them pairwise).
    let names: Vec<Value> = (0..1_000).map(|i| json!(format!("n{i}"))).collect();
    let parts: Vec<Value> = (0..400).map(|_| json!({"required": names})).collect();
    out.push((
        "fits-allof-required".into(),
        doc(json!({"/x": {"post": body_of(Map::from_iter([("r".to_string(), json!({"allOf": parts}))]))}}), json!({})),
    ));
    // A 2.0 host of 1 MB with many schemes, and a shared body whose description is 1 MB.
    let schemes: Vec<String> = (0..10_000).map(|i| format!("s{i}")).collect();
    let paths: Map<String, Value> = (0..2_000)
        .map(|i| {
            (
                format!("/b{i}"),
                json!({"post": {"requestBody": {"$ref": "#/components/requestBodies/B"}, "responses": {}}}),
            )
        })
        .collect();
    let mut d = doc(
        Value::Object(paths),
        json!({"requestBodies": {"B": {"description": "d".repeat(1 << 20), "content": {"text/plain": {"schema": {"type": "string"}}}}}}),
    );
    d["servers"] = json!([{"url": "https://api.example"}]);
    out.push(("fits-shared-body-description".into(), d));
    out.push((
        "fits-swagger2-host".into(),
        json!({"swagger": "2.0", "info": {"title": "hostile", "version": "1"}, "host": "h".repeat(1 << 20), "schemes": schemes,
            "paths": {"/a": {"get": {"responses": {}}}}}),
    ));
    // 50,000 distinct parameters on one operation.
    let params: Vec<Value> = (0..50_000).map(|i| json!({"name": format!("q{i}"), "in": "query"})).collect();
    out.push((
        "fits-many-parameters".into(),
        doc(json!({"/x": {"get": {"parameters": params, "responses": {}}}}), json!({})),
    ));
    // 5,000 operations each reaching a schema through a 100 KB-long $ref.
    let long = format!("#/components/schemas/{}", "L".repeat(2_000));
    let paths: Map<String, Value> = (0..5_000)
        .map(|i| {
            (format!("/r{i}"), json!({"post": body_of(Map::from_iter([("v".to_string(), json!({"$ref": long}))]))}))
        })
        .collect();
    out.push(("fits-long-refs".into(), doc(Value::Object(paths), json!({"schemas": {}}))));
    out.into_iter().map(|(n, v)| (n, serde_json::to_vec(&v).unwrap_or_default())).collect()
}
