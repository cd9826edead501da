//! The hourly refresh of store tools' answers (issue 16, `super::store_tools`): each due entry
//! fetched again as its user, with their access token from the key gate.

use serde_json::Value;

use super::keys::{Gate, Snapshot};
use super::store_tools::{open, seal, unavailable};
use crate::invoke::{build_request, Credential};
use crate::mcp::server::{load_manifest, ManifestCache};
use crate::mcp::store::MAX_BODY_BYTES;
use crate::net::{check_url, Http, HttpRequest};
use crate::store::store_entries::{self, Entry};
use crate::store::{key_users, Db, Kv};
use crate::vocab::AuthMode;

use super::store_tools::{REFRESHES_PER_RUN, REFRESH_EVERY_MS};

/// What one cron run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RefreshReport {
    pub refreshed: u32,
    /// Tried and kept the older answer (API down, refused, too large; user signed out).
    pub kept: u32,
    /// Deleted: the tool is no longer synced, or the server no longer `user_key`.
    pub dropped: u32,
}

/// The hourly refresh: entries not tried for an hour, oldest first, at most
/// [`REFRESHES_PER_RUN`], each fetched again as its user (their access token, refreshed
/// single-flight if needed). An answer that is not 2xx, is too large or cannot be fetched
/// leaves the older one (and its age shows it).
pub async fn refresh_due<D: Db, K: Kv, H: Http>(gate: &Gate<'_, D, K, H>, now: i64) -> RefreshReport {
    let mut report = RefreshReport::default();
    let due =
        store_entries::due(gate.db, now - REFRESH_EVERY_MS, now - super::store_tools::STALE_MS, REFRESHES_PER_RUN);
    let Ok(due) = due.await else { return report };
    let manifests = ManifestCache::default();
    for e in due {
        // Tried now, whatever comes of it: a failing entry waits an hour.
        let _ = store_entries::touch(gate.db, &e, now).await;
        match refresh_one(gate, &manifests, &e, now).await {
            Outcome::Refreshed => report.refreshed += 1,
            Outcome::Kept => report.kept += 1,
            Outcome::Dropped => {
                let _ = store_entries::delete(gate.db, &e).await;
                report.dropped += 1;
            }
        }
    }
    report
}

enum Outcome {
    Refreshed,
    Kept,
    Dropped,
}

async fn refresh_one<D: Db, K: Kv, H: Http>(
    gate: &Gate<'_, D, K, H>,
    manifests: &ManifestCache,
    e: &Entry,
    now: i64,
) -> Outcome {
    let loaded = match load_manifest(gate.kv, manifests, &e.server_id, now).await {
        Ok(Some(l)) => l,
        // Unpublished for now (or unreadable): kept; it ages out if it stays so.
        _ => return Outcome::Kept,
    };
    let m = &loaded.manifest;
    let synced = m.store.as_ref().is_some_and(|s| s.contains(&e.tool));
    let Some(tool) = m.synced_tool(&e.tool).filter(|_| synced && m.auth.mode == AuthMode::UserKey) else {
        return Outcome::Dropped;
    };
    if unavailable(gate.db, gate.default_plan, m).await.is_some() {
        return Outcome::Kept;
    }
    let row = match key_users::get(gate.db, &e.server_id, &e.user_id).await {
        Ok(Some(r)) if r.status == key_users::Status::Active => r,
        // Signed out for good (revoked, consent ended): nothing can refresh it.
        Ok(_) => return Outcome::Dropped,
        Err(_) => return Outcome::Kept,
    };
    let token = match gate.token(m, &e.user_id, row.epoch, &Snapshot::of(&row), now).await {
        Ok(Ok(t)) => t,
        Ok(Err(_)) => return Outcome::Dropped,
        Err(_) => return Outcome::Kept,
    };
    let Some(args) =
        open(gate.keyring, "args", e, &e.args_sealed).and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        return Outcome::Dropped;
    };
    let Ok(plan) = build_request(tool, &args, &Credential::Bearer(token.clone()), m.base_url.as_deref()) else {
        return Outcome::Dropped;
    };
    let Ok(url) = check_url(&plan.url, gate.fetch_policy) else { return Outcome::Kept };
    // The user's token only goes to the origin the server's credential was set for.
    if Some(url.origin().ascii_serialization()) != m.auth.credential_origin {
        return Outcome::Kept;
    }
    let req = HttpRequest {
        method: plan.method,
        url: url.to_string(),
        headers: plan.headers,
        body: plan.body,
        timeout_ms: crate::mcp::server::UPSTREAM_TIMEOUT_MS,
    };
    let Ok(resp) = gate.http.send(&req, MAX_BODY_BYTES + 1).await else { return Outcome::Kept };
    if !(200..300).contains(&resp.status) || resp.truncated || resp.body.len() > MAX_BODY_BYTES {
        return Outcome::Kept;
    }
    // Never keep an upstream's echo of the user's token (as the live path does).
    let body = crate::redact::Redactor::of_values([token.as_str()]).capped_body(resp.body, false);
    let key = (e.server_id.as_str(), e.user_id.as_str(), e.tool.as_str(), e.args_hash.as_str());
    let Some(body_sealed) = seal(gate.keyring, "body", key, &body) else { return Outcome::Kept };
    let fresh = Entry { body_sealed, fetched_at: now, refreshed_at: now, ..e.clone() };
    match store_entries::put(gate.db, &fresh).await {
        Ok(true) => Outcome::Refreshed,
        _ => Outcome::Kept,
    }
}
