use serde_json::json;

use super::*;

const CONFIG: &str = r#"
[server]
public_url = "https://app.example.com"

[upstream]
url = "http://127.0.0.1:8080"

[oidc]
issuer = "http://127.0.0.1:9/"
client_id = "portcullis"
client_secret = "test-secret"

[[route]]
name = "health"
path = "/health"
auth = "public"

[[route]]
name = "admin"
path = "/admin"
roles_any = ["admin"]

[[route]]
name = "default"
path = "/named-default"
auth = "public"
"#;

fn config() -> Config {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, CONFIG).expect("write");
    crate::config::load_with_env(&path, &[]).expect("valid config")
}

fn run(method: &str, url: &str, claims: Option<Value>) -> Explanation {
    let config = config();
    let request = Request::parse(method, url, &config).expect("parses");
    let claims = claims.and_then(|c| c.as_object().cloned());
    explain(&config, &request, claims.as_ref())
}

#[test]
fn public_route_is_forwarded_without_identity() {
    let out = run("GET", "/health", None);
    assert_eq!(out.decision.verdict, Verdict::Allow);
    assert_eq!(
        out.rule.as_ref().map(|r| r.source.as_str()),
        Some("route[0]")
    );
    assert!(out.is_allowed());
}

#[test]
fn role_route_allows_the_role_and_refuses_others() {
    let admin = run(
        "GET",
        "/admin/x",
        Some(json!({"sub": "a", "roles": ["admin"]})),
    );
    assert_eq!(admin.decision.verdict, Verdict::Allow, "{admin}");
    let user = run(
        "GET",
        "/admin/x",
        Some(json!({"sub": "b", "roles": "user"})),
    );
    assert_eq!(user.decision.verdict, Verdict::Deny);
    assert_eq!(user.decision.status, vec![403]);
    assert!(user
        .decision
        .reason
        .contains(r#"needs one of the roles ["admin"]"#));
}

#[test]
fn login_without_claims_is_a_redirect_or_401() {
    let get = run("GET", "/admin", None);
    assert_eq!(get.decision.status, vec![302, 401]);
    let post = run("POST", "/admin", None);
    assert_eq!(post.decision.status, vec![401]);
}

#[test]
fn claims_without_sub_are_refused_like_a_token_without_subject() {
    let out = run("GET", "/admin", Some(json!({"roles": ["admin"]})));
    assert_eq!(out.decision.status, vec![401]);
}

#[test]
fn unmatched_request_gets_policy_default() {
    let out = run("GET", "https://app.example.com/other", None);
    let rule = out.rule.expect("a rule");
    assert_eq!(rule.source, "policy.default");
    assert_eq!(rule.auth, AuthMode::Login);
}

#[test]
fn a_route_named_default_is_not_taken_for_policy_default() {
    let out = run("GET", "/named-default/x", None);
    assert_eq!(out.rule.map(|r| r.source), Some("route[2]".to_owned()));
}

#[test]
fn unnormalizable_path_is_400_with_the_reason() {
    let out = run("GET", "/admin%2Fx", None);
    assert_eq!(out.decision.status, vec![400]);
    assert!(out.decision.reason.contains("encoded slash"), "{out}");
    assert!(out.rule.is_none());
}

#[test]
fn own_endpoints_are_not_decided_by_rules() {
    let out = run("GET", "/_auth/jwks.json", None);
    assert_eq!(out.decision.verdict, Verdict::Endpoint);
    assert!(out.is_allowed());
}

#[test]
fn absolute_url_gives_host_and_target() {
    let config = config();
    let r =
        Request::parse("get", "HTTPS://App.Example.com:8443?x=1#frag", &config).expect("parses");
    assert_eq!(r.method, Method::GET);
    assert_eq!(r.host.as_deref(), Some("app.example.com"));
    assert_eq!(r.target, "/?x=1");
    let r = Request::parse("GET", "https://user@evil/x", &config).expect("parses");
    assert_eq!(r.host, None, "userinfo is refused like a bad Host");
    assert!(Request::parse("G E T", "/", &config).is_err());
}
