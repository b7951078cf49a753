//! The reverse proxy's transport (SPEC §7, transport part) over real sockets.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::sync::mpsc;

use crate::support::{self, base_config, get, raw, raw_status, seen, Echo, Proxy};

const PUBLIC: &str = "[[route]]\npath = \"/\"\nauth = \"public\"\n";

async fn public_proxy() -> (Echo, Proxy) {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&base_config(&echo.url(), PUBLIC)).await;
    (echo, proxy)
}

/// [`public_proxy`] with `header_read_timeout = "300ms"`.
async fn public_proxy_with_a_short_head_timeout() -> (Echo, Proxy) {
    let echo = Echo::start().await;
    let toml = base_config(&echo.url(), PUBLIC)
        .replace("[server]\n", "[server]\nheader_read_timeout = \"300ms\"\n");
    let proxy = Proxy::start(&toml).await;
    (echo, proxy)
}

/// GET `/stream-out` through `proxy`: the response body, its first chunk read
/// (the echo holds the second until `release_out`).
async fn stream_out_after_the_first_chunk(proxy: &Proxy) -> Incoming {
    let req = Request::get(proxy.url("/stream-out"))
        .body(support::full(""))
        .expect("request");
    let resp = support::client()
        .request(req)
        .await
        .expect("response head arrives");
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first chunk arrives while the upstream still holds the second")
        .expect("a frame")
        .expect("no error");
    assert_eq!(first.into_data().expect("data"), "first;");
    body
}

#[tokio::test]
async fn forwards_a_public_request_with_its_path_and_query() {
    let (_echo, proxy) = public_proxy().await;
    let seen = seen(&proxy.url("/hello/world?a=1&b=%20"), &[]).await;
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.target, "/hello/world?a=1&b=%20");
}

#[tokio::test]
async fn upstream_receives_the_normalized_path() {
    let (_echo, proxy) = public_proxy().await;
    let seen = seen(&proxy.url("/a/./b/../c"), &[]).await;
    assert_eq!(seen.target, "/a/c");
}

#[tokio::test]
async fn request_body_streams_before_the_client_finishes_sending() {
    let (echo, proxy) = public_proxy().await;
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let body = BodyExt::boxed(StreamBody::new(stream));
    let req = Request::post(proxy.url("/stream-in"))
        .body(body)
        .expect("request");
    let pending = tokio::spawn(support::client().request(req));

    tx.send(Ok(Frame::data(Bytes::from(vec![b'x'; 1000]))))
        .await
        .expect("send chunk 1");
    // If the proxy buffered the whole body, the upstream would see nothing yet.
    let first = tokio::time::timeout(Duration::from_secs(5), async {
        echo.chunks_in.lock().await.recv().await
    })
    .await
    .expect("the first chunk reaches the upstream while the upload is still open");
    assert_eq!(first, Some(1000));
    tx.send(Ok(Frame::data(Bytes::from(vec![b'y'; 500]))))
        .await
        .expect("send chunk 2");
    drop(tx);
    let resp = pending.await.expect("join").expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let seen: support::Seen = serde_json::from_slice(&body).expect("echo json");
    assert_eq!(seen.body_len, 1500);
}

#[tokio::test]
async fn response_body_streams_before_the_upstream_finishes_sending() {
    let (echo, proxy) = public_proxy().await;
    let body = stream_out_after_the_first_chunk(&proxy).await;
    echo.release_out.send(()).expect("release");
    let rest = body.collect().await.expect("rest").to_bytes();
    assert_eq!(rest, "second");
}

#[tokio::test]
async fn large_chunked_upload_arrives_whole() {
    let (_echo, proxy) = public_proxy().await;
    let chunks =
        (0..64).map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![7u8; 256 * 1024]))));
    let body = BodyExt::boxed(StreamBody::new(futures_util::stream::iter(chunks)));
    let req = Request::put(proxy.url("/upload"))
        .body(body)
        .expect("request");
    let resp = support::client().request(req).await.expect("response");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let seen: support::Seen = serde_json::from_slice(&body).expect("echo json");
    assert_eq!(seen.body_len, 64 * 256 * 1024);
    assert_eq!(seen.one("transfer-encoding"), Some("chunked"));
}

#[tokio::test]
async fn websocket_echo_works_through_the_proxy() {
    let (_echo, proxy) = public_proxy().await;
    let url = format!("ws://{}/ws", proxy.addr);
    let (mut ws, resp) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket handshake through the proxy");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for text in ["hello", "world"] {
        ws.send(text.into()).await.expect("send");
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("echo in time")
            .expect("a message")
            .expect("no error");
        assert_eq!(msg.into_text().expect("text").as_str(), text);
    }
}

#[tokio::test]
async fn hop_by_hop_headers_and_connection_nominees_are_removed() {
    let (_echo, proxy) = public_proxy().await;
    let seen = seen(
        &proxy.url("/"),
        &[
            ("connection", "x-secret-hop, keep-alive"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=1"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("x-end-to-end", "kept"),
        ],
    )
    .await;
    assert!(seen.one("x-secret-hop").is_none());
    assert!(seen.one("keep-alive").is_none());
    assert!(seen.one("proxy-authorization").is_none());
    assert_eq!(seen.one("x-end-to-end"), Some("kept"));
}

#[tokio::test]
async fn connection_header_cannot_remove_what_the_proxy_adds() {
    let (_echo, proxy) = public_proxy().await;
    let seen = seen(
        &proxy.url("/"),
        &[(
            "connection",
            "X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Request-Id, X-Real-IP",
        )],
    )
    .await;
    assert_eq!(seen.one("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.one("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(seen.one("x-forwarded-proto"), Some("http"));
    assert!(seen.one("x-forwarded-host").is_some());
    assert!(seen.one("x-request-id").is_some());
}

#[tokio::test]
async fn response_hop_by_hop_headers_do_not_reach_the_client() {
    let (_echo, proxy) = public_proxy().await;
    let (status, headers, _) = get(&proxy.url("/"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("x-upstream-hop").is_none());
    assert!(headers.get("keep-alive").is_none());
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_client_are_replaced() {
    let (_echo, proxy) = public_proxy().await;
    let seen = seen(
        &proxy.url("/"),
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("x-real-ip", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6;proto=https"),
        ],
    )
    .await;
    assert_eq!(seen.one("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.one("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(seen.one("x-forwarded-proto"), Some("http"));
    assert_ne!(seen.one("x-forwarded-host"), Some("evil.example"));
    assert!(seen.one("forwarded").is_none());
}

#[tokio::test]
async fn forwarded_chain_from_a_trusted_proxy_is_extended() {
    let echo = Echo::start().await;
    let toml = base_config(&echo.url(), PUBLIC).replace(
        "public_url = \"http://app.test\"",
        "public_url = \"http://app.test\"\ntrusted_proxies = [\"127.0.0.0/8\"]",
    );
    let proxy = Proxy::start(&toml).await;
    let seen = seen(
        &proxy.url("/"),
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com"),
        ],
    )
    .await;
    assert_eq!(seen.one("x-forwarded-for"), Some("203.0.113.9, 127.0.0.1"));
    assert_eq!(seen.one("x-real-ip"), Some("203.0.113.9"));
    assert_eq!(seen.one("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.one("x-forwarded-host"), Some("app.example.com"));
}

#[tokio::test]
async fn request_id_is_kept_when_sane_and_generated_otherwise() {
    let (_echo, proxy) = public_proxy().await;
    let kept = seen(&proxy.url("/"), &[("x-request-id", "abc-123")]).await;
    assert_eq!(kept.one("x-request-id"), Some("abc-123"));
    let generated = seen(&proxy.url("/"), &[]).await;
    assert_eq!(generated.one("x-request-id").map(str::len), Some(32));
    let replaced = seen(&proxy.url("/"), &[("x-request-id", "a b\"c")]).await;
    assert_ne!(replaced.one("x-request-id"), Some("a b\"c"));
}

#[tokio::test]
async fn identity_headers_are_stripped_on_public_routes() {
    let (_echo, proxy) = public_proxy().await;
    let seen = seen(
        &proxy.url("/"),
        &[
            ("x-forwarded-user", "admin"),
            ("x_forwarded_user", "admin"),
            ("x-forwarded-email", "admin@example.com"),
            ("x-forwarded-groups", "admin"),
            ("x-forwarded-preferred-username", "admin"),
            ("x-portcullis-identity", "forged"),
            ("x-auth-request-user", "admin"),
            ("x-auth-request-email", "admin@example.com"),
        ],
    )
    .await;
    for (name, _) in &seen.headers {
        let canonical = name.to_ascii_lowercase().replace(['_', '.'], "-");
        assert!(
            !canonical.starts_with("x-forwarded-user")
                && !canonical.starts_with("x-forwarded-email")
                && !canonical.starts_with("x-forwarded-groups")
                && !canonical.starts_with("x-forwarded-preferred")
                && !canonical.starts_with("x-portcullis")
                && !canonical.starts_with("x-auth-request"),
            "{name} reached the upstream"
        );
    }
}

#[tokio::test]
async fn proxy_cookies_are_not_forwarded_but_app_cookies_are() {
    let (_echo, proxy) = public_proxy().await;
    let seen = seen(
        &proxy.url("/"),
        &[(
            "cookie",
            "app=1; portcullis=SESSIONID; __Host-portcullis=X; portcullis_login_abc=Y; other=2",
        )],
    )
    .await;
    assert_eq!(seen.one("cookie"), Some("app=1; other=2"));
}

#[tokio::test]
async fn upstream_down_is_502_with_a_short_body() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = listener.local_addr().expect("addr");
    drop(listener);
    let proxy = Proxy::start(&base_config(&format!("http://{dead}"), PUBLIC)).await;
    let (status, headers, body) = get(&proxy.url("/"), &[("accept", "application/json")]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(headers["content-type"], "application/json");
    assert!(body.contains("upstream_unavailable"), "{body}");
    assert!(
        !body.contains(&dead.to_string()),
        "no internals in the body: {body}"
    );
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let echo = Echo::start().await;
    let toml = base_config(&echo.url(), PUBLIC)
        .replace("[upstream]\n", "[upstream]\nresponse_timeout = \"300ms\"\n");
    let proxy = Proxy::start(&toml).await;
    let (status, _, body) = get(&proxy.url("/slow"), &[("accept", "text/html")]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(body.contains("<html"), "browsers get a short page: {body}");
}

#[tokio::test]
async fn unsafe_target_is_400_and_never_reaches_the_upstream() {
    let (echo, proxy) = public_proxy().await;
    for target in [
        "/a%2Fb",
        "/..%2Fadmin",
        "/%2e%2e/x",
        "/a/../../etc",
        "/a%00b",
        "http://evil/x",
        "*",
    ] {
        let resp = raw(
            proxy.addr,
            format!("GET {target} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert_eq!(raw_status(&resp), 400, "{target}: {resp}");
    }
    assert_eq!(echo.hits(), 0);
}

#[tokio::test]
async fn oversized_request_head_is_431_and_never_reaches_the_upstream() {
    let (echo, proxy) = public_proxy().await;
    let big = "a".repeat(20 * 1024);
    let resp = raw(
        proxy.addr,
        format!("GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: {big}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert_eq!(raw_status(&resp), 431, "{resp}");
    assert_eq!(echo.hits(), 0);
}

/// A head of more than 128 fields is 431 (README, `server.max_header_bytes`),
/// however small, and never reaches the upstream. (The upstream here, a
/// hyper server, takes at most 100 fields itself, so the served head is
/// smaller.)
#[tokio::test]
async fn a_request_head_of_more_than_128_fields_is_431() {
    let (echo, proxy) = public_proxy().await;
    let head = |fields: usize| {
        let extra: String = (2..fields).map(|i| format!("X-F{i}: v\r\n")).collect();
        format!("GET / HTTP/1.1\r\nHost: app.test\r\n{extra}Connection: close\r\n\r\n")
    };
    let served = raw(proxy.addr, head(90).as_bytes()).await;
    assert_eq!(raw_status(&served), 200, "{served}");
    let refused = raw(proxy.addr, head(129).as_bytes()).await;
    assert_eq!(raw_status(&refused), 431, "{refused}");
    assert_eq!(echo.hits(), 1);
}

#[tokio::test]
async fn missing_or_double_host_is_400() {
    let (echo, proxy) = public_proxy().await;
    let no_host = raw(proxy.addr, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(raw_status(&no_host), 400, "{no_host}");
    let two = raw(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&two), 400, "{two}");
    assert_eq!(echo.hits(), 0);
}

#[tokio::test]
async fn malformed_request_line_is_rejected_without_reaching_the_upstream() {
    let (echo, proxy) = public_proxy().await;
    let resp = raw(
        proxy.addr,
        b"GET /\x01bad HTTP/1.1\r\nHost: app.test\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&resp), 400, "{resp}");
    assert_eq!(echo.hits(), 0);
}

#[tokio::test]
async fn slow_client_head_is_cut_off() {
    let (echo, proxy) = public_proxy_with_a_short_head_timeout().await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n")
        .await
        .expect("write partial head");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the proxy closes a connection whose head never completes"
    );
    assert_eq!(echo.hits(), 0);
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_the_head_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_echo, proxy) = public_proxy_with_a_short_head_timeout().await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    stream
        .write_all(b"GET /first HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .expect("write");
    // Read the whole first response (keep-alive: the connection stays open).
    let mut buf = vec![0u8; 64 * 1024];
    let n = stream.read(&mut buf).await.expect("first response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Now idle: the proxy must close the connection by itself.
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "an idle keep-alive connection is closed after header_read_timeout"
    );
}

/// The head timeout bounds the wait for a request head only: a response whose
/// body takes longer than it to stream is not cut off.
#[tokio::test]
async fn a_response_streaming_for_longer_than_the_head_timeout_arrives_whole() {
    let (echo, proxy) = public_proxy_with_a_short_head_timeout().await;
    let body = stream_out_after_the_first_chunk(&proxy).await;
    // Three head timeouts while the response is still being written.
    tokio::time::sleep(Duration::from_millis(900)).await;
    echo.release_out.send(()).expect("release");
    let rest = body
        .collect()
        .await
        .expect("the rest, not a cut")
        .to_bytes();
    assert_eq!(rest, "second");
}

/// See: security review, finding 2 — a connection that sent nothing was never
/// timed out, so a few silent sockets could take every connection slot.
#[tokio::test]
async fn a_silent_connection_is_closed_and_cannot_hold_the_slots() {
    use tokio::io::AsyncReadExt;
    let echo = Echo::start().await;
    let toml = base_config(&echo.url(), PUBLIC).replace(
        "[server]\n",
        "[server]\nheader_read_timeout = \"300ms\"\nmax_connections = 2\n",
    );
    let proxy = Proxy::start(&toml).await;
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(
            tokio::net::TcpStream::connect(proxy.addr)
                .await
                .expect("connect"),
        );
    }
    for stream in &mut silent {
        let mut buf = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "a silent connection is closed"
        );
    }
    let (status, _, _) = get(&proxy.url("/after"), &[]).await;
    assert_eq!(status, StatusCode::OK, "the slots were freed");
}

/// See: security review, findings 6 and 7.
#[tokio::test]
async fn rewrite_and_override_headers_and_h2c_upgrades_do_not_reach_the_app() {
    let (_echo, proxy) = public_proxy().await;
    let seen = seen(
        &proxy.url("/public"),
        &[
            ("x-original-url", "/admin"),
            ("x-rewrite-url", "/admin"),
            ("x-original-uri", "/admin"),
            ("x_original_url", "/admin"),
            ("x-forwarded-prefix", "/evil"),
            ("x-forwarded-port", "1"),
            ("x-forwarded-ssl", "on"),
            ("x-forwarded-uri", "/admin"),
            ("x-host", "evil"),
            ("front-end-https", "on"),
            ("x-http-method-override", "DELETE"),
            ("x-method-override", "DELETE"),
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
        ],
    )
    .await;
    for (name, _) in &seen.headers {
        let n = name.to_ascii_lowercase().replace(['_', '.'], "-");
        let leaked = n.starts_with("x-original")
            || n == "x-rewrite-url"
            || n == "x-host"
            || n == "front-end-https"
            || n.contains("method-override")
            || n == "upgrade"
            || n == "http2-settings"
            || (n.starts_with("x-forwarded-")
                && !["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]
                    .contains(&n.as_str()));
        assert!(!leaked, "{name} reached the app: {:?}", seen.headers);
    }
    assert_eq!(seen.target, "/public");
}
