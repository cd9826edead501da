//! Upstream responses -> MCP tool results.

use flowcp_engine::invoke::{invalid_arguments_result, map_response, map_response_with, ResponseBudget};
use flowcp_engine::tools::import_value;
use flowcp_engine::tools::ToolDef;
use serde_json::json;

fn tool(with_output: bool) -> ToolDef {
    let schema = if with_output {
        json!({"type": "object", "properties": {"id": {"type": "integer"}}})
    } else {
        json!({"type": "array"})
    };
    let doc = json!({"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": {"/p": {"get": {
        "operationId": "p", "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": schema}}}}}}}});
    import_value(doc).expect("import").tools.remove(0)
}

#[test]
fn json_object_with_output_schema_is_structured() {
    let r = map_response(&tool(true), 200, Some("application/json"), br#"{"id":1}"#).to_value();
    assert_eq!(r, json!({"content": [{"type": "text", "text": "{\"id\":1}"}], "structuredContent": {"id": 1}}));
}

#[test]
fn no_output_schema_means_text_only() {
    let r = map_response(&tool(false), 200, Some("application/json"), b"[1]").to_value();
    assert_eq!(r, json!({"content": [{"type": "text", "text": "[1]"}]}));
}

#[test]
fn upstream_error_is_a_tool_error_with_bounded_excerpt() {
    let body = "x".repeat(5000);
    let r = map_response(&tool(true), 404, Some("text/plain"), body.as_bytes()).to_value();
    let text = r["content"][0]["text"].as_str().expect("text");
    assert_eq!(r["isError"], json!(true));
    assert!(text.starts_with("HTTP 404 Not Found\nxxx"));
    assert!(text.ends_with("\n…[truncated: showing 2048 of 5000 bytes]"), "{text}");
    assert!(r.get("structuredContent").is_none());
}

#[test]
fn oversized_body_is_cut_on_a_char_boundary_with_marker() {
    let body = "é".repeat(10);
    let budget = ResponseBudget { max_text_bytes: 5, max_error_bytes: 5 };
    let r = map_response_with(&tool(false), 200, None, body.as_bytes(), None, &budget).0.to_value();
    assert_eq!(r["content"][0]["text"], json!("éé\n…[truncated: showing 4 of 20 bytes]"));
}

/// Issue 19: a body the transport stopped reading at its size limit is never passed off as the
/// whole answer: the text says it is longer, a character split by the cut is not "binary", and a
/// tool with an output schema gets no structured content from a fragment.
#[test]
fn a_body_cut_by_the_transport_says_so_and_is_never_structured() {
    use flowcp_engine::invoke::ResponseOutcome;
    let budget = ResponseBudget { max_text_bytes: 64, max_error_bytes: 64 };
    // Fits the budget, but is a fragment; the last "é" is split by the cut.
    let mut fragment = br#"{"id":1,"name":"caf"#.to_vec();
    fragment.extend_from_slice(&"é".as_bytes()[..1]);
    let (r, outcome) = map_response_with(&tool(false), 200, Some("application/json"), &fragment, Some(20), &budget);
    assert_eq!((outcome, r.is_error), (ResponseOutcome::Ok, false));
    assert_eq!(r.first_text(), "{\"id\":1,\"name\":\"caf\n…[truncated: showing 19 of more than 20 bytes]");
    // The same bytes whole would be binary: the split is only forgiven at a cut.
    let (r, _) = map_response_with(&tool(false), 200, None, &fragment, None, &budget);
    assert!(r.first_text().starts_with("[binary response body: 20 bytes"), "{}", r.first_text());
    // A complete JSON object that conforms, but cut: not structured content.
    let (r, outcome) = map_response_with(&tool(true), 200, Some("application/json"), br#"{"id":1}"#, Some(8), &budget);
    assert_eq!((outcome, r.is_error, r.structured_content.is_none()), (ResponseOutcome::Unexpected, true, true));
    assert!(r.first_text().contains("larger than the 8 bytes FlowCP reads"), "{}", r.first_text());
    // Garbage in the middle stays binary, cut or not; the total named is the read limit, not
    // the (redacted) body's length.
    let (r, _) = map_response_with(&tool(false), 200, None, &[b'a', 0xff, b'b', 0xc3], Some(4096), &budget);
    assert_eq!(r.first_text(), "[binary response body: more than 4096 bytes, content-type unknown; not shown]");
}

#[test]
fn binary_body_is_described_not_dumped() {
    let r = map_response(&tool(false), 200, Some("image/png"), &[0x89, 0xff, 0x00]).to_value();
    assert_eq!(r["content"][0]["text"], json!("[binary response body: 3 bytes, content-type image/png; not shown]"));
}

#[test]
fn invalid_arguments_become_a_tool_error() {
    let r = invalid_arguments_result(&["`a`: expected string, got integer 1".into()]).to_value();
    assert_eq!(
        r,
        json!({"content": [{"type": "text", "text": "Invalid arguments:\n- `a`: expected string, got integer 1"}], "isError": true})
    );
}

/// Issue 12: real APIs answer with other shapes than documented; the client still gets a
/// result it accepts, and one that cannot be mistaken for a failed call or a conforming one.
#[test]
fn a_2xx_that_breaks_the_output_schema_is_an_error_that_may_have_taken_effect() {
    use flowcp_engine::invoke::ResponseOutcome;
    let t = tool(true);
    // Missing fields and `null` conform: the output schema only describes.
    for ok in [r#"{}"#, r#"{"id":null}"#, r#"{"id":7,"extra":[1]}"#] {
        let (r, outcome) =
            map_response_with(&t, 200, Some("application/json"), ok.as_bytes(), None, &ResponseBudget::default());
        assert_eq!((outcome, r.is_error), (ResponseOutcome::Ok, false), "{ok}");
        assert!(r.structured_content.is_some(), "{ok}");
    }
    let (r, outcome) =
        map_response_with(&t, 201, Some("application/json"), br#"{"id":"7"}"#, None, &ResponseBudget::default());
    assert_eq!(outcome, ResponseOutcome::Unexpected);
    let v = r.to_value();
    assert_eq!(v["isError"], json!(true));
    assert!(v.get("structuredContent").is_none(), "a strict client would reject it: {v}");
    let text = r.first_text();
    assert!(text.starts_with("The API answered HTTP 201, so the call may have taken effect"), "{text}");
    assert!(text.contains("- `response.id`: expected integer or null, got string \"7\""), "{text}");
    assert!(text.ends_with("The response as received:\n{\"id\":\"7\"}"), "{text}");
    for (body, kind) in [("[1]", "an array"), ("\"x\"", "a string"), ("null", "null")] {
        let (r, outcome) =
            map_response_with(&t, 200, Some("application/json"), body.as_bytes(), None, &ResponseBudget::default());
        assert_eq!(outcome, ResponseOutcome::Unexpected, "{body}");
        assert!(r.first_text().contains(&format!("the response is {kind}, not the JSON object")), "{}", r.first_text());
    }
    // Many differences: the first five, then a count.
    let many: serde_json::Map<String, serde_json::Value> = (0..9).map(|i| (format!("k{i}"), json!("s"))).collect();
    let schema_tool = {
        let props: serde_json::Map<String, serde_json::Value> =
            (0..9).map(|i| (format!("k{i}"), json!({"type": "integer"}))).collect();
        let doc = json!({"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": {"/p": {"get": {
            "operationId": "p", "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object", "properties": props}}}}}}}}});
        import_value(doc).expect("import").tools.remove(0)
    };
    let body = serde_json::to_vec(&many).unwrap();
    let (r, _) = map_response_with(&schema_tool, 200, None, &body, None, &ResponseBudget::default());
    assert!(r.first_text().contains("\n- and 4 more."), "{}", r.first_text());
    // Upstream errors stay upstream errors.
    let (_, outcome) = map_response_with(&t, 500, None, b"{}", None, &ResponseBudget::default());
    assert_eq!(outcome, ResponseOutcome::UpstreamError);
}
