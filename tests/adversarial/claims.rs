//! Token contents read more generously than they were written: role strings
//! trimmed or case-folded into a role the provider never granted, and an ID
//! token for several audiences accepted by one of them (OIDC Core §3.1.3.7).

use http::StatusCode;
use portcullis_devidp::Misbehaviour;
use serde_json::json;

use crate::bearer::{call, claims, header};
use crate::support::stack::{Stack, StackOptions};

const ROUTES: &str = r#"
[[route]]
name = "api-admin"
path = "/api/admin"
auth = "bearer"
roles_any = ["admin"]

[[route]]
name = "api"
path = "/api"
auth = "bearer"
"#;

/// In a roles array only an exact string element grants a role: `"admin "`,
/// `" admin"`, `"Admin"` are other roles, and other types grant nothing.
// See: issue 18 (role strings are trimmed or folded)
#[tokio::test]
async fn only_an_exact_role_string_grants_the_role() {
    let stack = Stack::start_with(StackOptions {
        extra: ROUTES.to_owned(),
        ..StackOptions::default()
    })
    .await;
    let token_with = |roles: serde_json::Value| {
        let mut c = claims(&stack, "mallory", &[]);
        c["roles"] = roles;
        stack.idp.sign_jwt(header(&stack), c)
    };
    for roles in [
        json!(["admin "]),
        json!([" admin"]),
        json!(["\tadmin"]),
        json!(["admin\n"]),
        json!(["Admin"]),
        json!(["ADMIN"]),
        json!(["admin\u{0}"]),
        json!([["admin"]]),
        json!([{"admin": true}]),
        json!({"admin": true}),
        json!(true),
    ] {
        let page = call(&stack, "/api/admin", &token_with(roles.clone())).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "roles {roles}");
        let page = call(&stack, "/api/x", &token_with(roles.clone())).await;
        assert_eq!(page.status, StatusCode::OK, "roles {roles}: valid token");
    }
    // Positive controls: the exact element, and the documented single-string
    // form, which splits on spaces and commas.
    for roles in [
        json!(["admin"]),
        json!(["user", "admin"]),
        json!("user admin"),
        json!("user,admin"),
    ] {
        let page = call(&stack, "/api/admin", &token_with(roles.clone())).await;
        assert_eq!(page.status, StatusCode::OK, "roles {roles}");
    }
}

/// An ID token that also names an audience the client does not trust is for
/// someone else as much as for us: refused (OIDC Core §3.1.3.7 step 3), even
/// with `azp` present and right. `oidc.trusted_audiences` admits it.
// See: issue 18 (ID token with an extra, untrusted audience)
#[tokio::test]
async fn an_id_token_with_an_extra_untrusted_audience_does_not_log_in() {
    let stack = Stack::start().await;
    for defect in [
        Misbehaviour::ExtraAudienceWithAzp,
        Misbehaviour::ExtraAudienceWithoutAzp,
    ] {
        stack.idp.set_misbehaviour(defect);
        let mut browser = stack.browser();
        let page = browser.sign_in(&stack.url("/x"), "alice").await;
        assert!(page.status.is_client_error(), "{defect:?}: {}", page.status);
        assert!(!browser.jar.contains_key("portcullis"), "{defect:?}");
    }
    stack.idp.clear_misbehaviour();
    assert_eq!(stack.echo.hits(), 0);

    // Positive control: the operator trusts that audience.
    let trusting = Stack::start_with(StackOptions {
        oidc: "trusted_audiences = [\"https://evil.example\"]".to_owned(),
        ..StackOptions::default()
    })
    .await;
    trusting
        .idp
        .set_misbehaviour(Misbehaviour::ExtraAudienceWithAzp);
    let mut browser = trusting.browser();
    let page = browser.sign_in(&trusting.url("/x"), "alice").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.seen().one("x-forwarded-user"), Some("alice"));
}

/// A back-channel logout token is validated like an ID token (Back-Channel
/// Logout §2.6 step 3): one that also names an untrusted audience ends nothing.
// See: issue 18 (ID token with an extra, untrusted audience)
#[tokio::test]
async fn a_logout_token_with_an_extra_untrusted_audience_ends_nothing() {
    let stack = Stack::start().await;
    let mut alice = stack.login("alice").await;
    let now = crate::bearer::now();
    let logout = |aud: serde_json::Value, jti: &str| {
        let claims = json!({
            "iss": stack.idp.issuer(), "aud": aud, "iat": now, "exp": now + 120, "jti": jti,
            "sub": "alice",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        });
        let header = json!({"alg": "RS256", "typ": "logout+jwt", "kid": stack.idp.signing_kid()});
        stack.idp.sign_jwt(header, claims)
    };
    let endpoint = stack.url("/_auth/backchannel-logout");
    let post = |token: String| {
        let endpoint = endpoint.clone();
        async move {
            crate::support::stack::Browser::default()
                .request(
                    http::Method::POST,
                    &endpoint,
                    &[("content-type", "application/x-www-form-urlencoded")],
                    &format!("logout_token={token}"),
                )
                .await
        }
    };
    for (i, aud) in [
        json!(["portcullis", "https://evil.example"]),
        json!(["https://evil.example", "portcullis"]),
        json!(["portcullis", "portcullis2"]),
    ]
    .into_iter()
    .enumerate()
    {
        let page = post(logout(aud.clone(), &format!("extra-{i}"))).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "aud {aud}");
        assert_eq!(
            alice.fetch(&stack.url("/x")).await.status,
            StatusCode::OK,
            "aud {aud}"
        );
    }
    // Positive control: the audience alone ends the session.
    let page = post(logout(json!(["portcullis"]), "only-us")).await;
    assert!(page.status.is_success(), "{}", page.status);
    assert_eq!(
        alice.fetch(&stack.url("/x")).await.status,
        StatusCode::UNAUTHORIZED
    );
}
