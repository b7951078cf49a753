//! The request path's driver (Pingora's `process_request`): one function calls
//! the steps in a fixed order, and every outcome, rejects included, is logged and
//! counted.
//!
//! ```text
//! normalize ─► own endpoint? ─► route::find ─► authenticate ─► authorize ─► headers ─► forward
//!     └──────────────── any Reject ──► respond::render ──────────────┴──► log + count (always)
//! ```

pub mod authenticate;
pub mod body;
pub mod connect;
pub mod endpoints;
mod exchange;
pub mod forward;
pub mod memo;
pub mod pages;
pub mod pool;
pub mod respond;
mod scope;

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use http::{header, Request, Response};
use hyper::body::Incoming;

use crate::admin::metrics::{method_label, Metrics};
use crate::auth::bearer::{self, BearerError};
use crate::auth::oidc::Provider;
use crate::auth::providers::{self, Providers};
use crate::clock::Clock;
use crate::config::{AuthMode, Config};
use crate::identity::{self, Identity};
use crate::policy::authorize::{self, Denial};
use crate::policy::normalize::{self, NormalizedPath, PathError, Target};
use crate::policy::origin::{OriginError, Origins};
use crate::policy::route::{RouteTable, Rule};
use crate::session::cookie::Cookies;
use crate::session::seal::Sealer;
use crate::session::{SessionError, SessionKey, SessionStore};

pub use authenticate::LoginRedirect;
pub use body::Body;
pub use exchange::{ConnInfo, Exchange, Series};
pub use forward::{ForwardContext, Upstream, UpstreamError, Upstreams};
pub use scope::{RuntimeCell, Scope, Scopes};

/// Process-wide state, built once at start and shared by every connection.
/// Sessions and replay caches live here, so they survive a config reload.
pub struct State {
    /// The reloadable part; loaded once per request so a reload never mixes an
    /// old route table with new settings.
    pub runtime: RuntimeCell,
    pub metrics: Arc<Metrics>,
    pub store: Arc<dyn SessionStore>,
    pub clock: Arc<dyn Clock>,
    /// Seals login-state cookies.
    pub login_sealer: Sealer,
    /// One gate per session being refreshed: single-flight refresh.
    pub refresh_gates: DashMap<SessionKey, Arc<tokio::sync::Mutex<()>>>,
    /// Login `state` values already used at the callback, until they expire.
    pub used_states: DashMap<String, i64>,
    /// Connect `state` values already used (SPEC §13), apart from logins', so
    /// a flood of connects cannot fill the login replay cache.
    pub used_connect_states: DashMap<String, i64>,
    /// Back-channel logout `jti`s already seen, until they expire.
    pub seen_jti: DashMap<String, i64>,
    /// Unix time before which no refresh is tried (after a provider outage).
    pub provider_backoff_until: AtomicI64,
    /// Signs `X-Portcullis-Identity`; process-wide, so a generated key (and the
    /// JWKS apps cached) survives config reloads.
    pub signer: Arc<crate::identity::Signer>,
    /// Connected-account links (SPEC §13): the session store again.
    pub links: Arc<dyn crate::session::LinkStore>,
    /// One gate per link being refreshed: single-flight in this process.
    pub link_gates: crate::connections::tokens::Gates,
}

impl State {
    /// Drops expired entries from the replay caches.
    pub fn sweep_caches(&self) {
        let now = self.clock.now();
        self.used_states.retain(|_, until| *until > now);
        self.used_connect_states.retain(|_, until| *until > now);
        self.seen_jti.retain(|_, until| *until > now);
    }
}

/// Everything derived from one config: swapped whole on reload.
pub struct Runtime {
    pub config: Arc<Config>,
    pub routes: RouteTable,
    /// Who may open a WebSocket on a session route (SPEC §7).
    pub origins: Origins,
    /// Every upstream, by the index a route's rule carries.
    pub upstreams: Upstreams,
    /// `Config::kept_claims`, computed once: what identities keep.
    pub kept_claims: Vec<String>,
    /// Returns true if and only if some upstream is sent the access token, so
    /// sessions keep it (SPEC §7).
    pub passes_access_token: bool,
    pub cookies: Cookies,
    /// Every identity provider, by the index a route's rule carries (SPEC §12).
    pub providers: Providers,
    /// The pages of `server.templates_dir`, read at load (and reload).
    pub templates: pages::Templates,
    /// `[connections.NAME]` clients (SPEC §13).
    pub connections: crate::connections::Connections,
}

impl Runtime {
    /// Compiles `config` into a runtime using `providers` (built for it, in
    /// `Config::all_providers` order); upstreams whose transport is unchanged
    /// keep `previous`'s connection pools.
    ///
    /// # Errors
    /// When an upstream client cannot be built (for example an unreadable CA file).
    pub fn new(
        config: Config,
        providers: Providers,
        metrics: Arc<Metrics>,
        previous: Option<&Runtime>,
    ) -> Result<Self, UpstreamError> {
        let routes = RouteTable::new(&config);
        let origins = Origins::new(&config.server.public_url, &config.server.allowed_origins);
        let upstreams = Upstreams::new(&config, metrics, previous.map(|rt| &rt.upstreams))?;
        let kept_claims = config.kept_claims();
        let passes_access_token = config.all_upstreams().any(|(_, up)| up.pass_access_token);
        let cookies = Cookies::new(&config);
        // Checked readable by the config loader; a file that vanished since
        // falls back to the built-in page rather than failing the load.
        let templates = pages::Templates::load(config.server.templates_dir.as_deref());
        let connections = crate::connections::Connections::new(&config);
        Ok(Runtime {
            connections,
            templates,
            config: Arc::new(config),
            routes,
            origins,
            upstreams,
            kept_claims,
            passes_access_token,
            cookies,
            providers,
        })
    }

    /// The default provider (`[oidc]`).
    pub fn provider(&self) -> &Arc<Provider> {
        self.providers.default_provider()
    }

    /// The provider a session or login names; `None` when a reload removed it.
    pub fn provider_named(&self, name: &str) -> Option<&Arc<Provider>> {
        self.providers.named(name).map(|(_, p)| p)
    }

    /// `(session.idle_timeout, session.absolute_timeout)`.
    pub fn timeouts(&self) -> (Duration, Duration) {
        (
            self.config.session.idle_timeout,
            self.config.session.absolute_timeout,
        )
    }
}

/// Why the login callback failed. The user sees a short page with a retry link.
#[derive(Debug, thiserror::Error)]
pub enum LoginFailure {
    #[error("callback without state")]
    MissingState,
    /// No login-state cookie for this `state`: another browser's link, a cookie
    /// that expired, or a forged state.
    #[error("no login in progress for this state in this browser")]
    UnknownState,
    #[error("state does not match the login in progress")]
    StateMismatch,
    #[error("the login took too long")]
    Expired { rd: String },
    #[error("state already used")]
    Replayed,
    #[error("callback without code")]
    MissingCode,
    /// The provider sent `error=...` (the user cancelled, consent refused...).
    #[error("provider answered {error}")]
    ProviderError { error: String, rd: String },
    /// RFC 9207 `iss` names another provider.
    #[error("callback iss names another provider")]
    IssuerMismatch { rd: String },
    /// No RFC 9207 `iss` from a provider whose discovery says it always sends one.
    #[error("callback without the iss its provider always sends")]
    IssuerMissing { rd: String },
    /// The callback's path names another provider than the login was sent to
    /// (IdP mix-up, RFC 9700 §4.4).
    #[error("callback for another provider than the login's")]
    ProviderMismatch { rd: String },
    /// The code exchange or a token check failed.
    #[error("tokens refused: {reason}")]
    Tokens {
        reason: String,
        rd: String,
        is_denied: bool,
    },
}

impl LoginFailure {
    /// Where a retry should return to.
    pub fn rd(&self) -> &str {
        match self {
            LoginFailure::Expired { rd }
            | LoginFailure::ProviderError { rd, .. }
            | LoginFailure::IssuerMismatch { rd }
            | LoginFailure::IssuerMissing { rd }
            | LoginFailure::ProviderMismatch { rd }
            | LoginFailure::Tokens { rd, .. } => rd,
            _ => "/",
        }
    }
}

/// Why a request was not forwarded. Every step's error converts into it, and
/// only [`respond::render`] turns it into a response.
#[derive(Debug, thiserror::Error)]
pub enum Reject {
    /// The request target cannot be normalized safely (SPEC §3): 400.
    #[error(transparent)]
    BadTarget(#[from] PathError),
    /// A method with lowercase letters (see [`check_method`]): 400.
    #[error("method with lowercase letters")]
    BadMethod,
    /// No `Host` (or `:authority`), several, or one that is not a host: 400.
    #[error("missing, repeated or invalid Host")]
    BadHost,
    /// The rule is `auth = "deny"`: 403.
    #[error("the route denies every request")]
    Denied,
    /// A WebSocket handshake on a session route from a page of another site: 403.
    #[error(transparent)]
    CrossOrigin(#[from] OriginError),
    /// The route's upstream needs a claim the identity lacks (`required`): 403.
    #[error(transparent)]
    MissingClaim(#[from] crate::identity::headers::MissingClaim),
    /// A session of a provider the route does not admit, on a request that
    /// cannot be sent to sign in again: 403 `provider_not_allowed` (SPEC §12).
    #[error("session of provider {provider:?}, which this route does not admit")]
    ProviderNotAllowed { provider: String },
    /// A browser must choose among several providers to sign in: 200, the
    /// sign-in chooser (SPEC §12).
    #[error("sign-in chooser")]
    ChooseProvider(authenticate::Chooser),
    /// Authenticated, but the rule refuses this identity: 403.
    #[error("{denial}")]
    Forbidden {
        denial: Denial,
        via_bearer: bool,
        /// Who is signed in, for the 403 page (SPEC §12); `None` before
        /// authentication and for bearer tokens.
        viewer: Option<Box<pages::Viewer>>,
    },
    /// No identity and not a browser navigation: 401 with the login URL.
    #[error("no authenticated identity")]
    Unauthenticated { login_url: String },
    /// No identity, a browser navigating: 302 to the provider.
    #[error("login required")]
    LoginRequired(LoginRedirect),
    /// A bearer route without a valid token: 401 `invalid_token`.
    #[error("bearer token refused: {0}")]
    InvalidToken(#[from] BearerError),
    /// A bearer route without any token: 401 with a bare challenge (RFC 6750 §3.1).
    #[error("no bearer token")]
    NoToken,
    /// `/login?provider=` names no provider, or one without a client: 400.
    #[error("unknown provider {0:?} (or bearer tokens only)")]
    UnknownProvider(String),
    /// A path under `auth_prefix` that is no endpoint of the proxy: 404.
    #[error("no such proxy endpoint")]
    NotFound,
    /// An endpoint of the proxy with the wrong method: 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// `TRACE`, `TRACK` or `CONNECT`, on any route (see [`check_method`]): 405.
    #[error("method refused on every route")]
    MethodRefused,
    /// The login callback failed: 400 (403 when the user or provider refused).
    /// `clear` removes the login-state cookie the callback ended, if any.
    #[error("login failed: {failure}")]
    Login {
        failure: LoginFailure,
        clear: Option<http::HeaderValue>,
    },
    /// A forward-auth request describes the original request ambiguously
    /// (several sources, repeated headers): 400.
    #[error("forward-auth request is ambiguous: {0}")]
    ForwardAuth(String),
    /// A back-channel logout request was invalid: 400 (OIDC Back-Channel Logout §2.8).
    #[error("back-channel logout refused: {0}")]
    Backchannel(String),
    /// The session store cannot answer: 503.
    #[error(transparent)]
    StoreUnavailable(SessionError),
    /// The provider is not available (not discovered yet, or down): 503.
    #[error("the identity provider is unavailable")]
    ProviderUnavailable,
    /// The upstream failed: 502 or 504.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A route needs a connected account the user has not linked (or whose
    /// link ended), on a request that cannot be sent to connect: 403
    /// `connection_required` (SPEC §13).
    #[error("connection {connection:?} is not linked")]
    ConnectionRequired {
        connection: String,
        connect_url: String,
    },
    /// A third party cannot be reached (to connect, or to refresh an expired
    /// token): 502; the link is kept.
    #[error("the connected service is unavailable")]
    ConnectionUnavailable,
    /// A connect callback with an unknown, replayed or foreign `state`: 400,
    /// nothing stored.
    #[error("connect refused: {why}")]
    ConnectFailed {
        why: &'static str,
        clear: Option<http::HeaderValue>,
    },
    /// A state-changing request to the proxy not labelled same-origin: 403.
    #[error("cross-site request refused")]
    NotSameOrigin,
}

impl Reject {
    /// The decision label for logs and metrics.
    fn decision(&self) -> &'static str {
        match self {
            Reject::BadTarget(_)
            | Reject::BadHost
            | Reject::BadMethod
            | Reject::ForwardAuth(_)
            | Reject::UnknownProvider(_) => "bad_request",
            Reject::ChooseProvider(_) => "redirect",
            Reject::Denied
            | Reject::ProviderNotAllowed { .. }
            | Reject::Forbidden { .. }
            | Reject::CrossOrigin(_)
            | Reject::NotSameOrigin
            | Reject::ConnectionRequired { .. }
            | Reject::MissingClaim(_) => "forbidden",
            Reject::Unauthenticated { .. } | Reject::NoToken => "unauthenticated",
            Reject::LoginRequired(_) => "redirect",
            Reject::InvalidToken(_) => "invalid_token",
            Reject::NotFound | Reject::MethodNotAllowed => "not_found",
            Reject::MethodRefused => "bad_request",
            Reject::Login { .. } | Reject::Backchannel(_) | Reject::ConnectFailed { .. } => {
                "refused"
            }
            Reject::ConnectionUnavailable => "upstream_error",
            Reject::StoreUnavailable(_) | Reject::ProviderUnavailable => "unavailable",
            Reject::Upstream(UpstreamError::ClientBody(_) | UpstreamError::BodyTooLarge { .. }) => {
                "bad_request"
            }
            Reject::Upstream(_) => "upstream_error",
        }
    }
}

/// Serves one request: never fails, never panics on client input.
pub async fn handle(scope: Arc<Scope>, req: Request<Incoming>) -> Response<Body> {
    let Scope {
        state, rt, conn, ..
    } = &*scope;
    let mut ex = Exchange::new(&req, conn);
    let resp = match run(state, rt, conn, &mut ex, req).await {
        Ok(resp) => resp,
        Err(reject) => {
            ex.decision = reject.decision();
            ex.reason = Some(reject.to_string());
            respond::render(reject, &ex, &rt.templates)
        }
    };
    log_and_count(&state.metrics, &ex, &resp);
    resp
}

async fn run<'rt>(
    state: &Arc<State>,
    rt: &'rt Runtime,
    conn: &ConnInfo,
    ex: &mut Exchange<'rt>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Reject> {
    check_method(req.method())?;
    let target = normalize::normalize(req.uri(), req.version())?;
    ex.path = Some(target.path().clone());
    let host = request_host(&req)?;
    let authority = host.authority();
    let host_name = host.name(authority);
    if is_under(target.match_path(), &rt.config.server.auth_prefix) {
        // Boxed, like the other rare paths below: the request path's future
        // holds whatever it awaits inline, and is copied as it moves.
        let query = target.query();
        return Box::pin(endpoints::handle(
            state,
            rt,
            ex,
            req,
            target.match_path(),
            query,
        ))
        .await;
    }
    let rule = rt
        .routes
        .find(Some(host_name), req.method(), target.match_path());
    ex.route = Some(Series::Rule(&rule.counters));
    let upstream = rt.upstreams.get(rule.upstream);
    ex.upstream = Some(upstream.name());
    admit_source(rt, rule, conn.peer.ip(), req.headers())?;

    let asked = Asked {
        target: &target,
        authority,
    };
    let who = authenticate_for(state, rt, ex, rule, req.headers(), &asked, true).await?;
    check_websocket_origin(rt, who.as_ref(), req.headers())?;
    let via_bearer = who.as_ref().is_some_and(Who::via_bearer);
    let permit = match &who {
        Some(who) => {
            let identity = who.identity();
            ex.sub = Some(who.subject());
            let permit = authorize::authorize(&rt.routes.global, rule, identity, via_bearer)
                .map_err(|denial| Reject::Forbidden {
                    denial,
                    via_bearer,
                    viewer: (!via_bearer).then(|| pages::Viewer::of(rt, identity)),
                })?;
            Some(permit)
        }
        None => None,
    };
    let identity_headers = permit
        .as_ref()
        .map(|permit| identity::headers::prepare(permit.identity(), upstream.header_set()))
        .transpose()?;
    let (session_end, access_token) = match &who {
        Some(Who::Session(auth)) => (
            Some(session_end_watch(state, rt, auth.key)),
            auth.session.access_token.as_deref(),
        ),
        _ => (None, None),
    };
    let assertion = match (&permit, &who) {
        (Some(permit), Some(who)) => {
            let sign = || identity_assertion(state, rt, permit.identity(), host_name);
            ex.memo
                .assertion(&who.subject(), host_name, state.clock.now(), sign)
        }
        _ => None,
    };
    let pass_token = upstream.passes_access_token() && !via_bearer;
    let connection_headers = match (&permit, rule.connections.is_empty()) {
        (Some(permit), false) => {
            let rd = authenticate::return_url(rt, asked.authority, &target);
            let navigating =
                ex.is_navigation && matches!(ex.method, http::Method::GET | http::Method::HEAD);
            Box::pin(connect::connection_headers(
                state,
                rt,
                permit.identity(),
                &rule.connections,
                navigating,
                &rd,
            ))
            .await?
        }
        _ => Vec::new(),
    };
    let ctx = ForwardContext {
        peer: conn.peer.ip(),
        peer_text: &conn.peer_text,
        worker: conn.worker,
        is_tls: conn.is_tls,
        host: &host.full,
        request_id: &ex.request_id,
        route: &rule.counters,
        permit: permit.as_ref(),
        identity_headers,
        strip_prefix: rule.strip_prefix.as_deref(),
        assertion,
        via_bearer,
        access_token: access_token.filter(|_| pass_token),
        connection_headers,
        session_end,
        memo: Some(&conn.memo),
    };
    let mut latency = None;
    let result = upstream.forward(req, &target, ctx, &mut latency).await;
    ex.upstream_latency = latency;
    Ok(result?)
}

/// Refuses a method with lowercase letters: HTTP methods are case-sensitive,
/// so `get` is not `GET` to a rule with `methods = ["GET"]`, but frameworks that
/// uppercase `REQUEST_METHOD` (Symfony, Laravel) would serve it as GET.
///
/// Refuses on every route, as nginx does, the methods no application behind
/// an authenticating proxy should see: `TRACE` and IIS's `TRACK` echo the
/// request, with the headers the proxy added, back to the page that sent it
/// (cross-site tracing); `CONNECT` asks for a tunnel the proxy does not offer.
///
/// # Errors
/// [`Reject::BadMethod`] (400) or [`Reject::MethodRefused`] (405).
pub fn check_method(method: &http::Method) -> Result<(), Reject> {
    if method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(Reject::BadMethod);
    }
    if is_refused_method(method) {
        return Err(Reject::MethodRefused);
    }
    Ok(())
}

/// Returns true if and only if `method` is `TRACE`, `TRACK` or `CONNECT`.
pub fn is_refused_method(method: &http::Method) -> bool {
    matches!(method.as_str(), "TRACE" | "TRACK" | "CONNECT")
}

/// Refuses a request from a client address outside `source_ips` (the route's
/// or `[policy]`'s), before anything else is asked of it (SPEC §3). The
/// client is the peer, or the `X-Forwarded-For` chain as far as
/// `server.trusted_proxies` allow.
///
/// # Errors
/// [`Reject::Forbidden`].
pub fn admit_source(
    rt: &Runtime,
    rule: &crate::policy::route::Rule,
    peer: std::net::IpAddr,
    headers: &http::HeaderMap,
) -> Result<(), Reject> {
    let global = &rt.routes.global;
    if global.source_ips.is_empty() && rule.requirements.source_ips.is_empty() {
        return Ok(());
    }
    let client = forward::client_ip(peer, headers, &rt.config.server.trusted_proxies);
    authorize::admit_source(global, rule, client).map_err(|denial| Reject::Forbidden {
        denial,
        via_bearer: false,
        viewer: None,
    })
}

/// Refuses a WebSocket handshake authenticated by the session cookie when a
/// browser sent it from a page of another site (SPEC §7). Bearer-authenticated
/// and public handshakes carry no ambient credential, so they are not checked.
///
/// # Errors
/// [`Reject::CrossOrigin`].
pub fn check_websocket_origin(
    rt: &Runtime,
    who: Option<&Who>,
    headers: &http::HeaderMap,
) -> Result<(), Reject> {
    if matches!(who, Some(Who::Session(_))) {
        rt.origins.check_handshake(headers)?;
    }
    Ok(())
}

/// The signed `X-Portcullis-Identity` for `identity` at `host` (SPEC §7). A
/// signing failure is logged and the request goes on without it: the plain
/// identity headers are still set, and an app that verifies will refuse.
pub fn identity_assertion(
    state: &State,
    rt: &Runtime,
    identity: &Identity,
    host: &str,
) -> Option<http::HeaderValue> {
    // The issuer as the provider's tokens state it (from discovery), asked
    // only when a new assertion is signed.
    let idp_iss = || {
        rt.provider_named(&identity.provider)
            .and_then(|provider| provider.metadata().ok())
            .map(|metadata| metadata.issuer)
            .unwrap_or_default()
    };
    match state
        .signer
        .assertion_for(identity, &idp_iss, host, state.clock.now())
    {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::error!(%error, "cannot sign X-Portcullis-Identity");
            None
        }
    }
}

/// Who the request is, as far as `auth` demands: `None` on a public route.
pub enum Who {
    /// A browser's session: the stored record, shared with the store.
    Session(authenticate::Authenticated),
    /// The request's own bearer token: the identity its cache entry holds.
    Bearer(Arc<Identity>),
}

impl Who {
    pub fn identity(&self) -> &Identity {
        match self {
            Who::Session(auth) => &auth.session.identity,
            Who::Bearer(identity) => identity,
        }
    }

    pub fn via_bearer(&self) -> bool {
        matches!(self, Who::Bearer(_))
    }

    /// Who this is, for the access log.
    pub fn subject(&self) -> exchange::Subject {
        match self {
            Who::Session(auth) => exchange::Subject::Session(auth.session.clone()),
            Who::Bearer(identity) => exchange::Subject::Bearer(identity.clone()),
        }
    }
}

/// The request being judged: its target and the host (`Host` as sent, port
/// included) the client asked for.
pub struct Asked<'a> {
    pub target: &'a Target,
    pub authority: &'a str,
}

/// Step 3 for a rule's `auth` mode: the identity it demands, or the refusal.
/// A login returns to what was asked; `may_redirect` is false where the
/// caller cannot pass a redirect on (nginx `auth_request` accepts only 2xx,
/// 401, 403).
pub async fn authenticate_for(
    state: &Arc<State>,
    rt: &Runtime,
    ex: &Exchange<'_>,
    rule: &Rule,
    headers: &http::HeaderMap,
    asked: &Asked<'_>,
    may_redirect: bool,
) -> Result<Option<Who>, Reject> {
    let no_session = || {
        let rd = authenticate::return_url(rt, asked.authority, asked.target);
        let is_navigation = ex.is_navigation && may_redirect;
        authenticate::unauthenticated(state, rt, is_navigation, &rd, headers, &rule.providers)
    };
    let by_session = |auth: Option<authenticate::Authenticated>| match auth {
        Some(auth) if admits(rt, rule, &auth.session.identity.provider) => {
            Ok(Some(Who::Session(auth)))
        }
        // A session of a provider this route does not admit (SPEC §12): a
        // browser signs in again (which replaces it), anything else is refused.
        // Behind nginx (`may_redirect` false) that is the 401 its `error_page`
        // turns into a sign-in.
        Some(auth) if ex.is_navigation => {
            tracing::debug!(provider = %auth.session.identity.provider, "session of a provider the route does not admit");
            Err(no_session())
        }
        Some(auth) => Err(Reject::ProviderNotAllowed {
            provider: auth.session.identity.provider.clone(),
        }),
        None => Err(no_session()),
    };
    let by_bearer = |identity: Arc<Identity>| Some(Who::Bearer(identity));
    let session_key = || ex.memo.session_key(&rt.cookies, headers);
    match rule.auth {
        AuthMode::Public => Ok(None),
        AuthMode::Deny => Err(Reject::Denied),
        AuthMode::Login => by_session(authenticate::session_for(state, rt, session_key()).await?),
        AuthMode::Bearer => Ok(by_bearer(bearer_identity(rt, rule, headers).await?)),
        AuthMode::LoginOrBearer => {
            if bearer::token(headers).ok().flatten().is_some() {
                Ok(by_bearer(bearer_identity(rt, rule, headers).await?))
            } else {
                by_session(authenticate::session_for(state, rt, session_key()).await?)
            }
        }
    }
}

/// Returns true if and only if `rule` admits sessions and tokens of the
/// provider named `provider`.
fn admits(rt: &Runtime, rule: &Rule, provider: &str) -> bool {
    rt.providers
        .named(provider)
        .is_some_and(|(index, _)| rule.providers.contains(&index))
}

/// The request's bearer token, verified by the provider whose issuer is the
/// token's `iss` (its keys, its audience), if `rule` admits that provider.
async fn bearer_identity(
    rt: &Runtime,
    rule: &Rule,
    headers: &http::HeaderMap,
) -> Result<Arc<Identity>, Reject> {
    let token = bearer::token(headers)?.ok_or(Reject::NoToken)?;
    // A token a provider this route admits has verified before: its cached
    // identity, without decoding the token to find its issuer. (A token is
    // cached only by the provider its `iss` names, so this answers as the
    // path below would.)
    let cached = rule
        .providers
        .iter()
        .find_map(|&index| rt.providers.get(index).cached_bearer(token));
    if let Some(identity) = cached {
        return Ok(identity);
    }
    let iss = providers::unverified_issuer(token).unwrap_or_default();
    let provider = match rt.providers.by_issuer(&iss) {
        Some((index, provider)) if rule.providers.contains(&index) => provider,
        Some(_) => return Err(Reject::InvalidToken(BearerError::IssuerNotAdmitted(iss))),
        None => return Err(Reject::InvalidToken(BearerError::UnknownIssuer(iss))),
    };
    match provider.verify_bearer(token).await {
        Ok(identity) => Ok(identity),
        Err(BearerError::NotReady) => Err(Reject::ProviderUnavailable),
        Err(error) => Err(Reject::InvalidToken(error)),
    }
}

/// What an upgraded connection of the session under `key` watches to close
/// with it.
fn session_end_watch(state: &State, rt: &Runtime, key: SessionKey) -> forward::SessionEnd {
    let (idle, absolute) = rt.timeouts();
    forward::SessionEnd {
        store: state.store.clone(),
        clock: state.clock.clone(),
        key,
        idle,
        absolute,
    }
}

/// The host a request is for: `full` as sent (for `Host` upstream; shared with
/// the request, not copied) and its name lowercased without port (for matching).
struct RequestHost {
    full: http::HeaderValue,
    /// The name when it is not a prefix of `full`'s text as it stands.
    lowered: Option<String>,
    /// The name's length when it is that prefix.
    name_len: usize,
}

impl RequestHost {
    /// `full` as text; checked to be text when the host was read.
    fn authority(&self) -> &str {
        self.full.to_str().unwrap_or_default()
    }

    /// The host name, lowercased, without port; `authority` is [`Self::authority`].
    fn name<'a>(&'a self, authority: &'a str) -> &'a str {
        match &self.lowered {
            Some(name) => name,
            None => authority.get(..self.name_len).unwrap_or_default(),
        }
    }
}

/// The `Host` header on HTTP/1, `:authority` on HTTP/2; exactly one, and a valid
/// authority without userinfo.
fn request_host<B>(req: &Request<B>) -> Result<RequestHost, Reject> {
    let mut values = req.headers().get_all(header::HOST).iter();
    let full = match (values.next(), values.next(), req.uri().authority()) {
        (Some(v), None, _) => v.clone(),
        (None, None, Some(authority)) => {
            http::HeaderValue::from_str(authority.as_str()).map_err(|_| Reject::BadHost)?
        }
        _ => return Err(Reject::BadHost),
    };
    let text = full.to_str().map_err(|_| Reject::BadHost)?;
    let (lowered, name_len) = match plain_host_len(text) {
        Some(len) => (None, len),
        None => (Some(host_name(text)?), 0),
    };
    Ok(RequestHost {
        full,
        lowered,
        name_len,
    })
}

/// The length of the name in `authority` when it is the usual lowercase
/// `name[:port]` (letters, digits, `-` and `.`, not starting or ending with
/// `.`; the port digits only), which [`host_name`] would accept and return
/// unchanged; `None` for anything else, which takes [`host_name`].
fn plain_host_len(authority: &str) -> Option<usize> {
    let (name, port) = match authority.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (authority, None),
    };
    let is_name = !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let is_port = port.is_none_or(|p| p.bytes().all(|b| b.is_ascii_digit()));
    (is_name && is_port).then_some(name.len())
}

/// The host of an authority (`Host` value), lowercased, without port. A name
/// ending in `.` is refused: `admin.example.com.` is the same host to DNS and to
/// most virtual-host matching, but not to a string comparison with a rule.
pub fn host_name(authority: &str) -> Result<String, Reject> {
    let parsed: http::uri::Authority = authority.parse().map_err(|_| Reject::BadHost)?;
    let host = parsed.host();
    if parsed.as_str().contains('@') || host.is_empty() || host.ends_with('.') {
        return Err(Reject::BadHost);
    }
    Ok(host.to_ascii_lowercase())
}

/// Returns true if and only if `path` is `prefix` or below it, on whole segments.
fn is_under(path: &str, prefix: &str) -> bool {
    crate::policy::route::is_segment_prefix(prefix, path)
}

/// One access-log line and the request counters, for every outcome.
fn log_and_count(metrics: &Metrics, ex: &Exchange<'_>, resp: &Response<Body>) {
    let status = resp.status();
    match &ex.route {
        Some(route) => route.count(metrics, &ex.method, status, ex.decision),
        None => {
            let labels = [ex.route_label(), method_label(&ex.method), status.as_str()];
            metrics.requests.with_label_values(&labels).inc();
            let labels = [ex.route_label(), ex.decision];
            metrics.decisions.with_label_values(&labels).inc();
        }
    }
    tracing::info!(
        target: "portcullis::access",
        request_id = ex.request_id.to_str().unwrap_or("-"),
        method = %ex.method,
        path = ex.path.as_ref().map_or("-", NormalizedPath::as_str),
        route = ex.route_label(),
        upstream = ex.upstream,
        decision = ex.decision,
        reason = ex.reason.as_deref(),
        status = status.as_u16(),
        sub = ex.sub.as_ref().map(exchange::Subject::sub),
        upstream_ms = ex.upstream_latency.map(|d| d.as_secs_f64() * 1000.0),
        duration_ms = ex.started.map(|at| at.elapsed().as_secs_f64() * 1000.0),
        client = %ex.peer,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_host_shortcut_agrees_with_the_full_parse() {
        let hosts = [
            "app.example.com",
            "app.example.com:8443",
            "127.0.0.1:18282",
            "a",
            "a-b.c",
            "host:",
            "App.Example.com",
            "app.example.com.",
            ".app",
            "",
            ":80",
            "[::1]:80",
            "user@app",
            "app:80:90",
            "app:8o",
            "ap p",
            "app/x",
            "xn--bcher-kva.example",
        ];
        for host in hosts {
            // Where the shortcut declines, the full parse decides.
            if let Some(len) = plain_host_len(host) {
                let full = host_name(host).ok();
                assert_eq!(full.as_deref(), Some(&host[..len]), "{host:?}");
            }
        }
        assert_eq!(
            plain_host_len("App.example.com"),
            None,
            "uppercase goes the long way"
        );
        assert_eq!(plain_host_len("app.example.com."), None);
        assert_eq!(plain_host_len("user@app"), None);
    }
}
