//! The back-channel logout sender (OpenID Connect Back-Channel Logout 1.0 §2.5):
//! POSTs `logout_token=...` to each client's `backchannel_logout_uri`.
//!
//! Deliveries are awaited before the triggering request answers, so a test sees
//! their effect as soon as `/end_session` (or [`crate::DevIdp::backchannel_logout`])
//! returns. Each one is bounded by a timeout.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;

use crate::state::{Counters, Shared};
use crate::store::ProviderSession;
use crate::tokens;

/// How long one delivery may take, connection included.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of sending one logout token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutDelivery {
    /// The client the token was for.
    pub client_id: String,
    /// Where it was POSTed.
    pub uri: String,
    /// The receiver's HTTP status, or why there was none (connection refused,
    /// timeout, bad URI).
    pub result: Result<u16, String>,
}

impl LogoutDelivery {
    /// Returns true if and only if the receiver answered 2xx.
    pub fn is_delivered(&self) -> bool {
        matches!(self.result, Ok(status) if (200..300).contains(&status))
    }
}

/// A plain-HTTP client for logout deliveries (relying parties under test listen
/// on loopback without TLS).
#[derive(Clone, Debug)]
pub(crate) struct Sender {
    client: HttpClient<HttpConnector, Full<Bytes>>,
}

impl Sender {
    pub(crate) fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(DELIVERY_TIMEOUT));
        Self {
            client: HttpClient::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// POSTs `logout_token` to `uri`; returns the status or the reason for none.
    async fn post(&self, uri: &str, logout_token: &str) -> Result<u16, String> {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("logout_token", logout_token)
            .finish();
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("bad backchannel_logout_uri: {e}"))?;
        match tokio::time::timeout(DELIVERY_TIMEOUT, self.client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp.status().as_u16()),
            Ok(Err(e)) => Err(format!("request failed: {e}")),
            Err(_) => Err(format!("no answer within {DELIVERY_TIMEOUT:?}")),
        }
    }
}

/// One logout token to send: to whom, about whom.
struct Notice {
    client_id: String,
    uri: String,
    sub: String,
    sid: Option<String>,
}

/// Sends logout tokens (with `sid`) to every client with a back-channel URI
/// that received a code in one of `sessions`.
pub(crate) async fn notify_sessions(
    shared: &Shared,
    sessions: &[ProviderSession],
) -> Vec<LogoutDelivery> {
    let notices = sessions
        .iter()
        .flat_map(|s| {
            s.clients.iter().filter_map(|client_id| {
                let uri = shared
                    .config
                    .client(client_id)?
                    .backchannel_logout_uri
                    .clone()?;
                Some(Notice {
                    client_id: client_id.clone(),
                    uri,
                    sub: s.sub.clone(),
                    sid: Some(s.sid.clone()),
                })
            })
        })
        .collect();
    deliver(shared, notices).await
}

/// Sends a `sub`-only logout token to every client with a back-channel URI
/// (a logout of the user everywhere, when no provider session is known).
pub(crate) async fn notify_everyone(shared: &Shared, sub: &str) -> Vec<LogoutDelivery> {
    let notices = shared
        .config
        .clients
        .iter()
        .filter_map(|c| {
            Some(Notice {
                client_id: c.id.clone(),
                uri: c.backchannel_logout_uri.clone()?,
                sub: sub.to_owned(),
                sid: None,
            })
        })
        .collect();
    deliver(shared, notices).await
}

async fn deliver(shared: &Shared, notices: Vec<Notice>) -> Vec<LogoutDelivery> {
    let mut deliveries = Vec::with_capacity(notices.len());
    for n in notices {
        // Sign before awaiting: the key lock must not be held across `.await`.
        let token = tokens::logout_token(
            &shared.issuer,
            &shared.keys(),
            &n.client_id,
            &n.sub,
            n.sid.as_deref(),
            shared.now(),
        );
        let result = shared.sender.post(&n.uri, &token).await;
        let delivery = LogoutDelivery {
            client_id: n.client_id,
            uri: n.uri,
            result,
        };
        if delivery.is_delivered() {
            shared.counters.bump(Counters::backchannel_deliveries);
        } else {
            tracing::warn!(client_id = %delivery.client_id, uri = %delivery.uri, result = ?delivery.result, "back-channel logout not delivered");
            shared.counters.bump(Counters::backchannel_failures);
        }
        deliveries.push(delivery);
    }
    deliveries
}
