//! One body type for everything the proxy sends: streamed upstream bodies and
//! its own small responses (hyper's `examples/http_proxy.rs` plumbing).

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;

/// What a streamed body can fail with: hyper's read errors, or the body limit's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed or in-memory body. Upstream bodies are never collected whole.
pub type Body = BoxBody<Bytes, BoxError>;

/// A body streamed from a peer, cut off with an error past `limit` bytes.
pub fn streamed(incoming: Incoming, limit: Option<u64>) -> Body {
    match limit.and_then(|l| usize::try_from(l).ok()) {
        Some(limit) => Limited::new(incoming, limit).boxed(),
        None => incoming.map_err(BoxError::from).boxed(),
    }
}

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}
