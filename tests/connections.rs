//! Connected accounts (SPEC §13) end to end: a development provider plays the
//! third-party service (plain OAuth 2.0, its `/api/me` the third-party API), the
//! proxy links a signed-in user's account there and hands its access token to
//! routes that name the connection.

use std::time::Duration;

use http::{Method, StatusCode};
use portcullis_devidp as devidp;

use crate::support::stack::{absolute, Browser, ServiceOptions, Stack, StackOptions};

/// Routes: the service's API through the proxy, and the echo app with the
/// token (to see exactly what the app gets).
const ROUTES: &str = r#"
[[route]]
name = "svc-api"
path = "/svc"
upstream = "svc"
strip_prefix = "/svc"
connections = ["svc"]

[[route]]
name = "app-with-token"
path = "/with-token"
connections = ["svc"]

[[route]]
name = "public"
path = "/public"
auth = "public"
"#;

/// `admin.connections_api_token` of every stack here.
const API_TOKEN: &str = "offline-jobs-0123456789abcdef0123456789";

async fn stack_with(idp: impl Fn(&mut devidp::Config) + 'static) -> Stack {
    Stack::start_with(StackOptions {
        extra: ROUTES.to_owned(),
        admin: format!("connections_api_token = \"{API_TOKEN}\""),
        services: vec![ServiceOptions {
            idp: Box::new(idp),
            ..ServiceOptions::named("svc")
        }],
        ..Default::default()
    })
    .await
}

async fn stack() -> Stack {
    stack_with(|_| {}).await
}

/// Signs `user` in at the proxy, then links their account at the service
/// (signing in there as `user` too); returns the browser and where it landed.
async fn linked(stack: &Stack, user: &str) -> Browser {
    let mut browser = stack.login(user).await;
    let landed = connect(stack, &mut browser, user, "/public/after").await;
    assert_eq!(landed, "/public/after", "connect lands on rd");
    browser
}

/// Follows `connect/svc?rd=RD` through the service's sign-in; returns the path
/// (and query) the browser was finally sent to.
async fn connect(stack: &Stack, browser: &mut Browser, user: &str, rd: &str) -> String {
    connect_at(&stack.url(""), browser, user, rd).await
}

/// [`connect`] through the proxy at `base`.
async fn connect_at(base: &str, browser: &mut Browser, user: &str, rd: &str) -> String {
    let start = format!("{base}/_auth/connect/svc?rd={rd}");
    let to_service = browser.navigate(&start).await;
    assert_eq!(to_service.status, StatusCode::FOUND, "{}", to_service.body);
    let authorize = to_service.location().expect("to the service").to_owned();
    let query = crate::support::query_pairs(&authorize);
    let has = |k: &str, v: Option<&str>| {
        query
            .iter()
            .any(|(qk, qv)| qk == k && v.is_none_or(|v| qv == v))
    };
    assert!(has("code_challenge_method", Some("S256")), "{authorize}");
    assert!(
        has("state", None) && has("code_challenge", None),
        "{authorize}"
    );
    assert!(!has("nonce", None), "plain OAuth: no nonce");
    let page = browser.navigate(&authorize).await;
    let callback = if page.body.contains("name=\"user\"") {
        browser.submit_sign_in(&page, user).await
    } else {
        absolute(&authorize, page.location().expect("to the callback"))
    };
    assert!(
        callback.contains("/_auth/connect/svc/callback?"),
        "{callback}"
    );
    let back = browser.navigate(&callback).await;
    assert_eq!(back.status, StatusCode::FOUND, "{}", back.body);
    back.location().expect("back to rd").to_owned()
}

async fn api_me(stack: &Stack, browser: &mut Browser) -> crate::support::stack::Page {
    browser.fetch(&stack.url("/svc/api/me")).await
}

async fn connections(stack: &Stack, browser: &mut Browser) -> serde_json::Value {
    let page = browser.fetch(&stack.url("/_auth/connections")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    serde_json::from_str(&page.body).expect("JSON")
}

/// Whether `GET connections` says the user's `svc` account is linked.
async fn is_connected(stack: &Stack, browser: &mut Browser) -> bool {
    connections(stack, browser).await[0]["connected"] == true
}

/// Fetches every URL at once, as copies of `browser`; each answers 200.
async fn all_answer_ok(browser: &Browser, urls: impl Iterator<Item = String>) {
    let mut tasks = tokio::task::JoinSet::new();
    for url in urls {
        let mut browser = browser.clone();
        tasks.spawn(async move { browser.fetch(&url).await.status });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.expect("task"), StatusCode::OK);
    }
}

async fn metric(stack: &Stack, event: &str) -> u64 {
    let text = crate::support::get(&stack.metrics_url(), &[]).await.2;
    let needle =
        format!("portcullis_connection_events_total{{connection=\"svc\",event=\"{event}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_linked_account_reaches_the_third_party_api_and_the_browser_sees_no_token() {
    let stack = stack().await;
    let mut browser = linked(&stack, "alice").await;

    let me = api_me(&stack, &mut browser).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let me: serde_json::Value = serde_json::from_str(&me.body).expect("JSON");
    assert_eq!(me["sub"], "alice");
    assert_eq!(
        me["client_id"],
        crate::support::stack::service_client_id("svc")
    );

    let listed = connections(&stack, &mut browser).await;
    assert_eq!(listed[0]["name"], "svc");
    assert_eq!(listed[0]["display_name"], "svc service");
    assert_eq!(listed[0]["connected"], true);
    assert_eq!(
        listed[0]["scopes"],
        serde_json::json!(["repo", "read:user"])
    );
    assert!(listed[0]["expires_at"].is_i64());
    let text = listed.to_string();
    assert!(!text.contains("token"), "never a token: {text}");
    for value in browser.jar.values() {
        assert!(
            value.len() < 200 || !value.contains('.'),
            "a token-like cookie: {value}"
        );
    }
    assert_eq!(metric(&stack, "connected").await, 1);
}

#[tokio::test]
async fn the_app_gets_the_token_in_the_header_and_never_the_clients_copy() {
    let stack = stack().await;
    let mut browser = linked(&stack, "alice").await;
    let page = browser
        .request(
            Method::GET,
            &stack.url("/with-token"),
            &[
                ("accept", "application/json"),
                ("authorization", "Bearer forged"),
            ],
            "",
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let seen = page.seen();
    let auth = seen.all("authorization");
    assert_eq!(auth.len(), 1, "{auth:?}");
    assert!(
        auth[0].starts_with("Bearer ") && !auth[0].contains("forged"),
        "{auth:?}"
    );
}

#[tokio::test]
async fn without_a_link_browsers_are_sent_to_connect_and_scripts_get_403() {
    let stack = stack().await;
    let mut browser = stack.login("alice").await;

    let script = api_me(&stack, &mut browser).await;
    assert_eq!(script.status, StatusCode::FORBIDDEN, "{}", script.body);
    let body: serde_json::Value = serde_json::from_str(&script.body).expect("JSON");
    assert_eq!(body["error"], "connection_required");
    assert_eq!(body["connection"], "svc");
    let connect_url = body["connect_url"].as_str().expect("connect_url");
    assert!(
        connect_url.ends_with("/_auth/connect/svc?rd=%2Fsvc%2Fapi%2Fme"),
        "{connect_url}"
    );

    let navigation = browser.navigate(&stack.url("/svc/api/me")).await;
    assert_eq!(navigation.status, StatusCode::FOUND);
    assert_eq!(navigation.location(), Some(connect_url));

    // The round trip: connect, then back where the user was going.
    let landed = connect(&stack, &mut browser, "alice", "%2Fsvc%2Fapi%2Fme").await;
    assert_eq!(landed, "/svc/api/me");
    assert_eq!(api_me(&stack, &mut browser).await.status, StatusCode::OK);
}

#[tokio::test]
async fn connect_without_a_session_signs_in_first_then_goes_on() {
    let stack = stack().await;
    let mut browser = stack.browser();
    let first = browser
        .navigate(&stack.url("/_auth/connect/svc?rd=/public/x"))
        .await;
    assert_eq!(first.status, StatusCode::FOUND);
    let page = browser
        .follow(&absolute(&first.url, first.location().unwrap_or("/")))
        .await;
    assert!(
        page.body.contains("name=\"user\""),
        "the login provider's sign-in"
    );
    let back = browser.submit_sign_in(&page, "alice").await;
    // The login callback returns to connect/svc, which goes on to the service.
    let after_login = browser.navigate(&back).await;
    let connect_again = absolute(&back, after_login.location().expect("back to connect"));
    assert!(
        connect_again.contains("/_auth/connect/svc?rd="),
        "{connect_again}"
    );
    let to_service = browser.navigate(&connect_again).await;
    assert!(
        to_service
            .location()
            .unwrap_or_default()
            .starts_with(&stack.service("svc").issuer()),
        "{:?}",
        to_service.location()
    );
    let scripts = crate::support::get(
        &stack.url("/_auth/connect/svc"),
        &[("accept", "application/json")],
    )
    .await;
    assert_eq!(scripts.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_under_32_concurrent_requests_with_rotation() {
    let stack = stack().await;
    let browser = linked(&stack, "alice").await;
    let service = stack.service("svc");
    let before = service.stats().refreshes;

    stack.advance(600);
    all_answer_ok(&browser, (0..32).map(|_| stack.url("/svc/api/me"))).await;
    assert_eq!(
        service.stats().refreshes - before,
        1,
        "one refresh for 32 requests"
    );
    assert_eq!(
        service.stats().refresh_failures,
        0,
        "no rotated-out token was spent"
    );
    assert_eq!(metric(&stack, "refreshed").await, 1);

    // Rotated again later: the stored refresh token is the newest one.
    stack.advance(600);
    let mut browser = browser.clone();
    assert_eq!(api_me(&stack, &mut browser).await.status, StatusCode::OK);
    assert_eq!(service.stats().refreshes - before, 2);
    assert_eq!(service.stats().refresh_failures, 0);
}

#[tokio::test]
async fn a_refused_refresh_removes_the_link() {
    let stack = stack().await;
    let mut browser = linked(&stack, "alice").await;
    stack
        .service("svc")
        .set_misbehaviour(devidp::Misbehaviour::RefreshFails);
    stack.advance(600);
    let refused = api_me(&stack, &mut browser).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("connection_required"));
    assert_eq!(metric(&stack, "refresh_refused").await, 1);
    assert!(!is_connected(&stack, &mut browser).await);
    stack.service("svc").clear_misbehaviour();
    assert_eq!(
        api_me(&stack, &mut browser).await.status,
        StatusCode::FORBIDDEN,
        "gone for good"
    );
}

#[tokio::test]
async fn a_third_party_down_gives_502_and_keeps_the_link() {
    let stack = stack().await;
    let mut browser = linked(&stack, "alice").await;
    stack
        .service("svc")
        .set_misbehaviour(devidp::Misbehaviour::ServiceUnavailable);
    stack.advance(600);
    let down = api_me(&stack, &mut browser).await;
    assert_eq!(down.status, StatusCode::BAD_GATEWAY, "{}", down.body);
    assert!(down.body.contains("connection_unavailable"));
    assert!(is_connected(&stack, &mut browser).await);
    stack.service("svc").clear_misbehaviour();
    assert_eq!(
        api_me(&stack, &mut browser).await.status,
        StatusCode::OK,
        "refreshed once back"
    );
}

#[tokio::test]
async fn disconnect_revokes_and_deletes_and_is_same_origin_only() {
    let stack = stack().await;
    let mut browser = linked(&stack, "alice").await;
    let service = stack.service("svc");
    let client_id = crate::support::stack::service_client_id("svc");
    assert_eq!(service.live_grants("alice", &client_id), 1);
    let url = stack.url("/_auth/connect/svc/disconnect");

    let cross_site = browser
        .request(
            Method::POST,
            &url,
            &[("origin", "https://evil.example")],
            "",
        )
        .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    let unlabelled = browser.request(Method::POST, &url, &[], "").await;
    assert_eq!(
        unlabelled.status,
        StatusCode::FORBIDDEN,
        "neither header: refused"
    );
    assert!(is_connected(&stack, &mut browser).await);

    let origin = stack.url("");
    let done = browser
        .request(
            Method::POST,
            &url,
            &[("origin", origin.trim_end_matches('/'))],
            "",
        )
        .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.body);
    assert_eq!(
        service.live_grants("alice", &client_id),
        0,
        "revoked at the service"
    );
    assert!(!is_connected(&stack, &mut browser).await);
    assert_eq!(
        api_me(&stack, &mut browser).await.status,
        StatusCode::FORBIDDEN
    );

    // A form post lands on rd (checked like login's).
    let mut browser = linked(&stack, "alice").await;
    let form = browser
        .request(
            Method::POST,
            &url,
            &[
                ("sec-fetch-site", "same-origin"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "rd=https%3A%2F%2Fevil.example%2F",
        )
        .await;
    assert_eq!(form.status, StatusCode::SEE_OTHER);
    assert_eq!(form.location(), Some("/"), "a hostile rd lands home");
    assert!(!is_connected(&stack, &mut browser).await);
}

#[tokio::test]
async fn a_link_survives_logout_and_login_and_belongs_to_its_user() {
    let stack = stack().await;
    let mut alice = linked(&stack, "alice").await;
    let _ = alice.navigate(&stack.url("/_auth/logout")).await;
    let mut alice = stack.login("alice").await;
    assert_eq!(
        api_me(&stack, &mut alice).await.status,
        StatusCode::OK,
        "kept across logout"
    );
    let mut bob = stack.login("bob").await;
    assert_eq!(
        api_me(&stack, &mut bob).await.status,
        StatusCode::FORBIDDEN,
        "alice's link is not bob's"
    );
}

#[tokio::test]
async fn state_replay_another_browser_and_another_session_are_refused() {
    let stack = stack().await;
    let mut alice = stack.login("alice").await;
    let to_service = alice
        .navigate(&stack.url("/_auth/connect/svc?rd=/public/a"))
        .await;
    let authorize = to_service.location().expect("to the service").to_owned();
    let page = alice.navigate(&authorize).await;
    let callback = alice.submit_sign_in(&page, "alice").await;

    // Another browser (no connect cookie) with a fresh session of its own.
    let mut mallory = stack.login("bob").await;
    let foreign = mallory.navigate(&callback).await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST, "{}", foreign.body);

    // The same browser after signing in as someone else: the session differs.
    let mut switched = alice.clone();
    switched.jar.retain(|name, _| name.contains("connect"));
    let mut switched = {
        let mut b = stack.login("bob").await;
        b.jar.extend(switched.jar.clone());
        b
    };
    let other_session = switched.navigate(&callback).await;
    assert_eq!(
        other_session.status,
        StatusCode::BAD_REQUEST,
        "{}",
        other_session.body
    );

    // The right browser: linked once; the same callback again, cookie and
    // session included (a copy taken before), is a replay.
    let mut replaying = alice.clone();
    let ok = alice.navigate(&callback).await;
    assert_eq!(ok.status, StatusCode::FOUND, "{}", ok.body);
    assert_eq!(ok.location(), Some("/public/a"));
    let again = replaying.navigate(&callback).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "replayed state");
    assert_eq!(api_me(&stack, &mut alice).await.status, StatusCode::OK);
    assert_eq!(
        api_me(&stack, &mut mallory).await.status,
        StatusCode::FORBIDDEN,
        "nothing stored for bob"
    );
}

#[tokio::test]
async fn a_hostile_rd_lands_home_and_a_refused_consent_lands_on_rd_with_connect_error() {
    let stack = stack().await;
    let mut browser = stack.login("alice").await;
    let landed = connect(
        &stack,
        &mut browser,
        "alice",
        "https%3A%2F%2Fevil.example%2F",
    )
    .await;
    assert_eq!(landed, "/");

    let to_service = browser
        .navigate(&stack.url("/_auth/connect/svc?rd=/public/b"))
        .await;
    let authorize = to_service.location().expect("to the service").to_owned();
    let page = browser.navigate(&authorize).await;
    let page = if page.body.contains("name=\"user\"") {
        page
    } else {
        // Already signed in at the service: ask for its form again.
        browser.navigate(&format!("{authorize}&prompt=login")).await
    };
    let back = browser.cancel_sign_in(&page).await;
    let landed = browser.navigate(&back).await;
    assert_eq!(landed.status, StatusCode::FOUND, "{}", landed.body);
    assert_eq!(
        landed.location(),
        Some("/public/b?connect_error=access_denied")
    );
}

#[tokio::test]
async fn an_unknown_connection_is_404_and_connections_needs_a_session() {
    let stack = stack().await;
    let mut browser = stack.login("alice").await;
    let unknown = browser.navigate(&stack.url("/_auth/connect/nope")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let (status, _, _) = crate::support::get(
        &stack.url("/_auth/connections"),
        &[("accept", "application/json")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let _ = Duration::ZERO;
}

#[tokio::test]
async fn the_admin_token_endpoint_needs_its_secret_and_is_not_on_the_public_listener() {
    let stack = stack().await;
    let _alice = linked(&stack, "alice").await;
    let admin = format!(
        "http://{}/connections/svc/token?provider=default&sub=alice",
        stack.proxy.admin_addr
    );
    let bearer = format!("Bearer {API_TOKEN}");

    let (status, headers, _) = crate::support::get(&admin, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key("www-authenticate"));
    let wrong = crate::support::get(
        &admin,
        &[(
            "authorization",
            "Bearer offline-jobs-0123456789abcdef012345678X",
        )],
    )
    .await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);

    let (status, _, body) = crate::support::get(&admin, &[("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let token = answer["access_token"].as_str().expect("a token");
    assert!(answer["expires_at"].is_i64());
    assert_eq!(answer["scopes"], serde_json::json!(["repo", "read:user"]));
    // The token works at the service itself (an offline job calls it directly).
    let me = crate::support::get(
        &format!("{}/api/me", stack.service("svc").issuer()),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(me.0, StatusCode::OK, "{}", me.2);

    let unlinked = admin.replace("sub=alice", "sub=bob");
    let (status, _, _) = crate::support::get(&unlinked, &[("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let no_sub = admin.replace("&sub=alice", "");
    let (status, _, _) = crate::support::get(&no_sub, &[("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The public listener has no such endpoint: the path is an ordinary
    // route's (here, the default policy's: sign in first).
    let public = stack.url("/connections/svc/token?provider=default&sub=alice");
    let (status, _, body) = crate::support::get(
        &public,
        &[("authorization", &bearer), ("accept", "application/json")],
    )
    .await;
    assert_ne!(status, StatusCode::OK);
    assert!(!body.contains(token));
}

#[tokio::test]
async fn the_admin_token_endpoint_is_off_without_its_secret() {
    let stack = Stack::start_with(StackOptions {
        extra: ROUTES.to_owned(),
        services: vec![ServiceOptions::named("svc")],
        ..Default::default()
    })
    .await;
    let _alice = linked(&stack, "alice").await;
    let admin = format!(
        "http://{}/connections/svc/token?provider=default&sub=alice",
        stack.proxy.admin_addr
    );
    let (status, _, _) = crate::support::get(&admin, &[("authorization", "Bearer ")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_authorization_response_from_another_issuer_stores_nothing() {
    let stack = stack().await;
    let mut browser = stack.login("alice").await;
    let to_service = browser
        .navigate(&stack.url("/_auth/connect/svc?rd=/public/c"))
        .await;
    let authorize = to_service.location().expect("to the service").to_owned();
    let page = browser.navigate(&authorize).await;
    let callback = browser.submit_sign_in(&page, "alice").await;
    assert!(
        callback.contains("iss="),
        "the service sends RFC 9207 iss: {callback}"
    );
    let forged = regex::Regex::new("iss=[^&]*")
        .expect("regex")
        .replace(&callback, "iss=https%3A%2F%2Fevil.example")
        .into_owned();
    let landed = browser.navigate(&forged).await;
    assert_eq!(landed.status, StatusCode::FOUND, "{}", landed.body);
    assert_eq!(
        landed.location(),
        Some("/public/c?connect_error=iss_mismatch")
    );
    assert!(!is_connected(&stack, &mut browser).await);

    // The service advertises RFC 9207: a response without `iss` is refused too.
    let to_service = browser
        .navigate(&stack.url("/_auth/connect/svc?rd=/public/c"))
        .await;
    let authorize = to_service.location().expect("to the service").to_owned();
    let page = browser.navigate(&authorize).await;
    let callback = match page.location() {
        Some(next) => absolute(&authorize, next),
        None => browser.submit_sign_in(&page, "alice").await,
    };
    let stripped = regex::Regex::new("&?iss=[^&]*")
        .expect("regex")
        .replace(&callback, "")
        .into_owned();
    let landed = browser.navigate(&stripped).await;
    assert_eq!(
        landed.location(),
        Some("/public/c?connect_error=iss_missing")
    );
    assert!(!is_connected(&stack, &mut browser).await);
}

/// The same behaviour with links in Redis, shared by replicas (SPEC §13).
mod redis {
    use super::*;
    use crate::support::redis::Replicas;

    const ROUTE: &str = r#"
[[route]]
name = "svc-api"
path = "/svc"
upstream = "svc"
strip_prefix = "/svc"
connections = ["svc"]
"#;

    async fn linked_at(replicas: &Replicas, user: &str) -> Browser {
        let mut browser = replicas.login(0, user).await;
        let base = replicas.url(0, "");
        let landed = connect_at(&base, &mut browser, user, "/public/x").await;
        assert_eq!(landed, "/public/x");
        browser
    }

    #[tokio::test]
    async fn two_replicas_refresh_a_link_once_under_32_concurrent_requests() {
        let replicas = Replicas::start_with_service(2, ROUTE).await;
        let browser = linked_at(&replicas, "alice").await;
        let service = replicas.service.as_ref().expect("service");
        let before = service.stats().refreshes;
        // A slow answer keeps both replicas' requests waiting on one refresh.
        service.set_misbehaviour(devidp::Misbehaviour::SlowRefresh);
        replicas.advance(600);
        all_answer_ok(
            &browser,
            (0..32).map(|i| replicas.url(i % 2, "/svc/api/me")),
        )
        .await;
        assert_eq!(
            service.stats().refreshes - before,
            1,
            "one refresh across replicas"
        );
        assert_eq!(
            service.stats().refresh_failures,
            0,
            "no rotated-out token spent"
        );
    }

    #[tokio::test]
    async fn a_link_survives_restarts_and_is_seen_by_every_replica() {
        let mut replicas = Replicas::start_with_service(2, ROUTE).await;
        let mut browser = linked_at(&replicas, "alice").await;
        replicas.restart(0).await;
        replicas.restart(1).await;
        for i in 0..2 {
            let me = browser.fetch(&replicas.url(i, "/svc/api/me")).await;
            assert_eq!(me.status, StatusCode::OK, "replica {i}: {}", me.body);
        }
        // A disconnect on one replica is seen on the other at once.
        let origin = replicas.public.clone();
        let done = browser
            .request(
                Method::POST,
                &replicas.url(0, "/_auth/connect/svc/disconnect"),
                &[("origin", &origin)],
                "",
            )
            .await;
        assert_eq!(done.status, StatusCode::NO_CONTENT);
        let gone = browser.fetch(&replicas.url(1, "/svc/api/me")).await;
        assert_eq!(gone.status, StatusCode::FORBIDDEN);
        let dump = format!("{:?}", replicas.redis.dump().await);
        assert!(!dump.contains("alice"), "a dump names no user");
    }
}

#[tokio::test]
async fn a_custom_header_carries_the_bare_token_and_no_client_spelling_of_it_passes() {
    let stack = Stack::start_with(StackOptions {
        extra: ROUTES.to_owned(),
        services: vec![ServiceOptions {
            table: "header = \"X-Svc-Token\"".to_owned(),
            ..ServiceOptions::named("svc")
        }],
        ..Default::default()
    })
    .await;
    let mut browser = linked(&stack, "alice").await;
    let forged = [
        ("x-svc-token", "forged"),
        ("x_svc_token", "forged"),
        ("accept", "application/json"),
    ];
    for path in ["/with-token", "/public/page"] {
        let page = browser
            .request(Method::GET, &stack.url(path), &forged, "")
            .await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        let seen = page.seen();
        let tokens: Vec<&str> = seen
            .all("x-svc-token")
            .into_iter()
            .chain(seen.all("x_svc_token"))
            .collect();
        if path == "/with-token" {
            assert_eq!(tokens.len(), 1, "{tokens:?}");
            assert!(!tokens[0].contains("forged") && !tokens[0].starts_with("Bearer "));
        } else {
            assert!(
                tokens.is_empty(),
                "a client's copy reached the app: {tokens:?}"
            );
        }
    }
}

#[tokio::test]
async fn check_never_hands_a_token_to_a_caller_that_is_not_a_trusted_front_proxy() {
    let stack = stack().await;
    let mut browser = linked(&stack, "alice").await;
    for headers in [
        vec![
            ("x-forwarded-uri", "/with-token"),
            ("x-forwarded-method", "GET"),
        ],
        vec![("x-original-uri", "/with-token")],
    ] {
        let page = browser
            .request(Method::GET, &stack.url("/_auth/check"), &headers, "")
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            !page.headers.contains_key("authorization"),
            "a token for a browser: {:?}",
            page.headers
        );
    }
    let envoy = browser
        .request(Method::GET, &stack.url("/_auth/check/with-token"), &[], "")
        .await;
    assert!(!envoy.headers.contains_key("authorization"));
}

/// Starts a connect and signs in at the service; returns the callback URL.
async fn callback_url(stack: &Stack, browser: &mut Browser, rd: &str) -> String {
    let to_service = browser
        .navigate(&stack.url(&format!("/_auth/connect/svc?rd={rd}")))
        .await;
    let authorize = to_service.location().expect("to the service").to_owned();
    let page = browser.navigate(&authorize).await;
    match page.location() {
        Some(next) => absolute(&authorize, next),
        None => browser.submit_sign_in(&page, "alice").await,
    }
}

#[tokio::test]
async fn a_callback_with_another_or_no_state_or_too_late_stores_nothing() {
    let stack = stack().await;
    let mut browser = stack.login("alice").await;

    let callback = callback_url(&stack, &mut browser, "/public/d").await;
    let mut other_state = browser.clone();
    let wrong = regex::Regex::new("state=[^&]*")
        .expect("regex")
        .replace(&callback, "state=not-the-one")
        .into_owned();
    assert_eq!(
        other_state.navigate(&wrong).await.status,
        StatusCode::BAD_REQUEST
    );
    let none = regex::Regex::new("&?state=[^&]*")
        .expect("regex")
        .replace(&callback, "")
        .into_owned();
    assert_eq!(
        other_state.navigate(&none).await.status,
        StatusCode::BAD_REQUEST
    );

    let late = callback_url(&stack, &mut browser, "/public/d").await;
    stack.advance(601);
    let landed = browser.navigate(&late).await;
    assert_eq!(landed.location(), Some("/public/d?connect_error=expired"));
    assert!(!is_connected(&stack, &mut browser).await);
}
