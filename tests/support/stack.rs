//! A whole deployment on loopback: the echo app, the development OpenID
//! provider (a real one over real HTTP), and the proxy in front; plus a
//! cookie-keeping `Browser` that signs in the way a person does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;

use portcullis::clock::ManualClock;
use portcullis::config;
use portcullis::server::{self, Options, Running};
use portcullis_devidp as devidp;

use super::{client, full, init, Echo, Seen};

/// Echo app + dev provider + proxy, wired together.
pub struct Stack {
    pub echo: Echo,
    pub idp: devidp::DevIdp,
    /// The providers besides the default (SPEC §12), in [`StackOptions::partners`] order.
    pub partners: Vec<Partner>,
    /// Third-party services for connected accounts (SPEC §13), in
    /// [`StackOptions::services`] order.
    pub services: Vec<Partner>,
    pub proxy: Running,
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
}

/// Routes most login tests use.
pub const ROUTES: &str = r#"
[[route]]
name = "public"
path = "/public"
auth = "public"

[[route]]
name = "admin"
path = "/admin"
roles_any = ["admin"]

[[route]]
name = "api"
path = "/api"
auth = "bearer"

[[route]]
name = "either"
path = "/either"
auth = "login_or_bearer"
"#;

/// A free loopback port (bound and released: the proxy takes it right after).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

pub struct StackOptions {
    pub extra: String,
    /// The port users reach the proxy on, when something (nginx) sits in front.
    pub public_port: Option<u16>,
    pub idp: Box<dyn Fn(&mut devidp::Config)>,
    pub client_auth: devidp::ClientAuth,
    /// Another upstream than the echo app (benchmarks).
    pub upstream: Option<String>,
    /// `upstream.pass_access_token`.
    pub pass_access_token: bool,
    /// TOML lines added to the `[server]` table; `{port}` becomes the proxy's port.
    pub server: String,
    /// TOML lines added to the `[oidc]` table.
    pub oidc: String,
    /// TOML lines added to the `[admin]` table.
    pub admin: String,
    /// More identity providers, each `[providers.NAME]` with a development
    /// provider of its own (SPEC §12). None by default.
    pub partners: Vec<PartnerOptions>,
    /// Third-party OAuth 2.0 services (development providers with a plain
    /// OAuth client for the proxy), each a `[connections.NAME]` and an
    /// `[upstreams.NAME]` pointing at the service (its `/api/me`). None by default.
    pub services: Vec<ServiceOptions>,
}

/// A third-party service to connect accounts at (SPEC §13).
pub struct ServiceOptions {
    pub name: String,
    /// Lines added to its `[connections.NAME]` table.
    pub table: String,
    /// Any change to its provider's configuration (the proxy's client is
    /// `clients[0]`).
    pub idp: Box<dyn Fn(&mut devidp::Config)>,
}

impl ServiceOptions {
    pub fn named(name: &str) -> Self {
        ServiceOptions {
            name: name.to_owned(),
            table: String::new(),
            idp: Box::new(|_| {}),
        }
    }
}

/// A provider besides the default: its `[providers.NAME]` table and the
/// development provider behind it.
pub struct PartnerOptions {
    /// `NAME` of `[providers.NAME]`.
    pub name: String,
    /// `display_name`, shown on the sign-in chooser.
    pub display_name: String,
    /// The users its sign-in page offers.
    pub users: Vec<devidp::User>,
    /// The top-level claim its roles travel in: the provider writes them
    /// there and the proxy's `roles_claim` reads them there.
    pub roles_claim: String,
    /// Whether the proxy has a client there (browsers can sign in; the client
    /// registers `{public}/_auth/callback/NAME` and the back-channel logout
    /// URI). Without: bearer tokens only, for [`PartnerOptions::audience`].
    pub client: bool,
    /// `audience` (required without a client); the provider's access tokens carry it.
    pub audience: Option<String>,
    /// The issuer is a closed loopback port: no provider runs, and the proxy
    /// never discovers it.
    pub unreachable: bool,
    /// Any other change to the provider's configuration.
    pub idp: Box<dyn Fn(&mut devidp::Config)>,
}

impl PartnerOptions {
    /// A provider named `name` with a client, the demo users and `roles`,
    /// shown as `"{name} SSO"` on the chooser.
    pub fn named(name: &str) -> Self {
        PartnerOptions {
            name: name.to_owned(),
            display_name: format!("{name} SSO"),
            users: devidp::demo_users(),
            roles_claim: "roles".to_owned(),
            client: true,
            audience: None,
            unreachable: false,
            idp: Box::new(|_| {}),
        }
    }

    /// A provider named `name` without a client: bearer tokens for `audience` only.
    pub fn bearer_only(name: &str, audience: &str) -> Self {
        PartnerOptions {
            client: false,
            audience: Some(audience.to_owned()),
            ..Self::named(name)
        }
    }
}

/// A running provider besides the default.
pub struct Partner {
    pub name: String,
    pub issuer: String,
    /// `None` when [`PartnerOptions::unreachable`].
    pub idp: Option<devidp::DevIdp>,
}

impl Partner {
    /// The client id the proxy has at this provider (when it has one).
    pub fn client_id(&self) -> String {
        format!("portcullis-{}", self.name)
    }
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            extra: ROUTES.to_owned(),
            public_port: None,
            idp: Box::new(|_| {}),
            client_auth: devidp::ClientAuth::Basic,
            upstream: None,
            pass_access_token: false,
            server: String::new(),
            oidc: String::new(),
            admin: String::new(),
            partners: Vec::new(),
            services: Vec::new(),
        }
    }
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(StackOptions::default()).await
    }

    pub async fn start_with(options: StackOptions) -> Stack {
        init();
        // `free_port` releases the port before the proxy binds it, and a
        // parallel test's outgoing connection can take it meanwhile: retry.
        for _ in 0..4 {
            if let Some(stack) = Self::try_start(&options, free_port()).await {
                stack.wait_ready().await;
                return stack;
            }
        }
        Self::try_start(&options, free_port())
            .await
            .expect("the proxy's port was taken five times in a row")
    }

    /// One attempt at [`Stack::start_with`] on `port`; `None` when the port
    /// was taken before the proxy could bind it.
    async fn try_start(options: &StackOptions, port: u16) -> Option<Stack> {
        let echo = Echo::start().await;
        let public = format!("http://127.0.0.1:{}", options.public_port.unwrap_or(port));
        let mut client = devidp::Client::new(
            "portcullis",
            "s3cret-of-the-client",
            format!("{public}/_auth/callback"),
        );
        client.post_logout_redirect_uris = vec![format!("{public}/")];
        client.backchannel_logout_uri = Some(format!("{public}/_auth/backchannel-logout"));
        client.auth_method = options.client_auth;
        let mut idp_config = devidp::Config::new(client);
        (options.idp)(&mut idp_config);
        let idp = devidp::start(idp_config)
            .await
            .expect("dev provider starts");
        let mut partners = Vec::new();
        let mut provider_tables = String::new();
        for options in &options.partners {
            let partner = start_partner(options, &public).await;
            provider_tables.push_str(&provider_table(options, &partner));
            partners.push(partner);
        }
        let mut services = Vec::new();
        for options in &options.services {
            let service = start_service(options, &public).await;
            provider_tables.push_str(&service_tables(options, &service));
            services.push(service);
        }

        let toml = format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "{public}"
{server}

[admin]
listen = "127.0.0.1:0"
{admin}

[upstream]
url = "{upstream}"
pass_access_token = {pass_access_token}

[oidc]
issuer = "{issuer}"
client_id = "portcullis"
client_secret = "s3cret-of-the-client"
scopes = ["openid", "profile", "email", "offline_access"]
{oidc}

{provider_tables}

{extra}
"#,
            upstream = options.upstream.clone().unwrap_or_else(|| echo.url()),
            issuer = idp.issuer(),
            extra = options.extra,
            pass_access_token = options.pass_access_token,
            server = options.server.replace("{port}", &port.to_string()),
            oidc = options.oidc,
            admin = options.admin,
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("portcullis.toml");
        std::fs::write(&path, toml).expect("write config");
        let config = config::load_with_env(&path, &[])
            .unwrap_or_else(|e| panic!("stack config invalid:\n{e}"));
        let clock = Arc::new(ManualClock::new(now()));
        let started = server::start_with(
            config,
            Options {
                clock: clock.clone(),
            },
        )
        .await;
        let proxy = match started {
            Ok(proxy) => proxy,
            Err(server::ServerError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                idp.shutdown();
                return None;
            }
            Err(error) => panic!("proxy starts: {error}"),
        };
        let addr = proxy.public_addr;
        Some(Stack {
            echo,
            idp,
            partners,
            services,
            proxy,
            addr,
            clock,
            dir,
        })
    }

    /// Waits until the proxy has discovered the provider.
    pub async fn wait_ready(&self) {
        let url = format!("http://{}/readyz", self.proxy.admin_addr);
        for _ in 0..100 {
            if super::get(&url, &[]).await.0 == StatusCode::OK {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the proxy never became ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn browser(&self) -> Browser {
        Browser::default()
    }

    /// A browser signed in as `user` (through the real provider's sign-in form).
    pub async fn login(&self, user: &str) -> Browser {
        let mut browser = self.browser();
        let landed = browser.sign_in(&self.url("/whoami"), user).await;
        assert_eq!(
            landed.status,
            StatusCode::OK,
            "sign-in as {user} lands on the app: {}",
            landed.body
        );
        browser
    }

    /// A browser signed in as `user` at the provider named `provider`
    /// (`/_auth/login?provider=NAME`), landed on `rd` (a page of a route that
    /// admits that provider).
    pub async fn login_at(&self, provider: &str, user: &str, rd: &str) -> Browser {
        let mut browser = self.browser();
        let landed = browser.sign_in(&self.login_url(provider, rd), user).await;
        assert_eq!(
            landed.status,
            StatusCode::OK,
            "sign-in as {user} at {provider} lands on {rd}: {}",
            landed.body
        );
        browser
    }

    /// `/_auth/login?rd=RD&provider=NAME`.
    pub fn login_url(&self, provider: &str, rd: &str) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("rd", rd)
            .append_pair("provider", provider)
            .finish();
        self.url(&format!("/_auth/login?{query}"))
    }

    /// The running development provider behind `[providers.NAME]`.
    ///
    /// # Panics
    /// When there is no such partner, or it is unreachable.
    /// The third-party service `name`'s provider.
    pub fn service(&self, name: &str) -> &devidp::DevIdp {
        self.services
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.idp.as_ref())
            .unwrap_or_else(|| panic!("no running service {name:?}"))
    }

    pub fn partner(&self, name: &str) -> &devidp::DevIdp {
        self.partners
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.idp.as_ref())
            .unwrap_or_else(|| panic!("no running partner provider {name:?}"))
    }

    /// Moves the proxy's clock (session timeouts) and every provider's (token expiry).
    pub fn advance(&self, secs: i64) {
        self.clock.advance(secs);
        let by = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
        self.idp.advance_clock(by);
        for idp in self
            .partners
            .iter()
            .chain(&self.services)
            .filter_map(|p| p.idp.as_ref())
        {
            idp.advance_clock(by);
        }
    }

    /// Rewrites the proxy's config file with `edit` and reloads it, as SIGHUP would.
    pub async fn reload_with(
        &self,
        edit: impl FnOnce(String) -> String,
    ) -> Result<(), portcullis::server::ReloadError> {
        let path = self.dir.path().join("portcullis.toml");
        let text = std::fs::read_to_string(&path).expect("read config");
        std::fs::write(&path, edit(text)).expect("write config");
        self.proxy.reloader().reload_file(&path).await
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.proxy.admin_addr)
    }
}

/// Starts the development provider of a partner (or, when it is to be
/// unreachable, only picks a closed port for its issuer).
async fn start_partner(options: &PartnerOptions, public: &str) -> Partner {
    let mut partner = Partner {
        name: options.name.clone(),
        issuer: String::new(),
        idp: None,
    };
    if options.unreachable {
        partner.issuer = format!("http://127.0.0.1:{}", free_port());
        return partner;
    }
    let mut config = devidp::Config {
        users: options.users.clone(),
        roles_claim: devidp::RolesClaim::TopLevel(options.roles_claim.clone()),
        access_token_audience: options.audience.clone(),
        ..devidp::Config::default()
    };
    if options.client {
        let mut client = devidp::Client::new(
            partner.client_id(),
            partner_secret(&options.name),
            format!("{public}/_auth/callback/{}", options.name),
        );
        client.post_logout_redirect_uris = vec![format!("{public}/")];
        client.backchannel_logout_uri = Some(format!("{public}/_auth/backchannel-logout"));
        config.clients.push(client);
    }
    (options.idp)(&mut config);
    let idp = devidp::start(config)
        .await
        .expect("partner dev provider starts");
    partner.issuer = idp.issuer();
    partner.idp = Some(idp);
    partner
}

/// Starts a third-party service's provider with a plain OAuth 2.0 client for
/// the proxy (no `openid` needed).
pub async fn start_service(options: &ServiceOptions, public: &str) -> Partner {
    let mut client = devidp::Client::new(
        service_client_id(&options.name),
        partner_secret(&options.name),
        format!("{public}/_auth/connect/{}/callback", options.name),
    );
    client.is_openid_required = false;
    let mut config = devidp::Config::new(client);
    (options.idp)(&mut config);
    let idp = devidp::start(config)
        .await
        .expect("service dev provider starts");
    Partner {
        name: options.name.clone(),
        issuer: idp.issuer(),
        idp: Some(idp),
    }
}

pub fn service_client_id(name: &str) -> String {
    format!("portcullis-connect-{name}")
}

/// `[connections.NAME]` by discovery, and `[upstreams.NAME]` at the service.
pub fn service_tables(options: &ServiceOptions, service: &Partner) -> String {
    format!(
        r#"[connections.{name}]
display_name = "{name} service"
issuer = "{issuer}"
client_id = "{id}"
client_secret = "{secret}"
scopes = ["repo", "read:user"]
{table}

[upstreams.{name}]
url = "{issuer}"

"#,
        name = options.name,
        issuer = service.issuer,
        id = service_client_id(&options.name),
        secret = partner_secret(&options.name),
        table = options.table,
    )
}

fn partner_secret(name: &str) -> String {
    format!("s3cret-of-the-{name}-client")
}

/// The `[providers.NAME]` table for `partner`.
fn provider_table(options: &PartnerOptions, partner: &Partner) -> String {
    let mut table = format!(
        "[providers.{name}]\ndisplay_name = \"{display}\"\nissuer = \"{issuer}\"\nroles_claim = \"{roles}\"\n",
        name = options.name,
        display = options.display_name,
        issuer = partner.issuer,
        roles = options.roles_claim,
    );
    if options.client {
        table.push_str(&format!(
            "client_id = \"{}\"\nclient_secret = \"{}\"\nscopes = [\"openid\", \"profile\", \"email\", \"offline_access\"]\n",
            partner.client_id(),
            partner_secret(&options.name),
        ));
    }
    if let Some(audience) = &options.audience {
        table.push_str(&format!("audience = \"{audience}\"\n"));
    }
    table.push('\n');
    table
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// One response, read whole.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
    pub url: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }

    pub fn seen(&self) -> Seen {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not echo JSON ({e}): {}", self.body))
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }
}

/// A minimal browser: a cookie jar (by name, across loopback ports, like a real
/// browser's per-host jar), redirects followed by hand or automatically, and the
/// provider's sign-in form filled in.
#[derive(Clone, Default)]
pub struct Browser {
    pub jar: BTreeMap<String, String>,
}

impl Browser {
    /// One request; cookies sent and stored; no redirect followed.
    pub async fn request(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Page {
        let mut b = Request::builder().method(method).uri(url);
        if !self.jar.is_empty() {
            let cookie = self
                .jar
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            b = b.header(header::COOKIE, cookie);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = client()
            .request(b.body(full(body.to_owned())).expect("request"))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let (parts, body) = resp.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let page = Page {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            url: url.to_owned(),
        };
        for set in page.set_cookies() {
            self.store_cookie(&set);
        }
        page
    }

    fn store_cookie(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
            return;
        };
        let removed = parts.any(|attr| {
            let attr = attr.trim().to_ascii_lowercase();
            attr == "max-age=0" || attr.starts_with("expires=thu, 01 jan 1970")
        });
        if removed || value.is_empty() {
            self.jar.remove(name);
        } else {
            self.jar.insert(name.to_owned(), value.to_owned());
        }
    }

    /// A browser navigation (`Accept: text/html`).
    pub async fn navigate(&mut self, url: &str) -> Page {
        self.request(
            Method::GET,
            url,
            &[("accept", "text/html,application/xhtml+xml")],
            "",
        )
        .await
    }

    /// A script's request (`Accept: application/json`).
    pub async fn fetch(&mut self, url: &str) -> Page {
        self.request(Method::GET, url, &[("accept", "application/json")], "")
            .await
    }

    /// Navigates to `url`, following redirects (up to 10) until a page that is not one.
    pub async fn follow(&mut self, url: &str) -> Page {
        let mut url = url.to_owned();
        for _ in 0..10 {
            let page = self.navigate(&url).await;
            match page.location() {
                Some(next) if page.status.is_redirection() => url = absolute(&url, next),
                _ => return page,
            }
        }
        panic!("too many redirects from {url}");
    }

    /// Opens `url`, signs in at the provider as `user` if asked, and follows the
    /// redirects back; returns the final page.
    pub async fn sign_in(&mut self, url: &str, user: &str) -> Page {
        let page = self.follow(url).await;
        if !page.body.contains("name=\"user\"") {
            return page; // already signed in at the provider (SSO) or no login needed
        }
        let next = self.submit_sign_in(&page, user).await;
        self.follow(&next).await
    }

    /// Opens `url`; on the proxy's sign-in chooser picks `provider` (follows
    /// its link, as a person clicks it); signs in there as `user` if asked,
    /// and follows the redirects back; returns the final page.
    pub async fn sign_in_with(&mut self, url: &str, provider: &str, user: &str) -> Page {
        let mut page = self.follow(url).await;
        if page.body.contains("data-provider=") {
            let link = chooser_link(&page, provider)
                .unwrap_or_else(|| panic!("the chooser offers no {provider}: {}", page.body));
            page = self.follow(&link).await;
        }
        if !page.body.contains("name=\"user\"") {
            return page;
        }
        let next = self.submit_sign_in(&page, user).await;
        self.follow(&next).await
    }

    /// Submits the provider's sign-in form on `page` for `user`; returns the
    /// redirect target (the proxy's callback).
    pub async fn submit_sign_in(&mut self, page: &Page, user: &str) -> String {
        let form = sign_in_form(&page.body, &[("user", user)]);
        let action = absolute(&page.url, "/authorize");
        let resp = self
            .request(
                Method::POST,
                &action,
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("accept", "text/html"),
                ],
                &form,
            )
            .await;
        assert!(
            resp.status.is_redirection(),
            "sign-in form answered {}: {}",
            resp.status,
            resp.body
        );
        absolute(&action, resp.location().expect("a redirect"))
    }

    /// Submits the provider's form with Cancel.
    pub async fn cancel_sign_in(&mut self, page: &Page) -> String {
        let form = sign_in_form(&page.body, &[("action", "cancel")]);
        let action = absolute(&page.url, "/authorize");
        let resp = self
            .request(
                Method::POST,
                &action,
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("accept", "text/html"),
                ],
                &form,
            )
            .await;
        absolute(&action, resp.location().expect("a redirect"))
    }
}

/// The absolute URL of the sign-in chooser's link for `provider` on `page`, if any.
pub fn chooser_link(page: &Page, provider: &str) -> Option<String> {
    chooser_links(page)
        .into_iter()
        .find(|(name, _, _)| name == provider)
        .map(|(_, _, url)| url)
}

/// The sign-in chooser's links on `page`: `(provider name, text shown, absolute URL)`.
pub fn chooser_links(page: &Page) -> Vec<(String, String, String)> {
    let re =
        regex::Regex::new(r#"<a [^>]*data-provider="([^"]*)"[^>]*href="([^"]*)"[^>]*>([^<]*)</a>"#)
            .expect("regex");
    re.captures_iter(&page.body)
        .map(|cap| {
            (
                unescape(&cap[1]),
                unescape(&cap[3]),
                absolute(&page.url, &unescape(&cap[2])),
            )
        })
        .collect()
}

/// The hidden fields of the sign-in form, plus `extra`, form-urlencoded.
fn sign_in_form(html: &str, extra: &[(&str, &str)]) -> String {
    let re = regex::Regex::new(r#"<input type="hidden" name="([^"]*)" value="([^"]*)">"#)
        .expect("regex");
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for cap in re.captures_iter(html) {
        form.append_pair(&unescape(&cap[1]), &unescape(&cap[2]));
    }
    for (k, v) in extra {
        form.append_pair(k, v);
    }
    form.finish()
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `next` resolved against `base`.
pub fn absolute(base: &str, next: &str) -> String {
    url::Url::parse(base)
        .and_then(|b| b.join(next))
        .map(String::from)
        .unwrap_or_else(|_| next.to_owned())
}
