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

/// Values shorter than this are never redacted (they would mangle ordinary text).
const MIN_SECRET_LEN: usize = 4;

/// What to hide besides the fixed header list.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Header and query parameter names (case-insensitive) that a security scheme names.
    pub names: Vec<String>,
    /// Secret values (keys, tokens) that must never be printed anywhere. Values shorter than
    /// 4 characters are ignored to avoid mangling ordinary text.
    pub values: Vec<String>,
}

impl Redactor {
    /// A redactor for known secret values only.
    pub fn of_values<S: Into<String>>(values: impl IntoIterator<Item = S>) -> Self {
        Redactor { names: Vec::new(), values: values.into_iter().map(Into::into).collect() }
    }

    /// The redactor of one inbound request: the values of its sensitive headers (the whole
    /// `Authorization` value and its token, each cookie value, the access key, the CSRF token)
    /// plus the deployment's own secrets (`deployment`: session secret, encryption keys).
    pub fn for_request<'h>(
        sensitive_headers: impl IntoIterator<Item = (&'h str, &'h str)>,
        deployment: &[String],
    ) -> Self {
        let mut values: Vec<String> = deployment.to_vec();
        for (name, value) in sensitive_headers {
            let name = name.to_ascii_lowercase();
            if !SENSITIVE_HEADERS.contains(&name.as_str()) {
                continue;
            }
            let value = value.trim();
            values.push(value.to_string());
            match name.as_str() {
                "authorization" | "proxy-authorization" => {
                    if let Some((_, token)) = value.split_once(' ') {
                        values.push(token.trim().to_string());
                    }
                }
                "cookie" | "set-cookie" => {
                    for pair in value.split(';') {
                        if let Some((_, v)) = pair.split_once('=') {
                            values.push(v.trim().to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        Redactor { names: Vec::new(), values }
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
        let mut needles: Vec<String> =
            self.values.iter().filter(|v| v.len() >= MIN_SECRET_LEN).flat_map(|v| forms(v)).collect();
        // Longest first, so a shorter form never splits a longer one before it is seen.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        let mut out = text.to_string();
        for n in needles.iter().filter(|n| n.len() >= MIN_SECRET_LEN) {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), REDACTED);
            }
        }
        out
    }
}

impl Redactor {
    /// A JSON value with every known secret value replaced in every string and object key, at
    /// any depth. Works on decoded strings, so however often the value is serialised later
    /// (a JSON body inside a JSON-RPC result), no escaped spelling slips through.
    pub fn json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) => {
                let r = self.text(s);
                if r != *s {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::Object(map) => {
                let renamed: Vec<(String, String)> = map
                    .keys()
                    .filter_map(|k| {
                        let r = self.text(k);
                        (r != *k).then(|| (k.clone(), r))
                    })
                    .collect();
                for (old, new) in renamed {
                    if let Some(v) = map.remove(&old) {
                        map.insert(new, v);
                    }
                }
                map.values_mut().for_each(|v| self.json(v));
            }
            _ => {}
        }
    }
}

/// Every spelling of a secret that an upstream or a log may show: raw; JSON-escaped (plain,
/// with `\/`, and with HTML-safe `\u003c`-style escapes as Go and others write them);
/// percent-encoded as a path or query component, as a cookie value, as a form value (`+` for
/// spaces) and with every non-alphanumeric byte encoded.
pub fn forms(value: &str) -> Vec<String> {
    let json = serde_json::to_string(value).unwrap_or_default();
    let json = json.get(1..json.len().saturating_sub(1)).unwrap_or("").to_string();
    let json_slash = json.replace('/', "\\/");
    let json_html = json.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026");
    let form: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let mut out = vec![
        value.to_string(),
        json,
        json_slash,
        json_html,
        enc(value),
        cookie_enc(value),
        form,
        utf8_percent_encode(value, NON_ALPHANUMERIC).to_string(),
    ];
    out.sort();
    out.dedup();
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
        let r = Redactor { names: vec!["X-Token".into(), "api_key".into()], values: vec![] };
        assert_eq!(r.header("x-token", "t"), "x-token: [REDACTED]");
        assert_eq!(
            r.url("https://api.example.com/v1?q=pets&api_key=s3cr3t&access_token=tok#frag"),
            "https://api.example.com/v1?q=pets&api_key=[REDACTED]&access_token=[REDACTED]#frag"
        );
        assert_eq!(r.url("https://x/v1?api%5Fkey=s3cr3t&q=1"), "https://x/v1?api%5Fkey=[REDACTED]&q=1");
    }

    #[test]
    fn known_secret_values_are_hidden_anywhere() {
        let r = Redactor { names: vec![], values: vec!["sk_live_123456".into(), "ab".into()] };
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
