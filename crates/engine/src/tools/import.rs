//! A whole document -> [`ImportReport`] (tools + facts + problems).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::openapi::load::{prepare, type_name, LoadedDocument};
use crate::openapi::{
    document_info, escape_token, load_document, security_schemes, servers_of, Ledger, LoadError, Problem, Resolver,
    SecuritySchemeInfo, SpecVersion,
};

use super::build::{build_tool, DocCtx};
use super::names::assign_unique;
use super::ToolDef;

/// A document that cannot be read at all.
pub type ImportError = LoadError;

/// Bytes charged per tool for what is not a schema (names, plan, annotations).
const TOOL_OVERHEAD_BYTES: usize = 2048;

/// HTTP methods that carry operations (3.2 adds `query`; `additionalOperations` adds more).
pub const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace", "query"];

/// Everything an import produces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub title: String,
    pub version: String,
    pub spec_version: SpecVersion,
    /// Version string as written (`"2.0"`, `"3.1.0"`).
    pub spec_version_string: String,
    pub servers: Vec<String>,
    pub security_schemes: Vec<SecuritySchemeInfo>,
    pub tools: Vec<ToolDef>,
    /// Per-operation (and document) warnings and errors, each with a JSON pointer.
    pub problems: Vec<Problem>,
    /// Operations found, including skipped ones.
    pub operations_total: usize,
}

/// Read and convert a document (JSON or YAML bytes).
///
/// Everything generated is charged to a [`Ledger`] of [`crate::openapi::IMPORT_OUTPUT_BYTES`];
/// a document whose tools would not fit ends with [`LoadError::OutputTooLarge`], naming the
/// operations that took the most, instead of exhausting memory.
pub fn import(bytes: &[u8]) -> Result<ImportReport, ImportError> {
    convert(load_document(bytes)?, &Ledger::default())
}

/// Convert an already parsed document.
pub fn import_value(doc: Value) -> Result<ImportReport, ImportError> {
    convert(prepare(doc)?, &Ledger::default())
}

/// [`import`] charged to a given ledger (to read what it used, or to try a smaller one).
pub fn import_within(bytes: &[u8], ledger: &Ledger) -> Result<ImportReport, ImportError> {
    convert(load_document(bytes)?, ledger)
}

fn convert(loaded: LoadedDocument, ledger: &Ledger) -> Result<ImportReport, ImportError> {
    let LoadedDocument { doc, spec_version, version_string, mut problems } = loaded;
    let info = document_info(&doc);
    let servers = servers_of(&doc);
    let ctx = DocCtx { resolver: Resolver::new(&doc), servers: servers.clone(), security: doc.get("security"), ledger };
    if let Some(Value::Object(w)) = doc.get("webhooks") {
        if !w.is_empty() {
            problems.push(Problem::warning(
                "/webhooks",
                "webhooks describe calls the API makes; they are not exposed as tools",
            ));
        }
    }
    let mut built = Vec::new();
    let mut total = 0usize;
    if let Some(Value::Object(paths)) = doc.get("paths") {
        for (path, item) in paths {
            let pointer = format!("/paths/{}", escape_token(path));
            let item = match ctx.resolver.deref_chain(item, 8) {
                Ok((Value::Object(m), _)) => m,
                Ok((other, _)) => {
                    problems.push(Problem::error(
                        &pointer,
                        format!("a path item must be an object, found {}; skipped", type_name(other)),
                    ));
                    continue;
                }
                Err(msg) => {
                    problems.push(Problem::error(&pointer, format!("path item skipped: {msg}")));
                    continue;
                }
            };
            for (method, op, op_pointer) in operations_of(item, &pointer) {
                total += 1;
                let before = ledger.used();
                let result = build_tool(&ctx, path, &method, item, op, &op_pointer, &mut problems);
                // The tool's own text (names, description, plan) besides its schemas.
                if let Ok(b) = &result {
                    ledger.charge(TOOL_OVERHEAD_BYTES + b.tool.description.len());
                }
                ledger.note_part(&op_pointer, before);
                if ledger.is_over() {
                    return Err(ledger.too_large());
                }
                match result {
                    Ok(b) => built.push(b),
                    Err(msg) => problems.push(Problem::error(op_pointer, format!("operation skipped: {msg}"))),
                }
            }
        }
    }
    let wanted: Vec<(String, String)> =
        built.iter().map(|b| (b.wanted_name.clone(), b.tool.operation_key.clone())).collect();
    let names = assign_unique(&wanted);
    let tools = built.into_iter().zip(names).map(|(b, name)| ToolDef { name, ..b.tool }).collect();
    Ok(ImportReport {
        title: info.title,
        version: info.version,
        spec_version,
        spec_version_string: version_string,
        servers,
        security_schemes: security_schemes(&doc),
        tools,
        problems,
        operations_total: total,
    })
}

fn operations_of<'a>(item: &'a serde_json::Map<String, Value>, pointer: &str) -> Vec<(String, &'a Value, String)> {
    let mut out = Vec::new();
    for (k, v) in item {
        if METHODS.contains(&k.as_str()) {
            out.push((k.clone(), v, format!("{pointer}/{k}")));
        }
    }
    if let Some(Value::Object(extra)) = item.get("additionalOperations") {
        for (k, v) in extra {
            let m = k.to_ascii_lowercase();
            if m.chars().all(|c| c.is_ascii_alphabetic()) && !m.is_empty() {
                out.push((m, v, format!("{pointer}/additionalOperations/{}", escape_token(k))));
            }
        }
    }
    out
}
