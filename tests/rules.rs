//! Route decisions the transport already enforces: deny, and fail-closed on
//! routes that need an identity.

use http::StatusCode;

use crate::support::{base_config, get, Echo, Proxy};

const ROUTES: &str = r#"
[[route]]
path = "/public"
auth = "public"

[[route]]
path = "/blocked"
auth = "deny"

[[route]]
path = "/private"
auth = "login"
"#;

#[tokio::test]
async fn deny_route_is_403_and_never_reaches_the_upstream() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&base_config(&echo.url(), ROUTES)).await;
    let (status, _, body) = get(&proxy.url("/blocked/x"), &[("accept", "application/json")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("\"forbidden\""), "{body}");
    assert_eq!(echo.hits(), 0);
}

#[tokio::test]
async fn route_needing_identity_without_one_is_401_and_never_reaches_the_upstream() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&base_config(&echo.url(), ROUTES)).await;
    for path in [
        "/private",
        "/private/x",
        "/unmatched-falls-to-default-login",
    ] {
        let (status, headers, body) =
            get(&proxy.url(path), &[("accept", "application/json")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(headers.contains_key("www-authenticate"), "{path}");
        assert!(body.contains("\"unauthenticated\""), "{path}: {body}");
    }
    assert_eq!(echo.hits(), 0);
}

#[tokio::test]
async fn prefix_rule_does_not_match_a_longer_segment() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&base_config(&echo.url(), ROUTES)).await;
    let (status, _, _) = get(&proxy.url("/publicity"), &[]).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "/publicity is not under /public"
    );
    let (status, _, _) = get(&proxy.url("/public/x"), &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn auth_prefix_is_never_forwarded() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&base_config(
        &echo.url(),
        "[[route]]\npath = \"/\"\nauth = \"public\"\n",
    ))
    .await;
    let (status, _, _) = get(&proxy.url("/_auth/nothing-here"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(echo.hits(), 0);
}
