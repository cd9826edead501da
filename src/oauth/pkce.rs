//! PKCE (RFC 7636), S256 only: `plain` and unknown methods are refused, a verifier must be
//! 43-128 unreserved characters, and the comparison is constant-time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Is `method` (absent means `plain`) acceptable, and is `challenge` shaped like an S256
/// challenge (43 base64url characters)?
pub fn challenge_ok(challenge: Option<&str>, method: Option<&str>) -> Result<(), &'static str> {
    let Some(c) = challenge else { return Err("code_challenge is required (PKCE S256)") };
    if method != Some("S256") {
        return Err("code_challenge_method must be S256");
    }
    if c.len() != 43 || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err("code_challenge must be a base64url SHA-256 digest (43 characters)");
    }
    Ok(())
}

fn verifier_ok(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The S256 challenge of a verifier.
pub fn challenge_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Does `verifier` hash to `challenge`?
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    verifier_ok(verifier) && crate::crypto::ct_eq(challenge_s256(verifier).as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc_example_verifies_and_everything_else_does_not() {
        assert!(challenge_ok(Some(CHALLENGE), Some("S256")).is_ok());
        assert!(verify_s256(VERIFIER, CHALLENGE));
        assert_eq!(challenge_s256(VERIFIER), CHALLENGE);
        assert!(!verify_s256(CHALLENGE, CHALLENGE), "plain: the challenge itself is not a verifier");
        assert!(!verify_s256(&VERIFIER.replace('d', "e"), CHALLENGE));
        assert!(!verify_s256("short", CHALLENGE));
        assert!(!verify_s256(&"a".repeat(129), CHALLENGE));
        assert!(!verify_s256(&format!("{VERIFIER}+"), CHALLENGE));
        assert!(challenge_ok(Some(CHALLENGE), Some("plain")).is_err());
        assert!(challenge_ok(Some(CHALLENGE), None).is_err(), "absent method means plain");
        assert!(challenge_ok(None, Some("S256")).is_err());
        assert!(challenge_ok(Some("too-short"), Some("S256")).is_err());
        assert!(challenge_ok(Some(&format!("{}=", &CHALLENGE[..42])), Some("S256")).is_err());
    }
}
