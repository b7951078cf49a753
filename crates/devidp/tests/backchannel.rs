use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::sync::mpsc;

use crate::support::{self, parts, Harness, CLIENT};

/// What the receiver got: content type and the `logout_token`.
type Received = (Option<String>, Option<String>);

/// A tiny relying party's back-channel endpoint: records every POST, answers 200.
async fn receiver() -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let tx = tx.clone();
                async move {
                    let content_type = req
                        .headers()
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let token = url::form_urlencoded::parse(&body)
                        .find(|(k, _)| k == "logout_token")
                        .map(|(_, v)| v.into_owned());
                    let _ = tx.send((content_type, token));
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (addr, rx)
}

async fn harness_with_receiver() -> (Harness, mpsc::UnboundedReceiver<Received>) {
    let (addr, rx) = receiver().await;
    let mut config = support::config();
    config.clients[0].backchannel_logout_uri =
        Some(format!("http://{addr}/_auth/backchannel-logout"));
    (Harness::with(config).await, rx)
}

#[tokio::test]
async fn end_session_delivers_a_valid_logout_token_to_the_sessions_client() {
    let (h, mut rx) = harness_with_receiver().await;
    let (login, tokens) = h.tokens("alice").await;
    let sid = parts(tokens["id_token"].as_str().expect("id_token")).1["sid"].clone();

    let resp = h
        .get_with_cookie("/end_session", login.cookie.as_deref())
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    let (content_type, token) = rx
        .try_recv()
        .expect("delivered before end_session answered");
    assert_eq!(
        content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let token = token.expect("logout_token parameter");

    let (header, _) = parts(&token);
    assert_eq!(header["typ"], "logout+jwt");
    let claims = h
        .decode(&token, CLIENT)
        .await
        .expect("logout token verifies with jsonwebtoken");
    assert_eq!(claims["iss"], json!(h.idp.issuer()));
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["sid"], sid);
    assert_eq!(
        claims["events"],
        json!({"http://schemas.openid.net/event/backchannel-logout": {}})
    );
    assert!(claims["jti"].as_str().is_some() && claims["iat"].as_u64().is_some());
    assert!(claims.get("nonce").is_none());
    assert_eq!(h.idp.stats().backchannel_deliveries, 1);
}

#[tokio::test]
async fn backchannel_logout_of_a_user_reports_each_delivery() {
    let (h, mut rx) = harness_with_receiver().await;
    let (_, tokens) = h.tokens("bob").await;
    let sid = parts(tokens["id_token"].as_str().expect("id_token")).1["sid"].clone();

    let deliveries = h.idp.backchannel_logout("bob").await;
    assert_eq!(deliveries.len(), 1);
    assert!(deliveries[0].is_delivered(), "{deliveries:?}");
    assert_eq!(deliveries[0].client_id, CLIENT);
    let token = rx.try_recv().expect("delivered").1.expect("logout_token");
    assert_eq!(parts(&token).1["sid"], sid);

    // No provider session left: a sub-only token goes to every back-channel client.
    let again = h.idp.backchannel_logout("bob").await;
    assert_eq!(again.len(), 1);
    let token = rx.try_recv().expect("delivered").1.expect("logout_token");
    let claims = parts(&token).1;
    assert_eq!(claims["sub"], "bob");
    assert!(claims.get("sid").is_none());
}

#[tokio::test]
async fn an_unreachable_receiver_is_reported_not_fatal() {
    let mut config = support::config();
    config.clients[0].backchannel_logout_uri = Some("http://127.0.0.1:9/unreachable".into());
    let h = Harness::with(config).await;
    let deliveries = h.idp.backchannel_logout("alice").await;
    assert_eq!(deliveries.len(), 1);
    assert!(!deliveries[0].is_delivered());
    assert_eq!(h.idp.stats().backchannel_failures, 1);
}
