//! The judge's checks as a table: every way an answer can fall outside
//! what the protocol allows, one row each, with the requirement it guards
//! and that requirement's level. The fuzzer files its findings under these
//! names (its oracles are these checks), and the oracle table of
//! `docs/FUZZING.md` is generated from this table ([`table`]). A few
//! fuzzer signatures (`check/layer/field`) judge another requirement at
//! another level than their check's row ([`REFINED`]).

use std::fmt::Write as _;

use super::Finding;
use crate::report::Level;

crate::knobs! {
    /// One way a target's answer can fall outside what the protocol
    /// allows. The name is the first part of a fuzzer finding's signature
    /// (`check/layer/field`) and of its file name.
    pub enum Check by level: Level {
        /// A 5xx answer.
        ServerError = "server-error", "CALL-2", Must, "a 5xx answer: the protocol answers every bad input with a documented 4xx refusal";
        /// The connection dropped before an answer.
        DroppedConnection = "dropped-connection", "CALL-2", Must, "the connection dropped or was reset before an answer (not judged for framing edits, where a drop is a fair answer)";
        /// No answer in time to a whole request.
        Timeout = "timeout", "CALL-2", Must, "no answer within `--timeout` to a whole request";
        /// An incomplete request held past the limit.
        HeldRequest = "held-request", "LIM-2", Should, "an incomplete request (framing that promises bytes never sent) held unanswered past `--slow-request-limit`: the target waits for the promised bytes without a bound; the detail says how long";
        /// An incomplete request held a long time, then answered or closed.
        SlowRequest = "slow-request", "LIM-2", Upstream, "an incomplete request (framing that promises bytes never sent) held longer than `--timeout` before the target answered or closed it, within `--slow-request-limit`: the wait was bounded; the detail says how long";
        /// A refusal in no documented shape.
        UndocumentedBody = "undocumented-body", "CALL-2, RESP-2", Must, "a refusal whose body is not a documented error shape, or whose code does not belong with its status; a 200 handshake answer that is not a ServerHello";
        /// A refusal where the protocol accepts.
        RefusedValid = "refused-valid", "CALL-3, CALL-4", Must, "a refusal, or a non-2xx inner status, for a valid call: e.g. 409 for an unseen seq inside the window or for the seq of a forged call";
        /// An agent run or dispatch refused with 426 inside the channel.
        ChannelGated = "channel-gated", "GATE-4", Must, "an inner 426 for an agent run or dispatch sent through the channel: the 426 gate is for plaintext requests only";
        /// A refusal with another status than the protocol fixes.
        WrongStatus = "wrong-status", "CALL-2", Must, "a documented refusal with another status, or another error, than the one the protocol fixes for the input (`judge::order`: CALL-2's check order, a hello with one bad field)";
        /// A 200 for an input the protocol refuses.
        AcceptedInvalid = "accepted-invalid", "CALL-1, CALL-2, CALL-3, CALL-8, SES-1", Must, "200 for an input the protocol refuses: a flipped tag, a replay, seq 0, a reused or too-old seq, a call on an expired session, a nested `/secure/` path or a malformed inner request";
        /// A 2xx inside without the access key.
        InnerAuthBypass = "inner-auth-bypass", "CALL-6", Must, "2xx inside for an inner request without the access key";
        /// Plaintext where a sealed frame belongs.
        PlaintextResponse = "plaintext-response", "RESP-2, RESP-3", Must, "a 200 answer to a call that is plaintext where a sealed frame belongs";
        /// A frame that does not open.
        FrameNotOpening = "frame-not-opening", "RESP-1, RESP-4, KS-1, KS-2, KS-3", Must, "a frame that does not open under the per-call key, frames out of order, `fin` before the last frame, or an inner response that does not parse";
        /// A response without a final fin.
        MissingFin = "missing-fin", "RESP-2, RESP-3, RESP-5", Must, "a response (buffered or streamed) that ends without an authenticated `fin`";
        /// The honest hello's answer is a ServerHello the client must refuse.
        HelloRefused = "hello-refused", "HS-1, HS-2, ID-1, ID-2, ID-3", Must, "the ServerHello answering an honest hello does not recover to the pinned address (a wrong key, domain, transcript, address derivation or `v` byte): no session can be opened, so the run stops with this finding";
        /// An encoding the target wrote is not canonical.
        NotCanonical = "non-canonical", "ENC-1, ENC-2", Must, "the target wrote a value not as the protocol writes it: a ServerHello `encPub`/`sid`, a frame `ct` or an inner body that is not unpadded base64url, a signature that is not `0x` + lowercase hex";
        /// A stream's fin is not on a separate empty last frame.
        FinMisplaced = "fin-misplaced", "RESP-3", Must, "a stream whose `fin` rides on a data frame, or on a frame before the last, instead of a separate empty last frame";
        /// A ServerHello repeats a value of an earlier session.
        NotFresh = "not-fresh", "HS-3", Must, "a ServerHello that repeats the ephemeral key, the sid or the signature's `r` of an earlier session of the run";
        /// A plaintext agent route served to a remote caller.
        PlaintextAccepted = "plaintext-accepted", "GATE-1", Must, "a plaintext agent route served to a remote caller (the relay marker set)";
    }
}

impl Check {
    /// A finding of this check: its requirement, its level, what came.
    pub fn finding(self, actual: impl Into<String>) -> Finding {
        Finding {
            requirement: self.requirement().into(),
            level: self.level(),
            expected: self.description().into(),
            actual: actual.into(),
            precondition: false,
        }
    }
}

/// A check that fired, with what was seen.
pub type Hit = (Check, String);

/// A fuzzer signature that judges another requirement, at another level,
/// than its check's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refined {
    /// The check.
    pub check: Check,
    /// The layer of the signature.
    pub layer: &'static str,
    /// The field of the signature.
    pub field: &'static str,
    /// The requirement judged instead.
    pub requirement: &'static str,
    /// Its level.
    pub level: Level,
    /// Why.
    pub why: &'static str,
}

/// The signatures whose requirement and level differ from their check's.
pub const REFINED: &[Refined] = &[
    Refined {
        check: Check::UndocumentedBody,
        layer: "handshake",
        field: "hello",
        requirement: "ENC-3, HS-5",
        level: Level::Must,
        why: "a handshake refusal that is not a documented JSON error body",
    },
    Refined {
        check: Check::ServerError,
        layer: "handshake",
        field: "hello",
        requirement: "HS-5",
        level: Level::Must,
        why: "a 5xx answer to a hello: every bad hello has a documented 4xx refusal",
    },
    Refined {
        check: Check::HelloRefused,
        layer: "handshake",
        field: "version",
        requirement: "HS-4",
        level: Level::Must,
        why: "the ServerHello says `v` other than 1, which a client must refuse",
    },
    Refined {
        check: Check::HelloRefused,
        layer: "handshake",
        field: "malformed",
        requirement: "ENC-1, HS-5",
        level: Level::Must,
        why: "a ServerHello key or sid that does not decode or has the wrong size",
    },
    Refined {
        check: Check::HelloRefused,
        layer: "handshake",
        field: "low-order-key",
        requirement: "HS-7",
        level: Level::Should,
        why: "the ServerHello announces a low-order `encPub`: refusing it is a SHOULD, and the run stops for want of a session",
    },
    Refined {
        check: Check::HelloRefused,
        layer: "handshake",
        field: "expired",
        requirement: "SES-1, SES-3",
        level: Level::Must,
        why: "the ServerHello announces an `expiresAt` already past, as the suite judges it (`expiry-announced`)",
    },
    Refined {
        check: Check::AcceptedInvalid,
        layer: "inner",
        field: "body",
        requirement: "CALL-9",
        level: Level::Should,
        why: "an inner `body` that is not base64url even to a lenient decoder: refusing it is a SHOULD; upstream runs the request with an empty body",
    },
    Refined {
        check: Check::WrongStatus,
        layer: "inner",
        field: "body",
        requirement: "CALL-9",
        level: Level::Should,
        why: "the same input refused with another status than `400 secure_malformed`",
    },
    Refined {
        check: Check::AcceptedInvalid,
        layer: "envelope",
        field: "direction",
        requirement: "CALL-5, KS-1",
        level: Level::Must,
        why: "a call sealed with the server-to-client key was accepted: the keys are not directional",
    },
    Refined {
        check: Check::WrongStatus,
        layer: "envelope",
        field: "direction",
        requirement: "CALL-5, KS-1",
        level: Level::Must,
        why: "a call sealed with the server-to-client key got another refusal than `400 secure_decrypt_failed`, as the suite judges it (`replay-transplant`)",
    },
    Refined {
        check: Check::AcceptedInvalid,
        layer: "handshake",
        field: "version",
        requirement: "HS-4",
        level: Level::Must,
        why: "a ClientHello with `v` other than 1 was answered with a session",
    },
    Refined {
        check: Check::WrongStatus,
        layer: "handshake",
        field: "version",
        requirement: "HS-4",
        level: Level::Must,
        why: "a ClientHello with `v` other than 1 got another refusal than `400 Unsupported secure channel version`",
    },
    Refined {
        check: Check::AcceptedInvalid,
        layer: "handshake",
        field: "unknown-agent",
        requirement: "HS-6",
        level: Level::Must,
        why: "a ClientHello for an agent the server does not hold was answered with a session",
    },
    Refined {
        check: Check::WrongStatus,
        layer: "handshake",
        field: "unknown-agent",
        requirement: "HS-6",
        level: Level::Must,
        why: "a ClientHello for an agent the server does not hold got another refusal than `404 Unknown agent address`",
    },
    Refined {
        check: Check::AcceptedInvalid,
        layer: "handshake",
        field: "low-order-key",
        requirement: "HS-7",
        level: Level::Should,
        why: "a ClientHello with a low-order `encPub` was answered with a session whose keys anyone can compute; refusing it is a SHOULD",
    },
    Refined {
        check: Check::WrongStatus,
        layer: "handshake",
        field: "low-order-key",
        requirement: "HS-7",
        level: Level::Should,
        why: "a ClientHello with a low-order `encPub` got another refusal than `400 Malformed handshake`",
    },
];

/// The requirement and level a firing of `check` at `layer`/`field` judges.
pub fn judged(check: Check, layer: &str, field: &str) -> (&'static str, Level) {
    REFINED
        .iter()
        .find(|x| x.check == check && x.layer == layer && x.field == field)
        .map_or((check.requirement(), check.level()), |x| {
            (x.requirement, x.level)
        })
}

/// The oracle table of `docs/FUZZING.md`: one row per [`Check`], then one
/// per [`REFINED`] entry.
pub fn table() -> String {
    let mut out = String::from("| oracle | requirement | level | fires on |\n|---|---|---|---|\n");
    for c in Check::ALL {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            c.name(),
            c.requirement(),
            c.level().name(),
            c.description()
        );
    }
    out.push_str(
        "\nSignatures judged at another requirement and level than their oracle:\n\n\
         | signature | requirement | level | why |\n|---|---|---|---|\n",
    );
    for x in REFINED {
        let _ = writeln!(
            out,
            "| `{}/{}/{}` | {} | {} | {} |",
            x.check.name(),
            x.layer,
            x.field,
            x.requirement,
            x.level.name(),
            x.why
        );
    }
    out
}

/// The first and last line around the generated oracle table in
/// `docs/FUZZING.md`.
pub const TABLE_MARKERS: (&str, &str) = (
    "<!-- oracle table: generated from src/judge/check.rs -->",
    "<!-- end of oracle table -->",
);

/// `doc` with the text between [`TABLE_MARKERS`] replaced by [`table`];
/// `None` when a marker is missing.
pub fn with_table(doc: &str) -> Option<String> {
    let start = doc.find(TABLE_MARKERS.0)? + TABLE_MARKERS.0.len();
    let end = start + doc[start..].find(TABLE_MARKERS.1)?;
    Some(format!("{}\n{}{}", &doc[..start], table(), &doc[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refined_signature_judges_its_own_requirement() {
        assert_eq!(
            judged(Check::AcceptedInvalid, "inner", "body"),
            ("CALL-9", Level::Should)
        );
        assert_eq!(
            judged(Check::AcceptedInvalid, "envelope", "ct"),
            (Check::AcceptedInvalid.requirement(), Level::Must)
        );
        assert_eq!(Check::from_name("channel-gated"), Some(Check::ChannelGated));
        assert_eq!(Check::ChannelGated.requirement(), "GATE-4");
        assert!(table().contains("| `accepted-invalid/inner/body` | CALL-9 | SHOULD |"));
        let f = Check::HeldRequest.finding("held 60s");
        assert_eq!((f.requirement.as_str(), f.level), ("LIM-2", Level::Should));
    }
}
