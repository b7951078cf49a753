//! Forward-auth `{auth_prefix}/check` (SPEC §8): the same rules as inline mode,
//! for nginx `auth_request`, Traefik `ForwardAuth` and Envoy `ext_authz`; and the
//! shipped nginx snippet (`deploy/nginx/`) run by a real nginx.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use http::{Method, StatusCode};

use crate::support::stack::{free_port, Browser, Stack, StackOptions};

async fn check(
    browser: &mut Browser,
    stack: &Stack,
    headers: &[(&str, &str)],
) -> crate::support::stack::Page {
    browser
        .request(Method::GET, &stack.url("/_auth/check"), headers, "")
        .await
}

#[tokio::test]
async fn check_applies_the_rules_to_the_original_request() {
    let stack = Stack::start().await;
    let mut alice = stack.login("alice").await;
    let mut bob = stack.login("bob").await;
    let mut anonymous = Browser::default();

    let public = check(
        &mut anonymous,
        &stack,
        &[("x-original-uri", "/public/page")],
    )
    .await;
    assert_eq!(public.status, StatusCode::OK);
    assert!(public.headers.get("x-forwarded-user").is_none());

    let admin = check(
        &mut alice,
        &stack,
        &[("x-original-uri", "/admin/panel?x=1")],
    )
    .await;
    assert_eq!(admin.status, StatusCode::OK);
    assert_eq!(admin.headers["x-forwarded-user"], "alice");
    assert_eq!(admin.headers["x-forwarded-groups"], "admin,user");

    let refused = check(&mut bob, &stack, &[("x-original-uri", "/admin/panel")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.headers.get("x-forwarded-user").is_none());

    let boundary = check(&mut bob, &stack, &[("x-original-uri", "/administrator")]).await;
    assert_eq!(
        boundary.status,
        StatusCode::OK,
        "/administrator is not under /admin"
    );

    let bypass = check(
        &mut bob,
        &stack,
        &[("x-original-uri", "/public/..%2Fadmin")],
    )
    .await;
    assert_eq!(
        bypass.status,
        StatusCode::BAD_REQUEST,
        "same normalization as inline"
    );
    let dots = check(&mut bob, &stack, &[("x-original-uri", "/public/../admin")]).await;
    assert_eq!(
        dots.status,
        StatusCode::FORBIDDEN,
        "dot segments resolve before matching"
    );
    assert_eq!(
        stack.echo.hits(),
        2,
        "only the two logins' landing pages reached the app"
    );
}

#[tokio::test]
async fn nginx_style_callers_get_401_never_a_redirect() {
    let stack = Stack::start().await;
    let mut anonymous = Browser::default();
    let page = check(
        &mut anonymous,
        &stack,
        &[("x-original-uri", "/private"), ("accept", "text/html")],
    )
    .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn traefik_style_browser_navigation_is_sent_to_log_in() {
    let stack = Stack::start().await;
    let mut anonymous = Browser::default();
    let page = check(
        &mut anonymous,
        &stack,
        &[
            ("x-forwarded-uri", "/private?a=1"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-host", "127.0.0.1"),
            ("accept", "text/html"),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::FOUND);
    assert!(page
        .location()
        .is_some_and(|l| l.starts_with(&stack.idp.issuer())));
    let api = check(
        &mut anonymous,
        &stack,
        &[
            ("x-forwarded-uri", "/private"),
            ("accept", "application/json"),
        ],
    )
    .await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn envoy_style_path_after_check_and_forwarded_method_decide() {
    let extra = format!(
        "{}\n[[route]]\nname = \"writes\"\npath = \"/docs\"\nmethods = [\"POST\", \"PUT\"]\nauth = \"deny\"\n",
        crate::support::stack::ROUTES
    );
    let stack = Stack::start_with(StackOptions {
        extra,
        ..StackOptions::default()
    })
    .await;
    let mut alice = stack.login("alice").await;
    let envoy = alice.fetch(&stack.url("/_auth/check/admin/x")).await;
    assert_eq!(envoy.status, StatusCode::OK);
    assert_eq!(envoy.headers["x-forwarded-user"], "alice");
    let get = check(
        &mut alice,
        &stack,
        &[("x-original-uri", "/docs/a"), ("x-forwarded-method", "GET")],
    )
    .await;
    assert_eq!(get.status, StatusCode::OK);
    let post = check(
        &mut alice,
        &stack,
        &[
            ("x-original-uri", "/docs/a"),
            ("x-forwarded-method", "POST"),
        ],
    )
    .await;
    assert_eq!(
        post.status,
        StatusCode::FORBIDDEN,
        "the method matcher sees the original method"
    );
}

// === A real nginx with the shipped snippet ===

pub(crate) struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> &'static str {
    let path = "/usr/sbin/nginx";
    assert!(
        std::path::Path::new(path).exists(),
        "nginx is not installed: apt-get install nginx-light (CI's .ci/run does)"
    );
    path
}

/// A real nginx on `port` running the shipped snippet in front of `stack`'s
/// proxy and app, once it answers.
pub(crate) async fn nginx_in_front(port: u16, stack: &Stack) -> Nginx {
    let nginx = start_nginx(port, stack.addr, stack.echo.addr);
    let probe = format!("http://127.0.0.1:{port}/public/x");
    for _ in 0..100 {
        if crate::support::try_status(&probe).await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nginx
}

fn start_nginx(port: u16, portcullis: std::net::SocketAddr, app: std::net::SocketAddr) -> Nginx {
    let dir = tempfile::tempdir().expect("tempdir");
    let snippet = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/nginx/portcullis-forward-auth.conf");
    let d = dir.path().display();
    let conf = format!(
        r#"
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        set $portcullis http://{portcullis};
        set $app http://{app};
        include {snippet};
    }}
}}
"#,
        snippet = snippet.display(),
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).expect("nginx.conf");
    let child = Command::new(nginx_binary())
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    Nginx { child, _dir: dir }
}

#[tokio::test]
async fn real_nginx_with_the_shipped_snippet_enforces_the_rules() {
    let nginx_port = free_port();
    let stack = Stack::start_with(StackOptions {
        public_port: Some(nginx_port),
        ..StackOptions::default()
    })
    .await;
    let _nginx = nginx_in_front(nginx_port, &stack).await;
    let front = |path: &str| format!("http://127.0.0.1:{nginx_port}{path}");

    // A browser without a session is sent to log in (by nginx's error_page), and
    // signing in through nginx works end to end.
    let mut alice = Browser::default();
    let page = alice.sign_in(&front("/reports?q=1"), "alice").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let seen = page.seen();
    assert_eq!(seen.target, "/reports?q=1");
    assert_eq!(seen.one("x-forwarded-user"), Some("alice"));
    assert_eq!(seen.one("x-forwarded-groups"), Some("admin,user"));

    // Spoofed identity headers never reach the app, on public and protected paths.
    for path in ["/public/x", "/reports"] {
        let resp = alice
            .request(
                Method::GET,
                &front(path),
                &[
                    ("accept", "application/json"),
                    ("x-forwarded-user", "mallory"),
                    ("x-auth-request-user", "mallory"),
                ],
                "",
            )
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{path}");
        let seen = resp.seen();
        assert_ne!(seen.one("x-forwarded-user"), Some("mallory"), "{path}");
        assert!(
            seen.one("x-auth-request-user")
                .unwrap_or_default()
                .is_empty(),
            "{path}"
        );
    }
    let mut anonymous = Browser::default();
    let public = anonymous
        .request(
            Method::GET,
            &front("/public/x"),
            &[("x-forwarded-user", "mallory")],
            "",
        )
        .await;
    assert_eq!(public.status, StatusCode::OK);
    assert!(
        public.seen().one("x-forwarded-user").is_none(),
        "public route: no identity at all"
    );

    let mut bob = Browser::default();
    bob.sign_in(&front("/x"), "bob").await;
    assert_eq!(
        bob.navigate(&front("/admin")).await.status,
        StatusCode::FORBIDDEN
    );
    let api = Browser::default().fetch(&front("/private")).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
}

/// See: security review, finding 1 — a client adding the header another kind of
/// caller would set chose the path that was judged.
#[tokio::test]
async fn a_client_cannot_choose_the_judged_request_with_extra_headers() {
    let stack = Stack::start().await;
    let mut bob = stack.login("bob").await;
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "traefik + client X-Original-URI",
            vec![
                ("x-forwarded-uri", "/admin"),
                ("x-original-uri", "/public/x"),
            ],
        ),
        (
            "ingress-nginx + client X-Forwarded-Uri",
            vec![
                ("x-original-url", "http://127.0.0.1/admin"),
                ("x-forwarded-uri", "/public/x"),
            ],
        ),
        (
            "repeated X-Original-URI",
            vec![
                ("x-original-uri", "/admin"),
                ("x-original-uri", "/public/x"),
            ],
        ),
        (
            "nginx + ingress-nginx method",
            vec![
                ("x-original-uri", "/admin"),
                ("x-original-method", "OPTIONS"),
            ],
        ),
        (
            "repeated X-Forwarded-Host",
            vec![
                ("x-original-uri", "/admin"),
                ("x-forwarded-host", "a"),
                ("x-forwarded-host", "b"),
            ],
        ),
    ];
    for (what, headers) in cases {
        let page = check(&mut bob, &stack, &headers).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{what}");
    }
    // Envoy describes the request by the path after /check: client headers cannot override it.
    for extra in [
        ("x-forwarded-uri", "/public/x"),
        ("x-forwarded-method", "OPTIONS"),
        ("x-forwarded-host", "other"),
    ] {
        let page = bob
            .request(Method::GET, &stack.url("/_auth/check/admin"), &[extra], "")
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "envoy + {extra:?}");
    }
    // Without the extra header, the same requests are judged (and refused) as described.
    let plain = check(&mut bob, &stack, &[("x-forwarded-uri", "/admin")]).await;
    assert_eq!(plain.status, StatusCode::FORBIDDEN);
}

/// See: security review, finding 5.
#[tokio::test]
async fn a_host_with_a_trailing_dot_is_refused() {
    let stack = Stack::start().await;
    let mut alice = stack.login("alice").await;
    let page = check(
        &mut alice,
        &stack,
        &[
            ("x-original-uri", "/x"),
            ("x-forwarded-host", "app.example.com."),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let raw = crate::support::raw(
        stack.addr,
        b"GET /public/x HTTP/1.1\r\nHost: app.example.com.\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(crate::support::raw_status(&raw), 400, "{raw}");
}
