//! The compiled configuration: every value parsed, defaulted and validated.
//!
//! These types are what the rest of portcullis reads. They mirror the TOML
//! (SPEC §2) section by section, but hold parsed values (`SocketAddr`, `Url`,
//! `Duration`, `Regex`) rather than strings, so nothing downstream re-validates.
//! The only way to build one from a file is [`crate::config::load`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use regex::Regex;
use serde::Serialize;
use url::Url;

/// The whole configuration, as compiled from one file plus environment overrides.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub server: Server,
    pub admin: Admin,
    pub upstream: Upstream,
    /// `[upstreams.NAME]`: more applications, chosen per route (SPEC §11).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub upstreams: BTreeMap<String, Upstream>,
    pub oidc: Oidc,
    /// `[providers.NAME]`: more identity providers (SPEC §12).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<String, Oidc>,
    /// `[connections.NAME]`: connected accounts (SPEC §13).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub connections: BTreeMap<String, Connection>,
    pub session: Session,
    /// `[[route]]` tables in file order; the first match wins (SPEC §3).
    #[serde(rename = "route", skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    pub policy: Policy,
    pub identity: Identity,
    pub log: Log,
}

impl Oidc {
    /// Returns true if and only if browsers can sign in with this provider
    /// (it has a client); otherwise it verifies bearer tokens only.
    pub fn has_client(&self) -> bool {
        !self.client_id.is_empty()
    }
}

impl Config {
    /// Every provider with its name, `[oidc]` (`default`) first.
    pub fn all_providers(&self) -> impl Iterator<Item = (&str, &Oidc)> {
        std::iter::once((DEFAULT_UPSTREAM, &self.oidc))
            .chain(self.providers.iter().map(|(n, o)| (n.as_str(), o)))
    }

    /// The providers a route admits: its own list, else `policy.providers`.
    pub fn route_providers<'a>(&'a self, route: &'a Route) -> &'a [String] {
        route.providers.as_deref().unwrap_or(&self.policy.providers)
    }

    /// The upstream a route's `upstream` names: `[upstream]` for `None` or
    /// `default`, else `[upstreams.NAME]` (checked to exist when compiled).
    pub fn upstream_named(&self, name: Option<&str>) -> &Upstream {
        match name {
            None | Some(DEFAULT_UPSTREAM) => &self.upstream,
            Some(name) => self.upstreams.get(name).unwrap_or(&self.upstream),
        }
    }

    /// Every upstream with its name, `[upstream]` (`default`) first.
    pub fn all_upstreams(&self) -> impl Iterator<Item = (&str, &Upstream)> {
        std::iter::once((DEFAULT_UPSTREAM, &self.upstream))
            .chain(self.upstreams.iter().map(|(n, u)| (n.as_str(), u)))
    }

    /// The claims an identity must keep beyond its own fields (`sub`, `email`,
    /// `name`, `preferred_username`, the roles): those a `claims` rule or an
    /// identity header refers to, sorted, each once. Sessions keep these and no
    /// others (SPEC §11).
    pub fn kept_claims(&self) -> Vec<String> {
        const OWN: [&str; 5] = ["sub", "email", "name", "preferred_username", "roles"];
        let from_headers = self
            .all_upstreams()
            .flat_map(|(_, up)| up.identity_headers.iter())
            .map(|h| h.claim.as_str())
            .filter(|claim| !OWN.contains(claim));
        let from_rules = self
            .routes
            .iter()
            .flat_map(|r| r.claims.keys())
            .chain(self.policy.claims.keys())
            .map(String::as_str);
        let mut kept: Vec<String> = from_headers.chain(from_rules).map(str::to_owned).collect();
        kept.sort();
        kept.dedup();
        kept
    }
}

/// `[server]`: the public listener.
#[derive(Clone, Debug, Serialize)]
pub struct Server {
    /// `server.listen`, default `0.0.0.0:4180`.
    pub listen: SocketAddr,
    /// `server.public_url`: the origin users see (scheme, host, optional port; no path).
    pub public_url: Url,
    /// `server.auth_prefix`, default `/_auth`: starts with `/`, no trailing `/`.
    pub auth_prefix: String,
    /// `server.trusted_proxies`: CIDRs whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `server.tls`: terminate TLS here when set.
    pub tls: Option<Tls>,
    /// `server.allowed_redirect_hosts`: hosts (exact or `*.example.com`) a post-login
    /// `rd` may name besides the public origin (SPEC §4.1).
    pub allowed_redirect_hosts: Vec<String>,
    /// `server.allowed_origins`: origins (`scheme://host[:port]`, serialized as
    /// browsers send `Origin`) besides the public origin whose pages may open a
    /// WebSocket on a session route (SPEC §7). Never `null`.
    pub allowed_origins: Vec<String>,
    /// `server.post_logout_url`, default `/`.
    pub post_logout_url: String,
    /// `server.templates_dir`: a directory whose `error.html` replaces the
    /// built-in error page (placeholders `{{status}}`, `{{title}}`,
    /// `{{message}}`, `{{action}}`, `{{request_id}}`, all HTML-escaped but
    /// `{{action}}`, a link the proxy builds).
    pub templates_dir: Option<PathBuf>,
    /// `server.header_read_timeout`, default `10s`: a client must send a whole request
    /// head within this (slowloris), also between keep-alive requests.
    #[serde(serialize_with = "serialize_duration")]
    pub header_read_timeout: Duration,
    /// `server.max_header_bytes`, default 16 KiB: larger request heads get 431.
    pub max_header_bytes: usize,
    /// `server.max_body_bytes`, default none: larger request bodies get 413
    /// (counted as they stream; a `Content-Length` over it is refused before
    /// anything is forwarded).
    pub max_body_bytes: Option<u64>,
    /// `server.max_connections`, default 10 000: further connections wait in the
    /// kernel's accept queue.
    pub max_connections: usize,
    /// `server.shutdown_grace`, default `30s`: how long in-flight requests may run
    /// after SIGTERM before the process exits anyway.
    #[serde(serialize_with = "serialize_duration")]
    pub shutdown_grace: Duration,
    /// `server.workers`: threads serving the public listener, each running its
    /// own connections start to finish; `None` = one per core.
    pub workers: Option<usize>,
}

impl Server {
    /// How many threads serve the public listener: `server.workers`, else one
    /// per core the process may use.
    pub fn serving_threads(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    /// Returns true if and only if users reach the proxy over https, so cookies
    /// must be `Secure` (SPEC §5).
    pub fn is_secure(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

/// `server.tls`: PEM certificate chain and private key (RSA, ECDSA or Ed25519).
#[derive(Clone, Debug, Serialize)]
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// `[admin]`: the operator's listener (SPEC §9).
#[derive(Clone, Debug, Serialize)]
pub struct Admin {
    /// `admin.listen`, default `127.0.0.1:9180`; must differ from `server.listen`.
    pub listen: SocketAddr,
    /// `admin.connections_api_token` / `_file`: the bearer secret of the admin
    /// listener's connection token endpoint (SPEC §13); `None` = endpoint off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_api_token: Option<Secret>,
}

/// `[connections.NAME]`: a third-party OAuth 2.0 service whose tokens the proxy
/// holds for each user (SPEC §13).
#[derive(Clone, Debug, Serialize)]
pub struct Connection {
    /// `display_name`: default the connection's name.
    pub display_name: String,
    /// `issuer`: RFC 8414 / OIDC discovery fills the endpoints not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<Url>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<Url>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<Url>,
    /// RFC 7009, used at disconnect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<Url>,
    pub client_id: String,
    pub client_secret: Secret,
    /// Sent space-separated, as given (may be empty: the service's default).
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub auth_params: BTreeMap<String, String>,
    /// `header`: where a route's request carries the access token; default
    /// `Authorization`, whose value is then `Bearer <token>` (else the bare token).
    pub header: String,
    pub token_endpoint_auth: TokenEndpointAuth,
}

impl Connection {
    /// Returns true if and only if the token goes in `Authorization` as `Bearer`.
    pub fn is_bearer_header(&self) -> bool {
        self.header.eq_ignore_ascii_case("authorization")
    }
}

/// `connections.NAME.token_endpoint_auth`: how the client authenticates at the
/// token (and revocation) endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuth {
    ClientSecretBasic,
    ClientSecretPost,
}

/// `[upstream]` (named `default`) or one `[upstreams.NAME]`: a protected application.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Upstream {
    /// `upstream.url`: `http` or `https`, no query or fragment. A path here is a
    /// prefix put before every forwarded path.
    pub url: Url,
    /// `upstream.pass_access_token`, default false (SPEC §7).
    pub pass_access_token: bool,
    /// `upstream.pass_host_header`, default true: forward the client's `Host`
    /// (as nginx `proxy_set_header Host $host`); false sends the upstream's own.
    pub pass_host_header: bool,
    /// `upstream.forward_client_authorization`, default false: forward the
    /// client's own `Authorization` on routes authenticated by a session (for
    /// apps that do their own Basic auth behind the proxy; SPEC §7).
    pub forward_client_authorization: bool,
    /// `upstream.connect_timeout`, default `5s`: failing to connect in time is 502.
    #[serde(serialize_with = "serialize_duration")]
    pub connect_timeout: Duration,
    /// `upstream.response_timeout`, default `60s`: no response head in time is 504.
    #[serde(serialize_with = "serialize_duration")]
    pub response_timeout: Duration,
    /// `upstream.ca_file`: PEM roots trusted for an https upstream instead of the
    /// built-in web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// `upstream.pool_idle_timeout`, default `90s`.
    #[serde(serialize_with = "serialize_duration")]
    pub pool_idle_timeout: Duration,
    /// `upstream.pool_max_idle_per_host`, default 256.
    pub pool_max_idle_per_host: usize,
    /// `identity_preset`, default `standard`: the header family the app reads.
    pub identity_preset: IdentityPreset,
    /// The identity headers this upstream receives, in order: the preset's,
    /// then the `identity_header` entries (an entry replaces a preset header of
    /// the same name). `X-Portcullis-Identity` is sent besides these.
    #[serde(rename = "identity_header")]
    pub identity_headers: Vec<IdentityHeader>,
}

/// The upstream name `[upstream]` goes by in `route.upstream`, logs and metrics.
pub const DEFAULT_UPSTREAM: &str = "default";

/// The provider name `[oidc]` goes by in `route.providers`, sessions and logs.
pub const DEFAULT_PROVIDER: &str = "default";

/// `identity_preset`: the identity headers an application family reads
/// (SPEC §11; the README lists each preset's headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityPreset {
    /// SPEC §7: `X-Forwarded-User`, `-Email`, `-Preferred-Username`, `-Groups`.
    Standard,
    Grafana,
    Gitea,
    Jenkins,
    Sonarqube,
    Radicale,
    Kubernetes,
    /// Only the `identity_header` entries.
    None,
}

impl IdentityPreset {
    pub const ALL: [IdentityPreset; 8] = [
        IdentityPreset::Standard,
        IdentityPreset::Grafana,
        IdentityPreset::Gitea,
        IdentityPreset::Jenkins,
        IdentityPreset::Sonarqube,
        IdentityPreset::Radicale,
        IdentityPreset::Kubernetes,
        IdentityPreset::None,
    ];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityPreset::Standard => "standard",
            IdentityPreset::Grafana => "grafana",
            IdentityPreset::Gitea => "gitea",
            IdentityPreset::Jenkins => "jenkins",
            IdentityPreset::Sonarqube => "sonarqube",
            IdentityPreset::Radicale => "radicale",
            IdentityPreset::Kubernetes => "kubernetes",
            IdentityPreset::None => "none",
        }
    }
}

/// One identity header an upstream receives (`identity_header`, or a preset's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IdentityHeader {
    /// The header name as written (an RFC 9110 token; sent lowercase on HTTP/2).
    pub name: String,
    /// A claim (the exact top-level name, else a dotted path), or `roles` for
    /// the roles read through `oidc.roles_claim`.
    pub claim: String,
    pub multi: HeaderMulti,
    /// For `join`, default `,`.
    pub separator: String,
    /// A missing claim refuses the request (403) instead of omitting the header.
    pub required: bool,
}

/// How a claim with several values (an array, or the roles) is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderMulti {
    /// One header, values joined by `separator` (each value percent-encoded
    /// where it holds the separator, `%`, a control character or non-ASCII).
    Join,
    /// One header per value.
    Repeat,
    /// One header holding a JSON array of strings, kept to visible ASCII.
    Json,
}

/// `[oidc]`: the OpenID provider and this client's registration there.
#[derive(Clone, Debug, Serialize)]
pub struct Oidc {
    /// `display_name`: shown on the sign-in chooser; default the provider's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `oidc.issuer`: discovery at issuer + `/.well-known/openid-configuration`.
    pub issuer: Url,
    /// Empty for a `[providers.NAME]` without a client: bearer tokens only.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_id: String,
    /// `oidc.client_secret` or `oidc.client_secret_file` (empty without a client).
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub client_secret: Secret,
    /// `oidc.scopes`, default `["openid", "profile", "email"]`; always contains `openid`.
    pub scopes: Vec<String>,
    /// `oidc.auth_params`: extra authorize parameters; may not override the ones
    /// the flow owns (`state`, `nonce`, `code_challenge`, `redirect_uri`, ...).
    pub auth_params: BTreeMap<String, String>,
    /// `oidc.roles_claim`: a string or a list in the file; default `["roles"]` (SPEC §4.2).
    pub roles_claim: Vec<String>,
    /// `oidc.audience`: expected `aud` of bearer tokens; `None` = `client_id`.
    pub audience: Option<String>,
    /// `oidc.trusted_audiences`: audiences besides `client_id` an ID token or
    /// logout token may also name (OIDC Core §3.1.3.7 step 3); default none.
    pub trusted_audiences: Vec<String>,
    /// `oidc.clock_leeway`, default `60s`.
    #[serde(serialize_with = "serialize_duration")]
    pub clock_leeway: Duration,
    /// `oidc.jwks_refetch_interval`, default `10s`: a token naming an unknown
    /// `kid` refetches the provider's keys at most this often.
    #[serde(serialize_with = "serialize_duration")]
    pub jwks_refetch_interval: Duration,
}

/// `[session]` (SPEC §5).
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    pub store: SessionStoreKind,
    /// `session.redis_url`: required when `store = "redis"`.
    pub redis_url: Option<Secret>,
    /// `session.secret` / `session.secret_file`, then `session.previous_secrets`:
    /// the first encrypts, all decrypt. Each decodes from base64 to >= 32 bytes.
    /// Empty = a key generated per process (memory store only).
    pub secrets: Vec<Secret>,
    /// `session.cookie_name`, default `portcullis`. The `__Host-` prefix is added
    /// by the cookie code when the cookie is secure and has no domain.
    pub cookie_name: String,
    /// `session.cookie_domain`: share the cookie with subdomains; default none.
    pub cookie_domain: Option<String>,
    /// `session.idle_timeout`, default `1h`.
    #[serde(serialize_with = "serialize_duration")]
    pub idle_timeout: Duration,
    /// `session.absolute_timeout`, default `12h`; never shorter than `idle_timeout`.
    #[serde(serialize_with = "serialize_duration")]
    pub absolute_timeout: Duration,
    /// `session.max_sessions`, default 100 000: memory store bound.
    pub max_sessions: usize,
    /// `session.max_login_states`, default 7: login-state cookies one browser
    /// may hold at once; starting one more clears the oldest.
    pub max_login_states: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStoreKind {
    Memory,
    Redis,
}

/// One `[[route]]` (SPEC §3). Every matcher present must match.
#[derive(Clone, Debug, Serialize)]
pub struct Route {
    /// `route.name`: the label in logs and metrics; default `route[INDEX]`.
    pub name: String,
    /// `route.host`: exact (`app.example.com`) or one-label wildcard (`*.example.com`),
    /// lowercased, no port.
    pub host: Option<String>,
    /// `route.path`: segment prefix, starts with `/`, no trailing `/` (except `/` itself).
    pub path: Option<String>,
    /// `route.path_exact`.
    pub path_exact: Option<String>,
    /// `route.path_regex`, compiled anchored (`^(?:...)$`).
    #[serde(serialize_with = "serialize_regex")]
    pub path_regex: Option<Regex>,
    /// `route.methods`, uppercased; empty = any.
    pub methods: Vec<String>,
    pub auth: AuthMode,
    pub roles_any: Vec<String>,
    pub roles_all: Vec<String>,
    /// Lowercased domains; a verified email of exactly one `@` must end in one.
    pub email_domains: Vec<String>,
    /// `route.claims`: each claim must hold one of its strings (SPEC §3).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, Vec<String>>,
    /// `route.source_ips`: the client address must be in one (any `auth`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<IpNet>,
    /// `route.scopes_any` / `scopes_all`: for bearer tokens only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_any: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_all: Vec<String>,
    /// `route.upstream`: a name of `[upstreams]` (checked), `None` = `[upstream]`.
    pub upstream: Option<String>,
    /// `route.strip_prefix`: removed from the forwarded path (checked to be a
    /// whole-segment prefix of every path the route matches).
    pub strip_prefix: Option<String>,
    /// `route.providers`: the providers whose sessions and tokens the route
    /// admits; `None` = `policy.providers` (SPEC §12).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub providers: Option<Vec<String>>,
    /// `route.connections`: whose access tokens the route's requests carry
    /// (checked to exist; SPEC §13).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<String>,
}

/// `route.auth` / `policy.default`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    Public,
    Login,
    Bearer,
    LoginOrBearer,
    Deny,
}

impl AuthMode {
    /// The name used in the config file and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Public => "public",
            AuthMode::Login => "login",
            AuthMode::Bearer => "bearer",
            AuthMode::LoginOrBearer => "login_or_bearer",
            AuthMode::Deny => "deny",
        }
    }
}

/// `[policy]`: what applies where no route matches, and requirements added to
/// every authenticated route.
#[derive(Clone, Debug, Serialize)]
pub struct Policy {
    /// `policy.default`, default `login`: nothing is public by accident.
    pub default: AuthMode,
    pub roles_any: Vec<String>,
    pub roles_all: Vec<String>,
    pub email_domains: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<IpNet>,
    /// Applied to every route that admits bearer tokens; a session never has scopes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_any: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_all: Vec<String>,
    /// `policy.providers`, default `["default"]`: what a route admits unless it
    /// says otherwise, so adding a provider opens nothing (SPEC §12).
    pub providers: Vec<String>,
}

/// `[identity]`: the signed `X-Portcullis-Identity` assertion (SPEC §7).
#[derive(Clone, Debug, Serialize)]
pub struct Identity {
    /// `identity.signing_key_file`: a PEM (PKCS#8) P-256 key; `None` = generated at start.
    pub signing_key_file: Option<PathBuf>,
    /// `identity.ttl`, default `60s`, at most 60 s.
    #[serde(serialize_with = "serialize_duration")]
    pub ttl: Duration,
}

/// `[log]`.
#[derive(Clone, Debug, Serialize)]
pub struct Log {
    /// `log.format`, default `auto`: text on a terminal, JSON lines otherwise.
    pub format: LogFormat,
    /// `log.level`, default `info`; an `EnvFilter` directive. `RUST_LOG` wins when set.
    pub level: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Text,
}

/// A secret from the config (client secret, session key, Redis URL with password).
///
/// `Debug`, `Display` and `Serialize` print `[redacted]`, so a secret cannot reach a
/// log line or `portcullis check` output by accident; [`Secret::expose`] is the
/// one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself: for the provider request, the cipher, the client.
    /// Returns true if and only if the secret is empty (a provider without a client).
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret decoded from base64, standard or URL-safe alphabet, padded or not:
    /// how session keys are written (`session.secret`). `None` when it is not base64.
    pub fn decode_base64(&self) -> Option<Vec<u8>> {
        use base64::engine::{general_purpose, DecodePaddingMode, Engine, GeneralPurpose};
        let indifferent = general_purpose::GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent);
        let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, indifferent);
        let url_safe = GeneralPurpose::new(&base64::alphabet::URL_SAFE, indifferent);
        let text = self.0.trim();
        standard
            .decode(text)
            .or_else(|_| url_safe.decode(text))
            .ok()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

/// Durations render as the config file writes them (`"90s"`, `"1h30m"`), not as
/// serde's `{ secs, nanos }`.
fn serialize_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    let text = humantime::format_duration(*d).to_string().replace(' ', "");
    s.serialize_str(&text)
}

/// A route regex renders as the operator wrote it: the stored one is wrapped in
/// `^(?:...)$` to anchor it (SPEC §3), and that wrapping is ours, not theirs.
fn serialize_regex<S: serde::Serializer>(re: &Option<Regex>, s: S) -> Result<S::Ok, S::Error> {
    match re {
        Some(re) => {
            let anchored = re.as_str();
            let written = anchored
                .strip_prefix("^(?:")
                .and_then(|rest| rest.strip_suffix(")$"))
                .unwrap_or(anchored);
            s.serialize_some(written)
        }
        None => s.serialize_none(),
    }
}
