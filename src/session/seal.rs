//! Authenticated encryption for data that leaves the process: login state in a
//! cookie, session records in Redis (SPEC §5).
//!
//! AES-256-GCM (aws-lc-rs) with a fresh random nonce per seal. Keys are derived
//! with HKDF-SHA256 from the configured secrets and a purpose label, so a
//! login-state cookie can never be opened as a session record. The first secret
//! seals; every secret opens (rotation). The caller's associated data binds a
//! ciphertext to its place (a cookie name, a store key), so it cannot be moved.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::config::Secret;

/// The format version byte in front of every sealed value.
const VERSION: u8 = 1;
const SALT: &[u8] = b"portcullis seal v1";

/// Seals and opens values for one purpose.
pub struct Sealer {
    /// The first seals; all open.
    keys: Vec<LessSafeKey>,
}

/// Why a secret from the config cannot be used as a key.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("secret #{index} is not base64")]
    NotBase64 { index: usize },
    #[error("secret #{index} decodes to {len} bytes; at least 32 are needed")]
    TooShort { index: usize, len: usize },
}

impl Sealer {
    /// Keys for `purpose` derived from `secrets` (base64, >= 32 bytes each); a
    /// random per-process key when `secrets` is empty.
    ///
    /// # Errors
    /// When a secret is not base64 or too short (the config loader checks this first).
    pub fn from_secrets(secrets: &[Secret], purpose: &str) -> Result<Self, SealError> {
        if secrets.is_empty() {
            return Ok(Self::random(purpose));
        }
        let mut keys = Vec::with_capacity(secrets.len());
        for (index, secret) in secrets.iter().enumerate() {
            let bytes = secret
                .decode_base64()
                .ok_or(SealError::NotBase64 { index })?;
            if bytes.len() < 32 {
                return Err(SealError::TooShort {
                    index,
                    len: bytes.len(),
                });
            }
            keys.push(derive(&bytes, purpose));
        }
        Ok(Sealer { keys })
    }

    /// A key that lives and dies with this process.
    pub fn random(purpose: &str) -> Self {
        let secret: [u8; 32] = rand::random();
        Sealer {
            keys: vec![derive(&secret, purpose)],
        }
    }

    /// `VERSION || nonce || ciphertext || tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        out.push(VERSION);
        out.extend_from_slice(&nonce_bytes);
        let mut in_out = plaintext.to_vec();
        self.keys[0]
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut in_out,
            )
            .expect("AES-GCM sealing of an in-memory buffer cannot fail");
        out.extend_from_slice(&in_out);
        out
    }

    /// The plaintext, or `None` when `sealed` was not made by one of our keys
    /// with this `aad` (tampered, moved, foreign or from a retired key).
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (&version, rest) = sealed.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.keys.iter().find_map(|key| {
            let mut in_out = ciphertext.to_vec();
            key.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut in_out,
            )
            .ok()
            .map(|plain| plain.to_vec())
        })
    }

    /// [`Sealer::seal`] as unpadded base64url, for cookies.
    pub fn seal_text(&self, aad: &[u8], plaintext: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.seal(aad, plaintext))
    }

    /// [`Sealer::open`] of [`Sealer::seal_text`] output.
    pub fn open_text(&self, aad: &[u8], sealed: &str) -> Option<Vec<u8>> {
        self.open(aad, &URL_SAFE_NO_PAD.decode(sealed).ok()?)
    }
}

fn derive(secret: &[u8], purpose: &str) -> LessSafeKey {
    let info = [purpose.as_bytes()];
    let prk = Salt::new(HKDF_SHA256, SALT).extract(secret);
    let okm = prk
        .expand(&info, &AES_256_GCM)
        .expect("HKDF output of one AES-256 key length is valid");
    let key: UnboundKey = okm.into();
    LessSafeKey::new(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    /// `portcullis check` (config's `Secret::decode_base64`) and the sealer
    /// read a secret alike: one with non-canonical padding passed `check` and
    /// failed `run`. See: the `config_load` fuzz target.
    #[test]
    fn a_secret_check_accepts_opens_a_sealer() {
        let odd = Secret::new("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ=");
        assert_eq!(odd.decode_base64().map(|b| b.len()), Some(34));
        assert!(Sealer::from_secrets(&[odd], "test").is_ok());
    }

    fn secret(byte: u8) -> Secret {
        Secret::new(STANDARD.encode([byte; 32]))
    }

    #[test]
    fn opens_what_it_sealed_and_nothing_else() {
        let sealer = Sealer::from_secrets(&[secret(1)], "test").expect("keys");
        let sealed = sealer.seal(b"place", b"hello");
        assert_eq!(
            sealer.open(b"place", &sealed).as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(
            sealer.open(b"elsewhere", &sealed),
            None,
            "bound to its place"
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(sealer.open(b"place", &tampered), None, "tampering detected");
        assert_ne!(
            sealer.seal(b"place", b"hello"),
            sealed,
            "fresh nonce every time"
        );
    }

    #[test]
    fn purpose_and_secret_separate_keys() {
        let a = Sealer::from_secrets(&[secret(1)], "login").expect("keys");
        let b = Sealer::from_secrets(&[secret(1)], "session").expect("keys");
        let c = Sealer::from_secrets(&[secret(2)], "login").expect("keys");
        let sealed = a.seal(b"", b"x");
        assert_eq!(b.open(b"", &sealed), None);
        assert_eq!(c.open(b"", &sealed), None);
    }

    #[test]
    fn rotation_seals_with_the_first_and_opens_with_all() {
        let old = Sealer::from_secrets(&[secret(1)], "p").expect("keys");
        let rotated = Sealer::from_secrets(&[secret(2), secret(1)], "p").expect("keys");
        let from_old = old.seal(b"", b"kept");
        assert_eq!(rotated.open(b"", &from_old).as_deref(), Some(&b"kept"[..]));
        let from_new = rotated.seal(b"", b"new");
        assert_eq!(
            old.open(b"", &from_new),
            None,
            "the old key cannot open new data"
        );
    }

    #[test]
    fn short_or_garbled_secrets_are_refused() {
        assert!(matches!(
            Sealer::from_secrets(&[Secret::new(STANDARD.encode([0u8; 16]))], "p"),
            Err(SealError::TooShort { len: 16, .. })
        ));
        assert!(matches!(
            Sealer::from_secrets(&[Secret::new("not base64 !!")], "p"),
            Err(SealError::NotBase64 { .. })
        ));
    }
}
