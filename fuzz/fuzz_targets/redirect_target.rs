//! Fuzz target: a post-login redirect target never leaves the allowed origins.
//!
//! For arbitrary text as `rd`, against several public URLs and one allow list
//! (`docs.example.com`, `*.apps.example.com`), `checked` must either refuse it
//! or return a target such that:
//!
//! - it has no control character, whitespace or `\` and is a valid `Location`
//!   header value;
//! - it is a same-origin relative path starting with exactly one `/` (never
//!   `//` or `/\`), or an absolute `http(s)` URL without userinfo whose host is
//!   the public host or on the allow list (and never `http` under an `https`
//!   public URL);
//! - resolved as a browser does (WHATWG URL parsing, the `url` crate, against
//!   the public URL), it lands on the public origin or an allowed host, also
//!   after one more round of percent-decoding (some apps decode before
//!   following);
//! - checking it again returns it unchanged, and `safe_target` is `checked`
//!   with `/` as the fallback.
//!
//! Any violation panics, which libFuzzer reports with the input.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis::auth::redirect::{checked, safe_target};
use url::Url;

/// Public URLs: https and http, default and explicit ports, IP hosts, a base path.
const PUBLIC_URLS: &[&str] = &[
    "https://app.example.com",
    "http://app.example.com:8080",
    "https://app.example.com:8443/base/",
    "http://127.0.0.1:4180",
    "http://[::1]:4180",
];

const ALLOWED: &[&str] = &["docs.example.com", "*.apps.example.com"];

fuzz_target!(|data: &[u8]| {
    if let Ok(rd) = std::str::from_utf8(data) {
        for public in publics() {
            check(rd, public);
        }
    }
});

fn publics() -> &'static [Url] {
    static URLS: OnceLock<Vec<Url>> = OnceLock::new();
    URLS.get_or_init(|| {
        PUBLIC_URLS
            .iter()
            .map(|u| Url::parse(u).expect("a valid public URL"))
            .collect()
    })
}

fn allowed() -> &'static [String] {
    static HOSTS: OnceLock<Vec<String>> = OnceLock::new();
    HOSTS.get_or_init(|| ALLOWED.iter().map(|h| (*h).to_owned()).collect())
}

fn check(rd: &str, public: &Url) {
    let result = checked(rd, public, allowed());
    let fallback = safe_target(Some(rd), public, allowed());
    assert_eq!(
        fallback,
        result.clone().unwrap_or_else(|| "/".to_owned()),
        "{rd:?} at {public}: safe_target disagrees with checked"
    );
    let Some(target) = result else {
        return;
    };
    let ctx = format!("{rd:?} at {public} -> {target:?}");

    assert!(!target.is_empty(), "{ctx}: empty target");
    assert!(
        !target
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace()),
        "{ctx}: backslash, control character or whitespace"
    );
    assert!(
        http::HeaderValue::from_str(&target).is_ok(),
        "{ctx}: not a valid Location header value"
    );

    if target.starts_with('/') {
        let second = target.as_bytes().get(1).copied();
        assert!(
            !matches!(second, Some(b'/' | b'\\')),
            "{ctx}: a relative target must start with exactly one '/'"
        );
        let landed = public.join(&target).expect("a relative target resolves");
        assert_eq!(
            landed.origin(),
            public.origin(),
            "{ctx}: a relative target leaves the public origin for {landed}"
        );
    } else {
        let url = Url::parse(&target).unwrap_or_else(|e| panic!("{ctx}: not absolute: {e}"));
        assert_eq!(
            public.join(&target).ok().as_ref(),
            Some(&url),
            "{ctx}: an absolute target resolves to itself"
        );
    }

    assert_browser_lands_inside(&ctx, public, &target);
    let decoded = percent_encoding::percent_decode_str(&target).decode_utf8_lossy();
    if decoded.chars().any(|c| c.is_control() || c == '\\') {
        panic!("{ctx}: decodes to a control character or backslash: {decoded:?}");
    }
    assert_browser_lands_inside(&format!("{ctx} decoded as {decoded:?}"), public, &decoded);

    assert_eq!(
        checked(&target, public, allowed()).as_deref(),
        Some(target.as_str()),
        "{ctx}: checking the result again changes it"
    );
}

/// Where a browser sent to `location` by a page at `public` ends up.
fn assert_browser_lands_inside(ctx: &str, public: &Url, location: &str) {
    // Browsers strip ASCII tab and newline anywhere and leading/trailing C0
    // control or space before parsing; the `url` crate does the same.
    let Ok(landed) = public.join(location) else {
        return; // a browser would not follow it either
    };
    assert!(
        matches!(landed.scheme(), "https" | "http"),
        "{ctx}: lands on scheme {:?}",
        landed.scheme()
    );
    assert!(
        landed.username().is_empty() && landed.password().is_none(),
        "{ctx}: lands with userinfo in {landed}"
    );
    if landed.origin() == public.origin() {
        return;
    }
    let host = landed.host_str().unwrap_or_default().to_ascii_lowercase();
    assert!(
        is_allowed_host(&host),
        "{ctx}: lands on {landed}, another origin whose host is not allowed"
    );
    assert!(
        !(public.scheme() == "https" && landed.scheme() == "http"),
        "{ctx}: downgrades to {landed}"
    );
}

/// The allow list, as an operator reads it: exact host, or one label under `*.`.
fn is_allowed_host(host: &str) -> bool {
    host == "docs.example.com"
        || host
            .strip_suffix(".apps.example.com")
            .is_some_and(|label| !label.is_empty() && !label.contains('.'))
}
