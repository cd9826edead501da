//! Fuzz the small parsers that see raw outside input on every request: the MCP transport's
//! body parser and JSON-RPC classifier, the Host allow-list, the session cookie parser, the
//! SSRF guard and the redactor.
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run parsers -- -max_total_time=300`

#![no_main]

use flowcp::mcp::transport::{host_allowed, parse_body, Preflight};
use flowcp::mcp::ProtocolVersion;
use flowcp::net::{check_url, FetchPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for version in [ProtocolVersion::V2025_03_26, ProtocolVersion::V2025_11_25] {
        let pre = Preflight { version, version_header_present: true };
        if let Ok(flowcp::mcp::transport::Body::Single(v)) = parse_body(data, &pre) {
            let _ = flowcp::mcp::jsonrpc::classify(&v);
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = host_allowed(&text, &["localhost".to_string(), "mcp.example.com:443".to_string()]);
    let _ = flowcp::auth::session::session_id_hash_from_cookie_header(&text, b"0123456789abcdef0123456789abcdef");
    let _ = check_url(&text, FetchPolicy { allow_loopback: false });
    let r = flowcp::redact::Redactor::of_values([text.as_ref()]);
    let _ = r.url(&format!("https://x.example/?api_key={text}"));
});
