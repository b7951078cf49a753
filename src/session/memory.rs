//! The embedded session store (`session.store = "memory"`, SPEC §5): records live in
//! this process, so one replica only, and a restart logs everyone out.
//!
//! Owns the records, their `sid`/`sub` indexes for back-channel logout, the bound on
//! memory, the sweeper that drops expired records, and the session-end signal that
//! long-lived connections (WebSockets) wait on. Knows nothing of cookies or tokens.
//!
//! # Locking
//!
//! Three dashmaps: `records`, `by_sid`, `by_sub`. The only order in which guards
//! nest is one `records` guard, then one index guard, so the record and its index
//! entries change together and no cycle can form. Nothing ever holds an index guard
//! while taking a `records` guard, holds two `records` guards at once (that includes
//! `len()` and iteration, which lock every shard in turn), or holds any guard across
//! an `.await` (STACK.md trap 4). Bulk work collects keys first, drops the guards,
//! then removes one record at a time.

use std::collections::{BinaryHeap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::Instrument;

use super::links::{Link, LinkKey, LinkStore, StoredLink};
use super::{BoxFuture, Session, SessionError, SessionKey, SessionStore};
use crate::clock::Clock;

/// How often, at most, a full store says so at warn level: once per burst of
/// evictions, not once per evicted session.
const EVICTION_WARN_EVERY_SECS: i64 = 60;

/// Each eviction pass frees this share of `max_sessions` (1/64), so a store that
/// stays full scans its records once per that many saves, not on every save.
const EVICTION_BATCH_DIVISOR: usize = 64;

/// The shortest sweep period: `tokio::time::interval` panics on zero.
const MIN_SWEEP_EVERY: Duration = Duration::from_millis(10);

/// In-process sessions for a single replica, bounded in number.
///
/// Each record expires `ttl` after its last save, measured on the injected
/// [`Clock`]. An expired record is invisible at once (`load`, `count`,
/// `delete_by_*` ignore it) and is physically removed by the next `load` of its
/// key, by [`MemoryStore::sweep`] (see [`MemoryStore::spawn_sweeper`]), or when
/// room is needed.
///
/// # Eviction
///
/// At most `max_sessions` records are kept. When saving a *new* key finds the store
/// full, one scan of the records first drops every expired one; if that leaves fewer
/// than `max_sessions / 64` (at least 1) free slots, the live records nearest to
/// expiry are evicted until that many are free. Evicting a batch keeps the scan off
/// most saves: a store that stays full pays one O(n) scan per batch. Overwriting an
/// existing key never evicts. Evictions are logged at warn at most once a minute and
/// counted in [`MemoryStore::evicted_total`]. Under concurrent saves of new keys the
/// bound can be overshot by the number of saves in flight, never more.
///
/// # Session end
///
/// [`MemoryStore::subscribe`] hands out a `watch` receiver that turns `true` when the
/// record goes by `delete`, `delete_by_sid`/`delete_by_sub`, eviction, sweep, or a
/// `load` that finds it expired. A record costs nothing extra until someone
/// subscribes: the sender is created on first subscription and dropped with the record.
pub struct MemoryStore {
    records: DashMap<SessionKey, Record, super::DigestState>,
    /// Keyed by [`MemoryStore::index_hash`] of the `sid` / `sub`, not the text:
    /// no copy of it per session. Two values with one hash share an entry;
    /// `delete_by` checks each record against the value itself.
    by_sid: DashMap<u64, KeySet>,
    by_sub: DashMap<u64, KeySet>,
    /// Keyed with random keys per store, so no value can be chosen to collide.
    index_hasher: RandomState,
    max_sessions: usize,
    clock: Arc<dyn Clock>,
    /// Held while making room, so concurrent savers that all find the store full
    /// scan it once between them rather than once each.
    making_room: Mutex<()>,
    evicted_total: AtomicU64,
    last_eviction_warn: AtomicI64,
    /// Connected-account links (SPEC §13); no ttl, no bound beyond users times
    /// connections. Guards are never held across an `.await` nor with a
    /// `records` guard.
    links: DashMap<LinkKey, StoredLink>,
    /// The last link generation handed out: each write takes the next, so none
    /// is ever reused.
    link_generation: AtomicU64,
}

/// One stored session and what the store keeps beside it.
struct Record {
    /// Behind a pointer: the table then holds 8 bytes per slot, and its spare
    /// slots (a hash table is never full) cost that rather than a whole session.
    /// Shared with loaders, so a load copies nothing.
    session: Arc<Session>,
    /// Unix seconds; the record is gone from this instant on.
    expires_at: i64,
    /// Created on first [`MemoryStore::subscribe`]; signalled and dropped with the record.
    ended: Option<watch::Sender<bool>>,
}

impl Record {
    fn is_live(&self, now: i64) -> bool {
        now < self.expires_at
    }
}

/// Which index a bulk delete goes through.
#[derive(Clone, Copy)]
enum Index {
    Sid,
    Sub,
}

impl Index {
    fn matches(self, session: &Session, value: &str) -> bool {
        match self {
            Index::Sid => session.sid_key().as_deref() == Some(value),
            Index::Sub => session.sub_key() == value,
        }
    }
}

// === impl MemoryStore ===

impl MemoryStore {
    /// An empty store holding at most `max_sessions` records (at least 1), with
    /// time read from `clock`.
    pub fn new(max_sessions: usize, clock: Arc<dyn Clock>) -> Self {
        MemoryStore {
            records: DashMap::default(),
            by_sid: DashMap::new(),
            by_sub: DashMap::new(),
            index_hasher: RandomState::new(),
            max_sessions: max_sessions.max(1),
            clock,
            making_room: Mutex::new(()),
            evicted_total: AtomicU64::new(0),
            last_eviction_warn: AtomicI64::new(i64::MIN),
            links: DashMap::new(),
            link_generation: AtomicU64::new(0),
        }
    }

    /// Removes every expired record (signalling its subscribers and cleaning the
    /// indexes); returns how many it removed.
    pub fn sweep(&self) -> usize {
        let now = self.clock.now();
        let expired = self.expired_keys(now);
        expired
            .iter()
            .filter(|key| self.remove_where(key, |rec| !rec.is_live(now)).is_some())
            .count()
    }

    /// Starts the background task `session_sweeper`, which calls [`MemoryStore::sweep`]
    /// every `every` (at least 10 ms), first at once. It ends when `shutdown` changes
    /// or its sender is dropped, or when the store itself is dropped: the task holds
    /// only a weak reference, so it never keeps a replaced store alive.
    pub fn spawn_sweeper(
        self: &Arc<Self>,
        every: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let span = tracing::info_span!("session_sweeper");
        tokio::spawn(sweep_loop(Arc::downgrade(self), every, shutdown).instrument(span))
    }

    /// A receiver whose value turns `true` when the record under `key` ends
    /// (deleted, deleted by `sid`/`sub`, evicted, swept, or found expired), for
    /// connections that must close with their session (SPEC §5).
    ///
    /// Wait with `changed().await`; an `Err` from it also means "ended". An absent or
    /// expired key yields a receiver that already reads `true` with its sender gone.
    /// Overwriting the record with `save` keeps the same signal.
    pub fn subscribe(&self, key: &SessionKey) -> watch::Receiver<bool> {
        let now = self.clock.now();
        if let Some(mut rec) = self.records.get_mut(key) {
            if rec.is_live(now) {
                return rec
                    .ended
                    .get_or_insert_with(|| watch::channel(false).0)
                    .subscribe();
            }
        }
        ended_receiver()
    }

    /// How many sessions eviction has dropped since start (for a metric).
    pub fn evicted_total(&self) -> u64 {
        self.evicted_total.load(Ordering::Relaxed)
    }

    fn load_now(&self, key: &SessionKey) -> Option<Arc<Session>> {
        let now = self.clock.now();
        {
            let rec = self.records.get(key)?;
            if rec.is_live(now) {
                return Some(Arc::clone(&rec.session));
            }
        } // guard dropped before the removal below locks the shard for writing
        self.remove_where(key, |rec| !rec.is_live(now));
        None
    }

    /// Writes `session` under `key`; with `only_live`, only over a live record
    /// (see [`SessionStore::update`]). Returns whether it wrote.
    fn save_now(
        &self,
        key: &SessionKey,
        session: &Session,
        ttl: Duration,
        only_live: bool,
    ) -> bool {
        let now = self.clock.now();
        let expires_at = now.saturating_add(ttl_secs(ttl));
        if expires_at <= now {
            // A zero ttl: the session is over already.
            self.remove_where(key, |_| true);
            return false;
        }
        // Checked before taking the entry: `len()` read-locks every shard, ours included.
        if !only_live && self.is_full_for(key) {
            self.make_room(now);
        }
        match self.records.entry(*key) {
            Entry::Occupied(mut entry) => {
                let rec = entry.get_mut();
                if only_live && !rec.is_live(now) {
                    return false;
                }
                self.reindex(key, &rec.session, session);
                rec.session = Arc::new(session.clone());
                rec.expires_at = expires_at;
                true
            }
            Entry::Vacant(_) if only_live => false,
            Entry::Vacant(entry) => {
                self.index(key, session);
                entry.insert(Record {
                    session: Arc::new(session.clone()),
                    expires_at,
                    ended: None,
                });
                true
            }
        }
    }

    fn delete_now(&self, key: &SessionKey) {
        self.remove_where(key, |_| true);
    }

    /// Removes every record found under `value` in `index` whose session still
    /// matches it; returns how many of those were live.
    fn delete_by(&self, index: Index, value: &str) -> usize {
        let map = self.index_map(index);
        // Copy the keys out so the index guard is gone before records are locked.
        let keys: Vec<SessionKey> = map
            .get(&self.index_hash(value))
            .map(|keys| keys.to_vec())
            .unwrap_or_default();
        let now = self.clock.now();
        keys.iter()
            .filter_map(|key| self.remove_where(key, |rec| index.matches(&rec.session, value)))
            .filter(|expires_at| now < *expires_at)
            .count()
    }

    fn count_now(&self) -> usize {
        let now = self.clock.now();
        self.records.iter().filter(|rec| rec.is_live(now)).count()
    }

    /// Removes the record under `key` if `should_remove` says so, unindexes it while
    /// its shard is still locked (so a concurrent save cannot interleave), and
    /// signals its subscribers. Returns the removed record's expiry.
    fn remove_where(
        &self,
        key: &SessionKey,
        should_remove: impl FnOnce(&Record) -> bool,
    ) -> Option<i64> {
        let Entry::Occupied(entry) = self.records.entry(*key) else {
            return None;
        };
        if !should_remove(entry.get()) {
            return None;
        }
        self.unindex(key, &entry.get().session);
        let rec = entry.remove();
        if let Some(ended) = rec.ended {
            ended.send_replace(true);
        }
        Some(rec.expires_at)
    }

    // --- indexes; called with the record's `records` guard held ---

    fn index(&self, key: &SessionKey, session: &Session) {
        if let Some(sid) = session.sid_key() {
            link(&self.by_sid, self.index_hash(&sid), key);
        }
        link(&self.by_sub, self.index_hash(&session.sub_key()), key);
    }

    fn unindex(&self, key: &SessionKey, session: &Session) {
        if let Some(sid) = session.sid_key() {
            unlink(&self.by_sid, self.index_hash(&sid), key);
        }
        unlink(&self.by_sub, self.index_hash(&session.sub_key()), key);
    }

    fn index_hash(&self, value: &str) -> u64 {
        self.index_hasher.hash_one(value)
    }

    /// Moves `key` between index entries where an overwrite changed `sid` or `sub`.
    fn reindex(&self, key: &SessionKey, old: &Session, new: &Session) {
        let (old_sid, new_sid) = (old.sid_key(), new.sid_key());
        if old_sid != new_sid {
            if let Some(sid) = old_sid {
                unlink(&self.by_sid, self.index_hash(&sid), key);
            }
            if let Some(sid) = new_sid {
                link(&self.by_sid, self.index_hash(&sid), key);
            }
        }
        let (old_sub, new_sub) = (old.sub_key(), new.sub_key());
        if old_sub != new_sub {
            unlink(&self.by_sub, self.index_hash(&old_sub), key);
            link(&self.by_sub, self.index_hash(&new_sub), key);
        }
    }

    fn index_map(&self, index: Index) -> &DashMap<u64, KeySet> {
        match index {
            Index::Sid => &self.by_sid,
            Index::Sub => &self.by_sub,
        }
    }

    // --- bounded memory ---

    /// Returns true if and only if saving `key` would add a record to a full store.
    fn is_full_for(&self, key: &SessionKey) -> bool {
        !self.records.contains_key(key) && self.records.len() >= self.max_sessions
    }

    /// How many free slots one eviction pass leaves.
    fn eviction_batch(&self) -> usize {
        (self.max_sessions / EVICTION_BATCH_DIVISOR).max(1)
    }

    /// Drops expired records, then evicts the live ones nearest to expiry until a
    /// batch of slots is free (see "Eviction" on [`MemoryStore`]).
    fn make_room(&self, now: i64) {
        // A poisoned lock guards no data: a panic elsewhere must not stop eviction.
        let _one_at_a_time = self
            .making_room
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.records.len() < self.max_sessions {
            return; // another saver made room while we waited
        }
        let batch = self.eviction_batch();
        let (expired, nearest) = self.scan_for_room(now, batch);
        for key in &expired {
            self.remove_where(key, |rec| !rec.is_live(now));
        }
        let target = self.max_sessions.saturating_sub(batch);
        let excess = self.records.len().saturating_sub(target);
        let evicted = nearest
            .into_iter()
            .take(excess)
            // Skip a record that was saved again (so expires later) since the scan.
            .filter(|(expires_at, key)| {
                self.remove_where(key, |rec| rec.expires_at <= *expires_at)
                    .is_some()
            })
            .count();
        if evicted > 0 {
            self.note_evictions(now, evicted);
        }
    }

    /// One pass over the records: every expired key, and the `batch` live keys
    /// nearest to expiry, nearest first.
    fn scan_for_room(&self, now: i64, batch: usize) -> (Vec<SessionKey>, Vec<(i64, SessionKey)>) {
        let mut expired = Vec::new();
        // A max-heap on expiry holding the `batch` smallest seen so far.
        let mut nearest: BinaryHeap<(i64, AnyOrder)> = BinaryHeap::with_capacity(batch + 1);
        for rec in self.records.iter() {
            if !rec.is_live(now) {
                expired.push(*rec.key());
                continue;
            }
            nearest.push((rec.expires_at, AnyOrder(*rec.key())));
            if nearest.len() > batch {
                nearest.pop();
            }
        }
        let mut nearest: Vec<(i64, SessionKey)> = nearest
            .into_iter()
            .map(|(at, AnyOrder(key))| (at, key))
            .collect();
        nearest.sort_by_key(|(at, _)| *at);
        (expired, nearest)
    }

    fn note_evictions(&self, now: i64, evicted: usize) {
        let total = self
            .evicted_total
            .fetch_add(evicted as u64, Ordering::Relaxed)
            + evicted as u64;
        tracing::debug!(
            evicted,
            total,
            "session store full: evicted sessions nearest to expiry"
        );
        let last = self.last_eviction_warn.load(Ordering::Relaxed);
        let is_new_burst = now.saturating_sub(last) >= EVICTION_WARN_EVERY_SECS;
        if is_new_burst
            && self
                .last_eviction_warn
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                max_sessions = self.max_sessions,
                evicted,
                evicted_total = total,
                "session store full: evicting the sessions nearest to expiry; raise the limit \
                 or shorten session timeouts"
            );
        }
    }

    fn expired_keys(&self, now: i64) -> Vec<SessionKey> {
        self.records
            .iter()
            .filter(|rec| !rec.is_live(now))
            .map(|rec| *rec.key())
            .collect()
    }
}

impl MemoryStore {
    fn next_link_generation(&self) -> u64 {
        self.link_generation
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
    }

    fn stored(&self, link: &Link) -> StoredLink {
        StoredLink {
            link: Arc::new(link.clone()),
            generation: self.next_link_generation(),
            slot: 0,
        }
    }
}

impl LinkStore for MemoryStore {
    fn load_link<'a>(
        &'a self,
        key: &'a LinkKey,
    ) -> BoxFuture<'a, Result<Option<StoredLink>, SessionError>> {
        let found = self.links.get(key).map(|entry| entry.value().clone());
        Box::pin(std::future::ready(Ok(found)))
    }

    fn put_link<'a>(
        &'a self,
        key: &'a LinkKey,
        link: &'a Link,
    ) -> BoxFuture<'a, Result<u64, SessionError>> {
        let stored = self.stored(link);
        let generation = stored.generation;
        self.links.insert(key.clone(), stored);
        Box::pin(std::future::ready(Ok(generation)))
    }

    fn replace_link<'a>(
        &'a self,
        key: &'a LinkKey,
        loaded: &'a StoredLink,
        link: &'a Link,
    ) -> BoxFuture<'a, Result<Option<u64>, SessionError>> {
        let written = match self.links.get_mut(key) {
            Some(mut entry) if entry.generation == loaded.generation => {
                *entry = self.stored(link);
                Some(entry.generation)
            }
            _ => None,
        };
        Box::pin(std::future::ready(Ok(written)))
    }

    fn delete_link<'a>(
        &'a self,
        key: &'a LinkKey,
        loaded: Option<&'a StoredLink>,
    ) -> BoxFuture<'a, Result<bool, SessionError>> {
        let deleted = self
            .links
            .remove_if(key, |_, stored| {
                loaded.is_none_or(|loaded| loaded.generation == stored.generation)
            })
            .is_some();
        Box::pin(std::future::ready(Ok(deleted)))
    }
}

impl SessionStore for MemoryStore {
    fn load<'a>(
        &'a self,
        key: &'a SessionKey,
    ) -> BoxFuture<'a, Result<Option<Arc<Session>>, SessionError>> {
        Box::pin(std::future::ready(Ok(self.load_now(key))))
    }

    fn load_ready(&self, key: &SessionKey) -> Option<Option<Arc<Session>>> {
        Some(self.load_now(key))
    }

    fn save<'a>(
        &'a self,
        key: &'a SessionKey,
        session: &'a Session,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), SessionError>> {
        // Work happens when polled, not when the future is made: a future dropped
        // unpolled changes nothing.
        Box::pin(async move {
            self.save_now(key, session, ttl, false);
            Ok(())
        })
    }

    fn update<'a>(
        &'a self,
        key: &'a SessionKey,
        session: &'a Session,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, SessionError>> {
        Box::pin(async move { Ok(self.save_now(key, session, ttl, true)) })
    }

    fn delete<'a>(&'a self, key: &'a SessionKey) -> BoxFuture<'a, Result<(), SessionError>> {
        Box::pin(async move {
            self.delete_now(key);
            Ok(())
        })
    }

    fn delete_by_sid<'a>(&'a self, sid: &'a str) -> BoxFuture<'a, Result<usize, SessionError>> {
        Box::pin(async move { Ok(self.delete_by(Index::Sid, sid)) })
    }

    fn delete_by_sub<'a>(&'a self, sub: &'a str) -> BoxFuture<'a, Result<usize, SessionError>> {
        Box::pin(async move { Ok(self.delete_by(Index::Sub, sub)) })
    }

    fn count(&self) -> BoxFuture<'_, Result<usize, SessionError>> {
        Box::pin(async move { Ok(self.count_now()) })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

// === helpers ===

/// A key that compares equal to every other: the eviction heap orders by expiry
/// alone, and which of two records expiring in the same second goes first does
/// not matter. (`SessionKey` has no `Ord`, and needs none elsewhere.)
struct AnyOrder(SessionKey);

impl PartialEq for AnyOrder {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for AnyOrder {}

impl Ord for AnyOrder {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl PartialOrd for AnyOrder {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The keys filed under one `sid` or `sub`. Nearly always a single key (one login,
/// one browser), so that case lives inline: a one-element `HashSet` would cost a
/// ~160-byte allocation per index entry, about 10% of a whole session.
enum KeySet {
    One(SessionKey),
    Many(HashSet<SessionKey>),
}

impl KeySet {
    fn insert(&mut self, key: SessionKey) {
        match self {
            KeySet::One(only) if *only == key => {}
            KeySet::One(only) => *self = KeySet::Many(HashSet::from([*only, key])),
            KeySet::Many(keys) => {
                keys.insert(key);
            }
        }
    }

    /// Removes `key`; returns true if and only if no key is left.
    fn remove(&mut self, key: &SessionKey) -> bool {
        match self {
            KeySet::One(only) => only == key,
            KeySet::Many(keys) => {
                keys.remove(key);
                // Back inline at one key, so `Many` always holds two or more.
                if keys.len() == 1 {
                    if let Some(&last) = keys.iter().next() {
                        *self = KeySet::One(last);
                    }
                }
                false
            }
        }
    }

    fn to_vec(&self) -> Vec<SessionKey> {
        match self {
            KeySet::One(only) => vec![*only],
            KeySet::Many(keys) => keys.iter().copied().collect(),
        }
    }
}

fn link(map: &DashMap<u64, KeySet>, hash: u64, key: &SessionKey) {
    map.entry(hash)
        .and_modify(|keys| keys.insert(*key))
        .or_insert(KeySet::One(*key));
}

/// Removes `key` from the set under `hash`, and the set itself once empty, under
/// one guard.
fn unlink(map: &DashMap<u64, KeySet>, hash: u64, key: &SessionKey) {
    map.remove_if_mut(&hash, |_, keys| keys.remove(key));
}

/// A ttl in whole seconds, rounded up so a sub-second ttl still stores the record.
fn ttl_secs(ttl: Duration) -> i64 {
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// The answer to subscribing to a session that is already over.
fn ended_receiver() -> watch::Receiver<bool> {
    let (_gone, ended) = watch::channel(true);
    ended
}

async fn sweep_loop(
    store: Weak<MemoryStore>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every.max(MIN_SWEEP_EVERY));
    // After a stall, sweep once and carry on: catching up on missed ticks is wasted work.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            _ = ticks.tick() => {
                let Some(store) = store.upgrade() else { break };
                let swept = store.sweep();
                if swept > 0 {
                    tracing::debug!(swept, "swept expired sessions");
                }
            }
        }
    }
    tracing::debug!("session sweeper stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::session::conformance::{
        self, count, fixture, key, load, save, session, unique, START, TTL,
    };

    conformance::session_store_conformance!(|clock: Arc<ManualClock>| async move {
        MemoryStore::new(1_000, clock)
    });

    mod links {
        use super::*;

        crate::session::links::conformance::link_store_conformance!(async {
            MemoryStore::new(1_000, Arc::new(ManualClock::new(START)))
        });
    }

    /// A factory for a store of `max_sessions`, for the fixture.
    fn bounded(
        max_sessions: usize,
    ) -> impl Fn(Arc<ManualClock>) -> std::future::Ready<MemoryStore> + Send + Sync + 'static {
        move |clock| std::future::ready(MemoryStore::new(max_sessions, clock))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Saves `n` sessions with ttls `first_ttl`, `first_ttl + 10`, ...; returns their keys.
    async fn fill(store: &MemoryStore, n: usize, first_ttl: u64) -> Vec<SessionKey> {
        let mut keys = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let k = key();
            let s = session(&unique("sub"), Some(&unique("sid")), START);
            save(store, &k, &s, secs(first_ttl + 10 * i)).await;
            keys.push(k);
        }
        keys
    }

    /// Returns true if and only if `ended` reads "session over" and `changed()`
    /// resolves at once.
    async fn has_ended(ended: &mut watch::Receiver<bool>) -> bool {
        let resolves = tokio::time::timeout(secs(1), ended.changed()).await.is_ok();
        resolves && *ended.borrow()
    }

    /// Issue 8: a load is on every session request; it shares the record, and
    /// a save replaces it without touching what a request already holds.
    #[tokio::test]
    async fn loads_share_the_record_and_a_save_leaves_held_copies_alone() {
        let (_, store) = fixture(&bounded(8)).await;
        let k = key();
        save(&store, &k, &session("alice", None, START), TTL).await;
        let first = store.load(&k).await.expect("load").expect("stored");
        let second = store.load(&k).await.expect("load").expect("stored");
        assert!(Arc::ptr_eq(&first, &second), "a load copied the session");

        let mut touched = Session::clone(&first);
        touched.last_seen = START + 5;
        save(&store, &k, &touched, TTL).await;
        assert_eq!(
            first.last_seen, START,
            "a held session changed under its reader"
        );
        let third = store.load(&k).await.expect("load").expect("stored");
        assert_eq!(third.last_seen, START + 5);
    }

    #[tokio::test]
    async fn eviction_keeps_the_count_bounded_and_evicts_the_nearest_to_expiry() {
        let (_, store) = fixture(&bounded(8)).await;
        let keys = fill(&store, 8, 100).await;

        let newcomer = key();
        save(&store, &newcomer, &session("new", None, START), TTL).await;

        assert_eq!(count(&store).await, 8);
        assert_eq!(
            load(&store, &keys[0]).await,
            None,
            "nearest to expiry stays"
        );
        for k in &keys[1..] {
            assert!(
                load(&store, k).await.is_some(),
                "a later-expiring record went"
            );
        }
        assert!(load(&store, &newcomer).await.is_some());
        assert_eq!(store.evicted_total(), 1);

        for _ in 0..40 {
            save(&store, &key(), &session("more", None, START), TTL).await;
            assert!(store.records.len() <= 8, "bound exceeded");
        }
    }

    #[tokio::test]
    async fn eviction_drops_expired_records_before_live_ones() {
        let (clock, store) = fixture(&bounded(8)).await;
        let short_lived = fill(&store, 4, 10).await; // ttls 10..40
        let long_lived = fill(&store, 4, 1_000).await;
        clock.advance(40);

        save(&store, &key(), &session("new", None, START), TTL).await;

        assert_eq!(store.records.len(), 5, "expired records still held");
        for k in &short_lived {
            assert!(!store.records.contains_key(k));
        }
        for k in &long_lived {
            assert!(load(&store, k).await.is_some(), "a live record was evicted");
        }
        assert_eq!(store.evicted_total(), 0);
    }

    #[tokio::test]
    async fn eviction_frees_a_batch_so_a_full_store_does_not_scan_on_every_save() {
        let (_, store) = fixture(&bounded(256)).await; // batch of 256 / 64 = 4
        fill(&store, 256, 100).await;

        save(&store, &key(), &session("new", None, START), TTL).await;
        assert_eq!(store.records.len(), 256 - 4 + 1);
        assert_eq!(store.evicted_total(), 4);

        for _ in 0..3 {
            save(&store, &key(), &session("new", None, START), TTL).await;
        }
        assert_eq!(
            store.evicted_total(),
            4,
            "evicted again before the batch was used"
        );
    }

    #[tokio::test]
    async fn overwriting_a_record_in_a_full_store_evicts_nothing() {
        let (_, store) = fixture(&bounded(4)).await;
        let keys = fill(&store, 4, 100).await;
        let s = session(&unique("sub"), None, START);
        save(&store, &keys[3], &s, TTL).await;
        assert_eq!(count(&store).await, 4);
        assert_eq!(store.evicted_total(), 0);
    }

    #[tokio::test]
    async fn evicted_records_leave_nothing_in_the_indexes() {
        let (_, store) = fixture(&bounded(2)).await;
        let (sub, sid) = (unique("sub"), unique("sid"));
        save(&store, &key(), &session(&sub, Some(&sid), START), secs(10)).await;
        save(&store, &key(), &session("other", None, START), secs(100)).await;
        save(&store, &key(), &session("third", None, START), secs(100)).await;

        assert!(!store.by_sid.contains_key(&store.index_hash(&sid)));
        assert!(!store.by_sub.contains_key(&store.index_hash(&sub)));
        assert_eq!(store.delete_by_sid(&sid).await.expect("delete_by_sid"), 0);
    }

    /// The indexes are keyed by hash: two values that share an entry (a
    /// collision, forced here) must not delete each other's sessions.
    #[tokio::test]
    async fn a_shared_index_entry_deletes_only_sessions_of_the_value_asked() {
        let (_, store) = fixture(&bounded(100)).await;
        let (sid, other_sid) = (unique("sid"), unique("sid"));
        let (mine, theirs) = (key(), key());
        save(
            &store,
            &mine,
            &session(&unique("sub"), Some(&sid), START),
            TTL,
        )
        .await;
        save(
            &store,
            &theirs,
            &session(&unique("sub"), Some(&other_sid), START),
            TTL,
        )
        .await;
        // File `theirs` under `sid`'s entry too, as a collision would.
        link(&store.by_sid, store.index_hash(&sid), &theirs);

        assert_eq!(store.delete_by_sid(&sid).await.expect("delete_by_sid"), 1);
        assert!(
            store.records.contains_key(&theirs),
            "the other sid's session stays"
        );
        assert!(!store.records.contains_key(&mine));
        assert_eq!(
            store
                .delete_by_sid(&other_sid)
                .await
                .expect("delete_by_sid"),
            1
        );
    }

    #[tokio::test]
    async fn sweep_removes_expired_records_and_cleans_the_indexes() {
        let (clock, store) = fixture(&bounded(100)).await;
        let (sub, sid) = (unique("sub"), unique("sid"));
        let (live_sub, live_sid) = (unique("live-sub"), unique("live-sid"));
        save(&store, &key(), &session(&sub, Some(&sid), START), secs(10)).await;
        save(&store, &key(), &session(&sub, None, START), secs(20)).await;
        let live = key();
        save(
            &store,
            &live,
            &session(&live_sub, Some(&live_sid), START),
            TTL,
        )
        .await;
        clock.advance(20);

        assert_eq!(store.sweep(), 2);

        assert_eq!(store.records.len(), 1);
        assert!(store.records.contains_key(&live));
        let sids: Vec<u64> = store.by_sid.iter().map(|e| *e.key()).collect();
        let subs: Vec<u64> = store.by_sub.iter().map(|e| *e.key()).collect();
        assert_eq!(sids, [store.index_hash(&live_sid)]);
        assert_eq!(subs, [store.index_hash(&live_sub)]);
        assert_eq!(store.sweep(), 0);
    }

    #[tokio::test]
    async fn subscribers_learn_when_the_session_ends() {
        let (clock, store) = fixture(&bounded(100)).await;
        let (sub, sid) = (unique("sub"), unique("sid"));
        let [by_delete, by_sid, by_sub, by_sweep, by_load] = [(); 5].map(|_| key());
        for k in [by_delete, by_sid, by_sweep, by_load] {
            save(&store, &k, &session(&unique("sub"), None, START), secs(10)).await;
        }
        save(
            &store,
            &by_sid,
            &session(&unique("sub"), Some(&sid), START),
            TTL,
        )
        .await;
        save(&store, &by_sub, &session(&sub, None, START), TTL).await;
        let mut ended = [by_delete, by_sid, by_sub, by_sweep, by_load].map(|k| store.subscribe(&k));
        let [on_delete, on_sid, on_sub, on_sweep, on_load] = &mut ended;

        store.delete(&by_delete).await.expect("delete");
        assert!(has_ended(on_delete).await, "delete");
        store.delete_by_sid(&sid).await.expect("delete_by_sid");
        assert!(has_ended(on_sid).await, "delete_by_sid");
        store.delete_by_sub(&sub).await.expect("delete_by_sub");
        assert!(has_ended(on_sub).await, "delete_by_sub");

        clock.advance(10);
        assert_eq!(load(&store, &by_load).await, None);
        assert!(has_ended(on_load).await, "load of an expired record");
        assert_eq!(store.sweep(), 1);
        assert!(has_ended(on_sweep).await, "sweep");
    }

    #[tokio::test]
    async fn subscribers_learn_when_the_session_is_evicted() {
        let (_, store) = fixture(&bounded(1)).await;
        let first = key();
        save(&store, &first, &session("first", None, START), TTL).await;
        let mut ended = store.subscribe(&first);
        save(&store, &key(), &session("second", None, START), TTL).await;
        assert!(has_ended(&mut ended).await);
    }

    #[tokio::test]
    async fn saving_again_does_not_end_the_session_for_subscribers() {
        let (_, store) = fixture(&bounded(100)).await;
        let k = key();
        let s = session(&unique("sub"), Some(&unique("sid")), START);
        save(&store, &k, &s, TTL).await;
        let ended = store.subscribe(&k);
        let refreshed = Session {
            access_token: Some("refreshed".into()),
            ..s
        };
        save(&store, &k, &refreshed, TTL).await;
        assert!(!ended.has_changed().expect("sender still held"));
        assert!(!*ended.borrow());
    }

    #[tokio::test]
    async fn subscribing_to_an_absent_or_expired_session_reads_ended() {
        let (clock, store) = fixture(&bounded(100)).await;
        assert!(*store.subscribe(&key()).borrow(), "absent");
        let k = key();
        save(&store, &k, &session("s", None, START), secs(5)).await;
        clock.advance(5);
        assert!(*store.subscribe(&k).borrow(), "expired");
    }

    #[tokio::test]
    async fn zero_ttl_ends_the_session() {
        let (_, store) = fixture(&bounded(100)).await;
        let k = key();
        save(&store, &k, &session("s", None, START), TTL).await;
        let mut ended = store.subscribe(&k);
        save(&store, &k, &session("s", None, START), Duration::ZERO).await;
        assert_eq!(load(&store, &k).await, None);
        assert!(has_ended(&mut ended).await);
    }

    #[tokio::test]
    async fn sub_second_ttl_rounds_up_to_a_second() {
        let (clock, store) = fixture(&bounded(100)).await;
        let k = key();
        save(
            &store,
            &k,
            &session("s", None, START),
            Duration::from_millis(200),
        )
        .await;
        assert!(load(&store, &k).await.is_some());
        clock.advance(1);
        assert_eq!(load(&store, &k).await, None);
    }

    #[test]
    fn indexes_hold_nothing_once_concurrent_use_has_deleted_everything() {
        let store = Arc::new(MemoryStore::new(1_000, Arc::new(ManualClock::new(START))));
        let hammered = store.clone();
        conformance::run_with_deadlock_watchdog(async move {
            conformance::hammer(hammered).await;
        });
        // A stale entry is harmless to correctness (removal re-checks the record),
        // but it is memory that would never be freed.
        assert!(store.records.is_empty());
        assert!(store.by_sid.is_empty(), "stale sid index entries");
        assert!(store.by_sub.is_empty(), "stale sub index entries");
    }

    #[test]
    fn key_sets_grow_and_shrink_back_inline() {
        let (a, b, c) = (key(), key(), key());
        let mut keys = KeySet::One(a);
        keys.insert(a);
        assert!(matches!(keys, KeySet::One(_)), "a duplicate grew the set");
        keys.insert(b);
        keys.insert(c);
        assert_eq!(keys.to_vec().len(), 3);
        assert!(!keys.remove(&b));
        assert!(!keys.remove(&c));
        assert!(matches!(keys, KeySet::One(only) if only == a));
        assert!(keys.remove(&a), "the last key left a set behind");
    }

    #[tokio::test]
    async fn sweeper_sweeps_at_once_and_stops_on_shutdown() {
        let (clock, store) = fixture(&bounded(100)).await;
        let store = Arc::new(store);
        let k = key();
        save(&*store, &k, &session("s", None, START), secs(10)).await;
        let mut ended = store.subscribe(&k);
        clock.advance(10);
        let (stop, shutdown) = watch::channel(false);

        let sweeper = store.spawn_sweeper(secs(3600), shutdown);

        // The first tick is immediate, so the expired record goes without waiting.
        assert!(has_ended(&mut ended).await, "not swept");
        assert_eq!(store.records.len(), 0);
        stop.send_replace(true);
        tokio::time::timeout(secs(5), sweeper)
            .await
            .expect("sweeper ignored shutdown")
            .expect("sweeper panicked");
    }
}
