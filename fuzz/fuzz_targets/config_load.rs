//! Fuzz target: loading a configuration file never panics.
//!
//! Arbitrary bytes are written to a file and loaded with the real loader
//! (`config::load_with_env`, no environment): as YAML when they start with
//! `---` or `%YAML`, as TOML otherwise. The result must be `Ok`, or a
//! `ConfigError` listing at least one problem, each a non-empty
//! `path.to.key: what is wrong` whose key has no control character (one
//! problem, one line). A configuration that loads must then work as
//! `portcullis check` and `portcullis run` use it: it renders (secrets as
//! `[redacted]`, never the secret), its route table is built and answers, its
//! cookies are named, and its session secrets make sealing keys.
//!
//! Any violation panics, which libFuzzer reports with the input.

#![no_main]

#[path = "../common/mod.rs"]
mod common;

use http::Method;
use libfuzzer_sys::fuzz_target;
use portcullis::config::{self, Config, ConfigError, Secret};
use portcullis::policy::route::RouteTable;
use portcullis::session::cookie::Cookies;
use portcullis::session::seal::Sealer;

fuzz_target!(|data: &[u8]| {
    // Secret files and `templates_dir` are opened: keep the fuzzer away from
    // device and process files (a FIFO or /dev/zero would hang the run).
    if contains(data, b"/dev") || contains(data, b"/proc") || contains(data, b"/sys") {
        return;
    }
    let ext = if data.starts_with(b"---") || data.starts_with(b"%YAML") {
        "yaml"
    } else {
        "toml"
    };
    match common::load_text(data, ext) {
        Ok(config) => check_loaded(&config),
        Err(error) => check_refused(&error),
    }
});

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn check_refused(error: &ConfigError) {
    let problems = error.problems();
    assert!(!problems.is_empty(), "refused without a problem: {error:?}");
    if let ConfigError::Invalid(list) = error {
        for problem in list {
            // `portcullis check` prints one `key: message` line per problem.
            assert!(
                !problem.key.is_empty() && !problem.message.is_empty(),
                "a problem without key or message: {problem:?}"
            );
            assert!(
                !problem.key.chars().any(char::is_control),
                "a problem key that breaks its line: {problem:?}"
            );
        }
    }
    let _ = error.to_string();
}

fn check_loaded(config: &Config) {
    let rendered = config::render(config);
    assert!(
        !rendered.starts_with("# cannot render"),
        "a loaded configuration does not render: {rendered}"
    );
    // Secrets never show: the rendering of the same config with other secrets
    // is the same text.
    let mut other = config.clone();
    other.oidc.client_secret = Secret::new("another client secret");
    other.session.secrets =
        vec![Secret::new("another session secret"); config.session.secrets.len()];
    other.session.redis_url = config
        .session
        .redis_url
        .as_ref()
        .map(|_| Secret::new("redis://other:6379"));
    assert_eq!(
        config::render(&other),
        rendered,
        "the rendered configuration shows a secret"
    );

    let table = RouteTable::new(config);
    for path in ["/", "/admin", "/api/x", "/health"] {
        for method in [Method::GET, Method::POST] {
            let _ = table.find(Some("app.example.com"), &method, path);
            let _ = table.find(None, &method, path);
        }
    }

    let cookies = Cookies::new(config);
    let _ = cookies.clear_session();
    let _ = cookies.clear_login(&cookies.login_name("state"));

    // `portcullis check` accepting the secrets promises `run` can key with them.
    if let Err(error) = Sealer::from_secrets(&config.session.secrets, "portcullis login state") {
        panic!(
            "a loaded configuration has session secrets the sealer refuses: {error} ({} secrets)",
            config.session.secrets.len()
        );
    }
}
