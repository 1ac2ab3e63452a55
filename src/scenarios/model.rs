//! The scenario model: what a `scenarios/*.toml` file holds.
//!
//! A scenario is the honest protocol with one thing overridden, written as
//! a list of steps. The key reference is in `scenarios/README.md`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::peer::edit::{self, ByteEdit, EnvelopeEdit, Framing, Inner, SeqAt};
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
    /// Wait until the session's `expiresAt` has passed (skipped beyond
    /// `--max-wait`), then make an honest call on it (SES-1).
    CallAfterExpiry,
}

impl Action {
    /// The `do` value as written in a file.
    pub fn name(self) -> &'static str {
        match self {
            Action::Handshake => "handshake",
            Action::Verify => "verify",
            Action::Freshness => "freshness",
            Action::Call => "call",
            Action::Resend => "resend",
            Action::Wait => "wait",
            Action::Plain => "plain",
            Action::Flood => "flood",
            Action::Blind => "blind",
            Action::CallAfterExpiry => "call-after-expiry",
        }
    }

    /// Whether `key` applies to this action (`do` itself aside); any other
    /// key is a load error.
    pub fn takes(self, key: &str) -> bool {
        self.keys().contains(&key) || (self == Action::Call && INNER_SHORT_FORMS.contains(&key))
    }

    /// The step keys that apply to this action (besides `do` and, on
    /// `call`, the [`INNER_SHORT_FORMS`]).
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Action::Handshake => &[
                "session",
                "version",
                "agent_address",
                "enc_pub",
                "nonce",
                "low_order",
                "raw_body",
                "shared",
                "expect",
            ],
            Action::Verify => &["session", "edit", "without", "expect"],
            Action::Freshness => &["count", "expect"],
            Action::Call => &[
                "session",
                "seq",
                "seal_session",
                "wrong_direction",
                "flip",
                "set",
                "remove",
                "relay",
                "save",
                "inner",
                "at",
                "envelope",
                "bytes",
                "framing",
                "expect",
            ],
            Action::Resend => &["envelope", "expect"],
            Action::Wait => &["session", "seconds", "expect"],
            Action::Plain => &[
                "method",
                "path",
                "authorization",
                "headers",
                "body",
                "relay",
                "expect",
            ],
            Action::Flood => &["count", "expect"],
            Action::Blind => &["expect"],
            Action::CallAfterExpiry => &["session", "relay", "expect"],
        }
    }
}

/// The `call` keys that say what is sealed in the short form; `inner`
/// says it in the edit language's form, so they do not go with it.
pub const INNER_SHORT_FORMS: &[&str] = &[
    "method",
    "path",
    "authorization",
    "headers",
    "body",
    "body_field",
    "accept",
    "content_type",
    "plaintext",
    "canary",
];

/// The `envelope` key: on `resend`, the name of a saved envelope; on
/// `call`, the edits of the sealed envelope (the fuzz cases' form).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum EnvelopeKey {
    /// A saved envelope's name (`resend`).
    Saved(String),
    /// Envelope edits, applied in order after sealing (`call`).
    Edits(Vec<EnvelopeEdit>),
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
    /// The seq to seal with (default: the session's next); an integer, or
    /// its decimal text for seqs beyond TOML's integer range.
    #[serde(default, deserialize_with = "seq_number_or_text")]
    pub seq: Option<u64>,
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

    // call: the edit language shared with the fuzz cases (peer::edit)
    /// What is sealed, in the fuzz cases' form (instead of `method`,
    /// `path`, `authorization`, `body_field` or `plaintext`).
    pub inner: Option<Inner>,
    /// A seq relative to the session's calls so far (wins over `seq`).
    pub at: Option<SeqAt>,
    /// Byte edits of the whole body, after the envelope edits.
    pub bytes: Option<Vec<ByteEdit>>,
    /// How the body is framed on the wire (sent as raw bytes).
    pub framing: Option<Framing>,

    // call / resend
    /// `call`: envelope edits after sealing; `resend`: the saved envelope
    /// to resend (without it, the previous call's body).
    pub envelope: Option<EnvelopeKey>,

    // wait
    /// Seconds to wait; `"expiry"` waits until the session has expired.
    pub seconds: Option<String>,

    /// What must hold afterwards.
    pub expect: Option<Expect>,
}

pub use crate::judge::Expect;

impl Step {
    /// The keys this step sets (besides `do`), in declaration order.
    pub fn keys(&self) -> Vec<&'static str> {
        let set = [
            ("session", self.session.is_some()),
            ("version", self.version.is_some()),
            ("agent_address", self.agent_address.is_some()),
            ("enc_pub", self.enc_pub.is_some()),
            ("nonce", self.nonce.is_some()),
            ("low_order", self.low_order.is_some()),
            ("raw_body", self.raw_body.is_some()),
            ("shared", self.shared.is_some()),
            ("edit", self.edit.is_some()),
            ("without", self.without.is_some()),
            ("count", self.count.is_some()),
            ("method", self.method.is_some()),
            ("path", self.path.is_some()),
            ("authorization", self.authorization.is_some()),
            ("headers", self.headers.is_some()),
            ("body", self.body.is_some()),
            ("body_field", self.body_field.is_some()),
            ("accept", self.accept.is_some()),
            ("content_type", self.content_type.is_some()),
            ("plaintext", self.plaintext.is_some()),
            ("seq", self.seq.is_some()),
            ("seal_session", self.seal_session.is_some()),
            ("wrong_direction", self.wrong_direction.is_some()),
            ("flip", self.flip.is_some()),
            ("set", self.set.is_some()),
            ("remove", self.remove.is_some()),
            ("relay", self.relay.is_some()),
            ("save", self.save.is_some()),
            ("canary", self.canary.is_some()),
            ("inner", self.inner.is_some()),
            ("at", self.at.is_some()),
            ("bytes", self.bytes.is_some()),
            ("framing", self.framing.is_some()),
            ("envelope", self.envelope.is_some()),
            ("seconds", self.seconds.is_some()),
            ("expect", self.expect.is_some()),
        ];
        set.iter().filter(|(_, on)| *on).map(|(k, _)| *k).collect()
    }

    /// The envelope edits of a call in order: the short forms (`flip`,
    /// `set`, `remove`) first, then `envelope = [...]`. A `set` value that
    /// is not JSON is set as a JSON string.
    pub fn envelope_edits(&self) -> Vec<EnvelopeEdit> {
        let mut out = Vec::new();
        match self.flip.as_deref() {
            Some("tag") => out.push(EnvelopeEdit::FlipTag),
            Some(_) => out.push(EnvelopeEdit::FlipCt),
            None => {}
        }
        for (field, raw) in self.set.iter().flatten() {
            let json = match serde_json::from_str::<serde_json::Value>(raw) {
                Ok(_) => raw.clone(),
                Err(_) => serde_json::Value::from(raw.clone()).to_string(),
            };
            out.push(EnvelopeEdit::Set {
                field: field.clone(),
                json,
                invalid: false,
            });
        }
        for field in self.remove.iter().flatten() {
            out.push(EnvelopeEdit::Remove {
                field: field.clone(),
            });
        }
        if let Some(EnvelopeKey::Edits(edits)) = &self.envelope {
            out.extend(edits.iter().cloned());
        }
        out
    }

    /// This step as a step of the shared edit language, when it is one
    /// (the form `replay --to-scenario` writes): a `call` given by `inner`
    /// and the edit keys, a `resend` of the previous call, a
    /// `call-after-expiry`, a handshake with a `raw_body`, or a `plain`
    /// request with the key or `authorization = "none"`.
    pub fn edit_step(&self) -> Option<edit::Step> {
        let keys = self.keys();
        let only = |allowed: &[&str]| keys.iter().all(|k| allowed.contains(k));
        match self.action? {
            Action::Call => {
                if !only(&[
                    "session",
                    "inner",
                    "seq",
                    "at",
                    "envelope",
                    "bytes",
                    "framing",
                    "wrong_direction",
                    "save",
                    "expect",
                ]) || matches!(self.envelope, Some(EnvelopeKey::Saved(_)))
                {
                    return None;
                }
                Some(edit::Step::Call(edit::CallStep {
                    inner: self.inner.clone()?,
                    seq: self.seq,
                    at: self.at,
                    envelope: self.envelope_edits(),
                    bytes: self.bytes.clone().unwrap_or_default(),
                    framing: self.framing.clone().unwrap_or_default(),
                    wrong_direction: self.wrong_direction == Some(true),
                }))
            }
            Action::Resend if self.envelope.is_none() => Some(edit::Step::Resend),
            Action::CallAfterExpiry => Some(edit::Step::CallAfterExpiry),
            Action::Handshake if only(&["session", "raw_body", "expect"]) => {
                Some(edit::Step::Handshake {
                    body: self.raw_body.clone()?,
                })
            }
            Action::Plain
                if only(&["method", "path", "authorization", "body", "relay", "expect"]) =>
            {
                let with_key = match self.authorization.as_deref() {
                    None => true,
                    Some("none") => false,
                    Some(_) => return None,
                };
                Some(edit::Step::Plain {
                    method: self.method.clone()?,
                    path: self.path.clone()?,
                    with_key,
                    body: self.body.clone().unwrap_or_default(),
                })
            }
            _ => None,
        }
    }
}

/// A `seq`: a TOML integer, or decimal text (TOML integers stop at 2^63-1,
/// seqs go to 2^64-1).
fn seq_number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seq {
        Number(u64),
        Text(String),
    }
    match Seq::deserialize(d)? {
        Seq::Number(n) => Ok(Some(n)),
        Seq::Text(t) => t.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("seq {t:?} is not a number from 0 to 2^64-1"))
        }),
    }
}
