//! `portcullis demo` (SPEC §1): the newcomer's first run works as the banner says.

use http::StatusCode;

use crate::support::stack::Browser;

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
