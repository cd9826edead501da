//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, the MCP
//! 2025-11-25 default): a client's `client_id` is an https URL with a path, and the document
//! at that URL is its registration. FlowCP fetches it through the SSRF-checked `Http` port (at
//! most 5 KB, 10 s, no redirects) and caches it as an `oauth_clients` row keyed by the URL for
//! an hour, so the rest of the flow treats it like a registered client.

use super::register::{self, Registration};
use super::OAuthError;
use crate::net::{check_url, FetchPolicy, Http, HttpRequest};
use crate::store::oauth_clients::{self, OAuthClient};
use crate::store::Db;

/// Longest document read.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// How long a fetched document is used before it is fetched again.
pub const CACHE_MS: i64 = 3_600_000;
const FETCH_TIMEOUT_MS: u32 = 10_000;

fn invalid(description: impl Into<String>) -> OAuthError {
    OAuthError::new(400, "invalid_client", description)
}

/// Is this `client_id` a metadata document URL (https, with a path other than `/`, no
/// fragment; loopback http only where local fetches are allowed)?
pub fn is_document_url(client_id: &str, policy: FetchPolicy) -> bool {
    let Ok(u) = url::Url::parse(client_id) else { return false };
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    let scheme_ok = u.scheme() == "https" || (policy.allow_loopback && loopback && u.scheme() == "http");
    scheme_ok && u.path() != "/" && u.fragment().is_none() && u.username().is_empty() && u.password().is_none()
}

/// Reads a fetched document: its `client_id` must be the URL it came from, it must be a public
/// client (`token_endpoint_auth_method` absent or `none`), and its redirect URIs and name
/// follow the registration rules.
pub fn parse_document(url: &str, body: &[u8]) -> Result<Registration, OAuthError> {
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(invalid("the client's metadata document is larger than 5 KB"));
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| invalid("the client's metadata document is not JSON"))?;
    if v.get("client_id").and_then(|c| c.as_str()) != Some(url) {
        return Err(invalid("the client's metadata document names another client_id than its URL"));
    }
    match v.get("token_endpoint_auth_method").and_then(|m| m.as_str()) {
        None | Some("none") => {}
        Some(_) => return Err(invalid("only public clients (token_endpoint_auth_method none) are supported")),
    }
    register::parse(body).map_err(|e| invalid(format!("the client's metadata document: {}", e.description)))
}

/// The client a metadata-document `client_id` names: the cached row while fresh, else fetched
/// again (a document that can no longer be fetched is not used).
pub async fn resolve(
    db: &impl Db,
    http: &impl Http,
    policy: FetchPolicy,
    url: &str,
    now_ms: i64,
) -> Result<OAuthClient, OAuthError> {
    let cached = oauth_clients::get(db, url).await.ok().flatten();
    if let Some(c) = cached.filter(|c| now_ms - c.created_at < CACHE_MS) {
        return Ok(c);
    }
    let checked =
        check_url(url, policy).map_err(|b| invalid(format!("the client's metadata URL is not allowed: {}", b.0)))?;
    let req = HttpRequest {
        method: "GET".into(),
        url: checked.to_string(),
        headers: vec![("accept".into(), "application/json".into())],
        body: None,
        timeout_ms: FETCH_TIMEOUT_MS,
    };
    let resp = http
        .send(&req, MAX_DOCUMENT_BYTES)
        .await
        .map_err(|_| invalid("the client's metadata document could not be fetched"))?;
    if resp.status != 200 {
        // Not the status itself: the page must not become a probe of other hosts' answers.
        return Err(invalid("the client's metadata document could not be fetched"));
    }
    if resp.truncated {
        return Err(invalid("the client's metadata document is larger than 5 KB"));
    }
    let reg = parse_document(url, &resp.body)?;
    let client = OAuthClient {
        id: url.to_string(),
        client_name: reg.client_name,
        redirect_uris: reg.redirect_uris,
        application_type: reg.application_type,
        created_at: now_ms,
        last_used_at: None,
    };
    oauth_clients::upsert(db, &client)
        .await
        .map_err(|_| OAuthError::new(500, "server_error", "the client could not be recorded; try again"))?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const URL: &str = "https://app.example/oauth/client.json";

    #[test]
    fn only_https_urls_with_a_path_are_documents() {
        let prod = FetchPolicy::default();
        let dev = FetchPolicy { allow_loopback: true };
        assert!(is_document_url(URL, prod));
        for not in [
            "fcp_cl_abc",
            "https://app.example/",
            "https://app.example",
            "http://app.example/c.json",
            "https://app.example/c.json#x",
            "https://u:p@app.example/c.json",
            "http://127.0.0.1:9/c.json",
        ] {
            assert!(!is_document_url(not, prod), "{not}");
        }
        assert!(is_document_url("http://127.0.0.1:9/c.json", dev));
        assert!(!is_document_url("http://app.example/c.json", dev));
    }

    #[test]
    fn a_document_must_name_itself_and_be_a_public_client() {
        let doc = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();
        let ok = doc(json!({ "client_id": URL, "client_name": "App", "redirect_uris": ["http://127.0.0.1/cb"] }));
        let r = parse_document(URL, &ok).unwrap();
        assert_eq!((r.client_name.as_str(), r.redirect_uris.len()), ("App", 1));
        for bad in [
            doc(json!({ "client_id": "https://evil.example/c.json", "redirect_uris": ["http://127.0.0.1/cb"] })),
            doc(json!({ "client_id": URL, "redirect_uris": ["javascript:alert(1)"] })),
            doc(
                json!({ "client_id": URL, "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "private_key_jwt" }),
            ),
            doc(json!({ "client_id": URL })),
            b"<html>".to_vec(),
            vec![b' '; MAX_DOCUMENT_BYTES + 1],
        ] {
            let e = parse_document(URL, &bad).unwrap_err();
            assert_eq!(e.error, "invalid_client");
        }
    }
}
