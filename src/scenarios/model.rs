//! The scenario model: what a `scenarios/*.toml` file holds.
//!
//! A scenario is the honest protocol with one thing overridden, written as
//! a list of steps. A step is a tagged enum on its `do` key: each kind
//! takes its own keys and refuses any other, and the steps the shared edit
//! language ([`crate::peer::edit`]) can say become an [`edit::Step`] plus
//! the [`Expect`] the judge holds the answer to. The same types write a
//! scenario (`replay --to-scenario`), so a written file is what the loader
//! reads back. The key reference is in `scenarios/README.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};

use crate::peer::edit::{
    self, Auth, ByteEdit, EnvelopeEdit, Framing, HelloEdit, HelloStep as HelloEdits, Inner,
    InnerSpec, SeqAt, Wait,
};
use crate::protocol::encoding::b64url_encode;
use crate::report::Level;

pub use crate::judge::Expect;

/// Something a scenario needs from the run before it can mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catches: Vec<String>,
    /// Run alone, after the concurrent ones (it floods the store or reads a
    /// server-wide counter).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclusive: bool,
    /// Preconditions; unmet ones skip the scenario with a reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<Need>,
    /// The steps, in order.
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
}

/// Why a scenario file cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The scenario holds a value TOML cannot.
    #[error("cannot write the scenario as TOML: {0}")]
    Toml(#[from] toml::ser::Error),
    /// The file or its folder could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl Scenario {
    /// A scenario of edit-language steps, each with its expectation, after
    /// one honest handshake of the main session (the form a fuzzer finding
    /// takes).
    pub fn of_edits(
        id: String,
        title: String,
        category: String,
        level: Level,
        requirements: Vec<String>,
        steps: &[(edit::Step, Expect)],
    ) -> Scenario {
        let mut all = vec![Step::Handshake(HandshakeStep::default())];
        all.extend(
            steps
                .iter()
                .map(|(step, expect)| Step::from_edit(step, Some(expect.clone()))),
        );
        Scenario {
            id,
            title,
            category,
            level,
            requirements,
            catches: Vec::new(),
            exclusive: false,
            needs: Vec::new(),
            steps: all,
        }
    }

    /// The file text: `comments` (one `# ` line each), then the TOML the
    /// serializer writes, which the loader reads back to this scenario.
    pub fn to_toml(&self, comments: &[String]) -> Result<String, toml::ser::Error> {
        let mut out: String = comments
            .iter()
            .map(|c| format!("# {}\n", c.replace(['\n', '\r'], " ")))
            .collect();
        out.push_str(&toml::to_string(self)?);
        Ok(out)
    }

    /// Writes [`Scenario::to_toml`] to `path`, making its folder.
    pub fn write(&self, path: &std::path::Path, comments: &[String]) -> Result<(), WriteError> {
        let text = self.to_toml(comments)?;
        let io = |p: &std::path::Path| {
            let path = p.display().to_string();
            move |source| WriteError::Io { path, source }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::write(path, text).map_err(io(path))
    }
}

/// One step, tagged by its `do` key. Each kind takes only its own keys;
/// the loader refuses any other with the file, line and key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum Step {
    /// `POST /secure/session`, optionally with ClientHello fields replaced.
    Handshake(HandshakeStep),
    /// Verify a stored ServerHello against the pinned address, optionally
    /// after a man in the middle edited one field.
    Verify(VerifyStep),
    /// Several honest handshakes; ephemeral keys, sids and signature `r`
    /// values must never repeat.
    Freshness(CountStep),
    /// `POST /secure/call`, sealed honestly with overrides (boxed: it is
    /// the largest kind by far).
    Call(Box<CallStep>),
    /// Send a saved envelope again, byte for byte.
    Resend(ResendStep),
    /// Sleep a number of seconds, or until the session has expired.
    Wait(WaitStep),
    /// A plaintext HTTP request (no channel).
    Plain(PlainStep),
    /// Many handshakes, to overflow a bounded session store.
    Flood(CountStep),
    /// Checks that no secret or inner plaintext appeared in any outer byte.
    Blind(BlindStep),
    /// Wait until the session's `expiresAt` has passed (skipped beyond
    /// `--max-wait`), then make an honest call on it (SES-1).
    CallAfterExpiry(ExpiryStep),
}

/// `do = "handshake"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandshakeStep {
    /// The session name (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// ClientHello `v` (any JSON value, as text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// ClientHello `agentAddress` replacement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_address: Option<String>,
    /// ClientHello `encPub` replacement (base64url text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enc_pub: Option<String>,
    /// ClientHello `nonce` replacement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Use the n-th low-order X25519 point as `encPub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_order: Option<usize>,
    /// Send this text as the whole handshake body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<String>,
    /// Hello edits in the language's form, after the short forms above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello: Option<Vec<HelloEdit>>,
    /// Reuse the run's shared session when handshakes are budgeted (an
    /// honest handshake whose session only needs fresh seqs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
    /// What must hold afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
}

/// `do = "verify"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyStep {
    /// The session name (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The transcript field a man in the middle edits before verification:
    /// `encPub`, `sid`, `expiresAt`, `nonce`, `clientEncPub`, `agentAddress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit: Option<String>,
    /// Check the signature against the transcript without this field (it
    /// must NOT verify there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without: Option<String>,
    /// What must hold afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
}

/// `do = "freshness"` and `do = "flood"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountStep {
    /// How many handshakes (`flood`: added to the session bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// What must hold afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
}

/// `do = "call"`: what is sealed (`inner`, or its short forms), the seq,
/// then the edits of the language (envelope, bytes, framing) and the
/// suite's own overrides of the honest call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallStep {
    /// The session name (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// What is sealed, in the language's form (instead of the short forms
    /// `method`, `path`, `authorization`, `body_field` or `plaintext`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner: Option<Inner>,
    /// Short form: inner HTTP method (default `GET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Short form: inner path (default `/health`); `{agent}`, `{address}`,
    /// `{scoped_agent}` expand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Short form: `{key}` (default), `{scoped_key}`, `none`, or text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// Extra inner headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Short form: inner body text (base64url-encoded into `body`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Short form: raw text placed in the inner `body` field as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_field: Option<String>,
    /// Inner `accept`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<String>,
    /// Inner `contentType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Short form: seal this text instead of an InnerRequest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext: Option<String>,
    /// Put a unique canary into the inner request (for `blind`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<bool>,
    /// The seq to seal with (default: the session's next); an integer, or
    /// its decimal text for seqs beyond TOML's integer range.
    #[serde(
        default,
        deserialize_with = "seq_number_or_text",
        serialize_with = "seq_as_number_or_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub seq: Option<u64>,
    /// A seq relative to the session's calls so far (wins over `seq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<SeqAt>,
    /// Seal with the named session's keys and sid (sent under this one's sid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal_session: Option<String>,
    /// Seal with the `s2c` key instead of `c2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrong_direction: Option<bool>,
    /// Short form of an envelope edit: flip one bit of `ct` (first byte)
    /// or `tag` (last byte).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flip: Option<String>,
    /// Short form of envelope edits: fields replaced after sealing, field
    /// -> raw JSON text (text that is not JSON is set as a JSON string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<BTreeMap<String, String>>,
    /// Short form of envelope edits: fields removed after sealing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<Vec<String>>,
    /// Envelope edits, applied in order after sealing (and after the short
    /// forms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<Vec<EnvelopeEdit>>,
    /// Byte edits of the whole body, after the envelope edits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Vec<ByteEdit>>,
    /// How the body is framed on the wire (sent as raw bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framing: Option<Framing>,
    /// Send (or omit) the outer relay marker; default from the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<bool>,
    /// Save the envelope under this name for `resend`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save: Option<String>,
    /// What must hold afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
}

/// `do = "resend"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResendStep {
    /// The saved envelope to resend (without it, the previous call's body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<String>,
    /// What must hold afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
}

/// `do = "wait"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitStep {
    /// The session name (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Seconds to wait; `"expiry"` waits until the session has expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<String>,
    /// What must hold afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
}

/// `do = "plain"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainStep {
    /// HTTP method (default `GET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path (default `/health`); `{agent}`, `{address}`, `{scoped_agent}`
    /// expand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `{key}` as a bearer token (default), `none`, or this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// Extra headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Body text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Send (or omit) the outer relay marker; default from the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<bool>,
    /// What must hold afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
}

/// `do = "blind"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlindStep {
    /// What must hold afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
}

/// `do = "call-after-expiry"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiryStep {
    /// The session name (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Send (or omit) the outer relay marker; default from the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<bool>,
    /// What must hold afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
}

/// The `do` values, in the order of [`Step`]'s variants.
pub const KINDS: &[&str] = &[
    "handshake",
    "verify",
    "freshness",
    "call",
    "resend",
    "wait",
    "plain",
    "flood",
    "blind",
    "call-after-expiry",
];

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

/// The keys a step of kind `kind` takes besides `do` (empty for a kind
/// that does not exist). Only error messages read it: serde's
/// `deny_unknown_fields` is what refuses a key.
pub fn keys_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "handshake" => &[
            "session",
            "version",
            "agent_address",
            "enc_pub",
            "nonce",
            "low_order",
            "raw_body",
            "hello",
            "shared",
            "expect",
        ],
        "verify" => &["session", "edit", "without", "expect"],
        "freshness" | "flood" => &["count", "expect"],
        "call" => &[
            "session",
            "inner",
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
            "seq",
            "at",
            "seal_session",
            "wrong_direction",
            "flip",
            "set",
            "remove",
            "envelope",
            "bytes",
            "framing",
            "relay",
            "save",
            "expect",
        ],
        "resend" => &["envelope", "expect"],
        "wait" => &["session", "seconds", "expect"],
        "plain" => &[
            "method",
            "path",
            "authorization",
            "headers",
            "body",
            "relay",
            "expect",
        ],
        "blind" => &["expect"],
        "call-after-expiry" => &["session", "relay", "expect"],
        _ => &[],
    }
}

impl Step {
    /// The `do` value as written in a file.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Handshake(_) => "handshake",
            Step::Verify(_) => "verify",
            Step::Freshness(_) => "freshness",
            Step::Call(_) => "call",
            Step::Resend(_) => "resend",
            Step::Wait(_) => "wait",
            Step::Plain(_) => "plain",
            Step::Flood(_) => "flood",
            Step::Blind(_) => "blind",
            Step::CallAfterExpiry(_) => "call-after-expiry",
        }
    }

    /// What must hold afterwards; `None`: an honest precondition.
    pub fn expect(&self) -> Option<&Expect> {
        match self {
            Step::Handshake(s) => s.expect.as_ref(),
            Step::Verify(s) => s.expect.as_ref(),
            Step::Freshness(s) | Step::Flood(s) => s.expect.as_ref(),
            Step::Call(s) => s.expect.as_ref(),
            Step::Resend(s) => s.expect.as_ref(),
            Step::Wait(s) => s.expect.as_ref(),
            Step::Plain(s) => s.expect.as_ref(),
            Step::Blind(s) => s.expect.as_ref(),
            Step::CallAfterExpiry(s) => s.expect.as_ref(),
        }
    }

    /// Whether the step sends a call whose answer is judged (a call, a
    /// resend or a call after expiry).
    pub fn calls(&self) -> bool {
        matches!(
            self,
            Step::Call(_) | Step::Resend(_) | Step::CallAfterExpiry(_)
        )
    }

    /// The session the step acts on (`main` unless it names one; a kind
    /// without a session acts on `main` or on no session at all).
    pub fn session(&self) -> String {
        let named = match self {
            Step::Handshake(s) => &s.session,
            Step::Verify(s) => &s.session,
            Step::Call(s) => &s.session,
            Step::Wait(s) => &s.session,
            Step::CallAfterExpiry(s) => &s.session,
            Step::Freshness(_)
            | Step::Flood(_)
            | Step::Resend(_)
            | Step::Plain(_)
            | Step::Blind(_) => &None,
        };
        named.clone().unwrap_or_else(|| "main".into())
    }

    /// This step in the edit language: its session, the [`edit::Step`]
    /// and the expectation. Total: every key of every kind maps onto the
    /// language (the short forms onto the forms the fuzzer writes where
    /// those say the same bytes, else onto the suite's fuller forms).
    pub fn to_language(&self) -> LanguageStep {
        let step = match self {
            Step::Handshake(h) => match &h.raw_body {
                Some(body) => edit::Step::Handshake { body: body.clone() },
                None => edit::Step::Hello(h.hello_edits()),
            },
            Step::Verify(v) => edit::Step::Verify {
                edit: v.edit.clone(),
                without: v.without.clone(),
            },
            Step::Freshness(c) => edit::Step::Freshness {
                count: c.count.unwrap_or(3),
            },
            Step::Call(c) => edit::Step::Call(c.language_call()),
            Step::Resend(r) => match &r.envelope {
                Some(envelope) => edit::Step::ResendSaved {
                    envelope: envelope.clone(),
                },
                None => edit::Step::Resend,
            },
            Step::Wait(w) => edit::Step::Wait(match w.seconds.as_deref() {
                Some("expiry") => Wait::Expiry,
                Some(n) => Wait::Seconds {
                    secs: n.parse().unwrap_or(1),
                },
                None => Wait::Seconds { secs: 1 },
            }),
            Step::Plain(p) => edit::Step::Plain {
                method: p.method.clone().unwrap_or_else(|| "GET".into()),
                path: p.path.clone().unwrap_or_else(|| "/health".into()),
                with_key: p.authorization.is_none(),
                body: p.body.clone().unwrap_or_default(),
                headers: p.headers.clone().unwrap_or_default(),
                authorization: p.authorization.clone().filter(|a| a != "none"),
                relay: p.relay,
            },
            Step::Flood(c) => edit::Step::Flood {
                extra: c.count.unwrap_or(8),
            },
            Step::Blind(_) => edit::Step::Blind,
            Step::CallAfterExpiry(e) => match e.relay {
                Some(relay) => edit::Step::CallAfterExpiryRelay { relay },
                None => edit::Step::CallAfterExpiry,
            },
        };
        LanguageStep {
            session: self.session(),
            step,
            expect: self.expect().cloned(),
        }
    }

    /// The file form of a step of the language on `session`, with
    /// `expect`: [`Step::to_language`] of the result gives them back.
    pub fn from_language(session: &str, step: &edit::Step, expect: Option<Expect>) -> Step {
        let named = (session != "main").then(|| session.to_owned());
        match step {
            edit::Step::Call(call) => Step::Call(Box::new(CallStep {
                session: named,
                inner: Some(call.inner.clone()),
                seq: call.seq,
                at: call.at,
                envelope: (!call.envelope.is_empty()).then(|| call.envelope.clone()),
                bytes: (!call.bytes.is_empty()).then(|| call.bytes.clone()),
                framing: (!call.framing.is_normal()).then(|| call.framing.clone()),
                wrong_direction: call.wrong_direction.then_some(true),
                seal_session: call.seal_with.clone(),
                relay: call.relay,
                save: call.save.clone(),
                expect,
                ..CallStep::default()
            })),
            edit::Step::Resend => Step::Resend(ResendStep {
                envelope: None,
                expect,
            }),
            edit::Step::ResendSaved { envelope } => Step::Resend(ResendStep {
                envelope: Some(envelope.clone()),
                expect,
            }),
            edit::Step::CallAfterExpiry => Step::CallAfterExpiry(ExpiryStep {
                session: named,
                relay: None,
                expect,
            }),
            edit::Step::CallAfterExpiryRelay { relay } => Step::CallAfterExpiry(ExpiryStep {
                session: named,
                relay: Some(*relay),
                expect,
            }),
            edit::Step::Handshake { body } => Step::Handshake(HandshakeStep {
                session: named,
                raw_body: Some(body.clone()),
                expect,
                ..HandshakeStep::default()
            }),
            edit::Step::Hello(h) => Step::Handshake(HandshakeStep {
                session: named,
                hello: (!h.edits.is_empty()).then(|| h.edits.clone()),
                shared: h.shared.then_some(true),
                expect,
                ..HandshakeStep::default()
            }),
            edit::Step::Plain {
                method,
                path,
                with_key,
                body,
                headers,
                authorization,
                relay,
            } => Step::Plain(PlainStep {
                method: Some(method.clone()),
                path: Some(path.clone()),
                authorization: authorization
                    .clone()
                    .or_else(|| (!with_key).then(|| "none".to_string())),
                headers: (!headers.is_empty()).then(|| headers.clone()),
                body: Some(body.clone()),
                relay: *relay,
                expect,
            }),
            edit::Step::Verify { edit, without } => Step::Verify(VerifyStep {
                session: named,
                edit: edit.clone(),
                without: without.clone(),
                expect,
            }),
            edit::Step::Freshness { count } => Step::Freshness(CountStep {
                count: Some(*count),
                expect,
            }),
            edit::Step::Wait(w) => Step::Wait(WaitStep {
                session: named,
                seconds: Some(match w {
                    Wait::Expiry => "expiry".to_string(),
                    Wait::Seconds { secs } => secs.to_string(),
                }),
                expect,
            }),
            edit::Step::Flood { extra } => Step::Flood(CountStep {
                count: Some(*extra),
                expect,
            }),
            edit::Step::Blind => Step::Blind(BlindStep { expect }),
        }
    }

    /// The step as a fuzz case's step: [`Step::to_language`] when it is in
    /// the part of the language the network fuzzer generates and runs (a
    /// call without the suite's inner fields, foreign seal, relay choice
    /// or saved name; a resend of the previous call; a call after expiry;
    /// a raw handshake body; a plaintext request with the key or
    /// `authorization = "none"` and no headers). `None` for the rest.
    pub fn edit_step(&self) -> Option<edit::Step> {
        let mut step = self.to_language().step;
        // A fuzz case's plaintext request always goes as a remote caller
        // (see `from_edit`): the relay choice is the file's, not the case's.
        if let edit::Step::Plain { relay, .. } = &mut step {
            *relay = None;
        }
        step.is_fuzz_step().then_some(step)
    }

    /// The step a fuzz case's `step` is, with `expect`. A hello goes on a
    /// session of its own (`probe`), so the main session stays honest; a
    /// plaintext request goes as a remote caller (the relay marker).
    pub fn from_edit(step: &edit::Step, expect: Option<Expect>) -> Step {
        match step {
            edit::Step::Handshake { .. } | edit::Step::Hello(_) => {
                Step::from_language("probe", step, expect)
            }
            edit::Step::Plain { relay: None, .. } => {
                let mut out = Step::from_language("main", step, expect);
                if let Step::Plain(p) = &mut out {
                    p.relay = Some(true);
                }
                out
            }
            _ => Step::from_language("main", step, expect),
        }
    }
}

/// A scenario step in the edit language: the session it acts on, the
/// step, and what must hold afterwards (`None`: an honest precondition).
#[derive(Debug, Clone, PartialEq)]
pub struct LanguageStep {
    /// The session name.
    pub session: String,
    /// The step.
    pub step: edit::Step,
    /// The expectation.
    pub expect: Option<Expect>,
}

impl HandshakeStep {
    /// The keys that edit the honest hello's fields this step sets (which
    /// do not go with `raw_body`).
    pub fn field_edit_keys(&self) -> Vec<&'static str> {
        [
            ("version", self.version.is_some()),
            ("agent_address", self.agent_address.is_some()),
            ("enc_pub", self.enc_pub.is_some()),
            ("nonce", self.nonce.is_some()),
            ("low_order", self.low_order.is_some()),
            ("hello", self.hello.is_some()),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| k)
        .collect()
    }

    /// The hello edits the keys say, in the order they apply: `v`,
    /// `agentAddress`, `encPub`, the low-order point, `nonce`, then
    /// `hello = [...]`. Only `version` is raw JSON (text that is not JSON
    /// goes as a string); the other short forms are always strings.
    pub fn hello_edits(&self) -> HelloEdits {
        let text = |field: &str, value: &Option<String>| {
            value.as_ref().map(|v| HelloEdit::Set {
                field: field.into(),
                json: serde_json::Value::from(v.clone()).to_string(),
            })
        };
        let mut edits: Vec<HelloEdit> = Vec::new();
        edits.extend(self.version.as_ref().map(|v| HelloEdit::Set {
            field: "v".into(),
            json: v.clone(),
        }));
        edits.extend(text("agentAddress", &self.agent_address));
        edits.extend(text("encPub", &self.enc_pub));
        edits.extend(self.low_order.map(|index| HelloEdit::LowOrder { index }));
        edits.extend(text("nonce", &self.nonce));
        edits.extend(self.hello.iter().flatten().cloned());
        HelloEdits {
            edits,
            shared: self.shared == Some(true),
        }
    }
}

impl CallStep {
    /// The envelope edits in order: the short forms (`flip`, `set`,
    /// `remove`) first, then `envelope = [...]`. A `set` value that is not
    /// JSON is set as a JSON string.
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
        out.extend(self.envelope.iter().flatten().cloned());
        out
    }

    /// The short forms of the inner request this call sets (which do not
    /// go with `inner`), in [`INNER_SHORT_FORMS`] order.
    pub fn inner_short_forms(&self) -> Vec<&'static str> {
        let set = [
            self.method.is_some(),
            self.path.is_some(),
            self.authorization.is_some(),
            self.headers.is_some(),
            self.body.is_some(),
            self.body_field.is_some(),
            self.accept.is_some(),
            self.content_type.is_some(),
            self.plaintext.is_some(),
            self.canary.is_some(),
        ];
        INNER_SHORT_FORMS
            .iter()
            .zip(set)
            .filter(|(_, on)| *on)
            .map(|(k, _)| *k)
            .collect()
    }

    /// What is sealed, in the language's form: `inner`, or the short forms
    /// mapped onto it (the same plaintext bytes). `None` when a short form
    /// says what the language cannot (inner headers, `accept`, a canary, a
    /// content type of its own, a raw `body_field`, a placeholder outside
    /// the path); the suite seals those itself.
    pub fn language_inner(&self) -> Option<Inner> {
        if let Some(inner) = &self.inner {
            return Some(inner.clone());
        }
        let placeholder = |t: &Option<String>| t.as_deref().is_some_and(|t| t.contains('{'));
        if self.headers.is_some()
            || self.accept.is_some()
            || self.canary.is_some()
            || self.content_type.is_some()
            || placeholder(&self.body)
            || placeholder(&self.plaintext)
        {
            return None;
        }
        if let Some(text) = &self.plaintext {
            let others = self.method.is_some()
                || self.path.is_some()
                || self.authorization.is_some()
                || self.body.is_some()
                || self.body_field.is_some();
            return (!others).then(|| Inner::Plaintext { text: text.clone() });
        }
        let auth = match self.authorization.as_deref() {
            None => Auth::Key,
            Some("none") => Auth::None,
            Some(t) if t.contains('{') => return None,
            Some(t) => Auth::Text(t.to_owned()),
        };
        // A raw `body_field` goes without a content type; the language
        // gives every body one.
        if self.body_field.is_some() {
            return None;
        }
        let body = self.body.as_ref().map(|t| b64url_encode(t.as_bytes()));
        Some(Inner::Request {
            method: self.method.clone().unwrap_or_else(|| "GET".into()),
            path: self.path.clone().unwrap_or_else(|| "/health".into()),
            auth,
            body,
        })
    }

    /// What is sealed, in the suite's fuller form: every short form as it
    /// stands (placeholders expand in every text).
    pub fn custom_inner(&self) -> InnerSpec {
        InnerSpec {
            method: self.method.clone().unwrap_or_else(|| "GET".into()),
            path: self.path.clone().unwrap_or_else(|| "/health".into()),
            auth: match self.authorization.as_deref() {
                None => Auth::Key,
                Some("none") => Auth::None,
                Some(t) => Auth::Text(t.to_owned()),
            },
            headers: self.headers.clone().unwrap_or_default(),
            body: self.body.clone(),
            body_field: self.body_field.clone(),
            accept: self.accept.clone(),
            content_type: self.content_type.clone(),
            canary: self.canary == Some(true),
            plaintext: self.plaintext.clone(),
        }
    }

    /// This call in the language: its inner request (the short forms
    /// mapped onto the fuzzer's form when that says the same bytes, else
    /// [`Inner::Custom`]), seq, envelope edits (short forms first), byte
    /// edits, framing, foreign seal, relay choice and saved name.
    pub fn language_call(&self) -> edit::CallStep {
        edit::CallStep {
            inner: self
                .language_inner()
                .unwrap_or_else(|| Inner::Custom(Box::new(self.custom_inner()))),
            seq: self.seq,
            at: self.at,
            envelope: self.envelope_edits(),
            bytes: self.bytes.clone().unwrap_or_default(),
            framing: self.framing.clone().unwrap_or_default(),
            wrong_direction: self.wrong_direction == Some(true),
            seal_with: self.seal_session.clone(),
            relay: self.relay,
            save: self.save.clone(),
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

/// Writes a seq as [`seq_number_or_text`] reads it: text beyond TOML's
/// integer range.
fn seq_as_number_or_text<S: Serializer>(seq: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match seq {
        Some(n) if i64::try_from(*n).is_ok() => s.serialize_u64(*n),
        Some(n) => s.serialize_str(&n.to_string()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::registry::Registry;

    #[test]
    fn a_written_scenario_loads_back_as_written() {
        let call = edit::Step::Call(edit::CallStep {
            inner: Inner::Request {
                method: "GET".into(),
                path: "/agents/{agent}".into(),
                auth: Auth::Key,
                body: None,
            },
            seq: Some(u64::MAX),
            at: None,
            envelope: vec![EnvelopeEdit::FlipTag],
            bytes: vec![ByteEdit::Truncate { keep: 3 }],
            framing: Framing::Chunked { size: 7 },
            wrong_direction: true,
            seal_with: None,
            relay: None,
            save: None,
        });
        let plain = edit::Step::Plain {
            method: "POST".into(),
            path: "/agents/{agent}/run".into(),
            with_key: false,
            body: "{}".into(),
            headers: Default::default(),
            authorization: None,
            relay: None,
        };
        let scenario = Scenario {
            id: "fuzz-written".into(),
            title: "written".into(),
            category: "tamper".into(),
            level: Level::Must,
            requirements: vec!["CALL-2".into()],
            catches: Vec::new(),
            exclusive: false,
            needs: Vec::new(),
            steps: vec![
                Step::Handshake(HandshakeStep::default()),
                Step::from_edit(
                    &call,
                    Some(Expect {
                        status: Some(400),
                        alive: Some(true),
                        ..Expect::default()
                    }),
                ),
                Step::from_edit(&edit::Step::Resend, None),
                Step::from_edit(
                    &edit::Step::Handshake {
                        body: "{\"v\":1}".into(),
                    },
                    Some(Expect {
                        documented: Some(true),
                        ..Expect::default()
                    }),
                ),
                Step::from_edit(&plain, None),
            ],
        };
        let text = scenario.to_toml(&["from a finding".into()]).unwrap();
        let loaded = super::super::loader::parse_scenario("w.toml", &text, &Registry::builtin())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(loaded.steps, scenario.steps, "{text}");
        assert_eq!(loaded.steps[1].edit_step(), Some(call), "{text}");
        assert_eq!(loaded.steps[1].expect().unwrap().status, Some(400));
        assert_eq!(loaded.steps[2].edit_step(), Some(edit::Step::Resend));
        assert_eq!(loaded.steps[4].edit_step(), Some(plain));
    }
}
