//! The Prometheus series portcullis exports, one field per series.
//!
//! Modules receive `&Metrics` and record into it; they never see the admin
//! listener. Labels stay bounded: a route's configured name, a status code, a
//! decision name, never a raw path or a user id.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
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
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
