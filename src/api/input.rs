//! Small input rules shared by handlers: display names, email addresses, page size and cursor.

use super::Request;
use crate::error::{ApiError, ErrorCode};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

/// `?limit=`: 1 to 200, 50 when absent.
pub fn page_limit(req: &Request) -> Result<u32, ApiError> {
    match req.query_param("limit") {
        None => Ok(DEFAULT_PAGE),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(ApiError::new(ErrorCode::InvalidLimit, format!("limit must be an integer from 1 to {MAX_PAGE}."))),
        },
    }
}

/// `?cursor=`: the `n` parts of a cursor this API issued (`crate::cursor`), else 400.
pub fn page_cursor(req: &Request, n: usize) -> Result<Option<Vec<String>>, ApiError> {
    let Some(c) = req.query_param("cursor") else { return Ok(None) };
    crate::cursor::decode(c, n)
        .map(Some)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidCursor, "The cursor is not one this API issued."))
}

/// A cursor part that must be an integer.
pub fn cursor_int(part: &str) -> Result<i64, ApiError> {
    part.parse().map_err(|_| ApiError::new(ErrorCode::InvalidCursor, "The cursor is not one this API issued."))
}

/// Names shown in the UI: trimmed, 1..=100 characters, no control characters.
pub fn clean_name(raw: &str, what: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::new(
            ErrorCode::InvalidName,
            format!("The {what} must be 1 to 100 characters without control characters."),
        ));
    }
    Ok(name.to_string())
}

/// A plausible email: one '@', something on both sides, a dot in the domain, ≤ 254 chars.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.contains(char::is_whitespace)
        && !domain.contains('@')
}
