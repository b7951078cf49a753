//! How much memory one session costs in the embedded store, for sizing
//! `MemoryStore::new(max_sessions, ..)`.
//!
//! Fills a store with sessions shaped like real ones (a ~900-byte ID token, a
//! 64-byte refresh token, an identity with 3 roles, a provider `sid`) and prints
//! the growth of the resident set per session, read from `/proc/self/statm` (Linux
//! only). The figure includes the store's hash tables and its `sid`/`sub` indexes,
//! and allocator overhead: what the process really pays.
//!
//! The proxy keeps the access token only with `upstream.pass_access_token =
//! true`; `--pass-access-token` measures sessions with one (~800 bytes).
//!
//! ```text
//! cargo run --release --example session_memory [--pass-access-token] [COUNT...]
//! ```
//!
//! Each COUNT (cumulative, ascending; default `10000 100000`) prints one line
//! `COUNT sessions: RSS +N KiB, B B/session`.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use portcullis::clock::{Clock, SystemClock};
use portcullis::identity::Identity;
use portcullis::session::{MemoryStore, Session, SessionId, SessionStore};

/// The allocator `portcullis` itself uses (src/main.rs): what a session costs
/// depends on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The session counts measured, cumulatively in one store, when none are given.
const DEFAULT_STEPS: [usize; 2] = [10_000, 100_000];

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let with_access_token = args.iter().any(|a| a == "--pass-access-token");
    let mut steps = args
        .iter()
        .filter(|a| *a != "--pass-access-token")
        .map(|a| {
            a.replace('_', "")
                .parse::<usize>()
                .map_err(|e| format!("session count {a:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if steps.is_empty() {
        steps = DEFAULT_STEPS.to_vec();
    }
    if steps.contains(&0) {
        return Err("session counts must be positive".into());
    }
    steps.sort_unstable();
    let largest = *steps.last().ok_or("no session count")?;
    let page_size = page_size()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    let store = MemoryStore::new(largest, clock);
    let baseline = resident_bytes(page_size)?;

    println!(
        "page size {page_size} B, baseline RSS {} KiB",
        baseline / 1024
    );
    println!(
        "payload per session (string bytes): {} B",
        payload_bytes(&realistic_session(0, now, with_access_token))
    );
    let mut stored = 0;
    for target in steps {
        while stored < target {
            let session = realistic_session(stored, now, with_access_token);
            let key = SessionId::generate().key();
            store
                .save(&key, &session, Duration::from_secs(3600))
                .await?;
            stored += 1;
        }
        let grown = resident_bytes(page_size)?.saturating_sub(baseline);
        println!(
            "{target:>7} sessions: RSS +{:>7} KiB, {:>5} B/session",
            grown / 1024,
            grown / target as u64
        );
    }
    Ok(())
}

/// A session as a login through a typical provider leaves it.
fn realistic_session(n: usize, now: i64, with_access_token: bool) -> Session {
    Session {
        identity: Identity {
            sub: format!("auth0|{:024x}", n),
            email: Some(format!("user{n}@example.com")),
            email_verified: true,
            name: Some(format!("Example User {n}")),
            preferred_username: Some(format!("user{n}")),
            roles: vec!["viewer".into(), "editor".into(), "billing-admin".into()],
            ..Identity::default()
        },
        sid: Some(random_b64(24)),
        id_token: jwt_shaped(900),
        access_token: with_access_token.then(|| jwt_shaped(800)),
        refresh_token: Some(random_b64(48)), // 64 characters
        access_expires_at: Some(now + 300),
        created_at: now,
        last_seen: now,
    }
}

/// A `header.payload.signature` string of about `len` characters.
fn jwt_shaped(len: usize) -> String {
    let header = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0"; // {"alg":"RS256",..}
    let signature = random_b64(256); // RS256: 256 bytes, 342 characters
    let payload_chars = len.saturating_sub(header.len() + signature.len() + 2);
    let payload = random_b64(payload_chars * 3 / 4);
    format!("{header}.{payload}.{signature}")
}

fn random_b64(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(raw)
}

fn payload_bytes(s: &Session) -> usize {
    let identity = &s.identity;
    let optional = |o: &Option<String>| o.as_ref().map_or(0, String::len);
    identity.sub.len()
        + optional(&identity.email)
        + optional(&identity.name)
        + optional(&identity.preferred_username)
        + identity.roles.iter().map(String::len).sum::<usize>()
        + optional(&s.sid)
        + s.id_token.len()
        + optional(&s.access_token)
        + optional(&s.refresh_token)
}

/// Resident set size: the second field of `/proc/self/statm` is resident pages.
fn resident_bytes(page_size: u64) -> Result<u64, Box<dyn std::error::Error>> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or("/proc/self/statm has no resident field")?
        .parse()?;
    Ok(pages * page_size)
}

/// The kernel's page size, from the first mapping in `/proc/self/smaps` (std has no
/// `sysconf`, and the crate forbids `unsafe`).
fn page_size() -> Result<u64, Box<dyn std::error::Error>> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let kib: u64 = smaps
        .lines()
        .find_map(|line| line.strip_prefix("KernelPageSize:"))
        .ok_or("no KernelPageSize in /proc/self/smaps")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib * 1024)
}
