//! The HTML pages the proxy shows people (SPEC §12): the sign-in chooser,
//! and the pages an operator may replace from `server.templates_dir`.

use std::path::Path;

use http::{header, Response, StatusCode};

use super::authenticate::Chooser;
use super::body::{self, Body};
use super::exchange::Exchange;
use super::respond::escape_html;
use crate::identity::Identity;
use crate::policy::authorize::Denial;

/// The pages of `server.templates_dir`, each `None` when the directory has
/// none (the built-in page is used).
#[derive(Debug, Default, Clone)]
pub struct Templates {
    /// `error.html`: every refusal and failure shown to a browser.
    pub error: Option<String>,
    /// `chooser.html`: the sign-in chooser.
    pub chooser: Option<String>,
}

impl Templates {
    /// Reads the templates of `dir`. A file that vanished since the config
    /// was checked falls back to the built-in page rather than failing.
    pub fn load(dir: Option<&Path>) -> Self {
        let read = |name: &str| dir.and_then(|dir| std::fs::read_to_string(dir.join(name)).ok());
        Templates {
            error: read("error.html"),
            chooser: read("chooser.html"),
        }
    }
}

/// The sign-in chooser: one link per provider the route admits (200, HTML).
pub fn chooser(chooser: &Chooser, ex: &Exchange, templates: &Templates) -> Response<Body> {
    let options: String = chooser
        .options
        .iter()
        .map(|(name, display, url)| {
            format!(
                "<li><a class=\"provider\" data-provider=\"{}\" href=\"{}\">{}</a></li>",
                escape_html(name),
                escape_html(url),
                escape_html(display)
            )
        })
        .collect();
    let request_id = escape_html(ex.request_id.to_str().unwrap_or(""));
    let html = match &templates.chooser {
        Some(template) => template
            .replace("{{options}}", &options)
            .replace("{{request_id}}", &request_id),
        None => format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Sign in</title>\
             <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}\
             h1{{font-size:1.4rem}}li{{margin:.6rem 0}}small{{color:#777}}</style></head>\
             <body><h1>Sign in</h1><p>Choose how to sign in:</p><ul>{options}</ul>\
             <small>request id {request_id}</small></body></html>\n"
        ),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-request-id", ex.request_id.clone())
        .body(body::full(html))
        .expect("status and static headers are valid")
}

/// Who is signed in, as the 403 page shows it.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// `name`, else `email`, else `preferred_username`, else `sub`.
    pub name: String,
    /// The provider's `display_name`.
    pub provider: String,
    /// `{auth_prefix}/logout`.
    pub logout_url: String,
    /// A login that replaces the session (`{auth_prefix}/login?rd=...`).
    pub relogin_url: String,
}

impl Viewer {
    /// The viewer of `identity` in `rt`.
    pub fn of(rt: &super::Runtime, identity: &Identity) -> Box<Viewer> {
        let name = identity
            .name
            .clone()
            .or_else(|| identity.email.clone())
            .or_else(|| identity.preferred_username.clone())
            .unwrap_or_else(|| identity.sub.clone());
        let provider = rt.provider_named(&identity.provider).map_or_else(
            || identity.provider.clone(),
            |p| p.display_name().to_owned(),
        );
        let prefix = &rt.config.server.auth_prefix;
        Box::new(Viewer {
            name,
            provider,
            logout_url: format!("{prefix}/logout"),
            relogin_url: format!(
                "{prefix}/login?rd=%2F&provider={}&prompt=select_account",
                url::form_urlencoded::byte_serialize(identity.provider.as_bytes())
                    .collect::<String>()
            ),
        })
    }
}

/// The 403 page for a signed-in person (HTML): who they are, and why the page
/// is refused in words they understand.
pub fn forbidden(
    denial: &Denial,
    viewer: &Viewer,
    ex: &Exchange,
    templates: &Templates,
) -> Response<Body> {
    let _ = templates;
    let request_id = escape_html(ex.request_id.to_str().unwrap_or(""));
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>403 Forbidden</title></head>\
         <body><h1>You do not have access to this page</h1><p>Signed in as {} ({})</p><p>{}</p>\
         <p><a href=\"{}\">Sign out</a> <a href=\"{}\">Sign in as someone else</a></p>\
         <small>request id {request_id}</small></body></html>\n",
        escape_html(&viewer.name),
        escape_html(&viewer.provider),
        escape_html(&denial.to_string()),
        escape_html(&viewer.logout_url),
        escape_html(&viewer.relogin_url),
    );
    Response::builder()
        .status(StatusCode::FORBIDDEN)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-request-id", ex.request_id.clone())
        .body(body::full(html))
        .expect("status and static headers are valid")
}

/// The signed-in page at `{auth_prefix}/` (HTML).
pub fn signed_in(
    rt: &super::Runtime,
    identity: &Identity,
    expires_at: i64,
    ex: &Exchange,
) -> Response<Body> {
    let viewer = Viewer::of(rt, identity);
    let request_id = escape_html(ex.request_id.to_str().unwrap_or(""));
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signed in</title></head>\
         <body><h1>Signed in</h1><p>{} ({})</p><p>roles: {}</p><p>session ends at {expires_at}</p>\
         <p><a href=\"{}\">Sign out</a></p><small>request id {request_id}</small></body></html>\n",
        escape_html(&viewer.name),
        escape_html(&viewer.provider),
        escape_html(&identity.roles.join(", ")),
        escape_html(&viewer.logout_url),
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-request-id", ex.request_id.clone())
        .body(body::full(html))
        .expect("status and static headers are valid")
}
