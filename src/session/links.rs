//! Connected-account links (SPEC §13): a user's tokens at a third-party OAuth 2.0
//! service, kept beside the sessions by the same stores.
//!
//! A link belongs to the user — the identity (provider, `sub`) — and to one
//! connection, not to a session: logging out and in again finds it. Links have no
//! ttl; they end when the user disconnects or when the third party refuses a
//! refresh.
//!
//! Every stored link carries a *generation*, a number the store never hands out
//! twice (not even after a delete and a new link under the same key). A refresh
//! writes its result, or deletes a link the third party refused, only if the
//! generation is still the one it read: a refresh that lost its lease to another
//! replica, or raced a disconnect and a new link, cannot overwrite the newer
//! tokens or delete the new link.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{subject_key, BoxFuture, SessionError};

/// Which link: a user (provider, `sub`) and a connection name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LinkKey {
    name: String,
}

impl LinkKey {
    /// The link of `provider`'s user `sub` at `connection`.
    pub fn new(provider: &str, sub: &str, connection: &str) -> Self {
        // U+001F again: a connection name (config) holds none, so the name
        // splits one way, as `subject_key` does for (provider, sub).
        LinkKey {
            name: format!("{}\u{1f}{connection}", subject_key(provider, sub)),
        }
    }

    /// The text a store files this link under (an HMAC of it in Redis).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The tokens of one link. Never leaves the proxy but as an access token in a
/// header, or through the admin token endpoint.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Unix seconds at which `access_token` expires, when the third party said.
    pub expires_at: Option<i64>,
    /// The scopes granted, as the third party reported them (else as asked).
    pub scopes: Vec<String>,
    /// Unix seconds: when the user linked the account.
    pub linked_at: i64,
}

impl std::fmt::Debug for Link {
    // Tokens stay out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .field("linked_at", &self.linked_at)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

/// A link as loaded, with the generation a conditional write must name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLink {
    pub link: Arc<Link>,
    pub generation: u64,
    /// Which configured secret's index key names it in Redis (0 = the current
    /// one); a write under an older one moves it under the current one.
    pub(crate) slot: usize,
}

/// The right to refresh one link across replicas (see [`LinkStore::try_link_lease`]).
#[derive(Clone, Debug)]
pub struct LinkLease {
    key: LinkKey,
    /// `None`: a lease of a store of one process, which costs nothing.
    token: Option<String>,
}

impl LinkLease {
    pub fn local(key: LinkKey) -> Self {
        LinkLease { key, token: None }
    }

    pub fn shared(key: LinkKey, token: String) -> Self {
        LinkLease {
            key,
            token: Some(token),
        }
    }

    pub fn key(&self) -> &LinkKey {
        &self.key
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}

/// Where links live: the memory store and Redis, held to one suite
/// ([`conformance`]). Every method is cancel-safe.
pub trait LinkStore: Send + Sync + 'static {
    /// The link under `key`, or `None`.
    fn load_link<'a>(
        &'a self,
        key: &'a LinkKey,
    ) -> BoxFuture<'a, Result<Option<StoredLink>, SessionError>>;

    /// Stores `link` under `key` whatever is there (a new link at the callback);
    /// returns its generation.
    fn put_link<'a>(
        &'a self,
        key: &'a LinkKey,
        link: &'a Link,
    ) -> BoxFuture<'a, Result<u64, SessionError>>;

    /// Replaces the link `loaded` was read as, only if it is still that
    /// generation; returns the new generation, or `None` (nothing written) when
    /// it changed or went.
    fn replace_link<'a>(
        &'a self,
        key: &'a LinkKey,
        loaded: &'a StoredLink,
        link: &'a Link,
    ) -> BoxFuture<'a, Result<Option<u64>, SessionError>>;

    /// Deletes the link under `key`: only the generation `loaded` was read as
    /// when given, else whatever is there. Returns whether it deleted one.
    fn delete_link<'a>(
        &'a self,
        key: &'a LinkKey,
        loaded: Option<&'a StoredLink>,
    ) -> BoxFuture<'a, Result<bool, SessionError>>;

    /// Takes the refresh lease of `key` for `ttl`, or `None` when another replica
    /// holds it. A store of one process grants every lease (the caller's
    /// in-process gate already lets one refresh run at a time).
    fn try_link_lease<'a>(
        &'a self,
        key: &'a LinkKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<LinkLease>, SessionError>> {
        let _ = ttl;
        Box::pin(std::future::ready(Ok(Some(LinkLease::local(key.clone())))))
    }

    /// Gives a lease back, if it is still ours.
    fn release_link_lease<'a>(
        &'a self,
        lease: &'a LinkLease,
    ) -> BoxFuture<'a, Result<(), SessionError>> {
        let _ = lease;
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
pub(crate) mod conformance {
    //! The behaviour every [`LinkStore`] must show. A store's tests call
    //! [`link_store_conformance!`] with an expression that builds an empty store
    //! (an `async` block); keys carry a random suffix, so cases may share a server.

    use super::*;
    use crate::session::conformance::unique;

    macro_rules! link_store_conformance {
        ($factory:expr) => {
            $crate::session::links::conformance::link_store_conformance!(
                $factory;
                a_put_link_loads_back_equal,
                an_absent_link_loads_as_none,
                links_of_two_users_or_connections_are_apart,
                a_replace_with_the_loaded_generation_writes,
                a_replace_after_another_write_writes_nothing,
                a_replace_after_delete_and_relink_writes_nothing,
                a_conditional_delete_spares_a_newer_link,
                an_unconditional_delete_removes_and_reports,
            );
        };
        ($factory:expr; $($case:ident),+ $(,)?) => {
            $(
                #[tokio::test]
                async fn $case() {
                    let store = $factory.await;
                    $crate::session::links::conformance::$case(&store).await;
                }
            )+
        };
    }

    pub(crate) use link_store_conformance;

    pub(crate) fn link(access: &str) -> Link {
        Link {
            access_token: access.to_owned(),
            refresh_token: Some(format!("refresh-of-{access}")),
            expires_at: Some(1_700_000_600),
            scopes: vec!["repo".into(), "read:user".into()],
            linked_at: 1_700_000_000,
        }
    }

    pub(crate) fn link_key() -> LinkKey {
        LinkKey::new("default", &unique("sub"), "github")
    }

    async fn load(store: &dyn LinkStore, key: &LinkKey) -> Option<StoredLink> {
        store.load_link(key).await.expect("load_link")
    }

    pub(crate) async fn a_put_link_loads_back_equal(store: &dyn LinkStore) {
        let key = link_key();
        let original = link("a1");
        let generation = store.put_link(&key, &original).await.expect("put");
        let loaded = load(store, &key).await.expect("stored");
        assert_eq!(*loaded.link, original);
        assert_eq!(loaded.generation, generation);
        let minimal = Link {
            refresh_token: None,
            expires_at: None,
            scopes: Vec::new(),
            ..link("a2")
        };
        store.put_link(&key, &minimal).await.expect("put");
        assert_eq!(*load(store, &key).await.expect("stored").link, minimal);
    }

    pub(crate) async fn an_absent_link_loads_as_none(store: &dyn LinkStore) {
        assert_eq!(load(store, &link_key()).await, None);
    }

    pub(crate) async fn links_of_two_users_or_connections_are_apart(store: &dyn LinkStore) {
        let sub = unique("sub");
        let keys = [
            LinkKey::new("default", &sub, "github"),
            LinkKey::new("default", &sub, "slack"),
            LinkKey::new("partners", &sub, "github"),
            LinkKey::new("default", &unique("sub"), "github"),
        ];
        for (i, key) in keys.iter().enumerate() {
            store
                .put_link(key, &link(&format!("t{i}")))
                .await
                .expect("put");
        }
        for (i, key) in keys.iter().enumerate() {
            let loaded = load(store, key).await.expect("stored");
            assert_eq!(loaded.link.access_token, format!("t{i}"), "{key:?}");
        }
        assert!(store.delete_link(&keys[0], None).await.expect("delete"));
        assert_eq!(load(store, &keys[0]).await, None);
        assert!(load(store, &keys[1]).await.is_some());
    }

    pub(crate) async fn a_replace_with_the_loaded_generation_writes(store: &dyn LinkStore) {
        let key = link_key();
        store.put_link(&key, &link("a1")).await.expect("put");
        let loaded = load(store, &key).await.expect("stored");
        let refreshed = link("a2");
        let generation = store
            .replace_link(&key, &loaded, &refreshed)
            .await
            .expect("replace")
            .expect("the generation was current");
        assert_ne!(generation, loaded.generation);
        let now = load(store, &key).await.expect("stored");
        assert_eq!((*now.link).clone(), refreshed);
        assert_eq!(now.generation, generation);
    }

    /// Two refreshes read the same generation (one lost its lease): the second
    /// write must not bring back the refresh token the first rotated out.
    pub(crate) async fn a_replace_after_another_write_writes_nothing(store: &dyn LinkStore) {
        let key = link_key();
        store.put_link(&key, &link("a1")).await.expect("put");
        let first = load(store, &key).await.expect("stored");
        let second = first.clone();
        store
            .replace_link(&key, &first, &link("a2"))
            .await
            .expect("replace")
            .expect("first writer wins");
        let late = store
            .replace_link(&key, &second, &link("stale"))
            .await
            .expect("replace");
        assert_eq!(late, None);
        assert_eq!(
            load(store, &key).await.expect("stored").link.access_token,
            "a2"
        );
    }

    pub(crate) async fn a_replace_after_delete_and_relink_writes_nothing(store: &dyn LinkStore) {
        let key = link_key();
        store.put_link(&key, &link("a1")).await.expect("put");
        let before = load(store, &key).await.expect("stored");
        assert!(store.delete_link(&key, None).await.expect("delete"));
        assert_eq!(
            store
                .replace_link(&key, &before, &link("stale"))
                .await
                .expect("replace"),
            None,
            "a refresh must not bring back a disconnected link"
        );
        assert_eq!(load(store, &key).await, None);
        store.put_link(&key, &link("new")).await.expect("relink");
        assert_eq!(
            store
                .replace_link(&key, &before, &link("stale"))
                .await
                .expect("replace"),
            None,
            "a generation is never handed out twice"
        );
        assert_eq!(
            load(store, &key).await.expect("stored").link.access_token,
            "new"
        );
    }

    pub(crate) async fn a_conditional_delete_spares_a_newer_link(store: &dyn LinkStore) {
        let key = link_key();
        store.put_link(&key, &link("a1")).await.expect("put");
        let old = load(store, &key).await.expect("stored");
        store.put_link(&key, &link("a2")).await.expect("relink");
        // A refresh of the old link was refused: the new one stays.
        assert!(!store.delete_link(&key, Some(&old)).await.expect("delete"));
        let current = load(store, &key).await.expect("the new link stays");
        assert_eq!(current.link.access_token, "a2");
        assert!(store
            .delete_link(&key, Some(&current))
            .await
            .expect("delete"));
        assert_eq!(load(store, &key).await, None);
    }

    pub(crate) async fn an_unconditional_delete_removes_and_reports(store: &dyn LinkStore) {
        let key = link_key();
        assert!(!store.delete_link(&key, None).await.expect("delete"));
        store.put_link(&key, &link("a1")).await.expect("put");
        assert!(store.delete_link(&key, None).await.expect("delete"));
        assert_eq!(load(store, &key).await, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_token() {
        let shown = format!("{:?}", conformance::link("secret-access"));
        assert!(!shown.contains("secret-access"), "{shown}");
    }

    #[test]
    fn link_keys_never_confuse_two_links() {
        let keys = [
            LinkKey::new("default", "alice", "github"),
            LinkKey::new("default", "alice\u{1f}github", ""),
            LinkKey::new("partners", "alice", "github"),
            LinkKey::new("default", "alice", "slack"),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
