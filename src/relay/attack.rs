//! What a malicious relay can do at the tunnel level: one row each, as
//! the knob registry ([`crate::knobs`]) declares knobs. Each bends one
//! step of the faithful relay in [`super::route`]; how each is caught is
//! [`RelayAttack::caught_how`], and the matrix of [`super::matrix`] shows
//! it on real traffic.

crate::knobs! {
    /// One deliberate misbehaviour of the relay at the tunnel level.
    pub enum RelayAttack: Relay {
        /// Sends each call's request frame to the host a second time.
        ReplayRequest = "replay-request", "", Mitm, "after each /secure/call, send the same request frame to the host again (the agent must answer 409)";
        /// Sends the first event of a stream twice.
        DuplicateChunk = "duplicate-chunk", "", Mitm, "send the first event of a stream to the caller twice";
        /// Swaps the first two events of a stream.
        ReorderChunks = "reorder-chunks", "", Mitm, "swap the first two events of a stream";
        /// Cuts every chunk in two.
        SplitChunks = "split-chunks", "", Mitm, "deliver each stream chunk as two pieces (the bytes are unchanged)";
        /// Joins chunks two by two.
        CoalesceChunks = "coalesce-chunks", "", Mitm, "deliver stream chunks joined two by two (the bytes are unchanged)";
        /// Ignores `stream_end`.
        DropStreamEnd = "drop-stream-end", "", Mitm, "ignore the host's stream_end: the caller's stream ends only at the idle timeout";
        /// Ends the caller's stream cleanly after its first event.
        CutMidStream = "cut-mid-stream", "", Mitm, "end the caller's stream cleanly after its first event and cancel the host";
        /// Answers the first call 401 itself.
        Answer401 = "answer-401", "", Mitm, "answer the first /secure/call itself with the agent's 401 secure_session_unknown";
        /// Answers the first call 409 itself.
        Answer409 = "answer-409", "", Mitm, "answer the first /secure/call itself with the agent's 409 secure_replay";
        /// Answers the first handshake 429 itself.
        Answer429 = "answer-429", "", Mitm, "answer the first /secure/session itself with the agent's 429";
        /// Sends each agent's traffic down another agent's tunnel.
        CrossAgents = "cross-agents", "", Mitm, "carry requests for one agent to another agent's tunnel";
    }
}

/// How a check catches an attack, for the table in docs/RELAY.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catch {
    /// The agent refuses what the relay did (its status is recorded).
    Agent,
    /// The client must refuse the answer: the call fails.
    ClientRefuses,
    /// The edit leaves the bytes the client reads unchanged: the call
    /// succeeds with the agent's own answer.
    Harmless,
    /// The client never takes the relay's answer for the agent's: the call
    /// fails with that status, or succeeds only with the agent's own sealed
    /// answer after a retry.
    NeverAccepted,
}

impl RelayAttack {
    /// Which check catches the attack.
    pub fn catch(self) -> Catch {
        match self {
            RelayAttack::ReplayRequest => Catch::Agent,
            RelayAttack::DuplicateChunk
            | RelayAttack::ReorderChunks
            | RelayAttack::CutMidStream
            | RelayAttack::CrossAgents => Catch::ClientRefuses,
            RelayAttack::SplitChunks | RelayAttack::CoalesceChunks | RelayAttack::DropStreamEnd => {
                Catch::Harmless
            }
            RelayAttack::Answer401 | RelayAttack::Answer409 | RelayAttack::Answer429 => {
                Catch::NeverAccepted
            }
        }
    }

    /// How it is caught, in words.
    pub fn caught_how(self) -> &'static str {
        match self {
            RelayAttack::ReplayRequest => {
                "the agent: the replayed envelope is answered 409 and nothing executes twice (CALL-3)"
            }
            RelayAttack::DuplicateChunk => "the client: a frame repeats (RESP-5), the call fails",
            RelayAttack::ReorderChunks => "the client: frames out of order (RESP-5), the call fails",
            RelayAttack::CutMidStream => {
                "the client: no final fin frame (RESP-5), the call fails although the stream ended cleanly"
            }
            RelayAttack::CrossAgents => {
                "the client: the ServerHello is signed by another agent (HS-2), the handshake fails"
            }
            RelayAttack::SplitChunks | RelayAttack::CoalesceChunks => {
                "harmless: the bytes are unchanged and the call succeeds with the agent's answer"
            }
            RelayAttack::DropStreamEnd => {
                "harmless: the channel's own fin frame completes the answer; the stream closes at the idle timeout"
            }
            RelayAttack::Answer401 | RelayAttack::Answer409 | RelayAttack::Answer429 => {
                "the client: an unsealed answer is never the agent's; the call fails with its status or retries to the agent's own sealed answer"
            }
        }
    }
}

crate::knob_from_str!(
    RelayAttack,
    "relay attack",
    "osc-harness relay --list-attacks"
);
