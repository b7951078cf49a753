//! Where configuration values come from: the file (TOML or YAML, by extension), then
//! `PORTCULLIS_<SECTION>__<KEY>` environment overrides, merged with figment (SPEC §2).
//!
//! Both layers are small figment providers of our own rather than figment's `Toml` and
//! `Env`:
//! - the file is parsed here, once, so a syntax error becomes one clear problem naming the
//!   line, without echoing the line (it may hold a secret); YAML goes through the maintained
//!   `serde_norway`, because figment's `yaml` feature pulls the archived `serde_yaml`;
//! - each environment variable is its own provider whose source is the variable's name, so a
//!   bad override is reported as `PORTCULLIS_OIDC__CLIENT_ID`, not as a figment-internal key;
//!   and `load` and `load_with_env` share one code path, so tests exercise what runs.
//!   The key mapping is that of `Env::prefixed("PORTCULLIS_").split("__")` (prefix matched
//!   without regard to case, keys lowercased), `PORTCULLIS_CONFIG` ignored.
//!
//! Deserialization then runs per section and per route, so a bad value in `[oidc]` does
//! not hide a bad value in `[session]`.

use std::collections::BTreeMap;
use std::path::Path;

use figment::error::{Kind, OneOf};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::de::DeserializeOwned;

use super::error::{ConfigError, Problem, Problems};
use super::raw::{
    RawAdmin, RawConnection, RawIdentity, RawLog, RawOidc, RawPolicy, RawRoute, RawServer,
    RawSession, RawUpstream, SECTIONS,
};

/// The prefix of environment overrides.
const ENV_PREFIX: &str = "PORTCULLIS_";
/// `PORTCULLIS_CONFIG` names the file for the CLI; it is not a config key.
const ENV_IGNORED: &str = "config";
/// The metadata name of environment providers, to tell them from the file.
const ENV_PROVIDER: &str = "environment variable";

/// The file's sections and routes as written, before any value is parsed.
#[derive(Default)]
pub(super) struct RawConfig {
    pub server: RawServer,
    pub admin: RawAdmin,
    pub upstream: RawUpstream,
    /// `[upstreams.NAME]`, by name as written.
    pub upstreams: BTreeMap<String, RawUpstream>,
    pub oidc: RawOidc,
    /// `[providers.NAME]`, by name as written.
    pub providers: BTreeMap<String, RawOidc>,
    /// `[connections.NAME]`, by name as written.
    pub connections: BTreeMap<String, RawConnection>,
    pub session: RawSession,
    pub routes: Vec<RawRoute>,
    pub policy: RawPolicy,
    pub identity: RawIdentity,
    pub log: RawLog,
}

/// Where deserialization reports: the problems, and the keys it had to leave out.
struct Outcome<'a> {
    problems: &'a mut Problems,
    dropped: &'a mut Vec<String>,
}

/// The merged file and environment, with figment's record of which provider set what.
pub(super) struct Layers {
    figment: Figment,
    merged: Dict,
}

/// The file format, chosen by extension.
#[derive(Clone, Copy)]
enum Format {
    Toml,
    Yaml,
}

impl Format {
    fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Toml => "TOML file",
            Format::Yaml => "YAML file",
        }
    }
}

// === impl Layers ===

impl Layers {
    /// Reads the file at `path` and lays `env` (name, value pairs) over it.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`] or [`ConfigError::UnknownFormat`] for the file itself, and
    /// [`ConfigError::Invalid`] for a syntax error or an environment variable that maps to no key.
    pub fn read(path: &Path, env: &[(String, String)]) -> Result<Layers, ConfigError> {
        let format = Format::of(path).ok_or_else(|| ConfigError::UnknownFormat {
            path: path.to_owned(),
        })?;
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file = ParsedFile::parse(path, format, &text)
            .map_err(|problem| ConfigError::Invalid(vec![problem]))?;

        let mut problems = Problems::default();
        let mut figment = Figment::new().merge(file);
        for var in env_overrides(env, &mut problems) {
            figment = figment.merge(var);
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems.into_vec()));
        }

        // Our providers cannot fail, so neither can merging them; keep the error anyway.
        let merged = match figment.find_value("") {
            Ok(Value::Dict(_, dict)) => dict,
            Ok(_) => Dict::new(),
            Err(err) => {
                let problems = err
                    .into_iter()
                    .map(|e| Problem::new(path.display().to_string(), e.to_string()));
                return Err(ConfigError::Invalid(problems.collect()));
            }
        };
        Ok(Layers { figment, merged })
    }

    /// Deserializes every section and route, recording each failure under its key.
    ///
    /// A key whose value does not deserialize is reported, then left out so the rest of
    /// its section still loads and is checked. The keys left out are returned: compiling
    /// falls back to their defaults, and what it says about them ("required", or a
    /// default that conflicts with another key) would only mislead, so the caller drops it.
    pub fn sections(&self, problems: &mut Problems) -> (RawConfig, Vec<String>) {
        let mut dropped = Vec::new();
        for key in self.merged.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                let message = format!("unknown section, expected {}", OneOf(SECTIONS));
                problems.push(
                    printable(key),
                    self.with_origin(message, std::slice::from_ref(key)),
                );
            }
        }

        let mut out = Outcome {
            problems,
            dropped: &mut dropped,
        };
        let raw = RawConfig {
            server: self.section("server", &mut out),
            admin: self.section("admin", &mut out),
            upstream: self.section("upstream", &mut out),
            upstreams: self.named("upstreams", "named upstreams ([upstreams.NAME])", &mut out),
            oidc: self.section("oidc", &mut out),
            providers: self.named(
                "providers",
                "identity providers ([providers.NAME])",
                &mut out,
            ),
            connections: self.named(
                "connections",
                "connected accounts ([connections.NAME])",
                &mut out,
            ),
            session: self.section("session", &mut out),
            routes: self.routes(&mut out),
            policy: self.section("policy", &mut out),
            identity: self.section("identity", &mut out),
            log: self.section("log", &mut out),
        };
        (raw, dropped)
    }

    /// Appends "(from PORTCULLIS_...)" to each problem whose value an environment
    /// variable set, so an operator looks there rather than in the file.
    pub fn annotate_env_origins(&self, problems: &mut Problems) {
        for problem in problems.iter_mut() {
            let path = key_to_path(&problem.key);
            if let Some(var) = self.env_var_at(&path) {
                problem.message = format!("{} (from {var})", problem.message);
            }
        }
    }

    fn section<T: Default + DeserializeOwned>(&self, name: &str, out: &mut Outcome<'_>) -> T {
        match self.merged.get(name) {
            Some(value) => self.deserialize(value, &[name.to_owned()], out),
            None => T::default(),
        }
    }

    /// `[section.NAME]` tables (`[upstreams.NAME]`, `[providers.NAME]`), each
    /// deserialized on its own so a problem names its table
    /// (`upstreams.grafana.url`).
    fn named<T: Default + DeserializeOwned>(
        &self,
        section: &str,
        what: &str,
        out: &mut Outcome<'_>,
    ) -> BTreeMap<String, T> {
        match self.merged.get(section) {
            None => BTreeMap::new(),
            Some(Value::Dict(_, tables)) => tables
                .iter()
                .map(|(name, table)| {
                    let path = [section.to_owned(), name.clone()];
                    (name.clone(), self.deserialize(table, &path, out))
                })
                .collect(),
            Some(_) => {
                let path = [section.to_owned()];
                let message = format!("expected tables of {what}");
                let message = self.with_origin(message, &path);
                out.problems.push(section, message);
                out.dropped.push(section.to_owned());
                BTreeMap::new()
            }
        }
    }

    fn routes(&self, out: &mut Outcome<'_>) -> Vec<RawRoute> {
        let path = ["route".to_owned()];
        match self.merged.get("route") {
            None => Vec::new(),
            Some(Value::Array(_, items)) => (0..items.len())
                .map(|index| {
                    let path = ["route".to_owned(), index.to_string()];
                    self.deserialize(&items[index], &path, out)
                })
                .collect(),
            Some(_) => {
                let message = "expected a list of routes ([[route]] tables); \
                               routes cannot be set by environment variables";
                let message = self.with_origin(message.to_owned(), &path);
                out.problems.push("route", message);
                out.dropped.push("route".to_owned());
                Vec::new()
            }
        }
    }

    /// Deserializes `value`, found at `path`: each figment error becomes a problem and
    /// the key it is about is removed, until what remains deserializes.
    fn deserialize<T: Default + DeserializeOwned>(
        &self,
        value: &Value,
        path: &[String],
        out: &mut Outcome<'_>,
    ) -> T {
        let mut value = value.clone();
        loop {
            let err = match T::deserialize(&value) {
                Ok(t) => return t,
                Err(err) => err,
            };
            let mut removed_any = false;
            for e in err {
                let full: Vec<String> = path.iter().chain(&e.path).cloned().collect();
                let message = self.with_origin(describe(&e.kind), &full);
                out.problems.push(path_to_key(&self.merged, &full), message);

                // Drop the whole key of this table that holds the bad value.
                let removed = match (&mut value, e.path.first()) {
                    (Value::Dict(_, dict), Some(key)) => dict.remove(key).is_some(),
                    _ => false,
                };
                let key_path = match e.path.first() {
                    Some(key) if removed => [path, std::slice::from_ref(key)].concat(),
                    _ => path.to_vec(),
                };
                out.dropped.push(path_to_key(&self.merged, &key_path));
                removed_any |= removed;
            }
            // Not a table, or nothing left to remove: the whole table falls back.
            if !removed_any {
                return T::default();
            }
        }
    }

    /// `message`, followed by where the value at `path` came from when figment knows.
    fn with_origin(&self, message: String, path: &[String]) -> String {
        let Some(metadata) = self.metadata_at(path) else {
            return message;
        };
        match &metadata.source {
            Some(Source::Custom(var)) if metadata.name == ENV_PROVIDER => {
                format!("{message} (from {var})")
            }
            Some(source) => format!("{message} (in {source})"),
            None => message,
        }
    }

    /// The environment variable that set the value at `path`, if one did.
    fn env_var_at(&self, path: &[String]) -> Option<&str> {
        let metadata = self.metadata_at(path)?;
        match &metadata.source {
            Some(Source::Custom(var)) if metadata.name == ENV_PROVIDER => Some(var),
            _ => None,
        }
    }

    /// The metadata of the provider of the deepest value along `path`.
    fn metadata_at(&self, path: &[String]) -> Option<&Metadata> {
        let (first, rest) = path.split_first()?;
        let mut value = self.merged.get(first)?;
        for segment in rest {
            let next = match value {
                Value::Dict(_, dict) => dict.get(segment),
                Value::Array(_, items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            match next {
                Some(next) => value = next,
                None => break,
            }
        }
        self.figment.get_metadata(value.tag())
    }
}

/// A figment error kind as an operator reads it; the key is shown separately.
fn describe(kind: &Kind) -> String {
    match kind {
        Kind::UnknownField(_, expected) => format!("unknown key, expected {}", OneOf(expected)),
        Kind::InvalidType(actual, expected) => format!("expected {expected}, found {actual}"),
        Kind::InvalidValue(actual, expected) => {
            format!("invalid value {actual}, expected {expected}")
        }
        other => other.to_string(),
    }
}

/// `["route", "2", "path_regex"]` → `route[2].path_regex`: an index into a list is
/// written with brackets, a key of a table with a dot.
fn path_to_key(root: &Dict, path: &[String]) -> String {
    let mut key = String::new();
    let mut value: Option<&Value> = None;
    for (i, segment) in path.iter().enumerate() {
        let (is_index, next) = match value {
            None if i == 0 => (false, root.get(segment)),
            Some(Value::Array(_, items)) => (
                true,
                segment.parse::<usize>().ok().and_then(|n| items.get(n)),
            ),
            Some(Value::Dict(_, dict)) => (false, dict.get(segment)),
            _ => (false, None),
        };
        if is_index {
            key.push_str(&format!("[{segment}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(&printable(segment));
        }
        value = next;
    }
    key
}

/// A key as written in the file, quoted and escaped when it is empty or holds
/// whitespace or control characters, so each problem stays one readable
/// `key: message` line (found by the `config_load` fuzz target).
pub(super) fn printable(segment: &str) -> String {
    // `escape_debug` also escapes Unicode format characters (bidi overrides,
    // zero-width joiners) that would make the printed key misleading.
    if segment.is_empty()
        || segment.chars().any(char::is_whitespace)
        || segment.escape_debug().ne(segment.chars())
    {
        format!("{segment:?}")
    } else {
        segment.to_owned()
    }
}

/// `route[2].path_regex` → `["route", "2", "path_regex"]`.
fn key_to_path(key: &str) -> Vec<String> {
    key.split(['.', '['])
        .map(|segment| segment.trim_end_matches(']').to_owned())
        .filter(|segment| !segment.is_empty())
        .collect()
}

// === impl ParsedFile ===

/// The config file, already parsed: a figment provider whose source is the file's path.
struct ParsedFile {
    dict: Dict,
    metadata: Metadata,
}

impl ParsedFile {
    fn parse(path: &Path, format: Format, text: &str) -> Result<ParsedFile, Problem> {
        let dict = match format {
            Format::Toml => toml::from_str::<Dict>(text).map_err(|e| toml_problem(path, text, &e)),
            Format::Yaml => parse_yaml(path, text),
        }?;
        let metadata = Metadata::from(format.name(), path);
        Ok(ParsedFile { dict, metadata })
    }
}

impl Provider for ParsedFile {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// A TOML syntax error by line and column. toml's own `Display` quotes the offending
/// line, which may be `client_secret = "...`; the message alone never does.
fn toml_problem(path: &Path, text: &str, err: &toml::de::Error) -> Problem {
    let at = match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" at line {line}, column {column}")
        }
        None => String::new(),
    };
    let message = err.message().trim_end();
    Problem::new(
        path.display().to_string(),
        format!("invalid TOML{at}: {message}"),
    )
}

fn parse_yaml(path: &Path, text: &str) -> Result<Dict, Problem> {
    // An empty YAML document is null, not an empty mapping; treat it like an empty file.
    if text.trim().is_empty() {
        return Ok(Dict::new());
    }
    serde_norway::from_str::<Dict>(text)
        .map_err(|e| Problem::new(path.display().to_string(), format!("invalid YAML: {e}")))
}

// === impl EnvVar ===

/// One `PORTCULLIS_<SECTION>__<KEY>` override: a figment provider whose source is the
/// variable's name.
struct EnvVar {
    name: String,
    key: String,
    value: String,
}

/// The overrides among `env`, sorted by name so the result never depends on the order
/// the process environment happens to list them in.
fn env_overrides(env: &[(String, String)], problems: &mut Problems) -> Vec<EnvVar> {
    let mut vars: Vec<EnvVar> = env
        .iter()
        .filter_map(|(name, value)| {
            let key = env_key(name)?;
            if key.split('.').any(str::is_empty) {
                let message = "does not name a config key: use PORTCULLIS_<SECTION>__<KEY>";
                problems.push(name.clone(), message);
                return None;
            }
            Some(EnvVar {
                name: name.trim().to_owned(),
                key,
                value: value.clone(),
            })
        })
        .collect();
    vars.sort_by(|a, b| a.name.cmp(&b.name));
    vars
}

/// The config key an environment variable overrides (`PORTCULLIS_OIDC__CLIENT_ID` →
/// `oidc.client_id`), or `None` when it is not an override.
fn env_key(name: &str) -> Option<String> {
    let name = name.trim();
    let prefix = name.get(..ENV_PREFIX.len())?;
    if !prefix.eq_ignore_ascii_case(ENV_PREFIX) {
        return None;
    }
    let rest = &name[ENV_PREFIX.len()..];
    // Only `SECTION__KEY` names are overrides. Kubernetes injects
    // `PORTCULLIS_PORT`, `PORTCULLIS_SERVICE_HOST`, `PORTCULLIS_PORT_4180_TCP_ADDR`
    // ... into every pod of a namespace with a Service named `portcullis`; reading
    // those as config keys would stop the proxy from starting.
    if rest.eq_ignore_ascii_case(ENV_IGNORED) || !rest.contains("__") {
        return None;
    }
    Some(rest.replace("__", ".").to_ascii_lowercase())
}

/// The value of an override. Lists and tables (`[openid, email]`, `{k = v}`) are parsed
/// with figment's syntax; anything else stays text, so a secret such as `0123` keeps
/// its leading zero instead of becoming the number 123.
fn env_value(text: &str) -> Value {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        if let Ok(value @ (Value::Array(..) | Value::Dict(..))) = text.parse::<Value>() {
            return value;
        }
    }
    Value::from(text.to_owned())
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::from(ENV_PROVIDER, Source::Custom(self.name.clone()))
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        let dict = figment::util::nest(&self.key, env_value(&self.value))
            .into_dict()
            .unwrap_or_default();
        Ok(Profile::Default.collect(dict))
    }
}

/// The process environment as (name, value) pairs; names or values that are not
/// UTF-8 cannot be overrides and are skipped.
pub(super) fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect()
}
