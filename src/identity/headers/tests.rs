use super::*;
use crate::config::{IdentityHeader, IdentityPreset};
use http::HeaderValue;
use serde_json::json;

fn alice() -> Identity {
    Identity {
        sub: "248289761001".into(),
        email: Some("alice@example.com".into()),
        email_verified: true,
        name: Some("Alice Example".into()),
        preferred_username: Some("alice".into()),
        roles: vec!["admin".into(), "ops team".into()],
        ..Identity::default()
    }
}

fn preset(preset: IdentityPreset) -> HeaderSet {
    HeaderSet::new(&config::presets::headers(preset))
}

/// Every value of every header `set` produced, in order, as `name: value` lines.
fn lines(headers: &HeaderMap) -> Vec<String> {
    headers
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.to_str().expect("ascii")))
        .collect()
}

/// The headers `set` writes for `identity`, sorted, without
/// `X-Forwarded-Provider` (checked here: every set carries it).
fn set_all(identity: &Identity, set: &HeaderSet) -> Vec<String> {
    let mut headers = HeaderMap::new();
    super::set(&mut headers, identity, set).expect("set");
    let provider = headers
        .remove("x-forwarded-provider")
        .expect("every set names the provider");
    assert_eq!(provider, identity.provider.as_str());
    let mut out = lines(&headers);
    out.sort();
    out
}

#[test]
fn strips_every_spelling_of_every_identity_header() {
    let strip_set = StripSet::of(["x-team-id".to_owned()].into_iter());
    let spellings = [
        "x-forwarded-user",
        "X-Forwarded-User",
        "x_forwarded_user",
        "x.forwarded.user",
        "X_Forwarded-User",
        "x-forwarded-email",
        "x_forwarded_email",
        "x-forwarded-preferred-username",
        "x_forwarded_preferred_username",
        "x-forwarded-groups",
        "x.forwarded.groups",
        "x-portcullis-identity",
        "x_portcullis_identity",
        "x-auth-request-user",
        "x-auth-request-email",
        "x_auth_request_access_token",
        "X-Auth-Request-Groups",
        "x-webauth-user",
        "X_WEBAUTH_GROUPS",
        "x-webauth-fullname",
        "x-forwarded-mail",
        "x.forwarded.displayname",
        "x-forwarded-login",
        "x-forwarded-name",
        "x-remote-user",
        "X_Remote_User",
        "impersonate-user",
        "Impersonate-Group",
        "impersonate_uid",
        "impersonate-extra-scopes",
        "x-team-id",
        "X_Team.Id",
    ];
    for spelling in spellings {
        let mut headers = HeaderMap::new();
        let name = HeaderName::from_bytes(spelling.as_bytes()).expect("test name is valid");
        headers.append(name.clone(), HeaderValue::from_static("mallory"));
        headers.append(name, HeaderValue::from_static("again"));
        headers.insert("x-other", HeaderValue::from_static("kept"));
        assert_eq!(
            strip(&mut headers, &strip_set),
            1,
            "{spelling} must be stripped"
        );
        assert_eq!(
            headers.len(),
            1,
            "{spelling}: only the unrelated header remains"
        );
    }
}

#[test]
fn keeps_headers_that_only_look_alike() {
    let mut headers = HeaderMap::new();
    for name in [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-users",
        "x-user",
        "x-webauth",
        "impersonate",
        "x-remote-users",
        "x-team-ids",
    ] {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("test name is valid"),
            HeaderValue::from_static("v"),
        );
    }
    let strip_set = StripSet::of(["x-team-id".to_owned()].into_iter());
    assert_eq!(strip(&mut headers, &strip_set), 0);
    assert_eq!(headers.len(), 9);
}

#[test]
fn the_standard_set_is_spec_section_7() {
    assert_eq!(
        set_all(&alice(), &HeaderSet::standard()),
        [
            "x-forwarded-email: alice@example.com",
            "x-forwarded-groups: admin,ops team",
            "x-forwarded-preferred-username: alice",
            "x-forwarded-user: 248289761001",
        ]
    );
}

#[test]
fn each_preset_writes_its_applications_headers_byte_for_byte() {
    let alice = alice();
    let cases: [(IdentityPreset, &[&str]); 7] = [
        (
            IdentityPreset::Grafana,
            &[
                "x-webauth-email: alice@example.com",
                "x-webauth-groups: admin,ops team",
                "x-webauth-name: Alice Example",
                "x-webauth-user: alice",
            ],
        ),
        (
            IdentityPreset::Gitea,
            &[
                "x-webauth-email: alice@example.com",
                "x-webauth-fullname: Alice Example",
                "x-webauth-user: alice",
            ],
        ),
        (
            IdentityPreset::Jenkins,
            &[
                "x-forwarded-displayname: Alice Example",
                "x-forwarded-groups: admin|ops team",
                "x-forwarded-mail: alice@example.com",
                "x-forwarded-user: alice",
            ],
        ),
        (
            IdentityPreset::Sonarqube,
            &[
                "x-forwarded-email: alice@example.com",
                "x-forwarded-groups: admin,ops team",
                "x-forwarded-login: alice",
                "x-forwarded-name: Alice Example",
            ],
        ),
        (IdentityPreset::Radicale, &["x-remote-user: alice"]),
        (
            IdentityPreset::Kubernetes,
            &[
                "impersonate-group: admin",
                "impersonate-group: ops team",
                "impersonate-user: 248289761001",
            ],
        ),
        (IdentityPreset::None, &[]),
    ];
    for (which, expected) in cases {
        assert_eq!(set_all(&alice, &preset(which)), expected, "{which:?}");
    }
}

#[test]
fn kubernetes_groups_are_one_header_each_and_never_split_by_commas() {
    let mut who = alice();
    who.roles = vec!["system:masters,evil".into(), "dev".into()];
    let mut headers = HeaderMap::new();
    set(&mut headers, &who, &preset(IdentityPreset::Kubernetes)).expect("set");
    let groups: Vec<&str> = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(groups, ["system:masters,evil", "dev"]);
    // No roles: no group header at all (the API server adds system:authenticated).
    who.roles.clear();
    let mut headers = HeaderMap::new();
    set(&mut headers, &who, &preset(IdentityPreset::Kubernetes)).expect("set");
    assert!(headers.get("impersonate-group").is_none());
    assert_eq!(headers["impersonate-user"], "248289761001");
}

fn custom(
    name: &str,
    claim: &str,
    multi: HeaderMulti,
    separator: &str,
    required: bool,
) -> IdentityHeader {
    IdentityHeader {
        name: name.into(),
        claim: claim.into(),
        multi,
        separator: separator.into(),
        required,
    }
}

#[test]
fn custom_headers_read_kept_claims_in_every_list_format() {
    let mut who = alice();
    who.claims.insert("department".into(), json!("eng|ops"));
    who.claims
        .insert("teams".into(), json!(["a|b", "café", 7, {"x": 1}]));
    who.claims
        .insert("realm_access.roles".into(), json!(["r1", "r2"]));
    let set = HeaderSet::new(&[
        custom("X-Dept", "department", HeaderMulti::Join, "|", false),
        custom("X-Teams", "teams", HeaderMulti::Join, "|", false),
        custom("X-Teams-Json", "teams", HeaderMulti::Json, ",", false),
        custom("X-Team", "teams", HeaderMulti::Repeat, ",", false),
        custom(
            "X-Realm",
            "realm_access.roles",
            HeaderMulti::Join,
            ";",
            false,
        ),
        custom("X-Absent", "nothing", HeaderMulti::Join, ",", false),
    ]);
    let mut headers = HeaderMap::new();
    super::set(&mut headers, &who, &set).expect("set");
    // One value: the separator is not a list boundary there, so it stays.
    assert_eq!(headers["x-dept"], "eng|ops");
    assert_eq!(headers["x-teams"], "a%7Cb|caf%C3%A9|7|{\"x\":1}");
    assert_eq!(
        headers["x-teams-json"],
        "[\"a|b\",\"caf\\u00e9\",\"7\",\"{\\\"x\\\":1}\"]"
    );
    let team: Vec<&str> = headers
        .get_all("x-team")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(team, ["a|b", "caf%C3%A9", "7", "{\"x\":1}"]);
    assert_eq!(headers["x-realm"], "r1;r2");
    assert!(headers.get("x-absent").is_none());
}

#[test]
fn a_required_claim_that_is_missing_sets_nothing() {
    let set = HeaderSet::new(&[
        custom("X-User", "sub", HeaderMulti::Join, ",", true),
        custom("X-Dept", "department", HeaderMulti::Join, ",", true),
    ]);
    let mut headers = HeaderMap::new();
    let err = super::set(&mut headers, &alice(), &set).expect_err("department is missing");
    assert_eq!(err.claim, "department");
    assert!(headers.is_empty(), "{headers:?}");
    let mut who = alice();
    who.claims.insert("department".into(), json!("eng"));
    assert!(super::set(&mut headers, &who, &set).is_ok());
}

#[test]
fn set_values_cannot_split_or_inject_headers() {
    let mut headers = HeaderMap::new();
    let identity = Identity {
        sub: "u1\r\nX-Forwarded-User: admin".into(),
        email: Some("josé@example.com".into()),
        preferred_username: Some("100%".into()),
        roles: vec!["admin,root".into(), "user".into()],
        ..Identity::default()
    };
    set(&mut headers, &identity, &HeaderSet::standard()).expect("set");
    assert_eq!(
        headers["x-forwarded-user"],
        "u1%0D%0AX-Forwarded-User: admin"
    );
    assert_eq!(headers["x-forwarded-email"], "jos%C3%A9@example.com");
    assert_eq!(headers["x-forwarded-preferred-username"], "100%25");
    assert_eq!(headers["x-forwarded-groups"], "admin%2Croot,user");
    assert_eq!(headers.get_all("x-forwarded-user").iter().count(), 1);
    let json = HeaderSet::new(&[custom("X-J", "roles", HeaderMulti::Json, ",", false)]);
    let mut headers = HeaderMap::new();
    let mut who = identity.clone();
    who.roles = vec!["a\"],\"admin".into(), "\u{0}\n".into()];
    set(&mut headers, &who, &json).expect("set");
    assert_eq!(headers["x-j"], "[\"a\\\"],\\\"admin\",\"\\u0000\\u000a\"]");
}

#[test]
fn a_copy_sets_its_own_claims_not_those_encoded_for_the_original() {
    let standard = HeaderSet::standard();
    let alice = Identity {
        sub: "alice".into(),
        roles: vec!["admin".into()],
        ..Identity::default()
    };
    set(&mut HeaderMap::new(), &alice, &standard).expect("set"); // encodes and keeps alice's values
    let mut bob = alice.clone();
    bob.sub = "bob".into();
    bob.roles = vec!["viewer".into()];
    bob.email = Some("bob@example.com".into());

    let mut headers = HeaderMap::new();
    set(&mut headers, &bob, &standard).expect("set");
    assert_eq!(headers["x-forwarded-user"], "bob");
    assert_eq!(headers["x-forwarded-groups"], "viewer");
    assert_eq!(headers["x-forwarded-email"], "bob@example.com");

    let mut again = HeaderMap::new();
    set(&mut again, &alice, &standard).expect("set");
    assert_eq!(again["x-forwarded-user"], "alice");
    assert_eq!(again["x-forwarded-groups"], "admin");
    assert!(again.get("x-forwarded-email").is_none());
}

#[test]
fn one_identity_keeps_values_per_header_set() {
    let alice = alice();
    let (standard, grafana, radicale) = (
        HeaderSet::standard(),
        preset(IdentityPreset::Grafana),
        preset(IdentityPreset::Radicale),
    );
    for _ in 0..3 {
        assert_eq!(set_all(&alice, &radicale), ["x-remote-user: alice"]);
        assert_eq!(set_all(&alice, &grafana).len(), 4);
        assert_eq!(set_all(&alice, &standard).len(), 4);
    }
    // A reload compiles a new set: it is encoded afresh, never confused with the old.
    let recompiled = preset(IdentityPreset::Radicale);
    assert_ne!(recompiled.id, radicale.id);
    assert_eq!(set_all(&alice, &recompiled), ["x-remote-user: alice"]);
}

#[test]
fn kept_values_are_no_part_of_the_identity() {
    let alice = Identity {
        sub: "alice".into(),
        roles: vec!["admin".into()],
        ..Identity::default()
    };
    let fresh = alice.clone();
    set(&mut HeaderMap::new(), &alice, &HeaderSet::standard()).expect("set");
    assert_eq!(alice, fresh, "encoded values changed equality");
    let json = serde_json::to_value(&alice).expect("an identity serializes");
    assert!(json.get("header_values").is_none(), "{json}");
    let back: Identity = serde_json::from_value(json).expect("and reads back");
    assert_eq!(back, fresh);
}

#[test]
fn every_header_set_names_the_provider() {
    let mut partner = alice();
    partner.provider = "partners".into();
    for preset in IdentityPreset::ALL {
        let mut headers = HeaderMap::new();
        set(&mut headers, &partner, &self::preset(preset)).expect("set");
        assert_eq!(headers["x-forwarded-provider"], "partners", "{preset:?}");
        assert_eq!(headers.get_all("x-forwarded-provider").iter().count(), 1);
    }
}

#[test]
fn configured_names_are_lowercased_and_copied_once_per_process() {
    let first = HeaderSet::new(&[custom(
        "X-Remote-Team-Lead",
        "sub",
        HeaderMulti::Join,
        ",",
        false,
    )]);
    let again = HeaderSet::new(&[custom(
        "x-remote-team-lead",
        "email",
        HeaderMulti::Join,
        ",",
        false,
    )]);
    let (a, b) = (&first.headers[0].name, &again.headers[0].name);
    assert_eq!(a.as_str(), "x-remote-team-lead");
    assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr(), "one copy");
}
