//! JSON-RPC 2.0 messages as MCP uses them, and the spec's error codes.

use serde_json::{json, Value};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// Implementation-defined server error (JSON-RPC reserves -32000..-32099): too many requests.
pub const RATE_LIMITED: i64 = -32029;

/// One incoming message, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
    },
    /// A response from the client (to a server request we never send); acknowledged, ignored.
    Response,
}

/// Classifies one JSON value as a JSON-RPC message, or returns the error response to send.
pub fn classify(v: &Value) -> Result<Message, Value> {
    let Value::Object(o) = v else {
        return Err(error(Value::Null, INVALID_REQUEST, "a JSON-RPC message must be an object"));
    };
    let id = o.get("id").cloned();
    if o.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(error(id.unwrap_or(Value::Null), INVALID_REQUEST, "jsonrpc must be \"2.0\""));
    }
    let valid_id = |id: &Value| matches!(id, Value::String(_)) || id.is_i64() || id.is_u64();
    match (o.get("method"), id) {
        (Some(Value::String(m)), Some(id)) => {
            if !valid_id(&id) {
                return Err(error(Value::Null, INVALID_REQUEST, "id must be a string or an integer"));
            }
            let params = o.get("params").cloned().unwrap_or(Value::Null);
            if !(params.is_object() || params.is_null()) {
                return Err(error(id, INVALID_REQUEST, "params must be an object"));
            }
            Ok(Message::Request { id, method: m.clone(), params })
        }
        (Some(Value::String(m)), None) => Ok(Message::Notification { method: m.clone() }),
        (Some(_), id) => Err(error(id.unwrap_or(Value::Null), INVALID_REQUEST, "method must be a string")),
        (None, Some(_)) if o.contains_key("result") || o.contains_key("error") => Ok(Message::Response),
        (None, id) => Err(error(id.unwrap_or(Value::Null), INVALID_REQUEST, "not a request, notification or response")),
    }
}

pub fn result(id: Value, result: Value) -> Value {
    // Moved in, not through `json!` (which would serialise `result` into a copy: a quarter of
    // a large `tools/list` page's time in issue 18's profile).
    let mut m = serde_json::Map::with_capacity(3);
    m.insert("jsonrpc".into(), Value::String("2.0".into()));
    m.insert("id".into(), id);
    m.insert("result".into(), result);
    Value::Object(m)
}

pub fn error(id: Value, code: i64, message: impl Into<String>) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message.into() } })
}

pub fn error_with_data(id: Value, code: i64, message: impl Into<String>, data: Value) -> Value {
    let mut out = error(id, code, message);
    out["error"]["data"] = data;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_classified_by_shape() {
        assert_eq!(
            classify(&json!({"jsonrpc":"2.0","id":1,"method":"ping"})),
            Ok(Message::Request { id: json!(1), method: "ping".into(), params: Value::Null })
        );
        assert_eq!(
            classify(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})),
            Ok(Message::Notification { method: "notifications/initialized".into() })
        );
        assert_eq!(classify(&json!({"jsonrpc":"2.0","id":"a","result":{}})), Ok(Message::Response));
    }

    #[test]
    fn malformed_messages_get_invalid_request() {
        for bad in [
            json!([]),
            json!("x"),
            json!({"id":1,"method":"ping"}),
            json!({"jsonrpc":"1.0","id":1,"method":"ping"}),
            json!({"jsonrpc":"2.0","id":1,"method":7}),
            json!({"jsonrpc":"2.0","id":{"x":1},"method":"ping"}),
            json!({"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}),
            json!({"jsonrpc":"2.0","id":1}),
        ] {
            let e = classify(&bad).unwrap_err();
            assert_eq!(e["error"]["code"], INVALID_REQUEST, "{bad}");
        }
    }
}
