//! The provider playing a third-party OAuth 2.0 service for connected accounts
//! (SPEC §13): plain OAuth clients without `openid`, opaque access tokens, the
//! protected `/api/me` resource, revocation, and the "refused" and "down"
//! switches a proxy test needs.

use std::time::Duration;

use http::{header, Method, StatusCode};
use portcullis_devidp::{AccessTokenFormat, Client, ClientAuth, Config, Misbehaviour};
use serde_json::{json, Value};

use crate::support::{self, basic, challenge, hidden_fields, Harness, Resp, REDIRECT};

/// A GitHub-like client: plain OAuth 2.0, opaque tokens, client_secret_basic.
const OPAQUE: &str = "github";
const OPAQUE_SECRET: &str = "github-secret";
/// A plain OAuth 2.0 client with JWT access tokens and client_secret_post.
const JWT: &str = "jwt-api";
const JWT_SECRET: &str = "jwt api secret";
const SCOPE: &str = "repo read:user";

/// The standard test clients plus the two third-party clients.
fn config() -> Config {
    let mut opaque = Client::new(OPAQUE, OPAQUE_SECRET, REDIRECT);
    opaque.is_openid_required = false;
    opaque.access_token_format = AccessTokenFormat::Opaque;
    let mut jwt = Client::new(JWT, JWT_SECRET, REDIRECT);
    jwt.is_openid_required = false;
    jwt.auth_method = ClientAuth::Post;
    let mut config = support::config();
    config.clients.extend([opaque, jwt]);
    config
}

async fn harness() -> Harness {
    Harness::with(config()).await
}

/// Signs alice in for `client_id` asking for `scope`, with state and PKCE but
/// no nonce, as a plain OAuth 2.0 client does; returns the redirect's
/// parameters and the PKCE verifier.
async fn authorize(
    h: &Harness,
    client_id: &str,
    scope: &str,
) -> (std::collections::HashMap<String, String>, String) {
    let (verifier, _, state) = h.secrets();
    let params: Vec<(String, String)> = vec![
        ("client_id".into(), client_id.into()),
        ("redirect_uri".into(), REDIRECT.into()),
        ("response_type".into(), "code".into()),
        ("scope".into(), scope.into()),
        ("state".into(), state.clone()),
        ("code_challenge".into(), challenge(&verifier)),
        ("code_challenge_method".into(), "S256".into()),
    ];
    let page = h.get(&h.authorize_target(&params)).await;
    assert_eq!(page.status, StatusCode::OK, "sign-in page: {}", page.text());
    let mut form = hidden_fields(&page.text());
    form.push(("user".into(), "alice".into()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let back = h
        .post_form("/authorize", &form, &[])
        .await
        .redirect_params();
    assert_eq!(back.get("state"), Some(&state));
    (back, verifier)
}

/// A token (or revocation) request as `client_id`, authenticated the way that
/// client is registered: basic for [`OPAQUE`], post for [`JWT`].
async fn as_client(h: &Harness, path: &str, client_id: &str, form: &[(&str, &str)]) -> Resp {
    match client_id {
        OPAQUE => {
            let auth = basic(OPAQUE, OPAQUE_SECRET);
            h.post_form(path, form, &[("authorization", &auth)]).await
        }
        JWT => {
            let mut form = form.to_vec();
            form.extend([("client_id", JWT), ("client_secret", JWT_SECRET)]);
            h.post_form(path, &form, &[]).await
        }
        other => panic!("no credentials for {other}"),
    }
}

/// Runs the whole code flow for `client_id` and returns the token response.
async fn connect(h: &Harness, client_id: &str, scope: &str) -> Value {
    let (back, verifier) = authorize(h, client_id, scope).await;
    let code = back.get("code").expect("code");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let resp = as_client(h, "/token", client_id, &form).await;
    assert_eq!(
        resp.status,
        StatusCode::OK,
        "token response: {}",
        resp.text()
    );
    resp.json()
}

async fn refresh(h: &Harness, client_id: &str, refresh_token: &str) -> Resp {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    as_client(h, "/token", client_id, &form).await
}

async fn revoke(h: &Harness, client_id: &str, token: &str) -> Resp {
    as_client(h, "/revoke", client_id, &[("token", token)]).await
}

async fn api_me(h: &Harness, token: &str) -> Resp {
    let auth = format!("Bearer {token}");
    h.send(Method::GET, "/api/me", &[("authorization", &auth)], None)
        .await
}

fn text<'a>(body: &'a Value, name: &str) -> &'a str {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {body}"))
}

/// 401 with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1).
fn assert_invalid_token(resp: &Resp, what: &str) {
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{what}");
    assert_eq!(
        resp.header(header::WWW_AUTHENTICATE),
        Some("Bearer error=\"invalid_token\""),
        "{what}"
    );
}

#[tokio::test]
async fn a_plain_oauth_client_without_openid_gets_no_id_token_and_its_scope_back() {
    let h = harness().await;
    let (back, _) = authorize(&h, OPAQUE, SCOPE).await;
    assert_eq!(back.get("iss"), Some(&h.idp.issuer()), "RFC 9207 iss");

    let tokens = connect(&h, OPAQUE, SCOPE).await;
    assert!(tokens.get("id_token").is_none(), "no openid, no ID token");
    assert_eq!(tokens["scope"], SCOPE);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 300);
    assert!(text(&tokens, "refresh_token").len() >= 32);
    let access = text(&tokens, "access_token");
    assert!(!access.contains('.'), "opaque, not a JWT: {access}");

    let with_openid = connect(&h, OPAQUE, "openid repo").await;
    let id_token = text(&with_openid, "id_token");
    let claims = h.decode(id_token, OPAQUE).await.expect("ID token verifies");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(with_openid["scope"], "openid repo");
}

#[tokio::test]
async fn a_client_that_requires_openid_still_refuses_a_scope_without_it() {
    let h = harness().await;
    let (verifier, _, state) = h.secrets();
    let mut params = h.authorize_params(&verifier, "n", &state);
    params[3].1 = SCOPE.into();
    let back = h.get(&h.authorize_target(&params)).await.redirect_params();
    assert_eq!(back.get("error").map(String::as_str), Some("invalid_scope"));
}

#[tokio::test]
async fn api_me_answers_for_a_live_opaque_token_and_refuses_it_once_revoked() {
    let h = harness().await;
    let tokens = connect(&h, OPAQUE, SCOPE).await;
    let access = text(&tokens, "access_token");
    let resp = api_me(&h, access).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(
        resp.json(),
        json!({
            "sub": "alice",
            "client_id": OPAQUE,
            "scopes": ["repo", "read:user"],
            "username": "alice",
            "name": "Alice Liddell",
        })
    );
    assert_eq!(
        h.userinfo(access).await.status,
        StatusCode::OK,
        "userinfo takes opaque tokens too"
    );

    let revoked = revoke(&h, OPAQUE, access).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(h.idp.stats().revocations, 1);
    assert_invalid_token(&api_me(&h, access).await, "revoked opaque token");
    let stats = h.idp.stats();
    assert_eq!((stats.api_calls, stats.api_failures), (2, 1));
}

#[tokio::test]
async fn an_opaque_token_stops_working_when_it_expires() {
    let h = harness().await;
    let tokens = connect(&h, OPAQUE, SCOPE).await;
    let access = text(&tokens, "access_token");
    h.idp.advance_clock(Duration::from_secs(299));
    assert_eq!(api_me(&h, access).await.status, StatusCode::OK);
    h.idp.advance_clock(Duration::from_secs(2));
    assert_invalid_token(&api_me(&h, access).await, "expired opaque token");
}

#[tokio::test]
async fn api_me_answers_for_jwt_access_tokens_and_refuses_anything_else() {
    let h = harness().await;
    let tokens = connect(&h, JWT, SCOPE).await;
    assert!(tokens.get("id_token").is_none());
    let access = text(&tokens, "access_token");
    let claims = h.decode(access, JWT).await.expect("an RFC 9068 JWT");
    assert_eq!(claims["scope"], SCOPE);
    let me = api_me(&h, access).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    assert_eq!(me.json()["client_id"], JWT);
    assert_eq!(me.json()["scopes"], json!(["repo", "read:user"]));

    let for_tests = h.idp.access_token_for("bob", support::CLIENT);
    let me = api_me(&h, &for_tests).await.json();
    assert_eq!(
        (
            me["sub"].clone(),
            me["username"].clone(),
            me["scopes"].clone()
        ),
        (
            json!("bob"),
            json!("bob"),
            json!(["openid", "profile", "email"])
        )
    );

    let (_, oidc) = h.tokens("alice").await;
    let foreign = h.idp.sign_jwt(
        json!({"typ": "at+jwt"}),
        json!({"iss": "https://elsewhere.example", "sub": "alice", "client_id": JWT,
               "exp": u64::MAX / 2, "jti": "x"}),
    );
    for (what, bad) in [
        ("not a token", "garbage"),
        ("an ID token", text(&oidc, "id_token")),
        ("another issuer", foreign.as_str()),
        ("a corrupted JWT", &access[..access.len() - 2]),
    ] {
        assert_invalid_token(&api_me(&h, bad).await, what);
    }
    let none = h.get("/api/me").await;
    assert_invalid_token(&none, "no Authorization header");
    let stats = h.idp.stats();
    assert_eq!((stats.api_calls, stats.api_failures), (7, 5));

    let post = h.send(Method::POST, "/api/me", &[], None).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_plain_client_refresh_rotates_and_keeps_the_granted_scope() {
    let h = harness().await;
    for client_id in [OPAQUE, JWT] {
        let tokens = connect(&h, client_id, SCOPE).await;
        let r0 = text(&tokens, "refresh_token").to_owned();
        let resp = refresh(&h, client_id, &r0).await;
        assert_eq!(resp.status, StatusCode::OK, "{client_id}: {}", resp.text());
        let second = resp.json();
        let r1 = text(&second, "refresh_token").to_owned();
        assert_ne!(r0, r1, "{client_id}: rotated");
        assert_eq!(second["scope"], SCOPE, "{client_id}: scope remembered");
        assert!(second.get("id_token").is_none(), "{client_id}");
        let access = text(&second, "access_token").to_owned();
        assert_eq!(api_me(&h, &access).await.status, StatusCode::OK);

        let reuse = refresh(&h, client_id, &r0).await;
        assert_eq!(reuse.json()["error"], "invalid_grant", "{client_id}");
        assert_invalid_token(
            &api_me(&h, &access).await,
            "reuse revokes the family, access tokens included",
        );
        assert_eq!(
            refresh(&h, client_id, &r1).await.json()["error"],
            "invalid_grant"
        );
    }
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family_and_ends_the_grant() {
    let h = harness().await;
    let tokens = connect(&h, OPAQUE, SCOPE).await;
    let (access, refresh_token) = (
        text(&tokens, "access_token"),
        text(&tokens, "refresh_token"),
    );
    assert_eq!(h.idp.live_grants("alice", OPAQUE), 1);
    assert_eq!(h.idp.live_grants("alice", JWT), 0);

    let resp = revoke(&h, OPAQUE, refresh_token).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(h.idp.stats().revocations, 1);
    assert_eq!(h.idp.live_grants("alice", OPAQUE), 0);
    assert_invalid_token(&api_me(&h, access).await, "family revoked");
    let refused = refresh(&h, OPAQUE, refresh_token).await;
    assert_eq!(refused.json()["error"], "invalid_grant");

    // A JWT access token can be revoked on its own, by its own client only.
    let jwt_tokens = connect(&h, JWT, SCOPE).await;
    let jwt_access = text(&jwt_tokens, "access_token");
    revoke(&h, OPAQUE, jwt_access).await;
    assert_eq!(h.idp.stats().revocations, 1, "not the revoker's token");
    assert_eq!(api_me(&h, jwt_access).await.status, StatusCode::OK);
    revoke(&h, JWT, jwt_access).await;
    assert_eq!(h.idp.stats().revocations, 2);
    assert_invalid_token(&api_me(&h, jwt_access).await, "revoked JWT");
    assert_eq!(
        h.idp.live_grants("alice", JWT),
        1,
        "revoking an access token leaves the refresh token"
    );
}

#[tokio::test]
async fn refusing_refreshes_for_one_client_gives_it_invalid_grant_and_spares_the_others() {
    let h = harness().await;
    let third_party = connect(&h, OPAQUE, SCOPE).await;
    let refresh_token = text(&third_party, "refresh_token");
    let (_, login) = h.tokens("alice").await;

    h.idp
        .set_misbehaviour_for(OPAQUE, Misbehaviour::RefreshFails);
    let refused = refresh(&h, OPAQUE, refresh_token).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json()["error"], "invalid_grant");
    let own = h.refresh(text(&login, "refresh_token")).await;
    assert_eq!(own.status, StatusCode::OK, "the login client is spared");

    h.idp.set_misbehaviour(Misbehaviour::RefreshFails);
    let own = h.refresh(text(&own.json(), "refresh_token")).await;
    assert_eq!(
        own.json()["error"],
        "invalid_grant",
        "unscoped: every client"
    );

    h.idp.clear_misbehaviour();
    let healed = refresh(&h, OPAQUE, refresh_token).await;
    assert_eq!(
        healed.status,
        StatusCode::OK,
        "the token itself stayed valid"
    );
}

#[tokio::test]
async fn a_down_provider_answers_503_at_token_and_revoke_for_the_client_it_is_down_for() {
    let h = harness().await;
    let third_party = connect(&h, OPAQUE, SCOPE).await;
    let refresh_token = text(&third_party, "refresh_token");
    let (_, login) = h.tokens("alice").await;

    h.idp
        .set_misbehaviour_for(OPAQUE, Misbehaviour::ServiceUnavailable);
    for resp in [
        refresh(&h, OPAQUE, refresh_token).await,
        revoke(&h, OPAQUE, refresh_token).await,
    ] {
        assert_eq!(
            resp.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            resp.text()
        );
        assert!(resp.status.is_server_error());
        assert_eq!(resp.header(header::RETRY_AFTER), Some("1"));
        assert!(
            resp.header(header::CONTENT_TYPE)
                .is_some_and(|c| c.starts_with("text/html")),
            "a load balancer's page, not OAuth JSON"
        );
    }
    assert_eq!(h.idp.stats().revocations, 0, "nothing revoked while down");
    let own = h.refresh(text(&login, "refresh_token")).await;
    assert_eq!(own.status, StatusCode::OK, "the login client is spared");

    h.idp.clear_misbehaviour();
    assert_eq!(
        refresh(&h, OPAQUE, refresh_token).await.status,
        StatusCode::OK
    );
    let (back, verifier) = authorize(&h, OPAQUE, SCOPE).await;
    h.idp.set_misbehaviour(Misbehaviour::ServiceUnavailable);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", back["code"].as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let exchange = as_client(&h, "/token", OPAQUE, &form).await;
    assert_eq!(
        exchange.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "code exchanges too"
    );
}

#[tokio::test]
async fn the_authorization_server_metadata_is_the_discovery_document() {
    let h = harness().await;
    let oauth = h.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(oauth.status, StatusCode::OK);
    let oauth = oauth.json();
    assert_eq!(oauth["issuer"], json!(h.idp.issuer()));
    assert_eq!(
        oauth["revocation_endpoint"],
        json!(format!("{}/revoke", h.idp.issuer()))
    );
    assert_eq!(
        oauth["authorization_response_iss_parameter_supported"],
        true
    );
    let oidc = h.get("/.well-known/openid-configuration").await.json();
    assert_eq!(oauth, oidc);
    assert_eq!(h.idp.stats().discovery_fetches, 2);
}
