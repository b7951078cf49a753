//! The admin listener (SPEC §9): `/healthz`, `/readyz`, `/metrics`.
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
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let resp = respond(&req, &metrics, &readiness);
                async move { Ok::<_, Infallible>(resp) }
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

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}
