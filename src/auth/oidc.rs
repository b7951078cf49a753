//! The OpenID provider, from the relying party's side: discovery, the
//! authorization code flow with PKCE, ID-token validation (OIDC Core §3.1.3.7),
//! userinfo, refresh, revocation (RFC 7009), RP-initiated logout and
//! back-channel logout tokens (Back-Channel Logout 1.0 §2.6).
//!
//! Returns values (a URL, a token set, an identity), never responses.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use aws_lc_rs::digest;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use url::Url;

use crate::clock::Clock;
use crate::config;
use crate::identity::Identity;

use super::bearer::{self, Audience, BearerError};
use super::claims;
use super::http::{HttpClient, HttpError};
use super::jwks::Jwks;
use super::jwt::{self, audiences, str_claim, Expect, JwtError};

/// ID tokens must have been issued within this many seconds of the callback.
const ID_TOKEN_MAX_AGE: i64 = 600;
/// Logout tokens without `exp` must have been issued within this many seconds.
const LOGOUT_TOKEN_MAX_AGE: i64 = 300;
/// Verified bearer tokens kept at most (about 1 KiB each), and the token
/// bytes they may hold (tokens may be up to 16 KiB).
const BEARER_CACHE_CAPACITY: usize = 10_000;
const BEARER_CACHE_BYTES: usize = 16 * 1024 * 1024;
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Why a provider interaction failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Discovery has not succeeded yet (the provider was down at start).
    #[error("provider metadata not loaded yet")]
    NotReady,
    /// The provider could not be reached or timed out.
    #[error(transparent)]
    Unreachable(#[from] HttpError),
    /// The discovery document is unusable.
    #[error("discovery: {0}")]
    Discovery(String),
    /// The discovery document names another issuer than the one configured
    /// (OpenID Connect Discovery §4.3; the mix-up defence).
    #[error("discovery names issuer {found:?}, configured is {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    /// The token endpoint refused (`invalid_grant` for a bad or replayed code,
    /// a revoked refresh token...).
    #[error("token endpoint answered {status}: {error}")]
    TokenRefused { status: u16, error: String },
    /// The token endpoint failed (5xx) or answered something that is not a token response.
    #[error("token endpoint failed: {0}")]
    TokenEndpoint(String),
    /// The ID token failed a check.
    #[error("ID token refused: {0}")]
    IdToken(#[from] JwtError),
    /// `nonce` missing or not the one sent with this login.
    #[error("ID token nonce does not match the login")]
    Nonce,
    /// `aud` names an audience that is neither this client nor one of
    /// `oidc.trusted_audiences` (OIDC Core §3.1.3.7 step 3).
    #[error("token names untrusted audience {0:?}")]
    UntrustedAudience(String),
    /// `azp` missing with several audiences, or not our client.
    #[error("ID token azp {0:?} is not this client")]
    Azp(Option<String>),
    /// A refreshed ID token or userinfo names another subject.
    #[error("{what} names subject {found:?}, the session is for another")]
    SubjectMismatch { what: &'static str, found: String },
    /// Userinfo answered with an error or non-JSON.
    #[error("userinfo: {0}")]
    Userinfo(String),
    /// A logout token failed a check.
    #[error("logout token refused: {0}")]
    LogoutToken(String),
}

impl OidcError {
    /// Returns true if and only if the provider (not the user or the token) is
    /// at fault: an outage during which existing sessions keep working.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            OidcError::Unreachable(_) | OidcError::NotReady | OidcError::TokenEndpoint(_)
        )
    }
}

/// The discovery document fields portcullis uses.
#[derive(Clone, Debug, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    /// Empty where the provider has none: an issuer of tokens only (GitHub
    /// Actions), usable by a provider without a client (SPEC §12).
    #[serde(default)]
    pub authorization_endpoint: String,
    #[serde(default)]
    pub token_endpoint: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// RFC 9207 §3: the provider puts `iss` in every authorization response.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

/// A successful token endpoint response (RFC 6749 §5.1).
#[derive(Clone, Debug, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
}

/// An OIDC `prompt` a login may ask for (OIDC Core §3.1.2.1): `login` makes
/// the provider ask for credentials again, `select_account` lets the person
/// pick another account ("sign in as someone else").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prompt {
    Login,
    SelectAccount,
}

impl Prompt {
    /// The prompt named `text`, if it is one a login may ask for.
    pub fn parse(text: &str) -> Option<Prompt> {
        match text {
            "login" => Some(Prompt::Login),
            "select_account" => Some(Prompt::SelectAccount),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Prompt::Login => "login",
            Prompt::SelectAccount => "select_account",
        }
    }
}

/// What a login needs to remember between the redirect and the callback.
#[derive(Clone, Debug, serde::Serialize, Deserialize)]
pub struct LoginRequest {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

impl LoginRequest {
    /// Fresh random `state`, `nonce` and PKCE verifier (256 bits each).
    pub fn generate() -> Self {
        LoginRequest {
            state: random_token(),
            nonce: random_token(),
            pkce_verifier: random_token(),
        }
    }

    /// The S256 challenge for the verifier (RFC 7636 §4.2).
    pub fn pkce_challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(digest::digest(
            &digest::SHA256,
            self.pkce_verifier.as_bytes(),
        ))
    }
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The outcome of a completed login or refresh.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub identity: Identity,
    pub sid: Option<String>,
    pub id_token: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Unix seconds.
    pub access_expires_at: Option<i64>,
}

/// A validated back-channel logout request: end sessions of `sid`, else of `sub`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutOrder {
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
    /// Unix seconds until which the `jti` must be remembered.
    pub remember_until: i64,
}

/// How this client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientAuth {
    Basic,
    Post,
}

struct Discovered {
    metadata: Metadata,
    jwks: Jwks,
    client_auth: ClientAuth,
}

/// One configured provider and this client's registration there.
pub struct Provider {
    /// `default` for `[oidc]`, else the `[providers.NAME]` name (SPEC §12).
    name: String,
    /// `display_name`, else the name: for the sign-in chooser.
    display_name: String,
    /// The `aud` bearer tokens of this provider must carry (`audience`, else
    /// `client_id`).
    audience: String,
    issuer: String,
    client_id: String,
    client_secret: config::Secret,
    scopes: String,
    auth_params: Vec<(String, String)>,
    roles_claim: Vec<String>,
    /// `oidc.trusted_audiences`: what an ID or logout token's `aud` may hold
    /// besides `client_id`.
    trusted_audiences: Vec<String>,
    /// `Config::kept_claims`: what identities keep beyond their own fields.
    kept_claims: Vec<String>,
    redirect_uri: String,
    leeway: i64,
    /// `oidc.jwks_refetch_interval`.
    jwks_refetch_interval: Duration,
    http: HttpClient,
    clock: Arc<dyn Clock>,
    discovered: ArcSwapOption<Discovered>,
    bearer_cache: bearer::Cache,
    counters: Option<ProviderCounters>,
}

/// The series a provider counts into (clones of the registered ones).
#[derive(Clone)]
pub struct ProviderCounters {
    /// `portcullis_provider_fetches_total{kind}`: discovery, jwks.
    pub fetches: prometheus::IntCounterVec,
    /// `portcullis_provider_errors_total{endpoint}`.
    pub errors: prometheus::IntCounterVec,
}

impl Provider {
    /// The `[oidc]` provider (`default`) of `config`, not yet discovered.
    pub fn new(config: &config::Config, http: HttpClient, clock: Arc<dyn Clock>) -> Self {
        Self::named(config::DEFAULT_PROVIDER, &config.oidc, config, http, clock)
    }

    /// The provider `name` configured as `oidc` in `config`, not yet discovered.
    pub fn named(
        name: &str,
        oidc: &config::Oidc,
        config: &config::Config,
        http: HttpClient,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let base = format!(
            "{}{}/callback",
            config.server.public_url.as_str().trim_end_matches('/'),
            config.server.auth_prefix
        );
        // The default keeps its registered URI; the others get their own, so a
        // callback's path says which provider it comes from (SPEC §12).
        let redirect_uri = if name == config::DEFAULT_PROVIDER {
            base
        } else {
            format!("{base}/{name}")
        };
        Provider {
            name: name.to_owned(),
            // Without a display name, people see the provider's host rather
            // than the config's internal name ("default").
            display_name: oidc.display_name.clone().unwrap_or_else(|| {
                if name == config::DEFAULT_PROVIDER {
                    oidc.issuer.host_str().unwrap_or(name).to_owned()
                } else {
                    name.to_owned()
                }
            }),
            audience: oidc
                .audience
                .clone()
                .unwrap_or_else(|| oidc.client_id.clone()),
            issuer: oidc.issuer.as_str().to_owned(),
            client_id: oidc.client_id.clone(),
            client_secret: oidc.client_secret.clone(),
            scopes: oidc.scopes.join(" "),
            auth_params: oidc
                .auth_params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            roles_claim: oidc.roles_claim.clone(),
            trusted_audiences: oidc.trusted_audiences.clone(),
            kept_claims: config.kept_claims(),
            redirect_uri,
            leeway: i64::try_from(oidc.clock_leeway.as_secs()).unwrap_or(60),
            jwks_refetch_interval: oidc.jwks_refetch_interval,
            http,
            clock,
            discovered: ArcSwapOption::empty(),
            bearer_cache: bearer::Cache::new(BEARER_CACHE_CAPACITY, BEARER_CACHE_BYTES),
            counters: None,
        }
    }

    /// Counts fetches and errors into `counters`.
    pub fn with_counters(mut self, counters: ProviderCounters) -> Self {
        self.counters = Some(counters);
        self
    }

    /// Returns true if and only if `oidc` (named `name` in `config`) would
    /// build this same provider client, so a reload can keep it (and its
    /// discovered metadata and keys).
    pub fn has_settings_of(
        &self,
        name: &str,
        oidc: &config::Oidc,
        config: &config::Config,
    ) -> bool {
        let other = Provider::named(name, oidc, config, self.http.clone(), self.clock.clone());
        self.name == other.name
            && self.display_name == other.display_name
            && self.audience == other.audience
            && self.issuer == other.issuer
            && self.client_id == other.client_id
            && self.client_secret == other.client_secret
            && self.scopes == other.scopes
            && self.auth_params == other.auth_params
            && self.roles_claim == other.roles_claim
            && self.trusted_audiences == other.trusted_audiences
            && self.kept_claims == other.kept_claims
            && self.redirect_uri == other.redirect_uri
            && self.leeway == other.leeway
            && self.jwks_refetch_interval == other.jwks_refetch_interval
    }

    /// Returns true if and only if discovery has succeeded.
    pub fn is_ready(&self) -> bool {
        self.discovered.load().is_some()
    }

    /// The callback URL registered at the provider.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The discovered metadata.
    ///
    /// # Errors
    /// [`OidcError::NotReady`] before discovery succeeded.
    pub fn metadata(&self) -> Result<Metadata, OidcError> {
        Ok(self.ready()?.metadata.clone())
    }

    /// The provider's key cache (shared with bearer-token checks).
    ///
    /// # Errors
    /// [`OidcError::NotReady`] before discovery succeeded.
    pub fn with_jwks<T>(&self, f: impl FnOnce(&Jwks) -> T) -> Result<T, OidcError> {
        Ok(f(&self.ready()?.jwks))
    }

    fn ready(&self) -> Result<Arc<Discovered>, OidcError> {
        self.discovered.load_full().ok_or(OidcError::NotReady)
    }

    /// The configured issuer, as the provider must state it.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `default`, or the `[providers.NAME]` name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the sign-in chooser shows.
    pub fn display_name(&self) -> &str {
        &self.display_name
    }

    /// Returns true if and only if browsers can sign in with this provider.
    pub fn has_client(&self) -> bool {
        !self.client_id.is_empty()
    }

    /// The `aud` this provider's bearer tokens must carry.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Returns true if and only if discovery says this provider sends `iss`
    /// in authorization responses (RFC 9207), which then must be checked.
    pub fn sends_response_iss(&self) -> bool {
        self.ready()
            .is_ok_and(|d| d.metadata.authorization_response_iss_parameter_supported)
    }

    /// Fetches the discovery document and the JWKS.
    ///
    /// # Errors
    /// When the provider is unreachable or its metadata is unusable or names
    /// another issuer.
    pub async fn discover(&self) -> Result<(), OidcError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let req = Request::get(&url)
            .header(header::ACCEPT, "application/json")
            .body(Full::default())
            .map_err(|e| OidcError::Discovery(e.to_string()))?;
        if let Some(counters) = &self.counters {
            counters.fetches.with_label_values(&["discovery"]).inc();
        }
        let resp = self.http.send(req).await?;
        if resp.status != StatusCode::OK {
            return Err(OidcError::Discovery(format!(
                "{url} answered {}",
                resp.status
            )));
        }
        let metadata: Metadata = serde_json::from_slice(&resp.body)
            .map_err(|e| OidcError::Discovery(format!("{url}: {e}")))?;
        if !same_issuer(&metadata.issuer, &self.issuer) {
            return Err(OidcError::IssuerMismatch {
                expected: self.issuer.clone(),
                found: metadata.issuer,
            });
        }
        if self.has_client()
            && (metadata.authorization_endpoint.is_empty() || metadata.token_endpoint.is_empty())
        {
            return Err(OidcError::Discovery(format!(
                "{url}: no authorization_endpoint or token_endpoint, so browsers cannot sign in \
                 here; a provider used for bearer tokens only takes no client_id"
            )));
        }
        let client_auth =
            choose_client_auth(metadata.token_endpoint_auth_methods_supported.as_deref())?;
        let jwks = Jwks::counted(
            self.http.clone(),
            metadata.jwks_uri.clone(),
            self.counters.as_ref().map(|c| c.fetches.clone()),
            self.jwks_refetch_interval,
        );
        jwks.refresh()
            .await
            .map_err(|e| OidcError::Discovery(e.to_string()))?;
        self.discovered.store(Some(Arc::new(Discovered {
            metadata,
            jwks,
            client_auth,
        })));
        Ok(())
    }

    /// Discovers until it succeeds, backing off from 1 s to 60 s, so a provider
    /// that is down at start delays readiness instead of crashing the proxy.
    pub async fn discover_with_retry(&self, mut on_ready: impl FnMut()) {
        let mut delay = Duration::from_secs(1);
        loop {
            match self.discover().await {
                Ok(()) => {
                    tracing::info!(issuer = %self.issuer, "provider metadata loaded");
                    on_ready();
                    return;
                }
                Err(error) => {
                    if let Some(counters) = &self.counters {
                        counters.errors.with_label_values(&["discovery"]).inc();
                    }
                    tracing::warn!(issuer = %self.issuer, %error, retry_in = ?delay, "provider discovery failed");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
            }
        }
    }

    /// The authorization request URL for `login` (PKCE S256, state, nonce).
    ///
    /// # Errors
    /// [`OidcError::NotReady`] before discovery.
    pub fn authorize_url(
        &self,
        login: &LoginRequest,
        prompt: Option<Prompt>,
    ) -> Result<String, OidcError> {
        let ready = self.ready()?;
        let mut url = Url::parse(&ready.metadata.authorization_endpoint)
            .map_err(|e| OidcError::Discovery(format!("authorization_endpoint: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("scope", &self.scopes)
                .append_pair("state", &login.state)
                .append_pair("nonce", &login.nonce)
                .append_pair("code_challenge", &login.pkce_challenge())
                .append_pair("code_challenge_method", "S256");
            for (k, v) in &self.auth_params {
                if prompt.is_some() && k == "prompt" {
                    continue;
                }
                q.append_pair(k, v);
            }
            if let Some(prompt) = prompt {
                q.append_pair("prompt", prompt.as_str());
            }
        }
        Ok(url.into())
    }

    /// Exchanges an authorization `code`, validates the ID token against `login`,
    /// merges userinfo, and returns the new session's tokens.
    ///
    /// # Errors
    /// Refusals by the provider, unreachable provider, or any failed token check.
    pub async fn complete_login(
        &self,
        code: &str,
        login: &LoginRequest,
    ) -> Result<Tokens, OidcError> {
        let response = self
            .token_request(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
                ("code_verifier", &login.pkce_verifier),
            ])
            .await?;
        let id_token = response
            .id_token
            .clone()
            .ok_or_else(|| OidcError::TokenEndpoint("no id_token in the token response".into()))?;
        let claims = self
            .validate_id_token(&id_token, Some(&login.nonce))
            .await?;
        self.tokens(response, id_token, claims, None).await
    }

    /// Refreshes with `refresh_token`; a rotated refresh token replaces the old.
    ///
    /// # Errors
    /// [`OidcError::TokenRefused`] when the provider ends the grant (the session
    /// must end), outage errors when it cannot answer.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        session_sub: &str,
    ) -> Result<Tokens, OidcError> {
        let response = self
            .token_request(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .await?;
        let (id_token, claims) = match response.id_token.clone() {
            Some(id_token) => {
                let claims = self.validate_id_token(&id_token, None).await?;
                (id_token, Some(claims))
            }
            None => (String::new(), None),
        };
        if let Some(sub) = claims
            .as_ref()
            .and_then(|c| c.get("sub"))
            .and_then(Value::as_str)
        {
            if sub != session_sub {
                return Err(OidcError::SubjectMismatch {
                    what: "refreshed ID token",
                    found: sub.to_owned(),
                });
            }
        }
        let mut tokens = match claims {
            Some(claims) => {
                self.tokens(response, id_token, claims, Some(session_sub))
                    .await?
            }
            None => Tokens {
                identity: Identity::default(),
                sid: None,
                id_token,
                access_expires_at: self.expires_at(response.expires_in),
                access_token: response.access_token,
                refresh_token: response.refresh_token,
            },
        };
        tokens.refresh_token = tokens
            .refresh_token
            .or_else(|| Some(refresh_token.to_owned()));
        Ok(tokens)
    }

    async fn tokens(
        &self,
        response: TokenResponse,
        id_token: String,
        mut claims: Map<String, Value>,
        expected_sub: Option<&str>,
    ) -> Result<Tokens, OidcError> {
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if let Some(expected) = expected_sub {
            if sub != expected {
                return Err(OidcError::SubjectMismatch {
                    what: "ID token",
                    found: sub,
                });
            }
        }
        if let Some(userinfo) = self.userinfo(&response.access_token).await? {
            merge_userinfo(&mut claims, userinfo, &sub)?;
        }
        let sid = claims.get("sid").and_then(Value::as_str).map(str::to_owned);
        let mut identity = claims::identity(&claims, &self.roles_claim, &self.kept_claims);
        identity.provider = self.name.clone();
        Ok(Tokens {
            identity,
            sid,
            id_token,
            access_expires_at: self.expires_at(response.expires_in),
            access_token: response.access_token,
            refresh_token: response.refresh_token,
        })
    }

    fn expires_at(&self, expires_in: Option<i64>) -> Option<i64> {
        expires_in.map(|s| self.clock.now().saturating_add(s.max(0)))
    }

    /// OIDC Core §3.1.3.7: signature with an allowed algorithm, `iss`, `aud`,
    /// `azp`, `exp`, `iat`, and `nonce` when this is a login's ID token.
    async fn validate_id_token(
        &self,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<Map<String, Value>, OidcError> {
        let ready = self.ready()?;
        let expect = Expect {
            issuer: &ready.metadata.issuer,
            audience: &self.client_id,
            now: self.clock.now(),
            leeway: self.leeway,
            require_exp: true,
            max_age: Some(ID_TOKEN_MAX_AGE),
        };
        let verified = jwt::verify(token, &ready.jwks, &expect).await?;
        let claims = verified.claims;
        if str_claim(&claims, "sub")?.is_none_or(str::is_empty) {
            return Err(JwtError::MissingClaim("sub").into());
        }
        if jwt::int_claim(&claims, "iat")?.is_none() {
            return Err(JwtError::MissingClaim("iat").into());
        }
        check_audiences(&claims, &self.client_id, &self.trusted_audiences)?;
        check_azp(&claims, &self.client_id)?;
        if let Some(expected) = nonce {
            let found = str_claim(&claims, "nonce")?.ok_or(OidcError::Nonce)?;
            if !bool::from(found.as_bytes().ct_eq(expected.as_bytes())) {
                return Err(OidcError::Nonce);
            }
        }
        Ok(claims)
    }

    async fn userinfo(&self, access_token: &str) -> Result<Option<Map<String, Value>>, OidcError> {
        let ready = self.ready()?;
        let Some(endpoint) = &ready.metadata.userinfo_endpoint else {
            return Ok(None);
        };
        let req = Request::get(endpoint)
            .header(header::AUTHORIZATION, format!("Bearer {access_token}"))
            .header(header::ACCEPT, "application/json")
            .body(Full::default())
            .map_err(|e| OidcError::Userinfo(e.to_string()))?;
        let resp = self.http.send(req).await?;
        if resp.status.is_server_error() {
            return Err(OidcError::TokenEndpoint(format!(
                "userinfo answered {}",
                resp.status
            )));
        }
        if !resp.status.is_success() {
            return Err(OidcError::Userinfo(format!("answered {}", resp.status)));
        }
        // Userinfo claims join the ID token's: a member named twice is the
        // same parser differential as in a token.
        super::strict_json::refuse_duplicate_members(&resp.body)
            .map_err(|e| OidcError::Userinfo(e.to_string()))?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&resp.body).map_err(|e| OidcError::Userinfo(e.to_string()))?;
        Ok(Some(claims))
    }

    async fn token_request(&self, params: &[(&str, &str)]) -> Result<TokenResponse, OidcError> {
        let ready = self.ready()?;
        let resp = self
            .client_post(&ready.metadata.token_endpoint, ready.client_auth, params)
            .await?;
        if resp.status.is_server_error() {
            return Err(OidcError::TokenEndpoint(format!(
                "answered {}",
                resp.status
            )));
        }
        if !resp.status.is_success() {
            let error = serde_json::from_slice::<Value>(&resp.body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| "unknown_error".to_owned());
            return Err(OidcError::TokenRefused {
                status: resp.status.as_u16(),
                error,
            });
        }
        serde_json::from_slice(&resp.body)
            .map_err(|e| OidcError::TokenEndpoint(format!("not a token response: {e}")))
    }

    /// Revokes `refresh_token` at the provider (RFC 7009) when it offers revocation.
    /// Best effort: failures are logged, never shown to the user.
    pub async fn revoke(&self, refresh_token: &str) {
        let Ok(ready) = self.ready() else { return };
        let Some(endpoint) = ready.metadata.revocation_endpoint.clone() else {
            return;
        };
        let params = [
            ("token", refresh_token),
            ("token_type_hint", "refresh_token"),
        ];
        match self
            .client_post(&endpoint, ready.client_auth, &params)
            .await
        {
            Ok(resp) if resp.status.is_success() => tracing::debug!("refresh token revoked"),
            Ok(resp) => tracing::warn!(status = %resp.status, "token revocation refused"),
            Err(error) => tracing::warn!(%error, "token revocation failed"),
        }
    }

    /// Where to send the browser for RP-initiated logout, when the provider has
    /// an `end_session_endpoint`.
    pub fn end_session_url(
        &self,
        id_token_hint: &str,
        post_logout_redirect_uri: &str,
    ) -> Option<String> {
        let ready = self.ready().ok()?;
        let endpoint = ready.metadata.end_session_endpoint.as_ref()?;
        let mut url = Url::parse(endpoint).ok()?;
        {
            let mut q = url.query_pairs_mut();
            if !id_token_hint.is_empty() {
                q.append_pair("id_token_hint", id_token_hint);
            }
            q.append_pair("post_logout_redirect_uri", post_logout_redirect_uri)
                .append_pair("client_id", &self.client_id);
        }
        Some(url.into())
    }

    /// The identity of `token` when this provider verified it before and its
    /// cache entry still holds (what [`Provider::verify_bearer`] would answer
    /// from its cache); `None` otherwise, and while the provider is not ready.
    pub fn cached_bearer(&self, token: &str) -> Option<Arc<Identity>> {
        if token.len() > crate::auth::jwt::MAX_TOKEN_BYTES || self.ready().is_err() {
            return None;
        }
        let identity = self
            .bearer_cache
            .lookup(token, &self.audience, self.clock.now())?;
        Some(self.as_ours(identity))
    }

    /// `identity` filed under this provider's name (a token's identity is
    /// built before the provider that verified it is known).
    fn as_ours(&self, mut identity: Arc<Identity>) -> Arc<Identity> {
        if identity.provider != self.name {
            Arc::make_mut(&mut identity).provider = self.name.clone();
        }
        identity
    }

    /// Verifies an API client's bearer token against this provider (SPEC §4.3).
    ///
    /// # Errors
    /// [`BearerError::NotReady`] before discovery, else the failed check.
    pub async fn verify_bearer(&self, token: &str) -> Result<Arc<Identity>, BearerError> {
        let ready = self.ready().map_err(|_| BearerError::NotReady)?;
        let aud = Audience {
            audience: &self.audience,
            now: self.clock.now(),
            leeway: self.leeway,
            roles_claim: &self.roles_claim,
            kept_claims: &self.kept_claims,
        };
        let identity = bearer::verify_cached(
            &self.bearer_cache,
            token,
            &ready.metadata.issuer,
            &ready.jwks,
            &aud,
        )
        .await?;
        Ok(self.as_ours(identity))
    }

    /// Validates a back-channel `logout_token` (Back-Channel Logout 1.0 §2.6).
    /// The caller checks `jti` against its replay cache.
    ///
    /// # Errors
    /// Any failed check, as [`OidcError::LogoutToken`] or [`OidcError::IdToken`].
    pub async fn validate_logout_token(&self, token: &str) -> Result<LogoutOrder, OidcError> {
        let ready = self.ready()?;
        let now = self.clock.now();
        let expect = Expect {
            issuer: &ready.metadata.issuer,
            audience: &self.client_id,
            now,
            leeway: self.leeway,
            require_exp: false,
            max_age: None,
        };
        let verified = jwt::verify(token, &ready.jwks, &expect).await?;
        // Back-Channel Logout §2.6 step 3: `aud` is validated as in an ID token.
        check_audiences(&verified.claims, &self.client_id, &self.trusted_audiences)?;
        let refuse = |why: &str| OidcError::LogoutToken(why.to_owned());
        if let Some(typ) = &verified.typ {
            if !typ.eq_ignore_ascii_case("logout+jwt") && !typ.eq_ignore_ascii_case("JWT") {
                return Err(refuse("typ is neither logout+jwt nor JWT"));
            }
        }
        let claims = verified.claims;
        let iat = jwt::int_claim(&claims, "iat")?.ok_or_else(|| refuse("no iat"))?;
        let exp = jwt::int_claim(&claims, "exp")?;
        if exp.is_none() && iat < now - LOGOUT_TOKEN_MAX_AGE - self.leeway {
            return Err(refuse("issued too long ago"));
        }
        let has_event = claims
            .get("events")
            .and_then(Value::as_object)
            .and_then(|events| events.get(BACKCHANNEL_EVENT))
            .is_some_and(Value::is_object);
        if !has_event {
            return Err(refuse("no back-channel logout event"));
        }
        if claims.contains_key("nonce") {
            return Err(refuse("a logout token must not carry a nonce"));
        }
        let jti = str_claim(&claims, "jti")?
            .filter(|j| !j.is_empty())
            .ok_or_else(|| refuse("no jti"))?;
        let sub = str_claim(&claims, "sub")?.map(str::to_owned);
        let sid = str_claim(&claims, "sid")?.map(str::to_owned);
        if sub.is_none() && sid.is_none() {
            return Err(refuse("neither sub nor sid"));
        }
        Ok(LogoutOrder {
            sub,
            sid,
            jti: jti.to_owned(),
            remember_until: exp.unwrap_or(iat + LOGOUT_TOKEN_MAX_AGE) + self.leeway,
        })
    }

    async fn client_post(
        &self,
        url: &str,
        auth: ClientAuth,
        params: &[(&str, &str)],
    ) -> Result<super::http::HttpResponse, OidcError> {
        // Built before any await: the serializer is not Send.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in params {
                form.append_pair(k, v);
            }
            if auth == ClientAuth::Post {
                form.append_pair("client_id", &self.client_id)
                    .append_pair("client_secret", self.client_secret.expose());
            }
            form.finish()
        };
        let mut req = Request::post(url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        if auth == ClientAuth::Basic {
            req = req.header(
                header::AUTHORIZATION,
                basic_auth(&self.client_id, self.client_secret.expose()),
            );
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| OidcError::TokenEndpoint(e.to_string()))?;
        Ok(self.http.send(req).await?)
    }
}

/// `client_secret_basic` unless the provider offers only `client_secret_post`
/// (OIDC Discovery: absent means `client_secret_basic`).
fn choose_client_auth(supported: Option<&[String]>) -> Result<ClientAuth, OidcError> {
    let Some(methods) = supported else {
        return Ok(ClientAuth::Basic);
    };
    if methods.iter().any(|m| m == "client_secret_basic") {
        Ok(ClientAuth::Basic)
    } else if methods.iter().any(|m| m == "client_secret_post") {
        Ok(ClientAuth::Post)
    } else {
        Err(OidcError::Discovery(format!(
            "the token endpoint supports neither client_secret_basic nor client_secret_post: {methods:?}"
        )))
    }
}

/// RFC 6749 §2.3.1: each part form-urlencoded, then `id:secret` in base64.
pub(crate) fn basic_auth(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

/// The issuer in discovery must be the configured one; a trailing `/` is the only
/// difference tolerated (operators copy issuers with and without it).
fn same_issuer(found: &str, configured: &str) -> bool {
    found == configured || found.trim_end_matches('/') == configured.trim_end_matches('/')
}

/// OIDC Core §3.1.3.7 step 3: the token must be refused if `aud` holds an
/// audience this client does not trust. Another relying party named beside us
/// could replay the same token at us (or we at it); only `client_id` and the
/// operator's `oidc.trusted_audiences` may appear. (`jwt::verify` has already
/// checked that `client_id` is among them.)
fn check_audiences(
    claims: &Map<String, Value>,
    client_id: &str,
    trusted: &[String],
) -> Result<(), OidcError> {
    if let Some(Value::Array(items)) = claims.get("aud") {
        for item in items {
            let Some(aud) = item.as_str() else {
                return Err(JwtError::ClaimType("aud").into());
            };
            if aud != client_id && !trusted.iter().any(|t| t == aud) {
                return Err(OidcError::UntrustedAudience(aud.to_owned()));
            }
        }
    }
    Ok(())
}

/// OIDC Core §3.1.3.7 items 4 and 5: with several audiences `azp` is required, and
/// when present it must be this client.
fn check_azp(claims: &Map<String, Value>, client_id: &str) -> Result<(), OidcError> {
    let azp = claims.get("azp").and_then(Value::as_str);
    let several = audiences(claims).len() > 1;
    match azp {
        Some(azp) if azp != client_id => Err(OidcError::Azp(Some(azp.to_owned()))),
        None if several => Err(OidcError::Azp(None)),
        _ => Ok(()),
    }
}

/// Userinfo fills in and updates profile claims; its `sub` must be the ID
/// token's (OIDC Core §5.3.2), and it can never change `iss`, `aud` or `sid`.
fn merge_userinfo(
    claims: &mut Map<String, Value>,
    userinfo: Map<String, Value>,
    sub: &str,
) -> Result<(), OidcError> {
    let found = userinfo
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if found != sub {
        return Err(OidcError::SubjectMismatch {
            what: "userinfo",
            found: found.to_owned(),
        });
    }
    // A changed email is verified only if userinfo says so: the ID token's
    // `email_verified` was about the ID token's email.
    let email_changed = userinfo
        .get("email")
        .is_some_and(|e| Some(e) != claims.get("email"));
    if email_changed && !userinfo.contains_key("email_verified") {
        claims.insert("email_verified".to_owned(), Value::Bool(false));
    }
    for (k, v) in userinfo {
        if !matches!(
            k.as_str(),
            "iss" | "aud" | "sid" | "sub" | "exp" | "iat" | "nonce" | "azp"
        ) {
            claims.insert(k, v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn pkce_challenge_is_s256_of_the_verifier() {
        // RFC 7636 Appendix B.
        let login = LoginRequest {
            state: String::new(),
            nonce: String::new(),
            pkce_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        };
        assert_eq!(
            login.pkce_challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn basic_auth_form_encodes_before_base64() {
        let header = basic_auth("my client", "p@ss:word");
        let decoded = STANDARD
            .decode(header.trim_start_matches("Basic "))
            .expect("base64");
        assert_eq!(decoded, b"my+client:p%40ss%3Aword");
    }

    #[test]
    fn azp_is_required_with_several_audiences_and_must_be_us() {
        assert!(check_azp(&claims(json!({"aud": "me"})), "me").is_ok());
        assert!(check_azp(&claims(json!({"aud": ["me", "other"], "azp": "me"})), "me").is_ok());
        assert!(check_azp(&claims(json!({"aud": ["me", "other"]})), "me").is_err());
        assert!(check_azp(&claims(json!({"aud": "me", "azp": "other"})), "me").is_err());
    }

    #[test]
    fn every_audience_must_be_this_client_or_trusted() {
        let trusted = vec!["https://api.example.com".to_owned()];
        let ok = |aud: Value| check_audiences(&claims(json!({ "aud": aud })), "me", &trusted);
        assert!(ok(json!("me")).is_ok());
        assert!(ok(json!(["me"])).is_ok());
        assert!(ok(json!(["me", "https://api.example.com"])).is_ok());
        for bad in [
            json!(["me", "https://evil.example"]),
            json!(["me", "https://api.example.com", "other"]),
            json!(["me", "ME"]),
            json!(["me", "me "]),
            json!(["me", 7]),
        ] {
            assert!(ok(bad.clone()).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn userinfo_with_another_subject_is_refused() {
        let mut c = claims(json!({"sub": "alice", "iss": "x"}));
        let bad = claims(json!({"sub": "mallory", "email": "m@evil"}));
        assert!(merge_userinfo(&mut c, bad, "alice").is_err());
        let good = claims(json!({"sub": "alice", "email": "a@example.com", "iss": "forged"}));
        merge_userinfo(&mut c, good, "alice").expect("same subject");
        assert_eq!(c["email"], "a@example.com");
        assert_eq!(c["iss"], "x", "userinfo cannot change iss");
    }

    #[test]
    fn a_changed_email_from_userinfo_is_not_verified_by_the_id_token() {
        let mut c = claims(json!({"sub": "a", "email": "a@example.com", "email_verified": true}));
        let info = claims(json!({"sub": "a", "email": "other@evil.com"}));
        merge_userinfo(&mut c, info, "a").expect("same subject");
        assert_eq!(c["email_verified"], false);
        let mut same =
            claims(json!({"sub": "a", "email": "a@example.com", "email_verified": true}));
        merge_userinfo(
            &mut same,
            claims(json!({"sub": "a", "email": "a@example.com"})),
            "a",
        )
        .expect("ok");
        assert_eq!(same["email_verified"], true);
    }

    #[test]
    fn client_auth_prefers_basic_and_falls_back_to_post() {
        assert_eq!(choose_client_auth(None).ok(), Some(ClientAuth::Basic));
        let post = vec!["client_secret_post".to_owned()];
        assert_eq!(choose_client_auth(Some(&post)).ok(), Some(ClientAuth::Post));
        let neither = vec!["private_key_jwt".to_owned()];
        assert!(choose_client_auth(Some(&neither)).is_err());
    }

    #[test]
    fn issuer_match_tolerates_only_a_trailing_slash() {
        assert!(same_issuer(
            "https://idp.example.com/",
            "https://idp.example.com"
        ));
        assert!(!same_issuer(
            "https://evil.example.com",
            "https://idp.example.com"
        ));
        assert!(!same_issuer(
            "https://idp.example.com/tenant",
            "https://idp.example.com"
        ));
    }
}
