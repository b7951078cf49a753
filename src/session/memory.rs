//! TEMPORARY stub so the tree compiles; the real store lands from the memstore branch.
use std::sync::Arc;
use std::time::Duration;

use super::{BoxFuture, Session, SessionError, SessionKey, SessionStore};
use crate::clock::Clock;

pub struct MemoryStore;
impl MemoryStore {
    pub fn new(_max: usize, _clock: Arc<dyn Clock>) -> Self {
        MemoryStore
    }
    pub fn spawn_sweeper(
        self: &Arc<Self>,
        _every: Duration,
        _shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async {})
    }
}
impl SessionStore for MemoryStore {
    fn load<'a>(
        &'a self,
        _key: &'a SessionKey,
    ) -> BoxFuture<'a, Result<Option<Session>, SessionError>> {
        Box::pin(async { Ok(None) })
    }
    fn save<'a>(
        &'a self,
        _key: &'a SessionKey,
        _s: &'a Session,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<(), SessionError>> {
        Box::pin(async { Ok(()) })
    }
    fn delete<'a>(&'a self, _key: &'a SessionKey) -> BoxFuture<'a, Result<(), SessionError>> {
        Box::pin(async { Ok(()) })
    }
    fn delete_by_sid<'a>(&'a self, _sid: &'a str) -> BoxFuture<'a, Result<usize, SessionError>> {
        Box::pin(async { Ok(0) })
    }
    fn delete_by_sub<'a>(&'a self, _sub: &'a str) -> BoxFuture<'a, Result<usize, SessionError>> {
        Box::pin(async { Ok(0) })
    }
    fn count(&self) -> BoxFuture<'_, Result<usize, SessionError>> {
        Box::pin(async { Ok(0) })
    }
    fn ping(&self) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(async { Ok(()) })
    }
}
