//! The one JWT verifier behind ID tokens, bearer tokens and logout tokens.
//!
//! Order matters: the algorithm comes from the provider's key, never from the
//! token (a token cannot choose `none` or HMAC); the signature is checked before
//! any claim is believed; time claims are checked against the injected clock.
//! Before any of that, a header or payload that names a member twice is refused
//! (RFC 7519 §4): we and the app must not read two different tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{decode, decode_header, Algorithm, Validation};
use serde_json::{Map, Value};

use super::jwks::{Jwks, JwksError};
use super::strict_json::{self, DuplicateMember};

/// Tokens larger than this are refused before any parsing (a provider's tokens
/// are a few KiB; a huge one is an attack on the parser or the cache).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token was refused. Logged in full; clients see a coarse reason.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// Over [`MAX_TOKEN_BYTES`].
    #[error("token of {0} bytes is too large")]
    TooLarge(usize),
    /// Not three base64url parts with a JSON header naming a supported algorithm
    /// (`alg: none` lands here: no such algorithm exists for us).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header or payload JSON names a member twice, at any depth (RFC 7519
    /// §4). We would read the last, another parser the first: refused before
    /// anything in the token is believed.
    #[error("token {part} has duplicate member name {name:?}")]
    DuplicateMember {
        /// `"header"` or `"payload"`.
        part: &'static str,
        /// The repeated name, unescaped and cut for logs.
        name: String,
    },
    /// The header lists `crit` extensions, none of which we implement (RFC 7515 §4.1.11).
    #[error("token header has critical extensions {0:?}")]
    CriticalHeader(Vec<String>),
    /// No provider key fits the token.
    #[error(transparent)]
    Key(#[from] JwksError),
    /// The signature does not verify with the provider's key.
    #[error("bad signature")]
    Signature,
    #[error("issuer {0:?} is not the provider")]
    Issuer(String),
    #[error("audience does not include {0:?}")]
    Audience(String),
    #[error("token expired at {exp}")]
    Expired { exp: i64 },
    #[error("token not valid before {nbf}")]
    NotYetValid { nbf: i64 },
    #[error("token issued in the future ({iat})")]
    IssuedInFuture { iat: i64 },
    #[error("token issued too long ago ({iat})")]
    IssuedTooLongAgo { iat: i64 },
    #[error("token has no {0:?} claim")]
    MissingClaim(&'static str),
    #[error("claim {0:?} has the wrong type")]
    ClaimType(&'static str),
}

/// What a token must satisfy besides its signature.
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// Unix seconds, from the injected clock.
    pub now: i64,
    pub leeway: i64,
    /// Refuse tokens without `exp` (every token but some logout tokens).
    pub require_exp: bool,
    /// Refuse tokens whose `iat` is older than this many seconds, when set.
    pub max_age: Option<i64>,
}

/// A verified token: its header and claims.
#[derive(Debug)]
pub struct Verified {
    pub alg: Algorithm,
    pub typ: Option<String>,
    pub claims: Map<String, Value>,
}

/// Verifies `token` against the provider's keys and `expect`.
///
/// # Errors
/// The first check that fails, as [`JwtError`].
pub async fn verify(token: &str, jwks: &Jwks, expect: &Expect<'_>) -> Result<Verified, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::TooLarge(token.len()));
    }
    refuse_duplicate_members(token)?;
    let header = decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
    if let Some(crit) = header.crit.clone().filter(|c| !c.is_empty()) {
        return Err(JwtError::CriticalHeader(crit));
    }
    // `jku`, `x5u`, `jwk` and `x5c` in the header are ignored: keys come only
    // from the provider's JWKS, never from the token.
    let key = jwks.select(header.kid.as_deref(), header.alg).await?;

    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[expect.audience]);
    // `iss` is checked by `check_issuer` alone: jsonwebtoken's check admits
    // arrays that merely hold the issuer.
    validation.set_required_spec_claims(&["aud"]);
    // Time is checked below against our clock, not the system's.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    let data = decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidSignature => JwtError::Signature,
            ErrorKind::InvalidAudience => JwtError::Audience(expect.audience.to_owned()),
            ErrorKind::MissingRequiredClaim(_) => JwtError::MissingClaim("aud"),
            _ => JwtError::Malformed(e.to_string()),
        }
    })?;
    check_issuer(&data.claims, expect.issuer)?;
    check_times(&data.claims, expect)?;
    Ok(Verified {
        alg: header.alg,
        typ: header.typ,
        claims: data.claims,
    })
}

/// Refuses a token whose header or payload names a member twice.
///
/// Runs on the same segments jsonwebtoken decodes next (the first two of
/// exactly three, URL-safe base64 without padding, as it reads them). A token
/// this cannot split or decode is refused here as malformed rather than left
/// to jsonwebtoken: a lenient path around the check would be a way past it.
fn refuse_duplicate_members(token: &str) -> Result<(), JwtError> {
    let mut segments = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(JwtError::Malformed("not three segments".to_owned()));
    };
    for (part, segment) in [("header", header), ("payload", payload)] {
        let json = URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|e| JwtError::Malformed(format!("{part}: {e}")))?;
        match strict_json::refuse_duplicate_members(&json) {
            Ok(()) => {}
            Err(DuplicateMember::Found { name }) => {
                return Err(JwtError::DuplicateMember { part, name })
            }
            Err(DuplicateMember::NotJson(e)) => {
                return Err(JwtError::Malformed(format!("{part}: {e}")))
            }
        }
    }
    Ok(())
}

/// `iss` must be one string equal to the provider's issuer (OIDC Core §3.1.3.7
/// item 2, RFC 9068 §4). Not left to jsonwebtoken: it admits an array that
/// merely holds the issuer among others (found by the `jwt_verify` fuzz
/// target).
fn check_issuer(claims: &Map<String, Value>, issuer: &str) -> Result<(), JwtError> {
    match claims.get("iss") {
        Some(Value::String(iss)) if iss == issuer => Ok(()),
        Some(Value::String(iss)) => Err(JwtError::Issuer(iss.clone())),
        Some(_) => Err(JwtError::ClaimType("iss")),
        None => Err(JwtError::MissingClaim("iss")),
    }
}

fn check_times(claims: &Map<String, Value>, expect: &Expect<'_>) -> Result<(), JwtError> {
    let now = expect.now;
    match int_claim(claims, "exp")? {
        Some(exp) if now > exp.saturating_add(expect.leeway) => {
            return Err(JwtError::Expired { exp })
        }
        None if expect.require_exp => return Err(JwtError::MissingClaim("exp")),
        _ => {}
    }
    if let Some(nbf) = int_claim(claims, "nbf")? {
        if now.saturating_add(expect.leeway) < nbf {
            return Err(JwtError::NotYetValid { nbf });
        }
    }
    if let Some(iat) = int_claim(claims, "iat")? {
        if iat > now.saturating_add(expect.leeway) {
            return Err(JwtError::IssuedInFuture { iat });
        }
        if let Some(max_age) = expect.max_age {
            if iat < now.saturating_sub(max_age).saturating_sub(expect.leeway) {
                return Err(JwtError::IssuedTooLongAgo { iat });
            }
        }
    }
    Ok(())
}

/// A numeric date claim (RFC 7519 §2: may carry a fraction), when present.
pub fn int_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, JwtError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or(JwtError::ClaimType(name)),
        Some(_) => Err(JwtError::ClaimType(name)),
    }
}

/// A string claim, when present.
pub fn str_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, JwtError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JwtError::ClaimType(name)),
    }
}

/// The `aud` claim as a list (it may be one string or an array).
pub fn audiences(claims: &Map<String, Value>) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn a_member_named_twice_in_either_part_is_refused_before_parsing() {
        let header = r#"{"alg":"RS256","kid":"k"}"#;
        let payload = r#"{"sub":"alice","realm_access":{"roles":["admin"]}}"#;
        assert!(refuse_duplicate_members(&token(header, payload)).is_ok());

        let dup_header = r#"{"alg":"RS256","kid":"k","alg":"none"}"#;
        assert!(matches!(
            refuse_duplicate_members(&token(dup_header, payload)),
            Err(JwtError::DuplicateMember { part: "header", name }) if name == "alg"
        ));
        let dup_payload = r#"{"sub":"alice","realm_access":{"roles":[],"r\u006fles":["admin"]}}"#;
        assert!(matches!(
            refuse_duplicate_members(&token(header, dup_payload)),
            Err(JwtError::DuplicateMember { part: "payload", name }) if name == "roles"
        ));
    }

    #[test]
    fn a_token_the_check_cannot_read_is_malformed_not_waved_through() {
        let good = token(r#"{"alg":"RS256"}"#, r#"{"sub":"alice"}"#);
        for bad in [
            format!("{good}.extra"),
            good.rsplit_once('.')
                .map(|(input, _)| input.to_owned())
                .unwrap_or_default(),
            format!("{good}=").replacen('.', "=.", 1),
            token("{", r#"{"sub":"alice"}"#),
        ] {
            assert!(
                matches!(refuse_duplicate_members(&bad), Err(JwtError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
