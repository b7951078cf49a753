//! The provider's three pages: sign-in (pick a user), error, signed out.
//! Everything interpolated is HTML-escaped; the pages carry no script.

use std::fmt::Write as _;

use crate::config::User;
use crate::http::Params;

/// Escapes text for HTML element content and double-quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
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

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#222;margin:0}\
main{max-width:26rem;margin:4rem auto;background:#fff;border-radius:8px;padding:2rem;box-shadow:0 1px 4px #0002}\
h1{font-size:1.3rem;margin-top:0}p.note{color:#666;font-size:.9rem}\
button{display:block;width:100%;text-align:left;margin:.5rem 0;padding:.75rem 1rem;border:1px solid #ccd;\
border-radius:6px;background:#fff;font-size:1rem;cursor:pointer}button:hover{background:#eef2ff}\
button.cancel{text-align:center;color:#555;background:#f4f5f7}small{color:#666}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        title = escape(title),
    )
}

/// The sign-in page: one button per user, and Cancel. The form POSTs back to
/// `/authorize` with the authorization request in hidden fields.
pub(crate) fn sign_in_page(request: &Params, client_id: &str, users: &[User]) -> String {
    let mut hidden = String::new();
    let mut fields: Vec<(&str, &str)> = request
        .iter()
        .filter(|(k, _)| *k != "user" && *k != "action")
        .collect();
    fields.sort_unstable();
    for (name, value) in fields {
        let _ = write!(
            hidden,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(name),
            escape(value)
        );
    }
    let mut buttons = String::new();
    for u in users {
        let _ = write!(
            buttons,
            "<button type=\"submit\" name=\"user\" value=\"{sub}\"><strong>{name}</strong> \
<small>{username} &middot; {email} &middot; roles: {roles}</small></button>",
            sub = escape(&u.sub),
            name = escape(&u.name),
            username = escape(&u.username),
            email = escape(&u.email),
            roles = escape(&u.roles.join(", ")),
        );
    }
    let body = format!(
        "<h1>Sign in to {client}</h1>\
<p class=\"note\">portcullis development provider: pick a user. There are no passwords; never expose this provider.</p>\
<form method=\"post\" action=\"/authorize\">{hidden}{buttons}\
<button type=\"submit\" class=\"cancel\" name=\"action\" value=\"cancel\">Cancel</button></form>",
        client = escape(client_id),
    );
    page("Sign in", &body)
}

/// An error page, for requests that cannot be redirected back (unknown client,
/// unregistered redirect URI, bad `id_token_hint`).
pub(crate) fn error_page(message: &str) -> String {
    page(
        "Sign-in error",
        &format!(
            "<h1>Something is wrong with this request</h1><p>{}</p>",
            escape(message)
        ),
    )
}

/// The page shown after `/end_session` when there is nowhere to send the user.
pub(crate) fn signed_out_page() -> String {
    page(
        "Signed out",
        "<h1>You are signed out</h1><p>Your session at the development provider has ended. You may close this window.</p>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_page_escapes_request_parameters() {
        let params =
            Params::parse(b"state=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E&client_id=app")
                .expect("params");
        let page = sign_in_page(&params, "<app>", &crate::demo_users());
        assert!(!page.contains("<script>"));
        assert!(page.contains("&quot;&gt;&lt;script&gt;"));
        assert!(page.contains("Sign in to &lt;app&gt;"));
    }
}
