//! The end-user portal of a `user_key` server (issue 16): the server side of the dashboard's
//! `/portal/<server id>` page.
//!
//! - `GET /oauth/portal/<id>/sign-in`: FlowCP's sealed, single-use `state` and PKCE, bound to
//!   this browser by a `__Host-` cookie, and a redirect to the server's provider (with `openid`,
//!   which names the person, and Microsoft's `offline_access`, which gives a refresh token).
//! - `GET /oauth/callback/<id>` (shared with `oauth` servers, [`finish`]): the code exchanged
//!   with the owner's client secret, the person recorded ([`super::keys::sign_in`]), and a
//!   sealed portal session cookie (one hour, `SameSite=Strict`).
//! - `GET /oauth/portal/<id>`: the server, and the signed-in user's status (no token).
//! - `POST .../key`: a new key, shown once; every older key ends.
//! - `POST .../revoke`: tokens deleted, every key ended, signed out.
//! - `GET .../export`, `DELETE .../me`: the user's data, exported or deleted.
//! - `POST .../sign-out`.
//!
//! Requests that change something must come from FlowCP's own origin (`Origin`), on top of the
//! `SameSite=Strict` session cookie.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::keys::{self, key_audience, portal_url, user_hash};
use super::pages::{callback_url, cookie, error_page, published, redirect};
use crate::api::{Request, Response, Services};
use crate::crypto::{random_token, sha256_hex};
use crate::error::{ApiError, ErrorCode};
use crate::manifest::Manifest;
use crate::net::Http;
use crate::store::key_users;
use crate::store::{connections, Db, Kv};
use crate::vocab::AuthMode;

pub const PREFIX: &str = "/oauth/portal/";
const SESSION_COOKIE: &str = "__Host-fcp_portal";
/// Binds the round trip to the provider to the browser that started it (its own name: an
/// `oauth` sign-in under way in the same browser keeps its own).
const STATE_COOKIE: &str = "__Host-fcp_pstate";
const SESSION_TTL_MS: i64 = 3_600_000;
const STATE_TTL_MS: i64 = 10 * 60_000;
const STATE_PURPOSE: &str = "portal|state";
const SESSION_PURPOSE: &str = "portal|session";

/// The portal's round trip to the provider, sealed into its `state`.
#[derive(Serialize, Deserialize)]
pub(super) struct PortalState {
    server_id: String,
    verifier: String,
    nonce_hash: String,
    exp_ms: i64,
}

/// Who is signed in to a portal, sealed into its cookie.
#[derive(Serialize, Deserialize)]
struct Session {
    server_id: String,
    user_id: String,
    exp_ms: i64,
}

fn session_cookie(value: &str, max_age_s: i64) -> String {
    format!("{SESSION_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age_s}")
}

fn state_cookie(value: &str, max_age_s: i64) -> String {
    super::pages::host_cookie(STATE_COOKIE, value, max_age_s)
}

fn error(e: ApiError) -> Response {
    Response::from_error(&e).with_header("cache-control", "no-store")
}

fn json_ok(status: u16, body: serde_json::Value) -> Response {
    Response::json(status, body).with_header("cache-control", "no-store")
}

/// Answers `/oauth/portal/...`; `None` for any other path.
pub async fn handle<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request) -> Option<Response> {
    let rest = req.path.strip_prefix(PREFIX)?;
    let (server_id, action) = rest.split_once('/').unwrap_or((rest, ""));
    if !crate::vocab::is_plain_id(server_id, 64) {
        return Some(error(ApiError::not_found()));
    }
    let method = req.method.as_str();
    let changes = !matches!(method, "GET" | "HEAD");
    if changes && req.header("origin") != Some(svc.origin.as_str()) {
        return Some(error(ApiError::new(ErrorCode::Forbidden, "Use the portal page of this server.")));
    }
    let live = published(svc.kv, server_id, svc.now_ms).await.filter(|m| m.auth.mode == AuthMode::UserKey);
    let Some(m) = live else {
        // Unpublished, or no longer a per-user-key server: a signed-in user can still see,
        // revoke, export and delete what FlowCP holds about them; nothing else.
        let server = Portal { id: server_id.to_string(), name: None };
        let kept = session(svc, req, server_id).is_some();
        return Some(match (method, action) {
            ("GET", "") if kept => status(svc, req, &server).await,
            ("POST", "revoke") if kept => revoke(svc, req, &server).await,
            ("GET", "export") if kept => export(svc, req, &server).await,
            ("GET", "usage") if kept => usage(svc, req, &server).await,
            ("DELETE", "me") if kept => delete(svc, req, &server).await,
            ("POST", "sign-out") => Response::no_content().with_header("set-cookie", session_cookie("", 0)),
            ("GET", "sign-in") => error_page("this server is not published with per-user keys"),
            _ => error(ApiError::new(ErrorCode::NotFound, "No published server with per-user keys at this address.")),
        });
    };
    let server = Portal { id: m.server_id.clone(), name: Some(m.name.clone()) };
    Some(match (method, action) {
        ("GET", "sign-in") => start(svc, &m),
        ("GET", "") => status(svc, req, &server).await,
        ("POST", "key") => new_key(svc, req, &server).await,
        ("POST", "revoke") => revoke(svc, req, &server).await,
        ("POST", "sign-out") => Response::no_content().with_header("set-cookie", session_cookie("", 0)),
        ("GET", "export") => export(svc, req, &server).await,
        ("GET", "usage") => usage(svc, req, &server).await,
        ("DELETE", "me") => delete(svc, req, &server).await,
        (_, "sign-in" | "" | "key" | "revoke" | "sign-out" | "export" | "usage" | "me") => {
            error(ApiError::method_not_allowed())
        }
        _ => error(ApiError::not_found()),
    })
}

/// The server a portal request is for: its name when it is published with per-user keys.
struct Portal {
    id: String,
    name: Option<String>,
}

/// The scopes the portal asks for: the owner's, `openid` (the ID token names the person), and
/// `offline_access` (OpenID Connect's refresh-token scope: Entra in every cloud, Okta, Auth0
/// and Keycloak give none without it), except at Google, which refuses the scope and takes
/// `access_type=offline` instead (its preset sets that).
fn sign_in_scopes(m: &Manifest) -> Vec<String> {
    let mut scopes = m.auth.scopes.clone();
    let mut add = |s: &str| {
        if !scopes.iter().any(|x| x == s) {
            scopes.insert(0, s.to_string());
        }
    };
    let google = m
        .auth
        .oauth
        .as_ref()
        .and_then(|o| url::Url::parse(&o.authorize_url).ok())
        .is_some_and(|u| u.host_str() == Some("accounts.google.com"));
    if !google {
        add("offline_access");
    }
    add("openid");
    scopes
}

fn start<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, m: &Manifest) -> Response {
    let Some(oauth) = m.auth.oauth.as_ref() else {
        return error_page("the server's sign-in provider is not configured");
    };
    let (Ok(verifier), Ok(browser)) = (random_token(""), random_token("")) else {
        return error_page("no randomness; try again");
    };
    let state = PortalState {
        server_id: m.server_id.clone(),
        verifier: verifier.clone(),
        nonce_hash: sha256_hex(browser.as_bytes()),
        exp_ms: svc.now_ms + STATE_TTL_MS,
    };
    let sealed =
        serde_json::to_vec(&state).ok().and_then(|b| svc.secrets.keyring.seal(&b, STATE_PURPOSE.as_bytes()).ok());
    let Some(sealed) = sealed else { return error_page("the request could not be sealed") };
    let to = super::flow::upstream_authorize_url(
        &oauth.authorize_url,
        &oauth.client_id,
        &callback_url(&svc.origin, &m.server_id),
        &sign_in_scopes(m),
        &sealed,
        &super::pkce::challenge_s256(&verifier),
        &oauth.authorize_params,
    );
    match to {
        Some(to) => redirect(&to).with_header("set-cookie", state_cookie(&browser, 600)),
        None => error_page("the server's sign-in provider is misconfigured (its authorize URL must be https)"),
    }
}

/// The portal sign-in a callback's `state` belongs to, if it is one (it opens only under the
/// portal's purpose; expired or not, [`finish`] says).
pub(super) fn portal_state<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, state: &str) -> Option<PortalState> {
    if state.len() > 16 * 1024 {
        return None;
    }
    serde_json::from_slice(&svc.secrets.keyring.open(state, STATE_PURPOSE.as_bytes()).ok()?).ok()
}

/// The provider sent the end user back with a portal `state`: the sign-in is recorded and the
/// browser goes to the portal, signed in.
pub(super) async fn finish<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    server_id: &str,
    state: PortalState,
) -> Response {
    let q = |k: &str| req.query_param(k);
    let keyring = &svc.secrets.keyring;
    let raw_state = q("state").unwrap_or("");
    if svc.now_ms >= state.exp_ms {
        return error_page("this sign-in has expired; start again from the portal");
    }
    let bound = cookie(req, STATE_COOKIE)
        .is_some_and(|n| crate::crypto::ct_eq(sha256_hex(n.as_bytes()).as_bytes(), state.nonce_hash.as_bytes()));
    if state.server_id != server_id || !bound {
        return error_page("this sign-in was not started in this browser; start again from the portal");
    }
    if connections::use_once(svc.db, &sha256_hex(raw_state.as_bytes()), state.exp_ms).await != Ok(true) {
        return error_page("this sign-in was already completed; start again from the portal");
    }
    let Some(m) = published(svc.kv, server_id, svc.now_ms).await.filter(|m| m.auth.mode == AuthMode::UserKey) else {
        return error_page("the server is no longer published with per-user keys");
    };
    let (Some(oauth), Some(secret_ref)) = (m.auth.oauth.as_ref(), m.auth.credential_ref.as_deref()) else {
        return error_page("the server's sign-in provider is not configured");
    };
    if let (Some(iss), Some(expected)) = (q("iss"), oauth.issuer.as_deref()) {
        if iss != expected {
            return error_page("the answer came from another provider than this server's");
        }
    }
    if q("error").is_some() {
        return error_page("the sign-in at the API's provider did not complete; start again from the portal");
    }
    let Some(code) = q("code").filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return error_page("the API's provider returned no code");
    };
    let Ok(Some(secret)) = crate::manifest::open_credential(svc.kv, keyring, &m.server_id, secret_ref).await else {
        return error_page("the server's sign-in provider is not configured");
    };
    let callback = callback_url(&svc.origin, server_id);
    let grant = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", callback.as_str()),
        ("code_verifier", state.verifier.as_str()),
    ];
    let answer = match super::upstream::token_call(svc.http, svc.fetch_policy, svc.now_ms, &m, &secret, &grant).await {
        Ok(a) => a,
        Err(super::upstream::CallError::Refused(_)) => return error_page("the API's provider refused the sign-in"),
        Err(super::upstream::CallError::Unusable(why)) => return error_page(why),
    };
    let user_id = match keys::sign_in(svc.db, keyring, &m, &answer, svc.now_ms).await {
        Ok(u) => u,
        Err(why) => return error_page(why),
    };
    let session = Session { server_id: m.server_id.clone(), user_id, exp_ms: svc.now_ms + SESSION_TTL_MS };
    let sealed = serde_json::to_vec(&session).ok().and_then(|b| keyring.seal(&b, SESSION_PURPOSE.as_bytes()).ok());
    let Some(sealed) = sealed else { return error_page("the sign-in could not be sealed; try again") };
    redirect(&portal_url(&svc.origin, &m.server_id))
        .with_header("set-cookie", session_cookie(&sealed, SESSION_TTL_MS / 1000))
        .with_header("set-cookie", state_cookie("", 0))
}

/// The portal session of this server, if the request carries one.
fn session<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request, server_id: &str) -> Option<Session> {
    let sealed = cookie(req, SESSION_COOKIE).filter(|c| !c.is_empty() && c.len() <= 4096)?;
    let s: Session =
        serde_json::from_slice(&svc.secrets.keyring.open(&sealed, SESSION_PURPOSE.as_bytes()).ok()?).ok()?;
    (s.server_id == server_id && svc.now_ms < s.exp_ms).then_some(s)
}

fn signed_out() -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, "Sign in at this portal first.")
}

async fn status<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request, m: &Portal) -> Response {
    let server = json!({
        "id": m.id,
        "name": m.name,
        "published": m.name.is_some(),
        "mcp_url": key_audience(&svc.origin, &m.id),
        "portal_url": portal_url(&svc.origin, &m.id),
        "key_header": "X-API-Key",
        "key_ttl_days": crate::auth::user_key::KEY_TTL_S / 86_400,
    });
    let user = match session(svc, req, &m.id) {
        None => None,
        Some(s) => match key_users::get(svc.db, &m.id, &s.user_id).await {
            Ok(u) => u,
            Err(e) => return error(ApiError::from(e)),
        },
    };
    let user = user.map(|u| {
        json!({
            "user_hash": user_hash(&u.user_id),
            "status": u.status,
            "created_at": u.created_at,
            "signed_in_at": u.signed_in_at,
            "key_issued_at": u.key_issued_at,
        })
    });
    json_ok(200, json!({ "server": server, "signed_in": user.is_some(), "user": user }))
}

async fn new_key<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request, m: &Portal) -> Response {
    let Some(s) = session(svc, req, &m.id) else { return error(signed_out()) };
    let Some(secrets) = svc.secrets.token_secrets.as_ref() else {
        return error(ApiError::new(ErrorCode::NotConfigured, "Per-user keys are not available on this deployment."));
    };
    let issued = keys::issue_key(svc.db, secrets, &svc.origin, &m.id, &s.user_id, svc.now_ms).await;
    keys::forget(&m.id, &s.user_id);
    match issued {
        Ok(Some((key, exp_s))) => json_ok(
            201,
            json!({ "key": key, "expires_at": exp_s * 1000, "header": "X-API-Key", "mcp_url": key_audience(&svc.origin, &m.id) }),
        ),
        Ok(None) => error(ApiError::new(
            ErrorCode::Unauthenticated,
            "Your sign-in at the API's provider has ended or was revoked: sign in again to get a key.",
        )),
        Err(e) => error(e.into()),
    }
}

async fn revoke<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request, m: &Portal) -> Response {
    let Some(s) = session(svc, req, &m.id) else { return error(signed_out()) };
    let revoked = key_users::revoke(svc.db, &m.id, &s.user_id).await;
    keys::forget(&m.id, &s.user_id);
    match revoked {
        Ok(_) => json_ok(200, json!({ "revoked": true })).with_header("set-cookie", session_cookie("", 0)),
        Err(e) => error(e.into()),
    }
}

async fn export<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request, m: &Portal) -> Response {
    let Some(s) = session(svc, req, &m.id) else { return error(signed_out()) };
    let u = match key_users::get(svc.db, &m.id, &s.user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return error(signed_out()),
        Err(e) => return error(e.into()),
    };
    let calls = match crate::store::audit::for_connection(svc.db, &m.id, &u.user_hash, EXPORT_ROWS).await {
        Ok(c) => c,
        Err(e) => return error(e.into()),
    };
    let stored = crate::store::store_entries::count_for_user(svc.db, &m.id, &u.user_id).await.unwrap_or(0);
    // Everything FlowCP holds about the user, except their tokens (sealed; never shown) and
    // their store tools' answers (sealed copies of what the API told them; counted).
    json_ok(
        200,
        json!({
            "server": { "id": m.id, "name": m.name },
            "user_hash": user_hash(&u.user_id),
            "status": u.status,
            "created_at": u.created_at,
            "signed_in_at": u.signed_in_at,
            "key_issued_at": u.key_issued_at,
            "holds_refresh_token": u.refresh_sealed.is_some(),
            "stored_answers": stored,
            "usage": calls,
        }),
    )
    .with_header("content-disposition", "attachment; filename=\"flowcp-my-data.json\"")
}

/// Calls shown in the portal, and exported.
const USAGE_ROWS: i64 = 200;
const EXPORT_ROWS: i64 = 10_000;

/// `GET .../usage`: the user's own calls on this server, newest first (the workspace's
/// retention applies), and how many in the last 30 days.
async fn usage<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request, m: &Portal) -> Response {
    let Some(s) = session(svc, req, &m.id) else { return error(signed_out()) };
    let hash = user_hash(&s.user_id);
    let calls = match crate::store::audit::for_connection(svc.db, &m.id, &hash, USAGE_ROWS).await {
        Ok(c) => c,
        Err(e) => return error(e.into()),
    };
    let since = svc.now_ms - 30 * 86_400_000;
    let counts = match crate::store::audit::counts_by_connection_one(svc.db, &m.id, &hash, since).await {
        Ok(n) => n,
        Err(e) => return error(e.into()),
    };
    // This month against the plan's per-caller quota (`null`: unmetered).
    let month = crate::plans::month_of(svc.now_ms);
    let (month_calls, monthly_limit) = match key_users::get(svc.db, &m.id, &s.user_id).await {
        Ok(Some(u)) => {
            let calls = crate::store::usage::calls_of(svc.db, &m.id, &hash, &month).await.unwrap_or(0);
            let plan = crate::plans::of_workspace(svc.db, &u.workspace_id, svc.default_plan).await.ok();
            (calls, plan.and_then(|p| p.limits).map(|l| l.calls_per_user_month))
        }
        Ok(None) => (0, None),
        Err(e) => return error(e.into()),
    };
    json_ok(
        200,
        json!({
            "user_hash": hash,
            "calls_30d": counts,
            "calls": calls,
            "month": month,
            "month_calls": month_calls,
            "monthly_limit": monthly_limit,
            "resets_on": crate::plans::resets_on(&month),
        }),
    )
}

async fn delete<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request, m: &Portal) -> Response {
    let Some(s) = session(svc, req, &m.id) else { return error(signed_out()) };
    // Their usage rows first, up to 50,000 per request; the answer says whether any are left
    // (the page offers to delete again; rows written meanwhile age out with the retention).
    let hash = user_hash(&s.user_id);
    let mut usage_complete = false;
    for _ in 0..10 {
        match crate::store::audit::delete_for_connection(svc.db, &m.id, &hash, 5_000).await {
            Ok(5_000) => continue,
            Ok(_) => {
                usage_complete = true;
                break;
            }
            Err(e) => return error(e.into()),
        }
    }
    if !usage_complete {
        // Nothing else is deleted yet: the user (and their session) stay until the next request
        // finishes the usage rows.
        return json_ok(
            200,
            json!({ "deleted": false, "message": "Part of your usage was deleted; delete again to finish." }),
        );
    }
    if let Err(e) = crate::store::usage::delete_for_subject(svc.db, &m.id, &hash).await {
        return error(e.into());
    }
    let deleted = key_users::delete(svc.db, &m.id, &s.user_id).await;
    keys::forget(&m.id, &s.user_id);
    match deleted {
        Ok(_) => json_ok(200, json!({ "deleted": true })).with_header("set-cookie", session_cookie("", 0)),
        Err(e) => error(e.into()),
    }
}
