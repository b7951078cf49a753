//! `[oidc]`: the provider and this client's registration there (SPEC §4).

use std::collections::BTreeMap;
use std::net::IpAddr;

use url::Url;

use super::*;
use crate::config::raw::RawOidc;

/// Authorize parameters the login flow sets itself; `oidc.auth_params` overriding one
/// would break the flow or its protections (PKCE, state, nonce).
const FLOW_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

/// `[oidc]` (the `default` provider, which must have a client).
pub(super) fn oidc(raw: RawOidc, p: &mut Problems) -> Option<Oidc> {
    provider("oidc", raw, true, p)
}

/// `[providers.NAME]` tables (SPEC §12), each compiled under its own key; one
/// without `client_id` is bearer-only and must name its `audience`.
pub(super) fn providers(
    raw: BTreeMap<String, RawOidc>,
    p: &mut Problems,
) -> Option<BTreeMap<String, Oidc>> {
    let kind = super::Named {
        section: "providers",
        what: "provider",
        default_section: "[oidc]",
    };
    super::named(p, &kind, raw, |key, raw, p| provider(key, raw, false, p))
}

/// One provider's table at `key`; `needs_client` for `[oidc]`.
fn provider(key: &str, raw: RawOidc, needs_client: bool, p: &mut Problems) -> Option<Oidc> {
    let at = |field: &str| format!("{key}.{field}");
    let issuer = match raw.issuer {
        Some(text) => p.check(&at("issuer"), issuer(&text)),
        None => {
            p.push(at("issuer"), "required: the provider's issuer URL");
            None
        }
    };
    let has_client = needs_client || raw.client_id.is_some();
    let client_id = match raw.client_id.map(|id| id.trim().to_owned()) {
        Some(id) if !id.is_empty() => Some(id),
        Some(_) => {
            p.push(at("client_id"), "is empty");
            None
        }
        None if needs_client => {
            p.push(
                at("client_id"),
                "required: this client's id at the provider",
            );
            None
        }
        // A provider without a client: bearer tokens only (SPEC §12).
        None => Some(String::new()),
    };
    let has_secret = raw.client_secret.is_some() || raw.client_secret_file.is_some();
    let client_secret = match secret(
        p,
        &at("client_secret"),
        raw.client_secret,
        raw.client_secret_file,
    ) {
        Some(Some(secret)) => Some(secret),
        Some(None) if has_client => {
            p.push(
                at("client_secret"),
                format!("required (or {})", at("client_secret_file")),
            );
            None
        }
        Some(None) => Some(Secret::new(String::new())),
        None => None,
    };
    if !has_client && has_secret {
        p.push(
            at("client_secret"),
            "set without client_id: a provider without a client is for bearer tokens only",
        );
    }
    let scopes = scopes(p, key, raw.scopes);
    let auth_params = auth_params(p, key, raw.auth_params.unwrap_or_default());
    let roles_claim = roles_claim(p, key, raw.roles_claim.map(|r| r.0));
    let audience = match raw.audience {
        Some(aud) if aud.trim().is_empty() => {
            p.push(
                at("audience"),
                "is empty; leave it out to expect the client_id",
            );
            None
        }
        None if !has_client => {
            p.push(
                at("audience"),
                "required for a provider without client_id: the `aud` its bearer tokens must carry",
            );
            None
        }
        aud => Some(aud),
    };
    let display_name = match raw.display_name {
        Some(name) if name.trim().is_empty() || name.chars().any(char::is_control) => {
            p.push(at("display_name"), "is empty or holds control characters");
            None
        }
        name => Some(name),
    };
    let trusted_audiences = each(
        p,
        &at("trusted_audiences"),
        raw.trusted_audiences,
        trusted_audience,
    );
    let clock_leeway = duration(
        p,
        &at("clock_leeway"),
        raw.clock_leeway,
        DEFAULT_CLOCK_LEEWAY,
    );
    // Shorter would let a flood of made-up `kid`s fetch at the provider about
    // as fast as it answers.
    let jwks_refetch_interval = duration(
        p,
        &at("jwks_refetch_interval"),
        raw.jwks_refetch_interval,
        DEFAULT_JWKS_REFETCH_INTERVAL,
    )
    .and_then(|interval| {
        if interval < MIN_JWKS_REFETCH_INTERVAL {
            p.push(at("jwks_refetch_interval"), "must be at least 1s");
            return None;
        }
        Some(interval)
    });
    Some(Oidc {
        display_name: display_name?,
        issuer: issuer?,
        client_id: client_id?,
        client_secret: client_secret?,
        scopes: scopes?,
        auth_params: auth_params?,
        roles_claim: roles_claim?,
        audience: audience?,
        trusted_audiences: trusted_audiences?,
        clock_leeway: clock_leeway?,
        jwks_refetch_interval: jwks_refetch_interval?,
    })
}

/// An `oidc.trusted_audiences` entry: any non-empty audience string, kept
/// exactly (audiences are compared byte for byte).
fn trusted_audience(text: &str) -> Result<String, String> {
    if text.trim().is_empty() || text.trim() != text {
        return Err(format!(
            "invalid audience {text:?}: not empty, no surrounding whitespace"
        ));
    }
    Ok(text.to_owned())
}

/// `oidc.issuer`: https, except on loopback where the development provider runs.
pub(super) fn issuer(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("{text:?} has no host"));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        _ => {
            return Err(format!(
                "{text:?} is not an https URL (plain http is allowed only on localhost and loopback addresses)"
            ))
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} may not have a query or fragment"));
    }
    Ok(url)
}

/// Returns true if and only if the URL's host is `localhost` or a loopback address.
pub(super) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn scopes(p: &mut Problems, key: &str, raw: Option<Vec<String>>) -> Option<Vec<String>> {
    let scopes = raw.unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect());
    let mut ok = true;
    for (i, scope) in scopes.iter().enumerate() {
        if scope.is_empty() || scope.contains(char::is_whitespace) {
            p.push(
                format!("{key}.scopes[{i}]"),
                format!("invalid scope {scope:?}: one word each"),
            );
            ok = false;
        }
    }
    if !scopes.iter().any(|s| s == "openid") {
        p.push(
            format!("{key}.scopes"),
            "must contain \"openid\": without it there is no ID token",
        );
        ok = false;
    }
    ok.then_some(scopes)
}

pub(super) fn auth_params(
    p: &mut Problems,
    key: &str,
    raw: BTreeMap<String, String>,
) -> Option<BTreeMap<String, String>> {
    let mut ok = true;
    for name in raw.keys() {
        if FLOW_PARAMS.contains(&name.to_ascii_lowercase().as_str()) {
            p.push(
                format!("{key}.auth_params.{name}"),
                format!("{name:?} is set by the login flow itself and cannot be overridden"),
            );
            ok = false;
        }
    }
    ok.then_some(raw)
}

fn roles_claim(p: &mut Problems, key: &str, raw: Option<Vec<String>>) -> Option<Vec<String>> {
    let claims = raw.unwrap_or_else(|| vec![DEFAULT_ROLES_CLAIM.to_owned()]);
    if claims.is_empty() {
        p.push(
            format!("{key}.roles_claim"),
            "names no claim; leave it out for the default \"roles\"",
        );
        return None;
    }
    let mut ok = true;
    for (i, claim) in claims.iter().enumerate() {
        if claim.trim().is_empty() {
            p.push(format!("{key}.roles_claim[{i}]"), "is empty");
            ok = false;
        }
    }
    ok.then_some(claims)
}
