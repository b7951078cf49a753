//! Step 3: who is making the request. For session routes: the cookie, the
//! store, the timeouts, and a refresh when the access token is about to expire
//! (SPEC §5); without a session, the start of a login (SPEC §4.1).

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::auth::oidc::{LoginRequest, Tokens};
use crate::auth::redirect;
use crate::policy::normalize::Target;
use crate::session::{Lease, Session, SessionKey, SessionStore};

use super::{Reject, Runtime, State};

/// Refresh this many seconds before the access token expires.
const REFRESH_MARGIN: i64 = 30;
/// Record activity (for the idle timeout) at most this often per session, so a
/// busy session does not write to the store on every request.
/// At most this often; a short `idle_timeout` touches at least four times per
/// window, so a user active every few seconds is never idle-expired.
const TOUCH_EVERY: i64 = 30;
/// After a provider outage, skip refresh attempts for this long.
const OUTAGE_BACKOFF: i64 = 10;

/// How long a replica holds a session's refresh lease unless it renews it: longer
/// than a provider round trip (bounded at 10 s) plus the save of the new tokens, so
/// the lease outlives the refresh even if one renewal is missed.
const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often the lease holder renews it while the refresh runs.
const LEASE_RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a replica waiting for another's refresh looks at the store.
const LEASE_POLL_EVERY: Duration = Duration::from_millis(100);
/// How often, and how far apart, a failed save of refreshed tokens is tried (at
/// most ~7 s with the store's 2 s timeout; the lease is renewed meanwhile).
const SAVE_ROTATED_ATTEMPTS: u32 = 3;
const SAVE_ROTATED_RETRY_AFTER: Duration = Duration::from_millis(500);
/// How long a request waits for another replica's refresh before going on with the
/// tokens it has (the next request tries again).
const LEASE_WAIT_LIMIT: Duration = Duration::from_secs(20);

/// A request's valid session.
pub struct Authenticated {
    pub key: SessionKey,
    /// The stored record itself, shared: a request copies nothing of it.
    pub session: Arc<Session>,
}

/// A login in progress, sealed into its cookie between redirect and callback.
#[derive(Serialize, Deserialize)]
pub struct PendingLogin {
    pub login: LoginRequest,
    /// The provider the login was sent to: the callback must come from it
    /// (path, `iss`), or it is refused (IdP mix-up, RFC 9700 §4.4).
    #[serde(default = "default_provider")]
    pub provider: String,
    /// Where to land after the callback: already checked by `auth::redirect`.
    pub rd: String,
    pub created_at: i64,
    /// Orders logins started in the same second by this process, so the
    /// oldest login-state cookies are the ones cleared (see [`start_login`]).
    #[serde(default)]
    pub seq: u64,
}

fn default_provider() -> String {
    crate::config::DEFAULT_PROVIDER.to_owned()
}

/// A sign-in chooser: the providers a browser may sign in with here, each
/// with the URL that starts its login (SPEC §12).
#[derive(Debug)]
pub struct Chooser {
    pub rd: String,
    /// `(name, display_name, login URL)`, in the route's order.
    pub options: Vec<(String, String, String)>,
}

/// The next [`PendingLogin::seq`].
static LOGIN_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The redirect that starts a login: where to send the browser, and the cookie
/// that binds the login to it.
#[derive(Debug)]
pub struct LoginRedirect {
    pub location: String,
    /// The new login's state cookie, and removals of the oldest ones past
    /// `session.max_login_states`.
    pub set_cookies: Vec<http::HeaderValue>,
}

/// The session of this request, if it has a valid one.
///
/// # Errors
/// [`Reject::StoreUnavailable`] when the store cannot answer (503: sessions are
/// unknown, not absent, so no login loop), [`Reject::ProviderUnavailable`] when
/// a needed refresh cannot reach the provider and the token must be passed on.
pub async fn session(
    state: &Arc<State>,
    rt: &Runtime,
    headers: &HeaderMap,
) -> Result<Option<Authenticated>, Reject> {
    session_for(state, rt, rt.cookies.session_key(headers)).await
}

/// [`session`] for the session cookie whose store key is `key` (`None`: no
/// well-formed session cookie).
///
/// # Errors
/// As [`session`].
pub async fn session_for(
    state: &Arc<State>,
    rt: &Runtime,
    key: Option<SessionKey>,
) -> Result<Option<Authenticated>, Reject> {
    let Some(key) = key else {
        return Ok(None);
    };
    let Some(mut session) = load(state, &key).await? else {
        return Ok(None);
    };
    if rt.provider_named(&session.identity.provider).is_none() {
        // A reload removed its provider: nothing can refresh or end it there.
        return Ok(None);
    }
    let now = state.clock.now();
    let (idle, absolute) = rt.timeouts();
    if session.is_expired(now, idle, absolute) {
        state
            .store
            .delete(&key)
            .await
            .map_err(Reject::StoreUnavailable)?;
        return Ok(None);
    }
    if needs_refresh(state, rt, &session, now) {
        match refresh(state, rt, key).await? {
            Some(refreshed) => session = refreshed,
            None => return Ok(None),
        }
    } else if now - session.last_seen >= touch_every(idle) {
        Arc::make_mut(&mut session).last_seen = now;
        if !update(state, rt, &key, &session).await? {
            return Ok(None); // logged out since the load above
        }
    }
    if rt.passes_access_token && is_access_expired(&session, now) {
        // The app would get a dead token: better to say the provider is out.
        return Err(Reject::ProviderUnavailable);
    }
    Ok(Some(Authenticated { key, session }))
}

fn touch_every(idle: std::time::Duration) -> i64 {
    let quarter = i64::try_from(idle.as_secs() / 4).unwrap_or(TOUCH_EVERY);
    quarter.clamp(1, TOUCH_EVERY)
}

fn needs_refresh(state: &State, rt: &Runtime, session: &Session, now: i64) -> bool {
    let is_due = session.refresh_token.is_some()
        && (session
            .access_expires_at
            .is_some_and(|exp| exp - now <= REFRESH_MARGIN)
            || lacks_passed_token(rt, session));
    is_due && now >= state.provider_backoff_until.load(Ordering::Relaxed)
}

/// A session from before a reload turned `upstream.pass_access_token` on kept
/// no access token: a refresh gets one for the app.
fn lacks_passed_token(rt: &Runtime, session: &Session) -> bool {
    keeps_access_token(rt) && session.access_token.is_none()
}

fn is_access_expired(session: &Session, now: i64) -> bool {
    session.access_expires_at.is_some_and(|exp| exp <= now)
}

/// Stores a new `session` with a TTL that ends with its idle or absolute timeout.
pub async fn save(
    state: &State,
    rt: &Runtime,
    key: &SessionKey,
    session: &Session,
) -> Result<(), Reject> {
    let ttl = ttl_of(state, rt, session);
    state
        .store
        .save(key, session, ttl)
        .await
        .map_err(Reject::StoreUnavailable)
}

/// Writes back a session this request loaded, unless it ended meanwhile
/// (logout, back-channel logout): returns false then, and writes nothing.
async fn update(
    state: &State,
    rt: &Runtime,
    key: &SessionKey,
    session: &Session,
) -> Result<bool, Reject> {
    let ttl = ttl_of(state, rt, session);
    state
        .store
        .update(key, session, ttl)
        .await
        .map_err(Reject::StoreUnavailable)
}

/// A TTL that ends with the session's idle or absolute timeout.
fn ttl_of(state: &State, rt: &Runtime, session: &Session) -> Duration {
    let (idle, absolute) = rt.timeouts();
    let remaining = session.expires_at(idle, absolute) - state.clock.now();
    Duration::from_secs(u64::try_from(remaining.max(1)).unwrap_or(1))
}

/// Refreshes the session under `key` once, however many requests ask at the
/// same time: the first takes the session's gate and refreshes, the others wait
/// on the gate and then find fresh tokens in the store.
///
/// The refresh runs in its own task, so a client that hangs up cannot cancel it
/// between the provider rotating the refresh token and the store saving it
/// (losing a rotated token would end the session, or the token family).
async fn refresh(
    state: &Arc<State>,
    rt: &Runtime,
    key: SessionKey,
) -> Result<Option<Arc<Session>>, Reject> {
    let gate = state
        .refresh_gates
        .entry(key)
        .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
        .clone();
    let task = {
        let state = state.clone();
        let rt = state.runtime.load_full();
        let gate = gate.clone();
        tokio::spawn(async move {
            let _turn = gate.lock().await;
            refresh_under_gate(&state, &rt, key).await
        })
    };
    let result = task.await.map_err(|_| Reject::ProviderUnavailable)?;
    drop(gate);
    // Two holders (the map and nobody else) means no request is waiting.
    state
        .refresh_gates
        .remove_if(&key, |_, g| Arc::strong_count(g) == 1);
    let _ = rt;
    result
}

/// Refreshes the session under `key` unless someone else already has. Runs inside
/// the per-process gate; across replicas, the store's refresh lease decides who
/// refreshes, and the others wait until the new tokens are in the store.
async fn refresh_under_gate(
    state: &State,
    rt: &Runtime,
    key: SessionKey,
) -> Result<Option<Arc<Session>>, Reject> {
    let deadline = tokio::time::Instant::now() + LEASE_WAIT_LIMIT;
    loop {
        // Another request (here or on another replica) may have refreshed, or ended
        // the session, while this one waited.
        let Some(session) = load_fresh(state, &key).await? else {
            return Ok(None);
        };
        if !needs_refresh(state, rt, &session, state.clock.now()) {
            return Ok(Some(session));
        }
        let lease = state
            .store
            .try_lease(&key, LEASE_TTL)
            .await
            .map_err(Reject::StoreUnavailable)?;
        if let Some(lease) = lease {
            return refresh_under_lease(state, rt, key, lease).await;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(session = ?key, "another replica's refresh did not finish in time; going on with the current tokens");
            return Ok(Some(session));
        }
        wait_for_other_refresh(state, &key, &session, deadline).await?;
    }
}

/// Holding the lease: re-reads the session (another replica may have refreshed
/// between our read and the lease), refreshes if still due, then gives the lease back.
async fn refresh_under_lease(
    state: &State,
    rt: &Runtime,
    key: SessionKey,
    lease: Lease,
) -> Result<Option<Arc<Session>>, Reject> {
    let work = async {
        let Some(session) = load_fresh(state, &key).await? else {
            return Ok(None);
        };
        if !needs_refresh(state, rt, &session, state.clock.now()) {
            return Ok(Some(session));
        }
        refresh_now(state, rt, key, session).await
    };
    let result = keeping_lease(&state.store, &lease, work).await;
    if let Err(error) = state.store.release_lease(&lease).await {
        tracing::warn!(%error, session = ?key, "refresh lease not released; it expires by itself");
    }
    result
}

/// Runs `work` while a task renews `lease`, so a slow provider cannot outlast it
/// and let a second replica spend the same (rotating) refresh token.
async fn keeping_lease<T>(
    store: &Arc<dyn SessionStore>,
    lease: &Lease,
    work: impl Future<Output = T>,
) -> T {
    if lease.token().is_none() {
        return work.await; // an in-process lease: nothing to renew
    }
    let renewer = AbortOnDrop(tokio::spawn(renew_lease_loop(store.clone(), lease.clone())));
    let out = work.await;
    drop(renewer);
    out
}

async fn renew_lease_loop(store: Arc<dyn SessionStore>, lease: Lease) {
    let mut every = tokio::time::interval(LEASE_RENEW_EVERY);
    every.tick().await; // the first tick is immediate; the lease is fresh
    loop {
        every.tick().await;
        match store.renew_lease(&lease, LEASE_TTL).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(session = ?lease.key(), "refresh lease lost while refreshing");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, session = ?lease.key(), "refresh lease not renewed")
            }
        }
    }
}

/// Aborts a task when dropped, however the owner ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits until the session's access token changed, the session ended, or the lease
/// is free (its holder finished or died), polling the store.
async fn wait_for_other_refresh(
    state: &State,
    key: &SessionKey,
    before: &Session,
    deadline: tokio::time::Instant,
) -> Result<(), Reject> {
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(LEASE_POLL_EVERY).await;
        let is_leased = state
            .store
            .is_leased(key)
            .await
            .map_err(Reject::StoreUnavailable)?;
        if !is_leased {
            return Ok(());
        }
        match load_fresh(state, key).await? {
            Some(now) if !was_refreshed(before, &now) => {}
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// Returns true if and only if `now` holds other tokens than `before` (the
/// access token itself is not kept on every deployment; its expiry always is).
fn was_refreshed(before: &Session, now: &Session) -> bool {
    now.access_expires_at != before.access_expires_at
        || now.access_token != before.access_token
        || now.refresh_token != before.refresh_token
        || now.id_token != before.id_token
}

async fn load(state: &State, key: &SessionKey) -> Result<Option<Arc<Session>>, Reject> {
    if let Some(ready) = state.store.load_ready(key) {
        return Ok(ready);
    }
    state
        .store
        .load(key)
        .await
        .map_err(Reject::StoreUnavailable)
}

/// [`load`] past the store's cache: for the refresh decisions, where a copy from
/// before another replica's refresh would spend a rotated-out refresh token.
async fn load_fresh(state: &State, key: &SessionKey) -> Result<Option<Arc<Session>>, Reject> {
    state
        .store
        .load_fresh(key)
        .await
        .map_err(Reject::StoreUnavailable)
}

/// Spends the refresh token at the provider and stores what comes back.
async fn refresh_now(
    state: &State,
    rt: &Runtime,
    key: SessionKey,
    session: Arc<Session>,
) -> Result<Option<Arc<Session>>, Reject> {
    let now = state.clock.now();
    let Some(refresh_token) = session.refresh_token.clone() else {
        return Ok(Some(session));
    };
    let Some(provider) = rt.provider_named(&session.identity.provider) else {
        return Ok(None);
    };
    match provider
        .refresh(&refresh_token, &session.identity.sub)
        .await
    {
        Ok(tokens) => {
            state.metrics.refreshes.with_label_values(&["ok"]).inc();
            let mut session = Arc::unwrap_or_clone(session);
            apply(&mut session, tokens, keeps_access_token(rt), now);
            if !save_rotated(state, rt, &key, &session).await? {
                // Logged out while the provider answered: the new tokens must
                // not bring the session back, and are given up.
                tracing::info!(session = ?key, "session ended during its refresh; new tokens revoked");
                if let Some(refresh_token) = &session.refresh_token {
                    provider.revoke(refresh_token).await;
                }
                return Ok(None);
            }
            tracing::debug!(session = ?key, "access token refreshed");
            Ok(Some(Arc::new(session)))
        }
        Err(error) if error.is_outage() => {
            state
                .metrics
                .refreshes
                .with_label_values(&["provider_error"])
                .inc();
            state
                .metrics
                .provider_errors
                .with_label_values(&["token"])
                .inc();
            state
                .provider_backoff_until
                .store(now + OUTAGE_BACKOFF, Ordering::Relaxed);
            tracing::warn!(%error, session = ?key, "refresh failed: provider unavailable; the session stays");
            Ok(Some(session))
        }
        Err(error) => {
            state
                .metrics
                .refreshes
                .with_label_values(&["refused"])
                .inc();
            tracing::info!(%error, session = ?key, "refresh refused; the session ends");
            state
                .store
                .delete(&key)
                .await
                .map_err(Reject::StoreUnavailable)?;
            Ok(None)
        }
    }
}

/// Saves freshly refreshed tokens, retrying a failed save while the lease is held:
/// the provider may have rotated the refresh token, and losing the new one would
/// end the session at the next refresh (the old one is spent). Returns false
/// when the session ended meanwhile (nothing is written then).
async fn save_rotated(
    state: &State,
    rt: &Runtime,
    key: &SessionKey,
    session: &Session,
) -> Result<bool, Reject> {
    let mut attempt = 1;
    loop {
        match update(state, rt, key, session).await {
            Ok(wrote) => return Ok(wrote),
            Err(reject) if attempt >= SAVE_ROTATED_ATTEMPTS => {
                tracing::error!(session = ?key, "refreshed tokens could not be stored; the session will need a new login");
                return Err(reject);
            }
            Err(_) => {
                tracing::warn!(session = ?key, attempt, "storing refreshed tokens failed; retrying");
                attempt += 1;
                tokio::time::sleep(SAVE_ROTATED_RETRY_AFTER).await;
            }
        }
    }
}

/// The access token as the session keeps it: only where the app is sent it
/// (`pass_access_token` on any upstream). Nothing else reads it (refresh is timed by
/// its expiry, kept apart), and a token not stored is one a memory or Redis
/// dump cannot leak; it was also 40% of a stored session (issue 8).
pub fn keeps_access_token(rt: &Runtime) -> bool {
    rt.passes_access_token
}

/// Takes new tokens into the session: a rotated refresh token replaces the old,
/// and a refreshed ID token updates the identity (roles may have changed).
fn apply(session: &mut Session, tokens: Tokens, keep_access_token: bool, now: i64) {
    session.access_token = keep_access_token.then_some(tokens.access_token);
    session.access_expires_at = tokens.access_expires_at;
    if tokens.refresh_token.is_some() {
        session.refresh_token = tokens.refresh_token;
    }
    if !tokens.id_token.is_empty() {
        session.id_token = tokens.id_token;
    }
    if !tokens.identity.sub.is_empty() {
        session.identity = tokens.identity;
    }
    session.last_seen = now;
}

/// Begins a login that will return the browser to `rd` (checked here).
/// `headers` are the request's: the login-state cookies the browser already
/// holds beyond `session.max_login_states` (with the new one) are cleared,
/// oldest first, so neither a user with many tabs nor a page that keeps
/// starting logins can grow the browser's cookies without bound.
///
/// # Errors
/// [`Reject::ProviderUnavailable`] when discovery has not succeeded yet.
pub fn start_login(
    state: &State,
    rt: &Runtime,
    provider: &crate::auth::oidc::Provider,
    rd: Option<&str>,
    headers: &http::HeaderMap,
    prompt: Option<crate::auth::oidc::Prompt>,
) -> Result<LoginRedirect, Reject> {
    let server = &rt.config.server;
    let mut rd = redirect::safe_target(rd, &server.public_url, &server.allowed_redirect_hosts);
    // The login-state cookie rides on every request during the login: a huge
    // return URL would make it a weapon against the user's request heads.
    if rd.len() > MAX_STORED_RD {
        rd = "/".to_owned();
    }
    let login = LoginRequest::generate();
    let location = provider
        .authorize_url(&login, prompt)
        .map_err(|_| Reject::ProviderUnavailable)?;
    let name = rt.cookies.login_name(&login.state);
    let pending = PendingLogin {
        login,
        provider: provider.name().to_owned(),
        rd,
        created_at: state.clock.now(),
        seq: LOGIN_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    };
    let plain = serde_json::to_vec(&pending).expect("a PendingLogin always serializes");
    let sealed = state.login_sealer.seal_text(name.as_bytes(), &plain);
    let new_bytes = name.len() + sealed.len();
    let mut set_cookies = vec![rt.cookies.set_login(&name, sealed)];
    set_cookies.extend(
        logins_to_clear(state, rt, headers, new_bytes)
            .iter()
            .map(|old| rt.cookies.clear_login(old)),
    );
    Ok(LoginRedirect {
        location,
        set_cookies,
    })
}

/// The longest post-login return URL kept in a login-state cookie; a longer
/// one returns to `/`.
const MAX_STORED_RD: usize = 512;

/// What the login-state cookies a browser holds may add up to (names and
/// values), the new one included: they ride on every request during a login,
/// and request heads are limited (nginx: 8 KiB a line by default).
const LOGIN_COOKIES_BUDGET: usize = 4096;

/// The names of the login-state cookies in `headers` that one more login (of
/// `new_bytes`) would put past `session.max_login_states` or
/// [`LOGIN_COOKIES_BUDGET`]: the oldest, and first of all any that do not open
/// (forged, or sealed under a secret no longer configured).
fn logins_to_clear(
    state: &State,
    rt: &Runtime,
    headers: &http::HeaderMap,
    new_bytes: usize,
) -> Vec<String> {
    let max = rt.config.session.max_login_states;
    let by_name: std::collections::BTreeMap<&str, ((i64, u64), usize)> = rt
        .cookies
        .logins(headers)
        .map(|(name, sealed)| {
            let age = state
                .login_sealer
                .open_text(name.as_bytes(), sealed)
                .and_then(|plain| serde_json::from_slice::<PendingLogin>(&plain).ok())
                .map_or((i64::MIN, 0), |pending| (pending.created_at, pending.seq));
            (name, (age, name.len() + sealed.len()))
        })
        .collect();
    let mut held: Vec<((i64, u64), usize, &str)> = by_name
        .into_iter()
        .map(|(name, (age, bytes))| (age, bytes, name))
        .collect();
    held.sort_unstable();
    let mut count = held.len() + 1;
    let mut bytes = new_bytes + held.iter().map(|(_, b, _)| b).sum::<usize>();
    let mut doomed = Vec::new();
    for (_, size, name) in held {
        if count <= max && bytes <= LOGIN_COOKIES_BUDGET {
            break;
        }
        doomed.push(name.to_owned());
        count -= 1;
        bytes -= size;
    }
    doomed
}

/// The URL a script can send the user to for login (in 401 bodies).
pub fn login_url(rt: &Runtime, rd: &str, provider: Option<&str>) -> String {
    let server = &rt.config.server;
    let rd: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
    let provider = provider.map_or(String::new(), |name| {
        let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        format!("&provider={name}")
    });
    format!(
        "{}{}/login?rd={rd}{provider}",
        server.public_url.as_str().trim_end_matches('/'),
        server.auth_prefix
    )
}

/// The providers of `admitted` (indices) a browser can sign in with.
pub fn sign_in_providers<'a>(
    rt: &'a Runtime,
    admitted: &'a [usize],
) -> impl Iterator<Item = &'a std::sync::Arc<crate::auth::oidc::Provider>> + 'a {
    admitted
        .iter()
        .map(|&index| rt.providers.get(index))
        .filter(|provider| provider.has_client())
}

/// A login for a browser that may sign in with the providers `admitted`
/// (indices): straight to the one, or the chooser among several.
///
/// # Errors
/// [`Reject::ProviderUnavailable`] when the provider is not discovered yet,
/// [`Reject::ChooseProvider`] when there are several.
pub fn login_for(
    state: &State,
    rt: &Runtime,
    rd: &str,
    headers: &http::HeaderMap,
    admitted: &[usize],
) -> Result<LoginRedirect, Reject> {
    let candidates: Vec<_> = sign_in_providers(rt, admitted).collect();
    match candidates.as_slice() {
        [] => Err(Reject::ProviderUnavailable),
        [only] => start_login(state, rt, only, Some(rd), headers, None),
        several => Err(Reject::ChooseProvider(Chooser {
            rd: rd.to_owned(),
            options: several
                .iter()
                .map(|p| {
                    let url = login_url(rt, rd, Some(p.name()));
                    (p.name().to_owned(), p.display_name().to_owned(), url)
                })
                .collect(),
        })),
    }
}

/// Where a login started by a request for `target` on `authority` (the `Host`
/// as sent) returns to: the path and query, or the whole URL (with the public
/// URL's scheme) when the request was for another host that shares the
/// session cookie (`session.cookie_domain`), the only kind of other host a
/// browser session can reach.
pub fn return_url(rt: &Runtime, authority: &str, target: &Target) -> String {
    let public_host = rt.config.server.public_url.host_str().unwrap_or_default();
    let asked_host = crate::proxy::host_name(authority).unwrap_or_default();
    let shares_cookie = rt
        .config
        .session
        .cookie_domain
        .as_deref()
        .is_some_and(|domain| asked_host == domain || asked_host.ends_with(&format!(".{domain}")));
    if asked_host.eq_ignore_ascii_case(public_host) || !shares_cookie {
        return target.path_and_query();
    }
    let scheme = rt.config.server.public_url.scheme();
    target.path_and_query_after(&format!("{scheme}://{authority}"))
}

/// The reject for a request that needs a session and has none: a login redirect
/// for a browser navigating, 401 with the login URL for anything else.
///
/// A browser on another host than `public_url`'s is sent to the login
/// endpoint on the public host (`rd` = the whole URL it asked for) rather than
/// given a login-state cookie here: those cookies are `__Host-` on the public
/// host, where the provider sends the callback, so no sibling subdomain can
/// plant one. The session cookie reaches the other host through
/// `session.cookie_domain`, and `rd` through `server.allowed_redirect_hosts`.
pub fn unauthenticated(
    state: &State,
    rt: &Runtime,
    is_navigation: bool,
    rd: &str,
    headers: &http::HeaderMap,
    admitted: &[usize],
) -> Reject {
    // Naming the provider matters only where there are several.
    let mut sign_in = sign_in_providers(rt, admitted);
    let only = match (sign_in.next(), sign_in.next()) {
        (Some(only), None) if rt.providers.iter().count() > 1 => Some(only.name()),
        _ => None,
    };
    if !is_navigation {
        return Reject::Unauthenticated {
            login_url: login_url(rt, rd, only),
        };
    }
    if !rd.starts_with('/') {
        return Reject::LoginRequired(LoginRedirect {
            location: login_url(rt, rd, only),
            set_cookies: Vec::new(),
        });
    }
    match login_for(state, rt, rd, headers, admitted) {
        Ok(redirect) => Reject::LoginRequired(redirect),
        Err(reject) => reject,
    }
}
