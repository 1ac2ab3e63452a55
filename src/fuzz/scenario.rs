//! Turns a finding into a scenario TOML file, so it becomes a permanent
//! regression case of `osc-harness test --scenarios DIR`.

use std::fmt::Write as _;
use std::path::Path;

use super::case::{Auth, EnvelopeEdit, Finding, Inner, Signature, Step};
use super::oracle::{fixed_answer, Oracle};

/// Why a finding cannot become a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The finding uses something the scenario format cannot say.
    #[error("this finding cannot be written as a scenario: {0}")]
    Inexpressible(String),
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

fn requirement(finding: &Finding) -> (&'static str, &'static str) {
    requirement_of(&finding.signature)
}

/// The requirement a signature is about (docs/PROTOCOL.md IDs) and the
/// scenario category it belongs to.
pub fn requirement_of(s: &Signature) -> (&'static str, &'static str) {
    match (s.layer.as_str(), s.field.as_str()) {
        ("stateful", "replay") => ("CALL-3", "replay"),
        ("stateful", _) => ("CALL-1", "replay"),
        ("inner", "path-nesting") => ("CALL-8", "inside"),
        ("inner", "authorization") => ("CALL-6", "inside"),
        ("inner", _) => ("CALL-2", "inside"),
        ("valid", _) if s.oracle == Oracle::UndocumentedBody.name() => ("RESP-2", "inside"),
        _ => ("CALL-2", "tamper"),
    }
}

/// Renders `finding` as scenario TOML.
pub fn render(finding: &Finding) -> Result<String, ScenarioError> {
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
    let (req, category) = requirement(finding);
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
    let _ = writeln!(out, "level = \"MUST\"");
    let _ = writeln!(out, "requirements = [{}]", q(req));
    let _ = writeln!(out, "\n[[step]]\ndo = \"handshake\"");
    let mut prev_is_call = false;
    let last = finding.steps.len().saturating_sub(1);
    for (i, step) in finding.steps.iter().enumerate() {
        let next_is_resend = matches!(finding.steps.get(i + 1), Some(Step::Resend));
        let _ = writeln!(out, "\n[[step]]");
        match step {
            Step::Call(call) => {
                if !call.bytes.is_empty() || !call.framing.is_normal() {
                    return Err(ScenarioError::Inexpressible(
                        "byte-level and HTTP framing mutations have no scenario form; replay the finding instead".into(),
                    ));
                }
                let _ = writeln!(out, "do = \"call\"");
                match &call.inner {
                    Inner::Plaintext { text } => {
                        let _ = writeln!(out, "plaintext = {}", q(text));
                    }
                    Inner::Request {
                        method,
                        path,
                        auth,
                        body,
                    } => {
                        let _ = writeln!(out, "method = {}", q(method));
                        let _ = writeln!(out, "path = {}", q(path));
                        match auth {
                            Auth::Key => {}
                            Auth::None => {
                                let _ = writeln!(out, "authorization = \"none\"");
                            }
                            Auth::Text(t) => {
                                let _ = writeln!(out, "authorization = {}", q(t));
                            }
                        }
                        if let Some(b) = body {
                            let _ = writeln!(out, "body_field = {}", q(b));
                        }
                    }
                }
                if call.at.is_some() {
                    return Err(ScenarioError::Inexpressible(
                        "seqs relative to the session's window have no scenario form".into(),
                    ));
                }
                if let Some(seq) = call.seq {
                    let _ = writeln!(out, "seq = {seq}");
                }
                let mut sets = Vec::new();
                let mut removes = Vec::new();
                for edit in &call.envelope {
                    match edit {
                        EnvelopeEdit::FlipCt => {
                            let _ = writeln!(out, "flip = \"ct\"");
                        }
                        EnvelopeEdit::FlipTag => {
                            let _ = writeln!(out, "flip = \"tag\"");
                        }
                        EnvelopeEdit::Set { field, json, .. } => {
                            sets.push(format!("{} = {}", q(field), q(json)));
                        }
                        EnvelopeEdit::Remove { field } => removes.push(q(field)),
                        EnvelopeEdit::Duplicate { .. } => {
                            return Err(ScenarioError::Inexpressible(
                                "duplicated JSON keys have no scenario form".into(),
                            ))
                        }
                    }
                }
                if !sets.is_empty() {
                    let _ = writeln!(out, "set = {{ {} }}", sets.join(", "));
                }
                if !removes.is_empty() {
                    let _ = writeln!(out, "remove = [{}]", removes.join(", "));
                }
                if next_is_resend {
                    let _ = writeln!(out, "save = \"captured\"");
                }
            }
            Step::Resend => {
                if !prev_is_call {
                    return Err(ScenarioError::Inexpressible(
                        "a resend without a call before it".into(),
                    ));
                }
                let _ = writeln!(out, "do = \"resend\"\nenvelope = \"captured\"");
            }
            Step::Handshake { body } => {
                let _ = writeln!(
                    out,
                    "do = \"handshake\"\nsession = \"probe\"\nraw_body = {}",
                    q(body)
                );
            }
            Step::CallAfterExpiry => {
                return Err(ScenarioError::Inexpressible(
                    "waiting out a session's expiry has no scenario form".into(),
                ))
            }
            Step::Plain { .. } => {
                return Err(ScenarioError::Inexpressible(
                    "plaintext findings are covered by the gate scenarios".into(),
                ))
            }
        }
        prev_is_call = matches!(step, Step::Call(_));
        let answer = if i == last {
            let prev_ok =
                i > 0 && fixed_answer(&finding.steps[i - 1], false).is_some_and(|a| a.0 == 200);
            Some(fixed_answer(step, prev_ok).ok_or_else(|| {
                ScenarioError::Inexpressible(
                    "the protocol fixes no single answer for this input (only a well-formed one)"
                        .into(),
                )
            })?)
        } else {
            fixed_answer(step, false)
        };
        if let Some((status, inner)) = answer {
            match inner {
                Some(inner) => {
                    let _ = writeln!(
                        out,
                        "expect = {{ status = {status}, inner_status = {inner} }}"
                    );
                }
                None => {
                    let _ = writeln!(out, "expect = {{ status = {status} }}");
                }
            }
        }
    }
    Ok(out)
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ").chars().take(160).collect()
}

/// Writes `finding` as a scenario file at `path`.
pub fn write(finding: &Finding, path: &Path) -> Result<(), ScenarioError> {
    let text = render(finding)?;
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
