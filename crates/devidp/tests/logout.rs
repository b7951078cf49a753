use http::StatusCode;

use crate::support::{parts, Harness, POST_LOGOUT};

#[tokio::test]
async fn end_session_redirects_to_a_registered_uri_with_the_state_and_ends_the_session() {
    let h = Harness::start().await;
    let (login, tokens) = h.tokens("alice").await;
    let hint = tokens["id_token"].as_str().expect("id_token");
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", hint)
        .append_pair("post_logout_redirect_uri", POST_LOGOUT)
        .append_pair("state", "bye-1")
        .finish();
    let resp = h
        .get_with_cookie(&format!("/end_session?{query}"), login.cookie.as_deref())
        .await;
    let target = resp.location();
    assert!(target.as_str().starts_with(POST_LOGOUT));
    assert_eq!(
        resp.redirect_params().get("state").map(String::as_str),
        Some("bye-1")
    );
    let cleared = resp
        .header(http::header::SET_COOKIE)
        .expect("cookie cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    // The provider session is gone: prompt=none now needs a login.
    let (verifier, nonce, state) = h.secrets();
    let mut params = h.authorize_params(&verifier, &nonce, &state);
    params.push(("prompt".into(), "none".into()));
    let silent = h
        .get_with_cookie(&h.authorize_target(&params), login.cookie.as_deref())
        .await;
    assert_eq!(
        silent.redirect_params().get("error").map(String::as_str),
        Some("login_required")
    );
    assert_eq!(h.idp.stats().end_sessions, 1);
}

#[tokio::test]
async fn end_session_with_an_unregistered_or_unverifiable_target_shows_a_page() {
    let h = Harness::start().await;
    let (_, tokens) = h.tokens("alice").await;
    let hint = tokens["id_token"].as_str().expect("id_token");
    let cases = [
        ("unregistered uri", Some(hint), "http://evil.example/"),
        ("no hint, no client_id", None, POST_LOGOUT),
    ];
    for (what, hint, uri) in cases {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(hint) = hint {
            q.append_pair("id_token_hint", hint);
        }
        q.append_pair("post_logout_redirect_uri", uri);
        let resp = h.get(&format!("/end_session?{}", q.finish())).await;
        assert_eq!(resp.status, StatusCode::OK, "{what}");
        assert!(
            resp.header(http::header::LOCATION).is_none(),
            "{what}: no redirect"
        );
        assert!(resp.text().contains("signed out"), "{what}");
    }
}

#[tokio::test]
async fn end_session_accepts_an_expired_hint_but_not_a_forged_one() {
    let h = Harness::start().await;
    let expired = h.idp.sign_jwt(
        serde_json::json!({"typ": "JWT"}),
        serde_json::json!({"iss": h.idp.issuer(), "aud": "app", "azp": "app", "sub": "alice", "exp": 1}),
    );
    let ok = h
        .get(&format!(
            "/end_session?id_token_hint={expired}&post_logout_redirect_uri={POST_LOGOUT}"
        ))
        .await;
    assert_eq!(ok.status, StatusCode::FOUND);

    let (_, tokens) = h.tokens("alice").await;
    let hint = tokens["id_token"].as_str().expect("id_token");
    let forged = format!("{}x", &hint[..hint.len() - 1]);
    let resp = h.get(&format!("/end_session?id_token_hint={forged}")).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    let _ = parts(hint);
}
