//! `portcullis demo`: a newcomer's first run with no account anywhere (SPEC §1).
//!
//! Starts the development OpenID provider (`portcullis-devidp`, loopback only),
//! a demo app that renders the headers it receives, and the proxy in front with
//! example rules: a public page, a page for any signed-in user, an admin page.
//! A second development provider plays a third-party OAuth 2.0 service ("Acme
//! Files") for connected accounts (SPEC §13): the app's `/connected` page links
//! the user's account there and calls its API through the proxy's `/acme` route,
//! which carries the user's Acme access token. The proxy's config is generated
//! as TOML and goes through the same loader and validation as an operator's file.

use std::convert::Infallible;
use std::net::SocketAddr;

use base64::Engine;
use bytes::Bytes;
use http::{header, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use portcullis_devidp as devidp;

use crate::config;
use crate::proxy::respond::escape_html;
use crate::server::{self, Running};

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("development provider: {0}")]
    Provider(#[from] devidp::Error),
    #[error("demo app: cannot listen on 127.0.0.1: {0}")]
    App(std::io::Error),
    #[error("generated config: {0}")]
    Config(String),
    #[error(transparent)]
    Proxy(#[from] server::ServerError),
}

/// The running parts of the demo.
pub struct Demo {
    pub url: String,
    /// The login provider.
    pub idp: devidp::DevIdp,
    /// The third party of the connected-accounts page ([`CONNECTION`]); it
    /// stops when the demo is dropped.
    pub service: devidp::DevIdp,
    pub proxy: Running,
    pub app: SocketAddr,
    _dir: tempfile::TempDir,
}

/// The connection's name: `[connections.acme]`, `/_auth/connect/acme`, and the
/// `/acme` route to its API (written out in `ROUTES` and the page too).
pub const CONNECTION: &str = "acme";

/// The app's page that shows the connected account.
pub const CONNECTED_PAGE: &str = "/connected";

/// The demo's rules, as an operator would write them.
const ROUTES: &str = r#"
[[route]]
name = "home"
path_exact = "/"
auth = "public"

[[route]]
name = "admin"
path = "/admin"
roles_any = ["admin"]

# The third party's API with the signed-in user's Acme token (SPEC §13):
# /acme/api/me reaches Acme's /api/me as `Authorization: Bearer <token>`.
[[route]]
name = "acme-api"
path = "/acme"
upstream = "acme"
strip_prefix = "/acme"
connections = ["acme"]

[policy]
default = "login"   # everything else: any signed-in user
"#;

/// Starts the demo with the proxy on `127.0.0.1:port` (0 picks a free port).
///
/// # Errors
/// When a part cannot start (a port in use, most often).
pub async fn start(port: u16) -> Result<Demo, DemoError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).map_err(DemoError::App)?;
    let proxy_addr = listener.local_addr().map_err(DemoError::App)?;
    drop(listener);
    let public = format!("http://127.0.0.1:{}", proxy_addr.port());

    let secret =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let mut client = devidp::Client::new(
        "portcullis-demo",
        secret.clone(),
        format!("{public}/_auth/callback"),
    );
    client.post_logout_redirect_uris = vec![format!("{public}/")];
    client.backchannel_logout_uri = Some(format!("{public}/_auth/backchannel-logout"));
    let idp = devidp::start(devidp::Config::new(client)).await?;
    let service_secret =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let service = start_service(&public, &service_secret).await?;
    let app = start_app().await?;

    let toml = format!(
        r#"
[server]
listen = "{proxy_addr}"
public_url = "{public}"

[admin]
listen = "127.0.0.1:0"

[upstream]
url = "http://{app}"

[oidc]
issuer = "{issuer}"
client_id = "portcullis-demo"
client_secret = "{secret}"
scopes = ["openid", "profile", "email", "offline_access"]

[connections.{CONNECTION}]
display_name = "Acme Files (development third party)"
issuer = "{service_issuer}"
client_id = "portcullis-demo-{CONNECTION}"
client_secret = "{service_secret}"
scopes = ["files:read", "profile"]

[upstreams.{CONNECTION}]
url = "{service_issuer}"

[log]
format = "text"
{ROUTES}"#,
        issuer = idp.issuer(),
        service_issuer = service.issuer(),
    );
    let dir = tempfile::tempdir().map_err(|e| DemoError::Config(e.to_string()))?;
    let path = dir.path().join("demo.toml");
    std::fs::write(&path, toml).map_err(|e| DemoError::Config(e.to_string()))?;
    let config = config::load_with_env(&path, &[]).map_err(|e| DemoError::Config(e.to_string()))?;
    let proxy = server::start(config).await?;
    Ok(Demo {
        url: format!("{public}/"),
        idp,
        service,
        proxy,
        app,
        _dir: dir,
    })
}

/// The third party: a second development provider with a plain OAuth 2.0
/// client for the proxy (no `openid`, opaque access tokens, as GitHub's) and
/// the same demo users, so a person signs in there under the same name.
async fn start_service(public: &str, secret: &str) -> Result<devidp::DevIdp, DemoError> {
    let mut client = devidp::Client::new(
        format!("portcullis-demo-{CONNECTION}"),
        secret,
        format!("{public}/_auth/connect/{CONNECTION}/callback"),
    );
    client.is_openid_required = false;
    client.access_token_format = devidp::AccessTokenFormat::Opaque;
    Ok(devidp::start(devidp::Config::new(client)).await?)
}

impl Demo {
    /// What to tell the newcomer.
    pub fn banner(&self) -> String {
        let users: String = devidp::demo_users()
            .iter()
            .map(|u| format!("    {:<6} roles: {}\n", u.username, u.roles.join(", ")))
            .collect();
        format!(
            "\nportcullis demo is running.\n\n  Open {url}\n\n  Sign in as one of:\n{users}\n  \
             {url}        public page\n  {url}me      any signed-in user\n  {url}admin   role admin only (bob gets 403)\n  \
             {url}connected   connect a (development) third-party account, Acme Files, and call its API\n  \
             {url}_auth/logout   sign out\n\n  provider: {issuer}   third party: {service}   app: http://{app}   \
             metrics: http://{admin}/metrics\n\n\
             Ctrl-C stops them all.\n",
            url = self.url,
            issuer = self.idp.issuer(),
            service = self.service.issuer(),
            app = self.app,
            admin = self.proxy.admin_addr,
        )
    }
}

/// The demo app: renders the request it received, headers included, as a page.
async fn start_app() -> Result<SocketAddr, DemoError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(DemoError::App)?;
    let addr = listener.local_addr().map_err(DemoError::App)?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(|req| async move { Ok::<_, Infallible>(app_page(&req)) });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The app's pages: [`CONNECTED_PAGE`], and for any other path the request it
/// received, headers included.
fn app_page(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let user = req
        .headers()
        .get("x-forwarded-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let greeting = if user.is_empty() {
        "You are not signed in (this page is public). <a href=\"/me\">Sign in</a>".to_owned()
    } else {
        format!(
            "Signed in as <strong>{}</strong>. <a href=\"/_auth/logout\">Sign out</a>",
            escape_html(user)
        )
    };
    let body = if req.uri().path() == CONNECTED_PAGE {
        format!("<p>{greeting}</p>{CONNECTED_BODY}")
    } else {
        request_body(req, &greeting)
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>demo app</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}}\
         table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #eee;\
         font-family:ui-monospace,monospace;font-size:.85rem;word-break:break-all}}tr.id{{background:#eef6ee}}\
         pre{{background:#f6f6f6;padding:.6rem;white-space:pre-wrap;word-break:break-all}}\
         nav a{{margin-right:1rem}}</style></head><body>\
         <h1>The app behind portcullis</h1><nav><a href=\"/\">/ (public)</a><a href=\"/me\">/me (any user)</a>\
         <a href=\"/admin\">/admin (role admin)</a><a href=\"{CONNECTED_PAGE}\">{CONNECTED_PAGE} (third-party account)</a>\
         <a href=\"/_auth/userinfo\">userinfo</a></nav>{body}</body></html>"
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Full::new(Bytes::from(html)))
        .expect("static response parts are valid")
}

/// The request as the app received it: the identity headers portcullis set
/// (highlighted) among the others.
fn request_body(req: &Request<Incoming>, greeting: &str) -> String {
    let rows: String = req
        .headers()
        .iter()
        .map(|(k, v)| {
            let highlight = if k.as_str().starts_with("x-forwarded-")
                || k.as_str().starts_with("x-portcullis")
            {
                " class=\"id\""
            } else {
                ""
            };
            format!(
                "<tr{highlight}><th>{}</th><td>{}</td></tr>",
                escape_html(k.as_str()),
                escape_html(&String::from_utf8_lossy(v.as_bytes()))
            )
        })
        .collect();
    format!(
        "<p>{greeting}</p><p><a href=\"/_auth/connect/acme?rd={CONNECTED_PAGE}\">Connect a \
         (development) third-party account</a></p><p>This app checks nothing: it trusts the \
         identity headers portcullis sets (highlighted). Request: <code>{method} {path}</code></p>\
         <table>{rows}</table>",
        method = escape_html(req.method().as_str()),
        path = escape_html(&req.uri().to_string()),
    )
}

/// [`CONNECTED_PAGE`]: the browser asks the proxy which accounts are linked and
/// calls Acme's API through the `/acme` route; neither answer ever holds a
/// token. The script writes only `textContent`, so nothing it shows is markup.
/// Disconnect is a plain form post, which a browser sends with `Origin`, as
/// the proxy requires (SPEC §13).
const CONNECTED_BODY: &str = r#"<h2>Connected account: Acme Files (development third party)</h2>
<p>portcullis keeps your Acme tokens server-side and adds your access token to requests on
<code>/acme</code>; this page and your browser never see it.</p>
<p id="status">Checking&hellip;</p>
<p><a id="connect" href="/_auth/connect/acme?rd=/connected">Connect a (development) third-party account</a></p>
<form id="disconnect" method="post" action="/_auth/connect/acme/disconnect">
<input type="hidden" name="rd" value="/connected"><button type="submit">Disconnect</button></form>
<h3><code>GET /_auth/connections</code> (the proxy: your links, never a token)</h3>
<pre id="connections">&hellip;</pre>
<h3><code>GET /acme/api/me</code> (Acme's API, through portcullis with your token)</h3>
<pre id="api">&hellip;</pre>
<script>
async function show(url, id) {
  const out = document.getElementById(id);
  try {
    const response = await fetch(url, { headers: { accept: "application/json" } });
    const text = await response.text();
    let body = null;
    try { body = JSON.parse(text); } catch (e) {}
    out.textContent = response.status + " " + (body === null ? text : JSON.stringify(body, null, 2));
    return response.ok ? body : null;
  } catch (e) {
    out.textContent = String(e);
    return null;
  }
}
(async () => {
  const error = new URLSearchParams(location.search).get("connect_error");
  const links = await show("/_auth/connections", "connections");
  await show("/acme/api/me", "api");
  const acme = (links || []).find((link) => link.name === "acme");
  const connected = Boolean(acme && acme.connected);
  document.getElementById("connect").hidden = connected;
  document.getElementById("disconnect").hidden = !connected;
  document.getElementById("status").textContent =
    (connected ? "Your Acme Files account is connected." : "No Acme Files account is connected.") +
    (error ? " The last attempt failed: " + error + "." : "");
})();
</script>"#;
