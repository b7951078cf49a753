//! Step 4: may this request use this route? (SPEC §3.) Two checks, at two
//! points of the request path:
//!
//! - [`admit_source`]: `source_ips`, before authentication and on every `auth`
//!   mode (`public` included), so a client from outside gets 403 rather than a
//!   login page;
//! - [`authorize`]: `roles_any`, `roles_all`, `email_domains`, `claims`,
//!   `scopes_any` and `scopes_all`, for an authenticated identity.
//!
//! Both apply `[policy]`'s keys first, then the route's. Only [`authorize`]
//! makes a [`Permit`], and only a `Permit` lets identity headers be set.

#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};
use serde_json::Value;

use crate::identity::Identity;

use super::route::{Requirements, Rule};

/// How much of a claim's JSON a [`Denial`] repeats: enough to see why it failed,
/// while a large claim cannot flood the log line.
const MAX_SHOWN_CLAIM_CHARS: usize = 200;

/// Proof that `policy::authorize` allowed an identity on a rule.
#[derive(Debug)]
pub struct Permit<'a> {
    identity: &'a Identity,
}

impl<'a> Permit<'a> {
    pub fn identity(&self) -> &'a Identity {
        self.identity
    }
}

/// Why a request was refused (403). Logged in full; each message names the
/// config key that decided ([`Denial::key`]) and what the request lacked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// None of the `roles_any` roles.
    #[error("needs one of the roles {needed:?}")]
    NoneOfRoles { needed: Vec<String> },
    /// Missing some of the `roles_all` roles.
    #[error("lacks the roles {missing:?}")]
    MissingRoles { missing: Vec<String> },
    /// `email_domains` is set and the email is absent, unverified, malformed,
    /// or in another domain.
    #[error("email {email:?} is not a verified address in {domains:?}")]
    EmailDomain {
        email: Option<String>,
        domains: Vec<String>,
    },
    /// A `claims` entry fails: the claim is missing, or is neither a string
    /// equal to one of `needed` nor an array with such a string element.
    #[error("claim {claim:?} is {}, needs one of {needed:?}", .found.as_deref().unwrap_or("missing"))]
    Claim {
        claim: String,
        /// The claim's value as JSON (shortened), with why it cannot match
        /// when it is not a string or an array; `None` when it is absent.
        found: Option<String>,
        needed: Vec<String>,
    },
    /// `source_ips` is set and the client address is in none of its CIDRs.
    #[error("client {client} is not in source_ips [{}]", cidr_list(.allowed))]
    SourceIp { client: IpAddr, allowed: Vec<IpNet> },
    /// A bearer token holds none of the `scopes_any` scopes.
    #[error("token scopes lack one of scopes_any {needed:?} (the token has {held:?})")]
    NoneOfScopes {
        needed: Vec<String>,
        held: Vec<String>,
    },
    /// A bearer token lacks some of the `scopes_all` scopes.
    #[error("token scopes lack {missing:?} of scopes_all (the token has {held:?})")]
    MissingScopes {
        missing: Vec<String>,
        held: Vec<String>,
    },
    /// The route has `scopes_any` or `scopes_all` (named by `key`) and the
    /// request came with a session: only a bearer token carries scopes.
    #[error("a session has no scopes; this route needs {key} {needed:?}")]
    SessionHasNoScopes {
        key: &'static str,
        needed: Vec<String>,
    },
}

impl Denial {
    /// Returns true if and only if a scope rule refused the request: the
    /// responder then sends `error="insufficient_scope"` (RFC 6750 §3.1) to a
    /// bearer client (SPEC §3). [`Denial::SessionHasNoScopes`] counts, but a
    /// session request gets no bearer challenge.
    pub fn is_insufficient_scope(&self) -> bool {
        matches!(
            self,
            Denial::NoneOfScopes { .. }
                | Denial::MissingScopes { .. }
                | Denial::SessionHasNoScopes { .. }
        )
    }

    /// The config key that decided: `roles_any`, `roles_all`, `email_domains`,
    /// `claims`, `source_ips`, `scopes_any` or `scopes_all` (a label for logs
    /// and metrics, bounded).
    pub fn key(&self) -> &'static str {
        match self {
            Denial::NoneOfRoles { .. } => "roles_any",
            Denial::MissingRoles { .. } => "roles_all",
            Denial::EmailDomain { .. } => "email_domains",
            Denial::Claim { .. } => "claims",
            Denial::SourceIp { .. } => "source_ips",
            Denial::NoneOfScopes { .. } => "scopes_any",
            Denial::MissingScopes { .. } => "scopes_all",
            Denial::SessionHasNoScopes { key, .. } => key,
        }
    }
}

// === source_ips ===

/// Checks `source_ips` of `[policy]`, then of the rule: each one that is set
/// must contain `client` (SPEC §3).
///
/// Call it before authenticating, on every `auth` mode: the key is allowed on
/// `public` routes, and a client from outside should get 403, not a login
/// redirect. `client` is the peer, or the `X-Forwarded-For` address that
/// `server.trusted_proxies` vouches for; choosing it is the caller's job.
///
/// # Security
///
/// An IPv4 client reaching a dual-stack socket shows up as an IPv4-mapped IPv6
/// address (`::ffff:10.1.2.3`); it is judged as the IPv4 address it is, so
/// `10.0.0.0/8` admits it and `::/0` alone does not. A CIDR written in the
/// mapped form (`::ffff:10.0.0.0/104`) is read as its IPv4 network likewise.
///
/// # Errors
///
/// [`Denial::SourceIp`] for the first `source_ips` that does not contain the client.
pub fn admit_source(global: &Requirements, rule: &Rule, client: IpAddr) -> Result<(), Denial> {
    let client = client.to_canonical();
    admit(&global.source_ips, client)?;
    admit(&rule.requirements.source_ips, client)
}

fn admit(allowed: &[IpNet], client: IpAddr) -> Result<(), Denial> {
    if allowed.is_empty() || allowed.iter().any(|net| canonical(net).contains(&client)) {
        return Ok(());
    }
    Err(Denial::SourceIp {
        client,
        allowed: allowed.to_vec(),
    })
}

/// `net` with an IPv4-mapped IPv6 network (`::ffff:a.b.c.d/96+n`) turned into
/// the IPv4 network it stands for (`a.b.c.d/n`), to match canonical addresses.
fn canonical(net: &IpNet) -> IpNet {
    let IpNet::V6(v6) = net else {
        return *net;
    };
    let mapped = v6.network().to_ipv4_mapped();
    match (mapped, v6.prefix_len().checked_sub(96)) {
        (Some(v4), Some(len)) => Ipv4Net::new(v4, len).map_or(*net, IpNet::V4),
        _ => *net,
    }
}

fn cidr_list(nets: &[IpNet]) -> String {
    let mut out = String::new();
    for (i, net) in nets.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}{net}");
    }
    out
}

// === the identity ===

/// Checks the global `[policy]` requirements, then the rule's own, for an
/// authenticated identity. `via_bearer` says the identity came from an
/// `Authorization: Bearer` token rather than a session.
///
/// `source_ips` is not checked here: see [`admit_source`].
///
/// # Scopes
///
/// Only a bearer token carries scopes; a session never satisfies a scope rule
/// (SPEC §3). The two places differ in reach:
///
/// - a route's `scopes_any` / `scopes_all` apply to every request on that
///   route, so a session on a `login_or_bearer` route that has them is refused
///   ([`Denial::SessionHasNoScopes`]);
/// - `[policy]`'s apply only to requests authenticated by a bearer token. They
///   state what API clients must hold everywhere; applied to sessions they would
///   refuse every browser user on every `login` route, which no operator means
///   by a policy-wide scope.
///
/// # Errors
///
/// The first requirement the identity fails, as a [`Denial`]: `[policy]`'s
/// before the route's, and within each, in the order of the keys above.
pub fn authorize<'a>(
    global: &Requirements,
    rule: &Rule,
    identity: &'a Identity,
    via_bearer: bool,
) -> Result<Permit<'a>, Denial> {
    check(global, identity)?;
    if via_bearer {
        check_scopes(global, identity, via_bearer)?;
    }
    check(&rule.requirements, identity)?;
    check_scopes(&rule.requirements, identity, via_bearer)?;
    Ok(Permit { identity })
}

/// Roles, email domains and claims: what any authenticated identity may hold.
fn check(req: &Requirements, identity: &Identity) -> Result<(), Denial> {
    let has = |role: &String| identity.roles.iter().any(|r| r == role);
    if !req.roles_any.is_empty() && !req.roles_any.iter().any(has) {
        return Err(Denial::NoneOfRoles {
            needed: req.roles_any.clone(),
        });
    }
    let missing: Vec<String> = req.roles_all.iter().filter(|r| !has(r)).cloned().collect();
    if !missing.is_empty() {
        return Err(Denial::MissingRoles { missing });
    }
    if !req.email_domains.is_empty() && !is_in_domains(identity, &req.email_domains) {
        return Err(Denial::EmailDomain {
            email: identity.email.clone(),
            domains: req.email_domains.clone(),
        });
    }
    for (claim, needed) in &req.claims {
        check_claim(identity, claim, needed)?;
    }
    Ok(())
}

/// A verified email with exactly one `@` whose domain is one of `domains`
/// (exactly, case-insensitively: `example.com` does not admit `evil-example.com`
/// nor `sub.example.com`).
fn is_in_domains(identity: &Identity, domains: &[String]) -> bool {
    let Some(email) = identity
        .email
        .as_deref()
        .filter(|_| identity.email_verified)
    else {
        return false;
    };
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty() && domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
}

/// One `claims` entry. `auth` already resolved the reference (top-level name,
/// else dotted path) when it built the identity, so the claim is looked up here
/// by the reference exactly as the config wrote it.
fn check_claim(identity: &Identity, claim: &str, needed: &[String]) -> Result<(), Denial> {
    let value = identity.claims.get(claim);
    if value.is_some_and(|v| claim_holds(v, needed)) {
        return Ok(());
    }
    Err(Denial::Claim {
        claim: claim.to_owned(),
        found: value.map(describe_claim),
        needed: needed.to_vec(),
    })
}

/// Returns true if and only if `value` is a string equal to one of `needed`, or
/// an array with a string element equal to one.
///
/// # Security
///
/// Equality is exact and case-sensitive, as for roles: `"Eng"` or `"eng "` is
/// not `eng`. A number, boolean or object never matches, not even `3` for
/// `"3"`: a claim of another type is another claim than the one the rule meant.
fn claim_holds(value: &Value, needed: &[String]) -> bool {
    let is_needed = |s: &str| needed.iter().any(|n| n == s);
    match value {
        Value::String(s) => is_needed(s),
        Value::Array(items) => items.iter().filter_map(Value::as_str).any(is_needed),
        _ => false,
    }
}

/// `value` as JSON for a denial: escaped (no claim can break the log line),
/// shortened, and saying why when its type can never match.
fn describe_claim(value: &Value) -> String {
    let json = value.to_string();
    let mut shown: String = json.chars().take(MAX_SHOWN_CLAIM_CHARS).collect();
    if shown.len() < json.len() {
        shown.push('…');
    }
    if !matches!(value, Value::String(_) | Value::Array(_)) {
        shown.push_str(" (only a string or an array of strings can match)");
    }
    shown
}

/// `scopes_any` and `scopes_all` of `req`, for a request that came with a bearer
/// token (`via_bearer`) or a session.
fn check_scopes(req: &Requirements, identity: &Identity, via_bearer: bool) -> Result<(), Denial> {
    if !via_bearer {
        // Even if a session identity somehow had scopes, it cannot use them.
        return match (req.scopes_any.is_empty(), req.scopes_all.is_empty()) {
            (true, true) => Ok(()),
            (false, _) => Err(Denial::SessionHasNoScopes {
                key: "scopes_any",
                needed: req.scopes_any.clone(),
            }),
            (true, false) => Err(Denial::SessionHasNoScopes {
                key: "scopes_all",
                needed: req.scopes_all.clone(),
            }),
        };
    }
    let has = |scope: &String| identity.scopes.iter().any(|s| s == scope);
    if !req.scopes_any.is_empty() && !req.scopes_any.iter().any(has) {
        return Err(Denial::NoneOfScopes {
            needed: req.scopes_any.clone(),
            held: identity.scopes.clone(),
        });
    }
    let missing: Vec<String> = req.scopes_all.iter().filter(|s| !has(s)).cloned().collect();
    if !missing.is_empty() {
        return Err(Denial::MissingScopes {
            missing,
            held: identity.scopes.clone(),
        });
    }
    Ok(())
}
