//! The HTML pages the proxy shows people rather than scripts (SPEC §12): the
//! sign-in chooser, the 403 page for a signed-in person, and the signed-in page
//! at `{auth_prefix}/`. Each says what happened in words an end user
//! understands and offers what they can do next; the precise reason (the rule's
//! key, the CIDRs, the claim values) goes to the log, never to the page.
//!
//! This module only renders: `respond` decides when a page is shown and with
//! which status, `endpoints` serves the signed-in page.
//!
//! # Templates
//!
//! An operator may replace each page with a file of `server.templates_dir`
//! (each optional beside the required `error.html`; a missing one uses the
//! built-in page, which is written with the same placeholders). A placeholder
//! is `{{name}}`; every value is HTML-escaped, and the ones marked *HTML* are
//! fragments the proxy builds from escaped parts. Replacement is one pass, so a
//! value that itself contains `{{...}}` (a user's name, say) is never expanded.
//!
//! | file | placeholder | value |
//! | --- | --- | --- |
//! | `chooser.html` | `{{host}}` | the host being signed in to |
//! | | `{{options}}` | *HTML*: `<ul class="providers">` with one `<a class="button provider" data-provider="NAME">` per provider, its text the `display_name` |
//! | | `{{request_id}}` | the request id |
//! | `forbidden.html` | `{{user}}` | who is signed in: the name (else email, username, `sub`), with the email in parentheses when both exist |
//! | | `{{provider}}` | the provider's `display_name` |
//! | | `{{reason}}` | why the page is refused, one or two plain sentences |
//! | | `{{actions}}` | *HTML*: a "Sign out" form (`POST {auth_prefix}/logout`) and a "Sign in as someone else" link (`{auth_prefix}/login?...&prompt=select_account`) |
//! | | `{{request_id}}` | the request id |
//! | `signed-in.html` | `{{user}}` | *HTML*: `<dl class="user">` with name, email (and whether verified), username, `sub` |
//! | | `{{provider}}` | the provider's `display_name`, with its config name in parentheses when they differ |
//! | | `{{roles}}` | the roles, comma-separated, or `none` |
//! | | `{{expires}}` | when the session expires, RFC 3339 in UTC (`2025-01-31T17:04:05Z`) |
//! | | `{{claims}}` | *HTML*: `<table class="claims">` of the claims the rules and headers refer to, values as compact JSON |
//! | | `{{actions}}` | *HTML*: as on `forbidden.html` |
//! | | `{{request_id}}` | the request id |
//!
//! `error.html` (every other refusal) is rendered by `respond` with `{{status}}`,
//! `{{title}}`, `{{message}}`, `{{action}}` and `{{request_id}}`.

use std::fmt::Write as _;
use std::path::Path;

use http::{header, Response, StatusCode};

use super::authenticate::Chooser;
use super::body::{self, Body};
use super::exchange::Exchange;
use super::respond::escape_html;
use super::Runtime;
use crate::identity::Identity;
use crate::policy::authorize::Denial;

/// The longest claim value (compact JSON, in characters) the signed-in page
/// shows: a large `groups` array must not make the page unreadable.
const MAX_SHOWN_CLAIM_CHARS: usize = 500;

/// The latest time RFC 3339 can write (four-digit years): 9999-12-31T23:59:59Z.
const MAX_RFC3339_UNIX: i64 = 253_402_300_799;

// === impl Templates ===

/// The pages of `server.templates_dir`, each `None` when the directory has
/// none (the built-in page is used).
#[derive(Debug, Default, Clone)]
pub struct Templates {
    /// `error.html`: every refusal and failure shown to a browser.
    pub error: Option<String>,
    /// `chooser.html`: the sign-in chooser.
    pub chooser: Option<String>,
    /// `forbidden.html`: the 403 page for a signed-in person.
    pub forbidden: Option<String>,
    /// `signed-in.html`: the page at `{auth_prefix}/`.
    pub signed_in: Option<String>,
}

impl Templates {
    /// Reads the templates of `dir`. A file that is absent (or vanished since
    /// the config was checked) falls back to the built-in page rather than
    /// failing.
    pub fn load(dir: Option<&Path>) -> Self {
        let read = |name: &str| dir.and_then(|dir| std::fs::read_to_string(dir.join(name)).ok());
        Templates {
            error: read("error.html"),
            chooser: read("chooser.html"),
            forbidden: read("forbidden.html"),
            signed_in: read("signed-in.html"),
        }
    }
}

// === the chooser ===

/// The sign-in chooser: one button-like link per provider the route admits
/// (200, HTML).
pub fn chooser(chooser: &Chooser, ex: &Exchange<'_>, templates: &Templates) -> Response<Body> {
    let html = chooser_html(chooser, request_id(ex), templates.chooser.as_deref());
    html_response(StatusCode::OK, html, ex)
}

fn chooser_html(chooser: &Chooser, request_id: &str, template: Option<&str>) -> String {
    let mut options = String::from("<ul class=\"providers\">");
    for (name, display, url) in &chooser.options {
        let _ = write!(
            options,
            "<li><a class=\"button provider\" data-provider=\"{}\" href=\"{}\">{}</a></li>",
            escape_html(name),
            escape_html(url),
            escape_html(display)
        );
    }
    options.push_str("</ul>");
    fill(
        template.unwrap_or(BUILTIN_CHOOSER),
        &[
            ("host", &escape_html(&chooser_host(chooser))),
            ("options", &options),
            ("request_id", &escape_html(request_id)),
        ],
    )
}

/// The host a person signs in to: the one the return URL names, else the
/// proxy's own (every login URL is on its public URL).
fn chooser_host(chooser: &Chooser) -> String {
    let host_of = |url: &str| {
        url::Url::parse(url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
    };
    host_of(&chooser.rd)
        .or_else(|| chooser.options.first().and_then(|(_, _, url)| host_of(url)))
        .unwrap_or_else(|| "this site".to_owned())
}

// === impl Viewer ===

/// Who is signed in, as the 403 and signed-in pages show them.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// `name`, else `email`, else `preferred_username`, else `sub`.
    pub name: String,
    /// The email, when the identity has one.
    pub email: Option<String>,
    /// The roles: a person may see their own, to compare with a role a page needs.
    pub roles: Vec<String>,
    /// The provider's `display_name`.
    pub provider: String,
    /// `{auth_prefix}/logout`.
    pub logout_url: String,
    /// A login that replaces the session (`{auth_prefix}/login?rd=...`).
    pub relogin_url: String,
}

impl Viewer {
    /// The viewer of `identity` in `rt`.
    pub fn of(rt: &Runtime, identity: &Identity) -> Box<Viewer> {
        let display_name = rt
            .provider_named(&identity.provider)
            .map_or(identity.provider.as_str(), |p| p.display_name());
        Box::new(Viewer::new(
            identity,
            display_name,
            &rt.config.server.auth_prefix,
        ))
    }

    /// The viewer of `identity`, signed in with the provider shown as
    /// `display_name`, under `auth_prefix`.
    fn new(identity: &Identity, display_name: &str, auth_prefix: &str) -> Viewer {
        let name = identity
            .name
            .clone()
            .or_else(|| identity.email.clone())
            .or_else(|| identity.preferred_username.clone())
            .unwrap_or_else(|| identity.sub.clone());
        let provider: String =
            url::form_urlencoded::byte_serialize(identity.provider.as_bytes()).collect();
        Viewer {
            name,
            email: identity.email.clone(),
            roles: identity.roles.clone(),
            provider: display_name.to_owned(),
            logout_url: format!("{auth_prefix}/logout"),
            relogin_url: format!(
                "{auth_prefix}/login?rd=%2F&provider={provider}&prompt=select_account"
            ),
        }
    }

    /// The name, with the email in parentheses when it says something more.
    fn label(&self) -> String {
        match &self.email {
            Some(email) if *email != self.name => format!("{} ({email})", self.name),
            _ => self.name.clone(),
        }
    }

    /// "Sign out" (a form: a prefetcher or crawler following links never signs
    /// anyone out, and the `SameSite=Lax` cookie is sent on this same-site POST)
    /// and "Sign in as someone else", as HTML.
    fn actions(&self) -> String {
        format!(
            "<form method=\"post\" action=\"{}\"><button type=\"submit\">Sign out</button></form> \
             <a class=\"button\" href=\"{}\">Sign in as someone else</a>",
            escape_html(&self.logout_url),
            escape_html(&self.relogin_url)
        )
    }
}

// === the 403 page ===

/// The 403 page for a signed-in person (HTML): who they are, why the page is
/// refused in words they understand, and what they can do.
pub fn forbidden(
    denial: &Denial,
    viewer: &Viewer,
    ex: &Exchange<'_>,
    templates: &Templates,
) -> Response<Body> {
    let html = forbidden_html(
        denial,
        viewer,
        request_id(ex),
        templates.forbidden.as_deref(),
    );
    html_response(StatusCode::FORBIDDEN, html, ex)
}

fn forbidden_html(
    denial: &Denial,
    viewer: &Viewer,
    request_id: &str,
    template: Option<&str>,
) -> String {
    fill(
        template.unwrap_or(BUILTIN_FORBIDDEN),
        &[
            ("user", &escape_html(&viewer.label())),
            ("provider", &escape_html(&viewer.provider)),
            ("reason", &escape_html(&reason(denial, &viewer.roles))),
            ("actions", &viewer.actions()),
            ("request_id", &escape_html(request_id)),
        ],
    )
}

/// Why `denial` refuses the page, in plain words for the person refused, whose
/// roles are `roles` (plain text, not yet escaped).
///
/// # Security
///
/// It names only what is the person's own or harmless to know: the roles a
/// page needs and theirs, the email domains, the *name* of a claim. It never
/// names the CIDRs of `source_ips` (a map of the internal network) nor the
/// values a claim must hold: those are often opaque identifiers (group ids,
/// tenant ids) that help no one, the list may be long, and it would tell a
/// prober exactly what to obtain. The person cannot change a claim anyway;
/// they ask an administrator, quoting the request id, and the log line holds
/// the full reason.
pub fn reason(denial: &Denial, roles: &[String]) -> String {
    match denial {
        Denial::NoneOfRoles { needed } => {
            let needed = match needed.as_slice() {
                [one] => format!("the {one} role"),
                several => format!("one of the roles {}", list(several, "or")),
            };
            format!(
                "This page is for people with {needed}; {}",
                your_roles(roles)
            )
        }
        Denial::MissingRoles { missing } => {
            let missing = match missing.as_slice() {
                [one] => format!("the {one} role"),
                several => format!("the roles {}", list(several, "and")),
            };
            format!(
                "This page also needs {missing}, which your account does not have; {}",
                your_roles(roles)
            )
        }
        Denial::EmailDomain { email, domains } => {
            let only = format!("This page is only for accounts of {}.", list(domains, "or"));
            match email {
                None => format!("{only} Your account has no email address."),
                Some(email) if is_in_domains(email, domains) => format!(
                    "{only} The email address of your account, {email}, has not been verified."
                ),
                Some(email) => format!("{only} You are signed in as {email}."),
            }
        }
        Denial::Claim { claim, found, .. } => {
            let label = claim_label(claim);
            match (label.as_str(), found) {
                ("acr" | "amr", _) => "This page needs a stronger way of signing in (such as \
                                       multi-factor authentication) than the one you used."
                    .to_owned(),
                (_, None) => format!("This page needs your account's {label}, and it has none."),
                (_, Some(_)) => format!("Your account's {label} does not allow this page."),
            }
        }
        Denial::SourceIp { .. } => "This page can only be used from certain networks (such as \
                                    an office network or VPN), and your connection comes from \
                                    elsewhere."
            .to_owned(),
        Denial::SessionHasNoScopes { .. } => "This page is for applications that present an \
                                              access token, not for signing in with a browser."
            .to_owned(),
        Denial::NoneOfScopes { .. } | Denial::MissingScopes { .. } => {
            "The access token does not grant what this page needs.".to_owned()
        }
    }
}

fn your_roles(roles: &[String]) -> String {
    if roles.is_empty() {
        "your account has no roles.".to_owned()
    } else {
        format!("your account has: {}.", roles.join(", "))
    }
}

/// `a`, `a or b`, `a, b or c` (with `word` for "or").
fn list(items: &[String], word: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {word} {last}", init.join(", ")),
    }
}

/// Returns true if and only if `email` is `local@domain` with `domain` one of
/// `domains`: refused all the same, so it must not have been verified.
fn is_in_domains(email: &str, domains: &[String]) -> bool {
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty() && domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
}

/// A claim reference as a person reads it: the last segment of a namespaced
/// name (`https://example.com/claims/cost_center`) or of a dotted path
/// (`org.department`), with `_` and `-` as spaces.
fn claim_label(claim: &str) -> String {
    let last = claim
        .rsplit(['/', ':', '.'])
        .find(|segment| !segment.is_empty())
        .unwrap_or(claim);
    last.replace(['_', '-'], " ")
}

// === the signed-in page ===

/// The signed-in page at `{auth_prefix}/` (200, HTML): who is signed in, with
/// which provider, until when, and the claims the rules see.
pub fn signed_in(
    rt: &Runtime,
    identity: &Identity,
    expires_at: i64,
    ex: &Exchange<'_>,
) -> Response<Body> {
    let viewer = Viewer::of(rt, identity);
    let html = signed_in_html(
        identity,
        &viewer,
        expires_at,
        request_id(ex),
        rt.templates.signed_in.as_deref(),
    );
    html_response(StatusCode::OK, html, ex)
}

fn signed_in_html(
    identity: &Identity,
    viewer: &Viewer,
    expires_at: i64,
    request_id: &str,
    template: Option<&str>,
) -> String {
    let mut user = String::from("<dl class=\"user\">");
    let mut row = |term: &str, value: &str| {
        let _ = write!(user, "<dt>{term}</dt><dd>{}</dd>", escape_html(value));
    };
    if let Some(name) = &identity.name {
        row("Name", name);
    }
    if let Some(email) = &identity.email {
        let verified = if identity.email_verified {
            ""
        } else {
            " (not verified)"
        };
        row("Email", &format!("{email}{verified}"));
    }
    if let Some(username) = &identity.preferred_username {
        row("Username", username);
    }
    row("Subject", &identity.sub);
    user.push_str("</dl>");

    let provider = if viewer.provider == identity.provider {
        viewer.provider.clone()
    } else {
        format!("{} ({})", viewer.provider, identity.provider)
    };
    let roles = if identity.roles.is_empty() {
        "none".to_owned()
    } else {
        identity.roles.join(", ")
    };
    fill(
        template.unwrap_or(BUILTIN_SIGNED_IN),
        &[
            ("user", &user),
            ("provider", &escape_html(&provider)),
            ("roles", &escape_html(&roles)),
            ("expires", &rfc3339(expires_at)),
            ("claims", &claims_table(identity)),
            ("actions", &viewer.actions()),
            ("request_id", &escape_html(request_id)),
        ],
    )
}

/// The claims the rules and identity headers refer to, as an HTML table (or a
/// sentence saying there are none), values as compact JSON.
fn claims_table(identity: &Identity) -> String {
    if identity.claims.is_empty() {
        return "<p class=\"claims\">None: no rule or header here refers to a claim.</p>"
            .to_owned();
    }
    let mut table = String::from(
        "<table class=\"claims\"><thead><tr><th>Claim</th><th>Value</th></tr></thead><tbody>",
    );
    for (claim, value) in &identity.claims {
        let mut json = value.to_string();
        if let Some((cut, _)) = json.char_indices().nth(MAX_SHOWN_CLAIM_CHARS) {
            json.truncate(cut);
            json.push('…');
        }
        let _ = write!(
            table,
            "<tr><td><code>{}</code></td><td><code>{}</code></td></tr>",
            escape_html(claim),
            escape_html(&json)
        );
    }
    table.push_str("</tbody></table>");
    table
}

/// `unix` (seconds) as an RFC 3339 UTC time, `YYYY-MM-DDTHH:MM:SSZ`; times
/// outside years 1970 to 9999 are clamped to them.
pub fn rfc3339(unix: i64) -> String {
    let unix = unix.clamp(0, MAX_RFC3339_UNIX);
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01
/// (Howard Hinnant's `civil_from_days`): eras of 400 years, each year counted
/// from March so that the leap day comes last.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March year, [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

// === rendering ===

/// `template` with each `{{name}}` of `values` replaced, in one pass: a value
/// is never searched for placeholders. Unknown placeholders stay as written.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 512);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let len = after
            .bytes()
            .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
            .count();
        // `len` counts ASCII bytes only, so it is a char boundary.
        let (name, tail) = after.split_at(len);
        let value = tail
            .starts_with("}}")
            .then(|| values.iter().find(|(n, _)| *n == name))
            .flatten();
        match value {
            Some((_, value)) => {
                out.push_str(value);
                rest = &tail[2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn request_id<'a>(ex: &'a Exchange<'_>) -> &'a str {
    ex.request_id.to_str().unwrap_or("")
}

fn html_response(status: StatusCode, html: String, ex: &Exchange<'_>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-request-id", ex.request_id.clone())
        .body(body::full(html))
        .expect("status and static headers are valid")
}

/// A built-in page: the look of `respond`'s error page, plus buttons and tables.
macro_rules! page {
    ($title:literal, $main:literal) => {
        concat!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<meta name=\"robots\" content=\"noindex\">",
            "<title>",
            $title,
            "</title>",
            "<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;",
            "padding:0 1rem;color:#222}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}",
            "small{color:#777}ul.providers{list-style:none;padding:0}ul.providers li{margin:.6rem 0}",
            ".button,button{display:inline-block;padding:.5rem 1rem;border:1px solid #888;",
            "border-radius:.4rem;background:#f4f4f4;color:#222;text-decoration:none;font:inherit;",
            "cursor:pointer}.button:hover,button:hover{background:#e8e8e8}",
            ".provider{min-width:14rem;text-align:center}form{display:inline}",
            ".actions{margin:2rem 0}dl{display:grid;grid-template-columns:max-content auto;",
            "gap:.3rem 1rem}dt{color:#555}dd{margin:0}table{border-collapse:collapse}",
            "th,td{text-align:left;padding:.3rem .8rem .3rem 0;border-bottom:1px solid #ddd;",
            "vertical-align:top}code{word-break:break-all}</style></head><body>",
            $main,
            "<small>request id {{request_id}}</small></body></html>\n"
        )
    };
}

const BUILTIN_CHOOSER: &str = page!(
    "Sign in to {{host}}",
    "<h1>Sign in to {{host}}</h1><p>Choose how to sign in:</p>{{options}}"
);

const BUILTIN_FORBIDDEN: &str = page!(
    "403 Forbidden",
    "<h1>You do not have access to this page</h1>\
     <p>You are signed in as <strong>{{user}}</strong> with {{provider}}.</p>\
     <p>{{reason}}</p>\
     <div class=\"actions\">{{actions}}</div>\
     <p>If you think you should have access, ask whoever runs this site, \
     and give them the request id below.</p>"
);

const BUILTIN_SIGNED_IN: &str = page!(
    "Signed in",
    "<h1>You are signed in</h1>{{user}}\
     <dl><dt>Signed in with</dt><dd>{{provider}}</dd>\
     <dt>Roles</dt><dd>{{roles}}</dd>\
     <dt>Session expires</dt><dd><time datetime=\"{{expires}}\">{{expires}}</time></dd></dl>\
     <h2>What the rules see</h2>\
     <p>The claims of your account that this site's rules and headers refer to:</p>{{claims}}\
     <div class=\"actions\">{{actions}}</div>"
);

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use serde_json::json;

    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn bob() -> Identity {
        Identity {
            provider: "partners".to_owned(),
            sub: "bob-123".to_owned(),
            email: Some("bob@example.com".to_owned()),
            email_verified: true,
            name: Some("Bob Builder".to_owned()),
            preferred_username: Some("bob".to_owned()),
            roles: strings(&["user"]),
            ..Identity::default()
        }
    }

    /// An identity whose every field tries to break out of the page.
    fn mallory() -> Identity {
        let mut claims = std::collections::BTreeMap::new();
        claims.insert(
            "<img src=x onerror=alert(1)>".to_owned(),
            json!("</code></td><script>alert(2)</script>"),
        );
        Identity {
            provider: "<p>".to_owned(),
            sub: "<script>alert(3)</script>".to_owned(),
            email: Some("\"><script>alert(4)</script>@example.com".to_owned()),
            email_verified: false,
            name: Some("<script>alert(5)</script> {{actions}}".to_owned()),
            preferred_username: Some("'onmouseover='alert(6)".to_owned()),
            roles: strings(&["<b>admin</b>"]),
            claims,
            ..Identity::default()
        }
    }

    fn all_denials() -> Vec<Denial> {
        vec![
            Denial::NoneOfRoles {
                needed: strings(&["admin"]),
            },
            Denial::MissingRoles {
                missing: strings(&["admin", "ops"]),
            },
            Denial::EmailDomain {
                email: Some("bob@other.org".to_owned()),
                domains: strings(&["example.com"]),
            },
            Denial::Claim {
                claim: "department".to_owned(),
                found: Some("\"sales\"".to_owned()),
                needed: strings(&["eng", "secret-project-x"]),
            },
            Denial::SourceIp {
                client: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
                allowed: vec!["10.20.0.0/16".parse().expect("a CIDR")],
            },
            Denial::NoneOfScopes {
                needed: strings(&["reports:read"]),
                held: strings(&["other"]),
            },
            Denial::MissingScopes {
                missing: strings(&["reports:write"]),
                held: Vec::new(),
            },
            Denial::SessionHasNoScopes {
                key: "scopes_any",
                needed: strings(&["reports:read"]),
            },
        ]
    }

    #[test]
    fn reasons_name_the_roles_a_page_needs_and_the_persons_own() {
        let user = strings(&["user"]);
        let cases = [
            (
                Denial::NoneOfRoles {
                    needed: strings(&["admin"]),
                },
                &user[..],
                "This page is for people with the admin role; your account has: user.",
            ),
            (
                Denial::NoneOfRoles {
                    needed: strings(&["admin", "ops", "audit"]),
                },
                &[][..],
                "This page is for people with one of the roles admin, ops or audit; \
                 your account has no roles.",
            ),
            (
                Denial::MissingRoles {
                    missing: strings(&["admin"]),
                },
                &user[..],
                "This page also needs the admin role, which your account does not have; \
                 your account has: user.",
            ),
            (
                Denial::MissingRoles {
                    missing: strings(&["admin", "ops"]),
                },
                &user[..],
                "This page also needs the roles admin and ops, which your account does not \
                 have; your account has: user.",
            ),
        ];
        for (denial, roles, expected) in cases {
            assert_eq!(reason(&denial, roles), expected, "{denial:?}");
        }
    }

    #[test]
    fn reasons_for_email_domains_say_which_domains_and_what_is_wrong_with_the_email() {
        let domains = strings(&["example.com", "example.org"]);
        let cases = [
            (
                None,
                "This page is only for accounts of example.com or example.org. \
                 Your account has no email address.",
            ),
            (
                Some("bob@other.net"),
                "This page is only for accounts of example.com or example.org. \
                 You are signed in as bob@other.net.",
            ),
            (
                Some("bob@Example.COM"),
                "This page is only for accounts of example.com or example.org. \
                 The email address of your account, bob@Example.COM, has not been verified.",
            ),
        ];
        for (email, expected) in cases {
            let denial = Denial::EmailDomain {
                email: email.map(str::to_owned),
                domains: domains.clone(),
            };
            assert_eq!(reason(&denial, &[]), expected);
        }
    }

    #[test]
    fn reasons_for_claims_name_the_claim_never_the_values_it_needs() {
        let claim = |claim: &str, found: Option<&str>| Denial::Claim {
            claim: claim.to_owned(),
            found: found.map(str::to_owned),
            needed: strings(&["eng", "secret-project-x"]),
        };
        let cases = [
            (
                claim("department", Some("\"sales\"")),
                "Your account's department does not allow this page.",
            ),
            (
                claim("https://example.com/claims/cost_center", Some("\"42\"")),
                "Your account's cost center does not allow this page.",
            ),
            (
                claim("org.team-name", None),
                "This page needs your account's team name, and it has none.",
            ),
            (
                claim("acr", Some("\"pwd\"")),
                "This page needs a stronger way of signing in (such as multi-factor \
                 authentication) than the one you used.",
            ),
        ];
        for (denial, expected) in cases {
            let text = reason(&denial, &[]);
            assert_eq!(text, expected);
            assert!(!text.contains("secret-project-x"), "{text}");
            assert!(!text.contains("sales"), "{text}");
        }
    }

    #[test]
    fn reason_for_source_ips_never_shows_a_cidr_or_an_address() {
        let denial = Denial::SourceIp {
            client: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            allowed: vec!["10.20.0.0/16".parse().expect("a CIDR")],
        };
        let text = reason(&denial, &[]);
        assert!(text.starts_with("This page can only be used from certain networks"));
        assert!(
            !text.contains("10.20") && !text.contains("192.0.2"),
            "{text}"
        );
    }

    #[test]
    fn reasons_for_scopes_speak_of_access_tokens() {
        let session = Denial::SessionHasNoScopes {
            key: "scopes_all",
            needed: strings(&["reports:read"]),
        };
        assert_eq!(
            reason(&session, &[]),
            "This page is for applications that present an access token, not for signing in \
             with a browser."
        );
        let bearer = Denial::MissingScopes {
            missing: strings(&["reports:write"]),
            held: Vec::new(),
        };
        assert_eq!(
            reason(&bearer, &[]),
            "The access token does not grant what this page needs."
        );
    }

    #[test]
    fn no_reason_repeats_a_config_key_or_the_rule_internals() {
        for denial in all_denials() {
            let text = reason(&denial, &strings(&["user"]));
            assert!(text.ends_with('.'), "{denial:?}: {text}");
            for internal in [
                denial.key(),
                "source_ips",
                "10.20.0.0",
                "192.0.2.7",
                "secret-project-x",
                "reports:",
                "\"",
            ] {
                assert!(
                    !text.contains(internal),
                    "{denial:?} shows {internal:?}: {text}"
                );
            }
        }
    }

    #[test]
    fn forbidden_page_says_who_why_and_offers_sign_out_and_another_account() {
        let viewer = Viewer::new(&bob(), "Partner SSO", "/_auth");
        let denial = Denial::NoneOfRoles {
            needed: strings(&["admin"]),
        };
        let html = forbidden_html(&denial, &viewer, "req-1", None);
        assert!(html.contains("Bob Builder (bob@example.com)"), "{html}");
        assert!(html.contains("with Partner SSO"), "{html}");
        assert!(
            html.contains("This page is for people with the admin role; your account has: user.")
        );
        assert!(html.contains(
            "<form method=\"post\" action=\"/_auth/logout\"><button type=\"submit\">Sign out"
        ));
        assert!(html.contains(
            "href=\"/_auth/login?rd=%2F&amp;provider=partners&amp;prompt=select_account\""
        ));
        assert!(html.contains("request id req-1"));
        assert!(!html.contains("{{"), "every placeholder is filled: {html}");
    }

    #[test]
    fn forbidden_page_escapes_every_value_and_expands_none_of_them() {
        let viewer = Viewer::new(&mallory(), "<i>Evil</i>", "/_auth");
        let denial = Denial::NoneOfRoles {
            needed: strings(&["<b>root</b>"]),
        };
        let template = "U={{user}} P={{provider}} R={{reason}} A={{actions}} I={{request_id}}";
        for template in [None, Some(template)] {
            let html = forbidden_html(&denial, &viewer, "<id>", template);
            for raw in ["<script", "<img", "<b>", "<i>", "<id>"] {
                assert!(!html.contains(raw), "{raw} unescaped: {html}");
            }
            assert!(html.contains("&lt;script&gt;alert(5)&lt;/script&gt; {{actions}}"));
            assert!(html.contains("&lt;i&gt;Evil&lt;/i&gt;"));
            assert!(html.contains("&lt;b&gt;root&lt;/b&gt;"));
            // The provider's name is URL-encoded in the link, then escaped.
            assert!(html.contains("provider=%3Cp%3E"), "{html}");
        }
    }

    #[test]
    fn signed_in_page_shows_the_account_provider_roles_expiry_and_claims() {
        let mut identity = bob();
        identity
            .claims
            .insert("department".to_owned(), json!("sales"));
        identity
            .claims
            .insert("groups".to_owned(), json!(["a", "b"]));
        let viewer = Viewer::new(&identity, "Partner SSO", "/_auth");
        let html = signed_in_html(&identity, &viewer, 1_700_000_000, "req-2", None);
        for expected in [
            "<dt>Name</dt><dd>Bob Builder</dd>",
            "<dt>Email</dt><dd>bob@example.com</dd>",
            "<dt>Username</dt><dd>bob</dd>",
            "<dt>Subject</dt><dd>bob-123</dd>",
            "<dd>Partner SSO (partners)</dd>",
            "<dt>Roles</dt><dd>user</dd>",
            "<time datetime=\"2023-11-14T22:13:20Z\">2023-11-14T22:13:20Z</time>",
            "<tr><td><code>department</code></td><td><code>&quot;sales&quot;</code></td></tr>",
            "<tr><td><code>groups</code></td><td><code>[&quot;a&quot;,&quot;b&quot;]</code></td></tr>",
            "action=\"/_auth/logout\"",
            "request id req-2",
        ] {
            assert!(html.contains(expected), "{expected} missing: {html}");
        }
        assert!(!html.contains("{{"), "every placeholder is filled: {html}");
    }

    #[test]
    fn signed_in_page_says_when_there_are_no_roles_or_claims() {
        let identity = Identity {
            sub: "svc".to_owned(),
            ..Identity::default()
        };
        let viewer = Viewer::new(&identity, "default", "/_auth");
        let html = signed_in_html(&identity, &viewer, 0, "r", None);
        assert!(html.contains("<dt>Roles</dt><dd>none</dd>"));
        assert!(html.contains("None: no rule or header here refers to a claim."));
        assert!(
            html.contains("<dd>default</dd>"),
            "no repeated name: {html}"
        );
    }

    #[test]
    fn signed_in_page_escapes_every_value_in_both_the_builtin_and_a_template() {
        let identity = mallory();
        let viewer = Viewer::new(&identity, "<i>Evil</i>", "/_auth");
        let template = "{{user}}|{{provider}}|{{roles}}|{{expires}}|{{claims}}|{{actions}}|\
                        {{request_id}}";
        for template in [None, Some(template)] {
            let html = signed_in_html(&identity, &viewer, 0, "<id>", template);
            for raw in ["<script", "<img", "<b>", "<i>", "<id>", "'onmouseover"] {
                assert!(!html.contains(raw), "{raw} unescaped: {html}");
            }
            assert!(
                html.contains("&lt;i&gt;Evil&lt;/i&gt; (&lt;p&gt;)"),
                "{html}"
            );
            assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
            assert!(html.contains("&lt;/code&gt;&lt;/td&gt;&lt;script&gt;alert(2)"));
            assert!(html.contains("(not verified)"));
        }
    }

    #[test]
    fn a_long_claim_is_cut_short() {
        let mut identity = bob();
        identity
            .claims
            .insert("groups".to_owned(), json!(vec!["g"; 1000]));
        let table = claims_table(&identity);
        assert!(table.contains('…'));
        assert!(
            table.len() < 6 * MAX_SHOWN_CLAIM_CHARS + 200,
            "{}",
            table.len()
        );
    }

    #[test]
    fn chooser_lists_every_provider_as_a_button_for_the_host() {
        let chooser = Chooser {
            rd: "/partners/x".to_owned(),
            options: vec![
                (
                    "default".to_owned(),
                    "Example Corp".to_owned(),
                    "https://auth.example.com/_auth/login?rd=%2Fpartners%2Fx&provider=default"
                        .to_owned(),
                ),
                (
                    "partners".to_owned(),
                    "Partner <SSO>".to_owned(),
                    "https://auth.example.com/_auth/login?rd=%2Fpartners%2Fx&provider=partners"
                        .to_owned(),
                ),
            ],
        };
        let html = chooser_html(&chooser, "req-3", None);
        assert!(
            html.contains("<h1>Sign in to auth.example.com</h1>"),
            "{html}"
        );
        assert!(html.contains(
            "<a class=\"button provider\" data-provider=\"default\" \
             href=\"https://auth.example.com/_auth/login?rd=%2Fpartners%2Fx&amp;provider=default\">\
             Example Corp</a>"
        ));
        assert!(html.contains(">Partner &lt;SSO&gt;</a>"));
        let templated = chooser_html(
            &chooser,
            "<id>",
            Some("{{host}}|{{options}}|{{request_id}}"),
        );
        assert!(templated.starts_with("auth.example.com|<ul class=\"providers\">"));
        assert!(templated.ends_with("</ul>|&lt;id&gt;"));

        let other_host = Chooser {
            rd: "https://app.example.com/x".to_owned(),
            ..chooser
        };
        assert!(chooser_html(&other_host, "r", None).contains("Sign in to app.example.com"));
    }

    #[test]
    fn fill_replaces_known_placeholders_once_and_leaves_the_rest() {
        let values = [("a", "{{b}}"), ("b", "B")];
        assert_eq!(fill("{{a}}-{{b}}", &values), "{{b}}-B");
        assert_eq!(fill("{{c}} {{ a }} {{a", &values), "{{c}} {{ a }} {{a");
        assert_eq!(fill("{{{{b}}}}", &values), "{{B}}");
        assert_eq!(fill("é{{b}}ü", &values), "éBü");
        assert_eq!(fill("", &values), "");
    }

    #[test]
    fn rfc3339_formats_unix_seconds_in_utc() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (59, "1970-01-01T00:00:59Z"),
            (86_399, "1970-01-01T23:59:59Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (951_868_800, "2000-03-01T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (1_709_164_800, "2024-02-29T00:00:00Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (1_735_689_599, "2024-12-31T23:59:59Z"),
            (-1, "1970-01-01T00:00:00Z"),
            (MAX_RFC3339_UNIX, "9999-12-31T23:59:59Z"),
            (i64::MAX, "9999-12-31T23:59:59Z"),
        ];
        for (unix, expected) in cases {
            assert_eq!(rfc3339(unix), expected, "{unix}");
        }
    }

    #[test]
    fn rfc3339_agrees_with_a_day_by_day_count() {
        // Walk 1970..2400 one day at a time, counting the calendar by hand.
        let (mut year, mut month, mut day) = (1970, 1, 1);
        for days in 0..(430 * 366) {
            let expected = format!("{year:04}-{month:02}-{day:02}T00:00:00Z");
            assert_eq!(rfc3339(days * 86_400), expected);
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            let length = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > length {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }
}
