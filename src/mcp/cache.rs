//! The isolate's hot-path caches ([`ManifestCache`]) and the published manifest as the hot
//! path uses it ([`Loaded`]): the live-version pointer and access-key mirrors are trusted for
//! [`KV_TTL_MS`]; manifests are immutable per version, so a cached one is never stale.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;

use super::discovery::SearchIndex;
use super::shards::{self, RawPage};
use crate::manifest::{self, Manifest, SHARD_TOOLS};
use crate::store::{Kv, StoreError};
use crate::tools::ToolDef;

pub(crate) const MANIFEST_CACHE_ENTRIES: usize = 64;
/// Memory the cached manifests of one isolate may take ([`crate::manifest::cost`]): format-3
/// heads are small; whole manifests (formats 1 and 2, published before format 3) were refused
/// at publish above this, so each can be cached. Parts have a cache of their own
/// ([`PART_CACHE_BYTES`]).
pub const MANIFEST_CACHE_BYTES: usize = 64 << 20;

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
    /// The request needed more parts than [`MAX_PART_LOADS`].
    TooManyParts,
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManifestError::Kv(e) => write!(f, "KV: {e}"),
            ManifestError::CorruptPointer => f.write_str("corrupt live pointer"),
            ManifestError::Missing { version } => write!(f, "manifest version {version} is missing"),
            ManifestError::Corrupt(e) => write!(f, "corrupt manifest: {e}"),
            ManifestError::Foreign => f.write_str("manifest does not belong to this server or has an unknown format"),
            ManifestError::TooManyParts => {
                write!(f, "the request needs more than {MAX_PART_LOADS} parts of the manifest")
            }
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
    /// Formats 1 and 2: the whole manifest; format 3: its head (no tools: they are in shards).
    pub manifest: Manifest,
    /// The meta-tools `tools/list` shows first: the three discovery tools (discovery mode) or
    /// `list_skills` and `tool_search` (skills), then store tools. The tools themselves are
    /// rendered per page, or read as pre-serialised pages (format 3).
    pub meta: Vec<Value>,
    /// Whether every tool follows the meta-tools in `tools/list` (not in discovery mode or
    /// with skills `instead`).
    pub lists_tools: bool,
    /// Estimated memory (bytes) this entry holds, charged to the cache.
    pub cost: usize,
    /// Tool name -> index in `manifest.tools` (empty for a format-3 head: its tools are found
    /// through the layout).
    index: HashMap<String, usize>,
    /// What `search_tools` looks in: built here for a whole manifest in discovery mode (a
    /// format-3 one reads its search part through the cache).
    search: Option<Rc<SearchIndex>>,
}

/// A tool definition of a loaded manifest: borrowed from a whole one, or held in a cached shard.
pub enum ToolRef<'l> {
    Whole(&'l ToolDef),
    /// A shard and the tool's place in it.
    Shard(Rc<Vec<ToolDef>>, usize),
}

impl std::ops::Deref for ToolRef<'_> {
    type Target = ToolDef;
    fn deref(&self) -> &ToolDef {
        match self {
            ToolRef::Whole(t) => t,
            ToolRef::Shard(tools, i) => &tools[*i],
        }
    }
}

/// One part of a format-3 manifest, as an isolate holds it.
#[derive(Debug, Clone)]
pub enum Part {
    Tools(Rc<Vec<ToolDef>>),
    Page(Rc<RawPage>),
    Search(Rc<SearchIndex>),
}

/// The most parts of format-3 manifests one request may read from KV (cache hits are free): a
/// request naming tools across many shards (a batch, `tool_search select:`) cannot make an
/// isolate read and parse a whole server.
pub const MAX_PART_LOADS: u32 = 8;

/// Where a request reads manifest parts from, and how many KV reads of parts it made.
pub struct Reads<'r, K: Kv> {
    pub kv: &'r K,
    pub cache: &'r ManifestCache,
    pub loads: std::cell::Cell<u32>,
}

impl<'r, K: Kv> Reads<'r, K> {
    pub fn new(kv: &'r K, cache: &'r ManifestCache) -> Self {
        Reads { kv, cache, loads: std::cell::Cell::new(0) }
    }
}

/// A `tools/list` page: rendered values, or stored bytes (format 3).
pub(crate) enum Page {
    Values(Vec<Value>),
    Raw(Rc<RawPage>),
}

impl Loaded {
    /// How many tools `tools/list` shows.
    pub fn listed_len(&self) -> usize {
        match &self.manifest.layout {
            // The stored pages, as written.
            Some(l) if self.lists_tools => l.listed,
            _ => self.meta.len() + if self.lists_tools { self.manifest.tool_count() } else { 0 },
        }
    }

    /// Whether the tools are in shards (format 3).
    pub fn sharded(&self) -> bool {
        self.manifest.layout.is_some()
    }

    /// `tools/list` entries `start..end` (bounded by [`Loaded::listed_len`]) of a whole
    /// manifest, or the meta-tools of any.
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

    /// `tools/list` entries `start..start+100`: a stored page as its bytes when `start` begins
    /// one (the cursors FlowCP gives), else the entries cut from the two pages it spans.
    pub(crate) async fn page_at(&self, r: &Reads<'_, impl Kv>, start: usize) -> Result<Page, ManifestError> {
        if !self.sharded() || !self.lists_tools || start >= self.listed_len() {
            return Ok(Page::Values(self.listed(start, start + SHARD_TOOLS)));
        }
        let (k, skip) = (start / SHARD_TOOLS, start % SHARD_TOOLS);
        if skip == 0 {
            return Ok(Page::Raw(self.stored_page(r, k).await?));
        }
        let mut out: Vec<Value> = self.stored_page(r, k).await?.to_values().into_iter().skip(skip).collect();
        if (k + 1) * SHARD_TOOLS < self.listed_len() {
            out.extend(self.stored_page(r, k + 1).await?.to_values().into_iter().take(skip));
        }
        Ok(Page::Values(out))
    }

    async fn stored_page(&self, r: &Reads<'_, impl Kv>, k: usize) -> Result<Rc<RawPage>, ManifestError> {
        match self.part(r, &shards::page_part(k)).await? {
            Part::Page(p) => Ok(p),
            _ => Err(ManifestError::Corrupt(format!("page {k} is not a page"))),
        }
    }

    /// A tool by name; `Ok(None)` when the server has no such tool.
    pub async fn tool(&self, r: &Reads<'_, impl Kv>, name: &str) -> Result<Option<ToolRef<'_>>, ManifestError> {
        let Some(layout) = &self.manifest.layout else {
            return Ok(self.index.get(name).map(|&i| ToolRef::Whole(&self.manifest.tools[i])));
        };
        // The shard whose first name is the greatest not after `name`.
        let Some(k) = layout.shards.partition_point(|first| first.as_str() <= name).checked_sub(1) else {
            return Ok(None);
        };
        let Part::Tools(tools) = self.part(r, &shards::shard_part(k)).await? else {
            return Err(ManifestError::Corrupt(format!("shard {k} is not tools")));
        };
        Ok(tools.binary_search_by(|t| t.name.as_str().cmp(name)).ok().map(|i| ToolRef::Shard(tools, i)))
    }

    /// What `search_tools` looks in (built on the spot for a whole manifest outside discovery
    /// mode: skills' keyword search).
    pub(crate) async fn search_index(&self, r: &Reads<'_, impl Kv>) -> Result<Rc<SearchIndex>, ManifestError> {
        if let Some(s) = &self.search {
            return Ok(s.clone());
        }
        if !self.sharded() {
            return Ok(Rc::new(SearchIndex::of(&self.manifest.tools)));
        }
        match self.part(r, shards::SEARCH_PART).await? {
            Part::Search(index) => Ok(index),
            _ => Err(ManifestError::Corrupt("the search part is not a search index".into())),
        }
    }

    /// A part of this (format-3) version, from the isolate cache or KV.
    async fn part(&self, r: &Reads<'_, impl Kv>, name: &str) -> Result<Part, ManifestError> {
        let (kv, cache) = (r.kv, r.cache);
        let m = &self.manifest;
        let key = m.part_key(name).ok_or(ManifestError::Foreign)?;
        if let Some(hit) = cache.parts.borrow_mut().hit(key.as_str()) {
            return Ok(hit);
        }
        if r.loads.get() >= MAX_PART_LOADS {
            return Err(ManifestError::TooManyParts);
        }
        r.loads.set(r.loads.get() + 1);
        let Some(bytes) = kv.get(&key).await? else { return Err(ManifestError::Missing { version: m.version }) };
        let len = bytes.len();
        let (part, cost) = match name.as_bytes().first() {
            Some(b's') => {
                let tools: Vec<ToolDef> =
                    serde_json::from_slice(&bytes).map_err(|e| ManifestError::Corrupt(format!("{name}: {e}")))?;
                let cost = manifest::tools_cost(&tools, len);
                (Part::Tools(Rc::new(tools)), cost)
            }
            Some(b'p') => (Part::Page(Rc::new(RawPage::parse(bytes).map_err(ManifestError::Corrupt)?)), len + 64),
            _ => {
                let entries =
                    serde_json::from_slice(&bytes).map_err(|e| ManifestError::Corrupt(format!("{name}: {e}")))?;
                let index = SearchIndex::from_entries(entries);
                let cost = index.cost();
                (Part::Search(Rc::new(index)), cost)
            }
        };
        cache.parts.borrow_mut().keep(key, part.clone(), cost);
        Ok(part)
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

/// Parts of format-3 manifests an isolate keeps (shards, pages, search texts), least recently
/// used first out: the memory a server's requests take stays bounded whatever its size.
pub const PART_CACHE_BYTES: usize = 32 << 20;
pub(crate) const PART_CACHE_ENTRIES: usize = 512;

/// A least-recently-used map bounded by entries and by the bytes its values are charged.
struct Lru<K, V> {
    map: HashMap<K, (V, usize, u64)>,
    held: usize,
    uses: u64,
    max_entries: usize,
    max_bytes: usize,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> Lru<K, V> {
    fn new(max_entries: usize, max_bytes: usize) -> Self {
        Lru { map: HashMap::new(), held: 0, uses: 0, max_entries, max_bytes }
    }

    /// A cached value, marked as just used.
    fn hit<Q: std::hash::Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
    {
        self.uses += 1;
        let now = self.uses;
        let (v, _, used) = self.map.get_mut(key)?;
        *used = now;
        Some(v.clone())
    }

    /// Keeps a value charged `cost` bytes, evicting the least recently used first; one that
    /// alone exceeds the byte budget is not kept.
    fn keep(&mut self, key: K, v: V, cost: usize) {
        if cost > self.max_bytes {
            return;
        }
        if let Some((_, gone, _)) = self.map.remove(&key) {
            self.held -= gone;
        }
        while !self.map.is_empty() && (self.map.len() >= self.max_entries || self.held + cost > self.max_bytes) {
            let Some(oldest) = self.map.iter().min_by_key(|(_, (_, _, used))| *used).map(|(k, _)| k.clone()) else {
                break;
            };
            if let Some((_, gone, _)) = self.map.remove(&oldest) {
                self.held -= gone;
            }
        }
        self.uses += 1;
        self.held += cost;
        self.map.insert(key, (v, cost, self.uses));
    }
}

/// The isolate's caches of the hot path: prepared manifests by (server, version) and the parts
/// of format-3 ones by key — immutable, so never stale — and small KV entries (live pointers,
/// access-key mirrors) for [`KV_TTL_MS`]. The glue owns one per isolate and passes it in; tests
/// make their own.
pub struct ManifestCache {
    manifests: RefCell<Lru<ManifestKey, Rc<Loaded>>>,
    /// Parts of format-3 manifests by KV key.
    parts: RefCell<Lru<String, Part>>,
    /// KV key -> (value, read at): short-lived cache of small KV entries (negative ones too).
    small: RefCell<HashMap<String, CachedValue>>,
}

impl Default for ManifestCache {
    fn default() -> Self {
        ManifestCache {
            manifests: RefCell::new(Lru::new(MANIFEST_CACHE_ENTRIES, MANIFEST_CACHE_BYTES)),
            parts: RefCell::new(Lru::new(PART_CACHE_ENTRIES, PART_CACHE_BYTES)),
            small: RefCell::default(),
        }
    }
}

impl ManifestCache {
    /// A cached manifest, marked as just used.
    fn hit(&self, key: &(String, i64)) -> Option<Rc<Loaded>> {
        self.manifests.borrow_mut().hit(key)
    }

    /// Keep a prepared manifest within [`MANIFEST_CACHE_ENTRIES`] and [`MANIFEST_CACHE_BYTES`].
    fn keep(&self, key: (String, i64), loaded: Rc<Loaded>) {
        let cost = loaded.cost;
        self.manifests.borrow_mut().keep(key, loaded, cost)
    }

    /// Estimated bytes the cached manifests and parts hold (for tests and the deep health check).
    pub fn manifest_bytes(&self) -> usize {
        self.manifests.borrow().held + self.parts.borrow().held
    }

    /// Estimated bytes the cached parts of format-3 manifests hold.
    pub fn part_bytes(&self) -> usize {
        self.parts.borrow().held
    }

    /// Whether a (server, version) is cached.
    pub fn holds(&self, server_id: &str, version: i64) -> bool {
        self.manifests.borrow().map.contains_key(&(server_id.to_string(), version))
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

/// Prepare a manifest parsed from `json_len` bytes of JSON: a whole one (formats 1 and 2, or
/// built in-process), or a format-3 head.
pub(crate) fn prepare(manifest: Manifest, json_len: usize) -> Loaded {
    let (meta, lists_tools) = shards::meta_of(&manifest);
    let index = manifest.tools.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
    let search = (manifest.discovery && manifest.layout.is_none()).then(|| Rc::new(SearchIndex::of(&manifest.tools)));
    let meta_cost: usize =
        meta.iter().map(|v| crate::openapi::ledger::value_size_within(v, usize::MAX).unwrap_or(0)).sum();
    let cost = manifest::cost(&manifest, json_len) + search.as_ref().map_or(0, |s| s.cost()) + meta_cost;
    Loaded { manifest, meta, lists_tools, cost, index, search }
}

/// Whether a stored manifest is one this runtime serves for `server_id`: its own, of a format it
/// reads, and (format 3) with a layout that fits its tool count and settings.
fn readable(m: &Manifest, server_id: &str, version: i64) -> Result<(), ManifestError> {
    if m.server_id != server_id || m.version != version || !manifest::READABLE_FORMATS.contains(&m.format) {
        return Err(ManifestError::Foreign);
    }
    let Some(l) = &m.layout else {
        return if m.format < manifest::FORMAT { Ok(()) } else { Err(ManifestError::Corrupt("no layout".into())) };
    };
    let lists_tools = shards::meta_of(m).1;
    // Checked before any arithmetic on them: a head holds at most MAX_SHARDS of SHARD_TOOLS.
    let tools_ok = l.tools <= shards::MAX_TOOLS && l.listed <= l.tools + manifest::SHARD_TOOLS;
    let fits = tools_ok
        && m.format == manifest::FORMAT
        && m.tools.is_empty()
        && l.id_ok()
        && (l.tools.div_ceil(manifest::SHARD_TOOLS)..=l.tools.min(shards::MAX_SHARDS)).contains(&l.shards.len())
        && l.shards.windows(2).all(|w| w[0] < w[1])
        && if lists_tools {
            l.listed >= l.tools && l.pages == l.listed.div_ceil(manifest::SHARD_TOOLS).max(1)
        } else {
            l.pages == 0 && l.listed == 0
        }
        && l.search == (m.discovery || m.skills.is_some());
    if fits {
        Ok(())
    } else {
        Err(ManifestError::Corrupt("the layout does not fit the manifest".into()))
    }
}

/// The live manifest of a server: one KV read for the live version, then the isolate cache
/// (manifests are immutable per version) or a second KV read (of the head, for format 3).
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
    readable(&m, server_id, version)?;
    let loaded = Rc::new(prepare(m, bytes.len()));
    cache.keep(key, loaded.clone());
    Ok(Some(loaded))
}
