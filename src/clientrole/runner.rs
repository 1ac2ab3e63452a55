//! Runs client scenarios: starts the adversary (reference server with its
//! knobs, relay with its attacks), runs the shim command, judges it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::mitm::{self, MitmConfig, Observed};
use crate::report::Level;
use crate::report::{Exchange, ScenarioResult, Verdict};
use crate::server::{self, RunningServer, ServerConfig};
use crate::transport::tls::{self, ServerTls, TlsConfigError};
use crate::transport::{Limits, Target};

use super::model::{Behaviour, ClientScenario, Mode, RefusalClass};

/// The most body bytes the adversary's relay carries in one response:
/// beyond the 64 MiB of the huge-event knob.
const RELAY_MAX_BODY: usize = 128 * 1024 * 1024;

/// The exit status by which a shim says "not implemented".
pub const EXIT_NOT_IMPLEMENTED: i32 = 89;

/// The most shim output kept (the rest is read and dropped, so a chatty
/// client cannot block on a full pipe).
const MAX_OUTPUT: usize = 64 * 1024;

/// Why an adversary could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AdversaryError {
    /// The reference server did not start.
    #[error("cannot start the adversarial server: {0}")]
    Server(#[from] server::ServerError),
    /// The relay did not start.
    #[error("cannot start the relay: {0}")]
    Relay(#[from] mitm::MitmError),
    /// The server's URL did not parse (a bug).
    #[error("bad server url: {0}")]
    Url(String),
    /// The tunnel to the relay did not sign in.
    #[error("the tunnel to the relay did not sign in: {0}")]
    Tunnel(String),
}

/// The HTTPS face of the adversaries of one run (`--tls`): a CA made for
/// the run, its PEM in `ca_cert`, and the listener config of a loopback
/// certificate it signed. The relay offers HTTP/1.1 only: its attacks
/// rewrite HTTP/1.1 bodies.
#[derive(Debug, Clone)]
pub struct AdversaryTls {
    /// The listener configuration every relay of the run shows.
    pub server: ServerTls,
    /// The CA file the client must trust (the `{ca_cert}` placeholder).
    pub ca_cert: PathBuf,
}

impl AdversaryTls {
    /// Makes a CA and a loopback certificate and writes the CA to `ca_cert`.
    pub fn generate(ca_cert: PathBuf) -> Result<Self, TlsConfigError> {
        let pair = tls::SelfSigned::generate(&[])?;
        std::fs::write(&ca_cert, &pair.ca_pem).map_err(|e| TlsConfigError::Pem {
            path: ca_cert.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            server: pair.server_tls(&[tls::ALPN_HTTP1])?,
            ca_cert,
        })
    }
}

/// What the client meets in front of each adversary: its bent relay as it
/// is, over HTTPS (`tls`), or behind a relay tunnel (`tunnel`: the relay's
/// `ws://…/tunnel/connect`), as an agent is reached at its public URL.
#[derive(Debug, Clone, Default)]
pub struct Front {
    /// Serve HTTPS with this run's CA.
    pub tls: Option<AdversaryTls>,
    /// Open a tunnel to this relay and give the client the public URL.
    pub tunnel: Option<String>,
}

impl Front {
    /// The flags a rerun line repeats for this front.
    fn rerun_flags(&self) -> String {
        let mut out = String::new();
        if self.tls.is_some() {
            out.push_str(" --tls");
        }
        if let Some(t) = &self.tunnel {
            out.push_str(&format!(" --tunnel {}", shell_quote(t)));
        }
        out
    }
}

/// How long an adversary's tunnel may take to sign in at the relay.
const TUNNEL_SIGN_IN: Duration = Duration::from_secs(10);

/// A running adversary: the bent server behind the bent relay.
pub struct Adversary {
    /// The server (kept alive with the adversary).
    pub server: RunningServer,
    /// The relay the client talks to.
    pub relay: mitm::RunningMitm,
    /// The CA the client must trust when the relay serves HTTPS.
    pub ca_cert: Option<PathBuf>,
    /// The tunnel carrying the client's requests to `relay`, and the
    /// public URL the relay gave it (what the client is told to use).
    pub tunnel: Option<(crate::tunnel::RunningHost, String)>,
}

impl Adversary {
    /// The placeholder values for a shim making `calls` calls; `ca_cert`
    /// is among them only when the relay serves HTTPS.
    pub fn placeholders(&self, mode: Mode, calls: u64) -> Vec<(&'static str, String)> {
        let path = match mode {
            Mode::Buffered => "/health".to_string(),
            Mode::Stream => format!("/agents/{}/dispatch", self.server.agent_id),
        };
        let url = match &self.tunnel {
            Some((_, public)) => public.clone(),
            None => self.relay.url.clone(),
        };
        let mut values = vec![
            ("url", url),
            ("address", self.server.agent_address.to_checksum()),
            ("access_key", self.server.access_key.clone()),
            ("agent_id", self.server.agent_id.clone()),
            ("path", path),
            ("mode", mode.name().to_string()),
            ("calls", calls.to_string()),
        ];
        if let Some(ca) = &self.ca_cert {
            values.push(("ca_cert", ca.display().to_string()));
        }
        values
    }
}

/// Starts the adversary of `scenario`, the relay on `listen`, in front of
/// it what `front` says: HTTPS with its CA (the server behind it stays
/// plain), or a relay tunnel signed in as the server's agent, whose
/// requests go to the bent relay.
pub async fn start_adversary(
    scenario: &ClientScenario,
    listen: std::net::SocketAddr,
    front: &Front,
) -> Result<Adversary, AdversaryError> {
    let tls = front.tls.as_ref();
    let mut config = ServerConfig::generated();
    let identity = config.identity.clone();
    config.handshake_rate = None;
    config.bugs = scenario.bugs().into_iter().collect();
    let server = server::spawn(config).await?;
    let upstream = Target::parse(&server.url).map_err(|e| AdversaryError::Url(e.to_string()))?;
    let relay = mitm::spawn(MitmConfig {
        tls: tls.map(|t| t.server.clone()),
        listen,
        upstream,
        attacks: scenario.attack_set(),
        canaries: vec![server.access_key.clone()],
        agent_id: server.agent_id.clone(),
        plaintext_key: None,
        // The relay carries what the server sends well past any client's
        // limits, so a hostile body reaches the client whole and a cut is
        // the server's, never the relay's.
        limits: Limits {
            max_body_bytes: RELAY_MAX_BODY,
            ..Limits::default()
        },
        log: None,
    })
    .await?;
    let tunnel = match &front.tunnel {
        None => None,
        Some(url) => {
            let local = relay
                .url
                .trim_start_matches("http://")
                .parse()
                .map_err(|e| AdversaryError::Url(format!("{}: {e}", relay.url)))?;
            let mut host = crate::tunnel::host::spawn(crate::tunnel::HostConfig {
                relay: url.clone(),
                tls: None,
                identity,
                agent_id: server.agent_id.clone(),
                local,
                max_in_flight: crate::tunnel::MAX_IN_FLIGHT,
            });
            let public = host
                .online(TUNNEL_SIGN_IN)
                .await
                .map_err(AdversaryError::Tunnel)?;
            Some((host, public))
        }
    };
    Ok(Adversary {
        server,
        relay,
        ca_cert: tls.map(|t| t.ca_cert.clone()),
        tunnel,
    })
}

/// Fills `{name}` placeholders, each value shell-quoted.
pub fn fill(command: &str, values: &[(&str, String)]) -> String {
    let mut out = command.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), &shell_quote(value));
    }
    out
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// How the shim ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShimEnd {
    /// It exited with this status (`None`: killed by a signal).
    Exited(Option<i32>),
    /// It ran past the timeout and was killed with its process group.
    TimedOut,
    /// It could not be started.
    NotStarted(String),
}

/// What the shim did.
#[derive(Debug, Clone)]
pub struct ShimRun {
    /// How it ended.
    pub end: ShimEnd,
    /// Its stdout (truncated).
    pub stdout: String,
    /// Its stderr (truncated).
    pub stderr: String,
}

/// Runs `command` with `sh -c` in its own process group; on timeout the
/// whole group is killed, so a shim's grandchildren do not linger.
pub async fn run_shim(command: &str, timeout: Duration) -> ShimRun {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ShimRun {
                end: ShimEnd::NotStarted(e.to_string()),
                stdout: String::new(),
                stderr: String::new(),
            }
        }
    };
    let out = tokio::spawn(read_bounded(child.stdout.take()));
    let err = tokio::spawn(read_bounded(child.stderr.take()));
    let end = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => ShimEnd::Exited(status.code()),
        Ok(Err(e)) => ShimEnd::NotStarted(e.to_string()),
        Err(_) => {
            if let Some(pid) = child.id() {
                // The group id is the child's pid (process_group(0)).
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = child.kill().await;
            ShimEnd::TimedOut
        }
    };
    let grace = Duration::from_secs(2);
    let stdout = tokio::time::timeout(grace, out)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let stderr = tokio::time::timeout(grace, err)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    ShimRun {
        end,
        stdout,
        stderr,
    }
}

async fn read_bounded<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = MAX_OUTPUT.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// The prefix of the shim's optional last line naming why it refused.
pub const REFUSAL_LINE: &str = "osc-refusal:";

/// The class the shim named on its last non-empty line of stdout or of
/// stderr (`osc-refusal: <class>`): `None` when it named none,
/// `Some(Err(word))` when the word is no class.
pub fn refusal_line(run: &ShimRun) -> Option<Result<RefusalClass, String>> {
    [&run.stdout, &run.stderr].into_iter().find_map(|text| {
        let last = text.lines().rev().find(|l| !l.trim().is_empty())?;
        let word = last.trim().strip_prefix(REFUSAL_LINE)?.trim();
        Some(RefusalClass::from_name(word).ok_or_else(|| word.to_string()))
    })
}

/// Judges one run: `None` when the client did what the scenario wants,
/// else the reason; `Err(reason)` means skip. `served` is how many inner
/// requests the server answered 2xx with the access key on them.
pub fn judge(
    scenario: &ClientScenario,
    run: &ShimRun,
    seen: &Observed,
    served: u64,
) -> Result<Option<String>, String> {
    let e = &scenario.expect;
    let said = || {
        let line = run
            .stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        if line.is_empty() {
            String::new()
        } else {
            format!(" (it said: {line})")
        }
    };
    let code = match &run.end {
        ShimEnd::NotStarted(why) => {
            return Ok(Some(format!("the client command could not run: {why}")))
        }
        ShimEnd::TimedOut => {
            return Ok(Some("the client hung past --timeout and was killed".into()))
        }
        ShimEnd::Exited(Some(EXIT_NOT_IMPLEMENTED)) => {
            return Err("the client says it does not implement this (exit 89)".into())
        }
        ShimEnd::Exited(code) => *code,
    };
    if seen.plaintext_requests > 0 {
        return Ok(Some(format!(
            "the client fell back to {} plaintext request(s)",
            seen.plaintext_requests
        )));
    }
    if seen.seqs_not_rising > 0 {
        return Ok(Some(format!(
            "the client sealed {} call(s) with a seq that does not rise above an earlier \
             call's on the same session (CALL-1)",
            seen.seqs_not_rising
        )));
    }
    if seen.resent_envelopes > 0 {
        return Ok(Some(
            "the client sent a call envelope again, byte for byte".into(),
        ));
    }
    if seen.calls_on_tampered_sessions > 0 {
        return Ok(Some(format!(
            "the client made {} call(s) on a session whose ServerHello was tampered with",
            seen.calls_on_tampered_sessions
        )));
    }
    if let Some(max) = e.max_calls {
        if seen.calls > max {
            return Ok(Some(format!(
                "the client made {} call(s); at most {max} allowed",
                seen.calls
            )));
        }
    }
    if let Some(min) = e.min_calls {
        if seen.calls < min {
            return Ok(Some(format!(
                "the client made {} call(s); at least {min} expected",
                seen.calls
            )));
        }
    }
    if let Some(max) = e.max_handshakes {
        if seen.handshakes > max {
            return Ok(Some(format!(
                "the client made {} handshake(s); at most {max} allowed",
                seen.handshakes
            )));
        }
    }
    if let Some(min) = e.min_handshakes {
        if seen.handshakes < min {
            return Ok(Some(format!(
                "the client made {} handshake(s); at least {min} expected",
                seen.handshakes
            )));
        }
    }
    if e.outcome == Behaviour::Refuse {
        // A refusal counts only at the stage where the fault is.
        if seen.handshakes == 0 {
            return Ok(Some(
                "the client never made a handshake, so it refused nothing".into(),
            ));
        }
        let at_handshake = e.refusal.is_some_and(RefusalClass::at_handshake);
        if at_handshake && seen.hellos_answered == 0 {
            return Ok(Some(
                "no ServerHello reached the client, so it refused before the fault it had to \
                 find"
                    .into(),
            ));
        }
    }
    if let (Behaviour::Refuse, Some(1..)) = (e.outcome, code) {
        match (refusal_line(run), e.refusal) {
            (Some(Err(word)), _) => {
                return Ok(Some(format!(
                    "the client's last line names {word:?}, which is no refusal class \
                     (docs/CLIENT-SHIM.md)"
                )))
            }
            (Some(Ok(said)), Some(want)) if said != want => {
                return Ok(Some(format!(
                    "the client refused for {} where the fault is {}",
                    said.name(),
                    want.name()
                )))
            }
            _ => {}
        }
    }
    if let (Behaviour::Complete, Some(0)) = (e.outcome, code) {
        if served < scenario.calls {
            return Ok(Some(format!(
                "the client exited 0, but the server answered {served} inner request(s) that \
                 carried the access key with 2xx where {} were due (is `Authorization: Bearer \
                 {{access_key}}` sent inside the channel?)",
                scenario.calls
            )));
        }
    }
    match (e.outcome, code) {
        (Behaviour::Complete, Some(0)) | (Behaviour::Refuse, Some(1..)) => Ok(None),
        (Behaviour::Complete, c) => Ok(Some(format!(
            "the call should have completed, but the client exited with {}{}",
            show(c),
            said()
        ))),
        (Behaviour::Refuse, c) => Ok(Some(format!(
            "the client exited with {} (accepted the response) where it had to refuse",
            show(c)
        ))),
    }
}

fn show(code: Option<i32>) -> String {
    code.map_or_else(|| "a signal".into(), |c| c.to_string())
}

/// Runs one scenario with `command` (placeholders unfilled), over HTTPS
/// when `tls` is given.
pub async fn run_scenario(
    scenario: &ClientScenario,
    command: &str,
    timeout: Duration,
    front: &Front,
) -> ScenarioResult {
    let started = Instant::now();
    let mut result = blank_result(scenario, command, front);
    if let Some(why) = needs_calls_placeholder(scenario, command) {
        result.verdict = Verdict::Skip;
        result.reason = Some(why);
        return result;
    }
    run_adversary_and_judge(scenario, command, timeout, front, &mut result).await;
    result.duration_ms = started.elapsed().as_millis() as u64;
    result
}

/// A passing result for `scenario` with its rerun command.
fn blank_result(scenario: &ClientScenario, command: &str, front: &Front) -> ScenarioResult {
    ScenarioResult {
        id: scenario.id.clone(),
        title: scenario.title.clone(),
        category: scenario.category.clone(),
        level: scenario.level.name().to_string(),
        requirements: scenario.requirements.clone(),
        verdict: Verdict::Pass,
        reason: None,
        expected: None,
        repro: Some(format!(
            "osc-harness test-client{} --client-cmd {} --only {}",
            front.rerun_flags(),
            shell_quote(command),
            scenario.id
        )),
        precondition: false,
        known: false,
        duration_ms: 0,
        transcript: Vec::new(),
    }
}

/// The verdict a scenario gets when its requirement does not hold.
fn missed(level: Level) -> Verdict {
    match level {
        Level::Must => Verdict::Fail,
        Level::Should => Verdict::Warn,
        Level::Upstream => Verdict::Info,
    }
}

async fn run_adversary_and_judge(
    scenario: &ClientScenario,
    command: &str,
    timeout: Duration,
    front: &Front,
    result: &mut ScenarioResult,
) {
    let adversary = match start_adversary(scenario, ([127, 0, 0, 1], 0).into(), front).await {
        Ok(a) => a,
        Err(e) => {
            result.verdict = Verdict::Skip;
            result.reason = Some(e.to_string());
            return;
        }
    };
    let filled = fill(
        command,
        &adversary.placeholders(scenario.mode, scenario.calls),
    );
    let run = run_shim(&filled, timeout).await;
    let seen = adversary.relay.observed();
    result.transcript = transcript(scenario, &adversary).await;
    match judge(scenario, &run, &seen, adversary.server.keyed_answers()) {
        Ok(None) => {}
        Ok(Some(reason)) => {
            result.verdict = missed(scenario.level);
            result.reason = Some(reason);
            result.expected = Some(expected_text(scenario));
        }
        Err(skip) => {
            result.verdict = Verdict::Skip;
            result.reason = Some(skip);
        }
    }
    // The reason may quote the client's own stderr, which may quote the key.
    let key = &adversary.server.access_key;
    if !key.is_empty() {
        result.reason = result
            .reason
            .take()
            .map(|r| r.replace(key.as_str(), "<redacted>"));
    }
    adversary.relay.shutdown().await;
    adversary.server.shutdown().await;
}

/// Why `scenario` cannot run with `command`: it needs several calls over
/// one channel and the command has no `{calls}` to be told so. A shim
/// that would make one call would neither prove nor disprove anything.
pub fn needs_calls_placeholder(scenario: &ClientScenario, command: &str) -> Option<String> {
    (scenario.calls > 1 && !command.contains("{calls}")).then(|| {
        format!(
            "needs {} calls over one channel; the --client-cmd has no {{calls}} placeholder \
             (docs/CLIENT-SHIM.md)",
            scenario.calls
        )
    })
}

/// How long the relay is given to finish the exchanges still running
/// when the shim ends (their responses' ends belong in the transcript).
const TRANSCRIPT_GRACE: Duration = Duration::from_millis(500);

/// What the client did, exchange by exchange, as the relay recorded it;
/// each exchange also names the server knobs in force, because what they
/// change happens behind the relay.
async fn transcript(scenario: &ClientScenario, adversary: &Adversary) -> Vec<Exchange> {
    let mut exchanges = adversary.relay.http_log(TRANSCRIPT_GRACE).await;
    if !scenario.server_bugs.is_empty() {
        let knobs = format!(
            "the server runs with --bug {}",
            scenario.server_bugs.join(" --bug ")
        );
        for x in exchanges.iter_mut().filter(|x| x.action != "(more)") {
            x.note = Some(match x.note.take() {
                Some(n) => format!("{n}; {knobs}"),
                None => knobs.clone(),
            });
        }
    }
    exchanges
}

fn expected_text(s: &ClientScenario) -> String {
    let mut parts = vec![match s.expect.outcome {
        Behaviour::Complete => "the call completes (exit 0)".to_string(),
        Behaviour::Refuse => "the client refuses (non-zero exit, not 89)".to_string(),
    }];
    if s.calls > 1 {
        parts.push(format!(
            "{} calls over one channel, each seq above the last",
            s.calls
        ));
    }
    if let Some(n) = s.expect.min_calls {
        parts.push(format!("at least {n} call(s)"));
    }
    if let Some(n) = s.expect.max_calls {
        parts.push(format!("at most {n} call(s)"));
    }
    if let Some(n) = s.expect.min_handshakes {
        parts.push(format!("at least {n} handshake(s)"));
    }
    if let Some(n) = s.expect.max_handshakes {
        parts.push(format!("at most {n} handshake(s)"));
    }
    parts.push("no plaintext fallback, no resent envelope, no seq reused on a session".into());
    parts.join("; ")
}

/// Runs `scenarios`, `concurrency` at a time, results in input order,
/// over HTTPS when `tls` is given.
///
/// The honest baseline of each mode a refusal scenario uses runs first
/// (unreported when it was not asked for). A refusal proves something
/// only about a client shown able to complete a call in that mode, so
/// when the baseline did not pass, the refusal scenarios of its mode are
/// not run: they end inconclusive, marked as a failed precondition, and
/// never pass.
pub async fn run_all(
    scenarios: &[ClientScenario],
    command: &str,
    timeout: Duration,
    concurrency: usize,
    front: &Front,
) -> Vec<ScenarioResult> {
    let modes: std::collections::BTreeSet<Mode> = scenarios
        .iter()
        .filter(|s| s.expect.outcome == Behaviour::Refuse)
        .map(|s| s.mode)
        .collect();
    let builtin = super::model::builtin().unwrap_or_default();
    let baselines: Vec<ClientScenario> = modes
        .iter()
        .filter_map(|m| {
            scenarios
                .iter()
                .chain(&builtin)
                .find(|s| s.is_baseline() && s.mode == *m)
                .cloned()
        })
        .collect();
    let baseline_results = run_batch(&baselines, command, timeout, concurrency, front).await;
    let shown: std::collections::BTreeMap<Mode, Result<(), String>> = modes
        .iter()
        .map(|m| {
            let got = baselines
                .iter()
                .zip(&baseline_results)
                .find(|(s, _)| s.mode == *m);
            let state = match got {
                Some((_, r)) if r.verdict == Verdict::Pass => Ok(()),
                Some((s, r)) => Err(format!(
                    "the honest baseline {} did not pass in this run ({})",
                    s.id,
                    r.reason.as_deref().unwrap_or("no reason given")
                )),
                None => Err(format!(
                    "no honest baseline scenario runs in {} mode",
                    m.name()
                )),
            };
            (*m, state)
        })
        .collect();
    let mut pending = Vec::new();
    let mut done: Vec<Option<ScenarioResult>> = Vec::with_capacity(scenarios.len());
    for s in scenarios {
        let ran = baselines
            .iter()
            .zip(&baseline_results)
            .find(|(b, _)| b.id == s.id)
            .map(|(_, r)| r.clone());
        let inconclusive = match (s.expect.outcome, shown.get(&s.mode)) {
            (Behaviour::Refuse, Some(Err(why))) => Some(why.clone()),
            _ => None,
        };
        done.push(match (ran, inconclusive) {
            (Some(r), _) => Some(r),
            (None, Some(why)) => {
                let mut r = blank_result(s, command, front);
                r.verdict = missed(s.level);
                r.precondition = true;
                r.reason = Some(format!(
                    "inconclusive: {why}; a refusal by a client not shown able to complete \
                     a {} call proves nothing",
                    s.mode.name()
                ));
                r.expected = Some(expected_text(s));
                Some(r)
            }
            (None, None) => {
                pending.push(s.clone());
                None
            }
        });
    }
    let mut rest = run_batch(&pending, command, timeout, concurrency, front)
        .await
        .into_iter();
    done.into_iter()
        .filter_map(|r| r.or_else(|| rest.next()))
        .collect()
}

/// Runs `scenarios`, `concurrency` at a time, results in input order.
async fn run_batch(
    scenarios: &[ClientScenario],
    command: &str,
    timeout: Duration,
    concurrency: usize,
    front: &Front,
) -> Vec<ScenarioResult> {
    let mut results = Vec::with_capacity(scenarios.len());
    for chunk in scenarios.chunks(concurrency.max(1)) {
        let mut set = tokio::task::JoinSet::new();
        for (i, s) in chunk.iter().enumerate() {
            let (s, command, front) = (s.clone(), command.to_string(), front.clone());
            set.spawn(async move { (i, run_scenario(&s, &command, timeout, &front).await) });
        }
        let mut got = Vec::new();
        while let Some(Ok(r)) = set.join_next().await {
            got.push(r);
        }
        got.sort_by_key(|(i, _)| *i);
        results.extend(got.into_iter().map(|(_, r)| r));
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_shell_quoted() {
        let values = vec![
            ("url", "http://127.0.0.1:1".to_string()),
            ("access_key", "it's $(rm -rf /)".to_string()),
        ];
        assert_eq!(
            fill("c {url} {access_key} {other} {}", &values),
            r"c http://127.0.0.1:1 'it'\''s $(rm -rf /)' {other} {}"
        );
    }
}
