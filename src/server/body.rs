//! The outgoing body type (whole or streamed) and the bounded, timed
//! reading of incoming bodies.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::mpsc;

/// A response body: one buffer, or chunks from a producer task.
#[derive(Debug)]
pub enum OutBody {
    /// The whole body (taken when sent).
    Full(Option<Bytes>),
    /// Chunks as they are produced; ends when the producer drops its sender.
    Stream(mpsc::Receiver<Bytes>),
}

impl OutBody {
    /// A whole body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        OutBody::Full(Some(bytes.into()))
    }
}

impl Body for OutBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            OutBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            OutBody::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, OutBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OutBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            OutBody::Full(None) => SizeHint::with_exact(0),
            OutBody::Stream(_) => SizeHint::default(),
        }
    }
}

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
