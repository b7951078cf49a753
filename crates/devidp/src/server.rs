//! The accept loop: plain HTTP/1.1 on the loopback listener, one task per
//! connection, all of them stopped by the shutdown signal.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::endpoints;
use crate::state::Shared;

/// How long a client may take to send request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `stop` becomes true.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Per-connection errors (e.g. the peer reset before accept) must not
                // end the loop; pause briefly in case it is fd exhaustion.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(connection(
            TokioIo::new(stream),
            shared.clone(),
            stop.clone(),
        ));
    }
}

/// Serves one connection until it closes or the provider stops.
async fn connection(
    io: TokioIo<tokio::net::TcpStream>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(endpoints::route(shared, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new()) // header_read_timeout needs a timer, else it panics
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            // In-flight requests finish; a back-channel delivery is bounded by its timeout.
            let _ = tokio::time::timeout(Duration::from_secs(6), conn).await;
        }
    }
}

/// Resolves once the provider is told to stop (or its handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here, inside.
    let _ = stop.wait_for(|s| *s).await;
}
