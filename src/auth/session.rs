//! Dashboard sessions: a random id in a signed `__Host-` cookie, stored server-side by hash so
//! logout and revocation work (DESIGN §7), plus a per-session CSRF token.
//!
//! Cookie value: `<id>.<mac>`, where `id` is 32 random bytes and `mac` is
//! HMAC-SHA-256(secret, "flowcp-session-v1|" || id), both base64url without padding (43
//! characters each). The signature lets a forged or garbled cookie be refused without a
//! database read; the database holds only SHA-256(id) (`sessions.id_hash`), so a leaked table
//! cannot be replayed as cookies. The CSRF token is derived from the session:
//! HMAC-SHA-256(secret, "csrf|" || id_hash), base64url ([`csrf_token`]), so every tab of the
//! dashboard gets the same token from `GET /me` and a token of one session never passes for
//! another; the database holds SHA-256 of its text (`sessions.csrf_hash`).
//!
//! Invariants: the raw id and the raw CSRF token exist only in the response that issues them;
//! every comparison is constant time; parsing never panics, whatever the Cookie header holds.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::AuthError;
use crate::crypto::{ct_eq, hmac_sha256_b64, random_bytes, sha256_hex};

/// The `__Host-` prefix makes browsers refuse the cookie unless it is Secure, has Path=/ and no
/// Domain, so a sibling subdomain cannot plant (fixate) a session.
pub const COOKIE_NAME: &str = "__Host-flowcp_session";
/// Absolute session lifetime (not sliding): 7 days.
pub const SESSION_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;

const ID_LEN: usize = 32;
/// base64url length of 32 bytes without padding.
const B64_32_LEN: usize = 43;
/// Domain separation: the cookie key may one day sign other things.
const MAC_CONTEXT: &[u8] = b"flowcp-session-v1|";

/// A freshly issued session. `cookie_value` and `csrf_token` go to the browser once; only
/// `id_hash` and `csrf_hash` are stored.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedSession {
    pub cookie_value: String,
    pub csrf_token: String,
    pub id_hash: String,
    pub csrf_hash: String,
    pub expires_at: i64,
}

impl std::fmt::Debug for IssuedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The cookie value and the CSRF token are bearer secrets.
        f.debug_struct("IssuedSession")
            .field("cookie_value", &"<redacted>")
            .field("csrf_token", &"<redacted>")
            .field("id_hash", &self.id_hash)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

fn mac(secret: &[u8], id: &[u8]) -> String {
    let mut msg = Vec::with_capacity(MAC_CONTEXT.len() + id.len());
    msg.extend_from_slice(MAC_CONTEXT);
    msg.extend_from_slice(id);
    hmac_sha256_b64(secret, &msg)
}

/// The CSRF token of a session (by its id hash): the one mechanism, used at sign-in and by
/// `GET /me`. Without the deployment secret it cannot be derived from the id hash.
pub fn csrf_token(secret: &[u8], id_hash: &str) -> String {
    hmac_sha256_b64(secret, format!("csrf|{id_hash}").as_bytes())
}

/// Creates a new session id, its signed cookie value and its CSRF token.
pub fn issue(secret: &[u8], now_ms: i64) -> Result<IssuedSession, AuthError> {
    let id: [u8; ID_LEN] = random_bytes()?;
    let id_hash = sha256_hex(&id);
    let csrf_token = csrf_token(secret, &id_hash);
    Ok(IssuedSession {
        cookie_value: format!("{}.{}", URL_SAFE_NO_PAD.encode(id), mac(secret, &id)),
        csrf_hash: sha256_hex(csrf_token.as_bytes()),
        csrf_token,
        id_hash,
        expires_at: now_ms.saturating_add(SESSION_TTL_MS),
    })
}

/// Verifies one cookie value; returns the id hash if the signature is ours.
pub fn id_hash_from_cookie_value(value: &str, secret: &[u8]) -> Option<String> {
    // Exact shape first: this bounds the work done on hostile input.
    if value.len() != 2 * B64_32_LEN + 1 {
        return None;
    }
    let (id_b64, mac_b64) = value.split_once('.')?;
    if id_b64.len() != B64_32_LEN {
        return None;
    }
    let id = URL_SAFE_NO_PAD.decode(id_b64).ok()?;
    if id.len() != ID_LEN {
        return None;
    }
    let expected = mac(secret, &id);
    if !ct_eq(expected.as_bytes(), mac_b64.as_bytes()) {
        return None;
    }
    Some(sha256_hex(&id))
}

/// Finds our cookie in a `Cookie` request header (`a=1; b=2; ...`), verifies its signature in
/// constant time and returns the session id hash to look up. Forged, truncated, re-signed or
/// garbage values yield `None`. If the header carries our cookie more than once, the first one
/// that verifies wins (`__Host-` keeps other origins from adding one).
pub fn session_id_hash_from_cookie_header(cookie_header: &str, secret: &[u8]) -> Option<String> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| name.trim() == COOKIE_NAME)
        .find_map(|(_, value)| id_hash_from_cookie_value(value.trim(), secret))
}

/// The `Set-Cookie` value that installs a session. Characters outside the cookie value alphabet
/// we issue (base64url and '.') are dropped, so a caller can never inject attributes or header
/// lines through `value`.
pub fn set_cookie(value: &str, max_age_s: i64) -> String {
    let safe: String = value.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    format!("{COOKIE_NAME}={safe}; Max-Age={}; Path=/; HttpOnly; Secure; SameSite=Lax", max_age_s.max(0))
}

/// The `Set-Cookie` value that removes the session cookie (logout).
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; HttpOnly; Secure; SameSite=Lax")
}

/// Whether the CSRF token presented with a state-changing request (e.g. the `X-CSRF-Token`
/// header) matches the session's stored hash. Constant time; a missing token is `false`.
pub fn csrf_ok(presented: Option<&str>, csrf_hash: &str) -> bool {
    match presented {
        // A real token is 43 characters; refuse to hash megabytes of header.
        Some(token) if !token.is_empty() && token.len() <= 128 && !csrf_hash.is_empty() => {
            ct_eq(sha256_hex(token.as_bytes()).as_bytes(), csrf_hash.as_bytes())
        }
        _ => false,
    }
}
