//! The provider's signing keys (JWKS), shared by ID-token, bearer-token and
//! logout-token checks.
//!
//! Keys are fetched from `jwks_uri`, cached, and refetched when a token names an
//! unknown `kid` (at most once per [`MIN_REFETCH`], so a flood of made-up `kid`s
//! cannot turn the proxy against the provider). Each key admits only the
//! algorithms of its own type: never `none`, never HMAC, so an HMAC token keyed
//! with a public key (the classic confusion) finds no key to verify with.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::Request;
use http_body_util::Full;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;

use super::http::{HttpClient, HttpError};

/// The shortest time between two fetches caused by unknown `kid`s.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);

const RSA_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Why no key could be chosen for a token.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The JWKS could not be fetched.
    #[error("cannot fetch the JWKS: {0}")]
    Fetch(#[from] HttpError),
    /// The JWKS answered, but not with a key set.
    #[error("JWKS at {uri} is not a key set: {reason}")]
    Invalid { uri: String, reason: String },
    /// The `kid` is still unknown after a (rate-limited) refetch.
    #[error("no key {kid:?} in the provider's JWKS")]
    UnknownKey { kid: String },
    /// The token names no `kid`, and the key set has no single key for its algorithm.
    #[error("token names no kid and {candidates} keys could verify {alg:?}")]
    AmbiguousKey { alg: Algorithm, candidates: usize },
    /// The key exists but does not admit the token's algorithm (e.g. HS256 on an RSA key).
    #[error("key {kid:?} does not admit algorithm {alg:?}")]
    AlgorithmNotAllowed { kid: String, alg: Algorithm },
}

/// One usable verification key.
struct Key {
    kid: Option<String>,
    algs: &'static [Algorithm],
    /// A `KeyAlgorithm` pinned by the JWK's `alg`, when it has one.
    pinned: Option<Algorithm>,
    decoding: Arc<DecodingKey>,
}

impl Key {
    fn admits(&self, alg: Algorithm) -> bool {
        self.pinned.map_or(self.algs.contains(&alg), |p| p == alg)
    }
}

/// The cached key set of one provider.
pub struct Jwks {
    /// `portcullis_provider_fetches_total`, when the proxy counts.
    counter: Option<prometheus::IntCounterVec>,
    http: HttpClient,
    uri: String,
    keys: ArcSwap<Vec<Key>>,
    /// When an unknown `kid` last caused a fetch (scheduled fetches do not count,
    /// so a key rotated just after start is still found); held while fetching,
    /// so concurrent misses cause one fetch.
    last_fetch: Mutex<Option<Instant>>,
    /// At most one fetch for unknown `kid`s per this long.
    min_refetch: Duration,
    fetches: std::sync::atomic::AtomicU64,
}

impl Jwks {
    /// An empty cache for `uri`; call [`Jwks::refresh`] before use.
    pub fn new(http: HttpClient, uri: String) -> Self {
        Self::counted(http, uri, None, MIN_REFETCH)
    }

    /// [`Jwks::new`], counting each fetch in `counter{kind="jwks"}`.
    pub fn counted(
        http: HttpClient,
        uri: String,
        counter: Option<prometheus::IntCounterVec>,
        min_refetch: Duration,
    ) -> Self {
        Jwks {
            min_refetch,
            counter,
            http,
            uri,
            keys: ArcSwap::from_pointee(Vec::new()),
            last_fetch: Mutex::new(None),
            fetches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many times the key set was fetched (for metrics and tests).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Fetches the key set now.
    ///
    /// # Errors
    /// When the provider cannot be reached or does not answer with a key set.
    pub async fn refresh(&self) -> Result<(), JwksError> {
        let _turn = self.last_fetch.lock().await;
        self.fetch().await
    }

    async fn fetch(&self) -> Result<(), JwksError> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(counter) = &self.counter {
            counter.with_label_values(&["jwks"]).inc();
        }
        let req = Request::get(&self.uri)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::default())
            .map_err(|e| self.invalid(e.to_string()))?;
        let resp = self.http.send(req).await?;
        if !resp.status.is_success() {
            return Err(self.invalid(format!("status {}", resp.status)));
        }
        let set: JwkSet =
            serde_json::from_slice(&resp.body).map_err(|e| self.invalid(e.to_string()))?;
        let keys: Vec<Key> = set.keys.iter().filter_map(usable_key).collect();
        if keys.is_empty() {
            return Err(self.invalid("no usable signing key".into()));
        }
        tracing::debug!(uri = %self.uri, keys = keys.len(), "JWKS fetched");
        self.keys.store(Arc::new(keys));
        Ok(())
    }

    fn invalid(&self, reason: String) -> JwksError {
        JwksError::Invalid {
            uri: self.uri.clone(),
            reason,
        }
    }

    /// The key to verify a token whose header names `kid` and `alg`.
    ///
    /// # Errors
    /// When no key fits, after at most one rate-limited refetch for an unknown `kid`.
    pub async fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<DecodingKey>, JwksError> {
        match self.find(kid, alg) {
            Err(JwksError::UnknownKey { .. }) => {}
            found => return found,
        }
        {
            let mut last = self.last_fetch.lock().await;
            // Another request may have refetched while this one waited.
            if let found @ Ok(_) = self.find(kid, alg) {
                return found;
            }
            let is_due = last.is_none_or(|t| t.elapsed() >= self.min_refetch);
            if is_due {
                *last = Some(Instant::now());
                if let Err(error) = self.fetch().await {
                    tracing::warn!(%error, "JWKS refetch for an unknown kid failed");
                }
            }
        }
        self.find(kid, alg)
    }

    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<DecodingKey>, JwksError> {
        let keys = self.keys.load();
        match kid {
            Some(kid) => {
                let key = keys
                    .iter()
                    .find(|k| k.kid.as_deref() == Some(kid))
                    .ok_or_else(|| JwksError::UnknownKey {
                        kid: kid.to_owned(),
                    })?;
                if !key.admits(alg) {
                    return Err(JwksError::AlgorithmNotAllowed {
                        kid: kid.to_owned(),
                        alg,
                    });
                }
                Ok(key.decoding.clone())
            }
            None => {
                let candidates: Vec<&Key> = keys.iter().filter(|k| k.admits(alg)).collect();
                match candidates.as_slice() {
                    [one] => Ok(one.decoding.clone()),
                    _ => Err(JwksError::AmbiguousKey {
                        alg,
                        candidates: candidates.len(),
                    }),
                }
            }
        }
    }
}

/// A JWK we can verify signatures with: a public signing key of an asymmetric
/// type; `oct` (HMAC) and encryption keys are skipped.
fn usable_key(jwk: &Jwk) -> Option<Key> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let algs: &'static [Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RSA_ALGS,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            &[Algorithm::EdDSA]
        }
        _ => return None,
    };
    let pinned = match jwk.common.key_algorithm {
        None => None,
        Some(ka) => match asymmetric(ka) {
            Some(alg) if algs.contains(&alg) => Some(alg),
            // An `alg` that contradicts the key type, or names HMAC: not a key to trust.
            _ => return None,
        },
    };
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        kid: jwk.common.key_id.clone(),
        algs,
        pinned,
        decoding: Arc::new(decoding),
    })
}

fn asymmetric(ka: KeyAlgorithm) -> Option<Algorithm> {
    Some(match ka {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}
