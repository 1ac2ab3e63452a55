//! The differential report: one [`DiffReport`] rendered as text, JSON
//! (schema `osc-harness/diff-report/v1`) or JUnit XML.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use super::run::{Class, Row};

/// The value of the JSON report's `schema` field.
pub const DIFF_SCHEMA_ID: &str = "osc-harness/diff-report/v1";

/// A whole differential run.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// The report schema.
    pub schema: &'static str,
    /// Target names, in file order.
    pub targets: Vec<String>,
    /// The seed of the fuzz cases.
    pub seed: u64,
    /// Every input, scenarios first.
    pub rows: Vec<Row>,
}

/// Rows per class.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Rows per class name.
    pub rows: BTreeMap<String, usize>,
    /// Whether the run fails (a MUST broken or a difference unexplained).
    pub failed: bool,
}

fn class_name(c: Class) -> &'static str {
    match c {
        Class::Same => "same",
        Class::Uncompared => "uncompared",
        Class::Information => "information",
        Class::Should => "should",
        Class::Must => "must",
        Class::Unexplained => "unexplained",
    }
}

impl DiffReport {
    /// Rows per class, and whether the run fails.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for r in &self.rows {
            *s.rows.entry(class_name(r.class).into()).or_default() += 1;
        }
        s.failed = self.rows.iter().any(|r| r.class.fails());
        s
    }

    /// The exit code: 1 when a MUST is broken or a difference unexplained.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.summary().failed)
    }
}

/// Terminal text: every row that is not `same`, its findings, and with
/// `verbose` each target's normal form; then the totals.
pub fn render_text(report: &DiffReport, verbose: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "osc-harness diff: {} (seed {})",
        report.targets.join(" vs "),
        report.seed
    );
    for row in &report.rows {
        if row.class == Class::Same && !verbose {
            continue;
        }
        let _ = writeln!(
            out,
            "{:<12} {:<8} {}",
            class_name(row.class).to_ascii_uppercase(),
            row.kind,
            row.input
        );
        for f in &row.findings {
            let who = f.target.as_deref().unwrap_or("*");
            let req = f.requirement.as_deref().unwrap_or("-");
            let rule = f
                .rule
                .as_deref()
                .map(|r| format!(" rule {r}:"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    {} {who} {req}{rule} {}",
                class_name(f.class),
                one_line(&f.detail, 300)
            );
        }
        if verbose || row.class == Class::Unexplained {
            for c in &row.cells {
                let nf = c.normal.as_ref().map(|n| n.to_string()).unwrap_or_else(|| {
                    format!("(not run: {})", c.reason.as_deref().unwrap_or("-"))
                });
                let _ = writeln!(out, "      {:<10} {}", c.target, one_line(&nf, 400));
            }
        } else if row.class == Class::Uncompared {
            // Say why a target did not run it, so an uncompared row is not
            // mistaken for agreement.
            for c in row.cells.iter().filter(|c| c.normal.is_none()) {
                let why = c.reason.as_deref().unwrap_or("-");
                let _ = writeln!(
                    out,
                    "      {:<10} not run: {}",
                    c.target,
                    one_line(why, 300)
                );
            }
        }
        if let Some(path) = &row.saved {
            let _ = writeln!(out, "    saved {path}");
        }
    }
    let s = report.summary();
    let counts: Vec<String> = s.rows.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = writeln!(
        out,
        "{} inputs: {}; {}",
        report.rows.len(),
        counts.join(", "),
        if s.failed { "FAILED" } else { "ok" }
    );
    out
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.len() <= max {
        return flat;
    }
    format!("{}…", crate::text::char_prefix(&flat, max))
}

/// Pretty JSON with a summary.
pub fn render_json(report: &DiffReport) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        #[serde(flatten)]
        report: &'a DiffReport,
        summary: Summary,
    }
    let mut out = serde_json::to_string_pretty(&Doc {
        report,
        summary: report.summary(),
    })
    .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()));
    out.push('\n');
    out
}

/// JUnit XML: one suite per input kind, one case per input. A broken MUST
/// or an unexplained difference is a `failure`; other findings go to
/// system-out.
pub fn render_junit(report: &DiffReport) -> String {
    let mut junit = Report::new("osc-harness-diff");
    for kind in ["scenario", "fuzz"] {
        let mut suite = TestSuite::new(format!("diff.{kind}"));
        for row in report.rows.iter().filter(|r| r.kind == kind) {
            let lines: Vec<String> = row
                .findings
                .iter()
                .map(|f| {
                    format!(
                        "{} {} {}: {}",
                        class_name(f.class),
                        f.target.as_deref().unwrap_or("*"),
                        f.requirement.as_deref().unwrap_or("-"),
                        f.detail
                    )
                })
                .collect();
            let status = if row.class.fails() {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(lines.first().cloned().unwrap_or_default());
                st.set_type(class_name(row.class));
                let mut desc = lines.join("\n");
                for c in &row.cells {
                    if let Some(n) = &c.normal {
                        desc.push_str(&format!("\n{}: {n}", c.target));
                    }
                }
                st.set_description(desc);
                st
            } else if row.class == Class::Uncompared {
                let mut st = TestCaseStatus::skipped();
                st.set_message("fewer than two targets ran it");
                st
            } else {
                TestCaseStatus::success()
            };
            let mut case = TestCase::new(row.input.clone(), status);
            case.set_classname(format!("osc.diff.{kind}"));
            if !row.class.fails() && !lines.is_empty() {
                case.set_system_out(lines.join("\n"));
            }
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    junit
        .to_string()
        .unwrap_or_else(|e| format!("<!-- {e} -->\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::run::Cell;

    #[test]
    fn an_uncompared_row_says_why_a_target_did_not_run_it() {
        let cell = |target: &str, reason: Option<&str>| Cell {
            target: target.into(),
            verdict: if reason.is_some() { "skip" } else { "pass" }.into(),
            normal: None,
            reason: reason.map(str::to_string),
        };
        let report = DiffReport {
            schema: DIFF_SCHEMA_ID,
            targets: vec!["a".into(), "b".into()],
            seed: 1,
            rows: vec![Row {
                input: "expiry-known-v2".into(),
                kind: "scenario",
                class: Class::Uncompared,
                cells: vec![
                    cell("a", None),
                    cell("b", Some("the session expires in 3601s")),
                ],
                findings: Vec::new(),
                steps: None,
                saved: None,
            }],
        };
        let text = render_text(&report, false);
        assert!(
            text.contains("b          not run: the session expires in 3601s"),
            "{text}"
        );
    }
}
