//! Deliberate defects, for relying-party tests in the style of the OpenID
//! certification suite: each one makes the provider wrong in exactly one way, so a
//! test can show that the proxy notices.
//!
//! # Security
//! These exist to be refused. Nothing here is reachable over HTTP: only the
//! in-process [`crate::DevIdp`] handle can switch them on.

use serde_json::{json, Value};

use crate::keys::{self, KeySet};

/// One way to misbehave. ID-token defects apply to the ID tokens returned by the
/// token endpoint (code exchange and refresh); the others to the endpoint named.
///
/// Switched on with [`crate::DevIdp::set_misbehaviour`] it affects every client;
/// with [`crate::DevIdp::set_misbehaviour_for`] only requests of one client
/// (the client a token or revocation request names, the client a bearer token
/// was issued to; discovery names none, so a scoped defect never fires there).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Misbehaviour {
    /// ID token `iss` is not the issuer.
    WrongIssuer,
    /// ID token `aud` is another client.
    WrongAudience,
    /// ID token `aud` is `[client, other]` and there is no `azp`.
    ExtraAudienceWithoutAzp,
    /// ID token `aud` is `[client, "https://evil.example"]` with `azp` = the
    /// client: well-formed, but names an audience the client may not trust
    /// (OIDC Core §3.1.3.7 step 3).
    ExtraAudienceWithAzp,
    /// ID token `azp` is another client (`aud` is right).
    WrongAzp,
    /// ID token expired an hour ago.
    Expired,
    /// ID token `iat` is a day in the future.
    IssuedInFuture,
    /// ID token has no `iat` (OpenID RP certification `rp-id_token-iat`).
    MissingIat,
    /// ID token has no `sub` (OpenID RP certification `rp-id_token-sub`).
    MissingSub,
    /// ID token payload names `sub` twice: the user's, then `"admin"` appended
    /// at the end of the object, properly signed. A last-wins parser reads
    /// `admin`, a first-wins one the user (RFC 7519 §4 lets a verifier refuse).
    DuplicateSub,
    /// ID token payload names `roles` twice, the second `["admin"]`: a claim
    /// only the relying party reads (its JWT library checks `sub` itself).
    DuplicateRoles,
    /// ID token has no `nonce` although the request had one.
    MissingNonce,
    /// ID token `nonce` differs from the request's.
    WrongNonce,
    /// ID token is valid except that the last byte of its signature is flipped.
    BadSignature,
    /// ID token is unsigned: `alg: none`, empty signature.
    AlgNone,
    /// ID token is HS256, keyed with the PEM of the provider's RSA public key
    /// (the algorithm-confusion attack).
    HmacWithPublicKey,
    /// ID token is properly signed but names a `kid` absent from the JWKS.
    UnknownKid,
    /// ID token is properly signed but has no `kid`.
    NoKid,
    /// Userinfo returns a `sub` different from the ID token's.
    UserinfoSubMismatch,
    /// The token endpoint answers 500 `server_error` (OAuth JSON).
    TokenEndpointError,
    /// The provider is down behind its load balancer: the token and revocation
    /// endpoints answer 503 with `Retry-After` and an HTML body, not OAuth
    /// JSON, without authenticating the client. For "the third party is down"
    /// (SPEC §13: 502, link kept); to refuse the connection outright, use
    /// [`crate::DevIdp::shutdown`].
    ServiceUnavailable,
    /// Discovery's `issuer` differs from the URL it was fetched from.
    DiscoveryIssuerMismatch,
    /// Every refresh is refused with 400 `invalid_grant`, as when the user
    /// revoked the grant at the provider (SPEC §13: the link is deleted). The
    /// refresh token itself stays valid, so clearing the defect heals it.
    RefreshFails,
    /// A refresh is answered (properly) only after one second.
    SlowRefresh,
}

impl Misbehaviour {
    /// Returns true if and only if this defect is applied to ID tokens.
    pub(crate) fn is_id_token_defect(self) -> bool {
        !matches!(
            self,
            Self::UserinfoSubMismatch
                | Self::TokenEndpointError
                | Self::ServiceUnavailable
                | Self::DiscoveryIssuerMismatch
                | Self::RefreshFails
                | Self::SlowRefresh
        )
    }
}

/// Whether a defect stays on or applies once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Duration {
    Once,
    UntilCleared,
}

/// A switched-on defect.
#[derive(Debug)]
struct Active {
    misbehaviour: Misbehaviour,
    duration: Duration,
    /// When set, only requests of this client are affected.
    client_id: Option<String>,
}

/// The defect currently switched on, if any.
#[derive(Debug, Default)]
pub(crate) struct Switch {
    active: Option<Active>,
}

impl Switch {
    /// Turns `m` on until [`Switch::clear`], for every client or only `client_id`.
    pub(crate) fn set(&mut self, m: Misbehaviour, client_id: Option<&str>) {
        self.active = Some(Active {
            misbehaviour: m,
            duration: Duration::UntilCleared,
            client_id: client_id.map(str::to_owned),
        });
    }

    /// Turns `m` on for the next response it affects only.
    pub(crate) fn set_once(&mut self, m: Misbehaviour) {
        self.active = Some(Active {
            misbehaviour: m,
            duration: Duration::Once,
            client_id: None,
        });
    }

    pub(crate) fn clear(&mut self) {
        self.active = None;
    }

    /// Returns true if and only if `m` is on for a request of `client_id`
    /// (`None`: the request names no client, so only an unscoped defect
    /// applies), consuming it when it was set once.
    pub(crate) fn fire(&mut self, m: Misbehaviour, client_id: Option<&str>) -> bool {
        self.fire_if(client_id, |active| active == m).is_some()
    }

    /// The ID-token defect to apply now to a token for `client_id`, if any
    /// (consumed when set once).
    pub(crate) fn fire_id_token_defect(&mut self, client_id: &str) -> Option<Misbehaviour> {
        self.fire_if(Some(client_id), Misbehaviour::is_id_token_defect)
    }

    fn fire_if(
        &mut self,
        client_id: Option<&str>,
        applies: impl Fn(Misbehaviour) -> bool,
    ) -> Option<Misbehaviour> {
        let active = self.active.as_ref()?;
        let is_for_this_client = active
            .client_id
            .as_deref()
            .is_none_or(|scoped| Some(scoped) == client_id);
        if !is_for_this_client || !applies(active.misbehaviour) {
            return None;
        }
        let m = active.misbehaviour;
        if active.duration == Duration::Once {
            self.active = None;
        }
        Some(m)
    }
}

/// Signs the ID token `claims`, applying `defect` if there is one.
///
/// Claim defects are applied before signing, so the signature is valid and the
/// only fault is the one named.
pub(crate) fn sign_id_token(
    keys: &KeySet,
    mut claims: Value,
    defect: Option<Misbehaviour>,
    now: u64,
) -> String {
    let Some(defect) = defect else {
        return keys.sign_typed("JWT", &claims);
    };
    let kid = keys.current().kid().to_owned();
    let claims_obj = claims.as_object_mut();
    let Some(c) = claims_obj else {
        return keys.sign_typed("JWT", &claims);
    };
    match defect {
        Misbehaviour::WrongIssuer => {
            c.insert("iss".into(), json!("https://wrong-issuer.example.com"));
        }
        Misbehaviour::WrongAudience => {
            c.insert("aud".into(), json!("some-other-client"));
        }
        Misbehaviour::ExtraAudienceWithoutAzp => {
            let aud = c.get("aud").cloned().unwrap_or(Value::Null);
            c.insert("aud".into(), json!([aud, "some-other-client"]));
            c.remove("azp");
        }
        Misbehaviour::ExtraAudienceWithAzp => {
            let aud = c.get("aud").cloned().unwrap_or(Value::Null);
            c.insert("azp".into(), aud.clone());
            c.insert("aud".into(), json!([aud, "https://evil.example"]));
        }
        Misbehaviour::WrongAzp => {
            c.insert("azp".into(), json!("some-other-client"));
        }
        Misbehaviour::Expired => {
            c.insert("iat".into(), json!(now.saturating_sub(7200)));
            c.insert("exp".into(), json!(now.saturating_sub(3600)));
        }
        Misbehaviour::IssuedInFuture => {
            c.insert("iat".into(), json!(now + 86_400));
            c.insert("exp".into(), json!(now + 2 * 86_400));
        }
        Misbehaviour::MissingIat => {
            c.remove("iat");
        }
        Misbehaviour::MissingSub => {
            c.remove("sub");
        }
        Misbehaviour::DuplicateSub => {
            let header = json!({ "alg": "RS256", "typ": "JWT", "kid": kid });
            let payload = with_second_member(&claims, "sub", &json!("admin"));
            return keys.sign_raw(&header.to_string(), &payload);
        }
        Misbehaviour::DuplicateRoles => {
            let header = json!({ "alg": "RS256", "typ": "JWT", "kid": kid });
            let payload = with_second_member(&claims, "roles", &json!(["admin"]));
            return keys.sign_raw(&header.to_string(), &payload);
        }
        Misbehaviour::MissingNonce => {
            c.remove("nonce");
        }
        Misbehaviour::WrongNonce => {
            c.insert("nonce".into(), json!("not-the-nonce-you-sent"));
        }
        Misbehaviour::BadSignature => {
            return keys::corrupt_signature(&keys.sign_typed("JWT", &claims))
        }
        Misbehaviour::AlgNone => return keys::unsigned(&claims),
        Misbehaviour::HmacWithPublicKey => {
            let header = json!({ "alg": "HS256", "typ": "JWT", "kid": kid });
            return keys::sign_hs256(&header, &claims, keys.current().public_pem().as_bytes());
        }
        Misbehaviour::UnknownKid => {
            return keys.sign(&json!({ "typ": "JWT", "kid": "no-such-key" }), &claims);
        }
        Misbehaviour::NoKid => return keys.sign(&json!({ "typ": "JWT" }), &claims),
        Misbehaviour::UserinfoSubMismatch
        | Misbehaviour::TokenEndpointError
        | Misbehaviour::ServiceUnavailable
        | Misbehaviour::DiscoveryIssuerMismatch
        | Misbehaviour::RefreshFails
        | Misbehaviour::SlowRefresh => {}
    }
    keys.sign_typed("JWT", &claims)
}

/// The JSON text of `claims` (an object) with a second `name` member appended
/// at the end: text a `serde_json` map cannot hold, hence the string surgery.
fn with_second_member(claims: &Value, name: &str, value: &Value) -> String {
    let text = claims.to_string();
    let Some(body) = text.strip_suffix('}') else {
        return text;
    };
    let sep = if body.ends_with('{') { "" } else { "," };
    format!("{body}{sep}{}:{value}}}", Value::from(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_once_defect_fires_once_and_a_sticky_one_until_cleared() {
        let mut switch = Switch::default();
        switch.set_once(Misbehaviour::Expired);
        assert!(
            !switch.fire(Misbehaviour::RefreshFails, None),
            "another defect does not consume it"
        );
        assert_eq!(
            switch.fire_id_token_defect("app"),
            Some(Misbehaviour::Expired)
        );
        assert_eq!(switch.fire_id_token_defect("app"), None);

        switch.set(Misbehaviour::RefreshFails, None);
        assert!(switch.fire(Misbehaviour::RefreshFails, Some("app")));
        assert!(switch.fire(Misbehaviour::RefreshFails, None));
        assert_eq!(
            switch.fire_id_token_defect("app"),
            None,
            "not an ID-token defect"
        );
        switch.clear();
        assert!(!switch.fire(Misbehaviour::RefreshFails, None));
    }

    #[test]
    fn a_defect_scoped_to_a_client_spares_the_others() {
        let mut switch = Switch::default();
        switch.set(Misbehaviour::RefreshFails, Some("github"));
        assert!(!switch.fire(Misbehaviour::RefreshFails, Some("app")));
        assert!(
            !switch.fire(Misbehaviour::RefreshFails, None),
            "a request naming no client is not that client's"
        );
        assert!(switch.fire(Misbehaviour::RefreshFails, Some("github")));
        assert!(switch.fire(Misbehaviour::RefreshFails, Some("github")));
    }
}
