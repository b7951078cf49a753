//! Configuration reload (SPEC §10): SIGHUP or a file change; an invalid config is
//! refused and the old one keeps serving; sessions survive.

use std::process::{Command, Stdio};
use std::time::Duration;

use http::StatusCode;

use crate::support::stack::{free_port, Stack, ROUTES};
use crate::support::{base_config, get, ChildGuard, Echo};

/// Reloads `stack` with a first rule denying `/reports`.
async fn deny_reports(stack: &Stack) {
    stack
        .reload_with(|original| {
            original.replace(
                ROUTES,
                &format!(
                    "[[route]]\nname = \"reports\"\npath = \"/reports\"\nauth = \"deny\"\n{ROUTES}"
                ),
            )
        })
        .await
        .expect("valid config reloads");
}

#[tokio::test]
async fn reload_applies_new_rules_and_keeps_sessions() {
    let stack = Stack::start().await;
    let mut alice = stack.login("alice").await;
    assert_eq!(
        alice.fetch(&stack.url("/reports")).await.status,
        StatusCode::OK
    );

    deny_reports(&stack).await;

    assert_eq!(
        alice.fetch(&stack.url("/reports")).await.status,
        StatusCode::FORBIDDEN,
        "new rule applies"
    );
    assert_eq!(
        alice.fetch(&stack.url("/other")).await.status,
        StatusCode::OK,
        "the session survived the reload"
    );
}

/// A client's open keep-alive connection is served by the new config from its
/// next request on (a connection keeps the runtime its last request used,
/// never past a reload).
#[tokio::test]
async fn a_keep_alive_connection_gets_the_new_rules_at_its_next_request() {
    let stack = Stack::start().await;
    let alice = stack.login("alice").await;
    let cookie = format!("portcullis={}", alice.jar["portcullis"]);
    let url: http::Uri = stack.url("/reports").parse().expect("the proxy's URL");
    let authority = url.authority().expect("an authority").to_string();
    let (mut sender, connection) = crate::support::one_connection(&authority).await;
    let ask = || {
        http::Request::get("/reports")
            .header(http::header::HOST, &authority)
            .header(http::header::COOKIE, &cookie)
            .body(crate::support::full(""))
            .expect("request")
    };
    let before = sender.send_request(ask()).await.expect("first answer");
    assert_eq!(before.status(), StatusCode::OK);
    http_body_util::BodyExt::collect(before.into_body())
        .await
        .expect("first body");

    deny_reports(&stack).await;

    // The same connection: `http1::SendRequest` never opens another.
    let after = sender.send_request(ask()).await.expect("second answer");
    assert_eq!(
        after.status(),
        StatusCode::FORBIDDEN,
        "the new rule applies"
    );
    assert!(!connection.is_finished(), "the connection stayed open");
}

#[tokio::test]
async fn invalid_config_is_refused_and_the_old_one_keeps_serving() {
    let stack = Stack::start().await;
    let mut alice = stack.login("alice").await;
    let error = stack
        .reload_with(|original| original.replace("[upstream]\n", "[upstream]\nbogus_key = 1\n"))
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("bogus_key"), "{error}");
    assert_eq!(alice.fetch(&stack.url("/x")).await.status, StatusCode::OK);
    let (_, _, metrics) = get(&stack.metrics_url(), &[]).await;
    assert!(
        metrics.contains(r#"portcullis_config_reloads_total{result="failed"} 1"#),
        "{metrics}"
    );
}

async fn wait_for_status(url: &str, want: StatusCode) -> bool {
    for _ in 0..100 {
        if crate::support::try_status(url).await == Some(want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn the_binary_reloads_on_file_change_and_on_sighup() {
    let echo = Echo::start().await;
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("portcullis.toml");
    let public = "[[route]]\npath = \"/\"\nauth = \"public\"\n";
    let deny = "[[route]]\npath = \"/\"\nauth = \"deny\"\n";
    let write = |routes: &str| {
        let toml = base_config(&echo.url(), routes).replace(
            "127.0.0.1:0\"\npublic_url",
            &format!("127.0.0.1:{port}\"\npublic_url"),
        );
        std::fs::write(&path, toml).expect("write");
    };
    write(public);
    let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("PORTCULLIS_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("portcullis runs");
    let process = ChildGuard(child);
    let url = format!("http://127.0.0.1:{port}/x");
    assert!(
        wait_for_status(&url, StatusCode::OK).await,
        "serves the first config"
    );

    write(deny);
    assert!(
        wait_for_status(&url, StatusCode::FORBIDDEN).await,
        "a file change reloads"
    );

    std::fs::write(&path, "[server]\nlisten = \"nonsense\"\n").expect("write invalid");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        get(&url, &[]).await.0,
        StatusCode::FORBIDDEN,
        "an invalid file keeps the old config"
    );

    // Write without relying on the watcher: SIGHUP alone must reload.
    write(public);
    let pid = process.0.id().to_string();
    let status = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    assert!(
        wait_for_status(&url, StatusCode::OK).await,
        "SIGHUP reloads"
    );

    let term = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(term.success());
    let mut process = process;
    let exited = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        matches!(process.0.try_wait(), Ok(Some(status)) if status.success())
    });
    assert!(exited, "SIGTERM drains and exits 0");
}
