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
    /// The token endpoint answers 500 `server_error`.
    TokenEndpointError,
    /// Discovery's `issuer` differs from the URL it was fetched from.
    DiscoveryIssuerMismatch,
    /// Every refresh is refused with `invalid_grant`.
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

/// The defect currently switched on, if any.
#[derive(Debug, Default)]
pub(crate) struct Switch {
    active: Option<(Misbehaviour, Duration)>,
}

impl Switch {
    /// Turns `m` on until [`Switch::clear`].
    pub(crate) fn set(&mut self, m: Misbehaviour) {
        self.active = Some((m, Duration::UntilCleared));
    }

    /// Turns `m` on for the next response it affects only.
    pub(crate) fn set_once(&mut self, m: Misbehaviour) {
        self.active = Some((m, Duration::Once));
    }

    pub(crate) fn clear(&mut self) {
        self.active = None;
    }

    /// Returns true if and only if `m` is on, consuming it when it was set once.
    pub(crate) fn fire(&mut self, m: Misbehaviour) -> bool {
        self.fire_if(|active| active == m).is_some()
    }

    /// The ID-token defect to apply now, if any (consumed when set once).
    pub(crate) fn fire_id_token_defect(&mut self) -> Option<Misbehaviour> {
        self.fire_if(Misbehaviour::is_id_token_defect)
    }

    fn fire_if(&mut self, applies: impl Fn(Misbehaviour) -> bool) -> Option<Misbehaviour> {
        let (m, duration) = self.active?;
        if !applies(m) {
            return None;
        }
        if duration == Duration::Once {
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
            !switch.fire(Misbehaviour::RefreshFails),
            "another defect does not consume it"
        );
        assert_eq!(switch.fire_id_token_defect(), Some(Misbehaviour::Expired));
        assert_eq!(switch.fire_id_token_defect(), None);

        switch.set(Misbehaviour::RefreshFails);
        assert!(switch.fire(Misbehaviour::RefreshFails));
        assert!(switch.fire(Misbehaviour::RefreshFails));
        assert_eq!(
            switch.fire_id_token_defect(),
            None,
            "not an ID-token defect"
        );
        switch.clear();
        assert!(!switch.fire(Misbehaviour::RefreshFails));
    }
}
