//! The JSON report: one document, schema `osc-harness/test-report/v1`
//! (documented in `scenarios/README.md`).

use serde::Serialize;

use super::{Counts, MustCoverage, RunReport, ScenarioResult};

/// The value of the report's `schema` field.
pub const JSON_SCHEMA_ID: &str = "osc-harness/test-report/v1";

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    target: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    insecure: bool,
    duration_ms: u64,
    summary: Counts,
    must_coverage: MustCoverage,
    not_exercised: &'a [String],
    run_problems: &'a [String],
    scenarios: &'a [ScenarioResult],
}

/// Renders the report as pretty JSON.
pub fn render_json(report: &RunReport) -> String {
    let doc = Document {
        schema: JSON_SCHEMA_ID,
        target: &report.target,
        insecure: report.insecure,
        duration_ms: report.duration_ms,
        summary: report.counts(),
        must_coverage: report.must_coverage(),
        not_exercised: &report.not_exercised,
        run_problems: &report.run_problems,
        scenarios: &report.scenarios,
    };
    let mut out = serde_json::to_string_pretty(&doc)
        .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()));
    out.push('\n');
    out
}
