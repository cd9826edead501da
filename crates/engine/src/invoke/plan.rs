//! Building the upstream request from a ToolDef, the caller's arguments and a credential.

use std::fmt;

use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::encode::{cookie_enc, deep_object, enc, path_value, query_pairs, scalar_text};
use crate::tools::{BodyArgs, BodyDef, BodyKind, ParamDef, ParamLocation, ParamStyle, ToolDef};

/// Where the upstream credential goes (secret values are supplied by the caller).
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    None,
    Header { name: String, value: String },
    Query { name: String, value: String },
    Cookie { name: String, value: String },
    Bearer(String),
}

impl Credential {
    /// Whether the credential is sent in this parameter slot (location and wire name; header
    /// names compare case-insensitively).
    pub fn occupies(&self, location: ParamLocation, wire: &str) -> bool {
        match (self, location) {
            (Credential::Header { name, .. }, ParamLocation::Header) => name.eq_ignore_ascii_case(wire),
            (Credential::Bearer(_), ParamLocation::Header) => wire.eq_ignore_ascii_case("authorization"),
            (Credential::Query { name, .. }, ParamLocation::Query) => name == wire,
            (Credential::Cookie { name, .. }, ParamLocation::Cookie) => name == wire,
            // A header parameter named Cookie would ride beside the credential's cookie.
            (Credential::Cookie { .. }, ParamLocation::Header) => wire.eq_ignore_ascii_case("cookie"),
            _ => false,
        }
    }

    /// The secret value, if this credential has one.
    pub fn secret(&self) -> Option<&str> {
        match self {
            Credential::None => None,
            Credential::Header { value, .. } | Credential::Query { value, .. } | Credential::Cookie { value, .. } => {
                Some(value)
            }
            Credential::Bearer(token) => Some(token),
        }
    }
}

impl fmt::Debug for Credential {
    // Never print secret values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::None => write!(f, "None"),
            Credential::Header { name, .. } => write!(f, "Header({name}: <redacted>)"),
            Credential::Query { name, .. } => write!(f, "Query({name}=<redacted>)"),
            Credential::Cookie { name, .. } => write!(f, "Cookie({name}=<redacted>)"),
            Credential::Bearer(_) => write!(f, "Bearer(<redacted>)"),
        }
    }
}

/// Why a request could not be built. Shown to the model as a tool error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    ArgumentsNotObject,
    MissingPathParam {
        arg: String,
    },
    MissingRequired {
        arg: String,
    },
    NoBaseUrl,
    InvalidHeaderValue {
        name: String,
    },
    BodyNotEncodable {
        reason: String,
    },
    /// A body for a method that cannot carry one on the wire (GET, HEAD).
    BodyNotAllowed {
        method: String,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::ArgumentsNotObject => write!(f, "arguments must be a JSON object"),
            PlanError::MissingPathParam { arg } => {
                write!(f, "missing required path parameter `{arg}`")
            }
            PlanError::MissingRequired { arg } => write!(f, "missing required argument `{arg}`"),
            PlanError::NoBaseUrl => write!(f, "the API has no absolute server URL; set a base URL for this server"),
            PlanError::InvalidHeaderValue { name } => {
                write!(f, "header `{name}` would contain a line break or NUL")
            }
            PlanError::BodyNotEncodable { reason } => write!(f, "cannot encode the body: {reason}"),
            PlanError::BodyNotAllowed { method } => write!(
                f,
                "the operation declares a request body, but a {method} request cannot carry one; call it without body arguments"
            ),
        }
    }
}

impl std::error::Error for PlanError {}

/// The exact upstream HTTP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestPlan {
    pub method: String,
    pub url: String,
    /// In order: header parameters, credential header, `Cookie`, `Content-Type`.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub content_type: Option<String>,
}

impl RequestPlan {
    /// JSON view for logs and the CLI: the body as text when UTF-8, else base64.
    /// TODO-security: callers that log this must pass it through the redaction function.
    pub fn to_json(&self) -> Value {
        let headers: Vec<Value> = self.headers.iter().map(|(k, v)| json!([k, v])).collect();
        let mut m = Map::new();
        m.insert("method".into(), json!(self.method));
        m.insert("url".into(), json!(self.url));
        m.insert("headers".into(), Value::Array(headers));
        match &self.body {
            None => {
                m.insert("body".into(), Value::Null);
            }
            Some(b) => match std::str::from_utf8(b) {
                Ok(s) => {
                    m.insert("body".into(), json!(s));
                }
                Err(_) => {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(b);
                    m.insert("bodyBase64".into(), json!(b64));
                }
            },
        }
        Value::Object(m)
    }
}

fn check_header(name: &str, value: &str) -> Result<(), PlanError> {
    if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0')
        || name.chars().any(|c| c == '\r' || c == '\n' || c == '\0' || c == ':')
    {
        return Err(PlanError::InvalidHeaderValue { name: name.to_string() });
    }
    Ok(())
}

/// Whether an encoded `name=value` pair (query or cookie) is named `name` once decoded.
fn pair_named(pair: &str, name: &str) -> bool {
    let key = pair.split('=').next().unwrap_or("").trim();
    key == name || percent_encoding::percent_decode_str(key).decode_utf8_lossy() == name
}

/// Build the request. `base_url` overrides the document's servers.
pub fn build_request(
    tool: &ToolDef,
    args: &Value,
    credential: &Credential,
    base_url: Option<&str>,
) -> Result<RequestPlan, PlanError> {
    let empty = Map::new();
    let args = match args {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => return Err(PlanError::ArgumentsNotObject),
    };
    let req = &tool.request;
    let base = base_url
        .or_else(|| req.servers.first().map(String::as_str))
        .map(|b| b.trim_end_matches('/'))
        .filter(|b| b.starts_with("https://") || b.starts_with("http://"))
        .ok_or(PlanError::NoBaseUrl)?;

    let mut path = req.path.clone();
    let mut query: Vec<String> = Vec::new();
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut cookies: Vec<String> = Vec::new();
    for p in &req.params {
        // The credential's own slot is never filled from arguments: it would be sent beside the
        // credential (JS `Headers` merges same-named headers into "model-value, secret").
        if credential.occupies(p.location, &p.wire) {
            continue;
        }
        let value = match &p.fixed {
            Some(v) => Some(v),
            None => args.get(&p.arg).filter(|v| !v.is_null()),
        };
        let Some(value) = value else {
            if p.location == ParamLocation::Path {
                return Err(PlanError::MissingPathParam { arg: p.arg.clone() });
            }
            if p.required {
                return Err(PlanError::MissingRequired { arg: p.arg.clone() });
            }
            continue;
        };
        let json_text;
        let value = if p.json {
            json_text = Value::String(value.to_string());
            &json_text
        } else {
            value
        };
        place_param(p, value, &mut path, &mut query, &mut headers, &mut cookies)?;
    }
    // An exploded object argument can name its own query or cookie pairs: none may carry the
    // credential's name (a server that takes the first value would run as the caller's key).
    match credential {
        Credential::Query { name, .. } => query.retain(|pair| !pair_named(pair, name)),
        Credential::Cookie { name, .. } => cookies.retain(|pair| !pair_named(pair, name)),
        _ => {}
    }
    match credential {
        Credential::None => {}
        Credential::Header { name, value } => {
            check_header(name, value)?;
            headers.push((name.clone(), value.clone()));
        }
        Credential::Bearer(token) => {
            let v = format!("Bearer {token}");
            check_header("Authorization", &v)?;
            headers.push(("Authorization".into(), v));
        }
        Credential::Query { name, value } => query.push(format!("{}={}", enc(name), enc(value))),
        Credential::Cookie { name, value } => cookies.push(format!("{name}={}", cookie_enc(value))),
    }
    if !cookies.is_empty() {
        let v = cookies.join("; ");
        check_header("Cookie", &v)?;
        headers.push(("Cookie".into(), v));
    }
    let (body, content_type) = match &req.body {
        Some(def) => match body_value(def, args, &req.params)? {
            Some(v) => {
                let (bytes, ct) = encode_body(def, &v)?;
                (Some(bytes), Some(ct))
            }
            None => (None, None),
        },
        None => (None, None),
    };
    if body.is_some() && req.method.forbids_body() {
        return Err(PlanError::BodyNotAllowed { method: req.method.as_str().to_string() });
    }
    if let Some(ct) = &content_type {
        headers.push(("Content-Type".into(), ct.clone()));
    }
    let mut url = format!("{base}{path}");
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    Ok(RequestPlan { method: req.method.as_str().to_string(), url, headers, body, content_type })
}

fn place_param(
    p: &ParamDef,
    value: &Value,
    path: &mut String,
    query: &mut Vec<String>,
    headers: &mut Vec<(String, String)>,
    cookies: &mut Vec<String>,
) -> Result<(), PlanError> {
    match p.location {
        ParamLocation::Path => {
            let text = path_value(p.style, p.explode, &p.wire, value, &enc);
            // A path value that is a dot segment (`.`, `..`, or `%2e` spellings) would be
            // resolved by URL parsing and move the request to another endpoint of the API.
            if text.split('/').any(is_dot_segment) {
                return Err(PlanError::BodyNotEncodable {
                    reason: format!("path parameter `{}` may not be `.` or `..`", p.arg),
                });
            }
            *path = path.replace(&format!("{{{}}}", p.wire), &text);
        }
        ParamLocation::Query => {
            query.extend(query_pairs(p.style, p.explode, &p.wire, value, p.allow_reserved));
        }
        // A manifest made before the import refused such names still never sends one.
        ParamLocation::Header if crate::tools::names::is_forbidden_header(&p.wire) => {}
        ParamLocation::Header => {
            let text = path_value(ParamStyle::Simple, p.explode, &p.wire, value, &|s: &str| s.to_string());
            check_header(&p.wire, &text)?;
            headers.push((p.wire.clone(), text));
        }
        ParamLocation::Cookie => cookies.extend(cookie_pairs(p, value)),
    }
    Ok(())
}

/// Is this (already encoded) path segment one that URL parsing resolves (`.`/`..`)?
fn is_dot_segment(seg: &str) -> bool {
    let lower = seg.to_ascii_lowercase().replace("%2e", ".");
    lower == "." || lower == ".."
}

/// Cookie `form` style: `n=a,b` (explode false) or `n=a; n=b` / `k=v; k2=v2` (explode).
fn cookie_pairs(p: &ParamDef, value: &Value) -> Vec<String> {
    let n = &p.wire;
    match value {
        Value::Array(a) if p.explode => a.iter().map(|x| format!("{n}={}", cookie_enc(&scalar_text(x)))).collect(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(|x| cookie_enc(&scalar_text(x))).collect();
            vec![format!("{n}={}", items.join(","))]
        }
        Value::Object(m) if p.explode => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, x)| format!("{}={}", cookie_enc(k).replace('=', "%3D"), cookie_enc(&scalar_text(x))))
            .collect(),
        Value::Object(m) => {
            let items: Vec<String> = m
                .iter()
                .filter(|(_, v)| !v.is_null())
                .flat_map(|(k, x)| [cookie_enc(k), cookie_enc(&scalar_text(x))])
                .collect();
            vec![format!("{n}={}", items.join(","))]
        }
        _ => vec![format!("{n}={}", cookie_enc(&scalar_text(value)))],
    }
}

/// The body value gathered from the arguments, or `None` when no body is sent.
fn body_value(def: &BodyDef, args: &Map<String, Value>, params: &[ParamDef]) -> Result<Option<Value>, PlanError> {
    match &def.args {
        BodyArgs::Wrapped { arg } => match args.get(arg) {
            Some(v) if !v.is_null() => Ok(Some(v.clone())),
            _ if def.required => Err(PlanError::MissingRequired { arg: arg.clone() }),
            _ => Ok(None),
        },
        BodyArgs::Spread { fields, extra } => {
            let mut body = Map::new();
            for (k, v) in args {
                let claimed_by_param = params.iter().any(|p| p.fixed.is_none() && &p.arg == k);
                if fields.iter().any(|f| f == k) || (*extra && !claimed_by_param) {
                    body.insert(k.clone(), v.clone());
                }
            }
            if body.is_empty() && !def.required {
                return Ok(None);
            }
            Ok(Some(Value::Object(body)))
        }
    }
}

fn encode_body(def: &BodyDef, v: &Value) -> Result<(Vec<u8>, String), PlanError> {
    match def.kind {
        BodyKind::Json => Ok((
            serde_json::to_vec(v).map_err(|e| PlanError::BodyNotEncodable { reason: e.to_string() })?,
            def.content_type.clone(),
        )),
        BodyKind::FormUrlEncoded => {
            let Value::Object(m) = v else {
                return Err(PlanError::BodyNotEncodable { reason: "a form body must be an object".into() });
            };
            Ok((form_body(def, m).into_bytes(), def.content_type.clone()))
        }
        BodyKind::Multipart => {
            let Value::Object(m) = v else {
                return Err(PlanError::BodyNotEncodable { reason: "a multipart body must be an object".into() });
            };
            let (bytes, boundary) = multipart_body(def, m);
            Ok((bytes, format!("multipart/form-data; boundary={boundary}")))
        }
        BodyKind::Text => Ok((scalar_text(v).into_bytes(), def.content_type.clone())),
        BodyKind::Binary => Ok((file_bytes(v), def.content_type.clone())),
    }
}

fn form_body(def: &BodyDef, m: &Map<String, Value>) -> String {
    let mut out: Vec<String> = Vec::new();
    for (k, v) in m {
        let enc_def = def.encoding.iter().find(|e| &e.field == k);
        let style = enc_def.and_then(|e| e.style).unwrap_or(ParamStyle::Form);
        let explode = enc_def.and_then(|e| e.explode).unwrap_or(style == ParamStyle::Form);
        match v {
            // Nested objects: bracket notation (what form-encoded APIs such as Stripe read).
            Value::Object(_) => deep_object(k, v, 0, &mut out, false),
            Value::Array(a) if a.iter().any(|x| x.is_object() || x.is_array()) => deep_object(k, v, 0, &mut out, false),
            _ => out.extend(query_pairs(style, explode, k, v, false)),
        }
    }
    out.join("&")
}

/// `data:...;base64,` strings are decoded; anything else is sent as its UTF-8 bytes.
/// TODO-correctness: MCP clients have no standard way to pass files; revisit with resources.
fn file_bytes(v: &Value) -> Vec<u8> {
    if let Value::String(s) = v {
        if let Some(rest) = s.strip_prefix("data:") {
            if let Some((meta, data)) = rest.split_once(',') {
                if meta.ends_with(";base64") {
                    if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(data) {
                        return b;
                    }
                }
            }
        }
    }
    scalar_text(v).into_bytes()
}

fn quote(name: &str) -> String {
    name.replace(['\r', '\n'], " ").replace('"', "%22")
}

fn multipart_body(def: &BodyDef, m: &Map<String, Value>) -> (Vec<u8>, String) {
    // Deterministic boundary derived from the content (so plans are reproducible).
    let digest = Sha256::digest(Value::Object(m.clone()).to_string().as_bytes());
    let boundary = format!("flowcp-{}", &hex::encode(digest)[..24]);
    let mut out: Vec<u8> = Vec::new();
    for (k, v) in m {
        let enc_def = def.encoding.iter().find(|e| &e.field == k);
        let is_file = enc_def.map(|e| e.file).unwrap_or(false);
        let items: Vec<&Value> = match v {
            Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => a.iter().collect(),
            Value::Null => Vec::new(),
            _ => vec![v],
        };
        for item in items {
            out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            let name = quote(k);
            let (bytes, ct) = if is_file {
                let ct =
                    enc_def.and_then(|e| e.content_type.clone()).unwrap_or_else(|| "application/octet-stream".into());
                out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n").as_bytes(),
                );
                (file_bytes(item), Some(ct))
            } else {
                out.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n").as_bytes());
                match item {
                    Value::Object(_) | Value::Array(_) => {
                        (item.to_string().into_bytes(), Some("application/json".to_string()))
                    }
                    _ => (scalar_text(item).into_bytes(), enc_def.and_then(|e| e.content_type.clone())),
                }
            };
            if let Some(ct) = ct {
                out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&bytes);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (out, boundary)
}
