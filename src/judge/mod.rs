//! The one judge: pure functions from a step's expectation and the
//! [`Answer`] the engine brought back to findings. Each [`Finding`] carries
//! the requirement it breaks, that requirement's level, and what was
//! expected against what came (as a verifier reports expected vs actual).
//!
//! Files go by protocol area, not by command: [`handshake`] (the
//! ServerHello: signature, expiry, freshness), [`refusal`] (outer status
//! and the documented error bodies), [`response`] (frames, order, fin,
//! keys, the inner response), [`encoding`] (what the target emitted,
//! encoding by encoding), [`gate`] (what crosses the outer connection in
//! clear), [`order`] (the refusal the order of a target's checks fixes for
//! an input). [`expect`] is the expectation a step is judged against;
//! [`allowed`] the fuzzer's looser one (accept, refuse or either). [`check`]
//! is the table of checks with their requirement and level, which the
//! fuzzer's findings are filed under and `docs/FUZZING.md` shows. Every
//! command that judges an answer calls these; none judges with its own code.
//!
//! [`Answer`]: crate::peer::Answer

pub mod allowed;
pub mod check;
pub mod encoding;
pub mod expect;
pub mod gate;
pub mod handshake;
pub mod order;
pub mod refusal;
pub mod response;

pub use expect::Expect;

use crate::report::Level;

/// One requirement an answer broke: which, at what level, what was
/// expected and what came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The requirement ID(s) broken (`docs/PROTOCOL.md`), e.g. `ENC-1` or
    /// `CALL-4, CALL-5`.
    pub requirement: String,
    /// The level of that requirement.
    pub level: Level,
    /// What the protocol (or the step's expectation) requires.
    pub expected: String,
    /// What came back, in words.
    pub actual: String,
    /// The step was an honest precondition, not the subject being judged:
    /// the finding says the judgement could not be made, not that the
    /// target broke the requirement.
    pub precondition: bool,
}

/// The requirement a step's expectations stand for: a scenario's own IDs
/// and level, or a fuzz case's oracle row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Requirement IDs, joined with `, `.
    pub requirement: String,
    /// Their level.
    pub level: Level,
}

impl Claim {
    /// A claim on `requirement` at `level`.
    pub fn new(requirement: impl Into<String>, level: Level) -> Self {
        Claim {
            requirement: requirement.into(),
            level,
        }
    }

    /// A finding against this claim.
    pub fn miss(&self, actual: impl Into<String>, expected: impl Into<String>) -> Finding {
        Finding {
            requirement: self.requirement.clone(),
            level: self.level,
            expected: expected.into(),
            actual: actual.into(),
            precondition: false,
        }
    }

    /// A failed honest precondition under this claim.
    pub fn unmet(&self, actual: impl Into<String>, expected: impl Into<String>) -> Finding {
        Finding {
            precondition: true,
            ..self.miss(actual, expected)
        }
    }
}

/// The result of one check: nothing broken, or the first finding.
pub type Checked = Result<(), Finding>;

/// `text` cut to at most `max` bytes on a character boundary, with the
/// full length noted when it was cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let cut = crate::text::char_prefix(text, max);
    format!("{cut}…({} bytes)", text.len())
}
