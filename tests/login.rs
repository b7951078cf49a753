//! Browser login end to end over real HTTP against the development provider
//! (SPEC §4.1, §5, §6, §8): every check here fails if its check in the proxy is removed.

use std::time::Duration;

use http::{Method, StatusCode};
use portcullis_devidp::Misbehaviour;

use crate::support::stack::{absolute, Browser, Stack, StackOptions};

fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    crate::support::query_pairs(url).into_iter().collect()
}

#[tokio::test]
async fn login_lands_on_the_original_url_and_the_app_sees_the_identity() {
    let stack = Stack::start().await;
    let mut browser = stack.browser();
    let page = browser
        .sign_in(&stack.url("/reports/q3?year=2026&sort=desc"), "alice")
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.url.ends_with("/reports/q3?year=2026&sort=desc"),
        "landed on {}",
        page.url
    );
    let seen = page.seen();
    assert_eq!(seen.target, "/reports/q3?year=2026&sort=desc");
    assert_eq!(seen.one("x-forwarded-user"), Some("alice"));
    assert_eq!(seen.one("x-forwarded-email"), Some("alice@example.com"));
    assert_eq!(seen.one("x-forwarded-preferred-username"), Some("alice"));
    assert_eq!(seen.one("x-forwarded-groups"), Some("admin,user"));
    // A browser shares cookies across ports of a host, so the provider's may arrive;
    // the proxy's own never does.
    let cookie = seen.one("cookie").unwrap_or_default();
    assert!(!cookie.contains("portcullis"), "{cookie}");
}

#[tokio::test]
async fn unauthenticated_navigation_redirects_to_the_provider_with_pkce_state_and_nonce() {
    let stack = Stack::start().await;
    let mut browser = stack.browser();
    let page = browser.navigate(&stack.url("/private")).await;
    assert_eq!(page.status, StatusCode::FOUND);
    let location = page.location().expect("location");
    assert!(location.starts_with(&stack.idp.issuer()), "{location}");
    let q = query_of(location);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "portcullis");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);
    assert_eq!(q["redirect_uri"], stack.url("/_auth/callback"));
    let login_cookie = page
        .set_cookies()
        .into_iter()
        .find(|c| c.contains("_login_"))
        .expect("login-state cookie");
    assert!(login_cookie.contains("HttpOnly"), "{login_cookie}");
    assert!(login_cookie.contains("SameSite=Lax"), "{login_cookie}");
    assert!(login_cookie.contains("Path=/;"), "{login_cookie}");
    assert_eq!(stack.echo.hits(), 0);
}

#[tokio::test]
async fn scripts_get_401_json_with_a_login_url_never_a_redirect() {
    let stack = Stack::start().await;
    let mut browser = stack.browser();
    for headers in [
        vec![("accept", "application/json")],
        vec![
            ("accept", "text/html"),
            ("x-requested-with", "XMLHttpRequest"),
        ],
        vec![("accept", "text/html"), ("sec-fetch-mode", "cors")],
    ] {
        let page = browser
            .request(Method::GET, &stack.url("/private/data"), &headers, "")
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert!(page.headers.contains_key("www-authenticate"));
        let json: serde_json::Value = serde_json::from_str(&page.body).expect("json");
        assert_eq!(json["error"], "unauthenticated");
        assert_eq!(
            json["login_url"],
            format!("{}/_auth/login?rd=%2Fprivate%2Fdata", stack.url(""))
        );
    }
    let post = browser
        .request(
            Method::POST,
            &stack.url("/private/form"),
            &[("accept", "text/html")],
            "x=1",
        )
        .await;
    assert_eq!(
        post.status,
        StatusCode::UNAUTHORIZED,
        "a POST never gets a redirect it cannot replay"
    );
}

#[tokio::test]
async fn role_rule_admits_alice_and_refuses_bob_with_a_readable_page() {
    let stack = Stack::start().await;
    let mut alice = stack.login("alice").await;
    assert_eq!(
        alice.navigate(&stack.url("/admin/panel")).await.status,
        StatusCode::OK
    );
    let mut bob = stack.login("bob").await;
    let page = bob.navigate(&stack.url("/admin/panel")).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body.contains("<html") && page.body.contains("403"),
        "{}",
        page.body
    );
    let json = bob.fetch(&stack.url("/admin/panel")).await;
    assert_eq!(json.status, StatusCode::FORBIDDEN);
    assert!(json.body.contains("\"forbidden\""), "{}", json.body);
}

#[tokio::test]
async fn session_cookie_has_the_spec_flags_and_is_256_bit_random() {
    let stack = Stack::start().await;
    let mut browser = stack.browser();
    let page = browser.follow(&stack.url("/x")).await;
    let callback = browser.submit_sign_in(&page, "alice").await;
    let landed = browser.navigate(&callback).await;
    let cookie = landed
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("portcullis="))
        .expect("session cookie set at the callback");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain-http public_url: no Secure flag: {cookie}"
    );
    let value = cookie
        .split(';')
        .next()
        .and_then(|p| p.split_once('='))
        .map(|(_, v)| v)
        .expect("value");
    assert_eq!(value.len(), 43, "32 random bytes, base64url");
    assert!(!cookie.contains("eyJ"), "no token in the cookie");
}

#[tokio::test]
async fn callback_without_state_or_with_forged_or_foreign_state_is_refused() {
    let stack = Stack::start().await;
    let mut browser = stack.browser();
    let no_state = browser
        .navigate(&stack.url("/_auth/callback?code=abc"))
        .await;
    assert_eq!(no_state.status, StatusCode::BAD_REQUEST);
    let forged = browser
        .navigate(&stack.url("/_auth/callback?code=abc&state=forged"))
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);

    // A callback URL from another browser's login: that browser has the state cookie, this one not.
    let mut victim = stack.browser();
    let page = victim.follow(&stack.url("/x")).await;
    let callback = victim.submit_sign_in(&page, "alice").await;
    let mut attacker = stack.browser();
    let stolen = attacker.navigate(&callback).await;
    assert_eq!(
        stolen.status,
        StatusCode::BAD_REQUEST,
        "cross-browser state is refused"
    );
    assert!(attacker.jar.keys().all(|k| k != "portcullis"));
    assert!(stolen.body.contains("Try again"), "{}", stolen.body);
}

#[tokio::test]
async fn a_replayed_callback_is_refused() {
    let stack = Stack::start().await;
    let mut browser = stack.browser();
    let page = browser.follow(&stack.url("/x")).await;
    let callback = browser.submit_sign_in(&page, "alice").await;
    let login_cookies = browser.jar.clone();
    assert_eq!(browser.navigate(&callback).await.status, StatusCode::FOUND);
    // Replay with the same state cookie and the same code.
    let mut replay = Browser { jar: login_cookies };
    let again = replay.navigate(&callback).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    assert!(replay.jar.keys().all(|k| k != "portcullis"));
}

#[tokio::test]
async fn provider_error_at_the_callback_gets_a_short_page_with_a_retry_link() {
    let stack = Stack::start().await;
    let mut browser = stack.browser();
    let page = browser.follow(&stack.url("/wanted")).await;
    let callback = browser.cancel_sign_in(&page).await;
    assert!(callback.contains("error=access_denied"), "{callback}");
    let failed = browser.navigate(&callback).await;
    assert_eq!(failed.status, StatusCode::FORBIDDEN);
    assert!(
        failed.body.contains("login?rd=%2Fwanted"),
        "{}",
        failed.body
    );
}

#[tokio::test]
async fn token_endpoint_outage_at_the_callback_is_503_not_500() {
    let stack = Stack::start().await;
    stack.idp.set_misbehaviour(Misbehaviour::TokenEndpointError);
    let mut browser = stack.browser();
    let page = browser.sign_in(&stack.url("/x"), "alice").await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
}

#[tokio::test]
async fn login_replaces_any_session_id_the_browser_had() {
    let stack = Stack::start().await;
    let mut browser = stack.login("alice").await;
    let first = browser.jar["portcullis"].clone();
    // Sign in again (as bob) from the same browser: a fresh id, and the old one is dead.
    stack.idp.end_provider_sessions();
    let page = browser.follow(&stack.url("/_auth/login?rd=/again")).await;
    let callback = browser.submit_sign_in(&page, "bob").await;
    browser.follow(&callback).await;
    let second = browser.jar["portcullis"].clone();
    assert_ne!(first, second);
    let mut old = Browser::default();
    old.jar.insert("portcullis".into(), first);
    assert_eq!(
        old.fetch(&stack.url("/x")).await.status,
        StatusCode::UNAUTHORIZED
    );

    // An attacker-planted id is never adopted.
    let mut planted = Browser::default();
    let fixed = "A".repeat(43);
    planted.jar.insert("portcullis".into(), fixed.clone());
    planted.sign_in(&stack.url("/x"), "alice").await;
    assert_ne!(planted.jar["portcullis"], fixed);
}

#[tokio::test]
async fn concurrent_logins_in_two_tabs_both_complete() {
    let stack = Stack::start().await;
    let mut browser = stack.browser();
    let tab1 = browser.follow(&stack.url("/tab1")).await;
    let tab2 = browser.follow(&stack.url("/tab2")).await;
    let cb1 = browser.submit_sign_in(&tab1, "alice").await;
    let cb2 = browser.submit_sign_in(&tab2, "alice").await;
    let second = browser.follow(&cb2).await;
    assert!(second.url.ends_with("/tab2"), "{}", second.url);
    let first = browser.follow(&cb1).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.url.ends_with("/tab1"), "{}", first.url);
}

#[tokio::test]
async fn idle_timeout_ends_the_session_server_side() {
    let stack = Stack::start_with(StackOptions {
        extra: format!(
            "{}\n[session]\nidle_timeout = \"10m\"\nabsolute_timeout = \"1h\"\n",
            crate::support::stack::ROUTES
        ),
        ..StackOptions::default()
    })
    .await;
    let mut browser = stack.login("alice").await;
    stack.advance(9 * 60);
    assert_eq!(
        browser.fetch(&stack.url("/x")).await.status,
        StatusCode::OK,
        "used within the idle window"
    );
    stack.advance(9 * 60);
    assert_eq!(
        browser.fetch(&stack.url("/x")).await.status,
        StatusCode::OK,
        "activity extended it"
    );
    stack.advance(11 * 60);
    assert_eq!(
        browser.fetch(&stack.url("/x")).await.status,
        StatusCode::UNAUTHORIZED,
        "idle too long"
    );
}

#[tokio::test]
async fn absolute_timeout_ends_even_an_active_session() {
    let stack = Stack::start_with(StackOptions {
        extra: format!(
            "{}\n[session]\nidle_timeout = \"30m\"\nabsolute_timeout = \"1h\"\n",
            crate::support::stack::ROUTES
        ),
        ..StackOptions::default()
    })
    .await;
    let mut browser = stack.login("alice").await;
    for _ in 0..3 {
        stack.advance(20 * 60 - 1);
        assert_eq!(browser.fetch(&stack.url("/x")).await.status, StatusCode::OK);
    }
    stack.advance(60);
    assert_eq!(
        browser.fetch(&stack.url("/x")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn refresh_under_32_concurrent_requests_reaches_the_provider_once_and_all_succeed() {
    let stack = Stack::start().await;
    let browser = stack.login("alice").await;
    let before = stack.idp.stats().refreshes;
    // The access token (5 min) is about to expire.
    stack.advance(5 * 60 - 10);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let mut b = browser.clone();
        let url = stack.url(&format!("/x/{i}"));
        tasks.push(tokio::spawn(async move { b.fetch(&url).await.status }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("join"), StatusCode::OK);
    }
    assert_eq!(
        stack.idp.stats().refreshes - before,
        1,
        "single-flight refresh"
    );
    // The rotated refresh token was kept: the next refresh works too.
    stack.advance(5 * 60);
    let mut b = browser.clone();
    assert_eq!(b.fetch(&stack.url("/y")).await.status, StatusCode::OK);
    assert_eq!(stack.idp.stats().refreshes - before, 2);
    assert_eq!(
        stack.idp.stats().refresh_failures,
        0,
        "no rotated token was reused"
    );
}

#[tokio::test]
async fn refresh_failure_ends_the_session_cleanly() {
    let stack = Stack::start().await;
    let mut browser = stack.login("alice").await;
    stack.idp.revoke_refresh_tokens("alice");
    stack.advance(5 * 60);
    assert_eq!(
        browser.fetch(&stack.url("/api-ish")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let page = browser.navigate(&stack.url("/page")).await;
    assert_eq!(
        page.status,
        StatusCode::FOUND,
        "a browser is sent to log in again"
    );
    assert!(page
        .location()
        .is_some_and(|l| l.starts_with(&stack.idp.issuer())));
}

#[tokio::test]
async fn logout_ends_the_session_revokes_and_redirects_to_the_provider() {
    let stack = Stack::start().await;
    let mut browser = stack.login("alice").await;
    let cookie = browser.jar["portcullis"].clone();
    let page = browser.navigate(&stack.url("/_auth/logout")).await;
    assert_eq!(page.status, StatusCode::FOUND);
    let location = page.location().expect("location");
    assert!(
        location.starts_with(&format!("{}/end_session", stack.idp.issuer())),
        "{location}"
    );
    let q = query_of(location);
    assert!(q.contains_key("id_token_hint"));
    assert_eq!(q["post_logout_redirect_uri"], stack.url("/"));
    assert!(page
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("portcullis=;")
            || c.starts_with("portcullis=") && c.contains("Max-Age=0")));
    assert_eq!(
        stack.idp.stats().revocations,
        1,
        "refresh token revoked (RFC 7009)"
    );

    // The old cookie is dead server-side, even if a copy survives.
    let mut copy = Browser::default();
    copy.jar.insert("portcullis".into(), cookie);
    assert_eq!(
        copy.fetch(&stack.url("/x")).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Following the provider's logout lands back on the app; the provider session is over too.
    let back = browser.follow(&absolute(&stack.url("/"), location)).await;
    assert!(
        back.body.contains("name=\"user\""),
        "the next protected page asks to sign in again"
    );
}

#[tokio::test]
async fn backchannel_logout_from_the_provider_ends_every_session_of_the_user() {
    let stack = Stack::start().await;
    let mut one = stack.login("alice").await;
    let mut two = stack.login("alice").await;
    let mut bob = stack.login("bob").await;
    let deliveries = stack.idp.backchannel_logout("alice").await;
    assert!(
        deliveries.iter().all(|d| d.is_delivered()),
        "{deliveries:?}"
    );
    assert_eq!(
        one.fetch(&stack.url("/x")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        two.fetch(&stack.url("/x")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        bob.fetch(&stack.url("/x")).await.status,
        StatusCode::OK,
        "only alice's sessions end"
    );
}

/// A back-channel logout that lands while a refresh waits on the provider ends
/// the session for good: the refresh's new tokens do not bring it back, and
/// the new refresh token is revoked.
#[tokio::test]
async fn a_logout_during_a_refresh_is_not_undone_by_the_refresh() {
    let stack = Stack::start().await;
    let browser = stack.login("alice").await;
    stack.advance(5 * 60 - 10); // the access token is about to expire
    stack.idp.misbehave_once(Misbehaviour::SlowRefresh);
    let revocations = stack.idp.stats().revocations;
    let url = stack.url("/x");
    let mut refreshing = browser.clone();
    let during = {
        let url = url.clone();
        tokio::spawn(async move { refreshing.fetch(&url).await.status })
    };
    tokio::time::sleep(Duration::from_millis(300)).await; // the refresh waits on the provider
    let deliveries = stack.idp.backchannel_logout("alice").await;
    assert!(
        deliveries.iter().all(|d| d.is_delivered()),
        "{deliveries:?}"
    );

    assert_eq!(during.await.expect("join"), StatusCode::UNAUTHORIZED);
    let mut after = browser.clone();
    assert_eq!(
        after.fetch(&url).await.status,
        StatusCode::UNAUTHORIZED,
        "the refresh brought the logged-out session back"
    );
    assert_eq!(
        stack.idp.stats().refreshes,
        1,
        "the refresh did reach the provider"
    );
    assert!(
        stack.idp.stats().revocations > revocations,
        "the refresh token issued after the logout was not revoked"
    );
}

#[tokio::test]
async fn invalid_backchannel_logout_tokens_are_refused_and_end_nothing() {
    let stack = Stack::start().await;
    let mut alice = stack.login("alice").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    let event = serde_json::json!({"http://schemas.openid.net/event/backchannel-logout": {}});
    let good = serde_json::json!({
        "iss": stack.idp.issuer(), "aud": "portcullis", "iat": now, "exp": now + 120,
        "jti": "jti-1", "sub": "alice", "events": event,
    });
    let header =
        serde_json::json!({"alg": "RS256", "typ": "logout+jwt", "kid": stack.idp.signing_kid()});
    let mut cases: Vec<(&str, String)> = Vec::new();
    let with = |k: &str, v: serde_json::Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().expect("object").remove(k);
        c
    };
    cases.push((
        "wrong issuer",
        stack
            .idp
            .sign_jwt(header.clone(), with("iss", "https://evil.example".into())),
    ));
    cases.push((
        "wrong audience",
        stack
            .idp
            .sign_jwt(header.clone(), with("aud", "other".into())),
    ));
    cases.push((
        "no events",
        stack.idp.sign_jwt(header.clone(), without("events")),
    ));
    cases.push((
        "a nonce",
        stack
            .idp
            .sign_jwt(header.clone(), with("nonce", "n".into())),
    ));
    cases.push(("no jti", stack.idp.sign_jwt(header.clone(), without("jti"))));
    cases.push((
        "expired",
        stack
            .idp
            .sign_jwt(header.clone(), with("exp", (now - 3600).into())),
    ));
    cases.push((
        "neither sub nor sid",
        stack.idp.sign_jwt(header.clone(), without("sub")),
    ));
    // Flip a character in the middle of the signature: the last one may only
    // carry padding bits and decode to the same bytes.
    let signed = stack.idp.sign_jwt(header.clone(), good.clone());
    let tampered = crate::support::flip_char(&signed, signed.len() - 20);
    cases.push(("bad signature", tampered));
    cases.push(("garbage", "not.a.jwt".into()));
    let mut browser = Browser::default();
    for (what, token) in cases {
        let page = browser
            .request(
                Method::POST,
                &stack.url("/_auth/backchannel-logout"),
                &[("content-type", "application/x-www-form-urlencoded")],
                &format!("logout_token={token}"),
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{what}");
    }
    assert_eq!(
        alice.fetch(&stack.url("/x")).await.status,
        StatusCode::OK,
        "nothing ended"
    );

    // The good token works once; its replay is refused.
    let token = stack.idp.sign_jwt(header, good);
    let post = |b: &mut Browser, t: String| {
        let url = stack.url("/_auth/backchannel-logout");
        let mut b = b.clone();
        async move {
            b.request(
                Method::POST,
                &url,
                &[("content-type", "application/x-www-form-urlencoded")],
                &format!("logout_token={t}"),
            )
            .await
            .status
        }
    };
    assert_eq!(post(&mut browser, token.clone()).await, StatusCode::OK);
    assert_eq!(
        post(&mut browser, token).await,
        StatusCode::BAD_REQUEST,
        "jti replay refused"
    );
    assert_eq!(
        alice.fetch(&stack.url("/x")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn userinfo_endpoint_shows_the_identity_and_never_a_token() {
    let stack = Stack::start().await;
    let mut browser = stack.login("alice").await;
    let page = browser.fetch(&stack.url("/_auth/userinfo")).await;
    assert_eq!(page.status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&page.body).expect("json");
    assert_eq!(json["sub"], "alice");
    assert_eq!(json["roles"], serde_json::json!(["admin", "user"]));
    assert!(json["expires_at"].is_i64());
    assert!(!page.body.contains("eyJ"), "no token: {}", page.body);
    let anonymous = Browser::default()
        .fetch(&stack.url("/_auth/userinfo"))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn websocket_of_a_session_closes_when_the_session_is_logged_out() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let stack = Stack::start().await;
    let mut browser = stack.login("alice").await;
    let mut request = format!("ws://{}/ws", stack.addr)
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "cookie",
        format!("portcullis={}", browser.jar["portcullis"])
            .parse()
            .expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade with a session");
    ws.send("ping".into()).await.expect("send");
    let echoed = ws.next().await.expect("message").expect("ok");
    assert_eq!(echoed.into_text().expect("text").as_str(), "ping");
    browser.navigate(&stack.url("/_auth/logout")).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(msg)) if msg.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the WebSocket is closed after logout");
}

#[tokio::test]
async fn client_secret_post_is_used_when_the_provider_offers_only_that() {
    let stack = Stack::start_with(StackOptions {
        client_auth: portcullis_devidp::ClientAuth::Post,
        ..StackOptions::default()
    })
    .await;
    let mut browser = stack.browser();
    let page = browser.sign_in(&stack.url("/x"), "alice").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(stack.idp.stats().code_exchanges, 1);
}

#[tokio::test]
async fn a_short_idle_timeout_never_expires_an_active_user() {
    // See: e2e report — activity was recorded at most every 30 s, so a 20 s
    // idle timeout logged out a user active every 4 s.
    let stack = Stack::start_with(StackOptions {
        extra: format!(
            "{}\n[session]\nidle_timeout = \"20s\"\n",
            crate::support::stack::ROUTES
        ),
        ..StackOptions::default()
    })
    .await;
    let mut browser = stack.login("alice").await;
    for _ in 0..15 {
        stack.clock.advance(4);
        assert_eq!(browser.fetch(&stack.url("/x")).await.status, StatusCode::OK);
    }
    stack.clock.advance(21);
    assert_eq!(
        browser.fetch(&stack.url("/x")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// See: security review, finding 8.
#[tokio::test]
async fn with_pass_access_token_the_app_gets_only_the_proxys_authorization() {
    let stack = Stack::start_with(StackOptions {
        pass_access_token: true,
        ..StackOptions::default()
    })
    .await;
    let mut alice = stack.login("alice").await;
    let forged = "Bearer forged.by.client";
    let page = alice
        .request(
            Method::GET,
            &stack.url("/x"),
            &[("authorization", forged), ("accept", "application/json")],
            "",
        )
        .await;
    let auth = page
        .seen()
        .one("authorization")
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        auth.starts_with("Bearer ey"),
        "the session's access token: {auth}"
    );
    let public = alice
        .request(
            Method::GET,
            &stack.url("/public/x"),
            &[("authorization", forged)],
            "",
        )
        .await;
    assert!(
        public.seen().one("authorization").is_none(),
        "a client's Authorization never passes"
    );
}

/// The session as the store holds it, found by the browser's session cookie.
async fn stored_session(
    stack: &Stack,
    browser: &Browser,
) -> std::sync::Arc<portcullis::session::Session> {
    let cookie = browser.jar.get("portcullis").expect("a session cookie");
    let id = portcullis::session::SessionId::parse(cookie).expect("a session id");
    stack
        .proxy
        .state
        .store
        .load(&id.key())
        .await
        .expect("the store answers")
        .expect("the session is stored")
}

/// Issue 8: a token the app is never sent is not kept, so no memory or Redis
/// dump can leak it; its expiry is, and still times the refresh. A reload that
/// turns `upstream.pass_access_token` on gets the token at the next request.
#[tokio::test]
async fn without_pass_access_token_no_access_token_is_stored_yet_refresh_runs() {
    let stack = Stack::start().await;
    let mut alice = stack.login("alice").await;
    let session = stored_session(&stack, &alice).await;
    assert!(session.access_token.is_none(), "no access token kept");
    assert!(session.access_expires_at.is_some(), "its expiry is kept");
    assert!(session.refresh_token.is_some());

    let before = stack.idp.stats().refreshes;
    stack.advance(5 * 60 - 10);
    assert_eq!(alice.fetch(&stack.url("/x")).await.status, StatusCode::OK);
    assert_eq!(
        stack.idp.stats().refreshes - before,
        1,
        "refreshed when due"
    );
    let refreshed = stored_session(&stack, &alice).await;
    assert!(refreshed.access_token.is_none(), "still none after refresh");
    assert!(refreshed.access_expires_at > session.access_expires_at);

    stack
        .reload_with(|text| text.replace("pass_access_token = false", "pass_access_token = true"))
        .await
        .expect("reload");
    let page = alice
        .request(
            Method::GET,
            &stack.url("/x"),
            &[("accept", "application/json")],
            "",
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let auth = page
        .seen()
        .one("authorization")
        .unwrap_or_default()
        .to_owned();
    assert!(
        auth.starts_with("Bearer ey"),
        "the app gets a token: {auth:?}"
    );
    assert_eq!(
        stack.idp.stats().refreshes - before,
        2,
        "fetched by a refresh"
    );
    assert!(stored_session(&stack, &alice).await.access_token.is_some());
}
