//! The route table of `/api/v1` and the dispatcher.
//!
//! The table is data: the isolation tests and the API's OpenAPI document are generated from it,
//! so a new route cannot be forgotten by either. `Access::Workspace` routes have `{ws}` as their
//! first parameter; the dispatcher checks membership before any handler runs.

use super::{accounts, apps, context, data, servers, workspaces, Request, Response, Services};
use crate::error::ApiError;
use crate::net::Http;
use crate::store::{Db, Kv};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No session needed.
    Public,
    /// A valid session.
    Session,
    /// A valid session and membership of the `{ws}` workspace (non-members get 404).
    Workspace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    Signup,
    Login,
    Logout,
    Me,
    ChangePassword,
    ListWorkspaces,
    CreateWorkspace,
    GetWorkspace,
    ListMembers,
    AddMember,
    UpdateMember,
    RemoveMember,
    ListApps,
    CreateApp,
    GetApp,
    UpdateApp,
    DeleteApp,
    CreateImport,
    ListImports,
    ListTools,
    UpdateTool,
    BulkUpdateTools,
    ListServers,
    CreateServer,
    GetServer,
    UpdateServer,
    DeleteServer,
    PutCredential,
    DeleteCredential,
    CreateKey,
    ListKeys,
    RevokeKey,
    Verify,
    Publish,
    Unpublish,
    ListSecrets,
    PutSecret,
    DeleteSecret,
    ListAudit,
    DeleteWorkspace,
    DeleteAccount,
    Export,
    ApiDocument,
}

#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub pattern: &'static str,
    pub id: RouteId,
    pub access: Access,
    pub summary: &'static str,
}

const fn r(method: &'static str, pattern: &'static str, id: RouteId, access: Access, summary: &'static str) -> Route {
    Route { method, pattern, id, access, summary }
}

use Access::{Public, Session, Workspace};
use RouteId::*;

pub const ROUTES: &[Route] = &[
    r("POST", "/api/v1/auth/signup", Signup, Public, "Create an account and its first workspace"),
    r("POST", "/api/v1/auth/login", Login, Public, "Log in; sets the session cookie"),
    r("POST", "/api/v1/auth/logout", Logout, Session, "Log out; revokes the session"),
    r("GET", "/api/v1/me", Me, Session, "The signed-in user, workspaces and CSRF token"),
    r("POST", "/api/v1/me/password", ChangePassword, Session, "Change the password (revokes other sessions)"),
    r("GET", "/api/v1/workspaces", ListWorkspaces, Session, "Workspaces the user is a member of"),
    r("POST", "/api/v1/workspaces", CreateWorkspace, Session, "Create a workspace"),
    r("GET", "/api/v1/workspaces/{ws}", GetWorkspace, Workspace, "One workspace"),
    r("GET", "/api/v1/workspaces/{ws}/members", ListMembers, Workspace, "Members and roles"),
    r("POST", "/api/v1/workspaces/{ws}/members", AddMember, Workspace, "Add an existing user by email"),
    r("PATCH", "/api/v1/workspaces/{ws}/members/{user}", UpdateMember, Workspace, "Change a member's role (owners)"),
    r("DELETE", "/api/v1/workspaces/{ws}/members/{user}", RemoveMember, Workspace, "Remove a member, or leave"),
    r("GET", "/api/v1/workspaces/{ws}/apps", ListApps, Workspace, "Apps, cursor paged"),
    r("POST", "/api/v1/workspaces/{ws}/apps", CreateApp, Workspace, "Create an app"),
    r("GET", "/api/v1/workspaces/{ws}/apps/{app}", GetApp, Workspace, "One app"),
    r("PATCH", "/api/v1/workspaces/{ws}/apps/{app}", UpdateApp, Workspace, "Rename an app"),
    r("DELETE", "/api/v1/workspaces/{ws}/apps/{app}", DeleteApp, Workspace, "Delete an app and its data"),
    r("POST", "/api/v1/workspaces/{ws}/apps/{app}/imports", CreateImport, Workspace, "Import a document (upload)"),
    r("GET", "/api/v1/workspaces/{ws}/apps/{app}/imports", ListImports, Workspace, "Import history"),
    r("GET", "/api/v1/workspaces/{ws}/apps/{app}/tools", ListTools, Workspace, "Tools, paged, filtered"),
    r("PATCH", "/api/v1/workspaces/{ws}/apps/{app}/tools/{tool}", UpdateTool, Workspace, "Curate one tool"),
    r("POST", "/api/v1/workspaces/{ws}/apps/{app}/tools/bulk", BulkUpdateTools, Workspace, "Enable/disable many"),
    r("GET", "/api/v1/workspaces/{ws}/servers", ListServers, Workspace, "Servers"),
    r("POST", "/api/v1/workspaces/{ws}/servers", CreateServer, Workspace, "Create a server for an app"),
    r("GET", "/api/v1/workspaces/{ws}/servers/{srv}", GetServer, Workspace, "One server, MCP URL, client config"),
    r("PATCH", "/api/v1/workspaces/{ws}/servers/{srv}", UpdateServer, Workspace, "Configure a server"),
    r("DELETE", "/api/v1/workspaces/{ws}/servers/{srv}", DeleteServer, Workspace, "Delete a server"),
    r("PUT", "/api/v1/workspaces/{ws}/servers/{srv}/credential", PutCredential, Workspace, "Set the credential"),
    r("DELETE", "/api/v1/workspaces/{ws}/servers/{srv}/credential", DeleteCredential, Workspace, "Clear it"),
    r("POST", "/api/v1/workspaces/{ws}/servers/{srv}/keys", CreateKey, Workspace, "Create an access key"),
    r("GET", "/api/v1/workspaces/{ws}/servers/{srv}/keys", ListKeys, Workspace, "Access keys (no secrets)"),
    r("DELETE", "/api/v1/workspaces/{ws}/servers/{srv}/keys/{key}", RevokeKey, Workspace, "Revoke a key"),
    r("POST", "/api/v1/workspaces/{ws}/servers/{srv}/verify", Verify, Workspace, "Run verification"),
    r("POST", "/api/v1/workspaces/{ws}/servers/{srv}/publish", Publish, Workspace, "Publish the manifest"),
    r("POST", "/api/v1/workspaces/{ws}/servers/{srv}/unpublish", Unpublish, Workspace, "Take it off the air"),
    r("GET", "/api/v1/workspaces/{ws}/secrets", ListSecrets, Workspace, "Secret names (never values)"),
    r("PUT", "/api/v1/workspaces/{ws}/secrets/{name}", PutSecret, Workspace, "Set a secret (write-only)"),
    r("DELETE", "/api/v1/workspaces/{ws}/secrets/{name}", DeleteSecret, Workspace, "Delete a secret"),
    r("GET", "/api/v1/workspaces/{ws}/audit", ListAudit, Workspace, "Audit events, newest first, cursor paged"),
    r("DELETE", "/api/v1/workspaces/{ws}", DeleteWorkspace, Workspace, "Delete a workspace and all its data"),
    r("DELETE", "/api/v1/me", DeleteAccount, Session, "Delete the account"),
    r("GET", "/api/v1/me/export", Export, Session, "Export all of the account's data"),
    r("GET", "/api/v1/openapi.json", ApiDocument, Public, "This API's OpenAPI 3.1 document"),
];

/// Path parameters captured by a route pattern, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(pub Vec<(&'static str, String)>);

impl Params {
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

fn match_pattern(pattern: &'static str, path: &str) -> Option<Params> {
    let mut params = Params::default();
    let mut pat = pattern.split('/');
    let mut segs = path.split('/');
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(s)) if p.starts_with('{') && p.ends_with('}') => {
                // Ids are short and url-safe; anything else cannot name a resource.
                if s.is_empty()
                    || s.len() > 64
                    || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return None;
                }
                params.0.push((&p[1..p.len() - 1], s.to_string()));
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

/// Finds the route: 404 when no pattern matches the path, 405 when only the method is wrong.
pub fn find(method: &str, path: &str) -> Result<(&'static Route, Params), ApiError> {
    let path = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
    let mut path_matched = false;
    for route in ROUTES {
        if let Some(params) = match_pattern(route.pattern, path) {
            if route.method == method {
                return Ok((route, params));
            }
            path_matched = true;
        }
    }
    Err(if path_matched { ApiError::method_not_allowed() } else { ApiError::not_found() })
}

pub async fn dispatch<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request) -> Result<Response, ApiError> {
    let (route, params) = find(&req.method, &req.path)?;
    let session = match route.access {
        Access::Public => None,
        Access::Session | Access::Workspace => Some(context::require_session(svc, req).await?),
    };
    let ctx = match (&session, route.access) {
        (Some(s), Access::Workspace) => Some(context::require_member(svc, s, params.get("ws")).await?),
        _ => None,
    };
    match (route.id, session, ctx) {
        (Signup, _, _) => accounts::signup(svc, req).await,
        (Login, _, _) => accounts::login(svc, req).await,
        (Logout, Some(s), _) => accounts::logout(svc, &s).await,
        (Me, Some(s), _) => accounts::me(svc, &s).await,
        (ChangePassword, Some(s), _) => accounts::change_password(svc, req, &s).await,
        (ListWorkspaces, Some(s), _) => workspaces::list(svc, &s).await,
        (CreateWorkspace, Some(s), _) => workspaces::create(svc, req, &s).await,
        (GetWorkspace, _, Some(m)) => workspaces::get(svc, &m).await,
        (ListMembers, _, Some(m)) => workspaces::members(svc, &m).await,
        (AddMember, _, Some(m)) => workspaces::add_member(svc, req, &m).await,
        (UpdateMember, _, Some(m)) => workspaces::update_member(svc, req, &m, params.get("user")).await,
        (RemoveMember, _, Some(m)) => workspaces::remove_member(svc, &m, params.get("user")).await,
        (ListApps, _, Some(m)) => apps::list(svc, req, &m).await,
        (CreateApp, _, Some(m)) => apps::create(svc, req, &m).await,
        (GetApp, _, Some(m)) => apps::get(svc, &m, params.get("app")).await,
        (UpdateApp, _, Some(m)) => apps::update(svc, req, &m, params.get("app")).await,
        (DeleteApp, _, Some(m)) => apps::delete(svc, &m, params.get("app")).await,
        (CreateImport, _, Some(m)) => apps::import(svc, req, &m, params.get("app")).await,
        (ListImports, _, Some(m)) => apps::imports(svc, &m, params.get("app")).await,
        (ListTools, _, Some(m)) => apps::tools(svc, req, &m, params.get("app")).await,
        (UpdateTool, _, Some(m)) => apps::update_tool(svc, req, &m, params.get("app"), params.get("tool")).await,
        (BulkUpdateTools, _, Some(m)) => apps::bulk_tools(svc, req, &m, params.get("app")).await,
        (ListServers, _, Some(m)) => servers::list(svc, &m).await,
        (CreateServer, _, Some(m)) => servers::create(svc, req, &m).await,
        (GetServer, _, Some(m)) => servers::get(svc, &m, params.get("srv")).await,
        (UpdateServer, _, Some(m)) => servers::update(svc, req, &m, params.get("srv")).await,
        (DeleteServer, _, Some(m)) => servers::delete(svc, &m, params.get("srv")).await,
        (PutCredential, _, Some(m)) => servers::put_credential(svc, req, &m, params.get("srv")).await,
        (DeleteCredential, _, Some(m)) => servers::delete_credential(svc, &m, params.get("srv")).await,
        (CreateKey, _, Some(m)) => servers::create_key(svc, req, &m, params.get("srv")).await,
        (ListKeys, _, Some(m)) => servers::list_keys(svc, &m, params.get("srv")).await,
        (RevokeKey, _, Some(m)) => servers::revoke_key(svc, &m, params.get("srv"), params.get("key")).await,
        (Verify, _, Some(m)) => servers::verify(svc, &m, params.get("srv")).await,
        (Publish, _, Some(m)) => servers::publish(svc, &m, params.get("srv")).await,
        (Unpublish, _, Some(m)) => servers::unpublish(svc, &m, params.get("srv")).await,
        (ListSecrets, _, Some(m)) => data::list_secrets(svc, &m).await,
        (PutSecret, _, Some(m)) => data::put_secret(svc, req, &m, params.get("name")).await,
        (DeleteSecret, _, Some(m)) => data::delete_secret(svc, &m, params.get("name")).await,
        (ListAudit, _, Some(m)) => data::list_audit(svc, req, &m).await,
        (DeleteWorkspace, _, Some(m)) => data::delete_workspace(svc, &m).await,
        (DeleteAccount, Some(s), _) => data::delete_account(svc, req, &s).await,
        (Export, Some(s), _) => data::export(svc, &s).await,
        (ApiDocument, _, _) => Ok(Response::ok(openapi_document(&svc.origin))),
        // Unreachable by construction (access levels above); fail closed all the same.
        _ => Err(ApiError::not_found()),
    }
}

fn operation_id(id: RouteId) -> String {
    let name = format!("{id:?}");
    let mut chars = name.chars();
    chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn status_for(route: &Route) -> &'static str {
    match (route.method, route.id) {
        (_, Signup | CreateWorkspace | AddMember | CreateApp | CreateImport | CreateServer | CreateKey) => "201",
        ("DELETE", _) | (_, Logout | ChangePassword) => "204",
        _ => "200",
    }
}

/// This API's OpenAPI 3.1 document, generated from [`ROUTES`] so it cannot drift from them.
pub fn openapi_document(origin: &str) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let mut paths = Map::new();
    for route in ROUTES {
        let params: Vec<Value> = route
            .pattern
            .split('/')
            .filter(|s| s.starts_with('{') && s.ends_with('}'))
            .map(|s| {
                json!({
                    "name": &s[1..s.len() - 1],
                    "in": "path",
                    "required": true,
                    "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" }
                })
            })
            .collect();
        let mut op = json!({
            "operationId": operation_id(route.id),
            "summary": route.summary,
            "parameters": params,
            "responses": {
                status_for(route): if status_for(route) == "204" {
                    json!({ "description": "Done" })
                } else {
                    json!({ "description": "OK", "content": { "application/json": { "schema": { "type": "object" } } } })
                },
                "default": { "description": "Error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            }
        });
        if route.access != Access::Public {
            op["security"] = json!([{ "session": [] }]);
        }
        if matches!(route.method, "POST" | "PUT" | "PATCH") && !matches!(route.id, Logout) {
            let mut content = json!({ "application/json": { "schema": { "type": "object" } } });
            if route.id == CreateImport {
                content["application/yaml"] = json!({ "schema": { "type": "string" } });
            }
            op["requestBody"] = json!({ "required": !matches!(route.id, CreateKey), "content": content });
        }
        let item = paths.entry(route.pattern.to_string()).or_insert_with(|| json!({}));
        item[route.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "FlowCP API",
            "version": crate::VERSION,
            "description": "The dashboard API of FlowCP. State-changing calls need the session cookie and the X-CSRF-Token header (from GET /api/v1/me)."
        },
        "servers": [{ "url": origin }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "cookie", "name": crate::auth::session::COOKIE_NAME }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {
                                    "type": "string",
                                    "enum": crate::error::ErrorCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()
                                },
                                "message": { "type": "string" }
                            }
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_schema_lists_every_error_code() {
        let doc = openapi_document("https://flowcp.example");
        let codes = &doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"];
        assert_eq!(codes.as_array().map(Vec::len), Some(crate::error::ErrorCode::ALL.len()));
        assert!(codes.as_array().unwrap().contains(&serde_json::json!("wrong_password")));
    }

    #[test]
    fn patterns_capture_ids_and_refuse_odd_segments() {
        let (route, params) = find("GET", "/api/v1/workspaces/ws_abc/apps/app_1").unwrap();
        assert_eq!(route.id, GetApp);
        assert_eq!(params.get("ws"), "ws_abc");
        assert_eq!(params.get("app"), "app_1");
        assert_eq!(find("GET", "/api/v1/workspaces/ws%20x/apps").unwrap_err().status, 404);
        assert_eq!(find("GET", "/api/v1/workspaces//apps").unwrap_err().status, 404);
        assert_eq!(find("PUT", "/api/v1/workspaces/ws_1/apps").unwrap_err().status, 405);
        assert_eq!(find("GET", "/api/v1/me/").unwrap().0.id, Me);
    }

    #[test]
    fn every_workspace_route_starts_with_the_workspace_parameter() {
        for r in ROUTES.iter().filter(|r| r.access == Access::Workspace) {
            assert!(r.pattern.starts_with("/api/v1/workspaces/{ws}"), "{}", r.pattern);
        }
    }

    #[test]
    fn openapi_document_lists_every_route_and_imports_into_flowcp() {
        let doc = openapi_document("https://flowcp.example");
        for r in ROUTES {
            assert!(doc["paths"][r.pattern][r.method.to_ascii_lowercase()].is_object(), "{} {}", r.method, r.pattern);
        }
        let documented: usize =
            doc["paths"].as_object().map_or(0, |p| p.values().filter_map(|i| i.as_object()).map(|i| i.len()).sum());
        assert_eq!(documented, ROUTES.len(), "the document has operations that are not routes");
        let report = crate::tools::import(&serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!(report.tools.len(), ROUTES.len());
        assert!(report.problems.iter().all(|p| p.severity != crate::openapi::Severity::Error), "{:?}", report.problems);
    }

    #[test]
    fn route_patterns_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for r in ROUTES {
            assert!(seen.insert((r.method, r.pattern)), "duplicate route {} {}", r.method, r.pattern);
        }
    }
}
