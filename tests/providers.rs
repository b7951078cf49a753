//! Several identity providers at once (SPEC §12), over real HTTP: the default
//! development provider ("default") and a second one ("partners"), each a real
//! OpenID provider on its own port, plus a bearer-only one ("ci") where tokens
//! are concerned. Every refusal sits beside the honest request that succeeds.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::stack::{chooser_links, Browser, Page, PartnerOptions, Stack, StackOptions};

/// `/partners` admits only the partner, `/both` both, everything else the
/// default only (`policy.providers`). `/ci-api` takes the bearer-only
/// provider's tokens, `/partner-api` the partner's, `/api` the default's,
/// `/any-api` the default's and ci's.
const ROUTES: &str = r#"
[[route]]
name = "partners-only"
path = "/partners"
providers = ["partners"]

[[route]]
name = "both-admin"
path = "/both/admin"
providers = ["default", "partners"]
roles_any = ["admin"]

[[route]]
name = "both"
path = "/both"
providers = ["default", "partners"]

[[route]]
name = "ci-api"
path = "/ci-api"
auth = "bearer"
providers = ["ci"]

[[route]]
name = "partner-api"
path = "/partner-api"
auth = "bearer"
providers = ["partners"]

[[route]]
name = "any-api"
path = "/any-api"
auth = "bearer"
providers = ["default", "ci"]

[[route]]
name = "api"
path = "/api"
auth = "bearer"

[[route]]
name = "public"
path = "/public"
auth = "public"
"#;

/// The `aud` the bearer-only provider's tokens carry.
const CI_AUDIENCE: &str = "https://portcullis.test";

/// The partner's users: an `alice` whose `sub` equals the default's alice but
/// who is someone else (other roles, other address), and a user of its own.
fn partner_users() -> Vec<portcullis_devidp::User> {
    vec![
        portcullis_devidp::User {
            sub: "alice".to_owned(),
            username: "alice".to_owned(),
            name: "Alice Partner".to_owned(),
            email: "alice@partner.example".to_owned(),
            email_verified: true,
            roles: vec!["partner".to_owned()],
            extra: serde_json::Map::new(),
        },
        portcullis_devidp::User {
            sub: "pat".to_owned(),
            username: "pat".to_owned(),
            name: "Pat Partner".to_owned(),
            email: "pat@partner.example".to_owned(),
            email_verified: true,
            roles: vec!["partner".to_owned()],
            extra: serde_json::Map::new(),
        },
    ]
}

fn partners() -> PartnerOptions {
    PartnerOptions {
        display_name: "Partner SSO".to_owned(),
        users: partner_users(),
        ..PartnerOptions::named("partners")
    }
}

/// Default + partners (with clients) + ci (bearer tokens only).
async fn stack() -> Stack {
    stack_with(partners()).await
}

async fn stack_with(partner: PartnerOptions) -> Stack {
    Stack::start_with(StackOptions {
        extra: ROUTES.to_owned(),
        oidc: "display_name = \"Example Corp\"".to_owned(),
        partners: vec![partner, PartnerOptions::bearer_only("ci", CI_AUDIENCE)],
        ..StackOptions::default()
    })
    .await
}

fn json_of(page: &Page) -> Value {
    serde_json::from_str(&page.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", page.body))
}

/// The claims of a JWT, read without verifying it (the proxy's own tests
/// verify the assertion; here only what it says matters).
fn claims_of(token: &str) -> Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    crate::support::query_pairs(url).into_iter().collect()
}

/// `url` with its query parameter `name` set to `value` (`None`: removed).
fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let mut parsed = url::Url::parse(url).expect("url");
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut query = parsed.query_pairs_mut();
        query.clear();
        for (k, v) in &kept {
            query.append_pair(k, v);
        }
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    parsed.into()
}

/// `url` with its path replaced by `path` (query kept).
fn with_path(url: &str, path: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("url");
    parsed.set_path(path);
    parsed.into()
}

/// Starts a login at `provider` in `browser` and signs in there as `user`;
/// returns the provider's redirect back (the callback URL, not yet visited).
async fn callback_from(stack: &Stack, browser: &mut Browser, provider: &str, user: &str) -> String {
    let form = browser.follow(&stack.login_url(provider, "/both/me")).await;
    assert!(
        form.body.contains("name=\"user\""),
        "{provider}'s sign-in page: {}",
        form.body
    );
    browser.submit_sign_in(&form, user).await
}

// === Which provider a route admits ===

#[tokio::test]
async fn a_default_session_is_sent_to_sign_in_at_the_partner_on_a_partner_only_route() {
    let stack = stack().await;
    let partner = stack.partner("partners");
    let mut browser = stack.login("alice").await;
    let own = browser.fetch(&stack.url("/private")).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    assert_eq!(own.seen().one("x-forwarded-provider"), Some("default"));
    let hits = stack.echo.hits();

    let script = browser.fetch(&stack.url("/partners/report")).await;
    assert_eq!(script.status, StatusCode::FORBIDDEN, "{}", script.body);
    assert_eq!(json_of(&script)["error"], "provider_not_allowed");

    let sent = browser.navigate(&stack.url("/partners/report")).await;
    assert_eq!(sent.status, StatusCode::FOUND, "{}", sent.body);
    let location = sent.location().expect("a redirect").to_owned();
    assert!(
        location.starts_with(&format!("{}/authorize?", partner.issuer())),
        "sent to {location}"
    );
    let q = query_of(&location);
    assert_eq!(q["client_id"], "portcullis-partners");
    assert_eq!(q["redirect_uri"], stack.url("/_auth/callback/partners"));
    assert_eq!(
        stack.echo.hits(),
        hits,
        "the upstream never saw a refused request"
    );

    let landed = browser.sign_in(&location, "alice").await;
    assert_eq!(landed.status, StatusCode::OK, "{}", landed.body);
    assert!(landed.url.ends_with("/partners/report"), "{}", landed.url);
    let seen = landed.seen();
    assert_eq!(seen.one("x-forwarded-provider"), Some("partners"));
    assert_eq!(seen.one("x-forwarded-email"), Some("alice@partner.example"));
}

#[tokio::test]
async fn a_partner_session_is_refused_on_a_default_only_route() {
    let stack = stack().await;
    let mut browser = stack.login_at("partners", "pat", "/partners/x").await;
    let own = browser.fetch(&stack.url("/partners/x")).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    assert_eq!(own.seen().one("x-forwarded-user"), Some("pat"));
    let hits = stack.echo.hits();

    let script = browser.fetch(&stack.url("/private")).await;
    assert_eq!(script.status, StatusCode::FORBIDDEN, "{}", script.body);
    assert_eq!(json_of(&script)["error"], "provider_not_allowed");

    let sent = browser.navigate(&stack.url("/private")).await;
    assert_eq!(sent.status, StatusCode::FOUND, "{}", sent.body);
    let location = sent.location().expect("a redirect");
    assert!(
        location.starts_with(&format!("{}/authorize?", stack.idp.issuer())),
        "sent to the default provider, not {location}"
    );
    assert_eq!(
        stack.echo.hits(),
        hits,
        "the upstream never saw a refused request"
    );

    let landed = browser.sign_in(location, "alice").await;
    assert_eq!(landed.status, StatusCode::OK, "{}", landed.body);
    assert_eq!(landed.seen().one("x-forwarded-provider"), Some("default"));
    assert_eq!(
        browser.fetch(&stack.url("/partners/x")).await.status,
        StatusCode::FORBIDDEN,
        "the default session replaced the partner's"
    );
}

#[tokio::test]
async fn a_route_admitting_both_shows_a_chooser_whose_links_sign_in_at_each() {
    let stack = stack().await;
    let mut browser = stack.browser();
    let page = browser.navigate(&stack.url("/both/page?x=1")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let content_type = page.headers.get("content-type").expect("content-type");
    assert!(
        content_type
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html"),
        "{content_type:?}"
    );
    let links = chooser_links(&page);
    let names: Vec<(&str, &str)> = links
        .iter()
        .map(|(name, shown, _)| (name.as_str(), shown.as_str()))
        .collect();
    assert_eq!(
        names,
        [("default", "Example Corp"), ("partners", "Partner SSO")],
        "{}",
        page.body
    );
    for (name, _, url) in &links {
        let q = query_of(url);
        assert_eq!(q["provider"], *name, "{url}");
        assert_eq!(q["rd"], "/both/page?x=1", "{url}");
    }
    assert_eq!(stack.echo.hits(), 0);

    let landed = browser
        .sign_in_with(&stack.url("/both/page?x=1"), "partners", "pat")
        .await;
    assert_eq!(landed.status, StatusCode::OK, "{}", landed.body);
    assert!(landed.url.ends_with("/both/page?x=1"), "{}", landed.url);
    assert_eq!(landed.seen().one("x-forwarded-provider"), Some("partners"));
    assert_eq!(landed.seen().one("x-forwarded-user"), Some("pat"));

    let mut other = stack.browser();
    let landed = other
        .sign_in_with(&stack.url("/both/page?x=1"), "default", "bob")
        .await;
    assert_eq!(landed.status, StatusCode::OK, "{}", landed.body);
    assert_eq!(landed.seen().one("x-forwarded-provider"), Some("default"));
    assert_eq!(landed.seen().one("x-forwarded-user"), Some("bob"));
}

#[tokio::test]
async fn a_script_on_a_route_admitting_both_gets_401_not_the_chooser() {
    let stack = stack().await;
    let mut browser = stack.browser();
    let page = browser.fetch(&stack.url("/both/data")).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    assert_eq!(json_of(&page)["error"], "unauthenticated");
    let navigation = browser.navigate(&stack.url("/both/data")).await;
    assert_eq!(
        navigation.status,
        StatusCode::OK,
        "the chooser, for a browser"
    );
    assert!(
        !chooser_links(&navigation).is_empty(),
        "{}",
        navigation.body
    );
}

#[tokio::test]
async fn a_scripts_login_url_names_the_only_provider_its_route_admits() {
    let stack = stack().await;
    let mut browser = stack.browser();
    let page = browser.fetch(&stack.url("/partners/data")).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    let login_url = json_of(&page)["login_url"]
        .as_str()
        .expect("a login_url")
        .to_owned();
    assert_eq!(
        login_url,
        stack.url("/_auth/login?rd=%2Fpartners%2Fdata&provider=partners")
    );
    let landed = browser.sign_in(&login_url, "pat").await;
    assert_eq!(landed.status, StatusCode::OK, "{}", landed.body);
    assert_eq!(landed.seen().one("x-forwarded-provider"), Some("partners"));

    // A route of the default's only: the URL it always had.
    let page = stack.browser().fetch(&stack.url("/private")).await;
    assert_eq!(
        json_of(&page)["login_url"],
        stack.url("/_auth/login?rd=%2Fprivate&provider=default")
    );
}

#[tokio::test]
async fn the_login_endpoint_goes_to_the_provider_it_names_or_the_routes_choice() {
    let stack = stack().await;
    let partner_authorize = format!("{}/authorize?", stack.partner("partners").issuer());
    let default_authorize = format!("{}/authorize?", stack.idp.issuer());
    let mut browser = stack.browser();
    let location = |page: &Page| page.location().unwrap_or_default().to_owned();

    let named = browser
        .navigate(&stack.login_url("partners", "/private"))
        .await;
    assert_eq!(named.status, StatusCode::FOUND);
    assert!(
        location(&named).starts_with(&partner_authorize),
        "{named:?}"
    );
    let named = browser
        .navigate(&stack.login_url("default", "/partners/x"))
        .await;
    assert_eq!(named.status, StatusCode::FOUND);
    assert!(
        location(&named).starts_with(&default_authorize),
        "{named:?}"
    );

    // Without `provider`: the providers the route of `rd` admits.
    let login = |rd: &str| {
        let rd: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        stack.url(&format!("/_auth/login?rd={rd}"))
    };
    let one = browser.navigate(&login("/partners/x")).await;
    assert_eq!(one.status, StatusCode::FOUND);
    assert!(location(&one).starts_with(&partner_authorize), "{one:?}");
    let one = browser.navigate(&login("/private")).await;
    assert_eq!(one.status, StatusCode::FOUND);
    assert!(location(&one).starts_with(&default_authorize), "{one:?}");
    let several = browser.navigate(&login("/both/x")).await;
    assert_eq!(several.status, StatusCode::OK, "the chooser");
    assert_eq!(chooser_links(&several).len(), 2, "{}", several.body);

    // Unknown, or without a client: 400, and nobody is sent anywhere.
    for name in ["nobody", "ci", "Partners", ""] {
        let page = browser.navigate(&stack.login_url(name, "/private")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "provider={name:?}");
        assert!(page.location().is_none(), "provider={name:?}");
    }
}

// === One sub, two users ===

#[tokio::test]
async fn the_same_sub_at_both_providers_is_two_users() {
    let stack = stack().await;
    let mut at_default = stack.login_at("default", "alice", "/both/me").await;
    let mut at_partner = stack.login_at("partners", "alice", "/both/me").await;

    let forged = [
        ("accept", "application/json"),
        ("x-forwarded-provider", "default"),
    ];
    let from_default = at_default
        .request(Method::GET, &stack.url("/both/me"), &forged, "")
        .await
        .seen();
    let from_partner = at_partner
        .request(Method::GET, &stack.url("/both/me"), &forged, "")
        .await
        .seen();
    for (seen, provider, email, groups, issuer) in [
        (
            &from_default,
            "default",
            "alice@example.com",
            "admin,user",
            stack.idp.issuer(),
        ),
        (
            &from_partner,
            "partners",
            "alice@partner.example",
            "partner",
            stack.partner("partners").issuer(),
        ),
    ] {
        assert_eq!(seen.one("x-forwarded-user"), Some("alice"));
        assert_eq!(
            seen.one("x-forwarded-provider"),
            Some(provider),
            "the client's own X-Forwarded-Provider is replaced"
        );
        assert_eq!(seen.one("x-forwarded-email"), Some(email));
        assert_eq!(seen.one("x-forwarded-groups"), Some(groups));
        let assertion = claims_of(seen.one("x-portcullis-identity").expect("assertion"));
        assert_eq!(assertion["sub"], "alice");
        assert_eq!(assertion["idp"], provider, "{assertion}");
        let idp_iss = assertion["idp_iss"].as_str().unwrap_or_default();
        assert_eq!(idp_iss.trim_end_matches('/'), issuer, "{assertion}");
    }

    for (browser, provider, email) in [
        (&mut at_default, "default", "alice@example.com"),
        (&mut at_partner, "partners", "alice@partner.example"),
    ] {
        let info = browser.fetch(&stack.url("/_auth/userinfo")).await;
        assert_eq!(info.status, StatusCode::OK, "{}", info.body);
        let info = json_of(&info);
        assert_eq!(info["provider"], provider, "{info}");
        assert_eq!(info["sub"], "alice", "{info}");
        assert_eq!(info["email"], email, "{info}");
    }

    // Roles are the provider's: the partner's alice is not the default's admin.
    let admin = at_default.fetch(&stack.url("/both/admin/panel")).await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.body);
    let admin = at_partner.fetch(&stack.url("/both/admin/panel")).await;
    assert_eq!(admin.status, StatusCode::FORBIDDEN, "{}", admin.body);
}

/// `idp_iss` is what an app compares with the issuer it knows: exactly the
/// `iss` its provider writes in its tokens (issuers are compared as strings,
/// OIDC Core §3.1.3.7 step 2), not a normalized form of the configured URL.
#[tokio::test]
async fn the_identity_assertion_names_the_issuer_exactly_as_its_provider_does() {
    let stack = stack().await;
    for (provider, user, idp, client) in [
        ("default", "alice", &stack.idp, "portcullis"),
        (
            "partners",
            "pat",
            stack.partner("partners"),
            "portcullis-partners",
        ),
    ] {
        let token_iss = claims_of(&idp.access_token_for(user, client))["iss"].clone();
        let mut browser = stack.login_at(provider, user, "/both/me").await;
        let seen = browser.fetch(&stack.url("/both/me")).await.seen();
        let assertion = claims_of(seen.one("x-portcullis-identity").expect("assertion"));
        assert_eq!(assertion["idp"], provider, "{assertion}");
        assert_eq!(assertion["idp_iss"], token_iss, "{provider}: {assertion}");
    }
}

#[tokio::test]
async fn x_forwarded_provider_from_a_client_never_reaches_the_upstream() {
    let stack = stack().await;
    let mut browser = stack.browser();
    let public = browser
        .request(
            Method::GET,
            &stack.url("/public/x"),
            &[("x-forwarded-provider", "partners")],
            "",
        )
        .await;
    assert_eq!(public.status, StatusCode::OK, "{}", public.body);
    assert_eq!(public.seen().one("x-forwarded-provider"), None);
    let mut signed_in = stack.login_at("partners", "pat", "/partners/x").await;
    let seen = signed_in
        .request(
            Method::GET,
            &stack.url("/partners/x"),
            &[("x-forwarded-provider", "default")],
            "",
        )
        .await
        .seen();
    assert_eq!(seen.all("x-forwarded-provider"), ["partners"]);
}

#[tokio::test]
async fn a_backchannel_logout_ends_only_the_sessions_of_its_own_provider() {
    let stack = stack().await;
    let partner = stack.partner("partners");
    let mut at_default = stack.login_at("default", "alice", "/both/me").await;
    let mut at_partner = stack.login_at("partners", "alice", "/both/me").await;

    let deliveries = partner.backchannel_logout("alice").await;
    assert!(
        !deliveries.is_empty(),
        "the partner's client has a logout URI"
    );
    for delivery in &deliveries {
        assert!(delivery.is_delivered(), "{delivery:?}");
        assert_eq!(delivery.client_id, "portcullis-partners");
        assert_eq!(delivery.uri, stack.url("/_auth/backchannel-logout"));
    }
    assert_eq!(
        at_partner.fetch(&stack.url("/both/me")).await.status,
        StatusCode::UNAUTHORIZED,
        "the partner's alice is logged out"
    );
    assert_eq!(
        at_default.fetch(&stack.url("/both/me")).await.status,
        StatusCode::OK,
        "the default's alice is someone else and stays"
    );

    // And the reverse.
    let mut at_partner = stack.login_at("partners", "alice", "/both/me").await;
    let deliveries = stack.idp.backchannel_logout("alice").await;
    assert!(!deliveries.is_empty());
    assert!(
        deliveries.iter().all(|d| d.is_delivered()),
        "{deliveries:?}"
    );
    assert_eq!(
        at_default.fetch(&stack.url("/both/me")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        at_partner.fetch(&stack.url("/both/me")).await.status,
        StatusCode::OK
    );
}

/// A logout token is judged by the provider its `iss` names: that provider's
/// keys and that provider's client as `aud`; one provider cannot end another's
/// sessions, nor be impersonated by another's key.
#[tokio::test]
async fn a_logout_token_must_be_signed_by_and_addressed_from_its_own_provider() {
    let stack = stack().await;
    let partner = stack.partner("partners");
    let mut at_partner = stack.login_at("partners", "alice", "/both/me").await;
    let mut at_default = stack.login_at("default", "alice", "/both/me").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let logout = |iss: &str, aud: &str| {
        json!({
            "iss": iss, "aud": aud, "iat": now, "exp": now + 120, "sub": "alice",
            "jti": format!("{}", rand::random::<u64>()),
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        })
    };
    let header = json!({"typ": "logout+jwt"});
    let post = |token: String| {
        let url = stack.url("/_auth/backchannel-logout");
        async move {
            Browser::default()
                .request(
                    Method::POST,
                    &url,
                    &[("content-type", "application/x-www-form-urlencoded")],
                    &format!("logout_token={token}"),
                )
                .await
        }
    };
    let cases = [
        (
            "the default's key, the partner's iss",
            stack.idp.sign_jwt(
                header.clone(),
                logout(&partner.issuer(), "portcullis-partners"),
            ),
        ),
        (
            "the partner's key and iss, the default's client",
            partner.sign_jwt(header.clone(), logout(&partner.issuer(), "portcullis")),
        ),
        (
            "the partner's key, the default's iss",
            partner.sign_jwt(header.clone(), logout(&stack.idp.issuer(), "portcullis")),
        ),
    ];
    for (what, token) in cases {
        let page = post(token).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            page.body
        );
        for browser in [&mut at_partner, &mut at_default] {
            assert_eq!(
                browser.fetch(&stack.url("/both/me")).await.status,
                StatusCode::OK,
                "{what} ended a session"
            );
        }
    }

    let honest = partner.sign_jwt(
        header.clone(),
        logout(&partner.issuer(), "portcullis-partners"),
    );
    assert_eq!(post(honest).await.status, StatusCode::OK);
    assert_eq!(
        at_partner.fetch(&stack.url("/both/me")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        at_default.fetch(&stack.url("/both/me")).await.status,
        StatusCode::OK
    );
}

/// With no provider session left, the provider sends a logout token naming
/// only `sub`: the proxy's `sub` index must be keyed by provider too.
#[tokio::test]
async fn a_sub_only_logout_token_ends_only_that_providers_user() {
    let stack = stack().await;
    let partner = stack.partner("partners");
    let mut at_default = stack.login_at("default", "alice", "/both/me").await;
    let mut at_partner = stack.login_at("partners", "alice", "/both/me").await;

    partner.end_provider_sessions();
    let deliveries = partner.backchannel_logout("alice").await;
    assert!(!deliveries.is_empty());
    assert!(
        deliveries.iter().all(|d| d.is_delivered()),
        "{deliveries:?}"
    );
    assert_eq!(
        at_partner.fetch(&stack.url("/both/me")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        at_default.fetch(&stack.url("/both/me")).await.status,
        StatusCode::OK
    );

    let mut at_partner = stack.login_at("partners", "alice", "/both/me").await;
    stack.idp.end_provider_sessions();
    let deliveries = stack.idp.backchannel_logout("alice").await;
    assert!(
        deliveries.iter().all(|d| d.is_delivered()),
        "{deliveries:?}"
    );
    assert_eq!(
        at_default.fetch(&stack.url("/both/me")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        at_partner.fetch(&stack.url("/both/me")).await.status,
        StatusCode::OK
    );
}

// === IdP mix-up (RFC 9700 §4.4, RFC 9207) ===

/// Delivers `tampered` (a callback URL) and expects 400 with no session and
/// no code exchanged at either provider.
async fn refused(stack: &Stack, browser: &mut Browser, tampered: &str, what: &str) {
    let before = (
        stack.idp.stats().code_exchanges,
        stack.partner("partners").stats().code_exchanges,
    );
    let page = browser.navigate(tampered).await;
    assert_eq!(
        page.status,
        StatusCode::BAD_REQUEST,
        "{what}: {}",
        page.body
    );
    assert!(
        page.set_cookies()
            .iter()
            .all(|c| !c.starts_with("portcullis=")),
        "{what}"
    );
    let after = (
        stack.idp.stats().code_exchanges,
        stack.partner("partners").stats().code_exchanges,
    );
    assert_eq!(after, before, "{what}: a code was presented to a provider");
    assert_eq!(
        browser.fetch(&stack.url("/both/me")).await.status,
        StatusCode::UNAUTHORIZED,
        "{what}: no session"
    );
}

/// Delivers `callback` unchanged and expects to land signed in at `provider`.
async fn lands(browser: &mut Browser, callback: &str, provider: &str) {
    let page = browser.follow(callback).await;
    assert_eq!(page.status, StatusCode::OK, "{provider}: {}", page.body);
    assert_eq!(page.seen().one("x-forwarded-provider"), Some(provider));
}

#[tokio::test]
async fn a_default_providers_response_at_the_partners_callback_is_refused() {
    let stack = stack().await;
    let mut browser = stack.browser();
    let callback = callback_from(&stack, &mut browser, "default", "alice").await;
    assert!(
        callback.starts_with(&stack.url("/_auth/callback?")),
        "{callback}"
    );
    assert_eq!(query_of(&callback)["iss"], stack.idp.issuer());
    let tampered = with_path(&callback, "/_auth/callback/partners");
    refused(
        &stack,
        &mut browser,
        &tampered,
        "default's code at partners' path",
    )
    .await;

    let mut honest = stack.browser();
    let callback = callback_from(&stack, &mut honest, "default", "alice").await;
    lands(&mut honest, &callback, "default").await;
}

#[tokio::test]
async fn a_partners_response_at_the_default_callback_is_refused() {
    let stack = stack().await;
    let mut browser = stack.browser();
    let callback = callback_from(&stack, &mut browser, "partners", "pat").await;
    assert!(
        callback.starts_with(&stack.url("/_auth/callback/partners?")),
        "{callback}"
    );
    let tampered = with_path(&callback, "/_auth/callback");
    refused(
        &stack,
        &mut browser,
        &tampered,
        "partners' code at default's path",
    )
    .await;

    let mut honest = stack.browser();
    let callback = callback_from(&stack, &mut honest, "partners", "pat").await;
    lands(&mut honest, &callback, "partners").await;
}

#[tokio::test]
async fn an_iss_naming_the_other_provider_is_refused() {
    let stack = stack().await;
    let partner_issuer = stack.partner("partners").issuer();
    let default_issuer = stack.idp.issuer();

    let mut browser = stack.browser();
    let callback = callback_from(&stack, &mut browser, "default", "alice").await;
    let tampered = with_param(&callback, "iss", Some(&partner_issuer));
    refused(
        &stack,
        &mut browser,
        &tampered,
        "default's state, partners' iss",
    )
    .await;

    let mut browser = stack.browser();
    let callback = callback_from(&stack, &mut browser, "partners", "pat").await;
    let tampered = with_param(&callback, "iss", Some(&default_issuer));
    refused(
        &stack,
        &mut browser,
        &tampered,
        "partners' state, default's iss",
    )
    .await;

    // The same flows, untouched.
    let mut honest = stack.browser();
    let callback = callback_from(&stack, &mut honest, "default", "alice").await;
    lands(&mut honest, &callback, "default").await;
    let mut honest = stack.browser();
    let callback = callback_from(&stack, &mut honest, "partners", "pat").await;
    lands(&mut honest, &callback, "partners").await;
}

#[tokio::test]
async fn a_response_without_iss_is_refused_from_a_provider_that_advertises_it() {
    let stack = stack().await;
    for (provider, user) in [("default", "alice"), ("partners", "pat")] {
        let mut browser = stack.browser();
        let callback = callback_from(&stack, &mut browser, provider, user).await;
        let tampered = with_param(&callback, "iss", None);
        refused(
            &stack,
            &mut browser,
            &tampered,
            &format!("{provider} without iss"),
        )
        .await;

        let mut honest = stack.browser();
        let callback = callback_from(&stack, &mut honest, provider, user).await;
        assert!(query_of(&callback).contains_key("iss"));
        lands(&mut honest, &callback, provider).await;
    }
}

#[tokio::test]
async fn a_provider_that_does_not_advertise_iss_may_omit_it_but_not_name_another() {
    let stack = stack_with(PartnerOptions {
        idp: Box::new(|config| config.authorization_response_iss_parameter_supported = false),
        ..partners()
    })
    .await;
    let mut browser = stack.browser();
    let callback = callback_from(&stack, &mut browser, "partners", "pat").await;
    let tampered = with_param(&callback, "iss", Some(&stack.idp.issuer()));
    refused(
        &stack,
        &mut browser,
        &tampered,
        "partners' state, default's iss",
    )
    .await;

    // Without `iss` to tell, only the callback's path stands between the
    // default's code and the partner's token endpoint.
    let mut browser = stack.browser();
    let callback = callback_from(&stack, &mut browser, "default", "alice").await;
    let tampered = with_path(
        &with_param(&callback, "iss", None),
        "/_auth/callback/partners",
    );
    refused(
        &stack,
        &mut browser,
        &tampered,
        "default's code at partners' path, no iss",
    )
    .await;

    let mut browser = stack.browser();
    let callback = callback_from(&stack, &mut browser, "partners", "pat").await;
    lands(
        &mut browser,
        &with_param(&callback, "iss", None),
        "partners",
    )
    .await;
}

// === Bearer tokens ===

fn bearer_claims(iss: &str, aud: &str, sub: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    json!({
        "iss": iss, "aud": aud, "sub": sub, "iat": now, "exp": now + 300,
        "jti": format!("{}", rand::random::<u64>()), "roles": ["deploy"],
    })
}

async fn call(stack: &Stack, path: &str, token: &str) -> Page {
    let auth = format!("Bearer {token}");
    Browser::default()
        .request(
            Method::GET,
            &stack.url(path),
            &[("authorization", &auth), ("accept", "application/json")],
            "",
        )
        .await
}

fn assert_invalid_token(page: &Page, what: &str) {
    assert_eq!(
        page.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        page.body
    );
    let challenge = page
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge}"
    );
}

#[tokio::test]
async fn bearer_only_provider_tokens_are_admitted_only_where_the_route_lists_it() {
    let stack = stack().await;
    let ci = stack.partner("ci");
    let ci_token = ci.access_token_for("deploy-bot", "github");
    assert_eq!(claims_of(&ci_token)["aud"], CI_AUDIENCE);
    let default_token = stack.idp.access_token_for("alice", "portcullis");

    for path in ["/ci-api/deploy", "/any-api/deploy"] {
        let page = call(&stack, path, &ci_token).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        let seen = page.seen();
        assert_eq!(seen.one("x-forwarded-user"), Some("deploy-bot"));
        assert_eq!(seen.one("x-forwarded-provider"), Some("ci"));
    }
    assert_invalid_token(&call(&stack, "/api/deploy", &ci_token).await, "ci on /api");

    for path in ["/api/x", "/any-api/x"] {
        let page = call(&stack, path, &default_token).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        assert_eq!(page.seen().one("x-forwarded-provider"), Some("default"));
    }
    assert_invalid_token(
        &call(&stack, "/ci-api/x", &default_token).await,
        "default on /ci-api",
    );
}

#[tokio::test]
async fn a_token_is_verified_only_by_the_provider_its_iss_names() {
    let stack = stack().await;
    let ci = stack.partner("ci");
    let honest = ci.sign_jwt(
        json!({"typ": "at+jwt"}),
        bearer_claims(&ci.issuer(), CI_AUDIENCE, "bot"),
    );
    assert_eq!(
        call(&stack, "/ci-api/x", &honest).await.status,
        StatusCode::OK
    );

    let cases = [
        (
            "an issuer no provider has",
            ci.sign_jwt(
                json!({"typ": "at+jwt"}),
                bearer_claims("https://nobody.example", CI_AUDIENCE, "bot"),
            ),
        ),
        (
            "ci's key claiming the default's issuer",
            ci.sign_jwt(
                json!({"typ": "at+jwt"}),
                bearer_claims(&stack.idp.issuer(), "portcullis", "alice"),
            ),
        ),
        (
            "the default's key claiming ci's issuer",
            stack.idp.sign_jwt(
                json!({"typ": "at+jwt"}),
                bearer_claims(&ci.issuer(), CI_AUDIENCE, "bot"),
            ),
        ),
        (
            "ci's token for the default's audience",
            ci.sign_jwt(
                json!({"typ": "at+jwt"}),
                bearer_claims(&ci.issuer(), "portcullis", "bot"),
            ),
        ),
    ];
    for (what, token) in &cases {
        for path in ["/ci-api/x", "/any-api/x", "/api/x"] {
            assert_invalid_token(
                &call(&stack, path, token).await,
                &format!("{what} on {path}"),
            );
        }
    }
    assert_eq!(
        stack.echo.hits(),
        1,
        "only the honest token reached the app"
    );
}

#[tokio::test]
async fn a_sign_in_providers_tokens_are_refused_on_bearer_routes_that_do_not_list_it() {
    let stack = stack().await;
    let partner = stack.partner("partners");
    let token = partner.access_token_for("pat", "portcullis-partners");
    let page = call(&stack, "/partner-api/x", &token).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.seen().one("x-forwarded-provider"), Some("partners"));
    assert_eq!(page.seen().one("x-forwarded-groups"), Some("partner"));
    assert_invalid_token(
        &call(&stack, "/any-api/x", &token).await,
        "partners on /any-api",
    );
    assert_invalid_token(&call(&stack, "/api/x", &token).await, "partners on /api");
}

// === A provider that is down ===

#[tokio::test]
async fn an_undiscovered_partner_leaves_the_proxy_ready_and_only_its_routes_503() {
    let stack = stack_with(PartnerOptions {
        unreachable: true,
        ..partners()
    })
    .await;
    let (status, _, body) =
        crate::support::get(&format!("http://{}/readyz", stack.proxy.admin_addr), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let line = body
        .lines()
        .find(|line| line.contains("partners"))
        .unwrap_or_else(|| panic!("the body names the partner: {body}"));
    assert!(line.contains("not discovered"), "{line}");

    let mut browser = stack.browser();
    let partner_route = browser.navigate(&stack.url("/partners/x")).await;
    assert_eq!(
        partner_route.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        partner_route.body
    );
    let login = browser
        .navigate(&stack.login_url("partners", "/partners/x"))
        .await;
    assert_eq!(
        login.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        login.body
    );
    let token = stack.idp.sign_jwt(
        json!({"typ": "at+jwt"}),
        bearer_claims(&stack.partners[0].issuer, "portcullis-partners", "pat"),
    );
    let api = call(&stack, "/partner-api/x", &token).await;
    assert_eq!(
        api.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a token of the undiscovered partner: {}",
        api.body
    );

    // The default's routes, and its choice on a shared route, work.
    let mut alice = stack.login("alice").await;
    assert_eq!(
        alice.fetch(&stack.url("/private")).await.status,
        StatusCode::OK
    );
    let mut chooser = stack.browser();
    let landed = chooser
        .sign_in_with(&stack.url("/both/x"), "default", "bob")
        .await;
    assert_eq!(landed.status, StatusCode::OK, "{}", landed.body);
    assert_eq!(landed.seen().one("x-forwarded-provider"), Some("default"));
}

// === Refresh, revocation and logout go to the session's provider ===

#[tokio::test]
async fn refresh_revocation_and_logout_go_to_the_sessions_own_provider() {
    let stack = stack().await;
    let partner = stack.partner("partners");
    let mut at_partner = stack.login_at("partners", "pat", "/partners/x").await;
    let mut at_default = stack.login("alice").await;

    stack.advance(5 * 60 - 10); // both access tokens are about to expire
    assert_eq!(
        at_partner.fetch(&stack.url("/partners/x")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        partner.stats().refreshes,
        1,
        "the partner refreshed its session"
    );
    assert_eq!(stack.idp.stats().refreshes, 0, "the default was not asked");
    assert_eq!(
        at_default.fetch(&stack.url("/private")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        stack.idp.stats().refreshes,
        1,
        "the default refreshed its own"
    );
    assert_eq!(partner.stats().refreshes, 1);
    assert_eq!(partner.stats().refresh_failures, 0);

    let (partner_revocations, default_revocations) =
        (partner.stats().revocations, stack.idp.stats().revocations);
    let out = at_partner.navigate(&stack.url("/_auth/logout")).await;
    assert!(out.status.is_redirection(), "{}", out.body);
    let location = out.location().expect("a redirect");
    assert!(
        location.starts_with(&format!("{}/end_session", partner.issuer())),
        "RP-initiated logout at the partner, not {location}"
    );
    let q = query_of(location);
    assert_eq!(q["post_logout_redirect_uri"], stack.url("/"));
    assert!(q.contains_key("id_token_hint"));
    assert_eq!(partner.stats().revocations, partner_revocations + 1);
    assert_eq!(stack.idp.stats().revocations, default_revocations);
    assert_eq!(
        at_partner.fetch(&stack.url("/partners/x")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        at_default.fetch(&stack.url("/private")).await.status,
        StatusCode::OK,
        "the default's session is another browser's"
    );
}

// === Each provider's own claims ===

/// A partner that puts roles in `groups`: its users' roles are read there,
/// from sessions and from bearer tokens alike, while the default's stay in
/// `roles`.
#[tokio::test]
async fn each_provider_reads_roles_from_its_own_claim() {
    let stack = stack_with(PartnerOptions {
        roles_claim: "groups".to_owned(),
        ..partners()
    })
    .await;
    let partner = stack.partner("partners");
    let token = partner.access_token_for("pat", "portcullis-partners");
    assert_eq!(claims_of(&token)["groups"], json!(["partner"]));
    assert_eq!(claims_of(&token).get("roles"), None);

    let mut at_partner = stack.login_at("partners", "alice", "/both/me").await;
    let seen = at_partner.fetch(&stack.url("/both/me")).await.seen();
    assert_eq!(seen.one("x-forwarded-groups"), Some("partner"));
    let page = call(&stack, "/partner-api/x", &token).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.seen().one("x-forwarded-groups"), Some("partner"));

    let mut at_default = stack.login_at("default", "alice", "/both/me").await;
    let seen = at_default.fetch(&stack.url("/both/me")).await.seen();
    assert_eq!(seen.one("x-forwarded-groups"), Some("admin,user"));
    assert_eq!(
        at_default.fetch(&stack.url("/both/admin/x")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        at_partner.fetch(&stack.url("/both/admin/x")).await.status,
        StatusCode::FORBIDDEN
    );
}

// === Forward auth ===

async fn check(stack: &Stack, browser: &mut Browser, headers: &[(&str, &str)]) -> Page {
    browser
        .request(Method::GET, &stack.url("/_auth/check"), headers, "")
        .await
}

/// `/check` applies a route's providers as inline mode does: the admitted
/// provider's session passes with its headers, another's is refused.
#[tokio::test]
async fn forward_auth_admits_only_the_routes_providers() {
    let stack = stack().await;
    let mut at_partner = stack.login_at("partners", "pat", "/partners/x").await;
    let mut at_default = stack.login("alice").await;

    let passed = check(
        &stack,
        &mut at_partner,
        &[("x-original-uri", "/partners/x")],
    )
    .await;
    assert_eq!(passed.status, StatusCode::OK, "{}", passed.body);
    assert_eq!(passed.headers["x-forwarded-provider"], "partners");
    assert_eq!(passed.headers["x-forwarded-user"], "pat");
    let passed = check(&stack, &mut at_default, &[("x-original-uri", "/private")]).await;
    assert_eq!(passed.status, StatusCode::OK, "{}", passed.body);
    assert_eq!(passed.headers["x-forwarded-provider"], "default");

    let script = [
        ("x-original-uri", "/partners/x"),
        ("accept", "application/json"),
    ];
    let refused = check(&stack, &mut at_default, &script).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.headers.get("x-forwarded-user").is_none());
    assert_eq!(json_of(&refused)["error"], "provider_not_allowed");

    // Traefik can pass a redirect on: a browser is sent to the partner.
    let traefik = check(
        &stack,
        &mut at_default,
        &[
            ("x-forwarded-uri", "/partners/x"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-host", "127.0.0.1"),
            ("accept", "text/html"),
        ],
    )
    .await;
    assert_eq!(traefik.status, StatusCode::FOUND, "{}", traefik.body);
    let location = traefik.location().unwrap_or_default();
    assert!(
        location.starts_with(&stack.partner("partners").issuer()),
        "{location}"
    );
}

/// nginx's `auth_request` passes only 2xx, 401 and 403 on, and its
/// `error_page 401` is what sends a browser to sign in (SPEC §8: 302 for a
/// browser, which behind nginx is spelled 401). A browser whose session is of
/// a provider the route does not admit must be sent to sign in there too
/// (SPEC §12), as one without a session is: 401, not a 403 that strands it.
#[tokio::test]
async fn forward_auth_for_nginx_sends_a_browser_of_another_provider_to_sign_in() {
    let stack = stack().await;
    let mut anonymous = stack.browser();
    let navigation = [("x-original-uri", "/partners/x"), ("accept", "text/html")];
    let page = check(&stack, &mut anonymous, &navigation).await;
    assert_eq!(
        page.status,
        StatusCode::UNAUTHORIZED,
        "no session: {}",
        page.body
    );

    let mut at_default = stack.login("alice").await;
    let page = check(&stack, &mut at_default, &navigation).await;
    assert_eq!(
        page.status,
        StatusCode::UNAUTHORIZED,
        "a session of the default on a partners-only route: {}",
        page.body
    );
}
