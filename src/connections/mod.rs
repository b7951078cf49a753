//! Connected accounts (SPEC §13): a signed-in user links an account at a
//! third-party OAuth 2.0 service; the proxy keeps that service's tokens
//! server-side, per user, and hands fresh access tokens to the routes that
//! name the connection. The browser never sees a token; the app never sees a
//! refresh token.
//!
//! - [`client`]: one connection's OAuth 2.0 client (discovery, authorize URL,
//!   token endpoint, revocation).
//! - [`flow`]: `connect/NAME` and its callback, the state bound to the
//!   browser's session by a sealed cookie.
//! - [`tokens`]: a link's access token, refreshed ahead of expiry once per
//!   link however many requests and replicas want it.
//!
//! Links live in the session store ([`crate::session::LinkStore`]), keyed by
//! the identity (provider, `sub`) and the connection name.

pub mod client;
pub mod flow;
pub mod tokens;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::http::HttpClient;
use crate::config::Config;

pub use client::{Client, ClientError};

/// How long one call to a third party may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Every configured connection's client, by name; rebuilt with the runtime.
#[derive(Default)]
pub struct Connections {
    clients: BTreeMap<String, Arc<Client>>,
}

impl Connections {
    pub fn new(config: &Config) -> Self {
        if config.connections.is_empty() {
            return Connections::default();
        }
        let http = HttpClient::new(CALL_TIMEOUT);
        let base = format!(
            "{}{}",
            config.server.public_url.as_str().trim_end_matches('/'),
            config.server.auth_prefix
        );
        let clients = config
            .connections
            .iter()
            .map(|(name, connection)| {
                let client = Client::new(name, connection.clone(), &base, http.clone());
                (name.clone(), Arc::new(client))
            })
            .collect();
        Connections { clients }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Client>> {
        self.clients.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Client>> {
        self.clients.values()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}
