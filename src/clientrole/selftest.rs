//! The client-role self-test: the reference client (`osc-harness call`)
//! passes every client scenario, and each of its `--bug` knobs fails
//! exactly the scenarios that declare it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::client::ClientBug;
use crate::report::kill::{render_text, Forgiving, KillMatrix, KillRow};
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
        let results = run_all(
            scenarios,
            &client.command(exe),
            timeout,
            4,
            &Default::default(),
        )
        .await;
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

/// The MUST requirements no knob kills, as a line of text (empty when
/// every one is killed).
pub fn render_unkilled(unkilled: &[String]) -> String {
    if unkilled.is_empty() {
        "every MUST of the client role has a killing knob\n".into()
    } else {
        format!(
            "client MUST requirements with no killing knob: {}\n",
            unkilled.join(", ")
        )
    }
}

/// The null-client rows as text.
pub fn render_null(rows: &[NullRow]) -> String {
    let mut out =
        String::from("client-role null clients (no MUST client scenario may pass against them)\n");
    for row in rows {
        let _ = writeln!(
            out,
            "  {:<28} {:<8} {} scenario(s), {} MUST passed",
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

/// The requirement IDs cited by MUST client scenarios that no knob is
/// shown to break: no row fails, as declared, a MUST scenario citing them.
pub fn unkilled_musts(rows: &[KillRow], scenarios: &[ClientScenario]) -> Vec<String> {
    let must: Vec<&ClientScenario> = scenarios
        .iter()
        .filter(|s| s.level == crate::report::Level::Must)
        .collect();
    let killed: BTreeSet<&str> = rows
        .iter()
        .filter(|r| !r.honest())
        .flat_map(|r| r.failed.intersection(&r.declared))
        .filter_map(|id| must.iter().find(|s| &s.id == id))
        .flat_map(|s| s.requirements.iter().map(String::as_str))
        .collect();
    let all: BTreeSet<&str> = must
        .iter()
        .flat_map(|s| s.requirements.iter().map(String::as_str))
        .collect();
    all.difference(&killed).map(|s| s.to_string()).collect()
}

/// Runs the matrix: the honest reference client, then each knob.
pub async fn run_matrix(
    exe: &Path,
    scenarios: &[ClientScenario],
    timeout: Duration,
) -> Vec<KillRow> {
    let mut rows = Vec::new();
    let mut knobs: Vec<Option<ClientBug>> = vec![None];
    knobs.extend(ClientBug::ALL.iter().copied().map(Some));
    for bug in knobs {
        let results = run_all(
            scenarios,
            &reference_command(exe, bug),
            timeout,
            4,
            &Default::default(),
        )
        .await;
        let failed = results
            .iter()
            .filter(|r| r.verdict != Verdict::Pass && !r.precondition)
            .map(|r| r.id.clone())
            .collect();
        // A scenario whose baseline did not pass proves nothing: the
        // client matrix forgives no such scenario.
        let precondition = results
            .iter()
            .filter(|r| r.precondition)
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
        rows.push(KillRow {
            knob: bug.map(|b| b.name().to_string()),
            requirement: bug.map(|b| b.requirement().to_string()).unwrap_or_default(),
            forgiving: Forgiving::Nothing,
            declared,
            failed,
            precondition,
            error: None,
        });
    }
    rows
}

/// The matrix as text.
pub fn render(rows: &[KillRow], scenarios: &[ClientScenario]) -> String {
    render_text(&kill_matrix(rows, scenarios))
}

/// The matrix with its columns, for the text and HTML renderers (knobs ×
/// client scenarios).
pub fn kill_matrix(rows: &[KillRow], scenarios: &[ClientScenario]) -> KillMatrix {
    KillMatrix {
        title: "Client knobs (call --bug) × client scenarios".into(),
        scenarios: scenarios.iter().map(|s| s.id.clone()).collect(),
        rows: rows.to_vec(),
    }
}

/// Runs the client matrix with this program as the reference client:
/// the scenarios and the rows, or why it could not start.
pub fn run_reference(
    rt: &tokio::runtime::Runtime,
) -> Result<(Vec<ClientScenario>, Vec<KillRow>), String> {
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
    fn a_must_is_killed_only_by_a_declared_catch_of_a_knob() {
        let scenarios = super::super::model::builtin().unwrap();
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let row = |bug: Option<ClientBug>, declared: &[&str], failed: &[&str]| KillRow {
            knob: bug.map(|b| b.name().to_string()),
            requirement: bug.map(|b| b.requirement().to_string()).unwrap_or_default(),
            forgiving: Forgiving::Nothing,
            declared: ids(declared),
            failed: ids(failed),
            ..KillRow::default()
        };
        let honest = row(None, &[], &["client-id-hello-v2"]);
        let knob = Some(ClientBug::HelloVersionUnchecked);
        let undeclared = row(knob, &[], &["client-id-hello-v2"]);
        let unkilled = unkilled_musts(&[honest.clone(), undeclared], &scenarios);
        assert!(unkilled.contains(&"HS-4".to_string()), "{unkilled:?}");
        let declared = row(knob, &["client-id-hello-v2"], &["client-id-hello-v2"]);
        assert!(!unkilled_musts(&[honest, declared.clone()], &scenarios).contains(&"HS-4".into()));
        let mut lost = declared;
        lost.precondition = ids(&["client-frames-foreign"]);
        assert!(!lost.ok(), "an inconclusive scenario is never a catch");
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
