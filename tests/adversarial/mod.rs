//! The adversarial suite (issue 9, `SECURITY.md`): one module per published
//! attack class, each case a request or a whole flow over real HTTP against
//! the proxy, with an echo upstream that reports exactly what it received, and
//! the safe outcome asserted. Cases cite the advisory or payload list they
//! come from where there is one.
//!
//! | module | class |
//! | --- | --- |
//! | `open_redirect` | post-login `rd`, the state-bound return URL, logout |
//! | `path_bypass` | route-rule bypass by encoding, normalization, `;`, `#`, case, absolute form, `Host` |
//! | `header_spoofing` | identity headers in every spelling, on every kind of route and in forward-auth |
//! | `tokens` | OpenID RP certification cases for the code flow, bearer JWT header attacks |
//! | `csrf` | state, PKCE, code injection and replay, mix-up |
//! | `sessions` | fixation, tampering, replay after logout, back-channel logout and refresh failure |
//! | `smuggling` | HTTP/1 framing: CL.TE, TE.CL, duplicate lengths, obs-fold, bare LF, oversized bodies |
//! | `upstream_claims` | the upstream setting the proxy's cookies or sending identity headers |
//! | `claims` | role strings trimmed or folded, ID and logout tokens with an untrusted extra audience |
//! | `floods` | slow and idle connections, 10,000 concurrent connections, WebSocket abuse, HTTP/2 rapid reset and CONTINUATION floods |

mod claims;
mod csrf;
mod floods;
mod header_spoofing;
mod open_redirect;
mod path_bypass;
mod sessions;
mod smuggling;
mod tokens;
mod upstream_claims;

use crate::support::{base_config, Echo, Proxy};

/// Rules the raw-traffic cases run against: the host `admin.app.test` and
/// `/admin` denied, `/secret` needs a login, everything else public.
const DENY_ADMIN: &str = r#"
[[route]]
name = "admin-host"
host = "admin.app.test"
auth = "deny"

[[route]]
name = "admin"
path = "/admin"
auth = "deny"

[[route]]
name = "secret"
path = "/secret"
auth = "login"

[[route]]
name = "public"
path = "/"
auth = "public"
"#;

/// An echo upstream and a proxy with [`DENY_ADMIN`] in front of it.
async fn deny_admin() -> (Echo, Proxy) {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&base_config(&echo.url(), DENY_ADMIN)).await;
    (echo, proxy)
}
