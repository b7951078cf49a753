//! Configuration: load a TOML or YAML file plus `PORTCULLIS_*` overrides with
//! figment into raw serde structs, then compile and validate them into [`Config`].
//!
//! Imports no other portcullis module. Every problem is collected, never only the
//! first, and each names its key as `path.to.key: what is wrong` (SPEC §1, §2).

mod types;

pub use types::*;
mod stub;
pub use stub::*;
