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

pub(super) fn oidc(raw: RawOidc, p: &mut Problems) -> Option<Oidc> {
    let issuer = match raw.issuer {
        Some(text) => p.check("oidc.issuer", issuer(&text)),
        None => {
            p.push("oidc.issuer", "required: the provider's issuer URL");
            None
        }
    };
    let client_id = match raw.client_id.map(|id| id.trim().to_owned()) {
        Some(id) if !id.is_empty() => Some(id),
        Some(_) => {
            p.push("oidc.client_id", "is empty");
            None
        }
        None => {
            p.push(
                "oidc.client_id",
                "required: this client's id at the provider",
            );
            None
        }
    };
    let client_secret = match secret(
        p,
        "oidc.client_secret",
        raw.client_secret,
        raw.client_secret_file,
    ) {
        Some(Some(secret)) => Some(secret),
        Some(None) => {
            p.push(
                "oidc.client_secret",
                "required (or oidc.client_secret_file)",
            );
            None
        }
        None => None,
    };
    let scopes = scopes(p, raw.scopes);
    let auth_params = auth_params(p, raw.auth_params.unwrap_or_default());
    let roles_claim = roles_claim(p, raw.roles_claim.map(|r| r.0));
    let audience = match raw.audience {
        Some(aud) if aud.trim().is_empty() => {
            p.push(
                "oidc.audience",
                "is empty; leave it out to expect the client_id",
            );
            None
        }
        aud => Some(aud),
    };
    let trusted_audiences = each(
        p,
        "oidc.trusted_audiences",
        raw.trusted_audiences,
        trusted_audience,
    );
    let clock_leeway = duration(
        p,
        "oidc.clock_leeway",
        raw.clock_leeway,
        DEFAULT_CLOCK_LEEWAY,
    );
    // Shorter would let a flood of made-up `kid`s fetch at the provider about
    // as fast as it answers.
    let jwks_refetch_interval = duration(
        p,
        "oidc.jwks_refetch_interval",
        raw.jwks_refetch_interval,
        DEFAULT_JWKS_REFETCH_INTERVAL,
    )
    .and_then(|interval| {
        if interval < MIN_JWKS_REFETCH_INTERVAL {
            p.push("oidc.jwks_refetch_interval", "must be at least 1s");
            return None;
        }
        Some(interval)
    });
    Some(Oidc {
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
fn issuer(text: &str) -> Result<Url, String> {
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
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn scopes(p: &mut Problems, raw: Option<Vec<String>>) -> Option<Vec<String>> {
    let scopes = raw.unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect());
    let mut ok = true;
    for (i, scope) in scopes.iter().enumerate() {
        if scope.is_empty() || scope.contains(char::is_whitespace) {
            p.push(
                format!("oidc.scopes[{i}]"),
                format!("invalid scope {scope:?}: one word each"),
            );
            ok = false;
        }
    }
    if !scopes.iter().any(|s| s == "openid") {
        p.push(
            "oidc.scopes",
            "must contain \"openid\": without it there is no ID token",
        );
        ok = false;
    }
    ok.then_some(scopes)
}

fn auth_params(
    p: &mut Problems,
    raw: BTreeMap<String, String>,
) -> Option<BTreeMap<String, String>> {
    let mut ok = true;
    for name in raw.keys() {
        if FLOW_PARAMS.contains(&name.to_ascii_lowercase().as_str()) {
            p.push(
                format!("oidc.auth_params.{name}"),
                format!("{name:?} is set by the login flow itself and cannot be overridden"),
            );
            ok = false;
        }
    }
    ok.then_some(raw)
}

fn roles_claim(p: &mut Problems, raw: Option<Vec<String>>) -> Option<Vec<String>> {
    let claims = raw.unwrap_or_else(|| vec![DEFAULT_ROLES_CLAIM.to_owned()]);
    if claims.is_empty() {
        p.push(
            "oidc.roles_claim",
            "names no claim; leave it out for the default \"roles\"",
        );
        return None;
    }
    let mut ok = true;
    for (i, claim) in claims.iter().enumerate() {
        if claim.trim().is_empty() {
            p.push(format!("oidc.roles_claim[{i}]"), "is empty");
            ok = false;
        }
    }
    ok.then_some(claims)
}
