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
    let identity = claims::identity(&verified.claims, aud.roles_claim);
    if identity.sub.is_empty() {
        return Err(BearerError::NoSubject);
    }
    Ok(identity)
}
