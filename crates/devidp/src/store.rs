//! In-memory state: authorization codes, provider (SSO) sessions, refresh-token
//! families, opaque access tokens and revoked access tokens.
//!
//! Everything is behind one `std::sync::Mutex` in [`crate::state::Shared`]; no
//! method here awaits, so the lock is never held across an `.await`.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::random;

/// What an authorization code stands for, checked at the token endpoint.
#[derive(Clone, Debug)]
pub(crate) struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub scope: String,
    pub sub: String,
    pub sid: String,
    pub auth_time: u64,
    pub expires_at: u64,
    /// The refresh-token family tokens from this code belong to, so a replayed
    /// code can revoke them (RFC 6749 §4.1.2).
    pub family: String,
}

/// A stored code: the grant plus whether it was already presented once.
#[derive(Debug)]
struct CodeEntry {
    grant: CodeGrant,
    is_used: bool,
}

/// Why a code was refused. Every case is `invalid_grant` on the wire.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CodeRefusal {
    /// Never issued (or long forgotten).
    Unknown,
    /// Presented before: the tokens issued from it are now revoked.
    Replayed,
    /// Older than its 60 seconds.
    Expired,
}

/// A browser's sign-in at the provider, found through its cookie.
#[derive(Clone, Debug)]
pub(crate) struct ProviderSession {
    /// The public session id put in tokens (`sid`); distinct from the cookie
    /// value, which is a secret.
    pub sid: String,
    pub sub: String,
    pub auth_time: u64,
    /// The clients that received a code in this session (back-channel targets).
    pub clients: BTreeSet<String>,
}

/// All tokens that descend from one authorization code.
#[derive(Clone, Debug)]
pub(crate) struct Family {
    pub client_id: String,
    pub sub: String,
    pub sid: String,
    pub scope: String,
    pub auth_time: u64,
    pub is_revoked: bool,
    /// `jti`s of access tokens issued in this family, revoked with it.
    pub access_jtis: Vec<String>,
}

#[derive(Debug)]
struct RefreshEntry {
    family: String,
    expires_at: u64,
    /// False once rotated away: presenting it again is reuse.
    is_current: bool,
}

/// Why a refresh token was refused. Every case is `invalid_grant`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RefreshRefusal {
    Unknown,
    Expired,
    Revoked,
    /// Issued to a different client.
    WrongClient,
    /// A rotated-away token presented again: the family is now revoked
    /// (RFC 9700 §4.14.2).
    Reused,
}

/// The result of a successful refresh.
#[derive(Debug)]
pub(crate) struct Refreshed {
    pub family_id: String,
    pub family: Family,
    /// The refresh token to return (new when rotating, else the same one).
    pub refresh_token: String,
}

/// What an opaque access token stands for: everything a JWT would say.
#[derive(Clone, Debug)]
pub(crate) struct OpaqueAccess {
    pub sub: String,
    pub client_id: String,
    pub scope: String,
    pub expires_at: u64,
    /// Its identifier in the revocation list, as a JWT's `jti`.
    pub jti: String,
}

/// What the provider remembers.
#[derive(Debug, Default)]
pub(crate) struct Store {
    codes: HashMap<String, CodeEntry>,
    /// Keyed by the cookie value.
    sessions: HashMap<String, ProviderSession>,
    refresh_tokens: HashMap<String, RefreshEntry>,
    families: HashMap<String, Family>,
    /// Keyed by the token itself.
    opaque_access: HashMap<String, OpaqueAccess>,
    /// `jti`s of revoked access tokens, JWT and opaque alike.
    revoked_access: HashSet<String>,
}

// === codes ===

impl Store {
    /// Stores `grant` under a new random code and returns the code.
    pub(crate) fn insert_code(&mut self, grant: CodeGrant, now: u64) -> String {
        // Used codes are kept until they expire so a replay is recognised as one.
        self.codes.retain(|_, c| c.grant.expires_at + 600 > now);
        let code = random::token(32);
        self.codes.insert(
            code.clone(),
            CodeEntry {
                grant,
                is_used: false,
            },
        );
        code
    }

    /// Consumes `code`. A code works once: any second presentation, whatever the
    /// outcome of the first, is a replay and revokes what was issued from it.
    pub(crate) fn redeem_code(&mut self, code: &str, now: u64) -> Result<CodeGrant, CodeRefusal> {
        let entry = self.codes.get_mut(code).ok_or(CodeRefusal::Unknown)?;
        if entry.is_used {
            let family = entry.grant.family.clone();
            self.revoke_family(&family);
            return Err(CodeRefusal::Replayed);
        }
        entry.is_used = true;
        if entry.grant.expires_at <= now {
            return Err(CodeRefusal::Expired);
        }
        Ok(entry.grant.clone())
    }
}

// === provider sessions ===

impl Store {
    /// Starts a session for `sub`; returns the cookie value and the session.
    pub(crate) fn create_session(&mut self, sub: &str, now: u64) -> (String, ProviderSession) {
        let cookie = random::token(32);
        let session = ProviderSession {
            sid: random::token(16),
            sub: sub.to_owned(),
            auth_time: now,
            clients: BTreeSet::new(),
        };
        self.sessions.insert(cookie.clone(), session.clone());
        (cookie, session)
    }

    /// The session behind a cookie value.
    pub(crate) fn session(&self, cookie: &str) -> Option<&ProviderSession> {
        self.sessions.get(cookie)
    }

    /// Records that `client_id` got a code in the session `cookie`.
    pub(crate) fn join_session(&mut self, cookie: &str, client_id: &str) {
        if let Some(s) = self.sessions.get_mut(cookie) {
            s.clients.insert(client_id.to_owned());
        }
    }

    /// Ends the session with this cookie value, returning it.
    pub(crate) fn end_session(&mut self, cookie: &str) -> Option<ProviderSession> {
        self.sessions.remove(cookie)
    }

    /// Ends the session whose public id is `sid`, returning it.
    pub(crate) fn end_session_by_sid(&mut self, sid: &str) -> Option<ProviderSession> {
        let cookie = self
            .sessions
            .iter()
            .find(|(_, s)| s.sid == sid)
            .map(|(c, _)| c.clone())?;
        self.sessions.remove(&cookie)
    }

    /// Ends every session of `sub`, returning them.
    pub(crate) fn end_sessions_of(&mut self, sub: &str) -> Vec<ProviderSession> {
        let cookies: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.sub == sub)
            .map(|(c, _)| c.clone())
            .collect();
        cookies
            .iter()
            .filter_map(|c| self.sessions.remove(c))
            .collect()
    }

    /// Forgets every provider session (the next authorize shows the sign-in page).
    pub(crate) fn end_all_sessions(&mut self) {
        self.sessions.clear();
    }
}

// === opaque access tokens ===

impl Store {
    /// Stores `access` under a new random token and returns the token.
    pub(crate) fn insert_opaque_access(&mut self, access: OpaqueAccess, now: u64) -> String {
        // An expired token is refused whether it is remembered or not.
        self.opaque_access.retain(|_, a| a.expires_at > now);
        let token = random::token(32);
        self.opaque_access.insert(token.clone(), access);
        token
    }

    /// What the opaque access token `token` stands for, if we issued it and it
    /// is still remembered (expiry and revocation are the caller's to check).
    pub(crate) fn opaque_access(&self, token: &str) -> Option<&OpaqueAccess> {
        self.opaque_access.get(token)
    }
}

// === refresh tokens and access-token revocation ===

impl Store {
    /// Opens the token family `family_id` and returns its first refresh token.
    pub(crate) fn open_family(
        &mut self,
        family_id: &str,
        family: Family,
        expires_at: u64,
    ) -> String {
        self.families.insert(family_id.to_owned(), family);
        self.issue_refresh(family_id, expires_at)
    }

    fn issue_refresh(&mut self, family_id: &str, expires_at: u64) -> String {
        let token = random::token(32);
        self.refresh_tokens.insert(
            token.clone(),
            RefreshEntry {
                family: family_id.to_owned(),
                expires_at,
                is_current: true,
            },
        );
        token
    }

    /// Remembers that the access token `jti` belongs to `family_id`.
    pub(crate) fn record_access(&mut self, family_id: &str, jti: &str) {
        if let Some(f) = self.families.get_mut(family_id) {
            f.access_jtis.push(jti.to_owned());
        }
    }

    /// Exchanges a refresh token presented by `client_id`.
    ///
    /// With `rotate`, the presented token stops working and a new one is
    /// returned; presenting a rotated token again revokes the family.
    pub(crate) fn refresh(
        &mut self,
        token: &str,
        client_id: &str,
        now: u64,
        rotate: bool,
        new_expires_at: u64,
    ) -> Result<Refreshed, RefreshRefusal> {
        let entry = self
            .refresh_tokens
            .get(token)
            .ok_or(RefreshRefusal::Unknown)?;
        let family_id = entry.family.clone();
        let (is_current, expires_at) = (entry.is_current, entry.expires_at);
        let family = self
            .families
            .get(&family_id)
            .ok_or(RefreshRefusal::Unknown)?;
        if family.client_id != client_id {
            return Err(RefreshRefusal::WrongClient);
        }
        if family.is_revoked {
            return Err(RefreshRefusal::Revoked);
        }
        if !is_current {
            self.revoke_family(&family_id);
            return Err(RefreshRefusal::Reused);
        }
        if expires_at <= now {
            return Err(RefreshRefusal::Expired);
        }
        let family = family.clone();
        let refresh_token = if rotate {
            if let Some(e) = self.refresh_tokens.get_mut(token) {
                e.is_current = false;
            }
            self.issue_refresh(&family_id, new_expires_at)
        } else {
            token.to_owned()
        };
        Ok(Refreshed {
            family_id,
            family,
            refresh_token,
        })
    }

    /// RFC 7009 for a refresh token: revokes its family if it belongs to
    /// `client_id`. Returns true if and only if a family was revoked.
    pub(crate) fn revoke_refresh_token(&mut self, token: &str, client_id: &str) -> bool {
        let Some(family_id) = self.refresh_tokens.get(token).map(|e| e.family.clone()) else {
            return false;
        };
        if self
            .families
            .get(&family_id)
            .is_none_or(|f| f.client_id != client_id)
        {
            return false;
        }
        self.revoke_family(&family_id);
        true
    }

    /// The number of refresh-token families of `sub` at `client_id` that still
    /// work: not revoked, and with a current refresh token not yet expired.
    pub(crate) fn live_grants(&self, sub: &str, client_id: &str, now: u64) -> usize {
        self.families
            .iter()
            .filter(|(_, f)| f.sub == sub && f.client_id == client_id && !f.is_revoked)
            .filter(|(id, _)| {
                self.refresh_tokens
                    .values()
                    .any(|e| e.family == **id && e.is_current && e.expires_at > now)
            })
            .count()
    }

    /// Revokes every refresh-token family of `sub` (access tokens stay valid
    /// until they expire, as at a real provider's "revoke offline access").
    pub(crate) fn revoke_refresh_tokens_of(&mut self, sub: &str) {
        for family in self.families.values_mut().filter(|f| f.sub == sub) {
            family.is_revoked = true;
        }
    }

    /// Revokes the access token `jti`.
    pub(crate) fn revoke_access(&mut self, jti: &str) {
        self.revoked_access.insert(jti.to_owned());
    }

    /// Returns true if and only if the access token `jti` was revoked.
    pub(crate) fn is_access_revoked(&self, jti: &str) -> bool {
        self.revoked_access.contains(jti)
    }

    /// Revokes a family: its refresh tokens and its access tokens.
    fn revoke_family(&mut self, family_id: &str) {
        let Some(family) = self.families.get_mut(family_id) else {
            return;
        };
        family.is_revoked = true;
        let jtis = std::mem::take(&mut family.access_jtis);
        self.revoked_access.extend(jtis);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(now: u64) -> CodeGrant {
        CodeGrant {
            client_id: "app".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            code_challenge: "x".into(),
            nonce: None,
            scope: "openid".into(),
            sub: "alice".into(),
            sid: "sid".into(),
            auth_time: now,
            expires_at: now + 60,
            family: "fam".into(),
        }
    }

    fn family() -> Family {
        Family {
            client_id: "app".into(),
            sub: "alice".into(),
            sid: "sid".into(),
            scope: "openid".into(),
            auth_time: 0,
            is_revoked: false,
            access_jtis: vec![],
        }
    }

    #[test]
    fn a_code_works_once_and_its_replay_revokes_its_tokens() {
        let mut store = Store::default();
        let code = store.insert_code(grant(100), 100);
        assert!(store.redeem_code(&code, 100).is_ok());
        let refresh = store.open_family("fam", family(), 1000);
        store.record_access("fam", "jti-1");
        assert_eq!(
            store.redeem_code(&code, 101).unwrap_err(),
            CodeRefusal::Replayed
        );
        assert!(store.is_access_revoked("jti-1"));
        assert_eq!(
            store.refresh(&refresh, "app", 102, true, 2000).unwrap_err(),
            RefreshRefusal::Revoked
        );
    }

    #[test]
    fn an_expired_code_is_refused() {
        let mut store = Store::default();
        let code = store.insert_code(grant(100), 100);
        assert_eq!(
            store.redeem_code(&code, 160).unwrap_err(),
            CodeRefusal::Expired
        );
    }

    #[test]
    fn reusing_a_rotated_refresh_token_revokes_the_family() {
        let mut store = Store::default();
        let first = store.open_family("fam", family(), 1000);
        let second = store
            .refresh(&first, "app", 1, true, 1000)
            .expect("first refresh")
            .refresh_token;
        assert_ne!(first, second);
        assert_eq!(
            store.refresh(&first, "app", 2, true, 1000).unwrap_err(),
            RefreshRefusal::Reused
        );
        assert_eq!(
            store.refresh(&second, "app", 3, true, 1000).unwrap_err(),
            RefreshRefusal::Revoked
        );
    }

    #[test]
    fn a_refresh_token_of_another_client_is_refused() {
        let mut store = Store::default();
        let token = store.open_family("fam", family(), 1000);
        assert_eq!(
            store.refresh(&token, "other", 1, true, 1000).unwrap_err(),
            RefreshRefusal::WrongClient
        );
    }
}
