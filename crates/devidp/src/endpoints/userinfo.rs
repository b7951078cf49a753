//! `GET|POST /userinfo` (OIDC Core §5.3) with a bearer access token from us.

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::access;
use crate::http::{bearer, json, oauth_error, Body};
use crate::misbehaviour::Misbehaviour;
use crate::state::{Counters, Shared};
use crate::tokens;

/// Answers with the claims of the access token's user.
pub(crate) fn handle(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
    shared.counters.bump(Counters::userinfo_calls);
    let Some(access) = bearer(req.headers()).and_then(|t| access::verify(shared, t)) else {
        return invalid_token();
    };
    let Some(user) = shared.config.user(&access.sub) else {
        return invalid_token();
    };
    let mut body = tokens::user_claims(&shared.config, user);
    if shared
        .misbehaviour()
        .fire(Misbehaviour::UserinfoSubMismatch, Some(&access.client_id))
    {
        body.insert("sub".into(), json!("someone-else"));
    }
    json(StatusCode::OK, &Value::Object(body))
}

/// 401 with the RFC 6750 §3.1 challenge.
pub(crate) fn invalid_token() -> Response<Body> {
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
