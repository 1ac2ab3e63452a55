//! [`Channel`]: handshakes, the session cache and sealed calls over HTTP,
//! each step run through the one engine ([`Conversation`]).

use crate::clock::unix_secs as now_secs;
use crate::peer::{
    self, Answer, Conversation, EngineError, HandshakePacer, HelloCheck, Offer, RateLimitPolicy,
    Session, StrictCall, StrictError,
};
use crate::protocol::encoding::{b64url_decode, B64Strictness};
use crate::protocol::error::{HandshakeError, HandshakeRefusal};
use crate::protocol::identity::Address;
use crate::protocol::session::ClientSessionError;
use crate::protocol::wire::{CodedErrorBody, Frame, InnerRequest, PlainErrorBody};
use crate::rng::{RandomSource, SystemRandom};
use crate::transport::{Limits, OuterRequest, Target};

use crate::protocol::client_hooks::{ClientCallHooks, HelloCheckHooks};

use super::{ClientBug, ClientError, ClientKnobs};

/// A cached session is reused only while it has more than this many seconds
/// left (SES-3, as the upstream clients do).
pub const SESSION_REUSE_MARGIN_SECS: i64 = 60;

/// How long a streamed response may run in total unless set otherwise:
/// streams (model output, say) may legitimately outlast the response
/// timeout, but not forever.
pub const DEFAULT_STREAM_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

/// What a completed call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutcome {
    /// The inner response status (for streams, the status of the head the
    /// server kept from the inner response).
    pub inner_status: u16,
    /// The inner `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The inner body: decoded for a buffered response, the frame
    /// plaintexts in order for a stream.
    pub body: Vec<u8>,
    /// Whether the response came as an event stream.
    pub streamed: bool,
    /// Frames opened, the final one included.
    pub frames: usize,
}

impl CallOutcome {
    /// Whether the inner status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.inner_status)
    }
}

/// The name the engine holds the channel's session under.
const CURRENT: &str = "current";
/// The name of the session a retried call was first sent on.
const EARLIER: &str = "earlier";

/// A secure channel to one pinned agent. Every step runs through the one
/// engine ([`Conversation`]): the channel keeps only what outlives a step
/// (the target, the pacer, the cached session and the knobs).
pub struct Channel {
    peer: peer::Target,
    /// A channel handshakes only when it needs a session; nothing paces it.
    pacer: HandshakePacer,
    session: Option<Session>,
    /// The session a retried call was first sent on (kept only for the
    /// `earlier-session-accepted` knob).
    earlier: Option<Session>,
    knobs: ClientKnobs,
    rng: Box<dyn RandomSource + Send>,
    handshakes: u64,
    stream_time_limit: std::time::Duration,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("target", &self.peer.endpoint.url())
            .field("pinned", &self.peer.address)
            .field("session", &self.session.as_ref().map(|s| &s.server.sid))
            .field("bugs", self.knobs.set())
            .field("relay_origin", &self.peer.relay_origin)
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// A channel to `target` that only accepts the agent `pinned`.
    pub fn new(target: Target, pinned: Address, limits: Limits) -> Self {
        let mut peer = peer::Target::new(target, pinned);
        peer.limits = limits;
        Self::to(peer)
    }

    /// A channel to `target`, with its pinned address, relay marker and
    /// limits (the key and agent id stay with the caller's requests).
    pub fn to(target: peer::Target) -> Self {
        Self {
            peer: target,
            pacer: HandshakePacer::new(None),
            session: None,
            earlier: None,
            knobs: ClientKnobs::default(),
            rng: Box::new(SystemRandom),
            handshakes: 0,
            stream_time_limit: DEFAULT_STREAM_TIME_LIMIT,
        }
    }

    /// Makes the client misbehave on purpose (see [`ClientBug`]).
    pub fn with_bugs(mut self, bugs: impl IntoIterator<Item = ClientBug>) -> Self {
        self.knobs.extend(bugs);
        self
    }

    /// Sends `X-Osaurus-Relay-Origin: 1` on every outer request, so a
    /// loopback server treats the client as remote.
    pub fn with_relay_origin(mut self, relay: bool) -> Self {
        self.peer.relay_origin = relay;
        self
    }

    /// The longest a streamed response may take from head to end
    /// (default [`DEFAULT_STREAM_TIME_LIMIT`]).
    pub fn with_stream_time_limit(mut self, limit: std::time::Duration) -> Self {
        self.stream_time_limit = limit;
        self
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.peer.endpoint
    }

    /// The current session, if one is cached.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Handshakes performed so far.
    pub fn handshakes(&self) -> u64 {
        self.handshakes
    }

    /// Performs a fresh handshake, verifies the ServerHello against the
    /// pinned address and caches the new session.
    pub async fn handshake(&mut self) -> Result<&Session, ClientError> {
        let offer = Offer::random(self.peer.address, &mut *self.rng);
        let mut conversation = Conversation::new(&self.peer, &self.pacer, RateLimitPolicy::NONE);
        let answer = conversation
            .handshake_with(CURRENT, offer, &self.knobs)
            .await
            .map_err(engine_error)?;
        self.handshakes += 1;
        if answer.status != 200 {
            let refused = refusal("handshake", answer.status, &answer.body);
            // HS-6: the server says it holds no such agent, which to the
            // user means the same as a wrong signature: not the pinned agent.
            if let ClientError::Refused { message, .. } = &refused {
                if HandshakeRefusal::from_response(answer.status, message)
                    == Some(HandshakeRefusal::UnknownAgent)
                {
                    return Err(ClientError::IdentityMismatch(format!(
                        "the server holds no agent with address {}",
                        self.peer.address
                    )));
                }
            }
            return Err(refused);
        }
        match answer.hello {
            Some(HelloCheck::Accepted) => {}
            Some(HelloCheck::Refused(HandshakeError::IdentityMismatch(m))) => {
                return Err(ClientError::IdentityMismatch(m))
            }
            Some(HelloCheck::Refused(other)) => {
                return Err(ClientError::protocol("checking the ServerHello", other))
            }
            Some(HelloCheck::Unusable(e)) => {
                return Err(ClientError::protocol("reading the ServerHello", e))
            }
            None => {
                return Err(ClientError::protocol(
                    "reading the ServerHello",
                    "no ServerHello came back",
                ))
            }
        }
        let session = conversation.take_session(CURRENT).ok_or_else(|| {
            ClientError::protocol("checking the ServerHello", "no session was derived")
        })?;
        let now = now_secs();
        // SES-5: never seal on a hello that arrived already expired.
        if session.expires_at() <= now && self.knobs.refuse_expired() {
            return Err(ClientError::protocol(
                "checking the ServerHello",
                format!(
                    "the server announced a session that expired {} s ago",
                    now.saturating_sub(session.expires_at())
                ),
            ));
        }
        Ok(self.session.insert(session))
    }

    /// Makes one call and buffers the whole inner response.
    pub async fn call(&mut self, inner: InnerRequest) -> Result<CallOutcome, ClientError> {
        self.call_with(inner, &mut |_| {}).await
    }

    /// Makes one call, handing each piece of the inner body to `on_body` as
    /// soon as its frame opens (for a stream, every frame; for a buffered
    /// response, the whole body once).
    ///
    /// Handshakes first if no session is cached or the cached one has less
    /// than [`SESSION_REUSE_MARGIN_SECS`] left; handshakes again and retries
    /// once on `401 secure_session_unknown`; never retries a `409`.
    pub async fn call_with(
        &mut self,
        inner: InnerRequest,
        on_body: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<CallOutcome, ClientError> {
        let plaintext = inner.to_json();
        self.ensure_session().await?;
        self.earlier = None;
        match self.call_once(plaintext.as_bytes(), on_body).await {
            Err(e)
                if e.refusal_code() == Some("secure_session_unknown")
                    && self.knobs.retry_unknown_session() =>
            {
                self.earlier = self.session.take();
                self.handshake().await?;
                self.call_once(plaintext.as_bytes(), on_body).await
            }
            Err(e) if e.refusal_code() == Some("secure_replay") && self.knobs.retry_replay() => {
                self.call_once(plaintext.as_bytes(), on_body).await
            }
            Err(ClientError::Refused { status: 426, .. }) if self.knobs.plaintext_after_426() => {
                self.plaintext_call(&inner, on_body).await
            }
            other => other,
        }
    }

    /// The `plaintext-fallback` knob: the inner request sent as it is,
    /// outside the channel, and its answer taken.
    async fn plaintext_call(
        &mut self,
        inner: &InnerRequest,
        on_body: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<CallOutcome, ClientError> {
        let mut request = match &inner.body {
            Some(b) => OuterRequest::post_json(
                inner.path.clone(),
                b64url_decode(b, B64Strictness::Upstream).unwrap_or_default(),
            ),
            None => OuterRequest::get(inner.path.clone()),
        };
        request.method = inner.method.clone();
        if let Some(auth) = &inner.authorization {
            request = request.with_header("authorization", auth.clone());
        }
        let request = self.peer.outer(request);
        let mut conversation = Conversation::new(&self.peer, &self.pacer, RateLimitPolicy::NONE);
        let answer = conversation.plain(&request).await.map_err(engine_error)?;
        on_body(&answer.body);
        Ok(CallOutcome {
            inner_status: answer.status,
            content_type: answer.header("content-type").map(str::to_string),
            body: answer.body,
            streamed: false,
            frames: 0,
        })
    }

    async fn ensure_session(&mut self) -> Result<(), ClientError> {
        let reuse = match &self.session {
            Some(s) => {
                !self.knobs.refuse_expired()
                    || now_secs().saturating_add(SESSION_REUSE_MARGIN_SECS) < s.expires_at()
            }
            None => false,
        };
        if !reuse {
            self.handshake().await?;
        }
        Ok(())
    }

    /// One sealed call on the cached session, through the engine.
    async fn call_once(
        &mut self,
        plaintext: &[u8],
        on_body: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<CallOutcome, ClientError> {
        let fixed_seq = self.knobs.fixed_seq();
        let session = self
            .session
            .take()
            .ok_or_else(|| ClientError::protocol("sealing the call", "no session"))?;
        if fixed_seq.is_none() {
            if let Err(e) = self.sealable(&session) {
                self.session = Some(session);
                return Err(ClientError::protocol("sealing the call", e));
            }
        }
        let mut conversation = Conversation::new(&self.peer, &self.pacer, RateLimitPolicy::NONE);
        conversation.insert_session(CURRENT, session);
        if let Some(earlier) = self.earlier.take() {
            conversation.insert_session(EARLIER, earlier);
        }
        let how = StrictCall {
            hooks: &self.knobs,
            seq: fixed_seq,
            earlier: Some(EARLIER),
            stream_time_limit: self.stream_time_limit,
        };
        let read = conversation
            .strict_call(CURRENT, plaintext, how, on_body)
            .await;
        self.session = conversation.take_session(CURRENT);
        self.earlier = conversation.take_session(EARLIER);
        match read {
            Ok(answer) => Ok(outcome(answer)),
            Err(StrictError::Status { status, body }) => Err(refusal("call", status, &body)),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `session` may seal its next call now: an honest client
    /// refuses a session past its expiry (SES-5; the expired-session knob
    /// skips the check) and a session whose seqs ran out.
    fn sealable(&self, session: &Session) -> Result<(), ClientSessionError> {
        let now = now_secs();
        if self.knobs.refuse_expired() && now >= session.expires_at() {
            return Err(ClientSessionError::Expired {
                expires_at: session.expires_at(),
                now,
            });
        }
        if session.cursor.next == u64::MAX {
            return Err(ClientSessionError::Exhausted);
        }
        Ok(())
    }
}

/// An engine failure as the client reports it: the transport's own, or a
/// step the engine could not take.
fn engine_error(e: EngineError) -> ClientError {
    match e {
        EngineError::Transport(e) => ClientError::Transport(e),
        other => ClientError::protocol("running the step", other),
    }
}

/// The outcome of a call the strict reading took.
fn outcome(a: Answer) -> CallOutcome {
    CallOutcome {
        inner_status: a.inner_status.unwrap_or(a.status),
        content_type: a.inner_content_type,
        body: a.inner_body,
        streamed: a.streamed,
        frames: a.frames,
    }
}

/// A non-200 answer, told in the server's own words where it gave any.
fn refusal(stage: &'static str, status: u16, body: &[u8]) -> ClientError {
    if let Ok(coded) = CodedErrorBody::parse(body) {
        if coded.code.is_some() || coded.message.is_some() {
            return ClientError::Refused {
                stage,
                status,
                message: coded
                    .message
                    .clone()
                    .or(coded.code.clone())
                    .unwrap_or_default(),
                code: coded.code,
            };
        }
    }
    if let Ok(plain) = PlainErrorBody::parse(body) {
        return ClientError::Refused {
            stage,
            status,
            code: None,
            message: plain.error,
        };
    }
    if stage == "call" && Frame::parse(body).is_ok() {
        return ClientError::protocol(
            "reading the response",
            format!("a sealed frame came back with outer status {status}; the real status must travel only inside the channel"),
        );
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    ClientError::Refused {
        stage,
        status,
        code: None,
        message: if text.is_empty() {
            "(empty body)".into()
        } else {
            text
        },
    }
}
