//! Fuzz the MCP endpoint whole: a published `api_key` server (manifest, live pointer, access
//! key and sealed credential in an in-memory KV) and a fake upstream, with fuzzed requests.
//! Input: `<selector byte><body>`; the selector picks the HTTP method, the headers and the
//! upstream's answer.
//!
//! Invariants: nothing panics; no 5xx (the stores are healthy, so a 5xx is our bug); every JSON
//! body is a JSON-RPC 2.0 answer (one, or a batch of them); the owner's upstream secret never
//! appears in an answer, even though the fake upstream echoes it back.

#![no_main]

#[path = "common.rs"]
mod common;

use std::cell::Cell;

use flowcp::crypto::{aad_server_credential, sha256_hex, Keyring};
use flowcp::manifest::{self, Manifest, ManifestAuth, Placement};
use flowcp::mcp::server::{handle, ManifestCache, McpRequest, Runtime};
use flowcp::net::{FetchPolicy, Http, HttpError, HttpRequest, HttpResponse};
use flowcp::store::{block_on, Kv, MemoryKv};
use flowcp::vocab::AuthMode;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const KEY: &str = "k1:1111111111111111111111111111111111111111111111111111111111111111";
const ACCESS_KEY: &str = "fcp_sk_fuzz_key";
const SERVER: &str = "srv_fuzz";

/// Answers as the selector says; the JSON answers echo the request, credential included.
struct Upstream {
    answer: Cell<u8>,
}

impl Http for Upstream {
    async fn send(&self, req: &HttpRequest, max: usize) -> Result<HttpResponse, HttpError> {
        let echo = json!({ "id": 1, "name": "Rex", "url": req.url, "headers": req.headers }).to_string().into_bytes();
        let (status, body, truncated) = match self.answer.get() % 8 {
            0 => (200, echo, false),
            1 => (200, b"{}".to_vec(), false),
            2 => (201, b"[1,2,3]".to_vec(), false),
            3 => (404, echo, false),
            4 => (500, Vec::new(), false),
            5 => (200, vec![0xff, 0xfe, 0x00, 0xc3], false),
            6 => (200, echo[..echo.len().min(max).min(40)].to_vec(), true),
            _ => return Err(HttpError::Timeout),
        };
        Ok(HttpResponse { status, headers: vec![("content-type".into(), "application/json".into())], body, truncated })
    }
}

struct World {
    kv: MemoryKv,
    cache: ManifestCache,
    keyring: Keyring,
    http: Upstream,
    now: Cell<i64>,
}

fn world() -> World {
    let keyring = Keyring::parse(KEY).expect("the key parses");
    let kv = MemoryKv::default();
    let m = Manifest {
        format: manifest::FORMAT,
        server_id: SERVER.into(),
        workspace_id: "ws_fuzz".into(),
        version: 1,
        published_at: 0,
        name: "Fuzz".into(),
        auth: ManifestAuth {
            mode: AuthMode::ApiKey,
            public: false,
            placement: Some(Placement { location: serde_json::from_value(json!("header")).expect("location"), name: "X-Api-Key".into() }),
            credential_ref: Some(manifest::credential_key(SERVER)),
            credential_origin: Some("https://api.example.com".into()),
            scopes: vec![],
            oauth: None,
        },
        discovery: false,
        base_url: None,
        allowed_origins: None,
        skills: None,
        usage_target: None,
        store: None,
        tools: common::tools(),
        layout: None,
    };
    let parts = flowcp::mcp::shards::encode(&m).expect("the manifest encodes");
    block_on(async {
        for (key, bytes) in parts {
            kv.put(&key, &bytes, None).await.expect("put");
        }
        kv.put(&manifest::live_key(SERVER), b"1", None).await.expect("put");
        let mirror = json!({ "server_id": SERVER, "key_id": "key_1" }).to_string();
        kv.put(&manifest::access_key_key(&sha256_hex(ACCESS_KEY.as_bytes())), mirror.as_bytes(), None).await.expect("put");
        let sealed = keyring.seal(common::SECRET.as_bytes(), &aad_server_credential(SERVER)).expect("seal");
        kv.put(&manifest::credential_key(SERVER), sealed.as_bytes(), None).await.expect("put");
    });
    World { kv, cache: ManifestCache::default(), keyring, http: Upstream { answer: Cell::new(0) }, now: Cell::new(1_800_000_000_000) }
}

thread_local! {
    static WORLD: World = world();
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    WORLD.with(|w| {
        w.http.answer.set(selector >> 3);
        // Later each time: past the isolate's short KV cache now and then.
        w.now.set(w.now.get() + 300);
        let now = w.now.get();
        let clock = move || now;
        let rt = Runtime {
            kv: &w.kv,
            cache: &w.cache,
            http: &w.http,
            keyring: &w.keyring,
            fetch_policy: FetchPolicy::default(),
            origin: "https://flowcp.example".into(),
            clock: &clock,
            upstream_timeout_ms: 1000,
            key_gate: None,
            quota: None,
        };
        let mut headers: Vec<(String, String)> = vec![("host".into(), "flowcp.example".into())];
        let method = match selector & 7 {
            6 => "GET",
            7 => "DELETE",
            _ => "POST",
        };
        if selector & 1 == 0 {
            headers.push(("content-type".into(), "application/json".into()));
            headers.push(("accept".into(), "application/json, text/event-stream".into()));
        }
        if selector & 2 == 0 {
            headers.push(("authorization".into(), format!("Bearer {ACCESS_KEY}")));
        }
        if selector & 4 == 0 {
            headers.push(("mcp-protocol-version".into(), "2025-11-25".into()));
        }
        let r = block_on(handle(&rt, SERVER, &McpRequest { method, headers: &headers, body }));
        assert!(r.status < 500, "a {} for {:?}: {:?}", r.status, String::from_utf8_lossy(body), r.internal);
        let bytes = r.body_bytes().unwrap_or_default();
        if !body.windows(6).any(|x| x == b"secret") {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(common::SECRET), "the secret reached the client: {text}");
            for (k, v) in &r.headers {
                assert!(!v.contains(common::SECRET), "the secret is in the header {k}");
            }
        }
        if !bytes.is_empty() {
            let v: Value = serde_json::from_slice(&bytes).expect("a JSON body");
            match &v {
                Value::Array(items) => items.iter().for_each(check_jsonrpc),
                one => check_jsonrpc(one),
            }
        }
    });
});

fn check_jsonrpc(v: &Value) {
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    let has = |k: &str| v.get(k).is_some();
    assert!(has("result") != has("error"), "one of result and error: {v}");
    if let Some(e) = v.get("error") {
        assert!(e["code"].is_i64() && e["message"].is_string(), "{v}");
    }
}
