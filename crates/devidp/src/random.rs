//! Random identifiers: codes, tokens, session ids, `kid`s, `jti`s.

use aws_lc_rs::rand;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// `bytes` random bytes from the system CSPRNG, base64url without padding.
///
/// # Panics
/// If the operating system's random source fails: nothing secret can be made
/// without it, and a dev provider has no better fallback.
pub(crate) fn token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf).expect("the system CSPRNG is available (aws-lc-rs rand::fill)");
    URL_SAFE_NO_PAD.encode(buf)
}
