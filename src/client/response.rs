//! Opening one call's response frames, strictly, with the two frame knobs
//! read at the exact step they bend.

use crate::protocol::error::FrameError;
use crate::protocol::framing::ResponseOpener;
use crate::protocol::keys::{open_b64, response_aad, response_key, SymmetricKey};
use crate::protocol::session::ClientSession;
use crate::protocol::wire::Frame;

use super::ClientError;

/// The frames of one response, opened in order through the core's
/// [`ResponseOpener`].
pub(crate) struct FrameReader {
    opener: ResponseOpener,
    /// Kept only so the reordered-frames knob can open a frame out of turn.
    key: SymmetricKey,
    sid: String,
    request_seq: u64,
    accept_reordered: bool,
    ignore_missing_fin: bool,
    frames: usize,
    finished: bool,
}

impl FrameReader {
    pub(crate) fn new(
        session: &ClientSession,
        request_seq: u64,
        accept_reordered: bool,
        ignore_missing_fin: bool,
    ) -> Self {
        Self {
            opener: session.response_opener(request_seq),
            key: response_key(&session.keys().s2c, request_seq),
            sid: session.sid().to_string(),
            request_seq,
            accept_reordered,
            ignore_missing_fin,
            frames: 0,
            finished: false,
        }
    }

    pub(crate) fn frames(&self) -> usize {
        self.frames
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Opens the next frame; order, fin and authentication are the core's.
    pub(crate) fn open(&mut self, frame: &Frame) -> Result<Vec<u8>, ClientError> {
        let plaintext = match self.opener.open(frame) {
            Ok(p) => p,
            Err(FrameError::OutOfOrder { .. }) if self.accept_reordered && !self.finished => {
                // The knob: decrypt the frame where it stands instead of
                // refusing it; its AAD still has to match.
                let aad = response_aad(&self.sid, self.request_seq, frame.seq, frame.is_fin());
                open_b64(&self.key, frame.seq, aad.as_bytes(), &frame.ct).map_err(|_| {
                    ClientError::protocol(
                        "opening a response frame",
                        FrameError::Decrypt(frame.seq),
                    )
                })?
            }
            Err(e) => return Err(frame_error(e)),
        };
        self.frames += 1;
        self.finished |= frame.is_fin();
        Ok(plaintext)
    }

    /// The end-of-response check (RESP-5).
    pub(crate) fn finish(&self) -> Result<(), ClientError> {
        if self.finished || self.ignore_missing_fin {
            return Ok(());
        }
        Err(ClientError::Truncated {
            detail: format!(
                "{} frame(s) arrived but none was the authenticated final frame",
                self.frames
            ),
        })
    }
}

fn frame_error(e: FrameError) -> ClientError {
    match e {
        FrameError::Truncated { frames } => ClientError::Truncated {
            detail: format!("{frames} frame(s) opened and no authenticated final frame"),
        },
        FrameError::OutOfOrder { expected, got } => ClientError::protocol(
            "opening the response",
            format!("frames arrived out of order: expected frame {expected}, got frame {got}"),
        ),
        FrameError::AfterFin(seq) => ClientError::protocol(
            "opening the response",
            format!("frame {seq} arrived after the final frame"),
        ),
        FrameError::Decrypt(seq) => ClientError::protocol(
            "opening the response",
            format!("frame {seq} does not decrypt under this call's response key"),
        ),
        other => ClientError::protocol("opening the response", other),
    }
}
