//! Small parsers for the shapes config values take: durations, host patterns, HTTP
//! tokens, base64 keys, files that must be readable. Each returns the parsed value or
//! an operator-facing message that quotes the input (callers never pass secrets here
//! except to [`session_key`], whose messages do not quote it).

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;

use super::types::Secret;

/// Parses `"90s"`, `"30m"`, `"1h30m"`.
pub(super) fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?} ({e}), expected a duration such as \"90s\"")
    })
}

/// Parses `host:port` where host is an IP address (`0.0.0.0:4180`, `[::]:4180`).
pub(super) fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!("invalid listen address {text:?}, expected IP:PORT such as \"0.0.0.0:4180\"")
    })
}

/// A `trusted_proxies` entry: a CIDR (`10.0.0.0/8`) or a bare IP (one host).
pub(super) fn trusted_proxy(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        // `10.1.2.3/8` is almost certainly meant as `10.0.0.0/8`; store it that way.
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("invalid CIDR or IP address {text:?}"))
}

/// Returns true if and only if `name` is a DNS hostname: dot-separated labels of
/// letters, digits and inner hyphens, 1–63 bytes each, 253 in all.
pub(super) fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A host pattern (`route.host`, and the host of [`redirect_host`]): a hostname, or
/// `*.` and a hostname for exactly one label more. Lowercased; no port.
pub(super) fn host_pattern(text: &str) -> Result<String, String> {
    let lower = text.trim().to_ascii_lowercase();
    let host = lower.strip_prefix("*.").unwrap_or(&lower);
    if is_hostname(host) {
        Ok(lower)
    } else if host.contains(':') {
        Err(format!("invalid host {text:?}: a host pattern has no port"))
    } else {
        Err(format!(
            "invalid host {text:?}, expected a hostname such as \"app.example.com\" or \"*.example.com\""
        ))
    }
}

/// A `server.allowed_redirect_hosts` entry: a [`host_pattern`] and an optional
/// `:PORT` (1–65535, digits only), normalized to lowercase `host[:port]`.
///
/// There is no "any port" form: `host` admits the scheme's default port and
/// `host:8443` only 8443, so a wildcard or empty port is refused rather than
/// read as one of those.
pub(super) fn redirect_host(text: &str) -> Result<String, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (host, port) = match lower.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (lower.as_str(), None),
    };
    let name = host.strip_prefix("*.").unwrap_or(host);
    if !is_hostname(name) {
        return Err(format!(
            "invalid redirect host {text:?}, expected a hostname such as \"app.example.com\" \
             or \"*.example.com\", optionally with a port such as \":8443\""
        ));
    }
    let Some(port) = port else {
        return Ok(lower);
    };
    let number = Some(port)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|&n| n != 0);
    match number {
        // Written back as a number, so `:08443` and `:8443` are one entry.
        Some(n) => Ok(format!("{host}:{n}")),
        None => Err(format!(
            "invalid port in redirect host {text:?}, expected a number from 1 to 65535 \
             (without a port only the scheme's default port is allowed; there is no \"any port\")"
        )),
    }
}

/// An `email_domains` entry: a plain domain, lowercased (no `@`, no wildcard).
pub(super) fn email_domain(text: &str) -> Result<String, String> {
    let lower = text.trim().to_ascii_lowercase();
    if is_hostname(&lower) {
        Ok(lower)
    } else {
        Err(format!(
            "invalid email domain {text:?}, expected a plain domain such as \"example.com\""
        ))
    }
}

/// Returns true if and only if `text` is an RFC 9110 §5.6.2 token: the syntax of HTTP
/// method names and of cookie names (RFC 6265 §4.1.1).
pub(super) fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An HTTP method name, uppercased (`get` → `GET`).
pub(super) fn method(text: &str) -> Result<String, String> {
    let upper = text.trim().to_ascii_uppercase();
    if is_token(&upper) {
        Ok(upper)
    } else {
        Err(format!("invalid HTTP method {text:?}"))
    }
}

/// A `path` or `path_exact`: what a normalized request path (SPEC §3) can equal, so
/// a rule that could never match is caught here rather than in production.
pub(super) fn rule_path(text: &str) -> Result<(), String> {
    if !text.starts_with('/') {
        return Err(format!("path {text:?} must start with \"/\""));
    }
    if text == "/" {
        return Ok(());
    }
    if text.contains(['?', '#']) || text.chars().any(char::is_control) {
        return Err(format!(
            "path {text:?} may not contain \"?\", \"#\" or control characters"
        ));
    }
    let segments = text[1..].split('/');
    let trailing = text.len() > 1 && text.ends_with('/');
    let inner = segments.clone().count() - usize::from(trailing);
    if segments
        .take(inner)
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!(
            "path {text:?} is not normalized (empty, \".\" or \"..\" segment), so no request would match it"
        ));
    }
    Ok(())
}

/// The bytes of a base64 session key: standard or URL-safe alphabet, padded or not.
///
/// # Errors
///
/// A message that does not quote the secret.
pub(super) fn session_key(secret: &Secret) -> Result<Vec<u8>, String> {
    let bytes = secret
        .decode_base64()
        .ok_or_else(|| "is not base64 (standard or URL-safe); the value is not shown".to_owned())?;
    if bytes.len() < MIN_KEY_BYTES {
        return Err(format!(
            "decodes to {} bytes, at least {MIN_KEY_BYTES} random bytes are needed \
             (for example `openssl rand -base64 32`)",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Session keys encrypt and seal; anything shorter than 256 bits is refused.
const MIN_KEY_BYTES: usize = 32;

/// Checks that `path` is a file this process can open for reading.
pub(super) fn readable_file(path: &Path) -> Result<(), String> {
    match File::open(path) {
        Ok(file) => match file.metadata() {
            Ok(meta) if meta.is_file() => Ok(()),
            Ok(_) => Err(format!("{} is not a file", path.display())),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        },
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The contents of a secret file (a mounted Kubernetes Secret), without the trailing
/// newline editors and `echo` add.
pub(super) fn secret_file(path: &Path) -> Result<String, String> {
    readable_file(path)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(trimmed.to_owned())
}

/// A claim reference (`identity_header.claim`, a key of `claims`): the exact
/// top-level claim name when a token has it, else a dotted path into nested
/// objects, as `oidc.roles_claim` reads them (SPEC §4.2). Kept as written.
pub(super) fn claim_name(text: &str) -> Result<String, String> {
    if text.is_empty() || text.trim() != text || text.chars().any(char::is_control) {
        return Err(format!(
            "invalid claim {text:?}: a claim name or dotted path, without surrounding spaces"
        ));
    }
    if text.len() > 256 {
        return Err(format!("claim {text:?} is longer than 256 bytes"));
    }
    Ok(text.to_owned())
}
