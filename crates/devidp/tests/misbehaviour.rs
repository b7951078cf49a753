//! Each misbehaviour must produce exactly the defect it names, and nothing else:
//! where possible the test also shows the token is otherwise valid.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::StatusCode;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portcullis_devidp::Misbehaviour;
use serde_json::{json, Value};

use crate::support::{parts, Harness, Login, CLIENT};

/// Signs alice in with `m` switched on; returns the login and the ID token.
async fn id_token_with(h: &Harness, m: Misbehaviour) -> (Login, String) {
    h.idp.set_misbehaviour(m);
    let (login, tokens) = h.tokens("alice").await;
    h.idp.clear_misbehaviour();
    (
        login,
        tokens["id_token"].as_str().expect("id_token").to_owned(),
    )
}

/// Verifies with the provider's only key, whatever the token's `kid` says.
async fn verify_ignoring_kid(
    h: &Harness,
    token: &str,
) -> Result<Value, jsonwebtoken::errors::Error> {
    let jwks = h.jwks().await;
    let key = DecodingKey::from_jwk(&jwks.keys[0])?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[CLIENT]);
    validation.set_issuer(&[h.idp.issuer()]);
    Ok(jsonwebtoken::decode::<Value>(token, &key, &validation)?.claims)
}

fn kind(result: Result<Value, jsonwebtoken::errors::Error>) -> ErrorKind {
    result.expect_err("must not validate").into_kind()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test]
async fn claim_defects_fail_the_matching_check_only() {
    let h = Harness::start().await;

    let (_, t) = id_token_with(&h, Misbehaviour::WrongIssuer).await;
    assert_eq!(kind(h.decode(&t, CLIENT).await), ErrorKind::InvalidIssuer);

    let (_, t) = id_token_with(&h, Misbehaviour::WrongAudience).await;
    assert_eq!(kind(h.decode(&t, CLIENT).await), ErrorKind::InvalidAudience);

    let (_, t) = id_token_with(&h, Misbehaviour::ExtraAudienceWithoutAzp).await;
    let claims = h
        .decode(&t, CLIENT)
        .await
        .expect("signature, iss, aud (contains us) all fine");
    assert_eq!(claims["aud"], json!([CLIENT, "some-other-client"]));
    assert!(claims.get("azp").is_none());

    let (_, t) = id_token_with(&h, Misbehaviour::WrongAzp).await;
    let claims = h.decode(&t, CLIENT).await.expect("otherwise valid");
    assert_eq!(claims["aud"], CLIENT);
    assert_ne!(claims["azp"], CLIENT);

    let (_, t) = id_token_with(&h, Misbehaviour::Expired).await;
    assert_eq!(
        kind(h.decode(&t, CLIENT).await),
        ErrorKind::ExpiredSignature
    );

    let (_, t) = id_token_with(&h, Misbehaviour::IssuedInFuture).await;
    let claims = h.decode(&t, CLIENT).await.expect("signature and exp fine");
    assert!(claims["iat"].as_u64().is_some_and(|iat| iat > now() + 3600));

    let (login, t) = id_token_with(&h, Misbehaviour::MissingNonce).await;
    let claims = h.decode(&t, CLIENT).await.expect("otherwise valid");
    assert!(
        claims.get("nonce").is_none(),
        "request nonce was {}",
        login.nonce
    );

    let (login, t) = id_token_with(&h, Misbehaviour::WrongNonce).await;
    let claims = h.decode(&t, CLIENT).await.expect("otherwise valid");
    assert!(claims["nonce"].as_str().is_some_and(|n| n != login.nonce));
}

#[tokio::test]
async fn a_bad_signature_is_exactly_one_flipped_byte() {
    let h = Harness::start().await;
    let (_, t) = id_token_with(&h, Misbehaviour::BadSignature).await;
    assert_eq!(
        kind(h.decode(&t, CLIENT).await),
        ErrorKind::InvalidSignature
    );
    let (input, sig) = t.rsplit_once('.').expect("three parts");
    let mut sig = URL_SAFE_NO_PAD.decode(sig).expect("base64url");
    if let Some(last) = sig.last_mut() {
        *last ^= 0xff;
    }
    let repaired = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
    h.decode(&repaired, CLIENT)
        .await
        .expect("flipping the byte back makes it valid");
}

#[tokio::test]
async fn alg_none_is_unsigned() {
    let h = Harness::start().await;
    let (_, t) = id_token_with(&h, Misbehaviour::AlgNone).await;
    assert!(t.ends_with('.'), "empty signature");
    assert_eq!(parts(&t).0["alg"], "none");
    assert!(h.decode(&t, CLIENT).await.is_err());
}

#[tokio::test]
async fn hmac_with_public_key_is_the_algorithm_confusion_attack() {
    let h = Harness::start().await;
    let (_, t) = id_token_with(&h, Misbehaviour::HmacWithPublicKey).await;
    assert_eq!(parts(&t).0["alg"], "HS256");
    assert_eq!(
        kind(h.decode(&t, CLIENT).await),
        ErrorKind::InvalidAlgorithm
    );
    // A naive verifier that keys HS256 with the PEM it has would accept it.
    let naive = DecodingKey::from_secret(h.idp.public_key_pem().as_bytes());
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[CLIENT]);
    assert!(jsonwebtoken::decode::<Value>(&t, &naive, &validation).is_ok());
}

#[tokio::test]
async fn kid_defects_keep_a_valid_signature() {
    let h = Harness::start().await;
    let (_, t) = id_token_with(&h, Misbehaviour::UnknownKid).await;
    let kid = parts(&t).0["kid"]
        .as_str()
        .map(str::to_owned)
        .expect("a kid");
    assert!(
        h.jwks().await.find(&kid).is_none(),
        "kid {kid} absent from the JWKS"
    );
    verify_ignoring_kid(&h, &t)
        .await
        .expect("signed by the real key");

    let (_, t) = id_token_with(&h, Misbehaviour::NoKid).await;
    assert!(parts(&t).0.get("kid").is_none());
    verify_ignoring_kid(&h, &t)
        .await
        .expect("signed by the real key");
}

#[tokio::test]
async fn userinfo_sub_mismatch_changes_only_the_sub() {
    let h = Harness::start().await;
    let (_, tokens) = h.tokens("alice").await;
    h.idp.set_misbehaviour(Misbehaviour::UserinfoSubMismatch);
    let info = h
        .userinfo(tokens["access_token"].as_str().expect("access_token"))
        .await
        .json();
    assert_ne!(info["sub"], "alice");
    assert_eq!(info["email"], "alice@example.com");
}

#[tokio::test]
async fn token_endpoint_error_is_a_500() {
    let h = Harness::start().await;
    let login = h.login("alice").await;
    h.idp.set_misbehaviour(Misbehaviour::TokenEndpointError);
    let resp = h.exchange(&login.code, &login.verifier).await;
    assert_eq!(resp.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(resp.json()["error"], "server_error");
    h.idp.clear_misbehaviour();
    assert_eq!(
        h.exchange(&login.code, &login.verifier).await.status,
        StatusCode::OK,
        "code untouched"
    );
}

#[tokio::test]
async fn discovery_issuer_mismatch_changes_only_the_issuer() {
    let h = Harness::start().await;
    h.idp
        .set_misbehaviour(Misbehaviour::DiscoveryIssuerMismatch);
    let meta = h.get("/.well-known/openid-configuration").await.json();
    assert_ne!(meta["issuer"], json!(h.idp.issuer()));
    assert_eq!(
        meta["token_endpoint"],
        json!(format!("{}/token", h.idp.issuer()))
    );
}

#[tokio::test]
async fn refresh_fails_refuses_every_refresh_until_cleared() {
    let h = Harness::start().await;
    let (_, tokens) = h.tokens("alice").await;
    let refresh = tokens["refresh_token"].as_str().expect("refresh_token");
    h.idp.set_misbehaviour(Misbehaviour::RefreshFails);
    for _ in 0..2 {
        assert_eq!(h.refresh(refresh).await.json()["error"], "invalid_grant");
    }
    h.idp.clear_misbehaviour();
    assert_eq!(
        h.refresh(refresh).await.status,
        StatusCode::OK,
        "the token itself was fine"
    );
    assert_eq!(h.idp.stats().refresh_failures, 2);
}

#[tokio::test]
async fn misbehave_once_affects_the_next_id_token_only() {
    let h = Harness::start().await;
    h.idp.misbehave_once(Misbehaviour::WrongIssuer);
    let (_, first) = h.tokens("alice").await;
    let (_, second) = h.tokens("alice").await;
    assert!(h
        .decode(first["id_token"].as_str().expect("id_token"), CLIENT)
        .await
        .is_err());
    assert!(h
        .decode(second["id_token"].as_str().expect("id_token"), CLIENT)
        .await
        .is_ok());
}

#[tokio::test]
async fn duplicate_sub_appends_a_second_sub_to_a_properly_signed_token() {
    let h = Harness::start().await;
    let (_, t) = id_token_with(&h, Misbehaviour::DuplicateSub).await;
    let (input, sig) = t.rsplit_once('.').expect("three parts");
    let kid = parts(&t).0["kid"]
        .as_str()
        .map(str::to_owned)
        .expect("a kid");
    let jwks = h.jwks().await;
    let key = DecodingKey::from_jwk(jwks.find(&kid).expect("the current kid")).expect("key");
    assert!(
        jsonwebtoken::crypto::verify(sig, input.as_bytes(), &key, Algorithm::RS256)
            .expect("verifiable"),
        "signed by the provider's key"
    );
    let payload = input.split_once('.').expect("header.payload").1;
    let payload =
        String::from_utf8(URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("UTF-8");
    assert!(payload.contains(r#""sub":"alice","#), "{payload}");
    assert!(payload.ends_with(r#","sub":"admin"}"#), "{payload}");
    assert_eq!(payload.matches(r#""sub":"#).count(), 2, "{payload}");
    assert_eq!(
        parts(&t).1["sub"],
        "admin",
        "a last-wins parser reads admin"
    );
}
