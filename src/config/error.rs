//! Why a configuration was refused.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why [`super::load`] returned no configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Occurs when the config file cannot be read (missing, a directory, no permission).
    #[error("cannot read config file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Occurs when the file name ends in neither `.toml`, `.yaml` nor `.yml`: the
    /// extension chooses the format.
    #[error("config file {} has no .toml, .yaml or .yml extension", path.display())]
    UnknownFormat { path: PathBuf },
    /// Occurs when the file was read but its contents are not a valid configuration:
    /// every problem found, one per line, each naming its key.
    #[error("{}", Lines(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// Every problem as a `path.to.key: what is wrong` line, for `portcullis check`.
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid(problems) => problems.iter().map(Problem::to_string).collect(),
            ConfigError::Read { source, .. } => vec![format!("{self}: {source}")],
            ConfigError::UnknownFormat { .. } => vec![self.to_string()],
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where: `server.listen`, `route[2].path_regex`, or the file itself for a syntax error.
    pub key: String,
    /// What is wrong, including the offending value unless it is a secret.
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Problems, one per line.
struct Lines<'a>(&'a [Problem]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            problem.fmt(f)?;
        }
        Ok(())
    }
}

/// Collects problems while compiling, so every one is reported, not only the first.
#[derive(Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(key, message));
    }

    /// The value, or `None` after recording the error under `key`.
    pub fn check<T>(&mut self, key: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.push(key, message)).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Problem> {
        self.0.iter_mut()
    }
}
