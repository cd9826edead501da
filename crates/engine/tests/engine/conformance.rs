//! Issue 12: what FlowCP publishes works in strict MCP clients, over the whole corpus.
//!
//! A strict client (both official SDK clients) compiles every tool's schemas and validates a
//! result's `structuredContent` against the tool's `outputSchema`, rejecting the whole call
//! when it does not conform. Here the `jsonschema` crate (Draft 2020-12) stands in for it.
//! For every tool with an output schema, an empty object, the documented example and random
//! responses (conforming, and broken at random places) go through [`map_response`]; each
//! result must either carry `structuredContent` the strict validator accepts, or be the
//! documented fallback (`isError`, text only, no `structuredContent`).

use flowcp_engine::invoke::{map_response, CallToolResult};
use flowcp_engine::tools::ToolDef;
use serde_json::{json, Map, Value};

use super::corpus::imported;

fn strict(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::draft202012::options().should_validate_formats(true).build(schema).map_err(|e| e.to_string())
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

fn types_of(s: &Map<String, Value>) -> Vec<&str> {
    match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// A value that a response could hold for `schema`: it follows the schema's structure; when
/// `break_one_in` is non-zero, some nodes get a value of a wrong type instead.
fn sample(schema: &Value, rng: &mut Rng, depth: usize, break_one_in: usize) -> Value {
    let wrong = [json!("not what was documented"), json!(17), json!([1]), json!({"unexpected": true}), json!(null)];
    if break_one_in > 0 && depth > 0 && rng.chance(break_one_in) {
        return wrong[rng.below(wrong.len())].clone();
    }
    let Value::Object(s) = schema else { return json!({}) };
    if depth > 8 {
        return Value::Null;
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = s.get(key) {
            if !alts.is_empty() {
                return sample(&alts[rng.below(alts.len())], rng, depth + 1, break_one_in);
            }
        }
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        let mut merged = Map::new();
        for part in all {
            if let Value::Object(m) = sample(part, rng, depth + 1, break_one_in) {
                merged.extend(m);
            }
        }
        if !merged.is_empty() {
            return Value::Object(merged);
        }
    }
    if let Some(e) = s.get("examples").and_then(Value::as_array).and_then(|e| e.first()) {
        if rng.chance(3) {
            return e.clone();
        }
    }
    let types = types_of(s);
    let t = if types.is_empty() {
        if s.contains_key("properties") {
            "object"
        } else if s.contains_key("items") {
            "array"
        } else {
            "string"
        }
    } else {
        types[rng.below(types.len())]
    };
    match t {
        "object" => {
            let mut m = Map::new();
            if let Some(Value::Object(props)) = s.get("properties") {
                for (k, sub) in props {
                    if !rng.chance(4) {
                        m.insert(k.clone(), sample(sub, rng, depth + 1, break_one_in));
                    }
                }
            }
            Value::Object(m)
        }
        "array" => {
            let n = rng.below(3);
            let items = s.get("items").cloned().unwrap_or(json!({}));
            Value::Array((0..n).map(|_| sample(&items, rng, depth + 1, break_one_in)).collect())
        }
        "integer" => json!(rng.below(1000)),
        "number" => json!(rng.below(1000) as f64 / 8.0),
        "boolean" => json!(rng.chance(2)),
        "null" => Value::Null,
        _ => json!("text"),
    }
}

#[derive(Default, Debug)]
struct Tally {
    tools: usize,
    with_output: usize,
    /// Tools whose output schema rejects `{}` under the strict validator.
    empty_rejected_by_schema: usize,
    /// Results carrying `structuredContent` that a strict client would reject.
    rejected_results: usize,
    structured: usize,
    fallbacks: usize,
    /// Schemas a strict client cannot compile (it refuses the tool, or the whole list).
    uncompilable: usize,
}

/// The TypeScript SDK client's rule (`Client.callTool`, SDK 1.x): a tool with an output schema
/// must return `structuredContent` unless `isError`, and any `structuredContent` it returns,
/// error or not, must validate; otherwise the call throws.
fn typescript_sdk_accepts(r: &CallToolResult, validator: Option<&jsonschema::Validator>) -> bool {
    let Some(v) = validator else { return true };
    if r.structured_content.is_none() && !r.is_error {
        return false;
    }
    r.structured_content.as_ref().is_none_or(|sc| v.is_valid(sc))
}

/// The Python SDK client's rule (`ClientSession.call_tool`): an `isError` result is returned
/// as is; otherwise a tool with an output schema must return `structuredContent` that
/// `jsonschema.validate` accepts, else `RuntimeError`.
fn python_sdk_accepts(r: &CallToolResult, validator: Option<&jsonschema::Validator>) -> bool {
    if r.is_error {
        return true;
    }
    match (validator, &r.structured_content) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(v), Some(sc)) => v.is_valid(sc),
    }
}

/// One response body through the runtime's mapping, judged as a strict client would.
fn judge(tool: &ToolDef, validator: &jsonschema::Validator, body: &Value, tally: &mut Tally, what: &str) {
    let bytes = serde_json::to_vec(body).expect("json");
    let r = map_response(tool, 200, Some("application/json"), &bytes);
    assert!(
        typescript_sdk_accepts(&r, Some(validator)),
        "{} ({what}): the TypeScript SDK client would throw",
        tool.name
    );
    assert!(python_sdk_accepts(&r, Some(validator)), "{} ({what}): the Python SDK client would raise", tool.name);
    match &r.structured_content {
        Some(sc) => {
            tally.structured += 1;
            if !validator.is_valid(sc) {
                tally.rejected_results += 1;
                if tally.rejected_results <= 5 {
                    eprintln!("{} ({what}): strict client rejects {}", tool.name, body);
                }
            }
        }
        None => {
            tally.fallbacks += 1;
            assert!(r.is_error, "{} ({what}): a 2xx without structuredContent must be isError", tool.name);
        }
    }
}

#[test]
fn every_result_is_accepted_by_a_strict_client_or_takes_the_fallback() {
    let mut tally = Tally::default();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for (rel, report) in imported() {
        for t in &report.tools {
            tally.tools += 1;
            if let Err(e) = strict(&t.input_schema) {
                tally.uncompilable += 1;
                eprintln!("{rel} {}: input schema does not compile as Draft 2020-12: {e}", t.name);
            }
            let Some(out) = &t.output_schema else { continue };
            tally.with_output += 1;
            let v = match strict(out) {
                Ok(v) => v,
                Err(e) => {
                    tally.uncompilable += 1;
                    eprintln!("{rel} {}: output schema does not compile as Draft 2020-12: {e}", t.name);
                    continue;
                }
            };
            if !v.is_valid(&json!({})) {
                tally.empty_rejected_by_schema += 1;
            }
            judge(t, &v, &json!({}), &mut tally, "empty object");
            if let Some(e) = out.get("examples").and_then(Value::as_array).and_then(|e| e.first()) {
                judge(t, &v, e, &mut tally, "documented example");
            }
            for _ in 0..3 {
                let good = sample(out, &mut rng, 0, 0);
                judge(t, &v, &good, &mut tally, "generated");
                let bad = sample(out, &mut rng, 0, 3);
                judge(t, &v, &bad, &mut tally, "generated with wrong types");
            }
        }
    }
    println!("strict-client conformance over the corpus: {tally:?}");
    assert!(tally.with_output > 1_000, "the corpus has tools with output schemas: {tally:?}");
    assert_eq!(tally.uncompilable, 0, "schemas a strict client cannot compile: {tally:?}");
    assert_eq!(tally.rejected_results, 0, "results a strict client rejects: {tally:?}");
}

/// Every schema node of `schema`, with its JSON pointer.
fn nodes<'a>(schema: &'a Value, at: String, out: &mut Vec<(String, &'a Map<String, Value>)>) {
    let Value::Object(m) = schema else { return };
    out.push((at.clone(), m));
    for (k, v) in m {
        match (k.as_str(), v) {
            ("properties" | "patternProperties" | "dependentSchemas", Value::Object(children)) => {
                for (name, c) in children {
                    nodes(c, format!("{at}/{k}/{}", name.replace('~', "~0").replace('/', "~1")), out);
                }
            }
            ("allOf" | "anyOf" | "oneOf" | "prefixItems", Value::Array(children)) => {
                for (i, c) in children.iter().enumerate() {
                    nodes(c, format!("{at}/{k}/{i}"), out);
                }
            }
            ("items" | "additionalProperties" | "not" | "if" | "then" | "else" | "contains" | "propertyNames", c) => {
                nodes(c, format!("{at}/{k}"), out)
            }
            _ => {}
        }
    }
}

/// Every pattern FlowCP emits compiles in Rust's `regex`, in `regex-lite` (what FlowCP checks
/// with), in ECMA-262 Unicode mode (node's RegExp with the `u` flag, and the committed
/// parser, which must keep it as written) and in Python's `re` (when python3 is installed);
/// every format is one JSON Schema defines; every `default` and example matches its schema;
/// output schemas carry no constraint. Prints the counts over the corpus.
#[test]
fn every_emitted_pattern_and_format_is_portable_and_the_counts_are_reported() {
    use flowcp_engine::invoke::validate_value;
    use flowcp_engine::openapi::portable::{portable_pattern, PatternFix, PortableReport, STANDARD_FORMATS};
    let mut total = PortableReport::default();
    let mut patterns = std::collections::BTreeSet::new();
    let mut pattern_checks = 0;
    for (rel, report) in imported() {
        total.add(&report.portability);
        for t in &report.tools {
            let mut all = Vec::new();
            nodes(&t.input_schema, String::new(), &mut all);
            for (at, m) in &all {
                if let Some(p) = m.get("pattern") {
                    let p = p.as_str().unwrap_or_else(|| panic!("{rel} {} {at}: pattern {p}", t.name));
                    patterns.insert(p.to_string());
                }
                if let Some(f) = m.get("format") {
                    assert!(
                        f.as_str().is_some_and(|f| STANDARD_FORMATS.contains(&f)),
                        "{rel} {} {at}: format {f} is not a JSON Schema format",
                        t.name
                    );
                }
                let node = Value::Object((*m).clone());
                if let Some(d) = m.get("default") {
                    assert_eq!(validate_value(&node, d), Vec::<String>::new(), "{rel} {} {at}: default", t.name);
                }
                for e in m.get("examples").and_then(Value::as_array).into_iter().flatten() {
                    assert_eq!(validate_value(&node, e), Vec::<String>::new(), "{rel} {} {at}: example", t.name);
                }
            }
            for c in &t.pattern_checks {
                pattern_checks += 1;
                assert!(t.input_schema.pointer(&c.at).is_some(), "{rel} {}: {} points at nothing", t.name, c.at);
            }
            if let Some(out) = &t.output_schema {
                let mut all = Vec::new();
                nodes(out, String::new(), &mut all);
                for (at, m) in &all {
                    for k in
                        ["required", "enum", "const", "format", "pattern", "minimum", "maxLength", "minItems", "oneOf"]
                    {
                        assert!(!m.contains_key(k), "{rel} {} output {at}: `{k}` polices the response", t.name);
                    }
                    if at.is_empty() {
                        assert_eq!(m.get("type"), Some(&json!("object")), "{rel} {}: output root", t.name);
                    } else if let Some(Value::Array(types)) = m.get("type") {
                        assert!(types.contains(&json!("null")), "{rel} {} output {at}: null not tolerated", t.name);
                    } else {
                        let t_ = m.get("type");
                        assert!(
                            t_.is_none() || t_ == Some(&json!("null")),
                            "{rel} {} output {at}: {t_:?} without null",
                            t.name
                        );
                    }
                    if m.get("additionalProperties") == Some(&json!(false)) {
                        panic!("{rel} {} output {at}: additionalProperties false", t.name);
                    }
                }
            }
        }
    }
    for p in &patterns {
        regex::Regex::new(p).unwrap_or_else(|e| panic!("{p:?} does not compile in Rust's regex: {e}"));
        regex_lite::Regex::new(p).unwrap_or_else(|e| panic!("{p:?} does not compile in regex-lite: {e}"));
        assert_eq!(portable_pattern(p), PatternFix::Kept, "{p:?} is not in the portable form");
    }
    let list = serde_json::to_string(&patterns).expect("json");
    let dir = std::env::temp_dir().join(format!("flowcp-patterns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("patterns.json");
    std::fs::write(&file, &list).expect("write patterns");
    let node = std::process::Command::new("node")
        .arg("-e")
        .arg("const ps = JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8')); let bad = 0; for (const p of ps) { try { new RegExp(p, 'u') } catch (e) { bad++; console.error(p, e.message) } } console.log(ps.length, 'patterns,', bad, 'rejected'); process.exit(bad ? 1 : 0)")
        .arg(&file)
        .output()
        .expect("node is needed (it runs wrangler too)");
    assert!(node.status.success(), "ECMA-262 Unicode mode rejects: {}", String::from_utf8_lossy(&node.stderr));
    match std::process::Command::new("python3")
        .arg("-c")
        .arg("import json, re, sys, warnings\nwarnings.simplefilter('error')\nbad = 0\nfor p in json.load(open(sys.argv[1])):\n    try: re.compile(p)\n    except Exception as e: bad += 1; print(repr(p), e, file=sys.stderr)\nsys.exit(1 if bad else 0)")
        .arg(&file)
        .output()
    {
        Ok(py) => assert!(py.status.success(), "Python's re rejects: {}", String::from_utf8_lossy(&py.stderr)),
        Err(e) => println!("python3 is not installed ({e}); Python's re not checked"),
    }
    println!(
        "portability over the corpus: {} distinct emitted patterns; kept {}, rewritten {}, moved to descriptions {} ({} checks kept); formats kept {}, moved to descriptions {}; defaults dropped {}, examples dropped {}",
        patterns.len(),
        total.patterns_kept,
        total.patterns_rewritten,
        total.patterns_dropped,
        pattern_checks,
        total.formats_kept,
        total.formats_dropped,
        total.defaults_dropped,
        total.examples_dropped
    );
    assert!(total.patterns_kept > 0 && total.formats_dropped > 0, "the corpus exercises both paths: {total:?}");
}

/// Patterns and formats: portable ones stay in the schema and are checked; an unportable
/// pattern moves to the description and is still checked; unknown formats move to the
/// description; a `default` or example off its own schema is dropped with a warning.
#[test]
fn arguments_are_checked_against_patterns_and_formats_even_when_moved_out_of_the_schema() {
    use flowcp_engine::invoke::validate_tool_arguments;
    use flowcp_engine::tools::import_value;
    let doc = json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/p": {"get": {
        "operationId": "p",
        "parameters": [
            {"name": "slug", "in": "query", "schema": {"type": "string", "pattern": "^[\\w- ]+$", "default": "not/valid", "example": "ok-slug"}},
            {"name": "word", "in": "query", "schema": {"type": "string", "pattern": "^\\p{L}+$"}},
            {"name": "when", "in": "query", "schema": {"type": "string", "format": "date-time"}},
            {"name": "n", "in": "query", "schema": {"type": "integer", "format": "int64", "examples": [1, "two"]}}
        ],
        "responses": {"200": {"description": "ok"}}}}}});
    let report = import_value(doc).expect("import");
    let t = &report.tools[0];
    let props = &t.input_schema["properties"];
    assert_eq!(props["slug"]["pattern"], json!("^[\\w\\- ]+$"), "rewritten to the portable spelling");
    assert!(props["slug"].get("default").is_none(), "a default off its own pattern is dropped");
    assert_eq!(props["slug"]["examples"], json!(["ok-slug"]));
    assert!(props["word"].get("pattern").is_none());
    assert!(props["word"]["description"].as_str().unwrap().contains("Must match the regular expression `^\\p{L}+$`"));
    assert!(t.pattern_checks.is_empty(), "regex-lite cannot compile \\p{{L}}, so it is not kept to check");
    assert_eq!(props["when"]["format"], json!("date-time"));
    assert!(props["n"].get("format").is_none());
    assert_eq!(props["n"]["description"], json!("Format: int64."));
    assert_eq!(props["n"]["examples"], json!([1]));
    let warnings: Vec<&str> = report.problems.iter().map(|p| p.message.as_str()).collect();
    assert!(warnings.iter().any(|w| w.contains("`default` does not match its own schema")), "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("1 of 2 `examples`")), "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("does not compile in every client") && w.contains("FlowCP cannot check it either")),
        "{warnings:?}"
    );
    for (args, problem) in [
        (json!({"slug": "a b-c_d"}), None),
        (json!({"slug": "a/b"}), Some("`slug`: \"a/b\" does not match the pattern")),
        (json!({"word": "abc"}), None),
        (json!({"when": "2026-12-01T10:00:00Z"}), None),
        (json!({"when": "2026-12-01T10:00:00.123+01:00"}), None),
        (json!({"when": "yesterday"}), Some("`when`: \"yesterday\" is not a valid date-time")),
        (json!({"when": "2026-13-01T10:00:00Z"}), Some("is not a valid date-time")),
        (json!({"n": 12345678901_i64}), None),
    ] {
        let got = validate_tool_arguments(t, &args);
        match problem {
            None => assert!(got.is_empty(), "{args}: {got:?}"),
            Some(p) => assert!(got.iter().any(|g| g.contains(p)), "{args}: {got:?}"),
        }
    }
    // A moved pattern that regex-lite compiles is kept and still checked.
    let doc = json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/p": {"get": {
        "operationId": "p",
        "parameters": [{"name": "code", "in": "query", "schema": {"type": "string", "pattern": "^(?i)abc$"}}],
        "responses": {"200": {"description": "ok"}}}}}});
    let t = import_value(doc).expect("import").tools.remove(0);
    assert_eq!(t.pattern_checks.len(), 1, "inline flags are not portable");
    assert!(validate_tool_arguments(&t, &json!({"code": "ABC"})).is_empty());
    let got = validate_tool_arguments(&t, &json!({"code": "abd"}));
    assert!(got.iter().any(|g| g.contains("does not match the pattern")), "{got:?}");
}

#[test]
fn standard_formats_are_checked_the_way_json_schema_defines_them() {
    use flowcp_engine::invoke::format_ok;
    for (f, good, bad) in [
        ("date", "2026-02-28", "2026-2-28"),
        ("time", "23:59:60Z", "24:00:00Z"),
        ("email", "a.b@example.com", "a b@example.com"),
        ("hostname", "api.example.com", "-bad-.example"),
        ("ipv4", "192.168.0.1", "256.1.1.1"),
        ("ipv6", "::1", "::g"),
        ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123e4567e89b12d3a456426614174000"),
        ("uri", "https://example.com/x?y=1", "/relative"),
        ("uri-reference", "/relative", "has space"),
        ("duration", "P1DT2H", "P1H"),
        ("json-pointer", "/a~1b", "a"),
        ("relative-json-pointer", "0/a", "-1"),
    ] {
        assert!(format_ok(f, good), "{f}: {good}");
        assert!(!format_ok(f, bad), "{f}: {bad}");
    }
    assert!(format_ok("iri", "anything at all"), "formats without a check pass");
}

/// The two SDK rules above, on the result shapes that break them: what FlowCP used to send
/// (structured content off the schema) is refused by both; its fallback is accepted by both.
#[test]
fn the_sdk_client_rules_refuse_the_shapes_that_broke_strict_clients() {
    let schema = json!({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]});
    let v = strict(&schema).expect("compiles");
    let text = |t: &str| CallToolResult::text(t);
    let off_schema = CallToolResult { structured_content: Some(json!({})), ..text("{}") };
    assert!(!typescript_sdk_accepts(&off_schema, Some(&v)) && !python_sdk_accepts(&off_schema, Some(&v)));
    let text_only = text("{}");
    assert!(!typescript_sdk_accepts(&text_only, Some(&v)) && !python_sdk_accepts(&text_only, Some(&v)));
    let error_with_bad_structure = CallToolResult { structured_content: Some(json!({})), ..CallToolResult::error("x") };
    assert!(!typescript_sdk_accepts(&error_with_bad_structure, Some(&v)), "TS validates even on isError");
    assert!(python_sdk_accepts(&error_with_bad_structure, Some(&v)), "Python does not");
    let fallback = CallToolResult::error("The API answered HTTP 200, so the call may have taken effect, but ...");
    assert!(typescript_sdk_accepts(&fallback, Some(&v)) && python_sdk_accepts(&fallback, Some(&v)));
    let good = CallToolResult::structured(json!({"id": "x"}));
    assert!(typescript_sdk_accepts(&good, Some(&v)) && python_sdk_accepts(&good, Some(&v)));
}
