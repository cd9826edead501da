//! Audit retention: rows older than the retention window are deleted in bounded batches.
//!
//! Each batch is one bounded `DELETE` (see `store::audit::DELETE_OLDER_THAN`). The run stops when
//! a batch deletes fewer rows than its size (nothing older is left) or after `max_batches`, so one
//! cron invocation stays inside the Worker's CPU and wall-clock budget; the next run continues.

use crate::store::{audit, Db, StoreError};

pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub retain_days: i64,
    pub batch_size: u32,
    pub max_batches: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy { retain_days: 30, batch_size: 500, max_batches: 40 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    pub cutoff_ms: i64,
    pub deleted: u64,
    pub batches: u32,
    /// False when `max_batches` was reached with rows possibly left for the next run.
    pub complete: bool,
}

pub async fn run(db: &impl Db, now_ms: i64, policy: RetentionPolicy) -> Result<RetentionReport, StoreError> {
    let cutoff_ms = now_ms - policy.retain_days * DAY_MS;
    let mut report = RetentionReport { cutoff_ms, deleted: 0, batches: 0, complete: false };
    while report.batches < policy.max_batches {
        let n = audit::delete_older_than(db, cutoff_ms, policy.batch_size).await?;
        report.batches += 1;
        report.deleted += n;
        if n < u64::from(policy.batch_size) {
            report.complete = true;
            break;
        }
    }
    Ok(report)
}
