//! The header-read timeout of HTTP/1 connections, kept outside hyper.
//!
//! hyper's own (`header_read_timeout`) arms a timer for every request and, so
//! as to poll it, sends its dispatcher round once more after every response:
//! about 1,000 instructions a request besides the timer (callgrind,
//! bench_stack's session route). Here the connection's task arms one coarse
//! deadline ([`crate::deadline`]) when the connection falls between requests
//! (just accepted, or its last response written to the end) and drops it once
//! the next request's head is in (hyper called the service).
//!
//! The bound is the same: a client has `server.header_read_timeout` to send a
//! whole request head, and a keep-alive connection idle for that long is
//! closed. Request bodies and responses, however slow, are not bounded by it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Frame, SizeHint};

use crate::deadline::Sleep;

/// How many requests a connection's service was given, and how many of their
/// responses are done with (written to the end, or dropped).
#[derive(Debug, Default)]
pub(super) struct Requests {
    started: AtomicUsize,
    finished: AtomicUsize,
}

impl Requests {
    /// A request's head is in: the connection is busy until the returned
    /// guard (kept in the response body) is dropped.
    pub(super) fn start(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// One request from its head until its response is done with.
#[derive(Debug)]
pub(super) struct InFlight(Arc<Requests>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// A response body that marks its request done when hyper drops it: after
    /// its last frame is written, or when the connection gives up on it.
    pub(super) struct Tracked<B> {
        #[pin]
        body: B,
        in_flight: InFlight,
    }
}

impl<B> Tracked<B> {
    pub(super) fn new(body: B, in_flight: InFlight) -> Self {
        Self { body, in_flight }
    }
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// An HTTP/1 connection that ends (`None`) when it stays between requests
    /// for longer than `timeout`.
    pub(super) struct HeadDeadline<C> {
        #[pin]
        conn: C,
        requests: Arc<Requests>,
        timeout: Duration,
        // The deadline, and how many requests had finished when it was armed.
        armed: Option<(usize, Sleep)>,
    }
}

impl<C> HeadDeadline<C> {
    pub(super) fn new(conn: C, requests: Arc<Requests>, timeout: Duration) -> Self {
        Self {
            conn,
            requests,
            timeout,
            armed: None,
        }
    }

    pub(super) fn conn(self: Pin<&mut Self>) -> Pin<&mut C> {
        self.project().conn
    }
}

impl<C: Future> Future for HeadDeadline<C> {
    type Output = Option<C::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.conn.poll(cx) {
            return Poll::Ready(Some(output));
        }
        let finished = this.requests.finished.load(Ordering::Relaxed);
        if this.requests.started.load(Ordering::Relaxed) != finished {
            // A request is being served: no head is awaited.
            *this.armed = None;
            return Poll::Pending;
        }
        // Between requests since the `finished`-th response: a request
        // served in the meantime (even within one poll) starts a new wait.
        let sleep = match this.armed {
            Some((at, sleep)) if *at == finished => sleep,
            armed => {
                let sleep = Sleep::until(Instant::now() + *this.timeout);
                &mut armed.insert((finished, sleep)).1
            }
        };
        match Pin::new(sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that never ends by itself.
    struct Open;

    impl Future for Open {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }

    const TIMEOUT: Duration = Duration::from_millis(150);

    #[tokio::test]
    async fn a_connection_between_requests_ends_after_the_timeout() {
        let requests = Arc::new(Requests::default());
        let started = Instant::now();
        let ended = HeadDeadline::new(Open, requests, TIMEOUT).await;
        assert!(ended.is_none());
        assert!(started.elapsed() >= TIMEOUT);
    }

    #[tokio::test]
    async fn a_request_being_served_is_not_cut_off() {
        let requests = Arc::new(Requests::default());
        let in_flight = requests.start();
        let watched = HeadDeadline::new(Open, requests.clone(), TIMEOUT);
        let ended = tokio::time::timeout(TIMEOUT * 3, watched).await;
        assert!(ended.is_err(), "a busy connection was cut off");
        drop(in_flight);
    }

    #[tokio::test]
    async fn each_finished_response_starts_a_new_wait() {
        let requests = Arc::new(Requests::default());
        let mut watched = Box::pin(HeadDeadline::new(Open, requests.clone(), TIMEOUT));
        let started = Instant::now();
        // A request served every 100 ms (each within one poll, as a fast one
        // is) keeps the connection for longer than one timeout.
        for _ in 0..4 {
            let polled = tokio::time::timeout(Duration::from_millis(100), watched.as_mut()).await;
            assert!(polled.is_err(), "cut off after {:?}", started.elapsed());
            drop(requests.start());
        }
        assert!(started.elapsed() > TIMEOUT * 2);
        // Then idle: it ends.
        assert!(watched.await.is_none());
    }

    #[test]
    fn a_tracked_body_marks_its_request_done_when_dropped() {
        let requests = Arc::new(Requests::default());
        let body = Tracked::new(
            http_body_util::Empty::<bytes::Bytes>::new(),
            requests.start(),
        );
        assert_ne!(
            requests.started.load(Ordering::Relaxed),
            requests.finished.load(Ordering::Relaxed)
        );
        assert!(body.is_end_stream());
        drop(body);
        assert_eq!(
            requests.started.load(Ordering::Relaxed),
            requests.finished.load(Ordering::Relaxed)
        );
    }
}
