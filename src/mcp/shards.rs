//! Format 3 of the published manifest (issue 18): a head and its parts, so that a server of
//! 10,000 tools publishes within KV's 25 MiB values and each request loads only what it needs.
//!
//! - The head, at `manifest:<server>:<version>` (where formats 1 and 2 kept everything): the
//!   settings, and a [`Layout`] that says how many tools there are and which tool name each
//!   shard starts with.
//! - `s<k>`: the next tools in name order, as definitions (what `tools/call` needs): at most
//!   [`SHARD_TOOLS`], and fewer when they would take over [`SHARD_TARGET_COST`] in memory.
//! - `p<k>`: `tools/list` page k, pre-serialised (the meta-tools, then each tool as MCP shows
//!   it), served as bytes. Written only when `tools/list` shows the tools.
//! - `q`: what `search_tools` looks in (discovery mode and skills).
//!
//! The parts are written before the head and the head before the live pointer names it
//! (`crate::service::lifecycle`), so a reader that finds a head finds its parts. Every part is
//! bounded here at publish: [`MAX_PART_BYTES`] of JSON, a shard's memory at [`MAX_SHARD_COST`].

use serde_json::Value;

use super::discovery::SearchEntry;
use crate::manifest::{self, Layout, Manifest, SHARD_TOOLS};
use crate::store::Kv;
use crate::tools::ToolDef;

/// The largest part written (KV takes 25 MiB; an isolate holds the parts it uses).
pub const MAX_PART_BYTES: usize = 16 << 20;
/// A shard is closed before a tool that would take it past this memory once parsed
/// (`manifest::tools_cost`), so a request that loads one shard loads a bounded amount.
pub const SHARD_TARGET_COST: usize = 4 << 20;
/// The most memory one tool's parsed definition may take (a shard of one such tool).
pub const MAX_SHARD_COST: usize = 16 << 20;
/// The most memory the search part may take once read (an isolate holds it whole).
pub const MAX_SEARCH_COST: usize = 32 << 20;
/// At most this many shards: a publish writes a part per shard and per page (at most as many),
/// within a Worker invocation's 1,000 KV operations.
pub const MAX_SHARDS: usize = 400;
/// The most tools a server publishes: half the shards full (the rest for shards cut by memory).
pub const MAX_TOOLS: usize = MAX_SHARDS / 2 * SHARD_TOOLS;

/// A JSON array written element by element, closed when taken.
#[derive(Default)]
struct JsonArray {
    buf: Vec<u8>,
    len: usize,
}

impl JsonArray {
    /// Appends an element given as JSON text.
    fn push_raw(&mut self, json: &[u8]) {
        self.buf.push(if self.len == 0 { b'[' } else { b',' });
        self.buf.extend_from_slice(json);
        self.len += 1;
    }

    fn push(&mut self, v: &impl serde::Serialize) {
        // Serialising a Value, a tool or a search entry to a Vec cannot fail.
        self.push_raw(&serde_json::to_vec(v).unwrap_or_default());
    }

    /// The array's JSON, leaving this one empty.
    fn take(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        if self.len == 0 {
            out.push(b'[');
        }
        out.push(b']');
        self.len = 0;
        out
    }
}

/// Part names within a version.
pub(crate) fn shard_part(k: usize) -> String {
    format!("s{k}")
}
pub(crate) fn page_part(k: usize) -> String {
    format!("p{k}")
}
pub(crate) const SEARCH_PART: &str = "q";

/// Why a manifest cannot be written: a message for the owner (`manifest_too_large`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge(pub String);

/// Writes a format-3 manifest tool by tool, in name order: each finished part comes out as
/// soon as it is complete, so a publish holds one shard at a time, never every definition.
pub struct Writer {
    head: Manifest,
    meta_len: usize,
    lists_tools: bool,
    /// The open shard: its tools, memory and first name.
    shard: JsonArray,
    shard_cost: usize,
    shard_first: String,
    page: JsonArray,
    pages: usize,
    search: Option<JsonArray>,
    search_cost: usize,
    shards: Vec<String>,
    seen: usize,
    last: Option<String>,
    /// JSON bytes of every part written so far.
    bytes: usize,
}

impl Writer {
    /// A writer for `head` (its `tools` empty; its `layout` from [`Layout::new`], the rest
    /// filled in here).
    pub fn new(mut head: Manifest) -> Result<Writer, TooLarge> {
        head.tools.clear();
        head.format = manifest::FORMAT;
        let Some(layout) = head.layout.as_mut().filter(|l| l.id_ok()) else {
            return Err(TooLarge("the manifest has no layout".into()));
        };
        if layout.tools > MAX_TOOLS {
            return Err(TooLarge(format!(
                "The server enables {} tools; a server publishes at most {MAX_TOOLS}. Split the API across servers.",
                layout.tools
            )));
        }
        let shard_count = layout.tools.div_ceil(SHARD_TOOLS);
        layout.search = head.discovery || head.skills.is_some();
        let (meta, lists_tools) = meta_of(&head);
        let mut w = Writer {
            meta_len: meta.len(),
            lists_tools,
            shard: JsonArray::default(),
            shard_cost: 0,
            shard_first: String::new(),
            page: JsonArray::default(),
            pages: 0,
            search: head.layout.as_ref().is_some_and(|l| l.search).then(JsonArray::default),
            search_cost: 0,
            shards: Vec::with_capacity(shard_count),
            seen: 0,
            last: None,
            bytes: 0,
            head,
        };
        for entry in &meta {
            w.page.push(entry);
        }
        Ok(w)
    }

    fn key(&self, part: &str) -> String {
        self.head.part_key(part).unwrap_or_default()
    }

    fn emit(&mut self, part: &str, bytes: Vec<u8>, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), TooLarge> {
        if bytes.len() > MAX_PART_BYTES {
            return Err(TooLarge(format!(
                "Part {part} of the manifest takes {} bytes; a part holds at most {MAX_PART_BYTES}. Shorten the largest tools' schemas or descriptions, or disable them.",
                bytes.len()
            )));
        }
        self.bytes += bytes.len();
        out.push((self.key(part), bytes));
        Ok(())
    }

    fn flush_page(&mut self, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), TooLarge> {
        let page = self.page.take();
        let part = page_part(self.pages);
        self.pages += 1;
        self.emit(&part, page, out)
    }

    fn flush_shard(&mut self, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), TooLarge> {
        let bytes = self.shard.take();
        let part = shard_part(self.shards.len());
        if self.shards.len() >= MAX_SHARDS {
            return Err(TooLarge(format!(
                "The tools need more than {MAX_SHARDS} shards of the manifest; shorten the largest tools' schemas or enable fewer tools."
            )));
        }
        self.shards.push(std::mem::take(&mut self.shard_first));
        self.shard_cost = 0;
        self.emit(&part, bytes, out)
    }

    /// Adds a tool to the open shard, closing it first when the tool would take it past
    /// [`SHARD_TOOLS`] or [`SHARD_TARGET_COST`].
    fn add_to_shard(&mut self, tool: &ToolDef, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), TooLarge> {
        let json = serde_json::to_vec(tool).map_err(|e| TooLarge(format!("a tool does not serialise: {e}")))?;
        let cost = manifest::tools_cost(std::slice::from_ref(tool), json.len());
        if cost > MAX_SHARD_COST {
            return Err(TooLarge(format!(
                "Tool {} takes {} MB in memory; a tool may take at most {} MB. Shorten its schemas or disable it.",
                tool.name,
                cost >> 20,
                MAX_SHARD_COST >> 20
            )));
        }
        if self.shard.len > 0 && (self.shard.len == SHARD_TOOLS || self.shard_cost + cost > SHARD_TARGET_COST) {
            self.flush_shard(out)?;
        }
        if self.shard.len == 0 {
            self.shard_first = tool.name.clone();
        }
        self.shard.push_raw(&json);
        self.shard_cost += cost;
        Ok(())
    }

    /// Adds the next tool (names strictly increasing); returns the parts it completed.
    pub fn push(&mut self, tool: ToolDef) -> Result<Vec<(String, Vec<u8>)>, TooLarge> {
        let expected = self.head.layout.as_ref().map_or(0, |l| l.tools);
        if self.seen >= expected {
            return Err(TooLarge(format!("more tools than the {expected} counted")));
        }
        if self.last.as_deref().is_some_and(|last| last >= tool.name.as_str()) {
            return Err(TooLarge(format!("tool {:?} is out of name order or repeated", tool.name)));
        }
        self.seen += 1;
        self.last = Some(tool.name.clone());
        let mut out = Vec::new();
        if let Some(search) = &mut self.search {
            let entry = SearchEntry::of(&tool);
            search.push(&entry);
            self.search_cost += super::discovery::SearchIndex::entry_cost(&entry);
            if search.buf.len() > MAX_PART_BYTES || self.search_cost > MAX_SEARCH_COST {
                return Err(TooLarge(format!(
                    "The tools' search texts exceed {} MB; shorten the descriptions or enable fewer tools.",
                    MAX_PART_BYTES.min(MAX_SEARCH_COST) >> 20
                )));
            }
        }
        if self.lists_tools {
            self.page.push(&tool.to_mcp_json());
            if self.page.len == SHARD_TOOLS {
                self.flush_page(&mut out)?;
            }
        }
        self.add_to_shard(&tool, &mut out)?;
        Ok(out)
    }

    /// The last parts and the head (to be written after every part).
    pub fn finish(mut self) -> Result<Finished, TooLarge> {
        let listed = self.meta_len + self.seen;
        let expected = self.head.layout.as_ref().map_or(0, |l| l.tools);
        if self.seen != expected {
            return Err(TooLarge(format!("{} tools were written of the {expected} counted", self.seen)));
        }
        let mut out = Vec::new();
        if self.shard.len > 0 {
            self.flush_shard(&mut out)?;
        }
        if self.lists_tools && (self.page.len > 0 || self.pages == 0) {
            self.flush_page(&mut out)?;
        }
        if let Some(mut search) = self.search.take() {
            self.emit(SEARCH_PART, search.take(), &mut out)?;
        }
        let meta_len = self.meta_len;
        let layout = self.head.layout.as_mut().ok_or_else(|| TooLarge("no layout".into()))?;
        layout.shards = std::mem::take(&mut self.shards);
        layout.pages = if self.lists_tools { self.pages } else { 0 };
        layout.listed = if self.lists_tools { listed } else { 0 };
        debug_assert!(!self.lists_tools || layout.pages == (meta_len + layout.tools).div_ceil(SHARD_TOOLS).max(1));
        let head = serde_json::to_vec(&self.head).map_err(|e| TooLarge(format!("the head does not serialise: {e}")))?;
        if head.len() > MAX_PART_BYTES {
            return Err(TooLarge(format!("The manifest's head takes {} bytes", head.len())));
        }
        self.bytes += head.len();
        Ok(Finished { parts: out, head, bytes: self.bytes })
    }
}

/// What [`Writer::finish`] leaves to write, and the JSON bytes of the whole manifest.
pub struct Finished {
    /// The last parts (`(key, bytes)`), to be written before the head.
    pub parts: Vec<(String, Vec<u8>)>,
    pub head: Vec<u8>,
    /// Every part's bytes and the head's.
    pub bytes: usize,
}

/// A whole manifest (as formats 1 and 2 held it, or as tests build one) as format 3: every
/// part, then the head last (`(key, bytes)`).
pub fn encode(m: &Manifest) -> Result<Vec<(String, Vec<u8>)>, TooLarge> {
    let mut tools = m.tools.clone();
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    let mut head = m.clone();
    head.tools = Vec::new();
    let synced = m.store.iter().flatten().filter_map(|n| m.synced_tool(n).cloned()).collect();
    head.layout = Some(Layout::new(tools.len(), synced).map_err(TooLarge)?);
    let mut w = Writer::new(head)?;
    let mut out = Vec::new();
    for t in tools {
        out.extend(w.push(t)?);
    }
    let done = w.finish()?;
    out.extend(done.parts);
    out.push((manifest::manifest_key(&m.server_id, m.version), done.head));
    Ok(out)
}

/// Calls `f` on every tool of the stored manifest `m` of version `version` of `server_id`, in
/// name order, reading one shard at a time. A head of another server or version, or with more
/// shards than a manifest has, is refused.
pub async fn for_each_tool(
    kv: &impl Kv,
    m: &Manifest,
    server_id: &str,
    version: i64,
    mut f: impl FnMut(&ToolDef),
) -> Result<(), String> {
    if m.server_id != server_id || m.version != version {
        return Err("the manifest belongs to another server or version".into());
    }
    let Some(l) = &m.layout else {
        m.tools.iter().for_each(f);
        return Ok(());
    };
    if l.shards.len() > MAX_SHARDS || !l.id_ok() {
        return Err("the layout does not fit a manifest".into());
    }
    for k in 0..l.shards.len() {
        let key = m.part_key(&shard_part(k)).unwrap_or_default();
        let bytes = kv.get(&key).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("{key} is missing"))?;
        let tools: Vec<ToolDef> = serde_json::from_slice(&bytes).map_err(|e| format!("{key}: {e}"))?;
        tools.iter().for_each(&mut f);
    }
    Ok(())
}

/// The KV keys of the parts of the manifest version whose head is `head` (none for formats 1
/// and 2, or a head that does not parse). Only the layout is read; the keys are made from the
/// given server and version and the layout's checked id.
pub fn part_keys(head: &[u8], server_id: &str, version: i64) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        layout: Option<Layout>,
    }
    let Some(l) = serde_json::from_slice::<Head>(head).ok().and_then(|h| h.layout).filter(Layout::id_ok) else {
        return Vec::new();
    };
    let shards = l.shards.len().min(MAX_SHARDS);
    let pages = l.pages.min(MAX_SHARDS + 1);
    let names = (0..shards).map(shard_part).chain((0..pages).map(page_part));
    let names = names.chain(l.search.then(|| SEARCH_PART.to_string()));
    names.map(|p| manifest::part_key(server_id, version, &l.id, &p)).collect()
}

/// The meta-tools `tools/list` shows first, and whether the tools follow them.
pub(crate) fn meta_of(manifest: &Manifest) -> (Vec<Value>, bool) {
    let count = manifest.tool_count();
    let (mut meta, lists_tools) = if manifest.discovery {
        (super::discovery::discovery_tools(count), false)
    } else if let Some(s) = &manifest.skills {
        (super::skills::meta_tools(s, count), s.mode == manifest::SkillsMode::Alongside)
    } else {
        (Vec::new(), true)
    };
    // Store tools (issue 16) are listed with the meta-tools.
    meta.extend(super::store::listed(manifest));
    (meta, lists_tools)
}

/// A stored page: JSON validated once when read, served as its bytes.
#[derive(Debug)]
pub struct RawPage(Box<serde_json::value::RawValue>);

impl RawPage {
    /// A page read from KV: it must be a JSON array (a corrupt value is refused, not served).
    pub(crate) fn parse(bytes: Vec<u8>) -> Result<RawPage, String> {
        let text = String::from_utf8(bytes).map_err(|_| "page is not UTF-8".to_string())?;
        if !text.trim_start().starts_with('[') {
            return Err("page is not a JSON array".into());
        }
        serde_json::value::RawValue::from_string(text).map(RawPage).map_err(|e| format!("page: {e}"))
    }

    pub fn raw(&self) -> &serde_json::value::RawValue {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.get().len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.get().is_empty()
    }

    /// The page as values (a batch answer, which is built as one JSON value).
    pub fn to_values(&self) -> Vec<Value> {
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }
}

impl PartialEq for RawPage {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(n: usize, discovery: bool) -> Manifest {
        let paths: serde_json::Map<String, Value> = (0..n)
            .map(|i| (format!("/t/{i}"), json!({ "get": { "operationId": format!("t{i:04}"), "responses": { "200": { "description": "ok" } } } })))
            .collect();
        let doc = json!({ "openapi": "3.0.3", "info": { "title": "T", "version": "1" }, "servers": [{ "url": "https://api.example" }], "paths": paths });
        let mut m: Manifest = serde_json::from_value(json!({
            "format": 3, "serverId": "s", "workspaceId": "w", "version": 7, "publishedAt": 0, "name": "T",
            "auth": { "mode": "none", "public": true }, "discovery": discovery, "tools": []
        }))
        .unwrap();
        m.tools = crate::tools::import(doc.to_string().as_bytes()).expect("imports").tools;
        m
    }

    /// What is written is what deleting a version finds: every part key, from the head alone.
    #[test]
    fn the_head_names_every_part_written() {
        for (n, discovery) in [(0, false), (1, false), (100, false), (250, false), (250, true)] {
            let parts = encode(&manifest(n, discovery)).unwrap();
            let (head_key, head) = parts.last().unwrap();
            assert_eq!(head_key, "manifest:s:7");
            let mut written: Vec<&String> = parts[..parts.len() - 1].iter().map(|(k, _)| k).collect();
            let mut named = part_keys(head, "s", 7);
            written.sort();
            named.sort();
            assert_eq!(written, named.iter().collect::<Vec<_>>(), "{n} tools, discovery {discovery}");
            let shards = named.iter().filter(|k| k.rsplit(':').next().is_some_and(|p| p.starts_with('s'))).count();
            assert_eq!(shards, n.div_ceil(SHARD_TOOLS), "{n}");
            // Keys come from the caller's server and version, not from the stored value.
            assert!(part_keys(head, "other", 1).iter().all(|k| k.starts_with("manifest:other:1:")));
            assert!(written.iter().all(|k| k.starts_with("manifest:s:7:") && k.split(':').nth(3).unwrap().len() == 16));
        }
        assert!(part_keys(b"{\"layout\":", "s", 1).is_empty());
    }

    /// The writer takes tools only in strictly increasing name order and exactly as many as
    /// the head counts.
    #[test]
    fn the_writer_refuses_tools_out_of_order_repeated_or_miscounted() {
        let m = manifest(3, false);
        let head = |count: usize| {
            let mut h = m.clone();
            h.tools.clear();
            h.layout = Some(Layout::new(count, vec![]).unwrap());
            h
        };
        let mut w = Writer::new(head(3)).unwrap();
        w.push(m.tools[1].clone()).unwrap();
        assert!(w.push(m.tools[0].clone()).is_err(), "out of order");
        assert!(w.push(m.tools[1].clone()).is_err(), "repeated");
        let mut w = Writer::new(head(2)).unwrap();
        w.push(m.tools[0].clone()).unwrap();
        assert!(w.finish().is_err(), "fewer than counted");
        let mut w = Writer::new(head(1)).unwrap();
        w.push(m.tools[0].clone()).unwrap();
        assert!(w.push(m.tools[1].clone()).is_err(), "more than counted");
        assert!(Writer::new(head(MAX_TOOLS + 1)).is_err(), "too many tools");
    }
}
