//! The `X-Portcullis-Identity` assertion (SPEC §7): a short-lived ES256 JWT the
//! proxy signs for an allowed authenticated request, and the JWKS an app checks
//! it with (`{auth_prefix}/jwks.json`, SPEC §8).
//!
//! The app behind the proxy may trust `X-Forwarded-User` because nothing else can
//! reach it; the assertion lets it *verify* instead: signature against the JWKS,
//! `iss` = the proxy's public URL, `aud` = the host it serves, `exp` ≤ 60 s.
//!
//! Signing ES256 costs more than the rest of the request path (STACK.md), so
//! [`Signer::assertion`] reuses a signed assertion for the same identity and
//! audience while more than half of its lifetime remains. An app therefore always
//! receives an assertion valid for at least `ttl / 2` more seconds.
//!
//! A leaf like the rest of `identity`: it signs what it is given and decides
//! nothing about access (only a `Permit` leads here, in `proxy`).

use std::borrow::Cow;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};

use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use dashmap::DashMap;
use http::HeaderValue;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use serde::Serialize;
use url::Url;

use super::Identity;
use crate::config;

/// At most this many signed assertions are kept. Each is a few hundred bytes, so
/// the cache stays under a few MiB however many users are active.
const CACHE_CAPACITY: usize = 10_000;

/// Why the signer could not be built, or an assertion signed. The key file is
/// named; its contents never appear.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Occurs when `identity.signing_key_file` cannot be read.
    #[error("identity.signing_key_file {}: cannot read it: {source}", path.display())]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Occurs when the file holds no PEM private key.
    #[error(
        "identity.signing_key_file {}: no PEM private key in it (expected a P-256 key, \
         \"-----BEGIN PRIVATE KEY-----\", PKCS#8)",
        path.display()
    )]
    NotPem { path: PathBuf },
    /// Occurs when the file holds an RSA (PKCS#1) key: the assertion is ES256.
    #[error(
        "identity.signing_key_file {}: an RSA key; X-Portcullis-Identity is signed with ES256 \
         and needs a P-256 key",
        path.display()
    )]
    NotEc { path: PathBuf },
    /// Occurs when the key is not a valid P-256 key (another curve, Ed25519, or
    /// corrupt).
    #[error(
        "identity.signing_key_file {}: not a valid P-256 (prime256v1) private key; \
         generate one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`",
        path.display()
    )]
    NotP256 { path: PathBuf },
    /// Occurs when aws-lc-rs cannot generate or encode a key.
    #[error("cannot generate a P-256 signing key")]
    Generate,
    /// Occurs when a signed assertion is not a valid header value (never for a
    /// compact JWS, which is base64url and dots).
    #[error("the signed identity assertion is not a valid header value")]
    NotHeaderValue,
    /// Occurs when the JWK thumbprint or the signature cannot be computed.
    #[error("cannot sign the identity assertion: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Signs `X-Portcullis-Identity` assertions and publishes their JWKS.
///
/// Build one at start and keep it across config reloads (unless
/// `[identity]` changed): a generated key lives only as long as its `Signer`,
/// and apps that cached the JWKS would reject assertions from a new one.
pub struct Signer {
    key: EncodingKey,
    header: Header,
    /// `iss`: the proxy's public origin, without a trailing `/`.
    issuer: String,
    /// `exp - iat`, in seconds (1..=60).
    ttl: i64,
    /// A cached assertion is reused while `now - iat` is below this.
    reuse_for: i64,
    kid: String,
    jwks: Bytes,
    cache: DashMap<u64, Cached>,
    /// Seeds the cache key, per process: cache slots cannot be predicted.
    seed: RandomState,
    /// When the cache was last swept of stale entries (unix seconds).
    last_sweep: AtomicI64,
}

/// One signed assertion, with what it was signed for: a hit is compared field by
/// field, so a hash collision can never hand one user's assertion to another.
struct Cached {
    provider: String,
    sub: String,
    email: Option<String>,
    roles: Vec<String>,
    aud: String,
    iat: i64,
    value: HeaderValue,
}

/// The assertion's claims, in the order an app reads them.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    /// The provider's name (SPEC §12): `sub` is unique only within it.
    idp: &'a str,
    /// The provider's issuer, when known.
    #[serde(skip_serializing_if = "str::is_empty")]
    idp_iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    roles: &'a [String],
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

// === impl Signer ===

impl Signer {
    /// A signer with the key of `identity.signing_key_file` (PEM, PKCS#8 or SEC1,
    /// P-256), or a key generated now when none is set. `iss` is the origin of
    /// `public_url` (`server.public_url`, no trailing `/`).
    ///
    /// # Errors
    ///
    /// The key file cannot be read or holds no P-256 private key (the error names
    /// the file), or a key cannot be generated.
    pub fn new(identity: &config::Identity, public_url: &Url) -> Result<Signer, TokenError> {
        let pair = match &identity.signing_key_file {
            Some(path) => read_key(path)?,
            None => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(|_| TokenError::Generate)?,
        };
        let pkcs8 = pair.to_pkcs8v1().map_err(|_| TokenError::Generate)?;
        let jwk = public_jwk(&pair)?;
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        let jwks = serde_json::to_vec(&JwkSet { keys: vec![jwk] })
            .map_err(|e| TokenError::Sign(e.into()))?;

        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.clone());
        // Config caps `identity.ttl` at 60 s; clamp anyway so no caller can mint a
        // long-lived assertion, and keep at least one second of validity.
        let ttl = i64::try_from(identity.ttl.as_secs())
            .unwrap_or(60)
            .clamp(1, 60);
        Ok(Signer {
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            header,
            issuer: public_url.origin().ascii_serialization(),
            ttl,
            reuse_for: ttl / 2,
            kid,
            jwks: Bytes::from(jwks),
            cache: DashMap::new(),
            seed: RandomState::new(),
            last_sweep: AtomicI64::new(i64::MIN),
        })
    }

    /// The `X-Portcullis-Identity` value for `identity` on a request for
    /// `aud_host` (the request's host; lowercased and stripped of a port here) at
    /// unix time `now`.
    ///
    /// The same identity and host get the same assertion while more than half its
    /// lifetime remains (`now - iat < ttl / 2`); then, or when `now` goes back
    /// before `iat`, a new one is signed. Synchronous and holds no lock while
    /// signing, so it may be called from any task.
    ///
    /// # Errors
    ///
    /// [`TokenError::Sign`] when the signature fails (an aws-lc-rs failure, not an
    /// input problem): forward without the header and log it.
    pub fn assertion(
        &self,
        identity: &Identity,
        aud_host: &str,
        now: i64,
    ) -> Result<HeaderValue, TokenError> {
        self.assertion_for(identity, &String::new, aud_host, now)
    }

    /// [`Signer::assertion`] with `idp_iss`, which gives the issuer of the
    /// identity's provider (SPEC §12: the assertion carries `idp` and
    /// `idp_iss`); asked only when a new assertion is signed.
    ///
    /// # Errors
    /// As [`Signer::assertion`].
    pub fn assertion_for(
        &self,
        identity: &Identity,
        idp_iss: &dyn Fn() -> String,
        aud_host: &str,
        now: i64,
    ) -> Result<HeaderValue, TokenError> {
        let aud = audience(aud_host);
        let slot = self.slot(identity, &aud);
        if let Some(hit) = self.cache.get(&slot) {
            if hit.is_for(identity, &aud) && hit.is_fresh(now, self.reuse_for) {
                return Ok(hit.value.clone());
            }
        }
        let value = self.sign(identity, &idp_iss(), &aud, now)?;
        self.remember(slot, identity, &aud, now, value.clone());
        Ok(value)
    }

    /// The body of `GET {auth_prefix}/jwks.json`: `{"keys":[{kty, crv, x, y, use,
    /// alg, kid}]}`, built once. Serve it as `application/json`; it may be cached
    /// (`Cache-Control: public, max-age=300`) since the key only changes on restart.
    pub fn jwks_json(&self) -> Bytes {
        self.jwks.clone()
    }

    /// The key id in every assertion's header: the key's RFC 7638 JWK thumbprint
    /// (SHA-256), stable for a given key file.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `iss` of every assertion.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `exp - iat` of every assertion, in seconds.
    pub fn ttl(&self) -> i64 {
        self.ttl
    }

    fn sign(
        &self,
        identity: &Identity,
        idp_iss: &str,
        aud: &str,
        now: i64,
    ) -> Result<HeaderValue, TokenError> {
        let claims = Claims {
            iss: &self.issuer,
            sub: &identity.sub,
            idp: &identity.provider,
            idp_iss,
            email: identity.email.as_deref(),
            roles: &identity.roles,
            aud,
            iat: now,
            exp: now.saturating_add(self.ttl),
            jti: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
        };
        let token = jsonwebtoken::encode(&self.header, &claims, &self.key)?;
        // A compact JWS is base64url and dots only: always a valid header value.
        HeaderValue::try_from(token).map_err(|_| TokenError::NotHeaderValue)
    }

    fn slot(&self, identity: &Identity, aud: &str) -> u64 {
        let mut h = self.seed.build_hasher();
        identity.provider.hash(&mut h);
        identity.sub.hash(&mut h);
        identity.email.hash(&mut h);
        identity.roles.hash(&mut h);
        aud.hash(&mut h);
        h.finish()
    }

    /// Caches a fresh assertion. When the cache is full, stale entries are swept
    /// (at most once a second, so a full cache of live sessions does not turn every
    /// miss into a scan); if it is still full, the assertion is simply not cached.
    fn remember(&self, slot: u64, identity: &Identity, aud: &str, now: i64, value: HeaderValue) {
        if self.cache.len() >= CACHE_CAPACITY && !self.cache.contains_key(&slot) {
            self.sweep(now);
            if self.cache.len() >= CACHE_CAPACITY {
                return;
            }
        }
        let entry = Cached {
            provider: identity.provider.clone(),
            sub: identity.sub.clone(),
            email: identity.email.clone(),
            roles: identity.roles.clone(),
            aud: aud.to_owned(),
            iat: now,
            value,
        };
        self.cache.insert(slot, entry);
    }

    fn sweep(&self, now: i64) {
        let last = self.last_sweep.swap(now, Ordering::Relaxed);
        if last >= now {
            return;
        }
        let reuse_for = self.reuse_for;
        self.cache.retain(|_, c| c.is_fresh(now, reuse_for));
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.cache.len()
    }
}

impl fmt::Debug for Signer {
    // Cached assertions are bearer credentials for the upstream: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("ttl", &self.ttl)
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

// === impl Cached ===

impl Cached {
    fn is_for(&self, identity: &Identity, aud: &str) -> bool {
        self.provider == identity.provider
            && self.sub == identity.sub
            && self.email == identity.email
            && self.roles == identity.roles
            && self.aud == aud
    }

    fn is_fresh(&self, now: i64, reuse_for: i64) -> bool {
        now >= self.iat && now - self.iat < reuse_for
    }
}

// === keys ===

/// Reads a P-256 private key from a PEM file: PKCS#8 (`BEGIN PRIVATE KEY`), as
/// documented, or SEC1 (`BEGIN EC PRIVATE KEY`, what `openssl ecparam -genkey`
/// writes), since the two hold the same key.
fn read_key(path: &Path) -> Result<EcdsaKeyPair, TokenError> {
    let pem = std::fs::read(path).map_err(|source| TokenError::ReadKey {
        path: path.to_owned(),
        source,
    })?;
    let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TokenError::NotPem {
        path: path.to_owned(),
    })?;
    let parsed = match &der {
        PrivateKeyDer::Pkcs8(key) => {
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key.secret_pkcs8_der())
        }
        PrivateKeyDer::Sec1(key) => EcdsaKeyPair::from_private_key_der(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            key.secret_sec1_der(),
        ),
        PrivateKeyDer::Pkcs1(_) => {
            return Err(TokenError::NotEc {
                path: path.to_owned(),
            })
        }
        _ => {
            return Err(TokenError::NotP256 {
                path: path.to_owned(),
            })
        }
    };
    parsed.map_err(|_| TokenError::NotP256 {
        path: path.to_owned(),
    })
}

/// The public half of `pair` as a JWK (RFC 7517/7518 §6.2), `kid` = its RFC 7638
/// thumbprint, so the same key file always publishes the same `kid`.
fn public_jwk(pair: &EcdsaKeyPair) -> Result<Jwk, TokenError> {
    // An uncompressed SEC1 point: 0x04, then x and y, 32 bytes each for P-256.
    let point = pair.public_key().as_ref();
    let (x, y) = match point {
        [0x04, xy @ ..] if xy.len() == 64 => xy.split_at(32),
        _ => return Err(TokenError::Generate),
    };
    let mut jwk = Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::ES256),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
            key_type: EllipticCurveKeyType::EC,
            curve: EllipticCurve::P256,
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
        }),
    };
    jwk.common.key_id = Some(jwk.thumbprint(ThumbprintHash::SHA256)?);
    Ok(jwk)
}

/// `aud`: the host a request is for, lowercase and without a port, as routes
/// match it. Borrowed in the common case (the proxy passes it so already).
fn audience(host: &str) -> Cow<'_, str> {
    let name = if host.starts_with('[') {
        // An IPv6 literal: the port, if any, follows the `]`.
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests;
