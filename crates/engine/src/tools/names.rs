//! Tool and argument names.
//!
//! Tool names: `operationId`, else `{method}_{path}`; every character outside
//! `[A-Za-z0-9_-]` becomes `_`, runs of `_` collapse, leading/trailing `_` go. Longer than 64
//! characters: the first 55 characters, `_`, and 8 hex digits of the SHA-256 of the unsanitised
//! name. On a collision, the operation with the smallest operation key (`"GET /a"`) keeps the
//! name and every other gets `_` + 6 hex digits of the SHA-256 of its operation key. So a name
//! depends only on the operation and on the operations it collides with, never on order.
//!
//! Argument names (input-schema properties): `[A-Za-z0-9_.-]{1,64}`, the set MCP clients
//! accept for property keys.

use std::collections::{BTreeMap, HashSet};

use sha2::{Digest, Sha256};

pub const MAX_NAME_LEN: usize = 64;

fn short_hash(input: &str, hex_len: usize) -> String {
    let digest = Sha256::digest(input.as_bytes());
    let mut h = hex::encode(digest);
    h.truncate(hex_len);
    h
}

fn sanitise(raw: &str, allowed: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut last_underscore = false;
    for c in raw.chars() {
        let c = if allowed(c) { c } else { '_' };
        if c == '_' && last_underscore {
            continue;
        }
        last_underscore = c == '_';
        out.push(c);
    }
    out.trim_matches('_').to_string()
}

fn cap_len(name: String, raw: &str) -> String {
    if name.len() <= MAX_NAME_LEN {
        return name;
    }
    // Names are ASCII here, so byte slicing is on char boundaries.
    let head: String = name.chars().take(MAX_NAME_LEN - 9).collect();
    format!("{}_{}", head.trim_end_matches('_'), short_hash(raw, 8))
}

/// A valid tool name for `raw`, or `None` when nothing usable is left.
pub fn tool_name(raw: &str) -> Option<String> {
    let s = sanitise(raw, |c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if s.is_empty() || s.chars().all(|c| c == '-') {
        return None;
    }
    Some(cap_len(s, raw))
}

/// The fallback name `{method}_{path}`.
pub fn fallback_tool_name(method: &str, path: &str) -> String {
    let raw = format!("{}_{}", method.to_ascii_lowercase(), path);
    tool_name(&raw).unwrap_or_else(|| method.to_ascii_lowercase())
}

/// Is `name` a valid tool name?
pub fn is_valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Make names unique. `wanted[i] = (base name, operation key)`; returns final names in the
/// same order.
pub fn assign_unique(wanted: &[(String, String)]) -> Vec<String> {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (base, _)) in wanted.iter().enumerate() {
        groups.entry(base.as_str()).or_default().push(i);
    }
    let mut names: Vec<String> = wanted.iter().map(|(b, _)| b.clone()).collect();
    for (base, mut idxs) in groups {
        if idxs.len() < 2 {
            continue;
        }
        idxs.sort_by(|a, b| wanted.get(*a).map(|w| &w.1).cmp(&wanted.get(*b).map(|w| &w.1)));
        for i in idxs.into_iter().skip(1) {
            let key = wanted.get(i).map(|w| w.1.as_str()).unwrap_or("");
            if let Some(n) = names.get_mut(i) {
                *n = with_suffix(base, &short_hash(key, 6));
            }
        }
    }
    // A suffixed name may (very rarely) hit another operation's name: extend the hash.
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|a, b| wanted.get(*a).map(|w| &w.1).cmp(&wanted.get(*b).map(|w| &w.1)));
    let mut taken: HashSet<String> = HashSet::new();
    for i in order {
        let key = wanted.get(i).map(|w| w.1.clone()).unwrap_or_default();
        let Some(name) = names.get_mut(i) else { continue };
        let mut n = 0usize;
        while taken.contains(name.as_str()) {
            n += 1;
            *name = with_suffix(
                &wanted.get(i).map(|w| w.0.clone()).unwrap_or_default(),
                &short_hash(&format!("{key}#{n}"), 8),
            );
        }
        taken.insert(name.clone());
    }
    names
}

fn with_suffix(base: &str, suffix: &str) -> String {
    let room = MAX_NAME_LEN - suffix.len() - 1;
    let head: String = base.chars().take(room).collect();
    format!("{head}_{suffix}")
}

/// A valid argument (schema property) name for a wire name.
pub fn arg_name(raw: &str) -> String {
    let s = sanitise(raw, |c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if s.is_empty() {
        return format!("arg_{}", short_hash(raw, 6));
    }
    cap_len(s, raw)
}

/// Is `name` a valid argument name?
pub fn is_valid_arg_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// Header names a document may not set on a request FlowCP sends: those FlowCP sets itself
/// (`Accept`, `Content-Type`, `Authorization`), Fetch's forbidden request headers (`Host`,
/// `Content-Length`, `Cookie`, `Transfer-Encoding`...), and forwarding or method-override
/// headers a proxy or platform may honour (`X-Forwarded-*`, `Forwarded`, `CF-*`,
/// `X-HTTP-Method-Override`). A parameter with such a name is dropped at import with a warning
/// and never sent, so a client cannot pick the virtual host or the framing the credential goes to.
// TODO-security(issue 11): a method override through a query parameter (`_method`) is the
// API's own business and is not refused.
pub fn is_forbidden_header(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "accept",
        "content-type",
        "authorization",
        "accept-charset",
        "accept-encoding",
        "access-control-request-headers",
        "access-control-request-method",
        "connection",
        "content-length",
        "cookie",
        "cookie2",
        "date",
        "dnt",
        "expect",
        "host",
        "keep-alive",
        "origin",
        "referer",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "via",
        "forwarded",
        "x-http-method",
        "x-http-method-override",
        "x-method-override",
        "x-real-ip",
        "true-client-ip",
        "x-forwarded",
        "x-host",
        "x-original-host",
        "x-original-url",
        "x-rewrite-url",
        "client-ip",
        "x-client-ip",
        "max-forwards",
        "x-middleware-subrequest",
    ];
    const PREFIXES: &[&str] = &["proxy-", "sec-", "x-forwarded-", "cf-"];
    // CGI-style servers read `X_Forwarded_Host` as `X-Forwarded-Host`.
    let n = name.trim().to_ascii_lowercase().replace('_', "-");
    EXACT.contains(&n.as_str()) || PREFIXES.iter().any(|p| n.starts_with(p))
}
