//! The pages people act on (SPEC §12): the 403 page of a signed-in person, the
//! signed-in page at `{auth_prefix}/`, the sign-in chooser, and the operator's
//! templates for them, over real HTTP against the development provider.

use http::{header, StatusCode};
use portcullis::clock::Clock as _;
use portcullis_devidp as devidp;

use crate::support::stack::{Page, Stack, StackOptions, ROUTES};

/// Routes beyond the default ones: a claim rule and a network rule.
const MORE_ROUTES: &str = r#"
[[route]]
name = "engineering"
path = "/engineering"
claims = { "department" = ["eng", "secret-project-x"] }

[[route]]
name = "office"
path = "/office"
source_ips = ["10.20.0.0/16"]
"#;

fn with_more_routes() -> StackOptions {
    StackOptions {
        extra: format!("{ROUTES}{MORE_ROUTES}"),
        ..StackOptions::default()
    }
}

fn assert_html_no_store(page: &Page, status: StatusCode) {
    assert_eq!(page.status, status, "{}", page.body);
    let header = |name| {
        page.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    assert_eq!(header(header::CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(header::CACHE_CONTROL), "no-store");
}

#[tokio::test]
async fn forbidden_page_names_the_person_the_provider_and_the_missing_role() {
    let stack = Stack::start().await;
    let mut bob = stack.login("bob").await;
    let page = bob.navigate(&stack.url("/admin")).await;
    assert_html_no_store(&page, StatusCode::FORBIDDEN);
    let body = &page.body;
    assert!(body.contains("Bob Builder (bob@example.com)"), "{body}");
    // No display_name: the provider's host, not the internal name "default".
    assert!(body.contains("with 127.0.0.1."), "{body}");
    assert!(
        body.contains("This page is for people with the admin role; your account has: user."),
        "{body}"
    );
    assert!(
        body.contains("<form method=\"post\" action=\"/_auth/logout\">"),
        "{body}"
    );
    assert!(
        body.contains(
            "href=\"/_auth/login?rd=%2F&amp;provider=default&amp;prompt=select_account\""
        ),
        "{body}"
    );
    assert!(!body.contains("roles_any"), "no rule internals: {body}");
    assert_eq!(
        stack.echo.hits(),
        1,
        "only the sign-in landing reached the app"
    );
}

#[tokio::test]
async fn forbidden_page_shows_the_providers_display_name() {
    let stack = Stack::start_with(StackOptions {
        oidc: "display_name = \"Example Corp\"".into(),
        ..StackOptions::default()
    })
    .await;
    let mut bob = stack.login("bob").await;
    let page = bob.navigate(&stack.url("/admin")).await;
    assert_html_no_store(&page, StatusCode::FORBIDDEN);
    assert!(page.body.contains("with Example Corp."), "{}", page.body);
}

#[tokio::test]
async fn the_sign_out_form_and_the_other_account_link_work() {
    let stack = Stack::start().await;
    let mut bob = stack.login("bob").await;
    let page = bob.navigate(&stack.url("/admin")).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    let other = bob
        .navigate(&stack.url("/_auth/login?rd=%2F&provider=default&prompt=select_account"))
        .await;
    assert_eq!(other.status, StatusCode::FOUND);
    let location = other.location().expect("a redirect to the provider");
    assert!(location.starts_with(&stack.idp.issuer()), "{location}");
    assert!(location.contains("prompt=select_account"), "{location}");

    let out = bob
        .request(
            http::Method::POST,
            &stack.url("/_auth/logout"),
            &[("accept", "text/html")],
            "",
        )
        .await;
    assert_eq!(out.status, StatusCode::FOUND, "{}", out.body);
    let after = bob.navigate(&stack.url("/admin")).await;
    assert_eq!(
        after.status,
        StatusCode::FOUND,
        "signed out: sent to sign in"
    );
}

#[tokio::test]
async fn claims_refusal_names_the_claim_never_the_values_it_needs() {
    let stack = Stack::start_with(with_more_routes()).await;
    let mut bob = stack.login("bob").await;
    let page = bob.navigate(&stack.url("/engineering")).await;
    assert_html_no_store(&page, StatusCode::FORBIDDEN);
    assert!(
        page.body
            .contains("Your account&#39;s department does not allow this page."),
        "{}",
        page.body
    );
    for internal in ["secret-project-x", "\"eng\"", "claims"] {
        assert!(!page.body.contains(internal), "{internal}: {}", page.body);
    }
    let mut alice = stack.login("alice").await;
    let allowed = alice.navigate(&stack.url("/engineering")).await;
    assert_eq!(allowed.status, StatusCode::OK, "alice is in eng");
}

#[tokio::test]
async fn source_ips_refusal_page_never_shows_the_cidr() {
    let stack = Stack::start_with(with_more_routes()).await;
    let mut bob = stack.login("bob").await;
    for page in [
        bob.navigate(&stack.url("/office")).await,
        stack.browser().navigate(&stack.url("/office")).await,
    ] {
        assert_html_no_store(&page, StatusCode::FORBIDDEN);
        for internal in ["10.20", "/16", "127.0.0.1", "source_ips"] {
            assert!(!page.body.contains(internal), "{internal}: {}", page.body);
        }
    }
}

#[tokio::test]
async fn scripts_still_get_the_json_403() {
    let stack = Stack::start().await;
    let mut bob = stack.login("bob").await;
    let page = bob.fetch(&stack.url("/admin")).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(
        page.headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let json: serde_json::Value = serde_json::from_str(&page.body).expect("JSON");
    assert_eq!(json["error"], "forbidden", "{json}");
    assert!(!page.body.contains("Bob"), "{}", page.body);
}

#[tokio::test]
async fn signed_in_page_shows_the_name_roles_provider_expiry_and_claims() {
    let stack = Stack::start_with(with_more_routes()).await;
    let mut alice = stack.login("alice").await;
    let page = alice.navigate(&stack.url("/_auth/")).await;
    assert_html_no_store(&page, StatusCode::OK);
    let body = &page.body;
    for expected in [
        "<dt>Name</dt><dd>Alice Liddell</dd>",
        "<dt>Email</dt><dd>alice@example.com</dd>",
        "<dt>Subject</dt><dd>alice</dd>",
        "<dt>Signed in with</dt><dd>127.0.0.1 (default)</dd>",
        "<dt>Roles</dt><dd>admin, user</dd>",
        "<tr><td><code>department</code></td><td><code>&quot;eng&quot;</code></td></tr>",
        "<form method=\"post\" action=\"/_auth/logout\">",
    ] {
        assert!(body.contains(expected), "{expected} missing: {body}");
    }
    let expiry =
        regex::Regex::new(r#"<time datetime="(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)">"#).expect("regex");
    let expires = &expiry.captures(body).expect("an RFC 3339 expiry")[1];
    let now = portcullis::proxy::pages::rfc3339(stack.clock.now());
    assert!(
        expires > now.as_str(),
        "the session expires after now ({now}): {expires}"
    );
}

#[tokio::test]
async fn signed_in_page_without_a_session_sends_a_browser_to_sign_in() {
    let stack = Stack::start().await;
    let page = stack.browser().navigate(&stack.url("/_auth/")).await;
    assert_eq!(page.status, StatusCode::FOUND);
    let location = page.location().expect("location");
    assert!(location.starts_with(&stack.idp.issuer()), "{location}");
    let script = stack.browser().fetch(&stack.url("/_auth/")).await;
    assert_eq!(script.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn operator_templates_replace_the_forbidden_and_signed_in_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).expect("template");
    };
    write("error.html", "ACME error {{status}}");
    write(
        "forbidden.html",
        "ACME 403 [{{user}}] [{{provider}}] [{{reason}}] [{{actions}}] [{{request_id}}]",
    );
    write(
        "signed-in.html",
        "ACME me [{{user}}] [{{provider}}] [{{roles}}] [{{expires}}] [{{claims}}] \
         [{{actions}}] [{{request_id}}]",
    );
    let stack = Stack::start_with(StackOptions {
        server: format!("templates_dir = \"{}\"", dir.path().display()),
        oidc: "display_name = \"Example <Corp>\"".into(),
        ..with_more_routes()
    })
    .await;
    let mut bob = stack.login("bob").await;

    let page = bob
        .request(
            http::Method::GET,
            &stack.url("/admin"),
            &[("accept", "text/html"), ("x-request-id", "r-<1>")],
            "",
        )
        .await;
    assert_html_no_store(&page, StatusCode::FORBIDDEN);
    assert!(
        page.body.starts_with(
            "ACME 403 [Bob Builder (bob@example.com)] [Example &lt;Corp&gt;] \
             [This page is for people with the admin role; your account has: user.] \
             [<form method=\"post\" action=\"/_auth/logout\">"
        ),
        "{}",
        page.body
    );
    assert!(!page.body.contains("{{"), "{}", page.body);
    assert!(!page.body.contains("r-<1>"), "{}", page.body);

    let me = bob.navigate(&stack.url("/_auth/")).await;
    assert_html_no_store(&me, StatusCode::OK);
    let body = &me.body;
    assert!(
        body.starts_with("ACME me [<dl class=\"user\"><dt>Name</dt><dd>Bob Builder</dd>"),
        "{body}"
    );
    assert!(
        body.contains("] [Example &lt;Corp&gt; (default)] [user] [20"),
        "{body}"
    );
    assert!(body.contains("<code>&quot;sales&quot;</code>"), "{body}");
    assert!(!body.contains("{{"), "{body}");

    let error = stack.browser().navigate(&stack.url("/office")).await;
    assert_eq!(error.body, "ACME error 403");
}

#[tokio::test]
async fn chooser_lists_each_providers_display_name_as_a_button() {
    // A second provider (its own development IdP): the chooser only needs its
    // name and client, not a finished sign-in.
    let partner = devidp::start(devidp::Config::new(devidp::Client::new(
        "portcullis-partners",
        "partner-secret",
        "http://127.0.0.1/_auth/callback/partners",
    )))
    .await
    .expect("second provider starts");
    let stack = Stack::start_with(StackOptions {
        oidc: "display_name = \"Example Corp\"".into(),
        extra: format!(
            r#"{ROUTES}
[providers.partners]
display_name = "Partner <SSO>"
issuer = "{issuer}"
client_id = "portcullis-partners"
client_secret = "partner-secret"

[[route]]
name = "partners"
path = "/partners"
providers = ["partners", "default"]
"#,
            issuer = partner.issuer()
        ),
        ..StackOptions::default()
    })
    .await;
    let page = stack.browser().navigate(&stack.url("/partners/x")).await;
    assert_html_no_store(&page, StatusCode::OK);
    let body = &page.body;
    assert!(body.contains("<h1>Sign in to 127.0.0.1</h1>"), "{body}");
    for (name, display) in [
        ("partners", "Partner &lt;SSO&gt;"),
        ("default", "Example Corp"),
    ] {
        let link = regex::Regex::new(&format!(
            r#"<a class="button provider" data-provider="{name}" href="([^"]+)">{display}</a>"#
        ))
        .expect("regex");
        let href = &link
            .captures(body)
            .unwrap_or_else(|| panic!("{name}: {body}"))[1];
        assert!(
            href.contains("/_auth/login?rd=%2Fpartners%2Fx&amp;provider="),
            "{href}"
        );
    }
    assert!(
        body.find("data-provider=\"partners\"") < body.find("data-provider=\"default\""),
        "in the route's order"
    );
    partner.shutdown();
}
