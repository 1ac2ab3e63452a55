//! The scenario model: what a `scenarios/*.toml` file holds.
//!
//! A scenario is the honest protocol with one thing overridden, written as
//! a list of steps. The key reference is in `scenarios/README.md`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::report::Level;

/// Something a scenario needs from the run before it can mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Need {
    /// `--scoped-key` and `--scoped-agent-id`.
    ScopedKey,
    /// The relay marker on outer requests (`--relay-origin on`).
    RelayOrigin,
    /// Unlimited handshakes (only `--target self`, or no budget).
    UnlimitedHandshakes,
    /// A known session bound (`--max-sessions`).
    SessionBound,
    /// The target trusts the harness as a loopback caller (`--target self`).
    LoopbackTrusted,
}

/// One scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique ID (kebab-case).
    pub id: String,
    /// One-line title.
    pub title: String,
    /// Category (mitm, replay, tamper, truncation, downgrade, expiry, inside, relay).
    pub category: String,
    /// The level the scenario is judged at.
    pub level: Level,
    /// Requirement IDs from `docs/PROTOCOL.md`.
    pub requirements: Vec<String>,
    /// Reference-server `--bug` knobs this scenario exists to catch.
    #[serde(default)]
    pub catches: Vec<String>,
    /// Run alone, after the concurrent ones (it floods the store or reads a
    /// server-wide counter).
    #[serde(default)]
    pub exclusive: bool,
    /// Preconditions; unmet ones skip the scenario with a reason.
    #[serde(default)]
    pub needs: Vec<Need>,
    /// The steps, in order.
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
}

/// The action of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `POST /secure/session`, optionally with ClientHello fields replaced.
    Handshake,
    /// Verify a stored ServerHello against the pinned address, optionally
    /// after a man in the middle edited one field.
    Verify,
    /// Several honest handshakes; ephemeral keys, sids and signature `r`
    /// values must never repeat.
    Freshness,
    /// `POST /secure/call`, sealed honestly with overrides.
    Call,
    /// Send a saved envelope again, byte for byte.
    Resend,
    /// Sleep a number of seconds, or until the session has expired.
    Wait,
    /// A plaintext HTTP request (no channel).
    Plain,
    /// Many handshakes, to overflow a bounded session store.
    Flood,
    /// Checks that no secret or inner plaintext appeared in any outer byte.
    Blind,
}

/// One step. Which keys apply depends on `do`; the loader refuses keys it
/// does not know.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The action.
    #[serde(rename = "do")]
    pub action: Option<Action>,
    /// The session name (default `main`).
    pub session: Option<String>,

    // handshake
    /// ClientHello `v` (any JSON value, as text).
    pub version: Option<String>,
    /// ClientHello `agentAddress` replacement.
    pub agent_address: Option<String>,
    /// ClientHello `encPub` replacement (base64url text).
    pub enc_pub: Option<String>,
    /// ClientHello `nonce` replacement.
    pub nonce: Option<String>,
    /// Use the n-th low-order X25519 point as `encPub`.
    pub low_order: Option<usize>,
    /// Send this text as the whole handshake body.
    pub raw_body: Option<String>,
    /// Reuse the run's shared session when handshakes are budgeted (an
    /// honest handshake whose session only needs fresh seqs).
    pub shared: Option<bool>,

    // verify
    /// The transcript field a man in the middle edits before verification:
    /// `encPub`, `sid`, `expiresAt`, `nonce`, `clientEncPub`, `agentAddress`.
    pub edit: Option<String>,
    /// `verify`: check the signature against the transcript without this
    /// field (it must NOT verify there).
    pub without: Option<String>,

    // freshness / flood
    /// How many handshakes (`flood`: added to the session bound).
    pub count: Option<usize>,

    // call / plain
    /// Inner (or plain) HTTP method.
    pub method: Option<String>,
    /// Inner (or plain) path; `{agent}`, `{address}`, `{scoped_agent}` expand.
    pub path: Option<String>,
    /// `authorization`: `{key}` (default), `{scoped_key}`, `none`, or text.
    pub authorization: Option<String>,
    /// Extra inner headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// Inner body text (base64url-encoded into `body`).
    pub body: Option<String>,
    /// Raw text placed in the inner `body` field as is.
    pub body_field: Option<String>,
    /// Inner `accept`.
    pub accept: Option<String>,
    /// Inner `contentType`.
    pub content_type: Option<String>,
    /// Seal this text instead of an InnerRequest.
    pub plaintext: Option<String>,
    /// The seq to seal with (default: the session's next).
    pub seq: Option<u64>,
    /// The seq as decimal text, for values above 2^63 that a TOML integer
    /// cannot hold (`"18446744073709551615"`); `seq` wins when both are set.
    pub big_seq: Option<String>,
    /// Seal with the named session's keys and sid (sent under this one's sid).
    pub seal_session: Option<String>,
    /// Seal with the `s2c` key instead of `c2s`.
    pub wrong_direction: Option<bool>,
    /// Flip one bit: `ct` (first byte) or `tag` (last byte).
    pub flip: Option<String>,
    /// Envelope fields replaced after sealing: field -> raw JSON text.
    pub set: Option<BTreeMap<String, String>>,
    /// Envelope fields removed after sealing.
    pub remove: Option<Vec<String>>,
    /// Send (or omit) the outer relay marker; default from the run.
    pub relay: Option<bool>,
    /// Save the envelope under this name for `resend`.
    pub save: Option<String>,
    /// Put a unique canary into the inner request (for `blind`).
    pub canary: Option<bool>,

    // resend
    /// The saved envelope to resend.
    pub envelope: Option<String>,

    // wait
    /// Seconds to wait; `"expiry"` waits until the session has expired.
    pub seconds: Option<String>,

    /// What must hold afterwards.
    pub expect: Option<Expect>,
}

/// Expectations of a step. Every key is optional; a step without `expect`
/// is a precondition that must succeed honestly.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Outer HTTP status.
    pub status: Option<u16>,
    /// Channel error code (`secure_replay`, …) or handshake error message.
    pub error: Option<String>,
    /// Inner status, read from the opened response.
    pub inner_status: Option<u16>,
    /// Substring of the outer body.
    pub body_contains: Option<String>,
    /// Substring of the inner body.
    pub inner_contains: Option<String>,
    /// Substring the inner body must not contain.
    pub inner_lacks: Option<String>,
    /// Exact outer body.
    pub body: Option<String>,
    /// Number of frames.
    pub frames: Option<usize>,
    /// An authenticated fin frame ended the response.
    pub fin: Option<bool>,
    /// Frames arrived in order 0, 1, 2, … with fin only on the last.
    pub in_order: Option<bool>,
    /// Every frame opened under the per-call response key of KS-2.
    pub per_call_key: Option<bool>,
    /// Streamed (text/event-stream) or buffered.
    pub streamed: Option<bool>,
    /// The signature recovers to the pinned address.
    pub verifies: Option<bool>,
    /// The ServerHello's signature is `0x` + lowercase hex (ENC-2).
    pub lowercase_hex: Option<bool>,
    /// `expiresAt` is in the future and within a few seconds of now + TTL.
    pub expiry_near_ttl: Option<bool>,
    /// The demo app's execution counter moved by exactly this much since
    /// the previous call that reported it.
    pub executions_delta: Option<u64>,
    /// An outer response header that must be present (`name` or `name=value`).
    pub header: Option<String>,
    /// What the target wrote is canonical: base64url without padding
    /// (ENC-1), signatures `0x` + lowercase hex (ENC-2) with `v` 27 or 28
    /// (ID-3), frame seqs as integers.
    pub canonical: Option<bool>,
    /// The ServerHello's signature has a low `s` (ID-4).
    pub low_s: Option<bool>,
}
