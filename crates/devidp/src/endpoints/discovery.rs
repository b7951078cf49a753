//! `GET /.well-known/openid-configuration` (OIDC Discovery 1.0 §3), the same
//! document at `GET /.well-known/oauth-authorization-server` (RFC 8414 §3), and
//! `GET /jwks`.

use http::{Response, StatusCode};
use serde_json::json;

use crate::http::{json, Body};
use crate::misbehaviour::Misbehaviour;
use crate::state::{Counters, Shared};

pub(crate) const PATH: &str = "/.well-known/openid-configuration";
/// RFC 8414 §3: where a plain OAuth 2.0 client looks for the same metadata.
pub(crate) const OAUTH_PATH: &str = "/.well-known/oauth-authorization-server";
pub(crate) const AUTHORIZE: &str = "/authorize";
pub(crate) const TOKEN: &str = "/token";
pub(crate) const USERINFO: &str = "/userinfo";
pub(crate) const JWKS: &str = "/jwks";
pub(crate) const END_SESSION: &str = "/end_session";
pub(crate) const REVOKE: &str = "/revoke";

/// The provider metadata, served at both well-known paths.
pub(crate) fn metadata(shared: &Shared) -> Response<Body> {
    shared.counters.bump(Counters::discovery_fetches);
    let base = &shared.issuer;
    let issuer = if shared
        .misbehaviour()
        .fire(Misbehaviour::DiscoveryIssuerMismatch, None)
    {
        format!("{base}/not-the-discovery-url")
    } else {
        base.clone()
    };
    let mut claims = vec![
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "azp",
        "sid",
        "at_hash",
        "name",
        "preferred_username",
        "email",
        "email_verified",
    ];
    let roles_claim = match &shared.config.roles_claim {
        crate::RolesClaim::TopLevel(name) => name.clone(),
        crate::RolesClaim::Nested(path) => path.first().cloned().unwrap_or_default(),
    };
    claims.push(&roles_claim);
    // Advertise only what the registered clients may use, so a relying party
    // that picks its method from discovery is tested on both methods.
    let auth_methods = auth_methods(&shared.config.clients);
    json(
        StatusCode::OK,
        &json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}{AUTHORIZE}"),
            "token_endpoint": format!("{base}{TOKEN}"),
            "userinfo_endpoint": format!("{base}{USERINFO}"),
            "jwks_uri": format!("{base}{JWKS}"),
            "end_session_endpoint": format!("{base}{END_SESSION}"),
            "revocation_endpoint": format!("{base}{REVOKE}"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "claims_supported": claims,
            "prompt_values_supported": ["none", "login"],
            "authorization_response_iss_parameter_supported":
                shared.config.authorization_response_iss_parameter_supported,
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
        }),
    )
}

/// The public signing keys, newest first (previous keys stay after a rotation).
pub(crate) fn jwks(shared: &Shared) -> Response<Body> {
    shared.counters.bump(Counters::jwks_fetches);
    let jwks = shared.keys().jwks();
    json(StatusCode::OK, &jwks)
}

fn auth_methods(clients: &[crate::Client]) -> Vec<&'static str> {
    let mut methods = Vec::new();
    let allows = |m: crate::ClientAuth| {
        clients
            .iter()
            .any(|c| c.auth_method == m || c.auth_method == crate::ClientAuth::Any)
    };
    if clients.is_empty() || allows(crate::ClientAuth::Basic) {
        methods.push("client_secret_basic");
    }
    if clients.is_empty() || allows(crate::ClientAuth::Post) {
        methods.push("client_secret_post");
    }
    methods
}
