//! The one place that turns a refusal or failure into a response: status,
//! `WWW-Authenticate`, and a short HTML page for browsers or JSON for scripts.
//! Never a stack trace, a token or a secret: the precise reason goes to the log.

use http::{header, HeaderValue, Response, StatusCode};

use super::body::{self, Body};
use super::exchange::Exchange;
use super::Reject;

/// The response for `reject`, shaped for the client in `ex`.
pub fn render(reject: &Reject, ex: &Exchange) -> Response<Body> {
    let (status, code, message) = match reject {
        Reject::BadTarget(_) => (
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The request path cannot be accepted.",
        ),
        Reject::BadHost => (
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The request has no valid Host.",
        ),
        Reject::Denied => (
            StatusCode::FORBIDDEN,
            "forbidden",
            "You do not have access to this page.",
        ),
        Reject::Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "You need to sign in to see this page.",
        ),
        Reject::NotFound => (StatusCode::NOT_FOUND, "not_found", "There is nothing here."),
        Reject::Upstream(super::UpstreamError::Timeout(_)) => (
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "The application did not answer in time.",
        ),
        Reject::Upstream(
            super::UpstreamError::Connect { .. }
            | super::UpstreamError::Protocol(_)
            | super::UpstreamError::Build(_)
            | super::UpstreamError::CaFile { .. },
        ) => (
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
            "The application is not reachable right now.",
        ),
    };
    let mut resp = page(status, code, message, ex);
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"portcullis\""),
        );
    }
    resp
}

/// A short page: HTML for a browser navigation, JSON `{"error", "message"}` otherwise.
pub fn page(status: StatusCode, code: &str, message: &str, ex: &Exchange) -> Response<Body> {
    let (content_type, text) = if ex.is_navigation {
        ("text/html; charset=utf-8", html_page(status, message, ex))
    } else {
        let json = serde_json::json!({ "error": code, "message": message });
        ("application/json", json.to_string())
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-request-id", ex.request_id.clone())
        .body(body::full(text))
        .expect("status and static headers are valid")
}

fn html_page(status: StatusCode, message: &str, ex: &Exchange) -> String {
    let title = status.canonical_reason().unwrap_or("Error");
    let request_id = escape_html(ex.request_id.to_str().unwrap_or(""));
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{code} {title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}\
         h1{{font-size:1.4rem}}small{{color:#777}}</style></head>\
         <body><h1>{code} {title}</h1><p>{message}</p><p><a href=\"/\">Home</a></p>\
         <small>request id {request_id}</small></body></html>\n",
        code = status.as_u16(),
        title = escape_html(title),
        message = escape_html(message),
    )
}

/// Escapes text for HTML element content and quoted attributes.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
