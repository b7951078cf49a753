//! portcullis: an authenticating reverse proxy.
//!
//! The request path, one module per step; data flows one way (left to right, and
//! downward to the leaf modules):
//!
//! ```text
//! main ─► server ─► proxy ─► policy::normalize ─► policy::route ─► auth ─► policy::authorize
//!                      ─► identity::headers ─► proxy::forward ─► (log + count, always)
//! below them, imported but never importing upward: config, identity, session, admin::metrics,
//! deadline (coarse per-thread timeouts), and connections (third-party tokens, SPEC §13:
//! auth::http, config and session only)
//! portcullis-devidp (crates/devidp) stands alone: `portcullis demo` and tests use it
//! ```
//!
//! SPEC.md (shared with operators) is the external contract; the README is the
//! operator's reference.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod clock;
pub mod config;
pub mod connections;
pub mod deadline;
pub mod demo;
pub mod explain;
pub mod identity;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod session;
