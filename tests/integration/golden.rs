//! Golden MCP protocol files: `tests/golden/mcp/*.json`, each a request (method, headers,
//! body) and the exact response (status, headers, body) of one published server. One test
//! drives them all; `FLOWCP_SNAPSHOT=overwrite` rewrites the responses (and then fails, so
//! they are reviewed before the next run).

use flowcp::crypto::{sha256_hex, Keyring};
use flowcp::manifest::{self, Manifest, ManifestAuth};
use flowcp::mcp::server::{handle, ManifestCache, McpRequest, Runtime};
use flowcp::net::{FetchPolicy, Http, HttpError, HttpRequest, HttpResponse};
use flowcp::store::{block_on, Kv, MemoryKv};
use flowcp::vocab::AuthMode;
use serde_json::{json, Value};

const SERVER: &str = "srv_golden";
const ACCESS_KEY: &str = "fcp_sk_golden_key_0001";

/// `/things/0` answers 200, anything else 404.
struct Upstream;

impl Http for Upstream {
    async fn send(&self, req: &HttpRequest, _max: usize) -> Result<HttpResponse, HttpError> {
        let (status, body) = if req.url.starts_with("https://api.example.com/things/0") {
            (200, json!({ "ok": true, "id": 0 }))
        } else {
            (404, json!({ "error": "no such thing" }))
        };
        Ok(HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            truncated: false,
        })
    }
}

fn published() -> (MemoryKv, Keyring) {
    let doc = json!({
        "openapi": "3.0.3", "info": { "title": "Things", "version": "1" }, "servers": [{ "url": "https://api.example.com" }],
        "paths": {
            "/things/0": { "get": { "operationId": "getThing0", "summary": "Get thing zero",
                "parameters": [{ "name": "q", "in": "query", "schema": { "type": "string" } }],
                "responses": { "200": { "description": "ok" } } } },
            "/things/1": { "get": { "operationId": "getThing1", "summary": "Get thing one",
                "parameters": [{ "name": "q", "in": "query", "required": true, "schema": { "type": "string" } }],
                "responses": { "200": { "description": "ok" } } } }
        }
    });
    let tools = flowcp::tools::import(&serde_json::to_vec(&doc).unwrap()).unwrap().tools;
    let m = Manifest {
        format: manifest::FORMAT,
        server_id: SERVER.into(),
        workspace_id: "ws_golden".into(),
        version: 1,
        published_at: 0,
        name: "Things".into(),
        auth: ManifestAuth {
            mode: AuthMode::None,
            public: false,
            placement: None,
            credential_ref: None,
            credential_origin: None,
            scopes: vec![],
            oauth: None,
        },
        discovery: false,
        base_url: None,
        allowed_origins: None,
        skills: None,
        usage_target: None,
        store: None,
        tools,
        layout: None,
    };
    let kv = MemoryKv::default();
    crate::support::put_manifest(&kv, &m);
    block_on(async {
        kv.put(&manifest::live_key(SERVER), b"1", None).await.unwrap();
        let mirror = json!({ "server_id": SERVER, "key_id": "key_golden" }).to_string();
        kv.put(&manifest::access_key_key(&sha256_hex(ACCESS_KEY.as_bytes())), mirror.as_bytes(), None).await.unwrap();
    });
    (kv, Keyring::parse("k1:3333333333333333333333333333333333333333333333333333333333333333").unwrap())
}

fn respond(request: &Value) -> Value {
    let (kv, keyring) = published();
    let headers: Vec<(String, String)> = request["headers"]
        .as_object()
        .map(|h| h.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    let body = match request.get("body") {
        Some(b) => serde_json::to_vec(b).unwrap(),
        None => Vec::new(),
    };
    let clock = || 1_800_000_000_000i64;
    let cache = ManifestCache::default();
    let rt = Runtime {
        kv: &kv,
        cache: &cache,
        http: &Upstream,
        keyring: &keyring,
        fetch_policy: FetchPolicy::default(),
        origin: "https://flowcp.example".into(),
        clock: &clock,
        upstream_timeout_ms: 1000,
        key_gate: None,
        quota: None,
    };
    let method = request["method"].as_str().unwrap_or("POST");
    let r = block_on(handle(&rt, SERVER, &McpRequest { method, headers: &headers, body: &body }));
    let headers: serde_json::Map<String, Value> =
        r.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone()))).collect();
    json!({
        "status": r.status,
        "headers": headers,
        "body": r.body_json(),
        "audit": r.audit.iter().map(|e| json!({ "tool": e.tool_name, "outcome": e.outcome.as_str(), "upstream_status": e.upstream_status })).collect::<Vec<_>>(),
    })
}

#[test]
fn golden_mcp_exchanges_match() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/mcp");
    let overwrite = std::env::var("FLOWCP_SNAPSHOT").as_deref() == Ok("overwrite");
    let mut files: Vec<_> = std::fs::read_dir(dir).expect("golden dir").map(|e| e.expect("entry").path()).collect();
    files.sort();
    assert!(files.len() >= 15, "only {} golden files", files.len());
    let (mut rewritten, mut failures) = (0, Vec::new());
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let mut golden: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let actual = respond(&golden["request"]);
        if golden["response"] == actual {
            continue;
        }
        if overwrite {
            golden["response"] = actual;
            std::fs::write(&path, serde_json::to_string_pretty(&golden).unwrap() + "\n").expect("write");
            rewritten += 1;
        } else {
            failures.push(format!("{}:\n  expected {}\n  actual   {}", path.display(), golden["response"], actual));
        }
    }
    assert!(failures.is_empty(), "golden MCP exchanges differ:\n{}", failures.join("\n"));
    assert_eq!(rewritten, 0, "{rewritten} golden file(s) rewritten; review them and re-run without FLOWCP_SNAPSHOT");
}
