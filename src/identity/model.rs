//! The verified identity of a user or API client: what policy checks and what
//! the identity headers carry. Built by `auth` from validated tokens only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who the proxy vouches for: (provider, `sub`), never `sub` alone (SPEC §12).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The name of the provider that vouched: `default` for `[oidc]` (and for
    /// every session stored before several providers existed).
    #[serde(default = "default_provider")]
    pub provider: String,
    /// The provider's `sub`.
    pub sub: String,
    pub email: Option<String>,
    /// Only a verified email counts for `email_domains` (SPEC §3).
    pub email_verified: bool,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    /// Roles from `oidc.roles_claim` (SPEC §4.2).
    pub roles: Vec<String>,
    /// The other claims the config refers to (rule `claims`, identity headers),
    /// by the reference as written there; no others are kept (SPEC §11).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, serde_json::Value>,
    /// A bearer token's scopes (`scope`, space-separated, or `scp`); a session
    /// has none (SPEC §3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The identity headers' values, encoded on the first request that sets
    /// them (`identity::headers::set`). Not a claim: never compared,
    /// serialized or cloned.
    #[serde(skip)]
    pub header_values: super::headers::Memo,
}

fn default_provider() -> String {
    crate::config::DEFAULT_PROVIDER.to_owned()
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            provider: default_provider(),
            sub: String::new(),
            email: None,
            email_verified: false,
            name: None,
            preferred_username: None,
            roles: Vec::new(),
            claims: BTreeMap::new(),
            scopes: Vec::new(),
            header_values: super::headers::Memo::default(),
        }
    }
}
