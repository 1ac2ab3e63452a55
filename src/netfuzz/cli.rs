//! `osc-harness fuzz` and `osc-harness replay`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::flags::target::{self as shared, RelayDefault, TargetPolicy};
use crate::runtime::runtime;
use crate::server::{Bug, RunningServer, ServerConfig};

use super::exec::{HandshakeBudget, TargetInfo};
use super::gen::Endpoints;
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
    /// Concurrent workers, each with its own session and seeded input
    /// stream [default: the number of CPUs against `self` with no
    /// `--handshake-budget`, as `bench` runs; else 1].
    #[arg(long)]
    pub concurrency: Option<usize>,
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
    /// Instead of fuzzing: run the fuzz loop and `bench`'s buffered 1 KiB
    /// calls against the same target, in turns, for `--duration` each
    /// (default 10s), and print both rates and their ratio. No files are
    /// written.
    #[arg(long, conflicts_with_all = ["max_execs", "corpus", "report"])]
    pub measure: bool,
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
    // Against the in-process server nothing paces the run but the cores;
    // a budgeted target spends its handshakes one session at a time.
    let concurrency = args
        .concurrency
        .unwrap_or(if is_self && args.handshake_budget.is_none() {
            crate::client::bench::default_concurrency()
        } else {
            1
        });
    if duration.is_none() && args.max_execs.is_none() && !args.measure {
        eprintln!("note: no --duration or --max-execs: fuzzing until interrupted");
    }
    let cfg = FuzzConfig {
        info: resolved.info.clone(),
        seed: args.seed,
        duration,
        max_execs: args.max_execs,
        corpus: args.corpus.clone(),
        findings: Some(args.findings.clone()),
        concurrency: concurrency.max(1),
        endpoints,
        liveness_every: args.liveness_every,
        progress: !args.quiet,
        stop_on: None,
    };
    let code = if args.measure {
        measure(cfg, duration.unwrap_or(MEASURE_DEFAULT)).await
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

/// Slices each side of `--measure` is cut into, taken in turn, so a change
/// in machine load hits both rates alike instead of skewing the ratio.
const MEASURE_ROUNDS: u32 = 5;

/// How long `--measure` runs each side when `--duration` is not given.
const MEASURE_DEFAULT: Duration = Duration::from_secs(10);

/// `--measure`: the fuzz loop and `bench`'s buffered 1 KiB calls against
/// the same target, in turns, for `total` each; prints both rates and the
/// ratio. Each fuzz slice is a whole seeded run (seed, seed + 1, …) that
/// judges as every run does; its rate counts the executions it started
/// over the slice's fuzzing time (background cases still held when a slice
/// ends are waited for, as a run waits for them, but that wait is not
/// fuzzing time).
async fn measure(cfg: FuzzConfig, total: Duration) -> ExitCode {
    let slice = total / MEASURE_ROUNDS;
    let bench_concurrency = crate::client::bench::default_concurrency();
    let (mut execs, mut fuzz_secs, mut handshakes) = (0u64, 0.0f64, 0u64);
    let (mut calls, mut call_errors, mut call_secs) = (0u64, 0u64, 0.0f64);
    let mut findings = std::collections::BTreeSet::new();
    let mut died = None;
    for round in 0..MEASURE_ROUNDS {
        let bench =
            crate::client::bench::buffered_calls(&cfg.info.target, 1024, bench_concurrency, slice)
                .await;
        calls += bench.calls;
        call_errors += bench.errors;
        call_secs += bench.secs;
        let summary = runner::run(FuzzConfig {
            seed: cfg.seed.wrapping_add(u64::from(round)),
            duration: Some(slice),
            max_execs: None,
            progress: false,
            findings: None,
            corpus: None,
            ..cfg.clone()
        })
        .await;
        execs += summary.execs;
        fuzz_secs += slice.as_secs_f64().min(summary.elapsed_secs);
        handshakes += summary.handshakes;
        findings.extend(summary.findings.iter().map(|b| b.signature.clone()));
        if died.is_none() {
            died = summary.died_reason.clone();
        }
    }
    let rate = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let (fuzz_rate, call_rate) = (rate(execs, fuzz_secs), rate(calls, call_secs));
    let ratio = if call_rate > 0.0 {
        fuzz_rate / call_rate
    } else {
        0.0
    };
    let out = serde_json::json!({
        "target": cfg.info.target.label,
        "seed": cfg.seed,
        "rounds": MEASURE_ROUNDS,
        "fuzz": {
            "concurrency": cfg.concurrency,
            "execs": execs,
            "seconds": fuzz_secs,
            "execs_per_sec": fuzz_rate,
            "handshakes": handshakes,
            "findings": findings,
        },
        "bench_buffered_1kib": {
            "concurrency": bench_concurrency,
            "calls": calls,
            "errors": call_errors,
            "seconds": call_secs,
            "calls_per_sec": call_rate,
        },
        "ratio": ratio,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    eprintln!(
        "fuzz {fuzz_rate:.0} execs/s (concurrency {}), bench buffered 1 KiB {call_rate:.0} calls/s \
         (concurrency {bench_concurrency}): ratio {ratio:.3}",
        cfg.concurrency
    );
    match died {
        Some(why) => {
            eprintln!("error: the target died during the measurement: {why}");
            ExitCode::from(3)
        }
        None if calls == 0 => {
            eprintln!("error: no buffered call succeeded: nothing to compare with");
            ExitCode::from(3)
        }
        None => ExitCode::SUCCESS,
    }
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
