//! Key rotation as an operation (security review S5): re-seal every KV envelope under the key
//! ring's primary key, so the old key can be removed and everything still opens.
//!
//! The job walks the envelopes' owners from D1 ([`crate::store::envelopes`]) in a stable
//! order, a page at a time; each call returns the cursor to resume after, so an operator (or a
//! script) calls it until `done`. It is idempotent: an envelope already under the primary key
//! is left alone. `dry_run` opens every envelope without writing, to prove the ring opens
//! everything before a key is removed. The report names KV keys, never a value.
//!
//! Known limit: KV has no compare-and-set. The job re-reads a value just before writing it
//! back and skips it if it changed, but an admin entering a credential in the same
//! millisecond could still lose that write; rotate outside busy hours (docs/operations.md).

use serde::Serialize;

use crate::crypto::{aad_server_credential, aad_workspace_secret, envelope_key_id, Keyring};
use crate::manifest;
use crate::store::envelopes::{self, Sealed};
use crate::store::{Db, Kv, StoreError};

/// Owners read per call unless asked otherwise, and at most.
pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 500;

/// What one call did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ResealReport {
    /// The key id everything is being sealed under.
    pub primary_key_id: String,
    pub dry_run: bool,
    /// Envelopes looked at in this call.
    pub examined: usize,
    /// Re-sealed under the primary key (0 in a dry run).
    pub resealed: usize,
    /// Already under the primary key.
    pub current: usize,
    /// Opened with an older key (a dry run's count of what a real run would re-seal).
    pub opened_with_older_key: usize,
    /// Named in D1 but absent from KV (nothing to do).
    pub missing: usize,
    /// Changed between read and write (left as the newer value).
    pub changed_meanwhile: usize,
    /// KV keys that did not open with any key of the ring (their key was removed too early,
    /// or the value is corrupt): fix before removing a key.
    pub failed: Vec<String>,
    /// Pass back as `cursor` to continue; absent when `done`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    pub done: bool,
}

/// Where a cursor this job issued resumes; `None` for anything else.
pub fn resume_after(cursor: &str) -> Option<String> {
    crate::cursor::decode(cursor, 1).and_then(|p| p.into_iter().next())
}

/// One call of the job: up to `limit` owners after `after` (from [`resume_after`]; "" for the
/// start).
pub async fn run(
    db: &impl Db,
    kv: &impl Kv,
    keyring: &Keyring,
    after: &str,
    limit: i64,
    dry_run: bool,
) -> Result<ResealReport, StoreError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let page = envelopes::page(db, after, limit).await?;
    let mut report = ResealReport { primary_key_id: keyring.primary_id().to_string(), dry_run, ..Default::default() };
    for (_, owner) in &page {
        for (key, aad) in envelopes_of(owner) {
            reseal_one(kv, keyring, &key, &aad, dry_run, &mut report).await?;
        }
    }
    report.done = (page.len() as i64) < limit;
    report.next_cursor = (!report.done).then(|| page.last().map(|(k, _)| crate::cursor::encode(&[k]))).flatten();
    Ok(report)
}

/// The KV keys and AADs of an owner's envelopes.
fn envelopes_of(owner: &Sealed) -> Vec<(String, Vec<u8>)> {
    match owner {
        Sealed::Server { id, credential_key, published_version } => {
            let aad = aad_server_credential(id);
            let mut out: Vec<(String, Vec<u8>)> = Vec::new();
            if let Some(k) = credential_key {
                out.push((k.clone(), aad.clone()));
            }
            if let Some(v) = published_version {
                out.push((manifest::published_credential_key(id, *v), aad));
            }
            out
        }
        Sealed::Secret { workspace_id, name, kv_key } => {
            vec![(kv_key.clone(), aad_workspace_secret(workspace_id, name))]
        }
    }
}

async fn reseal_one(
    kv: &impl Kv,
    keyring: &Keyring,
    key: &str,
    aad: &[u8],
    dry_run: bool,
    report: &mut ResealReport,
) -> Result<(), StoreError> {
    report.examined += 1;
    let Some(bytes) = kv.get(key).await? else {
        report.missing += 1;
        return Ok(());
    };
    let envelope = String::from_utf8_lossy(&bytes);
    let plaintext = match keyring.open(&envelope, aad) {
        Ok(p) => p,
        Err(_) => {
            report.failed.push(key.to_string());
            return Ok(());
        }
    };
    if envelope_key_id(&envelope) == Some(keyring.primary_id()) {
        report.current += 1;
        return Ok(());
    }
    report.opened_with_older_key += 1;
    if dry_run {
        return Ok(());
    }
    let sealed = keyring.seal(&plaintext, aad).map_err(|e| StoreError::Backend(format!("seal: {e}")))?;
    // Skip a value that changed since it was read (a credential entered meanwhile is sealed
    // under the primary key already).
    if kv.get(key).await?.as_deref() != Some(bytes.as_slice()) {
        report.changed_meanwhile += 1;
        return Ok(());
    }
    kv.put(key, sealed.as_bytes(), None).await?;
    report.resealed += 1;
    Ok(())
}
