//! Upstream response -> MCP [`CallToolResult`].
//!
//! `structuredContent` only when the tool has an output schema, the status is 2xx, the body is
//! a JSON object and fits the budget. Non-2xx -> `isError: true` with the status and a bounded
//! excerpt. Text is cut at a character boundary with a visible marker; non-UTF-8 bodies are
//! described, never dumped.

use serde::Serialize;
use serde_json::Value;

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

/// Map with the default budget.
pub fn map_response(tool: &ToolDef, status: u16, content_type: Option<&str>, body: &[u8]) -> CallToolResult {
    map_response_with(tool, status, content_type, body, &ResponseBudget::default())
}

/// Map a response to a tool result.
pub fn map_response_with(
    tool: &ToolDef,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    budget: &ResponseBudget,
) -> CallToolResult {
    let ok = (200..300).contains(&status);
    let ct = content_type.unwrap_or("");
    let limit = if ok { budget.max_text_bytes } else { budget.max_error_bytes };
    let body_text = describe_body(body, ct, limit);
    let mut structured_content = None;
    let text = if ok {
        if body.is_empty() {
            format!("HTTP {status} (no body)")
        } else {
            body_text
        }
    } else if body.is_empty() {
        format!("HTTP {status} {}", reason(status))
    } else {
        format!("HTTP {status} {}\n{body_text}", reason(status))
    };
    let mut is_error = !ok;
    let mut text = text;
    if ok && tool.output_schema.is_some() {
        // MCP: a tool that declares an output schema must return structured content with every
        // successful result. When the body cannot be that (too large for the budget, not a
        // JSON object), the result is an error that says why and still shows the text.
        let structured = match serde_json::from_slice::<Value>(body) {
            Ok(v @ Value::Object(_)) if body.len() <= budget.max_text_bytes => Some(v),
            _ => None,
        };
        match structured {
            Some(v) => structured_content = Some(v),
            None => {
                is_error = true;
                let why = if body.len() > budget.max_text_bytes {
                    "the response is larger than the result budget"
                } else {
                    "the response is not the JSON object the API's document declares"
                };
                text = format!("HTTP {status}: {why}, so it is returned as text only.\n{text}");
            }
        }
    }
    CallToolResult { content: vec![Content::Text { text }], structured_content, is_error }
}

/// A tool result for arguments that failed validation (no upstream call was made).
pub fn invalid_arguments_result(problems: &[String]) -> CallToolResult {
    CallToolResult::error(format!("Invalid arguments:\n- {}", problems.join("\n- ")))
}

fn describe_body(body: &[u8], ct: &str, limit: usize) -> String {
    let Ok(text) = std::str::from_utf8(body) else {
        let ct = if ct.is_empty() { "unknown" } else { ct };
        return format!("[binary response body: {} bytes, content-type {ct}; not shown]", body.len());
    };
    if text.len() <= limit {
        return text.to_string();
    }
    let mut cut = limit;
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n…[truncated: showing {cut} of {} bytes]", text.get(..cut).unwrap_or(""), text.len())
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
