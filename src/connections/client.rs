//! One connection's OAuth 2.0 client (RFC 6749): discovery when only an
//! `issuer` is configured (RFC 8414, then OpenID Connect Discovery), the
//! authorization request, the token endpoint (code and refresh grants) and
//! revocation (RFC 7009).
//!
//! Plain OAuth 2.0: no ID token is asked for or checked; the tokens are the
//! third party's business and are only stored and passed on.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use url::Url;

use crate::auth::http::HttpClient;
use crate::config::{Connection, TokenEndpointAuth};

/// Why a call to the third party failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The third party answered that the grant is no good (`invalid_grant`, a
    /// revoked or expired refresh token, a bad code): a link built on it ends.
    #[error("the service refused: {error} ({status})")]
    Refused { status: u16, error: String },
    /// Unreachable, timed out, 5xx, or an answer that is not a token response:
    /// nothing is known about the grant, so a link is kept.
    #[error("the service is unavailable: {0}")]
    Down(String),
}

/// The endpoints in use, from the config and discovery.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub authorization: Url,
    pub token: Url,
    pub revocation: Option<Url>,
    /// RFC 9207 §3: the service puts `iss` in every authorization response.
    pub sends_response_iss: bool,
    /// The issuer an RFC 9207 `iss` must equal (the configured one).
    pub issuer: Option<String>,
}

/// A successful token response, as stored.
#[derive(Clone)]
pub struct Grant {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<i64>,
    /// RFC 6749 §5.1: present when the granted scope differs from the asked one.
    pub scope: Option<Vec<String>>,
}

impl std::fmt::Debug for Grant {
    // Tokens stay out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    revocation_endpoint: Option<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// A connection's client; one per `[connections.NAME]`, rebuilt on reload.
pub struct Client {
    name: String,
    config: Connection,
    redirect_uri: String,
    http: HttpClient,
    endpoints: ArcSwapOption<Endpoints>,
}

impl Client {
    /// The client of connection `name`, its callback under `callback_base`
    /// (`public_url + auth_prefix`).
    pub fn new(name: &str, config: Connection, callback_base: &str, http: HttpClient) -> Self {
        let redirect_uri = format!("{callback_base}/connect/{name}/callback");
        let endpoints = configured_endpoints(&config).map(Arc::new);
        Client {
            name: name.to_owned(),
            config,
            redirect_uri,
            http,
            endpoints: ArcSwapOption::new(endpoints),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &Connection {
        &self.config
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The endpoints, discovering them first when the config names only an issuer.
    ///
    /// # Errors
    /// [`ClientError::Down`] when discovery fails (tried again next time).
    pub async fn endpoints(&self) -> Result<Arc<Endpoints>, ClientError> {
        if let Some(known) = self.endpoints.load_full() {
            return Ok(known);
        }
        let discovered = Arc::new(self.discover().await?);
        self.endpoints.store(Some(discovered.clone()));
        Ok(discovered)
    }

    async fn discover(&self) -> Result<Endpoints, ClientError> {
        let issuer = self
            .config
            .issuer
            .as_ref()
            .ok_or_else(|| ClientError::Down("no endpoints and no issuer".into()))?;
        let base = issuer.as_str().trim_end_matches('/');
        let mut last = String::new();
        for well_known in ["oauth-authorization-server", "openid-configuration"] {
            let url = format!("{base}/.well-known/{well_known}");
            match self.fetch_metadata(&url).await {
                Ok(metadata) => return self.endpoints_from(issuer, metadata),
                Err(error) => last = error,
            }
        }
        Err(ClientError::Down(format!("discovery: {last}")))
    }

    async fn fetch_metadata(&self, url: &str) -> Result<Metadata, String> {
        let req = Request::get(url)
            .header(header::ACCEPT, "application/json")
            .body(Full::default())
            .map_err(|e| e.to_string())?;
        let resp = self.http.send(req).await.map_err(|e| e.to_string())?;
        if resp.status != StatusCode::OK {
            return Err(format!("{url} answered {}", resp.status));
        }
        serde_json::from_slice(&resp.body).map_err(|e| format!("{url}: {e}"))
    }

    /// Fills what the config left out from `metadata`, after checking it names
    /// the configured issuer (RFC 8414 §3.3: the mix-up defence).
    fn endpoints_from(&self, issuer: &Url, metadata: Metadata) -> Result<Endpoints, ClientError> {
        let configured = issuer.as_str().trim_end_matches('/');
        if metadata.issuer.trim_end_matches('/') != configured {
            return Err(ClientError::Down(format!(
                "discovery names issuer {:?}, configured is {configured:?}",
                metadata.issuer
            )));
        }
        let pick =
            |configured: &Option<Url>, found: Option<String>, what: &str| match (configured, found)
            {
                (Some(url), _) => Ok(url.clone()),
                (None, Some(text)) => discovered_url(&text)
                    .map_err(|e| ClientError::Down(format!("discovery {what}: {e}"))),
                (None, None) => Err(ClientError::Down(format!("discovery has no {what}"))),
            };
        let authorization = pick(
            &self.config.authorization_endpoint,
            metadata.authorization_endpoint,
            "authorization_endpoint",
        )?;
        let token = pick(
            &self.config.token_endpoint,
            metadata.token_endpoint,
            "token_endpoint",
        )?;
        let revocation = match (
            &self.config.revocation_endpoint,
            metadata.revocation_endpoint,
        ) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(text)) => discovered_url(&text).ok(),
            (None, None) => None,
        };
        Ok(Endpoints {
            authorization,
            token,
            revocation,
            sends_response_iss: metadata.authorization_response_iss_parameter_supported,
            issuer: Some(metadata.issuer),
        })
    }

    /// The authorization request URL: `state` and PKCE S256 always.
    pub fn authorize_url(&self, endpoints: &Endpoints, state: &str, challenge: &str) -> String {
        let mut url = endpoints.authorization.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.config.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("state", state)
                .append_pair("code_challenge", challenge)
                .append_pair("code_challenge_method", "S256");
            if !self.config.scopes.is_empty() {
                q.append_pair("scope", &self.config.scopes.join(" "));
            }
            for (k, v) in &self.config.auth_params {
                q.append_pair(k, v);
            }
        }
        url.into()
    }

    /// Exchanges an authorization code (RFC 6749 §4.1.3, RFC 7636 §4.5).
    ///
    /// # Errors
    /// [`ClientError::Refused`] for a code the service will not take,
    /// [`ClientError::Down`] when it cannot answer.
    pub async fn exchange_code(&self, code: &str, verifier: &str) -> Result<Grant, ClientError> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.redirect_uri),
            ("code_verifier", verifier),
        ])
        .await
    }

    /// Refreshes (RFC 6749 §6).
    ///
    /// # Errors
    /// As [`Client::exchange_code`].
    pub async fn refresh(&self, refresh_token: &str) -> Result<Grant, ClientError> {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    /// Revokes `token` (RFC 7009) when the service offers revocation; returns
    /// whether it said yes. Best effort: the link is deleted either way.
    pub async fn revoke(&self, token: &str, hint: &str) -> bool {
        let Ok(endpoints) = self.endpoints().await else {
            return false;
        };
        let Some(endpoint) = &endpoints.revocation else {
            return false;
        };
        match self
            .post(endpoint, &[("token", token), ("token_type_hint", hint)])
            .await
        {
            Ok((status, _)) if status.is_success() => true,
            Ok((status, _)) => {
                tracing::warn!(connection = %self.name, %status, "token revocation refused");
                false
            }
            Err(error) => {
                tracing::warn!(connection = %self.name, %error, "token revocation failed");
                false
            }
        }
    }

    async fn token_request(&self, params: &[(&str, &str)]) -> Result<Grant, ClientError> {
        let endpoints = self.endpoints().await?;
        let (status, body) = self
            .post(&endpoints.token, params)
            .await
            .map_err(ClientError::Down)?;
        grant(status, &body)
    }

    /// POSTs a form with this client's authentication; returns status and body.
    async fn post(
        &self,
        url: &Url,
        params: &[(&str, &str)],
    ) -> Result<(StatusCode, Bytes), String> {
        let auth = self.config.token_endpoint_auth;
        // Built before any await: the serializer is not Send.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in params {
                form.append_pair(k, v);
            }
            if auth == TokenEndpointAuth::ClientSecretPost {
                form.append_pair("client_id", &self.config.client_id)
                    .append_pair("client_secret", self.config.client_secret.expose());
            }
            form.finish()
        };
        let mut req = Request::post(url.as_str())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            // GitHub answers form-encoded unless asked for JSON.
            .header(header::ACCEPT, "application/json");
        if auth == TokenEndpointAuth::ClientSecretBasic {
            req = req.header(
                header::AUTHORIZATION,
                crate::auth::oidc::basic_auth(
                    &self.config.client_id,
                    self.config.client_secret.expose(),
                ),
            );
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = self.http.send(req).await.map_err(|e| e.to_string())?;
        Ok((resp.status, resp.body))
    }
}

/// An endpoint from discovery, held to the config's rule: https, or http on
/// loopback only (secrets, codes and tokens are sent there).
fn discovered_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| e.to_string())?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(format!("{text:?} is not https")),
    }
}

/// The endpoints when the config gives both; `None` leaves them to discovery.
fn configured_endpoints(config: &Connection) -> Option<Endpoints> {
    Some(Endpoints {
        authorization: config.authorization_endpoint.clone()?,
        token: config.token_endpoint.clone()?,
        revocation: config.revocation_endpoint.clone(),
        sends_response_iss: false,
        issuer: config.issuer.as_ref().map(|i| i.as_str().to_owned()),
    })
}

/// Reads a token endpoint answer. A 4xx is a refusal; so is a 200 with an
/// `error` (GitHub answers `bad_verification_code` that way). 5xx and
/// unreadable bodies are outages.
fn grant(status: StatusCode, body: &[u8]) -> Result<Grant, ClientError> {
    // 429 says "later", not "no": the grant is as good as before.
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Err(ClientError::Down(format!(
            "token endpoint answered {status}"
        )));
    }
    let parsed: Result<TokenResponse, _> = serde_json::from_slice(body);
    if status.is_client_error() {
        let error = parsed
            .ok()
            .and_then(|r| r.error)
            .unwrap_or_else(|| "unknown".to_owned());
        return Err(ClientError::Refused {
            status: status.as_u16(),
            error,
        });
    }
    let response = parsed.map_err(|e| ClientError::Down(format!("not a token response: {e}")))?;
    if let Some(error) = response.error {
        return Err(ClientError::Refused {
            status: status.as_u16(),
            error,
        });
    }
    let access_token = response
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ClientError::Down("token response without access_token".into()))?;
    // Some services send expires_in as a string.
    let expires_in = match response.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(Grant {
        access_token,
        refresh_token: response.refresh_token.filter(|t| !t.is_empty()),
        expires_in,
        scope: response.scope.map(|s| {
            s.split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_are_sorted_into_grants_refusals_and_outages() {
        let ok = grant(
            StatusCode::OK,
            br#"{"access_token":"a","refresh_token":"r","expires_in":"3600","scope":"repo read:user"}"#,
        )
        .expect("a grant");
        assert_eq!(ok.access_token, "a");
        assert_eq!(ok.refresh_token.as_deref(), Some("r"));
        assert_eq!(ok.expires_in, Some(3600));
        assert_eq!(
            ok.scope,
            Some(vec!["repo".to_owned(), "read:user".to_owned()])
        );

        assert!(discovered_url("http://token.example.com/t").is_err());
        assert!(discovered_url("https://token.example.com/t").is_ok());
        assert!(discovered_url("http://127.0.0.1:9/t").is_ok());
        let refused = grant(StatusCode::BAD_REQUEST, br#"{"error":"invalid_grant"}"#);
        assert!(
            matches!(refused, Err(ClientError::Refused { ref error, .. }) if error == "invalid_grant")
        );
        let github_style = grant(StatusCode::OK, br#"{"error":"bad_verification_code"}"#);
        assert!(matches!(github_style, Err(ClientError::Refused { .. })));
        let unauthorized = grant(StatusCode::UNAUTHORIZED, b"nope");
        assert!(matches!(unauthorized, Err(ClientError::Refused { .. })));

        for down in [
            grant(StatusCode::BAD_GATEWAY, br#"{"error":"invalid_grant"}"#),
            grant(StatusCode::TOO_MANY_REQUESTS, br#"{"error":"slow_down"}"#),
            grant(StatusCode::OK, b"<html>"),
            grant(StatusCode::OK, br#"{"token_type":"bearer"}"#),
        ] {
            assert!(matches!(down, Err(ClientError::Down(_))), "{down:?}");
        }
    }
}
