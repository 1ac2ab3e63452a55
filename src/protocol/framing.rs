//! Response framing (RESP-1, RESP-4, RESP-5): a sealer that numbers frames
//! and emits `fin` once, and an opener that enforces strict order and
//! reports truncation at the end.

use super::error::FrameError;
use super::keys::{open_b64, response_aad, seal_b64, SymmetricKey};
use super::wire::Frame;

/// Seals the frames of one call's response.
#[derive(Clone)]
pub struct ResponseSealer {
    key: SymmetricKey,
    sid: String,
    request_seq: u64,
    next: u64,
    finished: bool,
}

impl ResponseSealer {
    /// A sealer for request `request_seq` of session `sid` under `key`.
    pub fn new(key: SymmetricKey, sid: String, request_seq: u64) -> Self {
        ResponseSealer {
            key,
            sid,
            request_seq,
            next: 0,
            finished: false,
        }
    }

    /// Seals the next frame; `fin` marks the last one. Refuses after fin.
    pub fn seal(&mut self, plaintext: &[u8], fin: bool) -> Result<Frame, FrameError> {
        if self.finished {
            return Err(FrameError::SealAfterFin);
        }
        let seq = self.next;
        let frame = self.seal_at(seq, plaintext, fin);
        self.next += 1;
        self.finished = fin;
        Ok(frame)
    }

    /// Seals a frame with an explicit seq and fin flag, state untouched
    /// (for vectors and adversaries).
    pub fn seal_at(&self, seq: u64, plaintext: &[u8], fin: bool) -> Frame {
        let aad = response_aad(&self.sid, self.request_seq, seq, fin);
        Frame {
            seq,
            ct: seal_b64(&self.key, seq, aad.as_bytes(), plaintext),
            fin: fin.then_some(true),
        }
    }

    /// Whether the fin frame has been sealed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// Opens the frames of one call's response, in order.
#[derive(Clone)]
pub struct ResponseOpener {
    key: SymmetricKey,
    sid: String,
    request_seq: u64,
    expected: u64,
    finished: bool,
}

impl ResponseOpener {
    /// An opener for request `request_seq` of session `sid` under `key`.
    pub fn new(key: SymmetricKey, sid: String, request_seq: u64) -> Self {
        ResponseOpener {
            key,
            sid,
            request_seq,
            expected: 0,
            finished: false,
        }
    }

    /// Opens the next frame. Order and fin are checked before decryption;
    /// a frame that fails to authenticate does not advance the opener.
    pub fn open(&mut self, frame: &Frame) -> Result<Vec<u8>, FrameError> {
        if self.finished {
            return Err(FrameError::AfterFin(frame.seq));
        }
        if frame.seq != self.expected {
            return Err(FrameError::OutOfOrder {
                expected: self.expected,
                got: frame.seq,
            });
        }
        let fin = frame.is_fin();
        let aad = response_aad(&self.sid, self.request_seq, frame.seq, fin);
        let plaintext = open_b64(&self.key, frame.seq, aad.as_bytes(), &frame.ct)
            .map_err(|_| FrameError::Decrypt(frame.seq))?;
        self.expected += 1;
        self.finished = fin;
        Ok(plaintext)
    }

    /// Whether an authenticated fin has been opened.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Frames opened so far.
    pub fn frames_opened(&self) -> u64 {
        self.expected
    }

    /// The end-of-stream check: an error unless fin was opened (RESP-5).
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.finished {
            Ok(())
        } else {
            Err(FrameError::Truncated {
                frames: self.expected,
            })
        }
    }
}
