//! Refuses JSON texts in which an object names the same member twice.
//!
//! RFC 8259 §4 leaves duplicate names to the parser: `serde_json` keeps the
//! last, other libraries keep the first or refuse. A token whose payload reads
//! `{"sub":"alice","sub":"admin"}` would then mean one user to us and another
//! to the app or a downstream verifier (a parser differential). RFC 7519 §4
//! lets a JWT parser reject such a token, and we do, at any depth.
//!
//! Names are compared after unescaping, as every parser sees them: `"sub"` and
//! `"s\u0075b"` are the same name. The walk keeps one set of names per open
//! object and never builds a value tree; `serde_json`'s recursion limit bounds
//! its depth.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Member names longer than this are cut in errors (they end up in logs).
const MAX_NAME_CHARS: usize = 64;

/// Why a JSON text was refused by [`refuse_duplicate_members`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DuplicateMember {
    /// Occurs when one object names a member twice. `name` is unescaped, cut
    /// to [`MAX_NAME_CHARS`] characters and printed with `{:?}`, so a hostile
    /// name cannot forge log lines.
    #[error("duplicate member name {name:?}")]
    Found { name: String },
    /// Occurs when the text is not one JSON value (or nests deeper than
    /// `serde_json` allows), so its members could not all be checked.
    #[error("not JSON: {0}")]
    NotJson(String),
}

impl DuplicateMember {
    /// The repeated member name (bounded), if that was the fault.
    pub fn name(&self) -> Option<&str> {
        match self {
            DuplicateMember::Found { name } => Some(name),
            DuplicateMember::NotJson(_) => None,
        }
    }
}

/// Checks that no object in `json` names a member twice.
///
/// # Errors
/// [`DuplicateMember::Found`] for the first repeated name met,
/// [`DuplicateMember::NotJson`] when `json` is not one JSON value.
pub fn refuse_duplicate_members(json: &[u8]) -> Result<(), DuplicateMember> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let mut found = None;
    let walked = Node { found: &mut found }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    match (walked, found) {
        // The duplicate is reported through `found`; the error it raised to
        // stop the walk carries nothing more.
        (_, Some(name)) => Err(DuplicateMember::Found { name }),
        (Err(e), None) => Err(DuplicateMember::NotJson(e.to_string())),
        (Ok(()), None) => Ok(()),
    }
}

/// One JSON value of any kind; records the first duplicate name in `found`.
struct Node<'a> {
    found: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    // Scalars carry no member names.
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Node {
                found: &mut *self.found,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(name) = map.next_key_seed(Name)? {
            if seen.contains(&name) {
                *self.found = Some(bounded(&name));
                return Err(de::Error::custom("duplicate member name"));
            }
            map.next_value_seed(Node {
                found: &mut *self.found,
            })?;
            seen.insert(name);
        }
        Ok(())
    }
}

/// A member name, unescaped; borrowed from the input when it had no escapes.
struct Name;

impl<'de> DeserializeSeed<'de> for Name {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Name {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(name))
    }

    fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(name.to_owned()))
    }

    fn visit_string<E>(self, name: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(name))
    }
}

/// `name` cut to [`MAX_NAME_CHARS`] characters, marked when cut.
fn bounded(name: &str) -> String {
    match name.char_indices().nth(MAX_NAME_CHARS) {
        Some((end, _)) => format!("{}…", &name[..end]),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate(json: &str) -> Option<String> {
        match refuse_duplicate_members(json.as_bytes()) {
            Ok(()) => None,
            Err(DuplicateMember::Found { name }) => Some(name),
            Err(e) => panic!("{json}: {e}"),
        }
    }

    #[test]
    fn a_member_named_twice_is_refused_at_any_depth() {
        for (json, name) in [
            (r#"{"sub":"alice","sub":"admin"}"#, "sub"),
            (r#"{"roles":[],"x":1,"roles":["admin"]}"#, "roles"),
            (r#"{"a":{"b":{"roles":[],"roles":[1]}}}"#, "roles"),
            (
                r#"{"realm_access":{"roles":["user"],"roles":["admin"]}}"#,
                "roles",
            ),
            (r#"[{"a":1},{"b":1,"b":2}]"#, "b"),
            (r#"{"x":[[{"alg":"RS256","alg":"none"}]]}"#, "alg"),
            (r#"{"":1,"":2}"#, ""),
        ] {
            assert_eq!(duplicate(json).as_deref(), Some(name), "{json}");
        }
    }

    #[test]
    fn names_are_compared_after_unescaping() {
        assert_eq!(
            duplicate(r#"{"sub":"alice","s\u0075b":"admin"}"#).as_deref(),
            Some("sub")
        );
        assert_eq!(
            duplicate(r#"{"s\u0075b":"alice","\u0073ub":"admin"}"#).as_deref(),
            Some("sub")
        );
        assert_eq!(duplicate(r#"{"a\/b":1,"a/b":2}"#).as_deref(), Some("a/b"));
        assert_eq!(
            duplicate(r#"{"s\u0075b":"alice","sub2":"admin"}"#),
            None,
            "a different name"
        );
    }

    #[test]
    fn the_same_name_in_different_objects_is_fine() {
        for json in [
            r#"{"sub":"alice","nested":{"sub":"bob"},"list":[{"sub":1},{"sub":2}]}"#,
            r#"{"roles":["a","a"],"realm_access":{"roles":["a"]}}"#,
            r#"{"sub":"alice","Sub":"admin"}"#,
            r#"[]"#,
            r#"{}"#,
            r#""sub""#,
            r#"{"a":null,"b":true,"c":-1,"d":1.5e3,"e":18446744073709551615}"#,
        ] {
            assert_eq!(refuse_duplicate_members(json.as_bytes()), Ok(()), "{json}");
        }
    }

    #[test]
    fn text_that_is_not_one_json_value_is_refused() {
        let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
        for json in [
            "",
            "{",
            r#"{"sub":"alice",}"#,
            r#"{"sub":"alice"} {"sub":"admin"}"#,
            r#"{"sub":"\ud800"}"#,
            deep.as_str(),
        ] {
            assert!(
                matches!(
                    refuse_duplicate_members(json.as_bytes()),
                    Err(DuplicateMember::NotJson(_))
                ),
                "{json:.40}"
            );
        }
    }

    #[test]
    fn a_long_hostile_name_is_cut_and_escaped_for_logs() {
        let name = format!("\n{}", "x".repeat(1_000));
        let json = format!(r#"{{"{0}":1,"{0}":2}}"#, name.replace('\n', "\\n"));
        let err = refuse_duplicate_members(json.as_bytes()).expect_err("duplicate");
        let found = err.name().expect("a name");
        assert_eq!(found.chars().count(), MAX_NAME_CHARS + 1);
        assert!(!err.to_string().contains('\n'), "{err}");
    }
}
