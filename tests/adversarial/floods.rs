//! Hostile traffic: many and slow connections, HTTP/2 frame floods and
//! WebSocket upgrade abuse. Every loop here is bounded in count and time and
//! talks to loopback only.
//!
//! - HTTP/2 rapid reset (CVE-2023-44487) and CONTINUATION floods (VU#421644,
//!   CVE-2024-27316 and its kin): the connection is shut with GOAWAY or closed,
//!   the upstream is not flooded, and the proxy goes on serving others.
//! - 10,000 concurrent slow connections against the real binary: memory per
//!   connection is bounded and steady, and legitimate users are served.
//! - WebSocket abuse: an upgrade is judged by the rules like any request, and
//!   an upgrade the upstream refuses leaves the connection HTTP, so no raw
//!   tunnel can carry a request past the rules (0ang3el's "WebSocket smuggling").

use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::stack::Stack;
use crate::support::{get, raw, Echo, Proxy};

// === HTTP/2 frames, by hand ===

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const CANCEL: u32 = 0x8;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("small frame");
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

/// HPACK for `GET http://app.test/` from the static table: `:method GET`,
/// `:scheme http`, `:path /`, and `:authority` as a literal with an indexed name.
fn get_root_block() -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x84, 0x01, 0x08];
    block.extend(b"app.test");
    block
}

/// One HPACK literal header field without indexing, with a new name.
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0x00, u8::try_from(name.len()).expect("short name")];
    out.extend(name.as_bytes());
    out.push(u8::try_from(value.len()).expect("short value"));
    out.extend(value.as_bytes());
    out
}

/// Reads frames until the peer closes or `within` passes; returns true if and
/// only if a GOAWAY arrived or the connection was closed.
async fn shut_down_by_peer(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut at = 0;
        while buf.len() >= at + 9 {
            let len = u32::from_be_bytes([0, buf[at], buf[at + 1], buf[at + 2]]) as usize;
            if buf[at + 3] == GOAWAY {
                return true;
            }
            at += 9 + len;
        }
    }
}

async fn h2_connection(proxy: &Proxy) -> TcpStream {
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    stream.write_all(&hello).await.expect("preface");
    stream
}

/// Writes `bytes` in pieces until done or the peer stops reading; returns how
/// many bytes went out.
async fn write_until_refused(stream: &mut TcpStream, bytes: &[u8]) -> usize {
    let mut sent = 0;
    for piece in bytes.chunks(16 * 1024) {
        let wrote = tokio::time::timeout(Duration::from_secs(2), stream.write_all(piece)).await;
        if !matches!(wrote, Ok(Ok(()))) {
            break;
        }
        sent += piece.len();
    }
    sent
}

#[tokio::test]
async fn http2_rapid_reset_is_shut_down_and_does_not_flood_the_upstream() {
    let (echo, proxy) = super::deny_admin().await;
    let mut stream = h2_connection(&proxy).await;
    let attempts: u32 = 5_000;
    let mut flood = Vec::new();
    for i in 0..attempts {
        let id = 2 * i + 1;
        flood.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &get_root_block(),
        ));
        flood.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
    }
    write_until_refused(&mut stream, &flood).await;
    assert!(
        shut_down_by_peer(&mut stream, Duration::from_secs(5)).await,
        "the flooding connection got no GOAWAY"
    );
    let forwarded = echo.hits();
    assert!(
        forwarded < 500,
        "{forwarded} of {attempts} reset streams reached the upstream"
    );
    let (status, _, _) = get(&proxy.url("/after"), &[]).await;
    assert_eq!(status, StatusCode::OK, "others are still served");
}

#[tokio::test]
async fn http2_continuation_flood_is_cut_off() {
    let (echo, proxy) = super::deny_admin().await;
    let mut stream = h2_connection(&proxy).await;
    let mut flood = frame(HEADERS, END_STREAM, 1, &get_root_block());
    let field = literal("x-flood", &"a".repeat(100));
    // 100,000 frames (about 11 MB of header block) that never end the block.
    for _ in 0..100_000 {
        flood.extend(frame(CONTINUATION, 0, 1, &field));
    }
    let sent = write_until_refused(&mut stream, &flood).await;
    assert!(
        sent < flood.len() || shut_down_by_peer(&mut stream, Duration::from_secs(5)).await,
        "the proxy read an endless header block to its end"
    );
    assert_eq!(echo.hits(), 0, "the flooded stream reached the upstream");
    let (status, _, _) = get(&proxy.url("/after"), &[]).await;
    assert_eq!(status, StatusCode::OK, "others are still served");
}

/// The two floods above are refused for what they are: the same frames, well
/// formed and few, are served over the same hand-written HTTP/2.
#[tokio::test]
async fn a_well_formed_hand_written_http2_request_is_served() {
    let (echo, proxy) = super::deny_admin().await;
    let mut stream = h2_connection(&proxy).await;
    let mut request = frame(HEADERS, END_STREAM, 1, &get_root_block());
    request.extend(frame(CONTINUATION, END_HEADERS, 1, &literal("x-ok", "1")));
    stream.write_all(&request).await.expect("request");
    for _ in 0..50 {
        if echo.hits() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the request never reached the upstream");
}

// === Many connections ===

/// Raises this process's open-file limit (children inherit it) as far as the
/// system lets it; returns the soft limit now in force.
fn raise_open_file_limit(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        let raised = libc::rlimit {
            rlim_cur: wanted.max(limit.rlim_cur),
            rlim_max: wanted.max(limit.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            // Not root: go as far as the hard limit allows.
            let soft = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Ten thousand clients that each send half a request head and then nothing
/// (slowloris) against the real binary: each costs a bounded amount of memory,
/// memory stays put while they hang on, and a legitimate user is still served.
#[tokio::test]
async fn ten_thousand_slow_connections_cost_bounded_steady_memory_and_users_are_served() {
    const HOSTILE: usize = 10_000;
    // This process holds the hostile sockets, the proxy their other ends.
    let limit = raise_open_file_limit(65_536);
    assert!(
        limit >= 2 * HOSTILE as u64,
        "the open-file limit is {limit}: raise it (ulimit -n) to run this test"
    );
    let echo = Echo::start().await;
    // A header-read timeout long enough to hold them all, a connection cap
    // above them, and quiet logs (stderr is a pipe nobody reads here).
    let (child, port, _dir) = crate::operate::start_with_server_keys(
        &echo,
        "[[route]]\npath = \"/\"\nauth = \"public\"\n",
        "[log]\nlevel = \"warn\"\n",
        "header_read_timeout = \"60s\"\nmax_connections = 12000",
    );
    let child = crate::support::ChildGuard(child);
    crate::operate::wait_up(port).await;
    let url = format!("http://127.0.0.1:{port}/legit");
    for _ in 0..200 {
        assert_eq!(get(&url, &[]).await.0, StatusCode::OK);
    }
    let before = rss_kib(child.0.id());

    let opening = Instant::now();
    let mut hostile = Vec::with_capacity(HOSTILE);
    // In batches: a full accept queue drops SYNs, and each retry waits a second.
    while hostile.len() < HOSTILE {
        let batch = (HOSTILE - hostile.len()).min(250);
        let opened = futures_util::future::join_all((0..batch).map(|_| slow_client(port))).await;
        hostile.extend(opened);
    }
    let opened_in = opening.elapsed();
    // Let the proxy accept and start reading every one of them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = rss_kib(child.0.id());
    let started = Instant::now();
    for _ in 0..20 {
        let (status, _, _) = get(&url, &[]).await;
        assert_eq!(status, StatusCode::OK, "a legitimate user is served");
    }
    let served_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = rss_kib(child.0.id());
    let per_connection = held.saturating_sub(before) * 1024 / HOSTILE as u64;
    eprintln!(
        "{HOSTILE} slow connections opened in {opened_in:?}; RSS {before} KiB idle, {held} KiB with them ({per_connection} B each), {later} KiB a second later; 20 requests in {served_in:?}"
    );
    // A full accept queue drops SYNs and costs each dropped client a second or more.
    assert!(
        opened_in < Duration::from_secs(15),
        "{HOSTILE} connections took {opened_in:?} to open"
    );
    assert!(
        per_connection <= 32 * 1024,
        "{per_connection} bytes per held connection"
    );
    assert!(
        later <= held + held / 20,
        "memory keeps growing while the connections hang: {held} KiB then {later} KiB"
    );
    assert!(
        served_in < Duration::from_secs(10),
        "legitimate requests took {served_in:?}"
    );
    assert_eq!(
        echo.requests()
            .iter()
            .filter(|r| r.contains("/slow"))
            .count(),
        0
    );
    drop(hostile);
}

/// A client that sends half a request head and then nothing.
///
/// It connects from 127.0.0.2: ten thousand client sockets on 127.0.0.1
/// would take ephemeral ports that tests running beside this one are about
/// to bind for their own listeners (`free_port`), and those would fail with
/// "address in use".
async fn slow_client(port: u16) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 2], 0)))
        .expect("bind 127.0.0.2");
    let mut stream = socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("connect");
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: app.test\r\n")
        .await
        .expect("half a head");
    stream
}

// === WebSocket abuse ===

const WS_HEAD: &str = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[tokio::test]
async fn an_upgrade_is_judged_by_the_rules_like_any_request() {
    let (echo, proxy) = super::deny_admin().await;
    for (path, expected) in [("/admin/ws", 403), ("/secret/ws", 401)] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: app.test\r\nAccept: application/json\r\n{WS_HEAD}\r\n"
        );
        let response = raw(proxy.addr, request.as_bytes()).await;
        assert_eq!(crate::support::raw_status(&response), expected, "{path}");
    }
    assert_eq!(echo.hits(), 0);
    // And where the rules allow it, the same upgrade goes through.
    let request = format!("GET /ws HTTP/1.1\r\nHost: app.test\r\n{WS_HEAD}\r\n");
    let response = raw(proxy.addr, request.as_bytes()).await;
    assert_eq!(crate::support::raw_status(&response), 101, "{response}");
}

/// The upstream refuses the upgrade (here: no `Sec-WebSocket-Key`, so the echo
/// answers 400). A proxy that opened a raw tunnel anyway would carry the next
/// request on the connection straight to the app, past every rule.
#[tokio::test]
async fn a_refused_upgrade_opens_no_tunnel_past_the_rules() {
    let (echo, proxy) = super::deny_admin().await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 1337\r\n\r\n",
        )
        .await
        .expect("upgrade request");
    let mut first = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut first))
        .await
        .expect("an answer")
        .expect("read");
    let first = String::from_utf8_lossy(&first[..n]).into_owned();
    assert!(first.starts_with("HTTP/1.1 400"), "{first}");
    stream
        .write_all(b"GET /admin HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("second request");
    let mut rest = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_string(&mut rest)).await;
    assert!(
        rest.is_empty() || rest.starts_with("HTTP/1.1 403"),
        "the request after a refused upgrade was not judged by the rules: {rest}"
    );
    assert!(
        echo.requests().iter().all(|r| !r.contains("/admin")),
        "{:?}",
        echo.requests()
    );
}

/// Only WebSocket upgrades are proxied: any other `Upgrade` (here a made-up
/// protocol) reaches the app as a plain request, without the upgrade headers.
#[tokio::test]
async fn upgrades_to_other_protocols_are_not_passed_on() {
    let (_echo, proxy) = super::deny_admin().await;
    let response = raw(
        proxy.addr,
        b"GET /x HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, close\r\nUpgrade: tunnel/1.0\r\n\r\n",
    )
    .await;
    assert_eq!(crate::support::raw_status(&response), 200, "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(!lower.contains("\"upgrade\""), "{response}");
    assert!(!lower.contains("tunnel/1.0"), "{response}");
}

/// A session's WebSocket ends with the session; see `login.rs` for logout.
/// Here: a browser without a session cannot open one on a login route.
#[tokio::test]
async fn a_websocket_on_a_login_route_needs_a_session() {
    let stack = Stack::start().await;
    let request =
        format!("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n{WS_HEAD}\r\n");
    let response = raw(stack.addr, request.as_bytes()).await;
    let status = crate::support::raw_status(&response);
    assert!(status == 302 || status == 401, "{response}");
    assert_eq!(stack.echo.hits(), 0);
}
