//! The identity providers of one config (SPEC §12): `[oidc]` (named `default`)
//! and every `[providers.NAME]`, by the index routes and sessions resolve to,
//! by name, and by issuer (a bearer token's `iss` picks its provider).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::oidc::Provider;
use crate::config;

/// Every provider of a config; index 0 is `default`.
pub struct Providers {
    list: Vec<Arc<Provider>>,
    /// Issuers without a trailing `/`, as `jwt::verify` compares them.
    by_issuer: HashMap<String, usize>,
}

impl Providers {
    /// Wraps `list` (in `Config::all_providers` order, `default` first).
    ///
    /// # Panics
    /// When `list` is empty: a config always has `[oidc]`.
    pub fn new(list: Vec<Arc<Provider>>) -> Self {
        assert!(!list.is_empty(), "a config always has the default provider");
        let by_issuer = list
            .iter()
            .enumerate()
            .map(|(i, p)| (p.issuer().trim_end_matches('/').to_owned(), i))
            .collect();
        Providers { list, by_issuer }
    }

    /// `[oidc]`.
    pub fn default_provider(&self) -> &Arc<Provider> {
        &self.list[0]
    }

    /// The provider at `index` (as a route's rule carries); `default` for an
    /// index no rule can carry.
    pub fn get(&self, index: usize) -> &Arc<Provider> {
        self.list.get(index).unwrap_or(&self.list[0])
    }

    /// The provider named `name`, with its index.
    pub fn named(&self, name: &str) -> Option<(usize, &Arc<Provider>)> {
        // Asked twice on every session request; a config names a handful of
        // providers, so comparing names beats hashing the one asked for.
        self.list.iter().enumerate().find(|(_, p)| p.name() == name)
    }

    /// The provider whose issuer is `iss` (a trailing `/` aside), with its index.
    pub fn by_issuer(&self, iss: &str) -> Option<(usize, &Arc<Provider>)> {
        let index = *self.by_issuer.get(iss.trim_end_matches('/'))?;
        Some((index, &self.list[index]))
    }

    /// Every provider, `default` first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.list.iter()
    }

    /// The index of the provider named `name` in `config`'s order, as
    /// `Config::all_providers` lists them (for the route table).
    pub fn index_in(config: &config::Config, name: &str) -> Option<usize> {
        config.all_providers().position(|(n, _)| n == name)
    }
}

/// The `iss` of a JWT, read without verifying anything: only to choose the
/// provider whose keys then verify the token (which checks `iss` again).
/// `None` for anything that is not a JWT with a string `iss`.
pub fn unverified_issuer(token: &str) -> Option<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    if token.len() > super::jwt::MAX_TOKEN_BYTES {
        return None;
    }
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn the_issuer_is_read_only_from_a_string_iss() {
        assert_eq!(
            unverified_issuer(&jwt(r#"{"iss":"https://a.example"}"#)).as_deref(),
            Some("https://a.example")
        );
        for bad in [
            jwt(r#"{"iss":["https://a.example"]}"#),
            jwt(r#"{"sub":"x"}"#),
            jwt("not json"),
            "a.b".to_owned(),
            String::new(),
        ] {
            assert_eq!(unverified_issuer(&bad), None, "{bad}");
        }
    }
}
