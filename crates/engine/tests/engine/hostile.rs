//! Hostile documents: clear errors or warnings, never a panic or a stack overflow.

use flowcp_engine::openapi::{LoadError, Severity, MAX_DOCUMENT_BYTES};
use flowcp_engine::tools::{import, import_value};
use serde_json::{json, Value};

use super::support::tool_problems;

fn op_with_body(schema: Value, components: Value) -> Value {
    json!({
        "openapi": "3.0.3", "info": {"title": "h", "version": "1"},
        "paths": {"/x": {"post": {"operationId": "x",
            "requestBody": {"content": {"application/json": {"schema": schema}}},
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": schema}}}}}}},
        "components": components
    })
}

#[test]
fn ref_cycle_is_cut_not_overflowed() {
    let doc = op_with_body(
        json!({"$ref": "#/components/schemas/A"}),
        json!({"schemas": {
            "A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}, "self": {"$ref": "#/components/schemas/A"}}},
            "B": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A"}}, "allOf": [{"$ref": "#/components/schemas/B"}]}
        }}),
    );
    let r = import_value(doc).expect("import");
    let t = &r.tools[0];
    assert!(tool_problems(t).is_empty(), "{:?}", tool_problems(t));
    let text = t.input_schema.to_string();
    assert!(text.contains("recursive reference, not expanded further"), "{text}");
}

#[test]
fn long_ref_chain_is_bounded() {
    let mut schemas = serde_json::Map::new();
    for i in 0..500 {
        schemas.insert(
            format!("S{i}"),
            json!({"type": "object", "properties": {"next": {"$ref": format!("#/components/schemas/S{}", i + 1)}}}),
        );
    }
    let doc = op_with_body(json!({"$ref": "#/components/schemas/S0"}), json!({"schemas": schemas}));
    let r = import_value(doc).expect("import");
    assert!(tool_problems(&r.tools[0]).is_empty());
}

#[test]
fn exponential_ref_fanout_is_bounded_by_the_node_budget() {
    // Each level references the next twice: 2^40 nodes if expanded naively.
    let mut schemas = serde_json::Map::new();
    for i in 0..40 {
        let next = format!("#/components/schemas/L{}", i + 1);
        schemas.insert(
            format!("L{i}"),
            json!({"type": "object", "properties": {"l": {"$ref": next}, "r": {"$ref": next}}}),
        );
    }
    let doc = op_with_body(json!({"$ref": "#/components/schemas/L0"}), json!({"schemas": schemas}));
    let started = std::time::Instant::now();
    let r = import_value(doc).expect("import");
    assert!(started.elapsed().as_secs() < 5);
    assert!(r.tools[0].input_schema.to_string().len() < 2_000_000);
}

#[test]
fn deep_json_nesting_is_a_syntax_error_not_a_crash() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let err = import(deep.as_bytes()).unwrap_err();
    assert!(matches!(err, LoadError::Json { line: 1, .. }), "{err:?}");
    let deep_obj = format!("{{\"openapi\":\"3.0.0\",\"x\":{}1{}}}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    assert!(matches!(import(deep_obj.as_bytes()).unwrap_err(), LoadError::Json { .. }));
}

#[test]
fn deep_yaml_nesting_is_refused() {
    let flow = format!("openapi: 3.0.0\nx: {}1{}\n", "[".repeat(10_000), "]".repeat(10_000));
    assert!(matches!(import(flow.as_bytes()).unwrap_err(), LoadError::Yaml { .. }));
    let mut block = String::from("openapi: 3.0.0\nx:\n");
    for i in 0..1_000 {
        block.push_str(&" ".repeat(i + 1));
        block.push_str("a:\n");
    }
    assert!(matches!(import(block.as_bytes()).unwrap_err(), LoadError::Yaml { .. }));
}

#[test]
fn yaml_alias_bomb_is_refused() {
    let mut y = String::from("openapi: 3.0.0\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = format!("*a{}", i - 1);
        y.push_str(&format!("a{i}: &a{i} [{}]\n", [prev.as_str(); 10].join(", ")));
    }
    let err = import(y.as_bytes()).unwrap_err();
    assert!(matches!(err, LoadError::Yaml { .. }), "{err:?}");
}

#[test]
fn yaml_syntax_error_names_line_and_column() {
    let err = import(b"openapi: 3.0.0\ninfo:\n  title: [unclosed\n").unwrap_err();
    let LoadError::Yaml { line, .. } = &err else { panic!("{err:?}") };
    assert!(line.is_some(), "{err}");
    assert!(err.to_string().contains("line"), "{err}");
    let err = import(b"{\"openapi\": \"3.0.0\",\n \"info\": }").unwrap_err();
    assert_eq!(err.to_string(), "JSON syntax error at line 2, column 10: expected value");
}

#[test]
fn oversized_document_is_refused_before_parsing() {
    let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
    assert_eq!(
        import(&big).unwrap_err(),
        LoadError::TooLarge { size: MAX_DOCUMENT_BYTES + 1, limit: MAX_DOCUMENT_BYTES }
    );
}

#[test]
fn enormous_strings_are_handled() {
    let huge = "d".repeat(5 * 1024 * 1024);
    let doc = json!({"openapi": "3.1.0", "info": {"title": huge, "version": "1"}, "paths": {"/a": {"get": {
        "operationId": "a", "description": huge, "parameters": [{"name": huge, "in": "query", "schema": {"type": "string"}}], "responses": {}}}}});
    let bytes = serde_json::to_vec(&doc).expect("ser");
    let r = import(&bytes).expect("import");
    let t = &r.tools[0];
    assert!(t.description.chars().count() <= 1024);
    assert!(tool_problems(t).is_empty(), "{:?}", tool_problems(t));
}

#[test]
fn wrong_types_everywhere_give_clear_problems() {
    assert_eq!(import(b"[1,2]").unwrap_err(), LoadError::NotAnObject { found: "a list" });
    assert_eq!(import(b"{\"info\": {}}").unwrap_err(), LoadError::MissingVersion);
    assert!(matches!(import(b"{\"openapi\": \"4.0\"}").unwrap_err(), LoadError::UnsupportedVersion { .. }));
    let err = import(br#"{"openapi": "3.0.0", "paths": ["a"]}"#).unwrap_err();
    assert_eq!(err.to_string(), "`/paths` must be an object, found a list");
    let doc = json!({
        "openapi": "3.0.0", "info": "not an object", "servers": "x",
        "components": {"schemas": {"N": 5}, "securitySchemes": []},
        "paths": {
            "/a": {"get": {"operationId": "a", "parameters": "oops", "responses": []}},
            "/b": {"get": {"operationId": "b", "parameters": [7, {"name": "q", "in": "query", "schema": 5}, {"name": "r", "in": "nowhere"}],
                   "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/N"}}}}, "responses": {}}},
            "/c": [1, 2],
            "/d": {"get": 42, "post": {"operationId": "d", "requestBody": "x", "tags": "t", "security": 1}},
            "/e/{id}": {"get": {"operationId": "e", "responses": {"200": {"$ref": "http://evil.test/x"}}}}
        }
    });
    let r = import_value(doc).expect("import");
    let names: Vec<_> = r.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["a", "b", "d", "e"]);
    let find = |ptr: &str| r.problems.iter().find(|p| p.pointer == ptr).map(|p| (p.severity, p.message.clone()));
    assert_eq!(
        find("/paths/~1a/get/parameters"),
        Some((Severity::Warning, "`parameters` must be a list, found a string; ignored".into()))
    );
    assert_eq!(
        find("/paths/~1c"),
        Some((Severity::Error, "a path item must be an object, found a list; skipped".into()))
    );
    assert_eq!(
        find("/paths/~1d/get"),
        Some((Severity::Error, "operation skipped: an operation must be an object, found a number".into()))
    );
    assert!(find("/paths/~1b/get/parameters/0").is_some());
    assert!(find("/paths/~1b/get/parameters/1/schema").is_some());
    assert!(find("/paths/~1b/get/parameters/2").is_some());
    assert!(find("/paths/~1e~1{id}/get").is_some(), "undeclared path param: {:?}", r.problems);
    for t in &r.tools {
        assert!(tool_problems(t).is_empty(), "{}: {:?}", t.name, tool_problems(t));
    }
}

#[test]
fn external_refs_are_not_followed_but_reported() {
    let doc = op_with_body(json!({"$ref": "other.yaml#/Pet"}), json!({}));
    let r = import_value(doc).expect("import");
    assert!(r.problems.iter().any(|p| p.message.contains("external $ref \"other.yaml#/Pet\" is not followed")));
    assert!(tool_problems(&r.tools[0]).is_empty());
}

#[test]
fn garbage_bytes_never_panic() {
    let samples: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0x00],
        b"openapi: [".to_vec(),
        b"\xef\xbb\xbf{\"openapi\":\"3.1.0\",\"paths\":{\"/\":{\"get\":{}}}}".to_vec(),
        b"swagger: '2.0'\npaths:\n  /x:\n    get:\n      parameters:\n        - in: body\n          name: b\n          schema: 3\n".to_vec(),
        b"swagger: '2.0'\nsecurityDefinitions: 5\nparameters: []\nresponses: {r: 1}\npaths:\n  /x: {parameters: 1, get: {consumes: 1, parameters: [{$ref: '#/parameters/nope'}]}}\n".to_vec(),
        b"openapi: 3.2.0\npaths:\n  /q:\n    query: {}\n    additionalOperations: {LINK: {}, '': 1}\n".to_vec(),
        b"---\n...\n".to_vec(),
        b"".to_vec(),
    ];
    for s in &samples {
        let _ = import(s);
    }
    // The outcomes that are defined are pinned.
    for bad in [&samples[0], &samples[1], &samples[6], &samples[7]] {
        assert!(import(bad).is_err(), "{:?} must be refused", String::from_utf8_lossy(bad));
    }
    let bom = import(&samples[2]).expect("a BOM-prefixed JSON document imports");
    assert_eq!(bom.tools.len(), 1);
}
