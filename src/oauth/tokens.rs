//! FlowCP's OAuth tokens are sealed envelopes, not database rows.
//!
//! An authorization code, access token or refresh token is
//! `fcp_<kind>.<connection id>.<envelope>`: the envelope (`fcp1.<kid>.<data>`, AES-256-GCM
//! with a fresh random 96-bit nonce, [`crate::crypto::Keyring`]) holds the [`Grant`] — the
//! client, scopes, audience, expiry and the end user's upstream tokens. Its AAD binds it to
//! the token kind, the audience (the canonical MCP URL of one server), the connection and the
//! key id, so a token opens only as the kind, for the server and connection it was made for:
//! an access token presented as a refresh token, or at another server, fails authentication
//! before any field is read. FlowCP stores no token; D1 keeps connection metadata only (hash,
//! client name, scopes, times, refresh generation, revoked), checked after opening.

use serde::{Deserialize, Serialize};

use crate::crypto::{envelope_key_id, CryptoError, Keyring};

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The authorization code handed to the client's redirect URI (single use, 60 s).
    Code,
    /// Presented on every MCP request.
    Access,
    /// Exchanged at the token endpoint for a new access and refresh token.
    Refresh,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Code => "ac",
            Kind::Access => "at",
            Kind::Refresh => "rt",
        }
    }
}

/// The end user's tokens at the upstream provider, as its token endpoint returned them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the upstream access token expires (ms), when the provider said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// Scopes the provider granted (space-separated), when it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Which provider configuration and API issued them ([`provider_binding`]): the user's
    /// tokens are only ever sent to that token URL and client, and that API origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

impl Upstream {
    /// No upstream tokens: the grant of a FlowCP account to FlowCP's own MCP server.
    pub fn none() -> Self {
        Upstream { access_token: String::new(), refresh_token: None, expires_at_ms: None, scope: None, provider: None }
    }
}

/// Truncated SHA-256 of a published `oauth` server's token URL, client id and API origin;
/// `None` for a server without OAuth sign-in.
pub fn provider_binding(m: &crate::manifest::Manifest) -> Option<String> {
    let oauth = m.auth.oauth.as_ref().filter(|_| m.auth.mode.signs_in_users())?;
    let api = m.auth.credential_origin.as_deref().unwrap_or("");
    Some(crate::crypto::sha256_hex_truncated(format!("{}\n{}\n{api}", oauth.token_url, oauth.client_id).as_bytes(), 16))
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a token.
        f.debug_struct("Upstream").field("expires_at_ms", &self.expires_at_ms).field("scope", &self.scope).finish()
    }
}

/// What a sealed token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub client_id: String,
    /// FlowCP scopes granted to the client (space-separated).
    pub scope: String,
    /// Issued and expires (ms since the epoch).
    pub iat_ms: i64,
    pub exp_ms: i64,
    /// The connection's refresh generation this token belongs to (refresh tokens; 0 otherwise).
    #[serde(default)]
    pub generation: i64,
    pub upstream: Upstream,
    /// Codes only: the redirect URI and PKCE challenge the authorization request carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    /// Refresh tokens: their own id (reuse detection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// Lifetimes.
pub const CODE_TTL_MS: i64 = 60_000;
pub const ACCESS_TTL_MS: i64 = 3_600_000;
pub const REFRESH_TTL_MS: i64 = 30 * 86_400_000;
/// Longest token read (a sealed 2 KB upstream JWT with its refresh token is ~4 KB; headers
/// up to 8 KB pass every common proxy).
pub const MAX_TOKEN_CHARS: usize = 8_192;

/// An access token lives an hour at most, and never past the upstream token it carries.
pub fn access_expiry(now_ms: i64, upstream: &Upstream) -> i64 {
    let mine = now_ms + ACCESS_TTL_MS;
    upstream.expires_at_ms.map_or(mine, |u| mine.min(u))
}

/// Why a token was refused (all answered as `invalid_token` / `invalid_grant`, never detailed
/// to the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not `fcp_<kind>.<connection>.<envelope>` of the expected kind, or too long.
    Malformed,
    /// The envelope does not open with this kind, audience, connection and key id (forged,
    /// tampered, for another server, another kind, or sealed with a retired key).
    Unauthentic,
    Expired,
}

fn aad(kind: Kind, audience: &str, connection: &str, kid: &str) -> Vec<u8> {
    format!("oauth|{}|{audience}|{connection}|{kid}", kind.tag()).into_bytes()
}

/// Seal `grant` as a token of `kind` for `audience` (the canonical MCP URL) and `connection`.
pub fn seal(
    keyring: &Keyring,
    kind: Kind,
    audience: &str,
    connection: &str,
    grant: &Grant,
) -> Result<String, CryptoError> {
    let json = serde_json::to_vec(grant).map_err(|_| CryptoError::Malformed)?;
    let envelope = keyring.seal(&json, &aad(kind, audience, connection, keyring.primary_id()))?;
    Ok(format!("fcp_{}.{connection}.{envelope}", kind.tag()))
}

/// The connection a token names, without opening it (for logs and the revocation check; the
/// caller must still [`open`] it).
pub fn connection_of(token: &str, kind: Kind) -> Option<&str> {
    let rest = token.strip_prefix("fcp_")?.strip_prefix(kind.tag())?.strip_prefix('.')?;
    let (connection, _) = rest.split_once('.')?;
    crate::vocab::is_plain_id(connection, 64).then_some(connection)
}

/// Open a token of `kind` presented for `audience` at `now_ms`: the connection id and grant.
pub fn open(
    keyring: &Keyring,
    kind: Kind,
    audience: &str,
    token: &str,
    now_ms: i64,
) -> Result<(String, Grant), TokenError> {
    if token.len() > MAX_TOKEN_CHARS {
        return Err(TokenError::Malformed);
    }
    let connection = connection_of(token, kind).ok_or(TokenError::Malformed)?;
    let envelope = &token[format!("fcp_{}.{connection}.", kind.tag()).len()..];
    let kid = envelope_key_id(envelope).ok_or(TokenError::Malformed)?;
    let plain = keyring.open(envelope, &aad(kind, audience, connection, kid)).map_err(|e| match e {
        CryptoError::Malformed => TokenError::Malformed,
        _ => TokenError::Unauthentic,
    })?;
    let grant: Grant = serde_json::from_slice(&plain).map_err(|_| TokenError::Unauthentic)?;
    if now_ms >= grant.exp_ms {
        return Err(TokenError::Expired);
    }
    Ok((connection.to_string(), grant))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUD_A: &str = "https://flowcp.example/mcp/srv_A";
    const AUD_B: &str = "https://flowcp.example/mcp/srv_B";
    const KEYS: &str = "k1:1111111111111111111111111111111111111111111111111111111111111111";
    const NOW: i64 = 1_800_000_000_000;

    fn grant(upstream_token: &str) -> Grant {
        Grant {
            client_id: "https://claude.ai/oauth/claude-code-client-metadata".into(),
            scope: "mcp:srv_A repo".into(),
            iat_ms: NOW,
            exp_ms: NOW + ACCESS_TTL_MS,
            generation: 0,
            upstream: Upstream {
                provider: None,
                access_token: upstream_token.into(),
                refresh_token: Some("upstream-refresh-secret".into()),
                expires_at_ms: Some(NOW + 28_800_000),
                scope: Some("repo".into()),
            },
            redirect_uri: None,
            code_challenge: None,
            jti: None,
        }
    }

    #[test]
    fn a_token_opens_only_as_its_kind_for_its_server_and_connection() {
        let ring = Keyring::parse(KEYS).unwrap();
        let g = grant("upstream-access-secret");
        let t = seal(&ring, Kind::Access, AUD_A, "conn_1", &g).unwrap();
        assert!(t.starts_with("fcp_at.conn_1.fcp1.k1."), "{t}");
        assert!(!t.contains("upstream-access-secret") && !t.contains("upstream-refresh-secret"));
        assert_eq!(open(&ring, Kind::Access, AUD_A, &t, NOW + 1), Ok(("conn_1".into(), g.clone())));
        assert_eq!(open(&ring, Kind::Access, AUD_B, &t, NOW + 1), Err(TokenError::Unauthentic), "another server");
        assert_eq!(
            open(&ring, Kind::Access, "https://flowcp.example/mcp/srv_AB", &t, NOW),
            Err(TokenError::Unauthentic)
        );
        assert_eq!(open(&ring, Kind::Refresh, AUD_A, &t, NOW), Err(TokenError::Malformed), "another kind");
        let as_refresh = t.replacen("fcp_at.", "fcp_rt.", 1);
        assert_eq!(open(&ring, Kind::Refresh, AUD_A, &as_refresh, NOW), Err(TokenError::Unauthentic), "relabelled");
        let moved = t.replacen("conn_1", "conn_2", 1);
        assert_eq!(open(&ring, Kind::Access, AUD_A, &moved, NOW), Err(TokenError::Unauthentic), "another connection");
        assert_eq!(open(&ring, Kind::Access, AUD_A, &t, g.exp_ms), Err(TokenError::Expired));
        // One flipped character anywhere in the envelope's data.
        let at = t.len() - 5;
        let mut tampered = t.clone().into_bytes();
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            open(&ring, Kind::Access, AUD_A, &String::from_utf8(tampered).unwrap(), NOW),
            Err(TokenError::Unauthentic)
        );
        for junk in ["", "fcp_at.", "fcp_at.conn_1.", "fcp_at.conn_1.nope", "Bearer x", "fcp_at.c/1.fcp1.k1.AAAA"] {
            assert_eq!(open(&ring, Kind::Access, AUD_A, junk, NOW), Err(TokenError::Malformed), "{junk}");
        }
        assert_eq!(open(&ring, Kind::Access, AUD_A, &"x".repeat(MAX_TOKEN_CHARS + 1), NOW), Err(TokenError::Malformed));
        // Two seals of one grant differ (fresh nonce).
        assert_ne!(t, seal(&ring, Kind::Access, AUD_A, "conn_1", &g).unwrap());
        assert!(!format!("{g:?}").contains("secret"), "Debug never prints the upstream tokens");
    }

    #[test]
    fn tokens_sealed_under_a_retired_key_stop_opening_and_a_second_key_reads_the_first() {
        let old = Keyring::parse(KEYS).unwrap();
        let t = seal(&old, Kind::Refresh, AUD_A, "conn_1", &grant("a")).unwrap();
        let rotated = Keyring::parse(&format!("k2:{},{KEYS}", "2".repeat(64))).unwrap();
        assert!(open(&rotated, Kind::Refresh, AUD_A, &t, NOW).is_ok(), "the previous key still opens");
        let retired = Keyring::parse(&format!("k2:{}", "2".repeat(64))).unwrap();
        assert_eq!(open(&retired, Kind::Refresh, AUD_A, &t, NOW), Err(TokenError::Unauthentic));
        // A token claiming key k2 but sealed with k1's data does not open under k2 either.
        let relabelled = t.replacen(".fcp1.k1.", ".fcp1.k2.", 1);
        assert_eq!(open(&rotated, Kind::Refresh, AUD_A, &relabelled, NOW), Err(TokenError::Unauthentic));
    }

    /// The issue asks for the size of a token that wraps a 2 KB upstream JWT.
    #[test]
    fn a_token_wrapping_a_2_kb_upstream_jwt_fits_common_header_limits() {
        let ring = Keyring::parse(KEYS).unwrap();
        let jwt = format!("eyJ{}", "a".repeat(2_045));
        let t = seal(&ring, Kind::Access, AUD_A, "conn_0123456789abcdefghij", &grant(&jwt)).unwrap();
        println!("access token wrapping a 2 KB upstream JWT (+ its refresh token): {} bytes", t.len());
        assert!(t.len() < 4_096, "{} bytes", t.len());
        assert!(t.len() <= MAX_TOKEN_CHARS);
    }

    #[test]
    fn access_tokens_never_outlive_the_upstream_token() {
        let mut u = grant("a").upstream;
        assert_eq!(access_expiry(NOW, &u), NOW + ACCESS_TTL_MS);
        u.expires_at_ms = Some(NOW + 60_000);
        assert_eq!(access_expiry(NOW, &u), NOW + 60_000);
        u.expires_at_ms = None;
        assert_eq!(access_expiry(NOW, &u), NOW + ACCESS_TTL_MS);
    }
}
