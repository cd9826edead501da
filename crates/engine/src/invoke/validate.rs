//! A small validator for the JSON Schema subset FlowCP generates (run before any upstream
//! call). Checks: `type` (incl. type arrays and integer), `enum`, `const`, `required`,
//! `properties`, `additionalProperties`, `items`, `prefixItems`, min/max length/items,
//! numeric bounds, `allOf`/`anyOf`/`oneOf` (an alternative must match; `oneOf` is treated as
//! `anyOf`: overlapping branches are common in real documents).
//!
//! Invariants: recursion bounded by depth; at most [`MAX_PROBLEMS`] messages; messages name
//! the argument path (`body.tags[0]`). `pattern` is checked with `regex-lite` (linear time;
//! ASCII classes, like ECMA-262's `\d` and `\w`), and the JSON Schema formats with small
//! hand-written checks (see [`format_ok`]); unknown formats and patterns `regex-lite` cannot
//! compile (Unicode property escapes) are not checked: the upstream still validates.

use serde_json::Value;

pub const MAX_PROBLEMS: usize = 20;
const MAX_DEPTH: usize = 64;

/// Human-readable problems with `args` against `schema` (empty = valid).
pub fn validate_arguments(schema: &Value, args: &Value) -> Vec<String> {
    let empty = Value::Object(serde_json::Map::new());
    let args = if args.is_null() { &empty } else { args };
    validate_as(schema, args, "arguments", Default::default())
}

/// [`validate_arguments`] against a tool's input schema, plus the patterns that were moved
/// out of it because not every client can compile them (checked here all the same).
pub fn validate_tool_arguments(tool: &crate::tools::ToolDef, args: &Value) -> Vec<String> {
    let empty = Value::Object(serde_json::Map::new());
    let args = if args.is_null() { &empty } else { args };
    let extra = tool
        .pattern_checks
        .iter()
        .filter_map(|c| Some((tool.input_schema.pointer(&c.at)? as *const Value, c.pattern.as_str())))
        .collect();
    validate_as(&tool.input_schema, args, "arguments", extra)
}

/// Problems with any value against a schema (a `default`, an example), from `value`.
pub fn validate_value(schema: &Value, value: &Value) -> Vec<String> {
    validate_as(schema, value, "value", Default::default())
}

/// Problems with an upstream response against a tool's output schema (empty = conforms), with
/// paths from `response`. Output schemas hold only the keywords checked here (structure and
/// `anyOf`), so this agrees with a strict client's validator.
pub fn validate_response(schema: &Value, value: &Value) -> Vec<String> {
    validate_as(schema, value, "response", Default::default())
}

fn validate_as(
    schema: &Value,
    value: &Value,
    root: &'static str,
    extra: std::collections::HashMap<*const Value, &str>,
) -> Vec<String> {
    let mut out = Out { list: Vec::new(), max: MAX_PROBLEMS, visits: MAX_VISITS, root, scan: MAX_PATTERN_SCAN, extra };
    check(schema, value, "", 0, &mut out);
    out.list.truncate(MAX_PROBLEMS);
    out.list
}

/// Problems found so far, up to `max`: a check stops walking once it has them all (an
/// `anyOf`/`oneOf` branch needs only one to be ruled out).
struct Out<'a> {
    list: Vec<String>,
    max: usize,
    /// Schema-and-value pairs still allowed to be checked (shared with `anyOf`/`oneOf`
    /// branches): past it the arguments are refused as too complex, never checked for long.
    visits: usize,
    /// What the root is called in messages (`arguments`, `response`).
    root: &'static str,
    /// Bytes of strings still allowed to be matched against patterns (shared with branches).
    scan: usize,
    /// Patterns checked at schema nodes that do not carry them (by address).
    extra: std::collections::HashMap<*const Value, &'a str>,
}

/// Bytes of argument strings matched against patterns or formats per validation at most.
/// Matching is linear in the text times the pattern's compiled size (bounded by
/// [`PATTERN_SIZE_LIMIT`]): 64 KiB against the largest pattern is about 10^8 steps.
const MAX_PATTERN_SCAN: usize = 64 * 1024;
/// Longest string any length-bounded format (dates, times, email, hostnames, addresses) can
/// be; longer ones fail without being read further.
const MAX_FORMAT_BYTES: usize = 320;
/// Compiled-size limit of a pattern checked by FlowCP (regex-lite's default is 10 MiB): real
/// patterns use a few KiB; a pattern over it is not checked (an import warning says so).
pub const PATTERN_SIZE_LIMIT: usize = 32 * 1024;

/// Pairs checked per validation at most: far above any real tool call (a 10,000-element
/// argument against a 10-branch `anyOf` is 100,000), and a bound on hostile ones (security
/// review S4: a 2-million-element array against 1,000 branches).
const MAX_VISITS: usize = 200_000;
const TOO_COMPLEX: &str = "arguments: too large or too deeply alternated to validate";

impl Out<'_> {
    /// Take `bytes` from the scan budget; past it the value is refused as too complex.
    fn charge_scan(&mut self, bytes: usize) -> bool {
        if bytes > self.scan {
            if !self.list.iter().any(|p| p == TOO_COMPLEX) {
                self.push(TOO_COMPLEX.to_string());
            }
            return false;
        }
        self.scan -= bytes;
        true
    }

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

fn at(root: &str, path: &str) -> String {
    if path.is_empty() {
        root.into()
    } else if root == "arguments" {
        format!("`{path}`")
    } else if path.starts_with('[') {
        format!("`{root}{path}`")
    } else {
        format!("`{root}.{path}`")
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
            out.push(format!("{}: not allowed", at(out.root, path)));
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
            out.push(format!("{}: expected {}, got {} {}", at(out.root, path), types.join(" or "), kind(v), short(v)));
            return;
        }
    }
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.contains(v) {
            let list: Vec<String> = options.iter().take(10).map(short).collect();
            out.push(format!("{}: {} is not one of {}", at(out.root, path), short(v), list.join(", ")));
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            out.push(format!("{}: must be {}", at(out.root, path), short(c)));
        }
    }
    let moved = match v {
        Value::String(_) if !out.extra.is_empty() => out.extra.get(&(schema as *const Value)).copied(),
        _ => None,
    };
    check_bounds(s, v, path, out, moved);
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
                let mut tmp = Out {
                    list: Vec::new(),
                    max: 1,
                    visits: out.visits,
                    root: out.root,
                    scan: out.scan,
                    extra: std::mem::take(&mut out.extra),
                };
                check(sub, v, path, depth + 1, &mut tmp);
                out.visits = tmp.visits;
                out.scan = tmp.scan;
                out.extra = tmp.extra;
                tmp.list.is_empty()
            });
            if out.visits == 0 {
                out.push(TOO_COMPLEX.to_string());
                return;
            }
            if !ok && !alts.is_empty() {
                out.push(format!("{}: does not match any of the {} allowed shapes", at(out.root, path), alts.len()));
            }
        }
    }
}

fn check_bounds(s: &serde_json::Map<String, Value>, v: &Value, path: &str, out: &mut Out, moved: Option<&str>) {
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    match v {
        Value::String(text) => {
            if let Some(Value::String(f)) = s.get("format") {
                // A format check reads the string once: charged like a pattern match.
                if !out.charge_scan(text.len()) {
                    return;
                }
                if !format_ok(f, text) {
                    out.push(format!("{}: {} is not a valid {f}", at(out.root, path), short(v)));
                }
            }
            let own = s.get("pattern").and_then(Value::as_str);

            for pattern in own.into_iter().chain(moved) {
                if !out.charge_scan(text.len()) {
                    return;
                }
                if pattern_matches(pattern, text) == Some(false) {
                    out.push(format!(
                        "{}: {} does not match the pattern {}",
                        at(out.root, path),
                        short(v),
                        short(&Value::String(pattern.into()))
                    ));
                }
            }
            // Count only as far as a bound can need (a 4 MB string is not walked per branch).
            let bounds = [num("minLength"), num("maxLength")];
            let Some(need) = bounds.iter().flatten().map(|b| b.clamp(0.0, 1e9) as usize + 1).max() else {
                return;
            };
            let n = text.chars().take(need).count() as f64;
            if let Some(min) = num("minLength").filter(|m| n < *m) {
                out.push(format!("{}: shorter than {min} characters", at(out.root, path)));
            }
            if let Some(max) = num("maxLength").filter(|m| n > *m) {
                out.push(format!("{}: longer than {max} characters", at(out.root, path)));
            }
        }
        Value::Number(x) => {
            let Some(x) = x.as_f64() else { return };
            if let Some(m) = num("minimum").filter(|m| x < *m) {
                out.push(format!("{}: must be at least {m}", at(out.root, path)));
            }
            if let Some(m) = num("maximum").filter(|m| x > *m) {
                out.push(format!("{}: must be at most {m}", at(out.root, path)));
            }
            if let Some(m) = num("exclusiveMinimum").filter(|m| x <= *m) {
                out.push(format!("{}: must be greater than {m}", at(out.root, path)));
            }
            if let Some(m) = num("exclusiveMaximum").filter(|m| x >= *m) {
                out.push(format!("{}: must be less than {m}", at(out.root, path)));
            }
        }
        Value::Array(a) => {
            let n = a.len() as f64;
            if let Some(m) = num("minItems").filter(|m| n < *m) {
                out.push(format!("{}: needs at least {m} items", at(out.root, path)));
            }
            if let Some(m) = num("maxItems").filter(|m| n > *m) {
                out.push(format!("{}: allows at most {m} items", at(out.root, path)));
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
                out.push(format!("{}: missing required property `{r}`", at(out.root, path)));
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
                Some(Value::Bool(false)) => out.push(format!("{}: unknown property `{k}`", at(out.root, path))),
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

/// Does `text` match `pattern` (anywhere, as ECMA-262's `test`)? `None` when `regex-lite`
/// cannot compile it. Compiled patterns are kept per isolate (bounded).
fn pattern_matches(pattern: &str, text: &str) -> Option<bool> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    // Each entry is at most PATTERN_SIZE_LIMIT compiled (plus its matching cache).
    const KEPT: usize = 64;
    thread_local! {
        static COMPILED: RefCell<HashMap<String, Option<regex_lite::Regex>>> = RefCell::new(HashMap::new());
    }
    COMPILED.with(|c| {
        let mut c = c.borrow_mut();
        if !c.contains_key(pattern) {
            if c.len() >= KEPT {
                c.clear();
            }
            c.insert(pattern.to_string(), compile_pattern(pattern));
        }
        c.get(pattern).and_then(|r| r.as_ref()).map(|r| r.is_match(text))
    })
}

/// A pattern as FlowCP checks it (`None`: it cannot, within the size limit).
pub fn compile_pattern(pattern: &str) -> Option<regex_lite::Regex> {
    if pattern.len() > crate::openapi::portable::MAX_PATTERN_CHARS * 4 {
        return None;
    }
    regex_lite::RegexBuilder::new(pattern).size_limit(PATTERN_SIZE_LIMIT).nest_limit(64).build().ok()
}

/// Checks for the JSON Schema formats (RFC 3339 dates and times, RFC 5321-ish email, ...);
/// formats without a check here pass.
pub fn format_ok(format: &str, s: &str) -> bool {
    let bounded = !matches!(format, "uri" | "uri-reference" | "json-pointer" | "relative-json-pointer");
    if bounded && s.len() > MAX_FORMAT_BYTES {
        return false;
    }
    if matches!(format, "date-time" | "date" | "time" | "duration" | "uuid" | "ipv4" | "ipv6" | "hostname")
        && !s.is_ascii()
    {
        return false;
    }
    let digits = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_digit());
    let num = |t: &str| t.parse::<u32>().unwrap_or(u32::MAX);
    let date = |t: &str| {
        let p: Vec<&str> = t.split('-').collect();
        p.len() == 3
            && digits(p[0], 4)
            && digits(p[1], 2)
            && digits(p[2], 2)
            && (1..=12).contains(&num(p[1]))
            && (1..=31).contains(&num(p[2]))
    };
    let time = |t: &str| {
        let t = t.to_ascii_uppercase();
        let (clock, zone_ok) = if let Some(c) = t.strip_suffix('Z') {
            (c.to_string(), true)
        } else if let Some(i) = t.rfind(['+', '-']) {
            let z = &t[i + 1..];
            let ok = z.len() == 5 && digits(&z[..2], 2) && &z[2..3] == ":" && digits(&z[3..], 2);
            (t[..i].to_string(), ok)
        } else {
            return false;
        };
        let (hms, frac) = clock.split_once('.').unwrap_or((&clock, "0"));
        let p: Vec<&str> = hms.split(':').collect();
        zone_ok
            && p.len() == 3
            && p.iter().all(|x| digits(x, 2))
            && num(p[0]) < 24
            && num(p[1]) < 60
            && num(p[2]) <= 60
            && !frac.is_empty()
            && frac.bytes().all(|b| b.is_ascii_digit())
    };
    let hostname = |h: &str| {
        let h = h.strip_suffix('.').unwrap_or(h);
        !h.is_empty()
            && h.len() <= 253
            && h.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    let no_space = |t: &str| !t.chars().any(|c| c.is_whitespace() || c.is_control());
    match format {
        "date-time" => {
            s.len() > 11 && matches!(s.as_bytes()[10], b'T' | b't' | b' ') && date(&s[..10]) && time(&s[11..])
        }
        "date" => date(s),
        "time" => time(s),
        "email" => match s.rsplit_once('@') {
            Some((local, domain)) => !local.is_empty() && no_space(s) && hostname(domain) && domain.contains('.'),
            None => false,
        },
        "hostname" => hostname(s),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "uuid" => {
            let p: Vec<&str> = s.split('-').collect();
            p.len() == 5
                && [8, 4, 4, 4, 12]
                    .iter()
                    .zip(&p)
                    .all(|(n, x)| x.len() == *n && x.bytes().all(|b| b.is_ascii_hexdigit()))
        }
        "uri" => {
            let scheme = s.split(':').next().unwrap_or("");
            s.contains(':')
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && no_space(s)
        }
        "uri-reference" => no_space(s),
        "duration" => {
            let Some(rest) = s.strip_prefix('P') else { return false };
            let (d, t) = rest.split_once('T').unwrap_or((rest, ""));
            let units = |part: &str, allowed: &str| {
                let mut n = false;
                let mut seen = 0usize;
                for c in part.chars() {
                    if c.is_ascii_digit() || (n && c == '.') {
                        n = true;
                    } else if let Some(pos) = allowed.find(c).filter(|_| n) {
                        if pos < seen {
                            return None;
                        }
                        seen = pos + 1;
                        n = false;
                    } else {
                        return None;
                    }
                }
                if n {
                    None
                } else {
                    Some(seen > 0)
                }
            };
            match (units(d, "YMWD"), units(t, "HMS")) {
                (Some(a), Some(b)) => b || (a && !rest.contains('T')),
                _ => false,
            }
        }
        "json-pointer" => s.is_empty() || (s.starts_with('/') && json_pointer_escapes_ok(s)),
        "relative-json-pointer" => {
            let n = s.bytes().take_while(u8::is_ascii_digit).count();
            let rest = &s[n..];
            n > 0
                && (n == 1 || !s.starts_with('0'))
                && (rest.is_empty() || rest == "#" || (rest.starts_with('/') && json_pointer_escapes_ok(rest)))
        }
        _ => true,
    }
}

fn json_pointer_escapes_ok(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().all(|(i, c)| *c != b'~' || matches!(b.get(i + 1), Some(b'0' | b'1')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Attacker review of issue 12: non-ASCII where a zone offset is sliced must not panic,
    /// and long strings cost a bounded budget against patterns and formats.
    #[test]
    fn formats_and_patterns_are_safe_and_bounded_on_hostile_strings() {
        for s in ["2024-01-01T12:00:00+1é00", "2024-01-01T12:00:00+12é0", "é", "2024-01-01Té", ""] {
            assert!(!format_ok("date-time", s), "{s}");
        }
        for s in ["12:00:00+1é00", "12:00:00+12é0", "1é:00:00Z"] {
            assert!(!format_ok("time", s), "{s}");
        }
        assert!(!format_ok("email", &format!("{}@example.com", "a".repeat(400))), "longer than any address");
        let schema =
            json!({"type": "object", "properties": {"s": {"type": "string", "pattern": "^a+$", "format": "uri"}}});
        assert!(validate_arguments(&schema, &json!({"s": "a"})).iter().any(|p| p.contains("not a valid uri")));
        let problems = validate_arguments(&schema, &json!({"s": "a".repeat(MAX_PATTERN_SCAN + 1)}));
        assert_eq!(problems, vec![TOO_COMPLEX.to_string()]);
        let many: Vec<Value> = (0..1_000).map(|_| json!({"type": "string", "pattern": "^b"})).collect();
        let schema = json!({"type": "object", "properties": {"s": {"anyOf": many}}});
        let started = std::time::Instant::now();
        let problems = validate_arguments(&schema, &json!({"s": "a".repeat(4_000)}));
        println!("4 KB string against 1,000 patterned branches: {:?}", started.elapsed());
        assert_eq!(problems.len(), 1, "{problems:?}");
        // A pattern whose compiled size is over the limit is not checked (never compiled big).
        assert!(compile_pattern("(?:a{1000}){800}").is_none());
        assert!(compile_pattern("^[a-z0-9._-]+$").is_some());
    }

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
