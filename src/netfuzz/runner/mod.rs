//! The fuzzing run: generate, run, judge, confirm on a fresh session,
//! bucket by signature and response shape, minimise, save; with liveness
//! probes, a corpus and progress. This module holds the run's settings,
//! its shared state and its summary; `worker` is the loop each worker
//! runs, `store` the files a run reads and writes (findings, corpus) and
//! `progress` what it shows while it runs (samples, the progress bar).

mod progress;
mod store;
mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::report::Level;

use super::case::{Signature, Step};
pub use super::dedup::{BucketSummary, ShapeSummary};
use super::exec::{HandshakeBudget, TargetInfo};
use super::gen::Endpoints;

pub use progress::Sample;
use progress::{progress_bar, sample, sample_until_stopped, update_bar};
use store::update_counts;
pub use store::{load_corpus, load_finding, FilesError};
use worker::{expiry_sentinel, worker};
pub use worker::{firing_shape, reproduce, run_case};

/// Everything one fuzzing run needs.
#[derive(Debug, Clone)]
pub struct FuzzConfig {
    /// The target.
    pub info: TargetInfo,
    /// The seed of every random choice.
    pub seed: u64,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many executions.
    pub max_execs: Option<u64>,
    /// Where inputs that reached new response shapes are kept between runs.
    pub corpus: Option<PathBuf>,
    /// Where findings are written.
    pub findings: Option<PathBuf>,
    /// Concurrent workers, each with its own session and input stream.
    pub concurrency: usize,
    /// The endpoints aimed at.
    pub endpoints: Endpoints,
    /// A liveness probe after every this many executions.
    pub liveness_every: u64,
    /// Draw the progress display on stderr.
    pub progress: bool,
    /// Stop at the first confirmed finding citing this requirement at
    /// this level or a stricter one (the self-test's kill matrix); `None`:
    /// run on.
    pub stop_on: Option<(String, Level)>,
}

/// The JSON summary printed at the end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The target label.
    pub target: String,
    /// Set when the target's TLS certificate was not verified (`--insecure`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// The seed.
    pub seed: u64,
    /// Executions (cases) run.
    pub execs: u64,
    /// Wall-clock seconds.
    pub elapsed_secs: f64,
    /// Executions per second.
    pub execs_per_sec: f64,
    /// Handshakes spent, honest and mutated, retries after `429` included.
    pub handshakes: u64,
    /// `429` answers to handshakes, waited out, never judged.
    pub rate_limited: u64,
    /// Mutated hellos left out because the budget had no spare handshake.
    pub hellos_deferred: u64,
    /// Corpus entries at the end.
    pub corpus_size: usize,
    /// Oracle hits that did not reproduce on a fresh session.
    pub unconfirmed: u64,
    /// Steps skipped, never judged: a session expiring beyond
    /// `--expiry-wait`, or one whose expiry another call already awaits.
    pub skipped: u64,
    /// Calls after expiry judged on a session seen serving just before it.
    pub expiry_checks: u64,
    /// Sessions kept aside for an expiry check that no longer served just
    /// before expiry (evicted under the run's handshake load), so unjudged.
    pub expiry_evicted: u64,
    /// The findings, one entry per bucket, each listing its shapes and
    /// carrying its requirement and level.
    pub findings: Vec<BucketSummary>,
    /// The signatures of the `MUST` findings: each fails the run.
    pub failures: Vec<String>,
    /// The signatures of the `SHOULD` findings: warnings (they fail the
    /// run only under `--strict`).
    pub warnings: Vec<String>,
    /// The signatures of the `UPSTREAM` findings: information (they fail
    /// the run only under `--strict`).
    pub information: Vec<String>,
    /// Set when the target stopped answering: the case number.
    pub target_died_at: Option<u64>,
    /// Why the run decided the target died.
    pub died_reason: Option<String>,
    /// The run's progress over time (for the HTML report's charts).
    pub timeline: Vec<Sample>,
    /// How many judged cases ended in each response shape
    /// (`endpoint status code`, or `closed`, `dropped`, `timeout`).
    pub response_classes: BTreeMap<String, u64>,
    /// Incomplete requests the target still held when a timed run ended:
    /// not waited out (the run ends by `--duration` plus `--timeout`) and
    /// not judged, only reported with how long they were held.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held_at_end: Vec<HeldAtEnd>,
}

/// A request still in flight when a timed run ended.
#[derive(Debug, Clone, Serialize)]
pub struct HeldAtEnd {
    /// The case number.
    pub case: u64,
    /// What was sent (the framing of the call).
    pub what: String,
    /// Seconds the target had held it.
    pub held_secs: f64,
}

#[derive(Debug, Default)]
struct Shared {
    buckets: BTreeMap<Signature, BucketSummary>,
    shapes: BTreeSet<String>,
    corpus: Vec<Vec<Step>>,
    unconfirmed: u64,
    skipped: u64,
    expiry_checks: u64,
    expiry_evicted: u64,
    died: Option<(u64, String)>,
    classes: BTreeMap<String, u64>,
}

struct Ctx {
    cfg: FuzzConfig,
    shared: Mutex<Shared>,
    budget: Mutex<HandshakeBudget>,
    execs: AtomicU64,
    stop: AtomicBool,
    deadline: Option<Instant>,
    preload: Vec<Vec<Step>>,
    /// The hellos of the run's honest sessions, for HS-3.
    freshness: std::sync::Mutex<crate::judge::handshake::Freshness>,
    /// The background cases on the wire: case number → (sent at, what).
    in_flight: std::sync::Mutex<BTreeMap<u64, (Instant, String)>>,
}

impl Ctx {
    fn next_case(&self) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let n = self.execs.fetch_add(1, Ordering::Relaxed);
        if self.cfg.max_execs.is_some_and(|m| n >= m) {
            self.execs.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(n)
    }

    /// The target as seen by a call after expiry that waits at most `wait`
    /// for its session to expire, and never past a timed run's end.
    fn info_waiting(&self, wait: Duration) -> TargetInfo {
        let mut info = self.cfg.info.clone();
        info.expiry_wait = match self.deadline {
            Some(deadline) => wait.min(deadline.saturating_duration_since(Instant::now())),
            None => wait,
        };
        info
    }

    /// Stops the run when `firing` is what it was asked to stop on.
    fn stop_if_sought(&self, firing: &super::oracle::Firing) {
        if let Some((id, level)) = &self.cfg.stop_on {
            if at_least(firing.level, *level) && firing.requirement.split(", ").any(|r| r == id) {
                self.stop.store(true, Ordering::Relaxed);
            }
        }
    }

    async fn died(&self, case: u64, why: String) {
        let mut s = self.shared.lock().await;
        if s.died.is_none() {
            s.died = Some((case, why));
        }
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Whether `level` is at least as strict as `floor` (MUST, then SHOULD,
/// then UPSTREAM).
pub fn at_least(level: Level, floor: Level) -> bool {
    let rank = |l: Level| match l {
        Level::Must => 2,
        Level::Should => 1,
        Level::Upstream => 0,
    };
    rank(level) >= rank(floor)
}

impl Summary {
    /// Whether the run fails: a `MUST` finding, or with `strict` any
    /// finding (as `test --strict` fails on warnings and information).
    pub fn failed(&self, strict: bool) -> bool {
        !self.failures.is_empty() || (strict && !self.findings.is_empty())
    }
}

/// Runs the fuzzer and returns its summary.
pub async fn run(cfg: FuzzConfig) -> Summary {
    let start = Instant::now();
    let preload: Vec<Vec<Step>> = cfg
        .corpus
        .as_deref()
        .map(load_corpus)
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.steps)
        .collect();
    let ctx = Arc::new(Ctx {
        budget: Mutex::new(HandshakeBudget::new(cfg.info.target.handshake_budget)),
        shared: Mutex::new(Shared::default()),
        execs: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        deadline: cfg.duration.map(|d| start + d),
        preload,
        in_flight: std::sync::Mutex::new(BTreeMap::new()),
        freshness: std::sync::Mutex::new(Default::default()),
        cfg,
    });
    // A timed run ends by its duration plus one answer's wait: whatever
    // still waits then (an incomplete request a target holds, a confirmation
    // behind it) is stopped and reported, not waited out.
    let hard_stop = ctx
        .deadline
        .map(|d| d + ctx.cfg.info.target.limits.response_timeout);
    let bar = progress_bar(&ctx);
    let ticker = bar.clone().map(|bar| {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                update_bar(&ctx, &bar, start).await;
            }
        })
    });
    let timeline = Arc::new(Mutex::new(vec![Sample {
        secs: 0.0,
        execs: 0,
        corpus: 0,
        findings: 0,
    }]));
    let sampler = tokio::spawn(sample_until_stopped(ctx.clone(), timeline.clone(), start));
    let workers: Vec<_> = (0..ctx.cfg.concurrency.max(1) as u64)
        .map(|id| tokio::spawn(worker(ctx.clone(), id)))
        .collect();
    let workers_done = Arc::new(AtomicBool::new(false));
    let sentinel = ctx
        .cfg
        .endpoints
        .call
        .then(|| tokio::spawn(expiry_sentinel(ctx.clone(), workers_done.clone())));
    for mut w in workers {
        let joined = match hard_stop {
            Some(at) => tokio::time::timeout_at(at, &mut w).await.ok(),
            None => Some((&mut w).await),
        };
        match joined {
            // Past the hard stop: its background cases go with it.
            None => w.abort(),
            Some(Err(e)) if !e.is_cancelled() => {
                // A worker that died must not look like a clean, quiet run.
                ctx.died(
                    ctx.execs.load(Ordering::Relaxed),
                    format!("fuzzer worker failed: {e}"),
                )
                .await;
            }
            Some(_) => {}
        }
    }
    workers_done.store(true, Ordering::Relaxed);
    if let Some(mut sentinel) = sentinel {
        match hard_stop {
            Some(at) => {
                if tokio::time::timeout_at(at, &mut sentinel).await.is_err() {
                    sentinel.abort();
                }
            }
            None => {
                let _ = sentinel.await;
            }
        }
    }
    let now = Instant::now();
    let held_at_end: Vec<HeldAtEnd> = ctx
        .in_flight
        .lock()
        .map(|m| {
            m.iter()
                .map(|(case, (sent, what))| HeldAtEnd {
                    case: *case,
                    what: what.clone(),
                    held_secs: now.saturating_duration_since(*sent).as_secs_f64(),
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(t) = ticker {
        t.abort();
    }
    sampler.abort();
    let mut timeline = std::mem::take(&mut *timeline.lock().await);
    timeline.push(sample(&ctx, start).await);
    if let Some(bar) = &bar {
        update_bar(&ctx, bar, start).await;
        bar.finish();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let execs = ctx.execs.load(Ordering::Relaxed);
    let (handshakes, rate_limited, hellos_deferred) = {
        let b = ctx.budget.lock().await;
        (b.total(), b.rate_limited(), b.hellos_deferred())
    };
    let s = ctx.shared.lock().await;
    let findings: Vec<BucketSummary> = s.buckets.values().cloned().collect();
    update_counts(&findings);
    let at = |level: Level| -> Vec<String> {
        findings
            .iter()
            .filter(|b| b.level == level)
            .map(|b| b.signature.clone())
            .collect()
    };
    let (failures, warnings, information) =
        (at(Level::Must), at(Level::Should), at(Level::Upstream));
    Summary {
        target: ctx.cfg.info.target.label.clone(),
        insecure: ctx.cfg.info.target.endpoint.net().settings().trust.insecure,
        seed: ctx.cfg.seed,
        execs,
        elapsed_secs: elapsed,
        execs_per_sec: if elapsed > 0.0 {
            execs as f64 / elapsed
        } else {
            0.0
        },
        handshakes,
        rate_limited,
        hellos_deferred,
        corpus_size: s.corpus.len(),
        unconfirmed: s.unconfirmed,
        skipped: s.skipped,
        expiry_checks: s.expiry_checks,
        expiry_evicted: s.expiry_evicted,
        findings,
        failures,
        warnings,
        information,
        target_died_at: s.died.as_ref().map(|d| d.0),
        died_reason: s.died.as_ref().map(|d| d.1.clone()),
        timeline,
        response_classes: s.classes.clone(),
        held_at_end,
    }
}
