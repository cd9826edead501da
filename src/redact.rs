//! The one redaction function every log line and every upstream echo goes through (DESIGN §8).
//!
//! Sensitive headers (`Authorization`, `Cookie`, `Set-Cookie`, `X-Api-Key`,
//! `Proxy-Authorization`, `X-CSRF-Token`, plus any name a security scheme declares) and query
//! parameters named by a security scheme are replaced by `[REDACTED]`; any known secret value
//! that still appears in the text is replaced too, in every form it takes on the wire or in an
//! echo: raw, JSON-escaped, percent-encoded (path/query, cookie and form encodings, and the
//! encode-everything form) — see [`Redactor::text`].
//!
//! Who builds one: the Worker glue, per request, from the request's own sensitive header values
//! and the deployment's secrets ([`Redactor::for_request`]), for its log lines ([`log_line`]);
//! the MCP runtime and the verification probe, from the upstream credential, for what they
//! show the model or the owner.

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::invoke::encode::{cookie_enc, enc};

pub const REDACTED: &str = "[REDACTED]";

/// Request headers whose values are secrets (compared in lowercase).
pub const SENSITIVE_HEADERS: [&str; 6] =
    ["authorization", "cookie", "set-cookie", "x-api-key", "proxy-authorization", "x-csrf-token"];

/// Values shorter than this are never redacted (they would mangle ordinary text). Credentials
/// are at least 8 characters (`PUT …/credential`), so none is this short.
const MIN_SECRET_LEN: usize = 4;
/// Values taken from an inbound request's headers: at least this long, and at most this many
/// (a hostile request must not blank its own log line or cost the redactor much).
const MIN_REQUEST_SECRET_LEN: usize = 8;
const MAX_REQUEST_SECRETS: usize = 8;

/// What to hide besides the fixed header list. Built once per request or per credential: every
/// spelling of every secret is computed up front ([`forms`]), longest first.
#[derive(Default, Clone)]
// TODO-security(issue 11): one pass over the text for all spellings (aho-corasick) instead of
// one scan per spelling (up to about 80); its size cost is not measured yet.
pub struct Redactor {
    /// Header and query parameter names (case-insensitive) that a security scheme names.
    names: Vec<String>,
    /// Every form of every secret value, longest first, deduplicated.
    needles: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The needles are the secrets themselves.
        f.debug_struct("Redactor").field("names", &self.names).field("needles", &self.needles.len()).finish()
    }
}

/// The parts of a secret that are secrets on their own: the value; the token after an auth
/// scheme (`Bearer x`, `SSWS x`, `Token x`); for `Basic`, the decoded `user:pass` and the
/// password.
fn secret_parts(value: &str) -> Vec<String> {
    let value = value.trim();
    let mut out = vec![value.to_string()];
    if let Some((scheme, token)) = value.split_once(' ') {
        let token = token.trim();
        out.push(token.to_string());
        if scheme.eq_ignore_ascii_case("basic") {
            use base64::Engine;
            if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(token) {
                if let Ok(pair) = String::from_utf8(decoded) {
                    if let Some((_, password)) = pair.split_once(':') {
                        out.push(password.to_string());
                    }
                    out.push(pair);
                }
            }
        }
    }
    out
}

impl Redactor {
    /// A redactor for known secret values (and the parts of each that are secrets on their own).
    pub fn of_values<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Self {
        Self::new(Vec::new(), values)
    }

    /// A redactor for scheme-declared header/query names and known secret values.
    pub fn new<S: AsRef<str>>(names: Vec<String>, values: impl IntoIterator<Item = S>) -> Self {
        let mut needles: Vec<String> = values
            .into_iter()
            .flat_map(|v| secret_parts(v.as_ref()))
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .flat_map(|v| forms(&v))
            .filter(|n| n.len() >= MIN_SECRET_LEN)
            .collect();
        // Longest first, so a shorter form never splits a longer one before it is seen.
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Redactor { names, needles }
    }

    /// The redactor of one inbound request: its own secrets (the `Authorization` and
    /// `Proxy-Authorization` values and tokens, `X-Api-Key`, `X-CSRF-Token`, FlowCP's session
    /// cookie) plus the deployment's (`deployment`: session secret, encryption keys).
    pub fn for_request<'h>(
        sensitive_headers: impl IntoIterator<Item = (&'h str, &'h str)>,
        deployment: &[String],
    ) -> Self {
        Self::of_values(deployment).with_request(sensitive_headers)
    }

    /// This redactor plus one inbound request's own secrets (see [`Redactor::for_request`]):
    /// the deployment's redactor is built once per isolate and extended per logged request,
    /// since spelling out every form of every secret is the costly part (issue 18's profile).
    pub fn with_request<'h>(&self, sensitive_headers: impl IntoIterator<Item = (&'h str, &'h str)>) -> Self {
        let mut values: Vec<String> = Vec::new();
        for (name, value) in sensitive_headers {
            let name = name.to_ascii_lowercase();
            match name.as_str() {
                "authorization" | "proxy-authorization" | "x-api-key" | "x-csrf-token" => {
                    values.push(value.trim().to_string())
                }
                "cookie" => values.extend(
                    value
                        .split(';')
                        .filter_map(|pair| pair.split_once('='))
                        .filter(|(k, _)| k.trim() == crate::auth::session::COOKIE_NAME)
                        .map(|(_, v)| v.trim().to_string()),
                ),
                _ => {}
            }
        }
        values.retain(|v| v.len() >= MIN_REQUEST_SECRET_LEN);
        values.truncate(MAX_REQUEST_SECRETS);
        if values.is_empty() {
            return self.clone();
        }
        let mut out = Self::new(self.names.clone(), values);
        out.needles.extend(self.needles.iter().cloned());
        out.needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        out.needles.dedup();
        out
    }

    fn sensitive_name(&self, name: &str) -> bool {
        let n = name.to_ascii_lowercase();
        SENSITIVE_HEADERS.contains(&n.as_str()) || self.names.iter().any(|s| s.eq_ignore_ascii_case(name))
    }

    /// `name: value` for a header, with the value hidden when the name is sensitive.
    pub fn header(&self, name: &str, value: &str) -> String {
        if self.sensitive_name(name) {
            format!("{name}: {REDACTED}")
        } else {
            format!("{name}: {}", self.text(value))
        }
    }

    /// A URL with the values of sensitive query parameters hidden.
    pub fn url(&self, url: &str) -> String {
        let (base, rest) = match url.split_once('?') {
            Some(parts) => parts,
            None => return self.text(url),
        };
        let (query, fragment) = match rest.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (rest, None),
        };
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| {
                let name = pair.split('=').next().unwrap_or("");
                let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
                if self.sensitive_name(&decoded) || decoded.eq_ignore_ascii_case("access_token") {
                    format!("{name}={REDACTED}")
                } else {
                    pair.to_string()
                }
            })
            .collect();
        let mut out = format!("{base}?{}", redacted.join("&"));
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
        self.text(&out)
    }

    /// Free text with every known secret value replaced, in each of its [`forms`].
    pub fn text(&self, text: &str) -> String {
        let mut out: Option<String> = None;
        for n in &self.needles {
            let current = out.as_deref().unwrap_or(text);
            if current.contains(n.as_str()) {
                out = Some(current.replace(n.as_str(), REDACTED));
            }
        }
        out.unwrap_or_else(|| text.to_string())
    }

    /// Text that was cut short (an upstream body read up to its cap) with its tail masked when
    /// the tail is the beginning of a secret in any spelling: what a cut left of a secret no
    /// whole-value pattern matches. Run [`Redactor::text`] first.
    pub fn tail(&self, text: &str) -> String {
        let mut longest = 0;
        for n in &self.needles {
            // Proper prefixes of at least MIN_SECRET_LEN bytes that end on a char boundary.
            let mut k = n.len().saturating_sub(1).min(text.len());
            while k >= MIN_SECRET_LEN {
                if n.is_char_boundary(k) && text.ends_with(&n[..k]) {
                    longest = longest.max(k);
                    break;
                }
                k -= 1;
            }
        }
        if longest == 0 {
            return text.to_string();
        }
        format!("{}{REDACTED}", &text[..text.len() - longest])
    }

    /// Whether this redactor knows no secret value.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }
}

impl Redactor {
    /// A JSON value with every known secret value replaced in every string and object key, at
    /// any depth. Works on decoded strings, so however often the value is serialised later
    /// (a JSON body inside a JSON-RPC result), no escaped spelling slips through.
    pub fn json(&self, value: &mut serde_json::Value) -> bool {
        use serde_json::Value;
        if self.needles.is_empty() {
            return false;
        }
        match value {
            Value::String(s) => {
                let r = self.text(s);
                let changed = r != *s;
                if changed {
                    *s = r;
                }
                changed
            }
            // A numeric secret (a PIN, an account number) echoed as a JSON number.
            Value::Number(n) => {
                let changed = self.needles.contains(&n.to_string());
                if changed {
                    *value = Value::String(REDACTED.into());
                }
                changed
            }
            Value::Array(items) => items.iter_mut().fold(false, |acc, v| self.json(v) | acc),
            Value::Object(map) => {
                let renamed: Vec<(String, String)> = map
                    .keys()
                    .filter_map(|k| {
                        let r = self.text(k);
                        (r != *k).then(|| (k.clone(), r))
                    })
                    .collect();
                let mut changed = !renamed.is_empty();
                for (old, new) in renamed {
                    if let Some(v) = map.remove(&old) {
                        // Two keys may redact to the same name: keep both.
                        let mut key = new.clone();
                        let mut n = 2;
                        while map.contains_key(&key) {
                            key = format!("{new}#{n}");
                            n += 1;
                        }
                        map.insert(key, v);
                    }
                }
                for v in map.values_mut() {
                    changed |= self.json(v);
                }
                changed
            }
            _ => false,
        }
    }

    /// A response body with every secret replaced before anything cuts it: JSON is redacted on
    /// its decoded strings and written back (so no escape spelling — `\u002B`, `\u003C` —
    /// slips through), other text on its spellings. Binary bodies are returned as they are
    /// (they are described to the model, never shown).
    pub fn body(&self, body: Vec<u8>) -> Vec<u8> {
        if self.needles.is_empty() {
            return body;
        }
        let text = match String::from_utf8(body) {
            Ok(t) => t,
            Err(e) => return e.into_bytes(),
        };
        // Without an escape, every decoded JSON string is its raw text: no spelling found in the
        // raw text means nothing to redact, and no parse is spent on the common case.
        if !text.contains('\\') && !self.needles.iter().any(|n| text.contains(n.as_str())) {
            return text.into_bytes();
        }
        if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&text) {
            if self.json(&mut v) {
                return serde_json::to_vec(&v).unwrap_or_else(|_| REDACTED.as_bytes().to_vec());
            }
            return text.into_bytes();
        }
        self.text(&text).into_bytes()
    }
}

impl Redactor {
    /// [`Redactor::body`] for a body read up to a byte cap (`truncated`: the cap cut it): an
    /// incomplete UTF-8 sequence the cut left at the end is dropped, and the tail is masked
    /// when it is the beginning of a secret ([`Redactor::tail`]).
    pub fn capped_body(&self, mut body: Vec<u8>, truncated: bool) -> Vec<u8> {
        if !truncated {
            return self.body(body);
        }
        if let Err(e) = std::str::from_utf8(&body) {
            if e.error_len().is_none() {
                body.truncate(e.valid_up_to());
            }
        }
        let body = self.body(body);
        if self.needles.is_empty() {
            return body;
        }
        match String::from_utf8(body) {
            Ok(text) => self.tail(&text).into_bytes(),
            Err(e) => e.into_bytes(),
        }
    }
}

/// Every spelling of a secret that an upstream or a log may show: raw; JSON-escaped the ways
/// real encoders write it ([`json_spellings`]: plain, with `\/`, HTML-safe `\u003c`, non-ASCII
/// as `\uXXXX`, every non-alphanumeric as `\u00XX`), and each of those escaped a second time
/// (a JSON document carried as a string inside another); percent-encoded as a path or query
/// component, as a cookie value, as a form value (`+` for spaces) and with every
/// non-alphanumeric byte encoded, each with upper- and lowercase hex.
pub fn forms(value: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let percent = [enc(value), cookie_enc(value), form, utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()];
    let mut out = vec![value.to_string()];
    for once in json_spellings(value) {
        out.extend(json_spellings(&once));
        out.push(once);
    }
    for p in percent {
        out.push(lower_hex(&p));
        out.push(p);
    }
    out.sort();
    out.dedup();
    out
}

/// How JSON encoders escape a string's content (without the quotes): serde's minimal escaping;
/// PHP's `\/`; Go's and others' HTML-safe `\u003c`/`\u003e`/`\u0026`; `\uXXXX` for every
/// non-ASCII character (Python's and PHP's default, with PHP's `\/`); and `\u00XX` for every
/// character but letters and digits, in lower- and uppercase hex.
fn json_spellings(value: &str) -> Vec<String> {
    let plain = serde_json::to_string(value).unwrap_or_default();
    let plain = plain.get(1..plain.len().saturating_sub(1)).unwrap_or("").to_string();
    let u = |c: char, upper: bool| -> String {
        let mut units = [0u16; 2];
        c.encode_utf16(&mut units)
            .iter()
            .map(|u| if upper { format!("\\u{u:04X}") } else { format!("\\u{u:04x}") })
            .collect()
    };
    // Non-ASCII as \uXXXX over serde's escaping (Python's ensure_ascii; PHP's default adds `\/`).
    let ascii = |upper: bool| -> String {
        plain.chars().map(|c| if c.is_ascii() { c.to_string() } else { u(c, upper) }).collect()
    };
    // Every character but letters and digits as \u00XX.
    let all = |upper: bool| -> String {
        value.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_string() } else { u(c, upper) }).collect()
    };
    let slash = plain.replace('/', "\\/");
    let html = plain.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026");
    let php = ascii(false).replace('/', "\\/");
    vec![plain.clone(), slash, html, ascii(false), ascii(true), php, all(false), all(true)]
}

/// `%2F` -> `%2f`: the same encoding with lowercase hex digits, as some servers echo it.
fn lower_hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = 0;
    for (i, c) in s.char_indices() {
        if rest > 0 {
            out.push(c.to_ascii_lowercase());
            rest -= 1;
        } else {
            if c == '%' && s.len() >= i + 3 {
                rest = 2;
            }
            out.push(c);
        }
    }
    out
}

/// One request log line: method, path (never the query string: it may carry keys), status,
/// latency, and the internal detail of a failure, all through the request's redactor.
pub fn log_line(method: &str, path: &str, status: u16, ms: i64, detail: Option<&str>, r: &Redactor) -> String {
    match detail {
        Some(d) => format!("{method} {} -> {status} in {ms} ms: {}", r.text(path), r.text(d)),
        None => format!("{method} {} -> {status} in {ms} ms", r.text(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_sensitive_headers_are_hidden_in_any_case() {
        let r = Redactor::default();
        assert_eq!(r.header("Authorization", "Bearer abc"), "Authorization: [REDACTED]");
        assert_eq!(r.header("COOKIE", "a=b"), "COOKIE: [REDACTED]");
        assert_eq!(r.header("x-api-key", "k"), "x-api-key: [REDACTED]");
        assert_eq!(r.header("X-CSRF-Token", "k"), "X-CSRF-Token: [REDACTED]");
        assert_eq!(r.header("Accept", "application/json"), "Accept: application/json");
    }

    #[test]
    fn scheme_named_headers_and_query_params_are_hidden() {
        let r = Redactor::new(vec!["X-Token".into(), "api_key".into()], [""; 0]);
        assert_eq!(r.header("x-token", "t"), "x-token: [REDACTED]");
        assert_eq!(
            r.url("https://api.example.com/v1?q=pets&api_key=s3cr3t&access_token=tok#frag"),
            "https://api.example.com/v1?q=pets&api_key=[REDACTED]&access_token=[REDACTED]#frag"
        );
        assert_eq!(r.url("https://x/v1?api%5Fkey=s3cr3t&q=1"), "https://x/v1?api%5Fkey=[REDACTED]&q=1");
    }

    #[test]
    fn known_secret_values_are_hidden_anywhere() {
        let r = Redactor::of_values(["sk_live_123456", "ab"]);
        assert_eq!(r.text("upstream said: bad key sk_live_123456!"), "upstream said: bad key [REDACTED]!");
        assert_eq!(r.text("tab"), "tab", "too-short values are ignored");
        assert_eq!(r.url("https://x/p?k=sk_live_123456"), "https://x/p?k=[REDACTED]");
    }

    #[test]
    fn every_wire_and_echo_form_of_a_secret_is_hidden() {
        let secret = "ab.c/d+e=f\"g\\h i<j>&k~";
        let r = Redactor::of_values([secret]);
        let wire = [
            secret.to_string(),
            enc(secret),
            cookie_enc(secret),
            utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
            serde_json::to_string(secret).unwrap(),
            serde_json::to_string(secret).unwrap().replace('/', "\\/"),
            serde_json::to_string(secret)
                .unwrap()
                .replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026"),
        ];
        for w in &wire {
            let out = r.text(&format!("echo: {w} end"));
            assert!(out.contains(REDACTED) && !out.contains("ab.c"), "{w} -> {out}");
        }
    }

    #[test]
    fn json_values_are_redacted_in_every_string_and_key_however_deep() {
        let secret = "sk\"quoted\\slash";
        let r = Redactor::of_values([secret]);
        let inner = serde_json::json!({ "echo": secret }).to_string();
        let mut v = serde_json::json!({
            "content": [{ "type": "text", "text": inner }],
            "structuredContent": { "a": [{ "b": secret }], secret: 1 },
        });
        r.json(&mut v);
        let wire = v.to_string();
        assert!(!wire.contains("quoted"), "{wire}");
        assert_eq!(v["structuredContent"]["a"][0]["b"], REDACTED);
        assert_eq!(v["structuredContent"][REDACTED], 1);
    }

    #[test]
    fn scheme_tokens_basic_passwords_numbers_and_escaped_bodies_are_hidden() {
        let r = Redactor::of_values(["SSWS 00abcDEF123", "Basic dXNlcjpodW50ZXIyMDI2"]);
        assert_eq!(r.text("invalid token 00abcDEF123"), "invalid token [REDACTED]");
        assert_eq!(r.text("bad password hunter2026 for user:hunter2026"), "bad password [REDACTED] for [REDACTED]");
        let pin = Redactor::of_values(["48151623"]);
        let mut v = serde_json::json!({ "pin": 48151623, "other": 7 });
        assert!(pin.json(&mut v));
        assert_eq!(v, serde_json::json!({ "pin": REDACTED, "other": 7 }));
        let plus = Redactor::of_values(["abc+def/ghi=="]);
        let body = br#"{"error":"bad key abc+def\/ghi=="}"#.to_vec();
        let out = String::from_utf8(plus.body(body)).unwrap();
        assert_eq!(out, r#"{"error":"bad key [REDACTED]"}"#);
        assert_eq!(plus.text("k=abc%2bdef%2fghi%3d%3d"), "k=[REDACTED]", "lowercase percent hex");
        let html = plus.body(b"<p>key abc+def/ghi== refused</p>".to_vec());
        assert_eq!(html, b"<p>key [REDACTED] refused</p>");
        assert_eq!(plus.body(vec![0xff, 0x00]), vec![0xff, 0x00], "binary bodies pass (never shown)");
    }

    #[test]
    fn colliding_redacted_keys_are_all_kept_and_debug_hides_the_secrets() {
        let r = Redactor::of_values(["secret-one", "secret-two"]);
        let mut v = serde_json::json!({ "secret-one": 1, "secret-two": 2, "[REDACTED]": 3 });
        r.json(&mut v);
        let mut values: Vec<i64> = v.as_object().unwrap().values().map(|x| x.as_i64().unwrap()).collect();
        values.sort();
        assert_eq!(values, [1, 2, 3]);
        assert!(!format!("{r:?}").contains("secret-one"));
    }

    #[test]
    fn a_hostile_request_cannot_blank_its_own_log_line() {
        let r = Redactor::for_request(
            [("cookie", "a=/mcp/; b=manifest; c=failed; __Host-flowcp_session=short"), ("x-api-key", "srv")],
            &[],
        );
        let line = log_line("POST", "/mcp/srv_1", 503, 1, Some("manifest of srv_1 failed"), &r);
        assert_eq!(line, "POST /mcp/srv_1 -> 503 in 1 ms: manifest of srv_1 failed");
    }

    #[test]
    fn a_request_redactor_covers_its_own_header_values_and_the_deployment_secrets() {
        let headers = [
            ("Authorization", "Bearer fcp_sk_abcdef123456"),
            ("Cookie", "__Host-flowcp_session=sessvalue.mac123; theme=dark"),
            ("X-Api-Key", "key-7890"),
            ("x-csrf-token", "csrf-token-value"),
            ("Accept", "application/json-not-secret"),
        ];
        let r = Redactor::for_request(headers, &["deployment-secret-xyz".to_string()]);
        let line = log_line(
            "POST",
            "/mcp/srv_1",
            500,
            3,
            Some("failed for fcp_sk_abcdef123456 with sessvalue.mac123, key-7890, csrf-token-value, deployment-secret-xyz and application/json-not-secret"),
            &r,
        );
        for s in ["fcp_sk_abcdef123456", "sessvalue.mac123", "key-7890", "csrf-token-value", "deployment-secret-xyz"] {
            assert!(!line.contains(s), "{s} leaked: {line}");
        }
        assert!(line.contains("application/json-not-secret"), "ordinary header values stay: {line}");
        assert!(line.starts_with("POST /mcp/srv_1 -> 500 in 3 ms: failed for [REDACTED]"), "{line}");
    }
}
