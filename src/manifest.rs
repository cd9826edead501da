//! The published manifest of a server: everything the MCP runtime needs to answer
//! `tools/list` and build upstream requests, compiled at publish time and stored in KV.
//!
//! Invariant: a manifest never holds a secret value — only the KV key of the encrypted
//! credential (`credential_ref`) and where it goes. The MCP hot path reads the manifest from
//! isolate memory or KV and never touches D1 or an OpenAPI document.

use serde::{Deserialize, Serialize};

use crate::crypto::{aad_server_credential, Keyring};
use crate::invoke::Credential;
use crate::openapi::ApiKeyLocation;
use crate::store::Kv;
use crate::tools::ToolDef;
use crate::vocab::AuthMode;

/// The format publish writes. 2 is uniformly camelCase, like the tool definitions inside it, and
/// holds every tool; 3 (issue 18) is a head holding the settings and a [`Layout`], with the tools
/// in shards of [`SHARD_TOOLS`] under keys of their own (`crate::mcp::shards`), so a server of
/// 10,000 tools publishes and each request loads only the part it needs.
pub const FORMAT: u32 = 3;

/// The last format that holds every tool in one value (still read; tests write it to check so).
pub const WHOLE_FORMAT: u32 = 2;

/// Tools per shard of a format-3 manifest, and entries per pre-serialised `tools/list` page.
pub const SHARD_TOOLS: usize = 100;

/// Formats the runtime reads. Format 1 (snake_case keys: `server_id`, `credential_ref`...) is
/// read through serde aliases, so a manifest published before format 2 keeps answering until
/// its next publish rewrites it; nothing needs migrating. Format 2 keeps being read beside 3.
pub const READABLE_FORMATS: std::ops::RangeInclusive<u32> = 1..=FORMAT;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// `header`, `query` or `cookie` (anything else does not deserialise: fail closed).
    #[serde(rename = "in")]
    pub location: ApiKeyLocation,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestAuth {
    /// `none`, `api_key`, `bearer` or `oauth`.
    pub mode: AuthMode,
    /// Keyless: no server access key is required (an explicit owner choice).
    pub public: bool,
    /// Where an `api_key` credential goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// KV key of the encrypted credential (`cred:<server id>`), never the value.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "credential_ref")]
    pub credential_ref: Option<String>,
    /// Scopes (OAuth mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The origin (`scheme://host[:port]`) the credential was entered for. The runtime attaches
    /// the credential only to requests for this origin, so a re-imported document or a changed
    /// base URL cannot send it elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "credential_origin")]
    pub credential_origin: Option<String>,
    /// OAuth mode: the upstream provider as the owner configured it (the client secret is the
    /// sealed credential above, never here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<ManifestOAuth>,
}

/// The owner's upstream OAuth app, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestOAuth {
    pub authorize_url: String,
    pub token_url: String,
    pub client_id: String,
    /// The owner's extra authorize parameters (never one FlowCP sets itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorize_params: Vec<(String, String)>,
    /// The provider's issuer when known (OpenID discovery, or set by the owner): a callback
    /// that carries another `iss` (RFC 9207) is refused as a mix-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: u32,
    #[serde(alias = "server_id")]
    pub server_id: String,
    #[serde(alias = "workspace_id")]
    pub workspace_id: String,
    pub version: i64,
    #[serde(alias = "published_at")]
    pub published_at: i64,
    pub name: String,
    pub auth: ManifestAuth,
    /// Expose the discovery toolset (search / describe / call) instead of every tool.
    pub discovery: bool,
    /// The owner's base URL override; `None` uses each tool's servers.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "base_url")]
    pub base_url: Option<String>,
    /// Browser origins allowed to call (besides FlowCP's own); `None` allows any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_origins: Option<Vec<String>>,
    /// Skills (issue 16): `list_skills` and `tool_search` over named bundles of the tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<Skills>,
    /// The argument whose value each call's usage row records as its target (issue 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_target: Option<String>,
    /// Synced tools (issue 16): each user's answers are kept and served by a `*_store_*` tool
    /// (`crate::mcp::store`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<Vec<String>>,
    /// Enabled tools with the owner's curation applied, in a stable order (by name). Empty in
    /// a format-3 head, whose tools are in shards ([`Manifest::layout`]).
    pub tools: Vec<ToolDef>,
    /// Format 3: where the tools are (absent in formats 1 and 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
}

impl Manifest {
    /// KV key of one of this format-3 manifest's parts (`None` for formats 1 and 2).
    pub fn part_key(&self, part: &str) -> Option<String> {
        self.layout.as_ref().map(|l| part_key(&self.server_id, self.version, &l.id, part))
    }

    /// How many tools the server publishes (whatever the format).
    pub fn tool_count(&self) -> usize {
        self.layout.as_ref().map_or(self.tools.len(), |l| l.tools)
    }

    /// The definition of a synced tool (`store`) by name: in a format-3 head they are kept in
    /// the layout, so store tools need no shard.
    pub fn synced_tool(&self, name: &str) -> Option<&ToolDef> {
        let tools = self.layout.as_ref().map_or(&self.tools, |l| &l.synced);
        tools.iter().find(|t| t.name == name)
    }
}

/// Where a format-3 manifest's tools are (`crate::mcp::shards` writes and reads them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layout {
    /// This publish's own id (random): part keys carry it, so two publishes that take the same
    /// version number (KV's latest-version read is eventually consistent) never mix parts, and
    /// the parts of a publish that failed halfway are never read.
    pub id: String,
    /// How many tools there are, in shards of at most [`SHARD_TOOLS`] in name order.
    pub tools: usize,
    /// The first tool name of each shard (sorted): which shard holds a name is a binary search.
    pub shards: Vec<String>,
    /// How many entries the pre-serialised `tools/list` pages hold (meta-tools, then tools),
    /// as written: the stored pages are served whatever a later build's meta-tools would be.
    pub listed: usize,
    /// How many pre-serialised `tools/list` pages there are (0 when `tools/list` shows only
    /// the meta-tools: discovery mode, skills `instead`).
    pub pages: usize,
    /// Whether a search part was written (discovery mode and skills search it).
    pub search: bool,
    /// The definitions of the synced tools (`Manifest::store`, at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synced: Vec<ToolDef>,
}

/// A named bundle of a server's tools (a skill).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// 1 to 64 of `a-z`, `0-9` and `-`, starting with a letter or digit.
    pub name: String,
    pub description: String,
    /// Tool names (as curated), in the order `tool_search` returns them.
    pub tools: Vec<String>,
}

/// How a server with skills lists its tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkillsMode {
    /// `list_skills` and `tool_search` first, then every tool.
    Alongside,
    /// Only `list_skills` and `tool_search`; every tool is still called by name.
    Instead,
}

/// The owner's skills setting of a server: the mode, and the bundles (`null`: one bundle per
/// tag of the enabled tools, made at publish).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillsConfig {
    pub mode: SkillsMode,
    #[serde(default)]
    pub bundles: Option<Vec<Bundle>>,
}

/// The skills a manifest publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skills {
    pub mode: SkillsMode,
    pub bundles: Vec<Bundle>,
}

/// KV key of one manifest version.
pub fn manifest_key(server_id: &str, version: i64) -> String {
    format!("manifest:{server_id}:{version}")
}

impl Layout {
    /// A publish's layout before its tools are written: `tools` counted, the synced tools'
    /// definitions, and a fresh random id (the writer fills in the rest).
    pub fn new(tools: usize, synced: Vec<ToolDef>) -> Result<Layout, String> {
        let id: [u8; 8] = crate::crypto::random_bytes().map_err(|e| e.to_string())?;
        let id = id.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Layout { id, tools, listed: 0, shards: Vec::new(), pages: 0, search: false, synced })
    }

    /// Whether a stored id can be part of a key: 1 to 32 lowercase hex digits.
    pub fn id_ok(&self) -> bool {
        (1..=32).contains(&self.id.len()) && self.id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

/// KV key of one part of a format-3 manifest version written by publish `id`: `s<k>` (tool
/// shard k), `p<k>` (page k of `tools/list`) or `q` (the search texts).
pub fn part_key(server_id: &str, version: i64, id: &str, part: &str) -> String {
    format!("manifest:{server_id}:{version}:{id}:{part}")
}

/// KV key naming the version on the air (absent when the server is not published).
pub fn live_key(server_id: &str) -> String {
    format!("manifest:{server_id}:live")
}

/// KV key of a live server access key (value: `{"server_id","key_id"}`).
pub fn access_key_key(key_hash: &str) -> String {
    format!("akey:{key_hash}")
}

/// KV key of a server's encrypted upstream credential as the owner last set it (the draft:
/// verification uses it, and the next publish copies it).
pub fn credential_key(server_id: &str) -> String {
    format!("cred:{server_id}")
}

/// KV key of the credential copy that manifest `version` uses. Publishing copies the draft
/// credential here, so entering a new credential never changes what (or where) a live manifest
/// sends until the next publish.
pub fn published_credential_key(server_id: &str, version: i64) -> String {
    format!("cred:{server_id}:v{version}")
}

/// KV key of the highest manifest version ever written for a server.
pub fn latest_key(server_id: &str) -> String {
    format!("manifest:{server_id}:latest")
}

/// Opens a server's sealed credential from KV. `Ok(None)`: nothing stored under `key`;
/// `Err`: it is stored but does not open (wrong key, moved envelope, not text) — callers deny.
pub async fn open_credential(
    kv: &impl Kv,
    keyring: &Keyring,
    server_id: &str,
    key: &str,
) -> Result<Option<String>, String> {
    let Some(sealed) = kv.get(key).await.map_err(|e| e.to_string())? else { return Ok(None) };
    let sealed = String::from_utf8(sealed).map_err(|_| "credential envelope is not text".to_string())?;
    let plain = keyring.open(&sealed, &aad_server_credential(server_id)).map_err(|e| e.to_string())?;
    String::from_utf8(plain).map(Some).map_err(|_| "credential is not text".to_string())
}

/// Where a credential goes for an auth mode: `None` when the mode needs a value (or, for
/// `api_key`, a placement) that is missing, or cannot call the API at all (`oauth`).
/// May a credential go in this header? `Authorization` yes (`Authorization: <key>` is common);
/// the headers a document may not set (`crate::tools::names::is_forbidden_header`) no.
pub fn credential_header_allowed(name: &str) -> bool {
    name.trim().eq_ignore_ascii_case("authorization") || !crate::tools::names::is_forbidden_header(name)
}

pub fn place_credential(mode: AuthMode, placement: Option<&Placement>, value: Option<String>) -> Option<Credential> {
    match (mode, value) {
        (AuthMode::None, _) => Some(Credential::None),
        (AuthMode::Bearer, Some(v)) => Some(Credential::Bearer(v)),
        (AuthMode::ApiKey, Some(value)) => {
            let p = placement?;
            let name = p.name.clone();
            Some(match p.location {
                // A header a request may not choose (Host, Cookie, forwarding...) never carries
                // it, whatever a stored placement says (fail closed: the call is denied).
                ApiKeyLocation::Header if !credential_header_allowed(&name) => return None,
                ApiKeyLocation::Header => Credential::Header { name, value },
                ApiKeyLocation::Query => Credential::Query { name, value },
                ApiKeyLocation::Cookie => Credential::Cookie { name, value },
            })
        }
        (AuthMode::Bearer | AuthMode::ApiKey, None) | (AuthMode::Oauth | AuthMode::UserKey, _) => None,
    }
}

/// The memory a parsed manifest takes: its schemas as values (by the engine's import-ledger
/// measure) plus its JSON length, which bounds every string it holds (names, ids, tags, paths,
/// servers, descriptions), plus the name index.
pub fn cost(m: &Manifest, json_len: usize) -> usize {
    let layout = m.layout.as_ref().map_or(0, |l| tools_cost(&l.synced, 0) + l.shards.len() * 48);
    tools_cost(&m.tools, json_len) + layout
}

/// The memory of parsed tool definitions read from `json_len` bytes of JSON (a whole manifest's,
/// or one shard's): their schemas as values, the JSON length and an index entry each.
pub fn tools_cost(tools: &[ToolDef], json_len: usize) -> usize {
    use crate::openapi::ledger::value_size_within;
    let schemas: usize = tools
        .iter()
        .map(|t| {
            value_size_within(&t.input_schema, usize::MAX).unwrap_or(0)
                + t.output_schema.as_ref().and_then(|o| value_size_within(o, usize::MAX)).unwrap_or(0)
        })
        .sum();
    schemas + json_len + tools.len() * 256
}
