//! Sessions (SPEC §5): the opaque id in the browser's cookie, the server-side
//! record it names, and the stores that keep records.
//!
//! The browser holds only a random 256-bit [`SessionId`]. Stores index records by
//! its SHA-256 ([`SessionKey`]), so a dump of a store cannot be replayed as a
//! cookie. Imports nothing from `auth`, `policy` or `proxy`.

#[cfg(test)]
mod conformance;
pub mod cookie;
mod id;
pub mod links;
pub mod memory;
pub mod redis;
pub mod seal;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::identity::Identity;

pub use id::{digest_prefix, DigestHasher, DigestState, SessionId, SessionKey};
pub use links::{Link, LinkKey, LinkLease, LinkStore, StoredLink};
pub use memory::MemoryStore;
pub use redis::RedisStore;

/// A boxed future, so stores can be chosen at run time (`dyn SessionStore`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One user's server-side session. Tokens live here and never reach the browser.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub identity: Identity,
    /// The provider's session id (`sid` claim), for back-channel logout.
    pub sid: Option<String>,
    /// The raw ID token, sent back as `id_token_hint` at logout.
    pub id_token: String,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    /// Unix seconds at which `access_token` expires, when the provider said.
    pub access_expires_at: Option<i64>,
    /// Unix seconds: login time; the absolute timeout counts from here.
    pub created_at: i64,
    /// Unix seconds: last request seen; the idle timeout counts from here.
    pub last_seen: i64,
}

impl Session {
    /// The name this session is filed under in the `sub` index: its
    /// identity's (provider, `sub`) (see [`subject_key`]).
    pub fn sub_key(&self) -> std::borrow::Cow<'_, str> {
        subject_key(&self.identity.provider, &self.identity.sub)
    }

    /// The name this session is filed under in the `sid` index, if it has a `sid`.
    pub fn sid_key(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.sid
            .as_deref()
            .map(|sid| subject_key(&self.identity.provider, sid))
    }

    /// The unix time at which this session ends unless used again.
    pub fn expires_at(&self, idle: Duration, absolute: Duration) -> i64 {
        let idle_end = self.last_seen.saturating_add(secs(idle));
        let absolute_end = self.created_at.saturating_add(secs(absolute));
        idle_end.min(absolute_end)
    }

    /// Returns true if and only if the session is past its idle or absolute timeout at `now`.
    pub fn is_expired(&self, now: i64, idle: Duration, absolute: Duration) -> bool {
        now >= self.expires_at(idle, absolute)
    }
}

/// The index name of a provider's `sub` or `sid` (SPEC §12: an identity is
/// (provider, `sub`), never `sub` alone, so a back-channel logout of one
/// provider cannot end another's sessions). The default provider's values stay
/// as they are, so records indexed before several providers existed are still
/// found; every other provider's are prefixed with its name and U+001F, which
/// no provider name holds (and a default value holding it is prefixed too, so
/// no two (provider, value) pairs share a name).
pub fn subject_key<'a>(provider: &str, value: &'a str) -> std::borrow::Cow<'a, str> {
    const SEPARATOR: char = '\u{1f}';
    if provider == crate::config::DEFAULT_PROVIDER && !value.contains(SEPARATOR) {
        std::borrow::Cow::Borrowed(value)
    } else {
        std::borrow::Cow::Owned(format!("{provider}{SEPARATOR}{value}"))
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Why a store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The store (Redis) cannot be reached or timed out: sessions are unknown, not absent.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// A stored record cannot be decrypted or decoded (wrong key, tampering, old format).
    #[error("stored session is unreadable: {0}")]
    Corrupt(String),
}

/// The right to refresh one session's tokens across replicas, held until
/// released or until its ttl runs out (see [`SessionStore::try_lease`]).
///
/// A store shared by several replicas gives each lease a random token, so only its
/// holder can renew or release it; a store of one process hands out tokenless
/// leases that cost nothing (the in-process gate already serializes refreshes).
#[derive(Clone, Debug)]
pub struct Lease {
    key: SessionKey,
    token: Option<String>,
}

impl Lease {
    /// A lease that exists only in this process.
    pub fn local(key: SessionKey) -> Self {
        Lease { key, token: None }
    }

    /// A lease held in a shared store under `token`.
    pub fn shared(key: SessionKey, token: String) -> Self {
        Lease {
            key,
            token: Some(token),
        }
    }

    /// The session this lease is for.
    pub fn key(&self) -> &SessionKey {
        &self.key
    }

    /// The holder's token in a shared store; `None` for a local lease.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}

/// Where sessions live. Implemented by the memory store and Redis; both pass one
/// conformance suite.
///
/// Every method is cancel-safe: a client hanging up mid-call leaves the store
/// consistent.
pub trait SessionStore: Send + Sync + 'static {
    /// The record under `key`, or `None` when absent or past its `ttl`.
    ///
    /// Shared, not copied: a session is read on every request and written
    /// seldom (a touch, a refresh), so the memory store hands out the record it
    /// holds and a caller that changes it copies first (`Arc::make_mut`).
    fn load<'a>(
        &'a self,
        key: &'a SessionKey,
    ) -> BoxFuture<'a, Result<Option<Arc<Session>>, SessionError>>;

    /// What [`SessionStore::load`] would answer, when the store knows it
    /// without waiting (the memory store always, Redis from its cache);
    /// `None`: ask `load`. Spares the common request a boxed future.
    fn load_ready(&self, _key: &SessionKey) -> Option<Option<Arc<Session>>> {
        None
    }

    /// The record under `key` as the store holds it now, past any cache this
    /// process keeps in front of a shared store (the Redis store's may lag
    /// another replica's write by up to its bound).
    ///
    /// For decisions a stale copy would get wrong: whether a refresh is still
    /// due, taken under the refresh gate and lease (a copy from before another
    /// replica's refresh would spend a rotated-out refresh token). A store
    /// without such a cache answers as [`SessionStore::load`].
    fn load_fresh<'a>(
        &'a self,
        key: &'a SessionKey,
    ) -> BoxFuture<'a, Result<Option<Arc<Session>>, SessionError>> {
        self.load(key)
    }

    /// Stores `session` under `key`, replacing any record there; the store drops
    /// it after `ttl` unless saved again. Maintains the `sid` and `sub` indexes.
    fn save<'a>(
        &'a self,
        key: &'a SessionKey,
        session: &'a Session,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), SessionError>>;

    /// Replaces the record under `key` only if a live one is there; returns
    /// false, writing nothing, when there is none. For writes to a session a
    /// request loaded earlier (a touch, refreshed tokens): a logout or a
    /// back-channel logout between that load and this write is not undone.
    fn update<'a>(
        &'a self,
        key: &'a SessionKey,
        session: &'a Session,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, SessionError>>;

    /// Removes the record under `key` (absent is fine).
    fn delete<'a>(&'a self, key: &'a SessionKey) -> BoxFuture<'a, Result<(), SessionError>>;

    /// Removes every record whose [`Session::sid_key`] is `sid` (a
    /// [`subject_key`]); returns how many.
    fn delete_by_sid<'a>(&'a self, sid: &'a str) -> BoxFuture<'a, Result<usize, SessionError>>;

    /// Removes every record whose [`Session::sub_key`] is `sub` (a
    /// [`subject_key`]); returns how many.
    fn delete_by_sub<'a>(&'a self, sub: &'a str) -> BoxFuture<'a, Result<usize, SessionError>>;

    /// How many live records there are (for the active-sessions gauge).
    fn count(&self) -> BoxFuture<'_, Result<usize, SessionError>>;

    /// Whether the store answers now (for `/readyz`).
    fn ping(&self) -> BoxFuture<'_, Result<(), SessionError>>;

    // --- refresh across replicas (SPEC §5: one refresh per session, not many) ---
    //
    // The defaults suit a store of one process: every lease is granted at once,
    // since the per-process gate in `proxy::authenticate` already lets one refresh
    // run at a time.

    /// Takes the refresh lease of `key` for `ttl`, or `None` when another holder
    /// (another replica) has it. Taken inside the per-process gate, so within one
    /// process only one task ever asks.
    fn try_lease<'a>(
        &'a self,
        key: &'a SessionKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, SessionError>> {
        let _ = ttl;
        Box::pin(std::future::ready(Ok(Some(Lease::local(*key)))))
    }

    /// Extends a held lease to `ttl` from now; returns false when it was lost
    /// (expired, and perhaps taken by another replica).
    fn renew_lease<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, SessionError>> {
        let _ = (lease, ttl);
        Box::pin(std::future::ready(Ok(true)))
    }

    /// Gives a lease back, if it is still ours.
    fn release_lease<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), SessionError>> {
        let _ = lease;
        Box::pin(std::future::ready(Ok(())))
    }

    /// Returns true if and only if someone holds the refresh lease of `key` now.
    fn is_leased<'a>(&'a self, key: &'a SessionKey) -> BoxFuture<'a, Result<bool, SessionError>> {
        let _ = key;
        Box::pin(std::future::ready(Ok(false)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC §12: sessions stored before several providers existed (no
    /// `provider` in the record) belong to `default`, and are filed under the
    /// same index names as before.
    #[test]
    fn a_record_from_before_providers_belongs_to_default() {
        let old = r#"{"identity":{"sub":"alice","email":null,"email_verified":false,"name":null,
            "preferred_username":null,"roles":["admin"]},"sid":"s1","id_token":"t",
            "access_token":null,"refresh_token":null,"access_expires_at":null,
            "created_at":1,"last_seen":1}"#;
        let session: Session = serde_json::from_str(old).expect("an old record reads");
        assert_eq!(session.identity.provider, "default");
        assert_eq!(session.sub_key(), "alice");
        assert_eq!(session.sid_key().as_deref(), Some("s1"));
    }

    #[test]
    fn subject_keys_never_confuse_two_providers() {
        let pairs = [
            ("default", "alice"),
            ("partners", "alice"),
            ("default", "partners\u{1f}alice"),
            ("partners", "\u{1f}alice"),
            ("default", "\u{1f}alice"),
        ];
        // Provider names hold no U+001F (config), so the prefix splits one way.
        for (i, a) in pairs.iter().enumerate() {
            for b in &pairs[i + 1..] {
                assert_ne!(
                    subject_key(a.0, a.1),
                    subject_key(b.0, b.1),
                    "{a:?} vs {b:?}"
                );
            }
        }
        assert_eq!(subject_key("default", "alice"), "alice");
    }
}
