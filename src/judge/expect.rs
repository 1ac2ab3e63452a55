//! What a step expects of its answer: the `expect` table of a scenario
//! step, and what a fuzzer finding leaves when it becomes a scenario. A
//! key left out is not judged; a step with no expectation at all is an
//! honest precondition that must succeed.

use serde::{Deserialize, Serialize};

/// Expectations of a step. Every key is optional; a step without `expect`
/// is a precondition that must succeed honestly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Outer HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Channel error code (`secure_replay`, …) or handshake error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Inner status, read from the opened response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_status: Option<u16>,
    /// Substring of the outer body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// Substring of the inner body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_contains: Option<String>,
    /// Substring the inner body must not contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_lacks: Option<String>,
    /// Exact outer body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Number of frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<usize>,
    /// An authenticated fin frame ended the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fin: Option<bool>,
    /// Frames arrived in order 0, 1, 2, … with fin only on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_order: Option<bool>,
    /// Every frame opened under the per-call response key of KS-2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_call_key: Option<bool>,
    /// Streamed (text/event-stream) or buffered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streamed: Option<bool>,
    /// The signature recovers to the pinned address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifies: Option<bool>,
    /// The ServerHello's signature is `0x` + lowercase hex (ENC-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lowercase_hex: Option<bool>,
    /// `expiresAt` is in the future and within a few seconds of now + TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_near_ttl: Option<bool>,
    /// The demo app's execution counter moved by exactly this much since
    /// the previous call that reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executions_delta: Option<u64>,
    /// An outer response header that must be present (`name` or `name=value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// What the target wrote is canonical: base64url without padding
    /// (ENC-1), signatures `0x` + lowercase hex (ENC-2) with `v` 27 or 28
    /// (ID-3), frame seqs as integers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical: Option<bool>,
    /// The ServerHello's signature has a low `s` (ID-4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_s: Option<bool>,
    /// An HTTP answer below 500 arrived in time: no drop, no reset, no
    /// timeout, no 5xx. For a call sent with `framing`, a close without
    /// an answer also counts (a fair answer to broken framing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alive: Option<bool>,
    /// The answer is a refusal (not 2xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<bool>,
    /// A refusal's body is a documented error shape whose code belongs
    /// with its status (a call), or a documented refusal (a handshake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documented: Option<bool>,
    /// A 200 answer to a call opened whole: every frame under the per-call
    /// key, in order, ending in an authenticated `fin` (a refusal passes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<bool>,
}
