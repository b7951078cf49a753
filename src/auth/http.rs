//! The outbound HTTP client for the provider (discovery, JWKS, token,
//! userinfo, revocation): hyper-util over rustls, a timeout on every call, a cap
//! on every response body, and no redirects followed (the openidconnect crate's
//! SSRF advice).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The largest provider response read (discovery documents and JWKS are small).
const MAX_BODY: usize = 1024 * 1024;

/// Why a call to the provider failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No answer within the timeout.
    #[error("{url}: no answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    /// The connection failed or broke.
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
    /// The body exceeded [`MAX_BODY`] or could not be read.
    #[error("{url}: response body unreadable or larger than 1 MiB")]
    Body { url: String },
}

/// A response, read whole (it is bounded by [`MAX_BODY`]).
#[derive(Debug)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A pooled client for the provider.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// A client trusting the web PKI roots, with `timeout` on each call.
    pub fn new(timeout: Duration) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the aws-lc-rs provider supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        HttpClient { client, timeout }
    }

    /// Sends `req` and reads the bounded response.
    ///
    /// # Errors
    /// Timeouts, transport failures and oversized bodies, naming the URL.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<HttpResponse, HttpError> {
        let url = redact_query(&req.uri().to_string());
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| HttpError::Transport {
                    url: url.clone(),
                    reason: chain(&e),
                })?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|_| HttpError::Body { url: url.clone() })?
                .to_bytes();
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| HttpError::Timeout {
                url: url.clone(),
                timeout: self.timeout,
            })?
    }
}

/// A URL for logs: the query can hold codes and tokens, so it is dropped.
fn redact_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
