//! App templates (issue 16): a ready-made OpenAPI document with the server settings that go with
//! it, made into an app and a draft server in one call. The owner then registers the callback at
//! the provider, sets the client id and secret, verifies and publishes.
//!
//! The first template is Power Automate: the management API as the signed-in user, tool names
//! as FlowStudio MCP's live tools, its skills as bundles, as a `user_key` server with the Entra
//! ID preset (`templates/power-automate.openapi.json`).
//!
//! Every step is the API's own handler, called with the body an owner would send (as
//! `onboard` does), so its validation and role rules are those of the single routes. When a step
//! fails, the app made so far is deleted again: a template makes all of it or nothing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::context::{Member, SessionUser};
use super::onboard::json_request;
use super::views::{Items, ServerView};
use super::{apps, servers, Request, Response, Services};
use crate::error::{limits, ApiError, ErrorCode};
use crate::net::Http;
use crate::store::{Db, Kv};

/// A template as the dashboard lists it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TemplateView {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    /// The auth mode of the server it makes.
    pub auth_mode: crate::vocab::AuthMode,
    /// What the owner sets before publishing.
    pub needs: &'static str,
}

struct Template {
    view: TemplateView,
    document: &'static str,
    /// The server's settings (`PATCH .../servers/{srv}`), from the owner's choices.
    settings: fn(&TemplateBody) -> Value,
}

/// The Power Automate management API's scope (the user's delegated access to their flows).
pub const POWER_AUTOMATE_SCOPE: &str = "https://service.flow.microsoft.com//.default";

fn power_automate(b: &TemplateBody) -> Value {
    let mut auth = json!({
        "provider": "entra",
        "tenant": b.tenant.as_deref().unwrap_or("organizations"),
        "scopes": [POWER_AUTOMATE_SCOPE],
    });
    if let Some(id) = &b.client_id {
        auth["client_id"] = json!(id);
    }
    let bundle = |name: &str, description: &str, tools: &[&str]| json!({ "name": name, "description": description, "tools": tools });
    json!({
        "auth_mode": "user_key",
        "auth_config": auth,
        "usage_target": "environmentName",
        "skills": { "mode": "alongside", "bundles": [
            bundle("discover", "Find environments, flows and connections", &[
                "list_live_environments", "list_live_flows", "get_live_flow", "list_live_connections",
            ]),
            bundle("build-flow", "Read, change and run a flow", &[
                "get_live_flow", "update_live_flow", "trigger_live_flow", "get_live_flow_runs",
            ]),
            bundle("debug-flow", "Find why runs failed, then resubmit or cancel", &[
                "get_live_flow_runs", "get_live_flow_run_error", "get_live_flow_run_action_outputs",
                "resubmit_live_flow_run", "cancel_live_flow_run", "list_live_connections",
            ]),
            bundle("monitor-flow", "Watch runs and turn flows on or off", &[
                "list_live_flows", "get_live_flow_runs", "set_live_flow_state",
            ]),
        ]},
    })
}

fn templates() -> [Template; 1] {
    [Template {
        view: TemplateView {
            id: "power-automate",
            name: "Power Automate",
            description: "Your users' cloud flows, runs and run errors as MCP tools, called as each user: they sign in with Microsoft at the server's portal and get a personal key (the FlowStudio model).",
            auth_mode: crate::vocab::AuthMode::UserKey,
            needs: "An Entra ID app registration: its client id and secret, the delegated Power Automate permission (Flows.Read.All, Flows.Manage.All), and the server's callback URL as a redirect URI.",
        },
        document: include_str!("../../templates/power-automate.openapi.json"),
        settings: power_automate,
    }]
}

/// `GET /templates`.
pub async fn list<D: Db, K: Kv, H: Http>(_svc: &Services<'_, D, K, H>, _s: &SessionUser) -> Result<Response, ApiError> {
    Response::ok(&Items { items: templates().into_iter().map(|t| t.view).collect::<Vec<_>>() })
}

/// The owner's choices for a template's server.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "tenant": "contoso.onmicrosoft.com" }))]
pub struct TemplateBody {
    /// The app's and server's name (the template's by default).
    name: Option<String>,
    /// Entra ID: the tenant (`organizations` by default: any work or school account).
    tenant: Option<String>,
    /// The provider app's client id, when it is registered already.
    client_id: Option<String>,
}

/// What a template made.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FromTemplate {
    pub app_id: String,
    pub server: ServerView,
    /// The tools the document made.
    pub tools: i64,
}

/// `POST /workspaces/{ws}/templates/{template}` (owners and admins).
pub async fn create<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
    id: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    let body: TemplateBody = if req.body.iter().all(u8::is_ascii_whitespace) {
        TemplateBody::default()
    } else {
        req.json(limits::API_JSON)?
    };
    let t = templates()
        .into_iter()
        .find(|t| t.view.id == id)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("There is no template {id:?}.")))?;
    let name = body.name.clone().unwrap_or_else(|| t.view.name.to_string());
    let app = apps::create(svc, &json_request(req, json!({ "name": name })), m).await?;
    let app_id = app.body.as_ref().and_then(|b| b["id"].as_str()).unwrap_or_default().to_string();
    match fill(svc, req, m, &t, &body, &app_id, &name).await {
        Ok(made) => Response::created(&made),
        Err(e) => {
            // All or nothing: the app (and a server made for it) go again.
            let _ = apps::delete(svc, m, &app_id).await;
            Err(e)
        }
    }
}

async fn fill<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
    t: &Template,
    body: &TemplateBody,
    app_id: &str,
    name: &str,
) -> Result<FromTemplate, ApiError> {
    let imported = apps::import(
        svc,
        &Request { body: t.document.as_bytes().to_vec(), ..json_request(req, Value::Null) },
        m,
        app_id,
    )
    .await?;
    let tools = imported.body.as_ref().and_then(|b| b["tool_count"].as_i64()).unwrap_or(0);
    let server = servers::create(svc, &json_request(req, json!({ "app_id": app_id, "name": name })), m).await?;
    let server_id = server.body.as_ref().and_then(|b| b["id"].as_str()).unwrap_or_default().to_string();
    let patch = Request { method: "PATCH".into(), ..json_request(req, (t.settings)(body)) };
    servers::update(svc, &patch, m, &server_id).await?;
    let server = ServerView::of(&svc.origin, &servers::load(svc, m, &server_id).await?);
    Ok(FromTemplate { app_id: app_id.to_string(), server, tools })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_power_automate_template_imports_and_its_bundles_name_its_tools() {
        let t = &templates()[0];
        let report = crate::tools::import(t.document.as_bytes()).unwrap();
        let names: Vec<&str> = report.tools.iter().map(|t| t.name.as_str()).collect();
        for want in [
            "list_live_environments",
            "list_live_flows",
            "get_live_flow",
            "update_live_flow",
            "set_live_flow_state",
            "get_live_flow_runs",
            "get_live_flow_run_error",
            "get_live_flow_run_action_outputs",
            "cancel_live_flow_run",
            "resubmit_live_flow_run",
            "trigger_live_flow",
            "list_live_connections",
        ] {
            assert!(names.contains(&want), "{want} in {names:?}");
        }
        let settings = (t.settings)(&TemplateBody::default());
        for b in settings["skills"]["bundles"].as_array().unwrap() {
            for tool in b["tools"].as_array().unwrap() {
                assert!(names.contains(&tool.as_str().unwrap()), "{tool} of {}", b["name"]);
            }
        }
        // `api-version` is fixed by the document: no tool asks the model for it.
        for tool in &report.tools {
            assert!(tool.input_schema["properties"].get("api-version").is_none(), "{}", tool.name);
        }
        let target = &settings["usage_target"];
        let flows = report.tools.iter().find(|t| t.name == "list_live_flows").unwrap();
        assert!(flows.input_schema["properties"].get(target.as_str().unwrap()).is_some());
    }
}
