//! `POST /token`: the `authorization_code` grant (RFC 6749 §4.1.3, RFC 7636 §4.6,
//! OIDC Core §3.1.3) and the `refresh_token` grant (RFC 6749 §6, OIDC Core §12).
//!
//! A refresh token is issued with every code exchange, whatever the scope: the
//! proxy's refresh logic must be testable without asking for `offline_access`.
//! An ID token is issued only when the grant's scope contains `openid`, so a
//! plain OAuth 2.0 client gets none.

use aws_lc_rs::{constant_time, digest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::client_auth::{authenticate, claimed_client_id};
use crate::access;
use crate::config::{Client, User};
use crate::http::{json, oauth_error, unavailable, Body, Params};
use crate::misbehaviour::{self, Misbehaviour};
use crate::state::{Counters, Shared};
use crate::store::Family;
use crate::tokens::{self, AccessGrant, IdGrant};

/// Handles one token request.
pub(crate) async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let (headers, params) = match Params::from_form(req).await {
        Ok(p) => p,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string()),
    };
    let claimed = claimed_client_id(&headers, &params);
    if shared
        .misbehaviour()
        .fire(Misbehaviour::ServiceUnavailable, claimed.as_deref())
    {
        return unavailable();
    }
    if shared
        .misbehaviour()
        .fire(Misbehaviour::TokenEndpointError, claimed.as_deref())
    {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "misbehaving on purpose",
        );
    }
    let client = match authenticate(&shared.config, &headers, &params) {
        Ok(c) => c,
        Err(e) => return e.response(),
    };
    let grant = params.get("grant_type");
    if grant == Some("refresh_token")
        && shared
            .misbehaviour()
            .fire(Misbehaviour::SlowRefresh, Some(&client.id))
    {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    match grant {
        Some("authorization_code") => counted(
            shared,
            Counters::code_exchanges,
            Counters::code_exchange_failures,
            || code_grant(shared, client, &params),
        ),
        Some("refresh_token") => counted(
            shared,
            Counters::refreshes,
            Counters::refresh_failures,
            || refresh_grant(shared, client, &params),
        ),
        Some(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type not supported",
        ),
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        ),
    }
}

/// Runs a grant, counting the attempt and, when refused, the failure.
fn counted(
    shared: &Shared,
    attempts: fn(&Counters) -> &std::sync::atomic::AtomicU64,
    failures: fn(&Counters) -> &std::sync::atomic::AtomicU64,
    grant: impl FnOnce() -> Result<serde_json::Value, Refusal>,
) -> Response<Body> {
    shared.counters.bump(attempts);
    match grant() {
        Ok(body) => json(StatusCode::OK, &body),
        Err(refusal) => {
            shared.counters.bump(failures);
            tracing::debug!(
                error = refusal.error,
                reason = refusal.description,
                "token request refused"
            );
            oauth_error(StatusCode::BAD_REQUEST, refusal.error, refusal.description)
        }
    }
}

/// An RFC 6749 §5.2 refusal (always 400 here; client failures are handled earlier).
#[derive(Debug)]
struct Refusal {
    error: &'static str,
    description: &'static str,
}

fn invalid_grant(description: &'static str) -> Refusal {
    Refusal {
        error: "invalid_grant",
        description,
    }
}

fn invalid_request(description: &'static str) -> Refusal {
    Refusal {
        error: "invalid_request",
        description,
    }
}

/// `grant_type=authorization_code`.
fn code_grant(
    shared: &Shared,
    client: &Client,
    params: &Params,
) -> Result<serde_json::Value, Refusal> {
    let code = params
        .get("code")
        .ok_or(invalid_request("code is required"))?;
    let now = shared.now();
    let grant = shared.store().redeem_code(code, now).map_err(|refusal| {
        tracing::info!(?refusal, "authorization code refused");
        invalid_grant("authorization code is invalid, expired or already used")
    })?;
    if grant.client_id != client.id {
        return Err(invalid_grant(
            "authorization code was issued to another client",
        ));
    }
    if params.get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return Err(invalid_grant(
            "redirect_uri differs from the authorization request",
        ));
    }
    let verifier = params
        .get("code_verifier")
        .ok_or(invalid_grant("code_verifier is required"))?;
    if !pkce_matches(verifier, &grant.code_challenge) {
        return Err(invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    let user = shared
        .config
        .user(&grant.sub)
        .ok_or(invalid_grant("the user no longer exists"))?;
    let family = Family {
        client_id: client.id.clone(),
        sub: grant.sub.clone(),
        sid: grant.sid.clone(),
        scope: grant.scope.clone(),
        auth_time: grant.auth_time,
        is_revoked: false,
        access_jtis: Vec::new(),
    };
    let refresh_expires = now + shared.config.refresh_token_ttl.as_secs();
    let refresh_token = shared
        .store()
        .open_family(&grant.family, family, refresh_expires);
    Ok(issue(
        shared,
        Issue {
            user,
            client,
            scope: &grant.scope,
            family_id: &grant.family,
            nonce: grant.nonce.as_deref(),
            sid: &grant.sid,
            auth_time: grant.auth_time,
            refresh_token: &refresh_token,
        },
        now,
    ))
}

/// `grant_type=refresh_token`, with rotation and reuse detection (RFC 9700 §4.14.2).
fn refresh_grant(
    shared: &Shared,
    client: &Client,
    params: &Params,
) -> Result<serde_json::Value, Refusal> {
    if shared
        .misbehaviour()
        .fire(Misbehaviour::RefreshFails, Some(&client.id))
    {
        return Err(invalid_grant("refresh refused on purpose"));
    }
    let token = params
        .get("refresh_token")
        .ok_or(invalid_request("refresh_token is required"))?;
    let now = shared.now();
    let expires = now + shared.config.refresh_token_ttl.as_secs();
    let rotate = shared.config.rotate_refresh_tokens;
    let refreshed = shared
        .store()
        .refresh(token, &client.id, now, rotate, expires)
        .map_err(|refusal| {
            tracing::info!(?refusal, "refresh token refused");
            invalid_grant("refresh token is invalid, expired, revoked or already used")
        })?;
    let family = &refreshed.family;
    // A narrower scope may be asked for, never a wider one (RFC 6749 §6).
    let scope = match params.get("scope") {
        Some(asked)
            if !asked
                .split(' ')
                .all(|s| family.scope.split(' ').any(|g| g == s)) =>
        {
            return Err(Refusal {
                error: "invalid_scope",
                description: "scope exceeds the original grant",
            })
        }
        Some(asked) => asked.to_owned(),
        None => family.scope.clone(),
    };
    let user = shared
        .config
        .user(&family.sub)
        .ok_or(invalid_grant("the user no longer exists"))?;
    Ok(issue(
        shared,
        Issue {
            user,
            client,
            scope: &scope,
            family_id: &refreshed.family_id,
            nonce: None,
            sid: &family.sid,
            auth_time: family.auth_time,
            refresh_token: &refreshed.refresh_token,
        },
        now,
    ))
}

/// What one successful token response is made from.
struct Issue<'a> {
    user: &'a User,
    client: &'a Client,
    /// Space-separated, possibly empty.
    scope: &'a str,
    family_id: &'a str,
    nonce: Option<&'a str>,
    sid: &'a str,
    auth_time: u64,
    refresh_token: &'a str,
}

/// Issues the access token (in the client's format) and, when the scope
/// contains `openid`, the ID token; builds the token response (RFC 6749 §5.1).
fn issue(shared: &Shared, i: Issue<'_>, now: u64) -> serde_json::Value {
    let client_id = i.client.id.as_str();
    let is_openid = i.scope.split(' ').any(|s| s == "openid");
    // Fired only when an ID token is made, so a once-defect waits for one.
    let defect = is_openid
        .then(|| shared.misbehaviour().fire_id_token_defect(client_id))
        .flatten();
    let (access_token, id_token) = {
        let keys = shared.keys();
        let access = AccessGrant {
            user: i.user,
            client_id,
            scope: i.scope,
            auth_time: Some(i.auth_time),
        };
        let (access_token, jti) =
            access::issue(shared, &keys, &access, i.client.access_token_format, now);
        // Lock order is keys, then store; never the reverse.
        shared.store().record_access(i.family_id, &jti);
        let id_token = is_openid.then(|| {
            let claims = tokens::id_token_claims(
                &shared.config,
                &shared.issuer,
                &IdGrant {
                    user: i.user,
                    client_id,
                    nonce: i.nonce,
                    sid: i.sid,
                    auth_time: i.auth_time,
                    access_token: &access_token,
                },
                now,
            );
            misbehaviour::sign_id_token(&keys, claims, defect, now)
        });
        (access_token, id_token)
    };
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": shared.config.access_token_ttl.as_secs(),
        "refresh_token": i.refresh_token,
    });
    if let Some(id_token) = id_token {
        body["id_token"] = json!(id_token);
    }
    if !i.scope.is_empty() {
        body["scope"] = json!(i.scope);
    }
    body
}

/// RFC 7636 §4.6 for S256: `BASE64URL(SHA256(verifier)) == challenge`, with the
/// verifier's syntax checked (43–128 unreserved characters, §4.1).
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let is_unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(is_unreserved) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_accepts_the_rfc_7636_example_and_refuses_others() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            challenge
        ));
        assert!(!pkce_matches("short", challenge));
    }
}
