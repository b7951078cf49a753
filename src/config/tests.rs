//! Loading, defaults, overrides and every validation rule of SPEC §2.
//!
//! Tests never touch the process environment: overrides go through [`load_with_env`].

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use super::*;

/// 32 random bytes, standard base64 with padding.
const SESSION_KEY: &str = "q7Xo0lJb1Yp6b1cJ1Hj3m0yqkqj2S6cQd8v5yq3mWlQ=";
/// 32 other bytes, URL-safe base64 without padding.
const OLD_SESSION_KEY: &str = "yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc";
const CLIENT_SECRET: &str = "s3cr3t-client-value";
const REDIS_PASSWORD: &str = "hunter2-redis";

/// A directory holding a config file and whatever files it names.
struct Dir(TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().expect("create a temp dir"))
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        fs::write(&path, text).expect("write a temp file");
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// The smallest valid file: the three required things.
const MINIMAL: &str = r#"
[server]
public_url = "https://app.example.com"

[upstream]
url = "http://127.0.0.1:8080"

[oidc]
issuer = "https://idp.example.com/"
client_id = "portcullis"
client_secret = "s3cr3t-client-value"
"#;

fn load_toml(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = Dir::new();
    let path = dir.write("portcullis.toml", text);
    load_with_env(&path, env)
}

fn problems(result: Result<Config, ConfigError>) -> Vec<Problem> {
    match result {
        Ok(_) => panic!("expected the configuration to be refused"),
        Err(ConfigError::Invalid(problems)) => problems,
        Err(other) => panic!("expected problems, got {other}"),
    }
}

fn keys(problems: &[Problem]) -> BTreeSet<String> {
    problems.iter().map(|p| p.key.clone()).collect()
}

fn valid(text: &str, env: &[(&str, &str)]) -> Config {
    match load_toml(text, env) {
        Ok(config) => config,
        Err(err) => panic!("expected a valid configuration, got:\n{err}\n--- file:\n{text}"),
    }
}

// === Loading ===

/// A full configuration: every section, every key that takes a value here.
fn full_toml(dir: &Dir) -> String {
    let cert = dir.write("tls.crt", "cert");
    let key = dir.write("tls.key", "key");
    let ca = dir.write("ca.pem", "ca");
    let signing = dir.write("identity.pem", "signing key");
    format!(
        r#"
[server]
listen = "0.0.0.0:8443"
public_url = "https://app.example.com"
auth_prefix = "/_oauth"
trusted_proxies = ["10.0.0.0/8", "192.168.1.7"]
tls = {{ cert_file = "{cert}", key_file = "{key}" }}
allowed_redirect_hosts = ["docs.example.com", "*.example.org"]
post_logout_url = "https://example.com/bye"
header_read_timeout = "5s"
max_header_bytes = 32768
max_connections = 500
shutdown_grace = "1m"
workers = 2

[admin]
listen = "127.0.0.1:9999"

[upstream]
url = "https://backend.internal:8443/app"
pass_access_token = true
pass_host_header = false
connect_timeout = "2s"
response_timeout = "2m"
ca_file = "{ca}"
pool_idle_timeout = "30s"
pool_max_idle_per_host = 16

[oidc]
issuer = "https://idp.example.com/"
client_id = "portcullis"
client_secret = "{CLIENT_SECRET}"
scopes = ["openid", "profile", "email", "offline_access"]
auth_params = {{ audience = "https://api.example.com", prompt = "login" }}
roles_claim = ["https://app.example.com/roles", "realm_access.roles"]
audience = "https://api.example.com"
clock_leeway = "30s"

[session]
store = "redis"
redis_url = "redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"
secret = "{SESSION_KEY}"
previous_secrets = ["{OLD_SESSION_KEY}"]
cookie_name = "pc"
cookie_domain = "Example.com"
idle_timeout = "30m"
absolute_timeout = "1h30m"
max_sessions = 5000

[[route]]
name = "health"
path = "/health"
auth = "public"

[[route]]
host = "Admin.Example.com"
path = "/admin"
methods = ["get", "POST"]
roles_any = ["admin"]
roles_all = ["staff"]
email_domains = ["Example.com"]

[[route]]
path_regex = "/api/v[0-9]+/.*"
auth = "bearer"

[[route]]
path_exact = "/private/"
auth = "deny"

[policy]
default = "login_or_bearer"
roles_any = ["user"]
roles_all = []
email_domains = ["example.com"]

[identity]
signing_key_file = "{signing}"
ttl = "30s"

[log]
format = "json"
level = "info,portcullis=debug"
"#,
        cert = cert.display(),
        key = key.display(),
        ca = ca.display(),
        signing = signing.display(),
    )
}

/// The same configuration as [`full_toml`], in YAML.
fn full_yaml(dir: &Dir) -> String {
    format!(
        r#"
server:
  listen: "0.0.0.0:8443"
  public_url: https://app.example.com
  auth_prefix: /_oauth
  trusted_proxies: [10.0.0.0/8, 192.168.1.7]
  tls:
    cert_file: {cert}
    key_file: {key}
  allowed_redirect_hosts: [docs.example.com, "*.example.org"]
  post_logout_url: https://example.com/bye
  header_read_timeout: 5s
  max_header_bytes: 32768
  max_connections: 500
  shutdown_grace: 1m
  workers: 2
admin:
  listen: "127.0.0.1:9999"
upstream:
  url: https://backend.internal:8443/app
  pass_access_token: true
  pass_host_header: false
  connect_timeout: 2s
  response_timeout: 2m
  ca_file: {ca}
  pool_idle_timeout: 30s
  pool_max_idle_per_host: 16
oidc:
  issuer: https://idp.example.com/
  client_id: portcullis
  client_secret: {CLIENT_SECRET}
  scopes: [openid, profile, email, offline_access]
  auth_params:
    audience: https://api.example.com
    prompt: login
  roles_claim:
    - https://app.example.com/roles
    - realm_access.roles
  audience: https://api.example.com
  clock_leeway: 30s
session:
  store: redis
  redis_url: "redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"
  secret: "{SESSION_KEY}"
  previous_secrets: ["{OLD_SESSION_KEY}"]
  cookie_name: pc
  cookie_domain: Example.com
  idle_timeout: 30m
  absolute_timeout: 1h30m
  max_sessions: 5000
route:
  - name: health
    path: /health
    auth: public
  - host: Admin.Example.com
    path: /admin
    methods: [get, POST]
    roles_any: [admin]
    roles_all: [staff]
    email_domains: [Example.com]
  - path_regex: "/api/v[0-9]+/.*"
    auth: bearer
  - path_exact: /private/
    auth: deny
policy:
  default: login_or_bearer
  roles_any: [user]
  roles_all: []
  email_domains: [example.com]
identity:
  signing_key_file: {signing}
  ttl: 30s
log:
  format: json
  level: info,portcullis=debug
"#,
        cert = dir.path("tls.crt").display(),
        key = dir.path("tls.key").display(),
        ca = dir.path("ca.pem").display(),
        signing = dir.path("identity.pem").display(),
    )
}

#[test]
fn full_toml_and_yaml_compile_to_equal_configs() {
    let dir = Dir::new();
    let toml_path = dir.write("portcullis.toml", &full_toml(&dir));
    let yaml_path = dir.write("portcullis.yaml", &full_yaml(&dir));
    let yml_path = dir.write("portcullis.yml", &full_yaml(&dir));

    let from_toml = load_with_env(&toml_path, &[]).expect("the TOML file is valid");
    let from_yaml = load_with_env(&yaml_path, &[]).expect("the YAML file is valid");
    let from_yml = load_with_env(&yml_path, &[]).expect("the .yml file is valid");

    assert_eq!(render(&from_toml), render(&from_yaml));
    assert_eq!(render(&from_toml), render(&from_yml));
}

#[test]
fn full_config_compiles_every_value() {
    let dir = Dir::new();
    let path = dir.write("portcullis.toml", &full_toml(&dir));
    let c = load_with_env(&path, &[]).expect("valid");

    assert_eq!(c.server.listen, "0.0.0.0:8443".parse().expect("addr"));
    assert_eq!(c.server.auth_prefix, "/_oauth");
    let proxies: Vec<String> = c
        .server
        .trusted_proxies
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(proxies, ["10.0.0.0/8", "192.168.1.7/32"]);
    assert_eq!(
        c.server.tls.as_ref().map(|t| t.cert_file.clone()),
        Some(dir.path("tls.crt"))
    );
    assert_eq!(
        c.server.allowed_redirect_hosts,
        ["docs.example.com", "*.example.org"]
    );
    assert_eq!(c.server.header_read_timeout, Duration::from_secs(5));
    assert_eq!(c.server.max_header_bytes, 32768);
    assert_eq!(c.server.workers, Some(2));
    assert_eq!(c.upstream.url.as_str(), "https://backend.internal:8443/app");
    assert!(c.upstream.pass_access_token);
    assert!(!c.upstream.pass_host_header);
    assert_eq!(c.upstream.response_timeout, Duration::from_secs(120));
    assert_eq!(c.oidc.client_secret.expose(), CLIENT_SECRET);
    assert_eq!(
        c.oidc.auth_params.get("prompt").map(String::as_str),
        Some("login")
    );
    assert_eq!(
        c.oidc.roles_claim,
        ["https://app.example.com/roles", "realm_access.roles"]
    );
    assert_eq!(c.session.store, SessionStoreKind::Redis);
    assert_eq!(c.session.secrets.len(), 2);
    assert_eq!(c.session.secrets[0].expose(), SESSION_KEY);
    assert_eq!(c.session.cookie_domain.as_deref(), Some("example.com"));
    assert_eq!(c.session.absolute_timeout, Duration::from_secs(90 * 60));

    assert_eq!(c.routes.len(), 4);
    assert_eq!(c.routes[0].name, "health");
    assert_eq!(
        c.routes[1].name, "route[1]",
        "unnamed routes are named by index"
    );
    assert_eq!(
        c.routes[1].host.as_deref(),
        Some("admin.example.com"),
        "hosts are lowercased"
    );
    assert_eq!(
        c.routes[1].methods,
        ["GET", "POST"],
        "methods are uppercased"
    );
    assert_eq!(
        c.routes[1].email_domains,
        ["example.com"],
        "domains are lowercased"
    );
    let regex = c.routes[2].path_regex.as_ref().expect("compiled regex");
    assert!(regex.is_match("/api/v2/users"));
    assert!(!regex.is_match("/x/api/v2/users"), "anchored at the start");
    assert!(!regex.is_match("/api/v2"), "anchored at the end");
    assert_eq!(c.routes[3].auth, AuthMode::Deny);
    assert_eq!(c.policy.default, AuthMode::LoginOrBearer);
    assert_eq!(c.identity.ttl, Duration::from_secs(30));
    assert_eq!(c.log.format, LogFormat::Json);
}

#[test]
fn defaults_are_those_documented() {
    let c = valid(MINIMAL, &[]);

    assert_eq!(c.server.listen, "0.0.0.0:4180".parse().expect("addr"));
    assert_eq!(c.server.public_url.as_str(), "https://app.example.com/");
    assert_eq!(c.server.auth_prefix, "/_auth");
    assert!(c.server.trusted_proxies.is_empty());
    assert!(c.server.tls.is_none());
    assert!(c.server.allowed_redirect_hosts.is_empty());
    assert_eq!(c.server.post_logout_url, "/");
    assert_eq!(c.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.server.max_header_bytes, 16384);
    assert_eq!(c.server.max_connections, 10_000);
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(30));
    assert_eq!(c.server.workers, None);
    assert_eq!(c.admin.listen, "127.0.0.1:9180".parse().expect("addr"));
    assert!(!c.upstream.pass_access_token);
    assert!(c.upstream.pass_host_header);
    assert_eq!(c.upstream.connect_timeout, Duration::from_secs(5));
    assert_eq!(c.upstream.response_timeout, Duration::from_secs(60));
    assert_eq!(c.upstream.ca_file, None);
    assert_eq!(c.upstream.pool_idle_timeout, Duration::from_secs(90));
    assert_eq!(c.upstream.pool_max_idle_per_host, 256);
    assert_eq!(c.oidc.scopes, ["openid", "profile", "email"]);
    assert!(c.oidc.auth_params.is_empty());
    assert_eq!(c.oidc.roles_claim, ["roles"]);
    assert_eq!(c.oidc.audience, None);
    assert_eq!(c.oidc.clock_leeway, Duration::from_secs(60));
    assert_eq!(c.session.store, SessionStoreKind::Memory);
    assert!(c.session.redis_url.is_none());
    assert!(c.session.secrets.is_empty());
    assert_eq!(c.session.cookie_name, "portcullis");
    assert_eq!(c.session.cookie_domain, None);
    assert_eq!(c.session.idle_timeout, Duration::from_secs(3600));
    assert_eq!(c.session.absolute_timeout, Duration::from_secs(12 * 3600));
    assert_eq!(c.session.max_sessions, 100_000);
    assert!(c.routes.is_empty());
    assert_eq!(c.policy.default, AuthMode::Login);
    assert!(c.policy.roles_any.is_empty() && c.policy.roles_all.is_empty());
    assert!(c.policy.email_domains.is_empty());
    assert_eq!(c.identity.signing_key_file, None);
    assert_eq!(c.identity.ttl, Duration::from_secs(60));
    assert_eq!(c.log.format, LogFormat::Auto);
    assert_eq!(c.log.level, "info");
}

#[test]
fn required_keys_are_reported_when_missing() {
    let found = keys(&problems(load_toml("", &[])));
    let expected = [
        "server.public_url",
        "upstream.url",
        "oidc.issuer",
        "oidc.client_id",
        "oidc.client_secret",
    ];
    assert_eq!(found, expected.iter().map(|k| k.to_string()).collect());
}

#[test]
fn unknown_extension_is_an_error_naming_the_file() {
    let dir = Dir::new();
    let path = dir.write("portcullis.json", "{}");
    let err = load_with_env(&path, &[]).expect_err("json is not a config format");
    assert!(matches!(err, ConfigError::UnknownFormat { .. }));
    assert!(err.to_string().contains("portcullis.json"), "{err}");
}

#[test]
fn unreadable_config_file_is_an_error_naming_the_path() {
    let dir = Dir::new();
    let path = dir.path("missing.toml");
    let err = load_with_env(&path, &[]).expect_err("no such file");
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.problems()[0].contains("missing.toml"),
        "{:?}",
        err.problems()
    );
}

#[test]
fn syntax_errors_name_the_line_without_quoting_it() {
    let text = format!("{MINIMAL}\n[session]\nsecret = \"{SESSION_KEY}\n");
    let found = problems(load_toml(&text, &[]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].key.ends_with("portcullis.toml"), "{found:?}");
    assert!(found[0].message.contains("line 14"), "{found:?}");
    assert!(!found[0].message.contains(SESSION_KEY), "{found:?}");

    let dir = Dir::new();
    let yaml = dir.write("bad.yaml", "server: [unclosed\n");
    let found = problems(load_with_env(&yaml, &[]));
    assert!(found[0].message.starts_with("invalid YAML"), "{found:?}");
}

// === Environment overrides ===

#[test]
fn env_overrides_a_key_the_file_sets() {
    let env = [
        ("PORTCULLIS_SERVER__LISTEN", "127.0.0.1:5000"),
        ("PORTCULLIS_OIDC__CLIENT_SECRET", "from-env"),
    ];
    let c = valid(MINIMAL, &env);
    assert_eq!(c.server.listen, "127.0.0.1:5000".parse().expect("addr"));
    assert_eq!(c.oidc.client_secret.expose(), "from-env");
}

#[test]
fn env_sets_nested_keys_and_keys_of_sections_the_file_lacks() {
    let env = [
        (
            "PORTCULLIS_OIDC__AUTH_PARAMS__AUDIENCE",
            "https://api.example.com",
        ),
        ("PORTCULLIS_LOG__LEVEL", "debug"),
        ("PORTCULLIS_IDENTITY__TTL", "30s"),
    ];
    let c = valid(MINIMAL, &env);
    assert_eq!(
        c.oidc.auth_params.get("audience").map(String::as_str),
        Some("https://api.example.com")
    );
    assert_eq!(c.log.level, "debug");
    assert_eq!(c.identity.ttl, Duration::from_secs(30));
}

#[test]
fn env_values_are_text_except_lists_numbers_and_flags_where_expected() {
    let env = [
        ("PORTCULLIS_SERVER__MAX_CONNECTIONS", "500"),
        ("PORTCULLIS_UPSTREAM__PASS_ACCESS_TOKEN", "true"),
        ("PORTCULLIS_OIDC__SCOPES", "[openid, email]"),
        ("PORTCULLIS_OIDC__CLIENT_ID", "0123"),
        ("PORTCULLIS_OIDC__CLIENT_SECRET", "007"),
    ];
    let c = valid(MINIMAL, &env);
    assert_eq!(c.server.max_connections, 500);
    assert!(c.upstream.pass_access_token);
    assert_eq!(c.oidc.scopes, ["openid", "email"]);
    assert_eq!(
        c.oidc.client_id, "0123",
        "a numeric-looking id keeps its leading zero"
    );
    assert_eq!(c.oidc.client_secret.expose(), "007");
}

#[test]
fn env_prefix_is_matched_without_regard_to_case_and_portcullis_config_is_ignored() {
    let env = [
        ("PORTCULLIS_CONFIG", "/etc/portcullis/portcullis.toml"),
        ("portcullis_log__level", "warn"),
        ("OTHER_LOG__LEVEL", "error"),
    ];
    let c = valid(MINIMAL, &env);
    assert_eq!(c.log.level, "warn");
}

#[test]
fn unknown_key_via_env_is_an_error_naming_the_variable() {
    let found = problems(load_toml(
        MINIMAL,
        &[("PORTCULLIS_OIDC__CLIENT_SECRETT", "x")],
    ));
    assert_eq!(keys(&found), ["oidc.client_secrett".to_owned()].into());
    assert!(found[0].message.contains("unknown key"), "{found:?}");
    assert!(
        found[0].message.contains("PORTCULLIS_OIDC__CLIENT_SECRETT"),
        "{found:?}"
    );

    let found = problems(load_toml(MINIMAL, &[("PORTCULLIS_BOGUS__X", "1")]));
    assert_eq!(keys(&found), ["bogus".to_owned()].into());
    assert!(
        found[0].message.contains("PORTCULLIS_BOGUS__X"),
        "{found:?}"
    );
}

#[test]
fn invalid_env_value_names_the_variable() {
    let found = problems(load_toml(MINIMAL, &[("PORTCULLIS_SERVER__LISTEN", "nope")]));
    assert_eq!(keys(&found), ["server.listen".to_owned()].into());
    assert!(found[0].message.contains("\"nope\""), "{found:?}");
    assert!(
        found[0].message.contains("PORTCULLIS_SERVER__LISTEN"),
        "{found:?}"
    );
}

#[test]
fn env_name_that_maps_to_no_key_is_an_error() {
    let found = problems(load_toml(MINIMAL, &[("PORTCULLIS_OIDC____X", "1")]));
    assert_eq!(keys(&found), ["PORTCULLIS_OIDC____X".to_owned()].into());
}

#[test]
fn kubernetes_service_variables_are_not_overrides() {
    // See: e2e report — a Service named `portcullis` injects these into every pod.
    let env = [
        ("PORTCULLIS_PORT", "tcp://10.96.0.12:4180"),
        ("PORTCULLIS_SERVICE_HOST", "10.96.0.12"),
        ("PORTCULLIS_SERVICE_PORT", "4180"),
        ("PORTCULLIS_PORT_4180_TCP_ADDR", "10.96.0.12"),
    ];
    assert!(load_toml(MINIMAL, &env).is_ok());
}

#[test]
fn routes_cannot_be_set_by_env() {
    let found = problems(load_toml(MINIMAL, &[("PORTCULLIS_ROUTE__0__PATH", "/x")]));
    assert_eq!(keys(&found), ["route".to_owned()].into());
}

// === File errors ===

#[test]
fn unknown_key_in_file_is_an_error_naming_it_and_the_file() {
    let text = MINIMAL.replace("client_id =", "client_idd =");
    let found = problems(load_toml(&text, &[]));
    assert!(keys(&found).contains("oidc.client_idd"), "{found:?}");
    let problem = found
        .iter()
        .find(|p| p.key == "oidc.client_idd")
        .expect("named");
    assert!(problem.message.contains("unknown key"), "{problem}");
    assert!(problem.message.contains("portcullis.toml"), "{problem}");
}

#[test]
fn unknown_key_in_a_route_names_the_route() {
    let text = format!("{MINIMAL}\n[[route]]\npath = \"/a\"\n\n[[route]]\npaht = \"/b\"\n");
    let found = problems(load_toml(&text, &[]));
    assert_eq!(keys(&found), ["route[1].paht".to_owned()].into());
}

#[test]
fn unknown_section_is_an_error() {
    let text = format!("{MINIMAL}\n[sesion]\ncookie_name = \"x\"\n");
    assert_eq!(
        keys(&problems(load_toml(&text, &[]))),
        ["sesion".to_owned()].into()
    );
}

#[test]
fn bare_number_duration_is_refused_with_the_expected_shape() {
    let text = format!("{MINIMAL}\n[session]\nidle_timeout = 90\n");
    let found = problems(load_toml(&text, &[]));
    assert_eq!(keys(&found), ["session.idle_timeout".to_owned()].into());
    assert!(
        found[0]
            .message
            .contains(r#"expected a duration such as "90s""#),
        "{found:?}"
    );
}

#[test]
fn durations_accept_humantime_strings() {
    let text = format!(
        "{MINIMAL}\n[session]\nidle_timeout = \"90s\"\nabsolute_timeout = \"1h30m\"\n[identity]\nttl = \"1m\"\n"
    );
    let c = valid(&text, &[]);
    assert_eq!(c.session.idle_timeout, Duration::from_secs(90));
    assert_eq!(c.session.absolute_timeout, Duration::from_secs(5400));
    assert_eq!(c.identity.ttl, Duration::from_secs(60));
}

#[test]
fn wrongly_typed_secret_is_refused_without_showing_it() {
    let text = MINIMAL.replace("\"s3cr3t-client-value\"", "987654321");
    let found = problems(load_toml(&text, &[]));
    assert_eq!(keys(&found), ["oidc.client_secret".to_owned()].into());
    assert!(!found[0].message.contains("987654321"), "{found:?}");
}

#[test]
fn several_problems_are_reported_at_once() {
    let text = r#"
[server]
listen = "nowhere"
public_url = "ftp://app.example.com"
auth_prefix = "auth"

[upstream]
url = "http://127.0.0.1:8080"

[oidc]
issuer = "https://idp.example.com/"
client_id = "portcullis"
client_secret = "x"
scopes = ["profile"]

[session]
idle_timeout = "2h"
absolute_timeout = "1h"

[[route]]
path_regex = "("

[[route]]
path = "/a"
auth = "public"
roles_any = ["admin"]

[identity]
ttl = "5m"

[log]
format = "xml"
"#;
    let found = keys(&problems(load_toml(text, &[])));
    let expected = [
        "server.listen",
        "server.public_url",
        "server.auth_prefix",
        "oidc.scopes",
        "session.absolute_timeout",
        "route[0].path_regex",
        "route[1].roles_any",
        "identity.ttl",
        "log.format",
    ];
    assert_eq!(found, expected.iter().map(|k| k.to_string()).collect());
}

#[test]
fn a_bad_key_does_not_hide_the_other_problems_of_its_section() {
    let text = r#"
[server]
listen = "nowhere"
public_url = 443
max_connections = "many"
colour = "blue"

[upstream]
url = "http://127.0.0.1:8080"

[oidc]
issuer = "https://idp.example.com/"
client_id = "portcullis"
client_secret = "x"
"#;
    let found = problems(load_toml(text, &[]));
    let expected = [
        "server.listen",
        "server.public_url",
        "server.max_connections",
        "server.colour",
    ];
    assert_eq!(
        keys(&found),
        expected.iter().map(|k| k.to_string()).collect()
    );
    // The badly typed public_url is reported once, not again as missing.
    assert_eq!(
        found
            .iter()
            .filter(|p| p.key == "server.public_url")
            .count(),
        1,
        "{found:?}"
    );
}

#[test]
fn problems_display_one_per_line_as_key_colon_message() {
    let err = load_toml("", &[]).expect_err("missing required keys");
    let text = err.to_string();
    assert_eq!(text.lines().count(), err.problems().len());
    assert!(
        text.lines()
            .any(|l| l.starts_with("server.public_url: required")),
        "{text}"
    );
}

// === Secrets from files ===

#[test]
fn secrets_can_be_read_from_files_with_the_trailing_newline_trimmed() {
    let dir = Dir::new();
    let client = dir.write("client", "from-file\n");
    let key = dir.write("key", &format!("{SESSION_KEY}\n"));
    let old = dir.write("old", &format!("{OLD_SESSION_KEY}\n\n{SESSION_KEY}\n"));
    let redis = dir.write("redis", "redis://:pw@10.0.0.1:6379/0\r\n");
    let text = MINIMAL.replace("client_secret = \"s3cr3t-client-value\"", "");
    let text = format!(
        "{text}client_secret_file = \"{}\"\n[session]\nstore = \"redis\"\nsecret_file = \"{}\"\n\
         previous_secrets_file = \"{}\"\nredis_url_file = \"{}\"\n",
        client.display(),
        key.display(),
        old.display(),
        redis.display()
    );
    let c = valid(&text, &[]);
    assert_eq!(c.oidc.client_secret.expose(), "from-file");
    let secrets: Vec<&str> = c.session.secrets.iter().map(Secret::expose).collect();
    assert_eq!(secrets, [SESSION_KEY, OLD_SESSION_KEY, SESSION_KEY]);
    assert_eq!(
        c.session.redis_url.as_ref().map(Secret::expose),
        Some("redis://:pw@10.0.0.1:6379/0")
    );
}

#[test]
fn secret_file_can_come_from_env() {
    let dir = Dir::new();
    let client = dir.write("client", "mounted\n");
    let text = MINIMAL.replace("client_secret = \"s3cr3t-client-value\"", "");
    let path = client.display().to_string();
    let c = valid(&text, &[("PORTCULLIS_OIDC__CLIENT_SECRET_FILE", &path)]);
    assert_eq!(c.oidc.client_secret.expose(), "mounted");
}

#[test]
fn secret_and_secret_file_both_set_is_an_error() {
    let dir = Dir::new();
    let client = dir.write("client", "from-file\n");
    let path = client.display().to_string();
    let found = problems(load_toml(
        MINIMAL,
        &[("PORTCULLIS_OIDC__CLIENT_SECRET_FILE", &path)],
    ));
    assert_eq!(keys(&found), ["oidc.client_secret".to_owned()].into());
    assert!(found[0].message.contains("client_secret_file"), "{found:?}");
}

#[test]
fn unreadable_secret_file_names_the_key_and_the_path() {
    let dir = Dir::new();
    let missing = dir.path("no-such-secret");
    let text = MINIMAL.replace("client_secret = \"s3cr3t-client-value\"", "");
    let text = format!("{text}client_secret_file = \"{}\"\n", missing.display());
    let found = problems(load_toml(&text, &[]));
    assert_eq!(keys(&found), ["oidc.client_secret_file".to_owned()].into());
    assert!(found[0].message.contains("no-such-secret"), "{found:?}");
}

#[test]
fn empty_secret_file_is_an_error() {
    let dir = Dir::new();
    let empty = dir.write("empty", "\n");
    let text = MINIMAL.replace("client_secret = \"s3cr3t-client-value\"", "");
    let text = format!("{text}client_secret_file = \"{}\"\n", empty.display());
    assert_eq!(
        keys(&problems(load_toml(&text, &[]))),
        ["oidc.client_secret_file".to_owned()].into()
    );
}

// === Rendering ===

#[test]
fn render_redacts_every_secret() {
    let dir = Dir::new();
    let path = dir.write("portcullis.toml", &full_toml(&dir));
    let c = load_with_env(&path, &[]).expect("valid");
    let text = render(&c);

    assert!(text.contains("[redacted]"), "{text}");
    for secret in [CLIENT_SECRET, SESSION_KEY, OLD_SESSION_KEY, REDIS_PASSWORD] {
        assert!(!text.contains(secret), "render shows a secret:\n{text}");
    }
}

#[test]
fn render_writes_durations_and_regexes_as_the_file_does() {
    let dir = Dir::new();
    let path = dir.write("portcullis.toml", &full_toml(&dir));
    let text = render(&load_with_env(&path, &[]).expect("valid"));

    assert!(text.contains("idle_timeout = \"30m\""), "{text}");
    assert!(text.contains("absolute_timeout = \"1h30m\""), "{text}");
    assert!(text.contains("header_read_timeout = \"5s\""), "{text}");
    assert!(text.contains("path_regex = \"/api/v[0-9]+/.*\""), "{text}");
    assert!(text.contains("listen = \"0.0.0.0:8443\""), "{text}");
    assert!(text.contains("\"10.0.0.0/8\""), "{text}");
    toml::from_str::<toml::Table>(&text).expect("render produces valid TOML");
}

#[test]
fn render_of_defaults_is_valid_toml() {
    let text = render(&valid(MINIMAL, &[]));
    let table = toml::from_str::<toml::Table>(&text).expect("valid TOML");
    assert!(
        table.contains_key("server") && table.contains_key("log"),
        "{text}"
    );
    assert!(text.contains("client_secret = \"[redacted]\""), "{text}");
}

// === Validation rules ===

/// One case: lines added to one section of [`MINIMAL`] (`route` appends whole tables),
/// plus environment overrides, and the key the problem must be reported under.
struct Case {
    section: &'static str,
    lines: &'static str,
    env: &'static [(&'static str, &'static str)],
    key: &'static str,
}

const fn case(section: &'static str, lines: &'static str, key: &'static str) -> Case {
    Case {
        section,
        lines,
        env: &[],
        key,
    }
}

const fn env_case(env: &'static [(&'static str, &'static str)], key: &'static str) -> Case {
    Case {
        section: "",
        lines: "",
        env,
        key,
    }
}

/// [`MINIMAL`] with `lines` added to `section`; `{file}` becomes an existing readable
/// file and `{missing}` a path that does not exist.
fn with_lines(dir: &Dir, section: &str, lines: &str) -> String {
    let file = dir.write("readable", "contents");
    let lines = lines
        .replace("{file}", &file.display().to_string())
        .replace("{missing}", &dir.path("missing").display().to_string());
    let base = [
        ("server", "public_url = \"https://app.example.com\""),
        ("admin", ""),
        ("upstream", "url = \"http://127.0.0.1:8080\""),
        (
            "oidc",
            "issuer = \"https://idp.example.com/\"\nclient_id = \"portcullis\"\nclient_secret = \"s3cr3t-client-value\"",
        ),
        ("session", ""),
        ("policy", ""),
        ("identity", ""),
        ("log", ""),
    ];
    let mut text = String::new();
    for (name, body) in base {
        text.push_str(&format!("[{name}]\n{body}\n"));
        if name == section {
            text.push_str(&lines);
            text.push('\n');
        }
    }
    if section == "route" {
        text.push_str(&lines);
        text.push('\n');
    }
    text
}

const REFUSED: &[Case] = &[
    // [server]
    case("server", r#"listen = "nope""#, "server.listen"),
    case("server", r#"listen = "localhost:4180""#, "server.listen"),
    case("admin", r#"listen = "0.0.0.0:4180""#, "admin.listen"),
    case("admin", r#"listen = "127.0.0.1:4180""#, "admin.listen"),
    env_case(
        &[("PORTCULLIS_SERVER__PUBLIC_URL", "ftp://app.example.com")],
        "server.public_url",
    ),
    env_case(
        &[("PORTCULLIS_SERVER__PUBLIC_URL", "app.example.com")],
        "server.public_url",
    ),
    env_case(
        &[(
            "PORTCULLIS_SERVER__PUBLIC_URL",
            "https://app.example.com/app",
        )],
        "server.public_url",
    ),
    env_case(
        &[(
            "PORTCULLIS_SERVER__PUBLIC_URL",
            "https://app.example.com/?a=1",
        )],
        "server.public_url",
    ),
    env_case(
        &[(
            "PORTCULLIS_SERVER__PUBLIC_URL",
            "https://app.example.com/#top",
        )],
        "server.public_url",
    ),
    env_case(
        &[(
            "PORTCULLIS_SERVER__PUBLIC_URL",
            "https://me:pw@app.example.com",
        )],
        "server.public_url",
    ),
    env_case(
        &[("PORTCULLIS_SERVER__PUBLIC_URL", "file:///etc/passwd")],
        "server.public_url",
    ),
    case("server", r#"auth_prefix = "_auth""#, "server.auth_prefix"),
    case("server", r#"auth_prefix = "/_auth/""#, "server.auth_prefix"),
    case("server", r#"auth_prefix = "/""#, "server.auth_prefix"),
    case("server", r#"auth_prefix = "/a/../b""#, "server.auth_prefix"),
    case("server", r#"auth_prefix = "/a//b""#, "server.auth_prefix"),
    case("server", r#"auth_prefix = "/a b""#, "server.auth_prefix"),
    case("server", r#"auth_prefix = "/a%2fb""#, "server.auth_prefix"),
    case(
        "server",
        r#"trusted_proxies = ["10.0.0.0/33"]"#,
        "server.trusted_proxies[0]",
    ),
    case(
        "server",
        r#"trusted_proxies = ["10.0.0.0/8", "proxy"]"#,
        "server.trusted_proxies[1]",
    ),
    case(
        "server",
        r#"tls = { cert_file = "{missing}", key_file = "{file}" }"#,
        "server.tls.cert_file",
    ),
    case(
        "server",
        r#"tls = { cert_file = "{file}", key_file = "{missing}" }"#,
        "server.tls.key_file",
    ),
    case(
        "server",
        r#"tls = { key_file = "{file}" }"#,
        "server.tls.cert_file",
    ),
    Case {
        section: "server",
        lines: r#"tls = { cert_file = "{file}", key_file = "{file}" }"#,
        env: &[("PORTCULLIS_SERVER__PUBLIC_URL", "http://app.example.com")],
        key: "server.tls",
    },
    Case {
        section: "session",
        lines: r#"cookie_name = "__Host-portcullis""#,
        env: &[("PORTCULLIS_SERVER__PUBLIC_URL", "http://app.example.com")],
        key: "session.cookie_name",
    },
    Case {
        section: "session",
        lines: r#"cookie_name = "__Secure-portcullis""#,
        env: &[("PORTCULLIS_SERVER__PUBLIC_URL", "http://app.example.com")],
        key: "session.cookie_name",
    },
    case(
        "server",
        r#"allowed_redirect_hosts = ["evil.com/x"]"#,
        "server.allowed_redirect_hosts[0]",
    ),
    case(
        "server",
        r#"allowed_redirect_hosts = ["trusted.example.com:*"]"#,
        "server.allowed_redirect_hosts[0]",
    ),
    case(
        "server",
        r#"allowed_redirect_hosts = ["trusted.example.com:0"]"#,
        "server.allowed_redirect_hosts[0]",
    ),
    case(
        "server",
        r#"allowed_redirect_hosts = ["trusted.example.com:99999"]"#,
        "server.allowed_redirect_hosts[0]",
    ),
    case(
        "server",
        r#"allowed_redirect_hosts = ["trusted.example.com:abc"]"#,
        "server.allowed_redirect_hosts[0]",
    ),
    case(
        "server",
        r#"post_logout_url = "//evil.example""#,
        "server.post_logout_url",
    ),
    case(
        "server",
        r#"post_logout_url = "javascript:alert(1)""#,
        "server.post_logout_url",
    ),
    case(
        "server",
        r#"header_read_timeout = "0s""#,
        "server.header_read_timeout",
    ),
    case(
        "server",
        r#"header_read_timeout = "soon""#,
        "server.header_read_timeout",
    ),
    case(
        "server",
        "max_header_bytes = 100",
        "server.max_header_bytes",
    ),
    case("server", "max_connections = 0", "server.max_connections"),
    case("server", "max_body_bytes = 0", "server.max_body_bytes"),
    case("oidc", r#"jwks_refetch_interval = "often""#, "oidc.jwks_refetch_interval"),
    case("oidc", r#"jwks_refetch_interval = "0s""#, "oidc.jwks_refetch_interval"),
    case("oidc", r#"jwks_refetch_interval = "1ms""#, "oidc.jwks_refetch_interval"),
    case("server", "max_body_bytes = -5", "server.max_body_bytes"),
    case("server", "max_connections = -1", "server.max_connections"),
    case("server", "workers = 0", "server.workers"),
    // [upstream]
    env_case(
        &[("PORTCULLIS_UPSTREAM__URL", "ftp://backend")],
        "upstream.url",
    ),
    env_case(
        &[("PORTCULLIS_UPSTREAM__URL", "http://backend/?q=1")],
        "upstream.url",
    ),
    env_case(
        &[("PORTCULLIS_UPSTREAM__URL", "http://backend/#f")],
        "upstream.url",
    ),
    env_case(
        &[("PORTCULLIS_UPSTREAM__URL", "backend:8080")],
        "upstream.url",
    ),
    case("upstream", r#"ca_file = "{missing}""#, "upstream.ca_file"),
    case(
        "upstream",
        r#"connect_timeout = "0s""#,
        "upstream.connect_timeout",
    ),
    case(
        "upstream",
        r#"response_timeout = "0ms""#,
        "upstream.response_timeout",
    ),
    case(
        "upstream",
        r#"pool_idle_timeout = "0s""#,
        "upstream.pool_idle_timeout",
    ),
    // [oidc]
    env_case(
        &[("PORTCULLIS_OIDC__ISSUER", "http://idp.example.com")],
        "oidc.issuer",
    ),
    env_case(
        &[(
            "PORTCULLIS_OIDC__ISSUER",
            "https://idp.example.com/?tenant=1",
        )],
        "oidc.issuer",
    ),
    env_case(
        &[("PORTCULLIS_OIDC__ISSUER", "https://idp.example.com/#x")],
        "oidc.issuer",
    ),
    env_case(
        &[("PORTCULLIS_OIDC__ISSUER", "http://10.0.0.1:9000")],
        "oidc.issuer",
    ),
    env_case(&[("PORTCULLIS_OIDC__CLIENT_ID", "")], "oidc.client_id"),
    env_case(
        &[("PORTCULLIS_OIDC__CLIENT_SECRET", "")],
        "oidc.client_secret",
    ),
    case("oidc", r#"scopes = ["profile", "email"]"#, "oidc.scopes"),
    case("oidc", r#"scopes = ["openid", "a b"]"#, "oidc.scopes[1]"),
    case(
        "oidc",
        r#"auth_params = { state = "fixed" }"#,
        "oidc.auth_params.state",
    ),
    case(
        "oidc",
        r#"auth_params = { redirect_uri = "https://evil.example" }"#,
        "oidc.auth_params.redirect_uri",
    ),
    case(
        "oidc",
        r#"auth_params = { nonce = "n" }"#,
        "oidc.auth_params.nonce",
    ),
    case(
        "oidc",
        r#"auth_params = { code_challenge_method = "plain" }"#,
        "oidc.auth_params.code_challenge_method",
    ),
    case(
        "oidc",
        r#"auth_params = { response_type = "token" }"#,
        "oidc.auth_params.response_type",
    ),
    case(
        "oidc",
        r#"auth_params = { scope = "openid" }"#,
        "oidc.auth_params.scope",
    ),
    case(
        "oidc",
        r#"auth_params = { client_id = "other" }"#,
        "oidc.auth_params.client_id",
    ),
    case(
        "oidc",
        r#"auth_params = { code_challenge = "c" }"#,
        "oidc.auth_params.code_challenge",
    ),
    case(
        "oidc",
        r#"roles_claim = ["roles", ""]"#,
        "oidc.roles_claim[1]",
    ),
    case("oidc", r#"roles_claim = """#, "oidc.roles_claim[0]"),
    case("oidc", "roles_claim = []", "oidc.roles_claim"),
    case("oidc", "roles_claim = 3", "oidc.roles_claim"),
    case("oidc", r#"audience = """#, "oidc.audience"),
    // [session]
    case("session", r#"store = "disk""#, "session.store"),
    case(
        "session",
        "store = \"redis\"\nsecret = \"q7Xo0lJb1Yp6b1cJ1Hj3m0yqkqj2S6cQd8v5yq3mWlQ=\"",
        "session.redis_url",
    ),
    case(
        "session",
        r#"store = "redis"
redis_url = "redis://127.0.0.1:6379/0""#,
        "session.secret",
    ),
    case(
        "session",
        r#"redis_url = "http://127.0.0.1:6379""#,
        "session.redis_url",
    ),
    case(
        "session",
        r#"redis_url = "redis://10.0.0.1:6379,http://10.0.0.2:6379""#,
        "session.redis_url",
    ),
    case("session", r#"secret = "c2hvcnQ=""#, "session.secret"),
    case(
        "session",
        r#"secret = "not base64 at all!""#,
        "session.secret",
    ),
    case(
        "session",
        r#"secret = "q7Xo0lJb1Yp6b1cJ1Hj3m0yqkqj2S6cQd8v5yq3mWlQ="
previous_secrets = ["c2hvcnQ"]"#,
        "session.previous_secrets[0]",
    ),
    case(
        "session",
        r#"previous_secrets = ["q7Xo0lJb1Yp6b1cJ1Hj3m0yqkqj2S6cQd8v5yq3mWlQ="]"#,
        "session.previous_secrets",
    ),
    case(
        "session",
        "secret = \"q7Xo0lJb1Yp6b1cJ1Hj3m0yqkqj2S6cQd8v5yq3mWlQ=\"\nprevious_secrets = []\nprevious_secrets_file = \"{file}\"",
        "session.previous_secrets",
    ),
    case("session", r#"idle_timeout = "0s""#, "session.idle_timeout"),
    case(
        "session",
        r#"idle_timeout = "2h"
absolute_timeout = "1h""#,
        "session.absolute_timeout",
    ),
    case("session", r#"cookie_name = """#, "session.cookie_name"),
    case(
        "session",
        r#"cookie_name = "my cookie""#,
        "session.cookie_name",
    ),
    case("session", r#"cookie_name = "a;b""#, "session.cookie_name"),
    case("session", r#"cookie_name = "a=b""#, "session.cookie_name"),
    case(
        "session",
        r#"cookie_name = "__Host-pc"
cookie_domain = "example.com""#,
        "session.cookie_name",
    ),
    case(
        "session",
        r#"cookie_domain = "exa mple.com""#,
        "session.cookie_domain",
    ),
    case("session", "max_sessions = 0", "session.max_sessions"),
    // [[route]]
    case("route", "[[route]]\nauth = \"public\"", "route[0]"),
    case("route", "[[route]]\nmethods = []", "route[0]"),
    case(
        "route",
        "[[route]]\npath = \"/a\"\npath_exact = \"/a\"",
        "route[0]",
    ),
    case(
        "route",
        "[[route]]\npath = \"/a\"\npath_regex = \"/a.*\"",
        "route[0]",
    ),
    case(
        "route",
        "[[route]]\npath_exact = \"/a\"\npath_regex = \"/a.*\"",
        "route[0]",
    ),
    case("route", "[[route]]\npath = \"admin\"", "route[0].path"),
    case("route", "[[route]]\npath = \"/admin/\"", "route[0].path"),
    case(
        "route",
        "[[route]]\npath = \"/a/../admin\"",
        "route[0].path",
    ),
    case("route", "[[route]]\npath = \"/a//b\"", "route[0].path"),
    case(
        "route",
        "[[route]]\npath_exact = \"admin\"",
        "route[0].path_exact",
    ),
    case(
        "route",
        "[[route]]\npath_exact = \"/a?b\"",
        "route[0].path_exact",
    ),
    case(
        "route",
        "[[route]]\npath_regex = \"/a(\"",
        "route[0].path_regex",
    ),
    case(
        "route",
        "[[route]]\npath = \"/a\"\nmethods = [\"GET\", \"GE T\"]",
        "route[0].methods[1]",
    ),
    case(
        "route",
        "[[route]]\npath = \"/a\"\nmethods = [\"\"]",
        "route[0].methods[0]",
    ),
    case(
        "route",
        "[[route]]\nhost = \"app.example.com:443\"",
        "route[0].host",
    ),
    case(
        "route",
        "[[route]]\nhost = \"*.*.example.com\"",
        "route[0].host",
    ),
    case(
        "route",
        "[[route]]\nhost = \"app_example.com\"",
        "route[0].host",
    ),
    case("route", "[[route]]\nhost = \"\"", "route[0].host"),
    case(
        "route",
        "[[route]]\npath = \"/a\"\nauth = \"public\"\nroles_any = [\"admin\"]",
        "route[0].roles_any",
    ),
    case(
        "route",
        "[[route]]\npath = \"/a\"\nauth = \"deny\"\nroles_all = [\"admin\"]",
        "route[0].roles_all",
    ),
    case(
        "route",
        "[[route]]\npath = \"/a\"\nauth = \"public\"\nemail_domains = [\"example.com\"]",
        "route[0].email_domains",
    ),
    case(
        "route",
        "[[route]]\npath = \"/a\"\nauth = \"maybe\"",
        "route[0].auth",
    ),
    case(
        "route",
        "[[route]]\npath = \"/a\"\nemail_domains = [\"@example.com\"]",
        "route[0].email_domains[0]",
    ),
    case(
        "route",
        "[[route]]\npath = \"/a\"\nemail_domains = [\"*.example.com\"]",
        "route[0].email_domains[0]",
    ),
    case(
        "route",
        "[[route]]\npath = \"/a\"\nroles_any = [\"\"]",
        "route[0].roles_any[0]",
    ),
    case(
        "route",
        "[[route]]\npath = \"/a\"\nname = \"\"",
        "route[0].name",
    ),
    case(
        "route",
        "[[route]]\nname = \"x\"\npath = \"/a\"\n[[route]]\nname = \"x\"\npath = \"/b\"",
        "route[1].name",
    ),
    case(
        "route",
        "[[route]]\npath = \"/a\"\n[[route]]\nname = \"route[0]\"\npath = \"/b\"",
        "route[1].name",
    ),
    // [policy]
    case("policy", r#"default = "open""#, "policy.default"),
    case(
        "policy",
        r#"email_domains = ["*.example.com"]"#,
        "policy.email_domains[0]",
    ),
    case("policy", r#"roles_all = [""]"#, "policy.roles_all[0]"),
    // [identity]
    case("identity", r#"ttl = "0s""#, "identity.ttl"),
    case("identity", r#"ttl = "61s""#, "identity.ttl"),
    case(
        "identity",
        r#"signing_key_file = "{missing}""#,
        "identity.signing_key_file",
    ),
    // [log]
    case("log", r#"level = "portcullis=loud""#, "log.level"),
    case("log", r#"format = "xml""#, "log.format"),
    // Several apps (SPEC §11) and the rule keys of SPEC §3.
    case("route", "[upstreams.g]\nurl = \"http://svc:hunter2@g.internal\"", "upstreams.g.url"),
    case("route", "[[route]]\npath = \"/g\"\nupstream = \"grafana\"", "route[0].upstream"),
    case("route", "[[route]]\npath = \"/g\"\nupstream = \"\"", "route[0].upstream"),
    case("route", "[upstreams.default]\nurl = \"http://127.0.0.1:1\"", "upstreams.default"),
    case("route", "[upstreams.Grafana]\nurl = \"http://127.0.0.1:1\"", "upstreams.Grafana"),
    case("route", "[upstreams.g]\nurl = \"ftp://x\"", "upstreams.g.url"),
    case("route", "[upstreams.g]\nconnect_timeout = \"1s\"", "upstreams.g.url"),
    case("route", "[upstreams.g]\nurl = \"http://127.0.0.1:1\"\nidentity_preset = \"grafna\"", "upstreams.g.identity_preset"),
    case("route", "[upstreams.g]\nurl = \"http://127.0.0.1:1\"\nnope = 1", "upstreams.g.nope"),
    case("upstream", "identity_preset = \"jira\"", "upstream.identity_preset"),
    case("route", "[[upstream.identity_header]]\nclaim = \"sub\"", "upstream.identity_header[0].name"),
    case("route", "[[upstream.identity_header]]\nname = \"X-U\"", "upstream.identity_header[0].claim"),
    case("route", "[[upstream.identity_header]]\nname = \"X U\"\nclaim = \"sub\"", "upstream.identity_header[0].name"),
    case("route", "[[upstream.identity_header]]\nname = \"Host\"\nclaim = \"sub\"", "upstream.identity_header[0].name"),
    case("route", "[[upstream.identity_header]]\nname = \"Authorization\"\nclaim = \"sub\"", "upstream.identity_header[0].name"),
    case("route", "[[upstream.identity_header]]\nname = \"X-U\"\nclaim = \" sub\"", "upstream.identity_header[0].claim"),
    case("route", "[[upstream.identity_header]]\nname = \"X-U\"\nclaim = \"sub\"\nmulti = \"csv\"", "upstream.identity_header[0].multi"),
    case("route", "[[upstream.identity_header]]\nname = \"X-U\"\nclaim = \"sub\"\nseparator = \"%\"", "upstream.identity_header[0].separator"),
    case("route", "[[upstream.identity_header]]\nname = \"X-U\"\nclaim = \"sub\"\nseparator = \"\"", "upstream.identity_header[0].separator"),
    case("route", "[[upstream.identity_header]]\nname = \"X-U\"\nclaim = \"sub\"\n[[upstream.identity_header]]\nname = \"x-u\"\nclaim = \"email\"", "upstream.identity_header[1].name"),
    case("route", "[[route]]\npath = \"/gh\"\nstrip_prefix = \"/other\"", "route[0].strip_prefix"),
    case("route", "[[route]]\npath = \"/gh\"\nstrip_prefix = \"/g\"", "route[0].strip_prefix"),
    case("route", "[[route]]\npath = \"/gh\"\nstrip_prefix = \"/\"", "route[0].strip_prefix"),
    case("route", "[[route]]\npath = \"/gh\"\nstrip_prefix = \"/gh/\"", "route[0].strip_prefix"),
    case("route", "[[route]]\npath_regex = \"/gh/.*\"\nstrip_prefix = \"/gh\"", "route[0].strip_prefix"),
    case("route", "[[route]]\nhost = \"a.example.com\"\nstrip_prefix = \"/gh\"", "route[0].strip_prefix"),
    case("route", "[[route]]\npath = \"/a\"\nclaims = { department = [] }", "route[0].claims.department"),
    case("route", "[[route]]\npath = \"/a\"\nclaims = { department = [\"\"] }", "route[0].claims.department"),
    case("route", "[[route]]\npath = \"/a\"\nclaims = { \" dept\" = [\"eng\"] }", "route[0].claims.\" dept\""),
    case("route", "[[route]]\npath = \"/a\"\nauth = \"public\"\nclaims = { dept = [\"eng\"] }", "route[0].claims"),
    case("route", "[[route]]\npath = \"/a\"\nsource_ips = [\"10.0.0.0/33\"]", "route[0].source_ips[0]"),
    case("route", "[[route]]\npath = \"/a\"\nsource_ips = [\"office\"]", "route[0].source_ips[0]"),
    case("route", "[[route]]\npath = \"/a\"\nscopes_any = [\"reports:read\"]", "route[0].scopes_any"),
    case("route", "[[route]]\npath = \"/a\"\nauth = \"public\"\nscopes_all = [\"r\"]", "route[0].scopes_all"),
    case("route", "[[route]]\npath = \"/a\"\nauth = \"bearer\"\nscopes_any = [\"a b\"]", "route[0].scopes_any[0]"),
    case("policy", "scopes_any = [\"a\\\"b\"]", "policy.scopes_any[0]"),
    case("policy", "source_ips = [\"nope\"]", "policy.source_ips[0]"),
    case("policy", "claims = { dept = [] }", "policy.claims.dept"),
    // Several identity providers (SPEC §12).
    case("route", "[providers.ci]\nissuer = \"https://ci.example.com\"", "providers.ci.audience"),
    case("route", "[providers.ci]\naudience = \"https://app.example.com\"", "providers.ci.issuer"),
    case("route", "[providers.ci]\nissuer = \"http://ci.example.com\"\naudience = \"a\"", "providers.ci.issuer"),
    case("route", "[providers.ci]\nissuer = \"https://ci.example.com\"\naudience = \" \"", "providers.ci.audience"),
    case("route", "[providers.ci]\nissuer = \"https://ci.example.com\"\naudience = \"a\"\nclient_secret = \"s3cr3t\"", "providers.ci.client_secret"),
    case("route", "[providers.ci]\nissuer = \"https://ci.example.com\"\naudience = \"a\"\nclient_secret_file = \"{file}\"", "providers.ci.client_secret"),
    case("route", "[providers.p]\nissuer = \"https://p.example.com\"\nclient_id = \"app\"", "providers.p.client_secret"),
    case("route", "[providers.p]\nissuer = \"https://p.example.com\"\nclient_id = \"\"\nclient_secret = \"s\"", "providers.p.client_id"),
    case("route", "[providers.p]\nissuer = \"https://p.example.com\"\nclient_id = \"app\"\nclient_secret = \"s\"\ndisplay_name = \" \"", "providers.p.display_name"),
    case("route", "[providers.p]\nissuer = \"https://p.example.com\"\nclient_id = \"app\"\nclient_secret = \"s\"\nnope = 1", "providers.p.nope"),
    case("route", "[providers.p]\nissuer = \"https://p.example.com\"\nclient_id = \"app\"\nclient_secret = \"s\"\nscopes = [\"email\"]", "providers.p.scopes"),
    case("route", "[providers.default]\nissuer = \"https://p.example.com\"\naudience = \"a\"", "providers.default"),
    case("route", "[providers.Partners]\nissuer = \"https://p.example.com\"\naudience = \"a\"", "providers.Partners"),
    case("route", "[providers.p]\nissuer = \"https://idp.example.com/\"\naudience = \"a\"", "providers.p.issuer"),
    case("route", "[providers.p]\nissuer = \"https://idp.example.com\"\naudience = \"a\"", "providers.p.issuer"),
    case("route", "[providers.p]\nissuer = \"https://p.example.com\"\naudience = \"a\"\n[providers.q]\nissuer = \"https://p.example.com/\"\naudience = \"b\"", "providers.q.issuer"),
    case("route", "[[route]]\npath = \"/a\"\nproviders = [\"nope\"]", "route[0].providers[0]"),
    case("route", "[[route]]\npath = \"/a\"\nproviders = [\"default\", \"nope\"]", "route[0].providers[1]"),
    case("route", "[[route]]\npath = \"/a\"\nproviders = []", "route[0].providers"),
    case("route", "[[route]]\npath = \"/a\"\nproviders = [\"default\", \"default\"]", "route[0].providers[1]"),
    case("policy", "providers = [\"nope\"]", "policy.providers[0]"),
    case("policy", "providers = []", "policy.providers"),
    case("route", "[providers.ci]\nissuer = \"https://ci.example.com\"\naudience = \"a\"\n[[route]]\npath = \"/a\"\nproviders = [\"ci\"]", "route[0].providers"),
    case("route", "[providers.ci]\nissuer = \"https://ci.example.com\"\naudience = \"a\"\n[[route]]\npath = \"/a\"\nauth = \"login_or_bearer\"\nproviders = [\"ci\"]", "route[0].providers"),
    case("policy", "providers = [\"ci\"]\n[providers.ci]\nissuer = \"https://ci.example.com\"\naudience = \"a\"", "policy.providers"),
    // Connected accounts (SPEC §13).
    case("route", "[connections.gh]\nclient_id = \"c\"\nclient_secret = \"s\"", "connections.gh.authorization_endpoint"),
    case("route", "[connections.gh]\nclient_id = \"c\"\nclient_secret = \"s\"", "connections.gh.token_endpoint"),
    case("route", "[connections.gh]\nissuer = \"https://github.com\"\nclient_secret = \"s\"", "connections.gh.client_id"),
    case("route", "[connections.gh]\nissuer = \"https://github.com\"\nclient_id = \"c\"", "connections.gh.client_secret"),
    case("route", "[connections.gh]\nissuer = \"https://github.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\nclient_secret_file = \"{file}\"", "connections.gh.client_secret"),
    case("route", "[connections.gh]\nissuer = \"https://github.com\"\nclient_id = \"c\"\nclient_secret_file = \"{missing}\"", "connections.gh.client_secret_file"),
    case("route", "[connections.gh]\nissuer = \"http://github.com\"\nclient_id = \"c\"\nclient_secret = \"s\"", "connections.gh.issuer"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"http://github.com/a\"\ntoken_endpoint = \"https://github.com/t\"\nclient_id = \"c\"\nclient_secret = \"s\"", "connections.gh.authorization_endpoint"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/a#x\"\ntoken_endpoint = \"https://github.com/t\"\nclient_id = \"c\"\nclient_secret = \"s\"", "connections.gh.authorization_endpoint"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/a\"\ntoken_endpoint = \"https://u:p@github.com/t\"\nclient_id = \"c\"\nclient_secret = \"s\"", "connections.gh.token_endpoint"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\nrevocation_endpoint = \"ftp://github.com/r\"", "connections.gh.revocation_endpoint"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\nscopes = [\"repo read\"]", "connections.gh.scopes[0]"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\nauth_params = { state = \"x\" }", "connections.gh.auth_params.state"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\nauth_params = { code_challenge = \"x\" }", "connections.gh.auth_params.code_challenge"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\nheader = \"Cookie\"", "connections.gh.header"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\nheader = \"X-Forwarded-User\"", "connections.gh.header"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\nheader = \"bad header\"", "connections.gh.header"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\ntoken_endpoint_auth = \"private_key_jwt\"", "connections.gh.token_endpoint_auth"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\ndisplay_name = \" \"", "connections.gh.display_name"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\nnope = 1", "connections.gh.nope"),
    case("route", "[connections.GitHub]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"", "connections.GitHub"),
    case("route", "[[route]]\npath = \"/gh\"\nconnections = [\"gh\"]", "route[0].connections[0]"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\n[[route]]\npath = \"/gh\"\nconnections = [\"gh\", \"gh\"]", "route[0].connections[1]"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\n[[route]]\npath = \"/gh\"\nauth = \"public\"\nconnections = [\"gh\"]", "route[0].connections"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\n[connections.gl]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\n[[route]]\npath = \"/gh\"\nconnections = [\"gh\", \"gl\"]", "route[0].connections[1]"),
    case("admin", "connections_api_token = \"short\"", "admin.connections_api_token"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\nheader = \"X-Forwarded-User\"", "connections.gh.header"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\nheader = \"X-Remote-User\"", "connections.gh.header"),
    case("route", "[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\nheader = \"X-Request-Id\"", "connections.gh.header"),
    case("upstream", "[[upstream.identity_header]]\nname = \"X-App-User\"\nclaim = \"sub\"\n[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\nheader = \"X-App-User\"\n[[route]]\npath = \"/gh\"\nconnections = [\"gh\"]", "route[0].connections[0]"),
    case("upstream", "pass_access_token = true\n[connections.gh]\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"c\"\nclient_secret = \"s\"\n[[route]]\npath = \"/gh\"\nconnections = [\"gh\"]", "route[0].connections[0]"),
    case("admin", "connections_api_token = \"0123456789abcdef0123456789abcdef\"\nconnections_api_token_file = \"{file}\"", "admin.connections_api_token"),
];

#[test]
fn every_rule_refuses_what_it_forbids_under_its_key() {
    let mut failures = Vec::new();
    for case in REFUSED {
        let dir = Dir::new();
        let text = with_lines(&dir, case.section, case.lines);
        let path = dir.write("portcullis.toml", &text);
        match load_with_env(&path, case.env) {
            Ok(_) => failures.push(format!(
                "accepted: [{}] {} {:?}",
                case.section, case.lines, case.env
            )),
            Err(ConfigError::Invalid(found)) if keys(&found).contains(case.key) => {}
            Err(err) => failures.push(format!(
                "[{}] {} {:?}: expected {}, got:\n{err}",
                case.section, case.lines, case.env, case.key
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The pass side of the rules above: the nearest valid values are accepted.
const ACCEPTED: &[Case] = &[
    case("server", r#"listen = "[::]:4180""#, ""),
    case("admin", r#"listen = "0.0.0.0:9180""#, ""),
    env_case(
        &[(
            "PORTCULLIS_SERVER__PUBLIC_URL",
            "https://app.example.com:8443/",
        )],
        "",
    ),
    env_case(
        &[("PORTCULLIS_SERVER__PUBLIC_URL", "http://localhost:4180")],
        "",
    ),
    case(
        "server",
        r#"auth_prefix = "/.well-known/portcullis_v1-x""#,
        "",
    ),
    case(
        "server",
        r#"trusted_proxies = ["10.0.0.0/8", "fd00::/8", "192.168.0.1", "::1"]"#,
        "",
    ),
    case(
        "server",
        r#"tls = { cert_file = "{file}", key_file = "{file}" }"#,
        "",
    ),
    case("server", r#"post_logout_url = "/signed-out""#, ""),
    case(
        "server",
        r#"allowed_redirect_hosts = ["trusted.example.com:8443", "*.apps.example.com"]"#,
        "",
    ),
    case("upstream", r#"ca_file = "{file}""#, ""),
    env_case(
        &[(
            "PORTCULLIS_UPSTREAM__URL",
            "https://backend.internal/prefix",
        )],
        "",
    ),
    env_case(&[("PORTCULLIS_OIDC__ISSUER", "http://127.0.0.1:9000/")], ""),
    env_case(
        &[("PORTCULLIS_OIDC__ISSUER", "http://localhost:9000/realms/x")],
        "",
    ),
    env_case(&[("PORTCULLIS_OIDC__ISSUER", "http://[::1]:9000")], ""),
    case(
        "oidc",
        r#"roles_claim = "https://app.example.com/roles""#,
        "",
    ),
    case(
        "oidc",
        r#"auth_params = { prompt = "login", audience = "api" }"#,
        "",
    ),
    case(
        "session",
        r#"secret = "q7Xo0lJb1Yp6b1cJ1Hj3m0yqkqj2S6cQd8v5yq3mWlQ""#,
        "",
    ),
    case(
        "session",
        r#"secret = "yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc=""#,
        "",
    ),
    case(
        "session",
        r#"store = "redis"
redis_url = "rediss://user:pw@redis.internal:6380/1"
secret = "yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc""#,
        "",
    ),
    case(
        "session",
        r#"store = "redis"
redis_url = "redis://10.0.0.1:6379,redis://10.0.0.2:6379,redis://10.0.0.3:6379"
secret = "yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc""#,
        "",
    ),
    case(
        "session",
        r#"idle_timeout = "2h"
absolute_timeout = "2h""#,
        "",
    ),
    case("session", r#"cookie_name = "__Host-pc""#, ""),
    case(
        "session",
        r#"cookie_name = "__Secure-pc"
cookie_domain = ".example.com""#,
        "",
    ),
    case("route", "[[route]]\npath = \"/\"", ""),
    case("route", "[[route]]\npath_exact = \"/a/\"", ""),
    case("route", "[[route]]\nhost = \"*.example.com\"", ""),
    case(
        "route",
        "[[route]]\nmethods = [\"options\"]\nauth = \"public\"",
        "",
    ),
    case(
        "route",
        "[[route]]\npath = \"/a\"\nauth = \"public\"\nroles_any = []",
        "",
    ),
    case(
        "route",
        "[[route]]\npath_regex = \"/(a|b)/.*\"\nauth = \"bearer\"\nroles_all = [\"x\"]",
        "",
    ),
    case("policy", r#"default = "public""#, ""),
    case("identity", r#"ttl = "60s""#, ""),
    case("identity", r#"signing_key_file = "{file}""#, ""),
    case("log", r#"level = "info,portcullis=debug,hyper=warn""#, ""),
    case("log", r#"format = "text""#, ""),
    case("route", "[upstreams.grafana]\nurl = \"http://127.0.0.1:3000\"\nidentity_preset = \"grafana\"\n[[route]]\npath = \"/g\"\nupstream = \"grafana\"\nstrip_prefix = \"/g\"", ""),
    case("route", "[[route]]\npath = \"/g\"\nupstream = \"default\"", ""),
    case("route", "[[route]]\npath_exact = \"/api/v1/x\"\nstrip_prefix = \"/api/v1\"", ""),
    case("route", "[[route]]\npath = \"/GH\"\nstrip_prefix = \"/gh\"", ""),
    case("route", "[[upstream.identity_header]]\nname = \"X-Team\"\nclaim = \"realm_access.team\"\nmulti = \"repeat\"\nrequired = true", ""),
    case("route", "[[upstream.identity_header]]\nname = \"X-Team\"\nclaim = \"https://example.com/team\"\nmulti = \"json\"\nseparator = \"; \"", ""),
    case("route", "[[route]]\npath = \"/a\"\nclaims = { \"https://example.com/dept\" = [\"eng\"], acr = [\"mfa\"] }\nsource_ips = [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\"]", ""),
    case("route", "[[route]]\npath = \"/a\"\nauth = \"public\"\nsource_ips = [\"10.0.0.0/8\"]", ""),
    case("route", "[[route]]\npath = \"/a\"\nauth = \"login_or_bearer\"\nscopes_all = [\"reports:read\", \"https://api.example.com/x\"]", ""),
    case("policy", "claims = { dept = [\"eng\"] }\nsource_ips = [\"10.0.0.0/8\"]\nscopes_any = [\"api\"]", ""),
    // The pass side of the provider rules (SPEC §12).
    case("oidc", "display_name = \"Example Corp\"", ""),
    case("route", "[providers.ci]\nissuer = \"https://ci.example.com\"\naudience = \"a\"", ""),
    case("route", "[providers.p]\nissuer = \"https://p.example.com\"\nclient_id = \"app\"\nclient_secret_file = \"{file}\"", ""),
    case("route", "[providers.p]\nissuer = \"https://idp.example.com/realms/p\"\naudience = \"a\"", ""),
    case("route", "[providers.p_2-x]\nissuer = \"http://127.0.0.1:9000\"\naudience = \"a\"", ""),
    case("route", "[providers.p]\nissuer = \"https://p.example.com\"\naudience = \"a\"\n[[route]]\npath = \"/a\"\nproviders = [\"default\", \"p\"]", ""),
    case("route", "[providers.ci]\nissuer = \"https://ci.example.com\"\naudience = \"a\"\n[[route]]\npath = \"/a\"\nauth = \"bearer\"\nproviders = [\"ci\"]", ""),
    case("route", "[providers.ci]\nissuer = \"https://ci.example.com\"\naudience = \"a\"\n[[route]]\npath = \"/a\"\nauth = \"public\"\nproviders = [\"ci\"]", ""),
    case("route", "[providers.ci]\nissuer = \"https://ci.example.com\"\naudience = \"a\"\n[[route]]\npath = \"/a\"\nauth = \"login_or_bearer\"\nproviders = [\"ci\", \"default\"]", ""),
    case("policy", "providers = [\"ci\"]\ndefault = \"bearer\"\n[providers.ci]\nissuer = \"https://ci.example.com\"\naudience = \"a\"", ""),
    case("policy", "providers = [\"default\", \"p\"]\n[providers.p]\nissuer = \"https://p.example.com\"\nclient_id = \"app\"\nclient_secret = \"s\"", ""),
];

#[test]
fn valid_values_next_to_each_rule_are_accepted() {
    let mut failures = Vec::new();
    for case in ACCEPTED {
        let dir = Dir::new();
        let text = with_lines(&dir, case.section, case.lines);
        let path = dir.write("portcullis.toml", &text);
        if let Err(err) = load_with_env(&path, case.env) {
            failures.push(format!(
                "[{}] {} {:?}:\n{err}",
                case.section, case.lines, case.env
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn route_without_matcher_suggests_policy_default() {
    let dir = Dir::new();
    let text = with_lines(&dir, "route", "[[route]]\nauth = \"public\"");
    let found = problems(load_with_env(&dir.write("p.toml", &text), &[]));
    assert!(found[0].message.contains("policy.default"), "{found:?}");
}

#[test]
fn secret_problems_never_quote_the_secret() {
    let short = "c2hvcnQtYnV0LXNlY3JldA==";
    let text =
        format!("{MINIMAL}\n[session]\nsecret = \"{short}\"\nredis_url = \"http://:pw-9f3@x\"\n");
    let err = load_toml(&text, &[]).expect_err("short key, bad redis url");
    let shown = err.to_string();
    assert!(
        !shown.contains(short) && !shown.contains("pw-9f3"),
        "{shown}"
    );
    assert_eq!(
        keys(&problems(Err(err))),
        ["session.secret".to_owned(), "session.redis_url".to_owned()].into()
    );
}

#[test]
fn decode_base64_accepts_both_alphabets_with_or_without_padding() {
    for text in [
        "+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/8=",
        "+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/8",
        "-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_8=",
        "-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_8",
    ] {
        let bytes = Secret::new(text).decode_base64();
        assert_eq!(bytes.map(|b| b.len()), Some(32), "{text}");
    }
    assert_eq!(Secret::new("not base64!").decode_base64(), None);
}

/// Keys as written in a file may be empty or hold control characters; each
/// problem still prints as one `key: message` line, the key quoted.
/// See: the `config_load` fuzz target.
#[test]
fn odd_keys_are_quoted_in_problems() {
    let text = format!("\"\" = 1\n\"a\\nb\" = 2\n{MINIMAL}\n[log]\n\"x\\ty\" = 3\n");
    let found = problems(load_toml(&text, &[]));
    for problem in &found {
        let line = problem.to_string();
        assert!(!line.contains('\n') && !line.contains('\t'), "{line:?}");
        assert!(!problem.key.is_empty(), "{line:?}");
    }
    let keys = keys(&found);
    assert!(keys.contains("\"\""), "{keys:?}");
    assert!(keys.contains("\"a\\nb\""), "{keys:?}");
    assert!(keys.iter().any(|k| k.contains("\"x\\ty\"")), "{keys:?}");
}

/// Compiles [`MINIMAL`] with `lines` added to `[server]`.
fn load_server_lines(lines: &str) -> Result<Config, ConfigError> {
    let dir = Dir::new();
    let text = with_lines(&dir, "server", lines);
    load_with_env(&dir.write("portcullis.toml", &text), &[])
}

/// See: issue 18. A redirect host may name a port (a portless entry admits only
/// the scheme's default port); entries are stored lowercase, the port as a
/// plain number.
#[test]
fn redirect_hosts_take_an_optional_port_and_are_normalized() {
    let config = load_server_lines(
        r#"allowed_redirect_hosts = ["Trusted.Example.com:08443", "*.apps.example.com", "*.Ports.example.com:65535", "one.example.com:1"]"#,
    )
    .unwrap_or_else(|err| panic!("expected a valid configuration, got:\n{err}"));
    assert_eq!(
        config.server.allowed_redirect_hosts,
        [
            "trusted.example.com:8443",
            "*.apps.example.com",
            "*.ports.example.com:65535",
            "one.example.com:1",
        ]
    );
}

/// See: issue 18. There is no "any port" and no port outside 1–65535; each
/// bad entry is reported under its own index, quoting the value and saying
/// what a port must be.
#[test]
fn redirect_host_ports_outside_1_to_65535_are_refused_naming_the_entry() {
    let bad = [
        "trusted.example.com:*",
        "trusted.example.com:0",
        "trusted.example.com:99999",
        "trusted.example.com:65536",
        "trusted.example.com:abc",
        "trusted.example.com:",
        "trusted.example.com:+8443",
        "trusted.example.com:-1",
        "*.example.com:*",
    ];
    let quoted: Vec<String> = bad.iter().map(|b| format!("{b:?}")).collect();
    let found = problems(load_server_lines(&format!(
        "allowed_redirect_hosts = [\"ok.example.com:8443\", {}]",
        quoted.join(", ")
    )));
    assert_eq!(found.len(), bad.len(), "{found:?}");
    for (i, entry) in bad.iter().enumerate() {
        let key = format!("server.allowed_redirect_hosts[{}]", i + 1);
        let problem = found
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("no problem under {key} for {entry:?}: {found:?}"));
        assert!(
            problem.message.contains(&format!("{entry:?}")),
            "{problem:?}"
        );
        assert!(problem.message.contains("1 to 65535"), "{problem:?}");
    }
}

/// Only hostnames, as before: an IP literal in brackets is not a redirect host,
/// and `route.host` stays port-free.
#[test]
fn redirect_hosts_are_hostnames_and_route_hosts_take_no_port() {
    let found = problems(load_server_lines(
        r#"allowed_redirect_hosts = ["[::1]:8443", "evil.com/x:8443"]"#,
    ));
    assert_eq!(
        keys(&found),
        BTreeSet::from([
            "server.allowed_redirect_hosts[0]".to_owned(),
            "server.allowed_redirect_hosts[1]".to_owned(),
        ])
    );
    let dir = Dir::new();
    let text = with_lines(&dir, "route", "[[route]]\nhost = \"app.example.com:8443\"");
    let found = problems(load_with_env(&dir.write("p.toml", &text), &[]));
    assert!(found.iter().any(|p| p.key.contains("host")), "{found:?}");
}

#[test]
fn named_upstreams_compile_with_their_presets_and_entries() {
    let text = format!(
        "{MINIMAL}\n[upstreams.grafana]\nurl = \"http://grafana.internal:3000\"\nidentity_preset = \"grafana\"\n\
         [[upstreams.grafana.identity_header]]\nname = \"x-webauth-user\"\nclaim = \"email\"\n\
         [[upstreams.grafana.identity_header]]\nname = \"X-Team\"\nclaim = \"team\"\nmulti = \"repeat\"\n\
         [[route]]\npath = \"/g\"\nupstream = \"grafana\"\nclaims = {{ dept = [\"eng\"] }}\n"
    );
    let config = valid(&text, &[]);
    let grafana = &config.upstreams["grafana"];
    assert_eq!(grafana.identity_preset, IdentityPreset::Grafana);
    let names: Vec<(&str, &str)> = grafana
        .identity_headers
        .iter()
        .map(|h| (h.name.as_str(), h.claim.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("X-WEBAUTH-EMAIL", "email"),
            ("X-WEBAUTH-NAME", "name"),
            ("X-WEBAUTH-GROUPS", "roles"),
            ("x-webauth-user", "email"),
            ("X-Team", "team"),
        ],
        "an entry replaces the preset's header of the same name"
    );
    assert_eq!(config.upstream.identity_preset, IdentityPreset::Standard);
    assert_eq!(config.upstream.identity_headers.len(), 4);
    assert_eq!(config.kept_claims(), ["dept", "team"]);
    assert_eq!(
        config.upstream_named(Some("grafana")).url.as_str(),
        "http://grafana.internal:3000/"
    );
    assert_eq!(config.upstream_named(None).url, config.upstream.url);
}

#[test]
fn named_upstreams_are_overridden_by_env_in_lowercase() {
    let text = format!("{MINIMAL}\n[upstreams.grafana]\nurl = \"http://grafana.internal:3000\"\n");
    let config = valid(
        &text,
        &[("PORTCULLIS_UPSTREAMS__GRAFANA__URL", "http://10.0.0.9:3000")],
    );
    assert_eq!(
        config.upstreams["grafana"].url.as_str(),
        "http://10.0.0.9:3000/"
    );
}

// === Several identity providers (SPEC §12) ===

/// [`MINIMAL`] followed by `more` (tables, `[[route]]`s).
fn minimal_with(more: &str) -> String {
    format!("{MINIMAL}\n{more}\n")
}

#[test]
fn a_providers_table_compiles_with_its_display_name_and_client() {
    let c = valid(
        &minimal_with(
            r#"
[providers.partners]
display_name = "Partner SSO"
issuer = "https://idp.partner.example"
client_id = "portcullis-partners"
client_secret = "partner-secret"
roles_claim = "groups"

[[route]]
path = "/partners"
providers = ["partners", "default"]

[[route]]
path = "/private"
"#,
        ),
        &[],
    );
    let partners = &c.providers["partners"];
    assert_eq!(partners.display_name.as_deref(), Some("Partner SSO"));
    assert_eq!(partners.issuer.as_str(), "https://idp.partner.example/");
    assert_eq!(partners.client_id, "portcullis-partners");
    assert_eq!(partners.client_secret.expose(), "partner-secret");
    assert_eq!(partners.roles_claim, ["groups"]);
    assert!(partners.has_client());
    assert_eq!(partners.audience, None, "the client_id is expected");
    assert_eq!(c.oidc.display_name, None, "[oidc] says nothing of its own");
    assert_eq!(
        c.routes[0].providers.as_deref(),
        Some(&["partners".to_owned(), "default".to_owned()][..])
    );
    assert_eq!(c.routes[1].providers, None);
    assert_eq!(c.policy.providers, ["default"], "the default's users only");
    assert_eq!(c.route_providers(&c.routes[1]), ["default"]);
    let names: Vec<&str> = c.all_providers().map(|(name, _)| name).collect();
    assert_eq!(names, ["default", "partners"]);
}

#[test]
fn a_provider_without_client_id_is_bearer_only_and_needs_an_audience() {
    let bearer_only = "[providers.ci]\nissuer = \"https://token.actions.githubusercontent.com\"\n";
    let found = problems(load_toml(&minimal_with(bearer_only), &[]));
    assert_eq!(
        keys(&found),
        BTreeSet::from(["providers.ci.audience".to_owned()])
    );

    let c = valid(
        &minimal_with(&format!(
            "{bearer_only}audience = \"https://portcullis.example.com\""
        )),
        &[],
    );
    let ci = &c.providers["ci"];
    assert!(!ci.has_client());
    assert_eq!(
        ci.audience.as_deref(),
        Some("https://portcullis.example.com")
    );
}

#[test]
fn a_client_secret_without_client_id_is_an_error() {
    let text = minimal_with(
        "[providers.ci]\nissuer = \"https://ci.example.com\"\naudience = \"a\"\nclient_secret = \"leaked\"",
    );
    let found = problems(load_toml(&text, &[]));
    assert_eq!(
        keys(&found),
        BTreeSet::from(["providers.ci.client_secret".to_owned()])
    );
    assert!(found[0].message.contains("client_id"), "{found:?}");
    assert!(!found[0].message.contains("leaked"), "{found:?}");
    valid(
        &minimal_with("[providers.ci]\nissuer = \"https://ci.example.com\"\naudience = \"a\""),
        &[],
    );
}

#[test]
fn unknown_provider_names_are_errors_naming_the_key_and_the_defined_providers() {
    let text = minimal_with(
        r#"
[policy]
providers = ["default", "partner"]

[providers.partners]
issuer = "https://p.example.com"
audience = "a"

[[route]]
path = "/a"

[[route]]
path = "/b"
auth = "bearer"
providers = ["partners", "gihtub"]
"#,
    );
    let found = problems(load_toml(&text, &[]));
    assert_eq!(
        keys(&found),
        BTreeSet::from([
            "policy.providers[1]".to_owned(),
            "route[1].providers[1]".to_owned()
        ]),
        "{found:?}"
    );
    for (problem, name) in found.iter().zip(["partner", "gihtub"]) {
        assert!(
            problem.message.contains(&format!("{name:?}")),
            "{problem:?}"
        );
        assert!(
            problem.message.contains("default, partners"),
            "names the defined providers: {problem:?}"
        );
    }
}

#[test]
fn two_providers_with_one_issuer_are_an_error() {
    let text = minimal_with(
        "[providers.again]\nissuer = \"https://idp.example.com\"\nclient_id = \"other\"\nclient_secret = \"s\"",
    );
    let found = problems(load_toml(&text, &[]));
    assert_eq!(
        keys(&found),
        BTreeSet::from(["providers.again.issuer".to_owned()])
    );
    assert!(found[0].message.contains("\"default\""), "{found:?}");
    valid(
        &minimal_with(
            "[providers.again]\nissuer = \"https://idp.example.com/realms/other\"\nclient_id = \"other\"\nclient_secret = \"s\"",
        ),
        &[],
    );
}

#[test]
fn a_sign_in_route_admitting_only_bearer_only_providers_is_an_error() {
    let ci = "[providers.ci]\nissuer = \"https://ci.example.com\"\naudience = \"a\"\n";
    for auth in ["login", "login_or_bearer"] {
        let text = minimal_with(&format!(
            "{ci}[[route]]\npath = \"/a\"\nauth = \"{auth}\"\nproviders = [\"ci\"]"
        ));
        let found = problems(load_toml(&text, &[]));
        assert_eq!(
            keys(&found),
            BTreeSet::from(["route[0].providers".to_owned()]),
            "{auth}"
        );
        assert!(found[0].message.contains("sign in"), "{found:?}");
    }
    for (auth, providers) in [
        ("bearer", "[\"ci\"]"),
        ("login", "[\"ci\", \"default\"]"),
        ("login_or_bearer", "[\"default\", \"ci\"]"),
    ] {
        valid(
            &minimal_with(&format!(
                "{ci}[[route]]\npath = \"/a\"\nauth = \"{auth}\"\nproviders = {providers}"
            )),
            &[],
        );
    }
}

#[test]
fn providers_must_be_tables_of_named_providers() {
    let found = problems(load_toml(&format!("providers = 1\n{MINIMAL}"), &[]));
    assert_eq!(
        keys(&found),
        BTreeSet::from(["providers".to_owned()]),
        "{found:?}"
    );
}

/// SPEC §13: a connection by endpoints or by issuer, its defaults, and a route
/// that uses it.
#[test]
fn connections_compile_with_their_defaults() {
    let dir = Dir::new();
    let secret = dir.write("gh-secret", "gh-client-secret\n");
    let text = format!(
        r#"{MINIMAL}
[admin]
connections_api_token = "0123456789abcdef0123456789abcdef"

[connections.github]
display_name = "GitHub"
authorization_endpoint = "https://github.com/login/oauth/authorize"
token_endpoint = "https://github.com/login/oauth/access_token"
client_id = "gh-app"
client_secret_file = "{}"
scopes = ["repo", "read:user"]

[connections.calendar]
issuer = "https://accounts.google.com"
client_id = "cal"
client_secret = "cal-secret"
auth_params = {{ access_type = "offline", prompt = "consent" }}
header = "X-Calendar-Token"
token_endpoint_auth = "client_secret_post"

[[route]]
path = "/gh"
strip_prefix = "/gh"
connections = ["github", "calendar"]
"#,
        secret.display()
    );
    let config = valid(&text, &[]);
    let github = &config.connections["github"];
    assert_eq!(github.display_name, "GitHub");
    assert_eq!(github.client_secret.expose(), "gh-client-secret");
    assert_eq!(github.header, "Authorization");
    assert!(github.is_bearer_header());
    assert_eq!(
        github.token_endpoint_auth,
        TokenEndpointAuth::ClientSecretBasic
    );
    assert_eq!(github.issuer, None);
    let calendar = &config.connections["calendar"];
    assert_eq!(calendar.display_name, "calendar");
    assert!(calendar.authorization_endpoint.is_none());
    assert!(!calendar.is_bearer_header());
    assert_eq!(
        calendar.token_endpoint_auth,
        TokenEndpointAuth::ClientSecretPost
    );
    assert_eq!(calendar.auth_params["access_type"], "offline");
    assert_eq!(config.routes[0].connections, ["github", "calendar"]);
    assert!(config.admin.connections_api_token.is_some());
    let shown = format!("{config:?}");
    assert!(!shown.contains("gh-client-secret") && !shown.contains("0123456789abcdef"));
}
