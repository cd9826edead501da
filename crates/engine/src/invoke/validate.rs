//! A small validator for the JSON Schema subset FlowCP generates (run before any upstream
//! call). Checks: `type` (incl. type arrays and integer), `enum`, `const`, `required`,
//! `properties`, `additionalProperties`, `items`, `prefixItems`, min/max length/items,
//! numeric bounds, `allOf`/`anyOf`/`oneOf` (an alternative must match; `oneOf` is treated as
//! `anyOf`: overlapping branches are common in real documents).
//!
//! Invariants: recursion bounded by depth; at most [`MAX_PROBLEMS`] messages; messages name
//! the argument path (`body.tags[0]`). Unknown keywords (`pattern`, `format`) are not checked.
//! TODO-correctness: `pattern` needs a wasm-friendly regex; not checked yet.

use serde_json::Value;

pub const MAX_PROBLEMS: usize = 20;
const MAX_DEPTH: usize = 64;

/// Human-readable problems with `args` against `schema` (empty = valid).
pub fn validate_arguments(schema: &Value, args: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let empty = Value::Object(serde_json::Map::new());
    let args = if args.is_null() { &empty } else { args };
    check(schema, args, "", 0, &mut out);
    out.truncate(MAX_PROBLEMS);
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match (t, v) {
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().map(|f| f.fract() == 0.0).unwrap_or(false)
        }
        ("number", Value::Number(_)) => true,
        ("string", Value::String(_)) | ("boolean", Value::Bool(_)) | ("null", Value::Null) => true,
        ("array", Value::Array(_)) | ("object", Value::Object(_)) => true,
        _ => false,
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        "arguments".into()
    } else {
        format!("`{path}`")
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(59).collect::<String>())
    } else {
        s
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn check(schema: &Value, v: &Value, path: &str, depth: usize, out: &mut Vec<String>) {
    if out.len() >= MAX_PROBLEMS || depth > MAX_DEPTH {
        return;
    }
    let s = match schema {
        Value::Bool(false) => {
            out.push(format!("{}: not allowed", at(path)));
            return;
        }
        Value::Object(s) => s,
        _ => return,
    };
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(x) => vec![x.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|t| type_matches(t, v)) {
            out.push(format!("{}: expected {}, got {} {}", at(path), types.join(" or "), kind(v), short(v)));
            return;
        }
    }
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.contains(v) {
            let list: Vec<String> = options.iter().take(10).map(short).collect();
            out.push(format!("{}: {} is not one of {}", at(path), short(v), list.join(", ")));
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            out.push(format!("{}: must be {}", at(path), short(c)));
        }
    }
    check_bounds(s, v, path, out);
    match v {
        Value::Object(m) => check_object(s, m, path, depth, out),
        Value::Array(a) => check_array(s, a, path, depth, out),
        _ => {}
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        for sub in all {
            check(sub, v, path, depth + 1, out);
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = s.get(key) {
            let ok = alts.iter().any(|sub| {
                let mut tmp = Vec::new();
                check(sub, v, path, depth + 1, &mut tmp);
                tmp.is_empty()
            });
            if !ok && !alts.is_empty() {
                out.push(format!("{}: does not match any of the {} allowed shapes", at(path), alts.len()));
            }
        }
    }
}

fn check_bounds(s: &serde_json::Map<String, Value>, v: &Value, path: &str, out: &mut Vec<String>) {
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    match v {
        Value::String(text) => {
            let n = text.chars().count() as f64;
            if let Some(min) = num("minLength").filter(|m| n < *m) {
                out.push(format!("{}: shorter than {min} characters", at(path)));
            }
            if let Some(max) = num("maxLength").filter(|m| n > *m) {
                out.push(format!("{}: longer than {max} characters", at(path)));
            }
        }
        Value::Number(x) => {
            let Some(x) = x.as_f64() else { return };
            if let Some(m) = num("minimum").filter(|m| x < *m) {
                out.push(format!("{}: must be at least {m}", at(path)));
            }
            if let Some(m) = num("maximum").filter(|m| x > *m) {
                out.push(format!("{}: must be at most {m}", at(path)));
            }
            if let Some(m) = num("exclusiveMinimum").filter(|m| x <= *m) {
                out.push(format!("{}: must be greater than {m}", at(path)));
            }
            if let Some(m) = num("exclusiveMaximum").filter(|m| x >= *m) {
                out.push(format!("{}: must be less than {m}", at(path)));
            }
        }
        Value::Array(a) => {
            let n = a.len() as f64;
            if let Some(m) = num("minItems").filter(|m| n < *m) {
                out.push(format!("{}: needs at least {m} items", at(path)));
            }
            if let Some(m) = num("maxItems").filter(|m| n > *m) {
                out.push(format!("{}: allows at most {m} items", at(path)));
            }
        }
        _ => {}
    }
}

fn check_object(
    s: &serde_json::Map<String, Value>,
    m: &serde_json::Map<String, Value>,
    path: &str,
    depth: usize,
    out: &mut Vec<String>,
) {
    if let Some(Value::Array(req)) = s.get("required") {
        for r in req.iter().filter_map(Value::as_str) {
            if !m.contains_key(r) {
                out.push(format!("{}: missing required property `{r}`", at(path)));
            }
        }
    }
    let props = s.get("properties").and_then(Value::as_object);
    for (k, x) in m {
        match props.and_then(|p| p.get(k)) {
            Some(sub) => check(sub, x, &child(path, k), depth + 1, out),
            None => match s.get("additionalProperties") {
                Some(Value::Bool(false)) => out.push(format!("{}: unknown property `{k}`", at(path))),
                Some(sub @ Value::Object(_)) => check(sub, x, &child(path, k), depth + 1, out),
                _ => {}
            },
        }
    }
}

fn check_array(s: &serde_json::Map<String, Value>, a: &[Value], path: &str, depth: usize, out: &mut Vec<String>) {
    let prefix = s.get("prefixItems").and_then(Value::as_array);
    for (i, x) in a.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if let Some(sub) = prefix.and_then(|pre| pre.get(i)) {
            check(sub, x, &p, depth + 1, out);
        } else if let Some(sub) = s.get("items") {
            check(sub, x, &p, depth + 1, out);
        }
        if out.len() >= MAX_PROBLEMS {
            return;
        }
    }
}
