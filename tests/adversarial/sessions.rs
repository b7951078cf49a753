//! Sessions (SPEC §5, OWASP session management): a session id is worth
//! something only as the exact cookie the proxy set, only while the session
//! lives server-side, and never after logout, back-channel logout or a failed
//! refresh — a copy kept by an attacker dies with it.
//!
//! Elsewhere: fixation and cookie flags in `login.rs`, timeouts there too.

use http::{Method, StatusCode};

use crate::support::flip_char;
use crate::support::stack::{Browser, Stack};

/// A browser holding only the session cookie `value`.
fn holding(value: &str) -> Browser {
    let mut browser = Browser::default();
    browser.jar.insert("portcullis".into(), value.to_owned());
    browser
}

async fn status_with(stack: &Stack, value: &str) -> StatusCode {
    holding(value).fetch(&stack.url("/x")).await.status
}

#[tokio::test]
async fn a_tampered_session_cookie_is_worthless() {
    let stack = Stack::start().await;
    let alice = stack.login("alice").await;
    let id = alice.jar["portcullis"].clone();
    let last = id.len() - 1;
    let cases = [
        ("first character changed", flip_char(&id, 0)),
        ("last character changed", flip_char(&id, last)),
        ("one character short", id[..last].to_owned()),
        ("one character more", format!("{id}A")),
        ("padded", format!("{id}=")),
        ("upper case", id.to_ascii_uppercase()),
        (
            "the standard base64 alphabet",
            id.replace('-', "+").replace('_', "/"),
        ),
        ("quoted", format!("\"{id}\"")),
        ("empty", String::new()),
    ];
    for (what, value) in cases {
        if value == id {
            continue; // the id had no letter this case changes
        }
        assert_eq!(
            status_with(&stack, &value).await,
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
    }
    assert_eq!(
        status_with(&stack, &id).await,
        StatusCode::OK,
        "the real id"
    );
}

/// The id counts only in the session cookie, exactly once: not in the query,
/// not in a header, and not when a second cookie of that name (planted by a
/// sibling site) makes it ambiguous.
#[tokio::test]
async fn the_session_id_is_read_from_one_cookie_only() {
    let stack = Stack::start().await;
    let alice = stack.login("alice").await;
    let id = alice.jar["portcullis"].clone();
    let hits = stack.echo.hits();
    let mut anonymous = Browser::default();
    for (url, headers) in [
        (stack.url(&format!("/x?portcullis={id}")), vec![]),
        (
            stack.url("/x"),
            vec![("authorization", format!("Bearer {id}"))],
        ),
        (stack.url("/x"), vec![("x-portcullis-session", id.clone())]),
        (
            stack.url("/x"),
            vec![("cookie", format!("portcullis={id}; portcullis=planted"))],
        ),
        (
            stack.url("/x"),
            vec![("cookie", format!("portcullis=planted; portcullis={id}"))],
        ),
    ] {
        let mut sent: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        sent.push(("accept", "application/json"));
        let page = anonymous.request(Method::GET, &url, &sent, "").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{url} {headers:?}");
    }
    assert_eq!(stack.echo.hits(), hits, "none reached the app");
}

#[tokio::test]
async fn a_copied_cookie_dies_with_a_back_channel_logout() {
    let stack = Stack::start().await;
    let alice = stack.login("alice").await;
    let copy = alice.jar["portcullis"].clone();
    assert_eq!(status_with(&stack, &copy).await, StatusCode::OK);
    let deliveries = stack.idp.backchannel_logout("alice").await;
    assert!(
        deliveries.iter().all(|d| d.is_delivered()),
        "{deliveries:?}"
    );
    assert_eq!(status_with(&stack, &copy).await, StatusCode::UNAUTHORIZED);
}

/// A refresh the provider refuses ends the session server-side: the cookie
/// stays dead when the provider would refresh again.
#[tokio::test]
async fn a_copied_cookie_dies_with_a_refused_refresh_for_good() {
    let stack = Stack::start().await;
    let alice = stack.login("alice").await;
    let copy = alice.jar["portcullis"].clone();
    stack
        .idp
        .misbehave_once(portcullis_devidp::Misbehaviour::RefreshFails);
    stack.advance(5 * 60);
    assert_eq!(status_with(&stack, &copy).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status_with(&stack, &copy).await,
        StatusCode::UNAUTHORIZED,
        "no second chance once the provider behaves"
    );
}

/// After logout the cookie is cleared in the browser and dead on the server,
/// and logging out again with it changes nothing.
#[tokio::test]
async fn a_copied_cookie_dies_with_logout_and_logout_is_idempotent() {
    let stack = Stack::start().await;
    let mut alice = stack.login("alice").await;
    let copy = alice.jar["portcullis"].clone();
    let out = alice
        .request(Method::POST, &stack.url("/_auth/logout"), &[], "")
        .await;
    assert_eq!(out.status, StatusCode::FOUND);
    assert!(
        !alice.jar.contains_key("portcullis"),
        "cleared in the browser"
    );
    assert_eq!(status_with(&stack, &copy).await, StatusCode::UNAUTHORIZED);
    let again = holding(&copy)
        .request(Method::POST, &stack.url("/_auth/logout"), &[], "")
        .await;
    assert_eq!(again.status, StatusCode::FOUND);
    assert_eq!(
        stack.idp.stats().revocations,
        1,
        "a dead session revokes nothing twice"
    );
}

/// Sends `GET path` with `cookie` (if any) on `conn`, an open HTTP/1.1
/// connection to the proxy: status and, for a 200, the echo's headers.
async fn on_connection(
    conn: &mut hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    stack: &Stack,
    cookie: Option<&str>,
) -> (StatusCode, Option<crate::support::Seen>) {
    use http_body_util::BodyExt;
    let host = stack
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut request = http::Request::builder().uri("/x").header("host", host);
    if let Some(value) = cookie {
        request = request.header("cookie", format!("app=1; portcullis={value}"));
    }
    let request = request
        .body(http_body_util::Full::default())
        .expect("request");
    conn.ready().await.expect("the connection stays open");
    let resp = conn.send_request(request).await.expect("an answer");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("a body").to_bytes();
    let seen =
        (status == StatusCode::OK).then(|| serde_json::from_slice(&body).expect("echo JSON"));
    (status, seen)
}

/// The proxy remembers per connection what the last `Cookie` header meant
/// (the session key, which cookies are its own) and the last identity
/// assertion: each request on one keep-alive connection must still be judged
/// by its own cookie and by the store as it is now — another user's cookie is
/// that user, a logged-out one is nobody, a missing one is nobody.
#[tokio::test]
async fn every_request_on_one_connection_is_judged_by_its_own_cookie() {
    let stack = Stack::start().await;
    let mut alice = stack.login("alice").await;
    let bob = stack.login("bob").await;
    let (alice_id, bob_id) = (
        alice.jar["portcullis"].clone(),
        bob.jar["portcullis"].clone(),
    );
    let addr = stack
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let (mut conn, _driver) = crate::support::one_connection(&addr).await;
    let user = |seen: &Option<crate::support::Seen>| {
        let seen = seen.as_ref().expect("forwarded");
        let user = seen.one("x-forwarded-user").map(str::to_owned);
        let assertion = seen.one("x-portcullis-identity").map(str::to_owned);
        assert!(
            seen.one("cookie")
                .is_some_and(|c| !c.contains("portcullis")),
            "own cookie stripped"
        );
        (user, assertion)
    };
    let (status, first) = on_connection(&mut conn, &stack, Some(&alice_id)).await;
    assert_eq!(status, StatusCode::OK);
    let (as_alice, alice_assertion) = user(&first);
    let (status, again) = on_connection(&mut conn, &stack, Some(&alice_id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user(&again).0, as_alice, "the same cookie, the same user");
    let (status, as_bob) = on_connection(&mut conn, &stack, Some(&bob_id)).await;
    assert_eq!(status, StatusCode::OK);
    let (bob_user, bob_assertion) = user(&as_bob);
    assert_ne!(bob_user, as_alice, "bob's cookie is bob");
    assert_ne!(bob_assertion, alice_assertion, "bob's assertion is bob's");
    assert_eq!(
        on_connection(&mut conn, &stack, None).await.0,
        StatusCode::UNAUTHORIZED,
        "no cookie is nobody"
    );
    let out = alice
        .request(Method::POST, &stack.url("/_auth/logout"), &[], "")
        .await;
    assert_eq!(out.status, StatusCode::FOUND);
    assert_eq!(
        on_connection(&mut conn, &stack, Some(&alice_id)).await.0,
        StatusCode::UNAUTHORIZED,
        "alice's cookie after her logout, on the connection that just used it"
    );
    let (status, still_bob) = on_connection(&mut conn, &stack, Some(&bob_id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user(&still_bob).0, bob_user);
}
