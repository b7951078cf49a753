//! portcullis-devidp: a small, real OpenID Connect provider for `portcullis demo`
//! and for portcullis's tests.
//!
//! It speaks real HTTP on loopback: discovery, JWKS (RSA 2048, RS256),
//! authorization code flow with mandatory PKCE S256 and a sign-in page that lists
//! the users (no passwords), token endpoint with refresh-token rotation and reuse
//! detection, userinfo, revocation (RFC 7009), RP-initiated logout and a
//! back-channel logout sender. Tests can switch on one [`Misbehaviour`] at a time
//! to check that a relying party refuses what it must.
//!
//! It can also play a third-party OAuth 2.0 service (GitHub, Google APIs...)
//! for connected accounts (SPEC §13): a client registered with
//! [`Client::is_openid_required`] `false` is a plain OAuth 2.0 client, one with
//! [`AccessTokenFormat::Opaque`] gets opaque access tokens, and `/api/me` is the
//! protected API those tokens open.
//!
//! It shares no code with portcullis's token validation on purpose: a bug on
//! both sides would otherwise pass unnoticed.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), portcullis_devidp::Error> {
//! use portcullis_devidp::{start, Client, Config};
//!
//! let idp = start(Config::new(Client::new("app", "s3cret", "http://127.0.0.1:4180/_auth/callback"))).await?;
//! println!("issuer: {}", idp.issuer()); // http://127.0.0.1:PORT
//! let token = idp.access_token_for("alice", "app"); // a bearer token for tests
//! # Ok(()) }
//! ```
//!
//! # Endpoints
//! - `GET /.well-known/openid-configuration`, and the same document at
//!   `GET /.well-known/oauth-authorization-server` (RFC 8414); it advertises
//!   `revocation_endpoint`.
//! - `GET /jwks`.
//! - `/authorize` (GET: SSO or the sign-in page; POST: the page's form).
//! - `POST /token`: `authorization_code` and `refresh_token` grants.
//! - `GET|POST /userinfo`.
//! - `POST /revoke` (RFC 7009): refresh tokens (with their family) and access
//!   tokens, JWT or opaque, of the authenticated client; always 200.
//! - `GET|POST /end_session`.
//! - `GET /api/me`: the "third-party API". With `Authorization: Bearer` and a
//!   live access token of ours (either format, not expired, not revoked, for a
//!   known user): 200 `{"sub","client_id","scopes":[...],"username","name"}`,
//!   `scopes` being the granted scope split on spaces. Otherwise 401 with
//!   `WWW-Authenticate: Bearer error="invalid_token"`.
//!
//! # Behaviour worth knowing
//! - A refresh token is returned by every code exchange, whatever the scope, so
//!   refresh logic is testable without `offline_access`. Refresh tokens rotate
//!   by default ([`Config::rotate_refresh_tokens`]); presenting a rotated one
//!   revokes its family, access tokens included (RFC 9700 §4.14.2). A code
//!   presented twice revokes what it gave (RFC 6749 §4.1.2).
//! - A client with [`Client::is_openid_required`] (the default) must ask for
//!   `openid`. A plain OAuth 2.0 client may ask for any scope, with no
//!   `nonce`. Either way an ID token is returned only when the scope contains
//!   `openid`, the token response's `scope` is the requested scope
//!   (space-separated; absent when none was asked for), and a refresh keeps
//!   the grant's scope unless a narrower one is asked for.
//! - Access tokens are RFC 9068 JWTs unless the client has
//!   [`AccessTokenFormat::Opaque`]: then random strings the provider remembers.
//!   Both kinds expire after [`Config::access_token_ttl`] and are revoked with
//!   their refresh-token family (rotated-token reuse, replayed code, `/revoke`).
//!   [`DevIdp::access_token_for`] always makes a JWT.
//! - For "the third party refused the refresh" switch on
//!   [`Misbehaviour::RefreshFails`] (400 `invalid_grant`); for "the third party
//!   is down", [`Misbehaviour::ServiceUnavailable`] (503 HTML at `/token` and
//!   `/revoke`) or [`DevIdp::shutdown`] (connection refused).
//!   [`DevIdp::set_misbehaviour_for`] limits a defect to one client, so the
//!   login client keeps working while the third-party client fails.
//! - ID tokens, access tokens and userinfo always carry `name`,
//!   `preferred_username`, `email`, `email_verified` and the roles claim,
//!   whatever the scope. A refreshed ID token keeps `sid` and `auth_time` and has
//!   no `nonce`.
//! - Codes live 60 s; logout tokens 120 s. Time is the system clock plus
//!   [`DevIdp::advance_clock`].
//! - `/end_session` ends the browser's provider session (its cookie, else the
//!   `sid` of a valid `id_token_hint`) and delivers back-channel logout tokens
//!   *before* it answers, so a test sees their effect at once.
//! - [`Stats`] counts attempts and failures separately: `refreshes` counts
//!   every refresh request, `refresh_failures` those refused; `api_calls`
//!   every `/api/me` request, `api_failures` those refused. `revocations`
//!   counts `/revoke` requests that revoked something, and
//!   [`DevIdp::live_grants`] tells whether a grant survived.
//!
//! # Security
//! Anyone who can reach it can sign in as anyone: [`start`] refuses every
//! listen address that is not loopback.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod access;
mod backchannel;
mod config;
mod endpoints;
mod error;
mod html;
mod http;
mod keys;
mod misbehaviour;
mod random;
mod server;
mod state;
mod store;
mod tokens;

pub use backchannel::LogoutDelivery;
pub use config::{demo_users, AccessTokenFormat, Client, ClientAuth, Config, RolesClaim, User};
pub use error::Error;
pub use misbehaviour::Misbehaviour;
pub use state::Stats;

use crate::keys::{KeySet, SigningKey};
use crate::state::{Counters, Shared};

/// Starts a provider: generates its signing key, binds `config.listen` and serves
/// in a background task until [`DevIdp::shutdown`] or drop.
///
/// The issuer is `http://{bound address}`, with no trailing slash.
///
/// # Errors
/// [`Error::NotLoopback`] for any non-loopback address, [`Error::Bind`] when the
/// address cannot be bound, [`Error::KeyGeneration`] if key generation fails.
pub async fn start(config: Config) -> Result<DevIdp, Error> {
    if !config.listen.ip().is_loopback() {
        return Err(Error::NotLoopback {
            addr: config.listen,
        });
    }
    let keys = generate_keys().await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen,
        source,
    })?;
    let shared = Arc::new(Shared {
        issuer: format!("http://{addr}"),
        cookie_name: format!("devidp_session_{}", addr.port()),
        keys: std::sync::RwLock::new(keys),
        store: Default::default(),
        misbehaviour: Default::default(),
        counters: Counters::default(),
        sender: backchannel::Sender::new(),
        clock_offset: Default::default(),
        config,
    });
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(server::serve(listener, shared.clone(), stop_rx));
    tracing::info!(issuer = %shared.issuer, "development OpenID provider listening");
    Ok(DevIdp {
        shared,
        addr,
        stop,
        task,
    })
}

/// RSA key generation takes ~100 ms of CPU: keep it off the async workers.
async fn generate_keys() -> Result<KeySet, Error> {
    tokio::task::spawn_blocking(KeySet::generate)
        .await
        .map_err(|_| Error::KeyGeneration)?
}

/// A running provider. Dropping it stops the server.
#[derive(Debug)]
pub struct DevIdp {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DevIdp {
    /// `http://{addr}`: the issuer, also the base of every endpoint.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The bound address (the real port when the config said 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration the provider runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Stops accepting connections and closes the open ones once their
    /// in-flight requests are answered. Also done on drop.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }

    /// Generates a new signing key and signs with it from now on; the previous
    /// keys stay in the JWKS. Returns the new `kid`.
    ///
    /// # Errors
    /// [`Error::KeyGeneration`] if the key cannot be generated.
    pub async fn rotate_signing_key(&self) -> Result<String, Error> {
        let key = tokio::task::spawn_blocking(SigningKey::generate)
            .await
            .map_err(|_| Error::KeyGeneration)??;
        let kid = key.kid().to_owned();
        self.shared.keys_mut().push(key);
        Ok(kid)
    }

    /// The `kid` of the current signing key.
    pub fn signing_kid(&self) -> String {
        self.shared.keys().current().kid().to_owned()
    }

    /// The current public key as PEM (`-----BEGIN PUBLIC KEY-----`), e.g. to
    /// forge an HS256 token keyed with it.
    pub fn public_key_pem(&self) -> String {
        self.shared.keys().current().public_pem().to_owned()
    }

    /// What the provider has served so far.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Switches `m` on until [`DevIdp::clear_misbehaviour`] (replacing any other).
    pub fn set_misbehaviour(&self, m: Misbehaviour) {
        self.shared.misbehaviour().set(m, None);
    }

    /// Switches `m` on for the requests of `client_id` only, until
    /// [`DevIdp::clear_misbehaviour`] (replacing any other defect). With one
    /// provider playing both the login provider and a third party, a test can
    /// refuse the third party's refreshes ([`Misbehaviour::RefreshFails`]) or
    /// take it down ([`Misbehaviour::ServiceUnavailable`]) while logins work.
    pub fn set_misbehaviour_for(&self, client_id: &str, m: Misbehaviour) {
        self.shared.misbehaviour().set(m, Some(client_id));
    }

    /// Switches `m` on for the next response it affects only (the next ID token
    /// for ID-token defects).
    pub fn misbehave_once(&self, m: Misbehaviour) {
        self.shared.misbehaviour().set_once(m);
    }

    /// Moves the provider's clock forward by `by` (whole seconds): codes, refresh
    /// tokens and access tokens expire as if that time had passed, and new tokens
    /// carry the later `iat`. For tests that must not sleep.
    pub fn advance_clock(&self, by: std::time::Duration) {
        self.shared
            .clock_offset
            .fetch_add(by.as_secs(), std::sync::atomic::Ordering::SeqCst);
    }

    /// Back to correct behaviour.
    pub fn clear_misbehaviour(&self) {
        self.shared.misbehaviour().clear();
    }

    /// Signs `claims` with the current key (RS256), for tests that craft tokens.
    ///
    /// The header is used as given except that `alg` defaults to `RS256` and
    /// `kid` to the current key's when absent; set a member to `null` to leave it
    /// out. The signature is RS256 whatever `alg` says, so a test can also lie.
    pub fn sign_jwt(&self, header: Value, claims: Value) -> String {
        let keys = self.shared.keys();
        let mut header = match header {
            Value::Object(h) => h,
            _ => serde_json::Map::new(),
        };
        header.entry("alg").or_insert_with(|| "RS256".into());
        header
            .entry("kid")
            .or_insert_with(|| keys.current().kid().into());
        header.retain(|_, v| !v.is_null());
        let input = keys::signing_input(&Value::Object(header), &claims);
        keys.sign_input(&input)
    }

    /// Signs the exact JSON texts given with the current key (RS256), byte for
    /// byte: nothing is parsed, defaulted or reordered, so a test can send what
    /// [`DevIdp::sign_jwt`] cannot express (a member named twice, escapes,
    /// odd whitespace). The header should name `RS256` and the current `kid`
    /// ([`DevIdp::signing_kid`]) for the token to verify.
    pub fn sign_raw(&self, header_json: &str, claims_json: &str) -> String {
        self.shared.keys().sign_raw(header_json, claims_json)
    }

    /// A valid RFC 9068 access token (`typ: at+jwt`) for `sub` and `client_id`,
    /// scope `openid profile email`, as the token endpoint would issue it. An
    /// unknown `sub` gets a token with no roles or profile claims.
    pub fn access_token_for(&self, sub: &str, client_id: &str) -> String {
        let fallback;
        let user = match self.shared.config.user(sub) {
            Some(u) => u,
            None => {
                fallback = User {
                    sub: sub.to_owned(),
                    username: String::new(),
                    name: String::new(),
                    email: String::new(),
                    email_verified: false,
                    roles: Vec::new(),
                    extra: serde_json::Map::new(),
                };
                &fallback
            }
        };
        let grant = tokens::AccessGrant {
            user,
            client_id,
            scope: "openid profile email",
            auth_time: None,
        };
        let keys = self.shared.keys();
        tokens::access_token(
            &self.shared.config,
            &self.shared.issuer,
            &keys,
            &grant,
            self.shared.now(),
        )
        .0
    }

    /// Logs `sub` out at the provider now: ends their provider sessions and
    /// sends a logout token (with `sid`) to every client of those sessions that
    /// has a `backchannel_logout_uri`. With no session, sends a `sub`-only logout
    /// token to every client that has one. Returns one entry per token sent.
    pub async fn backchannel_logout(&self, sub: &str) -> Vec<LogoutDelivery> {
        let sessions = self.shared.store().end_sessions_of(sub);
        if sessions.is_empty() {
            backchannel::notify_everyone(&self.shared, sub).await
        } else {
            backchannel::notify_sessions(&self.shared, &sessions).await
        }
    }

    /// The number of grants of `sub` at `client_id` that still work: code
    /// exchanges whose refresh-token family is neither revoked (by `/revoke`,
    /// reuse, a replayed code or [`DevIdp::revoke_refresh_tokens`]) nor expired.
    /// A test reads it to show that unlinking an account revoked the refresh
    /// token the proxy held, which the test itself never sees.
    pub fn live_grants(&self, sub: &str, client_id: &str) -> usize {
        let now = self.shared.now();
        self.shared.store().live_grants(sub, client_id, now)
    }

    /// Revokes every refresh token of `sub`: their next refresh gets
    /// `invalid_grant`. Access tokens stay valid until they expire.
    pub fn revoke_refresh_tokens(&self, sub: &str) {
        self.shared.store().revoke_refresh_tokens_of(sub);
    }

    /// Forgets every provider session (no back-channel notices): the next
    /// authorization request shows the sign-in page, and `prompt=none` gets
    /// `login_required`.
    pub fn end_provider_sessions(&self) {
        self.shared.store().end_all_sessions();
    }
}

impl Drop for DevIdp {
    fn drop(&mut self) {
        self.shutdown();
    }
}
