//! Turns a finding into a scenario, so it becomes a permanent regression
//! case of `osc-harness test --scenarios DIR` (`replay --to-scenario`
//! writes it through the scenario model's serde form).
//!
//! The scenario language speaks the fuzz cases' steps and edits
//! ([`crate::peer::edit`]), so every step of a finding is written as it
//! stands. Each step's `expect` comes from the oracles: the answer the
//! protocol fixes for the input when it fixes one (so the scenario fails
//! on the server that produced the finding and passes once it is fixed),
//! else a live, documented answer.

use crate::judge::Expect;
use crate::peer::edit::{CallStep, SeqCursor};
use crate::protocol::session::ReplayWindow;
use crate::report::Level;

use super::case::{Finding, Signature, Step};
use super::oracle::{fixed_answer, judged_signature, Oracle};

/// The scenario a finding becomes, in the edit language: the file's
/// header, its comment lines, and each step of the finding with the
/// expectation the oracles give it. The scenario room turns it into a
/// scenario file (`scenarios::model::Scenario::of_edits`), whose serde form
/// `replay --to-scenario` writes.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingScenario {
    /// Unique ID (`fuzz-ORACLE-LAYER-FIELD`).
    pub id: String,
    /// One-line title.
    pub title: String,
    /// Category.
    pub category: String,
    /// The level it is judged at.
    pub level: Level,
    /// The requirement it checks.
    pub requirement: String,
    /// Where it came from, one line each.
    pub comments: Vec<String>,
    /// Each step of the finding with its expectation.
    pub steps: Vec<(Step, Expect)>,
}

/// The requirement a signature is about (docs/PROTOCOL.md IDs) and the
/// scenario category it belongs to.
pub fn requirement_of(s: &Signature) -> (&'static str, &'static str) {
    match (s.layer.as_str(), s.field.as_str()) {
        ("stateful", "replay") => ("CALL-3", "replay"),
        ("stateful", "expired") => ("SES-1", "expiry"),
        ("stateful", _) => ("CALL-1", "replay"),
        ("plaintext", _) => ("GATE-1", "downgrade"),
        ("inner", "path-nesting") => ("CALL-8", "inside"),
        ("inner", "authorization") => ("CALL-6", "inside"),
        ("inner", _) => ("CALL-2", "inside"),
        ("envelope", "direction") => ("CALL-5", "replay"),
        ("valid", _) if s.oracle == Oracle::UndocumentedBody.name() => ("RESP-2", "inside"),
        _ => ("CALL-2", "tamper"),
    }
}

/// The seq a call is sealed with, as the fuzzer's executor picks it, and
/// whether an honest target's window takes it.
struct Simulated {
    cursor: SeqCursor,
    window: ReplayWindow,
}

impl Simulated {
    fn seq(&mut self, call: &CallStep) -> u64 {
        if let Some(at) = call.at {
            return self.cursor.relative(at);
        }
        let seq = call.seq.unwrap_or_else(|| {
            self.cursor.next += 1;
            self.cursor.next - 1
        });
        self.cursor.last = seq;
        seq
    }
}

/// The answer the protocol fixes for each step, as (outer status, inner
/// status), walking the steps as an honest target would answer them.
fn fixed_answers(steps: &[Step]) -> Vec<Option<(u16, Option<u16>)>> {
    let mut sim = Simulated {
        cursor: SeqCursor::default(),
        window: ReplayWindow::new(),
    };
    let mut prev_accepted = false;
    let mut out = Vec::new();
    for step in steps {
        let answer = match step {
            Step::Call(call) => {
                let seq = sim.seq(call);
                let fresh = sim.window.would_accept(seq);
                let plain = call.framing.is_normal()
                    && call.bytes.is_empty()
                    && call.envelope.is_empty()
                    && !call.wrong_direction;
                // A refusal the check order fixes, whatever the window
                // holds (the AEAD check comes before the replay window).
                let ordered = crate::judge::order::call_refusal(call).map(|f| (f.status, None));
                let answer = match call.at {
                    _ if ordered.is_some() => ordered,
                    Some(_) if plain && !fresh => Some((409, None)),
                    Some(_) if fresh => fixed_answer(
                        &Step::Call(CallStep {
                            at: None,
                            ..call.clone()
                        }),
                        false,
                    ),
                    Some(_) => None,
                    None => fixed_answer(step, prev_accepted),
                };
                if answer.is_some_and(|a| a.0 == 200) {
                    sim.window.mark(seq);
                }
                answer
            }
            Step::CallAfterExpiry => Some((401, None)),
            _ => fixed_answer(step, prev_accepted),
        };
        prev_accepted = answer.is_some_and(|a| a.0 == 200);
        out.push(answer);
    }
    out
}

/// The scenario `finding` becomes: each step in the edit language with
/// the `expect` the oracles give it (the scenario opens with one honest
/// handshake before them).
pub fn scenario(finding: &Finding) -> FindingScenario {
    let s = &finding.signature;
    let id: String = format!("fuzz-{}-{}-{}", s.oracle, s.layer, s.field)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let (fallback, category) = requirement_of(s);
    // The oracle's own requirement when it names one, else the one the
    // mutated layer and field point at.
    let (requirement, level) = match judged_signature(s) {
        Some((req, level)) if !req.contains(',') => (req, level),
        Some((_, level)) => (fallback, level),
        None => (fallback, Level::Must),
    };
    let answers = fixed_answers(&finding.steps);
    let last = finding.steps.len().saturating_sub(1);
    let undocumented = s.oracle == Oracle::UndocumentedBody.name();
    let mut steps = Vec::new();
    for (i, step) in finding.steps.iter().enumerate() {
        let mut expect = Expect::default();
        match answers[i] {
            Some((status, inner)) => {
                expect.status = Some(status);
                expect.inner_status = inner;
            }
            None => expect.alive = Some(true),
        }
        match step {
            Step::Handshake { body } => {
                expect.documented = Some(true);
                // The refusal the target's check order fixes for this hello
                // (the placeholder stands for the pinned address).
                if let Some(f) = crate::judge::order::hello_refusal(body.as_bytes(), "{address}") {
                    expect.status = Some(f.status);
                    expect.error = Some(f.error.to_owned());
                }
            }
            Step::Call(call) if crate::judge::order::call_refusal(call).is_some() => {
                if let Some(f) = crate::judge::order::call_refusal(call) {
                    expect.error = Some(f.error.to_owned());
                }
            }
            // The oracle judges a remote caller's plaintext request.
            Step::Plain { path, .. } if path.contains("{agent}") => expect.refused = Some(true),
            // Whatever the target accepts, it answers sealed (the oracles
            // open every 200 answer to a call, except after broken framing).
            Step::Call(c) if c.framing.is_normal() => expect.sealed = Some(true),
            _ => {}
        }
        if undocumented && i == last {
            expect.documented = Some(true);
        }
        steps.push((step.clone(), expect));
    }
    FindingScenario {
        id,
        title: format!("Fuzzer regression: {s}"),
        category: category.into(),
        level,
        requirement: requirement.into(),
        comments: vec![
            "Written by `osc-harness replay --to-scenario` from a fuzzer finding".to_string(),
            format!(
                "(seed {}, case {}): {}",
                finding.seed,
                finding.case,
                one_line(&finding.detail)
            ),
        ],
        steps,
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ").chars().take(160).collect()
}
