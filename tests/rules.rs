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

#[tokio::test]
async fn error_pages_come_from_the_templates_directory_when_set() {
    let echo = Echo::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("error.html"),
        "<html><body>ACME {{status}} {{title}}: {{message}} {{action}} ref {{request_id}}</body></html>",
    )
    .expect("template");
    let toml = base_config(&echo.url(), ROUTES).replace(
        "public_url = \"http://app.test\"",
        &format!(
            "public_url = \"http://app.test\"\ntemplates_dir = \"{}\"",
            dir.path().display()
        ),
    );
    let proxy = Proxy::start(&toml).await;
    let (status, _, body) = get(
        &proxy.url("/blocked"),
        &[("accept", "text/html"), ("x-request-id", "r-9")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.starts_with("<html><body>ACME 403 Forbidden: You do not have access"),
        "{body}"
    );
    assert!(body.contains("<a href=\"/\">Home</a> ref r-9"), "{body}");
    let (_, _, json) = get(&proxy.url("/blocked"), &[("accept", "application/json")]).await;
    assert!(
        json.contains("\"forbidden\""),
        "scripts still get JSON: {json}"
    );

    let empty = tempfile::tempdir().expect("tempdir");
    let bad = tempfile::tempdir().expect("tempdir");
    let path = bad.path().join("p.toml");
    std::fs::write(
        &path,
        base_config(&echo.url(), ROUTES).replace(
            "public_url = \"http://app.test\"",
            &format!(
                "public_url = \"http://app.test\"\ntemplates_dir = \"{}\"",
                empty.path().display()
            ),
        ),
    )
    .expect("write");
    let error = portcullis::config::load_with_env(&path, &[]).expect_err("no error.html");
    assert!(
        error.to_string().contains("server.templates_dir"),
        "{error}"
    );
}
