//! [`Channel`]: handshakes, the session cache and sealed calls over HTTP.

use std::ops::ControlFlow;

use crate::clock::unix_secs as now_secs;
use crate::peer::{
    self, is_event_stream, read_body, BodyEnd, FrameIssue, HandshakePacer, Offer, RateLimitPolicy,
    ResponseReader,
};
use crate::protocol::encoding::{b64url_decode, B64Strictness};
use crate::protocol::error::{FrameError, HandshakeError, HandshakeRefusal};
use crate::protocol::identity::Address;
use crate::protocol::session::{ClientSession, ClientSessionError};
use crate::protocol::wire::{
    CodedErrorBody, Frame, InnerRequest, InnerResponse, PlainErrorBody, ServerHello,
};
use crate::rng::{RandomSource, SystemRandom};
use crate::transport::{Limits, OuterRequest, StreamingResponse, Target, TransportError};

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
        if is_event_stream(response.header("content-type")) {
            read_stream(
                &mut response,
                reader,
                &knobs,
                self.peer.limits.max_body_bytes,
                self.stream_time_limit,
                on_body,
            )
            .await
        } else {
            let readers = (reader, spares);
            read_buffered(&mut response, readers, &knobs, &self.peer.limits, on_body).await
        }
    }
}

/// Opens one frame through the shared reader and applies the client's
/// strictness: any issue is an error, except a reordered frame that opened
/// when the reorder knob is on.
fn open_frame(
    reader: &mut ResponseReader,
    knobs: &(dyn ClientResponseHooks + Sync),
    stage: &'static str,
    bytes: &[u8],
) -> Result<Vec<u8>, ClientError> {
    let pushed = reader.push(bytes);
    let plaintext = pushed.plaintext.map(<[u8]>::to_vec);
    match (pushed.issue, plaintext) {
        (None, Some(p)) => Ok(p),
        (Some(FrameIssue::OutOfOrder { .. }), Some(p)) if knobs.accept_out_of_order() => Ok(p),
        (Some(FrameIssue::OutOfOrder { got, .. }), None) if knobs.accept_out_of_order() => Err(
            ClientError::protocol("opening a response frame", FrameError::Decrypt(got)),
        ),
        (Some(FrameIssue::Malformed(e)), _) => Err(ClientError::protocol(stage, e)),
        (Some(issue), _) => Err(ClientError::protocol("opening the response", issue)),
        (None, None) => Err(ClientError::protocol(
            "opening the response",
            "the frame did not open",
        )),
    }
}

/// The end-of-response check (RESP-5): an authenticated fin, unless the
/// missing-fin knob is on.
fn check_fin(
    reader: &ResponseReader,
    knobs: &(dyn ClientResponseHooks + Sync),
) -> Result<(), ClientError> {
    if reader.opened().iter().any(|f| f.fin) || knobs.accept_without_fin() {
        return Ok(());
    }
    Err(ClientError::Truncated {
        detail: format!(
            "{} frame(s) arrived but none was the authenticated final frame",
            reader.opened().len()
        ),
    })
}

async fn read_stream(
    response: &mut StreamingResponse,
    mut reader: ResponseReader,
    knobs: &(dyn ClientResponseHooks + Sync),
    max_event: usize,
    limit: std::time::Duration,
    on_body: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<CallOutcome, ClientError> {
    let deadline = tokio::time::Instant::now() + limit;
    let inner_status = response.status;
    let content_type = response.header("content-type").map(str::to_string);
    let mut body = Vec::new();
    let mut failed = None;
    let read = read_body(
        response,
        deadline,
        max_event,
        false,
        |event| match open_frame(&mut reader, knobs, "reading a stream frame", event) {
            Ok(plaintext) => {
                on_body(&plaintext);
                body.extend_from_slice(&plaintext);
                let at_fin = reader.opened().last().is_some_and(|f| f.fin);
                if at_fin && knobs.stop_at_first_fin() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        },
    )
    .await?;
    if let Some(e) = failed {
        return Err(e);
    }
    let fin = reader.opened().iter().any(|f| f.fin);
    match read.end {
        BodyEnd::Complete | BodyEnd::Stopped => {}
        // The idle timeout bounds each wait; this bounds a peer that drips
        // just often enough to never trip it.
        BodyEnd::TimedOut => {
            return Err(ClientError::Transport(TransportError::Timeout {
                url: response.url().to_string(),
                during: "reading the event stream (whole-stream time limit)",
                after: limit,
            }))
        }
        // The body broke off mid-transfer: after fin that is harmless
        // noise; before it, the answer is incomplete.
        BodyEnd::Broke(TransportError::Protocol { detail, .. }) => {
            if !fin {
                return Err(ClientError::Truncated {
                    detail: format!(
                        "the stream broke off after {} frame(s) without the final frame ({detail})",
                        reader.opened().len()
                    ),
                });
            }
        }
        BodyEnd::Broke(e) => return Err(e.into()),
        BodyEnd::EventTooLarge(e) => {
            return Err(ClientError::protocol(
                "reading the event stream",
                format!("an event exceeds {} bytes", e.limit),
            ))
        }
    }
    if !fin && read.mid_event && !knobs.accept_without_fin() {
        return Err(ClientError::Truncated {
            detail: format!(
                "the stream ended in the middle of an event, after {} complete frame(s)",
                reader.opened().len()
            ),
        });
    }
    check_fin(&reader, knobs)?;
    Ok(CallOutcome {
        inner_status,
        content_type,
        body,
        streamed: true,
        frames: reader.opened().len(),
    })
}

async fn read_buffered(
    response: &mut StreamingResponse,
    (mut reader, spares): (ResponseReader, Vec<ResponseReader>),
    knobs: &(dyn ClientResponseHooks + Sync),
    limits: &Limits,
    on_body: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<CallOutcome, ClientError> {
    let status = response.status;
    let deadline = tokio::time::Instant::now() + limits.response_timeout;
    let read = read_body(response, deadline, limits.max_body_bytes, false, |_| {
        ControlFlow::Continue(())
    })
    .await?;
    if let BodyEnd::TimedOut = read.end {
        return Err(ClientError::Transport(TransportError::Timeout {
            url: response.url().to_string(),
            during: "reading the response body",
            after: limits.response_timeout,
        }));
    }
    let raw = read.body;
    if status != 200 {
        return Err(refusal("call", status, &raw));
    }
    let plaintext = match open_frame(&mut reader, knobs, "reading the response frame", &raw) {
        Ok(p) => {
            check_fin(&reader, knobs)?;
            p
        }
        Err(e) => match bent_buffered(&raw, spares, knobs) {
            Some((p, r)) => {
                reader = r.unwrap_or(reader);
                p
            }
            None => return Err(e),
        },
    };
    let inner = InnerResponse::parse(&plaintext)
        .map_err(|e| ClientError::protocol("reading the inner response", e))?;
    let inner_status = u16::try_from(inner.status)
        .ok()
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| {
            ClientError::protocol(
                "reading the inner response",
                format!("status {} is not an HTTP status", inner.status),
            )
        })?;
    let body = match &inner.body {
        Some(b) => b64url_decode(b, B64Strictness::Upstream)
            .map_err(|e| ClientError::protocol("decoding the inner body", e))?,
        None => Vec::new(),
    };
    on_body(&body);
    Ok(CallOutcome {
        inner_status,
        content_type: inner.content_type,
        body,
        streamed: false,
        frames: reader.opened().len(),
    })
}

/// What the reading knobs make of a buffered answer the honest reader
/// refused: the plaintext, and the reader that opened it (`None` when
/// nothing was opened at all). `spares` are fresh readers: this call's
/// (for a frame opened as final whatever its fin flag says) and the
/// earlier session's.
fn bent_buffered(
    raw: &[u8],
    spares: Vec<ResponseReader>,
    knobs: &(dyn ClientResponseHooks + Sync),
) -> Option<(Vec<u8>, Option<ResponseReader>)> {
    if knobs.accept_plaintext_response()
        && Frame::parse(raw).is_err()
        && InnerResponse::parse(raw).is_ok()
    {
        return Some((raw.to_vec(), None));
    }
    let as_final = Frame::parse(raw).ok().map(|mut f| {
        f.fin = Some(true);
        f.to_json().into_bytes()
    });
    for mut r in spares {
        for bytes in [Some(raw.to_vec()), as_final.clone()].into_iter().flatten() {
            if bytes != raw && !knobs.accept_without_fin() {
                continue;
            }
            let mut tried = r;
            if let Ok(p) = open_frame(&mut tried, knobs, "reading the response frame", &bytes) {
                return Some((p, Some(tried)));
            }
            r = tried;
        }
    }
    None
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
