//! `/.well-known/security.txt` (RFC 9116): where to report a vulnerability. The contact is the
//! operator's `FLOWCP_SECURITY_CONTACT` (a `mailto:` or `https:` URI), else
//! `mailto:security@<host>`; `Expires` is always 180 days ahead, so the file never goes stale.

/// How far ahead `Expires` is (RFC 9116 advises less than a year).
const VALID_FOR_MS: i64 = 180 * 24 * 3600 * 1000;

/// The document for a deployment served at `origin` (`https://host`).
pub fn render(contact: Option<&str>, origin: &str, now_ms: i64) -> String {
    let host = origin.split_once("://").map_or(origin, |(_, h)| h);
    let host = host.split(':').next().unwrap_or(host);
    let usable = |c: &&str| {
        (c.starts_with("mailto:") || c.starts_with("https://"))
            && !c.chars().any(|ch| ch.is_whitespace() || ch.is_control())
    };
    let contact = match contact.map(str::trim).filter(usable) {
        Some(c) => c.to_string(),
        None => format!("mailto:security@{host}"),
    };
    format!(
        "Contact: {contact}\nExpires: {}\nPreferred-Languages: en\nCanonical: {origin}/.well-known/security.txt\n\
         Policy: {origin}/privacy#security\n",
        rfc3339_utc(now_ms + VALID_FOR_MS)
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a time in ms since the epoch (days to a civil date by Howard
/// Hinnant's algorithm; no date crate is needed for one field).
pub fn rfc3339_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_796_083_199_000), "2026-11-30T23:59:59Z");
        assert_eq!(rfc3339_utc(4_107_542_400_000), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn the_file_has_the_required_fields_and_a_safe_contact() {
        let now = 1_796_083_199_000;
        let doc = render(None, "https://mcp.example.com", now);
        assert!(doc.contains("Contact: mailto:security@mcp.example.com\n"), "{doc}");
        assert!(doc.contains("Expires: 2027-05-29T23:59:59Z\n"), "{doc}");
        assert!(doc.contains("Canonical: https://mcp.example.com/.well-known/security.txt\n"));
        assert!(render(Some("https://example.com/report"), "http://127.0.0.1:8787", now)
            .contains("Contact: https://example.com/report\n"));
        // Anything but a mailto: or https: URI (a header injection, say) is not used.
        for odd in ["x\nContact: evil", "mailto:a@b.c\nPolicy: evil", "https://a.example/ evil"] {
            let doc = render(Some(odd), "http://127.0.0.1:8787", now);
            assert!(doc.contains("Contact: mailto:security@127.0.0.1\n") && !doc.contains("evil"), "{doc}");
        }
    }
}
