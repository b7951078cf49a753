use http::StatusCode;
use serde_json::json;

use crate::support::Harness;

#[tokio::test]
async fn discovery_names_every_endpoint_under_the_issuer() {
    let h = Harness::start().await;
    let issuer = h.idp.issuer();
    assert!(issuer.starts_with("http://127.0.0.1:") && !issuer.ends_with('/'));
    let resp = h.get("/.well-known/openid-configuration").await;
    assert_eq!(resp.status, StatusCode::OK);
    let meta = resp.json();
    assert_eq!(meta["issuer"], json!(issuer));
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
        ("end_session_endpoint", "/end_session"),
        ("revocation_endpoint", "/revoke"),
    ] {
        assert_eq!(meta[field], json!(format!("{issuer}{path}")), "{field}");
    }
    assert_eq!(meta["response_types_supported"], json!(["code"]));
    assert_eq!(
        meta["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        meta["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(meta["subject_types_supported"], json!(["public"]));
    assert_eq!(meta["backchannel_logout_supported"], json!(true));
    assert_eq!(meta["backchannel_logout_session_supported"], json!(true));
    assert!(meta["scopes_supported"]
        .as_array()
        .is_some_and(|s| s.contains(&json!("openid"))));
    assert!(meta["claims_supported"]
        .as_array()
        .is_some_and(|s| s.contains(&json!("roles"))));
    assert_eq!(h.idp.stats().discovery_fetches, 1);
}

#[tokio::test]
async fn jwks_publishes_rsa_signing_keys() {
    let h = Harness::start().await;
    let jwks = h.get("/jwks").await.json();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["kid"], json!(h.idp.signing_kid()));
    assert_eq!(key["e"], "AQAB");
    // 2048-bit modulus: 256 bytes, 342 base64url characters.
    assert_eq!(key["n"].as_str().map(str::len), Some(342));
    assert!(key.get("d").is_none(), "no private part");
    assert_eq!(h.idp.stats().jwks_fetches, 1);
}

#[tokio::test]
async fn rotating_the_key_keeps_both_in_the_jwks_and_old_tokens_verify() {
    let h = Harness::start().await;
    let (_, before) = h.tokens("alice").await;
    let old_kid = h.idp.signing_kid();
    let new_kid = h.idp.rotate_signing_key().await.expect("rotation");
    assert_ne!(old_kid, new_kid);
    let kids: Vec<String> = h
        .jwks()
        .await
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );

    let (_, after) = h.tokens("alice").await;
    let header =
        jsonwebtoken::decode_header(after["id_token"].as_str().expect("id_token")).expect("header");
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
    for tokens in [&before, &after] {
        let id_token = tokens["id_token"].as_str().expect("id_token");
        h.decode(id_token, "app")
            .await
            .expect("verifies against the JWKS");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let h = Harness::start().await;
    assert_eq!(h.get("/nope").await.status, StatusCode::NOT_FOUND);
    let resp = h.get("/token").await;
    assert_eq!(resp.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.json()["error"], "invalid_request");
}
