//! The admin listener (SPEC §9).

use http::StatusCode;

use crate::support::{base_config, get, Echo, Proxy};

#[tokio::test]
async fn admin_serves_health_readiness_and_metrics() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&base_config(
        &echo.url(),
        "[[route]]\nname = \"everything\"\npath = \"/\"\nauth = \"public\"\n",
    ))
    .await;
    let (status, _, _) = get(&proxy.url("/x"), &[]).await;
    assert_eq!(status, StatusCode::OK);

    let admin = format!("http://{}", proxy.admin);
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
    assert!(
        body.contains(
            r#"portcullis_requests_total{method="GET",route="everything",status="200"} 1"#
        ),
        "{body}"
    );
    assert!(
        body.contains("portcullis_upstream_request_duration_seconds_bucket"),
        "{body}"
    );
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
