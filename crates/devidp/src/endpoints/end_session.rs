//! `GET|POST /end_session` (OpenID Connect RP-Initiated Logout 1.0): ends the
//! provider session, notifies the session's clients over the back channel, then
//! redirects to a registered `post_logout_redirect_uri` or shows a page.

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use super::authorize::{clear_cookie, session_cookie};
use crate::backchannel;
use crate::html;
use crate::http::{html, redirect, with_query, Body, Params};
use crate::state::{Counters, Shared};
use crate::store::ProviderSession;

/// Handles a logout request.
pub(crate) async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    shared.counters.bump(Counters::end_sessions);
    let read = if req.method() == Method::GET {
        Params::from_query(&req).map(|p| (req.headers().clone(), p))
    } else {
        Params::from_form(req).await
    };
    let (headers, params) = match read {
        Ok(r) => r,
        Err(e) => return html(StatusCode::BAD_REQUEST, html::error_page(&e.to_string())),
    };
    let hint = match params.get("id_token_hint") {
        Some(token) => match verify_hint(shared, token) {
            Some(claims) => Some(claims),
            None => {
                return html(
                    StatusCode::BAD_REQUEST,
                    html::error_page("The id_token_hint was not issued by this provider."),
                )
            }
        },
        None => None,
    };
    let client_id = match (hint.as_ref().and_then(hint_client), params.get("client_id")) {
        (Some(hinted), Some(asked)) if hinted != asked => {
            return html(
                StatusCode::BAD_REQUEST,
                html::error_page("client_id does not match the id_token_hint."),
            )
        }
        (hinted, asked) => hinted.or(asked.map(str::to_owned)),
    };

    let ended = end_session(shared, &headers, hint.as_ref());
    backchannel::notify_sessions(shared, &ended).await;

    let target = params
        .get("post_logout_redirect_uri")
        .filter(|uri| is_registered(shared, client_id.as_deref(), uri));
    let mut resp = match target {
        Some(uri) => {
            let query: Vec<(&str, &str)> = params
                .get("state")
                .map(|s| ("state", s))
                .into_iter()
                .collect();
            redirect(&with_query(uri, &query))
        }
        None => html(StatusCode::OK, html::signed_out_page()),
    };
    if let Some(c) = clear_cookie(shared) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

/// Ends the browser's session (its cookie), else the session the hint names.
fn end_session(
    shared: &Shared,
    headers: &http::HeaderMap,
    hint: Option<&Value>,
) -> Vec<ProviderSession> {
    let by_cookie = session_cookie(shared, headers);
    let mut store = shared.store();
    let ended = match by_cookie {
        Some(c) => store.end_session(&c),
        None => hint
            .and_then(|h| h.get("sid"))
            .and_then(Value::as_str)
            .and_then(|sid| store.end_session_by_sid(sid)),
    };
    ended.into_iter().collect()
}

/// The hint's claims if we signed it for our issuer. Its expiry does not
/// matter: logging out with an old ID token is the normal case.
fn verify_hint(shared: &Shared, token: &str) -> Option<Value> {
    let claims = shared.keys().verify(token)?;
    (claims.get("iss").and_then(Value::as_str) == Some(shared.issuer.as_str())).then_some(claims)
}

/// The client an ID token was issued to: `azp`, else a single `aud`.
fn hint_client(claims: &Value) -> Option<String> {
    if let Some(azp) = claims.get("azp").and_then(Value::as_str) {
        return Some(azp.to_owned());
    }
    match claims.get("aud")? {
        Value::String(aud) => Some(aud.clone()),
        Value::Array(auds) if auds.len() == 1 => auds[0].as_str().map(str::to_owned),
        _ => None,
    }
}

/// Returns true if and only if `uri` is registered, exactly, for `client_id`.
fn is_registered(shared: &Shared, client_id: Option<&str>, uri: &str) -> bool {
    client_id
        .and_then(|id| shared.config.client(id))
        .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri))
}
