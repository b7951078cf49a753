//! `portcullis explain` (SPEC §1): which rule decides a request, for an identity
//! given as token claims (or none), and the decision with its reason, so a policy
//! can be unit-tested before it ships.
//!
//! It runs the proxy's own steps in the proxy's order (`normalize`, the
//! `auth_prefix` check, `RouteTable::find`, `auth::claims::identity`,
//! `authorize`) on a config, without a network: the claims are taken as those of
//! a token that already passed its checks (signature, `iss`, `aud`, `exp`).

use std::fmt;
use std::path::Path;

use http::Method;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::claims;
use crate::config::{AuthMode, Config, Route};
use crate::identity::Identity;
use crate::policy::authorize::authorize;
use crate::policy::normalize::normalize_str;
use crate::policy::route::{is_segment_prefix, RouteTable, Rule};

/// Why `explain` could not run (exit 1): bad arguments or an unreadable claims file.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// Occurs when METHOD is not an HTTP method token.
    #[error("{method:?} is not an http method")]
    Method { method: String },
    /// Occurs when the claims file cannot be read.
    #[error("claims file {path}: cannot read it: {source}")]
    ReadClaims {
        path: String,
        source: std::io::Error,
    },
    /// Occurs when the claims file is not one JSON object.
    #[error("claims file {path}: not a json object of claims: {reason}")]
    Claims { path: String, reason: String },
}

/// The request to explain: a method and a URL (`https://host/path?q`) or a bare
/// request target (`/path?q`, for the host of `server.public_url`).
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    /// Lowercase, without port; `None` when the URL's authority is not a host.
    pub host: Option<String>,
    /// The request target exactly as the proxy would receive it.
    pub target: String,
}

/// What the proxy would do with a request, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub method: String,
    pub host: Option<String>,
    /// The target as given.
    pub target: String,
    /// The normalized path (what the upstream would receive); `None` when refused.
    pub path: Option<String>,
    /// The deciding rule; `None` when the request is refused before rules apply,
    /// or served by the proxy itself.
    pub rule: Option<RuleView>,
    /// The identity read from the claims file, when one was given.
    pub identity: Option<IdentityView>,
    pub decision: Decision,
}

/// The deciding rule, as the operator wrote it.
#[derive(Clone, Debug, Serialize)]
pub struct RuleView {
    pub name: String,
    /// `route[INDEX]`, or `policy.default` when no route matched.
    pub source: String,
    /// The route's position in the file; `None` for `policy.default`.
    pub index: Option<usize>,
    /// The route's matchers, as `key = value` (empty for `policy.default`).
    pub matchers: Vec<String>,
    pub auth: AuthMode,
    /// Requirements of the route and of `[policy]`, as `key = value`.
    pub requires: Vec<String>,
}

/// The identity an authenticated request would carry.
#[derive(Clone, Debug, Serialize)]
pub struct IdentityView {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub roles: Vec<String>,
    /// `oidc.roles_claim`: where the roles were read.
    pub roles_claim: Vec<String>,
}

/// The outcome: forwarded or refused, with the status and the reason.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    /// The status the client would get (302 and 401 for a login: browser and API);
    /// empty when forwarded (the upstream answers).
    pub status: Vec<u16>,
    pub reason: String,
}

/// Forwarded, answered by the proxy itself, or refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Forwarded upstream.
    Allow,
    /// One of the proxy's own endpoints under `auth_prefix`.
    Endpoint,
    /// Refused with 400, 401 (or 302 to log in) or 403.
    Deny,
}

impl Explanation {
    /// Returns true if and only if the request would not be refused: the exit
    /// code of `portcullis explain` is 0 then, 2 otherwise.
    pub fn is_allowed(&self) -> bool {
        self.decision.verdict != Verdict::Deny
    }
}

// === inputs ===

impl Request {
    /// Parses METHOD and URL as given on the command line. The path is not touched
    /// here: normalizing it is part of what is explained.
    ///
    /// # Errors
    ///
    /// [`ExplainError::Method`] when `method` is not a method token.
    pub fn parse(method: &str, url: &str, config: &Config) -> Result<Request, ExplainError> {
        // Methods are case-sensitive on the wire; accept `get` for convenience,
        // since routes store theirs uppercased.
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|_| {
            ExplainError::Method {
                method: method.to_owned(),
            }
        })?;
        let Some((_scheme, rest)) = url.split_once("://").filter(|_| !url.starts_with('/')) else {
            let host = config
                .server
                .public_url
                .host_str()
                .map(str::to_ascii_lowercase);
            return Ok(Request {
                method,
                host,
                target: url.to_owned(),
            });
        };
        // A browser never sends the fragment of a URL it is given.
        let rest = rest.split('#').next().unwrap_or(rest);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let target = match target {
            "" => "/".to_owned(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_owned(),
        };
        Ok(Request {
            method,
            host: host_name(authority),
            target,
        })
    }
}

/// The host of an authority, lowercase and without port, as the proxy matches it;
/// `None` for one the proxy would refuse (userinfo, empty, not an authority).
fn host_name(authority: &str) -> Option<String> {
    let parsed: http::uri::Authority = authority.parse().ok()?;
    if parsed.as_str().contains('@') || parsed.host().is_empty() {
        return None;
    }
    Some(parsed.host().to_ascii_lowercase())
}

/// Reads a JSON object of claims (an ID token's or access token's payload).
///
/// # Errors
///
/// The file cannot be read or is not one JSON object.
pub fn read_claims(path: &Path) -> Result<Map<String, Value>, ExplainError> {
    let shown = path.display().to_string();
    let text = std::fs::read(path).map_err(|source| ExplainError::ReadClaims {
        path: shown.clone(),
        source,
    })?;
    match serde_json::from_slice::<Value>(&text) {
        Ok(Value::Object(claims)) => Ok(claims),
        Ok(_) => Err(ExplainError::Claims {
            path: shown,
            reason: "the top level is not an object".to_owned(),
        }),
        Err(e) => Err(ExplainError::Claims {
            path: shown,
            reason: e.to_string(),
        }),
    }
}

// === the steps ===

/// Explains `request` under `config` for the identity in `claims` (none: an
/// anonymous request, no session and no bearer token).
pub fn explain(
    config: &Config,
    request: &Request,
    claims: Option<&Map<String, Value>>,
) -> Explanation {
    let identity = claims.map(|c| claims::identity(c, &config.oidc.roles_claim));
    let mut out = Explanation {
        method: request.method.to_string(),
        host: request.host.clone(),
        target: request.target.clone(),
        path: None,
        rule: None,
        identity: identity.as_ref().map(|i| IdentityView {
            sub: i.sub.clone(),
            email: i.email.clone(),
            email_verified: i.email_verified,
            roles: i.roles.clone(),
            roles_claim: config.oidc.roles_claim.clone(),
        }),
        decision: deny(&[400], String::new()),
    };

    // The proxy's order: normalize, then Host, then its own endpoints, then rules.
    let target = match normalize_str(&request.target) {
        Ok(target) => target,
        Err(error) => {
            out.decision = deny(&[400], format!("bad request target: {error}"));
            return out;
        }
    };
    out.path = Some(target.path().as_str().to_owned());
    let Some(host) = request.host.as_deref() else {
        out.decision = deny(&[400], "missing or invalid host".to_owned());
        return out;
    };
    let prefix = &config.server.auth_prefix;
    if is_segment_prefix(prefix, target.match_path()) {
        out.decision = Decision {
            verdict: Verdict::Endpoint,
            status: Vec::new(),
            reason: format!(
                "served by portcullis itself (under auth_prefix {prefix:?}); no rule applies"
            ),
        };
        return out;
    }

    let table = RouteTable::new(config);
    let rule = table.find(Some(host), &request.method, target.match_path());
    out.rule = Some(rule_view(config, rule));
    out.decision = decide(&table, rule, &request.method, identity.as_ref());
    out
}

fn decide(
    table: &RouteTable,
    rule: &Rule,
    method: &Method,
    identity: Option<&Identity>,
) -> Decision {
    match (rule.auth, identity) {
        (AuthMode::Public, _) => Decision {
            verdict: Verdict::Allow,
            status: Vec::new(),
            reason: "public → forwarded without identity headers".to_owned(),
        },
        (AuthMode::Deny, _) => deny(&[403], "deny → 403 for every request".to_owned()),
        (AuthMode::Bearer, None) => deny(&[401], "bearer with no token → 401".to_owned()),
        (AuthMode::Login | AuthMode::LoginOrBearer, None) => login_required(rule.auth, method),
        (_, Some(identity)) if identity.sub.is_empty() => deny(
            &[401],
            "the claims have no \"sub\": a token without a subject is refused → 401".to_owned(),
        ),
        (_, Some(identity)) => match authorize(&table.global, rule, identity) {
            Ok(_) => Decision {
                verdict: Verdict::Allow,
                status: Vec::new(),
                reason: format!(
                    "{} → forwarded with the identity of {:?}",
                    rule.auth.as_str(),
                    identity.sub
                ),
            },
            Err(denial) => deny(&[403], denial.to_string()),
        },
    }
}

/// A request with no identity on a login route: browsers are redirected, API
/// clients get 401 (SPEC §4.1); only GET and HEAD can be browser navigations.
fn login_required(auth: AuthMode, method: &Method) -> Decision {
    let mode = auth.as_str();
    if matches!(*method, Method::GET | Method::HEAD) {
        deny(
            &[302, 401],
            format!("{mode} with no claims → 302 to login (browser) / 401 (API)"),
        )
    } else {
        deny(
            &[401],
            format!("{mode} with no claims → 401 (not a browser navigation)"),
        )
    }
}

fn deny(status: &[u16], reason: String) -> Decision {
    Decision {
        verdict: Verdict::Deny,
        status: status.to_vec(),
        reason,
    }
}

/// Finds the route behind `rule` in the config, by its name (route names are
/// unique). The route table names its fallback `default`; a route that is
/// itself named `default` is told apart by differing from `policy.default`.
fn rule_view(config: &Config, rule: &Rule) -> RuleView {
    let policy = &config.policy;
    let is_fallback = rule.name == "default"
        && rule.auth == policy.default
        && rule.requirements.roles_any.is_empty()
        && rule.requirements.roles_all.is_empty()
        && rule.requirements.email_domains.is_empty();
    let route = config
        .routes
        .iter()
        .enumerate()
        .find(|(_, r)| r.name == rule.name)
        .filter(|_| !is_fallback);
    let mut requires = Vec::new();
    if rule.auth != AuthMode::Public && rule.auth != AuthMode::Deny {
        push_list(&mut requires, "roles_any", &rule.requirements.roles_any);
        push_list(&mut requires, "roles_all", &rule.requirements.roles_all);
        push_list(
            &mut requires,
            "email_domains",
            &rule.requirements.email_domains,
        );
        push_list(&mut requires, "policy.roles_any", &policy.roles_any);
        push_list(&mut requires, "policy.roles_all", &policy.roles_all);
        push_list(&mut requires, "policy.email_domains", &policy.email_domains);
    }
    match route {
        Some((index, route)) => RuleView {
            name: rule.name.clone(),
            source: format!("route[{index}]"),
            index: Some(index),
            matchers: matchers(route),
            auth: rule.auth,
            requires,
        },
        None => RuleView {
            name: rule.name.clone(),
            source: "policy.default".to_owned(),
            index: None,
            matchers: Vec::new(),
            auth: rule.auth,
            requires,
        },
    }
}

fn matchers(route: &Route) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(host) = &route.host {
        out.push(format!("host = {host:?}"));
    }
    if let Some(path) = &route.path {
        out.push(format!("path = {path:?}"));
    }
    if let Some(path) = &route.path_exact {
        out.push(format!("path_exact = {path:?}"));
    }
    if let Some(re) = &route.path_regex {
        // Stored anchored as `^(?:...)$`; show what the operator wrote.
        let written = re
            .as_str()
            .strip_prefix("^(?:")
            .and_then(|r| r.strip_suffix(")$"))
            .unwrap_or(re.as_str());
        out.push(format!("path_regex = {written:?}"));
    }
    push_list(&mut out, "methods", &route.methods);
    out
}

fn push_list(out: &mut Vec<String>, key: &str, values: &[String]) {
    if !values.is_empty() {
        out.push(format!("{key} = {values:?}"));
    }
}

// === text output ===

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.host.as_deref().unwrap_or("(invalid)");
        writeln!(f, "request   {} {} (host {host})", self.method, self.target)?;
        if let Some(path) = &self.path {
            writeln!(f, "path      {path}")?;
        }
        if let Some(rule) = &self.rule {
            writeln!(f, "rule      {} {:?}", rule.source, rule.name)?;
            if !rule.matchers.is_empty() {
                writeln!(f, "  matches {}", rule.matchers.join(", "))?;
            }
            writeln!(f, "  auth    {}", rule.auth.as_str())?;
            if !rule.requires.is_empty() {
                writeln!(f, "  needs   {}", rule.requires.join(", "))?;
            }
        }
        if let Some(who) = &self.identity {
            let email = match (&who.email, who.email_verified) {
                (Some(email), true) => format!(", email {email:?} (verified)"),
                (Some(email), false) => format!(", email {email:?} (unverified)"),
                (None, _) => String::new(),
            };
            writeln!(
                f,
                "identity  sub {:?}{email}, roles {:?} (from roles_claim {:?})",
                who.sub, who.roles, who.roles_claim
            )?;
        }
        let verdict = match self.decision.verdict {
            Verdict::Allow => "ALLOW".to_owned(),
            Verdict::Endpoint => "ENDPOINT".to_owned(),
            Verdict::Deny => {
                let codes: Vec<String> = self.decision.status.iter().map(u16::to_string).collect();
                format!("DENY ({})", codes.join("/"))
            }
        };
        writeln!(f, "decision  {verdict}: {}", self.decision.reason)
    }
}

#[cfg(test)]
mod tests;
