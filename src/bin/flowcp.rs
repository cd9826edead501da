//! Host command-line front end of the OpenAPI engine (a thin shell over `flowcp::tools` and
//! `flowcp::invoke`).
//!
//! ```text
//! flowcp tools FILE                      tools as MCP shows them + warnings (JSON)
//! flowcp report FILE                     the full import report (JSON)
//! flowcp plan FILE TOOL 'ARGS_JSON' [BASE_URL]   the upstream request (JSON)
//! flowcp bench-import FILE [RUNS]        time the import (parse + convert)
//! flowcp hostile-docs DIR                write the amplifying documents (F3) as DIR/NAME.json
//! flowcp bench-token [RUNS]              time opening an OAuth access token (2 KB upstream JWT)
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
        "openapi" => pretty(&flowcp::api::contract::openapi_document("https://flowcp.example")),
        "bench-token" => bench_token(args.get(1).and_then(|r| r.parse().ok()).unwrap_or(10_000usize)),
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
        _ => Err(usage()),
    }
}

fn usage() -> String {
    "usage: flowcp tools FILE | report FILE | plan FILE TOOL 'ARGS_JSON' [BASE_URL] | bench-import FILE [RUNS] | hostile-docs DIR | bench-token [RUNS] | openapi".into()
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
        let start = Instant::now();
        let report = import(&bytes).map_err(|e| e.to_string())?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        tools = report.tools.len();
        manifest_bytes = serde_json::to_vec(&report.tools).map(|v| v.len()).unwrap_or(0);
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
