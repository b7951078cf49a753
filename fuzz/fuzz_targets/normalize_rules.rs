//! Fuzz target: the normalized path never escapes a rule it should be inside.
//!
//! For arbitrary bytes as a request target, `normalize_str` must either refuse
//! it or return a target such that:
//!
//! - nothing ambiguous is left (one leading `/`, no `//`, no dot segment, only
//!   visible ASCII, no `\`, no `;` in `match_path`), and normalizing again
//!   changes nothing;
//! - every way a naive upstream reads the forwarded path (percent-decode,
//!   resolve dot segments clamping at the root, cut `;params`, in each order, or
//!   decoding twice) gives the path the rules matched, so in particular it lies
//!   under `/admin` if and only if `match_path` does;
//! - a real route table with a `deny` rule on `/admin` decides `deny` exactly
//!   when the path is under `/admin` in any ASCII case (path rules ignore case,
//!   because some upstreams fold it);
//! - parsed through `http::Uri` as hyper would, the target normalizes alike.
//!
//! Any violation panics, which libFuzzer reports with the input.

#![no_main]

use std::sync::OnceLock;

use http::Method;
use libfuzzer_sys::fuzz_target;
use portcullis::config::{self, AuthMode};
use portcullis::policy::normalize::{normalize, normalize_str, Target};
use portcullis::policy::route::{is_segment_prefix, RouteTable};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
});

fn check(input: &str) {
    let Ok(target) = normalize_str(input) else {
        return;
    };
    let path = target.path().as_str();
    let match_path = target.match_path();
    assert_unambiguous(path);
    assert_unambiguous(match_path);
    assert!(
        !match_path.contains(';'),
        "{input:?}: params left in {match_path:?}"
    );

    let again = normalize_str(&target.path_and_query());
    assert_eq!(again.as_ref(), Ok(&target), "{input:?}: not idempotent");

    let rules_read = rules_read(match_path);
    let rules_see_admin = is_segment_prefix("/admin", match_path);
    for view in upstream_views(path) {
        assert_eq!(
            view, rules_read,
            "{input:?}: upstream reads {path:?} as {view:?}"
        );
        assert_eq!(
            is_under_admin(&view),
            rules_see_admin,
            "{input:?}: {path:?} escapes the /admin rule as {view:?}"
        );
    }

    let rule = table().find(Some("app.test"), &Method::GET, match_path);
    assert_eq!(
        rule.auth == AuthMode::Deny,
        is_segment_prefix("/admin", &match_path.to_ascii_lowercase()),
        "{input:?}: rule {}",
        rule.name
    );

    assert_uri_agrees(input, &target);
}

/// The invariants of a normal path.
fn assert_unambiguous(path: &str) {
    assert!(path.starts_with('/'), "{path:?}");
    assert!(!path.contains("//"), "{path:?}");
    assert!(
        path.bytes()
            .all(|b| (0x21..=0x7E).contains(&b) && b != b'\\' && b != b'#'),
        "{path:?}"
    );
    for segment in path.split('/') {
        let name = segment.split(';').next().unwrap_or(segment);
        assert!(name != "." && name != "..", "dot segment in {path:?}");
    }
}

/// hyper hands `normalize` a parsed `Uri`: it must agree with the string form.
fn assert_uri_agrees(input: &str, target: &Target) {
    if input.contains('#') {
        return; // `Uri` drops a fragment that `normalize_str` refuses
    }
    if let Ok(uri) = input.parse::<http::Uri>() {
        let parsed = normalize(&uri, http::Version::HTTP_11);
        assert_eq!(parsed.as_ref(), Ok(target), "{input:?} through http::Uri");
    }
}

/// The rules' path as an upstream would print it: decoded, without the trailing
/// `/` that resolving drops.
fn rules_read(match_path: &str) -> String {
    let decoded = decode(match_path);
    match decoded.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => trimmed.to_owned(),
        _ => decoded,
    }
}

/// What an upstream routes on, in each order real stacks apply the steps in.
fn upstream_views(path: &str) -> [String; 3] {
    [
        resolve(&decode(&cut_params(path))),
        resolve(&cut_params(&decode(path))),
        resolve(&cut_params(&decode(&decode(path)))),
    ]
}

fn decode(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

fn cut_params(path: &str) -> String {
    path.split('/')
        .map(|segment| segment.split(';').next().unwrap_or(segment))
        .collect::<Vec<_>>()
        .join("/")
}

fn resolve(path: &str) -> String {
    let mut stack = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            name => stack.push(name),
        }
    }
    format!("/{}", stack.join("/"))
}

fn is_under_admin(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// `deny` on `/admin`, `public` on `/`, loaded through the real config loader.
fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("portcullis-fuzz-{}.toml", std::process::id()));
        let text = r#"
[server]
public_url = "http://app.test"
[upstream]
url = "http://127.0.0.1:9"
[oidc]
issuer = "http://127.0.0.1:9/"
client_id = "portcullis"
client_secret = "fuzz-secret"

[[route]]
name = "admin"
path = "/admin"
auth = "deny"

[[route]]
name = "public"
path = "/"
auth = "public"
"#;
        std::fs::write(&path, text).expect("write the fuzz config");
        let config = config::load_with_env(&path, &[]).expect("the fuzz config is valid");
        let _ = std::fs::remove_file(&path);
        RouteTable::new(&config)
    })
}
