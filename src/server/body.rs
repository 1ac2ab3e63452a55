//! The bounded, timed reading of incoming request bodies.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More bytes than the route allows.
    #[error("request body too large ({len} > {limit} bytes)")]
    TooLarge {
        /// Bytes declared or received so far.
        len: u64,
        /// The route's limit.
        limit: usize,
    },
    /// The body did not arrive in full before the deadline.
    #[error("request body not received within {0:?}")]
    Timeout(Duration),
    /// The connection broke or the framing was invalid.
    #[error("request body unreadable: {0}")]
    Broken(String),
}

/// Reads a whole body, refusing more than `limit` bytes, within
/// `deadline` when one is given.
pub async fn read_body(
    mut body: Incoming,
    limit: usize,
    deadline: Option<Duration>,
) -> Result<Bytes, BodyError> {
    if let Some(declared) = body.size_hint().exact() {
        if declared > limit as u64 {
            return Err(BodyError::TooLarge {
                len: declared,
                limit,
            });
        }
    }
    let collect = async move {
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(BodyError::TooLarge {
                        len: (buf.len() + data.len()) as u64,
                        limit,
                    });
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    match deadline {
        Some(d) => tokio::time::timeout(d, collect)
            .await
            .unwrap_or(Err(BodyError::Timeout(d))),
        None => collect.await,
    }
}
