//! `POST /workspaces/{ws}/onboard`: from a document URL to a published server in one call — the
//! path an owner takes in the dashboard, step by step, with each step's outcome reported. It is
//! FlowCP's own MCP server's `onboard_api` tool, and as plain API it serves any script.
//!
//! Every step is the API's own handler, called with the body an owner would send, so its
//! validation, role rules, SSRF guard and audit are those of the single routes. The first step
//! that fails stops the run: what was made so far stays (its ids are in the answer) and the
//! failure's message says what to fix, so the caller can continue with the single routes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::context::Member;
use super::views::ServerView;
use super::{apps, servers, Request, Response, Services};
use crate::error::{limits, ApiError};
use crate::net::Http;
use std::collections::HashSet;

use crate::store::apps as apps_store;
use crate::store::{Db, Kv};
use crate::vocab::AuthMode;

/// The most tools one onboarding chooses among (beyond it, curate with the single routes).
const MAX_TOOLS: i64 = 20_000;

/// Is the caller still an admin of the workspace (membership and role read again)?
async fn still_admin<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, m: &Member) -> Result<(), String> {
    let now = crate::store::workspaces::get_for_user(svc.db, &m.user_id, &m.workspace_id, m.email_verified)
        .await
        .map_err(|e| ApiError::from(e).message)?;
    match now {
        Some(w) if w.role.can_admin() => Ok(()),
        _ => Err("You are no longer an owner or admin of this workspace; nothing was published.".into()),
    }
}

/// What to onboard, and how.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnboardBody {
    /// The OpenAPI 3.x or Swagger 2.0 document's http(s) URL (fetched once).
    url: String,
    /// The app's and server's name; defaults to the document's title.
    name: Option<String>,
    /// Serve only read-only operations (GET and HEAD).
    #[serde(default)]
    read_only: bool,
    /// Serve only operations with one of these tags.
    #[serde(default)]
    tags: Vec<String>,
    /// Serve only these tools (their generated names); combined with the other filters.
    #[serde(default)]
    tools: Vec<String>,
    /// How FlowCP authenticates to the API: `none` (default without a credential), `api_key`
    /// (where the document's security scheme says) or `bearer`. OAuth per user needs the
    /// provider's settings: configure it with the server routes instead.
    #[schemars(with = "Option<AuthMode>")]
    auth_mode: Option<String>,
    /// The API key or token (write-only; never shown again).
    credential: Option<String>,
    /// The API origin the credential may be sent to (`https://host[:port]`): confirms the
    /// origin the document names.
    credential_origin: Option<String>,
    /// Anyone with the URL may call the server, without an access key (default false).
    #[serde(default)]
    public: bool,
    /// Publish when verification passes (default true).
    publish: Option<bool>,
    /// Create an access key for the server's users (default true for a server that is not
    /// public and is published).
    access_key: Option<bool>,
}

/// One step's outcome.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Step {
    pub step: &'static str,
    pub ok: bool,
    /// What was done, or why it failed and what to do.
    pub detail: String,
}

/// What the onboarding did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Onboarded {
    /// Whether the server is on the air.
    pub published: bool,
    pub steps: Vec<Step>,
    pub app_id: Option<String>,
    /// The server as it is at the end (MCP URL and client configuration).
    #[schemars(with = "Option<ServerView>")]
    pub server: Option<Value>,
    /// The access key for the server's users: shown once, stored only as a hash.
    pub access_key: Option<String>,
}

/// A POST of `body` as JSON, as an owner would send it (the steps call the single routes).
pub(crate) fn json_request(from: &Request, body: Value) -> Request {
    Request {
        method: "POST".into(),
        path: from.path.clone(),
        query: Vec::new(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::to_vec(&body).unwrap_or_default(),
        client_addr: from.client_addr.clone(),
    }
}

fn field(r: &Response, name: &str) -> String {
    r.body.as_ref().and_then(|b| b.get(name)).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The run so far.
struct Run {
    steps: Vec<Step>,
    app_id: Option<String>,
    server_id: Option<String>,
}

impl Run {
    fn ok(&mut self, step: &'static str, detail: impl Into<String>) {
        self.steps.push(Step { step, ok: true, detail: detail.into() });
    }
    /// Records a failed step; `None` ends the run.
    fn failed<T>(&mut self, step: &'static str, detail: impl Into<String>) -> Option<T> {
        self.steps.push(Step { step, ok: false, detail: detail.into() });
        None
    }
}

pub async fn onboard<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
) -> Result<Response, ApiError> {
    let body: OnboardBody = req.json(limits::API_JSON)?;
    // A server is what goes on the air: say so before anything is made.
    m.require_admin().map_err(|e| ApiError {
        message: format!("{} Ask one to onboard the API, or import and curate it with the app routes.", e.message),
        ..e
    })?;
    let mode = match body.auth_mode.as_deref() {
        None if body.credential.is_some() => AuthMode::ApiKey,
        None => AuthMode::None,
        Some(m) => {
            AuthMode::parse(m).ok_or_else(|| ApiError::bad_request("auth_mode must be none, api_key or bearer."))?
        }
    };
    if mode.signs_in_users() {
        return Err(ApiError::bad_request(format!(
            "auth_mode {0} needs the provider's endpoints and client: create the server, then configure it with auth_mode {0} and auth_config.",
            mode.as_str()
        )));
    }
    let mut run = Run { steps: Vec::new(), app_id: None, server_id: None };
    let key = steps(svc, req, m, &body, mode, &mut run).await;
    let server = match &run.server_id {
        Some(id) => servers::get(svc, m, id).await.ok().and_then(|r| r.body),
        None => None,
    };
    let published = server.as_ref().and_then(|s| s.get("published")).and_then(Value::as_bool) == Some(true);
    Response::ok(&Onboarded { published, steps: run.steps, app_id: run.app_id, server, access_key: key.flatten() })
}

/// The steps, in order; `None` once one failed. Answers the access key, when one was made.
async fn steps<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
    body: &OnboardBody,
    mode: AuthMode,
    run: &mut Run,
) -> Option<Option<String>> {
    // 1. The app, named for now after the document's host.
    let provisional = url::Url::parse(&body.url).ok().and_then(|u| u.host_str().map(str::to_string));
    let name = body.name.clone().or(provisional).unwrap_or_else(|| "API".into());
    let app = match apps::create(svc, &json_request(req, json!({ "name": name })), m).await {
        Ok(r) => field(&r, "id"),
        Err(e) => return run.failed("create the app", e.message),
    };
    run.app_id = Some(app.clone());
    run.ok("create the app", format!("app {app}"));

    // 2. The document.
    let record = match apps::import(svc, &json_request(req, json!({ "url": body.url })), m, &app).await {
        Ok(r) => r.body.unwrap_or_default(),
        Err(e) => {
            return run.failed(
                "import the document",
                format!("{} Fix the document or its URL, then import again with import_document.", e.message),
            )
        }
    };
    let title = record.get("title").and_then(Value::as_str).map(str::to_string);
    let count = record.get("tool_count").and_then(Value::as_i64).unwrap_or(0);
    let warnings = record.get("warning_count").and_then(Value::as_i64).unwrap_or(0);
    run.ok(
        "import the document",
        format!(
            "{} made {count} tools ({warnings} warnings; list_imports shows the report)",
            title.as_deref().unwrap_or("the document")
        ),
    );
    if body.name.is_none() {
        if let Some(t) = title.as_deref().filter(|t| !t.trim().is_empty()) {
            let clipped: String = t.chars().take(100).collect();
            let rename = Request { method: "PATCH".into(), ..json_request(req, json!({ "name": clipped.trim() })) };
            let _ = apps::update(svc, &rename, m, &app).await;
        }
    }

    // 3. The tools to serve.
    let rows = match apps_store::tool_heads(svc.db, &m.workspace_id, &app, MAX_TOOLS + 1).await {
        Ok(r) => r,
        Err(e) => return run.failed("choose the tools", ApiError::from(e).message),
    };
    if rows.len() as i64 > MAX_TOOLS {
        return run.failed(
            "choose the tools",
            format!(
                "The document made more than {MAX_TOOLS} tools: choose them with list_tools and set_tools_enabled."
            ),
        );
    }
    let tags: HashSet<&str> = body.tags.iter().map(String::as_str).collect();
    let names: HashSet<&str> = body.tools.iter().map(String::as_str).collect();
    let keep = |t: &apps_store::ToolHead| {
        (!body.read_only || matches!(t.method.to_ascii_uppercase().as_str(), "GET" | "HEAD"))
            && (tags.is_empty() || t.tags.iter().any(|g| tags.contains(g.as_str())))
            && (names.is_empty() || names.contains(t.name.as_str()))
    };
    let off: Vec<String> = rows.iter().filter(|t| t.enabled && !keep(t)).map(|t| t.id.clone()).collect();
    let served = rows.iter().filter(|t| t.enabled && keep(t)).count();
    if served == 0 {
        return run.failed(
            "choose the tools",
            format!("No tool matches the choices (of {} tools): loosen read_only, tags or tools.", rows.len()),
        );
    }
    for chunk in off.chunks(2000) {
        let bulk = json_request(req, json!({ "tool_ids": chunk, "enabled": false }));
        if let Err(e) = apps::bulk_tools(svc, &bulk, m, &app).await {
            return run.failed("choose the tools", e.message);
        }
    }
    run.ok("choose the tools", format!("{served} tools served, {} disabled", off.len()));

    // 4. The server and its auth.
    let created = servers::create(svc, &json_request(req, json!({ "app_id": app })), m).await;
    let srv = match created {
        Ok(r) => field(&r, "id"),
        Err(e) => return run.failed("create the server", e.message),
    };
    run.server_id = Some(srv.clone());
    run.ok("create the server", format!("server {srv}"));
    let settings = json!({ "auth_mode": mode.as_str(), "is_public": body.public });
    let update = Request { method: "PATCH".into(), ..json_request(req, settings) };
    if let Err(e) = servers::update(svc, &update, m, &srv).await {
        return run.failed("configure auth", e.message);
    }
    run.ok(
        "configure auth",
        format!("auth mode {}, {}", mode.as_str(), if body.public { "public" } else { "access keys required" }),
    );
    match (&body.credential, mode) {
        (Some(value), AuthMode::ApiKey | AuthMode::Bearer) => {
            let mut cred = json!({ "value": value });
            if let Some(o) = &body.credential_origin {
                cred["origin"] = json!(o);
            }
            let put = Request { method: "PUT".into(), ..json_request(req, cred) };
            if let Err(e) = servers::put_credential(svc, &put, m, &srv).await {
                return run.failed("set the credential", format!("{} (send credential_origin)", e.message));
            }
            run.ok("set the credential", "stored encrypted; never shown again");
        }
        (Some(_), _) => return run.failed("set the credential", "A credential needs auth_mode api_key or bearer."),
        (None, AuthMode::ApiKey | AuthMode::Bearer) => {
            return run.failed(
                "set the credential",
                "This auth mode needs the API's key or token: send credential (and credential_origin).",
            )
        }
        (None, _) => {}
    }

    // 5. Verification, then the air.
    let verified = match servers::verify(svc, m, &srv).await {
        Ok(r) => r.body.unwrap_or_default(),
        Err(e) => return run.failed("verify", e.message),
    };
    if verified.get("state").and_then(Value::as_str) != Some("verified") {
        let failed: Vec<String> = verified
            .get("findings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|f| f.get("status").and_then(Value::as_str) == Some("fail"))
            .map(|f| format!("{}: {}", f["check"].as_str().unwrap_or("check"), f["message"].as_str().unwrap_or("")))
            .collect();
        return run.failed("verify", format!("Verification failed — {}", failed.join("; ")));
    }
    run.ok("verify", "every check passed");
    if !body.publish.unwrap_or(true) {
        run.ok("publish", "not asked for: publish with publish_server when ready");
        return Some(None);
    }
    // The run may have taken a while (a slow document, the probe): the caller must still be an
    // admin here before anything goes on the air or a key is made in their name.
    if let Err(why) = still_admin(svc, m).await {
        return run.failed("publish", why);
    }
    if let Err(e) = servers::publish(svc, m, &srv).await {
        return run.failed("publish", e.message);
    }
    run.ok("publish", "on the air");
    if body.public || !body.access_key.unwrap_or(true) {
        return Some(None);
    }
    if let Err(why) = still_admin(svc, m).await {
        return run.failed("create an access key", why);
    }
    let key = json_request(req, json!({ "name": "onboarding" }));
    match servers::create_key(svc, &key, m, &srv).await {
        Ok(r) => {
            run.ok("create an access key", "shown once in access_key: give it to the server's users");
            Some(Some(field(&r, "key")))
        }
        Err(e) => run.failed("create an access key", e.message),
    }
}
