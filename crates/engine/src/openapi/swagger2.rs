//! Swagger 2.0 -> OpenAPI 3.0 shape (DESIGN §4).
//!
//! host/basePath/schemes -> servers; definitions/parameters/responses -> components;
//! `in: body` -> requestBody per `consumes`; `formData` -> urlencoded or multipart object
//! schema; `type: file` -> binary (in the schema normaliser); collectionFormat ->
//! style/explode; securityDefinitions -> securitySchemes; `x-nullable` is honoured by the
//! normaliser. Every `$ref` is rewritten to its 3.0 location, in root `x-` fields too (a
//! bundled document keeps other files' nodes under `x-flowcp-bundled`, see `bundle`). A
//! `$ref` to a parameter, response or path item outside the sections converted here (such a
//! bundled node) is followed and the node converted in place, as it is still in 2.0 shape.
//!
//! Invariant: reads the 2.0 document only through `get`/`as_*`; a malformed node is skipped
//! with a problem, never a panic. Walks are bounded by [`MAX_WALK_DEPTH`].

use serde_json::{json, Map, Value};

use super::ledger::Ledger;
use super::pointer::{escape_token, Resolver};
use super::{LoadError, Problem};

const MAX_WALK_DEPTH: usize = 256;
const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

/// Rewrite a 2.0 `$ref` string to the 3.0 location of the same thing.
fn rewrite_ref(r: &str) -> String {
    for (from, to) in [
        ("#/definitions/", "#/components/schemas/"),
        ("#/parameters/", "#/components/parameters/"),
        ("#/responses/", "#/components/responses/"),
    ] {
        if let Some(rest) = r.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    r.to_string()
}

/// The node a parameter or response `$ref` names when it is not in `section` (`#/parameters/`,
/// `#/responses/`, which are converted and keep their refs) and can be followed: a bundled
/// file's node, still in 2.0 shape, is then converted where it is used. `None` otherwise.
fn outside_section<'a>(v: &'a Value, section: &str, resolver: &Resolver<'a>) -> Option<&'a Value> {
    let r = v.get("$ref")?.as_str()?;
    if r.starts_with(section) {
        return None;
    }
    resolver.deref_chain(v, 8).ok().map(|(target, _)| target)
}

/// Deep copy with every `$ref` rewritten.
fn rewrite_refs(v: &Value, depth: usize) -> Value {
    if depth > MAX_WALK_DEPTH {
        return Value::Null;
    }
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("$ref", Value::String(s)) => (k.clone(), Value::String(rewrite_ref(s))),
                    _ => (k.clone(), rewrite_refs(v, depth + 1)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| rewrite_refs(x, depth + 1)).collect()),
        other => other.clone(),
    }
}

/// Media types kept from a `consumes`/`produces` list: a body or response schema is copied
/// once per media type, so the list is de-duplicated and bounded.
const MAX_MEDIA_TYPES: usize = 8;

fn str_list(v: Option<&Value>) -> Option<Vec<String>> {
    match v {
        Some(Value::Array(a)) => {
            let mut out: Vec<String> = Vec::new();
            for s in a.iter().filter_map(Value::as_str).filter(|s| s.len() <= 256) {
                if out.len() == MAX_MEDIA_TYPES {
                    break;
                }
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_string());
                }
            }
            Some(out)
        }
        _ => None,
    }
}

/// Upgrade a Swagger 2.0 document (already known to be an object) to 3.0 shape.
///
/// Parameters and bodies shared through `$ref` are copied into each operation that uses
/// them, so the upgrade is charged to a [`Ledger`] and ends with
/// [`LoadError::OutputTooLarge`] when it would grow past the import output limit.
pub fn upgrade(doc: &Value, problems: &mut Vec<Problem>, ledger: &Ledger) -> Result<Value, LoadError> {
    let resolver = Resolver::new(doc);
    let mut out = Map::new();
    out.insert("openapi".into(), json!("3.0.3"));
    out.insert("info".into(), doc.get("info").cloned().unwrap_or_else(|| json!({})));
    out.insert("servers".into(), Value::Array(servers(doc)));
    let consumes = str_list(doc.get("consumes")).unwrap_or_default();
    let produces = str_list(doc.get("produces")).unwrap_or_default();
    let ctx = Ctx { resolver, consumes: &consumes, produces: &produces, ledger };

    let mut components = Map::new();
    if let Some(defs) = doc.get("definitions").filter(|d| d.is_object()) {
        components.insert("schemas".into(), rewrite_refs(defs, 0));
    }
    if let Some(Value::Object(params)) = doc.get("parameters") {
        let mut converted = Map::new();
        for (name, p) in params {
            let p = outside_section(p, "#/parameters/", &resolver).unwrap_or(p);
            if matches!(p.get("in").and_then(Value::as_str), Some("body" | "formData")) {
                continue; // inlined where used
            }
            // Charged one by one: many names may follow `$ref`s to one large node.
            let param = convert_param(p, &resolver);
            if !ledger.charge_value(&param) {
                return Err(ledger.too_large());
            }
            converted.insert(name.clone(), param);
        }
        components.insert("parameters".into(), Value::Object(converted));
    }
    if let Some(Value::Object(responses)) = doc.get("responses") {
        let mut converted = Map::new();
        for (name, r) in responses {
            let response = convert_response(r, &produces, &resolver);
            if !ledger.charge_value(&response) {
                return Err(ledger.too_large());
            }
            converted.insert(name.clone(), response);
        }
        components.insert("responses".into(), Value::Object(converted));
    }
    if let Some(Value::Object(defs)) = doc.get("securityDefinitions") {
        let converted = defs.iter().map(|(k, s)| (k.clone(), convert_security_scheme(s))).collect();
        components.insert("securitySchemes".into(), Value::Object(converted));
    }
    out.insert("components".into(), Value::Object(components));

    if let Some(Value::Object(paths)) = doc.get("paths") {
        let mut new_paths = Map::new();
        for (path, item) in paths {
            let pointer = format!("/paths/{}", escape_token(path));
            new_paths.insert(path.clone(), convert_path_item(item, &ctx, &pointer, problems));
            if ledger.is_over() {
                return Err(ledger.too_large());
            }
        }
        out.insert("paths".into(), Value::Object(new_paths));
    }
    for key in ["security", "tags", "externalDocs"] {
        if let Some(v) = doc.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    for (k, v) in doc.as_object().into_iter().flatten() {
        if k.starts_with("x-") {
            out.insert(k.clone(), rewrite_refs(v, 0));
        }
    }
    Ok(Value::Object(out))
}

struct Ctx<'a> {
    resolver: Resolver<'a>,
    consumes: &'a [String],
    produces: &'a [String],
    ledger: &'a Ledger,
}

fn servers(doc: &Value) -> Vec<Value> {
    let base = doc.get("basePath").and_then(Value::as_str).unwrap_or("");
    let base = base.trim_end_matches('/');
    if base.len() > 2_048 {
        return Vec::new();
    }
    match doc.get("host").and_then(Value::as_str).filter(|h| h.len() <= 2_048) {
        Some(host) => {
            // At most the media-type cap of schemes (de-duplicated): each makes a server URL
            // with the whole host, copied into every tool.
            let schemes =
                str_list(doc.get("schemes")).filter(|s| !s.is_empty()).unwrap_or_else(|| vec!["https".into()]);
            // Prefer https first when offered.
            let mut schemes = schemes;
            schemes.sort_by_key(|s| if s == "https" { 0 } else { 1 });
            schemes.iter().map(|s| json!({"url": format!("{s}://{host}{base}")})).collect()
        }
        None if !base.is_empty() => vec![json!({"url": base})],
        None => Vec::new(),
    }
}

const SCHEMA_KEYS: &[&str] = &[
    "type",
    "format",
    "items",
    "enum",
    "default",
    "maximum",
    "minimum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "x-nullable",
];

/// The schema a 2.0 non-body parameter describes inline.
fn param_schema(p: &Value) -> Value {
    let mut schema = Map::new();
    for k in SCHEMA_KEYS {
        if let Some(v) = p.get(*k) {
            let v = if *k == "items" { rewrite_refs(v, 0) } else { v.clone() };
            schema.insert((*k).to_string(), v);
        }
    }
    Value::Object(schema)
}

fn convert_param<'a>(p: &'a Value, resolver: &Resolver<'a>) -> Value {
    let p = outside_section(p, "#/parameters/", resolver).unwrap_or(p);
    if let Some(r) = p.get("$ref").and_then(Value::as_str) {
        return json!({"$ref": rewrite_ref(r)});
    }
    let mut out = Map::new();
    for k in ["name", "in", "description", "required", "deprecated", "allowEmptyValue"] {
        if let Some(v) = p.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    out.insert("schema".into(), param_schema(p));
    let location = p.get("in").and_then(Value::as_str).unwrap_or("");
    let is_array = p.get("type").and_then(Value::as_str) == Some("array");
    if is_array {
        let (style, explode) = match p.get("collectionFormat").and_then(Value::as_str) {
            Some("multi") => ("form", true),
            Some("ssv") => ("spaceDelimited", false),
            Some("pipes") => ("pipeDelimited", false),
            // csv (the 2.0 default) and tsv (no 3.0 equivalent) -> comma separated.
            _ if location == "query" || location == "cookie" => ("form", false),
            _ => ("simple", false),
        };
        out.insert("style".into(), json!(style));
        out.insert("explode".into(), json!(explode));
    }
    Value::Object(out)
}

fn content_for(types: &[String], default: &str, schema: Value) -> Value {
    let mut content = Map::new();
    if types.is_empty() {
        content.insert(default.into(), json!({"schema": schema}));
    } else {
        for t in types {
            content.insert(t.clone(), json!({"schema": schema.clone()}));
        }
    }
    Value::Object(content)
}

fn convert_response<'a>(r: &'a Value, produces: &[String], resolver: &Resolver<'a>) -> Value {
    let r = outside_section(r, "#/responses/", resolver).unwrap_or(r);
    if let Some(reference) = r.get("$ref").and_then(Value::as_str) {
        return json!({"$ref": rewrite_ref(reference)});
    }
    let mut out = Map::new();
    let desc = r.get("description").cloned().unwrap_or_else(|| json!(""));
    out.insert("description".into(), desc);
    if let Some(schema) = r.get("schema") {
        out.insert("content".into(), content_for(produces, "application/json", rewrite_refs(schema, 0)));
    }
    if let Some(Value::Object(headers)) = r.get("headers") {
        let h = headers.iter().map(|(k, v)| (k.clone(), json!({"schema": param_schema(v)}))).collect();
        out.insert("headers".into(), Value::Object(h));
    }
    Value::Object(out)
}

fn convert_security_scheme(s: &Value) -> Value {
    let t = s.get("type").and_then(Value::as_str).unwrap_or("");
    let desc = s.get("description").cloned();
    let mut out = match t {
        "basic" => json!({"type": "http", "scheme": "basic"}),
        "apiKey" => json!({"type": "apiKey", "name": s.get("name"), "in": s.get("in")}),
        "oauth2" => {
            let scopes = s.get("scopes").cloned().unwrap_or_else(|| json!({}));
            let auth = s.get("authorizationUrl").cloned();
            let token = s.get("tokenUrl").cloned();
            let (name, flow) = match s.get("flow").and_then(Value::as_str) {
                Some("implicit") => ("implicit", json!({"authorizationUrl": auth, "scopes": scopes})),
                Some("password") => ("password", json!({"tokenUrl": token, "scopes": scopes})),
                Some("application") => ("clientCredentials", json!({"tokenUrl": token, "scopes": scopes})),
                _ => ("authorizationCode", json!({"authorizationUrl": auth, "tokenUrl": token, "scopes": scopes})),
            };
            let mut flows = Map::new();
            flows.insert(name.into(), flow);
            json!({"type": "oauth2", "flows": flows})
        }
        other => json!({"type": other}),
    };
    if let (Some(d), Value::Object(m)) = (desc, &mut out) {
        m.insert("description".into(), d);
    }
    out
}

fn convert_path_item<'a>(item: &'a Value, ctx: &Ctx<'a>, pointer: &str, problems: &mut Vec<Problem>) -> Value {
    let Value::Object(map) = item else {
        problems.push(Problem::error(pointer, "a path item must be an object; skipped"));
        return json!({});
    };
    // A `$ref` that can be followed (a bundled file's path item) is converted in place; the
    // fields next to it win (2.0 leaves conflicts undefined).
    let entries: Vec<(&'a String, &'a Value)> = match ctx.resolver.deref_chain(item, 8) {
        Ok((Value::Object(target), Some(_))) => target
            .iter()
            .filter(|(k, _)| !map.contains_key(k.as_str()))
            .chain(map.iter().filter(|(k, _)| k.as_str() != "$ref"))
            .collect(),
        _ => map.iter().collect(),
    };
    let mut out = Map::new();
    let shared: Vec<&Value> = match entries.iter().find(|(k, _)| k.as_str() == "parameters") {
        Some((_, Value::Array(ps))) => ps.iter().collect(),
        _ => Vec::new(),
    };
    for (k, v) in entries {
        if METHODS.contains(&k.as_str()) {
            let op_pointer = format!("{pointer}/{k}");
            let before = ctx.ledger.used();
            let op = convert_operation(v, &shared, ctx, &op_pointer, problems);
            ctx.ledger.charge_value(&op);
            ctx.ledger.note_part(&op_pointer, before);
            if ctx.ledger.is_over() {
                return json!({});
            }
            out.insert(k.clone(), op);
        } else if k == "parameters" {
            // Path-level parameters were folded into each operation.
        } else if k == "$ref" {
            if let Value::String(r) = v {
                out.insert(k.clone(), Value::String(rewrite_ref(r)));
            }
        } else {
            out.insert(k.clone(), rewrite_refs(v, 0));
        }
    }
    Value::Object(out)
}

fn convert_operation<'a>(
    op: &'a Value,
    shared: &[&'a Value],
    ctx: &Ctx<'a>,
    pointer: &str,
    problems: &mut Vec<Problem>,
) -> Value {
    let Value::Object(map) = op else {
        return op.clone(); // the tool builder reports it
    };
    let consumes = str_list(map.get("consumes")).unwrap_or_else(|| ctx.consumes.to_vec());
    let produces = str_list(map.get("produces")).unwrap_or_else(|| ctx.produces.to_vec());
    let mut out = Map::new();
    for (k, v) in map {
        match k.as_str() {
            "parameters" | "consumes" | "produces" | "responses" | "schemes" => {}
            _ => {
                out.insert(k.clone(), rewrite_refs(v, 0));
            }
        }
    }
    // Operation parameters override path-level ones with the same (name, in).
    let own: Vec<&Value> = match map.get("parameters") {
        Some(Value::Array(ps)) => ps.iter().collect(),
        Some(_) => {
            problems.push(Problem::warning(format!("{pointer}/parameters"), "`parameters` must be a list; ignored"));
            Vec::new()
        }
        None => Vec::new(),
    };
    let mut params = Vec::new();
    let mut form = FormBody::default();
    let mut body: Option<Value> = None;
    let all = shared.iter().chain(own.iter());
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut resolved_all: Vec<(&Value, &Value)> = Vec::new();
    for &raw in all {
        let resolved = ctx.resolver.deref_chain(raw, 8).map(|(v, _)| v).unwrap_or(raw);
        let key = (
            resolved.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
            resolved.get("in").and_then(Value::as_str).unwrap_or("").to_string(),
        );
        if let Some(i) = seen.iter().position(|k| *k == key) {
            resolved_all.remove(i);
            seen.remove(i);
        }
        seen.push(key);
        resolved_all.push((raw, resolved));
    }
    for (raw, p) in resolved_all {
        match p.get("in").and_then(Value::as_str) {
            Some("body") => {
                let schema = p.get("schema").map(|s| rewrite_refs(s, 0)).unwrap_or_else(|| json!({}));
                let mut rb = Map::new();
                if let Some(d) = p.get("description") {
                    rb.insert("description".into(), d.clone());
                }
                rb.insert("required".into(), json!(p.get("required") == Some(&Value::Bool(true))));
                let json_types: Vec<String> = consumes.clone();
                rb.insert("content".into(), content_for(&json_types, "application/json", schema));
                body = Some(Value::Object(rb));
            }
            Some("formData") => form.add(p),
            _ => params.push(convert_param(raw, &ctx.resolver)),
        }
    }
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    if let Some(b) = body.or_else(|| form.into_request_body(&consumes)) {
        out.insert("requestBody".into(), b);
    }
    if let Some(Value::Object(responses)) = map.get("responses") {
        let r = responses.iter().map(|(k, r)| (k.clone(), convert_response(r, &produces, &ctx.resolver))).collect();
        out.insert("responses".into(), Value::Object(r));
    }
    Value::Object(out)
}

#[derive(Default)]
struct FormBody {
    properties: Map<String, Value>,
    required: Vec<Value>,
    has_file: bool,
}

impl FormBody {
    fn add(&mut self, p: &Value) {
        let Some(name) = p.get("name").and_then(Value::as_str) else { return };
        let mut schema = param_schema(p);
        if let (Some(d), Value::Object(m)) = (p.get("description"), &mut schema) {
            m.insert("description".into(), d.clone());
        }
        if p.get("type").and_then(Value::as_str) == Some("file") {
            self.has_file = true;
        }
        self.properties.insert(name.to_string(), schema);
        if p.get("required") == Some(&Value::Bool(true)) {
            self.required.push(json!(name));
        }
    }

    fn into_request_body(self, consumes: &[String]) -> Option<Value> {
        if self.properties.is_empty() {
            return None;
        }
        let multipart = self.has_file || consumes.iter().any(|c| c.starts_with("multipart/"));
        let media = if multipart { "multipart/form-data" } else { "application/x-www-form-urlencoded" };
        let required = !self.required.is_empty();
        let mut schema = json!({"type": "object", "properties": self.properties});
        if required {
            schema["required"] = Value::Array(self.required);
        }
        Some(json!({"required": required, "content": {media: {"schema": schema}}}))
    }
}
