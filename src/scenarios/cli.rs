//! The `test` subcommand.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::flags::target::{RelayDefault, TargetArgs, TargetPolicy, RELAY_HANDSHAKE_BUCKET};
use crate::peer::edit::{CallStep, Inner, Step};
use crate::peer::{self, Conversation, HelloCheck, Offer, RateLimitPolicy};
use crate::report::{Format, ReportArgs};
use crate::rng::SystemRandom;
use crate::transport::OuterRequest;

use super::loader;
use super::model::Scenario;
use super::registry::Registry;
use super::runner::{caller_is_remote, run_suite, select, RunConfig};
use super::selftest;

/// Arguments of `test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The target (required unless --list or --coverage); --timeout also
    /// bounds the silence inside a stream.
    #[command(flatten)]
    pub target: TargetArgs,
    /// The URL target trusts loopback callers without the relay marker (as
    /// `serve` does by default), which enables the GATE-2 scenario.
    #[arg(long)]
    pub trusts_loopback: bool,
    /// A key scoped to another agent (enables the scope scenario).
    #[arg(long)]
    pub scoped_key: Option<String>,
    /// The agent the scoped key is for.
    #[arg(long)]
    pub scoped_agent_id: Option<String>,
    /// The session lifetime the target grants, in seconds.
    #[arg(long)]
    pub session_ttl: Option<i64>,
    /// The longest a scenario may wait, in seconds (expiry is tested only if the TTL fits).
    #[arg(long, default_value_t = 10)]
    pub max_wait: u64,
    /// Handshakes allowed per window, as N/SECS (default 5/60 for URLs, none for self); `none` = unlimited.
    #[arg(long)]
    pub handshake_budget: Option<String>,
    /// The target's session store bound (enables the flood scenario).
    #[arg(long)]
    pub max_sessions: Option<usize>,
    /// Run only scenarios matching (ID, category or requirement; `*` globs; repeatable).
    #[arg(long)]
    pub only: Vec<String>,
    /// Skip scenarios matching (repeatable).
    #[arg(long)]
    pub skip: Vec<String>,
    /// Add or replace scenario files from this directory.
    #[arg(long)]
    pub scenarios: Option<PathBuf>,
    /// Reporting.
    #[command(flatten)]
    pub output: ReportArgs,
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Print every requirement with the scenarios and vectors that check it.
    #[arg(long)]
    pub coverage: bool,
    /// Scenarios run at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Stable output for snapshots: durations are zeroed.
    #[arg(long, hide = true)]
    pub stable: bool,
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("osc-harness test: {msg}");
    ExitCode::from(2)
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    crate::runtime::runtime().map_err(usage)
}

/// What `test` assumes: a target must be named; a URL needs a key and gets
/// the relay marker when it is on loopback.
const POLICY: TargetPolicy = TargetPolicy {
    default_target: None,
    allows_self: true,
    key_required: true,
    relay: RelayDefault::OnForLoopback,
    self_timeout_secs: 10,
    url_timeout_secs: 10,
};

/// Runs `test`.
pub fn run(args: TestArgs) -> ExitCode {
    let registry = Registry::builtin();
    let all = match loader::load(args.scenarios.as_deref(), &registry) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    if args.coverage {
        print!("{}", coverage(&all, &registry));
        return ExitCode::SUCCESS;
    }
    let selected = select(all, &args.only, &args.skip);
    if selected.is_empty() {
        return usage(
            "no scenario matched --only/--skip (a selection that runs nothing is never a pass)",
        );
    }
    if args.list {
        for s in &selected {
            println!(
                "{:<32} {:<10} {:<8} {:<40} {}",
                s.id,
                s.category,
                s.level.name(),
                s.requirements.join(","),
                s.title
            );
        }
        return ExitCode::SUCCESS;
    }
    if args.target.target.is_none() {
        return usage("--target URL (or --target self) is required");
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(run_test(args, selected, registry))
}

async fn run_test(args: TestArgs, scenarios: Vec<Scenario>, registry: Registry) -> ExitCode {
    let resolved = match args
        .target
        .resolve(POLICY, |_| selftest::self_server_config(&[]))
        .await
    {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let mut target = resolved.target.clone();
    if !resolved.is_self() {
        // Upstream's handshake limit; through a relay, the relay origin's
        // bucket of the same size.
        target.handshake_budget = Some(if target.via_relay {
            RELAY_HANDSHAKE_BUCKET
        } else {
            (5, 60)
        });
    }
    if let Some(b) = &args.handshake_budget {
        match peer::parse_handshake_budget(b) {
            Ok(b) => target.handshake_budget = b,
            Err(e) => return usage(e),
        }
    }
    let mut cfg = match &resolved.server {
        Some(server) => selftest::self_run(target, server, args.stable),
        None => url_config(&args, target),
    };
    cfg.concurrency = args.concurrency.max(1);
    cfg.max_wait = args.max_wait;
    if resolved.server.is_none() {
        cfg.rerun_flags = Some(rerun_flags(&args));
    }
    cfg.stable = args.stable;
    if resolved.server.is_none() {
        cfg.remote_caller = caller_is_remote(
            &cfg.target.endpoint,
            cfg.target.via_relay,
            cfg.target.limits.connect_timeout,
        )
        .await;
    }
    if let Err(code) = preflight(&cfg).await {
        return code;
    }
    let bar = progress_bar(&args, scenarios.len());
    let tick = |r: &crate::report::ScenarioResult| {
        if let Some(b) = &bar {
            b.set_message(r.id.clone());
            b.inc(1);
        }
    };
    let cfg_label = cfg.target.label.clone();
    let mut report = run_suite(Arc::new(cfg), &scenarios, &registry, &tick).await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let ran: Vec<_> = report
        .scenarios
        .iter()
        .filter(|s| s.verdict != crate::report::Verdict::Skip)
        .collect();
    let gone = |s: &&crate::report::ScenarioResult| {
        s.reason
            .as_deref()
            .is_some_and(|r| r.contains("transport: could not connect"))
    };
    if !ran.is_empty() && ran.iter().all(gone) {
        eprintln!(
            "osc-harness test: the target stopped accepting connections during the run ({})",
            cfg_label
        );
        return ExitCode::from(3);
    }
    match args.output.finish(&mut report) {
        Ok(code) => ExitCode::from(code),
        Err(e) => usage(e),
    }
}

fn progress_bar(args: &TestArgs, n: usize) -> Option<indicatif::ProgressBar> {
    if args.output.format != Format::Text || !std::io::stderr().is_terminal() || args.stable {
        return None;
    }
    let bar = indicatif::ProgressBar::new(n as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    Some(bar)
}

/// The run configuration for a URL target; the resolver has already
/// checked the address and the key.
/// The run's flags as a rerun line repeats them: the target flags as
/// given, then the suite's own (secrets redacted).
fn rerun_flags(args: &TestArgs) -> Vec<String> {
    let mut out = args.target.rerun_flags();
    let mut add = |name: &str, value: Option<String>| {
        out.push(format!("--{name}"));
        out.extend(value);
    };
    if args.trusts_loopback {
        add("trusts-loopback", None);
    }
    if args.scoped_key.is_some() {
        add("scoped-key", Some("<redacted>".into()));
    }
    if let Some(s) = &args.scoped_agent_id {
        add("scoped-agent-id", Some(s.clone()));
    }
    if let Some(t) = args.session_ttl {
        add("session-ttl", Some(t.to_string()));
    }
    if args.max_wait != 10 {
        add("max-wait", Some(args.max_wait.to_string()));
    }
    if let Some(b) = &args.handshake_budget {
        add("handshake-budget", Some(b.clone()));
    }
    if let Some(m) = args.max_sessions {
        add("max-sessions", Some(m.to_string()));
    }
    if let Some(p) = &args.scenarios {
        add("scenarios", Some(p.display().to_string()));
    }
    out
}

fn url_config(args: &TestArgs, target: peer::Target) -> RunConfig {
    RunConfig {
        scoped_key: args.scoped_key.clone(),
        scoped_agent_id: args.scoped_agent_id.clone(),
        session_ttl: args.session_ttl,
        max_wait: args.max_wait,
        max_sessions: args.max_sessions,
        concurrency: args.concurrency,
        stable: args.stable,
        loopback_trusted: args.trusts_loopback,
        ..RunConfig::new(target)
    }
}

/// The session the preflight opens.
const PREFLIGHT_SESSION: &str = "preflight";

/// Checks, before any scenario, that the target is reachable, speaks the
/// protocol, signs as the pinned agent and accepts the access key, through
/// the engine; says what is wrong in plain words.
async fn preflight(cfg: &RunConfig) -> Result<(), ExitCode> {
    let unreachable = |msg: String| {
        eprintln!("osc-harness test: preflight: {msg}");
        ExitCode::from(3)
    };
    let offer = Offer::random(cfg.target.address, &mut SystemRandom);
    // One try: a 429 here is reported, and the run paces itself.
    let mut conversation = Conversation::new(&cfg.target, &cfg.pacer, RateLimitPolicy::NONE);
    let resp = conversation
        .handshake(PREFLIGHT_SESSION, &offer)
        .await
        .map_err(|e| unreachable(format!("the target is unreachable: {e}")))?;
    let body = String::from_utf8_lossy(&resp.body).into_owned();
    match resp.status {
        200 => {}
        404 if body.contains("Unknown agent address") => {
            eprintln!("osc-harness test: preflight: the target has no agent with address {} (check --agent-address)", cfg.target.address);
            return Err(ExitCode::from(2));
        }
        429 => eprintln!("osc-harness test: preflight: the target rate-limits handshakes (429); the run will pace itself"),
        404 | 405 => return Err(unreachable(format!("the target has no /secure/session endpoint ({} {body})", resp.status))),
        s => return Err(unreachable(format!("POST /secure/session answered {s}: {body}"))),
    }
    if resp.status != 200 {
        return Ok(());
    }
    match &resp.hello {
        Some(HelloCheck::Unusable(e)) => {
            return Err(unreachable(format!(
                "the target does not speak the secure channel: its ServerHello is unusable ({e})"
            )))
        }
        Some(HelloCheck::Refused(e)) => {
            eprintln!("osc-harness test: preflight: warning: the ServerHello does not verify against the pinned address {} ({e}); the identity scenarios will fail", cfg.target.address);
        }
        Some(HelloCheck::Accepted) | None => {
            let call = Step::Call(CallStep::honest(Inner::agent_card()));
            if let Ok(r) = conversation.run(PREFLIGHT_SESSION, &call).await {
                if r.per_call_key && r.inner_status == Some(401) {
                    eprintln!("osc-harness test: preflight: the access key is refused by the target (sealed 401 for GET /agents/{}); check --access-key", cfg.target.agent());
                    return Err(ExitCode::from(2));
                }
            }
        }
    }
    // A remote caller's plaintext run is GATE-1's own question, answered
    // by its scenario; only a local caller needs the hint.
    if !cfg.target.relay_origin && !cfg.remote_caller {
        let mut probe = OuterRequest::post_json(
            format!("/agents/{}/run", cfg.target.agent()),
            b"{}".to_vec(),
        );
        probe = probe.with_header("Authorization", format!("Bearer {}", cfg.target.access_key));
        if let Ok(r) = conversation.plain(&probe).await {
            if (200..300).contains(&r.status) {
                eprintln!("osc-harness test: preflight: the target treats the harness as a loopback caller (a plaintext run was executed), so no 426 is possible; use --relay-origin on");
            }
        }
    }
    Ok(())
}

/// The `--coverage` table: every requirement with the scenarios and
/// vectors that check it; MUST requirements nothing checks are flagged.
pub fn coverage(scenarios: &[Scenario], registry: &Registry) -> String {
    let vectors = registry.vector_ids();
    let mut out = String::new();
    let mut unchecked = Vec::new();
    for r in &registry.requirements {
        let by: Vec<&str> = scenarios
            .iter()
            .filter(|s| s.requirements.contains(&r.id))
            .map(|s| s.id.as_str())
            .collect();
        let vec = vectors.contains(&r.id);
        let mut checks = by.join(", ");
        if vec {
            if !checks.is_empty() {
                checks.push_str(", ");
            }
            checks.push_str("vectors");
        }
        if checks.is_empty() {
            if r.level == "MUST" {
                unchecked.push(r.id.clone());
                checks = "UNCHECKED".into();
            } else {
                checks = "-".into();
            }
        }
        out.push_str(&format!("{:<9} {:<8} {}\n", r.id, r.level, checks));
    }
    if unchecked.is_empty() {
        out.push_str("\nevery MUST requirement is checked by a scenario or a vector\n");
    } else {
        out.push_str(&format!(
            "\nMUST requirements nothing checks: {}\n",
            unchecked.join(", ")
        ));
    }
    out
}
