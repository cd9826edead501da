//! Operations -> MCP tool definitions ([`ToolDef`]) and the import report.
//!
//! Invariants:
//! - A `ToolDef` is self-contained: together with a credential and the caller's arguments it
//!   builds the upstream request (see `invoke`) without the OpenAPI document.
//! - Tool names match `[A-Za-z0-9_-]{1,64}`, are unique within one import, and depend only on
//!   the operation (and on colliding operations), never on document order.
//! - Input schemas are JSON Schema 2020-12 objects with no `$ref`/`nullable` left.
//! - One broken operation is skipped with a problem naming its JSON pointer; it never sinks
//!   the import.

mod build;
pub mod hostile;
mod import;
pub mod large;
pub mod names;

pub use hostile::hostile_documents;
pub use import::{
    import, import_value, import_within, ImportError, ImportHead, ImportReport, ImportTail, Importer,
    IMPORT_BATCH_TOOLS,
};
pub use large::large_document;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// MCP tool annotations derived from the HTTP method.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Annotations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destructive_hint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent_hint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_world_hint: Option<bool>,
}

/// Where a parameter goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamLocation {
    Path,
    Query,
    Header,
    Cookie,
}

impl ParamLocation {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamLocation::Path => "path",
            ParamLocation::Query => "query",
            ParamLocation::Header => "header",
            ParamLocation::Cookie => "cookie",
        }
    }
}

/// OpenAPI serialisation style of a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ParamStyle {
    Form,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
    Simple,
    Label,
    Matrix,
}

/// One parameter: the argument name in the tool's input schema and the wire name, location
/// and style (both names are kept, as progenitor does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamDef {
    /// Property name in `inputSchema` (sanitised, unique within the tool).
    pub arg: String,
    /// Name on the wire (as written in the document).
    pub wire: String,
    #[serde(rename = "in")]
    pub location: ParamLocation,
    pub style: ParamStyle,
    pub explode: bool,
    pub required: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_reserved: bool,
    /// `content: {application/json: ...}` parameters: the value is sent as JSON text.
    #[serde(default, skip_serializing_if = "is_false")]
    pub json: bool,
    /// A required parameter whose schema allows one value (`const`, or an `enum` of one, such
    /// as `api-version=2016-11-01`): always sent with it, never asked of the model (it is not in
    /// the input schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<Value>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// How the request body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BodyKind {
    Json,
    FormUrlEncoded,
    Multipart,
    Text,
    Binary,
}

/// Where the body's values come from in the arguments (the recorded clash rule).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "camelCase")]
pub enum BodyArgs {
    /// Object body whose properties sit next to the parameters. `fields` are the property
    /// names; `extra` says whether other unclaimed arguments also go into the body
    /// (the body schema allows additional properties).
    Spread { fields: Vec<String>, extra: bool },
    /// The whole body is the value of one argument (non-object bodies, or a name clash).
    Wrapped { arg: String },
}

/// Per-field encoding for form and multipart bodies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldEncoding {
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<ParamStyle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explode: Option<bool>,
    /// The field is a file (`format: binary`): sent as a file part in multipart.
    #[serde(default, skip_serializing_if = "is_false")]
    pub file: bool,
}

/// The request body of an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyDef {
    pub content_type: String,
    pub kind: BodyKind,
    pub required: bool,
    pub args: BodyArgs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encoding: Vec<FieldEncoding>,
}

/// An operation's HTTP method. Serialised upper-case (`"GET"`), as manifests store it.
/// `additionalOperations` (OpenAPI 3.2) may name methods beyond the fixed fields: those are
/// [`HttpMethod::Extension`], upper-cased, letters only.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum HttpMethod {
    Get,
    Put,
    Post,
    Delete,
    Options,
    Head,
    Patch,
    Trace,
    Query,
    Extension(String),
}

impl HttpMethod {
    /// The methods OpenAPI names as path item fields, in document order.
    pub const FIXED: [HttpMethod; 9] = [
        HttpMethod::Get,
        HttpMethod::Put,
        HttpMethod::Post,
        HttpMethod::Delete,
        HttpMethod::Options,
        HttpMethod::Head,
        HttpMethod::Patch,
        HttpMethod::Trace,
        HttpMethod::Query,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Put => "PUT",
            HttpMethod::Post => "POST",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Head => "HEAD",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Trace => "TRACE",
            HttpMethod::Query => "QUERY",
            HttpMethod::Extension(m) => m,
        }
    }

    /// Any case; `None` unless it is 1 to 32 ASCII letters.
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > 32 || !s.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        let up = s.to_ascii_uppercase();
        Some(Self::FIXED.into_iter().find(|m| m.as_str() == up).unwrap_or(HttpMethod::Extension(up)))
    }

    /// Methods whose requests carry no body on the wire.
    pub fn forbids_body(&self) -> bool {
        matches!(self, HttpMethod::Get | HttpMethod::Head)
    }
}

impl std::fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for HttpMethod {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        HttpMethod::parse(&s).ok_or_else(|| format!("not an HTTP method: {s:?}"))
    }
}

impl From<HttpMethod> for String {
    fn from(m: HttpMethod) -> String {
        m.as_str().to_string()
    }
}

/// Everything needed to build the HTTP request without the document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestTemplate {
    pub method: HttpMethod,
    /// Path template as written (`/pets/{petId}`), fragment removed.
    pub path: String,
    /// Base URLs (operation > path item > document), variables replaced by defaults.
    pub servers: Vec<String>,
    pub params: Vec<ParamDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyDef>,
    /// Security requirement alternatives (scheme names); empty inner list = anonymous allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security: Vec<Vec<String>>,
}

/// One MCP tool generated from one operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolDef {
    pub name: String,
    /// Stable key for curation overlays: `"GET /pets/{petId}"`.
    pub operation_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub description: String,
    pub input_schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    pub annotations: Annotations,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub deprecated: bool,
    pub request: RequestTemplate,
    /// Patterns moved out of the input schema because not every client can compile them:
    /// FlowCP still checks arguments against them. Not part of what `tools/list` shows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pattern_checks: Vec<PatternCheck>,
}

/// A `pattern` as the document wrote it, for the input schema node at `at` (a JSON pointer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatternCheck {
    pub at: String,
    pub pattern: String,
}

impl ToolDef {
    /// The tool as MCP `tools/list` shows it.
    pub fn to_mcp_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("name".into(), Value::String(self.name.clone()));
        if let Some(t) = &self.title {
            m.insert("title".into(), Value::String(t.clone()));
        }
        m.insert("description".into(), Value::String(self.description.clone()));
        m.insert("inputSchema".into(), self.input_schema.clone());
        if let Some(o) = &self.output_schema {
            m.insert("outputSchema".into(), o.clone());
        }
        m.insert("annotations".into(), serde_json::to_value(&self.annotations).unwrap_or(Value::Null));
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::HttpMethod;

    #[test]
    fn http_methods_parse_in_any_case_and_serialise_upper_case() {
        assert_eq!(HttpMethod::parse("get"), Some(HttpMethod::Get));
        assert_eq!(HttpMethod::parse("Query"), Some(HttpMethod::Query));
        assert_eq!(HttpMethod::parse("purge"), Some(HttpMethod::Extension("PURGE".into())));
        for bad in ["", "GET /", "g3t", &"A".repeat(33)] {
            assert_eq!(HttpMethod::parse(bad), None, "{bad:?}");
        }
        assert_eq!(serde_json::to_value(HttpMethod::Delete).unwrap(), "DELETE");
        assert_eq!(serde_json::from_value::<HttpMethod>("PATCH".into()).unwrap(), HttpMethod::Patch);
        assert!(serde_json::from_value::<HttpMethod>("GET /x".into()).is_err(), "a stored odd method fails closed");
        assert!(HttpMethod::Get.forbids_body() && HttpMethod::Head.forbids_body() && !HttpMethod::Post.forbids_body());
    }
}
