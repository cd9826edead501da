//! The cache behind store tools (issue 16, `crate::mcp::store`): each `user_key` user's latest
//! answer of a synced tool per set of arguments, AES-256-GCM sealed in D1
//! (`store::store_entries`), kept when they call the live tool and refreshed hourly by the cron
//! in their delegated context ([`refresh_due`]).
//!
//! TODO(issue 16): `/ops/reseal` does not re-seal these entries; after a key is retired an entry
//! no longer opens, is dropped at its next refresh and is stored again by the next live call.
//!
//! Store tools need a plan that has them (the team plan; an unmetered deployment has every
//! feature). A workspace that leaves the plan is no longer served or refreshed, and its entries
//! are deleted 30 days after their last fetch ([`STALE_MS`]).

use serde_json::Value;

use crate::crypto::Keyring;
use crate::manifest::Manifest;
use crate::mcp::store::{args_hash, canonical, MAX_ARGS_BYTES, MAX_BODY_BYTES};
use crate::store::store_entries::{self, Entry};
use crate::store::Db;
use crate::vocab::Plan;

/// Entries are refreshed when their last try is this old.
pub const REFRESH_EVERY_MS: i64 = 3_600_000;
/// Entries the user has not used for this long are no longer refreshed and are deleted (the
/// retention job).
pub const STALE_MS: i64 = 30 * 86_400_000;
/// Refreshes one cron run makes at most: each takes up to 7 subrequests (D1 reads and writes,
/// the manifest from KV, the API call; more when the token must be refreshed), and a run stays
/// inside the Workers Free plan's 50. The cron runs every 5 minutes: 72 refreshes an hour.
pub const REFRESHES_PER_RUN: u32 = 6;

/// The AAD of an entry's sealed arguments or answer.
fn aad(kind: &str, server_id: &str, user_id: &str, tool: &str, hash: &str) -> Vec<u8> {
    format!("store|{kind}|{server_id}|{user_id}|{tool}|{hash}").into_bytes()
}

pub(crate) fn seal(keyring: &Keyring, kind: &str, e: (&str, &str, &str, &str), bytes: &[u8]) -> Option<String> {
    keyring.seal(bytes, &aad(kind, e.0, e.1, e.2, e.3)).ok()
}

pub(crate) fn open(keyring: &Keyring, kind: &str, e: &Entry, sealed: &str) -> Option<Vec<u8>> {
    keyring.open(sealed, &aad(kind, &e.server_id, &e.user_id, &e.tool, &e.args_hash)).ok()
}

/// What the store needs of the request: D1, the key ring, the deployment's default plan, the
/// clock and the admitted user (the key gate's).
pub struct Parts<'a, D: Db> {
    pub db: &'a D,
    pub keyring: &'a Keyring,
    pub default_plan: Option<Plan>,
    pub now: i64,
    pub user: Option<String>,
}

/// Why store tools cannot answer for this workspace now, if they cannot.
pub(crate) async fn unavailable(db: &impl Db, default_plan: Option<Plan>, m: &Manifest) -> Option<String> {
    match crate::plans::of_workspace(db, &m.workspace_id, default_plan).await {
        Ok(p) if p.limits.is_none_or(|l| l.store_tools) => None,
        Ok(p) => Some(format!(
            "Store tools need the team plan and this server's workspace is on the {} plan; its owner can move to the team plan.",
            p.plan.map_or("default", crate::vocab::Plan::as_str)
        )),
        Err(_) => Some("The store is unavailable; try again, or call the live tool.".into()),
    }
}

/// [`crate::mcp::server::KeyGate::store_read`].
pub async fn read<D: Db>(
    p: Parts<'_, D>,
    m: &Manifest,
    tool: &str,
    args: &Value,
) -> Result<Option<(String, i64)>, String> {
    let Some(user) = p.user else {
        return Err("Store tools answer for a signed-in user: send your key.".into());
    };
    if let Some(why) = unavailable(p.db, p.default_plan, m).await {
        return Err(why);
    }
    let hash = args_hash(args);
    let entry = store_entries::get(p.db, &m.server_id, &user, tool, &hash)
        .await
        .map_err(|_| "The store is unavailable; try again, or call the live tool.".to_string())?;
    let Some(e) = entry else { return Ok(None) };
    let body = open(p.keyring, "body", &e, &e.body_sealed)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or("The stored answer cannot be read; call the live tool to store it again.")?;
    // Used: refreshed and kept 30 more days (best effort).
    let _ = store_entries::mark_used(p.db, &e, p.now).await;
    Ok(Some((body, e.fetched_at)))
}

/// [`crate::mcp::server::KeyGate::store_write`]: best effort (a failure leaves the older
/// answer, or none).
pub async fn write<D: Db>(p: Parts<'_, D>, m: &Manifest, tool: &str, args: &Value, body: &[u8]) {
    let Some(user) = p.user else { return };
    if body.len() > MAX_BODY_BYTES || unavailable(p.db, p.default_plan, m).await.is_some() {
        return;
    }
    let hash = args_hash(args);
    let key = (m.server_id.as_str(), user.as_str(), tool, hash.as_str());
    let canonical_args = canonical(args).to_string();
    if canonical_args.len() > MAX_ARGS_BYTES {
        return;
    }
    let (Some(args_sealed), Some(body_sealed)) =
        (seal(p.keyring, "args", key, canonical_args.as_bytes()), seal(p.keyring, "body", key, body))
    else {
        return;
    };
    let now = p.now;
    let e = Entry {
        server_id: m.server_id.clone(),
        user_id: user.clone(),
        tool: tool.to_string(),
        args_hash: hash.clone(),
        workspace_id: m.workspace_id.clone(),
        args_sealed,
        body_sealed,
        fetched_at: now,
        refreshed_at: now,
        used_at: now,
    };
    let _ = store_entries::put(p.db, &e).await;
}
