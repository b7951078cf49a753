//! `portcullis demo`: a newcomer's first run with no account anywhere (SPEC §1).
//!
//! Starts the development OpenID provider (`portcullis-devidp`, loopback only),
//! a demo app that renders the headers it receives, and the proxy in front with
//! example rules: a public page, a page for any signed-in user, an admin page.
//! The proxy's config is generated as TOML and goes through the same loader and
//! validation as an operator's file.

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

/// The three running parts of the demo.
pub struct Demo {
    pub url: String,
    pub idp: devidp::DevIdp,
    pub proxy: Running,
    pub app: SocketAddr,
    _dir: tempfile::TempDir,
}

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

[log]
format = "text"
{ROUTES}"#,
        issuer = idp.issuer(),
    );
    let dir = tempfile::tempdir().map_err(|e| DemoError::Config(e.to_string()))?;
    let path = dir.path().join("demo.toml");
    std::fs::write(&path, toml).map_err(|e| DemoError::Config(e.to_string()))?;
    let config = config::load_with_env(&path, &[]).map_err(|e| DemoError::Config(e.to_string()))?;
    let proxy = server::start(config).await?;
    Ok(Demo {
        url: format!("{public}/"),
        idp,
        proxy,
        app,
        _dir: dir,
    })
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
             {url}_auth/logout   sign out\n\n  provider: {issuer}   app: http://{app}   metrics: http://{admin}/metrics\n\n\
             Ctrl-C stops all three.\n",
            url = self.url,
            issuer = self.idp.issuer(),
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
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>demo app</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}}\
         table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #eee;\
         font-family:ui-monospace,monospace;font-size:.85rem;word-break:break-all}}tr.id{{background:#eef6ee}}\
         nav a{{margin-right:1rem}}</style></head><body>\
         <h1>The app behind portcullis</h1><nav><a href=\"/\">/ (public)</a><a href=\"/me\">/me (any user)</a>\
         <a href=\"/admin\">/admin (role admin)</a><a href=\"/_auth/userinfo\">userinfo</a></nav>\
         <p>{greeting}</p><p>This app checks nothing: it trusts the identity headers portcullis sets \
         (highlighted). Request: <code>{method} {path}</code></p><table>{rows}</table></body></html>",
        method = escape_html(req.method().as_str()),
        path = escape_html(&req.uri().to_string()),
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Full::new(Bytes::from(html)))
        .expect("static response parts are valid")
}
