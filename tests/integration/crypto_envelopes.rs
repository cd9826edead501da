//! Envelope properties the design relies on (DESIGN §7): round trip, tamper evidence,
//! AAD binding, key rotation and key retirement.

use flowcp::crypto::{self, CryptoError, Keyring};

const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const K2: &str = "f0e0d0c0b0a090807060504030201000f0e0d0c0b0a0908070605040302010ff";

fn ring(spec: &str) -> Keyring {
    Keyring::parse(spec).expect("valid key spec")
}

#[test]
fn envelope_round_trips() {
    let r = ring(&format!("k1:{K1}"));
    let aad = crypto::aad_workspace_secret("ws_1", "STRIPE_KEY");
    for plaintext in [&b""[..], b"sk_live_123", &[0u8, 255, 10, 13][..], &vec![b'x'; 100_000][..]] {
        let env = r.seal(plaintext, &aad).unwrap();
        assert_eq!(r.open(&env, &aad).unwrap(), plaintext);
    }
}

#[test]
fn envelope_does_not_contain_plaintext() {
    let r = ring(&format!("k1:{K1}"));
    let env = r.seal(b"super-secret-value", b"a").unwrap();
    assert!(!env.contains("super-secret-value"));
}

#[test]
fn tampered_ciphertext_is_rejected() {
    let r = ring(&format!("k1:{K1}"));
    let env = r.seal(b"secret", b"aad").unwrap();
    let (head, data) = env.rsplit_once('.').unwrap();
    // Flip every position of the data part in turn: none may open.
    for i in 0..data.len() {
        let mut bytes = data.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let forged = format!("{head}.{}", String::from_utf8(bytes).unwrap());
        if forged == env {
            continue;
        }
        let got = r.open(&forged, b"aad");
        assert!(matches!(got, Err(CryptoError::Unauthentic) | Err(CryptoError::Malformed)), "position {i}: {got:?}");
    }
}

#[test]
fn truncated_or_garbage_envelopes_are_malformed() {
    let r = ring(&format!("k1:{K1}"));
    for bad in [
        "",
        "fcp1",
        "fcp1.k1",
        "fcp1.k1.",
        "fcp1.k1.AAAA",
        "fcp2.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "fcp1.k1.!!!",
        "fcp1.bad key.AAAA",
    ] {
        assert_eq!(r.open(bad, b""), Err(CryptoError::Malformed), "{bad:?}");
    }
}

#[test]
fn wrong_aad_is_rejected() {
    let r = ring(&format!("k1:{K1}"));
    let env = r.seal(b"secret", &crypto::aad_workspace_secret("ws_1", "A")).unwrap();
    assert_eq!(r.open(&env, &crypto::aad_workspace_secret("ws_2", "A")), Err(CryptoError::Unauthentic));
    assert_eq!(r.open(&env, &crypto::aad_workspace_secret("ws_1", "B")), Err(CryptoError::Unauthentic));
    assert_eq!(r.open(&env, &crypto::aad_server_credential("ws_1")), Err(CryptoError::Unauthentic));
}

#[test]
fn wrong_key_with_same_id_is_rejected() {
    let sealer = ring(&format!("k1:{K1}"));
    let other = ring(&format!("k1:{K2}"));
    let env = sealer.seal(b"secret", b"aad").unwrap();
    assert_eq!(other.open(&env, b"aad"), Err(CryptoError::Unauthentic));
}

#[test]
fn rotation_seals_with_new_key_and_opens_old_envelopes() {
    let old = ring(&format!("k1:{K1}"));
    let old_env = old.seal(b"old", b"aad").unwrap();
    let rotated = ring(&format!("k2:{K2},k1:{K1}"));
    assert_eq!(rotated.primary_id(), "k2");
    let new_env = rotated.seal(b"new", b"aad").unwrap();
    assert!(new_env.starts_with("fcp1.k2."));
    assert_eq!(rotated.open(&old_env, b"aad").unwrap(), b"old");
    assert_eq!(rotated.open(&new_env, b"aad").unwrap(), b"new");
}

#[test]
fn retired_key_no_longer_opens() {
    let old = ring(&format!("k1:{K1}"));
    let env = old.seal(b"old", b"aad").unwrap();
    let retired = ring(&format!("k2:{K2}"));
    assert_eq!(retired.open(&env, b"aad"), Err(CryptoError::UnknownKey("k1".into())));
}

#[test]
fn bad_key_specs_are_refused_without_echoing_key_material() {
    let cases = [
        String::new(),
        "k1".to_string(),
        format!("k1:{}", &K1[..62]),
        "k1:zz".to_string(),
        format!("k1:{K1},k1:{K2}"),
        format!("bad id:{K1}"),
    ];
    for spec in cases {
        let err = Keyring::parse(&spec).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, CryptoError::BadKeySpec(_)), "{spec}");
        assert!(!text.contains(&K1[..16]) && !text.contains(&K2[..16]), "{text}");
    }
}

#[test]
fn keyring_debug_does_not_print_keys() {
    let r = ring(&format!("k1:{K1}"));
    let dbg = format!("{r:?}");
    assert!(dbg.contains("k1") && !dbg.contains(&K1[..8]), "{dbg}");
}

#[test]
fn sha256_helpers_match_known_vectors() {
    assert_eq!(crypto::sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(crypto::sha256_hex_truncated(b"abc", 16), "ba7816bf8f01cfea");
    assert!(crypto::ct_eq(b"abc", b"abc"));
    assert!(!crypto::ct_eq(b"abc", b"abd"));
    assert!(!crypto::ct_eq(b"abc", b"ab"));
}

#[test]
fn random_ids_are_unique_and_url_safe() {
    let a = crypto::random_id("srv_").unwrap();
    let b = crypto::random_id("srv_").unwrap();
    assert_ne!(a, b);
    assert_eq!(a.len(), 4 + 22);
    assert!(a[4..].bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
}

/// Envelopes sealed by an independent AES-256-GCM implementation (Node's `crypto`, fixed key
/// and nonces) in the documented format `fcp1.<kid>.<base64url(nonce || ct+tag)>` with the
/// documented AAD strings. Production data is sealed this way: a change of the format, the
/// alphabet, the nonce layout or an AAD string makes every stored value unopenable, and fails
/// here first. Never regenerate these to make the test pass.
const GOLDEN_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const GOLDEN_CREDENTIAL: &str = "fcp1.k1.AQIDBAUGBwgJCgsMCRlazIFhwB6Nl9elCYFAcQH7x5JZhY8iQCVjsydr6ZnHtj35H7BA1ys";
const GOLDEN_SECRET: &str = "fcp1.k1.DAsKCQgHBgUEAwIBlzrLybjrCxmWxX_LUXVLwN_8QrQ3XB9hFGNxYoZvsXlM7RgJk5FV";

#[test]
fn golden_envelopes_of_the_stored_format_still_open() {
    let r = ring(&format!("k1:{GOLDEN_KEY}"));
    let cred = r.open(GOLDEN_CREDENTIAL, &crypto::aad_server_credential("srv_golden")).unwrap();
    assert_eq!(cred, b"sk_live_golden_credential");
    let secret = r.open(GOLDEN_SECRET, &crypto::aad_workspace_secret("ws_golden", "STRIPE_KEY")).unwrap();
    assert_eq!(secret, b"golden workspace secret");
    // The other record's AAD does not open it (the binding is real, not incidental).
    assert_eq!(r.open(GOLDEN_CREDENTIAL, &crypto::aad_server_credential("srv_other")), Err(CryptoError::Unauthentic));
}

#[test]
fn aad_strings_are_pinned() {
    assert_eq!(crypto::aad_server_credential("srv_1"), b"credential|srv_1");
    assert_eq!(crypto::aad_workspace_secret("ws_1", "TOKEN"), b"secret|ws_1|TOKEN");
}

#[test]
fn a_tampered_version_or_key_id_prefix_is_refused() {
    let r = ring(&format!("k1:{GOLDEN_KEY}"));
    let aad = crypto::aad_server_credential("srv_golden");
    let data = GOLDEN_CREDENTIAL.strip_prefix("fcp1.k1.").unwrap();
    for forged in
        [format!("fcp2.k1.{data}"), format!("FCP1.k1.{data}"), format!("fcp1.k2.{data}"), format!("fcp1..{data}")]
    {
        assert!(r.open(&forged, &aad).is_err(), "{forged}");
    }
    assert_eq!(r.open(&format!("fcp1.k2.{data}"), &aad), Err(CryptoError::UnknownKey("k2".into())));
}

#[test]
fn key_ids_are_refused_unless_short_and_plain() {
    for bad in ["k 1", "k.1", "k/1", "", "k1234567890123456"] {
        assert!(Keyring::parse(&format!("{bad}:{GOLDEN_KEY}")).is_err(), "{bad:?}");
    }
    for good in ["k1", "K-1", "key_2026", "k123456789012345"] {
        assert!(Keyring::parse(&format!("{good}:{GOLDEN_KEY}")).is_ok(), "{good:?}");
    }
}

#[test]
fn crypto_errors_say_which_check_failed() {
    assert_eq!(CryptoError::Unauthentic.to_string(), "envelope failed authentication");
    assert_eq!(CryptoError::Malformed.to_string(), "malformed envelope");
    assert_eq!(CryptoError::UnknownKey("k9".into()).to_string(), "envelope key id \"k9\" is not in the key ring");
}
