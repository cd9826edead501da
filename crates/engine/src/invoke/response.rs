//! Upstream response -> MCP [`CallToolResult`].
//!
//! `structuredContent` only when the tool has an output schema, the status is 2xx, the body is
//! a JSON object that conforms to the published output schema and fits the budget; any other
//! 2xx of such a tool is an `isError` result that says the call may have taken effect. Non-2xx -> `isError: true` with the status and a bounded
//! excerpt. Text is cut at a character boundary with a visible marker; non-UTF-8 bodies are
//! described, never dumped.

use serde::Serialize;
use serde_json::Value;

use super::validate::validate_response;
use crate::tools::ToolDef;

/// An MCP `tools/call` result: what the model sees. An upstream failure is a result with
/// `isError: true`, never a protocol error.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallToolResult {
    pub content: Vec<Content>,
    /// The JSON object answer, when the tool declares an output schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

/// One content block of a result (FlowCP sends text only).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Content {
    Text { text: String },
}

impl CallToolResult {
    /// A successful text result.
    pub fn text(text: impl Into<String>) -> Self {
        CallToolResult { content: vec![Content::Text { text: text.into() }], structured_content: None, is_error: false }
    }

    /// A failed call, explained in text.
    pub fn error(text: impl Into<String>) -> Self {
        CallToolResult { is_error: true, ..Self::text(text) }
    }

    /// A JSON value as text and as structured content.
    pub fn structured(value: Value) -> Self {
        CallToolResult { structured_content: Some(value.clone()), ..Self::text(value.to_string()) }
    }

    /// The text of the first block.
    pub fn first_text(&self) -> &str {
        match self.content.first() {
            Some(Content::Text { text }) => text,
            None => "",
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The result as JSON, moving its text and structured content rather than serialising
    /// them into a copy (what [`CallToolResult::to_value`] does): the hot path's form.
    pub fn into_value(self) -> Value {
        let mut m = serde_json::Map::with_capacity(3);
        let content = self
            .content
            .into_iter()
            .map(|Content::Text { text }| {
                let mut block = serde_json::Map::with_capacity(2);
                block.insert("type".into(), Value::String("text".into()));
                block.insert("text".into(), Value::String(text));
                Value::Object(block)
            })
            .collect();
        m.insert("content".into(), Value::Array(content));
        if let Some(structured) = self.structured_content {
            m.insert("structuredContent".into(), structured);
        }
        if self.is_error {
            m.insert("isError".into(), Value::Bool(true));
        }
        Value::Object(m)
    }
}

/// Size limits for what goes back to the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseBudget {
    /// Bytes of body text in a successful result.
    pub max_text_bytes: usize,
    /// Bytes of body text quoted in an error result.
    pub max_error_bytes: usize,
}

impl Default for ResponseBudget {
    fn default() -> Self {
        ResponseBudget { max_text_bytes: 64 * 1024, max_error_bytes: 2 * 1024 }
    }
}

/// How a mapped response ended, for the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseOutcome {
    /// A 2xx given to the client as documented.
    Ok,
    /// A non-2xx answer.
    UpstreamError,
    /// A 2xx whose body cannot be the tool's structured content (it does not match the
    /// published output schema, is not a JSON object, or is over the result budget): the
    /// call may have taken effect, so it is reported, with the body, as such.
    Unexpected,
}

/// Map with the default budget.
pub fn map_response(tool: &ToolDef, status: u16, content_type: Option<&str>, body: &[u8]) -> CallToolResult {
    map_response_with(tool, status, content_type, body, None, &ResponseBudget::default()).0
}

/// Most differences from the documented shape listed in a result.
const MAX_DIFFERENCES_SHOWN: usize = 5;

/// Map a response to a tool result, and say how it ended.
///
/// A 2xx for a tool with an output schema is validated against that (published) schema before
/// it becomes `structuredContent`: strict clients reject a whole call whose structured content
/// does not conform. When it does not, the result is `isError` with text that says the API
/// answered 2xx, that the call may have taken effect, where the body differs from the
/// documented shape, and the body itself (already redacted by the caller; capped here).
///
/// `cut`: the body is only the first part of the answer, because the transport stopped reading
/// at that many bytes: the text says so (naming the limit, not the body's length, which after
/// redaction would tell the length of what was redacted), and such a body is never structured
/// content.
pub fn map_response_with(
    tool: &ToolDef,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    cut: Option<usize>,
    budget: &ResponseBudget,
) -> (CallToolResult, ResponseOutcome) {
    let ok = (200..300).contains(&status);
    let ct = content_type.unwrap_or("");
    let limit = if ok { budget.max_text_bytes } else { budget.max_error_bytes };
    let body_text = describe_body(body, cut, ct, limit);
    if !ok {
        let text = if body.is_empty() {
            format!("HTTP {status} {}", reason(status))
        } else {
            format!("HTTP {status} {}\n{body_text}", reason(status))
        };
        return (CallToolResult::error(text), ResponseOutcome::UpstreamError);
    }
    let text = if body.is_empty() { format!("HTTP {status} (no body)") } else { body_text };
    let Some(schema) = &tool.output_schema else {
        return (CallToolResult::text(text), ResponseOutcome::Ok);
    };
    // MCP: a tool that declares an output schema returns structured content with every
    // successful result, and strict clients validate it.
    let why = if let Some(read) = cut {
        format!("the response is larger than the {read} bytes FlowCP reads, so only its start is returned, as text")
    } else if body.len() > budget.max_text_bytes {
        "the response is larger than the result budget, so it is returned as text only".to_string()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(v @ Value::Object(_)) => {
                let differences = validate_response(schema, &v);
                if differences.is_empty() {
                    let result = CallToolResult {
                        content: vec![Content::Text { text }],
                        structured_content: Some(v),
                        is_error: false,
                    };
                    return (result, ResponseOutcome::Ok);
                }
                let mut why = "the response does not match the shape the API's document declares:".to_string();
                for d in differences.iter().take(MAX_DIFFERENCES_SHOWN) {
                    why.push_str("\n- ");
                    why.push_str(d);
                }
                if differences.len() > MAX_DIFFERENCES_SHOWN {
                    why.push_str(&format!("\n- and {} more", differences.len() - MAX_DIFFERENCES_SHOWN));
                }
                why
            }
            Ok(other) => {
                format!("the response is {}, not the JSON object the API's document declares", json_kind(&other))
            }
            Err(_) => "the response is not the JSON object the API's document declares".to_string(),
        }
    };
    let text = format!(
        "The API answered HTTP {status}, so the call may have taken effect, but {why}.\nThe response as received:\n{text}"
    );
    (CallToolResult::error(text), ResponseOutcome::Unexpected)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A tool result for arguments that failed validation (no upstream call was made).
pub fn invalid_arguments_result(problems: &[String]) -> CallToolResult {
    CallToolResult::error(format!("Invalid arguments:\n- {}", problems.join("\n- ")))
}

/// The body as text for the model, cut at `limit` bytes with a visible marker. `cut_before`:
/// the body is already the first part of a longer answer, so its last character may be split
/// (not a sign of a binary body) and the marker says the whole was longer.
fn describe_body(body: &[u8], cut_before: Option<usize>, ct: &str, limit: usize) -> String {
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        // Only an incomplete character at the very end, where the transport stopped reading.
        Err(e) if cut_before.is_some() && e.error_len().is_none() => {
            std::str::from_utf8(&body[..e.valid_up_to()]).unwrap_or("")
        }
        Err(_) => {
            let ct = if ct.is_empty() { "unknown" } else { ct };
            return match cut_before {
                Some(read) => format!("[binary response body: more than {read} bytes, content-type {ct}; not shown]"),
                None => format!("[binary response body: {} bytes, content-type {ct}; not shown]", body.len()),
            };
        }
    };
    if text.len() <= limit && cut_before.is_none() {
        return text.to_string();
    }
    let mut cut = limit.min(text.len());
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let whole = match cut_before {
        Some(read) => format!("more than {read}"),
        None => text.len().to_string(),
    };
    format!("{}\n…[truncated: showing {cut} of {whole} bytes]", text.get(..cut).unwrap_or(""))
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ if status >= 500 => "server error",
        _ if status >= 400 => "client error",
        _ if status >= 300 => "redirect",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::CallToolResult;
    use serde_json::json;

    /// The hot path's moving form says exactly what the serialised form says.
    #[test]
    fn into_value_is_to_value() {
        for r in [
            CallToolResult::text("plain"),
            CallToolResult::error("upstream said 500"),
            CallToolResult::structured(json!({ "id": 7, "tags": ["a", "b"], "nested": { "x": null } })),
            CallToolResult { content: Vec::new(), structured_content: None, is_error: false },
        ] {
            // As text: Map equality ignores the order of keys, which clients see.
            assert_eq!(r.clone().into_value().to_string(), r.to_value().to_string(), "{r:?}");
        }
    }
}
