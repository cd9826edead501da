//! Dynamic client registration (RFC 7591), as MCP clients use it: public clients (no secret),
//! `authorization_code` and `refresh_token`, redirect URIs checked by [`super::redirect`].
//! Requested metadata FlowCP does not support is replaced, not refused (RFC 7591 §3.2.1
//! allows it), so a client asking for `client_secret_post` still gets a working public
//! registration: `token_endpoint_auth_method` is always `none`, and PKCE protects the code.

use serde_json::{json, Value};

use super::{redirect, OAuthError};

/// Longest registration request read.
pub const MAX_REGISTRATION_BYTES: usize = 16 * 1024;
/// Redirect URIs one client may register (Cursor sends 3).
const MAX_REDIRECT_URIS: usize = 10;
const MAX_NAME_CHARS: usize = 200;
/// Bytes of redirect URIs one client may register in all (a stored row stays small).
const MAX_REDIRECT_BYTES: usize = 2_048;

/// What a registration request asks for, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub application_type: String,
}

fn invalid(error: &'static str, description: impl Into<String>) -> OAuthError {
    OAuthError::new(400, error, description)
}

/// Reads a registration request body.
pub fn parse(body: &[u8]) -> Result<Registration, OAuthError> {
    if body.len() > MAX_REGISTRATION_BYTES {
        return Err(invalid("invalid_client_metadata", "the registration request is larger than 16 KB"));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| invalid("invalid_client_metadata", "the registration request must be a JSON object"))?;
    let Value::Object(m) = v else {
        return Err(invalid("invalid_client_metadata", "the registration request must be a JSON object"));
    };
    let uris = match m.get("redirect_uris") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => return Err(invalid("invalid_redirect_uri", "redirect_uris must be a non-empty list")),
    };
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(invalid("invalid_redirect_uri", format!("at most {MAX_REDIRECT_URIS} redirect_uris")));
    }
    let mut redirect_uris = Vec::new();
    for u in uris {
        let Some(s) = u.as_str() else {
            return Err(invalid("invalid_redirect_uri", "each redirect_uri must be a string"));
        };
        redirect::validate(s).map_err(|why| invalid("invalid_redirect_uri", why))?;
        if redirect_uris.iter().map(String::len).sum::<usize>() + s.len() > MAX_REDIRECT_BYTES {
            return Err(invalid("invalid_redirect_uri", "the redirect_uris are longer than 2 KB in all"));
        }
        if !redirect_uris.iter().any(|r| r == s) {
            redirect_uris.push(s.to_string());
        }
    }
    let client_name = match m.get("client_name") {
        None | Some(Value::Null) => "Unnamed MCP client".to_string(),
        Some(Value::String(n)) => {
            let n = n.trim();
            // A consent page shows it: no control, format or bidi characters that could make it
            // read as another client's name.
            if n.is_empty()
                || n.chars().count() > MAX_NAME_CHARS
                || n.chars().any(|c| c.is_control() || crate::api::input::is_format_char(c))
            {
                return Err(invalid(
                    "invalid_client_metadata",
                    "client_name must be 1-200 characters without control, format or bidi characters",
                ));
            }
            n.to_string()
        }
        Some(_) => return Err(invalid("invalid_client_metadata", "client_name must be a string")),
    };
    if let Some(types) = m.get("response_types") {
        let ok = types.as_array().is_some_and(|t| t.iter().any(|x| x == "code"));
        if !ok {
            return Err(invalid("invalid_client_metadata", "response_types must include code"));
        }
    }
    if let Some(grants) = m.get("grant_types") {
        let ok = grants.as_array().is_some_and(|g| g.iter().any(|x| x == "authorization_code"));
        if !ok {
            return Err(invalid("invalid_client_metadata", "grant_types must include authorization_code"));
        }
    }
    let application_type = match m.get("application_type").and_then(Value::as_str) {
        Some("native") => "native",
        Some("web") => "web",
        None => {
            // RFC 7591 defaults to web; a client registering only loopback or private-use
            // redirect URIs is a native app.
            if redirect_uris.iter().all(|u| !u.starts_with("https://")) {
                "native"
            } else {
                "web"
            }
        }
        Some(_) => return Err(invalid("invalid_client_metadata", "application_type must be web or native")),
    };
    Ok(Registration { client_name, redirect_uris, application_type: application_type.to_string() })
}

/// The registration response (RFC 7591 §3.2.1): integer timestamps, no secret.
pub fn response(client_id: &str, issued_at_ms: i64, r: &Registration) -> Value {
    json!({
        "client_id": client_id,
        "client_id_issued_at": issued_at_ms / 1000,
        "client_name": r.client_name,
        "redirect_uris": r.redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": r.application_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(v: Value) -> Result<Registration, OAuthError> {
        parse(&serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn what_real_clients_send_registers_as_a_public_client() {
        // Cursor: three redirect URIs in one request, one of them a private-use scheme.
        let r = reg(json!({"client_name": "Cursor", "redirect_uris": [
            "cursor://anysphere.cursor-mcp/oauth/callback", "https://www.cursor.com/agents/mcp/oauth/callback",
            "http://localhost:3334/callback"], "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]}))
        .unwrap();
        assert_eq!(r.redirect_uris.len(), 3);
        assert_eq!(r.application_type, "web");
        // Claude Code's captured DCR body; a confidential request is registered public.
        let r = reg(json!({"client_name": "Claude Code", "redirect_uris": ["http://localhost:3118/callback"],
            "application_type": "native", "token_endpoint_auth_method": "client_secret_post"}))
        .unwrap();
        let out = response("fcp_cl_1", 1_800_000_000_123, &r);
        assert_eq!(out["client_id_issued_at"], json!(1_800_000_000));
        assert_eq!(out["token_endpoint_auth_method"], "none");
        assert!(out.get("client_secret").is_none());
        assert_eq!(reg(json!({"redirect_uris": ["http://127.0.0.1:9/cb"]})).unwrap().application_type, "native");
        assert_eq!(reg(json!({"redirect_uris": ["http://127.0.0.1:9/cb"]})).unwrap().client_name, "Unnamed MCP client");
    }

    #[test]
    fn bad_registrations_get_the_rfc_7591_error_codes() {
        for (body, code) in [
            (json!({}), "invalid_redirect_uri"),
            (json!({"redirect_uris": []}), "invalid_redirect_uri"),
            (json!({"redirect_uris": "https://a.example/cb"}), "invalid_redirect_uri"),
            (json!({"redirect_uris": ["javascript:alert(1)"]}), "invalid_redirect_uri"),
            (json!({"redirect_uris": ["https://a.example/cb", "data:text/html,x"]}), "invalid_redirect_uri"),
            (json!({"redirect_uris": ["http://evil.example/cb"]}), "invalid_redirect_uri"),
            (json!({"redirect_uris": [1]}), "invalid_redirect_uri"),
            (
                json!({"redirect_uris": (0..11).map(|i| format!("https://a.example/{i}")).collect::<Vec<_>>()}),
                "invalid_redirect_uri",
            ),
            (json!({"redirect_uris": ["https://a.example/cb"], "client_name": "x\u{7}"}), "invalid_client_metadata"),
            (
                json!({"redirect_uris": ["https://a.example/cb"], "client_name": "n".repeat(201)}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["client_credentials"]}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["https://a.example/cb"], "application_type": "desktop"}),
                "invalid_client_metadata",
            ),
            (json!([1]), "invalid_client_metadata"),
        ] {
            let e = reg(body.clone()).unwrap_err();
            assert_eq!((e.status, e.error), (400, code), "{body}");
        }
        assert_eq!(parse(b"{nope").unwrap_err().error, "invalid_client_metadata");
        assert_eq!(parse(&vec![b' '; MAX_REGISTRATION_BYTES + 1]).unwrap_err().error, "invalid_client_metadata");
    }
}
