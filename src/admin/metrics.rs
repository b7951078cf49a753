//! The Prometheus series portcullis exports, one field per series.
//!
//! Modules receive `&Metrics` and record into it; they never see the admin
//! listener. Labels stay bounded: a route's configured name, a status code, a
//! decision name, never a raw path or a user id.

use std::sync::{Arc, OnceLock};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Every series, registered in one private registry (not the global default, so
/// tests can build several proxies in one process).
pub struct Metrics {
    registry: Registry,
    /// `portcullis_requests_total{route, method, status}`: every request, rejects included.
    pub requests: IntCounterVec,
    /// `portcullis_auth_decisions_total{route, decision}`: allow, redirect,
    /// unauthenticated, forbidden, invalid_token, bad_request.
    pub decisions: IntCounterVec,
    /// `portcullis_upstream_request_duration_seconds{route, upstream}`: time to the
    /// upstream's response head.
    pub upstream_latency: HistogramVec,
    /// `portcullis_upstream_errors_total{route, upstream, kind}`: connect, timeout, protocol.
    pub upstream_errors: IntCounterVec,
    /// `portcullis_logins_total{result}`: ok, refused, provider_error.
    pub logins: IntCounterVec,
    /// `portcullis_logouts_total{kind}`: user, backchannel.
    pub logouts: IntCounterVec,
    /// `portcullis_token_refreshes_total{result}`: ok, refused, provider_error.
    pub refreshes: IntCounterVec,
    /// `portcullis_provider_errors_total{endpoint}`: discovery, jwks, token, userinfo.
    pub provider_errors: IntCounterVec,
    /// `portcullis_provider_fetches_total{kind}`: discovery, jwks.
    pub provider_fetches: IntCounterVec,
    /// `portcullis_config_reloads_total{result}`: ok, failed.
    pub config_reloads: IntCounterVec,
    /// `portcullis_active_sessions`: sessions in the store (sampled by the sweeper).
    pub active_sessions: IntGauge,
    /// `portcullis_open_connections`: client connections being served now.
    pub open_connections: IntGauge,
    /// `portcullis_upgraded_connections`: WebSocket and other upgraded tunnels open now.
    pub upgraded_connections: IntGauge,
    /// `portcullis_connection_events_total{connection, event}` (SPEC §13):
    /// connected, connect_failed, refreshed, refresh_refused, refresh_failed,
    /// disconnected, required. `connection` is a configured name.
    pub connection_events: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "portcullis_requests_total",
                "Requests served, by route, method class and status.",
            ),
            &["route", "method", "status"],
        )
        .expect("static metric definition is valid");
        let decisions = IntCounterVec::new(
            Opts::new(
                "portcullis_auth_decisions_total",
                "Access decisions, by route and outcome.",
            ),
            &["route", "decision"],
        )
        .expect("static metric definition is valid");
        let upstream_latency = HistogramVec::new(
            HistogramOpts::new(
                "portcullis_upstream_request_duration_seconds",
                "Time from sending a request upstream to receiving its response head.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["route", "upstream"],
        )
        .expect("static metric definition is valid");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "portcullis_upstream_errors_total",
                "Failed upstream requests, by route, upstream and kind.",
            ),
            &["route", "upstream", "kind"],
        )
        .expect("static metric definition is valid");
        let counter = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label])
                .expect("static metric definition is valid")
        };
        let logins = counter(
            "portcullis_logins_total",
            "Completed login callbacks, by result.",
            "result",
        );
        let logouts = counter(
            "portcullis_logouts_total",
            "Sessions ended by logout, by kind.",
            "kind",
        );
        let refreshes = counter(
            "portcullis_token_refreshes_total",
            "Access-token refreshes at the provider, by result.",
            "result",
        );
        let provider_errors = counter(
            "portcullis_provider_errors_total",
            "Failed calls to the OpenID provider, by endpoint.",
            "endpoint",
        );
        let provider_fetches = counter(
            "portcullis_provider_fetches_total",
            "Fetches of the provider's discovery document and JWKS.",
            "kind",
        );
        let config_reloads = counter(
            "portcullis_config_reloads_total",
            "Configuration reloads, by result.",
            "result",
        );
        let active_sessions = IntGauge::new(
            "portcullis_active_sessions",
            "Sessions in the session store.",
        )
        .expect("static metric definition is valid");
        let open_connections = IntGauge::new(
            "portcullis_open_connections",
            "Client connections open now.",
        )
        .expect("static metric definition is valid");
        let upgraded_connections = IntGauge::new(
            "portcullis_upgraded_connections",
            "Upgraded (WebSocket) tunnels open now.",
        )
        .expect("static metric definition is valid");
        let connection_events = IntCounterVec::new(
            Opts::new(
                "portcullis_connection_events_total",
                "Connected-account events, by connection and event.",
            ),
            &["connection", "event"],
        )
        .expect("static metric definition is valid");
        let metrics = Metrics {
            connection_events,
            registry,
            requests,
            decisions,
            upstream_latency,
            upstream_errors,
            logins,
            logouts,
            refreshes,
            provider_errors,
            provider_fetches,
            config_reloads,
            active_sessions,
            open_connections,
            upgraded_connections,
        };
        metrics.register_all();
        metrics
    }

    /// Counts one connected-account `event` of `connection` (a configured name).
    pub fn connection_event(&self, connection: &str, event: &str) {
        self.connection_events
            .with_label_values(&[connection, event])
            .inc();
    }

    fn register_all(&self) {
        let collectors: [Box<dyn prometheus::core::Collector>; 14] = [
            Box::new(self.connection_events.clone()),
            Box::new(self.provider_fetches.clone()),
            Box::new(self.config_reloads.clone()),
            Box::new(self.requests.clone()),
            Box::new(self.logins.clone()),
            Box::new(self.logouts.clone()),
            Box::new(self.refreshes.clone()),
            Box::new(self.provider_errors.clone()),
            Box::new(self.active_sessions.clone()),
            Box::new(self.decisions.clone()),
            Box::new(self.upstream_latency.clone()),
            Box::new(self.upstream_errors.clone()),
            Box::new(self.open_connections.clone()),
            Box::new(self.upgraded_connections.clone()),
        ];
        for c in collectors {
            self.registry
                .register(c)
                .expect("each series is registered once, in a fresh registry");
        }
    }

    /// The exposition text for `/metrics` (Prometheus text format 0.0.4).
    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(8 * 1024);
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        buf
    }
}

impl Metrics {
    /// The provider's share of the series.
    pub fn provider_counters(&self) -> crate::auth::oidc::ProviderCounters {
        crate::auth::oidc::ProviderCounters {
            fetches: self.provider_fetches.clone(),
            errors: self.provider_errors.clone(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A bounded label for a request method: the standard ones by name, anything else
/// as `OTHER`, so a client cannot grow the series count with invented methods.
pub fn method_label(method: &http::Method) -> &'static str {
    METHODS[method_index(method)]
}

/// The position of `method`'s label in [`METHODS`].
fn method_index(method: &http::Method) -> usize {
    match *method {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::DELETE => 4,
        http::Method::PATCH => 5,
        http::Method::OPTIONS => 6,
        _ => 7,
    }
}

// === per-route handles ===

/// Every decision label [`RouteCounters`] keeps a handle for; another label
/// is counted through the vector's own lookup.
const DECISIONS: [&str; 10] = [
    "allow",
    "redirect",
    "forbidden",
    "unauthenticated",
    "invalid_token",
    "not_found",
    "bad_request",
    "refused",
    "upstream_error",
    "unavailable",
];

/// The methods [`method_label`] names, by [`method_index`].
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER",
];

/// The statuses [`RouteCounters`] keeps a handle for; another status is counted
/// through the vector's own lookup.
const STATUSES: [u16; 22] = [
    200, 201, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 409, 413, 429, 500,
    502, 503, 504,
];

type RequestCounters = [[OnceLock<IntCounter>; STATUSES.len()]; METHODS.len()];

/// One route's series, each resolved on its first use and kept: the vectors'
/// own lookup (hashing the label values, a lock, a map) was about a tenth of
/// the proxy's own work per request. Built with the route table, so a reload
/// starts again from the vectors (which still hold every series).
pub struct RouteCounters {
    name: Arc<str>,
    decisions: [OnceLock<IntCounter>; DECISIONS.len()],
    /// `{route, method, status}`: allocated when the route is first used,
    /// so a table of 10,000 routes costs nothing for routes never asked for.
    requests: OnceLock<Box<RequestCounters>>,
    /// `{route, upstream}`: a rule has one upstream.
    upstream_latency: OnceLock<Histogram>,
}

impl RouteCounters {
    pub fn new(name: &str) -> Self {
        RouteCounters {
            name: Arc::from(name),
            decisions: Default::default(),
            requests: OnceLock::new(),
            upstream_latency: OnceLock::new(),
        }
    }

    /// The route's name, the `route` label.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counts one request in `portcullis_requests_total` and
    /// `portcullis_auth_decisions_total`.
    pub fn count(
        &self,
        metrics: &Metrics,
        method: &http::Method,
        status: http::StatusCode,
        decision: &'static str,
    ) {
        let m = method_index(method);
        let cell = STATUSES
            .iter()
            .position(|s| *s == status.as_u16())
            .map(|s| &self.requests.get_or_init(Box::default)[m][s]);
        let labels = [&*self.name, METHODS[m], status.as_str()];
        match cell {
            Some(cell) => cell
                .get_or_init(|| metrics.requests.with_label_values(&labels))
                .inc(),
            None => metrics.requests.with_label_values(&labels).inc(),
        }
        let labels = [&*self.name, decision];
        match DECISIONS.iter().position(|d| *d == decision) {
            Some(d) => self.decisions[d]
                .get_or_init(|| metrics.decisions.with_label_values(&labels))
                .inc(),
            None => metrics.decisions.with_label_values(&labels).inc(),
        }
    }

    /// Records the time to an upstream's response head for this route, whose
    /// upstream is `upstream`.
    pub fn observe_upstream(&self, metrics: &Metrics, upstream: &str, seconds: f64) {
        self.upstream_latency
            .get_or_init(|| {
                metrics
                    .upstream_latency
                    .with_label_values(&[&*self.name, upstream])
            })
            .observe(seconds);
    }
}

impl std::fmt::Debug for RouteCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteCounters")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
