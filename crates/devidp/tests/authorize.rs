use http::StatusCode;

use crate::support::{hidden_fields, Harness, REDIRECT};

#[tokio::test]
async fn the_sign_in_page_lists_the_users_and_carries_the_request() {
    let h = Harness::start().await;
    let (verifier, nonce, state) = h.secrets();
    let params = h.authorize_params(&verifier, &nonce, &state);
    let page = h.get(&h.authorize_target(&params)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .header(http::header::CONTENT_TYPE)
        .is_some_and(|c| c.starts_with("text/html")));
    let html = page.text();
    assert!(html.contains("value=\"alice\"") && html.contains("value=\"bob\""));
    assert!(html.contains("name=\"action\" value=\"cancel\""));
    let mut carried = hidden_fields(&html);
    carried.sort();
    let mut expected = params.clone();
    expected.sort();
    assert_eq!(carried, expected);
}

#[tokio::test]
async fn signing_in_redirects_with_code_state_and_iss_and_sets_an_http_only_cookie() {
    let h = Harness::start().await;
    let (verifier, nonce, state) = h.secrets();
    let mut form = h.authorize_params(&verifier, &nonce, &state);
    form.push(("user".into(), "alice".into()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let resp = h.post_form("/authorize", &form, &[]).await;
    let target = resp.location();
    assert!(target.as_str().starts_with(REDIRECT));
    let params = resp.redirect_params();
    assert_eq!(params.get("state"), Some(&state));
    assert_eq!(params.get("iss"), Some(&h.idp.issuer()));
    assert!(params.get("code").is_some_and(|c| c.len() >= 32));
    let set_cookie = resp
        .header(http::header::SET_COOKIE)
        .expect("session cookie");
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("Path=/"),
        "{set_cookie}"
    );
}

#[tokio::test]
async fn a_provider_session_gives_single_sign_on_unless_prompt_is_login() {
    let h = Harness::start().await;
    let first = h.login("alice").await;
    let cookie = first.cookie.as_deref();
    let (verifier, nonce, state) = h.secrets();
    let mut params = h.authorize_params(&verifier, &nonce, &state);

    let sso = h
        .get_with_cookie(&h.authorize_target(&params), cookie)
        .await;
    assert!(
        sso.redirect_params().contains_key("code"),
        "SSO issues a code at once"
    );
    let tokens = h
        .exchange(&sso.redirect_params()["code"], &verifier)
        .await
        .json();
    let claims = crate::support::parts(tokens["id_token"].as_str().expect("id_token")).1;
    assert_eq!(claims["sub"], "alice");

    params.push(("prompt".into(), "login".into()));
    let page = h
        .get_with_cookie(&h.authorize_target(&params), cookie)
        .await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "prompt=login shows the page again"
    );
}

#[tokio::test]
async fn prompt_none_without_a_session_is_login_required() {
    let h = Harness::start().await;
    let (verifier, nonce, state) = h.secrets();
    let mut params = h.authorize_params(&verifier, &nonce, &state);
    params.push(("prompt".into(), "none".into()));
    let resp = h.get(&h.authorize_target(&params)).await;
    let back = resp.redirect_params();
    assert_eq!(
        back.get("error").map(String::as_str),
        Some("login_required")
    );
    assert_eq!(back.get("state"), Some(&state));

    // With a session it succeeds silently; after end_provider_sessions it no longer does.
    let login = h.login("bob").await;
    let ok = h
        .get_with_cookie(&h.authorize_target(&params), login.cookie.as_deref())
        .await;
    assert!(ok.redirect_params().contains_key("code"));
    h.idp.end_provider_sessions();
    let again = h
        .get_with_cookie(&h.authorize_target(&params), login.cookie.as_deref())
        .await;
    assert_eq!(
        again.redirect_params().get("error").map(String::as_str),
        Some("login_required")
    );
}

#[tokio::test]
async fn cancel_redirects_with_access_denied_and_the_state() {
    let h = Harness::start().await;
    let (verifier, nonce, state) = h.secrets();
    let mut form = h.authorize_params(&verifier, &nonce, &state);
    form.push(("action".into(), "cancel".into()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let back = h
        .post_form("/authorize", &form, &[])
        .await
        .redirect_params();
    assert_eq!(back.get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(back.get("state"), Some(&state));
    assert!(!back.contains_key("code"));
}

#[tokio::test]
async fn an_unregistered_redirect_uri_or_unknown_client_gets_a_page_never_a_redirect() {
    let h = Harness::start().await;
    let (verifier, nonce, state) = h.secrets();
    for (index, bad) in [
        (1, "http://127.0.0.1:9/_auth/callback/"),
        (1, "http://evil.example/cb"),
        (0, "intruder"),
    ] {
        let mut params = h.authorize_params(&verifier, &nonce, &state);
        params[index].1 = bad.into();
        let resp = h.get(&h.authorize_target(&params)).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            resp.header(http::header::LOCATION).is_none(),
            "{bad}: must not redirect"
        );
        assert!(!resp.text().contains("<script"), "escaped");
    }
}

#[tokio::test]
async fn pkce_s256_is_required() {
    let h = Harness::start().await;
    let (verifier, nonce, state) = h.secrets();
    let without: Vec<(String, String)> = h
        .authorize_params(&verifier, &nonce, &state)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    let mut plain = h.authorize_params(&verifier, &nonce, &state);
    plain[7].1 = "plain".into();
    plain[6].1 = verifier.clone();
    for params in [without, plain] {
        let back = h.get(&h.authorize_target(&params)).await.redirect_params();
        assert_eq!(
            back.get("error").map(String::as_str),
            Some("invalid_request"),
            "{params:?}"
        );
        assert_eq!(back.get("state"), Some(&state));
    }
}

#[tokio::test]
async fn requests_without_openid_or_with_another_response_type_are_refused() {
    let h = Harness::start().await;
    let (verifier, nonce, state) = h.secrets();
    let mut no_openid = h.authorize_params(&verifier, &nonce, &state);
    no_openid[3].1 = "profile email".into();
    let mut token = h.authorize_params(&verifier, &nonce, &state);
    token[2].1 = "token".into();
    for (params, error) in [
        (no_openid, "invalid_scope"),
        (token, "unsupported_response_type"),
    ] {
        let back = h.get(&h.authorize_target(&params)).await.redirect_params();
        assert_eq!(back.get("error").map(String::as_str), Some(error));
    }
}

#[tokio::test]
async fn repeated_parameters_are_refused() {
    let h = Harness::start().await;
    let (verifier, nonce, state) = h.secrets();
    let target = h.authorize_target(&h.authorize_params(&verifier, &nonce, &state));
    let resp = h.get(&format!("{target}&state=again")).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn max_age_makes_an_old_session_sign_in_again() {
    let h = Harness::start().await;
    let login = h.login("alice").await;
    let (verifier, nonce, state) = h.secrets();
    let mut params = h.authorize_params(&verifier, &nonce, &state);
    params.push(("max_age".into(), "60".into()));
    let fresh = h
        .get_with_cookie(&h.authorize_target(&params), login.cookie.as_deref())
        .await;
    assert!(
        fresh.redirect_params().contains_key("code"),
        "a 0 s old session is fresh"
    );
    h.idp.advance_clock(std::time::Duration::from_secs(120));
    let stale = h
        .get_with_cookie(&h.authorize_target(&params), login.cookie.as_deref())
        .await;
    assert_eq!(stale.status, StatusCode::OK, "the sign-in page again");
}
