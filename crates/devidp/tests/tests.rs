//! Integration tests: the provider over real HTTP, driven like a relying party
//! and a browser would drive it. One binary, one module per concern.

mod support;

mod authorize;
mod backchannel;
mod discovery;
mod logout;
mod misbehaviour;
mod start;
mod third_party;
mod token;
