//! Operating the real binary (SPEC §10, issue 6): draining on SIGTERM, and the
//! access log's fields.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use http::StatusCode;

use crate::support::stack::free_port;
use crate::support::{base_config, get, try_status, Echo};

pub(crate) fn start(
    echo: &Echo,
    routes: &str,
    extra: &str,
) -> (std::process::Child, u16, tempfile::TempDir) {
    start_with_server_keys(echo, routes, extra, "")
}

/// [`start`] with `server_keys` (TOML lines) added to the `[server]` table.
pub(crate) fn start_with_server_keys(
    echo: &Echo,
    routes: &str,
    extra: &str,
    server_keys: &str,
) -> (std::process::Child, u16, tempfile::TempDir) {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("portcullis.toml");
    let toml = base_config(&echo.url(), &format!("{routes}\n{extra}")).replace(
        "127.0.0.1:0\"\npublic_url",
        &format!("127.0.0.1:{port}\"\n{server_keys}\npublic_url"),
    );
    std::fs::write(&path, toml).expect("write");
    let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("PORTCULLIS_CONFIG")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("portcullis runs");
    (child, port, dir)
}

pub(crate) async fn wait_up(port: u16) {
    for _ in 0..100 {
        if try_status(&format!("http://127.0.0.1:{port}/x"))
            .await
            .is_some()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the proxy never answered");
}

fn sigterm(child: &std::process::Child) {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
}

async fn assert_exits_0(mut child: std::process::Child) {
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "exit 0 after draining: {status:?}");
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    let echo = Echo::start().await;
    let (child, port, _dir) = start(&echo, "[[route]]\npath = \"/\"\nauth = \"public\"\n", "");
    wait_up(port).await;
    // /slow answers after 2 s.
    let slow =
        tokio::spawn(async move { get(&format!("http://127.0.0.1:{port}/slow"), &[]).await.0 });
    tokio::time::sleep(Duration::from_millis(400)).await;
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        try_status(&format!("http://127.0.0.1:{port}/x")).await,
        None,
        "no new connections after SIGTERM"
    );
    assert_eq!(
        slow.await.expect("join"),
        StatusCode::OK,
        "the in-flight request finished"
    );
    assert_exits_0(child).await;
}

/// SIGTERM asks every open connection to finish: one idle between keep-alive
/// requests is closed at once, so the process exits long before
/// `shutdown_grace` (a minute here) runs out.
#[tokio::test]
async fn sigterm_closes_idle_keep_alive_connections_and_exits_before_the_grace() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let echo = Echo::start().await;
    let (child, port, _dir) = start_with_server_keys(
        &echo,
        "[[route]]\npath = \"/\"\nauth = \"public\"\n",
        "",
        // Neither the grace nor the idle bound (header_read_timeout) closes it.
        "shutdown_grace = \"60s\"\nheader_read_timeout = \"60s\"",
    );
    wait_up(port).await;
    let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    idle.write_all(b"GET /x HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .expect("request");
    let mut answer = vec![0u8; 4096];
    let n = idle.read(&mut answer).await.expect("response");
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer[..n])
    );

    let sent = std::time::Instant::now();
    sigterm(&child);
    // The rest of the response, if any, then the end of the stream.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match idle.read(&mut answer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the idle connection was left open after SIGTERM"
    );
    assert_exits_0(child).await;
    assert!(
        sent.elapsed() < Duration::from_secs(20),
        "exiting took {:?}: the idle connection held the drain",
        sent.elapsed()
    );
}

/// `server.workers` threads serve the public listener, each with its own
/// runtime (issue 8); all of them take connections from the one socket.
/// The names of `pid`'s serving threads (`portcullis-N`), sorted.
fn serving_threads(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the process's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| {
            name.strip_prefix("portcullis-")
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn server_workers_threads_serve_the_listener() {
    let echo = Echo::start().await;
    let (child, port, _dir) = start_with_server_keys(
        &echo,
        "[[route]]\npath = \"/\"\nauth = \"public\"\n",
        "",
        "workers = 3",
    );
    let child = crate::support::ChildGuard(child);
    wait_up(port).await;
    // The first thread serves while the others are still starting, and a
    // thread names itself once it runs: look until the names settle.
    let mut serving = Vec::new();
    for _ in 0..100 {
        serving = serving_threads(child.0.id());
        if serving.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(serving, ["portcullis-0", "portcullis-1", "portcullis-2"]);
    let url = format!("http://127.0.0.1:{port}/many");
    let answers = futures_util::future::join_all((0..48).map(|_| get(&url, &[]))).await;
    assert!(answers
        .iter()
        .all(|(status, _, _)| *status == StatusCode::OK));
}

#[tokio::test]
async fn access_log_lines_carry_the_fields_and_no_secret() {
    let echo = Echo::start().await;
    let routes = "[[route]]\nname = \"open\"\npath = \"/open\"\nauth = \"public\"\n\n[[route]]\nname = \"closed\"\npath = \"/closed\"\nauth = \"deny\"\n";
    let (mut child, port, _dir) = start(&echo, routes, "[log]\nformat = \"json\"\n");
    wait_up(port).await;
    let secret_cookie = "portcullis=SECRET-COOKIE-VALUE-0123456789abcdefghijklmnopq";
    let secret_token = "Bearer SECRET.TOKEN.VALUE";
    let url = format!("http://127.0.0.1:{port}");
    get(
        &format!("{url}/open/page?q=1"),
        &[
            ("cookie", secret_cookie),
            ("authorization", secret_token),
            ("x-request-id", "req-42"),
        ],
    )
    .await;
    get(&format!("{url}/closed/x"), &[("cookie", secret_cookie)]).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .expect("read");
    let _ = child.wait();
    assert!(
        !stderr.contains("SECRET"),
        "a secret reached the log:\n{stderr}"
    );
    let access: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "portcullis::access")
        .collect();
    let open = access
        .iter()
        .find(|v| v["request_id"] == "req-42")
        .expect("the first request's line");
    assert_eq!(open["method"], "GET");
    assert_eq!(open["path"], "/open/page");
    assert_eq!(open["route"], "open");
    assert_eq!(open["decision"], "allow");
    assert_eq!(open["status"], 200);
    assert!(open["upstream_ms"].is_number() && open["duration_ms"].is_number());
    assert_eq!(open["client"], "127.0.0.1");
    let closed = access
        .iter()
        .find(|v| v["route"] == "closed")
        .expect("the refused request's line");
    assert_eq!(closed["decision"], "forbidden");
    assert_eq!(closed["status"], 403);
    assert!(closed["reason"].as_str().is_some_and(|r| !r.is_empty()));
}
