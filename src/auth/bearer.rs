//! `Authorization: Bearer` JWTs for API routes (SPEC §4.3), checked against the
//! provider's JWKS with the same verifier as ID tokens.

use http::{header, HeaderMap};

use crate::identity::Identity;

use super::claims;
use super::jwks::Jwks;
use super::jwt::{self, Expect, JwtError};

/// Why a bearer token was refused. Logged in full; the client sees only
/// `error="invalid_token"` (RFC 6750 §3.1) and a short description.
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    /// More than one `Authorization` header, or not the `Bearer` scheme.
    #[error("malformed Authorization header")]
    Malformed,
    #[error(transparent)]
    Token(#[from] JwtError),
    /// `typ` names something other than a JWT access token.
    #[error("token type {0:?} is not an access token")]
    Type(String),
    #[error("token has no subject")]
    NoSubject,
    /// The provider's keys are not loaded yet (discovery pending): 503, not 401.
    #[error("provider not discovered yet")]
    NotReady,
}

impl BearerError {
    /// The `error_description` for the client: coarse, never the token.
    pub fn description(&self) -> &'static str {
        match self {
            BearerError::Malformed => "malformed authorization header",
            BearerError::Token(JwtError::Expired { .. }) => "the token expired",
            BearerError::Token(JwtError::NotYetValid { .. }) => "the token is not valid yet",
            BearerError::Token(JwtError::Audience(_)) => "the token is for another audience",
            BearerError::Token(JwtError::Issuer(_)) => "the token is from another issuer",
            BearerError::Token(JwtError::Signature) => "bad signature",
            BearerError::Token(_)
            | BearerError::Type(_)
            | BearerError::NoSubject
            | BearerError::NotReady => "the token is invalid",
        }
    }
}

/// The bearer token of the request: `None` when there is no `Authorization`
/// header at all.
///
/// # Errors
/// [`BearerError::Malformed`] for several headers or another scheme.
pub fn token(headers: &HeaderMap) -> Result<Option<&str>, BearerError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(v), None) => v.to_str().map_err(|_| BearerError::Malformed)?,
        _ => return Err(BearerError::Malformed),
    };
    let (scheme, token) = value.split_once(' ').ok_or(BearerError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(BearerError::Malformed);
    }
    Ok(Some(token.trim()))
}

/// Verified tokens, so a hot API client does not pay a signature check per
/// request: keyed by SHA-256 of the expected audience and the whole token,
/// bounded, and never used past the token's `exp`.
pub struct Cache {
    entries: dashmap::DashMap<[u8; 32], (Identity, i64)>,
    capacity: usize,
}

impl Cache {
    pub fn new(capacity: usize) -> Self {
        Cache {
            entries: dashmap::DashMap::new(),
            capacity,
        }
    }

    fn key(token: &str, audience: &str) -> [u8; 32] {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(audience.as_bytes());
        ctx.update(&[0]);
        ctx.update(token.as_bytes());
        ctx.finish()
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes")
    }

    fn get(&self, key: &[u8; 32], now: i64) -> Option<Identity> {
        let hit = self.entries.get(key).map(|e| (e.0.clone(), e.1));
        match hit {
            Some((identity, exp)) if now < exp => Some(identity),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn insert(&self, key: [u8; 32], identity: Identity, exp: i64, now: i64) {
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, e)| *e > now);
            if self.entries.len() >= self.capacity {
                // Still full of live tokens: start over rather than grow.
                self.entries.clear();
            }
        }
        self.entries.insert(key, (identity, exp));
    }

    /// The identity cached for `token` at `audience`, if still before its `exp`
    /// (what a request pays on a hit).
    pub fn lookup(&self, token: &str, audience: &str, now: i64) -> Option<Identity> {
        self.get(&Self::key(token, audience), now)
    }

    /// Caches `identity` for `token` at `audience` until `exp`.
    pub fn store(&self, token: &str, audience: &str, identity: Identity, exp: i64, now: i64) {
        self.insert(Self::key(token, audience), identity, exp, now);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// [`verify`] through `cache`.
///
/// # Errors
/// As [`verify`]; refusals are not cached.
pub async fn verify_cached(
    cache: &Cache,
    token: &str,
    issuer: &str,
    jwks: &Jwks,
    aud: &Audience<'_>,
) -> Result<Identity, BearerError> {
    if token.len() > jwt::MAX_TOKEN_BYTES {
        return Err(JwtError::TooLarge(token.len()).into());
    }
    let key = Cache::key(token, aud.audience);
    if let Some(identity) = cache.get(&key, aud.now) {
        return Ok(identity);
    }
    let (identity, exp) = verify_with_exp(token, issuer, jwks, aud).await?;
    cache.insert(key, identity.clone(), exp, aud.now);
    Ok(identity)
}

/// What a bearer token must satisfy.
pub struct Audience<'a> {
    pub audience: &'a str,
    pub now: i64,
    pub leeway: i64,
    pub roles_claim: &'a [String],
}

/// Verifies `token` and returns the identity it carries.
///
/// # Errors
/// Any failed check, as [`BearerError`].
pub async fn verify(
    token: &str,
    issuer: &str,
    jwks: &Jwks,
    aud: &Audience<'_>,
) -> Result<Identity, BearerError> {
    verify_with_exp(token, issuer, jwks, aud)
        .await
        .map(|(identity, _)| identity)
}

async fn verify_with_exp(
    token: &str,
    issuer: &str,
    jwks: &Jwks,
    aud: &Audience<'_>,
) -> Result<(Identity, i64), BearerError> {
    let expect = Expect {
        issuer,
        audience: aud.audience,
        now: aud.now,
        leeway: aud.leeway,
        require_exp: true,
        max_age: None,
    };
    let verified = jwt::verify(token, jwks, &expect).await?;
    if let Some(typ) = &verified.typ {
        let typ = typ.to_ascii_lowercase();
        if !matches!(typ.as_str(), "jwt" | "at+jwt" | "application/at+jwt") {
            return Err(BearerError::Type(typ));
        }
    }
    // An ID token is not an access token (RFC 9068 §4): ID tokens leak easily
    // (`id_token_hint` in logout URLs) and carry the client as audience.
    if verified.claims.contains_key("nonce") {
        return Err(BearerError::Type("id_token".to_owned()));
    }
    let identity = claims::identity(&verified.claims, aud.roles_claim);
    if identity.sub.is_empty() {
        return Err(BearerError::NoSubject);
    }
    let exp = jwt::int_claim(&verified.claims, "exp")?.ok_or(JwtError::MissingClaim("exp"))?;
    Ok((identity, exp))
}
