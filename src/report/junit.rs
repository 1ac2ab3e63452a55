//! JUnit XML, one test suite per category, so CI systems render a run.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::{exchange_lines, RunReport, Verdict};

/// Renders the report as JUnit XML. A MUST failure is a `failure`; warnings
/// and information pass (their reason goes to system-out); skips are
/// `skipped` with their reason. A last suite, `coverage`, states "MUST
/// requirements exercised: N of M", skipped when some went unexercised.
pub fn render_junit(report: &RunReport) -> String {
    let mut junit = Report::new("osc-harness");
    junit.set_time(Duration::from_millis(report.duration_ms));
    let mut categories: Vec<&str> = Vec::new();
    for s in &report.scenarios {
        if !categories.contains(&s.category.as_str()) {
            categories.push(&s.category);
        }
    }
    for category in categories {
        let mut suite = TestSuite::new(category);
        if report.insecure {
            suite.add_property(Property::new("insecure", "true"));
        }
        for s in report.scenarios.iter().filter(|s| s.category == category) {
            let status = match s.verdict {
                Verdict::Fail if !s.known => {
                    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    st.set_message(s.reason.clone().unwrap_or_default());
                    st.set_type(s.requirements.join(" "));
                    let mut desc = String::new();
                    if let Some(e) = &s.expected {
                        desc.push_str(&format!("expected: {e}\n"));
                    }
                    if let Some(r) = &s.repro {
                        desc.push_str(&format!("rerun: {r}\n"));
                    }
                    if !s.transcript.is_empty() {
                        desc.push_str("transcript:\n");
                        for line in exchange_lines(&s.transcript) {
                            desc.push_str(&format!("  {line}\n"));
                        }
                    }
                    st.set_description(desc);
                    st
                }
                Verdict::Skip => {
                    let mut st = TestCaseStatus::skipped();
                    st.set_message(s.reason.clone().unwrap_or_default());
                    st
                }
                _ => TestCaseStatus::success(),
            };
            let mut case = TestCase::new(format!("{}: {}", s.id, s.title), status);
            case.set_classname(format!("osc.{}", s.category));
            case.set_time(Duration::from_millis(s.duration_ms));
            if matches!(s.verdict, Verdict::Warn | Verdict::Info) || s.known {
                case.set_system_out(format!(
                    "{}: {}",
                    s.verdict.label(),
                    s.reason.clone().unwrap_or_default()
                ));
            }
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    // Coverage is a suite of its own so CI pages show it next to the
    // verdicts: a skipped case when a MUST requirement went unexercised.
    let cov = report.must_coverage();
    let mut suite = TestSuite::new("coverage");
    suite.add_property(Property::new("must_exercised", cov.exercised.to_string()));
    suite.add_property(Property::new("must_total", cov.total.to_string()));
    let status = if cov.not_exercised.is_empty() {
        TestCaseStatus::success()
    } else {
        let mut st = TestCaseStatus::skipped();
        st.set_message(format!(
            "MUST requirements not exercised: {}",
            cov.not_exercised.join(", ")
        ));
        st
    };
    let mut case = TestCase::new(cov.headline(), status);
    case.set_classname("osc.coverage");
    suite.add_test_case(case);
    junit.add_test_suite(suite);
    junit
        .to_string()
        .unwrap_or_else(|e| format!("<!-- junit serialisation failed: {e} -->\n"))
}
