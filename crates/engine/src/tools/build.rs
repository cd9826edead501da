//! One operation -> one [`ToolDef`] (without its final, de-duplicated name).
//!
//! Clash rule (recorded in `BodyDef::args`): an object body's properties sit next to the
//! parameters unless a property name is not a valid argument name or equals a parameter's
//! argument name; then the whole body goes under `body` (or `request_body`, `body_2`, ... if
//! a parameter already took that name). Non-object bodies always go under that argument.

use serde_json::{json, Map, Value};

use crate::openapi::load::type_name;
use crate::openapi::portable::{make_input_portable, PortableReport};
use crate::openapi::{escape_token, servers_of, Ledger, Problem, Resolver, SchemaMode, SchemaNormaliser};

use super::names::arg_name;
use super::{
    Annotations, BodyArgs, BodyDef, BodyKind, FieldEncoding, ParamDef, ParamLocation, ParamStyle, PatternCheck,
    RequestTemplate, ToolDef,
};

/// Characters of description kept (summary + description).
pub const DESCRIPTION_BUDGET: usize = 1024;
/// Node budget for an output schema (they can be very large, e.g. GitHub's repository).
pub const OUTPUT_SCHEMA_BUDGET: usize = 200;
/// Longest parameter or body description kept (they are the model's main guide to an
/// argument, so longer than descriptions inside schemas; bounded because a shared parameter
/// or body copies it into every operation).
const SCHEMA_DESCRIPTION_CHARS: usize = 4_096;
/// Longest operation id or tag kept (longer tags are dropped, ids cut).
pub const MAX_NAME_CHARS: usize = 256;
/// Tags kept per operation.
pub const MAX_TAGS: usize = 16;
/// Parameters read per list (path item or operation); real operations have a few dozen.
pub const MAX_PARAMETERS: usize = 256;
/// Node budget for an input schema.
pub const INPUT_SCHEMA_BUDGET: usize = 5_000;

pub(crate) struct DocCtx<'a> {
    pub resolver: Resolver<'a>,
    pub servers: Vec<String>,
    pub security: Option<&'a Value>,
    /// The import's byte budget, charged by every schema normalised.
    pub ledger: &'a Ledger,
}

/// Result of building one operation: the tool and the name it would like.
pub(crate) struct Built {
    pub wanted_name: String,
    pub tool: ToolDef,
    /// What was done to make the input schema portable (counts only).
    pub portability: PortableReport,
}

struct ParamIn<'a> {
    pointer: String,
    value: &'a Value,
}

type Identity<'a> = (&'a Map<String, Value>, super::HttpMethod, Option<String>, String);

/// An operation's object, method, `operationId` and the tool name it would like; an error when
/// it cannot become a tool. [`build_tool`] builds exactly the operations this accepts.
pub(crate) fn identify<'a>(path: &str, method: &str, op: &'a Value) -> Result<Identity<'a>, String> {
    let Value::Object(opm) = op else {
        return Err(format!("an operation must be an object, found {}", type_name(op)));
    };
    let method = super::HttpMethod::parse(method).ok_or_else(|| format!("{method:?} is not an HTTP method"))?;
    // Kept in every manifest that publishes the tool: bounded like other names.
    let operation_id =
        opm.get("operationId").and_then(Value::as_str).map(|id| id.chars().take(MAX_NAME_CHARS).collect::<String>());
    let wanted_name = operation_id
        .as_deref()
        .and_then(super::names::tool_name)
        .unwrap_or_else(|| super::names::fallback_tool_name(method.as_str(), path));
    Ok((opm, method, operation_id, wanted_name))
}

pub(crate) fn build_tool<'a>(
    ctx: &DocCtx<'a>,
    path: &str,
    method: &str,
    item: &'a Map<String, Value>,
    op: &'a Value,
    pointer: &str,
    problems: &mut Vec<Problem>,
) -> Result<Built, String> {
    let (opm, method, operation_id, wanted_name) = identify(path, method, op)?;
    let operation_key = format!("{method} {path}");

    let mut properties = Map::new();
    let mut required: Vec<Value> = Vec::new();
    let raw_params = collect_params(ctx, item, opm, pointer, problems);
    let mut params = Vec::new();
    for p in raw_params {
        if let Some((def, schema)) = build_param(ctx, &p, problems) {
            if def.fixed.is_some() {
                // Sent as the document fixes it; the model never sees it.
                params.push(def);
                continue;
            }
            let arg = unique_arg(&def.arg, def.location, &properties);
            if def.required {
                required.push(Value::String(arg.clone()));
            }
            properties.insert(arg.clone(), schema);
            params.push(ParamDef { arg, ..def });
        }
    }
    let template_path = path.split('#').next().unwrap_or(path).to_string();
    add_missing_path_params(&template_path, &mut params, &mut properties, &mut required, pointer, problems);

    let body = match opm.get("requestBody") {
        Some(rb) => build_body(ctx, rb, &format!("{pointer}/requestBody"), &mut properties, &mut required, problems),
        None => None,
    };

    let mut input = Map::new();
    input.insert("type".into(), json!("object"));
    input.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        input.insert("required".into(), Value::Array(required));
    }
    let mut input = Value::Object(input);
    let portable = make_input_portable(&mut input);
    let mut portability = PortableReport::default();
    portability.add(&portable);
    for (at, message) in portable.warnings {
        problems.push(Problem::warning(
            pointer,
            format!("input schema {}: {message}", if at.is_empty() { "/" } else { &at }),
        ));
    }
    let pattern_checks = portable.unportable.into_iter().map(|(at, pattern)| PatternCheck { at, pattern }).collect();

    let output_schema = build_output(ctx, opm, pointer, problems);
    let summary = opm.get("summary").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let long = opm.get("description").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let deprecated = opm.get("deprecated") == Some(&Value::Bool(true));
    let title = summary.map(|s| truncate_chars(s.lines().next().unwrap_or(s), 120));
    let description = describe(summary, long, deprecated, &operation_key);
    let servers = {
        let op_servers = servers_of(op);
        if !op_servers.is_empty() {
            op_servers
        } else {
            let item_servers = item.get("servers").map(|s| servers_of(&json!({"servers": s}))).unwrap_or_default();
            if !item_servers.is_empty() {
                item_servers
            } else {
                ctx.servers.clone()
            }
        }
    };
    let security = security_of(opm.get("security").or(ctx.security));
    let tags = match opm.get("tags") {
        Some(Value::Array(t)) => t
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| t.chars().count() <= MAX_NAME_CHARS)
            .take(MAX_TAGS)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let tool = ToolDef {
        name: wanted_name.clone(),
        operation_key,
        operation_id,
        title: title.clone(),
        description,
        input_schema: input,
        output_schema,
        annotations: annotations(&method, title),
        tags,
        deprecated,
        request: RequestTemplate { method, path: template_path, servers, params, body, security },
        pattern_checks,
    };
    Ok(Built { wanted_name, tool, portability })
}

fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn describe(summary: Option<&str>, long: Option<&str>, deprecated: bool, key: &str) -> String {
    let mut text = String::new();
    if deprecated {
        text.push_str("[DEPRECATED] ");
    }
    match (summary, long) {
        (Some(s), Some(l)) if l.starts_with(s) => text.push_str(l),
        (Some(s), Some(l)) => {
            text.push_str(s);
            text.push_str("\n\n");
            text.push_str(l);
        }
        (Some(s), None) => text.push_str(s),
        (None, Some(l)) => text.push_str(l),
        (None, None) => text.push_str(key),
    }
    truncate_chars(&text, DESCRIPTION_BUDGET)
}

fn annotations(method: &super::HttpMethod, title: Option<String>) -> Annotations {
    use super::HttpMethod::*;
    let mut a = Annotations { title, open_world_hint: Some(true), ..Annotations::default() };
    match method {
        Get | Head | Options | Query => a.read_only_hint = Some(true),
        Delete => {
            a.read_only_hint = Some(false);
            a.destructive_hint = Some(true);
            a.idempotent_hint = Some(true);
        }
        Put => {
            a.read_only_hint = Some(false);
            a.idempotent_hint = Some(true);
        }
        Post | Patch => {
            a.read_only_hint = Some(false);
            a.destructive_hint = Some(false);
        }
        Trace | Extension(_) => a.read_only_hint = Some(false),
    }
    a
}

fn security_of(v: Option<&Value>) -> Vec<Vec<String>> {
    let Some(Value::Array(reqs)) = v else { return Vec::new() };
    reqs.iter().filter_map(Value::as_object).map(|m| m.keys().cloned().collect()).collect()
}

/// Path-level then operation-level parameters, resolved; the operation wins on (name, in).
fn collect_params<'a>(
    ctx: &DocCtx<'a>,
    item: &'a Map<String, Value>,
    op: &'a Map<String, Value>,
    pointer: &str,
    problems: &mut Vec<Problem>,
) -> Vec<ParamIn<'a>> {
    let mut out: Vec<ParamIn> = Vec::new();
    let item_pointer = pointer.rsplit_once('/').map(|(p, _)| p).unwrap_or(pointer);
    for (list, base) in [(item.get("parameters"), item_pointer), (op.get("parameters"), pointer)] {
        let list = match list {
            None => continue,
            Some(Value::Array(l)) => l,
            Some(other) => {
                problems.push(Problem::warning(
                    format!("{base}/parameters"),
                    format!("`parameters` must be a list, found {}; ignored", type_name(other)),
                ));
                continue;
            }
        };
        if list.len() > MAX_PARAMETERS {
            problems.push(Problem::warning(
                format!("{base}/parameters"),
                format!("only the first {MAX_PARAMETERS} of {} parameters are used", list.len()),
            ));
        }
        for (i, raw) in list.iter().enumerate().take(MAX_PARAMETERS) {
            let p_pointer = format!("{base}/parameters/{i}");
            let resolved = match ctx.resolver.deref_chain(raw, 8) {
                Ok((v, _)) => v,
                Err(msg) => {
                    problems.push(Problem::warning(p_pointer, format!("parameter skipped: {msg}")));
                    continue;
                }
            };
            let name = resolved.get("name").and_then(Value::as_str);
            let loc = resolved.get("in").and_then(Value::as_str);
            let (Some(name), Some(loc)) = (name, loc) else {
                problems.push(Problem::warning(p_pointer, "parameter without a string `name` and `in`; skipped"));
                continue;
            };
            out.retain(|p| {
                !(p.value.get("name").and_then(Value::as_str) == Some(name)
                    && p.value.get("in").and_then(Value::as_str) == Some(loc))
            });
            out.push(ParamIn { pointer: p_pointer, value: resolved });
        }
    }
    out
}

fn parse_location(s: &str) -> Option<ParamLocation> {
    Some(match s {
        "path" => ParamLocation::Path,
        "query" => ParamLocation::Query,
        "header" => ParamLocation::Header,
        "cookie" => ParamLocation::Cookie,
        _ => return None,
    })
}

fn parse_style(s: &str) -> Option<ParamStyle> {
    Some(match s {
        "form" => ParamStyle::Form,
        "spaceDelimited" => ParamStyle::SpaceDelimited,
        "pipeDelimited" => ParamStyle::PipeDelimited,
        "deepObject" => ParamStyle::DeepObject,
        "simple" => ParamStyle::Simple,
        "label" => ParamStyle::Label,
        "matrix" => ParamStyle::Matrix,
        _ => return None,
    })
}

fn build_param(ctx: &DocCtx, p: &ParamIn, problems: &mut Vec<Problem>) -> Option<(ParamDef, Value)> {
    let v = p.value;
    let wire = v.get("name").and_then(Value::as_str)?;
    // The name is copied into the plan and (as an argument name) into the schema.
    if !ctx.ledger.charge(2 * wire.len()) {
        return None;
    }
    let wire = wire.to_string();
    let loc_s = v.get("in").and_then(Value::as_str)?;
    let Some(location) = parse_location(loc_s) else {
        problems.push(Problem::warning(&p.pointer, format!("parameter location {loc_s:?} is not supported; skipped")));
        return None;
    };
    if location == ParamLocation::Header && super::names::is_forbidden_header(&wire) {
        let why = if ["accept", "content-type", "authorization"].contains(&wire.to_ascii_lowercase().as_str()) {
            "is set by FlowCP"
        } else {
            "is a header a request may not choose (host, framing, forwarding or method override)"
        };
        problems.push(Problem::warning(&p.pointer, format!("header parameter {wire:?} {why}; ignored")));
        return None;
    }
    let default_style = match location {
        ParamLocation::Path | ParamLocation::Header => ParamStyle::Simple,
        ParamLocation::Query | ParamLocation::Cookie => ParamStyle::Form,
    };
    let style = match v.get("style").and_then(Value::as_str) {
        None => default_style,
        Some(s) => parse_style(s).unwrap_or_else(|| {
            problems.push(Problem::warning(&p.pointer, format!("unknown style {s:?}; using the default")));
            default_style
        }),
    };
    let explode = v.get("explode").and_then(Value::as_bool).unwrap_or(style == ParamStyle::Form);
    let (any, string) = (json!({}), json!({"type": "string"}));
    let (raw_schema, json_content) = match (v.get("schema"), v.get("content").and_then(Value::as_object)) {
        (Some(s), _) => (s, false),
        (None, Some(c)) => (
            c.values().next().and_then(|m| m.get("schema")).unwrap_or(&any),
            c.keys().next().map(|k| k.contains("json")).unwrap_or(false),
        ),
        (None, None) => (&string, false),
    };
    let mut norm = SchemaNormaliser::new(ctx.resolver, SchemaMode::Input, ctx.ledger);
    let mut schema = norm.normalise_with_budget(raw_schema, INPUT_SCHEMA_BUDGET);
    for w in norm.warnings {
        problems.push(Problem::warning(format!("{}/schema", p.pointer), w));
    }
    if let Value::Object(m) = &mut schema {
        if let Some(d) = v.get("description").and_then(Value::as_str) {
            let d = truncate_chars(d, SCHEMA_DESCRIPTION_CHARS);
            if ctx.ledger.charge(d.len()) {
                m.insert("description".into(), Value::String(d));
            }
        }
        if v.get("deprecated") == Some(&Value::Bool(true)) {
            m.insert("deprecated".into(), Value::Bool(true));
        }
        if let Some(e) = v.get("example").filter(|e| ctx.ledger.charge_value(e)) {
            m.entry("examples").or_insert_with(|| Value::Array(vec![e.clone()]));
        }
    }
    let required = location == ParamLocation::Path || v.get("required") == Some(&Value::Bool(true));
    let fixed = if required { only_value(&schema) } else { None };
    let def = ParamDef {
        arg: arg_name(&wire),
        wire,
        location,
        style,
        explode,
        required,
        allow_reserved: v.get("allowReserved") == Some(&Value::Bool(true)),
        json: json_content,
        fixed,
    };
    Some((def, schema))
}

/// The one value a schema allows (`const`, or an `enum` of one), when it is a string, number or
/// boolean.
fn only_value(schema: &Value) -> Option<Value> {
    let v = match (schema.get("const"), schema.get("enum").and_then(Value::as_array)) {
        (Some(c), _) => c,
        (None, Some(e)) if e.len() == 1 => &e[0],
        _ => return None,
    };
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)).then(|| v.clone())
}

fn unique_arg(arg: &str, loc: ParamLocation, taken: &Map<String, Value>) -> String {
    if !taken.contains_key(arg) {
        return arg.to_string();
    }
    let with_loc = format!("{arg}_{}", loc.as_str());
    if !taken.contains_key(&with_loc) {
        return with_loc;
    }
    (2..).map(|n| format!("{with_loc}_{n}")).find(|c| !taken.contains_key(c)).unwrap_or(with_loc)
}

fn add_missing_path_params(
    path: &str,
    params: &mut Vec<ParamDef>,
    properties: &mut Map<String, Value>,
    required: &mut Vec<Value>,
    pointer: &str,
    problems: &mut Vec<Problem>,
) {
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let Some(after) = rest.get(start + 1..) else { break };
        let Some(end) = after.find('}') else { break };
        let name = after.get(..end).unwrap_or("");
        rest = after.get(end + 1..).unwrap_or("");
        if name.is_empty() || params.iter().any(|p| p.location == ParamLocation::Path && p.wire == name) {
            continue;
        }
        problems.push(Problem::warning(
            pointer,
            format!("path parameter {name:?} is not declared; added as a required string"),
        ));
        let arg = unique_arg(&arg_name(name), ParamLocation::Path, properties);
        properties.insert(arg.clone(), json!({"type": "string"}));
        required.push(Value::String(arg.clone()));
        params.push(ParamDef {
            arg,
            wire: name.to_string(),
            location: ParamLocation::Path,
            style: ParamStyle::Simple,
            explode: false,
            required: true,
            allow_reserved: false,
            json: false,
            fixed: None,
        });
    }
}

fn is_json_media(m: &str) -> bool {
    let m = m.split(';').next().unwrap_or(m).trim().to_ascii_lowercase();
    m == "application/json" || m.ends_with("+json") || m == "*/*" || m.ends_with("/json")
}

fn body_kind(media: &str) -> BodyKind {
    let m = media.split(';').next().unwrap_or(media).trim().to_ascii_lowercase();
    if is_json_media(&m) {
        BodyKind::Json
    } else if m == "application/x-www-form-urlencoded" {
        BodyKind::FormUrlEncoded
    } else if m.starts_with("multipart/") {
        BodyKind::Multipart
    } else if m.starts_with("text/") || m.ends_with("xml") || m.ends_with("+yaml") || m == "application/yaml" {
        BodyKind::Text
    } else {
        BodyKind::Binary
    }
}

/// Preference: JSON, form, multipart, text, anything else.
fn choose_media(content: &Map<String, Value>) -> Option<(&String, &Value)> {
    let rank = |m: &str| match body_kind(m) {
        BodyKind::Json => 0,
        BodyKind::FormUrlEncoded => 1,
        BodyKind::Multipart => 2,
        BodyKind::Text => 3,
        BodyKind::Binary => 4,
    };
    content.iter().min_by_key(|(k, _)| rank(k))
}

fn build_body(
    ctx: &DocCtx,
    rb: &Value,
    pointer: &str,
    properties: &mut Map<String, Value>,
    required: &mut Vec<Value>,
    problems: &mut Vec<Problem>,
) -> Option<BodyDef> {
    let rb = match ctx.resolver.deref_chain(rb, 8) {
        Ok((v, _)) => v,
        Err(msg) => {
            problems.push(Problem::warning(pointer, format!("request body ignored: {msg}")));
            return None;
        }
    };
    let Some(content) = rb.get("content").and_then(Value::as_object) else {
        problems.push(Problem::warning(pointer, "request body without `content`; ignored"));
        return None;
    };
    let (media, media_obj) = choose_media(content)?;
    let kind = body_kind(media);
    let content_type = if media == "*/*" { "application/json".to_string() } else { media.clone() };
    let body_required = rb.get("required") == Some(&Value::Bool(true));
    let fallback = match kind {
        BodyKind::Json => json!({}),
        _ => json!({"type": "string"}),
    };
    let raw_schema = media_obj.get("schema").unwrap_or(&fallback);
    let mut norm = SchemaNormaliser::new(ctx.resolver, SchemaMode::Input, ctx.ledger);
    let mut schema = norm.normalise_with_budget(raw_schema, INPUT_SCHEMA_BUDGET);
    let media_pointer = format!("{pointer}/content/{}/schema", escape_token(media));
    for w in norm.warnings {
        problems.push(Problem::warning(&media_pointer, w));
    }
    let encoding = field_encodings(media_obj, &schema);
    let object_props = object_properties(&schema, kind);
    let clash = object_props.and_then(|props| {
        props.keys().find(|k| properties.contains_key(*k) || !super::names::is_valid_arg_name(k)).cloned()
    });
    let spread = object_props.is_some();
    let args = match (spread, clash) {
        (true, None) => {
            // Moved out of the body schema, not copied (it can be most of an import).
            let props = match schema.as_object_mut().and_then(|m| m.remove("properties")) {
                Some(Value::Object(p)) => p,
                _ => Map::new(),
            };
            let fields: Vec<String> = props.keys().cloned().collect();
            for (k, v) in props {
                properties.insert(k, v);
            }
            if body_required {
                if let Some(Value::Array(req)) = schema.get("required") {
                    for r in req {
                        if r.as_str().map(|s| properties.contains_key(s)).unwrap_or(false) && !required.contains(r) {
                            required.push(r.clone());
                        }
                    }
                }
            }
            let extra = matches!(schema.get("additionalProperties"), Some(Value::Object(_)) | Some(Value::Bool(true)));
            BodyArgs::Spread { fields, extra }
        }
        (_, clash) => {
            if let Some(c) = clash {
                problems.push(Problem::warning(
                    pointer,
                    format!("body property {c:?} clashes with a parameter or is not a valid argument name; the body goes under one argument"),
                ));
            }
            let arg = ["body", "request_body"]
                .iter()
                .map(|s| s.to_string())
                .chain((2..).map(|n| format!("body_{n}")))
                .find(|c| !properties.contains_key(c))
                .unwrap_or_else(|| "body".into());
            if let (Some(d), Value::Object(m)) = (rb.get("description").and_then(Value::as_str), &mut schema) {
                // A shared request body's description would be copied into every operation.
                let d = truncate_chars(d, SCHEMA_DESCRIPTION_CHARS);
                if ctx.ledger.charge(d.len()) {
                    m.entry("description").or_insert_with(|| Value::String(d));
                }
            }
            properties.insert(arg.clone(), schema);
            if body_required {
                required.push(Value::String(arg.clone()));
            }
            BodyArgs::Wrapped { arg }
        }
    };
    Some(BodyDef { content_type, kind, required: body_required, args, encoding })
}

/// The properties of an object body that can be spread next to the parameters.
fn object_properties(schema: &Value, kind: BodyKind) -> Option<&Map<String, Value>> {
    if matches!(kind, BodyKind::Text | BodyKind::Binary) {
        return None;
    }
    let m = schema.as_object()?;
    let is_object = match m.get("type") {
        Some(Value::String(t)) => t == "object",
        None => m.contains_key("properties"),
        _ => false,
    };
    if !is_object || m.contains_key("oneOf") || m.contains_key("anyOf") || m.contains_key("allOf") {
        return None;
    }
    let props = m.get("properties")?.as_object()?;
    if props.is_empty() {
        return None;
    }
    Some(props)
}

fn field_encodings(media_obj: &Value, schema: &Value) -> Vec<FieldEncoding> {
    let enc = media_obj.get("encoding").and_then(Value::as_object);
    let props = schema.get("properties").and_then(Value::as_object);
    let mut out = Vec::new();
    let Some(props) = props else { return out };
    for (name, prop) in props {
        let e = enc.and_then(|e| e.get(name));
        let is_file = |s: &Value| {
            s.get("format").and_then(Value::as_str) == Some("binary")
                || s.get("contentMediaType").is_some()
                || s.get("contentEncoding").is_some()
        };
        let file = is_file(prop) || prop.get("items").map(is_file).unwrap_or(false);
        let content_type = e.and_then(|e| e.get("contentType")).and_then(Value::as_str).map(str::to_string);
        let style = e.and_then(|e| e.get("style")).and_then(Value::as_str).and_then(parse_style);
        let explode = e.and_then(|e| e.get("explode")).and_then(Value::as_bool);
        if file || content_type.is_some() || style.is_some() || explode.is_some() {
            out.push(FieldEncoding { field: name.clone(), content_type, style, explode, file });
        }
    }
    out
}

fn is_success(code: &str) -> bool {
    code.len() == 3 && code.starts_with('2')
}

fn build_output(ctx: &DocCtx, op: &Map<String, Value>, pointer: &str, problems: &mut Vec<Problem>) -> Option<Value> {
    let responses = op.get("responses")?.as_object()?;
    let (code, resp) = responses.iter().find(|(k, _)| is_success(k))?;
    let resp = ctx.resolver.deref_chain(resp, 8).ok()?.0;
    let content = resp.get("content")?.as_object()?;
    let (media, m) = content.iter().find(|(k, _)| is_json_media(k) && k.as_str() != "*/*")?;
    let raw = m.get("schema")?;
    let mut norm = SchemaNormaliser::new(ctx.resolver, SchemaMode::Output, ctx.ledger);
    let schema = norm.normalise_with_budget(raw, OUTPUT_SCHEMA_BUDGET);
    let sp = format!("{pointer}/responses/{code}/content/{}/schema", escape_token(media));
    for w in norm.warnings {
        if !w.starts_with("schema too large") {
            problems.push(Problem::warning(&sp, w));
        }
    }
    let mut obj = match schema {
        Value::Object(o) => o,
        _ => return None,
    };
    // MCP: the root is an object (`structuredContent` is one), so it is not made nullable.
    let object = match obj.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
        None => obj.contains_key("properties"),
        _ => false,
    };
    if !object {
        return None;
    }
    obj.insert("type".into(), json!("object"));
    Some(Value::Object(obj))
}
