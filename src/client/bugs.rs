//! The client's fault knobs: each names the one honest step it bends
//! (rows of the knob registry, [`crate::knobs`]).

crate::knobs! {
    /// A deliberate client defect, selected with `--bug NAME`.
    pub enum ClientBug: Client {
        /// The ServerHello signature is not checked against the pinned address (HS-2).
        IdentityUnchecked = "identity-unchecked", "HS-2", ClientSuite, "accepts a ServerHello without checking who signed it";
        /// A response that ends without an authenticated `fin` is accepted (RESP-5).
        MissingFinIgnored = "missing-fin-ignored", "RESP-5", ClientSuite, "treats a response without a fin frame as complete";
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
