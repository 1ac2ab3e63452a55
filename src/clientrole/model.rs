//! The client-role scenario model: a `scenarios/client/*.toml` file with
//! `role = "client"`. The adversary is the reference server with some
//! `--bug` knobs plus the relay with some attacks; the judgement is the
//! client's exit status and what the relay saw it do.

use std::fmt::Write as _;

use serde::Deserialize;

use crate::client::ClientBug;
use crate::mitm::Attack;
use crate::report::Level;
use crate::server::Bug;

/// How the shim's call is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `GET /health`, one sealed response frame.
    Buffered,
    /// `POST /agents/{id}/dispatch` with `Accept: text/event-stream`.
    Stream,
}

impl Mode {
    /// The word put in `{mode}`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Buffered => "buffered",
            Mode::Stream => "stream",
        }
    }
}

/// What the client must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Behaviour {
    /// Exit 0: the call completed.
    Complete,
    /// Exit non-zero (not 89): the client detected the problem and stopped.
    Refuse,
}

/// Why a client refused: the class a scenario's fault belongs to, and the
/// word a shim may print on its last line as `osc-refusal: <class>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefusalClass {
    /// The ServerHello does not prove the pinned agent: signer, domain,
    /// signed fields, version, key.
    Identity,
    /// The response ended before an authenticated `fin`.
    Truncation,
    /// The frames do not open in sequence under the call's key: swapped,
    /// duplicated, after `fin`, sealed under another key or for another call.
    Order,
    /// The session's `expiresAt` has passed.
    Expiry,
    /// A plaintext answer stands where a sealed one belongs.
    Downgrade,
    /// The HTTP exchange itself ended the call: a refusal status that may
    /// not be retried (again), or a body past the client's limits.
    Transport,
}

impl RefusalClass {
    /// Every class, in documentation order.
    pub const ALL: &'static [RefusalClass] = &[
        RefusalClass::Identity,
        RefusalClass::Truncation,
        RefusalClass::Order,
        RefusalClass::Expiry,
        RefusalClass::Downgrade,
        RefusalClass::Transport,
    ];

    /// The word of `osc-refusal: <class>`.
    pub fn name(self) -> &'static str {
        match self {
            RefusalClass::Identity => "identity",
            RefusalClass::Truncation => "truncation",
            RefusalClass::Order => "order",
            RefusalClass::Expiry => "expiry",
            RefusalClass::Downgrade => "downgrade",
            RefusalClass::Transport => "transport",
        }
    }

    /// The class named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// Whether the fault is in the ServerHello, so a refusal counts only
    /// once a hello reached the client and before any call on it.
    pub fn at_handshake(self) -> bool {
        matches!(self, RefusalClass::Identity | RefusalClass::Expiry)
    }
}

/// The expectation of a client scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Complete or refuse.
    pub outcome: Behaviour,
    /// Why the client refuses (required with `outcome = "refuse"`, not
    /// allowed otherwise): what an `osc-refusal:` line must name.
    #[serde(default)]
    pub refusal: Option<RefusalClass>,
    /// The most `/secure/call` requests allowed.
    #[serde(default)]
    pub max_calls: Option<u64>,
    /// The fewest `/secure/call` requests required.
    #[serde(default)]
    pub min_calls: Option<u64>,
    /// The most handshakes allowed.
    #[serde(default)]
    pub max_handshakes: Option<u64>,
    /// The fewest handshakes required.
    #[serde(default)]
    pub min_handshakes: Option<u64>,
}

/// One client-role scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientScenario {
    /// Unique ID.
    pub id: String,
    /// One-line title.
    pub title: String,
    /// Always `client`.
    pub role: String,
    /// Category (identity, truncation, framing, sessions, downgrade, hostile, baseline).
    pub category: String,
    /// The level the scenario is judged at.
    pub level: Level,
    /// Requirement IDs from `docs/PROTOCOL.md`.
    pub requirements: Vec<String>,
    /// Reference-client `call --bug` knobs this scenario exists to catch.
    #[serde(default)]
    pub catches: Vec<String>,
    /// Buffered or stream.
    pub mode: Mode,
    /// How many calls the shim makes over one channel (`{calls}`). More
    /// than one needs a shim that takes the `{calls}` placeholder.
    #[serde(default = "one_call")]
    pub calls: u64,
    /// Reference-server knobs of the adversary.
    #[serde(default)]
    pub server_bugs: Vec<String>,
    /// Relay attacks of the adversary.
    #[serde(default)]
    pub attacks: Vec<String>,
    /// What the client must do.
    pub expect: Expect,
}

fn one_call() -> u64 {
    1
}

/// The most calls a scenario may ask a shim for.
pub const MAX_CALLS: u64 = 16;

/// Why a scenario file is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Not valid TOML for the model.
    #[error("{file}: {source}")]
    Parse {
        /// The file.
        file: String,
        /// The parser's reason.
        source: toml::de::Error,
    },
    /// A name that is not a knob, attack or role.
    #[error("{file}: {what}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        what: String,
    },
}

impl ClientScenario {
    /// Parses and validates one file.
    pub fn parse(file: &str, text: &str) -> Result<Self, ModelError> {
        let s: ClientScenario = toml::from_str(text).map_err(|source| ModelError::Parse {
            file: file.to_string(),
            source,
        })?;
        let invalid = |what: String| ModelError::Invalid {
            file: file.to_string(),
            what,
        };
        if s.role != "client" {
            return Err(invalid(format!("role is {:?}, not \"client\"", s.role)));
        }
        for b in &s.server_bugs {
            Bug::from_name(b).ok_or_else(|| invalid(format!("unknown server bug {b:?}")))?;
        }
        for a in &s.attacks {
            Attack::from_name(a).ok_or_else(|| invalid(format!("unknown attack {a:?}")))?;
        }
        if !(1..=MAX_CALLS).contains(&s.calls) {
            return Err(invalid(format!(
                "calls is {}, not between 1 and {MAX_CALLS}",
                s.calls
            )));
        }
        match (s.expect.outcome, s.expect.refusal) {
            (Behaviour::Refuse, None) => {
                return Err(invalid("a refusal needs expect.refusal (its class)".into()))
            }
            (Behaviour::Complete, Some(_)) => {
                return Err(invalid(
                    "expect.refusal is for outcome = \"refuse\" only".into(),
                ))
            }
            _ => {}
        }
        for c in &s.catches {
            ClientBug::from_name(c).ok_or_else(|| invalid(format!("unknown client bug {c:?}")))?;
        }
        Ok(s)
    }

    /// Whether this is an honest baseline: an honest server behind an
    /// honest relay, which the client must complete. A refusal in the
    /// same mode counts only once its baseline passed.
    pub fn is_baseline(&self) -> bool {
        self.category == "baseline"
    }

    /// The server knobs (validated by [`ClientScenario::parse`]).
    pub fn bugs(&self) -> Vec<Bug> {
        self.server_bugs
            .iter()
            .filter_map(|b| Bug::from_name(b))
            .collect()
    }

    /// The relay attacks (validated by [`ClientScenario::parse`]).
    pub fn attack_set(&self) -> std::collections::BTreeSet<Attack> {
        self.attacks
            .iter()
            .filter_map(|a| Attack::from_name(a))
            .collect()
    }
}

include!("files.rs");

/// The built-in client scenarios, in ID order.
pub fn builtin() -> Result<Vec<ClientScenario>, ModelError> {
    let mut all = FILES
        .iter()
        .map(|(name, text)| ClientScenario::parse(name, text))
        .collect::<Result<Vec<_>, _>>()?;
    all.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(all)
}

/// The markers around the generated scenario table of `docs/CLIENT-SHIM.md`.
pub const SHIM_TABLE_MARKERS: (&str, &str) = (
    "<!-- client scenario table: generated from scenarios/client -->",
    "<!-- end of client scenario table -->",
);

/// The generated part of `docs/CLIENT-SHIM.md`: the counts by level and
/// outcome, then one row per built-in scenario with its mode, what the
/// client must do and the refusal class an `osc-refusal:` line must name.
pub fn shim_table(scenarios: &[ClientScenario]) -> String {
    let count = |f: &dyn Fn(&ClientScenario) -> bool| scenarios.iter().filter(|s| f(s)).count();
    let mut out = format!(
        "{} client scenarios: {} MUST, {} SHOULD, {} UPSTREAM; {} where the client must \
         complete the call ({} of them honest baselines), {} where it must refuse.\n\n",
        scenarios.len(),
        count(&|s| s.level == Level::Must),
        count(&|s| s.level == Level::Should),
        count(&|s| s.level == Level::Upstream),
        count(&|s| s.expect.outcome == Behaviour::Complete),
        count(&|s| s.is_baseline()),
        count(&|s| s.expect.outcome == Behaviour::Refuse),
    );
    out.push_str("| scenario | level | requirements | mode | the client must | refusal class |\n");
    out.push_str("|----------|-------|--------------|------|-----------------|---------------|\n");
    for s in scenarios {
        let (must, class) = match (s.expect.outcome, s.expect.refusal) {
            (Behaviour::Complete, _) => ("complete", "".to_string()),
            (Behaviour::Refuse, c) => ("refuse", c.map_or("", |c| c.name()).to_string()),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {must} | {} |",
            s.id,
            s.level.name(),
            s.requirements.join(", "),
            s.mode.name(),
            if class.is_empty() {
                "".into()
            } else {
                format!("`{class}`")
            }
        );
    }
    out
}

/// `doc` with the text between [`SHIM_TABLE_MARKERS`] replaced by
/// [`shim_table`] of the built-in scenarios; `None` when a marker is
/// missing or the scenarios do not load.
pub fn with_shim_table(doc: &str) -> Option<String> {
    let start = doc.find(SHIM_TABLE_MARKERS.0)? + SHIM_TABLE_MARKERS.0.len();
    let end = start + doc[start..].find(SHIM_TABLE_MARKERS.1)?;
    let scenarios = builtin().ok()?;
    Some(format!(
        "{}\n{}{}",
        &doc[..start],
        shim_table(&scenarios),
        &doc[end..]
    ))
}
