//! The steps of the client side that a client knob may bend. Each default
//! is the honest protocol; the reference client's `--bug` knobs
//! ([`crate::client::ClientBug`]) override one method each, as the server's
//! knobs override [`super::handshake::ServerHandshakeHooks`].

/// The client's checks of a ServerHello.
pub trait HelloCheckHooks {
    /// Whether a ServerHello whose `v` is not 1 is refused (honest: yes, HS-4).
    fn check_version(&self) -> bool {
        true
    }
    /// Whether the signer must be the pinned agent (honest: yes, HS-2).
    fn verify_identity(&self) -> bool {
        true
    }
    /// Whether a low-order server key is refused (honest: yes, HS-7).
    fn refuse_low_order(&self) -> bool {
        true
    }
    /// Whether a session whose `expiresAt` has passed is refused before
    /// anything is sealed on it, one announced already expired included
    /// (honest: yes, SES-5).
    fn refuse_expired(&self) -> bool {
        true
    }
}

/// The client's rules for a call and its refusals.
pub trait ClientCallHooks {
    /// A seq to seal every call with in place of the next one (honest:
    /// none, each call takes the next seq, CALL-1).
    fn fixed_seq(&self) -> Option<u64> {
        None
    }
    /// Whether `401 secure_session_unknown` leads to one new handshake and
    /// one retry (honest: yes, SES-2).
    fn retry_unknown_session(&self) -> bool {
        true
    }
    /// Whether a call refused with `409 secure_replay` is sent again
    /// (honest: never, SES-2).
    fn retry_replay(&self) -> bool {
        false
    }
    /// Whether a plaintext 426 answer makes the client send the request
    /// again in plaintext (honest: never, GATE-1).
    fn plaintext_after_426(&self) -> bool {
        false
    }
}

/// The client's rules for reading a sealed response.
pub trait ClientResponseHooks {
    /// Whether a frame that opened out of order is taken (honest: no, RESP-4).
    fn accept_out_of_order(&self) -> bool {
        false
    }
    /// Whether a response that ends without an authenticated `fin`,
    /// cleanly, cut in a frame, or buffered, is taken as complete (honest:
    /// no, RESP-5).
    fn accept_without_fin(&self) -> bool {
        false
    }
    /// Whether reading stops at the first frame marked `fin`, so whatever
    /// follows it is never seen (honest: no, the rest is read and any
    /// frame after `fin` is refused; RESP-1, RESP-3).
    fn stop_at_first_fin(&self) -> bool {
        false
    }
    /// Whether a frame sealed under the session's `s2c` key instead of the
    /// per-call key opens (honest: no, KS-2).
    fn accept_session_key(&self) -> bool {
        false
    }
    /// Whether a retried call's response may open under the session the
    /// call was first sent on (honest: no, CALL-5).
    fn accept_earlier_session(&self) -> bool {
        false
    }
    /// Whether a buffered answer that is a plaintext inner response rather
    /// than a sealed frame is taken (honest: no, RESP-2).
    fn accept_plaintext_response(&self) -> bool {
        false
    }
}

/// The honest client: every default.
#[derive(Debug, Clone, Copy, Default)]
pub struct HonestClient;
impl HelloCheckHooks for HonestClient {}
impl ClientCallHooks for HonestClient {}
impl ClientResponseHooks for HonestClient {}
