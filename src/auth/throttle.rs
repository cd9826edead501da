//! Failed-login throttling: a pure policy over a stored counter, applied to two keys per login —
//! the email (lowercased) and the client address — each stored as a SHA-256 hash.
//!
//! Policy (per key): failures are counted in a window of 15 minutes from the first one. At the
//! `max_failures`-th failure the key locks for 1 minute, and each further failure (only possible
//! once a lock has ended) locks for twice as long, capped at 15 minutes. A counter forgets only
//! after a quiet window: 15 minutes with no failure since the window began *and* since the last
//! lock ended, so an attacker who waits out each lock gets about one guess per 15 minutes per
//! email, while a user who mistyped is back to a clean slate 15 minutes after the lock.
//!
//! The email key stops guessing against one account from many addresses; the address key stops
//! one address spraying many accounts (its limit is higher because offices share addresses).
//! IPv6 addresses are keyed by their /64, which one host usually owns whole.
//!
//! Flow for a login handler: [`reserve`] before touching the password — one atomic statement per
//! key that counts the attempt unless the key is locked (then 429, without verifying), so a
//! burst of parallel requests gets no more guesses than a serial one; on success
//! [`note_success`], which clears the email's counter and gives the address back this attempt
//! (the address counts failures, not sign-ins). Counters that are not about passwords
//! (invitations sent, messages sent to an address) reserve and never give back.
//!
//! Known limit: an attacker can lock a victim's email out for up to 15 minutes at a time (the
//! price of per-account limits; the cap keeps it short).

use std::net::IpAddr;

use crate::crypto::sha256_hex;
use crate::store::sessions::throttle as store;
pub use crate::store::sessions::throttle::ThrottleState;
use crate::store::{Db, StoreError};

const MINUTE_MS: i64 = 60 * 1000;

/// The knobs of one throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures within a window that trigger the first lock.
    pub max_failures: i64,
    /// Length of the counting window, and of the quiet time that resets the counter.
    pub window_ms: i64,
    /// Length of the first lock; each further failure doubles it.
    pub base_lock_ms: i64,
    /// Longest lock.
    pub max_lock_ms: i64,
}

impl Policy {
    /// Per email: 5 failures per 15 minutes.
    pub const EMAIL: Policy =
        Policy { max_failures: 5, window_ms: 15 * MINUTE_MS, base_lock_ms: MINUTE_MS, max_lock_ms: 15 * MINUTE_MS };
    /// Per client address: 20 failures per 15 minutes (NATs and offices share addresses).
    pub const ADDRESS: Policy =
        Policy { max_failures: 20, window_ms: 15 * MINUTE_MS, base_lock_ms: MINUTE_MS, max_lock_ms: 15 * MINUTE_MS };
    /// Messages sent to one address on request (verification resends, password resets): 3 per
    /// 15 minutes, then 15 minutes of silence, so FlowCP cannot be used to flood a mailbox.
    pub const MAIL_TO_ADDRESS: Policy = Policy {
        max_failures: 3,
        window_ms: 15 * MINUTE_MS,
        base_lock_ms: 15 * MINUTE_MS,
        max_lock_ms: 60 * MINUTE_MS,
    };
    /// Accounts made from one client address: 30 per hour.
    pub const SIGNUPS_PER_ADDRESS: Policy = Policy {
        max_failures: 30,
        window_ms: 60 * MINUTE_MS,
        base_lock_ms: 60 * MINUTE_MS,
        max_lock_ms: 60 * MINUTE_MS,
    };
    /// Invitations sent by one person (in any workspace): 10 per hour.
    pub const INVITES_PER_INVITER: Policy = Policy {
        max_failures: 10,
        window_ms: 60 * MINUTE_MS,
        base_lock_ms: 60 * MINUTE_MS,
        max_lock_ms: 60 * MINUTE_MS,
    };
    /// Invitations sent from one workspace (by all its admins): 30 per hour.
    pub const INVITES_PER_WORKSPACE: Policy = Policy {
        max_failures: 30,
        window_ms: 60 * MINUTE_MS,
        base_lock_ms: 60 * MINUTE_MS,
        max_lock_ms: 60 * MINUTE_MS,
    };
    /// "Try it" runs (live requests to an API) per user: 60 per 15 minutes.
    pub const TRY_RUNS_PER_USER: Policy = Policy {
        max_failures: 60,
        window_ms: 15 * MINUTE_MS,
        base_lock_ms: 15 * MINUTE_MS,
        max_lock_ms: 60 * MINUTE_MS,
    };

    fn knobs(&self) -> store::Knobs {
        store::Knobs {
            max_failures: self.max_failures,
            window_ms: self.window_ms,
            base_lock_ms: self.base_lock_ms,
            max_lock_ms: self.max_lock_ms,
        }
    }

    /// Whether `state` has been quiet long enough to be forgotten.
    fn lapsed(&self, s: &ThrottleState, now_ms: i64) -> bool {
        let quiet_since = s.locked_until.map_or(s.window_start, |l| l.max(s.window_start));
        now_ms >= quiet_since.saturating_add(self.window_ms)
    }

    /// Lock length for the `n`-th failure past the threshold (0-based).
    fn lock_ms(&self, n: i64) -> i64 {
        let shift = n.clamp(0, 30) as u32;
        self.base_lock_ms.saturating_mul(1i64 << shift).min(self.max_lock_ms)
    }

    /// May a login be attempted now?
    pub fn decide(&self, state: Option<ThrottleState>, now_ms: i64) -> Decision {
        match state.and_then(|s| s.locked_until) {
            Some(until) if until > now_ms => Decision::Locked { retry_after_ms: until - now_ms },
            _ => Decision::Allowed,
        }
    }

    /// The counter after one more failure at `now_ms`.
    pub fn record_failure(&self, state: Option<ThrottleState>, now_ms: i64) -> ThrottleState {
        let (failures, window_start, locked_until) = match state {
            Some(s) if !self.lapsed(&s, now_ms) => (s.failures.saturating_add(1), s.window_start, s.locked_until),
            _ => (1, now_ms, None),
        };
        let locked_until = if failures >= self.max_failures {
            Some(now_ms.saturating_add(self.lock_ms(failures - self.max_failures)))
        } else {
            locked_until
        };
        ThrottleState { failures, window_start, locked_until }
    }
}

/// The outcome of a throttle check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Locked { retry_after_ms: i64 },
}

impl Decision {
    /// Whole seconds to wait (for `Retry-After`), at least 1 when locked.
    pub fn retry_after_s(&self) -> Option<i64> {
        match self {
            Decision::Allowed => None,
            Decision::Locked { retry_after_ms } => Some(((retry_after_ms + 999) / 1000).max(1)),
        }
    }

    /// The stricter of two decisions.
    fn max(self, other: Decision) -> Decision {
        match (self, other) {
            (Decision::Locked { retry_after_ms: a }, Decision::Locked { retry_after_ms: b }) => {
                Decision::Locked { retry_after_ms: a.max(b) }
            }
            (l @ Decision::Locked { .. }, _) | (_, l @ Decision::Locked { .. }) => l,
            _ => Decision::Allowed,
        }
    }

    /// `Err(Throttled)` when locked, for `?` in a handler.
    pub fn into_result(self) -> Result<(), super::AuthError> {
        match self.retry_after_s() {
            Some(retry_after_s) => Err(super::AuthError::Throttled { retry_after_s }),
            None => Ok(()),
        }
    }
}

/// [`Policy::decide`] under the email policy.
pub fn decide(state: Option<ThrottleState>, now_ms: i64) -> Decision {
    Policy::EMAIL.decide(state, now_ms)
}

/// [`Policy::record_failure`] under the email policy.
pub fn record_failure(state: Option<ThrottleState>, now_ms: i64) -> ThrottleState {
    Policy::EMAIL.record_failure(state, now_ms)
}

/// Throttle key of an email: SHA-256 of the trimmed, lowercased address.
pub fn email_key(email: &str) -> String {
    format!("email:{}", sha256_hex(email.trim().to_lowercase().as_bytes()))
}

/// Throttle key of a client address (e.g. `CF-Connecting-IP`). IPv6 is cut to its /64 and
/// IPv4-mapped IPv6 is treated as IPv4; text that is not an address is hashed as it is.
pub fn address_key(addr: &str) -> String {
    let canonical = match addr.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Err(_) => addr.trim().to_string(),
    };
    format!("addr:{}", sha256_hex(canonical.as_bytes()))
}

/// The throttle keys of one login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginKeys {
    pub email: String,
    /// `None` when the runtime gives no client address (local development).
    pub address: Option<String>,
    /// The policy of the first key (the address key always has [`Policy::ADDRESS`]).
    pub policy: Policy,
}

impl LoginKeys {
    pub fn new(email: &str, client_addr: Option<&str>) -> Self {
        LoginKeys { email: email_key(email), address: client_addr.map(address_key), policy: Policy::EMAIL }
    }

    /// One counter under its own policy (invitations per inviter, say). `key` names what is
    /// counted; only its SHA-256 is stored.
    pub fn counter(key: &str, policy: Policy) -> Self {
        LoginKeys { email: sha256_hex(key.as_bytes()), address: None, policy }
    }

    /// Messages sent to one address on request, and such requests from one client address
    /// (a counter of its own: mail requests do not use up the address's login budget).
    pub fn mail_to(purpose: &str, email: &str, client_addr: Option<&str>) -> Self {
        LoginKeys {
            email: sha256_hex(format!("mail:{purpose}:{}", email.trim().to_lowercase()).as_bytes()),
            address: client_addr.map(|a| sha256_hex(format!("mail:{}", address_key(a)).as_bytes())),
            policy: Policy::MAIL_TO_ADDRESS,
        }
    }

    /// Accounts made from one client address.
    pub fn signups(client_addr: &str) -> Self {
        LoginKeys {
            email: sha256_hex(format!("signups:{}", address_key(client_addr)).as_bytes()),
            address: None,
            policy: Policy::SIGNUPS_PER_ADDRESS,
        }
    }

    /// Sign-ups refused because the address is taken, from one client address (what probing
    /// for registered addresses looks like): the email policy, 5 per 15 minutes.
    pub fn taken_signups(client_addr: &str) -> Self {
        LoginKeys { email: format!("signup:{}", address_key(client_addr)), address: None, policy: Policy::EMAIL }
    }

    /// Password checks inside a session (change password, delete account): counted per session
    /// (and client address), not per email, so a thief guessing through a stolen session cannot
    /// lock the owner out of logging in or of changing the password that ends the theft.
    pub fn reauth(session_id_hash: &str, client_addr: Option<&str>) -> Self {
        LoginKeys {
            email: sha256_hex(format!("reauth:{session_id_hash}").as_bytes()),
            address: client_addr.map(address_key),
            policy: Policy::EMAIL,
        }
    }

    fn each(&self) -> impl Iterator<Item = (&str, Policy)> {
        std::iter::once((self.email.as_str(), self.policy)).chain(self.address.as_deref().map(|a| (a, Policy::ADDRESS)))
    }
}

/// Whether this login may be attempted: the stricter answer of the email and address keys.
pub async fn check(db: &impl Db, keys: &LoginKeys, now_ms: i64) -> Result<Decision, StoreError> {
    let mut decision = Decision::Allowed;
    for (key, policy) in keys.each() {
        decision = decision.max(policy.decide(store::get(db, key).await?, now_ms));
    }
    Ok(decision)
}

/// Counts a failed login against both keys; returns the decision that now applies.
pub async fn note_failure(db: &impl Db, keys: &LoginKeys, now_ms: i64) -> Result<Decision, StoreError> {
    let mut decision = Decision::Allowed;
    for (key, policy) in keys.each() {
        let next = policy.record_failure(store::get(db, key).await?, now_ms);
        store::put(db, key, &next).await?;
        decision = decision.max(policy.decide(Some(next), now_ms));
    }
    Ok(decision)
}

/// What [`reserve_held`] reserved: per key, the lock the reservation itself set (if it was the
/// attempt that reached the threshold), so giving it back undoes exactly that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub decision: Decision,
    held: Vec<(String, Option<i64>)>,
}

impl Reserved {
    /// `Err(Throttled)` when the attempt was refused, for `?` in a handler.
    pub fn into_result(self) -> Result<Reserved, super::AuthError> {
        self.decision.into_result().map(|()| self)
    }

    fn lock_on(&self, key: &str) -> Option<Option<i64>> {
        self.held.iter().find(|(k, _)| k == key).map(|(_, l)| *l)
    }
}

/// Reserves one attempt against every key, each in one atomic statement ([`store::RESERVE`]):
/// the attempt is counted unless a key is locked. `Locked` when any key is; the keys reserved
/// before it are given back, so a refused attempt counts nowhere.
pub async fn reserve_held(db: &impl Db, keys: &LoginKeys, now_ms: i64) -> Result<Reserved, StoreError> {
    let mut held: Vec<(String, Option<i64>)> = Vec::new();
    for (key, policy) in keys.each() {
        if let Some(after) = store::reserve(db, key, now_ms, &policy.knobs()).await? {
            // Before the statement the key was not locked, so a lock in the future is this one's.
            held.push((key.to_string(), after.locked_until.filter(|l| *l > now_ms)));
            continue;
        }
        for (k, lock) in &held {
            store::refund(db, k, *lock).await?;
        }
        // The lock seen by the statement; a lock that ended in between still refuses this once.
        let decision = match policy.decide(store::get(db, key).await?, now_ms) {
            Decision::Allowed => Decision::Locked { retry_after_ms: 1000 },
            locked => locked,
        };
        return Ok(Reserved { decision, held: Vec::new() });
    }
    Ok(Reserved { decision: Decision::Allowed, held })
}

/// [`reserve_held`] for counters that are never given back (messages sent, invitations).
pub async fn reserve(db: &impl Db, keys: &LoginKeys, now_ms: i64) -> Result<Decision, StoreError> {
    Ok(reserve_held(db, keys, now_ms).await?.decision)
}

/// Gives back the attempt `r` counted on the first key (it turned out not to be what the
/// counter counts: a sign-up that made an account, on the counter of refused ones), with the
/// lock it set, if any.
pub async fn give_back(db: &impl Db, keys: &LoginKeys, r: &Reserved) -> Result<(), StoreError> {
    match r.lock_on(&keys.email) {
        Some(lock) => store::refund(db, &keys.email, lock).await,
        None => Ok(()),
    }
}

/// A successful login (or password check) after [`reserve_held`]: the email's counter is
/// cleared, and the address is given back exactly this attempt (and a lock it set) — only its
/// failures count, so signing in to an attacker-owned account does not reset an address that
/// sprays others, and a colleague's good login neither extends nor leaves a lock on it.
pub async fn note_success(db: &impl Db, keys: &LoginKeys, r: &Reserved) -> Result<(), StoreError> {
    store::clear(db, &keys.email).await?;
    if let Some(address) = &keys.address {
        if let Some(lock) = r.lock_on(address) {
            store::refund(db, address, lock).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_doubles_and_is_capped() {
        let p = Policy::EMAIL;
        assert_eq!(p.lock_ms(0), MINUTE_MS);
        assert_eq!(p.lock_ms(1), 2 * MINUTE_MS);
        assert_eq!(p.lock_ms(3), 8 * MINUTE_MS);
        assert_eq!(p.lock_ms(4), 15 * MINUTE_MS);
        assert_eq!(p.lock_ms(i64::MAX), 15 * MINUTE_MS);
    }

    #[test]
    fn ipv6_in_one_slash_64_shares_a_key() {
        assert_eq!(address_key("2001:db8:1:2::1"), address_key("2001:db8:1:2:ffff::9"));
        assert_ne!(address_key("2001:db8:1:2::1"), address_key("2001:db8:1:3::1"));
        assert_eq!(address_key("::ffff:192.0.2.1"), address_key("192.0.2.1"));
        assert_eq!(email_key(" Alice@Example.COM "), email_key("alice@example.com"));
    }
}
