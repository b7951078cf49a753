//! The configuration as written: serde structs mirroring the file (SPEC §2).
//!
//! Every section and route is `deny_unknown_fields`, so a misspelt key is an error
//! rather than a silently ignored setting. Values stay close to the text here (strings,
//! not `Url` or `SocketAddr`); [`super::compile`] parses them so that one bad value does
//! not hide the next. Every field is optional: defaults are applied when compiling, where
//! "not set" can still be told apart from "set to the default".
//!
//! Raw structs deliberately do not derive `Debug`: they hold secrets before those are
//! wrapped in [`super::Secret`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// The top-level section names, in the order the file documents them.
pub(super) const SECTIONS: &[&str] = &[
    "server",
    "admin",
    "upstream",
    "upstreams",
    "oidc",
    "providers",
    "connections",
    "session",
    "route",
    "policy",
    "identity",
    "log",
];

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawServer {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub auth_prefix: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub tls: Option<RawTls>,
    pub allowed_redirect_hosts: Option<Vec<String>>,
    pub allowed_origins: Option<Vec<String>>,
    pub post_logout_url: Option<String>,
    pub templates_dir: Option<PathBuf>,
    pub header_read_timeout: Option<DurationText>,
    pub max_header_bytes: Option<Count>,
    pub max_body_bytes: Option<Count>,
    pub max_connections: Option<Count>,
    pub shutdown_grace: Option<DurationText>,
    pub workers: Option<Count>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawTls {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub listen: Option<String>,
    pub connections_api_token: Option<SecretText>,
    pub connections_api_token_file: Option<PathBuf>,
}

/// One `[connections.NAME]` table (SPEC §13).
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawConnection {
    pub display_name: Option<String>,
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretText>,
    pub client_secret_file: Option<PathBuf>,
    pub scopes: Option<Vec<String>>,
    pub auth_params: Option<BTreeMap<String, String>>,
    pub header: Option<String>,
    pub token_endpoint_auth: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub url: Option<String>,
    pub pass_access_token: Option<Flag>,
    pub pass_host_header: Option<Flag>,
    pub forward_client_authorization: Option<Flag>,
    pub connect_timeout: Option<DurationText>,
    pub response_timeout: Option<DurationText>,
    pub ca_file: Option<PathBuf>,
    pub pool_idle_timeout: Option<DurationText>,
    pub pool_max_idle_per_host: Option<Count>,
    pub identity_preset: Option<String>,
    pub identity_header: Option<Vec<RawIdentityHeader>>,
}

/// One `[[upstream.identity_header]]` / `[[upstreams.NAME.identity_header]]` entry.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawIdentityHeader {
    pub name: Option<String>,
    pub claim: Option<String>,
    pub multi: Option<String>,
    pub separator: Option<String>,
    pub required: Option<Flag>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawOidc {
    pub display_name: Option<String>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretText>,
    pub client_secret_file: Option<PathBuf>,
    pub scopes: Option<Vec<String>>,
    pub auth_params: Option<BTreeMap<String, String>>,
    pub roles_claim: Option<OneOrMany>,
    pub audience: Option<String>,
    pub trusted_audiences: Option<Vec<String>>,
    pub clock_leeway: Option<DurationText>,
    pub jwks_refetch_interval: Option<DurationText>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawSession {
    pub store: Option<String>,
    pub redis_url: Option<SecretText>,
    pub redis_url_file: Option<PathBuf>,
    pub secret: Option<SecretText>,
    pub secret_file: Option<PathBuf>,
    pub previous_secrets: Option<Vec<SecretText>>,
    pub previous_secrets_file: Option<PathBuf>,
    pub cookie_name: Option<String>,
    pub cookie_domain: Option<String>,
    pub idle_timeout: Option<DurationText>,
    pub absolute_timeout: Option<DurationText>,
    pub max_sessions: Option<Count>,
    pub max_login_states: Option<Count>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawRoute {
    pub name: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub path_exact: Option<String>,
    pub path_regex: Option<String>,
    pub methods: Option<Vec<String>>,
    pub auth: Option<String>,
    pub roles_any: Option<Vec<String>>,
    pub roles_all: Option<Vec<String>>,
    pub email_domains: Option<Vec<String>>,
    pub claims: Option<BTreeMap<String, Vec<String>>>,
    pub source_ips: Option<Vec<String>>,
    pub scopes_any: Option<Vec<String>>,
    pub scopes_all: Option<Vec<String>>,
    pub upstream: Option<String>,
    pub strip_prefix: Option<String>,
    pub providers: Option<Vec<String>>,
    pub connections: Option<Vec<String>>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub default: Option<String>,
    pub roles_any: Option<Vec<String>>,
    pub roles_all: Option<Vec<String>>,
    pub email_domains: Option<Vec<String>>,
    pub claims: Option<BTreeMap<String, Vec<String>>>,
    pub source_ips: Option<Vec<String>>,
    pub scopes_any: Option<Vec<String>>,
    pub scopes_all: Option<Vec<String>>,
    pub providers: Option<Vec<String>>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawIdentity {
    pub signing_key_file: Option<PathBuf>,
    pub ttl: Option<DurationText>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

// === impl DurationText ===

/// A duration as written (`"90s"`, `"1h30m"`), parsed with `humantime` when compiling.
///
/// Only strings are accepted: a bare `90` could mean seconds or milliseconds, so it is
/// refused with a message showing the expected shape.
pub(super) struct DurationText(pub String);

const DURATION_EXPECTED: &str = "a duration such as \"90s\"";

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DURATION_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

// === impl SecretText ===

/// A secret as written. Its deserializer never puts the value in an error message:
/// serde's default "invalid type: found unsigned int `1234`" would print a numeric
/// secret into `portcullis check` output and logs.
pub(super) struct SecretText(pub String);

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const NOT_TEXT: &str =
            "expected a string (quote it); the value is not shown because it is a secret";
        impl Visitor<'_> for V {
            type Value = SecretText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretText, E> {
                Ok(SecretText(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretText, E> {
                Err(E::custom(NOT_TEXT))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretText, E> {
                Err(E::custom(NOT_TEXT))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretText, E> {
                Err(E::custom(NOT_TEXT))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretText, E> {
                Err(E::custom(NOT_TEXT))
            }
        }
        d.deserialize_str(V)
    }
}

// === impl OneOrMany ===

/// `oidc.roles_claim`: one claim name, or a list of them.
pub(super) struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut all = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    all.push(item);
                }
                Ok(OneOrMany(all))
            }
        }
        d.deserialize_any(V)
    }
}

// === impl Count ===

/// A non-negative whole number. Strings of digits are accepted too, because an
/// environment override (`PORTCULLIS_SERVER__MAX_CONNECTIONS=500`) arrives as text.
pub(super) struct Count(pub usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative whole number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                usize::try_from(v)
                    .map(Count)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                usize::try_from(v)
                    .map(Count)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Count, E> {
                v.trim()
                    .parse()
                    .map(Count)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

// === impl Flag ===

/// A boolean; `"true"` and `"false"` are accepted as text for environment overrides.
pub(super) struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                match v.trim() {
                    "true" => Ok(Flag(true)),
                    "false" => Ok(Flag(false)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}
