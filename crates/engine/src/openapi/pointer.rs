//! Local JSON pointers: escaping for problem locations and resolution of `#/...` refs.
//!
//! Invariant: only fragment pointers into the same document are resolved; anything else
//! (a relative file, a URL) is reported as external and never fetched.

use percent_encoding::percent_decode_str;
use serde_json::Value;

/// Escape one reference token (RFC 6901): `~` -> `~0`, `/` -> `~1`.
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The node `pointer` (RFC 6901, `""` is `node` itself) names below `node`.
pub fn walk<'a>(node: &'a Value, pointer: &str) -> Option<&'a Value> {
    if pointer.is_empty() {
        return Some(node);
    }
    let mut node = node;
    for raw in pointer.strip_prefix('/')?.split('/') {
        node = match node {
            Value::Object(map) => map.get(&unescape_token(raw))?,
            Value::Array(items) => items.get(unescape_token(raw).parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Unescape one reference token (RFC 6901).
pub fn unescape_token(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Outcome of looking up a `$ref`.
#[derive(Debug)]
pub enum RefTarget<'a> {
    Found(&'a Value),
    /// Not a local pointer: not followed.
    External,
    /// A local pointer that names nothing.
    Missing,
}

/// Longest `$ref` looked up (schema refs stop at 1,024 characters; a path item ref may name a
/// long path). A longer one names nothing: its tokens are never split.
pub const MAX_POINTER_CHARS: usize = 8_192;

/// Where a [`Resolver`] finds what a pointer names.
pub trait Lookup {
    /// RFC 6901 pointer lookup (`""` is the root).
    fn pointer(&self, pointer: &str) -> Option<&Value>;
}

/// Resolves local `$ref` strings against one document: a parsed tree, or a large JSON
/// document parsed piece by piece as pointers name its parts ([`super::lazy`]).
#[derive(Clone, Copy)]
pub enum Resolver<'a> {
    Tree(&'a Value),
    Parts(&'a (dyn Lookup + 'a)),
}

impl std::fmt::Debug for Resolver<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resolver::Tree(_) => "Resolver::Tree",
            Resolver::Parts(_) => "Resolver::Parts",
        })
    }
}

impl<'a> Resolver<'a> {
    pub fn new(root: &'a Value) -> Self {
        Resolver::Tree(root)
    }

    /// Look a `$ref` string up (one longer than [`MAX_POINTER_CHARS`] names nothing).
    pub fn lookup(&self, reference: &str) -> RefTarget<'a> {
        if reference.len() > MAX_POINTER_CHARS {
            return RefTarget::Missing;
        }
        let Some(fragment) = reference.strip_prefix('#') else {
            return RefTarget::External;
        };
        let decoded = percent_decode_str(fragment).decode_utf8_lossy();
        match self.pointer(&decoded) {
            Some(v) => RefTarget::Found(v),
            None => RefTarget::Missing,
        }
    }

    /// RFC 6901 pointer lookup (`""` is the root).
    pub fn pointer(&self, pointer: &str) -> Option<&'a Value> {
        match self {
            Resolver::Tree(root) => walk(root, pointer),
            Resolver::Parts(parts) => parts.pointer(pointer),
        }
    }

    /// Follow a chain of `$ref` objects (a ref to a ref ...) up to `limit` hops.
    /// Returns the final node and the last ref string followed, or why it stopped.
    pub fn deref_chain(&self, node: &'a Value, limit: usize) -> Result<(&'a Value, Option<String>), String> {
        let mut current = node;
        let mut last = None;
        for _ in 0..limit {
            let Some(r) = current.get("$ref").and_then(Value::as_str) else {
                return Ok((current, last));
            };
            match self.lookup(r) {
                RefTarget::Found(v) => {
                    last = Some(r.to_string());
                    current = v;
                }
                RefTarget::External => return Err(format!("external $ref {r:?} is not followed")),
                RefTarget::Missing => return Err(format!("$ref {r:?} points at nothing")),
            }
        }
        Err(format!("$ref chain longer than {limit} hops (a cycle?)"))
    }
}
