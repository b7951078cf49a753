//! Identity headers (SPEC §7): strip every client-sent spelling on every route,
//! then (on an allowed authenticated request) set them from verified identity.
//!
//! The app behind portcullis trusts these headers and nothing else, so a client
//! must never be able to smuggle one through. HTTP header names are already
//! case-insensitive, but the app's own stack may not treat `_` and `.` as
//! distinct from `-` (CGI/WSGI and some frameworks map `X_Forwarded_User` to
//! `X-Forwarded-User`), so every spelling is removed, as linkerd removes
//! `l5d-client-id`.

use std::fmt;
use std::sync::OnceLock;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::Identity;

pub static X_FORWARDED_USER: HeaderName = HeaderName::from_static("x-forwarded-user");
pub static X_FORWARDED_EMAIL: HeaderName = HeaderName::from_static("x-forwarded-email");
pub static X_FORWARDED_PREFERRED_USERNAME: HeaderName =
    HeaderName::from_static("x-forwarded-preferred-username");
pub static X_FORWARDED_GROUPS: HeaderName = HeaderName::from_static("x-forwarded-groups");
pub static X_PORTCULLIS_IDENTITY: HeaderName = HeaderName::from_static("x-portcullis-identity");

/// The identity header names, in canonical (lowercase, `-`) spelling.
const IDENTITY_NAMES: [&str; 5] = [
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-portcullis-identity",
];

/// The prefix of the `X-Auth-Request-*` family (oauth2-proxy's identity headers),
/// which apps migrating from oauth2-proxy may still trust.
const AUTH_REQUEST_PREFIX: &str = "x-auth-request-";

/// Removes every client-sent identity header, in every spelling and every
/// repetition. Returns how many header names were removed, for the debug log.
pub fn strip(headers: &mut HeaderMap) -> usize {
    let removed = remove_where(headers, |name| is_identity_spelling(name.as_str()));
    for name in &removed {
        tracing::debug!(header = %name, "removed a client-sent identity header");
    }
    removed.len()
}

/// Removes every header whose name `doomed` picks, all its values; returns the
/// names removed. One walk over the names rather than one lookup per name
/// that might be there, and no allocation when nothing matches (the usual
/// request): the proxy's header rewrite is made of such walks.
pub fn remove_where(
    headers: &mut HeaderMap,
    doomed: impl Fn(&HeaderName) -> bool,
) -> Vec<HeaderName> {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| doomed(name))
        .cloned()
        .collect();
    for name in &names {
        headers.remove(name);
    }
    names
}

/// Returns true if and only if `name` is an identity header once `_` and `.`
/// are read as `-` and case is ignored.
pub fn is_identity_spelling(name: &str) -> bool {
    // Cheap early exit: every identity name starts with "x" and is longer than 14.
    if name.len() < 15 || !name.as_bytes()[0].eq_ignore_ascii_case(&b'x') {
        return false;
    }
    IDENTITY_NAMES
        .iter()
        .any(|canonical| spelled_as(name, canonical))
        || spelled_with_prefix(name, AUTH_REQUEST_PREFIX)
}

/// Returns true if and only if `name` is `canonical` (lowercase, `-`-separated)
/// in some spelling: any case, `_` or `.` for `-`. Compares byte by byte, so
/// the check on every header of every request allocates nothing.
pub fn spelled_as(name: &str, canonical: &str) -> bool {
    name.len() == canonical.len() && spelled_with_prefix(name, canonical)
}

/// Returns true if and only if `name` starts with `prefix` (lowercase,
/// `-`-separated) in some spelling, as [`spelled_as`] reads spellings.
pub fn spelled_with_prefix(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name
            .bytes()
            .zip(prefix.bytes())
            .all(|(have, want)| canonical_byte(have) == want)
}

fn canonical_byte(b: u8) -> u8 {
    match b {
        b'_' | b'.' => b'-',
        b => b.to_ascii_lowercase(),
    }
}

/// Sets the identity headers for `identity` (call [`strip`] first). A value that
/// cannot be a header as it is (non-ASCII names, control characters) is
/// percent-encoded, so no claim can split a header or inject another; commas
/// inside a role are encoded so `X-Forwarded-Groups` splits unambiguously.
///
/// The values are encoded on an identity's first request and kept with it
/// ([`Identity::header_values`]): a session's identity lives in the store, so
/// its later requests only copy reference-counted values.
pub fn set(headers: &mut HeaderMap, identity: &Identity) {
    let values = identity.header_values.get(identity);
    headers.insert(X_FORWARDED_USER.clone(), values.user.clone());
    if let Some(email) = &values.email {
        headers.insert(X_FORWARDED_EMAIL.clone(), email.clone());
    }
    if let Some(username) = &values.username {
        headers.insert(X_FORWARDED_PREFERRED_USERNAME.clone(), username.clone());
    }
    headers.insert(X_FORWARDED_GROUPS.clone(), values.groups.clone());
}

/// The identity headers' values for one identity, encoded.
#[derive(Debug)]
struct Values {
    user: HeaderValue,
    email: Option<HeaderValue>,
    username: Option<HeaderValue>,
    groups: HeaderValue,
}

impl Values {
    fn of(identity: &Identity) -> Self {
        let mut groups = String::new();
        for (i, role) in identity.roles.iter().enumerate() {
            if i > 0 {
                groups.push(',');
            }
            encode_into(&mut groups, role, true);
        }
        Values {
            user: safe_value(&identity.sub),
            email: identity.email.as_deref().map(safe_value),
            username: identity.preferred_username.as_deref().map(safe_value),
            groups: into_value(groups),
        }
    }
}

/// An identity's header values, encoded on first use and then kept.
///
/// It is no part of the identity it belongs to: every two are equal, it is
/// never serialized, and a clone starts empty, so a copy whose claims are
/// changed can never carry the values of the claims it was copied from.
#[derive(Default)]
pub struct Memo(OnceLock<Box<Values>>);

impl Memo {
    /// The values of `identity`, whose memo this is.
    fn get(&self, identity: &Identity) -> &Values {
        self.0.get_or_init(|| Box::new(Values::of(identity)))
    }
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

impl PartialEq for Memo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Memo {}

impl fmt::Debug for Memo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Memo(encoded)"
        } else {
            "Memo(empty)"
        })
    }
}

fn safe_value(text: &str) -> HeaderValue {
    let mut out = String::with_capacity(text.len());
    encode_into(&mut out, text, false);
    into_value(out)
}

/// `text` (already encoded) as a header value, without copying it.
fn into_value(text: String) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text)).expect("encoded text is visible ASCII")
}

/// Appends `text` to `out`, percent-encoding everything outside visible ASCII
/// and space, and `%` itself (so the encoding is reversible), and `,` when asked.
fn encode_into(out: &mut String, text: &str, encode_commas: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in text.bytes() {
        let plain =
            (b == b' ' || b.is_ascii_graphic()) && b != b'%' && !(encode_commas && b == b',');
        if plain {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn strips_every_spelling_of_every_identity_header() {
        let spellings = [
            "x-forwarded-user",
            "X-Forwarded-User",
            "x_forwarded_user",
            "x.forwarded.user",
            "X_Forwarded-User",
            "x-forwarded-email",
            "x_forwarded_email",
            "x-forwarded-preferred-username",
            "x_forwarded_preferred_username",
            "x-forwarded-groups",
            "x.forwarded.groups",
            "x-portcullis-identity",
            "x_portcullis_identity",
            "x-auth-request-user",
            "x-auth-request-email",
            "x_auth_request_access_token",
            "X-Auth-Request-Groups",
        ];
        for spelling in spellings {
            let mut headers = HeaderMap::new();
            let name = HeaderName::from_bytes(spelling.as_bytes()).expect("test name is valid");
            headers.append(name.clone(), HeaderValue::from_static("mallory"));
            headers.append(name, HeaderValue::from_static("again"));
            headers.insert("x-other", HeaderValue::from_static("kept"));
            assert_eq!(strip(&mut headers), 1, "{spelling} must be stripped");
            assert_eq!(
                headers.len(),
                1,
                "{spelling}: only the unrelated header remains"
            );
        }
    }

    #[test]
    fn set_values_cannot_split_or_inject_headers() {
        let mut headers = HeaderMap::new();
        let identity = Identity {
            sub: "u1\r\nX-Forwarded-User: admin".into(),
            email: Some("josé@example.com".into()),
            preferred_username: Some("100%".into()),
            roles: vec!["admin,root".into(), "user".into()],
            ..Identity::default()
        };
        set(&mut headers, &identity);
        assert_eq!(
            headers["x-forwarded-user"],
            "u1%0D%0AX-Forwarded-User: admin"
        );
        assert_eq!(headers["x-forwarded-email"], "jos%C3%A9@example.com");
        assert_eq!(headers["x-forwarded-preferred-username"], "100%25");
        assert_eq!(headers["x-forwarded-groups"], "admin%2Croot,user");
        assert_eq!(headers.get_all("x-forwarded-user").iter().count(), 1);
    }

    #[test]
    fn a_copy_sets_its_own_claims_not_those_encoded_for_the_original() {
        let alice = Identity {
            sub: "alice".into(),
            roles: vec!["admin".into()],
            ..Identity::default()
        };
        set(&mut HeaderMap::new(), &alice); // encodes and keeps alice's values
        let mut bob = alice.clone();
        bob.sub = "bob".into();
        bob.roles = vec!["viewer".into()];
        bob.email = Some("bob@example.com".into());

        let mut headers = HeaderMap::new();
        set(&mut headers, &bob);
        assert_eq!(headers["x-forwarded-user"], "bob");
        assert_eq!(headers["x-forwarded-groups"], "viewer");
        assert_eq!(headers["x-forwarded-email"], "bob@example.com");

        let mut again = HeaderMap::new();
        set(&mut again, &alice);
        assert_eq!(again["x-forwarded-user"], "alice");
        assert_eq!(again["x-forwarded-groups"], "admin");
        assert!(again.get("x-forwarded-email").is_none());
    }

    #[test]
    fn kept_values_are_no_part_of_the_identity() {
        let alice = Identity {
            sub: "alice".into(),
            roles: vec!["admin".into()],
            ..Identity::default()
        };
        let fresh = alice.clone();
        set(&mut HeaderMap::new(), &alice);
        assert_eq!(alice, fresh, "encoded values changed equality");
        let json = serde_json::to_value(&alice).expect("an identity serializes");
        assert!(json.get("header_values").is_none(), "{json}");
        let back: Identity = serde_json::from_value(json).expect("and reads back");
        assert_eq!(back, fresh);
    }

    #[test]
    fn keeps_headers_that_only_look_alike() {
        let mut headers = HeaderMap::new();
        for name in [
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-forwarded-users",
            "x-user",
        ] {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("test name is valid"),
                HeaderValue::from_static("v"),
            );
        }
        assert_eq!(strip(&mut headers), 0);
        assert_eq!(headers.len(), 5);
    }
}
