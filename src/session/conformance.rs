//! The behaviour every [`SessionStore`] must show, as one suite run against each
//! store (oauth2-proxy's `session_store_tests.go`; rustls compiles its API tests
//! once per provider the same way). Test-only.
//!
//! A store's tests call [`session_store_conformance!`] with a factory: an
//! `Fn(Arc<ManualClock>) -> impl Future<Output = impl SessionStore>` that returns an
//! *empty* store reading time from that clock (a Redis factory gives each store its
//! own key prefix). Every case builds its own store, and sids and subs carry a random
//! suffix, so cases may run in parallel against one server.

use std::future::Future;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::{Session, SessionId, SessionKey, SessionStore};
use crate::clock::ManualClock;
use crate::identity::Identity;

/// Where every case's clock starts (unix seconds).
pub(crate) const START: i64 = 1_700_000_000;

/// The ttl cases use unless they test expiry.
pub(crate) const TTL: Duration = Duration::from_secs(3600);

/// How long the concurrency case may take before it counts as deadlocked.
const DEADLOCK_LIMIT: Duration = Duration::from_secs(20);

/// Runs the whole suite against the store `$factory` builds, one `#[test]` per case
/// so a failure names the behaviour that broke.
macro_rules! session_store_conformance {
    ($factory:expr) => {
        $crate::session::conformance::session_store_conformance!(
            $factory;
            round_trip_returns_an_equal_session,
            missing_key_loads_as_none,
            save_overwrites_the_previous_record,
            update_replaces_a_live_record_and_keeps_its_indexes,
            update_writes_nothing_where_the_session_ended,
            update_writes_nothing_over_an_expired_record,
            delete_removes_the_record,
            deleting_an_absent_key_is_ok,
            record_expires_exactly_at_its_ttl,
            saving_again_restarts_the_ttl,
            expired_records_count_for_nothing,
            delete_by_sid_removes_all_and_only_matching_records,
            delete_by_sub_removes_all_and_only_matching_records,
            save_that_changes_sid_moves_the_record_between_sids,
            save_that_changes_sub_moves_the_record_between_subs,
            count_counts_live_records,
            ping_answers,
            every_write_is_seen_by_the_next_load,
            load_fresh_returns_what_load_returns,
        );

        #[test]
        fn concurrent_tasks_do_not_deadlock() {
            $crate::session::conformance::concurrent_tasks_do_not_deadlock($factory);
        }
    };
    ($factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                $crate::session::conformance::$case($factory).await;
            }
        )+
    };
}

pub(crate) use session_store_conformance;

/// Builds an empty store on a given clock; see the module docs.
pub(crate) trait StoreFactory: Send + Sync + 'static {
    type Store: SessionStore;

    fn build(&self, clock: Arc<ManualClock>) -> impl Future<Output = Self::Store> + Send;
}

impl<F, Fut, S> StoreFactory for F
where
    F: Fn(Arc<ManualClock>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = S> + Send,
    S: SessionStore,
{
    type Store = S;

    fn build(&self, clock: Arc<ManualClock>) -> impl Future<Output = S> + Send {
        self(clock)
    }
}

// === cases ===

pub(crate) async fn round_trip_returns_an_equal_session(factory: impl StoreFactory) {
    let (_, store) = fixture(&factory).await;
    let full = session(&unique("sub"), Some(&unique("sid")), START);
    let minimal = Session {
        identity: Identity {
            sub: unique("sub"),
            ..Identity::default()
        },
        sid: None,
        id_token: "h.p.s".into(),
        access_token: None,
        refresh_token: None,
        access_expires_at: None,
        created_at: START,
        last_seen: START,
    };
    for original in [full, minimal] {
        let k = key();
        save(&store, &k, &original, TTL).await;
        assert_eq!(load_checked(&store, &k).await, Some(original));
    }
}

pub(crate) async fn missing_key_loads_as_none(factory: impl StoreFactory) {
    let (_, store) = fixture(&factory).await;
    assert_eq!(load(&store, &key()).await, None);
}

pub(crate) async fn save_overwrites_the_previous_record(factory: impl StoreFactory) {
    let (_, store) = fixture(&factory).await;
    let k = key();
    let first = session(&unique("sub"), Some(&unique("sid")), START);
    let second = Session {
        access_token: Some("rotated-access".into()),
        refresh_token: Some("rotated-refresh".into()),
        last_seen: START + 30,
        ..first.clone()
    };
    save(&store, &k, &first, TTL).await;
    save(&store, &k, &second, TTL).await;
    assert_eq!(load(&store, &k).await, Some(second));
    assert_eq!(count(&store).await, 1);
}

pub(crate) async fn update_replaces_a_live_record_and_keeps_its_indexes(
    factory: impl StoreFactory,
) {
    let (_, store) = fixture(&factory).await;
    let k = key();
    let sid = unique("sid");
    let first = session(&unique("sub"), Some(&sid), START);
    let touched = Session {
        last_seen: START + 30,
        ..first.clone()
    };
    save(&store, &k, &first, TTL).await;
    assert!(
        update(&store, &k, &touched, TTL).await,
        "a live record was not updated"
    );
    assert_eq!(load(&store, &k).await, Some(touched));
    assert_eq!(store.delete_by_sid(&sid).await.expect("delete_by_sid"), 1);
}

/// A request that loaded a session, then wrote it back after a logout, would
/// bring the session back to life: `update` must not.
pub(crate) async fn update_writes_nothing_where_the_session_ended(factory: impl StoreFactory) {
    let (_, store) = fixture(&factory).await;
    let (never, deleted, by_sid, by_sub) = (key(), key(), key(), key());
    let sid = unique("sid");
    let sub = unique("sub");
    let s = session(&sub, Some(&sid), START);
    assert!(
        !update(&store, &never, &s, TTL).await,
        "update created a record"
    );

    save(&store, &deleted, &s, TTL).await;
    store.delete(&deleted).await.expect("delete");
    assert!(!update(&store, &deleted, &s, TTL).await);

    let other_sub = session(&unique("sub"), Some(&sid), START);
    save(&store, &by_sid, &other_sub, TTL).await;
    store.delete_by_sid(&sid).await.expect("delete_by_sid");
    assert!(!update(&store, &by_sid, &other_sub, TTL).await);

    let other_sid = session(&sub, Some(&unique("sid")), START);
    save(&store, &by_sub, &other_sid, TTL).await;
    store.delete_by_sub(&sub).await.expect("delete_by_sub");
    assert!(!update(&store, &by_sub, &other_sid, TTL).await);

    for k in [&never, &deleted, &by_sid, &by_sub] {
        assert_eq!(load(&store, k).await, None, "an ended session came back");
    }
    assert_eq!(count(&store).await, 0);
}

pub(crate) async fn update_writes_nothing_over_an_expired_record(factory: impl StoreFactory) {
    let (clock, store) = fixture(&factory).await;
    let k = key();
    let s = session(&unique("sub"), None, START);
    save(&store, &k, &s, Duration::from_secs(60)).await;
    clock.advance(60);
    assert!(
        !update(&store, &k, &s, TTL).await,
        "an expired session was renewed"
    );
    assert_eq!(load(&store, &k).await, None);
}

pub(crate) async fn delete_removes_the_record(factory: impl StoreFactory) {
    let (_, store) = fixture(&factory).await;
    let (kept, gone) = (key(), key());
    let s = session(&unique("sub"), Some(&unique("sid")), START);
    save(&store, &kept, &s, TTL).await;
    save(&store, &gone, &s, TTL).await;
    store.delete(&gone).await.expect("delete");
    assert_eq!(load_checked(&store, &gone).await, None);
    assert_eq!(load_checked(&store, &kept).await, Some(s));
}

pub(crate) async fn deleting_an_absent_key_is_ok(factory: impl StoreFactory) {
    let (_, store) = fixture(&factory).await;
    store
        .delete(&key())
        .await
        .expect("deleting nothing succeeds");
}

pub(crate) async fn record_expires_exactly_at_its_ttl(factory: impl StoreFactory) {
    let (clock, store) = fixture(&factory).await;
    let k = key();
    let s = session(&unique("sub"), None, START);
    save(&store, &k, &s, Duration::from_secs(60)).await;
    clock.advance(59);
    assert_eq!(
        load_checked(&store, &k).await,
        Some(s),
        "one second before expiry"
    );
    clock.advance(1);
    assert_eq!(load_checked(&store, &k).await, None, "at expiry");
    clock.advance(1);
    assert_eq!(load_checked(&store, &k).await, None, "after expiry");
}

pub(crate) async fn saving_again_restarts_the_ttl(factory: impl StoreFactory) {
    let (clock, store) = fixture(&factory).await;
    let k = key();
    let s = session(&unique("sub"), None, START);
    let ttl = Duration::from_secs(60);
    save(&store, &k, &s, ttl).await;
    clock.advance(50);
    save(&store, &k, &s, ttl).await;
    clock.advance(59);
    assert_eq!(
        load(&store, &k).await,
        Some(s),
        "59 s after the second save"
    );
    clock.advance(1);
    assert_eq!(load(&store, &k).await, None, "60 s after the second save");
}

pub(crate) async fn expired_records_count_for_nothing(factory: impl StoreFactory) {
    let (clock, store) = fixture(&factory).await;
    let (sub, sid) = (unique("sub"), unique("sid"));
    save(
        &store,
        &key(),
        &session(&sub, Some(&sid), START),
        Duration::from_secs(10),
    )
    .await;
    clock.advance(10);
    assert_eq!(count(&store).await, 0);
    assert_eq!(store.delete_by_sid(&sid).await.expect("delete_by_sid"), 0);
    assert_eq!(store.delete_by_sub(&sub).await.expect("delete_by_sub"), 0);
}

pub(crate) async fn delete_by_sid_removes_all_and_only_matching_records(
    factory: impl StoreFactory,
) {
    let (_, store) = fixture(&factory).await;
    let (sid, other_sid) = (unique("sid"), unique("sid"));
    let (alice, bob) = (unique("alice"), unique("bob"));
    let matching = [
        session(&alice, Some(&sid), START),
        session(&bob, Some(&sid), START),
        session(&alice, Some(&sid), START),
    ];
    let others = [
        session(&alice, Some(&other_sid), START),
        session(&bob, None, START),
    ];
    let matching_keys = save_all(&store, &matching).await;
    let other_keys = save_all(&store, &others).await;

    let deleted = store.delete_by_sid(&sid).await.expect("delete_by_sid");

    assert_eq!(deleted, matching.len());
    for k in &matching_keys {
        assert_eq!(load(&store, k).await, None, "a record of the sid survived");
    }
    for (k, s) in other_keys.iter().zip(&others) {
        assert_eq!(
            load(&store, k).await.as_ref(),
            Some(s),
            "another record went"
        );
    }
    assert_eq!(store.delete_by_sid(&sid).await.expect("again"), 0);
    assert_eq!(store.delete_by_sid(&unique("sid")).await.expect("none"), 0);
}

pub(crate) async fn delete_by_sub_removes_all_and_only_matching_records(
    factory: impl StoreFactory,
) {
    let (_, store) = fixture(&factory).await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    let (sid, other_sid) = (unique("sid"), unique("sid"));
    let matching = [
        session(&alice, Some(&sid), START),
        session(&alice, Some(&other_sid), START),
        session(&alice, None, START),
    ];
    let others = [session(&bob, Some(&sid), START), session(&bob, None, START)];
    let matching_keys = save_all(&store, &matching).await;
    let other_keys = save_all(&store, &others).await;

    let deleted = store.delete_by_sub(&alice).await.expect("delete_by_sub");

    assert_eq!(deleted, matching.len());
    for k in &matching_keys {
        assert_eq!(load(&store, k).await, None, "a record of the sub survived");
    }
    for (k, s) in other_keys.iter().zip(&others) {
        assert_eq!(
            load(&store, k).await.as_ref(),
            Some(s),
            "another record went"
        );
    }
    assert_eq!(store.delete_by_sub(&alice).await.expect("again"), 0);
    assert_eq!(
        store.delete_by_sub(&unique("carol")).await.expect("none"),
        0
    );
}

pub(crate) async fn save_that_changes_sid_moves_the_record_between_sids(
    factory: impl StoreFactory,
) {
    let (_, store) = fixture(&factory).await;
    let (old_sid, new_sid) = (unique("old-sid"), unique("new-sid"));
    let sub = unique("sub");
    let k = key();
    save(&store, &k, &session(&sub, Some(&old_sid), START), TTL).await;
    let moved = session(&sub, Some(&new_sid), START);
    save(&store, &k, &moved, TTL).await;

    assert_eq!(store.delete_by_sid(&old_sid).await.expect("old sid"), 0);
    assert_eq!(load(&store, &k).await, Some(moved));

    // And out of every sid index once the sid is dropped.
    let sidless = session(&sub, None, START);
    save(&store, &k, &sidless, TTL).await;
    assert_eq!(store.delete_by_sid(&new_sid).await.expect("new sid"), 0);
    assert_eq!(load(&store, &k).await, Some(sidless));

    save(&store, &k, &session(&sub, Some(&new_sid), START), TTL).await;
    assert_eq!(store.delete_by_sid(&new_sid).await.expect("new sid"), 1);
    assert_eq!(load(&store, &k).await, None);
}

pub(crate) async fn save_that_changes_sub_moves_the_record_between_subs(
    factory: impl StoreFactory,
) {
    let (_, store) = fixture(&factory).await;
    let (old_sub, new_sub) = (unique("old-sub"), unique("new-sub"));
    let k = key();
    save(&store, &k, &session(&old_sub, None, START), TTL).await;
    let moved = session(&new_sub, None, START);
    save(&store, &k, &moved, TTL).await;

    assert_eq!(store.delete_by_sub(&old_sub).await.expect("old sub"), 0);
    assert_eq!(load(&store, &k).await, Some(moved));
    assert_eq!(store.delete_by_sub(&new_sub).await.expect("new sub"), 1);
    assert_eq!(load(&store, &k).await, None);
}

pub(crate) async fn count_counts_live_records(factory: impl StoreFactory) {
    let (clock, store) = fixture(&factory).await;
    assert_eq!(count(&store).await, 0);
    let s = session(&unique("sub"), None, START);
    let (short, long, gone) = (key(), key(), key());
    save(&store, &short, &s, Duration::from_secs(10)).await;
    save(&store, &long, &s, TTL).await;
    save(&store, &gone, &s, TTL).await;
    assert_eq!(count(&store).await, 3);
    store.delete(&gone).await.expect("delete");
    save(&store, &long, &s, TTL).await; // an overwrite adds nothing
    assert_eq!(count(&store).await, 2);
    clock.advance(10);
    assert_eq!(count(&store).await, 1, "the expired record still counted");
}

/// A store that keeps loaded records (the Redis store's cache) must not serve
/// one after its own write replaced or removed it.
pub(crate) async fn every_write_is_seen_by_the_next_load(factory: impl StoreFactory) {
    let (_, store) = fixture(&factory).await;
    let (sub, sid) = (unique("sub"), unique("sid"));
    let (k, by_sid, by_sub) = (key(), key(), key());
    let first = session(&sub, Some(&sid), START);
    let touched = Session {
        last_seen: START + 30,
        ..first.clone()
    };
    for k in [&k, &by_sid, &by_sub] {
        save(&store, k, &first, TTL).await;
        assert_eq!(load_checked(&store, k).await.as_ref(), Some(&first));
        assert_eq!(
            load_checked(&store, k).await.as_ref(),
            Some(&first),
            "loaded again"
        );
    }

    assert!(update(&store, &k, &touched, TTL).await);
    assert_eq!(
        load_checked(&store, &k).await.as_ref(),
        Some(&touched),
        "after update"
    );
    let resaved = session(&sub, Some(&sid), START + 60);
    save(&store, &k, &resaved, TTL).await;
    assert_eq!(
        load_checked(&store, &k).await.as_ref(),
        Some(&resaved),
        "after save"
    );
    store.delete(&k).await.expect("delete");
    assert_eq!(load_checked(&store, &k).await, None, "after delete");

    store.delete_by_sid(&sid).await.expect("delete_by_sid");
    assert_eq!(
        load_checked(&store, &by_sid).await,
        None,
        "after delete_by_sid"
    );
    save(&store, &by_sub, &first, TTL).await;
    assert_eq!(load_checked(&store, &by_sub).await.as_ref(), Some(&first));
    store.delete_by_sub(&sub).await.expect("delete_by_sub");
    assert_eq!(
        load_checked(&store, &by_sub).await,
        None,
        "after delete_by_sub"
    );
}

pub(crate) async fn load_fresh_returns_what_load_returns(factory: impl StoreFactory) {
    let (clock, store) = fixture(&factory).await;
    let k = key();
    let s = session(&unique("sub"), None, START);
    assert_eq!(fresh(&store, &k).await, None, "absent");
    save(&store, &k, &s, Duration::from_secs(60)).await;
    assert_eq!(fresh(&store, &k).await.as_ref(), Some(&s));
    assert_eq!(
        load_checked(&store, &k).await.as_ref(),
        Some(&s),
        "load after load_fresh"
    );
    let changed = Session {
        last_seen: START + 5,
        ..s.clone()
    };
    save(&store, &k, &changed, Duration::from_secs(60)).await;
    assert_eq!(fresh(&store, &k).await.as_ref(), Some(&changed));
    clock.advance(60);
    assert_eq!(fresh(&store, &k).await, None, "past its ttl");
}

pub(crate) async fn ping_answers(factory: impl StoreFactory) {
    let (_, store) = fixture(&factory).await;
    store.ping().await.expect("ping");
}

/// 64 tasks on a multi-threaded runtime save, load and delete their own keys and a
/// few shared ones (changing the shared records' sid as they go), then the indexes
/// must still be exact. Runs on its own thread and runtime under a std watchdog: a
/// deadlock in blocking locks stalls every worker, tokio timers included, so only a
/// timer outside the runtime can turn it into a failure instead of a hang.
pub(crate) fn concurrent_tasks_do_not_deadlock(factory: impl StoreFactory) {
    run_with_deadlock_watchdog(async move {
        let (_, store) = fixture(&factory).await;
        hammer(Arc::new(store)).await;
    });
}

/// Runs `work` on a fresh multi-threaded runtime on its own thread, and fails if it
/// panics or has not finished within [`DEADLOCK_LIMIT`].
pub(crate) fn run_with_deadlock_watchdog(work: impl Future<Output = ()> + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("test runtime");
        // The timer is made inside `block_on`: it needs the runtime's context.
        let outcome = runtime.block_on(async { tokio::time::timeout(DEADLOCK_LIMIT, work).await });
        let _ = done.send(outcome.is_ok());
    });
    match finished.recv_timeout(DEADLOCK_LIMIT + Duration::from_secs(5)) {
        Ok(true) => {}
        Ok(false) => panic!("store operations did not finish in {DEADLOCK_LIMIT:?}: deadlock"),
        Err(RecvTimeoutError::Timeout) => {
            panic!("the runtime stopped answering: deadlock in a blocking lock")
        }
        Err(RecvTimeoutError::Disconnected) => panic!("a task failed (see its panic above)"),
    }
}

/// 64 tasks hammer `store` (see [`concurrent_tasks_do_not_deadlock`]); when they are
/// done the sid index must be exact and the store empty.
pub(crate) async fn hammer<S: SessionStore>(store: Arc<S>) {
    const TASKS: usize = 64;
    const ROUNDS: usize = 40;
    let sids = Arc::new([unique("sid-a"), unique("sid-b")]);
    let shared_sub = Arc::new(unique("shared"));
    let shared_keys: Arc<Vec<SessionKey>> = Arc::new((0..4).map(|_| key()).collect());

    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        let (store, sids, shared_sub, shared_keys) = (
            store.clone(),
            sids.clone(),
            shared_sub.clone(),
            shared_keys.clone(),
        );
        tasks.spawn(async move {
            let own_key = key();
            let own = session(&unique("own"), Some(&unique("own-sid")), START);
            for round in 0..ROUNDS {
                save(&*store, &own_key, &own, TTL).await;
                assert_eq!(load(&*store, &own_key).await.as_ref(), Some(&own));

                // Key and sid vary independently, so saves keep moving records
                // between the two sids.
                let shared_key = &shared_keys[(task + round) % shared_keys.len()];
                let sid = &sids[task % 2];
                match round % 8 {
                    0 => drop(store.delete_by_sid(sid).await.expect("delete_by_sid")),
                    3 => drop(
                        store
                            .delete_by_sub(&shared_sub)
                            .await
                            .expect("delete_by_sub"),
                    ),
                    5 => store.delete(shared_key).await.expect("delete"),
                    _ => {}
                }
                let _ = count(&*store).await;

                if round % 2 == 0 {
                    store.delete(&own_key).await.expect("delete own");
                } else {
                    store
                        .delete_by_sub(&own.identity.sub)
                        .await
                        .expect("delete own sub");
                }
                assert_eq!(load(&*store, &own_key).await, None);

                // Last, so the shared records are live when the tasks end.
                let shared = session(&shared_sub, Some(sid), START);
                save(&*store, shared_key, &shared, TTL).await;
                let _ = load(&*store, shared_key).await;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a hammering task panicked");
    }
    assert_indexes_exact(&*store, &shared_keys, &sids[..]).await;
}

/// Every live shared record is found through its sid, and nothing else is left.
async fn assert_indexes_exact<S: SessionStore>(store: &S, keys: &[SessionKey], sids: &[String]) {
    let mut live_per_sid = vec![0; sids.len()];
    for k in keys {
        if let Some(s) = load(store, k).await {
            let i = sids
                .iter()
                .position(|sid| s.sid.as_ref() == Some(sid))
                .expect("shared records carry one of the shared sids");
            live_per_sid[i] += 1;
        }
    }
    for (sid, live) in sids.iter().zip(live_per_sid) {
        let deleted = store.delete_by_sid(sid).await.expect("delete_by_sid");
        assert_eq!(deleted, live, "the sid index lost or kept records");
    }
    assert_eq!(count(store).await, 0, "records outlived the hammering");
}

// === helpers ===

/// A store from `factory` on a fresh clock at [`START`].
pub(crate) async fn fixture<F: StoreFactory>(factory: &F) -> (Arc<ManualClock>, F::Store) {
    let clock = Arc::new(ManualClock::new(START));
    let store = factory.build(clock.clone()).await;
    (clock, store)
}

/// A fresh random store key.
pub(crate) fn key() -> SessionKey {
    SessionId::generate().key()
}

/// `prefix` plus a random suffix, so cases sharing a server never collide.
pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", key().short())
}

/// A session of `sub`, created and last seen at `now`, with every field set.
pub(crate) fn session(sub: &str, sid: Option<&str>, now: i64) -> Session {
    Session {
        identity: Identity {
            sub: sub.to_owned(),
            email: Some(format!("{sub}@example.com")),
            email_verified: true,
            name: Some("Alice Example".into()),
            preferred_username: Some("alice".into()),
            roles: vec!["admin".into(), "editor".into(), "viewer".into()],
            ..Identity::default()
        },
        sid: sid.map(str::to_owned),
        id_token: format!("header.{}.signature", key().hex()),
        access_token: Some(format!("access-{}", key().hex())),
        refresh_token: Some(format!("refresh-{}", key().hex())),
        access_expires_at: Some(now + 300),
        created_at: now,
        last_seen: now,
    }
}

async fn save_all<S: SessionStore>(store: &S, sessions: &[Session]) -> Vec<SessionKey> {
    let mut keys = Vec::with_capacity(sessions.len());
    for s in sessions {
        let k = key();
        save(store, &k, s, TTL).await;
        keys.push(k);
    }
    keys
}

pub(crate) async fn save<S: SessionStore + ?Sized>(
    store: &S,
    k: &SessionKey,
    s: &Session,
    ttl: Duration,
) {
    store.save(k, s, ttl).await.expect("save");
}

pub(crate) async fn update<S: SessionStore + ?Sized>(
    store: &S,
    k: &SessionKey,
    s: &Session,
    ttl: Duration,
) -> bool {
    store.update(k, s, ttl).await.expect("update")
}

pub(crate) async fn load<S: SessionStore + ?Sized>(store: &S, k: &SessionKey) -> Option<Session> {
    store.load(k).await.expect("load").map(Arc::unwrap_or_clone)
}

/// [`load`], checking that `load_ready`, whenever it answers (before the load
/// and after it), answers the same: the proxy asks it first. For cases where
/// no other task writes meanwhile.
pub(crate) async fn load_checked<S: SessionStore + ?Sized>(
    store: &S,
    k: &SessionKey,
) -> Option<Session> {
    let before = store.load_ready(k);
    let loaded = store.load(k).await.expect("load");
    for (when, ready) in [("before", before), ("after", store.load_ready(k))] {
        if let Some(ready) = ready {
            assert_eq!(ready, loaded, "load_ready {when} load disagrees with it");
        }
    }
    loaded.map(Arc::unwrap_or_clone)
}

pub(crate) async fn fresh<S: SessionStore + ?Sized>(store: &S, k: &SessionKey) -> Option<Session> {
    store
        .load_fresh(k)
        .await
        .expect("load_fresh")
        .map(Arc::unwrap_or_clone)
}

pub(crate) async fn count<S: SessionStore + ?Sized>(store: &S) -> usize {
    store.count().await.expect("count")
}
