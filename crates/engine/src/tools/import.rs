//! A whole document -> [`ImportReport`] (tools + facts + problems).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::openapi::load::{load_document_within, prepare_within, type_name, LoadedDocument};
use crate::openapi::{
    document_info, escape_token, security_schemes, servers_of, Ledger, LoadError, Problem, Resolver,
    SecuritySchemeInfo, SpecVersion,
};

use super::build::{build_tool, DocCtx};
use super::names::assign_unique;
use super::ToolDef;
use crate::openapi::portable::PortableReport;

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
    /// What was done to input schemas so every client can compile them (counts; not stored).
    #[serde(skip)]
    pub portability: PortableReport,
}

/// Read and convert a document (JSON or YAML bytes).
///
/// Everything generated is charged to a [`Ledger`] of [`crate::openapi::IMPORT_OUTPUT_BYTES`];
/// a document whose tools would not fit ends with [`LoadError::OutputTooLarge`], naming the
/// operations that took the most, instead of exhausting memory.
pub fn import(bytes: &[u8]) -> Result<ImportReport, ImportError> {
    import_within(bytes, &Ledger::default())
}

/// Convert an already parsed document.
pub fn import_value(doc: Value) -> Result<ImportReport, ImportError> {
    let ledger = Ledger::default();
    convert(prepare_within(doc, &ledger)?, &ledger)
}

/// [`import`] charged to a given, fresh ledger (to read what it used, or to try a smaller one).
pub fn import_within(bytes: &[u8], ledger: &Ledger) -> Result<ImportReport, ImportError> {
    convert(load_document_within(bytes, ledger)?, ledger)
}

/// Longest path kept (longer ones are skipped): a path is copied into the tool's operation
/// key, request template and every problem pointer of its operations.
pub const MAX_PATH_CHARS: usize = 2_048;
/// Extra methods read from one path item's `additionalOperations`.
const MAX_ADDITIONAL_OPERATIONS: usize = 16;
/// Problems kept per operation, and per import; the rest are counted in one last problem.
const MAX_PROBLEMS_PER_OPERATION: usize = 50;
const MAX_PROBLEMS: usize = 2_000;

/// Keep at most `max` of the problems after `from`, replacing the rest by one that counts them.
fn cap_problems(problems: &mut Vec<Problem>, from: usize, max: usize, pointer: &str) {
    let extra = problems.len().saturating_sub(from + max);
    if extra > 0 {
        problems.truncate(from + max);
        problems.push(Problem::warning(pointer, format!("{extra} more problems not listed")));
    }
}

fn convert(loaded: LoadedDocument, ledger: &Ledger) -> Result<ImportReport, ImportError> {
    ledger.clear_memo();
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
    let mut unlisted = 0usize;
    if let Some(Value::Object(paths)) = doc.get("paths") {
        for (path, item) in paths {
            if path.len() > MAX_PATH_CHARS {
                let head: String = path.chars().take(64).collect();
                problems.push(Problem::error(
                    "/paths",
                    format!("the path {head:?}... is longer than {MAX_PATH_CHARS} characters; skipped"),
                ));
                continue;
            }
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
                let first_problem = problems.len();
                let result = build_tool(&ctx, path, &method, item, op, &op_pointer, &mut problems);
                // The tool's own text (names, description, plan, servers) besides its schemas.
                if let Ok(b) = &result {
                    let servers: usize = b.tool.request.servers.iter().map(|s| s.len() + 32).sum();
                    ledger.charge(TOOL_OVERHEAD_BYTES + b.tool.description.len() + 4 * path.len() + servers);
                }
                cap_problems(&mut problems, first_problem, MAX_PROBLEMS_PER_OPERATION, &op_pointer);
                if problems.len() > MAX_PROBLEMS {
                    unlisted += problems.len() - MAX_PROBLEMS;
                    problems.truncate(MAX_PROBLEMS);
                }
                ledger.charge(problems.get(first_problem..).unwrap_or_default().iter().map(Problem::size).sum());
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
    if unlisted > 0 {
        problems.push(Problem::warning("", format!("{unlisted} more problems not listed")));
    }
    let wanted: Vec<(String, String)> =
        built.iter().map(|b| (b.wanted_name.clone(), b.tool.operation_key.clone())).collect();
    let names = assign_unique(&wanted);
    let mut portability = PortableReport::default();
    for b in &built {
        portability.add(&b.portability);
    }
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
        portability,
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
        for (k, v) in extra.iter().take(MAX_ADDITIONAL_OPERATIONS) {
            let m = k.to_ascii_lowercase();
            if m.chars().all(|c| c.is_ascii_alphabetic()) && !m.is_empty() {
                out.push((m, v, format!("{pointer}/additionalOperations/{}", escape_token(k))));
            }
        }
    }
    out
}
