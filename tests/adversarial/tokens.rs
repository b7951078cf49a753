//! Token validation: the OpenID Foundation's RP certification tests for the
//! code flow (Basic RP profile), driven through the real login against the
//! development provider misbehaving on purpose, and JWT header attacks on
//! bearer routes (RFC 8725 §2-3; the jku/x5u/jwk, kid traversal and algorithm
//! confusion classes of the JWT advisories).
//!
//! Tokens whose header or payload names a member twice are refused on every
//! path (RFC 7519 §4: a parser differential otherwise).
//!
//! Each refusal is paired with the nearest token that passes, so a check that
//! refuses everything would fail here too.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{Method, StatusCode};
use portcullis_devidp::Misbehaviour;
use serde_json::{json, Value};

use crate::bearer::{call, challenge, claims, header, stack};
use crate::support::jws::{self, hs256};
use crate::support::stack::{Browser, Stack};
use crate::support::{base_config, get, Echo, Proxy};

/// Signs in as alice at a fresh browser; returns the final status and whether
/// the browser got a session cookie.
async fn login(stack: &Stack) -> (StatusCode, bool) {
    let mut browser = stack.browser();
    let page = browser.sign_in(&stack.url("/x"), "alice").await;
    (page.status, browser.jar.contains_key("portcullis"))
}

/// `(certification test, defect)`: each must stop the login with a 4xx page,
/// no session and nothing forwarded.
const RP_REFUSALS: &[(&str, Misbehaviour)] = &[
    ("rp-id_token-issuer-mismatch", Misbehaviour::WrongIssuer),
    ("rp-id_token-aud", Misbehaviour::WrongAudience),
    (
        "rp-id_token-aud (several, no azp)",
        Misbehaviour::ExtraAudienceWithoutAzp,
    ),
    ("azp is another client", Misbehaviour::WrongAzp),
    ("expired", Misbehaviour::Expired),
    (
        "rp-id_token-iat (in the future)",
        Misbehaviour::IssuedInFuture,
    ),
    ("rp-id_token-iat (absent)", Misbehaviour::MissingIat),
    ("rp-id_token-sub", Misbehaviour::MissingSub),
    ("rp-nonce-unless-code-flow", Misbehaviour::MissingNonce),
    ("rp-nonce-invalid", Misbehaviour::WrongNonce),
    ("rp-id_token-bad-sig-rs256", Misbehaviour::BadSignature),
    ("rp-id_token-sig-none", Misbehaviour::AlgNone),
    (
        "HS256 keyed with the RSA public key",
        Misbehaviour::HmacWithPublicKey,
    ),
    ("kid not in the JWKS", Misbehaviour::UnknownKid),
    (
        "rp-userinfo-bad-sub-claim",
        Misbehaviour::UserinfoSubMismatch,
    ),
];

#[tokio::test]
async fn rp_certification_defects_stop_the_login() {
    let stack = Stack::start().await;
    for (test, defect) in RP_REFUSALS {
        stack.idp.set_misbehaviour(*defect);
        let (status, has_session) = login(&stack).await;
        assert!(
            status.is_client_error(),
            "{test}: the login must fail, got {status}"
        );
        assert!(!has_session, "{test}: no session cookie");
        stack.idp.clear_misbehaviour();
    }
    assert_eq!(stack.echo.hits(), 0, "no defective login reached the app");
    assert_eq!(
        login(&stack).await,
        (StatusCode::OK, true),
        "the same flow with a well-behaved provider works"
    );
}

/// `rp-id_token-kid-absent-single-jwks`: with one key in the JWKS a token
/// without `kid` is verified with it. `rp-id_token-kid-absent-multiple-jwks`:
/// with several, the proxy does not guess; the login fails.
#[tokio::test]
async fn a_token_without_kid_is_accepted_with_one_key_and_refused_with_several() {
    let stack = Stack::start().await;
    stack.idp.set_misbehaviour(Misbehaviour::NoKid);
    assert_eq!(login(&stack).await, (StatusCode::OK, true), "one key");
    stack.idp.rotate_signing_key().await.expect("rotate");
    // The proxy learns the second key from a token that names it.
    stack.idp.clear_misbehaviour();
    assert_eq!(login(&stack).await, (StatusCode::OK, true), "the new key");
    stack.idp.set_misbehaviour(Misbehaviour::NoKid);
    let (status, has_session) = login(&stack).await;
    assert!(status.is_client_error(), "two keys, no kid: {status}");
    assert!(!has_session);
}

/// `rp-key-rotation-op-sign-key`: the provider starts signing with a new key;
/// the proxy refetches the JWKS for the unknown `kid` and logins go on.
#[tokio::test]
async fn a_provider_key_rotation_is_followed() {
    let stack = Stack::start().await;
    assert_eq!(login(&stack).await, (StatusCode::OK, true));
    let before = stack.idp.stats().jwks_fetches;
    stack.idp.rotate_signing_key().await.expect("rotate");
    assert_eq!(login(&stack).await, (StatusCode::OK, true));
    assert_eq!(stack.idp.stats().jwks_fetches, before + 1, "one refetch");
}

/// `rp-discovery-issuer-not-matching-config`: discovery names another issuer;
/// the proxy never becomes ready and a login attempt gets 503, not a login
/// against the impostor.
#[tokio::test]
async fn discovery_naming_another_issuer_is_never_trusted() {
    crate::support::init();
    let client = portcullis_devidp::Client::new(
        "portcullis",
        "s3cret-of-the-client",
        "http://app.test/_auth/callback",
    );
    let idp = portcullis_devidp::start(portcullis_devidp::Config::new(client))
        .await
        .expect("provider");
    idp.set_misbehaviour(Misbehaviour::DiscoveryIssuerMismatch);
    let echo = Echo::start().await;
    let toml = base_config(&echo.url(), "").replace("http://127.0.0.1:9/", &idp.issuer());
    let proxy = Proxy::start(&toml).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let ready = get(&format!("http://{}/readyz", proxy.admin), &[]).await;
    assert_eq!(ready.0, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.2);
    let (status, headers, _) = get(&proxy.url("/x"), &[("accept", "text/html")]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get("location").is_none());
    assert_eq!(echo.hits(), 0);
}

// === Bearer JWT header attacks ===

/// An attacker's own P-256 key, which it may embed in the token it signs.
struct Attacker {
    key: aws_lc_rs::signature::EcdsaKeyPair,
}

impl Attacker {
    fn new() -> Self {
        use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key");
        Attacker { key }
    }

    fn jwk(&self) -> Value {
        use aws_lc_rs::signature::KeyPair;
        let point = self.key.public_key().as_ref();
        json!({
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = jws::signing_input(header, claims);
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = self.key.sign(&rng, input.as_bytes()).expect("sign");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

fn b64(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(value)
}

#[tokio::test]
async fn jwt_header_attacks_on_bearer_routes_get_401() {
    let stack = stack().await;
    let good = claims(&stack, "alice", &["admin"]);
    let kid = stack.idp.signing_kid();
    let attacker = Attacker::new();
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let nested = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let mut cases: Vec<(&str, String)> =
        vec![
        (
            "jwk: the attacker's key embedded, no kid",
            attacker.sign(&json!({"alg": "ES256", "jwk": attacker.jwk()}), &good),
        ),
        (
            "jwk: the attacker's key embedded under the provider's kid",
            attacker.sign(
                &json!({"alg": "ES256", "kid": kid, "jwk": attacker.jwk()}),
                &good,
            ),
        ),
        (
            "jku: the attacker's JWKS URL",
            attacker.sign(
                &json!({"alg": "ES256", "kid": "attacker", "jku": "http://127.0.0.1:1/jwks.json"}),
                &good,
            ),
        ),
        (
            "x5u: the attacker's certificate URL",
            attacker.sign(
                &json!({"alg": "ES256", "x5u": "http://127.0.0.1:1/cert.pem"}),
                &good,
            ),
        ),
        (
            "x5c: a certificate chain in the header",
            attacker.sign(&json!({"alg": "ES256", "x5c": ["MIIB"]}), &good),
        ),
        (
            "kid path traversal, HMAC with an empty key",
            hs256(
                &json!({"alg": "HS256", "kid": "../../../../../../dev/null"}),
                &good,
                b"",
            ),
        ),
        (
            "kid SQL injection, HMAC with the injected key",
            hs256(
                &json!({"alg": "HS256", "kid": "x' UNION SELECT 'k' --"}),
                &good,
                b"k",
            ),
        ),
        (
            "the provider's kid with another algorithm family",
            attacker.sign(&json!({"alg": "ES256", "kid": kid}), &good),
        ),
        (
            "RS256 header, empty signature",
            jws::unsigned(&json!({"alg": "RS256", "kid": kid}), &good),
        ),
        (
            "two parts",
            jws::signing_input(&json!({"alg": "RS256"}), &good),
        ),
        (
            "four parts",
            format!("{}.sig.extra", stack.idp.sign_jwt(header(&stack), good.clone())),
        ),
        (
            "a header nested 5,000 deep",
            format!("{}.{}.sig", b64(&nested), b64(&good.to_string())),
        ),
        (
            "exp as a string",
            stack
                .idp
                .sign_jwt(header(&stack), with("exp", json!("9999999999"))),
        ),
        (
            "iss as an array holding the issuer (found by fuzz/jwt_verify)",
            stack.idp.sign_jwt(
                header(&stack),
                with("iss", json!([stack.idp.issuer(), "https://evil.test/"])),
            ),
        ),
        (
            "iss as a one-element array",
            stack
                .idp
                .sign_jwt(header(&stack), with("iss", json!([stack.idp.issuer()]))),
        ),
        (
            "aud as a number",
            stack.idp.sign_jwt(header(&stack), with("aud", json!(1))),
        ),
        (
            "a logout token as an access token",
            stack.idp.sign_jwt(
                json!({"alg": "RS256", "typ": "logout+jwt", "kid": kid}),
                with(
                    "events",
                    json!({"http://schemas.openid.net/event/backchannel-logout": {}}),
                ),
            ),
        ),
    ];
    for alg in ["None", "NONE", "nOnE", ""] {
        cases.push((
            "alg none in another case",
            jws::unsigned(&json!({"alg": alg}), &good),
        ));
    }
    for (what, token) in &cases {
        let page = call(&stack, "/api/x", token).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{what}");
        assert!(
            challenge(&page).contains("error=\"invalid_token\""),
            "{what}: {}",
            challenge(&page)
        );
    }
    assert_eq!(stack.echo.hits(), 0, "no forged token reached the app");
    // The nearest honest token passes.
    let honest = stack.idp.sign_jwt(header(&stack), good.clone());
    assert_eq!(call(&stack, "/api/x", &honest).await.status, StatusCode::OK);
}

/// A token larger than the verifier's limit (16 KiB, checked before any
/// parsing) is refused even where the request-head limit lets it through; a
/// large token below the limit is verified as usual.
#[tokio::test]
async fn a_bearer_token_over_16_kib_is_refused() {
    let stack = Stack::start_with(crate::support::stack::StackOptions {
        extra: "[[route]]\npath = \"/api\"\nauth = \"bearer\"\n".to_owned(),
        server: "max_header_bytes = 65536".to_owned(),
        ..Default::default()
    })
    .await;
    let padded = |bytes: usize| {
        let mut c = claims(&stack, "alice", &[]);
        c["padding"] = json!("p".repeat(bytes));
        stack.idp.sign_jwt(header(&stack), c)
    };
    let big = call(&stack, "/api/x", &padded(17 * 1024)).await;
    assert_eq!(big.status, StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&big).contains("error=\"invalid_token\""),
        "{}",
        challenge(&big)
    );
    assert_eq!(stack.echo.hits(), 0);
    let fits = call(&stack, "/api/x", &padded(10 * 1024)).await;
    assert_eq!(fits.status, StatusCode::OK, "a 14 KiB token is fine");
}

// === Duplicate member names (RFC 7519 §4) ===

/// The `error_description` a bearer token with a repeated member gets.
const DUPLICATE_DESCRIPTION: &str = "error_description=\"the token has duplicate claim names\"";

/// `object`'s JSON text with `members` (raw JSON text, `"name":value,...`)
/// added at the end: members a `serde_json` map could not hold twice.
fn with_members(object: &Value, members: &str) -> String {
    let text = object.to_string();
    let body = text.strip_suffix('}').expect("a JSON object");
    let sep = if body.ends_with('{') { "" } else { "," };
    format!("{body}{sep}{members}}}")
}

// See: issue 18 (CVE/class: JWT duplicate member names, RFC 7519 §4)
#[tokio::test]
async fn bearer_tokens_naming_a_member_twice_get_401() {
    let stack = Stack::start().await;
    let mut base = claims(&stack, "alice", &[]);
    let fields = base.as_object_mut().expect("claims object");
    fields.remove("sub");
    fields.remove("roles");
    let mut header = header(&stack);
    header.as_object_mut().expect("header object").remove("alg");
    const ALG: &str = r#""alg":"RS256""#;
    // (case, header members, payload members with the duplicate, the same
    // without it): each control is signed through `sign_raw` too.
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "sub twice",
            ALG,
            r#""sub":"alice","sub":"admin""#,
            r#""sub":"alice""#,
        ),
        (
            "roles twice",
            ALG,
            r#""sub":"alice","roles":["user"],"roles":["admin"]"#,
            r#""sub":"alice","roles":["admin"]"#,
        ),
        (
            "roles twice inside realm_access",
            ALG,
            r#""sub":"alice","realm_access":{"roles":["user"],"roles":["admin"]}"#,
            r#""sub":"alice","realm_access":{"roles":["admin"]}"#,
        ),
        (
            "a member twice in an object inside an array",
            ALG,
            r#""sub":"alice","groups":[{"id":"users"},{"id":"users","id":"admins"}]"#,
            r#""sub":"alice","groups":[{"id":"users"},{"id":"admins"}]"#,
        ),
        (
            "sub twice, the second spelled with a \\u escape",
            ALG,
            r#""sub":"alice","s\u0075b":"admin""#,
            r#""s\u0075b":"admin""#,
        ),
    ];
    let mut tokens = Vec::new();
    for (what, header_members, bad, good) in cases {
        let header = with_members(&header, header_members);
        tokens.push((
            *what,
            stack.idp.sign_raw(&header, &with_members(&base, bad)),
            stack.idp.sign_raw(&header, &with_members(&base, good)),
        ));
    }
    let payload = with_members(&base, r#""sub":"alice""#);
    tokens.push((
        "alg twice in the header",
        stack.idp.sign_raw(
            &with_members(&header, r#""alg":"none","alg":"RS256""#),
            &payload,
        ),
        stack.idp.sign_raw(&with_members(&header, ALG), &payload),
    ));

    for (what, bad, _) in &tokens {
        let page = call(&stack, "/api/x", bad).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{what}");
        let challenge = challenge(&page);
        assert!(
            challenge.contains("error=\"invalid_token\"")
                && challenge.contains(DUPLICATE_DESCRIPTION),
            "{what}: {challenge}"
        );
    }
    assert_eq!(
        stack.echo.hits(),
        0,
        "no token with a repeated member reached the app"
    );
    for (what, _, good) in &tokens {
        let page = call(&stack, "/api/x", good).await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "control for {what}: {}",
            page.body
        );
    }
    assert_eq!(
        stack.echo.hits(),
        tokens.len(),
        "every control reached the app"
    );
}

// See: issue 18 (CVE/class: JWT duplicate member names, RFC 7519 §4)
#[tokio::test]
async fn an_id_token_naming_a_claim_twice_stops_the_login() {
    let stack = Stack::start().await;
    // `roles` is read only by the proxy; `sub` also by jsonwebtoken itself.
    for defect in [Misbehaviour::DuplicateRoles, Misbehaviour::DuplicateSub] {
        stack.idp.set_misbehaviour(defect);
        let (status, has_session) = login(&stack).await;
        assert!(
            status.is_client_error(),
            "{defect:?}: the login must fail, got {status}"
        );
        assert!(!has_session, "{defect:?}: no session cookie");
        assert_eq!(stack.echo.hits(), 0, "the defective login reached the app");
    }
    stack.idp.clear_misbehaviour();
    assert_eq!(
        login(&stack).await,
        (StatusCode::OK, true),
        "the same flow without the second sub works"
    );
}

// See: issue 18 (CVE/class: JWT duplicate member names, RFC 7519 §4)
#[tokio::test]
async fn a_logout_token_naming_a_member_twice_is_refused_and_ends_nothing() {
    let stack = Stack::start().await;
    let mut alice = stack.login("alice").await;
    let now = crate::bearer::now();
    let header =
        json!({"alg": "RS256", "typ": "logout+jwt", "kid": stack.idp.signing_kid()}).to_string();
    let base =
        json!({"iss": stack.idp.issuer(), "aud": "portcullis", "iat": now, "exp": now + 120});
    const EVENT: &str = r#""http://schemas.openid.net/event/backchannel-logout":{}"#;
    let events = format!(r#""events":{{{EVENT}}}"#);
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
                .status
        }
    };
    let cases = [
        (
            "sub twice",
            format!(r#""jti":"dup-1","sub":"bob","sub":"alice",{events}"#),
        ),
        (
            "jti twice (the replay check keys on one of them)",
            format!(r#""jti":"dup-2","jti":"dup-3","sub":"alice",{events}"#),
        ),
        (
            "the logout event twice inside events",
            format!(r#""jti":"dup-4","sub":"alice","events":{{{EVENT},{EVENT}}}"#),
        ),
    ];
    for (what, members) in &cases {
        let token = stack.idp.sign_raw(&header, &with_members(&base, members));
        assert_eq!(post(token).await, StatusCode::BAD_REQUEST, "{what}");
    }
    assert_eq!(
        alice.fetch(&stack.url("/x")).await.status,
        StatusCode::OK,
        "nothing ended"
    );

    // The same token text with one `sub` ends the session.
    let token = stack.idp.sign_raw(
        &header,
        &with_members(&base, &format!(r#""jti":"dup-5","sub":"alice",{events}"#)),
    );
    assert_eq!(post(token).await, StatusCode::OK);
    assert_eq!(
        alice.fetch(&stack.url("/x")).await.status,
        StatusCode::UNAUTHORIZED,
        "the control ended the session"
    );
}
