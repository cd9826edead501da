//! The owner API on the host (real SQLite with the migrations, in-memory KV, a fake upstream):
//! what e2e cannot easily look at — the published manifest in KV never holds a secret value.

use std::cell::RefCell;

use flowcp::api::{handle, Request, Response, Services};
use flowcp::config::Secrets;
use flowcp::crypto::Keyring;
use flowcp::net::{FetchPolicy, HttpError};
use flowcp::store::{block_on, Db, Kv, MemoryKv};
use serde_json::{json, Value};

use crate::support::{resp, ScriptedHttp, SqliteDb};

const CREDENTIAL: &str = "sk_live_do_not_leak_42";

pub(crate) struct Env {
    pub(crate) db: SqliteDb,
    pub(crate) kv: MemoryKv,
    pub(crate) http: ScriptedHttp,
    pub(crate) secrets: Secrets,
    cookie: RefCell<Option<String>>,
    csrf: RefCell<Option<String>>,
    pub(crate) now: std::cell::Cell<i64>,
    /// `FLOWCP_DEFAULT_PLAN` of this deployment.
    pub(crate) default_plan: std::cell::Cell<Option<flowcp::vocab::Plan>>,
    /// The deployment's GitHub registration (a fake GitHub answers through `http`'s router).
    pub(crate) git: Option<flowcp::git::GitSettings>,
}

impl Env {
    pub(crate) fn new() -> Self {
        Env {
            db: SqliteDb::migrated(),
            kv: MemoryKv::default(),
            http: ScriptedHttp::default(),
            secrets: Secrets {
                keyring: Keyring::parse("k1:2222222222222222222222222222222222222222222222222222222222222222").unwrap(),
                session_secret: b"0123456789abcdef0123456789abcdef".to_vec(),
                previous_session_secret: None,
                token_secrets: Some(
                    flowcp::auth::user_key::TokenSecrets::parse(&format!("t1:{}", "33".repeat(32))).unwrap(),
                ),
            },
            cookie: RefCell::new(None),
            csrf: RefCell::new(None),
            now: std::cell::Cell::new(1_790_000_000_000),
            default_plan: std::cell::Cell::new(None),
            git: Some(flowcp::git::GitSettings {
                client_id: "Iv1.test".into(),
                client_secret: "github-client-secret-not-to-leak".into(),
                web_url: "https://github.test".into(),
                api_url: "https://api.github.test".into(),
            }),
        }
    }

    /// The token of the newest link to `page` (`/verify-email`, say) in `to`'s outbox.
    pub(crate) fn link_token(&self, to: &str, page: &str) -> Option<String> {
        let messages = block_on(flowcp::mail::outbox(&self.kv, to)).unwrap();
        let marker = format!("{page}#token=");
        messages.iter().rev().find_map(|m| {
            let at = m.text.find(&marker)? + marker.len();
            Some(m.text[at..].split_whitespace().next()?.to_string())
        })
    }

    /// Redeems the newest verification link sent to `to`.
    pub(crate) fn verify_email(&self, to: &str) {
        let token = self.link_token(to, "/verify-email").expect("a verification link was sent");
        let r = self.call("POST", "/api/v1/auth/verify-email", Some(json!({ "token": token })));
        assert_eq!(r.status, 200, "{:?}", r.body);
    }

    pub(crate) fn call(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        self.call_via(&self.db, &self.kv, method, path, body)
    }

    /// [`Env::call`] through other stores (fault-injecting ones, say).
    pub(crate) fn call_via(
        &self,
        db: &impl Db,
        kv: &impl Kv,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(c) = self.cookie.borrow().as_ref() {
            headers.push(("cookie".into(), c.clone()));
        }
        if let Some(t) = self.csrf.borrow().as_ref() {
            headers.push(("x-csrf-token".into(), t.clone()));
        }
        let resp = self.raw_via(
            db,
            kv,
            method,
            path,
            headers,
            body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default(),
        );
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

    /// The handlers' ports and settings, as `raw` gives them.
    pub(crate) fn services(&self) -> Services<'_, SqliteDb, MemoryKv, ScriptedHttp> {
        self.services_via(&self.db, &self.kv)
    }

    fn services_via<'a, D: Db, K: Kv>(&'a self, db: &'a D, kv: &'a K) -> Services<'a, D, K, ScriptedHttp> {
        Services {
            db,
            kv,
            http: &self.http,
            fetch_policy: FetchPolicy::default(),
            secrets: &self.secrets,
            mailer: &flowcp::mail::Mailer::Outbox,
            now_ms: self.now.get(),
            clock: || 1_790_000_000_000,
            origin: "https://flowcp.example".into(),
            link_origin: Some("https://flowcp.example".into()),
            default_plan: self.default_plan.get(),
            git: self.git.as_ref(),
        }
    }

    /// One request exactly as given (`path` may carry a query), no session bookkeeping.
    pub(crate) fn raw(&self, method: &str, path: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Response {
        self.raw_via(&self.db, &self.kv, method, path, headers, body)
    }

    fn raw_via(
        &self,
        db: &impl Db,
        kv: &impl Kv,
        method: &str,
        path: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Response {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let req = Request {
            method: method.into(),
            path: path.into(),
            query: url::form_urlencoded::parse(query.as_bytes()).into_owned().collect(),
            headers,
            body,
            client_addr: None,
        };
        let svc = self.services_via(db, kv);
        if path.starts_with("/git/") {
            block_on(flowcp::api::git::public(&svc, &req)).map(|(r, _)| r).unwrap_or_else(|e| Response::from_error(&e))
        } else if path.starts_with("/oauth/") || flowcp::oauth::http::is_metadata_path(path) {
            block_on(flowcp::oauth::http::handle(&svc, &req))
                .unwrap_or_else(|| panic!("not an authorization-server path: {method} {path}"))
        } else {
            block_on(handle(&svc, &req)).unwrap_or_else(|e| Response::from_error(&e))
        }
    }
}

pub(crate) fn document() -> Value {
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
    env.verify_email("o@example.com");
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
    let put = env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": CREDENTIAL, "origin": "https://api.example.com" })),
    );
    assert_eq!(put.body.unwrap(), json!({ "credential_set": true, "credential_origin": "https://api.example.com" }));
    let verified = env.call("POST", &p(&format!("/servers/{srv}/verify")), None);
    assert_eq!(verified.body.as_ref().unwrap()["state"], "verified", "{:?}", verified.body);
    assert_eq!(env.http.seen.borrow()[0].url, format!("https://api.example.com/v1/things?api_key={CREDENTIAL}"));
    let published = env.call("POST", &p(&format!("/servers/{srv}/publish")), None);
    assert_eq!(published.status, 200, "{:?}", published.body);

    let entries = env.kv.entries.borrow();
    let manifest = &entries.get(&format!("manifest:{srv}:1")).expect("manifest written").0;
    let text = String::from_utf8(manifest.clone()).unwrap();
    assert!(text.contains(&format!("\"credentialRef\":\"cred:{srv}:v1\"")), "{text}");
    assert!(!text.contains(CREDENTIAL), "the manifest holds the secret");
    let sealed = String::from_utf8(entries.get(&format!("cred:{srv}")).unwrap().0.clone()).unwrap();
    assert!(sealed.starts_with("fcp1.k1.") && !sealed.contains(CREDENTIAL));
    for (key, (value, _)) in entries.iter() {
        assert!(!String::from_utf8_lossy(value).contains(CREDENTIAL), "KV {key} holds the secret in clear");
    }
    drop(entries);

    // Deleting the workspace removes every KV key it owned and every D1 row.
    assert_eq!(env.call("PUT", &p("/secrets/TOKEN"), Some(json!({ "value": "another-secret" }))).status, 200);
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/keys")), Some(json!({}))).status, 201);
    assert!(env.kv.entries.borrow().keys().any(|k| k.starts_with("akey:")), "the key is mirrored before the delete");
    let event = flowcp::store::audit::AuditEvent {
        id: flowcp::store::audit::event_id(1),
        ts_ms: 1,
        workspace_id: ws.clone(),
        server_id: srv.clone(),
        tool_name: "listThings".into(),
        outcome: flowcp::store::audit::Outcome::Ok,
        upstream_status: Some(200),
        latency_ms: 1,
        request_bytes: 0,
        response_bytes: 2,
        connection_hash: None,
        target: None,
        plan: Some(flowcp::vocab::Plan::Free),
        metered: true,
    };
    block_on(flowcp::store::audit::insert_many(&env.db, std::slice::from_ref(&event))).unwrap();
    let deleted = env.call("DELETE", &p(""), None);
    assert_eq!(deleted.status, 204, "{:?}", deleted.body);
    let left = env.kv_keys_but_the_outbox();
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
        "usage_counters",
    ] {
        let rows =
            block_on(flowcp::store::Db::query(&env.db, &format!("SELECT COUNT(*) AS n FROM {table}"), &[])).unwrap();
        assert_eq!(rows[0]["n"], 0, "{table} still has rows");
    }
}

/// A document of `n` GET operations `item00`, `item01`, … (zero-padded to sort by number).
fn many_operations(n: usize) -> Value {
    let width = n.saturating_sub(1).to_string().len().max(2);
    let mut paths = serde_json::Map::new();
    for i in 0..n {
        paths.insert(
            format!("/items/{i}"),
            json!({ "get": { "operationId": format!("item{i:0width$}"), "responses": { "200": { "description": "ok" } } } }),
        );
    }
    json!({ "openapi": "3.1.0", "info": { "title": "Many", "version": "1" }, "paths": paths })
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
    let imp = env.call("POST", &p(&format!("/apps/{app}/imports")), Some(many_operations(25)));
    assert_eq!(imp.status, 201, "{:?}", imp.body);
    assert_eq!(imp.body.unwrap()["report"]["added"].as_array().unwrap().len(), 25);
    let rows = block_on(flowcp::store::Db::query(&env.db, "SELECT name FROM tools ORDER BY name", &[])).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 25);
    assert_eq!((names[0], names[24]), ("item00", "item24"));
}

/// Issue 18: a 20 MB document of 10,000 operations imports (in batches, rows packed per
/// statement within D1's limits), re-imports unchanged, and a server of all its tools is
/// refused with a clear answer, measured before any definition is read, instead of a crash.
#[test]
fn ten_thousand_operations_import_reimport_verify_and_publish() {
    let env = Env::new();
    let ws = signed_up(&env, "large@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let id = |r: Response| r.body.unwrap()["id"].as_str().unwrap().to_string();
    let app = id(env.call("POST", &p("/apps"), Some(json!({ "name": "Large" }))));
    let doc: Value = serde_json::from_slice(&flowcp::tools::large_document(10_000)).unwrap();
    let imp = env.call("POST", &p(&format!("/apps/{app}/imports")), Some(doc.clone()));
    assert_eq!(imp.status, 201, "{:?}", imp.body.map(|b| b["error"].clone()));
    let report = imp.body.unwrap()["report"].clone();
    assert_eq!(
        (report["added"].as_array().unwrap().len(), report["operations_total"].as_u64()),
        (10_000, Some(10_000))
    );
    let count = |sql: &str| block_on(flowcp::store::Db::query(&env.db, sql, &[])).unwrap()[0]["n"].as_i64().unwrap();
    assert_eq!(count("SELECT COUNT(DISTINCT name) AS n FROM tools WHERE removed_at IS NULL"), 10_000);
    assert_eq!(count("SELECT COUNT(*) AS n FROM tools WHERE json_valid(def_json) AND app_id IS NOT NULL"), 10_000);
    // Unchanged: every definition is compared (read back 100 at a time) and nothing moves.
    let again = env.call("POST", &p(&format!("/apps/{app}/imports")), Some(doc));
    assert_eq!(again.status, 201);
    let report = again.body.unwrap()["report"].clone();
    for k in ["added", "removed", "changed"] {
        assert_eq!(report[k].as_array().map(Vec::len), Some(0), "{k}");
    }
    // Verified and published with every tool enabled (format 3: shards, pages, a head), the
    // definitions read a batch at a time.
    let srv = id(env.call("POST", &p("/servers"), Some(json!({ "app_id": app }))));
    let patched =
        env.call("PATCH", &p(&format!("/servers/{srv}")), Some(json!({ "auth_mode": "none", "discovery_mode": true })));
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    let v = env.call("POST", &p(&format!("/servers/{srv}/verify")), None);
    let body = v.body.unwrap();
    assert_eq!((v.status, &body["state"]), (200, &json!("verified")), "{body}");
    let advice = body["findings"].as_array().unwrap().iter().find(|f| f["check"] == "tools_enabled").unwrap();
    assert!(!advice["message"].as_str().unwrap().contains("turn on discovery mode"), "discovery is on: {advice}");
    let r = env.call("POST", &p(&format!("/servers/{srv}/publish")), None);
    let body = r.body.unwrap();
    assert_eq!((r.status, &body["manifest"]["tools"]), (200, &json!(10_000)), "{body}");
    let head: flowcp::manifest::Manifest =
        serde_json::from_slice(&block_on(env.kv.get(&flowcp::manifest::manifest_key(&srv, 1))).unwrap().unwrap())
            .unwrap();
    let layout = head.layout.clone().unwrap();
    assert_eq!((head.format, head.tools.len(), layout.tools), (3, 0, 10_000));
    assert!(layout.shards.len() >= 100 && layout.search && layout.pages == 0, "discovery: no pages");
    let mut largest = 0;
    for k in flowcp::mcp::shards::part_keys(&serde_json::to_vec(&head).unwrap(), &srv, 1) {
        let part = block_on(env.kv.get(&k)).unwrap().unwrap_or_else(|| panic!("{k} was written"));
        largest = largest.max(part.len());
    }
    assert!(largest <= flowcp::mcp::shards::MAX_PART_BYTES, "{largest}");
    // Nothing changed since: the draft diff reads both sides a batch / a shard at a time.
    let versions = env.call("GET", &p(&format!("/servers/{srv}/versions")), None).body.unwrap();
    for k in ["added", "removed", "changed"] {
        assert_eq!(versions["draft"][k].as_array().map(Vec::len), Some(0), "{k}: {versions}");
    }
}

/// A definition full of characters JSON escapes (quotes): its packed row would pass D1's 2 MB
/// value limit, so it is bound column by column; it is stored intact beside packed rows.
#[test]
fn a_tool_whose_row_escapes_to_over_a_megabyte_is_stored_intact() {
    let env = Env::new();
    let ws = signed_up(&env, "quotes@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let app = env.call("POST", &p("/apps"), Some(json!({ "name": "Quotes" }))).body.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let quotes = "\"".repeat(600_000);
    let doc = json!({"openapi": "3.0.3", "info": {"title": "Q", "version": "1"}, "paths": {
        "/q": {"get": {"operationId": "quoted", "responses": {"200": {"description": "ok"}},
            "parameters": [{"name": "v", "in": "query", "schema": {"type": "string", "enum": [quotes]}}]}},
        "/plain": {"get": {"operationId": "plain", "responses": {"200": {"description": "ok"}}}}}});
    let imp = env.call("POST", &p(&format!("/apps/{app}/imports")), Some(doc));
    assert_eq!(imp.status, 201, "{:?}", imp.body.map(|b| b["error"].clone()));
    let rows =
        block_on(flowcp::store::Db::query(&env.db, "SELECT name, def_json FROM tools ORDER BY name", &[])).unwrap();
    assert_eq!(rows.len(), 2);
    let def: Value = serde_json::from_str(rows[1]["def_json"].as_str().unwrap()).unwrap();
    assert_eq!(def["inputSchema"]["properties"]["v"]["enum"][0].as_str().map(str::len), Some(600_000));
}

pub(crate) fn signed_up(env: &Env, email: &str) -> String {
    let r = env.call(
        "POST",
        "/api/v1/auth/signup",
        Some(json!({
            "email": email, "password": "a long enough password", "display_name": "X",
            "workspace_name": "W", "accept_terms": true, "accept_privacy": true
        })),
    );
    env.verify_email(email);
    r.body.unwrap()["workspace"]["id"].as_str().unwrap().to_string()
}

/// The owner (`owner` session) invites `email` as `role`; its account (`invitee` session,
/// verified) accepts the emailed link.
pub(crate) fn invite_and_accept(
    env: &Env,
    ws: &str,
    owner: &(Option<String>, Option<String>),
    invitee: &(Option<String>, Option<String>),
    email: &str,
    role: &str,
) {
    let invited = env.call_as(
        "POST",
        &format!("/api/v1/workspaces/{ws}/invitations"),
        owner.0.as_deref(),
        owner.1.as_deref(),
        Some(json!({ "email": email, "role": role })),
    );
    assert_eq!(invited.status, 202, "{:?}", invited.body);
    let token = env.link_token(email, "/invitations/accept").expect("an invitation was sent");
    let accepted = env.call_as(
        "POST",
        "/api/v1/invitations/accept",
        invitee.0.as_deref(),
        invitee.1.as_deref(),
        Some(json!({ "token": token })),
    );
    assert_eq!(accepted.status, 200, "{:?}", accepted.body);
}

/// An app imported from `document()` and an `api_key` server for it: (app id, server id).
pub(crate) fn api_key_server(env: &Env, ws: &str) -> (String, String) {
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
    let put = env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": CREDENTIAL, "origin": "https://api.example.com" })),
    );
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
    env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": CREDENTIAL, "origin": "https://api.example.com" })),
    );
    env.call("POST", &p(&format!("/servers/{srv}/verify")), None);
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/publish")), None).status, 200);
    env.call("POST", &p(&format!("/servers/{srv}/keys")), Some(json!({})));
    assert!(env.kv.entries.borrow().keys().any(|k| k.starts_with("akey:")));
    assert_eq!(env.call("DELETE", &p(&format!("/apps/{app}")), None).status, 204);
    let left = env.kv_keys_but_the_outbox();
    assert!(left.is_empty(), "KV keys left behind: {left:?}");
}

// ---- Helpers production really calls, and endpoints exercised with effect (audit §6) ----

impl Env {
    /// Sends with an explicit cookie and CSRF token (None: no header), leaving the jar alone.
    pub(crate) fn call_as(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        csrf: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        self.call_as_via(&self.db, &self.kv, method, path, (cookie, csrf), body)
    }

    /// [`Env::call_as`] through other stores (fault-injecting ones, say).
    pub(crate) fn call_as_via(
        &self,
        db: &impl Db,
        kv: &impl Kv,
        method: &str,
        path: &str,
        (cookie, csrf): (Option<&str>, Option<&str>),
        body: Option<Value>,
    ) -> Response {
        let (c, t) = (self.cookie.replace(cookie.map(str::to_string)), self.csrf.replace(csrf.map(str::to_string)));
        let r = self.call_via(db, kv, method, path, body);
        *self.cookie.borrow_mut() = c;
        *self.csrf.borrow_mut() = t;
        r
    }

    fn login(&self, email: &str, password: &str) -> Response {
        self.call("POST", "/api/v1/auth/login", Some(json!({ "email": email, "password": password })))
    }

    /// Every KV key but the development outbox's (mail is not workspace data).
    fn kv_keys_but_the_outbox(&self) -> Vec<String> {
        self.kv.entries.borrow().keys().filter(|k| !k.starts_with("outbox:")).cloned().collect()
    }

    pub(crate) fn count(&self, sql: &str) -> i64 {
        block_on(flowcp::store::Db::query(&self.db, sql, &[])).unwrap()[0]["n"].as_i64().unwrap()
    }
}

fn user_id(env: &Env, email: &str) -> String {
    block_on(flowcp::store::users::find_by_email(&env.db, email)).unwrap().unwrap().id
}

fn stored_hash(env: &Env, email: &str) -> String {
    block_on(flowcp::store::users::find_by_email(&env.db, email)).unwrap().unwrap().password_hash
}

#[test]
fn login_upgrades_a_hash_made_with_older_parameters() {
    let env = Env::new();
    signed_up(&env, "old@example.com");
    let params = argon2::Params::new(8 * 1024, 1, 1, Some(32)).unwrap();
    let old = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = argon2::password_hash::phc::Salt::new(b"saltsaltsaltsalt").unwrap();
    let old_hash =
        argon2::PasswordHasher::hash_password_with_salt(&old, b"a long enough password", &salt).unwrap().to_string();
    assert!(flowcp::auth::password::needs_rehash(&old_hash));
    block_on(flowcp::store::Db::execute(&env.db, "UPDATE users SET password_hash = ?1", &[old_hash.as_str().into()]))
        .unwrap();
    assert_eq!(env.login("old@example.com", "a long enough password").status, 200);
    let now = stored_hash(&env, "old@example.com");
    assert_ne!(now, old_hash, "the hash was upgraded at login");
    assert!(!flowcp::auth::password::needs_rehash(&now), "{now}");
    assert!(flowcp::auth::password::verify_password("a long enough password", &now));
    // A rehash never overwrites a password changed after the login read the hash.
    let changed = block_on(flowcp::store::users::rehash_password(
        &env.db,
        &user_id(&env, "old@example.com"),
        &old_hash,
        "$argon2id$stale",
        1,
    ))
    .unwrap();
    assert!(!changed, "the stored hash is no longer the one the login read");
    assert_eq!(stored_hash(&env, "old@example.com"), now);
    // A current hash is left alone.
    assert_eq!(env.login("old@example.com", "a long enough password").status, 200);
    assert_eq!(stored_hash(&env, "old@example.com"), now);
}

#[test]
fn the_csrf_token_is_bound_to_its_session_and_dies_with_it() {
    let env = Env::new();
    let ws = signed_up(&env, "csrf@example.com");
    let (cookie_a, token_a) = (env.cookie.borrow().clone().unwrap(), env.csrf.borrow().clone().unwrap());
    assert_eq!(env.login("csrf@example.com", "a long enough password").status, 200);
    let (cookie_b, token_b) = (env.cookie.borrow().clone().unwrap(), env.csrf.borrow().clone().unwrap());
    assert_ne!(token_a, token_b);
    // GET /me hands out the same token the session got at sign-in.
    let me = env.call_as("GET", "/api/v1/me", Some(&cookie_a), None, None);
    assert_eq!(me.body.unwrap()["csrf_token"], token_a);
    let apps = format!("/api/v1/workspaces/{ws}/apps");
    let crossed = env.call_as("POST", &apps, Some(&cookie_a), Some(&token_b), Some(json!({ "name": "crossed" })));
    assert_eq!((crossed.status, crossed.body.unwrap()["error"]["code"].clone()), (403, json!("csrf_failed")));
    let own = env.call_as("POST", &apps, Some(&cookie_a), Some(&token_a), Some(json!({ "name": "own" })));
    assert_eq!(own.status, 201, "control: the session's own token works");
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM apps WHERE name = 'crossed'"), 0);
    // Logout revokes the session: its cookie and token together are refused.
    let out = env.call_as("POST", "/api/v1/auth/logout", Some(&cookie_a), Some(&token_a), None);
    assert_eq!(out.status, 204);
    assert!(out.headers.iter().any(|(k, v)| k == "set-cookie" && v.contains("Max-Age=0")));
    let after = env.call_as("POST", &apps, Some(&cookie_a), Some(&token_a), Some(json!({ "name": "after" })));
    assert_eq!(after.status, 401);
    assert_eq!(env.call_as("GET", "/api/v1/me", Some(&cookie_b), None, None).status, 200, "the other session lives");
}

#[test]
/// Security review F8 (c): a password change ends every session, this one included (a thief
/// holding this cookie is out), and its answer starts a fresh session for the person.
fn changing_the_password_rotates_this_session_and_ends_all_others() {
    let env = Env::new();
    signed_up(&env, "pw@example.com");
    let (cookie_a, token_a) = (env.cookie.borrow().clone().unwrap(), env.csrf.borrow().clone().unwrap());
    env.login("pw@example.com", "a long enough password");
    let cookie_b = env.cookie.borrow().clone().unwrap();
    let wrong = env.call_as(
        "POST",
        "/api/v1/me/password",
        Some(&cookie_a),
        Some(&token_a),
        Some(json!({ "current_password": "not the password", "new_password": "a brand new password" })),
    );
    assert_eq!((wrong.status, wrong.body.unwrap()["error"]["code"].clone()), (403, json!("wrong_password")));
    assert_eq!(env.call_as("GET", "/api/v1/me", Some(&cookie_b), None, None).status, 200, "nothing changed");
    let ok = env.call_as(
        "POST",
        "/api/v1/me/password",
        Some(&cookie_a),
        Some(&token_a),
        Some(json!({ "current_password": "a long enough password", "new_password": "a brand new password" })),
    );
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let fresh =
        ok.headers.iter().find(|(k, _)| k == "set-cookie").map(|(_, v)| v.split(';').next().unwrap().to_string());
    let fresh = fresh.expect("a new session cookie");
    assert_ne!(fresh, cookie_a);
    let fresh_csrf = ok.body.unwrap()["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(env.call_as("GET", "/api/v1/me", Some(&cookie_b), None, None).status, 401, "other sessions end");
    assert_eq!(env.call_as("GET", "/api/v1/me", Some(&cookie_a), None, None).status, 401, "this cookie ends too");
    assert_eq!(env.call_as("GET", "/api/v1/me", Some(&fresh), None, None).status, 200, "the new session works");
    let write =
        env.call_as("POST", "/api/v1/workspaces", Some(&fresh), Some(&fresh_csrf), Some(json!({ "name": "After" })));
    assert_eq!(write.status, 201, "and writes with its CSRF token: {:?}", write.body);
    assert_eq!(env.login("pw@example.com", "a long enough password").status, 401);
    assert_eq!(env.login("pw@example.com", "a brand new password").status, 200);
}

#[test]
fn deleting_the_account_of_a_sole_owner_takes_its_published_servers_off_the_air() {
    let env = Env::new();
    let ws = signed_up(&env, "gone@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let (_, srv) = api_key_server(&env, &ws);
    env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": CREDENTIAL, "origin": "https://api.example.com" })),
    );
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/verify")), None).body.unwrap()["state"], "verified");
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/publish")), None).status, 200);
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/keys")), Some(json!({}))).status, 201);
    let wrong = env.call("DELETE", "/api/v1/me", Some(json!({ "password": "not it at all" })));
    assert_eq!((wrong.status, wrong.body.unwrap()["error"]["code"].clone()), (403, json!("wrong_password")));
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM users"), 1, "a wrong password deletes nothing");
    assert!(env.kv.entries.borrow().contains_key(&format!("manifest:{srv}:live")));
    let gone = env.call("DELETE", "/api/v1/me", Some(json!({ "password": "a long enough password" })));
    assert_eq!(gone.status, 204, "{:?}", gone.body);
    let left = env.kv_keys_but_the_outbox();
    assert!(left.is_empty(), "KV keys left behind: {left:?}");
    for table in ["users", "sessions", "workspaces", "servers", "server_access_keys"] {
        assert_eq!(env.count(&format!("SELECT COUNT(*) AS n FROM {table}")), 0, "{table}");
    }
    assert_eq!(env.call("GET", "/api/v1/me", None).status, 401);
}

#[test]
fn a_cleared_credential_leaves_kv_at_the_next_publish_or_unpublish() {
    let env = Env::new();
    let ws = signed_up(&env, "clear@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let (_, srv) = api_key_server(&env, &ws);
    let cred_key = format!("cred:{srv}");
    env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": CREDENTIAL, "origin": "https://api.example.com" })),
    );
    env.call("POST", &p(&format!("/servers/{srv}/verify")), None);
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/publish")), None).status, 200);
    let cleared = env.call("DELETE", &p(&format!("/servers/{srv}/credential")), None);
    assert_eq!(cleared.body.unwrap(), json!({ "credential_set": false }));
    assert!(env.kv.entries.borrow().contains_key(&cred_key), "the live version still needs it");
    // Switch to no auth, verify and publish: the cleared credential goes.
    env.call("PATCH", &p(&format!("/servers/{srv}")), Some(json!({ "auth_mode": "none" })));
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/verify")), None).body.unwrap()["state"], "verified");
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/publish")), None).status, 200);
    assert!(!env.kv.entries.borrow().contains_key(&cred_key), "deleted at publish");
    // Set again, clear while published, unpublish: gone too.
    env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": CREDENTIAL, "origin": "https://api.example.com" })),
    );
    env.call("DELETE", &p(&format!("/servers/{srv}/credential")), None);
    assert!(env.kv.entries.borrow().contains_key(&cred_key), "published: kept until the server leaves the air");
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/unpublish")), None).status, 200);
    assert!(!env.kv.entries.borrow().contains_key(&cred_key), "deleted at unpublish");
}

#[test]
fn the_verification_probe_never_echoes_the_credential_in_any_form() {
    let env = Env::new();
    let ws = signed_up(&env, "probe@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let (_, srv) = api_key_server(&env, &ws);
    let short = env.call("PUT", &p(&format!("/servers/{srv}/credential")), Some(json!({ "value": "1234567" })));
    assert_eq!((short.status, short.body.unwrap()["error"]["code"].clone()), (422, json!("invalid_credential")));
    let secret = "pr.obe/se+cret=v\"al";
    env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": secret, "origin": "https://api.example.com" })),
    );
    // The upstream fails with an error text that quotes the request URL (query placement).
    env.http.push(Err(HttpError::Network(format!(
        "GET https://api.example.com/v1/things?api_key={} failed ({secret})",
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
    ))));
    let v = env.call("POST", &p(&format!("/servers/{srv}/verify")), None).body.unwrap();
    assert_eq!(v["state"], "failed");
    let text = v.to_string();
    assert!(text.contains("[REDACTED]"), "{text}");
    for form in flowcp::redact::forms(secret) {
        assert!(!text.contains(&form), "{form} in {text}");
    }
    let stored = env.call("GET", &p(&format!("/servers/{srv}")), None).body.unwrap().to_string();
    assert!(!stored.contains("pr.obe"), "{stored}");
}

#[test]
fn an_import_by_url_over_the_size_limit_is_refused_and_keeps_the_tools() {
    let env = Env::new();
    let ws = signed_up(&env, "big@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let (app, _) = api_key_server(&env, &ws);
    let huge = vec![b' '; flowcp::error::limits::DOCUMENT + 1];
    env.http.push(resp(200, &[("content-type", "application/json")], &huge));
    let r = env.call(
        "POST",
        &p(&format!("/apps/{app}/imports")),
        Some(json!({ "url": "https://api.example.com/openapi.json" })),
    );
    assert_eq!((r.status, r.body.unwrap()["error"]["code"].clone()), (422, json!("document_too_large")));
    env.http.push(Err(HttpError::Network("connection refused".into())));
    let r = env.call(
        "POST",
        &p(&format!("/apps/{app}/imports")),
        Some(json!({ "url": "https://api.example.com/openapi.json" })),
    );
    assert_eq!(r.status, 502, "{:?}", r.body);
    let tools = env.call("GET", &p(&format!("/apps/{app}/tools")), None).body.unwrap();
    assert_eq!(tools["items"].as_array().unwrap().len(), 1, "failed imports left the tools as they were");
}

#[test]
fn bulk_curation_of_many_tools_is_one_atomic_change() {
    let env = Env::new();
    let ws = signed_up(&env, "bulk@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let app = env.call("POST", &p("/apps"), Some(json!({ "name": "Many" }))).body.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(env.call("POST", &p(&format!("/apps/{app}/imports")), Some(many_operations(150))).status, 201);
    let ids: Vec<String> = block_on(flowcp::store::Db::query(&env.db, "SELECT id FROM tools", &[]))
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 150);
    // One unknown id: nothing changes (the fake enforces D1's 100-parameter limit too).
    let mut with_bad = ids.clone();
    with_bad.push("tool_not_here".into());
    let r = env.call(
        "POST",
        &p(&format!("/apps/{app}/tools/bulk")),
        Some(json!({ "tool_ids": with_bad, "enabled": false })),
    );
    assert_eq!(r.status, 404, "{:?}", r.body);
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM tools WHERE enabled = 0"), 0);
    let r =
        env.call("POST", &p(&format!("/apps/{app}/tools/bulk")), Some(json!({ "tool_ids": ids, "enabled": false })));
    assert_eq!((r.status, r.body.unwrap()["updated"].clone()), (200, json!(150)));
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM tools WHERE enabled = 0"), 150);
}

#[test]
fn a_batch_is_all_or_nothing() {
    let db = SqliteDb::migrated();
    let ok = "INSERT INTO login_throttle (key, failures, window_start) VALUES (?1, 1, 1)";
    let r = block_on(flowcp::store::Db::batch(
        &db,
        &[(ok, vec!["a".into()]), ("INSERT INTO no_such_table VALUES (1)", vec![]), (ok, vec!["b".into()])],
    ));
    assert!(r.is_err());
    let n = block_on(flowcp::store::Db::query(&db, "SELECT COUNT(*) AS n FROM login_throttle", &[])).unwrap();
    assert_eq!(n[0]["n"], 0, "the first statement was rolled back");
    let r = block_on(flowcp::store::Db::batch(&db, &[(ok, vec!["a".into()]), (ok, vec!["b".into()])])).unwrap();
    assert_eq!(r, [1, 1]);
}

// ---- Security review 2026-11 (issue 11): one test per finding, named after the property ----

impl Env {
    pub(crate) fn session(&self) -> (Option<String>, Option<String>) {
        (self.cookie.borrow().clone(), self.csrf.borrow().clone())
    }
}

/// S8: creating a server is an admin's act, as the role model says: a member gets 403 and no
/// server is made.
#[test]
fn members_cannot_create_servers() {
    let env = Env::new();
    let ws = signed_up(&env, "owner-s8@example.com");
    let (app, _) = api_key_server(&env, &ws);
    let (owner_cookie, owner_csrf) = env.session();
    signed_up(&env, "member-s8@example.com");
    let (member_cookie, member_csrf) = env.session();
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    invite_and_accept(
        &env,
        &ws,
        &(owner_cookie.clone(), owner_csrf.clone()),
        &(member_cookie.clone(), member_csrf.clone()),
        "member-s8@example.com",
        "member",
    );
    let before = env.count("SELECT COUNT(*) AS n FROM servers");
    let r = env.call_as(
        "POST",
        &p("/servers"),
        member_cookie.as_deref(),
        member_csrf.as_deref(),
        Some(json!({ "app_id": app })),
    );
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM servers"), before);
}

/// S7: `auth_config` holds only the known non-secret fields of the modes (an allow-list): a
/// secret under any other name (`api_key`, `password`, `access_token`...) is refused with 422
/// and nothing is stored, so it can never be shown to members or exported.
#[test]
fn auth_config_accepts_only_known_fields() {
    let env = Env::new();
    let ws = signed_up(&env, "owner-s7@example.com");
    let (_, srv) = api_key_server(&env, &ws);
    let path = format!("/api/v1/workspaces/{ws}/servers/{srv}");
    for key in ["api_key", "password", "access_token", "refresh_token", "client_secret", "x"] {
        let mut cfg = json!({ "in": "header", "name": "X-Api-Key" });
        cfg[key] = json!("sk_live_not_here_123");
        let r = env.call("PATCH", &path, Some(json!({ "auth_config": cfg })));
        assert_eq!(r.status, 422, "{key}: {:?}", r.body);
        assert_eq!(r.body.unwrap()["error"]["code"], "invalid_auth_config");
    }
    // Known fields must have their types: no object or secret-shaped value hides in them.
    for cfg in [
        json!({ "in": "header", "name": "X-Api-Key", "client_id": { "client_secret": "sk_live_not_here_123" } }),
        json!({ "in": "header", "name": "X-Api-Key", "scopes": "sk_live_not_here_123" }),
        json!({ "in": "header", "name": "X-Api-Key", "scopes": [{ "secret": "sk_live_not_here_123" }] }),
    ] {
        let r = env.call("PATCH", &path, Some(json!({ "auth_config": cfg })));
        assert_eq!(r.status, 422, "{cfg}: {:?}", r.body);
    }
    // The credential's own header is not one a request may not choose.
    for name in ["Host", "Cookie", "X-Forwarded-For", "Content-Length"] {
        let r = env.call("PATCH", &path, Some(json!({ "auth_config": { "in": "header", "name": name } })));
        assert_eq!(r.status, 422, "{name}: {:?}", r.body);
    }
    let ok = env.call("PATCH", &path, Some(json!({ "auth_config": { "in": "header", "name": "Authorization" } })));
    assert_eq!(ok.status, 200, "Authorization: <key> is a placement real APIs use: {:?}", ok.body);
    let stored = env.call("GET", &path, None).body.unwrap();
    assert!(!stored.to_string().contains("sk_live_not_here_123"), "{stored}");
    let ok = env.call(
        "PATCH",
        &path,
        Some(json!({ "auth_mode": "oauth", "auth_config": {
            "authorize_url": "https://id.example.com/authorize", "token_url": "https://id.example.com/token",
            "client_id": "flowcp", "scopes": ["read"] } })),
    );
    assert_eq!(ok.status, 200, "the known OAuth fields are accepted: {:?}", ok.body);
}

/// S9: names refuse Unicode format and bidi characters (they can make "ACME Security" read as
/// something it is not); email addresses refuse markup and quoting characters.
#[test]
fn names_refuse_bidi_and_format_characters_and_emails_refuse_markup() {
    let env = Env::new();
    signed_up(&env, "owner-s9@example.com");
    for name in [
        "ACME \u{202E}ytiruceS",
        "a\u{200B}b",
        "x\u{2066}y\u{2069}",
        "soft\u{00AD}hyphen",
        "tag\u{E0041}",
        "ACME\u{3164}Security",
        "blank\u{2800}braille",
        "half\u{FFA0}width",
        "cgj\u{034F}x",
    ] {
        let r = env.call("POST", "/api/v1/workspaces", Some(json!({ "name": name })));
        assert_eq!(r.status, 422, "{name:?}: {:?}", r.body);
        assert_eq!(r.body.unwrap()["error"]["code"], "invalid_name");
    }
    assert_eq!(env.call("POST", "/api/v1/workspaces", Some(json!({ "name": "Équipe Ünïcode ✓" }))).status, 201);
    // Variation selectors stay allowed: emoji need them.
    assert_eq!(env.call("POST", "/api/v1/workspaces", Some(json!({ "name": "Team \u{2764}\u{FE0F}" }))).status, 201);
    for email in
        ["a<script>@example.com", "\"a\"@example.com", "a@exa>mple.com", "a`b@example.com", "a\u{202E}@example.com"]
    {
        let r = env.call(
            "POST",
            "/api/v1/auth/signup",
            Some(json!({ "email": email, "password": "a long enough password", "display_name": "X",
                "workspace_name": "W", "accept_terms": true, "accept_privacy": true })),
        );
        assert_eq!(r.status, 422, "{email:?}: {:?}", r.body);
        assert_eq!(r.body.unwrap()["error"]["code"], "invalid_email");
    }
}

/// F8 (b): a session cannot be used to guess the password without limit: wrong current
/// passwords on `POST /me/password` and `DELETE /me` are throttled like logins (the 6th wrong
/// guess within the window is 429, and the right password is not even checked then).
#[test]
fn password_checks_inside_a_session_are_throttled() {
    for (method, path) in [("POST", "/api/v1/me/password"), ("DELETE", "/api/v1/me")] {
        let env = Env::new();
        let email = format!("guess-{}@example.com", method.to_ascii_lowercase());
        signed_up(&env, &email);
        let body = |pw: &str| match method {
            "POST" => json!({ "current_password": pw, "new_password": "a brand new password" }),
            _ => json!({ "password": pw }),
        };
        let statuses: Vec<u16> =
            (0..6).map(|i| env.call(method, path, Some(body(&format!("guess number {i}")))).status).collect();
        assert_eq!(statuses, [403, 403, 403, 403, 403, 429], "{method} {path}");
        let right = env.call(method, path, Some(body("a long enough password")));
        assert_eq!(right.status, 429, "locked: even the right password waits ({method} {path})");
        assert_eq!(env.count("SELECT COUNT(*) AS n FROM users"), 1, "nothing changed");
        // The lock is this session's: guessing through a stolen session does not lock the
        // owner's login, nor the password change from the owner's own new session.
        assert_eq!(env.login(&email, "a long enough password").status, 200, "{method}: the owner can still log in");
        let fresh = env.call(method, path, Some(body("a long enough password")));
        assert!(
            [200, 204].contains(&fresh.status),
            "{method}: the owner's own session is not locked: {:?}",
            fresh.body
        );
    }
}

/// F9: a credential entered after publishing changes nothing live until the next publish: the
/// live manifest keeps sending the credential it was published with, to the origin it was
/// published for (the new one would otherwise go to the old host at once).
#[test]
fn a_new_credential_changes_nothing_live_until_the_next_publish() {
    use flowcp::mcp::server::{handle as mcp, ManifestCache, McpRequest, Runtime};
    let env = Env::new();
    let ws = signed_up(&env, "f9@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let (_, srv) = api_key_server(&env, &ws);
    env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": CREDENTIAL, "origin": "https://api.example.com" })),
    );
    env.http.push(resp(200, &[("content-type", "application/json")], b"{}"));
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/verify")), None).body.unwrap()["state"], "verified");
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/publish")), None).status, 200);
    let key = env.call("POST", &p(&format!("/servers/{srv}/keys")), Some(json!({}))).body.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    // The draft moves to another host with another credential; no publish.
    const NEW: &str = "the-second-credential-value";
    env.call("PATCH", &p(&format!("/servers/{srv}")), Some(json!({ "base_url": "https://other.example.com/v1" })));
    let put = env.call("PUT", &p(&format!("/servers/{srv}/credential")), Some(json!({ "value": NEW })));
    assert_eq!(put.body.unwrap()["credential_origin"], "https://other.example.com");

    env.http.push(resp(200, &[("content-type", "application/json")], b"{}"));
    let cache = ManifestCache::default();
    let clock = || 1_790_000_000_000i64;
    let rt = Runtime {
        kv: &env.kv,
        cache: &cache,
        http: &env.http,
        keyring: &env.secrets.keyring,
        fetch_policy: FetchPolicy::default(),
        origin: "https://flowcp.example".into(),
        clock: &clock,
        upstream_timeout_ms: 1000,
        key_gate: None,
        quota: None,
    };
    let headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("accept".to_string(), "application/json, text/event-stream".to_string()),
        ("authorization".to_string(), format!("Bearer {key}")),
    ];
    let body = serde_json::to_vec(
        &json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "listThings", "arguments": {} } }),
    )
    .unwrap();
    let before = env.http.seen.borrow().len();
    let r = block_on(mcp(&rt, &srv, &McpRequest { method: "POST", headers: &headers, body: &body }));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let seen = env.http.seen.borrow();
    assert_eq!(seen.len(), before + 1, "{:?}", r.body);
    assert_eq!(
        seen[before].url,
        format!("https://api.example.com/v1/things?api_key={CREDENTIAL}"),
        "the live manifest sends its own credential to its own origin"
    );
    assert!(!seen[before].url.contains(NEW));
}

/// F10: the origin a credential is bound to is confirmed by the admin who enters it, never
/// inferred from a document a member imported: without `base_url`, `PUT …/credential` needs an
/// `origin` equal to the one the documents name (409 `origin_unconfirmed` otherwise, naming it),
/// and nothing is stored until then; with `base_url` (an admin's setting) none is needed.
#[test]
fn the_credential_origin_must_be_confirmed_when_it_comes_from_an_imported_document() {
    let env = Env::new();
    let ws = signed_up(&env, "f10@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let (app, srv) = api_key_server(&env, &ws);
    // A member (here: anyone who may import) points the API at another host.
    let mut evil = document();
    evil["servers"] = json!([{ "url": "https://evil.example/v1" }]);
    assert_eq!(env.call("POST", &p(&format!("/apps/{app}/imports")), Some(evil)).status, 201);
    let path = p(&format!("/servers/{srv}/credential"));
    for body in [
        json!({ "value": CREDENTIAL }),
        json!({ "value": CREDENTIAL, "origin": "https://api.example.com" }),
        json!({ "value": CREDENTIAL, "origin": "not a url" }),
    ] {
        let r = env.call("PUT", &path, Some(body.clone()));
        assert_eq!(r.status, 409, "{body}: {:?}", r.body);
        let b = r.body.unwrap();
        assert_eq!(b["error"]["code"], "origin_unconfirmed");
        assert!(b["error"]["message"].as_str().unwrap().contains("https://evil.example"), "{b}");
    }
    assert!(!env.kv.entries.borrow().contains_key(&format!("cred:{srv}")), "nothing stored before confirmation");
    // The admin looks, and sets the base URL instead: no confirmation needed.
    env.call("PATCH", &p(&format!("/servers/{srv}")), Some(json!({ "base_url": "https://api.example.com/v1" })));
    let r = env.call("PUT", &path, Some(json!({ "value": CREDENTIAL })));
    assert_eq!((r.status, r.body.unwrap()["credential_origin"].clone()), (200, json!("https://api.example.com")));
}

/// S6: access keys record who created them; removing that member, or deleting their account,
/// revokes those keys and drops their KV mirrors at once (a departed admin may have copied
/// them); keys others created stay.
#[test]
fn removing_a_member_revokes_the_access_keys_they_created() {
    for how in ["remove", "delete_account"] {
        let env = Env::new();
        let ws = signed_up(&env, &format!("owner-s6-{how}@example.com"));
        let (_, srv) = api_key_server(&env, &ws);
        let (owner_cookie, owner_csrf) = env.session();
        let admin_email = format!("admin-s6-{how}@example.com");
        signed_up(&env, &admin_email);
        let (admin_cookie, admin_csrf) = env.session();
        let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
        let as_owner = |m: &str, path: &str, body: Option<Value>| {
            env.call_as(m, path, owner_cookie.as_deref(), owner_csrf.as_deref(), body)
        };
        let as_admin = |m: &str, path: &str, body: Option<Value>| {
            env.call_as(m, path, admin_cookie.as_deref(), admin_csrf.as_deref(), body)
        };
        invite_and_accept(
            &env,
            &ws,
            &(owner_cookie.clone(), owner_csrf.clone()),
            &(admin_cookie.clone(), admin_csrf.clone()),
            &admin_email,
            "admin",
        );
        let admins_key = as_admin("POST", &p(&format!("/servers/{srv}/keys")), Some(json!({ "name": "copied" })));
        assert_eq!(admins_key.status, 201, "{:?}", admins_key.body);
        let owners_key = as_owner("POST", &p(&format!("/servers/{srv}/keys")), Some(json!({ "name": "stays" })));
        let admin_id = user_id(&env, &admin_email);
        let listed = as_owner("GET", &p(&format!("/servers/{srv}/keys")), None).body.unwrap();
        assert!(listed["items"].as_array().unwrap().iter().any(|k| k["created_by"] == json!(admin_id)), "{listed}");
        let mirrors = || env.kv.entries.borrow().keys().filter(|k| k.starts_with("akey:")).count();
        assert_eq!(mirrors(), 2);

        match how {
            "remove" => assert_eq!(as_owner("DELETE", &p(&format!("/members/{admin_id}")), None).status, 204),
            _ => assert_eq!(
                as_admin("DELETE", "/api/v1/me", Some(json!({ "password": "a long enough password" }))).status,
                204
            ),
        }
        let keys = as_owner("GET", &p(&format!("/servers/{srv}/keys")), None).body.unwrap();
        let by_name = |n: &str| keys["items"].as_array().unwrap().iter().find(|k| k["name"] == n).cloned().unwrap();
        assert!(by_name("copied")["revoked_at"].is_i64(), "{how}: the departed admin's key is revoked: {keys}");
        assert!(by_name("stays")["revoked_at"].is_null(), "{how}: the owner's key stays");
        assert_eq!(mirrors(), 1, "{how}: only the owner's key still opens the server");
        assert_eq!(owners_key.status, 201);
    }
}

/// F9 (review): a superseded credential copy is given a short expiry rather than deleted at
/// once, so an edge still serving the previous version (KV takes up to a minute to carry the
/// new live pointer) can still open it; the live version's copy has none.
#[test]
fn a_superseded_credential_copy_expires_instead_of_vanishing() {
    let env = Env::new();
    let ws = signed_up(&env, "ttl@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let (_, srv) = api_key_server(&env, &ws);
    env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": CREDENTIAL, "origin": "https://api.example.com" })),
    );
    for _ in 0..2 {
        env.http.push(resp(200, &[("content-type", "application/json")], b"{}"));
        assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/verify")), None).body.unwrap()["state"], "verified");
        assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/publish")), None).status, 200);
    }
    let entries = env.kv.entries.borrow();
    assert_eq!(entries.get(&format!("cred:{srv}:v1")).map(|(_, ttl)| *ttl), Some(Some(300)));
    assert_eq!(entries.get(&format!("cred:{srv}:v2")).map(|(_, ttl)| *ttl), Some(None));
}

// ---- F1, F7: verified accounts and consented membership ----

/// Signs up `email` without redeeming the verification link; returns (workspace id, session).
fn signed_up_unverified(env: &Env, email: &str) -> (String, (Option<String>, Option<String>)) {
    let r = env.call(
        "POST",
        "/api/v1/auth/signup",
        Some(json!({
            "email": email, "password": "a long enough password", "display_name": "X",
            "workspace_name": "W", "accept_terms": true, "accept_privacy": true
        })),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let body = r.body.unwrap();
    assert_eq!(body["user"]["email_verified"], false);
    assert_eq!(body["verification_email_sent"], true);
    (body["workspace"]["id"].as_str().unwrap().to_string(), env.session())
}

/// F1: an account that has not proved its address can sign in and work in its own workspace,
/// but cannot create access keys or publish until it redeems the emailed link.
#[test]
fn an_unverified_account_cannot_create_access_keys_or_publish() {
    let env = Env::new();
    let (ws, _) = signed_up_unverified(&env, "unverified@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let (_, srv) = api_key_server(&env, &ws);
    env.call("PATCH", &p(&format!("/servers/{srv}")), Some(json!({ "auth_mode": "none" })));
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/verify")), None).status, 200);
    for path in [format!("/servers/{srv}/keys"), format!("/servers/{srv}/publish")] {
        let r = env.call("POST", &p(&path), Some(json!({})));
        assert_eq!(r.status, 403, "{path}: {:?}", r.body);
        assert_eq!(r.body.unwrap()["error"]["code"], "email_unverified");
    }
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM server_access_keys"), 0);
    assert_eq!(env.call("GET", "/api/v1/me", None).body.unwrap()["user"]["email_verified"], false);
    env.verify_email("unverified@example.com");
    assert_eq!(env.call("GET", "/api/v1/me", None).body.unwrap()["user"]["email_verified"], true);
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/keys")), Some(json!({}))).status, 201);
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/publish")), None).status, 200);
}

/// F1 (the review's sequence): an outsider signs up with a colleague's address before the
/// colleague does; the owner invites the colleague. The squatter cannot accept (no mailbox, no
/// verified address), stays outside the workspace (404, not listed), and the mailbox's real
/// owner takes the address back with a password reset, which ends the squatter's sessions.
#[test]
fn a_squatted_address_never_joins_a_workspace_and_the_mailbox_owner_takes_it_back() {
    let env = Env::new();
    let ws = signed_up(&env, "owner-f1@victim.example");
    let owner = env.session();
    let (_, squatter) = signed_up_unverified(&env, "alice@victim.example");
    let invited = env.call_as(
        "POST",
        &format!("/api/v1/workspaces/{ws}/invitations"),
        owner.0.as_deref(),
        owner.1.as_deref(),
        Some(json!({ "email": "alice@victim.example", "role": "admin" })),
    );
    assert_eq!(invited.status, 202, "{:?}", invited.body);
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM memberships WHERE role = 'admin'"), 0, "nothing until accepted");
    let as_squatter = |m: &str, path: &str, body: Option<Value>| {
        env.call_as(m, path, squatter.0.as_deref(), squatter.1.as_deref(), body)
    };
    assert_eq!(as_squatter("GET", &format!("/api/v1/workspaces/{ws}"), None).status, 404);
    let me = as_squatter("GET", "/api/v1/me", None).body.unwrap();
    assert!(!me["workspaces"].as_array().unwrap().iter().any(|w| w["id"] == json!(ws)), "{me}");
    // Even holding the link (say it was forwarded), an unverified account cannot accept it.
    let token = env.link_token("alice@victim.example", "/invitations/accept").unwrap();
    let r = as_squatter("POST", "/api/v1/invitations/accept", Some(json!({ "token": token })));
    assert_eq!((r.status, r.body.unwrap()["error"]["code"].clone()), (403, json!("email_unverified")));

    // The real Alice resets the password through her mailbox: the squatter is signed out.
    let reset = env.call("POST", "/api/v1/auth/password-reset", Some(json!({ "email": "alice@victim.example" })));
    assert_eq!(reset.status, 202);
    let reset_token = env.link_token("alice@victim.example", "/reset-password").unwrap();
    let done = env.call(
        "POST",
        "/api/v1/auth/password-reset/confirm",
        Some(json!({ "token": reset_token, "new_password": "alice's own long password" })),
    );
    assert_eq!(done.status, 204, "{:?}", done.body);
    assert_eq!(as_squatter("GET", "/api/v1/me", None).status, 401, "the squatter's session ended");
    assert_eq!(env.login("alice@victim.example", "a long enough password").status, 401);
    assert_eq!(env.login("alice@victim.example", "alice's own long password").status, 200);
    assert_eq!(env.call("GET", "/api/v1/me", None).body.unwrap()["user"]["email_verified"], true);
    let joined = env.call("POST", "/api/v1/invitations/accept", Some(json!({ "token": token })));
    assert_eq!(joined.status, 200, "{:?}", joined.body);
    assert_eq!(joined.body.unwrap()["role"], "admin");
    assert_eq!(env.call("GET", &format!("/api/v1/workspaces/{ws}"), None).status, 200);
    let again = env.call("POST", "/api/v1/invitations/accept", Some(json!({ "token": token })));
    assert_eq!(again.status, 404, "an invitation works once");
}

/// F7: inviting answers the same whether or not an account uses the address (no enumeration
/// oracle), stores nothing that links the invitee to the workspace, and only the verified
/// holder of the invited address can accept.
#[test]
fn an_invitation_answers_the_same_for_any_address_and_only_its_address_can_accept() {
    let env = Env::new();
    let ws = signed_up(&env, "owner-f7@example.com");
    let owner = env.session();
    signed_up(&env, "known-f7@example.com");
    let known = env.session();
    signed_up(&env, "other-f7@example.com");
    let other = env.session();
    let invite = |email: &str| {
        env.call_as(
            "POST",
            &format!("/api/v1/workspaces/{ws}/invitations"),
            owner.0.as_deref(),
            owner.1.as_deref(),
            Some(json!({ "email": email, "role": "member" })),
        )
    };
    let shape = |r: Response| {
        let b = r.body.unwrap();
        let mut keys: Vec<String> = b.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        (r.status, keys, b["role"].clone(), b["expires_at"].clone())
    };
    assert_eq!(shape(invite("known-f7@example.com")), shape(invite("nobody-f7@example.com")));
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM memberships"), 3, "one owner membership each, no more");
    let token = env.link_token("known-f7@example.com", "/invitations/accept").unwrap();
    let r = env.call_as(
        "POST",
        "/api/v1/invitations/accept",
        other.0.as_deref(),
        other.1.as_deref(),
        Some(json!({ "token": token })),
    );
    assert_eq!(r.status, 404, "another account cannot use it: {:?}", r.body);
    let r = env.call_as(
        "POST",
        "/api/v1/invitations/accept",
        known.0.as_deref(),
        known.1.as_deref(),
        Some(json!({ "token": token })),
    );
    assert_eq!(r.status, 200, "the invited address still can: {:?}", r.body);
    let listed = env.call_as(
        "GET",
        &format!("/api/v1/workspaces/{ws}/invitations"),
        owner.0.as_deref(),
        owner.1.as_deref(),
        None,
    );
    let emails: Vec<Value> =
        listed.body.unwrap()["items"].as_array().unwrap().iter().map(|i| i["email"].clone()).collect();
    assert_eq!(emails, vec![json!("nobody-f7@example.com")], "accepted invitations leave the list");
    let member_list = env.call_as(
        "GET",
        &format!("/api/v1/workspaces/{ws}/invitations"),
        known.0.as_deref(),
        known.1.as_deref(),
        None,
    );
    assert_eq!(member_list.status, 403, "members do not see invitations");
}

/// F7: invitations are throttled per inviter (10 an hour) and per workspace (30 an hour).
#[test]
fn invitations_are_throttled_per_inviter_and_per_workspace() {
    let env = Env::new();
    let ws = signed_up(&env, "owner-th@example.com");
    let owner = env.session();
    let mut admins = Vec::new();
    for i in 0..3 {
        let email = format!("admin{i}-th@example.com");
        signed_up(&env, &email);
        let s = env.session();
        invite_and_accept(&env, &ws, &owner, &s, &email, "admin");
        admins.push(s);
    }
    let invite = |who: &(Option<String>, Option<String>), n: &str| {
        env.call_as(
            "POST",
            &format!("/api/v1/workspaces/{ws}/invitations"),
            who.0.as_deref(),
            who.1.as_deref(),
            Some(json!({ "email": format!("{n}@example.com"), "role": "member" })),
        )
    };
    for i in 3..10 {
        assert_eq!(invite(&owner, &format!("o{i}")).status, 202, "owner's invitation {}", i + 1);
    }
    let r = invite(&owner, "o-eleventh");
    assert_eq!(r.status, 429, "the inviter's eleventh within the hour: {:?}", r.body);
    assert!(r.headers.iter().any(|(k, _)| k == "retry-after"));
    for i in 0..10 {
        assert_eq!(invite(&admins[0], &format!("a{i}")).status, 202);
    }
    for i in 0..10 {
        assert_eq!(invite(&admins[1], &format!("b{i}")).status, 202);
    }
    assert_eq!(invite(&admins[2], "c0").status, 429, "the workspace's 31st within the hour");
    env.now.set(env.now.get() + 61 * 60 * 1000);
    assert_eq!(invite(&admins[2], "c1").status, 202, "an hour later");
}

/// F7: a withdrawn or expired invitation adds nobody, and inviting the same address again
/// replaces the pending invitation (the earlier link stops working).
#[test]
fn invitations_expire_can_be_withdrawn_and_are_replaced_by_a_new_one() {
    let env = Env::new();
    let ws = signed_up(&env, "owner-wd@example.com");
    let owner = env.session();
    signed_up(&env, "invitee-wd@example.com");
    let invitee = env.session();
    let inv = |body: Value| {
        env.call_as(
            "POST",
            &format!("/api/v1/workspaces/{ws}/invitations"),
            owner.0.as_deref(),
            owner.1.as_deref(),
            Some(body),
        )
    };
    let accept = |token: &str| {
        env.call_as(
            "POST",
            "/api/v1/invitations/accept",
            invitee.0.as_deref(),
            invitee.1.as_deref(),
            Some(json!({ "token": token })),
        )
        .status
    };
    let first = inv(json!({ "email": "invitee-wd@example.com", "role": "member" })).body.unwrap();
    let first_token = env.link_token("invitee-wd@example.com", "/invitations/accept").unwrap();
    let second = inv(json!({ "email": "Invitee-WD@example.com", "role": "admin" })).body.unwrap();
    assert_ne!(first["id"], second["id"]);
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM invitations"), 1, "one pending invitation per address");
    assert_eq!(accept(&first_token), 404, "the replaced link no longer works");
    let id = second["id"].as_str().unwrap();
    let withdrawn = env.call_as(
        "DELETE",
        &format!("/api/v1/workspaces/{ws}/invitations/{id}"),
        owner.0.as_deref(),
        owner.1.as_deref(),
        None,
    );
    assert_eq!(withdrawn.status, 204);
    let second_token = env.link_token("invitee-wd@example.com", "/invitations/accept").unwrap();
    assert_eq!(accept(&second_token), 404, "a withdrawn invitation adds nobody");
    inv(json!({ "email": "invitee-wd@example.com", "role": "member" }));
    let third_token = env.link_token("invitee-wd@example.com", "/invitations/accept").unwrap();
    env.now.set(env.now.get() + 7 * 24 * 60 * 60 * 1000 + 1);
    assert_eq!(env.login("invitee-wd@example.com", "a long enough password").status, 200);
    let r = env.call("POST", "/api/v1/invitations/accept", Some(json!({ "token": third_token })));
    assert_eq!(r.status, 404, "an expired invitation adds nobody");
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM memberships"), 2);
    let report = block_on(flowcp::jobs::retention::run(&env.db, env.now.get(), Default::default())).unwrap();
    assert_eq!(report.invitations_deleted, 1, "{report:?}");
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM invitations"), 0);
}

/// F1: a password-reset request answers the same for any address; its link works once, within
/// 30 minutes, ends every session and voids the account's other reset links.
#[test]
fn a_password_reset_link_works_once_within_30_minutes_and_ends_every_session() {
    let env = Env::new();
    signed_up(&env, "reset@example.com");
    let old_session = env.session();
    let ask = |email: &str| env.call("POST", "/api/v1/auth/password-reset", Some(json!({ "email": email })));
    let (known, unknown) = (ask("reset@example.com"), ask("nobody-reset@example.com"));
    assert_eq!((known.status, known.body.clone()), (unknown.status, unknown.body.clone()));
    assert!(block_on(flowcp::mail::outbox(&env.kv, "nobody-reset@example.com")).unwrap().is_empty());
    let stale = env.link_token("reset@example.com", "/reset-password").unwrap();
    ask("reset@example.com");
    let token = env.link_token("reset@example.com", "/reset-password").unwrap();
    let confirm = |token: &str, password: &str| {
        env.call(
            "POST",
            "/api/v1/auth/password-reset/confirm",
            Some(json!({ "token": token, "new_password": password })),
        )
    };
    assert_eq!(confirm(&stale, "a brand new password").status, 404, "only the newest link works");
    let weak = confirm(&token, "short");
    assert_eq!(weak.status, 422, "{:?}", weak.body);
    assert_eq!(confirm(&token, "a brand new password").status, 204, "a weak password did not spend the link");
    assert_eq!(confirm(&token, "yet another password").status, 404, "it works once");
    let r = env.call_as("GET", "/api/v1/me", old_session.0.as_deref(), old_session.1.as_deref(), None);
    assert_eq!(r.status, 401, "every session ended");
    assert_eq!(env.login("reset@example.com", "a brand new password").status, 200);

    // The fourth request within 15 minutes is throttled, for any address alike.
    assert_eq!(ask("reset@example.com").status, 202);
    assert_eq!(ask("reset@example.com").status, 429);
    for i in 0..2 {
        assert_eq!(ask("nobody-reset@example.com").status, 202, "{i}");
    }
    assert_eq!(ask("nobody-reset@example.com").status, 429);
    ask_after_expiry(&env);
}

fn ask_after_expiry(env: &Env) {
    env.now.set(env.now.get() + 2 * 60 * 60 * 1000);
    let r = env.call("POST", "/api/v1/auth/password-reset", Some(json!({ "email": "reset@example.com" })));
    assert_eq!(r.status, 202);
    let token = env.link_token("reset@example.com", "/reset-password").unwrap();
    env.now.set(env.now.get() + 30 * 60 * 1000 + 1);
    let r = env.call(
        "POST",
        "/api/v1/auth/password-reset/confirm",
        Some(json!({ "token": token, "new_password": "a late new password" })),
    );
    assert_eq!(r.status, 404, "a link older than 30 minutes is refused");
}

/// F1: a verification link works once, only for the address it was sent to, and a resend
/// voids the earlier link.
#[test]
fn a_verification_link_works_once_and_only_for_the_address_it_was_sent_to() {
    let env = Env::new();
    signed_up_unverified(&env, "verify@example.com");
    let first = env.link_token("verify@example.com", "/verify-email").unwrap();
    let resent = env.call("POST", "/api/v1/me/verification", None);
    assert_eq!(resent.status, 202, "{:?}", resent.body);
    let second = env.link_token("verify@example.com", "/verify-email").unwrap();
    assert_ne!(first, second);
    let redeem = |t: &str| env.call("POST", "/api/v1/auth/verify-email", Some(json!({ "token": t }))).status;
    assert_eq!(redeem(&first), 404, "a resend voids the earlier link");
    assert_eq!(redeem("not-a-token"), 404);
    assert_eq!(redeem(&second), 200);
    assert_eq!(redeem(&second), 404, "it works once");
    let again = env.call("POST", "/api/v1/me/verification", None);
    assert_eq!(again.body.unwrap()["error"]["code"], "already_verified");
    // A link sent to an address the account no longer has verifies nothing.
    let (_, _) = signed_up_unverified(&env, "moved@example.com");
    let token = env.link_token("moved@example.com", "/verify-email").unwrap();
    block_on(flowcp::store::Db::execute(
        &env.db,
        "UPDATE users SET email = 'elsewhere@example.com' WHERE email = 'moved@example.com'",
        &[],
    ))
    .unwrap();
    assert_eq!(redeem(&token), 404);
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM users WHERE email_verified_at IS NOT NULL"), 1);
}

// ---- F8 (a): the password throttle is atomic under parallel bursts ----

/// A `Db` that yields once to the executor before every statement, so the requests of a burst
/// interleave at each database call as they do on D1.
struct Yielding<'a>(&'a SqliteDb);

struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}

impl flowcp::store::Db for Yielding<'_> {
    async fn execute(&self, sql: &str, params: &[flowcp::store::SqlValue]) -> Result<u64, flowcp::store::StoreError> {
        YieldOnce(false).await;
        self.0.execute(sql, params).await
    }
    async fn query(
        &self,
        sql: &str,
        params: &[flowcp::store::SqlValue],
    ) -> Result<Vec<flowcp::store::Row>, flowcp::store::StoreError> {
        YieldOnce(false).await;
        self.0.query(sql, params).await
    }
    async fn batch(&self, statements: &[flowcp::store::Statement<'_>]) -> Result<Vec<u64>, flowcp::store::StoreError> {
        YieldOnce(false).await;
        self.0.batch(statements).await
    }
}

/// Polls every future in turn until all are done (a single-threaded runtime, like a Worker's).
fn run_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    while out.iter().any(Option::is_none) {
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                    out[i] = Some(v);
                }
            }
        }
    }
    out.into_iter().map(Option::unwrap).collect()
}

/// F8 (a): 20 parallel wrong logins for one email get no more password checks than a serial
/// burst: the attempt is reserved in one statement before the password is verified, so at most
/// 5 are checked (401) and the rest are refused unchecked (429).
#[test]
fn a_parallel_burst_of_logins_gets_no_more_guesses_than_a_serial_one() {
    let env = Env::new();
    signed_up(&env, "burst@example.com");
    let db = Yielding(&env.db);
    let svc = Services {
        db: &db,
        kv: &env.kv,
        http: &env.http,
        fetch_policy: FetchPolicy::default(),
        secrets: &env.secrets,
        mailer: &flowcp::mail::Mailer::Outbox,
        now_ms: env.now.get(),
        clock: || 1_790_000_000_000,
        origin: "https://flowcp.example".into(),
        link_origin: None,
        default_plan: None,
        git: None,
    };
    let requests: Vec<Request> = (0..20)
        .map(|i| Request {
            method: "POST".into(),
            path: "/api/v1/auth/login".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(&json!({ "email": "burst@example.com", "password": format!("wrong guess {i}") }))
                .unwrap(),
            client_addr: Some("198.51.100.9".into()),
            ..Request::default()
        })
        .collect();
    let answers = run_all(requests.iter().map(|r| handle(&svc, r)).collect());
    let statuses: Vec<u16> = answers.iter().map(|a| a.as_ref().map_or_else(|e| e.status, |r| r.status)).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(checked, 5, "password checks in the burst: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 15, "{statuses:?}");
    // And the right password is refused too while the lock lasts.
    assert_eq!(env.login("burst@example.com", "a long enough password").status, 429);
}

/// The single-statement reservation follows the pure policy exactly, through windows, locks,
/// doubling and quiet periods.
#[test]
fn the_atomic_reservation_follows_the_throttle_policy() {
    use flowcp::auth::throttle::Policy;
    use flowcp::store::sessions::throttle as store;
    let db = SqliteDb::migrated();
    let p = Policy::EMAIL;
    let knobs = store::Knobs {
        max_failures: p.max_failures,
        window_ms: p.window_ms,
        base_lock_ms: p.base_lock_ms,
        max_lock_ms: p.max_lock_ms,
    };
    let minute = 60_000;
    let mut model: Option<store::ThrottleState> = None;
    let mut t = 1_790_000_000_000i64;
    // Failures at varied gaps: inside windows, at lock ends, after quiet periods.
    let gaps = [
        0,
        1,
        1,
        1,
        1,
        minute,
        30_000,
        minute,
        2 * minute,
        4 * minute,
        8 * minute,
        15 * minute,
        16 * minute,
        1,
        40 * minute,
    ];
    for (i, gap) in gaps.iter().enumerate() {
        t += gap;
        let locked = matches!(p.decide(model, t), flowcp::auth::throttle::Decision::Locked { .. });
        let got = block_on(store::reserve(&db, "k", t, &knobs)).unwrap();
        if locked {
            assert_eq!(got, None, "step {i}: the statement let a locked key through");
        } else {
            let want = p.record_failure(model, t);
            assert_eq!(got, Some(want), "step {i} at +{gap} ms");
            model = Some(want);
        }
    }
}

// ---- Review of part 5 (F1, F7): answered findings ----

/// Review 4: an invitation does not outlive its inviter's authority: removing the inviter, or
/// making them a plain member, withdraws what they sent.
#[test]
fn removing_or_demoting_an_inviter_withdraws_their_invitations() {
    for how in ["remove", "demote"] {
        let env = Env::new();
        let ws = signed_up(&env, &format!("owner-{how}@example.com"));
        let owner = env.session();
        let admin_email = format!("admin-{how}@example.com");
        signed_up(&env, &admin_email);
        let admin = env.session();
        invite_and_accept(&env, &ws, &owner, &admin, &admin_email, "admin");
        let accomplice = format!("accomplice-{how}@example.com");
        signed_up(&env, &accomplice);
        let accomplice_session = env.session();
        let sent = env.call_as(
            "POST",
            &format!("/api/v1/workspaces/{ws}/invitations"),
            admin.0.as_deref(),
            admin.1.as_deref(),
            Some(json!({ "email": accomplice, "role": "member" })),
        );
        assert_eq!(sent.status, 202);
        let token = env.link_token(&accomplice, "/invitations/accept").unwrap();
        let admin_id = user_id(&env, &admin_email);
        let (method, body) =
            if how == "remove" { ("DELETE", None) } else { ("PATCH", Some(json!({ "role": "member" }))) };
        let r = env.call_as(
            method,
            &format!("/api/v1/workspaces/{ws}/members/{admin_id}"),
            owner.0.as_deref(),
            owner.1.as_deref(),
            body,
        );
        assert!(r.status == 200 || r.status == 204, "{how}: {:?}", r.body);
        let r = env.call_as(
            "POST",
            "/api/v1/invitations/accept",
            accomplice_session.0.as_deref(),
            accomplice_session.1.as_deref(),
            Some(json!({ "token": token })),
        );
        assert_eq!(r.status, 404, "{how}: the invitation outlived its inviter: {:?}", r.body);
    }
}

/// Review 5: a membership an unverified account holds in a workspace it did not create (made
/// by the old AddMember before verification existed) gives nothing until the address is
/// verified; its own workspace stays open.
#[test]
fn an_unverified_account_opens_only_the_workspaces_it_created() {
    let env = Env::new();
    let ws = signed_up(&env, "owner-legacy@example.com");
    let (own_ws, squatter) = signed_up_unverified(&env, "legacy-squat@example.com");
    let squatter_id = user_id(&env, "legacy-squat@example.com");
    let add = "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES (?1, ?2, 'admin', 1)";
    block_on(flowcp::store::Db::execute(&env.db, add, &[ws.as_str().into(), squatter_id.as_str().into()])).unwrap();
    let get = |path: &str| env.call_as("GET", path, squatter.0.as_deref(), squatter.1.as_deref(), None);
    assert_eq!(get(&format!("/api/v1/workspaces/{ws}")).status, 404);
    assert_eq!(get(&format!("/api/v1/workspaces/{ws}/servers")).status, 404);
    let listed: Vec<Value> =
        get("/api/v1/me").body.unwrap()["workspaces"].as_array().unwrap().iter().map(|w| w["id"].clone()).collect();
    assert_eq!(listed, vec![json!(own_ws)]);
    assert_eq!(get(&format!("/api/v1/workspaces/{own_ws}")).status, 200);
    env.call_as(
        "POST",
        "/api/v1/auth/verify-email",
        squatter.0.as_deref(),
        squatter.1.as_deref(),
        Some(json!({
            "token": env.link_token("legacy-squat@example.com", "/verify-email").unwrap()
        })),
    );
    assert_eq!(get(&format!("/api/v1/workspaces/{ws}")).status, 200, "once verified, the membership counts");
}

/// Review 6: a verification link verifies only from a session of the account it was sent for:
/// the mailbox's owner clicking a link a squatter's sign-up sent does not verify the squatter.
#[test]
fn a_verification_link_needs_the_session_of_its_own_account() {
    let env = Env::new();
    let (_, squatter) = signed_up_unverified(&env, "mailbox@example.com");
    let token = env.link_token("mailbox@example.com", "/verify-email").unwrap();
    signed_up(&env, "someone-else@example.com");
    let other = env.session();
    let r = env.call_as(
        "POST",
        "/api/v1/auth/verify-email",
        other.0.as_deref(),
        other.1.as_deref(),
        Some(json!({ "token": token })),
    );
    assert_eq!(r.status, 404, "{:?}", r.body);
    let r = env.call_as("POST", "/api/v1/auth/verify-email", None, None, Some(json!({ "token": token })));
    assert_eq!(r.status, 401);
    assert_eq!(
        env.count("SELECT COUNT(*) AS n FROM users WHERE email = 'mailbox@example.com' AND email_verified_at IS NULL"),
        1
    );
    let r = env.call_as(
        "POST",
        "/api/v1/auth/verify-email",
        squatter.0.as_deref(),
        squatter.1.as_deref(),
        Some(json!({ "token": token })),
    );
    assert_eq!(r.status, 200, "the link still works for its own account: {:?}", r.body);
}

/// Review 3: sign-up and delete loops cannot flood a mailbox: the verification message counts
/// against the address's mail budget (3 per 15 minutes) like any other.
#[test]
fn sign_up_loops_cannot_flood_a_mailbox() {
    let env = Env::new();
    let mut sent = Vec::new();
    for _ in 0..4 {
        let r = env.call(
            "POST",
            "/api/v1/auth/signup",
            Some(json!({ "email": "flooded@example.com", "password": "a long enough password", "display_name": "X",
                "workspace_name": "W", "accept_terms": true, "accept_privacy": true })),
        );
        assert_eq!(r.status, 201, "{:?}", r.body);
        sent.push(r.body.unwrap()["verification_email_sent"].clone());
        let gone = env.call("DELETE", "/api/v1/me", Some(json!({ "password": "a long enough password" })));
        assert_eq!(gone.status, 204, "{:?}", gone.body);
    }
    assert_eq!(sent, vec![json!(true), json!(true), json!(true), json!(false)]);
    assert_eq!(block_on(flowcp::mail::outbox(&env.kv, "flooded@example.com")).unwrap().len(), 3);
}

/// Security review F4(c): `publish` refuses a manifest above the documented cap with 422, and
/// nothing goes live. Format 3 caps each part it writes (`shards::MAX_PART_BYTES`): here the
/// first `tools/list` page.
#[test]
fn publish_refuses_a_manifest_above_the_cap() {
    let env = Env::new();
    // Fourteen operations sharing a parameter with 11,500 enum values of 110 characters: each
    // tool about 1.3 MB (under the per-tool cap), the first page about 18 MB, the import well
    // under its memory budget (long strings are cheap in memory for their size).
    let values: Vec<String> = (0..11_500).map(|i| format!("{i:0110}")).collect();
    let schema = json!({"type": "string", "enum": values});
    let (ws, srv, r) = publish_operations_sharing_a_parameter(&env, "big@example.com", 14, schema);
    let body = r.body.unwrap();
    assert_eq!(r.status, 422, "{}", body["error"]);
    assert_eq!(body["error"]["code"], "manifest_too_large");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Part p0") && message.contains(&flowcp::mcp::shards::MAX_PART_BYTES.to_string()),
        "{message}"
    );
    // The shards written before the page was refused are taken back.
    let prefix = format!("manifest:{srv}:");
    let left: Vec<String> = env.kv.entries.borrow().keys().filter(|k| k.starts_with(&prefix)).cloned().collect();
    assert!(left.is_empty(), "{left:?}");
    let server = env.call("GET", &format!("/api/v1/workspaces/{ws}/servers/{srv}"), None).body.unwrap();
    assert_eq!(server["published_version"], Value::Null);
    // Publish read those definitions at most 4 MB at a time (at least one each), in name order,
    // every one once.
    let app = server["app_id"].as_str().unwrap();
    let (mut after, mut seen, mut batches) = (None, Vec::new(), 0);
    loop {
        let rows = block_on(flowcp::store::apps::enabled_tools_after(&env.db, &ws, app, after.as_ref(), 100, 4 << 20))
            .unwrap();
        let Some(last) = rows.last() else { break };
        let bytes: usize = rows.iter().map(|r| r.def_json.len()).sum();
        assert!(bytes - rows.last().unwrap().def_json.len() < 4 << 20, "batch {batches}: {bytes} bytes");
        after = Some((last.name.clone(), last.id.clone()));
        seen.extend(rows.iter().map(|r| r.name.clone()));
        batches += 1;
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!((seen.len(), &seen), (14, &sorted));
    assert!(batches >= 4, "{batches} batches for 14 definitions of 1.3 MB");
}

/// Signs up `email`, imports `count` operations that share one query parameter with `schema`,
/// makes a verified `none` server of them and publishes it: (workspace, server, the answer).
fn publish_operations_sharing_a_parameter(
    env: &Env,
    email: &str,
    count: usize,
    schema: Value,
) -> (String, String, Response) {
    let ws = signed_up(env, email);
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let id = |r: Response| r.body.unwrap()["id"].as_str().unwrap().to_string();
    let app = id(env.call("POST", &p("/apps"), Some(json!({ "name": "Shared" }))));
    let paths: serde_json::Map<String, Value> = (0..count)
        .map(|i| {
            let op = json!({"get": {"operationId": format!("op{i}"), "responses": {"200": {"description": "ok"}},
                "parameters": [{"$ref": "#/components/parameters/V"}]}});
            (format!("/op/{i}"), op)
        })
        .collect();
    let doc = json!({"openapi": "3.0.3", "info": {"title": "Shared", "version": "1"},
        "servers": [{"url": "https://api.example.com"}], "paths": paths,
        "components": {"parameters": {"V": {"name": "v", "in": "query", "schema": schema}}}});
    let imported = env.call("POST", &p(&format!("/apps/{app}/imports")), Some(doc));
    assert_eq!(imported.status, 201, "{:?}", imported.body.map(|b| b["error"].clone()));
    let srv = id(env.call("POST", &p("/servers"), Some(json!({ "app_id": app }))));
    env.call("PATCH", &p(&format!("/servers/{srv}")), Some(json!({ "auth_mode": "none" })));
    let v = env.call("POST", &p(&format!("/servers/{srv}/verify")), None);
    if v.status != 200 {
        // Verification refuses what could not be published (a manifest over the cap).
        return (ws, srv, v);
    }
    assert_eq!(v.body.unwrap()["state"], "verified");
    let r = env.call("POST", &p(&format!("/servers/{srv}/publish")), None);
    (ws, srv, r)
}

const K1: &str = "k1:2222222222222222222222222222222222222222222222222222222222222222";
const K2: &str = "k2:3333333333333333333333333333333333333333333333333333333333333333";

/// Security review S5: the re-seal job moves every envelope (server credentials, their
/// published copies, workspace secrets) to the primary key, a page at a time and resumably;
/// afterwards a ring without the old key opens all of them, and a second run changes nothing.
#[test]
fn the_reseal_job_moves_every_envelope_to_the_primary_key_so_the_old_key_can_go() {
    use flowcp::crypto::{aad_server_credential, aad_workspace_secret};
    use flowcp::service::reseal;
    use flowcp::store::Kv;
    let env = Env::new();
    let mut servers = Vec::new();
    let mut workspaces = Vec::new();
    for who in ["r1@example.com", "r2@example.com"] {
        let ws = signed_up(&env, who);
        let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
        let (_, srv) = api_key_server(&env, &ws);
        let put = env.call(
            "PUT",
            &p(&format!("/servers/{srv}/credential")),
            Some(json!({ "value": CREDENTIAL, "origin": "https://api.example.com" })),
        );
        assert_eq!(put.status, 200);
        env.call("POST", &p(&format!("/servers/{srv}/verify")), None);
        assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/publish")), None).status, 200);
        assert_eq!(
            env.call("PUT", &p("/secrets/TOKEN"), Some(json!({ "value": format!("secret-of-{ws}") }))).status,
            200
        );
        servers.push(srv);
        workspaces.push(ws);
    }
    // Every envelope as it should open, with its AAD and plaintext.
    let mut expected: Vec<(String, Vec<u8>, String)> = Vec::new();
    for srv in &servers {
        for key in [format!("cred:{srv}"), format!("cred:{srv}:v1")] {
            expected.push((key, aad_server_credential(srv), CREDENTIAL.to_string()));
        }
    }
    for ws in &workspaces {
        expected.push((format!("wsec:{ws}:TOKEN"), aad_workspace_secret(ws, "TOKEN"), format!("secret-of-{ws}")));
    }
    let rotating = Keyring::parse(&format!("{K2},{K1}")).unwrap();
    // A dry run first: everything opens, nothing is written.
    // Just after the writes nothing is settled: the job leaves everything for later.
    let now = env.now.get();
    let early = block_on(reseal::run(&env.db, &env.kv, &rotating, "", 100, false, now)).unwrap();
    assert_eq!((early.resealed, early.changed_meanwhile), (0, 6), "{early:?}");
    let later = now + reseal::SETTLE_MS;
    let dry = block_on(reseal::run(&env.db, &env.kv, &rotating, "", 100, true, later)).unwrap();
    assert_eq!((dry.examined, dry.opened_with_older_key, dry.resealed, dry.done), (6, 6, 0, true), "{dry:?}");
    // The real run, one owner per call, resuming from each cursor.
    let (mut after, mut calls, mut resealed) = (String::new(), 0, 0);
    loop {
        let r = block_on(reseal::run(&env.db, &env.kv, &rotating, &after, 1, false, later)).unwrap();
        assert!(r.failed.is_empty(), "{r:?}");
        resealed += r.resealed;
        calls += 1;
        match r.next_cursor {
            Some(c) => after = reseal::resume_after(&c).expect("our cursor"),
            None => break,
        }
        assert!(calls < 10, "the job does not end");
    }
    assert_eq!(resealed, 6);
    // The old key removed: every envelope opens, under k2.
    let k2_only = Keyring::parse(K2).unwrap();
    for (key, aad, plain) in &expected {
        let sealed = String::from_utf8(block_on(env.kv.get(key)).unwrap().unwrap()).unwrap();
        assert!(sealed.starts_with("fcp1.k2."), "{key} is still under another key");
        assert_eq!(k2_only.open(&sealed, aad).unwrap(), plain.as_bytes(), "{key}");
    }
    let again = block_on(reseal::run(&env.db, &env.kv, &k2_only, "", 100, false, later)).unwrap();
    assert_eq!((again.current, again.resealed, again.failed.len()), (6, 0, 0), "{again:?}");
    // A ring missing the key an envelope needs reports it by key, never by value.
    let wrong = Keyring::parse(K1).unwrap();
    let r = block_on(reseal::run(&env.db, &env.kv, &wrong, "", 100, true, later)).unwrap();
    assert_eq!(r.failed.len(), 6);
    assert!(!serde_json::to_string(&r).unwrap().contains(CREDENTIAL));
    assert!(reseal::resume_after("not-a-cursor").is_none());
}

/// Security review S5: the session secret can be rotated without signing everyone out. With
/// the old secret as `previous`, a session signed by it still works (reads, and writes with its
/// CSRF token, which `GET /me` hands back); without it, the session is gone.
#[test]
fn a_session_signed_with_the_previous_secret_survives_a_rotation() {
    let mut env = Env::new();
    let ws = signed_up(&env, "rot@example.com");
    let csrf_before = env.call("GET", "/api/v1/me", None).body.unwrap()["csrf_token"].clone();
    let old = std::mem::replace(&mut env.secrets.session_secret, b"a-brand-new-session-secret-of-32+chars".to_vec());
    assert_eq!(env.call("GET", "/api/v1/me", None).status, 401, "no previous secret: signed out");
    env.secrets.previous_session_secret = Some(old);
    let me = env.call("GET", "/api/v1/me", None);
    assert_eq!(me.status, 200);
    assert_eq!(me.body.unwrap()["csrf_token"], csrf_before, "the session's own CSRF token");
    let created = env.call("POST", &format!("/api/v1/workspaces/{ws}/apps"), Some(json!({ "name": "After rotation" })));
    assert_eq!(created.status, 201, "{:?}", created.body);
    // A new sign-in is signed with the new secret and keeps working once `previous` is gone.
    env.call("POST", "/api/v1/auth/logout", None);
    let login = env.call(
        "POST",
        "/api/v1/auth/login",
        Some(json!({ "email": "rot@example.com", "password": "a long enough password" })),
    );
    assert_eq!(login.status, 200, "{:?}", login.body);
    env.secrets.previous_session_secret = None;
    assert_eq!(env.call("GET", "/api/v1/me", None).status, 200);
}

/// Review of F4(c): a manifest small as JSON but large in memory (a shared enum of small
/// integers, 40 bytes of JSON become 80 bytes of value) is refused at publish by its memory
/// cost, so no published manifest is too large for the isolate's cache.
#[test]
fn publish_refuses_a_manifest_too_large_in_memory() {
    let env = Env::new();
    // Six tools sharing an enum of 160,000 small numbers: about 2 MB of JSON, about 66 MiB as
    // values once parsed (over an isolate's cache as one manifest): each gets a shard of its own
    // (format 3), so a request loads about 11 MB of them, and the server publishes.
    let values: Vec<u32> = (0..160_000).map(|i| i % 10).collect();
    let schema = json!({"type": "integer", "enum": values});
    let (_, _, r) = publish_operations_sharing_a_parameter(&env, "dense@example.com", 6, schema);
    let body = r.body.unwrap();
    assert_eq!(r.status, 200, "{body}");
    assert_eq!(body["manifest"]["tools"], 6);
    // One tool of about 26 MB once parsed cannot be held by a request: refused, with why.
    let values: Vec<u32> = (0..400_000).map(|i| i % 10).collect();
    let schema = json!({"type": "integer", "enum": values});
    let (_, _, r) = publish_operations_sharing_a_parameter(&env, "denser@example.com", 1, schema);
    let body = r.body.unwrap();
    assert_eq!((r.status, body["error"]["code"].clone()), (422, json!("manifest_too_large")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("MB in memory"), "{body}");
}

/// Issue 12: the owner restricts which browser origins may call a server; entries are
/// normalised origins, anything else is refused with `invalid_origin`, `null` allows any
/// again, and the list reaches the manifest at the next publish.
#[test]
fn allowed_origins_are_validated_normalised_and_published() {
    let env = Env::new();
    let ws = signed_up(&env, "cors@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let (_app, srv) = api_key_server(&env, &ws);
    let path = p(&format!("/servers/{srv}"));
    assert_eq!(env.call("GET", &path, None).body.unwrap()["allowed_origins"], Value::Null);
    for bad in [
        json!(["https://app.example/path"]),
        json!(["app.example"]),
        json!(["ftp://app.example"]),
        json!(["https://user:pw@app.example"]),
        json!(["https://app.example?x=1"]),
        json!(["*"]),
        json!("https://app.example"),
        json!([1]),
        json!((0..33).map(|i| format!("https://a{i}.example")).collect::<Vec<_>>()),
    ] {
        let r = env.call("PATCH", &path, Some(json!({ "allowed_origins": bad })));
        assert!(matches!(r.status, 400 | 422), "{bad}: {:?}", r.body);
        let code = r.body.as_ref().unwrap()["error"]["code"].as_str().unwrap().to_string();
        assert!(code == "invalid_origin" || code == "invalid_json", "{bad}: {code}");
    }
    let r = env.call(
        "PATCH",
        &path,
        Some(
            json!({ "allowed_origins": ["HTTPS://App.Example:443/", "http://localhost:6274", "https://app.example"] }),
        ),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body.unwrap()["allowed_origins"], json!(["https://app.example", "http://localhost:6274"]));
    env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": CREDENTIAL, "origin": "https://api.example.com" })),
    );
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/verify")), None).body.unwrap()["state"], "verified");
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/publish")), None).status, 200);
    let manifest: Value =
        serde_json::from_slice(&env.kv.entries.borrow().get(&format!("manifest:{srv}:1")).unwrap().0).unwrap();
    assert_eq!(manifest["allowedOrigins"], json!(["https://app.example", "http://localhost:6274"]));
    let r = env.call("PATCH", &path, Some(json!({ "allowed_origins": null })));
    assert_eq!(r.body.unwrap()["allowed_origins"], Value::Null);
}

/// Issue 13 (part 2): the authorization server's metadata names one issuer for the origin and
/// every field strict clients require; registration gives public clients integer timestamps
/// and refuses dangerous redirect URIs with RFC 7591 errors; unused registrations expire.
#[test]
fn the_authorization_server_publishes_metadata_and_registers_public_clients() {
    let env = Env::new();
    let m = env.call("GET", "/.well-known/oauth-authorization-server", None);
    assert_eq!(m.status, 200);
    let m = m.body.unwrap();
    assert_eq!(m["issuer"], "https://flowcp.example", "the origin exactly, no trailing slash");
    for (k, v) in [
        ("response_types_supported", json!(["code"])),
        ("code_challenge_methods_supported", json!(["S256"])),
        ("token_endpoint_auth_methods_supported", json!(["none"])),
        ("grant_types_supported", json!(["authorization_code", "refresh_token"])),
        ("authorization_response_iss_parameter_supported", json!(true)),
        ("registration_endpoint", json!("https://flowcp.example/oauth/register")),
    ] {
        assert_eq!(m[k], v, "{k}");
    }
    assert!(!m.to_string().contains("offline_access"));
    // OpenID Connect discovery serves the same document (clients that look only there).
    let oidc = env.call("GET", "/.well-known/openid-configuration", None);
    assert_eq!((oidc.status, oidc.body.unwrap()), (200, m.clone()));
    let r = env.call(
        "POST",
        "/oauth/register",
        Some(json!({ "client_name": "Cursor", "redirect_uris": ["cursor://anysphere.cursor-mcp/oauth/callback", "http://localhost:3334/callback"], "token_endpoint_auth_method": "none" })),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert!(r.headers.contains(&("cache-control".into(), "no-store".into())));
    assert!(r.headers.contains(&("access-control-allow-origin".into(), "*".into())));
    let body = r.body.unwrap();
    let id = body["client_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("fcp_cl_"));
    assert!(body["client_id_issued_at"].is_u64(), "an integer timestamp: {body}");
    assert!(body.get("client_secret").is_none());
    let stored = block_on(flowcp::store::oauth_clients::get(&env.db, &id)).unwrap().unwrap();
    assert_eq!(stored.redirect_uris.len(), 2);
    for (bad, code) in [
        (json!({ "redirect_uris": ["javascript:alert(1)"] }), "invalid_redirect_uri"),
        (json!({ "redirect_uris": ["http://evil.example/cb"] }), "invalid_redirect_uri"),
        (json!({ "client_name": "x" }), "invalid_redirect_uri"),
        (
            json!({ "redirect_uris": ["https://a.example/cb"], "grant_types": ["client_credentials"] }),
            "invalid_client_metadata",
        ),
    ] {
        let r = env.call("POST", "/oauth/register", Some(bad.clone()));
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.body.unwrap()["error"], code, "{bad}");
    }
    assert_eq!(env.call("GET", "/oauth/register", None).status, 405);
    assert_eq!(env.call("OPTIONS", "/oauth/register", None).status, 204);
    let t = env.call("POST", "/oauth/token", None);
    assert_eq!((t.status, t.body.unwrap()["error"].clone()), (400, json!("invalid_request")), "not a form");
    // A registration never used is deleted by retention after a day.
    let later = env.now.get() + 2 * flowcp::jobs::retention::DAY_MS;
    let report = block_on(flowcp::jobs::retention::run(&env.db, later, Default::default())).unwrap();
    assert_eq!(report.oauth_clients_deleted, 1, "{report:?}");
    assert!(block_on(flowcp::store::oauth_clients::get(&env.db, &id)).unwrap().is_none());
}

fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header: {r:?}"))
}

fn query_of(url: &str, name: &str) -> Option<String> {
    let u = url::Url::parse(url).unwrap();
    u.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn form_body(pairs: &[(&str, &str)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish().into_bytes()
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Issue 13: the whole authorization-code flow over the routes, with a scripted provider:
/// registration, authorize, FlowCP's consent page (CSRF-bound to its cookie), the upstream
/// redirect with FlowCP's own state and PKCE (never the client's resource), the callback (state
/// single use), FlowCP's code with iss, the token endpoint, refresh rotation, revocation; and
/// no table or KV value holds the user's tokens.
#[test]
fn the_authorization_code_flow_runs_end_to_end_and_stores_no_user_token() {
    let env = Env::new();
    let ws = signed_up(&env, "oauth-owner@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let id = |r: Response| r.body.unwrap()["id"].as_str().unwrap().to_string();
    let app = id(env.call("POST", &p("/apps"), Some(json!({ "name": "GitHub-ish" }))));
    env.call("POST", &p(&format!("/apps/{app}/imports")), Some(document()));
    let srv = id(env.call("POST", &p("/servers"), Some(json!({ "app_id": app }))));
    let r = env.call("PATCH", &p(&format!("/servers/{srv}")), Some(json!({ "auth_mode": "oauth", "auth_config": {
        "authorize_url": "https://idp.example/login/oauth/authorize", "token_url": "https://idp.example/login/oauth/access_token",
        "client_id": "owner-app", "scopes": ["repo"] } })));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let put = env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": "owner-client-secret", "origin": "https://api.example.com" })),
    );
    assert_eq!(put.status, 200, "{:?}", put.body);
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/verify")), None).body.unwrap()["state"], "verified");
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/publish")), None).status, 200);

    let json_h = vec![("content-type".to_string(), "application/json".to_string())];
    let reg = env.raw(
        "POST",
        "/oauth/register",
        json_h,
        serde_json::to_vec(&json!({ "client_name": "Claude Code", "redirect_uris": ["http://localhost/callback"] }))
            .unwrap(),
    );
    let client_id = reg.body.unwrap()["client_id"].as_str().unwrap().to_string();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let authorize = format!(
        "/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2Flocalhost%3A5555%2Fcallback&code_challenge={challenge}&code_challenge_method=S256&state=client-state&resource=https%3A%2F%2Fflowcp.example%2Fmcp%2F{srv}&scope=mcp%3A{srv}"
    );
    // Before any user action an error is a page with a link, never an automatic redirect (open
    // registration would make FlowCP an open redirector).
    let bad = env.raw("GET", &authorize.replace("response_type=code", "response_type=token"), vec![], vec![]);
    assert_eq!(bad.status, 400);
    assert!(bad.headers.iter().all(|(k, _)| k != "location"));
    assert!(bad.body.as_ref().unwrap().as_str().unwrap().contains("Return to the app"));
    let page = env.raw("GET", &authorize, vec![], vec![]);
    assert_eq!(page.status, 200, "{:?}", page.body);
    assert!(header(&page, "content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    let html = page.body.as_ref().unwrap().as_str().unwrap().to_string();
    assert!(html.contains("Claude Code") && html.contains("localhost") && html.contains("repo"), "{html}");
    let cookie = header(&page, "set-cookie").split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("__Host-fcp_consent=") && header(&page, "set-cookie").contains("HttpOnly"));
    let at = html.find("name=\"ticket\" value=\"").unwrap() + 21;
    let ticket = html[at..].split('"').next().unwrap().to_string();

    // The decision without the page's cookie (a forged cross-site POST) is refused.
    let forged = env.raw(
        "POST",
        "/oauth/authorize",
        vec![("content-type".into(), FORM.into())],
        form_body(&[("ticket", &ticket), ("decision", "approve")]),
    );
    assert_eq!(forged.status, 400);
    let decided = env.raw(
        "POST",
        "/oauth/authorize",
        vec![("content-type".into(), FORM.into()), ("cookie".into(), cookie.clone())],
        form_body(&[("ticket", &ticket), ("decision", "approve")]),
    );
    assert_eq!(decided.status, 302, "{:?}", decided.body);
    let upstream_url = header(&decided, "location").to_string();
    assert!(upstream_url.starts_with("https://idp.example/login/oauth/authorize?"), "{upstream_url}");
    assert_eq!(query_of(&upstream_url, "client_id").as_deref(), Some("owner-app"));
    assert_eq!(
        query_of(&upstream_url, "redirect_uri"),
        Some(format!("https://flowcp.example/oauth/callback/{srv}")),
        "a callback per server"
    );
    assert_eq!(query_of(&upstream_url, "scope").as_deref(), Some("repo"));
    assert!(query_of(&upstream_url, "resource").is_none(), "the client's resource is never forwarded");
    assert_ne!(query_of(&upstream_url, "code_challenge").as_deref(), Some(challenge), "FlowCP's own PKCE upstream");
    let state = query_of(&upstream_url, "state").unwrap();
    let browser = state_cookie(&decided);
    let callback_path = format!("/oauth/callback/{srv}?code=upstream-code&state={}", urlencode(&state));
    // The state completes only in the browser that approved (not a victim's it was sent to) and
    // only at its own server's callback.
    assert_eq!(env.raw("GET", &callback_path, vec![], vec![]).status, 400);
    let elsewhere = format!("/oauth/callback/srv_other?code=upstream-code&state={}", urlencode(&state));
    assert_eq!(env.raw("GET", &elsewhere, vec![("cookie".into(), browser.clone())], vec![]).status, 400);

    // The provider's token endpoint answers the code exchange.
    env.http.push(resp(200, &[("content-type", "application/json")], br#"{"access_token":"gho_USER_ACCESS_abc","refresh_token":"ghr_USER_REFRESH_def","expires_in":28800,"scope":"repo","token_type":"bearer"}"#));
    let cb = env.raw("GET", &callback_path, vec![("cookie".into(), browser.clone())], vec![]);
    assert_eq!(cb.status, 302, "{:?}", cb.body);
    let back = header(&cb, "location").to_string();
    assert!(back.starts_with("http://localhost:5555/callback?code=fcp_ac."), "{back}");
    assert_eq!(query_of(&back, "state").as_deref(), Some("client-state"));
    assert_eq!(query_of(&back, "iss").as_deref(), Some("https://flowcp.example"));
    let sent = env.http.seen.borrow().last().unwrap().clone();
    assert_eq!(sent.url, "https://idp.example/login/oauth/access_token");
    let sent_body = String::from_utf8(sent.body.clone().unwrap()).unwrap();
    assert!(
        sent_body.contains("client_secret=owner-client-secret")
            && sent_body.contains("code=upstream-code")
            && sent_body.contains("code_verifier=")
    );
    // The state is single use.
    let again = env.raw("GET", &callback_path, vec![("cookie".into(), browser.clone())], vec![]);
    assert_eq!(again.status, 400);
    // A callback FlowCP never started (consent skipped) is refused.
    let skipped = env.raw(
        "GET",
        &format!("/oauth/callback/{srv}?code=x&state=fcp1.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        vec![("cookie".into(), browser.clone())],
        vec![],
    );
    assert_eq!(skipped.status, 400);

    let code = query_of(&back, "code").unwrap();
    let token_req = |pairs: &[(&str, &str)]| {
        env.raw("POST", "/oauth/token", vec![("content-type".into(), FORM.into())], form_body(pairs))
    };
    let t = token_req(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("client_id", &client_id),
        ("redirect_uri", "http://localhost:5555/callback"),
        ("code_verifier", verifier),
    ]);
    assert_eq!(t.status, 200, "{:?}", t.body);
    assert_eq!(header(&t, "cache-control"), "no-store");
    let tokens = t.body.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].as_i64().unwrap() <= 3_600);
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh0 = tokens["refresh_token"].as_str().unwrap().to_string();
    // A replayed code is refused.
    let replay = token_req(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("client_id", &client_id),
        ("redirect_uri", "http://localhost:5555/callback"),
        ("code_verifier", verifier),
    ]);
    assert_eq!(replay.body.unwrap()["error"], "invalid_grant");
    // ... and revoked the connection: the refresh token stops working.
    let r = token_req(&[("grant_type", "refresh_token"), ("refresh_token", &refresh0)]);
    assert_eq!(r.body.unwrap()["error"], "invalid_grant");

    // A second, clean sign-in to exercise refresh rotation and revocation.
    let (access, refresh0) = {
        let decided = approve(&env, &authorize);
        let state = query_of(header(&decided, "location"), "state").unwrap();
        env.http.push(resp(
            200,
            &[("content-type", "application/json")],
            br#"{"access_token":"gho_USER_ACCESS_abc","refresh_token":"ghr_USER_REFRESH_def","expires_in":28800}"#,
        ));
        let cb = env.raw(
            "GET",
            &format!("/oauth/callback/{srv}?code=c2&state={}", urlencode(&state)),
            vec![("cookie".into(), state_cookie(&decided))],
            vec![],
        );
        let code = query_of(header(&cb, "location"), "code").unwrap();
        let t = token_req(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client_id),
            ("redirect_uri", "http://localhost:5555/callback"),
            ("code_verifier", verifier),
        ])
        .body
        .unwrap();
        let _ = access;
        (t["access_token"].as_str().unwrap().to_string(), t["refresh_token"].as_str().unwrap().to_string())
    };
    // A refresh refreshes the user's upstream token at the provider, with the owner's secret.
    // GitHub-style, the provider answers its errors with 200.
    env.http.push(resp(200, &[("content-type", "application/json")], br#"{"error":"bad_verification_code"}"#));
    let down = token_req(&[("grant_type", "refresh_token"), ("refresh_token", &refresh0)]);
    assert_eq!((down.status, down.body.unwrap()["error"].as_str()), (503, Some("temporarily_unavailable")));
    env.http.push(resp(
        200,
        &[("content-type", "application/json")],
        br#"{"access_token":"gho_USER_ACCESS_2","expires_in":28800}"#,
    ));
    let r1 = token_req(&[("grant_type", "refresh_token"), ("refresh_token", &refresh0)]).body.unwrap();
    let sent = String::from_utf8(env.http.seen.borrow().last().unwrap().body.clone().unwrap()).unwrap();
    assert!(
        sent.contains("grant_type=refresh_token")
            && sent.contains("refresh_token=ghr_USER_REFRESH_def")
            && sent.contains("client_secret=owner-client-secret"),
        "{sent}"
    );
    let refresh1 = r1["refresh_token"].as_str().expect("rotated").to_string();
    // (Reuse detection and the replay to concurrent refreshes are tested in
    // tests/integration/oauth.rs.)
    env.http.push(resp(
        200,
        &[("content-type", "application/json")],
        br#"{"access_token":"gho_USER_ACCESS_3","refresh_token":"ghr_USER_REFRESH_3","expires_in":28800}"#,
    ));
    let r2 = token_req(&[("grant_type", "refresh_token"), ("refresh_token", &refresh1)]).body.unwrap();
    assert!(r2["refresh_token"].is_string(), "{r2}");
    assert_eq!(token_req(&[("grant_type", "password")]).body.unwrap()["error"], "unsupported_grant_type");

    // Revocation (RFC 7009): the refresh stops at once; the runtime's marker is in KV.
    let rv =
        env.raw("POST", "/oauth/revoke", vec![("content-type".into(), FORM.into())], form_body(&[("token", &access)]));
    assert_eq!(rv.status, 200);
    let refresh2 = r2["refresh_token"].as_str().unwrap();
    assert_eq!(
        token_req(&[("grant_type", "refresh_token"), ("refresh_token", refresh2)]).body.unwrap()["error"],
        "invalid_grant"
    );
    assert!(env.kv.entries.borrow().keys().any(|k| k.starts_with("oconn:revoked:")));

    // The owner sees the connections (metadata only) and can revoke one; unknown ones are 404.
    let list = env.call("GET", &p(&format!("/servers/{srv}/connections")), None);
    assert_eq!(list.status, 200, "{:?}", list.body);
    let items = list.body.unwrap()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items.iter().all(|c| c["client_name"] == "Claude Code" && c["revoked_at"].is_i64()), "{items:?}");
    let hash = items[0]["connection_hash"].as_str().unwrap().to_string();
    assert_eq!(env.call("DELETE", &p(&format!("/servers/{srv}/connections/{hash}")), None).status, 204);
    assert_eq!(env.call("DELETE", &p(&format!("/servers/{srv}/connections/0000000000000000")), None).status, 404);

    // No D1 row and no KV value holds the user's upstream tokens, or FlowCP's.
    let secrets = ["gho_USER_ACCESS_abc", "ghr_USER_REFRESH_def", access.as_str(), refresh2];
    let tables = block_on(env.db.query("SELECT name FROM sqlite_master WHERE type = 'table'", &[])).unwrap();
    for t in tables {
        let name = t.get("name").and_then(Value::as_str).unwrap().to_string();
        for row in block_on(env.db.query(&format!("SELECT * FROM \"{name}\""), &[])).unwrap() {
            let text = format!("{row:?}");
            assert!(!secrets.iter().any(|s| text.contains(s)), "table {name} holds a token");
        }
    }
    for (key, (value, _)) in env.kv.entries.borrow().iter() {
        let text = String::from_utf8_lossy(value);
        assert!(!secrets.iter().any(|s| text.contains(s)), "KV {key} holds a token");
    }
}

/// The `__Host-fcp_state` cookie a decision set (the browser binding of the upstream leg).
fn state_cookie(r: &Response) -> String {
    r.headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("__Host-fcp_state="))
        .expect("the decision sets the state cookie")
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The owner picks a provider preset or an OpenID Connect provider by discovery; extra authorize
/// parameters reach the provider; verification asks the provider whether it knows the client;
/// a callback naming another issuer is refused (mix-up, RFC 9207).
#[test]
fn the_provider_is_configured_by_preset_or_discovery_and_verified_live() {
    let env = Env::new();
    let ws = signed_up(&env, "presets@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let id = |r: Response| r.body.unwrap()["id"].as_str().unwrap().to_string();
    let app = id(env.call("POST", &p("/apps"), Some(json!({ "name": "Presets" }))));
    env.call("POST", &p(&format!("/apps/{app}/imports")), Some(document()));
    let srv = id(env.call("POST", &p("/servers"), Some(json!({ "app_id": app }))));
    let patch = |cfg: Value| {
        env.call("PATCH", &p(&format!("/servers/{srv}")), Some(json!({ "auth_mode": "oauth", "auth_config": cfg })))
    };
    let r = patch(json!({ "provider": "github", "client_id": "Iv1.abc", "authorize_url": "https://evil.example/a" }));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let cfg = r.body.unwrap()["auth_config"].clone();
    assert_eq!(cfg["authorize_url"], "https://github.com/login/oauth/authorize", "the preset's endpoints win");
    assert_eq!(cfg["token_url"], "https://github.com/login/oauth/access_token");
    for bad in [
        json!({ "provider": "okta" }),
        json!({ "provider": "entra", "tenant": "../evil" }),
        json!({ "provider": "oidc" }),
        json!({ "authorize_params": { "redirect_uri": "https://evil.example" } }),
    ] {
        let r = patch(bad.clone());
        assert_eq!((r.status, r.body.unwrap()["error"]["code"].clone()), (422, json!("invalid_auth_config")), "{bad}");
    }
    // A discovery document that is missing, or whose issuer is not its own, is refused; a
    // matching one fills in.
    let discovery = "https://id.example/.well-known/openid-configuration";
    env.http.push(resp(404, &[("content-type", "text/html")], b"<html>not here</html>"));
    let r = patch(json!({ "provider": "oidc", "discovery_url": discovery, "client_id": "c" }));
    assert_eq!(r.status, 422);
    assert!(r.body.unwrap()["error"]["message"].as_str().unwrap().contains("HTTP 404"));
    env.http.push(resp(200, &[("content-type", "application/json")], br#"{"issuer":"https://evil.example","authorization_endpoint":"https://evil.example/a","token_endpoint":"https://evil.example/t"}"#));
    assert_eq!(patch(json!({ "provider": "oidc", "discovery_url": discovery, "client_id": "c" })).status, 422);
    env.http.push(resp(200, &[("content-type", "application/json")], br#"{"issuer":"https://id.example","authorization_endpoint":"https://id.example/authorize","token_endpoint":"https://id.example/token","code_challenge_methods_supported":["S256"]}"#));
    let r = patch(json!({ "provider": "oidc", "discovery_url": discovery, "client_id": "c",
        "authorize_params": { "prompt": "consent" }, "scopes": ["openid", "offline_access"] }));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let cfg = r.body.unwrap()["auth_config"].clone();
    assert_eq!(
        (cfg["issuer"].as_str(), cfg["token_url"].as_str()),
        (Some("https://id.example"), Some("https://id.example/token"))
    );
    assert_eq!(env.http.seen.borrow().last().unwrap().url, discovery);
    let put = env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": "owner-client-secret", "origin": "https://api.example.com" })),
    );
    assert_eq!(put.status, 200, "{:?}", put.body);

    // Verification: a provider that does not know the client fails, naming the fix and never
    // the secret; one that refuses only the made-up code passes.
    let verify = || env.call("POST", &p(&format!("/servers/{srv}/verify")), None).body.unwrap();
    env.http.push(resp(
        401,
        &[("content-type", "application/json")],
        br#"{"error":"invalid_client","error_description":"bad secret owner-client-secret"}"#,
    ));
    let v = verify();
    assert_eq!(v["state"], "failed", "{v}");
    let provider = v["findings"].as_array().unwrap().iter().find(|f| f["check"] == "provider").unwrap().clone();
    assert!(provider["message"].as_str().unwrap().contains("client id or secret"), "{provider}");
    assert!(!v.to_string().contains("owner-client-secret"));
    let sent = String::from_utf8(env.http.seen.borrow().last().unwrap().body.clone().unwrap()).unwrap();
    assert!(sent.contains("client_secret=owner-client-secret") && sent.contains("grant_type=authorization_code"));
    assert_eq!(
        env.http.seen.borrow().last().unwrap().url,
        "https://id.example/token",
        "the secret goes to the token URL only"
    );
    env.http.push(resp(400, &[("content-type", "application/json")], br#"{"error":"invalid_grant"}"#));
    assert_eq!(verify()["state"], "verified");
    env.http.push(resp(200, &[("content-type", "text/html")], b"<html>login</html>"));
    assert_eq!(verify()["state"], "failed", "an HTML page is not a token endpoint");
    env.http.push(resp(400, &[("content-type", "application/json")], br#"{"error":"invalid_grant"}"#));
    assert_eq!(verify()["state"], "verified");
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/publish")), None).status, 200);

    // The extra parameter reaches the provider; FlowCP's own cannot be overridden.
    let json_h = vec![("content-type".to_string(), "application/json".to_string())];
    let reg = env.raw(
        "POST",
        "/oauth/register",
        json_h,
        serde_json::to_vec(&json!({ "client_name": "C", "redirect_uris": ["http://localhost/cb"] })).unwrap(),
    );
    let client_id = reg.body.unwrap()["client_id"].as_str().unwrap().to_string();
    let authorize = format!(
        "/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2Flocalhost%3A1%2Fcb&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&scope=mcp%3A{srv}"
    );
    let page = env.raw("GET", &authorize, vec![], vec![]);
    assert_eq!(page.status, 200, "{:?}", page.body);
    let html = page.body.as_ref().unwrap().as_str().unwrap().to_string();
    let cookie = header(&page, "set-cookie").split(';').next().unwrap().to_string();
    let at = html.find("name=\"ticket\" value=\"").unwrap() + 21;
    let ticket = html[at..].split('"').next().unwrap().to_string();
    let decided = env.raw(
        "POST",
        "/oauth/authorize",
        vec![("content-type".into(), FORM.into()), ("cookie".into(), cookie)],
        form_body(&[("ticket", &ticket), ("decision", "approve")]),
    );
    let upstream = header(&decided, "location").to_string();
    assert!(upstream.starts_with("https://id.example/authorize?"), "{upstream}");
    assert_eq!(query_of(&upstream, "prompt").as_deref(), Some("consent"));
    assert_eq!(query_of(&upstream, "scope").as_deref(), Some("openid offline_access"));
    // The approval is remembered in this browser: the same client, server and redirect URI go
    // straight to the provider; another redirect URI (or no cookie) sees the page again.
    let approved = decided
        .headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("__Host-fcp_approved="))
        .map(|(_, v)| v.split(';').next().unwrap().to_string())
        .expect("the approval cookie");
    let again = env.raw("GET", &authorize, vec![("cookie".into(), approved.clone())], vec![]);
    assert_eq!(again.status, 302, "{:?}", again.body);
    assert!(header(&again, "location").starts_with("https://id.example/authorize?"));
    assert!(again.headers.iter().any(|(k, v)| k == "set-cookie" && v.starts_with("__Host-fcp_state=")));
    let other_port = authorize.replace("localhost%3A1%2Fcb", "localhost%3A2%2Fcb");
    assert_eq!(env.raw("GET", &other_port, vec![("cookie".into(), approved.clone())], vec![]).status, 200);
    let forged = format!("__Host-fcp_approved={}", "A".repeat(80));
    assert_eq!(env.raw("GET", &authorize, vec![("cookie".into(), forged)], vec![]).status, 200);
    // A callback that says it comes from another issuer is refused before any code exchange.
    let state = query_of(&upstream, "state").unwrap();
    let before = env.http.seen.borrow().len();
    let cb = env.raw(
        "GET",
        &format!("/oauth/callback/{srv}?code=c&iss=https%3A%2F%2Fevil.example&state={}", urlencode(&state)),
        vec![("cookie".into(), state_cookie(&decided))],
        vec![],
    );
    assert_eq!(cb.status, 302);
    assert_eq!(query_of(header(&cb, "location"), "error").as_deref(), Some("server_error"));
    assert_eq!(env.http.seen.borrow().len(), before, "no code exchange with a mixed-up provider");
}

/// The user's part of an authorization request: FlowCP's consent page, then "Continue" with
/// the page's cookie; returns the decision's answer (the redirect to the provider).
fn approve(env: &Env, authorize: &str) -> Response {
    let page = env.raw("GET", authorize, vec![], vec![]);
    assert_eq!(page.status, 200, "{:?}", page.body);
    let html = page.body.as_ref().unwrap().as_str().unwrap().to_string();
    let cookie = header(&page, "set-cookie").split(';').next().unwrap().to_string();
    let at = html.find("name=\"ticket\" value=\"").unwrap() + 21;
    let ticket = html[at..].split('"').next().unwrap().to_string();
    env.raw(
        "POST",
        "/oauth/authorize",
        vec![("content-type".into(), FORM.into()), ("cookie".into(), cookie)],
        form_body(&[("ticket", &ticket), ("decision", "approve")]),
    )
}

/// A published `oauth` server with a custom provider at idp.example.
fn published_oauth_server(env: &Env, ws: &str) -> String {
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let id = |r: Response| r.body.unwrap()["id"].as_str().unwrap().to_string();
    let app = id(env.call("POST", &p("/apps"), Some(json!({ "name": "OAuth app" }))));
    env.call("POST", &p(&format!("/apps/{app}/imports")), Some(document()));
    let srv = id(env.call("POST", &p("/servers"), Some(json!({ "app_id": app }))));
    let cfg = json!({ "auth_mode": "oauth", "auth_config": { "authorize_url": "https://idp.example/authorize",
        "token_url": "https://idp.example/token", "client_id": "owner-app" } });
    assert_eq!(env.call("PATCH", &p(&format!("/servers/{srv}")), Some(cfg)).status, 200);
    let secret = json!({ "value": "owner-client-secret", "origin": "https://api.example.com" });
    assert_eq!(env.call("PUT", &p(&format!("/servers/{srv}/credential")), Some(secret)).status, 200);
    env.http.push(resp(400, &[("content-type", "application/json")], br#"{"error":"invalid_grant"}"#));
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/verify")), None).body.unwrap()["state"], "verified");
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/publish")), None).status, 200);
    srv
}

/// A client identified by its metadata document URL: FlowCP fetches the document (SSRF-checked,
/// 5 KB), uses it as the registration for an hour, and refuses one that names another client.
#[test]
fn a_client_metadata_document_stands_in_for_registration() {
    let env = Env::new();
    let ws = signed_up(&env, "cimd@example.com");
    let srv = published_oauth_server(&env, &ws);
    let meta = env.call("GET", "/.well-known/oauth-authorization-server", None).body.unwrap();
    assert_eq!(meta["client_id_metadata_document_supported"], true);
    let doc_url = "https://app.example/oauth/client.json";
    let authorize = |client: &str| {
        format!(
            "/oauth/authorize?response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fcb&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&scope=mcp%3A{srv}",
            urlencode(client)
        )
    };
    env.http.push(resp(
        200,
        &[("content-type", "application/json")],
        serde_json::to_vec(&json!({
        "client_id": doc_url, "client_name": "Doc App", "redirect_uris": ["http://127.0.0.1/cb"] }))
        .unwrap()
        .as_slice(),
    ));
    let page = env.raw("GET", &authorize(doc_url), vec![], vec![]);
    assert_eq!(page.status, 200, "{:?}", page.body);
    let html = page.body.unwrap().as_str().unwrap().to_string();
    assert!(html.contains("Doc App") && html.contains("Client information published at app.example"), "{html}");
    let fetched = env.http.seen.borrow().len();
    assert_eq!(env.http.seen.borrow().last().unwrap().url, doc_url);
    // Cached: the next authorize within the hour fetches nothing.
    assert_eq!(env.raw("GET", &authorize(doc_url), vec![], vec![]).status, 200);
    assert_eq!(env.http.seen.borrow().len(), fetched);
    // A document naming another client, an oversized one, a private address: refused.
    let other = "https://app.example/oauth/other.json";
    env.http.push(resp(
        200,
        &[],
        serde_json::to_vec(&json!({ "client_id": doc_url, "redirect_uris": ["http://127.0.0.1/cb"] }))
            .unwrap()
            .as_slice(),
    ));
    assert_eq!(env.raw("GET", &authorize(other), vec![], vec![]).status, 400);
    let big = "https://app.example/oauth/big.json";
    env.http.push(resp(200, &[], &vec![b' '; 6 * 1024]));
    assert_eq!(env.raw("GET", &authorize(big), vec![], vec![]).status, 400);
    let before = env.http.seen.borrow().len();
    assert_eq!(env.raw("GET", &authorize("https://10.0.0.1/oauth/c.json"), vec![], vec![]).status, 400);
    assert_eq!(env.http.seen.borrow().len(), before, "a private address is never fetched");
}

/// Review finding: an admin switching an `api_key` server to OAuth with a token URL of their
/// own must not get the stored API key sent there by verification (or by a refresh).
#[test]
fn entering_oauth_mode_clears_the_stored_credential() {
    let env = Env::new();
    let ws = signed_up(&env, "switch@example.com");
    let (_, srv) = api_key_server(&env, &ws);
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let cfg = json!({ "auth_config": { "in": "header", "name": "X-Api-Key" } });
    assert_eq!(env.call("PATCH", &p(&format!("/servers/{srv}")), Some(cfg)).status, 200);
    let put = json!({ "value": CREDENTIAL, "origin": "https://api.example.com" });
    assert_eq!(env.call("PUT", &p(&format!("/servers/{srv}/credential")), Some(put)).status, 200);
    let r = env.call(
        "PATCH",
        &p(&format!("/servers/{srv}")),
        Some(json!({ "auth_mode": "oauth", "auth_config": {
        "authorize_url": "https://evil.example/a", "token_url": "https://evil.example/t", "client_id": "x" } })),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let v = env.call("POST", &p(&format!("/servers/{srv}/verify")), None).body.unwrap();
    let provider = v["findings"].as_array().unwrap().iter().find(|f| f["check"] == "provider").unwrap().clone();
    assert_eq!(provider["status"], "skipped", "{provider}");
    assert!(
        env.http.seen.borrow().iter().all(|s| !s.url.contains("evil.example")),
        "nothing went to the new token URL"
    );
    assert!(!format!("{:?}", env.http.seen.borrow()).contains(CREDENTIAL));
}

/// A full sign-in of a test browser at `srv` (published with [`published_oauth_server`]);
/// returns FlowCP's token answer and the browser's cookies set at the callback.
fn sign_in(env: &Env, srv: &str) -> (Value, Vec<String>) {
    let json_h = vec![("content-type".to_string(), "application/json".to_string())];
    let reg = env.raw(
        "POST",
        "/oauth/register",
        json_h,
        serde_json::to_vec(&json!({ "client_name": "Browser app", "redirect_uris": ["http://localhost/cb"] })).unwrap(),
    );
    let client_id = reg.body.unwrap()["client_id"].as_str().unwrap().to_string();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let authorize = format!(
        "/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2Flocalhost%3A1%2Fcb&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&scope=mcp%3A{srv}"
    );
    let decided = approve(env, &authorize);
    let state = query_of(header(&decided, "location"), "state").unwrap();
    env.http.push(resp(
        200,
        &[("content-type", "application/json")],
        br#"{"access_token":"gho_BROWSER_USER","refresh_token":"ghr_BROWSER_USER","expires_in":28800}"#,
    ));
    let cb = env.raw(
        "GET",
        &format!("/oauth/callback/{srv}?code=c&state={}", urlencode(&state)),
        vec![("cookie".into(), state_cookie(&decided))],
        vec![],
    );
    assert_eq!(cb.status, 302, "{:?}", cb.body);
    let cookies = cb
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.split(';').next().unwrap().to_string())
        .collect();
    let code = query_of(header(&cb, "location"), "code").unwrap();
    let t = env.raw(
        "POST",
        "/oauth/token",
        vec![("content-type".into(), FORM.into())],
        form_body(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client_id),
            ("redirect_uri", "http://localhost:1/cb"),
            ("code_verifier", verifier),
        ]),
    );
    assert_eq!(t.status, 200, "{:?}", t.body);
    (t.body.unwrap(), cookies)
}

/// The end user's own connections (those made in this browser): listed, and ended by the
/// user with a CSRF-bound form; another browser's list is empty and its form does nothing.
#[test]
fn the_end_user_lists_and_ends_their_own_connections() {
    let env = Env::new();
    let ws = signed_up(&env, "mine@example.com");
    let srv = published_oauth_server(&env, &ws);
    let (tokens, cookies) = sign_in(&env, &srv);
    let mine = cookies.iter().find(|c| c.starts_with("__Host-fcp_conns=")).expect("the connections cookie").clone();
    let page = env.raw("GET", "/oauth/connections", vec![("cookie".into(), mine.clone())], vec![]);
    assert_eq!(page.status, 200);
    let html = page.body.unwrap().as_str().unwrap().to_string();
    assert!(html.contains("Browser app") && html.contains("OAuth app") && html.contains("Disconnect"), "{html}");
    assert!(!html.contains("gho_BROWSER_USER"));
    let field = |name: &str| {
        let at = html.find(&format!("name=\"{name}\" value=\"")).unwrap() + name.len() + 15;
        html[at..].split('"').next().unwrap().to_string()
    };
    let (csrf, hash) = (field("csrf"), field("connection"));
    let other = env.raw("GET", "/oauth/connections", vec![], vec![]);
    assert!(other.body.unwrap().as_str().unwrap().contains("No connection was made in this browser"));
    let post = |cookie: Option<&str>, csrf: &str| {
        let mut h = vec![("content-type".to_string(), FORM.to_string())];
        if let Some(c) = cookie {
            h.push(("cookie".into(), c.to_string()));
        }
        env.raw("POST", "/oauth/connections", h, form_body(&[("csrf", csrf), ("connection", &hash)]))
    };
    // Without the browser's cookie (a cross-site form) or with a forged token: refused.
    assert_eq!(post(None, &csrf).status, 400);
    assert_eq!(post(Some(&mine), "fcp1.k1.AAAA").status, 400);
    let refresh = |t: &str| {
        env.raw(
            "POST",
            "/oauth/token",
            vec![("content-type".into(), FORM.into())],
            form_body(&[("grant_type", "refresh_token"), ("refresh_token", t)]),
        )
    };
    let rt = tokens["refresh_token"].as_str().unwrap();
    let done = post(Some(&mine), &csrf);
    assert_eq!((done.status, header(&done, "location")), (303, "/oauth/connections"));
    assert_eq!(refresh(rt).body.unwrap()["error"], "invalid_grant", "the refresh stops at once");
    let page = env.raw("GET", "/oauth/connections", vec![("cookie".into(), mine)], vec![]);
    assert!(page.body.unwrap().as_str().unwrap().contains("disconnected"));
}

/// Review finding: after the owner points the server at another token URL, a user's upstream
/// refresh token is not sent there; the connection ends and the user signs in again.
#[test]
fn a_users_refresh_token_goes_only_to_the_provider_that_issued_it() {
    let env = Env::new();
    let ws = signed_up(&env, "moved@example.com");
    let srv = published_oauth_server(&env, &ws);
    let (tokens, _) = sign_in(&env, &srv);
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let cfg = json!({ "auth_mode": "oauth", "auth_config": { "authorize_url": "https://other-idp.example/authorize",
        "token_url": "https://other-idp.example/token", "client_id": "owner-app" } });
    assert_eq!(env.call("PATCH", &p(&format!("/servers/{srv}")), Some(cfg)).status, 200);
    let secret = json!({ "value": "another-client-secret", "origin": "https://api.example.com" });
    assert_eq!(env.call("PUT", &p(&format!("/servers/{srv}/credential")), Some(secret)).status, 200);
    env.http.push(resp(400, &[("content-type", "application/json")], br#"{"error":"invalid_grant"}"#));
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/verify")), None).body.unwrap()["state"], "verified");
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/publish")), None).status, 200);
    let before = env.http.seen.borrow().len();
    let r = env.raw(
        "POST",
        "/oauth/token",
        vec![("content-type".into(), FORM.into())],
        form_body(&[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())]),
    );
    assert_eq!(r.body.unwrap()["error"], "invalid_grant");
    assert_eq!(env.http.seen.borrow().len(), before, "nothing sent to the new provider");
    let list = env.call("GET", &p(&format!("/servers/{srv}/connections")), None).body.unwrap();
    assert!(list["items"][0]["revoked_at"].is_i64(), "{list}");
}

/// PX-04: the client's redirect URI is checked again at the callback: a client whose
/// registration no longer holds the URI the user approved gets no code there.
#[test]
fn the_callback_checks_the_redirect_uri_again() {
    let env = Env::new();
    let ws = signed_up(&env, "recheck@example.com");
    let srv = published_oauth_server(&env, &ws);
    let json_h = vec![("content-type".to_string(), "application/json".to_string())];
    let reg = env.raw(
        "POST",
        "/oauth/register",
        json_h,
        serde_json::to_vec(&json!({ "client_name": "Shifty", "redirect_uris": ["http://localhost/cb"] })).unwrap(),
    );
    let client_id = reg.body.unwrap()["client_id"].as_str().unwrap().to_string();
    let authorize = format!(
        "/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2Flocalhost%3A1%2Fcb&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&scope=mcp%3A{srv}"
    );
    let decided = approve(&env, &authorize);
    let state = query_of(header(&decided, "location"), "state").unwrap();
    // Meanwhile the client's registration changed (another redirect URI).
    block_on(env.db.execute(
        "UPDATE oauth_clients SET redirect_uris_json = '[\"https://elsewhere.example/cb\"]' WHERE id = ?1",
        &[client_id.as_str().into()],
    ))
    .unwrap();
    let before = env.http.seen.borrow().len();
    let cb = env.raw(
        "GET",
        &format!("/oauth/callback/{srv}?code=c&state={}", urlencode(&state)),
        vec![("cookie".into(), state_cookie(&decided))],
        vec![],
    );
    assert_eq!(cb.status, 400, "{:?}", cb.body);
    assert!(cb.headers.iter().all(|(k, _)| k != "location"), "no redirect with a code");
    assert_eq!(env.http.seen.borrow().len(), before, "no code exchange");
}

/// Issue 14: an address changes only when the new mailbox confirms it, from the account's own
/// session; the old address is told; the answer says nothing about other accounts.
#[test]
fn an_address_changes_only_when_the_new_mailbox_confirms_it() {
    let env = Env::new();
    signed_up(&env, "taken@example.com");
    let (other_cookie, other_csrf) = env.session();
    signed_up(&env, "old@example.com");
    // A reset link sent to the old mailbox before the change opens nothing after it.
    assert_eq!(
        env.call("POST", "/api/v1/auth/password-reset", Some(json!({ "email": "old@example.com" }))).status,
        202
    );
    let old_reset = env.link_token("old@example.com", "/reset-password").expect("a reset link");
    let change = |to: &str, pw: &str| {
        env.call("POST", "/api/v1/me/email", Some(json!({ "new_email": to, "current_password": pw })))
    };
    let wrong = change("new@example.com", "not the password");
    assert_eq!((wrong.status, wrong.body.unwrap()["error"]["code"].clone()), (403, json!("wrong_password")));
    assert_eq!(change("not an address", "a long enough password").status, 422);
    assert_eq!(change("OLD@example.com", "a long enough password").status, 422);
    // A taken address gets the same answer, and no link.
    let taken = change("taken@example.com", "a long enough password");
    let asked = change("new@example.com", "a long enough password");
    assert_eq!((taken.status, asked.status), (202, 202));
    assert_eq!(
        taken.body.unwrap()["message"].as_str().unwrap().replace("taken@", "new@"),
        asked.body.unwrap()["message"].as_str().unwrap()
    );
    assert!(env.link_token("taken@example.com", "/confirm-email").is_none());
    let told = block_on(flowcp::mail::outbox(&env.kv, "taken@example.com")).unwrap();
    assert!(told.iter().any(|m| m.text.contains("nothing changed")), "{told:?}");
    let me = env.call("GET", "/api/v1/me", None).body.unwrap();
    assert_eq!(me["user"]["email"], "old@example.com", "nothing changes before the link is redeemed");
    let token = env.link_token("new@example.com", "/confirm-email").expect("a link went to the new address");
    // Another account's session cannot redeem it.
    let stolen = env.call_as(
        "POST",
        "/api/v1/auth/confirm-email",
        other_cookie.as_deref(),
        other_csrf.as_deref(),
        Some(json!({ "token": token })),
    );
    assert_eq!(stolen.status, 404, "{:?}", stolen.body);
    let done = env.call("POST", "/api/v1/auth/confirm-email", Some(json!({ "token": token })));
    assert_eq!(done.status, 200, "{:?}", done.body);
    assert_eq!(done.body.unwrap(), json!({ "email": "new@example.com", "email_verified": true }));
    let me = env.call("GET", "/api/v1/me", None).body.unwrap();
    assert_eq!(
        (me["user"]["email"].clone(), me["user"]["email_verified"].clone()),
        (json!("new@example.com"), json!(true))
    );
    let notice = block_on(flowcp::mail::outbox(&env.kv, "old@example.com")).unwrap();
    assert!(notice.iter().any(|m| m.text.contains("now uses n•••@example.com")), "{notice:?}");
    assert!(notice.iter().all(|m| !m.text.contains("new@example.com")), "the old mailbox is not told the new one");
    // Used once.
    assert_eq!(env.call("POST", "/api/v1/auth/confirm-email", Some(json!({ "token": token }))).status, 404);
    // The new address signs in; the old one does not.
    let login = |email: &str| {
        env.call("POST", "/api/v1/auth/login", Some(json!({ "email": email, "password": "a long enough password" })))
            .status
    };
    assert_eq!((login("old@example.com"), login("new@example.com")), (401, 200));
    let reset = env.call(
        "POST",
        "/api/v1/auth/password-reset/confirm",
        Some(json!({ "token": old_reset, "new_password": "the attacker's new password" })),
    );
    assert_eq!(reset.status, 404, "{:?}", reset.body);

    // An address taken between the link and its redemption is not stolen.
    assert_eq!(change("later@example.com", "a long enough password").status, 202);
    let token = env.link_token("later@example.com", "/confirm-email").unwrap();
    let (mine_cookie, mine_csrf) = env.session();
    signed_up(&env, "later@example.com");
    let raced = env.call_as(
        "POST",
        "/api/v1/auth/confirm-email",
        mine_cookie.as_deref(),
        mine_csrf.as_deref(),
        Some(json!({ "token": token })),
    );
    assert_eq!((raced.status, raced.body.unwrap()["error"]["code"].clone()), (409, json!("email_taken")));
}

#[test]
fn the_display_name_changes_and_refuses_format_characters() {
    let env = Env::new();
    signed_up(&env, "name@example.com");
    let r = env.call("PATCH", "/api/v1/me", Some(json!({ "display_name": "  Ada Lovelace " })));
    assert_eq!((r.status, r.body.unwrap()["display_name"].clone()), (200, json!("Ada Lovelace")));
    let bad = env.call("PATCH", "/api/v1/me", Some(json!({ "display_name": "Ada\u{202e}" })));
    assert_eq!(bad.status, 422);
    assert_eq!(env.call("PATCH", "/api/v1/me", Some(json!({ "email": "x@example.com" }))).status, 400);
    assert_eq!(env.call("GET", "/api/v1/me", None).body.unwrap()["user"]["display_name"], "Ada Lovelace");
}

/// Issue 14: "try it" shows the exact request with the credential as a placeholder, sends
/// nothing unless asked, runs only for admins, and redacts the credential from the answer.
#[test]
fn try_it_shows_the_exact_request_and_runs_it_only_for_admins_with_the_credential_redacted() {
    let env = Env::new();
    let ws = signed_up(&env, "try@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let (_, srv) = api_key_server(&env, &ws);
    env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": CREDENTIAL, "origin": "https://api.example.com" })),
    );
    let try_it = |body: Value| env.call("POST", &p(&format!("/servers/{srv}/try")), Some(body));
    let plan = try_it(json!({ "tool": "listThings" }));
    assert_eq!(plan.status, 200, "{:?}", plan.body);
    let plan = plan.body.unwrap();
    assert_eq!(plan["request"]["url"], "https://api.example.com/v1/things?api_key=[credential]", "{plan}");
    assert_eq!((plan["request"]["method"].clone(), plan["response"].clone()), (json!("GET"), Value::Null));
    assert!(env.http.seen.borrow().is_empty(), "a plan sends nothing");
    assert_eq!(plan["problems"], json!([]));
    assert_eq!(try_it(json!({ "tool": "noSuchTool" })).status, 404);
    assert_eq!(
        try_it(json!({ "tool": "listThings", "arguments": "x" })).body.unwrap()["problems"].as_array().map(Vec::len),
        Some(1)
    );

    // Run: the upstream echoes the credential back; the answer never shows it.
    env.http.push(resp(
        200,
        &[("content-type", "application/json")],
        format!("{{\"echo\":\"{CREDENTIAL}\"}}").as_bytes(),
    ));
    let ran = try_it(json!({ "tool": "listThings", "run": true })).body.unwrap();
    assert_eq!(ran["response"]["status"], 200, "{ran}");
    assert_eq!(env.http.seen.borrow()[0].url, format!("https://api.example.com/v1/things?api_key={CREDENTIAL}"));
    assert!(!ran.to_string().contains(CREDENTIAL) && ran.to_string().contains("[REDACTED]"), "{ran}");
    // The run is audited like a tool call, under the owner's own connection hash.
    let audit = env.call("GET", &p("/audit"), None).body.unwrap();
    assert_eq!(
        (audit["items"][0]["tool_name"].clone(), audit["items"][0]["upstream_status"].clone()),
        (json!("listThings"), json!(200))
    );
    // A body cut at the cap in the middle of the credential shows no part of it.
    let cut = format!("{{\"echo\":\"{}", &CREDENTIAL[..CREDENTIAL.len() - 3]);
    env.http.push(Ok(flowcp::net::HttpResponse {
        status: 200,
        headers: vec![],
        body: cut.into_bytes(),
        truncated: true,
    }));
    let ran = try_it(json!({ "tool": "listThings", "run": true })).body.unwrap();
    assert_eq!(ran["response"]["truncated"], true, "{ran}");
    assert!(!ran.to_string().contains(&CREDENTIAL[..12]), "{ran}");
    // A body that is not UTF-8 (a Latin-1 error page echoing the key) is redacted too.
    let mut latin1 = b"Cl\xe9 invalide: ".to_vec();
    latin1.extend_from_slice(CREDENTIAL.as_bytes());
    env.http.push(resp(401, &[("content-type", "text/html; charset=iso-8859-1")], &latin1));
    let ran = try_it(json!({ "tool": "listThings", "run": true })).body.unwrap();
    assert_eq!(ran["response"]["status"], 401, "{ran}");
    assert!(!ran.to_string().contains(CREDENTIAL) && ran.to_string().contains("[REDACTED]"), "{ran}");

    // A member sees the plan but cannot run it; another workspace sees nothing.
    let (owner_cookie, owner_csrf) = env.session();
    signed_up(&env, "try-member@example.com");
    let member = env.session();
    invite_and_accept(&env, &ws, &(owner_cookie, owner_csrf), &member, "try-member@example.com", "member");
    let as_member = |body: Value| {
        env.call_as("POST", &p(&format!("/servers/{srv}/try")), member.0.as_deref(), member.1.as_deref(), Some(body))
    };
    assert_eq!(as_member(json!({ "tool": "listThings" })).status, 200);
    assert_eq!(as_member(json!({ "tool": "listThings", "run": true })).status, 403);
    let stranger_ws = signed_up(&env, "try-stranger@example.com");
    let r = env.call(
        "POST",
        &format!("/api/v1/workspaces/{stranger_ws}/servers/{srv}/try"),
        Some(json!({ "tool": "listThings" })),
    );
    assert_eq!(r.status, 404);
    assert_eq!(env.http.seen.borrow().len(), 3, "only the three runs reached the API");
}

/// Issue 14: each publish is recorded as a version, and the draft is compared with the live
/// manifest: tools added, removed and changed, and the settings that differ.
#[test]
fn versions_are_listed_and_the_draft_is_compared_with_the_live_manifest() {
    let env = Env::new();
    let ws = signed_up(&env, "versions@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let (app, srv) = api_key_server(&env, &ws);
    let versions = || env.call("GET", &p(&format!("/servers/{srv}/versions")), None).body.unwrap();
    assert_eq!(versions(), json!({ "live_version": null, "versions": [], "draft": null }));
    env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": CREDENTIAL, "origin": "https://api.example.com" })),
    );
    let publish = || {
        env.http.push(resp(200, &[], b"[]"));
        assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/verify")), None).body.unwrap()["state"], "verified");
        assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/publish")), None).status, 200);
    };
    publish();
    let v = versions();
    assert_eq!(v["live_version"], 1);
    assert_eq!((v["versions"][0]["version"].clone(), v["versions"][0]["tool_count"].clone()), (json!(1), json!(1)));
    assert_eq!(v["draft"], json!({ "added": [], "removed": [], "changed": [], "settings": [] }));

    // Rename the tool, and make the server public: the draft now differs.
    let tools = env.call("GET", &p(&format!("/apps/{app}/tools")), None).body.unwrap();
    let tool = tools["items"][0]["id"].as_str().unwrap().to_string();
    let renamed = env.call("PATCH", &p(&format!("/apps/{app}/tools/{tool}")), Some(json!({ "name": "list_things" })));
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    env.call("PATCH", &p(&format!("/servers/{srv}")), Some(json!({ "base_url": "https://api.example.com/v2" })));
    let d = versions()["draft"].clone();
    assert_eq!(d["added"], json!(["list_things"]), "{d}");
    assert_eq!(d["removed"], json!(["listThings"]), "{d}");
    assert_eq!(d["settings"], json!(["base_url"]), "{d}");
    env.call("PATCH", &p(&format!("/servers/{srv}")), Some(json!({ "base_url": null })));
    env.call(
        "PATCH",
        &p(&format!("/apps/{app}/tools/{tool}")),
        Some(json!({ "name": "listThings", "description": "Lists things." })),
    );
    let d = versions()["draft"].clone();
    assert_eq!(d, json!({ "added": [], "removed": [], "changed": ["listThings"], "settings": [] }));
    publish();
    let v = versions();
    assert_eq!((v["live_version"].clone(), v["versions"].as_array().unwrap().len()), (json!(2), 2));
    assert_eq!(v["versions"][0]["version"], 2, "newest first");
    // Another workspace: 404.
    let other = signed_up(&env, "versions-other@example.com");
    assert_eq!(env.call("GET", &format!("/api/v1/workspaces/{other}/servers/{srv}/versions"), None).status, 404);
}

/// Issue 14: activity buckets count calls and errors and give nearest-rank p50/p95, filtered
/// like the audit log; bad windows are refused; another workspace's events never count.
#[test]
fn activity_counts_calls_errors_and_percentiles_per_bucket() {
    use flowcp::store::audit::{insert_many, AuditEvent, Outcome};
    let env = Env::new();
    let other = signed_up(&env, "activity-other@example.com");
    let ws = signed_up(&env, "activity@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let t0 = 1_790_000_000_000 - 3_600_000;
    let ev = |ws: &str, minute: i64, tool: &str, outcome: Outcome, latency: i64| AuditEvent {
        id: flowcp::store::audit::event_id(0),
        ts_ms: t0 + minute * 60_000 + 5,
        workspace_id: ws.to_string(),
        server_id: "srv_a".into(),
        tool_name: tool.into(),
        outcome,
        upstream_status: Some(200),
        latency_ms: latency,
        request_bytes: 0,
        response_bytes: 0,
        connection_hash: None,
        target: None,
        plan: None,
        metered: false,
    };
    let mut events: Vec<AuditEvent> = (1..=20).map(|l| ev(&ws, 0, "a", Outcome::Ok, l)).collect();
    events.push(ev(&ws, 1, "b", Outcome::UpstreamError, 300));
    events.push(ev(&ws, 1, "a", Outcome::Ok, 100));
    events.push(ev(&other, 0, "a", Outcome::Ok, 9_999));
    block_on(insert_many(&env.db, &events)).unwrap();
    let q = format!("/activity?since={t0}&until={}&bucket=60000", t0 + 3_600_000);
    let a = env.call("GET", &p(&q), None).body.unwrap();
    assert_eq!(a["bucket_ms"], 60_000);
    assert_eq!(a["buckets"].as_array().unwrap().len(), 2, "{a}");
    // 1..=20 ms: the nearest-rank p50 is the 10th value, the p95 the 19th.
    assert_eq!(a["buckets"][0], json!({ "start": t0, "calls": 20, "errors": 0, "p50_ms": 10, "p95_ms": 19 }));
    assert_eq!(a["buckets"][1], json!({ "start": t0 + 60_000, "calls": 2, "errors": 1, "p50_ms": 100, "p95_ms": 300 }));
    assert_eq!((a["total"]["calls"].clone(), a["total"]["errors"].clone()), (json!(22), json!(1)));
    assert_eq!((a["tools"][0]["tool_name"].clone(), a["tools"][0]["calls"].clone()), (json!("a"), json!(21)));
    let only_b = env.call("GET", &p(&format!("{q}&tool=b")), None).body.unwrap();
    assert_eq!(only_b["total"], json!({ "calls": 1, "errors": 1, "p50_ms": 300, "p95_ms": 300 }));
    let errors = env.call("GET", &p(&format!("{q}&outcome=upstream_error")), None).body.unwrap();
    assert_eq!(errors["total"]["calls"], 1);
    // The default window is the last 24 hours in whole minutes.
    let d = env.call("GET", &p("/activity"), None).body.unwrap();
    assert_eq!((d["bucket_ms"].clone(), d["total"]["calls"].clone()), (json!(1_440_000), json!(22)));
    for bad in [
        format!("/activity?since={t0}&until={t0}"),
        format!("/activity?since=0&until={}", 40 * 24 * 3_600_000i64),
        format!("/activity?since={t0}&until={}&bucket=1000", t0 + 3_600_000),
        "/activity?bucket=x".to_string(),
        "/activity?outcome=maybe".to_string(),
    ] {
        let r = env.call("GET", &p(&bad), None);
        assert_eq!((r.status, r.body.unwrap()["error"]["code"].clone()), (400, json!("invalid_filter")), "{bad}");
    }
}
