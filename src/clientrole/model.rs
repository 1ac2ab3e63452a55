//! The client-role scenario model: a `scenarios/client/*.toml` file with
//! `role = "client"`. The adversary is the reference server with some
//! `--bug` knobs plus the relay with some attacks; the judgement is the
//! client's exit status and what the relay saw it do.

use serde::Deserialize;

use crate::client::ClientBug;
use crate::mitm::Attack;
use crate::report::Level;
use crate::server::Bug;

/// How the shim's call is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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

/// The expectation of a client scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Complete or refuse.
    pub outcome: Behaviour,
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
        for c in &s.catches {
            ClientBug::from_name(c).ok_or_else(|| invalid(format!("unknown client bug {c:?}")))?;
        }
        Ok(s)
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
