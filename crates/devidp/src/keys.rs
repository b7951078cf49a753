//! Signing keys and JWS compact serialization: RSA 2048 keys made at start, the
//! JWKS that publishes them, RS256 signing and the verification of our own tokens
//! (userinfo bearer tokens, `id_token_hint`).
//!
//! Signing is done here with aws-lc-rs rather than through a JWT library so that
//! the misbehaviours can produce exactly the malformed tokens they need (any
//! header, `alg: none`, HS256 keyed with the public key).

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, KeyPair as _, UnparsedPublicKey};
use aws_lc_rs::{digest, hmac};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::error::Error;
use crate::random;

/// One RSA signing key with its identifier and published forms.
pub(crate) struct SigningKey {
    kid: String,
    pair: KeyPair,
    /// The JWK (public part only) as published in the JWKS.
    jwk: Value,
    /// The SubjectPublicKeyInfo in PEM: the bytes a naive HS256 verifier would use
    /// as the HMAC secret in the algorithm-confusion attack.
    public_pem: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh RSA 2048 key with a random `kid`.
    ///
    /// # Errors
    /// [`Error::KeyGeneration`] when aws-lc-rs cannot generate or encode the key.
    pub(crate) fn generate() -> Result<Self, Error> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| Error::KeyGeneration)?;
        let kid = random::token(12);
        let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(&components.n),
            "e": URL_SAFE_NO_PAD.encode(&components.e),
        });
        let spki = pair
            .public_key()
            .as_der()
            .map_err(|_| Error::KeyGeneration)?;
        let public_pem = pem("PUBLIC KEY", spki.as_ref());
        Ok(Self {
            kid,
            pair,
            jwk,
            public_pem,
        })
    }

    /// The key's `kid`.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) block.
    pub(crate) fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// Signs `signing_input` (`header.claims`, both base64url) with RS256.
    fn sign_rs256(&self, signing_input: &[u8]) -> Vec<u8> {
        let mut sig = vec![0; self.pair.public_modulus_len()];
        // Signing with a key we generated, into a buffer of the modulus length,
        // fails only if aws-lc-rs itself is broken; an empty signature would then
        // simply fail verification, which is the right outcome for a test IdP.
        if self
            .pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input,
                &mut sig,
            )
            .is_err()
        {
            tracing::error!(kid = %self.kid, "RS256 signing failed");
            sig.clear();
        }
        sig
    }

    /// Returns true if and only if `sig` is a valid RS256 signature of `input`.
    fn verify_rs256(&self, input: &[u8], sig: &[u8]) -> bool {
        let public = UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            self.pair.public_key().as_ref(),
        );
        public.verify(input, sig).is_ok()
    }
}

/// The current signing key and the ones it replaced (still published, so tokens
/// signed before a rotation keep verifying).
#[derive(Debug)]
pub(crate) struct KeySet {
    /// Newest last; the last one signs.
    keys: Vec<SigningKey>,
}

impl KeySet {
    /// A key set with one freshly generated key.
    pub(crate) fn generate() -> Result<Self, Error> {
        Ok(Self {
            keys: vec![SigningKey::generate()?],
        })
    }

    /// The key that signs new tokens.
    pub(crate) fn current(&self) -> &SigningKey {
        self.keys
            .last()
            .expect("a KeySet is never empty: built with one key, keys are only added")
    }

    /// Makes `key` the signing key; the previous ones stay published.
    pub(crate) fn push(&mut self, key: SigningKey) {
        self.keys.push(key);
    }

    /// The JWKS document, newest key first.
    pub(crate) fn jwks(&self) -> Value {
        let keys: Vec<Value> = self.keys.iter().rev().map(|k| k.jwk.clone()).collect();
        json!({ "keys": keys })
    }

    /// Serializes and signs `header` and `claims` with the current key, setting
    /// `alg` to RS256 (the header's other members, `kid` included, are kept as given).
    pub(crate) fn sign(&self, header: &Value, claims: &Value) -> String {
        let mut header = header.clone();
        if let Value::Object(h) = &mut header {
            h.insert("alg".into(), json!("RS256"));
        }
        self.sign_input(&signing_input(&header, claims))
    }

    /// Appends the current key's RS256 signature of `input` (`header.claims`).
    pub(crate) fn sign_input(&self, input: &str) -> String {
        let sig = self.current().sign_rs256(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// Signs the exact JSON texts given (RS256 with the current key, whatever
    /// `header` says), so a token can carry what a `Value` cannot hold, such as
    /// a member named twice.
    pub(crate) fn sign_raw(&self, header: &str, claims: &str) -> String {
        self.sign_input(&format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        ))
    }

    /// A standard RS256 token: header `{alg, typ, kid}` with the current `kid`.
    pub(crate) fn sign_typed(&self, typ: &str, claims: &Value) -> String {
        let header = json!({ "typ": typ, "kid": self.current().kid() });
        self.sign(&header, claims)
    }

    /// Verifies a token signed by any of our keys and returns its claims.
    ///
    /// Only RS256 with a known `kid` is accepted. Claims (`exp`, `iss`, ...) are
    /// the caller's to check.
    pub(crate) fn verify(&self, token: &str) -> Option<Value> {
        let (input, sig) = token.rsplit_once('.')?;
        let (header, claims) = input.split_once('.')?;
        let header: Value = decode_segment(header)?;
        if header.get("alg")?.as_str()? != "RS256" {
            return None;
        }
        let kid = header.get("kid")?.as_str()?;
        let key = self.keys.iter().find(|k| k.kid == kid)?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        if !key.verify_rs256(input.as_bytes(), &sig) {
            return None;
        }
        decode_segment(claims)
    }
}

/// Builds `base64url(header).base64url(claims)`.
pub(crate) fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", encode_segment(header), encode_segment(claims))
}

/// An unsigned token (`alg: none`): the signature part is empty.
pub(crate) fn unsigned(claims: &Value) -> String {
    format!(
        "{}.",
        signing_input(&json!({ "alg": "none", "typ": "JWT" }), claims)
    )
}

/// An HS256 token whose HMAC key is `secret` (used with the public key's PEM for
/// the algorithm-confusion attack).
pub(crate) fn sign_hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = signing_input(header, claims);
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Flips the bits of the last byte of the token's signature, keeping everything
/// else: a token that is well-formed but whose signature no longer verifies.
pub(crate) fn corrupt_signature(token: &str) -> String {
    let Some((input, sig)) = token.rsplit_once('.') else {
        return token.to_owned();
    };
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap_or_default();
    if let Some(last) = sig.last_mut() {
        *last ^= 0xff;
    }
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// The OIDC `at_hash`: base64url of the left half of SHA-256 of the access token
/// (OIDC Core §3.1.3.6, for RS256).
pub(crate) fn at_hash(access_token: &str) -> String {
    let d = digest::digest(&digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
}

fn encode_segment(value: &Value) -> String {
    // Serializing a `serde_json::Value` cannot fail (its keys are strings).
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

fn decode_segment(segment: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// PEM armour: base64 in 64-column lines between BEGIN/END labels (RFC 7468).
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_tokens_verify_and_tampered_ones_do_not() {
        let keys = KeySet::generate().expect("key generation");
        let token = keys.sign_typed("JWT", &json!({"sub": "alice"}));
        assert_eq!(keys.verify(&token).expect("valid")["sub"], "alice");
        assert!(keys.verify(&corrupt_signature(&token)).is_none());
        assert!(keys.verify(&unsigned(&json!({"sub": "alice"}))).is_none());
    }

    #[test]
    fn tokens_signed_before_rotation_still_verify() {
        let mut keys = KeySet::generate().expect("key generation");
        let old = keys.sign_typed("JWT", &json!({"sub": "alice"}));
        keys.push(SigningKey::generate().expect("key generation"));
        assert!(keys.verify(&old).is_some());
        assert_eq!(keys.jwks()["keys"].as_array().map(Vec::len), Some(2));
    }
}
