//! From validated claims to an [`Identity`] (SPEC §4.2).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::identity::Identity;

/// Bytes of one kept claim's JSON above which it is not kept (a session
/// record stays small; a rule or header reading it sees it absent).
const MAX_KEPT_CLAIM_BYTES: usize = 8 * 1024;

/// The identity in `claims`, with roles read from each place `roles_claim` names
/// and the claims `kept` names (the config's `Config::kept_claims`) kept.
pub fn identity(claims: &Map<String, Value>, roles_claim: &[String], kept: &[String]) -> Identity {
    Identity {
        sub: text(claims, "sub").unwrap_or_default(),
        email: text(claims, "email"),
        email_verified: is_true(claims.get("email_verified")),
        name: text(claims, "name"),
        preferred_username: text(claims, "preferred_username"),
        roles: roles(claims, roles_claim),
        claims: kept_claims(claims, kept),
        ..Identity::default()
    }
}

/// The values of the claims `kept` names, each found as `roles_claim` finds
/// roles: the exact top-level name, else a dotted path.
fn kept_claims(claims: &Map<String, Value>, kept: &[String]) -> BTreeMap<String, Value> {
    kept.iter()
        .filter_map(|place| {
            let value = claims
                .get(place.as_str())
                .or_else(|| dotted(claims, place))?;
            let size = serde_json::to_vec(value).map_or(usize::MAX, |v| v.len());
            if size > MAX_KEPT_CLAIM_BYTES {
                tracing::warn!(claim = %place, size, "claim too large to keep; treated as absent");
                return None;
            }
            Some((place.clone(), value.clone()))
        })
        .collect()
}

/// A bearer token's scopes (RFC 8693 §4.2 `scope`, space-separated; or the
/// `scp` array some providers use), each exactly as written.
pub fn scopes(claims: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(Value::String(scope)) = claims.get("scope") {
        out.extend(
            scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
    }
    match claims.get("scp") {
        Some(Value::Array(items)) => {
            out.extend(items.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        Some(Value::String(scp)) => {
            out.extend(scp.split(' ').filter(|s| !s.is_empty()).map(str::to_owned));
        }
        _ => {}
    }
    out.dedup();
    out
}

/// Roles from every place in `roles_claim`, in order, without duplicates.
///
/// Each place is the exact top-level claim name when present (namespaced claims
/// such as `https://app.example.com/roles` contain dots and slashes), otherwise
/// a dotted path into nested objects (`realm_access.roles`). A value is an array
/// of strings or one space- or comma-separated string.
///
/// # Security
/// In an array, each string element is one role exactly as written: `"admin "`
/// or `"Admin"` is not `admin`. Trimming or folding here would grant a role the
/// provider never issued to a token the app (or another verifier reading the
/// same claim) sees differently. Non-string elements grant nothing.
pub fn roles(claims: &Map<String, Value>, roles_claim: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for place in roles_claim {
        let value = claims.get(place.as_str()).or_else(|| dotted(claims, place));
        for role in role_values(value) {
            if !out.contains(&role) {
                out.push(role);
            }
        }
    }
    out
}

fn dotted<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

fn role_values(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => s
            .split([' ', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// `email_verified` is a boolean, but some providers send the string "true".
fn is_true(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn exact_namespaced_claim_wins_over_a_dotted_path() {
        let c = claims(json!({
            "https://app.example.com/roles": ["admin", "user"],
            "https://app": {"example": {"com/roles": ["wrong"]}}
        }));
        assert_eq!(
            roles(&c, &["https://app.example.com/roles".into()]),
            ["admin", "user"]
        );
    }

    #[test]
    fn dotted_paths_reach_nested_roles() {
        let c = claims(json!({
            "realm_access": {"roles": ["offline_access", "admin"]},
            "resource_access": {"myapp": {"roles": ["editor"]}}
        }));
        let places = vec![
            "realm_access.roles".into(),
            "resource_access.myapp.roles".into(),
        ];
        assert_eq!(roles(&c, &places), ["offline_access", "admin", "editor"]);
    }

    #[test]
    fn string_values_split_on_spaces_and_commas_and_duplicates_merge() {
        let c = claims(json!({"roles": "admin, user  ops", "groups": ["ops", "dev"]}));
        assert_eq!(
            roles(&c, &["roles".into(), "groups".into()]),
            ["admin", "user", "ops", "dev"]
        );
    }

    #[test]
    fn array_elements_are_roles_exactly_as_written() {
        let c = claims(json!({"roles": [
            "admin ", " admin", "Admin", "ADMIN", "admin\u{0}", "\tadmin", ["admin"],
            {"admin": true}, 1, true, null, "", "ops"
        ]}));
        let found = roles(&c, &["roles".into()]);
        assert!(!found.iter().any(|r| r == "admin"), "{found:?}");
        assert!(
            found.iter().any(|r| r == "ops"),
            "positive control: {found:?}"
        );
        assert!(
            found.iter().any(|r| r == "admin "),
            "kept as written: {found:?}"
        );
    }

    #[test]
    fn missing_or_odd_values_give_no_roles() {
        let c = claims(json!({"roles": 7, "nested": {"roles": {"a": 1}}}));
        assert!(roles(
            &c,
            &["roles".into(), "nested.roles".into(), "absent".into()]
        )
        .is_empty());
    }

    #[test]
    fn email_verified_must_be_true() {
        let c = claims(json!({"sub": "1", "email": "a@b.c", "email_verified": "false"}));
        assert!(!identity(&c, &[], &[]).email_verified);
        let c = claims(json!({"sub": "1", "email": "a@b.c", "email_verified": true}));
        assert!(identity(&c, &[], &[]).email_verified);
    }
}
