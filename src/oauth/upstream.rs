//! The provider's token endpoint, with the owner's client secret (sent only there): the code
//! exchange at the callback, the refresh at FlowCP's token endpoint (`oauth` servers), and the
//! sign-in and refreshes of `user_key` servers ([`super::keys`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use super::tokens::Upstream;
use crate::manifest::Manifest;
use crate::net::{FetchPolicy, Http};

/// Why the provider's token endpoint gave no tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// It answered an OAuth error; `true` for `invalid_grant` (the code or the user's grant is
    /// no longer valid).
    Refused(bool),
    /// It could not be used (why, safe to show).
    Unusable(&'static str),
}

/// Who signed in, as the provider's ID token names them (OpenID Connect): `iss` and `sub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
}

/// The token endpoint's answer.
pub struct Answer {
    pub upstream: Upstream,
    /// From the ID token, when the provider sent one meant for this client.
    pub identity: Option<Identity>,
}

/// The `iss` and `sub` of an ID token received directly from the token endpoint over TLS
/// (OpenID Connect Core §3.1.3.7: its signature may then go unchecked; its audience must still
/// be this client). `None` for anything else.
pub fn identity_of(id_token: &str, client_id: &str) -> Option<Identity> {
    if id_token.len() > 16 * 1024 {
        return None;
    }
    let payload = id_token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let aud_ok = match claims.get("aud")? {
        Value::String(a) => a == client_id,
        Value::Array(list) => list.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    let text = |k: &str| claims.get(k).and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= 512);
    let (issuer, subject) = (text("iss")?, text("sub")?);
    aud_ok.then(|| Identity { issuer: issuer.to_string(), subject: subject.to_string() })
}

/// One call to the server's token endpoint with `grant` (and the owner's client id and secret).
pub async fn token_call<H: Http>(
    http: &H,
    policy: FetchPolicy,
    now_ms: i64,
    m: &Manifest,
    secret: &str,
    grant: &[(&str, &str)],
) -> Result<Answer, CallError> {
    let (Some(oauth), Some(binding)) = (m.auth.oauth.as_ref(), super::tokens::provider_binding(m)) else {
        return Err(CallError::Unusable("the server's sign-in provider is not configured"));
    };
    let url = crate::net::check_url(&oauth.token_url, policy)
        .map_err(|_| CallError::Unusable("the provider's token URL is not allowed"))?;
    let req = super::providers::token_request(url.as_str(), grant, &oauth.client_id, secret, 10_000);
    let resp =
        http.send(&req, 64 * 1024).await.map_err(|_| CallError::Unusable("the API's provider could not be reached"))?;
    let v: Option<Value> = serde_json::from_slice(&resp.body).ok();
    // Some providers (GitHub) answer errors with 200 and an `error` member.
    if let Some(error) = v.as_ref().and_then(|v| v.get("error")).and_then(Value::as_str) {
        // GitHub says `bad_refresh_token` for an expired or revoked one.
        return Err(CallError::Refused(matches!(error, "invalid_grant" | "bad_refresh_token")));
    }
    if !(200..300).contains(&resp.status) {
        return Err(CallError::Refused(false));
    }
    let v = v.ok_or(CallError::Unusable("the API's provider answered something unreadable"))?;
    // Bounded so the sealed tokens stay under their 8 KB limit.
    let text = |k: &str, max: usize| {
        v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= max).map(str::to_string)
    };
    let access_token = text("access_token", 3 * 1024)
        .ok_or(CallError::Unusable("the API's provider returned no usable access token"))?;
    let identity = text("id_token", 16 * 1024).and_then(|t| identity_of(&t, &oauth.client_id));
    let upstream = Upstream {
        access_token,
        refresh_token: text("refresh_token", 2 * 1024),
        expires_at_ms: v
            .get("expires_in")
            .and_then(Value::as_i64)
            .filter(|s| *s > 0)
            .map(|s| now_ms.saturating_add(s.min(400 * 86_400).saturating_mul(1000))),
        scope: text("scope", 512),
        provider: Some(binding),
    };
    Ok(Answer { upstream, identity })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_token(claims: Value) -> String {
        format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    #[test]
    fn an_id_token_names_the_user_only_for_this_client() {
        let t = id_token(serde_json::json!({"iss": "https://login.example/t", "sub": "u1", "aud": "app"}));
        assert_eq!(
            identity_of(&t, "app"),
            Some(Identity { issuer: "https://login.example/t".into(), subject: "u1".into() })
        );
        assert_eq!(identity_of(&t, "other-app"), None, "an ID token for another client");
        let list = id_token(serde_json::json!({"iss": "i", "sub": "u1", "aud": ["x", "app"]}));
        assert!(identity_of(&list, "app").is_some());
        for bad in [
            id_token(serde_json::json!({"iss": "i", "aud": "app"})),
            id_token(serde_json::json!({"iss": "i", "sub": "", "aud": "app"})),
            id_token(serde_json::json!({"sub": "u", "aud": "app"})),
            "not-a-jwt".to_string(),
            "a.%%%.c".to_string(),
        ] {
            assert_eq!(identity_of(&bad, "app"), None, "{bad}");
        }
    }
}
