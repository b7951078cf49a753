//! `[session]`: the store, its keys, the cookie and the timeouts (SPEC §5).

use url::Url;

use super::*;
use crate::config::raw::RawSession;

pub(super) fn session(raw: RawSession, p: &mut Problems) -> Option<Session> {
    let RawSession {
        store,
        redis_url,
        redis_url_file,
        secret: current,
        secret_file,
        previous_secrets,
        previous_secrets_file,
        cookie_name,
        cookie_domain,
        idle_timeout,
        absolute_timeout,
        max_sessions,
        max_login_states,
    } = raw;

    let store = session_store(p, store.as_deref());
    let redis_url = match secret(p, "session.redis_url", redis_url, redis_url_file) {
        Some(Some(url)) => p
            .check("session.redis_url", self::redis_url(&url))
            .map(Some),
        other => other,
    };
    let current = secret(p, "session.secret", current, secret_file);
    let previous = self::previous_secrets(p, previous_secrets, previous_secrets_file);
    let secrets = match (current, previous) {
        (Some(current), Some(previous)) => session_secrets(p, current, previous),
        _ => None,
    };
    let cookie_name = self::cookie_name(p, cookie_name);
    let cookie_domain = match cookie_domain {
        Some(text) => p
            .check("session.cookie_domain", self::cookie_domain(&text))
            .map(Some),
        None => Some(None),
    };
    let idle_timeout = timeout(
        p,
        "session.idle_timeout",
        idle_timeout,
        DEFAULT_IDLE_TIMEOUT,
    );
    let absolute_timeout = duration(
        p,
        "session.absolute_timeout",
        absolute_timeout,
        DEFAULT_ABSOLUTE_TIMEOUT,
    );
    let max_sessions = positive(
        p,
        "session.max_sessions",
        count(max_sessions, DEFAULT_MAX_SESSIONS),
    );
    let max_login_states = positive(
        p,
        "session.max_login_states",
        count(max_login_states, DEFAULT_MAX_LOGIN_STATES),
    );

    let session = Session {
        store: store?,
        redis_url: redis_url?,
        secrets: secrets?,
        cookie_name: cookie_name?,
        cookie_domain: cookie_domain?,
        idle_timeout: idle_timeout?,
        absolute_timeout: absolute_timeout?,
        max_sessions: max_sessions?,
        max_login_states: max_login_states?,
    };
    let is_consistent = [
        check_absolute_after_idle(&session, p),
        check_redis_has_what_it_needs(&session, p),
        check_host_cookie_has_no_domain(&session, p),
    ];
    is_consistent.iter().all(|ok| *ok).then_some(session)
}

fn session_store(p: &mut Problems, raw: Option<&str>) -> Option<SessionStoreKind> {
    match raw.map(str::trim) {
        None | Some("memory") => Some(SessionStoreKind::Memory),
        Some("redis") => Some(SessionStoreKind::Redis),
        Some(other) => {
            p.push(
                "session.store",
                format!("unknown store {other:?}, expected \"memory\" or \"redis\""),
            );
            None
        }
    }
}

/// `session.secret` first, then the previous keys: the first encrypts, all decrypt.
/// Each must be a real key (SPEC §5: contents encrypted at rest).
fn session_secrets(
    p: &mut Problems,
    current: Option<Secret>,
    previous: Vec<(String, Secret)>,
) -> Option<Vec<Secret>> {
    let mut secrets: Vec<(String, Secret)> = Vec::new();
    match current {
        Some(secret) => secrets.push(("session.secret".to_owned(), secret)),
        None if !previous.is_empty() => {
            p.push(
                "session.previous_secrets",
                "set without session.secret: the current key encrypts, previous ones only decrypt",
            );
            return None;
        }
        None => {}
    }
    secrets.extend(previous);
    let mut ok = true;
    for (key, secret) in &secrets {
        if let Err(message) = syntax::session_key(secret) {
            p.push(key.clone(), message);
            ok = false;
        }
    }
    ok.then(|| secrets.into_iter().map(|(_, secret)| secret).collect())
}

/// `session.previous_secrets` or `session.previous_secrets_file` (one key per line),
/// each with the key to report it under.
fn previous_secrets(
    p: &mut Problems,
    list: Option<Vec<SecretText>>,
    file: Option<PathBuf>,
) -> Option<Vec<(String, Secret)>> {
    match (list, file) {
        (Some(_), Some(_)) => {
            p.push(
                "session.previous_secrets",
                "both session.previous_secrets and session.previous_secrets_file are set; keep one",
            );
            None
        }
        (Some(list), None) => Some(
            list.into_iter()
                .enumerate()
                .map(|(i, SecretText(s))| {
                    (format!("session.previous_secrets[{i}]"), Secret::new(s))
                })
                .collect(),
        ),
        (None, Some(path)) => {
            let text = p.check("session.previous_secrets_file", syntax::secret_file(&path))?;
            let keys = text
                .lines()
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .map(|(i, line)| {
                    let key = format!("session.previous_secrets_file (line {})", i + 1);
                    (key, Secret::new(line.trim()))
                });
            Some(keys.collect())
        }
        (None, None) => Some(Vec::new()),
    }
}

/// A session that outlives its absolute limit by idling makes no sense.
fn check_absolute_after_idle(session: &Session, p: &mut Problems) -> bool {
    let (idle, absolute) = (session.idle_timeout, session.absolute_timeout);
    if absolute < idle {
        p.push(
            "session.absolute_timeout",
            format!(
                "{} is shorter than session.idle_timeout {}",
                humantime::format_duration(absolute),
                humantime::format_duration(idle)
            ),
        );
        return false;
    }
    true
}

/// Redis sessions are shared by every replica, so they need the server and a key
/// every replica knows (a per-process key would make each replica's sessions unreadable
/// to the others).
fn check_redis_has_what_it_needs(session: &Session, p: &mut Problems) -> bool {
    if session.store != SessionStoreKind::Redis {
        return true;
    }
    let mut ok = true;
    if session.redis_url.is_none() {
        p.push(
            "session.redis_url",
            "required when session.store is \"redis\"",
        );
        ok = false;
    }
    if session.secrets.is_empty() {
        p.push(
            "session.secret",
            "required when session.store is \"redis\": it encrypts the sessions every replica shares",
        );
        ok = false;
    }
    ok
}

/// Browsers refuse a `__Host-` cookie that has a `Domain` attribute.
fn check_host_cookie_has_no_domain(session: &Session, p: &mut Problems) -> bool {
    let name = &session.cookie_name;
    if name.starts_with("__Host-") && session.cookie_domain.is_some() {
        p.push(
            "session.cookie_name",
            format!("{name:?}: a __Host- cookie cannot have session.cookie_domain"),
        );
        return false;
    }
    true
}

/// `session.redis_url`. The message never quotes the URL: it may carry a password.
fn redis_url(secret: &Secret) -> Result<Secret, String> {
    // A comma-separated list names the nodes of a Redis Cluster; each must be a URL.
    let is_url = |text: &str| {
        Url::parse(text.trim())
            .is_ok_and(|url| matches!(url.scheme(), "redis" | "rediss" | "redis+unix" | "unix"))
    };
    let parts: Vec<&str> = secret.expose().split(',').collect();
    if parts.iter().all(|part| is_url(part)) {
        Ok(secret.clone())
    } else {
        Err("is not a redis://, rediss:// or unix:// URL, or a comma-separated list of them (the value is not shown: it may hold a password)".to_owned())
    }
}

fn cookie_name(p: &mut Problems, raw: Option<String>) -> Option<String> {
    let name = raw.unwrap_or_else(|| DEFAULT_COOKIE_NAME.to_owned());
    if name.is_empty() {
        p.push("session.cookie_name", "is empty");
        return None;
    }
    if !syntax::is_token(&name) {
        p.push(
            "session.cookie_name",
            format!("{name:?} is not a valid cookie name (RFC 6265: no spaces, quotes or ()<>@,;:\\/[]?={{}})"),
        );
        return None;
    }
    Some(name)
}

/// `session.cookie_domain`: a hostname; a leading dot is dropped (RFC 6265 §5.2.3).
fn cookie_domain(text: &str) -> Result<String, String> {
    let lower = text.trim().trim_start_matches('.').to_ascii_lowercase();
    if syntax::is_hostname(&lower) {
        Ok(lower)
    } else {
        Err(format!(
            "invalid cookie domain {text:?}, expected a domain such as \"example.com\""
        ))
    }
}
