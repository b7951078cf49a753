//! The shipped examples stay valid: every `config/*.toml` and the Kubernetes
//! example's config pass `portcullis check` (the real binary), print their
//! secrets redacted, and commit no secret; the deploy manifests parse.
//!
//! Secrets: the examples name their secrets as files (`oidc.client_secret_file`,
//! `session.secret_file`, `session.redis_url_file`) at the paths a Kubernetes
//! Secret is mounted at, which do not exist here, and `check` insists that they
//! do. So each run moves those paths to files in a temporary directory with
//! `PORTCULLIS_<SECTION>__<KEY>_FILE` overrides, exactly as an operator trying an
//! example on a workstation would; a secret the example does not name at all is
//! given as a plain `PORTCULLIS_<SECTION>__<KEY>` variable.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Distinctive values, so their absence from the output proves the redaction.
const CLIENT_SECRET: &str = "example-client-secret-never-printed";
/// 32 bytes of base64 (`openssl rand -base64 32` shape).
const SESSION_SECRET: &str = "c2Vzc2lvbi1rZXktZm9yLWV4YW1wbGVzLTMyLWJ5dGVzIQ==";
const REDIS_PASSWORD: &str = "redis-password-never-printed";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every example config that must pass `portcullis check`.
fn example_configs() -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(repo().join("config"))
        .expect("config/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    all.sort();
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
    cmd.arg("check").arg("--config").arg(path);
    cmd.output().expect("portcullis runs")
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
