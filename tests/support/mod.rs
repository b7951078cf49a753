//! Test harness: a real echo upstream, a real proxy, real sockets, all on
//! `127.0.0.1:0` so tests run in parallel.

#![allow(dead_code)]

pub mod jws;
pub mod redis;
pub mod stack;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Mutex};

use portcullis::config;
use portcullis::server::{self, Running};

pub type TestBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// Installs the process-wide crypto provider once, as `main` does.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

// === Echo upstream ===

/// What the echo upstream saw of one request.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
    /// Trailer fields of a chunked request body.
    #[serde(default)]
    pub trailers: Vec<(String, String)>,
}

impl Seen {
    /// All values of a header (case-insensitive name).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn one(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(
            all.len() <= 1,
            "{name} appears {} times: {all:?}",
            all.len()
        );
        all.first().copied()
    }
}

/// A real HTTP upstream that reports what it received.
///
/// - any path: 200 JSON [`Seen`] (after reading and counting the whole body)
/// - `/slow`: waits 2 s before answering
/// - `/stream-out`: answers with two chunks, the second only after the test says so
/// - `/stream-in`: reports each received chunk's size on a channel as it arrives
/// - `/ws`: a WebSocket echo
/// - `.../respond-with?h=Name:%20value&h=...`: 200 JSON [`Seen`] with each `h` as a
///   response header (an app, or content injected into it, speaking for the proxy)
pub struct Echo {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    /// `METHOD target` of every request received, in order.
    pub requests: Arc<std::sync::Mutex<Vec<String>>>,
    /// Sizes of `/stream-in` chunks as they arrive.
    pub chunks_in: Arc<Mutex<mpsc::UnboundedReceiver<usize>>>,
    /// Releases the second chunk of `/stream-out`.
    pub release_out: mpsc::UnboundedSender<()>,
}

#[derive(Clone)]
struct EchoShared {
    hits: Arc<AtomicUsize>,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
    chunk_tx: mpsc::UnboundedSender<usize>,
    release_rx: Arc<Mutex<mpsc::UnboundedReceiver<()>>>,
}

impl Echo {
    pub async fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (chunk_tx, chunk_rx) = mpsc::unbounded_channel();
        let (release_tx, release_rx) = mpsc::unbounded_channel();
        let shared = EchoShared {
            hits: hits.clone(),
            requests: requests.clone(),
            chunk_tx,
            release_rx: Arc::new(Mutex::new(release_rx)),
        };
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(echo(shared, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Echo {
            addr,
            hits,
            requests,
            chunks_in: Arc::new(Mutex::new(chunk_rx)),
            release_out: release_tx,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// `METHOD target` of every request the upstream received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

async fn echo(shared: EchoShared, mut req: Request<Incoming>) -> Response<TestBody> {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut requests) = shared.requests.lock() {
        requests.push(format!("{} {}", req.method(), req.uri()));
    }
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/ws" => return websocket_echo(&mut req),
        "/slow" => tokio::time::sleep(Duration::from_secs(2)).await,
        "/stream-out" => return stream_out(shared),
        _ => {}
    }
    let seen_head = (
        req.method().to_string(),
        req.uri().to_string(),
        format!("{:?}", req.version()),
        req.headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect::<Vec<_>>(),
    );
    let mut body = req.into_body();
    let mut body_len = 0u64;
    let mut trailers = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(fields) = frame.trailers_ref() {
            trailers.extend(fields.iter().map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            }));
        }
        if let Some(data) = frame.data_ref() {
            body_len += data.len() as u64;
            if path == "/stream-in" {
                let _ = shared.chunk_tx.send(data.len());
            }
        }
    }
    let response_headers = if path.ends_with("/respond-with") {
        requested_headers(&seen_head.1)
    } else {
        Vec::new()
    };
    let json = serde_json::json!({
        "method": seen_head.0,
        "target": seen_head.1,
        "version": seen_head.2,
        "headers": seen_head.3,
        "body_len": body_len,
        "trailers": trailers,
    });
    let mut builder = Response::builder()
        .header("content-type", "application/json")
        .header("connection", "x-upstream-hop")
        .header("x-upstream-hop", "must not reach the client")
        .header("keep-alive", "timeout=5");
    for (name, value) in response_headers {
        builder = builder.header(name, value);
    }
    builder.body(full(json.to_string())).expect("echo response")
}

/// The `h=Name:value` pairs of a `/respond-with` target, as header name and value.
fn requested_headers(target: &str) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "h")
        .filter_map(|(_, v)| {
            let (name, value) = v.split_once(':')?;
            Some((
                http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
                http::HeaderValue::from_str(value.strip_prefix(' ').unwrap_or(value)).ok()?,
            ))
        })
        .collect()
}

fn stream_out(shared: EchoShared) -> Response<TestBody> {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(2);
    tokio::spawn(async move {
        let _ = tx
            .send(Ok(Frame::data(Bytes::from_static(b"first;"))))
            .await;
        let _ = shared.release_rx.lock().await.recv().await;
        let _ = tx
            .send(Ok(Frame::data(Bytes::from_static(b"second"))))
            .await;
    });
    let stream = tokio_stream_from(rx);
    Response::new(BodyExt::boxed(StreamBody::new(stream)))
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + Sync + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn websocket_echo(req: &mut Request<Incoming>) -> Response<TestBody> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let Some(key) = req.headers().get("sec-websocket-key") else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(full("no key"))
            .expect("response");
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(full(""))
        .expect("101 response")
}

pub fn full(text: impl Into<Bytes>) -> TestBody {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

// === Proxy ===

/// A proxy started in-process from a TOML config.
pub struct Proxy {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
}

/// The config every test starts from: loopback listeners on free ports, the given
/// upstream, an OIDC section (not contacted by transport tests), then `extra`.
pub fn base_config(upstream: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://app.test"

[admin]
listen = "127.0.0.1:0"

[upstream]
url = "{upstream}"

[oidc]
issuer = "http://127.0.0.1:9/"
client_id = "portcullis"
client_secret = "test-secret"

{extra}
"#
    )
}

impl Proxy {
    /// Starts a proxy for `toml` (see [`base_config`]).
    pub async fn start(toml: &str) -> Proxy {
        init();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("portcullis.toml");
        std::fs::write(&path, toml).expect("write config");
        let config = config::load_with_env(&path, &[])
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let running = server::start(config).await.expect("proxy starts");
        Proxy {
            addr: running.public_addr,
            admin: running.admin_addr,
            running: Some(running),
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

// === Clients ===

pub fn client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// One HTTP/1.1 connection to `authority` (`host:port`): every request sent on
/// the returned sender goes over it; the task driving it ends when it closes.
pub async fn one_connection<B>(
    authority: &str,
) -> (
    hyper::client::conn::http1::SendRequest<B>,
    tokio::task::JoinHandle<hyper::Result<()>>,
)
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(authority).await.expect("connect");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    (sender, tokio::spawn(connection))
}

/// GET `url` with extra headers; returns status, headers and the body as text.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> (StatusCode, http::HeaderMap, String) {
    let mut b = Request::get(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client()
        .request(b.body(full("")).expect("request"))
        .await
        .expect("request reaches the proxy");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// GET through the proxy and parse what the echo upstream saw.
pub async fn seen(url: &str, headers: &[(&str, &str)]) -> Seen {
    let (status, _, body) = get(url, headers).await;
    assert_eq!(status, StatusCode::OK, "body: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("echo JSON: {e}: {body}"))
}

/// Writes `raw` bytes on a fresh connection and returns everything read until the
/// server closes or 3 s pass.
pub async fn raw(addr: SocketAddr, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(raw).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of the first response in a raw HTTP/1.1 exchange.
pub fn raw_status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

/// A child process killed (and reaped) when dropped, so a failed assertion
/// leaves nothing running.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `text` with the ASCII character at byte `at` changed (`A` to `B`, anything
/// else to `A`): a copy of a token or cookie altered in one place.
pub fn flip_char(text: &str, at: usize) -> String {
    let flipped = if &text[at..=at] == "A" { "B" } else { "A" };
    format!("{}{flipped}{}", &text[..at], &text[at + 1..])
}

/// The query of `url` as decoded `(name, value)` pairs, in order.
pub fn query_pairs(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The status of GET `url`, or `None` when nothing answers (yet).
pub async fn try_status(url: &str) -> Option<StatusCode> {
    let req = Request::get(url).body(full("")).ok()?;
    client().request(req).await.ok().map(|r| r.status())
}
