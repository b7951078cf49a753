//! The proxy's own endpoints under `auth_prefix` (SPEC §8). They are answered
//! here and never forwarded upstream.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use subtle::ConstantTimeEq;

use crate::auth::oidc::OidcError;
use crate::config;
use crate::session::{Session, SessionId};

use super::authenticate::{self, PendingLogin};
use super::body::{self, Body};
use super::respond;
use super::{Exchange, LoginFailure, Reject, Runtime, Series, State};

/// Used login states remembered at most (10 minutes' worth of logins).
const MAX_USED_STATES: usize = 200_000;

/// Back-channel logout requests are small forms; anything larger is refused.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Answers a request for `path` under the auth prefix.
pub async fn handle<'rt>(
    state: &Arc<State>,
    rt: &'rt Runtime,
    ex: &mut Exchange<'rt>,
    req: Request<Incoming>,
    path: &str,
    query: Option<&str>,
) -> Result<Response<Body>, Reject> {
    let endpoint = path
        .strip_prefix(rt.config.server.auth_prefix.as_str())
        .unwrap_or_default();
    ex.route = Some(Series::Endpoint(crate::admin::metrics::RouteCounters::new(
        endpoint_label(endpoint),
    )));
    if endpoint == "/connections" || endpoint.starts_with("/connect/") {
        if let Some(answer) = super::connect::handle(state, rt, ex, req, endpoint, query).await {
            return answer;
        }
        return Err(Reject::NotFound);
    }
    let method = req.method().clone();
    let callback_of = endpoint
        .strip_prefix("/callback/")
        .filter(|name| rt.providers.named(name).is_some_and(|(i, _)| i > 0));
    match (endpoint, method) {
        ("/login", Method::GET | Method::HEAD) => login(state, rt, req.headers(), query),
        ("/callback", Method::GET) => {
            callback(state, rt, req.headers(), query, config::DEFAULT_PROVIDER).await
        }
        (_, Method::GET) if callback_of.is_some() => {
            let name = callback_of.unwrap_or_default();
            callback(state, rt, req.headers(), query, name).await
        }
        ("/logout", Method::GET | Method::POST) => logout(state, rt, req.headers()).await,
        ("/backchannel-logout", Method::POST) => backchannel_logout(state, rt, req).await,
        ("/userinfo", Method::GET | Method::HEAD) => userinfo(state, rt, req.headers()).await,
        ("" | "/", Method::GET | Method::HEAD) => signed_in(state, rt, ex, req.headers()).await,
        ("/jwks.json", Method::GET | Method::HEAD) => Ok(jwks(state)),
        (check, _) if check == "/check" || check.starts_with("/check/") => {
            forward_auth(state, rt, ex, &req, check, query).await
        }
        (
            "/login" | "/callback" | "/logout" | "/backchannel-logout" | "/userinfo" | "/jwks.json",
            _,
        ) => Err(Reject::MethodNotAllowed),
        _ => Err(Reject::NotFound),
    }
}

/// The route label of a request under the auth prefix: one per endpoint,
/// whatever follows it, so no client can grow the metrics' label set.
fn endpoint_label(endpoint: &str) -> &'static str {
    let first = endpoint
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    match first {
        "login" => "auth:login",
        "callback" => "auth:callback",
        "logout" => "auth:logout",
        "backchannel-logout" => "auth:backchannel-logout",
        "userinfo" => "auth:userinfo",
        "jwks.json" => "auth:jwks.json",
        "check" => "auth:check",
        "connect" => "auth:connect",
        "connections" => "auth:connections",
        "" => "auth:signed-in",
        _ => "auth:unknown",
    }
}

/// `{auth_prefix}/check` (SPEC §8): forward-auth for nginx `auth_request`,
/// Traefik `ForwardAuth` and Envoy `ext_authz`. The front proxy describes the
/// original request in headers; the same normalization and rules as inline
/// mode decide it. 200 carries the identity headers; 401 and 403 refuse.
///
/// The original request is read from, in order: `X-Original-URI` (nginx),
/// `X-Forwarded-Uri` (Traefik), `X-Original-URL` (ingress-nginx, a full URL),
/// else the path after `/check` (Envoy's `path_prefix`). Its method from
/// `X-Forwarded-Method` / `X-Original-Method`, else this request's; its host from
/// `X-Forwarded-Host`, else `Host`. Only nginx-style callers (which cannot pass a
/// redirect on: `auth_request` accepts 2xx, 401 and 403 only) never get a 302.
async fn forward_auth<'rt>(
    state: &Arc<State>,
    rt: &'rt Runtime,
    ex: &mut Exchange<'rt>,
    req: &Request<Incoming>,
    endpoint: &str,
    query: Option<&str>,
) -> Result<Response<Body>, Reject> {
    let headers = req.headers();
    let original = described_request(headers, req.method(), endpoint, query)?;
    let target = crate::policy::normalize::normalize_str(&original.target)?;
    ex.path = Some(target.path().clone());
    let host = super::host_name(&original.host)?;
    let rule = rt
        .routes
        .find(Some(&host), &original.method, target.match_path());
    ex.route = Some(Series::Rule(&rule.counters));
    let upstream = rt.upstreams.get(rule.upstream);
    ex.upstream = Some(upstream.name());
    ex.method = original.method.clone();
    ex.is_navigation = matches!(original.method, Method::GET | Method::HEAD) && ex.is_navigation;
    let may_redirect = original.caller.may_redirect();
    super::admit_source(rt, rule, ex.peer, headers)?;

    let asked = super::Asked {
        target: &target,
        authority: &original.host,
    };
    let who = super::authenticate_for(state, rt, ex, rule, headers, &asked, may_redirect).await?;
    // The front proxy passes the browser's `Origin` and `Sec-WebSocket-*` on.
    super::check_websocket_origin(rt, who.as_ref(), headers)?;
    let mut resp = Response::builder()
        .status(StatusCode::OK)
        .header(header::CACHE_CONTROL, "no-store")
        .body(body::empty())
        .expect("static response parts are valid");
    if let Some(who) = &who {
        let identity = who.identity();
        ex.sub = Some(who.subject());
        let permit = crate::policy::authorize::authorize(
            &rt.routes.global,
            rule,
            identity,
            who.via_bearer(),
        )
        .map_err(|denial| Reject::Forbidden {
            denial,
            via_bearer: who.via_bearer(),
            viewer: None,
        })?;
        // The route's upstream's header set: the front proxy copies these on.
        crate::identity::headers::prepare(permit.identity(), upstream.header_set())?
            .apply(resp.headers_mut());
        if let Some(assertion) = super::identity_assertion(state, rt, permit.identity(), &host) {
            resp.headers_mut().insert(
                crate::identity::headers::X_PORTCULLIS_IDENTITY.clone(),
                assertion,
            );
        }
        // A connection's token is handed only to a front proxy the operator
        // trusts: `/check` is on the public listener, and a browser (a script
        // on the app's origin) asking it directly must never read a token.
        let from_front_proxy = rt
            .config
            .server
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&ex.peer));
        if !rule.connections.is_empty() && from_front_proxy {
            let rd = super::authenticate::return_url(rt, &original.host, &target);
            let navigating = may_redirect && ex.is_navigation;
            let tokens = super::connect::connection_headers(
                state,
                rt,
                permit.identity(),
                &rule.connections,
                navigating,
                &rd,
            )
            .await?;
            for (name, value) in tokens {
                resp.headers_mut().insert(name, value);
            }
        }
    }
    Ok(resp)
}

/// Which kind of front proxy is asking, told by the one header it sets to
/// describe the original request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    /// nginx `auth_request`: `X-Original-URI`, `X-Forwarded-Method`, `X-Forwarded-Host`.
    Nginx,
    /// Traefik `ForwardAuth`: `X-Forwarded-Uri`, `X-Forwarded-Method`, `X-Forwarded-Host`.
    Traefik,
    /// ingress-nginx `auth-url`: `X-Original-URL` (a full URL) and `X-Original-Method`.
    IngressNginx,
    /// Envoy `ext_authz` (HTTP, `path_prefix`): the original path after `/check`,
    /// its method and `Host` as this request's own.
    Envoy,
}

impl Caller {
    /// nginx's `auth_request` treats anything but 2xx, 401 and 403 as an error.
    fn may_redirect(self) -> bool {
        matches!(self, Caller::Traefik | Caller::Envoy)
    }
}

/// The request a forward-auth caller describes.
struct Described {
    caller: Caller,
    target: String,
    method: Method,
    host: String,
}

/// Reads the original request from exactly the headers its caller sets.
///
/// # Security
/// Front proxies copy most client headers onto the check request, so a client
/// can add the headers *another* kind of caller would set (Traefik overwrites
/// `X-Forwarded-Uri` but passes a client's `X-Original-URI`). Reading the first
/// one found would let the client choose the path that is judged. So every
/// describing header is counted: more than one source of the target, a source
/// plus a path after `/check`, a method or host header that does not belong to
/// the caller, or any of them repeated, is refused with 400.
fn described_request(
    headers: &HeaderMap,
    own_method: &Method,
    endpoint: &str,
    query: Option<&str>,
) -> Result<Described, Reject> {
    let ambiguous = |what: &str| Reject::ForwardAuth(what.to_owned());
    let present = |name: &str| headers.get_all(name).iter().count();
    let suffix = endpoint.strip_prefix("/check").unwrap_or_default();
    let sources = [
        (Caller::Nginx, present("x-original-uri")),
        (Caller::Traefik, present("x-forwarded-uri")),
        (Caller::IngressNginx, present("x-original-url")),
        (Caller::Envoy, usize::from(!suffix.is_empty())),
    ];
    let given: Vec<_> = sources.iter().filter(|(_, n)| *n > 0).collect();
    let caller = match given.as_slice() {
        [] => Caller::Envoy,
        [(caller, 1)] => *caller,
        _ => {
            return Err(ambiguous(
                "the original request is described more than once",
            ))
        }
    };
    let single = |name: &str| -> Result<Option<&str>, Reject> {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(v), None) => v.to_str().map(Some).map_err(|_| ambiguous(name)),
            _ => Err(ambiguous(name)),
        }
    };
    let method_of = |text: Option<&str>| -> Result<Method, Reject> {
        match text {
            Some(m) => {
                let method = Method::from_bytes(m.as_bytes()).map_err(|_| ambiguous("method"))?;
                // A front proxy that forwards TRACE gets 403 here (nginx's
                // `auth_request` turns any status but 2xx, 401 and 403 into 500).
                super::check_method(&method).map_err(|reject| match reject {
                    Reject::MethodRefused => Reject::Denied,
                    other => other,
                })?;
                Ok(method)
            }
            None => Ok(own_method.clone()),
        }
    };
    let forbid = |names: &[&str]| -> Result<(), Reject> {
        match names.iter().find(|n| present(n) > 0) {
            Some(name) => Err(ambiguous(name)),
            None => Ok(()),
        }
    };
    let host_header = single("host")?.ok_or(Reject::BadHost)?.to_owned();
    let described = match caller {
        Caller::Nginx | Caller::Traefik => {
            forbid(&["x-original-method"])?;
            let name = if caller == Caller::Nginx {
                "x-original-uri"
            } else {
                "x-forwarded-uri"
            };
            Described {
                caller,
                target: single(name)?.unwrap_or("/").to_owned(),
                method: method_of(single("x-forwarded-method")?)?,
                host: single("x-forwarded-host")?.map_or(host_header, str::to_owned),
            }
        }
        Caller::IngressNginx => {
            forbid(&["x-forwarded-method"])?;
            let url = single("x-original-url")?.unwrap_or_default();
            let parsed = url::Url::parse(url).map_err(|_| ambiguous("x-original-url"))?;
            let mut target = parsed.path().to_owned();
            if let Some(q) = parsed.query() {
                target.push('?');
                target.push_str(q);
            }
            let host = match (parsed.host_str(), parsed.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                (None, _) => return Err(ambiguous("x-original-url")),
            };
            Described {
                caller,
                target,
                method: method_of(single("x-original-method")?)?,
                host,
            }
        }
        Caller::Envoy => {
            // Envoy sends the original method, path and authority as the check
            // request's own; a client's describing headers have no place here.
            forbid(&[
                "x-forwarded-method",
                "x-original-method",
                "x-forwarded-host",
            ])?;
            let mut target = if suffix.is_empty() {
                "/".to_owned()
            } else {
                suffix.to_owned()
            };
            if let Some(q) = query {
                target.push('?');
                target.push_str(q);
            }
            Described {
                caller,
                target,
                method: own_method.clone(),
                host: host_header,
            }
        }
    };
    Ok(described)
}

pub(super) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    let query = query?;
    let mut found = url::form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == name);
    match (found.next(), found.next()) {
        (Some((_, v)), None) => Some(v.into_owned()),
        // A repeated parameter is ambiguous: treat as absent.
        _ => None,
    }
}

/// `GET /login?rd=PATH[&provider=NAME]`: start a login with `provider`, or,
/// without one, with the provider the route of `rd` admits (the chooser
/// when it admits several). An unknown or bearer-only provider is 400.
fn login(
    state: &State,
    rt: &Runtime,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Response<Body>, Reject> {
    let rd = query_param(query, "rd");
    let redirect = match query_param(query, "provider") {
        Some(name) => {
            let provider = rt
                .providers
                .named(&name)
                .map(|(_, p)| p)
                .filter(|p| p.has_client())
                .ok_or(Reject::UnknownProvider(name))?;
            let prompt = query_param(query, "prompt")
                .as_deref()
                .and_then(crate::auth::oidc::Prompt::parse);
            authenticate::start_login(state, rt, provider, rd.as_deref(), headers, prompt)?
        }
        None => {
            let admitted = admitted_for(rt, rd.as_deref());
            let rd = rd.as_deref().unwrap_or("/");
            authenticate::login_for(state, rt, rd, headers, &admitted)?
        }
    };
    Ok(respond::redirect(&redirect.location, &redirect.set_cookies))
}

/// The providers (indices) the route of a return URL admits: the rule of its
/// path (on the public host, or the host an absolute `rd` names); every
/// provider when `rd` says nothing usable.
fn admitted_for(rt: &Runtime, rd: Option<&str>) -> Vec<usize> {
    let every = || (0..rt.providers.iter().count()).collect();
    let Some(rd) = rd else { return every() };
    let public_host = rt.config.server.public_url.host_str().unwrap_or_default();
    let (host, path) = if rd.starts_with('/') {
        (public_host.to_owned(), rd.to_owned())
    } else {
        match url::Url::parse(rd) {
            Ok(url) => {
                let mut path = url.path().to_owned();
                if let Some(q) = url.query() {
                    path.push('?');
                    path.push_str(q);
                }
                (url.host_str().unwrap_or_default().to_owned(), path)
            }
            Err(_) => return every(),
        }
    };
    match crate::policy::normalize::normalize_str(&path) {
        Ok(target) => rt
            .routes
            .find(Some(&host), &Method::GET, target.match_path())
            .providers
            .clone(),
        Err(_) => every(),
    }
}

/// `GET /callback`: the provider sends the browser back with a code (or an error).
///
/// # Security
/// A login state is one-time whatever the outcome: as soon as the callback
/// names the pending login, that login is ended (its `state` recorded as used
/// and its cookie cleared) before anything the provider sent is looked at. An
/// `error=` callback, an expired login or a foreign `iss` therefore leave no
/// `state` that a later callback with a code could still use.
async fn callback(
    state: &State,
    rt: &Runtime,
    headers: &HeaderMap,
    query: Option<&str>,
    provider_name: &str,
) -> Result<Response<Body>, Reject> {
    let state_param = query_param(query, "state").ok_or(Reject::Login {
        failure: LoginFailure::MissingState,
        clear: None,
    })?;
    let cookie_name = rt.cookies.login_name(&state_param);
    let pending = open_pending(state, rt, headers, &cookie_name)?;
    let clear_login = rt.cookies.clear_login(&cookie_name);
    let fail = |failure: LoginFailure| Reject::Login {
        failure,
        clear: Some(clear_login.clone()),
    };

    if !bool::from(pending.login.state.as_bytes().ct_eq(state_param.as_bytes())) {
        return Err(fail(LoginFailure::StateMismatch));
    }
    let now = state.clock.now();
    consume_state(state, &state_param, now).map_err(|failure| match failure {
        Some(failure) => fail(failure),
        None => Reject::ProviderUnavailable,
    })?;
    if now - pending.created_at > authenticate_login_ttl() {
        return Err(fail(LoginFailure::Expired { rd: pending.rd }));
    }
    if let Some(error) = query_param(query, "error") {
        return Err(fail(LoginFailure::ProviderError {
            error: sanitize_code(&error),
            rd: pending.rd,
        }));
    }
    // IdP mix-up (RFC 9700 §4.4): the callback's path, the login's state and
    // the response's `iss` must all name one provider.
    if pending.provider != provider_name {
        return Err(fail(LoginFailure::ProviderMismatch { rd: pending.rd }));
    }
    let Some(provider) = rt.provider_named(provider_name) else {
        return Err(fail(LoginFailure::ProviderMismatch { rd: pending.rd }));
    };
    // RFC 9207: when the provider names itself, it must be this one; one that
    // says it always does must have.
    match query_param(query, "iss") {
        Some(iss) => {
            let expected = provider.metadata().map(|m| m.issuer).unwrap_or_default();
            if iss != expected {
                return Err(fail(LoginFailure::IssuerMismatch { rd: pending.rd }));
            }
        }
        None if provider.sends_response_iss() => {
            return Err(fail(LoginFailure::IssuerMissing { rd: pending.rd }));
        }
        None => {}
    }
    let code = query_param(query, "code").ok_or(fail(LoginFailure::MissingCode))?;
    let tokens = match provider.complete_login(&code, &pending.login).await {
        Ok(tokens) => tokens,
        Err(error) if error.is_outage() => {
            state
                .metrics
                .provider_errors
                .with_label_values(&["token"])
                .inc();
            state
                .metrics
                .logins
                .with_label_values(&["provider_error"])
                .inc();
            tracing::warn!(%error, "login failed: provider unavailable");
            return Err(Reject::ProviderUnavailable);
        }
        Err(error) => {
            state.metrics.logins.with_label_values(&["refused"]).inc();
            return Err(fail(LoginFailure::Tokens {
                reason: error.to_string(),
                rd: pending.rd,
                is_denied: matches!(error, OidcError::TokenRefused { .. }),
            }));
        }
    };

    // No fixation: whatever session the browser had is ended and replaced.
    if let Some(old) = rt.cookies.session_id(headers) {
        state
            .store
            .delete(&old.key())
            .await
            .map_err(Reject::StoreUnavailable)?;
    }
    let id = SessionId::generate();
    let session = Session {
        identity: tokens.identity,
        sid: tokens.sid,
        id_token: tokens.id_token,
        access_token: authenticate::keeps_access_token(rt).then_some(tokens.access_token),
        refresh_token: tokens.refresh_token,
        access_expires_at: tokens.access_expires_at,
        created_at: now,
        last_seen: now,
    };
    authenticate::save(state, rt, &id.key(), &session).await?;
    state.metrics.logins.with_label_values(&["ok"]).inc();
    tracing::info!(sub = %session.identity.sub, session = ?id.key(), "login");
    Ok(respond::redirect(
        &pending.rd,
        &[rt.cookies.set_session(&id), clear_login],
    ))
}

/// Records `state_param` as used: a login state is good for one callback,
/// even if its cookie is replayed. Bounded: a flood of logins must not grow
/// memory without limit.
///
/// # Errors
/// `Some(LoginFailure::Replayed)` when it was used before; `None` when the
/// bound is reached even after sweeping (503: no login can be checked safely).
fn consume_state(state: &State, state_param: &str, now: i64) -> Result<(), Option<LoginFailure>> {
    let until = now + authenticate_login_ttl();
    match remember_used(state, &state.used_states, state_param, until) {
        Used::Fresh => Ok(()),
        Used::Replayed => Err(Some(LoginFailure::Replayed)),
        Used::Full => Err(None),
    }
}

/// What [`remember_used`] found.
pub(super) enum Used {
    Fresh,
    Replayed,
    /// The cache is full of unexpired values: refuse rather than forget one.
    Full,
}

/// Records `value` as used until `until` in one of the bounded replay caches
/// ([`MAX_USED_STATES`] entries).
pub(super) fn remember_used(
    state: &State,
    cache: &dashmap::DashMap<String, i64>,
    value: &str,
    until: i64,
) -> Used {
    if cache.len() >= MAX_USED_STATES {
        state.sweep_caches();
        if cache.len() >= MAX_USED_STATES {
            return Used::Full;
        }
    }
    if cache.insert(value.to_owned(), until).is_some() {
        return Used::Replayed;
    }
    Used::Fresh
}

fn authenticate_login_ttl() -> i64 {
    i64::try_from(crate::session::cookie::LOGIN_TTL.as_secs()).unwrap_or(600)
}

fn open_pending(
    state: &State,
    rt: &Runtime,
    headers: &HeaderMap,
    cookie_name: &str,
) -> Result<PendingLogin, Reject> {
    let unknown = || Reject::Login {
        failure: LoginFailure::UnknownState,
        clear: None,
    };
    let sealed = rt.cookies.one(headers, cookie_name).ok_or_else(unknown)?;
    let plain = state
        .login_sealer
        .open_text(cookie_name.as_bytes(), sealed)
        .ok_or_else(unknown)?;
    serde_json::from_slice(&plain).map_err(|_| unknown())
}

/// An OAuth error code for display: only the RFC 6749 character set, bounded.
fn sanitize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

/// `GET|POST /logout` (SPEC §6): end the session here, revoke its refresh token,
/// then RP-initiated logout at the provider when it offers it.
async fn logout(
    state: &State,
    rt: &Runtime,
    headers: &HeaderMap,
) -> Result<Response<Body>, Reject> {
    let mut id_token_hint = String::new();
    let mut provider = rt.provider();
    if let Some(id) = rt.cookies.session_id(headers) {
        let key = id.key();
        if let Some(session) = state
            .store
            .load(&key)
            .await
            .map_err(Reject::StoreUnavailable)?
        {
            state
                .store
                .delete(&key)
                .await
                .map_err(Reject::StoreUnavailable)?;
            state.metrics.logouts.with_label_values(&["user"]).inc();
            tracing::info!(sub = %session.identity.sub, session = ?key, "logout");
            // Revocation and RP-initiated logout go to the session's own provider.
            if let Some(own) = rt.provider_named(&session.identity.provider) {
                provider = own;
            }
            if let Some(refresh_token) = &session.refresh_token {
                provider.revoke(refresh_token).await;
            }
            id_token_hint = Arc::unwrap_or_clone(session).id_token;
        }
    }
    let server = &rt.config.server;
    let after = server
        .public_url
        .join(&server.post_logout_url)
        .map(String::from)
        .unwrap_or_else(|_| server.post_logout_url.clone());
    let location = provider
        .end_session_url(&id_token_hint, &after)
        .unwrap_or_else(|| server.post_logout_url.clone());
    Ok(respond::redirect(&location, &[rt.cookies.clear_session()]))
}

/// `POST /backchannel-logout` (Back-Channel Logout 1.0 §2.5): the provider says
/// a user or a provider session has ended; end every matching session.
async fn backchannel_logout(
    state: &State,
    rt: &Runtime,
    req: Request<Incoming>,
) -> Result<Response<Body>, Reject> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(Reject::Backchannel("not a form".into()));
    }
    let body: Bytes = Limited::new(req.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| Reject::Backchannel("body unreadable or too large".into()))?
        .to_bytes();
    let token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| Reject::Backchannel("no logout_token".into()))?;
    // The logout token's issuer picks the provider whose keys verify it
    // (which checks `iss` again) and whose sessions it may end (SPEC §12).
    let iss = crate::auth::providers::unverified_issuer(&token).unwrap_or_default();
    let Some((_, provider)) = rt.providers.by_issuer(&iss) else {
        return Err(Reject::Backchannel(format!(
            "no provider has issuer {iss:?}"
        )));
    };
    let order = match provider.validate_logout_token(&token).await {
        Ok(order) => order,
        Err(error) if error.is_outage() => return Err(Reject::ProviderUnavailable),
        Err(error) => return Err(Reject::Backchannel(error.to_string())),
    };
    if state
        .seen_jti
        .insert(order.jti.clone(), order.remember_until)
        .is_some()
    {
        return Err(Reject::Backchannel(format!("jti {:?} replayed", order.jti)));
    }
    let of_provider = |value| crate::session::subject_key(provider.name(), value);
    let ended = match (&order.sid, &order.sub) {
        (Some(sid), _) => state.store.delete_by_sid(&of_provider(sid)).await,
        (None, Some(sub)) => state.store.delete_by_sub(&of_provider(sub)).await,
        (None, None) => Ok(0),
    }
    .map_err(Reject::StoreUnavailable)?;
    state
        .metrics
        .logouts
        .with_label_values(&["backchannel"])
        .inc();
    tracing::info!(provider = provider.name(), sid = ?order.sid, sub = ?order.sub, ended, "back-channel logout");
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CACHE_CONTROL, "no-store")
        .body(body::empty())
        .expect("static response parts are valid"))
}

/// `GET /userinfo`: the current session's identity for single-page apps; never a token.
async fn userinfo(
    state: &Arc<State>,
    rt: &Runtime,
    headers: &HeaderMap,
) -> Result<Response<Body>, Reject> {
    let Some(auth) = authenticate::session(state, rt, headers).await? else {
        return Err(Reject::Unauthenticated {
            login_url: authenticate::login_url(rt, "/", None),
        });
    };
    let (idle, absolute) = rt.timeouts();
    let identity = &auth.session.identity;
    let json = serde_json::json!({
        "provider": identity.provider,
        "sub": identity.sub,
        "email": identity.email,
        "name": identity.name,
        "preferred_username": identity.preferred_username,
        "roles": identity.roles,
        "expires_at": auth.session.expires_at(idle, absolute),
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body::full(json.to_string()))
        .expect("static response parts are valid"))
}

/// `GET {auth_prefix}/`: who is signed in, with which provider, until when,
/// and the claims the rules see (SPEC §12), so a person or an operator can
/// answer "why am I refused?" without reading logs. Without a session: the
/// login (a browser) or 401.
async fn signed_in(
    state: &Arc<State>,
    rt: &Runtime,
    ex: &Exchange<'_>,
    headers: &HeaderMap,
) -> Result<Response<Body>, Reject> {
    let Some(auth) = authenticate::session(state, rt, headers).await? else {
        let prefix = &rt.config.server.auth_prefix;
        let admitted: Vec<usize> = (0..rt.providers.iter().count()).collect();
        return Err(authenticate::unauthenticated(
            state,
            rt,
            ex.is_navigation,
            &format!("{prefix}/"),
            headers,
            &admitted,
        ));
    };
    let (idle, absolute) = rt.timeouts();
    let expires_at = auth.session.expires_at(idle, absolute);
    Ok(super::pages::signed_in(
        rt,
        &auth.session.identity,
        expires_at,
        ex,
    ))
}

/// `GET {auth_prefix}/jwks.json`: the public key apps verify `X-Portcullis-Identity` with.
fn jwks(state: &State) -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "public, max-age=300")
        .body(body::full(state.signer.jwks_json()))
        .expect("static response parts are valid")
}
