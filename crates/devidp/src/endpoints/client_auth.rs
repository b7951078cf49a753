//! Client authentication at `/token` and `/revoke`: `client_secret_basic`
//! (RFC 6749 §2.3.1) and `client_secret_post`, as each client is registered.

use aws_lc_rs::{constant_time, digest};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use crate::config::{Client, ClientAuth, Config};
use crate::http::{oauth_error, Body, Params};

/// Why a client was not authenticated.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientAuthError {
    /// Unknown client, wrong secret, or a method the client is not registered
    /// for: `invalid_client`, 401.
    #[error("{0}")]
    Invalid(&'static str),
    /// A malformed attempt (two methods at once, undecodable header):
    /// `invalid_request`, 400.
    #[error("{0}")]
    Malformed(&'static str),
}

impl ClientAuthError {
    /// The RFC 6749 §5.2 response; 401 carries a `WWW-Authenticate` challenge.
    pub(crate) fn response(&self) -> Response<Body> {
        match self {
            Self::Invalid(why) => {
                let mut resp = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why);
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"portcullis-devidp\""),
                );
                resp
            }
            Self::Malformed(why) => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why),
        }
    }
}

/// The credentials a request presented, and how.
struct Presented {
    id: String,
    secret: String,
    method: ClientAuth,
}

/// Authenticates the client of a token or revocation request.
pub(crate) fn authenticate<'a>(
    config: &'a Config,
    headers: &HeaderMap,
    params: &Params,
) -> Result<&'a Client, ClientAuthError> {
    let presented = presented(headers, params)?;
    let client = config
        .client(&presented.id)
        .ok_or(ClientAuthError::Invalid("unknown client"))?;
    let is_allowed = matches!(
        (client.auth_method, presented.method),
        (ClientAuth::Any, _)
            | (ClientAuth::Basic, ClientAuth::Basic)
            | (ClientAuth::Post, ClientAuth::Post)
    );
    if !is_allowed {
        return Err(ClientAuthError::Invalid(
            "client authentication method not allowed for this client",
        ));
    }
    if !secrets_match(&presented.secret, &client.secret) {
        return Err(ClientAuthError::Invalid("wrong client secret"));
    }
    Ok(client)
}

/// The `client_id` a request claims (Basic user name, else the `client_id`
/// parameter), unauthenticated: only for choosing whether a client-scoped
/// misbehaviour applies before the request is looked at properly.
pub(crate) fn claimed_client_id(headers: &HeaderMap, params: &Params) -> Option<String> {
    match basic_credentials(headers) {
        Ok(Some((id, _))) => Some(id),
        _ => params.get("client_id").map(str::to_owned),
    }
}

/// Reads the credentials from the `Authorization` header or the body (never both,
/// RFC 6749 §2.3).
fn presented(headers: &HeaderMap, params: &Params) -> Result<Presented, ClientAuthError> {
    let basic = basic_credentials(headers)?;
    let post_secret = params.get("client_secret");
    match (basic, post_secret) {
        (Some(_), Some(_)) => Err(ClientAuthError::Malformed(
            "more than one client authentication method",
        )),
        (Some((id, secret)), None) => {
            if params.get("client_id").is_some_and(|p| p != id) {
                return Err(ClientAuthError::Malformed(
                    "client_id differs from the authenticated client",
                ));
            }
            Ok(Presented {
                id,
                secret,
                method: ClientAuth::Basic,
            })
        }
        (None, Some(secret)) => Ok(Presented {
            id: params
                .get("client_id")
                .ok_or(ClientAuthError::Malformed(
                    "client_secret without client_id",
                ))?
                .to_owned(),
            secret: secret.to_owned(),
            method: ClientAuth::Post,
        }),
        (None, None) => Err(ClientAuthError::Invalid("client authentication required")),
    }
}

/// Decodes `Authorization: Basic`: base64 of `id:secret`, each part
/// form-urlencoded first (RFC 6749 §2.3.1), so `+` is a space and `%3A` a colon.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ClientAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ClientAuthError::Malformed("undecodable Authorization header"))?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(ClientAuthError::Malformed("malformed Authorization header"));
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ClientAuthError::Malformed(
            "unsupported Authorization scheme",
        ));
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| ClientAuthError::Malformed("Basic credentials are not base64"))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| ClientAuthError::Malformed("Basic credentials are not UTF-8"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or(ClientAuthError::Malformed("Basic credentials lack a colon"))?;
    Ok(Some((form_decode(id), form_decode(secret))))
}

/// `application/x-www-form-urlencoded` decoding of one value: `+` is a space,
/// `%XX` a byte; a stray `%` is kept as is.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match bytes.get(i + 1..i + 3).and_then(|h| hex_pair(h[0], h[1])) {
                Some(decoded) => {
                    out.push(decoded);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    Some(u8::try_from(hex(hi)? * 16 + hex(lo)?).unwrap_or(0))
}

/// Compares secrets in constant time. Hashing first makes both sides the same
/// length, so not even the secret's length leaks.
fn secrets_match(presented: &str, expected: &str) -> bool {
    let a = digest::digest(&digest::SHA256, presented.as_bytes());
    let b = digest::digest(&digest::SHA256, expected.as_bytes());
    constant_time::verify_slices_are_equal(a.as_ref(), b.as_ref()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut h = HeaderMap::new();
        // "my+app:s%3Acret" → id "my app", secret "s:cret"
        let value = format!("Basic {}", STANDARD.encode("my+app:s%3Acret"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&value).expect("header"),
        );
        let (id, secret) = basic_credentials(&h).expect("decodes").expect("present");
        assert_eq!((id.as_str(), secret.as_str()), ("my app", "s:cret"));
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(secrets_match("s3cret", "s3cret"));
        assert!(!secrets_match("s3cret", "s3cret "));
        assert!(!secrets_match("", "s3cret"));
    }
}
