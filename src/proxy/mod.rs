//! The request path's driver (Pingora's `process_request`): one function calls
//! the steps in a fixed order, and every outcome, rejects included, is logged and
//! counted.
//!
//! ```text
//! normalize ─► route::find ─► authenticate ─► authorize ─► rewrite headers ─► forward
//!     └────────────── any Reject ──► respond::render ──┴──► log + count (always)
//! ```

pub mod body;
mod exchange;
pub mod forward;
pub mod respond;

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{header, Request, Response};
use hyper::body::Incoming;

use crate::admin::metrics::{method_label, Metrics};
use crate::config::{AuthMode, Config};
use crate::policy::normalize::{self, PathError};
use crate::policy::route::RouteTable;

pub use body::Body;
pub use exchange::{ConnInfo, Exchange};
pub use forward::{ForwardContext, Upstream, UpstreamError};

/// Process-wide state, built once at start and shared by every connection.
pub struct State {
    /// The reloadable part; loaded once per request so a reload never mixes an
    /// old route table with new settings.
    pub runtime: ArcSwap<Runtime>,
    pub metrics: Arc<Metrics>,
}

/// Everything derived from one config: swapped whole on reload.
pub struct Runtime {
    pub config: Arc<Config>,
    pub routes: RouteTable,
    pub upstream: Upstream,
}

impl Runtime {
    /// Compiles `config` into a runtime.
    ///
    /// # Errors
    /// When the upstream client cannot be built (for example an unreadable CA file).
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Result<Self, UpstreamError> {
        let routes = RouteTable::new(&config);
        let upstream = Upstream::new(&config, metrics)?;
        Ok(Runtime {
            config: Arc::new(config),
            routes,
            upstream,
        })
    }
}

/// Why a request was not forwarded. Every step's error converts into it, and
/// only [`respond::render`] turns it into a response.
#[derive(Debug, thiserror::Error)]
pub enum Reject {
    /// The request target cannot be normalized safely (SPEC §3): 400.
    #[error(transparent)]
    BadTarget(#[from] PathError),
    /// No `Host` (or `:authority`), several, or one that is not a host: 400.
    #[error("missing, repeated or invalid Host")]
    BadHost,
    /// The rule is `auth = "deny"`: 403.
    #[error("the route denies every request")]
    Denied,
    /// The rule needs an identity and the request has none: 401 (or a login redirect).
    #[error("no authenticated identity")]
    Unauthenticated,
    /// A path under `auth_prefix` that is no endpoint of the proxy: 404.
    #[error("no such proxy endpoint")]
    NotFound,
    /// The upstream failed: 502 or 504.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl Reject {
    /// The decision label for logs and metrics.
    fn decision(&self) -> &'static str {
        match self {
            Reject::BadTarget(_) | Reject::BadHost => "bad_request",
            Reject::Denied => "forbidden",
            Reject::Unauthenticated => "unauthenticated",
            Reject::NotFound => "not_found",
            Reject::Upstream(_) => "upstream_error",
        }
    }
}

/// Serves one request: never fails, never panics on client input.
pub async fn handle(state: Arc<State>, conn: ConnInfo, req: Request<Incoming>) -> Response<Body> {
    let rt = state.runtime.load_full();
    let mut ex = Exchange::new(&req, &conn);
    let resp = match run(&rt, &conn, &mut ex, req).await {
        Ok(resp) => resp,
        Err(reject) => {
            ex.decision = reject.decision();
            ex.reason = Some(reject.to_string());
            respond::render(&reject, &ex)
        }
    };
    log_and_count(&state.metrics, &ex, &resp);
    resp
}

async fn run(
    rt: &Runtime,
    conn: &ConnInfo,
    ex: &mut Exchange,
    req: Request<Incoming>,
) -> Result<Response<Body>, Reject> {
    let target = normalize::normalize(req.uri(), req.version())?;
    ex.path = Some(target.path().as_str().to_owned());
    let host = request_host(&req)?;
    if is_under(target.match_path(), &rt.config.server.auth_prefix) {
        // The proxy's own endpoints (login, callback, ...) arrive with the login work.
        return Err(Reject::NotFound);
    }
    let rule = rt
        .routes
        .find(Some(&host.name), req.method(), target.match_path());
    ex.route = Some(rule.name.clone());
    match rule.auth {
        AuthMode::Public => {}
        AuthMode::Deny => return Err(Reject::Denied),
        // No authenticator is wired in yet: fail closed.
        AuthMode::Login | AuthMode::Bearer | AuthMode::LoginOrBearer => {
            return Err(Reject::Unauthenticated)
        }
    }
    let ctx = ForwardContext {
        peer: conn.peer.ip(),
        is_tls: conn.is_tls,
        host: &host.full,
        request_id: &ex.request_id,
        route: &rule.name,
    };
    let mut latency = None;
    let result = rt.upstream.forward(req, &target, &ctx, &mut latency).await;
    ex.upstream_latency = latency;
    Ok(result?)
}

/// The host a request is for: `full` as sent (for `Host` upstream) and `name`
/// lowercased without port (for matching).
struct RequestHost {
    full: String,
    name: String,
}

/// The `Host` header on HTTP/1, `:authority` on HTTP/2; exactly one, and a valid
/// authority without userinfo.
fn request_host<B>(req: &Request<B>) -> Result<RequestHost, Reject> {
    let mut values = req.headers().get_all(header::HOST).iter();
    let full = match (values.next(), values.next(), req.uri().authority()) {
        (Some(v), None, _) => v.to_str().map_err(|_| Reject::BadHost)?,
        (None, None, Some(authority)) => authority.as_str(),
        _ => return Err(Reject::BadHost),
    };
    let authority: http::uri::Authority = full.parse().map_err(|_| Reject::BadHost)?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err(Reject::BadHost);
    }
    Ok(RequestHost {
        full: full.to_owned(),
        name: authority.host().to_ascii_lowercase(),
    })
}

/// Returns true if and only if `path` is `prefix` or below it, on whole segments.
fn is_under(path: &str, prefix: &str) -> bool {
    crate::policy::route::is_segment_prefix(prefix, path)
}

/// One access-log line and the request counters, for every outcome.
fn log_and_count(metrics: &Metrics, ex: &Exchange, resp: &Response<Body>) {
    let status = resp.status();
    metrics
        .requests
        .with_label_values(&[ex.route_label(), method_label(&ex.method), status.as_str()])
        .inc();
    metrics
        .decisions
        .with_label_values(&[ex.route_label(), ex.decision])
        .inc();
    tracing::info!(
        target: "portcullis::access",
        request_id = ex.request_id.to_str().unwrap_or("-"),
        method = %ex.method,
        path = ex.path.as_deref().unwrap_or("-"),
        route = ex.route_label(),
        decision = ex.decision,
        reason = ex.reason.as_deref(),
        status = status.as_u16(),
        upstream_ms = ex.upstream_latency.map(|d| d.as_secs_f64() * 1000.0),
        duration_ms = ex.started.elapsed().as_secs_f64() * 1000.0,
        client = %ex.peer,
    );
}
