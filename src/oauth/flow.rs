//! The authorization-code flow's decisions, as plain functions (the routes that use them are
//! the next part of issue 13): what an authorization request must carry, where its errors go,
//! the URL that sends the end user to the upstream provider, and the checks that redeem a code.
//!
//! Errors about the client or its redirect URI are shown on FlowCP's own page and never
//! redirected (an unverified redirect URI must not receive anything, RFC 6749 §4.1.2.1); every
//! other error is redirected with `error`, `state` and FlowCP's `iss` (RFC 9207).

use super::resource::{target_of, Target};
use super::tokens::Grant;
use super::{pkce, redirect, OAuthError};
use crate::store::oauth_clients::OAuthClient;

/// Longest `state` and `scope` accepted from a client.
const MAX_STATE_CHARS: usize = 1_024;
const MAX_SCOPE_CHARS: usize = 1_024;

/// A valid authorization request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    /// What the grant is for: one published server, or FlowCP's own MCP server.
    pub target: Target,
    /// FlowCP scopes asked for (space-separated, as sent).
    pub scope: String,
}

impl AuthorizeRequest {
    /// The published server the request is for (`None`: FlowCP's own MCP server).
    pub fn server_id(&self) -> Option<&str> {
        match &self.target {
            Target::Server(id) => Some(id),
            Target::Management => None,
        }
    }
}

/// Where an authorization error goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Shown on FlowCP's page: the client or its redirect URI cannot be trusted.
    Page(&'static str),
    /// Redirected to the client's (verified) redirect URI.
    Redirect { redirect_uri: String, state: Option<String>, error: &'static str, description: &'static str },
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut found = params.iter().filter(|(k, _)| k == name);
    match (found.next(), found.next()) {
        (Some((_, v)), None) => Some(v.as_str()),
        // A repeated parameter is an error (RFC 6749 §3.1): treated as absent, then refused.
        _ => None,
    }
}

/// Validates `GET /oauth/authorize`. `client`: the registered client `client_id` names, looked
/// up by the caller (`None` when unknown). `origin`: FlowCP's issuer.
pub fn validate_authorize(
    params: &[(String, String)],
    client: Option<&OAuthClient>,
    origin: &str,
) -> Result<AuthorizeRequest, AuthorizeError> {
    let client_id = param(params, "client_id").ok_or(AuthorizeError::Page("client_id is missing or repeated"))?;
    let client =
        client.filter(|c| c.id == client_id).ok_or(AuthorizeError::Page("the client is not registered here"))?;
    let redirect_uri = match param(params, "redirect_uri") {
        Some(r) => r.to_string(),
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return Err(AuthorizeError::Page("redirect_uri is required for a client with several")),
    };
    if !client.redirect_uris.iter().any(|registered| redirect::matches(registered, &redirect_uri)) {
        return Err(AuthorizeError::Page("redirect_uri is not one the client registered"));
    }
    let state = param(params, "state").map(str::to_string);
    let fail = |error: &'static str, description: &'static str| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone().filter(|s| s.len() <= MAX_STATE_CHARS),
        error,
        description,
    };
    if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_CHARS) {
        return Err(fail("invalid_request", "state is too long"));
    }
    if param(params, "response_type") != Some("code") {
        return Err(fail("unsupported_response_type", "response_type must be code"));
    }
    let challenge = param(params, "code_challenge");
    pkce::challenge_ok(challenge, param(params, "code_challenge_method"))
        .map_err(|_| fail("invalid_request", "PKCE with code_challenge_method S256 is required"))?;
    let scope = param(params, "scope").unwrap_or("").to_string();
    if scope.len() > MAX_SCOPE_CHARS
        || !scope.bytes().all(|b| b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\'))
    {
        return Err(fail("invalid_scope", "scope must be space-separated scope tokens"));
    }
    let target = target_of(param(params, "resource"), Some(&scope), origin)
        .map_err(|_| fail("invalid_target", "resource does not name an MCP server of this authorization server"))?;
    Ok(AuthorizeRequest {
        client_id: client.id.clone(),
        redirect_uri,
        state,
        code_challenge: challenge.unwrap_or_default().to_string(),
        target,
        scope,
    })
}

/// `redirect_uri` with `pairs` added to its query (existing query parameters kept).
fn with_query(redirect_uri: &str, pairs: &[(&str, &str)]) -> Option<String> {
    let mut u = url::Url::parse(redirect_uri).ok()?;
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    Some(u.to_string())
}

/// The redirect that carries an authorization error (with `iss`, RFC 9207).
pub fn error_redirect(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> Option<String> {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer));
    with_query(redirect_uri, &pairs)
}

/// The redirect that carries FlowCP's authorization code (with `iss`, RFC 9207).
pub fn code_redirect(redirect_uri: &str, code: &str, state: Option<&str>, issuer: &str) -> Option<String> {
    let mut pairs = vec![("code", code)];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer));
    with_query(redirect_uri, &pairs)
}

/// What FlowCP sends the end user to at the upstream provider: the owner's client id, FlowCP's
/// callback, the owner's scopes, FlowCP's own single-use `state` and PKCE challenge, and the
/// owner's extra parameters. The MCP client's `resource` is never forwarded (PX-05).
pub fn upstream_authorize_url(
    authorize_url: &str,
    client_id: &str,
    callback: &str,
    scopes: &[String],
    state: &str,
    code_challenge: &str,
    extra: &[(String, String)],
) -> Option<String> {
    let reserved = super::providers::RESERVED_AUTHORIZE_PARAMS;
    let mut u = url::Url::parse(authorize_url).ok()?;
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "localhost"));
    if !(u.scheme() == "https" || (u.scheme() == "http" && loopback)) {
        return None;
    }
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code");
        q.append_pair("client_id", client_id);
        q.append_pair("redirect_uri", callback);
        if !scopes.is_empty() {
            q.append_pair("scope", &scopes.join(" "));
        }
        q.append_pair("state", state);
        q.append_pair("code_challenge", code_challenge);
        q.append_pair("code_challenge_method", "S256");
        for (k, v) in extra.iter().filter(|(k, _)| !reserved.contains(&k.as_str())) {
            q.append_pair(k, v);
        }
    }
    Some(u.to_string())
}

/// The checks that redeem an opened authorization code at the token endpoint: the same client,
/// the same redirect URI (exactly), and a PKCE verifier that hashes to the code's challenge.
/// Every failure is `invalid_grant` (RFC 6749 §5.2), saying no more.
pub fn redeem_code(
    grant: &Grant,
    client_id: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> Result<(), OAuthError> {
    let invalid =
        || OAuthError::new(400, "invalid_grant", "the authorization code is invalid, expired or already used");
    if grant.client_id != client_id {
        return Err(invalid());
    }
    if grant.redirect_uri.as_deref() != redirect_uri {
        return Err(invalid());
    }
    match (verifier, grant.code_challenge.as_deref()) {
        (Some(v), Some(c)) if pkce::verify_s256(v, c) => Ok(()),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::tokens::Upstream;

    const O: &str = "https://flowcp.example";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn client() -> OAuthClient {
        OAuthClient {
            id: "fcp_cl_1".into(),
            client_name: "Claude Code".into(),
            redirect_uris: vec!["http://localhost/callback".into(), "https://claude.ai/api/mcp/auth_callback".into()],
            application_type: "native".into(),
            created_at: 0,
            last_used_at: None,
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("response_type", "code"),
            ("client_id", "fcp_cl_1"),
            ("redirect_uri", "http://localhost:51234/callback"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("state", "xyz"),
            ("resource", "https://flowcp.example/mcp/srv_A/"),
            ("scope", "mcp:srv_A repo"),
        ]
    }

    #[test]
    fn a_request_as_real_clients_send_it_is_valid() {
        let r = validate_authorize(&params(&good()), Some(&client()), O).unwrap();
        assert_eq!(r.server_id(), Some("srv_A"));
        assert_eq!(r.redirect_uri, "http://localhost:51234/callback");
        assert_eq!(r.state.as_deref(), Some("xyz"));
        // Without resource (Claude Code 2.1.251): the server scope decides.
        let mut p = good();
        p.retain(|(k, _)| *k != "resource");
        assert_eq!(validate_authorize(&params(&p), Some(&client()), O).unwrap().server_id(), Some("srv_A"));
    }

    #[test]
    fn untrusted_clients_and_redirects_get_a_page_never_a_redirect() {
        let with = |k: &'static str, v: &'static str| {
            let mut p = good();
            p.retain(|(x, _)| *x != k);
            p.push((k, v));
            params(&p)
        };
        for (p, c) in [
            (with("client_id", "fcp_cl_other"), Some(client())),
            (params(&good()), None),
            (with("redirect_uri", "https://evil.example/cb"), Some(client())),
            (with("redirect_uri", "javascript:alert(1)"), Some(client())),
            (with("redirect_uri", "http://127.0.0.1:5/callback"), Some(client())),
        ] {
            assert!(matches!(validate_authorize(&p, c.as_ref(), O), Err(AuthorizeError::Page(_))), "{p:?}");
        }
        let mut twice = params(&good());
        twice.push(("client_id".into(), "fcp_cl_1".into()));
        assert!(matches!(validate_authorize(&twice, Some(&client()), O), Err(AuthorizeError::Page(_))));
        let mut no_redirect = good();
        no_redirect.retain(|(k, _)| *k != "redirect_uri");
        assert!(matches!(validate_authorize(&params(&no_redirect), Some(&client()), O), Err(AuthorizeError::Page(_))));
    }

    #[test]
    fn other_errors_are_redirected_with_their_code() {
        let with = |k: &'static str, v: &'static str| {
            let mut p = good();
            p.retain(|(x, _)| *x != k);
            p.push((k, v));
            params(&p)
        };
        let without = |k: &'static str| {
            let mut p = good();
            p.retain(|(x, _)| *x != k);
            params(&p)
        };
        for (p, code) in [
            (with("response_type", "token"), "unsupported_response_type"),
            (with("code_challenge_method", "plain"), "invalid_request"),
            (without("code_challenge"), "invalid_request"),
            (without("code_challenge_method"), "invalid_request"),
            (with("resource", "https://evil.example/mcp/srv_A"), "invalid_target"),
            (with("resource", "https://flowcp.example/mcp"), "invalid_target"),
            (with("scope", "mcp:srv_B"), "invalid_target"),
            (with("scope", "a\"b"), "invalid_scope"),
        ] {
            match validate_authorize(&p, Some(&client()), O) {
                Err(AuthorizeError::Redirect { error, redirect_uri, state, .. }) => {
                    assert_eq!(error, code, "{p:?}");
                    assert_eq!(redirect_uri, "http://localhost:51234/callback");
                    assert_eq!(state.as_deref(), Some("xyz"));
                }
                other => panic!("{p:?}: {other:?}"),
            }
        }
        let url = error_redirect("https://claude.ai/cb?keep=1", "access_denied", "no", Some("s t"), O).unwrap();
        assert_eq!(url, "https://claude.ai/cb?keep=1&error=access_denied&error_description=no&state=s+t&iss=https%3A%2F%2Fflowcp.example");
        let url = code_redirect("http://localhost:5/cb", "fcp_ac.c.x", None, O).unwrap();
        assert_eq!(url, "http://localhost:5/cb?code=fcp_ac.c.x&iss=https%3A%2F%2Fflowcp.example");
    }

    #[test]
    fn the_upstream_never_sees_the_clients_resource_and_extras_cannot_override_the_flow() {
        let extra = vec![
            ("prompt".to_string(), "consent".to_string()),
            ("resource".to_string(), "x".to_string()),
            ("state".to_string(), "evil".to_string()),
        ];
        let u = upstream_authorize_url(
            "https://github.com/login/oauth/authorize",
            "owner-app",
            "https://flowcp.example/oauth/callback",
            &["repo".into(), "read:user".into()],
            "st8",
            CHALLENGE,
            &extra,
        )
        .unwrap();
        assert_eq!(
            u,
            format!("https://github.com/login/oauth/authorize?response_type=code&client_id=owner-app&redirect_uri=https%3A%2F%2Fflowcp.example%2Foauth%2Fcallback&scope=repo+read%3Auser&state=st8&code_challenge={CHALLENGE}&code_challenge_method=S256&prompt=consent")
        );
        assert!(
            upstream_authorize_url("http://idp.example/authorize", "a", "b", &[], "s", CHALLENGE, &[]).is_none(),
            "https only"
        );
        assert!(
            upstream_authorize_url("http://127.0.0.1:9/authorize", "a", "b", &[], "s", CHALLENGE, &[]).is_some(),
            "local fakes"
        );
    }

    #[test]
    fn a_code_is_redeemed_only_by_its_client_with_its_redirect_and_verifier() {
        let g = Grant {
            client_id: "fcp_cl_1".into(),
            scope: "mcp:srv_A".into(),
            iat_ms: 0,
            exp_ms: 60_000,
            generation: 0,
            upstream: Upstream {
                access_token: "u".into(),
                refresh_token: None,
                expires_at_ms: None,
                scope: None,
                provider: None,
            },
            redirect_uri: Some("http://localhost:5/cb".into()),
            code_challenge: Some(CHALLENGE.into()),
            jti: None,
        };
        assert!(redeem_code(&g, "fcp_cl_1", Some("http://localhost:5/cb"), Some(VERIFIER)).is_ok());
        for (client, redirect, verifier) in [
            ("fcp_cl_2", Some("http://localhost:5/cb"), Some(VERIFIER)),
            ("fcp_cl_1", Some("http://localhost:6/cb"), Some(VERIFIER)),
            ("fcp_cl_1", None, Some(VERIFIER)),
            ("fcp_cl_1", Some("http://localhost:5/cb"), None),
            ("fcp_cl_1", Some("http://localhost:5/cb"), Some(CHALLENGE)),
        ] {
            let e = redeem_code(&g, client, redirect, verifier).unwrap_err();
            assert_eq!((e.status, e.error), (400, "invalid_grant"));
        }
    }
}
