//! Identity: who the proxy vouches for, and the headers that carry it upstream.
//!
//! A leaf: it decides nothing about access and imports no other step.

pub mod headers;
mod model;
mod token;

pub use model::Identity;
pub use token::{Signer, TokenError};
