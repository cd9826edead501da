//! Accounts and sessions: sign up, log in, log out, me, change password, verify the address,
//! reset a forgotten password.
//!
//! No user enumeration: a login with an unknown email runs the same password work as a wrong
//! password and gets the same answer; a password-reset request answers the same whether or not
//! an account uses the address; a sign-up with a taken email gets a generic 409 (sign-up must
//! tell the person to log in instead), throttled per client address.
//!
//! An account proves it owns its address by redeeming the emailed link (`POST
//! /auth/verify-email`); until then it can sign in and work in its own workspace but cannot join
//! workspaces, create access keys or publish (`context::Member::require_verified`).
//! Every state-changing call with a session requires `X-CSRF-Token` (given by `GET /me`).

use schemars::JsonSchema;
use serde::Deserialize;

use super::context::SessionUser;
use super::input::{clean_name, valid_email};
use super::views::{EmailVerified, LoggedIn, MailAccepted, Me, PasswordChanged, SignedUp, UserView};
use super::{Request, Response, Services};
use crate::auth::{password, session, throttle};
use crate::crypto::{random_id, random_token, sha256_hex};
use crate::error::{limits, ApiError, ErrorCode};
use crate::mail;
use crate::net::Http;
use crate::store::tokens::{self, Purpose};
use crate::store::workspaces::Workspace;
use crate::store::{sessions, users, Db, Kv};
use crate::vocab::Role;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({
    "email": "ada@example.com", "password": "correct horse battery staple", "display_name": "Ada",
    "workspace_name": "Ada's APIs", "accept_terms": true, "accept_privacy": true
}))]
pub struct SignupBody {
    email: String,
    /// 10 to 256 characters, not a common password.
    password: String,
    display_name: String,
    workspace_name: String,
    /// Must be `true`: the terms of service are accepted.
    accept_terms: bool,
    /// Must be `true`: the privacy policy is accepted.
    accept_privacy: bool,
}

async fn start_session<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    user_id: &str,
) -> Result<(String, String), ApiError> {
    let issued = session::issue(&svc.secrets.session_secret, svc.now_ms)?;
    sessions::create(svc.db, &issued.id_hash, user_id, &issued.csrf_hash, svc.now_ms, issued.expires_at).await?;
    let max_age = (issued.expires_at - svc.now_ms) / 1000;
    Ok((session::set_cookie(&issued.cookie_value, max_age), issued.csrf_token))
}

pub async fn signup<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request) -> Result<Response, ApiError> {
    let body: SignupBody = req.json(limits::API_JSON)?;
    let email = body.email.trim().to_string();
    if !valid_email(&email) {
        return Err(ApiError::new(ErrorCode::InvalidEmail, "Enter a valid email address."));
    }
    if !body.accept_terms || !body.accept_privacy {
        return Err(ApiError::new(
            ErrorCode::ConsentRequired,
            "Accept the terms of service and the privacy policy to sign up.",
        ));
    }
    password::check_password_policy(&body.password).map_err(|m| ApiError::new(ErrorCode::WeakPassword, m))?;
    let display_name = clean_name(&body.display_name, "display name")?;
    let workspace_name = clean_name(&body.workspace_name, "workspace name")?;
    // Sign-up cannot hide whether an address is registered without an email channel (the
    // answer is either an account or "log in instead"); it is throttled per client address so
    // addresses cannot be enumerated in bulk, and it hashes first so timing says nothing.
    // The address is unproven until the emailed link is redeemed (see the module comment).
    // Both counters are reserved up front (atomically), and the one that does not apply is
    // given back: refused sign-ups (probing for registered addresses) and accounts made (each
    // mails a verification link) are limited per client address.
    let held = match req.client_addr.as_deref() {
        Some(a) => {
            let taken = throttle::LoginKeys::taken_signups(a);
            let made = throttle::LoginKeys::signups(a);
            let t = throttle::reserve_held(svc.db, &taken, svc.now_ms).await?.into_result()?;
            let m = match throttle::reserve_held(svc.db, &made, svc.now_ms).await?.into_result() {
                Ok(m) => m,
                Err(e) => {
                    throttle::give_back(svc.db, &taken, &t).await?;
                    return Err(e.into());
                }
            };
            Some(((taken, t), (made, m)))
        }
        None => None,
    };
    let hash = password::hash_password(&body.password)?;
    if users::find_by_email(svc.db, &email).await?.is_some() {
        if let Some((_, (made, m))) = &held {
            throttle::give_back(svc.db, made, m).await?;
        }
        return Err(ApiError::new(ErrorCode::EmailTaken, "An account with this email already exists; log in instead."));
    }
    let new_user = users::NewUser {
        email: &email,
        display_name: &display_name,
        password_hash: &hash,
        terms_accepted_at: svc.now_ms,
        privacy_accepted_at: svc.now_ms,
    };
    let ws_id = random_id("ws_")?;
    let user_id = users::create(svc.db, &new_user, (&ws_id, &workspace_name), svc.now_ms)
        .await?
        .ok_or_else(|| {
            ApiError::new(ErrorCode::EmailTaken, "An account with this email already exists; log in instead.")
        })?
        .id;
    if let Some(((taken, t), _)) = &held {
        throttle::give_back(svc.db, taken, t).await?;
    }
    let (cookie, csrf) = start_session(svc, &user_id).await?;
    // The account exists either way; a message that did not go out is resent on request. The
    // message counts against the address's mail budget, so sign-up and delete loops cannot
    // flood a mailbox.
    let mail_budget = throttle::LoginKeys::mail_to("verify", &email, None);
    let sent = throttle::reserve(svc.db, &mail_budget, svc.now_ms).await? == throttle::Decision::Allowed
        && send_verification(svc, &user_id, &email).await.is_ok();
    let view = SignedUp {
        user: UserView { id: user_id, email, display_name, email_verified: false },
        workspace: Workspace {
            id: ws_id,
            name: workspace_name,
            role: Role::Owner,
            created_at: svc.now_ms,
            audit_retention_days: 30,
        },
        csrf_token: csrf,
        verification_email_sent: sent,
    };
    Ok(Response::created(&view)?.with_header("set-cookie", cookie))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "email": "ada@example.com", "password": "correct horse battery staple" }))]
pub struct LoginBody {
    email: String,
    password: String,
}

pub async fn login<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request) -> Result<Response, ApiError> {
    let body: LoginBody = req.json(limits::API_JSON)?;
    let keys = throttle::LoginKeys::new(&body.email, req.client_addr.as_deref());
    // Counted before the password is checked (atomically): parallel guesses are counted too.
    let held = throttle::reserve_held(svc.db, &keys, svc.now_ms).await?.into_result()?;
    let user = users::find_by_email(svc.db, body.email.trim()).await?;
    let ok = match &user {
        Some(u) => password::verify_password(&body.password, &u.password_hash),
        None => {
            password::equalize_timing(&body.password);
            false
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        return Err(ApiError::new(ErrorCode::InvalidCredentials, "The email or password is wrong."));
    };
    throttle::note_success(svc.db, &keys, &held).await?;
    // Hashes made with older (weaker) parameters are upgraded while the password is at hand.
    // Best effort: a failed upgrade does not fail the login, and it never overwrites a password
    // changed since this request read the hash.
    if password::needs_rehash(&user.password_hash) {
        if let Ok(upgraded) = password::hash_password(&body.password) {
            let _ = users::rehash_password(svc.db, &user.id, &user.password_hash, &upgraded, svc.now_ms).await;
        }
    }
    let (cookie, csrf) = start_session(svc, &user.id).await?;
    let view = LoggedIn {
        user: UserView {
            id: user.id.clone(),
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            email_verified: user.email_verified(),
        },
        csrf_token: csrf,
    };
    Ok(Response::ok(&view)?.with_header("set-cookie", cookie))
}

pub async fn logout<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, s: &SessionUser) -> Result<Response, ApiError> {
    sessions::revoke(svc.db, &s.id_hash, svc.now_ms).await?;
    Ok(Response::no_content().with_header("set-cookie", session::clear_cookie()))
}

pub async fn me<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, s: &SessionUser) -> Result<Response, ApiError> {
    // The token the session was issued with: by the current secret, or during a rotation by
    // the previous one.
    // A grant has no browser session, hence no CSRF token (it is never sent as a cookie).
    let csrf = if s.is_grant() {
        String::new()
    } else {
        svc.secrets
            .session_secrets()
            .map(|secret| session::csrf_token(secret, &s.id_hash))
            .find(|t| crate::crypto::sha256_hex(t.as_bytes()) == s.csrf_hash)
            .unwrap_or_else(|| session::csrf_token(&svc.secrets.session_secret, &s.id_hash))
    };
    let ws = super::context::visible_workspaces(svc, s).await?;
    Response::ok(&Me {
        user: UserView {
            id: s.user_id.clone(),
            email: s.email.clone(),
            display_name: s.display_name.clone(),
            email_verified: s.email_verified,
        },
        workspaces: ws,
        csrf_token: csrf,
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    current_password: String,
    new_password: String,
}

pub async fn change_password<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    s: &SessionUser,
) -> Result<Response, ApiError> {
    let body: ChangePasswordBody = req.json(limits::API_JSON)?;
    let user = users::find_by_id(svc.db, &s.user_id).await?.ok_or_else(ApiError::not_found)?;
    reauthenticate(svc, req, s, &user, &body.current_password, "The current password is wrong.").await?;
    password::check_password_policy(&body.new_password).map_err(|m| ApiError::new(ErrorCode::WeakPassword, m))?;
    let hash = password::hash_password(&body.new_password)?;
    // Every session ends, this one included (someone who stole it is out too); the answer
    // carries a fresh session for the person who changed it.
    crate::service::accounts::change_password(svc.db, &s.user_id, &hash, None, svc.now_ms).await?;
    let (cookie, csrf) = start_session(svc, &s.user_id).await?;
    Ok(Response::ok(&PasswordChanged { csrf_token: csrf })?.with_header("set-cookie", cookie))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeBody {
    /// 1 to 100 characters.
    display_name: String,
}

/// Changes the display name.
pub async fn update_me<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    s: &SessionUser,
) -> Result<Response, ApiError> {
    let body: UpdateMeBody = req.json(limits::API_JSON)?;
    let name = clean_name(&body.display_name, "display name")?;
    users::set_display_name(svc.db, &s.user_id, &name, svc.now_ms).await?;
    Response::ok(&UserView {
        id: s.user_id.clone(),
        email: s.email.clone(),
        display_name: name,
        email_verified: s.email_verified,
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmailBody {
    new_email: String,
    current_password: String,
}

/// Asks to move the account to a new address: a link goes to that address, and the address
/// changes only when the account's own session redeems it (`POST /auth/confirm-email`). The
/// answer is the same whether or not another account uses the new address (then no link is
/// sent), so it says nothing about other accounts.
pub async fn change_email<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    s: &SessionUser,
) -> Result<Response, ApiError> {
    let body: ChangeEmailBody = req.json(limits::API_JSON)?;
    let new_email = body.new_email.trim();
    if !valid_email(new_email) {
        return Err(ApiError::new(ErrorCode::InvalidEmail, "Enter a valid email address."));
    }
    if new_email.eq_ignore_ascii_case(&s.email) {
        return Err(ApiError::new(ErrorCode::InvalidEmail, "This is already the account's address."));
    }
    let user = users::find_by_id(svc.db, &s.user_id).await?.ok_or_else(ApiError::not_found)?;
    reauthenticate(svc, req, s, &user, &body.current_password, "The current password is wrong.").await?;
    let keys = throttle::LoginKeys::mail_to("change", new_email, req.client_addr.as_deref());
    throttle::reserve(svc.db, &keys, svc.now_ms).await?.into_result()?;
    let origin = svc.link_origin()?;
    // The same work whether or not the address is taken: a link that replaces the earlier one
    // (a taken address could never redeem it) and one message to the address (the link, or a
    // notice to its owner); a failed send is not reported. Neither the answer, nor the
    // account's other links, nor the provider call says whether another account uses it.
    let token = issue_link(svc, Purpose::ChangeEmail, &s.user_id, new_email, VERIFY_TTL_MS).await?;
    let message = match users::find_by_email(svc.db, new_email).await? {
        None => mail::email_change(origin, new_email, &token),
        Some(_) => mail::email_change_refused(new_email),
    };
    let _ = send_mail(svc, &message).await;
    Response::view(
        202,
        &MailAccepted {
            message: format!(
                "A confirmation link is on its way to {new_email}. Your address changes when you open it, signed in."
            ),
        },
    )
}

/// Redeems an address-change link, signed in as the account it was sent for: the account moves
/// to the new address (verified, since the link proved the mailbox), and the previous address
/// gets a notice.
pub async fn confirm_email<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    s: &SessionUser,
) -> Result<Response, ApiError> {
    let body: TokenBody = req.json(limits::API_JSON)?;
    let hash = sha256_hex(body.token.trim().as_bytes());
    let redeemed =
        tokens::redeem(svc.db, &hash, Purpose::ChangeEmail, Some(&s.user_id), svc.now_ms).await?.ok_or_else(|| {
            ApiError::new(
                ErrorCode::LinkInvalid,
                "This confirmation link is not valid: it may have expired, been used or belong to another account.",
            )
        })?;
    if !crate::service::accounts::change_email(svc.db, &s.user_id, &redeemed.email, svc.now_ms).await? {
        return Err(ApiError::new(ErrorCode::EmailTaken, "Another account uses this address now."));
    }
    // Best effort: the change is made; a notice that cannot be sent does not undo it.
    let _ = send_mail(svc, &mail::email_changed(&s.email, &redeemed.email)).await;
    Response::ok(&EmailVerified { email: redeemed.email, email_verified: true })
}

/// `GET /me/connections`: the agents connected to FlowCP's own MCP server as this account, with
/// the workspace each was given, newest first (metadata only: no token exists to show).
pub async fn agent_connections<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    s: &SessionUser,
) -> Result<Response, ApiError> {
    let items = crate::store::connections::list_for_user(svc.db, &s.user_id).await?;
    Response::ok(&super::views::Items { items })
}

/// `DELETE /me/connections/<hash>`: the agent's refresh and access tokens stop at once (every
/// call re-reads the connection). Another account's connection is not found.
pub async fn revoke_agent_connection<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    s: &SessionUser,
    hash: &str,
) -> Result<Response, ApiError> {
    let conn = crate::store::connections::get_for_user_by_hash(svc.db, &s.user_id, hash)
        .await?
        .ok_or_else(ApiError::not_found)?;
    crate::oauth::grant::revoke(svc.db, svc.kv, &conn.id, svc.now_ms).await?;
    Ok(Response::no_content())
}

/// A password check inside a session (change password, delete account), throttled like a login
/// but keyed by the session (and the client's address): a stolen session cookie cannot be used
/// to guess the password at argon2 speed, nor to lock the owner's own login or password change.
pub async fn reauthenticate<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    s: &SessionUser,
    user: &users::User,
    given: &str,
    wrong: &'static str,
) -> Result<(), ApiError> {
    let keys = throttle::LoginKeys::reauth(&s.id_hash, req.client_addr.as_deref());
    let held = throttle::reserve_held(svc.db, &keys, svc.now_ms).await?.into_result()?;
    if !password::verify_password(given, &user.password_hash) {
        return Err(ApiError::new(ErrorCode::WrongPassword, wrong));
    }
    throttle::note_success(svc.db, &keys, &held).await?;
    Ok(())
}

/// How long an emailed verification link works.
pub const VERIFY_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// How long an emailed password-reset link works.
pub const RESET_TTL_MS: i64 = 30 * 60 * 1000;

/// Issues a single-use link token for `purpose` (voiding the user's earlier ones of the same
/// purpose, so only the newest link works) and returns it; only its hash is stored.
async fn issue_link<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    purpose: Purpose,
    user_id: &str,
    email: &str,
    ttl_ms: i64,
) -> Result<String, ApiError> {
    let token = random_token("")?;
    let token_hash = sha256_hex(token.as_bytes());
    let new = tokens::NewToken { token_hash: &token_hash, purpose, user_id, email, expires_at: svc.now_ms + ttl_ms };
    tokens::replace(svc.db, &new, svc.now_ms).await?;
    Ok(token)
}

pub(crate) async fn send_mail<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    email: &mail::Email,
) -> Result<(), ApiError> {
    mail::send(svc.mailer, svc.kv, svc.http, email).await.map_err(|e| {
        ApiError::unavailable(ErrorCode::EmailUnavailable, ErrorCode::EmailUnavailable.default_message())
            .with_internal(e.to_string())
    })
}

async fn send_verification<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    user_id: &str,
    email: &str,
) -> Result<(), ApiError> {
    let token = issue_link(svc, Purpose::VerifyEmail, user_id, email, VERIFY_TTL_MS).await?;
    send_mail(svc, &mail::verification(svc.link_origin()?, email, &token)).await
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// The token from the emailed link (after `#token=`).
    pub(crate) token: String,
}

/// Redeems a verification link, signed in as the account it was sent for: the mailbox's owner
/// who clicks a link that someone else's sign-up (with their address) sent them verifies
/// nothing, and the link stays for its account's own session. It works once, and only while
/// the account's address is still the one it was sent to.
pub async fn verify_email<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    s: &SessionUser,
) -> Result<Response, ApiError> {
    let body: TokenBody = req.json(limits::API_JSON)?;
    let invalid = || {
        ApiError::new(
            ErrorCode::LinkInvalid,
            "This verification link is not valid: it may have expired or been used; ask for a new one.",
        )
    };
    let hash = sha256_hex(body.token.trim().as_bytes());
    let redeemed =
        tokens::redeem(svc.db, &hash, Purpose::VerifyEmail, Some(&s.user_id), svc.now_ms).await?.ok_or_else(invalid)?;
    if !users::mark_verified(svc.db, &redeemed.user_id, &redeemed.email, svc.now_ms).await? {
        return Err(invalid());
    }
    Response::ok(&EmailVerified { email: redeemed.email, email_verified: true })
}

/// Sends a new verification link to the signed-in user's address (the earlier one stops
/// working). Throttled per address.
pub async fn resend_verification<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    s: &SessionUser,
) -> Result<Response, ApiError> {
    if s.email_verified {
        return Err(ApiError::new(ErrorCode::AlreadyVerified, ErrorCode::AlreadyVerified.default_message()));
    }
    let keys = throttle::LoginKeys::mail_to("verify", &s.email, req.client_addr.as_deref());
    throttle::reserve(svc.db, &keys, svc.now_ms).await?.into_result()?;
    send_verification(svc, &s.user_id, &s.email).await?;
    Response::view(202, &MailAccepted { message: format!("A verification link is on its way to {}.", s.email) })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "email": "ada@example.com" }))]
pub struct ResetRequestBody {
    email: String,
}

/// Asks for a password-reset link. The answer is the same whether or not an account uses the
/// address (and whether or not the message could be sent); requests are throttled per address
/// and per client address alike, so the throttle says nothing either.
pub async fn request_password_reset<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
) -> Result<Response, ApiError> {
    let body: ResetRequestBody = req.json(limits::API_JSON)?;
    let email = body.email.trim();
    if !valid_email(email) {
        return Err(ApiError::new(ErrorCode::InvalidEmail, "Enter a valid email address."));
    }
    let keys = throttle::LoginKeys::mail_to("reset", email, req.client_addr.as_deref());
    throttle::reserve(svc.db, &keys, svc.now_ms).await?.into_result()?;
    // TODO-security(issue 11): an existing account costs a D1 write and the provider call, a
    // timing difference (bounded by the throttle above); send after the answer (wait_until).
    if let Some(user) = users::find_by_email(svc.db, email).await? {
        // A failure is not reported: it would say that the account exists.
        if let Ok(origin) = svc.link_origin() {
            let token = issue_link(svc, Purpose::ResetPassword, &user.id, &user.email, RESET_TTL_MS).await?;
            let _ = send_mail(svc, &mail::password_reset(origin, &user.email, &token)).await;
        }
    }
    Response::view(
        202,
        &MailAccepted { message: "If an account uses this address, a password-reset link is on its way.".into() },
    )
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirmBody {
    /// The token from the emailed link (after `#token=`).
    token: String,
    /// 10 to 256 characters, not a common password.
    new_password: String,
}

/// Sets a new password with a reset link: once, within 30 minutes. Every session of the account
/// ends and its other reset links stop working; the address counts as verified (the link
/// proved the mailbox). The person then logs in with the new password.
pub async fn confirm_password_reset<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
) -> Result<Response, ApiError> {
    let body: ResetConfirmBody = req.json(limits::API_JSON)?;
    // A weak password is refused before the link is spent.
    password::check_password_policy(&body.new_password).map_err(|m| ApiError::new(ErrorCode::WeakPassword, m))?;
    let redeemed =
        tokens::redeem(svc.db, &sha256_hex(body.token.trim().as_bytes()), Purpose::ResetPassword, None, svc.now_ms)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::LinkInvalid,
                    "This reset link is not valid: it may have expired or been used; ask for a new one.",
                )
            })?;
    let hash = password::hash_password(&body.new_password)?;
    crate::service::accounts::reset_password(svc.db, &redeemed.user_id, &redeemed.email, &hash, svc.now_ms).await?;
    Ok(Response::no_content())
}
