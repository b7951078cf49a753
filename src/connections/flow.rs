//! The parts of the connect flow that need no request: what the connect-state
//! cookie holds, and how an outcome is reported back on `rd`.

use serde::{Deserialize, Serialize};

/// How long a connect may take between redirect and callback.
pub const CONNECT_TTL_SECS: i64 = 600;

/// A connect in progress, sealed into its cookie between redirect and callback.
#[derive(Serialize, Deserialize)]
pub struct PendingConnect {
    pub connection: String,
    pub state: String,
    pub pkce_verifier: String,
    /// The session that asked ([`crate::session::SessionKey::hex`]): the
    /// callback must come with the same one, so neither another browser nor
    /// another user's session can complete it.
    pub session: String,
    /// Where to land: already checked by `auth::redirect`.
    pub rd: String,
    pub created_at: i64,
}

impl PendingConnect {
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.created_at.saturating_add(CONNECT_TTL_SECS)
    }
}

/// `rd` with `connect_error=CODE` added to its query (before any fragment).
pub fn with_error(rd: &str, code: &str) -> String {
    let code = error_code(code);
    let (base, fragment) = match rd.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (rd, None),
    };
    let joiner = if base.contains('?') { '&' } else { '?' };
    let mut out = format!("{base}{joiner}connect_error={code}");
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// A third party's error code as passed on: RFC 6749 error codes are
/// `%x20-21 / %x23-5B / %x5D-7E`; only lowercase letters, digits and `_` are
/// kept here (every registered code fits), so nothing the third party (or an
/// attacker crafting a callback URL) sends can shape the redirect.
pub fn error_code(code: &str) -> String {
    let kept: String = code
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
        .take(64)
        .collect();
    if kept.is_empty() {
        "error".to_owned()
    } else {
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_land_on_rd_without_shaping_it() {
        assert_eq!(
            with_error("/app", "access_denied"),
            "/app?connect_error=access_denied"
        );
        assert_eq!(
            with_error("/app?x=1", "invalid_grant"),
            "/app?x=1&connect_error=invalid_grant"
        );
        assert_eq!(with_error("/app#tab", "x"), "/app?connect_error=x#tab");
        assert_eq!(
            with_error("/", "a&rd=https://evil.example/#"),
            "/?connect_error=ardhttpsevilexample"
        );
        assert_eq!(with_error("/", "%%%"), "/?connect_error=error");
    }
}
