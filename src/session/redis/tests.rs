//! The Redis store against a real `redis-server`: the conformance suite every store
//! passes, then what only Redis has (encryption at rest, TTLs, leases, outages).
//!
//! The suite runs here, in the library's unit tests, because the suite and the
//! `ManualClock` factory are test-only items of the library that the integration
//! binary cannot see. One server serves the whole test binary; every store gets a
//! key prefix of its own, so cases run in parallel without seeing each other.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ::redis::AsyncCommands;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::*;
use crate::clock::ManualClock;
use crate::session::conformance::{self, fixture, key, load, save, session, unique, START, TTL};

// With the cache up, so its hits are held to the suite too.
conformance::session_store_conformance!(|clock: Arc<ManualClock>| async move {
    trusted(store_on(clock, &[secret(1)])).await
});

/// The suite once more with the cache off: every load reads Redis.
mod uncached {
    use super::*;

    conformance::session_store_conformance!(|clock: Arc<ManualClock>| async move {
        RedisStore::with_options(
            &target(),
            &[secret(1)],
            clock,
            RedisOptions {
                cache_capacity: 0,
                ..options(&unique("uncached"))
            },
        )
        .expect("redis store")
    });
}

// === a redis-server for this test binary ===

/// A `redis-server` on a free loopback port, without persistence, in a temp dir.
///
/// It runs under a shell that kills it when its stdin closes: the pipe's write end
/// lives in this process, so the server ends with the test binary, however that ends.
struct TestServer {
    port: u16,
    _dir: tempfile::TempDir,
    _guard: Child,
}

fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(start_server)
}

fn start_server() -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir for redis-server");
    let port = free_port();
    let script = format!(
        "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no \
         --dir '{dir}' --loglevel warning & pid=$!; read _; kill $pid; wait $pid 2>/dev/null",
        dir = dir.path().display()
    );
    assert_redis_installed();
    let guard = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start redis-server");
    wait_until_listening(port);
    TestServer {
        port,
        _dir: dir,
        _guard: guard,
    }
}

fn assert_redis_installed() {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "redis-server is not installed: the Redis store tests need it \
         (Debian/Ubuntu: apt-get install -y redis-server; CI installs it)"
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn wait_until_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server did not start listening on port {port}");
}

fn target() -> Target {
    Target::Standalone(format!("redis://127.0.0.1:{}/", server().port))
}

fn options(prefix: &str) -> RedisOptions {
    RedisOptions {
        prefix: prefix.to_owned(),
        ..RedisOptions::default()
    }
}

fn secret(byte: u8) -> Secret {
    Secret::new(STANDARD.encode([byte; 32]))
}

/// An empty store with a prefix of its own.
fn store_on(clock: Arc<ManualClock>, secrets: &[Secret]) -> RedisStore {
    store_with_prefix(clock, secrets, &unique("test"))
}

fn store_with_prefix(clock: Arc<ManualClock>, secrets: &[Secret], prefix: &str) -> RedisStore {
    RedisStore::with_options(&target(), secrets, clock, options(prefix)).expect("redis store")
}

/// `store` once its cache is consulted (its listener subscribed).
async fn trusted(store: RedisStore) -> RedisStore {
    wait_for(&store, true).await;
    store
}

/// Waits until `store`'s cache is (or is no longer) consulted; panics after 10 s.
async fn wait_for(store: &RedisStore, is_trusted: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.cache_stats().is_trusted != is_trusted {
        assert!(
            Instant::now() < deadline,
            "the cache never became {}",
            if is_trusted { "trusted" } else { "untrusted" }
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Loads `k` from `store` until `done` holds for what it returns, for at most
/// one second; returns how long that took.
async fn until_loaded(
    store: &RedisStore,
    k: &SessionKey,
    done: impl Fn(Option<&Session>) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        if done(load(store, k).await.as_ref()) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the change was not seen within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A plain client to look at what the store wrote.
async fn raw() -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(format!("redis://127.0.0.1:{}/", server().port))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// Every key under `store`'s prefix with a printable rendering of its value.
async fn dump(store: &RedisStore) -> BTreeMap<String, String> {
    let mut conn = raw().await;
    let pattern = format!(
        "{}*",
        store.names.prefix().replace('{', "\\{").replace('}', "\\}")
    );
    let keys: Vec<String> = conn.keys(pattern).await.expect("KEYS");
    let mut out = BTreeMap::new();
    for k in keys {
        let kind: String = ::redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .expect("TYPE");
        let value: ::redis::Value = match kind.as_str() {
            "hash" => conn.hgetall(&k).await,
            "set" => conn.smembers(&k).await,
            "zset" => conn.zrange_withscores(&k, 0, -1).await,
            _ => conn.get(&k).await,
        }
        .expect("read value");
        out.insert(k, format!("{value:?}"));
    }
    out
}

// === encryption at rest ===

#[tokio::test]
async fn a_dump_holds_no_token_and_no_personal_claim() {
    let (_, store) = fixture(&|clock| async move { store_on(clock, &[secret(1)]) }).await;
    let s = session(&unique("alice-sub"), Some(&unique("sid")), START);
    save(&store, &key(), &s, TTL).await;

    let dump = dump(&store).await;

    assert!(dump.len() >= 4, "record, two indexes, expiry set: {dump:?}");
    let secrets = [
        s.access_token.clone().expect("access"),
        s.refresh_token.clone().expect("refresh"),
        s.id_token.clone(),
        s.identity.sub.clone(),
        s.identity.email.clone().expect("email"),
        s.sid.clone().expect("sid"),
        "Alice Example".to_owned(),
    ];
    for (k, v) in &dump {
        for secret in &secrets {
            assert!(!k.contains(secret.as_str()), "key {k} holds {secret}");
            assert!(!v.contains(secret.as_str()), "value of {k} holds {secret}");
        }
    }
}

#[tokio::test]
async fn a_record_moved_to_another_key_does_not_open() {
    let (_, store) = fixture(&|clock| async move { store_on(clock, &[secret(1)]) }).await;
    let (from, to) = (key(), key());
    let s = session(&unique("sub"), None, START);
    save(&store, &from, &s, TTL).await;
    save(&store, &to, &session(&unique("sub"), None, START), TTL).await;

    let mut conn = raw().await;
    let sealed: Vec<u8> = conn
        .hget(store.names.record(&from), "d")
        .await
        .expect("HGET");
    let _: () = conn
        .hset(store.names.record(&to), "d", sealed)
        .await
        .expect("HSET");

    assert_eq!(load(&store, &to).await, None, "moved record opened");
    assert_eq!(load(&store, &from).await, Some(s));
}

#[tokio::test]
async fn rotated_secrets_still_open_and_find_older_sessions() {
    let prefix = unique("rotation");
    let clock = Arc::new(ManualClock::new(START));
    let old = store_with_prefix(clock.clone(), &[secret(1)], &prefix);
    let rotated = store_with_prefix(clock.clone(), &[secret(2), secret(1)], &prefix);
    let stranger = store_with_prefix(clock, &[secret(3)], &prefix);
    let k = key();
    let (sub, sid) = (unique("sub"), unique("sid"));
    let s = session(&sub, Some(&sid), START);
    save(&old, &k, &s, TTL).await;

    assert_eq!(load(&rotated, &k).await, Some(s.clone()));
    assert_eq!(load(&stranger, &k).await, None, "an unknown key opened it");
    assert_eq!(rotated.delete_by_sid(&sid).await.expect("by sid"), 1);

    save(&old, &k, &s, TTL).await;
    assert_eq!(rotated.delete_by_sub(&sub).await.expect("by sub"), 1);
    assert_eq!(load(&old, &k).await, None);
}

// === nothing accumulates ===

#[tokio::test]
async fn every_key_expires_with_its_session() {
    let (_, store) = fixture(&|clock| async move { store_on(clock, &[secret(1)]) }).await;
    let ttl = Duration::from_secs(600);
    save(
        &store,
        &key(),
        &session(&unique("sub"), Some(&unique("sid")), START),
        ttl,
    )
    .await;

    let mut conn = raw().await;
    let dump = dump(&store).await;
    for k in dump.keys() {
        let pttl: i64 = conn.pttl(k).await.expect("PTTL");
        assert!(
            pttl > 590_000 && pttl <= 600_000,
            "{k} has PTTL {pttl}, expected about {ttl:?}"
        );
    }
}

#[tokio::test]
async fn deleting_leaves_no_key_behind() {
    let (_, store) = fixture(&|clock| async move { store_on(clock, &[secret(1)]) }).await;
    let (sub, sid) = (unique("sub"), unique("sid"));
    let (a, b) = (key(), key());
    save(&store, &a, &session(&sub, Some(&sid), START), TTL).await;
    save(&store, &b, &session(&sub, None, START), TTL).await;
    store.delete(&a).await.expect("delete");
    store.delete_by_sub(&sub).await.expect("delete_by_sub");

    let left = dump(&store).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

// === leases ===

#[tokio::test]
async fn a_lease_has_one_holder_until_released() {
    let (_, store) = fixture(&|clock| async move { store_on(clock, &[secret(1)]) }).await;
    let k = key();
    let ttl = Duration::from_secs(15);

    let first = store.try_lease(&k, ttl).await.expect("try").expect("free");
    assert!(store.try_lease(&k, ttl).await.expect("try").is_none());
    assert!(store.is_leased(&k).await.expect("exists"));
    assert!(store.renew_lease(&first, ttl).await.expect("renew"));

    // Someone else's token neither renews nor releases it.
    let forged = Lease::shared(k, "not-the-holder".into());
    assert!(!store.renew_lease(&forged, ttl).await.expect("renew"));
    store.release_lease(&forged).await.expect("release");
    assert!(store.is_leased(&k).await.expect("exists"));

    store.release_lease(&first).await.expect("release");
    assert!(!store.is_leased(&k).await.expect("exists"));
    let second = store.try_lease(&k, ttl).await.expect("try");
    assert!(second.is_some(), "released lease not free");
}

#[tokio::test]
async fn an_expired_lease_is_free_and_cannot_be_renewed() {
    let (_, store) = fixture(&|clock| async move { store_on(clock, &[secret(1)]) }).await;
    let k = key();
    let lease = store
        .try_lease(&k, Duration::from_millis(50))
        .await
        .expect("try")
        .expect("free");
    tokio::time::sleep(Duration::from_millis(120)).await; // Redis's own clock: no way around it
    assert!(!store.is_leased(&k).await.expect("exists"));
    assert!(!store
        .renew_lease(&lease, Duration::from_secs(1))
        .await
        .expect("renew"));
}

// === outages ===

#[tokio::test]
async fn an_unreachable_redis_is_unavailable_quickly() {
    let dead = Target::Standalone(format!("redis://127.0.0.1:{}/", free_port()));
    let store = RedisStore::with_options(
        &dead,
        &[secret(1)],
        Arc::new(ManualClock::new(START)),
        RedisOptions {
            timeout: Duration::from_millis(500),
            ..options("dead")
        },
    )
    .expect("built without connecting");
    let started = Instant::now();
    let error = store.load(&key()).await.expect_err("no server");
    assert!(matches!(error, SessionError::Unavailable(_)), "{error:?}");
    assert!(store.ping().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn debug_output_never_shows_a_redis_url() {
    let secret_url = "rediss://user:hunter2@redis.internal:6380/";
    for target in [
        Target::parse(secret_url).expect("standalone"),
        Target::parse(&format!("{secret_url}?cluster=true")).expect("cluster"),
    ] {
        assert!(!format!("{target:?}").contains("hunter2"));
    }
}

#[test]
fn a_store_without_a_secret_is_refused() {
    let error = RedisStore::with_options(
        &Target::Standalone("redis://127.0.0.1:1/".into()),
        &[],
        Arc::new(ManualClock::new(START)),
        options("p"),
    )
    .err()
    .expect("refused");
    assert!(matches!(error, RedisStoreError::NoSecret));
}

// === Redis Cluster ===

/// The same suite against a three-master Redis Cluster: the scripts' keys share
/// one hash tag, so they run in one slot whichever node owns it, and the client
/// follows the cluster's redirections.
mod cluster {
    use super::*;

    conformance::session_store_conformance!(|clock: Arc<ManualClock>| async move {
        cluster_store(clock)
    });

    #[tokio::test]
    async fn a_cluster_store_reads_redis_every_time() {
        let store = cluster_store(Arc::new(ManualClock::new(START)));
        let k = key();
        save(&store, &k, &session(&unique("sub"), None, START), TTL).await;
        for _ in 0..3 {
            assert!(load(&store, &k).await.is_some());
        }
        assert_eq!(store.cache_stats(), CacheStats::default(), "no cache");
    }

    #[tokio::test]
    async fn leases_work_on_a_cluster() {
        let store = cluster_store(Arc::new(ManualClock::new(START)));
        let k = key();
        let ttl = Duration::from_secs(15);
        let lease = store.try_lease(&k, ttl).await.expect("try").expect("free");
        assert!(store.try_lease(&k, ttl).await.expect("try").is_none());
        store.release_lease(&lease).await.expect("release");
        assert!(!store.is_leased(&k).await.expect("exists"));
    }

    /// A store on the test cluster under a prefix of its own.
    fn cluster_store(clock: Arc<ManualClock>) -> RedisStore {
        RedisStore::with_options(
            &cluster_target(),
            &[secret(1)],
            clock,
            options(&unique("cluster")),
        )
        .expect("cluster store")
    }

    fn cluster_target() -> Target {
        let ports = cluster().ports;
        Target::Cluster(
            ports
                .iter()
                .map(|port| format!("redis://127.0.0.1:{port}/"))
                .collect(),
        )
    }

    struct TestCluster {
        ports: [u16; 3],
        _dir: tempfile::TempDir,
        _guard: Child,
    }

    fn cluster() -> &'static TestCluster {
        static CLUSTER: OnceLock<TestCluster> = OnceLock::new();
        CLUSTER.get_or_init(start_cluster)
    }

    /// Three masters, no replicas; the cluster bus on ports of its own
    /// (`--cluster-port`), since port + 10000 may not be free or valid.
    fn start_cluster() -> TestCluster {
        assert_redis_installed();
        let dir = tempfile::tempdir().expect("tempdir for the cluster");
        let ports = [free_port(), free_port(), free_port()];
        let mut script = String::new();
        for (i, port) in ports.iter().enumerate() {
            let node_dir = dir.path().join(format!("node{i}"));
            std::fs::create_dir(&node_dir).expect("node dir");
            script.push_str(&format!(
                "redis-server --port {port} --cluster-port {bus} --bind 127.0.0.1 \
                 --cluster-enabled yes --cluster-config-file nodes.conf \
                 --cluster-node-timeout 2000 --save '' --appendonly no \
                 --dir '{dir}' --loglevel warning & p{i}=$!; ",
                bus = free_port(),
                dir = node_dir.display()
            ));
        }
        script.push_str("read _; kill $p0 $p1 $p2; wait 2>/dev/null");
        let guard = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the cluster's redis-servers");
        for port in ports {
            wait_until_listening(port);
        }
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(ports.iter().map(|port| format!("127.0.0.1:{port}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        assert!(created.success(), "redis-cli --cluster create failed");
        wait_for_cluster_ok(ports[0]);
        TestCluster {
            ports,
            _dir: dir,
            _guard: guard,
        }
    }

    fn wait_for_cluster_ok(port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let info = Command::new("redis-cli")
                .args(["-p", &port.to_string(), "cluster", "info"])
                .output()
                .expect("redis-cli cluster info");
            if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the test cluster never reached cluster_state:ok");
    }
}

// === TLS ===

/// `rediss://` against a TLS-only `redis-server` whose certificate is trusted
/// through [`RedisOptions::tls_roots_pem`]: the client's rustls runs on the
/// process's one crypto provider (aws-lc-rs; STACK.md trap 1), and a server
/// certificate nobody vouches for is refused.
mod tls {
    use super::*;

    struct TlsServer {
        port: u16,
        cert_pem: String,
        _dir: tempfile::TempDir,
        _guard: Child,
    }

    fn tls_server() -> &'static TlsServer {
        static SERVER: OnceLock<TlsServer> = OnceLock::new();
        SERVER.get_or_init(start_tls_server)
    }

    fn start_tls_server() -> TlsServer {
        assert_redis_installed();
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("self-signed");
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        let port = free_port();
        let script = format!(
            "redis-server --port 0 --tls-port {port} --bind 127.0.0.1 \
             --tls-cert-file '{cert}' --tls-key-file '{key}' --tls-ca-cert-file '{cert}' \
             --tls-auth-clients no --save '' --appendonly no --dir '{dir}' \
             --loglevel warning & pid=$!; read _; kill $pid; wait $pid 2>/dev/null",
            cert = cert_path.display(),
            key = key_path.display(),
            dir = dir.path().display()
        );
        let guard = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server with TLS");
        wait_until_listening(port);
        TlsServer {
            port,
            cert_pem: cert.pem(),
            _dir: dir,
            _guard: guard,
        }
    }

    fn tls_store(roots: Option<Vec<u8>>) -> RedisStore {
        let server = tls_server();
        let target =
            Target::parse(&format!("rediss://localhost:{}/", server.port)).expect("rediss URL");
        RedisStore::with_options(
            &target,
            &[secret(1)],
            Arc::new(ManualClock::new(START)),
            RedisOptions {
                tls_roots_pem: roots,
                timeout: Duration::from_secs(2),
                ..options(&unique("tls"))
            },
        )
        .expect("tls store")
    }

    #[tokio::test]
    async fn sessions_round_trip_over_tls_with_a_trusted_certificate() {
        let store = tls_store(Some(tls_server().cert_pem.clone().into_bytes()));
        store.ping().await.expect("ping over TLS");
        let k = key();
        let s = session(&unique("sub"), Some(&unique("sid")), START);
        save(&store, &k, &s, TTL).await;
        assert_eq!(load(&store, &k).await, Some(s));
    }

    #[tokio::test]
    async fn an_untrusted_server_certificate_is_refused() {
        let store = tls_store(None); // the system's roots do not know our test CA
        let error = store.ping().await.expect_err("handshake must fail");
        assert!(matches!(error, SessionError::Unavailable(_)), "{error:?}");
    }
}

// === the session cache ===

/// Two stores on one prefix, as two replicas, both with their cache up.
async fn replicas(server: Option<&TestServer>) -> (RedisStore, RedisStore) {
    let prefix = unique("replicas");
    let target = match server {
        Some(server) => Target::Standalone(format!("redis://127.0.0.1:{}/", server.port)),
        None => target(),
    };
    let build = || {
        RedisStore::with_options(
            &target,
            &[secret(1)],
            Arc::new(ManualClock::new(START)),
            options(&prefix),
        )
        .expect("redis store")
    };
    (trusted(build()).await, trusted(build()).await)
}

/// Loads `k` until the cache answers (the first load reads Redis; a write's
/// own message, still on its way, may drop that copy once more); at most 1 s.
async fn cached(store: &RedisStore, k: &SessionKey) -> Option<Session> {
    let started = Instant::now();
    loop {
        let hits = store.cache_stats().hits;
        let loaded = load(store, k).await;
        if store.cache_stats().hits > hits {
            return loaded;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "never served from the cache: {:?}",
            store.cache_stats()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn a_busy_session_is_read_from_redis_once() {
    let store = trusted(store_on(Arc::new(ManualClock::new(START)), &[secret(1)])).await;
    let k = key();
    let s = session(&unique("sub"), None, START);
    save(&store, &k, &s, TTL).await;
    assert_eq!(cached(&store, &k).await.as_ref(), Some(&s));
    let before = store.cache_stats();
    for _ in 0..100 {
        assert_eq!(load(&store, &k).await.as_ref(), Some(&s));
    }
    let after = store.cache_stats();
    // At most one more read: the save's own message may land after the first hit.
    assert!(after.misses - before.misses <= 1, "{after:?}");
    assert!(after.hits - before.hits >= 99, "{after:?}");
}

#[tokio::test]
async fn a_change_on_another_replica_reaches_the_cache_within_the_bound() {
    let (a, b) = replicas(None).await;
    let k = key();
    let s = session(&unique("sub"), Some(&unique("sid")), START);
    save(&b, &k, &s, TTL).await;
    assert_eq!(cached(&a, &k).await.as_ref(), Some(&s));

    let refreshed = Session {
        refresh_token: Some("rotated".into()),
        ..s.clone()
    };
    save(&b, &k, &refreshed, TTL).await;
    let took = until_loaded(&a, &k, |now| now == Some(&refreshed)).await;
    assert!(took < INVALIDATION_BOUND, "update seen after {took:?}");

    assert_eq!(cached(&a, &k).await.as_ref(), Some(&refreshed));
    b.delete(&k).await.expect("delete");
    let took = until_loaded(&a, &k, |now| now.is_none()).await;
    assert!(took < INVALIDATION_BOUND, "delete seen after {took:?}");
}

#[tokio::test]
async fn a_bulk_delete_on_another_replica_invalidates_every_affected_key() {
    let (a, b) = replicas(None).await;
    let (alice, bob, sid) = (unique("alice"), unique("bob"), unique("sid"));
    let of_sid = [key(), key()];
    let of_sub = [key(), key()];
    let other = key();
    for k in &of_sid {
        save(&b, k, &session(&bob, Some(&sid), START), TTL).await;
    }
    for k in &of_sub {
        save(&b, k, &session(&alice, None, START), TTL).await;
    }
    let kept = session(&bob, None, START);
    save(&b, &other, &kept, TTL).await;
    for k in of_sid.iter().chain(&of_sub).chain([&other]) {
        assert!(cached(&a, k).await.is_some());
    }

    assert_eq!(b.delete_by_sid(&sid).await.expect("by sid"), 2);
    assert_eq!(b.delete_by_sub(&alice).await.expect("by sub"), 2);

    for k in of_sid.iter().chain(&of_sub) {
        let took = until_loaded(&a, k, |now| now.is_none()).await;
        assert!(took < INVALIDATION_BOUND, "seen after {took:?}");
    }
    assert_eq!(
        cached(&a, &other).await,
        Some(kept),
        "an unrelated session went"
    );
}

#[tokio::test]
async fn the_writer_sees_its_own_bulk_delete_at_once() {
    let (a, _) = replicas(None).await;
    let (sub, sid) = (unique("sub"), unique("sid"));
    let (k, j) = (key(), key());
    save(&a, &k, &session(&sub, Some(&sid), START), TTL).await;
    save(&a, &j, &session(&sub, None, START), TTL).await;
    assert!(cached(&a, &k).await.is_some());
    assert!(cached(&a, &j).await.is_some());
    a.delete_by_sid(&sid).await.expect("by sid");
    a.delete_by_sub(&sub).await.expect("by sub");
    // No wait: the store dropped its own copies before returning.
    assert_eq!(load(&a, &k).await, None);
    assert_eq!(load(&a, &j).await, None);
}

/// With no invalidation channel (a Redis user without channel rights, or a
/// subscription killed), every load reads Redis; writes still work; and the cache
/// comes back, empty, once the subscription does.
#[tokio::test]
async fn without_its_channel_the_cache_is_bypassed_until_it_is_back() {
    let server = start_server(); // of its own: this test kills subscriptions
    let (a, b) = replicas(Some(&server)).await;
    let (k, j) = (key(), key());
    let s = session(&unique("sub"), None, START);
    save(&b, &k, &s, TTL).await;
    assert!(cached(&a, &k).await.is_some());

    let mut admin = ::redis::Client::open(format!("redis://127.0.0.1:{}/", server.port))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let acl = |rule: &'static str| {
        let mut cmd = ::redis::cmd("ACL");
        cmd.arg("SETUSER").arg("default").arg(rule);
        cmd
    };
    let _: () = acl("resetchannels")
        .query_async(&mut admin)
        .await
        .expect("ACL SETUSER");
    let _: i64 = ::redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .expect("CLIENT KILL");
    wait_for(&a, false).await;

    // The channel is refused to every replica: writes go through all the same,
    // and a deletion by the other replica is seen at once.
    b.delete(&k).await.expect("delete without channel rights");
    assert_eq!(load(&a, &k).await, None);
    save(&b, &j, &s, TTL).await;
    let before = a.cache_stats();
    for _ in 0..3 {
        assert_eq!(load(&a, &j).await.as_ref(), Some(&s));
    }
    let after = a.cache_stats();
    assert_eq!(after.hits, before.hits, "served from an untrusted cache");
    assert_eq!(after.entries, 0, "cached while the channel was down");

    let _: () = acl("allchannels")
        .query_async(&mut admin)
        .await
        .expect("ACL SETUSER");
    wait_for(&a, true).await;
    assert_eq!(cached(&a, &j).await.as_ref(), Some(&s));
}

/// A subscription that stops answering (a stalled or unreachable server, a
/// half-open connection) cannot prove delivery: within [`INVALIDATION_BOUND`] the
/// cache is no longer consulted, and loads report the outage instead of serving
/// copies that might be stale.
#[tokio::test]
async fn a_stalled_subscription_stops_being_trusted_within_the_bound() {
    let server = start_server(); // of its own: this test pauses every client
    let (a, _) = replicas(Some(&server)).await;
    let k = key();
    save(&a, &k, &session(&unique("sub"), None, START), TTL).await;
    assert!(cached(&a, &k).await.is_some());

    let mut admin = ::redis::Client::open(format!("redis://127.0.0.1:{}/", server.port))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let _: () = ::redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(5_000)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .expect("CLIENT PAUSE");
    let paused = Instant::now();
    wait_for(&a, false).await;
    let took = paused.elapsed();
    assert!(
        took <= INVALIDATION_BOUND + Duration::from_millis(200),
        "still trusted {took:?} into the stall"
    );
    let error = a
        .load(&k)
        .await
        .expect_err("served a copy nobody vouches for");
    assert!(matches!(error, SessionError::Unavailable(_)), "{error:?}");

    wait_for(&a, true).await; // once the pause is over
}

#[tokio::test]
async fn load_fresh_reads_redis_even_when_the_cache_holds_a_copy() {
    let store = trusted(store_on(Arc::new(ManualClock::new(START)), &[secret(1)])).await;
    let k = key();
    let s = session(&unique("sub"), None, START);
    save(&store, &k, &s, TTL).await;
    assert!(cached(&store, &k).await.is_some());

    // Deleted behind the store's back: no script ran, nothing was published.
    let _: i64 = raw().await.del(store.names.record(&k)).await.expect("DEL");
    assert!(
        load(&store, &k).await.is_some(),
        "the cache still holds it (until CACHE_MAX_AGE)"
    );
    let fresh = store.load_fresh(&k).await.expect("load_fresh");
    assert!(fresh.is_none(), "load_fresh served the cached copy");
    assert_eq!(load(&store, &k).await, None, "the stale copy is forgotten");
}

/// A load that misses reads Redis, then caches what it read; an invalidation
/// arriving between the two must win, or the stale copy would be served until
/// it ages out.
#[test]
fn an_invalidation_during_a_load_keeps_its_stale_read_out_of_the_cache() {
    let cache = Cache::new(16);
    cache.set_up(Instant::now());
    let s = Arc::new(session("sub", None, START));
    let (k, j) = (CacheKey::of(&key()), CacheKey::of(&key()));

    let ticket = cache.ticket(k); // before the Redis read
    cache.invalidate(&k); // a change published meanwhile
    cache.insert(ticket, s.clone(), START + 60);
    assert!(
        cache.get(&k).is_none(),
        "a read older than the change was cached"
    );

    let ticket = cache.ticket(k);
    cache.insert(ticket, s.clone(), START + 60);
    assert!(
        cache.get(&k).is_some(),
        "a read after the change must be cached"
    );

    // The subscription lost and regained meanwhile: messages may have been missed.
    let ticket = cache.ticket(j);
    cache.set_down();
    cache.set_up(Instant::now());
    cache.insert(ticket, s.clone(), START + 60);
    assert!(
        cache.get(&j).is_none(),
        "a read from before a reconnect was cached"
    );
    assert!(cache.get(&k).is_none(), "a reconnect must start empty");

    // While down, nothing is cached at all.
    cache.set_down();
    let ticket = cache.ticket(j);
    cache.insert(ticket, s, START + 60);
    cache.set_up(Instant::now());
    assert!(cache.get(&j).is_none());
}

#[test]
fn the_cache_holds_at_most_its_capacity() {
    let cache = Cache::new(3);
    cache.set_up(Instant::now());
    let s = Arc::new(session("sub", None, START));
    for _ in 0..10 {
        let ticket = cache.ticket(CacheKey::of(&key()));
        cache.insert(ticket, s.clone(), START + 60);
    }
    assert_eq!(cache.stats().entries, 3);
}

#[test]
fn published_members_name_the_keys_they_came_from() {
    let k = key();
    assert!(CacheKey::of(&k) == CacheKey::parse(k.hex().as_bytes()).expect("hex"));
    for bad in ["", "zz", &"A".repeat(64), &"0".repeat(63)] {
        assert!(CacheKey::parse(bad.as_bytes()).is_none(), "{bad}");
    }
}

// === connected-account links (SPEC §13) ===

mod links {
    use super::*;
    use crate::session::links::conformance::{link, link_key};
    use crate::session::links::{LinkKey, LinkStore};

    crate::session::links::conformance::link_store_conformance!(async {
        store_on(Arc::new(ManualClock::new(START)), &[secret(1)])
    });

    fn store_at(prefix: &str, secrets: &[Secret]) -> RedisStore {
        store_with_prefix(Arc::new(ManualClock::new(START)), secrets, prefix)
    }

    #[tokio::test]
    async fn a_dump_holds_no_token_no_user_and_no_connection_name() {
        let store = store_at(&unique("links"), &[secret(1)]);
        let sub = unique("alice-sub");
        let key = LinkKey::new("partners", &sub, "github");
        store
            .put_link(&key, &link("gho_access"))
            .await
            .expect("put");
        let shown = format!("{:?}", dump(&store).await);
        for secret_or_name in [
            "gho_access",
            "refresh-of",
            &sub,
            "partners",
            "github",
            "repo",
        ] {
            assert!(
                !shown.contains(secret_or_name),
                "{secret_or_name} in {shown}"
            );
        }
    }

    #[tokio::test]
    async fn a_link_moved_to_another_users_key_does_not_open() {
        let store = store_at(&unique("links"), &[secret(1)]);
        let (victim, attacker) = (link_key(), link_key());
        store
            .put_link(&victim, &link("victims"))
            .await
            .expect("put");
        store
            .put_link(&attacker, &link("attackers"))
            .await
            .expect("put");
        let mut conn = raw().await;
        let from = store.link_name(&victim, 0);
        let to = store.link_name(&attacker, 0);
        let sealed: Vec<u8> = conn.hget(&from, "d").await.expect("HGET");
        let _: () = conn.hset(&to, "d", sealed).await.expect("HSET");
        assert_eq!(store.load_link(&attacker).await.expect("load"), None);
    }

    #[tokio::test]
    async fn links_under_a_rotated_secret_are_found_moved_and_deleted() {
        let prefix = unique("links");
        let old = store_at(&prefix, &[secret(1)]);
        let rotated = store_at(&prefix, &[secret(2), secret(1)]);
        let key = link_key();
        old.put_link(&key, &link("a1")).await.expect("put");

        let loaded = rotated.load_link(&key).await.expect("load").expect("found");
        assert_eq!(loaded.link.access_token, "a1");
        rotated
            .replace_link(&key, &loaded, &link("a2"))
            .await
            .expect("replace")
            .expect("written");
        // Moved under the current secret: the old key is gone, the new one opens.
        assert_eq!(old.load_link(&key).await.expect("load"), None);
        assert_eq!(
            rotated
                .load_link(&key)
                .await
                .expect("load")
                .expect("found")
                .link
                .access_token,
            "a2"
        );

        // A new link under the current secret removes any older copy, so
        // deleting the new one cannot bring the old one back.
        old.put_link(&key, &link("old account")).await.expect("put");
        rotated
            .put_link(&key, &link("new account"))
            .await
            .expect("put");
        let new = rotated.load_link(&key).await.expect("load").expect("found");
        assert!(rotated.delete_link(&key, Some(&new)).await.expect("delete"));
        assert_eq!(
            rotated.load_link(&key).await.expect("load"),
            None,
            "the old copy came back"
        );

        old.put_link(&key, &link("stale copy")).await.expect("put");
        assert!(rotated.delete_link(&key, None).await.expect("delete"));
        assert_eq!(rotated.load_link(&key).await.expect("load"), None);
        assert_eq!(
            old.load_link(&key).await.expect("load"),
            None,
            "a copy was left"
        );
    }

    #[tokio::test]
    async fn a_link_lease_has_one_holder_across_replicas_until_released() {
        let prefix = unique("links");
        let (a, b) = (
            store_at(&prefix, &[secret(1)]),
            store_at(&prefix, &[secret(1)]),
        );
        let key = link_key();
        let ttl = Duration::from_secs(15);
        let held = a
            .try_link_lease(&key, ttl)
            .await
            .expect("try")
            .expect("free");
        assert!(b.try_link_lease(&key, ttl).await.expect("try").is_none());
        let forged = crate::session::LinkLease::shared(key.clone(), "not-the-holder".into());
        b.release_link_lease(&forged).await.expect("release");
        assert!(b.try_link_lease(&key, ttl).await.expect("try").is_none());
        a.release_link_lease(&held).await.expect("release");
        assert!(b.try_link_lease(&key, ttl).await.expect("try").is_some());
    }

    #[tokio::test]
    async fn a_link_lease_frees_itself_after_its_ttl() {
        let store = store_at(&unique("links"), &[secret(1)]);
        let key = link_key();
        let ttl = Duration::from_millis(50);
        let _lost = store
            .try_link_lease(&key, ttl)
            .await
            .expect("try")
            .expect("free");
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(store
            .try_link_lease(&key, ttl)
            .await
            .expect("try")
            .is_some());
    }
}
