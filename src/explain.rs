//! `portcullis explain` (SPEC §1): which rule decides a request, for an identity
//! given as token claims (or none), and the decision with its reason, so a policy
//! can be unit-tested before it ships.
//!
//! It runs the proxy's own steps in the proxy's order (`normalize`, the
//! `auth_prefix` check, `RouteTable::find`, `admit_source`,
//! `auth::claims::identity`, `authorize`) on a config, without a network: the
//! claims are taken as those of a token that already passed its checks
//! (signature, `iss`, `aud`, `exp`).
//!
//! # How the claims are presented
//!
//! The claims stand for a bearer token on a route that admits one (`bearer`,
//! `login_or_bearer`): their `scope`/`scp` are its scopes, and `[policy]`'s
//! scope keys apply. On a `login` route they stand for a session, which has no
//! scopes. On a `login_or_bearer` route the decision is the bearer token's, and
//! when a session with the same claims would be treated otherwise, that is shown
//! too. The output says which (`as a bearer token` / `as a session`).
//!
//! # The client address
//!
//! `source_ips` needs the client's address, given with `--client IP` (as the
//! proxy would see it after `trusted_proxies`). Without it, `source_ips` is not
//! judged: the output says so, shows what it would need, and decides the rest.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use http::Method;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::claims;
use crate::config::{AuthMode, Config, Route};
use crate::identity::Identity;
use crate::policy::authorize::{admit_source, authorize, Denial};
use crate::policy::normalize::normalize_str;
use crate::policy::route::{is_segment_prefix, Found, Requirements, RouteTable, Rule};

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
    /// The client's address (`--client`), for `source_ips`; `None` = not judged.
    pub client: Option<IpAddr>,
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
    /// How `source_ips` judged the client; `None` when no client was given and
    /// no `source_ips` applies (or no rule was reached).
    pub source: Option<SourceView>,
    pub decision: Decision,
    /// On a `login_or_bearer` route, where [`Explanation::decision`] is for the
    /// claims as a bearer token: what a session with the same claims would get,
    /// when that differs.
    pub session_decision: Option<Decision>,
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
    /// The name of the upstream an allowed request goes to (`default` for
    /// `[upstream]`; SPEC §11).
    pub upstream: String,
    /// That upstream's `url`.
    pub upstream_url: String,
    /// `route.strip_prefix`, removed from the forwarded path.
    pub strip_prefix: Option<String>,
}

/// The identity an authenticated request would carry.
#[derive(Clone, Debug, Serialize)]
pub struct IdentityView {
    /// The provider whose issuer is the claims' `iss` (`default` without one).
    pub provider: String,
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub roles: Vec<String>,
    /// `oidc.roles_claim`: where the roles were read.
    pub roles_claim: Vec<String>,
    /// The claims the config refers to (rule `claims`, identity headers), as kept.
    pub claims: BTreeMap<String, Value>,
    /// The claims' `scope` / `scp`: what they hold as a bearer token.
    pub scopes: Vec<String>,
    /// How the claims were presented on the deciding rule; `None` where no
    /// identity is looked at (`public`, `deny`, or no rule reached).
    pub presented_as: Option<Presented>,
}

/// Whether the claims are judged as a bearer token's or a session's (see the
/// module docs): only a bearer token has scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presented {
    BearerToken,
    Session,
}

impl Presented {
    /// How a rule of mode `auth` takes the claims.
    fn on(auth: AuthMode) -> Option<Presented> {
        match auth {
            AuthMode::Bearer | AuthMode::LoginOrBearer => Some(Presented::BearerToken),
            AuthMode::Login => Some(Presented::Session),
            AuthMode::Public | AuthMode::Deny => None,
        }
    }

    fn is_bearer(self) -> bool {
        self == Presented::BearerToken
    }

    fn as_phrase(self) -> &'static str {
        match self {
            Presented::BearerToken => "as a bearer token",
            Presented::Session => "as a session",
        }
    }
}

/// The client address against `source_ips`.
#[derive(Clone, Debug, Serialize)]
pub struct SourceView {
    /// The address judged (an IPv4-mapped IPv6 address as its IPv4 form);
    /// `None` when `--client` was not given.
    pub client: Option<IpAddr>,
    pub outcome: SourceOutcome,
    /// The `source_ips` of `[policy]` and of the rule that apply, as `key = value`.
    pub needs: Vec<String>,
}

/// What `source_ips` made of the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceOutcome {
    /// In every `source_ips` that applies (or none applies).
    Admitted,
    /// Outside one of them: 403 before authentication.
    Refused,
    /// `source_ips` applies, but no `--client` was given.
    NotJudged,
}

/// The outcome: forwarded or refused, with the status and the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
                client: None,
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
            client: None,
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
    // The provider is the one whose issuer the claims name (SPEC §12): its
    // roles_claim reads the roles, and the route must admit it.
    let (provider_index, provider_name, oidc) = claims.map(|c| provider_of(config, c)).unwrap_or((
        0,
        crate::config::DEFAULT_PROVIDER,
        &config.oidc,
    ));
    let identity = claims.map(|c| {
        let mut identity = claims::identity(c, &oidc.roles_claim, &config.kept_claims());
        identity.scopes = claims::scopes(c);
        identity.provider = provider_name.to_owned();
        identity
    });
    let mut out = Explanation {
        method: request.method.to_string(),
        host: request.host.clone(),
        target: request.target.clone(),
        path: None,
        rule: None,
        identity: identity.as_ref().map(|i| IdentityView {
            provider: i.provider.clone(),
            sub: i.sub.clone(),
            email: i.email.clone(),
            email_verified: i.email_verified,
            roles: i.roles.clone(),
            roles_claim: oidc.roles_claim.clone(),
            claims: i.claims.clone(),
            scopes: i.scopes.clone(),
            presented_as: None,
        }),
        source: None,
        decision: deny(&[400], String::new()),
        session_decision: None,
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
    let found = table.lookup(Some(host), &request.method, target.match_path());
    let rule = found.rule;
    let view = rule_view(config, &table, found);
    let judge = Judge {
        table: &table,
        rule,
        source: &view.source,
        provider: provider_index,
    };
    out.rule = Some(view.clone());

    // Then, before anyone is authenticated, the client address.
    let (source, refusal) = judge.source_ips(request.client);
    out.source = source;
    if let Some(refusal) = refusal {
        out.decision = refusal;
        return out;
    }
    let presented = Presented::on(rule.auth);
    if let Some(who) = out.identity.as_mut() {
        who.presented_as = presented;
    }
    out.decision = judge.decide(&request.method, identity.as_ref(), presented);
    if rule.auth == AuthMode::LoginOrBearer && identity.is_some() {
        let as_session = judge.decide(&request.method, identity.as_ref(), Some(Presented::Session));
        out.session_decision = (as_session != out.decision).then_some(as_session);
    }
    if out.source.as_ref().map(|s| s.outcome) == Some(SourceOutcome::NotJudged)
        && out.decision.verdict == Verdict::Allow
    {
        out.decision
            .reason
            .push_str("; provided the client is in source_ips (not judged: no --client)");
    }
    out
}

/// One rule's judgement of a request, with what is needed to say which key
/// decided: `[policy]`'s keys (`table.global`) or the rule's (`source`, such as
/// `route[2]`).
struct Judge<'a> {
    table: &'a RouteTable,
    rule: &'a Rule,
    source: &'a str,
    /// The claims' provider, as a position in `Config::all_providers`.
    provider: usize,
}

impl Judge<'_> {
    /// `source_ips`, as the proxy checks it before authentication: the view to
    /// show, and the decision when the client is refused.
    fn source_ips(&self, client: Option<IpAddr>) -> (Option<SourceView>, Option<Decision>) {
        let global = &self.table.global.source_ips;
        let own = &self.rule.requirements.source_ips;
        let mut needs = Vec::new();
        push_cidrs(&mut needs, "policy.source_ips", global);
        push_cidrs(&mut needs, "source_ips", own);
        let Some(client) = client else {
            let view = (!needs.is_empty()).then_some(SourceView {
                client: None,
                outcome: SourceOutcome::NotJudged,
                needs,
            });
            return (view, None);
        };
        let verdict = admit_source(&self.table.global, self.rule, client);
        let outcome = match verdict {
            Ok(()) => SourceOutcome::Admitted,
            Err(_) => SourceOutcome::Refused,
        };
        let view = SourceView {
            client: Some(client.to_canonical()),
            outcome,
            needs,
        };
        let refusal = verdict.err().map(|denial| {
            let policy_alone = admit_source(&self.table.global, &bare(self.rule), client);
            deny(&[403], self.reason(&denial, policy_alone.is_err(), None))
        });
        (Some(view), refusal)
    }

    /// Authentication and authorization for the identity, presented as a bearer
    /// token or a session.
    fn decide(
        &self,
        method: &Method,
        identity: Option<&Identity>,
        presented: Option<Presented>,
    ) -> Decision {
        let rule = self.rule;
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
            (_, Some(identity)) if !rule.providers.contains(&self.provider) => {
                let admits = self.source;
                if presented.is_some_and(Presented::is_bearer) {
                    deny(
                        &[401],
                        format!(
                            "a token of provider {:?}, which {admits}.providers does not admit → 401 invalid_token",
                            identity.provider
                        ),
                    )
                } else {
                    deny(
                        &[302, 403],
                        format!(
                            "a session of provider {:?}, which {admits}.providers does not admit → a browser signs in again (302), anything else 403 provider_not_allowed",
                            identity.provider
                        ),
                    )
                }
            }
            (_, Some(identity)) => {
                let via_bearer = presented.is_some_and(Presented::is_bearer);
                match authorize(&self.table.global, rule, identity, via_bearer) {
                    Ok(_) => Decision {
                        verdict: Verdict::Allow,
                        status: Vec::new(),
                        reason: format!(
                            "{} → forwarded with the identity of {:?}{}",
                            rule.auth.as_str(),
                            identity.sub,
                            presented.map_or(String::new(), |p| format!(" ({})", p.as_phrase()))
                        ),
                    },
                    Err(denial) => {
                        let policy_alone =
                            authorize(&self.table.global, &bare(rule), identity, via_bearer);
                        deny(
                            &[403],
                            self.reason(&denial, policy_alone.is_err(), presented),
                        )
                    }
                }
            }
        }
    }

    /// The denial with the config key that decided it, as a path: `policy.claims`
    /// when `[policy]` alone refuses, else the rule's (`route[2].claims`).
    fn reason(&self, denial: &Denial, by_policy: bool, presented: Option<Presented>) -> String {
        let place = if by_policy { "policy" } else { self.source };
        let how = presented.map_or(String::new(), |p| format!(", {}", p.as_phrase()));
        format!("{denial} (decided by {place}.{}{how})", denial.key())
    }
}

/// The provider whose issuer is the claims' `iss` (a trailing `/` aside):
/// its position, name and config; `default` when `iss` names none.
fn provider_of<'a>(
    config: &'a Config,
    claims: &Map<String, Value>,
) -> (usize, &'a str, &'a crate::config::Oidc) {
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    config
        .all_providers()
        .enumerate()
        .find(|(_, (_, oidc))| {
            !iss.is_empty()
                && oidc.issuer.as_str().trim_end_matches('/') == iss.trim_end_matches('/')
        })
        .map(|(i, (name, oidc))| (i, name, oidc))
        .unwrap_or((0, crate::config::DEFAULT_PROVIDER, &config.oidc))
}

/// `rule` without requirements of its own: judging with it tells whether
/// `[policy]` alone refuses (it is checked first).
fn bare(rule: &Rule) -> Rule {
    Rule {
        name: rule.name.clone(),
        auth: rule.auth,
        requirements: Requirements::default(),
        upstream: rule.upstream,
        strip_prefix: rule.strip_prefix.clone(),
        providers: rule.providers.clone(),
        connections: rule.connections.clone(),
        counters: rule.counters.clone(),
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

/// The deciding rule as the operator wrote it: the route `found` names by its
/// position (so a route itself named `default` is not taken for the fallback),
/// or `policy.default`.
fn rule_view(config: &Config, table: &RouteTable, found: Found<'_>) -> RuleView {
    let rule = found.rule;
    let route = found
        .index
        .and_then(|index| config.routes.get(index).map(|route| (index, route)));
    let (upstream, upstream_url) = config
        .all_upstreams()
        .nth(rule.upstream)
        .map_or((String::new(), String::new()), |(name, up)| {
            (name.to_owned(), up.url.to_string())
        });
    let (source, matchers) = match route {
        Some((index, route)) => (format!("route[{index}]"), matchers(route)),
        None => ("policy.default".to_owned(), Vec::new()),
    };
    RuleView {
        name: rule.name.clone(),
        source,
        index: route.map(|(index, _)| index),
        matchers,
        auth: rule.auth,
        requires: requires(&table.global, rule),
        upstream,
        upstream_url,
        strip_prefix: rule.strip_prefix.clone(),
    }
}

/// What the rule and `[policy]` require of this request, as `key = value`:
/// `source_ips` on every `auth` mode, the rest where someone is authenticated.
fn requires(global: &Requirements, rule: &Rule) -> Vec<String> {
    let own = &rule.requirements;
    let mut out = Vec::new();
    push_cidrs(&mut out, "source_ips", &own.source_ips);
    push_cidrs(&mut out, "policy.source_ips", &global.source_ips);
    if rule.auth == AuthMode::Public || rule.auth == AuthMode::Deny {
        return out;
    }
    push_list(&mut out, "roles_any", &own.roles_any);
    push_list(&mut out, "roles_all", &own.roles_all);
    push_list(&mut out, "email_domains", &own.email_domains);
    push_claims(&mut out, "claims", &own.claims);
    push_list(&mut out, "scopes_any", &own.scopes_any);
    push_list(&mut out, "scopes_all", &own.scopes_all);
    push_list(&mut out, "policy.roles_any", &global.roles_any);
    push_list(&mut out, "policy.roles_all", &global.roles_all);
    push_list(&mut out, "policy.email_domains", &global.email_domains);
    push_claims(&mut out, "policy.claims", &global.claims);
    // `[policy]` scopes reach only bearer tokens (`authorize::authorize`).
    let bearer_only = |key: &str, scopes: &[String]| {
        (!scopes.is_empty()).then(|| format!("{key} = {scopes:?} (bearer tokens only)"))
    };
    if rule.auth != AuthMode::Login {
        out.extend(bearer_only("policy.scopes_any", &global.scopes_any));
        out.extend(bearer_only("policy.scopes_all", &global.scopes_all));
    }
    out
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

fn push_cidrs(out: &mut Vec<String>, key: &str, nets: &[ipnet::IpNet]) {
    let texts: Vec<String> = nets.iter().map(ToString::to_string).collect();
    push_list(out, key, &texts);
}

/// `claims` as SPEC §3 writes it: `claims = { "department" = ["eng"] }`.
fn push_claims(out: &mut Vec<String>, key: &str, claims: &[(String, Vec<String>)]) {
    if claims.is_empty() {
        return;
    }
    let entries: Vec<String> = claims
        .iter()
        .map(|(claim, values)| format!("{claim:?} = {values:?}"))
        .collect();
    out.push(format!("{key} = {{ {} }}", entries.join(", ")));
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
            write_rule(f, rule)?;
        }
        if let Some(source) = &self.source {
            write_source(f, source)?;
        }
        if let Some(who) = &self.identity {
            write_identity(f, who)?;
        }
        writeln!(f, "decision  {}", verdict_line(&self.decision))?;
        if let Some(session) = &self.session_decision {
            writeln!(f, "  as a session: {}", verdict_line(session))?;
        }
        Ok(())
    }
}

fn write_rule(f: &mut fmt::Formatter<'_>, rule: &RuleView) -> fmt::Result {
    writeln!(f, "rule      {} {:?}", rule.source, rule.name)?;
    if !rule.matchers.is_empty() {
        writeln!(f, "  matches {}", rule.matchers.join(", "))?;
    }
    writeln!(f, "  auth    {}", rule.auth.as_str())?;
    if !rule.requires.is_empty() {
        writeln!(f, "  needs   {}", rule.requires.join(", "))?;
    }
    writeln!(f, "  upstream {} ({})", rule.upstream, rule.upstream_url)?;
    if let Some(prefix) = &rule.strip_prefix {
        writeln!(f, "  strips  {prefix:?} from the forwarded path")?;
    }
    Ok(())
}

fn write_source(f: &mut fmt::Formatter<'_>, source: &SourceView) -> fmt::Result {
    let needs = source.needs.join(", ");
    match (source.client, source.outcome) {
        (Some(client), _) if source.needs.is_empty() => {
            writeln!(f, "client    {client} (no source_ips applies)")
        }
        (Some(client), SourceOutcome::Admitted) => {
            writeln!(f, "client    {client}: admitted by {needs}")
        }
        (Some(client), _) => writeln!(f, "client    {client}: refused; needs {needs}"),
        (None, _) => writeln!(
            f,
            "client    not given: source_ips cannot be judged without --client IP (needs {needs})"
        ),
    }
}

fn write_identity(f: &mut fmt::Formatter<'_>, who: &IdentityView) -> fmt::Result {
    let email = match (&who.email, who.email_verified) {
        (Some(email), true) => format!(", email {email:?} (verified)"),
        (Some(email), false) => format!(", email {email:?} (unverified)"),
        (None, _) => String::new(),
    };
    writeln!(
        f,
        "identity  sub {:?}{email}, roles {:?} (from roles_claim {:?}){}",
        who.sub,
        who.roles,
        who.roles_claim,
        if who.provider == crate::config::DEFAULT_PROVIDER {
            String::new()
        } else {
            format!(", provider {:?}", who.provider)
        }
    )?;
    if !who.claims.is_empty() {
        let claims = serde_json::to_string(&who.claims).map_err(|_| fmt::Error)?;
        writeln!(f, "  claims  {claims}")?;
    }
    match who.presented_as {
        Some(Presented::BearerToken) => {
            writeln!(f, "  as      a bearer token, scopes {:?}", who.scopes)
        }
        Some(Presented::Session) if who.scopes.is_empty() => {
            writeln!(f, "  as      a session (no scopes)")
        }
        Some(Presented::Session) => writeln!(
            f,
            "  as      a session (a session has no scopes; the claims' {:?} do not count)",
            who.scopes
        ),
        None => Ok(()),
    }
}

fn verdict_line(decision: &Decision) -> String {
    let verdict = match decision.verdict {
        Verdict::Allow => "ALLOW".to_owned(),
        Verdict::Endpoint => "ENDPOINT".to_owned(),
        Verdict::Deny => {
            let codes: Vec<String> = decision.status.iter().map(u16::to_string).collect();
            format!("DENY ({})", codes.join("/"))
        }
    };
    format!("{verdict}: {}", decision.reason)
}

#[cfg(test)]
mod tests;
