//! Servers: configuration, write-only credentials, access keys, verification and publishing.
//!
//! Credentials are sealed (AES-256-GCM, AAD `credential|<server id>`) into KV; the API only ever
//! says whether one is set. Any configuration change (or tool curation of the app) resets the
//! verification state, and later edits stay draft until the next publish: the live manifest in
//! KV changes only on publish / unpublish.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::context::Member;
use super::input::clean_name;
use super::views::{
    CreatedKey, CredentialState, DraftDiff, Items, Published, PublishedManifest, ServerView, TryOutcome, Verified,
    Versions,
};
use super::{Request, Response, Services};
use crate::crypto::{aad_server_credential, random_id, sha256_hex};
use crate::error::{limits, ApiError, ErrorCode};
use crate::invoke::Credential;
use crate::manifest::{self, Manifest, ManifestAuth, Placement};
use crate::mcp::shards;
use crate::net::Http;
use crate::openapi::{ApiKeyLocation, SecuritySchemeKind};
use crate::service::{lifecycle, verify};
use crate::store::apps::{self as apps_store, ToolRow};
use crate::store::servers::{self as store, AccessKey, Server};
use crate::store::{Db, Kv};
use crate::tools::names::is_valid_tool_name;
use crate::tools::ToolDef;
use crate::vocab::{AuthMode, VerificationReport, VerificationState};

const MAX_CREDENTIAL: usize = 8 * 1024;
/// Shorter values cannot be told apart from ordinary text, so they could not be redacted.
const MIN_CREDENTIAL: usize = 8;

pub(crate) async fn load<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
) -> Result<Server, ApiError> {
    store::get(svc.db, &m.workspace_id, id).await?.ok_or_else(ApiError::not_found)
}

pub async fn list<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, m: &Member) -> Result<Response, ApiError> {
    let items = store::list(svc.db, &m.workspace_id).await?.iter().map(|s| ServerView::of(&svc.origin, s)).collect();
    Response::ok(&Items { items })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "CreateServerBody")]
pub struct CreateBody {
    app_id: String,
    /// Defaults to the app's name.
    name: Option<String>,
}

pub async fn create<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
) -> Result<Response, ApiError> {
    // Servers are what goes on the air: owners and admins make them (the documented role model).
    m.require_admin()?;
    let body: CreateBody = req.json(limits::API_JSON)?;
    let app = apps_store::get_app(svc.db, &m.workspace_id, &body.app_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::AppNotFound, "The app does not exist in this workspace."))?;
    let name = clean_name(body.name.as_deref().unwrap_or(&app.name), "server name")?;
    let plan = crate::plans::of_workspace(svc.db, &m.workspace_id, svc.default_plan).await?;
    if let (Some(p), Some(l)) = (plan.plan, plan.limits) {
        let have = crate::store::usage::server_count(svc.db, &m.workspace_id).await?;
        if have >= l.servers {
            return Err(ApiError::new(
                ErrorCode::PlanLimit,
                format!(
                    "The {} plan allows {} servers and this workspace has {have}; delete one or move to a larger plan.",
                    p.as_str(),
                    l.servers
                ),
            ));
        }
    }
    let id = random_id("srv_")?;
    // Default credential placement from the document's first apiKey scheme, if any.
    let config = match default_placement(svc, &app.workspace_id, &app.id).await? {
        Some(p) => json!({ "in": p.location, "name": p.name }),
        None => json!({}),
    };
    store::create(svc.db, &id, &m.workspace_id, &app.id, &name, &config, svc.now_ms).await?;
    let s = load(svc, m, &id).await?;
    Response::created(&ServerView::of(&svc.origin, &s))
}

async fn default_placement<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    ws: &str,
    app_id: &str,
) -> Result<Option<Placement>, ApiError> {
    let imports = apps_store::list_imports(svc.db, ws, app_id).await?;
    let Some(latest) = imports.first() else { return Ok(None) };
    Ok(latest.report.security_schemes.iter().find_map(|s| match &s.kind {
        SecuritySchemeKind::ApiKey { location, name }
            if *location != ApiKeyLocation::Header || manifest::credential_header_allowed(name) =>
        {
            Some(Placement { location: *location, name: name.clone() })
        }
        _ => None,
    }))
}

pub async fn get<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    Response::ok(&ServerView::of(&svc.origin, &load(svc, m, id).await?))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "UpdateServerBody")]
#[schemars(example = serde_json::json!({
    "auth_mode": "api_key", "auth_config": { "in": "header", "name": "X-Api-Key" }, "is_public": false
}))]
pub struct UpdateBody {
    name: Option<String>,
    #[schemars(with = "Option<AuthMode>")]
    auth_mode: Option<String>,
    /// Where the credential goes (`api_key`) or the upstream's OAuth endpoints (`oauth`); never
    /// a secret (those go through `PUT .../credential`).
    #[schemars(with = "Option<crate::store::servers::AuthConfig>")]
    auth_config: Option<Value>,
    is_public: Option<bool>,
    discovery_mode: Option<bool>,
    /// Overrides the document's server URL; `null` clears it.
    #[serde(default, deserialize_with = "super::double_option")]
    base_url: Option<Option<String>>,
    /// The tool verification calls (a safe GET by default); `null` clears it.
    #[serde(default, deserialize_with = "super::double_option")]
    probe_tool: Option<Option<String>>,
    /// Browser origins (`https://app.example`, at most 32) allowed to call the published
    /// server; `null` allows any origin. Takes effect at the next publish.
    #[serde(default, deserialize_with = "super::double_option")]
    allowed_origins: Option<Option<Vec<String>>>,
    /// Skills (`list_skills` and `tool_search`): the mode and the bundles (`bundles: null`: one
    /// per tag, made at publish); `null` turns skills off. Not with discovery mode.
    #[serde(default, deserialize_with = "super::double_option")]
    skills: Option<Option<crate::manifest::SkillsConfig>>,
    /// The argument whose value each call's usage row records as its target (such as
    /// `environment`); `null` records none. Takes effect at the next publish.
    #[serde(default, deserialize_with = "super::double_option")]
    usage_target: Option<Option<String>>,
    /// Synced tools (`user_key` servers, team plan): enabled GET tools whose answers FlowCP keeps
    /// per user, refreshes hourly and serves through `*_store_*` tools; `null`: none.
    #[serde(default, deserialize_with = "super::double_option")]
    store_tools: Option<Option<Vec<String>>>,
}

/// Does the draft's skills setting differ from what is live? Bundles made from tags are
/// compared by mode only (they are made again at publish).
fn skills_differ(draft: Option<&crate::manifest::SkillsConfig>, live: Option<&crate::manifest::Skills>) -> bool {
    match (draft, live) {
        (None, None) => false,
        (Some(d), Some(l)) => d.mode != l.mode || d.bundles.as_ref().is_some_and(|b| *b != l.bundles),
        _ => true,
    }
}

/// Most skills a server may define, and tools per skill.
const MAX_BUNDLES: usize = 64;
const MAX_BUNDLE_TOOLS: usize = 500;

fn bundle_name_ok(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !n.starts_with('-')
}

/// The shape of an owner's skills (names, sizes); that the tools exist is checked at publish.
fn check_skills(k: &crate::manifest::SkillsConfig) -> Result<(), ApiError> {
    let bad = |m: String| Err(ApiError::new(ErrorCode::BadRequest, m));
    let Some(bundles) = &k.bundles else { return Ok(()) };
    if bundles.is_empty() || bundles.len() > MAX_BUNDLES {
        return bad(format!("skills.bundles holds 1 to {MAX_BUNDLES} skills (or null for one per tag)."));
    }
    let mut seen = std::collections::HashSet::new();
    for b in bundles {
        if !bundle_name_ok(&b.name) {
            return bad(format!(
                "skill name {:?}: 1 to 64 of a-z, 0-9 and -, not starting with -.",
                b.name.chars().take(80).collect::<String>()
            ));
        }
        if !seen.insert(b.name.as_str()) {
            return bad(format!("skill {:?} is defined twice.", b.name));
        }
        if b.description.chars().count() > 1024 || b.description.chars().any(|c| c.is_control() && c != '\n') {
            return bad(format!("skill {:?}: the description is at most 1,024 characters of text.", b.name));
        }
        if b.tools.is_empty() || b.tools.len() > MAX_BUNDLE_TOOLS || !b.tools.iter().all(|t| is_valid_tool_name(t)) {
            return bad(format!("skill {:?} lists 1 to {MAX_BUNDLE_TOOLS} tool names.", b.name));
        }
        let distinct: std::collections::HashSet<&String> = b.tools.iter().collect();
        if distinct.len() != b.tools.len() {
            return bad(format!("skill {:?} lists a tool twice.", b.name));
        }
    }
    Ok(())
}

/// The skills a publish writes: the owner's bundles with every tool checked, or one bundle per
/// tag (and `other` for untagged tools) when they defined none.
/// The synced tools a publish puts in the manifest (issue 16): `user_key` servers only, enabled
/// GET tools, a plan that has store tools (the team plan), no name taken twice.
fn store_tools_of(
    s: &Server,
    tools: &[apps_store::ToolHead],
    plan: &crate::plans::Effective,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(names) = &s.store_tools else { return Ok(None) };
    if s.auth_mode != AuthMode::UserKey {
        return Err(ApiError::bad_request(
            "Store tools keep each signed-in user's answers: they need auth_mode user_key (or clear store_tools).",
        ));
    }
    if s.discovery_mode {
        return Err(ApiError::bad_request("Store tools are not offered in discovery mode: turn one of them off."));
    }
    if let (Some(p), Some(l)) = (plan.plan, plan.limits) {
        if !l.store_tools {
            return Err(ApiError::new(
                ErrorCode::PlanLimit,
                format!("Store tools need the team plan; this workspace is on the {} plan.", p.as_str()),
            ));
        }
    }
    let stores: std::collections::HashSet<String> = names.iter().map(|n| crate::mcp::store::store_name(n)).collect();
    if stores.len() != names.len() {
        return Err(ApiError::bad_request("Two synced tools would have the same store tool name: sync fewer."));
    }
    for name in names {
        match tools.iter().find(|t| &t.name == name) {
            Some(t) if t.method == crate::tools::HttpMethod::Get.as_str() => {}
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "{name} is not a list or get operation (GET): only those can be synced."
                )))
            }
            None => {
                return Err(ApiError::bad_request(format!("store_tools names {name}, which is not an enabled tool.")))
            }
        }
        let store = crate::mcp::store::store_name(name);
        if tools.iter().any(|t| t.name == store)
            || [crate::mcp::skills::LIST_SKILLS, crate::mcp::skills::TOOL_SEARCH].contains(&store.as_str())
        {
            return Err(ApiError::bad_request(format!(
                "The store tool of {name} would be named {store}, which a tool already has."
            )));
        }
    }
    Ok(Some(names.clone()))
}

fn resolve_skills(
    k: &crate::manifest::SkillsConfig,
    tools: &[apps_store::ToolHead],
) -> Result<crate::manifest::Skills, ApiError> {
    use crate::manifest::{Bundle, Skills};
    let bad = |m: String| Err(ApiError::new(ErrorCode::BadRequest, m));
    if let Some(t) = tools.iter().find(|t| crate::mcp::skills::META_TOOLS.contains(&t.name.as_str())) {
        return bad(format!(
            "A tool is named {:?}, a name skills keep for themselves: rename it or turn skills off.",
            t.name
        ));
    }
    let names: std::collections::HashSet<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    let bundles = match &k.bundles {
        Some(b) => {
            for bundle in b {
                let unknown: Vec<&str> =
                    bundle.tools.iter().map(String::as_str).filter(|t| !names.contains(t)).take(5).collect();
                if !unknown.is_empty() {
                    return bad(format!(
                        "Skill {:?} names tools that are not enabled on this server: {}.",
                        bundle.name,
                        unknown.join(", ")
                    ));
                }
            }
            b.clone()
        }
        None => {
            let mut by_tag: std::collections::BTreeMap<String, (String, Vec<String>)> = Default::default();
            for t in tools {
                let tags: Vec<&str> =
                    if t.tags.is_empty() { vec!["other"] } else { t.tags.iter().map(String::as_str).collect() };
                for tag in tags {
                    let mut slug: String = tag
                        .to_lowercase()
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                        .collect::<String>()
                        .trim_matches('-')
                        .chars()
                        .take(64)
                        .collect();
                    if slug.is_empty() {
                        slug = "other".into();
                    }
                    let entry = by_tag.entry(slug).or_insert_with(|| (tag.to_string(), Vec::new()));
                    // Tools are unique and sorted by name; a skill made from a tag keeps the
                    // first MAX_BUNDLE_TOOLS (the rest are still found by keywords).
                    if entry.1.len() < MAX_BUNDLE_TOOLS && entry.1.last() != Some(&t.name) {
                        entry.1.push(t.name.clone());
                    }
                }
            }
            if by_tag.len() > MAX_BUNDLES {
                return bad(format!(
                    "The tools have {} tags, more than {MAX_BUNDLES} skills: define the skills yourself.",
                    by_tag.len()
                ));
            }
            by_tag
                .into_iter()
                .map(|(name, (tag, tools))| Bundle { description: format!("Operations tagged {tag}."), name, tools })
                .collect()
        }
    };
    Ok(Skills { mode: k.mode, bundles })
}

/// Origins one server may list.
const MAX_ALLOWED_ORIGINS: usize = 32;

/// `scheme://host[:port]`, normalised (lower case, default port dropped); nothing else.
fn clean_origins(list: Vec<String>) -> Result<Vec<String>, ApiError> {
    let bad = |o: &str| {
        let o: String = o.chars().take(80).collect();
        ApiError::new(
            ErrorCode::InvalidOrigin,
            format!("allowed_origins holds {o:?}; each entry must be an origin such as https://app.example (scheme, host and optional port, no path)."),
        )
    };
    if list.len() > MAX_ALLOWED_ORIGINS {
        return Err(ApiError::new(
            ErrorCode::InvalidOrigin,
            format!("allowed_origins may hold at most {MAX_ALLOWED_ORIGINS} origins; use null to allow any."),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for o in &list {
        let u = url::Url::parse(o.trim()).map_err(|_| bad(o))?;
        let plain = u.username().is_empty() && u.password().is_none() && u.query().is_none() && u.fragment().is_none();
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() || !plain || !matches!(u.path(), "" | "/")
        {
            return Err(bad(o));
        }
        let origin = u.origin().ascii_serialization();
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    Ok(out)
}

/// Every field `auth_config` may hold (see `store::servers::AuthConfig`); `credential_origin` is
/// written by FlowCP only.
const AUTH_CONFIG_FIELDS: &[&str] = &[
    "in",
    "name",
    "scopes",
    "provider",
    "tenant",
    "discovery_url",
    "issuer",
    "authorize_url",
    "token_url",
    "client_id",
    "authorize_params",
    "credential_origin",
];

fn validate_auth_config(mode: AuthMode, cfg: &Value) -> Result<(), ApiError> {
    let bad = |m: &str| Err(ApiError::new(ErrorCode::InvalidAuthConfig, m.to_string()));
    let obj = match cfg {
        Value::Object(o) => o,
        _ => return bad("auth_config must be an object."),
    };
    let str_field = |k: &str| obj.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    match mode {
        AuthMode::ApiKey => {
            if let Some(loc) = obj.get("in") {
                if !matches!(loc.as_str(), Some("header" | "query" | "cookie")) {
                    return bad("auth_config.in must be header, query or cookie.");
                }
            }
            if let Some(name) = obj.get("name") {
                let ok = name
                    .as_str()
                    .is_some_and(|n| (1..=128).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_graphic()));
                if !ok {
                    return bad("auth_config.name must be a header, query or cookie name.");
                }
                let in_header = obj.get("in").and_then(Value::as_str).unwrap_or("header") == "header";
                if in_header && !name.as_str().is_some_and(manifest::credential_header_allowed) {
                    return bad(
                        "auth_config.name is a header a request may not choose (Host, Cookie, forwarding headers...).",
                    );
                }
            }
        }
        AuthMode::Oauth | AuthMode::UserKey => {
            crate::oauth::providers::authorize_params(cfg)
                .map_err(|e| ApiError::new(ErrorCode::InvalidAuthConfig, e))?;
            for k in ["authorize_url", "token_url", "discovery_url", "issuer"] {
                if let Some(u) = str_field(k) {
                    if url::Url::parse(u).is_err() {
                        return bad("OAuth URLs must be absolute URLs.");
                    }
                }
            }
        }
        AuthMode::None | AuthMode::Bearer => {}
    }
    let text_ok = |k: &str, max: usize| match obj.get(k) {
        None | Some(Value::Null) => true,
        Some(Value::String(v)) => v.len() <= max && !v.chars().any(char::is_control),
        Some(_) => false,
    };
    let texts =
        [("client_id", 256), ("authorize_url", 2048), ("token_url", 2048), ("discovery_url", 2048), ("issuer", 2048)];
    if !texts.iter().all(|(k, max)| text_ok(k, *max)) {
        return bad("auth_config.client_id, authorize_url, token_url, discovery_url and issuer must be short texts.");
    }
    let scopes_ok = match obj.get("scopes") {
        None | Some(Value::Null) => true,
        // RFC 6749 scope tokens (no `"` or `\`: they go into a quoted challenge), 2 KB in all;
        // `mcp:` is FlowCP's server scope and cannot be an upstream scope.
        Some(Value::Array(items)) => {
            items.len() <= 64
                && items.iter().filter_map(Value::as_str).map(str::len).sum::<usize>() <= 2_048
                && items.iter().all(|v| {
                    v.as_str().is_some_and(|s| {
                        (1..=256).contains(&s.len())
                            && !s.starts_with("mcp:")
                            && s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
                    })
                })
        }
        Some(_) => false,
    };
    if !scopes_ok {
        return bad(
            "auth_config.scopes must be a list of up to 64 scope names (2 KB in all, none starting with mcp:).",
        );
    }
    // An allow-list, not a name filter: a key that is not a known field of some mode could be a
    // secret under any name (`api_key`, `password`, `access_token`...), and auth_config is shown
    // to every member and exported.
    if let Some(k) = obj.keys().find(|k| !AUTH_CONFIG_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::new(
            ErrorCode::InvalidAuthConfig,
            format!(
                "auth_config has no field {k:?} (known: {}); secrets go through PUT .../credential, never into auth_config.",
                AUTH_CONFIG_FIELDS.join(", ")
            ),
        ));
    }
    Ok(())
}

pub async fn update<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let body: UpdateBody = req.json(limits::API_JSON)?;
    let mut s = load(svc, m, id).await?;
    if let Some(n) = &body.name {
        s.name = clean_name(n, "server name")?;
    }
    let token_url = |c: &Value| c.get("token_url").and_then(Value::as_str).map(str::trim).map(str::to_string);
    let (old_mode, old_token_url) = (s.auth_mode, token_url(&s.auth_config));
    if let Some(mode) = &body.auth_mode {
        s.auth_mode = AuthMode::parse(mode).ok_or_else(|| {
            ApiError::new(ErrorCode::InvalidAuthMode, "auth_mode must be none, api_key, bearer, oauth or user_key.")
        })?;
    }
    if let Some(mut cfg) = body.auth_config {
        if s.auth_mode.signs_in_users() {
            resolve_provider(svc, &mut cfg).await?;
        }
        // The credential's origin is recorded by PUT .../credential only, never by a client.
        if let (Value::Object(new), Some(origin)) = (&mut cfg, credential_origin_of(&s)) {
            new.insert("credential_origin".into(), json!(origin));
        } else if let Value::Object(new) = &mut cfg {
            new.remove("credential_origin");
        }
        s.auth_config = cfg;
    }
    validate_auth_config(s.auth_mode, &s.auth_config)?;
    // The OAuth client secret goes to the token URL, an API key or token to the API: entering
    // or leaving OAuth mode, or a new token URL, needs the secret entered again (an admin cannot
    // send the stored, write-only secret to a host of their choosing).
    let oauth_involved = old_mode.signs_in_users() || s.auth_mode.signs_in_users();
    if s.credential_key.is_some()
        && oauth_involved
        && (old_mode != s.auth_mode || old_token_url != token_url(&s.auth_config))
    {
        if s.published_version.is_none() {
            svc.kv.delete(&manifest::credential_key(&s.id)).await?;
        }
        s.credential_key = None;
        if let Value::Object(cfg) = &mut s.auth_config {
            cfg.remove("credential_origin");
        }
    }
    if let Some(p) = body.is_public {
        s.is_public = p;
    }
    if let Some(d) = body.discovery_mode {
        s.discovery_mode = d;
    }
    if let Some(b) = body.base_url {
        if let Some(u) = &b {
            let parsed = url::Url::parse(u)
                .map_err(|_| ApiError::new(ErrorCode::InvalidBaseUrl, "base_url must be an absolute http(s) URL."))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ApiError::new(ErrorCode::InvalidBaseUrl, "base_url must be an absolute http(s) URL."));
            }
        }
        s.base_url_override = b;
    }
    if let Some(p) = body.probe_tool {
        if let Some(name) = &p {
            if !is_valid_tool_name(name) {
                return Err(ApiError::new(ErrorCode::InvalidToolName, "probe_tool must be a tool name."));
            }
        }
        s.probe_tool = p;
    }
    if let Some(o) = body.allowed_origins {
        s.allowed_origins = o.map(clean_origins).transpose()?;
    }
    if let Some(k) = body.skills {
        if let Some(k) = &k {
            check_skills(k)?;
        }
        s.skills = k;
    }
    if let Some(t) = body.usage_target {
        if let Some(name) = &t {
            let ok = (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(ApiError::bad_request(
                    "usage_target must be an argument name (1 to 128 visible characters).",
                ));
            }
        }
        s.usage_target = t;
    }
    if let Some(t) = body.store_tools {
        if let Some(names) = &t {
            if names.len() > crate::mcp::store::MAX_SYNCED || names.iter().any(|n| !is_valid_tool_name(n)) {
                return Err(ApiError::bad_request(format!(
                    "store_tools must be at most {} tool names.",
                    crate::mcp::store::MAX_SYNCED
                )));
            }
        }
        s.store_tools = t.filter(|n| !n.is_empty());
    }
    if s.skills.is_some() && s.discovery_mode {
        return Err(ApiError::bad_request(
            "Skills and discovery mode are two ways of not listing every tool: turn one of them off.",
        ));
    }
    store::save_config(svc.db, &s, svc.now_ms).await?;
    get(svc, m, id).await
}

/// An OAuth provider preset's endpoints, or a generic OpenID Connect provider's from its
/// discovery document (fetched now, SSRF-checked, 64 KB, 10 s).
async fn resolve_provider<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, cfg: &mut Value) -> Result<(), ApiError> {
    use crate::oauth::providers::{apply_discovery, apply_preset, Next};
    let bad = |m: String| ApiError::new(ErrorCode::InvalidAuthConfig, m);
    let Value::Object(obj) = cfg else { return Ok(()) };
    let Next::Discover(url) = apply_preset(obj).map_err(bad)? else { return Ok(()) };
    let checked = crate::net::check_url(&url, svc.fetch_policy)
        .map_err(|b| bad(format!("auth_config.discovery_url is not allowed: {}", b.0)))?;
    let req = crate::net::HttpRequest {
        method: "GET".into(),
        url: checked.to_string(),
        headers: vec![("accept".into(), "application/json".into())],
        body: None,
        timeout_ms: 10_000,
    };
    let resp = svc
        .http
        .send(&req, 64 * 1024)
        .await
        .map_err(|e| bad(format!("the discovery document could not be fetched: {e}")))?;
    if resp.status != 200 || resp.truncated {
        return Err(bad(format!("the discovery document answered HTTP {} (or was over 64 KB)", resp.status)));
    }
    apply_discovery(obj, &url, &resp.body).map_err(bad)
}

pub async fn delete<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let s = load(svc, m, id).await?;
    let seen = lifecycle::delete_all(svc.db, svc.kv, &s).await?;
    store::delete(svc.db, &m.workspace_id, id).await?;
    // A publish that raced the deletion may have staged (and pointed to) a version after
    // `delete_all` read the highest one: it goes now that no row can record another.
    lifecycle::sweep_after_delete(svc.kv, &s, seen).await;
    Ok(Response::no_content())
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialBody {
    /// The API key or token, 8 to 8192 characters; write-only.
    value: String,
    /// The origin (`https://host[:port]`) this credential may be sent to. Required unless the
    /// server has a `base_url` (set by an admin): the origin the imported document names must
    /// be confirmed, since any member can import a document.
    origin: Option<String>,
}

pub async fn put_credential<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let body: CredentialBody = req.json(limits::API_JSON)?;
    let mut s = load(svc, m, id).await?;
    let value = body.value.trim();
    if value.len() < MIN_CREDENTIAL || value.len() > MAX_CREDENTIAL || value.chars().any(|c| c.is_control()) {
        return Err(ApiError::new(
            ErrorCode::InvalidCredential,
            format!(
                "The credential must be {MIN_CREDENTIAL} to {MAX_CREDENTIAL} characters without control characters."
            ),
        ));
    }
    // Bind the credential to the API's origin as it is now: it is never sent anywhere else. An
    // admin chose `base_url`; an origin read from the documents (which any member may import)
    // must be confirmed by the admin who enters the credential.
    let origin = api_origin(svc, &s).await?;
    if s.base_url_override.is_none() && body.origin.as_deref().and_then(origin_of).as_deref() != Some(origin.as_str()) {
        return Err(ApiError::new(
            ErrorCode::OriginUnconfirmed,
            format!(
                "The imported document sends this server's requests to {origin}. Confirm it by sending \"origin\": \"{origin}\" with the credential, or set base_url first."
            ),
        ));
    }
    let sealed = svc.secrets.keyring.seal(value.as_bytes(), &aad_server_credential(&s.id))?;
    let key = manifest::credential_key(&s.id);
    svc.kv.put(&key, sealed.as_bytes(), None).await?;
    s.credential_key = Some(key);
    if let Value::Object(cfg) = &mut s.auth_config {
        cfg.insert("credential_origin".into(), json!(origin));
    }
    store::save_config(svc.db, &s, svc.now_ms).await?;
    Response::ok(&CredentialState { credential_set: true, credential_origin: Some(origin) })
}

pub async fn delete_credential<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let mut s = load(svc, m, id).await?;
    // A published manifest may still reference it: then the KV value stays until the next
    // publish (which deletes it) or unpublish, so the live server does not break mid-flight.
    // Not on the air: it is deleted now.
    if s.published_version.is_none() {
        svc.kv.delete(&manifest::credential_key(&s.id)).await?;
    }
    s.credential_key = None;
    if let Value::Object(cfg) = &mut s.auth_config {
        cfg.remove("credential_origin");
    }
    store::save_config(svc.db, &s, svc.now_ms).await?;
    Response::ok(&CredentialState { credential_set: false, credential_origin: None })
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    name: Option<String>,
}

pub async fn create_key<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    m.require_verified()?;
    let body: CreateKeyBody = if req.body.is_empty() { CreateKeyBody::default() } else { req.json(limits::API_JSON)? };
    let s = load(svc, m, id).await?;
    let name = body.name.as_deref().map(|n| clean_name(n, "key name")).transpose()?;
    let secret = random_id("fcp_sk_")?;
    let key = AccessKey {
        id: random_id("key_")?,
        name,
        prefix: secret.chars().take(12).collect(),
        created_at: svc.now_ms,
        last_used_at: None,
        revoked_at: None,
        created_by: Some(m.user_id.clone()),
        key_hash: sha256_hex(secret.as_bytes()),
    };
    store::create_key(svc.db, &m.workspace_id, &s.id, &key).await?;
    let mirror = json!({ "server_id": s.id, "key_id": key.id, "workspace_id": m.workspace_id });
    let mirror_key = manifest::access_key_key(&key.key_hash);
    if let Err(e) = svc.kv.put(&mirror_key, mirror.to_string().as_bytes(), None).await {
        // The key's secret is never shown, so it never works: neither its row nor (if the write
        // went through after all) its mirror stays (best effort both).
        let _ = svc.kv.delete(&mirror_key).await;
        let _ = store::delete_key(svc.db, &m.workspace_id, &key.id).await;
        return Err(e.into());
    }
    // Its creator removed, or its server deleted, while this ran: the departure's own sweep may
    // have missed this mirror, so it goes here (its secret is never shown).
    if !store::key_admitted(svc.db, &m.workspace_id, &key.id).await? {
        svc.kv.delete(&mirror_key).await?;
        let _ = store::revoke_key(svc.db, &m.workspace_id, &key.id, svc.now_ms).await;
        return Err(ApiError::not_found());
    }
    Response::created(&CreatedKey { info: key, key: secret, note: "Copy this key now: it is shown only once.".into() })
}

pub async fn list_keys<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    let s = load(svc, m, id).await?;
    Response::ok(&Items { items: store::list_keys(svc.db, &m.workspace_id, &s.id).await? })
}

pub async fn revoke_key<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
    key_id: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let s = load(svc, m, id).await?;
    let hash = store::key_hash(svc.db, &m.workspace_id, &s.id, key_id).await?.ok_or_else(ApiError::not_found)?;
    // The mirror the MCP hot path admits keys by goes first: if the row's update then fails, the
    // key is already refused and still listed as live, and sending the request again finishes.
    // (In the other order a failed mirror delete left a key that works but shows as revoked,
    // and a second revoke found nothing to do.)
    svc.kv.delete(&manifest::access_key_key(&hash)).await?;
    store::revoke_key(svc.db, &m.workspace_id, key_id, svc.now_ms).await?;
    Ok(Response::no_content())
}

/// `GET .../connections`: the end users' OAuth connections to this server, newest first, as
/// metadata only (the connection hash identifies one; no token exists to show).
pub async fn list_connections<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    let s = load(svc, m, id).await?;
    let rows = crate::store::connections::list_for_server(svc.db, &m.workspace_id, &s.id).await?;
    Response::ok(&Items { items: rows })
}

/// `DELETE .../connections/<hash>` (admins): refresh stops at once, access within the runtime's
/// bound (docs/oauth.md).
pub async fn revoke_connection<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
    hash: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let s = load(svc, m, id).await?;
    let conn = crate::store::connections::get_by_hash(svc.db, &m.workspace_id, &s.id, hash)
        .await?
        .ok_or_else(ApiError::not_found)?;
    crate::oauth::grant::revoke(svc.db, svc.kv, &conn.id, svc.now_ms).await?;
    Ok(Response::no_content())
}

/// `GET .../key-users`: the end users of a `user_key` server (hashes, status, times; at most
/// 1,000, oldest first).
pub async fn list_key_users<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    let s = load(svc, m, id).await?;
    let rows = crate::store::key_users::list_for_server(svc.db, &m.workspace_id, &s.id).await?;
    let counts: std::collections::HashMap<String, i64> =
        crate::store::audit::counts_by_connection(svc.db, &s.id, svc.now_ms - 30 * 86_400_000)
            .await?
            .into_iter()
            .collect();
    let items = rows
        .into_iter()
        .map(|u| KeyUserUsage { calls_30d: counts.get(&u.user_hash).copied().unwrap_or(0), user: u })
        .collect();
    Response::ok(&Items { items })
}

/// An end user of a `user_key` server with their calls of the last 30 days.
#[derive(serde::Serialize, JsonSchema)]
pub struct KeyUserUsage {
    #[serde(flatten)]
    pub user: crate::store::key_users::KeyUser,
    /// Their calls in the last 30 days (within the workspace's retention).
    pub calls_30d: i64,
}

/// `DELETE .../key-users/<hash>` (admins): the user's tokens are deleted and every key of theirs
/// ends (at once here, within the isolate cache's 10 s elsewhere); they may sign in again.
pub async fn revoke_key_user<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
    hash: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let s = load(svc, m, id).await?;
    let u = crate::store::key_users::by_hash(svc.db, &m.workspace_id, &s.id, hash)
        .await?
        .ok_or_else(ApiError::not_found)?;
    crate::store::key_users::revoke(svc.db, &s.id, &u.user_id).await?;
    crate::oauth::keys::forget(&s.id, &u.user_id);
    Ok(Response::no_content())
}

/// Most enabled tools a publish reads the names of: one more than a manifest holds, so a
/// server over it is refused by the writer with its reason.
const MAX_SERVER_TOOLS: i64 = shards::MAX_TOOLS as i64 + 1;

/// Enabled tools read per batch: at most 100, and 4 MB of definitions (at least one tool).
const CURATED_BATCH: u32 = 100;
const CURATED_BATCH_BYTES: usize = 4 << 20;

/// The enabled tools of a server's app with curation applied, in name order, read a batch at a
/// time (issue 18): 10,000 definitions would not fit a Worker parsed, so no caller holds them
/// all; verification summarises them, publish writes them to shards, the draft diff digests them.
struct Curated {
    after: Option<(String, String)>,
}

impl Curated {
    fn new() -> Self {
        Curated { after: None }
    }

    /// The next batch (`None` after the last).
    async fn next<D: Db, K: Kv, H: Http>(
        &mut self,
        svc: &Services<'_, D, K, H>,
        s: &Server,
    ) -> Result<Option<Vec<ToolDef>>, ApiError> {
        let rows = apps_store::enabled_tools_after(
            svc.db,
            &s.workspace_id,
            &s.app_id,
            self.after.as_ref(),
            CURATED_BATCH,
            CURATED_BATCH_BYTES,
        )
        .await?;
        // A batch cut by bytes is not the last: only an empty one is.
        self.after = rows.last().map(|r| (r.name.clone(), r.id.clone()));
        if rows.is_empty() {
            return Ok(None);
        }
        rows.iter().map(curated_def).collect::<Result<Vec<_>, _>>().map(Some)
    }
}

/// A stored tool with the owner's curation applied (name, description).
fn curated_def(r: &ToolRow) -> Result<ToolDef, ApiError> {
    let mut def: ToolDef = serde_json::from_str(&r.def_json)
        .map_err(|_| ApiError::internal(format!("tool {} has a corrupt definition", r.id)))?;
    def.name = r.name.clone();
    if let Some(d) = &r.description {
        def.description = d.clone();
    }
    Ok(def)
}

/// What verification and the credential's origin need of the enabled tools, read a batch at a time.
async fn curated_summary<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    s: &Server,
) -> Result<verify::Summary, ApiError> {
    let mut summary = verify::Summary::new(s.probe_tool.as_deref());
    let mut tools = Curated::new();
    while let Some(batch) = tools.next(svc, s).await? {
        batch.iter().for_each(|t| summary.add(t));
    }
    Ok(summary)
}

async fn open_credential<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    s: &Server,
) -> Result<Option<String>, ApiError> {
    let Some(key) = &s.credential_key else { return Ok(None) };
    manifest::open_credential(svc.kv, &svc.secrets.keyring, &s.id, key)
        .await
        .map_err(|e| ApiError::internal(format!("credential of {}: {e}", s.id)))
}

/// The origin the server's credential is bound to (recorded when it was set).
/// The upstream OAuth app of an `oauth` server, when its URLs and client id are set.
fn oauth_of(s: &Server) -> Option<manifest::ManifestOAuth> {
    let field = |k: &str| s.auth_config.get(k).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
    Some(manifest::ManifestOAuth {
        authorize_url: field("authorize_url")?.to_string(),
        token_url: field("token_url")?.to_string(),
        client_id: field("client_id")?.to_string(),
        authorize_params: crate::oauth::providers::authorize_params(&s.auth_config).unwrap_or_default(),
        issuer: field("issuer").map(str::to_string),
    })
}

fn credential_origin_of(s: &Server) -> Option<String> {
    s.auth_config.get("credential_origin").and_then(Value::as_str).map(str::to_string)
}

pub use crate::service::verify::origin_of;

/// Where requests of this server go: the base URL override, else the servers of its enabled
/// tools, which must then all share one origin.
async fn api_origin<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, s: &Server) -> Result<String, ApiError> {
    if let Some(b) = &s.base_url_override {
        return origin_of(b)
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidBaseUrl, "base_url must be an absolute URL."));
    }
    let summary = curated_summary(svc, s).await?;
    let mut origins: Vec<String> = summary.servers.iter().filter_map(|u| origin_of(u)).collect();
    origins.sort();
    origins.dedup();
    match origins.as_slice() {
        [one] => Ok(one.clone()),
        [] => {
            Err(ApiError::new(ErrorCode::NoApiOrigin, "The document names no absolute server URL; set base_url first."))
        }
        _ => Err(ApiError::new(
            ErrorCode::SeveralApiOrigins,
            "The tools call more than one host; set base_url so the credential is bound to one.",
        )),
    }
}

fn placement_of(s: &Server) -> Option<Placement> {
    let loc = s.auth_config.get("in").and_then(Value::as_str)?;
    let name = s.auth_config.get("name").and_then(Value::as_str)?;
    Some(Placement { location: serde_json::from_value(json!(loc)).ok()?, name: name.to_string() })
}

pub async fn verify<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    // Verification opens the credential and sends a live request: an admin's act.
    m.require_admin()?;
    let s = load(svc, m, id).await?;
    let summary = curated_summary(svc, &s).await?;
    let credential = open_credential(svc, &s).await?;
    let placement = placement_of(&s);
    let mut findings = verify::static_findings(&verify::Subject {
        tools: &summary,
        auth_mode: s.auth_mode,
        discovery: s.discovery_mode,
        auth_config: &s.auth_config,
        base_url_override: s.base_url_override.as_deref(),
        has_credential: credential.is_some(),
        has_placement: placement.is_some(),
        fetch_policy: svc.fetch_policy,
    });
    if s.auth_mode.signs_in_users() {
        if let Some(oauth) = oauth_of(&s) {
            let callback = crate::oauth::http::callback_url(svc.link_origin.as_deref().unwrap_or(&svc.origin), &s.id);
            findings.push(verify::provider(svc.http, &oauth, credential.as_deref(), &callback, svc.fetch_policy).await);
        }
    }
    let placed = manifest::place_credential(s.auth_mode, placement.as_ref(), credential).unwrap_or(Credential::None);
    let credential_origin = credential_origin_of(&s);
    let probe = verify::Probe {
        auth_mode: s.auth_mode,
        tool: summary.probe.as_ref(),
        credential: &placed,
        credential_origin: credential_origin.as_deref(),
        base_url_override: s.base_url_override.as_deref(),
        fetch_policy: svc.fetch_policy,
    };
    findings.push(verify::probe(svc.http, &probe).await);
    let state = verify::verdict(&findings);
    let report = VerificationReport { findings, tool_count: summary.count as u64 };
    store::set_verification(svc.db, &m.workspace_id, &s.id, state, &report, svc.now_ms).await?;
    Response::ok(&Verified { state, findings: report.findings, checked_at: svc.now_ms })
}

pub async fn publish<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    m.require_verified()?;
    let s = load(svc, m, id).await?;
    if s.verification_state != VerificationState::Verified {
        return Err(ApiError::new(
            ErrorCode::NotVerified,
            "Verify the server (POST .../verify) before publishing; changes since the last verification reset it.",
        ));
    }
    if s.auth_mode == AuthMode::UserKey && svc.secrets.token_secrets.is_none() {
        return Err(ApiError::new(
            ErrorCode::NotConfigured,
            "Per-user keys need the deployment's key-signing secret (FLOWCP_TOKEN_SECRET); ask its operator to set it.",
        ));
    }
    // What the settings need of the enabled tools (names, methods, tags), without definitions.
    let tools = apps_store::enabled_tool_heads(svc.db, &s.workspace_id, &s.app_id, MAX_SERVER_TOOLS).await?;
    let plan = crate::plans::of_workspace(svc.db, &m.workspace_id, svc.default_plan).await?;
    if let (Some(p), Some(l)) = (plan.plan, plan.limits) {
        if tools.len() as i64 > l.tools_per_server {
            return Err(ApiError::new(
                ErrorCode::PlanLimit,
                format!(
                    "The {} plan allows {} enabled tools per server and this server enables {}; disable some, split the API across servers or move to a larger plan.",
                    p.as_str(),
                    l.tools_per_server,
                    tools.len()
                ),
            ));
        }
    }
    let version = lifecycle::latest_version(svc.kv, &s.id).await? + 1;
    let skills = s.skills.as_ref().map(|k| resolve_skills(k, &tools)).transpose()?;
    let synced_names = store_tools_of(&s, &tools, &plan)?;
    let synced = match &synced_names {
        Some(names) => apps_store::enabled_tools_named(svc.db, &s.workspace_id, &s.app_id, names)
            .await?
            .iter()
            .map(curated_def)
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let tool_count = tools.len();
    let head = Manifest {
        format: manifest::FORMAT,
        server_id: s.id.clone(),
        workspace_id: s.workspace_id.clone(),
        version,
        published_at: svc.now_ms,
        name: s.name.clone(),
        auth: ManifestAuth {
            mode: s.auth_mode,
            public: s.is_public,
            placement: placement_of(&s),
            credential_ref: s.credential_key.as_ref().map(|_| manifest::published_credential_key(&s.id, version)),
            credential_origin: credential_origin_of(&s),
            scopes: s
                .auth_config
                .get("scopes")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
            oauth: s.auth_mode.signs_in_users().then(|| oauth_of(&s)).flatten(),
        },
        discovery: s.discovery_mode,
        base_url: s.base_url_override.clone(),
        allowed_origins: s.allowed_origins.clone(),
        skills,
        usage_target: s.usage_target.clone(),
        store: synced_names,
        tools: Vec::new(),
        layout: Some(manifest::Layout::new(tool_count, synced).map_err(ApiError::internal)?),
    };
    // Format 3 (issue 18): the parts are written as each completes, in name order, so a
    // publish holds one shard at a time; the head goes last, then the live pointer.
    let mut written = Vec::new();
    let done = match write_parts(svc, &s, shards::Writer::new(head.clone()).map_err(too_large)?, &mut written).await {
        Ok(done) => done,
        Err(e) => {
            // Nothing names them (no head was written), but they take room: gone at once.
            lifecycle::discard_parts(svc.kv, &written).await;
            return Err(e);
        }
    };
    let bytes = done.bytes;
    lifecycle::stage(svc.kv, &s, version, &done.head).await?;
    let manifest = head;
    let row = store::VersionRow {
        version,
        published_at: svc.now_ms,
        published_by: Some(m.user_id.clone()),
        tool_count: tool_count as i64,
        bytes: bytes as i64,
    };
    // D1 records the version before the live pointer names it: a failure between the two leaves
    // the previous version on the air while the owner sees this one recorded and an error, and
    // publishing again finishes. (In the other order a failed record left a server on the air
    // that its owner's view called unpublished.)
    if !store::record_publish(svc.db, &m.workspace_id, &s.id, &row, svc.now_ms).await? {
        // Deleted while this ran: what was staged goes (its deletion may not have seen it).
        lifecycle::discard_version(svc.kv, &s, version, &done.head).await;
        return Err(ApiError::not_found());
    }
    // End users' stored tokens never outlive the provider they were given to (issue 16): they
    // go before the version that changes the provider is live.
    let keep = (manifest.auth.mode == AuthMode::UserKey).then(|| crate::oauth::tokens::provider_binding(&manifest));
    if keep != Some(None) {
        crate::store::key_users::revoke_stale(svc.db, &m.workspace_id, &s.id, keep.flatten().as_deref()).await?;
    }
    let went_live = lifecycle::go_live(svc.kv, &s, version).await;
    if store::get(svc.db, &m.workspace_id, &s.id).await?.is_none() {
        // Deleted between the record and the live pointer: off the air again, staged parts gone.
        lifecycle::discard_version(svc.kv, &s, version, &done.head).await;
        return Err(ApiError::not_found());
    }
    if let Err(e) = went_live {
        // If the live pointer surely does not name this version, the owner's view goes back to
        // the version it does name (best effort). When in doubt (the write may have gone
        // through) the record stays: D1 ahead of KV is the side that serves nothing unrecorded.
        if let Ok(live) = lifecycle::live_version(svc.kv, &s.id).await {
            if live != Some(version) {
                let _ = store::unrecord_publish(svc.db, &m.workspace_id, &s.id, version, live).await;
            }
        }
        return Err(e.into());
    }
    let s = load(svc, m, id).await?;
    Response::ok(&Published {
        server: ServerView::of(&svc.origin, &s),
        manifest: PublishedManifest { version, tools: tool_count as u64, bytes: bytes as u64 },
    })
}

/// A manifest the writer refuses, with its reason.
fn too_large(e: shards::TooLarge) -> ApiError {
    ApiError::new(ErrorCode::ManifestTooLarge, e.0)
}

/// Writes every part of a manifest (not its head), tool by tool from D1 in name order; `written`
/// collects the keys, so a failed publish can take them back.
async fn write_parts<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    s: &Server,
    mut writer: shards::Writer,
    written: &mut Vec<String>,
) -> Result<shards::Finished, ApiError> {
    let mut batches = Curated::new();
    while let Some(batch) = batches.next(svc, s).await? {
        for t in batch {
            let parts = writer.push(t).map_err(too_large)?;
            written.extend(parts.iter().map(|(k, _)| k.clone()));
            lifecycle::write_parts(svc.kv, parts).await?;
        }
    }
    let mut done = writer.finish().map_err(too_large)?;
    let parts = std::mem::take(&mut done.parts);
    written.extend(parts.iter().map(|(k, _)| k.clone()));
    lifecycle::write_parts(svc.kv, parts).await?;
    Ok(done)
}

pub async fn unpublish<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let s = load(svc, m, id).await?;
    lifecycle::retract(svc.kv, &s).await?;
    store::set_published(svc.db, &m.workspace_id, &s.id, None, svc.now_ms).await?;
    get(svc, m, id).await
}

/// Published versions and what the draft changes against the live manifest.
pub async fn versions<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    let s = load(svc, m, id).await?;
    let versions = store::list_versions(svc.db, &m.workspace_id, &s.id).await?;
    let draft = match s.published_version {
        None => None,
        Some(v) => {
            let live = match svc.kv.get(&manifest::manifest_key(&s.id, v)).await? {
                Some(bytes) => serde_json::from_slice::<Manifest>(&bytes)
                    .map_err(|e| ApiError::internal(format!("manifest {} v{v}: {e}", s.id)))?,
                None => return Err(ApiError::internal(format!("manifest {} v{v} is missing", s.id))),
            };
            // One digest per live tool, read a shard at a time: a manifest may be tens of MB.
            let mut digests = std::collections::BTreeMap::new();
            shards::for_each_tool(svc.kv, &live, &s.id, v, |t| {
                digests.insert(t.name.clone(), tool_digest(t));
            })
            .await
            .map_err(|e| ApiError::internal(format!("manifest {} v{v}: {e}", s.id)))?;
            let mut draft = std::collections::BTreeMap::new();
            let mut tools = Curated::new();
            while let Some(batch) = tools.next(svc, &s).await? {
                draft.extend(batch.iter().map(|t| (t.name.clone(), tool_digest(t))));
            }
            Some(draft_diff(&s, &draft, &live, &digests))
        }
    };
    Response::ok(&Versions { live_version: s.published_version, versions, draft })
}

/// A digest of a tool's definition (what the draft diff compares).
fn tool_digest(t: &ToolDef) -> String {
    sha256_hex(&serde_json::to_vec(t).unwrap_or_default())
}

/// The draft's tools and settings against a live manifest (`live_digests`: its tools' digests).
fn draft_diff(
    s: &Server,
    draft_digests: &std::collections::BTreeMap<String, String>,
    live: &Manifest,
    live_digests: &std::collections::BTreeMap<String, String>,
) -> DraftDiff {
    // One digest per tool, not a copy of each definition: a manifest may be tens of MB.
    let (d, l) = (draft_digests, live_digests);
    let mut diff = DraftDiff {
        added: d.keys().filter(|k| !l.contains_key(*k)).cloned().collect(),
        removed: l.keys().filter(|k| !d.contains_key(*k)).cloned().collect(),
        changed: d.iter().filter(|(k, v)| l.get(*k).is_some_and(|lv| lv != *v)).map(|(k, _)| k.clone()).collect(),
        settings: Vec::new(),
    };
    let a = &live.auth;
    for (name, differs) in [
        ("name", s.name != live.name),
        ("auth_mode", s.auth_mode != a.mode),
        ("public", s.is_public != a.public),
        ("placement", placement_of(s) != a.placement),
        ("credential_origin", credential_origin_of(s) != a.credential_origin),
        ("oauth", s.auth_mode.signs_in_users().then(|| oauth_of(s)).flatten() != a.oauth),
        ("base_url", s.base_url_override != live.base_url),
        ("discovery_mode", s.discovery_mode != live.discovery),
        ("allowed_origins", s.allowed_origins != live.allowed_origins),
        ("skills", skills_differ(s.skills.as_ref(), live.skills.as_ref())),
        ("usage_target", s.usage_target != live.usage_target),
        ("store_tools", s.store_tools != live.store),
    ] {
        if differs {
            diff.settings.push(name.to_string());
        }
    }
    diff
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "tool": "getPetById", "arguments": { "petId": 1 }, "run": false }))]
pub struct TryBody {
    /// The tool's (curated) name; enabled or not.
    tool: String,
    /// The arguments an MCP client would send.
    #[serde(default)]
    arguments: Value,
    /// Send the request to the API with the server's credential (admins; not for `oauth`
    /// servers, which call as a signed-in user).
    #[serde(default)]
    run: bool,
}

/// "Try it": the exact request a tool call would send with the server's draft settings, and
/// with `run`, its answer.
pub async fn try_tool<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    let body: TryBody = req.json(limits::API_JSON)?;
    if body.run {
        // Opens the credential and sends a live request, as verification does: an admin with a
        // verified address, a bounded number of times; each run is audited like a tool call.
        m.require_admin()?;
        m.require_verified()?;
        let keys = crate::auth::throttle::LoginKeys::counter(
            &format!("try:{}", m.user_id),
            crate::auth::throttle::Policy::TRY_RUNS_PER_USER,
        );
        crate::auth::throttle::reserve(svc.db, &keys, svc.now_ms).await?.into_result()?;
    }
    let s = load(svc, m, id).await?;
    let row =
        apps_store::tool_by_name(svc.db, &m.workspace_id, &s.app_id, body.tool.trim()).await?.ok_or_else(|| {
            ApiError::new(ErrorCode::NotFound, format!("The app has no tool named {:?}.", body.tool.trim()))
        })?;
    let mut tool: ToolDef = serde_json::from_str(&row.def_json)
        .map_err(|_| ApiError::internal(format!("tool {} has a corrupt definition", row.id)))?;
    tool.name = row.name.clone();
    let placement = placement_of(&s);
    let shown = match s.auth_mode {
        AuthMode::Oauth | AuthMode::UserKey => Credential::Bearer("[the signed-in user's token]".into()),
        mode => manifest::place_credential(mode, placement.as_ref(), Some(verify::SHOWN_CREDENTIAL.into()))
            .unwrap_or(Credential::None),
    };
    let send = match (body.run, s.auth_mode) {
        (false, _) => None,
        (true, AuthMode::Oauth | AuthMode::UserKey) => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "This server calls the API as each signed-in user: try the tool from an MCP client.",
            ))
        }
        (true, mode) => {
            let value = open_credential(svc, &s).await?;
            let missing = || ApiError::new(ErrorCode::BadRequest, "Set the server's credential before running a tool.");
            if mode != AuthMode::None && value.is_none() {
                return Err(missing());
            }
            Some(manifest::place_credential(mode, placement.as_ref(), value).ok_or_else(missing)?)
        }
    };
    // A run counts toward the plan's monthly quotas as a tool call does (the owner's runs as
    // their own caller), and is refused past them.
    let caller = crate::crypto::sha256_hex_truncated(format!("try-it|{}", m.user_id).as_bytes(), 16);
    let mut plan = None;
    if send.is_some() {
        let cache = crate::plans::QuotaCache::default();
        let gate = crate::plans::Gate {
            db: svc.db,
            default_plan: svc.default_plan,
            clock: &svc.clock,
            cache: &cache,
            failure: Default::default(),
        };
        plan = gate
            .reserve_for(&s.workspace_id, &s.id, Some(&caller))
            .await
            .map_err(|over| ApiError::new(ErrorCode::PlanLimit, over.message))?;
    }
    let origin = credential_origin_of(&s);
    let started = (svc.clock)();
    let outcome = verify::try_call(
        svc.http,
        &verify::Trial {
            tool: &tool,
            arguments: &body.arguments,
            shown: &shown,
            send: send.as_ref(),
            credential_origin: origin.as_deref(),
            base_url_override: s.base_url_override.as_deref(),
            fetch_policy: svc.fetch_policy,
        },
    )
    .await;
    // Each request that left FlowCP is audited (best effort: the owner still gets the answer).
    if outcome.sent {
        let event = crate::store::audit::AuditEvent {
            id: crate::store::audit::event_id(svc.now_ms),
            ts_ms: svc.now_ms,
            workspace_id: s.workspace_id.clone(),
            server_id: s.id.clone(),
            tool_name: tool.name.clone(),
            outcome: match &outcome.response {
                Some(r) if (200..300).contains(&r.status) => crate::store::audit::Outcome::Ok,
                _ => crate::store::audit::Outcome::UpstreamError,
            },
            upstream_status: outcome.response.as_ref().map(|r| r.status),
            latency_ms: (svc.clock)() - started,
            request_bytes: 0,
            response_bytes: outcome.response.as_ref().map_or(0, |r| r.body.len() as i64),
            // The owner's runs show as their own connection: a hash of "try-it" and the user.
            connection_hash: Some(caller),
            target: None,
            plan,
            metered: true,
        };
        let _ = crate::store::audit::insert(svc.db, &event).await;
    }
    Response::ok::<TryOutcome>(&outcome)
}
