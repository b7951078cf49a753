//! Post-login and post-logout redirect targets (SPEC §4.1): every target is
//! hostile until proven same-origin or on `server.allowed_redirect_hosts`.
//!
//! Browsers are lenient where parsers are strict: they read `\` as `/`, drop tabs
//! and newlines inside URLs, and treat `//host` and `/\host` as another origin.
//! So anything with a backslash, a control character or whitespace is refused
//! outright, before any parsing, and a relative target must start with exactly
//! one `/` followed by something other than `/` or `\`.

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
        .any(|allowed| host_matches(allowed, &host));
    (is_public_origin || is_allowed).then(|| url.to_string())
}

/// `allowed` is exact or `*.example.com` (one label).
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

    #[test]
    fn unsafe_targets_fall_back_to_the_root() {
        assert_eq!(safe_target(Some("//evil.com"), &public(), &[]), "/");
        assert_eq!(safe_target(None, &public(), &[]), "/");
        assert_eq!(safe_target(Some("/ok"), &public(), &[]), "/ok");
    }
}
