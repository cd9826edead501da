//! The authorization server's HTTP endpoints (one issuer for the whole origin).
//!
//! - `GET /.well-known/oauth-authorization-server` (RFC 8414) and `POST /oauth/register`
//!   (RFC 7591), with CORS for browser-based clients (no cookies there: `*` is safe);
//! - `GET /oauth/authorize`: the request checked ([`super::flow`]), then FlowCP's consent page
//!   naming the client, its redirect host, the server and the upstream scopes (the
//!   confused-deputy defence, PX-01), with a sealed ticket bound to a `__Host-` cookie;
//! - `POST /oauth/authorize`: the decision; on approval FlowCP's own sealed, single-use upstream
//!   `state` and PKCE, and a redirect to the provider (PX-03, PX-05);
//! - `GET /oauth/callback`: the state redeemed once, the client's redirect URI checked again
//!   (PX-04), the upstream code exchanged with the owner's client secret, and FlowCP's code
//!   sent to the client with `iss` (RFC 9207);
//! - `POST /oauth/token`: the code grant ([`super::grant`]) and the refresh grant;
//! - `POST /oauth/revoke` (RFC 7009);
//! - `GET /oauth/connections`, `POST /oauth/connections`: the end user's own connections
//!   (those made in this browser) and their revocation.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::flow::{self, AuthorizeError, AuthorizeRequest};
use super::pages::{
    authorize_error_redirect, cookie, declined, error_page, escape, form_params, grant_ctx, host_cookie, html, page,
    redirect, Pending, CONSENT_COOKIE, TICKET_TTL_MS,
};
use super::tokens::Upstream;
use super::{grant, register, OAuthError};
use crate::api::{Request, Response, Services};
use crate::crypto::{random_id, random_token, sha256_hex, Keyring};
use crate::manifest::Manifest;
use crate::net::Http;
use crate::store::oauth_clients::{self, OAuthClient};
use crate::store::{connections, Db, Kv};
use crate::vocab::AuthMode;

pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// OpenID Connect discovery: the same document, for clients that look only there (FlowCP
/// issues no ID tokens; it is an OAuth authorization server).
pub const OIDC_METADATA_PATH: &str = "/.well-known/openid-configuration";

pub fn is_metadata_path(path: &str) -> bool {
    path == METADATA_PATH || path == OIDC_METADATA_PATH
}

/// RFC 8414 metadata: `issuer` is the origin exactly (no trailing slash).
pub fn metadata(origin: &str) -> Value {
    json!({
        "issuer": origin,
        "authorization_endpoint": format!("{origin}/oauth/authorize"),
        "token_endpoint": format!("{origin}/oauth/token"),
        "registration_endpoint": format!("{origin}/oauth/register"),
        "revocation_endpoint": format!("{origin}/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
    })
}

fn cors(r: Response) -> Response {
    r.with_header("access-control-allow-origin", "*").with_header("access-control-expose-headers", "WWW-Authenticate")
}

/// Answers the authorization server's paths; `None` for any other path.
pub async fn handle<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request) -> Option<Response> {
    let path = req.path.as_str();
    if path.starts_with(super::portal::PREFIX) {
        return super::portal::handle(svc, req).await;
    }
    let known =
        matches!(path, "/oauth/register" | "/oauth/authorize" | "/oauth/token" | "/oauth/revoke" | CONNECTIONS_PATH)
            || is_metadata_path(path)
            || path.starts_with(CALLBACK_PREFIX);
    if !known {
        return None;
    }
    let method = req.method.as_str();
    if method == "OPTIONS" {
        return Some(cors(
            Response::no_content()
                .with_header("access-control-allow-methods", "GET, POST, OPTIONS")
                .with_header("access-control-allow-headers", "Content-Type, Authorization, MCP-Protocol-Version")
                .with_header("access-control-max-age", "86400"),
        ));
    }
    let not_allowed = |allow: &str| {
        Some(cors(
            OAuthError::new(405, "invalid_request", format!("use {allow}")).to_response().with_header("allow", allow),
        ))
    };
    Some(match path {
        METADATA_PATH | OIDC_METADATA_PATH => match method {
            "GET" | "HEAD" => {
                cors(Response::json(200, metadata(&svc.origin)).with_header("cache-control", "max-age=300"))
            }
            _ => return not_allowed("GET"),
        },
        "/oauth/register" => match method {
            "POST" => cors(register_client(svc, req).await.unwrap_or_else(|e| e.to_response())),
            _ => return not_allowed("POST"),
        },
        "/oauth/authorize" => match method {
            "GET" => consent_page(svc, req).await,
            "POST" => decide(svc, req).await,
            _ => return not_allowed("GET, POST"),
        },
        p if p.starts_with(CALLBACK_PREFIX) => match method {
            "GET" => callback(svc, req, &p[CALLBACK_PREFIX.len()..]).await,
            _ => return not_allowed("GET"),
        },
        "/oauth/token" => match method {
            "POST" => cors(token(svc, req).await.unwrap_or_else(|e| e.to_response())),
            _ => return not_allowed("POST"),
        },
        CONNECTIONS_PATH => match method {
            "GET" => my_connections(svc, req).await,
            "POST" => disconnect(svc, req).await,
            _ => return not_allowed("GET, POST"),
        },
        "/oauth/revoke" => match method {
            "POST" => cors(revoke(svc, req).await),
            _ => return not_allowed("POST"),
        },
        _ => return None,
    })
}

pub use super::pages::{callback_url, CALLBACK_PREFIX};
use super::pages::{published, STATE_COOKIE};

/// Approvals this browser gave, remembered for 30 days in a sealed `__Host-` cookie: the same
/// client asking again for the same server with the same redirect URI goes straight to the
/// provider. (FlowCP knows no end user before the provider's sign-in, so "per user" is per
/// browser; the provider still signs the user in each time.)
const APPROVALS_COOKIE: &str = "__Host-fcp_approved";
const APPROVAL_TTL_MS: i64 = 30 * 86_400_000;
const MAX_APPROVALS: usize = 8;

#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
struct Approval {
    client_id: String,
    server_id: String,
    redirect_uri: String,
    /// The upstream scopes the user saw: an owner who asks for more shows the page again.
    scopes: String,
    exp_ms: i64,
}

/// A list kept in a sealed cookie (the purpose is in the AAD); empty when absent or altered.
fn sealed_list<T: serde::de::DeserializeOwned>(req: &Request, keyring: &Keyring, name: &str, purpose: &str) -> Vec<T> {
    let Some(sealed) = cookie(req, name).filter(|c| c.len() <= 4096) else { return Vec::new() };
    keyring.open(&sealed, purpose.as_bytes()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// The cookie holding `list` sealed; `None` when it would outgrow a cookie.
fn sealed_list_cookie<T: Serialize>(
    keyring: &Keyring,
    name: &str,
    purpose: &str,
    list: &[T],
    max_age_s: i64,
) -> Option<String> {
    let sealed = keyring.seal(&serde_json::to_vec(list).ok()?, purpose.as_bytes()).ok()?;
    (sealed.len() <= 3500).then(|| host_cookie(name, &sealed, max_age_s))
}

fn approvals(req: &Request, keyring: &Keyring, now_ms: i64) -> Vec<Approval> {
    let list: Vec<Approval> = sealed_list(req, keyring, APPROVALS_COOKIE, "oauth|approvals");
    list.into_iter().filter(|a| a.exp_ms > now_ms).collect()
}

fn approval_of(r: &AuthorizeRequest, m: &Manifest, exp_ms: i64) -> Approval {
    Approval {
        client_id: r.client_id.clone(),
        server_id: r.server_id().unwrap_or_default().to_string(),
        redirect_uri: r.redirect_uri.clone(),
        scopes: m.auth.scopes.join(" "),
        exp_ms,
    }
}

fn approved(req: &Request, keyring: &Keyring, now_ms: i64, r: &AuthorizeRequest, m: &Manifest) -> bool {
    let want = approval_of(r, m, 0);
    approvals(req, keyring, now_ms).iter().any(|a| Approval { exp_ms: 0, ..a.clone() } == want)
}

/// The approvals cookie with `r` added (newest first, at most [`MAX_APPROVALS`]).
fn remember(req: &Request, keyring: &Keyring, now_ms: i64, r: &AuthorizeRequest, m: &Manifest) -> Option<String> {
    let new = approval_of(r, m, now_ms + APPROVAL_TTL_MS);
    let mut list = vec![new.clone()];
    list.extend(approvals(req, keyring, now_ms).into_iter().filter(|a| {
        (&a.client_id, &a.server_id, &a.redirect_uri) != (&new.client_id, &new.server_id, &new.redirect_uri)
    }));
    list.truncate(MAX_APPROVALS);
    sealed_list_cookie(keyring, APPROVALS_COOKIE, "oauth|approvals", &list, APPROVAL_TTL_MS / 1000)
}

/// Before the user did anything on FlowCP's page, an error is not redirected automatically:
/// registration is open, so that would make FlowCP an open redirector (RFC 9700 §4.11.2). The
/// page links back to the app instead.
fn error_page_with_link(e: &AuthorizeError, issuer: &str) -> Response {
    match e {
        AuthorizeError::Page(why) => error_page(why),
        AuthorizeError::Redirect { redirect_uri, state, error, description } => {
            match flow::error_redirect(redirect_uri, error, description, state.as_deref(), issuer) {
                Some(to) => html(
                    400,
                    page(
                        "This sign-in request cannot continue",
                        &format!(
                            "<p>{}.</p><p><a href=\"{}\">Return to the app</a></p>",
                            escape(description),
                            escape(&to)
                        ),
                    ),
                ),
                None => error_page(description),
            }
        }
    }
}

/// Does the authorize request's `resource` (or server scope) name a server published with
/// OAuth sign-in, or FlowCP's own MCP server?
async fn names_oauth_server<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request) -> bool {
    let q = |k: &str| req.query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match super::resource::target_of(q("resource"), q("scope"), &svc.origin) {
        Ok(super::resource::Target::Server(id)) => published(svc.kv, &id, svc.now_ms)
            .await
            .is_some_and(|m| m.auth.mode == AuthMode::Oauth && m.auth.oauth.is_some()),
        Ok(super::resource::Target::Management) => true,
        Err(_) => false,
    }
}

async fn consent_page<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request) -> Response {
    let client_id = req.query.iter().find(|(k, _)| k == "client_id").map(|(_, v)| v.as_str()).unwrap_or("");
    // FlowCP's own MCP server: only a signed-in account's request goes on (nothing, not even a
    // client's metadata document, is fetched for a signed-out one).
    let q = |k: &str| req.query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if matches!(
        super::resource::target_of(q("resource"), q("scope"), &svc.origin),
        Ok(super::resource::Target::Management)
    ) && crate::api::context::signed_in_user(svc, req).await.is_err()
    {
        return super::account::sign_in_redirect(req);
    }
    let is_document = super::cimd::is_document_url(client_id, svc.fetch_policy);
    if is_document && !names_oauth_server(svc, req).await {
        // Fetch a client's document only for a request that could go on (no fetches on
        // behalf of requests for nothing).
        return error_page("the request does not name a server published with OAuth sign-in");
    }
    let client = if is_document {
        match super::cimd::resolve(svc.db, svc.http, svc.fetch_policy, client_id, svc.now_ms).await {
            Ok(c) => Some(c),
            Err(e) => return error_page(&e.description),
        }
    } else {
        oauth_clients::get(svc.db, client_id).await.ok().flatten()
    };
    let r = match flow::validate_authorize(&req.query, client.as_ref(), &svc.origin) {
        Ok(r) => r,
        Err(e) => return error_page_with_link(&e, &svc.origin),
    };
    let Some(client) = client else { return error_page("the client is not registered here") };
    let Some(server_id) = r.server_id() else {
        return super::account::consent_page(svc, req, r, &client).await;
    };
    let m = match published(svc.kv, server_id, svc.now_ms).await {
        Some(m) if m.auth.mode == AuthMode::Oauth && m.auth.oauth.is_some() => m,
        _ => {
            let e = AuthorizeError::Redirect {
                redirect_uri: r.redirect_uri.clone(),
                state: r.state.clone(),
                error: "invalid_target",
                description: "the server is not published with OAuth sign-in",
            };
            return error_page_with_link(&e, &svc.origin);
        }
    };
    // Approved before in this browser: straight on to the provider.
    if approved(req, &svc.secrets.keyring, svc.now_ms, &r, &m) {
        return to_provider(svc, r, &m);
    }
    let Ok(nonce) = random_token("") else { return error_page("no randomness; try again") };
    let pending = Pending {
        request: r.clone(),
        exp_ms: svc.now_ms + TICKET_TTL_MS,
        nonce_hash: sha256_hex(nonce.as_bytes()),
        upstream_verifier: None,
        user_id: None,
    };
    let Some(ticket) = pending.seal(&svc.secrets.keyring, "oauth|consent") else {
        return error_page("the request could not be sealed; try again");
    };
    let host = url::Url::parse(&r.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| r.redirect_uri.clone());
    // A metadata-document client is vouched for by the site that serves its document; a
    // dynamically registered one by nobody.
    let origin_note = match url::Url::parse(&client.id).ok().and_then(|u| u.host_str().map(str::to_string)) {
        Some(site) => format!("Client information published at {site} (not checked by FlowCP)."),
        None => "Unverified client registered at FlowCP.".to_string(),
    };
    let scopes =
        if m.auth.scopes.is_empty() { "its default permissions".to_string() } else { m.auth.scopes.join(", ") };
    let inner = format!(
        "<p><strong>{client}</strong> wants to use <strong>{server}</strong> as you.</p>\
         <p>You will sign in with the API's own provider, which will ask you to grant: <code>{scopes}</code>.</p>\
         <p>After that you are sent back to <code>{host}</code>. Only continue if you started this from that app.</p>\
         <form method=\"post\" action=\"/oauth/authorize\"><input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
         <button name=\"decision\" value=\"approve\">Continue</button><button name=\"decision\" value=\"deny\">Cancel</button></form>\
         <p><small>{origin_note} FlowCP keeps no copy of your tokens. \
         <a href=\"/oauth/connections\">Your connections</a></small></p>",
        client = escape(&client.client_name),
        server = escape(&m.name),
        scopes = escape(&scopes),
        host = escape(&host),
        ticket = escape(&ticket),
        origin_note = escape(&origin_note),
    );
    html(200, page("Allow access?", &inner)).with_header("set-cookie", host_cookie(CONSENT_COOKIE, &nonce, 600))
}

/// The connections made in this browser (their ids, newest first): the end user's own list,
/// without an account (FlowCP knows no end user). A sealed `__Host-` cookie, kept as long as a
/// refresh token lives.
const CONNECTIONS_COOKIE: &str = "__Host-fcp_conns";
pub const CONNECTIONS_PATH: &str = "/oauth/connections";
const MAX_REMEMBERED_CONNECTIONS: usize = 20;

fn my_connection_ids(req: &Request, keyring: &Keyring) -> Vec<String> {
    sealed_list(req, keyring, CONNECTIONS_COOKIE, "oauth|connections")
}

fn remember_connection(req: &Request, keyring: &Keyring, connection_id: &str) -> Option<String> {
    let mut ids = vec![connection_id.to_string()];
    ids.extend(my_connection_ids(req, keyring).into_iter().filter(|i| i != connection_id));
    ids.truncate(MAX_REMEMBERED_CONNECTIONS);
    sealed_list_cookie(keyring, CONNECTIONS_COOKIE, "oauth|connections", &ids, super::tokens::REFRESH_TTL_MS / 1000)
}

/// The form's CSRF token: bound to this browser's connections cookie (a page rendered for
/// another browser, or a cross-site form, does not carry it).
fn connections_csrf(req: &Request, keyring: &Keyring) -> Option<String> {
    let c = cookie(req, CONNECTIONS_COOKIE)?;
    keyring.seal(sha256_hex(c.as_bytes()).as_bytes(), b"oauth|connections-csrf").ok()
}

async fn my_connections<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request) -> Response {
    let keyring = &svc.secrets.keyring;
    let csrf = connections_csrf(req, keyring).unwrap_or_default();
    let mut rows = String::new();
    for id in my_connection_ids(req, keyring) {
        let Ok(Some(c)) = connections::get(svc.db, &id).await else { continue };
        let Some(server_id) = c.server_id.as_deref() else { continue };
        let server = crate::store::servers::get(svc.db, &c.workspace_id, server_id)
            .await
            .ok()
            .flatten()
            .map_or_else(|| "a deleted server".to_string(), |s| s.name);
        let state = match c.revoked_at {
            Some(at) => format!("disconnected {}", crate::civil::utc_date(at)),
            None => format!(
                "<form method=\"post\" action=\"{CONNECTIONS_PATH}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button name=\"connection\" value=\"{}\">Disconnect</button></form>",
                escape(&csrf),
                escape(&c.connection_hash)
            ),
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{state}</td></tr>",
            escape(&server),
            escape(c.client_name.as_deref().unwrap_or("an MCP client")),
            escape(c.scopes.as_deref().unwrap_or("")),
            crate::civil::utc_date(c.created_at),
            c.last_used_at.map(crate::civil::utc_date).unwrap_or_else(|| "never".into()),
        ));
    }
    let inner = if rows.is_empty() {
        "<p>No connection was made in this browser.</p>".to_string()
    } else {
        format!(
            "<p>The apps you connected in this browser. Disconnecting ends the app's access at once \
             (its refresh) and within about a minute for calls under way. FlowCP keeps no copy of your \
             tokens; to end FlowCP's access at the provider too, remove it there.</p>\
             <table><tr><th>Server</th><th>App</th><th>Scopes</th><th>Connected</th><th>Last refreshed</th><th></th></tr>{rows}</table>"
        )
    };
    html(200, page("Your connections", &inner)).with_header("cache-control", "no-store")
}

async fn disconnect<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request) -> Response {
    if req.media_type().as_deref() != Some("application/x-www-form-urlencoded") || req.body.len() > 8 * 1024 {
        return error_page("send the form as it was shown");
    }
    let keyring = &svc.secrets.keyring;
    let params = form_params(req);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let bound = match (get("csrf"), cookie(req, CONNECTIONS_COOKIE)) {
        (Some(t), Some(c)) if t.len() <= 1024 => keyring
            .open(t, b"oauth|connections-csrf")
            .is_ok_and(|h| crate::crypto::ct_eq(&h, sha256_hex(c.as_bytes()).as_bytes())),
        _ => false,
    };
    if !bound {
        return error_page("this request did not come from your connections page; open it again");
    }
    let hash = get("connection").unwrap_or("");
    for id in my_connection_ids(req, keyring) {
        if crate::crypto::sha256_hex_truncated(id.as_bytes(), 16) == hash {
            if grant::revoke(svc.db, svc.kv, &id, svc.now_ms).await.is_err() {
                return error_page("the connection could not be ended; try again");
            }
            break;
        }
    }
    Response { status: 303, body: None, headers: vec![("location".into(), CONNECTIONS_PATH.into())] }
}

async fn decide<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request) -> Response {
    if req.media_type().as_deref() != Some("application/x-www-form-urlencoded") || req.body.len() > 32 * 1024 {
        return error_page("send the form as it was shown");
    }
    let params = form_params(req);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let keyring = &svc.secrets.keyring;
    if let Some(p) = get("ticket").and_then(|t| Pending::open(keyring, t, super::account::CONSENT_PURPOSE, svc.now_ms))
    {
        return super::account::decide(svc, req, p, &params).await;
    }
    let Some(p) = get("ticket").and_then(|t| Pending::open(keyring, t, "oauth|consent", svc.now_ms)) else {
        return error_page("this consent page has expired or was altered; start again from the app");
    };
    // CSRF: the decision comes from the browser the page was shown to (its cookie nonce).
    if !p.bound_to(req, CONSENT_COOKIE) {
        return error_page("this decision did not come from the page FlowCP showed; start again from the app");
    }
    let r = p.request;
    if get("decision") != Some("approve") {
        return declined(r, &svc.origin);
    }
    let Some(m) = published(svc.kv, r.server_id().unwrap_or_default(), svc.now_ms).await else {
        return error_page("the server is no longer published");
    };
    let remembered = remember(req, keyring, svc.now_ms, &r, &m);
    let resp = to_provider(svc, r, &m);
    match remembered {
        Some(c) if resp.status == 302 => resp.with_header("set-cookie", c),
        _ => resp,
    }
}

/// After consent: FlowCP's own single-use `state` (sealed, bound to this browser by a cookie)
/// and PKCE, and the redirect to the provider.
fn to_provider<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, r: AuthorizeRequest, m: &Manifest) -> Response {
    let keyring = &svc.secrets.keyring;
    let Some(oauth) = m.auth.oauth.as_ref().filter(|_| m.auth.mode == AuthMode::Oauth) else {
        return error_page("the server is no longer published with OAuth sign-in");
    };
    // 32 random bytes in base64url: 43 unreserved characters, a valid PKCE verifier.
    let (Ok(verifier), Ok(browser)) = (random_token(""), random_token("")) else {
        return error_page("no randomness; try again");
    };
    let challenge = super::pkce::challenge_s256(&verifier);
    let server_id = r.server_id().unwrap_or_default().to_string();
    let upstream = Pending {
        request: r,
        exp_ms: svc.now_ms + TICKET_TTL_MS,
        nonce_hash: sha256_hex(browser.as_bytes()),
        upstream_verifier: Some(verifier),
        user_id: None,
    };
    let Some(state) = upstream.seal(keyring, "oauth|state") else {
        return error_page("the request could not be sealed");
    };
    let callback = callback_url(&svc.origin, &server_id);
    match flow::upstream_authorize_url(
        &oauth.authorize_url,
        &oauth.client_id,
        &callback,
        &m.auth.scopes,
        &state,
        &challenge,
        &oauth.authorize_params,
    ) {
        Some(to) => redirect(&to)
            .with_header("set-cookie", host_cookie(CONSENT_COOKIE, "", 0))
            .with_header("set-cookie", host_cookie(STATE_COOKIE, &browser, 600)),
        None => error_page("the server's sign-in provider is misconfigured (its authorize URL must be https)"),
    }
}

async fn callback<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request, server_id: &str) -> Response {
    let q = |k: &str| req.query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some(state) = q("state").and_then(|s| super::portal::portal_state(svc, s)) {
        return super::portal::finish(svc, req, server_id, state).await;
    }
    let keyring = &svc.secrets.keyring;
    let Some(p) = q("state").and_then(|s| Pending::open(keyring, s, "oauth|state", svc.now_ms)) else {
        return error_page("this sign-in has expired or was not started here; start again from the app");
    };
    // The state belongs to this server's callback, and to the browser that approved it.
    if p.request.server_id() != Some(server_id) || !p.bound_to(req, STATE_COOKIE) {
        return error_page("this sign-in was not started in this browser; start again from the app");
    }
    // Single use (PX-03): a state redeemed twice is refused.
    let used = connections::use_once(svc.db, &sha256_hex(q("state").unwrap_or("").as_bytes()), p.exp_ms).await;
    if used != Ok(true) {
        return error_page("this sign-in was already completed; start again from the app");
    }
    let r = &p.request;
    let fail = |error: &'static str, description: &'static str| {
        authorize_error_redirect(
            &AuthorizeError::Redirect {
                redirect_uri: r.redirect_uri.clone(),
                state: r.state.clone(),
                error,
                description,
            },
            &svc.origin,
        )
    };
    // The client and its redirect URI, checked again (PX-04).
    let client = match oauth_clients::get(svc.db, &r.client_id).await {
        Ok(Some(c)) if c.redirect_uris.iter().any(|u| super::redirect::matches(u, &r.redirect_uri)) => c,
        _ => return error_page("the client's registration changed; start again from the app"),
    };
    let Some(m) = published(svc.kv, server_id, svc.now_ms).await else {
        return fail("server_error", "the server is no longer published");
    };
    let (Some(oauth), Some(secret_ref)) = (m.auth.oauth.as_ref(), m.auth.credential_ref.as_deref()) else {
        return fail("server_error", "the server's sign-in provider is not configured");
    };
    // RFC 9207: a provider that names itself must be the one this server uses (mix-up).
    if let (Some(iss), Some(expected)) = (q("iss"), oauth.issuer.as_deref()) {
        if iss != expected {
            return fail("server_error", "the answer came from another provider than this server's");
        }
    }
    if q("error").is_some() {
        return fail("access_denied", "the sign-in at the API's provider did not complete");
    }
    let Some(code) = q("code").filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return fail("server_error", "the API's provider returned no code");
    };
    let Ok(Some(secret)) = crate::manifest::open_credential(svc.kv, keyring, &m.server_id, secret_ref).await else {
        return fail("server_error", "the server's sign-in provider is not configured");
    };
    let upstream = match exchange_upstream(
        svc,
        &m,
        &secret,
        code,
        p.upstream_verifier.as_deref().unwrap_or(""),
        server_id,
    )
    .await
    {
        Ok(u) => u,
        Err(why) => return fail("server_error", why),
    };
    let ctx = grant_ctx(svc);
    match grant::issue_code(&ctx, &m.workspace_id, &client, r, grant::Grantor::EndUser(upstream)).await {
        Ok((code, connection_id)) => match flow::code_redirect(&r.redirect_uri, &code, r.state.as_deref(), &svc.origin)
        {
            Some(to) => {
                let resp = redirect(&to).with_header("set-cookie", host_cookie(STATE_COOKIE, "", 0));
                match remember_connection(req, keyring, &connection_id) {
                    Some(c) => resp.with_header("set-cookie", c),
                    None => resp,
                }
            }
            None => error_page("the client's redirect URI is invalid"),
        },
        Err(_) => fail("server_error", "the sign-in could not be recorded; try again"),
    }
}

async fn exchange_upstream<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Manifest,
    secret: &str,
    code: &str,
    verifier: &str,
    server_id: &str,
) -> Result<Upstream, &'static str> {
    let callback = callback_url(&svc.origin, server_id);
    let grant = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", callback.as_str()),
        ("code_verifier", verifier),
    ];
    super::upstream::token_call(svc.http, svc.fetch_policy, svc.now_ms, m, secret, &grant)
        .await
        .map(|a| a.upstream)
        .map_err(|e| match e {
            super::upstream::CallError::Refused(_) => "the API's provider refused the sign-in",
            super::upstream::CallError::Unusable(why) => why,
        })
}

/// The refresh side of the provider, for [`grant::exchange_refresh`]. The server's published
/// manifest is read once per request (the binding check, then the refresh).
struct ServerProvider<'s, 'a, D: Db, K: Kv, H: Http> {
    svc: &'s Services<'a, D, K, H>,
    manifest: std::cell::OnceCell<Option<Manifest>>,
}

impl<'s, 'a, D: Db, K: Kv, H: Http> ServerProvider<'s, 'a, D, K, H> {
    fn new(svc: &'s Services<'a, D, K, H>) -> Self {
        ServerProvider { svc, manifest: std::cell::OnceCell::new() }
    }

    async fn manifest(&self, server_id: &str) -> Option<&Manifest> {
        if self.manifest.get().is_none() {
            let m = published(self.svc.kv, server_id, self.svc.now_ms).await;
            let _ = self.manifest.set(m);
        }
        self.manifest.get()?.as_ref().filter(|m| m.server_id == server_id)
    }
}

impl<D: Db, K: Kv, H: Http> grant::Provider for ServerProvider<'_, '_, D, K, H> {
    async fn refresh(&self, server_id: &str, current: &Upstream) -> Result<Upstream, grant::UpstreamFailure> {
        use grant::UpstreamFailure::{Revoked, Unavailable};
        let svc = self.svc;
        let refresh_token = current.refresh_token.as_deref().ok_or(Unavailable)?;
        let m = self.manifest(server_id).await.ok_or(Unavailable)?;
        let Some(secret_ref) = m.auth.credential_ref.as_deref() else { return Err(Unavailable) };
        let secret = crate::manifest::open_credential(svc.kv, &svc.secrets.keyring, server_id, secret_ref)
            .await
            .ok()
            .flatten()
            .ok_or(Unavailable)?;
        let grant = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        super::upstream::token_call(svc.http, svc.fetch_policy, svc.now_ms, m, &secret, &grant)
            .await
            .map(|a| a.upstream)
            .map_err(|e| match e {
                super::upstream::CallError::Refused(true) => Revoked,
                _ => Unavailable,
            })
    }

    async fn pause(&self, ms: u32) {
        self.svc.http.pause(ms).await;
    }

    async fn binding(&self, server_id: &str) -> Option<String> {
        super::tokens::provider_binding(self.manifest(server_id).await?)
    }
}

async fn token<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request) -> Result<Response, OAuthError> {
    if req.media_type().as_deref() != Some("application/x-www-form-urlencoded") || req.body.len() > 32 * 1024 {
        return Err(OAuthError::new(
            400,
            "invalid_request",
            "send the token request as application/x-www-form-urlencoded",
        ));
    }
    let params = form_params(req);
    let ctx = grant_ctx(svc);
    let issued = match params.iter().find(|(k, _)| k == "grant_type").map(|(_, v)| v.as_str()) {
        Some("authorization_code") => grant::exchange_code(&ctx, &params).await?,
        Some("refresh_token") => grant::exchange_refresh(&ctx, &ServerProvider::new(svc), &params).await?,
        _ => {
            return Err(OAuthError::new(
                400,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            ))
        }
    };
    Ok(Response::json(200, issued.to_json()).with_header("cache-control", "no-store").with_header("pragma", "no-cache"))
}

/// RFC 7009: always 200; a token FlowCP can open ends its connection (refresh at once, access
/// within the runtime's bound).
async fn revoke<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request) -> Response {
    let params = form_params(req);
    if let Some(t) = params.iter().find(|(k, _)| k == "token").map(|(_, v)| v.as_str()) {
        let ctx = grant_ctx(svc);
        if let Some(conn) = grant::connection_of_any(&ctx, t).await {
            let _ = grant::revoke_connection(&ctx, &conn).await;
        }
    }
    Response::json(200, json!({})).with_header("cache-control", "no-store")
}

async fn register_client<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
) -> Result<Response, OAuthError> {
    if req.media_type().as_deref() != Some("application/json") {
        return Err(OAuthError::new(400, "invalid_client_metadata", "send the registration as application/json"));
    }
    let reg = register::parse(&req.body)?;
    let server_error = |_| OAuthError::new(500, "server_error", "the client could not be registered; try again");
    let id = random_id("fcp_cl_").map_err(|_| OAuthError::new(500, "server_error", "no randomness"))?;
    let client = OAuthClient {
        id: id.clone(),
        client_name: reg.client_name.clone(),
        redirect_uris: reg.redirect_uris.clone(),
        application_type: reg.application_type.clone(),
        created_at: svc.now_ms,
        last_used_at: None,
    };
    oauth_clients::insert(svc.db, &client).await.map_err(server_error)?;
    Ok(Response::json(201, register::response(&id, svc.now_ms, &reg)).with_header("cache-control", "no-store"))
}
