//! One integration-test binary made of modules (ripgrep's layout): each starts
//! real servers on loopback ports of its own, so they run in parallel.

mod support;

mod admin;
mod adversarial;
mod apps;
mod bearer;
mod cli;
mod connections;
mod demo;
mod examples;
mod explain;
mod forward_auth;
mod identity;
mod login;
mod operate;
mod pages;
mod pool;
mod providers;
mod radicale;
mod redis;
mod reload;
mod rules;
mod tls;
mod transport;
