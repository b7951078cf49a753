//! One body type for everything the proxy sends: streamed upstream bodies and
//! its own small responses (hyper's `examples/http_proxy.rs` plumbing).

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};

/// A streamed or in-memory body. Upstream bodies are never collected whole.
pub type Body = BoxBody<Bytes, hyper::Error>;

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
