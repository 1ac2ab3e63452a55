//! Turns a finding into a scenario TOML file, so it becomes a permanent
//! regression case of `osc-harness test --scenarios DIR`.
//!
//! The scenario language speaks the fuzz cases' steps and edits
//! ([`crate::peer::edit`]), so every step of a finding is written as it
//! stands. Each step's `expect` comes from the oracles: the answer the
//! protocol fixes for the input when it fixes one (so the scenario fails
//! on the server that produced the finding and passes once it is fixed),
//! else a live, documented answer.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::peer::edit::{CallStep, SeqCursor};
use crate::protocol::session::ReplayWindow;

use super::case::{Finding, Signature, Step};
use super::oracle::{fixed_answer, judged_signature, Oracle};

/// Why a finding cannot become a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn q(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
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

/// A TOML value written inline (strings quoted, tables as `{ k = v }`),
/// from the serde form of `value`. An integer beyond TOML's i64 range is
/// written as a string, which the scenario loader reads back for `seq`.
fn inline(value: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match value {
        J::Null => "\"\"".into(),
        J::Bool(b) => b.to_string(),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(u)) => q(&u.to_string()),
            _ => n.to_string(),
        },
        J::String(s) => q(s),
        J::Array(items) => format!(
            "[{}]",
            items.iter().map(inline).collect::<Vec<_>>().join(", ")
        ),
        J::Object(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| format!("{} = {}", key(k), inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_owned()
    } else {
        q(k)
    }
}

fn line(out: &mut String, name: &str, value: &impl Serialize) {
    let v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    let _ = writeln!(out, "{name} = {}", inline(&v));
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
                let answer = match call.at {
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

/// Renders `finding` as scenario TOML: one honest handshake, then each
/// step in the edit language with the `expect` the oracles give it.
pub fn render(finding: &Finding) -> String {
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
        None => (fallback, crate::report::Level::Must),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by `osc-harness replay --to-scenario` from a fuzzer finding"
    );
    let _ = writeln!(
        out,
        "# (seed {}, case {}): {}",
        finding.seed,
        finding.case,
        one_line(&finding.detail)
    );
    let _ = writeln!(out, "id = {}", q(&id));
    let _ = writeln!(out, "title = {}", q(&format!("Fuzzer regression: {s}")));
    let _ = writeln!(out, "category = {}", q(category));
    let _ = writeln!(out, "level = {}", q(level.name()));
    let _ = writeln!(out, "requirements = [{}]", q(requirement));
    let _ = writeln!(out, "\n[[step]]\ndo = \"handshake\"");
    let answers = fixed_answers(&finding.steps);
    let last = finding.steps.len().saturating_sub(1);
    let undocumented = s.oracle == Oracle::UndocumentedBody.name();
    for (i, step) in finding.steps.iter().enumerate() {
        let _ = writeln!(out, "\n[[step]]");
        let mut expect: Vec<String> = Vec::new();
        match step {
            Step::Call(call) => {
                let _ = writeln!(out, "do = \"call\"");
                line(&mut out, "inner", &call.inner);
                if let Some(seq) = call.seq {
                    line(&mut out, "seq", &seq);
                }
                if let Some(at) = &call.at {
                    line(&mut out, "at", at);
                }
                if !call.envelope.is_empty() {
                    line(&mut out, "envelope", &call.envelope);
                }
                if !call.bytes.is_empty() {
                    line(&mut out, "bytes", &call.bytes);
                }
                if !call.framing.is_normal() {
                    line(&mut out, "framing", &call.framing);
                }
                if call.wrong_direction {
                    line(&mut out, "wrong_direction", &true);
                }
            }
            Step::Resend => {
                let _ = writeln!(out, "do = \"resend\"");
            }
            Step::CallAfterExpiry => {
                let _ = writeln!(out, "do = \"call-after-expiry\"");
            }
            Step::Handshake { body } => {
                let _ = writeln!(out, "do = \"handshake\"\nsession = \"probe\"");
                line(&mut out, "raw_body", body);
                expect.push("documented = true".into());
                // The placeholder stands for the pinned address.
                if let Some(f) = crate::judge::order::hello_refusal(body.as_bytes(), "{address}") {
                    expect.push(format!("status = {}", f.status));
                    expect.push(format!("error = {}", q(f.error)));
                }
            }
            Step::Plain {
                method,
                path,
                with_key,
                body,
            } => {
                let _ = writeln!(out, "do = \"plain\"");
                line(&mut out, "method", method);
                line(&mut out, "path", path);
                if !with_key {
                    let _ = writeln!(out, "authorization = \"none\"");
                }
                line(&mut out, "body", body);
                // The oracle judges a remote caller's plaintext request.
                let _ = writeln!(out, "relay = true");
                if path.contains("{agent}") {
                    expect.push("refused = true".into());
                }
            }
        }
        match answers[i] {
            Some((status, inner)) => {
                expect.insert(0, format!("status = {status}"));
                if let Some(inner) = inner {
                    expect.push(format!("inner_status = {inner}"));
                }
            }
            None => expect.insert(0, "alive = true".into()),
        }
        // Whatever the target accepts, it answers sealed (the oracles open
        // every 200 answer to a call, except after broken framing).
        if matches!(step, Step::Call(c) if c.framing.is_normal()) {
            expect.push("sealed = true".into());
        }
        if undocumented && i == last && !expect.iter().any(|e| e == "documented = true") {
            expect.push("documented = true".into());
        }
        let _ = writeln!(out, "expect = {{ {} }}", expect.join(", "));
    }
    out
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ").chars().take(160).collect()
}

/// Writes `finding` as a scenario file at `path`.
pub fn write(finding: &Finding, path: &Path) -> Result<(), ScenarioError> {
    let text = render(finding);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ScenarioError::Io {
            path: dir.display().to_string(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| ScenarioError::Io {
        path: path.display().to_string(),
        source,
    })
}
