//! Graceful shutdown of one serving thread's connections.
//!
//! hyper-util's `GracefulShutdown` polls its shutdown signal every time the
//! connection's task runs, which is several times per request; and it has no
//! implementation for hyper's own HTTP/1 connection with upgrades, which is
//! what the HTTP/1 path serves. Here the signal is registered once (the task's
//! waker is stable) and every later poll only reads a version number.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::sync::futures::OwnedNotified;
use tokio::sync::{watch, Notify};

/// The connections of one thread, told together to finish what they are doing.
pub(super) struct Drain {
    draining: Arc<AtomicBool>,
    notify: Arc<Notify>,
    /// Held by every [`Watcher`]: closed once all of them are gone.
    alive: watch::Sender<()>,
}

impl Drain {
    pub(super) fn new() -> Self {
        Self {
            draining: Arc::new(AtomicBool::new(false)),
            notify: Arc::new(Notify::new()),
            alive: watch::channel(()).0,
        }
    }

    pub(super) fn watcher(&self) -> Watcher {
        Watcher {
            draining: self.draining.clone(),
            notify: self.notify.clone(),
            _alive: self.alive.subscribe(),
        }
    }

    /// Asks every watched connection to finish gracefully and resolves when
    /// all of them (and their watchers) are gone.
    pub(super) async fn shutdown(self) {
        self.draining.store(true, Ordering::Release);
        self.notify.notify_waiters();
        self.alive.closed().await;
    }
}

/// One connection's view of its thread's [`Drain`].
pub(super) struct Watcher {
    draining: Arc<AtomicBool>,
    notify: Arc<Notify>,
    /// Held, never read: [`Drain::shutdown`] waits for every one to drop.
    _alive: watch::Receiver<()>,
}

impl Watcher {
    /// Drives `conn` to its end; once the thread drains, `graceful_shutdown`
    /// asks it to stop taking new requests and close when the ones in flight
    /// are answered.
    pub(super) fn watch<C, F>(self, conn: C, graceful_shutdown: F) -> Watched<C, F>
    where
        C: Future,
        F: Fn(Pin<&mut C>),
    {
        // Created before the flag is read: a notification from then on is kept.
        let notified = self.notify.clone().notified_owned();
        Watched {
            conn,
            notified,
            registered: None,
            draining: false,
            graceful_shutdown,
            watcher: self,
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection driven under a [`Watcher`] (a named future: its `Send` is
    /// plain to the compiler, where an `async fn` over hyper's generic
    /// connections trips a higher-ranked lifetime check).
    pub(super) struct Watched<C, F> {
        #[pin]
        conn: C,
        #[pin]
        notified: OwnedNotified,
        // The waker the notification wakes; polled again only if it changes.
        registered: Option<Waker>,
        draining: bool,
        graceful_shutdown: F,
        watcher: Watcher,
    }
}

impl<C, F> Future for Watched<C, F>
where
    C: Future,
    F: Fn(Pin<&mut C>),
{
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        if !*this.draining {
            // Every poll reads the flag (an atomic load); the notification,
            // which only wakes the task, is polled once per waker.
            let mut asked = this.watcher.draining.load(Ordering::Acquire);
            if !asked
                && !this
                    .registered
                    .as_ref()
                    .is_some_and(|waker| waker.will_wake(cx.waker()))
            {
                asked = this.notified.as_mut().poll(cx).is_ready();
                *this.registered = Some(cx.waker().clone());
            }
            if asked {
                *this.draining = true;
                (this.graceful_shutdown)(this.conn.as_mut());
            }
        }
        this.conn.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Poll;

    /// A connection that counts its polls and ends once asked to.
    struct Fake {
        asked: bool,
    }

    impl Future for Fake {
        type Output = &'static str;
        fn poll(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<Self::Output> {
            if self.asked {
                Poll::Ready("drained")
            } else {
                Poll::Pending
            }
        }
    }

    fn ask(mut fake: Pin<&mut Fake>) {
        fake.asked = true;
    }

    #[tokio::test]
    async fn shutdown_asks_every_watched_connection_and_waits_for_them() {
        let drain = Drain::new();
        let first = tokio::spawn(drain.watcher().watch(Fake { asked: false }, ask));
        let second = tokio::spawn(drain.watcher().watch(Fake { asked: false }, ask));
        // Let both register before the signal.
        tokio::task::yield_now().await;
        tokio::time::timeout(std::time::Duration::from_secs(5), drain.shutdown())
            .await
            .expect("drained");
        assert_eq!(first.await.expect("joined"), "drained");
        assert_eq!(second.await.expect("joined"), "drained");
    }

    #[tokio::test]
    async fn a_connection_watched_after_the_signal_is_asked_at_once() {
        let drain = Drain::new();
        let watcher = drain.watcher();
        drain.draining.store(true, Ordering::Release);
        let ended = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            watcher.watch(Fake { asked: false }, ask),
        )
        .await;
        assert_eq!(ended, Ok("drained"));
    }

    #[tokio::test]
    async fn without_a_signal_the_connection_is_left_alone() {
        let drain = Drain::new();
        let watched = drain.watcher().watch(Fake { asked: false }, ask);
        let ended = tokio::time::timeout(std::time::Duration::from_millis(50), watched).await;
        assert!(ended.is_err(), "a connection ended without a shutdown");
    }
}
