//! Policy: what the request is (its normalized path) and which rule decides it.
//!
//! Pure code: no I/O, no async, no cookies or tokens. `policy` never learns how
//! someone logged in.

pub mod authorize;
pub mod normalize;
pub mod origin;
pub mod route;
