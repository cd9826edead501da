//! A whole document -> [`ImportReport`] (tools + facts + problems).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use serde_json::Map;
use typed_arena::Arena;

use crate::openapi::doc::security_schemes_with;
use crate::openapi::lazy::Parts;
use crate::openapi::load::{load_source, prepare_within, type_name, Source, MAX_DOCUMENT_VALUES};
use crate::openapi::{
    document_info, escape_token, servers_of, Ledger, LoadError, Problem, Resolver, SecuritySchemeInfo, SpecVersion,
};

use super::build::{build_tool, identify, DocCtx};
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
/// operations that took the most, instead of exhausting memory. A caller that stores tools as
/// they come reads them in batches with an [`Importer`] instead.
pub fn import(bytes: &[u8]) -> Result<ImportReport, ImportError> {
    import_within(bytes, &Ledger::default())
}

/// Convert an already parsed document.
pub fn import_value(doc: Value) -> Result<ImportReport, ImportError> {
    let ledger = Ledger::default();
    Importer::from_source(Source::Tree(prepare_within(doc, &ledger)?), &ledger)?.collect(usize::MAX)
}

/// [`import`] charged to a given, fresh ledger (to read what it used, or to try a smaller one).
pub fn import_within(bytes: &[u8], ledger: &Ledger) -> Result<ImportReport, ImportError> {
    Importer::new(bytes, ledger)?.collect(usize::MAX)
}

/// Longest path kept (longer ones are skipped): a path is copied into the tool's operation
/// key, request template and every problem pointer of its operations.
pub const MAX_PATH_CHARS: usize = 2_048;
/// Extra methods read from one path item's `additionalOperations`.
const MAX_ADDITIONAL_OPERATIONS: usize = 16;
/// Problems kept per operation, and per import; the rest are counted in one last problem.
const MAX_PROBLEMS_PER_OPERATION: usize = 50;
const MAX_PROBLEMS: usize = 2_000;
/// Tools per batch for a caller that stores each batch (the Worker): about 1 to 10 MB of
/// output for real APIs, far under the batch budget.
pub const IMPORT_BATCH_TOOLS: usize = 200;
/// Path items whose parts one arena holds while the tool names are worked out.
const NAMING_CHUNK: usize = 256;

/// Keep at most `max` of the problems after `from`, replacing the rest by one that counts them.
fn cap_problems(problems: &mut Vec<Problem>, from: usize, max: usize, pointer: &str) {
    let extra = problems.len().saturating_sub(from + max);
    if extra > 0 {
        problems.truncate(from + max);
        problems.push(Problem::warning(pointer, format!("{extra} more problems not listed")));
    }
}

/// What an import knows of a document before its first tool.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportHead {
    pub title: String,
    pub version: String,
    pub spec_version: SpecVersion,
    pub spec_version_string: String,
    pub servers: Vec<String>,
    pub security_schemes: Vec<SecuritySchemeInfo>,
}

/// What an import found besides its tools, once every batch is taken.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportTail {
    pub problems: Vec<Problem>,
    pub operations_total: usize,
    pub portability: PortableReport,
}

/// An import that yields its tools in batches (issue 18): the caller stores and drops each
/// batch, so memory holds the document's bytes, an index of its members and one batch, not
/// every tool. Each batch's output is charged to the ledger's batch budget, and every batch to
/// the import's total ([`crate::openapi::IMPORT_TOTAL_OUTPUT_BYTES`]).
///
/// The tools, names, problems and counts are exactly those [`import`] returns, in the same
/// order: tool names, which depend on every operation of the document, are worked out before
/// the first batch, from the operations alone.
pub struct Importer<'doc> {
    source: Source<'doc>,
    ledger: &'doc Ledger,
    head: ImportHead,
    names: std::vec::IntoIter<String>,
    next_path: usize,
    paths: usize,
    tail: ImportTail,
    unlisted: usize,
}

impl<'doc> Importer<'doc> {
    /// Read a document (JSON or YAML bytes) and name its tools; no tool is built yet.
    pub fn new(bytes: &'doc [u8], ledger: &'doc Ledger) -> Result<Self, ImportError> {
        Importer::from_source(load_source(bytes, ledger)?, ledger)
    }

    fn from_source(source: Source<'doc>, ledger: &'doc Ledger) -> Result<Self, ImportError> {
        ledger.clear_memo();
        let (head, problems, paths) = match &source {
            Source::Tree(loaded) => {
                let doc = &loaded.doc;
                let paths = doc.get("paths").and_then(Value::as_object).map_or(0, |p| p.len());
                (
                    head_of(doc, Resolver::new(doc), loaded.spec_version, &loaded.version_string),
                    loaded.problems.clone(),
                    paths,
                )
            }
            Source::Parts(parts) => {
                let arena = Arena::new();
                let view = Parts::new(&parts.doc, &arena, MAX_DOCUMENT_VALUES);
                // The schemes' `$ref`s may point anywhere in the document, not only the head.
                let head = head_of(&parts.head, Resolver::Parts(&view), parts.spec_version, &parts.version_string);
                if view.is_over() {
                    return Err(parts_error(&parts.doc));
                }
                (head, Vec::new(), parts.paths.len())
            }
        };
        let mut tail = ImportTail { problems, ..Default::default() };
        if source.has_webhooks() {
            tail.problems.push(Problem::warning(
                "/webhooks",
                "webhooks describe calls the API makes; they are not exposed as tools",
            ));
        }
        let wanted = wanted_names(&source)?;
        let names = assign_unique(&wanted).into_iter();
        Ok(Importer { source, ledger, head, names, next_path: 0, paths, tail, unlisted: 0 })
    }

    pub fn head(&self) -> &ImportHead {
        &self.head
    }

    /// The next tools (at least `max_tools` unless the document ends; the operations of one
    /// path are never split), or `None` once every path is read.
    pub fn next_batch(&mut self, max_tools: usize) -> Result<Option<Vec<ToolDef>>, ImportError> {
        if self.next_path >= self.paths {
            return Ok(None);
        }
        let Importer { source, ledger, head, names, next_path, tail, unlisted, .. } = self;
        let ledger: &Ledger = ledger;
        let arena = Arena::new();
        let mut out = Vec::new();
        match source {
            Source::Tree(loaded) => {
                let doc = &loaded.doc;
                let ctx = DocCtx {
                    resolver: Resolver::new(doc),
                    servers: head.servers.clone(),
                    security: doc.get("security"),
                    ledger,
                };
                let items = doc.get("paths").and_then(Value::as_object).into_iter().flatten().skip(*next_path);
                for (path, item) in items {
                    if out.len() >= max_tools {
                        break;
                    }
                    *next_path += 1;
                    convert_path(&ctx, path, item, names, tail, unlisted, &mut out)?;
                }
            }
            Source::Parts(parts) => {
                let view = Parts::new(&parts.doc, &arena, MAX_DOCUMENT_VALUES);
                let ctx = DocCtx {
                    resolver: Resolver::Parts(&view),
                    servers: head.servers.clone(),
                    security: parts.head.get("security"),
                    ledger,
                };
                while out.len() < max_tools {
                    let Some((path, raw)) = parts.paths.entry(*next_path) else { break };
                    *next_path += 1;
                    let item = view.parse(raw);
                    if let Some(item) = item {
                        convert_path(&ctx, path, item, names, tail, unlisted, &mut out)?;
                    }
                    if item.is_none() || view.is_over() {
                        return Err(parts_error(&parts.doc));
                    }
                }
            }
        }
        if !ledger.end_batch() {
            return Err(ledger.too_large());
        }
        Ok(Some(out))
    }

    /// The problems and counts, once every batch is taken.
    pub fn finish(mut self) -> ImportTail {
        if self.unlisted > 0 {
            self.tail.problems.push(Problem::warning("", format!("{} more problems not listed", self.unlisted)));
        }
        self.tail
    }

    /// Every batch into one report.
    pub fn collect(mut self, max_tools: usize) -> Result<ImportReport, ImportError> {
        let mut tools = Vec::new();
        while let Some(batch) = self.next_batch(max_tools)? {
            tools.extend(batch);
        }
        let head = self.head.clone();
        let tail = self.finish();
        Ok(ImportReport {
            title: head.title,
            version: head.version,
            spec_version: head.spec_version,
            spec_version_string: head.spec_version_string,
            servers: head.servers,
            security_schemes: head.security_schemes,
            tools,
            problems: tail.problems,
            operations_total: tail.operations_total,
            portability: tail.portability,
        })
    }
}

/// Why a part of a document read in parts could not be parsed: the import's parsing work,
/// else the batch's value budget.
fn parts_error(doc: &crate::openapi::lazy::LazyDoc<'_>) -> LoadError {
    if doc.is_broken() {
        LoadError::TooManyValues { limit: crate::openapi::lazy::MAX_INDEXED_MEMBERS }
    } else if doc.is_over_work() {
        LoadError::TooMuchParsing { limit: doc.parse_limit() }
    } else {
        LoadError::TooManyValues { limit: MAX_DOCUMENT_VALUES }
    }
}

fn head_of(doc: &Value, resolver: Resolver<'_>, spec_version: SpecVersion, version_string: &str) -> ImportHead {
    let info = document_info(doc);
    ImportHead {
        title: info.title,
        version: info.version,
        spec_version,
        spec_version_string: version_string.to_string(),
        servers: servers_of(doc),
        security_schemes: security_schemes_with(doc, resolver),
    }
}

/// A path item, dereferenced, or why it is skipped.
fn path_item<'a>(resolver: &Resolver<'a>, path: &str, item: &'a Value) -> Result<&'a Map<String, Value>, Problem> {
    let pointer = format!("/paths/{}", escape_token(path));
    if path.len() > MAX_PATH_CHARS {
        let head: String = path.chars().take(64).collect();
        return Err(Problem::error(
            "/paths",
            format!("the path {head:?}... is longer than {MAX_PATH_CHARS} characters; skipped"),
        ));
    }
    match resolver.deref_chain(item, 8) {
        Ok((Value::Object(m), _)) => Ok(m),
        Ok((other, _)) => {
            Err(Problem::error(&pointer, format!("a path item must be an object, found {}; skipped", type_name(other))))
        }
        Err(msg) => Err(Problem::error(&pointer, format!("path item skipped: {msg}"))),
    }
}

/// (name wanted, operation key) of every operation that becomes a tool, in document order.
fn wanted_names(source: &Source<'_>) -> Result<Vec<(String, String)>, ImportError> {
    let mut wanted = Vec::new();
    let mut add = |resolver: &Resolver<'_>, path: &str, item: &Value| {
        let Ok(item) = path_item(resolver, path, item) else { return };
        let pointer = format!("/paths/{}", escape_token(path));
        for (method, op, _) in operations_of(item, &pointer) {
            if let Ok((_, method, _, name)) = identify(path, &method, op) {
                wanted.push((name, format!("{method} {path}")));
            }
        }
    };
    match source {
        Source::Tree(loaded) => {
            let resolver = Resolver::new(&loaded.doc);
            for (path, item) in loaded.doc.get("paths").and_then(Value::as_object).into_iter().flatten() {
                add(&resolver, path, item);
            }
        }
        Source::Parts(parts) => {
            for start in (0..parts.paths.len()).step_by(NAMING_CHUNK) {
                let arena = Arena::new();
                let view = Parts::new(&parts.doc, &arena, MAX_DOCUMENT_VALUES);
                let resolver = Resolver::Parts(&view);
                for (path, raw) in (start..start + NAMING_CHUNK).map_while(|i| parts.paths.entry(i)) {
                    match view.parse(raw) {
                        Some(item) => add(&resolver, path, item),
                        None => return Err(parts_error(&parts.doc)),
                    }
                }
                if view.is_over() {
                    return Err(parts_error(&parts.doc));
                }
            }
        }
    }
    Ok(wanted)
}

/// The tools of one path, appended to `out` (named from `names`), and its problems.
fn convert_path<'a>(
    ctx: &DocCtx<'a>,
    path: &str,
    item: &'a Value,
    names: &mut std::vec::IntoIter<String>,
    tail: &mut ImportTail,
    unlisted: &mut usize,
    out: &mut Vec<ToolDef>,
) -> Result<(), ImportError> {
    let ledger = ctx.ledger;
    let problems = &mut tail.problems;
    let item = match path_item(&ctx.resolver, path, item) {
        Ok(item) => item,
        Err(problem) => {
            problems.push(problem);
            return Ok(());
        }
    };
    let pointer = format!("/paths/{}", escape_token(path));
    for (method, op, op_pointer) in operations_of(item, &pointer) {
        tail.operations_total += 1;
        let before = ledger.used();
        let first_problem = problems.len();
        let result = build_tool(ctx, path, &method, item, op, &op_pointer, problems);
        // The tool's own text (names, description, plan, servers) besides its schemas.
        if let Ok(b) = &result {
            let servers: usize = b.tool.request.servers.iter().map(|s| s.len() + 32).sum();
            ledger.charge(TOOL_OVERHEAD_BYTES + b.tool.description.len() + 4 * path.len() + servers);
        }
        cap_problems(problems, first_problem, MAX_PROBLEMS_PER_OPERATION, &op_pointer);
        if problems.len() > MAX_PROBLEMS {
            *unlisted += problems.len() - MAX_PROBLEMS;
            problems.truncate(MAX_PROBLEMS);
        }
        ledger.charge(problems.get(first_problem..).unwrap_or_default().iter().map(Problem::size).sum());
        ledger.note_part(&op_pointer, before);
        if ledger.is_over() {
            return Err(ledger.too_large());
        }
        match result {
            Ok(b) => {
                tail.portability.add(&b.portability);
                let name = names.next().unwrap_or(b.wanted_name);
                out.push(ToolDef { name, ..b.tool });
            }
            Err(msg) => problems.push(Problem::error(op_pointer, format!("operation skipped: {msg}"))),
        }
    }
    Ok(())
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
            // A method the item already has (`get`, or twice in any case) would be a second
            // tool with the same operation key: the first one is kept.
            let new = !out.iter().any(|(seen, _, _)| *seen == m);
            if m.chars().all(|c| c.is_ascii_alphabetic()) && !m.is_empty() && new {
                out.push((m, v, format!("{pointer}/additionalOperations/{}", escape_token(k))));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_method_repeated_in_additional_operations_is_one_tool() {
        let doc = json!({"openapi": "3.2.0", "info": {"title": "t", "version": "1"}, "paths": {"/a": {
            "get": {"operationId": "first", "responses": {}},
            "additionalOperations": {"GET": {"operationId": "again", "responses": {}},
                "PURGE": {"operationId": "purge", "responses": {}}, "purge": {"operationId": "twice", "responses": {}}}}}});
        let report = super::import(&serde_json::to_vec(&doc).unwrap()).unwrap();
        let names: Vec<&str> = report.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["first", "purge"]);
    }
}
