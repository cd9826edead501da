//! The MCP dispatcher on the host: in-memory KV, a fake upstream, real manifests built from
//! real ToolDefs. (The same paths run under wrangler dev with the SDK client in tests/e2e.)

use std::cell::RefCell;

use flowcp::crypto::{aad_server_credential, sha256_hex, Keyring};
use flowcp::manifest::{self, Manifest, ManifestAuth, Placement};
use flowcp::mcp::server::{handle, ManifestCache, McpRequest, McpResponse, Runtime};
use flowcp::net::{FetchPolicy, Http, HttpError, HttpRequest, HttpResponse};
use flowcp::store::audit::Outcome;
use flowcp::store::{block_on, Kv, MemoryKv};
use flowcp::vocab::AuthMode;

use crate::support::{FaultyKv, KvFault};
use serde_json::{json, Value};

const KEY: &str = "k1:1111111111111111111111111111111111111111111111111111111111111111";
const ORIGIN: &str = "https://flowcp.example";

/// Records requests; answers 200 `{"ok":true,"echo":<the api key header>}` (to test redaction).
#[derive(Default)]
struct FakeUpstream {
    seen: RefCell<Vec<HttpRequest>>,
}

impl Http for FakeUpstream {
    async fn send(&self, req: &HttpRequest, _max: usize) -> Result<HttpResponse, HttpError> {
        self.seen.borrow_mut().push(req.clone());
        let echoed = req.headers.iter().find(|(k, _)| k == "X-Api-Key").map(|(_, v)| v.clone()).unwrap_or_default();
        let body = json!({ "ok": true, "echo": echoed }).to_string().into_bytes();
        Ok(HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body,
            truncated: false,
        })
    }
}

fn doc(n: usize) -> Vec<u8> {
    let mut paths = serde_json::Map::new();
    for i in 0..n {
        paths.insert(
            format!("/things/{i}"),
            json!({ "get": { "operationId": format!("getThing{i:04}"), "summary": format!("Get thing number {i}"), "tags": [if i % 2 == 0 { "even" } else { "odd" }],
                "parameters": [{ "name": "q", "in": "query", "required": i == 1, "schema": { "type": "string" } }],
                "responses": { "200": { "description": "ok" } } } }),
        );
    }
    serde_json::to_vec(&json!({ "openapi": "3.0.3", "info": { "title": "T", "version": "1" }, "servers": [{ "url": "https://api.example.com" }], "paths": paths })).unwrap()
}

struct Fixture {
    kv: MemoryKv,
    /// The whole manifest as last published (the store holds its format-3 parts).
    whole: std::cell::RefCell<Manifest>,
    /// This fixture's own isolate caches (fixtures never share a cached manifest).
    cache: ManifestCache,
    http: FakeUpstream,
    keyring: Keyring,
    server: String,
}

/// Every fixture gets its own server id (and its own cache), so a sealed credential of one
/// fixture's server does not open for another's (the AAD names the server).
fn next_server_id() -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!("srv_test{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}
const ACCESS_KEY: &str = "fcp_sk_test_key_123";

fn placement(location: &str, name: &str) -> Placement {
    Placement { location: serde_json::from_value(json!(location)).unwrap(), name: name.into() }
}

fn fixture(tools: usize, mode: &str, public: bool, discovery: bool) -> Fixture {
    let server = next_server_id();
    let report = flowcp::tools::import(&doc(tools)).unwrap();
    let keyring = Keyring::parse(KEY).unwrap();
    let kv = MemoryKv::default();
    let m = Manifest {
        format: manifest::FORMAT,
        server_id: server.clone(),
        workspace_id: "ws_1".into(),
        version: 1,
        published_at: 0,
        name: "Things".into(),
        auth: ManifestAuth {
            mode: AuthMode::parse(mode).unwrap(),
            public,
            placement: Some(placement("header", "X-Api-Key")),
            credential_ref: Some(manifest::credential_key(&server)),
            credential_origin: Some("https://api.example.com".into()),
            scopes: vec![],
            oauth: (mode == "oauth").then(|| manifest::ManifestOAuth {
                authorize_url: "https://idp.example/authorize".into(),
                token_url: "https://idp.example/token".into(),
                client_id: "owner-app".into(),
                authorize_params: vec![],
                issuer: None,
            }),
        },
        discovery,
        base_url: None,
        allowed_origins: None,
        skills: None,
        usage_target: None,
        store: None,
        tools: report.tools,
        layout: None,
    };
    crate::support::put_manifest(&kv, &m);
    block_on(async {
        kv.put(&manifest::live_key(&server), b"1", None).await.unwrap();
        let mirror = json!({ "server_id": server, "key_id": "key_1" }).to_string();
        kv.put(&manifest::access_key_key(&sha256_hex(ACCESS_KEY.as_bytes())), mirror.as_bytes(), None).await.unwrap();
        let sealed = keyring.seal(b"upstream-secret-value", &aad_server_credential(&server)).unwrap();
        kv.put(&manifest::credential_key(&server), sealed.as_bytes(), None).await.unwrap();
    });
    Fixture { kv, whole: m.into(), cache: ManifestCache::default(), http: FakeUpstream::default(), keyring, server }
}

fn call(f: &Fixture, body: Value, extra: &[(&str, &str)]) -> McpResponse {
    // Each call is "later" than the last, past the isolate's short KV cache.
    static NOW: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1_000_000);
    call_at(f, body, extra, NOW.fetch_add(10_000, std::sync::atomic::Ordering::Relaxed))
}

fn call_at(f: &Fixture, body: Value, extra: &[(&str, &str)], now: i64) -> McpResponse {
    call_via(f, &f.http, body, extra, now)
}

/// A call at `now` whose upstream requests go to `http`.
fn call_via(f: &Fixture, http: &impl Http, body: Value, extra: &[(&str, &str)], now: i64) -> McpResponse {
    let mut headers: Vec<(String, String)> = vec![
        ("content-type".into(), "application/json".into()),
        ("accept".into(), "application/json, text/event-stream".into()),
    ];
    if !extra.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")) {
        headers.push(("authorization".into(), format!("Bearer {ACCESS_KEY}")));
    }
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    request(f, http, "POST", &headers, &serde_json::to_vec(&body).unwrap(), now)
}

/// One request to the fixture's server, exactly as given.
fn request(
    f: &Fixture,
    http: &impl Http,
    method: &str,
    headers: &[(String, String)],
    body: &[u8],
    now: i64,
) -> McpResponse {
    request_with(f, &f.kv, http, None, method, headers, body, now)
}

/// [`request`] reading KV through `kv` (a fault-injecting one, say), with the plans' quota gate.
#[allow(clippy::too_many_arguments)]
fn request_with(
    f: &Fixture,
    kv: &impl Kv,
    http: &impl Http,
    quota: Option<&dyn flowcp::mcp::server::QuotaGate>,
    method: &str,
    headers: &[(String, String)],
    body: &[u8],
    now: i64,
) -> McpResponse {
    let clock = move || now;
    let rt = Runtime {
        kv,
        cache: &f.cache,
        http,
        keyring: &f.keyring,
        fetch_policy: FetchPolicy::default(),
        origin: ORIGIN.into(),
        clock: &clock,
        upstream_timeout_ms: 1000,
        key_gate: None,
        quota,
    };
    let mut r = block_on(handle(&rt, &f.server, &McpRequest { method, headers, body }));
    // A stored page as the client reads it (the page stays, to tell a stored page was sent).
    r.body = r.body_json();
    r
}

/// A clock reading later than every earlier call's (past the isolate's 1 s KV cache).
fn later() -> i64 {
    static NOW: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(9_000_000_000);
    NOW.fetch_add(10_000, std::sync::atomic::Ordering::Relaxed)
}

fn rpc(method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params })
}

#[test]
fn tools_list_pages_through_every_tool_with_opaque_cursors() {
    let f = fixture(250, "none", false, false);
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let params = cursor.as_ref().map_or(json!({}), |c| json!({ "cursor": c }));
        let r = call(&f, rpc("tools/list", params), &[]);
        let result = &r.body.as_ref().unwrap()["result"];
        names.extend(result["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()));
        pages += 1;
        match result.get("nextCursor").and_then(Value::as_str) {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 250);
    let expected: Vec<String> = (0..250).map(|i| format!("getThing{i:04}")).collect();
    assert_eq!(names, expected, "every tool once, in the manifest's order");
    let bad = call(&f, rpc("tools/list", json!({ "cursor": "not-a-cursor" })), &[]);
    assert_eq!(bad.body.unwrap()["error"]["code"], -32602);
}

#[test]
fn wrong_or_missing_access_key_is_401_and_right_one_passes() {
    let f = fixture(3, "none", false, false);
    let ok = call(&f, rpc("ping", json!({})), &[]);
    assert_eq!(ok.status, 200);
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    headers.push(("authorization".into(), "Bearer fcp_sk_wrong".into()));
    let clock = || 0i64;
    let rt = Runtime {
        kv: &f.kv,
        cache: &f.cache,
        http: &f.http,
        keyring: &f.keyring,
        fetch_policy: FetchPolicy::default(),
        origin: ORIGIN.into(),
        clock: &clock,
        upstream_timeout_ms: 1000,
        key_gate: None,
        quota: None,
    };
    let body = serde_json::to_vec(&rpc("ping", json!({}))).unwrap();
    let r = block_on(handle(&rt, &f.server, &McpRequest { method: "POST", headers: &headers, body: &body }));
    assert_eq!(r.status, 401);
    headers.pop();
    let r = block_on(handle(&rt, &f.server, &McpRequest { method: "POST", headers: &headers, body: &body }));
    assert_eq!(r.status, 401);
    assert!(r.body.unwrap()["error"]["message"].as_str().unwrap().contains("access key"));
}

#[test]
fn api_key_is_placed_and_an_upstream_echo_of_it_is_redacted() {
    let f = fixture(3, "api_key", false, false);
    let r = call(&f, rpc("tools/call", json!({ "name": "getThing0000", "arguments": {} })), &[]);
    let text = r.body.as_ref().unwrap().to_string();
    assert!(!text.contains("upstream-secret-value"), "{text}");
    assert!(text.contains("[REDACTED]"));
    let seen = f.http.seen.borrow();
    assert!(seen[0].headers.contains(&("X-Api-Key".to_string(), "upstream-secret-value".to_string())));
    assert_eq!(seen[0].url, "https://api.example.com/things/0");
    assert_eq!(r.audit.len(), 1);
    assert_eq!(r.audit[0].outcome, Outcome::Ok);
    assert_eq!(r.audit[0].connection_hash.as_deref().map(str::len), Some(16));
}

#[test]
fn a_missing_credential_denies_the_call_without_an_upstream_request() {
    let f = fixture(3, "api_key", false, false);
    block_on(f.kv.delete(&manifest::credential_key(&f.server))).unwrap();
    let r = call(&f, rpc("tools/call", json!({ "name": "getThing0000", "arguments": {} })), &[]);
    assert_eq!(r.body.unwrap()["result"]["isError"], true);
    assert!(f.http.seen.borrow().is_empty());
    assert_eq!(r.audit[0].outcome, Outcome::Denied);
}

#[test]
fn invalid_arguments_never_reach_the_upstream() {
    let f = fixture(3, "none", false, false);
    let r = call(&f, rpc("tools/call", json!({ "name": "getThing0001", "arguments": { "q": 5 } })), &[]);
    assert_eq!(r.body.unwrap()["result"]["isError"], true);
    assert!(f.http.seen.borrow().is_empty());
    assert_eq!(r.audit[0].outcome, Outcome::Invalid);
    let unknown = call(&f, rpc("tools/call", json!({ "name": "nope" })), &[]);
    assert_eq!(unknown.body.unwrap()["error"]["code"], -32602);
}

#[test]
fn private_base_urls_are_refused_at_call_time() {
    let f = fixture(1, "none", true, false);
    // Re-publish with a base URL override pointing at the metadata service.
    republish(&f, |m| m.base_url = Some("https://169.254.169.254/latest".into()));
    let r = call(&f, rpc("tools/call", json!({ "name": "getThing0000" })), &[]);
    assert_eq!(r.body.unwrap()["result"]["isError"], true);
    assert!(f.http.seen.borrow().is_empty());
    // The same for a tool whose own document server is private (no override).
    republish(&f, |m| {
        m.base_url = None;
        m.tools[0].request.servers = vec!["https://10.0.0.7/api".into()];
    });
    let r = call(&f, rpc("tools/call", json!({ "name": "getThing0000" })), &[]);
    assert!(result_of(&r)["content"][0]["text"].as_str().unwrap().contains("not allowed"), "{:?}", r.body);
    assert_eq!(r.audit[0].outcome, Outcome::Denied);
    assert!(f.http.seen.borrow().is_empty());
}

#[test]
fn kv_key_names_are_pinned() {
    // Published data lives under these names; a rename strands every live server.
    assert_eq!(manifest::manifest_key("srv_1", 3), "manifest:srv_1:3");
    assert_eq!(manifest::live_key("srv_1"), "manifest:srv_1:live");
    assert_eq!(manifest::latest_key("srv_1"), "manifest:srv_1:latest");
    assert_eq!(manifest::credential_key("srv_1"), "cred:srv_1");
    assert_eq!(manifest::access_key_key("abc"), "akey:abc");
}

#[test]
fn discovery_search_ranks_name_matches_and_filters_by_tag() {
    let f = fixture(40, "none", true, true);
    let r = call(&f, rpc("tools/list", json!({})), &[]);
    let names: Vec<String> = r.body.unwrap()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["search_tools", "describe_tool", "call_tool"]);
    let r = call(
        &f,
        rpc(
            "tools/call",
            json!({ "name": "search_tools", "arguments": { "query": "number 7", "tag": "odd", "limit": 5 } }),
        ),
        &[],
    );
    let found = &r.body.unwrap()["result"]["structuredContent"];
    assert_eq!(found["tools"][0]["name"], "getThing0007");
    assert!(found["tools"].as_array().unwrap().iter().all(|t| t["tags"] == json!(["odd"])));
    let r = call(
        &f,
        rpc(
            "tools/call",
            json!({ "name": "call_tool", "arguments": { "name": "getThing0003", "arguments": { "q": "x" } } }),
        ),
        &[],
    );
    let text = r.body.unwrap()["result"]["content"][0]["text"].as_str().unwrap().to_string();
    assert!(text.contains("\"ok\":true"), "{text}");
    assert_eq!(f.http.seen.borrow()[0].url, "https://api.example.com/things/3?q=x");
}

#[test]
fn modern_era_requests_need_matching_headers() {
    let f = fixture(2, "none", false, false);
    let meta = json!({ "_meta": { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} } });
    let ok = call(
        &f,
        rpc("server/discover", meta.clone()),
        &[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "server/discover")],
    );
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body.as_ref().unwrap()["result"]["resultType"], "complete");
    let missing = call(&f, rpc("server/discover", meta.clone()), &[("mcp-protocol-version", "2026-07-28")]);
    assert_eq!((missing.status, missing.body.unwrap()["error"]["code"].clone()), (400, json!(-32020)));
    let no_envelope = call(&f, rpc("tools/list", json!({})), &[("mcp-protocol-version", "2026-07-28")]);
    assert_eq!(no_envelope.status, 400);
}

#[test]
fn server_timing_names_the_io_phases() {
    let f = fixture(1, "api_key", false, false);
    let r = call(&f, rpc("tools/call", json!({ "name": "getThing0000" })), &[]);
    let timing = r.headers.iter().find(|(k, _)| k == "server-timing").map(|(_, v)| v.clone()).unwrap();
    for phase in ["manifest;dur=", "auth;dur=", "credential;dur=", "upstream;dur=", "total;dur="] {
        assert!(timing.contains(phase), "{timing}");
    }
}

#[test]
fn a_revoked_key_or_unpublished_server_stops_answering_within_the_cache_ttl() {
    let f = fixture(1, "none", false, false);
    let t = 5_000_000_000;
    assert_eq!(call_at(&f, rpc("ping", json!({})), &[], t).status, 200);
    block_on(f.kv.delete(&manifest::access_key_key(&sha256_hex(ACCESS_KEY.as_bytes())))).unwrap();
    assert_eq!(call_at(&f, rpc("ping", json!({})), &[], t + 500).status, 200, "inside the 1 s isolate cache");
    assert_eq!(call_at(&f, rpc("ping", json!({})), &[], t + 1_500).status, 401, "revocation is seen after the TTL");
    block_on(f.kv.delete(&manifest::live_key(&f.server))).unwrap();
    assert_eq!(call_at(&f, rpc("ping", json!({})), &[], t + 3_000).status, 404);
}

#[test]
fn corrupt_or_foreign_stored_manifests_answer_503_not_a_panic() {
    let f = fixture(1, "none", false, false);
    let put = |k: String, v: &[u8]| block_on(f.kv.put(&k, v, None)).unwrap();
    // A live pointer that is not a number.
    put(manifest::live_key(&f.server), b"not-a-version");
    assert_eq!(call(&f, rpc("ping", json!({})), &[]).status, 503);
    // A pointer to a version that was never written.
    put(manifest::live_key(&f.server), b"7");
    assert_eq!(call(&f, rpc("ping", json!({})), &[]).status, 503);
    // A manifest that is not JSON.
    put(manifest::manifest_key(&f.server, 8), b"{\"format\":");
    put(manifest::live_key(&f.server), b"8");
    assert_eq!(call(&f, rpc("ping", json!({})), &[]).status, 503);
    // Another server's manifest copied under this server's key.
    let mut m: Manifest =
        serde_json::from_slice(&block_on(f.kv.get(&manifest::manifest_key(&f.server, 1))).unwrap().unwrap()).unwrap();
    m.server_id = "srv_someone_else".into();
    m.version = 9;
    put(manifest::manifest_key(&f.server, 9), &serde_json::to_vec(&m).unwrap());
    put(manifest::live_key(&f.server), b"9");
    assert_eq!(call(&f, rpc("ping", json!({})), &[]).status, 503);
}

#[test]
fn a_tampered_credential_envelope_denies_the_call() {
    let f = fixture(1, "api_key", false, false);
    let key = manifest::credential_key(&f.server);
    let mut sealed = block_on(f.kv.get(&key)).unwrap().unwrap();
    let last = sealed.len() - 1;
    sealed[last] = if sealed[last] == b'A' { b'B' } else { b'A' };
    block_on(f.kv.put(&key, &sealed, None)).unwrap();
    let r = call(&f, rpc("tools/call", json!({ "name": "getThing0000" })), &[]);
    assert_eq!(r.body.unwrap()["result"]["isError"], true);
    assert!(f.http.seen.borrow().is_empty(), "no upstream call without a valid credential");
    assert_eq!(r.audit[0].outcome, Outcome::Denied);
}

#[test]
fn dot_segment_path_arguments_cannot_reach_other_endpoints() {
    let doc = serde_json::to_vec(&json!({
        "openapi": "3.0.3", "info": { "title": "T", "version": "1" }, "servers": [{ "url": "https://api.example.com/v1" }],
        "paths": { "/accounts/{account}/users": { "get": { "operationId": "users",
            "parameters": [{ "name": "account", "in": "path", "required": true, "schema": { "type": "string" } }],
            "responses": { "200": { "description": "ok" } } } } }
    }))
    .unwrap();
    let tool = flowcp::tools::import(&doc).unwrap().tools.remove(0);
    for bad in ["..", "."] {
        let r =
            flowcp::invoke::build_request(&tool, &json!({ "account": bad }), &flowcp::invoke::Credential::None, None);
        assert!(r.is_err(), "{bad:?} must be refused, got {:?}", r.map(|p| p.url));
    }
    let ok =
        flowcp::invoke::build_request(&tool, &json!({ "account": "a..b" }), &flowcp::invoke::Credential::None, None)
            .unwrap();
    assert_eq!(ok.url, "https://api.example.com/v1/accounts/a..b/users");
    // A literal "%2e%2e" is escaped ("%252e"), so it stays one ordinary segment.
    let lit =
        flowcp::invoke::build_request(&tool, &json!({ "account": "%2e%2E" }), &flowcp::invoke::Credential::None, None)
            .unwrap();
    assert_eq!(lit.url, "https://api.example.com/v1/accounts/%252e%252E/users");
}

// ---- The runtime's own security decisions (audit §8: 1, 2, 3) and its upstream handling ----

use crate::support::{resp, ScriptedHttp};
use flowcp::invoke::Credential;

/// Publishes a new manifest version of the fixture's server, changed by `edit`.
fn republish(f: &Fixture, edit: impl FnOnce(&mut Manifest)) {
    let live: i64 = String::from_utf8(block_on(f.kv.get(&manifest::live_key(&f.server))).unwrap().unwrap())
        .unwrap()
        .parse()
        .unwrap();
    let mut m = f.whole.borrow().clone();
    m.version = live + 1;
    edit(&mut m);
    crate::support::put_manifest(&f.kv, &m);
    block_on(f.kv.put(&manifest::live_key(&f.server), m.version.to_string().as_bytes(), None)).unwrap();
    *f.whole.borrow_mut() = m;
}

/// Seals `value` as the fixture's credential.
fn set_credential(f: &Fixture, value: &str) {
    let sealed = f.keyring.seal(value.as_bytes(), &aad_server_credential(&f.server)).unwrap();
    block_on(f.kv.put(&manifest::credential_key(&f.server), sealed.as_bytes(), None)).unwrap();
}

fn tool_call(name: &str, args: Value) -> Value {
    rpc("tools/call", json!({ "name": name, "arguments": args }))
}

fn result_of(r: &McpResponse) -> Value {
    r.body.as_ref().unwrap()["result"].clone()
}

#[test]
fn an_access_key_of_another_server_is_refused_without_an_upstream_call() {
    let b = fixture(1, "none", false, false);
    // A live key of server A, mirrored in the same KV namespace as every key (as in production).
    let key_of_a = "fcp_sk_key_of_server_a_0001";
    let mirror = json!({ "server_id": "srv_server_a", "key_id": "key_a" }).to_string();
    block_on(b.kv.put(&manifest::access_key_key(&sha256_hex(key_of_a.as_bytes())), mirror.as_bytes(), None)).unwrap();
    let auth = format!("Bearer {key_of_a}");
    for key_header in [("authorization", auth.as_str()), ("x-api-key", key_of_a)] {
        let r =
            call_via(&b, &b.http, tool_call("getThing0000", json!({})), &[key_header, ("authorization", "")], later());
        assert_eq!(r.status, 401, "{key_header:?}: {:?}", r.body);
        assert!(r.audit.is_empty(), "a refused call is not a tool call");
    }
    assert!(b.http.seen.borrow().is_empty(), "no upstream request for a foreign key");
    // Control: B's own key works on B.
    assert_eq!(call(&b, tool_call("getThing0000", json!({})), &[]).status, 200);
    assert_eq!(b.http.seen.borrow().len(), 1);
}

#[test]
fn the_runtime_sends_the_credential_only_to_the_origin_it_was_set_for() {
    let f = fixture(1, "api_key", false, false);
    // A manifest whose calls go elsewhere (base URL override), with the same credential.
    republish(&f, |m| m.base_url = Some("https://attacker.example".into()));
    let r = call(&f, tool_call("getThing0000", json!({})), &[]);
    assert_eq!(result_of(&r)["isError"], true);
    assert!(result_of(&r).to_string().contains("not the one this server's credential was set for"));
    assert_eq!(r.audit[0].outcome, Outcome::Denied);
    // A manifest without a recorded origin: the credential goes nowhere.
    republish(&f, |m| {
        m.base_url = None;
        m.auth.credential_origin = None;
    });
    let r = call(&f, tool_call("getThing0000", json!({})), &[]);
    assert_eq!((result_of(&r)["isError"].clone(), r.audit[0].outcome), (json!(true), Outcome::Denied));
    // Same host, other port or scheme: another origin.
    for other in ["https://api.example.com:8443", "http://api.example.com"] {
        republish(&f, |m| {
            m.base_url = Some(other.into());
            m.auth.credential_origin = Some("https://api.example.com".into());
        });
        let r = call_via(&f, &f.http, tool_call("getThing0000", json!({})), &[], later());
        assert_eq!(r.audit[0].outcome, Outcome::Denied, "{other}");
    }
    assert!(f.http.seen.borrow().is_empty(), "the credential never left");
    // Control: back at the bound origin the call goes out with the credential.
    republish(&f, |m| m.base_url = None);
    let r = call(&f, tool_call("getThing0000", json!({})), &[]);
    assert_eq!(r.audit[0].outcome, Outcome::Ok);
    assert_eq!(f.http.seen.borrow()[0].url, "https://api.example.com/things/0");
}

#[test]
fn a_credential_envelope_moved_from_another_server_does_not_open() {
    let a = fixture(1, "api_key", false, false);
    let b = fixture(1, "api_key", false, false);
    let sealed_for_a = block_on(a.kv.get(&manifest::credential_key(&a.server))).unwrap().unwrap();
    block_on(b.kv.put(&manifest::credential_key(&b.server), &sealed_for_a, None)).unwrap();
    let r = call(&b, tool_call("getThing0000", json!({})), &[]);
    assert_eq!((result_of(&r)["isError"].clone(), r.audit[0].outcome), (json!(true), Outcome::Denied));
    assert!(b.http.seen.borrow().is_empty());
}

#[test]
fn an_unknown_credential_placement_fails_closed() {
    let f = fixture(1, "api_key", false, false);
    // A stored manifest naming a placement the runtime does not know (a typo, a future one).
    let mut m: Value =
        serde_json::from_slice(&block_on(f.kv.get(&manifest::manifest_key(&f.server, 1))).unwrap().unwrap()).unwrap();
    m["version"] = json!(2);
    m["auth"]["placement"]["in"] = json!("body");
    block_on(async {
        f.kv.put(&manifest::manifest_key(&f.server, 2), m.to_string().as_bytes(), None).await.unwrap();
        f.kv.put(&manifest::live_key(&f.server), b"2", None).await.unwrap();
    });
    let r = call(&f, tool_call("getThing0000", json!({})), &[]);
    assert_eq!(r.status, 503, "the manifest does not load: {:?}", r.body);
    assert!(f.http.seen.borrow().is_empty());
    assert!(r.audit.is_empty());
}

/// An upstream that echoes what it received: the URL, every header, and the decoded query.
struct Echo;

impl Http for Echo {
    async fn send(&self, req: &HttpRequest, _max: usize) -> Result<HttpResponse, HttpError> {
        let url = url::Url::parse(&req.url).unwrap();
        let decoded: Vec<String> = url.query_pairs().map(|(k, v)| format!("{k}={v}")).collect();
        let body = json!({ "url": req.url, "headers": req.headers, "query": decoded }).to_string();
        Ok(HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into_bytes(),
            truncated: false,
        })
    }
}

/// Fails with a network error that quotes the request, as JS error texts often do.
struct Failing;

impl Http for Failing {
    async fn send(&self, req: &HttpRequest, _max: usize) -> Result<HttpResponse, HttpError> {
        Err(HttpError::Network(format!("{} {} failed; headers {:?}", req.method, req.url, req.headers)))
    }
}

#[test]
fn no_form_of_the_credential_reaches_the_model_whatever_the_placement_or_echo() {
    let secret = "ab.c/d+e=f\"g\\h i~j<k>&l";
    let forms = flowcp::redact::forms(secret);
    let placements = [
        ("api_key", Some(("header", "X-Api-Key"))),
        ("api_key", Some(("query", "api_key"))),
        ("api_key", Some(("cookie", "key"))),
        ("bearer", None),
    ];
    for (mode, placement) in placements {
        let f = fixture(1, mode, false, false);
        republish(&f, |m| m.auth.placement = placement.map(|(l, n)| self::placement(l, n)));
        set_credential(&f, secret);
        for (label, answer) in [
            ("echo", call_via(&f, &Echo, tool_call("getThing0000", json!({})), &[], later())),
            ("network error", call_via(&f, &Failing, tool_call("getThing0000", json!({})), &[], later())),
        ] {
            let result = result_of(&answer);
            let wire = answer.body.as_ref().unwrap().to_string();
            let text = result["content"][0]["text"].as_str().unwrap_or_default().to_string();
            assert!(text.contains("[REDACTED]"), "{mode} {placement:?} {label}: nothing redacted: {text}");
            for form in &forms {
                assert!(
                    !wire.contains(form.as_str()) && !text.contains(form.as_str()),
                    "{mode} {placement:?} {label}: the form {form:?} reached the model: {text}"
                );
            }
        }
    }
}

#[test]
fn a_header_argument_never_rides_beside_the_credential() {
    let doc = serde_json::to_vec(&json!({
        "openapi": "3.0.3", "info": { "title": "T", "version": "1" }, "servers": [{ "url": "https://api.example.com" }],
        "paths": { "/x": { "get": { "operationId": "x",
            "parameters": [
                { "name": "X-Api-Key", "in": "header", "schema": { "type": "string" } },
                { "name": "api_key", "in": "query", "schema": { "type": "string" } },
                { "name": "key", "in": "cookie", "schema": { "type": "string" } },
                { "name": "Authorization", "in": "header", "schema": { "type": "string" } }
            ],
            "responses": { "200": { "description": "ok" } } } } }
    }))
    .unwrap();
    let tool = flowcp::tools::import(&doc).unwrap().tools.remove(0);
    let args = json!({ "X-Api-Key": "model", "api_key": "model", "key": "model", "Authorization": "model" });
    let header = Credential::Header { name: "x-api-key".into(), value: "secret".into() };
    let plan = flowcp::invoke::build_request(&tool, &args, &header, None).unwrap();
    let merged = crate::support::js_headers(&plan.headers);
    assert_eq!(merged.iter().find(|(k, _)| k == "x-api-key").unwrap().1, "secret", "{merged:?}");
    assert!(plan.url.contains("api_key=model"), "other slots keep the model's value");
    let query = Credential::Query { name: "api_key".into(), value: "secret".into() };
    let plan = flowcp::invoke::build_request(&tool, &args, &query, None).unwrap();
    assert_eq!(plan.url.matches("api_key=").count(), 1, "{}", plan.url);
    assert!(plan.url.ends_with("api_key=secret"), "{}", plan.url);
    let cookie = Credential::Cookie { name: "key".into(), value: "secret".into() };
    let plan = flowcp::invoke::build_request(&tool, &args, &cookie, None).unwrap();
    let cookies = crate::support::js_headers(&plan.headers);
    assert_eq!(cookies.iter().find(|(k, _)| k == "cookie").unwrap().1, "key=secret");
    // Exploded object arguments cannot name the credential's pair either.
    let doc = serde_json::to_vec(&json!({
        "openapi": "3.0.3", "info": { "title": "T", "version": "1" }, "servers": [{ "url": "https://api.example.com" }],
        "paths": { "/y": { "get": { "operationId": "y",
            "parameters": [
                { "name": "filter", "in": "query", "schema": { "type": "object" } },
                { "name": "prefs", "in": "cookie", "explode": true, "schema": { "type": "object" } },
                { "name": "Cookie", "in": "header", "schema": { "type": "string" } }
            ],
            "responses": { "200": { "description": "ok" } } } } }
    }))
    .unwrap();
    let objects = flowcp::tools::import(&doc).unwrap().tools.remove(0);
    let smuggle = json!({ "filter": { "api_key": "attacker", "q": "1" }, "prefs": { "key": "attacker", "theme": "dark" }, "Cookie": "key=attacker" });
    let plan = flowcp::invoke::build_request(&objects, &smuggle, &query, None).unwrap();
    assert_eq!(plan.url, "https://api.example.com/y?q=1&api_key=secret", "{}", plan.url);
    let plan = flowcp::invoke::build_request(&objects, &smuggle, &cookie, None).unwrap();
    let merged = crate::support::js_headers(&plan.headers);
    assert_eq!(merged.iter().find(|(k, _)| k == "cookie").unwrap().1, "theme=dark; key=secret", "{merged:?}");
    let bearer = Credential::Bearer("secret".into());
    let plan = flowcp::invoke::build_request(&tool, &args, &bearer, None).unwrap();
    let merged = crate::support::js_headers(&plan.headers);
    assert_eq!(merged.iter().find(|(k, _)| k == "authorization").unwrap().1, "Bearer secret");
}

#[test]
fn a_get_operation_with_a_body_is_refused_before_the_upstream() {
    let doc = serde_json::to_vec(&json!({
        "openapi": "3.0.3", "info": { "title": "T", "version": "1" }, "servers": [{ "url": "https://api.example.com" }],
        "paths": { "/search": { "get": { "operationId": "search",
            "requestBody": { "content": { "application/json": { "schema": { "type": "object", "properties": { "q": { "type": "string" } } } } } },
            "responses": { "200": { "description": "ok" } } } } }
    }))
    .unwrap();
    let tool = flowcp::tools::import(&doc).unwrap().tools.remove(0);
    let with_body = flowcp::invoke::build_request(&tool, &json!({ "q": "x" }), &Credential::None, None);
    assert!(matches!(with_body, Err(flowcp::invoke::PlanError::BodyNotAllowed { .. })), "{with_body:?}");
    let without = flowcp::invoke::build_request(&tool, &json!({}), &Credential::None, None).unwrap();
    assert_eq!((without.method.as_str(), without.body), ("GET", None));
}

#[test]
fn redirects_follow_the_same_origin_only_and_stop_after_three() {
    let f = fixture(1, "api_key", false, false);
    // 303 turns into a GET without a body; relative Locations resolve against the request.
    let http = ScriptedHttp::new([
        resp(303, &[("location", "/moved")], b""),
        resp(200, &[("content-type", "application/json")], b"{\"ok\":1}"),
    ]);
    let r = call_via(&f, &http, tool_call("getThing0000", json!({})), &[], later());
    assert_eq!(result_of(&r)["content"][0]["text"], "{\"ok\":1}", "{:?}", r.body);
    let seen = http.seen.borrow();
    assert_eq!(seen[1].url, "https://api.example.com/moved");
    assert_eq!((seen[1].method.as_str(), seen[1].body.clone()), ("GET", None));
    assert!(seen[1].headers.iter().any(|(k, v)| k == "x-api-key" && v == "upstream-secret-value"));
    drop(seen);
    // A loop ends after three followed redirects.
    let looping = ScriptedHttp::new((0..10).map(|_| resp(302, &[("location", "/again")], b"")));
    let r = call_via(&f, &looping, tool_call("getThing0000", json!({})), &[], later());
    assert_eq!(looping.seen.borrow().len(), 4, "the first request and three redirects");
    assert_eq!(result_of(&r)["isError"], true);
    // Another host (or scheme, or port) is never followed, so the credential stays home.
    for away in ["https://elsewhere.example/x", "http://api.example.com/x", "https://api.example.com:8443/x"] {
        let http = ScriptedHttp::new([resp(307, &[("location", away)], b"")]);
        let r = call_via(&f, &http, tool_call("getThing0000", json!({})), &[], later());
        assert_eq!(http.seen.borrow().len(), 1, "{away}");
        assert!(result_of(&r)["content"][0]["text"].as_str().unwrap().contains("another host"), "{away}");
        assert_eq!(r.audit[0].outcome, Outcome::UpstreamError);
    }
}

#[test]
fn timeouts_and_network_errors_are_tool_errors_with_an_audit_row() {
    let f = fixture(1, "none", false, false);
    let http = ScriptedHttp::new([Err(HttpError::Timeout), Err(HttpError::Network("connection reset".into()))]);
    let r = call_via(&f, &http, tool_call("getThing0000", json!({})), &[], later());
    assert!(result_of(&r)["content"][0]["text"].as_str().unwrap().contains("timed out"));
    assert_eq!((r.audit[0].outcome, r.audit[0].upstream_status), (Outcome::UpstreamError, None));
    let r = call_via(&f, &http, tool_call("getThing0000", json!({})), &[], later());
    assert!(result_of(&r)["content"][0]["text"].as_str().unwrap().contains("connection reset"));
    assert_eq!(r.audit[0].outcome, Outcome::UpstreamError);
}

#[test]
fn a_body_over_the_runtime_cap_is_cut_and_marked() {
    let f = fixture(1, "none", false, false);
    let big = format!("{{\"data\":\"{}\"}}", "x".repeat(flowcp::mcp::server::UPSTREAM_MAX_BYTES + 10));
    let http = ScriptedHttp::new([resp(200, &[("content-type", "application/json")], big.as_bytes())]);
    let r = call_via(&f, &http, tool_call("getThing0000", json!({})), &[], later());
    let text = result_of(&r)["content"][0]["text"].as_str().unwrap().to_string();
    assert!(text.len() < 200_000, "cut to the response budget: {}", text.len());
    assert!(text.contains("[truncated: showing"), "{}", &text[text.len() - 80..]);
    assert_eq!(r.audit[0].response_bytes, flowcp::mcp::server::UPSTREAM_MAX_BYTES as i64, "read up to the cap");
}

#[test]
fn a_batch_of_exactly_the_limit_is_answered_in_full() {
    let f = fixture(1, "none", false, false);
    let batch: Vec<Value> = (0..32).map(|i| json!({ "jsonrpc": "2.0", "id": i, "method": "ping" })).collect();
    let r = call(&f, Value::Array(batch.clone()), &[("mcp-protocol-version", "2025-03-26")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.unwrap().as_array().unwrap().len(), 32);
    let mut over = batch;
    over.push(json!({ "jsonrpc": "2.0", "id": 99, "method": "ping" }));
    assert_eq!(call(&f, Value::Array(over), &[("mcp-protocol-version", "2025-03-26")]).status, 400);
}

#[test]
fn an_unreadable_manifest_tells_the_operator_why_but_not_the_client() {
    let f = fixture(1, "none", false, false);
    block_on(f.kv.put(&manifest::live_key(&f.server), b"7", None)).unwrap();
    let r = call(&f, rpc("ping", json!({})), &[]);
    assert_eq!(r.status, 503);
    assert!(r.internal.as_deref().unwrap().contains("manifest version 7 is missing"), "{:?}", r.internal);
    assert!(!r.body.unwrap().to_string().contains("version 7"));
}

/// Answers 404 with the request URL as a plain-text body, like many error pages.
struct EchoUrl404;

impl Http for EchoUrl404 {
    async fn send(&self, req: &HttpRequest, _max: usize) -> Result<HttpResponse, HttpError> {
        Ok(HttpResponse {
            status: 404,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: format!("no route for {}", req.url).into_bytes(),
            truncated: false,
        })
    }
}

#[test]
fn the_result_budget_cannot_cut_the_credential_into_an_unredacted_prefix() {
    let secret = "sk_live_truncation_target_9f8e7d";
    let f = fixture(1, "api_key", false, false);
    republish(&f, |m| m.auth.placement = Some(placement("query", "api_key")));
    set_credential(&f, secret);
    // Pad the echoed URL so the 2 KiB error excerpt ends at every position inside the key.
    for pad in 1_960..2_010 {
        let r = call_via(&f, &EchoUrl404, tool_call("getThing0000", json!({ "q": "A".repeat(pad) })), &[], later());
        let text = result_of(&r)["content"][0]["text"].as_str().unwrap().to_string();
        assert!(!text.contains("sk_li"), "pad {pad}: a prefix of the key is shown: …{}", &text[text.len() - 60..]);
    }
}

/// The 2026-07-28 rules the official conformance suite (0.2.0-alpha.12, `server-stateless`)
/// checks and this runtime got wrong before.
#[test]
fn modern_era_envelope_rules_follow_the_conformance_suite() {
    let f = fixture(1, "none", false, false);
    let meta = |version: &str, caps: bool| {
        let mut m = json!({ "io.modelcontextprotocol/protocolVersion": version });
        if caps {
            m["io.modelcontextprotocol/clientCapabilities"] = json!({});
        }
        json!({ "_meta": m })
    };
    let req = |id: i64, method: &str, params: Value| json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
    let hdrs = |v: &'static str, m: &'static str| [("mcp-protocol-version", v), ("mcp-method", m)];
    // No clientCapabilities in the envelope: -32602, HTTP 400.
    let r = call(&f, req(7, "server/discover", meta("2026-07-28", false)), &hdrs("2026-07-28", "server/discover"));
    assert_eq!((r.status, r.body.unwrap()["error"]["code"].clone()), (400, json!(-32602)));
    // An unsupported version refused by the transport still answers the request's id.
    let r = call(&f, req(301, "server/discover", meta("v999.0.0", true)), &hdrs("v999.0.0", "server/discover"));
    let body = r.body.unwrap();
    assert_eq!((r.status, body["error"]["code"].clone(), body["id"].clone()), (400, json!(-32022), json!(301)));
    // Header and envelope disagree: the mismatch is reported first (-32020).
    let r = call(&f, req(8, "server/discover", meta("v999.0.0", true)), &hdrs("2026-07-28", "server/discover"));
    assert_eq!((r.status, r.body.unwrap()["error"]["code"].clone()), (400, json!(-32020)));
    // initialize was removed in the new era: 404 -32601.
    let r = call(&f, req(9, "initialize", meta("2026-07-28", true)), &hdrs("2026-07-28", "initialize"));
    assert_eq!((r.status, r.body.unwrap()["error"]["code"].clone()), (404, json!(-32601)));
    // Controls: a legacy initialize and a complete modern request still work.
    let legacy = req(
        10,
        "initialize",
        json!({ "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "c", "version": "1" } }),
    );
    assert_eq!(call(&f, legacy, &[]).body.unwrap()["result"]["protocolVersion"], "2025-11-25");
    let r = call(&f, req(11, "server/discover", meta("2026-07-28", true)), &hdrs("2026-07-28", "server/discover"));
    assert_eq!((r.status, r.body.unwrap()["result"]["resultType"].clone()), (200, json!("complete")));
}

#[test]
fn a_credential_echoed_in_the_content_type_of_a_binary_answer_is_redacted() {
    let f = fixture(1, "api_key", false, false);
    let echo = "x/upstream-secret-value";
    let http = ScriptedHttp::new([resp(200, &[("content-type", echo)], &[0xff, 0xfe, 0x00])]);
    let r = call_via(&f, &http, tool_call("getThing0000", json!({})), &[], later());
    let wire = r.body.unwrap().to_string();
    assert!(wire.contains("binary response body"), "{wire}");
    assert!(!wire.contains("upstream-secret-value"), "{wire}");
}

/// A manifest published before format 2 (snake_case keys) keeps answering: the runtime reads
/// format 1 through aliases, places the credential it references and binds it to its origin.
/// Format 2, what publish writes now, is camelCase throughout; a format from the future is
/// refused (503), never half-read.
#[test]
fn a_published_format_1_manifest_keeps_working_and_format_2_is_camel_case() {
    let f = fixture(1, "api_key", false, false);
    let key = manifest::manifest_key(&f.server, 1);
    // The same manifest as format 2 wrote it: whole, in one value.
    let mut whole = f.whole.borrow().clone();
    whole.format = manifest::WHOLE_FORMAT;
    let v2 = serde_json::to_value(&whole).unwrap();
    block_on(f.kv.put(&key, v2.to_string().as_bytes(), None)).unwrap();
    let r = call(&f, rpc("tools/call", json!({ "name": "getThing0000", "arguments": {} })), &[]);
    assert_eq!((r.status, f.http.seen.borrow().len()), (200, 1), "a format-2 manifest answers: {:?}", r.body);
    f.http.seen.borrow_mut().clear();
    let f = Fixture { cache: ManifestCache::default(), ..f };
    assert_eq!(v2["format"], 2);
    for k in ["serverId", "workspaceId", "publishedAt"] {
        assert!(v2.get(k).is_some(), "format 2 has {k}: {v2:#}");
    }
    assert!(v2["auth"].get("credentialRef").is_some() && v2["auth"].get("credentialOrigin").is_some());
    assert!(!v2.to_string().contains("_id\""), "no snake_case key left in format 2");

    // The same manifest as format 1 wrote it.
    let mut v1 = v2.clone();
    let obj = v1.as_object_mut().unwrap();
    obj.insert("format".into(), json!(1));
    for (new, old) in [("serverId", "server_id"), ("workspaceId", "workspace_id"), ("publishedAt", "published_at")] {
        let v = obj.remove(new).unwrap();
        obj.insert(old.into(), v);
    }
    let auth = obj["auth"].as_object_mut().unwrap();
    for (new, old) in [("credentialRef", "credential_ref"), ("credentialOrigin", "credential_origin")] {
        let v = auth.remove(new).unwrap();
        auth.insert(old.into(), v);
    }
    block_on(f.kv.put(&key, v1.to_string().as_bytes(), None)).unwrap();
    let f = Fixture { cache: ManifestCache::default(), ..f };
    let tool = json!({ "name": "getThing0000", "arguments": {} });
    let r = call(&f, rpc("tools/call", tool.clone()), &[]);
    assert_eq!(r.status, 200, "{:?}", r.body);
    let sent = f.http.seen.borrow().clone();
    assert_eq!(sent.len(), 1, "the format-1 manifest's tool reached the upstream");
    assert!(
        sent[0].headers.contains(&("X-Api-Key".to_string(), "upstream-secret-value".to_string())),
        "the credential referenced by credential_ref is placed: {:?}",
        sent[0].headers
    );

    // Format 3 without a layout (a whole manifest claiming the new format), and a format this
    // runtime does not know, are refused.
    let mut future = v2;
    future["format"] = json!(4);
    block_on(f.kv.put(&key, future.to_string().as_bytes(), None)).unwrap();
    let f = Fixture { cache: ManifestCache::default(), ..f };
    assert_eq!(call(&f, rpc("tools/call", tool.clone()), &[]).status, 503);
    let mut no_layout = serde_json::to_value(&whole).unwrap();
    no_layout["format"] = json!(3);
    block_on(f.kv.put(&key, no_layout.to_string().as_bytes(), None)).unwrap();
    let f = Fixture { cache: ManifestCache::default(), ..f };
    assert_eq!(call(&f, rpc("tools/call", tool), &[]).status, 503);
}

/// An upstream that answers a fixed body, possibly cut at the read cap (`truncated`).
struct Fixed {
    content_type: &'static str,
    body: String,
    truncated: bool,
}

impl Http for Fixed {
    async fn send(&self, _req: &HttpRequest, _max: usize) -> Result<HttpResponse, HttpError> {
        Ok(HttpResponse {
            status: 400,
            headers: vec![("content-type".into(), self.content_type.into())],
            body: self.body.clone().into_bytes(),
            truncated: self.truncated,
        })
    }
}

/// F2: an echo of the credential in a body that is not JSON is redacted in the spellings real
/// encoders write — `\uXXXX` for every non-alphanumeric character (either hex case), non-ASCII
/// escaped, `\/`, a JSON string escaped twice — and a body the read cap cut inside the secret
/// shows none of the secret's beginning.
#[test]
fn escaped_double_escaped_and_cut_echoes_of_the_credential_are_redacted() {
    let secret = "key_abc/123+xyz\"q\\é";
    let f = fixture(1, "api_key", false, false);
    republish(&f, |m| m.auth.placement = Some(placement("query", "api_key")));
    set_credential(&f, secret);
    let u_all = |upper: bool| -> String {
        secret
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_string()
                } else if upper {
                    format!("\\u{:04X}", c as u32)
                } else {
                    format!("\\u{:04x}", c as u32)
                }
            })
            .collect()
    };
    let once = serde_json::to_string(secret).unwrap();
    let twice = serde_json::to_string(&once).unwrap();
    let php = once.replace('/', "\\/").replace('é', "\\u00e9");
    let bodies = [
        format!("<p>bad key {}</p>", u_all(false)),
        format!("bad key {}", u_all(true)),
        format!("error: {twice}"),
        format!("error: {}", serde_json::to_string(&php).unwrap()),
        format!("not json {{\"e\": {php}"),
    ];
    for body in bodies {
        let up = Fixed { content_type: "text/html", body: body.clone(), truncated: false };
        let r = call_via(&f, &up, tool_call("getThing0000", json!({})), &[], later());
        let text = result_of(&r)["content"][0]["text"].as_str().unwrap().to_string();
        assert!(text.contains("[REDACTED]"), "nothing redacted in {body:?}: {text}");
        for secret_bit in ["key_abc", "123", "xyz"] {
            assert!(!text.contains(secret_bit), "{body:?} showed {secret_bit}: {text}");
        }
    }
    // The read cap cut the body inside the secret: no beginning of it is shown.
    let raw = "sk_live_truncation_target_9f8e7d";
    set_credential(&f, raw);
    for k in 4..raw.len() {
        for body in [format!("echo: {}", &raw[..k]), format!("{{\"echo\": \"{}", &raw[..k])] {
            let up = Fixed { content_type: "application/json", body: body.clone(), truncated: true };
            let r = call_via(&f, &up, tool_call("getThing0000", json!({})), &[], later());
            let text = result_of(&r)["content"][0]["text"].as_str().unwrap().to_string();
            assert!(!text.contains(&raw[..4]), "cut at {k}: {text}");
        }
    }
    // A body cut inside a UTF-8 sequence is still text, not a binary description.
    let up = Fixed { content_type: "text/plain", body: "caf\u{e9}".into(), truncated: true };
    let mut cut = up.body.clone().into_bytes();
    cut.pop();
    let up = Fixed { body: String::from_utf8_lossy(&cut).into_owned(), ..up };
    let r = call_via(&f, &up, tool_call("getThing0000", json!({})), &[], later());
    assert!(result_of(&r)["content"][0]["text"].as_str().unwrap().contains("caf"));
}

/// F5: a batch of invalid calls writes one audit row, not one per call, while a call that
/// reached the upstream keeps its own row.
#[test]
fn a_batch_of_invalid_calls_writes_one_audit_row() {
    let f = fixture(1, "none", false, false);
    let mut batch: Vec<Value> = (0..20)
        .map(|i| {
            json!({ "jsonrpc": "2.0", "id": i, "method": "tools/call",
                "params": { "name": "getThing0000", "arguments": { "q": i } } })
        })
        .collect();
    batch.push(json!({ "jsonrpc": "2.0", "id": 99, "method": "tools/call",
        "params": { "name": "getThing0000", "arguments": {} } }));
    let r = call(&f, Value::Array(batch), &[("mcp-protocol-version", "2025-03-26")]);
    assert_eq!(r.status, 200, "{:?}", r.body);
    let answers = r.body.as_ref().unwrap().as_array().unwrap();
    assert_eq!(answers.len(), 21);
    assert!(answers[0]["result"]["isError"] == json!(true), "{}", answers[0]);
    let outcomes: Vec<&str> = r.audit.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "invalid").count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.len(), 2, "one invalid row and the call that went out: {outcomes:?}");
}

/// Security review F4(c): an isolate's manifest cache is bounded by the memory its manifests
/// take, not only by their count; a manifest too large to keep is still served.
#[test]
fn the_manifest_cache_is_bounded_by_bytes_not_only_by_count() {
    use flowcp::mcp::server::{load_manifest, MANIFEST_CACHE_BYTES};
    let cache = ManifestCache::default();
    let words = |n: usize| Value::Array((0..n).map(|i| Value::String(format!("w{i:08}"))).collect());
    // Whole (format-2) manifests, each about 23 MB (250,000 enum entries as values, plus their
    // JSON); the last about 80 MB alone. Two fit the budget: the third evicts only the least
    // recently used.
    let mut seen: Vec<String> = Vec::new();
    for (i, n) in [250_000usize, 250_000, 250_000, 900_000].into_iter().enumerate() {
        let f = fixture(1, "none", true, false);
        let mut m = f.whole.borrow().clone();
        m.format = manifest::WHOLE_FORMAT;
        m.version = 2;
        m.tools[0].input_schema = json!({"type": "object", "properties": {"e": {"enum": words(n)}}});
        block_on(f.kv.put(&manifest::manifest_key(&f.server, 2), &serde_json::to_vec(&m).unwrap(), None)).unwrap();
        block_on(f.kv.put(&manifest::live_key(&f.server), b"2", None)).unwrap();
        let loaded = block_on(load_manifest(&f.kv, &cache, &f.server, 1_000_000 + i as i64 * 10_000))
            .expect("loads")
            .expect("published");
        assert_eq!(loaded.manifest.tools.len(), 1);
        assert!(loaded.cost > n * 72, "manifest {i}: cost {} for {n} enum values", loaded.cost);
        let held = cache.manifest_bytes();
        assert!(held <= MANIFEST_CACHE_BYTES, "after manifest {i}: {held} bytes cached");
        seen.push(f.server.clone());
    }
    assert!(!cache.holds(&seen[0], 2), "the least recently used was evicted");
    assert!(cache.holds(&seen[1], 2) && cache.holds(&seen[2], 2), "the others stay");
    assert!(!cache.holds(&seen[3], 2), "one larger than the budget is served, not kept");
}

/// Format 3: an isolate holds the heads of the servers it serves and only the shards their
/// requests needed, within [`PART_CACHE_BYTES`]; a tool too large for a shard is refused at
/// publish, and a server's tools are split into shards of bounded memory.
#[test]
fn the_part_cache_is_bounded_by_bytes_and_shards_by_memory() {
    use flowcp::mcp::server::{load_manifest, Reads, PART_CACHE_BYTES};
    let cache = ManifestCache::default();
    let words = |n: usize| Value::Array((0..n).map(|i| Value::String(format!("w{i:08}"))).collect());
    // Each server's one tool takes about 9 MB once parsed: five of them exceed the budget.
    for i in 0..6 {
        let f = fixture(3, "none", true, false);
        republish(&f, |m| {
            m.tools[1].input_schema = json!({"type": "object", "properties": {"e": {"enum": words(100_000)}}})
        });
        let now = 5_000_000 + i * 10_000;
        let loaded = block_on(load_manifest(&f.kv, &cache, &f.server, now)).expect("loads").expect("published");
        assert!(loaded.sharded() && loaded.manifest.tools.is_empty(), "the head holds no tool");
        let layout = loaded.manifest.layout.clone().unwrap();
        assert_eq!(
            layout.shards,
            ["getThing0000", "getThing0001", "getThing0002"],
            "the large tool has a shard of its own, and the next one starts another"
        );
        let reads = Reads::new(&f.kv, &cache);
        let big = block_on(loaded.tool(&reads, "getThing0001")).expect("reads").expect("found");
        assert_eq!(big.name, "getThing0001");
        assert!(block_on(loaded.tool(&reads, "getThing0003")).expect("reads").is_none());
        assert!(block_on(loaded.tool(&reads, "aaa")).expect("reads").is_none());
        let held = cache.part_bytes();
        assert!(held <= PART_CACHE_BYTES && held > 8 << 20, "after server {i}: {held} bytes of parts cached");
    }
    let f = fixture(1, "none", true, false);
    let mut m = f.whole.borrow().clone();
    m.tools[0].input_schema = json!({"type": "object", "properties": {"e": {"enum": words(250_000)}}});
    let refused = flowcp::mcp::shards::encode(&m).unwrap_err();
    assert!(refused.0.contains("getThing0000") && refused.0.contains("at most 16 MB"), "{refused:?}");
}

/// Security review S4: discovery search reads at most `MAX_QUERY_WORDS` words of at most
/// `MAX_QUERY_CHARS` characters, so a megabyte query costs what its start costs.
#[test]
fn discovery_search_reads_a_bounded_query() {
    let f = fixture(20, "none", true, true);
    let search = |q: String| {
        let r = call(&f, tool_call("search_tools", json!({ "query": q })), &[]);
        result_of(&r)["structuredContent"]["matched"].as_u64().unwrap()
    };
    assert_eq!(search(format!("{}getthing0007", "zz ".repeat(15))), 1, "the 16th word is searched");
    assert_eq!(search(format!("{}getthing0007", "zz ".repeat(16))), 0, "the 17th is not");
    assert_eq!(search(format!("{} getthing0007", "z".repeat(4 << 20))), 0, "nor what follows 256 characters");
}

/// A request with any method and exactly these headers.
fn send(f: &Fixture, method: &str, headers: &[(&str, &str)], body: &Value) -> McpResponse {
    let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let bytes = if body.is_null() { Vec::new() } else { serde_json::to_vec(body).unwrap() };
    request(f, &f.http, method, &headers, &bytes, later())
}

fn refs<'a>(h: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    h.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn header_of<'a>(r: &'a McpResponse, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Issue 12: browser-based clients. A preflight from any origin passes when the owner set no
/// list, the call with the key carries CORS headers (the 401 challenge readable too); once
/// the owner lists origins, others get 403 without CORS headers and no upstream call.
#[test]
fn browser_clients_get_cors_and_the_owner_can_restrict_origins() {
    let f = fixture(1, "api_key", false, false);
    let web = "https://inspector.example";
    let key = format!("Bearer {ACCESS_KEY}");
    let pre = send(
        &f,
        "OPTIONS",
        &[
            ("origin", web),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "authorization, content-type, mcp-protocol-version"),
        ],
        &Value::Null,
    );
    assert_eq!(pre.status, 204);
    assert_eq!(header_of(&pre, "access-control-allow-origin"), Some(web));
    assert!(header_of(&pre, "access-control-allow-methods").unwrap().contains("POST"));
    let allowed = header_of(&pre, "access-control-allow-headers").unwrap().to_ascii_lowercase();
    for h in ["authorization", "content-type", "mcp-protocol-version", "mcp-session-id", "x-api-key"] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
    assert!(header_of(&pre, "access-control-allow-credentials").is_none());
    let json_headers = [("content-type", "application/json"), ("accept", "application/json, text/event-stream")];
    let with = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        json_headers
            .iter()
            .map(|(k, v)| (*k, v.to_string()))
            .chain(extra.iter().map(|(k, v)| (*k, v.to_string())))
            .collect()
    };
    let h = with(&[("origin", web), ("authorization", &key)]);
    let r = send(&f, "POST", &refs(&h), &tool_call("getThing0000", json!({})));
    assert_eq!(r.status, 200);
    assert_eq!(result_of(&r)["isError"], Value::Null, "{:?}", r.body);
    assert_eq!(header_of(&r, "access-control-allow-origin"), Some(web));
    assert!(header_of(&r, "access-control-expose-headers").unwrap().contains("WWW-Authenticate"));
    assert_eq!(header_of(&r, "vary"), Some("Origin"));
    let h = with(&[("origin", web)]);
    let r = send(&f, "POST", &refs(&h), &tool_call("getThing0000", json!({})));
    assert_eq!(r.status, 401);
    assert!(header_of(&r, "www-authenticate").is_some());
    assert_eq!(header_of(&r, "access-control-allow-origin"), Some(web), "the challenge is readable");
    assert_eq!(f.http.seen.borrow().len(), 1);

    republish(&f, |m| m.allowed_origins = Some(vec!["https://app.example".into()]));
    let pre = send(&f, "OPTIONS", &[("origin", web), ("access-control-request-method", "POST")], &Value::Null);
    assert_eq!(pre.status, 403);
    assert!(header_of(&pre, "access-control-allow-origin").is_none());
    let h = with(&[("origin", web), ("authorization", &key)]);
    let r = send(&f, "POST", &refs(&h), &tool_call("getThing0000", json!({})));
    assert_eq!(r.status, 403);
    assert!(r.body.as_ref().unwrap()["error"]["message"].as_str().unwrap().contains("Origin"));
    assert!(header_of(&r, "access-control-allow-origin").is_none());
    assert!(r.audit.is_empty());
    assert_eq!(f.http.seen.borrow().len(), 1, "a refused origin never reaches the upstream");
    for ok in ["https://app.example", "HTTPS://APP.EXAMPLE", ORIGIN] {
        let h = with(&[("origin", ok), ("authorization", &key)]);
        let r = send(&f, "POST", &refs(&h), &tool_call("getThing0000", json!({})));
        assert_eq!(r.status, 200, "{ok}");
        assert_eq!(header_of(&r, "access-control-allow-origin"), Some(ok));
    }
    // No Origin (a desktop client): no CORS headers, unchanged.
    let h = with(&[("authorization", &key)]);
    let r = send(&f, "POST", &refs(&h), &tool_call("getThing0000", json!({})));
    assert_eq!(r.status, 200);
    assert!(header_of(&r, "access-control-allow-origin").is_none());
    // A preflight for a server that does not exist.
    let mut other = fixture(1, "none", false, false);
    other.server = "srv_missing".into();
    assert_eq!(send(&other, "OPTIONS", &[("origin", web)], &Value::Null).status, 404);
}

/// Issue 12: a 2xx that does not match the tool's output schema is an error result that says
/// the call may have taken effect, shows the (redacted) body, and is audited as
/// `unexpected_response`; a conforming one is structured content, audited `ok`.
#[test]
fn a_response_off_its_documented_shape_is_reported_and_audited_as_unexpected() {
    let f = fixture(1, "api_key", false, false);
    republish(&f, |m| {
        m.tools[0].output_schema = Some(json!({"type": "object", "properties": {
            "ok": {"type": ["boolean", "null"]}, "echo": {"type": ["integer", "null"]}}}));
    });
    // The fake upstream answers {"ok":true,"echo":"<the credential>"}: echo is not an integer.
    let r = call(&f, tool_call("getThing0000", json!({})), &[]);
    let result = result_of(&r);
    assert_eq!(result["isError"], json!(true), "{result}");
    assert!(result.get("structuredContent").is_none());
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("The API answered HTTP 200, so the call may have taken effect"), "{text}");
    assert!(text.contains("`response.echo`: expected integer or null, got string"), "{text}");
    assert!(!text.contains("upstream-secret-value") && text.contains("[REDACTED]"), "{text}");
    assert_eq!((r.audit[0].outcome, r.audit[0].upstream_status), (Outcome::UnexpectedResponse, Some(200)));
    republish(&f, |m| {
        m.tools[0].output_schema = Some(json!({"type": "object", "properties": {
            "ok": {"type": ["boolean", "null"]}, "missing": {"type": ["string", "null"]}}}));
    });
    let r = call(&f, tool_call("getThing0000", json!({})), &[]);
    let result = result_of(&r);
    assert_eq!(result["isError"], Value::Null, "{result}");
    assert_eq!(result["structuredContent"]["ok"], json!(true));
    assert_eq!(r.audit[0].outcome, Outcome::Ok);
}

/// A FlowCP access token for `server` and connection `conn`, carrying `upstream` as the end
/// user's token, as the token endpoint would issue it.
fn user_token(f: &Fixture, server: &str, conn: &str, upstream: &str, exp_ms: i64) -> String {
    let m: Manifest =
        serde_json::from_slice(&block_on(f.kv.get(&manifest::manifest_key(&f.server, 1))).unwrap().unwrap()).unwrap();
    user_token_bound(f, server, conn, upstream, exp_ms, flowcp::oauth::tokens::provider_binding(&m))
}

/// [`user_token`] issued under the given provider binding.
fn user_token_bound(
    f: &Fixture,
    server: &str,
    conn: &str,
    upstream: &str,
    exp_ms: i64,
    provider: Option<String>,
) -> String {
    use flowcp::oauth::tokens::{seal, Grant, Kind, Upstream};
    let grant = Grant {
        client_id: "fcp_cl_1".into(),
        scope: format!("mcp:{server}"),
        iat_ms: 0,
        exp_ms,
        generation: 0,
        upstream: Upstream {
            access_token: upstream.into(),
            refresh_token: None,
            expires_at_ms: None,
            scope: None,
            provider,
        },
        redirect_uri: None,
        code_challenge: None,
        jti: None,
    };
    seal(&f.keyring, Kind::Access, &format!("{ORIGIN}/mcp/{server}"), conn, &grant).unwrap()
}

/// Issue 13: an OAuth server calls the API as the signed-in user. The FlowCP token opens only
/// at its own server, unexpired and unrevoked; the upstream gets the user's token, never the
/// FlowCP one; an upstream 401 becomes the OAuth challenge so the client refreshes.
#[test]
fn an_oauth_server_calls_the_api_with_the_users_own_token() {
    let f = fixture(1, "oauth", false, false);
    let far = 9_999_999_999_999;
    let token = user_token(&f, &f.server, "conn_user1", "upstream-user-token", far);
    let bearer = format!("Bearer {token}");
    let r = call(&f, tool_call("getThing0000", json!({})), &[("authorization", &bearer)]);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(result_of(&r)["isError"], Value::Null, "{:?}", r.body);
    let sent = f.http.seen.borrow()[0].clone();
    assert!(
        sent.headers.contains(&("Authorization".to_string(), "Bearer upstream-user-token".to_string())),
        "{:?}",
        sent.headers
    );
    assert!(!format!("{sent:?}").contains("fcp_at."), "the FlowCP token never goes upstream");
    assert_eq!(r.audit[0].connection_hash, Some(flowcp::crypto::sha256_hex_truncated(b"conn_user1", 16)));

    let challenge = |r: &McpResponse| {
        r.headers.iter().find(|(k, _)| k == "www-authenticate").map(|(_, v)| v.clone()).unwrap_or_default()
    };
    // No token: the plain challenge, naming the metadata and the server scope.
    let r = call(&f, tool_call("getThing0000", json!({})), &[("authorization", "")]);
    assert_eq!(r.status, 401);
    let www = challenge(&r);
    assert!(www.contains("resource_metadata=") && www.contains(&format!("scope=\"mcp:{}\"", f.server)), "{www}");
    assert!(!www.contains("invalid_token"));
    // Tokens that must not work: another server's, expired, forged, an access key, a refresh
    // token, or one sent as X-API-Key.
    let other = user_token(&f, "srv_other", "conn_user1", "upstream-user-token", far);
    let expired = user_token(&f, &f.server, "conn_user1", "upstream-user-token", 1);
    // Issued before the owner moved the server to another provider or API origin, or unbound.
    let moved =
        user_token_bound(&f, &f.server, "conn_user1", "upstream-user-token", far, Some("0123456789abcdef".into()));
    let unbound = user_token_bound(&f, &f.server, "conn_user1", "upstream-user-token", far, None);
    for (name, value) in [
        ("authorization", format!("Bearer {moved}")),
        ("authorization", format!("Bearer {unbound}")),
        ("authorization", format!("Bearer {other}")),
        ("authorization", format!("Bearer {expired}")),
        ("authorization", format!("Bearer {}", token.replacen("conn_user1", "conn_user2", 1))),
        ("authorization", format!("Bearer {ACCESS_KEY}")),
        ("authorization", format!("Bearer {}", token.replacen("fcp_at.", "fcp_rt.", 1))),
        ("x-api-key", token.clone()),
    ] {
        let extra: Vec<(&str, &str)> = if name == "x-api-key" {
            vec![("authorization", ""), ("x-api-key", &value)]
        } else {
            vec![("authorization", &value)]
        };
        let r = call(&f, tool_call("getThing0000", json!({})), &extra);
        assert_eq!(r.status, 401, "{value:.40}");
        assert!(r.audit.is_empty());
    }
    assert_eq!(f.http.seen.borrow().len(), 1, "no refused token reached the upstream");

    // The upstream refuses the user's token: HTTP 401 with invalid_token, audited.
    let http =
        ScriptedHttp::new([resp(401, &[("content-type", "application/json")], b"{\"message\":\"Bad credentials\"}")]);
    let r = call_via(&f, &http, tool_call("getThing0000", json!({})), &[("authorization", &bearer)], later());
    assert_eq!(r.status, 401, "{:?}", r.body);
    assert!(challenge(&r).starts_with("Bearer error=\"invalid_token\""), "{}", challenge(&r));
    assert_eq!((r.audit.len(), r.audit[0].upstream_status), (1, Some(401)));
    // A scope it lacks (the upstream's own challenge, or GitHub's accepted-scopes header): 403
    // insufficient_scope with every scope the server asks for; a plain 403 stays a tool error.
    for headers in [
        vec![
            ("content-type", "application/json"),
            ("www-authenticate", "Bearer error=\"insufficient_scope\", scope=\"admin\""),
        ],
        vec![("content-type", "application/json"), ("x-accepted-oauth-scopes", "repo"), ("x-oauth-scopes", "")],
    ] {
        let http = ScriptedHttp::new([resp(403, &headers, b"{\"message\":\"Resource not accessible\"}")]);
        let r = call_via(&f, &http, tool_call("getThing0000", json!({})), &[("authorization", &bearer)], later());
        assert_eq!(r.status, 403, "{:?}", r.body);
        let www = challenge(&r);
        assert!(www.starts_with("Bearer error=\"insufficient_scope\""), "{www}");
        assert!(www.contains(&format!("scope=\"mcp:{}", f.server)) && www.contains("resource_metadata="), "{www}");
        assert_eq!(r.audit.len(), 1);
    }
    // A plain 403, GitHub's 403 for a token that has an accepted scope (SSO, say), and GitHub's
    // rate limit stay tool errors (re-authorising would not help).
    for headers in [
        vec![("content-type", "application/json")],
        vec![
            ("content-type", "application/json"),
            ("x-accepted-oauth-scopes", "repo"),
            ("x-oauth-scopes", "repo, user"),
        ],
        vec![("x-accepted-oauth-scopes", "repo"), ("x-oauth-scopes", ""), ("x-ratelimit-remaining", "0")],
    ] {
        let http = ScriptedHttp::new([resp(403, &headers, b"{\"message\":\"no\"}")]);
        let r = call_via(&f, &http, tool_call("getThing0000", json!({})), &[("authorization", &bearer)], later());
        assert_eq!((r.status, result_of(&r)["isError"].clone()), (200, Value::Bool(true)), "{headers:?}");
    }

    // A revoked connection stops working (after the isolate's short cache).
    block_on(f.kv.put(&flowcp::mcp::access::revoked_connection_key("conn_user1"), b"1", None)).unwrap();
    let r = call(&f, tool_call("getThing0000", json!({})), &[("authorization", &bearer)]);
    assert_eq!(r.status, 401);
    assert!(challenge(&r).contains("invalid_token"));
}

/// Every name `tools/list` shows, page by page, at `now`.
fn listed_names(f: &Fixture, now: i64) -> (Vec<String>, usize) {
    let (mut names, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let params = cursor.as_ref().map_or(json!({}), |c| json!({ "cursor": c }));
        let r = call_at(f, rpc("tools/list", params), &[], now);
        let result = &r.body.as_ref().unwrap()["result"];
        names.extend(result["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()));
        pages += 1;
        match result.get("nextCursor").and_then(Value::as_str) {
            Some(c) => cursor = Some(c.to_string()),
            None => return (names, pages),
        }
    }
}

#[test]
fn skills_list_their_meta_tools_first_page_through_every_tool_and_never_reach_the_upstream() {
    use flowcp::manifest::{Bundle, Skills, SkillsMode};
    let f = fixture(250, "none", true, false);
    let bundle = Bundle {
        name: "things".into(),
        description: "Some things".into(),
        tools: vec!["getThing0007".into(), "getThing0003".into()],
    };
    republish(&f, |m| m.skills = Some(Skills { mode: SkillsMode::Alongside, bundles: vec![bundle.clone()] }));
    let now = later();
    let (names, pages) = listed_names(&f, now);
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 252);
    assert_eq!(&names[..3], ["list_skills", "tool_search", "getThing0000"]);
    assert_eq!(names.last().unwrap(), "getThing0249");
    let unique: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), 252, "no tool twice across the page boundary");
    let r = call_at(&f, tool_call("tool_search", json!({ "query": "skill:things" })), &[], now);
    let result = result_of(&r);
    let found: Vec<&str> =
        result["structuredContent"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(found, ["getThing0007", "getThing0003"]);
    assert!(r.audit.is_empty(), "a meta-tool call writes no audit row");
    assert!(f.http.seen.borrow().is_empty(), "and reaches no API");
    let listed = call_at(&f, tool_call("list_skills", json!({})), &[], now);
    assert_eq!(result_of(&listed)["structuredContent"]["skills"][0]["name"], "things");

    republish(&f, |m| m.skills = Some(Skills { mode: SkillsMode::Instead, bundles: vec![bundle] }));
    let now = later();
    assert_eq!(listed_names(&f, now), (vec!["list_skills".to_string(), "tool_search".to_string()], 1));
    let direct = call_at(&f, tool_call("getThing0003", json!({})), &[], now);
    assert_eq!(direct.audit.len(), 1, "a tool is still called by name");
}

/// A workspace `ws_1` (the fixture's) on the free plan with `overrides`, in a fresh database.
fn planned_db(overrides: &str) -> crate::support::SqliteDb {
    use flowcp::store::Db;
    let db = crate::support::SqliteDb::migrated();
    block_on(db.execute(
        "INSERT INTO workspaces (id, name, created_at, plan, plan_limits) VALUES ('ws_1', 'W', 0, 'free', ?1)",
        &[overrides.into()],
    ))
    .unwrap();
    db
}

/// A tools/call through the runtime with a quota gate over `db` and `cache` at `now`.
fn metered_call(
    f: &Fixture,
    db: &crate::support::SqliteDb,
    cache: &flowcp::plans::QuotaCache,
    name: &str,
    args: Value,
    now: i64,
) -> McpResponse {
    let clock = move || now;
    let gate = flowcp::plans::Gate { db, default_plan: None, clock: &clock, cache, failure: Default::default() };
    let headers: Vec<(String, String)> = vec![
        ("content-type".into(), "application/json".into()),
        ("accept".into(), "application/json, text/event-stream".into()),
        ("authorization".into(), format!("Bearer {ACCESS_KEY}")),
    ];
    let body = serde_json::to_vec(&tool_call(name, args)).unwrap();
    request_with(f, &f.kv, &f.http, Some(&gate), "POST", &headers, &body, now)
}

/// The audit writer's flush: the rows, and with them the counters (migration 0015's trigger).
fn flush(db: &crate::support::SqliteDb, events: &[flowcp::store::audit::AuditEvent]) {
    block_on(flowcp::store::audit::insert_many(db, events)).unwrap();
}

/// Issue 16: the call after the caller's monthly quota is refused with a clear tool error; a
/// call refused before it left (bad arguments) does not count, a refused one is not counted
/// either, another isolate reading the counters refuses too, and the next month starts over.
#[test]
fn the_call_after_the_monthly_quota_is_refused_and_only_sent_calls_count() {
    let f = fixture(3, "api_key", false, false);
    let db = planned_db(r#"{"calls_per_user_month":2}"#);
    let cache = flowcp::plans::QuotaCache::default();
    let t0 = 1_796_083_200_000; // 2026-12-01T00:00:00Z
    let mut events = Vec::new();
    let ok = metered_call(&f, &db, &cache, "getThing0000", json!({}), t0);
    assert_ne!(ok.body.as_ref().unwrap()["result"]["isError"], true, "{:?}", ok.body);
    let e = &ok.audit[0];
    assert_eq!((e.plan, e.metered, e.outcome), (Some(flowcp::vocab::Plan::Free), true, Outcome::Ok));
    events.extend(ok.audit);
    // Bad arguments: refused before the quota, not counted.
    let bad = metered_call(&f, &db, &cache, "getThing0001", json!({}), t0 + 1);
    assert!(!bad.audit[0].metered);
    assert_eq!(bad.audit[0].outcome, Outcome::Invalid);
    events.extend(bad.audit);
    let second = metered_call(&f, &db, &cache, "getThing0002", json!({}), t0 + 2);
    assert_ne!(second.body.as_ref().unwrap()["result"]["isError"], true);
    events.extend(second.audit);
    let over = metered_call(&f, &db, &cache, "getThing0000", json!({}), t0 + 3);
    let result = &over.body.as_ref().unwrap()["result"];
    assert_eq!(result["isError"], true);
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("Monthly quota reached") && text.contains("2 calls a month") && text.contains("2027-01-01"),
        "{text}"
    );
    let refused = &over.audit[0];
    assert_eq!(
        (refused.outcome, refused.metered, refused.plan),
        (Outcome::Denied, false, Some(flowcp::vocab::Plan::Free))
    );
    assert_eq!(f.http.seen.borrow().len(), 2, "the refused call never left");
    events.extend(over.audit);
    flush(&db, &events);
    let month = "2026-12";
    assert_eq!(block_on(flowcp::store::usage::server_totals(&db, "ws_1", month)).unwrap(), vec![(f.server.clone(), 2)]);
    // Another isolate (an empty cache) reads the counters and refuses as well.
    let other = flowcp::plans::QuotaCache::default();
    let there = metered_call(&f, &db, &other, "getThing0000", json!({}), t0 + 4);
    assert_eq!(there.body.as_ref().unwrap()["result"]["isError"], true);
    // The next month starts over (after this isolate's cache bound).
    let next = metered_call(&f, &db, &cache, "getThing0000", json!({}), t0 + 31 * 86_400_000);
    assert_ne!(next.body.as_ref().unwrap()["result"]["isError"], true, "{:?}", next.body);
}

/// Meta-tools never count: discovery's search and describe make no audit row and pass a used-up
/// quota; its `call_tool` is a real call and is refused.
#[test]
fn meta_tools_pass_a_used_up_quota_and_real_calls_do_not() {
    let f = fixture(3, "api_key", false, true);
    let db = planned_db(r#"{"calls_per_server_month":1}"#);
    let cache = flowcp::plans::QuotaCache::default();
    let t0 = 1_796_083_200_000;
    let call_tool =
        |now| metered_call(&f, &db, &cache, "call_tool", json!({ "name": "getThing0000", "arguments": {} }), now);
    assert_ne!(call_tool(t0).body.unwrap()["result"]["isError"], true);
    for (i, name) in ["search_tools", "describe_tool", "search_tools"].iter().enumerate() {
        let r =
            metered_call(&f, &db, &cache, name, json!({ "query": "thing", "name": "getThing0000" }), t0 + 1 + i as i64);
        assert_ne!(r.body.as_ref().unwrap()["result"]["isError"], true, "{name}: {:?}", r.body);
        assert!(r.audit.is_empty(), "{name} is not metered");
    }
    let over = call_tool(t0 + 10);
    let text = over.body.unwrap()["result"]["content"][0]["text"].as_str().unwrap().to_string();
    assert!(text.contains("this server may make 1 calls a month on its free plan"), "{text}");
}

/// An unmetered workspace (no plan, no default) has no limits; a database that cannot be read
/// lets calls through (metering is not authorization) and says why.
#[test]
fn unmetered_workspaces_and_an_unreadable_database_let_calls_through() {
    let f = fixture(2, "api_key", false, false);
    let db = crate::support::SqliteDb::migrated();
    block_on(flowcp::store::Db::execute(
        &db,
        "INSERT INTO workspaces (id, name, created_at) VALUES ('ws_1', 'W', 0)",
        &[],
    ))
    .unwrap();
    let cache = flowcp::plans::QuotaCache::default();
    let r = metered_call(&f, &db, &cache, "getThing0000", json!({}), 1_796_083_200_000);
    assert_eq!((r.audit[0].plan, r.audit[0].metered), (None, true));
    let broken = crate::support::SqliteDb::migrated();
    block_on(flowcp::store::Db::execute(&broken, "DROP TABLE usage_counters", &[])).unwrap();
    let clock = || 1_796_083_200_000i64;
    let gate = flowcp::plans::Gate {
        db: &broken,
        default_plan: Some(flowcp::vocab::Plan::Free),
        clock: &clock,
        cache: &cache,
        failure: Default::default(),
    };
    let m: Manifest =
        serde_json::from_slice(&block_on(f.kv.get(&manifest::manifest_key(&f.server, 1))).unwrap().unwrap()).unwrap();
    assert_eq!(block_on(gate.reserve_for(&m.workspace_id, &m.server_id, Some("c1"))), Ok(None));
    assert!(gate.failure.borrow().as_deref().unwrap_or("").contains("usage_counters"), "{:?}", gate.failure.borrow());
}

/// The fixture's manifest written whole (format 2) as the next version: what a server published
/// before format 3 serves.
fn as_whole(f: &Fixture) {
    let live: i64 = String::from_utf8(block_on(f.kv.get(&manifest::live_key(&f.server))).unwrap().unwrap())
        .unwrap()
        .parse()
        .unwrap();
    let mut m = f.whole.borrow().clone();
    m.format = manifest::WHOLE_FORMAT;
    m.version = live + 1;
    block_on(async {
        f.kv.put(&manifest::manifest_key(&f.server, m.version), &serde_json::to_vec(&m).unwrap(), None).await.unwrap();
        f.kv.put(&manifest::live_key(&f.server), m.version.to_string().as_bytes(), None).await.unwrap();
    });
}

/// Every answer that reads the tools, from a format-3 manifest (shards, stored pages, search
/// part) and from the same manifest whole (format 2): the same JSON, byte for byte once parsed.
#[test]
fn a_sharded_manifest_answers_exactly_what_the_whole_one_answers() {
    use flowcp::manifest::{Bundle, Skills, SkillsMode};
    let cursor = |offset: usize| flowcp::cursor::encode(&[&offset.to_string()]);
    let lists = [
        json!({}),
        json!({ "cursor": cursor(100) }),
        json!({ "cursor": cursor(200) }),
        json!({ "cursor": cursor(37) }),
        json!({ "cursor": cursor(250) }),
        json!({ "cursor": cursor(251) }),
    ];
    let calls = [
        json!({ "name": "getThing0000" }),
        json!({ "name": "getThing0249", "arguments": {} }),
        json!({ "name": "getThing0250" }),
        json!({ "name": "" }),
        json!({ "name": "aaa" }),
        json!({ "name": "zzz" }),
    ];
    let bundle = Bundle {
        name: "some".into(),
        description: "d".into(),
        tools: vec!["getThing0007".into(), "nope".into(), "getThing0199".into()],
    };
    let skills = |mode| Some(Skills { mode, bundles: vec![bundle.clone()] });
    let setups = [
        ("plain", false, None),
        ("discovery", true, None),
        ("skills alongside", false, skills(SkillsMode::Alongside)),
        ("skills instead", false, skills(SkillsMode::Instead)),
    ];
    for (what, discovery, skills) in setups {
        let f = fixture(250, "none", true, false);
        republish(&f, |m| {
            m.discovery = discovery;
            m.skills = skills;
        });
        let mut asks: Vec<Value> = lists.iter().map(|p| rpc("tools/list", p.clone())).collect();
        asks.extend(calls.iter().map(|p| rpc("tools/call", p.clone())));
        for (tool, args) in [
            ("search_tools", json!({ "query": "thing 0012" })),
            ("search_tools", json!({ "query": "get", "limit": 50 })),
            ("describe_tool", json!({ "name": "getThing0123" })),
            ("describe_tool", json!({ "name": "getThing9999" })),
            ("call_tool", json!({ "name": "getThing0042", "arguments": {} })),
            ("tool_search", json!({ "query": "skill:some" })),
            ("tool_search", json!({ "query": "select:getThing0150,nope,getThing0001" })),
            ("tool_search", json!({ "query": "thing 0033" })),
            ("list_skills", json!({})),
        ] {
            asks.push(rpc("tools/call", json!({ "name": tool, "arguments": args })));
        }
        asks.push(rpc("initialize", json!({ "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } })));
        let sharded: Vec<McpResponse> = asks.iter().map(|a| call(&f, a.clone(), &[])).collect();
        assert!(
            sharded[0].page.is_some() || what.contains("instead") || what == "discovery",
            "{what}: the first page is sent as stored bytes"
        );
        // A batch answers with values, not stored bytes, and the same entries.
        let batch = call(&f, Value::Array(vec![asks[0].clone()]), &[("mcp-protocol-version", "2025-03-26")]);
        assert!(batch.page.is_none(), "{what}");
        let sent = f.http.seen.borrow().len();
        as_whole(&f);
        let whole: Vec<McpResponse> = asks.iter().map(|a| call(&f, a.clone(), &[])).collect();
        for ((ask, s), w) in asks.iter().zip(&sharded).zip(&whole) {
            assert!(w.page.is_none());
            let mut w = w.clone();
            if ask["method"] == "initialize" {
                // The one difference: the whole manifest is the next version.
                w.body.as_mut().unwrap()["result"]["serverInfo"]["version"] = json!("2");
            }
            assert_eq!((s.status, &s.body), (w.status, &w.body), "{what}: {ask}");
        }
        let batch_whole = call(&f, Value::Array(vec![asks[0].clone()]), &[("mcp-protocol-version", "2025-03-26")]);
        assert_eq!(batch.body, batch_whole.body, "{what}");
        assert_eq!(f.http.seen.borrow().len(), 2 * sent, "{what}: the same upstream calls");
    }
}

/// A part of a format-3 manifest that is missing or corrupt in KV answers an internal JSON-RPC
/// error (try again) and tells the operator which, never a panic or another tool; a head whose
/// layout does not fit it is not served at all.
#[test]
fn a_missing_or_corrupt_part_is_an_internal_error_and_a_bad_layout_is_refused() {
    let f = fixture(150, "none", true, false);
    let head_of = |f: &Fixture| -> Manifest {
        serde_json::from_slice(&block_on(f.kv.get(&manifest::manifest_key(&f.server, 1))).unwrap().unwrap()).unwrap()
    };
    let page2 = rpc("tools/list", json!({ "cursor": flowcp::cursor::encode(&["100"]) }));
    let cases: [(&str, Option<&[u8]>); 5] = [
        ("s1", None),
        ("s1", Some(b"[{\"name\":1}]")),
        ("p1", Some(b"{\"not\":\"a page\"}")),
        ("p1", Some(b"[1,")),
        ("p1", None),
    ];
    for (part, bad) in cases {
        let f = fixture(150, "none", true, false);
        let key = head_of(&f).part_key(part).unwrap();
        match bad {
            Some(b) => block_on(f.kv.put(&key, b, None)).unwrap(),
            None => block_on(f.kv.delete(&key)).unwrap(),
        }
        let ask = if part == "s1" { tool_call("getThing0120", json!({})) } else { page2.clone() };
        let r = call(&f, ask, &[]);
        let body = r.body.clone().unwrap();
        assert_eq!((r.status, &body["error"]["code"]), (200, &json!(-32603)), "{key}: {body}");
        assert!(r.internal.as_deref().unwrap_or("").contains("manifest of"), "{key}: {:?}", r.internal);
        assert!(f.http.seen.borrow().is_empty());
        // What does not need the part still answers.
        assert_eq!(call(&f, tool_call("getThing0000", json!({})), &[]).status, 200, "{key}");
    }
    // Heads whose layout does not fit: shards out of order, a missing page, a tool count the
    // shards cannot hold.
    let head: Value =
        serde_json::from_slice(&block_on(f.kv.get(&manifest::manifest_key(&f.server, 1))).unwrap().unwrap()).unwrap();
    for (i, edit) in [
        json!({ "shards": ["getThing0100", "getThing0000"] }),
        json!({ "pages": 1 }),
        json!({ "tools": 900 }),
        json!({ "search": true }),
        json!({ "listed": 99 }),
        json!({ "tools": u64::MAX }),
        json!({ "id": "../../other" }),
    ]
    .into_iter()
    .enumerate()
    {
        let mut h = head.clone();
        for (k, v) in edit.as_object().unwrap() {
            h["layout"][k] = v.clone();
        }
        let v = 10 + i as i64;
        h["version"] = json!(v);
        block_on(f.kv.put(&manifest::manifest_key(&f.server, v), h.to_string().as_bytes(), None)).unwrap();
        block_on(f.kv.put(&manifest::live_key(&f.server), v.to_string().as_bytes(), None)).unwrap();
        assert_eq!(call(&f, rpc("tools/list", json!({})), &[]).status, 503, "{edit}");
    }
    // A head stored under another version than it names (a copy): refused too.
    block_on(f.kv.put(&manifest::manifest_key(&f.server, 30), &serde_json::to_vec(&head).unwrap(), None)).unwrap();
    block_on(f.kv.put(&manifest::live_key(&f.server), b"30", None)).unwrap();
    assert_eq!(call(&f, rpc("tools/list", json!({})), &[]).status, 503);
}

/// One request reads at most `MAX_PART_LOADS` parts from KV: naming tools across more shards
/// is refused with a clear answer (cached parts are free), so a request cannot make an isolate
/// read and parse a whole large server.
#[test]
fn one_request_reads_a_bounded_number_of_parts() {
    use flowcp::manifest::{Bundle, Skills, SkillsMode};
    use flowcp::mcp::server::MAX_PART_LOADS;
    let f = fixture(2_000, "none", true, false);
    let bundle = Bundle { name: "all".into(), description: "d".into(), tools: vec!["getThing0000".into()] };
    republish(&f, |m| m.skills = Some(Skills { mode: SkillsMode::Instead, bundles: vec![bundle] }));
    let select = |shards: std::ops::Range<usize>| {
        let names: Vec<String> = shards.map(|k| format!("getThing{:04}", k * 100 + 5)).collect();
        tool_call("tool_search", json!({ "query": format!("select:{}", names.join(",")) }))
    };
    let many = call(&f, select(0..MAX_PART_LOADS as usize + 1), &[]);
    let body = many.body.unwrap();
    assert_eq!(body["error"]["code"], -32602, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("too many parts"), "{body}");
    // Within the budget it answers (and what it read is now cached, so it answers again).
    for _ in 0..2 {
        let r = call(&f, select(0..MAX_PART_LOADS as usize), &[]);
        let found = &r.body.as_ref().unwrap()["result"]["structuredContent"];
        assert_eq!(found["tools"].as_array().map(Vec::len), Some(MAX_PART_LOADS as usize), "{:?}", r.body);
    }
}

/// A tools/call through `kv`, at a time past every cache of the fixture.
fn call_through(f: &Fixture, kv: &impl Kv, http: &impl Http, name: &str) -> McpResponse {
    let headers: Vec<(String, String)> = vec![
        ("content-type".into(), "application/json".into()),
        ("accept".into(), "application/json, text/event-stream".into()),
        ("authorization".into(), format!("Bearer {ACCESS_KEY}")),
    ];
    let body = serde_json::to_vec(&tool_call(name, json!({}))).unwrap();
    request_with(f, kv, http, None, "POST", &headers, &body, later())
}

/// A KV read that throws or returns garbage, wherever the hot path reads: the server's manifest
/// and live pointer, the access key's mirror, the upstream credential. Each fails closed: an
/// error answer (never a panic), no upstream request, and no call audited as done.
#[test]
fn kv_faults_on_the_hot_path_fail_closed_without_reaching_the_upstream() {
    let f = fixture(3, "api_key", false, false);
    type KeyOf = fn(&str) -> String;
    let cases: [(&str, KeyOf); 4] = [
        ("the manifest", |srv| format!("manifest:{srv}:")),
        ("the live pointer", manifest::live_key),
        ("the access key's mirror", |_| manifest::access_key_key(&sha256_hex(ACCESS_KEY.as_bytes()))),
        ("the credential", manifest::credential_key),
    ];
    for (what, prefix_of) in cases {
        for fault in [KvFault::Throw, KvFault::Corrupt] {
            // A fresh fixture (and isolate cache) each time: the fault is met, not a cached read.
            let f = fixture(3, "api_key", false, false);
            let kv = FaultyKv::reads(&f.kv, &prefix_of(&f.server), fault);
            let r = call_through(&f, &kv, &f.http, "getThing0000");
            let body = r.body.clone().unwrap_or(Value::Null);
            let refused = r.status >= 400 || body["error"].is_object() || body["result"]["isError"] == true;
            assert!(refused, "{what}, {fault:?}: {} {body}", r.status);
            assert!(f.http.seen.borrow().is_empty(), "{what}, {fault:?}: the upstream was called");
            assert!(
                r.audit.iter().all(|e| e.outcome != Outcome::Ok),
                "{what}, {fault:?}: audited as done: {:?}",
                r.audit
            );
            let text = body.to_string();
            assert!(!text.contains("upstream-secret-value") && !text.contains(ACCESS_KEY), "{what}: {text}");
        }
    }
    // Control: the same call through a healthy KV reaches the upstream.
    let r = call_through(&f, &f.kv, &f.http, "getThing0000");
    assert_ne!(result_of(&r)["isError"], true, "{:?}", r.body);
    assert_eq!(f.http.seen.borrow().len(), 1);
}

/// Upstream faults: a timeout, a connection reset mid-body, a 5xx with and without a body. Each
/// is a tool error the model can read (JSON-RPC success carrying `isError`), audited once as the
/// upstream's failure. And a 2xx cut at the read limit, which says so.
#[test]
fn upstream_faults_are_tool_errors_audited_once() {
    struct Scripted(Result<HttpResponse, HttpError>);
    impl Http for Scripted {
        async fn send(&self, _req: &HttpRequest, _max: usize) -> Result<HttpResponse, HttpError> {
            self.0.clone()
        }
    }
    let answer = |status: u16, body: &str, truncated: bool| HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
        truncated,
    };
    let cases = [
        ("a timeout", Err(HttpError::Timeout)),
        ("a reset mid-body", Err(HttpError::Network("connection reset by peer after 512 bytes".into()))),
        ("a 503", Ok(answer(503, "{\"error\": \"overloaded\"}", false))),
        ("a 500 with no body", Ok(answer(500, "", false))),
    ];
    for (what, outcome) in cases {
        let f = fixture(3, "api_key", false, false);
        let r = call_through(&f, &f.kv, &Scripted(outcome), "getThing0000");
        assert_eq!(r.status, 200, "{what}: {:?}", r.body);
        let result = result_of(&r);
        assert_eq!(result["isError"], true, "{what}: {result}");
        assert!(result["content"][0]["text"].as_str().is_some_and(|t| !t.is_empty()), "{what}: {result}");
        assert_eq!(r.audit.len(), 1, "{what}");
        assert!(
            matches!(r.audit[0].outcome, Outcome::UpstreamError | Outcome::UnexpectedResponse),
            "{what}: {:?}",
            r.audit[0].outcome
        );
    }
    // A 2xx the transport stopped reading at its size limit: the call went through, so it is no
    // error, but the model is told it sees only the start (the engine's tests cover the output
    // schema case, where a fragment is never structured content).
    let f = fixture(3, "api_key", false, false);
    let cut = Scripted(Ok(answer(200, "{\"id\": 7, \"name\": \"ab", true)));
    let r = call_through(&f, &f.kv, &cut, "getThing0000");
    let result = result_of(&r);
    assert!(result.get("isError").is_none(), "{result}");
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.ends_with("…[truncated: showing 21 of more than 4194304 bytes]"), "{text}");
    assert_eq!((r.audit.len(), r.audit[0].outcome), (1, Outcome::Ok));
}
