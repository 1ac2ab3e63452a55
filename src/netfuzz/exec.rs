//! Runs a case's steps against a target through the one engine
//! ([`peer::Conversation`]): the session the steps share is lent to the
//! engine for the case ([`Case`]), which seals, sends and reads every step
//! and hands back one [`Answer`]. This file only says which step is sent
//! how, and keeps what the fuzzer needs beside the answer: the window an
//! honest target holds, whether the session is burned, how long an
//! incomplete request was held.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

use crate::judge::Claim;
use crate::peer::edit::{self, Framing};
use crate::peer::{
    self, Answer, Conversation, Ending, EngineError, Offer, RateLimitPolicy, SealSpec, SentCall,
};
use crate::protocol::session::ReplayWindow;
use crate::protocol::wire::ServerHello;
use crate::rng::SeededRandom;
use crate::transport::{OuterRequest, TransportError};

use super::case::{CallStep, Step};

/// The fuzzer's view of the one [`peer::Target`]: the target, and how long
/// the fuzzer waits on it where a case asks it to wait.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    /// The target: where, which agent, the key, the relay marker, the
    /// limits and the handshake budget.
    pub target: peer::Target,
    /// Longest wait for a session to expire; a later expiry skips the step.
    pub expiry_wait: Duration,
    /// Longest wait for an answer to an incomplete request (framing that
    /// promises bytes never sent); held longer, it is a hang.
    pub slow_request_limit: Duration,
}

/// Why a run cannot go on (as opposed to a finding).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The target refused or failed the honest handshake.
    #[error("the honest handshake failed: {0}")]
    Handshake(String),
    /// The target could not be reached.
    #[error("{0}")]
    Transport(#[from] TransportError),
    /// The target answered the honest hello with a ServerHello the client
    /// must refuse: it does not verify against the pinned address, its key
    /// cannot be agreed, or it is already expired. A finding about the
    /// target, not a target that is gone.
    #[error("the ServerHello is refused ({field}): {detail}")]
    Hello {
        /// The signature field of the finding (`identity`, `version`, …).
        field: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl ExecError {
    /// The refused ServerHello as a fired oracle, for booking as a finding.
    pub fn hello_firing(&self) -> Option<super::oracle::Firing> {
        match self {
            ExecError::Hello { field, detail } => {
                Some(super::oracle::hello_refused(field, detail.clone()))
            }
            _ => None,
        }
    }

    fn engine(e: EngineError) -> ExecError {
        match e {
            EngineError::Transport(t) => ExecError::Transport(t),
            other => ExecError::Handshake(other.to_string()),
        }
    }
}

/// The fuzzer's handshake budget: the driver's one pacer.
pub use crate::peer::HandshakePacer as HandshakeBudget;

/// The name of the worker's session inside a conversation.
const SESSION: &str = "fuzz";
/// The name a mutated hello's session gets (never the worker's).
const HELLO: &str = "hello";

/// The pacer of a case's own steps: a mutated hello is paid for from the
/// run's budget before the case runs, so the engine does not pace it again.
fn unpaced() -> &'static HandshakeBudget {
    static UNPACED: OnceLock<HandshakeBudget> = OnceLock::new();
    UNPACED.get_or_init(|| HandshakeBudget::new(None))
}

/// An open session (the engine's), with what the fuzzer keeps beside it.
#[derive(Debug)]
pub struct Session {
    /// The engine's session; lent to the conversation while a case runs.
    engine: Option<peer::Session>,
    /// The window an honest target holds after the answers seen so far: a
    /// seq is marked exactly when its call was answered 200 (CALL-4).
    window: ReplayWindow,
    /// Whether a step may have moved the target's window unpredictably.
    pub burned: bool,
    /// The ServerHello as the target wrote it (empty for a fork).
    pub hello: Vec<u8>,
}

impl Session {
    /// Performs an honest handshake through the engine, waiting on the
    /// budget and on 429; a ServerHello the judge refuses is
    /// [`ExecError::Hello`].
    pub async fn open(
        info: &TargetInfo,
        rng: &mut SeededRandom,
        budget: &HandshakeBudget,
    ) -> Result<Session, ExecError> {
        let offer = Offer::random(info.target.address, rng);
        let policy = RateLimitPolicy::new(7, Duration::from_secs(120));
        let mut conv = Conversation::new(&info.target, budget, policy);
        let answer = conv
            .handshake(SESSION, &offer)
            .await
            .map_err(ExecError::engine)?;
        if answer.status == 429 {
            return Err(ExecError::Handshake(
                "still rate limited (429) after eight tries".into(),
            ));
        }
        if answer.status != 200 {
            return Err(ExecError::Handshake(format!(
                "HTTP {}: {}",
                answer.status,
                lossy(&answer.body, 300)
            )));
        }
        let hello = ServerHello::parse(&answer.body)
            .map_err(|e| ExecError::Handshake(format!("bad ServerHello: {e}")))?;
        let now = crate::clock::unix_secs();
        let engine = conv.take_session(SESSION);
        let claim = Claim::new("HS-1", crate::report::Level::Must);
        if let Err(f) =
            crate::judge::handshake::honest_hello(&claim, &answer, engine.is_some(), now)
        {
            // The judge refuses the ServerHello; the client's own refusal
            // says which way, for the finding's signature.
            let expired = answer.expires_at.is_some_and(|e| e <= now);
            let (field, detail) = match offer.finish(&hello) {
                _ if expired => (
                    "expired",
                    format!(
                        "the ServerHello announces expiresAt {} (now {now}): the session is over before its first call",
                        hello.expires_at
                    ),
                ),
                Err(e) => (crate::judge::handshake::refused_hello_field(&e), e.to_string()),
                Ok(_) => ("identity", f.actual),
            };
            return Err(ExecError::Hello { field, detail });
        }
        let engine = engine.ok_or_else(|| ExecError::Handshake("no session".into()))?;
        Ok(Session {
            engine: Some(engine),
            window: ReplayWindow::new(),
            burned: false,
            hello: answer.body,
        })
    }

    /// Whether the session can take another call at `now`.
    pub fn usable(&self, now: i64) -> bool {
        !self.burned
            && self
                .engine
                .as_ref()
                .is_some_and(|s| !s.expired(now, 5) && s.cursor.next < (1 << 52))
    }

    /// When the target said the session expires (unix seconds).
    pub fn expires_at(&self) -> i64 {
        self.engine.as_ref().map_or(0, |s| s.expires_at())
    }

    /// A copy that owns the next seq, for a case run in the background.
    pub fn fork(&mut self) -> Session {
        let engine = self.engine.clone();
        if let Some(s) = self.engine.as_mut() {
            s.cursor.next += 1;
        }
        Session {
            engine,
            window: self.window.clone(),
            burned: false,
            hello: Vec::new(),
        }
    }
}

/// One executed step: what was sent and what came back.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The endpoint hit.
    pub endpoint: &'static str,
    /// The body sent.
    pub sent: Vec<u8>,
    /// The answer, as the engine read it.
    pub answer: Answer,
    /// The seq sealed with (calls only).
    pub seq: Option<u64>,
    /// Whether an honest target's window would take that seq (calls only).
    pub fresh: Option<bool>,
    /// An incomplete request the target held longer than `--timeout`
    /// before it answered or closed (within `--slow-request-limit`).
    pub slow: Option<Duration>,
    /// The step was not run (why); never judged.
    pub skipped: Option<String>,
}

impl Outcome {
    fn new(endpoint: &'static str, sent: Vec<u8>, answer: Answer) -> Outcome {
        Outcome {
            endpoint,
            sent,
            answer,
            seq: None,
            fresh: None,
            slow: None,
            skipped: None,
        }
    }

    fn skipped(endpoint: &'static str, why: String) -> Outcome {
        Outcome {
            skipped: Some(why),
            ..Outcome::new(endpoint, Vec::new(), Answer::default())
        }
    }

    /// An engine error as what came back: a transport failure is an
    /// ending the judge weighs, anything else a step that did not run.
    fn failed(endpoint: &'static str, sent: Vec<u8>, e: EngineError, started: Instant) -> Outcome {
        let ending = match e {
            EngineError::Transport(TransportError::Timeout { .. }) => Ending::TimedOut {
                secs: started.elapsed().as_secs_f64(),
            },
            // The raw bytes never left: nothing to judge.
            EngineError::Transport(t @ TransportError::NeedsHttp1 { .. }) => {
                return Outcome::skipped(endpoint, t.to_string())
            }
            EngineError::Transport(t) => Ending::Dropped(t.to_string()),
            other => return Outcome::skipped(endpoint, other.to_string()),
        };
        let answer = Answer {
            ending,
            ..Answer::default()
        };
        Outcome::new(endpoint, sent, answer)
    }

    /// A one-line account for findings.
    pub fn describe(&self) -> String {
        match (&self.skipped, self.slow) {
            (Some(why), _) => format!("skipped: {why}"),
            (None, Some(held)) => format!(
                "held {:.1}s, then {}",
                held.as_secs_f64(),
                crate::judge::allowed::describe(&self.answer)
            ),
            (None, None) => crate::judge::allowed::describe(&self.answer),
        }
    }
}

/// Text for people, cut at `max` bytes.
pub fn lossy(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > max {
        s.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    s
}

/// A case in progress: the engine holds the session for the case's steps
/// and gives it back when the case ends (also when it is dropped early).
pub struct Case<'a> {
    info: &'a TargetInfo,
    conv: Conversation<'a>,
    session: &'a mut Session,
    /// The latest call when it went out with edited framing, which the
    /// engine does not keep for a resend.
    framed_last: Option<SentCall>,
}

impl Drop for Case<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.conv.take_session(SESSION) {
            self.session.engine = Some(s);
        }
    }
}

impl<'a> Case<'a> {
    /// A case on `session`.
    pub fn new(info: &'a TargetInfo, session: &'a mut Session) -> Case<'a> {
        let mut conv = Conversation::new(&info.target, unpaced(), RateLimitPolicy::NONE);
        // The engine waits the answer timeout plus this for an incomplete
        // request; the fuzzer's limit is the whole wait.
        conv.hold_limit = info
            .slow_request_limit
            .saturating_sub(info.target.limits.response_timeout);
        conv.expiry_wait = info.expiry_wait;
        if let Some(s) = session.engine.take() {
            conv.insert_session(SESSION, s);
        }
        Case {
            info,
            conv,
            session,
            framed_last: None,
        }
    }

    /// Runs one step.
    pub async fn step(&mut self, step: &Step) -> Outcome {
        let started = Instant::now();
        match step {
            Step::Call(call) if step.is_fuzz_step() => self.call(call).await,
            Step::CallAfterExpiry => match self.conv.wait_for_expiry(SESSION).await {
                Ok(()) => self.call(&super::gen::Generator::valid_call()).await,
                Err(EngineError::ExpiryTooFar(left)) => Outcome::skipped(
                    "/secure/call",
                    format!(
                        "the session expires in {left}s, beyond the {}s this run waits for an expiry",
                        self.info.expiry_wait.as_secs()
                    ),
                ),
                Err(e) => Outcome::skipped("/secure/call", e.to_string()),
            },
            Step::Resend => {
                let result = match self.framed_last.take() {
                    Some(sent) => self.conv.call(sent).await,
                    None => self.conv.resend().await,
                };
                let sent = self
                    .conv
                    .last_call()
                    .map(|c| c.body.clone())
                    .unwrap_or_default();
                match result {
                    Ok(answer) => Outcome::new("/secure/call", sent, answer),
                    Err(e) => Outcome::failed("/secure/call", sent, e, started),
                }
            }
            Step::Handshake { body } => {
                let body = self.info.target.expand(body).into_bytes();
                // Fixed key material: the hello is edited, its keys only
                // matter if the target accepts it.
                let offer = Offer::raw(self.info.target.address, [7; 32], [9; 16], body);
                let sent = offer.body().to_vec();
                match self.conv.handshake(HELLO, &offer).await {
                    Ok(answer) => Outcome::new("/secure/session", sent, answer),
                    Err(e) => Outcome::failed("/secure/session", sent, e, started),
                }
            }
            Step::Plain {
                method,
                path,
                with_key,
                body,
                ..
            } if step.is_fuzz_step() => {
                let target = &self.info.target;
                let mut request = OuterRequest::post_json(target.expand(path), body.clone());
                request.method = method.clone();
                if *with_key {
                    request.headers.push((
                        "Authorization".into(),
                        format!("Bearer {}", target.access_key),
                    ));
                }
                let request = target.outer(request);
                let sent = body.as_bytes().to_vec();
                match self.conv.plain(&request).await {
                    Ok(answer) => Outcome::new("plaintext", sent, answer),
                    Err(e) => Outcome::failed("plaintext", sent, e, started),
                }
            }
            // The suite's steps (hello field edits, saved envelopes, inner
            // headers, verify, waits, …) are run by `test`, not fuzzed.
            _ => Outcome::skipped("suite", "not a fuzz step".into()),
        }
    }

    async fn call(&mut self, call: &CallStep) -> Outcome {
        let target = &self.info.target;
        let Some(next) = self.conv.session(SESSION).map(|s| s.cursor.next) else {
            return Outcome::skipped("/secure/call", "no session".into());
        };
        if call.at.is_none() && call.seq.is_some_and(|s| s >= next) {
            // An explicit seq at or past the cursor moves the target's
            // window where the fuzzer cannot follow.
            self.session.burned = true;
        }
        let plaintext =
            edit::inner_plaintext(&call.inner, &target.access_key, |p| target.expand(p));
        let spec = SealSpec::for_call(SESSION, call);
        let (body, seq) = match self.conv.seal(&spec, &plaintext) {
            Ok(sealed) => sealed,
            Err(e) => return Outcome::skipped("/secure/call", e.to_string()),
        };
        let fresh = self.session.window.would_accept(seq);
        let started = Instant::now();
        let mut outcome = if call.framing.is_normal() {
            self.framed_last = None;
            let sent = body.clone();
            let result = self
                .conv
                .call(SentCall {
                    body,
                    relay: target.relay_origin,
                    accept: None,
                    session: SESSION.into(),
                    seq,
                })
                .await;
            match result {
                Ok(answer) => Outcome::new("/secure/call", sent, answer),
                Err(e) => Outcome::failed("/secure/call", sent, e, started),
            }
        } else {
            self.framed(body, seq, &call.framing, started).await
        };
        if outcome.answer.status == 200 && outcome.answer.ending == Ending::Answered {
            self.session.window.mark(seq);
        }
        outcome.seq = Some(seq);
        outcome.fresh = Some(fresh);
        outcome
    }

    /// A call in edited framing, as raw bytes; an incomplete request the
    /// target held past the answer timeout, then answered or closed, is
    /// timed (LIM-2).
    async fn framed(
        &mut self,
        body: Vec<u8>,
        seq: u64,
        framing: &Framing,
        started: Instant,
    ) -> Outcome {
        let relay = self.info.target.relay_origin;
        let result = self.conv.framed(&body, relay, framing).await;
        let held = started.elapsed();
        let mut outcome = match result {
            Ok(answer) => Outcome::new("/secure/call", body.clone(), answer),
            Err(e) => Outcome::failed("/secure/call", body.clone(), e, started),
        };
        let answered = matches!(outcome.answer.ending, Ending::Answered | Ending::Closed);
        if framing.leaves_request_incomplete()
            && answered
            && held > self.info.target.limits.response_timeout
        {
            outcome.slow = Some(held);
        }
        self.framed_last = Some(SentCall {
            body,
            relay,
            accept: None,
            session: SESSION.into(),
            seq,
        });
        outcome
    }
}

/// A fresh seeded source for handshake keys.
pub fn handshake_rng(seed: u64, worker: u64) -> SeededRandom {
    SeededRandom::new(seed, &format!("netfuzz-handshake-{worker}"))
}

/// A plain valid call on `session`: the liveness probe.
pub async fn probe(info: &TargetInfo, session: &mut Session) -> Result<(), super::oracle::Firing> {
    probe_with(info, session, super::gen::Generator::valid_call()).await
}

/// A liveness probe with this honest `call` (a run or a small dispatch);
/// the oracle it fired when it failed.
pub async fn probe_with(
    info: &TargetInfo,
    session: &mut Session,
    call: CallStep,
) -> Result<(), super::oracle::Firing> {
    let step = Step::Call(call);
    let outcome = Case::new(info, session).step(&step).await;
    match super::oracle::judge(info, &step, &outcome, &[]) {
        None => Ok(()),
        Some(v) => Err(v),
    }
}

#[cfg(test)]
mod tests {
    use crate::peer::edit::{apply_byte_edit, ByteEdit};
    use crate::protocol::session::ClientSession;

    fn sealed_body(secret: u8, edits: &[ByteEdit]) -> Vec<u8> {
        let keys = crate::protocol::keys::derive_session_keys(&[secret; 32], b"fuzz-test");
        let session = ClientSession::new("sid-fixed".into(), keys, i64::MAX);
        let plaintext = b"{\"method\":\"GET\",\"path\":\"/\"}";
        let mut body = session.seal_at(7, plaintext).to_json().into_bytes();
        for e in edits {
            apply_byte_edit(&mut body, e);
        }
        body
    }

    #[test]
    fn a_set_byte_is_the_same_on_any_session() {
        let a = sealed_body(1, &[]);
        let b = sealed_body(2, &[]);
        assert_eq!(a.len(), b.len());
        // A position inside the ciphertext, where the two sessions differ.
        let at = (0..a.len()).rev().find(|&i| a[i] != b[i]).unwrap();
        let set = [ByteEdit::Set { at, byte: b'=' }];
        let (a, b) = (sealed_body(1, &set), sealed_body(2, &set));
        assert_eq!((a[at], b[at]), (b'=', b'='));
        // A XOR there gives different bytes (the reason Set exists).
        let xor = [ByteEdit::Xor { at, mask: 0x20 }];
        assert_ne!(sealed_body(1, &xor)[at], sealed_body(2, &xor)[at]);
    }
}
