//! The fuzzer's kill matrix: for every server knob, a seeded fuzz run
//! against the reference server with that knob on must end with a finding
//! that cites the knob's requirement at that requirement's level or a
//! stricter one (a MUST finding for a MUST knob). A knob
//! whose fault no fuzz run can show within the budget is listed with the
//! reason ([`OUT_OF_REACH`]); a knob the fuzzer should reach but does not
//! yet is listed as missed ([`MISSED`]), so the matrix says so instead of
//! hiding it. `selftest` runs it and `docs/SELFTEST.md` shows it.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::flags::target::TargetArgs as SharedTargetArgs;
use crate::netfuzz::cli::{resolve, TargetArgs};
use crate::netfuzz::gen::Endpoints;
use crate::netfuzz::runner::{self, FuzzConfig};
use crate::report::registry::Registry;
use crate::report::Level;
use crate::server::Bug;

/// Knobs no fuzz run of at most a minute can show, and why.
pub const OUT_OF_REACH: &[(Bug, &str)] = &[
    (
        Bug::SessionsNeverExpire,
        "needs a TTL wait: a call after expiresAt, an hour into a run against the reference",
    ),
    (
        Bug::SessionStoreUnbounded,
        "needs a flood: more handshakes than the store holds",
    ),
    (
        Bug::LoopbackGated,
        "needs an unmarked loopback caller: the fuzzer marks its requests as remote",
    ),
    (
        Bug::SessionTiedToOrigin,
        "needs an unmarked loopback caller beside a remote one on one session",
    ),
    (
        Bug::RelayMarkerTrusted,
        "needs an unmarked loopback caller to tell a trusted marker from one: with the marker trusted the fuzzer sees the inner access key skipped, and reports CALL-6",
    ),
    (
        Bug::UnknownSessionOnce,
        "a client requirement (SES-2): the knob lies to clients, and the fuzzer judges servers",
    ),
    (
        Bug::UnknownSessionAlways,
        "a client requirement (SES-2): the knob lies to clients, and the fuzzer judges servers",
    ),
    (
        Bug::ReplayRefusedOnce,
        "a client requirement (SES-2): the knob lies to clients, and the fuzzer judges servers",
    ),
    (
        Bug::RateLimitEveryHandshake,
        "a 429 is a wait, never a verdict (HS-8): the fuzzer waits on it",
    ),
    (
        Bug::UpgradeRequiredOnCall,
        "a client-role adversary: a sealed call answered with the plaintext 426 body is judged an undocumented refusal (CALL-2); which GATE-1 answer a client must refuse is the client suite's",
    ),
    (
        Bug::EndlessStream,
        "a client limit (LIM-1): the knob tests how clients bound a stream",
    ),
    (
        Bug::SlowDrip,
        "a client limit (LIM-1): the knob tests how clients bound a stream",
    ),
    (
        Bug::HugeEvent,
        "a client limit (LIM-1): the knob tests how clients bound an event",
    ),
];

/// Knobs whose fault shows in traffic but that the fuzzer does not find
/// yet: each is a gap in its oracles or inputs, named so it stays in view.
pub const MISSED: &[(Bug, &str)] = &[];

/// Where a knob stands in the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Fuzzed: a run must find it.
    Fuzzed,
    /// Out of the fuzzer's reach, with the reason.
    Out(&'static str),
    /// Fuzzed, but known to be missed, with what is missing.
    Missed(&'static str),
}

/// Where `knob` stands.
pub fn reach(knob: Bug) -> Reach {
    if let Some((_, why)) = OUT_OF_REACH.iter().find(|(k, _)| *k == knob) {
        return Reach::Out(why);
    }
    if let Some((_, why)) = MISSED.iter().find(|(k, _)| *k == knob) {
        return Reach::Missed(why);
    }
    Reach::Fuzzed
}

/// One row of the matrix after a run.
#[derive(Debug, Clone)]
pub struct Row {
    /// The knob.
    pub knob: Bug,
    /// Where it stands.
    pub reach: Reach,
    /// The first finding citing the knob's requirement at its level
    /// (`signature`), if the run found one.
    pub found: Option<String>,
    /// What else the run reported, or why it could not run.
    pub note: String,
    /// Seconds the run took.
    pub secs: f64,
}

impl Row {
    /// Whether the row is as the matrix promises: a fuzzed knob found, an
    /// out-of-reach or missed one not run.
    pub fn ok(&self) -> bool {
        match self.reach {
            Reach::Fuzzed => self.found.is_some(),
            Reach::Out(_) | Reach::Missed(_) => true,
        }
    }
}

/// The level of requirement `id` in the protocol document (MUST when the
/// document does not say, the strictest reading).
fn level_of(registry: &Registry, id: &str) -> Level {
    match registry
        .requirements
        .iter()
        .find(|r| r.id == id)
        .map(|r| r.level.as_str())
    {
        Some("SHOULD") => Level::Should,
        Some("UPSTREAM") => Level::Upstream,
        _ => Level::Must,
    }
}

/// Fuzzes the reference server with `knob` for at most `budget`, stopping
/// at the first confirmed finding that cites the knob's requirement.
pub async fn run_knob(knob: Bug, budget: Duration, seed: u64) -> Row {
    let registry = Registry::builtin();
    let level = level_of(&registry, knob.requirement());
    let args = TargetArgs {
        server: SharedTargetArgs::default(),
        bugs: vec![knob.name().to_string()],
        self_session_ttl: 3600,
        expiry_wait: 1,
        // Short, so a held request is judged within the budget (LIM-2).
        slow_request_limit: (budget.as_secs() / 3).max(2),
    };
    let started = tokio::time::Instant::now();
    let row = |found, note| Row {
        knob,
        reach: reach(knob),
        found,
        note,
        secs: started.elapsed().as_secs_f64(),
    };
    let resolved = match resolve(&args).await {
        Ok(r) => r,
        Err(e) => return row(None, format!("cannot start the reference server: {e}")),
    };
    let cfg = FuzzConfig {
        info: resolved.info.clone(),
        seed,
        duration: Some(budget),
        max_execs: None,
        corpus: None,
        findings: None,
        concurrency: 1,
        endpoints: Endpoints {
            session: true,
            call: true,
            plaintext: true,
        },
        liveness_every: 200,
        progress: false,
        stop_on: Some((knob.requirement().to_string(), level)),
    };
    let summary = runner::run(cfg).await;
    if let Some(server) = resolved.server {
        server.shutdown().await;
    }
    let cites = |b: &runner::BucketSummary| {
        runner::at_least(b.level, level)
            && b.requirement.split(", ").any(|r| r == knob.requirement())
    };
    let found = summary
        .findings
        .iter()
        .find(|b| cites(b))
        .map(|b| b.signature.clone());
    let mut others: Vec<String> = summary
        .findings
        .iter()
        .filter(|b| !cites(b))
        .map(|b| format!("{} {} `{}`", b.level.name(), b.requirement, b.signature))
        .collect();
    if let Some(why) = &summary.died_reason {
        others.push(format!("target died: {why}"));
    }
    row(found, others.join("; "))
}

/// Runs every fuzzed knob, `parallel` at a time, each for at most
/// `budget`; rows in knob order, out-of-reach and missed knobs not run.
pub async fn run_matrix(budget: Duration, parallel: usize, seed: u64) -> Vec<Row> {
    let gate = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let mut tasks = Vec::new();
    for knob in Bug::ALL.iter().copied() {
        if reach(knob) != Reach::Fuzzed {
            tasks.push((knob, None));
            continue;
        }
        let gate = gate.clone();
        tasks.push((
            knob,
            Some(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await;
                run_knob(knob, budget, seed).await
            })),
        ));
    }
    let mut rows = Vec::new();
    for (knob, task) in tasks {
        let row = match task {
            None => Row {
                knob,
                reach: reach(knob),
                found: None,
                note: String::new(),
                secs: 0.0,
            },
            Some(t) => t.await.unwrap_or_else(|e| Row {
                knob,
                reach: reach(knob),
                found: None,
                note: format!("the run failed: {e}"),
                secs: 0.0,
            }),
        };
        rows.push(row);
    }
    rows
}

/// How many knobs the fuzzer is expected to find (the fuzzed ones).
pub fn fuzzed_count() -> usize {
    Bug::ALL
        .iter()
        .filter(|k| reach(**k) == Reach::Fuzzed)
        .count()
}

/// The matrix after a run, as text for `selftest`.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from("\nfuzzer kill matrix (a seeded fuzz run per server knob):\n");
    for r in rows {
        let status = match (&r.reach, &r.found) {
            (Reach::Fuzzed, Some(sig)) => format!("found   {sig} ({:.1}s)", r.secs),
            (Reach::Fuzzed, None) => format!("MISSED  after {:.1}s: {}", r.secs, r.note),
            (Reach::Out(why), _) => format!("out of reach: {why}"),
            (Reach::Missed(why), _) => format!("known gap: {why}"),
        };
        let _ = writeln!(
            out,
            "  {:<28} {:<7} {status}",
            r.knob.name(),
            r.knob.requirement()
        );
    }
    let found = rows
        .iter()
        .filter(|r| r.reach == Reach::Fuzzed && r.found.is_some())
        .count();
    let _ = writeln!(
        out,
        "  {found} of {} fuzzed knobs found; {} of {} server knobs fuzzed",
        fuzzed_count(),
        fuzzed_count(),
        Bug::ALL.len()
    );
    out
}

/// The section of `docs/SELFTEST.md` that shows the matrix: generated from
/// [`OUT_OF_REACH`] and [`MISSED`]; the test that keeps it current runs
/// the matrix and checks that every fuzzed knob is found.
pub fn doc_section() -> String {
    let mut out = format!(
        "\n## The fuzzer's kill matrix\n\n\
         `osc-harness selftest` also fuzzes the reference server once per server\n\
         knob (seeded, at most 60 s each, stopping at the first confirmed finding\n\
         that cites the knob's requirement at its level); a fuzzed knob the run\n\
         does not find fails the self-test. {} of the {} server knobs are\n\
         fuzzed; the others are out of the fuzzer's reach, for the reason given.\n\n\
         | knob | requirement | fuzzer |\n|---|---|---|\n",
        fuzzed_count(),
        Bug::ALL.len()
    );
    for knob in Bug::ALL {
        let cell = match reach(*knob) {
            Reach::Fuzzed => "found".to_string(),
            Reach::Out(why) => format!("out of reach: {why}"),
            Reach::Missed(why) => format!("**missed**: {why}"),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {cell} |",
            knob.name(),
            knob.requirement()
        );
    }
    out
}
