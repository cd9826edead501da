//! The Git integration on the host (issue 17): the connect flow, a source following a branch,
//! signed webhooks, polls, refresh with rotation, a broken connection, curation kept across
//! syncs, auto-publish, rollback and multi-file documents, against a fake GitHub answering
//! through the HTTP port. The e2e test (`tests/e2e/git.test.mjs`) runs the same story under
//! wrangler dev against a fake GitHub on 127.0.0.1.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use flowcp::api::git_sync::{self, Outcome, Trigger};
use flowcp::api::{Request, Response};
use flowcp::net::HttpRequest;
use flowcp::store::{block_on, Db};
use serde_json::{json, Value};

use crate::api::{invite_and_accept, signed_up, Env};
use crate::support::{resp, Scripted};

const REPO: &str = "octo/pets";

#[derive(Default)]
struct State {
    /// Files per commit, and the branch heads.
    trees: BTreeMap<String, BTreeMap<String, String>>,
    heads: BTreeMap<String, String>,
    access: BTreeSet<String>,
    refresh: BTreeSet<String>,
    /// code -> PKCE challenge.
    codes: BTreeMap<String, String>,
    hooks: Vec<(String, String)>,
    next: u32,
    refreshes: u32,
    not_modified: u32,
    /// Every request: method and URL (tests look for tokens in URLs).
    seen: Vec<String>,
    /// Every token issued.
    issued: Vec<String>,
}

/// A fake GitHub: OAuth token endpoint with PKCE and refresh rotation, and the REST API parts
/// FlowCP uses.
#[derive(Clone, Default)]
struct FakeGitHub(Rc<RefCell<State>>);

fn json_resp(status: u16, v: Value) -> Scripted {
    resp(status, &[("content-type", "application/json; charset=utf-8")], v.to_string().as_bytes())
}

impl FakeGitHub {
    fn install(env: &Env) -> Self {
        let gh = FakeGitHub::default();
        let me = gh.clone();
        *env.http.router.borrow_mut() = Some(Box::new(move |req| me.answer(req)));
        gh
    }

    fn token(&self, prefix: &str) -> String {
        let mut s = self.0.borrow_mut();
        s.next += 1;
        let t = format!("{prefix}{:036}", s.next);
        s.issued.push(t.clone());
        t
    }

    fn tokens(&self) -> Scripted {
        let (a, r) = (self.token("ghu_"), self.token("ghr_"));
        let mut s = self.0.borrow_mut();
        s.access.insert(a.clone());
        s.refresh.insert(r.clone());
        json_resp(200, json!({ "access_token": a, "expires_in": 28800, "refresh_token": r, "token_type": "bearer" }))
    }

    /// A commit on `branch` with `files` over the parent's; its sha.
    fn push(&self, branch: &str, files: &[(&str, &str)]) -> String {
        let mut s = self.0.borrow_mut();
        s.next += 1;
        let sha = format!("{:040x}", 0xabc000 + s.next);
        let parent = s.heads.get(branch).and_then(|h| s.trees.get(h)).cloned().unwrap_or_default();
        let mut tree = parent;
        for (p, c) in files {
            tree.insert(p.to_string(), c.to_string());
        }
        s.trees.insert(sha.clone(), tree);
        s.heads.insert(branch.to_string(), sha.clone());
        sha
    }

    fn revoke_all(&self) {
        let mut s = self.0.borrow_mut();
        s.access.clear();
        s.refresh.clear();
    }

    fn answer(&self, req: &HttpRequest) -> Option<Scripted> {
        self.0.borrow_mut().seen.push(format!("{} {}", req.method, req.url));
        let url = url::Url::parse(&req.url).ok()?;
        match url.host_str()? {
            "github.test" if url.path() == "/login/oauth/access_token" => Some(self.token_endpoint(req)),
            "api.github.test" => Some(self.api(req, &url)),
            _ => None,
        }
    }

    fn token_endpoint(&self, req: &HttpRequest) -> Scripted {
        let form: BTreeMap<String, String> =
            url::form_urlencoded::parse(req.body.as_deref().unwrap_or_default()).into_owned().collect();
        let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        if field("client_id") != "Iv1.test" || field("client_secret") != "github-client-secret-not-to-leak" {
            return json_resp(200, json!({ "error": "incorrect_client_credentials" }));
        }
        if field("grant_type") == "refresh_token" {
            let live = self.0.borrow_mut().refresh.remove(field("refresh_token"));
            if !live {
                return json_resp(200, json!({ "error": "bad_refresh_token" }));
            }
            self.0.borrow_mut().refreshes += 1;
            return self.tokens();
        }
        let challenge = self.0.borrow_mut().codes.remove(field("code"));
        match challenge {
            Some(c) if flowcp::oauth::pkce::verify_s256(field("code_verifier"), &c) => self.tokens(),
            _ => json_resp(200, json!({ "error": "bad_verification_code" })),
        }
    }

    fn api(&self, req: &HttpRequest, url: &url::Url) -> Scripted {
        let auth = req.headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.as_str()).unwrap_or("");
        let token = auth.strip_prefix("Bearer ").unwrap_or("");
        if !self.0.borrow().access.contains(token) {
            return json_resp(401, json!({ "message": "Bad credentials" }));
        }
        let path = url.path().to_string();
        let repo_prefix = format!("/repos/{REPO}/");
        let s = self.0.borrow();
        if path == "/user" {
            return json_resp(200, json!({ "login": "octocat", "id": 1 }));
        }
        let Some(rest) = path.strip_prefix(&repo_prefix) else {
            return json_resp(404, json!({ "message": "Not Found" }));
        };
        if rest == "branches" {
            let list: Vec<Value> =
                s.heads.iter().map(|(b, sha)| json!({ "name": b, "commit": { "sha": sha } })).collect();
            return json_resp(200, Value::Array(list));
        }
        if let Some(branch) = rest.strip_prefix("commits/") {
            let branch = percent_encoding::percent_decode_str(branch).decode_utf8_lossy().to_string();
            let Some(sha) = s.heads.get(&branch).cloned() else {
                return json_resp(422, json!({ "message": format!("No commit found for SHA: {branch}") }));
            };
            let etag = format!("W/\"{sha}\"");
            let inm = req.headers.iter().find(|(k, _)| k == "if-none-match").map(|(_, v)| v.clone());
            drop(s);
            if inm.as_deref() == Some(etag.as_str()) {
                self.0.borrow_mut().not_modified += 1;
                return resp(304, &[("etag", &etag)], b"");
            }
            let body = json!({ "sha": sha, "commit": { "message": "Add tags\n\nLonger text", "author": { "name": "Octo Cat" } } });
            return resp(200, &[("etag", &etag), ("content-type", "application/json")], body.to_string().as_bytes());
        }
        if let Some(file) = rest.strip_prefix("contents/") {
            let file = percent_encoding::percent_decode_str(file).decode_utf8_lossy().to_string();
            let sha = url.query_pairs().find(|(k, _)| k == "ref").map(|(_, v)| v.to_string()).unwrap_or_default();
            return match s.trees.get(&sha).and_then(|t| t.get(&file)) {
                Some(content) => resp(200, &[("content-type", "application/vnd.github.raw")], content.as_bytes()),
                None => json_resp(404, json!({ "message": "Not Found" })),
            };
        }
        if rest == "hooks" && req.method == "POST" {
            let body: Value = serde_json::from_slice(req.body.as_deref().unwrap_or_default()).unwrap_or_default();
            let (url, secret) =
                (body["config"]["url"].as_str().unwrap_or(""), body["config"]["secret"].as_str().unwrap_or(""));
            assert_eq!(body["config"]["content_type"], "json");
            drop(s);
            self.0.borrow_mut().hooks.push((url.to_string(), secret.to_string()));
            let id = self.0.borrow().hooks.len();
            return json_resp(201, json!({ "id": id, "config": { "url": url } }));
        }
        json_resp(404, json!({ "message": "Not Found" }))
    }
}

fn doc(ops: &[&str]) -> String {
    let mut paths = serde_json::Map::new();
    for op in ops {
        paths.insert(
            format!("/{op}"),
            json!({ "get": { "operationId": op, "summary": format!("Get {op}"), "responses": { "200": { "description": "ok" } } } }),
        );
    }
    json!({ "openapi": "3.0.3", "info": { "title": "Pets", "version": "1" }, "servers": [{ "url": "https://api.example.com" }], "paths": paths })
        .to_string()
}

/// An owner with an app, a GitHub connection made through the consent flow, and the fake.
struct Fixture {
    env: Env,
    gh: FakeGitHub,
    ws: String,
    app: String,
    conn: String,
}

impl Fixture {
    fn p(&self, s: &str) -> String {
        format!("/api/v1/workspaces/{}{s}", self.ws)
    }

    fn new() -> Self {
        let env = Env::new();
        let gh = FakeGitHub::install(&env);
        gh.push("main", &[("openapi.json", &doc(&["pets", "owners"]))]);
        let ws = signed_up(&env, "git-owner@example.com");
        let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
        let app = env.call("POST", &p("/apps"), Some(json!({ "name": "Pets" }))).body.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let conn = connect(&env, &gh, &ws, &app);
        Fixture { env, gh, ws, app, conn }
    }

    fn follow(&self, auto_publish: bool) -> Value {
        let r = self.env.call(
            "PUT",
            &self.p(&format!("/apps/{}/source", self.app)),
            Some(json!({ "connection_id": self.conn, "repo": REPO, "branch": "main", "path": "openapi.json", "auto_publish": auto_publish })),
        );
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body.unwrap()
    }

    fn source_id(&self) -> String {
        let r = self.env.call("GET", &self.p(&format!("/apps/{}/source", self.app)), None);
        r.body.unwrap()["id"].as_str().unwrap().to_string()
    }

    /// A push delivery as GitHub signs it; the answer and, when it asks for one, the sync's report.
    fn deliver(&self, id: &str, body: &Value, secret: &str) -> (Response, Option<git_sync::SyncReport>) {
        let raw = body.to_string();
        let sig = {
            use hmac::{Hmac, Mac};
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(raw.as_bytes());
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        };
        let req = Request {
            method: "POST".into(),
            path: format!("/git/webhooks/{}", self.source_id()),
            query: Vec::new(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-github-event".into(), "push".into()),
                ("x-github-delivery".into(), id.into()),
                ("x-hub-signature-256".into(), sig),
            ],
            body: raw.into_bytes(),
            client_addr: None,
        };
        let svc = self.env.services();
        let (answer, todo) =
            block_on(flowcp::api::git::public(&svc, &req)).unwrap_or_else(|e| (Response::from_error(&e), None));
        let report = todo.map(|src| block_on(git_sync::sync(&svc, &src, Trigger::Webhook)).unwrap());
        (answer, report)
    }

    fn hook_secret(&self) -> String {
        self.gh.0.borrow().hooks.last().unwrap().1.clone()
    }

    fn tool_names(&self) -> Vec<String> {
        let r = self.env.call("GET", &self.p(&format!("/apps/{}/tools", self.app)), None);
        let mut names: Vec<String> = r.body.unwrap()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }
}

fn push_body(branch: &str) -> Value {
    json!({ "ref": format!("refs/heads/{branch}"), "after": "x", "repository": { "full_name": REPO } })
}

/// The consent flow as the browser goes through it: FlowCP's authorize URL, GitHub's redirect
/// with a code, the callback in the owner's session. The connection's id.
fn connect(env: &Env, gh: &FakeGitHub, ws: &str, app: &str) -> String {
    let r = env.call(
        "POST",
        &format!("/api/v1/workspaces/{ws}/git/connections"),
        Some(json!({ "provider": "github", "return_to_app": app })),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let body = r.body.unwrap();
    let url = url::Url::parse(body["authorize_url"].as_str().unwrap()).unwrap();
    assert_eq!(url.origin().ascii_serialization(), "https://github.test");
    let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["redirect_uri"], "https://flowcp.example/git/callback");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(!body.to_string().contains("github-client-secret"), "the client secret never leaves");
    gh.0.borrow_mut().codes.insert("code-1".into(), q["code_challenge"].clone());
    let back = env.call("GET", &format!("/git/callback?code=code-1&state={}", q["state"]), None);
    assert_eq!(back.status, 302);
    let location = back.headers.iter().find(|(k, _)| k == "location").unwrap().1.clone();
    assert_eq!(location, format!("/apps/{app}?git=connected"));
    body["connection"]["id"].as_str().unwrap().to_string()
}

#[test]
fn a_connected_app_follows_a_branch_with_signed_webhooks_and_keeps_curation() {
    let fx = Fixture::new();
    let conns = fx.env.call("GET", &fx.p("/git/connections"), None).body.unwrap();
    assert_eq!(conns["items"][0]["status"], "active");
    assert_eq!(conns["items"][0]["account"], "octocat");

    let set = fx.follow(false);
    assert_eq!(set["sync"]["outcome"], "imported", "{set}");
    assert_eq!(set["source"]["webhook_created"], true);
    assert_eq!(set["webhook_secret"], Value::Null, "a created webhook's secret is never shown");
    assert_eq!(fx.tool_names(), ["owners", "pets"]);
    let imports = fx.env.call("GET", &fx.p(&format!("/apps/{}/imports", fx.app)), None).body.unwrap();
    let first = &imports["items"][0];
    assert_eq!((first["source_kind"].as_str(), first["commit"]["author"].as_str()), (Some("git"), Some("Octo Cat")));
    assert_eq!(first["commit"]["message"], "Add tags", "the first line of the message");

    // The owner curates; a push changes one operation, adds one and removes one.
    let tools = fx.env.call("GET", &fx.p(&format!("/apps/{}/tools", fx.app)), None).body.unwrap();
    let pets = tools["items"].as_array().unwrap().iter().find(|t| t["name"] == "pets").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r =
        fx.env.call("PATCH", &fx.p(&format!("/apps/{}/tools/{pets}", fx.app)), Some(json!({ "name": "list_pets" })));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let changed = doc(&["pets", "vets"]).replace("Get pets", "Get every pet");
    fx.gh.push("main", &[("openapi.json", &changed)]);
    let secret = fx.hook_secret();
    let (answer, report) = fx.deliver("d-1", &push_body("main"), &secret);
    assert_eq!(answer.status, 202);
    let report = report.expect("a push to the followed branch syncs");
    assert_eq!(report.outcome, Outcome::Imported);
    assert_eq!(
        (report.added.clone(), report.removed.clone(), report.changed.clone()),
        (vec!["vets".to_string()], vec!["owners".to_string()], vec!["list_pets".to_string()])
    );
    assert_eq!(fx.tool_names(), ["list_pets", "vets"], "the curated name survives the re-import");

    // A replayed delivery, a bad signature and another branch change nothing.
    let before = block_on(fx.env.db.query("SELECT COUNT(*) AS n FROM imports", &[])).unwrap();
    let (replay, report) = fx.deliver("d-1", &push_body("main"), &secret);
    assert_eq!((replay.status, report.is_none()), (200, true));
    let (forged, report) = fx.deliver("d-2", &push_body("main"), "not the secret");
    assert_eq!((forged.status, report.is_none()), (401, true));
    let (other, report) = fx.deliver("d-3", &push_body("dev"), &secret);
    assert_eq!((other.status, report.is_none()), (202, true));
    let after = block_on(fx.env.db.query("SELECT COUNT(*) AS n FROM imports", &[])).unwrap();
    assert_eq!(before, after);
    let delivered =
        block_on(fx.env.db.query("SELECT delivery_id FROM git_deliveries ORDER BY delivery_id", &[])).unwrap();
    let ids: Vec<&str> = delivered.iter().map(|r| r["delivery_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["d-1", "d-3"], "a forged delivery is not even recorded");
}

#[test]
fn a_document_that_does_not_parse_changes_nothing_and_the_owner_sees_why() {
    let fx = Fixture::new();
    fx.follow(false);
    fx.gh.push("main", &[("openapi.json", "{ \"openapi\": \"3.0.3\", \"paths\": ")]);
    let svc = fx.env.services();
    let src = block_on(flowcp::store::git::source_of_app(&fx.env.db, &fx.ws, &fx.app)).unwrap().unwrap();
    let report = block_on(git_sync::sync(&svc, &src, Trigger::Manual)).unwrap();
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(report.message.contains("the tools are unchanged"), "{}", report.message);
    assert_eq!(fx.tool_names(), ["owners", "pets"]);
    let view = fx.env.call("GET", &fx.p(&format!("/apps/{}/source", fx.app)), None).body.unwrap();
    assert_eq!(view["status"], "failed");
    assert!(view["message"].as_str().unwrap().contains("cannot be imported"), "{view}");
    // The next good push recovers.
    fx.gh.push("main", &[("openapi.json", &doc(&["pets"]))]);
    let src = block_on(flowcp::store::git::source_of_app(&fx.env.db, &fx.ws, &fx.app)).unwrap().unwrap();
    assert_eq!(block_on(git_sync::sync(&svc, &src, Trigger::Poll)).unwrap().outcome, Outcome::Imported);
    assert_eq!(fx.tool_names(), ["pets"]);
}

#[test]
fn an_unchanged_branch_costs_one_conditional_request_per_poll() {
    let fx = Fixture::new();
    fx.follow(false);
    let svc = fx.env.services();
    let src = block_on(flowcp::store::git::source_of_app(&fx.env.db, &fx.ws, &fx.app)).unwrap().unwrap();
    let before = fx.gh.0.borrow().seen.len();
    let report = block_on(git_sync::sync(&svc, &src, Trigger::Poll)).unwrap();
    assert_eq!(report.outcome, Outcome::Unchanged);
    assert_eq!(fx.gh.0.borrow().seen.len() - before, 1);
    assert_eq!(fx.gh.0.borrow().not_modified, 1);
}

#[test]
fn an_expired_token_is_refreshed_with_rotation_and_a_revoked_one_breaks_the_connection() {
    let fx = Fixture::new();
    fx.follow(false);
    // GitHub expires the access token: the next call gets 401, refreshes once, and retries.
    fx.gh.0.borrow_mut().access.clear();
    fx.gh.push("main", &[("openapi.json", &doc(&["pets", "owners", "toys"]))]);
    let svc = fx.env.services();
    let src = block_on(flowcp::store::git::source_of_app(&fx.env.db, &fx.ws, &fx.app)).unwrap().unwrap();
    assert_eq!(block_on(git_sync::sync(&svc, &src, Trigger::Manual)).unwrap().outcome, Outcome::Imported);
    assert_eq!(fx.gh.0.borrow().refreshes, 1);
    assert_eq!(fx.gh.0.borrow().refresh.len(), 1, "the used refresh token is dead; one live one is kept");

    // The tokens are sealed in D1 and appear nowhere in clear, nor in any URL.
    let rows = block_on(fx.env.db.query("SELECT * FROM git_connections", &[])).unwrap();
    let dump = format!("{rows:?}{:?}", fx.env.kv.entries.borrow());
    for t in fx.gh.0.borrow().issued.iter() {
        assert!(!dump.contains(t.as_str()), "a token in clear in storage");
        assert!(!fx.gh.0.borrow().seen.iter().any(|u| u.contains(t.as_str())), "a token in a URL");
    }
    assert!(rows[0]["refresh_sealed"].as_str().unwrap().starts_with("fcp1."));

    // The user revokes the app at GitHub: the connection breaks with a message, and stays so.
    fx.gh.revoke_all();
    fx.gh.push("main", &[("openapi.json", &doc(&["pets"]))]);
    let src = block_on(flowcp::store::git::source_of_app(&fx.env.db, &fx.ws, &fx.app)).unwrap().unwrap();
    let report = block_on(git_sync::sync(&svc, &src, Trigger::Manual)).unwrap();
    assert_eq!(report.outcome, Outcome::Broken);
    assert!(report.message.contains("connect GitHub again"), "{}", report.message);
    let conns = fx.env.call("GET", &fx.p("/git/connections"), None).body.unwrap();
    assert_eq!(conns["items"][0]["status"], "broken");
    assert!(conns["items"][0]["status_message"].as_str().unwrap().contains("refused"));
    let rows = block_on(fx.env.db.query("SELECT refresh_sealed, access_sealed FROM git_connections", &[])).unwrap();
    assert_eq!((rows[0]["refresh_sealed"].clone(), rows[0]["access_sealed"].clone()), (Value::Null, Value::Null));
    assert_eq!(fx.tool_names(), ["owners", "pets", "toys"], "the tools stay as last synced");
    let sync = fx.env.call("POST", &fx.p(&format!("/apps/{}/source/sync", fx.app)), None).body.unwrap();
    assert_eq!(sync["outcome"], "broken");
}

#[test]
fn auto_publish_puts_a_verified_sync_on_the_air_and_rollback_restores_an_earlier_import() {
    let fx = Fixture::new();
    fx.follow(true);
    let srv = fx.env.call("POST", &fx.p("/servers"), Some(json!({ "app_id": fx.app }))).body.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fx.env.call("POST", &fx.p(&format!("/servers/{srv}/verify")), None).status, 200);
    let published = fx.env.call("POST", &fx.p(&format!("/servers/{srv}/publish")), None);
    assert_eq!(published.status, 200, "{:?}", published.body);
    fx.gh.push("main", &[("openapi.json", &doc(&["pets", "owners", "vets"]))]);
    fx.env.now.set(fx.env.now.get() + 60_000);
    let (answer, report) = fx.deliver("d-9", &push_body("main"), &fx.hook_secret());
    let report = report.unwrap_or_else(|| panic!("no sync: {answer:?}"));
    assert_eq!(report.servers.len(), 1, "{report:?}");
    assert_eq!(report.servers[0].verification, "verified", "{report:?}");
    assert_eq!(report.servers[0].published_version, Some(2), "{report:?}");

    // Rollback: the first import's document again, as a new import naming it.
    let imports = fx.env.call("GET", &fx.p(&format!("/apps/{}/imports", fx.app)), None).body.unwrap();
    let first = imports["items"].as_array().unwrap().last().unwrap()["id"].as_str().unwrap().to_string();
    let r = fx.env.call("POST", &fx.p(&format!("/apps/{}/imports/{first}/restore", fx.app)), None);
    assert_eq!(r.status, 201, "{:?}", r.body);
    let body = r.body.unwrap();
    assert_eq!(
        (body["source_kind"].as_str(), body["restored_from"].as_str()),
        (Some("rollback"), Some(first.as_str()))
    );
    assert_eq!(body["report"]["removed"], json!(["vets"]));
    assert_eq!(fx.tool_names(), ["owners", "pets"]);
    let view = fx.env.call("GET", &fx.p(&format!("/servers/{srv}")), None).body.unwrap();
    assert_eq!(view["verification"]["state"], "unverified", "a rollback puts the servers back to draft");
    // Another workspace's import id, or an unknown one, is 404.
    assert_eq!(fx.env.call("POST", &fx.p(&format!("/apps/{}/imports/imp_nope/restore", fx.app)), None).status, 404);
}

#[test]
fn a_document_split_across_files_is_bundled_from_the_repository() {
    let fx = Fixture::new();
    let root = json!({
        "openapi": "3.0.3", "info": { "title": "Split", "version": "1" },
        "servers": [{ "url": "https://api.example.com" }],
        "paths": { "/pets": { "$ref": "paths/pets.json" } }
    });
    let pets = json!({ "get": { "operationId": "listPets", "parameters": [{ "$ref": "../common.json#/limit" }], "responses": { "200": { "description": "ok" } } } });
    let common = json!({ "limit": { "name": "limit", "in": "query", "schema": { "type": "integer", "maximum": 50 } } });
    fx.gh.push(
        "main",
        &[
            ("api/openapi.json", &root.to_string()),
            ("api/paths/pets.json", &pets.to_string()),
            ("api/common.json", &common.to_string()),
        ],
    );
    let r = fx.env.call(
        "PUT",
        &fx.p(&format!("/apps/{}/source", fx.app)),
        Some(json!({ "connection_id": fx.conn, "repo": REPO, "branch": "main", "path": "api/openapi.json" })),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body.as_ref().unwrap()["sync"]["outcome"], "imported", "{:?}", r.body);
    let tools = fx.env.call("GET", &fx.p(&format!("/apps/{}/tools?include=schema", fx.app)), None).body.unwrap();
    let tool = &tools["items"][0];
    assert_eq!(tool["name"], "listPets");
    assert_eq!(tool["input_schema"]["properties"]["limit"]["maximum"], 50, "{tool}");
}

#[test]
fn bad_input_is_refused_and_members_cannot_change_what_an_app_follows() {
    let fx = Fixture::new();
    for (body, code) in [
        (json!({ "connection_id": fx.conn, "repo": "octo", "branch": "main", "path": "a.json" }), "invalid_git_source"),
        (json!({ "connection_id": fx.conn, "repo": REPO, "branch": "a..b", "path": "a.json" }), "invalid_git_source"),
        (
            json!({ "connection_id": fx.conn, "repo": REPO, "branch": "main", "path": "../etc/passwd" }),
            "invalid_git_source",
        ),
        (json!({ "connection_id": "gitc_other", "repo": REPO, "branch": "main", "path": "a.json" }), "not_found"),
        (json!({ "connection_id": fx.conn, "repo": REPO, "branch": "nope", "path": "a.json" }), "git_not_found"),
        (
            json!({ "connection_id": fx.conn, "repo": REPO, "branch": "main", "path": "a.json", "extra": 1 }),
            "invalid_json",
        ),
    ] {
        let r = fx.env.call("PUT", &fx.p(&format!("/apps/{}/source", fx.app)), Some(body.clone()));
        assert_eq!(r.body.as_ref().unwrap()["error"]["code"], code, "{body}: {:?}", r.body);
    }
    assert_eq!(fx.env.call("GET", &fx.p(&format!("/apps/{}/source", fx.app)), None).status, 404, "nothing was set");
    // A state that is not pending, or a callback without one, changes nothing.
    let r = fx.env.call("GET", "/git/callback?code=x&state=forged", None);
    assert!(r.headers.iter().any(|(k, v)| k == "location" && v.ends_with("?git=expired")));

    // A member (not an admin) sees the source but cannot set, sync or disconnect it.
    fx.follow(false);
    let owner = fx.env.session();
    signed_up(&fx.env, "git-member@example.com");
    let member = fx.env.session();
    invite_and_accept(&fx.env, &fx.ws, &owner, &member, "git-member@example.com", "member");
    assert_eq!(fx.env.call("GET", &fx.p(&format!("/apps/{}/source", fx.app)), None).status, 200);
    assert_eq!(fx.env.call("POST", &fx.p(&format!("/apps/{}/source/sync", fx.app)), None).status, 403);
    assert_eq!(fx.env.call("DELETE", &fx.p(&format!("/git/connections/{}", fx.conn)), None).status, 403);
    assert_eq!(fx.env.call("POST", &fx.p("/git/connections"), Some(json!({ "provider": "github" }))).status, 403);
}

#[test]
fn a_callback_in_another_session_cannot_complete_someone_elses_connection() {
    let env = Env::new();
    let gh = FakeGitHub::install(&env);
    let ws = signed_up(&env, "starter@example.com");
    let r =
        env.call("POST", &format!("/api/v1/workspaces/{ws}/git/connections"), Some(json!({ "provider": "github" })));
    let url = url::Url::parse(r.body.unwrap()["authorize_url"].as_str().unwrap()).unwrap();
    let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    gh.0.borrow_mut().codes.insert("code-x".into(), q["code_challenge"].clone());
    // Someone else's browser (another account) brings the code back.
    signed_up(&env, "victim@example.com");
    let back = env.call("GET", &format!("/git/callback?code=code-x&state={}", q["state"]), None);
    assert!(back.headers.iter().any(|(k, v)| k == "location" && v.ends_with("?git=wrong_account")), "{back:?}");
    let rows = block_on(env.db.query("SELECT status FROM git_connections", &[])).unwrap();
    assert_eq!(rows[0]["status"], "pending", "nothing was connected");
    assert!(gh.0.borrow().codes.contains_key("code-x"), "the code was not even redeemed");
    // A Git route of another workspace answers 404.
    let other = env.call("GET", &format!("/api/v1/workspaces/{ws}/git/connections"), None);
    assert_eq!(other.status, 404);
}

#[test]
fn the_cron_poll_imports_a_push_without_a_webhook_and_skips_sources_checked_lately() {
    let fx = Fixture::new();
    fx.follow(false);
    fx.gh.push("main", &[("openapi.json", &doc(&["pets", "owners", "toys"]))]);
    let svc = fx.env.services();
    assert_eq!(block_on(git_sync::poll_due(&svc)).unwrap().checked, 0, "checked a moment ago: not due");
    fx.env.now.set(fx.env.now.get() + git_sync::POLL_EVERY_MS);
    let svc = fx.env.services();
    let polled = block_on(git_sync::poll_due(&svc)).unwrap();
    assert_eq!((polled.checked, polled.imported), (1, 1));
    assert_eq!(fx.tool_names(), ["owners", "pets", "toys"]);
    let view = fx.env.call("GET", &fx.p(&format!("/apps/{}/source", fx.app)), None).body.unwrap();
    assert_eq!(view["last_sync"]["trigger"], "poll");
}

#[test]
fn key_rotation_reseals_the_git_tokens_and_webhook_secret_in_place() {
    let fx = Fixture::new();
    fx.follow(false);
    let old = "k1:2222222222222222222222222222222222222222222222222222222222222222";
    let ring = flowcp::crypto::Keyring::parse(&format!("k2:{},{old}", "44".repeat(32))).unwrap();
    let run = |dry| {
        block_on(flowcp::service::reseal::run(&fx.env.db, &fx.env.kv, &ring, "", 40, dry, fx.env.now.get() + 600_000))
            .unwrap()
    };
    let dry = run(true);
    assert!(dry.failed.is_empty(), "{dry:?}");
    assert!(dry.opened_with_older_key >= 3, "two tokens and a webhook secret: {dry:?}");
    let report = run(false);
    assert!(report.failed.is_empty(), "{report:?}");
    let conn = block_on(fx.env.db.query("SELECT * FROM git_connections", &[])).unwrap();
    let src = block_on(fx.env.db.query("SELECT * FROM app_sources", &[])).unwrap();
    for sealed in [&conn[0]["refresh_sealed"], &conn[0]["access_sealed"], &src[0]["webhook_secret_sealed"]] {
        assert!(sealed.as_str().unwrap().starts_with("fcp1.k2."), "{sealed}");
    }
    // They open under the new key alone, with their own AAD.
    let only_new = flowcp::crypto::Keyring::parse(&format!("k2:{}", "44".repeat(32))).unwrap();
    let (ws, id) = (conn[0]["workspace_id"].as_str().unwrap(), conn[0]["id"].as_str().unwrap());
    let aad = flowcp::git::token_aad(ws, id, "refresh");
    assert!(only_new.open(conn[0]["refresh_sealed"].as_str().unwrap(), &aad).is_ok());
    let hook_aad = flowcp::git::hook_secret_aad(ws, src[0]["id"].as_str().unwrap());
    let secret = only_new.open(src[0]["webhook_secret_sealed"].as_str().unwrap(), &hook_aad).unwrap();
    assert_eq!(String::from_utf8(secret).unwrap(), fx.hook_secret());
    assert_eq!(run(false).opened_with_older_key, 0, "a second run has nothing left to do");
}

#[test]
fn a_connection_stops_working_when_the_member_who_made_it_is_no_longer_an_admin() {
    let fx = Fixture::new();
    let owner = fx.env.session();
    signed_up(&fx.env, "git-admin2@example.com");
    let admin2 = fx.env.session();
    invite_and_accept(&fx.env, &fx.ws, &owner, &admin2, "git-admin2@example.com", "admin");
    // The second admin connects their own GitHub account (this session is theirs now).
    let theirs = connect(&fx.env, &fx.gh, &fx.ws, &fx.app);
    let as_owner = |method: &str, path: &str, body: Option<Value>| {
        fx.env.call_as(method, &fx.p(path), owner.0.as_deref(), owner.1.as_deref(), body)
    };
    let follow = json!({ "connection_id": theirs, "repo": REPO, "branch": "main", "path": "openapi.json" });
    assert_eq!(as_owner("PUT", &format!("/apps/{}/source", fx.app), Some(follow.clone())).status, 200);
    // A member who is not an admin cannot read repositories through a connection either.
    let members = as_owner("GET", "/members", None).body.unwrap();
    let id = members["items"].as_array().unwrap().iter().find(|m| m["email"] == "git-admin2@example.com").unwrap()
        ["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(as_owner("PATCH", &format!("/members/{id}"), Some(json!({ "role": "member" }))).status, 200);
    let test = fx.env.call("POST", &fx.p("/git/test"), Some(json!({ "connection_id": fx.conn, "repo": REPO })));
    assert_eq!(test.status, 403, "members do not read repositories through the workspace's connection");
    // The owner's syncs through the demoted member's connection stop, with the reason.
    let sync = as_owner("POST", &format!("/apps/{}/source/sync", fx.app), None).body.unwrap();
    assert_eq!(sync["outcome"], "broken");
    assert_eq!(sync["message"], git_sync::CREATOR_GONE);
    let again = as_owner("PUT", &format!("/apps/{}/source", fx.app), Some(follow));
    assert_eq!(again.body.unwrap()["error"]["code"], "git_connection_broken");
}
