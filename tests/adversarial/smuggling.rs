//! HTTP/1 request smuggling and framing abuse (PortSwigger's "HTTP request
//! smuggling" classes, RFC 9112 §6.1 and §11.2): a request whose framing two
//! parsers could read differently is refused with 400 and its connection
//! closed, so nothing hidden in it ever becomes a request of its own; and
//! whatever is accepted reaches the upstream re-framed by the proxy, as exactly
//! one request, judged by the rules.
//!
//! Every case is sent byte for byte on a fresh connection. The rules deny
//! `/admin`; the smuggled request inside each payload asks for `/admin`, so it
//! may never appear among the requests the upstream received.

use crate::support::{base_config, raw, Echo, Proxy};

/// A complete request for the denied path, hidden inside another one.
const SMUGGLED: &str = "GET /admin HTTP/1.1\r\nHost: app.test\r\n\r\n";

/// The status codes of every response in a raw HTTP/1.1 exchange, in order.
fn statuses(response: &str) -> Vec<u16> {
    response
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| response.get(at + 9..at + 12)?.parse().ok())
        .collect()
}

/// Asserts that the upstream never received the smuggled request and received
/// at most `max` requests in all.
fn assert_nothing_smuggled(echo: &Echo, label: &str, max: usize) {
    let seen = echo.requests();
    assert!(
        seen.iter().all(|r| !r.contains("/admin")),
        "{label}: the smuggled request reached the upstream: {seen:?}"
    );
    assert!(
        seen.len() <= max,
        "{label}: {} upstream requests for one client request: {seen:?}",
        seen.len()
    );
}

/// Both `Content-Length` and `Transfer-Encoding`: hyper frames the request by
/// `Transfer-Encoding` alone and drops `Content-Length` (RFC 9112 §6.3), answers
/// once and closes the connection, so whatever a front proxy took for the rest
/// of the body is discarded with the connection, never read as a request.
fn both_lengths() -> Vec<(&'static str, String)> {
    let chunked_then_smuggled = format!("0\r\n\r\n{SMUGGLED}");
    let cl_te = format!(
        "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_then_smuggled}",
        chunked_then_smuggled.len()
    );
    let te_cl = format!(
        "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n",
        SMUGGLED.len()
    );
    vec![("CL.TE", cl_te), ("TE.CL", te_cl)]
}

/// Payloads whose framing is ambiguous or malformed: exactly one 400, and the
/// connection closes (nothing after the head is read as a request).
fn ambiguous_framings() -> Vec<(&'static str, String)> {
    let chunked_then_smuggled = format!("0\r\n\r\n{SMUGGLED}");
    let te_obfuscated = |te: &str| {
        format!(
            "POST / HTTP/1.1\r\nHost: app.test\r\n{te}\r\nContent-Length: {}\r\n\r\n{chunked_then_smuggled}",
            chunked_then_smuggled.len()
        )
    };
    vec![
        (
            "TE.TE: a second, unknown coding",
            te_obfuscated("Transfer-Encoding: chunked\r\nTransfer-Encoding: x"),
        ),
        (
            "TE: chunked is not the final coding",
            te_obfuscated("Transfer-Encoding: chunked, identity"),
        ),
        ("TE: xchunked", te_obfuscated("Transfer-Encoding: xchunked")),
        (
            "TE: space before the colon",
            te_obfuscated("Transfer-Encoding : chunked"),
        ),
        (
            "TE: folded onto the previous line",
            te_obfuscated("X-Padding: a\r\n Transfer-Encoding: chunked"),
        ),
        (
            "TE: vertical tab",
            te_obfuscated("Transfer-Encoding:\x0bchunked"),
        ),
        (
            "two different Content-Lengths",
            format!(
                "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            ),
        ),
        (
            "a Content-Length list",
            format!(
                "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0, {}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            ),
        ),
        (
            "a signed Content-Length",
            format!(
                "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: +{}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            ),
        ),
        (
            "a hexadecimal Content-Length",
            format!(
                "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0x{:x}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            ),
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            format!(
                "POST / HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_then_smuggled}"
            ),
        ),
        (
            "a chunk size that overflows",
            format!(
                "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\n{SMUGGLED}\r\n0\r\n\r\n"
            ),
        ),
        (
            "a chunk size with a sign",
            format!(
                "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n{SMUGGLED}\r\n0\r\n\r\n"
            ),
        ),
        (
            "obs-fold in an ordinary header",
            format!("GET / HTTP/1.1\r\nHost: app.test\r\nX-A: a\r\n b\r\n\r\n{SMUGGLED}"),
        ),
        (
            "a bare CR as a line end",
            format!("GET / HTTP/1.1\rHost: app.test\r\n\r\n{SMUGGLED}"),
        ),
        (
            "a NUL in a header value",
            format!("GET / HTTP/1.1\r\nHost: app.test\r\nX-A: a\0b\r\n\r\n{SMUGGLED}"),
        ),
        (
            "a space inside the header name",
            format!("GET / HTTP/1.1\r\nHost: app.test\r\nX A: b\r\n\r\n{SMUGGLED}"),
        ),
        (
            "an unknown HTTP version",
            format!("GET / HTTP/1.2x\r\nHost: app.test\r\n\r\n{SMUGGLED}"),
        ),
    ]
}

/// Sends `payload` on a fresh connection; returns what came back and whether
/// the proxy closed the connection (rather than the read timing out).
async fn exchange(proxy: &Proxy, payload: &[u8]) -> (String, bool) {
    let started = std::time::Instant::now();
    let response = raw(proxy.addr, payload).await;
    (
        response,
        started.elapsed() < std::time::Duration::from_millis(2500),
    )
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_one_request_then_close() {
    let (echo, proxy) = super::deny_admin().await;
    for (label, payload) in both_lengths() {
        let (response, closed) = exchange(&proxy, payload.as_bytes()).await;
        assert_eq!(statuses(&response).len(), 1, "{label}: {response:?}");
        assert!(closed, "{label}: the connection stays open: {response:?}");
        assert!(
            !response
                .to_ascii_lowercase()
                .contains("content-length\",\""),
            "{label}: Content-Length reached the upstream beside Transfer-Encoding: {response:?}"
        );
    }
    assert_nothing_smuggled(&echo, "CL.TE / TE.CL", 2);
}

#[tokio::test]
async fn ambiguous_framing_is_400_and_the_connection_closes() {
    let (echo, proxy) = super::deny_admin().await;
    for (label, payload) in ambiguous_framings() {
        let (response, closed) = exchange(&proxy, payload.as_bytes()).await;
        assert_eq!(
            statuses(&response),
            vec![400],
            "{label}: exactly one 400; got {response:?}"
        );
        assert!(closed, "{label}: the connection stays open");
        assert_nothing_smuggled(&echo, label, 0);
    }
}

/// The refusal above is the proxy's, not an accident of the payloads: the same
/// requests framed one way only are served.
#[tokio::test]
async fn the_same_requests_framed_one_way_are_served() {
    let (echo, proxy) = super::deny_admin().await;
    let chunked = "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let length =
        "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    let same_twice = "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    for (label, payload) in [
        ("chunked", chunked),
        ("content-length", length),
        ("one length, twice", same_twice),
    ] {
        let response = raw(proxy.addr, payload.as_bytes()).await;
        assert_eq!(statuses(&response), vec![200], "{label}: {response:?}");
        assert!(response.contains("\"body_len\":5"), "{label}: {response:?}");
    }
    assert_eq!(echo.hits(), 3);
}

/// A request pipelined behind another is a request of its own: the rules judge
/// it like any other, and the upstream gets the first only.
#[tokio::test]
async fn a_pipelined_request_is_judged_by_the_rules() {
    let (echo, proxy) = super::deny_admin().await;
    let payload = "GET /x HTTP/1.1\r\nHost: app.test\r\n\r\nGET /admin HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";
    let response = raw(proxy.addr, payload.as_bytes()).await;
    assert_eq!(statuses(&response), vec![200, 403], "{response:?}");
    assert_eq!(echo.requests(), vec!["GET /x".to_owned()]);
}

/// Bare LF line ends (which httparse accepts) cannot sneak a header past the
/// stripping: whatever the parser saw as a header is handled as one.
#[tokio::test]
async fn bare_lf_cannot_smuggle_an_identity_header() {
    let (echo, proxy) = super::deny_admin().await;
    let payload = "GET /x HTTP/1.1\nHost: app.test\nX-Forwarded-User: mallory\nX-A: a\r\nX_Forwarded_User: mallory\nConnection: close\n\n";
    let response = raw(proxy.addr, payload.as_bytes()).await;
    let got = statuses(&response);
    assert!(
        got == vec![200] || got == vec![400],
        "one answer: {response:?}"
    );
    assert!(
        !response.contains("mallory"),
        "the upstream saw the spoofed identity: {response:?}"
    );
    assert_nothing_smuggled(&echo, "bare LF", 1);
}

/// Identity headers hidden in a chunked body's trailer section never reach the
/// app (trailers are not forwarded at all: an app framework may merge them
/// into the headers).
#[tokio::test]
async fn trailers_cannot_carry_identity_headers() {
    let (echo, proxy) = super::deny_admin().await;
    let payload = "POST /x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Forwarded-User\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Forwarded-User: mallory\r\nX-Auth-Request-Email: m@evil.test\r\n\r\n";
    let response = raw(proxy.addr, payload.as_bytes()).await;
    assert_eq!(statuses(&response), vec![200], "{response:?}");
    assert!(response.contains("\"body_len\":5"), "{response:?}");
    assert!(
        !response.contains("mallory") && !response.contains("evil.test"),
        "a trailer reached the upstream: {response:?}"
    );
    assert_eq!(echo.hits(), 1);
}

/// Huge chunk extensions are a memory attack on the parser (CVE-2023-39326 in
/// Go, hyper's own limit): the request is cut off rather than buffered.
#[tokio::test]
async fn endless_chunk_extensions_are_cut_off() {
    let (echo, proxy) = super::deny_admin().await;
    let mut payload =
        b"POST /x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n1;".to_vec();
    payload.extend(std::iter::repeat_n(b'a', 200_000));
    payload.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
    let response = raw(proxy.addr, &payload).await;
    assert!(echo.requests().len() <= 1, "{:?}", echo.requests());
    assert!(
        !response.contains("\"body_len\":1"),
        "a 200 KB chunk extension was accepted: {response:?}"
    );
}

/// `server.max_body_bytes`: a declared length over the limit is refused before
/// anything is forwarded; a chunked body is cut off as it streams past the
/// limit; a body at the limit passes whole.
#[tokio::test]
async fn request_bodies_over_the_limit_get_413() {
    let echo = Echo::start().await;
    let toml = base_config(&echo.url(), super::DENY_ADMIN)
        .replace("[server]\n", "[server]\nmax_body_bytes = 1024\n");
    let proxy = Proxy::start(&toml).await;
    let declared = format!(
        "POST /x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 2000\r\nConnection: close\r\n\r\n{}",
        "a".repeat(2000)
    );
    let (response, _) = exchange(&proxy, declared.as_bytes()).await;
    assert_eq!(statuses(&response), vec![413], "{response:?}");
    assert_eq!(echo.hits(), 0, "refused before anything was forwarded");

    let chunked = format!(
        "POST /x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n400\r\n{}\r\n400\r\n{}\r\n0\r\n\r\n",
        "a".repeat(1024),
        "b".repeat(1024)
    );
    let (response, _) = exchange(&proxy, chunked.as_bytes()).await;
    assert_eq!(statuses(&response), vec![413], "{response:?}");
    assert!(!response.contains("\"body_len\":2048"), "{response:?}");

    let at_limit = format!(
        "POST /x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1024\r\nConnection: close\r\n\r\n{}",
        "a".repeat(1024)
    );
    let (response, _) = exchange(&proxy, at_limit.as_bytes()).await;
    assert_eq!(statuses(&response), vec![200], "{response:?}");
    assert!(response.contains("\"body_len\":1024"), "{response:?}");
}
