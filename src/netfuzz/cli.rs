//! `osc-harness fuzz` and `osc-harness replay`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::flags::target::{self as shared, RelayDefault, TargetPolicy};
use crate::runtime::runtime;
use crate::server::{Bug, RunningServer, ServerConfig};

use super::exec::{HandshakeBudget, TargetInfo};
use super::gen::{Endpoints, Generator};
use super::runner::{self, FuzzConfig};

/// The default budget against a URL: under the five handshakes a minute a
/// real Osaurus allows (HS-8), and under its 256-session store per one-hour
/// session lifetime (HS-9), so the session kept aside for the expiry check
/// is not evicted before it expires.
const URL_HANDSHAKE_BUDGET: (u32, u64) = (4, 60);

/// Where the target is and how to reach it (shared by `fuzz` and `replay`):
/// the flags every command shares, plus the knobs that break `self`.
#[derive(Debug, Clone, Args)]
// Its own group id: the shared flags it flattens are a `TargetArgs` too.
#[group(id = "FuzzTargetArgs")]
pub struct TargetArgs {
    /// The target.
    #[command(flatten)]
    pub server: shared::TargetArgs,
    /// With `--target self`: break the reference server with this knob (repeatable).
    #[arg(long = "bug")]
    pub bugs: Vec<String>,
    /// With `--target self`: the reference server's session lifetime.
    #[arg(long, default_value_t = SELF_TTL_SECS)]
    pub self_session_ttl: i64,
    /// Longest wait, in seconds, for a session to expire before a call after
    /// its expiry; sessions that expire later skip that step. With
    /// `--duration`, the session kept aside for the expiry check waits as
    /// long as the run has left instead.
    #[arg(long, default_value_t = 120)]
    pub expiry_wait: u64,
    /// Longest wait, in seconds, for an answer to an incomplete request
    /// (a Content-Length above the bytes sent, chunks with no final chunk).
    /// Waiting for promised bytes is not a hang: a target that answers or
    /// closes after `--timeout` but within this limit is reported as
    /// information (`slow-request`, LIM-1) with the time it held the
    /// connection; one that holds the request past it is a hang (`timeout`).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub slow_request_limit: u64,
}

/// `osc-harness fuzz`.
#[derive(Debug, Clone, Args)]
pub struct FuzzArgs {
    /// The target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// How long to run (`90s`, `30m`, `8h`).
    #[arg(long)]
    pub duration: Option<String>,
    /// Stop after this many executions (seeded, bounded runs).
    #[arg(long)]
    pub max_execs: Option<u64>,
    /// The seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Corpus folder: loaded at start, new response shapes saved into it.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Where findings are saved.
    #[arg(long, default_value = "fuzz-findings")]
    pub findings: PathBuf,
    /// Concurrent workers.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Handshakes allowed, as N/SECS (default: 4/60 for a URL, unlimited for self).
    #[arg(long)]
    pub handshake_budget: Option<String>,
    /// Endpoints to fuzz.
    #[arg(long, default_value = "session,call,plaintext")]
    pub endpoints: String,
    /// A liveness probe every this many executions.
    #[arg(long, default_value_t = 200)]
    pub liveness_every: u64,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
    /// The summary on stdout: JSON, or one self-contained HTML page with charts.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Json)]
    pub format: SummaryFormat,
    /// Also write the summary here (HTML for .html/.htm or with --format html, else JSON).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Instead of fuzzing: run N fuzz executions and N plain valid calls
    /// against the target and print both rates and their ratio.
    #[arg(long, value_name = "N")]
    pub measure: Option<u64>,
    /// Warnings (SHOULD findings) and information (UPSTREAM findings) fail
    /// the run too; without it only MUST findings do.
    #[arg(long)]
    pub strict: bool,
}

/// How the summary of a run is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SummaryFormat {
    /// Pretty JSON.
    Json,
    /// One self-contained HTML page (throughput, corpus and findings over time, response classes).
    Html,
}

/// `osc-harness replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The saved finding (JSON).
    pub finding: PathBuf,
    /// The target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Write the finding as a scenario TOML file here (for `test --scenarios DIR`)
    /// instead of replaying it.
    #[arg(long)]
    pub to_scenario: Option<PathBuf>,
    /// Replay on every target of this `diff --targets` file instead, and
    /// say whether the divergence the case was saved with remains.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["to_scenario", "bugs"])]
    pub targets: Option<PathBuf>,
}

/// A resolved target; holds the in-process server alive for `self`.
pub struct Resolved {
    /// How to reach it.
    pub info: TargetInfo,
    /// The reference server for `--target self`.
    pub server: Option<RunningServer>,
}

/// Session TTL of the fuzzer's own server: long, so sessions last a run.
const SELF_TTL_SECS: i64 = 3600;

/// What `fuzz` and `replay` assume: `self` unless told, a key for a URL,
/// the relay marker as `test` sends it (for `self` and a loopback URL), a
/// short timeout for the local server.
const POLICY: TargetPolicy = TargetPolicy {
    default_target: Some("self"),
    allows_self: true,
    key_required: true,
    relay: RelayDefault::OnForLoopback,
    self_timeout_secs: 3,
    url_timeout_secs: 15,
};

/// Resolves `--target` (spawning the reference server for `self`).
pub async fn resolve(args: &TargetArgs) -> Result<Resolved, String> {
    let bugs = args
        .bugs
        .iter()
        .map(|name| Bug::from_name(name).ok_or_else(|| format!("unknown --bug {name:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let wants_self = args.server.target.as_deref().unwrap_or("self") == "self";
    if !bugs.is_empty() && !wants_self {
        return Err("--bug only applies to --target self".into());
    }
    let resolved = args
        .server
        .resolve(POLICY, |timeout| {
            let mut config = ServerConfig::generated();
            config.session_ttl_secs = args.self_session_ttl.max(1);
            config.handshake_rate = None;
            // The honest server must give up on a lying body well before
            // the fuzzer's own timeout, so only a hang knob trips the oracle.
            config.body_read_timeout = timeout / 10;
            config.header_read_timeout = timeout / 10;
            config.bugs.extend(bugs);
            config
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut target = resolved.target;
    target.limits.max_body_bytes = 4 * 1024 * 1024;
    Ok(Resolved {
        info: TargetInfo {
            target,
            expiry_wait: Duration::from_secs(args.expiry_wait),
            slow_request_limit: Duration::from_secs(args.slow_request_limit.max(1)),
        },
        server: resolved.server,
    })
}

/// Runs `osc-harness fuzz`: exit 0 without MUST findings (or without any
/// finding under `--strict`), 1 with, 2 on bad usage, 3 when the target
/// died.
pub fn run(args: FuzzArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(run_async(args))
}

async fn run_async(args: FuzzArgs) -> ExitCode {
    let mut resolved = match resolve(&args.target).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let endpoints = match Endpoints::parse(&args.endpoints) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: --endpoints: {e}");
            return ExitCode::from(2);
        }
    };
    let duration = match args
        .duration
        .as_deref()
        .map(crate::server::parse_duration_secs)
    {
        Some(Ok(s)) if s > 0 => Some(Duration::from_secs(s as u64)),
        Some(Ok(_)) => None,
        Some(Err(e)) => {
            eprintln!("error: --duration: {e}");
            return ExitCode::from(2);
        }
        None => None,
    };
    let is_self = resolved.server.is_some();
    resolved.info.target.handshake_budget = match args.handshake_budget.as_deref() {
        Some(t) => match crate::peer::parse_handshake_budget(t) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None if is_self => None,
        // One under the relay origin's bucket, as for a direct URL: the
        // spare keeps liveness probes and replays of findings possible.
        None if resolved.info.target.via_relay => Some((
            crate::flags::target::RELAY_HANDSHAKE_BUCKET.0 - 1,
            crate::flags::target::RELAY_HANDSHAKE_BUCKET.1,
        )),
        None => Some(URL_HANDSHAKE_BUDGET),
    };
    if duration.is_none() && args.max_execs.is_none() && args.measure.is_none() {
        eprintln!("note: no --duration or --max-execs: fuzzing until interrupted");
    }
    let cfg = FuzzConfig {
        info: resolved.info.clone(),
        seed: args.seed,
        duration,
        max_execs: args.max_execs,
        corpus: args.corpus.clone(),
        findings: Some(args.findings.clone()),
        concurrency: args.concurrency.max(1),
        endpoints,
        liveness_every: args.liveness_every,
        progress: !args.quiet,
        stop_on: None,
    };
    let code = if let Some(n) = args.measure {
        measure(cfg, n).await
    } else {
        let summary = runner::run(cfg).await;
        let json = || serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n";
        let html = || super::html::render_fuzz_html(&summary);
        match args.format {
            SummaryFormat::Json => print!("{}", json()),
            SummaryFormat::Html => print!("{}", html()),
        }
        if let Some(path) = &args.report {
            let ext = path.extension().and_then(|e| e.to_str());
            let body = if matches!(ext, Some("html" | "htm"))
                || (ext != Some("json") && args.format == SummaryFormat::Html)
            {
                html()
            } else {
                json()
            };
            if let Err(e) = std::fs::write(path, body) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
        if summary.expiry_checks == 0 && summary.expiry_evicted > 0 {
            eprintln!(
                "note: no call after expiry was judged: the target dropped each session kept \
                 aside before it expired ({} times), as a bounded store does under this run's \
                 handshakes (HS-9); keep --handshake-budget under the target's store size per \
                 session lifetime to check expiry (SES-1)",
                summary.expiry_evicted
            );
        }
        if !summary.held_at_end.is_empty() {
            let held = &summary.held_at_end;
            let longest = held.iter().map(|h| h.held_secs).fold(0.0, f64::max);
            let first: Vec<String> = held
                .iter()
                .take(3)
                .map(|h| format!("case {} {} held {:.1}s", h.case, h.what, h.held_secs))
                .collect();
            eprintln!(
                "note: {} incomplete request(s) still held when the run ended, the longest \
                 {longest:.1}s (not waited out, not judged; all in the summary's held_at_end): {}",
                held.len(),
                first.join("; ")
            );
        }
        for b in &summary.findings {
            let kind = match b.level {
                crate::report::Level::Must => "FAIL",
                crate::report::Level::Should => "warning",
                crate::report::Level::Upstream => "information",
            };
            eprintln!(
                "{kind} ({} {}): {} x{}: {}",
                b.level.name(),
                b.requirement,
                b.signature,
                b.count,
                b.detail
            );
        }
        if let (Some(case), Some(why)) = (summary.target_died_at, &summary.died_reason) {
            eprintln!("target died at case {case}: {why}");
            ExitCode::from(3)
        } else if summary.failed(args.strict) {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    };
    if let Some(server) = resolved.server {
        server.shutdown().await;
    }
    code
}

/// N fuzz executions, then N plain valid calls on one session, in the same
/// run; prints both rates and the ratio.
async fn measure(mut cfg: FuzzConfig, n: u64) -> ExitCode {
    cfg.max_execs = Some(n);
    cfg.duration = None;
    cfg.progress = false;
    cfg.findings = None;
    cfg.corpus = None;
    let info = cfg.info.clone();
    let summary = runner::run(cfg.clone()).await;
    let budget = HandshakeBudget::new(info.target.handshake_budget);
    let mut rng = super::exec::handshake_rng(cfg.seed, 999);
    let start = tokio::time::Instant::now();
    let mut done = 0u64;
    let mut failed = 0u64;
    let mut session = None;
    while done < n {
        if !session
            .as_ref()
            .is_some_and(|s: &super::exec::Session| s.usable(crate::clock::unix_secs()))
        {
            match super::exec::Session::open(&info, &mut rng, &budget).await {
                Ok(s) => session = Some(s),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(3);
                }
            }
        }
        let Some(s) = session.as_mut() else { break };
        let step = super::case::Step::Call(Generator::valid_call());
        let outcome = super::exec::Case::new(&info, s).step(&step).await;
        if super::oracle::judge(&info, &step, &outcome, &[]).is_some() {
            failed += 1;
        }
        done += 1;
    }
    let valid_secs = start.elapsed().as_secs_f64().max(1e-9);
    let valid_rate = n as f64 / valid_secs;
    let ratio = summary.execs_per_sec / valid_rate;
    let out = serde_json::json!({
        "target": info.target.label,
        "n": n,
        "fuzz_execs_per_sec": summary.execs_per_sec,
        "valid_calls_per_sec": valid_rate,
        "ratio": ratio,
        "fuzz_findings": summary.findings.len(),
        "valid_calls_failed": failed,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    ExitCode::SUCCESS
}

/// Runs `osc-harness replay`: FIXED (exit 0), STILL FAILING (exit 1),
/// error or a step that could not run, so nothing was judged (exit 2),
/// target unreachable (exit 3).
pub fn run_replay(args: ReplayArgs) -> ExitCode {
    let finding = match runner::load_finding(&args.finding) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &args.to_scenario {
        return match super::scenario::write(&finding, path) {
            Ok(()) => {
                println!("wrote {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    if args.targets.is_some() {
        // `replay --targets` belongs to `diff`, a room above this one; the
        // dispatcher sends it there.
        eprintln!("error: --targets is handled by the diff room");
        return ExitCode::from(2);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(async move {
        let resolved = match resolve(&args.target).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let budget = tokio::sync::Mutex::new(HandshakeBudget::new(None));
        let mut rng = super::exec::handshake_rng(finding.seed, 0);
        let result = runner::reproduce(&resolved.info, &finding.steps, &mut rng, &budget).await;
        let skipped = result
            .as_ref()
            .ok()
            .and_then(|(_, outcomes)| outcomes.iter().find_map(|o| o.skipped.clone()));
        let code = match result {
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(3)
            }
            // A step that never ran says nothing either way: calling it
            // FIXED would hide a live bug.
            Ok(_) if skipped.is_some() => {
                eprintln!(
                    "error: not judged: {}; raise --expiry-wait to wait that long",
                    skipped.unwrap_or_default()
                );
                ExitCode::from(2)
            }
            Ok((Some(v), outcomes)) if v.signature == finding.signature => {
                // The bug class still fires; a different answer is worth
                // telling, not a reason to call it fixed.
                let now = runner::firing_shape(&outcomes);
                let moved = match &finding.shape {
                    Some(was) if *was != now => {
                        format!(" [the answer is now `{now}`, it was `{was}`]")
                    }
                    _ => String::new(),
                };
                println!(
                    "STILL FAILING: {} [{} {}] ({}){moved}",
                    finding.signature,
                    v.level.name(),
                    v.requirement,
                    v.detail
                );
                ExitCode::from(1)
            }
            Ok((other, _)) => {
                match other {
                    Some(v) => println!(
                        "FIXED: {} no longer fires (another oracle did: {}: {})",
                        finding.signature, v.signature, v.detail
                    ),
                    None => println!("FIXED: {} no longer fires", finding.signature),
                }
                ExitCode::SUCCESS
            }
        };
        if let Some(server) = resolved.server {
            server.shutdown().await;
        }
        code
    })
}
