//! Sign-in to FlowCP's own MCP server (`<origin>/mcp`, issue 15): an agent's authorization
//! request is approved by a FlowCP account, for one of its workspaces. There is no upstream
//! provider: the grant is the account's own.
//!
//! - **Not signed in:** the browser goes to the dashboard's sign-in page, which brings it back
//!   here (`/sign-in?next=/oauth/authorize?...`; the page follows only that path).
//! - **Signed in:** a consent page names the client, where it sends the browser back, the
//!   account, and the workspaces the account may reach (the API's verification rules apply:
//!   an unverified account sees only the workspaces it created), each with its role. The
//!   ticket is sealed, bound to this browser (a cookie nonce) and to the account.
//! - **Approved:** the same account must still be signed in and a member of the chosen
//!   workspace; the client and its redirect URI are checked again; the connection is recorded
//!   (metadata only: account, workspace, client) and FlowCP's code goes to the client.
//!
//! The tokens it leads to are those of every connection ([`super::tokens`], audience
//! `<origin>/mcp`); each call re-checks the connection, the account and the membership
//! (`mcp::management`), and a password change or reset revokes the account's connections.

use super::flow::{self, AuthorizeRequest};
use super::grant::{self, Grantor};
use super::pages::{
    declined, error_page, escape, grant_ctx, host_cookie, html, page, redirect, Pending, CONSENT_COOKIE, TICKET_TTL_MS,
};
use crate::api::context::signed_in_user;
use crate::api::{Request, Response, Services};
use crate::crypto::{random_token, sha256_hex};
use crate::net::Http;
use crate::store::oauth_clients::{self, OAuthClient};
use crate::store::{connections, workspaces, Db, Kv};

/// The AAD purpose of this consent page's ticket (another than the published servers' page,
/// so neither ticket is taken for the other).
pub const CONSENT_PURPOSE: &str = "oauth|account-consent";

/// The dashboard's sign-in page, which sends the browser back to `next` (an authorize URL).
pub const SIGN_IN_PATH: &str = "/sign-in";

/// `/sign-in?next=<this authorize request>`: the request's own parameters, re-encoded.
fn sign_in_url(req: &Request) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(req.query.iter()).finish();
    let next = format!("/oauth/authorize?{query}");
    let q: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("next", &next).finish();
    format!("{SIGN_IN_PATH}?{q}")
}

/// The signed-out browser's way to the dashboard's sign-in, and back.
pub(super) fn sign_in_redirect(req: &Request) -> Response {
    redirect(&sign_in_url(req)).with_header("cache-control", "no-store")
}

fn redirect_host(redirect_uri: &str) -> String {
    url::Url::parse(redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| redirect_uri.to_string())
}

/// `GET /oauth/authorize` for `<origin>/mcp`, after the request and its client were validated.
pub(super) async fn consent_page<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    r: AuthorizeRequest,
    client: &OAuthClient,
) -> Response {
    let Ok(user) = signed_in_user(svc, req).await else { return sign_in_redirect(req) };
    let spaces = match workspaces::list_visible(svc.db, &user.user_id, user.email_verified).await {
        Ok(w) => w,
        Err(_) => return error_page("your workspaces could not be read; try again"),
    };
    let host = redirect_host(&r.redirect_uri);
    let origin_note = match url::Url::parse(&client.id).ok().and_then(|u| u.host_str().map(str::to_string)) {
        Some(site) => format!("Client information published at {site} (not checked by FlowCP)."),
        None => "Unverified client registered at FlowCP.".to_string(),
    };
    if spaces.is_empty() {
        let inner = format!(
            "<p>You are signed in as <strong>{email}</strong>, but no workspace of yours can be given to an app{why}.</p>\
             <p><a href=\"/\">Open the dashboard</a></p>",
            email = escape(&user.email),
            why = if user.email_verified { "" } else { " until you verify your address" },
        );
        return html(403, page("No workspace to connect", &inner));
    }
    let Ok(nonce) = random_token("") else { return error_page("no randomness; try again") };
    let pending = Pending {
        request: r,
        exp_ms: svc.now_ms + TICKET_TTL_MS,
        nonce_hash: sha256_hex(nonce.as_bytes()),
        upstream_verifier: None,
        user_id: Some(user.user_id.clone()),
    };
    let Some(ticket) = pending.seal(&svc.secrets.keyring, CONSENT_PURPOSE) else {
        return error_page("the request could not be sealed; try again");
    };
    let options: String = spaces
        .iter()
        .map(|w| {
            format!(
                "<option value=\"{id}\">{name} ({role})</option>",
                id = escape(&w.id),
                name = escape(&w.name),
                role = w.role.as_str()
            )
        })
        .collect();
    let inner = format!(
        "<p><strong>{client}</strong> wants to manage FlowCP as you, <strong>{email}</strong>.</p>\
         <p>It will be able to do in one workspace what your role there allows: create and import apps, \
         curate tools, configure, verify and publish servers, create access keys and read the activity. \
         It cannot see your other workspaces, change your account or delete a workspace.</p>\
         <form method=\"post\" action=\"/oauth/authorize\"><input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
         <p><label for=\"workspace\">Workspace</label> <select id=\"workspace\" name=\"workspace\">{options}</select></p>\
         <p>After that you are sent back to <code>{host}</code>. Only continue if you started this from that app.</p>\
         <button name=\"decision\" value=\"approve\">Allow</button><button name=\"decision\" value=\"deny\">Cancel</button></form>\
         <p><small>{origin_note} You can disconnect it at any time in the dashboard, under Account.</small></p>",
        client = escape(&client.client_name),
        email = escape(&user.email),
        ticket = escape(&ticket),
        host = escape(&host),
        origin_note = escape(&origin_note),
    );
    html(200, page("Connect an agent to FlowCP?", &inner))
        .with_header("cache-control", "no-store")
        .with_header("set-cookie", host_cookie(CONSENT_COOKIE, &nonce, 600))
}

/// `POST /oauth/authorize` with this page's ticket (opened and unexpired).
pub(super) async fn decide<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    p: Pending,
    params: &[(String, String)],
) -> Response {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    // CSRF: the decision comes from the browser the page was shown to (its cookie nonce), and
    // that browser is still signed in as the account the page named.
    if !p.bound_to(req, CONSENT_COOKIE) {
        return error_page("this decision did not come from the page FlowCP showed; start again from the app");
    }
    let user = match signed_in_user(svc, req).await {
        Ok(u) if Some(u.user_id.as_str()) == p.user_id.as_deref() => u,
        _ => {
            return error_page(
                "you are no longer signed in as the account this page was shown to; start again from the app",
            )
        }
    };
    let r = p.request;
    let clear = |resp: Response| resp.with_header("set-cookie", host_cookie(CONSENT_COOKIE, "", 0));
    if get("decision") != Some("approve") {
        return clear(declined(r, &svc.origin));
    }
    let ws = get("workspace").unwrap_or("");
    match workspaces::get_for_user(svc.db, &user.user_id, ws, user.email_verified).await {
        Ok(Some(_)) => {}
        Ok(None) => return error_page("choose one of your workspaces"),
        Err(_) => return error_page("your workspaces could not be read; try again"),
    }
    // A list the person can review: past the cap, old connections are ended first.
    let since = svc.now_ms - super::tokens::REFRESH_TTL_MS;
    match connections::count_live_for_user(svc.db, &user.user_id, since).await {
        Ok(n) if n < connections::MAX_LIVE_PER_USER => {}
        Ok(_) => {
            return error_page(&format!(
                "you have {} connected agents; disconnect some in the dashboard (Account) first",
                connections::MAX_LIVE_PER_USER
            ))
        }
        Err(_) => return error_page("your connections could not be read; try again"),
    }
    // One approval per page: the ticket is spent (a resubmitted form makes no second grant).
    let ticket = get("ticket").unwrap_or("");
    if connections::use_once(svc.db, &sha256_hex(ticket.as_bytes()), p.exp_ms).await != Ok(true) {
        return error_page("this page was already used; start again from the app");
    }
    // The client and its redirect URI, checked again (PX-04): a registration that changed
    // meanwhile does not receive the code.
    let client = match oauth_clients::get(svc.db, &r.client_id).await {
        Ok(Some(c)) if c.redirect_uris.iter().any(|u| super::redirect::matches(u, &r.redirect_uri)) => c,
        _ => return error_page("the client's registration changed; start again from the app"),
    };
    let ctx = grant_ctx(svc);
    let code = match grant::issue_code(&ctx, ws, &client, &r, Grantor::Account { user_id: &user.user_id }).await {
        Ok((code, _)) => code,
        Err(_) => return error_page("the connection could not be recorded; start again from the app"),
    };
    match flow::code_redirect(&r.redirect_uri, &code, r.state.as_deref(), &svc.origin) {
        Some(to) => clear(redirect(&to)),
        None => error_page("the client's redirect URI is invalid"),
    }
}
