//! Session ids: what the cookie carries, and the key stores index by.

use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};

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
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionKey([u8; 32]);

impl Hash for SessionKey {
    /// Its first eight bytes (a digest: uniform already); see [`DigestHasher`].
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(digest_prefix(&self.0));
    }
}

/// The first eight bytes of a 32-byte digest, as a number.
pub fn digest_prefix(digest: &[u8; 32]) -> u64 {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(prefix)
}

/// A hasher for maps keyed by SHA-256 digests ([`SessionKey`], and the Redis
/// store's cache keys made of them): the key hashes itself as its first eight
/// bytes ([`digest_prefix`]), and this passes them through.
///
/// # Security
/// A keyed hash (SipHash, std's default) is there so that a client cannot
/// pick keys that pile into one bucket. Here the keys are digests: sessions
/// are inserted under digests of ids the proxy drew at random, and the digest
/// of a cookie a client makes up cannot be steered into a bucket but by brute
/// force, which costs that client only its own lookups. SipHash over the 32
/// bytes was about 200 instructions on every request with a session.
#[derive(Clone, Copy, Default)]
pub struct DigestHasher(u64);

/// The map state for [`DigestHasher`].
pub type DigestState = BuildHasherDefault<DigestHasher>;

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(5) ^ n;
    }

    /// Any other input (none of the keys above write any) folds in eight
    /// bytes at a time, multiplied so that every byte reaches every bit.
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        }
    }
}

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
    fn session_keys_hash_by_their_digest_and_spread_over_buckets() {
        use std::hash::BuildHasher;
        let state = DigestState::default();
        let id = SessionId::generate();
        assert_eq!(state.hash_one(id.key()), state.hash_one(id.key()));
        assert_eq!(state.hash_one(id.key()), digest_prefix(&id.key().0));
        // Low bits pick a table bucket, high bits a DashMap shard: both spread.
        let (mut low, mut high) = ([0u32; 64], [0u32; 64]);
        for _ in 0..6_400 {
            let hash = state.hash_one(SessionId::generate().key());
            low[(hash & 63) as usize] += 1;
            high[(hash >> 58) as usize] += 1;
        }
        for counts in [low, high] {
            assert!(
                counts.iter().all(|&n| (40..=170).contains(&n)),
                "{counts:?}"
            );
        }
    }

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
