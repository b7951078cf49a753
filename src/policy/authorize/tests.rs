//! Authorization (SPEC §3): every key allows what it should and refuses what it
//! should, each refusal beside its positive control.

use std::net::IpAddr;

use serde_json::{json, Value};

use super::*;
use crate::config::AuthMode;

// === Helpers ===

fn rule(req: Requirements) -> Rule {
    Rule {
        name: "r".into(),
        auth: AuthMode::Login,
        requirements: req,
        upstream: 0,
        strip_prefix: None,
        providers: vec![0],
        connections: Vec::new(),
        counters: std::sync::Arc::new(crate::admin::metrics::RouteCounters::new("r")),
    }
}

fn who(roles: &[&str], email: Option<&str>, verified: bool) -> Identity {
    Identity {
        sub: "u".into(),
        email: email.map(str::to_owned),
        email_verified: verified,
        roles: strings(roles),
        ..Identity::default()
    }
}

/// An identity holding `claims` (by reference, as `auth` keeps them).
fn with_claims(claims: Value) -> Identity {
    let claims = claims.as_object().cloned().expect("a json object");
    Identity {
        sub: "u".into(),
        claims: claims.into_iter().collect(),
        ..Identity::default()
    }
}

fn with_scopes(scopes: &[&str]) -> Identity {
    Identity {
        sub: "u".into(),
        scopes: strings(scopes),
        ..Identity::default()
    }
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| (*x).to_owned()).collect()
}

fn req(any: &[&str], all: &[&str], domains: &[&str]) -> Requirements {
    Requirements {
        roles_any: strings(any),
        roles_all: strings(all),
        email_domains: strings(domains),
        ..Requirements::default()
    }
}

fn claims_req(claims: &[(&str, &[&str])]) -> Requirements {
    Requirements {
        claims: claims
            .iter()
            .map(|(claim, values)| ((*claim).to_owned(), strings(values)))
            .collect(),
        ..Requirements::default()
    }
}

fn sources(cidrs: &[&str]) -> Requirements {
    Requirements {
        source_ips: cidrs
            .iter()
            .map(|c| c.parse().expect("a test cidr"))
            .collect(),
        ..Requirements::default()
    }
}

fn scopes(any: &[&str], all: &[&str]) -> Requirements {
    Requirements {
        scopes_any: strings(any),
        scopes_all: strings(all),
        ..Requirements::default()
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("a test address")
}

fn none() -> Requirements {
    Requirements::default()
}

/// The route's requirements alone, for a session.
fn session_verdict(route: Requirements, identity: &Identity) -> Result<(), Denial> {
    authorize(&none(), &rule(route), identity, false).map(|_| ())
}

/// The route's requirements alone, for a bearer token.
fn bearer_verdict(route: Requirements, identity: &Identity) -> Result<(), Denial> {
    authorize(&none(), &rule(route), identity, true).map(|_| ())
}

// === Roles and email domains ===

#[test]
fn roles_any_needs_one_of_them() {
    let r = rule(req(&["admin", "ops"], &[], &[]));
    assert!(authorize(&none(), &r, &who(&["ops"], None, false), false).is_ok());
    assert!(authorize(&none(), &r, &who(&["user"], None, false), false).is_err());
    assert!(authorize(&none(), &r, &who(&[], None, false), false).is_err());
}

#[test]
fn roles_all_needs_every_one() {
    let r = rule(req(&[], &["admin", "ops"], &[]));
    assert!(authorize(&none(), &r, &who(&["ops", "admin"], None, false), false).is_ok());
    assert_eq!(
        authorize(&none(), &r, &who(&["admin"], None, false), false).err(),
        Some(Denial::MissingRoles {
            missing: vec!["ops".into()]
        })
    );
}

#[test]
fn email_domains_admit_only_verified_single_at_addresses_in_the_domain() {
    let r = rule(req(&[], &[], &["example.com"]));
    let ok = |email: &str, verified: bool| {
        authorize(&none(), &r, &who(&[], Some(email), verified), false).is_ok()
    };
    assert!(ok("alice@example.com", true));
    assert!(ok("alice@EXAMPLE.com", true));
    assert!(!ok("alice@example.com", false), "unverified");
    assert!(!ok("alice@evil.com@example.com", true), "two @");
    assert!(!ok("alice@sub.example.com", true), "subdomain");
    assert!(!ok("alice@evil-example.com", true));
    assert!(!ok("alice@example.com.evil.com", true));
    assert!(!ok("@example.com", true), "empty local part");
    assert!(
        authorize(&none(), &r, &who(&[], None, true), false).is_err(),
        "no email"
    );
}

#[test]
fn global_policy_applies_on_top_of_the_route() {
    let global = req(&["staff"], &[], &[]);
    let r = rule(req(&["admin"], &[], &[]));
    assert!(authorize(&global, &r, &who(&["admin"], None, false), false).is_err());
    assert!(authorize(&global, &r, &who(&["admin", "staff"], None, false), false).is_ok());
}

// === claims ===

#[test]
fn claims_string_claim_must_equal_one_of_the_values() {
    let route = || claims_req(&[("department", &["eng", "ops"])]);
    assert!(session_verdict(route(), &with_claims(json!({"department": "ops"}))).is_ok());
    assert_eq!(
        session_verdict(route(), &with_claims(json!({"department": "sales"}))),
        Err(Denial::Claim {
            claim: "department".into(),
            found: Some(r#""sales""#.into()),
            needed: strings(&["eng", "ops"]),
        })
    );
}

#[test]
fn claims_array_claim_needs_a_string_element_equal_to_one() {
    let route = || claims_req(&[("groups", &["eng"])]);
    let ok = |groups: Value| session_verdict(route(), &with_claims(json!({ "groups": groups })));
    assert!(ok(json!(["sales", "eng"])).is_ok());
    assert!(ok(json!(["sales", "support"])).is_err());
    assert!(ok(json!([])).is_err());
    assert!(
        ok(json!([["eng"], {"eng": true}])).is_err(),
        "nested values"
    );
}

#[test]
fn claims_match_exactly_and_case_sensitively() {
    let route = || claims_req(&[("department", &["eng"])]);
    assert!(session_verdict(route(), &with_claims(json!({"department": "eng"}))).is_ok());
    for value in ["Eng", "ENG", "eng ", " eng", "engineering", "en", ""] {
        let identity = with_claims(json!({ "department": value }));
        assert!(session_verdict(route(), &identity).is_err(), "{value:?}");
    }
    let identity = with_claims(json!({"department": "eng ops"}));
    assert!(
        session_verdict(route(), &identity).is_err(),
        "a string claim is one value, not split like roles"
    );
}

#[test]
fn claims_numbers_booleans_objects_and_null_never_match() {
    let route = || claims_req(&[("level", &["3", "true", "null"])]);
    assert!(session_verdict(route(), &with_claims(json!({"level": "3"}))).is_ok());
    for value in [
        json!(3),
        json!(3.0),
        json!(true),
        json!(null),
        json!({"3": "3"}),
        json!([3, true]),
    ] {
        let identity = with_claims(json!({ "level": value }));
        assert!(session_verdict(route(), &identity).is_err(), "{value}");
    }
    let Err(denial) = session_verdict(route(), &with_claims(json!({"level": 3}))) else {
        panic!("a number must not match");
    };
    assert!(
        denial
            .to_string()
            .contains("is 3 (only a string or an array of strings can match)"),
        "{denial}"
    );
}

#[test]
fn claims_missing_claim_fails() {
    let route = || claims_req(&[("department", &["eng"])]);
    assert!(session_verdict(route(), &with_claims(json!({"department": "eng"}))).is_ok());
    let denial =
        session_verdict(route(), &with_claims(json!({"team": "eng"}))).expect_err("absent claim");
    assert_eq!(
        denial.to_string(),
        r#"claim "department" is missing, needs one of ["eng"]"#
    );
    assert_eq!(denial.key(), "claims");
}

#[test]
fn claims_every_listed_claim_must_hold() {
    let route = || claims_req(&[("acr", &["mfa"]), ("department", &["eng"])]);
    let both = with_claims(json!({"acr": "mfa", "department": "eng"}));
    assert!(session_verdict(route(), &both).is_ok());
    let one = with_claims(json!({"acr": "pwd", "department": "eng"}));
    assert!(matches!(
        session_verdict(route(), &one),
        Err(Denial::Claim { claim, .. }) if claim == "acr"
    ));
}

#[test]
fn claims_nested_path_is_looked_up_by_the_reference_as_written() {
    // `auth` resolves `org.department` (top level, else dotted path) when it
    // keeps the claim; policy finds it under the reference the config wrote.
    let route = || claims_req(&[("org.department", &["eng"])]);
    let kept = with_claims(json!({"org.department": "eng"}));
    assert!(session_verdict(route(), &kept).is_ok());
    let unresolved = with_claims(json!({"org": {"department": "eng"}}));
    assert!(
        session_verdict(route(), &unresolved).is_err(),
        "policy does not walk paths itself"
    );
}

#[test]
fn claims_denial_shortens_a_large_value_and_escapes_it() {
    let route = || claims_req(&[("note", &["x"])]);
    let long = format!("line\nbreak{}", "a".repeat(1000));
    let denial =
        session_verdict(route(), &with_claims(json!({ "note": long }))).expect_err("no match");
    let text = denial.to_string();
    assert!(text.contains(r#""line\nbreak"#), "{text}");
    assert!(!text.contains('\n'), "{text}");
    assert!(text.len() < 400, "{text}");
    assert!(text.contains('…'), "{text}");
}

#[test]
fn policy_claims_apply_on_top_of_the_route() {
    let global = claims_req(&[("acr", &["mfa"])]);
    let r = rule(claims_req(&[("department", &["eng"])]));
    let both = with_claims(json!({"acr": "mfa", "department": "eng"}));
    assert!(authorize(&global, &r, &both, false).is_ok());
    let route_only = with_claims(json!({"department": "eng"}));
    assert!(matches!(
        authorize(&global, &r, &route_only, false),
        Err(Denial::Claim { claim, .. }) if claim == "acr"
    ));
}

// === source_ips ===

fn admitted(global: &Requirements, route: Requirements, client: &str) -> Result<(), Denial> {
    admit_source(global, &rule(route), ip(client))
}

#[test]
fn source_ips_admit_a_client_inside_and_refuse_one_outside() {
    let route = || sources(&["10.0.0.0/8", "2001:db8::/32"]);
    assert!(admitted(&none(), route(), "10.1.2.3").is_ok());
    assert!(admitted(&none(), route(), "2001:db8::1").is_ok());
    let denial = admitted(&none(), route(), "203.0.113.9").expect_err("outside");
    assert_eq!(
        denial.to_string(),
        "client 203.0.113.9 is not in source_ips [10.0.0.0/8, 2001:db8::/32]"
    );
    assert_eq!(denial.key(), "source_ips");
    assert!(admitted(&none(), route(), "2001:db9::1").is_err());
    assert!(admitted(&none(), route(), "11.0.0.1").is_err());
}

#[test]
fn source_ips_empty_admits_every_client() {
    assert!(admitted(&none(), none(), "203.0.113.9").is_ok());
    assert!(admitted(&none(), none(), "::1").is_ok());
}

#[test]
fn source_ips_judge_an_ipv4_mapped_client_as_its_ipv4_address() {
    let route = || sources(&["10.0.0.0/8"]);
    assert!(admitted(&none(), route(), "::ffff:10.1.2.3").is_ok());
    let denial = admitted(&none(), route(), "::ffff:203.0.113.9").expect_err("outside");
    assert!(
        denial.to_string().starts_with("client 203.0.113.9 "),
        "shown as the ipv4 address: {denial}"
    );
    // An IPv6 rule does not admit an IPv4 client because the socket mapped it.
    assert!(admitted(&none(), sources(&["::/0"]), "::ffff:10.1.2.3").is_err());
    assert!(admitted(&none(), sources(&["::/0"]), "2001:db8::1").is_ok());
}

#[test]
fn source_ips_read_a_mapped_cidr_as_its_ipv4_network() {
    let route = || sources(&["::ffff:10.0.0.0/104"]);
    assert!(admitted(&none(), route(), "10.1.2.3").is_ok());
    assert!(admitted(&none(), route(), "::ffff:10.1.2.3").is_ok());
    assert!(admitted(&none(), route(), "11.1.2.3").is_err());
}

#[test]
fn source_ips_of_policy_and_route_must_each_hold() {
    let global = sources(&["10.0.0.0/8"]);
    let route = || sources(&["10.1.0.0/16"]);
    assert!(admitted(&global, route(), "10.1.2.3").is_ok());
    assert!(
        admitted(&global, route(), "10.2.0.1").is_err(),
        "route refuses"
    );
    assert!(
        admitted(&global, none(), "10.2.0.1").is_ok(),
        "policy alone admits"
    );
    assert!(
        admitted(&global, none(), "192.0.2.1").is_err(),
        "policy refuses"
    );
}

#[test]
fn source_ips_apply_on_public_routes() {
    let mut public = rule(sources(&["10.0.0.0/8"]));
    public.auth = AuthMode::Public;
    assert!(admit_source(&none(), &public, ip("10.0.0.1")).is_ok());
    assert!(admit_source(&none(), &public, ip("192.0.2.1")).is_err());
}

// === scopes ===

#[test]
fn scopes_any_needs_one_of_them_on_a_bearer_token() {
    let route = || scopes(&["reports:read", "reports:admin"], &[]);
    assert!(bearer_verdict(route(), &with_scopes(&["openid", "reports:read"])).is_ok());
    let denial = bearer_verdict(route(), &with_scopes(&["openid"])).expect_err("no scope");
    assert_eq!(
        denial.to_string(),
        r#"token scopes lack one of scopes_any ["reports:read", "reports:admin"] (the token has ["openid"])"#
    );
    assert_eq!(denial.key(), "scopes_any");
    assert!(denial.is_insufficient_scope());
    assert!(
        bearer_verdict(route(), &with_scopes(&["Reports:Read"])).is_err(),
        "exact"
    );
}

#[test]
fn scopes_all_needs_every_one_on_a_bearer_token() {
    let route = || scopes(&[], &["a", "b"]);
    assert!(bearer_verdict(route(), &with_scopes(&["b", "a", "c"])).is_ok());
    let denial = bearer_verdict(route(), &with_scopes(&["a"])).expect_err("lacks b");
    assert_eq!(
        denial,
        Denial::MissingScopes {
            missing: strings(&["b"]),
            held: strings(&["a"]),
        }
    );
    assert_eq!(denial.key(), "scopes_all");
    assert!(denial.is_insufficient_scope());
}

#[test]
fn a_session_never_satisfies_a_route_scope_rule() {
    // Even an identity that somehow holds the scope: it did not come with a token.
    let holder = with_scopes(&["reports:read"]);
    assert!(bearer_verdict(scopes(&["reports:read"], &[]), &holder).is_ok());
    let denial = session_verdict(scopes(&["reports:read"], &[]), &holder).expect_err("session");
    assert_eq!(
        denial.to_string(),
        r#"a session has no scopes; this route needs scopes_any ["reports:read"]"#
    );
    assert_eq!(denial.key(), "scopes_any");
    assert!(denial.is_insufficient_scope());
    let all = session_verdict(scopes(&[], &["reports:read"]), &holder).expect_err("session");
    assert_eq!(all.key(), "scopes_all");
}

#[test]
fn policy_scopes_apply_to_bearer_tokens_only() {
    let global = scopes(&["api"], &["base"]);
    let r = rule(none());
    assert!(authorize(&global, &r, &with_scopes(&["api", "base"]), true).is_ok());
    assert_eq!(
        authorize(&global, &r, &with_scopes(&["base"]), true)
            .map(|_| ())
            .map_err(|d| d.key()),
        Err("scopes_any")
    );
    assert_eq!(
        authorize(&global, &r, &with_scopes(&["api"]), true)
            .map(|_| ())
            .map_err(|d| d.key()),
        Err("scopes_all")
    );
    // A session on a login route is not refused by policy-wide scopes.
    assert!(authorize(&global, &r, &with_scopes(&[]), false).is_ok());
}

#[test]
fn policy_and_route_scopes_both_hold_for_a_bearer_token() {
    let global = scopes(&["api"], &[]);
    let r = rule(scopes(&["reports:read"], &[]));
    assert!(authorize(&global, &r, &with_scopes(&["api", "reports:read"]), true).is_ok());
    assert!(authorize(&global, &r, &with_scopes(&["reports:read"]), true).is_err());
    assert!(authorize(&global, &r, &with_scopes(&["api"]), true).is_err());
}

// === Denial ===

#[test]
fn only_scope_denials_are_insufficient_scope() {
    let others = [
        Denial::NoneOfRoles {
            needed: strings(&["a"]),
        },
        Denial::MissingRoles {
            missing: strings(&["a"]),
        },
        Denial::EmailDomain {
            email: None,
            domains: strings(&["example.com"]),
        },
        Denial::Claim {
            claim: "c".into(),
            found: None,
            needed: strings(&["x"]),
        },
        Denial::SourceIp {
            client: ip("192.0.2.1"),
            allowed: Vec::new(),
        },
    ];
    let keys: Vec<&str> = others.iter().map(Denial::key).collect();
    assert_eq!(
        keys,
        [
            "roles_any",
            "roles_all",
            "email_domains",
            "claims",
            "source_ips"
        ]
    );
    for denial in others {
        assert!(!denial.is_insufficient_scope(), "{denial}");
    }
}
