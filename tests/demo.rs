//! `portcullis demo` (SPEC §1): the newcomer's first run works as the banner says.

use http::{Method, StatusCode};

use crate::support::stack::{absolute, Browser};

#[tokio::test]
async fn demo_signs_in_alice_to_admin_and_refuses_bob() {
    crate::support::init();
    let demo = portcullis::demo::start(0).await.expect("demo starts");
    assert!(demo.banner().contains(&demo.url));
    let url = |path: &str| format!("{}{}", demo.url.trim_end_matches('/'), path);
    wait_ready(&demo).await;

    let mut anonymous = Browser::default();
    let home = anonymous.navigate(&url("/")).await;
    assert_eq!(home.status, StatusCode::OK, "the home page is public");
    assert!(home.body.contains("not signed in"));

    let mut alice = Browser::default();
    let page = alice.sign_in(&url("/admin"), "alice").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("Signed in as <strong>alice</strong>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("x-forwarded-groups"),
        "the app shows the identity headers"
    );

    let mut bob = Browser::default();
    let me = bob.sign_in(&url("/me"), "bob").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        bob.navigate(&url("/admin")).await.status,
        StatusCode::FORBIDDEN
    );
    demo.proxy.shutdown().await;
}

#[tokio::test]
async fn demo_connects_alices_acme_account_and_disconnects_it() {
    crate::support::init();
    let demo = portcullis::demo::start(0).await.expect("demo starts");
    let url = |path: &str| format!("{}{}", demo.url.trim_end_matches('/'), path);
    assert!(
        demo.banner().contains(&url("/connected")),
        "the banner names the page"
    );
    wait_ready(&demo).await;

    let mut alice = Browser::default();
    let home = alice.sign_in(&url("/me"), "alice").await;
    assert!(
        home.body
            .contains("href=\"/_auth/connect/acme?rd=/connected\">Connect a (development) third-party account"),
        "{}",
        home.body
    );
    let page = alice.navigate(&url("/connected")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("fetch(url"), "the page's script");
    assert!(
        page.body
            .contains("action=\"/_auth/connect/acme/disconnect\""),
        "{}",
        page.body
    );
    let not_yet = alice.fetch(&url("/acme/api/me")).await;
    assert_eq!(not_yet.status, StatusCode::FORBIDDEN, "{}", not_yet.body);

    // The link, as a person clicks it: to Acme, sign in there as alice, back.
    let to_acme = alice
        .navigate(&url("/_auth/connect/acme?rd=/connected"))
        .await;
    assert_eq!(to_acme.status, StatusCode::FOUND, "{}", to_acme.body);
    let authorize = to_acme.location().expect("to Acme").to_owned();
    assert!(authorize.starts_with(&demo.service.issuer()), "{authorize}");
    let sign_in = alice.navigate(&authorize).await;
    assert!(sign_in.body.contains("name=\"user\""), "Acme's own sign-in");
    let callback = alice.submit_sign_in(&sign_in, "alice").await;
    assert!(
        callback.contains("/_auth/connect/acme/callback?"),
        "{callback}"
    );
    let back = alice.navigate(&callback).await;
    assert_eq!(back.status, StatusCode::FOUND, "{}", back.body);
    assert_eq!(back.location(), Some("/connected"));

    let me = alice.fetch(&url("/acme/api/me")).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let me: serde_json::Value = serde_json::from_str(&me.body).expect("JSON");
    assert_eq!(me["sub"], "alice", "the same person at Acme");
    assert_eq!(me["client_id"], "portcullis-demo-acme");
    let listed = alice.fetch(&url("/_auth/connections")).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let listed: serde_json::Value = serde_json::from_str(&listed.body).expect("JSON");
    assert_eq!(listed[0]["name"], "acme");
    assert_eq!(listed[0]["connected"], true);

    // The page's Disconnect button: a form post, with the browser's Origin.
    let origin = url("");
    let done = alice
        .request(
            Method::POST,
            &url("/_auth/connect/acme/disconnect"),
            &[
                ("origin", origin.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
                ("accept", "text/html"),
            ],
            "rd=%2Fconnected",
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        absolute(&done.url, done.location().unwrap_or_default()),
        url("/connected")
    );
    let gone = alice.fetch(&url("/acme/api/me")).await;
    assert_eq!(gone.status, StatusCode::FORBIDDEN, "{}", gone.body);
    let gone: serde_json::Value = serde_json::from_str(&gone.body).expect("JSON");
    assert_eq!(gone["error"], "connection_required");
    assert_eq!(gone["connection"], "acme");
    demo.proxy.shutdown().await;
}

async fn wait_ready(demo: &portcullis::demo::Demo) {
    let ready = format!("http://{}/readyz", demo.proxy.admin_addr);
    for _ in 0..100 {
        if crate::support::get(&ready, &[]).await.0 == StatusCode::OK {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the demo never became ready");
}
