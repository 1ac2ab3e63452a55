//! What one fuzz input is: a short list of steps, each an honest action
//! with named mutations. Steps describe the input, not its bytes, so a
//! case replays on any fresh session (new sid, new keys).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The steps and edits, shared with the scenario language; one
/// implementation applies them ([`crate::peer::edit`]).
pub use crate::peer::edit::{Auth, ByteEdit, CallStep, EnvelopeEdit, Framing, Inner, SeqAt, Step};

/// A finding's stable bucket: which oracle fired, at which layer, on which
/// field.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Signature {
    /// The oracle (e.g. `accepted-invalid`, `dropped-connection`).
    pub oracle: String,
    /// The layer mutated (`envelope`, `inner`, `bytes`, `framing`, `stateful`, `handshake`, `plaintext`, `valid`).
    pub layer: String,
    /// The field mutated.
    pub field: String,
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.oracle, self.layer, self.field)
    }
}

/// One request as sent and what came back, kept in a finding for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// The endpoint.
    pub endpoint: String,
    /// The body sent (lossy UTF-8, cut at 4 KiB).
    pub sent: String,
    /// What came back: `HTTP <status>: <body>` or the transport error.
    pub received: String,
}

/// A saved finding: self-contained, replayable with `osc-harness replay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The bucket.
    pub signature: Signature,
    /// What the oracle saw.
    pub detail: String,
    /// The run's `--seed`.
    pub seed: u64,
    /// The case number in that run.
    pub case: u64,
    /// How many times this bucket fired in the run with this shape.
    pub count: u64,
    /// The steps (minimised), run on a fresh session.
    pub steps: Vec<Step>,
    /// The bytes of the confirming run and the answers.
    pub exchanges: Vec<Exchange>,
    /// The target's URL (or `self`).
    pub target: String,
    /// Extra headers of the confirming run, for the record.
    #[serde(default)]
    pub notes: BTreeMap<String, String>,
    /// The firing step's response shape (`oracle::shape`); `None` in
    /// files saved before findings were kept per shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<String>,
    /// The requirement IDs the finding judges; `None` in files saved
    /// before findings carried them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirement: Option<String>,
    /// The level of that requirement: only a `MUST` finding fails a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<crate::report::Level>,
}

/// A corpus entry: an input that reached a new response shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusEntry {
    /// The response shape it reached first.
    pub shape: String,
    /// The steps.
    pub steps: Vec<Step>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_steps_still_load() {
        // Written before relative seqs and fixed-byte edits existed.
        let old = r#"[{"do":"call","inner":{"kind":"request","method":"POST",
            "path":"/agents/{agent}/run","auth":"key"},"seq":5,
            "bytes":[{"edit":"xor","at":3,"mask":1}]},{"do":"resend"}]"#;
        let steps: Vec<Step> = serde_json::from_str(old).unwrap();
        let Step::Call(call) = &steps[0] else {
            panic!("{steps:?}")
        };
        assert_eq!((call.seq, call.at), (Some(5), None));
        assert_eq!(call.bytes, vec![ByteEdit::Xor { at: 3, mask: 1 }]);
    }

    #[test]
    fn new_steps_round_trip() {
        let mut call = crate::netfuzz::gen::Generator::dispatch_call(2, 8);
        call.at = Some(SeqAt::Behind { by: 64 });
        call.bytes.push(ByteEdit::Set { at: 9, byte: b'"' });
        let steps = vec![Step::Call(call), Step::CallAfterExpiry];
        let text = serde_json::to_string(&steps).unwrap();
        assert!(text.contains(r#""at":{"seq":"behind","by":64}"#), "{text}");
        assert_eq!(serde_json::from_str::<Vec<Step>>(&text).unwrap(), steps);
        assert_eq!(SeqAt::Behind { by: 64 }.name(), "seq-too-old");
        assert_eq!(SeqAt::Behind { by: 63 }.name(), "seq-in-window");
    }
}
