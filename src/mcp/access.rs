//! Who may call a published server: OAuth servers answer with their protected-resource
//! metadata (RFC 9728), public servers anyone, others only this server's access keys.

use serde_json::{json, Value};

use super::cache::Loaded;
use super::runtime::{header, reject, McpRequest, McpResponse, Refused, Runtime};
use crate::crypto::{sha256_hex, sha256_hex_truncated};
use crate::manifest::{self, Manifest};
use crate::net::Http;
use crate::store::Kv;
use crate::vocab::AuthMode;

/// The URL of the protected-resource metadata of a server (RFC 9728).
/// The access key a request presents: `Authorization: Bearer <key>` (either case of `Bearer`)
/// or `X-API-Key`. The rate limiter counts by the same value the check uses.
pub fn presented_key(headers: &[(String, String)]) -> Option<&str> {
    header(headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .or_else(|| header(headers, "x-api-key"))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

pub fn resource_metadata_url(origin: &str, server_id: &str) -> String {
    format!("{origin}/.well-known/oauth-protected-resource/mcp/{server_id}")
}

/// The scopes a client should ask for: the server scope (which names the server when a client
/// omits `resource`) and the upstream scopes the owner configured, never `offline_access`
/// (RS-09: refresh is the authorization server's business).
pub fn challenge_scopes(m: &Manifest) -> Vec<String> {
    let mut scopes = vec![crate::oauth::resource::server_scope(&m.server_id)];
    // RFC 6749 scope tokens: printable ASCII without `"` and `\` (they would break the quoted
    // challenge parameter).
    let token = |s: &str| s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    scopes.extend(m.auth.scopes.iter().filter(|s| s.as_str() != "offline_access" && token(s)).cloned());
    scopes
}

/// RFC 9728 protected-resource metadata for an OAuth-mode server. The authorization server
/// is FlowCP's one issuer for the whole origin (clients mishandle path issuers).
pub fn protected_resource_metadata(origin: &str, m: &Manifest) -> Value {
    json!({
        "resource": format!("{origin}/mcp/{}", m.server_id),
        "authorization_servers": [origin],
        "scopes_supported": challenge_scopes(m),
        "bearer_methods_supported": ["header"],
        "resource_name": m.name,
    })
}

/// Who is calling.
#[derive(Debug, Default)]
pub(crate) struct Caller {
    /// Truncated SHA-256 of the access key's id or the OAuth connection's id (the audit's
    /// connection hash); `None` for a public server.
    pub(crate) connection: Option<String>,
    /// OAuth servers: the end user's upstream access token, opened from their FlowCP token
    /// (never stored; never the FlowCP token itself, RS-06). `user_key` servers: the user's
    /// access token from the gate.
    pub(crate) upstream_token: Option<String>,
    /// `user_key` servers: why the user's calls cannot reach the API (sign in again).
    pub(crate) upstream_problem: Option<String>,
}

/// KV key marking a revoked OAuth connection: the runtime refuses its access tokens within the
/// isolate cache's bound ([`super::cache::KV_TTL_MS`]) plus KV's propagation (about 60 s).
pub fn revoked_connection_key(connection_id: &str) -> String {
    format!("oconn:revoked:{connection_id}")
}

/// The 401 an OAuth server answers: where its metadata is, which scopes to ask for, and
/// `error="invalid_token"` when a token was presented but cannot be used (RS-01).
pub(crate) fn oauth_challenge(origin: &str, m: &Manifest, invalid: bool, message: &str) -> McpResponse {
    let error = if invalid { "error=\"invalid_token\", " } else { "" };
    let www = format!(
        "Bearer {error}resource_metadata=\"{}\", scope=\"{}\"",
        resource_metadata_url(origin, &m.server_id),
        challenge_scopes(m).join(" ")
    );
    let mut r = reject(401, message);
    r.headers.push(("www-authenticate".into(), www));
    r
}

/// The answer to a tool call whose upstream refused the user's token: 401 `invalid_token` (the
/// client refreshes or signs in again), or 403 `insufficient_scope` with every scope the
/// server asks for (the client re-authorises; the owner may need to add the scope).
pub(crate) fn upstream_refusal(origin: &str, m: &Manifest, refused: Refused) -> McpResponse {
    match refused {
        Refused::Unauthorized => oauth_challenge(
            origin,
            m,
            true,
            "Unauthorized: the API refused this user's authorization; refresh the token or sign in again.",
        ),
        Refused::InsufficientScope => {
            let www = format!(
                "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{}\"",
                challenge_scopes(m).join(" "),
                resource_metadata_url(origin, &m.server_id),
            );
            let mut r = reject(
                403,
                "Forbidden: the API needs a permission this user's sign-in did not grant; sign in again with the \
                 scopes in WWW-Authenticate, or ask the server's owner to request them.",
            );
            r.headers.push(("www-authenticate".into(), www));
            r
        }
    }
}

pub(crate) async fn authorize<K: Kv, H: Http>(
    rt: &Runtime<'_, K, H>,
    loaded: &Loaded,
    req: &McpRequest<'_>,
) -> Result<Caller, McpResponse> {
    let m = &loaded.manifest;
    if m.auth.mode == AuthMode::Oauth {
        return authorize_oauth(rt, m, req).await;
    }
    if m.auth.mode == AuthMode::UserKey {
        let Some(gate) = rt.key_gate else {
            return Err(reject(503, "Per-user keys are not available on this deployment."));
        };
        let a = gate.admit(m, presented_key(req.headers)).await?;
        return Ok(Caller {
            connection: Some(a.connection),
            upstream_token: a.upstream_token,
            upstream_problem: a.problem,
        });
    }
    if m.auth.public {
        return Ok(Caller::default());
    }
    let presented = presented_key(req.headers);
    let denied = |msg: &str| {
        let mut r = reject(401, msg);
        r.headers.push(("www-authenticate".into(), "Bearer realm=\"flowcp\"".into()));
        r
    };
    let Some(key) = presented else {
        return Err(denied(
            "Unauthorized: send this server's access key as `Authorization: Bearer fcp_sk_...` or `X-API-Key`.",
        ));
    };
    let mirror =
        rt.cache.get(rt.kv, &manifest::access_key_key(&sha256_hex(key.as_bytes())), (rt.clock)()).await.map_err(
            |e| {
                let mut r = reject(503, "The access-key store is unavailable; try again.");
                r.internal = Some(format!("access-key read failed: {e}"));
                r
            },
        )?;
    let Some(mirror) = mirror.and_then(|b| serde_json::from_slice::<Value>(&b).ok()) else {
        return Err(denied("Unauthorized: the access key is not valid for this server (revoked or mistyped)."));
    };
    if mirror.get("server_id").and_then(Value::as_str) != Some(m.server_id.as_str()) {
        return Err(denied("Unauthorized: the access key is not valid for this server (revoked or mistyped)."));
    }
    let key_id = mirror.get("key_id").and_then(Value::as_str).unwrap_or("");
    Ok(Caller {
        connection: Some(sha256_hex_truncated(key_id.as_bytes(), 16)),
        upstream_token: None,
        upstream_problem: None,
    })
}

/// An OAuth server: a FlowCP access token (`Authorization: Bearer fcp_at...` only; never the
/// query string, RS-07) that opens for this server's canonical URL (RS-05), unexpired, of a
/// connection not revoked.
async fn authorize_oauth<K: Kv, H: Http>(
    rt: &Runtime<'_, K, H>,
    m: &Manifest,
    req: &McpRequest<'_>,
) -> Result<Caller, McpResponse> {
    use crate::oauth::tokens::{self, Kind};
    let bearer = header(req.headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = bearer else {
        return Err(oauth_challenge(
            &rt.origin,
            m,
            false,
            "Unauthorized: this server uses OAuth; obtain an access token via the protected resource metadata.",
        ));
    };
    let audience = format!("{}/mcp/{}", rt.origin, m.server_id);
    let invalid =
        || oauth_challenge(&rt.origin, m, true, "Unauthorized: the access token is invalid, expired or revoked.");
    let (connection, grant) =
        tokens::open(rt.keyring, Kind::Access, &audience, token, (rt.clock)()).map_err(|_| invalid())?;
    let revoked = rt.cache.get(rt.kv, &revoked_connection_key(&connection), (rt.clock)()).await.map_err(|e| {
        let mut r = reject(503, "The connection store is unavailable; try again.");
        r.internal = Some(format!("revocation read failed: {e}"));
        r
    })?;
    if revoked.is_some() {
        return Err(invalid());
    }
    // The user's token goes only to the API (and provider) it was issued for: after the owner
    // changed them, the user signs in again.
    if grant.upstream.provider.is_none() || grant.upstream.provider != crate::oauth::tokens::provider_binding(m) {
        return Err(invalid());
    }
    Ok(Caller {
        connection: Some(sha256_hex_truncated(connection.as_bytes(), 16)),
        upstream_token: Some(grant.upstream.access_token),
        upstream_problem: None,
    })
}
