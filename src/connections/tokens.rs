//! A link's access token for a request: the stored one while it is fresh, else
//! a refresh — one per link at a time in this process (a gate) and across
//! replicas (the store's lease), the rotated refresh token written back only
//! over the generation it replaced (SPEC §13, as §5's session refresh).

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::Mutex;

use super::client::{Client, ClientError, Grant};
use crate::clock::Clock;
use crate::session::{Link, LinkKey, LinkStore, SessionError, StoredLink};

/// A token expiring within this many seconds is refreshed before use.
pub const REFRESH_AHEAD_SECS: i64 = 60;
/// How long a replica may hold a link's refresh lease: longer than a call.
/// Longer than one token call (10 s) with room to spare; the endpoints are
/// resolved (discovery) before the lease is taken, so they never count here.
const LEASE_TTL: Duration = Duration::from_secs(30);
/// How long a request waits for another replica's refresh.
const LEASE_WAIT_LIMIT: Duration = Duration::from_secs(10);
const LEASE_POLL: Duration = Duration::from_millis(50);

/// One gate per link being refreshed in this process.
pub type Gates = DashMap<LinkKey, Arc<Mutex<()>>>;

/// Why there is no token to hand out.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Never linked, disconnected, or the third party refused a refresh (the
    /// link was deleted): the user must connect again.
    #[error("not connected")]
    NotLinked,
    /// The third party refused the refresh just now; the link was deleted, so
    /// the user must connect again (as [`TokenError::NotLinked`]).
    #[error("the service refused the refresh; link deleted")]
    Refused,
    /// The token expired and the third party cannot refresh it now; the link is
    /// kept.
    #[error("the service cannot refresh the token now: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] SessionError),
}

/// What a refresh did, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Fresh,
    Refreshed,
    /// The refresh failed but the stored token has not expired yet: used.
    Failed,
}

/// Where and when: what [`access_token`] needs besides the link.
pub struct Context<'a> {
    pub links: &'a dyn LinkStore,
    pub gates: &'a Gates,
    pub client: &'a Client,
    pub clock: &'a dyn Clock,
}

/// The link's current access token, refreshed first when it is due.
///
/// # Errors
/// [`TokenError::NotLinked`] when there is no (usable) link;
/// [`TokenError::Unavailable`] when the token is expired and cannot be
/// refreshed now; [`TokenError::Store`] when the store cannot answer.
pub async fn access_token(
    cx: &Context<'_>,
    key: &LinkKey,
) -> Result<(Arc<Link>, Outcome), TokenError> {
    let stored = cx
        .links
        .load_link(key)
        .await?
        .ok_or(TokenError::NotLinked)?;
    if !is_due(&stored.link, cx.clock.now()) {
        return Ok((stored.link, Outcome::Fresh));
    }
    if stored.link.refresh_token.is_none() {
        return unrefreshable(cx, key, stored).await;
    }
    // Discovery first, outside the lease: a slow one must not outlast it.
    if let Err(ClientError::Down(reason)) = cx.client.endpoints().await {
        return still_valid(&stored, cx.clock.now()).ok_or(TokenError::Unavailable(reason));
    }
    let gate = cx.gates.entry(key.clone()).or_default().clone();
    let outcome = {
        let _held = gate.lock().await;
        refresh_under_lease(cx, key).await
    };
    drop(gate);
    cx.gates.remove_if(key, |_, g| Arc::strong_count(g) == 1);
    outcome
}

/// Returns true if and only if the token expires within [`REFRESH_AHEAD_SECS`].
pub fn is_due(link: &Link, now: i64) -> bool {
    link.expires_at
        .is_some_and(|at| now >= at.saturating_sub(REFRESH_AHEAD_SECS))
}

/// A token without a refresh token: usable until it expires, then the link is
/// over (GitHub's OAuth apps hand out such tokens, with no expiry at all).
async fn unrefreshable(
    cx: &Context<'_>,
    key: &LinkKey,
    stored: StoredLink,
) -> Result<(Arc<Link>, Outcome), TokenError> {
    let expired = stored
        .link
        .expires_at
        .is_some_and(|at| cx.clock.now() >= at);
    if !expired {
        return Ok((stored.link, Outcome::Fresh));
    }
    cx.links.delete_link(key, Some(&stored)).await?;
    Err(TokenError::NotLinked)
}

/// Under this process's gate: takes the cross-replica lease (or waits for its
/// holder's result), then refreshes if the link is still due.
async fn refresh_under_lease(
    cx: &Context<'_>,
    key: &LinkKey,
) -> Result<(Arc<Link>, Outcome), TokenError> {
    let waited_since = tokio::time::Instant::now();
    loop {
        // Read again under the gate: the task before us may have refreshed.
        let stored = cx
            .links
            .load_link(key)
            .await?
            .ok_or(TokenError::NotLinked)?;
        if !is_due(&stored.link, cx.clock.now()) {
            return Ok((stored.link, Outcome::Fresh));
        }
        if let Some(lease) = cx.links.try_link_lease(key, LEASE_TTL).await? {
            // Read once more under the lease: another replica may have just
            // finished (its write precedes its release).
            let result = match cx.links.load_link(key).await? {
                Some(now) if is_due(&now.link, cx.clock.now()) => refresh_now(cx, key, now).await,
                Some(now) => Ok((now.link, Outcome::Fresh)),
                None => Err(TokenError::NotLinked),
            };
            if let Err(error) = cx.links.release_link_lease(&lease).await {
                tracing::debug!(%error, "link lease not released; it expires by itself");
            }
            return result;
        }
        if waited_since.elapsed() >= LEASE_WAIT_LIMIT {
            return still_valid(&stored, cx.clock.now()).ok_or_else(|| {
                TokenError::Unavailable("another replica's refresh is stuck".into())
            });
        }
        tokio::time::sleep(LEASE_POLL).await;
    }
}

/// The stored token while it has not expired yet (only the refresh-ahead
/// window has begun).
fn still_valid(stored: &StoredLink, now: i64) -> Option<(Arc<Link>, Outcome)> {
    let expired = stored.link.expires_at.is_some_and(|at| now >= at);
    (!expired).then(|| (stored.link.clone(), Outcome::Failed))
}

async fn refresh_now(
    cx: &Context<'_>,
    key: &LinkKey,
    stored: StoredLink,
) -> Result<(Arc<Link>, Outcome), TokenError> {
    let Some(refresh_token) = stored.link.refresh_token.as_deref() else {
        return unrefreshable(cx, key, stored).await;
    };
    match cx.client.refresh(refresh_token).await {
        Ok(grant) => {
            let issued = grant.refresh_token.clone();
            let renewed = renewed(&stored.link, grant, cx.clock.now());
            match cx.links.replace_link(key, &stored, &renewed).await? {
                Some(_) => Ok((Arc::new(renewed), Outcome::Refreshed)),
                // Disconnected or relinked meanwhile: what is there now counts.
                // Only when nothing is there is the grant just issued ended:
                // a newer link may share the grant (many services keep one
                // per client and user), and revoking would end it too.
                None => match cx.links.load_link(key).await? {
                    Some(now) => Ok((now.link, Outcome::Refreshed)),
                    None => {
                        if let Some(issued) = issued {
                            cx.client.revoke(&issued, "refresh_token").await;
                        }
                        Err(TokenError::NotLinked)
                    }
                },
            }
        }
        Err(ClientError::Refused { status, error }) => {
            tracing::info!(connection = cx.client.name(), status, %error, "refresh refused: link deleted");
            cx.links.delete_link(key, Some(&stored)).await?;
            Err(TokenError::Refused)
        }
        Err(ClientError::Down(reason)) => {
            tracing::warn!(connection = cx.client.name(), %reason, "refresh failed: link kept");
            still_valid(&stored, cx.clock.now()).ok_or(TokenError::Unavailable(reason))
        }
    }
}

/// The link after a refresh: a service that does not rotate refresh tokens
/// leaves the old one in force, and one that does not restate the scope grants
/// the same.
pub fn renewed(old: &Link, grant: Grant, now: i64) -> Link {
    Link {
        access_token: grant.access_token,
        refresh_token: grant.refresh_token.or_else(|| old.refresh_token.clone()),
        expires_at: grant.expires_in.map(|secs| now.saturating_add(secs)),
        scopes: grant.scope.unwrap_or_else(|| old.scopes.clone()),
        linked_at: old.linked_at,
    }
}

/// A new link from the code exchange.
pub fn linked(grant: Grant, asked_scopes: &[String], now: i64) -> Link {
    Link {
        access_token: grant.access_token,
        refresh_token: grant.refresh_token,
        expires_at: grant.expires_in.map(|secs| now.saturating_add(secs)),
        scopes: grant.scope.unwrap_or_else(|| asked_scopes.to_vec()),
        linked_at: now,
    }
}
