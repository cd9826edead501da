//! Regular expressions every mainstream client can compile.
//!
//! OpenAPI's `pattern` is ECMA-262 (without the `u` flag), but clients compile schemas with
//! other engines: ECMA-262 in Unicode mode (ajv in the TypeScript SDK, browsers), Python's
//! `re`, Rust's `regex`, Go's RE2. A pattern valid in one can be an error in another
//! (`[\w- ]` in Unicode mode and Python, `\p{L}` in Python, a lone `{` in Unicode mode,
//! lookaround in Rust and Go), and a client that cannot compile a tool's schema refuses the
//! tool, or the whole list.
//!
//! [`portable_pattern`] parses a pattern with ECMA-262's (non-Unicode) meaning and writes it
//! back in a subset that the three dialects read alike: literals, `.`, `^`/`$`, `\b`/`\B`,
//! `\d\w\s` and their negations, classes with ranges, groups (named ones become plain
//! capturing groups), alternation and greedy or lazy quantifiers. Equivalent spellings are
//! rewritten (a lone `{` becomes `\{`, a `-` next to a class escape becomes `\-`, an identity
//! escape such as `\_` becomes `_`); anything else (backreferences, lookaround, Unicode
//! property escapes, inline flags, octal or control escapes, escapes that mean different
//! things in different dialects) makes the pattern unportable, and the caller moves it to
//! the description. The parser is the committed Unicode-mode syntax check: what it writes
//! uses only constructs that are valid in Unicode mode, in Python's `re` and in Rust's
//! `regex` (the corpus test compiles every result in all three).

use serde_json::{Map, Value};

use super::schema::{SCHEMA_LIST_KEYS, SCHEMA_MAP_KEYS, SCHEMA_ONE_KEYS};

/// What became of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternFix {
    /// Portable as written.
    Kept,
    /// An equivalent portable spelling.
    Rewritten(String),
    /// No portable equivalent; why.
    Unportable(&'static str),
}

/// Longest pattern considered (longer ones are unportable: they are also costly to compile).
pub const MAX_PATTERN_CHARS: usize = 1_000;
/// Deepest group nesting accepted.
const MAX_GROUP_DEPTH: usize = 32;
/// Largest counted repetition accepted (Rust's `regex` bounds the compiled size).
const MAX_REPEAT: u32 = 1_000;

/// The portable form of an ECMA-262 `pattern`.
pub fn portable_pattern(pattern: &str) -> PatternFix {
    if pattern.chars().count() > MAX_PATTERN_CHARS {
        return PatternFix::Unportable("it is longer than 1000 characters");
    }
    let mut p = Parser { chars: pattern.chars().collect(), i: 0, out: String::new(), depth: 0 };
    match p.disjunction() {
        Err(why) => PatternFix::Unportable(why),
        Ok(_) if p.i < p.chars.len() => PatternFix::Unportable("it has an unbalanced `)`"),
        Ok(_) if p.out == pattern => PatternFix::Kept,
        Ok(_) => PatternFix::Rewritten(p.out),
    }
}

type Step = Result<(), &'static str>;
/// The largest product of nested counted repetitions in what was parsed.
type Weighed = Result<u64, &'static str>;

struct Parser {
    chars: Vec<char>,
    i: usize,
    out: String,
    depth: usize,
}

/// Largest product of nested counted repetitions (`(?:a{100}){100}` is 10,000): the compiled
/// size of a pattern grows with it, in every engine that expands counts.
const MAX_REPEAT_PRODUCT: u64 = 1_000;

/// ECMA-262 syntax characters (plus `/`): escaping them is valid in every dialect.
fn is_syntax(c: char) -> bool {
    "^$\\.*+?()[]{}|/".contains(c)
}

/// A class member: one character, or a class escape (`\d`, ...) as written.
enum ClassAtom {
    Char(char, Option<String>),
    Set(String),
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }
    fn peek_at(&self, k: usize) -> Option<char> {
        self.chars.get(self.i + k).copied()
    }

    fn disjunction(&mut self) -> Weighed {
        let mut weight = 1;
        loop {
            while let Some(c) = self.peek() {
                if c == '|' || c == ')' {
                    break;
                }
                weight = weight.max(self.term()?);
            }
            if self.peek() == Some('|') {
                self.out.push('|');
                self.i += 1;
                continue;
            }
            return Ok(weight);
        }
    }

    fn term(&mut self) -> Weighed {
        let Some(c) = self.peek() else { return Ok(1) };
        let mut inner = 1;
        match c {
            '^' | '$' => {
                self.out.push(c);
                self.i += 1;
                return Ok(1);
            }
            '\\' if matches!(self.peek_at(1), Some('b' | 'B')) => {
                self.out.push('\\');
                self.out.push(self.peek_at(1).unwrap_or('b'));
                self.i += 2;
                return Ok(1);
            }
            '(' => inner = self.group()?,
            '[' => self.class()?,
            '.' => {
                self.out.push('.');
                self.i += 1;
            }
            '*' | '+' | '?' => return Err("a quantifier has nothing to repeat"),
            '{' => {
                if self.counted().is_some() {
                    return Err("a quantifier has nothing to repeat");
                }
                // A brace that is not a quantifier is a literal (an error in Unicode mode).
                self.out.push_str("\\{");
                self.i += 1;
            }
            '}' | ']' => {
                self.out.push('\\');
                self.out.push(c);
                self.i += 1;
            }
            '\\' => self.atom_escape()?,
            _ => {
                self.out.push(c);
                self.i += 1;
            }
        }
        let weight = inner.saturating_mul(self.quantifier()?);
        if weight > MAX_REPEAT_PRODUCT {
            return Err("its nested repetitions expand to more than 1000 copies");
        }
        Ok(weight)
    }

    fn group(&mut self) -> Weighed {
        self.depth += 1;
        if self.depth > MAX_GROUP_DEPTH {
            return Err("its groups are nested too deeply");
        }
        self.i += 1;
        if self.peek() == Some('?') {
            match (self.peek_at(1), self.peek_at(2)) {
                (Some(':'), _) => {
                    self.out.push_str("(?:");
                    self.i += 2;
                }
                (Some('=' | '!'), _) | (Some('<'), Some('=' | '!')) => {
                    return Err("lookaround is not supported by Rust's regex or Go's RE2")
                }
                (Some('<'), _) | (Some('P'), Some('<')) => {
                    // A named group matches like a plain one; the syntax differs by dialect.
                    let start = self.i + if self.peek_at(1) == Some('P') { 3 } else { 2 };
                    let close = self.chars[start.min(self.chars.len())..].iter().position(|c| *c == '>');
                    let Some(len) = close else { return Err("it has an unterminated group name") };
                    let name = &self.chars[start..start + len];
                    if name.is_empty() || !name.iter().all(|c| c.is_ascii_alphanumeric() || *c == '_') {
                        return Err("it has an invalid group name");
                    }
                    self.out.push('(');
                    self.i = start + len + 1;
                }
                _ => return Err("inline flags and group extensions are not portable"),
            }
        } else {
            self.out.push('(');
        }
        let weight = self.disjunction()?;
        if self.peek() != Some(')') {
            return Err("it has an unclosed group");
        }
        self.out.push(')');
        self.i += 1;
        self.depth -= 1;
        Ok(weight)
    }

    /// `{n}`, `{n,}` or `{n,m}` at the cursor: (text, chars consumed).
    fn counted(&self) -> Option<(String, usize)> {
        if self.peek() != Some('{') {
            return None;
        }
        let rest: String = self.chars[self.i..].iter().take(24).collect();
        let close = rest.find('}')?;
        let inner = &rest[1..close];
        let (lo, hi) = match inner.split_once(',') {
            None => (inner, Some(inner)),
            Some((lo, "")) => (lo, None),
            Some((lo, hi)) => (lo, Some(hi)),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(lo) || !hi.is_none_or(digits) {
            return None;
        }
        Some((format!("{{{inner}}}"), close + 1))
    }

    /// The quantifier after an atom, if any: how many copies of the atom it expands to (`*`,
    /// `+` and `?` are loops, not copies).
    fn quantifier(&mut self) -> Weighed {
        let copies;
        match self.peek() {
            Some(c @ ('*' | '+' | '?')) => {
                self.out.push(c);
                self.i += 1;
                copies = 1;
            }
            Some('{') => {
                let Some((text, len)) = self.counted() else { return Ok(1) };
                let inner = &text[1..text.len() - 1];
                let mut bounds = inner.split(',').filter(|s| !s.is_empty()).map(|s| s.parse::<u32>().ok());
                let lo = bounds.next().flatten();
                let hi = bounds.next().flatten();
                match (lo, hi) {
                    (Some(lo), _) if lo > MAX_REPEAT => return Err("a repetition count is above 1000"),
                    (_, Some(hi)) if hi > MAX_REPEAT => return Err("a repetition count is above 1000"),
                    (Some(lo), Some(hi)) if lo > hi => return Err("a repetition range is out of order"),
                    (None, _) => return Err("a repetition count is above 1000"),
                    _ => {}
                }
                copies = u64::from(hi.unwrap_or(0).max(lo.unwrap_or(0)).max(1));
                self.out.push_str(&text);
                self.i += len;
            }
            _ => return Ok(1),
        }
        if self.peek() == Some('?') {
            self.out.push('?');
            self.i += 1;
        }
        Ok(copies)
    }

    /// Hex digits at the cursor as a number (exactly `n` of them).
    fn hex(&self, at: usize, n: usize) -> Option<u32> {
        let s: String = self.chars.get(at..at + n)?.iter().collect();
        if s.len() != n || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(&s, 16).ok()
    }

    /// An escape that denotes one character: `\t`, `\xHH`, `\uHHHH`, `\u{...}`, `\0`, or an
    /// identity escape. Returns the character, the portable spelling when the source's is one,
    /// and the characters consumed after the backslash.
    fn char_escape(&self) -> Result<(char, Option<String>, usize), &'static str> {
        let Some(c) = self.peek_at(1) else { return Err("it ends with a backslash") };
        let at = self.i + 2;
        let raw = |n: usize| -> String { self.chars[self.i..self.i + 1 + n].iter().collect() };
        Ok(match c {
            't' => ('\t', Some(raw(1)), 1),
            'n' => ('\n', Some(raw(1)), 1),
            'r' => ('\r', Some(raw(1)), 1),
            'f' => ('\u{c}', Some(raw(1)), 1),
            'v' => ('\u{b}', Some(raw(1)), 1),
            'x' => {
                let v = self.hex(at, 2).ok_or("it has an incomplete \\x escape")?;
                (char::from_u32(v).ok_or("it has an invalid \\x escape")?, Some(raw(3)), 3)
            }
            // `u{3}` repeats `u` without the Unicode flag and is a code point with it.
            'u' if self.peek_at(2) == Some('{') => {
                return Err("`\\u{…}` means different things with and without the Unicode flag")
            }
            'u' => {
                let v = self.hex(at, 4).ok_or("it has an incomplete \\u escape")?;
                let ch = char::from_u32(v).ok_or("it has a surrogate \\u escape, which is not portable")?;
                (ch, Some(raw(5)), 5)
            }
            '0' if !self.peek_at(2).is_some_and(|d| d.is_ascii_digit()) => ('\0', None, 1),
            '0'..='9' => return Err("backreferences and octal escapes are not supported by Rust's regex"),
            'k' => return Err("backreferences are not supported by Rust's regex"),
            'p' | 'P' => return Err("Unicode property escapes are not supported by Python's re"),
            'c' => return Err("control escapes are not portable"),
            c if c.is_ascii_alphabetic() => {
                return Err("it has an escape that means different things in different dialects")
            }
            c if is_syntax(c) => (c, Some(raw(1)), 1),
            // An identity escape (`\_`, `\-`, `\<`): the character itself.
            c => (c, None, 1),
        })
    }

    /// `\` outside a class: a class escape or one character.
    fn atom_escape(&mut self) -> Step {
        if let Some(c @ ('d' | 'D' | 'w' | 'W' | 's' | 'S')) = self.peek_at(1) {
            self.out.push('\\');
            self.out.push(c);
            self.i += 2;
            return Ok(());
        }
        let (c, spelled, used) = self.char_escape()?;
        self.i += 1 + used;
        match spelled {
            Some(s) => self.out.push_str(&s),
            None => push_literal(&mut self.out, c),
        }
        Ok(())
    }

    fn class_atom(&mut self) -> Result<ClassAtom, &'static str> {
        let Some(c) = self.peek() else { return Err("it has an unclosed character class") };
        if c != '\\' {
            self.i += 1;
            return Ok(ClassAtom::Char(c, None));
        }
        match self.peek_at(1) {
            Some(e @ ('d' | 'D' | 'w' | 'W' | 's' | 'S')) => {
                self.i += 2;
                Ok(ClassAtom::Set(format!("\\{e}")))
            }
            // Backspace inside a class.
            Some('b') => {
                self.i += 2;
                Ok(ClassAtom::Char('\u{8}', None))
            }
            Some('-') => {
                self.i += 2;
                Ok(ClassAtom::Char('-', Some("\\-".into())))
            }
            _ => {
                let (ch, spelled, used) = self.char_escape()?;
                self.i += 1 + used;
                Ok(ClassAtom::Char(ch, spelled))
            }
        }
    }

    fn class(&mut self) -> Step {
        self.i += 1;
        self.out.push('[');
        if self.peek() == Some('^') {
            self.out.push('^');
            self.i += 1;
        }
        if self.peek() == Some(']') {
            return Err("an empty character class is not portable");
        }
        let mut first = true;
        loop {
            match self.peek() {
                None => return Err("it has an unclosed character class"),
                Some(']') => {
                    self.out.push(']');
                    self.i += 1;
                    return Ok(());
                }
                _ => {}
            }
            let a = self.class_atom()?;
            let range = self.peek() == Some('-') && !matches!(self.peek_at(1), Some(']') | None);
            if !range {
                let last = self.peek() == Some(']');
                self.push_class_atom(&a, first || last);
                first = false;
                continue;
            }
            self.i += 1;
            let b = self.class_atom()?;
            match (&a, &b) {
                (ClassAtom::Char(x, _), ClassAtom::Char(y, _)) => {
                    if x > y {
                        return Err("a character range is out of order");
                    }
                    self.push_class_atom(&a, false);
                    self.out.push('-');
                    self.push_class_atom(&b, false);
                }
                // `[\w-x]`: the dash is a literal (an error in Unicode mode and in Python).
                _ => {
                    self.push_class_atom(&a, false);
                    self.out.push_str("\\-");
                    self.push_class_atom(&b, false);
                }
            }
            first = false;
        }
    }

    fn push_class_atom(&mut self, a: &ClassAtom, edge: bool) {
        match a {
            ClassAtom::Set(s) => self.out.push_str(s),
            ClassAtom::Char(_, Some(spelled)) => self.out.push_str(spelled),
            ClassAtom::Char(c, None) => {
                let doubled = self.peek() == Some(*c) || self.out.ends_with(*c);
                match c {
                    '-' if edge => self.out.push('-'),
                    ']' | '\\' | '[' | '-' => {
                        self.out.push('\\');
                        self.out.push(*c);
                    }
                    // `&&` and `~~` are set operations in Rust's regex.
                    '&' | '~' if doubled => self.out.push_str(&format!("\\x{:02X}", *c as u32)),
                    c => push_char(&mut self.out, *c),
                }
            }
        }
    }
}

/// A character outside a class.
fn push_literal(out: &mut String, c: char) {
    if is_syntax(c) {
        out.push('\\');
        out.push(c);
    } else {
        push_char(out, c);
    }
}

/// A character, escaped when it is a control character.
fn push_char(out: &mut String, c: char) {
    match c {
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02X}", c as u32)),
        c => out.push(c),
    }
}

/// The formats JSON Schema 2020-12 defines. Others (OpenAPI's `int64`, `binary`, vendors'
/// own) are unknown to strict validators, which may refuse to compile the schema.
pub const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// What [`make_input_portable`] did to one schema.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortableReport {
    pub patterns_kept: usize,
    pub patterns_rewritten: usize,
    pub patterns_dropped: usize,
    pub formats_kept: usize,
    pub formats_dropped: usize,
    pub defaults_dropped: usize,
    pub examples_dropped: usize,
    /// (JSON pointer inside the schema, message).
    pub warnings: Vec<(String, String)>,
    /// Patterns moved to descriptions: (JSON pointer of their schema, pattern as written),
    /// still checked by FlowCP itself.
    pub unportable: Vec<(String, String)>,
}

impl PortableReport {
    pub fn add(&mut self, o: &PortableReport) {
        self.patterns_kept += o.patterns_kept;
        self.patterns_rewritten += o.patterns_rewritten;
        self.patterns_dropped += o.patterns_dropped;
        self.formats_kept += o.formats_kept;
        self.formats_dropped += o.formats_dropped;
        self.defaults_dropped += o.defaults_dropped;
        self.examples_dropped += o.examples_dropped;
    }
}

/// Makes an input schema compile in every client: each `pattern` kept, rewritten to its
/// portable form or moved to the description; each `format` kept when JSON Schema defines it,
/// else moved to the description; `default` and `examples` values that do not match their own
/// schema dropped. Bounded by the schema (already bounded by the normaliser's node budget).
pub fn make_input_portable(schema: &mut Value) -> PortableReport {
    let mut report = PortableReport::default();
    walk(schema, &mut String::new(), 0, &mut report);
    report
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn describe_more(m: &mut Map<String, Value>, extra: &str) {
    let text = match m.get("description").and_then(Value::as_str) {
        Some(d) if !d.is_empty() => format!("{d}\n{extra}"),
        _ => extra.to_string(),
    };
    m.insert("description".into(), Value::String(text));
}

fn walk(schema: &mut Value, at: &mut String, depth: usize, r: &mut PortableReport) {
    let Value::Object(m) = schema else { return };
    if depth > 64 {
        return;
    }
    let len = at.len();
    for (k, v) in m.iter_mut() {
        let k = k.as_str();
        if SCHEMA_MAP_KEYS.contains(&k) {
            if let Value::Object(children) = v {
                for (name, child) in children.iter_mut() {
                    at.push_str(&format!("/{k}/{}", super::pointer::escape_token(name)));
                    walk(child, at, depth + 1, r);
                    at.truncate(len);
                }
            }
        } else if SCHEMA_LIST_KEYS.contains(&k) {
            if let Value::Array(children) = v {
                for (i, child) in children.iter_mut().enumerate() {
                    at.push_str(&format!("/{k}/{i}"));
                    walk(child, at, depth + 1, r);
                    at.truncate(len);
                }
            }
        } else if k == "items" || SCHEMA_ONE_KEYS.contains(&k) {
            at.push_str(&format!("/{k}"));
            walk(v, at, depth + 1, r);
            at.truncate(len);
        }
    }
    // `patternProperties` names are patterns too: an unportable one cannot be kept.
    if let Some(Value::Object(pp)) = m.get_mut("patternProperties") {
        let names: Vec<String> = pp.keys().cloned().collect();
        for name in names {
            match portable_pattern(&name) {
                PatternFix::Kept => {}
                PatternFix::Rewritten(p) => {
                    if let Some(v) = pp.remove(&name) {
                        pp.insert(p, v);
                    }
                }
                PatternFix::Unportable(why) => {
                    pp.remove(&name);
                    r.warnings.push((
                        at.clone(),
                        format!("patternProperties name {name:?} is not portable ({why}); dropped"),
                    ));
                }
            }
        }
    }
    match m.get("pattern") {
        Some(Value::String(p)) => {
            let p = p.clone();
            match portable_pattern(&p) {
                PatternFix::Kept => r.patterns_kept += 1,
                PatternFix::Rewritten(q) => {
                    r.patterns_rewritten += 1;
                    m.insert("pattern".into(), Value::String(q));
                }
                PatternFix::Unportable(why) => {
                    r.patterns_dropped += 1;
                    m.remove("pattern");
                    let shown = clip(&p, 300);
                    describe_more(m, &format!("Must match the regular expression `{shown}`."));
                    let checked = crate::invoke::compile_pattern(&p).is_some();
                    r.warnings.push((
                        at.clone(),
                        format!(
                            "pattern {shown:?} does not compile in every client ({why}); moved to the description, {}",
                            if checked { "still checked by FlowCP" } else { "and FlowCP cannot check it either" }
                        ),
                    ));
                    if checked {
                        r.unportable.push((at.clone(), p));
                    }
                }
            }
            if let Some(Value::String(q)) = m.get("pattern") {
                if crate::invoke::compile_pattern(q).is_none() {
                    r.warnings.push((at.clone(), format!("pattern {:?} is too large for FlowCP to check arguments against; clients may still check it", clip(q, 300))));
                }
            }
        }
        Some(_) => {
            m.remove("pattern");
        }
        None => {}
    }
    match m.get("format") {
        Some(Value::String(f)) if STANDARD_FORMATS.contains(&f.as_str()) => r.formats_kept += 1,
        Some(Value::String(f)) => {
            let f = f.clone();
            r.formats_dropped += 1;
            m.remove("format");
            describe_more(m, &format!("Format: {f}."));
        }
        Some(_) => {
            m.remove("format");
        }
        None => {}
    }
    let has_default = m.contains_key("default");
    let has_examples = m.contains_key("examples");
    if has_default || has_examples {
        let default = m.remove("default");
        let examples = m.remove("examples");
        let node = Value::Object(std::mem::take(m));
        if let Some(d) = default {
            let problems = crate::invoke::validate_value(&node, &d);
            if problems.is_empty() {
                m.insert("default".into(), d);
            } else {
                r.defaults_dropped += 1;
                r.warnings
                    .push((at.clone(), format!("`default` does not match its own schema ({}); dropped", problems[0])));
            }
        }
        match examples {
            Some(Value::Array(list)) => {
                let n = list.len();
                let good: Vec<Value> =
                    list.into_iter().filter(|e| crate::invoke::validate_value(&node, e).is_empty()).collect();
                if good.len() < n {
                    r.examples_dropped += n - good.len();
                    r.warnings.push((
                        at.clone(),
                        format!("{} of {n} `examples` do not match their own schema; dropped", n - good.len()),
                    ));
                }
                if !good.is_empty() {
                    m.insert("examples".into(), Value::Array(good));
                }
            }
            Some(_) => r.examples_dropped += 1,
            None => {}
        }
        // Put the rest back, in its order, before what was kept above.
        if let Value::Object(rest) = node {
            let kept = std::mem::replace(m, rest);
            m.extend(kept);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(p: &str) -> PatternFix {
        portable_pattern(p)
    }

    #[test]
    fn portable_patterns_are_kept() {
        for p in [
            "^[a-z0-9._-]+$",
            r"^\d{4}-\d{2}-\d{2}$",
            r"\/projects\/(me|[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*)",
            r"[a-f\d]{24}",
            r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
            r"^\x41\u00e9[\t\n]+?$",
            "a|b|",
            "",
            "é+",
        ] {
            assert_eq!(fix(p), PatternFix::Kept, "{p}");
        }
    }

    #[test]
    fn equivalent_spellings_are_rewritten() {
        for (p, want) in [
            (r"[\w- ]", r"[\w\- ]"),
            (r"^(?:{[0-9a-f]{4}}|x)$", r"^(?:\{[0-9a-f]{4}\}|x)$"),
            (r"a{,5}", r"a\{,5\}"),
            (r"\_\-\@\<", r"_-@<"),
            (r"(?<year>\d{4})", r"(\d{4})"),
            (r"[a&&b]", r"[a\x26&b]"),
            (r"[a&\&b]", r"[a&\x26b]"),
            (r"[[a]", r"[\[a]"),
            (r"x]", r"x\]"),
            (r"[\b]", r"[\x08]"),
            (r"\0", r"\x00"),
            (r"[a-\d]", r"[a\-\d]"),
        ] {
            assert_eq!(fix(p), PatternFix::Rewritten(want.into()), "{p}");
        }
    }

    #[test]
    fn patterns_without_a_portable_form_are_refused_with_a_reason() {
        for p in [
            r"\p{L}+",
            r"(?=a)b",
            r"(?<!a)b",
            r"(a)\1",
            r"(?i)abc",
            r"\cJ",
            r"\A\z",
            "a**",
            "*a",
            "(a",
            "a)",
            "[a",
            "[]",
            "[^]",
            "[z-a]",
            r"\uD83D",
            r"\u{1F600}",
            r"a{2000}",
            r"a{3,2}",
            r"(?:a{1000}){800}",
            r"((a{10}){10}){11}",
            "\\",
        ] {
            assert!(matches!(fix(p), PatternFix::Unportable(_)), "{p}: {:?}", fix(p));
        }
        assert!(matches!(fix(&"a".repeat(1_001)), PatternFix::Unportable(_)));
        let deep = format!("{}a{}", "(".repeat(40), ")".repeat(40));
        assert!(matches!(fix(&deep), PatternFix::Unportable(_)));
    }
}
