//! The claims of the tokens we issue: ID tokens (OIDC Core §2), access tokens
//! (RFC 9068 `at+jwt`), logout tokens (Back-Channel Logout 1.0 §2.4), and the
//! user claims shared with userinfo.

use serde_json::{json, Map, Value};

use crate::config::{Config, User};
use crate::keys::{self, KeySet};
use crate::random;

/// `name`, `preferred_username`, `email`, `email_verified` and the roles claim.
///
/// Every token and userinfo carry them whatever the scope: the relying parties
/// this provider serves always ask for `openid profile email`, and a test that
/// wants fewer claims can craft a token with [`crate::DevIdp::sign_jwt`].
pub(crate) fn user_claims(config: &Config, user: &User) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.sub));
    claims.insert("name".into(), json!(user.name));
    claims.insert("preferred_username".into(), json!(user.username));
    claims.insert("email".into(), json!(user.email));
    claims.insert("email_verified".into(), json!(user.email_verified));
    config.roles_claim.insert(&mut claims, &user.roles);
    for (name, value) in &user.extra {
        claims.insert(name.clone(), value.clone());
    }
    claims
}

/// What an access token is issued for.
pub(crate) struct AccessGrant<'a> {
    pub user: &'a User,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub auth_time: Option<u64>,
}

/// Signs an RFC 9068 access token; returns it with its `jti`.
pub(crate) fn access_token(
    config: &Config,
    issuer: &str,
    keys: &KeySet,
    grant: &AccessGrant<'_>,
    now: u64,
) -> (String, String) {
    let jti = random::token(16);
    let aud = config
        .access_token_audience
        .as_deref()
        .unwrap_or(grant.client_id);
    let mut claims = Map::new();
    config.roles_claim.insert(&mut claims, &grant.user.roles);
    claims.insert("iss".into(), json!(issuer));
    claims.insert("sub".into(), json!(grant.user.sub));
    claims.insert("aud".into(), json!(aud));
    claims.insert("client_id".into(), json!(grant.client_id));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + config.access_token_ttl.as_secs()));
    claims.insert("jti".into(), json!(jti));
    claims.insert("scope".into(), json!(grant.scope));
    if let Some(t) = grant.auth_time {
        claims.insert("auth_time".into(), json!(t));
    }
    // RFC 9068 §2.2.2: identity claims may appear; the proxy's bearer routes
    // read email and username from the token itself.
    claims.insert("email".into(), json!(grant.user.email));
    claims.insert("preferred_username".into(), json!(grant.user.username));
    (keys.sign_typed("at+jwt", &Value::Object(claims)), jti)
}

/// What an ID token is issued for.
pub(crate) struct IdGrant<'a> {
    pub user: &'a User,
    pub client_id: &'a str,
    /// `None` on refresh: OIDC Core §12.2 ties `nonce` to the authentication
    /// request, and a refreshed ID token does not answer one.
    pub nonce: Option<&'a str>,
    pub sid: &'a str,
    pub auth_time: u64,
    pub access_token: &'a str,
}

/// The claims of an ID token (unsigned: misbehaviours may alter them first).
pub(crate) fn id_token_claims(
    config: &Config,
    issuer: &str,
    grant: &IdGrant<'_>,
    now: u64,
) -> Value {
    let mut claims = user_claims(config, grant.user);
    claims.insert("iss".into(), json!(issuer));
    claims.insert("aud".into(), json!(grant.client_id));
    claims.insert("azp".into(), json!(grant.client_id));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + config.id_token_ttl.as_secs()));
    claims.insert("auth_time".into(), json!(grant.auth_time));
    claims.insert("sid".into(), json!(grant.sid));
    claims.insert("at_hash".into(), json!(keys::at_hash(grant.access_token)));
    claims.insert("jti".into(), json!(random::token(16)));
    if let Some(nonce) = grant.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    Value::Object(claims)
}

/// A signed logout token for `client_id` (Back-Channel Logout 1.0 §2.4): `sub`,
/// and `sid` when the logout ends a known session; never a `nonce`.
pub(crate) fn logout_token(
    issuer: &str,
    keys: &KeySet,
    client_id: &str,
    sub: &str,
    sid: Option<&str>,
    now: u64,
) -> String {
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(issuer));
    claims.insert("aud".into(), json!(client_id));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + 120));
    claims.insert("jti".into(), json!(random::token(16)));
    claims.insert("sub".into(), json!(sub));
    if let Some(sid) = sid {
        claims.insert("sid".into(), json!(sid));
    }
    claims.insert(
        "events".into(),
        json!({ "http://schemas.openid.net/event/backchannel-logout": {} }),
    );
    keys.sign_typed("logout+jwt", &Value::Object(claims))
}
