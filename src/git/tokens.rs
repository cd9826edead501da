//! A connection's access token: the sealed one while it is fresh, else a refresh with rotation,
//! single-flight across isolates (a D1 lease on the connection's generation; the others wait
//! for the winner's result). A refresh token the provider refuses breaks the connection, with a
//! message for the owner, and its tokens are deleted.

use super::{token_aad, GitProvider, TokenError};
use crate::crypto::Keyring;
use crate::net::Http;
use crate::store::git::{self as store, ConnStatus, Connection};
use crate::store::{Db, StoreError};

// TODO(issue 17): the lease is the generation, not its holder: a holder slower than LEASE_MS can
// overlap a second refresher (a random lease id in the compare-and-set would close it).
/// How long a refresh may hold the lease (the provider call's budget is 10 s).
const LEASE_MS: i64 = 15_000;
/// An access token this close to its expiry is refreshed first.
const EXPIRY_MARGIN_MS: i64 = 60_000;
/// How a caller that lost the lease waits for the winner (about 3 s in all).
const WAIT_STEPS: u32 = 10;
const WAIT_STEP_MS: u32 = 300;

/// The owner's message when the provider refuses the connection's tokens.
pub const REFUSED: &str =
    "GitHub refused this connection's token (revoked, expired, or the app was uninstalled); connect GitHub again.";

/// Why no access token could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFailure {
    /// The connection is broken (or not active): the owner must connect again (message).
    Broken(String),
    /// Try again later (message).
    Unavailable(String),
}

impl From<StoreError> for TokenFailure {
    fn from(_: StoreError) -> Self {
        // The store's detail is for the operator log, not the owner's sync message.
        TokenFailure::Unavailable("FlowCP's storage failed; the next sync tries again".into())
    }
}

/// What a token lookup needs.
pub struct Tokens<'a, D: Db, H: Http, P: GitProvider> {
    pub db: &'a D,
    pub keyring: &'a Keyring,
    pub http: &'a H,
    pub provider: &'a P,
    pub clock: &'a dyn Fn() -> i64,
}

impl<D: Db, H: Http, P: GitProvider> Tokens<'_, D, H, P> {
    fn open(&self, c: &Connection, purpose: &str, sealed: &str) -> Result<String, TokenFailure> {
        let plain = self
            .keyring
            .open(sealed, &token_aad(&c.workspace_id, &c.id, purpose))
            .map_err(|e| TokenFailure::Unavailable(format!("the connection's {purpose} token does not open: {e}")))?;
        String::from_utf8(plain).map_err(|_| TokenFailure::Unavailable("a sealed token is not text".into()))
    }

    /// A usable access token of `c`; `refused` is the token a provider call just refused with
    /// 401 (it is refreshed, or the connection breaks when it cannot be).
    pub async fn access(&self, c: &Connection, refused: Option<&str>) -> Result<String, TokenFailure> {
        let mut c = c.clone();
        for _ in 0..=WAIT_STEPS {
            if c.status != ConnStatus::Active {
                return Err(TokenFailure::Broken(c.status_message.clone().unwrap_or_else(|| REFUSED.to_string())));
            }
            let now = (self.clock)();
            let current = c.access_sealed.as_deref().map(|s| self.open(&c, "access", s)).transpose()?;
            let fresh = c.access_expires_at.is_none_or(|exp| exp > now + EXPIRY_MARGIN_MS);
            match (&current, refused) {
                (Some(token), Some(bad)) if token != bad && fresh => return Ok(token.clone()),
                (Some(token), None) if fresh => return Ok(token.clone()),
                _ => {}
            }
            let Some(refresh_sealed) = c.refresh_sealed.clone() else {
                // Nothing to refresh with: a non-expiring token the provider refused.
                store::mark_broken(self.db, &c.id, c.generation, REFUSED, now).await?;
                return Err(TokenFailure::Broken(REFUSED.into()));
            };
            if store::claim_lease(self.db, &c.id, c.generation, now, now + LEASE_MS).await? {
                return self.refresh(&c, &refresh_sealed).await;
            }
            // Another caller is refreshing: wait for the next generation.
            self.http.pause(WAIT_STEP_MS).await;
            c = store::get_connection(self.db, &c.workspace_id, &c.id)
                .await?
                .ok_or_else(|| TokenFailure::Broken("The Git connection was removed.".into()))?;
        }
        Err(TokenFailure::Unavailable("another sync is refreshing the connection's token; try again shortly".into()))
    }

    async fn refresh(&self, c: &Connection, refresh_sealed: &str) -> Result<String, TokenFailure> {
        let refresh = match self.open(c, "refresh", refresh_sealed) {
            Ok(r) => r,
            Err(e) => {
                let _ = store::release_lease(self.db, &c.id, c.generation).await;
                return Err(e);
            }
        };
        let now = (self.clock)();
        match self.provider.refresh(self.http, &refresh, now).await {
            Ok(t) => {
                let seal = |purpose: &str, v: &str| {
                    self.keyring
                        .seal(v.as_bytes(), &token_aad(&c.workspace_id, &c.id, purpose))
                        .map_err(|e| TokenFailure::Unavailable(format!("sealing: {e}")))
                };
                let access_sealed = seal("access", &t.access_token)?;
                let refresh_sealed = t.refresh_token.as_deref().map(|r| seal("refresh", r)).transpose()?;
                if !store::store_refreshed(
                    self.db,
                    &c.id,
                    c.generation,
                    refresh_sealed.as_deref(),
                    &access_sealed,
                    t.access_expires_at,
                    (self.clock)(),
                )
                .await?
                {
                    // Removed or broken meanwhile: the new tokens are not kept.
                    return Err(TokenFailure::Broken("The Git connection changed while it was refreshed.".into()));
                }
                Ok(t.access_token)
            }
            Err(TokenError::Refused) => {
                store::mark_broken(self.db, &c.id, c.generation, REFUSED, (self.clock)()).await?;
                Err(TokenFailure::Broken(REFUSED.into()))
            }
            Err(TokenError::Unusable(why)) => {
                let _ = store::release_lease(self.db, &c.id, c.generation).await;
                Err(TokenFailure::Unavailable(why))
            }
        }
    }
}
