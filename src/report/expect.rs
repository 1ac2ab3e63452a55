//! `--expect` / `--write-expect`: per-target known failures, so an
//! implementation can adopt the suite before it passes all of it.

use serde::{Deserialize, Serialize};

use crate::report::{RunReport, Verdict};

/// One known failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Known {
    /// Scenario ID.
    pub id: String,
    /// The verdict it must keep: `fail`, `warn` or `info`.
    pub verdict: String,
    /// Why it is known.
    pub reason: String,
}

/// An expectations file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// The known failures.
    #[serde(default)]
    pub known: Vec<Known>,
}

/// Marks listed failures as known; records a run problem for a listed
/// failure that now passes, an entry that matches no scenario, or a
/// failure of another kind.
pub fn apply_expectations(report: &mut RunReport, text: &str) -> Result<(), String> {
    let exp: Expectations = toml::from_str(text).map_err(|e| e.to_string())?;
    for k in &exp.known {
        let Some(s) = report.scenarios.iter_mut().find(|s| s.id == k.id) else {
            report.run_problems.push(format!(
                "expectation {:?} matches no scenario of this run",
                k.id
            ));
            continue;
        };
        let got = format!("{:?}", s.verdict).to_ascii_lowercase();
        if s.verdict == Verdict::Pass {
            report.run_problems.push(format!(
                "{} is listed as a known {} but now passes: remove it from the expectations",
                k.id, k.verdict
            ));
        } else if got != k.verdict {
            report.run_problems.push(format!(
                "{} is listed as a known {} but is now {got}",
                k.id, k.verdict
            ));
        } else {
            s.known = true;
        }
    }
    Ok(())
}

/// An expectations file listing every fail/warn/info of the run.
pub fn write_expectations(report: &RunReport) -> String {
    let known = report
        .scenarios
        .iter()
        .filter(|s| matches!(s.verdict, Verdict::Fail | Verdict::Warn | Verdict::Info))
        .map(|s| Known {
            id: s.id.clone(),
            verdict: format!("{:?}", s.verdict).to_ascii_lowercase(),
            reason: s.reason.clone().unwrap_or_default(),
        })
        .collect();
    let mut out = String::from("# Known failures of this target (osc-harness test --expect).\n\n");
    out.push_str(&toml::to_string(&Expectations { known }).unwrap_or_default());
    out
}
