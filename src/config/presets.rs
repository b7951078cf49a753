//! The identity header sets of `identity_preset` (SPEC §11): the header names
//! and list formats each application family documents for a trusted reverse
//! proxy. The README's preset table is written from this file.

use super::types::{HeaderMulti, IdentityHeader, IdentityPreset};

/// One preset header: name, claim, how several values are written, separator,
/// and whether a missing claim refuses the request.
type Spec = (&'static str, &'static str, HeaderMulti, &'static str, bool);

const STANDARD: &[Spec] = &[
    ("X-Forwarded-User", "sub", HeaderMulti::Join, ",", true),
    ("X-Forwarded-Email", "email", HeaderMulti::Join, ",", false),
    (
        "X-Forwarded-Preferred-Username",
        "preferred_username",
        HeaderMulti::Join,
        ",",
        false,
    ),
    ("X-Forwarded-Groups", "roles", HeaderMulti::Join, ",", false),
];

/// Grafana `[auth.proxy]`: `header_name = X-WEBAUTH-USER` (`header_property =
/// username`), `headers = Email:X-WEBAUTH-EMAIL Name:X-WEBAUTH-NAME
/// Groups:X-WEBAUTH-GROUPS`.
const GRAFANA: &[Spec] = &[
    (
        "X-WEBAUTH-USER",
        "preferred_username",
        HeaderMulti::Join,
        ",",
        true,
    ),
    ("X-WEBAUTH-EMAIL", "email", HeaderMulti::Join, ",", false),
    ("X-WEBAUTH-NAME", "name", HeaderMulti::Join, ",", false),
    ("X-WEBAUTH-GROUPS", "roles", HeaderMulti::Join, ",", false),
];

/// Gitea and Forgejo reverse-proxy authentication (`REVERSE_PROXY_AUTHENTICATION_USER`,
/// `_EMAIL`, `_FULL_NAME`).
const GITEA: &[Spec] = &[
    (
        "X-WEBAUTH-USER",
        "preferred_username",
        HeaderMulti::Join,
        ",",
        true,
    ),
    ("X-WEBAUTH-EMAIL", "email", HeaderMulti::Join, ",", false),
    ("X-WEBAUTH-FULLNAME", "name", HeaderMulti::Join, ",", false),
];

/// Jenkins reverse-proxy-auth plugin: groups joined by `|`.
const JENKINS: &[Spec] = &[
    (
        "X-Forwarded-User",
        "preferred_username",
        HeaderMulti::Join,
        ",",
        true,
    ),
    ("X-Forwarded-Groups", "roles", HeaderMulti::Join, "|", false),
    ("X-Forwarded-Mail", "email", HeaderMulti::Join, ",", false),
    (
        "X-Forwarded-DisplayName",
        "name",
        HeaderMulti::Join,
        ",",
        false,
    ),
];

/// SonarQube HTTP header SSO (`sonar.web.sso.*Header`): groups comma-separated.
const SONARQUBE: &[Spec] = &[
    (
        "X-Forwarded-Login",
        "preferred_username",
        HeaderMulti::Join,
        ",",
        true,
    ),
    ("X-Forwarded-Name", "name", HeaderMulti::Join, ",", false),
    ("X-Forwarded-Email", "email", HeaderMulti::Join, ",", false),
    ("X-Forwarded-Groups", "roles", HeaderMulti::Join, ",", false),
];

/// Radicale `[auth] type = http_x_remote_user`.
const RADICALE: &[Spec] = &[(
    "X-Remote-User",
    "preferred_username",
    HeaderMulti::Join,
    ",",
    true,
)];

/// Kubernetes API user impersonation: one `Impersonate-Group` per group.
const KUBERNETES: &[Spec] = &[
    ("Impersonate-User", "sub", HeaderMulti::Join, ",", true),
    (
        "Impersonate-Group",
        "roles",
        HeaderMulti::Repeat,
        ",",
        false,
    ),
];

/// The header set of `preset`.
pub fn headers(preset: IdentityPreset) -> Vec<IdentityHeader> {
    let specs: &[Spec] = match preset {
        IdentityPreset::Standard => STANDARD,
        IdentityPreset::Grafana => GRAFANA,
        IdentityPreset::Gitea => GITEA,
        IdentityPreset::Jenkins => JENKINS,
        IdentityPreset::Sonarqube => SONARQUBE,
        IdentityPreset::Radicale => RADICALE,
        IdentityPreset::Kubernetes => KUBERNETES,
        IdentityPreset::None => &[],
    };
    specs
        .iter()
        .map(
            |&(name, claim, multi, separator, required)| IdentityHeader {
                name: name.to_owned(),
                claim: claim.to_owned(),
                multi,
                separator: separator.to_owned(),
                required,
            },
        )
        .collect()
}

/// Every header name any preset can produce, lowercase: stripped from every
/// client request whether or not an upstream uses that preset.
pub fn all_names() -> impl Iterator<Item = String> {
    IdentityPreset::ALL
        .into_iter()
        .flat_map(headers)
        .map(|h| h.name.to_ascii_lowercase())
}
