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

/// Outcome of looking up a `$ref`.
#[derive(Debug)]
pub enum RefTarget<'a> {
    Found(&'a Value),
    /// Not a local pointer: not followed.
    External,
    /// A local pointer that names nothing.
    Missing,
}

/// Resolves local `$ref` strings against one document.
#[derive(Clone, Copy, Debug)]
pub struct Resolver<'a> {
    root: &'a Value,
}

impl<'a> Resolver<'a> {
    pub fn new(root: &'a Value) -> Self {
        Resolver { root }
    }

    pub fn root(&self) -> &'a Value {
        self.root
    }

    /// Look a `$ref` string up.
    pub fn lookup(&self, reference: &str) -> RefTarget<'a> {
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
        if pointer.is_empty() {
            return Some(self.root);
        }
        let rest = pointer.strip_prefix('/')?;
        let mut node = self.root;
        for raw in rest.split('/') {
            let token = raw.replace("~1", "/").replace("~0", "~");
            node = match node {
                Value::Object(map) => map.get(&token)?,
                Value::Array(items) => items.get(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
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
