//! The shipped examples stay valid: every `config/*.toml` and the Kubernetes
//! example's config pass `portcullis check` (the real binary), print their
//! secrets redacted, and commit no secret; the validate command each example
//! prints at its top works exactly as printed; the several-apps example routes
//! as its comments say; the deploy manifests parse.
//!
//! Secrets: the examples name their secrets as files (`oidc.client_secret_file`,
//! `providers.NAME.client_secret_file`, `session.secret_file`,
//! `session.redis_url_file`) at the paths a Kubernetes
//! Secret is mounted at, which do not exist here, and `check` insists that they
//! do. So each run moves those paths to files in a temporary directory with
//! `PORTCULLIS_<SECTION>__<KEY>_FILE` overrides, exactly as an operator trying an
//! example on a workstation would; a secret the example does not name at all is
//! given as a plain `PORTCULLIS_<SECTION>__<KEY>` variable.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Distinctive values, so their absence from the output proves the redaction.
const CLIENT_SECRET: &str = "example-client-secret-never-printed";
const CONNECTIONS_API_TOKEN: &str = "examples-connections-api-token-0123456789abcdef";
/// 32 bytes of base64 (`openssl rand -base64 32` shape).
const SESSION_SECRET: &str = "c2Vzc2lvbi1rZXktZm9yLWV4YW1wbGVzLTMyLWJ5dGVzIQ==";
const REDIS_PASSWORD: &str = "redis-password-never-printed";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The examples in `config/`: each prints how to validate it.
fn config_dir_examples() -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(repo().join("config"))
        .expect("config/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    all.sort();
    all
}

/// Every example config that must pass `portcullis check`.
fn example_configs() -> Vec<PathBuf> {
    let mut all = config_dir_examples();
    all.push(repo().join("deploy/kubernetes/portcullis.toml"));
    all.push(repo().join("deploy/kubernetes/redis/portcullis.toml"));
    all
}

/// The secret files an example names, and the values the test gives them.
struct Secrets {
    dir: tempfile::TempDir,
}

impl Secrets {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, value: &str| {
            std::fs::write(dir.path().join(name), format!("{value}\n")).expect("write secret")
        };
        write("client-secret", CLIENT_SECRET);
        write("connections-api-token", CONNECTIONS_API_TOKEN);
        write("session-secret", SESSION_SECRET);
        write(
            "redis-url",
            &format!("redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"),
        );
        Secrets { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A secret every example needs, and the two ways of supplying it.
struct SecretKey {
    section: &'static str,
    key: &'static str,
    /// The variable giving the value itself.
    var: &'static str,
    /// The variable giving the path of a file holding it.
    file_var: &'static str,
    /// The file in [`Secrets`], and the value.
    file: &'static str,
    value: &'static str,
}

const SECRET_KEYS: &[SecretKey] = &[
    SecretKey {
        section: "oidc",
        key: "client_secret_file",
        var: "PORTCULLIS_OIDC__CLIENT_SECRET",
        file_var: "PORTCULLIS_OIDC__CLIENT_SECRET_FILE",
        file: "client-secret",
        value: CLIENT_SECRET,
    },
    SecretKey {
        section: "session",
        key: "secret_file",
        var: "PORTCULLIS_SESSION__SECRET",
        file_var: "PORTCULLIS_SESSION__SECRET_FILE",
        file: "session-secret",
        value: SESSION_SECRET,
    },
];

/// `portcullis check --config path`, with the example's secrets supplied and no
/// `PORTCULLIS_*` variable of the test's own environment leaking in.
fn check(path: &Path, secrets: &Secrets) -> Output {
    portcullis(path, secrets)
        .arg("check")
        .arg("--config")
        .arg(path)
        .output()
        .expect("portcullis runs")
}

/// The real binary, with the secrets `path` names supplied (see [`check`]); the
/// caller adds the subcommand.
fn portcullis(path: &Path, secrets: &Secrets) -> Command {
    let text = std::fs::read_to_string(path).expect("readable example");
    let doc: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()));
    let has = |section: &str, key: &str| {
        doc.get(section)
            .and_then(|s| s.as_table())
            .is_some_and(|s| s.contains_key(key))
    };

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    for (name, _) in std::env::vars_os() {
        if name
            .to_str()
            .is_some_and(|n| n.to_ascii_uppercase().starts_with("PORTCULLIS_"))
        {
            cmd.env_remove(name);
        }
    }
    for secret in SECRET_KEYS {
        if has(secret.section, secret.key) {
            cmd.env(secret.file_var, secrets.path(secret.file));
        } else {
            // Written inline (the demo) or not at all: the variable wins over the file.
            cmd.env(secret.var, secret.value);
        }
    }
    if has("session", "redis_url_file") {
        cmd.env(
            "PORTCULLIS_SESSION__REDIS_URL_FILE",
            secrets.path("redis-url"),
        );
    }
    for section in ["providers", "connections"] {
        for name in tables_with_secret_file(&doc, section) {
            cmd.env(
                format!(
                    "PORTCULLIS_{}__{}__CLIENT_SECRET_FILE",
                    section.to_ascii_uppercase(),
                    name.to_ascii_uppercase()
                ),
                secrets.path("client-secret"),
            );
        }
    }
    if has("admin", "connections_api_token_file") {
        cmd.env(
            "PORTCULLIS_ADMIN__CONNECTIONS_API_TOKEN_FILE",
            secrets.path("connections-api-token"),
        );
    }
    cmd
}

/// The `[SECTION.NAME]` tables (providers, connections) of an example that
/// name a `client_secret_file`.
fn tables_with_secret_file(doc: &toml::Table, section: &str) -> Vec<String> {
    doc.get(section)
        .and_then(|p| p.as_table())
        .map(|providers| {
            providers
                .iter()
                .filter(|(_, table)| {
                    table
                        .as_table()
                        .is_some_and(|t| t.contains_key("client_secret_file"))
                })
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_example_config_passes_check_with_secrets_redacted() {
    let secrets = Secrets::new();
    let configs = example_configs();
    let names: Vec<String> = configs
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "demo.toml",
        "auth0.toml",
        "keycloak.toml",
        "okta.toml",
        "entra.toml",
        "google.toml",
        "redis.toml",
        "several-apps.toml",
        "providers.toml",
        "connections.toml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "config/{expected} is missing: {names:?}"
        );
    }

    for path in &configs {
        let out = check(path, &secrets);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{} fails portcullis check:\n{stderr}",
            path.display()
        );
        assert!(
            stdout.contains("client_secret = \"[redacted]\""),
            "{}: client secret not shown redacted:\n{stdout}",
            path.display()
        );
        for secret in [CLIENT_SECRET, SESSION_SECRET, REDIS_PASSWORD] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "{}: a secret reached the output",
                path.display()
            );
        }
    }
}

#[test]
fn the_redis_example_shares_sessions_with_a_secret() {
    let secrets = Secrets::new();
    let out = check(&repo().join("config/redis.toml"), &secrets);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("store = \"redis\""), "{stdout}");
    // One key, shown redacted: every replica decrypts what the others stored.
    assert!(stdout.contains("secrets = [\"[redacted]\"]"), "{stdout}");
}

/// The `*_file` secret keys `config/check.sh` replaces with placeholders, as
/// `section.key` (and `providers.NAME.client_secret_file` for every provider
/// that names one).
const PLACEHOLDER_KEYS: &[(&str, &str)] = &[
    ("oidc", "client_secret_file"),
    ("session", "secret_file"),
    ("session", "previous_secrets_file"),
    ("session", "redis_url_file"),
    ("admin", "connections_api_token_file"),
];

/// The command after `# Validate with: ` in the comment block a file starts with;
/// exactly one such line.
fn printed_validate_command(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("readable example");
    let printed: Vec<&str> = text
        .lines()
        .take_while(|line| line.starts_with('#'))
        .filter_map(|line| line.strip_prefix("# Validate with: "))
        .collect();
    assert_eq!(
        printed.len(),
        1,
        "{}: the comment block at the top must say once \"# Validate with: COMMAND\"",
        path.display()
    );
    printed[0].trim_end().to_owned()
}

/// A newcomer copies the validate command an example prints and runs it from the
/// repository root, on a machine where none of the example's secret files exist
/// and with overrides of their own in the environment: it passes, as printed, and
/// shows every secret redacted. (`PORTCULLIS` names the binary under test, so the
/// script does not build another.)
#[test]
fn each_example_prints_a_validate_command_that_works_as_printed() {
    let examples = config_dir_examples();
    assert!(
        examples
            .iter()
            .any(|p| p.ends_with("config/several-apps.toml")),
        "{examples:?}"
    );
    for path in examples {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let command = printed_validate_command(&path);
        assert_eq!(
            command,
            format!("bash config/check.sh config/{name}"),
            "config/{name}: the printed validate command"
        );

        let words: Vec<&str> = command.split_whitespace().collect();
        let mut cmd = Command::new(words[0]);
        cmd.args(&words[1..])
            .current_dir(repo())
            .env("PORTCULLIS", env!("CARGO_BIN_EXE_portcullis"))
            // A shell's own overrides do not change what the script checks: these
            // would otherwise clash with the *_file keys (both forms set) or fail.
            .env("PORTCULLIS_OIDC__CLIENT_SECRET", CLIENT_SECRET)
            .env(
                "PORTCULLIS_PROVIDERS__PARTNERS__CLIENT_SECRET",
                CLIENT_SECRET,
            )
            .env("PORTCULLIS_SESSION__SECRET", "not-a-base64-key")
            .env(
                "PORTCULLIS_SESSION__REDIS_URL_FILE",
                "/nonexistent/redis-url",
            );
        let out = cmd.output().expect("bash runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "config/{name}: `{command}` fails:\n{stderr}\n{stdout}"
        );

        // The script replaced exactly the secret files the example names (its
        // small TOML reader agrees with a real one).
        let doc: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let named = |section: &str, key: &str| {
            doc.get(section)
                .and_then(|s| s.as_table())
                .is_some_and(|s| s.contains_key(key))
        };
        let mut expected: Vec<String> = PLACEHOLDER_KEYS
            .iter()
            .filter(|(section, key)| named(section, key))
            .map(|(section, key)| format!("{section}.{key}"))
            .chain(["providers", "connections"].iter().flat_map(|section| {
                tables_with_secret_file(&doc, section)
                    .into_iter()
                    .map(move |name| format!("{section}.{name}.client_secret_file"))
            }))
            .collect();
        let mut replaced: Vec<String> = stderr
            .lines()
            .find_map(|l| l.strip_prefix("check.sh: placeholder secrets (temporary files) for: "))
            .map(|keys| keys.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        expected.sort();
        replaced.sort();
        assert_eq!(replaced, expected, "config/{name}: placeholders\n{stderr}");

        // The effective config is printed, every secret in it redacted.
        assert!(
            stdout.contains("client_secret = \"[redacted]\""),
            "config/{name}: client secret not shown redacted:\n{stdout}"
        );
        if named("session", "secret_file") {
            assert!(
                stdout.contains("secrets = [\"[redacted]\"]"),
                "config/{name}: session secret not shown redacted:\n{stdout}"
            );
        }
        for line in stdout.lines() {
            let Some((key, value)) = line.split_once(" = ") else {
                continue;
            };
            if key.contains("secret") || key == "redis_url" {
                // `"[redacted]"`, a list of those, or an empty list (no secret
                // configured: the demo's key is generated per process).
                let rest = value.replace("\"[redacted]\"", "");
                assert!(
                    (value.contains("[redacted]") || value == "[]")
                        && rest.chars().all(|c| matches!(c, '[' | ']' | ',' | ' ')),
                    "config/{name}: {key} printed unredacted: {line}"
                );
            }
        }
        assert!(!stdout.contains(CLIENT_SECRET) && !stderr.contains(CLIENT_SECRET));
    }
}

/// `config/several-apps.toml` is what its comments say: two hosts, three named
/// upstreams, presets and a custom header set, and rules that decide as
/// described (checked with `portcullis explain`).
#[test]
fn the_several_apps_example_routes_as_its_comments_say() {
    let path = repo().join("config/several-apps.toml");
    let doc: toml::Table =
        toml::from_str(&std::fs::read_to_string(&path).expect("readable")).expect("TOML");
    let upstreams = doc["upstreams"].as_table().expect("[upstreams.*]");
    let preset = |name: &str| {
        upstreams[name]["identity_preset"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(preset("grafana"), "grafana");
    assert_eq!(preset("jenkins"), "jenkins");
    assert_eq!(preset("reports"), "none");
    let headers = upstreams["reports"]["identity_header"].as_array().unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("reports header {name}"))
    };
    assert_eq!(
        header("X-Remote-User")["claim"].as_str(),
        Some("preferred_username")
    );
    assert_eq!(header("X-Remote-Groups")["claim"].as_str(), Some("roles"));
    assert_eq!(header("X-Remote-Groups")["separator"].as_str(), Some("|"));
    assert_eq!(
        header("X-Remote-Department")["required"].as_bool(),
        Some(true)
    );
    let mut hosts: Vec<&str> = doc["route"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.get("host").and_then(|h| h.as_str()))
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    assert_eq!(hosts, ["api.example.com", "tools.example.com"]);

    let explain = Explain {
        path: &path,
        secrets: &Secrets::new(),
        dir: tempfile::tempdir().expect("tempdir"),
    };
    let (anyone, office) = (Some("203.0.113.9"), Some("10.8.3.4"));

    // Grafana: its users; its admin pages for its admins only.
    let grafana_user = viewer(&["grafana-users"], "eng");
    let grafana_admin = viewer(&["grafana-admins"], "eng");
    explain.decides(
        &grafana_user,
        None,
        "GET",
        "https://tools.example.com/grafana/d/x",
        "grafana",
        true,
    );
    explain.decides(
        &grafana_user,
        None,
        "GET",
        "https://tools.example.com/grafana/admin/users",
        "grafana-admin",
        false,
    );
    explain.decides(
        &grafana_admin,
        None,
        "GET",
        "https://tools.example.com/grafana/admin/users",
        "grafana-admin",
        true,
    );

    // Jenkins: its users; the admin pages and script consoles for its admins
    // from the office only, whatever the case of the path.
    let jenkins_user = viewer(&["jenkins-users"], "eng");
    let jenkins_admin = viewer(&["jenkins-admins"], "eng");
    explain.decides(
        &jenkins_user,
        anyone,
        "GET",
        "https://tools.example.com/jenkins/job/build/",
        "jenkins",
        true,
    );
    explain.decides(
        &jenkins_user,
        anyone,
        "GET",
        "https://tools.example.com/jenkins/job/configure-ui/configure",
        "jenkins",
        true,
    );
    explain.decides(
        &jenkins_admin,
        anyone,
        "GET",
        "https://tools.example.com/jenkins/Script",
        "jenkins-manage",
        false,
    );
    explain.decides(
        &jenkins_admin,
        anyone,
        "GET",
        "https://tools.example.com/jenkins/configureSecurity/",
        "jenkins-manage",
        false,
    );
    explain.decides(
        &jenkins_admin,
        anyone,
        "GET",
        "https://tools.example.com/jenkins/computer/agent-1/script",
        "jenkins-manage",
        false,
    );
    explain.decides(
        &jenkins_admin,
        office,
        "POST",
        "https://tools.example.com/jenkins/scriptText",
        "jenkins-manage",
        true,
    );
    explain.decides(
        &jenkins_user,
        office,
        "GET",
        "https://tools.example.com/jenkins/manage/",
        "jenkins-manage",
        false,
    );

    // Reports: its users; finance reports for the finance department only.
    let sales = viewer(&["reports-users"], "sales");
    let finance = viewer(&["reports-users"], "finance");
    explain.decides(
        &sales,
        None,
        "GET",
        "https://tools.example.com/reports/q1",
        "reports",
        true,
    );
    explain.decides(
        &sales,
        None,
        "GET",
        "https://tools.example.com/reports/finance/q1",
        "reports-finance",
        false,
    );
    explain.decides(
        &finance,
        None,
        "GET",
        "https://tools.example.com/reports/Finance/q1",
        "reports-finance",
        true,
    );

    // The start page: anyone signed in.
    explain.decides(
        &viewer(&[], "eng"),
        None,
        "GET",
        "https://tools.example.com/",
        "start",
        true,
    );

    // api.example.com: bearer tokens with the scope, on the API only.
    let script = token(&["reports-users"], "reports:read");
    let no_scope = token(&["reports-users"], "profile");
    explain.decides(
        &script,
        None,
        "GET",
        "https://api.example.com/reports/api/v1/sales",
        "reports-api",
        true,
    );
    explain.decides(
        &no_scope,
        None,
        "GET",
        "https://api.example.com/reports/api/v1/sales",
        "reports-api",
        false,
    );
    explain.decides(
        &script,
        None,
        "GET",
        "https://api.example.com/grafana/",
        "api-other",
        false,
    );

    // Any other host: nothing.
    explain.decides(
        &sales,
        None,
        "GET",
        "https://intranet.example.com/",
        "policy.default",
        false,
    );
}

/// `portcullis explain` on an example config.
struct Explain<'a> {
    path: &'a Path,
    secrets: &'a Secrets,
    dir: tempfile::TempDir,
}

impl Explain<'_> {
    /// Asserts that `route` (a route name, or `policy.default`) decides
    /// `method url` for `claims` from `client`, allowing or refusing it.
    fn decides(
        &self,
        claims: &serde_json::Value,
        client: Option<&str>,
        method: &str,
        url: &str,
        route: &str,
        allowed: bool,
    ) {
        let claims_file = self.dir.path().join("claims.json");
        std::fs::write(&claims_file, claims.to_string()).expect("write claims");
        let mut cmd = portcullis(self.path, self.secrets);
        cmd.arg("explain")
            .arg("--config")
            .arg(self.path)
            .arg("--claims")
            .arg(&claims_file);
        if let Some(client) = client {
            cmd.arg("--client").arg(client);
        }
        let out = cmd.arg(method).arg(url).output().expect("portcullis runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let rule = stdout
            .lines()
            .find(|l| l.starts_with("rule "))
            .unwrap_or_default();
        let expected_rule = if route == "policy.default" {
            route.to_owned()
        } else {
            format!("{route:?}")
        };
        assert!(
            rule.contains(&expected_rule),
            "{method} {url}: decided by {rule:?}, expected {route}\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.code(),
            Some(if allowed { 0 } else { 2 }),
            "{method} {url} for {claims} from {client:?}: expected {}\n{stdout}",
            if allowed { "allowed" } else { "refused" }
        );
    }
}

/// A session's claims for the Keycloak realm of the example.
fn viewer(roles: &[&str], department: &str) -> serde_json::Value {
    serde_json::json!({
        "sub": "user-1",
        "preferred_username": "ann",
        "department": department,
        "realm_access": { "roles": roles },
    })
}

/// A bearer access token's claims (explain judges claims as a token on a bearer route).
fn token(roles: &[&str], scope: &str) -> serde_json::Value {
    let mut claims = viewer(roles, "sales");
    claims["scope"] = scope.into();
    claims["aud"] = "reports-api".into();
    claims
}

/// A committed example names its secrets as files, never inline; the demo's
/// client secret is the development provider's loopback-only value.
#[test]
fn examples_commit_no_secret() {
    for path in example_configs() {
        let is_demo = path.ends_with("config/demo.toml");
        let doc: toml::Table =
            toml::from_str(&std::fs::read_to_string(&path).expect("readable")).expect("TOML");
        let inline = |section: &str, key: &str| {
            doc.get(section)
                .and_then(|s| s.as_table())
                .is_some_and(|s| s.contains_key(key))
        };
        assert!(
            is_demo || !inline("oidc", "client_secret"),
            "{}: use oidc.client_secret_file",
            path.display()
        );
        let providers = doc.get("providers").and_then(|p| p.as_table());
        for (name, table) in providers.into_iter().flatten() {
            assert!(
                !table
                    .as_table()
                    .is_some_and(|t| t.contains_key("client_secret")),
                "{}: use providers.{name}.client_secret_file",
                path.display()
            );
        }
        assert!(
            !inline("session", "secret") && !inline("session", "previous_secrets"),
            "{}: use session.secret_file",
            path.display()
        );
    }
}

/// The Kubernetes manifests, the chart's metadata and values and the Traefik
/// config are YAML. (The chart's templates are Go templates;
/// `deploy/helm/render_check.py` renders them.)
#[test]
fn deploy_manifests_parse_as_yaml() {
    let mut files = vec![
        repo().join("deploy/helm/portcullis/Chart.yaml"),
        repo().join("deploy/helm/portcullis/values.yaml"),
        repo().join("deploy/nginx/traefik-dynamic.yaml"),
    ];
    let k8s = repo().join("deploy/kubernetes");
    let overlay = std::fs::read_dir(k8s.join("redis")).expect("deploy/kubernetes/redis exists");
    for entry in std::fs::read_dir(&k8s)
        .expect("deploy/kubernetes exists")
        .chain(overlay)
    {
        let path = entry.expect("entry").path();
        if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            files.push(path);
        }
    }
    assert!(files.len() >= 8, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let mut docs = 0;
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value = <serde_norway::Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
            if path.starts_with(&k8s) {
                assert!(
                    value.get("apiVersion").is_some() && value.get("kind").is_some(),
                    "{}: not a Kubernetes object",
                    path.display()
                );
            }
            docs += 1;
        }
        assert!(docs > 0, "{} is empty", path.display());
    }
}
