//! `portcullis explain` (SPEC §1), run as a real process: a policy unit-tested
//! the way CI would, by exit code (0 allowed, 2 refused, 1 unusable input).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROUTES: &str = r#"
[[route]]
name = "health"
path = "/health"
auth = "public"

[[route]]
name = "blocked"
path = "/internal"
auth = "deny"

[[route]]
name = "admin"
path = "/admin"
roles_any = ["admin"]

[[route]]
name = "api-writes"
host = "api.app.test"
methods = ["POST"]
auth = "bearer"

[policy]
default = "login"
"#;

struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("portcullis.toml");
        let toml = crate::support::base_config("http://127.0.0.1:8080", ROUTES);
        std::fs::write(&config, toml).expect("write config");
        let fixture = Fixture { dir, config };
        fixture.claims("admin.json", r#"{"sub":"alice","roles":["admin"]}"#);
        fixture.claims("user.json", r#"{"sub":"bob","roles":"user"}"#);
        fixture
    }

    fn claims(&self, name: &str, json: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, json).expect("write claims");
        path
    }

    fn explain(&self, args: &[&str]) -> Output {
        self.explain_with(&self.config, args)
    }

    fn explain_with(&self, config: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        cmd.env_remove("PORTCULLIS_CONFIG")
            .current_dir(self.dir.path());
        cmd.arg("explain").arg("--config").arg(config).args(args);
        cmd.output().expect("runs")
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn expect(out: &Output, code: i32, needles: &[&str]) {
    let text = stdout(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{text}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn explain_public_route_is_allowed_without_identity() {
    let f = Fixture::new();
    let out = f.explain(&["GET", "http://app.test/health"]);
    expect(
        &out,
        0,
        &["route[0] \"health\"", "public → forwarded without identity"],
    );
}

#[test]
fn explain_deny_route_is_403() {
    let f = Fixture::new();
    let out = f.explain(&["--claims", "admin.json", "GET", "/internal/x"]);
    expect(&out, 2, &["route[1] \"blocked\"", "DENY (403)"]);
}

#[test]
fn explain_role_route_allows_admin_and_refuses_user() {
    let f = Fixture::new();
    let admin = f.explain(&["--claims", "admin.json", "GET", "/admin/users"]);
    expect(
        &admin,
        0,
        &["route[2] \"admin\"", "path = \"/admin\"", "ALLOW"],
    );
    let user = f.explain(&["--claims", "user.json", "GET", "/admin/users"]);
    expect(
        &user,
        2,
        &[
            "roles [\"user\"]",
            "DENY (403): needs one of the roles [\"admin\"]",
        ],
    );
}

#[test]
fn explain_login_without_claims_is_redirect_or_401() {
    let f = Fixture::new();
    let out = f.explain(&["GET", "/admin"]);
    expect(
        &out,
        2,
        &["DENY (302/401)", "302 to login (browser) / 401 (API)"],
    );
}

#[test]
fn explain_unmatched_request_gets_policy_default() {
    let f = Fixture::new();
    let out = f.explain(&["--claims", "user.json", "GET", "/anything"]);
    expect(
        &out,
        0,
        &["rule      policy.default", "auth    login", "ALLOW"],
    );
    let anonymous = f.explain(&["GET", "/anything"]);
    expect(&anonymous, 2, &["policy.default"]);
}

#[test]
fn explain_prefix_matches_whole_segments_only() {
    let f = Fixture::new();
    let out = f.explain(&["--claims", "user.json", "GET", "/administrator"]);
    expect(&out, 0, &["policy.default"]);
    assert!(!stdout(&out).contains("\"admin\""), "{}", stdout(&out));
}

#[test]
fn explain_host_and_method_matchers_choose_the_rule() {
    let f = Fixture::new();
    let post = f.explain(&["POST", "https://api.app.test/v1/items"]);
    expect(
        &post,
        2,
        &[
            "route[3] \"api-writes\"",
            "host = \"api.app.test\"",
            "methods = [\"POST\"]",
            "DENY (401)",
        ],
    );
    let get = f.explain(&["GET", "https://api.app.test/v1/items"]);
    expect(&get, 2, &["policy.default"]);
    let other_host = f.explain(&["POST", "https://app.test/v1/items"]);
    expect(&other_host, 2, &["policy.default"]);
}

#[test]
fn explain_unnormalizable_path_is_400_with_the_reason() {
    let f = Fixture::new();
    for (target, reason) in [
        ("/admin%2Fusers", "encoded slash"),
        ("/../etc/passwd", "above the root"),
        ("/admin/..;/x", "dot segment with parameters"),
    ] {
        let out = f.explain(&["--claims", "admin.json", "GET", target]);
        expect(&out, 2, &["DENY (400)", reason]);
    }
}

#[test]
fn explain_normalizes_before_matching() {
    let f = Fixture::new();
    let out = f.explain(&["--claims", "user.json", "GET", "/x/../%61dmin/"]);
    expect(
        &out,
        2,
        &["path      /admin/", "route[2] \"admin\"", "DENY (403)"],
    );
}

#[test]
fn explain_json_prints_one_object() {
    let f = Fixture::new();
    let out = f.explain(&["--json", "--claims", "user.json", "GET", "/admin"]);
    expect(&out, 2, &[]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one json object");
    assert_eq!(value["rule"]["name"], "admin");
    assert_eq!(value["rule"]["index"], 2);
    assert_eq!(value["decision"]["verdict"], "deny");
    assert_eq!(value["decision"]["status"], serde_json::json!([403]));
    assert_eq!(value["identity"]["roles"], serde_json::json!(["user"]));
}

#[test]
fn explain_unusable_input_exits_1() {
    let f = Fixture::new();
    let bad_claims = f.claims("bad.json", "[1, 2]");
    let out = f.explain(&[
        "--claims",
        bad_claims.to_str().expect("utf-8 path"),
        "GET",
        "/",
    ]);
    expect(&out, 1, &[]);
    let missing = f.explain(&["--claims", "missing.json", "GET", "/"]);
    expect(&missing, 1, &[]);
    let bad_config = f.dir.path().join("bad.toml");
    std::fs::write(&bad_config, "[server]\nlisten = \"nope\"\n").expect("write");
    let out = f.explain_with(&bad_config, &["GET", "/"]);
    expect(&out, 1, &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listen"));
}

/// The rule keys of SPEC §3 beyond roles, and the route's upstream (SPEC §11),
/// through the real binary: which key decided, and with `--client`, the
/// source address.
#[test]
fn explain_names_the_key_that_decided_and_the_routes_upstream() {
    let f = Fixture::new();
    let extra = r#"
[upstreams.reports]
url = "http://reports.internal:9000"

[[route]]
name = "office"
path = "/office"
source_ips = ["10.0.0.0/8"]
upstream = "reports"
strip_prefix = "/office"
claims = { department = ["eng"] }
"#;
    let config = f.dir.path().join("apps.toml");
    let toml = crate::support::base_config("http://127.0.0.1:8080", extra);
    std::fs::write(&config, toml).expect("write config");
    let eng = f.claims("eng.json", r#"{"sub":"alice","department":"eng"}"#);
    let sales = f.claims("sales.json", r#"{"sub":"bob","department":"sales"}"#);
    let (eng, sales) = (eng.to_string_lossy(), sales.to_string_lossy());
    let run = |claims: &str, client: &str| {
        f.explain_with(
            &config,
            &[
                "--claims",
                claims,
                "--client",
                client,
                "GET",
                "http://app.test/office/x",
            ],
        )
    };
    expect(
        &run(&eng, "10.1.2.3"),
        0,
        &["upstream reports (http://reports.internal:9000/)", "ALLOW"],
    );
    expect(
        &run(&sales, "10.1.2.3"),
        2,
        &[
            "claim \"department\" is \"sales\"",
            "decided by route[0].claims",
        ],
    );
    expect(
        &run(&eng, "203.0.113.9"),
        2,
        &["not in source_ips", "decided by route[0].source_ips"],
    );
    let without_client = f.explain_with(
        &config,
        &["--claims", &eng, "GET", "http://app.test/office/x"],
    );
    expect(
        &without_client,
        0,
        &["source_ips cannot be judged without --client"],
    );
}

/// SPEC §12: the claims' `iss` picks the provider; its `roles_claim` reads the
/// roles, and a route that does not admit it refuses.
#[test]
fn explain_judges_claims_as_their_providers() {
    let f = Fixture::new();
    let extra = r#"
[providers.partners]
issuer = "https://idp.partner.example"
client_id = "portcullis"
client_secret = "s"
roles_claim = "groups"

[[route]]
name = "admin"
path = "/admin"
roles_any = ["admin"]

[[route]]
name = "partners"
path = "/partners"
providers = ["partners", "default"]
roles_any = ["admin"]
"#;
    let config = f.dir.path().join("providers.toml");
    let toml = crate::support::base_config("http://127.0.0.1:8080", extra);
    std::fs::write(&config, toml).expect("write config");
    let partner = f.claims(
        "partner.json",
        r#"{"iss":"https://idp.partner.example","sub":"p1","groups":["admin"],"roles":["nobody"]}"#,
    );
    let partner = partner.to_string_lossy();
    let run = |path: &str| {
        f.explain_with(
            &config,
            &[
                "--claims",
                &partner,
                "GET",
                &format!("http://app.test{path}"),
            ],
        )
    };
    expect(&run("/partners"), 0, &["provider \"partners\"", "ALLOW"]);
    expect(
        &run("/admin"),
        2,
        &["provider \"partners\"", "does not admit"],
    );
}
