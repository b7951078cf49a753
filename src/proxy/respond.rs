//! The one place that turns a refusal or failure into a response: status,
//! `WWW-Authenticate`, and a short HTML page for browsers or JSON for scripts.
//! Never a stack trace, a token or a secret: the precise reason goes to the log.

use http::{header, HeaderValue, Response, StatusCode};

use super::body::{self, Body};
use super::exchange::Exchange;
use super::pages::{self, Templates};
use super::{LoginFailure, Reject, UpstreamError};

/// What a refusal looks like to the client.
struct Shape {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
    /// A `WWW-Authenticate` challenge, for 401 and bearer 403.
    challenge: Option<String>,
    /// Extra JSON fields (the login URL).
    login_url: Option<String>,
    /// A "try again" link for the login failure page.
    retry: Option<String>,
    /// `connection_required`: the connection and where to connect it.
    connect: Option<(String, String)>,
}

impl Shape {
    fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        Shape {
            status,
            code,
            message,
            challenge: None,
            login_url: None,
            retry: None,
            connect: None,
        }
    }
}

const REALM: &str = "Bearer realm=\"portcullis\"";

/// The response for `reject`, shaped for the client in `ex`.
pub fn render(reject: Reject, ex: &Exchange<'_>, templates: &Templates) -> Response<Body> {
    let template = templates.error.as_deref();
    let shape = match reject {
        Reject::LoginRequired(redirect) => {
            return self::redirect(&redirect.location, &redirect.set_cookies)
        }
        Reject::BadTarget(_) => Shape::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The request path cannot be accepted.",
        ),
        Reject::BadHost => Shape::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The request has no valid Host.",
        ),
        Reject::BadMethod => Shape::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The request method cannot be accepted.",
        ),
        Reject::ForwardAuth(_) => Shape::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The forward-auth request describes the original request ambiguously.",
        ),
        Reject::Denied => Shape::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "You do not have access to this page.",
        ),
        Reject::ProviderNotAllowed { .. } => Shape::new(
            StatusCode::FORBIDDEN,
            "provider_not_allowed",
            "This page does not accept the account you signed in with.",
        ),
        Reject::UnknownProvider(_) => Shape::new(
            StatusCode::BAD_REQUEST,
            "unknown_provider",
            "There is no such sign-in option here.",
        ),
        Reject::ChooseProvider(chooser) => return pages::chooser(&chooser, ex, templates),
        Reject::CrossOrigin(_) => Shape::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "This connection was opened from another site and is refused.",
        ),
        Reject::Forbidden {
            via_bearer,
            denial,
            viewer: Some(viewer),
        } if ex.is_navigation && !via_bearer => {
            return pages::forbidden(&denial, &viewer, ex, templates)
        }
        Reject::Forbidden {
            via_bearer, denial, ..
        } => Shape {
            challenge: via_bearer.then(|| {
                format!(
                    "{REALM}, error=\"insufficient_scope\", error_description=\"{}\"",
                    insufficient(&denial)
                )
            }),
            ..Shape::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "You do not have access to this page.",
            )
        },
        Reject::MissingClaim(_) => Shape::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Your account lacks information this application needs.",
        ),
        Reject::Unauthenticated { login_url } => Shape {
            challenge: Some(REALM.to_owned()),
            login_url: Some(login_url),
            ..Shape::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "You need to sign in to see this page.",
            )
        },
        Reject::NoToken => Shape {
            challenge: Some(REALM.to_owned()),
            ..Shape::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "A bearer token is required.",
            )
        },
        Reject::InvalidToken(error) => Shape {
            challenge: Some(format!(
                "{REALM}, error=\"invalid_token\", error_description=\"{}\"",
                error.description()
            )),
            ..Shape::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The bearer token is not valid.",
            )
        },
        Reject::NotFound => {
            Shape::new(StatusCode::NOT_FOUND, "not_found", "There is nothing here.")
        }
        Reject::MethodNotAllowed | Reject::MethodRefused => Shape::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This method is not allowed here.",
        ),
        Reject::Login { failure, clear } => {
            let mut resp = page(login_failure(&failure), ex, template);
            if let Some(clear) = clear {
                resp.headers_mut().append(header::SET_COOKIE, clear);
            }
            return resp;
        }
        Reject::Backchannel(_) => Shape::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The logout token is not valid.",
        ),
        Reject::StoreUnavailable(_) => Shape::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "session_store_unavailable",
            "Sign-in is unavailable for a moment. Please try again shortly.",
        ),
        Reject::ProviderUnavailable => Shape::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "provider_unavailable",
            "The sign-in service is unavailable for a moment. Please try again shortly.",
        ),
        Reject::ConnectionRequired {
            connection,
            connect_url,
        } => Shape {
            connect: Some((connection, connect_url)),
            ..Shape::new(
                StatusCode::FORBIDDEN,
                "connection_required",
                "This page needs an account you have not connected yet.",
            )
        },
        Reject::ConnectionUnavailable => Shape::new(
            StatusCode::BAD_GATEWAY,
            "connection_unavailable",
            "A connected service is not reachable right now. Please try again shortly.",
        ),
        Reject::ConnectFailed { clear, .. } => {
            let shape = Shape {
                retry: Some("/".to_owned()),
                ..Shape::new(
                    StatusCode::BAD_REQUEST,
                    "connect_failed",
                    "This link to connect an account is not valid in this browser (it may have been used already).",
                )
            };
            let mut resp = page(shape, ex, template);
            if let Some(clear) = clear {
                resp.headers_mut().append(header::SET_COOKIE, clear);
            }
            return resp;
        }
        Reject::NotSameOrigin => Shape::new(
            StatusCode::FORBIDDEN,
            "cross_site_request",
            "This request must come from this site's own pages.",
        ),
        Reject::Upstream(UpstreamError::BodyTooLarge { .. }) => Shape::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The request body is larger than this site accepts.",
        ),
        Reject::Upstream(UpstreamError::ClientBody(_)) => Shape::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The request body was cut off or malformed.",
        ),
        Reject::Upstream(UpstreamError::Timeout(_)) => Shape::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "The application did not answer in time.",
        ),
        Reject::Upstream(
            UpstreamError::Connect { .. }
            | UpstreamError::Protocol(_)
            | UpstreamError::Build(_)
            | UpstreamError::CaFile { .. },
        ) => Shape::new(
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
            "The application is not reachable right now.",
        ),
    };
    page(shape, ex, template)
}

/// The `error_description` of a bearer 403: which kind of requirement the
/// token failed, never the rule's values.
fn insufficient(denial: &crate::policy::authorize::Denial) -> &'static str {
    match denial.key() {
        "scopes_any" | "scopes_all" => "the token lacks a required scope",
        "claims" => "the token lacks a required claim value",
        "source_ips" => "the client address is not allowed",
        "email_domains" => "the token's email is not in an allowed domain",
        _ => "the token lacks a required role",
    }
}

fn login_failure(failure: &LoginFailure) -> Shape {
    let retry = Some(format!(
        "login?rd={}",
        url::form_urlencoded::byte_serialize(failure.rd().as_bytes()).collect::<String>()
    ));
    let (status, code, message) = match failure {
        LoginFailure::ProviderError { error, .. } if error == "access_denied" => (
            StatusCode::FORBIDDEN,
            "access_denied",
            "Sign-in was cancelled or refused.",
        ),
        LoginFailure::ProviderError { .. } => (
            StatusCode::BAD_REQUEST,
            "login_failed",
            "The sign-in service reported an error.",
        ),
        LoginFailure::Tokens {
            is_denied: true, ..
        } => (
            StatusCode::FORBIDDEN,
            "login_failed",
            "The sign-in could not be completed. It may have been used already.",
        ),
        LoginFailure::Expired { .. } => (
            StatusCode::BAD_REQUEST,
            "login_expired",
            "The sign-in took too long.",
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            "login_failed",
            "This sign-in link is not valid in this browser (it may have been used already).",
        ),
    };
    Shape {
        retry,
        ..Shape::new(status, code, message)
    }
}

/// A 302 to `location`, with cookies to set.
pub fn redirect(location: &str, cookies: &[HeaderValue]) -> Response<Body> {
    let mut builder = Response::builder()
        .status(StatusCode::FOUND)
        .header(header::CACHE_CONTROL, "no-store");
    builder = match HeaderValue::from_str(location) {
        Ok(value) => builder.header(header::LOCATION, value),
        Err(_) => builder.header(header::LOCATION, "/"),
    };
    for cookie in cookies {
        builder = builder.header(header::SET_COOKIE, cookie.clone());
    }
    builder
        .body(body::empty())
        .expect("static response parts are valid")
}

fn page(shape: Shape, ex: &Exchange<'_>, template: Option<&str>) -> Response<Body> {
    let (content_type, text) = if ex.is_navigation {
        ("text/html; charset=utf-8", html_page(&shape, ex, template))
    } else {
        let mut json = serde_json::json!({ "error": shape.code, "message": shape.message });
        if let Some(login_url) = &shape.login_url {
            json["login_url"] = serde_json::Value::String(login_url.clone());
        }
        if let Some((connection, connect_url)) = &shape.connect {
            json["connection"] = serde_json::Value::String(connection.clone());
            json["connect_url"] = serde_json::Value::String(connect_url.clone());
        }
        ("application/json", json.to_string())
    };
    let mut builder = Response::builder()
        .status(shape.status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-request-id", ex.request_id.clone());
    if let Some(challenge) = shape.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        builder = builder.header(header::WWW_AUTHENTICATE, challenge);
    }
    builder
        .body(body::full(text))
        .expect("status and static headers are valid")
}

fn html_page(shape: &Shape, ex: &Exchange<'_>, template: Option<&str>) -> String {
    let title = shape.status.canonical_reason().unwrap_or("Error");
    let request_id = escape_html(ex.request_id.to_str().unwrap_or(""));
    let action = match (&shape.retry, &shape.login_url) {
        _ if shape.connect.is_some() => {
            let (_, url) = shape.connect.as_ref().expect("checked by the guard");
            format!("<a href=\"{}\">Connect</a>", escape_html(url))
        }
        (Some(retry), _) => format!("<a href=\"{}\">Try again</a>", escape_html(retry)),
        (None, Some(login)) => format!("<a href=\"{}\">Sign in</a>", escape_html(login)),
        (None, None) => "<a href=\"/\">Home</a>".to_owned(),
    };
    if let Some(template) = template {
        return template
            .replace("{{status}}", shape.status.as_str())
            .replace("{{title}}", &escape_html(title))
            .replace("{{message}}", &escape_html(shape.message))
            .replace("{{request_id}}", &request_id)
            .replace("{{action}}", &action);
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{code} {title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}\
         h1{{font-size:1.4rem}}small{{color:#777}}</style></head>\
         <body><h1>{code} {title}</h1><p>{message}</p><p>{action}</p>\
         <small>request id {request_id}</small></body></html>\n",
        code = shape.status.as_u16(),
        title = escape_html(title),
        message = escape_html(shape.message),
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
