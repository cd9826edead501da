//! Git providers (issue 17): the port a provider implements ([`GitProvider`]), the checks of
//! what an owner names (repository, branch, path), webhook signatures and the AAD of sealed
//! connection tokens. GitHub is the one provider ([`github`]); GitLab and Bitbucket implement the
//! same port.
//!
//! Invariants: an access or refresh token goes only into an `Authorization` header or a token
//! endpoint's form body, never into a URL, a log line or an error message; every error here is
//! safe to show to the owner.

pub mod github;
pub mod tokens;

use crate::net::Http;

/// The deployment's registration at a provider (an OAuth app or a GitHub App), from
/// `FLOWCP_GITHUB_*`.
#[derive(Clone)]
pub struct GitSettings {
    pub client_id: String,
    pub client_secret: String,
    /// The provider's web origin (`https://github.com`, or a GitHub Enterprise Server's).
    pub web_url: String,
    /// Its REST API base (`https://api.github.com`, or `https://<ghes>/api/v3`).
    pub api_url: String,
}

impl std::fmt::Debug for GitSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitSettings")
            .field("web_url", &self.web_url)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// Tokens a provider gave.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access_token: String,
    /// `None`: the access token does not expire (a classic OAuth app) or cannot be refreshed.
    pub refresh_token: Option<String>,
    pub access_expires_at: Option<i64>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(..)")
    }
}

/// Why a token endpoint gave no tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The code or refresh token is not (or no longer) valid: connect again.
    Refused,
    /// The endpoint could not be used (why, safe to show).
    Unusable(String),
}

/// Why a provider call failed (messages safe to show).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitError {
    /// The token was refused (401): refresh it, or the connection is broken.
    Unauthorized,
    /// The repository, branch or file is not there, or the token cannot see it.
    NotFound(String),
    /// The provider refused for another reason (permissions, rate limit).
    Refused(String),
    /// The provider could not be reached or failed (retry later).
    Unavailable(String),
}

impl std::fmt::Display for GitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitError::Unauthorized => f.write_str("the Git provider refused the connection's token"),
            GitError::NotFound(m) | GitError::Refused(m) | GitError::Unavailable(m) => f.write_str(m),
        }
    }
}

/// A branch head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub sha: String,
    pub author: String,
    /// The first line of the commit message.
    pub message: String,
    /// The provider's validator for a conditional poll.
    pub etag: Option<String>,
}

/// A conditional read of a branch head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadCheck {
    /// The head is still the one the ETag names (one request, nothing read).
    Unchanged,
    Now(Head),
}

/// What a verified webhook delivery says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The provider's delivery id (de-duplicated).
    pub id: String,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A push to `branch` (None: a tag or other ref) of `repo`.
    Push { repo: String, branch: Option<String> },
    /// The provider checking the hook.
    Ping,
    /// Any other event (ignored).
    Other(String),
}

/// Why a delivery is refused (nothing is done; the provider sees the status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryError {
    /// No signature, or one that does not match: 401.
    BadSignature,
    /// Signed, but not a delivery this provider sends (no id, unreadable body): 400.
    Malformed,
}

/// A Git provider. `H` carries the requests; every call has a time bound.
#[allow(async_fn_in_trait)]
pub trait GitProvider {
    /// `github`.
    fn name(&self) -> &'static str;
    /// The consent page's URL (PKCE S256 `challenge`, `state`).
    fn authorize_url(&self, redirect_uri: &str, state: &str, challenge: &str) -> String;
    async fn exchange_code<H: Http>(
        &self,
        http: &H,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        now_ms: i64,
    ) -> Result<Tokens, TokenError>;
    async fn refresh<H: Http>(&self, http: &H, refresh_token: &str, now_ms: i64) -> Result<Tokens, TokenError>;
    /// The account the token acts as (its login).
    async fn account<H: Http>(&self, http: &H, token: &str) -> Result<String, GitError>;
    /// Branch names of `repo` (at most 1,000).
    async fn branches<H: Http>(&self, http: &H, token: &str, repo: &str) -> Result<Vec<String>, GitError>;
    /// The head of `branch`, unless it is still the one `etag` names.
    async fn head<H: Http>(
        &self,
        http: &H,
        token: &str,
        repo: &str,
        branch: &str,
        etag: Option<&str>,
    ) -> Result<HeadCheck, GitError>;
    /// A file's bytes at commit `sha`; a file larger than `max` bytes is `Refused`.
    async fn file<H: Http>(
        &self,
        http: &H,
        token: &str,
        repo: &str,
        path: &str,
        sha: &str,
        max: usize,
    ) -> Result<Vec<u8>, GitError>;
    /// Adds a push webhook to `repo`; its id.
    async fn create_hook<H: Http>(
        &self,
        http: &H,
        token: &str,
        repo: &str,
        url: &str,
        secret: &str,
    ) -> Result<String, GitError>;
    async fn delete_hook<H: Http>(&self, http: &H, token: &str, repo: &str, id: &str) -> Result<(), GitError>;
    /// Checks a delivery's signature with `secret` and reads it.
    fn delivery(&self, headers: &[(String, String)], body: &[u8], secret: &[u8]) -> Result<Delivery, DeliveryError>;
    /// The document at a commit on the provider's site.
    fn file_url(&self, repo: &str, sha: &str, path: &str) -> String;
}

/// The AAD of a connection's sealed token: workspace, connection and purpose (`refresh`,
/// `access`, `verifier`), so an envelope moved to another row or purpose does not open.
pub fn token_aad(workspace_id: &str, connection_id: &str, purpose: &str) -> Vec<u8> {
    format!("git|{workspace_id}|{connection_id}|{purpose}").into_bytes()
}

/// The AAD of a source's sealed webhook secret.
pub fn hook_secret_aad(workspace_id: &str, source_id: &str) -> Vec<u8> {
    format!("git-hook|{workspace_id}|{source_id}").into_bytes()
}

/// `owner/name` of letters, digits, `-`, `_` and `.` (not `.` or `..`), at most 200 characters.
pub fn valid_repo(repo: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 100
            && p != "."
            && p != ".."
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    matches!(repo.split_once('/'), Some((o, n)) if part(o) && part(n))
}

/// A branch name Git accepts (`git check-ref-format --branch`, the parts that matter here).
pub fn valid_branch(branch: &str) -> bool {
    !branch.is_empty()
        && branch.len() <= 255
        && !branch.starts_with(['/', '-', '.'])
        && !branch.ends_with(['/', '.'])
        && !branch.ends_with(".lock")
        && !branch.contains("..")
        && !branch.contains("//")
        && !branch.contains("@{")
        && !branch.split('/').any(|p| p.starts_with('.'))
        && branch.chars().all(|c| !c.is_control() && !matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
}

/// A file path in a repository: relative, `/`-separated, no empty, `.` or `..` segment, at most
/// 1,024 characters.
pub fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 1024
        && !path.contains('\\')
        && path.chars().all(|c| !c.is_control())
        && path.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

/// Percent-encodes one URL path segment (everything but unreserved characters).
pub(crate) fn segment(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    utf8_percent_encode(s, KEEP).to_string()
}

/// A repository path with each segment percent-encoded (the `/`s kept).
pub(crate) fn segments(path: &str) -> String {
    path.split('/').map(segment).collect::<Vec<_>>().join("/")
}

/// HMAC-SHA256 of `body` with `secret`, checked in constant time against `sha256=<hex>`.
pub fn signature_matches(header: Option<&str>, body: &[u8], secret: &[u8]) -> bool {
    use hmac::{Hmac, Mac};
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else { return false };
    let Ok(given) = hex::decode(hex_sig) else { return false };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else { return false };
    mac.update(body);
    crate::crypto::ct_eq(&mac.finalize().into_bytes(), &given)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_they_reach_a_url() {
        assert!(valid_repo("octo/pets") && valid_repo("a.b/c-d_e"));
        for bad in
            ["octo", "octo/", "/pets", "octo/pets/x", "../pets", "octo/..", "o o/p", "octo/pets?x=1", "octo/p%2F"]
        {
            assert!(!valid_repo(bad), "{bad}");
        }
        assert!(valid_branch("main") && valid_branch("feature/x-1") && valid_branch("release-2.0"));
        for bad in [
            "", "-x", "a..b", "a b", "x.lock", "a/", "/a", "a//b", "a~1", "a^", "a:b", "a\\b", "a/.b", "a@{1}", "\u{7}",
        ] {
            assert!(!valid_branch(bad), "{bad:?}");
        }
        assert!(valid_path("openapi.yaml") && valid_path("api/v1/open api.json"));
        for bad in ["", "/abs", "a/../b", "a//b", "./a", "a\\b", "a/", "a\n"] {
            assert!(!valid_path(bad), "{bad:?}");
        }
        assert_eq!(segment("feature/x y"), "feature%2Fx%20y");
    }

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // GitHub's documented example (docs: "Validating webhook deliveries").
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_matches(Some(header), b"Hello, World!", b"It's a Secret to Everybody"));
        assert!(!signature_matches(Some(header), b"Hello, World?", b"It's a Secret to Everybody"));
        assert!(!signature_matches(Some(header), b"Hello, World!", b"another secret"));
        assert!(!signature_matches(None, b"Hello, World!", b"It's a Secret to Everybody"));
        assert!(!signature_matches(Some("sha1=757107ea"), b"Hello, World!", b"It's a Secret to Everybody"));
        assert!(!signature_matches(Some("sha256=zz"), b"Hello, World!", b"It's a Secret to Everybody"));
    }
}
