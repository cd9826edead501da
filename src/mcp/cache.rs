//! The isolate's hot-path caches ([`ManifestCache`]) and the published manifest as the hot
//! path uses it ([`Loaded`]): the live-version pointer and access-key mirrors are trusted for
//! [`KV_TTL_MS`]; manifests are immutable per version, so a cached one is never stale.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;

use super::discovery::discovery_tools;
use crate::manifest::{self, Manifest};
use crate::store::{Kv, StoreError};
use crate::tools::ToolDef;

pub(crate) const MANIFEST_CACHE_ENTRIES: usize = 64;
/// Memory the cached manifests of one isolate may take ([`crate::manifest::cost`]). It is the
/// publish limit too, so only a manifest published before that limit can exceed it: such a
/// one is used but not kept.
pub const MANIFEST_CACHE_BYTES: usize = crate::manifest::MAX_MANIFEST_COST;

/// Why a published server's manifest could not be used. The client sees 503; the operator log
/// gets this (it names no secret: KV keys and versions only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    /// KV failed.
    Kv(String),
    /// The live pointer is not a version number.
    CorruptPointer,
    /// The live pointer names a version that was never written.
    Missing { version: i64 },
    /// The manifest does not parse.
    Corrupt(String),
    /// It names another server, or a format this runtime does not read.
    Foreign,
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManifestError::Kv(e) => write!(f, "KV: {e}"),
            ManifestError::CorruptPointer => f.write_str("corrupt live pointer"),
            ManifestError::Missing { version } => write!(f, "manifest version {version} is missing"),
            ManifestError::Corrupt(e) => write!(f, "corrupt manifest: {e}"),
            ManifestError::Foreign => f.write_str("manifest does not belong to this server or has an unknown format"),
        }
    }
}

impl From<StoreError> for ManifestError {
    fn from(e: StoreError) -> Self {
        ManifestError::Kv(e.to_string())
    }
}

/// A manifest with what the hot path derives from it once per isolate.
pub struct Loaded {
    pub manifest: Manifest,
    /// The meta-tools `tools/list` shows first: the three discovery tools (discovery mode) or
    /// `list_skills` and `tool_search` (skills). The tools themselves are rendered per page
    /// (a second copy of every schema would double what a cached manifest takes).
    pub meta: Vec<Value>,
    /// Whether every tool follows the meta-tools in `tools/list` (not in discovery mode or
    /// with skills `instead`).
    pub lists_tools: bool,
    /// Tool name -> index in `manifest.tools`.
    pub index: HashMap<String, usize>,
    /// Estimated memory (bytes) this entry holds, charged to the cache.
    pub cost: usize,
    /// What `search_tools` looks in (discovery mode only; empty otherwise).
    pub(crate) search: super::discovery::SearchIndex,
}

impl Loaded {
    /// How many tools `tools/list` shows.
    pub fn listed_len(&self) -> usize {
        self.meta.len() + if self.lists_tools { self.manifest.tools.len() } else { 0 }
    }

    /// `tools/list` entries `start..end` (bounded by [`Loaded::listed_len`]).
    pub fn listed(&self, start: usize, end: usize) -> Vec<Value> {
        let end = end.min(self.listed_len());
        let n = self.meta.len();
        let mut out: Vec<Value> = self.meta.get(start.min(n)..end.min(n)).unwrap_or_default().to_vec();
        if self.lists_tools && end > n {
            let tools = self.manifest.tools.get(start.max(n) - n..end - n).unwrap_or_default();
            out.extend(tools.iter().map(ToolDef::to_mcp_json));
        }
        out
    }
}

/// How long an isolate trusts what it read of small mutable KV entries (the live-version
/// pointer, access-key mirrors). KV itself propagates writes globally within ~60 s, so this adds
/// no new staleness in production; it saves one or two KV reads per MCP request under load.
pub const KV_TTL_MS: i64 = 1_000;
pub(crate) const SMALL_CACHE_ENTRIES: usize = 4_096;

/// A KV value (or its absence) and when it was read.
pub(crate) type CachedValue = (Option<Vec<u8>>, i64);

/// A cached manifest's key: (server id, version).
type ManifestKey = (String, i64);

/// The isolate's caches of the hot path: prepared manifests by (server, version) — immutable,
/// so never stale — and small KV entries (live pointers, access-key mirrors) for
/// [`KV_TTL_MS`]. The glue owns one per isolate and passes it in; tests make their own.
#[derive(Default)]
pub struct ManifestCache {
    /// (server, version) -> (prepared manifest, last use): evicted least recently used first.
    manifests: RefCell<HashMap<ManifestKey, (Rc<Loaded>, u64)>>,
    uses: std::cell::Cell<u64>,
    /// KV key -> (value, read at): short-lived cache of small KV entries (negative ones too).
    small: RefCell<HashMap<String, CachedValue>>,
}

impl ManifestCache {
    fn tick(&self) -> u64 {
        self.uses.set(self.uses.get() + 1);
        self.uses.get()
    }

    /// A cached manifest, marked as just used.
    fn hit(&self, key: &(String, i64)) -> Option<Rc<Loaded>> {
        let now = self.tick();
        let mut c = self.manifests.borrow_mut();
        let (loaded, used) = c.get_mut(key)?;
        *used = now;
        Some(loaded.clone())
    }

    /// Keep a prepared manifest within [`MANIFEST_CACHE_ENTRIES`] and [`MANIFEST_CACHE_BYTES`],
    /// evicting the least recently used first; one that alone exceeds the byte budget is not
    /// kept (publish refuses those: [`crate::manifest::MAX_MANIFEST_COST`]).
    fn keep(&self, key: (String, i64), loaded: Rc<Loaded>) {
        if loaded.cost > MANIFEST_CACHE_BYTES {
            return;
        }
        let now = self.tick();
        let mut c = self.manifests.borrow_mut();
        let mut held: usize = c.values().map(|(l, _)| l.cost).sum();
        while !c.is_empty() && (c.len() >= MANIFEST_CACHE_ENTRIES || held + loaded.cost > MANIFEST_CACHE_BYTES) {
            let Some(oldest) = c.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone()) else { break };
            if let Some((gone, _)) = c.remove(&oldest) {
                held -= gone.cost;
            }
        }
        c.insert(key, (loaded, now));
    }

    /// Estimated bytes the cached manifests hold (for tests and the deep health check).
    pub fn manifest_bytes(&self) -> usize {
        self.manifests.borrow().values().map(|(l, _)| l.cost).sum()
    }

    /// Whether a (server, version) is cached.
    pub fn holds(&self, server_id: &str, version: i64) -> bool {
        self.manifests.borrow().contains_key(&(server_id.to_string(), version))
    }

    /// Reads a small KV entry through the short-lived cache.
    pub(crate) async fn get(&self, kv: &impl Kv, key: &str, now_ms: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let hit = self
            .small
            .borrow()
            .get(key)
            .filter(|(_, at)| now_ms - at < KV_TTL_MS && now_ms >= *at)
            .map(|(v, _)| v.clone());
        if let Some(v) = hit {
            return Ok(v);
        }
        let v = kv.get(key).await?;
        let mut c = self.small.borrow_mut();
        if c.len() >= SMALL_CACHE_ENTRIES {
            c.clear();
        }
        c.insert(key.to_string(), (v.clone(), now_ms));
        Ok(v)
    }
}

pub(crate) async fn live_version(
    kv: &impl Kv,
    cache: &ManifestCache,
    server_id: &str,
    now_ms: i64,
) -> Result<Option<i64>, ManifestError> {
    let Some(v) = cache.get(kv, &manifest::live_key(server_id), now_ms).await? else { return Ok(None) };
    std::str::from_utf8(&v).ok().and_then(|s| s.trim().parse().ok()).map(Some).ok_or(ManifestError::CorruptPointer)
}

/// Prepare a manifest parsed from `json_len` bytes of JSON.
pub(crate) fn prepare(manifest: Manifest, json_len: usize) -> Loaded {
    let index: HashMap<String, usize> = manifest.tools.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
    let (mut meta, lists_tools) = if manifest.discovery {
        (discovery_tools(manifest.tools.len()), false)
    } else if let Some(s) = &manifest.skills {
        (super::skills::meta_tools(s, manifest.tools.len()), s.mode == manifest::SkillsMode::Alongside)
    } else {
        (Vec::new(), true)
    };
    // Store tools (issue 16) are listed with the meta-tools.
    meta.extend(super::store::listed(&manifest));
    let search = if manifest.discovery { super::discovery::SearchIndex::of(&manifest) } else { Default::default() };
    let cost = manifest::cost(&manifest, json_len) + search.cost();
    Loaded { manifest, meta, lists_tools, index, cost, search }
}

/// The live manifest of a server: one KV read for the live version, then the isolate cache
/// (manifests are immutable per version) or a second KV read.
// TODO-security(issue 11 review): concurrent requests for an uncached manifest each parse it;
// share one in-flight load per (server, version).
pub async fn load_manifest(
    kv: &impl Kv,
    cache: &ManifestCache,
    server_id: &str,
    now_ms: i64,
) -> Result<Option<Rc<Loaded>>, ManifestError> {
    let Some(version) = live_version(kv, cache, server_id, now_ms).await? else { return Ok(None) };
    let key = (server_id.to_string(), version);
    if let Some(hit) = cache.hit(&key) {
        return Ok(Some(hit));
    }
    let Some(bytes) = kv.get(&manifest::manifest_key(server_id, version)).await? else {
        return Err(ManifestError::Missing { version });
    };
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| ManifestError::Corrupt(e.to_string()))?;
    if m.server_id != server_id || !manifest::READABLE_FORMATS.contains(&m.format) {
        return Err(ManifestError::Foreign);
    }
    let loaded = Rc::new(prepare(m, bytes.len()));
    cache.keep(key, loaded.clone());
    Ok(Some(loaded))
}
