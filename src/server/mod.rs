//! Listeners: accept connections (TLS or plain), serve HTTP/1.1 with hyper's
//! own connection and HTTP/2 with hyper-util's, and drain on shutdown.
//!
//! It knows nothing of routes, auth or sessions: every request goes to
//! [`proxy::handle`].

mod between;
mod drain;
mod reload;
mod tls;

pub use reload::{ReloadError, Reloader};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::admin::{self, Metrics, Readiness};
use crate::auth::http::HttpClient;
use crate::auth::oidc::Provider;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, SessionStoreKind};
use crate::proxy::{self, ConnInfo, Runtime, State, UpstreamError};
use crate::session::redis::RedisStoreError;
use crate::session::seal::{SealError, Sealer};
use crate::session::{MemoryStore, RedisStore, SessionStore};

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// `identity.signing_key_file` cannot be used.
    #[error(transparent)]
    Identity(#[from] crate::identity::TokenError),
    /// A listen address is taken or not permitted.
    #[error("cannot listen on {addr} ({key}): {source}")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// `server.tls` files cannot be used.
    #[error("server.tls: {path}: {reason}")]
    Tls { path: String, reason: String },
    #[error("upstream: {0}")]
    Upstream(#[from] UpstreamError),
    /// A serving thread or its runtime could not be started.
    #[error("cannot start serving thread {worker}: {source}")]
    Thread {
        worker: usize,
        source: std::io::Error,
    },
    /// `session.secret` cannot be used as a key.
    #[error("session.secret: {0}")]
    Secret(#[from] SealError),
    /// The Redis store's URL or key cannot be used (connecting is lazy: an
    /// unreachable Redis is not a start-up error, only "not ready").
    #[error("session store: {0}")]
    Redis(#[from] RedisStoreError),
}

/// What a caller may inject into a proxy: the clock (tests move it by hand).
pub struct Options {
    pub clock: Arc<dyn Clock>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Arc::new(SystemClock),
        }
    }
}

/// How long outbound calls to the provider may take.
pub(crate) const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often expired sessions and replay-cache entries are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// A running proxy: its bound addresses and the means to stop it.
pub struct Running {
    /// The public listener's address (useful when `server.listen` used port 0).
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub state: Arc<State>,
    pub readiness: Arc<Readiness>,
    certs: Option<Arc<tls::CertStore>>,
    shutdown: watch::Sender<bool>,
    /// One per serving thread: completes when the thread has drained.
    public: Vec<oneshot::Receiver<()>>,
    admin: Option<JoinHandle<()>>,
}

impl Running {
    /// The handle that reloads this proxy's configuration.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            state: self.state.clone(),
            metrics: self.state.metrics.clone(),
            certs: self.certs.clone(),
            readiness: self.readiness.clone(),
            shutdown: self.shutdown.subscribe(),
        }
    }

    /// A receiver that changes when this proxy shuts down (for helper tasks).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Stops accepting, lets in-flight requests finish within
    /// `server.shutdown_grace`, then returns.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for thread in std::mem::take(&mut self.public) {
            // An error means the thread ended without saying so: it is gone too.
            let _ = thread.await;
        }
        if let Some(admin) = self.admin.take() {
            let _ = admin.await;
        }
    }
}

impl Drop for Running {
    /// The serving threads outlive the runtime that started them: a proxy
    /// dropped without [`Running::shutdown`] still stops (gracefully).
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Binds both listeners and starts serving `config` in background tasks.
///
/// # Errors
/// When a listener cannot be bound or TLS/upstream settings cannot be used.
pub async fn start(config: Config) -> Result<Running, ServerError> {
    start_with(config, Options::default()).await
}

/// [`start`] with injected parts.
///
/// # Errors
/// As [`start`].
pub async fn start_with(config: Config, options: Options) -> Result<Running, ServerError> {
    let clock = options.clock;
    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::new(&["listener", "provider", "session_store"]));
    let (tls, certs) = match config.server.tls.as_ref().map(tls::acceptor).transpose()? {
        Some((acceptor, certs)) => (Some(acceptor), Some(certs)),
        None => (None, None),
    };
    let public = bind("server.listen", config.server.listen).await?;
    let admin_listener = bind("admin.listen", config.admin.listen).await?;
    let public_addr = local_addr("server.listen", &public)?;
    let admin_addr = local_addr("admin.listen", &admin_listener)?;

    let settings = ListenerSettings::from(&config);
    let threads = config.server.serving_threads();
    let login_sealer = Sealer::from_secrets(&config.session.secrets, "portcullis login state")?;
    let (store, links, memory) = session_store(&config, &clock)?;
    let signer = Arc::new(crate::identity::Signer::new(
        &config.identity,
        &config.server.public_url,
    )?);
    let providers = build_providers(&config, &clock, &metrics, None);
    let discovering: Vec<Arc<Provider>> = providers.iter().cloned().collect();
    let runtime = Runtime::new(config, providers, metrics.clone(), None)?;
    let state = Arc::new(State {
        runtime: proxy::RuntimeCell::new(runtime),
        metrics: metrics.clone(),
        store,
        clock,
        login_sealer,
        refresh_gates: Default::default(),
        used_states: Default::default(),
        used_connect_states: Default::default(),
        seen_jti: Default::default(),
        provider_backoff_until: Default::default(),
        signer,
        links,
        link_gates: Default::default(),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    if let Some(memory) = &memory {
        // Redis expires its records itself.
        memory.spawn_sweeper(SWEEP_EVERY, shutdown_rx.clone());
    }
    for provider in discovering {
        tokio::spawn(discovery(provider, readiness.clone(), shutdown_rx.clone()));
    }
    tokio::spawn(housekeeping(
        state.clone(),
        readiness.clone(),
        shutdown_rx.clone(),
    ));
    let tokens: Arc<dyn admin::ConnectionTokens> =
        Arc::new(crate::proxy::connect::AdminTokens(state.clone()));
    let admin = tokio::spawn(admin::serve(
        admin_listener,
        metrics,
        readiness.clone(),
        Some(tokens),
        shutdown_rx.clone(),
    ));
    let serving = Serving {
        tls,
        state: state.clone(),
        settings,
        limit: Arc::new(Semaphore::new(settings.max_connections)),
        shutdown: shutdown_rx,
    };
    let public = match serving.spawn_threads(threads, public) {
        Ok(public) => public,
        Err(error) => {
            let _ = shutdown.send(true);
            return Err(error);
        }
    };
    readiness.set("listener", true);
    tracing::info!(%public_addr, %admin_addr, "portcullis listening");
    Ok(Running {
        public_addr,
        admin_addr,
        state,
        readiness,
        certs,
        shutdown,
        public,
        admin: Some(admin),
    })
}

/// The session store every request uses, and the memory store again when that is
/// the one (it needs a sweeper).
type Stores = (
    Arc<dyn SessionStore>,
    Arc<dyn crate::session::LinkStore>,
    Option<Arc<MemoryStore>>,
);

/// Builds the configured session store. Redis connects lazily: an unreachable Redis
/// is not a start-up error, only "not ready" until it answers.
fn session_store(config: &Config, clock: &Arc<dyn Clock>) -> Result<Stores, ServerError> {
    match config.session.store {
        SessionStoreKind::Memory => {
            let memory = Arc::new(MemoryStore::new(config.session.max_sessions, clock.clone()));
            Ok((memory.clone(), memory.clone(), Some(memory)))
        }
        SessionStoreKind::Redis => {
            // Config validation requires both; a Config built by hand may lack them.
            let url = config
                .session
                .redis_url
                .as_ref()
                .ok_or(RedisStoreError::NoUrl)?;
            let redis = RedisStore::connect(url, &config.session.secrets, clock.clone())?;
            tracing::info!("session store: redis");
            let redis = Arc::new(redis);
            Ok((redis.clone(), redis, None))
        }
    }
}

/// The providers of `config` in `Config::all_providers` order, each kept from
/// `previous` when its settings are unchanged (with its metadata and keys).
pub(crate) fn build_providers(
    config: &Config,
    clock: &Arc<dyn crate::clock::Clock>,
    metrics: &Metrics,
    previous: Option<&crate::auth::providers::Providers>,
) -> crate::auth::providers::Providers {
    let list = config
        .all_providers()
        .map(|(name, oidc)| {
            let kept = previous
                .and_then(|old| old.named(name))
                .map(|(_, old)| old)
                .filter(|old| old.has_settings_of(name, oidc, config));
            match kept {
                Some(old) => old.clone(),
                None => Arc::new(
                    Provider::named(
                        name,
                        oidc,
                        config,
                        HttpClient::new(PROVIDER_TIMEOUT),
                        clock.clone(),
                    )
                    .with_counters(metrics.provider_counters()),
                ),
            }
        })
        .collect();
    crate::auth::providers::Providers::new(list)
}

/// Background task: discover a provider (retrying with backoff). The default
/// one gates `/readyz`; any other is only named in its body until it is
/// discovered, since one provider down never takes the proxy out of service
/// (SPEC §12: its routes answer 503 meanwhile).
pub(crate) async fn discovery(
    provider: Arc<Provider>,
    readiness: Arc<Readiness>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = provider.name().to_owned();
    let is_default = name == crate::config::DEFAULT_PROVIDER;
    if !is_default {
        readiness.note(&format!("provider {name}"), false);
    }
    let on_ready = || {
        if is_default {
            readiness.set("provider", true);
        } else {
            readiness.note(&format!("provider {name}"), true);
        }
    };
    tokio::select! {
        () = provider.discover_with_retry(on_ready) => {}
        _ = shutdown.changed() => {}
    }
}

/// Background task: sweep replay caches, sample the session count, and track
/// whether the session store answers (for `/readyz`).
async fn housekeeping(
    state: Arc<State>,
    readiness: Arc<Readiness>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    let mut was_up = None;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        state.sweep_caches();
        for upstream in state.runtime.load().upstreams.iter() {
            upstream.sweep_idle();
        }
        let is_up = check_store(&*state.store, was_up).await;
        was_up = Some(is_up);
        readiness.set("session_store", is_up);
        if let Ok(count) = state.store.count().await {
            state
                .metrics
                .active_sessions
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }
}

/// Pings the store; logs when it goes down or comes back (not on every tick).
async fn check_store(store: &dyn SessionStore, was_up: Option<bool>) -> bool {
    match (store.ping().await, was_up) {
        (Ok(()), Some(false)) => {
            tracing::info!("session store reachable again");
            true
        }
        (Ok(()), _) => true,
        (Err(error), Some(false)) => {
            tracing::debug!(%error, "session store still unreachable");
            false
        }
        (Err(error), _) => {
            tracing::warn!(%error, "session store unreachable: requests that need a session get 503");
            false
        }
    }
}

/// The accept queue asked of the kernel (capped by `net.core.somaxconn`).
///
/// tokio's `TcpListener::bind` asks for 128 here. A burst of connections
/// larger than the queue has its SYNs dropped, and each dropped client waits a
/// second or more to retry: a burst of 10,000 took a minute to connect
/// (tests/adversarial/floods.rs).
const ACCEPT_BACKLOG: u32 = 4096;

async fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // As std and tokio do: a restart can bind while old connections linger.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(ACCEPT_BACKLOG)
    };
    listen().map_err(|source| ServerError::Bind { key, addr, source })
}

fn local_addr(key: &'static str, listener: &TcpListener) -> Result<SocketAddr, ServerError> {
    listener.local_addr().map_err(|source| ServerError::Bind {
        key,
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

/// The connection-level settings, fixed when the listener starts.
#[derive(Clone, Copy)]
struct ListenerSettings {
    header_read_timeout: Duration,
    max_header_bytes: usize,
    max_connections: usize,
    shutdown_grace: Duration,
}

impl From<&Config> for ListenerSettings {
    fn from(config: &Config) -> Self {
        ListenerSettings {
            header_read_timeout: config.server.header_read_timeout,
            max_header_bytes: config.server.max_header_bytes,
            max_connections: config.server.max_connections,
            shutdown_grace: config.server.shutdown_grace,
        }
    }
}

/// hyper's smallest allowed read buffer: a smaller `max_header_bytes` still
/// buffers this much (hyper panics below it).
const MIN_BUF_SIZE: usize = 8192;

/// HTTP/1 straight from hyper: hyper-util's auto connection would add a
/// rewind layer to every read and poll its own graceful signal on every wake.
/// The header-read timeout is [`between::HeadDeadline`]'s, not hyper's.
fn http1_builder(settings: ListenerSettings) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .header_read_timeout(None)
        .max_buf_size(settings.max_header_bytes.max(MIN_BUF_SIZE))
        .max_headers(128);
    builder
}

fn http2_builder(settings: ListenerSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http2_only();
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        // CVE-2023-44487 (rapid reset) and its follow-ups.
        .max_pending_accept_reset_streams(64)
        .max_local_error_reset_streams(256)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// What every serving thread shares.
#[derive(Clone)]
struct Serving {
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    settings: ListenerSettings,
    /// `server.max_connections`, across all threads.
    limit: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
}

impl Serving {
    /// Starts `count` threads accepting on `listener`, each with a
    /// single-threaded runtime of its own, as nginx runs one event loop per
    /// worker process: a connection, its requests and the upstream connections
    /// they use stay on the thread that accepted it. tokio's work-stealing
    /// runtime moved that work between threads, paying for wake-ups across
    /// cores on every request; one runtime per thread served about 40% more
    /// requests on the same cores (issue 8). The threads share the listening
    /// socket; whichever is free first accepts.
    fn spawn_threads(
        &self,
        count: usize,
        listener: TcpListener,
    ) -> Result<Vec<oneshot::Receiver<()>>, ServerError> {
        let thread_error = |worker| move |source| ServerError::Thread { worker, source };
        let listener = listener.into_std().map_err(thread_error(0))?;
        (0..count)
            .map(|worker| {
                let listener = listener.try_clone().map_err(thread_error(worker))?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(thread_error(worker))?;
                let (done, finished) = oneshot::channel();
                let serving = self.clone();
                std::thread::Builder::new()
                    .name(format!("portcullis-{worker}"))
                    .spawn(move || {
                        runtime.block_on(serving.serve_thread(listener, worker));
                        let _ = done.send(());
                    })
                    .map_err(thread_error(worker))?;
                Ok(finished)
            })
            .collect()
    }

    async fn serve_thread(self, listener: std::net::TcpListener, worker: usize) {
        match TcpListener::from_std(listener) {
            Ok(listener) => {
                // The sweeper of this thread's request deadlines, for as long
                // as it serves (draining included).
                tokio::select! {
                    () = self.accept_loop(listener, worker) => {}
                    () = crate::deadline::sweep() => {}
                }
            }
            Err(error) => tracing::error!(worker, %error, "serving thread cannot use the listener"),
        }
    }

    async fn accept_loop(mut self, listener: TcpListener, worker: usize) {
        let settings = self.settings;
        let builders = Arc::new(Builders {
            http1: http1_builder(settings),
            http2: http2_builder(settings),
        });
        let graceful = drain::Drain::new();
        loop {
            let permit = tokio::select! {
                permit = self.limit.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = self.shutdown.changed() => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = self.shutdown.changed() => break,
            };
            let _ = stream.set_nodelay(true);
            let watcher = graceful.watcher();
            let conn = Connection {
                state: self.state.clone(),
                builders: builders.clone(),
                tls: self.tls.clone(),
                settings,
                worker,
            };
            tokio::spawn(async move {
                conn.serve(stream, peer, watcher).await;
                drop(permit);
            });
        }
        drop(listener);
        tokio::select! {
            _ = graceful.shutdown() => tracing::debug!(worker, "all connections drained"),
            _ = tokio::time::sleep(settings.shutdown_grace) => {
                tracing::warn!(grace = ?settings.shutdown_grace, "shutdown grace ran out; closing open connections");
            }
        }
    }
}

/// `Box::pin(make())` with the box allocated first, so that the future can be
/// built in it: made first and then moved in, the request path's future (3 KiB)
/// was copied once more per request.
fn boxed<F: std::future::Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

/// One builder per protocol. The protocol is chosen before hyper sees the
/// connection: hyper-util's own detection waits for bytes without a timer, so a
/// client that connects and sends nothing would hold a connection slot forever.
struct Builders {
    http1: hyper::server::conn::http1::Builder,
    http2: auto::Builder<TokioExecutor>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a plain-TCP client speaks (h2c prior knowledge or HTTP/1),
/// read with `peek` within `timeout`; `None` when it closes or stays silent.
async fn detect_plain(stream: &TcpStream, timeout: Duration) -> Option<Protocol> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 24];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        if !H2_PREFACE.starts_with(&buf[..n]) {
            return Some(Protocol::Http1);
        }
        if n == H2_PREFACE.len() {
            return Some(Protocol::Http2);
        }
        // A strict prefix of the HTTP/2 preface so far ("P", "PRI *"...): wait for more.
        tokio::time::timeout_at(deadline, tokio::time::sleep(Duration::from_millis(5)))
            .await
            .ok()?;
    }
}

/// One accepted connection and what it needs to be served.
struct Connection {
    state: Arc<State>,
    builders: Arc<Builders>,
    tls: Option<TlsAcceptor>,
    settings: ListenerSettings,
    worker: usize,
}

impl Connection {
    async fn serve(self, stream: TcpStream, peer: SocketAddr, watcher: drain::Watcher) {
        let metrics = self.state.metrics.clone();
        metrics.open_connections.inc();
        match self.tls.clone() {
            None => {
                let info = ConnInfo::new(peer, false, self.worker);
                match detect_plain(&stream, self.settings.header_read_timeout).await {
                    Some(protocol) => self.serve_http(stream, info, protocol, watcher).await,
                    None => tracing::debug!(%peer, "no request started in time; closing"),
                }
            }
            Some(acceptor) => {
                // The handshake gets the same bound as a request head.
                let handshake = tokio::time::timeout(
                    self.settings.header_read_timeout,
                    acceptor.accept(stream),
                );
                match handshake.await {
                    Ok(Ok(tls_stream)) => {
                        let info = ConnInfo::new(peer, true, self.worker);
                        let is_h2 =
                            tls_stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                        let protocol = if is_h2 {
                            Protocol::Http2
                        } else {
                            Protocol::Http1
                        };
                        self.serve_http(tls_stream, info, protocol, watcher).await;
                    }
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
        }
        metrics.open_connections.dec();
    }

    async fn serve_http<I>(
        &self,
        io: I,
        info: ConnInfo,
        protocol: Protocol,
        watcher: drain::Watcher,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = info.peer;
        let scopes = proxy::Scopes::new(self.state.clone(), info);
        let requests = Arc::new(between::Requests::default());
        let served = requests.clone();
        let svc = service_fn(move |req| {
            let in_flight = served.start();
            // Boxed: hyper keeps the service future inline in every connection's
            // task, and the whole request path's future is several KiB, paid
            // by each idle or slow connection (measured in
            // tests/adversarial/floods.rs).
            let handled = boxed(|| proxy::handle(scopes.for_request(), req));
            async move {
                let resp = handled.await;
                Ok::<_, Infallible>(resp.map(|body| between::Tracked::new(body, in_flight)))
            }
        });
        // With upgrades: without them WebSocket breaks.
        let ended = match protocol {
            Protocol::Http1 => {
                let conn = self
                    .builders
                    .http1
                    .serve_connection(TokioIo::new(io), svc)
                    .with_upgrades();
                let conn =
                    between::HeadDeadline::new(conn, requests, self.settings.header_read_timeout);
                match watcher
                    .watch(conn, |conn| conn.conn().graceful_shutdown())
                    .await
                {
                    Some(ended) => ended.map_err(|error| error.to_string()),
                    None => {
                        tracing::debug!(%peer, "no request head within header_read_timeout; closing");
                        Ok(())
                    }
                }
            }
            Protocol::Http2 => {
                let conn = self
                    .builders
                    .http2
                    .serve_connection_with_upgrades(TokioIo::new(io), svc)
                    .into_owned();
                watcher
                    .watch(conn, |conn| conn.graceful_shutdown())
                    .await
                    .map_err(|error| error.to_string())
            }
        };
        if let Err(error) = ended {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}
