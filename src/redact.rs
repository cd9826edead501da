//! The one redaction function every log line goes through (DESIGN §8).
//!
//! Sensitive headers (`Authorization`, `Cookie`, `Set-Cookie`, `X-Api-Key`,
//! `Proxy-Authorization`, plus any name a security scheme declares) and query parameters named
//! by a security scheme are replaced by `[REDACTED]`; any known secret value that still appears
//! in the text is replaced too. Logging code never prints a header, URL or value without it.

pub const REDACTED: &str = "[REDACTED]";

const ALWAYS_SENSITIVE: [&str; 5] = ["authorization", "cookie", "set-cookie", "x-api-key", "proxy-authorization"];

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
    fn sensitive_name(&self, name: &str) -> bool {
        let n = name.to_ascii_lowercase();
        ALWAYS_SENSITIVE.contains(&n.as_str()) || self.names.iter().any(|s| s.eq_ignore_ascii_case(name))
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

    /// Free text with every known secret value replaced.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.values.iter().filter(|v| v.len() >= 4) {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_sensitive_headers_are_hidden_in_any_case() {
        let r = Redactor::default();
        assert_eq!(
            r.header("Authorization", "Bearer abc"),
            "authorization: [REDACTED]".replace("authorization", "Authorization")
        );
        assert_eq!(r.header("COOKIE", "a=b"), "COOKIE: [REDACTED]");
        assert_eq!(r.header("x-api-key", "k"), "x-api-key: [REDACTED]");
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
    }

    #[test]
    fn known_secret_values_are_hidden_anywhere() {
        let r = Redactor { names: vec![], values: vec!["sk_live_123456".into(), "ab".into()] };
        assert_eq!(r.text("upstream said: bad key sk_live_123456!"), "upstream said: bad key [REDACTED]!");
        assert_eq!(r.text("tab"), "tab", "too-short values are ignored");
        assert_eq!(r.url("https://x/p?k=sk_live_123456"), "https://x/p?k=[REDACTED]");
    }
}
