//! What one fuzz input is: a short list of steps, each an honest action
//! with named mutations. Steps describe the input, not its bytes, so a
//! case replays on any fresh session (new sid, new keys).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One step of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum Step {
    /// `POST /secure/call`, sealed honestly and then mutated.
    Call(CallStep),
    /// Send the previous call's body again, byte for byte (a replay).
    Resend,
    /// Wait until the session's `expiresAt` has passed, then make an honest
    /// call on it (SES-1). Skipped, never judged, when the session expires
    /// later than the run's `--expiry-wait`.
    CallAfterExpiry,
    /// `POST /secure/session` with this body, as is.
    Handshake {
        /// The ClientHello text sent (usually a mutated honest hello).
        body: String,
    },
    /// A plaintext request that bypasses the channel.
    Plain {
        /// The method.
        method: String,
        /// The path; `{agent}` expands to the agent id.
        path: String,
        /// Whether the access key is sent as a bearer token.
        with_key: bool,
        /// The body text.
        body: String,
    },
}

/// How a call is built: the inner request, the seq, then mutations applied
/// in order (envelope fields, raw bytes, HTTP framing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStep {
    /// What is sealed.
    pub inner: Inner,
    /// The seq sealed with; `None` takes the session's next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// A seq chosen relative to the session's calls so far (wins over
    /// `seq`), so the case replays on any fresh session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<SeqAt>,
    /// Envelope edits after sealing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub envelope: Vec<EnvelopeEdit>,
    /// Byte-level edits of the whole body, after the envelope edits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bytes: Vec<ByteEdit>,
    /// How the body is framed on the wire.
    #[serde(default, skip_serializing_if = "Framing::is_normal")]
    pub framing: Framing,
}

/// A seq relative to the calls already made on the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "seq", rename_all = "kebab-case")]
pub enum SeqAt {
    /// `by` above the highest seq used so far; later calls continue above it.
    Ahead {
        /// Distance above the highest used seq (at least 1).
        by: u64,
    },
    /// `by` below the highest seq used so far (0 when that would underflow).
    Behind {
        /// Distance below the highest used seq.
        by: u64,
    },
    /// The seq of the case's previous call, sealed again over this step's
    /// inner request (not a byte-for-byte resend).
    Same,
}

impl SeqAt {
    /// A short name for signatures.
    pub fn name(&self) -> &'static str {
        match self {
            SeqAt::Ahead { .. } => "seq-ahead",
            SeqAt::Behind { by } if *by < crate::protocol::REPLAY_WINDOW => "seq-in-window",
            SeqAt::Behind { .. } => "seq-too-old",
            SeqAt::Same => "seq-reuse",
        }
    }
}

/// The plaintext sealed into a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Inner {
    /// A well-formed InnerRequest.
    Request {
        /// Inner method.
        method: String,
        /// Inner path; `{agent}` expands to the agent id.
        path: String,
        /// Inner authorization.
        auth: Auth,
        /// Raw text of the inner `body` field (normally base64url).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    /// Arbitrary text sealed instead of an InnerRequest.
    Plaintext {
        /// The text.
        text: String,
    },
}

/// The inner `authorization` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Auth {
    /// `Bearer <access key>`.
    Key,
    /// Left out.
    None,
    /// This text.
    Text(String),
}

/// One edit of the sealed envelope's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "kebab-case")]
pub enum EnvelopeEdit {
    /// Flip one bit of the first ciphertext byte.
    FlipCt,
    /// Flip one bit of the last tag byte.
    FlipTag,
    /// Replace a field's value with raw JSON text.
    Set {
        /// The field.
        field: String,
        /// Raw JSON.
        json: String,
        /// Whether the new value can never be honestly accepted.
        invalid: bool,
    },
    /// Remove a field.
    Remove {
        /// The field.
        field: String,
    },
    /// Append a second copy of a field with this raw JSON value.
    Duplicate {
        /// The field.
        field: String,
        /// Raw JSON.
        json: String,
    },
}

impl EnvelopeEdit {
    /// The envelope field this edit touches.
    pub fn field(&self) -> &str {
        match self {
            EnvelopeEdit::FlipCt => "ct",
            EnvelopeEdit::FlipTag => "tag",
            EnvelopeEdit::Set { field, .. }
            | EnvelopeEdit::Remove { field }
            | EnvelopeEdit::Duplicate { field, .. } => field,
        }
    }

    /// Whether, after this edit, an honest target must refuse the call.
    pub fn must_refuse(&self) -> bool {
        match self {
            EnvelopeEdit::FlipCt | EnvelopeEdit::FlipTag => true,
            EnvelopeEdit::Set { invalid, .. } => *invalid,
            EnvelopeEdit::Remove { field } => field != "v",
            EnvelopeEdit::Duplicate { .. } => false,
        }
    }
}

/// One edit of the raw body bytes; positions wrap around the body length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "kebab-case")]
pub enum ByteEdit {
    /// Keep only the first `keep` bytes.
    Truncate {
        /// Bytes kept.
        keep: usize,
    },
    /// XOR one byte. Kept so old findings load; the generator emits `Set`,
    /// because a XOR's result depends on the session's random ciphertext.
    Xor {
        /// Position.
        at: usize,
        /// Mask (never 0).
        mask: u8,
    },
    /// Overwrite one byte with a fixed value: the same case yields the
    /// same byte at the position on any session.
    Set {
        /// Position.
        at: usize,
        /// The byte written.
        byte: u8,
    },
    /// Insert text.
    Insert {
        /// Position.
        at: usize,
        /// The text.
        text: String,
    },
}

/// How the HTTP request carrying a call is framed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "framing", rename_all = "kebab-case")]
pub enum Framing {
    /// Content-Length equal to the body, through the HTTP client.
    #[default]
    Normal,
    /// Content-Length larger than the bytes sent (the body never ends).
    LengthLie {
        /// Bytes promised but never sent.
        extra: usize,
    },
    /// Content-Length smaller than the body; the rest trails.
    LengthShort {
        /// Bytes left out of the count.
        short: usize,
    },
    /// Chunked transfer coding with chunks of this size.
    Chunked {
        /// Chunk size.
        size: usize,
    },
    /// Chunked, with a chunk size line that is not hex.
    ChunkedBadSize,
    /// Chunked without the final zero-length chunk.
    ChunkedUnterminated,
    /// Both Content-Length and chunked.
    LengthAndChunked,
}

impl Framing {
    /// Whether this is the ordinary framing.
    pub fn is_normal(&self) -> bool {
        *self == Framing::Normal
    }

    /// Whether the request never ends: the framing promises bytes that
    /// are never sent, so the target may fairly wait for them.
    pub fn leaves_request_incomplete(&self) -> bool {
        matches!(
            self,
            Framing::LengthLie { .. } | Framing::ChunkedUnterminated
        )
    }

    /// A short name for signatures.
    pub fn name(&self) -> &'static str {
        match self {
            Framing::Normal => "normal",
            Framing::LengthLie { .. } => "content-length-lie",
            Framing::LengthShort { .. } => "content-length-short",
            Framing::Chunked { .. } => "chunked",
            Framing::ChunkedBadSize => "chunked-bad-size",
            Framing::ChunkedUnterminated => "chunked-unterminated",
            Framing::LengthAndChunked => "length-and-chunked",
        }
    }
}

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
        let mut call = crate::fuzz::gen::Generator::dispatch_call(2, 8);
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
