//! The shared session store (`session.store = "redis"`, SPEC §5): every replica
//! reads and writes the same records, so a login on one replica works on all, a
//! restart loses nothing, and a logout anywhere ends the session everywhere.
//!
//! Owns the key layout, encryption at rest, the `sid`/`sub` indexes, the expiry
//! bookkeeping and the cross-replica refresh lease. Knows nothing of cookies or tokens
//! beyond the sealed bytes it stores.
//!
//! # What Redis holds
//!
//! All keys share one hash tag, `{portcullis}` (so each script's keys live in one
//! cluster slot and change atomically):
//!
//! | key | type | content | expires |
//! | --- | --- | --- | --- |
//! | `{portcullis}:session:<key>` | hash | `d` sealed record, `x` expiry, `i`/`u` index tags | with the session |
//! | `{portcullis}:sid:<tag>` | set | session keys of one provider session | with its longest member |
//! | `{portcullis}:sub:<tag>` | set | session keys of one user | with its longest member |
//! | `{portcullis}:expiry` | zset | session key → expiry, for the active-session count | with its longest member |
//! | `{portcullis}:refresh:<key>` | string | random lease token | lease ttl (15 s) |
//! | `{portcullis}:link:<tag>` | hash | `d` sealed connected-account link, `g` its generation | never (disconnect, refused refresh) |
//! | `{portcullis}:link-refresh:<tag>` | string | random lease token | lease ttl |
//! | `{portcullis}:link-generation` | string | counter of link writes | never |
//!
//! and one pub/sub channel, `{portcullis}:invalidate`, on which every change to a
//! record publishes its `<key>` (see the cache, below).
//!
//! `<key>` is [`SessionKey::hex`], the SHA-256 of the cookie value: a dump cannot be
//! replayed as a cookie. `<tag>` is an HMAC-SHA256 of the sid or sub under a key
//! derived from `session.secret`: a dump names no user. `d` is the JSON record sealed
//! with AES-256-GCM ([`Sealer`], purpose [`SEAL_PURPOSE`]) with the record's Redis key
//! as associated data, so a record cannot be moved to another session's key.
//!
//! # Time
//!
//! Redis drops records by its own clock (`PEXPIRE`), and the store also writes each
//! record's expiry (`x`, on the injected [`Clock`]) and treats a record past it as
//! absent. With the system clock both agree; with a test clock the second makes
//! expiry exact without sleeping.
//!
//! # The session cache (one server only)
//!
//! Each store keeps the sessions it opened in a bounded local cache
//! ([`DEFAULT_CACHE_CAPACITY`] entries, each reloaded after [`CACHE_MAX_AGE`]), so
//! a busy session costs a map lookup instead of a Redis round trip and an AES-GCM
//! open. It stays true through the channel `{portcullis}:invalidate`: every script
//! that changes or deletes a record publishes the record's key hex there in the
//! same atomic step, and each store's listener (a thread of its own, so a busy or
//! blocked runtime cannot delay it) drops that key on receipt. The writer drops its
//! own copy at once.
//!
//! The listener pings Redis over the subscription every [`HEARTBEAT_EVERY`]; a pong
//! proves every message published before the ping has been applied. The cache is
//! consulted only while such a proof is at most [`INVALIDATION_BOUND`] old, so a
//! change committed in Redis is seen by every replica's next request within
//! [`INVALIDATION_BOUND`] whatever fails (in practice, within the pub/sub delivery
//! time: milliseconds). When the subscription is down, stalled or not yet up, every
//! load reads Redis, as without a cache; on (re)subscribing the cache starts empty.
//! Loads that decide whether a refresh is still due use
//! [`SessionStore::load_fresh`], which always reads Redis.
//!
//! A cluster target has no cache: every load reads Redis (its pub/sub crosses the
//! cluster bus, and the subscription would have to follow failovers).

mod links;
mod scripts;
mod target;

use std::sync::Arc;
use std::time::Duration;

use ::redis::{FromRedisValue, RedisResult};
use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use aws_lc_rs::hmac;

use super::seal::{SealError, Sealer};
use super::{BoxFuture, Lease, Session, SessionError, SessionKey, SessionStore};
use crate::clock::Clock;
use crate::config::Secret;
use cache::{Cache, CacheKey, Listener};
use scripts::Scripts;

pub use target::{Connection, Target, TargetError};

/// The [`Sealer`] purpose of session records: a key for nothing else.
pub const SEAL_PURPOSE: &str = "portcullis session record";
/// The HKDF label of the index-tag key.
const INDEX_PURPOSE: &[u8] = b"portcullis session index";
const INDEX_SALT: &[u8] = b"portcullis index v1";

/// How long any one Redis command may take before the store reports
/// [`SessionError::Unavailable`]: a dead Redis turns into a quick 503, not a hang.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// The hash tag and first part of every key.
pub const DEFAULT_PREFIX: &str = "portcullis";
/// How many opened sessions a store caches at most (the memory store's default
/// `session.max_sessions`). Entries older than [`CACHE_MAX_AGE`] are swept, so the
/// cache holds only the sessions used in the last few seconds.
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;
/// How long a cached session is served before it is read again: the safety net
/// for changes no script published (a key deleted by hand, evicted by
/// `maxmemory`, or written by a replica of a version without the cache).
pub const CACHE_MAX_AGE: Duration = Duration::from_secs(5);
/// The longest a change committed in Redis can stay unseen by another replica's
/// cache: the cache is consulted only while the listener proved, at most this long
/// ago, that every invalidation published before its last ping was applied.
pub const INVALIDATION_BOUND: Duration = Duration::from_secs(1);
/// How often the listener proves its subscription delivers (a PING over it).
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);

/// How a [`RedisStore`] talks to Redis, beyond the URL.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// The hash tag and first part of every key: stores with different prefixes
    /// share a server without seeing each other.
    pub prefix: String,
    /// The bound on every command ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
    /// PEM certificates to trust for `rediss://` instead of the system's roots
    /// (a private CA). `None`: the system's roots (`SSL_CERT_FILE` is honoured).
    pub tls_roots_pem: Option<Vec<u8>>,
    /// How many opened sessions to cache ([`DEFAULT_CACHE_CAPACITY`]); 0: none, every
    /// load reads Redis. Ignored for a cluster, which never caches.
    pub cache_capacity: usize,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            tls_roots_pem: None,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
        }
    }
}

/// Why the Redis store cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum RedisStoreError {
    /// `session.redis_url` is absent (config validation requires it; a `Config`
    /// built by hand may lack it).
    #[error("session.redis_url is required for the redis store")]
    NoUrl,
    #[error(transparent)]
    Target(#[from] TargetError),
    /// `session.secret` cannot be used.
    #[error("session.secret: {0}")]
    Secret(#[from] SealError),
    /// Redis needs a shared key: a per-process one would make every replica's
    /// sessions unreadable to the others.
    #[error("session.secret is required for the redis store")]
    NoSecret,
    /// The client refused the settings (not a connection failure: connecting is lazy).
    #[error("session.redis_url: {0}")]
    Client(String),
}

/// Sessions in Redis, shared by every replica configured with the same URL and secret.
pub struct RedisStore {
    conn: Connection,
    names: Names,
    sealer: Sealer,
    /// Seals connected-account links (a purpose of their own).
    link_sealer: Sealer,
    /// The first tags new index entries; all are tried by `delete_by_*`, so sessions
    /// indexed before a key rotation are still found.
    index_keys: Vec<hmac::Key>,
    scripts: Scripts,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    /// The invalidation channel the scripts publish to; "" on a cluster.
    channel: String,
    /// Opened sessions in front of Redis; `None` on a cluster or when disabled.
    cache: Option<Arc<Cache>>,
    /// Ends the cache's listener when the store is dropped.
    _listener: Option<Listener>,
}

/// What the session cache has done, for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Loads answered from the cache.
    pub hits: u64,
    /// Loads that read Redis (absent, too old, or the cache not trusted).
    pub misses: u64,
    /// Sessions cached now.
    pub entries: usize,
    /// Whether the cache is consulted now: its subscription is up and proved
    /// delivery within [`INVALIDATION_BOUND`].
    pub is_trusted: bool,
}

// === impl RedisStore ===

impl RedisStore {
    /// A store for `session.redis_url`, sealing with `secrets` (the first seals, all
    /// open). Connects lazily, so it is built even while Redis is down.
    ///
    /// # Errors
    /// When the URL or a secret cannot be used, or no secret is given.
    pub fn connect(
        redis_url: &Secret,
        secrets: &[Secret],
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RedisStoreError> {
        let target = Target::parse(redis_url.expose())?;
        Self::with_options(&target, secrets, clock, RedisOptions::default())
    }

    /// [`RedisStore::connect`] with [`RedisOptions`] chosen (tests give each store
    /// its own prefix so they can share one server).
    ///
    /// # Errors
    /// As [`RedisStore::connect`].
    pub fn with_options(
        target: &Target,
        secrets: &[Secret],
        clock: Arc<dyn Clock>,
        options: RedisOptions,
    ) -> Result<Self, RedisStoreError> {
        if secrets.is_empty() {
            return Err(RedisStoreError::NoSecret);
        }
        let sealer = Sealer::from_secrets(secrets, SEAL_PURPOSE)?;
        let link_sealer = Sealer::from_secrets(secrets, links::LINK_SEAL_PURPOSE)?;
        let index_keys = index_keys(secrets)?;
        let client_error = |e: ::redis::RedisError| RedisStoreError::Client(e.to_string());
        let subscriber = target
            .subscriber(options.tls_roots_pem.clone())
            .map_err(client_error)?;
        let conn = target
            .connect(options.timeout, options.tls_roots_pem)
            .map_err(client_error)?;
        let names = Names::new(&options.prefix);
        let channel = match subscriber {
            Some(_) => names.channel(),
            None => String::new(), // a cluster: nobody caches, so nobody listens
        };
        let (cache, listener) = match subscriber {
            Some(client) if options.cache_capacity > 0 => {
                let cache = Arc::new(Cache::new(options.cache_capacity));
                match cache::listen(client, cache.clone(), channel.clone(), options.timeout) {
                    Some(listener) => (Some(cache), Some(listener)),
                    None => (None, None),
                }
            }
            _ => (None, None),
        };
        Ok(RedisStore {
            conn,
            names,
            sealer,
            link_sealer,
            index_keys,
            scripts: Scripts::new(),
            clock,
            timeout: options.timeout,
            channel,
            cache,
            _listener: listener,
        })
    }

    /// What the session cache has done so far (all zero without a cache).
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.as_ref().map(|c| c.stats()).unwrap_or_default()
    }

    /// The session under `key`: from the cache when it holds a young copy and is
    /// trusted, else from Redis (and then cached).
    async fn load_cached(&self, key: &SessionKey) -> Result<Option<Arc<Session>>, SessionError> {
        let Some(cache) = &self.cache else {
            return Ok(self.load_now(key).await?.map(|(s, _)| Arc::new(s)));
        };
        if let Some(cached) = self.cached(cache, key) {
            return Ok(cached);
        }
        self.load_through(cache, CacheKey::of(key), key).await
    }

    /// The session under `key` as the cache (trusted, fresh) holds it;
    /// `Some(None)` when its copy is past its expiry (absent, as Redis would
    /// say: `load_now`); `None` when the cache cannot answer.
    fn cached(&self, cache: &Cache, key: &SessionKey) -> Option<Option<Arc<Session>>> {
        let (session, expires_at) = cache.get(&CacheKey::of(key))?;
        Some((self.clock.now() < expires_at).then_some(session))
    }

    /// The session under `key` read from Redis, bypassing the cache (and renewing
    /// its entry).
    async fn load_fresh_now(&self, key: &SessionKey) -> Result<Option<Arc<Session>>, SessionError> {
        match &self.cache {
            Some(cache) => self.load_through(cache, CacheKey::of(key), key).await,
            None => Ok(self.load_now(key).await?.map(|(s, _)| Arc::new(s))),
        }
    }

    /// Reads Redis and caches what it found, unless an invalidation of `slot` (or
    /// of the whole cache) came in meanwhile: the ticket is taken before the read.
    async fn load_through(
        &self,
        cache: &Cache,
        slot: CacheKey,
        key: &SessionKey,
    ) -> Result<Option<Arc<Session>>, SessionError> {
        let ticket = cache.ticket(slot);
        match self.load_now(key).await? {
            Some((session, expires_at)) => {
                let session = Arc::new(session);
                cache.insert(ticket, session.clone(), expires_at);
                Ok(Some(session))
            }
            None => {
                // An older copy may still be cached (a change no script published,
                // or one whose message is on its way): it is wrong now.
                cache.forget(&slot);
                Ok(None)
            }
        }
    }

    /// The record under `key` and its expiry, or `None` when absent, past its
    /// expiry or unreadable.
    async fn load_now(&self, key: &SessionKey) -> Result<Option<(Session, i64)>, SessionError> {
        let record = self.names.record(key);
        let (sealed, expires_at): (Option<Vec<u8>>, Option<i64>) = self
            .run("load", ::redis::cmd("HMGET").arg(&record).arg("d").arg("x"))
            .await?;
        let (Some(sealed), Some(expires_at)) = (sealed, expires_at) else {
            return Ok(None);
        };
        if self.clock.now() >= expires_at {
            return Ok(None);
        }
        Ok(self
            .open(key, &record, &sealed)
            .map(|session| (session, expires_at)))
    }

    /// Drops this process's copy of `key` after a write, whatever its outcome (a
    /// timed-out write may have happened). Other replicas learn of it through the
    /// channel; this one must not wait for its own message.
    fn invalidate_local(&self, key: &SessionKey) {
        if let Some(cache) = &self.cache {
            cache.invalidate(&CacheKey::of(key));
        }
    }

    /// Writes `session` under `key`; with `only_live`, only over a live record
    /// (see [`SessionStore::update`]). Returns whether it wrote.
    async fn save_now(
        &self,
        key: &SessionKey,
        session: &Session,
        ttl: Duration,
        only_live: bool,
    ) -> Result<bool, SessionError> {
        let ttl_secs = ttl_secs(ttl);
        if ttl_secs == 0 {
            // A zero ttl: the session is over already.
            self.delete_now(key).await?;
            return Ok(false);
        }
        let now = self.clock.now();
        let record = self.names.record(key);
        let plain = serde_json::to_vec(session).expect("a Session always serializes");
        let sealed = self.sealer.seal(record.as_bytes(), &plain);
        let sid_tag = session.sid_key().map(|sid| self.tag(&sid));
        let sub_tag = self.tag(&session.sub_key());
        let sid_index = match &sid_tag {
            Some(tag) => self.names.sid(tag),
            None => record.clone(), // a placeholder: the script ignores it
        };
        let mut invocation = self.scripts.save.prepare_invoke();
        invocation
            .key(&record)
            .key(self.names.expiry())
            .key(sid_index)
            .key(self.names.sub(&sub_tag))
            .arg(sealed)
            .arg(now.saturating_add(ttl_secs))
            .arg(ttl_secs.saturating_mul(1000))
            .arg(key.hex())
            .arg(sid_tag.as_deref().unwrap_or(""))
            .arg(&sub_tag)
            .arg(self.names.prefix())
            .arg(now)
            .arg(if only_live { "1" } else { "0" })
            .arg(&self.channel);
        let wrote = self
            .within("save", invocation.invoke_async(&mut self.conn.clone()))
            .await;
        self.invalidate_local(key);
        let wrote: i64 = wrote?;
        Ok(wrote == 1)
    }

    async fn delete_now(&self, key: &SessionKey) -> Result<(), SessionError> {
        let mut invocation = self.scripts.delete.prepare_invoke();
        invocation
            .key(self.names.record(key))
            .key(self.names.expiry())
            .arg(key.hex())
            .arg(self.names.prefix())
            .arg(&self.channel);
        let deleted = self
            .within("delete", invocation.invoke_async(&mut self.conn.clone()))
            .await;
        self.invalidate_local(key);
        let _: i64 = deleted?;
        Ok(())
    }

    /// Deletes the records filed under `value` in `index`, under every index key
    /// (current and rotated-out), and returns how many were live.
    async fn delete_by(&self, index: Index, value: &str) -> Result<usize, SessionError> {
        let now = self.clock.now();
        let mut live = 0usize;
        for index_key in &self.index_keys {
            let tag = tag_with(index_key, value);
            let set = match index {
                Index::Sid => self.names.sid(&tag),
                Index::Sub => self.names.sub(&tag),
            };
            let mut invocation = self.scripts.delete_by.prepare_invoke();
            invocation
                .key(set)
                .key(self.names.expiry())
                .arg(index.field())
                .arg(&tag)
                .arg(self.names.prefix())
                .arg(now)
                .arg(&self.channel);
            let outcome: Result<(usize, Vec<String>), _> = self
                .within(
                    "delete_by_index",
                    invocation.invoke_async(&mut self.conn.clone()),
                )
                .await;
            let (deleted, members) = match outcome {
                Ok(outcome) => outcome,
                Err(error) => {
                    // Perhaps deleted, members unknown: nothing cached is sure now.
                    if let Some(cache) = &self.cache {
                        cache.clear();
                    }
                    return Err(error);
                }
            };
            if let Some(cache) = &self.cache {
                for member in members {
                    cache.invalidate_hex(member.as_bytes());
                }
            }
            live = live.saturating_add(deleted);
        }
        Ok(live)
    }

    async fn count_now(&self) -> Result<usize, SessionError> {
        let now = self.clock.now();
        // Live means `now < x`: an exclusive lower bound.
        self.run(
            "count",
            ::redis::cmd("ZCOUNT")
                .arg(self.names.expiry())
                .arg(format!("({now}"))
                .arg("+inf"),
        )
        .await
    }

    async fn ping_now(&self) -> Result<(), SessionError> {
        let _: String = self.run("ping", &::redis::cmd("PING")).await?;
        Ok(())
    }

    async fn try_lease_now(
        &self,
        key: &SessionKey,
        ttl: Duration,
    ) -> Result<Option<Lease>, SessionError> {
        let token = random_token();
        let taken: Option<String> = self
            .run(
                "lease",
                ::redis::cmd("SET")
                    .arg(self.names.lease(key))
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl)),
            )
            .await?;
        Ok(taken.map(|_| Lease::shared(*key, token)))
    }

    async fn renew_lease_now(&self, lease: &Lease, ttl: Duration) -> Result<bool, SessionError> {
        let Some(token) = lease.token() else {
            return Ok(true);
        };
        let mut invocation = self.scripts.renew_lease.prepare_invoke();
        invocation
            .key(self.names.lease(lease.key()))
            .arg(token)
            .arg(millis(ttl));
        let renewed: i64 = self
            .within(
                "renew_lease",
                invocation.invoke_async(&mut self.conn.clone()),
            )
            .await?;
        Ok(renewed == 1)
    }

    async fn release_lease_now(&self, lease: &Lease) -> Result<(), SessionError> {
        let Some(token) = lease.token() else {
            return Ok(());
        };
        let mut invocation = self.scripts.release_lease.prepare_invoke();
        invocation.key(self.names.lease(lease.key())).arg(token);
        let _: i64 = self
            .within(
                "release_lease",
                invocation.invoke_async(&mut self.conn.clone()),
            )
            .await?;
        Ok(())
    }

    async fn is_leased_now(&self, key: &SessionKey) -> Result<bool, SessionError> {
        self.run(
            "lease_exists",
            ::redis::cmd("EXISTS").arg(self.names.lease(key)),
        )
        .await
    }

    /// The session sealed in `sealed`, or `None` when no configured key opens it
    /// (a secret rotated out, or tampering). Such a record is treated as absent, not
    /// as an outage: its user logs in again rather than getting 503 forever. It is
    /// left in place (it expires by itself), so a replica with a wrong secret during
    /// a rolling deploy does not destroy the sessions the others can read.
    fn open(&self, key: &SessionKey, record: &str, sealed: &[u8]) -> Option<Session> {
        let Some(plain) = self.sealer.open(record.as_bytes(), sealed) else {
            tracing::warn!(session = ?key, "stored session opens with no configured session.secret; treated as absent");
            return None;
        };
        match serde_json::from_slice(&plain) {
            Ok(session) => Some(session),
            Err(error) => {
                tracing::warn!(session = ?key, %error, "stored session is unreadable; treated as absent");
                None
            }
        }
    }

    /// The index tag of a sid or sub under the current key.
    fn tag(&self, value: &str) -> String {
        tag_with(&self.index_keys[0], value)
    }

    /// Runs one command under the timeout.
    async fn run<T: FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &::redis::Cmd,
    ) -> Result<T, SessionError> {
        let mut conn = self.conn.clone();
        self.within(op, async move { cmd.query_async(&mut conn).await })
            .await
    }

    /// Awaits `call` for at most the command timeout; any failure is an outage.
    /// The client's own timeouts bound each attempt; this one also bounds waiting
    /// for a reconnect.
    async fn within<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = RedisResult<T>>,
    ) -> Result<T, SessionError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(SessionError::Unavailable(format!("redis {op}: {error}"))),
            Err(_) => Err(SessionError::Unavailable(format!(
                "redis {op}: no answer within {:?}",
                self.timeout
            ))),
        }
    }
}

impl SessionStore for RedisStore {
    fn load<'a>(
        &'a self,
        key: &'a SessionKey,
    ) -> BoxFuture<'a, Result<Option<Arc<Session>>, SessionError>> {
        Box::pin(self.load_cached(key))
    }

    fn load_fresh<'a>(
        &'a self,
        key: &'a SessionKey,
    ) -> BoxFuture<'a, Result<Option<Arc<Session>>, SessionError>> {
        Box::pin(self.load_fresh_now(key))
    }

    fn load_ready(&self, key: &SessionKey) -> Option<Option<Arc<Session>>> {
        self.cached(self.cache.as_ref()?, key)
    }

    fn save<'a>(
        &'a self,
        key: &'a SessionKey,
        session: &'a Session,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), SessionError>> {
        Box::pin(async move { self.save_now(key, session, ttl, false).await.map(drop) })
    }

    fn update<'a>(
        &'a self,
        key: &'a SessionKey,
        session: &'a Session,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, SessionError>> {
        Box::pin(self.save_now(key, session, ttl, true))
    }

    fn delete<'a>(&'a self, key: &'a SessionKey) -> BoxFuture<'a, Result<(), SessionError>> {
        Box::pin(self.delete_now(key))
    }

    fn delete_by_sid<'a>(&'a self, sid: &'a str) -> BoxFuture<'a, Result<usize, SessionError>> {
        Box::pin(self.delete_by(Index::Sid, sid))
    }

    fn delete_by_sub<'a>(&'a self, sub: &'a str) -> BoxFuture<'a, Result<usize, SessionError>> {
        Box::pin(self.delete_by(Index::Sub, sub))
    }

    fn count(&self) -> BoxFuture<'_, Result<usize, SessionError>> {
        Box::pin(self.count_now())
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(self.ping_now())
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a SessionKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, SessionError>> {
        Box::pin(self.try_lease_now(key, ttl))
    }

    fn renew_lease<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, SessionError>> {
        Box::pin(self.renew_lease_now(lease, ttl))
    }

    fn release_lease<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), SessionError>> {
        Box::pin(self.release_lease_now(lease))
    }

    fn is_leased<'a>(&'a self, key: &'a SessionKey) -> BoxFuture<'a, Result<bool, SessionError>> {
        Box::pin(self.is_leased_now(key))
    }
}

// === helpers ===

/// Which index a bulk delete goes through, and the record field that names it.
#[derive(Clone, Copy)]
enum Index {
    Sid,
    Sub,
}

impl Index {
    fn field(self) -> &'static str {
        match self {
            Index::Sid => "i",
            Index::Sub => "u",
        }
    }
}

/// Key names under one prefix, all with the prefix as their hash tag.
struct Names {
    /// `{prefix}:`
    prefix: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        Names {
            prefix: format!("{{{prefix}}}:"),
        }
    }

    fn prefix(&self) -> &str {
        &self.prefix
    }

    fn record(&self, key: &SessionKey) -> String {
        format!("{}session:{}", self.prefix, key.hex())
    }

    fn sid(&self, tag: &str) -> String {
        format!("{}sid:{tag}", self.prefix)
    }

    fn sub(&self, tag: &str) -> String {
        format!("{}sub:{tag}", self.prefix)
    }

    fn expiry(&self) -> String {
        format!("{}expiry", self.prefix)
    }

    fn lease(&self, key: &SessionKey) -> String {
        format!("{}refresh:{}", self.prefix, key.hex())
    }

    /// A connected-account link, by its tag (see [`links`]).
    fn link(&self, tag: &str) -> String {
        format!("{}link:{tag}", self.prefix)
    }

    fn link_lease(&self, tag: &str) -> String {
        format!("{}link-refresh:{tag}", self.prefix)
    }

    /// The counter every link write takes its generation from.
    fn link_generation(&self) -> String {
        format!("{}link-generation", self.prefix)
    }

    /// The pub/sub channel of record changes (not a key: in no slot).
    fn channel(&self) -> String {
        format!("{}invalidate", self.prefix)
    }
}

/// One HMAC key per configured secret, in the same order (the first is current).
fn index_keys(secrets: &[Secret]) -> Result<Vec<hmac::Key>, SealError> {
    secrets
        .iter()
        .enumerate()
        .map(|(index, secret)| {
            let bytes = secret
                .decode_base64()
                .ok_or(SealError::NotBase64 { index })?;
            let prk = Salt::new(HKDF_SHA256, INDEX_SALT).extract(&bytes);
            let okm = prk
                .expand(&[INDEX_PURPOSE], hmac::HMAC_SHA256)
                .expect("HKDF output of one HMAC-SHA256 key length is valid");
            Ok(hmac::Key::from(okm))
        })
        .collect()
}

/// Hex HMAC-SHA256 of `value`: names an index without naming the user.
fn tag_with(key: &hmac::Key, value: &str) -> String {
    hmac::sign(key, value.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 128 random bits, hex: a lease holder's proof that the lease is its own.
fn random_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A ttl in whole seconds, rounded up (as the memory store does), so a sub-second
/// ttl still stores the record.
fn ttl_secs(ttl: Duration) -> i64 {
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

// === the session cache ===

/// The cache of opened sessions and the listener that keeps it true. See the
/// module docs for the guarantees; the mechanics are:
///
/// - An entry is served only while the cache is *trusted* (the listener's last
///   proof of delivery is at most [`INVALIDATION_BOUND`] old) and the entry is
///   younger than [`CACHE_MAX_AGE`].
/// - Invalidating a key bumps its stripe's counter, then removes the entry. A load
///   that misses takes a [`Ticket`] (the counters) before it reads Redis, and
///   inserts only if, under the entry's shard lock, nothing moved: an invalidation
///   that came in during the read wins, whichever of the two takes the lock first.
/// - Going down or up clears everything and bumps the generation, so no read begun
///   before can insert after.
mod cache {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use dashmap::mapref::entry::Entry as Slot;
    use dashmap::DashMap;
    use futures_util::{FutureExt, StreamExt};
    use tokio::sync::oneshot;

    use super::target::{RECONNECT_MAX_DELAY, RECONNECT_MIN_DELAY};
    use super::{CacheStats, Session, SessionKey};
    use super::{CACHE_MAX_AGE, HEARTBEAT_EVERY, INVALIDATION_BOUND};

    /// How many invalidation counters keys share. A collision only costs a miss
    /// its insert (the entry is loaded again next time).
    const STRIPES: usize = 1024;

    /// A [`SessionKey`]'s 32 bytes: what the channel carries (as hex) and the cache
    /// is indexed by.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(super) struct CacheKey([u8; 32]);

    impl std::hash::Hash for CacheKey {
        /// As [`SessionKey`] hashes (for [`crate::session::DigestHasher`]).
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            state.write_u64(crate::session::digest_prefix(&self.0));
        }
    }

    impl CacheKey {
        /// The cache key of a session key.
        pub fn of(key: &SessionKey) -> Self {
            CacheKey(*key.as_bytes())
        }

        /// Parses 64 lowercase hex digits (a published member).
        pub fn parse(hex: &[u8]) -> Option<Self> {
            fn digit(c: u8) -> Option<u8> {
                match c {
                    b'0'..=b'9' => Some(c - b'0'),
                    b'a'..=b'f' => Some(c - b'a' + 10),
                    _ => None,
                }
            }
            if hex.len() != 64 {
                return None;
            }
            let mut bytes = [0u8; 32];
            for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
                *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
            }
            Some(CacheKey(bytes))
        }

        /// Its invalidation counter (the key is a SHA-256: its bytes are uniform).
        fn stripe(&self) -> usize {
            usize::from(u16::from_le_bytes([self.0[0], self.0[1]])) % STRIPES
        }
    }

    struct Entry {
        session: Arc<Session>,
        /// The record's `x`: unix seconds on the store's clock.
        expires_at: i64,
        loaded_at: Instant,
    }

    /// What a load saw before it read Redis; its insert proves nothing changed since.
    pub(super) struct Ticket {
        key: CacheKey,
        stripe: u64,
        generation: u64,
    }

    pub(super) struct Cache {
        entries: DashMap<CacheKey, Entry, crate::session::DigestState>,
        capacity: usize,
        stripes: Box<[AtomicU64]>,
        /// Bumped whenever the cache is cleared.
        generation: AtomicU64,
        /// When the listener last proved delivery: milliseconds after `started`,
        /// plus one; 0 while the subscription is down.
        vouched: AtomicU64,
        started: Instant,
        hits: Tally,
        misses: Tally,
    }

    /// A counter bumped on every load by every serving thread: kept in a few
    /// cache-line-sized slots, one per thread as far as they go, so threads do
    /// not pull one line back and forth on every request; summed when read.
    #[derive(Default)]
    struct Tally([TallySlot; TALLY_SLOTS]);

    #[derive(Default)]
    #[repr(align(128))]
    struct TallySlot(AtomicU64);

    const TALLY_SLOTS: usize = 8;

    impl Tally {
        fn bump(&self) {
            thread_local! {
                static SLOT: usize = {
                    static NEXT: AtomicU64 = AtomicU64::new(0);
                    usize::try_from(NEXT.fetch_add(1, Ordering::Relaxed)).unwrap_or(0) % TALLY_SLOTS
                };
            }
            let slot = SLOT.with(|slot| *slot);
            self.0[slot].0.fetch_add(1, Ordering::Relaxed);
        }

        fn sum(&self) -> u64 {
            self.0
                .iter()
                .map(|slot| slot.0.load(Ordering::Relaxed))
                .sum()
        }
    }

    impl Cache {
        /// An empty cache of at most about `capacity` entries (concurrent inserts
        /// may pass it by their number), down until its listener subscribes.
        pub fn new(capacity: usize) -> Self {
            Cache {
                entries: DashMap::default(),
                capacity,
                stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
                generation: AtomicU64::new(0),
                vouched: AtomicU64::new(0),
                started: Instant::now(),
                hits: Tally::default(),
                misses: Tally::default(),
            }
        }

        /// The cached session under `key` and its expiry, if the cache is trusted
        /// and holds a copy younger than [`CACHE_MAX_AGE`]. Counts a hit or a miss.
        pub fn get(&self, key: &CacheKey) -> Option<(Arc<Session>, i64)> {
            let now = Instant::now();
            let found = if self.is_trusted_at(now) {
                // The guard is dropped at the end of this statement.
                self.entries
                    .get(key)
                    .filter(|e| now.saturating_duration_since(e.loaded_at) < CACHE_MAX_AGE)
                    .map(|e| (e.session.clone(), e.expires_at))
            } else {
                None
            };
            let counter = if found.is_some() {
                &self.hits
            } else {
                &self.misses
            };
            counter.bump();
            found
        }

        /// Taken before reading `key` from Redis.
        pub fn ticket(&self, key: CacheKey) -> Ticket {
            Ticket {
                key,
                stripe: self.stripes[key.stripe()].load(Ordering::SeqCst),
                generation: self.generation.load(Ordering::SeqCst),
            }
        }

        /// Caches what a load read, unless the subscription is down or `key` (or
        /// the whole cache) was invalidated since the ticket was taken.
        pub fn insert(&self, ticket: Ticket, session: Arc<Session>, expires_at: i64) {
            if !self.is_up() {
                return;
            }
            if self.entries.len() >= self.capacity && !self.entries.contains_key(&ticket.key) {
                self.evict_one();
            }
            let entry = Entry {
                session,
                expires_at,
                loaded_at: Instant::now(),
            };
            // The check runs under the shard lock that `invalidate`'s removal also
            // takes, after its bump: either this sees the bump, or the removal
            // comes after this insert.
            match self.entries.entry(ticket.key) {
                Slot::Occupied(mut slot) if self.is_unchanged(&ticket) => {
                    slot.insert(entry);
                }
                Slot::Vacant(slot) if self.is_unchanged(&ticket) => {
                    slot.insert(entry);
                }
                _ => {}
            }
        }

        /// `key` changed in Redis: drops its copy, and any copy a load in flight
        /// would insert.
        pub fn invalidate(&self, key: &CacheKey) {
            self.stripes[key.stripe()].fetch_add(1, Ordering::SeqCst);
            self.entries.remove(key);
        }

        /// [`Cache::invalidate`] for a published member; anything unreadable clears
        /// the whole cache (a member it cannot name might be any).
        pub fn invalidate_hex(&self, member: &[u8]) {
            match CacheKey::parse(member) {
                Some(key) => self.invalidate(&key),
                None => {
                    tracing::warn!("session cache: unreadable invalidation; clearing the cache");
                    self.clear();
                }
            }
        }

        /// Drops the copy of `key`, if any, without invalidating loads in flight
        /// (for a load that found nothing: whoever deleted the record invalidates).
        pub fn forget(&self, key: &CacheKey) {
            self.entries.remove(key);
        }

        /// Drops every copy, and every insert of a load begun before.
        pub fn clear(&self) {
            self.generation.fetch_add(1, Ordering::SeqCst);
            self.entries.clear();
        }

        pub fn stats(&self) -> CacheStats {
            CacheStats {
                hits: self.hits.sum(),
                misses: self.misses.sum(),
                entries: self.entries.len(),
                is_trusted: self.is_trusted(),
            }
        }

        /// The subscription is down: nothing cached may be served or kept.
        pub(super) fn set_down(&self) {
            self.vouched.store(0, Ordering::SeqCst);
            self.clear();
        }

        /// The subscription is up (again): start empty, then trust.
        pub(super) fn set_up(&self, subscribed_at: Instant) {
            self.clear();
            self.vouch(subscribed_at);
        }

        /// Every invalidation published before `asked_at` has been applied.
        pub(super) fn vouch(&self, asked_at: Instant) {
            self.vouched
                .store(self.millis(asked_at).saturating_add(1), Ordering::SeqCst);
        }

        fn is_up(&self) -> bool {
            self.vouched.load(Ordering::SeqCst) != 0
        }

        /// Returns true if and only if the subscription is up and proved delivery
        /// at most [`INVALIDATION_BOUND`] ago.
        fn is_trusted(&self) -> bool {
            self.is_trusted_at(Instant::now())
        }

        fn is_trusted_at(&self, now: Instant) -> bool {
            let vouched = self.vouched.load(Ordering::SeqCst);
            let now = self.millis(now).saturating_add(1);
            vouched != 0 && now.saturating_sub(vouched) <= millis(INVALIDATION_BOUND)
        }

        fn is_unchanged(&self, ticket: &Ticket) -> bool {
            self.is_up()
                && self.generation.load(Ordering::SeqCst) == ticket.generation
                && self.stripes[ticket.key.stripe()].load(Ordering::SeqCst) == ticket.stripe
        }

        /// Makes room: the first entry found (no order is kept; a dropped entry is
        /// only read again).
        fn evict_one(&self) {
            // The iterator's shard guard is gone before the removal locks the shard.
            let victim = self.entries.iter().next().map(|e| *e.key());
            if let Some(victim) = victim {
                self.entries.remove(&victim);
            }
        }

        /// Drops the entries too old to be served.
        fn sweep(&self) {
            self.entries
                .retain(|_, e| e.loaded_at.elapsed() < CACHE_MAX_AGE);
        }

        fn millis(&self, at: Instant) -> u64 {
            millis(at.saturating_duration_since(self.started))
        }
    }

    fn millis(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    // === the listener ===

    /// The running listener of one cache; dropping it stops the listener.
    pub(super) struct Listener {
        _stop: oneshot::Sender<()>,
    }

    /// Starts the listener that keeps `cache` true: a thread of its own (named
    /// `portcullis-session-cache`) with a one-thread runtime, so neither a busy
    /// nor a blocked runtime of the proxy's can delay an invalidation, and the
    /// store can be built outside any runtime. `None` when the thread cannot be
    /// started: the store then runs without a cache.
    pub(super) fn listen(
        client: ::redis::Client,
        cache: Arc<Cache>,
        channel: String,
        timeout: Duration,
    ) -> Option<Listener> {
        let (stop, stopped) = oneshot::channel();
        let started = std::thread::Builder::new()
            .name("portcullis-session-cache".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "session cache: no runtime for its listener; every load reads Redis");
                        return;
                    }
                };
                runtime.block_on(run(client, &cache, &channel, timeout, stopped));
                cache.set_down();
            });
        match started {
            Ok(_) => Some(Listener { _stop: stop }),
            Err(error) => {
                tracing::error!(%error, "session cache: listener thread not started; every load reads Redis");
                None
            }
        }
    }

    /// Subscribes, and subscribes again after each loss (with backoff, 100 ms
    /// doubling to 2 s), until `stop` resolves (its sender, the store, is gone).
    async fn run(
        client: ::redis::Client,
        cache: &Cache,
        channel: &str,
        timeout: Duration,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut delay = RECONNECT_MIN_DELAY;
        let mut was_up = false;
        loop {
            let mut is_up = false;
            let error = tokio::select! {
                _ = &mut stop => return,
                error = follow(&client, cache, channel, timeout, &mut is_up) => error,
            };
            cache.set_down();
            if is_up {
                delay = RECONNECT_MIN_DELAY;
            }
            if is_up || !was_up {
                // Once per outage, not once per attempt.
                tracing::warn!(%error, retry_in = ?delay, "session cache: invalidation channel down; every load reads Redis until it is back");
            } else {
                tracing::debug!(%error, retry_in = ?delay, "session cache: invalidation channel still down");
            }
            was_up = is_up;
            tokio::select! {
                _ = &mut stop => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(RECONNECT_MAX_DELAY);
        }
    }

    /// One subscription: applies every message until it fails, and proves delivery
    /// every [`HEARTBEAT_EVERY`]. Returns why it ended; `is_up` tells whether it
    /// ever served.
    async fn follow(
        client: &::redis::Client,
        cache: &Cache,
        channel: &str,
        timeout: Duration,
        is_up: &mut bool,
    ) -> String {
        let pubsub = match within(timeout, client.get_async_pubsub()).await {
            Ok(pubsub) => pubsub,
            Err(error) => return error,
        };
        let (mut sink, mut stream) = pubsub.split();
        let asked = Instant::now();
        if let Err(error) = within(timeout, sink.subscribe(channel)).await {
            return error;
        }
        // Changes before the subscription took effect were not heard: start empty.
        cache.set_up(asked);
        *is_up = true;
        tracing::info!("session cache: invalidation channel up");
        let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweep = tokio::time::interval(CACHE_MAX_AGE);
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => cache.invalidate_hex(message.get_payload_bytes()),
                    None => return "subscription closed".to_owned(),
                },
                _ = heartbeat.tick() => {
                    let asked = Instant::now();
                    if let Err(error) = within(timeout, sink.ping::<::redis::Value>()).await {
                        return error;
                    }
                    // The pong came after every message published before the ping,
                    // and those are queued on `stream` now: apply them, then vouch.
                    loop {
                        match stream.next().now_or_never() {
                            Some(Some(message)) => cache.invalidate_hex(message.get_payload_bytes()),
                            Some(None) => return "subscription closed".to_owned(),
                            None => break,
                        }
                    }
                    cache.vouch(asked);
                }
                _ = sweep.tick() => cache.sweep(),
            }
        }
    }

    /// `call` bounded by `timeout`; any failure as text for the log.
    async fn within<T>(
        timeout: Duration,
        call: impl std::future::Future<Output = ::redis::RedisResult<T>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }
}

#[cfg(test)]
mod tests;
