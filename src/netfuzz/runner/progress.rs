//! What a run shows while it runs: the timeline of samples the HTML
//! report charts, and the progress bar on stderr.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::Ctx;

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

pub(super) async fn sample(ctx: &Ctx, start: Instant) -> Sample {
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
pub(super) async fn sample_until_stopped(
    ctx: Arc<Ctx>,
    timeline: Arc<Mutex<Vec<Sample>>>,
    start: Instant,
) {
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

pub(super) fn progress_bar(ctx: &Ctx) -> Option<indicatif::ProgressBar> {
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

pub(super) async fn update_bar(ctx: &Ctx, bar: &indicatif::ProgressBar, start: Instant) {
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
