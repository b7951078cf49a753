//! `Authorization: Bearer` JWTs for API routes (SPEC §4.3), checked against the
//! provider's JWKS with the same verifier as ID tokens.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
    /// `iss` names no configured provider (SPEC §12).
    #[error("no provider has issuer {0:?}")]
    UnknownIssuer(String),
    /// `iss` names a provider the route does not admit (SPEC §12).
    #[error("the route does not admit tokens of issuer {0:?}")]
    IssuerNotAdmitted(String),
}

impl BearerError {
    /// The `error_description` for the client: coarse, never the token.
    pub fn description(&self) -> &'static str {
        match self {
            BearerError::Malformed => "malformed authorization header",
            BearerError::Token(JwtError::Expired { .. }) => "the token expired",
            BearerError::Token(JwtError::NotYetValid { .. }) => "the token is not valid yet",
            BearerError::Token(JwtError::Audience(_)) => "the token is for another audience",
            BearerError::Token(JwtError::Issuer(_))
            | BearerError::UnknownIssuer(_)
            | BearerError::IssuerNotAdmitted(_) => "the token is from another issuer",
            BearerError::Token(JwtError::Signature) => "bad signature",
            BearerError::Token(JwtError::DuplicateMember { .. }) => {
                "the token has duplicate claim names"
            }
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
/// request: keyed by the whole token itself (an exact match, so no two tokens
/// can share an entry) with the audience it was verified for, bounded in count
/// and in bytes, and never used past the token's `exp`.
///
/// Keyed by the text, not a digest of it: SHA-256 of a 1 KiB token was a
/// quarter of a bearer request's instructions (issue 8), where the map's keyed
/// SipHash and one comparison cost a tenth of that.
pub struct Cache {
    entries: dashmap::DashMap<Box<str>, Verified>,
    max_entries: usize,
    max_bytes: usize,
    /// Token and audience bytes held, approximately (concurrent inserts may
    /// both count before either clears).
    bytes: AtomicUsize,
}

/// What a cached token was verified as.
struct Verified {
    audience: Box<str>,
    /// Shared with every request the token makes, not copied.
    identity: Arc<Identity>,
    exp: i64,
}

impl Cache {
    /// A cache of at most `max_entries` tokens and `max_bytes` of token text.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Cache {
            entries: dashmap::DashMap::new(),
            max_entries,
            max_bytes,
            bytes: AtomicUsize::new(0),
        }
    }

    /// The identity cached for `token` at `audience`, if still before its `exp`
    /// (what a request pays on a hit).
    pub fn lookup(&self, token: &str, audience: &str, now: i64) -> Option<Arc<Identity>> {
        let hit = self.entries.get(token).map(|e| {
            let fits = *e.audience == *audience;
            (fits.then(|| e.identity.clone()), e.exp)
        });
        match hit {
            Some((identity, exp)) if now < exp => identity,
            Some(_) => {
                // Expired: gone for every audience (the guard is dropped above).
                if let Some((token, old)) = self.entries.remove(token) {
                    self.uncount(token.len() + old.audience.len());
                }
                None
            }
            None => None,
        }
    }

    /// Caches `identity` for `token` at `audience` until `exp`.
    pub fn store(&self, token: &str, audience: &str, identity: Arc<Identity>, exp: i64, now: i64) {
        if exp <= now {
            return; // accepted within the clock leeway, but no longer worth keeping
        }
        let size = token.len() + audience.len();
        if self.entries.len() >= self.max_entries
            || self.bytes.load(Ordering::Relaxed).saturating_add(size) > self.max_bytes
        {
            self.entries.retain(|_, v| v.exp > now);
            if self.entries.len() >= self.max_entries || self.held_bytes() + size > self.max_bytes {
                // Still full of live tokens: start over rather than grow.
                self.entries.clear();
            }
            self.bytes.store(self.held_bytes(), Ordering::Relaxed);
        }
        let verified = Verified {
            audience: audience.into(),
            identity,
            exp,
        };
        let replaced = self.entries.insert(token.into(), verified);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        if let Some(old) = replaced {
            self.uncount(token.len() + old.audience.len());
        }
    }

    /// Takes `size` off the byte count, never below zero: a count reset by
    /// [`Cache::store`] may race with a removal.
    fn uncount(&self, size: usize) {
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                Some(held.saturating_sub(size))
            });
    }

    /// Token and audience bytes of the entries, counted (locks every shard in turn).
    fn held_bytes(&self) -> usize {
        self.entries
            .iter()
            .map(|e| e.key().len() + e.audience.len())
            .sum()
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
) -> Result<Arc<Identity>, BearerError> {
    if token.len() > jwt::MAX_TOKEN_BYTES {
        return Err(JwtError::TooLarge(token.len()).into());
    }
    if let Some(identity) = cache.lookup(token, aud.audience, aud.now) {
        return Ok(identity);
    }
    // Boxed: a miss (a signature check, maybe a JWKS fetch) is rare, and its
    // future, kept inline, would be copied on every request whatever it is.
    let (identity, exp) = Box::pin(verify_with_exp(token, issuer, jwks, aud)).await?;
    let identity = Arc::new(identity);
    cache.store(token, aud.audience, identity.clone(), exp, aud.now);
    Ok(identity)
}

/// What a bearer token must satisfy.
pub struct Audience<'a> {
    pub audience: &'a str,
    pub now: i64,
    pub leeway: i64,
    pub roles_claim: &'a [String],
    /// The claims identities keep (`Config::kept_claims`).
    pub kept_claims: &'a [String],
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
    let mut identity = claims::identity(&verified.claims, aud.roles_claim, aud.kept_claims);
    identity.scopes = claims::scopes(&verified.claims);
    if identity.sub.is_empty() {
        return Err(BearerError::NoSubject);
    }
    let exp = jwt::int_claim(&verified.claims, "exp")?.ok_or(JwtError::MissingClaim("exp"))?;
    Ok((identity, exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(sub: &str) -> Arc<Identity> {
        Arc::new(Identity {
            sub: sub.to_owned(),
            ..Identity::default()
        })
    }

    #[test]
    fn a_cached_token_is_found_only_exactly_and_for_its_audience() {
        let cache = Cache::new(10, 1 << 20);
        cache.store("dead.on.arrival", "api", who("bob"), 5, 5);
        assert!(cache.is_empty(), "a token past its exp was cached");
        let token = "aaa.bbb.ccc";
        cache.store(token, "api", who("alice"), 100, 0);

        assert_eq!(
            cache.lookup(token, "api", 1).map(|i| i.sub.clone()),
            Some("alice".to_owned())
        );
        assert!(
            cache.lookup("aaa.bbb.ccd", "api", 1).is_none(),
            "a near token hit"
        );
        assert!(
            cache.lookup("aaa.bbb.cc", "api", 1).is_none(),
            "a prefix hit"
        );
        assert!(
            cache.lookup(token, "other", 1).is_none(),
            "another audience hit"
        );
        assert!(cache.lookup(token, "api", 100).is_none(), "used at its exp");
        assert!(cache.is_empty(), "the expired token is still held");
        assert_eq!(
            cache.bytes.load(Ordering::Relaxed),
            0,
            "bytes still counted"
        );
    }

    #[test]
    fn the_cache_holds_no_more_token_bytes_than_its_budget() {
        let cache = Cache::new(1_000, 4_096);
        for i in 0..100 {
            let token = format!("{i:04}{}", "x".repeat(1_000));
            cache.store(&token, "api", who("alice"), 100, 0);
            assert!(cache.held_bytes() <= 4_096, "over budget after {i} tokens");
        }
        assert!(!cache.is_empty());
    }

    #[test]
    fn the_cache_holds_no_more_tokens_than_its_count() {
        let cache = Cache::new(8, 1 << 20);
        for i in 0..50 {
            cache.store(&format!("t{i}"), "api", who("alice"), 100, 0);
            assert!(cache.len() <= 8);
        }
    }
}
