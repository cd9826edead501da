//! The upstream provider of an `oauth` server as its owner configures it: presets for the
//! common providers (their endpoints filled in), a generic OpenID Connect provider by its
//! discovery document, and extra authorize parameters. Plain functions; the owner API fetches
//! the discovery document.

use serde_json::{json, Map, Value};

/// Parameters FlowCP itself sets on the upstream authorize URL (an owner cannot override them).
pub const RESERVED_AUTHORIZE_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
    "request",
    "request_uri",
    "response_mode",
];

/// The presets, by their `auth_config.provider` name.
pub const PRESETS: &[&str] = &["custom", "github", "google", "entra", "oidc"];

/// What applying a preset needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The endpoints are known (a fixed preset, or the owner's own URLs).
    Done,
    /// `oidc`: fetch this discovery document, then [`apply_discovery`].
    Discover(String),
}

fn text<'a>(cfg: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    cfg.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// Fills a preset's endpoints into `cfg` (they replace any the request sent) and its default
/// authorize parameters (kept when the owner sent their own). Errors are for the owner.
pub fn apply_preset(cfg: &mut Map<String, Value>) -> Result<Next, String> {
    let provider = match cfg.get("provider") {
        None | Some(Value::Null) => "custom",
        Some(Value::String(p)) => p.as_str(),
        Some(_) => return Err("auth_config.provider must be a text".into()),
    };
    let endpoints = match provider {
        "custom" => return Ok(Next::Done),
        "github" => (
            "https://github.com/login/oauth/authorize".to_string(),
            "https://github.com/login/oauth/access_token".to_string(),
        ),
        "google" => {
            // Google gives a refresh token only with offline access, and again only on consent.
            if !cfg.contains_key("authorize_params") {
                cfg.insert("authorize_params".into(), json!({ "access_type": "offline", "prompt": "consent" }));
            }
            (
                "https://accounts.google.com/o/oauth2/v2/auth".to_string(),
                "https://oauth2.googleapis.com/token".to_string(),
            )
        }
        "entra" => {
            let tenant = text(cfg, "tenant").unwrap_or("organizations").to_string();
            let ok = (1..=64).contains(&tenant.len())
                && tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !ok {
                return Err(
                    "auth_config.tenant must be a tenant id, a domain, common, organizations or consumers".into()
                );
            }
            cfg.insert("tenant".into(), json!(tenant));
            let base = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0");
            (format!("{base}/authorize"), format!("{base}/token"))
        }
        "oidc" => {
            let url = text(cfg, "discovery_url")
                .ok_or("auth_config.discovery_url is required with provider oidc (the issuer's /.well-known/openid-configuration)")?;
            return Ok(Next::Discover(url.to_string()));
        }
        other => return Err(format!("auth_config.provider {other:?} is not one of {}", PRESETS.join(", "))),
    };
    cfg.insert("authorize_url".into(), json!(endpoints.0));
    cfg.insert("token_url".into(), json!(endpoints.1));
    Ok(Next::Done)
}

/// Fills the endpoints and issuer of an OpenID Connect provider from its discovery document
/// (fetched from `discovery_url`). The issuer must be the discovery URL's own prefix
/// (OpenID Connect Discovery §4.3), and the endpoints https.
pub fn apply_discovery(cfg: &mut Map<String, Value>, discovery_url: &str, doc: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(doc).map_err(|_| "the discovery document is not JSON".to_string())?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= 2048);
    let issuer = field("issuer").ok_or("the discovery document has no issuer")?;
    let expected = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    if expected != discovery_url {
        return Err(format!("the discovery document's issuer {issuer:?} does not match its URL"));
    }
    let (Some(authorize), Some(token)) = (field("authorization_endpoint"), field("token_endpoint")) else {
        return Err("the discovery document lacks authorization_endpoint or token_endpoint".into());
    };
    if let Some(methods) = v.get("code_challenge_methods_supported").and_then(Value::as_array) {
        if !methods.iter().any(|m| m == "S256") {
            return Err("the provider does not support PKCE with S256".into());
        }
    }
    for u in [authorize, token] {
        if url::Url::parse(u).is_err() {
            return Err(format!("the discovery document's endpoint {u:?} is not a URL"));
        }
    }
    cfg.insert("issuer".into(), json!(issuer));
    cfg.insert("authorize_url".into(), json!(authorize));
    cfg.insert("token_url".into(), json!(token));
    Ok(())
}

/// A form POST to a provider's token endpoint (`url` already checked): the grant's
/// parameters, then the owner's client id and secret (sent only here, in the body).
pub fn token_request(
    url: &str,
    grant: &[(&str, &str)],
    client_id: &str,
    client_secret: &str,
    timeout_ms: u32,
) -> crate::net::HttpRequest {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in grant {
        form.append_pair(k, v);
    }
    let body = form.append_pair("client_id", client_id).append_pair("client_secret", client_secret).finish();
    crate::net::HttpRequest {
        method: "POST".into(),
        url: url.to_string(),
        headers: vec![
            ("content-type".into(), "application/x-www-form-urlencoded".into()),
            ("accept".into(), "application/json".into()),
        ],
        body: Some(body.into_bytes()),
        timeout_ms,
    }
}

/// `auth_config.authorize_params`: at most 16 short text pairs, none a parameter FlowCP sets.
pub fn authorize_params(cfg: &Value) -> Result<Vec<(String, String)>, String> {
    let bad = || {
        "auth_config.authorize_params must map up to 16 parameter names to short texts, none of them one FlowCP sets (response_type, client_id, redirect_uri, scope, state, code_challenge, code_challenge_method, resource)".to_string()
    };
    match cfg.get("authorize_params") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(o)) if o.len() <= 16 => o
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().ok_or_else(bad)?;
                let name_ok = (1..=64).contains(&k.len())
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
                if !name_ok
                    || v.len() > 512
                    || v.chars().any(char::is_control)
                    || RESERVED_AUTHORIZE_PARAMS.contains(&k.as_str())
                {
                    return Err(bad());
                }
                Ok((k.clone(), v.to_string()))
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn presets_fill_their_endpoints() {
        let mut c = cfg(json!({ "provider": "github", "authorize_url": "https://evil.example/a" }));
        assert_eq!(apply_preset(&mut c), Ok(Next::Done));
        assert_eq!(c["authorize_url"], "https://github.com/login/oauth/authorize");
        assert_eq!(c["token_url"], "https://github.com/login/oauth/access_token");
        let mut c = cfg(json!({ "provider": "google" }));
        apply_preset(&mut c).unwrap();
        assert_eq!(c["authorize_params"]["access_type"], "offline");
        let mut c = cfg(json!({ "provider": "google", "authorize_params": { "hd": "example.com" } }));
        apply_preset(&mut c).unwrap();
        assert_eq!(c["authorize_params"], json!({ "hd": "example.com" }), "the owner's own parameters are kept");
        let mut c = cfg(json!({ "provider": "entra", "tenant": "contoso.onmicrosoft.com" }));
        apply_preset(&mut c).unwrap();
        assert_eq!(c["token_url"], "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
        let mut c = cfg(json!({ "provider": "entra", "tenant": "x/../../evil" }));
        assert!(apply_preset(&mut c).is_err());
        let mut c = cfg(json!({ "provider": "okta" }));
        assert!(apply_preset(&mut c).unwrap_err().contains("not one of"));
        let mut c =
            cfg(json!({ "provider": "oidc", "discovery_url": "https://id.example/.well-known/openid-configuration" }));
        assert_eq!(
            apply_preset(&mut c),
            Ok(Next::Discover("https://id.example/.well-known/openid-configuration".into()))
        );
        let mut c = cfg(json!({ "authorize_url": "https://own.example/a" }));
        assert_eq!(apply_preset(&mut c), Ok(Next::Done));
        assert_eq!(c["authorize_url"], "https://own.example/a", "custom keeps the owner's URLs");
    }

    #[test]
    fn discovery_fills_the_endpoints_of_a_matching_issuer() {
        let url = "https://id.example/tenant/.well-known/openid-configuration";
        let doc = json!({ "issuer": "https://id.example/tenant", "authorization_endpoint": "https://id.example/tenant/authorize",
            "token_endpoint": "https://id.example/tenant/token", "code_challenge_methods_supported": ["S256"] });
        let mut c = Map::new();
        apply_discovery(&mut c, url, doc.to_string().as_bytes()).unwrap();
        assert_eq!(
            (c["issuer"].as_str(), c["token_url"].as_str()),
            (Some("https://id.example/tenant"), Some("https://id.example/tenant/token"))
        );
        // An issuer other than the document's own (a mix-up), no PKCE, not JSON: refused.
        let other = json!({ "issuer": "https://evil.example", "authorization_endpoint": "https://a", "token_endpoint": "https://t" });
        assert!(apply_discovery(&mut Map::new(), url, other.to_string().as_bytes()).is_err());
        let plain = json!({ "issuer": "https://id.example/tenant", "authorization_endpoint": "https://a", "token_endpoint": "https://t",
            "code_challenge_methods_supported": ["plain"] });
        assert!(apply_discovery(&mut Map::new(), url, plain.to_string().as_bytes()).unwrap_err().contains("S256"));
        assert!(apply_discovery(&mut Map::new(), url, b"<html>").is_err());
    }

    #[test]
    fn authorize_params_are_bounded_and_cannot_override_flowcps_own() {
        let ok = json!({ "authorize_params": { "prompt": "consent", "access_type": "offline" } });
        assert_eq!(authorize_params(&ok).unwrap().len(), 2);
        for bad in [
            json!({ "authorize_params": { "redirect_uri": "https://evil.example" } }),
            json!({ "authorize_params": { "state": "x" } }),
            json!({ "authorize_params": { "a": 1 } }),
            json!({ "authorize_params": ["prompt"] }),
            json!({ "authorize_params": { "bad name": "x" } }),
        ] {
            assert!(authorize_params(&bad).is_err(), "{bad}");
        }
        assert!(authorize_params(&json!({})).unwrap().is_empty());
    }
}
