//! `[connections.NAME]`: third-party OAuth 2.0 services whose tokens the proxy
//! holds for each user (SPEC §13), and `admin.connections_api_token`.

use std::collections::BTreeMap;

use url::Url;

use super::oidc::{auth_params, is_loopback, issuer};
use super::*;
use crate::config::raw::RawConnection;

/// Headers a connection's token may not be written to: the proxy or HTTP itself
/// owns them, so a token there would break the request or leak to the wrong hop.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "cookie",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "forwarded",
    "set-cookie",
    "x-request-id",
    "x-portcullis-identity",
];

/// The shortest `admin.connections_api_token`: it hands out every user's tokens.
const MIN_API_TOKEN_CHARS: usize = 32;

/// `[connections.NAME]` tables, each compiled under its own key.
pub(super) fn connections(
    raw: BTreeMap<String, RawConnection>,
    p: &mut Problems,
) -> Option<BTreeMap<String, Connection>> {
    let kind = super::Named {
        section: "connections",
        what: "connection",
        default_section: "nothing (it is reserved)",
    };
    super::named(p, &kind, raw, connection)
}

/// One connection at `key` (`connections.github`).
fn connection(key: &str, raw: RawConnection, p: &mut Problems) -> Option<Connection> {
    let at = |field: &str| format!("{key}.{field}");
    let name = key.rsplit('.').next().unwrap_or(key);
    let issuer = match raw.issuer {
        Some(text) => p.check(&at("issuer"), issuer(&text)).map(Some),
        None => Some(None),
    };
    let authorization_endpoint =
        endpoint(p, &at("authorization_endpoint"), raw.authorization_endpoint);
    let token_endpoint = endpoint(p, &at("token_endpoint"), raw.token_endpoint);
    let revocation_endpoint = endpoint(p, &at("revocation_endpoint"), raw.revocation_endpoint);
    if let (Some(None), Some(ep)) = (&issuer, &authorization_endpoint) {
        if ep.is_none() {
            p.push(
                at("authorization_endpoint"),
                format!(
                    "required without {} (or set the issuer for discovery)",
                    at("issuer")
                ),
            );
        }
    }
    if let (Some(None), Some(ep)) = (&issuer, &token_endpoint) {
        if ep.is_none() {
            p.push(
                at("token_endpoint"),
                format!(
                    "required without {} (or set the issuer for discovery)",
                    at("issuer")
                ),
            );
        }
    }
    let client_id = match raw.client_id.map(|id| id.trim().to_owned()) {
        Some(id) if !id.is_empty() => Some(id),
        Some(_) => {
            p.push(at("client_id"), "is empty");
            None
        }
        None => {
            p.push(at("client_id"), "required: this client's id at the service");
            None
        }
    };
    let client_secret = match secret(
        p,
        &at("client_secret"),
        raw.client_secret,
        raw.client_secret_file,
    ) {
        Some(Some(secret)) => Some(secret),
        Some(None) => {
            p.push(
                at("client_secret"),
                format!("required (or {})", at("client_secret_file")),
            );
            None
        }
        None => None,
    };
    let scopes = scopes(p, &at("scopes"), raw.scopes.unwrap_or_default());
    let auth_params = auth_params(p, key, raw.auth_params.unwrap_or_default());
    let header = header(p, &at("header"), raw.header);
    let token_endpoint_auth = match raw.token_endpoint_auth.as_deref().map(str::trim) {
        None | Some("client_secret_basic") => Some(TokenEndpointAuth::ClientSecretBasic),
        Some("client_secret_post") => Some(TokenEndpointAuth::ClientSecretPost),
        Some(other) => {
            p.push(
                at("token_endpoint_auth"),
                format!(
                    "unknown method {other:?}, expected client_secret_basic or client_secret_post"
                ),
            );
            None
        }
    };
    let display_name = match raw.display_name {
        Some(text) if text.trim().is_empty() || text.chars().any(char::is_control) => {
            p.push(at("display_name"), "is empty or holds control characters");
            None
        }
        Some(text) => Some(text),
        None => Some(name.to_owned()),
    };
    Some(Connection {
        display_name: display_name?,
        issuer: issuer?,
        authorization_endpoint: authorization_endpoint?,
        token_endpoint: token_endpoint?,
        revocation_endpoint: revocation_endpoint?,
        client_id: client_id?,
        client_secret: client_secret?,
        scopes: scopes?,
        auth_params: auth_params?,
        header: header?,
        token_endpoint_auth: token_endpoint_auth?,
    })
}

/// An endpoint URL: https, or http on loopback (the development provider); a
/// query is kept (some services put a tenant there), a fragment is refused.
fn endpoint(p: &mut Problems, key: &str, raw: Option<String>) -> Option<Option<Url>> {
    let Some(text) = raw else {
        return Some(None);
    };
    let parsed = Url::parse(text.trim())
        .map_err(|e| format!("invalid URL {text:?}: {e}"))
        .and_then(|url| {
            let secure = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url));
            if url.host_str().unwrap_or_default().is_empty() {
                Err(format!("{text:?} has no host"))
            } else if !secure {
                Err(format!("{text:?} is not an https URL (plain http is allowed only on localhost and loopback addresses)"))
            } else if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
                Err(format!("{text:?} may not have a fragment or user information"))
            } else {
                Ok(url)
            }
        });
    p.check(key, parsed).map(Some)
}

fn scopes(p: &mut Problems, key: &str, scopes: Vec<String>) -> Option<Vec<String>> {
    let mut ok = true;
    for (i, scope) in scopes.iter().enumerate() {
        if scope.is_empty() || scope.contains(char::is_whitespace) {
            p.push(
                format!("{key}[{i}]"),
                format!("invalid scope {scope:?}: one word each"),
            );
            ok = false;
        }
    }
    ok.then_some(scopes)
}

/// `connections.NAME.header`: a header name the proxy may own.
fn header(p: &mut Problems, key: &str, raw: Option<String>) -> Option<String> {
    let name = raw.unwrap_or_else(|| "Authorization".to_owned());
    let valid = http::HeaderName::from_bytes(name.as_bytes()).is_ok();
    if !valid {
        p.push(key, format!("{name:?} is not a valid header name"));
        return None;
    }
    let lower = name.to_ascii_lowercase();
    let is_identity = crate::config::presets::all_names().any(|n| n == lower);
    if RESERVED_HEADERS.contains(&lower.as_str())
        || lower.starts_with("x-forwarded-")
        || is_identity
    {
        p.push(
            key,
            format!("{name:?} belongs to HTTP or to the proxy; pick another header for the token"),
        );
        return None;
    }
    Some(name)
}

/// `admin.connections_api_token` / `_file`: `Some(None)` when unset (endpoint off).
pub(super) fn api_token(
    p: &mut Problems,
    inline: Option<crate::config::raw::SecretText>,
    file: Option<std::path::PathBuf>,
) -> Option<Option<Secret>> {
    let key = "admin.connections_api_token";
    let token = secret(p, key, inline, file)?;
    if let Some(token) = &token {
        if token.expose().trim().chars().count() < MIN_API_TOKEN_CHARS {
            p.push(
                key,
                format!("is shorter than {MIN_API_TOKEN_CHARS} characters; it hands out every user's third-party tokens (try `openssl rand -base64 32`)"),
            );
            return None;
        }
    }
    Some(token)
}

/// Every name in a route's `connections` is a `[connections.NAME]`, listed once,
/// on a route that knows who the user is, and no two share a header.
pub(super) fn check_route_connections(
    routes: &[Route],
    connections: &BTreeMap<String, Connection>,
    passes_access_token: impl Fn(Option<&str>) -> bool,
    identity_headers: &[String],
    p: &mut Problems,
) {
    for (index, route) in routes.iter().enumerate() {
        let key = format!("route[{index}].connections");
        if route.connections.is_empty() {
            continue;
        }
        if route.auth == AuthMode::Public {
            p.push(
                &key,
                "a public route has no user, so no connection to use; use auth = \"login\", \"bearer\" or \"login_or_bearer\"",
            );
        }
        let mut headers: Vec<(String, &str)> = Vec::new();
        for (i, name) in route.connections.iter().enumerate() {
            let Some(connection) = connections.get(name) else {
                let known: Vec<&str> = connections.keys().map(String::as_str).collect();
                p.push(
                    format!("{key}[{i}]"),
                    format!(
                        "unknown connection {name:?}; defined: {} (add [connections.{name}])",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                continue;
            };
            if connection.is_bearer_header() && passes_access_token(route.upstream.as_deref()) {
                p.push(
                    format!("{key}[{i}]"),
                    format!("{name:?} puts its token in Authorization, where this route's upstream (pass_access_token) gets the login's access token; give the connection another header"),
                );
            }
            let header = connection.header.to_ascii_lowercase();
            if identity_headers.contains(&header) {
                p.push(
                    format!("{key}[{i}]"),
                    format!("{name:?} puts its token in {}, an identity header of an upstream; give the connection another header", connection.header),
                );
            }
            if let Some((_, other)) = headers.iter().find(|(h, _)| *h == header) {
                p.push(
                    format!("{key}[{i}]"),
                    format!(
                        "{name:?} and {other:?} both put their token in {}",
                        connection.header
                    ),
                );
            }
            headers.push((header, name));
        }
    }
}
