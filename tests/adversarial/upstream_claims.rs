//! What only the proxy may say, said by the upstream: a `Set-Cookie` for the
//! proxy's own cookies (session fixation through the app, or through anything
//! that can inject a response header into it) and identity headers in its
//! response (SPEC §7). The echo app's `/respond-with` sends whatever response
//! headers the test asks for.

use crate::support::stack::{Browser, Stack, StackOptions};

/// The URL of `/respond-with` on `path_prefix`, answering with `headers`.
fn respond_with(stack: &Stack, path_prefix: &str, headers: &[&str]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for h in headers {
        query.append_pair("h", h);
    }
    stack.url(&format!("{path_prefix}/respond-with?{}", query.finish()))
}

/// `Set-Cookie` values the upstream sends that would plant or overwrite one of
/// the proxy's cookies, in every spelling a browser (or a lenient server)
/// reads as that name.
const PLANTED: &[&str] = &[
    "portcullis=planted; Path=/",
    "__Host-portcullis=planted; Path=/; Secure",
    "__Secure-portcullis=planted; Path=/; Secure",
    "__host-portcullis=planted; Path=/; Secure",
    "Portcullis=planted; Path=/",
    " portcullis =planted; Path=/",
    "=portcullis=planted; Path=/",
    "portcullis; Path=/",
    "portcullis_login_0123456789abcdef=planted; Path=/",
    "__Host-portcullis_login_x=planted; Path=/",
];

/// The app's own cookies, which must pass: the positive control.
const KEPT: &[&str] = &[
    "app_session=1; Path=/",
    "portcullisx=2",
    "theme=portcullis=dark",
];

/// Response headers that claim identity.
const CLAIMS: &[&str] = &[
    "X-Auth-Request-User: admin",
    "X-Auth-Request-Email: admin@example.com",
    "X-Auth-Request-Access-Token: forged",
    "X-Forwarded-User: admin",
    "X-Forwarded-Groups: admin",
    "X-Forwarded-Email: admin@example.com",
    "X_Forwarded_Preferred_Username: admin",
    "X-Portcullis-Identity: forged",
];

// See: issue 18 (the upstream can set the proxy's cookies)
#[tokio::test]
async fn the_upstream_cannot_plant_the_proxys_cookies_or_claim_identity() {
    let stack = Stack::start_with(StackOptions::default()).await;
    let mut alice = stack.login("alice").await;
    let session_before = alice.jar.clone();
    let mut all: Vec<&str> = Vec::new();
    all.extend(PLANTED);
    all.extend(KEPT);
    let headers: Vec<String> = all.iter().map(|c| format!("Set-Cookie: {c}")).collect();
    let mut asked: Vec<&str> = headers.iter().map(String::as_str).collect();
    asked.extend(CLAIMS);
    for prefix in ["/public", ""] {
        let url = respond_with(&stack, prefix, &asked);
        let browser = if prefix.is_empty() {
            &mut alice
        } else {
            &mut Browser::default()
        };
        let page = browser.fetch(&url).await;
        assert_eq!(page.status, 200, "{url}: {}", page.body);
        let cookies = page.set_cookies();
        assert_eq!(cookies, KEPT, "{prefix}: only the app's own cookies pass");
        for claim in CLAIMS {
            let name = claim.split(':').next().unwrap_or_default();
            assert!(
                page.headers.get(name).is_none(),
                "{prefix}: the upstream's {name} reached the client"
            );
        }
    }
    // The session cookie was not replaced: alice is still signed in as alice.
    for (name, value) in &session_before {
        assert_eq!(alice.jar.get(name), Some(value), "{name} was overwritten");
    }
    let page = alice.fetch(&stack.url("/whoami")).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.seen().one("x-forwarded-user"), Some("alice"));
}
