//! One integration-test binary made of modules (ripgrep's layout): each starts
//! real servers on loopback ports of its own, so they run in parallel.

mod support;

mod admin;
mod cli;
mod login;
mod routes;
mod rules;
mod tls;
mod transport;
