//! Fuzz target: cookie headers, session ids and sealed login state.
//!
//! For arbitrary bytes, read as one or more `Cookie` header values (split at
//! `\n`), and as a bare cookie value:
//!
//! - nothing panics: `SessionId::parse`, `Cookies::session_id`, `Cookies::one`,
//!   `Sealer::open`/`open_text`, `Cookies::login_name` and the `Set-Cookie`
//!   builders fed with what they produce;
//! - a session id is accepted only in the exact shape of one (43 characters of
//!   unpadded, canonical base64url of 32 bytes), only when the session cookie
//!   appears exactly once, and it round-trips: `parse(id.as_str())` is the same
//!   id, and the `Set-Cookie` the proxy would send for it reads back as it;
//! - nothing opens as sealed login state (or anything else sealed with the
//!   proxy's key): the input cannot carry a valid AES-GCM tag;
//! - and, for inputs starting with `seal:`, what the sealer seals opens to the
//!   same bytes at its place only, and any changed character makes it unopenable.
//!
//! Any violation panics, which libFuzzer reports with the input.

#![no_main]

#[path = "../common/mod.rs"]
mod common;

use std::sync::OnceLock;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis::config::Secret;
use portcullis::session::cookie::Cookies;
use portcullis::session::seal::Sealer;
use portcullis::session::SessionId;

/// The `state` of the login whose cookie the harness looks for.
const STATE: &str = "q8Jd0fZ2LmXv7RkTn3YwA5sC9eHgUbPi";

fuzz_target!(|data: &[u8]| {
    if let Some(plaintext) = data.strip_prefix(b"seal:") {
        check_seal_round_trip(plaintext);
        return;
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_bare_value(text);
    }
    let headers = cookie_headers(data);
    for cookies in cookie_sets() {
        check_session_cookie(cookies, &headers);
        check_login_cookie(cookies, &headers, data);
    }
    check_never_opens(data);
});

/// The proxy's cookies for an https and a plain-http public URL, and for a
/// cookie domain: `__Host-`, bare and `__Secure-` names.
fn cookie_sets() -> &'static [Cookies] {
    static SETS: OnceLock<Vec<Cookies>> = OnceLock::new();
    SETS.get_or_init(|| {
        [
            common::config_text("https://app.example.com", ""),
            common::config_text("http://app.example.com:8080", ""),
            common::config_text(
                "https://app.example.com",
                "[session]\ncookie_domain = \"example.com\"\ncookie_name = \"sid\"",
            ),
        ]
        .iter()
        .map(|text| Cookies::new(&common::load_valid(text)))
        .collect()
    })
}

/// The login-state sealer, with a fixed key so runs are reproducible.
fn sealer() -> &'static Sealer {
    static SEALER: OnceLock<Sealer> = OnceLock::new();
    SEALER.get_or_init(|| {
        let secret = Secret::new(STANDARD.encode(*b"portcullis fuzz login-state key!"));
        Sealer::from_secrets(&[secret], "portcullis login state").expect("a 32-byte key")
    })
}

/// Each `\n`-separated part that is a valid header value becomes one `Cookie` header.
fn cookie_headers(data: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for part in data.split(|&b| b == b'\n').take(8) {
        if let Ok(value) = HeaderValue::from_bytes(part) {
            headers.append(header::COOKIE, value);
        }
    }
    headers
}

/// A well-formed id: 43 characters of canonical unpadded base64url of 32 bytes.
fn assert_well_formed(ctx: &str, id: &str) {
    assert_eq!(id.len(), 43, "{ctx}: id {id:?} is not 43 characters");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{ctx}: id {id:?} has a character outside base64url"
    );
    let bytes = URL_SAFE_NO_PAD
        .decode(id)
        .unwrap_or_else(|e| panic!("{ctx}: id {id:?} is not base64url: {e}"));
    assert_eq!(bytes.len(), 32, "{ctx}: id {id:?} is not 256 bits");
    assert_eq!(
        URL_SAFE_NO_PAD.encode(&bytes),
        id,
        "{ctx}: id {id:?} is not canonical"
    );
}

fn check_bare_value(text: &str) {
    if let Some(id) = SessionId::parse(text) {
        assert_eq!(id.as_str(), text, "parse changed {text:?}");
        assert_well_formed("bare value", id.as_str());
        assert_eq!(SessionId::parse(id.as_str()), Some(id.clone()));
        let _ = id.key().short();
    }
}

/// Every `name=value` pair of the `Cookie` headers, as RFC 6265 §5.4 sends them.
fn pairs(headers: &HeaderMap) -> Vec<(&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .map(|(n, v)| (n.trim(), v.trim()))
        .collect()
}

fn check_session_cookie(cookies: &Cookies, headers: &HeaderMap) {
    let name = cookies.session_name();
    let Some(id) = cookies.session_id(headers) else {
        return;
    };
    let ctx = format!("session cookie {name} in {headers:?}");
    assert_well_formed(&ctx, id.as_str());
    let named: Vec<&str> = pairs(headers)
        .into_iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        named,
        [id.as_str()],
        "{ctx}: accepted without exactly one cookie of that name carrying the id"
    );
    assert_eq!(SessionId::parse(id.as_str()).as_ref(), Some(&id), "{ctx}");

    // What the proxy would set for this id is read back as the same id.
    let set_cookie = cookies.set_session(&id);
    let set_cookie = set_cookie.to_str().expect("Set-Cookie is visible ASCII");
    let sent = set_cookie.split(';').next().unwrap_or_default();
    let mut back = HeaderMap::new();
    back.insert(
        header::COOKIE,
        HeaderValue::from_str(sent).expect("a cookie pair"),
    );
    assert_eq!(
        cookies.session_id(&back).as_ref(),
        Some(&id),
        "{ctx}: {set_cookie:?} does not read back"
    );
    let _ = cookies.clear_session();
}

fn check_login_cookie(cookies: &Cookies, headers: &HeaderMap, data: &[u8]) {
    // Names come from the `state` query parameter: any text must make a
    // header-safe name (the builders `expect` it).
    let state = String::from_utf8_lossy(data);
    for name in [cookies.login_name(STATE), cookies.login_name(&state)] {
        let _ = cookies.clear_login(&name);
        let _ = cookies.set_login(&name, "x".to_owned());
        if let Some(value) = cookies.one(headers, &name) {
            assert!(
                sealer().open_text(name.as_bytes(), value).is_none(),
                "login-state cookie {name}={value:?} opened"
            );
        }
    }
}

fn check_never_opens(data: &[u8]) {
    let sealer = sealer();
    let name = cookie_sets()[0].login_name(STATE);
    for aad in [&b""[..], name.as_bytes(), data] {
        assert!(sealer.open(aad, data).is_none(), "raw bytes opened");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(
            sealer.open_text(name.as_bytes(), text).is_none(),
            "text {text:?} opened"
        );
        for (n, v) in text.split(';').filter_map(|pair| pair.split_once('=')) {
            assert!(
                sealer.open_text(n.trim().as_bytes(), v.trim()).is_none(),
                "cookie {n}={v:?} opened"
            );
        }
    }
}

fn check_seal_round_trip(plaintext: &[u8]) {
    let sealer = sealer();
    let name = cookie_sets()[0].login_name(STATE);
    let sealed = sealer.seal_text(name.as_bytes(), plaintext);
    assert_eq!(
        sealer.open_text(name.as_bytes(), &sealed).as_deref(),
        Some(plaintext),
        "sealed state does not open"
    );
    assert!(
        sealer.open_text(b"elsewhere", &sealed).is_none(),
        "opened at another place"
    );
    // Change one character (chosen by the input) to another base64url one.
    let position = plaintext.iter().map(|&b| usize::from(b)).sum::<usize>() % sealed.len();
    let mut changed: Vec<u8> = sealed.clone().into_bytes();
    changed[position] = if changed[position] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let changed = String::from_utf8(changed).expect("base64url is ASCII");
    assert!(
        sealer.open_text(name.as_bytes(), &changed).is_none(),
        "opened after changing character {position} of {sealed:?}"
    );
    let _ = cookie_sets()[0].set_login(&name, sealed);
}
