//! Redirect URIs: which a client may register, and which requested URI matches a registered
//! one (RFC 6749 §3.1.2, RFC 8252 §7.3, OAuth 2.1).
//!
//! Registrable: `https` URIs; `http` only on loopback (`localhost`, `127.0.0.1`, `[::1]`);
//! private-use schemes of native clients (`cursor://…`, `vscode://…`, `com.example.app:/cb`).
//! Refused: schemes that run or carry content in the browser (`javascript:`, `data:`,
//! `vbscript:`, `file:`, `blob:`, `about:`), `http` elsewhere, fragments, user info, and
//! anything unparsable. Matching is exact (string equality of the parsed form), except that a
//! loopback URI matches on any port: native clients listen on an ephemeral port and register
//! the portless URI.

/// Longest redirect URI accepted.
const MAX_REDIRECT_CHARS: usize = 2_048;

const REFUSED_SCHEMES: &[&str] = &["javascript", "data", "vbscript", "file", "blob", "about", "ws", "wss", "ftp"];

fn is_loopback(u: &url::Url) -> bool {
    matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
}

/// A redirect URI a client may register (`Err`: why not, safe to show).
pub fn validate(uri: &str) -> Result<url::Url, &'static str> {
    if uri.len() > MAX_REDIRECT_CHARS {
        return Err("redirect_uri is too long");
    }
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("redirect_uri must not contain spaces or control characters");
    }
    let u = url::Url::parse(uri).map_err(|_| "redirect_uri must be an absolute URI")?;
    if u.fragment().is_some() {
        return Err("redirect_uri must not have a fragment");
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("redirect_uri must not carry user information");
    }
    let scheme = u.scheme();
    if REFUSED_SCHEMES.contains(&scheme) {
        return Err("redirect_uri uses a scheme that is not allowed");
    }
    match scheme {
        "https" => {
            if u.host_str().is_none_or(str::is_empty) {
                return Err("redirect_uri must name a host");
            }
        }
        "http" => {
            if !is_loopback(&u) {
                return Err("an http redirect_uri must be a loopback address (localhost, 127.0.0.1, [::1])");
            }
        }
        // A private-use scheme (RFC 8252 §7.1): a native app's own, with a dot or a known
        // editor name; a bare single word like `x:` is refused.
        other => {
            let known = ["cursor", "vscode", "vscode-insiders", "windsurf", "zed", "claude"];
            if !(other.contains('.') || known.contains(&other)) {
                return Err("redirect_uri uses a scheme that is not allowed");
            }
        }
    }
    Ok(u)
}

/// Does `requested` match `registered`? Exact, except a loopback URI on any port.
pub fn matches(registered: &str, requested: &str) -> bool {
    let (Ok(reg), Ok(req)) = (validate(registered), validate(requested)) else {
        return false;
    };
    if reg.scheme() == "http" && is_loopback(&reg) {
        let mut req_no_port = req.clone();
        let mut reg_no_port = reg.clone();
        if req_no_port.set_port(None).is_err() || reg_no_port.set_port(None).is_err() {
            return false;
        }
        return req.scheme() == "http" && reg_no_port.as_str() == req_no_port.as_str();
    }
    reg.as_str() == req.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_real_clients_register_is_accepted() {
        for u in [
            "https://claude.ai/api/mcp/auth_callback",
            "https://chatgpt.com/connector/oauth/abc123",
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "http://localhost:3118/callback",
            "http://localhost/callback",
            "http://127.0.0.1:33418/",
            "http://[::1]:6274/oauth/callback",
            "https://vscode.dev/redirect",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(validate(u).is_ok(), "{u}: {:?}", validate(u));
        }
    }

    #[test]
    fn dangerous_or_open_redirects_are_refused() {
        for u in [
            "javascript:alert(1)",
            "JavaScript://%0aalert(1)",
            "data:text/html,<script>x</script>",
            "vbscript:msgbox",
            "file:///etc/passwd",
            "blob:https://x/1",
            "http://evil.example/cb",
            "http://localhost.evil.example/cb",
            "https://claude.ai/cb#frag",
            "https://user@claude.ai/cb",
            "https://",
            "x:callback",
            "/relative/cb",
            "https://claude.ai/cb with space",
            "",
        ] {
            assert!(validate(u).is_err(), "{u}");
        }
        assert!(validate(&format!("https://a.example/{}", "x".repeat(3_000))).is_err());
    }

    #[test]
    fn matching_is_exact_except_the_loopback_port() {
        assert!(matches("https://claude.ai/api/mcp/auth_callback", "https://claude.ai/api/mcp/auth_callback"));
        assert!(!matches("https://claude.ai/api/mcp/auth_callback", "https://claude.ai/api/mcp/auth_callback/x"));
        assert!(!matches("https://claude.ai/cb", "https://claude.ai/cb?x=1"));
        assert!(!matches("https://claude.ai/cb", "https://claude.ai:8443/cb"));
        assert!(matches("http://localhost/callback", "http://localhost:51234/callback"));
        assert!(matches("http://127.0.0.1:33418/", "http://127.0.0.1:40000/"));
        assert!(!matches("http://localhost/callback", "http://127.0.0.1:51234/callback"), "host is exact");
        assert!(!matches("http://localhost/callback", "http://localhost:51234/other"));
        assert!(!matches("http://localhost/callback", "https://localhost:51234/callback"));
        assert!(matches(
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "cursor://anysphere.cursor-mcp/oauth/callback"
        ));
        assert!(!matches("javascript:alert(1)", "javascript:alert(1)"), "never, even if stored");
    }
}
