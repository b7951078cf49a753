//! The state shared by every connection: configuration, keys, the store, the
//! misbehaviour switch and the counters. Built once by [`crate::start`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::backchannel::Sender;
use crate::config::Config;
use crate::keys::KeySet;
use crate::misbehaviour::Switch;
use crate::store::Store;

/// Shared provider state (one per running provider, behind an `Arc`).
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    /// `http://{addr}`, no trailing slash.
    pub issuer: String,
    /// The provider-session cookie's name; it carries the port because browsers
    /// share cookies between ports of one host.
    pub cookie_name: String,
    pub keys: RwLock<KeySet>,
    pub store: Mutex<Store>,
    pub misbehaviour: Mutex<Switch>,
    pub counters: Counters,
    pub sender: Sender,
    /// Seconds added to the system clock ([`crate::DevIdp::advance_clock`]), so
    /// tests expire codes and tokens without sleeping.
    pub clock_offset: AtomicU64,
}

impl Shared {
    // A panic while holding one of these locks leaves consistent data behind (every
    // critical section is a few map operations), so poisoning is ignored.

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn keys(&self) -> RwLockReadGuard<'_, KeySet> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn keys_mut(&self) -> RwLockWriteGuard<'_, KeySet> {
        self.keys.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn misbehaviour(&self) -> MutexGuard<'_, Switch> {
        self.misbehaviour
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The provider's time: seconds since the Unix epoch (as JWT `iat`/`exp`
    /// want them), plus any offset a test added.
    pub(crate) fn now(&self) -> u64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        system + self.clock_offset.load(Ordering::SeqCst)
    }
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// A snapshot of what the provider has served, from [`crate::DevIdp::stats`].
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct Stats {
            $($(#[$doc])* pub $name: u64,)*
        }

        /// The live counters behind [`Stats`].
        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $($name: AtomicU64,)*
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> Stats {
                Stats { $($name: self.$name.load(Ordering::SeqCst),)* }
            }
        }
    };
}

counters! {
    /// `GET /.well-known/openid-configuration` requests.
    discovery_fetches,
    /// `GET /jwks` requests.
    jwks_fetches,
    /// `GET /authorize` requests (valid or not).
    authorize_requests,
    /// Codes issued (sign-ins and SSO together).
    codes_issued,
    /// `authorization_code` grant requests, successful or not.
    code_exchanges,
    /// `authorization_code` grant requests refused.
    code_exchange_failures,
    /// `refresh_token` grant requests, successful or not (so concurrent refreshes
    /// with one token all count, even those refused as reuse).
    refreshes,
    /// `refresh_token` grant requests refused.
    refresh_failures,
    /// `POST /revoke` requests that revoked something (a refresh token with its
    /// family, or one access token, JWT or opaque).
    revocations,
    /// `/userinfo` requests, successful or not.
    userinfo_calls,
    /// `/api/me` requests (the protected "third-party API"), successful or not.
    api_calls,
    /// `/api/me` requests refused with 401 (no, unknown, expired or revoked
    /// access token).
    api_failures,
    /// `GET /end_session` requests.
    end_sessions,
    /// Logout tokens delivered with a 2xx answer.
    backchannel_deliveries,
    /// Logout tokens not delivered (connection error, timeout or non-2xx).
    backchannel_failures,
}

impl Counters {
    /// Adds one to the counter chosen by `field`.
    pub(crate) fn bump(&self, field: impl Fn(&Self) -> &AtomicU64) {
        field(self).fetch_add(1, Ordering::SeqCst);
    }
}

// Field accessors for `Counters::bump`, e.g. `counters.bump(Counters::refreshes)`.
macro_rules! accessors {
    ($($name:ident),*) => {
        impl Counters {
            $(pub(crate) fn $name(&self) -> &AtomicU64 { &self.$name })*
        }
    };
}

accessors!(
    discovery_fetches,
    jwks_fetches,
    authorize_requests,
    codes_issued,
    code_exchanges,
    code_exchange_failures,
    refreshes,
    refresh_failures,
    revocations,
    userinfo_calls,
    api_calls,
    api_failures,
    end_sessions,
    backchannel_deliveries,
    backchannel_failures
);
