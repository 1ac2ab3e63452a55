//! Puts the same inputs to every target and classifies where the answers
//! part: the built-in scenarios (run by the suite runner) and seeded fuzz
//! cases (built by the fuzzer's generator, run by its executor).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Mutex;

use crate::flags::target::{RelayDefault, TargetPolicy};
use crate::netfuzz::case::Step;
use crate::netfuzz::exec::{self, HandshakeBudget, Session, TargetInfo};
use crate::netfuzz::oracle::Firing as OracleVerdict;
use crate::netfuzz::runner;
use crate::peer;
use crate::report::{Level, RunReport, Verdict};
use crate::scenarios::model::Scenario;
use crate::scenarios::registry::Registry;
use crate::scenarios::runner::{run_suite, RunConfig};
use crate::scenarios::selftest;
use crate::server::RunningServer;

use super::normal::{self, NormalForm};
use super::preflight::{self, Preflight, PreflightError};
use super::rules;
use super::targets::TargetSpec;

/// How `diff` resolves each target: what `test` assumes (a key for a URL,
/// the relay marker on loopback), with the fuzzer's fifteen seconds per
/// answer, longer than a server's usual ten-second read timeout, so an
/// honest server gives up on a lying body before the harness gives up on it.
pub const POLICY: TargetPolicy = TargetPolicy {
    default_target: None,
    allows_self: true,
    key_required: true,
    relay: RelayDefault::OnForLoopback,
    self_timeout_secs: 15,
    url_timeout_secs: 15,
};

/// The handshake budget of a URL target whose table gives none: `test`'s.
pub const URL_BUDGET: (u32, u64) = (5, 60);

/// Longest wait for an answer to a request whose framing promises bytes
/// never sent: beyond every server read timeout the harness knows (ten
/// seconds upstream and in the reference), and short, because such a case
/// holds one connection of each target for as long as it waits.
const SLOW_REQUEST_LIMIT: Duration = Duration::from_secs(20);

/// The longest wait for a session to expire when no `--max-wait` is
/// given (`replay --targets`); later expiries skip the input on that
/// target.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(10);

/// One target, resolved and ready for both kinds of input.
pub struct Prepared {
    /// The name from the targets file.
    pub name: String,
    /// The reference server behind `self`, kept alive for the run.
    pub server: Option<RunningServer>,
    /// What the scenario runner needs.
    pub cfg: Arc<RunConfig>,
    /// What the fuzz executor needs; its target holds the handshake budget.
    pub info: TargetInfo,
    /// What its first honest handshake and call showed.
    pub preflight: Preflight,
}

/// Why a target cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The table does not name a usable target (a usage error).
    #[error("target `{name}`: {message}")]
    Usage {
        /// The target.
        name: String,
        /// Why.
        message: String,
    },
    /// The target does not answer.
    #[error("target `{name}` is unreachable: {message}")]
    Unreachable {
        /// The target.
        name: String,
        /// Why.
        message: String,
    },
}

/// Resolves one `[[target]]` with the shared target code, checks its
/// first honest handshake and call ([`preflight::check`]) and, for a URL
/// whose table names no budget, learns whether it paces handshakes.
pub async fn prepare(spec: &TargetSpec, max_wait: Duration) -> Result<Prepared, PrepareError> {
    let usage = |message: String| PrepareError::Usage {
        name: spec.name.clone(),
        message,
    };
    let resolved = spec
        .args
        .resolve(POLICY, |_| selftest::self_server_config(&[]))
        .await
        .map_err(|e| usage(e.to_string()))?;
    let mut target = resolved.target;
    let checked = match preflight::check(&target, 0).await {
        Ok(c) => c,
        Err(e @ PreflightError::NoSuchAgent(_)) => return Err(usage(e.to_string())),
        Err(e) => {
            return Err(PrepareError::Unreachable {
                name: spec.name.clone(),
                message: e.to_string(),
            })
        }
    };
    let budget = match (&spec.handshake_budget, resolved.server.is_some()) {
        (Some(text), _) => crate::peer::parse_handshake_budget(text)
            .map_err(|e| usage(e.replace("--handshake-budget", "handshake_budget")))?,
        (None, true) => None,
        (None, false) => {
            let paced = checked == Preflight::RateLimited || paces_handshakes(&target).await;
            if !paced {
                eprintln!(
                    "osc-harness diff: target `{}` answered {} handshakes in a row without \
                     a 429, so its handshakes are not paced (handshake_budget = \"{}/{}\" \
                     paces them)",
                    spec.name,
                    URL_BUDGET.0 + 2,
                    URL_BUDGET.0,
                    URL_BUDGET.1
                );
            }
            paced.then_some(URL_BUDGET)
        }
    };
    target.handshake_budget = budget;
    let mut cfg = match &resolved.server {
        // The suite names the reference server `self`, as `test` does.
        Some(server) => selftest::self_run(target.clone(), server, false),
        None => RunConfig::new(peer::Target {
            label: spec.name.clone(),
            ..target.clone()
        }),
    };
    cfg.max_wait = max_wait.as_secs();
    if resolved.server.is_none() {
        // A scenario's rerun line reaches this target as the file does.
        let mut flags = spec.args.rerun_flags();
        if let Some(b) = &spec.handshake_budget {
            flags.extend(["--handshake-budget".to_string(), b.clone()]);
        }
        cfg.rerun_flags = Some(flags);
        cfg.remote_caller = crate::scenarios::runner::caller_is_remote(
            &target.endpoint,
            target.via_relay,
            target.limits.connect_timeout,
        )
        .await;
    }
    target.label = spec.name.clone();
    // The fuzzer's policy: smaller answers, and a target may hold an
    // incomplete request for this long before it counts as hung.
    target.limits.max_body_bytes = 4 * 1024 * 1024;
    let info = TargetInfo {
        target,
        slow_request_limit: SLOW_REQUEST_LIMIT,
        expiry_wait: max_wait,
    };
    Ok(Prepared {
        name: spec.name.clone(),
        server: resolved.server,
        cfg: Arc::new(cfg),
        info,
        preflight: checked,
    })
}

/// Whether `target` refuses a burst of honest handshakes with `429`: one
/// more than the upstream budget allows in a window, back to back (the
/// preflight spent one already). A target that takes them all is run
/// unpaced; one that paces more loosely than upstream still has every
/// `429` waited out, never judged (HS-8).
async fn paces_handshakes(target: &peer::Target) -> bool {
    let unlimited = peer::HandshakePacer::new(None);
    let mut conversation = peer::Conversation::new(target, &unlimited, peer::RateLimitPolicy::NONE);
    let mut rng = exec::handshake_rng(0, 1);
    for _ in 0..=URL_BUDGET.0 {
        let offer = peer::Offer::random(target.address, &mut rng);
        match conversation.handshake("burst", &offer).await {
            Ok(reply) if reply.status == 429 => return true,
            Ok(_) => {}
            // A target that stops answering a burst protects itself too.
            Err(_) => return true,
        }
    }
    false
}

impl Prepared {
    /// Whether an honest handshake with this target gives a session (its
    /// ServerHello verifies); fuzz cases need one.
    pub fn sessions_open(&self) -> bool {
        !matches!(
            &self.preflight,
            Preflight::Broken { requirement, .. } if !requirement.starts_with("KS-")
        )
    }
}

/// The row of what each target's first honest handshake and call showed;
/// `None` when every target passed (the row would say nothing).
pub fn preflight_row(targets: &[Prepared], registry: &Registry) -> Option<Row> {
    let mut cells = Vec::new();
    let mut findings = Vec::new();
    for t in targets {
        let (verdict, reason) = match &t.preflight {
            Preflight::Broken {
                requirement,
                detail,
            } => {
                findings.push(Finding {
                    class: level_of(registry, requirement),
                    target: Some(t.name.clone()),
                    requirement: Some(requirement.clone()),
                    rule: None,
                    detail: detail.clone(),
                });
                ("fail", Some(detail.clone()))
            }
            Preflight::RateLimited => ("paced", Some("the first hello was answered 429".into())),
            Preflight::Sound => ("ok", None),
        };
        cells.push(Cell {
            target: t.name.clone(),
            verdict: verdict.into(),
            normal: None,
            reason,
        });
    }
    if findings.is_empty() {
        return None;
    }
    Some(finish_row(
        "preflight".into(),
        "preflight",
        cells,
        findings,
        None,
    ))
}

/// How a row came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Every target that ran it gave the same normal form, and none broke
    /// a requirement.
    Same,
    /// Fewer than two targets ran it.
    Uncompared,
    /// The targets differ where SPEC allows either (UPSTREAM or open).
    Information,
    /// A target breaks a SHOULD.
    Should,
    /// A target breaks a MUST.
    Must,
    /// The normal forms differ and no rule explains it.
    Unexplained,
}

impl Class {
    /// Whether this row fails the run.
    pub fn fails(self) -> bool {
        matches!(self, Class::Must | Class::Unexplained)
    }
}

/// One target's answer to one input.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// The target.
    pub target: String,
    /// The scenario verdict (`pass`, `fail`, …) or, for a fuzz case, `ok`,
    /// `fired` or `skipped`.
    pub verdict: String,
    /// The normal form; `None` when the target did not run the input.
    pub normal: Option<NormalForm>,
    /// Why it did not pass or run, if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A broken requirement, or an explained or unexplained difference.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// `must`, `should`, `information` or `unexplained`.
    pub class: Class,
    /// The target at fault (breaks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The requirement broken, or the one the allowing rule cites.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requirement: Option<String>,
    /// The rule that allows the difference (information only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// What was seen.
    pub detail: String,
}

/// One input and every target's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The scenario id, or `case-N` for fuzz case N.
    pub input: String,
    /// `scenario` or `fuzz`.
    pub kind: &'static str,
    /// The worst finding's class.
    pub class: Class,
    /// Per target, in file order.
    pub cells: Vec<Cell>,
    /// What the row says.
    pub findings: Vec<Finding>,
    /// The fuzz case's steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Step>>,
    /// Where the minimised case was saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved: Option<String>,
}

/// The class of a finding at `level`.
fn class_of(level: Level) -> Class {
    match level {
        Level::Must => Class::Must,
        Level::Should => Class::Should,
        Level::Upstream => Class::Information,
    }
}

/// The class of a finding on requirement `id`, at its level in the
/// registry (an unknown ID counts as a MUST).
fn level_of(registry: &Registry, id: &str) -> Class {
    match registry
        .requirements
        .iter()
        .find(|r| r.id == id)
        .map(|r| r.level.as_str())
    {
        Some("SHOULD") => Class::Should,
        Some("UPSTREAM") => Class::Information,
        _ => Class::Must,
    }
}

/// Runs the suite on every target at once and returns one report per
/// target, in the order given.
pub async fn run_scenarios(
    targets: &[Prepared],
    scenarios: &[Scenario],
    registry: &Registry,
) -> Vec<RunReport> {
    let runs = targets
        .iter()
        .map(|t| run_suite(t.cfg.clone(), scenarios, registry, &|_| {}));
    join_all(runs).await
}

/// Runs every future to completion on the calling task, concurrently, and
/// returns their outputs in the order given.
pub async fn join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    // Each future borrows the targets, so they run concurrently on this
    // task rather than as spawned tasks.
    let mut pending: Vec<_> = futs.map(|f| Some(Box::pin(f))).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

/// Classifies one scenario from each target's report.
pub fn scenario_row(s: &Scenario, names: &[String], reports: &[RunReport]) -> Row {
    let mut cells = Vec::new();
    let mut findings = Vec::new();
    for (name, report) in names.iter().zip(reports) {
        let Some(r) = report.scenarios.iter().find(|r| r.id == s.id) else {
            continue;
        };
        let ran = r.verdict != Verdict::Skip;
        cells.push(Cell {
            target: name.clone(),
            verdict: r.verdict.label().to_ascii_lowercase(),
            normal: ran.then(|| normal::of_scenario(r)),
            reason: r.reason.clone(),
        });
        let class = match r.verdict {
            Verdict::Fail => Class::Must,
            Verdict::Warn => Class::Should,
            Verdict::Info => Class::Information,
            Verdict::Pass | Verdict::Skip => continue,
        };
        findings.push(Finding {
            class,
            target: Some(name.clone()),
            requirement: Some(r.requirements.join(",")),
            rule: None,
            detail: r.reason.clone().unwrap_or_default(),
        });
    }
    finish_row(s.id.clone(), "scenario", cells, findings, None)
}

/// Decides the row's class: breaks and UPSTREAM differences speak for
/// themselves; otherwise differing normal forms need a rule.
fn finish_row(
    input: String,
    kind: &'static str,
    cells: Vec<Cell>,
    mut findings: Vec<Finding>,
    steps: Option<Vec<Step>>,
) -> Row {
    let ran: Vec<&Cell> = cells.iter().filter(|c| c.normal.is_some()).collect();
    let differs = ran
        .windows(2)
        .any(|w| w[0].normal.as_ref() != w[1].normal.as_ref());
    if differs && findings.is_empty() {
        match rules::explain(kind, steps.as_deref(), &ran) {
            Some(rule) => findings.push(Finding {
                class: Class::Information,
                target: None,
                requirement: Some(rule.requirement.into()),
                rule: Some(rule.id.into()),
                detail: rule.why.into(),
            }),
            None => findings.push(Finding {
                class: Class::Unexplained,
                target: None,
                requirement: None,
                rule: None,
                detail: ran
                    .iter()
                    .map(|c| {
                        format!(
                            "{}: {}",
                            c.target,
                            c.normal.as_ref().map(|n| n.to_string()).unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }
    let class = findings
        .iter()
        .map(|f| f.class)
        .max()
        .unwrap_or(if ran.len() < 2 {
            Class::Uncompared
        } else {
            Class::Same
        });
    Row {
        input,
        kind,
        class,
        cells,
        findings,
        steps,
        saved: None,
    }
}

/// One target's run of a fuzz case: the oracle's judgement and the normal
/// form, or why it did not run.
pub struct CaseRun {
    /// The oracle that fired, if any.
    pub verdict: Option<OracleVerdict>,
    /// The normal form; `None` when a step was skipped or no session opened.
    pub normal: Option<NormalForm>,
    /// Why it did not run, if so.
    pub note: Option<String>,
}

/// Runs `steps` on a fresh session of `target` (as `replay` does).
pub async fn run_case_on(
    target: &Prepared,
    steps: &[Step],
    seed: u64,
    budget: &Mutex<HandshakeBudget>,
) -> CaseRun {
    if let Preflight::Broken { detail, .. } = &target.preflight {
        if !target.sessions_open() {
            return CaseRun {
                verdict: None,
                normal: None,
                note: Some(format!("no session: {detail}")),
            };
        }
    }
    let mut rng = exec::handshake_rng(seed, 0);
    let session = {
        let b = budget.lock().await;
        Session::open(&target.info, &mut rng, &b).await
    };
    let mut session = match session {
        Ok(s) => s,
        Err(e) => {
            return CaseRun {
                verdict: None,
                normal: None,
                note: Some(e.to_string()),
            }
        }
    };
    let (verdict, outcomes) = runner::run_case(&target.info, &mut session, steps).await;
    if let Some(why) = outcomes.iter().find_map(|o| o.skipped.clone()) {
        return CaseRun {
            verdict,
            normal: None,
            note: Some(format!("skipped: {why}")),
        };
    }
    let answers = outcomes.iter().map(normal::of_outcome).collect();
    CaseRun {
        normal: Some(normal::of_case(verdict.as_ref(), answers)),
        verdict,
        note: None,
    }
}

/// Runs fuzz case `steps` on every target and classifies it.
pub async fn case_row(
    input: String,
    steps: &[Step],
    seed: u64,
    targets: &[Prepared],
    budgets: &[Mutex<HandshakeBudget>],
) -> Row {
    let runs = join_all(
        targets
            .iter()
            .zip(budgets)
            .map(|(t, b)| run_case_on(t, steps, seed, b)),
    )
    .await;
    let mut cells = Vec::new();
    let mut findings = Vec::new();
    for (t, run) in targets.iter().zip(runs) {
        if let Some(v) = &run.verdict {
            // The requirement and level the fuzzer's judgement gives this
            // firing, so diff and fuzz name a fault alike.
            findings.push(Finding {
                class: class_of(v.level),
                target: Some(t.name.clone()),
                requirement: Some(v.requirement.replace(", ", ",")),
                rule: None,
                detail: format!("{}: {}", v.signature, v.detail),
            });
        }
        cells.push(Cell {
            target: t.name.clone(),
            verdict: match (&run.verdict, &run.normal) {
                (Some(_), _) => "fired".into(),
                (None, Some(_)) => "ok".into(),
                (None, None) => "skipped".into(),
            },
            normal: run.normal,
            reason: run
                .verdict
                .map(|v| format!("{}: {}", v.signature, v.detail))
                .or(run.note),
        });
    }
    finish_row(input, "fuzz", cells, findings, Some(steps.to_vec()))
}

/// What makes two runs of a case "the same divergence": the class and the
/// targets at fault with their requirements.
pub fn divergence_key(row: &Row) -> String {
    let mut parts: Vec<String> = row
        .findings
        .iter()
        .filter(|f| f.class != Class::Information)
        .map(|f| {
            format!(
                "{:?}:{}:{}",
                f.class,
                f.target.as_deref().unwrap_or("*"),
                f.requirement.as_deref().unwrap_or("-")
            )
        })
        .collect();
    parts.sort();
    parts.dedup();
    parts.join(" ")
}
