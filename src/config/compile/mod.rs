//! Raw → [`Config`]: apply defaults, parse every value, check every rule.
//!
//! Each section function parses all of its fields first, recording each problem, and
//! only then combines them with `?`; so one bad field never hides the next. Rules that
//! span sections (admin vs server address, TLS vs an http public URL) run in
//! [`compile`] once the sections are known. One file per section; the helpers they
//! share are at the bottom of this one.

mod connections;
mod oidc;
mod routes;
mod server;
mod session;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::error::Problems;
use super::raw::{Count, DurationText, Flag, RawIdentity, RawLog, SecretText};
use super::source::RawConfig;
use super::syntax;
use super::types::*;

// The documented defaults (types.rs), in one place.
const DEFAULT_LISTEN: &str = "0.0.0.0:4180";
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9180";
const DEFAULT_AUTH_PREFIX: &str = "/_auth";
const DEFAULT_POST_LOGOUT_URL: &str = "/";
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
const DEFAULT_POOL_MAX_IDLE_PER_HOST: usize = 256;
const DEFAULT_SCOPES: &[&str] = &["openid", "profile", "email"];
const DEFAULT_ROLES_CLAIM: &str = "roles";
const DEFAULT_CLOCK_LEEWAY: Duration = Duration::from_secs(60);
/// mod_auth_openidc's `OIDCStateMaxNumberOfCookies` default.
const DEFAULT_MAX_LOGIN_STATES: usize = 7;
const DEFAULT_JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
const MIN_JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_COOKIE_NAME: &str = "portcullis";
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
const DEFAULT_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
const DEFAULT_MAX_SESSIONS: usize = 100_000;
const DEFAULT_IDENTITY_TTL: Duration = Duration::from_secs(60);
const DEFAULT_LOG_LEVEL: &str = "info";

/// The identity assertion is a bearer credential for the upstream; SPEC §7 caps its life.
const MAX_IDENTITY_TTL: Duration = Duration::from_secs(60);
/// A request head smaller than this cannot carry a session cookie and a few headers.
const MIN_HEADER_BYTES: usize = 1024;

/// Compiles the raw sections into a [`Config`], or `None` after recording every problem.
pub(super) fn compile(raw: RawConfig, p: &mut Problems) -> Option<Config> {
    let server = server::server(raw.server, p);
    let admin = server::admin(raw.admin, p);
    let upstream = server::upstream("upstream", raw.upstream, p);
    let upstreams = server::upstreams(raw.upstreams, p);
    let oidc = oidc::oidc(raw.oidc, p);
    let providers = oidc::providers(raw.providers, p);
    let connections = connections::connections(raw.connections, p);
    let session = session::session(raw.session, p);
    let routes = routes::routes(raw.routes, p);
    let policy = routes::policy(raw.policy, p);
    let identity = identity(raw.identity, p);
    let log = log(raw.log, p);

    if let (Some(server), Some(admin)) = (&server, &admin) {
        check_listeners_differ(server, admin, p);
    }
    if let (Some(routes), Some(upstreams)) = (&routes, &upstreams) {
        check_route_upstreams(routes, upstreams, p);
    }
    if let (Some(routes), Some(connections), Some(upstream), Some(upstreams)) =
        (&routes, &connections, &upstream, &upstreams)
    {
        let passes = |name: Option<&str>| match name {
            None | Some(DEFAULT_UPSTREAM) => upstream.pass_access_token,
            Some(other) => upstreams.get(other).is_some_and(|u| u.pass_access_token),
        };
        let identity_headers: Vec<String> = std::iter::once(upstream)
            .chain(upstreams.values())
            .flat_map(|u| u.identity_headers.iter())
            .map(|h| h.name.to_ascii_lowercase())
            .collect();
        connections::check_route_connections(routes, connections, passes, &identity_headers, p);
    }
    if let (Some(oidc), Some(providers), Some(routes), Some(policy)) =
        (&oidc, &providers, &routes, &policy)
    {
        check_providers(oidc, providers, routes, policy, p);
    }
    if let Some(server) = &server {
        check_tls_needs_https(server, p);
        if let Some(session) = &session {
            check_cookie_prefix_needs_https(server, session, p);
        }
    }

    Some(Config {
        server: server?,
        admin: admin?,
        upstream: upstream?,
        upstreams: upstreams?,
        oidc: oidc?,
        providers: providers?,
        connections: connections?,
        session: session?,
        routes: routes?,
        policy: policy?,
        identity: identity?,
        log: log?,
    })
}

// === Rules across sections ===

/// Provider names and issuers across sections (SPEC §12): every name a route
/// or `[policy]` admits exists; every issuer is one provider's, since a bearer
/// token's `iss` picks its provider; a route that sends browsers to sign in
/// admits at least one provider with a client.
fn check_providers(
    oidc: &Oidc,
    providers: &std::collections::BTreeMap<String, Oidc>,
    routes: &[Route],
    policy: &Policy,
    p: &mut Problems,
) {
    let has_client = |name: &str| match name {
        DEFAULT_NAME => Some(oidc.has_client()),
        other => providers.get(other).map(Oidc::has_client),
    };
    let known: Vec<&str> = std::iter::once(DEFAULT_NAME)
        .chain(providers.keys().map(String::as_str))
        .collect();
    let mut check_list = |key: String, names: &[String], auth: AuthMode| {
        for (i, name) in names.iter().enumerate() {
            if has_client(name).is_none() {
                p.push(
                    format!("{key}[{i}]"),
                    format!(
                        "unknown provider {name:?}; defined: {} (add [providers.{name}])",
                        known.join(", ")
                    ),
                );
            }
        }
        let signs_in = matches!(auth, AuthMode::Login | AuthMode::LoginOrBearer);
        let any_client = names.iter().any(|n| has_client(n) == Some(true));
        let all_known = names.iter().all(|n| has_client(n).is_some());
        if signs_in && all_known && !any_client {
            p.push(
                key,
                "admits only providers without a client (bearer tokens only), so no browser could sign in here",
            );
        }
    };
    check_list(
        "policy.providers".to_owned(),
        &policy.providers,
        policy.default,
    );
    for (index, route) in routes.iter().enumerate() {
        if let Some(names) = &route.providers {
            check_list(format!("route[{index}].providers"), names, route.auth);
        }
    }
    let mut issuers: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let all =
        std::iter::once((DEFAULT_NAME, oidc)).chain(providers.iter().map(|(n, o)| (n.as_str(), o)));
    for (name, provider) in all {
        let issuer = provider.issuer.as_str().trim_end_matches('/').to_owned();
        if let Some(first) = issuers.insert(issuer.clone(), name.to_owned()) {
            let key = if name == DEFAULT_NAME {
                "oidc.issuer".to_owned()
            } else {
                format!("providers.{name}.issuer")
            };
            p.push(
                key,
                format!("{issuer:?} is also the issuer of provider {first:?}; a token's iss must name one provider"),
            );
        }
    }
}

/// Every `route.upstream` names `[upstream]` (`default`) or an `[upstreams.NAME]`:
/// names are resolved here, once, so no request can reach an upstream that
/// does not exist.
fn check_route_upstreams(
    routes: &[Route],
    upstreams: &std::collections::BTreeMap<String, Upstream>,
    p: &mut Problems,
) {
    for (index, route) in routes.iter().enumerate() {
        let Some(name) = &route.upstream else {
            continue;
        };
        if name != DEFAULT_UPSTREAM && !upstreams.contains_key(name) {
            let known: Vec<&str> = std::iter::once(DEFAULT_UPSTREAM)
                .chain(upstreams.keys().map(String::as_str))
                .collect();
            p.push(
                format!("route[{index}].upstream"),
                format!(
                    "unknown upstream {name:?}; defined: {} (add [upstreams.{name}])",
                    known.join(", ")
                ),
            );
        }
    }
}

/// The admin endpoints are never served on the public listener (SPEC §2, §9); the two
/// also could not both bind one address.
fn check_listeners_differ(server: &Server, admin: &Admin, p: &mut Problems) {
    let (public, private) = (server.listen, admin.listen);
    if public.port() == 0 || public.port() != private.port() {
        return;
    }
    let overlaps = public.ip() == private.ip()
        || (public.is_ipv4() == private.is_ipv4()
            && (public.ip().is_unspecified() || private.ip().is_unspecified()));
    if overlaps {
        p.push(
            "admin.listen",
            format!(
                "{private} overlaps server.listen {public}; the admin listener must be separate"
            ),
        );
    }
}

/// Terminating TLS while users are told the origin is http means cookies without
/// `Secure` and redirects to the wrong scheme.
fn check_tls_needs_https(server: &Server, p: &mut Problems) {
    if server.tls.is_some() && !server.is_secure() {
        p.push(
            "server.tls",
            format!(
                "TLS is configured but server.public_url {:?} is http, a secure-only option with an http public_url",
                server.public_url.as_str()
            ),
        );
    }
}

/// A cookie name prefix the browser only accepts on a `Secure` cookie, which an http
/// origin cannot set (SPEC §5).
fn check_cookie_prefix_needs_https(server: &Server, session: &Session, p: &mut Problems) {
    let name = &session.cookie_name;
    if !server.is_secure() && (name.starts_with("__Host-") || name.starts_with("__Secure-")) {
        p.push(
            "session.cookie_name",
            format!("{name:?} is a secure-only option with an http public_url; browsers would drop the cookie"),
        );
    }
}

// === [identity], [log] ===

fn identity(raw: RawIdentity, p: &mut Problems) -> Option<Identity> {
    let signing_key_file = optional_file(p, "identity.signing_key_file", raw.signing_key_file);
    let ttl = timeout(p, "identity.ttl", raw.ttl, DEFAULT_IDENTITY_TTL);
    let ttl = ttl.and_then(|ttl| {
        if ttl > MAX_IDENTITY_TTL {
            p.push(
                "identity.ttl",
                format!(
                    "{} is longer than the 60s maximum",
                    humantime::format_duration(ttl)
                ),
            );
            return None;
        }
        Some(ttl)
    });
    Some(Identity {
        signing_key_file: signing_key_file?,
        ttl: ttl?,
    })
}

fn log(raw: RawLog, p: &mut Problems) -> Option<Log> {
    let format = match raw.format.as_deref().map(str::trim) {
        None | Some("auto") => Some(LogFormat::Auto),
        Some("json") => Some(LogFormat::Json),
        Some("text") => Some(LogFormat::Text),
        Some(other) => {
            p.push(
                "log.format",
                format!("unknown format {other:?}, expected auto, json or text"),
            );
            None
        }
    };
    let level = raw.level.unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());
    let level = match tracing_subscriber::EnvFilter::try_new(&level) {
        Ok(_) => Some(level),
        Err(e) => {
            p.push("log.level", format!("invalid filter {level:?}: {e}"));
            None
        }
    };
    Some(Log {
        format: format?,
        level: level?,
    })
}

// === Shared helpers ===

fn listen(p: &mut Problems, key: &str, raw: Option<String>, default: &str) -> Option<SocketAddr> {
    p.check(key, syntax::socket_addr(raw.as_deref().unwrap_or(default)))
}

fn duration(
    p: &mut Problems,
    key: &str,
    raw: Option<DurationText>,
    default: Duration,
) -> Option<Duration> {
    match raw {
        Some(DurationText(text)) => p.check(key, syntax::duration(&text)),
        None => Some(default),
    }
}

/// A duration that must not be zero.
fn timeout(
    p: &mut Problems,
    key: &str,
    raw: Option<DurationText>,
    default: Duration,
) -> Option<Duration> {
    let value = duration(p, key, raw, default);
    nonzero(p, key, value)
}

/// A zero timeout would fail every request (or disable the protection it provides).
fn nonzero(p: &mut Problems, key: &str, value: Option<Duration>) -> Option<Duration> {
    let value = value?;
    if value.is_zero() {
        p.push(key, "must be longer than zero");
        return None;
    }
    Some(value)
}

fn positive(p: &mut Problems, key: &str, value: usize) -> Option<usize> {
    if value == 0 {
        p.push(key, "must be at least 1");
        return None;
    }
    Some(value)
}

fn count(raw: Option<Count>, default: usize) -> usize {
    raw.map_or(default, |Count(n)| n)
}

fn flag(raw: Option<Flag>, default: bool) -> bool {
    raw.map_or(default, |Flag(b)| b)
}

/// Parses every item of a list, reporting each bad one as `key[index]`.
fn each<T>(
    p: &mut Problems,
    key: &str,
    raw: Option<Vec<String>>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<Vec<T>> {
    let mut all = Some(Vec::new());
    for (i, item) in raw.unwrap_or_default().iter().enumerate() {
        let parsed = p.check(&format!("{key}[{i}]"), parse(item));
        all = all.zip(parsed).map(|(mut all, item)| {
            all.push(item);
            all
        });
    }
    all
}

/// A section of named tables (`[upstreams.NAME]`, `[providers.NAME]`).
struct Named {
    /// The section's key: `upstreams`.
    section: &'static str,
    /// What one table is: `upstream`.
    what: &'static str,
    /// The table that goes by `default`: `[upstream]`.
    default_section: &'static str,
}

/// Compiles each table of a named section under its own key
/// (`upstreams.grafana`), after checking its name.
fn named<R, T>(
    p: &mut Problems,
    kind: &Named,
    raw: std::collections::BTreeMap<String, R>,
    compile: impl Fn(&str, R, &mut Problems) -> Option<T>,
) -> Option<std::collections::BTreeMap<String, T>> {
    let mut all = Some(std::collections::BTreeMap::new());
    for (name, raw) in raw {
        let key = format!("{}.{name}", kind.section);
        if let Err(why) = name_label(&name, kind) {
            p.push(&key, why);
            all = None;
            continue;
        }
        let compiled = compile(&key, raw, p);
        all = all.zip(compiled).map(|(mut all, table)| {
            all.insert(name, table);
            all
        });
    }
    all
}

/// The name of a named table: it labels metrics and logs, routes refer to
/// it, and `PORTCULLIS_<SECTION>__NAME__KEY` must be able to override it
/// (environment keys are lowercased).
fn name_label(name: &str, kind: &Named) -> Result<(), String> {
    let (what, default_section) = (kind.what, kind.default_section);
    let env = kind.section.to_ascii_uppercase();
    if name == DEFAULT_NAME {
        return Err(format!(
            "{name:?} is the name of {default_section}; give this {what} another name"
        ));
    }
    let is_label = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if is_label {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} name {name:?}: lowercase letters, digits, \"_\" and \"-\" (at most 64), \
             so that PORTCULLIS_{env}__NAME__KEY can override it"
        ))
    }
}

/// The name `[upstream]` and `[oidc]` go by.
const DEFAULT_NAME: &str = "default";

fn required_file(p: &mut Problems, key: &str, raw: Option<PathBuf>) -> Option<PathBuf> {
    match raw {
        Some(path) => p.check(key, syntax::readable_file(&path).map(|()| path)),
        None => {
            p.push(key, "required");
            None
        }
    }
}

fn optional_file(p: &mut Problems, key: &str, raw: Option<PathBuf>) -> Option<Option<PathBuf>> {
    match raw {
        Some(path) => p.check(key, syntax::readable_file(&path).map(|()| Some(path))),
        None => Some(None),
    }
}

/// A secret given as `key` or as `key_file` (SPEC §2): `Some(None)` when neither is set,
/// `None` after a problem.
fn secret(
    p: &mut Problems,
    key: &str,
    inline: Option<SecretText>,
    file: Option<PathBuf>,
) -> Option<Option<Secret>> {
    let file_key = format!("{key}_file");
    match (inline, file) {
        (Some(_), Some(_)) => {
            p.push(key, format!("both {key} and {file_key} are set; keep one"));
            None
        }
        (Some(SecretText(text)), None) if text.is_empty() => {
            p.push(key, "is empty");
            None
        }
        (Some(SecretText(text)), None) => Some(Some(Secret::new(text))),
        (None, Some(path)) => p
            .check(&file_key, syntax::secret_file(&path))
            .map(|s| Some(Secret::new(s))),
        (None, None) => Some(None),
    }
}
