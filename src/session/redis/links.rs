//! Connected-account links in Redis (SPEC §13), beside the sessions and under
//! the same secrets.
//!
//! A link lives at `{prefix}:link:<tag>`, where `<tag>` is the HMAC of
//! `link` U+001F [`LinkKey::name`] under the index key: a dump names no user and
//! no connection. Its `d` field is the JSON [`Link`] sealed with a key of its own
//! purpose ([`LINK_SEAL_PURPOSE`]) and the Redis key as associated data, so a dump
//! holds no usable token and a link cannot be moved to another user's key. `g` is
//! its generation, taken from one counter, so it is never reused.
//!
//! After a secret rotation a link may still sit under an older secret's tag: a load
//! looks under every tag, current first, and the next replace moves it under the
//! current one.

use std::time::Duration;

use super::{random_token, tag_with, RedisStore};
use crate::session::links::{Link, LinkKey, LinkLease, LinkStore, StoredLink};
use crate::session::{BoxFuture, SessionError};

/// The [`Sealer`](crate::session::seal::Sealer) purpose of links: their key opens no session record.
pub const LINK_SEAL_PURPOSE: &str = "portcullis connection link";

/// What a link's tag is the HMAC of, so it shares no input with a session index tag.
fn tagged_name(key: &LinkKey) -> String {
    format!("link\u{1f}{}", key.name())
}

impl RedisStore {
    /// The link's Redis key under the index key of `slot`.
    pub(super) fn link_name(&self, key: &LinkKey, slot: usize) -> String {
        self.names
            .link(&tag_with(&self.index_keys[slot], &tagged_name(key)))
    }

    async fn load_link_now(&self, key: &LinkKey) -> Result<Option<StoredLink>, SessionError> {
        for slot in 0..self.index_keys.len() {
            let name = self.link_name(key, slot);
            let (sealed, generation): (Option<Vec<u8>>, Option<u64>) = self
                .run(
                    "load_link",
                    ::redis::cmd("HMGET").arg(&name).arg("d").arg("g"),
                )
                .await?;
            let (Some(sealed), Some(generation)) = (sealed, generation) else {
                continue;
            };
            return Ok(self.open_link(&name, &sealed).map(|link| StoredLink {
                link: std::sync::Arc::new(link),
                generation,
                slot,
            }));
        }
        Ok(None)
    }

    /// The link sealed in `sealed`, or `None` (treated as absent: the user links
    /// again) when no configured secret opens it.
    fn open_link(&self, name: &str, sealed: &[u8]) -> Option<Link> {
        let Some(plain) = self.link_sealer.open(name.as_bytes(), sealed) else {
            tracing::warn!(
                "stored connection link opens with no configured session.secret; treated as absent"
            );
            return None;
        };
        match serde_json::from_slice(&plain) {
            Ok(link) => Some(link),
            Err(error) => {
                tracing::warn!(%error, "stored connection link is unreadable; treated as absent");
                None
            }
        }
    }

    fn seal_link(&self, name: &str, link: &Link) -> Vec<u8> {
        let plain = serde_json::to_vec(link).expect("a Link always serializes");
        self.link_sealer.seal(name.as_bytes(), &plain)
    }

    async fn put_link_now(&self, key: &LinkKey, link: &Link) -> Result<u64, SessionError> {
        let name = self.link_name(key, 0);
        let mut invocation = self.scripts.put_link.prepare_invoke();
        invocation.key(&name).key(self.names.link_generation());
        for slot in 1..self.index_keys.len() {
            invocation.key(self.link_name(key, slot));
        }
        invocation.arg(self.seal_link(&name, link));
        self.within("put_link", invocation.invoke_async(&mut self.conn.clone()))
            .await
    }

    async fn replace_link_now(
        &self,
        key: &LinkKey,
        loaded: &StoredLink,
        link: &Link,
    ) -> Result<Option<u64>, SessionError> {
        let from = self.link_name(key, loaded.slot.min(self.index_keys.len() - 1));
        let to = self.link_name(key, 0);
        let mut invocation = self.scripts.replace_link.prepare_invoke();
        invocation
            .key(&from)
            .key(&to)
            .key(self.names.link_generation())
            .arg(loaded.generation)
            .arg(self.seal_link(&to, link));
        let generation: u64 = self
            .within(
                "replace_link",
                invocation.invoke_async(&mut self.conn.clone()),
            )
            .await?;
        Ok((generation != 0).then_some(generation))
    }

    async fn delete_link_now(
        &self,
        key: &LinkKey,
        loaded: Option<&StoredLink>,
    ) -> Result<bool, SessionError> {
        if let Some(loaded) = loaded {
            let name = self.link_name(key, loaded.slot.min(self.index_keys.len() - 1));
            let mut invocation = self.scripts.delete_link_if.prepare_invoke();
            invocation.key(&name).arg(loaded.generation);
            let deleted: i64 = self
                .within(
                    "delete_link",
                    invocation.invoke_async(&mut self.conn.clone()),
                )
                .await?;
            return Ok(deleted == 1);
        }
        // Every copy, under every secret's tag: a disconnect leaves none behind.
        let mut command = ::redis::cmd("DEL");
        for slot in 0..self.index_keys.len() {
            command.arg(self.link_name(key, slot));
        }
        let deleted: i64 = self.run("delete_link", &command).await?;
        Ok(deleted > 0)
    }

    async fn try_link_lease_now(
        &self,
        key: &LinkKey,
        ttl: Duration,
    ) -> Result<Option<LinkLease>, SessionError> {
        let token = random_token();
        let tag = tag_with(&self.index_keys[0], &tagged_name(key));
        let taken: Option<String> = self
            .run(
                "link_lease",
                ::redis::cmd("SET")
                    .arg(self.names.link_lease(&tag))
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(super::millis(ttl)),
            )
            .await?;
        Ok(taken.map(|_| LinkLease::shared(key.clone(), token)))
    }

    async fn release_link_lease_now(&self, lease: &LinkLease) -> Result<(), SessionError> {
        let Some(token) = lease.token() else {
            return Ok(());
        };
        let tag = tag_with(&self.index_keys[0], &tagged_name(lease.key()));
        let mut invocation = self.scripts.release_lease.prepare_invoke();
        invocation.key(self.names.link_lease(&tag)).arg(token);
        let _: i64 = self
            .within(
                "release_link_lease",
                invocation.invoke_async(&mut self.conn.clone()),
            )
            .await?;
        Ok(())
    }
}

impl LinkStore for RedisStore {
    fn load_link<'a>(
        &'a self,
        key: &'a LinkKey,
    ) -> BoxFuture<'a, Result<Option<StoredLink>, SessionError>> {
        Box::pin(self.load_link_now(key))
    }

    fn put_link<'a>(
        &'a self,
        key: &'a LinkKey,
        link: &'a Link,
    ) -> BoxFuture<'a, Result<u64, SessionError>> {
        Box::pin(self.put_link_now(key, link))
    }

    fn replace_link<'a>(
        &'a self,
        key: &'a LinkKey,
        loaded: &'a StoredLink,
        link: &'a Link,
    ) -> BoxFuture<'a, Result<Option<u64>, SessionError>> {
        Box::pin(self.replace_link_now(key, loaded, link))
    }

    fn delete_link<'a>(
        &'a self,
        key: &'a LinkKey,
        loaded: Option<&'a StoredLink>,
    ) -> BoxFuture<'a, Result<bool, SessionError>> {
        Box::pin(self.delete_link_now(key, loaded))
    }

    fn try_link_lease<'a>(
        &'a self,
        key: &'a LinkKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<LinkLease>, SessionError>> {
        Box::pin(self.try_link_lease_now(key, ttl))
    }

    fn release_link_lease<'a>(
        &'a self,
        lease: &'a LinkLease,
    ) -> BoxFuture<'a, Result<(), SessionError>> {
        Box::pin(self.release_link_lease_now(lease))
    }
}
