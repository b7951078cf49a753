//! `[server]`, `[admin]` and `[upstream]`: listeners, the public origin, the protected app.

use url::Url;

use super::*;
use crate::config::raw::{RawAdmin, RawServer, RawTls, RawUpstream};

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
    Some(Admin { listen: listen? })
}

pub(super) fn upstream(raw: RawUpstream, p: &mut Problems) -> Option<Upstream> {
    let url = match raw.url {
        Some(text) => p.check("upstream.url", upstream_url(&text)),
        None => {
            p.push(
                "upstream.url",
                "required: the protected app, such as \"http://127.0.0.1:8080\"",
            );
            None
        }
    };
    let ca_file = optional_file(p, "upstream.ca_file", raw.ca_file);
    let connect_timeout = timeout(
        p,
        "upstream.connect_timeout",
        raw.connect_timeout,
        DEFAULT_CONNECT_TIMEOUT,
    );
    let response_timeout = timeout(
        p,
        "upstream.response_timeout",
        raw.response_timeout,
        DEFAULT_RESPONSE_TIMEOUT,
    );
    let pool_idle_timeout = timeout(
        p,
        "upstream.pool_idle_timeout",
        raw.pool_idle_timeout,
        DEFAULT_POOL_IDLE_TIMEOUT,
    );
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
    })
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
    Ok(url)
}

/// The URL with any user name and password replaced, for messages.
fn redact_userinfo(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}
