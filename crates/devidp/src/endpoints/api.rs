//! `GET /api/me`: a protected resource, so the provider can also play the API of
//! a third-party service (SPEC §13). A test calls it *through* the proxy to show
//! that the access token the proxy injected works here.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::userinfo::invalid_token;
use crate::access;
use crate::http::{bearer, json, Body};
use crate::state::{Counters, Shared};

/// Answers `{"sub","client_id","scopes","username","name"}` for a live access
/// token of ours (JWT or opaque) whose user exists; 401 `invalid_token`
/// otherwise (RFC 6750 §3.1).
pub(crate) fn me(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
    shared.counters.bump(Counters::api_calls);
    let access = bearer(req.headers()).and_then(|t| access::verify(shared, t));
    let Some((access, user)) =
        access.and_then(|a| shared.config.user(&a.sub).map(|user| (a, user)))
    else {
        shared.counters.bump(Counters::api_failures);
        return invalid_token();
    };
    let scopes: Vec<&str> = access.scope.split(' ').filter(|s| !s.is_empty()).collect();
    json(
        StatusCode::OK,
        &json!({
            "sub": access.sub,
            "client_id": access.client_id,
            "scopes": scopes,
            "username": user.username,
            "name": user.name,
        }),
    )
}
