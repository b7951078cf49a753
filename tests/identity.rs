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
