//! The connected-account endpoints under `auth_prefix` (SPEC §13) and the
//! step that puts a connection's access token on a route's request.
//!
//! `connect/NAME` starts the third party's authorization-code flow for the
//! signed-in user (PKCE S256 and `state` always); `connect/NAME/callback`
//! finishes it and stores the link under the user (provider, `sub`);
//! `connections` lists the user's links without a token; `connect/NAME/disconnect`
//! revokes and deletes one.
//!
//! # Security
//! The `state` is single-use (the replay cache), expires with its cookie
//! (10 minutes), and is bound to the browser by a sealed cookie named after the
//! connection and to the session by the session key inside it: a callback URL
//! opened in another browser, or after signing in as someone else, stores
//! nothing. `rd` follows the login's rules (`auth::redirect`), and a third
//! party's error code is reduced to `[a-z0-9_]` before it is put on `rd`.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use subtle::ConstantTimeEq;

use crate::auth::oidc::LoginRequest;
use crate::auth::redirect;
use crate::connections::client::{Client, ClientError};
use crate::connections::flow::{self, PendingConnect};
use crate::connections::tokens::{self, Outcome, TokenError};
use crate::identity::Identity;
use crate::session::LinkKey;

use super::authenticate::{self, LoginRedirect};
use super::body::{self, Body};
use super::endpoints::{query_param, remember_used, Used};
use super::respond;
use super::{Exchange, Reject, Runtime, State};

/// A disconnect form is tiny; anything larger is refused.
const MAX_FORM_BYTES: usize = 8 * 1024;

/// Answers `endpoint` (the path after `auth_prefix`) if it is one of this
/// module's; `None` for any other endpoint.
pub async fn handle(
    state: &Arc<State>,
    rt: &Runtime,
    ex: &mut Exchange<'_>,
    req: Request<Incoming>,
    endpoint: &str,
    query: Option<&str>,
) -> Option<Result<Response<Body>, Reject>> {
    if endpoint == "/connections" {
        return Some(match *req.method() {
            Method::GET | Method::HEAD => list(state, rt, req.headers()).await,
            _ => Err(Reject::MethodNotAllowed),
        });
    }
    let rest = endpoint.strip_prefix("/connect/")?;
    let (name, action) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(client) = rt.connections.get(name).cloned() else {
        return Some(Err(Reject::NotFound));
    };
    let method = req.method().clone();
    Some(match (action, method) {
        ("", Method::GET | Method::HEAD) => {
            start(state, rt, ex, req.headers(), &client, query).await
        }
        ("callback", Method::GET) => callback(state, rt, req.headers(), &client, query).await,
        ("disconnect", Method::POST) => disconnect(state, rt, req, &client, query).await,
        ("" | "callback" | "disconnect", _) => Err(Reject::MethodNotAllowed),
        _ => Err(Reject::NotFound),
    })
}

/// `GET connect/NAME?rd=PATH`: with a session, 302 to the third party; without
/// one, sign in first and come back here.
async fn start(
    state: &Arc<State>,
    rt: &Runtime,
    ex: &Exchange<'_>,
    headers: &HeaderMap,
    client: &Client,
    query: Option<&str>,
) -> Result<Response<Body>, Reject> {
    let server = &rt.config.server;
    let rd = redirect::safe_target(
        query_param(query, "rd").as_deref(),
        &server.public_url,
        &server.allowed_redirect_hosts,
    );
    let Some(auth) = authenticate::session(state, rt, headers).await? else {
        let here = connect_url(rt, client.name(), &rd);
        let every: Vec<usize> = (0..rt.providers.iter().count()).collect();
        let back = here
            .strip_prefix(server.public_url.as_str().trim_end_matches('/'))
            .unwrap_or("/");
        return Err(authenticate::unauthenticated(
            state,
            rt,
            ex.is_navigation,
            back,
            headers,
            &every,
        ));
    };
    let endpoints = client.endpoints().await.map_err(|error| {
        tracing::warn!(connection = client.name(), %error, "connect: the service is unavailable");
        Reject::ConnectionUnavailable
    })?;
    let request = LoginRequest::generate();
    let location = client.authorize_url(&endpoints, &request.state, &request.pkce_challenge());
    let pending = PendingConnect {
        connection: client.name().to_owned(),
        state: request.state,
        pkce_verifier: request.pkce_verifier,
        session: auth.key.hex(),
        rd,
        created_at: state.clock.now(),
    };
    let name = rt.cookies.connect_name(client.name());
    let plain = serde_json::to_vec(&pending).expect("a PendingConnect always serializes");
    let sealed = state.login_sealer.seal_text(name.as_bytes(), &plain);
    Ok(respond::redirect(
        &location,
        &[rt.cookies.set_connect(&name, sealed)],
    ))
}

/// `GET connect/NAME/callback`: the third party sends the browser back.
async fn callback(
    state: &Arc<State>,
    rt: &Runtime,
    headers: &HeaderMap,
    client: &Client,
    query: Option<&str>,
) -> Result<Response<Body>, Reject> {
    let cookie = rt.cookies.connect_name(client.name());
    let clear = rt.cookies.clear_connect(&cookie);
    let refuse = |why: &'static str| {
        state
            .metrics
            .connection_event(client.name(), "connect_failed");
        Reject::ConnectFailed {
            why,
            clear: Some(clear.clone()),
        }
    };
    let given_state =
        query_param(query, "state").ok_or_else(|| refuse("callback without state"))?;
    let pending = rt
        .cookies
        .one(headers, &cookie)
        .and_then(|sealed| state.login_sealer.open_text(cookie.as_bytes(), sealed))
        .and_then(|plain| serde_json::from_slice::<PendingConnect>(&plain).ok())
        .ok_or_else(|| refuse("no connect in progress in this browser"))?;
    let same_state: bool = pending
        .state
        .as_bytes()
        .ct_eq(given_state.as_bytes())
        .into();
    if !same_state || pending.connection != client.name() {
        return Err(refuse("state does not match the connect in progress"));
    }
    let auth = authenticate::session(state, rt, headers)
        .await?
        .ok_or_else(|| refuse("no session"))?;
    if auth.key.hex() != pending.session {
        return Err(refuse("the connect was started by another session"));
    }
    let now = state.clock.now();
    let land = |code: &str| {
        let location = match code {
            "" => pending.rd.clone(),
            code => flow::with_error(&pending.rd, code),
        };
        respond::redirect(&location, std::slice::from_ref(&clear))
    };
    if pending.is_expired(now) {
        state
            .metrics
            .connection_event(client.name(), "connect_failed");
        return Ok(land("expired"));
    }
    let remember_until = pending.created_at + flow::CONNECT_TTL_SECS;
    match remember_used(
        state,
        &state.used_connect_states,
        &given_state,
        remember_until,
    ) {
        Used::Fresh => {}
        Used::Replayed => return Err(refuse("state already used")),
        Used::Full => return Err(Reject::ConnectionUnavailable),
    }
    let failed = |code: &str| {
        state
            .metrics
            .connection_event(client.name(), "connect_failed");
        Ok(land(code))
    };
    let Ok(endpoints) = client.endpoints().await else {
        return failed("temporarily_unavailable");
    };
    // RFC 9207: the response names its issuer; another one is a mix-up.
    match (query_param(query, "iss"), &endpoints.issuer) {
        (Some(iss), Some(issuer)) if iss.trim_end_matches('/') != issuer.trim_end_matches('/') => {
            tracing::warn!(connection = client.name(), %iss, "connect callback from another issuer");
            return failed("iss_mismatch");
        }
        (None, _) if endpoints.sends_response_iss => return failed("iss_missing"),
        _ => {}
    }
    if let Some(error) = query_param(query, "error") {
        return failed(&error);
    }
    let Some(code) = query_param(query, "code") else {
        return failed("invalid_request");
    };
    match client.exchange_code(&code, &pending.pkce_verifier).await {
        Ok(grant) => {
            let link = tokens::linked(grant, &client.config().scopes, now);
            let identity = &auth.session.identity;
            let key = LinkKey::new(&identity.provider, &identity.sub, client.name());
            state
                .links
                .put_link(&key, &link)
                .await
                .map_err(Reject::StoreUnavailable)?;
            // The link it replaces is not revoked: services that keep one
            // grant per client and user (oidc-provider, Google) would end the
            // new link's grant with it.
            state.metrics.connection_event(client.name(), "connected");
            tracing::info!(connection = client.name(), sub = %identity.sub, "account connected");
            Ok(land(""))
        }
        Err(ClientError::Refused { error, .. }) => failed(&error),
        Err(ClientError::Down(reason)) => {
            tracing::warn!(connection = client.name(), %reason, "connect: code exchange failed");
            failed("temporarily_unavailable")
        }
    }
}

/// `GET connections`: the session user's links, never a token.
async fn list(
    state: &Arc<State>,
    rt: &Runtime,
    headers: &HeaderMap,
) -> Result<Response<Body>, Reject> {
    let Some(auth) = authenticate::session(state, rt, headers).await? else {
        return Err(Reject::Unauthenticated {
            login_url: authenticate::login_url(rt, "/", None),
        });
    };
    let identity = &auth.session.identity;
    let mut out = Vec::new();
    for client in rt.connections.iter() {
        let key = LinkKey::new(&identity.provider, &identity.sub, client.name());
        let stored = state
            .links
            .load_link(&key)
            .await
            .map_err(Reject::StoreUnavailable)?;
        out.push(serde_json::json!({
            "name": client.name(),
            "display_name": client.config().display_name,
            "connected": stored.is_some(),
            "scopes": stored.as_ref().map(|s| s.link.scopes.clone()).unwrap_or_default(),
            "expires_at": stored.as_ref().and_then(|s| s.link.expires_at),
        }));
    }
    Ok(json(StatusCode::OK, &serde_json::Value::Array(out)))
}

/// `POST connect/NAME/disconnect`: same-origin only; revokes at the third party
/// when it can, deletes the link; 204, or 303 to `rd` for a form post.
async fn disconnect(
    state: &Arc<State>,
    rt: &Runtime,
    req: Request<Incoming>,
    client: &Client,
    query: Option<&str>,
) -> Result<Response<Body>, Reject> {
    if !is_same_origin(rt, req.headers()) {
        return Err(Reject::NotSameOrigin);
    }
    let Some(auth) = authenticate::session(state, rt, req.headers()).await? else {
        return Err(Reject::Unauthenticated {
            login_url: authenticate::login_url(rt, "/", None),
        });
    };
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let rd_param = match query_param(query, "rd") {
        Some(rd) => Some(rd),
        None if is_form => form_param(req.into_body(), "rd").await?,
        None => None,
    };
    let identity = &auth.session.identity;
    let key = LinkKey::new(&identity.provider, &identity.sub, client.name());
    if let Some(stored) = state
        .links
        .load_link(&key)
        .await
        .map_err(Reject::StoreUnavailable)?
    {
        revoke_link(client, &stored.link).await;
    }
    let deleted = state
        .links
        .delete_link(&key, None)
        .await
        .map_err(Reject::StoreUnavailable)?;
    if deleted {
        state
            .metrics
            .connection_event(client.name(), "disconnected");
        tracing::info!(connection = client.name(), sub = %identity.sub, "account disconnected");
    }
    if is_form {
        let server = &rt.config.server;
        let rd = redirect::safe_target(
            rd_param.as_deref(),
            &server.public_url,
            &server.allowed_redirect_hosts,
        );
        let mut resp = respond::redirect(&rd, &[]);
        *resp.status_mut() = StatusCode::SEE_OTHER;
        return Ok(resp);
    }
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::CACHE_CONTROL, "no-store")
        .body(body::empty())
        .expect("static response parts are valid"))
}

/// Revokes a link's grant at the service (RFC 7009). Revoking the refresh
/// token ends the grant's access tokens too (RFC 7009 §2.1).
async fn revoke_link(client: &Client, link: &crate::session::Link) {
    let (token, hint) = match &link.refresh_token {
        Some(refresh) => (refresh.as_str(), "refresh_token"),
        None => (link.access_token.as_str(), "access_token"),
    };
    client.revoke(token, hint).await;
}

/// SPEC §13: `Origin` equal to the public origin, or `Sec-Fetch-Site:
/// same-origin`; neither header present is refused too (a state-changing
/// request a browser would label).
fn is_same_origin(rt: &Runtime, headers: &HeaderMap) -> bool {
    let public = rt.config.server.public_url.origin().ascii_serialization();
    let origin_ok = headers
        .get(header::ORIGIN)
        .is_some_and(|origin| origin.as_bytes() == public.as_bytes());
    let fetch_site_ok = headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes() == b"same-origin");
    origin_ok || fetch_site_ok
}

/// The URL that starts connecting `name` and returns to `rd`.
pub fn connect_url(rt: &Runtime, name: &str, rd: &str) -> String {
    let server = &rt.config.server;
    let rd: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
    format!(
        "{}{}/connect/{name}?rd={rd}",
        server.public_url.as_str().trim_end_matches('/'),
        server.auth_prefix
    )
}

/// The headers carrying the access tokens of `connections` for `identity`
/// (SPEC §13), refreshed first where due.
///
/// # Errors
/// A missing link: a navigation is sent to connect and back to `rd`, anything
/// else gets 403 `connection_required`; a token that cannot be refreshed now:
/// 502; the store down: 503.
pub async fn connection_headers(
    state: &State,
    rt: &Runtime,
    identity: &Identity,
    connections: &[String],
    is_navigation: bool,
    rd: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, Reject> {
    let mut out = Vec::with_capacity(connections.len());
    for name in connections {
        // Names are checked against the config; a reload keeps both in step.
        let Some(client) = rt.connections.get(name) else {
            continue;
        };
        let link = match link_token(state, client, &identity.provider, &identity.sub).await {
            Ok((link, outcome)) => {
                count_outcome(state, name, outcome);
                link
            }
            Err(error @ (TokenError::NotLinked | TokenError::Refused)) => {
                if matches!(error, TokenError::Refused) {
                    state.metrics.connection_event(name, "refresh_refused");
                }
                state.metrics.connection_event(name, "required");
                let connect_url = connect_url(rt, name, rd);
                return Err(if is_navigation {
                    Reject::LoginRequired(LoginRedirect {
                        location: connect_url,
                        set_cookies: Vec::new(),
                    })
                } else {
                    Reject::ConnectionRequired {
                        connection: name.clone(),
                        connect_url,
                    }
                });
            }
            Err(TokenError::Unavailable(reason)) => {
                state.metrics.connection_event(name, "refresh_failed");
                tracing::warn!(connection = %name, %reason, "no usable token for the connection");
                return Err(Reject::ConnectionUnavailable);
            }
            Err(TokenError::Store(error)) => return Err(Reject::StoreUnavailable(error)),
        };
        let config = client.config();
        let value = if config.is_bearer_header() {
            format!("Bearer {}", link.access_token)
        } else {
            link.access_token.clone()
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(config.header.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            tracing::warn!(connection = %name, "the service's access token cannot be sent in a header");
            return Err(Reject::ConnectionUnavailable);
        };
        out.push((name, value));
    }
    Ok(out)
}

/// The access token of (`provider`, `sub`)'s link at `client`'s connection,
/// refreshed first when due.
async fn link_token(
    state: &State,
    client: &Client,
    provider: &str,
    sub: &str,
) -> Result<(Arc<crate::session::Link>, Outcome), TokenError> {
    let cx = tokens::Context {
        links: &*state.links,
        gates: &state.link_gates,
        client,
        clock: &*state.clock,
    };
    tokens::access_token(&cx, &LinkKey::new(provider, sub, client.name())).await
}

fn count_outcome(state: &State, name: &str, outcome: Outcome) {
    let event = match outcome {
        Outcome::Fresh => return,
        Outcome::Refreshed => "refreshed",
        Outcome::Failed => "refresh_failed",
    };
    state.metrics.connection_event(name, event);
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body::full(value.to_string()))
        .expect("static response parts are valid")
}

/// One parameter of a small form body.
async fn form_param(body: Incoming, name: &str) -> Result<Option<String>, Reject> {
    let bytes: Bytes = Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| Reject::ConnectFailed {
            why: "disconnect form unreadable or too large",
            clear: None,
        })?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    Ok(query_param(Some(&text), name))
}

/// The admin listener's token endpoint (SPEC §13), for the app's offline jobs.
pub struct AdminTokens(pub Arc<State>);

impl crate::admin::ConnectionTokens for AdminTokens {
    fn token(
        &self,
        bearer: Option<String>,
        connection: String,
        provider: Option<String>,
        sub: Option<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = crate::admin::TokenAnswer> + Send + '_>>
    {
        Box::pin(admin_token(&self.0, bearer, connection, provider, sub))
    }
}

async fn admin_token(
    state: &State,
    bearer: Option<String>,
    connection: String,
    provider: Option<String>,
    sub: Option<String>,
) -> crate::admin::TokenAnswer {
    use crate::admin::TokenAnswer;
    let rt = state.runtime.load_full();
    let Some(secret) = &rt.config.admin.connections_api_token else {
        return TokenAnswer::Off;
    };
    let presented = bearer.unwrap_or_default();
    let matches: bool = presented
        .as_bytes()
        .ct_eq(secret.expose().trim().as_bytes())
        .into();
    if !matches {
        return TokenAnswer::Unauthorized;
    }
    let (Some(provider), Some(sub)) = (provider, sub) else {
        return TokenAnswer::BadRequest;
    };
    let Some(client) = rt.connections.get(&connection) else {
        return TokenAnswer::NotLinked;
    };
    match link_token(state, client, &provider, &sub).await {
        Ok((link, outcome)) => {
            count_outcome(state, &connection, outcome);
            tracing::info!(connection = %connection, %sub, "access token handed to an offline job");
            TokenAnswer::Token(serde_json::json!({
                "access_token": link.access_token,
                "expires_at": link.expires_at,
                "scopes": link.scopes,
            }))
        }
        Err(TokenError::NotLinked) => TokenAnswer::NotLinked,
        Err(TokenError::Refused) => {
            state
                .metrics
                .connection_event(&connection, "refresh_refused");
            TokenAnswer::NotLinked
        }
        Err(TokenError::Unavailable(_)) => TokenAnswer::Unavailable(StatusCode::BAD_GATEWAY),
        Err(TokenError::Store(_)) => TokenAnswer::Unavailable(StatusCode::SERVICE_UNAVAILABLE),
    }
}
