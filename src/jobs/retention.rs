//! Retention: audit rows older than the retention window, sessions a day past their expiry,
//! login-throttle rows idle for a day, expired emailed links and invitations, abandoned Git
//! consents and old webhook delivery ids are deleted in bounded batches.
//!
//! Each batch is one bounded `DELETE` (see `store::audit::DELETE_OLDER_THAN`). The run stops when
//! a batch deletes fewer rows than its size (nothing older is left) or after `max_batches`, so one
//! cron invocation stays inside the Worker's limits: at most 15 + `max_batches` = 49 queries (the
//! Free plan allows 50 per invocation). The cron runs hourly, so the next run continues well
//! within the day (170,000 audit rows per run, 4.08 million a day).

use crate::store::sessions::{self, throttle};
use crate::store::{audit, invitations, oauth_clients, tokens, Db, StoreError};

pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const HOUR_MS: i64 = 60 * 60 * 1000;
/// The shortest and longest audit retention a workspace may choose
/// (`workspaces.audit_retention_days`, 30 by default).
pub const MIN_RETENTION_DAYS: i64 = 7;
pub const MAX_RETENTION_DAYS: i64 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub retain_days: i64,
    pub batch_size: u32,
    pub max_batches: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy { retain_days: 30, batch_size: 5_000, max_batches: 34 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    pub cutoff_ms: i64,
    pub deleted: u64,
    pub batches: u32,
    /// False when `max_batches` was reached with rows possibly left for the next run.
    pub complete: bool,
    /// Sessions deleted (expired more than a day ago).
    pub sessions_deleted: u64,
    /// Login-throttle rows deleted (idle for more than a day).
    pub throttle_deleted: u64,
    /// Expired verification and password-reset links deleted.
    pub tokens_deleted: u64,
    /// Expired invitations deleted.
    pub invitations_deleted: u64,
    /// Registered OAuth clients never used within a day, or idle for 90 days, deleted.
    pub oauth_clients_deleted: u64,
    /// Expired single-use markers (codes, states) deleted.
    pub oauth_markers_deleted: u64,
    /// Agent connections whose authorization code was never redeemed, deleted.
    pub unredeemed_connections_deleted: u64,
    /// Audit rows of deleted workspaces (an in-flight flush wrote them after the deletion).
    pub deleted_workspace_rows: u64,
    /// Monthly call counters of months before the previous one (`crate::plans`).
    pub usage_counters_deleted: u64,
    /// Store tools' answers not fetched for 30 days (`crate::oauth::store_tools`).
    pub store_entries_deleted: u64,
    /// Git consents abandoned for an hour and webhook delivery ids older than 3 days (issue 17).
    pub git_rows_deleted: u64,
}

pub async fn run(db: &impl Db, now_ms: i64, policy: RetentionPolicy) -> Result<RetentionReport, StoreError> {
    let cutoff_ms = now_ms - policy.retain_days * DAY_MS;
    // Sessions and throttle rows first, one bounded statement each: anyone can create throttle
    // rows (a failed login per random email), and a long audit backlog must not starve them.
    let day_ago = now_ms - DAY_MS;
    let limit = i64::from(policy.batch_size);
    let mut report = RetentionReport {
        cutoff_ms,
        deleted: 0,
        batches: 0,
        complete: false,
        sessions_deleted: sessions::delete_expired(db, day_ago, limit).await?,
        throttle_deleted: throttle::delete_idle(db, day_ago, limit).await?,
        tokens_deleted: tokens::delete_expired(db, now_ms, limit).await?,
        invitations_deleted: invitations::delete_expired(db, now_ms, limit).await?,
        // Not fatal: a failure here (say, the code ran before its migration) must not stop the
        // audit retention below; the next run tries again.
        oauth_clients_deleted: oauth_clients::delete_stale(db, now_ms, DAY_MS, 90 * DAY_MS, 10 * limit)
            .await
            .unwrap_or(0),
        // Single-use markers and the short-lived refresh outcomes together.
        oauth_markers_deleted: crate::store::connections::delete_expired_markers(db, now_ms, 10 * limit)
            .await
            .unwrap_or(0)
            + crate::store::connections::delete_expired_refresh_results(db, now_ms, 10 * limit).await.unwrap_or(0),
        unredeemed_connections_deleted: crate::store::connections::delete_unredeemed(
            db,
            now_ms - crate::store::connections::UNREDEEMED_TTL_MS,
            limit,
        )
        .await
        .unwrap_or(0),
        deleted_workspace_rows: crate::store::usage::sweep_deleted(db, now_ms, policy.batch_size).await.unwrap_or(0),
        store_entries_deleted: crate::store::store_entries::delete_stale(
            db,
            now_ms - crate::oauth::store_tools::STALE_MS,
            policy.batch_size,
        )
        .await
        .unwrap_or(0),
        git_rows_deleted: crate::store::git::delete_stale(db, now_ms - HOUR_MS, now_ms - 3 * DAY_MS, policy.batch_size)
            .await
            .unwrap_or(0),
        usage_counters_deleted: crate::store::usage::delete_before(
            db,
            &crate::plans::previous_month(&crate::plans::month_of(now_ms)),
            policy.batch_size,
        )
        .await
        .unwrap_or(0),
    };
    // First everything past the longest retention, oldest first on `idx_audit_ts`; then each
    // workspace that keeps less, on `idx_audit_workspace_ts`. Both read what they delete. (A
    // deleted workspace's rows went with it, and those written after, above.)
    let longest_cutoff = now_ms - policy.retain_days.max(MAX_RETENTION_DAYS) * DAY_MS;
    let mut by_workspace = false;
    while report.batches < policy.max_batches {
        let n = if by_workspace {
            audit::delete_expired(db, now_ms, policy.batch_size).await?
        } else {
            audit::delete_older_than(db, longest_cutoff, policy.batch_size).await?
        };
        report.batches += 1;
        report.deleted += n;
        if n < u64::from(policy.batch_size) {
            if by_workspace {
                report.complete = true;
                break;
            }
            by_workspace = true;
        }
    }
    Ok(report)
}
