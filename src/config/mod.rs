//! Configuration: load a TOML or YAML file plus `PORTCULLIS_*` overrides with
//! figment into raw serde structs, then compile and validate them into [`Config`].
//!
//! Imports no other portcullis module. Every problem is collected, never only the
//! first, and each names its key as `path.to.key: what is wrong` (SPEC §1, §2).
//!
//! The stages, in order:
//! - [`source`]: read the file (format by extension), lay each environment override
//!   over it, deserialize section by section into [`raw`] structs (unknown keys are errors);
//! - [`compile`]: apply the defaults documented in [`types`], parse every value, read
//!   `*_file` secrets, and check every rule;
//! - the result is a [`Config`], or [`ConfigError::Invalid`] with every problem.
//!
//! # Example
//!
//! ```no_run
//! let config = portcullis::config::load(std::path::Path::new("portcullis.toml"))?;
//! println!("{}", portcullis::config::render(&config));
//! # Ok::<(), portcullis::config::ConfigError>(())
//! ```

mod compile;
mod error;
pub mod presets;
mod raw;
mod source;
mod syntax;
mod types;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use error::{ConfigError, Problem};
pub use types::*;

use error::Problems;
use source::Layers;

/// Loads the config file at `path`, with overrides from the process environment
/// (`PORTCULLIS_<SECTION>__<KEY>`; `PORTCULLIS_CONFIG` is ignored, it names the file).
///
/// # Errors
///
/// The file cannot be read or has an unknown extension, or the configuration is
/// invalid: then [`ConfigError::Invalid`] lists every problem.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_from(path, &source::process_env())
}

/// As [`load`], but `env` stands in for the environment: the process environment is
/// not read. Names are full variable names, such as `PORTCULLIS_OIDC__CLIENT_SECRET`.
///
/// # Errors
///
/// As [`load`].
pub fn load_with_env(path: &Path, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    load_from(path, &env)
}

/// The effective configuration as TOML, for `portcullis check`: defaults filled in,
/// durations as `"90s"`-style strings, every secret shown as `[redacted]`.
pub fn render(config: &Config) -> String {
    // Every type in `Config` serializes as TOML can hold (strings, numbers, tables,
    // arrays; `None` is left out), so this fails only on a bug in those impls.
    toml::to_string(config).unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
}

fn load_from(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let layers = Layers::read(path, env)?;

    let mut problems = Problems::default();
    let (raw, dropped) = layers.sections(&mut problems);

    let mut compiled = Problems::default();
    let config = compile::compile(raw, &mut compiled);
    layers.annotate_env_origins(&mut compiled);

    // A key that did not deserialize was compiled from its default; what that
    // reports about it ("oidc.issuer: required") or about the table holding it
    // ("route[1]: has no matcher" after `paht = ...`) would only mislead.
    let mut all = problems.into_vec();
    all.extend(
        compiled
            .into_vec()
            .into_iter()
            .filter(|problem| !dropped.iter().any(|key| is_related(&problem.key, key))),
    );
    match config {
        Some(config) if all.is_empty() => Ok(config),
        _ if all.is_empty() => Err(ConfigError::Invalid(vec![Problem::new(
            path.display().to_string(),
            "invalid configuration",
        )])),
        _ => Err(ConfigError::Invalid(all)),
    }
}

/// Returns true if and only if one key is the other or inside it.
fn is_related(a: &str, b: &str) -> bool {
    is_within(a, b) || is_within(b, a)
}

/// Returns true if and only if `key` is `prefix` or a key inside it.
fn is_within(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[', ' ']))
}
