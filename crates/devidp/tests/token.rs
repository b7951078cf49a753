use http::{header, Method, StatusCode};
use portcullis_devidp::RolesClaim;
use serde_json::{json, Value};

use crate::support::{
    self, basic, parts, Harness, CLIENT, POST_CLIENT, POST_SECRET, REDIRECT, SECRET,
};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test]
async fn the_code_flow_returns_tokens_with_every_claim() {
    let h = Harness::start().await;
    let login = h.login("alice").await;
    let resp = h.exchange(&login.code, &login.verifier).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.header(header::CACHE_CONTROL), Some("no-store"));
    let body = resp.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert!(body["refresh_token"]
        .as_str()
        .is_some_and(|t| t.len() >= 32));

    let id_token = body["id_token"].as_str().expect("id_token");
    let claims = h
        .decode(id_token, CLIENT)
        .await
        .expect("ID token verifies with jsonwebtoken");
    let (header, _) = parts(id_token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], json!(h.idp.signing_kid()));
    let t = now();
    assert_eq!(claims["iss"], json!(h.idp.issuer()));
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], CLIENT);
    assert_eq!(claims["azp"], CLIENT);
    assert_eq!(claims["nonce"], json!(login.nonce));
    assert!(claims["iat"]
        .as_u64()
        .is_some_and(|iat| iat.abs_diff(t) < 5));
    assert!(claims["auth_time"]
        .as_u64()
        .is_some_and(|at| at.abs_diff(t) < 5));
    assert!(claims["exp"].as_u64().is_some_and(|exp| exp > t + 200));
    assert!(claims["sid"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(claims["at_hash"].as_str().is_some());
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["preferred_username"], "alice");
    assert!(claims["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("Alice")));
    assert_eq!(claims["roles"], json!(["admin", "user"]));

    let access = body["access_token"].as_str().expect("access_token");
    let (at_header, _) = parts(access);
    assert_eq!(at_header["typ"], "at+jwt");
    let at = h
        .decode(access, CLIENT)
        .await
        .expect("access token verifies");
    assert_eq!(at["client_id"], CLIENT);
    assert_eq!(at["sub"], "alice");
    assert_eq!(at["scope"], "openid profile email");
    assert_eq!(at["roles"], json!(["admin", "user"]));
    assert!(at["jti"].as_str().is_some());
    let stats = h.idp.stats();
    assert_eq!((stats.code_exchanges, stats.code_exchange_failures), (1, 0));
}

#[tokio::test]
async fn a_wrong_or_missing_code_verifier_is_refused() {
    let h = Harness::start().await;
    for verifier in ["verifier-wrong-0123456789abcdefghijklmnopqrstuvwxyz", ""] {
        let login = h.login("alice").await;
        let resp = h.exchange(&login.code, verifier).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST);
        assert_eq!(resp.json()["error"], "invalid_grant");
    }
    assert_eq!(h.idp.stats().code_exchange_failures, 2);
}

#[tokio::test]
async fn a_wrong_redirect_uri_at_the_token_endpoint_is_refused() {
    let h = Harness::start().await;
    let login = h.login("alice").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", login.code.as_str()),
        ("redirect_uri", "http://127.0.0.1:9/other"),
        ("code_verifier", login.verifier.as_str()),
    ];
    let resp = h
        .post_form(
            "/token",
            &form,
            &[("authorization", &basic(CLIENT, SECRET))],
        )
        .await;
    assert_eq!(resp.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_the_tokens_it_gave_are_revoked() {
    let h = Harness::start().await;
    let login = h.login("alice").await;
    let first = h.exchange(&login.code, &login.verifier).await.json();
    let access = first["access_token"].as_str().expect("access_token");
    assert_eq!(h.userinfo(access).await.status, StatusCode::OK);

    let replay = h.exchange(&login.code, &login.verifier).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert_eq!(replay.json()["error"], "invalid_grant");
    assert_eq!(
        h.userinfo(access).await.status,
        StatusCode::UNAUTHORIZED,
        "access token revoked"
    );
    let refresh = h
        .refresh(first["refresh_token"].as_str().expect("refresh_token"))
        .await;
    assert_eq!(
        refresh.json()["error"],
        "invalid_grant",
        "refresh token revoked"
    );
}

#[tokio::test]
async fn wrong_client_credentials_are_refused_with_basic_and_post() {
    let h = Harness::start().await;
    let login = h.login("alice").await;
    let code_form = |secret: Option<&'static str>, client: &'static str| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", login.code.clone()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", login.verifier.clone()),
            ("client_id", client.to_owned()),
        ];
        if let Some(s) = secret {
            form.push(("client_secret", s.to_owned()));
        }
        form
    };
    let send = |form: Vec<(&'static str, String)>, auth: Option<String>| {
        let h = &h;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| ("authorization", a))
                .into_iter()
                .collect();
            h.post_form("/token", &form, &headers).await
        }
    };
    let cases = [
        (
            "basic, wrong secret",
            code_form(None, CLIENT),
            Some(basic(CLIENT, "nope")),
        ),
        (
            "basic, unknown client",
            code_form(None, "ghost"),
            Some(basic("ghost", SECRET)),
        ),
        (
            "post, wrong secret",
            code_form(Some("nope"), POST_CLIENT),
            None,
        ),
        (
            "post, for a basic-only client",
            code_form(Some(SECRET), CLIENT),
            None,
        ),
        (
            "basic, for a post-only client",
            code_form(None, POST_CLIENT),
            Some(basic(POST_CLIENT, POST_SECRET)),
        ),
        ("no credentials", code_form(None, CLIENT), None),
    ];
    for (what, form, auth) in cases {
        let resp = send(form, auth).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(resp.json()["error"], "invalid_client", "{what}");
        assert!(resp.header(header::WWW_AUTHENTICATE).is_some(), "{what}");
    }
    // The code was never consumed by the refused attempts: the right secret works.
    let ok = h.exchange(&login.code, &login.verifier).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
}

#[tokio::test]
async fn client_secret_post_works_for_a_post_client_with_special_characters() {
    let h = Harness::start().await;
    let login = h.login_as("bob", POST_CLIENT).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", login.code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", login.verifier.as_str()),
        ("client_id", POST_CLIENT),
        ("client_secret", POST_SECRET),
    ];
    let resp = h.post_form("/token", &form, &[]).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let claims = parts(resp.json()["id_token"].as_str().expect("id_token")).1;
    assert_eq!(
        (claims["aud"].clone(), claims["sub"].clone()),
        (json!(POST_CLIENT), json!("bob"))
    );
}

#[tokio::test]
async fn using_basic_and_post_at_once_is_a_bad_request() {
    let h = Harness::start().await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "x"),
        ("client_secret", SECRET),
    ];
    let resp = h
        .post_form(
            "/token",
            &form,
            &[("authorization", &basic(CLIENT, SECRET))],
        )
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(resp.json()["error"], "invalid_request");
}

#[tokio::test]
async fn malformed_token_requests_get_400_json() {
    let h = Harness::start().await;
    let auth = basic(CLIENT, SECRET);
    let json_body = h
        .send(
            Method::POST,
            "/token",
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            Some("{}".into()),
        )
        .await;
    assert_eq!(json_body.status, StatusCode::BAD_REQUEST);
    assert_eq!(json_body.json()["error"], "invalid_request");
    let repeated = h
        .send(
            Method::POST,
            "/token",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", &auth),
            ],
            Some("grant_type=refresh_token&grant_type=refresh_token".into()),
        )
        .await;
    assert_eq!(repeated.json()["error"], "invalid_request");
    let garbage = h
        .post_form(
            "/token",
            &[("grant_type", "refresh_token")],
            &[("authorization", "Basic %%%")],
        )
        .await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    let unknown = h
        .post_form(
            "/token",
            &[("grant_type", "password")],
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(unknown.json()["error"], "unsupported_grant_type");
    let no_code = h
        .post_form(
            "/token",
            &[("grant_type", "authorization_code")],
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(no_code.json()["error"], "invalid_request");
}

#[tokio::test]
async fn refresh_rotates_and_reusing_a_rotated_token_revokes_the_family() {
    let h = Harness::start().await;
    let (login, first) = h.tokens("alice").await;
    let original_sid = parts(first["id_token"].as_str().expect("id_token")).1["sid"].clone();
    let r0 = first["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();

    let second = h.refresh(&r0).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    let second = second.json();
    let r1 = second["refresh_token"]
        .as_str()
        .expect("new refresh_token")
        .to_owned();
    assert_ne!(r0, r1, "rotated");
    let id = h
        .decode(second["id_token"].as_str().expect("new id_token"), CLIENT)
        .await
        .expect("verifies");
    assert_eq!(id["sid"], original_sid);
    assert!(
        id.get("nonce").is_none(),
        "no nonce in a refreshed ID token"
    );
    let _ = login;

    // Reuse of r0: refused, and r1 (same family) dies with it.
    assert_eq!(h.refresh(&r0).await.json()["error"], "invalid_grant");
    assert_eq!(h.refresh(&r1).await.json()["error"], "invalid_grant");
    let access = second["access_token"].as_str().expect("access_token");
    assert_eq!(h.userinfo(access).await.status, StatusCode::UNAUTHORIZED);
    let stats = h.idp.stats();
    assert_eq!((stats.refreshes, stats.refresh_failures), (3, 2));
}

#[tokio::test]
async fn without_rotation_the_refresh_token_stays_valid() {
    let mut config = support::config();
    config.rotate_refresh_tokens = false;
    let h = Harness::with(config).await;
    let (_, tokens) = h.tokens("bob").await;
    let r0 = tokens["refresh_token"].as_str().expect("refresh_token");
    for _ in 0..2 {
        let resp = h.refresh(r0).await.json();
        assert_eq!(resp["refresh_token"].as_str(), Some(r0));
    }
}

#[tokio::test]
async fn revoke_refresh_tokens_makes_the_next_refresh_fail() {
    let h = Harness::start().await;
    let (_, tokens) = h.tokens("alice").await;
    h.idp.revoke_refresh_tokens("alice");
    let resp = h
        .refresh(tokens["refresh_token"].as_str().expect("refresh_token"))
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(resp.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn a_refresh_token_cannot_be_used_by_another_client() {
    let h = Harness::start().await;
    let (_, tokens) = h.tokens("alice").await;
    let form = [
        ("grant_type", "refresh_token"),
        (
            "refresh_token",
            tokens["refresh_token"].as_str().expect("refresh_token"),
        ),
        ("client_id", POST_CLIENT),
        ("client_secret", POST_SECRET),
    ];
    assert_eq!(
        h.post_form("/token", &form, &[]).await.json()["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn userinfo_returns_the_users_claims_for_a_valid_access_token_only() {
    let h = Harness::start().await;
    let (_, tokens) = h.tokens("bob").await;
    let resp = h
        .userinfo(tokens["access_token"].as_str().expect("access_token"))
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    let info = resp.json();
    assert_eq!(info["sub"], "bob");
    assert_eq!(info["email"], "bob@example.com");
    assert_eq!(info["email_verified"], true);
    assert_eq!(info["preferred_username"], "bob");
    assert_eq!(info["roles"], json!(["user"]));

    // POST works too.
    let auth = format!(
        "Bearer {}",
        tokens["access_token"].as_str().expect("access_token")
    );
    assert_eq!(
        h.send(Method::POST, "/userinfo", &[("authorization", &auth)], None)
            .await
            .status,
        StatusCode::OK
    );

    for bad in [
        "",
        "not-a-jwt",
        tokens["id_token"].as_str().expect("id_token"),
    ] {
        let resp = h.userinfo(bad).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert!(resp
            .header(header::WWW_AUTHENTICATE)
            .is_some_and(|w| w.contains("invalid_token")));
    }
    assert_eq!(h.idp.stats().userinfo_calls, 5);
}

#[tokio::test]
async fn revocation_always_answers_200_and_revokes_the_clients_tokens() {
    let h = Harness::start().await;
    let auth = basic(CLIENT, SECRET);
    let (_, tokens) = h.tokens("alice").await;
    let refresh = tokens["refresh_token"].as_str().expect("refresh_token");
    let unknown = h
        .post_form(
            "/revoke",
            &[("token", "never-issued")],
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(h.idp.stats().revocations, 0);

    let other = h
        .post_form(
            "/revoke",
            &[
                ("token", refresh),
                ("client_id", POST_CLIENT),
                ("client_secret", POST_SECRET),
            ],
            &[],
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(
        h.idp.stats().revocations,
        0,
        "another client cannot revoke it"
    );

    let resp = h
        .post_form(
            "/revoke",
            &[("token", refresh), ("token_type_hint", "refresh_token")],
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(h.idp.stats().revocations, 1);
    assert_eq!(h.refresh(refresh).await.json()["error"], "invalid_grant");

    // An access token can be revoked on its own.
    let (_, more) = h.tokens("alice").await;
    let access = more["access_token"].as_str().expect("access_token");
    h.post_form("/revoke", &[("token", access)], &[("authorization", &auth)])
        .await;
    assert_eq!(h.userinfo(access).await.status, StatusCode::UNAUTHORIZED);

    let bad_client = h
        .post_form(
            "/revoke",
            &[("token", refresh)],
            &[("authorization", &basic(CLIENT, "x"))],
        )
        .await;
    assert_eq!(bad_client.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn access_token_for_makes_a_valid_rfc_9068_token() {
    let mut config = support::config();
    config.access_token_audience = Some("https://api.example.com".into());
    config.roles_claim = RolesClaim::Nested(vec!["realm_access".into(), "roles".into()]);
    let h = Harness::with(config).await;
    let token = h.idp.access_token_for("alice", CLIENT);
    assert_eq!(parts(&token).0["typ"], "at+jwt");
    let claims = h
        .decode(&token, "https://api.example.com")
        .await
        .expect("verifies");
    assert_eq!(claims["client_id"], CLIENT);
    assert_eq!(claims["realm_access"], json!({"roles": ["admin", "user"]}));
    assert_eq!(
        h.userinfo(&token).await.json()["realm_access"]["roles"],
        json!(["admin", "user"])
    );
}

#[tokio::test]
async fn namespaced_roles_claims_keep_their_exact_name() {
    let mut config = support::config();
    config.roles_claim = RolesClaim::TopLevel("https://app.example.com/roles".into());
    let h = Harness::with(config).await;
    let (_, tokens) = h.tokens("alice").await;
    let claims: Value = parts(tokens["id_token"].as_str().expect("id_token")).1;
    assert_eq!(
        claims["https://app.example.com/roles"],
        json!(["admin", "user"])
    );
    assert!(claims.get("roles").is_none());
}

#[tokio::test]
async fn sign_jwt_signs_crafted_tokens_with_the_current_key() {
    let h = Harness::start().await;
    let t = now();
    let token = h.idp.sign_jwt(
        json!({"typ": "JWT"}),
        json!({"iss": h.idp.issuer(), "aud": CLIENT, "sub": "x", "exp": t + 60}),
    );
    assert_eq!(
        h.decode(&token, CLIENT).await.expect("verifies")["sub"],
        "x"
    );
    let no_kid = h.idp.sign_jwt(json!({"kid": null}), json!({}));
    assert!(parts(&no_kid).0.get("kid").is_none());
}

#[tokio::test]
async fn codes_and_tokens_expire_with_the_providers_clock() {
    let h = Harness::start().await;
    let login = h.login("alice").await;
    h.idp.advance_clock(std::time::Duration::from_secs(61));
    let late = h.exchange(&login.code, &login.verifier).await;
    assert_eq!(late.json()["error"], "invalid_grant", "a code lives 60 s");

    let (_, tokens) = h.tokens("alice").await;
    h.idp.advance_clock(std::time::Duration::from_secs(301));
    let access = tokens["access_token"].as_str().expect("access_token");
    assert_eq!(
        h.userinfo(access).await.status,
        StatusCode::UNAUTHORIZED,
        "access token expired"
    );
    let refresh = tokens["refresh_token"].as_str().expect("refresh_token");
    assert_eq!(
        h.refresh(refresh).await.status,
        StatusCode::OK,
        "refresh token lives a day"
    );
    h.idp
        .advance_clock(std::time::Duration::from_secs(24 * 3600));
    let (_, fresh) = h.tokens("bob").await;
    let refreshed = h
        .refresh(fresh["refresh_token"].as_str().expect("refresh_token"))
        .await;
    assert_eq!(refreshed.status, StatusCode::OK);
    let rotated = refreshed.json()["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    h.idp
        .advance_clock(std::time::Duration::from_secs(24 * 3600 + 1));
    assert_eq!(
        h.refresh(&rotated).await.json()["error"],
        "invalid_grant",
        "expired"
    );
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_let_exactly_one_through() {
    let h = Harness::start().await;
    let (_, tokens) = h.tokens("alice").await;
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();
    let attempts = (0..32).map(|_| h.refresh(&refresh));
    let results = futures_util::future::join_all(attempts).await;
    let ok = results
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "rotation is atomic");
    let stats = h.idp.stats();
    assert_eq!((stats.refreshes, stats.refresh_failures), (32, 31));
}
