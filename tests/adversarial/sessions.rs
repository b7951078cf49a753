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
