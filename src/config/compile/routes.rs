//! `[[route]]` and `[policy]`: which rule applies to a request (SPEC §3).

use std::collections::{BTreeMap, HashMap};

use regex::Regex;

use super::*;
use crate::config::raw::{RawPolicy, RawRoute};

pub(super) fn routes(raw: Vec<RawRoute>, p: &mut Problems) -> Option<Vec<Route>> {
    let routes: Vec<Option<Route>> = raw
        .into_iter()
        .enumerate()
        .map(|(index, raw)| route(index, raw, p))
        .collect();

    let mut first_use: HashMap<&str, usize> = HashMap::new();
    for (index, route) in routes.iter().enumerate() {
        let Some(route) = route else { continue };
        if let Some(first) = first_use.get(route.name.as_str()) {
            p.push(
                format!("route[{index}].name"),
                format!(
                    "duplicate route name {:?}, also used by route[{first}]",
                    route.name
                ),
            );
        } else {
            first_use.insert(&route.name, index);
        }
    }
    let has_duplicates = first_use.len() < routes.iter().flatten().count();
    if has_duplicates {
        return None;
    }
    routes.into_iter().collect()
}

fn route(index: usize, raw: RawRoute, p: &mut Problems) -> Option<Route> {
    let at = |field: &str| format!("route[{index}].{field}");

    let name = match raw.name {
        Some(name) if name.trim().is_empty() => {
            p.push(at("name"), "is empty; leave it out for the default");
            None
        }
        Some(name) => Some(name),
        None => Some(format!("route[{index}]")),
    };
    let host = match &raw.host {
        Some(text) => p.check(&at("host"), syntax::host_pattern(text)).map(Some),
        None => Some(None),
    };

    let path_kinds = [&raw.path, &raw.path_exact, &raw.path_regex];
    let mut matchers_ok = true;
    if path_kinds.iter().filter(|kind| kind.is_some()).count() > 1 {
        p.push(
            format!("route[{index}]"),
            "sets more than one of path, path_exact and path_regex; a route takes one",
        );
        matchers_ok = false;
    }
    let path = match &raw.path {
        Some(text) => p.check(&at("path"), prefix_path(text)).map(Some),
        None => Some(None),
    };
    let path_exact = match &raw.path_exact {
        Some(text) => p
            .check(
                &at("path_exact"),
                syntax::rule_path(text).map(|()| text.clone()),
            )
            .map(Some),
        None => Some(None),
    };
    let path_regex = match &raw.path_regex {
        Some(text) => p.check(&at("path_regex"), anchored_regex(text)).map(Some),
        None => Some(None),
    };
    let methods = each(p, &at("methods"), raw.methods.clone(), syntax::method);

    let has_matcher = raw.host.is_some()
        || path_kinds.iter().any(|kind| kind.is_some())
        || raw.methods.as_ref().is_some_and(|m| !m.is_empty());
    if !has_matcher {
        p.push(
            format!("route[{index}]"),
            "has no matcher (host, path, path_exact, path_regex or methods), so it matches every request \
             and hides every route after it; set policy.default for requests no route matches",
        );
        matchers_ok = false;
    }

    let auth = auth_mode(p, &at("auth"), raw.auth.as_deref(), AuthMode::Login);
    let roles_any = roles(p, &at("roles_any"), raw.roles_any);
    let roles_all = roles(p, &at("roles_all"), raw.roles_all);
    let email_domains = each(
        p,
        &at("email_domains"),
        raw.email_domains,
        syntax::email_domain,
    );
    let claims = claim_rules(p, &at("claims"), raw.claims);
    let source_ips = each(p, &at("source_ips"), raw.source_ips, syntax::trusted_proxy);
    let scopes_any = scopes(p, &at("scopes_any"), raw.scopes_any);
    let scopes_all = scopes(p, &at("scopes_all"), raw.scopes_all);
    let upstream = match raw.upstream {
        Some(name) if name.trim().is_empty() => {
            p.push(at("upstream"), "is empty; leave it out for [upstream]");
            None
        }
        name => Some(name),
    };
    let connections = connection_names(p, &at("connections"), raw.connections.unwrap_or_default());
    let providers = match raw.providers {
        Some(names) => provider_names(p, &at("providers"), names).map(Some),
        None => Some(None),
    };
    let strip_prefix = match &raw.strip_prefix {
        Some(text) => p
            .check(
                &at("strip_prefix"),
                strip_prefix(text, raw.path.as_deref(), raw.path_exact.as_deref()),
            )
            .map(Some),
        None => Some(None),
    };

    let has_scopes = scopes_any.as_ref().is_some_and(|s| !s.is_empty())
        || scopes_all.as_ref().is_some_and(|s| !s.is_empty());
    if let (Some(mode @ (AuthMode::Login | AuthMode::Public | AuthMode::Deny)), true) =
        (auth, has_scopes)
    {
        let field = if scopes_any.as_ref().is_some_and(|s| !s.is_empty()) {
            "scopes_any"
        } else {
            "scopes_all"
        };
        p.push(
            at(field),
            format!(
                "has no effect on an auth = \"{}\" route: scopes belong to bearer tokens, use auth = \"bearer\" or \"login_or_bearer\"",
                mode.as_str()
            ),
        );
        matchers_ok = false;
    }

    if let Some(mode @ (AuthMode::Public | AuthMode::Deny)) = auth {
        let requirements = [
            (
                "roles_any",
                roles_any.as_ref().is_some_and(|r| !r.is_empty()),
            ),
            (
                "roles_all",
                roles_all.as_ref().is_some_and(|r| !r.is_empty()),
            ),
            (
                "email_domains",
                email_domains.as_ref().is_some_and(|d| !d.is_empty()),
            ),
            ("claims", claims.as_ref().is_some_and(|c| !c.is_empty())),
        ];
        for (field, is_set) in requirements {
            if is_set {
                p.push(
                    at(field),
                    format!(
                        "has no effect on an auth = \"{}\" route; if the route must be protected, use auth = \"login\" or \"bearer\"",
                        mode.as_str()
                    ),
                );
                matchers_ok = false;
            }
        }
    }

    matchers_ok.then_some(())?;
    Some(Route {
        name: name?,
        host: host?,
        path: path?,
        path_exact: path_exact?,
        path_regex: path_regex?,
        methods: methods?,
        auth: auth?,
        roles_any: roles_any?,
        roles_all: roles_all?,
        email_domains: email_domains?,
        claims: claims?,
        source_ips: source_ips?,
        scopes_any: scopes_any?,
        scopes_all: scopes_all?,
        upstream: upstream?,
        strip_prefix: strip_prefix?,
        providers: providers?,
        connections: connections?,
    })
}

/// A route's `connections`: each named once (checked to exist later).
fn connection_names(p: &mut Problems, key: &str, names: Vec<String>) -> Option<Vec<String>> {
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            p.push(format!("{key}[{i}]"), format!("{name:?} is listed twice"));
            return None;
        }
    }
    Some(names)
}

/// A `providers` list: at least one name, each once (checked to exist later).
fn provider_names(p: &mut Problems, key: &str, names: Vec<String>) -> Option<Vec<String>> {
    if names.is_empty() {
        p.push(
            key,
            "admits no provider, so nobody could sign in; leave it out for policy.providers",
        );
        return None;
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if seen.contains(&name.as_str()) {
            p.push(format!("{key}[{i}]"), format!("{name:?} is listed twice"));
            return None;
        }
        seen.push(name);
    }
    Some(names)
}

/// `route.strip_prefix`: a whole-segment prefix of every path the route can
/// match (SPEC §3), so only routes with `path` or `path_exact` take one.
fn strip_prefix(
    text: &str,
    path: Option<&str>,
    path_exact: Option<&str>,
) -> Result<String, String> {
    syntax::rule_path(text)?;
    if text == "/" || text.ends_with('/') {
        return Err(format!(
            "strip_prefix {text:?} must name at least one segment and not end with \"/\""
        ));
    }
    let Some(matched) = path.or(path_exact) else {
        return Err(format!(
            "strip_prefix {text:?} needs the route to have path or path_exact: \
             only then is it known to start every path the route matches"
        ));
    };
    // Paths match without regard to ASCII case; so does the prefix.
    let (prefix, matched_lower) = (text.to_ascii_lowercase(), matched.to_ascii_lowercase());
    let fits = matched_lower
        .strip_prefix(&prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if !fits {
        return Err(format!(
            "strip_prefix {text:?} is not a whole-segment prefix of the route's path {matched:?}"
        ));
    }
    Ok(text.to_owned())
}

/// `claims = { "department" = ["eng"] }`: claim references and the strings
/// each may hold (SPEC §3).
fn claim_rules(
    p: &mut Problems,
    key: &str,
    raw: Option<BTreeMap<String, Vec<String>>>,
) -> Option<BTreeMap<String, Vec<String>>> {
    let mut ok = true;
    let raw = raw.unwrap_or_default();
    for (claim, values) in &raw {
        let at = format!("{key}.{}", crate::config::source::printable(claim));
        if let Err(why) = syntax::claim_name(claim) {
            p.push(&at, why);
            ok = false;
        }
        if values.is_empty() {
            p.push(
                &at,
                "lists no value, so no identity could ever hold it; remove the claim or list values",
            );
            ok = false;
        }
        if values.iter().any(|v| v.is_empty()) {
            p.push(&at, "holds an empty string");
            ok = false;
        }
    }
    ok.then_some(raw)
}

/// `scopes_any` / `scopes_all`: OAuth scope tokens (RFC 6749 §3.3).
fn scopes(p: &mut Problems, key: &str, raw: Option<Vec<String>>) -> Option<Vec<String>> {
    let scopes = raw.unwrap_or_default();
    let mut ok = true;
    for (i, scope) in scopes.iter().enumerate() {
        let valid = !scope.is_empty()
            && scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !valid {
            p.push(
                format!("{key}[{i}]"),
                format!("invalid scope {scope:?}: one scope token, no spaces or quotes"),
            );
            ok = false;
        }
    }
    ok.then_some(scopes)
}

/// `route.path`: a segment prefix, so `/admin/` would never match `/admin` itself.
fn prefix_path(text: &str) -> Result<String, String> {
    syntax::rule_path(text)?;
    if text.len() > 1 && text.ends_with('/') {
        return Err(format!(
            "path {text:?} ends with \"/\"; a path prefix matches whole segments, write {:?}",
            text.trim_end_matches('/')
        ));
    }
    Ok(text.to_owned())
}

/// `route.path_regex`, anchored so it must match the whole path (SPEC §3).
fn anchored_regex(text: &str) -> Result<Regex, String> {
    // Compile the pattern as written first, so an error points into the operator's
    // text rather than into our `^(?:...)$` wrapping.
    let explain = |e: regex::Error| {
        let why = e.to_string();
        let last = why.lines().last().unwrap_or_default().trim();
        format!(
            "invalid regex {text:?}: {}",
            last.trim_start_matches("error: ")
        )
    };
    Regex::new(text).map_err(explain)?;
    Regex::new(&format!("^(?:{text})$")).map_err(explain)
}

fn roles(p: &mut Problems, key: &str, raw: Option<Vec<String>>) -> Option<Vec<String>> {
    let roles = raw.unwrap_or_default();
    let mut ok = true;
    for (i, role) in roles.iter().enumerate() {
        if role.trim().is_empty() {
            p.push(format!("{key}[{i}]"), "is empty");
            ok = false;
        } else if role.trim() != role {
            // Roles are compared exactly (SPEC §4.2): " admin" would only
            // ever match a token that carries the space.
            p.push(
                format!("{key}[{i}]"),
                format!("{role:?} has leading or trailing whitespace; roles are compared exactly"),
            );
            ok = false;
        }
    }
    ok.then_some(roles)
}

fn auth_mode(
    p: &mut Problems,
    key: &str,
    raw: Option<&str>,
    default: AuthMode,
) -> Option<AuthMode> {
    let Some(text) = raw else {
        return Some(default);
    };
    let modes = [
        AuthMode::Public,
        AuthMode::Login,
        AuthMode::Bearer,
        AuthMode::LoginOrBearer,
        AuthMode::Deny,
    ];
    let found = modes.into_iter().find(|mode| mode.as_str() == text.trim());
    if found.is_none() {
        p.push(
            key,
            format!("unknown auth {text:?}, expected one of public, login, bearer, login_or_bearer, deny"),
        );
    }
    found
}

pub(super) fn policy(raw: RawPolicy, p: &mut Problems) -> Option<Policy> {
    let default = auth_mode(p, "policy.default", raw.default.as_deref(), AuthMode::Login);
    let roles_any = roles(p, "policy.roles_any", raw.roles_any);
    let roles_all = roles(p, "policy.roles_all", raw.roles_all);
    let email_domains = each(
        p,
        "policy.email_domains",
        raw.email_domains,
        syntax::email_domain,
    );
    let claims = claim_rules(p, "policy.claims", raw.claims);
    let source_ips = each(
        p,
        "policy.source_ips",
        raw.source_ips,
        syntax::trusted_proxy,
    );
    let scopes_any = scopes(p, "policy.scopes_any", raw.scopes_any);
    let scopes_all = scopes(p, "policy.scopes_all", raw.scopes_all);
    let providers = match raw.providers {
        Some(names) => provider_names(p, "policy.providers", names),
        None => Some(vec![DEFAULT_UPSTREAM.to_owned()]),
    };
    Some(Policy {
        default: default?,
        roles_any: roles_any?,
        roles_all: roles_all?,
        email_domains: email_domains?,
        claims: claims?,
        source_ips: source_ips?,
        scopes_any: scopes_any?,
        scopes_all: scopes_all?,
        providers: providers?,
    })
}
