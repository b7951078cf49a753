//! The provider's HTTP endpoints, one module each, and the router that picks one.
//! Every handler returns a response: a malformed request gets a 400 (JSON for the
//! OAuth endpoints, a page for the browser ones), never a panic.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::http::{oauth_error, Body};
use crate::state::Shared;

mod api;
mod authorize;
mod client_auth;
mod discovery;
mod end_session;
mod revoke;
mod token;
mod userinfo;

pub(crate) use discovery::{AUTHORIZE, END_SESSION, JWKS, REVOKE, TOKEN, USERINFO};

/// The protected "third-party API" resource.
const API_ME: &str = "/api/me";

/// Dispatches one request by method and path.
pub(crate) async fn route(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, discovery::PATH | discovery::OAUTH_PATH) => discovery::metadata(&shared),
        (Method::GET, JWKS) => discovery::jwks(&shared),
        (Method::GET, AUTHORIZE) => authorize::show(&shared, &req),
        (Method::POST, AUTHORIZE) => authorize::submit(&shared, req).await,
        (Method::POST, TOKEN) => token::handle(&shared, req).await,
        (Method::GET | Method::POST, USERINFO) => userinfo::handle(&shared, &req),
        (Method::POST, REVOKE) => revoke::handle(&shared, req).await,
        (Method::GET, API_ME) => api::me(&shared, &req),
        (Method::GET | Method::POST, END_SESSION) => end_session::handle(&shared, req).await,
        (
            _,
            discovery::PATH
            | discovery::OAUTH_PATH
            | JWKS
            | AUTHORIZE
            | TOKEN
            | USERINFO
            | REVOKE
            | END_SESSION
            | API_ME,
        ) => oauth_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "method not allowed",
        ),
        _ => oauth_error(StatusCode::NOT_FOUND, "invalid_request", "no such endpoint"),
    }
}
