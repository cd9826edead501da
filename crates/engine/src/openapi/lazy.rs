//! A large JSON document read piece by piece (issue 18): the text is checked and split into
//! members without building its tree, and a part (a path item, a component) is parsed only
//! when the import reaches it. Parts parsed for one batch of operations live in that batch's
//! arena and are dropped with it, so an import holds the bytes, an index of member names and
//! one batch's parts, whatever the document's size.
//!
//! Invariant: what a pointer names is exactly what it names in the tree `serde_json` would
//! build (with `preserve_order`): members in document order, a repeated key keeping its first
//! position and its last value.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use typed_arena::Arena;

use super::pointer::{unescape_token, walk, Lookup};

/// Members one object may have to be indexed (the largest real APIs have about 1,000 paths and
/// 2,000 schemas; a generated 10,000-operation document 5,000 paths): a document past it is
/// read whole, which bounds it by its values.
pub const MAX_MEMBERS: usize = 100_000;

/// An object's members as raw JSON text, in document order.
#[derive(Default)]
pub struct RawObject<'doc> {
    entries: Vec<(String, &'doc RawValue)>,
    index: HashMap<String, usize>,
}

impl<'doc> RawObject<'doc> {
    /// Split one JSON object's text into its members (the whole text is checked as JSON).
    pub fn parse(text: &'doc str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn get(&self, key: &str) -> Option<&'doc RawValue> {
        self.index.get(key).and_then(|&i| self.entries.get(i)).map(|(_, v)| *v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &'doc RawValue)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_str(), *v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at `i` in document order.
    pub fn entry(&self, i: usize) -> Option<(&str, &'doc RawValue)> {
        self.entries.get(i).map(|(k, v)| (k.as_str(), *v))
    }
}

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = RawObject::default();
                while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                    if out.entries.len() >= MAX_MEMBERS {
                        return Err(serde::de::Error::custom(format!("more than {MAX_MEMBERS} members")));
                    }
                    match out.index.get(&k) {
                        Some(&i) => {
                            if let Some(slot) = out.entries.get_mut(i) {
                                slot.1 = v;
                            }
                        }
                        None => {
                            out.index.insert(k.clone(), out.entries.len());
                            out.entries.push((k, v));
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(Members)
    }
}

/// The bytes of JSON text outside its strings (the structure: brackets, braces, commas,
/// colons and the characters of numbers and literals).
pub fn structure(text: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let (mut in_string, mut escaped) = (false, false);
    text.iter().copied().filter(move |&b| {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            return false;
        }
        if b == b'"' {
            in_string = true;
            return false;
        }
        true
    })
}

/// How many values JSON text holds, when at most `max`: a scan that counts the characters that
/// start one (`[`, `{`, `,` outside strings: every value but the first follows one of them) and
/// stops past `max`. An upper bound for valid JSON; invalid JSON fails to parse anyway.
pub fn json_values_within(text: &[u8], max: usize) -> Option<usize> {
    let mut count = 1usize;
    for b in structure(text) {
        if matches!(b, b'[' | b'{' | b',') {
            count += 1;
            if count > max {
                return None;
            }
        }
    }
    (count <= max).then_some(count)
}

/// The first significant byte of a raw value: `{`, `[`, `"`, a digit, `t`, `f` or `n`.
pub fn kind_of(raw: &RawValue) -> u8 {
    raw.get().bytes().find(|b| !b.is_ascii_whitespace()).unwrap_or(b'n')
}

/// An import may parse its document's parts this many times over (each batch parses what its
/// operations reach; the generated 10,000-operation document takes about 2x), and at least
/// [`PARSE_WORK_MIN`] bytes.
pub const PARSE_WORK_FACTOR: usize = 8;
pub const PARSE_WORK_MIN: usize = 8 << 20;

/// Members indexed below the root on the way to a part: `/components`, then
/// `/components/schemas`; deeper pointers parse the part they name (`/components/schemas/X`).
const INDEXED_LEVELS: usize = 2;

/// A JSON document whose root is an object, read piece by piece.
pub struct LazyDoc<'doc> {
    whole: &'doc RawValue,
    root: RawObject<'doc>,
    /// Bytes of parts parsed so far, by every batch, and how many may be: the same large part
    /// reached from every batch is parsed once per batch, so the work is bounded per import.
    parsed: Cell<usize>,
    parse_limit: usize,
    /// Objects indexed below the root, by their (unescaped) tokens; the members they hold
    /// together; whether one could not be indexed (the import must stop).
    objects: RefCell<HashMap<Vec<String>, Rc<RawObject<'doc>>>>,
    indexed: Cell<usize>,
    broken: Cell<bool>,
}

/// Members the indexes of one import may hold together (about 100 bytes each).
pub const MAX_INDEXED_MEMBERS: usize = 300_000;

impl<'doc> LazyDoc<'doc> {
    pub fn parse(text: &'doc str) -> Result<Self, serde_json::Error> {
        Ok(LazyDoc {
            whole: serde_json::from_str(text)?,
            root: RawObject::parse(text)?,
            parsed: Cell::new(0),
            parse_limit: PARSE_WORK_FACTOR.saturating_mul(text.len()).max(PARSE_WORK_MIN),
            objects: RefCell::new(HashMap::new()),
            indexed: Cell::new(0),
            broken: Cell::new(false),
        })
    }

    /// True once an object on the way to a part could not be indexed (over [`MAX_MEMBERS`], or
    /// the import's [`MAX_INDEXED_MEMBERS`]): the import must stop.
    pub fn is_broken(&self) -> bool {
        self.broken.get()
    }

    /// True once the import parsed more than its work limit ([`PARSE_WORK_FACTOR`] times the
    /// document): it must stop.
    pub fn is_over_work(&self) -> bool {
        self.parsed.get() > self.parse_limit
    }

    /// Bytes of parts the import may parse.
    pub fn parse_limit(&self) -> usize {
        self.parse_limit
    }

    pub fn root(&self) -> &RawObject<'doc> {
        &self.root
    }

    /// The object at `path` (at most [`INDEXED_LEVELS`] tokens), indexed once; its scan is
    /// charged to the parsing work and its members to [`MAX_INDEXED_MEMBERS`].
    fn object(&self, path: &[String], raw: &'doc RawValue) -> Option<Rc<RawObject<'doc>>> {
        if let Some(o) = self.objects.borrow().get(path) {
            return Some(o.clone());
        }
        self.parsed.set(self.parsed.get().saturating_add(raw.get().len()));
        let o = RawObject::parse(raw.get()).ok().filter(|o| self.indexed.get() + o.len() <= MAX_INDEXED_MEMBERS);
        let Some(o) = o.filter(|_| !self.is_over_work()) else {
            self.broken.set(true);
            return None;
        };
        self.indexed.set(self.indexed.get() + o.len());
        let o = Rc::new(o);
        self.objects.borrow_mut().insert(path.to_vec(), o.clone());
        Some(o)
    }
}

/// The parts of a [`LazyDoc`] parsed for one batch, held in the batch's arena.
pub struct Parts<'a, 'doc> {
    doc: &'a LazyDoc<'doc>,
    arena: &'a Arena<Value>,
    /// Parts parsed in this batch, by their (unescaped) tokens.
    parsed: RefCell<HashMap<Vec<String>, &'a Value>>,
    /// Values the batch may still parse (a document's values cost about 80 bytes each).
    values_left: Cell<usize>,
    over: Cell<bool>,
}

impl<'a, 'doc> Parts<'a, 'doc> {
    pub fn new(doc: &'a LazyDoc<'doc>, arena: &'a Arena<Value>, values: usize) -> Self {
        Parts {
            doc,
            arena,
            parsed: RefCell::new(HashMap::new()),
            values_left: Cell::new(values),
            over: Cell::new(false),
        }
    }

    /// A part parsed into the arena, charged to the batch's value budget (`None`, and the
    /// batch is over, past it).
    pub fn parse(&self, raw: &'doc RawValue) -> Option<&'a Value> {
        let left = self.values_left.get();
        let n = json_values_within(raw.get().as_bytes(), left)?;
        self.values_left.set(left - n);
        let doc = self.doc;
        doc.parsed.set(doc.parsed.get().saturating_add(raw.get().len()));
        if doc.is_over_work() {
            return None;
        }
        let v: Value = serde_json::from_str(raw.get()).ok()?;
        Some(self.arena.alloc(v))
    }

    /// True once a part did not fit the batch's value budget: the import must stop.
    pub fn is_over(&self) -> bool {
        self.over.get()
    }

    fn parse_at(&self, path: &[String], raw: &'doc RawValue) -> Option<&'a Value> {
        if let Some(v) = self.parsed.borrow().get(path) {
            return Some(v);
        }
        let v = self.parse(raw);
        if v.is_none() {
            self.over.set(true);
        }
        let v = v?;
        self.parsed.borrow_mut().insert(path.to_vec(), v);
        Some(v)
    }
}

impl<'doc> Lookup for Parts<'_, 'doc> {
    fn pointer(&self, pointer: &str) -> Option<&Value> {
        if self.over.get() || self.doc.is_broken() {
            self.over.set(true);
            return None;
        }
        if pointer.is_empty() {
            return self.parse_at(&[], self.doc.whole);
        }
        let rest = pointer.strip_prefix('/')?;
        let mut object: Option<Rc<RawObject<'doc>>> = None;
        // The tokens read so far, unescaped (the key of what is indexed or parsed), and the
        // length of the pointer they were written as.
        let (mut path, mut end) = (Vec::new(), 0usize);
        let mut tokens = rest.split('/').peekable();
        while let Some(raw_token) = tokens.next() {
            let token = unescape_token(raw_token);
            let member = match &object {
                None => self.doc.root.get(&token)?,
                Some(o) => o.get(&token)?,
            };
            end += raw_token.len() + 1;
            path.push(token);
            let last = tokens.peek().is_none();
            if !last && path.len() <= INDEXED_LEVELS && kind_of(member) == b'{' {
                match self.doc.object(&path, member) {
                    Some(o) => object = Some(o),
                    None => {
                        self.over.set(true);
                        return None;
                    }
                }
                continue;
            }
            let part = self.parse_at(&path, member)?;
            return walk(part, pointer.get(end..).unwrap_or(""));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn every_pointer(v: &Value, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    every_pointer(c, format!("{at}/{}", super::super::escape_token(k)), out)
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    every_pointer(c, format!("{at}/{i}"), out)
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_pointer_names_what_it_names_in_the_tree() {
        // Repeated keys (first position, last value), escapes in keys, arrays, scalars.
        let text = r##"{"paths": {"/a/{x}": {"get": {"operationId": "a"}}, "/b~c": {"$ref": "#/components/pathItems/P"}},
            "components": {"schemas": {"S": {"type": "object", "properties": {"n": {"type": "integer"}}}, "S": {"type": "string"}, "T\u0041": [1, {"k": null}]},
            "pathItems": {"P": {"post": {}}}}, "info": {"title": "t"}, "x": [[1, 2], {"y": true}], "z": 3}"##;
        let tree: Value = serde_json::from_str(text).unwrap();
        let doc = LazyDoc::parse(text).unwrap();
        let mut pointers = Vec::new();
        every_pointer(&tree, String::new(), &mut pointers);
        let arena = Arena::new();
        let parts = Parts::new(&doc, &arena, 1_000);
        for p in &pointers {
            assert_eq!(Lookup::pointer(&parts, p), walk(&tree, p), "{p:?}");
        }
        for missing in ["/nope", "/components/schemas/U", "/components/schemas/S/properties/m", "/x/9", "/z/0", "x"] {
            assert_eq!(Lookup::pointer(&parts, missing), None, "{missing}");
        }
        let keys: Vec<&str> = doc.root().iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["paths", "components", "info", "x", "z"]);
        assert_eq!(Lookup::pointer(&parts, "/components/schemas/S"), Some(&json!({"type": "string"})));
    }

    #[test]
    fn a_batch_parses_no_more_values_than_it_may() {
        let text = r#"{"components": {"schemas": {"Big": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "Small": {"a": 1}}}}"#;
        let doc = LazyDoc::parse(text).unwrap();
        let arena = Arena::new();
        let parts = Parts::new(&doc, &arena, 5);
        assert!(Lookup::pointer(&parts, "/components/schemas/Small").is_some());
        assert!(!parts.is_over());
        assert_eq!(Lookup::pointer(&parts, "/components/schemas/Big"), None);
        assert!(parts.is_over(), "a part past the budget stops the batch");
        assert_eq!(Lookup::pointer(&parts, "/components/schemas/Small"), None, "and every later lookup");
    }

    #[test]
    fn a_ref_too_long_names_nothing_in_either_reader() {
        use super::super::pointer::{RefTarget, Resolver};
        let text = r#"{"a": {"b": 1}}"#;
        let tree: Value = serde_json::from_str(text).unwrap();
        let doc = LazyDoc::parse(text).unwrap();
        let arena = Arena::new();
        let parts = Parts::new(&doc, &arena, 1_000);
        let long = format!("#{}", "/".repeat(10_000_000));
        for r in [Resolver::new(&tree), Resolver::Parts(&parts)] {
            assert!(matches!(r.lookup(&long), RefTarget::Missing), "{r:?}");
            assert!(matches!(r.lookup("#/a/b"), RefTarget::Found(_)), "{r:?}");
        }
    }

    #[test]
    fn parsing_the_same_part_again_and_again_stops_at_the_work_limit() {
        let big = "x".repeat(PARSE_WORK_MIN / 4);
        let text = format!(r#"{{"h": ["{big}"], "s": {{}}}}"#);
        let doc = LazyDoc::parse(&text).unwrap();
        for round in 0.. {
            // A batch of its own each time, as the import's batches are.
            let arena = Arena::new();
            let parts = Parts::new(&doc, &arena, 1_000);
            if Lookup::pointer(&parts, "/h/0").is_none() {
                assert!(doc.is_over_work() && round > 2, "stopped at round {round}");
                break;
            }
            assert!(round < 100, "never stopped");
        }
    }

    #[test]
    fn an_object_is_indexed_once_however_its_pointer_is_spelled_and_one_too_large_stops_the_import() {
        let members: Vec<String> = (0..=MAX_MEMBERS).map(|i| format!("\"k{i}\":0")).collect();
        let text = format!(r#"{{"x-~~": {{"a": {{"b": 1}}}}, "x-big": {{{}}}}}"#, members.join(","));
        let doc = LazyDoc::parse(&text).unwrap();
        let arena = Arena::new();
        let parts = Parts::new(&doc, &arena, 1_000);
        // "~~", "~0~" and "~~0" all unescape to "~~".
        for p in ["/x-~~/a/b", "/x-~0~/a/b", "/x-~~0/a/b"] {
            assert_eq!(Lookup::pointer(&parts, p), Some(&json!(1)), "{p}");
        }
        assert_eq!(doc.objects.borrow().len(), 2, "/x-~~ and /x-~~/a, once each");
        assert_eq!(Lookup::pointer(&parts, "/x-big/k0"), None);
        assert!(doc.is_broken() && parts.is_over(), "an object past MAX_MEMBERS stops the import");
        assert_eq!(Lookup::pointer(&parts, "/x-~~/a/b"), None, "and every later lookup");
    }

    #[test]
    fn bad_json_anywhere_is_an_error_even_in_parts_never_read() {
        assert!(LazyDoc::parse(r#"{"a": {"b": [1, 2,]}}"#).is_err());
        assert!(LazyDoc::parse(r#"[1]"#).is_err());
    }
}
