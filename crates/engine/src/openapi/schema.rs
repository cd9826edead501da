//! OpenAPI schema objects -> self-contained JSON Schema 2020-12 for MCP.
//!
//! What it does: inlines local `$ref`s (a ref already being expanded is cut into a permissive
//! schema with a description; total ref depth and output size are bounded), merges `allOf`,
//! keeps `oneOf`/`anyOf` and turns a `discriminator` into a `const` on each branch, turns
//! `nullable`/`x-nullable` into type arrays, boolean `exclusiveMinimum`/`exclusiveMaximum`
//! into numbers, `example` into `examples`, 2.0 `type: file` into a binary string, and drops
//! OpenAPI-only keywords (`discriminator`, `xml`, `externalDocs`, `x-*`).
//!
//! Invariants: the output never contains `$ref` or `nullable` in a schema position;
//! recursion is bounded by [`MAX_SCHEMA_DEPTH`]; work is bounded by a node budget per call;
//! bytes are bounded by the import's [`Ledger`], charged for every node and every keyword
//! value copied (an `enum` inlined a thousand times is charged a thousand times).
//!
//! A `$ref` expanded a second time in the same situation (same mode, depth and open refs) is
//! taken from the ledger's memo instead of being normalised again: same output, same
//! warnings, charged the same bytes and nodes.

use serde_json::{json, Map, Value};

use super::ledger::{Ledger, Memo, MemoKey, NODE_BYTES};
use super::pointer::{RefTarget, Resolver};

/// Deepest structural nesting produced (counting inlined refs).
pub const MAX_SCHEMA_DEPTH: usize = 32;
/// How many different refs may be open at once (a chain of inlined refs).
pub const MAX_REF_DEPTH: usize = 12;
/// Schema nodes produced per `normalise` call before the rest is cut.
pub const DEFAULT_NODE_BUDGET: usize = 20_000;

/// Output schemas keep descriptions and examples only this deep (they are for structure;
/// the model reads the data itself).
pub const OUTPUT_DOC_DEPTH: usize = 1;
/// Longest description kept inside an output schema (characters).
pub const MAX_OUTPUT_DESCRIPTION_CHARS: usize = 200;
/// Longest description kept inside a schema (characters).
pub const MAX_DESCRIPTION_CHARS: usize = 600;

/// Warnings kept per normalised schema (the rest are dropped: one is enough to act on).
const MAX_WARNINGS: usize = 20;
/// Longest `$ref` followed; longer ones are treated as unresolvable.
pub const MAX_REF_CHARS: usize = 1_024;
/// Names kept from one `required` list (merging lists compares names pairwise).
const MAX_REQUIRED: usize = 1_000;
/// Longest `discriminator.propertyName` applied.
const MAX_DISCRIMINATOR_CHARS: usize = 128;

fn clip(s: &str, max: usize) -> String {
    if s.chars().take(max + 1).count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Which side of the API the schema describes: input drops `readOnly` properties, output
/// drops `writeOnly` ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaMode {
    Input,
    Output,
}

/// Normalises schemas from one document. Collects warnings as messages; the caller knows
/// which JSON pointer they belong to.
pub struct SchemaNormaliser<'a> {
    resolver: Resolver<'a>,
    mode: SchemaMode,
    stack: Vec<String>,
    budget: usize,
    budget_reported: bool,
    ledger: &'a Ledger,
    /// How many times a node or byte budget cut the output (an expansion that saw a cut
    /// depends on what was left, so it is not memoised).
    cuts: usize,
    pub warnings: Vec<String>,
}

pub(crate) const SCHEMA_MAP_KEYS: &[&str] = &["properties", "patternProperties", "dependentSchemas"];
pub(crate) const SCHEMA_LIST_KEYS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
pub(crate) const SCHEMA_ONE_KEYS: &[&str] = &[
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contentSchema",
];
/// Keywords an output schema does not carry: output schemas describe and guide, they do not
/// police. Strict clients reject a whole call whose result breaks any constraint, and real APIs
/// break them all the time (a documented-required field missing, a value outside its `enum`, a
/// date in another `format`), so only structure (`type`, `properties`, `items`,
/// `additionalProperties` as a schema, `anyOf`/`allOf`) and documentation are kept.
const OUTPUT_DROPPED_KEYS: &[&str] = &[
    "required",
    "enum",
    "const",
    "format",
    "pattern",
    "patternProperties",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "minContains",
    "maxContains",
    "contains",
    "dependentRequired",
    "dependentSchemas",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contentSchema",
    "contentEncoding",
    "contentMediaType",
];

const DROPPED_KEYS: &[&str] = &[
    "nullable",
    "x-nullable",
    "discriminator",
    "xml",
    "externalDocs",
    "$schema",
    "$id",
    "$defs",
    "definitions",
    "$anchor",
    "$dynamicAnchor",
    "$dynamicRef",
    "$comment",
    "$vocabulary",
    "example",
    "additionalItems",
];

impl<'a> SchemaNormaliser<'a> {
    pub fn new(resolver: Resolver<'a>, mode: SchemaMode, ledger: &'a Ledger) -> Self {
        SchemaNormaliser {
            resolver,
            mode,
            stack: Vec::new(),
            budget: DEFAULT_NODE_BUDGET,
            budget_reported: false,
            ledger,
            cuts: 0,
            warnings: Vec::new(),
        }
    }

    /// Keep a warning, clipped, up to [`MAX_WARNINGS`].
    fn warn(&mut self, message: impl Into<String>) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(clip(&message.into(), 300));
        }
    }

    /// Charge `bytes` to the import; on refusal the output is cut (and the import fails).
    fn charge(&mut self, bytes: usize) -> bool {
        let ok = self.ledger.charge(bytes);
        if !ok {
            self.cuts += 1;
        }
        ok
    }

    /// Charge a copy of `v`, then make it.
    fn copy(&mut self, v: &Value) -> Option<Value> {
        if self.ledger.charge_value(v) {
            Some(v.clone())
        } else {
            self.cuts += 1;
            None
        }
    }

    /// Use a different node budget for the following calls.
    pub fn with_budget(mut self, budget: usize) -> Self {
        self.budget = budget;
        self
    }

    /// Normalise one schema (its own node budget).
    pub fn normalise(&mut self, schema: &Value) -> Value {
        self.stack.clear();
        self.norm(schema, 0)
    }

    /// Normalise with a fresh budget of `budget` nodes.
    pub fn normalise_with_budget(&mut self, schema: &Value, budget: usize) -> Value {
        self.budget = budget;
        self.budget_reported = false;
        self.normalise(schema)
    }

    fn norm(&mut self, schema: &Value, depth: usize) -> Value {
        // Every node produced is charged, placeholders and boolean schemas included.
        if !self.charge(NODE_BYTES) {
            return Value::Bool(true);
        }
        let map = match schema {
            Value::Bool(b) => return Value::Bool(*b),
            Value::Object(map) => map,
            other => {
                self.warn(format!(
                    "a schema must be an object or a boolean, found {}; accepted as any value",
                    super::load::type_name(other)
                ));
                return json!({});
            }
        };
        if depth >= MAX_SCHEMA_DEPTH {
            return json!({"description": "Nested too deeply; not described further."});
        }
        if self.budget == 0 {
            self.cuts += 1;
            if !self.budget_reported {
                self.budget_reported = true;
                self.warn("schema too large; the rest was cut");
            }
            return json!({"description": "Schema too large; not described further."});
        }
        self.budget -= 1;
        if let Some(r) = map.get("$ref").and_then(Value::as_str) {
            return self.norm_ref(r, map, depth);
        }
        let mut out = Map::new();
        for (k, v) in map {
            self.norm_keyword(k, v, map, &mut out, depth);
        }
        self.finish_object(map, &mut out);
        Value::Object(out)
    }

    fn norm_keyword(
        &mut self,
        k: &str,
        v: &Value,
        map: &Map<String, Value>,
        out: &mut Map<String, Value>,
        depth: usize,
    ) {
        if self.mode == SchemaMode::Output
            && depth > OUTPUT_DOC_DEPTH
            && matches!(k, "description" | "title" | "examples" | "example")
        {
            return;
        }
        if self.mode == SchemaMode::Output {
            if OUTPUT_DROPPED_KEYS.contains(&k) || (k == "additionalProperties" && !v.is_object()) {
                return;
            }
            if k == "oneOf" {
                // Without `required` and `const`, branches overlap: exactly-one would fail
                // where any-one describes the answer.
                if let Value::Array(items) = v {
                    let list = Value::Array(self.norm_list(items, depth));
                    match out.get_mut("anyOf") {
                        Some(_) => {
                            let all = out.entry("allOf").or_insert_with(|| json!([]));
                            if let Value::Array(all) = all {
                                all.push(json!({ "anyOf": list }));
                            }
                        }
                        None => {
                            out.insert("anyOf".into(), list);
                        }
                    }
                }
                return;
            }
        }
        if k == "description" {
            if let Value::String(d) = v {
                let max = match self.mode {
                    SchemaMode::Input => MAX_DESCRIPTION_CHARS,
                    SchemaMode::Output => MAX_OUTPUT_DESCRIPTION_CHARS,
                };
                let d = clip(d, max);
                if self.charge(d.len() + k.len()) {
                    out.insert(k.into(), Value::String(d));
                }
                return;
            }
        }
        if DROPPED_KEYS.contains(&k) || k.starts_with("x-") {
            if k == "example" && !map.contains_key("examples") {
                if let Some(v) = self.copy(v) {
                    out.insert("examples".into(), Value::Array(vec![v]));
                }
            }
            return;
        }
        if SCHEMA_MAP_KEYS.contains(&k) {
            if let Value::Object(props) = v {
                let mut m = Map::new();
                for (pk, pv) in props {
                    if self.ledger.is_over() {
                        break;
                    }
                    let n = self.norm(pv, depth + 1);
                    if k == "properties" && self.hidden_in_mode(&n) {
                        continue;
                    }
                    if !self.charge(pk.len() + 4) {
                        break;
                    }
                    m.insert(pk.clone(), n);
                }
                out.insert(k.into(), Value::Object(m));
            } else {
                self.warn(format!("`{k}` must be an object; ignored"));
            }
            return;
        }
        if SCHEMA_LIST_KEYS.contains(&k) {
            if let Value::Array(items) = v {
                let list = self.norm_list(items, depth);
                out.insert(k.into(), Value::Array(list));
            } else {
                self.warn(format!("`{k}` must be a list; ignored"));
            }
            return;
        }
        if SCHEMA_ONE_KEYS.contains(&k) {
            out.insert(k.into(), self.norm(v, depth + 1));
            return;
        }
        match k {
            "items" => match v {
                // Draft-4 style tuple validation.
                Value::Array(items) => {
                    let list = self.norm_list(items, depth);
                    out.insert("prefixItems".into(), Value::Array(list));
                }
                _ => {
                    out.insert("items".into(), self.norm(v, depth + 1));
                }
            },
            "type" => match v {
                Value::String(t) if t == "file" => {
                    out.insert("type".into(), json!("string"));
                    out.insert("format".into(), json!("binary"));
                }
                Value::String(_) => {
                    out.insert("type".into(), v.clone());
                }
                Value::Array(ts) if ts.iter().all(Value::is_string) && !ts.is_empty() => {
                    out.insert("type".into(), v.clone());
                }
                _ => self.warn("`type` must be a string or a list of strings; ignored"),
            },
            "required" => {
                // Swagger-style `required: true` on a property schema is meaningless here.
                if let Value::Array(names) = v {
                    let names =
                        Value::Array(names.iter().filter(|n| n.is_string()).take(MAX_REQUIRED).cloned().collect());
                    if self.ledger.charge_value(&names) {
                        out.insert("required".into(), names);
                    } else {
                        self.cuts += 1;
                    }
                }
            }
            "exclusiveMinimum" | "exclusiveMaximum" => match v {
                Value::Number(_) => {
                    out.insert(k.into(), v.clone());
                }
                Value::Bool(true) => {
                    let bound = if k == "exclusiveMinimum" { "minimum" } else { "maximum" };
                    if let Some(n) = map.get(bound).filter(|n| n.is_number()) {
                        out.insert(k.into(), n.clone());
                    }
                }
                _ => {}
            },
            "minimum" | "maximum" => {
                let ex = if k == "minimum" { "exclusiveMinimum" } else { "exclusiveMaximum" };
                if map.get(ex) != Some(&Value::Bool(true)) {
                    out.insert(k.into(), v.clone());
                }
            }
            _ => {
                // `enum`, `const`, `default`, `examples` and unknown keywords: copied whole,
                // so charged whole.
                if let Some(v) = self.copy(v) {
                    out.insert(k.into(), v);
                }
            }
        }
    }

    /// Normalise list members until the budget runs out (one cut placeholder, then stop).
    fn norm_list(&mut self, items: &[Value], depth: usize) -> Vec<Value> {
        let mut list = Vec::new();
        for s in items {
            if self.ledger.is_over() {
                break;
            }
            list.push(self.norm(s, depth + 1));
        }
        list
    }

    fn hidden_in_mode(&self, schema: &Value) -> bool {
        let key = match self.mode {
            SchemaMode::Input => "readOnly",
            SchemaMode::Output => "writeOnly",
        };
        schema.get(key) == Some(&Value::Bool(true))
    }

    /// allOf merge, discriminator, nullable, and `required` pruned to kept properties.
    fn finish_object(&mut self, src: &Map<String, Value>, out: &mut Map<String, Value>) {
        merge_all_of(out);
        if self.mode == SchemaMode::Output {
            // A value may be absent: real APIs send `null` for it as often as they leave it out.
            make_nullable(out);
            return;
        }
        if let Some(d) = src.get("discriminator") {
            apply_discriminator(d, src, out);
        }
        let nullable =
            src.get("nullable") == Some(&Value::Bool(true)) || src.get("x-nullable") == Some(&Value::Bool(true));
        if nullable {
            make_nullable(out);
        }
        prune_required(src, out);
    }

    fn norm_ref(&mut self, r: &str, map: &Map<String, Value>, depth: usize) -> Value {
        if r.len() > MAX_REF_CHARS {
            self.warn(format!("a $ref longer than {MAX_REF_CHARS} characters is not followed"));
            return json!({"description": "Unresolvable reference (too long)."});
        }
        let name = r.rsplit('/').next().unwrap_or(r).to_string();
        let siblings: Map<String, Value> = map
            .iter()
            .filter(|(k, _)| k.as_str() != "$ref" && !k.starts_with("x-"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let target = match self.resolver.lookup(r) {
            RefTarget::Found(t) => t,
            RefTarget::External => {
                self.warn(format!("external $ref {r:?} is not followed"));
                return permissive(&format!("Defined in an external document ({r}); not described."), &siblings);
            }
            RefTarget::Missing => {
                self.warn(format!("$ref {r:?} points at nothing"));
                return permissive(&format!("Unresolvable reference {r}."), &siblings);
            }
        };
        if self.stack.iter().any(|s| s == r) || self.stack.len() >= MAX_REF_DEPTH {
            let mut cut = permissive(&format!("A {name} (recursive reference, not expanded further)."), &siblings);
            if let (Some(t), Value::Object(m)) = (target.get("type"), &mut cut) {
                if t.is_string() || t.is_array() {
                    m.insert("type".into(), t.clone());
                    if self.mode == SchemaMode::Output {
                        make_nullable(m);
                    }
                }
            }
            return cut;
        }
        if siblings.is_empty() {
            return self.norm_ref_memoised(r, target, depth);
        }
        self.stack.push(r.to_string());
        let result = if let Value::Object(tm) = target {
            // 3.1 allows siblings next to $ref; they refine the target (description,
            // nullable, default, ...). Overlay them and normalise the result. The overlay is a
            // copy of the target, so it is charged like one.
            if self.ledger.copy_transient(target) {
                // Target order, siblings replacing in place, new ones after (as before).
                let mut merged: Map<String, Value> = tm
                    .iter()
                    .filter(|(k, _)| !k.starts_with("x-"))
                    .map(|(k, v)| (k.clone(), siblings.get(k).unwrap_or(v).clone()))
                    .collect();
                for (k, v) in siblings {
                    if !merged.contains_key(&k) {
                        merged.insert(k, v);
                    }
                }
                self.norm(&Value::Object(merged), depth + 1)
            } else {
                self.cuts += 1;
                json!({"description": "Schema too large; not described further."})
            }
        } else {
            self.norm(target, depth + 1)
        };
        self.stack.pop();
        result
    }

    /// Expand a plain `{"$ref": ...}`: from the memo when this expansion was made before in
    /// the same situation, else normalised (and kept, from its second use on).
    fn norm_ref_memoised(&mut self, r: &str, target: &Value, depth: usize) -> Value {
        let key: MemoKey = (r.to_string(), self.mode == SchemaMode::Input, depth, self.stack.clone());
        if let Some(m) = self.ledger.memo_get(&key) {
            if m.nodes <= self.budget {
                if !self.charge(m.bytes) {
                    return json!({"description": "Schema too large; not described further."});
                }
                self.budget -= m.nodes;
                for w in &m.warnings {
                    self.warn(w.clone());
                }
                return m.value.clone();
            }
        }
        let (budget, used, cuts, warned) = (self.budget, self.ledger.used(), self.cuts, self.warnings.len());
        self.stack.push(r.to_string());
        let result = self.norm(target, depth + 1);
        self.stack.pop();
        if self.cuts == cuts && self.ledger.memo_seen(&key) {
            let bytes = self.ledger.used() - used;
            // The kept copy is charged too.
            if self.charge(bytes) {
                let memo = Memo {
                    value: result.clone(),
                    nodes: budget - self.budget,
                    bytes,
                    warnings: self.warnings[warned..].to_vec(),
                };
                self.ledger.memo_put(key, memo);
            }
        }
        result
    }
}

fn permissive(description: &str, siblings: &Map<String, Value>) -> Value {
    let mut m = Map::new();
    let desc = match siblings.get("description").and_then(Value::as_str) {
        Some(d) => format!("{} {}", clip(d, MAX_DESCRIPTION_CHARS), clip(description, 200)),
        None => clip(description, 200),
    };
    m.insert("description".into(), Value::String(desc));
    Value::Object(m)
}

fn type_set(t: &Value) -> Vec<String> {
    match t {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

fn type_value(types: Vec<String>) -> Value {
    if types.len() == 1 {
        types.into_iter().next().map(Value::String).unwrap_or(Value::Null)
    } else {
        Value::Array(types.into_iter().map(Value::String).collect())
    }
}

/// Merge `allOf` members into the enclosing schema where that is lossless enough; members
/// or keywords that cannot be merged stay in a smaller `allOf`.
fn merge_all_of(out: &mut Map<String, Value>) {
    let Some(Value::Array(parts)) = out.remove("allOf") else {
        return;
    };
    let mut leftover = Vec::new();
    // Names already required, so merging many long lists stays linear.
    let mut required: std::collections::HashSet<String> = match out.get("required") {
        Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Default::default(),
    };
    for part in parts {
        match part {
            Value::Object(pm) => merge_into(out, pm, &mut leftover, &mut required),
            Value::Bool(true) => {}
            other => leftover.push(other),
        }
    }
    if !leftover.is_empty() {
        out.insert("allOf".into(), Value::Array(leftover));
    }
}

fn merge_into(
    dst: &mut Map<String, Value>,
    src: Map<String, Value>,
    leftover: &mut Vec<Value>,
    required: &mut std::collections::HashSet<String>,
) {
    for (k, v) in src {
        match k.as_str() {
            "properties" => {
                let Value::Object(props) = v else { continue };
                let entry = dst.entry("properties").or_insert_with(|| json!({}));
                if let Value::Object(dp) = entry {
                    for (pk, pv) in props {
                        dp.insert(pk, pv);
                    }
                }
            }
            "required" => {
                let Value::Array(names) = v else { continue };
                let entry = dst.entry("required").or_insert_with(|| json!([]));
                if let Value::Array(dr) = entry {
                    for n in names {
                        if let Some(name) = n.as_str() {
                            if required.insert(name.to_string()) {
                                dr.push(n);
                            }
                        }
                    }
                }
            }
            "type" => match dst.get("type") {
                None => {
                    dst.insert(k, v);
                }
                Some(existing) => {
                    let a = type_set(existing);
                    let b = type_set(&v);
                    let both: Vec<String> = a.iter().filter(|t| b.contains(t)).cloned().collect();
                    let both =
                        if both.is_empty() && a.contains(&"number".to_string()) && b.contains(&"integer".to_string()) {
                            vec!["integer".to_string()]
                        } else {
                            both
                        };
                    if !both.is_empty() {
                        dst.insert(k, type_value(both));
                    }
                }
            },
            "oneOf" | "anyOf" | "not" | "if" | "then" | "else" | "allOf" => {
                if dst.contains_key(&k) {
                    let mut m = Map::new();
                    m.insert(k, v);
                    leftover.push(Value::Object(m));
                } else {
                    dst.insert(k, v);
                }
            }
            _ => {
                if !dst.contains_key(&k) {
                    dst.insert(k, v);
                }
            }
        }
    }
}

/// `discriminator` is not JSON Schema: make it usable by pinning the discriminating property
/// of each `oneOf`/`anyOf` branch to its value with `const` (and requiring it).
fn apply_discriminator(d: &Value, src: &Map<String, Value>, out: &mut Map<String, Value>) {
    let Some(prop) = d.get("propertyName").and_then(Value::as_str).filter(|p| p.len() <= MAX_DISCRIMINATOR_CHARS)
    else {
        return;
    };
    // Target -> value, built once (a document can have many branches and a long mapping).
    let mut mapping: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for (k, v) in d.get("mapping").and_then(Value::as_object).into_iter().flatten() {
        if let Some(target) = v.as_str() {
            mapping.entry(target).or_insert(k.as_str());
        }
    }
    for key in ["oneOf", "anyOf"] {
        let (Some(Value::Array(orig)), Some(Value::Array(branches))) = (src.get(key), out.get_mut(key)) else {
            continue;
        };
        for (o, b) in orig.iter().zip(branches.iter_mut()) {
            let Some(r) = o.get("$ref").and_then(Value::as_str) else {
                continue;
            };
            let value = discriminator_value(r, &mapping);
            let Value::Object(bm) = b else { continue };
            let props = bm.entry("properties").or_insert_with(|| json!({}));
            if let Value::Object(pm) = props {
                let entry = pm.entry(prop.to_string()).or_insert_with(|| json!({"type": "string"}));
                if let Value::Object(em) = entry {
                    em.remove("enum");
                    em.insert("const".into(), Value::String(value));
                }
            }
            let req = bm.entry("required").or_insert_with(|| json!([]));
            if let Value::Array(rv) = req {
                if !rv.iter().any(|v| v.as_str() == Some(prop)) {
                    rv.push(Value::String(prop.to_string()));
                }
            }
        }
    }
}

fn discriminator_value(r: &str, mapping: &std::collections::HashMap<&str, &str>) -> String {
    let name = r.rsplit('/').next().unwrap_or(r);
    let value = mapping.get(r).or_else(|| mapping.get(name)).copied().unwrap_or(name);
    clip(value, MAX_DISCRIMINATOR_CHARS)
}

fn make_nullable(out: &mut Map<String, Value>) {
    if let Some(t) = out.get("type") {
        let mut types = type_set(t);
        if !types.iter().any(|t| t == "null") {
            types.push("null".into());
        }
        out.insert("type".into(), Value::Array(types.into_iter().map(Value::String).collect()));
        if let Some(Value::Array(e)) = out.get_mut("enum") {
            if !e.contains(&Value::Null) {
                e.push(Value::Null);
            }
        }
    } else if let Some(Value::Array(_)) = out.get("oneOf").or_else(|| out.get("anyOf")) {
        let key = if out.contains_key("oneOf") { "oneOf" } else { "anyOf" };
        if let Some(Value::Array(branches)) = out.get_mut(key) {
            branches.push(json!({"type": "null"}));
        }
    }
}

/// Keep `required` consistent with `properties` after read/write-only pruning.
fn prune_required(src: &Map<String, Value>, out: &mut Map<String, Value>) {
    let Some(Value::Object(props)) = out.get("properties") else {
        return;
    };
    let src_props = src.get("properties").and_then(Value::as_object);
    let removed: std::collections::HashSet<String> = match src_props {
        Some(sp) => sp.keys().filter(|k| !props.contains_key(*k)).cloned().collect(),
        None => Default::default(),
    };
    if removed.is_empty() {
        return;
    }
    if let Some(Value::Array(req)) = out.get_mut("required") {
        req.retain(|r| r.as_str().is_some_and(|s| !removed.contains(s)));
    }
}
