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
        "'{}' call --target {{url}} --agent-address {{address}}{KEY_ARGS} \
         --path {{path}} --repeat {{calls}} --timeout 5 --max-stream-secs 2 \
         $([ {{mode}} = stream ] && echo '--stream --data {{}}')",
        exe.display().to_string().replace('\'', r"'\''")
    );
    if let Some(b) = bug {
        let _ = write!(cmd, " --bug {}", b.name());
    }
    cmd
}

/// How the reference command passes the access key.
const KEY_ARGS: &str = " --access-key {access_key}";

/// A degenerate client: one that does nothing, or stops short of its
/// job. Against each, no MUST client scenario may pass: a pass there is a
/// check that holds whatever the client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullClient {
    /// `false`: exits 1 at once.
    False,
    /// `true`: exits 0 at once.
    True,
    /// Handshakes, then aborts before any call.
    CrashAfterHandshake,
    /// Makes every call, but never puts the access key on the inner request.
    NoAccessKey,
    /// Handshakes, then exits 0 without a call.
    HandshakeOnly,
}

impl NullClient {
    /// Every null client, in the order the self-test runs them.
    pub const ALL: &'static [NullClient] = &[
        NullClient::False,
        NullClient::True,
        NullClient::CrashAfterHandshake,
        NullClient::NoAccessKey,
        NullClient::HandshakeOnly,
    ];

    /// Its name in the self-test's output.
    pub fn name(self) -> &'static str {
        match self {
            NullClient::False => "false",
            NullClient::True => "true",
            NullClient::CrashAfterHandshake => "crash-after-handshake",
            NullClient::NoAccessKey => "no-access-key",
            NullClient::HandshakeOnly => "handshake-only",
        }
    }

    /// What it does, in a sentence.
    pub fn description(self) -> &'static str {
        match self {
            NullClient::False => "`false`: exits 1 at once, without a request",
            NullClient::True => "`true`: exits 0 at once, without a request",
            NullClient::CrashAfterHandshake => {
                "the reference client that aborts (a signal) right after its handshake"
            }
            NullClient::NoAccessKey => {
                "the reference client without `--access-key`: every call, no inner `authorization`"
            }
            NullClient::HandshakeOnly => {
                "the reference client that handshakes, then exits 0 without a call"
            }
        }
    }

    /// The shim command that plays it with the reference client at `exe`.
    pub fn command(self, exe: &Path) -> String {
        let reference = reference_command(exe, None);
        match self {
            NullClient::False => "false".into(),
            NullClient::True => "true".into(),
            NullClient::CrashAfterHandshake => format!("{reference} --null crash-after-handshake"),
            NullClient::NoAccessKey => reference.replacen(KEY_ARGS, "", 1),
            NullClient::HandshakeOnly => format!("{reference} --null handshake-only"),
        }
    }
}

/// What one null client got: the MUST scenarios it passed (each a
/// vacuous check) and every verdict, by scenario.
#[derive(Debug, Clone)]
pub struct NullRow {
    /// The null client.
    pub client: NullClient,
    /// MUST scenarios that passed against it.
    pub passed: BTreeSet<String>,
    /// How many scenarios ran.
    pub ran: usize,
}

impl NullRow {
    /// Whether no MUST scenario passed.
    pub fn ok(&self) -> bool {
        self.passed.is_empty()
    }
}

/// Runs the client suite against every null client.
pub async fn run_null_clients(
    exe: &Path,
    scenarios: &[ClientScenario],
    timeout: Duration,
) -> Vec<NullRow> {
    let mut rows = Vec::new();
    for client in NullClient::ALL {
        let results = run_all(scenarios, &client.command(exe), timeout, 4, None).await;
        let passed = results
            .iter()
            .zip(scenarios)
            .filter(|(r, s)| r.verdict == Verdict::Pass && s.level == crate::report::Level::Must)
            .map(|(r, _)| r.id.clone())
            .collect();
        rows.push(NullRow {
            client: *client,
            passed,
            ran: results.len(),
        });
    }
    rows
}

/// The null-client rows as text.
pub fn render_null(rows: &[NullRow]) -> String {
    let mut out =
        String::from("client-role null clients (no MUST client scenario may pass against them)\n");
    for row in rows {
        let _ = writeln!(
            out,
            "  {:<26} {:<8} {} scenario(s), {} MUST passed",
            row.client.name(),
            if row.ok() { "ok" } else { "VACUOUS" },
            row.ran,
            row.passed.len()
        );
        for id in &row.passed {
            let _ = writeln!(out, "      passed against a null client: {id}");
        }
    }
    out
}

/// The null-client table of `docs/SELFTEST.md`.
pub fn null_doc_section() -> String {
    let mut out = String::from(
        "\n## Null clients\n\n\
         The self-test also runs the client suite against clients that do not do\n\
         their job. Every MUST client scenario must end `FAIL` (an inconclusive\n\
         refusal included) or `skip` against each; a pass is a check that holds\n\
         whatever the client does, and fails the self-test with the scenario named.\n\n\
         | null client | what it does |\n|---|---|\n",
    );
    for c in NullClient::ALL {
        let _ = writeln!(out, "| `{}` | {} |", c.name(), c.description());
    }
    out
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

/// Runs the null clients with this program as the reference client.
pub fn run_null_reference(rt: &tokio::runtime::Runtime) -> Result<Vec<NullRow>, String> {
    let scenarios =
        super::model::builtin().map_err(|e| format!("cannot load the scenarios: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    Ok(rt.block_on(run_null_clients(&exe, &scenarios, Duration::from_secs(20))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_against_a_null_client_is_named_and_fails_the_row() {
        let row = NullRow {
            client: NullClient::HandshakeOnly,
            passed: ["client-id-wrong-key".to_string()].into(),
            ran: 1,
        };
        assert!(!row.ok());
        let text = render_null(&[row]);
        assert!(text.contains("VACUOUS"), "{text}");
        assert!(text.contains("passed against a null client: client-id-wrong-key"));
    }

    #[test]
    fn null_commands_drop_or_bend_the_reference_command() {
        let exe = Path::new("/bin/osc");
        let no_key = NullClient::NoAccessKey.command(exe);
        assert!(!no_key.contains("access_key"), "{no_key}");
        assert!(reference_command(exe, None).contains("{access_key}"));
        assert!(NullClient::HandshakeOnly
            .command(exe)
            .ends_with("--null handshake-only"));
    }
}
