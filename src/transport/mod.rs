//! The bounded HTTP transport every network-facing module shares.
//!
//! The harness talks to peers it does not trust, so nothing here reads
//! without a cap on size and a limit on time: a target that never answers,
//! drips bytes or sends an endless body ends in a [`TransportError`], never
//! in a hang or an unbounded buffer. Each request uses a fresh connection
//! (plain TCP or TLS, HTTP/1.1 or HTTP/2 as [`Net`] says), which keeps
//! requests independent of each other at the cost of a handshake per call.

mod body;
mod error;
mod http;
mod net;
mod raw;
mod stream;
mod target;
pub mod tls;

pub use body::OutBody;
pub use error::TransportError;
pub use http::{send, send_streaming, StreamingResponse};
pub use net::{no_proxy_matches, HttpVersion, Net, NetSettings, ProxyAddr, ProxyChoice};
pub use raw::{connect_only, send_raw};
pub use stream::Stream;
pub use target::Target;

use std::time::Duration;

/// An HTTP request as it goes on the wire, before the target's base path is
/// prepended to `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OuterRequest {
    /// The HTTP method, e.g. `POST`.
    pub method: String,
    /// The path (and query), appended to the target's base path.
    pub path: String,
    /// Extra headers in order; `Host` and `Content-Length` are added by the
    /// transport unless present here.
    pub headers: Vec<(String, String)>,
    /// The request body (may be empty).
    pub body: Vec<u8>,
}

impl OuterRequest {
    /// A `POST` with a JSON body and `Content-Type: application/json`.
    pub fn post_json(path: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self {
            method: "POST".into(),
            path: path.into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    /// A `GET` without a body.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: "GET".into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds one header, builder style.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A complete, buffered HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OuterResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers in wire order (names lowercased by hyper).
    pub headers: Vec<(String, String)>,
    /// The whole body, at most [`Limits::max_body_bytes`] long.
    pub body: Vec<u8>,
}

impl OuterResponse {
    /// The first header called `name` (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::protocol::names::header(&self.headers, name)
    }
}

/// Size and time limits for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long establishing the connection may take: TCP, the proxy
    /// tunnel and the TLS handshake together.
    pub connect_timeout: Duration,
    /// How long the whole exchange may take for a buffered request, and how
    /// long the response head may take for a streamed one.
    pub response_timeout: Duration,
    /// The longest silence allowed between two pieces of a body.
    pub idle_timeout: Duration,
    /// The most body bytes read from one response (or raw reply).
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(10),
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}
