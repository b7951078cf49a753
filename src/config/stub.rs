// TEMPORARY stand-in with the settled API; the real loader lands from the config branch.
use super::Config;
use std::path::Path;
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("not yet")]
    Invalid(Vec<String>),
}
pub fn load(_path: &Path) -> Result<Config, ConfigError> {
    Err(ConfigError::Invalid(vec![]))
}
pub fn load_with_env(_path: &Path, _env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Err(ConfigError::Invalid(vec![]))
}
pub fn render(_c: &Config) -> String {
    String::new()
}
