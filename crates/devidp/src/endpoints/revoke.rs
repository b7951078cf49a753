//! `POST /revoke` (RFC 7009): a client revokes one of its refresh or access
//! tokens (JWT or opaque). `token_type_hint` is only a hint (§2.1): both kinds
//! are looked for whatever it says.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::client_auth::{authenticate, claimed_client_id};
use crate::access;
use crate::http::{json, oauth_error, unavailable, Body, Params};
use crate::misbehaviour::Misbehaviour;
use crate::state::{Counters, Shared};

/// Revokes the token if it is the client's. Unknown tokens also get 200
/// (RFC 7009 §2.2): the answer must not reveal which tokens exist.
pub(crate) async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let (headers, params) = match Params::from_form(req).await {
        Ok(p) => p,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string()),
    };
    let claimed = claimed_client_id(&headers, &params);
    if shared
        .misbehaviour()
        .fire(Misbehaviour::ServiceUnavailable, claimed.as_deref())
    {
        return unavailable();
    }
    let client = match authenticate(&shared.config, &headers, &params) {
        Ok(c) => c,
        Err(e) => return e.response(),
    };
    let Some(token) = params.get("token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        );
    };
    // Revoking a refresh token revokes its family, access tokens included.
    // Two statements: the store guard of the first must be gone before the
    // second locks the store again.
    let is_refresh_revoked = shared.store().revoke_refresh_token(token, &client.id);
    let is_revoked = is_refresh_revoked || revoke_access_token(shared, token, &client.id);
    if is_revoked {
        shared.counters.bump(Counters::revocations);
    }
    json(StatusCode::OK, &json!({}))
}

/// Revokes `token` if it is a live access token of `client_id`; returns true
/// if and only if it did.
fn revoke_access_token(shared: &Shared, token: &str, client_id: &str) -> bool {
    let Some(access) = access::verify(shared, token) else {
        return false;
    };
    let Some(jti) = access.jti.filter(|_| access.client_id == client_id) else {
        return false;
    };
    shared.store().revoke_access(&jti);
    true
}
