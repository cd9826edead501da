//! Codes and tokens as the callback and the token endpoint issue them (host-testable).
//!
//! The callback creates the connection (metadata only) and seals FlowCP's authorization code
//! around the end user's upstream tokens; the token endpoint redeems the code once — a replayed
//! code revokes the connection, as RFC 6749 §4.1.2 advises — and issues an access token (an
//! hour at most, never past the upstream token) and a refresh token bound to the connection's
//! current generation. A refresh rotates it and refreshes the upstream token once per
//! generation ([`exchange_refresh`]).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::flow::{redeem_code, AuthorizeRequest};
use super::resource::{target_of_resource, Target};
use super::tokens::{self, access_expiry, Grant, Kind, Upstream, CODE_TTL_MS, REFRESH_TTL_MS};
use super::OAuthError;
use crate::crypto::{random_id, sha256_hex, sha256_hex_truncated, Keyring};
use crate::store::connections::{self, Connection};
use crate::store::oauth_clients::{self, OAuthClient};
use crate::store::{Db, Kv};

/// What the token endpoint answers (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in_s: i64,
    pub scope: String,
}

impl Issued {
    pub fn to_json(&self) -> Value {
        json!({
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in_s,
            "refresh_token": self.refresh_token,
            "scope": self.scope,
        })
    }
}

fn server_error<E>(_: E) -> OAuthError {
    OAuthError::new(500, "server_error", "the authorization server failed; try again")
}

fn invalid_grant() -> OAuthError {
    OAuthError::new(400, "invalid_grant", "the authorization code is invalid, expired or already used")
}

/// What issuing and redeeming need: the stores, the key ring, the issuer and the clock.
pub struct Ctx<'a, D: Db, K: Kv> {
    pub db: &'a D,
    pub kv: &'a K,
    pub keyring: &'a Keyring,
    /// FlowCP's issuer (audiences are built from it).
    pub origin: &'a str,
    pub now_ms: i64,
}

/// What a grant is for, as its connection records it.
pub fn target_of_connection(conn: &Connection) -> Target {
    match &conn.server_id {
        Some(id) => Target::Server(id.clone()),
        None => Target::Management,
    }
}

/// Whose grant it is: an end user of a published server (known to FlowCP only by their upstream
/// tokens), or a FlowCP account on FlowCP's own MCP server (no upstream tokens).
pub enum Grantor<'a> {
    EndUser(Upstream),
    Account { user_id: &'a str },
}

/// At the callback, after the upstream code exchange (or at the consent of FlowCP's own MCP
/// server): record the connection and seal the code. Returns the code and the new connection's
/// id.
pub async fn issue_code<D: Db, K: Kv>(
    ctx: &Ctx<'_, D, K>,
    workspace_id: &str,
    client: &OAuthClient,
    req: &AuthorizeRequest,
    grantor: Grantor<'_>,
) -> Result<(String, String), OAuthError> {
    let (user_id, upstream) = match grantor {
        Grantor::EndUser(u) => (None, u),
        Grantor::Account { user_id } => (Some(user_id.to_string()), Upstream::none()),
    };
    if user_id.is_some() != (req.target == Target::Management) {
        return Err(server_error("a grant to FlowCP's own server is an account's, and only that"));
    }
    let (db, keyring, origin, now_ms) = (ctx.db, ctx.keyring, ctx.origin, ctx.now_ms);
    let id = random_id("conn_").map_err(server_error)?;
    let conn = Connection {
        connection_hash: sha256_hex_truncated(id.as_bytes(), 16),
        id: id.clone(),
        server_id: req.server_id().map(str::to_string),
        user_id,
        workspace_id: workspace_id.to_string(),
        client_id: Some(client.id.clone()),
        client_name: Some(client.client_name.clone()),
        scopes: Some(req.scope.clone()),
        created_at: now_ms,
        last_used_at: None,
        revoked_at: None,
        generation: 0,
    };
    connections::insert(db, &conn).await.map_err(server_error)?;
    let grant = Grant {
        client_id: client.id.clone(),
        scope: req.scope.clone(),
        iat_ms: now_ms,
        exp_ms: now_ms + CODE_TTL_MS,
        generation: 0,
        upstream,
        redirect_uri: Some(req.redirect_uri.clone()),
        code_challenge: Some(req.code_challenge.clone()),
        jti: None,
    };
    let audience = req.target.canonical(origin);
    let code = tokens::seal(keyring, Kind::Code, &audience, &id, &grant).map_err(server_error)?;
    Ok((code, id))
}

fn form<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut found = params.iter().filter(|(k, _)| k == name);
    match (found.next(), found.next()) {
        (Some((_, v)), None) => Some(v.as_str()),
        _ => None,
    }
}

/// A code or refresh token presented at the token endpoint, opened: its live (not revoked)
/// connection, the audience it was sealed for, and the grant. A `resource` sent with it must
/// name the same server. `invalid`: the error every failure gives (saying no more).
async fn open_live<D: Db, K: Kv>(
    ctx: &Ctx<'_, D, K>,
    kind: Kind,
    token: &str,
    params: &[(String, String)],
    invalid: fn() -> OAuthError,
) -> Result<(Connection, String, Grant), OAuthError> {
    let connection_id = tokens::connection_of(token, kind).ok_or_else(invalid)?;
    let conn = connections::get(ctx.db, connection_id).await.map_err(server_error)?.ok_or_else(invalid)?;
    if conn.revoked_at.is_some() {
        return Err(invalid());
    }
    let target = target_of_connection(&conn);
    if let Some(resource) = form(params, "resource") {
        if target_of_resource(resource, ctx.origin).ok().as_ref() != Some(&target) {
            return Err(OAuthError::new(400, "invalid_target", "resource is not the server this grant is for"));
        }
    }
    let audience = target.canonical(ctx.origin);
    let (_, grant) = tokens::open(ctx.keyring, kind, &audience, token, ctx.now_ms).map_err(|_| invalid())?;
    // Once the token proved authentic: an account's grant lives only as long as the account and
    // its membership of the workspace (removal revokes it too; this also covers a membership
    // that ended some other way).
    if let Some(user_id) = conn.user_id.as_deref() {
        if !account_reaches(ctx.db, user_id, &conn.workspace_id).await.map_err(server_error)? {
            revoke_connection(ctx, &conn.id).await?;
            return Err(invalid());
        }
    }
    Ok((conn, audience, grant))
}

/// Is `user_id` still an account with access to `workspace_id` (the API's verification rules)?
async fn account_reaches(db: &impl Db, user_id: &str, workspace_id: &str) -> Result<bool, crate::store::StoreError> {
    let Some(user) = crate::store::users::find_by_id(db, user_id).await? else { return Ok(false) };
    let verified = user.email_verified();
    Ok(crate::store::workspaces::get_for_user(db, user_id, workspace_id, verified).await?.is_some())
}

/// `grant_type=authorization_code` at the token endpoint (form parameters as sent).
pub async fn exchange_code<D: Db, K: Kv>(
    ctx: &Ctx<'_, D, K>,
    params: &[(String, String)],
) -> Result<Issued, OAuthError> {
    let (db, keyring, now_ms) = (ctx.db, ctx.keyring, ctx.now_ms);
    let code = form(params, "code").ok_or_else(|| OAuthError::new(400, "invalid_request", "code is required"))?;
    let client_id =
        form(params, "client_id").ok_or_else(|| OAuthError::new(401, "invalid_client", "client_id is required"))?;
    let (conn, audience, grant) = open_live(ctx, Kind::Code, code, params, invalid_grant).await?;
    let connection_id = conn.id.as_str();
    redeem_code(&grant, client_id, form(params, "redirect_uri"), form(params, "code_verifier"))?;
    if !connections::use_once(db, &sha256_hex(code.as_bytes()), grant.exp_ms).await.map_err(server_error)? {
        // A code used twice was probably stolen: nothing issued from it keeps working.
        revoke_connection(ctx, connection_id).await?;
        return Err(invalid_grant());
    }
    let _ = oauth_clients::touch(db, client_id, now_ms).await;
    connections::mark_redeemed(db, connection_id, now_ms).await.map_err(server_error)?;
    let jti = random_id("rt_").map_err(server_error)?;
    issue_tokens(keyring, &audience, &conn, grant, now_ms, jti)
}

/// Revokes a connection: refresh stops at once (D1), and its access tokens within the runtime's
/// bound (the KV marker it reads, kept as long as an access token can live, plus a margin).
pub async fn revoke_connection<D: Db, K: Kv>(ctx: &Ctx<'_, D, K>, connection_id: &str) -> Result<(), OAuthError> {
    revoke(ctx.db, ctx.kv, connection_id, ctx.now_ms).await.map_err(server_error)
}

/// [`revoke_connection`] for callers outside the token endpoint (the owner API).
pub async fn revoke(
    db: &impl Db,
    kv: &impl Kv,
    connection_id: &str,
    now_ms: i64,
) -> Result<(), crate::store::StoreError> {
    connections::revoke(db, connection_id, now_ms).await?;
    let ttl_s = (tokens::ACCESS_TTL_MS / 1000 + 300) as u64;
    kv.put(&crate::mcp::access::revoked_connection_key(connection_id), b"1", Some(ttl_s)).await
}

fn issue_tokens(
    keyring: &Keyring,
    audience: &str,
    conn: &Connection,
    grant: Grant,
    now_ms: i64,
    jti: String,
) -> Result<Issued, OAuthError> {
    let access_exp = access_expiry(now_ms, &grant.upstream);
    if access_exp <= now_ms {
        return Err(invalid_grant());
    }
    let base = Grant {
        iat_ms: now_ms,
        generation: conn.generation,
        redirect_uri: None,
        code_challenge: None,
        jti: None,
        ..grant
    };
    let access = Grant { exp_ms: access_exp, ..base.clone() };
    // Each refresh token has its own id: its grace use is counted once (reuse detection).
    let refresh = Grant { exp_ms: now_ms + REFRESH_TTL_MS, jti: Some(jti), ..base.clone() };
    Ok(Issued {
        access_token: tokens::seal(keyring, Kind::Access, audience, &conn.id, &access).map_err(server_error)?,
        refresh_token: tokens::seal(keyring, Kind::Refresh, audience, &conn.id, &refresh).map_err(server_error)?,
        expires_in_s: (access_exp - now_ms) / 1000,
        scope: base.scope,
    })
}

fn invalid_refresh() -> OAuthError {
    OAuthError::new(400, "invalid_grant", "the refresh token is invalid, expired, revoked or superseded")
}

fn provider_unavailable() -> OAuthError {
    OAuthError::new(
        503,
        "temporarily_unavailable",
        "the API's sign-in provider could not refresh the sign-in; try again",
    )
}

/// Why the provider did not refresh the end user's upstream token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpstreamFailure {
    /// The provider answered `invalid_grant`: the user's grant there has ended.
    Revoked,
    /// The provider could not be reached, failed, or the server's provider configuration is
    /// unusable: worth trying again.
    Unavailable,
}

/// The provider side of a refresh: the server's token endpoint with the owner's client secret.
#[allow(async_fn_in_trait)]
pub trait Provider {
    /// Exchanges the end user's upstream refresh token (in `current`) at `server_id`'s provider;
    /// [`UpstreamFailure::Revoked`] also when the provider is no longer the one that issued it.
    async fn refresh(&self, server_id: &str, current: &Upstream) -> Result<Upstream, UpstreamFailure>;
    /// Waits about `ms` (a concurrent refresh polling for the winner's result).
    async fn pause(&self, ms: u32);
    /// The server's current provider binding ([`super::tokens::provider_binding`]); `None`
    /// when it is not published with OAuth sign-in (or cannot be read).
    async fn binding(&self, server_id: &str) -> Option<String>;
}

/// How long the winner's outcome is kept, and within how long of the winner's advance a
/// concurrent refresh of the same token waits for it and gets it.
const REFRESH_RESULT_TTL_MS: i64 = 2 * 60_000;
const CONCURRENT_WINDOW_MS: i64 = 30_000;
/// How long a concurrent refresh waits for the winner (polling D1): longer than the winner's
/// call to the provider may take (10 s).
const FOLLOW_POLLS: u32 = 24;
const FOLLOW_POLL_MS: u32 = 500;

/// The outcome of the one upstream refresh of a generation, replayed to concurrent refreshes.
#[derive(Serialize, Deserialize)]
enum Outcome {
    Refreshed(Upstream),
    Failed(UpstreamFailure),
}

/// AAD of a replayed outcome: only the holder of the presented refresh token can open it.
fn outcome_aad(connection_id: &str, generation: i64, token: &str) -> String {
    format!("oauth|refresh-result|{connection_id}|{generation}|{}", sha256_hex(token.as_bytes()))
}

async fn record_outcome<D: Db, K: Kv>(ctx: &Ctx<'_, D, K>, conn: &str, generation: i64, token: &str, o: &Outcome) {
    let Ok(bytes) = serde_json::to_vec(o) else { return };
    let Ok(sealed) = ctx.keyring.seal(&bytes, outcome_aad(conn, generation, token).as_bytes()) else { return };
    // Best effort: without it a concurrent refresh refreshes upstream itself.
    let _ =
        connections::put_refresh_result(ctx.db, conn, generation, &sealed, ctx.now_ms + REFRESH_RESULT_TTL_MS).await;
}

async fn recorded_outcome<D: Db, K: Kv>(
    ctx: &Ctx<'_, D, K>,
    conn: &str,
    generation: i64,
    token: &str,
) -> Result<Option<Outcome>, OAuthError> {
    let Some(sealed) =
        connections::get_refresh_result(ctx.db, conn, generation, ctx.now_ms).await.map_err(server_error)?
    else {
        return Ok(None);
    };
    let opened = ctx.keyring.open(&sealed, outcome_aad(conn, generation, token).as_bytes()).ok();
    Ok(opened.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// The user's upstream tokens after a refresh: the provider's answer, keeping the previous
/// refresh token when the provider does not rotate it.
async fn refresh_upstream(
    provider: &impl Provider,
    server_id: &str,
    current: &Upstream,
) -> Result<Upstream, UpstreamFailure> {
    if current.refresh_token.is_none() {
        return Ok(current.clone());
    }
    let mut fresh = provider.refresh(server_id, current).await?;
    if fresh.refresh_token.is_none() {
        fresh.refresh_token = current.refresh_token.clone();
    }
    Ok(fresh)
}

/// `grant_type=refresh_token` at the token endpoint.
///
/// The refresh token of the connection's current generation moves it on by a compare-and-set;
/// the one request that wins also refreshes the user's upstream token (when the provider gave
/// a refresh token) and records the outcome, sealed to the presented token. A concurrent
/// refresh of the same token (it lost the compare-and-set, or came within 30 s of the advance)
/// waits for that outcome and gets tokens built from it: one upstream refresh per generation.
/// When the provider is unavailable the generation moves back, so the client's retry is a
/// fresh attempt. Later, the previous generation's token is honoured once more, once per
/// generation (a client that lost the rotated one), and the token it gets is the only one of
/// that generation that may refresh again: the lost one showing up after all means two
/// parties hold the grant. Any other reuse, or an older token, revokes the connection
/// (RFC 9700 §4.14.2). The grant is refused when the server's provider or API origin is no
/// longer the one it was issued for.
pub async fn exchange_refresh<D: Db, K: Kv>(
    ctx: &Ctx<'_, D, K>,
    provider: &impl Provider,
    params: &[(String, String)],
) -> Result<Issued, OAuthError> {
    let (db, keyring, now_ms) = (ctx.db, ctx.keyring, ctx.now_ms);
    let token = form(params, "refresh_token")
        .ok_or_else(|| OAuthError::new(400, "invalid_request", "refresh_token is required"))?;
    let (conn, audience, grant) = open_live(ctx, Kind::Refresh, token, params, invalid_refresh).await?;
    let connection_id = conn.id.clone();
    if form(params, "client_id").is_some_and(|c| c != grant.client_id) {
        return Err(invalid_refresh());
    }
    // A client that no longer exists re-registers (AS-14: 401 invalid_client).
    if oauth_clients::get(db, &grant.client_id).await.map_err(server_error)?.is_none() {
        return Err(OAuthError::new(401, "invalid_client", "the client is no longer registered; register again"));
    }
    // The user's tokens go only to the provider and API they were issued for: after the owner
    // changed either, the connection ends and the user signs in again. (An account's grant to
    // FlowCP's own server carries no upstream tokens, and refreshes none.)
    let server_id = conn.server_id.clone().unwrap_or_default();
    if conn.server_id.is_some() {
        match provider.binding(&server_id).await {
            Some(b) if grant.upstream.provider.as_deref() == Some(b.as_str()) => {}
            Some(_) => {
                revoke_connection(ctx, &connection_id).await?;
                return Err(invalid_refresh());
            }
            None => return Err(invalid_refresh()),
        }
    } else if grant.upstream != Upstream::none() {
        return Err(invalid_refresh());
    }
    let _ = oauth_clients::touch(db, &grant.client_id, now_ms).await;
    let next = grant.generation + 1;
    // `None`: this request leads (it advanced the generation); else the connection as the
    // leader left it (its `last_used_at` says when it advanced).
    let follows = if grant.generation == conn.generation {
        if !may_lead(ctx, &conn, &grant).await? {
            revoke_connection(ctx, &connection_id).await?;
            return Err(invalid_refresh());
        }
        if connections::advance_generation(db, &connection_id, conn.generation, now_ms).await.map_err(server_error)? {
            None
        } else {
            // A concurrent refresh advanced it first (or failed upstream and moved it back),
            // or the connection was revoked meanwhile.
            let now = connections::get(db, &connection_id).await.map_err(server_error)?.ok_or_else(invalid_refresh)?;
            if now.revoked_at.is_some() {
                return Err(invalid_refresh());
            }
            if now.generation == grant.generation {
                return Err(provider_unavailable());
            }
            if now.generation != next {
                return Err(invalid_refresh());
            }
            Some(now)
        }
    } else if next == conn.generation {
        Some(conn.clone())
    } else {
        // An older generation is a replay: the connection ends.
        revoke_connection(ctx, &connection_id).await?;
        return Err(invalid_refresh());
    };
    let jti = random_id("rt_").map_err(server_error)?;
    let upstream = if let Some(led) = follows {
        follow(ctx, provider, &led, &grant, token, &jti).await?
    } else {
        let result = refresh_upstream(provider, &server_id, &grant.upstream).await;
        let outcome = match &result {
            Ok(u) => Outcome::Refreshed(u.clone()),
            Err(f) => Outcome::Failed(*f),
        };
        record_outcome(ctx, &connection_id, next, token, &outcome).await;
        match result {
            Ok(u) => u,
            Err(UpstreamFailure::Unavailable) => {
                // Nothing changed upstream: the generation (and its time) moves back and the
                // same refresh token stays current (the retry must not spend its grace use).
                let _ = connections::retreat_generation(db, &connection_id, next, conn.last_used_at).await;
                return Err(provider_unavailable());
            }
            Err(UpstreamFailure::Revoked) => {
                // The user's grant at the provider ended: so does the connection.
                revoke_connection(ctx, &connection_id).await?;
                return Err(invalid_refresh());
            }
        }
    };
    let conn = Connection { generation: next, ..conn };
    issue_tokens(keyring, &audience, &conn, Grant { upstream, ..grant }, now_ms, jti)
}

fn grace_marker(connection_id: &str, generation: i64) -> String {
    sha256_hex(format!("grace|{connection_id}|{generation}").as_bytes())
}

fn blessed_marker(connection_id: &str, generation: i64, jti: &str) -> String {
    sha256_hex(format!("blessed|{connection_id}|{generation}|{jti}").as_bytes())
}

/// May this current-generation token refresh? Yes, unless a grace use issued this generation
/// and this token is not the one it issued (the "lost" token turned up: two parties).
async fn may_lead<D: Db, K: Kv>(ctx: &Ctx<'_, D, K>, conn: &Connection, grant: &Grant) -> Result<bool, OAuthError> {
    let now = ctx.now_ms;
    if !connections::is_marked(ctx.db, &grace_marker(&conn.id, conn.generation), now).await.map_err(server_error)? {
        return Ok(true);
    }
    let Some(jti) = grant.jti.as_deref() else { return Ok(false) };
    connections::is_marked(ctx.db, &blessed_marker(&conn.id, conn.generation, jti), now).await.map_err(server_error)
}

/// A refresh of the previous generation's token: within the concurrent window, the winner's
/// outcome (waiting for it); later, the one grace use of this generation, refreshing upstream
/// itself. A provider refusal here does not end the connection: this token's upstream grant
/// may simply be the one the winner already rotated. `jti`: the id of the refresh token about
/// to be issued (a grace use blesses it).
async fn follow<D: Db, K: Kv>(
    ctx: &Ctx<'_, D, K>,
    provider: &impl Provider,
    conn: &Connection,
    grant: &Grant,
    token: &str,
    jti: &str,
) -> Result<Upstream, OAuthError> {
    let next = grant.generation + 1;
    // Concurrent: the winner advanced the generation moments ago.
    let concurrent = conn.last_used_at.is_some_and(|t| ctx.now_ms - t < CONCURRENT_WINDOW_MS);
    if concurrent {
        for i in 0..FOLLOW_POLLS {
            match recorded_outcome(ctx, &conn.id, next, token).await? {
                Some(Outcome::Refreshed(u)) => return Ok(u),
                Some(Outcome::Failed(UpstreamFailure::Revoked)) => return Err(invalid_refresh()),
                Some(Outcome::Failed(UpstreamFailure::Unavailable)) => return Err(provider_unavailable()),
                None if i + 1 < FOLLOW_POLLS => provider.pause(FOLLOW_POLL_MS).await,
                None => {}
            }
        }
    }
    // The connection may have moved back meanwhile (the winner's provider call failed).
    let now = connections::get(ctx.db, &conn.id).await.map_err(server_error)?.ok_or_else(invalid_refresh)?;
    if now.revoked_at.is_some() {
        return Err(invalid_refresh());
    }
    if now.generation != next {
        return Err(if now.generation == grant.generation { provider_unavailable() } else { invalid_refresh() });
    }
    // The grace use: once per token (its jti) and once per generation; a second use means the
    // grant was copied.
    let exp = grant.exp_ms.max(ctx.now_ms + REFRESH_TTL_MS);
    let first_of_token = match grant.jti.as_deref() {
        Some(jti) => {
            connections::use_once(ctx.db, &sha256_hex(jti.as_bytes()), grant.exp_ms).await.map_err(server_error)?
        }
        None => false,
    };
    let first_of_generation = first_of_token
        && connections::use_once(ctx.db, &grace_marker(&conn.id, next), exp).await.map_err(server_error)?;
    if !first_of_generation {
        revoke_connection(ctx, &conn.id).await?;
        return Err(invalid_refresh());
    }
    connections::use_once(ctx.db, &blessed_marker(&conn.id, next, jti), exp).await.map_err(server_error)?;
    let server_id = conn.server_id.as_deref().unwrap_or_default();
    refresh_upstream(provider, server_id, &grant.upstream).await.map_err(|f| match f {
        UpstreamFailure::Revoked => invalid_refresh(),
        UpstreamFailure::Unavailable => provider_unavailable(),
    })
}

/// The connection a FlowCP access or refresh token belongs to, when it opens (revocation).
pub async fn connection_of_any<D: Db, K: Kv>(ctx: &Ctx<'_, D, K>, token: &str) -> Option<String> {
    for kind in [Kind::Refresh, Kind::Access] {
        let Some(id) = tokens::connection_of(token, kind) else { continue };
        let conn = connections::get(ctx.db, id).await.ok()??;
        let audience = target_of_connection(&conn).canonical(ctx.origin);
        if tokens::open(ctx.keyring, kind, &audience, token, ctx.now_ms).is_ok() {
            return Some(id.to_string());
        }
    }
    None
}
