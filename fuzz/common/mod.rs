//! Helpers shared by the fuzz targets (each includes this file with `#[path]`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use portcullis::config::{self, Config, ConfigError};

/// A minimal valid configuration: `extra` is appended (more sections or routes).
pub fn config_text(public_url: &str, extra: &str) -> String {
    format!(
        r#"
[server]
public_url = "{public_url}"
[upstream]
url = "http://127.0.0.1:9"
[oidc]
issuer = "http://127.0.0.1:9/"
client_id = "portcullis"
client_secret = "fuzz-secret"
{extra}
"#
    )
}

/// Loads `text` through the real loader (`config::load_with_env`, no
/// environment) from a per-process file with extension `ext`.
pub fn load_text(text: &[u8], ext: &str) -> Result<Config, ConfigError> {
    let path = scratch_path(ext);
    // A new file each time: rewriting one in place makes ext4 flush it to disk
    // on close (auto_da_alloc), which made this target ten times slower.
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, text).expect("write the fuzz config");
    let loaded = config::load_with_env(&path, &[]);
    let _ = std::fs::remove_file(&path);
    loaded
}

/// A configuration the harness itself needs: it must load.
pub fn load_valid(text: &str) -> Config {
    match load_text(text.as_bytes(), "toml") {
        Ok(config) => config,
        Err(error) => panic!("the harness config is invalid: {:?}", error.problems()),
    }
}

/// One scratch file per process and extension, in memory (`/dev/shm`) when
/// the system lets us write there, else in the temp dir.
pub fn scratch_path(ext: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let probe = shm.join(format!("portcullis-fuzz-{}.probe", std::process::id()));
        match std::fs::write(&probe, b"") {
            Ok(()) => {
                let _ = std::fs::remove_file(&probe);
                shm.to_owned()
            }
            Err(_) => std::env::temp_dir(),
        }
    });
    dir.join(format!("portcullis-fuzz-{}.{ext}", std::process::id()))
}
