//! CSRF, `state` and PKCE (RFC 9700 §2.1 and §4.5, §4.7; OIDC Core §3.1.2.7):
//! a callback is accepted only in the browser that started that very login,
//! once, with the code issued for that login's PKCE challenge, from the
//! provider it is configured for.
//!
//! Elsewhere: a callback without, with a forged or with another browser's
//! `state` (login CSRF), and a replayed callback, are in `login.rs`.

use http::StatusCode;

use crate::support::query_pairs as query;
use crate::support::stack::{Browser, Page, Stack};

fn param(url: &str, name: &str) -> String {
    query(url)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// `url` with its query parameter `name` replaced by `value`.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("url");
    let pairs: Vec<(String, String)> = query(url)
        .into_iter()
        .map(|(k, v)| {
            if k == name {
                (k, value.to_owned())
            } else {
                (k, v)
            }
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.into()
}

/// A browser that has started a login and stands at the provider's sign-in page.
async fn at_sign_in(stack: &Stack, path: &str) -> (Browser, Page) {
    let mut browser = stack.browser();
    let page = browser.follow(&stack.url(path)).await;
    assert!(page.body.contains("name=\"user\""), "{}", page.body);
    (browser, page)
}

fn assert_refused(page: &Page, browser: &Browser, what: &str) {
    assert!(
        page.status.is_client_error(),
        "{what}: got {} {}",
        page.status,
        page.body
    );
    assert!(
        !browser.jar.contains_key("portcullis"),
        "{what}: a session was created"
    );
}

/// Code injection (RFC 9700 §4.5): an attacker who learned the victim's
/// `state` pairs it with a code issued to the attacker's own login. The
/// victim's PKCE verifier does not match the attacker's challenge, so the
/// provider refuses the exchange and no session is made.
#[tokio::test]
async fn a_code_injected_into_the_victims_callback_is_refused_by_pkce() {
    let stack = Stack::start().await;
    let (mut victim, victim_page) = at_sign_in(&stack, "/victim").await;
    let victim_state = param(&victim_page.url, "state");
    let (mut attacker, attacker_page) = at_sign_in(&stack, "/attacker").await;
    let attacker_callback = attacker.submit_sign_in(&attacker_page, "bob").await;
    let injected = with_param(&attacker_callback, "state", &victim_state);
    assert_ne!(injected, attacker_callback);
    let page = victim.navigate(&injected).await;
    assert_refused(&page, &victim, "injected code");
    assert_eq!(stack.echo.hits(), 0);
}

/// Mix-up (RFC 9207): a callback whose `iss` names another provider is refused
/// before the code goes anywhere; the same callback untouched is accepted.
#[tokio::test]
async fn a_callback_naming_another_issuer_is_refused() {
    let stack = Stack::start().await;
    let (mut browser, page) = at_sign_in(&stack, "/x").await;
    let callback = browser.submit_sign_in(&page, "alice").await;
    assert_eq!(param(&callback, "iss"), stack.idp.issuer());
    let mixed_up = with_param(&callback, "iss", "https://evil.example");
    let refused = browser.navigate(&mixed_up).await;
    assert_refused(&refused, &browser, "iss of another provider");

    let (mut honest, page) = at_sign_in(&stack, "/x").await;
    let callback = honest.submit_sign_in(&page, "alice").await;
    assert_eq!(honest.navigate(&callback).await.status, StatusCode::FOUND);
    assert!(honest.jar.contains_key("portcullis"));
}

/// Parameter pollution: two `state`s or two `code`s are ambiguous; which one a
/// check reads must not be the attacker's choice.
#[tokio::test]
async fn repeated_callback_parameters_are_refused() {
    let stack = Stack::start().await;
    for duplicate in ["state", "code"] {
        let (mut browser, page) = at_sign_in(&stack, "/x").await;
        let callback = browser.submit_sign_in(&page, "alice").await;
        let polluted = format!("{callback}&{duplicate}=attacker-value");
        let refused = browser.navigate(&polluted).await;
        assert_refused(&refused, &browser, duplicate);
    }
}

/// A hostile `state` (huge, or full of characters a cookie name cannot hold)
/// is refused with a page, never a crash or a 500.
#[tokio::test]
async fn hostile_state_values_are_refused_cleanly() {
    let stack = Stack::start().await;
    let long = "s".repeat(8_000);
    for state in [long.as_str(), "a;b=c", "../../x", "%00", "\u{202e}x"] {
        let encoded: String = url::form_urlencoded::byte_serialize(state.as_bytes()).collect();
        let mut browser = stack.browser();
        let page = browser
            .navigate(&stack.url(&format!("/_auth/callback?code=c&state={encoded}")))
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{state:?}");
        assert!(!browser.jar.contains_key("portcullis"));
    }
}

/// The login-state cookie is bound to the browser and sealed: a copy of it
/// with one byte changed opens nothing.
#[tokio::test]
async fn a_tampered_login_state_cookie_is_refused() {
    let stack = Stack::start().await;
    let (mut browser, page) = at_sign_in(&stack, "/x").await;
    let callback = browser.submit_sign_in(&page, "alice").await;
    let (name, value) = browser
        .jar
        .iter()
        .find(|(k, _)| k.starts_with("portcullis_login_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .expect("a login-state cookie");
    let tampered = crate::support::flip_char(&value, value.len() / 2);
    browser.jar.insert(name, tampered);
    let refused = browser.navigate(&callback).await;
    assert_refused(&refused, &browser, "tampered login state");
}

/// A page that keeps sending the browser to log in (or a user with many tabs)
/// cannot grow its cookies without bound: past `session.max_login_states`
/// (default 7, as mod_auth_openidc's) the oldest login-state cookies are
/// cleared. The newest login completes; the oldest's callback gets a page
/// with a retry link, not a 500.
#[tokio::test]
async fn login_state_cookies_per_browser_are_bounded() {
    let stack = Stack::start().await;
    let mut browser = stack.browser();
    let mut pages = Vec::new();
    for i in 0..20 {
        let page = browser.follow(&stack.url(&format!("/tab{i}"))).await;
        let held = browser.jar.keys().filter(|k| k.contains("_login_")).count();
        assert!(
            held <= 7,
            "{held} login-state cookies after {} logins",
            i + 1
        );
        pages.push(page);
    }
    let newest = pages.pop().expect("pages");
    let callback = browser.submit_sign_in(&newest, "alice").await;
    let landed = browser.follow(&callback).await;
    assert_eq!(landed.status, StatusCode::OK);
    assert!(landed.url.ends_with("/tab19"), "{}", landed.url);
    let oldest = &pages[0];
    let mut other = stack.browser();
    other.jar = browser.jar.clone();
    let callback = other.submit_sign_in(oldest, "alice").await;
    let refused = other.navigate(&callback).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{} {:?} {callback}",
        refused.body,
        refused.location()
    );
    assert!(refused.body.contains("Try again"), "{}", refused.body);
}

/// Login-state cookies ride on every request during a login, so their total
/// size is bounded too: a page that keeps starting logins with long return
/// URLs cannot push the user's request heads past the limit (431 on every
/// page). A return URL over 512 bytes is not kept: that login lands on `/`.
#[tokio::test]
async fn login_state_cookies_stay_within_a_byte_budget() {
    let stack = Stack::start().await;
    let mut browser = stack.browser();
    let long = format!("/{}", "a".repeat(500));
    for _ in 0..20 {
        browser
            .navigate(&stack.url(&format!("/_auth/login?rd={long}")))
            .await;
        let bytes: usize = browser
            .jar
            .iter()
            .filter(|(k, _)| k.contains("_login_"))
            .map(|(k, v)| k.len() + v.len())
            .sum();
        assert!(bytes <= 4096, "{bytes} bytes of login-state cookies");
    }
    let page = browser
        .follow(&stack.url(&format!("/x/{}", "b".repeat(600))))
        .await;
    let callback = browser.submit_sign_in(&page, "alice").await;
    let landed = browser.navigate(&callback).await;
    assert_eq!(
        landed.location(),
        Some("/"),
        "a long return URL is not kept"
    );
    let (mut short, page) = at_sign_in(&stack, "/kept?q=1").await;
    let callback = short.submit_sign_in(&page, "alice").await;
    assert_eq!(
        short.navigate(&callback).await.location(),
        Some("/kept?q=1")
    );
}
