//! The `sessions` table (dashboard sessions) and the `login_throttle` table (failed-login
//! counters): the server-side state of signing in.
//!
//! A session row is keyed by SHA-256 of the random session id (`crate::auth::session`); the raw
//! id is never stored, nor the raw CSRF token. A session is live while `revoked_at IS NULL` and
//! `expires_at > now`; revoked and expired rows stay until a cleanup deletes them, so a revoked
//! id can never come back to life. Throttle keys are SHA-256 hashes of an email or a client
//! address (`crate::auth::throttle`), never the values themselves.

use super::users::{user_from_row, User};
use super::{row_i64, text, Db, Row, SqlValue, StoreError};

pub const INSERT: &str = "INSERT INTO sessions (id_hash, user_id, csrf_hash, created_at, last_seen_at, expires_at) \
    VALUES (?1, ?2, ?3, ?4, ?4, ?5)";

/// The live session with this id hash and its user, in one read.
pub const SELECT_LIVE_WITH_USER: &str = "SELECT s.id_hash, s.user_id, s.csrf_hash, s.created_at, s.last_seen_at, \
    s.expires_at, s.revoked_at, u.id AS u_id, u.email AS u_email, u.display_name AS u_display_name, \
    u.password_hash AS u_password_hash, u.terms_accepted_at AS u_terms_accepted_at, \
    u.privacy_accepted_at AS u_privacy_accepted_at, u.created_at AS u_created_at, u.updated_at AS u_updated_at, \
    u.email_verified_at AS u_email_verified_at \
    FROM sessions s JOIN users u ON u.id = s.user_id \
    WHERE s.id_hash = ?1 AND s.revoked_at IS NULL AND s.expires_at > ?2";

/// Writes `last_seen_at` at most once per `?3` ms, to spare D1 a write on every request.
pub const TOUCH: &str = "UPDATE sessions SET last_seen_at = ?2 \
    WHERE id_hash = ?1 AND revoked_at IS NULL AND last_seen_at <= ?2 - ?3";

pub const REVOKE: &str = "UPDATE sessions SET revoked_at = ?2 WHERE id_hash = ?1 AND revoked_at IS NULL";

/// Revokes all of a user's live sessions except `?3` (NULL: all of them).
pub const REVOKE_ALL_FOR_USER_EXCEPT: &str = "UPDATE sessions SET revoked_at = ?2 \
    WHERE user_id = ?1 AND revoked_at IS NULL AND (?3 IS NULL OR id_hash <> ?3)";

pub const DELETE_FOR_USER: &str = "DELETE FROM sessions WHERE user_id = ?1";

/// Deletes at most `?2` rows that expired before `?1` (uses `idx_sessions_expires`).
pub const DELETE_EXPIRED: &str = "DELETE FROM sessions WHERE id_hash IN \
    (SELECT id_hash FROM sessions WHERE expires_at < ?1 ORDER BY expires_at LIMIT ?2)";

/// How often `last_seen_at` is refreshed at most.
pub const TOUCH_INTERVAL_MS: i64 = 5 * 60 * 1000;

/// A stored session (only hashes: nothing here is a bearer secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id_hash: String,
    pub user_id: String,
    pub csrf_hash: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

fn session_from_row(row: &Row) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        id_hash: text(row, "id_hash")?,
        user_id: text(row, "user_id")?,
        csrf_hash: text(row, "csrf_hash")?,
        created_at: row_i64(row, "created_at")?,
        last_seen_at: row_i64(row, "last_seen_at")?,
        expires_at: row_i64(row, "expires_at")?,
        revoked_at: match row.get("revoked_at") {
            None | Some(serde_json::Value::Null) => None,
            Some(_) => Some(row_i64(row, "revoked_at")?),
        },
    })
}

/// Stores a session issued by `crate::auth::session::issue`.
pub async fn create(
    db: &impl Db,
    id_hash: &str,
    user_id: &str,
    csrf_hash: &str,
    now_ms: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    db.execute(INSERT, &[id_hash.into(), user_id.into(), csrf_hash.into(), now_ms.into(), expires_at.into()]).await?;
    Ok(())
}

/// The session with this id hash and its user, if it is neither revoked nor expired at `now_ms`.
pub async fn find_live(db: &impl Db, id_hash: &str, now_ms: i64) -> Result<Option<(SessionRecord, User)>, StoreError> {
    let rows = db.query(SELECT_LIVE_WITH_USER, &[id_hash.into(), now_ms.into()]).await?;
    match rows.first() {
        Some(row) => Ok(Some((session_from_row(row)?, user_from_row(row, "u_")?))),
        None => Ok(None),
    }
}

/// Records activity; writes only if the last write is older than [`TOUCH_INTERVAL_MS`].
pub async fn touch(db: &impl Db, id_hash: &str, now_ms: i64) -> Result<(), StoreError> {
    db.execute(TOUCH, &[id_hash.into(), now_ms.into(), TOUCH_INTERVAL_MS.into()]).await?;
    Ok(())
}

/// Logout. Returns whether a live session was revoked.
pub async fn revoke(db: &impl Db, id_hash: &str, now_ms: i64) -> Result<bool, StoreError> {
    Ok(db.execute(REVOKE, &[id_hash.into(), now_ms.into()]).await? > 0)
}

/// Signs a user out everywhere. Returns how many sessions were revoked.
pub async fn revoke_all_for_user(db: &impl Db, user_id: &str, now_ms: i64) -> Result<u64, StoreError> {
    revoke_all_for_user_except(db, user_id, None, now_ms).await
}

/// Signs a user out everywhere but in `keep` (the id hash of the current session).
pub async fn revoke_all_for_user_except(
    db: &impl Db,
    user_id: &str,
    keep: Option<&str>,
    now_ms: i64,
) -> Result<u64, StoreError> {
    db.execute(REVOKE_ALL_FOR_USER_EXCEPT, &[user_id.into(), now_ms.into(), SqlValue::from(keep)]).await
}

/// A session as the data export shows it: times only, never a hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct SessionTimes {
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// A user's sessions as the data export shows them.
pub async fn export_for_user(db: &impl Db, user_id: &str) -> Result<Vec<SessionTimes>, StoreError> {
    db.query(
        "SELECT created_at, last_seen_at, expires_at, revoked_at FROM sessions WHERE user_id = ?1",
        &[user_id.into()],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(SessionTimes {
            created_at: row_i64(r, "created_at")?,
            last_seen_at: row_i64(r, "last_seen_at").ok(),
            expires_at: row_i64(r, "expires_at")?,
            revoked_at: row_i64(r, "revoked_at").ok(),
        })
    })
    .collect()
}

/// Cleanup: deletes at most `limit` sessions that expired before `before_ms`.
pub async fn delete_expired(db: &impl Db, before_ms: i64, limit: i64) -> Result<u64, StoreError> {
    db.execute(DELETE_EXPIRED, &[before_ms.into(), limit.into()]).await
}

/// The `login_throttle` table: one counter per hashed email or client address.
pub mod throttle {
    use super::super::{row_i64, Db, SqlValue, StoreError};

    pub const SELECT: &str = "SELECT failures, window_start, locked_until FROM login_throttle WHERE key = ?1";
    pub const UPSERT: &str = "INSERT INTO login_throttle (key, failures, window_start, locked_until) \
        VALUES (?1, ?2, ?3, ?4) ON CONFLICT(key) DO UPDATE SET \
        failures = excluded.failures, window_start = excluded.window_start, locked_until = excluded.locked_until";
    pub const DELETE: &str = "DELETE FROM login_throttle WHERE key = ?1";

    /// Reserves one attempt in a single statement (so parallel requests are counted one by one
    /// and none slips past a lock): unless the key is locked at `?2`, its counter goes up by one
    /// under the policy `?3` max failures, `?4` window, `?5` first lock, `?6` longest lock (the
    /// same rules as `auth::throttle::Policy::record_failure`), and the new state is returned.
    /// A locked key changes nothing and returns no row.
    pub const RESERVE: &str = "INSERT INTO login_throttle (key, failures, window_start, locked_until) \
        VALUES (?1, 1, ?2, CASE WHEN 1 >= ?3 THEN ?2 + ?5 ELSE NULL END) \
        ON CONFLICT(key) DO UPDATE SET \
        failures = CASE WHEN ?2 >= MAX(window_start, COALESCE(locked_until, window_start)) + ?4 \
            THEN 1 ELSE failures + 1 END, \
        window_start = CASE WHEN ?2 >= MAX(window_start, COALESCE(locked_until, window_start)) + ?4 \
            THEN ?2 ELSE window_start END, \
        locked_until = CASE \
            WHEN (CASE WHEN ?2 >= MAX(window_start, COALESCE(locked_until, window_start)) + ?4 \
                THEN 1 ELSE failures + 1 END) >= ?3 \
            THEN ?2 + MIN(?5 * (1 << MIN(MAX((CASE WHEN ?2 >= MAX(window_start, COALESCE(locked_until, window_start)) + ?4 \
                THEN 1 ELSE failures + 1 END) - ?3, 0), 30)), ?6) \
            WHEN ?2 >= MAX(window_start, COALESCE(locked_until, window_start)) + ?4 THEN NULL \
            ELSE locked_until END \
        WHERE login_throttle.locked_until IS NULL OR login_throttle.locked_until <= ?2 \
        RETURNING failures, window_start, locked_until";

    /// Gives back one reserved attempt, and the lock that attempt set (`?2`, NULL if none): the
    /// counter is as if the attempt had not been made.
    pub const REFUND: &str = "UPDATE login_throttle SET failures = failures - 1, \
        locked_until = CASE WHEN ?2 IS NOT NULL AND locked_until = ?2 THEN NULL ELSE locked_until END \
        WHERE key = ?1 AND failures > 0";
    /// Cleanup of counters idle since before `?1`.
    pub const DELETE_IDLE: &str = "DELETE FROM login_throttle WHERE key IN (SELECT key FROM login_throttle \
        WHERE window_start < ?1 AND (locked_until IS NULL OR locked_until < ?1) LIMIT ?2)";

    /// A stored failure counter.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ThrottleState {
        /// Failures counted in the current window.
        pub failures: i64,
        /// When the current window began (ms).
        pub window_start: i64,
        /// Logins are refused until this time (ms), if set.
        pub locked_until: Option<i64>,
    }

    pub async fn get(db: &impl Db, key: &str) -> Result<Option<ThrottleState>, StoreError> {
        let rows = db.query(SELECT, &[key.into()]).await?;
        rows.first().map(state).transpose()
    }

    fn state(row: &super::super::Row) -> Result<ThrottleState, StoreError> {
        Ok(ThrottleState {
            failures: row_i64(row, "failures")?,
            window_start: row_i64(row, "window_start")?,
            locked_until: super::super::opt_i64(row, "locked_until")?,
        })
    }

    pub async fn put(db: &impl Db, key: &str, state: &ThrottleState) -> Result<(), StoreError> {
        db.execute(
            UPSERT,
            &[key.into(), state.failures.into(), state.window_start.into(), SqlValue::from(state.locked_until)],
        )
        .await?;
        Ok(())
    }

    /// The knobs of a policy, as [`RESERVE`] takes them.
    pub struct Knobs {
        pub max_failures: i64,
        pub window_ms: i64,
        pub base_lock_ms: i64,
        pub max_lock_ms: i64,
    }

    /// Runs [`RESERVE`]: `Some(state after)` when the attempt was counted, `None` when locked.
    pub async fn reserve(db: &impl Db, key: &str, now_ms: i64, k: &Knobs) -> Result<Option<ThrottleState>, StoreError> {
        let rows = db
            .query(
                RESERVE,
                &[
                    key.into(),
                    now_ms.into(),
                    k.max_failures.into(),
                    k.window_ms.into(),
                    k.base_lock_ms.into(),
                    k.max_lock_ms.into(),
                ],
            )
            .await?;
        rows.first().map(state).transpose()
    }

    pub async fn refund(db: &impl Db, key: &str, lock_set: Option<i64>) -> Result<(), StoreError> {
        db.execute(REFUND, &[key.into(), lock_set.into()]).await?;
        Ok(())
    }

    pub async fn clear(db: &impl Db, key: &str) -> Result<(), StoreError> {
        db.execute(DELETE, &[key.into()]).await?;
        Ok(())
    }

    /// Deletes at most `limit` counters with no window or lock after `before_ms`.
    pub async fn delete_idle(db: &impl Db, before_ms: i64, limit: i64) -> Result<u64, StoreError> {
        db.execute(DELETE_IDLE, &[before_ms.into(), limit.into()]).await
    }
}
