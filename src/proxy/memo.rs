//! What one client connection's requests repeat, worked out once.
//!
//! A browser (or a client behind a front proxy) sends the same `Cookie` header
//! on every request of a keep-alive connection, and the same identity is
//! vouched for to the same host. Each entry here caches a pure function of
//! bytes the request carries (compared whole, so a different header is a
//! miss, never a wrong answer), so the session cookie is not parsed, decoded
//! and hashed, the proxy's cookies not looked for, and the identity
//! assertion's cache not hashed into on every request. The session itself is
//! still loaded from the store on every request: logout, expiry and
//! revocation are seen as before.
//!
//! One memo per connection, shared by its requests; HTTP/2 streams that race
//! for an entry skip it (`try_lock`) rather than wait.

use std::sync::{Mutex, MutexGuard};

use http::{header, HeaderMap, HeaderValue};

use super::exchange::Subject;
use crate::session::cookie::Cookies;
use crate::session::SessionKey;

#[derive(Default)]
pub struct ConnMemo {
    session: Mutex<Option<SessionEntry>>,
    own_cookies: Mutex<Option<OwnCookiesEntry>>,
    assertion: Mutex<Option<AssertionEntry>>,
}

impl std::fmt::Debug for ConnMemo {
    // The entries hold the session cookie: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnMemo")
    }
}

/// The store key of the session cookie in one `Cookie` header.
struct SessionEntry {
    cookie: HeaderValue,
    session_name: Box<str>,
    key: Option<SessionKey>,
}

/// Whether one `Cookie` header holds the proxy's cookies.
struct OwnCookiesEntry {
    cookie: HeaderValue,
    base_name: Box<str>,
    mix: CookieMix,
}

/// An `X-Portcullis-Identity` value signed for one identity and host.
struct AssertionEntry {
    subject: Subject,
    host: Box<str>,
    /// The unix second it was asked for: reused within that second only, so
    /// it is never older than what the signer's own cache would hand out.
    at: i64,
    value: HeaderValue,
}

/// What a `Cookie` header holds, for removing the proxy's cookies from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieMix {
    /// None of the proxy's cookies: the header goes on as it is.
    NoneOurs,
    /// Only the proxy's cookies: the header goes.
    OnlyOurs,
    /// Both, or a header that is not text: it is rebuilt.
    Mixed,
}

impl ConnMemo {
    /// The store key of the request's session cookie ([`Cookies::session_key`]).
    pub fn session_key(&self, cookies: &Cookies, headers: &HeaderMap) -> Option<SessionKey> {
        let Some(cookie) = single_cookie(headers) else {
            return cookies.session_key(headers);
        };
        let Some(mut entry) = entry(&self.session) else {
            return cookies.session_key(headers);
        };
        match entry.as_ref() {
            Some(hit) if hit.cookie == cookie && *hit.session_name == *cookies.session_name() => {
                hit.key
            }
            _ => {
                let key = cookies.session_key(headers);
                *entry = Some(SessionEntry {
                    cookie: cookie.clone(),
                    session_name: cookies.session_name().into(),
                    key,
                });
                key
            }
        }
    }

    /// What the request's single `Cookie` header holds of the cookies named
    /// for `base_name` (`None` when there is not exactly one such header).
    pub fn own_cookies(&self, headers: &HeaderMap, base_name: &str) -> Option<CookieMix> {
        let cookie = single_cookie(headers)?;
        let Some(mut entry) = entry(&self.own_cookies) else {
            return Some(super::forward::cookie_mix(cookie, base_name));
        };
        match entry.as_ref() {
            Some(hit) if hit.cookie == cookie && *hit.base_name == *base_name => Some(hit.mix),
            _ => {
                let mix = super::forward::cookie_mix(cookie, base_name);
                *entry = Some(OwnCookiesEntry {
                    cookie: cookie.clone(),
                    base_name: base_name.into(),
                    mix,
                });
                Some(mix)
            }
        }
    }

    /// The assertion for `subject` at `host` asked for in this same second,
    /// else `sign`'s, remembered.
    pub fn assertion(
        &self,
        subject: &Subject,
        host: &str,
        now: i64,
        sign: impl FnOnce() -> Option<HeaderValue>,
    ) -> Option<HeaderValue> {
        let Some(mut entry) = entry(&self.assertion) else {
            return sign();
        };
        if let Some(hit) = entry.as_ref() {
            if hit.at == now && hit.subject.is(subject) && *hit.host == *host {
                return Some(hit.value.clone());
            }
        }
        let value = sign()?;
        *entry = Some(AssertionEntry {
            subject: subject.clone(),
            host: host.into(),
            at: now,
            value: value.clone(),
        });
        Some(value)
    }
}

/// The request's `Cookie` header when there is exactly one.
fn single_cookie(headers: &HeaderMap) -> Option<&HeaderValue> {
    let mut values = headers.get_all(header::COOKIE).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// The entry, unless another request of the connection holds it (an HTTP/2
/// stream) or a panic poisoned it: then the caller works it out itself.
fn entry<T>(slot: &Mutex<Option<T>>) -> Option<MutexGuard<'_, Option<T>>> {
    slot.try_lock().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionId;

    fn cookie(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static(value));
        headers
    }

    fn cookies() -> Cookies {
        Cookies::new(crate::policy::route::tests::base_config())
    }

    fn session_cookie(cookies: &Cookies, id: &SessionId) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("app=1; {}={}", cookies.session_name(), id.as_str());
        headers.insert(header::COOKIE, value.parse().expect("a header value"));
        headers
    }

    #[test]
    fn a_session_key_is_never_answered_for_another_cookie() {
        let cookies = cookies();
        let memo = ConnMemo::default();
        let (a, b) = (SessionId::generate(), SessionId::generate());
        let (with_a, with_b) = (session_cookie(&cookies, &a), session_cookie(&cookies, &b));
        assert_eq!(memo.session_key(&cookies, &with_a), Some(a.key()));
        assert_eq!(
            memo.session_key(&cookies, &with_a),
            Some(a.key()),
            "remembered"
        );
        assert_eq!(
            memo.session_key(&cookies, &with_b),
            Some(b.key()),
            "another cookie"
        );
        assert_eq!(memo.session_key(&cookies, &HeaderMap::new()), None);
        let mut two = with_a.clone();
        two.append(header::COOKIE, HeaderValue::from_static("x=1"));
        assert_eq!(
            memo.session_key(&cookies, &two),
            Some(a.key()),
            "split cookie headers"
        );
        let forged = cookie("portcullis=not-an-id");
        assert_eq!(memo.session_key(&cookies, &forged), None);
        assert_eq!(memo.session_key(&cookies, &with_b), Some(b.key()));
    }

    #[test]
    fn the_cookie_verdict_follows_the_header_it_was_worked_out_for() {
        let memo = ConnMemo::default();
        let ours = cookie("portcullis=abc");
        let theirs = cookie("app=1");
        let mixed = cookie("app=1; portcullis=abc");
        assert_eq!(
            memo.own_cookies(&ours, "portcullis"),
            Some(CookieMix::OnlyOurs)
        );
        assert_eq!(
            memo.own_cookies(&ours, "portcullis"),
            Some(CookieMix::OnlyOurs)
        );
        assert_eq!(
            memo.own_cookies(&theirs, "portcullis"),
            Some(CookieMix::NoneOurs)
        );
        assert_eq!(
            memo.own_cookies(&mixed, "portcullis"),
            Some(CookieMix::Mixed)
        );
        // The same header under another cookie name (a reload) is a miss.
        assert_eq!(memo.own_cookies(&mixed, "sid"), Some(CookieMix::NoneOurs));
        assert_eq!(memo.own_cookies(&HeaderMap::new(), "sid"), None);
    }
}
