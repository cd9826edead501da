//! A published server's life in KV: publish, retract and delete. This module owns every KV key
//! of a server (the live pointer, each manifest version, the highest version written, the
//! sealed credential — the draft and the copy each live manifest uses — and the access-key
//! mirrors), so no handler writes or deletes one sideways.
//!
//! Order matters for the hot path: a manifest version is written before the live pointer names
//! it, and a retraction removes the pointer first.

use crate::manifest;
use crate::store::servers::{self as store, Server};
use crate::store::{Db, Kv, StoreError};

/// The highest manifest version ever written for a server (0 when none).
/// TODO(scale): KV is read-your-writes only where it was written, so two publishes of one server
/// from two locations within a minute could pick the same number; number versions from D1
/// (`server_versions`) before 100x (docs/scale.md).
pub async fn latest_version(kv: &impl Kv, server_id: &str) -> Result<i64, StoreError> {
    let raw = kv.get(&manifest::latest_key(server_id)).await?;
    Ok(raw.and_then(|b| String::from_utf8(b).ok()).and_then(|s| s.trim().parse().ok()).unwrap_or(0))
}

/// Writes parts of a manifest version (format 3: `crate::mcp::shards`), before its head.
pub async fn write_parts(kv: &impl Kv, parts: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
    for (key, bytes) in parts {
        kv.put(&key, &bytes, None).await?;
    }
    Ok(())
}

/// Deletes the parts of a publish that failed before its head was written (best effort: they
/// are unreachable either way, since part keys carry the publish's own id).
pub async fn discard_parts(kv: &impl Kv, keys: &[String]) {
    for key in keys {
        let _ = kv.delete(key).await;
    }
}

/// Stores manifest `version` (its parts already written), not yet on the air. The draft
/// credential is copied for this version first (its manifest names the copy, so a credential
/// entered later changes nothing live until the next publish); then the head, and the highest
/// version written. A credential the owner cleared while the previous version was live is
/// deleted now. The caller records the version in D1, then calls [`go_live`]: nothing is
/// served that D1 does not record, and a failure in between leaves the server as it was.
pub async fn stage(kv: &impl Kv, s: &Server, version: i64, head: &[u8]) -> Result<(), StoreError> {
    match &s.credential_key {
        Some(draft) => {
            let sealed = kv.get(draft).await?.ok_or_else(|| StoreError::Corrupt(format!("{draft} is missing")))?;
            kv.put(&manifest::published_credential_key(&s.id, version), &sealed, None).await?;
        }
        None => kv.delete(&manifest::credential_key(&s.id)).await?,
    }
    kv.put(&manifest::manifest_key(&s.id, version), head, None).await?;
    kv.put(&manifest::latest_key(&s.id), version.to_string().as_bytes(), None).await
}

/// Puts a staged manifest version on the air: the live pointer; then the credential copy of the
/// version that was live before, which nothing references any more, is given an expiry.
/// The version the live pointer names (what KV serves, which after a failed publish can be
/// older than what D1 records) and the one D1 recorded are both superseded.
pub async fn go_live(kv: &impl Kv, s: &Server, version: i64) -> Result<(), StoreError> {
    let live = live_version(kv, &s.id).await?;
    kv.put(&manifest::live_key(&s.id), version.to_string().as_bytes(), None).await?;
    let mut superseded: Vec<i64> =
        [live, s.published_version].into_iter().flatten().filter(|p| *p != version).collect();
    superseded.dedup();
    for previous in superseded {
        expire_soon(kv, &manifest::published_credential_key(&s.id, previous)).await?;
    }
    Ok(())
}

/// The version a server's live pointer names (`None`: not on the air).
pub async fn live_version(kv: &impl Kv, server_id: &str) -> Result<Option<i64>, StoreError> {
    Ok(kv.get(&manifest::live_key(server_id)).await?.and_then(|b| String::from_utf8(b).ok()?.trim().parse().ok()))
}

/// Takes back a staged version that must not go on the air (its server was deleted while it
/// was published): the live pointer if it names it, its head, parts and credential copy (best
/// effort: each is unreachable without the pointer).
pub async fn discard_version(kv: &impl Kv, s: &Server, version: i64, head: &[u8]) {
    let live = kv.get(&manifest::live_key(&s.id)).await.ok().flatten();
    if live.as_deref() == Some(version.to_string().as_bytes()) {
        let _ = kv.delete(&manifest::live_key(&s.id)).await;
    }
    discard_parts(kv, &crate::mcp::shards::part_keys(head, &s.id, version)).await;
    let _ = kv.delete(&manifest::manifest_key(&s.id, version)).await;
    let _ = kv.delete(&manifest::published_credential_key(&s.id, version)).await;
}

/// How long a superseded credential copy outlives its manifest: KV takes up to about a minute
/// to carry a new live pointer everywhere, and an edge still serving the old version must still
/// open its credential meanwhile.
pub const SUPERSEDED_TTL_S: u64 = 300;

/// Re-writes a credential copy with an expiry instead of deleting it at once.
async fn expire_soon(kv: &impl Kv, key: &str) -> Result<(), StoreError> {
    if let Some(sealed) = kv.get(key).await? {
        kv.put(key, &sealed, Some(SUPERSEDED_TTL_S)).await?;
    }
    Ok(())
}

/// Takes a server off the air (its manifests stay for the next publish's numbering).
pub async fn retract(kv: &impl Kv, s: &Server) -> Result<(), StoreError> {
    kv.delete(&manifest::live_key(&s.id)).await?;
    if let Some(live) = s.published_version {
        expire_soon(kv, &manifest::published_credential_key(&s.id, live)).await?;
    }
    if s.credential_key.is_none() {
        kv.delete(&manifest::credential_key(&s.id)).await?;
    }
    Ok(())
}

/// Deletes every KV key of a server: live pointer, manifests, credential, access keys. Called
/// before the server's rows go (server, app, workspace or account deletion). Returns the
/// highest version it saw, for [`sweep_after_delete`].
pub async fn delete_all(db: &impl Db, kv: &impl Kv, s: &Server) -> Result<i64, StoreError> {
    kv.delete(&manifest::live_key(&s.id)).await?;
    let latest = latest_version(kv, &s.id).await?;
    for v in 1..=s.published_version.unwrap_or(0).max(latest) {
        let key = manifest::manifest_key(&s.id, v);
        // A format-3 head names its parts.
        // TODO(kv-budget): a server of many large versions can exceed one invocation's KV
        // operations here; sweep superseded versions from the cron, a budget per run.
        let head = kv.get(&key).await?.unwrap_or_default();
        for part in crate::mcp::shards::part_keys(&head, &s.id, v) {
            kv.delete(&part).await?;
        }
        kv.delete(&key).await?;
        // Superseded copies expire by themselves, but a publish that failed before its live
        // pointer leaves one that does not.
        kv.delete(&manifest::published_credential_key(&s.id, v)).await?;
    }
    kv.delete(&manifest::latest_key(&s.id)).await?;
    kv.delete(&manifest::credential_key(&s.id)).await?;
    for k in store::list_keys(db, &s.workspace_id, &s.id).await? {
        kv.delete(&manifest::access_key_key(&k.key_hash)).await?;
    }
    Ok(s.published_version.unwrap_or(0).max(latest))
}

/// After a server's row is gone: the live pointer and any version above `seen` (staged by a
/// publish that raced the deletion) go (best effort; without a row nothing else would).
pub async fn sweep_after_delete(kv: &impl Kv, s: &Server, seen: i64) {
    let _ = kv.delete(&manifest::live_key(&s.id)).await;
    let latest = latest_version(kv, &s.id).await.unwrap_or(seen);
    for v in seen + 1..=latest {
        let head = kv.get(&manifest::manifest_key(&s.id, v)).await.ok().flatten().unwrap_or_default();
        discard_version(kv, s, v, &head).await;
    }
    if latest > seen {
        let _ = kv.delete(&manifest::latest_key(&s.id)).await;
    }
}
