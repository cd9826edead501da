//! `user_key` servers (issue 16): the end user's sign-in kept by FlowCP, and the per-user API
//! keys that stand for it.
//!
//! - [`sign_in`]: after the portal's round trip to the provider, the person (by the ID token's
//!   issuer and subject, hashed) becomes or stays one user of the server, with their upstream
//!   refresh and access tokens sealed in their `key_users` row.
//! - [`issue_key`]: a new key moves the user's epoch on (every older key ends) and is shown
//!   once; it is never stored.
//! - [`Gate`]: the hot path. The key is verified (`auth::user_key`), the user's epoch, status
//!   and sealed access token are read from D1 through the isolate's [`EpochCache`] (bound:
//!   [`EPOCH_CACHE_TTL_MS`]), and an expired access token is refreshed once per user at a time
//!   (a D1 lease across isolates; the others wait for its result). The rotated refresh token
//!   replaces the old one by compare-and-set. The provider's `invalid_grant` disconnects the
//!   user: their calls get a tool error that tells them to sign in again.
//!
//! Every envelope is AES-256-GCM under the deployment key ring with AAD naming its purpose, the
//! server and the user, and holds the provider binding (`tokens::provider_binding`): after the
//! owner changes the provider or the API origin, no token of the old one is sent anywhere.

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use super::upstream::{self, Answer, CallError};
use crate::auth::user_key::{self, Claims, EpochCache, TokenSecrets, EPOCH_CACHE_TTL_MS, KEY_TTL_S};
use crate::crypto::{random_id, sha256_hex, sha256_hex_truncated, Keyring};
use crate::manifest::Manifest;
use crate::mcp::runtime::{reject, Admitted, GateFuture, KeyGate, McpResponse};
use crate::net::{FetchPolicy, Http};
use crate::store::key_users::{self, KeyUser, Status};
use crate::store::{Db, Kv, StoreError};

/// An access token this close to its expiry is refreshed first.
const EXPIRY_MARGIN_MS: i64 = 60_000;
/// How long a refresh may hold the user's lease (the provider call's budget is 10 s).
const LEASE_MS: i64 = 15_000;
/// How a caller that lost the lease waits for the winner's tokens.
const FOLLOW_POLLS: u32 = 24;
const FOLLOW_POLL_MS: u32 = 500;

/// A sealed upstream token with the provider configuration it came from.
#[derive(Serialize, Deserialize)]
struct Held {
    token: String,
    provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<i64>,
}

/// The AAD of a user's sealed token (`kind`: `refresh` or `access`).
pub fn aad(kind: &str, server_id: &str, user_id: &str) -> Vec<u8> {
    format!("ukey|{kind}|{server_id}|{user_id}").into_bytes()
}

fn seal(keyring: &Keyring, kind: &str, server_id: &str, user_id: &str, held: &Held) -> Option<String> {
    keyring.seal(&serde_json::to_vec(held).ok()?, &aad(kind, server_id, user_id)).ok()
}

fn open(keyring: &Keyring, kind: &str, server_id: &str, user_id: &str, sealed: &str) -> Option<Held> {
    serde_json::from_slice(&keyring.open(sealed, &aad(kind, server_id, user_id)).ok()?).ok()
}

/// The URL a key is for (its `aud`): the server's MCP URL.
pub fn key_audience(origin: &str, server_id: &str) -> String {
    format!("{origin}/mcp/{server_id}")
}

/// The server's portal, where its end users sign in and get their key.
pub fn portal_url(origin: &str, server_id: &str) -> String {
    format!("{origin}/portal/{server_id}")
}

/// What the owner and the logs see of a user: the truncated SHA-256 of the opaque id.
pub fn user_hash(user_id: &str) -> String {
    sha256_hex_truncated(user_id.as_bytes(), 16)
}

/// The sealed pair a sign-in or refresh stores.
struct Sealed {
    refresh: Option<String>,
    access: String,
    expires_at: Option<i64>,
}

fn seal_tokens(keyring: &Keyring, m: &Manifest, user_id: &str, a: &super::tokens::Upstream) -> Option<Sealed> {
    let provider = a.provider.clone()?;
    let held = |token: &str, exp| Held { token: token.to_string(), provider: provider.clone(), expires_at_ms: exp };
    Some(Sealed {
        refresh: match &a.refresh_token {
            Some(r) => Some(seal(keyring, "refresh", &m.server_id, user_id, &held(r, None))?),
            None => None,
        },
        access: seal(keyring, "access", &m.server_id, user_id, &held(&a.access_token, a.expires_at_ms))?,
        expires_at: a.expires_at_ms,
    })
}

/// Records a completed sign-in at the server's provider; returns the user's id. Errors are
/// safe to show to the end user.
pub async fn sign_in(
    db: &impl Db,
    keyring: &Keyring,
    m: &Manifest,
    answer: &Answer,
    now_ms: i64,
) -> Result<String, &'static str> {
    let who = answer.identity.as_ref().ok_or(
        "the provider did not say who signed in (an OpenID Connect ID token for this app); ask the server's owner \
         to use an OpenID Connect provider",
    )?;
    // The issuer the owner configured (OpenID discovery, or set by hand) is the only one
    // accepted: a multi-tenant app must not let another tenant's users in unnoticed.
    if m.auth.oauth.as_ref().and_then(|o| o.issuer.as_deref()).is_some_and(|iss| iss != who.issuer) {
        return Err("the provider named another issuer than this server's; ask the server's owner");
    }
    // A JSON array: unambiguous whatever the fields contain.
    let subject = serde_json::json!([m.server_id, who.issuer, who.subject]).to_string();
    let subject_hash = sha256_hex(subject.as_bytes());
    let saved = "your sign-in could not be saved; try again";
    for _ in 0..2 {
        let user_id = match key_users::by_subject(db, &m.server_id, &subject_hash).await.map_err(|_| saved)? {
            Some(u) => u.user_id,
            None => random_id("ku_").map_err(|_| saved)?,
        };
        let sealed = seal_tokens(keyring, m, &user_id, &answer.upstream).ok_or(saved)?;
        let row = KeyUser {
            server_id: m.server_id.clone(),
            user_id: user_id.clone(),
            user_hash: user_hash(&user_id),
            workspace_id: m.workspace_id.clone(),
            epoch: 0,
            status: Status::Active,
            refresh_sealed: sealed.refresh,
            access_sealed: Some(sealed.access),
            access_expires_at: sealed.expires_at,
            generation: 0,
            lease_until: None,
            created_at: now_ms,
            signed_in_at: now_ms,
            key_issued_at: None,
        };
        // `false`: a concurrent first sign-in of the same person made the row under another id.
        let provider = answer.upstream.provider.as_deref().ok_or(saved)?;
        if key_users::sign_in(db, &row, &subject_hash, provider).await.map_err(|_| saved)? {
            forget(&m.server_id, &user_id);
            return Ok(user_id);
        }
    }
    Err(saved)
}

/// A new key for an active user (every older key of theirs ends): the key and its expiry (s).
pub async fn issue_key(
    db: &impl Db,
    secrets: &TokenSecrets,
    origin: &str,
    server_id: &str,
    user_id: &str,
    now_ms: i64,
) -> Result<Option<(String, i64)>, StoreError> {
    let Some(epoch) = key_users::bump_for_key(db, server_id, user_id, now_ms).await? else { return Ok(None) };
    let now_s = now_ms / 1000;
    let claims = Claims {
        iss: origin.to_string(),
        aud: key_audience(origin, server_id),
        sub: user_id.to_string(),
        iat: now_s,
        exp: now_s + KEY_TTL_S,
        jti: random_id("k_").map_err(|_| StoreError::Backend("no randomness".into()))?,
        epoch,
    };
    Ok(Some((user_key::mint(secrets, &claims), claims.exp)))
}

/// What an isolate keeps of a user between calls, for at most [`EPOCH_CACHE_TTL_MS`]: no
/// refresh token, and the access token sealed.
#[derive(Debug, Clone)]
pub struct Snapshot {
    epoch: i64,
    status: Status,
    generation: i64,
    access_sealed: Option<Rc<str>>,
}

impl Snapshot {
    /// What an isolate keeps of a row it read.
    pub fn of(u: &KeyUser) -> Self {
        Snapshot {
            epoch: u.epoch,
            status: u.status,
            generation: u.generation,
            access_sealed: u.access_sealed.as_deref().map(Rc::from),
        }
    }
}

/// The isolate's users of `user_key` servers.
pub type GateCache = RefCell<EpochCache<Snapshot>>;

/// Users an isolate keeps: a snapshot holds the sealed access token (up to ~4.5 KB), so 2,000
/// of them stay under 10 MB of the isolate's 128 MB.
pub const GATE_CACHE_ENTRIES: usize = 2_000;

thread_local! {
    static ISOLATE_CACHE: Rc<GateCache> = Rc::new(RefCell::new(EpochCache::with_capacity(GATE_CACHE_ENTRIES)));
}

/// The isolate's [`GateCache`] (the Worker is single-threaded: one per isolate).
pub fn isolate_cache() -> Rc<GateCache> {
    ISOLATE_CACHE.with(Rc::clone)
}

/// This isolate forgets a user at once (the portal revoked or re-issued); other isolates within
/// [`EPOCH_CACHE_TTL_MS`].
pub fn forget(server_id: &str, user_id: &str) {
    ISOLATE_CACHE.with(|c| c.borrow_mut().forget(server_id, user_id));
}

/// At most one dropped access token per user per isolate in this long (the isolate cache's
/// bound): an API that answers 401 for another reason (a missing permission) cannot make every
/// call refresh.
pub const DROP_INTERVAL_MS: i64 = EPOCH_CACHE_TTL_MS;

thread_local! {
    /// When this isolate last dropped each user's access token (`Gate::upstream_refused`).
    static DROPPED: RefCell<EpochCache<i64>> = RefCell::new(EpochCache::with_capacity(GATE_CACHE_ENTRIES));
}

/// The hot path's [`KeyGate`].
///
/// When the API answers 401 to a cached access token (one this request did not just get from
/// the provider), the token is dropped in D1 for the generation it came from, so the user's
/// next call refreshes; at most once per user per [`DROP_INTERVAL_MS`] per isolate and once per
/// [`key_users::DROP_EVERY_MS`] (5 minutes) across isolates, and only when a refresh token can
/// replace it (a provider without refresh tokens keeps the token until its expiry). Other
/// isolates holding the token stop within [`EPOCH_CACHE_TTL_MS`]. The call that got the 401
/// answers it as any upstream error; the client's next call carries a fresh token.
pub struct Gate<'a, D: Db, K: Kv, H: Http> {
    pub db: &'a D,
    pub kv: &'a K,
    pub http: &'a H,
    pub keyring: &'a Keyring,
    /// `FLOWCP_TOKEN_SECRET`; `None`: keys are refused with 503.
    pub secrets: Option<&'a TokenSecrets>,
    pub fetch_policy: FetchPolicy,
    pub origin: &'a str,
    pub clock: &'a dyn Fn() -> i64,
    pub cache: &'a GateCache,
    /// The cached token this request was admitted with: (user, generation). `None` when the
    /// token came fresh from the provider in this request (a 401 to it drops nothing).
    pub admitted: RefCell<Option<(String, i64)>>,
    /// The user this request was admitted for (their store tools' cache).
    pub user: RefCell<Option<String>>,
    /// `FLOWCP_DEFAULT_PLAN`: store tools need a plan that has them (`crate::plans`).
    pub default_plan: Option<crate::vocab::Plan>,
}

fn unauthorized(message: &str) -> McpResponse {
    let mut r = reject(401, message);
    r.headers.push(("www-authenticate".into(), "Bearer realm=\"flowcp\"".into()));
    r
}

fn unavailable(message: &str, internal: String) -> McpResponse {
    let mut r = reject(503, message);
    r.internal = Some(internal);
    r
}

/// Why the user's calls cannot reach the API until they sign in again.
fn sign_in_again(origin: &str, server_id: &str, why: &str) -> String {
    format!("{why} Sign in again at {} (your key stays the same), then retry.", portal_url(origin, server_id))
}

impl<D: Db, K: Kv, H: Http> KeyGate for Gate<'_, D, K, H> {
    fn admit<'g>(&'g self, m: &'g Manifest, key: Option<&'g str>) -> GateFuture<'g> {
        Box::pin(self.admit_key(m, key))
    }

    fn upstream_refused<'g>(
        &'g self,
        m: &'g Manifest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'g>> {
        Box::pin(self.drop_refused(m))
    }

    fn store_read<'g>(
        &'g self,
        m: &'g Manifest,
        tool: &'g str,
        args: &'g serde_json::Value,
    ) -> crate::mcp::runtime::StoreFuture<'g> {
        Box::pin(super::store_tools::read(self.store_parts(), m, tool, args))
    }

    fn store_write<'g>(
        &'g self,
        m: &'g Manifest,
        tool: &'g str,
        args: &'g serde_json::Value,
        body: &'g [u8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'g>> {
        Box::pin(super::store_tools::write(self.store_parts(), m, tool, args, body))
    }
}

impl<D: Db, K: Kv, H: Http> Gate<'_, D, K, H> {
    /// What the store tools' cache needs of this request.
    fn store_parts(&self) -> super::store_tools::Parts<'_, D> {
        super::store_tools::Parts {
            db: self.db,
            keyring: self.keyring,
            default_plan: self.default_plan,
            now: (self.clock)(),
            user: self.user.borrow().clone(),
        }
    }

    /// [`KeyGate::upstream_refused`]: drops the cached token this request used (bounded).
    async fn drop_refused(&self, m: &Manifest) {
        let Some((user_id, generation)) = self.admitted.borrow_mut().take() else { return };
        let now = (self.clock)();
        if DROPPED.with(|d| d.borrow().get(&m.server_id, &user_id, now)).is_some_and(|at| now - at < DROP_INTERVAL_MS) {
            return;
        }
        DROPPED.with(|d| d.borrow_mut().put(&m.server_id, &user_id, now, now));
        self.cache.borrow_mut().forget(&m.server_id, &user_id);
        // Best effort: when D1 fails the token stays until its expiry, as before.
        let _ = key_users::drop_access(self.db, &m.server_id, &user_id, generation, now).await;
    }

    async fn admit_key(&self, m: &Manifest, key: Option<&str>) -> Result<Admitted, McpResponse> {
        let portal = portal_url(self.origin, &m.server_id);
        let Some(secrets) = self.secrets else {
            return Err(unavailable(
                "Per-user keys are not available on this deployment.",
                "FLOWCP_TOKEN_SECRET is not set".into(),
            ));
        };
        let Some(key) = key else {
            return Err(unauthorized(&format!(
                "Unauthorized: send your key for this server as `X-API-Key` (or `Authorization: Bearer`); get it at {portal}."
            )));
        };
        let now = (self.clock)();
        let invalid = || {
            unauthorized(&format!(
                "Unauthorized: this key is invalid, expired, replaced or revoked, or for another server; get a new one at {portal}."
            ))
        };
        let claims = user_key::verify(secrets, key, self.origin, &key_audience(self.origin, &m.server_id), now / 1000)
            .map_err(|_| invalid())?;
        let cached = self.cache.borrow().get(&m.server_id, &claims.sub, now);
        let snap = match cached {
            Some(s) => s,
            None => {
                let row = key_users::get(self.db, &m.server_id, &claims.sub).await.map_err(|e| {
                    unavailable("The key store is unavailable; try again.", format!("key user read failed: {e}"))
                })?;
                // A row of another workspace cannot be this server's (ids are unique), but the
                // check costs nothing.
                let Some(row) = row.filter(|r| r.workspace_id == m.workspace_id) else { return Err(invalid()) };
                let s = Snapshot::of(&row);
                self.cache.borrow_mut().put(&m.server_id, &claims.sub, s.clone(), now);
                s
            }
        };
        if snap.epoch != claims.epoch || snap.status == Status::Revoked {
            return Err(invalid());
        }
        let connection = user_hash(&claims.sub);
        *self.user.borrow_mut() = Some(claims.sub.clone());
        match self.token(m, &claims.sub, claims.epoch, &snap, now).await? {
            Ok(token) => Ok(Admitted { connection, upstream_token: Some(token), problem: None }),
            Err(why) => Ok(Admitted {
                connection,
                upstream_token: None,
                problem: Some(sign_in_again(self.origin, &m.server_id, why)),
            }),
        }
    }

    /// A user's upstream access token (cached, or refreshed single-flight), or why they must
    /// sign in again (`Ok(Err)`), or the 503 to answer. The caller checked the epoch.
    pub(crate) async fn token(
        &self,
        m: &Manifest,
        user_id: &str,
        epoch: i64,
        snap: &Snapshot,
        now: i64,
    ) -> Result<Result<String, &'static str>, McpResponse> {
        if snap.status == Status::Disconnected {
            return Ok(Err("Your sign-in at this API's provider has ended (consent revoked or expired)."));
        }
        let binding = super::tokens::provider_binding(m);
        let fresh = |s: &Snapshot| -> Option<String> {
            let sealed = s.access_sealed.as_deref()?;
            let held = open(self.keyring, "access", &m.server_id, user_id, sealed)?;
            let live = held.expires_at_ms.is_none_or(|exp| exp - EXPIRY_MARGIN_MS > now);
            (live && Some(&held.provider) == binding.as_ref()).then_some(held.token)
        };
        if let Some(token) = fresh(snap) {
            *self.admitted.borrow_mut() = Some((user_id.to_string(), snap.generation));
            return Ok(Ok(token));
        }
        self.refresh(m, user_id, epoch, snap.generation, now).await
    }

    /// The user's access token after a refresh (theirs, or a concurrent caller's), or why they
    /// must sign in again (`Ok(Err)`), or the 503 to answer.
    async fn refresh(
        &self,
        m: &Manifest,
        user_id: &str,
        epoch: i64,
        generation: i64,
        now: i64,
    ) -> Result<Result<String, &'static str>, McpResponse> {
        let store_err =
            |e: StoreError| unavailable("The key store is unavailable; try again.", format!("key user refresh: {e}"));
        let ended = "Your sign-in at this API's provider has ended (consent revoked or expired).";
        let changed = "This server's sign-in provider changed since you signed in.";
        let won = key_users::claim_lease(self.db, &m.server_id, user_id, generation, now, now + LEASE_MS)
            .await
            .map_err(store_err)?;
        if !won {
            return self.follow(m, user_id, epoch, generation).await;
        }
        let row = key_users::get(self.db, &m.server_id, user_id).await.map_err(store_err)?;
        if row.as_ref().is_some_and(|r| r.epoch != epoch) {
            // Re-issued or revoked since the snapshot: this key is over.
            let _ = key_users::release_lease(self.db, &m.server_id, user_id, generation).await;
            self.cache.borrow_mut().forget(&m.server_id, user_id);
            return Err(unauthorized("Unauthorized: this key was replaced or revoked."));
        }
        let Some(row) = row.filter(|r| r.generation == generation && r.status == Status::Active) else {
            return self.follow(m, user_id, epoch, generation).await;
        };
        let binding = super::tokens::provider_binding(m);
        let held = row.refresh_sealed.as_deref().and_then(|s| open(self.keyring, "refresh", &m.server_id, user_id, s));
        let Some(held) = held else {
            // No refresh token (the provider gave none, or it was sealed under a retired key):
            // only a new sign-in helps.
            key_users::disconnect(self.db, &m.server_id, user_id, generation).await.map_err(store_err)?;
            self.cache.borrow_mut().forget(&m.server_id, user_id);
            return Ok(Err(ended));
        };
        if Some(&held.provider) != binding.as_ref() {
            key_users::disconnect(self.db, &m.server_id, user_id, generation).await.map_err(store_err)?;
            self.cache.borrow_mut().forget(&m.server_id, user_id);
            return Ok(Err(changed));
        }
        let secret = match m.auth.credential_ref.as_deref() {
            Some(r) => crate::manifest::open_credential(self.kv, self.keyring, &m.server_id, r).await.ok().flatten(),
            None => None,
        };
        let Some(secret) = secret else {
            let _ = key_users::release_lease(self.db, &m.server_id, user_id, generation).await;
            return Err(unavailable(
                "This server's sign-in provider is not configured; its owner must set the client secret and publish again.",
                format!("user_key refresh of {}: no client secret", m.server_id),
            ));
        };
        let grant = [("grant_type", "refresh_token"), ("refresh_token", held.token.as_str())];
        let answer = upstream::token_call(self.http, self.fetch_policy, (self.clock)(), m, &secret, &grant).await;
        match answer {
            Ok(mut a) => {
                // Providers that do not rotate keep the refresh token valid.
                if a.upstream.refresh_token.is_none() {
                    a.upstream.refresh_token = Some(held.token.clone());
                }
                let sealed = seal_tokens(self.keyring, m, user_id, &a.upstream).ok_or_else(|| {
                    unavailable("The key store is unavailable; try again.", "user_key seal failed".into())
                })?;
                let refresh = sealed.refresh.unwrap_or_default();
                // The provider has rotated: losing the new refresh token to a passing D1 error
                // would end the grant at providers that detect reuse, so the write is tried twice.
                let mut stored = Err(StoreError::Backend("not tried".into()));
                for _ in 0..2 {
                    stored = key_users::store_refreshed(
                        self.db,
                        &m.server_id,
                        user_id,
                        generation,
                        &refresh,
                        &sealed.access,
                        sealed.expires_at,
                    )
                    .await;
                    if stored.is_ok() {
                        break;
                    }
                }
                self.cache.borrow_mut().forget(&m.server_id, user_id);
                if !stored.map_err(store_err)? {
                    // Revoked, disconnected or signed in again meanwhile: the row as it is now
                    // decides (the key may have ended, or a newer token is there).
                    return self.follow(m, user_id, epoch, generation).await;
                }
                Ok(Ok(a.upstream.access_token))
            }
            Err(CallError::Refused(true)) => {
                key_users::disconnect(self.db, &m.server_id, user_id, generation).await.map_err(store_err)?;
                self.cache.borrow_mut().forget(&m.server_id, user_id);
                Ok(Err(ended))
            }
            Err(e) => {
                let _ = key_users::release_lease(self.db, &m.server_id, user_id, generation).await;
                Err(unavailable(
                    "This API's sign-in provider could not renew your sign-in; try again.",
                    format!("user_key refresh of {}: {e:?}", m.server_id),
                ))
            }
        }
    }

    /// Another caller holds the refresh lease: wait for its result.
    async fn follow(
        &self,
        m: &Manifest,
        user_id: &str,
        epoch: i64,
        generation: i64,
    ) -> Result<Result<String, &'static str>, McpResponse> {
        let binding = super::tokens::provider_binding(m);
        for poll in 0..FOLLOW_POLLS {
            if poll > 0 {
                self.http.pause(FOLLOW_POLL_MS).await;
            }
            let row = key_users::get(self.db, &m.server_id, user_id).await.map_err(|e| {
                unavailable("The key store is unavailable; try again.", format!("key user read failed: {e}"))
            })?;
            let Some(row) = row.filter(|r| r.epoch == epoch) else {
                return Err(unauthorized("Unauthorized: this key was replaced or revoked."));
            };
            match row.status {
                Status::Revoked => return Err(unauthorized("Unauthorized: this key was revoked.")),
                Status::Disconnected => {
                    return Ok(Err("Your sign-in at this API's provider has ended (consent revoked or expired)."))
                }
                Status::Active if row.generation != generation => {
                    let held = row
                        .access_sealed
                        .as_deref()
                        .and_then(|s| open(self.keyring, "access", &m.server_id, user_id, s));
                    if let Some(h) = held.filter(|h| Some(&h.provider) == binding.as_ref()) {
                        self.cache.borrow_mut().put(&m.server_id, user_id, Snapshot::of(&row), (self.clock)());
                        return Ok(Ok(h.token));
                    }
                    return Err(unavailable(
                        "Your sign-in could not be renewed; try again.",
                        "user_key follow: unreadable token".into(),
                    ));
                }
                Status::Active if row.lease_until.is_none() => {
                    // The holder gave up (provider unavailable): the client's retry tries again.
                    return Err(unavailable(
                        "This API's sign-in provider could not renew your sign-in; try again.",
                        "user_key follow: lease released".into(),
                    ));
                }
                Status::Active => {}
            }
        }
        Err(unavailable("Your sign-in is being renewed; try again.", "user_key follow: timed out".into()))
    }
}

/// The bound on how stale an isolate's view of a revocation may be (documented).
pub const REVOCATION_BOUND_MS: i64 = EPOCH_CACHE_TTL_MS;
