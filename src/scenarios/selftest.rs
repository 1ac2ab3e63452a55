//! The harness tests itself: the suite against the honest reference server
//! and against each `--bug` knob, which must be caught by exactly the
//! scenarios that declare it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::knobs::CaughtBy;
use crate::peer;
use crate::report::kill::{render_text, Forgiving, KillMatrix, KillRow};
use crate::report::{RunReport, Verdict};
use crate::server::{self, Bug, RunningServer, ServerConfig, ServerError};
use crate::transport::Target;

use super::model::Scenario;
use super::registry::Registry;
use super::runner::{run_suite, RunConfig};

/// Session TTL of `--target self`: short, so expiry is tested for real.
pub const SELF_TTL_SECS: i64 = 3;

/// Session bound of `--target self`: small, so the flood scenario is quick.
pub const SELF_MAX_SESSIONS: usize = 32;

/// The knobs the suite must catch: the server knobs whose registry row
/// says [`CaughtBy::Suite`].
pub fn suite_knobs() -> Vec<Bug> {
    Bug::ALL
        .iter()
        .copied()
        .filter(|b| b.caught_by() == CaughtBy::Suite)
        .collect()
}

/// Starts the in-process reference server for `--target self`.
pub async fn spawn_self(bugs: &[Bug]) -> Result<RunningServer, ServerError> {
    server::spawn(self_server_config(bugs)).await
}

/// The reference server's configuration for the suite: short sessions (so
/// expiry is tested), a small store (so the flood scenario runs), no
/// handshake limit, and the given knobs.
pub fn self_server_config(bugs: &[Bug]) -> ServerConfig {
    let mut config = ServerConfig::generated();
    config.session_ttl_secs = SELF_TTL_SECS;
    config.max_sessions = SELF_MAX_SESSIONS;
    config.handshake_rate = None;
    // Well under `test`'s own wait for an incomplete request, so the honest
    // server gives up on promised bytes (LIM-2) quickly and only the hang
    // knob keeps the harness waiting.
    config.body_read_timeout = std::time::Duration::from_secs(3);
    config.bugs = bugs.iter().copied().collect();
    config
}

/// The run configuration for a server started by [`spawn_self`].
pub fn self_config(server: &RunningServer, stable: bool) -> Result<RunConfig, String> {
    let endpoint = Target::parse(&server.url).map_err(|e| e.to_string())?;
    let target = peer::Target {
        label: "self".into(),
        access_key: server.access_key.clone(),
        agent_id: Some(server.agent_id.clone()),
        relay_origin: true,
        ..peer::Target::new(endpoint, server.agent_address)
    };
    Ok(self_run(target, server, stable))
}

/// A run against the reference server `server`, reached as `target`: the
/// scoped key, TTL and session bound the harness gave it are known, and
/// it trusts loopback callers.
pub fn self_run(target: peer::Target, server: &RunningServer, stable: bool) -> RunConfig {
    RunConfig {
        scoped_key: server.scoped_key.clone(),
        scoped_agent_id: Some(server.scoped_agent_id.clone()),
        session_ttl: Some(server.session_ttl_secs),
        max_sessions: Some(SELF_MAX_SESSIONS),
        concurrency: 8,
        stable,
        loopback_trusted: true,
        ..RunConfig::new(target)
    }
}

/// The server matrix's row for one run: its rule forgives collateral (a
/// knob that broke an honest precondition step of a scenario not
/// declaring it).
fn tally(bug: Option<Bug>, scenarios: &[Scenario], report: &RunReport) -> KillRow {
    let declared: BTreeSet<String> = match bug {
        Some(b) => scenarios
            .iter()
            .filter(|s| s.catches.iter().any(|c| c == b.name()))
            .map(|s| s.id.clone())
            .collect(),
        None => BTreeSet::new(),
    };
    let mut row = KillRow {
        knob: bug.map(|b| b.name().to_string()),
        requirement: bug.map(|b| b.requirement().to_string()).unwrap_or_default(),
        forgiving: Forgiving::Collateral,
        declared,
        ..KillRow::default()
    };
    for r in &report.scenarios {
        if matches!(r.verdict, Verdict::Pass | Verdict::Skip) {
            continue;
        }
        // A catch in an honest precondition step shows the knob broke the
        // setup, not that the scenario's own check can fail.
        if r.precondition {
            row.precondition.insert(r.id.clone());
        } else {
            row.failed.insert(r.id.clone());
        }
    }
    row
}

/// Runs the suite against one server configuration.
pub async fn run_one(bug: Option<Bug>, scenarios: &[Scenario], registry: &Registry) -> KillRow {
    let bugs: Vec<Bug> = bug.into_iter().collect();
    let server = match spawn_self(&bugs).await {
        Ok(s) => s,
        Err(e) => {
            let mut row = tally(bug, scenarios, &empty_report());
            row.error = Some(e.to_string());
            return row;
        }
    };
    let cfg = match self_config(&server, true) {
        Ok(c) => c,
        Err(e) => {
            let mut row = tally(bug, scenarios, &empty_report());
            row.error = Some(e);
            return row;
        }
    };
    let report = run_suite(Arc::new(cfg), scenarios, registry, &|_| {}).await;
    server.shutdown().await;
    tally(bug, scenarios, &report)
}

fn empty_report() -> RunReport {
    RunReport {
        target: "self".into(),
        insecure: false,
        duration_ms: 0,
        scenarios: Vec::new(),
        not_exercised: Vec::new(),
        run_problems: Vec::new(),
    }
}

/// Runs the whole matrix: honest first, then every suite knob, `parallel`
/// servers at a time.
pub async fn run_matrix(
    scenarios: &[Scenario],
    registry: &Registry,
    parallel: usize,
) -> Vec<KillRow> {
    let mut rows = vec![run_one(None, scenarios, registry).await];
    let knobs = suite_knobs();
    for chunk in knobs.chunks(parallel.max(1)) {
        let mut set = tokio::task::JoinSet::new();
        for (i, bug) in chunk.iter().enumerate() {
            let scenarios = scenarios.to_vec();
            let registry = registry.clone();
            let bug = *bug;
            set.spawn(async move { (i, run_one(Some(bug), &scenarios, &registry).await) });
        }
        let mut got: Vec<(usize, KillRow)> = Vec::new();
        while let Some(Ok(r)) = set.join_next().await {
            got.push(r);
        }
        got.sort_by_key(|(i, _)| *i);
        rows.extend(got.into_iter().map(|(_, r)| r));
    }
    rows
}

/// MUST requirements that bind only the client: no server can break
/// them, so the server matrix does not look for a knob that kills them.
pub const CLIENT_ONLY_MUSTS: &[&str] = &["SES-2", "SES-5"];

/// The MUST requirements of `docs/PROTOCOL.md` a server can break.
pub fn server_musts() -> Vec<String> {
    crate::report::registry::Registry::builtin()
        .requirements
        .into_iter()
        .filter(|r| r.level == "MUST" && !CLIENT_ONLY_MUSTS.contains(&r.id.as_str()))
        .map(|r| r.id)
        .collect()
}

/// Each server MUST with the suite knobs that break it and that a
/// scenario declares it catches (from the registry and the `catches`
/// lists, no run needed).
pub fn must_killers(scenarios: &[Scenario]) -> Vec<(String, Vec<Bug>)> {
    let declared = |b: &Bug| {
        scenarios
            .iter()
            .any(|s| s.catches.iter().any(|c| c == b.name()))
    };
    server_musts()
        .into_iter()
        .map(|id| {
            let knobs = suite_knobs()
                .into_iter()
                .filter(|b| b.requirement().split(", ").any(|r| r == id) && declared(b))
                .collect();
            (id, knobs)
        })
        .collect()
}

/// Server MUSTs that no knob of the run was shown to kill: none of the
/// knobs breaking it has a row that is right and caught by at least one
/// scenario in a judged step.
pub fn unkilled_musts(rows: &[KillRow]) -> Vec<String> {
    server_musts()
        .into_iter()
        .filter(|id| {
            !rows
                .iter()
                .any(|r| r.ok() && !r.declared.is_empty() && r.breaks(id))
        })
        .collect()
}

/// Scenarios that declare no knob.
pub fn catching_nothing(scenarios: &[Scenario]) -> Vec<String> {
    scenarios
        .iter()
        .filter(|s| s.catches.is_empty())
        .map(|s| s.id.clone())
        .collect()
}

/// Suite knobs no scenario declares.
pub fn uncaught(scenarios: &[Scenario]) -> Vec<Bug> {
    suite_knobs()
        .into_iter()
        .filter(|b| {
            !scenarios
                .iter()
                .any(|s| s.catches.iter().any(|c| c == b.name()))
        })
        .collect()
}

/// The matrix as a text table, then the scenarios that catch no knob.
pub fn render_matrix(rows: &[KillRow], scenarios: &[Scenario]) -> String {
    let mut out = render_text(&kill_matrix(rows, scenarios));
    let nothing = catching_nothing(scenarios);
    if !nothing.is_empty() {
        let _ = writeln!(
            out,
            "\nscenarios that catch no knob (they check properties the knobs do not break): {}",
            nothing.join(", ")
        );
    }
    out
}

/// The matrix with its columns, for the text and HTML renderers
/// (knobs × scenarios).
pub fn kill_matrix(rows: &[KillRow], scenarios: &[Scenario]) -> KillMatrix {
    KillMatrix {
        title: "Server knobs (serve --bug) × server scenarios".into(),
        scenarios: scenarios.iter().map(|s| s.id.clone()).collect(),
        rows: rows.to_vec(),
    }
}
