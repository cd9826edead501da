//! What FlowCP's OAuth pages share: the sealed ticket a consent page carries to its decision
//! ([`Pending`]), `__Host-` cookies, the minimal HTML pages and their redirects.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::flow::{self, AuthorizeError, AuthorizeRequest};
use super::grant;
use crate::api::{Request, Response, Services};
use crate::crypto::{sha256_hex, Keyring};
use crate::manifest::Manifest;
use crate::net::Http;
use crate::store::{Db, Kv};

/// How long a consent page and an upstream round trip may take.
pub(super) const TICKET_TTL_MS: i64 = 10 * 60_000;
pub(super) const CONSENT_COOKIE: &str = "__Host-fcp_consent";
/// Binds the upstream round trip to the browser that approved or started it (a state captured
/// by someone else does not complete in a victim's browser).
pub(super) const STATE_COOKIE: &str = "__Host-fcp_state";

/// Each server has its own callback (`<origin>/oauth/callback/<server id>`), registered at the
/// provider by its owner: a server whose owner copied another's client id cannot receive the
/// other's codes (mix-up).
pub const CALLBACK_PREFIX: &str = "/oauth/callback/";

/// A server's callback URL.
pub fn callback_url(origin: &str, server_id: &str) -> String {
    format!("{origin}{CALLBACK_PREFIX}{server_id}")
}

/// What the consent page carries to the decision, and the upstream round trip to the callback:
/// sealed (AAD names the purpose), never stored.
#[derive(Serialize, Deserialize)]
pub(super) struct Pending {
    #[serde(flatten)]
    pub(super) request: AuthorizeRequest,
    pub(super) exp_ms: i64,
    /// SHA-256 of the cookie nonce that binds this step to one browser (the consent page's,
    /// then the upstream round trip's).
    pub(super) nonce_hash: String,
    /// Upstream leg: FlowCP's own PKCE verifier for the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) upstream_verifier: Option<String>,
    /// FlowCP's own MCP server: the signed-in account the consent page was shown to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) user_id: Option<String>,
}

impl Pending {
    /// Does the request carry the cookie this step was bound to?
    pub(super) fn bound_to(&self, req: &Request, cookie_name: &str) -> bool {
        cookie(req, cookie_name)
            .is_some_and(|n| crate::crypto::ct_eq(sha256_hex(n.as_bytes()).as_bytes(), self.nonce_hash.as_bytes()))
    }
    pub(super) fn seal(&self, keyring: &Keyring, purpose: &str) -> Option<String> {
        keyring.seal(&serde_json::to_vec(self).ok()?, purpose.as_bytes()).ok()
    }
    pub(super) fn open(keyring: &Keyring, sealed: &str, purpose: &str, now_ms: i64) -> Option<Self> {
        if sealed.len() > 16 * 1024 {
            return None;
        }
        let p: Pending = serde_json::from_slice(&keyring.open(sealed, purpose.as_bytes()).ok()?).ok()?;
        (now_ms < p.exp_ms).then_some(p)
    }
}

/// A `__Host-` cookie of FlowCP's OAuth pages (`Max-Age=0` clears it).
pub(super) fn host_cookie(name: &str, value: &str, max_age_s: i64) -> String {
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age_s}")
}

pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// An HTML page (the glue sends a string body with this content type as is).
pub(super) fn html(status: u16, body: String) -> Response {
    Response::json(status, Value::String(body))
        .with_header("content-type", "text/html; charset=utf-8")
        .with_header(
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https: http:; frame-ancestors 'none'",
        )
        .with_header("x-frame-options", "DENY")
        .with_header("referrer-policy", "no-referrer")
}

pub(super) fn page(title: &str, inner: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{t}</title>\
         <style>body{{font:16px system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#111}}\
         button{{font:inherit;padding:.5rem 1rem;margin-right:.5rem}}code{{background:#f3f3f3;padding:0 .2rem}}</style></head>\
         <body><h1>{t}</h1>{inner}</body></html>",
        t = escape(title)
    )
}

pub(super) fn error_page(why: &str) -> Response {
    html(400, page("This sign-in request cannot continue", &format!("<p>{}</p>", escape(why))))
}

pub(super) fn redirect(to: &str) -> Response {
    Response { status: 302, body: None, headers: vec![("location".into(), to.to_string())] }
}

pub(super) fn authorize_error_redirect(e: &AuthorizeError, issuer: &str) -> Response {
    match e {
        AuthorizeError::Page(why) => error_page(why),
        AuthorizeError::Redirect { redirect_uri, state, error, description } => {
            match flow::error_redirect(redirect_uri, error, description, state.as_deref(), issuer) {
                Some(to) => redirect(&to),
                None => error_page(description),
            }
        }
    }
}

pub(super) fn cookie(req: &Request, name: &str) -> Option<String> {
    req.header("cookie")?.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

pub(super) fn form_params(req: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&req.body).into_owned().collect()
}

pub(super) fn grant_ctx<'s, D: Db, K: Kv, H: Http>(svc: &'s Services<'_, D, K, H>) -> grant::Ctx<'s, D, K> {
    grant::Ctx { db: svc.db, kv: svc.kv, keyring: &svc.secrets.keyring, origin: &svc.origin, now_ms: svc.now_ms }
}

/// The user declined on a consent page: `access_denied` back to the client.
pub(super) fn declined(r: AuthorizeRequest, issuer: &str) -> Response {
    let e = AuthorizeError::Redirect {
        redirect_uri: r.redirect_uri,
        state: r.state,
        error: "access_denied",
        description: "the user declined",
    };
    authorize_error_redirect(&e, issuer)
}

/// The server's published manifest, read afresh (no isolate cache: sign-in pages are rare).
pub(super) async fn published(kv: &impl Kv, server_id: &str, now_ms: i64) -> Option<Manifest> {
    let cache = crate::mcp::server::ManifestCache::default();
    let loaded = crate::mcp::server::load_manifest(kv, &cache, server_id, now_ms).await.ok()??;
    Some(loaded.manifest.clone())
}
