//! HTTP plumbing shared by the endpoints: reading parameters from the query or a
//! form body, and building JSON, HTML, redirect and OAuth error responses.

use std::collections::HashMap;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

/// Every response body: small and fully built in memory.
pub(crate) type Body = Full<Bytes>;

/// Largest form body accepted; the biggest legitimate one (end_session with an
/// `id_token_hint`, or the sign-in form) is a few KiB.
const MAX_BODY: usize = 64 * 1024;

/// Request parameters (query or form body), each name at most once: OAuth 2.0
/// forbids repeated parameters (RFC 6749 §3.1, §3.2).
#[derive(Debug, Default)]
pub(crate) struct Params(HashMap<String, String>);

/// Why parameters could not be read. The message is safe to show to the client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ParamError {
    /// A parameter name appeared twice.
    #[error("parameter {0:?} is repeated")]
    Repeated(String),
    /// The body was larger than [`MAX_BODY`] or could not be read.
    #[error("request body unreadable or larger than {MAX_BODY} bytes")]
    Body,
    /// A POST body was not `application/x-www-form-urlencoded`.
    #[error("content type must be application/x-www-form-urlencoded")]
    ContentType,
}

impl Params {
    /// Parses `application/x-www-form-urlencoded` text.
    pub(crate) fn parse(input: &[u8]) -> Result<Self, ParamError> {
        let mut map = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(input) {
            if map.insert(k.to_string(), v.into_owned()).is_some() {
                return Err(ParamError::Repeated(k.into_owned()));
            }
        }
        Ok(Self(map))
    }

    /// The parameters of the request's query string.
    pub(crate) fn from_query<B>(req: &Request<B>) -> Result<Self, ParamError> {
        Self::parse(req.uri().query().unwrap_or("").as_bytes())
    }

    /// The parameters of a form body; also returns the request's headers.
    pub(crate) async fn from_form(req: Request<Incoming>) -> Result<(HeaderMap, Self), ParamError> {
        let (parts, body) = req.into_parts();
        if !is_form(&parts.headers) {
            return Err(ParamError::ContentType);
        }
        let bytes = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|_| ParamError::Body)?
            .to_bytes();
        Ok((parts.headers, Self::parse(&bytes)?))
    }

    /// The value of `name`; an empty value counts as absent (RFC 6749 §3.1).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// All parameters, for carrying an authorization request through the form.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// A JSON response that no cache may keep (RFC 6749 §5.1).
pub(crate) fn json(status: StatusCode, body: &Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// An RFC 6749 §5.2 error body.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    json(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

/// 503 as a load balancer sends it when the service behind it is down: an
/// HTML body (no OAuth JSON) and `Retry-After` (RFC 9110 §10.2.3).
pub(crate) fn unavailable() -> Response<Body> {
    let mut resp = html(
        StatusCode::SERVICE_UNAVAILABLE,
        crate::html::error_page("The service is temporarily unavailable."),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// An HTML page that cannot be framed or cached and runs no script.
pub(crate) fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(page)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// A 302 to `location`. Falls back to an error page if `location` cannot be a
/// header value (it is always built from a registered URI plus encoded
/// parameters, so this is defensive).
pub(crate) fn redirect(location: &str) -> Response<Body> {
    let Ok(value) = HeaderValue::from_str(location) else {
        return html(
            StatusCode::BAD_REQUEST,
            crate::html::error_page("Invalid redirect target."),
        );
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::FOUND;
    resp.headers_mut().insert(header::LOCATION, value);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `base` with `params` appended to its query (keeping any query it has).
pub(crate) fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(base) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(params);
            url.to_string()
        }
        // Registered URIs are compared exactly, not parsed; keep an odd one as is.
        Err(_) => {
            let sep = if base.contains('?') { '&' } else { '?' };
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params)
                .finish();
            format!("{base}{sep}{query}")
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The bearer token of an `Authorization` header (RFC 6750 §2.1).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(Params::parse(b"a=1&b=2").is_ok());
        assert!(matches!(
            Params::parse(b"a=1&a=2"),
            Err(ParamError::Repeated(_))
        ));
    }

    #[test]
    fn with_query_keeps_an_existing_query() {
        assert_eq!(
            with_query("http://h/cb?x=1", &[("code", "a b")]),
            "http://h/cb?x=1&code=a+b"
        );
    }

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; devidp=xyz; b=2"),
        );
        assert_eq!(cookie(&h, "devidp").as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
