//! What the relay does to the traffic besides carrying it.
//!
//! Rows of the knob registry ([`crate::knobs`]): the attacks of class
//! `Mitm` are those of `osc-harness mitm --attack`; the `ClientSuite` ones
//! are the edits a client-role scenario needs from the network side (a
//! tampered hello, a frame after fin, another session's response). Each is
//! one bent step of an otherwise faithful relay. Answers that stand for a
//! whole server response (401, 409, 426, 429, a plaintext inner response,
//! hostile streams) are server knobs (`crate::server::Bug`).

use crate::knobs::CaughtBy;

crate::knobs! {
    /// One deliberate edit of the relayed traffic.
    pub enum Attack: Relay {
        /// Sends each captured call to the server a second time.
        Replay = "replay", "", Mitm, "after each call, send the captured envelope to the server again (it must answer 409)";
        /// Removes the final fin frame.
        DropFin = "drop-fin", "", Mitm, "drop the frame marked fin (streams) or its fin flag (buffered responses)";
        /// Ends the response in the middle of its last frame.
        CutMidFrame = "cut-mid-frame", "", Mitm, "end the response half-way through its last frame";
        /// Swaps the first two stream frames.
        Reorder = "reorder", "", Mitm, "swap the first two frames of a stream";
        /// Sends the first stream frame twice.
        Duplicate = "duplicate", "", Mitm, "send the first frame of a stream twice";
        /// Replaces the server's ephemeral key in the ServerHello.
        SwapServerKey = "swap-server-key", "", Mitm, "replace eS in the ServerHello with the relay's own X25519 key";
        /// Turns a sealed call into a plaintext agent-route request.
        Plaintext = "plaintext", "", Mitm, "send a plaintext POST /agents/{id}/run in place of the sealed call (the server must answer 426)";
        /// Forwards without the relay marker.
        StripMarker = "strip-marker", "", Mitm, "forward without X-Osaurus-Relay-Origin, so the server sees a loopback caller";
        /// Changes the sid of the ServerHello after signing.
        EditSid = "edit-sid", "", ClientSuite, "change sid in the ServerHello after it was signed";
        /// Changes expiresAt of the ServerHello after signing.
        EditExp = "edit-exp", "", ClientSuite, "add an hour to expiresAt in the ServerHello after it was signed";
        /// Announces version 2 in the ServerHello.
        HelloV2 = "hello-v2", "", ClientSuite, "set v to 2 in the ServerHello";
        /// Rewrites the signature's v byte from 27/28 to 0/1.
        SigV01 = "sig-v-01", "", ClientSuite, "rewrite the ServerHello signature's v byte from 27/28 to 0/1 (same signature, other encoding)";
        /// Rewrites the signature as its high-S twin.
        SigHighS = "sig-high-s", "", ClientSuite, "rewrite the ServerHello signature as its high-S twin (valid, not canonical)";
        /// A frame appears after the fin frame.
        FrameAfterFin = "frame-after-fin", "", ClientSuite, "send the first frame again after the fin frame";
        /// Answers the retried call with the response of the first one.
        ForeignFrames = "foreign-frames", "", ClientSuite, "forward the first call but answer it 401; answer the retry (a new session) with the first call's sealed response";
    }
}

impl Attack {
    /// The attacks of `osc-harness mitm` (the rest serve client scenarios).
    pub fn is_mitm(self) -> bool {
        self.caught_by() == CaughtBy::Mitm
    }
}

crate::knob_from_str!(Attack, "attack", "osc-harness mitm --list-attacks");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for a in Attack::ALL {
            assert_eq!(a.name().parse::<Attack>(), Ok(*a));
            assert!(seen.insert(a.name()), "duplicate {a}");
        }
        assert!("nope".parse::<Attack>().is_err());
        assert_eq!(Attack::ALL.iter().filter(|a| a.is_mitm()).count(), 8);
    }
}
