//! Opaque page cursors, one format for every paged listing (the owner API's apps, tools and
//! audit events; MCP's `tools/list`): URL-safe base64 of a JSON array of strings. Clients pass
//! them back untouched; what is inside is ours to change.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Longer cursors are not ones we issued (ours are well under this).
const MAX_CURSOR: usize = 1024;

pub fn encode(parts: &[&str]) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(parts).unwrap_or_default())
}

/// The `n` parts of a cursor we issued; `None` for anything else.
pub fn decode(cursor: &str, n: usize) -> Option<Vec<String>> {
    if cursor.len() > MAX_CURSOR {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let parts: Vec<String> = serde_json::from_slice(&bytes).ok()?;
    (parts.len() == n).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_we_did_not_issue() {
        let c = encode(&["1790000000000", "app_x"]);
        assert_eq!(decode(&c, 2), Some(vec!["1790000000000".to_string(), "app_x".to_string()]));
        assert_eq!(decode(&c, 1), None, "the wrong number of parts");
        for bad in ["", "garbage", "o:12", "W10", &"A".repeat(2000), "WyJhIiwxXQ"] {
            assert_eq!(decode(bad, 2), None, "{bad}");
        }
    }
}
