//! Host command-line front end of the OpenAPI engine (a thin shell over `flowcp::tools` and
//! `flowcp::invoke`).
//!
//! ```text
//! flowcp tools FILE                      tools as MCP shows them + warnings (JSON)
//! flowcp report FILE                     the full import report (JSON)
//! flowcp plan FILE TOOL 'ARGS_JSON' [BASE_URL]   the upstream request (JSON)
//! flowcp bench-import FILE [RUNS]        time the import (parse + convert + each tool as JSON, in
//!                                        batches, as the Worker stores them)
//! flowcp hostile-docs DIR                write the amplifying documents (F3) as DIR/NAME.json
//! flowcp large-doc N FILE               write a generated document of N operations (issue 18)
//! flowcp bench-token [RUNS]              time opening an OAuth access token (2 KB upstream JWT)
//! flowcp bench-user-key [RUNS]           time the user_key gate on an isolate-cache hit, and the
//!                                        api_key check, natively
//! flowcp openapi                         the owner API's OpenAPI document (the dashboard's types)
//! ```
//! FILE may be gzip-compressed (`.gz`). Errors: exit code 1 and one line on stderr.

use std::io::Read;
use std::process::ExitCode;
use std::time::Instant;

use flowcp::invoke::{build_request, validate_tool_arguments, Credential};
use flowcp::openapi::MAX_DOCUMENT_BYTES;
use flowcp::tools::{import, ImportReport};
use serde_json::{json, Value};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("flowcp: {}", msg.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let cmd = args.first().map(String::as_str).unwrap_or("");
    let file = args.get(1).ok_or_else(usage);
    match cmd {
        "tools" => tools_cmd(&load(file?)?),
        "report" => pretty(&serde_json::to_value(load(file?)?).map_err(|e| e.to_string())?),
        "plan" => {
            let report = load(file?)?;
            let tool = args.get(2).ok_or_else(usage)?;
            let raw = args.get(3).map(String::as_str).unwrap_or("{}");
            plan_cmd(&report, tool, raw, args.get(4).map(String::as_str))
        }
        "bench-import" => {
            let runs = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(5usize);
            bench(file?, runs)
        }
        "openapi" => pretty(&flowcp::api::contract::generate(flowcp::api::contract::COMMITTED_ORIGIN)),
        "bench-token" => bench_token(args.get(1).and_then(|r| r.parse().ok()).unwrap_or(10_000usize)),
        "bench-user-key" => bench_user_key(args.get(1).and_then(|r| r.parse().ok()).unwrap_or(10_000usize)),
        "hostile-docs" => {
            let dir = std::path::Path::new(file?);
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let mut written = Vec::new();
            for (name, bytes) in flowcp::tools::hostile_documents() {
                let path = dir.join(format!("{name}.json"));
                std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
                written.push(path.display().to_string());
            }
            Ok(written.join("\n"))
        }
        "large-doc" => {
            let ops: usize = file?.parse().map_err(|_| usage())?;
            let path = args.get(2).ok_or_else(usage)?;
            let bytes = flowcp::tools::large_document(ops);
            std::fs::write(path, &bytes).map_err(|e| format!("{path}: {e}"))?;
            Ok(format!("{path}: {ops} operations, {} bytes", bytes.len()))
        }
        _ => Err(usage()),
    }
}

fn usage() -> String {
    "usage: flowcp tools FILE | report FILE | plan FILE TOOL 'ARGS_JSON' [BASE_URL] | bench-import FILE [RUNS] | hostile-docs DIR | large-doc N FILE | bench-token [RUNS] | bench-user-key [RUNS] | openapi".into()
}

/// What opening a FlowCP access token costs the runtime per OAuth call (natively; the Worker's
/// wasm is slower by a small factor): one that wraps a 2 KB upstream JWT, the size of a large
/// Entra ID access token.
fn bench_token(runs: usize) -> Result<String, String> {
    use flowcp::oauth::tokens::{open, seal, Grant, Kind, Upstream};
    let ring = flowcp::crypto::Keyring::parse("k1:3333333333333333333333333333333333333333333333333333333333333333")
        .map_err(|e| e.to_string())?;
    let jwt = format!("eyJ{}", "x".repeat(2045));
    let grant = Grant {
        client_id: "fcp_cl_0123456789abcdefghij".into(),
        scope: "mcp:srv_0123456789 repo read:user".into(),
        iat_ms: 0,
        exp_ms: i64::MAX / 2,
        generation: 3,
        upstream: Upstream {
            access_token: jwt,
            refresh_token: Some(format!("ghr_{}", "y".repeat(60))),
            expires_at_ms: Some(i64::MAX / 2),
            scope: Some("repo read:user".into()),
            provider: Some("0123456789abcdef".into()),
        },
        redirect_uri: None,
        code_challenge: None,
        jti: None,
    };
    let audience = "https://flowcp.example/mcp/srv_0123456789";
    let token = seal(&ring, Kind::Access, audience, "conn_0123456789abcdef", &grant).map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(runs.max(1));
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        open(&ring, Kind::Access, audience, &token, 1).map_err(|e| format!("{e:?}"))?;
        times.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let median_us = times[times.len() / 2];
    Ok(json!({ "token_bytes": token.len(), "runs": times.len(), "median_us": (median_us * 10.0).round() / 10.0 })
        .to_string())
}

/// What a `user_key` call costs the gate when the isolate has the user cached (the common case):
/// the HS256 key verified, the cached epoch compared and the 2 KB access token opened; and what
/// an `api_key` call's key check costs (SHA-256 of the key, the cached mirror parsed). Natively;
/// the Worker's wasm is slower by a small factor.
fn bench_user_key(runs: usize) -> Result<String, String> {
    use flowcp::auth::user_key::{mint, Claims, TokenSecrets};
    use flowcp::mcp::server::KeyGate;
    use flowcp::oauth::keys::{Gate, GateCache, Snapshot};
    use flowcp::store::key_users::{KeyUser, Status};
    use flowcp::store::{block_on, MemoryKv, Row, SqlValue, Statement, StoreError};
    struct NoDb;
    impl flowcp::store::Db for NoDb {
        async fn execute(&self, _: &str, _: &[SqlValue]) -> Result<u64, StoreError> {
            Err(StoreError::Backend("not on a cache hit".into()))
        }
        async fn query(&self, _: &str, _: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
            Err(StoreError::Backend("not on a cache hit".into()))
        }
        async fn batch(&self, _: &[Statement<'_>]) -> Result<Vec<u64>, StoreError> {
            Err(StoreError::Backend("not on a cache hit".into()))
        }
    }
    struct NoHttp;
    impl flowcp::net::Http for NoHttp {
        async fn send(
            &self,
            _: &flowcp::net::HttpRequest,
            _: usize,
        ) -> Result<flowcp::net::HttpResponse, flowcp::net::HttpError> {
            Err(flowcp::net::HttpError::Network("not on a cache hit".into()))
        }
    }
    let origin = "https://flowcp.example";
    let ring = flowcp::crypto::Keyring::parse("k1:3333333333333333333333333333333333333333333333333333333333333333")
        .map_err(|e| e.to_string())?;
    let secrets = TokenSecrets::parse(&format!("t1:{}", "44".repeat(32))).map_err(|e| format!("{e:?}"))?;
    let m: flowcp::manifest::Manifest = serde_json::from_value(json!({
        "format": 2, "serverId": "srv_0123456789", "workspaceId": "ws_1", "version": 1, "publishedAt": 0, "name": "B",
        "auth": { "mode": "user_key", "public": false, "credentialOrigin": "https://api.example",
                  "oauth": { "authorizeUrl": "https://login.example/a", "tokenUrl": "https://login.example/t", "clientId": "app" } },
        "discovery": false, "tools": []
    }))
    .map_err(|e| e.to_string())?;
    let provider = flowcp::oauth::tokens::provider_binding(&m).ok_or("no binding")?;
    let user = "ku_0123456789abcdefghijkl";
    let held = json!({ "token": format!("eyJ{}", "x".repeat(2045)), "provider": provider });
    let access = ring
        .seal(
            &serde_json::to_vec(&held).map_err(|e| e.to_string())?,
            &flowcp::oauth::keys::aad("access", &m.server_id, user),
        )
        .map_err(|e| e.to_string())?;
    let row = KeyUser {
        server_id: m.server_id.clone(),
        user_id: user.into(),
        user_hash: flowcp::oauth::keys::user_hash(user),
        workspace_id: "ws_1".into(),
        epoch: 1,
        status: Status::Active,
        refresh_sealed: None,
        access_sealed: Some(access),
        access_expires_at: None,
        generation: 0,
        lease_until: None,
        created_at: 0,
        signed_in_at: 0,
        key_issued_at: None,
    };
    let now_s = 1_800_000_000;
    let key = mint(
        &secrets,
        &Claims {
            iss: origin.into(),
            aud: flowcp::oauth::keys::key_audience(origin, &m.server_id),
            sub: user.into(),
            iat: now_s,
            exp: now_s + 86_400,
            jti: "k_1".into(),
            epoch: 1,
        },
    );
    let clock = || 1_800_000_000_000i64;
    let cache = GateCache::default();
    let (kv, http) = (MemoryKv::default(), NoHttp);
    let gate = Gate {
        db: &NoDb,
        kv: &kv,
        http: &http,
        keyring: &ring,
        secrets: Some(&secrets),
        fetch_policy: flowcp::net::FetchPolicy::default(),
        origin,
        clock: &clock,
        cache: &cache,
        admitted: Default::default(),
        user: Default::default(),
        default_plan: None,
    };
    let median = |f: &mut dyn FnMut() -> Result<(), String>| -> Result<f64, String> {
        let mut times = Vec::with_capacity(runs.max(1));
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            f()?;
            times.push(t.elapsed().as_nanos() as f64 / 1000.0);
        }
        times.sort_by(f64::total_cmp);
        Ok((times[times.len() / 2] * 10.0).round() / 10.0)
    };
    let gate_us = median(&mut || {
        // Refreshed within the cache bound at every call, as a busy isolate's entry is.
        cache.borrow_mut().put(&m.server_id, user, Snapshot::of(&row), clock());
        match block_on(gate.admit(&m, Some(&key))) {
            Ok(a) if a.upstream_token.is_some() => Ok(()),
            Ok(a) => Err(format!("admitted without a token: {a:?}")),
            Err(r) => Err(format!("refused: {:?}", r.body)),
        }
    })?;
    let access_key = "fcp_sk_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
    let mirror = json!({ "server_id": m.server_id, "key_id": "key_0123456789", "workspace_id": "ws_1" }).to_string();
    let api_key_us = median(&mut || {
        let _ = flowcp::crypto::sha256_hex(access_key.as_bytes());
        let v: Value = serde_json::from_str(&mirror).map_err(|e| e.to_string())?;
        (v["server_id"] == m.server_id.as_str()).then_some(()).ok_or("mirror".into())
    })?;
    Ok(json!({ "runs": runs.max(1), "user_key_gate_median_us": gate_us, "api_key_check_median_us": api_key_us, "key_bytes": key.len() })
        .to_string())
}

fn read_file(path: &str) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let limit = (MAX_DOCUMENT_BYTES + 1) as u64;
    let mut bytes = Vec::new();
    let result = if path.ends_with(".gz") {
        flate2::read::GzDecoder::new(file).take(limit).read_to_end(&mut bytes)
    } else {
        file.take(limit).read_to_end(&mut bytes)
    };
    result.map_err(|e| format!("{path}: {e}"))?;
    Ok(bytes)
}

fn load(path: &str) -> Result<ImportReport, String> {
    let bytes = read_file(path)?;
    import(&bytes).map_err(|e| format!("{path}: {e}"))
}

fn pretty(v: &Value) -> Result<String, String> {
    serde_json::to_string_pretty(v).map_err(|e| e.to_string())
}

fn tools_cmd(report: &ImportReport) -> Result<String, String> {
    let tools: Vec<Value> = report.tools.iter().map(|t| t.to_mcp_json()).collect();
    let warnings: Vec<Value> = report
        .problems
        .iter()
        .map(|p| json!({"pointer": p.pointer, "severity": p.severity, "message": p.message}))
        .collect();
    pretty(&json!({"tools": tools, "warnings": warnings}))
}

fn plan_cmd(report: &ImportReport, name: &str, raw: &str, base: Option<&str>) -> Result<String, String> {
    let tool = report.tools.iter().find(|t| t.name == name).ok_or_else(|| format!("no tool named {name:?}"))?;
    let args: Value = serde_json::from_str(raw).map_err(|e| format!("ARGS_JSON: {e}"))?;
    let problems = validate_tool_arguments(tool, &args);
    if !problems.is_empty() {
        return Err(format!("invalid arguments: {}", problems.join("; ")));
    }
    let plan = build_request(tool, &args, &Credential::None, base).map_err(|e| e.to_string())?;
    pretty(&plan.to_json())
}

fn bench(path: &str, runs: usize) -> Result<String, String> {
    let bytes = read_file(path)?;
    let mut times = Vec::new();
    let mut tools = 0;
    let mut manifest_bytes = 0;
    for _ in 0..runs.max(1) {
        // As the Worker imports: batches of tools, each tool stored as JSON and dropped.
        let start = Instant::now();
        let ledger = flowcp::openapi::Ledger::default();
        let mut importer = flowcp::tools::Importer::new(&bytes, &ledger).map_err(|e| e.to_string())?;
        let mut stored = Vec::new();
        while let Some(batch) = importer.next_batch(flowcp::tools::IMPORT_BATCH_TOOLS).map_err(|e| e.to_string())? {
            stored.extend(batch.iter().map(|t| serde_json::to_string(t).unwrap_or_default()));
        }
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        tools = stored.len();
        manifest_bytes = stored.iter().map(|t| t.len() + 1).sum::<usize>() + 1;
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    let min = times.first().copied().unwrap_or(0.0);
    pretty(&json!({
        "file": path,
        "input_bytes": bytes.len(),
        "tools": tools,
        "tooldefs_json_bytes": manifest_bytes,
        "runs": times.len(),
        "min_ms": (min * 10.0).round() / 10.0,
        "median_ms": (median * 10.0).round() / 10.0,
    }))
}
