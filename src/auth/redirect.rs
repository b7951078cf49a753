//! Post-login and post-logout redirect targets (SPEC §4.1): every target is
//! hostile until proven same-origin or on `server.allowed_redirect_hosts`.
//!
//! Browsers are lenient where parsers are strict: they read `\` as `/`, drop tabs
//! and newlines inside URLs, and treat `//host` and `/\host` as another origin.
//! So anything with a backslash, a control character or whitespace is refused
//! outright, before any parsing, and a relative target must start with exactly
//! one `/` followed by something other than `/` or `\`.
//!
//! An allowlist entry names a port as well as a host: `app.example.com` admits
//! only the scheme's default port and `app.example.com:8443` only 8443, because
//! another port on a trusted name is often another service (a dev server, an
//! admin console) that the operator never meant to trust.

use url::Url;

/// Where to send the browser after login: `rd` when safe, else `/`.
pub fn safe_target(rd: Option<&str>, public_url: &Url, allowed_hosts: &[String]) -> String {
    rd.and_then(|rd| checked(rd, public_url, allowed_hosts))
        .unwrap_or_else(|| "/".to_owned())
}

/// `rd` as a safe redirect target, or `None`.
pub fn checked(rd: &str, public_url: &Url, allowed_hosts: &[String]) -> Option<String> {
    if rd.is_empty()
        || rd.len() > 2048
        || rd
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
    {
        return None;
    }
    // A decoded form that turns into a scheme-relative or backslash URL is refused
    // too: some apps and browsers decode once more before following.
    let decoded = percent_encoding::percent_decode_str(rd)
        .decode_utf8()
        .ok()?;
    if decoded.chars().any(|c| c == '\\' || c.is_control()) {
        return None;
    }
    if rd.starts_with('/') {
        return relative(rd, &decoded, public_url);
    }
    absolute(rd, public_url, allowed_hosts)
}

fn relative(rd: &str, decoded: &str, public_url: &Url) -> Option<String> {
    if rd.starts_with("//") || decoded.starts_with("//") {
        return None;
    }
    // Resolve against the public origin and confirm it stayed there.
    let resolved = public_url.join(rd).ok()?;
    if resolved.origin() != public_url.origin() {
        return None;
    }
    Some(rd.to_owned())
}

fn absolute(rd: &str, public_url: &Url, allowed_hosts: &[String]) -> Option<String> {
    let url = Url::parse(rd).ok()?;
    if !matches!(url.scheme(), "https" | "http") {
        return None;
    }
    if url.scheme() == "http" && public_url.scheme() == "https" {
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let is_public_origin = url.origin() == public_url.origin();
    let is_allowed = allowed_hosts
        .iter()
        .any(|allowed| entry_admits(allowed, &host, &url));
    (is_public_origin || is_allowed).then(|| url.to_string())
}

/// Returns true if and only if the allowlist entry `allowed` (`host[:port]`, as
/// config normalizes it) admits `host` on the port `url` would connect to.
fn entry_admits(allowed: &str, host: &str, url: &Url) -> bool {
    let Some((pattern, port)) = split_entry(allowed) else {
        return false;
    };
    // A portless entry means "this host as users normally reach it", which is
    // the scheme's default port, never "any port".
    let Some(wanted) = port.or_else(|| default_port(url.scheme())) else {
        return false;
    };
    host_matches(pattern, host) && url.port_or_known_default() == Some(wanted)
}

/// `host` or `host:PORT` into the host pattern and the port, or `None` for an
/// entry config would have refused (so a bad entry admits nothing).
fn split_entry(allowed: &str) -> Option<(&str, Option<u16>)> {
    let Some((pattern, port)) = allowed.rsplit_once(':') else {
        return Some((allowed, None));
    };
    // `u16::from_str` takes a leading `+`; an entry is plain digits only.
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port = port.parse::<u16>().ok().filter(|&p| p != 0)?;
    Some((pattern, Some(port)))
}

/// The port a browser uses for `scheme` when the URL names none.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

/// `allowed` is exact or `*.example.com` (one label); no port.
fn host_matches(allowed: &str, host: &str) -> bool {
    match allowed.strip_prefix('*') {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => allowed == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public() -> Url {
        Url::parse("https://app.example.com").expect("url")
    }

    const ALLOWED: &[&str] = &["docs.example.com", "*.apps.example.com"];

    fn check(rd: &str) -> Option<String> {
        let allowed: Vec<String> = ALLOWED.iter().map(|s| (*s).to_owned()).collect();
        checked(rd, &public(), &allowed)
    }

    #[test]
    fn accepts_same_origin_paths_and_allowed_hosts() {
        for rd in [
            "/",
            "/dashboard",
            "/a/b?x=1&y=%2F#frag",
            "/path;param",
            "https://app.example.com/x",
            "https://docs.example.com/guide",
            "https://team.apps.example.com/",
        ] {
            assert!(check(rd).is_some(), "{rd} must be accepted");
        }
    }

    #[test]
    fn refuses_the_open_redirect_corpus() {
        // Payloads from the oauth2-proxy, Pomerium and mod_auth_openidc advisories
        // and the common open-redirect lists.
        let corpus = [
            "//evil.com",
            "///evil.com",
            "////evil.com",
            "/\\evil.com",
            "\\/evil.com",
            "\\\\evil.com",
            "/\\/evil.com",
            "/%2F/evil.com",
            "/%2f%2fevil.com",
            "/%5Cevil.com",
            "/%5cevil.com",
            "/\t/evil.com",
            "/\n/evil.com",
            "/\r\n/evil.com",
            "/ /evil.com",
            "https://evil.com",
            "http://evil.com",
            "https://evil.com/https://app.example.com",
            "https://app.example.com@evil.com",
            "https://app.example.com:443@evil.com/",
            "https://user:pass@app.example.com/",
            "https://app.example.com.evil.com",
            "https://evilapp.example.com",
            "https://a.b.apps.example.com/",
            "https://apps.example.com/",
            "http://app.example.com/",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "//google.com/%2f..",
            "/%09/evil.com",
            "/%0d%0a/evil.com",
            "evil.com",
            "//evil.com@app.example.com",
            "https:evil.com",
            "https:/evil.com",
            "ftp://app.example.com/",
            "",
            "/\u{3002}evil.com\\",
            "/x\u{0000}",
        ];
        assert!(corpus.len() >= 30);
        for rd in corpus {
            assert_eq!(check(rd), None, "{rd:?} must be refused");
        }
    }

    /// `(allowlist entry, rd)` pairs for the port rule, public origin
    /// `https://app.example.com`.
    const PORT_ACCEPTED: &[(&str, &str)] = &[
        ("trusted.example.com", "https://trusted.example.com/x"),
        // The explicit default port is the default port.
        ("trusted.example.com", "https://trusted.example.com:443/x"),
        (
            "trusted.example.com:8443",
            "https://trusted.example.com:8443/x",
        ),
        // An entry's port is compared with the port the URL connects to, so
        // `:443` admits the portless https URL too.
        ("trusted.example.com:443", "https://trusted.example.com/x"),
        ("*.example.com", "https://team.example.com/x"),
        ("*.example.com", "https://team.example.com:443/x"),
        ("*.example.com:8443", "https://team.example.com:8443/x"),
        (
            "trusted.example.com:65535",
            "https://trusted.example.com:65535/",
        ),
        ("trusted.example.com:1", "https://trusted.example.com:1/"),
    ];

    const PORT_REFUSED: &[(&str, &str)] = &[
        // oauth2-proxy's "Invalid Port on Allowed Domain".
        ("trusted.example.com", "https://trusted.example.com:8443/x"),
        ("trusted.example.com", "https://trusted.example.com:80/x"),
        ("trusted.example.com", "https://trusted.example.com:0/x"),
        ("trusted.example.com", "https://trusted.example.com:65535/x"),
        ("trusted.example.com:8443", "https://trusted.example.com/x"),
        (
            "trusted.example.com:8443",
            "https://trusted.example.com:443/x",
        ),
        (
            "trusted.example.com:8443",
            "https://trusted.example.com:9443/x",
        ),
        (
            "trusted.example.com:8443",
            "https://trusted.example.com:18443/x",
        ),
        (
            "trusted.example.com:8443",
            "https://other.example.com:8443/x",
        ),
        ("*.example.com", "https://team.example.com:8443/x"),
        ("*.example.com:8443", "https://team.example.com/x"),
        ("*.example.com:8443", "https://team.example.com:9443/x"),
        ("*.example.com:8443", "https://a.team.example.com:8443/x"),
        // Out of range: the URL does not parse.
        ("trusted.example.com", "https://trusted.example.com:65536/x"),
        (
            "trusted.example.com:65535",
            "https://trusted.example.com:65536/x",
        ),
        // Entries config refuses admit nothing here either.
        ("trusted.example.com:0", "https://trusted.example.com:0/x"),
        (
            "trusted.example.com:*",
            "https://trusted.example.com:8443/x",
        ),
        ("trusted.example.com:*", "https://trusted.example.com/x"),
        ("trusted.example.com:", "https://trusted.example.com/x"),
        (
            "trusted.example.com:+8443",
            "https://trusted.example.com:8443/x",
        ),
        ("trusted.example.com:99999", "https://trusted.example.com/x"),
        // Userinfo before the port: refused whatever the port says.
        (
            "trusted.example.com:8443",
            "https://user@trusted.example.com:8443/x",
        ),
        (
            "trusted.example.com:8443",
            "https://u:p@trusted.example.com:8443/x",
        ),
        (
            "trusted.example.com",
            "https://trusted.example.com:8443@evil.com/x",
        ),
        (
            "trusted.example.com:8443",
            "https://trusted.example.com:8443@evil.com/x",
        ),
        ("evil.com", "https://trusted.example.com:443@evil.com/x"),
    ];

    fn check_with(entry: &str, rd: &str, public: &Url) -> Option<String> {
        checked(rd, public, &[entry.to_owned()])
    }

    #[test]
    fn allowlist_entries_admit_only_their_port() {
        let mut wrong = Vec::new();
        for (entry, rd) in PORT_ACCEPTED {
            if check_with(entry, rd, &public()).is_none() {
                wrong.push(format!("refused: {entry:?} {rd:?}"));
            }
        }
        for (entry, rd) in PORT_REFUSED {
            if let Some(target) = check_with(entry, rd, &public()) {
                wrong.push(format!("accepted: {entry:?} {rd:?} -> {target:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn a_portless_entry_admits_the_default_port_of_each_scheme() {
        // Only an http public origin lets http targets through at all.
        let public = Url::parse("http://app.example.com").expect("url");
        let entry = "trusted.example.com";
        for rd in [
            "http://trusted.example.com/x",
            "http://trusted.example.com:80/x",
            "https://trusted.example.com/x",
            "https://trusted.example.com:443/x",
        ] {
            assert!(check_with(entry, rd, &public).is_some(), "{rd} refused");
        }
        // 443 is https's default, not http's, and the other way round.
        for rd in [
            "http://trusted.example.com:443/x",
            "https://trusted.example.com:80/x",
            "http://trusted.example.com:8080/x",
        ] {
            assert_eq!(check_with(entry, rd, &public), None, "{rd} accepted");
        }
        let entry = "trusted.example.com:8080";
        assert!(check_with(entry, "http://trusted.example.com:8080/", &public).is_some());
        assert_eq!(
            check_with(entry, "http://trusted.example.com/", &public),
            None
        );
    }

    #[test]
    fn the_public_origin_is_admitted_by_origin_not_by_the_allowlist() {
        let public = Url::parse("https://app.example.com:8443").expect("url");
        assert!(checked("https://app.example.com:8443/x", &public, &[]).is_some());
        assert_eq!(checked("https://app.example.com/x", &public, &[]), None);
        assert_eq!(
            checked("https://app.example.com:9443/x", &public, &[]),
            None
        );
    }

    #[test]
    fn the_explicit_default_port_is_normalized_away() {
        let target = check_with(
            "trusted.example.com",
            "https://trusted.example.com:443/x",
            &public(),
        );
        assert_eq!(target.as_deref(), Some("https://trusted.example.com/x"));
    }

    #[test]
    fn unsafe_targets_fall_back_to_the_root() {
        assert_eq!(safe_target(Some("//evil.com"), &public(), &[]), "/");
        assert_eq!(safe_target(None, &public(), &[]), "/");
        assert_eq!(safe_target(Some("/ok"), &public(), &[]), "/ok");
    }
}
