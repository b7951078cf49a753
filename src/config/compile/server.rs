//! `[server]`, `[admin]` and `[upstream]`: listeners, the public origin, the protected app.

use std::collections::BTreeMap;

use url::Url;

use super::*;
use crate::config::presets;
use crate::config::raw::{RawAdmin, RawIdentityHeader, RawServer, RawTls, RawUpstream};

pub(super) fn server(raw: RawServer, p: &mut Problems) -> Option<Server> {
    let listen = listen(p, "server.listen", raw.listen, DEFAULT_LISTEN);
    let public_url = match raw.public_url {
        Some(text) => p.check("server.public_url", public_url(&text)),
        None => {
            p.push(
                "server.public_url",
                "required: the origin users see, such as \"https://app.example.com\"",
            );
            None
        }
    };
    let auth_prefix = p.check(
        "server.auth_prefix",
        auth_prefix(raw.auth_prefix.as_deref().unwrap_or(DEFAULT_AUTH_PREFIX)),
    );
    let trusted_proxies = each(
        p,
        "server.trusted_proxies",
        raw.trusted_proxies,
        syntax::trusted_proxy,
    );
    let tls = match raw.tls {
        Some(raw) => tls(raw, p).map(Some),
        None => Some(None),
    };
    let allowed_redirect_hosts = each(
        p,
        "server.allowed_redirect_hosts",
        raw.allowed_redirect_hosts,
        syntax::redirect_host,
    );
    let allowed_origins = each(
        p,
        "server.allowed_origins",
        raw.allowed_origins,
        allowed_origin,
    );
    let post_logout_url = p.check(
        "server.post_logout_url",
        post_logout_url(
            raw.post_logout_url
                .as_deref()
                .unwrap_or(DEFAULT_POST_LOGOUT_URL),
        ),
    );
    let header_read_timeout = timeout(
        p,
        "server.header_read_timeout",
        raw.header_read_timeout,
        DEFAULT_HEADER_READ_TIMEOUT,
    );
    let max_header_bytes = count(raw.max_header_bytes, DEFAULT_MAX_HEADER_BYTES);
    if max_header_bytes < MIN_HEADER_BYTES {
        p.push(
            "server.max_header_bytes",
            format!("{max_header_bytes} is too small, use at least {MIN_HEADER_BYTES}"),
        );
    }
    let max_body_bytes = match raw.max_body_bytes {
        Some(Count(n)) => positive(p, "server.max_body_bytes", n).map(|n| Some(n as u64)),
        None => Some(None),
    };
    let max_connections = positive(
        p,
        "server.max_connections",
        count(raw.max_connections, DEFAULT_MAX_CONNECTIONS),
    );
    let shutdown_grace = duration(
        p,
        "server.shutdown_grace",
        raw.shutdown_grace,
        DEFAULT_SHUTDOWN_GRACE,
    );
    let templates_dir = match raw.templates_dir {
        Some(dir) => p.check(
            "server.templates_dir",
            syntax::readable_file(&dir.join("error.html")).map(|()| Some(dir)),
        ),
        None => Some(None),
    };
    let workers = match raw.workers {
        Some(Count(n)) => positive(p, "server.workers", n).map(Some),
        None => Some(None),
    };

    Some(Server {
        listen: listen?,
        public_url: public_url?,
        auth_prefix: auth_prefix?,
        trusted_proxies: trusted_proxies?,
        tls: tls?,
        allowed_redirect_hosts: allowed_redirect_hosts?,
        allowed_origins: allowed_origins?,
        post_logout_url: post_logout_url?,
        templates_dir: templates_dir?,
        header_read_timeout: header_read_timeout?,
        max_header_bytes: (max_header_bytes >= MIN_HEADER_BYTES).then_some(max_header_bytes)?,
        max_connections: max_connections?,
        max_body_bytes: max_body_bytes?,
        shutdown_grace: shutdown_grace?,
        workers: workers?,
    })
}

/// `server.public_url`: an origin, since `redirect_uri` is built from it (SPEC §2).
fn public_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?} is not an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{:?} may not contain a user name or password",
            redact_userinfo(&url)
        ));
    }
    if url.path() != "/" {
        return Err(format!(
            "{text:?} has a path; public_url is an origin (scheme, host, optional port) \
             and the proxy serves the whole host"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} may not have a query or fragment"));
    }
    Ok(url)
}

/// A `server.allowed_origins` entry: exactly `scheme://host[:port]`, kept in the
/// form a browser sends as `Origin` (lowercase, no default port, no trailing
/// `/`), so the per-request check is a plain comparison.
fn allowed_origin(text: &str) -> Result<String, String> {
    let refuse = |why: &str| Err(format!("invalid origin {text:?}: {why}"));
    if text.trim().eq_ignore_ascii_case("null") {
        return refuse("\"null\" is the origin of sandboxed and file pages, never allowed");
    }
    let Ok(url) = Url::parse(text.trim()) else {
        return refuse("expected scheme://host[:port], such as \"https://app.example.com\"");
    };
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return refuse("expected an http or https origin such as \"https://app.example.com\"");
    }
    let has_more = !url.username().is_empty()
        || url.password().is_some()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || text.trim().trim_end_matches('/').matches('/').count() != 2;
    if has_more {
        return refuse("an origin is only scheme://host[:port], with no path, query or user");
    }
    Ok(url.origin().ascii_serialization())
}

/// `server.auth_prefix`: a plain path prefix, compared literally against normalized
/// request paths, so anything normalization would rewrite is refused.
fn auth_prefix(text: &str) -> Result<String, String> {
    let refuse = |why: &str| Err(format!("{text:?} {why}"));
    if !text.starts_with('/') {
        return refuse("must start with \"/\"");
    }
    if text == "/" {
        return refuse("would hide the whole application; use a prefix such as \"/_auth\"");
    }
    if text.ends_with('/') {
        return refuse("may not end with \"/\"");
    }
    if text.contains("..") || text.contains("//") {
        return refuse("may not contain \"..\" or \"//\"");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.' | '-');
    if !text.chars().all(allowed) {
        return refuse("may contain only letters, digits, \"/\", \"_\", \".\" and \"-\"");
    }
    Ok(text.to_owned())
}

/// `server.post_logout_url`: a local path, or an absolute http(s) URL.
fn post_logout_url(text: &str) -> Result<String, String> {
    if text.starts_with('/') && !text.starts_with("//") {
        return Ok(text.to_owned());
    }
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Ok(text.to_owned())
        }
        _ => Err(format!(
            "{text:?} is neither a path starting with \"/\" nor an http or https URL"
        )),
    }
}

fn tls(raw: RawTls, p: &mut Problems) -> Option<Tls> {
    let cert_file = required_file(p, "server.tls.cert_file", raw.cert_file);
    let key_file = required_file(p, "server.tls.key_file", raw.key_file);
    Some(Tls {
        cert_file: cert_file?,
        key_file: key_file?,
    })
}

pub(super) fn admin(raw: RawAdmin, p: &mut Problems) -> Option<Admin> {
    let listen = listen(p, "admin.listen", raw.listen, DEFAULT_ADMIN_LISTEN);
    let connections_api_token =
        super::connections::api_token(p, raw.connections_api_token, raw.connections_api_token_file);
    Some(Admin {
        listen: listen?,
        connections_api_token: connections_api_token?,
    })
}

/// `[upstream]`, or `[upstreams.NAME]` when `key` is `upstreams.NAME`: every key
/// is the same in both (SPEC §11).
pub(super) fn upstream(key: &str, raw: RawUpstream, p: &mut Problems) -> Option<Upstream> {
    let at = |field: &str| format!("{key}.{field}");
    let url = match raw.url {
        Some(text) => p.check(&at("url"), upstream_url(&text)),
        None => {
            p.push(
                at("url"),
                "required: the protected app, such as \"http://127.0.0.1:8080\"",
            );
            None
        }
    };
    let ca_file = optional_file(p, &at("ca_file"), raw.ca_file);
    let connect_timeout = timeout(
        p,
        &at("connect_timeout"),
        raw.connect_timeout,
        DEFAULT_CONNECT_TIMEOUT,
    );
    let response_timeout = timeout(
        p,
        &at("response_timeout"),
        raw.response_timeout,
        DEFAULT_RESPONSE_TIMEOUT,
    );
    let pool_idle_timeout = timeout(
        p,
        &at("pool_idle_timeout"),
        raw.pool_idle_timeout,
        DEFAULT_POOL_IDLE_TIMEOUT,
    );
    let identity_preset = identity_preset(p, &at("identity_preset"), raw.identity_preset);
    let entries = identity_headers(p, &at("identity_header"), raw.identity_header);
    let identity_headers = identity_preset
        .zip(entries)
        .map(|(preset, entries)| merge_headers(presets::headers(preset), entries));
    Some(Upstream {
        url: url?,
        pass_access_token: flag(raw.pass_access_token, false),
        pass_host_header: flag(raw.pass_host_header, true),
        forward_client_authorization: flag(raw.forward_client_authorization, false),
        connect_timeout: connect_timeout?,
        response_timeout: response_timeout?,
        ca_file: ca_file?,
        pool_idle_timeout: pool_idle_timeout?,
        pool_max_idle_per_host: count(raw.pool_max_idle_per_host, DEFAULT_POOL_MAX_IDLE_PER_HOST),
        identity_preset: identity_preset?,
        identity_headers: identity_headers?,
    })
}

/// `[upstreams.NAME]` tables, each compiled under its own key.
pub(super) fn upstreams(
    raw: BTreeMap<String, RawUpstream>,
    p: &mut Problems,
) -> Option<BTreeMap<String, Upstream>> {
    let kind = super::Named {
        section: "upstreams",
        what: "upstream",
        default_section: "[upstream]",
    };
    super::named(p, &kind, raw, upstream)
}

fn identity_preset(p: &mut Problems, key: &str, raw: Option<String>) -> Option<IdentityPreset> {
    let Some(text) = raw else {
        return Some(IdentityPreset::Standard);
    };
    let found = IdentityPreset::ALL
        .into_iter()
        .find(|preset| preset.as_str() == text.trim());
    if found.is_none() {
        let names: Vec<&str> = IdentityPreset::ALL.iter().map(|p| p.as_str()).collect();
        p.push(
            key,
            format!(
                "unknown preset {text:?}, expected one of {}",
                names.join(", ")
            ),
        );
    }
    found
}

fn identity_headers(
    p: &mut Problems,
    key: &str,
    raw: Option<Vec<RawIdentityHeader>>,
) -> Option<Vec<IdentityHeader>> {
    let mut all = Some(Vec::new());
    let mut seen: Vec<String> = Vec::new();
    for (i, raw) in raw.unwrap_or_default().into_iter().enumerate() {
        let at = |field: &str| format!("{key}[{i}].{field}");
        let header = identity_header(p, &at, raw);
        if let Some(header) = &header {
            let lower = header.name.to_ascii_lowercase();
            if seen.contains(&lower) {
                p.push(at("name"), format!("{:?} is listed twice", header.name));
                all = None;
            }
            seen.push(lower);
        }
        all = all.zip(header).map(|(mut all, header)| {
            all.push(header);
            all
        });
    }
    all
}

fn identity_header(
    p: &mut Problems,
    at: &dyn Fn(&str) -> String,
    raw: RawIdentityHeader,
) -> Option<IdentityHeader> {
    let name = match raw.name {
        Some(name) => p.check(&at("name"), identity_header_name(&name)),
        None => {
            p.push(at("name"), "required: the header name the app reads");
            None
        }
    };
    let claim = match raw.claim {
        Some(claim) => p.check(&at("claim"), syntax::claim_name(&claim)),
        None => {
            p.push(
                at("claim"),
                "required: a claim name or dotted path, or \"roles\"",
            );
            None
        }
    };
    let multi = match raw.multi.as_deref().map(str::trim) {
        None | Some("join") => Some(HeaderMulti::Join),
        Some("repeat") => Some(HeaderMulti::Repeat),
        Some("json") => Some(HeaderMulti::Json),
        Some(other) => {
            p.push(
                at("multi"),
                format!("unknown {other:?}, expected one of join, repeat, json"),
            );
            None
        }
    };
    let separator = match raw.separator {
        None => Some(",".to_owned()),
        Some(sep) => p.check(&at("separator"), separator(&sep)),
    };
    Some(IdentityHeader {
        name: name?,
        claim: claim?,
        multi: multi?,
        separator: separator?,
        required: flag(raw.required, false),
    })
}

/// An identity header name: an RFC 9110 token that is not one the proxy sets
/// itself or that carries the request (a claim must never choose `Host`).
fn identity_header_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if !syntax::is_token(name) {
        return Err(format!("invalid header name {text:?}"));
    }
    let lower = name.to_ascii_lowercase();
    const RESERVED: &[&str] = &[
        "host",
        "cookie",
        "authorization",
        "connection",
        "upgrade",
        "content-length",
        "transfer-encoding",
        "te",
        "trailer",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "expect",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-real-ip",
        "x-request-id",
        "x-portcullis-identity",
        "forwarded",
    ];
    if RESERVED.contains(&lower.as_str()) || lower.starts_with("sec-") || lower.starts_with(':') {
        return Err(format!(
            "{name:?} is set by the proxy or the client's transport; choose another header name"
        ));
    }
    Ok(name.to_owned())
}

/// A `join` separator: one to four visible ASCII characters or spaces, not
/// only spaces, and not `%` (the escape character of the values).
fn separator(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 4
        && text.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        && !text.contains('%')
        && !text.trim().is_empty();
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "invalid separator {text:?}: one to four visible characters, not \"%\""
        ))
    }
}

/// The preset's headers, then the entries: an entry with a preset header's
/// name (any case) takes its place.
fn merge_headers(preset: Vec<IdentityHeader>, entries: Vec<IdentityHeader>) -> Vec<IdentityHeader> {
    let mut out: Vec<IdentityHeader> = preset
        .into_iter()
        .filter(|h| !entries.iter().any(|e| e.name.eq_ignore_ascii_case(&h.name)))
        .collect();
    out.extend(entries);
    out
}

fn upstream_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?} is not an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} may not have a query or fragment"));
    }
    // Credentials in the URL would be dropped (the proxy sends none of its
    // own upstream) and printed by `portcullis check`: refuse them.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{:?} may not contain a user name or password: portcullis sends no credentials of its own upstream",
            redact_userinfo(&url)
        ));
    }
    Ok(url)
}

/// The URL with any user name and password replaced, for messages.
fn redact_userinfo(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}
