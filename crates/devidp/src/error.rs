//! The errors [`crate::start`] can return. Request-level problems never surface
//! here: they become HTTP responses (OAuth JSON errors or an HTML error page).

use std::net::SocketAddr;

/// Why the provider could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listen address is not loopback. The provider signs anyone in without a
    /// password, so it must never be reachable from a network.
    #[error("refusing to listen on {addr}: the development provider has no passwords and listens on loopback only (127.0.0.0/8 or ::1)")]
    NotLoopback {
        /// The refused address.
        addr: SocketAddr,
    },
    /// Binding the listen address failed (in use, permission, ...).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// aws-lc-rs could not generate or encode an RSA signing key.
    #[error("cannot generate an RSA signing key")]
    KeyGeneration,
}
