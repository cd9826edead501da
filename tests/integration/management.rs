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
        key_gate: None,
        quota: None,
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

/// A browser and an agent against FlowCP's authorization server and `/mcp`, on the host.
mod sign_in {
    use crate::api::Env;
    use flowcp::api::Response;
    use flowcp::mcp::server::{ManifestCache, McpRequest, McpResponse};
    use flowcp::store::block_on;
    use serde_json::{json, Value};

    pub const ORIGIN: &str = "https://flowcp.example";
    pub const REDIRECT: &str = "http://127.0.0.1:5555/cb";
    pub const VERIFIER: &str = "a-pkce-verifier-that-is-long-enough-0123456789";

    pub fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn html(r: &Response) -> String {
        r.body.as_ref().and_then(Value::as_str).unwrap_or_default().to_string()
    }

    /// A dynamically registered client.
    pub fn register(env: &Env) -> String {
        let r = env.raw(
            "POST",
            "/oauth/register",
            vec![("content-type".into(), "application/json".into())],
            serde_json::to_vec(&json!({ "client_name": "Claude Code", "redirect_uris": [REDIRECT] })).unwrap(),
        );
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body.unwrap()["client_id"].as_str().unwrap().to_string()
    }

    pub fn authorize_path(client_id: &str) -> String {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("code_challenge", &flowcp::oauth::pkce::challenge_s256(VERIFIER))
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", "st-1")
            .append_pair("resource", &format!("{ORIGIN}/mcp"))
            .finish();
        format!("/oauth/authorize?{q}")
    }

    /// The consent page shown to `session_cookie`: its ticket, the consent cookie, the page.
    pub fn consent(env: &Env, client_id: &str, session_cookie: &str) -> (String, String, String) {
        let r = env.raw("GET", &authorize_path(client_id), vec![("cookie".into(), session_cookie.into())], vec![]);
        assert_eq!(r.status, 200, "{:?}", r.body);
        let page = html(&r);
        let at = page.find("name=\"ticket\" value=\"").expect("a ticket") + "name=\"ticket\" value=\"".len();
        let ticket = page[at..].split('"').next().unwrap().to_string();
        let set = header(&r, "set-cookie").expect("the consent cookie");
        let nonce = set.split(';').next().unwrap().to_string();
        (ticket, nonce, page)
    }

    pub fn decide(env: &Env, cookies: &str, ticket: &str, ws: &str, decision: &str) -> Response {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("ticket", ticket)
            .append_pair("workspace", ws)
            .append_pair("decision", decision)
            .finish();
        env.raw(
            "POST",
            "/oauth/authorize",
            vec![
                ("content-type".into(), "application/x-www-form-urlencoded".into()),
                ("cookie".into(), cookies.into()),
            ],
            body.into_bytes(),
        )
    }

    pub fn token(env: &Env, params: &[(&str, &str)]) -> Response {
        let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        env.raw(
            "POST",
            "/oauth/token",
            vec![("content-type".into(), "application/x-www-form-urlencoded".into())],
            body.into_bytes(),
        )
    }

    /// The whole browser leg for `ws`: the code's tokens (access, refresh).
    pub fn connect(env: &Env, client_id: &str, session_cookie: &str, ws: &str) -> (String, String) {
        let (ticket, nonce, _) = consent(env, client_id, session_cookie);
        let r = decide(env, &format!("{session_cookie}; {nonce}"), &ticket, ws, "approve");
        assert_eq!(r.status, 302, "{:?}", r.body);
        let to = url::Url::parse(header(&r, "location").unwrap()).unwrap();
        let q = |k: &str| to.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
        assert_eq!((q("state").as_deref(), q("iss").as_deref()), (Some("st-1"), Some(ORIGIN)));
        let code = q("code").expect("a code");
        let t = token(
            env,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", client_id),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        );
        assert_eq!(t.status, 200, "{:?}", t.body);
        let b = t.body.unwrap();
        (b["access_token"].as_str().unwrap().to_string(), b["refresh_token"].as_str().unwrap().to_string())
    }

    /// One JSON-RPC request to `/mcp` with `bearer`.
    pub fn mcp(env: &Env, bearer: Option<&str>, method: &str, params: Value) -> McpResponse {
        let mut headers: Vec<(String, String)> = vec![
            ("content-type".into(), "application/json".into()),
            ("accept".into(), "application/json, text/event-stream".into()),
            ("mcp-protocol-version".into(), "2025-06-18".into()),
        ];
        if let Some(b) = bearer {
            headers.push(("authorization".into(), format!("Bearer {b}")));
        }
        let body =
            serde_json::to_vec(&json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params })).unwrap();
        let cache = ManifestCache::default();
        let svc = env.services();
        block_on(flowcp::mcp::management::serve(
            &svc,
            &cache,
            1000,
            &McpRequest { method: "POST", headers: &headers, body: &body },
        ))
    }
}

/// Issue 15, the sign-in: an agent's authorization request for `/mcp` sends a signed-out browser
/// to FlowCP's sign-in; signed in, the consent page offers the account's workspaces; the token
/// it leads to reaches only the chosen workspace; the connection is listed and revocable by its
/// account, and a password change ends it.
#[test]
fn an_agent_signs_in_with_a_flowcp_account_and_its_token_is_bound_to_one_workspace() {
    use crate::api::{signed_up, Env};
    use serde_json::json;
    use sign_in::*;

    let env = Env::new();
    let ws_b = signed_up(&env, "agent-signin@example.com");
    let owner = env.session();
    let cookie = owner.0.clone().unwrap();
    let ws_a = env.call("POST", "/api/v1/workspaces", Some(json!({ "name": "Billing team" }))).body.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let client_id = register(&env);

    // Signed out: to the dashboard's sign-in, which comes back to this very request.
    let r = env.raw("GET", &authorize_path(&client_id), vec![], vec![]);
    assert_eq!(r.status, 302, "{:?}", r.body);
    let to = header(&r, "location").unwrap();
    let next = url::Url::parse(&format!("{ORIGIN}{to}")).unwrap();
    assert_eq!(next.path(), "/sign-in");
    let back = next.query_pairs().find(|(k, _)| k == "next").unwrap().1.into_owned();
    assert_eq!(back, authorize_path(&client_id), "the same request, re-encoded");

    // Nothing is fetched for a signed-out browser, not even a client's metadata document.
    let cimd = authorize_path(&client_id)
        .replace(&format!("client_id={client_id}"), "client_id=https%3A%2F%2Fagent.example%2Fclient.json");
    let r = env.raw("GET", &cimd, vec![], vec![]);
    assert_eq!(r.status, 302);
    assert!(header(&r, "location").unwrap().starts_with("/sign-in?next="), "{:?}", r.headers);
    assert!(env.http.seen.borrow().is_empty(), "no fetch before sign-in");

    // Signed in: the page names the client, the account and the workspaces with their roles.
    let (ticket, nonce, page) = consent(&env, &client_id, &cookie);
    assert!(page.contains("Claude Code") && page.contains("agent-signin@example.com"), "{page}");
    assert!(page.contains("Billing team (owner)") && page.contains(&ws_b), "{page}");
    assert!(page.contains("127.0.0.1"), "the redirect host is shown: {page}");
    // The decision needs the page's cookie, the same account, and one of its workspaces.
    let both = format!("{cookie}; {nonce}");
    assert_eq!(decide(&env, &cookie, &ticket, &ws_a, "approve").status, 400, "no consent cookie");
    assert_eq!(decide(&env, &nonce, &ticket, &ws_a, "approve").status, 400, "signed out meanwhile");
    assert_eq!(decide(&env, &both, &ticket, "ws_someone_elses", "approve").status, 400, "not a workspace of theirs");
    assert_eq!(decide(&env, &both, &format!("{ticket}x"), &ws_a, "approve").status, 400, "altered ticket");
    let no = decide(&env, &both, &ticket, &ws_a, "deny");
    assert_eq!(no.status, 302);
    assert!(header(&no, "location").unwrap().contains("error=access_denied"));
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM connections"), 0, "nothing recorded before an approval");
    // Another account's session cannot use this account's page.
    signed_up(&env, "someone-else@example.com");
    let other = env.session();
    let other_cookie = other.0.clone().unwrap();
    assert_eq!(decide(&env, &format!("{other_cookie}; {nonce}"), &ticket, &ws_a, "approve").status, 400);

    let (access, refresh) = connect(&env, &client_id, &cookie, &ws_a);
    assert!(access.starts_with("fcp_at.") && !access.contains(&ws_a), "opaque, sealed");

    // `/mcp`: no token is a challenge that names the metadata; a token works for its workspace.
    let r = mcp(&env, None, "tools/list", json!({}));
    assert_eq!(r.status, 401);
    let www = r.headers.iter().find(|(k, _)| k == "www-authenticate").unwrap().1.clone();
    assert_eq!(www, format!("Bearer resource_metadata=\"{ORIGIN}/.well-known/oauth-protected-resource/mcp\""));
    let list = mcp(&env, Some(&access), "tools/list", json!({}));
    assert_eq!(list.status, 200, "{:?}", list.body);
    let mine = mcp(&env, Some(&access), "tools/call", json!({ "name": "get_workspace", "arguments": { "ws": ws_a } }));
    let result = &mine.body.as_ref().unwrap()["result"];
    assert_eq!(result["isError"], Value::Null, "{result}");
    assert!(result.to_string().contains("Billing team"), "{result}");
    assert_eq!(mine.audit.len(), 1);
    assert_eq!(mine.audit[0].workspace_id, ws_a, "the agent's calls are in the workspace's log");
    assert_eq!(mine.audit[0].server_id, "flowcp");
    // The account's other workspace does not exist for this token, for any tool naming it.
    for (tool, args) in [
        ("get_workspace", json!({ "ws": ws_b })),
        ("list_apps", json!({ "ws": ws_b })),
        ("create_app", json!({ "ws": ws_b, "name": "Sneaky" })),
        ("list_servers", json!({ "ws": ws_b })),
    ] {
        let r = mcp(&env, Some(&access), "tools/call", json!({ "name": tool, "arguments": args }));
        let result = &r.body.as_ref().unwrap()["result"];
        assert_eq!(result["isError"], true, "{tool}: {result}");
        assert!(result.to_string().contains("404"), "{tool}: {result}");
    }
    assert_eq!(env.count(&format!("SELECT COUNT(*) AS n FROM apps WHERE workspace_id = '{ws_b}'")), 0);
    // Tokens of another kind or audience are not access tokens for `/mcp`.
    for bad in [refresh.as_str(), "fcp_at.conn_x.fcp1.k1.AAAA", "not-a-token"] {
        let r = mcp(&env, Some(bad), "tools/list", json!({}));
        assert_eq!(r.status, 401, "{bad}");
        assert!(r.headers.iter().any(|(k, v)| k == "www-authenticate" && v.contains("invalid_token")));
    }

    // The account sees the connection (and the other account does not), and refresh works.
    let listed = env.call_as("GET", "/api/v1/me/connections", owner.0.as_deref(), owner.1.as_deref(), None);
    let items = listed.body.unwrap()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        (items[0]["client_name"].as_str(), items[0]["workspace_name"].as_str()),
        (Some("Claude Code"), Some("Billing team"))
    );
    let hash = items[0]["connection_hash"].as_str().unwrap().to_string();
    let theirs = env.call_as("GET", "/api/v1/me/connections", other.0.as_deref(), other.1.as_deref(), None);
    assert_eq!(theirs.body.unwrap()["items"], json!([]));
    let gone =
        env.call_as("DELETE", &format!("/api/v1/me/connections/{hash}"), other.0.as_deref(), other.1.as_deref(), None);
    assert_eq!(gone.status, 404, "another account's connection is not found");
    let t = token(&env, &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", &client_id)]);
    assert_eq!(t.status, 200, "{:?}", t.body);
    let access2 = t.body.unwrap()["access_token"].as_str().unwrap().to_string();
    assert_eq!(mcp(&env, Some(&access2), "tools/list", json!({})).status, 200);

    // Revoked by its account: every token of it stops at once.
    let r =
        env.call_as("DELETE", &format!("/api/v1/me/connections/{hash}"), owner.0.as_deref(), owner.1.as_deref(), None);
    assert_eq!(r.status, 204);
    assert_eq!(mcp(&env, Some(&access2), "tools/list", json!({})).status, 401);
    assert_eq!(mcp(&env, Some(&access), "tools/list", json!({})).status, 401);

    // A password change ends every agent connection of the account.
    let (access3, refresh3) = connect(&env, &client_id, &cookie, &ws_b);
    assert_eq!(mcp(&env, Some(&access3), "tools/list", json!({})).status, 200);
    let r = env.call_as(
        "POST",
        "/api/v1/me/password",
        owner.0.as_deref(),
        owner.1.as_deref(),
        Some(json!({ "current_password": "a long enough password", "new_password": "a brand new long password" })),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(mcp(&env, Some(&access3), "tools/list", json!({})).status, 401);
    let t = token(&env, &[("grant_type", "refresh_token"), ("refresh_token", &refresh3), ("client_id", &client_id)]);
    assert_eq!((t.status, t.body.unwrap()["error"].as_str()), (400, Some("invalid_grant")));
}

/// A member's token acts with the member's role: it reads and curates but cannot publish, and
/// once the membership ends the token is refused at the door (the client signs in again).
#[test]
fn a_members_token_cannot_publish_and_dies_with_the_membership() {
    use crate::api::{api_key_server, invite_and_accept, signed_up, Env};
    use serde_json::json;
    use sign_in::*;

    let env = Env::new();
    let ws = signed_up(&env, "mgmt-owner@example.com");
    let owner = env.session();
    let (_, srv) = api_key_server(&env, &ws);
    signed_up(&env, "mgmt-member@example.com");
    let member = env.session();
    invite_and_accept(&env, &ws, &owner, &member, "mgmt-member@example.com", "member");
    let client_id = register(&env);
    let (access, refresh) = connect(&env, &client_id, member.0.as_deref().unwrap(), &ws);
    let call = |tool: &str, args: Value| {
        let r = mcp(&env, Some(&access), "tools/call", json!({ "name": tool, "arguments": args }));
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body.unwrap()["result"].clone()
    };
    assert_eq!(call("get_server", json!({ "ws": ws, "srv": srv }))["isError"], Value::Null);
    let publish = call("publish_server", json!({ "ws": ws, "srv": srv }));
    assert_eq!(publish["isError"], true, "{publish}");
    assert!(publish.to_string().contains("403"), "{publish}");
    let onboard = call("onboard_api", json!({ "ws": ws, "url": "https://api.example.com/openapi.json" }));
    assert_eq!(onboard["isError"], true, "{onboard}");
    assert!(onboard.to_string().contains("Ask one to onboard"), "the error names the way on: {onboard}");
    assert!(env.http.seen.borrow().is_empty(), "nothing was fetched for a member");
    let member_id = env.call_as("GET", "/api/v1/me", member.0.as_deref(), member.1.as_deref(), None).body.unwrap()
        ["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let removed = env.call_as(
        "DELETE",
        &format!("/api/v1/workspaces/{ws}/members/{member_id}"),
        owner.0.as_deref(),
        owner.1.as_deref(),
        None,
    );
    assert_eq!(removed.status, 204);
    let r = mcp(&env, Some(&access), "tools/list", json!({}));
    assert_eq!(r.status, 401, "{:?}", r.body);
    // The removal itself revoked the connection (shown as ended before anything else touched
    // it): no refresh, and re-inviting the person does not bring the old agent back (they
    // connect again, with a new consent).
    let listed = env.call_as("GET", "/api/v1/me/connections", member.0.as_deref(), member.1.as_deref(), None);
    assert!(listed.body.unwrap()["items"][0]["revoked_at"].is_i64(), "shown as ended");
    let t = token(&env, &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", &client_id)]);
    assert_eq!((t.status, t.body.unwrap()["error"].as_str()), (400, Some("invalid_grant")));
    invite_and_accept(&env, &ws, &owner, &member, "mgmt-member@example.com", "admin");
    assert_eq!(mcp(&env, Some(&access), "tools/list", json!({})).status, 401);
}

/// The account's other exits end its agent connections too: a password reset revokes them, and
/// account deletion deletes them. A code's connection is listed only once the code is redeemed,
/// a consent page approves once, and a token for a published server never opens at `/mcp`.
#[test]
fn resets_deletion_unredeemed_codes_reused_pages_and_other_audiences() {
    use crate::api::{signed_up, Env};
    use flowcp::oauth::tokens::{self, Grant, Kind, Upstream};
    use serde_json::json;
    use sign_in::*;

    let env = Env::new();
    let ws = signed_up(&env, "exits@example.com");
    let owner = env.session();
    let cookie = owner.0.clone().unwrap();
    let client_id = register(&env);

    // A consent page approves once; an approval whose code is never redeemed is not listed, and
    // retention deletes it.
    let (ticket, nonce, _) = consent(&env, &client_id, &cookie);
    let both = format!("{cookie}; {nonce}");
    assert_eq!(decide(&env, &both, &ticket, &ws, "approve").status, 302);
    let again = decide(&env, &both, &ticket, &ws, "approve");
    assert_eq!(again.status, 400);
    assert!(html(&again).contains("this page was already used"), "{}", html(&again));
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM connections"), 1);
    let listed = env.call_as("GET", "/api/v1/me/connections", owner.0.as_deref(), owner.1.as_deref(), None);
    assert_eq!(listed.body.unwrap()["items"], json!([]), "not listed before its code is redeemed");
    let later = env.now.get() + flowcp::store::connections::UNREDEEMED_TTL_MS + 1;
    let report = flowcp::store::block_on(flowcp::jobs::retention::run(&env.db, later, Default::default())).unwrap();
    assert_eq!(report.unredeemed_connections_deleted, 1);
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM connections"), 0);

    // A token sealed for a published server's audience, naming a real agent connection, is
    // not an access token for `/mcp` (nor the other way round).
    let (access, _) = connect(&env, &client_id, &cookie, &ws);
    let conn = tokens::connection_of(&access, Kind::Access).unwrap().to_string();
    let grant = Grant {
        client_id: client_id.clone(),
        scope: String::new(),
        iat_ms: env.now.get(),
        exp_ms: env.now.get() + 60_000,
        generation: 0,
        upstream: Upstream::none(),
        redirect_uri: None,
        code_challenge: None,
        jti: None,
    };
    let other =
        tokens::seal(&env.secrets.keyring, Kind::Access, &format!("{ORIGIN}/mcp/srv_x"), &conn, &grant).unwrap();
    assert_eq!(mcp(&env, Some(&other), "tools/list", json!({})).status, 401);
    assert!(tokens::open(&env.secrets.keyring, Kind::Access, &format!("{ORIGIN}/mcp/srv_x"), &access, env.now.get())
        .is_err());
    assert_eq!(mcp(&env, Some(&access), "tools/list", json!({})).status, 200);

    // A password reset ends it.
    let r = env.call("POST", "/api/v1/auth/password-reset", Some(json!({ "email": "exits@example.com" })));
    assert_eq!(r.status, 202);
    let link = env.link_token("exits@example.com", "/reset-password").unwrap();
    let r = env.call(
        "POST",
        "/api/v1/auth/password-reset/confirm",
        Some(json!({ "token": link, "new_password": "a fresh long password" })),
    );
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(mcp(&env, Some(&access), "tools/list", json!({})).status, 401);

    // Deleting the account deletes its connections.
    let r = env.call(
        "POST",
        "/api/v1/auth/login",
        Some(json!({ "email": "exits@example.com", "password": "a fresh long password" })),
    );
    assert_eq!(r.status, 200);
    let session = env.session();
    let (access, _) = connect(&env, &client_id, session.0.as_deref().unwrap(), &ws);
    assert_eq!(mcp(&env, Some(&access), "tools/list", json!({})).status, 200);
    let r = env.call("DELETE", "/api/v1/me", Some(json!({ "password": "a fresh long password" })));
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM connections"), 0);
    assert_eq!(mcp(&env, Some(&access), "tools/list", json!({})).status, 401);
}

/// `onboard_api`: one tool call takes a document URL to a published server, reporting every
/// step; a failing step stops the run, says what to fix and keeps what was made.
#[test]
fn onboard_api_takes_a_document_url_to_a_published_server_and_reports_each_step() {
    use crate::api::{signed_up, Env};
    use crate::support::resp;
    use serde_json::json;
    use sign_in::*;

    let env = Env::new();
    let ws = signed_up(&env, "onboarder@example.com");
    let owner = env.session();
    let client_id = register(&env);
    let (access, _) = connect(&env, &client_id, owner.0.as_deref().unwrap(), &ws);
    let doc = json!({
        "openapi": "3.0.3",
        "info": { "title": "Billing API", "version": "1" },
        "servers": [{ "url": "https://billing.example.com/v1" }],
        "components": { "securitySchemes": { "k": { "type": "apiKey", "in": "header", "name": "X-API-Key" } } },
        "security": [{ "k": [] }],
        "paths": {
            "/invoices": {
                "get": { "operationId": "listInvoices", "tags": ["invoices"], "responses": { "200": { "description": "ok" } } },
                "post": { "operationId": "createInvoice", "tags": ["invoices"], "responses": { "201": { "description": "ok" } } }
            },
            "/customers": { "get": { "operationId": "listCustomers", "tags": ["customers"], "responses": { "200": { "description": "ok" } } } }
        }
    });
    let json_type = [("content-type", "application/json")];
    env.http.push(resp(200, &json_type, doc.to_string().as_bytes())); // the document
    env.http.push(resp(200, &json_type, br#"{"items":[]}"#)); // verification's probe
    let onboard = |args: Value| {
        let r = mcp(&env, Some(&access), "tools/call", json!({ "name": "onboard_api", "arguments": args }));
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body.unwrap()["result"].clone()
    };
    let result = onboard(json!({
        "ws": ws, "url": "https://billing.example.com/openapi.json", "read_only": true, "tags": ["invoices"],
        "auth_mode": "api_key", "credential": "sk_billing_secret_1", "credential_origin": "https://billing.example.com"
    }));
    assert_eq!(result["isError"], Value::Null, "{result}");
    let out = &result["structuredContent"];
    let steps: Vec<(&str, bool)> =
        out["steps"].as_array().unwrap().iter().map(|s| (s["step"].as_str().unwrap(), s["ok"] == true)).collect();
    assert_eq!(
        steps,
        [
            ("create the app", true),
            ("import the document", true),
            ("choose the tools", true),
            ("create the server", true),
            ("configure auth", true),
            ("set the credential", true),
            ("verify", true),
            ("publish", true),
            ("create an access key", true)
        ],
        "{out}"
    );
    assert_eq!(out["published"], true);
    assert!(out["steps"][2]["detail"].as_str().unwrap().starts_with("1 tools served, 2 disabled"), "{out}");
    assert!(out["access_key"].as_str().is_some_and(|k| k.len() > 20), "{out}");
    assert!(out["server"]["mcp_url"].as_str().unwrap().starts_with("https://flowcp.example/mcp/"), "{out}");
    assert!(!result.to_string().contains("sk_billing_secret_1"), "the credential never comes back");
    let apps =
        env.call_as("GET", &format!("/api/v1/workspaces/{ws}/apps"), owner.0.as_deref(), owner.1.as_deref(), None);
    assert_eq!(apps.body.unwrap()["items"][0]["name"], "Billing API", "named after the document's title");
    let seen = env.http.seen.borrow();
    let probe = seen.last().unwrap();
    assert_eq!(probe.url, "https://billing.example.com/v1/invoices", "the probe called the one served tool");
    assert!(probe.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("x-api-key") && v == "sk_billing_secret_1"));
    drop(seen);

    // Without the origin confirmation the run stops at the credential, keeps the app and the
    // server, and says what to send.
    env.http.push(resp(200, &json_type, doc.to_string().as_bytes()));
    let result = onboard(
        json!({ "ws": ws, "url": "https://billing.example.com/openapi.json", "credential": "sk_billing_secret_2" }),
    );
    let out = &result["structuredContent"];
    assert_eq!(out["published"], false, "{out}");
    let last = out["steps"].as_array().unwrap().last().unwrap();
    assert_eq!((last["step"].as_str(), last["ok"].as_bool()), (Some("set the credential"), Some(false)), "{out}");
    assert!(last["detail"].as_str().unwrap().contains("origin"), "{last}");
    assert!(out["app_id"].is_string() && out["server"]["id"].is_string(), "what was made is named: {out}");
    // A choice that serves nothing stops before any server is made.
    env.http.push(resp(200, &json_type, doc.to_string().as_bytes()));
    let out = onboard(json!({ "ws": ws, "url": "https://billing.example.com/openapi.json", "tags": ["nope"] }))
        ["structuredContent"]
        .clone();
    assert_eq!(out["steps"].as_array().unwrap().last().unwrap()["step"], "choose the tools", "{out}");
    assert_eq!(out["server"], Value::Null);
}

/// At most 50 live agent connections per account: the 51st approval is refused with the way out.
#[test]
fn an_account_has_at_most_fifty_live_agent_connections() {
    use crate::api::{signed_up, Env};
    use flowcp::store::Db;
    use sign_in::*;

    let env = Env::new();
    let ws = signed_up(&env, "capped@example.com");
    let owner = env.session();
    let cookie = owner.0.clone().unwrap();
    let user = env.call("GET", "/api/v1/me", None).body.unwrap()["user"]["id"].as_str().unwrap().to_string();
    let client_id = register(&env);
    let now = env.now.get();
    for i in 0..flowcp::store::connections::MAX_LIVE_PER_USER {
        let sql = "INSERT INTO connections (id, user_id, workspace_id, connection_hash, created_at, last_used_at) \
                   VALUES (?1, ?2, ?3, ?4, ?5, ?5)";
        let (id, hash) = (format!("conn_seed_{i}"), format!("seedhash{i:08}"));
        flowcp::store::block_on(env.db.execute(
            sql,
            &[id.as_str().into(), user.as_str().into(), ws.as_str().into(), hash.as_str().into(), now.into()],
        ))
        .unwrap();
    }
    let (ticket, nonce, _) = consent(&env, &client_id, &cookie);
    let r = decide(&env, &format!("{cookie}; {nonce}"), &ticket, &ws, "approve");
    assert_eq!(r.status, 400);
    assert!(html(&r).contains("you have 50 connected agents; disconnect some"), "{}", html(&r));
    // One ended: room again (the same page still works, its ticket was not spent).
    let listed = env.call_as("GET", "/api/v1/me/connections", owner.0.as_deref(), owner.1.as_deref(), None);
    let hash = listed.body.unwrap()["items"][0]["connection_hash"].as_str().unwrap().to_string();
    let gone =
        env.call_as("DELETE", &format!("/api/v1/me/connections/{hash}"), owner.0.as_deref(), owner.1.as_deref(), None);
    assert_eq!(gone.status, 204);
    assert_eq!(decide(&env, &format!("{cookie}; {nonce}"), &ticket, &ws, "approve").status, 302);
}

/// The onboarding keeps the single routes' rules: an unverified owner's run stops at publishing
/// with the reason, and a document URL on a private address is refused at the import.
#[test]
fn onboarding_keeps_the_verification_rule_and_the_ssrf_guard() {
    use crate::api::Env;
    use crate::support::resp;
    use serde_json::json;

    let env = Env::new();
    let r = env.call(
        "POST",
        "/api/v1/auth/signup",
        Some(json!({
            "email": "unverified-onboarder@example.com", "password": "a long enough password", "display_name": "U",
            "workspace_name": "W", "accept_terms": true, "accept_privacy": true
        })),
    );
    let ws = r.body.unwrap()["workspace"]["id"].as_str().unwrap().to_string();
    let doc = json!({
        "openapi": "3.0.3", "info": { "title": "Open", "version": "1" },
        "servers": [{ "url": "https://open.example.com" }],
        "paths": { "/ping": { "get": { "operationId": "ping", "responses": { "200": { "description": "ok" } } } } }
    });
    let json_type = [("content-type", "application/json")];
    env.http.push(resp(200, &json_type, doc.to_string().as_bytes()));
    env.http.push(resp(200, &json_type, b"{}"));
    let out = env.call(
        "POST",
        &format!("/api/v1/workspaces/{ws}/onboard"),
        Some(json!({ "url": "https://open.example.com/openapi.json" })),
    );
    assert_eq!(out.status, 200, "{:?}", out.body);
    let out = out.body.unwrap();
    let last = out["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["step"].as_str(), last["ok"].as_bool()), (Some("publish"), Some(false)), "{out}");
    assert!(last["detail"].as_str().unwrap().to_lowercase().contains("verif"), "{last}");
    assert_eq!(out["published"], false);
    let seen = env.http.seen.borrow().len();
    for url in ["http://127.0.0.1:8080/openapi.json", "http://169.254.169.254/latest/meta-data", "file:///etc/passwd"] {
        let out =
            env.call("POST", &format!("/api/v1/workspaces/{ws}/onboard"), Some(json!({ "url": url }))).body.unwrap();
        let last = out["steps"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            (last["step"].as_str(), last["ok"].as_bool()),
            (Some("import the document"), Some(false)),
            "{url}: {out}"
        );
    }
    assert_eq!(env.http.seen.borrow().len(), seen, "nothing was fetched from a private address");
}
