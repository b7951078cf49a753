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
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            tls_roots_pem: None,
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
    /// The first tags new index entries; all are tried by `delete_by_*`, so sessions
    /// indexed before a key rotation are still found.
    index_keys: Vec<hmac::Key>,
    scripts: Scripts,
    clock: Arc<dyn Clock>,
    timeout: Duration,
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
        let index_keys = index_keys(secrets)?;
        let conn = target
            .connect(options.timeout, options.tls_roots_pem)
            .map_err(|e| RedisStoreError::Client(e.to_string()))?;
        Ok(RedisStore {
            conn,
            names: Names::new(&options.prefix),
            sealer,
            index_keys,
            scripts: Scripts::new(),
            clock,
            timeout: options.timeout,
        })
    }

    async fn load_now(&self, key: &SessionKey) -> Result<Option<Session>, SessionError> {
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
        Ok(self.open(key, &record, &sealed))
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
            .arg(if only_live { "1" } else { "0" });
        let wrote: i64 = self
            .within("save", invocation.invoke_async(&mut self.conn.clone()))
            .await?;
        Ok(wrote == 1)
    }

    async fn delete_now(&self, key: &SessionKey) -> Result<(), SessionError> {
        let mut invocation = self.scripts.delete.prepare_invoke();
        invocation
            .key(self.names.record(key))
            .key(self.names.expiry())
            .arg(key.hex())
            .arg(self.names.prefix());
        let _: i64 = self
            .within("delete", invocation.invoke_async(&mut self.conn.clone()))
            .await?;
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
                .arg(now);
            let deleted: usize = self
                .within(
                    "delete_by_index",
                    invocation.invoke_async(&mut self.conn.clone()),
                )
                .await?;
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
        Box::pin(async move { Ok(self.load_now(key).await?.map(Arc::new)) })
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

#[cfg(test)]
mod tests;
