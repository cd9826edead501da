//! Fuzz the whole engine path an upload takes: load (JSON/YAML, 2.0 upgrade) + convert to
//! tools, then build a request, validate and map a response for the first tools.
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run import corpus/import -- -max_total_time=300`

#![no_main]

use flowcp::invoke::{build_request, map_response, validate_arguments, Credential};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(report) = flowcp::tools::import(data) else { return };
    for tool in report.tools.iter().take(4) {
        let args = json!({"id": 1, "body": {"a": [1, "x"]}, "q": "v"});
        let _ = validate_arguments(&tool.input_schema, &args);
        let _ = build_request(tool, &args, &Credential::Bearer("t".into()), Some("https://h.test"));
        let _ = map_response(tool, 200, Some("application/json"), data);
    }
});
