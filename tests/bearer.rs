//! Bearer tokens on API routes (SPEC §4.3): every check, over real HTTP, with
//! tokens minted by the development provider's real keys.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::jws;
use crate::support::stack::{Browser, Stack, StackOptions};

const ROUTES: &str = r#"
[[route]]
name = "api-admin"
path = "/api/admin"
auth = "bearer"
roles_any = ["admin"]

[[route]]
name = "api"
path = "/api"
auth = "bearer"

[[route]]
name = "either"
path = "/either"
auth = "login_or_bearer"
"#;

pub(crate) async fn stack() -> Stack {
    Stack::start_with(StackOptions {
        extra: ROUTES.to_owned(),
        ..StackOptions::default()
    })
    .await
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

pub(crate) fn claims(stack: &Stack, sub: &str, roles: &[&str]) -> Value {
    json!({
        "iss": stack.idp.issuer(), "aud": "portcullis", "sub": sub, "iat": now(), "exp": now() + 300,
        "jti": format!("{}", rand::random::<u64>()), "roles": roles, "client_id": "portcullis",
    })
}

pub(crate) fn header(stack: &Stack) -> Value {
    json!({"alg": "RS256", "typ": "at+jwt", "kid": stack.idp.signing_kid()})
}

pub(crate) async fn call(stack: &Stack, path: &str, token: &str) -> crate::support::stack::Page {
    let auth = format!("Bearer {token}");
    Browser::default()
        .request(
            Method::GET,
            &stack.url(path),
            &[("authorization", &auth), ("accept", "text/html")],
            "",
        )
        .await
}

pub(crate) fn challenge(page: &crate::support::stack::Page) -> String {
    page.headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_valid_token_reaches_the_api_with_its_identity() {
    let stack = stack().await;
    let token = stack.idp.access_token_for("alice", "portcullis");
    let page = call(&stack, "/api/things", &token).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let seen = page.seen();
    assert_eq!(seen.one("x-forwarded-user"), Some("alice"));
    assert_eq!(
        seen.one("authorization"),
        Some(format!("Bearer {token}").as_str()),
        "the app gets its token"
    );
    let admin = call(&stack, "/api/admin/x", &token).await;
    assert_eq!(admin.status, StatusCode::OK);
}

#[tokio::test]
async fn missing_or_bad_tokens_get_401_with_the_reason_and_never_a_redirect() {
    let stack = stack().await;
    let h = header(&stack);
    let good = claims(&stack, "alice", &["admin"]);
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let expired = stack
        .idp
        .sign_jwt(h.clone(), with("exp", json!(now() - 3600)));
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong audience",
            stack
                .idp
                .sign_jwt(h.clone(), with("aud", json!("someone-else"))),
            "audience",
        ),
        (
            "wrong issuer",
            stack
                .idp
                .sign_jwt(h.clone(), with("iss", json!("https://evil.example"))),
            "issuer",
        ),
        ("expired", expired, "expired"),
        (
            "not yet valid",
            stack
                .idp
                .sign_jwt(h.clone(), with("nbf", json!(now() + 3600))),
            "not valid yet",
        ),
        ("garbage", "garbage".to_owned(), "invalid"),
        ("alg none", unsigned(&good), "invalid"),
        (
            "HMAC keyed with the public key",
            hmac_with_public_key(&stack, &good),
            "invalid",
        ),
        (
            "unknown kid",
            stack
                .idp
                .sign_jwt(json!({"alg": "RS256", "kid": "nope"}), good.clone()),
            "invalid",
        ),
        (
            "jku header pointing elsewhere",
            stack.idp.sign_jwt(
                json!({"alg": "RS256", "kid": "nope", "jku": "http://127.0.0.1:1/jwks"}),
                good.clone(),
            ),
            "invalid",
        ),
        (
            "crit header",
            stack.idp.sign_jwt(
                json!({"alg": "RS256", "kid": stack.idp.signing_kid(), "crit": ["exp"]}),
                good.clone(),
            ),
            "invalid",
        ),
        (
            "bad signature",
            tamper(&stack.idp.sign_jwt(h.clone(), good.clone())),
            "signature",
        ),
    ];
    for (what, token, reason) in cases {
        let page = call(&stack, "/api/x", &token).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{what}");
        let challenge = challenge(&page);
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
        assert!(challenge.contains(reason), "{what}: {challenge}");
    }
    // A token too large for a request head is refused before any parsing.
    let huge = call(&stack, "/api/x", &"a".repeat(40_000)).await;
    assert_eq!(huge.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let none = Browser::default()
        .request(
            Method::GET,
            &stack.url("/api/x"),
            &[("accept", "text/html")],
            "",
        )
        .await;
    assert_eq!(
        none.status,
        StatusCode::UNAUTHORIZED,
        "no token: no redirect either"
    );
    assert!(challenge(&none).starts_with("Bearer"));
    assert_eq!(stack.echo.hits(), 0);
}

#[tokio::test]
async fn a_missing_role_is_403_insufficient_scope() {
    let stack = stack().await;
    let token = stack
        .idp
        .sign_jwt(header(&stack), claims(&stack, "bob", &["user"]));
    let page = call(&stack, "/api/admin/x", &token).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        challenge(&page).contains("error=\"insufficient_scope\""),
        "{}",
        challenge(&page)
    );
    assert_eq!(call(&stack, "/api/x", &token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_token_signed_with_a_rotated_key_is_accepted_after_a_jwks_refetch() {
    let stack = stack().await;
    let new_kid = stack.idp.rotate_signing_key().await.expect("rotate");
    let token = stack.idp.sign_jwt(
        json!({"alg": "RS256", "kid": new_kid}),
        claims(&stack, "alice", &[]),
    );
    assert_eq!(call(&stack, "/api/x", &token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_cached_token_is_not_accepted_past_its_expiry() {
    let stack = stack().await;
    let mut short = claims(&stack, "alice", &[]);
    short["exp"] = json!(now() + 120);
    let token = stack.idp.sign_jwt(header(&stack), short);
    assert_eq!(call(&stack, "/api/x", &token).await.status, StatusCode::OK);
    assert_eq!(
        call(&stack, "/api/x", &token).await.status,
        StatusCode::OK,
        "served from the cache"
    );
    stack.clock.advance(10 * 60);
    assert_eq!(
        call(&stack, "/api/x", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn login_or_bearer_accepts_either() {
    let stack = stack().await;
    let token = stack.idp.access_token_for("alice", "portcullis");
    assert_eq!(
        call(&stack, "/either/x", &token).await.status,
        StatusCode::OK
    );
    let mut browser = stack.login("bob").await;
    let page = browser.fetch(&stack.url("/either/x")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.seen().one("x-forwarded-user"), Some("bob"));
    let bad = call(&stack, "/either/x", "garbage").await;
    assert_eq!(
        bad.status,
        StatusCode::UNAUTHORIZED,
        "a bad token is not rescued by a session"
    );
}

fn unsigned(claims: &Value) -> String {
    jws::unsigned(&json!({"alg": "none", "typ": "JWT"}), claims)
}

fn hmac_with_public_key(stack: &Stack, claims: &Value) -> String {
    jws::hs256(
        &json!({"alg": "HS256", "typ": "JWT"}),
        claims,
        stack.idp.public_key_pem().as_bytes(),
    )
}

fn tamper(token: &str) -> String {
    crate::support::flip_char(token, token.len() - 20)
}

#[tokio::test]
async fn a_flood_of_unknown_kids_causes_at_most_one_jwks_refetch() {
    let stack = stack().await;
    let before = stack.idp.stats().jwks_fetches;
    for i in 0..20 {
        let token = stack.idp.sign_jwt(
            json!({"alg": "RS256", "kid": format!("made-up-{i}")}),
            claims(&stack, "alice", &[]),
        );
        assert_eq!(
            call(&stack, "/api/x", &token).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let fetched = stack.idp.stats().jwks_fetches - before;
    assert!(fetched <= 1, "{fetched} JWKS fetches for 20 unknown kids");
}

/// See: security review, finding 11.
#[tokio::test]
async fn an_id_token_is_not_accepted_as_a_bearer_token() {
    let stack = stack().await;
    let mut id_token_like = claims(&stack, "alice", &["admin"]);
    id_token_like["nonce"] = json!("n-123");
    let token = stack.idp.sign_jwt(
        json!({"alg": "RS256", "kid": stack.idp.signing_kid()}),
        id_token_like,
    );
    assert_eq!(
        call(&stack, "/api/x", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// `oidc.jwks_refetch_interval` sets the refetch rate: within it a token
/// signed with a key rotated in since the last fetch is refused; once it has
/// passed, one refetch finds the key. (The rate limit runs on real time, so
/// this waits the one second it configures.)
#[tokio::test]
async fn the_jwks_refetch_interval_is_configurable() {
    let stack = Stack::start_with(StackOptions {
        extra: ROUTES.to_owned(),
        oidc: "jwks_refetch_interval = \"1s\"".to_owned(),
        ..StackOptions::default()
    })
    .await;
    let made_up = stack.idp.sign_jwt(
        json!({"alg": "RS256", "kid": "made-up"}),
        claims(&stack, "alice", &[]),
    );
    assert_eq!(
        call(&stack, "/api/x", &made_up).await.status,
        StatusCode::UNAUTHORIZED
    );
    let kid = stack.idp.rotate_signing_key().await.expect("rotate");
    let rotated = stack.idp.sign_jwt(
        json!({"alg": "RS256", "kid": kid}),
        claims(&stack, "alice", &[]),
    );
    let fetches = stack.idp.stats().jwks_fetches;
    assert_eq!(
        call(&stack, "/api/x", &rotated).await.status,
        StatusCode::UNAUTHORIZED,
        "within the interval: no refetch"
    );
    assert_eq!(stack.idp.stats().jwks_fetches, fetches);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        call(&stack, "/api/x", &rotated).await.status,
        StatusCode::OK
    );
    assert_eq!(stack.idp.stats().jwks_fetches, fetches + 1);
}
