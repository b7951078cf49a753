//! `GET|POST /userinfo` (OIDC Core §5.3) with a bearer access token from us.

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::http::{bearer, json, oauth_error, Body};
use crate::misbehaviour::Misbehaviour;
use crate::state::{Counters, Shared};
use crate::tokens;

/// Answers with the claims of the access token's user.
pub(crate) fn handle(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
    shared.counters.bump(Counters::userinfo_calls);
    let Some(claims) = bearer(req.headers()).and_then(|t| verify_access_token(shared, t)) else {
        return invalid_token();
    };
    let Some(user) = claims
        .get("sub")
        .and_then(Value::as_str)
        .and_then(|s| shared.config.user(s))
    else {
        return invalid_token();
    };
    let mut body = tokens::user_claims(&shared.config, user);
    if shared
        .misbehaviour()
        .fire(Misbehaviour::UserinfoSubMismatch)
    {
        body.insert("sub".into(), json!("someone-else"));
    }
    json(StatusCode::OK, &Value::Object(body))
}

/// The claims of an access token if and only if we signed it, it is an access
/// token (it names a `client_id`), for our issuer, unexpired and not revoked.
pub(crate) fn verify_access_token(shared: &Shared, token: &str) -> Option<Value> {
    let claims = shared.keys().verify(token)?;
    let is_ours = claims.get("iss").and_then(Value::as_str) == Some(shared.issuer.as_str());
    let is_live = claims
        .get("exp")
        .and_then(Value::as_u64)
        .is_some_and(|exp| exp > shared.now());
    let is_access_token = claims.get("client_id").and_then(Value::as_str).is_some();
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let is_revoked = shared.store().is_access_revoked(jti);
    (is_ours && is_live && is_access_token && !is_revoked).then_some(claims)
}

/// 401 with the RFC 6750 §3.1 challenge.
fn invalid_token() -> Response<Body> {
    let mut resp = oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "access token missing, invalid, expired or revoked",
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    resp
}
