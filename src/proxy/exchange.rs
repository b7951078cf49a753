//! What one request's steps learned, for the later steps and the access log
//! (Pingora's per-request `CTX`): no globals, no hidden headers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request};

use super::memo::ConnMemo;
use crate::admin::metrics::RouteCounters;
use crate::identity::Identity;
use crate::policy::normalize::NormalizedPath;
use crate::session::Session;

/// The transport facts of the connection a request arrived on.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The TCP peer: the client, or a proxy in front of portcullis.
    pub peer: SocketAddr,
    /// The peer's address as text for `X-Forwarded-For` and `X-Real-IP`:
    /// formatted once per connection rather than once per request.
    pub peer_text: HeaderValue,
    /// Whether this listener terminated TLS.
    pub is_tls: bool,
    /// The serving thread that accepted the connection (0 to `server.workers` - 1).
    pub worker: usize,
    /// What the connection's requests repeat, worked out once.
    pub memo: Arc<ConnMemo>,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, is_tls: bool, worker: usize) -> Self {
        let peer_text = HeaderValue::from_str(&peer.ip().to_string())
            .expect("an IP address is a valid header value");
        ConnInfo {
            peer,
            peer_text,
            is_tls,
            worker,
            memo: Arc::default(),
        }
    }
}

/// One request's context, filled in step by step.
#[derive(Debug)]
pub struct Exchange<'rt> {
    /// When the request arrived; `None` while the access log is off (the
    /// clock is read for nothing else here).
    pub started: Option<Instant>,
    pub request_id: HeaderValue,
    pub method: Method,
    pub peer: IpAddr,
    /// The normalized path once known; until then, nothing (a rejected raw target
    /// is never logged verbatim: it may hold control bytes meant for the log).
    pub path: Option<NormalizedPath>,
    /// The deciding rule's name and series, once a rule (or an endpoint of
    /// the proxy) was found.
    pub route: Option<Series<'rt>>,
    /// The name of the route's upstream, once a rule was found.
    pub upstream: Option<&'rt str>,
    /// `allow`, `forbidden`, `unauthenticated`, `bad_request`, `upstream_error`, ...
    pub decision: &'static str,
    /// The precise reason for a refusal (logged, never sent to the client).
    pub reason: Option<String>,
    pub upstream_latency: Option<Duration>,
    /// The authenticated subject, for the access log.
    pub sub: Option<Subject>,
    /// A browser navigating (GET/HEAD wanting HTML) rather than a script or API
    /// client: decides between a redirect or an HTML page and JSON (SPEC §4.1).
    pub is_navigation: bool,
    /// The connection's memo ([`ConnInfo::memo`]).
    pub memo: Arc<ConnMemo>,
}

/// The longest `X-Request-Id` kept from a client; longer or odd ones are replaced
/// so a client cannot inject into the log.
const MAX_REQUEST_ID: usize = 128;

/// The deciding rule's series: borrowed from the runtime the request is served
/// with (cloning the rule's `Arc` wrote a reference count every serving thread
/// shares), or made for a request to one of the proxy's own endpoints.
#[derive(Debug)]
pub enum Series<'rt> {
    Rule(&'rt RouteCounters),
    Endpoint(RouteCounters),
}

impl std::ops::Deref for Series<'_> {
    type Target = RouteCounters;

    fn deref(&self) -> &RouteCounters {
        match self {
            Series::Rule(counters) => counters,
            Series::Endpoint(counters) => counters,
        }
    }
}

impl Exchange<'_> {
    pub fn new<B>(req: &Request<B>, conn: &ConnInfo) -> Self {
        Exchange {
            started: access_log_on().then(Instant::now),
            request_id: request_id(req.headers()),
            method: req.method().clone(),
            peer: conn.peer.ip(),
            path: None,
            route: None,
            upstream: None,
            decision: "allow",
            reason: None,
            upstream_latency: None,
            sub: None,
            is_navigation: is_navigation(req),
            memo: conn.memo.clone(),
        }
    }

    /// The route label for metrics: the rule's name, or `none` when the request
    /// was refused before a rule was found.
    pub fn route_label(&self) -> &str {
        self.route.as_deref().map_or("none", RouteCounters::name)
    }
}

/// Who was authenticated, shared with the session or the bearer cache rather
/// than copied for a log line that may never be written.
#[derive(Debug, Clone)]
pub enum Subject {
    Session(Arc<Session>),
    Bearer(Arc<Identity>),
}

impl Subject {
    /// Returns true if and only if both are the very same session record or
    /// cached token identity (not merely equal ones).
    pub fn is(&self, other: &Subject) -> bool {
        match (self, other) {
            (Subject::Session(a), Subject::Session(b)) => Arc::ptr_eq(a, b),
            (Subject::Bearer(a), Subject::Bearer(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    pub fn sub(&self) -> &str {
        match self {
            Subject::Session(session) => &session.identity.sub,
            Subject::Bearer(identity) => &identity.sub,
        }
    }
}

/// Returns true if and only if access-log lines (`portcullis::access` at
/// info) are written: the answer is cached by `tracing` per call site.
pub fn access_log_on() -> bool {
    tracing::enabled!(target: "portcullis::access", tracing::Level::INFO)
}

/// The client's `X-Request-Id` when it is a sane token, else a fresh random one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    let mut values = headers.get_all(&super::forward::X_REQUEST_ID).iter();
    if let (Some(id), None) = (values.next(), values.next()) {
        let bytes = id.as_bytes();
        let is_sane = !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b));
        if is_sane {
            return id.clone();
        }
    }
    fresh_request_id()
}

/// 128 bits as 32 lowercase hex digits: unique, not secret (the client sees
/// it, and may choose its own), so a per-thread generator seeded from the
/// system's randomness serves, rather than a cryptographic one per request.
fn fresh_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 32];
    for (pair, byte) in id.chunks_exact_mut(2).zip(next_id_bits().to_be_bytes()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    HeaderValue::from_bytes(&id).expect("hex digits are a valid header value")
}

// Looked up by name on every request: a `&str` would be parsed into a name each time.
static X_REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");
static SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");

/// The next 128 bits of this thread's id generator: a SplitMix64 sequence
/// (distinct outputs for 2^64 steps) from a random start, paired with a
/// random per-thread word, so two threads or two processes do not meet.
fn next_id_bits() -> u128 {
    thread_local! {
        static STATE: std::cell::Cell<(u64, u64)> =
            std::cell::Cell::new((rand::random(), rand::random()));
    }
    STATE.with(|state| {
        let (counter, stream) = state.get();
        let counter = counter.wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set((counter, stream));
        let mut z = counter;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (u128::from(stream) << 64) | u128::from(z ^ (z >> 31))
    })
}

/// Returns true if and only if the request looks like a browser navigation: GET or
/// HEAD, asking for HTML, and not marked as a script's request.
fn is_navigation<B>(req: &Request<B>) -> bool {
    // Asked in this order, each only when the answer is still open: every
    // request asks, and most (API calls, assets) are settled by the first two.
    let headers = req.headers();
    let is_read = || matches!(*req.method(), Method::GET | Method::HEAD);
    let wants_html = || {
        headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
    };
    let is_script = || {
        headers
            .get(&X_REQUESTED_WITH)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"xmlhttprequest"))
            || headers
                .get(&SEC_FETCH_MODE)
                .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"navigate"))
    };
    is_read() && wants_html() && !is_script()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("test request is valid")
    }

    #[test]
    fn navigation_is_a_read_that_wants_html_from_no_script() {
        assert!(is_navigation(&req(
            Method::GET,
            &[("accept", "text/html,*/*")]
        )));
        assert!(is_navigation(&req(
            Method::GET,
            &[("accept", "text/html"), ("sec-fetch-mode", "navigate")]
        )));
        assert!(!is_navigation(&req(
            Method::GET,
            &[("accept", "application/json")]
        )));
        assert!(!is_navigation(&req(
            Method::POST,
            &[("accept", "text/html")]
        )));
        assert!(!is_navigation(&req(
            Method::GET,
            &[
                ("accept", "text/html"),
                ("x-requested-with", "XMLHttpRequest")
            ]
        )));
        assert!(!is_navigation(&req(
            Method::GET,
            &[("accept", "text/html"), ("sec-fetch-mode", "cors")]
        )));
    }

    #[test]
    fn fresh_request_ids_are_distinct_hex_on_every_thread() {
        let ids = || (0..10_000).map(|_| fresh_request_id()).collect::<Vec<_>>();
        let here = ids();
        let there = std::thread::spawn(ids).join().expect("the thread ran");
        let distinct: std::collections::HashSet<_> = here.iter().chain(&there).collect();
        assert_eq!(distinct.len(), 20_000);
        assert!(here.iter().all(|id| id.len() == 32
            && id
                .as_bytes()
                .iter()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())));
    }

    #[test]
    fn keeps_a_sane_request_id_and_replaces_a_hostile_one() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert(
            "x-request-id",
            HeaderValue::from_static("evil\" injected=1"),
        );
        assert_ne!(request_id(&h), "evil\" injected=1");
        h.append("x-request-id", HeaderValue::from_static("second"));
        assert_eq!(request_id(&h).len(), 32, "two ids: neither is trusted");
        assert_eq!(request_id(&HeaderMap::new()).len(), 32);
    }
}
