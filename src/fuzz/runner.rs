//! The fuzzing loop: generate, run, judge, confirm on a fresh session,
//! bucket by signature and response shape, minimise, save; with liveness
//! probes, a corpus and progress.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::clock::unix_secs as now_secs;
use crate::report::Level;
use crate::rng::SeededRandom;

use super::case::{CorpusEntry, Exchange, Finding, Signature, Step};
use super::dedup::{self, Admission};
pub use super::dedup::{BucketSummary, ShapeSummary};
use super::exec::{self, ExecError, HandshakeBudget, Outcome, Session, TargetInfo};
use super::gen::{Endpoints, Generator};
use super::oracle::{self, Firing, Oracle};
use super::shrink::{self, Shrinker};

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
}

/// The run's progress at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub secs: f64,
    /// Executions so far.
    pub execs: u64,
    /// Corpus entries so far.
    pub corpus: usize,
    /// Confirmed findings so far, all buckets together.
    pub findings: u64,
}

/// Samples kept at most: past it every other one is dropped and the
/// interval doubles, so a night-long run stays small.
const MAX_SAMPLES: usize = 240;

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

/// Runs one step list on `session`, stopping at the first oracle hit.
pub async fn run_case(
    info: &TargetInfo,
    session: &mut Session,
    steps: &[Step],
) -> (Option<Firing>, Vec<Outcome>) {
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(steps.len());
    let mut last_call = None;
    for step in steps {
        let outcome = exec::run_step(info, session, step, &mut last_call).await;
        let firing = oracle::judge(info, session, step, &outcome, &outcomes);
        outcomes.push(outcome);
        if firing.is_some() {
            return (firing, outcomes);
        }
    }
    (None, outcomes)
}

/// Runs `steps` on a fresh session; the firing oracle, if any, and the exchanges.
pub async fn reproduce(
    info: &TargetInfo,
    steps: &[Step],
    rng: &mut SeededRandom,
    budget: &Mutex<HandshakeBudget>,
) -> Result<(Option<Firing>, Vec<Outcome>), ExecError> {
    let mut session = {
        let b = budget.lock().await;
        Session::open(info, rng, &b).await?
    };
    Ok(run_case(info, &mut session, steps).await)
}

/// The response shape of the step that fired: the last one run.
pub fn firing_shape(outcomes: &[Outcome]) -> String {
    outcomes.last().map(oracle::shape).unwrap_or_default()
}

/// Tries smaller versions of `steps` (see [`super::shrink`]) and keeps
/// those that still fire `sig` with `shape`, one fresh session per try.
async fn minimise(
    info: &TargetInfo,
    steps: Vec<Step>,
    sig: &Signature,
    shape: &str,
    rng: &mut SeededRandom,
    budget: &Mutex<HandshakeBudget>,
) -> Vec<Step> {
    if sig.oracle == Oracle::Timeout.name() || sig.oracle == Oracle::SlowRequest.name() {
        // Each try would cost a full timeout; the input is small anyway.
        return steps;
    }
    let mut shrinker = Shrinker::new(steps, shrink::MAX_TRIES);
    while let Some(candidate) = shrinker.next_candidate() {
        let fired = match reproduce(info, &candidate, rng, budget).await {
            Ok((Some(v), outcomes)) => v.signature == *sig && firing_shape(&outcomes) == shape,
            _ => false,
        };
        shrinker.record(fired);
    }
    shrinker.into_best()
}

fn exchanges(outcomes: &[Outcome]) -> Vec<Exchange> {
    outcomes
        .iter()
        .map(|o| Exchange {
            endpoint: o.endpoint.to_string(),
            sent: exec::lossy(&o.sent, 4096),
            received: o.reply.describe(),
        })
        .collect()
}

/// Errors reading or writing the run's files.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file did not hold what it should.
    #[error("{path}: {reason}")]
    Format {
        /// The path.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), FilesError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| FilesError::Format {
        path: path.into(),
        reason: e.to_string(),
    })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| FilesError::Io {
            path: dir.into(),
            source,
        })?;
    }
    std::fs::write(path, text + "\n").map_err(|source| FilesError::Io {
        path: path.into(),
        source,
    })
}

/// Loads a saved finding.
pub fn load_finding(path: &Path) -> Result<Finding, FilesError> {
    let text = std::fs::read_to_string(path).map_err(|source| FilesError::Io {
        path: path.into(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| FilesError::Format {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// Loads every corpus entry in `dir` (missing dir: none), sorted by name so
/// runs are repeatable.
pub fn load_corpus(dir: &Path) -> Vec<CorpusEntry> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect()
}

fn shape_file(shape: &str) -> String {
    format!("{:016x}.json", dedup::stable_hash(shape))
}

struct Ctx {
    cfg: FuzzConfig,
    shared: Mutex<Shared>,
    budget: Mutex<HandshakeBudget>,
    execs: AtomicU64,
    stop: AtomicBool,
    deadline: Option<Instant>,
    preload: Vec<Vec<Step>>,
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

    async fn died(&self, case: u64, why: String) {
        let mut s = self.shared.lock().await;
        if s.died.is_none() {
            s.died = Some((case, why));
        }
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn worker(ctx: Arc<Ctx>, id: u64) {
    let info = &ctx.cfg.info;
    let mut gen = Generator::new(ctx.cfg.seed, id, ctx.cfg.endpoints)
        .thrifty(ctx.cfg.info.target.handshake_budget.is_some());
    let mut rng = exec::handshake_rng(ctx.cfg.seed, id);
    let mut session: Option<Session> = None;
    let mut preload = if id == 0 {
        ctx.preload.clone()
    } else {
        Vec::new()
    };
    preload.reverse();
    let mut pick = SeededRandom::new(ctx.cfg.seed, &format!("netfuzz-corpus-{id}"));
    let mut slow = tokio::task::JoinSet::new();
    // The expiry (Unix seconds) a call after expiry already waits for.
    let mut expiry_awaited: Option<i64> = None;
    while let Some(case) = ctx.next_case() {
        let steps = match preload.pop() {
            Some(s) => s,
            None => {
                let corpus_pick = {
                    let s = ctx.shared.lock().await;
                    if !s.corpus.is_empty() && pick.below(4) == 0 {
                        Some(s.corpus[pick.below(s.corpus.len() as u64) as usize].clone())
                    } else {
                        None
                    }
                };
                match corpus_pick {
                    Some(base) => gen.mutate(base),
                    None => gen.case(),
                }
            }
        };
        if !session.as_ref().is_some_and(|s| s.usable(now_secs())) {
            let opened = {
                let b = ctx.budget.lock().await;
                Session::open(info, &mut rng, &b).await
            };
            match opened {
                Ok(s) => session = Some(s),
                Err(e) => {
                    ctx.died(case, format!("the honest handshake failed: {e}"))
                        .await;
                    return;
                }
            }
        }
        let Some(current) = session.as_mut() else {
            return;
        };
        // A mutated hello counts against the target's rate limit too. It
        // takes only a spare handshake, so the stream never stalls on the
        // budget and honest sessions keep one in reserve; without a spare
        // one it is left out, unless hellos are all this run may send.
        let hellos = steps
            .iter()
            .filter(|s| matches!(s, Step::Handshake { .. }))
            .count();
        if hellos > 0 {
            let only_hellos = !ctx.cfg.endpoints.call && !ctx.cfg.endpoints.plaintext;
            let b = ctx.budget.lock().await;
            if only_hellos {
                for _ in 0..hellos {
                    b.acquire().await;
                }
            } else if !b.try_spare(hellos) {
                b.note_hello_deferred();
                drop(b);
                ctx.execs.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
        }
        if steps.iter().any(|s| matches!(s, Step::CallAfterExpiry)) {
            let expires_at = current.core().expires_at();
            if expiry_awaited == Some(expires_at) {
                // A call after this expiry already waits: more would all
                // fire in the same instant, a burst that can overflow the
                // target's accept queue and pass for a dead target.
                ctx.shared.lock().await.skipped += 1;
                continue;
            }
            expiry_awaited = Some(expires_at);
        }
        if waits_for_server(&steps) {
            // These inputs wait out the target's body timeout; run them
            // beside the stream so the wait is not the fuzzer's rate.
            let mut fork = current.fork();
            while slow.len() >= MAX_SLOW_IN_FLIGHT {
                let _ = slow.join_next().await;
            }
            let ctx = ctx.clone();
            slow.spawn(async move {
                let info = &ctx.info_waiting(ctx.cfg.info.expiry_wait);
                let (firing, outcomes) = run_case(info, &mut fork, &steps).await;
                if count_skipped(&ctx, &outcomes).await {
                    return;
                }
                record_shapes(&ctx, &steps, &outcomes).await;
                if let Some(v) = firing {
                    let mut rng = SeededRandom::new(ctx.cfg.seed, &format!("netfuzz-slow-{case}"));
                    confirm(&ctx, case, steps, v, &outcomes, &mut rng).await;
                    probe(&ctx, case, &mut rng).await;
                }
            });
            continue;
        }
        let (firing, outcomes) = run_case(info, current, &steps).await;
        if current.burned {
            session = None;
        }
        if was_rate_limited(&outcomes) {
            // The target refused the mutated hello unread: nothing was
            // tested, so back off and neither judge nor keep the input.
            let wait = {
                let b = ctx.budget.lock().await;
                b.note_rate_limited();
                b.backoff()
            };
            tokio::time::sleep(wait).await;
            continue;
        }
        record_shapes(&ctx, &steps, &outcomes).await;
        if let Some(v) = firing {
            // The input may have left state behind: start clean.
            session = None;
            confirm(&ctx, case, steps, v, &outcomes, &mut rng).await;
            if !probe(&ctx, case, &mut rng).await {
                return;
            }
        } else if ctx.cfg.liveness_every > 0 && case % ctx.cfg.liveness_every == 0 && case > 0 {
            if let Some(s) = session.as_mut() {
                // Every other periodic probe is a one-event stream: as cheap
                // as a run, and it checks the streaming path stays alive.
                let call = if (case / ctx.cfg.liveness_every) % 2 == 1 {
                    Generator::dispatch_call(1, 0)
                } else {
                    Generator::valid_call()
                };
                if exec::probe_with(info, s, call).await.is_err()
                    && !probe(&ctx, case, &mut rng).await
                {
                    return;
                }
            }
        }
    }
    while slow.join_next().await.is_some() {}
}

/// Counts a case whose step was skipped; true when one was (the case is
/// then neither judged nor kept).
async fn count_skipped(ctx: &Ctx, outcomes: &[Outcome]) -> bool {
    let skipped = outcomes
        .iter()
        .any(|o| matches!(o.reply, exec::Reply::Skipped(_)));
    if skipped {
        ctx.shared.lock().await.skipped += 1;
    }
    skipped
}

/// Whether a handshake step of the case was answered `429`.
fn was_rate_limited(outcomes: &[Outcome]) -> bool {
    outcomes.iter().any(|o| {
        o.endpoint == "/secure/session" && matches!(o.reply, exec::Reply::Http { status: 429, .. })
    })
}

/// Keeps one honest session aside at a time and calls it once it has
/// expired (SES-1). The workers' sessions are mostly burned by their inputs
/// long before they expire, so without it a target with a real one-hour
/// TTL would hardly ever be checked; it costs one handshake per TTL.
///
/// A target may evict a session early (HS-9: the one closest to expiry
/// goes first), and a 401 from eviction says nothing about expiry. So just
/// before expiry the sentinel checks that its session still serves; a
/// round whose session is already gone is counted, not judged. (An
/// eviction in the seconds between that check and the call can only hide
/// a bug, never raise a false one: the honest answer is the same 401.) A
/// hit is confirmed by the next round on a fresh session, as every
/// finding is.
async fn expiry_sentinel(ctx: Arc<Ctx>, workers_done: Arc<AtomicBool>) {
    let mut rng = SeededRandom::new(ctx.cfg.seed, "netfuzz-expiry-sentinel");
    let stopped = || ctx.stop.load(Ordering::Relaxed);
    let mut pending: Option<Hit> = None;
    while !stopped() && (pending.is_some() || !workers_done.load(Ordering::Relaxed)) {
        let opened = {
            let b = ctx.budget.lock().await;
            Session::open(&ctx.cfg.info, &mut rng, &b).await
        };
        // A failing handshake is the workers' to report.
        let Ok(mut session) = opened else {
            break;
        };
        // A timed run waits as long as it has left, so an overnight run
        // covers a one-hour TTL; a bounded run waits --expiry-wait.
        let info = ctx.info_waiting(match ctx.deadline {
            Some(_) => Duration::MAX,
            None => ctx.cfg.info.expiry_wait,
        });
        let expired_at = Instant::now() + crate::clock::until_expired(session.core().expires_at());
        if expired_at > Instant::now() + info.expiry_wait {
            break;
        }
        let guard_from = expired_at.checked_sub(SENTINEL_GUARD).unwrap_or(expired_at);
        if !sleep_unless_stopped(&ctx, guard_from).await {
            break;
        }
        if exec::probe(&info, &mut session).await.is_err() {
            // Evicted (or refused) before expiry: nothing to judge.
            ctx.shared.lock().await.expiry_evicted += 1;
            continue;
        }
        let steps = vec![Step::CallAfterExpiry];
        let (firing, outcomes) = run_case(&info, &mut session, &steps).await;
        ctx.shared.lock().await.expiry_checks += 1;
        let Some(firing) = firing else {
            if pending.take().is_some() {
                ctx.shared.lock().await.unconfirmed += 1;
            }
            continue;
        };
        let hit = Hit {
            case: ctx.execs.load(Ordering::Relaxed),
            steps,
            shape: firing_shape(&outcomes),
            firing,
        };
        match pending.take() {
            Some(first) if first.same_as(&hit) => {
                book(&ctx, &info, first, outcomes, &mut rng).await;
            }
            Some(_) => {
                ctx.shared.lock().await.unconfirmed += 1;
                pending = Some(hit);
            }
            None => pending = Some(hit),
        }
    }
    if pending.is_some() {
        ctx.shared.lock().await.unconfirmed += 1;
    }
}

/// How long before expiry the sentinel checks that its session still
/// serves: above one whole second, since peers compare whole seconds.
const SENTINEL_GUARD: Duration = Duration::from_millis(3500);

/// Sleeps until `until`; false if the run was stopped meanwhile.
async fn sleep_unless_stopped(ctx: &Ctx, until: Instant) -> bool {
    while Instant::now() < until {
        if ctx.stop.load(Ordering::Relaxed) {
            return false;
        }
        tokio::time::sleep_until(until.min(Instant::now() + Duration::from_secs(1))).await;
    }
    !ctx.stop.load(Ordering::Relaxed)
}

/// Most background cases in flight per worker.
const MAX_SLOW_IN_FLIGHT: usize = 64;

/// Whether a case's answer may wait on a timeout: raw-framed requests end
/// when the target gives up on the body or the connection goes quiet.
fn waits_for_server(steps: &[Step]) -> bool {
    matches!(steps, [Step::Call(c)] if !c.framing.is_normal())
        || steps.iter().any(|s| matches!(s, Step::CallAfterExpiry))
}

/// A valid call on a fresh session; on failure, once more after a pause,
/// then the run stops with "target died".
async fn probe(ctx: &Ctx, case: u64, rng: &mut SeededRandom) -> bool {
    let mut last = String::new();
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let opened = {
            let b = ctx.budget.lock().await;
            Session::open(&ctx.cfg.info, rng, &b).await
        };
        match opened {
            Ok(mut s) => match exec::probe(&ctx.cfg.info, &mut s).await {
                Ok(()) => return true,
                Err(e) => last = e,
            },
            Err(e) => last = e.to_string(),
        }
    }
    ctx.died(case, format!("liveness probe failed: {last}"))
        .await;
    false
}

async fn record_shapes(ctx: &Ctx, steps: &[Step], outcomes: &[Outcome]) {
    let Some(last) = outcomes.last() else {
        return;
    };
    let shape = oracle::shape(last);
    let mut s = ctx.shared.lock().await;
    *s.classes.entry(shape.clone()).or_default() += 1;
    if s.shapes.insert(shape.clone()) {
        s.corpus.push(steps.to_vec());
        if let Some(dir) = &ctx.cfg.corpus {
            let entry = CorpusEntry {
                shape: shape.clone(),
                steps: steps.to_vec(),
            };
            let path = dir.join(shape_file(&shape));
            if !path.exists() {
                if let Err(e) = write_json(&path, &entry) {
                    tracing::warn!("cannot save a corpus entry: {e}");
                }
            }
        }
    }
}

/// An oracle hit: the case, its steps, the firing and its shape.
struct Hit {
    case: u64,
    steps: Vec<Step>,
    firing: Firing,
    shape: String,
}

impl Hit {
    /// Whether `other` fired with the same signature and response shape.
    fn same_as(&self, other: &Hit) -> bool {
        self.firing.signature == other.firing.signature && self.shape == other.shape
    }
}

/// Runs a hit again on a fresh session; when it fires with the same
/// signature and shape it is booked (see [`book`]).
async fn confirm(
    ctx: &Ctx,
    case: u64,
    steps: Vec<Step>,
    first: Firing,
    first_outcomes: &[Outcome],
    rng: &mut SeededRandom,
) {
    let info = &ctx.info_waiting(ctx.cfg.info.expiry_wait);
    let hit = Hit {
        case,
        shape: firing_shape(first_outcomes),
        steps,
        firing: first,
    };
    let again = match reproduce(info, &hit.steps, rng, &ctx.budget).await {
        Ok((Some(v), o))
            if v.signature == hit.firing.signature && firing_shape(&o) == hit.shape =>
        {
            o
        }
        _ => {
            ctx.shared.lock().await.unconfirmed += 1;
            return;
        }
    };
    book(ctx, info, hit, again, rng).await;
}

/// Counts a confirmed hit in its bucket; a new shape in the bucket is
/// minimised and saved. `confirmed` holds the confirming run's exchanges.
async fn book(
    ctx: &Ctx,
    info: &TargetInfo,
    hit: Hit,
    confirmed: Vec<Outcome>,
    rng: &mut SeededRandom,
) {
    let Hit {
        case,
        steps,
        firing: first,
        shape,
    } = hit;
    // Booked before minimising, so a second worker with the same shape
    // only counts it.
    let admission = {
        let mut s = ctx.shared.lock().await;
        dedup::admit(&mut s.buckets, &first.signature, &shape, &first.detail)
    };
    let Admission::New { file_name } = admission else {
        return;
    };
    let Some(dir) = &ctx.cfg.findings else {
        return;
    };
    let small = minimise(
        info,
        steps.clone(),
        &first.signature,
        &shape,
        rng,
        &ctx.budget,
    )
    .await;
    let outcomes = if small == steps {
        // Nothing shrank: the confirming run already shows the exchanges.
        confirmed
    } else {
        match reproduce(info, &small, rng, &ctx.budget).await {
            Ok((_, o)) => o,
            Err(_) => confirmed,
        }
    };
    let finding = Finding {
        signature: first.signature.clone(),
        detail: first.detail.clone(),
        seed: ctx.cfg.seed,
        case,
        count: 1,
        steps: small,
        exchanges: exchanges(&outcomes),
        target: info.target.label.clone(),
        notes: BTreeMap::new(),
        shape: Some(shape.clone()),
        requirement: Some(first.requirement.to_string()),
        level: Some(first.level),
    };
    let path = dir.join(file_name);
    match write_json(&path, &finding) {
        Ok(()) => {
            let mut s = ctx.shared.lock().await;
            dedup::saved(
                &mut s.buckets,
                &first.signature,
                &shape,
                path.display().to_string(),
            );
        }
        Err(e) => tracing::warn!("cannot save a finding: {e}"),
    }
}

/// Rewrites each saved finding's `count` with the run's final tally for
/// its shape.
fn update_counts(buckets: &[BucketSummary]) {
    for shape in buckets.iter().flat_map(|b| &b.shapes) {
        let Some(path) = &shape.file else { continue };
        let path = Path::new(path);
        if let Ok(mut f) = load_finding(path) {
            f.count = shape.count;
            let _ = write_json(path, &f);
        }
    }
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
        cfg,
    });
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
    for w in workers {
        if let Err(e) = w.await {
            // A worker that died must not look like a clean, quiet run.
            ctx.died(
                ctx.execs.load(Ordering::Relaxed),
                format!("fuzzer worker failed: {e}"),
            )
            .await;
        }
    }
    workers_done.store(true, Ordering::Relaxed);
    if let Some(sentinel) = sentinel {
        let _ = sentinel.await;
    }
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
    }
}

async fn sample(ctx: &Ctx, start: Instant) -> Sample {
    let execs = ctx.execs.load(Ordering::Relaxed);
    let s = ctx.shared.lock().await;
    Sample {
        secs: start.elapsed().as_secs_f64(),
        execs,
        corpus: s.corpus.len(),
        findings: s.buckets.values().map(|b| b.count).sum(),
    }
}

/// Records a [`Sample`] every interval (a tenth of a second at first) until
/// aborted, thinning the record as it grows past [`MAX_SAMPLES`].
async fn sample_until_stopped(ctx: Arc<Ctx>, timeline: Arc<Mutex<Vec<Sample>>>, start: Instant) {
    let mut every = Duration::from_millis(100);
    loop {
        tokio::time::sleep(every).await;
        let now = sample(&ctx, start).await;
        let mut t = timeline.lock().await;
        t.push(now);
        if t.len() > MAX_SAMPLES {
            let kept: Vec<Sample> = t.iter().copied().step_by(2).collect();
            *t = kept;
            every *= 2;
        }
    }
}

fn progress_bar(ctx: &Ctx) -> Option<indicatif::ProgressBar> {
    if !ctx.cfg.progress {
        return None;
    }
    let bar = match ctx.cfg.max_execs {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
    bar.set_style(style);
    Some(bar)
}

async fn update_bar(ctx: &Ctx, bar: &indicatif::ProgressBar, start: Instant) {
    let execs = ctx.execs.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64().max(0.001);
    let s = ctx.shared.lock().await;
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    for (sig, b) in &s.buckets {
        *kinds.entry(sig.oracle.as_str()).or_default() += b.count;
    }
    let kinds = if kinds.is_empty() {
        "none".to_string()
    } else {
        kinds
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let left = match (ctx.deadline, ctx.cfg.max_execs) {
        (Some(d), _) => format!(
            "{}s left",
            d.saturating_duration_since(Instant::now()).as_secs()
        ),
        (None, Some(m)) => format!("{} execs left", m.saturating_sub(execs)),
        (None, None) => "no limit".into(),
    };
    bar.set_position(execs);
    bar.set_message(format!(
        "{execs} execs ({:.0}/s) | findings: {kinds} | corpus {} | {left}",
        execs as f64 / elapsed,
        s.corpus.len()
    ));
}
