//! The verified identity of a user or API client: what policy checks and what
//! the identity headers carry. Built by `auth` from validated tokens only.

use serde::{Deserialize, Serialize};

/// Who the proxy vouches for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The provider's `sub`.
    pub sub: String,
    pub email: Option<String>,
    /// Only a verified email counts for `email_domains` (SPEC §3).
    pub email_verified: bool,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    /// Roles from `oidc.roles_claim` (SPEC §4.2).
    pub roles: Vec<String>,
    /// The identity headers' values, encoded on the first request that sets
    /// them (`identity::headers::set`). Not a claim: never compared,
    /// serialized or cloned.
    #[serde(skip)]
    pub header_values: super::headers::Memo,
}
