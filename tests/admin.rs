//! The admin listener (SPEC §9).

use http::StatusCode;

use crate::support::stack::Stack;
use crate::support::{base_config, get, Echo, Proxy};

#[tokio::test]
async fn admin_serves_health_readiness_and_metrics() {
    let stack = Stack::start().await;
    let mut alice = stack.login("alice").await;
    assert_eq!(
        alice.fetch(&stack.url("/public/x")).await.status,
        StatusCode::OK
    );

    let admin = format!("http://{}", stack.proxy.admin_addr);
    let (status, _, _) = get(&format!("{admin}/healthz"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = get(&format!("{admin}/readyz"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, headers, body) = get(&format!("{admin}/metrics"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain"));
    for series in [
        r#"portcullis_requests_total{method="GET",route="public",status="200"} 1"#,
        r#"portcullis_auth_decisions_total{decision="redirect",route="default"} 1"#,
        r#"portcullis_logins_total{result="ok"} 1"#,
        r#"portcullis_provider_fetches_total{kind="discovery"} 1"#,
        r#"portcullis_provider_fetches_total{kind="jwks"} 1"#,
        "portcullis_active_sessions",
        "portcullis_upstream_request_duration_seconds_bucket",
    ] {
        assert!(body.contains(series), "{series} missing:\n{body}");
    }
}

#[tokio::test]
async fn readyz_waits_for_the_provider_while_healthz_and_public_routes_work() {
    // The configured issuer does not answer: discovery keeps retrying in the background.
    let echo = Echo::start().await;
    let proxy = Proxy::start(&base_config(
        &echo.url(),
        "[[route]]\npath = \"/\"\nauth = \"public\"\n",
    ))
    .await;
    let admin = format!("http://{}", proxy.admin);
    let (status, _, body) = get(&format!("{admin}/readyz"), &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("provider: waiting"), "{body}");
    assert_eq!(
        get(&format!("{admin}/healthz"), &[]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(&proxy.url("/x"), &[]).await.0,
        StatusCode::OK,
        "public routes keep working"
    );
}

#[tokio::test]
async fn protected_route_while_the_provider_is_down_is_503_not_a_crash() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&base_config(&echo.url(), "")).await;
    let (status, _, body) = get(&proxy.url("/private"), &[("accept", "text/html")]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("<html"), "{body}");
}

#[tokio::test]
async fn admin_endpoints_are_not_on_the_public_listener() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&base_config(
        &echo.url(),
        "[[route]]\npath = \"/\"\nauth = \"public\"\n",
    ))
    .await;
    // On the public listener these paths are just paths of the app.
    let (_, _, body) = get(&proxy.url("/metrics"), &[]).await;
    assert!(!body.contains("portcullis_requests_total"), "{body}");
    assert_eq!(
        echo.hits(),
        1,
        "the request went to the app, not to the proxy's metrics"
    );
}
