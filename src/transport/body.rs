//! The body every HTTP answer the harness serves goes out as (the
//! reference server's and the relay's): one buffer, or chunks from a
//! producer task.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// A response body: one buffer, or chunks from a producer task. The
/// stream ends when the producer drops its sender, so a producer that dies
/// ends the body rather than leaving it hanging.
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
