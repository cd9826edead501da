//! Percent-encoding sets and OpenAPI parameter style serialisation.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
use serde_json::Value;

use crate::tools::ParamStyle;

/// Everything except RFC 3986 unreserved characters.
pub const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `allowReserved`: reserved characters pass, except the ones that would change the
/// query's structure (`&`, `=`, `#`) and `%`.
pub const RESERVED_OK: &AsciiSet = &COMPONENT
    .remove(b':')
    .remove(b'/')
    .remove(b'?')
    .remove(b'[')
    .remove(b']')
    .remove(b'@')
    .remove(b'!')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';');

/// Characters not allowed raw in a cookie value (RFC 6265 cookie-octet) plus `%`.
pub const COOKIE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b',').add(b';').add(b'\\').add(b'%');

/// A cookie value as it goes on the wire.
pub fn cookie_enc(s: &str) -> String {
    utf8_percent_encode(s, COOKIE).to_string()
}

pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

pub fn enc_with(s: &str, allow_reserved: bool) -> String {
    let set = if allow_reserved { RESERVED_OK } else { COMPONENT };
    utf8_percent_encode(s, set).to_string()
}

/// A primitive as text; containers as JSON text.
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// (key, value) pairs of an object in order, values as text.
fn pairs(m: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), scalar_text(v))).collect()
}

/// `simple` / `label` / `matrix` (path) serialisation; `e` encodes each value or key.
pub fn path_value(style: ParamStyle, explode: bool, name: &str, v: &Value, e: &dyn Fn(&str) -> String) -> String {
    let items: Vec<String> = match v {
        Value::Array(a) => a.iter().map(|x| e(&scalar_text(x))).collect(),
        _ => Vec::new(),
    };
    match (style, v) {
        (ParamStyle::Label, Value::Array(_)) => format!(".{}", items.join(if explode { "." } else { "," })),
        (ParamStyle::Label, Value::Object(m)) => {
            let ps = pairs(m);
            if explode {
                ps.iter().map(|(k, x)| format!(".{}={}", e(k), e(x))).collect()
            } else {
                format!(".{}", ps.iter().map(|(k, x)| format!("{},{}", e(k), e(x))).collect::<Vec<_>>().join(","))
            }
        }
        (ParamStyle::Label, _) => format!(".{}", e(&scalar_text(v))),
        (ParamStyle::Matrix, Value::Array(_)) => {
            if explode {
                items.iter().map(|x| format!(";{}={}", e(name), x)).collect()
            } else {
                format!(";{}={}", e(name), items.join(","))
            }
        }
        (ParamStyle::Matrix, Value::Object(m)) => {
            let ps = pairs(m);
            if explode {
                ps.iter().map(|(k, x)| format!(";{}={}", e(k), e(x))).collect()
            } else {
                format!(
                    ";{}={}",
                    e(name),
                    ps.iter().map(|(k, x)| format!("{},{}", e(k), e(x))).collect::<Vec<_>>().join(",")
                )
            }
        }
        (ParamStyle::Matrix, _) => format!(";{}={}", e(name), e(&scalar_text(v))),
        // simple (and anything else in a path or header)
        (_, Value::Array(_)) => items.join(","),
        (_, Value::Object(m)) => {
            let ps = pairs(m);
            let sep = if explode { "=" } else { "," };
            ps.iter().map(|(k, x)| format!("{}{sep}{}", e(k), e(x))).collect::<Vec<_>>().join(",")
        }
        _ => e(&scalar_text(v)),
    }
}

/// Query (and form-body) serialisation: returns already-encoded `key=value` strings.
pub fn query_pairs(style: ParamStyle, explode: bool, name: &str, v: &Value, allow_reserved: bool) -> Vec<String> {
    let ev = |s: &str| enc_with(s, allow_reserved);
    let key = enc(name);
    match (style, v) {
        (_, Value::Null) => Vec::new(),
        (ParamStyle::DeepObject, _) => {
            let mut out = Vec::new();
            deep_object(name, v, 0, &mut out, allow_reserved);
            out
        }
        (_, Value::Array(a)) => {
            if a.is_empty() {
                return Vec::new();
            }
            let texts: Vec<String> = a.iter().map(|x| ev(&scalar_text(x))).collect();
            let sep = match style {
                ParamStyle::SpaceDelimited => "%20",
                ParamStyle::PipeDelimited => "%7C",
                _ => ",",
            };
            if explode {
                texts.into_iter().map(|t| format!("{key}={t}")).collect()
            } else {
                vec![format!("{key}={}", texts.join(sep))]
            }
        }
        (_, Value::Object(m)) => {
            let ps = pairs(m);
            if explode {
                ps.iter().map(|(k, x)| format!("{}={}", enc(k), ev(x))).collect()
            } else {
                let sep = match style {
                    ParamStyle::SpaceDelimited => "%20",
                    ParamStyle::PipeDelimited => "%7C",
                    _ => ",",
                };
                let flat: Vec<String> = ps.iter().flat_map(|(k, x)| [ev(k), ev(x)]).collect();
                vec![format!("{key}={}", flat.join(sep))]
            }
        }
        _ => vec![format!("{key}={}", ev(&scalar_text(v)))],
    }
}

/// `name[a][b]=v`, arrays indexed (`name[0]=v`), as Stripe and qs (`indices`) expect.
/// Nesting is bounded; deeper values are sent as JSON text.
pub fn deep_object(prefix: &str, v: &Value, depth: usize, out: &mut Vec<String>, allow_reserved: bool) {
    let key = || {
        // Brackets stay literal (as browsers and Stripe's clients send them).
        enc(prefix).replace("%5B", "[").replace("%5D", "]")
    };
    if depth > 16 {
        out.push(format!("{}={}", key(), enc_with(&v.to_string(), allow_reserved)));
        return;
    }
    match v {
        Value::Null => {}
        Value::Object(m) => {
            for (k, x) in m {
                deep_object(&format!("{prefix}[{k}]"), x, depth + 1, out, allow_reserved);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                deep_object(&format!("{prefix}[{i}]"), x, depth + 1, out, allow_reserved);
            }
        }
        _ => out.push(format!("{}={}", key(), enc_with(&scalar_text(v), allow_reserved))),
    }
}
