//! A scenario as `replay --to-scenario` writes it: a serde form of the
//! scenario file that a fuzzer finding fills (each step in the edit
//! language with the expectation the judge will hold it to), written with
//! the TOML serializer, so the file is exactly what the loader reads back.

use serde::{Serialize, Serializer};

use crate::judge::Expect;
use crate::peer::edit::{self, ByteEdit, EnvelopeEdit, Framing, Inner, SeqAt};
use crate::report::Level;

/// A scenario file to write.
#[derive(Debug, Clone, Serialize)]
pub struct WrittenScenario {
    /// Unique ID (kebab-case).
    pub id: String,
    /// One-line title.
    pub title: String,
    /// Category.
    pub category: String,
    /// The level it is judged at.
    pub level: Level,
    /// Requirement IDs.
    pub requirements: Vec<String>,
    /// The steps, in order.
    #[serde(rename = "step")]
    pub steps: Vec<WrittenStep>,
}

/// One step as written: `do` and the keys of the scenario language that
/// apply to it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WrittenStep {
    /// The action (`do`).
    #[serde(rename = "do")]
    pub action: &'static str,
    /// The session name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// `handshake`: the whole ClientHello body, as is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<String>,
    /// `plain`: the method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `plain`: the path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `plain`: `none` leaves the key out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// `plain`: the body text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `plain`: the relay marker (a remote caller).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<bool>,
    /// `call`: what is sealed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner: Option<Inner>,
    /// `call`: the seq; written as text beyond TOML's integer range.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "seq_number_or_text"
    )]
    pub seq: Option<u64>,
    /// `call`: a relative seq.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<SeqAt>,
    /// `call`: envelope edits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envelope: Option<Vec<EnvelopeEdit>>,
    /// `call`: byte edits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Vec<ByteEdit>>,
    /// `call`: the framing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub framing: Option<Framing>,
    /// What must hold afterwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
}

fn seq_number_or_text<S: Serializer>(seq: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match seq {
        Some(n) if i64::try_from(*n).is_ok() => s.serialize_u64(*n),
        Some(n) => s.serialize_str(&n.to_string()),
        None => s.serialize_none(),
    }
}

impl WrittenStep {
    /// An honest handshake of the main session (a precondition).
    pub fn honest_handshake() -> Self {
        WrittenStep {
            action: "handshake",
            ..WrittenStep::default()
        }
    }

    /// A step of the edit language with its expectation. A hello is sent
    /// on a session of its own (`probe`), so the main session stays
    /// honest; a plaintext request goes as a remote caller.
    pub fn from_edit(step: &edit::Step, expect: Option<Expect>) -> Self {
        let base = WrittenStep {
            expect,
            ..WrittenStep::default()
        };
        match step {
            edit::Step::Call(call) => WrittenStep {
                action: "call",
                inner: Some(call.inner.clone()),
                seq: call.seq,
                at: call.at,
                envelope: (!call.envelope.is_empty()).then(|| call.envelope.clone()),
                bytes: (!call.bytes.is_empty()).then(|| call.bytes.clone()),
                framing: (!call.framing.is_normal()).then(|| call.framing.clone()),
                ..base
            },
            edit::Step::Resend => WrittenStep {
                action: "resend",
                ..base
            },
            edit::Step::CallAfterExpiry => WrittenStep {
                action: "call-after-expiry",
                ..base
            },
            edit::Step::Handshake { body } => WrittenStep {
                action: "handshake",
                session: Some("probe".into()),
                raw_body: Some(body.clone()),
                ..base
            },
            edit::Step::Plain {
                method,
                path,
                with_key,
                body,
            } => WrittenStep {
                action: "plain",
                method: Some(method.clone()),
                path: Some(path.clone()),
                authorization: (!with_key).then(|| "none".to_string()),
                body: Some(body.clone()),
                relay: Some(true),
                ..base
            },
        }
    }
}

impl WrittenScenario {
    /// The file text: `comments` (one `# ` line each), then the TOML.
    pub fn to_toml(&self, comments: &[String]) -> Result<String, toml::ser::Error> {
        let mut out: String = comments
            .iter()
            .map(|c| format!("# {}\n", c.replace(['\n', '\r'], " ")))
            .collect();
        out.push_str(&toml::to_string(self)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::edit::{Auth, CallStep};

    #[test]
    fn a_written_scenario_loads_back_as_written() {
        let call = edit::Step::Call(CallStep {
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
            wrong_direction: false,
        });
        let plain = edit::Step::Plain {
            method: "POST".into(),
            path: "/agents/{agent}/run".into(),
            with_key: false,
            body: "{}".into(),
        };
        let scenario = WrittenScenario {
            id: "fuzz-written".into(),
            title: "written".into(),
            category: "tamper".into(),
            level: Level::Must,
            requirements: vec!["CALL-2".into()],
            steps: vec![
                WrittenStep::honest_handshake(),
                WrittenStep::from_edit(
                    &call,
                    Some(Expect {
                        status: Some(400),
                        alive: Some(true),
                        ..Expect::default()
                    }),
                ),
                WrittenStep::from_edit(&edit::Step::Resend, None),
                WrittenStep::from_edit(
                    &edit::Step::Handshake {
                        body: "{\"v\":1}".into(),
                    },
                    Some(Expect {
                        documented: Some(true),
                        ..Expect::default()
                    }),
                ),
                WrittenStep::from_edit(&plain, None),
            ],
        };
        let text = scenario.to_toml(&["from a finding".into()]).unwrap();
        let registry = crate::report::registry::Registry::builtin();
        let loaded = super::super::loader::parse_scenario("w.toml", &text, &registry)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(loaded.steps.len(), 5);
        assert_eq!(loaded.steps[1].edit_step(), Some(call), "{text}");
        assert_eq!(loaded.steps[1].expect.as_ref().unwrap().status, Some(400));
        assert_eq!(loaded.steps[2].edit_step(), Some(edit::Step::Resend));
        assert_eq!(loaded.steps[4].edit_step(), Some(plain));
    }
}
