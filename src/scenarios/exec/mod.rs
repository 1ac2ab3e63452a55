//! The step executor: runs one scenario's steps against a target through
//! the engine ([`crate::peer::Conversation`]) and judges expectations.
//!
//! A file step is first put into the edit language
//! ([`super::model::Step::to_language`]); from there on only the
//! language's variants ([`edit::Step`]) are run. One file per job: this
//! one dispatches a step and keeps the scenario's state (names, inner
//! requests, waits); [`send`] puts handshakes and calls on the wire; the
//! engine turns what came back into a [`crate::peer::Answer`]; [`judge`]
//! hands it to the one judge ([`crate::judge`]) with the step's
//! expectations.

mod judge;
mod send;

use std::collections::HashSet;
use std::time::Duration;

use crate::clock::unix_secs as now_secs;
use crate::peer::edit::{self, Inner, Wait};
use crate::peer::{Answer, Conversation, EngineError, Offer};
use crate::protocol::encoding::{b64url_decode, B64Strictness};
use crate::protocol::wire::InnerRequest;
use crate::report::Exchange;
use crate::rng::{RandomSource, SystemRandom};
use crate::transport::{OuterRequest, TransportError};

use super::model::{LanguageStep, Step};
use super::runner::{RunConfig, SharedSession};

/// The relay marker header (GATE-3).
pub use crate::peer::RELAY_HEADER;

/// Why a step did not meet its expectations.
#[derive(Debug, Clone)]
pub struct StepFailure {
    /// What went wrong, in words.
    pub reason: String,
    /// What was expected.
    pub expected: Option<String>,
    /// The step was an honest precondition, not the subject of the scenario.
    pub precondition: bool,
    /// Not a failure: the scenario cannot run here (the reason says why).
    pub skip: bool,
}

impl From<crate::judge::Finding> for StepFailure {
    fn from(f: crate::judge::Finding) -> Self {
        StepFailure {
            reason: f.actual,
            expected: Some(f.expected),
            precondition: f.precondition,
            skip: false,
        }
    }
}

impl StepFailure {
    fn new(reason: impl Into<String>, expected: impl Into<String>, precondition: bool) -> Self {
        StepFailure {
            reason: reason.into(),
            expected: Some(expected.into()),
            precondition,
            skip: false,
        }
    }
    fn skip(reason: impl Into<String>) -> Self {
        StepFailure {
            reason: reason.into(),
            expected: None,
            precondition: false,
            skip: true,
        }
    }
    fn engine(e: EngineError, precondition: bool) -> Self {
        match e {
            EngineError::Transport(t) => Self::transport(t, precondition),
            EngineError::Expired { .. } => Self::skip(format!("inconclusive: {e}")),
            EngineError::ExpiryTooFar(_) => Self::skip(e.to_string()),
            other => StepFailure::new(other.to_string(), "a session", true),
        }
    }
    fn transport(e: TransportError, precondition: bool) -> Self {
        StepFailure {
            reason: format!("transport: {e}"),
            expected: Some("an HTTP answer within the time and size limits".into()),
            precondition,
            skip: false,
        }
    }
}

type StepResult = Result<(), StepFailure>;

/// How many times a step's sessions are opened afresh before the scenario
/// is called inconclusive (another scenario of the run may take the room
/// in the handshake budget between the wait and the handshakes).
const FRESH_SESSION_TRIES: usize = 3;

/// How long a session opened before a handshake flood must still have to
/// live when the step after the flood is sent: the step reaches the
/// target well within it, so an unknown-session answer is an eviction.
const FLOODED_MARGIN_SECS: i64 = 1;

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    SystemRandom.fill(&mut b);
    b
}

/// Per-scenario state.
pub struct Context<'a> {
    cfg: &'a RunConfig,
    /// The requirement the scenario's expectations stand for.
    claim: crate::judge::Claim,
    /// The engine: the target, the sessions, their seqs and the pacing.
    conv: Conversation<'a>,
    /// Sessions a step deliberately waited out (the expiry scenarios):
    /// only on these is a step sent after the session's expiry.
    waited_out: HashSet<String>,
    /// When a handshake flood began (unix seconds): a session opened
    /// before it is one the flood must evict, so it is never renewed.
    flooded_at: Option<i64>,
    /// The transcript, secrets redacted.
    pub transcript: Vec<Exchange>,
    /// Every outer byte sent or received (for the blind-relay check).
    outer_bytes: Vec<u8>,
    canaries: Vec<String>,
    step: usize,
}

use crate::judge::shorten as truncate;

impl<'a> Context<'a> {
    /// Fresh state for one scenario, judged as `claim`.
    pub fn new(cfg: &'a RunConfig, claim: crate::judge::Claim) -> Self {
        Context {
            cfg,
            claim,
            conv: {
                let mut conv = Conversation::new(&cfg.target, &cfg.pacer, cfg.rate_limits());
                conv.hold_limit = Duration::from_secs(cfg.max_wait);
                conv.expiry_wait = Duration::from_secs(cfg.max_wait);
                conv
            },
            waited_out: HashSet::new(),
            flooded_at: None,
            transcript: Vec::new(),
            outer_bytes: Vec::new(),
            canaries: Vec::new(),
            step: 0,
        }
    }

    fn redact(&self, text: &str) -> String {
        self.cfg.redact(text)
    }

    fn record(
        &mut self,
        action: &str,
        req: &OuterRequest,
        inner: Option<&str>,
        status: u16,
        body: &[u8],
        inner_resp: Option<String>,
    ) {
        self.outer_bytes.extend_from_slice(req.path.as_bytes());
        for (k, v) in &req.headers {
            self.outer_bytes.extend_from_slice(k.as_bytes());
            self.outer_bytes.extend_from_slice(v.as_bytes());
        }
        self.outer_bytes.extend_from_slice(&req.body);
        self.outer_bytes.extend_from_slice(body);
        let x = Exchange {
            step: self.step,
            action: action.to_owned(),
            request_line: format!("{} {}", req.method, req.path),
            request_body: truncate(&self.redact(&String::from_utf8_lossy(&req.body)), 1000),
            inner_request: inner.map(|i| truncate(&self.redact(i), 1000)),
            status,
            response_body: truncate(&self.redact(&String::from_utf8_lossy(body)), 1000),
            inner_response: inner_resp.map(|i| truncate(&self.redact(&i), 1000)),
            note: None,
        };
        self.transcript.push(x);
    }

    fn expand(&self, text: &str) -> String {
        text.replace("{agent}", &self.cfg.target.agent())
            .replace("{address}", &self.cfg.target.address.to_checksum())
            .replace(
                "{scoped_agent}",
                self.cfg.scoped_agent_id.as_deref().unwrap_or("none"),
            )
            .replace("{key}", &self.cfg.target.access_key)
            .replace("{scoped_key}", self.cfg.scoped_key.as_deref().unwrap_or(""))
    }

    /// Runs one file step: its form in the edit language.
    pub async fn run_step(&mut self, index: usize, step: &Step) -> StepResult {
        self.step = index;
        self.run(&step.to_language()).await
    }

    /// Runs one step of the edit language on its session and judges its
    /// expectation (`None`: an honest precondition).
    pub async fn run(&mut self, step: &LanguageStep) -> StepResult {
        let (name, expect) = (step.session.as_str(), step.expect.as_ref());
        match &step.step {
            edit::Step::Handshake { body } => {
                self.handshake(name, send::HelloForm::Raw(body), expect)
                    .await
            }
            edit::Step::Hello(hello) => {
                self.handshake(name, send::HelloForm::Edited(hello), expect)
                    .await
            }
            edit::Step::Verify { edit, without } => {
                self.verify(name, edit.as_deref(), without.as_deref(), expect)
            }
            edit::Step::Freshness { count } => self.freshness(*count).await,
            edit::Step::Call(call) => self.call(name, call, expect).await,
            edit::Step::Resend => self.resend(None, expect).await,
            edit::Step::ResendSaved { envelope } => self.resend(Some(envelope), expect).await,
            edit::Step::Wait(wait) => self.wait(name, *wait).await,
            edit::Step::Plain { .. } => self.plain(&step.step, expect).await,
            edit::Step::Flood { extra } => self.flood(*extra).await,
            edit::Step::Blind => self.blind(),
            edit::Step::CallAfterExpiry => self.call_after_expiry(name, None, expect).await,
            edit::Step::CallAfterExpiryRelay { relay } => {
                self.call_after_expiry(name, Some(*relay), expect).await
            }
        }
    }

    /// The run's shared session, if it has comfortably long to live.
    fn pooled_session(&self) -> Option<SharedSession> {
        let pool = self.cfg.pool.lock().ok()?;
        let shared = pool.as_ref()?;
        let margin = self
            .cfg
            .session_ttl
            .map(|t| (t / 4).clamp(5, 60))
            .unwrap_or(60);
        (shared.server.expires_at - now_secs() > margin).then(|| shared.clone())
    }

    /// The plaintext `inner` seals (placeholders expanded) and the outer
    /// `Accept` it asks for; a canary it asks for is kept for `blind`.
    fn inner_request(&mut self, inner: &Inner) -> (String, Option<String>) {
        let key = &self.cfg.target.access_key;
        let text = match inner {
            Inner::Custom(spec) => {
                let canary = spec
                    .canary
                    .then(|| format!("canary-{}", hex::encode(random::<12>())));
                self.canaries.extend(canary.clone());
                spec.plaintext(key, |p| self.expand(p), canary.as_deref())
            }
            _ => edit::inner_plaintext(inner, key, |p| self.expand(p)),
        };
        (
            String::from_utf8_lossy(&text).into_owned(),
            inner.accept().map(str::to_owned),
        )
    }

    /// Waits until the step's session has expired; skips the scenario
    /// when that is more than `--max-wait` away.
    async fn wait_for_expiry(&mut self, name: String) -> StepResult {
        match self.conv.wait_for_expiry(&name).await {
            Ok(()) => {
                self.waited_out.insert(name);
                Ok(())
            }
            Err(EngineError::ExpiryTooFar(left)) => Err(StepFailure::skip(format!(
                "the session expires in {left}s, more than --max-wait {}s",
                self.cfg.max_wait
            ))),
            Err(e) => Err(StepFailure::engine(e, true)),
        }
    }

    /// Before a step on `name` (and the session it seals with): a session
    /// the run's own waiting outlived is never sent on. The step's sessions
    /// are opened afresh, back to back once the handshake budget has room
    /// for all of them at once (so waiting for the second cannot outlive
    /// the first); when the budget can never hold them all, or the run's
    /// other scenarios keep taking the room, the scenario is inconclusive
    /// and says why. A session a step waited out on purpose is left as it
    /// is: the step is about expiry. So is one opened before a handshake
    /// flood: a fresh session is not one the flood should have evicted, so
    /// when the flood outlasted it, eviction cannot be told from expiry
    /// and the scenario is inconclusive.
    async fn ensure_alive(&mut self, seal_with: Option<&String>, name: &str) -> StepResult {
        let mut names = vec![name.to_owned()];
        names.extend(seal_with.cloned());
        names.dedup();
        names.retain(|n| !self.waited_out.contains(n) && self.conv.session(n).is_some());
        if let Some(began) = self.flooded_at {
            let before = |n: &String| self.conv.session(n).is_some_and(|s| s.opened_at <= began);
            let displaced: Vec<String> = names.iter().filter(|n| before(n)).cloned().collect();
            if let Some(stale) = displaced
                .iter()
                .find(|n| self.conv.check_alive(n, FLOODED_MARGIN_SECS).is_err())
            {
                return Err(StepFailure::skip(format!(
                    "inconclusive: the session {stale:?}, opened before the handshake flood, expires within {FLOODED_MARGIN_SECS}s of its end: an unknown session would not tell eviction from expiry (the flood outlasted the session TTL)"
                )));
            }
            names.retain(|n| !displaced.contains(n));
        }
        for _ in 0..FRESH_SESSION_TRIES {
            let Some(stale) = names
                .iter()
                .find(|n| self.conv.check_alive(n, 2).is_err())
                .cloned()
            else {
                return Ok(());
            };
            if !self.cfg.pacer.wait_for_room(names.len()).await {
                return Err(StepFailure::skip(format!(
                    "inconclusive: the session {stale:?} expired while the run waited (the handshake budget), and the budget never allows the {} sessions this step needs at once",
                    names.len()
                )));
            }
            for n in names.clone() {
                self.fresh_session(&n).await?;
            }
        }
        match names.iter().find(|n| self.conv.check_alive(n, 2).is_err()) {
            None => Ok(()),
            Some(stale) => Err(StepFailure::skip(format!(
                "inconclusive: the session {stale:?} expired while the run waited (the handshake budget), each time a fresh one was opened"
            ))),
        }
    }

    /// Opens session `n` afresh with an honest handshake, recorded in the
    /// transcript, in place of one the run's waiting outlived.
    async fn fresh_session(&mut self, n: &str) -> StepResult {
        let offer = Offer::honest(self.cfg.target.address, random(), random());
        let answer = self
            .conv
            .handshake(n, &offer)
            .await
            .map_err(|e| StepFailure::engine(e, true))?;
        let req = OuterRequest::post_json("/secure/session", offer.body().to_vec());
        self.remember_headers(&answer.headers);
        self.record(
            "handshake (a fresh session: the last one expired while the run waited)",
            &req,
            None,
            answer.status,
            &answer.body,
            None,
        );
        self.relay_inconclusive(&answer)?;
        let usable = self.conv.session(n).is_some();
        crate::judge::handshake::honest_hello(&self.claim, &answer, usable, now_secs())?;
        Ok(())
    }

    /// A step the relay answered in the agent's place (its 502, 504, …)
    /// cannot be judged: the scenario is inconclusive, with the relay's
    /// reason.
    fn relay_inconclusive(&mut self, answer: &Answer) -> StepResult {
        if let Some(info) = answer.relay.info() {
            if let Some(x) = self.transcript.last_mut() {
                x.note = Some(match x.note.take() {
                    Some(n) => format!("{n}; {info}"),
                    None => info,
                });
            }
        }
        match answer.relay.inconclusive(answer.status) {
            Some(why) => Err(StepFailure::skip(why)),
            None => Ok(()),
        }
    }

    async fn wait(&mut self, name: &str, wait: Wait) -> StepResult {
        let secs = match wait {
            Wait::Expiry => return self.wait_for_expiry(name.to_owned()).await,
            Wait::Seconds { secs } => secs,
        };
        if secs > self.cfg.max_wait {
            return Err(StepFailure::skip(format!(
                "waiting {secs}s exceeds --max-wait"
            )));
        }
        tokio::time::sleep(Duration::from_secs(secs)).await;
        Ok(())
    }
}

/// The inner request as the transcript shows it: the JSON, plus the body
/// decoded when it is text.
fn describe_inner(plaintext: &str) -> String {
    let decoded = InnerRequest::parse(plaintext.as_bytes())
        .ok()
        .and_then(|i| i.body)
        .and_then(|b| b64url_decode(&b, B64Strictness::Upstream).ok())
        .and_then(|b| String::from_utf8(b).ok());
    match decoded {
        Some(body) => format!("{plaintext} (body: {body})"),
        None => plaintext.to_owned(),
    }
}
