//! The server-sent-events codec of streamed responses (RESP-3): one frame
//! per event, `data: <frame JSON>\n\n`. The decoder is incremental, gives
//! the same events for any split of the byte stream, and bounds how much
//! it buffers.

use super::wire::Frame;

/// Default bound on one event's bytes.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 48 * 1024 * 1024;

/// Encodes a frame as one SSE event.
pub fn encode_event(frame: &Frame) -> Vec<u8> {
    let mut s = String::with_capacity(frame.ct.len() + 48);
    s.push_str("data: ");
    frame.write_json(&mut s);
    s.push_str("\n\n");
    s.into_bytes()
}

/// An event or a pending buffer larger than the bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SSE event exceeds {limit} bytes")]
pub struct SseOverflow {
    /// The bound.
    pub limit: usize,
}

/// Incremental SSE decoder. Events end at `\n\n` (LF LF, as upstream);
/// within an event, lines starting `data: ` or `data:` carry data, joined
/// with `\n`; other lines are ignored; an event without data is skipped.
#[derive(Debug, Clone)]
pub struct SseDecoder {
    pending: Vec<u8>,
    scanned: usize,
    max_event: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseDecoder {
    /// A decoder that refuses events above `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        SseDecoder {
            pending: Vec::new(),
            scanned: 0,
            max_event,
        }
    }

    /// Feeds bytes; returns the data payloads of every event completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, SseOverflow> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        // Resume the search one byte early so a "\n" + "\n" split is found.
        let mut i = self.scanned.saturating_sub(1).max(start);
        while i + 1 < self.pending.len() {
            if self.pending[i] == b'\n' && self.pending[i + 1] == b'\n' {
                // A whole event can arrive in one feed; bound it here too so
                // the outcome does not depend on how the stream was split.
                if i - start > self.max_event {
                    return Err(SseOverflow {
                        limit: self.max_event,
                    });
                }
                if let Some(data) = event_data(&self.pending[start..i]) {
                    events.push(data);
                }
                start = i + 2;
                i = start;
            } else {
                i += 1;
            }
        }
        self.pending.drain(..start);
        self.scanned = self.pending.len();
        // A trailing LF may be the first half of the terminator, not event
        // bytes, so it does not count against the bound.
        let partial = self.pending.strip_suffix(b"\n").unwrap_or(&self.pending);
        if partial.len() > self.max_event {
            return Err(SseOverflow {
                limit: self.max_event,
            });
        }
        Ok(events)
    }

    /// Bytes received after the last complete event (never processed).
    pub fn leftover(&self) -> &[u8] {
        &self.pending
    }
}

fn event_data(event: &[u8]) -> Option<Vec<u8>> {
    let mut data: Option<Vec<u8>> = None;
    for line in event.split(|&b| b == b'\n') {
        let payload = if let Some(rest) = line.strip_prefix(b"data: ") {
            rest
        } else if let Some(rest) = line.strip_prefix(b"data:") {
            rest
        } else {
            continue;
        };
        match &mut data {
            Some(d) => {
                d.push(b'\n');
                d.extend_from_slice(payload);
            }
            None => data = Some(payload.to_vec()),
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_split_gives_the_same_events() {
        let stream = b": ping\n\ndata: {\"a\":1}\n\nevent: x\ndata: b\ndata: c\n\ndata:z\n\ntail";
        let whole = SseDecoder::default().feed(stream).unwrap();
        assert_eq!(
            whole,
            vec![b"{\"a\":1}".to_vec(), b"b\nc".to_vec(), b"z".to_vec()]
        );
        for cut in 0..stream.len() {
            let mut d = SseDecoder::default();
            let mut got = d.feed(&stream[..cut]).unwrap();
            got.extend(d.feed(&stream[cut..]).unwrap());
            assert_eq!(got, whole, "split at {cut}");
            assert_eq!(d.leftover(), b"tail");
        }
    }

    #[test]
    fn overflow_is_an_error() {
        let mut d = SseDecoder::new(8);
        assert!(d.feed(b"data: 0123456789").is_err());
    }

    #[test]
    fn overflow_does_not_depend_on_the_split() {
        let stream = b"data: 0123456789\n\n";
        assert!(SseDecoder::new(8).feed(stream).is_err(), "one feed");
        let mut d = SseDecoder::new(8);
        assert!(d.feed(&stream[..4]).is_ok());
        assert!(d.feed(&stream[4..]).is_err(), "two feeds");
        let exact = b"data: 01\n";
        assert!(SseDecoder::new(8).feed(exact).is_ok(), "half a terminator");
    }
}
