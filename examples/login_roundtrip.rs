//! Measures the full browser login round trip against the development provider:
//! protected page → 302 to the provider → sign-in form → POST → code → callback
//! (code exchange, ID-token checks, userinfo, session) → the original page.
//!
//! `cargo run --release --example login_roundtrip -- 300`

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::time::Instant;

use support::stack::Stack;

#[tokio::main]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let stack = Stack::start().await;
    // Warm up connections and caches.
    for _ in 0..10 {
        stack.login("alice").await;
    }
    let started = Instant::now();
    for _ in 0..count {
        stack.login("alice").await;
    }
    let elapsed = started.elapsed();
    println!(
        "{count} sequential logins in {:.2?}: {:.2} ms per login, {:.0} logins/s (one client, 7 HTTP round trips each)",
        elapsed,
        elapsed.as_secs_f64() * 1000.0 / count as f64,
        count as f64 / elapsed.as_secs_f64()
    );
}
