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
        crate::civil::rfc3339_utc(now_ms + VALID_FOR_MS)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
