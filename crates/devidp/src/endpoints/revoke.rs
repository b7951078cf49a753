//! `POST /revoke` (RFC 7009): a client revokes one of its refresh or access tokens.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::client_auth::authenticate;
use super::userinfo::verify_access_token;
use crate::http::{json, oauth_error, Body, Params};
use crate::state::{Counters, Shared};

/// Revokes the token if it is the client's. Unknown tokens also get 200
/// (RFC 7009 §2.2): the answer must not reveal which tokens exist.
pub(crate) async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let (headers, params) = match Params::from_form(req).await {
        Ok(p) => p,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string()),
    };
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

fn revoke_access_token(shared: &Shared, token: &str, client_id: &str) -> bool {
    let Some(claims) = verify_access_token(shared, token) else {
        return false;
    };
    if claims.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return false;
    }
    let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
        return false;
    };
    shared.store().revoke_access(jti);
    true
}
