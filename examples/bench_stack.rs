//! Starts the development provider and a proxy in front of UPSTREAM, signs in
//! as alice, prints `PROXY=<url> COOKIE=<cookie>` and serves until killed. For
//! `bench/quick.sh`.
//!
//! `cargo run --release --example bench_stack -- http://127.0.0.1:8080 [redis://127.0.0.1:6390/0]`
//! (`BENCH_STACK_ROUTES=FILE`: that route table instead of the ten below;
//! `BENCH_STACK_SERVER=LINES`: more `[server]` lines, e.g. `workers = 1`)

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use support::stack::{Stack, StackOptions};

/// The allocator `portcullis` itself uses (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUTES: &str = r#"
[[route]]
name = "public"
path = "/public"
auth = "public"

[[route]]
name = "app"
path = "/app"
roles_any = ["admin"]

[log]
level = "warn"
"#;

#[tokio::main]
async fn main() {
    let upstream = std::env::args()
        .nth(1)
        .expect("usage: bench_stack UPSTREAM_URL [REDIS_URL]");
    let redis = std::env::args().nth(2);
    let session = match &redis {
        Some(url) => format!(
            "\n[session]\nstore = \"redis\"\nredis_url = \"{url}\"\nsecret = \"{}\"\n",
            "q7Xo0lJb1Yp6b1cJ1Hj3m0yqkqj2S6cQd8v5yq3mWlQ="
        ),
        None => String::new(),
    };
    // Another route table (e.g. `python3 bench/bench.py routes 10000`), to profile a large one.
    let routes = match std::env::var_os("BENCH_STACK_ROUTES") {
        Some(path) => {
            std::fs::read_to_string(path).expect("BENCH_STACK_ROUTES is readable")
                + "\n[log]\nlevel = \"warn\"\n"
        }
        None => ROUTES.to_owned(),
    };
    // More `[server]` lines (e.g. `workers = 1`), for experiments.
    let server = std::env::var("BENCH_STACK_SERVER").unwrap_or_default();
    let stack = Stack::start_with(StackOptions {
        extra: format!("{routes}{session}"),
        upstream: Some(upstream),
        server,
        ..StackOptions::default()
    })
    .await;
    let browser = stack.login("alice").await;
    println!(
        "PROXY={} COOKIE=portcullis={}",
        stack.url(""),
        browser.jar.get("portcullis").expect("signed in")
    );
    tokio::signal::ctrl_c().await.ok();
}
