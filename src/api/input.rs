//! Small input rules shared by handlers: display names and email addresses.

use crate::error::{ApiError, ErrorCode};

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
