//! The client's fault knobs: each names the one honest step it bends
//! (rows of the knob registry, [`crate::knobs`]).

use crate::protocol::client_hooks::{ClientCallHooks, ClientResponseHooks, HelloCheckHooks};

crate::knobs! {
    /// A deliberate client defect, selected with `--bug NAME`.
    pub enum ClientBug: Client {
        /// The ServerHello signature is not checked against the pinned address (HS-2).
        IdentityUnchecked = "identity-unchecked", "HS-2", ClientSuite, "accepts a ServerHello without checking who signed it";
        /// A response that ends without an authenticated `fin` is accepted (RESP-5).
        MissingFinIgnored = "missing-fin-ignored", "RESP-5", ClientSuite, "treats a response without an authenticated fin as complete: a stream that ends cleanly or is cut in a frame, a buffered frame whose fin flag is gone";
        /// Frames are opened in whatever order they arrive (RESP-4).
        ReorderedFramesAccepted = "reordered-frames-accepted", "RESP-4", ClientSuite, "opens response frames in any order";
        /// A call refused with `409 secure_replay` is sent again (SES-2).
        RetryOn409 = "retry-on-409", "SES-2", ClientSuite, "sends a call again after 409 secure_replay";
        /// A session is sealed with even after its `expiresAt`, one announced
        /// already expired included (SES-5).
        ExpiredSessionUsed = "expired-session-used", "SES-5", ClientSuite, "keeps sealing with a session past its expiry, even one whose ServerHello arrived already expired";
        /// Every call of a session is sealed with seq 1 (CALL-1).
        ReplaySameSeq = "replay-same-seq", "CALL-1", ClientSuite, "seals every call of a session with seq 1";
        /// A low-order server key in the ServerHello is accepted (HS-7).
        LowOrderKeyAccepted = "low-order-key-accepted", "HS-7", ClientSuite, "keys a session from a low-order server key (an all-zero shared secret)";
        /// A ServerHello whose `v` is not 1 is accepted (HS-4).
        HelloVersionUnchecked = "hello-version-unchecked", "HS-4", ClientSuite, "accepts a ServerHello whose v is not 1";
        /// A `401 secure_session_unknown` ends the call; no new handshake (SES-2).
        NoRetryOn401 = "no-retry-on-401", "SES-2", ClientSuite, "gives up on 401 secure_session_unknown instead of handshaking again and retrying once";
        /// A plaintext 426 makes the client send the request in plaintext (GATE-1).
        PlaintextFallback = "plaintext-fallback", "GATE-1", ClientSuite, "after a plaintext 426, sends the request again outside the channel";
        /// Reading stops at the first frame marked fin (RESP-1, RESP-3).
        StopsAtFirstFin = "stops-at-first-fin", "RESP-1, RESP-3", ClientSuite, "stops reading at the first frame marked fin, so a fin on a data frame or a frame after fin goes unseen";
        /// A response frame sealed under s2c opens (KS-2).
        SessionKeyAccepted = "session-key-accepted", "KS-2", ClientSuite, "opens response frames under the session's s2c key when the per-call key fails";
        /// A retried call's response opens under the earlier session (CALL-5).
        EarlierSessionAccepted = "earlier-session-accepted", "CALL-5", ClientSuite, "opens a retried call's response under the session the call was first sent on";
        /// A plaintext inner response stands for the sealed frame (RESP-2).
        PlaintextResponseAccepted = "plaintext-response-accepted", "RESP-2", ClientSuite, "takes a buffered answer that is a plaintext inner response instead of a sealed frame";
    }
}

/// A set of client knobs: the hooks of the client side
/// ([`crate::protocol::client_hooks`]), each knob overriding the one step
/// it bends and every other step honest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientKnobs(std::collections::BTreeSet<ClientBug>);

impl ClientKnobs {
    /// The knobs `bugs`.
    pub fn new(bugs: impl IntoIterator<Item = ClientBug>) -> Self {
        ClientKnobs(bugs.into_iter().collect())
    }

    /// Adds `bugs`.
    pub fn extend(&mut self, bugs: impl IntoIterator<Item = ClientBug>) {
        self.0.extend(bugs);
    }

    /// Whether `bug` is on.
    pub fn on(&self, bug: ClientBug) -> bool {
        self.0.contains(&bug)
    }

    /// The knobs that are on.
    pub fn set(&self) -> &std::collections::BTreeSet<ClientBug> {
        &self.0
    }
}

impl HelloCheckHooks for ClientKnobs {
    fn check_version(&self) -> bool {
        !self.on(ClientBug::HelloVersionUnchecked)
    }
    fn verify_identity(&self) -> bool {
        !self.on(ClientBug::IdentityUnchecked)
    }
    fn refuse_low_order(&self) -> bool {
        !self.on(ClientBug::LowOrderKeyAccepted)
    }
    fn refuse_expired(&self) -> bool {
        !self.on(ClientBug::ExpiredSessionUsed)
    }
}

impl ClientCallHooks for ClientKnobs {
    fn fixed_seq(&self) -> Option<u64> {
        self.on(ClientBug::ReplaySameSeq).then_some(1)
    }
    fn retry_unknown_session(&self) -> bool {
        !self.on(ClientBug::NoRetryOn401)
    }
    fn retry_replay(&self) -> bool {
        self.on(ClientBug::RetryOn409)
    }
    fn plaintext_after_426(&self) -> bool {
        self.on(ClientBug::PlaintextFallback)
    }
}

impl ClientResponseHooks for ClientKnobs {
    fn accept_out_of_order(&self) -> bool {
        self.on(ClientBug::ReorderedFramesAccepted)
    }
    fn accept_without_fin(&self) -> bool {
        self.on(ClientBug::MissingFinIgnored)
    }
    fn stop_at_first_fin(&self) -> bool {
        self.on(ClientBug::StopsAtFirstFin)
    }
    fn accept_session_key(&self) -> bool {
        self.on(ClientBug::SessionKeyAccepted)
    }
    fn accept_earlier_session(&self) -> bool {
        self.on(ClientBug::EarlierSessionAccepted)
    }
    fn accept_plaintext_response(&self) -> bool {
        self.on(ClientBug::PlaintextResponseAccepted)
    }
}

impl std::str::FromStr for ClientBug {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|b| b.name()).collect();
            format!("unknown client bug {s:?}; known: {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in ClientBug::ALL {
            assert_eq!(ClientBug::from_name(b.name()), Some(*b));
            assert_eq!(b.name().parse::<ClientBug>(), Ok(*b));
        }
        assert!("nope".parse::<ClientBug>().is_err());
    }
}
