//! A real `redis-server` per test, and a deployment of several proxy replicas
//! sharing it: the echo app, the development provider, Redis, and N proxies with
//! one public URL (as behind a load balancer) and one clock.

use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::StatusCode;

use portcullis::clock::ManualClock;
use portcullis::config;
use portcullis::server::{self, Options, Running};
use portcullis_devidp as devidp;

use super::stack::{free_port, Browser, ROUTES};
use super::{init, Echo};

// === redis-server ===

/// A `redis-server` on a free loopback port, without persistence (`--save ""
/// --appendonly no`), in a temp dir. It runs under a shell that SIGKILLs it when
/// the shell's stdin closes: dropping this value (or the test process dying) ends it.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    running: Option<(Child, ChildStdin)>,
}

impl RedisServer {
    /// Starts a server and waits until it accepts connections.
    ///
    /// # Panics
    /// With an install hint when `redis-server` is missing.
    pub fn start() -> RedisServer {
        assert_installed();
        let mut server = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir for redis-server"),
            running: None,
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL, a crash) and waits until its port is closed.
    pub fn kill(&mut self) {
        if let Some((mut shell, stdin)) = self.running.take() {
            drop(stdin); // the shell's `read` returns and it kills redis-server
            let _ = shell.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "redis-server did not die");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same port (empty: nothing was persisted).
    pub fn restart(&mut self) {
        self.kill();
        let script = format!(
            "exec 3<&0; redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no \
             --dir '{dir}' --loglevel warning </dev/null & pid=$!; read _ <&3; kill -9 $pid; wait $pid 2>/dev/null; exit 0",
            port = self.port,
            dir = self.dir.path().display()
        );
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let stdin = shell.stdin.take().expect("piped stdin");
        self.running = Some((shell, stdin));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Makes the server hold every client's commands for `how_long` (CLIENT PAUSE):
    /// a stalled server, connections open.
    pub async fn pause(&self, how_long: Duration) {
        let mut conn = self.connection().await;
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(how_long.as_millis() as u64)
            .arg("ALL")
            .query_async(&mut conn)
            .await
            .expect("CLIENT PAUSE");
    }

    /// `SET key value PX millis`, as another process would.
    pub async fn set_px(&self, key: &str, value: &str, millis: u64) {
        let mut conn = self.connection().await;
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(millis)
            .query_async(&mut conn)
            .await
            .expect("SET PX");
    }

    /// How many times the server has run `command` (lowercase), scripts' calls
    /// included (`INFO commandstats`).
    pub async fn command_calls(&self, command: &str) -> u64 {
        let mut conn = self.connection().await;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .expect("INFO commandstats");
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse().expect("calls is a number"))
    }

    async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to redis")
    }

    /// Every key with its value, as text: UTF-8 values as they are, binary ones
    /// (sealed records) as hex, so a search for a token prefix cannot match noise.
    pub async fn dump(&self) -> Vec<(String, String)> {
        let mut conn = self.connection().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        let mut out = Vec::new();
        for key in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("TYPE");
            let read = match kind.as_str() {
                "hash" => redis::cmd("HGETALL").arg(&key).clone(),
                "set" => redis::cmd("SMEMBERS").arg(&key).clone(),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .clone(),
                _ => redis::cmd("GET").arg(&key).clone(),
            };
            let values: Vec<Vec<u8>> = match kind.as_str() {
                "string" => vec![read.query_async(&mut conn).await.expect("GET")],
                _ => read.query_async(&mut conn).await.expect("read"),
            };
            let text: Vec<String> = values.iter().map(|v| printable(v)).collect();
            out.push((key, text.join(" ")));
        }
        out
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some((mut shell, stdin)) = self.running.take() {
            drop(stdin);
            let _ = shell.wait();
        }
    }
}

fn printable(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn assert_installed() {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "redis-server is not installed: the Redis tests need it \
         (Debian/Ubuntu: apt-get install -y redis-server; .ci/run installs it)"
    );
}

// === replicas ===

/// Echo app + dev provider + Redis + proxy replicas sharing sessions.
pub struct Replicas {
    pub echo: Echo,
    pub idp: devidp::DevIdp,
    pub redis: RedisServer,
    pub clock: Arc<ManualClock>,
    pub proxies: Vec<Running>,
    /// The third-party service `svc` (SPEC §13), when started with one.
    pub service: Option<devidp::DevIdp>,
    /// The public URL every replica is configured with (replica 0's address).
    pub public: String,
    dir: tempfile::TempDir,
    toml: String,
}

impl Replicas {
    /// `n` replicas of one configuration (store = "redis", one shared secret).
    pub async fn start(n: usize) -> Replicas {
        Self::start_with(n, "").await
    }

    /// `n` replicas with the third-party service `svc` as `[connections.svc]`
    /// and `[upstreams.svc]`, and `extra` TOML (routes using it).
    pub async fn start_with_service(n: usize, extra: &str) -> Replicas {
        Self::start_with(n, extra).await
    }

    async fn start_with(n: usize, extra: &str) -> Replicas {
        init();
        let redis = RedisServer::start();
        let echo = Echo::start().await;
        let first_port = free_port();
        let public = format!("http://127.0.0.1:{first_port}");
        let mut client = devidp::Client::new(
            "portcullis",
            "s3cret-of-the-client",
            format!("{public}/_auth/callback"),
        );
        client.post_logout_redirect_uris = vec![format!("{public}/")];
        client.backchannel_logout_uri = Some(format!("{public}/_auth/backchannel-logout"));
        let idp = devidp::start(devidp::Config::new(client))
            .await
            .expect("dev provider starts");
        let (service, service_tables) = if extra.is_empty() {
            (None, String::new())
        } else {
            let options = super::stack::ServiceOptions::named("svc");
            let service = super::stack::start_service(&options, &public).await;
            let tables = super::stack::service_tables(&options, &service);
            (service.idp, format!("{tables}\n{extra}"))
        };
        let secret = STANDARD.encode(rand::random::<[u8; 32]>());
        let toml = format!(
            r#"
[server]
listen = "127.0.0.1:LISTEN_PORT"
public_url = "{public}"

[admin]
listen = "127.0.0.1:0"

[upstream]
url = "{upstream}"

[oidc]
issuer = "{issuer}"
client_id = "portcullis"
client_secret = "s3cret-of-the-client"
scopes = ["openid", "profile", "email", "offline_access"]

[session]
store = "redis"
redis_url = "{redis_url}"
secret = "{secret}"

{ROUTES}

{service_tables}
"#,
            upstream = echo.url(),
            issuer = idp.issuer(),
            redis_url = redis.url(),
        );
        let mut replicas = Replicas {
            echo,
            idp,
            redis,
            clock: Arc::new(ManualClock::new(now())),
            proxies: Vec::new(),
            service,
            public,
            dir: tempfile::tempdir().expect("tempdir"),
            toml,
        };
        for i in 0..n {
            let port = if i == 0 { first_port } else { free_port() };
            let proxy = replicas.start_proxy(port).await;
            replicas.proxies.push(proxy);
        }
        replicas
    }

    async fn start_proxy(&self, port: u16) -> Running {
        let path = self.dir.path().join(format!("portcullis-{port}.toml"));
        let toml = self.toml.replace("LISTEN_PORT", &port.to_string());
        std::fs::write(&path, toml).expect("write config");
        let config = config::load_with_env(&path, &[])
            .unwrap_or_else(|e| panic!("replica config invalid:\n{e}"));
        let running = server::start_with(
            config,
            Options {
                clock: self.clock.clone(),
            },
        )
        .await
        .expect("replica starts");
        wait_until(running.admin_addr, StatusCode::OK).await;
        running
    }

    /// Stops replica `i` and starts a fresh process state in its place (on a new
    /// port: the public URL, and so the cookie, stay the same).
    pub async fn restart(&mut self, i: usize) {
        let old = self.proxies.remove(i);
        old.shutdown().await;
        let proxy = self.start_proxy(free_port()).await;
        self.proxies.insert(i, proxy);
    }

    /// `path` on replica `i`.
    pub fn url(&self, i: usize, path: &str) -> String {
        format!("http://{}{}", self.proxies[i].public_addr, path)
    }

    pub fn readyz(&self, i: usize) -> String {
        format!("http://{}/readyz", self.proxies[i].admin_addr)
    }

    /// A browser signed in as `user` through replica `i`.
    pub async fn login(&self, i: usize, user: &str) -> Browser {
        let mut browser = Browser::default();
        let landed = browser.sign_in(&self.url(i, "/whoami"), user).await;
        assert_eq!(
            landed.status,
            StatusCode::OK,
            "sign-in as {user} lands on the app: {}",
            landed.body
        );
        browser
    }

    /// Moves every replica's clock and the provider's.
    pub fn advance(&self, secs: i64) {
        self.clock.advance(secs);
        let by = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
        self.idp.advance_clock(by);
        if let Some(service) = &self.service {
            service.advance_clock(by);
        }
    }
}

/// Polls an admin `/readyz` until it answers `status` (10 s at most).
pub async fn wait_until(admin: SocketAddr, status: StatusCode) {
    let url = format!("http://{admin}/readyz");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = super::get(&url, &[]).await.0;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {got}, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
