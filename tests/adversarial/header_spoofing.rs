//! Identity header spoofing (SPEC §7): a client's identity headers never reach
//! the app, in any spelling an app framework might fold onto the real name
//! (case, `_` or `.` for `-`, as CGI, PHP, WSGI and Rack do), repeated, named
//! in `Connection`, over HTTP/1.1 and HTTP/2, on every kind of route, and
//! through forward-auth behind a real nginx. On authenticated routes the app
//! sees exactly the proxy's one value.
//!
//! Advisories: oauth2-proxy GHSA-vjrc-mh2v-45x6 (underscore variants of
//! `X-Forwarded-*`), CVE-2024-24784-style header normalization gaps, the
//! `Connection:`-nominated header drop (hop-by-hop abuse).

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::bearer::{claims, header};
use crate::support::stack::{free_port, Browser, Stack, StackOptions, ROUTES};
use crate::support::{full, Seen};

/// Every header SPEC §7 reserves for the proxy, and oauth2-proxy's names.
const IDENTITY: &[&str] = &[
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Groups",
    "X-Portcullis-Identity",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Auth-Request-Groups",
    "X-Auth-Request-Preferred-Username",
    "X-Auth-Request-Access-Token",
    "X-Auth-Request-Redirect",
];

/// The names of every other identity header some upstream could receive
/// (SPEC §11): every preset's, the `Impersonate-*` family, and the custom
/// `identity_header` names of [`APPS`]. Stripped on every route whether or not
/// the route's upstream uses them.
const APP_IDENTITY: &[&str] = &[
    "X-WEBAUTH-USER",
    "X-WEBAUTH-EMAIL",
    "X-WEBAUTH-NAME",
    "X-WEBAUTH-GROUPS",
    "X-WEBAUTH-FULLNAME",
    "X-Forwarded-Mail",
    "X-Forwarded-DisplayName",
    "X-Forwarded-Login",
    "X-Forwarded-Name",
    "X-Remote-User",
    "Impersonate-User",
    "Impersonate-Group",
    "Impersonate-Uid",
    "Impersonate-Extra-Scopes",
    "X-Custom-Team",
    "X-Tenant",
];

/// The spoofing tests' config: the default upstream also reads a custom
/// header, and `/k8s` goes to a Kubernetes-preset upstream with one more.
const APPS: &str = r#"
[[upstream.identity_header]]
name = "X-Custom-Team"
claim = "department"

[upstreams.k8s]
url = "ECHO"
identity_preset = "kubernetes"

[[upstreams.k8s.identity_header]]
name = "X-Tenant"
claim = "department"

[[route]]
name = "k8s"
path = "/k8s"
upstream = "k8s"
"#;

/// A stack with [`APPS`]: both upstreams are the echo app returned beside it.
async fn apps_stack() -> (Stack, crate::support::Echo) {
    let echo = crate::support::Echo::start().await;
    let extra = format!("{ROUTES}\n{}", APPS.replace("ECHO", &echo.url()));
    let stack = Stack::start_with(StackOptions {
        extra,
        upstream: Some(echo.url()),
        ..StackOptions::default()
    })
    .await;
    (stack, echo)
}

/// The spellings of `name` an app could read as `name`.
fn spellings(name: &str) -> Vec<String> {
    let lower = name.to_ascii_lowercase();
    let mixed: String = name
        .char_indices()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let first_dash = lower.replacen('-', "_", 1);
    vec![
        name.to_owned(),
        lower.clone(),
        name.to_ascii_uppercase(),
        mixed,
        lower.replace('-', "_"),
        name.replace('-', "_"),
        lower.replace('-', "."),
        first_dash,
    ]
}

/// The §7 spoofing matrix as request headers: each spelling of each
/// identity header valued `spoofed-...`, and the canonical spelling repeated
/// (about 100 fields, under the proxy's limit of 128 per request head).
fn spoofed() -> Vec<(String, String)> {
    matrix(IDENTITY)
}

/// The same matrix for [`APP_IDENTITY`], in requests of about 100 fields each.
fn spoofed_app_headers() -> Vec<Vec<(String, String)>> {
    APP_IDENTITY.chunks(9).map(matrix).collect()
}

fn matrix(names: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        for (j, spelling) in spellings(name).into_iter().enumerate() {
            out.push((spelling, format!("spoofed-{i}-{j}")));
        }
        out.push((name.to_string(), format!("spoofed-{i}-again")));
    }
    out.push((
        "Connection".into(),
        "X-Forwarded-User, X-Forwarded-Groups, X-Portcullis-Identity".into(),
    ));
    out
}

fn assert_nothing_spoofed(seen: &Seen, label: &str) {
    let leaked: Vec<_> = seen
        .headers
        .iter()
        .filter(|(_, v)| v.contains("spoofed"))
        .collect();
    assert!(
        leaked.is_empty(),
        "{label}: spoofed headers reached the app: {leaked:?}"
    );
}

/// On an authenticated route: exactly the proxy's identity, once each.
fn assert_identity(seen: &Seen, label: &str, sub: &str) {
    assert_nothing_spoofed(seen, label);
    assert_eq!(seen.one("x-forwarded-user"), Some(sub), "{label}");
    assert_eq!(seen.all("x-forwarded-groups").len(), 1, "{label}");
    assert_eq!(seen.all("x-portcullis-identity").len(), 1, "{label}");
    assert!(seen.all("x-auth-request-user").is_empty(), "{label}");
}

async fn send(browser: &mut Browser, url: &str, extra: &[(&str, &str)]) -> Seen {
    send_matrix(browser, url, extra, spoofed()).await
}

/// Sends every request of [`spoofed_app_headers`]; returns what the app saw of each.
async fn send_app_headers(browser: &mut Browser, url: &str, extra: &[(&str, &str)]) -> Vec<Seen> {
    let mut seen = Vec::new();
    for matrix in spoofed_app_headers() {
        seen.push(send_matrix(browser, url, extra, matrix).await);
    }
    seen
}

async fn send_matrix(
    browser: &mut Browser,
    url: &str,
    extra: &[(&str, &str)],
    matrix: Vec<(String, String)>,
) -> Seen {
    let mut headers: Vec<(&str, &str)> = matrix
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    headers.extend_from_slice(extra);
    headers.push(("accept", "application/json"));
    let page = browser.request(Method::GET, url, &headers, "").await;
    assert_eq!(page.status, StatusCode::OK, "{url}: {}", page.body);
    page.seen()
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_app_on_any_route() {
    let (stack, _echo) = apps_stack().await;
    let mut anonymous = Browser::default();
    let public = send(&mut anonymous, &stack.url("/public/x"), &[]).await;
    assert_nothing_spoofed(&public, "public");
    assert!(
        public.all("x-forwarded-user").is_empty(),
        "public: no identity"
    );

    let mut alice = stack.login("alice").await;
    let login = send(&mut alice, &stack.url("/x"), &[]).await;
    assert_identity(&login, "login", "alice");
    let either = send(&mut alice, &stack.url("/either/x"), &[]).await;
    assert_identity(&either, "login_or_bearer by session", "alice");

    let token = stack
        .idp
        .sign_jwt(header(&stack), claims(&stack, "bob", &["user"]));
    let auth = format!("Bearer {token}");
    let mut api = Browser::default();
    let bearer = send(&mut api, &stack.url("/api/x"), &[("authorization", &auth)]).await;
    assert_identity(&bearer, "bearer", "bob");

    // Every preset's names and the configured custom names, on every kind of
    // route, whichever upstream the route goes to (SPEC §11).
    for seen in send_app_headers(&mut anonymous, &stack.url("/public/x"), &[]).await {
        assert_nothing_spoofed(&seen, "public, app headers");
    }
    for seen in send_app_headers(&mut alice, &stack.url("/x"), &[]).await {
        assert_identity(&seen, "login, app headers", "alice");
        assert_eq!(
            seen.one("x-custom-team"),
            Some("eng"),
            "the proxy's own value"
        );
    }
    for seen in send_app_headers(&mut api, &stack.url("/api/x"), &[("authorization", &auth)]).await
    {
        assert_identity(&seen, "bearer, app headers", "bob");
    }
    for seen in send_app_headers(&mut alice, &stack.url("/k8s/x"), &[]).await {
        assert_nothing_spoofed(&seen, "k8s, app headers");
        assert_eq!(seen.one("impersonate-user"), Some("alice"));
        assert_eq!(seen.all("impersonate-group"), ["admin", "user"]);
        assert_eq!(seen.one("x-tenant"), Some("eng"));
        assert!(
            seen.all("x-forwarded-user").is_empty(),
            "k8s reads no standard headers"
        );
    }
}

/// HTTP/2 (h2c prior knowledge): header names arrive lowercased, and the same
/// matrix is stripped.
#[tokio::test]
async fn spoofed_identity_headers_are_stripped_over_http2() {
    let (stack, _echo) = apps_stack().await;
    let alice = stack.login("alice").await;
    let client: Client<_, crate::support::TestBody> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    for (path, cookie) in [("/public/x", None), ("/x", Some(&alice.jar["portcullis"]))] {
        for matrix in std::iter::once(spoofed()).chain(spoofed_app_headers()) {
            let mut req = Request::get(stack.url(path)).header("accept", "application/json");
            for (k, v) in matrix {
                if !k.eq_ignore_ascii_case("connection") {
                    req = req.header(k.to_ascii_lowercase(), v);
                }
            }
            if let Some(cookie) = cookie {
                req = req.header("cookie", format!("portcullis={cookie}"));
            }
            let resp = client
                .request(req.body(full("")).expect("request"))
                .await
                .expect("h2 request");
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_eq!(resp.version(), http::Version::HTTP_2);
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            let seen: Seen = serde_json::from_slice(&body).expect("echo json");
            if cookie.is_some() {
                assert_identity(&seen, "h2 login", "alice");
            } else {
                assert_nothing_spoofed(&seen, "h2 public");
            }
        }
    }
}

/// Forward-auth: `/check` answers with the identity of the session only, and
/// behind a real nginx running the shipped snippet the app sees no spelling of
/// a spoofed header, on public and protected paths.
#[tokio::test]
async fn forward_auth_never_passes_on_a_spoofed_identity() {
    let nginx_port = free_port();
    let stack = Stack::start_with(StackOptions {
        public_port: Some(nginx_port),
        extra: ROUTES.to_owned(),
        ..StackOptions::default()
    })
    .await;
    let _nginx = crate::forward_auth::nginx_in_front(nginx_port, &stack).await;
    let front = |path: &str| format!("http://127.0.0.1:{nginx_port}{path}");
    let mut alice = Browser::default();
    let landed = alice.sign_in(&front("/x"), "alice").await;
    assert_eq!(landed.status, StatusCode::OK, "{}", landed.body);

    // The check endpoint itself: its answer carries only the proxy's identity.
    let matrix = spoofed();
    let mut headers: Vec<(&str, &str)> = matrix
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    headers.push(("x-original-uri", "/x"));
    let check = alice
        .request(Method::GET, &stack.url("/_auth/check"), &headers, "")
        .await;
    assert_eq!(check.status, StatusCode::OK);
    for (name, value) in &check.headers {
        let value = value.to_str().unwrap_or_default();
        assert!(
            !value.contains("spoofed"),
            "/check answered {name}: {value}"
        );
    }
    assert_eq!(
        check
            .headers
            .get("x-forwarded-user")
            .and_then(|v| v.to_str().ok()),
        Some("alice")
    );

    // Through nginx, to the app.
    let protected = send(&mut alice, &front("/x"), &[]).await;
    assert_identity(&protected, "nginx, protected", "alice");
    let public = send(&mut Browser::default(), &front("/public/x"), &[]).await;
    assert_nothing_spoofed(&public, "nginx, public");
}

/// A browser with a session adds a credential of its own choosing; an app that
/// also accepts API tokens would read it beside the identity the proxy
/// vouches for (Envoy's oauth2 filter removes it by default).
// See: issue 18 (the client's own Authorization reaches the app on session routes)
#[tokio::test]
async fn the_clients_own_authorization_never_reaches_the_app_on_session_routes() {
    let stack = Stack::start().await;
    let mut alice = stack.login("alice").await;
    let credentials = [
        "Bearer anything",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.",
        "Basic YWRtaW46YWRtaW4=",
        "Digest username=\"admin\"",
        "Negotiate YIIB",
        "bearer lowercase",
    ];
    for credential in credentials {
        for path in ["/x", "/either/x", "/admin-not-a-rule"] {
            // A bearer token on `login_or_bearer` is judged as one (401 here).
            let is_bearer = credential.to_ascii_lowercase().starts_with("bearer ");
            if path == "/either/x" && is_bearer {
                continue;
            }
            let seen = send(
                &mut alice,
                &stack.url(path),
                &[("authorization", credential)],
            )
            .await;
            assert!(
                seen.all("authorization").is_empty(),
                "{path} with {credential:?}: the app saw {:?}",
                seen.all("authorization")
            );
            assert_identity(&seen, path, "alice");
        }
    }
    // Positive controls: a public route is not the proxy's to judge, and a
    // bearer route forwards the token it verified.
    let mut anonymous = Browser::default();
    let public = send(
        &mut anonymous,
        &stack.url("/public/x"),
        &[("authorization", "Basic eDp5")],
    )
    .await;
    assert_eq!(public.all("authorization"), ["Basic eDp5"]);
    let token = stack
        .idp
        .sign_jwt(header(&stack), claims(&stack, "bob", &["user"]));
    let auth = format!("Bearer {token}");
    let mut api = Browser::default();
    let bearer = send(&mut api, &stack.url("/api/x"), &[("authorization", &auth)]).await;
    assert_eq!(bearer.all("authorization"), [auth.as_str()]);
    let either = send(
        &mut api,
        &stack.url("/either/x"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(either.all("authorization"), [auth.as_str()]);

    // `upstream.forward_client_authorization = true`: for apps that do their
    // own Basic auth behind the proxy, the client's header passes again.
    stack
        .reload_with(|text| {
            text.replace(
                "pass_access_token = false",
                "pass_access_token = false\nforward_client_authorization = true",
            )
        })
        .await
        .expect("reload");
    let seen = send(
        &mut alice,
        &stack.url("/x"),
        &[("authorization", "Basic YWRtaW46YWRtaW4=")],
    )
    .await;
    assert_eq!(seen.all("authorization"), ["Basic YWRtaW46YWRtaW4="]);
    assert_identity(&seen, "forwarded", "alice");
}
