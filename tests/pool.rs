//! The upstream connection pool (`proxy::pool`): connections are reused, an
//! idle connection the upstream closed is replaced without the client seeing
//! an error, an upstream that restarts is reconnected to, and several
//! upstreams keep pools of their own. Real sockets; the upstreams here count
//! the connections they accept.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{base_config, get, Proxy};

/// A minimal HTTP/1.1 upstream on `listener`: answers every request on a
/// connection with `200 name`, keeps the connection for at most `keep`
/// requests, then closes it (as a server with a small `keepalive_requests`,
/// or one that closes idle connections, does). Counts accepted connections.
struct Counting {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
    /// The connections' tasks: aborted with the server, so a stop closes
    /// every open connection, as a restarted process would.
    open: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Counting {
    async fn start(name: &'static str, keep: usize) -> Counting {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(listener, name, keep)
    }

    async fn start_on(addr: SocketAddr, name: &'static str, keep: usize) -> Counting {
        let listener = TcpListener::bind(addr).await.expect("bind again");
        Self::serve(listener, name, keep)
    }

    fn serve(listener: TcpListener, name: &'static str, keep: usize) -> Counting {
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (counted, tasks) = (connections.clone(), open.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let handle = tokio::spawn(answer(stream, name, keep));
                if let Ok(mut tasks) = tasks.lock() {
                    tasks.push(handle);
                }
            }
        });
        Counting {
            addr,
            connections,
            task,
            open,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        self.task.abort();
        if let Ok(tasks) = self.open.lock() {
            for task in tasks.iter() {
                task.abort();
            }
        }
    }
}

/// Answers up to `keep` requests (heads only: these tests send no bodies),
/// then closes without a word: the client learns it only on its next request.
async fn answer(mut stream: TcpStream, name: &'static str, keep: usize) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..keep {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let end = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(buf.len(), |at| at + 4);
        buf.drain(..end);
        let body = name.as_bytes();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n",
            body.len()
        );
        if stream.write_all(head.as_bytes()).await.is_err() || stream.write_all(body).await.is_err()
        {
            return;
        }
    }
}

/// A public proxy in front of `default`, with `named` upstreams at `/NAME`.
fn config(default: &Counting, named: &[(&str, &Counting)]) -> String {
    let mut extra = String::new();
    for (name, up) in named {
        extra.push_str(&format!(
            "\n[upstreams.{name}]\nurl = \"{}\"\n\n[[route]]\npath = \"/{name}\"\nauth = \"public\"\nupstream = \"{name}\"\n",
            up.url()
        ));
    }
    extra.push_str("\n[[route]]\npath = \"/\"\nauth = \"public\"\n");
    base_config(&default.url(), &extra)
}

async fn ok(proxy: &Proxy, path: &str) -> String {
    let (status, _, body) = get(&proxy.url(path), &[]).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

#[tokio::test]
async fn connections_are_reused_across_requests() {
    let up = Counting::start("app", usize::MAX).await;
    let proxy = Proxy::start(&config(&up, &[])).await;
    for _ in 0..20 {
        assert_eq!(ok(&proxy, "/x").await, "app");
    }
    // One thread may have opened one; the test client's own connections vary.
    assert!(
        up.connections() <= 2,
        "{} connections for 20 sequential requests",
        up.connections()
    );
}

/// An upstream that closes a connection after each request without saying so
/// (no `Connection: close`): the next request finds the idle connection dead,
/// hyper hands it back unsent, and it goes out on a new connection.
#[tokio::test]
async fn an_idle_connection_the_upstream_closed_is_replaced_unseen() {
    let up = Counting::start("app", 1).await;
    let proxy = Proxy::start(&config(&up, &[])).await;
    for i in 0..30 {
        assert_eq!(ok(&proxy, &format!("/x{i}")).await, "app");
        if i % 3 == 0 {
            // Give the close time to arrive, so some sends find it first.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(
        up.connections() >= 30,
        "each request needed its own connection"
    );
}

#[tokio::test]
async fn an_upstream_that_restarts_is_reconnected_to() {
    let up = Counting::start("before", usize::MAX).await;
    let addr = up.addr;
    let proxy = Proxy::start(&config(&up, &[])).await;
    for _ in 0..5 {
        assert_eq!(ok(&proxy, "/x").await, "before");
    }
    drop(up); // stops accepting; open connections die with their tasks' sockets
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, _, _) = get(&proxy.url("/x"), &[]).await;
    assert!(
        status == StatusCode::BAD_GATEWAY || status == StatusCode::OK,
        "down: {status}"
    );
    let again = Counting::start_on(addr, "after", usize::MAX).await;
    for _ in 0..5 {
        assert_eq!(ok(&proxy, "/x").await, "after");
    }
    assert!(again.connections() >= 1);
}

#[tokio::test]
async fn several_upstreams_keep_pools_of_their_own() {
    let default = Counting::start("default", usize::MAX).await;
    let ups: Vec<Counting> = futures_util::future::join_all(
        ["a", "b", "c", "d", "e"].map(|name| Counting::start(name, usize::MAX)),
    )
    .await;
    let names = ["a", "b", "c", "d", "e"];
    let named: Vec<(&str, &Counting)> = names.iter().copied().zip(ups.iter()).collect();
    let proxy = Proxy::start(&config(&default, &named)).await;
    for round in 0..6 {
        for name in names {
            assert_eq!(ok(&proxy, &format!("/{name}/r{round}")).await, name);
        }
        assert_eq!(ok(&proxy, "/x").await, "default");
    }
    for (name, up) in names.iter().zip(&ups) {
        assert!(
            (1..=2).contains(&up.connections()),
            "{name}: {} connections for 6 requests",
            up.connections()
        );
    }
    let rt = proxy
        .running
        .as_ref()
        .expect("running")
        .state
        .runtime
        .load_full();
    let idle: usize = rt.upstreams.iter().map(|u| u.idle_connections()).sum();
    assert!(idle >= names.len(), "{idle} idle connections kept");
}
