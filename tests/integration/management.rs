//! Issue 15 (first part): FlowCP's own MCP tools come from FlowCP's own OpenAPI document through
//! the engine, with the committed curation. No drift: every operation of the live document has a
//! decision (exposed, or excluded with a reason), and every decision names an operation.

use std::collections::BTreeSet;

use flowcp::api::routes::ROUTES;
use flowcp::mcp::management::{curation, tools, Decision};
use flowcp::tools::names::is_valid_tool_name;
use serde_json::Value;

#[test]
fn every_route_has_a_decision_and_every_decision_a_route() {
    let decisions = curation().expect("the curation parses");
    let doc = flowcp::api::contract::openapi_document("https://flowcp.example");
    let mut ops = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                ops.insert(id.to_string());
            }
        }
    }
    assert_eq!(ops.len(), ROUTES.len(), "one operation per route");
    let decided: BTreeSet<String> = decisions.keys().cloned().collect();
    let undecided: Vec<_> = ops.difference(&decided).collect();
    let stale: Vec<_> = decided.difference(&ops).collect();
    assert!(
        undecided.is_empty() && stale.is_empty(),
        "new routes need a decision in src/mcp/management_tools.json: {undecided:?}; stale decisions: {stale:?}"
    );
    for (op, d) in &decisions {
        match d {
            Decision::Exclude { exclude } => assert!(exclude.len() > 20, "{op}: say why it is excluded"),
            Decision::Expose { description, .. } => assert!(description.len() > 20, "{op}: describe it for agents"),
        }
    }
}

#[test]
fn the_tools_are_generated_named_and_described_as_curated() {
    let tools = tools("https://flowcp.example").expect("no drift");
    let exposed = curation().unwrap().values().filter(|d| matches!(d, Decision::Expose { .. })).count();
    assert_eq!(tools.len(), exposed);
    let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), tools.len(), "names are unique");
    assert!(tools.iter().all(|t| is_valid_tool_name(&t.name)), "names are valid tool names");
    // The issue's exclusions: no account deletion, password change or sign-up.
    for op in ["deleteAccount", "changePassword", "signup", "login"] {
        assert!(tools.iter().all(|t| t.operation_id.as_deref() != Some(op)), "{op} is exposed");
    }
    let by = |name: &str| tools.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name} missing"));
    let publish = by("publish_server");
    assert_eq!(publish.request.path, "/api/v1/workspaces/{ws}/servers/{srv}/publish");
    assert!(
        publish.request.servers.iter().any(|s| s.starts_with("https://flowcp.example")),
        "{:?}",
        publish.request.servers
    );
    assert_eq!(publish.annotations.destructive_hint, Some(false), "curated annotations apply");
    assert_eq!(by("list_tools").annotations.read_only_hint, Some(true), "the method's annotations stay");
    assert_eq!(by("delete_app").annotations.destructive_hint, Some(true));
    let import = by("import_document");
    assert!(import.description.starts_with("Import the app's OpenAPI"), "{}", import.description);
    let required = import.input_schema["required"].as_array().cloned().unwrap_or_default();
    assert!(required.contains(&Value::from("ws")) && required.contains(&Value::from("app")), "{required:?}");
}

#[test]
fn a_decision_written_twice_is_refused() {
    let twice = r#"{ "export": { "exclude": "The person's own data export, in the dashboard." },
                    "export": { "name": "export", "description": "Everything, for the agent to read." } }"#;
    let err = flowcp::mcp::management::curation_of(twice).unwrap_err();
    assert!(err.contains("export is decided twice"), "{err}");
}

#[test]
fn a_decision_must_be_one_or_the_other() {
    let mixed = serde_json::json!({ "exclude": "because it is not for agents", "name": "x", "description": "y" });
    assert!(serde_json::from_value::<Decision>(mixed).is_err(), "a decision with both shapes is refused");
    let neither = serde_json::json!({ "name": "x" });
    assert!(serde_json::from_value::<Decision>(neither).is_err());
}

/// The in-process upstream of the management server: a grant reaches one workspace and the
/// exposed routes only, with the API's role rules, and never leaves FlowCP.
#[test]
fn a_grant_reaches_only_its_workspace_and_the_exposed_routes() {
    use crate::api::{api_key_server, invite_and_accept, signed_up, Env};
    use flowcp::mcp::management::InProcess;
    use flowcp::net::{Http, HttpRequest};
    use flowcp::store::block_on;

    let env = Env::new();
    let ws_b = signed_up(&env, "grant-owner@example.com");
    let owner = env.session();
    let ws_a = env.call("POST", "/api/v1/workspaces", Some(serde_json::json!({ "name": "A" }))).body.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (app_a, srv_a) = api_key_server(&env, &ws_a);
    let (_, srv_b) = api_key_server(&env, &ws_b);
    let owner_id = env.call("GET", "/api/v1/me", None).body.unwrap()["user"]["id"].as_str().unwrap().to_string();
    let svc = env.services();
    let grant = InProcess { svc: &svc, user_id: owner_id.clone(), workspace_id: ws_a.clone() };
    let send = |http: &InProcess<'_, '_, _, _, _>, method: &str, path: &str, body: Option<Value>| {
        let req = HttpRequest {
            method: method.into(),
            url: format!("https://flowcp.example{path}"),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.map(|b| serde_json::to_vec(&b).unwrap()),
            timeout_ms: 1000,
        };
        let r = block_on(http.send(&req, 1 << 20)).expect("answered in-process");
        (r.status, serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null))
    };

    // Its own workspace works, with no cookie and no CSRF token.
    let (status, apps) = send(&grant, "GET", &format!("/api/v1/workspaces/{ws_a}/apps"), None);
    assert_eq!((status, apps["items"][0]["id"].as_str()), (200, Some(app_a.as_str())));
    let (status, _) = send(
        &grant,
        "POST",
        &format!("/api/v1/workspaces/{ws_a}/apps"),
        Some(serde_json::json!({ "name": "Via MCP" })),
    );
    assert_eq!(status, 201);
    // Another workspace of the same user does not exist for this grant, nor do its servers.
    for path in [
        format!("/api/v1/workspaces/{ws_b}"),
        format!("/api/v1/workspaces/{ws_b}/apps"),
        format!("/api/v1/workspaces/{ws_b}/servers/{srv_b}"),
        format!("/api/v1/workspaces/{ws_a}/servers/{srv_b}"),
    ] {
        let (status, body) = send(&grant, "GET", &path, None);
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (_, list) = send(&grant, "GET", "/api/v1/workspaces", None);
    let ids: Vec<&str> = list["items"].as_array().unwrap().iter().filter_map(|w| w["id"].as_str()).collect();
    assert_eq!(ids, vec![ws_a.as_str()], "only the bound workspace is listed");
    let (_, me) = send(&grant, "GET", "/api/v1/me", None);
    assert_eq!(me["workspaces"].as_array().map(Vec::len), Some(1), "{me}");
    assert_eq!(me["csrf_token"], "", "a grant gets no CSRF token");
    // Excluded routes answer as if they did not exist: account deletion, password, sign-up, export.
    for (method, path, body) in [
        ("DELETE", "/api/v1/me".to_string(), Some(serde_json::json!({ "password": "a long enough password" }))),
        (
            "POST",
            "/api/v1/me/password".to_string(),
            Some(
                serde_json::json!({ "current_password": "a long enough password", "new_password": "another long password" }),
            ),
        ),
        ("GET", "/api/v1/me/export".to_string(), None),
        ("POST", "/api/v1/auth/logout".to_string(), None),
        ("DELETE", format!("/api/v1/workspaces/{ws_a}"), None),
    ] {
        let (status, body) = send(&grant, method, &path, body);
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    assert_eq!(
        env.call_as("GET", "/api/v1/me", owner.0.as_deref(), owner.1.as_deref(), None).status,
        200,
        "the account is intact"
    );
    // Never anything but FlowCP's own API.
    for url in
        ["https://api.example.com/v1/things", "https://flowcp.example/mcp/srv_x", "http://flowcp.example/api/v1/me"]
    {
        let req = HttpRequest { method: "GET".into(), url: url.into(), headers: vec![], body: None, timeout_ms: 1000 };
        assert!(block_on(grant.send(&req, 1024)).is_err(), "{url} was called");
    }
    assert!(env.http.seen.borrow().is_empty(), "nothing left the Worker");

    // A member's grant: reads and curates, but cannot publish or see credentials' keys.
    signed_up(&env, "grant-member@example.com");
    let member = env.session();
    invite_and_accept(&env, &ws_a, &owner, &member, "grant-member@example.com", "member");
    let member_id = env.call_as("GET", "/api/v1/me", member.0.as_deref(), member.1.as_deref(), None).body.unwrap()
        ["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let as_member = InProcess { svc: &svc, user_id: member_id, workspace_id: ws_a.clone() };
    assert_eq!(send(&as_member, "GET", &format!("/api/v1/workspaces/{ws_a}/servers/{srv_a}"), None).0, 200);
    let (status, body) = send(&as_member, "POST", &format!("/api/v1/workspaces/{ws_a}/servers/{srv_a}/publish"), None);
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    // A grant of a workspace the user is not a member of is dead: 401 (connect again) everywhere.
    let stranger = InProcess { svc: &svc, user_id: owner_id.clone(), workspace_id: "ws_not_theirs".into() };
    assert_eq!(send(&stranger, "GET", "/api/v1/workspaces/ws_not_theirs/apps", None).0, 401);
    assert_eq!(send(&stranger, "GET", &format!("/api/v1/workspaces/{ws_a}/apps"), None).0, 401);
    assert_eq!(send(&stranger, "GET", "/api/v1/me", None).0, 401);

    // Roles and membership are read at every call: promoted, the member publishes past the role
    // check (verification is what stops it now); demoted again, refused; removed, the grant is dead.
    let member_path = format!("/api/v1/workspaces/{ws_a}/members/{}", as_member.user_id);
    let promote = env.call_as(
        "PATCH",
        &member_path,
        owner.0.as_deref(),
        owner.1.as_deref(),
        Some(serde_json::json!({ "role": "admin" })),
    );
    assert_eq!(promote.status, 200, "{:?}", promote.body);
    let (status, body) = send(&as_member, "POST", &format!("/api/v1/workspaces/{ws_a}/servers/{srv_a}/publish"), None);
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("not_verified")), "{body}");
    env.call_as(
        "PATCH",
        &member_path,
        owner.0.as_deref(),
        owner.1.as_deref(),
        Some(serde_json::json!({ "role": "member" })),
    );
    assert_eq!(send(&as_member, "POST", &format!("/api/v1/workspaces/{ws_a}/servers/{srv_a}/publish"), None).0, 403);
    assert_eq!(env.call_as("DELETE", &member_path, owner.0.as_deref(), owner.1.as_deref(), None).status, 204);
    assert_eq!(send(&as_member, "GET", &format!("/api/v1/workspaces/{ws_a}/apps"), None).0, 401);
    assert_eq!(send(&as_member, "GET", "/api/v1/me", None).0, 401);
    assert_eq!(send(&as_member, "GET", "/api/v1/workspaces", None).0, 401);
}

/// Whatever a curation exposes, a grant reaches no account-level route but `me` and the
/// workspace list (export, invitations and new workspaces span or leave its workspace).
#[test]
fn a_grant_never_reaches_account_level_routes_even_if_exposed() {
    use crate::api::{signed_up, Env};
    use flowcp::api::routes::RouteId;
    use flowcp::api::{handle_as, Principal, Request};
    use flowcp::store::block_on;

    let env = Env::new();
    let ws = signed_up(&env, "wide@example.com");
    let user = env.call("GET", "/api/v1/me", None).body.unwrap()["user"]["id"].as_str().unwrap().to_string();
    let svc = env.services();
    let every: Vec<RouteId> = ROUTES.iter().map(|r| r.id).collect();
    let grant = Principal::Grant { user_id: &user, workspace_id: &ws, routes: &every };
    let call = |method: &str, path: &str, body: &str| {
        let req = Request {
            method: method.into(),
            path: path.into(),
            query: vec![],
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
            client_addr: None,
        };
        match block_on(handle_as(&svc, &req, &grant)) {
            Ok(r) => r.status,
            Err(e) => flowcp::api::Response::from_error(&e).status,
        }
    };
    assert_eq!(call("GET", "/api/v1/me", ""), 200);
    assert_eq!(call("GET", "/api/v1/workspaces", ""), 200);
    for (method, path, body) in [
        ("GET", "/api/v1/me/export", ""),
        ("POST", "/api/v1/workspaces", r#"{"name":"Elsewhere"}"#),
        ("POST", "/api/v1/invitations/accept", r#"{"token":"x"}"#),
        ("PATCH", "/api/v1/me", r#"{"display_name":"Agent"}"#),
        ("DELETE", "/api/v1/me", r#"{"password":"a long enough password"}"#),
        ("POST", "/api/v1/auth/login", r#"{"email":"wide@example.com","password":"a long enough password"}"#),
    ] {
        assert_eq!(call(method, path, body), 404, "{method} {path}");
    }
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM workspaces"), 1, "no workspace was made");
}

/// The management server end to end on the host: the MCP runtime serves the generated tools,
/// and each call goes in-process to the API as the grant. Another workspace's id is a tool
/// error saying it does not exist; nothing leaves the Worker.
#[test]
fn the_runtime_serves_the_management_tools_through_the_grant() {
    use crate::api::{api_key_server, signed_up, Env};
    use flowcp::crypto::Keyring;
    use flowcp::mcp::management::{loaded, InProcess};
    use flowcp::mcp::server::{handle_builtin, ManifestCache, McpRequest, Runtime};
    use flowcp::net::FetchPolicy;
    use flowcp::store::block_on;
    use serde_json::json;

    let env = Env::new();
    let other_ws = signed_up(&env, "agent-owner@example.com");
    let ws = env.call("POST", "/api/v1/workspaces", Some(json!({ "name": "Billing" }))).body.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (app, _) = api_key_server(&env, &ws);
    let user = env.call("GET", "/api/v1/me", None).body.unwrap()["user"]["id"].as_str().unwrap().to_string();
    let svc = env.services();
    let http = InProcess { svc: &svc, user_id: user, workspace_id: ws.clone() };
    let cache = ManifestCache::default();
    let keyring = Keyring::parse("k1:2222222222222222222222222222222222222222222222222222222222222222").unwrap();
    let clock = || 1_790_000_000_000i64;
    let rt = Runtime {
        kv: &env.kv,
        cache: &cache,
        http: &http,
        keyring: &keyring,
        fetch_policy: FetchPolicy::default(),
        origin: "https://flowcp.example".into(),
        clock: &clock,
        upstream_timeout_ms: 1000,
    };
    let server = loaded("https://flowcp.example").expect("the management manifest builds");
    let headers: Vec<(String, String)> = vec![
        ("content-type".into(), "application/json".into()),
        ("accept".into(), "application/json, text/event-stream".into()),
        ("mcp-protocol-version".into(), "2025-06-18".into()),
    ];
    let rpc = |method: &str, params: Value| {
        let body =
            serde_json::to_vec(&json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params })).unwrap();
        let r = block_on(handle_builtin(
            &rt,
            &server,
            Some("grant-hash"),
            &McpRequest { method: "POST", headers: &headers, body: &body },
        ));
        assert_eq!(r.status, 200, "{method}: {:?}", r.body);
        r
    };
    let list = rpc("tools/list", json!({}));
    let names: Vec<&str> = list.body.as_ref().unwrap()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"import_document") && names.contains(&"publish_server"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("password") || n.contains("delete_account")), "{names:?}");

    let apps = rpc("tools/call", json!({ "name": "list_apps", "arguments": { "ws": ws } }));
    let result = &apps.body.as_ref().unwrap()["result"];
    assert_eq!(result["isError"], Value::Null, "{result}");
    assert!(result.to_string().contains(&app), "{result}");
    assert_eq!(apps.audit.len(), 1, "the call is audited");
    assert_eq!(apps.audit[0].connection_hash.as_deref(), Some("grant-hash"));

    let other = rpc("tools/call", json!({ "name": "list_apps", "arguments": { "ws": other_ws } }));
    let result = &other.body.as_ref().unwrap()["result"];
    assert_eq!(result["isError"], true, "{result}");
    assert!(result.to_string().contains("404"), "{result}");
    // A path argument cannot climb out of its segment.
    let climb = rpc(
        "tools/call",
        json!({ "name": "get_workspace", "arguments": { "ws": format!("../workspaces/{other_ws}") } }),
    );
    assert_eq!(climb.body.as_ref().unwrap()["result"]["isError"], true);
    assert!(env.http.seen.borrow().is_empty(), "nothing left the Worker");
}
