//! Several apps behind one proxy (SPEC §11): named upstreams chosen per route,
//! the identity headers each app reads, `strip_prefix`, isolation of an
//! upstream that is down or slow, reload keeping unchanged pools, and the rule
//! keys `claims`, `source_ips`, `scopes_any`/`scopes_all` (SPEC §3), inline and
//! through forward-auth. Everything over real sockets: one echo app per upstream.

use http::{Method, StatusCode};
use serde_json::json;

use crate::bearer::{claims, header};
use crate::support::stack::{free_port, Browser, Page, Stack, StackOptions, ROUTES};
use crate::support::{Echo, Seen};

/// Routes and upstreams for three apps: the default echo at `/`, a Grafana-like
/// app at `/grafana`, a reports app (custom header set) at `/reports`.
fn apps(grafana: &Echo, reports: &Echo) -> String {
    format!(
        r#"
{ROUTES}

[upstreams.grafana]
url = "{grafana}"
identity_preset = "grafana"

[upstreams.reports]
url = "{reports}/base"
identity_preset = "none"

[[upstreams.reports.identity_header]]
name = "X-Remote-User"
claim = "preferred_username"

[[upstreams.reports.identity_header]]
name = "X-Remote-Groups"
claim = "roles"
separator = "|"

[[upstreams.reports.identity_header]]
name = "X-Dept"
claim = "department"
required = true

[upstreams.strict]
url = "{reports}"
identity_preset = "none"

[[upstreams.strict.identity_header]]
name = "X-Cost-Center"
claim = "cost_center"
required = true

[[route]]
name = "grafana"
path = "/grafana"
upstream = "grafana"
strip_prefix = "/grafana"

[[route]]
name = "reports"
path = "/reports"
upstream = "reports"
strip_prefix = "/reports"

[[route]]
name = "strict"
path = "/strict"
upstream = "strict"
"#,
        grafana = grafana.url(),
        reports = reports.url(),
    )
}

async fn apps_stack() -> (Stack, Echo, Echo) {
    let grafana = Echo::start().await;
    let reports = Echo::start().await;
    let stack = Stack::start_with(StackOptions {
        extra: apps(&grafana, &reports),
        ..StackOptions::default()
    })
    .await;
    (stack, grafana, reports)
}

/// The identity headers an app received, as `name: value` lines, sorted.
fn identity_lines(seen: &Seen) -> Vec<String> {
    let mut lines: Vec<String> = seen
        .headers
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k.starts_with("x-webauth")
                || k.starts_with("x-remote")
                || k == "x-dept"
                || k.starts_with("x-forwarded-user")
                || k.starts_with("x-forwarded-email")
                || k.starts_with("x-forwarded-groups")
                || k.starts_with("x-forwarded-preferred")
        })
        .map(|(k, v)| format!("{}: {v}", k.to_ascii_lowercase()))
        .collect();
    lines.sort();
    lines
}

async fn fetch(browser: &mut Browser, stack: &Stack, path: &str) -> Page {
    browser.fetch(&stack.url(path)).await
}

#[tokio::test]
async fn each_route_reaches_its_upstream_with_the_headers_that_app_reads() {
    let (stack, grafana, reports) = apps_stack().await;
    let mut alice = stack.login("alice").await;
    let default_hits = stack.echo.hits();

    let page = fetch(&mut alice, &stack, "/grafana/api/dashboards?x=1").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let seen = page.seen();
    assert_eq!(seen.target, "/api/dashboards?x=1", "strip_prefix");
    assert_eq!(
        identity_lines(&seen),
        [
            "x-webauth-email: alice@example.com",
            "x-webauth-groups: admin,user",
            "x-webauth-name: Alice Liddell",
            "x-webauth-user: alice",
        ]
    );
    assert_eq!(seen.all("x-portcullis-identity").len(), 1);
    assert_eq!(grafana.hits(), 1);

    let page = fetch(&mut alice, &stack, "/reports").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let seen = page.seen();
    assert_eq!(seen.target, "/base/", "the whole path stripped forwards /");
    assert_eq!(
        identity_lines(&seen),
        [
            "x-dept: eng",
            "x-remote-groups: admin|user",
            "x-remote-user: alice",
        ]
    );
    assert_eq!(seen.all("x-portcullis-identity").len(), 1);

    let page = fetch(&mut alice, &stack, "/x").await;
    let seen = page.seen();
    assert_eq!(seen.target, "/x");
    assert_eq!(
        identity_lines(&seen),
        [
            "x-forwarded-email: alice@example.com",
            "x-forwarded-groups: admin,user",
            "x-forwarded-preferred-username: alice",
            "x-forwarded-user: alice",
        ]
    );
    assert_eq!(stack.echo.hits(), default_hits + 1);
    assert_eq!(reports.hits(), 1);

    // A required claim the identity lacks: refused before anything is sent.
    let page = fetch(&mut alice, &stack, "/strict/x").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert_eq!(reports.hits(), 1);

    // The metrics label upstreams by their configured names.
    let metrics = crate::support::get(&stack.metrics_url(), &[]).await.2;
    for name in ["default", "grafana", "reports"] {
        assert!(
            metrics.contains(&format!("upstream=\"{name}\"")),
            "no upstream=\"{name}\" in /metrics"
        );
    }
}

#[tokio::test]
async fn a_down_or_slow_upstream_affects_only_its_routes() {
    let slow = Echo::start().await;
    let closed = free_port(); // nothing listens here
    let extra = format!(
        r#"
{ROUTES}

[upstreams.down]
url = "http://127.0.0.1:{closed}"
connect_timeout = "1s"

[upstreams.slow]
url = "{slow}"
response_timeout = "10s"

[[route]]
path = "/down"
upstream = "down"

[[route]]
path = "/slowapp"
upstream = "slow"
strip_prefix = "/slowapp"
"#,
        slow = slow.url()
    );
    let stack = Stack::start_with(StackOptions {
        extra,
        ..StackOptions::default()
    })
    .await;
    let mut alice = stack.login("alice").await;
    let page = fetch(&mut alice, &stack, "/down/x").await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY, "{}", page.body);

    // While a request waits on the slow upstream (the echo's /slow answers
    // after 2 s), the other routes answer; ordering, not timing, is asserted.
    let mut waiting = alice.clone();
    let slow_url = stack.url("/slowapp/slow");
    let slow_request = tokio::spawn(async move { waiting.fetch(&slow_url).await });
    while slow.hits() == 0 {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for path in ["/x", "/public/y", "/z"] {
        let page = fetch(&mut alice, &stack, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
    }
    assert!(
        !slow_request.is_finished(),
        "the other routes answered only after the slow upstream did"
    );
    let slow_page = slow_request.await.expect("the slow request completes");
    assert_eq!(slow_page.status, StatusCode::OK);
    assert_eq!(slow_page.seen().target, "/slow");
}

#[tokio::test]
async fn a_reload_keeps_the_pools_of_unchanged_upstreams() {
    let (stack, grafana, _reports) = apps_stack().await;
    let other = Echo::start().await;
    let before = stack.proxy.state.runtime.load_full();
    let index = |rt: &portcullis::proxy::Runtime, name: &str| {
        rt.upstreams
            .iter()
            .position(|u| u.name() == name)
            .unwrap_or_else(|| panic!("no upstream {name}"))
    };
    stack
        .reload_with(|text| text.replace(&grafana.url(), &other.url()))
        .await
        .expect("reload");
    let after = stack.proxy.state.runtime.load_full();
    for name in ["default", "reports", "strict"] {
        let (old, new) = (
            before.upstreams.get(index(&before, name)),
            after.upstreams.get(index(&after, name)),
        );
        assert!(new.shares_pool_with(old), "{name} kept its pool");
    }
    let (old, new) = (
        before.upstreams.get(index(&before, "grafana")),
        after.upstreams.get(index(&after, "grafana")),
    );
    assert!(!new.shares_pool_with(old), "grafana moved: a new pool");
    let mut alice = stack.login("alice").await;
    let page = fetch(&mut alice, &stack, "/grafana/x").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(other.hits(), 1, "the moved upstream serves its routes");
    assert_eq!(grafana.hits(), 0);
}

/// The rule keys of SPEC §3 beyond roles, each allowing and refusing.
const RULES: &str = r#"
[[route]]
name = "eng-only"
path = "/eng"
claims = { "department" = ["eng", "ops"] }

[[route]]
name = "office"
path = "/office"
auth = "public"
source_ips = ["10.0.0.0/8"]

[[route]]
name = "loopback"
path = "/loopback"
auth = "public"
source_ips = ["127.0.0.0/8", "::1/128"]

[[route]]
name = "reports-api"
path = "/api/reports"
auth = "bearer"
scopes_any = ["reports:read", "reports:admin"]

[[route]]
name = "reports-write"
path = "/api/write"
auth = "login_or_bearer"
scopes_all = ["reports:read", "reports:write"]

[[route]]
name = "api"
path = "/api"
auth = "bearer"
"#;

#[tokio::test]
async fn claims_source_ips_and_scopes_allow_and_refuse() {
    let stack = Stack::start_with(StackOptions {
        extra: RULES.to_owned(),
        ..StackOptions::default()
    })
    .await;
    let mut alice = stack.login("alice").await; // department eng
    let mut bob = stack.login("bob").await; // department sales
    assert_eq!(
        fetch(&mut alice, &stack, "/eng/x").await.status,
        StatusCode::OK
    );
    assert_eq!(
        fetch(&mut bob, &stack, "/eng/x").await.status,
        StatusCode::FORBIDDEN
    );

    let mut anonymous = Browser::default();
    assert_eq!(
        fetch(&mut anonymous, &stack, "/loopback").await.status,
        StatusCode::OK
    );
    let refused = anonymous.navigate(&stack.url("/office")).await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "not a login redirect"
    );
    let hits = stack.echo.hits();
    assert_eq!(
        fetch(&mut alice, &stack, "/office").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(stack.echo.hits(), hits, "a refused source reaches nothing");

    let token_with = |scope: Option<serde_json::Value>, scp: Option<serde_json::Value>| {
        let mut c = claims(&stack, "bob", &["user"]);
        if let Some(scope) = scope {
            c["scope"] = scope;
        }
        if let Some(scp) = scp {
            c["scp"] = scp;
        }
        stack.idp.sign_jwt(header(&stack), c)
    };
    let call = |token: String, path: &'static str| {
        let url = stack.url(path);
        async move {
            let auth = format!("Bearer {token}");
            Browser::default()
                .request(Method::GET, &url, &[("authorization", &auth)], "")
                .await
        }
    };
    let ok = [
        token_with(Some(json!("openid reports:read")), None),
        token_with(None, Some(json!(["reports:admin"]))),
    ];
    for token in ok {
        assert_eq!(call(token, "/api/reports/x").await.status, StatusCode::OK);
    }
    for token in [
        token_with(None, None),
        token_with(Some(json!("reports:reader reports")), None),
        token_with(Some(json!("REPORTS:READ")), None),
        token_with(None, Some(json!("reports:read,reports:admin"))),
    ] {
        let page = call(token, "/api/reports/x").await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        let challenge = page.headers["www-authenticate"]
            .to_str()
            .unwrap_or_default();
        assert!(challenge.contains("insufficient_scope"), "{challenge}");
    }
    let both = token_with(Some(json!("reports:write reports:read")), None);
    assert_eq!(call(both, "/api/write").await.status, StatusCode::OK);
    let one = token_with(Some(json!("reports:write")), None);
    assert_eq!(call(one, "/api/write").await.status, StatusCode::FORBIDDEN);
    // A session never satisfies a scope rule.
    assert_eq!(
        fetch(&mut alice, &stack, "/api/write").await.status,
        StatusCode::FORBIDDEN
    );

    // Forward-auth applies the same keys.
    let check = |browser: &mut Browser, uri: &'static str| {
        let url = stack.url("/_auth/check");
        let mut browser = browser.clone();
        async move {
            browser
                .request(Method::GET, &url, &[("x-original-uri", uri)], "")
                .await
                .status
        }
    };
    assert_eq!(check(&mut alice, "/eng").await, StatusCode::OK);
    assert_eq!(check(&mut bob, "/eng").await, StatusCode::FORBIDDEN);
    assert_eq!(
        check(&mut anonymous, "/office").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(check(&mut anonymous, "/loopback").await, StatusCode::OK);
}

#[tokio::test]
async fn forward_auth_answers_with_the_routes_upstream_headers() {
    let (stack, _grafana, _reports) = apps_stack().await;
    let mut alice = stack.login("alice").await;
    let page = alice
        .request(
            Method::GET,
            &stack.url("/_auth/check"),
            &[("x-original-uri", "/grafana/d/1")],
            "",
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["x-webauth-user"], "alice");
    assert_eq!(page.headers["x-webauth-groups"], "admin,user");
    assert!(page.headers.get("x-forwarded-user").is_none());
    assert!(page.headers.get("x-portcullis-identity").is_some());
    let page = alice
        .request(
            Method::GET,
            &stack.url("/_auth/check"),
            &[("x-original-uri", "/strict/x")],
            "",
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::FORBIDDEN,
        "a required claim is missing"
    );
}

/// Browser apps on another host than `public_url`'s: the login happens on
/// the public host (where the callback and its `__Host-` login-state cookie
/// live) and returns to the whole URL first asked for, allowed by
/// `allowed_redirect_hosts`; the session cookie reaches the other host through
/// `session.cookie_domain` (the test browser's jar is not per host, so only the
/// redirects are asserted here; the browser suite runs real cookies).
#[tokio::test]
async fn a_login_on_another_host_happens_on_the_public_host_and_returns() {
    let grafana = Echo::start().await;
    let extra = format!(
        r#"
[upstreams.grafana]
url = "{}"
identity_preset = "grafana"

[[route]]
host = "localhost"
upstream = "grafana"

[session]
cookie_domain = "localhost"
"#,
        grafana.url()
    );
    let stack = Stack::start_with(StackOptions {
        extra,
        server: "allowed_redirect_hosts = [\"localhost:{port}\"]".to_owned(),
        ..StackOptions::default()
    })
    .await;
    let other = format!("http://localhost:{}/d/1?x=2", stack.addr.port());
    let mut browser = Browser::default();
    let first = browser.navigate(&other).await;
    assert_eq!(first.status, StatusCode::FOUND);
    assert!(
        first.set_cookies().is_empty(),
        "no login state on the other host"
    );
    let location = first.location().expect("a redirect").to_owned();
    let expected = format!(
        "{}?rd={}",
        stack.url("/_auth/login"),
        url::form_urlencoded::byte_serialize(other.as_bytes()).collect::<String>()
    );
    assert_eq!(location, expected);

    let landed = browser.sign_in(&location, "alice").await;
    assert_eq!(landed.status, StatusCode::OK, "{}", landed.body);
    assert_eq!(landed.url, other, "back on the page first asked for");
    let seen = landed.seen();
    assert_eq!(seen.target, "/d/1?x=2");
    assert_eq!(seen.one("x-webauth-user"), Some("alice"));

    // A script on the other host gets 401 with the public host's login URL.
    let mut script = Browser::default();
    let page = script.fetch(&other).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(
        page.body
            .contains(&format!("{}?rd=", stack.url("/_auth/login"))),
        "{}",
        page.body
    );
}
