//! [`Channel`]: handshakes, the session cache and sealed calls over HTTP.

use std::ops::ControlFlow;

use crate::clock::unix_secs as now_secs;
use crate::peer::{
    self, read_body, Answer, HandshakePacer, Offer, RateLimitPolicy, ResponseReader, StrictError,
    StrictRead,
};
use crate::protocol::encoding::{b64url_decode, B64Strictness};
use crate::protocol::error::{HandshakeError, HandshakeRefusal};
use crate::protocol::identity::Address;
use crate::protocol::session::{ClientSession, ClientSessionError};
use crate::protocol::wire::{CodedErrorBody, Frame, InnerRequest, PlainErrorBody, ServerHello};
use crate::rng::{RandomSource, SystemRandom};
use crate::transport::{Limits, OuterRequest, Target};

use crate::protocol::client_hooks::{ClientCallHooks, ClientResponseHooks, HelloCheckHooks};

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

/// A secure channel to one pinned agent.
pub struct Channel {
    peer: peer::Target,
    /// A channel handshakes only when it needs a session; nothing paces it.
    pacer: HandshakePacer,
    session: Option<ClientSession>,
    /// The session a retried call was first sent on (kept only for the
    /// `earlier-session-accepted` knob).
    earlier: Option<ClientSession>,
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
            .field("session", &self.session.as_ref().map(ClientSession::sid))
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
    pub fn session(&self) -> Option<&ClientSession> {
        self.session.as_ref()
    }

    /// Handshakes performed so far.
    pub fn handshakes(&self) -> u64 {
        self.handshakes
    }

    /// Performs a fresh handshake, verifies the ServerHello against the
    /// pinned address and caches the new session.
    pub async fn handshake(&mut self) -> Result<&ClientSession, ClientError> {
        let offer = Offer::random(self.peer.address, &mut *self.rng);
        let response =
            peer::post_hello(&self.peer, offer.body(), &self.pacer, RateLimitPolicy::NONE)
                .await?
                .response;
        self.handshakes += 1;
        if response.status != 200 {
            let refused = refusal("handshake", response.status, &response.body);
            // HS-6: the server says it holds no such agent, which to the
            // user means the same as a wrong signature: not the pinned agent.
            if let ClientError::Refused { message, .. } = &refused {
                if HandshakeRefusal::from_response(response.status, message)
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
        let hello = ServerHello::parse(&response.body)
            .map_err(|e| ClientError::protocol("reading the ServerHello", e))?;
        let session = offer
            .finish_with(&hello, &self.knobs)
            .map_err(|e| match e {
                HandshakeError::IdentityMismatch(m) => ClientError::IdentityMismatch(m),
                other => ClientError::protocol("checking the ServerHello", other),
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
        let mut response = self.peer.send_streaming(&request).await?;
        let status = response.status;
        let content_type = response.header("content-type").map(str::to_string);
        let deadline = tokio::time::Instant::now() + self.peer.limits.response_timeout;
        let read = read_body(
            &mut response,
            deadline,
            self.peer.limits.max_body_bytes,
            false,
            |_| ControlFlow::Continue(()),
        )
        .await?;
        on_body(&read.body);
        Ok(CallOutcome {
            inner_status: status,
            content_type,
            body: read.body,
            streamed: false,
            frames: 0,
        })
    }

    async fn ensure_session(&mut self) -> Result<(), ClientError> {
        let reuse = match &self.session {
            Some(s) => {
                !self.knobs.refuse_expired() || s.usable_at(now_secs(), SESSION_REUSE_MARGIN_SECS)
            }
            None => false,
        };
        if !reuse {
            self.handshake().await?;
        }
        Ok(())
    }

    async fn call_once(
        &mut self,
        plaintext: &[u8],
        on_body: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<CallOutcome, ClientError> {
        let fixed_seq = self.knobs.fixed_seq();
        let expired_ok = !self.knobs.refuse_expired();
        let knobs = self.knobs.clone();
        let session = self
            .session
            .as_mut()
            .ok_or_else(|| ClientError::protocol("sealing the call", "no session"))?;
        let now = now_secs();
        // The expired-session knob lies to the sealer about the time: the
        // one place an honest client refuses a stale session.
        let seal_now = if expired_ok {
            now.min(session.expires_at().saturating_sub(1))
        } else {
            now
        };
        let (seq, body) = if let Some(seq) = fixed_seq {
            (seq, session.seal_at(seq, plaintext).to_json())
        } else {
            session
                .seal_call_json(plaintext, seal_now)
                .map_err(|e| match e {
                    ClientSessionError::Expired { .. } | ClientSessionError::Exhausted => {
                        ClientError::protocol("sealing the call", e)
                    }
                })?
        };
        let reader = if knobs.accept_session_key() {
            ResponseReader::trying_every_key(session.sid(), session.keys(), seq)
        } else {
            ResponseReader::new(session.sid(), session.keys(), seq)
        }
        .without_raw();
        let mut spares = Vec::new();
        if knobs.accept_without_fin() {
            spares.push(ResponseReader::new(session.sid(), session.keys(), seq).without_raw());
        }
        if let Some(e) = self
            .earlier
            .as_ref()
            .filter(|_| knobs.accept_earlier_session())
        {
            spares.push(ResponseReader::new(e.sid(), e.keys(), seq).without_raw());
        }
        let request = self
            .peer
            .outer(OuterRequest::post_json("/secure/call", body));
        let mut response = self.peer.send_streaming(&request).await?;
        let how = StrictRead {
            reader,
            spares,
            hooks: &knobs,
            max_body: self.peer.limits.max_body_bytes,
            response_timeout: self.peer.limits.response_timeout,
            stream_time_limit: self.stream_time_limit,
        };
        Ok(outcome(how.read(&mut response, on_body).await?))
    }
}

impl From<StrictError> for ClientError {
    fn from(e: StrictError) -> Self {
        match e {
            StrictError::Transport(e) => ClientError::Transport(e),
            StrictError::Truncated { detail } => ClientError::Truncated { detail },
            StrictError::Protocol { during, detail } => ClientError::Protocol { during, detail },
            StrictError::Status { status, body } => refusal("call", status, &body),
        }
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
