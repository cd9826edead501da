//! Per-user API keys of `user_key` servers (issue 16, first part): HS256 JWTs derived from a
//! per-deployment secret, never stored.
//!
//! A key is `<header>.<payload>.<signature>` (RFC 7519, base64url without padding). The header
//! is exactly `alg: HS256` with the `kid` of the signing secret (`FLOWCP_TOKEN_SECRET` holds
//! `kid:hex,kid:hex`, the first one signs, the others still verify: rotation). The payload
//! carries `iss` (FlowCP's origin), `aud` (the server's MCP URL), `sub` (an opaque user id),
//! `iat`, `exp` (30 days), `jti` and `epoch`, the user's revocation epoch when the key was
//! issued. [`verify`] checks everything that needs no storage; the caller compares `epoch` with
//! the user's current epoch in D1 (through [`EpochCache`], whose bound is
//! [`EPOCH_CACHE_TTL_MS`]), so revocation and re-issue (which bump the epoch) end every older
//! key.
//!
//! Refused before any claim is read: a header that is not exactly HS256 (`none`, `HS512`,
//! `RS256`: no algorithm confusion), an unknown `kid`, a signature that does not verify
//! (compared in constant time), anything longer than [`MAX_KEY_CHARS`].
//!
//! The `user_key` mode that uses these keys is `crate::oauth::keys` (the hot-path gate) and
//! `crate::oauth::portal` (sign-in and keys); docs/user-keys.md.
//!
//! Plans and quotas: `crate::plans`; store tools: `crate::mcp::store` and
//! `crate::oauth::store_tools`; the Power Automate template: `crate::api::templates`.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A key lives 30 days (the end user re-issues it in the portal).
pub const KEY_TTL_S: i64 = 30 * 86_400;
/// Longest key read (a key is about 400 characters).
pub const MAX_KEY_CHARS: usize = 2_048;
/// Clock skew tolerated on `iat` (keys issued "in the future" by a fast clock elsewhere).
pub const SKEW_S: i64 = 60;
/// Shortest secret accepted (HS256 needs at least 256 bits of key).
const MIN_SECRET_BYTES: usize = 32;

/// Why a key or the secret was refused (never detailed to a client beyond "invalid key").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// `FLOWCP_TOKEN_SECRET` is not `kid:hex[,kid:hex...]` with 32-byte (or longer) secrets.
    BadSecret(&'static str),
    /// Not three base64url parts, or too long, or a part is not the JSON it must be.
    Malformed,
    /// The header is not exactly HS256, or names a key id this deployment does not have.
    BadHeader,
    /// The signature does not verify.
    BadSignature,
    /// Signed by this deployment, but for another issuer or server.
    WrongAudience,
    Expired,
    /// `iat` is further in the future than the clock skew allows.
    NotYetValid,
}

/// The deployment's signing secrets: the first signs, all verify.
#[derive(Clone)]
pub struct TokenSecrets {
    keys: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for TokenSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        f.debug_struct("TokenSecrets").field("kids", &self.keys.iter().map(|(k, _)| k).collect::<Vec<_>>()).finish()
    }
}

impl TokenSecrets {
    /// Parses `kid:hex[,kid:hex...]` (kids of 1 to 16 letters, digits, `-` or `_`; unique).
    pub fn parse(spec: &str) -> Result<Self, KeyError> {
        let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kid, hex_secret) = part.split_once(':').ok_or(KeyError::BadSecret("each key is kid:hex"))?;
            let kid_ok = !kid.is_empty()
                && kid.len() <= 16
                && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !kid_ok {
                return Err(KeyError::BadSecret("a key id is 1 to 16 letters, digits, - or _"));
            }
            let secret = hex::decode(hex_secret).map_err(|_| KeyError::BadSecret("a secret is hex"))?;
            if secret.len() < MIN_SECRET_BYTES {
                return Err(KeyError::BadSecret("a secret is at least 32 bytes (64 hex characters)"));
            }
            if keys.iter().any(|(k, _)| k == kid) {
                return Err(KeyError::BadSecret("a key id is listed twice"));
            }
            keys.push((kid.to_string(), secret));
        }
        if keys.is_empty() {
            return Err(KeyError::BadSecret("no key"));
        }
        Ok(TokenSecrets { keys })
    }

    fn primary(&self) -> &(String, Vec<u8>) {
        &self.keys[0]
    }

    fn get(&self, kid: &str) -> Option<&[u8]> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, s)| s.as_slice())
    }
}

/// What a key says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The user's revocation epoch when the key was issued.
    pub epoch: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    kid: String,
}

fn mac(secret: &[u8], signing_input: &str) -> HmacSha256 {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for HMAC.
    let mut m = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(signing_input.as_bytes());
    m
}

/// Signs `claims` with the primary secret.
pub fn mint(secrets: &TokenSecrets, claims: &Claims) -> String {
    let (kid, secret) = secrets.primary();
    let header = Header { alg: "HS256".into(), typ: Some("JWT".into()), kid: kid.clone() };
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let input = format!("{h}.{p}");
    let sig = URL_SAFE_NO_PAD.encode(mac(secret, &input).finalize().into_bytes());
    format!("{input}.{sig}")
}

/// Verifies a presented key for `issuer` and `audience` (the server's MCP URL) at `now_s`. The
/// caller still compares [`Claims::epoch`] with the user's current epoch.
pub fn verify(secrets: &TokenSecrets, key: &str, issuer: &str, audience: &str, now_s: i64) -> Result<Claims, KeyError> {
    if key.len() > MAX_KEY_CHARS {
        return Err(KeyError::Malformed);
    }
    let mut parts = key.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(KeyError::Malformed);
    };
    let header: Header =
        URL_SAFE_NO_PAD.decode(h).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(KeyError::Malformed)?;
    if header.alg != "HS256" || header.typ.as_deref().is_some_and(|t| t != "JWT") {
        return Err(KeyError::BadHeader);
    }
    let secret = secrets.get(&header.kid).ok_or(KeyError::BadHeader)?;
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| KeyError::Malformed)?;
    mac(secret, &format!("{h}.{p}")).verify_slice(&sig).map_err(|_| KeyError::BadSignature)?;
    let claims: Claims =
        URL_SAFE_NO_PAD.decode(p).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(KeyError::Malformed)?;
    if claims.iss != issuer || claims.aud != audience {
        return Err(KeyError::WrongAudience);
    }
    if now_s >= claims.exp {
        return Err(KeyError::Expired);
    }
    if claims.iat > now_s + SKEW_S {
        return Err(KeyError::NotYetValid);
    }
    Ok(claims)
}

/// How long an isolate trusts a user's epoch it read from D1: a revocation or re-issue reaches
/// every isolate within this bound (the key is refused at the next call after it).
pub const EPOCH_CACHE_TTL_MS: i64 = 10_000;
/// Most users an isolate remembers by default (an epoch entry is ~100 bytes); past it the
/// older half goes.
const EPOCH_CACHE_ENTRIES: usize = 10_000;

/// The isolate's copy of what it read of users from D1, keyed by (server, user): their epoch
/// (`T = i64`), or a larger snapshot holding it (the gate's, with the sealed access token).
#[derive(Debug)]
pub struct EpochCache<T = i64> {
    entries: HashMap<(String, String), (T, i64)>,
    capacity: usize,
}

impl<T> Default for EpochCache<T> {
    fn default() -> Self {
        Self::with_capacity(EPOCH_CACHE_ENTRIES)
    }
}

impl<T> EpochCache<T> {
    /// A cache of at most `capacity` users (larger values: fewer).
    pub fn with_capacity(capacity: usize) -> Self {
        EpochCache { entries: HashMap::new(), capacity: capacity.max(2) }
    }
}

impl<T: Clone> EpochCache<T> {
    /// The value read at most [`EPOCH_CACHE_TTL_MS`] ago, if any.
    pub fn get(&self, server_id: &str, user_id: &str, now_ms: i64) -> Option<T> {
        let (value, read_at) = self.entries.get(&(server_id.to_string(), user_id.to_string()))?;
        (now_ms - read_at < EPOCH_CACHE_TTL_MS && now_ms >= *read_at).then(|| value.clone())
    }

    /// Remembers a value read from D1 at `now_ms`.
    pub fn put(&mut self, server_id: &str, user_id: &str, value: T, now_ms: i64) {
        if self.entries.len() >= self.capacity {
            let mut by_age: Vec<i64> = self.entries.values().map(|(_, at)| *at).collect();
            by_age.sort_unstable();
            let median = by_age[by_age.len() / 2];
            self.entries.retain(|_, (_, at)| *at > median);
        }
        self.entries.insert((server_id.to_string(), user_id.to_string()), (value, now_ms));
    }

    /// The value whether fresh or not (a newer read may keep what it knew).
    pub fn peek(&self, server_id: &str, user_id: &str) -> Option<T> {
        self.entries.get(&(server_id.to_string(), user_id.to_string())).map(|(v, _)| v.clone())
    }

    /// Changes a fresh entry in place, keeping when it was read (`false`: none is fresh).
    pub fn update(&mut self, server_id: &str, user_id: &str, now_ms: i64, f: impl FnOnce(&mut T)) -> bool {
        match self.entries.get_mut(&(server_id.to_string(), user_id.to_string())) {
            Some((value, read_at)) if now_ms - *read_at < EPOCH_CACHE_TTL_MS && now_ms >= *read_at => {
                f(value);
                true
            }
            _ => false,
        }
    }

    /// Forgets a user (this isolate revoked or re-issued: no stale read here).
    pub fn forget(&mut self, server_id: &str, user_id: &str) {
        self.entries.remove(&(server_id.to_string(), user_id.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const ISS: &str = "https://flowcp.example";
    const AUD: &str = "https://flowcp.example/mcp/srv_A";

    fn secrets() -> TokenSecrets {
        TokenSecrets::parse(&format!("t1:{}", "11".repeat(32))).unwrap()
    }

    fn claims() -> Claims {
        Claims {
            iss: ISS.into(),
            aud: AUD.into(),
            sub: "ku_opaque".into(),
            iat: NOW,
            exp: NOW + KEY_TTL_S,
            jti: "k_1".into(),
            epoch: 3,
        }
    }

    fn part(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json.as_bytes())
    }

    #[test]
    fn a_key_verifies_for_its_issuer_and_server_until_it_expires() {
        let s = secrets();
        let key = mint(&s, &claims());
        assert!(key.len() < 400, "{} characters", key.len());
        assert_eq!(verify(&s, &key, ISS, AUD, NOW + 1), Ok(claims()));
        assert_eq!(verify(&s, &key, ISS, "https://flowcp.example/mcp/srv_B", NOW), Err(KeyError::WrongAudience));
        assert_eq!(verify(&s, &key, "https://other.example", AUD, NOW), Err(KeyError::WrongAudience));
        assert_eq!(verify(&s, &key, ISS, AUD, NOW + KEY_TTL_S), Err(KeyError::Expired));
        assert_eq!(verify(&s, &key, ISS, AUD, NOW - SKEW_S - 1), Err(KeyError::NotYetValid));
        assert_eq!(verify(&s, &key, ISS, AUD, NOW - SKEW_S), Ok(claims()), "within the skew");
    }

    #[test]
    fn tampering_and_algorithm_confusion_are_refused_before_any_claim_is_read() {
        let s = secrets();
        let key = mint(&s, &claims());
        let (input, sig) = key.rsplit_once('.').unwrap();
        let (h, _) = input.split_once('.').unwrap();
        // Another payload under the same signature (a longer life, another user).
        let forged = Claims { sub: "ku_someone_else".into(), exp: NOW + 10 * KEY_TTL_S, ..claims() };
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(verify(&s, &format!("{h}.{p}.{sig}"), ISS, AUD, NOW), Err(KeyError::BadSignature));
        // `alg: none` with an empty signature, and other algorithms.
        let claims_part = input.split_once('.').unwrap().1;
        for alg in [
            r#"{"alg":"none","kid":"t1"}"#,
            r#"{"alg":"HS512","kid":"t1"}"#,
            r#"{"alg":"RS256","kid":"t1"}"#,
            r#"{"alg":"hs256","kid":"t1"}"#,
        ] {
            for signature in ["", sig] {
                let k = format!("{}.{claims_part}.{signature}", part(alg));
                assert_eq!(verify(&s, &k, ISS, AUD, NOW), Err(KeyError::BadHeader), "{alg}");
            }
        }
        // A key id this deployment does not have; a header with extra members.
        let unknown = format!("{}.{claims_part}.{sig}", part(r#"{"alg":"HS256","kid":"t9"}"#));
        assert_eq!(verify(&s, &unknown, ISS, AUD, NOW), Err(KeyError::BadHeader));
        let extra = format!("{}.{claims_part}.{sig}", part(r#"{"alg":"HS256","kid":"t1","jku":"https://x"}"#));
        assert_eq!(verify(&s, &extra, ISS, AUD, NOW), Err(KeyError::Malformed));
        // Signed by another deployment's secret.
        let theirs = TokenSecrets::parse(&format!("t1:{}", "22".repeat(32))).unwrap();
        assert_eq!(verify(&s, &mint(&theirs, &claims()), ISS, AUD, NOW), Err(KeyError::BadSignature));
        // One flipped signature character; junk of every shape.
        let mut flipped = key.clone().into_bytes();
        let at = flipped.len() - 3;
        flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
        assert_eq!(verify(&s, &String::from_utf8(flipped).unwrap(), ISS, AUD, NOW), Err(KeyError::BadSignature));
        for junk in [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b.c.d",
            &format!("{key}."),
            &format!("{key}="),
            &" ".repeat(3),
            &"x".repeat(MAX_KEY_CHARS + 1),
        ] {
            assert!(verify(&s, junk, ISS, AUD, NOW).is_err(), "{junk}");
        }
    }

    #[test]
    fn rotation_keeps_old_keys_until_their_secret_is_retired() {
        let old = secrets();
        let key = mint(&old, &claims());
        let rotated = TokenSecrets::parse(&format!("t2:{},t1:{}", "33".repeat(32), "11".repeat(32))).unwrap();
        assert_eq!(verify(&rotated, &key, ISS, AUD, NOW), Ok(claims()), "the previous secret still verifies");
        let fresh = mint(&rotated, &claims());
        assert!(fresh.starts_with(&part(r#"{"alg":"HS256","typ":"JWT","kid":"t2"}"#)), "the first secret signs");
        let retired = TokenSecrets::parse(&format!("t2:{}", "33".repeat(32))).unwrap();
        assert_eq!(verify(&retired, &key, ISS, AUD, NOW), Err(KeyError::BadHeader));
        assert!(!format!("{rotated:?}").contains("3333"), "Debug never prints a secret");
    }

    #[test]
    fn the_secret_must_be_long_well_formed_and_unambiguous() {
        for bad in [
            "",
            "t1",
            "t1:zz",
            &format!("t1:{}", "11".repeat(31)),
            &format!("t1:{0},t1:{0}", "11".repeat(32)),
            &format!("bad kid:{}", "11".repeat(32)),
        ] {
            assert!(matches!(TokenSecrets::parse(bad), Err(KeyError::BadSecret(_))), "{bad}");
        }
    }

    #[test]
    fn the_epoch_cache_answers_within_its_bound_only() {
        let mut c = EpochCache::default();
        assert_eq!(c.get("srv", "ku", 1_000), None);
        c.put("srv", "ku", 4, 1_000);
        assert_eq!(c.get("srv", "ku", 1_000 + EPOCH_CACHE_TTL_MS - 1), Some(4));
        assert_eq!(c.get("srv", "ku", 1_000 + EPOCH_CACHE_TTL_MS), None, "stale after the bound");
        assert_eq!(c.get("srv", "ku", 999), None, "a clock that went back reads again");
        assert_eq!(c.get("other", "ku", 1_000), None, "per server");
        c.forget("srv", "ku");
        assert_eq!(c.get("srv", "ku", 1_000), None);
        for i in 0..EPOCH_CACHE_ENTRIES as i64 + 1 {
            c.put("srv", &format!("ku_{i}"), 1, i);
        }
        assert!(c.entries.len() <= EPOCH_CACHE_ENTRIES, "bounded: {}", c.entries.len());
        assert_eq!(
            c.get("srv", &format!("ku_{EPOCH_CACHE_ENTRIES}"), EPOCH_CACHE_ENTRIES as i64),
            Some(1),
            "the newest stays"
        );
    }
}
