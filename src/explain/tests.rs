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

// === claims, source_ips, scopes, upstreams ===

const KEYS_CONFIG: &str = r#"
[server]
public_url = "https://app.example.com"

[upstream]
url = "http://127.0.0.1:8080"

[upstreams.reports]
url = "https://reports.internal"

[oidc]
issuer = "http://127.0.0.1:9/"
client_id = "portcullis"
client_secret = "test-secret"

[[route]]
name = "office"
path = "/office"
auth = "public"
source_ips = ["10.0.0.0/8"]

[[route]]
name = "eng"
path = "/eng"
claims = { "department" = ["eng", "ops"], "org.level" = ["senior"] }

[[route]]
name = "reports"
path = "/reports"
auth = "login_or_bearer"
scopes_any = ["reports:read"]
upstream = "reports"
strip_prefix = "/reports"

[[route]]
name = "api"
path = "/api"
auth = "bearer"

[policy]
scopes_all = ["api"]
"#;

fn keys_config() -> Config {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, KEYS_CONFIG).expect("write");
    crate::config::load_with_env(&path, &[]).expect("valid config")
}

/// Explains `method url` under `config`, from `client` (when given).
fn run_keys(
    config: &Config,
    url: &str,
    client: Option<&str>,
    claims: Option<Value>,
) -> Explanation {
    let mut request = Request::parse("GET", url, config).expect("parses");
    request.client = client.map(|c| c.parse().expect("a test address"));
    let claims = claims.and_then(|c| c.as_object().cloned());
    explain(config, &request, claims.as_ref())
}

#[test]
fn source_ips_refuse_a_client_outside_and_admit_one_inside() {
    let config = keys_config();
    let outside = run_keys(&config, "/office", Some("203.0.113.9"), None);
    assert_eq!(outside.decision.status, vec![403], "{outside}");
    assert_eq!(
        outside.decision.reason,
        "client 203.0.113.9 is not in source_ips [10.0.0.0/8] (decided by route[0].source_ips)"
    );
    assert_eq!(
        outside.source.as_ref().map(|s| s.outcome),
        Some(SourceOutcome::Refused)
    );
    let inside = run_keys(&config, "/office", Some("10.1.2.3"), None);
    assert_eq!(inside.decision.verdict, Verdict::Allow, "{inside}");
    assert!(inside
        .to_string()
        .contains("client    10.1.2.3: admitted by source_ips = [\"10.0.0.0/8\"]"));
}

#[test]
fn source_ips_judge_an_ipv4_mapped_client_as_ipv4() {
    let config = keys_config();
    let mapped = run_keys(&config, "/office", Some("::ffff:10.1.2.3"), None);
    assert_eq!(mapped.decision.verdict, Verdict::Allow, "{mapped}");
    let client = mapped.source.and_then(|s| s.client);
    assert_eq!(client, Some("10.1.2.3".parse().expect("an address")));
    let outside = run_keys(&config, "/office", Some("::ffff:203.0.113.9"), None);
    assert_eq!(outside.decision.status, vec![403], "{outside}");
}

#[test]
fn source_ips_without_a_client_are_not_judged_and_the_output_says_so() {
    let config = keys_config();
    let out = run_keys(&config, "/office", None, None);
    assert_eq!(
        out.source.as_ref().map(|s| s.outcome),
        Some(SourceOutcome::NotJudged)
    );
    assert_eq!(out.decision.verdict, Verdict::Allow);
    assert!(
        out.decision.reason.contains("not judged: no --client"),
        "{out}"
    );
    let text = out.to_string();
    assert!(
        text.contains("cannot be judged without --client IP"),
        "{text}"
    );
    assert!(text.contains("source_ips = [\"10.0.0.0/8\"]"), "{text}");
    // Where no source_ips applies, nothing is said about the client.
    let elsewhere = run_keys(&config, "/api", None, None);
    assert!(elsewhere.source.is_none(), "{elsewhere}");
}

#[test]
fn policy_source_ips_refuse_before_the_login_redirect() {
    let mut config = keys_config();
    config.policy.source_ips = vec!["192.168.0.0/16".parse().expect("a cidr")];
    let outsider = run_keys(&config, "/eng", Some("10.1.2.3"), None);
    assert_eq!(outsider.decision.status, vec![403], "not 302: {outsider}");
    assert!(
        outsider
            .decision
            .reason
            .ends_with("(decided by policy.source_ips)"),
        "{outsider}"
    );
    let insider = run_keys(&config, "/eng", Some("192.168.1.1"), None);
    assert_eq!(insider.decision.status, vec![302, 401], "{insider}");
}

#[test]
fn claims_rule_admits_matching_values_and_names_the_claim_that_refuses() {
    let config = keys_config();
    let eng = json!({"sub": "a", "department": "eng", "org": {"level": "senior"}});
    let allowed = run_keys(&config, "/eng", None, Some(eng));
    assert_eq!(allowed.decision.verdict, Verdict::Allow, "{allowed}");
    assert!(allowed
        .to_string()
        .contains(r#"claims  {"department":"eng","org.level":"senior"}"#));

    let sales = json!({"sub": "b", "department": "sales", "org": {"level": "senior"}});
    let refused = run_keys(&config, "/eng", None, Some(sales));
    assert_eq!(refused.decision.status, vec![403]);
    assert_eq!(
        refused.decision.reason,
        r#"claim "department" is "sales", needs one of ["eng", "ops"] (decided by route[1].claims, as a session)"#
    );

    let flat = json!({"sub": "c", "department": "ops"});
    let missing = run_keys(&config, "/eng", None, Some(flat));
    assert!(
        missing
            .decision
            .reason
            .starts_with(r#"claim "org.level" is missing"#),
        "{missing}"
    );
}

#[test]
fn rule_view_shows_the_new_keys_as_written() {
    let config = keys_config();
    let out = run_keys(&config, "/eng", None, None);
    let rule = out.rule.expect("a rule");
    assert!(
        rule.requires.contains(
            &r#"claims = { "department" = ["eng", "ops"], "org.level" = ["senior"] }"#.to_owned()
        ),
        "{:?}",
        rule.requires
    );
    // `[policy]` scopes are not listed on a login route: they never reach a session.
    assert!(!rule.requires.iter().any(|r| r.contains("scopes")));
    let api = run_keys(&config, "/api", None, None).rule.expect("a rule");
    assert!(api
        .requires
        .contains(&r#"policy.scopes_all = ["api"] (bearer tokens only)"#.to_owned()));
}

#[test]
fn login_or_bearer_judges_claims_as_a_bearer_token_and_shows_the_session() {
    let config = keys_config();
    let token = json!({"sub": "a", "scope": "api reports:read"});
    let out = run_keys(&config, "/reports/q1", None, Some(token));
    assert_eq!(out.decision.verdict, Verdict::Allow, "{out}");
    assert!(
        out.decision.reason.ends_with("(as a bearer token)"),
        "{out}"
    );
    let who = out.identity.as_ref().expect("an identity");
    assert_eq!(who.presented_as, Some(Presented::BearerToken));
    assert_eq!(who.scopes, ["api", "reports:read"]);
    let session = out.session_decision.as_ref().expect("a session differs");
    assert_eq!(session.status, vec![403]);
    assert_eq!(
        session.reason,
        r#"a session has no scopes; this route needs scopes_any ["reports:read"] (decided by route[2].scopes_any, as a session)"#
    );
    let text = out.to_string();
    assert!(text.contains("as      a bearer token, scopes"), "{text}");
    assert!(
        text.contains("  as a session: DENY (403): a session has no scopes"),
        "{text}"
    );
}

#[test]
fn route_scopes_refuse_a_token_without_them() {
    let config = keys_config();
    let token = json!({"sub": "a", "scp": ["api", "reports:write"]});
    let out = run_keys(&config, "/reports", None, Some(token));
    assert_eq!(out.decision.status, vec![403], "{out}");
    assert_eq!(
        out.decision.reason,
        r#"token scopes lack one of scopes_any ["reports:read"] (the token has ["api", "reports:write"]) (decided by route[2].scopes_any, as a bearer token)"#
    );
}

#[test]
fn policy_scopes_bind_bearer_tokens_and_not_sessions() {
    let config = keys_config();
    let without_api = json!({"sub": "a", "scope": "reports:read"});
    let refused = run_keys(&config, "/api/x", None, Some(without_api));
    assert_eq!(refused.decision.status, vec![403], "{refused}");
    assert!(
        refused
            .decision
            .reason
            .contains("(decided by policy.scopes_all, as a bearer token)"),
        "{refused}"
    );
    let with_api = json!({"sub": "a", "scope": "api"});
    let allowed = run_keys(&config, "/api/x", None, Some(with_api));
    assert_eq!(allowed.decision.verdict, Verdict::Allow, "{allowed}");
    // The same scope-less claims on a login route: a session, not refused.
    let session = json!({"sub": "a", "department": "eng", "org.level": "senior"});
    let out = run_keys(&config, "/eng", None, Some(session));
    assert_eq!(out.decision.verdict, Verdict::Allow, "{out}");
    let who = out.identity.expect("an identity");
    assert_eq!(who.presented_as, Some(Presented::Session));
}

#[test]
fn explain_prints_the_upstream_of_the_deciding_rule() {
    let config = keys_config();
    let reports = run_keys(&config, "/reports/x", None, None);
    let rule = reports.rule.as_ref().expect("a rule");
    assert_eq!(rule.upstream, "reports");
    assert_eq!(rule.upstream_url, "https://reports.internal/");
    assert_eq!(rule.strip_prefix.as_deref(), Some("/reports"));
    let text = reports.to_string();
    assert!(
        text.contains("  upstream reports (https://reports.internal/)"),
        "{text}"
    );
    assert!(text.contains(r#"strips  "/reports""#), "{text}");

    let fallback = run_keys(&config, "/elsewhere", None, None);
    let rule = fallback.rule.as_ref().expect("a rule");
    assert_eq!(rule.source, "policy.default");
    assert_eq!(rule.upstream, "default");
    assert_eq!(rule.upstream_url, "http://127.0.0.1:8080/");
    assert_eq!(rule.strip_prefix, None);
}
