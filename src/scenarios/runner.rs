//! Running a suite: selection, pacing, concurrency, verdicts and the report.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::peer;
use crate::report::{Level, RunReport, ScenarioResult, Verdict};

use super::exec::Context;
use super::model::{Need, Scenario};
use super::registry::Registry;

/// The run's handshake pacer: the driver's one budget (HS-8).
pub use crate::peer::HandshakePacer as Pacer;

/// A suite run: the one [`peer::Target`] and what only `test` knows of it.
#[derive(Debug)]
pub struct RunConfig {
    /// The target: where, which agent, the key, the relay marker, the
    /// limits and the handshake budget.
    pub target: peer::Target,
    /// A key scoped to another agent.
    pub scoped_key: Option<String>,
    /// The agent the scoped key is for.
    pub scoped_agent_id: Option<String>,
    /// The session TTL the target grants, if known.
    pub session_ttl: Option<i64>,
    /// The longest a scenario may wait (seconds).
    pub max_wait: u64,
    /// The session store bound, if known.
    pub max_sessions: Option<usize>,
    /// The run's handshake pacer, spending the target's budget.
    pub pacer: Pacer,
    /// How many scenarios run at once.
    pub concurrency: usize,
    /// Zero durations (for snapshots).
    pub stable: bool,
    /// The target trusts the harness as loopback when the marker is absent.
    pub loopback_trusted: bool,
    /// The session scenarios share when handshakes are budgeted.
    pub pool: std::sync::Mutex<Option<SharedSession>>,
    /// The target sees the harness as a remote caller without the relay
    /// marker (see [`caller_is_remote`]), so GATE-1 applies as is.
    pub remote_caller: bool,
    /// The run's flags as given (secrets redacted, `--only` aside), when
    /// the run came from a command line: a rerun line repeats them.
    pub rerun_flags: Option<Vec<String>>,
}

/// A session several scenarios use at once; seqs come from one counter so
/// they never collide (concurrent calls stay well inside the 64-wide window).
#[derive(Debug, Clone)]
pub struct SharedSession {
    /// The ClientHello sent.
    pub hello: crate::protocol::wire::ClientHello,
    /// The ServerHello received.
    pub server: crate::protocol::wire::ServerHello,
    /// The derived keys.
    pub keys: crate::protocol::keys::SessionKeys,
    /// The next seq to use.
    pub next_seq: Arc<std::sync::atomic::AtomicU64>,
}

impl RunConfig {
    /// A run against `target`, paced by its handshake budget, with nothing
    /// else known of it: no scoped key, TTL or session bound, loopback not
    /// trusted, 10 s of waiting, four scenarios at once.
    pub fn new(target: peer::Target) -> Self {
        RunConfig {
            pacer: Pacer::new(target.handshake_budget),
            target,
            scoped_key: None,
            scoped_agent_id: None,
            session_ttl: None,
            max_wait: 10,
            max_sessions: None,
            concurrency: 4,
            stable: false,
            loopback_trusted: false,
            pool: Default::default(),
            remote_caller: false,
            rerun_flags: None,
        }
    }

    /// How a rate-limited handshake is retried in a run: six times, no
    /// wait beyond --max-wait.
    pub fn rate_limits(&self) -> crate::peer::RateLimitPolicy {
        crate::peer::RateLimitPolicy::new(6, Duration::from_secs(self.max_wait.max(1)))
    }

    /// `text` with the access key and the scoped key replaced by `<redacted>`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in std::iter::once(&self.target.access_key).chain(self.scoped_key.iter()) {
            if !secret.is_empty() {
                out = out.replace(secret.as_str(), "<redacted>");
            }
        }
        out
    }

    /// The command that reruns one scenario against this target.
    pub fn repro(&self, id: &str) -> String {
        if let Some(flags) = &self.rerun_flags {
            return format!("osc-harness test {} --only {id}", flags.join(" "));
        }
        let target = &self.target;
        if target.label == "self" {
            return format!("osc-harness test --target self --only {id}");
        }
        let mut cmd = format!(
            "osc-harness test --target {} --agent-address {} --access-key <redacted>",
            target.label,
            target.address.to_checksum()
        );
        if let Some(a) = &target.agent_id {
            cmd.push_str(&format!(" --agent-id {a}"));
        }
        if self.scoped_key.is_some() {
            cmd.push_str(" --scoped-key <redacted>");
            if let Some(s) = &self.scoped_agent_id {
                cmd.push_str(&format!(" --scoped-agent-id {s}"));
            }
        }
        if let Some(t) = self.session_ttl {
            cmd.push_str(&format!(" --session-ttl {t}"));
        }
        cmd.push_str(&format!(
            " --relay-origin {} --only {id}",
            if target.relay_origin { "on" } else { "off" }
        ));
        cmd
    }
}

/// Matches a simple glob (`*` any run of characters) against text.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern.eq_ignore_ascii_case(text);
    }
    let text = text.to_ascii_lowercase();
    let mut rest = text.as_str();
    for (i, part) in parts.iter().enumerate() {
        let part = part.to_ascii_lowercase();
        if i == 0 {
            if !rest.starts_with(&part) {
                return false;
            }
            rest = &rest[part.len()..];
        } else if i == parts.len() - 1 {
            return rest.ends_with(&part);
        } else if let Some(at) = rest.find(&part) {
            rest = &rest[at + part.len()..];
        } else {
            return false;
        }
    }
    true
}

/// Whether a scenario matches a pattern (by ID, category or requirement ID).
pub fn matches(s: &Scenario, pattern: &str) -> bool {
    pattern
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .any(|p| {
            glob(p, &s.id) || glob(p, &s.category) || s.requirements.iter().any(|r| glob(p, r))
        })
}

/// Applies `--only` and `--skip`.
pub fn select(all: Vec<Scenario>, only: &[String], skip: &[String]) -> Vec<Scenario> {
    all.into_iter()
        .filter(|s| only.is_empty() || only.iter().any(|p| matches(s, p)))
        .filter(|s| !skip.iter().any(|p| matches(s, p)))
        .collect()
}

/// Whether a target at these addresses sees the harness as a remote
/// caller: every address is neither loopback (IPv4-mapped included) nor
/// unspecified (a connection to `0.0.0.0` arrives from loopback); an
/// empty list is unknown, so not remote.
pub fn remote_by_addresses(addrs: &[IpAddr]) -> bool {
    !addrs.is_empty()
        && addrs.iter().all(|a| {
            let a = a.to_canonical();
            !a.is_loopback() && !a.is_unspecified()
        })
}

/// Whether `target` sees the harness as a remote caller with no relay
/// marker: through a relay that marks every request (`via_relay`), or when
/// its host resolves (within `within`) to addresses of
/// [`remote_by_addresses`]. A host that does not resolve is not remote.
pub async fn caller_is_remote(
    target: &crate::transport::Target,
    via_relay: bool,
    within: Duration,
) -> bool {
    if via_relay {
        return true;
    }
    if let Some(addr) = target.socket_addr() {
        return remote_by_addresses(&[addr.ip()]);
    }
    let host = target.host().trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return false;
    }
    match tokio::time::timeout(within, tokio::net::lookup_host((host, target.port()))).await {
        Ok(Ok(addrs)) => remote_by_addresses(&addrs.map(|a| a.ip()).collect::<Vec<_>>()),
        _ => false,
    }
}

fn unmet(cfg: &RunConfig, s: &Scenario) -> Option<String> {
    for need in &s.needs {
        let missing = match need {
            Need::ScopedKey if cfg.scoped_key.is_none() || cfg.scoped_agent_id.is_none() => {
                Some("no --scoped-key/--scoped-agent-id given")
            }
            Need::RelayOrigin if !cfg.target.relay_origin && !cfg.remote_caller => {
                Some("the target's address is loopback (or did not resolve) and --relay-origin is off, so the target may treat the harness as loopback")
            }
            Need::UnlimitedHandshakes if !cfg.pacer.unlimited() => {
                Some("it needs more handshakes than --handshake-budget allows")
            }
            Need::SessionBound if cfg.max_sessions.is_none() => {
                Some("the target's session bound is unknown (give --max-sessions)")
            }
            Need::LoopbackTrusted if cfg.target.via_relay => {
                Some("the target is reached through a relay that marks every request as remote (--via-relay), so no caller is loopback")
            }
            Need::LoopbackTrusted if !cfg.loopback_trusted => {
                Some("the target is not known to trust the harness as a loopback caller (give --trusts-loopback)")
            }
            _ => None,
        };
        if let Some(m) = missing {
            return Some(m.to_owned());
        }
    }
    None
}

/// Runs one scenario.
pub async fn run_scenario(cfg: &RunConfig, s: &Scenario) -> ScenarioResult {
    let started = Instant::now();
    let mut result = ScenarioResult {
        id: s.id.clone(),
        title: s.title.clone(),
        category: s.category.clone(),
        level: s.level.name().to_owned(),
        requirements: s.requirements.clone(),
        verdict: Verdict::Pass,
        reason: None,
        expected: None,
        repro: None,
        precondition: false,
        known: false,
        duration_ms: 0,
        transcript: Vec::new(),
    };
    if let Some(why) = unmet(cfg, s) {
        result.verdict = Verdict::Skip;
        result.reason = Some(why);
        return result;
    }
    let claim = crate::judge::Claim::new(s.requirements.join(", "), s.level);
    let mut ctx = Context::new(cfg, claim);
    for (i, step) in s.steps.iter().enumerate() {
        if let Err(f) = ctx.run_step(i, step).await {
            if f.skip {
                result.verdict = Verdict::Skip;
                result.reason = Some(f.reason);
            } else {
                result.verdict = match s.level {
                    Level::Must => Verdict::Fail,
                    Level::Should => Verdict::Warn,
                    Level::Upstream => Verdict::Info,
                };
                let prefix = if f.precondition {
                    "precondition failed: "
                } else {
                    ""
                };
                result.reason = Some(format!(
                    "step {} ({}): {prefix}{}",
                    i + 1,
                    step_name(step),
                    f.reason
                ));
                result.expected = f.expected;
                result.precondition = f.precondition;
                result.repro = Some(cfg.repro(&s.id));
            }
            break;
        }
    }
    result.transcript = std::mem::take(&mut ctx.transcript);
    // Reasons quote what came back, and a broken target may echo the key.
    result.reason = result.reason.map(|r| cfg.redact(&r));
    result.expected = result.expected.map(|r| cfg.redact(&r));
    if !cfg.stable {
        result.duration_ms = started.elapsed().as_millis() as u64;
    }
    result
}

fn step_name(step: &super::model::Step) -> &'static str {
    step.name()
}

/// Runs scenarios: the ordinary ones concurrently, then the exclusive ones
/// alone. Results come back in suite order. `progress` is called after
/// each scenario.
pub async fn run_suite(
    cfg: Arc<RunConfig>,
    scenarios: &[Scenario],
    registry: &Registry,
    progress: &(dyn Fn(&ScenarioResult) + Sync),
) -> RunReport {
    let started = Instant::now();
    let mut results: Vec<Option<ScenarioResult>> = vec![None; scenarios.len()];
    let shared: Vec<usize> = (0..scenarios.len())
        .filter(|&i| !scenarios[i].exclusive)
        .collect();
    let limit = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for i in shared {
        let cfg = cfg.clone();
        let s = scenarios[i].clone();
        let limit = limit.clone();
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            (i, run_scenario(&cfg, &s).await)
        });
    }
    while let Some(joined) = set.join_next().await {
        if let Ok((i, r)) = joined {
            progress(&r);
            results[i] = Some(r);
        }
    }
    for (i, s) in scenarios.iter().enumerate().filter(|(_, s)| s.exclusive) {
        let r = run_scenario(&cfg, s).await;
        progress(&r);
        results[i] = Some(r);
    }
    let scenarios_out: Vec<ScenarioResult> = results
        .into_iter()
        .zip(scenarios)
        .map(|(r, s)| {
            r.unwrap_or_else(|| ScenarioResult {
                id: s.id.clone(),
                title: s.title.clone(),
                category: s.category.clone(),
                level: s.level.name().into(),
                requirements: s.requirements.clone(),
                verdict: Verdict::Fail,
                reason: Some("the scenario task died".into()),
                expected: None,
                repro: Some(cfg.repro(&s.id)),
                precondition: false,
                known: false,
                duration_ms: 0,
                transcript: Vec::new(),
            })
        })
        .collect();
    let not_exercised = crate::report::not_exercised(
        &scenarios_out,
        registry.requirements.iter().map(|r| r.id.as_str()),
    );
    RunReport {
        target: cfg.target.label.clone(),
        insecure: cfg.target.endpoint.net().settings().trust.insecure,
        duration_ms: if cfg.stable {
            0
        } else {
            started.elapsed().as_millis() as u64
        },
        scenarios: scenarios_out,
        not_exercised,
        run_problems: Vec::new(),
    }
}
