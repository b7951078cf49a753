//! The admin listener (SPEC §9): `/healthz`, `/readyz`, `/metrics`, and the
//! connected-account token endpoint for offline jobs (SPEC §13),
//! `/connections/NAME/token`, answered by whoever implements [`ConnectionTokens`].
//!
//! It runs on its own address, never on the public listener, so a user of the
//! protected app cannot read metrics or probe readiness. It imports nothing above
//! it; other modules get `&Metrics` and `&Readiness`, never its handlers.

pub mod metrics;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use metrics::Metrics;

/// What the token endpoint answers (SPEC §13).
pub enum TokenAnswer {
    /// `admin.connections_api_token` is not configured: the endpoint is off (404).
    Off,
    /// No or another bearer secret: 401.
    Unauthorized,
    /// No such connection, or the user has no link: 404.
    NotLinked,
    /// `provider` or `sub` missing: 400.
    BadRequest,
    /// The store or the third party cannot answer now: 503 / 502.
    Unavailable(StatusCode),
    /// 200 `{"access_token","expires_at","scopes"}`.
    Token(serde_json::Value),
}

impl std::fmt::Debug for TokenAnswer {
    // The token stays out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenAnswer::Off => f.write_str("Off"),
            TokenAnswer::Unauthorized => f.write_str("Unauthorized"),
            TokenAnswer::NotLinked => f.write_str("NotLinked"),
            TokenAnswer::BadRequest => f.write_str("BadRequest"),
            TokenAnswer::Unavailable(status) => write!(f, "Unavailable({status})"),
            TokenAnswer::Token(_) => f.write_str("Token([redacted])"),
        }
    }
}

/// The token endpoint's logic, implemented where links and connections live
/// (the proxy), so this module imports nothing above it.
pub trait ConnectionTokens: Send + Sync + 'static {
    /// The token of `connection` for (`provider`, `sub`), for a caller that
    /// presented `bearer`.
    fn token(
        &self,
        bearer: Option<String>,
        connection: String,
        provider: Option<String>,
        sub: Option<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = TokenAnswer> + Send + '_>>;
}

/// Named start-up conditions that must all hold before `/readyz` answers 200
/// (linkerd's readiness latch): the provider's metadata is loaded, the session
/// store answers, the listener is bound.
#[derive(Default)]
pub struct Readiness {
    conditions: Mutex<BTreeMap<&'static str, bool>>,
    /// Reported in the body, never holding readiness back (providers other
    /// than the default, SPEC §12).
    notes: Mutex<BTreeMap<String, bool>>,
}

impl Readiness {
    /// A latch waiting for each of `names`.
    pub fn new(names: &[&'static str]) -> Self {
        let conditions = names.iter().map(|n| (*n, false)).collect();
        Readiness {
            conditions: Mutex::new(conditions),
            notes: Mutex::default(),
        }
    }

    /// Records whether `name` holds now; a condition may also go back to false
    /// (the session store became unreachable).
    pub fn set(&self, name: &'static str, ok: bool) {
        self.lock().insert(name, ok);
    }

    /// Records whether `name`, which does not gate readiness, holds now.
    pub fn note(&self, name: &str, ok: bool) {
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        notes.insert(name.to_owned(), ok);
    }

    /// Returns true if and only if every condition holds.
    pub fn is_ready(&self) -> bool {
        self.lock().values().all(|ok| *ok)
    }

    fn report(&self) -> String {
        let conditions = self.lock();
        let mut out = String::new();
        for (name, ok) in conditions.iter() {
            out.push_str(name);
            out.push_str(if *ok { ": ok\n" } else { ": waiting\n" });
        }
        let notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        for (name, ok) in notes.iter() {
            out.push_str(name);
            out.push_str(if *ok {
                ": ok\n"
            } else {
                ": not discovered yet (its routes answer 503; not needed for readiness)\n"
            });
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, bool>> {
        // A poisoned map of booleans is still a valid map of booleans.
        self.conditions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves the admin endpoints on `listener` until `shutdown` changes.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    tokens: Option<Arc<dyn ConnectionTokens>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(%error, "admin accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let metrics = metrics.clone();
        let readiness = readiness.clone();
        let tokens = tokens.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let token_request = match (&tokens, connection_of(req.uri().path())) {
                    (Some(tokens), Some(name)) => Some((tokens.clone(), name.to_owned())),
                    _ => None,
                };
                let resp = match token_request {
                    Some(_) => None,
                    None => Some(respond(&req, &metrics, &readiness)),
                };
                async move {
                    match (resp, token_request) {
                        (Some(resp), _) => Ok::<_, Infallible>(resp),
                        (None, Some((tokens, name))) => Ok(token(&req, &*tokens, name).await),
                        (None, None) => Ok(text(StatusCode::NOT_FOUND, "not found\n".into())),
                    }
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10));
            if let Err(error) = builder.serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!(%error, "admin connection ended with an error");
            }
        });
    }
}

/// Binds the admin listener, or says which address could not be bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

fn respond(
    req: &Request<Incoming>,
    metrics: &Metrics,
    readiness: &Readiness,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" if readiness.is_ready() => text(StatusCode::OK, readiness.report()),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, readiness.report()),
        "/metrics" => Response::builder()
            .header(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .body(Full::new(Bytes::from(metrics.render())))
            .expect("static response parts are valid"),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// `NAME` of `/connections/NAME/token`.
fn connection_of(path: &str) -> Option<&str> {
    path.strip_prefix("/connections/")?
        .strip_suffix("/token")
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

/// `GET /connections/NAME/token?provider=P&sub=S` with the bearer secret.
async fn token(
    req: &Request<Incoming>,
    tokens: &dyn ConnectionTokens,
    connection: String,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_owned());
    let param = |name: &str| {
        let query = req.uri().query()?;
        let mut found = url::form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == name);
        match (found.next(), found.next()) {
            (Some((_, v)), None) => Some(v.into_owned()),
            _ => None,
        }
    };
    let answer = tokens
        .token(bearer, connection, param("provider"), param("sub"))
        .await;
    match answer {
        TokenAnswer::Off => text(StatusCode::NOT_FOUND, "not found\n".into()),
        TokenAnswer::Unauthorized => Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"portcullis-admin\"",
            )
            .header(header::CACHE_CONTROL, "no-store")
            .body(Full::new(Bytes::from_static(b"unauthorized\n")))
            .expect("static response parts are valid"),
        TokenAnswer::NotLinked => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "not_linked"}),
        ),
        TokenAnswer::BadRequest => json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "invalid_request", "message": "provider and sub are required, once each"}),
        ),
        TokenAnswer::Unavailable(status) => {
            json(status, &serde_json::json!({"error": "unavailable"}))
        }
        TokenAnswer::Token(value) => json(StatusCode::OK, &value),
    }
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("static response parts are valid")
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}
