//! GitHub (and GitHub Enterprise Server) behind [`GitProvider`]: a GitHub App's user-to-server
//! tokens (8-hour access tokens, refresh tokens rotated on every use) or a classic OAuth app's
//! (no expiry, no refresh token), the REST API for branches, commits and contents, repository
//! webhooks, and `X-Hub-Signature-256` deliveries.
//!
//! GitHub's quirks handled here: its token endpoint answers errors with HTTP 200 and an `error`
//! member; a branch head read with `If-None-Match` answers 304 when unchanged (and costs no
//! rate limit); file contents come raw with `application/vnd.github.raw+json`.

use serde_json::{json, Value};

use super::{
    segment, segments, Delivery, DeliveryError, Event, GitError, GitProvider, GitSettings, Head, HeadCheck, TokenError,
    Tokens,
};
use crate::net::{Http, HttpRequest, HttpResponse};

/// Time bound of every GitHub call.
const TIMEOUT_MS: u32 = 10_000;
/// Largest JSON answer read (a page of 100 branches is about 20 KB).
const MAX_JSON: usize = 512 * 1024;
/// Branch pages read at most (100 per page).
const MAX_BRANCH_PAGES: usize = 10;

pub struct GitHub<'a> {
    pub settings: &'a GitSettings,
}

fn api_request(method: &str, url: String, token: &str, accept: &str, body: Option<Value>) -> HttpRequest {
    let mut headers = vec![
        ("authorization".to_string(), format!("Bearer {token}")),
        ("accept".to_string(), accept.to_string()),
        ("x-github-api-version".to_string(), "2022-11-28".to_string()),
        ("user-agent".to_string(), "FlowCP".to_string()),
    ];
    let body = body.map(|b| {
        headers.push(("content-type".to_string(), "application/json".to_string()));
        serde_json::to_vec(&b).unwrap_or_default()
    });
    HttpRequest { method: method.to_string(), url, headers, body, timeout_ms: TIMEOUT_MS }
}

/// GitHub's own words for a failure (`message`), bounded, when it sent some.
fn github_message(resp: &HttpResponse) -> String {
    serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(|m| m.chars().take(200).collect::<String>()))
        .unwrap_or_default()
}

/// Maps a non-2xx answer to an error; `what` names the thing asked for.
fn failure(resp: &HttpResponse, what: &str) -> GitError {
    let said = github_message(resp);
    let said = if said.is_empty() { String::new() } else { format!(" (GitHub said: {said})") };
    match resp.status {
        401 => GitError::Unauthorized,
        404 | 422 => GitError::NotFound(format!("{what} was not found, or the connection cannot see it{said}")),
        403 | 429 => GitError::Refused(format!("GitHub refused to show {what}{said}")),
        s => GitError::Unavailable(format!("GitHub answered HTTP {s} for {what}")),
    }
}

impl GitHub<'_> {
    fn api(&self, rest: &str) -> String {
        format!("{}/{}", self.settings.api_url.trim_end_matches('/'), rest)
    }

    fn repo_path(repo: &str) -> String {
        let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
        format!("repos/{}/{}", segment(owner), segment(name))
    }

    async fn send<H: Http>(&self, http: &H, req: &HttpRequest, max: usize) -> Result<HttpResponse, GitError> {
        http.send(req, max).await.map_err(|_| GitError::Unavailable("GitHub could not be reached".into()))
    }

    async fn json<H: Http>(&self, http: &H, req: &HttpRequest, what: &str) -> Result<(Value, HttpResponse), GitError> {
        let resp = self.send(http, req, MAX_JSON).await?;
        if !(200..300).contains(&resp.status) {
            return Err(failure(&resp, what));
        }
        let v = serde_json::from_slice(&resp.body)
            .map_err(|_| GitError::Unavailable(format!("GitHub answered something unreadable for {what}")))?;
        Ok((v, resp))
    }

    async fn token_call<H: Http>(&self, http: &H, grant: &[(&str, &str)], now_ms: i64) -> Result<Tokens, TokenError> {
        let url = format!("{}/login/oauth/access_token", self.settings.web_url.trim_end_matches('/'));
        let req = crate::oauth::providers::token_request(
            &url,
            grant,
            &self.settings.client_id,
            &self.settings.client_secret,
            TIMEOUT_MS,
        );
        let resp = http
            .send(&req, 64 * 1024)
            .await
            .map_err(|_| TokenError::Unusable("GitHub's token endpoint could not be reached".into()))?;
        tokens_of(&resp, now_ms)
    }
}

/// Reads a token endpoint's answer (errors come with HTTP 200 and an `error` member).
fn tokens_of(resp: &HttpResponse, now_ms: i64) -> Result<Tokens, TokenError> {
    let v: Option<Value> = serde_json::from_slice(&resp.body).ok();
    if let Some(error) = v.as_ref().and_then(|v| v.get("error")).and_then(Value::as_str) {
        return Err(match error {
            "bad_verification_code" | "bad_refresh_token" | "invalid_grant" | "unauthorized" => TokenError::Refused,
            "incorrect_client_credentials" => {
                TokenError::Unusable("GitHub refused FlowCP's client id or secret; the operator must check them".into())
            }
            _ => TokenError::Unusable("GitHub's token endpoint refused the request".into()),
        });
    }
    if !(200..300).contains(&resp.status) {
        return Err(TokenError::Unusable(format!("GitHub's token endpoint answered HTTP {}", resp.status)));
    }
    let v = v.ok_or_else(|| TokenError::Unusable("GitHub's token endpoint answered something unreadable".into()))?;
    let text =
        |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= 2048).map(str::to_string);
    Ok(Tokens {
        access_token: text("access_token")
            .ok_or_else(|| TokenError::Unusable("GitHub's token endpoint returned no access token".into()))?,
        refresh_token: text("refresh_token"),
        access_expires_at: v
            .get("expires_in")
            .and_then(Value::as_i64)
            .filter(|s| *s > 0)
            .map(|s| now_ms.saturating_add(s.min(400 * 86_400) * 1000)),
    })
}

impl GitProvider for GitHub<'_> {
    fn name(&self) -> &'static str {
        "github"
    }

    fn authorize_url(&self, redirect_uri: &str, state: &str, challenge: &str) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            // A classic OAuth app needs these scopes; a GitHub App ignores them (its
            // permissions are set at registration: docs/git.md).
            .append_pair("scope", "repo admin:repo_hook")
            .finish();
        format!("{}/login/oauth/authorize?{query}", self.settings.web_url.trim_end_matches('/'))
    }

    async fn exchange_code<H: Http>(
        &self,
        http: &H,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        now_ms: i64,
    ) -> Result<Tokens, TokenError> {
        self.token_call(http, &[("code", code), ("redirect_uri", redirect_uri), ("code_verifier", verifier)], now_ms)
            .await
    }

    async fn refresh<H: Http>(&self, http: &H, refresh_token: &str, now_ms: i64) -> Result<Tokens, TokenError> {
        self.token_call(http, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)], now_ms).await
    }

    async fn account<H: Http>(&self, http: &H, token: &str) -> Result<String, GitError> {
        let req = api_request("GET", self.api("user"), token, "application/vnd.github+json", None);
        let (v, _) = self.json(http, &req, "the signed-in account").await?;
        v.get("login")
            .and_then(Value::as_str)
            .filter(|l| !l.is_empty() && l.len() <= 100)
            .map(str::to_string)
            .ok_or_else(|| GitError::Unavailable("GitHub named no account".into()))
    }

    async fn branches<H: Http>(&self, http: &H, token: &str, repo: &str) -> Result<Vec<String>, GitError> {
        let mut out = Vec::new();
        for page in 1..=MAX_BRANCH_PAGES {
            let url = self.api(&format!("{}/branches?per_page=100&page={page}", Self::repo_path(repo)));
            let req = api_request("GET", url, token, "application/vnd.github+json", None);
            let (v, resp) = self.json(http, &req, &format!("the repository {repo}")).await?;
            let items =
                v.as_array().ok_or_else(|| GitError::Unavailable("GitHub's branch list is not a list".into()))?;
            out.extend(items.iter().filter_map(|b| b.get("name").and_then(Value::as_str)).map(str::to_string));
            let next = crate::net::header(&resp.headers, "link").is_some_and(|l| l.contains("rel=\"next\""));
            if !next || items.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    async fn head<H: Http>(
        &self,
        http: &H,
        token: &str,
        repo: &str,
        branch: &str,
        etag: Option<&str>,
    ) -> Result<HeadCheck, GitError> {
        let url = self.api(&format!("{}/commits/{}", Self::repo_path(repo), segment(branch)));
        let mut req = api_request("GET", url, token, "application/vnd.github+json", None);
        if let Some(e) = etag {
            req.headers.push(("if-none-match".into(), e.to_string()));
        }
        let resp = self.send(http, &req, MAX_JSON).await?;
        if resp.status == 304 && etag.is_some() {
            return Ok(HeadCheck::Unchanged);
        }
        if !(200..300).contains(&resp.status) {
            return Err(failure(&resp, &format!("the branch {branch} of {repo}")));
        }
        let v: Value = serde_json::from_slice(&resp.body)
            .map_err(|_| GitError::Unavailable("GitHub answered an unreadable commit".into()))?;
        let sha = v
            .get("sha")
            .and_then(Value::as_str)
            .filter(|s| s.len() >= 7 && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| GitError::Unavailable("GitHub answered a commit without a sha".into()))?;
        let commit = v.get("commit");
        let author = commit
            .and_then(|c| c.pointer("/author/name"))
            .and_then(Value::as_str)
            .or_else(|| v.pointer("/author/login").and_then(Value::as_str))
            .unwrap_or("unknown");
        let message = commit.and_then(|c| c.get("message")).and_then(Value::as_str).unwrap_or("");
        Ok(HeadCheck::Now(Head {
            sha: sha.to_ascii_lowercase(),
            author: author.chars().take(200).collect(),
            message: message.lines().next().unwrap_or("").chars().take(300).collect(),
            etag: crate::net::header(&resp.headers, "etag").filter(|e| e.len() <= 200).map(str::to_string),
        }))
    }

    async fn file<H: Http>(
        &self,
        http: &H,
        token: &str,
        repo: &str,
        path: &str,
        sha: &str,
        max: usize,
    ) -> Result<Vec<u8>, GitError> {
        let url = self.api(&format!("{}/contents/{}?ref={}", Self::repo_path(repo), segments(path), segment(sha)));
        let req = api_request("GET", url, token, "application/vnd.github.raw+json", None);
        let resp = self.send(http, &req, max).await?;
        if !(200..300).contains(&resp.status) {
            return Err(failure(&resp, &format!("the file {path}")));
        }
        if resp.truncated {
            return Err(GitError::Refused(format!("the file {path} is larger than {max} bytes")));
        }
        // A directory answers its JSON listing even to the raw media type.
        let media = crate::net::header(&resp.headers, "content-type").unwrap_or("");
        if media.starts_with("application/json") && resp.body.first() == Some(&b'[') {
            return Err(GitError::NotFound(format!("{path} is a directory, not a file")));
        }
        Ok(resp.body)
    }

    async fn create_hook<H: Http>(
        &self,
        http: &H,
        token: &str,
        repo: &str,
        url: &str,
        secret: &str,
    ) -> Result<String, GitError> {
        let body = json!({
            "name": "web",
            "active": true,
            "events": ["push"],
            "config": { "url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0" }
        });
        let req = api_request(
            "POST",
            self.api(&format!("{}/hooks", Self::repo_path(repo))),
            token,
            "application/vnd.github+json",
            Some(body),
        );
        let (v, _) = self.json(http, &req, &format!("the webhooks of {repo}")).await?;
        match v.get("id") {
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(GitError::Unavailable("GitHub created a webhook without an id".into())),
        }
    }

    async fn delete_hook<H: Http>(&self, http: &H, token: &str, repo: &str, id: &str) -> Result<(), GitError> {
        let url = self.api(&format!("{}/hooks/{}", Self::repo_path(repo), segment(id)));
        let req = api_request("DELETE", url, token, "application/vnd.github+json", None);
        let resp = self.send(http, &req, 4096).await?;
        match resp.status {
            200..=299 | 404 => Ok(()),
            _ => Err(failure(&resp, "the webhook")),
        }
    }

    fn delivery(&self, headers: &[(String, String)], body: &[u8], secret: &[u8]) -> Result<Delivery, DeliveryError> {
        let header = |n: &str| crate::net::header(headers, n);
        if !super::signature_matches(header("x-hub-signature-256"), body, secret) {
            return Err(DeliveryError::BadSignature);
        }
        let id = header("x-github-delivery")
            .filter(|d| !d.is_empty() && d.len() <= 100 && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            .ok_or(DeliveryError::Malformed)?
            .to_string();
        let event = match header("x-github-event").unwrap_or("") {
            "ping" => Event::Ping,
            "push" => {
                let v: Value = serde_json::from_slice(body).map_err(|_| DeliveryError::Malformed)?;
                let repo =
                    v.pointer("/repository/full_name").and_then(Value::as_str).ok_or(DeliveryError::Malformed)?;
                let branch = v.get("ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("refs/heads/"));
                Event::Push { repo: repo.to_string(), branch: branch.map(str::to_string) }
            }
            other => Event::Other(other.chars().take(50).collect()),
        };
        Ok(Delivery { id, event })
    }

    fn file_url(&self, repo: &str, sha: &str, path: &str) -> String {
        format!("{}/{}/blob/{}/{}", self.settings.web_url.trim_end_matches('/'), repo, segment(sha), segments(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse { status, headers: Vec::new(), body: body.as_bytes().to_vec(), truncated: false }
    }

    #[test]
    fn token_answers_are_read_as_github_sends_them() {
        let ok = tokens_of(&resp(200, r#"{"access_token":"ghu_a","expires_in":28800,"refresh_token":"ghr_b"}"#), 1000)
            .unwrap();
        assert_eq!((ok.refresh_token.as_deref(), ok.access_expires_at), (Some("ghr_b"), Some(1000 + 28_800_000)));
        // A classic OAuth app's token: no expiry, no refresh token.
        let classic = tokens_of(&resp(200, r#"{"access_token":"gho_a","scope":"repo"}"#), 0).unwrap();
        assert_eq!((classic.refresh_token, classic.access_expires_at), (None, None));
        // Errors come with HTTP 200.
        assert_eq!(tokens_of(&resp(200, r#"{"error":"bad_refresh_token"}"#), 0), Err(TokenError::Refused));
        assert!(matches!(
            tokens_of(&resp(200, r#"{"error":"incorrect_client_credentials"}"#), 0),
            Err(TokenError::Unusable(_))
        ));
        assert!(matches!(tokens_of(&resp(502, "<html>"), 0), Err(TokenError::Unusable(_))));
        assert!(matches!(tokens_of(&resp(200, r#"{"token_type":"bearer"}"#), 0), Err(TokenError::Unusable(_))));
    }

    #[test]
    fn failures_never_quote_more_than_githubs_message() {
        let e = failure(&resp(404, r#"{"message":"Not Found"}"#), "the file a.yaml");
        assert_eq!(
            e,
            GitError::NotFound(
                "the file a.yaml was not found, or the connection cannot see it (GitHub said: Not Found)".into()
            )
        );
        assert_eq!(failure(&resp(401, "{}"), "x"), GitError::Unauthorized);
        assert!(matches!(failure(&resp(503, "x"), "x"), GitError::Unavailable(_)));
    }
}
