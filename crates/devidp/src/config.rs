//! What the provider knows before it starts: its clients, its users, where roles go
//! and how long tokens live. Plain data with constructors; nothing here does I/O.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Everything [`crate::start`] needs.
///
/// Build one with [`Config::new`] (one client, the demo users) or
/// [`Config::default`] (no clients), then adjust the public fields.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen. Must be a loopback address; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The registered relying parties.
    pub clients: Vec<Client>,
    /// The users offered on the sign-in page.
    pub users: Vec<User>,
    /// Where the user's roles go in ID tokens, access tokens and userinfo.
    pub roles_claim: RolesClaim,
    /// Lifetime of access tokens (`exp - iat`, and `expires_in`).
    pub access_token_ttl: Duration,
    /// Lifetime of ID tokens.
    pub id_token_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_token_ttl: Duration,
    /// When true (the default), every refresh returns a new refresh token and the
    /// old one stops working; presenting a rotated token again revokes the whole
    /// family (RFC 9700 §4.14.2). When false, a refresh token stays valid until it
    /// expires or is revoked.
    pub rotate_refresh_tokens: bool,
    /// `aud` of issued access tokens; `None` (the default) means the client_id.
    pub access_token_audience: Option<String>,
    /// What discovery says as `authorization_response_iss_parameter_supported`
    /// (RFC 9207 §3); true by default. Only the advertisement changes: the
    /// authorization response still carries `iss`, so a test that removes it
    /// plays a provider that never sends one.
    pub authorization_response_iss_parameter_supported: bool,
}

impl Default for Config {
    /// Loopback on a free port, no clients, the [`demo_users`], `roles` as a
    /// top-level claim, 5-minute access and ID tokens, 1-day refresh tokens,
    /// rotation on, RFC 9207 `iss` advertised.
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            clients: Vec::new(),
            users: demo_users(),
            roles_claim: RolesClaim::default(),
            access_token_ttl: Duration::from_secs(300),
            id_token_ttl: Duration::from_secs(300),
            refresh_token_ttl: Duration::from_secs(24 * 3600),
            rotate_refresh_tokens: true,
            access_token_audience: None,
            authorization_response_iss_parameter_supported: true,
        }
    }
}

impl Config {
    /// The defaults of [`Config::default`] with one registered client.
    pub fn new(client: Client) -> Self {
        Self {
            clients: vec![client],
            ..Self::default()
        }
    }

    /// Returns the client registered under `id`, if any.
    pub(crate) fn client(&self, id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.id == id)
    }

    /// Returns the user whose `sub` is `sub`, if any.
    pub(crate) fn user(&self, sub: &str) -> Option<&User> {
        self.users.iter().find(|u| u.sub == sub)
    }
}

/// Where roles are written in every token and in userinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolesClaim {
    /// One top-level claim with this exact name, e.g. `roles` or
    /// `https://app.example.com/roles` (names may contain dots and slashes).
    TopLevel(String),
    /// Nested objects, e.g. `["realm_access", "roles"]` gives
    /// `{"realm_access": {"roles": [...]}}` (Keycloak's shape).
    Nested(Vec<String>),
}

impl Default for RolesClaim {
    fn default() -> Self {
        Self::TopLevel("roles".to_owned())
    }
}

impl RolesClaim {
    /// Writes `roles` into the claims object `claims` at this location.
    pub(crate) fn insert(
        &self,
        claims: &mut serde_json::Map<String, serde_json::Value>,
        roles: &[String],
    ) {
        let value = serde_json::Value::from(roles.to_vec());
        match self {
            Self::TopLevel(name) => {
                claims.insert(name.clone(), value);
            }
            Self::Nested(path) => insert_nested(claims, path, value),
        }
    }
}

/// Writes `value` at `path` inside `claims`, creating (or replacing non-object)
/// intermediate objects. An empty path writes nothing: there is no claim to name.
fn insert_nested(
    claims: &mut serde_json::Map<String, serde_json::Value>,
    path: &[String],
    value: serde_json::Value,
) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut object = claims;
    for name in parents {
        let entry = object
            .entry(name.clone())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if !entry.is_object() {
            *entry = serde_json::Value::Object(serde_json::Map::new());
        }
        let serde_json::Value::Object(next) = entry else {
            unreachable!("entry was made an object just above");
        };
        object = next;
    }
    object.insert(last.clone(), value);
}

/// A registered relying party.
#[derive(Clone, Debug)]
pub struct Client {
    /// `client_id`.
    pub id: String,
    /// `client_secret` (a confidential client; public clients are not supported).
    pub secret: String,
    /// Redirect URIs, matched exactly (no prefix or wildcard matching).
    pub redirect_uris: Vec<String>,
    /// Where `/end_session` may send the browser back to, matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// Where back-channel logout tokens are POSTed, if anywhere.
    pub backchannel_logout_uri: Option<String>,
    /// How the client must authenticate at `/token` and `/revoke`.
    pub auth_method: ClientAuth,
    /// When true (the default), an authorization request must ask for the
    /// `openid` scope, as an OpenID Connect relying party always does; a login
    /// that forgot it is refused with `invalid_scope`. When false the client is
    /// a plain OAuth 2.0 client (a "third-party API" client): any scope works,
    /// and only a request that does ask for `openid` gets an ID token.
    pub is_openid_required: bool,
    /// What the token endpoint issues as access tokens: RFC 9068 JWTs (the
    /// default) or opaque strings only this provider can read.
    pub access_token_format: AccessTokenFormat,
}

impl Client {
    /// An OpenID Connect client authenticating with `client_secret_basic`, one
    /// redirect URI, no logout URIs, JWT access tokens.
    pub fn new(
        id: impl Into<String>,
        secret: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            secret: secret.into(),
            redirect_uris: vec![redirect_uri.into()],
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
            auth_method: ClientAuth::Basic,
            is_openid_required: true,
            access_token_format: AccessTokenFormat::Jwt,
        }
    }
}

/// The form of the access tokens issued to a client. Both kinds work at
/// `/userinfo` and `/api/me`, expire after [`Config::access_token_ttl`] and are
/// revoked with their refresh-token family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccessTokenFormat {
    /// A signed RFC 9068 JWT (`typ: at+jwt`) a resource server can verify
    /// against the JWKS.
    #[default]
    Jwt,
    /// A random string that means nothing outside this provider, as GitHub's
    /// or Slack's tokens: the provider remembers its user, client, scope and
    /// expiry.
    Opaque,
}

/// Client authentication methods at the token and revocation endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic` only (RFC 6749 §2.3.1, HTTP Basic).
    Basic,
    /// `client_secret_post` only (credentials in the form body).
    Post,
    /// Either of the two (but never both in one request).
    Any,
}

/// A user that can be picked on the sign-in page. There are no passwords: this
/// is why the provider refuses to listen anywhere but loopback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// `sub`, stable and unique.
    pub sub: String,
    /// `preferred_username`.
    pub username: String,
    /// `name`.
    pub name: String,
    /// `email`.
    pub email: String,
    /// `email_verified`.
    pub email_verified: bool,
    /// Written at [`Config::roles_claim`].
    pub roles: Vec<String>,
    /// More claims for ID tokens, userinfo and access tokens (`department`,
    /// nested objects...), written as they are.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The demo users: alice (roles `admin`, `user`; `department` `eng`) and bob
/// (role `user`; `department` `sales`), both with verified `@example.com`
/// addresses. Their `sub` equals their username.
pub fn demo_users() -> Vec<User> {
    vec![
        User {
            sub: "alice".to_owned(),
            username: "alice".to_owned(),
            name: "Alice Liddell".to_owned(),
            email: "alice@example.com".to_owned(),
            email_verified: true,
            roles: vec!["admin".to_owned(), "user".to_owned()],
            extra: department("eng"),
        },
        User {
            sub: "bob".to_owned(),
            username: "bob".to_owned(),
            name: "Bob Builder".to_owned(),
            email: "bob@example.com".to_owned(),
            email_verified: true,
            roles: vec!["user".to_owned()],
            extra: department("sales"),
        },
    ]
}

fn department(name: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut extra = serde_json::Map::new();
    extra.insert("department".to_owned(), serde_json::Value::from(name));
    extra
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims_with(roles_claim: &RolesClaim) -> serde_json::Value {
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), json!("alice"));
        roles_claim.insert(&mut claims, &["admin".to_owned()]);
        serde_json::Value::Object(claims)
    }

    #[test]
    fn top_level_roles_claim_keeps_its_exact_name() {
        let claims = claims_with(&RolesClaim::TopLevel(
            "https://app.example.com/roles".into(),
        ));
        assert_eq!(claims["https://app.example.com/roles"], json!(["admin"]));
    }

    #[test]
    fn nested_roles_claim_builds_the_objects() {
        let claims = claims_with(&RolesClaim::Nested(vec![
            "realm_access".into(),
            "roles".into(),
        ]));
        assert_eq!(claims["realm_access"], json!({"roles": ["admin"]}));
    }
}
