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
    let mut out = Out { list: Vec::new(), max: MAX_PROBLEMS, visits: MAX_VISITS };
    let empty = Value::Object(serde_json::Map::new());
    let args = if args.is_null() { &empty } else { args };
    check(schema, args, "", 0, &mut out);
    out.list.truncate(MAX_PROBLEMS);
    out.list
}

/// Problems found so far, up to `max`: a check stops walking once it has them all (an
/// `anyOf`/`oneOf` branch needs only one to be ruled out).
struct Out {
    list: Vec<String>,
    max: usize,
    /// Schema-and-value pairs still allowed to be checked (shared with `anyOf`/`oneOf`
    /// branches): past it the arguments are refused as too complex, never checked for long.
    visits: usize,
}

/// Pairs checked per validation at most: far above any real tool call (a 10,000-element
/// argument against a 10-branch `anyOf` is 100,000), and a bound on hostile ones (security
/// review S4: a 2-million-element array against 1,000 branches).
const MAX_VISITS: usize = 200_000;
const TOO_COMPLEX: &str = "arguments: too large or too deeply alternated to validate";

impl Out {
    fn push(&mut self, problem: String) {
        self.list.push(problem);
    }
    fn full(&self) -> bool {
        self.list.len() >= self.max
    }
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

/// Characters of a value quoted in a message.
const SHORT_CHARS: usize = 60;

/// A value as JSON, cut at [`SHORT_CHARS`]: rendered from the front and stopped there, so a
/// 4 MB argument costs what its first 60 characters cost (security review S4).
fn short(v: &Value) -> String {
    let mut s = String::new();
    render_prefix(v, &mut s, SHORT_CHARS + 1);
    if s.chars().count() > SHORT_CHARS {
        let mut cut: String = s.chars().take(SHORT_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        s
    }
}

/// Append a JSON string of (the start of) `text`.
fn push_string_prefix(text: &str, out: &mut String, max: usize) {
    let room = max.saturating_sub(out.len());
    let head: String = text.chars().take(room).collect();
    out.push_str(&Value::String(head).to_string());
}

/// Append `v` as JSON to `out` until `out` holds `max` characters (or a little more).
fn render_prefix(v: &Value, out: &mut String, max: usize) {
    if out.len() >= max {
        return;
    }
    match v {
        Value::String(text) => push_string_prefix(text, out, max),
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if out.len() >= max {
                    return;
                }
                if i > 0 {
                    out.push(',');
                }
                render_prefix(x, out, max);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if out.len() >= max {
                    return;
                }
                if i > 0 {
                    out.push(',');
                }
                push_string_prefix(k, out, max);
                out.push(':');
                render_prefix(x, out, max);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn child(path: &str, key: &str) -> String {
    // A path names the key; a hostile key is not copied whole into every message.
    let key: std::borrow::Cow<str> = if key.len() > SHORT_CHARS {
        format!("{}…", key.chars().take(SHORT_CHARS - 1).collect::<String>()).into()
    } else {
        key.into()
    };
    if path.is_empty() {
        key.into_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn check(schema: &Value, v: &Value, path: &str, depth: usize, out: &mut Out) {
    if out.full() || depth > MAX_DEPTH {
        return;
    }
    if out.visits == 0 {
        if !out.list.iter().any(|p| p == TOO_COMPLEX) {
            out.push(TOO_COMPLEX.to_string());
        }
        return;
    }
    out.visits -= 1;
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
                let mut tmp = Out { list: Vec::new(), max: 1, visits: out.visits };
                check(sub, v, path, depth + 1, &mut tmp);
                out.visits = tmp.visits;
                tmp.list.is_empty()
            });
            if out.visits == 0 {
                out.push(TOO_COMPLEX.to_string());
                return;
            }
            if !ok && !alts.is_empty() {
                out.push(format!("{}: does not match any of the {} allowed shapes", at(path), alts.len()));
            }
        }
    }
}

fn check_bounds(s: &serde_json::Map<String, Value>, v: &Value, path: &str, out: &mut Out) {
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    match v {
        Value::String(text) => {
            // Count only as far as a bound can need (a 4 MB string is not walked per branch).
            let bounds = [num("minLength"), num("maxLength")];
            let Some(need) = bounds.iter().flatten().map(|b| b.clamp(0.0, 1e9) as usize + 1).max() else {
                return;
            };
            let n = text.chars().take(need).count() as f64;
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
    out: &mut Out,
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
        if out.full() || out.visits == 0 {
            return;
        }
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

fn check_array(s: &serde_json::Map<String, Value>, a: &[Value], path: &str, depth: usize, out: &mut Out) {
    let prefix = s.get("prefixItems").and_then(Value::as_array);
    let items = s.get("items");
    if prefix.is_none() && items.is_none() {
        return; // nothing to check per element: no walk
    }
    for (i, x) in a.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if let Some(sub) = prefix.and_then(|pre| pre.get(i)) {
            check(sub, x, &p, depth + 1, out);
        } else if let Some(sub) = s.get("items") {
            check(sub, x, &p, depth + 1, out);
        }
        if out.full() || out.visits == 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_quoted_value_is_rendered_from_its_front_only() {
        let huge = "x".repeat(4 << 20);
        for v in [json!(huge), json!([huge, 1]), json!({"k": huge}), json!({ huge.clone(): 1 })] {
            let s = short(&v);
            assert!(s.chars().count() <= SHORT_CHARS, "{} chars", s.chars().count());
            let full = v.to_string();
            let head = s.trim_end_matches('…');
            assert!(full.starts_with(head), "{head:?} is not a prefix of the JSON");
        }
        assert_eq!(short(&json!({"a": [1, "b"]})), r#"{"a":[1,"b"]}"#);
    }

    /// Security review S4: a 4 MB argument against a 1,000-branch `anyOf` is ruled out branch
    /// by branch at each branch's first problem, with bounded messages.
    #[test]
    fn many_branches_against_a_huge_argument_stay_bounded() {
        let branches: Vec<Value> =
            (0..1_000).map(|i| json!({"type": "object", "required": [format!("k{i}")]})).collect();
        let schema = json!({"type": "object", "properties": {"v": {"anyOf": branches}}});
        let big: serde_json::Map<String, Value> = (0..40_000).map(|i| (format!("{i:0100}"), json!(i))).collect();
        let started = std::time::Instant::now();
        let problems = validate_arguments(&schema, &json!({"v": big}));
        println!("4 MB argument, 1,000 branches: {:?}", started.elapsed());
        assert_eq!(problems, vec!["`v`: does not match any of the 1000 allowed shapes".to_string()]);
        // Arrays that pass the first elements of every branch: the shared visit budget ends it.
        let branches: Vec<Value> = (0..1_000).map(|_| json!({"type": "array", "items": {"type": "integer"}})).collect();
        let schema = json!({"type": "object", "properties": {"v": {"anyOf": branches}}});
        let mut arg: Vec<Value> = vec![json!(0); 2_000_000];
        arg.push(json!("x"));
        let args = json!({ "v": arg });
        let started = std::time::Instant::now();
        let problems = validate_arguments(&schema, &args);
        println!("2M-element argument, 1,000 array branches: {:?}", started.elapsed());
        assert_eq!(problems, vec![TOO_COMPLEX.to_string()]);
        // A long string against length bounds is counted only as far as the bounds need.
        let schema = json!({"type": "object", "properties": {"s": {"anyOf": (0..1_000).map(|_| json!({"type": "string", "maxLength": 3})).collect::<Vec<_>>()}}});
        assert_eq!(validate_arguments(&schema, &json!({"s": "y".repeat(4 << 20)})).len(), 1);
        assert!(validate_arguments(&schema, &json!({"s": "abc"})).is_empty());
        let key = "k".repeat(1 << 20);
        let schema = json!({"type": "object", "additionalProperties": {"type": "integer"}});
        let problems = validate_arguments(&schema, &json!({ key: "not a number" }));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].len() < 300, "{} bytes", problems[0].len());
    }
}
