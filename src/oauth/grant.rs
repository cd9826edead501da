//! Codes and tokens as the callback and the token endpoint issue them (host-testable; the
//! routes are the next part of issue 13).
//!
//! The callback creates the connection (metadata only) and seals FlowCP's authorization code
//! around the end user's upstream tokens; the token endpoint redeems the code once — a replayed
//! code revokes the connection, as RFC 6749 §4.1.2 advises — and issues an access token (an
//! hour at most, never past the upstream token) and a refresh token bound to the connection's
//! current generation.
//
// Refresh rotates: a refresh token of the connection's current generation moves it on by a
// compare-and-set (so of two concurrent refreshes exactly one advances it) and gets tokens of the
// new generation; a token of the immediately previous generation is honoured once more (clients
// that lose a rotated token are not locked out) and gets tokens of the current one; any other
// reuse revokes the connection (RFC 9700 §4.14.2).
// TODO-correctness(issue 13): the upstream refresh itself (when the user's upstream access token
// expired), with its result replayed to a concurrent loser; until then such a refresh answers
// invalid_grant and the client signs in again.

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

/// At the callback, after the upstream code exchange: record the connection and seal the code.
pub async fn issue_code<D: Db, K: Kv>(
    ctx: &Ctx<'_, D, K>,
    workspace_id: &str,
    client: &OAuthClient,
    req: &AuthorizeRequest,
    upstream: Upstream,
) -> Result<String, OAuthError> {
    let (db, keyring, origin, now_ms) = (ctx.db, ctx.keyring, ctx.origin, ctx.now_ms);
    let id = random_id("conn_").map_err(server_error)?;
    let conn = Connection {
        connection_hash: sha256_hex_truncated(id.as_bytes(), 16),
        id: id.clone(),
        server_id: req.server_id.clone(),
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
    let audience = Target::Server(req.server_id.clone()).canonical(origin);
    tokens::seal(keyring, Kind::Code, &audience, &id, &grant).map_err(server_error)
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
    let target = Target::Server(conn.server_id.clone());
    if let Some(resource) = form(params, "resource") {
        if target_of_resource(resource, ctx.origin).ok().as_ref() != Some(&target) {
            return Err(OAuthError::new(400, "invalid_target", "resource is not the server this grant is for"));
        }
    }
    let audience = target.canonical(ctx.origin);
    let (_, grant) = tokens::open(ctx.keyring, kind, &audience, token, ctx.now_ms).map_err(|_| invalid())?;
    Ok((conn, audience, grant))
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
    issue_tokens(keyring, &audience, &conn, grant, now_ms)
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
    let jti = random_id("rt_").map_err(server_error)?;
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

/// `grant_type=refresh_token` at the token endpoint.
pub async fn exchange_refresh<D: Db, K: Kv>(
    ctx: &Ctx<'_, D, K>,
    params: &[(String, String)],
) -> Result<Issued, OAuthError> {
    let (db, keyring, now_ms) = (ctx.db, ctx.keyring, ctx.now_ms);
    let token = form(params, "refresh_token")
        .ok_or_else(|| OAuthError::new(400, "invalid_request", "refresh_token is required"))?;
    let (conn, audience, grant) = open_live(ctx, Kind::Refresh, token, params, invalid_refresh).await?;
    let connection_id = conn.id.as_str();
    if form(params, "client_id").is_some_and(|c| c != grant.client_id) {
        return Err(invalid_refresh());
    }
    // A client that no longer exists re-registers (AS-14: 401 invalid_client).
    if oauth_clients::get(db, &grant.client_id).await.map_err(server_error)?.is_none() {
        return Err(OAuthError::new(401, "invalid_client", "the client is no longer registered; register again"));
    }
    let _ = oauth_clients::touch(db, &grant.client_id, now_ms).await;
    let current = if grant.generation == conn.generation {
        if !connections::advance_generation(db, connection_id, conn.generation, now_ms).await.map_err(server_error)? {
            // A concurrent refresh advanced it first (this token is now the previous one), or
            // the connection was revoked meanwhile.
            let now = connections::get(db, connection_id).await.map_err(server_error)?.ok_or_else(invalid_refresh)?;
            if now.revoked_at.is_some() || now.generation != conn.generation + 1 {
                return Err(invalid_refresh());
            }
        }
        conn.generation + 1
    } else if grant.generation + 1 == conn.generation {
        // The previous refresh token: usable once more (a client that lost the rotated one);
        // a second use means it was copied (RFC 9700 §4.14.2): the connection ends.
        let first = match grant.jti.as_deref() {
            Some(jti) => {
                connections::use_once(db, &sha256_hex(jti.as_bytes()), grant.exp_ms).await.map_err(server_error)?
            }
            None => false,
        };
        if !first {
            revoke_connection(ctx, connection_id).await?;
            return Err(invalid_refresh());
        }
        conn.generation
    } else {
        // An older generation is a replay: the connection ends.
        revoke_connection(ctx, connection_id).await?;
        return Err(invalid_refresh());
    };
    let conn = Connection { generation: current, ..conn };
    issue_tokens(keyring, &audience, &conn, grant, now_ms)
}

/// The connection a FlowCP access or refresh token belongs to, when it opens (revocation).
pub async fn connection_of_any<D: Db, K: Kv>(ctx: &Ctx<'_, D, K>, token: &str) -> Option<String> {
    for kind in [Kind::Refresh, Kind::Access] {
        let Some(id) = tokens::connection_of(token, kind) else { continue };
        let conn = connections::get(ctx.db, id).await.ok()??;
        let audience = Target::Server(conn.server_id.clone()).canonical(ctx.origin);
        if tokens::open(ctx.keyring, kind, &audience, token, ctx.now_ms).is_ok() {
            return Some(id.to_string());
        }
    }
    None
}
