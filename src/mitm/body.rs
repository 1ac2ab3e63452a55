//! The relay's response body, and the canary scan shared by both
//! directions.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// A response body: one buffer, or chunks from the pump task.
#[derive(Debug)]
pub enum RelayBody {
    /// The whole body (taken when sent).
    Full(Option<Bytes>),
    /// Chunks as the pump produces them; ends when it drops its sender.
    Stream(mpsc::Receiver<Bytes>),
}

impl RelayBody {
    /// A whole body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        RelayBody::Full(Some(bytes.into()))
    }
}

impl Body for RelayBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            RelayBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RelayBody::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, RelayBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RelayBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            RelayBody::Full(None) => SizeHint::with_exact(0),
            RelayBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// Looks for canary strings in a byte stream that arrives in pieces; a
/// canary split across two pieces is still found, because the scan keeps
/// the tail of the previous piece.
#[derive(Debug, Clone)]
pub struct CanaryScan {
    canaries: Vec<Vec<u8>>,
    tail: Vec<u8>,
    keep: usize,
}

impl CanaryScan {
    /// A scan for `canaries` (empty strings are ignored).
    pub fn new(canaries: &[String]) -> Self {
        let canaries: Vec<Vec<u8>> = canaries
            .iter()
            .filter(|c| !c.is_empty())
            .map(|c| c.as_bytes().to_vec())
            .collect();
        let keep = canaries.iter().map(Vec::len).max().unwrap_or(1) - 1;
        CanaryScan {
            canaries,
            tail: Vec::new(),
            keep,
        }
    }

    /// Feeds one piece; returns the canaries seen (each index once per call).
    pub fn feed(&mut self, piece: &[u8]) -> Vec<usize> {
        if self.canaries.is_empty() {
            return Vec::new();
        }
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(piece);
        let found = self
            .canaries
            .iter()
            .enumerate()
            .filter(|(_, c)| window.windows(c.len()).any(|w| w == c.as_slice()))
            .map(|(i, _)| i)
            .collect();
        let start = window.len().saturating_sub(self.keep);
        self.tail = window[start..].to_vec();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_split_across_pieces_is_found() {
        let mut scan = CanaryScan::new(&["secret-key".into()]);
        assert!(scan.feed(b"xx secr").is_empty());
        assert_eq!(scan.feed(b"et-key yy"), vec![0]);
        assert!(scan.feed(b"nothing here").is_empty());
    }
}
