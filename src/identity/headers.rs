//! Identity headers (SPEC §7, §11): strip every client-sent spelling of every
//! identity header any upstream could receive, on every route; then (on an
//! allowed authenticated request) set the route's upstream's header set from
//! the verified identity.
//!
//! The app behind portcullis trusts these headers and nothing else, so a client
//! must never be able to smuggle one through. HTTP header names are already
//! case-insensitive, but the app's own stack may not treat `_` and `.` as
//! distinct from `-` (CGI/WSGI and some frameworks map `X_Forwarded_User` to
//! `X-Forwarded-User`; Radicale reads `X_Remote_User` as `X-Remote-User`), so
//! every spelling is removed, as linkerd removes `l5d-client-id`.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::config::{self, HeaderMulti};

use super::Identity;

pub static X_FORWARDED_USER: HeaderName = HeaderName::from_static("x-forwarded-user");
pub static X_FORWARDED_EMAIL: HeaderName = HeaderName::from_static("x-forwarded-email");
pub static X_FORWARDED_PREFERRED_USERNAME: HeaderName =
    HeaderName::from_static("x-forwarded-preferred-username");
pub static X_FORWARDED_GROUPS: HeaderName = HeaderName::from_static("x-forwarded-groups");
pub static X_PORTCULLIS_IDENTITY: HeaderName = HeaderName::from_static("x-portcullis-identity");
/// The provider the identity comes from (SPEC §12), sent with every header set.
pub static X_FORWARDED_PROVIDER: HeaderName = HeaderName::from_static("x-forwarded-provider");

/// Header families removed whole: oauth2-proxy's `X-Auth-Request-*` (apps
/// migrating from it may still trust them) and Kubernetes' `Impersonate-*`
/// (any of them changes who the API server thinks is asking).
const STRIPPED_PREFIXES: [&str; 2] = ["x-auth-request-", "impersonate-"];

/// A claim an upstream's header set requires is missing (`required = true`):
/// the request is refused (403) rather than sent without it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("header {header} needs claim {claim:?}, which the identity does not have")]
pub struct MissingClaim {
    pub header: String,
    pub claim: String,
}

// === StripSet ===

/// Every identity header name that must never come from a client: the §7 set,
/// every preset's headers, every configured `identity_header`, and the
/// families in [`STRIPPED_PREFIXES`]. Compiled once per config.
///
/// Every header of every request and response is looked up here, so a lookup
/// hashes nothing: most names are ruled out by their first byte or their
/// length, and the few left are compared with the names of that length.
#[derive(Debug, Clone)]
pub struct StripSet {
    /// Canonical spellings (lowercase, `-`-separated), by length.
    by_len: Vec<Vec<Box<str>>>,
    /// Which canonical first bytes any name or prefix starts with.
    first: [bool; 256],
}

impl StripSet {
    /// The strip set for every upstream of `config`.
    pub fn new(config: &config::Config) -> Self {
        let configured = std::iter::once(&config.upstream)
            .chain(config.upstreams.values())
            .flat_map(|up| up.identity_headers.iter())
            .map(|h| h.name.to_ascii_lowercase());
        // A connection's own header carries a credential only the proxy may set
        // (SPEC §13); `Authorization` is handled per route, where it may be the
        // client's own bearer token.
        let connection_headers = config
            .connections
            .values()
            .filter(|c| !c.is_bearer_header())
            .map(|c| c.header.to_ascii_lowercase());
        Self::of(configured.chain(connection_headers))
    }

    /// The strip set of the presets and the standard names plus `extra`
    /// (lowercase names).
    pub fn of(extra: impl Iterator<Item = String>) -> Self {
        let names: HashSet<String> = config::presets::all_names()
            .chain([
                X_PORTCULLIS_IDENTITY.as_str().to_owned(),
                X_FORWARDED_PROVIDER.as_str().to_owned(),
            ])
            .chain(extra)
            .map(|name| canonical(&name))
            .collect();
        let longest = names.iter().map(String::len).max().unwrap_or(0);
        let mut by_len: Vec<Vec<Box<str>>> = vec![Vec::new(); longest + 1];
        let mut first = [false; 256];
        for name in names {
            if let Some(&b) = name.as_bytes().first() {
                first[usize::from(b)] = true;
            }
            by_len[name.len()].push(name.into_boxed_str());
        }
        for prefix in STRIPPED_PREFIXES {
            first[usize::from(prefix.as_bytes()[0])] = true;
        }
        StripSet { by_len, first }
    }

    /// Returns true if and only if `name` (a `HeaderName`, so lowercase) is an
    /// identity header once `_` and `.` are read as `-`.
    pub fn matches(&self, name: &str) -> bool {
        let Some(&b) = name.as_bytes().first() else {
            return false;
        };
        if !self.first[usize::from(canonical_byte(b))] {
            return false;
        }
        let same_length = self.by_len.get(name.len()).map_or(&[][..], Vec::as_slice);
        same_length
            .iter()
            .any(|canonical| spelled_as(name, canonical))
            || STRIPPED_PREFIXES
                .iter()
                .any(|prefix| spelled_with_prefix(name, prefix))
    }

    /// Every canonical name, sorted (for `check` output and tests).
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_len.iter().flatten().map(AsRef::as_ref).collect();
        names.sort_unstable();
        names
    }
}

impl Default for StripSet {
    fn default() -> Self {
        Self::of(std::iter::empty())
    }
}

/// `name` lowercased with `_` and `.` read as `-`.
fn canonical(name: &str) -> String {
    name.bytes()
        .map(|b| char::from(canonical_byte(b)))
        .collect()
}

/// Removes every client-sent identity header of `set`, in every spelling and
/// every repetition. Returns how many header names were removed.
pub fn strip(headers: &mut HeaderMap, set: &StripSet) -> usize {
    let removed = remove_where(headers, |name| set.matches(name.as_str()));
    for name in &removed {
        tracing::debug!(header = %name, "removed an identity header");
    }
    removed.len()
}

/// Removes every header whose name `doomed` picks, all its values; returns the
/// names removed. One walk over the names rather than one lookup per name
/// that might be there, and no allocation when nothing matches (the usual
/// request): the proxy's header rewrite is made of such walks.
pub fn remove_where(
    headers: &mut HeaderMap,
    doomed: impl Fn(&HeaderName) -> bool,
) -> Vec<HeaderName> {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| doomed(name))
        .cloned()
        .collect();
    for name in &names {
        headers.remove(name);
    }
    names
}

/// Returns true if and only if `name` is `canonical` (lowercase, `-`-separated)
/// in some spelling: any case, `_` or `.` for `-`. Compares byte by byte, so
/// the check on every header of every request allocates nothing.
pub fn spelled_as(name: &str, canonical: &str) -> bool {
    name.len() == canonical.len() && spelled_with_prefix(name, canonical)
}

/// Returns true if and only if `name` starts with `prefix` (lowercase,
/// `-`-separated) in some spelling, as [`spelled_as`] reads spellings.
pub fn spelled_with_prefix(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name
            .bytes()
            .zip(prefix.bytes())
            .all(|(have, want)| canonical_byte(have) == want)
}

fn canonical_byte(b: u8) -> u8 {
    match b {
        b'_' | b'.' => b'-',
        b => b.to_ascii_lowercase(),
    }
}

// === HeaderSet ===

/// Distinguishes compiled header sets, so an identity's encoded values are
/// never those of another set (or of the same upstream before a reload).
static NEXT_SET_ID: AtomicU64 = AtomicU64::new(1);

/// The identity headers one upstream receives, compiled from its config
/// (preset, then `identity_header` entries).
#[derive(Debug)]
pub struct HeaderSet {
    id: u64,
    headers: Vec<SetHeader>,
}

#[derive(Debug)]
struct SetHeader {
    name: HeaderName,
    source: Source,
    multi: HeaderMulti,
    separator: String,
    required: bool,
}

/// Where a header's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Sub,
    Email,
    Name,
    PreferredUsername,
    /// The roles read through `oidc.roles_claim`.
    Roles,
    /// Any other claim, kept with the identity (see [`Identity::claims`]).
    Claim(String),
}

/// `name` backed by a static copy, made once per distinct name in the
/// process's life (a reload that keeps its names copies nothing). A name built
/// from config text shares one reference-counted buffer, and each request that
/// sets the header clones and drops it: a write to a line every serving thread
/// shares. A static name's clone writes nothing.
fn interned(name: &HeaderName) -> HeaderName {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let Ok(mut names) = NAMES.lock() else {
        return name.clone();
    };
    let text = match names.get(name.as_str()) {
        Some(known) => *known,
        None => {
            let leaked: &'static str = Box::leak(name.as_str().into());
            names.insert(leaked);
            leaked
        }
    };
    // Valid and lowercase: it is a `HeaderName`'s own text.
    HeaderName::from_static(text)
}

impl HeaderSet {
    /// Compiles `headers` (names already validated by the config loader; one
    /// that is not a valid header name is skipped with an error log).
    pub fn new(headers: &[config::IdentityHeader]) -> Self {
        let compiled = headers
            .iter()
            .filter_map(|h| match HeaderName::from_bytes(h.name.as_bytes()) {
                Ok(name) => Some(SetHeader {
                    name: interned(&name),
                    source: source_of(&h.claim),
                    multi: h.multi,
                    separator: h.separator.clone(),
                    required: h.required,
                }),
                Err(error) => {
                    tracing::error!(header = %h.name, %error, "identity header name skipped");
                    None
                }
            })
            .collect();
        HeaderSet {
            id: NEXT_SET_ID.fetch_add(1, Ordering::Relaxed),
            headers: compiled,
        }
    }

    /// The §7 set (`identity_preset = "standard"`).
    pub fn standard() -> Self {
        Self::new(&config::presets::headers(config::IdentityPreset::Standard))
    }

    /// The claims (beyond the identity's own fields) this set reads.
    pub fn claims(&self) -> impl Iterator<Item = &str> {
        self.headers.iter().filter_map(|h| match &h.source {
            Source::Claim(claim) => Some(claim.as_str()),
            _ => None,
        })
    }
}

/// The source a claim reference names: the identity's own fields for the
/// claims it always keeps, else a kept claim.
fn source_of(claim: &str) -> Source {
    match claim {
        "sub" => Source::Sub,
        "email" => Source::Email,
        "name" => Source::Name,
        "preferred_username" => Source::PreferredUsername,
        "roles" => Source::Roles,
        other => Source::Claim(other.to_owned()),
    }
}

/// Sets the headers of `set` for `identity` (call [`strip`] first).
///
/// A value that cannot be a header as it is (control characters, non-ASCII,
/// `%`) is percent-encoded, and so is the separator inside a listed value, so
/// no claim can split a header, inject another or add a list element. The
/// values are encoded on an identity's first request for this set and kept
/// with it ([`Identity::header_values`]): later requests only copy
/// reference-counted values.
///
/// # Errors
/// [`MissingClaim`] when a `required` header's claim is absent; nothing is set then.
pub fn set(
    headers: &mut HeaderMap,
    identity: &Identity,
    set: &HeaderSet,
) -> Result<(), MissingClaim> {
    prepare(identity, set)?.apply(headers);
    Ok(())
}

/// The encoded headers of `set` for `identity`, ready to be applied: a
/// request finds out whether a required claim is missing (and is refused)
/// before anything is sent upstream.
///
/// # Errors
/// [`MissingClaim`] when a `required` header's claim is absent.
pub fn prepare(identity: &Identity, set: &HeaderSet) -> Result<Prepared, MissingClaim> {
    let encoded = identity.header_values.get(identity, set);
    match encoded.as_ref() {
        Ok(_) => Ok(Prepared(encoded)),
        Err(missing) => Err(missing.clone()),
    }
}

/// One identity's encoded headers for one header set (see [`prepare`]).
#[derive(Debug, Clone)]
pub struct Prepared(Arc<Encoded>);

impl Prepared {
    /// Sets the headers (replacing any of the same name; call [`strip`] first).
    pub fn apply(&self, headers: &mut HeaderMap) {
        let Ok(values) = self.0.as_ref() else { return };
        for (name, value) in &values.single {
            headers.insert(name.clone(), value.clone());
        }
        for (name, list) in &values.repeated {
            headers.remove(name);
            for value in list {
                headers.append(name.clone(), value.clone());
            }
        }
    }
}

/// One identity's encoded values for one header set.
#[derive(Debug)]
struct Values {
    single: Vec<(HeaderName, HeaderValue)>,
    repeated: Vec<(HeaderName, Vec<HeaderValue>)>,
}

type Encoded = Result<Values, MissingClaim>;

impl Values {
    fn of(identity: &Identity, set: &HeaderSet) -> Encoded {
        let mut out = Values {
            single: Vec::with_capacity(set.headers.len() + 1),
            repeated: Vec::new(),
        };
        // Every upstream learns which provider vouched: `sub` is unique only
        // within one (SPEC §12).
        out.single.push((
            X_FORWARDED_PROVIDER.clone(),
            safe_value(&identity.provider, ""),
        ));
        for header in &set.headers {
            let Some(found) = claim_values(identity, &header.source) else {
                if header.required {
                    return Err(MissingClaim {
                        header: header.name.to_string(),
                        claim: claim_label(&header.source),
                    });
                }
                continue;
            };
            match header.multi {
                HeaderMulti::Join => {
                    let text = join(&found, &header.separator);
                    out.single.push((header.name.clone(), into_value(text)));
                }
                HeaderMulti::Json => {
                    out.single
                        .push((header.name.clone(), into_value(json_array(found.items()))));
                }
                HeaderMulti::Repeat => {
                    let values = found.items().map(|v| safe_value(v, "")).collect();
                    out.repeated.push((header.name.clone(), values));
                }
            }
        }
        Ok(out)
    }
}

/// What a claim holds, as text: one value, or a list (an array claim, the roles).
enum Found<'a> {
    One(std::borrow::Cow<'a, str>),
    List(Vec<std::borrow::Cow<'a, str>>),
}

impl Found<'_> {
    fn items(&self) -> impl Iterator<Item = &str> {
        let (one, list) = match self {
            Found::One(v) => (Some(v.as_ref()), None),
            Found::List(vs) => (None, Some(vs.iter().map(AsRef::as_ref))),
        };
        one.into_iter().chain(list.into_iter().flatten())
    }
}

/// The values of `source` for `identity`; `None` when the claim is absent
/// (the roles are never absent: no roles is an empty list).
fn claim_values<'a>(identity: &'a Identity, source: &Source) -> Option<Found<'a>> {
    let one = |v: &'a Option<String>| v.as_deref().map(|s| Found::One(s.into()));
    match source {
        Source::Sub => Some(Found::One(identity.sub.as_str().into())),
        Source::Email => one(&identity.email),
        Source::Name => one(&identity.name),
        Source::PreferredUsername => one(&identity.preferred_username),
        Source::Roles => Some(Found::List(
            identity.roles.iter().map(|r| r.as_str().into()).collect(),
        )),
        Source::Claim(claim) => match identity.claims.get(claim)? {
            Value::Null => None,
            Value::String(s) => Some(Found::One(s.as_str().into())),
            Value::Array(items) if items.is_empty() => None,
            Value::Array(items) => Some(Found::List(items.iter().map(text_of).collect())),
            other => Some(Found::One(text_of(other))),
        },
    }
}

/// A claim value as text: a string as it is, anything else as JSON.
fn text_of(value: &Value) -> std::borrow::Cow<'_, str> {
    match value {
        Value::String(s) => s.as_str().into(),
        other => other.to_string().into(),
    }
}

fn claim_label(source: &Source) -> String {
    match source {
        Source::Sub => "sub".to_owned(),
        Source::Email => "email".to_owned(),
        Source::Name => "name".to_owned(),
        Source::PreferredUsername => "preferred_username".to_owned(),
        Source::Roles => "roles".to_owned(),
        Source::Claim(claim) => claim.clone(),
    }
}

/// One value as is (encoded), or a list joined by `separator` with the
/// separator's characters encoded inside each value.
fn join(found: &Found<'_>, separator: &str) -> String {
    match found {
        Found::One(value) => {
            let mut out = String::with_capacity(value.len());
            encode_into(&mut out, value, "");
            out
        }
        Found::List(values) => {
            let mut out = String::new();
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                encode_into(&mut out, value, separator);
            }
            out
        }
    }
}

/// A JSON array of the values, with everything outside visible ASCII escaped
/// as `\uXXXX` (UTF-16, RFC 8259 §7), so the header holds only visible ASCII.
fn json_array<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in value.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                ' '..='~' => out.push(c),
                _ => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
        }
        out.push('"');
    }
    out.push(']');
    out
}

// === Memo ===

/// An identity's header values, encoded on first use per header set and kept.
///
/// It is no part of the identity it belongs to: every two are equal, it is
/// never serialized, and a clone starts empty, so a copy whose claims are
/// changed can never carry the values of the claims it was copied from.
/// The first set an identity is used with (almost always its only one) is
/// read without a lock; a few others are kept behind one, allocated when a
/// second set is first asked for (the memo is in every stored session, whose
/// size decides its allocator size class).
#[derive(Default)]
pub struct Memo {
    first: OnceLock<(u64, Arc<Encoded>)>,
    others: OnceLock<Box<Mutex<Others>>>,
}

/// The values for header sets after the first, by set id.
type Others = Vec<(u64, Arc<Encoded>)>;

/// Header sets beyond the first whose values one identity keeps.
const MEMO_OTHERS: usize = 7;

impl Memo {
    /// The values of `identity`, whose memo this is, for `set`.
    fn get(&self, identity: &Identity, set: &HeaderSet) -> Arc<Encoded> {
        let (id, first) = self
            .first
            .get_or_init(|| (set.id, Arc::new(Values::of(identity, set))));
        if *id == set.id {
            return first.clone();
        }
        let Ok(mut others) = self.others.get_or_init(Box::default).lock() else {
            return Arc::new(Values::of(identity, set));
        };
        if let Some((_, found)) = others.iter().find(|(id, _)| *id == set.id) {
            return found.clone();
        }
        let encoded = Arc::new(Values::of(identity, set));
        if others.len() >= MEMO_OTHERS {
            others.remove(0);
        }
        others.push((set.id, encoded.clone()));
        encoded
    }
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

impl PartialEq for Memo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Memo {}

impl fmt::Debug for Memo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.first.get().is_some() {
            "Memo(encoded)"
        } else {
            "Memo(empty)"
        })
    }
}

fn safe_value(text: &str, separator: &str) -> HeaderValue {
    let mut out = String::with_capacity(text.len());
    encode_into(&mut out, text, separator);
    into_value(out)
}

/// `text` (already encoded) as a header value, without copying it.
fn into_value(text: String) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text)).expect("encoded text is visible ASCII")
}

/// Appends `text` to `out`, percent-encoding everything outside visible ASCII
/// and space, `%` itself (so the encoding is reversible), and any character of
/// `separator`.
fn encode_into(out: &mut String, text: &str, separator: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in text.bytes() {
        let plain =
            (b == b' ' || b.is_ascii_graphic()) && b != b'%' && !separator.as_bytes().contains(&b);
        if plain {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests;
