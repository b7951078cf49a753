//! Which page may open a WebSocket with the session cookie (SPEC §7).
//!
//! A WebSocket handshake carries the browser's cookies whichever site's page
//! opened it, and the same-origin policy does not apply to it: without a check
//! of `Origin`, any page the user visits can open a socket on a session route
//! and act as the user (cross-site WebSocket hijacking). Browsers always send
//! `Origin` on a WebSocket handshake, so a handshake whose `Origin` is present
//! and not trusted is refused; one without `Origin` comes from no browser and
//! carries no ambient cookie an attacker's page could lend it.

use http::{header, HeaderMap};
use url::Url;

/// The origins trusted to open WebSockets on session routes: the public origin
/// and `server.allowed_origins`, in the form browsers serialize `Origin`.
#[derive(Clone, Debug)]
pub struct Origins {
    trusted: Vec<String>,
}

/// Why a WebSocket handshake was refused. Logged in full; the client gets 403.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// `Origin` names a site that is neither the public origin nor allowed
    /// (this includes `null`, sent by sandboxed frames and `file:` pages).
    #[error("websocket handshake from untrusted origin {0:?}")]
    Untrusted(String),
    /// Several `Origin` headers, or one that is not text: no browser sends that.
    #[error("websocket handshake with a repeated or malformed Origin")]
    Malformed,
}

impl Origins {
    /// The public origin of `public_url` and the already-normalized
    /// `allowed` origins (`server.allowed_origins`).
    pub fn new(public_url: &Url, allowed: &[String]) -> Self {
        let mut trusted = vec![public_url.origin().ascii_serialization()];
        trusted.extend(allowed.iter().cloned());
        Origins { trusted }
    }

    /// Checks the `Origin` of a request when it is a WebSocket handshake
    /// ([`is_websocket_handshake`]); any other request passes.
    ///
    /// # Errors
    /// As [`Origins::check`].
    pub fn check_handshake(&self, headers: &HeaderMap) -> Result<(), OriginError> {
        // Without an `Origin` the check passes whatever the request: asked
        // first, since most requests carry none.
        if headers.contains_key(header::ORIGIN) && is_websocket_handshake(headers) {
            self.check(headers)
        } else {
            Ok(())
        }
    }

    /// Checks the `Origin` of a WebSocket handshake.
    ///
    /// # Errors
    /// [`OriginError`] when `Origin` is present and not trusted, or repeated.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), OriginError> {
        let mut values = headers.get_all(header::ORIGIN).iter();
        let origin = match (values.next(), values.next()) {
            (None, _) => return Ok(()),
            (Some(value), None) => value.to_str().map_err(|_| OriginError::Malformed)?,
            _ => return Err(OriginError::Malformed),
        };
        // An exact comparison: `http://app.example.com.evil.com` and
        // `http://app.example.com:4180.evil.com` share a prefix with the
        // public origin and are other sites. Case is ignored because scheme and
        // host are case-insensitive and browsers send them lowercased.
        if self.trusted.iter().any(|t| t.eq_ignore_ascii_case(origin)) {
            Ok(())
        } else {
            Err(OriginError::Untrusted(origin.chars().take(256).collect()))
        }
    }
}

/// Returns true if and only if the request is (or looks like) a WebSocket
/// handshake: an `Upgrade` header, or the `Sec-WebSocket-Key` /
/// `Sec-WebSocket-Version` headers, which front proxies pass on to a
/// forward-auth check even where they drop `Upgrade` as hop-by-hop.
pub fn is_websocket_handshake(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        || headers.contains_key(header::SEC_WEBSOCKET_KEY)
        || headers.contains_key(header::SEC_WEBSOCKET_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins() -> Origins {
        let public = Url::parse("http://127.0.0.1:4180").expect("url");
        Origins::new(&public, &["https://admin.example.com".to_owned()])
    }

    fn with_origin(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ORIGIN, v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn any_one_of_the_handshake_headers_makes_a_websocket_handshake() {
        let mut plain = HeaderMap::new();
        plain.insert(header::ACCEPT, "text/html".parse().expect("value"));
        plain.insert("x-upgrade-note", "websocket".parse().expect("value"));
        assert!(!is_websocket_handshake(&plain));
        for name in [
            header::UPGRADE,
            header::SEC_WEBSOCKET_KEY,
            header::SEC_WEBSOCKET_VERSION,
        ] {
            let mut headers = plain.clone();
            headers.insert(name.clone(), "x".parse().expect("value"));
            assert!(is_websocket_handshake(&headers), "{name}");
        }
    }

    #[test]
    fn an_untrusted_origin_is_refused_on_handshakes_only() {
        let evil = with_origin(&["https://evil.example"]);
        assert_eq!(origins().check_handshake(&evil), Ok(()), "not a handshake");
        let mut handshake = evil.clone();
        handshake.insert(header::UPGRADE, "websocket".parse().expect("value"));
        assert!(origins().check_handshake(&handshake).is_err());
        handshake.remove(header::ORIGIN);
        assert_eq!(origins().check_handshake(&handshake), Ok(()), "no Origin");
    }

    #[test]
    fn the_public_origin_and_allowed_origins_may_open_websockets() {
        for ok in [
            "http://127.0.0.1:4180",
            "HTTP://127.0.0.1:4180",
            "https://admin.example.com",
        ] {
            assert_eq!(origins().check(&with_origin(&[ok])), Ok(()), "{ok}");
        }
        assert_eq!(origins().check(&HeaderMap::new()), Ok(()), "no Origin");
    }

    #[test]
    fn other_sites_null_and_lookalikes_may_not() {
        for bad in [
            "https://evil.com",
            "null",
            "http://127.0.0.1:4180.evil.com",
            "http://127.0.0.1:41800",
            "http://127.0.0.1",
            "https://127.0.0.1:4180",
            "http://127.0.0.1:4180/",
            "http://127.0.0.1:4180/path",
            "https://admin.example.com:443.evil.com",
            "https://evil-admin.example.com",
            "https://admin.example.com.evil.com",
            "",
        ] {
            assert!(origins().check(&with_origin(&[bad])).is_err(), "{bad:?}");
        }
        assert_eq!(
            origins().check(&with_origin(&["http://127.0.0.1:4180", "https://evil.com"])),
            Err(OriginError::Malformed)
        );
    }
}
