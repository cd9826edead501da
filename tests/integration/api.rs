//! The owner API on the host (real SQLite with the migrations, in-memory KV, a fake upstream):
//! what e2e cannot easily look at — the published manifest in KV never holds a secret value.

use std::cell::RefCell;

use flowcp::api::{handle, Request, Response, Services};
use flowcp::config::Secrets;
use flowcp::crypto::Keyring;
use flowcp::net::{FetchPolicy, Http, HttpError, HttpRequest, HttpResponse};
use flowcp::store::{block_on, MemoryKv};
use serde_json::{json, Value};

use crate::support::SqliteDb;

const CREDENTIAL: &str = "sk_live_do_not_leak_42";

#[derive(Default)]
struct Upstream {
    seen: RefCell<Vec<HttpRequest>>,
}

impl Http for Upstream {
    async fn send(&self, req: &HttpRequest, _max: usize) -> Result<HttpResponse, HttpError> {
        self.seen.borrow_mut().push(req.clone());
        Ok(HttpResponse { status: 200, headers: vec![], body: b"{}".to_vec(), truncated: false })
    }
}

struct Env {
    db: SqliteDb,
    kv: MemoryKv,
    http: Upstream,
    secrets: Secrets,
    cookie: RefCell<Option<String>>,
    csrf: RefCell<Option<String>>,
}

impl Env {
    fn new() -> Self {
        Env {
            db: SqliteDb::migrated(),
            kv: MemoryKv::default(),
            http: Upstream::default(),
            secrets: Secrets {
                keyring: Keyring::parse("k1:2222222222222222222222222222222222222222222222222222222222222222").unwrap(),
                session_secret: b"0123456789abcdef0123456789abcdef".to_vec(),
            },
            cookie: RefCell::new(None),
            csrf: RefCell::new(None),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(c) = self.cookie.borrow().as_ref() {
            headers.push(("cookie".into(), c.clone()));
        }
        if let Some(t) = self.csrf.borrow().as_ref() {
            headers.push(("x-csrf-token".into(), t.clone()));
        }
        let req = Request {
            method: method.into(),
            path: path.into(),
            query: vec![],
            headers,
            body: body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default(),
            client_addr: None,
        };
        let svc = Services {
            db: &self.db,
            kv: &self.kv,
            http: &self.http,
            fetch_policy: FetchPolicy::default(),
            secrets: &self.secrets,
            now_ms: 1_790_000_000_000,
            origin: "https://flowcp.example".into(),
        };
        let resp = block_on(handle(&svc, &req)).unwrap_or_else(|e| Response::from_error(&e));
        for (k, v) in &resp.headers {
            if k == "set-cookie" {
                *self.cookie.borrow_mut() = Some(v.split(';').next().unwrap().to_string());
            }
        }
        if let Some(t) = resp.body.as_ref().and_then(|b| b.get("csrf_token")).and_then(Value::as_str) {
            *self.csrf.borrow_mut() = Some(t.to_string());
        }
        resp
    }
}

fn document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Keys", "version": "1" },
        "servers": [{ "url": "https://api.example.com/v1" }],
        "components": { "securitySchemes": { "k": { "type": "apiKey", "in": "query", "name": "api_key" } } },
        "paths": { "/things": { "get": { "operationId": "listThings", "responses": { "200": { "description": "ok" } } } } }
    })
}

#[test]
fn the_published_manifest_references_the_credential_but_never_holds_it() {
    let env = Env::new();
    let r = env.call(
        "POST",
        "/api/v1/auth/signup",
        Some(json!({
            "email": "o@example.com", "password": "a long enough password", "display_name": "O",
            "workspace_name": "W", "accept_terms": true, "accept_privacy": true
        })),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let ws = r.body.unwrap()["workspace"]["id"].as_str().unwrap().to_string();
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let app = env.call("POST", &p("/apps"), Some(json!({ "name": "Keys" }))).body.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let imp = env.call("POST", &p(&format!("/apps/{app}/imports")), Some(document()));
    assert_eq!(imp.status, 201, "{:?}", imp.body);
    let srv = env.call("POST", &p("/servers"), Some(json!({ "app_id": app })));
    let srv_body = srv.body.unwrap();
    assert_eq!(srv_body["auth_config"], json!({ "in": "query", "name": "api_key" }));
    let srv = srv_body["id"].as_str().unwrap().to_string();
    env.call("PATCH", &p(&format!("/servers/{srv}")), Some(json!({ "auth_mode": "api_key" })));
    let put = env.call("PUT", &p(&format!("/servers/{srv}/credential")), Some(json!({ "value": CREDENTIAL })));
    assert_eq!(put.body.unwrap(), json!({ "credential_set": true, "credential_origin": "https://api.example.com" }));
    let verified = env.call("POST", &p(&format!("/servers/{srv}/verify")), None);
    assert_eq!(verified.body.as_ref().unwrap()["state"], "verified", "{:?}", verified.body);
    assert_eq!(env.http.seen.borrow()[0].url, format!("https://api.example.com/v1/things?api_key={CREDENTIAL}"));
    let published = env.call("POST", &p(&format!("/servers/{srv}/publish")), None);
    assert_eq!(published.status, 200, "{:?}", published.body);

    let entries = env.kv.entries.borrow();
    let manifest = &entries.get(&format!("manifest:{srv}:1")).expect("manifest written").0;
    let text = String::from_utf8(manifest.clone()).unwrap();
    assert!(text.contains(&format!("\"credential_ref\":\"cred:{srv}\"")), "{text}");
    assert!(!text.contains(CREDENTIAL), "the manifest holds the secret");
    let sealed = String::from_utf8(entries.get(&format!("cred:{srv}")).unwrap().0.clone()).unwrap();
    assert!(sealed.starts_with("fcp1.k1.") && !sealed.contains(CREDENTIAL));
    for (key, (value, _)) in entries.iter() {
        assert!(!String::from_utf8_lossy(value).contains(CREDENTIAL), "KV {key} holds the secret in clear");
    }
    drop(entries);

    // Deleting the workspace removes every KV key it owned and every D1 row.
    env.call("PUT", &p("/secrets/TOKEN"), Some(json!({ "value": "another-secret" })));
    env.call("POST", &p(&format!("/servers/{srv}/keys")), Some(json!({})));
    let deleted = env.call("DELETE", &p(""), None);
    assert_eq!(deleted.status, 204, "{:?}", deleted.body);
    let left: Vec<String> = env.kv.entries.borrow().keys().cloned().collect();
    assert!(left.is_empty(), "KV keys left behind: {left:?}");
    for table in [
        "apps",
        "imports",
        "tools",
        "servers",
        "server_access_keys",
        "workspace_secrets",
        "memberships",
        "workspaces",
        "audit_events",
    ] {
        let rows =
            block_on(flowcp::store::Db::query(&env.db, &format!("SELECT COUNT(*) AS n FROM {table}"), &[])).unwrap();
        assert_eq!(rows[0]["n"], 0, "{table} still has rows");
    }
}

#[test]
fn an_import_of_many_operations_stores_every_tool_once() {
    let env = Env::new();
    let r = env.call(
        "POST",
        "/api/v1/auth/signup",
        Some(json!({
            "email": "m@example.com", "password": "a long enough password", "display_name": "M",
            "workspace_name": "W", "accept_terms": true, "accept_privacy": true
        })),
    );
    let ws = r.body.unwrap()["workspace"]["id"].as_str().unwrap().to_string();
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let app = env.call("POST", &p("/apps"), Some(json!({ "name": "Many" }))).body.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut paths = serde_json::Map::new();
    for i in 0..25 {
        paths.insert(
            format!("/items/{i}"),
            json!({ "get": { "operationId": format!("item{i:02}"), "responses": { "200": { "description": "ok" } } } }),
        );
    }
    let doc = json!({ "openapi": "3.1.0", "info": { "title": "Many", "version": "1" }, "paths": paths });
    let imp = env.call("POST", &p(&format!("/apps/{app}/imports")), Some(doc));
    assert_eq!(imp.status, 201, "{:?}", imp.body);
    assert_eq!(imp.body.unwrap()["report"]["added"].as_array().unwrap().len(), 25);
    let rows = block_on(flowcp::store::Db::query(&env.db, "SELECT name FROM tools ORDER BY name", &[])).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 25);
    assert_eq!((names[0], names[24]), ("item00", "item24"));
}

fn signed_up(env: &Env, email: &str) -> String {
    let r = env.call(
        "POST",
        "/api/v1/auth/signup",
        Some(json!({
            "email": email, "password": "a long enough password", "display_name": "X",
            "workspace_name": "W", "accept_terms": true, "accept_privacy": true
        })),
    );
    r.body.unwrap()["workspace"]["id"].as_str().unwrap().to_string()
}

/// An app imported from `document()` and an `api_key` server for it: (app id, server id).
fn api_key_server(env: &Env, ws: &str) -> (String, String) {
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let id = |r: Response| r.body.unwrap()["id"].as_str().unwrap().to_string();
    let app = id(env.call("POST", &p("/apps"), Some(json!({ "name": "Keys" }))));
    env.call("POST", &p(&format!("/apps/{app}/imports")), Some(document()));
    let srv = id(env.call("POST", &p("/servers"), Some(json!({ "app_id": app }))));
    env.call("PATCH", &p(&format!("/servers/{srv}")), Some(json!({ "auth_mode": "api_key" })));
    (app, srv)
}

#[test]
fn a_reimported_document_cannot_redirect_the_credential_to_another_host() {
    let env = Env::new();
    let ws = signed_up(&env, "h1@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let (app, srv) = api_key_server(&env, &ws);
    let put = env.call("PUT", &p(&format!("/servers/{srv}/credential")), Some(json!({ "value": CREDENTIAL })));
    assert_eq!(put.body.unwrap()["credential_origin"], "https://api.example.com");
    // A new version of the document points the same operation at another host.
    let mut evil = document();
    evil["servers"] = json!([{ "url": "https://attacker.example" }]);
    env.call("POST", &p(&format!("/apps/{app}/imports")), Some(evil));
    let v = env.call("POST", &p(&format!("/servers/{srv}/verify")), None).body.unwrap();
    assert_eq!(v["state"], "failed", "{v}");
    assert!(v.to_string().contains("not the one the credential was set for"), "{v}");
    assert!(
        env.http.seen.borrow().iter().all(|r| !r.url.contains("attacker.example")),
        "the probe must not go to the new host with the credential"
    );
    // A client cannot move the binding through auth_config either.
    env.call("PATCH", &p(&format!("/servers/{srv}")), Some(json!({ "auth_config": { "in": "query", "name": "api_key", "credential_origin": "https://attacker.example" } })));
    let s = env.call("GET", &p(&format!("/servers/{srv}")), None).body.unwrap();
    assert_eq!(s["auth_config"]["credential_origin"], "https://api.example.com");
}

#[test]
fn deleting_an_app_takes_its_published_servers_off_the_air() {
    let env = Env::new();
    let ws = signed_up(&env, "h2@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let (app, srv) = api_key_server(&env, &ws);
    env.call("PUT", &p(&format!("/servers/{srv}/credential")), Some(json!({ "value": CREDENTIAL })));
    env.call("POST", &p(&format!("/servers/{srv}/verify")), None);
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/publish")), None).status, 200);
    env.call("POST", &p(&format!("/servers/{srv}/keys")), Some(json!({})));
    assert!(env.kv.entries.borrow().keys().any(|k| k.starts_with("akey:")));
    assert_eq!(env.call("DELETE", &p(&format!("/apps/{app}")), None).status, 204);
    let left: Vec<String> = env.kv.entries.borrow().keys().cloned().collect();
    assert!(left.is_empty(), "KV keys left behind: {left:?}");
}
