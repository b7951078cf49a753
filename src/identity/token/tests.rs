use std::time::Duration;

use aws_lc_rs::signature::{
    EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use serde_json::{json, Value};

use super::*;

const HOST: &str = "app.example.com";

fn public_url() -> Url {
    Url::parse("https://app.example.com/").expect("static url")
}

fn settings(key: Option<PathBuf>) -> config::Identity {
    config::Identity {
        signing_key_file: key,
        ttl: Duration::from_secs(60),
    }
}

fn generated() -> Signer {
    Signer::new(&settings(None), &public_url()).expect("generated key")
}

fn alice() -> Identity {
    Identity {
        sub: "alice".into(),
        email: Some("alice@example.com".into()),
        email_verified: true,
        roles: vec!["admin".into(), "user".into()],
        ..Identity::default()
    }
}

fn now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).expect("a 2026 timestamp fits")
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ascii"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn key_file(dir: &tempfile::TempDir, name: &str, contents: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).expect("write key");
    path
}

fn p256_pkcs8() -> Vec<u8> {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("keygen");
    pair.to_pkcs8v1().expect("pkcs8").as_ref().to_vec()
}

/// Verifies `token` the way an app would: key from the published JWKS by `kid`,
/// algorithm from the key (never from the token), `aud`, `iss` and `exp` checked.
fn verify_as_app(signer: &Signer, token: &str, aud: &str) -> Result<Value, String> {
    let set: JwkSet = serde_json::from_slice(&signer.jwks_json()).map_err(|e| e.to_string())?;
    let header = decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or("kid not in the jwks")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[aud]);
    validation.set_issuer(&["https://app.example.com"]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
    decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

fn text(value: &HeaderValue) -> &str {
    value.to_str().expect("a jws is ascii")
}

#[test]
fn assertion_verifies_against_the_published_jwks() {
    let signer = generated();
    let value = signer.assertion(&alice(), HOST, now()).expect("signs");
    let claims = verify_as_app(&signer, text(&value), HOST).expect("verifies");
    assert_eq!(claims["sub"], "alice");
}

#[test]
fn assertion_for_another_host_or_from_another_key_is_refused() {
    let signer = generated();
    let value = signer.assertion(&alice(), HOST, now()).expect("signs");
    assert!(verify_as_app(&signer, text(&value), "other.example.com").is_err());

    let other = generated();
    assert!(
        verify_as_app(&other, text(&value), HOST).is_err(),
        "another proxy's jwks must not verify it"
    );

    let token = text(&value);
    let tampered = token.replacen('.', ".e30", 1);
    assert!(verify_as_app(&signer, &tampered, HOST).is_err());
}

#[test]
fn claims_are_exactly_the_documented_ones() {
    let signer = generated();
    let at = now();
    let value = signer.assertion(&alice(), HOST, at).expect("signs");
    let mut claims = verify_as_app(&signer, text(&value), HOST).expect("verifies");
    let jti = claims
        .as_object_mut()
        .and_then(|c| c.remove("jti"))
        .expect("has jti");
    assert!(jti.as_str().is_some_and(|j| j.len() >= 22), "{jti}");
    assert_eq!(
        claims,
        json!({
            "idp": "default",
            "iss": "https://app.example.com",
            "sub": "alice",
            "email": "alice@example.com",
            "roles": ["admin", "user"],
            "aud": HOST,
            "iat": at,
            "exp": at + 60,
        })
    );
}

#[test]
fn email_is_left_out_when_absent() {
    let signer = generated();
    let who = Identity {
        email: None,
        ..alice()
    };
    let value = signer.assertion(&who, HOST, now()).expect("signs");
    let claims = verify_as_app(&signer, text(&value), HOST).expect("verifies");
    assert!(claims.get("email").is_none(), "{claims}");
}

#[test]
fn header_names_the_key_by_its_thumbprint() {
    let signer = generated();
    let value = signer.assertion(&alice(), HOST, now()).expect("signs");
    let header = decode_header(text(&value)).expect("header");
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), Some(signer.kid()));
    assert_eq!(signer.kid().len(), 43, "base64url of a sha-256");
}

#[test]
fn jwks_publishes_one_p256_signing_key() {
    let signer = generated();
    let jwks: Value = serde_json::from_slice(&signer.jwks_json()).expect("json");
    let key = &jwks["keys"][0];
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kid"], signer.kid());
    assert!(key.get("d").is_none(), "never the private key");
}

#[test]
fn lifetime_is_at_most_sixty_seconds() {
    for ttl in [1, 30, 60, 3600] {
        let settings = config::Identity {
            signing_key_file: None,
            ttl: Duration::from_secs(ttl),
        };
        let signer = Signer::new(&settings, &public_url()).expect("signer");
        let value = signer.assertion(&alice(), HOST, now()).expect("signs");
        let claims = verify_as_app(&signer, text(&value), HOST).expect("verifies");
        let life = claims["exp"].as_i64().unwrap_or(i64::MAX) - claims["iat"].as_i64().unwrap_or(0);
        assert!((1..=60).contains(&life), "ttl {ttl}: lives {life}s");
    }
}

#[test]
fn cache_reuses_the_assertion_while_more_than_half_its_life_remains() {
    let signer = generated();
    let t0 = 1_800_000_000;
    let first = signer.assertion(&alice(), HOST, t0).expect("signs");
    let again = signer.assertion(&alice(), HOST, t0 + 29).expect("signs");
    assert_eq!(first, again, "reused within ttl/2");
    let later = signer.assertion(&alice(), HOST, t0 + 30).expect("signs");
    assert_ne!(first, later, "re-signed once half the lifetime is gone");
    assert_eq!(signer.cached(), 1, "the new one replaces the old one");
}

#[test]
fn cache_signs_anew_when_the_clock_goes_back() {
    let signer = generated();
    let t0 = 1_800_000_000;
    let first = signer.assertion(&alice(), HOST, t0).expect("signs");
    let earlier = signer.assertion(&alice(), HOST, t0 - 5).expect("signs");
    assert_ne!(
        first, earlier,
        "an assertion is never handed out before its iat"
    );
}

#[test]
fn cache_keeps_hosts_and_identities_apart() {
    let signer = generated();
    let t0 = 1_800_000_000;
    let here = signer.assertion(&alice(), HOST, t0).expect("signs");
    let there = signer
        .assertion(&alice(), "api.example.com", t0)
        .expect("signs");
    assert_ne!(here, there, "different aud, different assertion");

    let fewer_roles = Identity {
        roles: vec!["user".into()],
        ..alice()
    };
    let demoted = signer.assertion(&fewer_roles, HOST, t0).expect("signs");
    assert_ne!(
        here, demoted,
        "a role change is never served a stale assertion"
    );

    let bob = Identity {
        sub: "bob".into(),
        ..alice()
    };
    assert_ne!(here, signer.assertion(&bob, HOST, t0).expect("signs"));
}

#[test]
fn cache_is_bounded() {
    let signer = generated();
    let t0 = 1_800_000_000;
    for n in 0..CACHE_CAPACITY + 10 {
        let who = Identity {
            sub: format!("user-{n}"),
            ..Identity::default()
        };
        // Signing this many is slow; insert directly what `assertion` would.
        let slot = signer.slot(&who, HOST);
        signer.remember(slot, &who, HOST, t0, HeaderValue::from_static("x"));
    }
    assert_eq!(signer.cached(), CACHE_CAPACITY);
    // Once the entries are stale, a full cache is swept to make room.
    let value = signer.assertion(&alice(), HOST, t0 + 31).expect("signs");
    assert_eq!(signer.cached(), 1);
    assert_eq!(
        signer.assertion(&alice(), HOST, t0 + 31).expect("signs"),
        value
    );
}

#[test]
fn audience_is_the_host_lowercased_without_port() {
    assert_eq!(audience("app.example.com"), "app.example.com");
    assert_eq!(audience("App.Example.COM:8443"), "app.example.com");
    assert_eq!(audience("[::1]:4180"), "[::1]");
    assert_eq!(audience("127.0.0.1:80"), "127.0.0.1");
}

#[test]
fn key_file_in_sec1_pem_is_accepted() {
    use aws_lc_rs::encoding::AsDer;
    let dir = tempfile::tempdir().expect("tempdir");
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("keygen");
    let sec1 = pair.private_key().as_der().expect("sec1");
    let path = key_file(&dir, "ec.pem", &pem("EC PRIVATE KEY", sec1.as_ref()));
    let signer = Signer::new(&settings(Some(path)), &public_url()).expect("loads sec1");
    let value = signer.assertion(&alice(), HOST, now()).expect("signs");
    verify_as_app(&signer, text(&value), HOST).expect("verifies");
}

#[test]
fn key_file_in_pkcs8_pem_is_used_and_keeps_its_kid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pkcs8 = p256_pkcs8();
    let path = key_file(&dir, "identity.pem", &pem("PRIVATE KEY", &pkcs8));
    let one = Signer::new(&settings(Some(path.clone())), &public_url()).expect("loads");
    let two = Signer::new(&settings(Some(path)), &public_url()).expect("loads");
    assert_eq!(one.kid(), two.kid(), "a restart publishes the same kid");
    assert_eq!(one.jwks_json(), two.jwks_json());
    let value = one.assertion(&alice(), HOST, now()).expect("signs");
    verify_as_app(&two, text(&value), HOST).expect("the other instance verifies it");
}

#[test]
fn wrong_key_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p384 = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
        .expect("keygen")
        .to_pkcs8v1()
        .expect("pkcs8");
    let cases = [
        ("garbage.pem", "not a key at all".to_owned()),
        ("p384.pem", pem("PRIVATE KEY", p384.as_ref())),
        (
            "rsa.pem",
            pem("RSA PRIVATE KEY", &[0x30, 0x03, 0x02, 0x01, 0x00]),
        ),
        ("cert.pem", pem("CERTIFICATE", &[0x30, 0x00])),
    ];
    for (name, contents) in cases {
        let path = key_file(&dir, name, &contents);
        let error = Signer::new(&settings(Some(path)), &public_url())
            .expect_err(&format!("{name} must be refused"));
        let message = error.to_string();
        assert!(message.contains(name), "{name}: {message}");
        assert!(message.contains("identity.signing_key_file"), "{message}");
    }
    let missing = dir.path().join("missing.pem");
    let error = Signer::new(&settings(Some(missing)), &public_url()).expect_err("missing");
    assert!(matches!(error, TokenError::ReadKey { .. }), "{error}");
    assert!(error.to_string().contains("missing.pem"));
}

#[test]
fn debug_never_prints_an_assertion() {
    let signer = generated();
    let value = signer.assertion(&alice(), HOST, now()).expect("signs");
    let debug = format!("{signer:?}");
    assert!(!debug.contains(text(&value)), "{debug}");
}

/// SPEC §12: the assertion names the provider (`idp`) and its issuer
/// (`idp_iss`), and one provider's assertion is never reused for the same
/// `sub` at another.
#[test]
fn the_assertion_names_the_provider_and_is_never_shared_across_providers() {
    let signer = generated();
    let at = now();
    let mut partner = alice();
    partner.provider = "partners".into();
    let ours = signer
        .assertion_for(&alice(), &|| "https://idp.example.com".to_owned(), HOST, at)
        .expect("signs");
    let theirs = signer
        .assertion_for(&partner, &|| "https://partner.example".to_owned(), HOST, at)
        .expect("signs");
    assert_ne!(ours, theirs);
    let claims = verify_as_app(&signer, text(&theirs), HOST).expect("verifies");
    assert_eq!(claims["idp"], "partners");
    assert_eq!(claims["idp_iss"], "https://partner.example");
    let claims = verify_as_app(&signer, text(&ours), HOST).expect("verifies");
    assert_eq!(claims["idp"], "default");
    assert_eq!(claims["idp_iss"], "https://idp.example.com");
}
