//! The one engine: a [`Conversation`] owns the target, the named sessions
//! with their seq cursors and expiry, and the pacing, runs a step (any
//! [`edit::Step`], hello edits included, or the primitives a scenario
//! builds its steps from) and returns one [`Answer`]. Every answer a
//! command judges is assembled here.
//!
//! Under `--via-relay` an answer the relay gave in the agent's place is
//! recognised: a relay 429 is waited out and the request sent again (the
//! agent never saw it, so this is no replay); any other relay error stays
//! in [`Answer::relay`] for the caller to call the step inconclusive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::answer::{hello_emitted, read_call_answer, Answer, Ending, HelloCheck};
use super::edit::{self, ByteEdit, EnvelopeEdit, Framing, SeqAt, SeqCursor};
use super::relay::{relay_facts, relay_retry_wait};
use super::{post_hello, seal, HandshakePacer, Offer, RateLimitPolicy, Target, RELAY_HEADER};
use super::{ResponseReader, StrictError, StrictRead};
use crate::protocol::client_hooks::{ClientResponseHooks, HelloCheckHooks};
use crate::protocol::error::HandshakeError;
use crate::protocol::handshake::Transcript;
use crate::protocol::identity::{recover_channel_signer, Address, SignaturePolicy};
use crate::protocol::keys::{b64_len, request_aad, seal_b64_into};
use crate::protocol::keys::{SessionKeys, SymmetricKey};
use crate::protocol::names::CALL_PATH;
use crate::protocol::session::ClientSession;
use crate::protocol::wire::CallRequest;
use crate::protocol::wire::{ClientHello, ServerHello};
use crate::protocol::{TAG_LEN, VERSION};
use crate::transport::{self, OuterRequest, TransportError};

/// How many times a request the relay refused for its rate limit is sent
/// again.
const RELAY_RETRIES: u32 = 6;

/// One open session as the harness holds it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The ClientHello as sent.
    pub hello: ClientHello,
    /// The ServerHello as received.
    pub server: ServerHello,
    /// The derived keys.
    pub keys: SessionKeys,
    /// The next fresh seq and the latest one used.
    pub cursor: SeqCursor,
    /// A session shared between conversations hands its seqs out from one
    /// counter.
    pub shared_seq: Option<Arc<AtomicU64>>,
    /// When the harness took the session (unix seconds): a session whose
    /// expiry was already past then was never alive to expire.
    pub opened_at: i64,
}

impl Session {
    /// A session fresh from its handshake (seqs start at 1).
    pub fn new(hello: ClientHello, server: ServerHello, keys: SessionKeys) -> Self {
        Session {
            hello,
            server,
            keys,
            cursor: SeqCursor { next: 1, last: 0 },
            shared_seq: None,
            opened_at: crate::clock::unix_secs(),
        }
    }

    /// When the target said the session expires (unix seconds).
    pub fn expires_at(&self) -> i64 {
        self.server.expires_at
    }

    /// Whether the session is known to have expired at `now`, or will
    /// within `margin` seconds.
    pub fn expired(&self, now: i64, margin: i64) -> bool {
        self.server.expires_at <= now + margin
    }

    /// Whether the session was alive when taken and has expired since (or
    /// will within `margin` seconds): the harness's own waiting outlived it.
    pub fn outlived(&self, now: i64, margin: i64) -> bool {
        self.server.expires_at > self.opened_at && self.expired(now, margin)
    }

    /// The seq a call is sealed with: relative (`at`), explicit (`seq`),
    /// the shared counter's next, or the session's next. Moves the cursor.
    pub fn take_seq(&mut self, seq: Option<u64>, at: Option<SeqAt>) -> u64 {
        let seq = match (at, seq, &self.shared_seq) {
            (Some(at), _, _) => {
                let mut cursor = SeqCursor {
                    next: self.cursor.next.max(1),
                    last: self.cursor.last,
                };
                cursor.relative(at)
            }
            (None, Some(seq), _) => seq,
            (None, None, Some(counter)) => counter.fetch_add(1, Ordering::SeqCst),
            (None, None, None) => self.cursor.next,
        };
        self.cursor.next = self.cursor.next.max(seq.saturating_add(1));
        self.cursor.last = seq;
        seq
    }
}

/// How a call is sealed: with which session's keys and direction, at
/// which seq, and the edits applied after sealing.
#[derive(Debug, Clone, Default)]
pub struct SealSpec {
    /// The session whose sid the envelope carries.
    pub session: String,
    /// Seal with this session's keys and sid instead (`None`: the same).
    pub seal_with: Option<String>,
    /// Seal with the `s2c` key instead of `c2s` (CALL-5).
    pub wrong_direction: bool,
    /// An explicit seq.
    pub seq: Option<u64>,
    /// A seq relative to the session's calls (wins over `seq`).
    pub at: Option<SeqAt>,
    /// Envelope edits, in order.
    pub envelope: Vec<EnvelopeEdit>,
    /// Byte edits of the whole body, after the envelope edits.
    pub bytes: Vec<ByteEdit>,
}

impl SealSpec {
    /// How `call` of the edit language is sealed on session `session`:
    /// its seq, envelope and byte edits and key direction.
    pub fn for_call(session: &str, call: &edit::CallStep) -> Self {
        SealSpec {
            session: session.to_owned(),
            seq: call.seq,
            at: call.at,
            envelope: call.envelope.clone(),
            bytes: call.bytes.clone(),
            wrong_direction: call.wrong_direction,
            seal_with: call.seal_with.clone(),
        }
    }
}

/// A call as sent, for a resend.
#[derive(Debug, Clone)]
pub struct SentCall {
    /// The body, byte for byte.
    pub body: Vec<u8>,
    /// Whether it carried the relay marker.
    pub relay: bool,
    /// Its outer `Accept`.
    pub accept: Option<String>,
    /// The session it was sent on.
    pub session: String,
    /// The seq it was sealed with.
    pub seq: u64,
}

/// Why a step could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The step names a session the conversation does not hold.
    #[error("no session {0:?}")]
    NoSession(String),
    /// A resend with no call before it.
    #[error("no call to resend")]
    NothingToResend,
    /// The session is known to have expired and the step is not about
    /// expiry: sending it would judge the harness's own waiting.
    #[error("the session {name:?} expired at {expires_at}, before this step")]
    Expired {
        /// The session.
        name: String,
        /// When it expired.
        expires_at: i64,
    },
    /// The session expires later than the conversation may wait.
    #[error("the session expires in {0}s, more than the wait allowed")]
    ExpiryTooFar(u64),
    /// A resend of an envelope no call saved under that name.
    #[error("no saved envelope {0:?}")]
    NotSaved(String),
    /// The step is not one request (verify, freshness, wait, flood,
    /// blind): the suite runs it from the engine's primitives.
    #[error("`{0}` is not one request; the suite runs it from the engine's primitives")]
    NotOneRequest(&'static str),
    /// The target could not be reached, or broke HTTP.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// One conversation with a target: its sessions, seq cursors and pacing.
#[derive(Debug)]
pub struct Conversation<'a> {
    target: &'a Target,
    pacer: &'a HandshakePacer,
    policy: RateLimitPolicy,
    sessions: HashMap<String, Session>,
    last_call: Option<SentCall>,
    saved: HashMap<String, SentCall>,
    last_executions: Option<u64>,
    /// Longest extra wait for an answer to an incomplete request (framing
    /// that promises bytes never sent) beyond the target's answer timeout.
    pub hold_limit: Duration,
    /// Longest wait for a session to expire (a call after expiry).
    pub expiry_wait: Duration,
}

impl<'a> Conversation<'a> {
    /// A conversation with `target`, its handshakes paced by `pacer` and a
    /// handshake 429 waited out as `policy` says.
    pub fn new(target: &'a Target, pacer: &'a HandshakePacer, policy: RateLimitPolicy) -> Self {
        Conversation {
            target,
            pacer,
            policy,
            sessions: HashMap::new(),
            last_call: None,
            saved: HashMap::new(),
            last_executions: None,
            hold_limit: Duration::from_secs(10),
            expiry_wait: Duration::from_secs(10),
        }
    }

    /// The target.
    pub fn target(&self) -> &'a Target {
        self.target
    }

    /// The handshake pacer.
    pub fn pacer(&self) -> &'a HandshakePacer {
        self.pacer
    }

    /// A session by name.
    pub fn session(&self, name: &str) -> Option<&Session> {
        self.sessions.get(name)
    }

    /// A session by name, to change.
    pub fn session_mut(&mut self, name: &str) -> Option<&mut Session> {
        self.sessions.get_mut(name)
    }

    /// Holds `session` under `name` (a session opened elsewhere, e.g. a
    /// run's shared one).
    pub fn insert_session(&mut self, name: &str, session: Session) {
        self.sessions.insert(name.to_owned(), session);
    }

    /// Hands back the session held under `name` (a session that lives
    /// longer than one conversation, e.g. a fuzz worker's).
    pub fn take_session(&mut self, name: &str) -> Option<Session> {
        self.sessions.remove(name)
    }

    /// The latest call as sent.
    pub fn last_call(&self) -> Option<&SentCall> {
        self.last_call.as_ref()
    }

    /// Keeps a call as sent under `name`, for a resend of that name.
    pub fn save_call(&mut self, name: &str, sent: SentCall) {
        self.saved.insert(name.to_owned(), sent);
    }

    /// The call saved under `name`.
    pub fn saved_call(&self, name: &str) -> Option<&SentCall> {
        self.saved.get(name)
    }

    /// Posts a hello (the relay marker never goes on a handshake: a 429 is
    /// the target protecting itself, HS-8, waited out as the policy says)
    /// and, when the answer is a usable ServerHello, holds the session
    /// under `name`. The answer says whether the ServerHello recovers to
    /// the pinned address and when it expires.
    pub async fn handshake(&mut self, name: &str, offer: &Offer) -> Result<Answer, EngineError> {
        let target = Target {
            relay_origin: false,
            ..self.target.clone()
        };
        let body = offer.body().to_vec();
        let mut attempt = 0;
        let resp = loop {
            let resp = post_hello(&target, &body, self.pacer, self.policy)
                .await?
                .response;
            let relay = self.relay_of(resp.status, &resp.headers, &resp.body);
            if relay.rate_limited() && attempt < RELAY_RETRIES {
                tokio::time::sleep(relay_retry_wait(&resp.headers, attempt)).await;
                attempt += 1;
                continue;
            }
            break resp;
        };
        let mut answer = Answer {
            status: resp.status,
            relay: self.relay_of(resp.status, &resp.headers, &resp.body),
            emitted: hello_emitted(&resp.body),
            headers: resp.headers,
            body: resp.body,
            ..Answer::default()
        };
        if answer.status == 200 {
            let sent = ClientHello::parse(&body);
            match (sent, ServerHello::parse(&answer.body)) {
                (_, Err(e)) => answer.hello = Some(HelloCheck::Unusable(e.to_string())),
                (Ok(sent), Ok(server)) => {
                    let transcript = Transcript::from_hellos(&sent, &server).render();
                    let signer = recover_channel_signer(
                        transcript.as_bytes(),
                        &server.signature,
                        SignaturePolicy::default(),
                    );
                    let verified = matches!(signer, Ok(a) if a == self.target.address);
                    answer.verified = Some(verified);
                    answer.expires_at = Some(server.expires_at);
                    // The identity verdict belongs to the judge; the keys
                    // are needed either way.
                    let finished = offer.finish_as_sent(&sent, &server);
                    answer.hello = Some(honest_client_check(
                        &finished,
                        verified,
                        &signer,
                        self.target.address,
                    ));
                    if let Ok(session) = finished {
                        let keys = session.keys().clone();
                        self.sessions
                            .insert(name.to_owned(), Session::new(sent, server, keys));
                    }
                }
                (Err(_), Ok(_)) => {}
            }
        }
        Ok(answer)
    }

    /// Seals `plaintext` as `spec` says and returns the body and the seq.
    pub fn seal(
        &mut self,
        spec: &SealSpec,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, u64), EngineError> {
        let sealer_name = spec.seal_with.as_deref().unwrap_or(&spec.session);
        let sealer = self
            .sessions
            .get(sealer_name)
            .ok_or_else(|| EngineError::NoSession(sealer_name.to_owned()))?;
        let seal_sid = sealer.server.sid.clone();
        let key: SymmetricKey = if spec.wrong_direction {
            sealer.keys.s2c
        } else {
            sealer.keys.c2s
        };
        let session = self
            .sessions
            .get_mut(&spec.session)
            .ok_or_else(|| EngineError::NoSession(spec.session.clone()))?;
        let seq = session.take_seq(spec.seq, spec.at);
        let sid = session.server.sid.clone();
        let ct = seal::sealed_ct(&key, &seal_sid, seq, plaintext);
        let sealed = seal::envelope(&sid, seq, ct, |_| {});
        let mut body = edit::edit_envelope(&String::from_utf8_lossy(&sealed), &spec.envelope);
        for e in &spec.bytes {
            edit::apply_byte_edit(&mut body, e);
        }
        Ok((body, seq))
    }

    /// Posts a call body and reads the answer, opening it with `session`'s
    /// keys for `seq`. The call is remembered for [`Conversation::resend`]
    /// (its body moves there after the send: no copy per call).
    pub async fn call(&mut self, mut sent: SentCall) -> Result<Answer, EngineError> {
        let mut req = OuterRequest::post_json(CALL_PATH, std::mem::take(&mut sent.body));
        if let Some(a) = &sent.accept {
            req = req.with_header("Accept", a.clone());
        }
        if sent.relay {
            req = req.with_header(RELAY_HEADER, "1");
        }
        let keys = self
            .sessions
            .get(&sent.session)
            .map(|s| (s.server.sid.clone(), s.keys.clone()));
        let seq = sent.seq;
        let answer = self.exchange_call(&req, keys, seq).await;
        sent.body = req.body;
        self.last_call = Some(sent);
        let mut answer = answer?;
        if answer.executions.is_some() {
            answer.previous_executions = self.last_executions;
            self.last_executions = answer.executions;
        }
        Ok(answer)
    }

    /// Sends a sealed call, waiting out the relay's own 429s, and reads
    /// its answer.
    async fn exchange_call(
        &self,
        req: &OuterRequest,
        keys: Option<(String, SessionKeys)>,
        seq: u64,
    ) -> Result<Answer, EngineError> {
        let mut attempt = 0;
        loop {
            let deadline = tokio::time::Instant::now() + self.target.limits.response_timeout;
            let mut stream = self.target.send_streaming(req).await?;
            let mut answer = read_call_answer(
                &mut stream,
                keys.as_ref().map(|(sid, k)| (sid.as_str(), k)),
                seq,
                deadline,
                self.target.limits.max_body_bytes,
            )
            .await?;
            answer.relay = self.relay_of(answer.status, &answer.headers, &answer.body);
            if answer.relay.rate_limited() && attempt < RELAY_RETRIES {
                tokio::time::sleep(relay_retry_wait(&answer.headers, attempt)).await;
                attempt += 1;
                continue;
            }
            return Ok(answer);
        }
    }

    /// Sends the latest call's body again, byte for byte (a replay).
    pub async fn resend(&mut self) -> Result<Answer, EngineError> {
        let sent = self.last_call.clone().ok_or(EngineError::NothingToResend)?;
        self.call(sent).await
    }

    /// Sends a call body in `framing` as raw bytes. The answer holds the
    /// status and body only; a closed connection is [`Ending::Closed`],
    /// and an incomplete request the target held past the answer timeout
    /// plus [`Conversation::hold_limit`] is [`Ending::Held`].
    pub async fn framed(
        &mut self,
        body: &[u8],
        relay: bool,
        framing: &Framing,
    ) -> Result<Answer, EngineError> {
        let raw = edit::frame_request(&self.target.endpoint, relay, body, framing);
        let incomplete = framing.leaves_request_incomplete();
        // A request that never ends may fairly be waited on for the
        // promised bytes (LIM-1).
        let response_timeout = if incomplete {
            self.target.limits.response_timeout + self.hold_limit
        } else {
            self.target.limits.response_timeout
        };
        // Only the status line matters; a keep-alive peer would otherwise
        // hold the reply open for the whole idle timeout.
        let limits = transport::Limits {
            idle_timeout: self
                .target
                .limits
                .idle_timeout
                .min(Duration::from_millis(250)),
            response_timeout,
            ..self.target.limits
        };
        let started = tokio::time::Instant::now();
        let bytes = match self.target.send_raw(&raw, &limits).await {
            Ok(bytes) => bytes,
            Err(TransportError::Timeout { .. }) if incomplete => {
                return Ok(Answer {
                    problems: vec![format!(
                        "the target held the incomplete request {:.1}s without answering",
                        started.elapsed().as_secs_f64()
                    )],
                    ending: Ending::Held {
                        secs: started.elapsed().as_secs_f64(),
                    },
                    ..Answer::default()
                })
            }
            Err(e) => return Err(e.into()),
        };
        Ok(match edit::parse_raw_reply(&bytes) {
            Some(r) => {
                let headers: Vec<(String, String)> = r
                    .content_type
                    .map(|c| vec![("content-type".to_string(), c)])
                    .unwrap_or_default();
                Answer {
                    status: r.status,
                    relay: self.relay_of(r.status, &headers, &r.body),
                    headers,
                    body: r.body,
                    ..Answer::default()
                }
            }
            None => Answer {
                problems: vec![if bytes.is_empty() {
                    "the connection closed without an answer".to_string()
                } else {
                    format!("not an HTTP reply: {}", String::from_utf8_lossy(&bytes))
                }],
                ending: if bytes.is_empty() {
                    Ending::Closed
                } else {
                    Ending::Dropped("not an HTTP reply".into())
                },
                ..Answer::default()
            },
        })
    }

    /// Sends a plaintext request as given (buffered answer).
    pub async fn plain(&mut self, req: &OuterRequest) -> Result<Answer, EngineError> {
        let mut attempt = 0;
        loop {
            let resp = self.target.send(req).await?;
            let relay = self.relay_of(resp.status, &resp.headers, &resp.body);
            if relay.rate_limited() && attempt < RELAY_RETRIES {
                tokio::time::sleep(relay_retry_wait(&resp.headers, attempt)).await;
                attempt += 1;
                continue;
            }
            return Ok(Answer {
                status: resp.status,
                relay,
                headers: resp.headers,
                body: resp.body,
                ..Answer::default()
            });
        }
    }

    /// Waits until `name` has expired (a step about expiry); refuses when
    /// that is more than [`Conversation::expiry_wait`] away.
    pub async fn wait_for_expiry(&self, name: &str) -> Result<(), EngineError> {
        let s = self
            .sessions
            .get(name)
            .ok_or_else(|| EngineError::NoSession(name.to_owned()))?;
        let left = (s.server.expires_at - crate::clock::unix_secs() + 1).max(0) as u64;
        if left > self.expiry_wait.as_secs() {
            return Err(EngineError::ExpiryTooFar(left));
        }
        let wait = crate::clock::until_expired(s.server.expires_at);
        tokio::time::sleep(wait + Duration::from_millis(50)).await;
        Ok(())
    }

    /// Refuses a step on `name` when the session is known to have expired
    /// (or expires within `margin` seconds): the step would judge the
    /// harness's own waiting, not the target.
    pub fn check_alive(&self, name: &str, margin: i64) -> Result<(), EngineError> {
        match self.sessions.get(name) {
            Some(s) if s.outlived(crate::clock::unix_secs(), margin) => Err(EngineError::Expired {
                name: name.to_owned(),
                expires_at: s.server.expires_at,
            }),
            _ => Ok(()),
        }
    }

    /// Runs one step of the edit language on session `name` (opened first
    /// with an honest handshake if the conversation does not hold it).
    pub async fn run(&mut self, name: &str, step: &edit::Step) -> Result<Answer, EngineError> {
        match step {
            edit::Step::Handshake { body } => {
                let offer = Offer::raw(
                    self.target.address,
                    random(),
                    random(),
                    body.clone().into_bytes(),
                );
                self.handshake(name, &offer).await
            }
            edit::Step::Hello(hello) => {
                let offer = Offer::edited(self.target.address, random(), random(), |h| {
                    edit::edit_hello(h, &hello.edits)
                });
                self.handshake(name, &offer).await
            }
            edit::Step::Plain {
                method,
                path,
                with_key,
                body,
                headers,
                authorization,
                relay,
            } => {
                let mut req = OuterRequest {
                    method: method.clone(),
                    path: self.target.expand(path),
                    headers: Vec::new(),
                    body: body.clone().into_bytes(),
                };
                match authorization {
                    Some(a) => req.headers.push(("Authorization".into(), a.clone())),
                    None if *with_key => req.headers.push((
                        "Authorization".into(),
                        format!("Bearer {}", self.target.access_key),
                    )),
                    None => {}
                }
                req.headers
                    .extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
                let req = self
                    .target
                    .outer_with(req, relay.unwrap_or(self.target.relay_origin));
                self.plain(&req).await
            }
            edit::Step::Resend => self.resend().await,
            edit::Step::ResendSaved { envelope } => {
                let sent = self
                    .saved
                    .get(envelope)
                    .cloned()
                    .ok_or_else(|| EngineError::NotSaved(envelope.clone()))?;
                self.call(sent).await
            }
            edit::Step::CallAfterExpiry | edit::Step::CallAfterExpiryRelay { .. } => {
                self.ensure_session(name).await?;
                self.wait_for_expiry(name).await?;
                let mut call = edit::CallStep::honest(edit::Inner::honest_run());
                if let edit::Step::CallAfterExpiryRelay { relay } = step {
                    call.relay = Some(*relay);
                }
                self.run_call(name, &call).await
            }
            edit::Step::Call(call) => {
                self.ensure_session(name).await?;
                self.check_alive(name, 0)?;
                self.run_call(name, call).await
            }
            edit::Step::Verify { .. } => Err(EngineError::NotOneRequest("verify")),
            edit::Step::Freshness { .. } => Err(EngineError::NotOneRequest("freshness")),
            edit::Step::Wait(_) => Err(EngineError::NotOneRequest("wait")),
            edit::Step::Flood { .. } => Err(EngineError::NotOneRequest("flood")),
            edit::Step::Blind => Err(EngineError::NotOneRequest("blind")),
        }
    }

    async fn ensure_session(&mut self, name: &str) -> Result<(), EngineError> {
        if self.sessions.contains_key(name) {
            return Ok(());
        }
        let offer = Offer::honest(self.target.address, random(), random());
        let answer = self.handshake(name, &offer).await?;
        if self.sessions.contains_key(name) {
            Ok(())
        } else {
            Err(EngineError::NoSession(format!(
                "{name} (the honest handshake got {})",
                answer.status
            )))
        }
    }

    async fn run_call(&mut self, name: &str, call: &edit::CallStep) -> Result<Answer, EngineError> {
        let target = self.target;
        let plaintext =
            edit::inner_plaintext(&call.inner, &target.access_key, |p| target.expand(p));
        let spec = SealSpec::for_call(name, call);
        let (body, seq) = self.seal(&spec, &plaintext)?;
        let relay = call.relay.unwrap_or(target.relay_origin);
        if !call.framing.is_normal() {
            return self.framed(&body, relay, &call.framing).await;
        }
        let sent = SentCall {
            body,
            relay,
            accept: call.inner.accept().map(str::to_owned),
            session: name.to_owned(),
            seq,
        };
        if let Some(save) = &call.save {
            self.saved.insert(save.clone(), sent.clone());
        }
        self.call(sent).await
    }

    fn relay_of(
        &self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> super::RelayFacts {
        if self.target.via_relay {
            relay_facts(status, headers, body)
        } else {
            super::RelayFacts::default()
        }
    }
}

/// How the reference client has a call read: strictly, frame by frame,
/// under the client hooks it keeps (honest: every check).
pub struct StrictCall<'h> {
    /// The checks kept.
    pub hooks: &'h (dyn ClientResponseHooks + Sync),
    /// An explicit seq (`None`: the session's next).
    pub seq: Option<u64>,
    /// A session the call was first sent on: a buffered answer the call's
    /// own keys refuse is tried with its keys, when the hooks allow it.
    pub earlier: Option<&'h str>,
    /// How long a streamed answer may take from head to end.
    pub stream_time_limit: Duration,
}

impl Conversation<'_> {
    /// Posts `offer` as a client that keeps the hello checks `hooks` keeps
    /// (version, identity, low-order key) and holds the session under
    /// `name` only when they all pass. The relay marker follows the target
    /// (the reference client marks every request it sends as asked), and
    /// a 429 is waited out as the policy says. [`Answer::hello`] says what
    /// the checks made of a 200: [`HelloCheck::Unusable`] for a body that
    /// is no ServerHello, [`HelloCheck::Refused`] with the first check that
    /// failed, or [`HelloCheck::Accepted`].
    pub async fn handshake_with(
        &mut self,
        name: &str,
        offer: Offer,
        hooks: &(dyn HelloCheckHooks + Sync),
    ) -> Result<Answer, EngineError> {
        let resp = post_hello(self.target, offer.body(), self.pacer, self.policy)
            .await?
            .response;
        let mut answer = Answer {
            status: resp.status,
            relay: self.relay_of(resp.status, &resp.headers, &resp.body),
            headers: resp.headers,
            body: resp.body,
            ..Answer::default()
        };
        if answer.status != 200 {
            return Ok(answer);
        }
        let sent = offer.hello().clone();
        let server = match ServerHello::parse(&answer.body) {
            Ok(server) => server,
            Err(e) => {
                answer.hello = Some(HelloCheck::Unusable(e.to_string()));
                return Ok(answer);
            }
        };
        answer.expires_at = Some(server.expires_at);
        answer.hello = Some(match offer.finish_with(&server, hooks) {
            Ok(session) => {
                let keys = session.keys().clone();
                self.sessions
                    .insert(name.to_owned(), Session::new(sent, server, keys));
                HelloCheck::Accepted
            }
            Err(e) => HelloCheck::Refused(e),
        });
        Ok(answer)
    }

    /// Seals `plaintext` honestly on session `name`, at `seq` or the
    /// session's next, straight into the envelope's JSON (the fast path:
    /// no edit, no re-parse). Moves the cursor.
    pub fn seal_honest(
        &mut self,
        name: &str,
        seq: Option<u64>,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, u64), EngineError> {
        let session = self
            .sessions
            .get_mut(name)
            .ok_or_else(|| EngineError::NoSession(name.to_owned()))?;
        let seq = session.take_seq(seq, None);
        let sid = &session.server.sid;
        let aad = request_aad(sid, seq);
        let ct_len = b64_len(plaintext.len() + TAG_LEN);
        let key = &session.keys.c2s;
        let body = CallRequest::json_with_ct(VERSION, sid, seq, ct_len, |out| {
            seal_b64_into(key, seq, aad.as_bytes(), plaintext, out)
        });
        Ok((body.into_bytes(), seq))
    }

    /// Seals `plaintext` honestly on session `name`, posts it and reads the
    /// answer as [`StrictRead`] does under `how`, handing each opened piece
    /// of the inner body to `on_body` as it arrives. The first thing wrong
    /// is the error; a buffered answer with an outer status other than 200
    /// is [`StrictError::Status`], for the caller to read the refusal in.
    pub async fn strict_call(
        &mut self,
        name: &str,
        plaintext: &[u8],
        how: StrictCall<'_>,
        on_body: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<Answer, StrictError> {
        let no_session = |detail: String| StrictError::Protocol {
            during: "sealing the call",
            detail,
        };
        let (body, seq) = self
            .seal_honest(name, how.seq, plaintext)
            .map_err(|e| no_session(e.to_string()))?;
        let session = self
            .sessions
            .get(name)
            .ok_or_else(|| no_session(format!("no session {name:?}")))?;
        let (sid, keys) = (session.server.sid.as_str(), &session.keys);
        let hooks = how.hooks;
        let reader = if hooks.accept_session_key() {
            ResponseReader::trying_every_key(sid, keys, seq)
        } else {
            ResponseReader::new(sid, keys, seq)
        }
        .without_raw();
        let mut spares = Vec::new();
        if hooks.accept_without_fin() {
            spares.push(ResponseReader::new(sid, keys, seq).without_raw());
        }
        if let Some(e) = how
            .earlier
            .filter(|_| hooks.accept_earlier_session())
            .and_then(|e| self.sessions.get(e))
        {
            spares.push(ResponseReader::new(&e.server.sid, &e.keys, seq).without_raw());
        }
        let request = self.target.outer(OuterRequest::post_json(CALL_PATH, body));
        let mut response = self.target.send_streaming(&request).await?;
        StrictRead {
            reader,
            spares,
            hooks,
            max_body: self.target.limits.max_body_bytes,
            response_timeout: self.target.limits.response_timeout,
            stream_time_limit: how.stream_time_limit,
        }
        .read(&mut response, on_body)
        .await
    }
}

/// What the honest client makes of a ServerHello, in its own check order
/// (version, `encPub`, `sid`; then the signature; then the agreement),
/// from the session derived without the identity check and the signer.
fn honest_client_check(
    finished: &Result<ClientSession, HandshakeError>,
    verified: bool,
    signer: &Result<Address, impl std::fmt::Display>,
    pinned: Address,
) -> HelloCheck {
    match finished {
        Err(e @ (HandshakeError::UnsupportedVersion(_) | HandshakeError::Malformed(_))) => {
            HelloCheck::Refused(e.clone())
        }
        _ if !verified => HelloCheck::Refused(HandshakeError::IdentityMismatch(match signer {
            Ok(a) => format!("the ServerHello is signed by {a}, not by the pinned agent {pinned}"),
            Err(e) => e.to_string(),
        })),
        Err(e) => HelloCheck::Refused(e.clone()),
        Ok(_) => HelloCheck::Accepted,
    }
}

fn random<const N: usize>() -> [u8; N] {
    use crate::rng::{RandomSource, SystemRandom};
    let mut b = [0u8; N];
    SystemRandom.fill(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Result<ClientSession, HandshakeError> {
        let keys = SessionKeys {
            c2s: [1; 32],
            s2c: [2; 32],
        };
        Ok(ClientSession::new("sid".into(), keys, 0))
    }

    #[test]
    fn the_honest_client_check_keeps_the_honest_order() {
        let pinned = Address([7; 20]);
        let signer: Result<Address, String> = Ok(Address([8; 20]));
        let check = |finished, verified| honest_client_check(&finished, verified, &signer, pinned);
        // The version is checked before the signature.
        assert_eq!(
            check(Err(HandshakeError::UnsupportedVersion(2)), false),
            HelloCheck::Refused(HandshakeError::UnsupportedVersion(2))
        );
        // The signature before the key agreement.
        assert!(matches!(
            check(Err(HandshakeError::LowOrderKey), false),
            HelloCheck::Refused(HandshakeError::IdentityMismatch(_))
        ));
        assert_eq!(
            check(Err(HandshakeError::LowOrderKey), true),
            HelloCheck::Refused(HandshakeError::LowOrderKey)
        );
        assert!(matches!(
            check(session(), false),
            HelloCheck::Refused(HandshakeError::IdentityMismatch(m)) if m.contains("not by the pinned agent")
        ));
        assert_eq!(check(session(), true), HelloCheck::Accepted);
    }
}
