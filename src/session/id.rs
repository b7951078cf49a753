//! Session ids: what the cookie carries, and the key stores index by.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// The opaque, random session id in the browser's cookie: 32 random bytes
/// (256 bits), base64url without padding (43 characters).
///
/// `Debug` never prints it: a session id in a log is a session handed out.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

/// Length of an encoded id: 32 bytes in unpadded base64url.
const ENCODED_LEN: usize = 43;

impl SessionId {
    /// A fresh id from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        SessionId(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parses a cookie value; `None` unless it has the exact shape of an id.
    pub fn parse(value: &str) -> Option<Self> {
        let is_shaped = value.len() == ENCODED_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !is_shaped {
            return None;
        }
        // Decoded onto the stack: a canonical encoding of exactly 32 bytes.
        let mut bytes = [0u8; 36];
        let decoded = URL_SAFE_NO_PAD.decode_slice(value, &mut bytes);
        decoded
            .is_ok_and(|len| len == 32)
            .then(|| SessionId(value.to_owned()))
    }

    /// The cookie value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The store key for this id.
    pub fn key(&self) -> SessionKey {
        SessionKey(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.0.as_bytes())
                .as_ref()
                .try_into()
                .expect("SHA-256 is 32 bytes"),
        )
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

/// SHA-256 of a [`SessionId`]: stores index by this, so a dump of the store holds
/// nothing a browser could present. Lookup by hash also makes comparison time
/// independent of how much of a guessed id is right.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// Lowercase hex, for Redis keys and logs (a hash, not a credential).
    pub fn hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for b in self.0 {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }

    /// The 32 bytes of the hash (for in-process caches keyed by session).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 hex digits: enough to correlate log lines.
    pub fn short(&self) -> String {
        self.hex()[..8].to_owned()
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({}…)", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_256_bit_random_and_parse_back() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), ENCODED_LEN);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(a.as_str()).expect("base64url").len(),
            32
        );
        assert_eq!(SessionId::parse(a.as_str()), Some(a.clone()));
        assert_ne!(a.key(), b.key());
    }

    #[test]
    fn parse_refuses_anything_not_shaped_like_an_id() {
        let good = SessionId::generate();
        for bad in [
            "",
            "short",
            &format!("{}=", good.as_str()),
            &format!("{}x", good.as_str()),
            &good.as_str().replace(|_| true, "!"),
            // 43 characters hold 258 bits: the last one's low two must be zero.
            &format!("{}B", &good.as_str()[..42]),
        ] {
            assert!(SessionId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn debug_never_prints_the_id() {
        let id = SessionId::generate();
        assert!(!format!("{id:?}").contains(id.as_str()));
    }
}
