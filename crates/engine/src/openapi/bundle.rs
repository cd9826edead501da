//! Bundling: the files of one repository that reference each other by `$ref` become ONE
//! document whose `$ref`s are all local, so the rest of the engine (which follows only
//! `#/...` pointers) can read a document split over many files.
//!
//! The caller fetches: it asks [`referenced_files`] which files a file names, fetches them,
//! repeats, then hands everything to [`bundle`]. Nothing here does I/O.
//!
//! Invariants:
//! - A reference is a repository path relative to the file it appears in ([`resolve_path`]);
//!   a URL, an absolute path or a path leaving the repository is never followed and stays as
//!   written (the import then reports it as external).
//! - Each distinct target (file, JSON pointer) is copied once under the root's
//!   [`BUNDLE_KEY`] list, so shared nodes stay shared and a cycle across files ends at the
//!   entry it started from. Hoisting is a worklist, not a recursion per entry chain.
//! - Only the string of a `$ref` changes (its siblings stay); a non-string `$ref` is left.
//! - The output is bounded: at most [`MAX_HOISTED`] entries and [`MAX_DOCUMENT_VALUES`]
//!   values walked, else an error instead of a document the import would refuse anyway.
//! - `$id` is not honoured: a reference resolves against its file's repository path only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::{Map, Value};

use super::load::{MAX_DOCUMENT_BYTES, MAX_DOCUMENT_VALUES};
use super::pointer::escape_token;

/// Most distinct nodes of other files one bundle may copy in.
pub const MAX_HOISTED: usize = 20_000;

/// The key at the document's root under which external nodes are placed (a list; entry `n`
/// is `#/x-flowcp-bundled/n`).
pub const BUNDLE_KEY: &str = "x-flowcp-bundled";

/// Longest repository path quoted in a message (a path comes from the document).
const MAX_PATH_IN_MESSAGE: usize = 256;

/// Why a set of files cannot be bundled (messages are safe to show; they name repository paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleError {
    /// A referenced file (repository path) was not supplied: it is not in the repository.
    Missing(String),
    /// More distinct nodes of other files are referenced than `limit` ([`MAX_HOISTED`]).
    TooLarge { limit: usize },
    /// The bundled document would hold more than `limit` values ([`MAX_DOCUMENT_VALUES`],
    /// the most the import reads): nested targets are each copied whole.
    TooManyValues { limit: usize },
    /// The bundled document would be larger than `limit` bytes ([`MAX_DOCUMENT_BYTES`], the
    /// most the import reads): a large node referenced at many nested pointers is copied each
    /// time, so copies are charged by size, not only by count.
    TooManyBytes { limit: usize },
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BundleError::Missing(path) => {
                let shown: String = path.chars().take(MAX_PATH_IN_MESSAGE).collect();
                let more = if shown.len() < path.len() { "…" } else { "" };
                write!(f, "the file {shown}{more}, referenced by $ref, is not in the repository")
            }
            BundleError::TooLarge { limit } => {
                write!(f, "the files reference more than {limit} distinct parts of other files by $ref")
            }
            BundleError::TooManyValues { limit } => write!(
                f,
                "the document bundled from these files would hold more than {limit} values (objects, lists, strings, numbers)"
            ),
            BundleError::TooManyBytes { limit } => {
                write!(f, "the document bundled from these files would be larger than {limit} bytes")
            }
        }
    }
}

impl std::error::Error for BundleError {}

/// Resolves a `$ref`'s file part against the file it appears in, as a repository path:
/// `resolve_path("api/openapi.yaml", "./schemas/pet.yaml")` is `Some("api/schemas/pet.yaml")`.
///
/// `..` is allowed while it stays inside the repository; percent-escapes are decoded
/// (`my%20file.yaml`). `None` for anything that is not a relative file path inside the
/// repository: a URL with a scheme (`https://...`, `file:`), a path starting with `/`, a
/// path escaping the root, an empty path, a directory (`schemas/`), a query (`?`),
/// backslashes, control characters, or percent-escapes that are not UTF-8 or encode `/`.
pub fn resolve_path(from_file: &str, file_ref: &str) -> Option<String> {
    if file_ref.is_empty() || file_ref.starts_with('/') || file_ref.contains(['\\', '?']) {
        return None;
    }
    // RFC 3986: a relative path's first segment has no `:`; one that does is a scheme.
    if file_ref.split('/').next().is_some_and(|first| first.contains(':')) {
        return None;
    }
    let mut segments: Vec<String> = Vec::new();
    let base = from_file.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
    for seg in base.split('/') {
        push_segment(&mut segments, seg)?;
    }
    let raw: Vec<&str> = file_ref.split('/').collect();
    if matches!(raw.last(), Some(&("" | "." | ".."))) {
        return None; // a directory, not a file
    }
    for seg in raw {
        let decoded = percent_decode_str(seg).decode_utf8().ok()?;
        if decoded.contains(['/', '\\']) || decoded.chars().any(char::is_control) {
            return None;
        }
        push_segment(&mut segments, &decoded)?;
    }
    if segments.is_empty() {
        return None;
    }
    Some(segments.join("/"))
}

/// Apply one path segment; `None` when `..` would leave the repository.
fn push_segment(segments: &mut Vec<String>, seg: &str) -> Option<()> {
    match seg {
        "" | "." => {}
        ".." => {
            segments.pop()?;
        }
        s => segments.push(s.to_string()),
    }
    Some(())
}

/// Repository paths of the other files `doc` (the file at `path`) references, distinct, in
/// document order. References [`resolve_path`] refuses are skipped: the import reports them
/// later as external and not followed.
pub fn referenced_files(path: &str, doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![doc];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let file_part = r.split_once('#').map(|(f, _)| f).unwrap_or(r);
                    if let Some(p) = (!file_part.is_empty()).then(|| resolve_path(path, file_part)).flatten() {
                        if p != path && seen.insert(p.clone()) {
                            out.push(p);
                        }
                    }
                }
                stack.extend(m.values().rev());
            }
            Value::Array(a) => stack.extend(a.iter().rev()),
            _ => {}
        }
    }
    out
}

/// One document: the root file's content with every `$ref` into another supplied file
/// replaced by a local pointer `#/x-flowcp-bundled/<n>`, where entry `<n>` holds the
/// referenced node (the whole file when the ref has no fragment), itself rewritten the same
/// way relative to ITS file (a `#/...` ref inside `schemas/pet.yaml` points into pet.yaml).
///
/// - Each distinct (file, pointer) target is hoisted once; a node referring to itself points
///   at its own entry, so cycles across files end.
/// - Refs into the root file from another file become plain `#/...` pointers; the root's own
///   `#/...` refs are unchanged.
/// - A ref to a pointer that does not exist in its (supplied) file becomes a pointer into a
///   path that never exists, `#/x-flowcp-bundled/missing/<file>#<pointer>` (escaped), so the
///   import reports it as a dangling ref as it does local ones, naming the file.
/// - `discriminator.mapping` values that are references are rewritten like `$ref`s, and a
///   branch whose implicit discriminator value came from its ref's last segment gets an
///   explicit mapping entry, so the value stays what it was (not the entry number).
/// - An existing root `x-flowcp-bundled` is replaced when anything is bundled.
///
/// `files` maps repository paths to parsed contents and must include the root at
/// `root_path`; paths are in the form [`resolve_path`] returns (no leading `/`, no `.` or
/// `..` segments), else a ref back to the root is taken for a ref to a missing file. A root
/// that is not an object is returned unchanged (the import refuses it).
pub fn bundle(root_path: &str, files: &BTreeMap<String, Value>) -> Result<Value, BundleError> {
    let root = files.get(root_path).ok_or_else(|| BundleError::Missing(root_path.to_string()))?;
    if !root.is_object() {
        return Ok(root.clone());
    }
    let mut b = Bundler {
        root: root_path,
        files,
        index: HashMap::new(),
        targets: Vec::new(),
        values: 0,
        bytes: 0,
        used_key: false,
    };
    let mut out = root.clone();
    b.rewrite_tree(&mut out, root_path)?;
    let mut entries = Vec::new();
    // Worklist: rewriting entry n may register entries after it, never before.
    while let Some((file, pointer)) = b.targets.get(entries.len()).cloned() {
        let mut node = files.get(&file).and_then(|doc| doc.pointer(&pointer)).cloned().unwrap_or(Value::Null);
        b.rewrite_tree(&mut node, &file)?;
        entries.push(node);
    }
    if b.used_key {
        if let Value::Object(m) = &mut out {
            m.insert(BUNDLE_KEY.to_string(), Value::Array(entries));
        }
    }
    Ok(out)
}

/// Characters escaped in the file and pointer a missing-target pointer quotes.
const MISSING_ESCAPES: &AsciiSet =
    &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'%').add(b'<').add(b'>').add(b'`').add(b'{').add(b'}');

struct Bundler<'a> {
    root: &'a str,
    files: &'a BTreeMap<String, Value>,
    /// (file, canonical pointer) -> entry number.
    index: HashMap<(String, String), usize>,
    /// Entry number -> (file, canonical pointer); entries are filled in this order.
    targets: Vec<(String, String)>,
    values: usize,
    /// About the bytes of the output so far (strings and keys by length, other values a few).
    bytes: usize,
    /// Whether any ref was made to point under [`BUNDLE_KEY`].
    used_key: bool,
}

impl Bundler<'_> {
    /// Rewrite every `$ref` (and discriminator mapping) in `v`, which belongs to `file`.
    fn rewrite_tree(&mut self, v: &mut Value, file: &str) -> Result<(), BundleError> {
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            self.values += 1;
            if self.values > MAX_DOCUMENT_VALUES {
                return Err(BundleError::TooManyValues { limit: MAX_DOCUMENT_VALUES });
            }
            self.bytes += match &*v {
                Value::String(t) => t.len() + 2,
                Value::Object(m) => 2 + m.keys().map(|k| k.len() + 4).sum::<usize>(),
                _ => 8,
            };
            if self.bytes > MAX_DOCUMENT_BYTES {
                return Err(BundleError::TooManyBytes { limit: MAX_DOCUMENT_BYTES });
            }
            match v {
                Value::Object(m) => {
                    self.rewrite_discriminator(m, file)?;
                    if let Some(Value::String(r)) = m.get_mut("$ref") {
                        if let Some(new) = self.rewrite_ref(file, r)? {
                            *r = new;
                        }
                    }
                    for (k, child) in m.iter_mut().rev() {
                        if k != "$ref" || !child.is_string() {
                            stack.push(child);
                        }
                    }
                }
                Value::Array(a) => stack.extend(a.iter_mut().rev()),
                _ => {}
            }
        }
        Ok(())
    }

    /// The new string for a `$ref` found in `file`, or `None` to leave it as written.
    fn rewrite_ref(&mut self, file: &str, r: &str) -> Result<Option<String>, BundleError> {
        let (file_part, fragment) = match r.split_once('#') {
            Some((f, frag)) => (f, frag),
            None => (r, ""),
        };
        let target = if file_part.is_empty() {
            file.to_string()
        } else {
            match resolve_path(file, file_part) {
                Some(p) => p,
                None => return Ok(None),
            }
        };
        if target == self.root {
            let local = format!("#{fragment}");
            return Ok((local != r).then_some(local));
        }
        let Some(doc) = self.files.get(&target) else {
            return Err(BundleError::Missing(target));
        };
        // Decoded as the import's resolver decodes fragments.
        let pointer = percent_decode_str(fragment).decode_utf8_lossy();
        self.used_key = true;
        let Some(canonical) = canonical_pointer(doc, &pointer) else {
            let quoted = escape_token(&format!("{target}#{pointer}"));
            return Ok(Some(format!("#/{BUNDLE_KEY}/missing/{}", utf8_percent_encode(&quoted, MISSING_ESCAPES))));
        };
        let key = (target, canonical);
        let n = match self.index.get(&key) {
            Some(&n) => n,
            None => {
                if self.targets.len() >= MAX_HOISTED {
                    return Err(BundleError::TooLarge { limit: MAX_HOISTED });
                }
                let n = self.targets.len();
                self.targets.push(key.clone());
                self.index.insert(key, n);
                n
            }
        };
        Ok(Some(format!("#/{BUNDLE_KEY}/{n}")))
    }

    /// A `discriminator.mapping` value is a schema name or a reference; rewrite it when it is
    /// a reference this bundle can follow, never failing (a name is not a missing file).
    fn rewrite_mapping_value(&mut self, file: &str, v: &str) -> Option<String> {
        let is_ref =
            v.contains('#') || resolve_path(file, v).is_some_and(|p| p == self.root || self.files.contains_key(&p));
        if !is_ref {
            return None;
        }
        self.rewrite_ref(file, v).ok().flatten()
    }

    /// Keep the discriminator values of an object's `oneOf`/`anyOf` branches what they were:
    /// the import pins each branch to the mapping key naming its `$ref`, else to the ref's
    /// last segment, and rewriting the refs would change both.
    fn rewrite_discriminator(&mut self, obj: &mut Map<String, Value>, file: &str) -> Result<(), BundleError> {
        let Some(Value::Object(d)) = obj.get("discriminator") else {
            return Ok(());
        };
        let mapping: Vec<(String, String)> = d
            .get("mapping")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect();
        // (new ref, value the import gave the branch before).
        let mut pinned: Vec<(String, String)> = Vec::new();
        for key in ["oneOf", "anyOf"] {
            let Some(Value::Array(branches)) = obj.get(key) else { continue };
            for r in branches.iter().filter_map(|b| b.get("$ref")).filter_map(Value::as_str) {
                if let Some(new) = self.rewrite_ref(file, r)? {
                    pinned.push((new, discriminator_value(r, &mapping)));
                }
            }
        }
        let mut new_mapping = Map::new();
        let mut changed = false;
        for (k, v) in &mapping {
            let new = self.rewrite_mapping_value(file, v);
            changed |= new.is_some();
            new_mapping.insert(k.clone(), Value::String(new.unwrap_or_else(|| v.clone())));
        }
        for (new_ref, value) in pinned {
            if !new_mapping.values().any(|t| t.as_str() == Some(new_ref.as_str())) {
                new_mapping.insert(value, Value::String(new_ref));
                changed = true;
            }
        }
        if changed {
            if let Some(Value::Object(d)) = obj.get_mut("discriminator") {
                // Keys with non-string values (ignored by the import) are dropped.
                d.insert("mapping".into(), Value::Object(new_mapping));
            }
        }
        Ok(())
    }
}

/// The import's discriminator value for a branch `$ref` (`schema::discriminator_value`): the
/// first mapping key naming the ref, else the one naming its last segment, else that segment.
fn discriminator_value(r: &str, mapping: &[(String, String)]) -> String {
    let name = r.rsplit('/').next().unwrap_or(r);
    let by_target = |t: &str| mapping.iter().find(|(_, v)| v == t).map(|(k, _)| k.clone());
    by_target(r).or_else(|| by_target(name)).unwrap_or_else(|| name.to_string())
}

/// The pointer of the node `pointer` names in `doc`, with array indexes written canonically
/// (`/a/+0` and `/a/00` are `/a/0`), or `None` when it names nothing. Same reading as
/// [`super::pointer::Resolver::pointer`].
fn canonical_pointer(doc: &Value, pointer: &str) -> Option<String> {
    if pointer.is_empty() {
        return Some(String::new());
    }
    let rest = pointer.strip_prefix('/')?;
    let mut node = doc;
    let mut out = String::with_capacity(pointer.len());
    for raw in rest.split('/') {
        let token = raw.replace("~1", "/").replace("~0", "~");
        out.push('/');
        node = match node {
            Value::Object(map) => {
                out.push_str(&escape_token(&token));
                map.get(&token)?
            }
            Value::Array(items) => {
                let i = token.parse::<usize>().ok()?;
                out.push_str(&i.to_string());
                items.get(i)?
            }
            _ => return None,
        };
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::load::parse_bytes;
    use crate::tools::{import, ImportReport};
    use serde_json::json;

    fn files(list: &[(&str, &str)]) -> BTreeMap<String, Value> {
        list.iter().map(|(p, text)| (p.to_string(), parse_bytes(text.as_bytes()).expect("test file parses"))).collect()
    }

    fn import_bundled(root: &str, files: &BTreeMap<String, Value>) -> ImportReport {
        let doc = bundle(root, files).expect("bundles");
        import(&serde_json::to_vec(&doc).expect("serialises")).expect("imports")
    }

    fn no_ref_problems(report: &ImportReport) {
        for p in &report.problems {
            assert!(
                !p.message.contains("external $ref") && !p.message.contains("points at nothing"),
                "unexpected problem: {p:?}"
            );
        }
    }

    fn tool<'a>(report: &'a ImportReport, operation_id: &str) -> &'a crate::tools::ToolDef {
        report
            .tools
            .iter()
            .find(|t| t.operation_id.as_deref() == Some(operation_id))
            .unwrap_or_else(|| panic!("no tool {operation_id} in {:?}", report.tools))
    }

    #[test]
    fn relative_paths_resolve_inside_the_repository() {
        assert_eq!(resolve_path("api/openapi.yaml", "./schemas/pet.yaml").as_deref(), Some("api/schemas/pet.yaml"));
        assert_eq!(resolve_path("api/openapi.yaml", "schemas/pet.yaml").as_deref(), Some("api/schemas/pet.yaml"));
        assert_eq!(resolve_path("api/paths/pets.yaml", "../schemas/pet.yaml").as_deref(), Some("api/schemas/pet.yaml"));
        assert_eq!(resolve_path("openapi.yaml", "pet.yaml").as_deref(), Some("pet.yaml"));
        assert_eq!(resolve_path("api/openapi.yaml", "../common.yaml").as_deref(), Some("common.yaml"));
        assert_eq!(resolve_path("a/b/c.yaml", "./../b/./d.yaml").as_deref(), Some("a/b/d.yaml"));
    }

    #[test]
    fn paths_leaving_the_repository_or_not_relative_are_refused() {
        assert_eq!(resolve_path("openapi.yaml", "../pet.yaml"), None);
        assert_eq!(resolve_path("api/openapi.yaml", "../../pet.yaml"), None);
        assert_eq!(resolve_path("api/openapi.yaml", "schemas/../../../pet.yaml"), None);
        assert_eq!(resolve_path("api/openapi.yaml", "https://example.com/pet.yaml"), None);
        assert_eq!(resolve_path("api/openapi.yaml", "file:///etc/passwd"), None);
        assert_eq!(resolve_path("api/openapi.yaml", "file:pet.yaml"), None);
        assert_eq!(resolve_path("api/openapi.yaml", "//example.com/pet.yaml"), None);
        assert_eq!(resolve_path("api/openapi.yaml", "/schemas/pet.yaml"), None);
        assert_eq!(resolve_path("api/openapi.yaml", ""), None);
        assert_eq!(resolve_path("api/openapi.yaml", "schemas\\pet.yaml"), None);
        assert_eq!(resolve_path("api/openapi.yaml", "schemas%5Cpet.yaml"), None);
        assert_eq!(resolve_path("api/openapi.yaml", "schemas/"), None);
        assert_eq!(resolve_path("api/openapi.yaml", ".."), None);
        assert_eq!(resolve_path("api/openapi.yaml", "pet.yaml?raw=1"), None);
    }

    #[test]
    fn percent_escapes_are_decoded_and_bad_ones_refused() {
        assert_eq!(resolve_path("api/openapi.yaml", "my%20file.yaml").as_deref(), Some("api/my file.yaml"));
        assert_eq!(resolve_path("openapi.yaml", "caf%C3%A9.yaml").as_deref(), Some("café.yaml"));
        assert_eq!(resolve_path("openapi.yaml", "%2E%2E/x.yaml"), None, "an encoded `..` is still `..`");
        assert_eq!(resolve_path("openapi.yaml", "a%2Fb.yaml"), None, "an encoded `/` is refused");
        assert_eq!(resolve_path("openapi.yaml", "bad%FF.yaml"), None, "not UTF-8");
        assert_eq!(resolve_path("openapi.yaml", "nul%00.yaml"), None);
    }

    #[test]
    fn referenced_files_are_distinct_and_in_document_order() {
        let doc = json!({
            "a": {"$ref": "schemas/b.yaml#/B"},
            "list": [{"$ref": "./schemas/a.yaml"}, {"$ref": "schemas/b.yaml#/C"}],
            "local": {"$ref": "#/a"},
            "self": {"$ref": "openapi.yaml#/a"},
            "url": {"$ref": "https://example.com/x.yaml"},
            "escape": {"$ref": "../../x.yaml"},
            "not_a_string": {"$ref": {"$ref": "c.yaml"}},
            "z": {"$ref": "common.yaml#/Z"}
        });
        assert_eq!(
            referenced_files("api/openapi.yaml", &doc),
            vec!["api/schemas/b.yaml", "api/schemas/a.yaml", "api/c.yaml", "api/common.yaml"]
        );
    }

    const ROOT_30: &str = r##"
openapi: 3.0.3
info: {title: Pets, version: "1"}
servers: [{url: "https://api.example.com"}]
paths:
  /pets:
    $ref: paths/pets.yaml
  /pets/{id}:
    get:
      operationId: getPet
      parameters:
        - $ref: "#/components/parameters/Id"
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {$ref: "schemas/pet.yaml#/Pet"}
components:
  parameters:
    Id: {name: id, in: path, required: true, schema: {type: integer}}
  schemas:
    Error:
      type: object
      properties:
        code: {type: integer}
"##;

    const PETS_30: &str = r##"
post:
  operationId: createPet
  requestBody:
    required: true
    content:
      application/json:
        schema: {$ref: "../schemas/pet.yaml#/Pet"}
  responses:
    "201":
      description: created
      content:
        application/json:
          schema: {$ref: "../schemas/pet.yaml#/Pet"}
    default:
      description: error
      content:
        application/json:
          schema: {$ref: "../openapi.yaml#/components/schemas/Error"}
"##;

    const PET_30: &str = r##"
Pet:
  type: object
  required: [name]
  properties:
    name: {type: string}
    tag:
      $ref: "#/Tag"
      description: the pet's tag
Tag:
  type: object
  properties:
    label: {type: string}
"##;

    fn three_files() -> BTreeMap<String, Value> {
        files(&[("api/openapi.yaml", ROOT_30), ("api/paths/pets.yaml", PETS_30), ("api/schemas/pet.yaml", PET_30)])
    }

    #[test]
    fn three_file_document_bundles_and_imports_with_the_other_files_properties() {
        let files = three_files();
        let doc = bundle("api/openapi.yaml", &files).expect("bundles");
        // Refs into other files are local now; the root's own refs are as written.
        assert_eq!(doc.pointer("/paths/~1pets/$ref"), Some(&json!("#/x-flowcp-bundled/0")));
        assert_eq!(
            doc.pointer("/paths/~1pets~1{id}/get/parameters/0/$ref"),
            Some(&json!("#/components/parameters/Id"))
        );
        // pet.yaml's `#/Tag` points into pet.yaml's Tag, and the sibling stays.
        let pet = doc.pointer("/x-flowcp-bundled/1").expect("Pet hoisted");
        assert_eq!(pet["properties"]["tag"], json!({"$ref": "#/x-flowcp-bundled/2", "description": "the pet's tag"}));
        assert_eq!(doc.pointer("/x-flowcp-bundled/2/properties/label"), Some(&json!({"type": "string"})));
        // Pet is hoisted once though referenced three times; the back-ref is a plain pointer.
        assert_eq!(doc.pointer("/x-flowcp-bundled").and_then(Value::as_array).map(Vec::len), Some(3));
        let error_ref = "/x-flowcp-bundled/0/post/responses/default/content/application~1json/schema/$ref";
        assert_eq!(doc.pointer(error_ref), Some(&json!("#/components/schemas/Error")));

        let report = import(&serde_json::to_vec(&doc).expect("serialises")).expect("imports");
        no_ref_problems(&report);
        let create = tool(&report, "createPet").input_schema.to_string();
        assert!(create.contains("\"name\"") && create.contains("\"label\""), "{create}");
        let get = tool(&report, "getPet");
        let output = get.output_schema.as_ref().expect("output schema").to_string();
        assert!(output.contains("\"label\""), "{output}");
    }

    #[test]
    fn cycle_across_two_files_terminates_with_shared_entries() {
        let files = files(&[
            (
                "openapi.yaml",
                r#"
openapi: 3.1.0
info: {title: Tree, version: "1"}
paths:
  /nodes:
    post:
      operationId: addNode
      requestBody:
        content:
          application/json:
            schema: {$ref: "a.yaml#/A"}
      responses: {"204": {description: done}}
"#,
            ),
            ("a.yaml", "A:\n  type: object\n  properties:\n    b: {$ref: 'b.yaml#/B'}\n    me: {$ref: '#/A'}\n"),
            ("b.yaml", "B:\n  type: object\n  properties:\n    a: {$ref: 'a.yaml#/A'}\n"),
        ]);
        let doc = bundle("openapi.yaml", &files).expect("bundles");
        assert_eq!(doc.pointer("/x-flowcp-bundled/0/properties/me/$ref"), Some(&json!("#/x-flowcp-bundled/0")));
        assert_eq!(doc.pointer("/x-flowcp-bundled/0/properties/b/$ref"), Some(&json!("#/x-flowcp-bundled/1")));
        assert_eq!(doc.pointer("/x-flowcp-bundled/1/properties/a/$ref"), Some(&json!("#/x-flowcp-bundled/0")));
        assert_eq!(doc.pointer("/x-flowcp-bundled").and_then(Value::as_array).map(Vec::len), Some(2));
        let report = import_bundled("openapi.yaml", &files);
        no_ref_problems(&report);
        assert_eq!(report.tools.len(), 1);
    }

    #[test]
    fn missing_file_is_named() {
        let mut files = three_files();
        files.remove("api/schemas/pet.yaml");
        let err = bundle("api/openapi.yaml", &files).expect_err("pet.yaml is missing");
        assert_eq!(err, BundleError::Missing("api/schemas/pet.yaml".into()));
        assert_eq!(err.to_string(), "the file api/schemas/pet.yaml, referenced by $ref, is not in the repository");
        assert_eq!(bundle("nowhere.yaml", &files), Err(BundleError::Missing("nowhere.yaml".into())));
    }

    #[test]
    fn missing_pointer_in_a_supplied_file_stays_a_dangling_local_ref() {
        let mut files = three_files();
        files.insert("api/schemas/pet.yaml".into(), json!({"Other": {"type": "string"}}));
        let doc = bundle("api/openapi.yaml", &files).expect("bundles");
        let r = doc.pointer("/x-flowcp-bundled/0/post/requestBody/content/application~1json/schema/$ref");
        assert_eq!(r, Some(&json!("#/x-flowcp-bundled/missing/api~1schemas~1pet.yaml%23~1Pet")));
        let report = import(&serde_json::to_vec(&doc).expect("serialises")).expect("imports");
        assert!(
            report.problems.iter().any(|p| p.message.contains("points at nothing") && p.message.contains("pet.yaml")),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn file_ref_without_fragment_hoists_the_whole_file() {
        let files = files(&[
            (
                "openapi.json",
                r#"{"openapi": "3.0.3", "info": {"title": "T", "version": "1"},
                    "paths": {"/things": {"post": {"operationId": "addThing",
                      "requestBody": {"content": {"application/json": {"schema": {"$ref": "thing.json"}}}},
                      "responses": {"204": {"description": "ok"}}}}}}"#,
            ),
            ("thing.json", r#"{"type": "object", "properties": {"colour": {"type": "string"}}}"#),
        ]);
        let doc = bundle("openapi.json", &files).expect("bundles");
        assert_eq!(doc.pointer("/x-flowcp-bundled/0"), files.get("thing.json"));
        let report = import_bundled("openapi.json", &files);
        no_ref_problems(&report);
        assert!(tool(&report, "addThing").input_schema.to_string().contains("colour"));
    }

    #[test]
    fn unfollowable_refs_and_non_string_refs_are_left_as_written() {
        let files = BTreeMap::from([(
            "openapi.yaml".to_string(),
            json!({"openapi": "3.0.3", "a": {"$ref": "https://example.com/x.yaml"}, "b": {"$ref": 7},
                   "c": {"$ref": "#/a"}, "d": {"$ref": "openapi.yaml#/a"}}),
        )]);
        let doc = bundle("openapi.yaml", &files).expect("bundles");
        assert_eq!(doc["a"]["$ref"], json!("https://example.com/x.yaml"));
        assert_eq!(doc["b"]["$ref"], json!(7));
        assert_eq!(doc["c"]["$ref"], json!("#/a"));
        assert_eq!(doc["d"]["$ref"], json!("#/a"));
        assert!(doc.get(BUNDLE_KEY).is_none(), "nothing bundled, no key");
    }

    #[test]
    fn aliased_pointers_share_one_entry() {
        let files = BTreeMap::from([
            (
                "r.yaml".to_string(),
                json!({"a": {"$ref": "l.yaml#/x/0"}, "b": {"$ref": "l.yaml#/x/+0"}, "c": {"$ref": "l.yaml#/x/00"}}),
            ),
            ("l.yaml".to_string(), json!({"x": [{"type": "string"}]})),
        ]);
        let doc = bundle("r.yaml", &files).expect("bundles");
        assert_eq!(doc[BUNDLE_KEY], json!([{"type": "string"}]));
    }

    #[test]
    fn too_many_distinct_targets_is_an_error() {
        let refs: Vec<Value> = (0..=MAX_HOISTED).map(|i| json!({"$ref": format!("l.json#/{i}")})).collect();
        let files = BTreeMap::from([
            ("r.json".to_string(), json!({"all": refs})),
            ("l.json".to_string(), Value::Array(vec![json!(1); MAX_HOISTED + 1])),
        ]);
        assert_eq!(bundle("r.json", &files), Err(BundleError::TooLarge { limit: MAX_HOISTED }));
    }

    #[test]
    fn nested_targets_copied_past_the_value_limit_is_an_error() {
        // One 5,000-value list reached through 150 distinct pointers of increasing depth: each
        // entry copies the whole list again (750,000 values, from a file of 5,150).
        let mut node = Value::Array(vec![json!(0); 5_000]);
        for _ in 0..150 {
            node = json!({"n": node});
        }
        let refs: Vec<Value> = (0..150).map(|d| json!({"$ref": format!("l.json#{}", "/n".repeat(d))})).collect();
        let files = BTreeMap::from([("r.json".to_string(), json!({"all": refs})), ("l.json".to_string(), node)]);
        assert_eq!(bundle("r.json", &files), Err(BundleError::TooManyValues { limit: MAX_DOCUMENT_VALUES }));
    }

    #[test]
    fn discriminator_values_survive_bundling() {
        let files = files(&[
            (
                "openapi.yaml",
                r#"
openapi: 3.0.3
info: {title: Pets, version: "1"}
paths:
  /pets:
    post:
      operationId: addPet
      requestBody:
        content:
          application/json:
            schema: {$ref: "pets.yaml#/Pet"}
      responses: {"204": {description: ok}}
"#,
            ),
            (
                "pets.yaml",
                r##"
Pet:
  oneOf:
    - $ref: "./cat.yaml"
    - $ref: "#/Dog"
  discriminator:
    propertyName: kind
    mapping:
      cat: "./cat.yaml"
Dog:
  type: object
  properties:
    kind: {type: string}
"##,
            ),
            ("cat.yaml", "type: object\nproperties:\n  kind: {type: string}\n"),
        ]);
        let report = import_bundled("openapi.yaml", &files);
        no_ref_problems(&report);
        let schema = tool(&report, "addPet").input_schema.to_string();
        assert!(schema.contains(r#""const":"cat""#), "{schema}");
        assert!(schema.contains(r#""const":"Dog""#), "{schema}");
    }

    const ROOT_20: &str = r##"
swagger: "2.0"
info: {title: Pets, version: "1"}
host: api.example.com
paths:
  /pets:
    $ref: paths/pets.yaml
  /pets/{id}:
    get:
      operationId: getPet
      parameters:
        - $ref: "parameters.yaml#/PetId"
        - $ref: "#/parameters/Verbose"
      responses:
        "200":
          description: ok
          schema: {$ref: "definitions/pet.yaml#/Pet"}
        "404":
          $ref: "#/responses/NotFound"
parameters:
  Verbose:
    $ref: "parameters.yaml#/Verbose"
responses:
  NotFound:
    $ref: "responses.yaml#/NotFound"
definitions:
  Error:
    type: object
    properties:
      code: {type: integer}
"##;

    const PETS_20: &str = r##"
post:
  operationId: createPet
  parameters:
    - in: body
      name: body
      required: true
      schema: {$ref: "../definitions/pet.yaml#/Pet"}
    - $ref: "../parameters.yaml#/DryRun"
  responses:
    "201":
      $ref: "../responses.yaml#/Created"
    default:
      description: error
      schema: {$ref: "../swagger.yaml#/definitions/Error"}
"##;

    const PET_20: &str = r##"
Pet:
  type: object
  properties:
    name: {type: string}
    tag: {$ref: "#/Tag"}
    error: {$ref: "../swagger.yaml#/definitions/Error"}
Tag:
  type: object
  properties:
    label: {type: string}
"##;

    const PARAMS_20: &str = r##"
PetId: {name: id, in: path, required: true, type: integer, format: int64}
Verbose: {name: verbose, in: query, type: boolean}
DryRun: {name: dry_run, in: query, type: array, items: {type: string}, collectionFormat: multi}
"##;

    const RESPONSES_20: &str = r##"
NotFound:
  description: not found
  schema: {$ref: "swagger.yaml#/definitions/Error"}
Created:
  description: created
  schema: {$ref: "definitions/pet.yaml#/Pet"}
"##;

    #[test]
    fn swagger_2_names_sharing_one_bundled_response_are_charged_to_the_import() {
        // Each response name is converted from the one bundled node (a copy each): 100 copies
        // of a 20,000-word enum are past the import's output budget, which must say so.
        let words: Vec<Value> = (0..20_000).map(|i| json!(format!("v{i:05}"))).collect();
        let responses: Map<String, Value> =
            (0..100).map(|i| (format!("R{i}"), json!({"$ref": "big.json#/Big"}))).collect();
        let files = BTreeMap::from([
            (
                "swagger.json".to_string(),
                json!({"swagger": "2.0", "info": {"title": "T", "version": "1"}, "paths": {}, "responses": responses}),
            ),
            ("big.json".to_string(), json!({"Big": {"description": "d", "schema": {"type": "string", "enum": words}}})),
        ]);
        let doc = bundle("swagger.json", &files).expect("bundles");
        let bytes = serde_json::to_vec(&doc).expect("serialises");
        assert!(matches!(import(&bytes), Err(crate::openapi::LoadError::OutputTooLarge { .. })));
    }

    #[test]
    fn swagger_2_multi_file_document_imports_with_properties_resolved() {
        let files = files(&[
            ("swagger.yaml", ROOT_20),
            ("paths/pets.yaml", PETS_20),
            ("definitions/pet.yaml", PET_20),
            ("parameters.yaml", PARAMS_20),
            ("responses.yaml", RESPONSES_20),
        ]);
        let report = import_bundled("swagger.yaml", &files);
        no_ref_problems(&report);
        assert_eq!(report.tools.len(), 2, "{:?}", report.problems);

        let create = tool(&report, "createPet");
        let input = create.input_schema.to_string();
        assert!(input.contains("\"name\"") && input.contains("\"label\"") && input.contains("\"code\""), "{input}");
        let dry_run = create.request.params.iter().find(|p| p.wire == "dry_run").expect("dry_run parameter");
        assert!(dry_run.explode, "collectionFormat multi is converted");
        let output = create.output_schema.as_ref().expect("201 output schema").to_string();
        assert!(output.contains("\"label\""), "{output}");

        let get = tool(&report, "getPet");
        let wires: Vec<&str> = get.request.params.iter().map(|p| p.wire.as_str()).collect();
        assert_eq!(wires, vec!["id", "verbose"]);
        let id = get.input_schema.pointer("/properties/id/type");
        assert_eq!(id, Some(&json!("integer")), "{}", get.input_schema);
        let output = get.output_schema.as_ref().expect("200 output schema").to_string();
        assert!(output.contains("\"label\""), "{output}");
    }

    #[test]
    fn a_large_node_referenced_at_many_nested_pointers_is_charged_by_size() {
        // `l.json` nests a 3 MB string eight levels deep; the root references every level, so
        // each level's copy holds the string again: about 24 MB, past the document limit,
        // although it is a handful of values.
        let mut node = json!({ "s": "x".repeat(3 << 20) });
        for _ in 0..8 {
            node = json!({ "n": node });
        }
        let mut props = serde_json::Map::new();
        for depth in 1..=8 {
            props.insert(format!("p{depth}"), json!({ "$ref": format!("l.json#{}", "/n".repeat(depth)) }));
        }
        let root = json!({ "openapi": "3.0.3", "info": { "title": "t", "version": "1" }, "paths": {},
            "components": { "schemas": { "S": { "type": "object", "properties": props } } } });
        let files = BTreeMap::from([("r.json".to_string(), root), ("l.json".to_string(), node)]);
        assert_eq!(bundle("r.json", &files), Err(BundleError::TooManyBytes { limit: MAX_DOCUMENT_BYTES }));
    }
}
