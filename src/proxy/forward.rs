//! The last step: send an allowed request upstream and stream the answer back
//! (SPEC §7, transport part).
//!
//! Owns the pooled upstream client, `X-Forwarded-*`, hop-by-hop handling
//! (RFC 9110 §7.6.1), upgrades, and timeouts. Bodies stream both ways; nothing
//! here ever collects one.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use ipnet::IpNet;

use crate::admin::Metrics;
use crate::clock::Clock;
use crate::config;
use crate::identity;
use crate::policy::authorize::Permit;
use crate::policy::normalize::Target;
use crate::session::{SessionKey, SessionStore};

use super::body::Body;
use super::memo::CookieMix;
use super::pool::{Pool, PoolError, PoolSettings};
use crate::admin::metrics::RouteCounters;

/// Why a request could not be forwarded. The client sees only 502 or 504.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No TCP (or TLS) connection to the upstream could be made in time.
    #[error("cannot connect to upstream {authority}: {reason}")]
    Connect { authority: String, reason: String },
    /// The upstream accepted the request but sent no response head in time.
    #[error("upstream sent no response within {0:?}")]
    Timeout(Duration),
    /// The connection failed mid-request (reset, protocol error).
    #[error("upstream request failed: {0}")]
    Protocol(String),
    /// The upstream URL in the config could not be combined with the request.
    #[error("cannot build the upstream request: {0}")]
    Build(String),
    /// The client's request body broke off or was malformed while it streamed
    /// (a bad chunk, a reset): the client's fault, not the upstream's, so 400.
    #[error("the client's request body failed: {0}")]
    ClientBody(String),
    /// The client's request body is larger than `server.max_body_bytes`: 413.
    #[error("request body over the limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    /// `upstream.ca_file` could not be read or holds no certificate.
    #[error("cannot load upstream.ca_file {path}: {reason}")]
    CaFile { path: String, reason: String },
}

/// What the forwarder needs to know about the request beyond the request itself.
pub struct ForwardContext<'a> {
    pub peer: IpAddr,
    /// `peer` as text, formatted once per connection (see [`super::ConnInfo`]).
    pub peer_text: &'a HeaderValue,
    /// The serving thread the request arrived on: its own upstream pool.
    pub worker: usize,
    pub is_tls: bool,
    /// The host the client asked for (`Host`, or `:authority` on HTTP/2), as sent.
    pub host: &'a HeaderValue,
    pub request_id: &'a HeaderValue,
    /// The route's name and series.
    pub route: &'a crate::admin::metrics::RouteCounters,
    /// The authorization that lets identity headers be set; `None` on public routes.
    pub permit: Option<&'a Permit<'a>>,
    /// The permitted identity's headers for this upstream's header set.
    pub identity_headers: Option<identity::headers::Prepared>,
    /// `route.strip_prefix`: removed from the forwarded path.
    pub strip_prefix: Option<&'a str>,
    /// The signed `X-Portcullis-Identity` value for the permitted identity.
    pub assertion: Option<HeaderValue>,
    /// The request was authenticated by its own bearer token (kept for the app).
    pub via_bearer: bool,
    /// The session's access token, when `upstream.pass_access_token` applies.
    pub access_token: Option<&'a str>,
    /// Connected accounts' access tokens (SPEC §13), set last: over the
    /// client's copies and over `access_token`.
    pub connection_headers: Vec<(http::HeaderName, HeaderValue)>,
    /// Completes when the request's session ends: an upgraded connection closes then.
    pub session_end: Option<SessionEnd>,
    /// The client connection's memo (what its `Cookie` header holds).
    pub memo: Option<&'a super::memo::ConnMemo>,
}

/// What an upgraded connection of a session watches to close when the session
/// ends (logout, back-channel logout, expiry). Costs two reference counts until
/// a connection upgrades; most requests never do.
pub struct SessionEnd {
    pub store: Arc<dyn SessionStore>,
    pub clock: Arc<dyn Clock>,
    pub key: SessionKey,
    pub idle: Duration,
    pub absolute: Duration,
}

impl SessionEnd {
    /// Completes when the session is gone or expired; a store that is down
    /// keeps the tunnel (sessions are unknown then, not ended).
    async fn ended(self) {
        let mut every = tokio::time::interval(Duration::from_secs(2));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match self.store.load(&self.key).await {
                Ok(Some(session))
                    if !session.is_expired(self.clock.now(), self.idle, self.absolute) => {}
                Ok(_) => return,
                Err(_) => {}
            }
        }
    }
}

impl PoolSettings {
    fn of(up: &config::Upstream, threads: usize) -> Self {
        PoolSettings {
            scheme: up.url.scheme().to_owned(),
            authority: authority_text(&up.url),
            ca_file: up.ca_file.clone(),
            connect_timeout: up.connect_timeout,
            pool_idle_timeout: up.pool_idle_timeout,
            pool_max_idle_per_host: up.pool_max_idle_per_host,
            threads,
        }
    }
}

/// A pool for `up`: an https-or-http connector with `up`'s TLS roots.
fn new_pool(up: &config::Upstream, settings: PoolSettings) -> Result<Pool, UpstreamError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(up.connect_timeout));
    let tls = upstream_tls(up)?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let target: Uri = format!("{}://{}/", settings.scheme, settings.authority)
        .parse()
        .map_err(|e| UpstreamError::Build(format!("upstream {}: {e}", up.url)))?;
    Ok(Pool::new(connector, target, settings))
}

/// `host[:port]` of an upstream URL, as it goes into the request URI.
fn authority_text(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The upstreams of one config, by the index routes carry (`[upstream]` is 0,
/// then `[upstreams.NAME]` in name order: `Config::all_upstreams`).
pub struct Upstreams {
    list: Vec<Upstream>,
}

impl Upstreams {
    /// Builds every upstream of `config`, reusing the pools of `previous`
    /// whose transport settings are unchanged.
    ///
    /// # Errors
    /// As [`Upstream::new`], for the first upstream that cannot be built.
    pub fn new(
        config: &config::Config,
        metrics: Arc<Metrics>,
        previous: Option<&Upstreams>,
    ) -> Result<Self, UpstreamError> {
        let strip = Arc::new(identity::headers::StripSet::new(config));
        let list = config
            .all_upstreams()
            .map(|(name, up)| {
                let reuse = previous.and_then(|old| old.pool_for(name, up, config));
                Upstream::new(name, up, config, metrics.clone(), strip.clone(), reuse)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Upstreams { list })
    }

    /// The upstream at `index` (a route's `Rule::upstream`); `[upstream]` for
    /// an index no route can carry.
    pub fn get(&self, index: usize) -> &Upstream {
        self.list.get(index).unwrap_or(&self.list[0])
    }

    /// `[upstream]`.
    pub fn default_upstream(&self) -> &Upstream {
        &self.list[0]
    }

    /// Every upstream, `[upstream]` first.
    pub fn iter(&self) -> impl Iterator<Item = &Upstream> {
        self.list.iter()
    }

    fn pool_for(
        &self,
        name: &str,
        up: &config::Upstream,
        config: &config::Config,
    ) -> Option<Arc<Pool>> {
        let wanted = PoolSettings::of(up, config.server.serving_threads());
        self.list
            .iter()
            .find(|old| &*old.name == name && old.pool.settings == wanted)
            .map(|old| old.pool.clone())
    }
}

/// One protected application: where requests go, its pool, and the identity
/// headers it reads (SPEC §11).
pub struct Upstream {
    /// `default` for `[upstream]`, else the `[upstreams.NAME]` name: a bounded
    /// metrics label and the access log's `upstream`.
    name: Arc<str>,
    pool: Arc<Pool>,
    /// The identity headers this upstream receives.
    header_set: identity::headers::HeaderSet,
    /// Every identity header name of every upstream: stripped from every request.
    strip: Arc<identity::headers::StripSet>,
    authority: Authority,
    /// `authority` as the `Host` value, unless `pass_host_header`.
    authority_host: HeaderValue,
    /// The upstream URL's path without its trailing `/`: a prefix for every path.
    base_path: String,
    response_timeout: Duration,
    pass_host_header: bool,
    trusted_proxies: Vec<IpNet>,
    pass_access_token: bool,
    /// `upstream.forward_client_authorization`.
    forward_client_authorization: bool,
    /// `server.max_body_bytes`.
    max_body_bytes: Option<u64>,
    /// The session cookie's base name: its cookies are never forwarded.
    cookie_name: String,
    metrics: Arc<Metrics>,
}

impl Upstream {
    /// Builds the upstream `name` from `up`, with `reuse` as its pool when given.
    ///
    /// # Errors
    /// When the upstream URL cannot be used or its `ca_file` cannot be loaded.
    pub fn new(
        name: &str,
        up: &config::Upstream,
        config: &config::Config,
        metrics: Arc<Metrics>,
        strip: Arc<identity::headers::StripSet>,
        reuse: Option<Arc<Pool>>,
    ) -> Result<Self, UpstreamError> {
        let url = &up.url;
        if url.host_str().is_none() {
            return Err(UpstreamError::Build(format!("{url} has no host")));
        }
        let authority: Authority = authority_text(url)
            .parse()
            .map_err(|e| UpstreamError::Build(format!("authority of {url}: {e}")))?;
        let authority_host = HeaderValue::from_str(authority.as_str())
            .map_err(|e| UpstreamError::Build(format!("authority of {url}: {e}")))?;
        let base_path = url.path().trim_end_matches('/').to_owned();
        let pool = match reuse {
            Some(pool) => pool,
            None => Arc::new(new_pool(
                up,
                PoolSettings::of(up, config.server.serving_threads()),
            )?),
        };
        Ok(Upstream {
            name: Arc::from(name),
            pool,
            header_set: identity::headers::HeaderSet::new(&up.identity_headers),
            strip,
            authority,
            authority_host,
            base_path,
            response_timeout: up.response_timeout,
            pass_host_header: up.pass_host_header,
            trusted_proxies: config.server.trusted_proxies.clone(),
            pass_access_token: up.pass_access_token,
            forward_client_authorization: up.forward_client_authorization,
            max_body_bytes: config.server.max_body_bytes,
            cookie_name: config.session.cookie_name.clone(),
            metrics,
        })
    }

    /// `default` or the `[upstreams.NAME]` name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The identity headers this upstream receives.
    pub fn header_set(&self) -> &identity::headers::HeaderSet {
        &self.header_set
    }

    /// The identity header names stripped from every request.
    pub fn strip_set(&self) -> &identity::headers::StripSet {
        &self.strip
    }

    /// Returns true if and only if this upstream sends the session's access
    /// token upstream (`pass_access_token`).
    pub fn passes_access_token(&self) -> bool {
        self.pass_access_token
    }

    /// Closes idle connections past `pool_idle_timeout` (housekeeping).
    pub fn sweep_idle(&self) {
        self.pool.sweep();
    }

    /// How many idle connections this upstream's pool holds (tests).
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }

    /// Returns true if and only if `other` uses the same pool (tests of reload).
    pub fn shares_pool_with(&self, other: &Upstream) -> bool {
        Arc::ptr_eq(&self.pool, &other.pool)
    }

    /// Sends `req` upstream at `target` and returns the upstream's response with
    /// its body streaming. An upgrade (WebSocket) answered with 101 is spliced
    /// through in a background task.
    ///
    /// The request is rewritten before the returned future is first polled,
    /// and the future keeps only what the answer needs: every request's
    /// future is copied as it moves, so what it holds is paid per request.
    ///
    /// # Errors
    /// Connect failures, timeouts and broken connections, as [`UpstreamError`].
    pub fn forward<'a>(
        &'a self,
        req: Request<Incoming>,
        target: &Target,
        mut ctx: ForwardContext<'a>,
        latency: &'a mut Option<Duration>,
    ) -> impl std::future::Future<Output = Result<Response<Body>, UpstreamError>> + Send + 'a {
        let prepared = self.prepare(req, target, &ctx);
        let worker = ctx.worker;
        let route = ctx.route;
        let session_end = ctx.session_end.take();
        async move {
            let (upstream_req, client_upgrade) = prepared?;
            // One clock reading for the latency, the deadline and the pool.
            let started = Instant::now();
            // A timeout too large to add is as good as none (as tokio's `timeout` does).
            let deadline = started
                .checked_add(self.response_timeout)
                .unwrap_or_else(|| started + NO_DEADLINE);
            let sending = self.pool.send(worker, upstream_req, started);
            let sent = crate::deadline::timeout_at(deadline, sending).await;
            let elapsed = started.elapsed();
            *latency = Some(elapsed);
            route.observe_upstream(&self.metrics, &self.name, elapsed.as_secs_f64());
            let resp = self.received(route, sent)?;
            self.answer(route, resp, client_upgrade, session_end)
        }
    }

    /// The request as the upstream gets it, and the client's side of an
    /// upgrade it asks for.
    fn prepare(
        &self,
        mut req: Request<Incoming>,
        target: &Target,
        ctx: &ForwardContext<'_>,
    ) -> Result<(Request<Body>, Option<hyper::upgrade::OnUpgrade>), UpstreamError> {
        let upgrade = upgrade_protocol(req.headers(), req.version());
        // Taken before the request is moved into the client (STACK.md trap 3).
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));

        if let Some(limit) = self.max_body_bytes {
            // hyper's size hint is the Content-Length it framed the body by.
            let declared = http_body::Body::size_hint(req.body()).exact();
            if declared.is_some_and(|len| len > limit) {
                return Err(UpstreamError::BodyTooLarge { limit });
            }
        }
        let (mut parts, body) = req.into_parts();
        // Origin-form: the connection is to the upstream already.
        parts.uri = self.upstream_uri(&parts.uri, target, ctx.strip_prefix)?;
        parts.version = Version::HTTP_11;
        parts.extensions = http::Extensions::new();
        self.rewrite_request_headers(&mut parts.headers, ctx, upgrade.as_ref());
        let upstream_req =
            Request::from_parts(parts, super::body::streamed(body, self.max_body_bytes));
        Ok((upstream_req, client_upgrade))
    }

    /// The upstream's response head, or why there is none.
    fn received(
        &self,
        route: &RouteCounters,
        sent: Result<Result<Response<Body>, PoolError>, crate::deadline::Elapsed>,
    ) -> Result<Response<Body>, UpstreamError> {
        match sent {
            Err(_) => Err(self.fail(route, UpstreamError::Timeout(self.response_timeout))),
            Ok(Err(PoolError::Connect(reason))) => {
                let err = UpstreamError::Connect {
                    authority: self.authority.to_string(),
                    reason,
                };
                Err(self.fail(route, err))
            }
            Ok(Err(PoolError::Send(e))) => Err(match client_body_error(&e) {
                Some(ClientBodyError::TooLarge) => UpstreamError::BodyTooLarge {
                    limit: self.max_body_bytes.unwrap_or_default(),
                },
                Some(ClientBodyError::Broken) => UpstreamError::ClientBody(error_chain(&e)),
                None => self.fail(route, UpstreamError::Protocol(error_chain(&e))),
            }),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// The upstream's response as the client gets it; a 101 to an upgrade the
    /// client asked for starts the tunnel.
    fn answer(
        &self,
        route: &RouteCounters,
        mut resp: Response<Body>,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        session_end: Option<SessionEnd>,
    ) -> Result<Response<Body>, UpstreamError> {
        let is_switch = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        match (is_switch, client_upgrade) {
            (true, Some(client_upgrade)) => {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                tokio::spawn(tunnel(
                    client_upgrade,
                    upstream_upgrade,
                    self.metrics.clone(),
                    session_end,
                ));
                rewrite_switch_headers(resp.headers_mut());
                strip_upstream_claims(resp.headers_mut(), &self.strip, &self.cookie_name);
            }
            (true, None) => {
                // A 101 to a request that asked for no upgrade is a broken upstream.
                let err = UpstreamError::Protocol("unsolicited 101 Switching Protocols".into());
                return Err(self.fail(route, err));
            }
            (false, _) => {
                clean_upstream_response(resp.headers_mut(), &self.strip, &self.cookie_name);
            }
        }
        Ok(resp)
    }

    fn fail(&self, route: &RouteCounters, err: UpstreamError) -> UpstreamError {
        let kind = match err {
            UpstreamError::Connect { .. } => "connect",
            UpstreamError::Timeout(_) => "timeout",
            _ => "protocol",
        };
        self.metrics
            .upstream_errors
            .with_label_values(&[route.name(), &self.name, kind])
            .inc();
        err
    }

    fn upstream_uri(
        &self,
        received: &Uri,
        target: &Target,
        strip_prefix: Option<&str>,
    ) -> Result<Uri, UpstreamError> {
        // The usual request: its path was already normal and goes to the
        // upstream's root unchanged, so the received bytes are forwarded as
        // they are (shared, neither copied nor parsed again).
        let is_unchanged =
            target.is_verbatim() && self.base_path.is_empty() && strip_prefix.is_none();
        if let (true, Some(received)) = (is_unchanged, received.path_and_query()) {
            return Ok(Uri::from(received.clone()));
        }
        let path_and_query = match strip_prefix {
            None => target.path_and_query_after(&self.base_path),
            Some(prefix) => stripped_path_and_query(&self.base_path, target, prefix),
        };
        // Handed over, not copied: the string becomes the URI's own bytes.
        let pq = PathAndQuery::from_maybe_shared(bytes::Bytes::from(path_and_query))
            .map_err(|e| UpstreamError::Build(format!("path of {:?}: {e}", target.path())))?;
        Ok(Uri::from(pq))
    }

    /// Everything the proxy does to the client's headers, in an order that lets
    /// no client header undo a proxy header: first remove (hop-by-hop, identity
    /// spellings, the proxy's cookies), then set.
    fn rewrite_request_headers(
        &self,
        headers: &mut HeaderMap,
        ctx: &ForwardContext<'_>,
        upgrade: Option<&HeaderValue>,
    ) {
        // First every removal, then every header the proxy sets: nothing the
        // client sent can undo what the proxy adds, and no removal step can
        // take away what another step set.
        //
        // One walk over the names removes the hop-by-hop headers, `Expect`
        // (the client already had its 100-continue from us; the upstream gets
        // the body), every spelling of an identity header, and what only a
        // trusted proxy may say about the request (see [`strip_client_headers`]).
        let is_trusted = is_trusted_peer(ctx.peer, &self.trusted_proxies);
        let removed = remove_hop_by_hop_and(headers, |name| {
            *name == header::EXPECT
                || self.strip.matches(name.as_str())
                || is_client_header_to_strip(name, is_trusted)
        });
        for name in removed.iter().filter(|n| self.strip.matches(n.as_str())) {
            tracing::debug!(header = %name, "removed an identity header");
        }
        let mix = ctx
            .memo
            .and_then(|memo| memo.own_cookies(headers, &self.cookie_name));
        strip_own_cookies_known(headers, &self.cookie_name, mix);
        if self.drops_client_authorization(ctx) {
            headers.remove(header::AUTHORIZATION);
        }
        // Room for what is set below, made once rather than grown step by step.
        headers.reserve(IDENTITY_HEADROOM);
        insert_forwarded(headers, ctx, &self.trusted_proxies, is_trusted);
        if ctx.permit.is_some() {
            if let Some(prepared) = &ctx.identity_headers {
                prepared.apply(headers);
            }
            if let Some(assertion) = &ctx.assertion {
                headers.insert(
                    identity::headers::X_PORTCULLIS_IDENTITY.clone(),
                    assertion.clone(),
                );
            }
        }
        if let Some(token) = ctx.access_token {
            if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
                headers.insert(header::AUTHORIZATION, value);
            }
        }
        for (name, value) in &ctx.connection_headers {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(X_REQUEST_ID.clone(), ctx.request_id.clone());
        let host = if self.pass_host_header {
            ctx.host
        } else {
            &self.authority_host
        };
        headers.insert(header::HOST, host.clone());
        if let Some(protocol) = upgrade {
            headers.insert(header::UPGRADE, protocol.clone());
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
    }
}

impl Upstream {
    /// Returns true if and only if the client's own `Authorization` must not
    /// reach the app (SPEC §7).
    ///
    /// # Security
    /// On a route authenticated by a session the app would otherwise see a
    /// credential the client chose (`Bearer <anything>`, `Basic ...`) beside the
    /// identity the proxy vouches for, and an app that also accepts API tokens
    /// may believe it. With `pass_access_token` the header is the proxy's own
    /// on every route. A bearer route keeps the token the proxy verified.
    fn drops_client_authorization(&self, ctx: &ForwardContext<'_>) -> bool {
        let by_session = ctx.permit.is_some() && !ctx.via_bearer;
        (by_session && !self.forward_client_authorization)
            || (self.pass_access_token && !ctx.via_bearer)
    }
}

/// Removes from an upstream's response what only the proxy may say: a
/// `Set-Cookie` for one of the proxy's cookies (session fixation through the
/// app, or through anything that can inject a response header into it), and
/// the identity headers, which a front proxy or log pipeline reading this
/// response must never take from the app.
pub fn strip_upstream_claims(
    headers: &mut HeaderMap,
    strip: &identity::headers::StripSet,
    cookie_name: &str,
) {
    identity::headers::strip(headers, strip);
    strip_planted_cookies(headers, cookie_name);
}

/// [`remove_hop_by_hop`] and [`strip_upstream_claims`] for a response that
/// switches no protocol, the identity headers going in the same walk over the
/// names as the hop-by-hop ones.
pub fn clean_upstream_response(
    headers: &mut HeaderMap,
    strip: &identity::headers::StripSet,
    cookie_name: &str,
) {
    remove_hop_by_hop_and(headers, |name| strip.matches(name.as_str()));
    strip_planted_cookies(headers, cookie_name);
}

/// The `Set-Cookie` half of [`strip_upstream_claims`].
fn strip_planted_cookies(headers: &mut HeaderMap, cookie_name: &str) {
    if !headers.contains_key(header::SET_COOKIE) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|value| {
            let planted = set_cookie_name(value.as_bytes());
            let is_ours = is_own_cookie_spelling(&planted, cookie_name);
            if is_ours {
                tracing::warn!(cookie = %planted, "dropped the upstream's Set-Cookie for a cookie of the proxy");
            }
            !is_ours
        })
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for value in kept {
        headers.append(header::SET_COOKIE, value);
    }
}

/// The name a browser files a `Set-Cookie` under, as it will send it back in
/// `Cookie` (RFC 6265bis §5.7): the text before the first `;`, split at the
/// first `=`, both sides trimmed of spaces and tabs. A cookie with an empty
/// name (`=portcullis=x`, or no `=` at all) is sent back as its bare value,
/// which a server reads as `portcullis=x`: its name is what precedes the
/// value's own `=`.
fn set_cookie_name(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let pair = text.split(';').next().unwrap_or_default();
    let blank: &[char] = &[' ', '\t'];
    let (name, value) = match pair.split_once('=') {
        Some((name, value)) => (name.trim_matches(blank), value.trim_matches(blank)),
        None => ("", pair.trim_matches(blank)),
    };
    let sent_as = if name.is_empty() { value } else { name };
    sent_as
        .split('=')
        .next()
        .unwrap_or_default()
        .trim_matches(blank)
        .to_owned()
}

/// Returns true if and only if `name` is one of the proxy's cookies for `base`
/// in any spelling some stack could take for it: any case (browsers match the
/// `__Host-` and `__Secure-` prefixes case-insensitively; some servers fold
/// cookie names), with or without those prefixes.
fn is_own_cookie_spelling(name: &str, base: &str) -> bool {
    !name.is_empty() && is_own_cookie(&name.to_ascii_lowercase(), &base.to_ascii_lowercase())
}

/// The upstream's path for `target` with `prefix` (a whole-segment prefix of
/// the path, in any ASCII case: checked when the config was compiled and by
/// the route match) removed, after the upstream URL's own path: `/gh/repos`
/// with `strip_prefix = "/gh"` is `/repos`, and `/gh` itself is `/`. The
/// prefix's segments are counted off, so `;params` on them go too.
fn stripped_path_and_query(base_path: &str, target: &Target, prefix: &str) -> String {
    let segments = prefix.matches('/').count();
    let mut rest = target.path().as_str();
    for _ in 0..segments {
        match rest.get(1..).and_then(|tail| tail.find('/')) {
            Some(at) => rest = &rest[at + 1..],
            None => {
                rest = "/";
                break;
            }
        }
    }
    let mut out = String::with_capacity(base_path.len() + rest.len() + 1);
    out.push_str(base_path);
    out.push_str(rest);
    if let Some(query) = target.query() {
        out.push('?');
        out.push_str(query);
    }
    out
}

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// The `close` connection option, as a header name it also removes (RFC 9110 §7.6.1).
static CLOSE: HeaderName = HeaderName::from_static("close");

/// The hop-by-hop headers of RFC 9110 §7.6.1, plus the legacy `Keep-Alive` and
/// `Proxy-Connection` still sent by old clients.
fn fixed_hop_by_hop() -> [&'static HeaderName; 9] {
    [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ]
}

/// Removes the headers named in `Connection` and the fixed hop-by-hop set
/// (RFC 9110 §7.6.1). Runs before the proxy sets any header, so a client that
/// names `X-Forwarded-For` in `Connection` removes only its own copy.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    remove_hop_by_hop_and(headers, |_| false);
}

/// [`remove_hop_by_hop`], removing in the same walk every header `also` picks;
/// returns the names removed.
fn remove_hop_by_hop_and(
    headers: &mut HeaderMap,
    also: impl Fn(&HeaderName) -> bool,
) -> Vec<HeaderName> {
    // `keep-alive`, `close` and `upgrade` are what `Connection` nearly always
    // holds: the first and last are in the fixed set, `close` is a static name,
    // so the usual message allocates nothing here.
    let mut nominated: Vec<HeaderName> = Vec::new();
    let tokens = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    for token in tokens {
        let is_fixed = ["", "keep-alive", "upgrade"]
            .iter()
            .any(|option| token.eq_ignore_ascii_case(option));
        if is_fixed {
            continue;
        }
        if token.eq_ignore_ascii_case("close") {
            nominated.push(CLOSE.clone());
            continue;
        }
        // A token that is no valid header name names no header there is.
        if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
            nominated.push(name);
        }
    }
    identity::headers::remove_where(headers, |name| {
        is_fixed_hop_by_hop(name) || nominated.contains(name) || also(name)
    })
}

fn is_fixed_hop_by_hop(name: &HeaderName) -> bool {
    fixed_hop_by_hop().contains(&name)
}

/// The `Upgrade` value when the request asks for a protocol upgrade that can be
/// proxied: HTTP/1.1, `Connection` holding the `upgrade` token, one `Upgrade`.
fn upgrade_protocol(headers: &HeaderMap, version: Version) -> Option<HeaderValue> {
    if version != Version::HTTP_11 {
        return None;
    }
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !asks {
        return None;
    }
    let mut values = headers.get_all(header::UPGRADE).iter();
    match (values.next(), values.next()) {
        // WebSocket only: an `h2c` upgrade the app accepted would let the client
        // speak HTTP/2 straight to it, past every rule (h2c smuggling).
        (Some(v), None) if v.as_bytes().eq_ignore_ascii_case(b"websocket") => Some(v.clone()),
        _ => None,
    }
}

/// Hop-by-hop removal for a 101 response: everything but the upgrade itself.
fn rewrite_switch_headers(headers: &mut HeaderMap) {
    let protocol = headers.get(header::UPGRADE).cloned();
    remove_hop_by_hop(headers);
    if let Some(protocol) = protocol {
        headers.insert(header::UPGRADE, protocol);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Sets `X-Forwarded-For/-Proto/-Host` and `X-Real-IP` (SPEC §7). The client's
/// values are believed only when the peer is in `trusted_proxies`; `Forwarded`
/// (RFC 7239) from anyone else is removed, since the app may read it instead.
pub fn set_forwarded(headers: &mut HeaderMap, ctx: &ForwardContext<'_>, trusted: &[IpNet]) {
    let is_trusted = is_trusted_peer(ctx.peer, trusted);
    strip_client_headers(headers, is_trusted);
    insert_forwarded(headers, ctx, trusted, is_trusted);
}

/// A response timeout too large to be a deadline: about thirty years.
const NO_DEADLINE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// The headers the proxy adds and sets apart from the forwarded ones, at most:
/// room reserved once for them.
const IDENTITY_HEADROOM: usize = 16;

fn is_trusted_peer(peer: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&peer))
}

/// The second half of [`set_forwarded`]: sets the four headers once the
/// client's own copies of what it may not say are gone (none of them is one
/// of those four, so what is read here is what the client sent).
fn insert_forwarded(
    headers: &mut HeaderMap,
    ctx: &ForwardContext<'_>,
    trusted: &[IpNet],
    is_trusted: bool,
) {
    let our_proto = if ctx.is_tls { "https" } else { "http" };
    let mut chain = ctx.peer_text.clone();
    let mut client_ip = ctx.peer_text.clone();
    let mut proto = HeaderValue::from_static(our_proto);
    let mut host = ctx.host.clone();
    if is_trusted {
        if let Some(prior) = joined(headers, &X_FORWARDED_FOR) {
            if let Some(ip) = first_untrusted_from_right(&prior, trusted) {
                client_ip = ip;
            }
            let peer = ctx.peer_text.to_str().unwrap_or_default();
            chain = HeaderValue::from_str(&format!("{prior}, {peer}")).unwrap_or(chain);
        }
        if let Some(sent) = headers.get(&X_FORWARDED_PROTO) {
            if sent == "https" || sent == "http" {
                proto = sent.clone();
            }
        }
        if let Some(sent) = headers.get(&X_FORWARDED_HOST) {
            host = sent.clone();
        }
    }
    // `insert` replaces every value a client sent under the same name.
    headers.insert(X_FORWARDED_FOR.clone(), chain);
    headers.insert(X_REAL_IP.clone(), client_ip);
    headers.insert(X_FORWARDED_PROTO.clone(), proto);
    headers.insert(X_FORWARDED_HOST.clone(), host);
}

/// Removes, in one walk over the names, the method overrides (always) and what
/// an untrusted client could use to re-route the app (see [`is_client_routing_header`]).
fn strip_client_headers(headers: &mut HeaderMap, is_trusted: bool) {
    identity::headers::remove_where(headers, |name| is_client_header_to_strip(name, is_trusted));
}

/// What [`strip_client_headers`] removes.
fn is_client_header_to_strip(name: &HeaderName, is_trusted: bool) -> bool {
    is_method_override(name) || (!is_trusted && is_client_routing_header(name.as_str()))
}

/// What an untrusted client could use to re-route or re-scheme the app behind
/// the proxy: `Forwarded`, every `X-Forwarded-*` the proxy does not set itself
/// (`-Prefix`, `-Port`, `-Server`, `-Ssl`, `-Scheme`, `-Uri`, ...), `X-Original-*`
/// and `X-Rewrite-URL` (IIS URL Rewrite, older Symfony and Zend route on them:
/// CVE-2018-14773), `X-Host`, `Front-End-Https`, `X-Real-IP`; in every spelling
/// (`_` or `.` for `-`).
fn is_client_routing_header(name: &str) -> bool {
    use identity::headers::{spelled_as, spelled_with_prefix};
    let ours = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];
    (spelled_with_prefix(name, "x-forwarded-") && !ours.iter().any(|o| spelled_as(name, o)))
        || spelled_with_prefix(name, "x-original-")
        || [
            "forwarded",
            "x-rewrite-url",
            "x-host",
            "front-end-https",
            "x-forwarded",
            "x-real-ip",
        ]
        .iter()
        .any(|canonical| spelled_as(name, canonical))
}

static X_HTTP_METHOD_OVERRIDE: HeaderName = HeaderName::from_static("x-http-method-override");
static X_HTTP_METHOD: HeaderName = HeaderName::from_static("x-http-method");
static X_METHOD_OVERRIDE: HeaderName = HeaderName::from_static("x-method-override");

/// Method-override headers would let a client turn an allowed `POST` into a
/// `DELETE` the rules never saw; the proxy never forwards them.
fn is_method_override(name: &HeaderName) -> bool {
    [&X_HTTP_METHOD_OVERRIDE, &X_HTTP_METHOD, &X_METHOD_OVERRIDE].contains(&name)
}

/// All values of `name` joined with ", ", or `None` when absent or not text.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let parts: Vec<&str> = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Option<_>>()?;
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The client's address (SPEC §3 `source_ips`): the peer, or, when the peer is
/// a trusted proxy, the rightmost address of its `X-Forwarded-For` chain that
/// is not itself trusted.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !trusted.iter().any(|net| net.contains(&peer)) {
        return peer;
    }
    joined(headers, &X_FORWARDED_FOR)
        .and_then(|chain| {
            chain
                .rsplit(',')
                .map(str::trim)
                .filter_map(|s| s.parse::<IpAddr>().ok())
                .find(|ip| !trusted.iter().any(|net| net.contains(ip)))
        })
        .unwrap_or(peer)
}

/// The real client in a trusted chain: the rightmost address not itself a trusted
/// proxy (anything to its left could have been written by the client).
fn first_untrusted_from_right(chain: &str, trusted: &[IpNet]) -> Option<HeaderValue> {
    chain
        .rsplit(',')
        .map(str::trim)
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .find(|ip| !trusted.iter().any(|net| net.contains(ip)))
        .and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok())
}

/// Removes the proxy's own cookies (the session cookie, its `__Host-`/`__Secure-`
/// forms, and `NAME_*` login-state cookies) from `Cookie`, keeping the app's.
pub fn strip_own_cookies(headers: &mut HeaderMap, cookie_name: &str) {
    strip_own_cookies_known(headers, cookie_name, None);
}

/// [`strip_own_cookies`], told what the single `Cookie` header holds when
/// that is known already (`mix`, from the connection's memo).
fn strip_own_cookies_known(headers: &mut HeaderMap, cookie_name: &str, mix: Option<CookieMix>) {
    // A known mix was read from the one `Cookie` header there is.
    if mix.is_none() && !headers.contains_key(header::COOKIE) {
        return;
    }
    // The usual request: one `Cookie` header holding only the proxy's cookies
    // (removed whole) or none of them (left as it is), with nothing rebuilt.
    let mix = mix.or_else(|| {
        let mut values = headers.get_all(header::COOKIE).iter();
        match (values.next(), values.next()) {
            (Some(only), None) => Some(cookie_mix(only, cookie_name)),
            _ => None,
        }
    });
    match mix {
        Some(CookieMix::NoneOurs) => return,
        Some(CookieMix::OnlyOurs) => {
            headers.remove(header::COOKIE);
            return;
        }
        Some(CookieMix::Mixed) | None => {}
    }
    let mut kept: Vec<&str> = Vec::new();
    let values: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    for value in &values {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            let pair = pair.trim();
            let name = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
            if !pair.is_empty() && !is_own_cookie(name, cookie_name) {
                kept.push(pair);
            }
        }
    }
    let rebuilt = kept.join("; ");
    headers.remove(header::COOKIE);
    if let (false, Ok(value)) = (rebuilt.is_empty(), HeaderValue::from_str(&rebuilt)) {
        headers.insert(header::COOKIE, value);
    }
}

/// What one `Cookie` header holds of the proxy's cookies for `cookie_name`.
pub(super) fn cookie_mix(value: &HeaderValue, cookie_name: &str) -> CookieMix {
    let Ok(text) = value.to_str() else {
        return CookieMix::Mixed;
    };
    let (mut ours, mut theirs) = (false, false);
    for pair in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
        if is_own_cookie(name, cookie_name) {
            ours = true;
        } else {
            theirs = true;
        }
    }
    match (ours, theirs) {
        (false, _) => CookieMix::NoneOurs,
        (true, false) => CookieMix::OnlyOurs,
        (true, true) => CookieMix::Mixed,
    }
}

/// Returns true if and only if `name` is one of the proxy's cookies for `base`.
pub fn is_own_cookie(name: &str, base: &str) -> bool {
    // `session.cookie_name` may itself carry the prefix (`__Host-sid`); the
    // login-state cookies then are `__Host-sid_login_...`.
    fn unprefixed(s: &str) -> &str {
        s.strip_prefix("__Host-")
            .or_else(|| s.strip_prefix("__Secure-"))
            .or_else(|| s.strip_prefix("__host-"))
            .or_else(|| s.strip_prefix("__secure-"))
            .unwrap_or(s)
    }
    let (bare, base) = (unprefixed(name), unprefixed(base));
    bare == base
        || bare
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('_'))
}

/// Splices an upgraded client connection to the upgraded upstream connection
/// until either side closes.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    metrics: Arc<Metrics>,
    session_end: Option<SessionEnd>,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, "upgrade did not complete");
            return;
        }
    };
    metrics.upgraded_connections.inc();
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let ends = async {
        match session_end {
            Some(ends) => ends.ended().await,
            None => std::future::pending().await,
        }
    };
    let result: io::Result<(u64, u64)> = tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => copied,
        () = ends => {
            tracing::info!("session ended: closing its upgraded connection");
            Ok((0, 0))
        }
    };
    metrics.upgraded_connections.dec();
    if let Err(error) = result {
        tracing::debug!(%error, "upgraded connection ended with an error");
    }
}

/// The rustls client config for an https upstream: web PKI roots, or only the
/// roots in `upstream.ca_file`.
fn upstream_tls(up: &config::Upstream) -> Result<rustls::ClientConfig, UpstreamError> {
    let mut roots = rustls::RootCertStore::empty();
    match &up.ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            use rustls_pki_types::pem::PemObject;
            let ca_err = |reason: String| UpstreamError::CaFile {
                path: path.display().to_string(),
                reason,
            };
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_err(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ca_err(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_err("no certificate in the file".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamError::Build(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// An error and its causes on one line, for the log.
/// How reading the client's body failed.
#[derive(Debug, PartialEq, Eq)]
enum ClientBodyError {
    /// Past `server.max_body_bytes`.
    TooLarge,
    /// Malformed or cut off.
    Broken,
}

/// Why the upstream request failed, when it failed because reading the client's
/// body did: hyper reports a user body error whose cause is the incoming body's
/// own error (hyper's, or the body limit's).
fn client_body_error(error: &hyper::Error) -> Option<ClientBodyError> {
    if !error.is_user() {
        return None;
    }
    let inner = std::error::Error::source(error)?;
    if inner.is::<http_body_util::LengthLimitError>() {
        return Some(ClientBodyError::TooLarge);
    }
    inner
        .is::<hyper::Error>()
        .then_some(ClientBodyError::Broken)
}

pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("test name"),
                HeaderValue::from_str(v).expect("test value"),
            );
        }
        h
    }

    #[test]
    fn removes_fixed_and_connection_nominated_hop_by_hop_headers() {
        let mut h = headers(&[
            ("connection", "keep-alive, X-Custom, x-forwarded-for"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-connection", "keep-alive"),
            ("x-custom", "1"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-kept", "yes"),
        ]);
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "left: {h:?}");
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn untrusted_peer_cannot_choose_forwarded_headers() {
        let mut h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("x-real-ip", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
        ]);
        let id = HeaderValue::from_static("r");
        let peer_text = HeaderValue::from_static("10.9.9.9");
        let ctx = ForwardContext {
            peer: "10.9.9.9".parse().expect("ip"),
            peer_text: &peer_text,
            worker: 0,
            is_tls: false,
            host: &HeaderValue::from_static("app.example.com"),
            request_id: &id,
            route: &crate::admin::metrics::RouteCounters::new("r"),
            permit: None,
            identity_headers: None,
            strip_prefix: None,
            assertion: None,
            via_bearer: false,
            access_token: None,
            connection_headers: Vec::new(),
            session_end: None,
            memo: None,
        };
        set_forwarded(&mut h, &ctx, &[]);
        assert_eq!(h["x-forwarded-for"], "10.9.9.9");
        assert_eq!(h["x-real-ip"], "10.9.9.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "app.example.com");
        assert!(h.get("forwarded").is_none());
    }

    #[test]
    fn trusted_peer_extends_the_chain_and_finds_the_real_client() {
        let mut h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com"),
        ]);
        let id = HeaderValue::from_static("r");
        let peer_text = HeaderValue::from_static("10.0.0.1");
        let ctx = ForwardContext {
            peer: "10.0.0.1".parse().expect("ip"),
            peer_text: &peer_text,
            worker: 0,
            is_tls: false,
            host: &HeaderValue::from_static("internal:4180"),
            request_id: &id,
            route: &crate::admin::metrics::RouteCounters::new("r"),
            permit: None,
            identity_headers: None,
            strip_prefix: None,
            assertion: None,
            via_bearer: false,
            access_token: None,
            connection_headers: Vec::new(),
            session_end: None,
            memo: None,
        };
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("cidr")];
        set_forwarded(&mut h, &ctx, &trusted);
        assert_eq!(
            h["x-forwarded-for"],
            "6.6.6.6, 203.0.113.7, 10.0.0.2, 10.0.0.1"
        );
        assert_eq!(h["x-real-ip"], "203.0.113.7");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "app.example.com");
    }

    #[test]
    fn strips_only_the_proxys_cookies() {
        let mut h = headers(&[
            ("cookie", "a=1; portcullis=SECRET; __Host-portcullis=S2"),
            ("cookie", "portcullis_login_x=S3; b=2; portcullisx=keep"),
        ]);
        strip_own_cookies(&mut h, "portcullis");
        assert_eq!(h["cookie"], "a=1; b=2; portcullisx=keep");
        let mut only_ours = headers(&[("cookie", "portcullis=S")]);
        strip_own_cookies(&mut only_ours, "portcullis");
        assert!(only_ours.get("cookie").is_none());
        // A configured name that carries the prefix itself: its login-state
        // cookies (sent on every path during a login) are ours too.
        let mut prefixed = headers(&[(
            "cookie",
            "__Host-sid=S; __Host-sid_login_abc=L; __Secure-sid_login_old=L; sid2=keep; app=1",
        )]);
        strip_own_cookies(&mut prefixed, "__Host-sid");
        assert_eq!(prefixed["cookie"], "sid2=keep; app=1");
    }

    #[test]
    fn a_set_cookie_is_filed_under_the_name_the_browser_sends_back() {
        for (set_cookie, sent_as) in [
            ("portcullis=x; Path=/", "portcullis"),
            (" \tportcullis \t= x", "portcullis"),
            ("=portcullis=x", "portcullis"),
            (" = portcullis=x; Path=/", "portcullis"),
            ("portcullis", "portcullis"),
            ("portcullis; Path=/", "portcullis"),
            ("__Host-portcullis=x; Secure", "__Host-portcullis"),
            ("app=portcullis=x", "app"),
            ("", ""),
        ] {
            assert_eq!(
                set_cookie_name(set_cookie.as_bytes()),
                sent_as,
                "{set_cookie:?}"
            );
        }
    }

    #[test]
    fn the_upstream_cannot_set_the_proxys_cookies_or_claim_identity() {
        let mut h = headers(&[
            ("set-cookie", "portcullis=planted; Path=/"),
            ("set-cookie", "__Host-portcullis=planted; Path=/; Secure"),
            ("set-cookie", "__HOST-Portcullis=planted; Path=/; Secure"),
            ("set-cookie", "__Secure-portcullis=planted"),
            ("set-cookie", "PORTCULLIS=planted"),
            ("set-cookie", "=portcullis=planted"),
            ("set-cookie", "portcullis"),
            ("set-cookie", "portcullis_login_abc=planted"),
            ("set-cookie", "app=1; Path=/"),
            ("set-cookie", "portcullisx=kept"),
            ("set-cookie", "other=portcullis=kept"),
            ("x-auth-request-user", "admin"),
            ("x-forwarded-user", "admin"),
            ("X_Forwarded_Groups", "admin"),
            ("x-portcullis-identity", "forged"),
            ("content-type", "text/html"),
        ]);
        // The 101 path strips with `strip_upstream_claims`, every other
        // response with `clean_upstream_response`: both leave the same.
        let mut cleaned = h.clone();
        let strip = identity::headers::StripSet::default();
        clean_upstream_response(&mut cleaned, &strip, "portcullis");
        strip_upstream_claims(&mut h, &strip, "portcullis");
        assert_eq!(cleaned, h);
        let cookies: Vec<&str> = h
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(
            cookies,
            ["app=1; Path=/", "portcullisx=kept", "other=portcullis=kept"]
        );
        assert_eq!(h.len(), 4, "left: {h:?}");
        assert_eq!(h["content-type"], "text/html");
        // A configured name with its own prefix: every spelling of it too.
        let mut prefixed = headers(&[
            ("set-cookie", "__Host-sid=planted"),
            ("set-cookie", "sid=planted"),
            ("set-cookie", "__host-sid_login_x=planted"),
            ("set-cookie", "sidecar=kept"),
        ]);
        strip_upstream_claims(
            &mut prefixed,
            &identity::headers::StripSet::default(),
            "__Host-sid",
        );
        assert_eq!(prefixed.get_all("set-cookie").iter().count(), 1);
        assert_eq!(prefixed["set-cookie"], "sidecar=kept");
    }

    #[test]
    fn strip_prefix_removes_whole_segments_in_any_case_with_their_params() {
        let cases = [
            ("/gh/repos/x", "/gh", "", "/repos/x"),
            ("/gh", "/gh", "", "/"),
            ("/gh/", "/gh", "", "/"),
            ("/GH/repos", "/gh", "", "/repos"),
            ("/gh;v=1/repos", "/gh", "", "/repos"),
            ("/api/v1/users?x=1", "/api/v1", "", "/users?x=1"),
            ("/api/v1?x=1", "/api/v1", "", "/?x=1"),
            ("/gh/repos", "/gh", "/base", "/base/repos"),
        ];
        for (path, prefix, base, want) in cases {
            let target = crate::policy::normalize::normalize_str(path).expect("a valid path");
            assert_eq!(
                stripped_path_and_query(base, &target, prefix),
                want,
                "{path} - {prefix}"
            );
        }
    }

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("cidr")];
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2")]);
        let untrusted_peer: IpAddr = "198.51.100.1".parse().expect("ip");
        assert_eq!(client_ip(untrusted_peer, &chain, &trusted), untrusted_peer);
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        assert_eq!(
            client_ip(proxy, &chain, &trusted),
            "203.0.113.7".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }

    #[test]
    fn a_cookie_header_of_only_ours_goes_and_one_of_none_stays_as_it_was() {
        let mut only_ours = headers(&[("cookie", "portcullis=S; portcullis_login_x=L")]);
        strip_own_cookies(&mut only_ours, "portcullis");
        assert!(only_ours.get("cookie").is_none());
        let odd = "a=1;;  b=2 ;c";
        let mut none_ours = headers(&[("cookie", odd)]);
        strip_own_cookies(&mut none_ours, "portcullis");
        assert_eq!(none_ours["cookie"], odd, "left byte for byte");
        let mut mixed = headers(&[("cookie", "a=1; portcullis=S;b=2")]);
        strip_own_cookies(&mut mixed, "portcullis");
        assert_eq!(mixed["cookie"], "a=1; b=2");
    }

    #[test]
    fn every_token_of_connection_names_a_header_to_remove() {
        let mut h = headers(&[
            ("connection", "Keep-Alive, close, , X-Secret"),
            ("x-secret", "1"),
            (
                "close",
                "a header named like an option goes too (RFC 9110 7.6.1)",
            ),
            ("x-kept", "yes"),
        ]);
        remove_hop_by_hop(&mut h);
        assert!(h.get("x-secret").is_none());
        assert!(h.get("close").is_none());
        assert_eq!(h["x-kept"], "yes");
        assert_eq!(h.len(), 1, "{h:?}");
    }

    #[test]
    fn upgrade_needs_connection_token_and_one_upgrade_header() {
        let h = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(
            upgrade_protocol(&h, Version::HTTP_11)
                .as_ref()
                .map(|v| v.as_bytes()),
            Some(&b"websocket"[..])
        );
        assert!(upgrade_protocol(&h, Version::HTTP_10).is_none());
        let no_token = headers(&[("upgrade", "websocket")]);
        assert!(upgrade_protocol(&no_token, Version::HTTP_11).is_none());
    }
}
