//! Envelopes, hashes and constant-time comparisons (DESIGN §7).
//!
//! An envelope is AES-256-GCM with a fresh random 96-bit nonce per seal, written as text:
//! `fcp1.<key id>.<base64url(nonce || ciphertext+tag)>`. The associated data (AAD) binds an
//! envelope to its owner and purpose (e.g. `secret|<workspace>|<name>`), so a ciphertext moved
//! to another record does not open. The key id selects the key; several keys may be live so
//! keys can rotate: the first key of the ring seals, every key of the ring opens.
//!
//! Invariants: no function here logs or formats a key or a plaintext into an error; errors say
//! only which check failed.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const ENVELOPE_VERSION: &str = "fcp1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;
const MAX_KEY_ID_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The key ring specification is malformed (the reason never quotes key material).
    BadKeySpec(String),
    /// The envelope is not of the form `fcp1.<kid>.<data>` or its data is not base64url.
    Malformed,
    /// The envelope names a key id that is not (or no longer) in the ring.
    UnknownKey(String),
    /// Authentication failed: tampered ciphertext, wrong AAD or wrong key.
    Unauthentic,
    /// The system random source failed.
    Random,
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CryptoError::BadKeySpec(why) => write!(f, "bad key specification: {why}"),
            CryptoError::Malformed => f.write_str("malformed envelope"),
            CryptoError::UnknownKey(kid) => write!(f, "envelope key id {kid:?} is not in the key ring"),
            CryptoError::Unauthentic => f.write_str("envelope failed authentication"),
            CryptoError::Random => f.write_str("random source failed"),
        }
    }
}

impl std::error::Error for CryptoError {}

/// A set of AES-256 keys with ids; the first one seals.
pub struct Keyring {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

impl Keyring {
    /// Parses `kid:hex64[,kid:hex64...]` (the format of the `FLOWCP_ENCRYPTION_KEYS` secret).
    /// Key ids are 1..=16 characters of `[A-Za-z0-9_-]`; keys are 32 bytes in hex.
    pub fn parse(spec: &str) -> Result<Self, CryptoError> {
        let mut keys: Vec<(String, Aes256Gcm)> = Vec::new();
        for (i, item) in spec.split(',').map(str::trim).filter(|s| !s.is_empty()).enumerate() {
            let (kid, hex_key) = item
                .split_once(':')
                .ok_or_else(|| CryptoError::BadKeySpec(format!("entry {} is not kid:hexkey", i + 1)))?;
            if !valid_key_id(kid) {
                return Err(CryptoError::BadKeySpec(format!("entry {} has an invalid key id", i + 1)));
            }
            let bytes = hex::decode(hex_key.trim())
                .map_err(|_| CryptoError::BadKeySpec(format!("entry {} key is not hex", i + 1)))?;
            if bytes.len() != KEY_LEN {
                return Err(CryptoError::BadKeySpec(format!("entry {} key is not 32 bytes", i + 1)));
            }
            if keys.iter().any(|(id, _)| id == kid) {
                return Err(CryptoError::BadKeySpec(format!("key id {kid:?} appears twice")));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| CryptoError::BadKeySpec("key length".into()))?;
            keys.push((kid.to_string(), cipher));
        }
        if keys.is_empty() {
            return Err(CryptoError::BadKeySpec("no keys".into()));
        }
        Ok(Keyring { keys })
    }

    /// The id of the key that seals new envelopes.
    pub fn primary_id(&self) -> &str {
        &self.keys[0].0
    }

    /// Encrypts `plaintext` bound to `aad` with the primary key and a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, CryptoError> {
        let nonce_bytes: [u8; NONCE_LEN] = random_bytes()?;
        self.seal_with_nonce(plaintext, aad, nonce_bytes)
    }

    fn seal_with_nonce(&self, plaintext: &[u8], aad: &[u8], nonce: [u8; NONCE_LEN]) -> Result<String, CryptoError> {
        let (kid, cipher) = &self.keys[0];
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .map_err(|_| CryptoError::Unauthentic)?;
        let mut data = Vec::with_capacity(NONCE_LEN + ct.len());
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&ct);
        Ok(format!("{ENVELOPE_VERSION}.{kid}.{}", URL_SAFE_NO_PAD.encode(data)))
    }

    /// Decrypts an envelope made by [`Keyring::seal`] with the same `aad`.
    pub fn open(&self, envelope: &str, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut parts = envelope.splitn(3, '.');
        let (Some(version), Some(kid), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CryptoError::Malformed);
        };
        if version != ENVELOPE_VERSION || !valid_key_id(kid) {
            return Err(CryptoError::Malformed);
        }
        let data = URL_SAFE_NO_PAD.decode(data).map_err(|_| CryptoError::Malformed)?;
        if data.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        let (_, cipher) =
            self.keys.iter().find(|(id, _)| id == kid).ok_or_else(|| CryptoError::UnknownKey(kid.to_string()))?;
        let (nonce, ct) = data.split_at(NONCE_LEN);
        cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad }).map_err(|_| CryptoError::Unauthentic)
    }
}

/// The key id an envelope names (`fcp1.<kid>.<data>`), if it is one of ours in shape.
pub fn envelope_key_id(envelope: &str) -> Option<&str> {
    let mut parts = envelope.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(ENVELOPE_VERSION), Some(kid), Some(_)) if valid_key_id(kid) => Some(kid),
        _ => None,
    }
}

fn valid_key_id(kid: &str) -> bool {
    crate::vocab::is_plain_id(kid, MAX_KEY_ID_LEN)
}

/// AAD for a named workspace secret.
pub fn aad_workspace_secret(workspace_id: &str, name: &str) -> Vec<u8> {
    format!("secret|{workspace_id}|{name}").into_bytes()
}

/// AAD for a server's upstream credential.
// TODO-security(issue 11): bind the credential's confirmed origin into this AAD, so a sealed
// credential cannot be replayed under another origin binding.
pub fn aad_server_credential(server_id: &str) -> Vec<u8> {
    format!("credential|{server_id}").into_bytes()
}

/// Fills an array from the system random source (crypto.getRandomValues on Workers).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out).map_err(|_| CryptoError::Random)?;
    Ok(out)
}

/// A random identifier: `prefix` + 128 bits in base64url (22 characters).
pub fn random_id(prefix: &str) -> Result<String, CryptoError> {
    let bytes: [u8; 16] = random_bytes()?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// A random bearer token: `prefix` + 256 bits in base64url (43 characters). Store only its
/// SHA-256 ([`sha256_hex`]).
pub fn random_token(prefix: &str) -> Result<String, CryptoError> {
    let bytes: [u8; 32] = random_bytes()?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// SHA-256 truncated to `hex_chars` hex characters (connection hashes, DESIGN §8).
pub fn sha256_hex_truncated(data: &[u8], hex_chars: usize) -> String {
    let mut h = sha256_hex(data);
    h.truncate(hex_chars.min(64));
    h
}

/// HMAC-SHA-256 of `data` under `key`, base64url.
pub fn hmac_sha256_b64(key: &[u8], data: &[u8]) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for Hmac<Sha256>.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn same_plaintext_seals_to_different_envelopes() {
        let ring = Keyring::parse(&format!("k1:{K1}")).unwrap();
        let a = ring.seal(b"x", b"aad").unwrap();
        let b = ring.seal(b"x", b"aad").unwrap();
        assert_ne!(a, b, "nonces must be fresh");
    }

    #[test]
    fn fixed_nonce_envelope_has_stable_layout() {
        let ring = Keyring::parse(&format!("k1:{K1}")).unwrap();
        let env = ring.seal_with_nonce(b"hello", b"a", [7; 12]).unwrap();
        assert!(env.starts_with("fcp1.k1."));
        let data = URL_SAFE_NO_PAD.decode(env.rsplit('.').next().unwrap()).unwrap();
        assert_eq!(&data[..12], &[7; 12]);
        assert_eq!(data.len(), 12 + 5 + 16);
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256_b64(b"Jefe", b"what do ya want for nothing?");
        let raw = URL_SAFE_NO_PAD.decode(mac).unwrap();
        assert_eq!(hex::encode(raw), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
