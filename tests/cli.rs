//! The `portcullis` command line (SPEC §1), run as a real process.

use std::process::Command;

fn portcullis() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.env_remove("PORTCULLIS_CONFIG");
    cmd
}

#[test]
fn version_prints_the_version() {
    let out = portcullis().arg("version").output().expect("runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn check_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ok.toml");
    std::fs::write(
        &path,
        crate::support::base_config("http://127.0.0.1:8080", "")
            .replace("test-secret", "very-secret-value"),
    )
    .expect("write");
    let out = portcullis()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("[redacted]"), "{stdout}");
    assert!(!stdout.contains("very-secret-value"), "{stdout}");
    assert!(stdout.contains("127.0.0.1:8080"), "{stdout}");
}

#[test]
fn check_lists_every_problem_by_key_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[server]
listen = "not an address"
public_url = "ftp://app.test"

[upstream]
url = "http://127.0.0.1:8080"

[oidc]
issuer = "http://127.0.0.1:9/"
client_id = "x"
client_secret = "s"

[session]
idle_timeout = "2h"
absolute_timeout = "1h"
"#,
    )
    .expect("write");
    let out = portcullis()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in [
        "server.listen",
        "server.public_url",
        "session.absolute_timeout",
    ] {
        assert!(
            stderr.contains(&format!("{key}: ")),
            "{key} missing from:\n{stderr}"
        );
    }
}

#[test]
fn check_names_an_unknown_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("unknown.toml");
    std::fs::write(
        &path,
        crate::support::base_config("http://127.0.0.1:8080", "")
            .replace("[upstream]\n", "[upstream]\nurll = \"x\"\n"),
    )
    .expect("write");
    let out = portcullis()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("urll"), "{stderr}");
}

#[test]
fn run_refuses_an_invalid_config_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[server]\nlisten = \"nope\"\n").expect("write");
    let out = portcullis()
        .arg("run")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listen"));
}

/// `check` prints every upstream with the identity headers it will receive,
/// and names a route's unknown upstream by its key (SPEC §11).
#[test]
fn check_prints_every_upstream_and_names_an_unknown_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = dir.path().join("apps.toml");
    let apps = r#"
[upstreams.grafana]
url = "http://grafana.internal:3000"
identity_preset = "grafana"

[[route]]
path = "/g"
upstream = "grafana"
"#;
    std::fs::write(
        &ok,
        crate::support::base_config("http://127.0.0.1:8080", apps),
    )
    .expect("write");
    let out = portcullis()
        .arg("check")
        .arg("--config")
        .arg(&ok)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "[upstreams.grafana]",
        "grafana.internal:3000",
        "identity_preset = \"grafana\"",
        "X-WEBAUTH-USER",
        "upstream = \"grafana\"",
    ] {
        assert!(stdout.contains(needle), "{needle} missing from:\n{stdout}");
    }

    let bad = dir.path().join("bad.toml");
    let typo = apps.replace("upstream = \"grafana\"", "upstream = \"grafna\"");
    std::fs::write(
        &bad,
        crate::support::base_config("http://127.0.0.1:8080", &typo),
    )
    .expect("write");
    let out = portcullis()
        .arg("check")
        .arg("--config")
        .arg(&bad)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("route[0].upstream: unknown upstream \"grafna\""),
        "{stderr}"
    );
}
