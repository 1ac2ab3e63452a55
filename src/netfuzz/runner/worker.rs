//! The loop each worker runs: draw a case (from the corpus or fresh), run
//! it on the worker's session, judge each step, and for a hit confirm it on
//! a fresh session, book it in its bucket and minimise it; with the
//! liveness probes and the expiry sentinel beside it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::clock::unix_secs as now_secs;
use crate::rng::SeededRandom;

use super::super::case::{Finding, Signature, Step};
use super::super::dedup::{self, Admission};
use super::super::exec::{self, ExecError, HandshakeBudget, Outcome, Session, TargetInfo};
use super::super::gen::Generator;
use super::super::oracle::{self, Firing, Oracle};
use super::super::shrink::{self, Shrinker};
use super::{store, CaseNumbers, Ctx};

/// Runs one step list on `session`, stopping at the first oracle hit.
pub async fn run_case(
    info: &TargetInfo,
    session: &mut Session,
    steps: &[Step],
) -> (Option<Firing>, Vec<Outcome>) {
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(steps.len());
    let mut case = exec::Case::new(info, session);
    for step in steps {
        let outcome = case.step(step).await;
        let firing = oracle::judge(info, step, &outcome, &outcomes);
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
    if [Oracle::Timeout, Oracle::HeldRequest, Oracle::SlowRequest]
        .iter()
        .any(|o| sig.oracle == o.name())
    {
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

/// The corpus entries one worker draws from: those its own cases reached
/// (a new response shape for this worker), so what it mutates does not
/// depend on how its cases interleave with the other workers'.
#[derive(Debug, Default)]
struct Picks {
    shapes: BTreeSet<String>,
    entries: Vec<Vec<Step>>,
}

/// Whether the `workers`-worker run's periodic liveness probe falls to
/// worker `id` at `case`, and which one it is: the n-th probe is due at
/// case `n × every`; worker `n mod workers` makes it at its first case
/// from there (with one worker: at exactly that case).
fn probe_due(case: u64, id: u64, workers: u64, every: u64) -> Option<u64> {
    if every == 0 {
        return None;
    }
    let n = case / every;
    (n > 0 && n % workers == id && case - n * every < workers).then_some(n)
}

pub(super) async fn worker(ctx: Arc<Ctx>, id: u64, workers: u64) {
    let info = &ctx.cfg.info;
    let mut cases = CaseNumbers::new(id, workers);
    let mut picks = Picks::default();
    let thrifty = ctx.cfg.info.target.handshake_budget.is_some();
    let mut gen = Generator::new(ctx.cfg.seed, id, ctx.cfg.endpoints).thrifty(thrifty);
    let mut rng = exec::handshake_rng(ctx.cfg.seed, id);
    let mut session: Option<Session> = None;
    // The corpus loaded at start is dealt out as the case numbers are:
    // entry i to worker i mod k, each run once, in order.
    let mut preload: Vec<Vec<Step>> = ctx
        .preload
        .iter()
        .skip(id as usize)
        .step_by(workers.max(1) as usize)
        .cloned()
        .collect();
    preload.reverse();
    let mut pick = SeededRandom::new(ctx.cfg.seed, &format!("netfuzz-corpus-{id}"));
    let mut slow = tokio::task::JoinSet::new();
    // The expiry (Unix seconds) a call after expiry already waits for.
    let mut expiry_awaited: Option<i64> = None;
    while let Some(case) = ctx.next_case(&mut cases) {
        let steps = match preload.pop() {
            Some(s) => s,
            None => {
                let own = &picks.entries;
                let corpus_pick = (!own.is_empty() && pick.below(4) == 0)
                    .then(|| own[pick.below(own.len() as u64) as usize].clone());
                match corpus_pick {
                    Some(base) => gen.mutate(base),
                    None => gen.case(),
                }
            }
        };
        if !session.as_ref().is_some_and(|s| s.usable(now_secs())) {
            let opened = async {
                let b = ctx.budget.lock().await;
                Session::open(info, &mut rng, &b).await
            };
            // A timed run does not wait for the handshake budget past its end.
            let opened = match ctx.deadline {
                Some(end) => match tokio::time::timeout_at(end, opened).await {
                    Ok(opened) => opened,
                    Err(_) => {
                        ctx.release_case(&mut cases);
                        break;
                    }
                },
                None => opened.await,
            };
            match opened {
                Ok(s) => {
                    judge_hello(&ctx, &s.hello).await;
                    session = Some(s);
                }
                Err(e) if e.hello_firing().is_some() => {
                    if let Some(f) = e.hello_firing() {
                        stop_with_finding(&ctx, &f).await;
                    }
                    return;
                }
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
                ctx.release_case(&mut cases);
                continue;
            }
        }
        if steps.iter().any(|s| matches!(s, Step::CallAfterExpiry)) {
            let expires_at = current.expires_at();
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
            while slow.try_join_next().is_some() {}
            if slow.len() >= MAX_SLOW_IN_FLIGHT {
                // A target that holds every incomplete request would stall
                // the stream here: leave this input out instead.
                ctx.release_case(&mut cases);
                ctx.shared.lock().await.skipped += 1;
                continue;
            }
            let mut fork = current.fork();
            let ctx = ctx.clone();
            if let Ok(mut m) = ctx.in_flight.lock() {
                m.insert(case, (Instant::now(), describe_slow(&steps)));
            }
            slow.spawn(async move {
                let info = &ctx.info_waiting(ctx.cfg.info.expiry_wait);
                let (firing, outcomes) = run_case(info, &mut fork, &steps).await;
                if let Ok(mut m) = ctx.in_flight.lock() {
                    m.remove(&case);
                }
                if count_skipped(&ctx, &outcomes).await {
                    return;
                }
                record_shapes(&ctx, &steps, &outcomes, None).await;
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
        record_shapes(&ctx, &steps, &outcomes, Some(&mut picks)).await;
        if let Some(v) = firing.as_ref().filter(|_| thrifty) {
            if count_if_known(&ctx, v, &firing_shape(&outcomes)).await {
                // Under a handshake budget a repeat of a confirmed hit is
                // only counted: confirming it again, and the fresh session
                // and liveness probe that go with it, would spend the
                // budget on what is already known, and a lenient target
                // that repeats one warning every few cases would stall the
                // stream. The first of each signature and shape is still
                // confirmed on a fresh session.
                continue;
            }
        }
        if let Some(v) = firing {
            // The input may have left state behind: start clean.
            session = None;
            confirm(&ctx, case, steps, v, &outcomes, &mut rng).await;
            if !probe(&ctx, case, &mut rng).await {
                return;
            }
        } else if let Some(n) = probe_due(case, id, workers, ctx.cfg.liveness_every) {
            if let Some(s) = session.as_mut() {
                // Every other periodic probe is a one-event stream: as cheap
                // as a run, and it checks the streaming path stays alive.
                let call = if n % 2 == 1 {
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
    // A timed run gives its background cases a short grace after its end;
    // what is still held then is reported by the run, not waited out.
    let drain = async { while slow.join_next().await.is_some() {} };
    match ctx.deadline {
        Some(end) => {
            let grace = ctx.cfg.info.target.limits.response_timeout.min(END_GRACE);
            if tokio::time::timeout_at(end.max(Instant::now()) + grace, drain)
                .await
                .is_err()
            {
                slow.abort_all();
            }
        }
        None => drain.await,
    }
}

/// How long past a timed run's end its background cases may still finish.
const END_GRACE: Duration = Duration::from_secs(2);

/// Counts a case whose step was skipped; true when one was (the case is
/// then neither judged nor kept).
async fn count_skipped(ctx: &Ctx, outcomes: &[Outcome]) -> bool {
    let skipped = outcomes.iter().any(|o| o.skipped.is_some());
    if skipped {
        ctx.shared.lock().await.skipped += 1;
    }
    skipped
}

/// Whether a handshake step of the case was answered `429`.
fn was_rate_limited(outcomes: &[Outcome]) -> bool {
    outcomes
        .iter()
        .any(|o| o.endpoint == "/secure/session" && o.answer.status == 429)
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
pub(super) async fn expiry_sentinel(ctx: Arc<Ctx>, workers_done: Arc<AtomicBool>) {
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
        let expired_at = Instant::now() + crate::clock::until_expired(session.expires_at());
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

/// What a background case sends, for the report of those still held at
/// the end of a run.
fn describe_slow(steps: &[Step]) -> String {
    match steps {
        [Step::Call(c)] if !c.framing.is_normal() => format!("call ({})", c.framing.name()),
        _ => "call after expiry".into(),
    }
}

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
                Err(f) if answers_wrongly(&f) => {
                    stop_with_finding(ctx, &f).await;
                    return false;
                }
                Err(f) => last = f.detail,
            },
            Err(e) => match e.hello_firing() {
                Some(f) => {
                    stop_with_finding(ctx, &f).await;
                    return false;
                }
                None => last = e.to_string(),
            },
        }
    }
    ctx.died(case, format!("liveness probe failed: {last}"))
        .await;
    false
}

/// Whether a failed probe shows a target that answers in the protocol,
/// wrongly (a frame that does not open, a missing `fin`, a refusal), as
/// opposed to one that stopped answering (exit 3).
fn answers_wrongly(firing: &Firing) -> bool {
    ![
        Oracle::Timeout,
        Oracle::DroppedConnection,
        Oracle::ServerError,
    ]
    .iter()
    .any(|o| firing.signature.oracle == o.name())
}

/// Judges an honest session's ServerHello as the target wrote it: its
/// encodings (ENC-1, ENC-2) and its freshness against the run's earlier
/// sessions (HS-3). A hit is booked at once: it is a fact of the bytes.
async fn judge_hello(ctx: &Ctx, hello: &[u8]) {
    let firings = match ctx.freshness.lock() {
        Ok(mut fresh) => oracle::judge_hello(&mut fresh, hello),
        Err(_) => Vec::new(),
    };
    for firing in firings {
        admit_honest(ctx, &firing).await;
        ctx.stop_if_sought(&firing);
    }
}

/// Books a finding of an honest session (not of a fuzz case's input).
async fn admit_honest(ctx: &Ctx, firing: &Firing) {
    let mut s = ctx.shared.lock().await;
    dedup::admit(
        &mut s.buckets,
        &firing.signature,
        "honest session",
        &firing.detail,
    );
}

/// Books a finding that no fresh honest session escapes (the ServerHello
/// is refused, or a valid call on a fresh session fails) and stops the
/// run: nothing more can be judged, but the target did not die.
async fn stop_with_finding(ctx: &Ctx, firing: &Firing) {
    admit_honest(ctx, firing).await;
    ctx.stop.store(true, Ordering::Relaxed);
}

/// Counts a judged case's response shape; a shape new to the run goes
/// into the corpus (and its folder), one new to the worker into `picks`.
/// Background cases pass no `picks`: when they end depends on the target's
/// timeouts, so what the worker draws must not.
async fn record_shapes(ctx: &Ctx, steps: &[Step], outcomes: &[Outcome], picks: Option<&mut Picks>) {
    let Some(last) = outcomes.last() else {
        return;
    };
    let shape = oracle::shape(last);
    if let Some(picks) = picks {
        if !picks.shapes.contains(&shape) {
            picks.shapes.insert(shape.clone());
            picks.entries.push(steps.to_vec());
        }
    }
    let mut s = ctx.shared.lock().await;
    match s.classes.get_mut(&shape) {
        Some(n) => *n += 1,
        None => {
            s.classes.insert(shape.clone(), 1);
        }
    }
    if !s.shapes.contains(&shape) {
        s.shapes.insert(shape.clone());
        s.corpus.push(steps.to_vec());
        if let Some(dir) = &ctx.cfg.corpus {
            store::save_corpus_entry(dir, &shape, steps);
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

/// Counts `firing` as a repeat when its signature and `shape` are already
/// booked (or its bucket keeps no more shapes); false, counting nothing,
/// for a hit that is new and must be confirmed.
async fn count_if_known(ctx: &Ctx, firing: &Firing, shape: &str) -> bool {
    let mut s = ctx.shared.lock().await;
    if !dedup::is_known(&s.buckets, &firing.signature, shape) {
        return false;
    }
    dedup::admit(&mut s.buckets, &firing.signature, shape, &firing.detail);
    drop(s);
    ctx.stop_if_sought(firing);
    true
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
    ctx.stop_if_sought(&first);
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
        exchanges: store::exchanges(&outcomes),
        target: info.target.label.clone(),
        notes: BTreeMap::new(),
        shape: Some(shape.clone()),
        requirement: Some(first.requirement.to_string()),
        level: Some(first.level),
    };
    match store::save_finding(dir, &file_name, &finding) {
        Ok(path) => {
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

#[cfg(test)]
mod tests {
    use super::probe_due;

    fn probes(workers: u64, every: u64, upto: u64) -> Vec<(u64, u64, u64)> {
        (0..upto)
            .filter_map(|case| {
                let id = case % workers;
                probe_due(case, id, workers, every).map(|n| (n, id, case))
            })
            .collect()
    }

    #[test]
    fn one_worker_probes_at_every_multiple() {
        assert_eq!(
            probes(1, 200, 601),
            vec![(1, 0, 200), (2, 0, 400), (3, 0, 600)]
        );
        assert!(probes(1, 0, 601).is_empty());
    }

    #[test]
    fn several_workers_share_the_probes_one_each() {
        // Each multiple is probed once, by the workers in turn, at that
        // worker's first case from the multiple on.
        assert_eq!(
            probes(2, 200, 801),
            vec![(1, 1, 201), (2, 0, 400), (3, 1, 601), (4, 0, 800)]
        );
        assert_eq!(
            probes(3, 10, 41),
            vec![(1, 1, 10), (2, 2, 20), (3, 0, 30), (4, 1, 40)]
        );
    }
}
