//! Access tokens as the resource endpoints see them (`/userinfo`, `/api/me`,
//! `/revoke`): issued in the client's [`AccessTokenFormat`], and read back
//! whatever their format. Signing the JWT kind is [`crate::tokens`]' job.

use serde_json::Value;

use crate::config::AccessTokenFormat;
use crate::keys::KeySet;
use crate::state::Shared;
use crate::store::OpaqueAccess;
use crate::tokens::{self, AccessGrant};

/// A live access token we issued: what it says, whatever its format.
#[derive(Clone, Debug)]
pub(crate) struct Access {
    pub sub: String,
    pub client_id: String,
    /// Space-separated, as granted (empty when a crafted JWT has none).
    pub scope: String,
    /// The revocation-list identifier; `None` for a crafted JWT without `jti`,
    /// which therefore cannot be revoked.
    pub jti: Option<String>,
}

/// Issues an access token for `grant` in `format`; returns it with its `jti`.
///
/// `keys` is the caller's read guard: the lock order is keys, then store.
pub(crate) fn issue(
    shared: &Shared,
    keys: &KeySet,
    grant: &AccessGrant<'_>,
    format: AccessTokenFormat,
    now: u64,
) -> (String, String) {
    match format {
        AccessTokenFormat::Jwt => {
            tokens::access_token(&shared.config, &shared.issuer, keys, grant, now)
        }
        AccessTokenFormat::Opaque => {
            let jti = crate::random::token(16);
            let access = OpaqueAccess {
                sub: grant.user.sub.clone(),
                client_id: grant.client_id.to_owned(),
                scope: grant.scope.to_owned(),
                expires_at: now + shared.config.access_token_ttl.as_secs(),
                jti: jti.clone(),
            };
            (shared.store().insert_opaque_access(access, now), jti)
        }
    }
}

/// What `token` says if and only if we issued it as an access token (a JWT we
/// signed for our issuer that names a `client_id`, or an opaque token we
/// remember), it has not expired and it was not revoked.
pub(crate) fn verify(shared: &Shared, token: &str) -> Option<Access> {
    let now = shared.now();
    let (access, expires_at) = opaque(shared, token).or_else(|| jwt(shared, token))?;
    let is_revoked = access
        .jti
        .as_deref()
        .is_some_and(|jti| shared.store().is_access_revoked(jti));
    (expires_at > now && !is_revoked).then_some(access)
}

fn opaque(shared: &Shared, token: &str) -> Option<(Access, u64)> {
    let store = shared.store();
    let a = store.opaque_access(token)?;
    let access = Access {
        sub: a.sub.clone(),
        client_id: a.client_id.clone(),
        scope: a.scope.clone(),
        jti: Some(a.jti.clone()),
    };
    Some((access, a.expires_at))
}

fn jwt(shared: &Shared, token: &str) -> Option<(Access, u64)> {
    let claims = shared.keys().verify(token)?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    if text("iss").as_deref() != Some(shared.issuer.as_str()) {
        return None;
    }
    let access = Access {
        sub: text("sub")?,
        client_id: text("client_id")?, // an ID token names none
        scope: text("scope").unwrap_or_default(),
        jti: text("jti"),
    };
    let expires_at = claims.get("exp").and_then(Value::as_u64)?;
    Some((access, expires_at))
}
