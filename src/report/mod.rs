//! Reports: terminal text, JSON, JUnit XML and HTML.
//!
//! The runner produces one [`RunReport`]; each renderer here turns it into
//! one format without running anything, so snapshot tests can feed them a
//! fixed report.

mod args;
pub mod expect;
pub mod html;
mod json;
mod junit;
pub mod kill;
pub mod registry;
mod text;

pub use args::{write_reports, Format, ReportArgs};
pub use html::{render_html, Catalogue};
pub use json::{render_json, JSON_SCHEMA_ID};
pub use junit::render_junit;
pub use text::{exchange_lines, render_text, TextOptions};

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// How a miss is judged (PROTOCOL.md §0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Level {
    /// A miss fails.
    #[serde(rename = "MUST")]
    Must,
    /// A miss warns.
    #[serde(rename = "SHOULD")]
    Should,
    /// A difference is information.
    #[serde(rename = "UPSTREAM")]
    Upstream,
}

impl Level {
    /// The level as written in the protocol document.
    pub fn name(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::Upstream => "UPSTREAM",
        }
    }
}

/// The outcome of one scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every expectation held.
    Pass,
    /// A MUST requirement does not hold.
    Fail,
    /// A SHOULD requirement does not hold.
    Warn,
    /// An UPSTREAM behaviour differs (information only).
    Info,
    /// Not run, with a reason.
    Skip,
}

impl Verdict {
    /// The word printed in the text report (failures shout).
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Warn => "warn",
            Verdict::Info => "info",
            Verdict::Skip => "skip",
        }
    }
}

/// One outer HTTP exchange of a scenario, with the plaintext it carried.
/// Secrets are redacted before an exchange is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Exchange {
    /// The step (0-based) that made the exchange.
    pub step: usize,
    /// What the step was doing, e.g. `handshake` or `call`.
    pub action: String,
    /// `METHOD /path` of the outer request.
    pub request_line: String,
    /// The outer request body (text, truncated).
    pub request_body: String,
    /// The inner request plaintext the outer request carried, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner_request: Option<String>,
    /// The outer response status (0 when none arrived).
    pub status: u16,
    /// The outer response body (text, truncated).
    pub response_body: String,
    /// The decrypted inner response, if one opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner_response: Option<String>,
    /// What an adversary changed in this exchange, or other context the
    /// bytes alone do not show (client-role transcripts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The result of one scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScenarioResult {
    /// Scenario ID.
    pub id: String,
    /// One-line title.
    pub title: String,
    /// Category (adversary or area).
    pub category: String,
    /// `MUST`, `SHOULD` or `UPSTREAM`.
    pub level: String,
    /// Requirement IDs the scenario checks.
    pub requirements: Vec<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why it did not pass, or why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What was expected, for a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// A command that reruns only this scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repro: Option<String>,
    /// True when the failure happened in an honest preparatory step rather
    /// than in the step the scenario exists for.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub precondition: bool,
    /// True when `--expect` lists this failure as known.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub known: bool,
    /// Milliseconds the scenario took (0 in snapshot mode).
    pub duration_ms: u64,
    /// The HTTP exchanges with the plaintext they carried, secrets
    /// redacted (the report key stays `transcript`).
    pub transcript: Vec<Exchange>,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// The target URL (or `self`).
    pub target: String,
    /// Set when the target's TLS certificate was not verified (`--insecure`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// Milliseconds the run took (0 in snapshot mode).
    pub duration_ms: u64,
    /// Every scenario, in suite order.
    pub scenarios: Vec<ScenarioResult>,
    /// Requirement IDs the run answers for that no scenario exercised
    /// (see [`exercised`]): for `test` every requirement of the protocol
    /// document, for `test-client` those the client suite checks. With
    /// the exercised ones they make the scope of [`RunReport::must_coverage`].
    pub not_exercised: Vec<String>,
    /// Problems with the run itself (e.g. `--expect` entries), each a sentence.
    pub run_problems: Vec<String>,
}

/// How many of the MUST requirements a run answers for it exercised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MustCoverage {
    /// MUST requirements some scenario exercised.
    pub exercised: usize,
    /// MUST requirements the run answers for.
    pub total: usize,
    /// The MUST requirements it left unexercised, in document order.
    pub not_exercised: Vec<String>,
}

impl MustCoverage {
    /// The sentence every report prints: `MUST requirements exercised: N of M`.
    pub fn headline(&self) -> String {
        format!(
            "MUST requirements exercised: {} of {}",
            self.exercised, self.total
        )
    }
}

/// The requirement IDs the scenarios of a run exercised: those of every
/// scenario that reached the step it exists for. A skipped scenario, or
/// one that failed in an honest preparatory step, exercised nothing.
pub fn exercised(scenarios: &[ScenarioResult]) -> BTreeSet<&str> {
    scenarios
        .iter()
        .filter(|s| s.verdict != Verdict::Skip && !s.precondition)
        .flat_map(|s| s.requirements.iter().map(String::as_str))
        .collect()
}

/// The requirements of `scope` (in its order) that the scenarios did not
/// exercise: the value of [`RunReport::not_exercised`].
pub fn not_exercised<'a>(
    scenarios: &[ScenarioResult],
    scope: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let done = exercised(scenarios);
    scope
        .into_iter()
        .filter(|id| !done.contains(id))
        .map(str::to_owned)
        .collect()
}

/// Counts of each verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Passed.
    pub pass: usize,
    /// MUST failures.
    pub fail: usize,
    /// SHOULD misses.
    pub warn: usize,
    /// UPSTREAM differences.
    pub info: usize,
    /// Skipped.
    pub skip: usize,
}

impl RunReport {
    /// Verdict counts.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for s in &self.scenarios {
            match s.verdict {
                Verdict::Pass => c.pass += 1,
                Verdict::Fail => c.fail += 1,
                Verdict::Warn => c.warn += 1,
                Verdict::Info => c.info += 1,
                Verdict::Skip => c.skip += 1,
            }
        }
        c
    }

    /// MUST coverage: the scope is every MUST requirement (levels from the
    /// protocol document) that the run exercised or lists in
    /// [`RunReport::not_exercised`].
    pub fn must_coverage(&self) -> MustCoverage {
        let registry = registry::Registry::builtin();
        let done = exercised(&self.scenarios);
        let mut cov = MustCoverage::default();
        for r in registry.requirements.iter().filter(|r| r.level == "MUST") {
            if done.contains(r.id.as_str()) {
                cov.exercised += 1;
                cov.total += 1;
            } else if self.not_exercised.contains(&r.id) {
                cov.total += 1;
                cov.not_exercised.push(r.id.clone());
            }
        }
        cov
    }

    /// The exit code of `test`: 1 when a MUST failed (known failures
    /// excepted) or the run has problems; with `strict`, warnings,
    /// information and an unexercised MUST requirement count too.
    pub fn exit_code(&self, strict: bool) -> u8 {
        let bad = self.scenarios.iter().any(|s| {
            !s.known
                && match s.verdict {
                    Verdict::Fail => true,
                    Verdict::Warn | Verdict::Info => strict,
                    Verdict::Pass | Verdict::Skip => false,
                }
        });
        let uncovered = strict && !self.must_coverage().not_exercised.is_empty();
        u8::from(bad || uncovered || !self.run_problems.is_empty())
    }
}
