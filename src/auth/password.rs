//! Password hashing: argon2id (RFC 9106, crate `argon2`) in PHC string form, and the password
//! policy (NIST SP 800-63B).
//!
//! Parameters: m = 19456 KiB (19 MiB), t = 2, p = 1 — OWASP's argon2id minimum. Measured
//! 2026-11 on the 2-core AMD EPYC dev machine (shared, so ±15 %), argon2 0.6.0, one hash:
//!
//! | params (m KiB, t)   | native x86_64 (AVX2) | wasm32, opt-level 3 | wasm32, opt-level z | wasm32 +simd128 |
//! |---------------------|----------------------|---------------------|---------------------|-----------------|
//! | 19456, 2 (chosen)   | 19 ms                | 32 ms               | 37 ms               | 31 ms           |
//! | 19456, 3            | 31 ms                | 45 ms               |                     |                 |
//! | 47104, 1            | 54 ms                | 42 ms               |                     |                 |
//! | 65536, 2            | 100 ms               | 131 ms              |                     |                 |
//!
//! (wasm: a `wasm32-unknown-unknown` cdylib run under Node 20 / V8 11.3, the engine family
//! workerd uses.) About 32–37 ms of Worker CPU per sign-up or login is small against the 30 s
//! paid-plan limit but too much for the Free plan's 10 ms, and 19 MiB of linear memory leaves
//! room in the 128 MB isolate for a large OpenAPI import; 64 MiB would not. Raise `T_COST` before
//! `M_COST` if more strength is wanted: old hashes keep verifying (their parameters are read from
//! the PHC string, within the ceilings below) and [`needs_rehash`] tells the login handler to
//! upgrade them.
//!
//! Invariants: [`verify_password`] never panics and never allocates more than `MAX_M_COST` KiB,
//! whatever PHC string it is given (the stored hash is data, and data can be hostile); the
//! comparison of outputs is constant time.

use argon2::password_hash::phc::{PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};

use super::AuthError;
use crate::crypto::{ct_eq, random_bytes};

/// Memory cost in KiB.
pub const M_COST: u32 = 19_456;
/// Iterations.
pub const T_COST: u32 = 2;
/// Lanes. The Workers runtime is single-threaded, so more lanes only cost memory.
pub const P_COST: u32 = 1;
/// Output (tag) length in bytes.
pub const OUTPUT_LEN: usize = 32;
/// Salt length in bytes (RFC 9106 recommends 16).
pub const SALT_LEN: usize = 16;

/// Ceilings for parameters read from a stored PHC string: a tampered row must not make a login
/// allocate the isolate's whole memory or burn its CPU budget.
const MAX_M_COST: u32 = 65_536;
const MAX_T_COST: u32 = 10;
const MAX_P_COST: u32 = 4;
const MIN_STORED_OUTPUT_LEN: usize = 16;
const MAX_STORED_OUTPUT_LEN: usize = 64;

/// Password policy bounds, in characters (Unicode scalar values).
pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Passwords of the allowed length that top the public breach corpora. NIST 800-63B asks for a
/// blocklist; this is a token one.
// TODO-security: check against a real breached-password list (e.g. a k-anonymity range query
// or a compact bloom filter shipped in KV).
const COMMON_PASSWORDS: &[&str] = &[
    "1234567890",
    "12345678910",
    "123456789a",
    "0123456789",
    "1q2w3e4r5t",
    "qwertyuiop",
    "password12",
    "password123",
    "password1234",
    "1qaz2wsx3edc",
    "qwerty1234",
    "qwerty12345",
    "iloveyou12",
    "abcdefghij",
    "aaaaaaaaaa",
    "0000000000",
    "1111111111",
    "passw0rd123",
    "letmein123",
    "welcome123",
];

fn hasher() -> Result<Argon2<'static>, AuthError> {
    let params = Params::new(M_COST, T_COST, P_COST, Some(OUTPUT_LEN)).map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with a fresh random salt; returns the PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt_bytes: [u8; SALT_LEN] = random_bytes()?;
    let salt = Salt::new(&salt_bytes).map_err(|e| AuthError::Hash(e.to_string()))?;
    let hash =
        hasher()?.hash_password_with_salt(password.as_bytes(), &salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// The parsed, bounded parameters of a stored hash, or `None` if it is not an argon2id v19 PHC
/// string within the ceilings.
fn parse_stored(phc: &str) -> Option<(PasswordHash, Params)> {
    // The longest legitimate string is ~200 bytes; refuse to parse anything absurd.
    if phc.len() > 512 {
        return None;
    }
    let parsed = PasswordHash::new(phc).ok()?;
    if parsed.algorithm.as_str() != "argon2id" || parsed.version != Some(0x13) {
        return None;
    }
    let output_len = parsed.hash.as_ref()?.len();
    if !(MIN_STORED_OUTPUT_LEN..=MAX_STORED_OUTPUT_LEN).contains(&output_len) || parsed.salt.is_none() {
        return None;
    }
    let params = Params::try_from(&parsed).ok()?;
    if params.m_cost() > MAX_M_COST || params.t_cost() > MAX_T_COST || params.p_cost() > MAX_P_COST {
        return None;
    }
    // keyid/data are not used by FlowCP; a hash that carries them was not made here.
    if !params.keyid().is_empty() || !params.data().is_empty() {
        return None;
    }
    Some((parsed, params))
}

/// Checks a password against a stored PHC string. Any malformed, foreign-algorithm or
/// out-of-bounds hash is `false`; this never panics.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Some((parsed, params)) = parse_stored(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt.as_ref(), parsed.hash.as_ref()) else {
        return false;
    };
    let mut out = [0u8; MAX_STORED_OUTPUT_LEN];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    if argon.hash_password_into(password.as_bytes(), salt.as_ref(), out).is_err() {
        return false;
    }
    ct_eq(out, expected.as_bytes())
}

/// Whether a stored hash (that just verified) was made with other parameters than today's and
/// should be replaced by [`hash_password`] of the same password.
pub fn needs_rehash(phc: &str) -> bool {
    match parse_stored(phc) {
        Some((parsed, params)) => {
            params.m_cost() != M_COST
                || params.t_cost() != T_COST
                || params.p_cost() != P_COST
                || parsed.hash.as_ref().map(|h| h.len()) != Some(OUTPUT_LEN)
        }
        None => true,
    }
}

/// A well-formed hash at today's parameters, built from the constants so it cannot drift from
/// them. The all-zero tag is a valid encoding that (with overwhelming probability) no password
/// produces.
fn dummy_phc() -> String {
    format!("$argon2id$v=19$m={M_COST},t={T_COST},p={P_COST}$Zmxvd2NwLWR1bW15LXNh$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
}

/// Spends the same work as a real [`verify_password`], against a hash no password matches, so a
/// login for an unknown email costs as much as a wrong password for a known one.
pub fn equalize_timing(password: &str) {
    let _ = std::hint::black_box(verify_password(password, &dummy_phc()));
}

/// NIST SP 800-63B rules for a new password: 10 to 256 characters, not only whitespace, not a
/// notoriously common one. No composition rules. The message is safe to show.
// TODO-correctness: 800-63B also suggests Unicode normalisation (NFKC) before hashing; we hash
// the exact UTF-8 the browser sent, which is stable for one keyboard but not across platforms.
pub fn check_password_policy(password: &str) -> Result<(), &'static str> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err("The password must be at least 10 characters long.");
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err("The password must be at most 256 characters long.");
    }
    if password.chars().all(char::is_whitespace) {
        return Err("The password cannot be only spaces.");
    }
    let lowered = password.to_lowercase();
    if COMMON_PASSWORDS.contains(&lowered.as_str()) {
        return Err("This password is too common; choose another.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_parses_with_current_parameters() {
        // If the dummy did not parse, equalize_timing would return at once and leak timing.
        let dummy = dummy_phc();
        let (parsed, params) = parse_stored(&dummy).expect("dummy must parse");
        assert_eq!((params.m_cost(), params.t_cost(), params.p_cost()), (M_COST, T_COST, P_COST));
        assert_eq!(parsed.hash.unwrap().len(), OUTPUT_LEN);
        assert!(!needs_rehash(&dummy));
    }

    #[test]
    fn hashes_over_the_memory_ceiling_are_refused_before_hashing() {
        let big =
            "$argon2id$v=19$m=4294967295,t=1,p=1$Zmxvd2NwLWR1bW15LXNh$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(parse_stored(big).is_none());
        assert!(!verify_password("whatever", big));
    }
}
