//! Authentication: who is making a request, from validated tokens only.
//!
//! `auth` is never told which route it serves: `proxy` reads the rule and calls
//! the authenticators that apply. It returns values (an authorize URL, a token
//! set, claims), never responses.

pub mod bearer;
pub mod claims;
pub mod http;
pub mod jwks;
pub mod jwt;
pub mod oidc;
pub mod providers;
pub mod redirect;
pub mod strict_json;
