//! Key rotation as an operation (security review S5): re-seal every KV envelope under the key
//! ring's primary key, so the old key can be removed and everything still opens.
//!
//! The job walks the envelopes' owners from D1 ([`crate::store::envelopes`]) in a stable
//! order, a page at a time; each call returns the cursor to resume after, so an operator (or a
//! script) calls it until `done`. It is idempotent: an envelope already under the primary key
//! is left alone. `dry_run` opens every envelope without writing, to prove the ring opens
//! everything before a key is removed. The report names KV keys, never a value.
//!
//! KV has no compare-and-set and its reads are cached at the edge for up to a minute, so D1
//! is the arbiter: an owner's envelopes are written back only if its row (key names, live
//! version, `updated_at`) is unchanged since the page read it and older than [`SETTLE_MS`];
//! otherwise they are counted as `changed_meanwhile` for a later run.
//!
//! TODO-security(issue 11 review), known limit: a write racing the job inside one request's
//! duration (between the D1 re-read and the KV write) could still be overwritten; rotate when
//! nobody is editing credentials (docs/operations.md).

use serde::Serialize;

use crate::crypto::{aad_server_credential, aad_workspace_secret, envelope_key_id, Keyring};
use crate::manifest;
use crate::store::envelopes::{self, Sealed};
use crate::store::{git, key_users};
use crate::store::{Db, Kv, StoreError};

/// Owners read per call unless asked otherwise, and at most: each owner costs up to two
/// envelopes of three KV operations and one D1 re-read, which keeps a page within the
/// platform's per-invocation limits (1,000 KV operations; 50 D1 queries on the Free plan).
pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 40;

/// A record changed more recently than this is left for a later run: KV reads are cached at
/// the edge for up to a minute, so the value the job read may be older than D1's.
pub const SETTLE_MS: i64 = 120_000;

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
    /// Left alone because their record changed during the run or within [`SETTLE_MS`]: run
    /// the job again later.
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

/// An envelope read and opened, to be written back sealed under the primary key.
struct Pending {
    key: String,
    read: Vec<u8>,
    sealed: String,
}

/// One call of the job: up to `limit` owners after `after` (from [`resume_after`]; "" for the
/// start), at `now_ms`.
pub async fn run(
    db: &impl Db,
    kv: &impl Kv,
    keyring: &Keyring,
    after: &str,
    limit: i64,
    dry_run: bool,
    now_ms: i64,
) -> Result<ResealReport, StoreError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let page = envelopes::page(db, after, limit).await?;
    let mut report = ResealReport { primary_key_id: keyring.primary_id().to_string(), dry_run, ..Default::default() };
    for (_, owner, updated_at) in &page {
        // Envelopes kept in D1 rows: opened, sealed again and written back by compare-and-set.
        let in_row = match owner {
            Sealed::KeyUser { server_id, user_id, generation, refresh, access } => {
                let aad = |kind: &str| crate::oauth::keys::aad(kind, server_id, user_id);
                let label = |kind: &str| format!("key_users {server_id} {user_id} {kind}");
                let (mut moved, mut r, mut a) = (false, refresh.clone(), access.clone());
                for (sealed, kind) in [(&mut r, "refresh"), (&mut a, "access")] {
                    *sealed = again(keyring, &mut report, sealed.as_deref(), &aad(kind), &label(kind), &mut moved)?;
                }
                Some(if !moved || dry_run {
                    None
                } else {
                    let n = usize::from(r != *refresh) + usize::from(a != *access);
                    Some((key_users::reseal(db, server_id, user_id, *generation, r.as_deref(), a.as_deref()).await?, n))
                })
            }
            Sealed::GitConnection { id, workspace_id, generation, refresh, access } => {
                let label = |kind: &str| format!("git_connections {id} {kind}");
                let (mut moved, mut r, mut a) = (false, refresh.clone(), access.clone());
                for (sealed, kind) in [(&mut r, "refresh"), (&mut a, "access")] {
                    let aad = crate::git::token_aad(workspace_id, id, kind);
                    *sealed = again(keyring, &mut report, sealed.as_deref(), &aad, &label(kind), &mut moved)?;
                }
                Some(if !moved || dry_run {
                    None
                } else {
                    let n = usize::from(r != *refresh) + usize::from(a != *access);
                    Some((git::reseal_connection(db, id, *generation, r.as_deref(), a.as_deref()).await?, n))
                })
            }
            Sealed::GitHook { id, workspace_id, secret } => {
                let mut moved = false;
                let aad = crate::git::hook_secret_aad(workspace_id, id);
                let new =
                    again(keyring, &mut report, Some(secret), &aad, &format!("app_sources {id} webhook"), &mut moved)?;
                Some(match new {
                    Some(new) if moved && !dry_run => Some((git::reseal_hook_secret(db, id, secret, &new).await?, 1)),
                    _ => None,
                })
            }
            _ => None,
        };
        if let Some(written) = in_row {
            match written {
                Some((true, n)) => report.resealed += n,
                Some((false, _)) => report.changed_meanwhile += 1,
                None => {}
            }
            continue;
        }
        let mut pending = Vec::new();
        for (key, aad) in envelopes_of(owner) {
            if let Some(p) = examine(kv, keyring, &key, &aad, &mut report).await? {
                pending.push(p);
            }
        }
        if pending.is_empty() || dry_run {
            continue;
        }
        // D1 is consistent where KV is not: write only if the record is as the page read it
        // and has not changed lately.
        let now = envelopes::reread(db, owner).await?;
        let settled = matches!(&now, Some((_, o, at)) if o == owner && *at == *updated_at && *at <= now_ms - SETTLE_MS);
        if !settled {
            report.changed_meanwhile += pending.len();
            continue;
        }
        for p in pending {
            if kv.get(&p.key).await?.as_deref() != Some(p.read.as_slice()) {
                report.changed_meanwhile += 1;
                continue;
            }
            kv.put(&p.key, p.sealed.as_bytes(), None).await?;
            report.resealed += 1;
        }
    }
    report.done = (page.len() as i64) < limit;
    report.next_cursor = (!report.done).then(|| page.last().map(|(k, _, _)| crate::cursor::encode(&[k]))).flatten();
    Ok(report)
}

/// The KV keys and AADs of an owner's envelopes: a server's draft credential and the copy its
/// live manifest uses (superseded copies expire within minutes and are not touched: writing
/// one back would drop its expiry), a workspace secret.
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
        Sealed::KeyUser { .. } | Sealed::GitConnection { .. } | Sealed::GitHook { .. } => Vec::new(),
    }
}

/// One envelope kept in a D1 row: the same, or sealed again under the primary key (`moved`
/// set) when an older key sealed it; one that does not open is reported and kept as it is.
fn again(
    keyring: &Keyring,
    report: &mut ResealReport,
    sealed: Option<&str>,
    aad: &[u8],
    label: &str,
    moved: &mut bool,
) -> Result<Option<String>, StoreError> {
    let Some(envelope) = sealed else { return Ok(None) };
    report.examined += 1;
    let Ok(plain) = keyring.open(envelope, aad) else {
        report.failed.push(label.to_string());
        return Ok(Some(envelope.to_string()));
    };
    if envelope_key_id(envelope) == Some(keyring.primary_id()) {
        report.current += 1;
        return Ok(Some(envelope.to_string()));
    }
    report.opened_with_older_key += 1;
    *moved = true;
    keyring.seal(&plain, aad).map(Some).map_err(|e| StoreError::Backend(format!("seal: {e}")))
}

/// Read and open one envelope; `Some` when it should be re-sealed (never in a dry run's count
/// of writes).
async fn examine(
    kv: &impl Kv,
    keyring: &Keyring,
    key: &str,
    aad: &[u8],
    report: &mut ResealReport,
) -> Result<Option<Pending>, StoreError> {
    report.examined += 1;
    let Some(read) = kv.get(key).await? else {
        report.missing += 1;
        return Ok(None);
    };
    let envelope = String::from_utf8_lossy(&read).into_owned();
    let Ok(plaintext) = keyring.open(&envelope, aad) else {
        report.failed.push(key.to_string());
        return Ok(None);
    };
    if envelope_key_id(&envelope) == Some(keyring.primary_id()) {
        report.current += 1;
        return Ok(None);
    }
    report.opened_with_older_key += 1;
    let sealed = keyring.seal(&plaintext, aad).map_err(|e| StoreError::Backend(format!("seal: {e}")))?;
    Ok(Some(Pending { key: key.to_string(), read, sealed }))
}
