//! Fuzz argument validation and request building: a tool (a fuzzed one as a manifest could hold
//! it, or one of a document's) with fuzzed arguments and each credential placement.
//! Input: `<selector byte><tool JSON or nothing>\n<arguments JSON>`.
//!
//! Invariants for the document's tools (whose paths and base FlowCP made):
//! - arguments never move the request off the API's base (authority, path prefix, no dot
//!   segments resolved by URL parsing);
//! - the credential is sent exactly once, in its own slot, never doubled by an argument;
//! - no header carries CR, LF or NUL.
//!
//! For a fuzzed tool only: nothing panics.

#![no_main]

#[path = "common.rs"]
mod common;

use flowcp::invoke::{build_request, validate_tool_arguments, Credential};
use flowcp::tools::ToolDef;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

thread_local! {
    static TOOLS: Vec<ToolDef> = common::tools();
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let (tool_part, args_part) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&rest[..0], rest),
    };
    let Ok(args) = serde_json::from_slice::<Value>(args_part) else { return };
    let credential = match selector % 5 {
        0 => Credential::None,
        1 => Credential::Header { name: "X-Api-Key".into(), value: common::SECRET.into() },
        2 => Credential::Query { name: "api_key".into(), value: common::SECRET.into() },
        3 => Credential::Cookie { name: "pref".into(), value: common::SECRET.into() },
        _ => Credential::Bearer(common::SECRET.into()),
    };
    if let Ok(tool) = serde_json::from_slice::<ToolDef>(tool_part) {
        let _ = validate_tool_arguments(&tool, &args);
        let _ = build_request(&tool, &args, &credential, Some(common::BASE));
        return;
    }
    TOOLS.with(|tools| {
        let tool = &tools[(selector as usize / 5) % tools.len()];
        let _ = validate_tool_arguments(tool, &args);
        // Building is tried on invalid arguments too: the builder must stand on its own.
        let Ok(plan) = build_request(tool, &args, &credential, None) else { return };
        check(tool, &plan, &credential, data);
    });
});

fn check(tool: &ToolDef, plan: &flowcp::invoke::RequestPlan, credential: &Credential, data: &[u8]) {
    let url = url::Url::parse(&plan.url).unwrap_or_else(|e| panic!("{}: unparseable URL {:?}: {e}", tool.name, plan.url));
    assert_eq!(url.host_str(), Some("api.example.com"), "{}: {}", tool.name, plan.url);
    assert_eq!((url.scheme(), url.port(), url.username(), url.password()), ("https", None, "", None), "{}", plan.url);
    // The path as sent is the path the API sees: nothing URL parsing would resolve or re-encode.
    let raw_path = plan.url["https://api.example.com".len()..].split(['?', '#']).next().unwrap_or("");
    assert_eq!(url.path(), raw_path, "{}: the path moved: {}", tool.name, plan.url);
    assert!(url.path().starts_with("/v1/"), "{}: {}", tool.name, plan.url);
    assert!(url.fragment().is_none(), "{}: {}", tool.name, plan.url);
    let template = tool.request.path.split('{').next().unwrap_or("");
    assert!(url.path().starts_with(&format!("/v1{template}")), "{}: {} left {template}", tool.name, plan.url);
    for (name, value) in &plan.headers {
        assert!(!value.contains(['\r', '\n', '\0']) && !name.contains(['\r', '\n', '\0', ':']), "{name}: {value:?}");
    }
    let headers_named = |n: &str| plan.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(n)).count();
    let secret_in_input = data.windows(6).any(|w| w == b"secret");
    match credential {
        Credential::None => {}
        Credential::Header { name, .. } => assert_eq!(headers_named(name), 1, "{:?}", plan.headers),
        Credential::Bearer(_) => assert_eq!(headers_named("authorization"), 1, "{:?}", plan.headers),
        Credential::Query { name, .. } => {
            let n = url.query_pairs().filter(|(k, _)| k == name.as_str()).count();
            assert_eq!(n, 1, "{}: the credential's query name is sent {n} times: {}", tool.name, plan.url);
        }
        Credential::Cookie { name, .. } => {
            let cookies: Vec<&str> = plan.headers.iter().filter(|(k, _)| k == "Cookie").map(|(_, v)| v.as_str()).collect();
            assert_eq!(cookies.len(), 1, "{:?}", plan.headers);
            let n = cookies[0].split("; ").filter(|p| p.split('=').next() == Some(name.as_str())).count();
            assert_eq!(n, 1, "{}: the credential's cookie is sent {n} times: {}", tool.name, cookies[0]);
        }
    }
    // Only the credential's own slot carries the secret (unless the input itself holds it).
    if !secret_in_input {
        let in_url = plan.url.matches(common::SECRET).count();
        let in_headers: usize = plan.headers.iter().map(|(_, v)| v.matches(common::SECRET).count()).sum();
        let expected = usize::from(!matches!(credential, Credential::None));
        assert_eq!(in_url + in_headers, expected, "{}: {:?} {:?}", tool.name, plan.url, plan.headers);
    }
}
