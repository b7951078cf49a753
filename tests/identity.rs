//! `X-Portcullis-Identity` (SPEC §7) through the public API: the assertion an app
//! receives verifies against the published JWKS the way the app would check it.

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use portcullis::config;
use portcullis::identity::{Identity, Signer};

fn signer() -> Signer {
    let settings = config::Identity {
        signing_key_file: None,
        ttl: Duration::from_secs(60),
    };
    let public_url = url::Url::parse("https://app.test").expect("static url");
    Signer::new(&settings, &public_url).expect("signer")
}

#[test]
fn identity_assertion_verifies_with_the_published_jwks_like_an_app_would() {
    let signer = signer();
    let alice = Identity {
        sub: "alice".into(),
        roles: vec!["admin".into()],
        ..Identity::default()
    };
    let now = i64::try_from(jsonwebtoken::get_current_timestamp()).expect("fits");
    let value = signer
        .assertion(&alice, "App.Test:4180", now)
        .expect("signs");
    let token = value.to_str().expect("ascii");

    let jwks: JwkSet = serde_json::from_slice(&signer.jwks_json()).expect("jwks json");
    let kid = decode_header(token).expect("header").kid.expect("kid");
    let key = DecodingKey::from_jwk(jwks.find(&kid).expect("kid published")).expect("key");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["app.test"]);
    validation.set_issuer(&["https://app.test"]);
    let claims = decode::<serde_json::Value>(token, &key, &validation)
        .expect("verifies")
        .claims;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["roles"], serde_json::json!(["admin"]));

    validation.set_audience(&["other.test"]);
    assert!(decode::<serde_json::Value>(token, &key, &validation).is_err());
}

/// The app's view (SPEC §7): the assertion the upstream received verifies
/// against the proxy's `/jwks.json`, for the right audience, and says who it is.
#[tokio::test]
async fn the_upstream_verifies_the_assertion_against_the_proxys_jwks() {
    use crate::support::stack::Stack;
    use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
    let stack = Stack::start().await;
    let mut alice = stack.login("alice").await;
    let page = alice.fetch(&stack.url("/reports")).await;
    let token = page
        .seen()
        .one("x-portcullis-identity")
        .expect("the app received an assertion")
        .to_owned();

    let jwks = alice.fetch(&stack.url("/_auth/jwks.json")).await;
    assert_eq!(jwks.status, http::StatusCode::OK);
    let set: JwkSet = serde_json::from_str(&jwks.body).expect("a JWK set");
    let header = decode_header(&token).expect("header");
    assert_eq!(header.alg, Algorithm::ES256);
    let jwk = set
        .find(header.kid.as_deref().expect("kid"))
        .expect("the kid is published");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["127.0.0.1"]);
    validation.set_issuer(&[stack.url("")]);
    let claims = decode::<serde_json::Value>(
        &token,
        &DecodingKey::from_jwk(jwk).expect("key"),
        &validation,
    )
    .expect("the assertion verifies as an app would verify it")
    .claims;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["roles"], serde_json::json!(["admin", "user"]));
    let lifetime = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
    assert!((1..=60).contains(&lifetime), "{lifetime}");

    // For another host, another audience: an assertion cannot be replayed across apps.
    let mut wrong = Validation::new(Algorithm::ES256);
    wrong.set_audience(&["other.example.com"]);
    assert!(
        decode::<serde_json::Value>(&token, &DecodingKey::from_jwk(jwk).expect("key"), &wrong)
            .is_err()
    );
    // A public route carries none, and a client cannot forge one.
    let public = alice
        .request(
            http::Method::GET,
            &stack.url("/public/x"),
            &[("x-portcullis-identity", &token)],
            "",
        )
        .await;
    assert!(public.seen().one("x-portcullis-identity").is_none());
}
