//! The connections to one upstream: per serving thread, a stack of idle
//! HTTP/1.1 senders (`hyper::client::conn::http1`) whose connections are
//! driven by tasks on that same thread.
//!
//! A serving thread runs its own single-threaded runtime, so a request, its
//! upstream connection and the task driving that connection all stay on one
//! thread: no channel to a pool task, no hashing of a pool key, no wake-up
//! across threads per request (hyper-util's pooled client did all three).
//! The newest idle connection is used first; a sender goes back to its
//! thread's stack when the response body has been read to the end, and is
//! dropped (closing its connection) when the body is not, or after a 101.
//!
//! # Retries
//! A connection the upstream closed while it sat idle is found closed when a
//! request is sent on it; hyper hands such a request back unsent, and it is
//! sent on another connection. A request that was (even partly) written is
//! never sent twice.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use super::body::{Body, BoxError};

/// How many times a request handed back unsent (a stale idle connection) is
/// tried again, each time on another connection.
const SEND_ATTEMPTS: usize = 3;

/// Why a request could not be sent or answered.
#[derive(Debug)]
pub enum PoolError {
    /// No connection (TCP or TLS) could be made within the connect timeout.
    Connect(String),
    /// The connection failed while the request was sent or the response head read.
    Send(hyper::Error),
}

/// The settings a [`Pool`] is built from; a reload with other values builds anew.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolSettings {
    pub scheme: String,
    pub authority: String,
    pub ca_file: Option<std::path::PathBuf>,
    pub connect_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
    pub threads: usize,
}

/// One upstream's connections, a stack per serving thread.
pub struct Pool {
    workers: Vec<Arc<Worker>>,
    connector: HttpsConnector<HttpConnector>,
    /// `scheme://authority/`: what the connector dials.
    target: Uri,
    pub(super) settings: PoolSettings,
}

/// One serving thread's idle connections. Only that thread takes from and
/// puts to it, so its lock is never contended (a `Mutex` keeps `Pool` `Sync`).
/// Each sits in a cache line of its own, and a response holds its thread's
/// worker rather than the pool: with the threads' locks side by side and one
/// reference count for all, every request pulled a cache line from the other
/// core.
#[repr(align(128))]
struct Worker {
    idle: Mutex<VecDeque<Idle>>,
    /// `pool_max_idle_per_host`.
    max_idle: usize,
}

struct Idle {
    tx: SendRequest<Body>,
    since: Instant,
}

impl Pool {
    /// A pool dialing `target` with `connector`.
    pub fn new(
        connector: HttpsConnector<HttpConnector>,
        target: Uri,
        settings: PoolSettings,
    ) -> Self {
        let workers = (0..settings.threads.max(1))
            .map(|_| {
                Arc::new(Worker {
                    idle: Mutex::default(),
                    max_idle: settings.pool_max_idle_per_host,
                })
            })
            .collect();
        Pool {
            workers,
            connector,
            target,
            settings,
        }
    }

    /// Sends `req` (origin-form) on a connection of serving thread `worker` and
    /// returns the response head with its body streaming. The connection goes
    /// back to the thread's stack when the body ends. `now` is the caller's
    /// clock reading (idle connections are aged against it).
    ///
    /// # Errors
    /// [`PoolError::Connect`] when no connection can be made,
    /// [`PoolError::Send`] when the connection fails under the request.
    pub async fn send(
        &self,
        worker: usize,
        mut req: Request<Body>,
        now: Instant,
    ) -> Result<Response<Body>, PoolError> {
        let worker = worker % self.workers.len();
        for attempt in 1..=SEND_ATTEMPTS {
            let (mut tx, is_reused) = match self.checkout(worker, now) {
                Some(tx) => (tx, true),
                // Boxed: dialing is rare on a warm pool, and its future
                // inline would make every request's future (copied as it
                // moves) a kilobyte larger.
                None => (Box::pin(self.connect()).await?, false),
            };
            if let Err(error) = tx.ready().await {
                if is_reused {
                    continue; // closed while idle: another connection
                }
                return Err(PoolError::Send(error));
            }
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok(self.returning(resp, tx, worker)),
                Err(mut failed) => match failed.take_message() {
                    // Handed back unsent: safe to send again elsewhere.
                    Some(unsent) if attempt < SEND_ATTEMPTS => req = unsent,
                    _ => return Err(PoolError::Send(failed.into_error())),
                },
            }
        }
        Err(PoolError::Connect("no usable connection".to_owned()))
    }

    /// Drops idle connections past `pool_idle_timeout` on every thread
    /// (called from housekeeping), closing them.
    pub fn sweep(&self) {
        let timeout = self.settings.pool_idle_timeout;
        for worker in &self.workers {
            if let Ok(mut idle) = worker.idle.lock() {
                idle.retain(|i| i.since.elapsed() < timeout && !i.tx.is_closed());
            }
        }
    }

    /// How many idle connections the pool holds (tests).
    pub fn idle_count(&self) -> usize {
        self.workers
            .iter()
            .filter_map(|w| w.idle.lock().ok().map(|i| i.len()))
            .sum()
    }

    /// The newest usable idle connection of `worker`; stale or closed ones
    /// met on the way are dropped.
    fn checkout(&self, worker: usize, now: Instant) -> Option<SendRequest<Body>> {
        let timeout = self.settings.pool_idle_timeout;
        let mut idle = self.workers[worker].idle.lock().ok()?;
        while let Some(front) = idle.front() {
            if now.saturating_duration_since(front.since) < timeout {
                break;
            }
            idle.pop_front();
        }
        while let Some(Idle { tx, .. }) = idle.pop_back() {
            if !tx.is_closed() {
                return Some(tx);
            }
        }
        None
    }

    /// A new connection, driven by a task on this thread (with upgrades, so
    /// a 101 can become a tunnel).
    async fn connect(&self) -> Result<SendRequest<Body>, PoolError> {
        let mut connector = self.connector.clone();
        let dialing = connector.call(self.target.clone());
        let io = match tokio::time::timeout(self.settings.connect_timeout, dialing).await {
            Err(_) => {
                return Err(PoolError::Connect(format!(
                    "no connection within {:?}",
                    self.settings.connect_timeout
                )))
            }
            Ok(Err(error)) => return Err(PoolError::Connect(super::forward::error_chain(&*error))),
            Ok(Ok(io)) => io,
        };
        let (tx, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| PoolError::Connect(super::forward::error_chain(&e)))?;
        tokio::spawn(async move {
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%error, "upstream connection ended with an error");
            }
        });
        Ok(tx)
    }

    /// The response with a body that gives `tx` back when read to the end. A
    /// 101's connection is the tunnel's now: never given back.
    fn returning(
        &self,
        resp: Response<Incoming>,
        tx: SendRequest<Body>,
        worker: usize,
    ) -> Response<Body> {
        let give_back = (resp.status() != http::StatusCode::SWITCHING_PROTOCOLS)
            .then(|| (tx, self.workers[worker].clone()));
        resp.map(|inner| http_body_util::BodyExt::boxed(Returning { inner, give_back }))
    }
}

/// An upstream response body that gives its connection back to the pool once
/// read to the end (a body dropped early closes its connection with it).
struct Returning {
    inner: Incoming,
    give_back: Option<(SendRequest<Body>, Arc<Worker>)>,
}

impl Returning {
    fn give_back(&mut self) {
        if let Some((tx, worker)) = self.give_back.take() {
            worker.put(tx);
        }
    }
}

impl Worker {
    fn put(&self, tx: SendRequest<Body>) {
        if tx.is_closed() {
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        if idle.len() >= self.max_idle {
            idle.pop_front(); // the oldest goes
        }
        idle.push_back(Idle {
            tx,
            since: Instant::now(),
        });
    }
}

impl http_body::Body for Returning {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.give_back(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.give_back(),
            Poll::Ready(Some(Err(_))) => this.give_back = None,
            _ => {}
        }
        polled.map(|frame| frame.map(|f| f.map_err(BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        // hyper's server drops a body it knows is complete (an empty one, a
        // Content-Length one read to its length) without polling it to the end.
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }
}
