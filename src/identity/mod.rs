//! Identity: who the proxy vouches for, and the headers that carry it upstream.
//!
//! A leaf: it decides nothing about access and imports no other step.

pub mod headers;
mod model;

pub use model::Identity;
