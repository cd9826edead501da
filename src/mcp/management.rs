//! FlowCP's own MCP server (issue 15): its tools are FlowCP's engine applied to FlowCP's own
//! `GET /api/v1/openapi.json`, curated by the data in `management_tools.json` (one decision per
//! operation: exposed with an agent-facing name, description and annotations, or excluded with
//! its reason). Nothing here is written by hand per tool, so a new API route shows up as an
//! undecided operation (a failing test), not as a silently missing or silently exposed tool.
//!
//! The tools' calls never leave the Worker: [`InProcess`] is the runtime's `Http` port for this
//! server, and hands each request to `api::handle_as` as a grant to one workspace and to the
//! exposed routes only.
//!
//! [`serve`] answers `<origin>/mcp`: the caller's FlowCP access token (issued by the sign-in
//! of `oauth::account`) is opened, its connection, account and membership checked, and the
//! request goes through the same runtime as a published server's.
//!
//! `onboard_api` is no exception: it is the curated tool of `POST /workspaces/{ws}/onboard`
//! (`api::onboard`), which runs the single routes' handlers in order and reports each step.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::OnceLock;

use serde::Deserialize;

use super::cache::ManifestCache;
use super::runtime::{header, reject, McpRequest, McpResponse, Runtime};
use super::transport;
use crate::api::routes::{RouteId, ROUTES};
use crate::api::{self, Principal, Services};
use crate::manifest::{self, Manifest, ManifestAuth};
use crate::net::{Http, HttpError, HttpRequest, HttpResponse};
use crate::oauth::resource::Target;
use crate::oauth::tokens;
use crate::store::connections::{self, Connection};
use crate::store::{Db, Kv};
use crate::tools::{Annotations, ToolDef};
use crate::vocab::AuthMode;

/// The curation, as committed.
pub const CURATION_JSON: &str = include_str!("management_tools.json");

/// A JSON object's entries in order, duplicates kept.
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of decisions")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// What is done with one owner-API operation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Decision {
    /// Not offered to agents, and why.
    Exclude { exclude: String },
    /// Offered as a tool named `name`; `annotations` override what the HTTP method implies.
    Expose {
        name: String,
        description: String,
        #[serde(default)]
        annotations: Option<Annotations>,
    },
}

/// The decisions by operationId (the `_about` note left out). A key written twice is an error
/// (a JSON map would silently keep the last, so a second entry could undo an exclusion).
pub fn curation() -> Result<BTreeMap<String, Decision>, String> {
    curation_of(CURATION_JSON)
}

/// [`curation`] of a given text.
pub fn curation_of(text: &str) -> Result<BTreeMap<String, Decision>, String> {
    let entries: Entries = serde_json::from_str(text).map_err(|e| format!("management_tools.json: {e}"))?;
    let mut raw = BTreeMap::new();
    for (k, v) in entries.0 {
        if raw.insert(k.clone(), v).is_some() {
            return Err(format!("management_tools.json: {k} is decided twice"));
        }
    }
    raw.remove("_about");
    raw.into_iter()
        .map(|(op, v)| serde_json::from_value::<Decision>(v).map(|d| (op.clone(), d)).map_err(|e| format!("{op}: {e}")))
        .collect()
}

/// The management server's tools for a deployment at `origin`, by name: the engine's tools of
/// the exposed operations, renamed, described and annotated as curated. `Err` names every
/// operation without a decision and every decision without an operation.
pub fn tools(origin: &str) -> Result<Vec<ToolDef>, String> {
    let decisions = curation()?;
    let report = crate::tools::import_value(crate::api::contract::openapi_document(origin))
        .map_err(|e| format!("FlowCP's own document does not import: {e}"))?;
    let mut seen = Vec::new();
    let mut undecided = Vec::new();
    let mut out = Vec::new();
    for mut tool in report.tools {
        let Some(op) = tool.operation_id.clone() else {
            undecided.push(tool.operation_key.clone());
            continue;
        };
        seen.push(op.clone());
        match decisions.get(&op) {
            None => undecided.push(op),
            Some(Decision::Exclude { .. }) => {}
            Some(Decision::Expose { name, description, annotations }) => {
                tool.name = name.clone();
                tool.description = description.clone();
                if let Some(a) = annotations {
                    let base = std::mem::take(&mut tool.annotations);
                    tool.annotations = Annotations {
                        title: a.title.clone().or(base.title),
                        read_only_hint: a.read_only_hint.or(base.read_only_hint),
                        destructive_hint: a.destructive_hint.or(base.destructive_hint),
                        idempotent_hint: a.idempotent_hint.or(base.idempotent_hint),
                        open_world_hint: a.open_world_hint.or(base.open_world_hint),
                    };
                }
                out.push(tool);
            }
        }
    }
    let stale: Vec<&String> = decisions.keys().filter(|op| !seen.contains(op)).collect();
    if !undecided.is_empty() || !stale.is_empty() {
        return Err(format!(
            "management tools drift: operations without a decision {undecided:?}; decisions without an operation {stale:?} (edit src/mcp/management_tools.json)"
        ));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The management server's id in its manifest and in audit rows.
pub const SERVER_ID: &str = "flowcp";

/// The management server's manifest for a deployment at `origin`: never published, built in
/// the isolate. No upstream credential (each call is the caller's grant, in-process); browser
/// callers only from FlowCP's own origin.
pub fn manifest(origin: &str) -> Result<Manifest, String> {
    Ok(Manifest {
        // Whole: built in the isolate, never stored.
        format: manifest::WHOLE_FORMAT,
        server_id: SERVER_ID.into(),
        workspace_id: String::new(),
        version: 1,
        published_at: 0,
        name: "FlowCP".into(),
        auth: ManifestAuth {
            mode: AuthMode::None,
            public: false,
            placement: None,
            credential_ref: None,
            scopes: Vec::new(),
            credential_origin: None,
            oauth: None,
        },
        discovery: false,
        base_url: Some(origin.to_string()),
        allowed_origins: Some(Vec::new()),
        skills: None,
        usage_target: None,
        store: None,
        tools: tools(origin)?,
        layout: None,
    })
}

/// [`manifest`] prepared for the runtime.
pub fn loaded(origin: &str) -> Result<super::cache::Loaded, String> {
    Ok(super::cache::prepare(manifest(origin)?, 0))
}

/// The routes agents may call: the curation's exposed operations (read once per isolate; a
/// curation that does not parse exposes nothing).
pub fn exposed_routes() -> &'static [RouteId] {
    static EXPOSED: OnceLock<Vec<RouteId>> = OnceLock::new();
    EXPOSED.get_or_init(|| {
        let decisions = curation().unwrap_or_default();
        ROUTES
            .iter()
            .map(|r| r.id)
            .filter(|id| {
                matches!(decisions.get(&crate::api::contract::operation_id(*id)), Some(Decision::Expose { .. }))
            })
            .collect()
    })
}

/// The management server's upstream: FlowCP's own API, called in-process as `user_id` with a
/// grant to `workspace_id`. Anything but `<origin>/api/v1/...` is refused: this server never
/// calls out.
pub struct InProcess<'s, 'a, D: Db, K: Kv, H: Http> {
    pub svc: &'s Services<'a, D, K, H>,
    pub user_id: String,
    pub workspace_id: String,
}

impl<D: Db, K: Kv, H: Http> Http for InProcess<'_, '_, D, K, H> {
    async fn send(&self, req: &HttpRequest, max_body: usize) -> Result<HttpResponse, HttpError> {
        let refused = || HttpError::Network("FlowCP's own MCP server calls only FlowCP's API".into());
        let url = url::Url::parse(&req.url).map_err(|_| refused())?;
        if url.origin().ascii_serialization() != self.svc.origin || !url.path().starts_with("/api/v1/") {
            return Err(refused());
        }
        let call = api::Request {
            method: req.method.clone(),
            path: url.path().to_string(),
            query: url.query_pairs().into_owned().collect(),
            headers: req.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect(),
            body: req.body.clone().unwrap_or_default(),
            client_addr: None,
        };
        let grant =
            Principal::Grant { user_id: &self.user_id, workspace_id: &self.workspace_id, routes: exposed_routes() };
        let resp = match api::handle_as(self.svc, &call, &grant).await {
            Ok(r) => r,
            Err(e) => api::Response::from_error(&e),
        };
        let mut body = resp.body.map(|v| serde_json::to_vec(&v).unwrap_or_default()).unwrap_or_default();
        let truncated = body.len() > max_body;
        body.truncate(max_body);
        // Nothing an exposed route answers sets a cookie; none would reach an agent anyway.
        let mut headers: Vec<(String, String)> =
            resp.headers.into_iter().filter(|(k, _)| !k.eq_ignore_ascii_case("set-cookie")).collect();
        if !body.is_empty() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        Ok(HttpResponse { status: resp.status, headers, body, truncated })
    }
}

/// The path of FlowCP's own MCP server.
pub const PATH: &str = "/mcp";

/// The URL of its protected-resource metadata (RFC 9728, path-inserted).
pub fn resource_metadata_url(origin: &str) -> String {
    format!("{origin}/.well-known/oauth-protected-resource{PATH}")
}

/// RFC 9728 metadata of `<origin>/mcp`: FlowCP itself is the authorization server.
pub fn protected_resource_metadata(origin: &str) -> serde_json::Value {
    serde_json::json!({
        "resource": format!("{origin}{PATH}"),
        "authorization_servers": [origin],
        "bearer_methods_supported": ["header"],
        "resource_name": "FlowCP",
        "resource_documentation": format!("{origin}/docs/mcp-management"),
    })
}

thread_local! {
    /// The management manifest, built once per isolate (and origin) from FlowCP's own document.
    static LOADED: RefCell<Option<(String, Rc<super::cache::Loaded>)>> = const { RefCell::new(None) };
}

/// [`loaded`] for `origin`, from the isolate's copy when it has one.
pub fn cached_loaded(origin: &str) -> Result<Rc<super::cache::Loaded>, String> {
    if let Some(l) = LOADED.with(|c| c.borrow().as_ref().filter(|(o, _)| o == origin).map(|(_, l)| Rc::clone(l))) {
        return Ok(l);
    }
    let l = Rc::new(loaded(origin)?);
    LOADED.with(|c| *c.borrow_mut() = Some((origin.to_string(), Rc::clone(&l))));
    Ok(l)
}

/// The 401 of `/mcp`: where its metadata is, and `invalid_token` when a token was presented
/// but cannot be used (the client refreshes it or signs in again).
fn challenge(origin: &str, invalid: bool, message: &str) -> McpResponse {
    let error = if invalid { "error=\"invalid_token\", " } else { "" };
    let www = format!("Bearer {error}resource_metadata=\"{}\"", resource_metadata_url(origin));
    let mut r = reject(401, message);
    r.headers.push(("www-authenticate".into(), www));
    r
}

/// Whose grant a presented token is: its live connection, an account's. `Err`: the 401 to
/// answer.
async fn grant_of<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    headers: &[(String, String)],
) -> Result<Connection, McpResponse> {
    let origin = svc.origin.as_str();
    let Some(token) = super::access::presented_key(headers) else {
        return Err(challenge(origin, false, "Unauthorized: sign in to FlowCP (OAuth) to use its MCP server."));
    };
    let invalid = || challenge(origin, true, "Unauthorized: this token is invalid, expired or revoked; sign in again.");
    let audience = Target::Management.canonical(origin);
    let (id, _) = tokens::open(&svc.secrets.keyring, tokens::Kind::Access, &audience, token, svc.now_ms)
        .map_err(|_| invalid())?;
    // Every way a grant ends revokes or deletes its connection (disconnect, password change or
    // reset, removal from or leaving the workspace, account or workspace deletion); the account
    // and its membership are read again by every API call the tools make (`api::handle_as`).
    match connections::get(svc.db, &id).await {
        Ok(Some(c)) if c.revoked_at.is_none() && c.server_id.is_none() && c.user_id.is_some() => Ok(c),
        Ok(_) => Err(invalid()),
        Err(_) => Err(reject(503, "FlowCP could not check this token; try again.")),
    }
}

/// Answers `<origin>/mcp` (POST, or the CORS preflight): the caller's grant, then the runtime
/// with the management manifest and [`InProcess`] as its upstream. Audit rows go to the
/// grant's workspace, under the connection's hash.
pub async fn serve<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    cache: &ManifestCache,
    upstream_timeout_ms: u32,
    req: &McpRequest<'_>,
) -> McpResponse {
    let origin = svc.origin.as_str();
    if req.method == "OPTIONS" {
        // Browser callers only from FlowCP's own origin (the manifest allows no other).
        return match header(req.headers, "origin") {
            Some(o) if !transport::origin_allowed(o, origin, Some(&[])) => transport::forbidden_origin().into(),
            o => {
                let mut r = McpResponse::new(204, None);
                r.headers.push(("allow".into(), "POST, OPTIONS".into()));
                if let Some(o) = o {
                    r.headers.extend(transport::cors_preflight(o));
                }
                r
            }
        };
    }
    let conn = match grant_of(svc, req.headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let loaded = match cached_loaded(origin) {
        Ok(l) => l,
        Err(e) => {
            let mut r = reject(503, "FlowCP's own MCP server is not available; try again later.");
            r.internal = Some(e);
            return r;
        }
    };
    let http =
        InProcess { svc, user_id: conn.user_id.clone().unwrap_or_default(), workspace_id: conn.workspace_id.clone() };
    let rt = Runtime {
        kv: svc.kv,
        cache,
        http: &http,
        keyring: &svc.secrets.keyring,
        fetch_policy: svc.fetch_policy,
        origin: origin.to_string(),
        clock: &svc.clock,
        upstream_timeout_ms,
        key_gate: None,
        quota: None,
    };
    let mut out = super::server::handle_builtin(&rt, &loaded, Some(&conn.connection_hash), req).await;
    for e in &mut out.audit {
        e.workspace_id = conn.workspace_id.clone();
    }
    out
}
