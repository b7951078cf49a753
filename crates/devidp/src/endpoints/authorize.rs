//! `GET /authorize` (OIDC Core §3.1.2) and `POST /authorize` (the sign-in form).
//!
//! A client with [`crate::Client::is_openid_required`] (the default) must ask for
//! `openid`; a plain OAuth 2.0 client may ask for any scope, with no `nonce`.
//!
//! The request is validated in the order that decides where errors may go: until
//! the client and its exact redirect URI are known, errors are shown on a page
//! (never redirected: RFC 6749 §4.1.2.1); after that they are redirected back
//! with `error`, `state` and `iss`.

use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::config::Client;
use crate::html;
use crate::http::{cookie, html, redirect, with_query, Body, Params};
use crate::state::{Counters, Shared};
use crate::store::CodeGrant;

/// How long a code stays redeemable.
const CODE_TTL_SECS: u64 = 60;

/// A validated authorization request.
#[derive(Debug)]
struct AuthRequest<'a> {
    client: &'a Client,
    redirect_uri: String,
    state: Option<String>,
    nonce: Option<String>,
    scope: String,
    code_challenge: String,
    /// `prompt=login`: the user must pick again even with a session.
    is_login_forced: bool,
    /// `max_age`: a session older than this many seconds does not count
    /// (OIDC Core §3.1.2.1).
    max_age: Option<u64>,
    /// `prompt=none`: no page may be shown.
    is_silent: bool,
}

/// Why a request is refused.
#[derive(Debug)]
enum Refusal {
    /// Shown on a page: the redirect URI cannot be trusted.
    Page(String),
    /// Sent back to the client's redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

/// `GET /authorize`: SSO when the browser has a session, else the sign-in page.
pub(crate) fn show(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
    shared.counters.bump(Counters::authorize_requests);
    let params = match Params::from_query(req) {
        Ok(p) => p,
        Err(e) => return refuse(shared, Refusal::Page(e.to_string())),
    };
    let request = match validate(shared, &params) {
        Ok(r) => r,
        Err(refusal) => return refuse(shared, refusal),
    };
    match session_cookie(shared, req.headers()) {
        Some(c) if !request.is_login_forced && is_fresh_enough(shared, &c, request.max_age) => {
            issue_code(shared, &request, &c, None)
        }
        _ if request.is_silent => refuse(
            shared,
            Refusal::Redirect {
                redirect_uri: request.redirect_uri,
                state: request.state,
                error: "login_required",
                description: "no session at the provider and prompt=none".into(),
            },
        ),
        _ => html(
            StatusCode::OK,
            html::sign_in_page(&params, &request.client.id, &shared.config.users),
        ),
    }
}

/// `POST /authorize`: the user picked someone (or cancelled) on the sign-in page.
pub(crate) async fn submit(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let (headers, params) = match Params::from_form(req).await {
        Ok(p) => p,
        Err(e) => return refuse(shared, Refusal::Page(e.to_string())),
    };
    let request = match validate(shared, &params) {
        Ok(r) => r,
        Err(refusal) => return refuse(shared, refusal),
    };
    if params.get("action") == Some("cancel") {
        return refuse(
            shared,
            Refusal::Redirect {
                redirect_uri: request.redirect_uri,
                state: request.state,
                error: "access_denied",
                description: "the user cancelled the sign-in".into(),
            },
        );
    }
    let Some(user) = params.get("user").and_then(|sub| shared.config.user(sub)) else {
        return refuse(shared, Refusal::Page("Unknown or missing user.".into()));
    };
    let now = shared.now();
    let cookie_value = {
        let mut store = shared.store();
        // A new sign-in replaces the browser's previous provider session.
        if let Some(old) = cookie(&headers, &shared.cookie_name) {
            store.end_session(&old);
        }
        store.create_session(&user.sub, now).0
    };
    let set_cookie = format!(
        "{}={cookie_value}; Path=/; HttpOnly; SameSite=Lax",
        shared.cookie_name
    );
    issue_code(shared, &request, &cookie_value, Some(set_cookie))
}

/// Issues a code for the session `cookie_value` and redirects to the client.
fn issue_code(
    shared: &Shared,
    request: &AuthRequest<'_>,
    cookie_value: &str,
    set_cookie: Option<String>,
) -> Response<Body> {
    let now = shared.now();
    let code = {
        let mut store = shared.store();
        let Some(session) = store.session(cookie_value).cloned() else {
            return refuse(
                shared,
                Refusal::Page("The provider session ended; sign in again.".into()),
            );
        };
        store.join_session(cookie_value, &request.client.id);
        store.insert_code(
            CodeGrant {
                client_id: request.client.id.clone(),
                redirect_uri: request.redirect_uri.clone(),
                code_challenge: request.code_challenge.clone(),
                nonce: request.nonce.clone(),
                scope: request.scope.clone(),
                sub: session.sub,
                sid: session.sid,
                auth_time: session.auth_time,
                expires_at: now + CODE_TTL_SECS,
                family: crate::random::token(16),
            },
            now,
        )
    };
    shared.counters.bump(Counters::codes_issued);
    let mut params = vec![("code", code.as_str())];
    if let Some(state) = &request.state {
        params.push(("state", state));
    }
    params.push(("iss", &shared.issuer)); // RFC 9207
    let mut resp = redirect(&with_query(&request.redirect_uri, &params));
    if let Some(c) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

/// Checks an authorization request (OIDC Core §3.1.2.2, RFC 6749 §4.1.1,
/// RFC 7636 §4.4).
fn validate<'a>(shared: &'a Shared, params: &Params) -> Result<AuthRequest<'a>, Refusal> {
    let client_id = params
        .get("client_id")
        .ok_or_else(|| Refusal::Page("Missing client_id.".into()))?;
    let client = shared
        .config
        .client(client_id)
        .ok_or_else(|| Refusal::Page(format!("Unknown client {client_id:?}.")))?;
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or_else(|| Refusal::Page("Missing redirect_uri.".into()))?;
    // Exact string match: no normalisation, no prefix, no wildcard.
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(Refusal::Page(format!(
            "The redirect_uri {redirect_uri:?} is not registered for client {client_id:?}."
        )));
    }
    let state = params.get("state").map(str::to_owned);
    let back = |error: &'static str, description: &str| Refusal::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone(),
        error,
        description: description.to_owned(),
    };
    if params.get("response_type") != Some("code") {
        return Err(back(
            "unsupported_response_type",
            "response_type must be code",
        ));
    }
    let scope = scope(params.get("scope").unwrap_or_default()).ok_or_else(|| {
        back(
            "invalid_scope",
            "scope has a character RFC 6749 §3.3 forbids",
        )
    })?;
    if client.is_openid_required && !scope.split(' ').any(|s| s == "openid") {
        return Err(back("invalid_scope", "scope must contain openid"));
    }
    let code_challenge = params
        .get("code_challenge")
        .ok_or_else(|| back("invalid_request", "code_challenge is required (PKCE S256)"))?;
    if params.get("code_challenge_method") != Some("S256") {
        return Err(back(
            "invalid_request",
            "code_challenge_method must be S256",
        ));
    }
    // BASE64URL(SHA-256(...)) is always 43 characters.
    if code_challenge.len() != 43
        || !code_challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(back(
            "invalid_request",
            "code_challenge is not a base64url SHA-256",
        ));
    }
    let prompt: Vec<&str> = params
        .get("prompt")
        .unwrap_or_default()
        .split(' ')
        .collect();
    if prompt.contains(&"none") && prompt.len() > 1 {
        return Err(back("invalid_request", "prompt=none cannot be combined"));
    }
    let max_age = match params.get("max_age").map(str::parse::<u64>) {
        None => None,
        Some(Ok(seconds)) => Some(seconds),
        Some(Err(_)) => {
            return Err(back(
                "invalid_request",
                "max_age must be a number of seconds",
            ))
        }
    };
    if params.get("request").is_some() || params.get("request_uri").is_some() {
        return Err(back(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    Ok(AuthRequest {
        client,
        redirect_uri: redirect_uri.to_owned(),
        state,
        nonce: params.get("nonce").map(str::to_owned),
        scope,
        code_challenge: code_challenge.to_owned(),
        is_login_forced: prompt.contains(&"login"),
        max_age,
        is_silent: prompt.contains(&"none"),
    })
}

/// The requested scope with its tokens joined by single spaces (none: empty),
/// or `None` if a token has a character RFC 6749 §3.3 does not allow. Any
/// scope name is granted as asked: the provider plays any third-party API.
fn scope(requested: &str) -> Option<String> {
    let is_scope_char = |c: char| matches!(c, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e');
    let tokens: Vec<&str> = requested.split(' ').filter(|t| !t.is_empty()).collect();
    tokens
        .iter()
        .all(|t| t.chars().all(is_scope_char))
        .then(|| tokens.join(" "))
}

/// Returns true if and only if the session `cookie_value` signed in no more
/// than `max_age` seconds ago (always, without `max_age`).
fn is_fresh_enough(shared: &Shared, cookie_value: &str, max_age: Option<u64>) -> bool {
    let Some(max_age) = max_age else {
        return true;
    };
    let now = shared.now();
    let store = shared.store();
    store
        .session(cookie_value)
        .is_some_and(|s| s.auth_time.saturating_add(max_age) > now)
}

/// Renders a refusal: a page, or a redirect with the error (RFC 6749 §4.1.2.1).
fn refuse(shared: &Shared, refusal: Refusal) -> Response<Body> {
    match refusal {
        Refusal::Page(message) => html(StatusCode::BAD_REQUEST, html::error_page(&message)),
        Refusal::Redirect {
            redirect_uri,
            state,
            error,
            description,
        } => {
            let mut params = vec![
                ("error", error),
                ("error_description", description.as_str()),
            ];
            if let Some(state) = &state {
                params.push(("state", state));
            }
            params.push(("iss", &shared.issuer));
            redirect(&with_query(&redirect_uri, &params))
        }
    }
}

/// The cookie header clearing the provider session.
pub(crate) fn clear_cookie(shared: &Shared) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
        shared.cookie_name
    ))
    .ok()
}

/// The provider-session cookie value of a request, if it names a live session.
pub(crate) fn session_cookie(shared: &Shared, headers: &HeaderMap) -> Option<String> {
    cookie(headers, &shared.cookie_name).filter(|c| shared.store().session(c).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_is_normalised_and_forbidden_characters_are_refused() {
        assert_eq!(scope("repo  read:user").as_deref(), Some("repo read:user"));
        assert_eq!(scope("").as_deref(), Some(""));
        for bad in ["a\"b", "a\\b", "caf\u{e9}", "tab\there"] {
            assert_eq!(scope(bad), None, "{bad:?} must be refused");
        }
    }
}
