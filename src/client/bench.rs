//! The `bench` subcommand: how fast a server handshakes and carries calls,
//! next to how fast it answers a plaintext `GET /health` in the same run.
//!
//! Each phase runs for `--duration` with `--concurrency` workers, one
//! connection per request (as the protocol's `Connection: close` asks). The
//! plaintext phase is the ceiling: whatever the channel costs shows as a
//! ratio below 1.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::protocol::identity::AgentIdentity;
use crate::protocol::wire::InnerRequest;
use crate::rng::{RandomSource, SystemRandom};
use crate::transport::{self, OuterRequest};

use super::Channel;
use crate::flags::{RelayDefault, TargetArgs, TargetPolicy};
use crate::peer;
use crate::server::{RunningServer, ServerConfig};

/// Latency samples kept per phase; beyond this, only counts grow.
const MAX_SAMPLES: usize = 1_000_000;

/// Measure a server's handshake and call throughput against its plaintext
/// `GET /health` ceiling; progress on stderr, a JSON summary on stdout.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The target (`self` runs with its handshake rate limit off).
    #[command(flatten)]
    pub target: TargetArgs,
    /// Requests in flight at once [default: the number of CPUs].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// How long each phase runs, e.g. `3s`, `500ms`, `1m`.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Events per streamed call.
    #[arg(long, default_value_t = 64)]
    pub stream_events: usize,
    /// Bytes of padding per streamed event.
    #[arg(long, default_value_t = 256)]
    pub stream_event_size: usize,
}

/// Parses `3s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 3s, 500ms or 1m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown duration unit {unit:?} (use ms, s, m or h)"
            ))
        }
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("{text:?} must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// What `bench` assumes: `self` unless told; a URL needs no key (the
/// plaintext and handshake phases work without one).
const POLICY: TargetPolicy = TargetPolicy {
    default_target: Some("self"),
    allows_self: true,
    key_required: false,
    relay: RelayDefault::Off,
    self_timeout_secs: 30,
    url_timeout_secs: 30,
};

/// Runs the command.
pub fn run(args: BenchArgs) -> ExitCode {
    let runtime = match crate::runtime::runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(bench(args)) {
        Ok(summary) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(BenchError::Unreachable(e)) => {
            eprintln!("error: the target is unreachable: {e}");
            ExitCode::from(3)
        }
        Err(BenchError::Other(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Why a bench did not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// No connection could be made (TCP, proxy or TLS): exit 3.
    #[error("{0}")]
    Unreachable(String),
    /// Anything else: exit 1.
    #[error("{0}")]
    Other(String),
}

/// Where the bench points and with what credentials.
#[derive(Clone)]
struct Setup {
    target: peer::Target,
    stream_events: usize,
    stream_event_size: usize,
}

#[derive(Debug, Clone, Copy)]
enum Workload {
    Health,
    Handshake,
    Buffered(usize),
    Stream,
    Connect,
}

impl Workload {
    fn label(self) -> &'static str {
        match self {
            Workload::Health => "plaintext GET /health",
            Workload::Handshake => "handshakes",
            Workload::Buffered(1024) => "buffered calls, 1 KiB",
            Workload::Buffered(_) => "buffered calls, 64 KiB",
            Workload::Stream => "streamed calls",
            Workload::Connect => "TCP + TLS connections",
        }
    }
}

#[derive(Default)]
struct WorkerStats {
    latencies: Vec<Duration>,
    ops: u64,
    units: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Each workload's time is cut into this many slices, run in turn with
/// the others, so a change in machine load mid-run hits every figure alike
/// instead of skewing the ratios.
const ROUNDS: u32 = 5;

impl WorkerStats {
    fn merge(&mut self, other: WorkerStats) {
        self.ops += other.ops;
        self.units += other.units;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        let room = MAX_SAMPLES.saturating_sub(self.latencies.len());
        self.latencies
            .extend(other.latencies.into_iter().take(room));
    }
}

/// Runs the whole bench and returns the JSON summary.
pub async fn bench(args: BenchArgs) -> Result<Value, BenchError> {
    let (setup, _server) = resolve(&args).await.map_err(BenchError::Other)?;
    // One connection first: a target that cannot be reached at all (TLS
    // refused, nothing listening) is an error, not a page of zero rates.
    if let Err(e) = transport::connect_only(&setup.target.endpoint, &setup.target.limits).await {
        if e.is_connection_failure() {
            return Err(BenchError::Unreachable(e.to_string()));
        }
    }
    let concurrency = args.concurrency.unwrap_or_else(default_concurrency).max(1);
    let mut workloads = vec![
        ("plaintextHealth", Workload::Health),
        ("handshakes", Workload::Handshake),
        ("buffered1KiB", Workload::Buffered(1024)),
        ("buffered64KiB", Workload::Buffered(64 * 1024)),
        ("stream", Workload::Stream),
    ];
    if setup.target.endpoint.is_https() {
        // What TLS alone costs per connection, apart from the channel: the
        // other phases each pay it once per request.
        workloads.push(("tlsConnect", Workload::Connect));
    }
    let slice = args.duration / ROUNDS;
    let progress = ProgressBar::new((args.duration.as_millis() * workloads.len() as u128) as u64);
    progress.set_style(
        ProgressStyle::with_template("{prefix:>24} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut totals: Vec<(WorkerStats, f64)> =
        workloads.iter().map(|_| Default::default()).collect();
    let (mut core_ops, mut core_secs) = (0u64, 0.0f64);
    for _ in 0..ROUNDS {
        for (i, (_, workload)) in workloads.iter().enumerate() {
            if let Workload::Handshake = workload {
                // The core's own rate, measured beside the HTTP handshakes
                // so both see the same machine load.
                let (ops, secs) = core_handshakes(slice.min(Duration::from_millis(500))).await;
                core_ops += ops;
                core_secs += secs;
            }
            let (stats, secs) = run_slice(&setup, *workload, concurrency, slice, &progress).await;
            totals[i].0.merge(stats);
            totals[i].1 += secs;
        }
    }
    progress.finish_and_clear();

    let mut phases = serde_json::Map::new();
    let mut ceiling = 0.0;
    for ((key, workload), (mut stats, secs)) in workloads.iter().zip(totals) {
        let mut phase = summarize(*workload, &mut stats, secs);
        let rate = phase["opsPerSec"].as_f64().unwrap_or(0.0);
        if let Workload::Health = workload {
            ceiling = rate;
        } else if ceiling > 0.0 {
            phase["ratioToPlaintext"] = json!(round3(rate / ceiling));
            if let Some(frames) = phase["framesPerSec"].as_f64() {
                phase["framesRatioToPlaintext"] = json!(round3(frames / ceiling));
            }
        }
        eprintln!(
            "{:>24}: {:>10.1}/s  p50 {:>7.3} ms  p99 {:>7.3} ms  errors {}",
            workload.label(),
            rate,
            phase["p50Ms"].as_f64().unwrap_or(f64::NAN),
            phase["p99Ms"].as_f64().unwrap_or(f64::NAN),
            stats.errors
        );
        phases.insert((*key).into(), phase);
    }
    let core = if core_secs > 0.0 {
        core_ops as f64 / core_secs
    } else {
        0.0
    };
    let http_handshakes = phases["handshakes"]["opsPerSec"].as_f64().unwrap_or(0.0);
    Ok(json!({
        "target": setup.target.endpoint.url(),
        "tls": setup.target.endpoint.is_https(),
        "insecure": setup.target.endpoint.net().settings().trust.insecure,
        "agentAddress": setup.target.address.to_checksum(),
        "concurrency": concurrency,
        "phaseSeconds": args.duration.as_secs_f64(),
        "rounds": ROUNDS,
        "phases": phases,
        "coreHandshakesPerSecSingleThread": round3(core),
        "handshakeRatioToCore": if core > 0.0 { json!(round3(http_handshakes / core)) } else { Value::Null },
    }))
}

/// Requests in flight at once when `--concurrency` is not given: the
/// number of CPUs (2 where it cannot be read).
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// What one slice of the buffered-call workload made.
#[derive(Debug, Clone, Copy, Default)]
pub struct BufferedCount {
    /// Calls answered with an inner success.
    pub calls: u64,
    /// Calls that failed (transport, channel or inner status).
    pub errors: u64,
    /// Wall-clock seconds the slice took.
    pub secs: f64,
}

/// Buffered calls of `size` bytes to `POST /agents/{id}/run` for
/// `duration` with `concurrency` workers: exactly the work of the
/// `buffered1KiB` phase (one session per worker, one connection per call),
/// for a command that compares its own rate with it in the same run.
pub async fn buffered_calls(
    target: &peer::Target,
    size: usize,
    concurrency: usize,
    duration: Duration,
) -> BufferedCount {
    let mut target = target.clone();
    target.limits.max_body_bytes = target.limits.max_body_bytes.max(64 * 1024 * 1024);
    let setup = Setup {
        target,
        stream_events: 0,
        stream_event_size: 0,
    };
    let (stats, secs) = run_slice(
        &setup,
        Workload::Buffered(size),
        concurrency.max(1),
        duration,
        &ProgressBar::hidden(),
    )
    .await;
    BufferedCount {
        calls: stats.ops,
        errors: stats.errors,
        secs,
    }
}

async fn resolve(args: &BenchArgs) -> Result<(Setup, Option<RunningServer>), String> {
    let resolved = args
        .target
        .resolve(POLICY, |_| {
            let mut config = ServerConfig::generated();
            // The upstream budget of 5 handshakes a minute would measure
            // the limiter, not the channel.
            config.handshake_rate = None;
            config
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut target = resolved.target;
    target.limits.idle_timeout = target.limits.idle_timeout.min(Duration::from_secs(10));
    target.limits.max_body_bytes = 64 * 1024 * 1024;
    let setup = Setup {
        target,
        stream_events: args.stream_events,
        stream_event_size: args.stream_event_size,
    };
    Ok((setup, resolved.server))
}

async fn run_slice(
    setup: &Setup,
    workload: Workload,
    concurrency: usize,
    duration: Duration,
    progress: &ProgressBar,
) -> (WorkerStats, f64) {
    progress.set_prefix(workload.label());
    let counter = Arc::new(AtomicU64::new(0));
    let base = progress.position();
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let setup = setup.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            worker(setup, workload, deadline, counter).await
        }));
    }
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100).min(duration)).await;
        let elapsed = started.elapsed().min(duration).as_millis() as u64;
        progress.set_position(base + elapsed);
        progress.set_message(format!("{} done", counter.load(Ordering::Relaxed)));
    }
    let mut total = WorkerStats::default();
    for task in tasks {
        if let Ok(s) = task.await {
            total.merge(s);
        }
    }
    progress.set_position(base + duration.as_millis() as u64);
    (total, started.elapsed().as_secs_f64())
}

fn summarize(workload: Workload, stats: &mut WorkerStats, seconds: f64) -> Value {
    stats.latencies.sort_unstable();
    let seconds = seconds.max(f64::MIN_POSITIVE);
    let mut phase = json!({
        "ops": stats.ops,
        "errors": stats.errors,
        "seconds": round3(seconds),
        "opsPerSec": round3(stats.ops as f64 / seconds),
        "p50Ms": percentile_ms(&stats.latencies, 0.50),
        "p99Ms": percentile_ms(&stats.latencies, 0.99),
    });
    if let Workload::Stream = workload {
        phase["frames"] = json!(stats.units);
        phase["framesPerSec"] = json!(round3(stats.units as f64 / seconds));
    }
    if let Some(e) = &stats.first_error {
        phase["firstError"] = json!(e);
    }
    phase
}

async fn worker(
    setup: Setup,
    workload: Workload,
    deadline: Instant,
    counter: Arc<AtomicU64>,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let target = &setup.target;
    let mut channel = Channel::new(target.endpoint.clone(), target.address, target.limits)
        .with_relay_origin(target.relay_origin);
    let authorization =
        (!target.access_key.is_empty()).then(|| format!("Bearer {}", target.access_key));
    let run_path = format!("/agents/{}/run", target.agent());
    let dispatch_path = format!("/agents/{}/dispatch", target.agent());
    while Instant::now() < deadline {
        let start = Instant::now();
        let result: Result<u64, String> = match workload {
            Workload::Health => target
                .send(&OuterRequest::get("/health"))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    if r.status == 200 {
                        Ok(0)
                    } else {
                        Err(format!("GET /health answered {}", r.status))
                    }
                }),
            Workload::Connect => {
                transport::connect_only(&setup.target.endpoint, &setup.target.limits)
                    .await
                    .map(|_| 0)
                    .map_err(|e| e.to_string())
            }
            Workload::Handshake => channel
                .handshake()
                .await
                .map(|_| 0)
                .map_err(|e| e.to_string()),
            Workload::Buffered(size) => {
                let inner = InnerRequest {
                    method: "POST".into(),
                    path: run_path.clone(),
                    authorization: authorization.clone(),
                    content_type: Some("application/json".into()),
                    body: Some(crate::protocol::encoding::b64url_encode(&padded_json(size))),
                    ..Default::default()
                };
                checked(channel.call(inner).await)
            }
            Workload::Stream => {
                let body = format!(
                    "{{\"events\":{},\"size\":{}}}",
                    setup.stream_events, setup.stream_event_size
                );
                let inner = InnerRequest {
                    method: "POST".into(),
                    path: dispatch_path.clone(),
                    authorization: authorization.clone(),
                    accept: Some("text/event-stream".into()),
                    content_type: Some("application/json".into()),
                    body: Some(crate::protocol::encoding::b64url_encode(body.as_bytes())),
                    ..Default::default()
                };
                checked(channel.call(inner).await)
            }
        };
        match result {
            Ok(units) => {
                stats.ops += 1;
                stats.units += units;
                if stats.latencies.len() < MAX_SAMPLES {
                    stats.latencies.push(start.elapsed());
                }
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stats.errors += 1;
                stats.first_error.get_or_insert(e);
                // A failing target must not be hammered in a tight loop.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    stats
}

fn checked(result: Result<super::CallOutcome, super::ClientError>) -> Result<u64, String> {
    match result {
        Ok(o) if o.is_success() => Ok(o.frames as u64),
        Ok(o) => Err(format!("inner status {}", o.inner_status)),
        Err(e) => Err(e.to_string()),
    }
}

/// A JSON object of exactly `size` bytes (for sizes above 12).
fn padded_json(size: usize) -> Vec<u8> {
    let pad = size.saturating_sub(r#"{"pad":""}"#.len());
    format!("{{\"pad\":\"{}\"}}", "x".repeat(pad)).into_bytes()
}

/// Full in-process handshakes on one thread for `budget`: the protocol
/// core's own cost, which the HTTP handshake rate is compared against.
/// Returns (handshakes, seconds).
async fn core_handshakes(budget: Duration) -> (u64, f64) {
    tokio::task::spawn_blocking(move || {
        let mut rng = SystemRandom;
        let Ok(identity) = AgentIdentity::from_bytes(&rng.bytes()) else {
            return (0, 0.0);
        };
        let started = Instant::now();
        let mut done = 0u64;
        while started.elapsed() < budget {
            if !crate::peer::in_process_handshake(&identity, &mut rng) {
                break;
            }
            done += 1;
        }
        (done, started.elapsed().as_secs_f64())
    })
    .await
    .unwrap_or((0, 0.0))
}

fn percentile_ms(sorted: &[Duration], p: f64) -> Value {
    if sorted.is_empty() {
        return Value::Null;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    json!(round3(sorted[rank - 1].as_secs_f64() * 1000.0))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("4"), Ok(Duration::from_secs(4)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3 parsecs").is_err());
    }

    #[test]
    fn padding_is_exact() {
        assert_eq!(padded_json(1024).len(), 1024);
        assert_eq!(padded_json(65536).len(), 65536);
    }

    #[test]
    fn percentiles_pick_ranks() {
        let v: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&v, 0.5), json!(50.0));
        assert_eq!(percentile_ms(&v, 0.99), json!(99.0));
        assert_eq!(percentile_ms(&[], 0.5), Value::Null);
    }
}
