//! The client-role self-test: the reference client (`osc-harness call`)
//! passes every client scenario, and each of its `--bug` knobs fails
//! exactly the scenarios that declare it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::client::ClientBug;
use crate::report::Verdict;

use super::model::ClientScenario;
use super::runner::run_all;

/// The shim command that drives the reference client at `exe`, broken by
/// `bug`. Limits are short so the hostile scenarios end quickly.
pub fn reference_command(exe: &Path, bug: Option<ClientBug>) -> String {
    let mut cmd = format!(
        "'{}' call --target {{url}} --agent-address {{address}} --access-key {{access_key}} \
         --path {{path}} --repeat {{calls}} --timeout 5 --max-stream-secs 2 \
         $([ {{mode}} = stream ] && echo '--stream --data {{}}')",
        exe.display().to_string().replace('\'', r"'\''")
    );
    if let Some(b) = bug {
        let _ = write!(cmd, " --bug {}", b.name());
    }
    cmd
}

/// One row of the matrix.
#[derive(Debug, Clone)]
pub struct Row {
    /// The knob (`None`: the honest client).
    pub bug: Option<ClientBug>,
    /// Scenarios declaring the knob.
    pub declared: BTreeSet<String>,
    /// Scenarios that did not pass.
    pub failed: BTreeSet<String>,
}

impl Row {
    /// Whether the row is as it must be.
    pub fn ok(&self) -> bool {
        self.declared == self.failed
    }
}

/// Runs the matrix: the honest reference client, then each knob.
pub async fn run_matrix(exe: &Path, scenarios: &[ClientScenario], timeout: Duration) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut knobs: Vec<Option<ClientBug>> = vec![None];
    knobs.extend(ClientBug::ALL.iter().copied().map(Some));
    for bug in knobs {
        let results = run_all(scenarios, &reference_command(exe, bug), timeout, 4, None).await;
        let failed = results
            .iter()
            .filter(|r| r.verdict != Verdict::Pass)
            .map(|r| r.id.clone())
            .collect();
        let declared = match bug {
            None => BTreeSet::new(),
            Some(b) => scenarios
                .iter()
                .filter(|s| s.catches.iter().any(|c| c == b.name()))
                .map(|s| s.id.clone())
                .collect(),
        };
        rows.push(Row {
            bug,
            declared,
            failed,
        });
    }
    rows
}

/// The matrix as text.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from("client-role selftest (reference client, osc-harness call --bug)\n");
    for row in rows {
        let name = row.bug.map_or("(honest)", |b| b.name());
        let status = if row.ok() { "ok" } else { "MISMATCH" };
        let _ = write!(
            out,
            "  {name:<26} {status:<8} declared {:>2}, failed {:>2}",
            row.declared.len(),
            row.failed.len()
        );
        if row.declared.is_empty() && row.bug.is_some() {
            out.push_str("  (no client scenario declares it)");
        }
        out.push('\n');
        for id in row.failed.difference(&row.declared) {
            let _ = writeln!(out, "      unexpected failure: {id}");
        }
        for id in row.declared.difference(&row.failed) {
            let _ = writeln!(out, "      declared but passed: {id}");
        }
    }
    out
}

/// The matrix as the HTML report's model (knobs × client scenarios).
pub fn kill_matrix(rows: &[Row], scenarios: &[ClientScenario]) -> crate::report::html::KillMatrix {
    crate::report::html::KillMatrix {
        title: "Client knobs (call --bug) × client scenarios".into(),
        scenarios: scenarios.iter().map(|s| s.id.clone()).collect(),
        rows: rows
            .iter()
            .map(|r| crate::report::html::KillRow {
                knob: r.bug.map_or("(honest)", |b| b.name()).into(),
                requirement: r
                    .bug
                    .map(|b| b.requirement().to_string())
                    .unwrap_or_default(),
                ok: r.ok(),
                declared: r.declared.clone(),
                failed: r.failed.clone(),
                collateral: Default::default(),
                error: None,
            })
            .collect(),
    }
}

/// Runs the client matrix with this program as the reference client:
/// the scenarios and the rows, or why it could not start.
pub fn run_reference(
    rt: &tokio::runtime::Runtime,
) -> Result<(Vec<ClientScenario>, Vec<Row>), String> {
    let scenarios =
        super::model::builtin().map_err(|e| format!("cannot load the scenarios: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let rows = rt.block_on(run_matrix(&exe, &scenarios, Duration::from_secs(20)));
    Ok((scenarios, rows))
}
