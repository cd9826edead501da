//! Reading bytes into a document `Value`: size cap, JSON or YAML detection, YAML budgets,
//! version detection and the Swagger 2.0 upgrade.
//!
//! Invariants: input larger than [`MAX_DOCUMENT_BYTES`] is refused before parsing; JSON
//! nesting is bounded by serde_json's recursion limit (128) and YAML by the saphyr budget
//! (depth, nodes, aliases), so an alias bomb or a 10k-deep document is an error, not a
//! stack overflow. Syntax errors carry line and column when the parser knows them.

use std::fmt;

use serde_json::Value;

use super::{swagger2, Problem};

/// Largest document accepted (bytes, uncompressed).
pub const MAX_DOCUMENT_BYTES: usize = 20 * 1024 * 1024;

/// Deepest YAML nesting accepted (JSON is bounded at 128 by serde_json). The YAML
/// deserialiser needs ~5 KB of stack per level in release builds (~25 KB in debug), and the
/// Worker has a 1 MB stack, so this stays at saphyr's own default. Real documents are far
/// shallower (GitHub: 22).
pub const MAX_YAML_DEPTH: usize = 64;

/// The version family of the document as uploaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SpecVersion {
    #[serde(rename = "2.0")]
    Swagger2,
    #[serde(rename = "3.0")]
    OpenApi30,
    #[serde(rename = "3.1")]
    OpenApi31,
    #[serde(rename = "3.2")]
    OpenApi32,
}

/// Why a document could not be read at all. Per-operation trouble is a [`Problem`] instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    Empty,
    TooLarge {
        size: usize,
        limit: usize,
    },
    NotUtf8 {
        offset: usize,
    },
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    Yaml {
        line: Option<u64>,
        column: Option<u64>,
        message: String,
    },
    NotAnObject {
        found: &'static str,
    },
    MissingVersion,
    UnsupportedVersion {
        found: String,
    },
    WrongType {
        pointer: String,
        expected: &'static str,
        found: &'static str,
    },
    /// The document holds more than `limit` values (parsed, each takes about 80 bytes).
    TooManyValues {
        limit: usize,
    },
    /// Reading the document in parts would parse more than `limit` bytes: large parts reached
    /// again by every batch of operations ([`super::lazy`]).
    TooMuchParsing {
        limit: usize,
    },
    /// Generating the tools would produce more than `limit` bytes ([`super::Ledger`]);
    /// `largest` names the operations (JSON pointers) that took the most, with their bytes.
    OutputTooLarge {
        limit: usize,
        largest: Vec<(String, usize)>,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Empty => write!(f, "the document is empty"),
            LoadError::TooLarge { size, limit } => {
                write!(f, "the document is {size} bytes; the limit is {limit} bytes")
            }
            LoadError::NotUtf8 { offset } => {
                write!(f, "the document is not UTF-8 text (invalid byte at offset {offset})")
            }
            LoadError::Json { line, column, message } => {
                write!(f, "JSON syntax error at line {line}, column {column}: {message}")
            }
            LoadError::Yaml { line: Some(l), column: Some(c), message } => {
                write!(f, "YAML error at line {l}, column {c}: {message}")
            }
            LoadError::Yaml { message, .. } => write!(f, "YAML error: {message}"),
            LoadError::NotAnObject { found } => {
                write!(f, "the document root must be an object, found {found}")
            }
            LoadError::MissingVersion => {
                write!(f, "not an OpenAPI or Swagger document: no `openapi` or `swagger` version field")
            }
            LoadError::UnsupportedVersion { found } => {
                write!(f, "unsupported version {found:?}: expected Swagger 2.0 or OpenAPI 3.0, 3.1 or 3.2")
            }
            LoadError::WrongType { pointer, expected, found } => {
                write!(f, "`{pointer}` must be {expected}, found {found}")
            }
            LoadError::TooManyValues { limit } => write!(
                f,
                "the document holds more than {limit} values (objects, lists, strings, numbers); the largest real APIs hold under 300,000"
            ),
            LoadError::TooMuchParsing { limit } => write!(
                f,
                "reading this document would parse more than {} MB of it: large shared parts are reached from operations all over the document",
                limit >> 20
            ),
            LoadError::OutputTooLarge { limit, largest } => {
                write!(f, "the tools generated from this document would exceed {} MB", limit >> 20)?;
                if !largest.is_empty() {
                    let parts: Vec<String> =
                        largest.iter().map(|(p, n)| format!("`{p}` ({} KB or more)", n.div_ceil(1024))).collect();
                    write!(f, "; the largest parts: {}", parts.join(", "))?;
                }
                write!(f, ". Shared schemas with very large `enum`, `default` or `examples` values are copied into every operation that uses them")
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// A document ready for tool generation: always in OpenAPI 3.x shape.
#[derive(Debug, Clone)]
pub struct LoadedDocument {
    pub doc: Value,
    pub spec_version: SpecVersion,
    /// The version string as written (`"2.0"`, `"3.0.3"`, ...).
    pub version_string: String,
    /// Problems found while upgrading or checking the top level.
    pub problems: Vec<Problem>,
}

/// Short JSON type name for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Parse bytes (JSON or YAML) into a `Value` without interpreting it.
pub fn parse_bytes(bytes: &[u8]) -> Result<Value, LoadError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(LoadError::TooLarge { size: bytes.len(), limit: MAX_DOCUMENT_BYTES });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| LoadError::NotUtf8 { offset: e.valid_up_to() })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(LoadError::Empty);
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        if json_values_at_least(text.as_bytes(), MAX_DOCUMENT_VALUES + 1) {
            return Err(LoadError::TooManyValues { limit: MAX_DOCUMENT_VALUES });
        }
        return serde_json::from_str(text).map_err(|e| LoadError::Json {
            line: e.line(),
            column: e.column(),
            message: strip_json_position(&e.to_string()),
        });
    }
    parse_yaml(text)
}

/// Values a document may hold. Parsed, a value takes about 80 bytes besides its text, so a
/// 20 MB document of `[0,0,...]` would take 800 MB; the largest real documents hold 258,000
/// (GitHub) and 143,000 (Stripe).
pub const MAX_DOCUMENT_VALUES: usize = 600_000;

use super::lazy::json_values_within;

/// Whether JSON text holds at least `n` values (see [`json_values_within`]).
fn json_values_at_least(text: &[u8], n: usize) -> bool {
    json_values_within(text, n.saturating_sub(1)).is_none()
}

fn strip_json_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg.get(..i).unwrap_or(msg).to_string(),
        None => msg.to_string(),
    }
}

fn parse_yaml(text: &str) -> Result<Value, LoadError> {
    // Budgets: large enough for Stripe's 6 MB document (~1.5M events), small enough that an
    // alias bomb or a deep nest is refused (replayed alias events are capped separately).
    let budget = serde_saphyr::budget! {
        max_events: 8_000_000,
        max_nodes: MAX_DOCUMENT_VALUES,
        max_depth: MAX_YAML_DEPTH,
        max_documents: 1,
        max_aliases: 10_000,
        max_anchors: 10_000,
        max_total_scalar_bytes: MAX_DOCUMENT_BYTES,
    };
    let alias_limits = serde_saphyr::alias_limits! {
        max_total_replayed_events: 200_000,
        max_replay_stack_depth: 16,
    };
    let options = serde_saphyr::options! {
        budget: budget,
        alias_limits: alias_limits,
    };
    serde_saphyr::from_str_with_options::<Value>(text, options).map_err(|e| {
        let loc = e.location();
        let message = e.to_string();
        // The message may carry a multi-line snippet; keep the first line.
        let first = message.lines().next().unwrap_or("invalid YAML").trim().to_string();
        LoadError::Yaml {
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message: first,
        }
    })
}

/// Read a document: parse, check the root, detect the version, upgrade 2.0 to 3.0 shape.
pub fn load_document(bytes: &[u8]) -> Result<LoadedDocument, LoadError> {
    load_document_within(bytes, &super::Ledger::default())
}

/// [`load_document`] with the Swagger 2.0 upgrade charged to `ledger` (the import's).
pub fn load_document_within(bytes: &[u8], ledger: &super::Ledger) -> Result<LoadedDocument, LoadError> {
    let doc = parse_bytes(bytes)?;
    prepare_within(doc, ledger)
}

/// Version detection and top-level checks on an already parsed `Value`.
/// A document as an import reads it.
pub enum Source<'doc> {
    /// Parsed whole: YAML, Swagger 2.0 (upgraded as a tree), and JSON the parts reader leaves.
    Tree(LoadedDocument),
    /// An OpenAPI 3.x JSON document read piece by piece ([`super::lazy`]).
    Parts(Box<LazyParts<'doc>>),
}

/// A JSON document's parts: the root's small members parsed (`head`), `paths` split into path
/// items, everything else parsed when a pointer reaches it.
pub struct LazyParts<'doc> {
    pub doc: super::lazy::LazyDoc<'doc>,
    /// The root without `paths`, `webhooks` and `x-` members, and with `components` reduced to
    /// its `securitySchemes`: what the document's title, servers and schemes are read from.
    pub head: Value,
    pub paths: super::lazy::RawObject<'doc>,
    pub spec_version: SpecVersion,
    pub version_string: String,
    webhooks: bool,
}

impl Source<'_> {
    /// Whether the document declares webhooks (not exposed as tools).
    pub fn has_webhooks(&self) -> bool {
        match self {
            Source::Tree(l) => l.doc.get("webhooks").and_then(Value::as_object).is_some_and(|w| !w.is_empty()),
            Source::Parts(p) => p.webhooks,
        }
    }
}

/// Deepest nesting the parts reader takes: `serde_json` refuses past 128 levels, and a deeper
/// document goes to the tree reader, which reports it as before.
const PARTS_MAX_DEPTH: usize = 100;

/// Read a document for an import: JSON OpenAPI 3.x piece by piece, anything else whole. Both
/// give the same tools; the errors are the tree reader's (a document the parts reader cannot
/// take is read whole, which reports why).
pub fn load_source<'doc>(bytes: &'doc [u8], ledger: &super::Ledger) -> Result<Source<'doc>, LoadError> {
    if let Some(parts) = parts_of(bytes) {
        return Ok(Source::Parts(Box::new(parts)));
    }
    load_document_within(bytes, ledger).map(Source::Tree)
}

fn parts_of(bytes: &[u8]) -> Option<LazyParts<'_>> {
    use super::lazy::{kind_of, LazyDoc, RawObject};
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if !text.trim_start().starts_with('{') || !json_depth_within(text.as_bytes(), PARTS_MAX_DEPTH) {
        return None;
    }
    let doc = LazyDoc::parse(text).ok()?;
    let mut head = serde_json::Map::new();
    let mut values = 0usize;
    let mut parse = |raw: &serde_json::value::RawValue| -> Option<Value> {
        values += json_values_within(raw.get().as_bytes(), MAX_DOCUMENT_VALUES - values)?;
        serde_json::from_str(raw.get()).ok()
    };
    for (k, raw) in doc.root().iter() {
        if k == "paths" || k == "webhooks" || k == "components" || k.starts_with("x-") {
            continue;
        }
        head.insert(k.to_string(), parse(raw)?);
    }
    let (spec_version, version_string) = detect_version(&head).ok()?;
    if spec_version == SpecVersion::Swagger2 {
        return None;
    }
    if let Some(c) = doc.root().get("components").filter(|c| kind_of(c) == b'{') {
        let mut components = serde_json::Map::new();
        if let Some(s) = RawObject::parse(c.get()).ok()?.get("securitySchemes") {
            components.insert("securitySchemes".into(), parse(s)?);
        }
        head.insert("components".into(), Value::Object(components));
    }
    let paths = match doc.root().get("paths") {
        None => RawObject::default(),
        Some(p) if kind_of(p) == b'n' => RawObject::default(),
        Some(p) if kind_of(p) == b'{' => RawObject::parse(p.get()).ok()?,
        Some(_) => return None,
    };
    let webhooks = doc
        .root()
        .get("webhooks")
        .filter(|w| kind_of(w) == b'{')
        // A webhooks object too large to index is not empty either.
        .is_some_and(|w| RawObject::parse(w.get()).map_or(true, |o| !o.is_empty()));
    Some(LazyParts { doc, head: Value::Object(head), paths, spec_version, version_string, webhooks })
}

/// Whether JSON text nests `[`/`{` at most `max` deep.
fn json_depth_within(text: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    for b in super::lazy::structure(text) {
        match b {
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

pub fn prepare(doc: Value) -> Result<LoadedDocument, LoadError> {
    prepare_within(doc, &super::Ledger::default())
}

/// [`prepare`] with the Swagger 2.0 upgrade charged to `ledger`.
pub fn prepare_within(doc: Value, ledger: &super::Ledger) -> Result<LoadedDocument, LoadError> {
    let Value::Object(root) = &doc else {
        return Err(LoadError::NotAnObject { found: type_name(&doc) });
    };
    let (spec_version, version_string) = detect_version(root)?;
    check_top_level(root)?;
    let mut problems = Vec::new();
    let doc = if spec_version == SpecVersion::Swagger2 { swagger2::upgrade(&doc, &mut problems, ledger)? } else { doc };
    Ok(LoadedDocument { doc, spec_version, version_string, problems })
}

fn detect_version(root: &serde_json::Map<String, Value>) -> Result<(SpecVersion, String), LoadError> {
    if let Some(v) = root.get("openapi") {
        let s = version_text(v);
        let family = if s.starts_with("3.0") {
            SpecVersion::OpenApi30
        } else if s.starts_with("3.1") {
            SpecVersion::OpenApi31
        } else if s.starts_with("3.2") {
            SpecVersion::OpenApi32
        } else {
            return Err(LoadError::UnsupportedVersion { found: s });
        };
        return Ok((family, s));
    }
    if let Some(v) = root.get("swagger") {
        let s = version_text(v);
        if s == "2.0" || s == "2" {
            return Ok((SpecVersion::Swagger2, s));
        }
        return Err(LoadError::UnsupportedVersion { found: s });
    }
    Err(LoadError::MissingVersion)
}

fn version_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.chars().take(40).collect(),
        Value::Number(n) => n.to_string(),
        other => type_name(other).to_string(),
    }
}

fn check_top_level(root: &serde_json::Map<String, Value>) -> Result<(), LoadError> {
    if let Some(paths) = root.get("paths") {
        if !paths.is_object() && !paths.is_null() {
            return Err(LoadError::WrongType {
                pointer: "/paths".into(),
                expected: "an object",
                found: type_name(paths),
            });
        }
    }
    Ok(())
}
