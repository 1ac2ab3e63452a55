//! The step executor: runs one scenario's steps against a target through
//! the driver ([`crate::peer`]) and judges expectations.
//!
//! One file per job: this one interprets a step (state, names, inner
//! requests, waits); [`send`] puts handshakes and calls on the wire;
//! the driver turns what came back into a [`crate::peer::Answer`];
//! [`judge`] hands it to the one judge ([`crate::judge`]) with the step's
//! expectations.

mod judge;
mod send;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::unix_secs as now_secs;
use crate::protocol::encoding::{b64url_decode, b64url_encode, B64Strictness};
use crate::protocol::keys::SessionKeys;
use crate::protocol::wire::{ClientHello, InnerRequest, ServerHello};
use crate::report::Exchange;
use crate::rng::{RandomSource, SystemRandom};
use crate::transport::{OuterRequest, TransportError};

use super::model::{Action, Step};
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

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    SystemRandom.fill(&mut b);
    b
}

/// The harness side of one session.
struct Session {
    hello: ClientHello,
    server: ServerHello,
    keys: SessionKeys,
    next_seq: u64,
    /// The seq of the latest call (for `at = { seq = "same" }`).
    last_seq: u64,
    shared_seq: Option<Arc<AtomicU64>>,
}

/// A saved envelope.
#[derive(Clone)]
struct Saved {
    body: Vec<u8>,
    relay: bool,
    accept: Option<String>,
    session: String,
    seq: u64,
}

/// Per-scenario state.
pub struct Context<'a> {
    cfg: &'a RunConfig,
    /// The requirement the scenario's expectations stand for.
    claim: crate::judge::Claim,
    sessions: HashMap<String, Session>,
    saved: HashMap<String, Saved>,
    /// The latest call as sent, for a `resend` without a name.
    last_call: Option<Saved>,
    /// The transcript, secrets redacted.
    pub transcript: Vec<Exchange>,
    /// Every outer byte sent or received (for the blind-relay check).
    outer_bytes: Vec<u8>,
    canaries: Vec<String>,
    last_executions: Option<u64>,
    step: usize,
}

use crate::judge::shorten as truncate;

impl<'a> Context<'a> {
    /// Fresh state for one scenario, judged as `claim`.
    pub fn new(cfg: &'a RunConfig, claim: crate::judge::Claim) -> Self {
        Context {
            cfg,
            claim,
            sessions: HashMap::new(),
            saved: HashMap::new(),
            last_call: None,
            transcript: Vec::new(),
            outer_bytes: Vec::new(),
            canaries: Vec::new(),
            last_executions: None,
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

    /// Runs one step.
    pub async fn run_step(&mut self, index: usize, step: &Step) -> StepResult {
        self.step = index;
        match step.action.unwrap_or(Action::Call) {
            Action::Handshake => self.handshake(step).await,
            Action::Verify => self.verify(step),
            Action::Freshness => self.freshness(step).await,
            Action::Call => self.call(step).await,
            Action::Resend => self.resend(step).await,
            Action::Wait => self.wait(step).await,
            Action::Plain => self.plain(step).await,
            Action::Flood => self.flood(step).await,
            Action::Blind => self.blind(),
            Action::CallAfterExpiry => self.call_after_expiry(step).await,
        }
    }

    fn session_name(step: &Step) -> String {
        step.session.clone().unwrap_or_else(|| "main".into())
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

    fn inner_request(&mut self, step: &Step) -> (String, Option<String>) {
        if let Some(inner) = &step.inner {
            let text =
                crate::peer::edit::inner_plaintext(inner, &self.cfg.target.access_key, |p| {
                    self.expand(p)
                });
            return (String::from_utf8_lossy(&text).into_owned(), None);
        }
        if let Some(p) = &step.plaintext {
            return (self.expand(p), None);
        }
        let method = step.method.clone().unwrap_or_else(|| "GET".into());
        let path = self.expand(step.path.as_deref().unwrap_or("/health"));
        let authorization = match step.authorization.as_deref() {
            None => Some(format!("Bearer {}", self.cfg.target.access_key)),
            Some("none") => None,
            Some(a) => Some(self.expand(a)),
        };
        let mut headers: Vec<(String, String)> = step
            .headers
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), self.expand(v)))
            .collect();
        let mut body_text = step.body.as_ref().map(|b| self.expand(b));
        if step.canary == Some(true) {
            let canary = format!("canary-{}", hex::encode(random::<12>()));
            headers.push(("X-Canary".into(), canary.clone()));
            body_text = Some(format!("{{\"secret\":\"{canary}\"}}"));
            self.canaries.push(canary);
        }
        let accept = step.accept.clone();
        let inner = InnerRequest {
            method,
            path,
            authorization,
            accept: accept.clone(),
            content_type: step
                .content_type
                .clone()
                .or_else(|| body_text.as_ref().map(|_| "application/json".to_string())),
            headers: if headers.is_empty() {
                None
            } else {
                Some(headers)
            },
            body: step
                .body_field
                .clone()
                .or_else(|| body_text.map(|b| b64url_encode(b.as_bytes()))),
        };
        (inner.to_json(), accept)
    }

    /// Waits until the step's session has expired; skips the scenario
    /// when that is more than `--max-wait` away.
    async fn wait_for_expiry(&mut self, step: &Step) -> StepResult {
        let name = Self::session_name(step);
        let Some(s) = self.sessions.get(&name) else {
            return Err(StepFailure::new(
                format!("no session {name:?}"),
                "a session",
                true,
            ));
        };
        let left = (s.server.expires_at - now_secs() + 1).max(0) as u64;
        if left > self.cfg.max_wait {
            return Err(StepFailure::skip(format!(
                "the session expires in {left}s, more than --max-wait {}s",
                self.cfg.max_wait
            )));
        }
        let wait = crate::clock::until_expired(s.server.expires_at);
        tokio::time::sleep(wait + Duration::from_millis(50)).await;
        Ok(())
    }

    async fn wait(&mut self, step: &Step) -> StepResult {
        let secs = match step.seconds.as_deref() {
            Some("expiry") => return self.wait_for_expiry(step).await,
            Some(n) => n.parse::<u64>().unwrap_or(1),
            None => 1,
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
