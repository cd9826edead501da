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
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(|c| c.is_control() || is_format_char(c)) {
        return Err(ApiError::new(
            ErrorCode::InvalidName,
            format!("The {what} must be 1 to 100 characters without control, format or bidi characters."),
        ));
    }
    Ok(name.to_string())
}

/// Unicode format characters (general category Cf: zero-width, bidi embeddings, overrides and
/// isolates, soft hyphen, tags...), the line and paragraph separators, and the letters that
/// render as nothing (Hangul fillers, the blank braille pattern, the combining grapheme joiner,
/// Khmer inherent vowels, Mongolian variation selectors). In a name they can reorder or hide
/// what a person reads ("ACME Security" that is not), so names refuse them. Variation
/// selectors (U+FE00..U+FE0F, U+E0100..) are allowed: emoji and CJK variants need them, and
/// they change only how the character before them is drawn.
pub fn is_format_char(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0x2800 | 0x3164
        | 0xFEFF | 0xFFA0 | 0xFFF9..=0xFFFB
        | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
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
        // Markup and quoting characters: an address is shown in pages and mails.
        && !email.contains(['<', '>', '"', '\'', '`', '(', ')', ',', ';', ':', '\\', '[', ']'])
        && !email.chars().any(|c| c.is_control() || is_format_char(c))
}
