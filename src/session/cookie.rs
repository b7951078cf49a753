//! The proxy's cookies (SPEC §5): the session cookie, and one short-lived sealed
//! login-state cookie per login in progress.
//!
//! The session cookie is `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` unless
//! the public URL is plain http, and `__Host-` prefixed when secure with no
//! domain, so a sibling subdomain cannot plant one. Login-state cookies are
//! named after their login's `state`, so logins in several tabs do not
//! overwrite each other, and have `Path=/` (as mod_auth_openidc's), so that
//! starting a login sees how many the browser holds and can bound them
//! (`session.max_login_states`, and a byte budget); `__Host-` over https so no
//! sibling subdomain can plant one. Inline, the proxy strips them (and the
//! session cookie) before the app.

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::{header, HeaderMap, HeaderValue};

use crate::config::Config;

use super::SessionId;

/// How long a login may take between redirect and callback.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);

/// Cookie names and attributes, fixed per config.
#[derive(Clone, Debug)]
pub struct Cookies {
    session_name: String,
    login_prefix: String,
    /// Connect-state cookies (SPEC §13): one per connection being linked.
    connect_prefix: String,
    secure: bool,
    domain: Option<String>,
    session_max_age: Duration,
}

impl Cookies {
    pub fn new(config: &Config) -> Self {
        let secure = config.server.is_secure();
        let domain = config.session.cookie_domain.clone();
        let base = config.session.cookie_name.as_str();
        let already_prefixed = base.starts_with("__Host-") || base.starts_with("__Secure-");
        let session_name = match (secure, &domain, already_prefixed) {
            (_, _, true) | (false, _, _) => base.to_owned(),
            (true, None, false) => format!("__Host-{base}"),
            (true, Some(_), false) => format!("__Secure-{base}"),
        };
        let bare = base
            .trim_start_matches("__Host-")
            .trim_start_matches("__Secure-");
        // `__Host-` (Path=/, no Domain): a sibling subdomain can neither plant
        // one nor keep one past our removal.
        let login_prefix = if secure {
            format!("__Host-{bare}_login_")
        } else {
            format!("{bare}_login_")
        };
        let connect_prefix = if secure {
            format!("__Host-{bare}_connect_")
        } else {
            format!("{bare}_connect_")
        };
        Cookies {
            session_name,
            login_prefix,
            connect_prefix,
            secure,
            domain,
            session_max_age: config.session.absolute_timeout,
        }
    }

    pub fn session_name(&self) -> &str {
        &self.session_name
    }

    /// The session id the request carries: exactly one well-formed session cookie.
    /// Two cookies of that name (one planted by another site) count as none.
    pub fn session_id(&self, headers: &HeaderMap) -> Option<SessionId> {
        let mut found = values(headers, &self.session_name);
        match (found.next(), found.next()) {
            (Some(value), None) => SessionId::parse(value),
            _ => None,
        }
    }

    /// The store key of [`Cookies::session_id`]'s id.
    pub fn session_key(&self, headers: &HeaderMap) -> Option<crate::session::SessionKey> {
        self.session_id(headers).map(|id| id.key())
    }

    /// `Set-Cookie` for a new session.
    pub fn set_session(&self, id: &SessionId) -> HeaderValue {
        let max_age = cookie::time::Duration::seconds(
            i64::try_from(self.session_max_age.as_secs()).unwrap_or(i64::MAX),
        );
        let mut c = self.base(self.session_name.clone(), id.as_str().to_owned(), "/");
        c.set_max_age(max_age);
        if let Some(domain) = &self.domain {
            c.set_domain(domain.clone());
        }
        header_value(&c)
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn clear_session(&self) -> HeaderValue {
        let mut c = self.base(self.session_name.clone(), String::new(), "/");
        if let Some(domain) = &self.domain {
            c.set_domain(domain.clone());
        }
        c.make_removal();
        header_value(&c)
    }

    /// The login-state cookie name for a login whose `state` is `state`.
    pub fn login_name(&self, state: &str) -> String {
        // 16 characters of a 256-bit random state keep names unique per login.
        let tag: String = state
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(16)
            .collect();
        format!("{}{tag}", self.login_prefix)
    }

    /// `Set-Cookie` carrying a sealed login state.
    pub fn set_login(&self, name: &str, sealed: String) -> HeaderValue {
        let mut c = self.base(name.to_owned(), sealed, "/");
        c.set_max_age(cookie::time::Duration::seconds(LOGIN_TTL.as_secs() as i64));
        header_value(&c)
    }

    /// `Set-Cookie` removing a login-state cookie.
    pub fn clear_login(&self, name: &str) -> HeaderValue {
        let mut c = self.base(name.to_owned(), String::new(), "/");
        c.make_removal();
        header_value(&c)
    }

    /// The connect-state cookie of connection `name` (a config name: a cookie
    /// name's characters only).
    pub fn connect_name(&self, connection: &str) -> String {
        format!("{}{connection}", self.connect_prefix)
    }

    /// `Set-Cookie` carrying a sealed connect state; it lives as long as a login's.
    pub fn set_connect(&self, name: &str, sealed: String) -> HeaderValue {
        self.set_login(name, sealed)
    }

    /// `Set-Cookie` removing a connect-state cookie.
    pub fn clear_connect(&self, name: &str) -> HeaderValue {
        self.clear_login(name)
    }

    /// Every login-state cookie the request carries, as `(name, value)`.
    pub fn logins<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        pairs(headers).filter(|(name, _)| name.starts_with(self.login_prefix.as_str()))
    }

    /// The value of cookie `name`, when sent exactly once.
    pub fn one<'a>(&self, headers: &'a HeaderMap, name: &'a str) -> Option<&'a str> {
        let mut found = values(headers, name);
        match (found.next(), found.next()) {
            (Some(value), None) => Some(value),
            _ => None,
        }
    }

    fn base(&self, name: String, value: String, path: &str) -> Cookie<'static> {
        let mut c = Cookie::new(name, value);
        c.set_http_only(true);
        c.set_secure(self.secure);
        c.set_same_site(SameSite::Lax);
        c.set_path(path.to_owned());
        c
    }
}

/// Every `(name, value)` pair across all `Cookie` headers.
fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            Some((n.trim(), v.trim()))
        })
}

/// Every value of cookie `name` across all `Cookie` headers.
fn values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    pairs(headers).filter_map(move |(n, v)| (n == name).then_some(v))
}

fn header_value(c: &Cookie<'_>) -> HeaderValue {
    HeaderValue::from_str(&c.to_string()).expect("cookie names and values we build are header-safe")
}
