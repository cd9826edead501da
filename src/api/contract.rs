//! The owner API's contract: for every route, its request body, query parameters, success
//! status and answer, as JSON Schemas derived from the Rust types the handlers read and write
//! (`schemars`), published as `GET /api/v1/openapi.json` (OpenAPI 3.1).
//!
//! The document is generated on the host ([`generate`], `flowcp openapi`) and committed as
//! `src/api/openapi.json`, which the Worker serves ([`openapi_document`]): generating it inside
//! the Worker would link schemars and every type's schema code into the wasm (issue 18, bundle
//! size). The test `the_committed_document_is_current` fails when the two differ; `node
//! scripts/gen-api-types.mjs` rewrites it.
//!
//! [`contract`] matches every [`RouteId`] exhaustively, so a new route does not build until its
//! contract is written; the e2e suite checks every answer of the owner journey against the
//! document (`tests/e2e/contract.test.mjs`), so a handler that answers something else fails it.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use super::routes::{Access, RouteId, ROUTES};
use super::{accounts, apps, data, servers, views, workspaces};
use crate::store::apps::{App, ImportRecord};
use crate::store::audit::{AuditRow, Outcome};
use crate::store::invitations::Invitation;
use crate::store::secrets::SecretInfo;
use crate::store::servers::AccessKey;
use crate::store::workspaces::{Member, Workspace};

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// What a route reads.
#[derive(Clone, Copy)]
pub enum Body {
    None,
    /// A JSON body; `false` when it may be left out.
    Json(SchemaFn, bool),
    /// An OpenAPI document (JSON or YAML) or `{"url": ...}`.
    Document,
}

/// A query parameter of a listing.
#[derive(Clone, Copy)]
pub struct Query {
    pub name: &'static str,
    pub description: &'static str,
    pub schema: fn() -> Value,
}

/// One route's contract.
#[derive(Clone, Copy)]
pub struct Contract {
    pub status: u16,
    pub body: Body,
    pub query: &'static [Query],
    /// `None`: no body (204), or the API document itself.
    pub answer: Option<SchemaFn>,
}

fn limit() -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": 200, "default": 50 })
}
fn text() -> Value {
    json!({ "type": "string" })
}
fn ms() -> Value {
    json!({ "type": "integer", "description": "Milliseconds since the epoch" })
}
fn boolean_text() -> Value {
    json!({ "type": "string", "enum": ["true", "false"] })
}
fn include() -> Value {
    json!({ "type": "string", "enum": ["schema"] })
}
fn outcome() -> Value {
    json!({ "type": "string", "enum": Outcome::ALL.iter().map(|o| o.as_str()).collect::<Vec<_>>() })
}

const PAGED: &[Query] = &[
    Query { name: "limit", description: "Items per page, 1 to 200", schema: limit },
    Query { name: "cursor", description: "next_cursor of the previous page", schema: text },
];
const TOOL_FILTERS: &[Query] = &[
    Query { name: "limit", description: "Items per page, 1 to 200", schema: limit },
    Query { name: "cursor", description: "next_cursor of the previous page", schema: text },
    Query { name: "tag", description: "Only tools with this tag", schema: text },
    Query { name: "q", description: "Search in names, descriptions and paths", schema: text },
    Query { name: "enabled", description: "Only enabled (true) or disabled (false) tools", schema: boolean_text },
    Query { name: "include", description: "schema: add each tool's input and output schema", schema: include },
];
const ACTIVITY_FILTERS: &[Query] = &[
    Query { name: "server", description: "Only this server's calls", schema: text },
    Query { name: "tool", description: "Only this tool's calls", schema: text },
    Query { name: "outcome", description: "Only calls that ended so", schema: outcome },
    Query { name: "since", description: "From this time (ms, inclusive; default: 24 hours ago)", schema: ms },
    Query { name: "until", description: "Before this time (ms; default: now)", schema: ms },
    Query { name: "bucket", description: "Bucket width in ms (default: about 60 buckets)", schema: ms },
];
const AUDIT_FILTERS: &[Query] = &[
    Query { name: "limit", description: "Items per page, 1 to 200", schema: limit },
    Query { name: "cursor", description: "next_cursor of the previous page", schema: text },
    Query { name: "server", description: "Only this server's calls", schema: text },
    Query { name: "tool", description: "Only this tool's calls", schema: text },
    Query { name: "outcome", description: "Only calls that ended so", schema: outcome },
    Query { name: "since", description: "From this time (ms, inclusive)", schema: ms },
    Query { name: "until", description: "Before this time (ms)", schema: ms },
];

/// Every route's contract. Exhaustive: a new route must say what it reads and answers.
pub fn contract(id: RouteId) -> Contract {
    use views::*;
    use RouteId::*;
    let c = |status: u16, body: Body, answer: Option<SchemaFn>| Contract { status, body, query: &[], answer };
    let json = |f: SchemaFn| Body::Json(f, true);
    match id {
        Signup => c(201, json(of::<accounts::SignupBody>), Some(of::<SignedUp>)),
        Login => c(200, json(of::<accounts::LoginBody>), Some(of::<LoggedIn>)),
        Logout => c(204, Body::None, None),
        VerifyEmail => c(200, json(of::<accounts::TokenBody>), Some(of::<EmailVerified>)),
        RequestPasswordReset => c(202, json(of::<accounts::ResetRequestBody>), Some(of::<MailAccepted>)),
        ConfirmPasswordReset => c(204, json(of::<accounts::ResetConfirmBody>), None),
        ResendVerification => c(202, Body::None, Some(of::<MailAccepted>)),
        AcceptInvitation => c(200, json(of::<accounts::TokenBody>), Some(of::<Workspace>)),
        Me => c(200, Body::None, Some(of::<views::Me>)),
        ChangePassword => c(200, json(of::<accounts::ChangePasswordBody>), Some(of::<PasswordChanged>)),
        UpdateMe => c(200, json(of::<accounts::UpdateMeBody>), Some(of::<UserView>)),
        ChangeEmail => c(202, json(of::<accounts::ChangeEmailBody>), Some(of::<MailAccepted>)),
        ConfirmEmail => c(200, json(of::<accounts::TokenBody>), Some(of::<EmailVerified>)),
        ListAgentConnections => c(200, Body::None, Some(of::<Items<crate::store::connections::AgentConnection>>)),
        RevokeAgentConnection => c(204, Body::None, None),
        ListWorkspaces => c(200, Body::None, Some(of::<Items<Workspace>>)),
        ListTemplates => c(200, Body::None, Some(of::<Items<super::templates::TemplateView>>)),
        CreateFromTemplate => {
            c(201, json(of::<super::templates::TemplateBody>), Some(of::<super::templates::FromTemplate>))
        }
        CreateWorkspace => c(201, json(of::<workspaces::CreateBody>), Some(of::<Workspace>)),
        GetWorkspace => c(200, Body::None, Some(of::<Workspace>)),
        UpdateWorkspace => c(200, json(of::<super::workspaces::UpdateWorkspaceBody>), Some(of::<Workspace>)),
        GetPlan => c(200, Body::None, Some(of::<super::workspaces::PlanView>)),
        ListMembers => c(200, Body::None, Some(of::<Items<Member>>)),
        Invite => c(202, json(of::<workspaces::InviteBody>), Some(of::<Invitation>)),
        ListInvitations => c(200, Body::None, Some(of::<Items<Invitation>>)),
        WithdrawInvitation => c(204, Body::None, None),
        UpdateMember => c(200, json(of::<workspaces::RoleBody>), Some(of::<MemberRole>)),
        RemoveMember => c(204, Body::None, None),
        ListApps => Contract { query: PAGED, ..c(200, Body::None, Some(of::<Page<App>>)) },
        CreateApp => c(201, json(of::<apps::CreateAppBody>), Some(of::<App>)),
        GetApp => c(200, Body::None, Some(of::<App>)),
        UpdateApp => c(200, json(of::<apps::CreateAppBody>), Some(of::<App>)),
        DeleteApp => c(204, Body::None, None),
        CreateImport => c(201, Body::Document, Some(of::<ImportRecord>)),
        ListImports => c(200, Body::None, Some(of::<Items<ImportRecord>>)),
        RestoreImport => c(201, Body::None, Some(of::<ImportRecord>)),
        ListGitConnections => c(200, Body::None, Some(of::<Items<crate::store::git::Connection>>)),
        ConnectGit => c(201, json(of::<super::git::ConnectBody>), Some(of::<super::git::Connecting>)),
        DisconnectGit => c(204, Body::None, None),
        TestGitSource => c(200, json(of::<super::git::TestBody>), Some(of::<super::git::TestResult>)),
        GetAppSource => c(200, Body::None, Some(of::<super::git::SourceView>)),
        PutAppSource => c(200, json(of::<super::git::SourceBody>), Some(of::<super::git::SourceSet>)),
        UpdateAppSource => c(200, json(of::<super::git::UpdateSourceBody>), Some(of::<super::git::SourceView>)),
        DeleteAppSource => c(204, Body::None, None),
        SyncAppSource => c(200, Body::None, Some(of::<super::git_sync::SyncReport>)),
        ListTools => Contract { query: TOOL_FILTERS, ..c(200, Body::None, Some(of::<Page<ToolView>>)) },
        UpdateTool => c(200, json(of::<apps::UpdateToolBody>), Some(of::<ToolView>)),
        BulkUpdateTools => c(200, json(of::<apps::BulkBody>), Some(of::<BulkUpdated>)),
        ListServers => c(200, Body::None, Some(of::<Items<ServerView>>)),
        CreateServer => c(201, json(of::<servers::CreateBody>), Some(of::<ServerView>)),
        GetServer => c(200, Body::None, Some(of::<ServerView>)),
        UpdateServer => c(200, json(of::<servers::UpdateBody>), Some(of::<ServerView>)),
        DeleteServer => c(204, Body::None, None),
        PutCredential => c(200, json(of::<servers::CredentialBody>), Some(of::<CredentialState>)),
        DeleteCredential => c(200, Body::None, Some(of::<CredentialState>)),
        CreateKey => c(201, Body::Json(of::<servers::CreateKeyBody>, false), Some(of::<CreatedKey>)),
        ListKeys => c(200, Body::None, Some(of::<Items<AccessKey>>)),
        RevokeKey => c(204, Body::None, None),
        ListConnections => c(200, Body::None, Some(of::<Items<crate::store::connections::Connection>>)),
        RevokeConnection => c(204, Body::None, None),
        ListKeyUsers => c(200, Body::None, Some(of::<Items<super::servers::KeyUserUsage>>)),
        RevokeKeyUser => c(204, Body::None, None),
        Verify => c(200, Body::None, Some(of::<Verified>)),
        Publish => c(200, Body::None, Some(of::<Published>)),
        Unpublish => c(200, Body::None, Some(of::<ServerView>)),
        ListSecrets => c(200, Body::None, Some(of::<Items<SecretInfo>>)),
        PutSecret => c(200, json(of::<data::SecretBody>), Some(of::<SecretSet>)),
        DeleteSecret => c(204, Body::None, None),
        ListVersions => c(200, Body::None, Some(of::<Versions>)),
        TryTool => c(200, json(of::<servers::TryBody>), Some(of::<TryOutcome>)),
        Onboard => c(200, json(of::<super::onboard::OnboardBody>), Some(of::<super::onboard::Onboarded>)),
        Activity => Contract { query: ACTIVITY_FILTERS, ..c(200, Body::None, Some(of::<ActivitySeries>)) },
        ListAudit => Contract { query: AUDIT_FILTERS, ..c(200, Body::None, Some(of::<Page<AuditRow>>)) },
        DeleteWorkspace => c(204, Body::None, None),
        DeleteAccount => c(204, json(of::<data::DeleteAccountBody>), None),
        Export => c(200, Body::None, Some(of::<views::Export>)),
        ApiDocument => c(200, Body::None, None),
    }
}

/// The operationId of a route in the API document (`ListApps` -> `listApps`).
pub fn operation_id(id: RouteId) -> String {
    let name = format!("{id:?}");
    let mut chars = name.chars();
    chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn error_schema() -> Value {
    json!({
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
                    "message": { "type": "string", "description": "For people; safe to show" }
                }
            }
        },
        "examples": [{ "error": { "code": "not_found", "message": "Not found." } }]
    })
}

/// The committed document (see the module's doc), generated for [`COMMITTED_ORIGIN`].
const COMMITTED: &str = include_str!("openapi.json");

/// The origin the committed document names; [`openapi_document`] puts the deployment's in.
pub const COMMITTED_ORIGIN: &str = "https://flowcp.example";

/// This API's OpenAPI 3.1 document for a deployment at `origin`: the committed copy of
/// [`generate`]'s, with `origin` as its server.
pub fn openapi_document(origin: &str) -> Value {
    // The copy is checked by a test against the generator; should it ever fail to parse, the
    // route still answers (an empty document) rather than panicking.
    let mut doc: Value = serde_json::from_str(COMMITTED).unwrap_or_else(|_| json!({}));
    doc["servers"] = json!([{ "url": origin }]);
    doc
}

/// This API's OpenAPI 3.1 document, generated from [`ROUTES`] and [`contract`] (host only in
/// practice: the Worker serves the committed copy).
pub fn generate(origin: &str) -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut g = settings.into_generator();
    let mut paths = Map::new();
    for route in ROUTES {
        let c = contract(route.id);
        let mut params: Vec<Value> = route
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
        params.extend(c.query.iter().map(|q| {
            json!({ "name": q.name, "in": "query", "required": false, "description": q.description, "schema": (q.schema)() })
        }));
        let success = match (c.answer, route.id) {
            (Some(answer), _) => {
                json!({ "description": "OK", "content": { "application/json": { "schema": answer(&mut g) } } })
            }
            (None, RouteId::ApiDocument) => json!({
                "description": "This document",
                "content": { "application/json": { "schema": { "type": "object" } } }
            }),
            (None, _) => json!({ "description": "Done" }),
        };
        let mut op = json!({
            "operationId": operation_id(route.id),
            "summary": route.summary,
            "parameters": params,
            "responses": {
                c.status.to_string(): success,
                "default": {
                    "description": "Error",
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
                }
            }
        });
        if route.access != Access::Public {
            op["security"] = json!([{ "session": [] }]);
        }
        match c.body {
            Body::None => {}
            Body::Json(schema, required) => {
                op["requestBody"] = json!({
                    "required": required,
                    "content": { "application/json": { "schema": schema(&mut g) } }
                });
            }
            Body::Document => {
                op["requestBody"] = json!({
                    "required": true,
                    "description": "An OpenAPI 3.x or Swagger 2.0 document (JSON or YAML), or {\"url\": ...} to fetch one",
                    "content": {
                        "application/json": { "schema": { "oneOf": [
                            of::<apps::ImportUrlBody>(&mut g),
                            { "type": "object", "description": "An OpenAPI or Swagger document" }
                        ] } },
                        "application/yaml": { "schema": { "type": "string" } }
                    }
                });
            }
        }
        let item = paths.entry(route.pattern.to_string()).or_insert_with(|| json!({}));
        item[route.method.to_ascii_lowercase()] = op;
    }
    let mut schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    schemas.insert("Error".into(), error_schema());
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
            "schemas": schemas
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        generate(COMMITTED_ORIGIN)
    }

    /// The document the Worker serves is the generator's, word for word: a contract change
    /// without `node scripts/gen-api-types.mjs` fails here.
    #[test]
    fn the_committed_document_is_current() {
        let committed: Value = serde_json::from_str(COMMITTED).expect("src/api/openapi.json is JSON");
        // As text: Map equality ignores the order of keys.
        assert!(
            serde_json::to_string(&committed).ok() == serde_json::to_string(&doc()).ok(),
            "src/api/openapi.json is not the generated document: run `node scripts/gen-api-types.mjs` and commit it"
        );
        assert_eq!(
            openapi_document("https://mcp.example.com")["servers"],
            json!([{ "url": "https://mcp.example.com" }])
        );
        assert_eq!(openapi_document("https://mcp.example.com")["paths"], committed["paths"]);
    }

    #[test]
    fn the_error_schema_lists_every_error_code() {
        let doc = doc();
        let codes = &doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"];
        assert_eq!(codes.as_array().map(Vec::len), Some(crate::error::ErrorCode::ALL.len()));
        assert!(codes.as_array().unwrap().contains(&json!("wrong_password")));
    }

    #[test]
    fn openapi_document_lists_every_route_and_imports_into_flowcp() {
        let doc = doc();
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

    /// Every `$ref` points at a schema the document has, and every answer but 204 and the
    /// document itself names a schema.
    #[test]
    fn every_reference_resolves_and_every_answer_has_a_schema() {
        let doc = doc();
        let text = doc.to_string();
        for (i, _) in text.match_indices("\"$ref\":\"#/components/schemas/") {
            let rest = &text[i + 29..];
            let name = &rest[..rest.find('"').unwrap()];
            assert!(doc["components"]["schemas"][name].is_object(), "dangling $ref {name}");
        }
        for r in ROUTES {
            let c = contract(r.id);
            let answer = &doc["paths"][r.pattern][r.method.to_ascii_lowercase()]["responses"][c.status.to_string()];
            let schema = &answer["content"]["application/json"]["schema"];
            match (c.status, r.id) {
                (204, _) => assert!(answer.get("content").is_none(), "{:?}", r.id),
                (_, RouteId::ApiDocument) => {}
                _ => assert!(schema["$ref"].is_string(), "{:?} answers {schema}", r.id),
            }
        }
    }

    /// The document never names a stored secret's field: if a `#[serde(skip)]` on a store row
    /// went missing, the field would appear in the derived schema (and in the answers, where
    /// the e2e contract test alone could not tell it from a declared field).
    #[test]
    fn no_schema_names_a_secret_field() {
        let doc = doc();
        let text = doc["components"].to_string();
        for field in ["key_hash", "credential_key", "kv_key", "password_hash", "id_hash", "csrf_hash", "document_key"] {
            assert!(!text.contains(&format!("\"{field}\"")), "the document names {field}");
        }
        // Only the new-key answer carries a secret, and only as `key`.
        let created = &doc["components"]["schemas"]["CreatedKey"]["properties"];
        assert!(created["key"].is_object(), "{created}");
    }

    /// Importing the document into FlowCP gives tools whose input schemas name every field of
    /// every request body and every query parameter: the management MCP server (issue 15) and
    /// the dashboard's typed client are built on this document.
    #[test]
    fn imported_tools_name_every_body_field_and_query_parameter() {
        let doc = doc();
        let report = crate::tools::import(&serde_json::to_vec(&doc).unwrap()).unwrap();
        let tool = |id: RouteId| {
            let op = operation_id(id);
            report.tools.iter().find(|t| t.operation_key.contains(&op) || t.name == op).cloned()
        };
        let props = |id: RouteId| -> Vec<String> {
            let t = tool(id).unwrap_or_else(|| panic!("no tool for {id:?}"));
            let schema = serde_json::to_string(&t.input_schema).unwrap();
            [
                "email",
                "password",
                "display_name",
                "workspace_name",
                "accept_terms",
                "role",
                "tool_ids",
                "auth_mode",
                "auth_config",
                "base_url",
                "probe_tool",
                "value",
                "limit",
                "cursor",
                "enabled",
                "include",
                "outcome",
                "since",
                "current_password",
                "new_password",
                "token",
                "app_id",
                "url",
            ]
            .into_iter()
            .filter(|f| schema.contains(&format!("\"{f}\"")))
            .map(str::to_string)
            .collect()
        };
        let signup = props(RouteId::Signup);
        for f in ["email", "password", "display_name", "workspace_name", "accept_terms"] {
            assert!(signup.contains(&f.to_string()), "signup lacks {f}: {signup:?}");
        }
        for (id, fields) in [
            (RouteId::UpdateServer, &["auth_mode", "auth_config", "base_url", "probe_tool"][..]),
            (RouteId::BulkUpdateTools, &["tool_ids", "enabled"][..]),
            (RouteId::ListTools, &["limit", "cursor", "enabled", "include"][..]),
            (RouteId::ListAudit, &["limit", "cursor", "outcome", "since"][..]),
            (RouteId::ChangePassword, &["current_password", "new_password"][..]),
            (RouteId::ChangeEmail, &["current_password"][..]),
            (RouteId::Activity, &["outcome", "since"][..]),
            (RouteId::CreateServer, &["app_id"][..]),
            (RouteId::Invite, &["email", "role"][..]),
            (RouteId::ConfirmPasswordReset, &["token", "new_password"][..]),
        ] {
            let got = props(id);
            for f in fields {
                assert!(got.contains(&f.to_string()), "{id:?} lacks {f}: {got:?}");
            }
        }
    }
}
