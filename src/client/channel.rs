//! [`Channel`]: handshakes, the session cache and sealed calls over HTTP.

use std::collections::BTreeSet;

use crate::clock::unix_secs as now_secs;
use crate::protocol::encoding::{b64url_decode, B64Strictness};
use crate::protocol::error::{HandshakeError, HandshakeRefusal};
use crate::protocol::handshake::ClientHandshake;
use crate::protocol::identity::Address;
use crate::protocol::session::{ClientSession, ClientSessionError};
use crate::protocol::sse::SseDecoder;
use crate::protocol::wire::{
    CodedErrorBody, Frame, InnerRequest, InnerResponse, PlainErrorBody, ServerHello,
};
use crate::rng::{RandomSource, SystemRandom};
use crate::transport::{self, Limits, OuterRequest, StreamingResponse, Target, TransportError};

use super::response::FrameReader;
use super::{ClientBug, ClientError};

/// A cached session is reused only while it has more than this many seconds
/// left (SES-3, as the upstream clients do).
pub const SESSION_REUSE_MARGIN_SECS: i64 = 60;

/// How long a streamed response may run in total unless set otherwise:
/// streams (model output, say) may legitimately outlast the response
/// timeout, but not forever.
pub const DEFAULT_STREAM_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

/// The header that marks a request as relayed (GATE-3, CALL-10).
const RELAY_HEADER: &str = "X-Osaurus-Relay-Origin";

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
    target: Target,
    pinned: Address,
    limits: Limits,
    session: Option<ClientSession>,
    bugs: BTreeSet<ClientBug>,
    relay_origin: bool,
    rng: Box<dyn RandomSource + Send>,
    handshakes: u64,
    stream_time_limit: std::time::Duration,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("target", &self.target.url())
            .field("pinned", &self.pinned)
            .field("session", &self.session.as_ref().map(ClientSession::sid))
            .field("bugs", &self.bugs)
            .field("relay_origin", &self.relay_origin)
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// A channel to `target` that only accepts the agent `pinned`.
    pub fn new(target: Target, pinned: Address, limits: Limits) -> Self {
        Self {
            target,
            pinned,
            limits,
            session: None,
            bugs: BTreeSet::new(),
            relay_origin: false,
            rng: Box::new(SystemRandom),
            handshakes: 0,
            stream_time_limit: DEFAULT_STREAM_TIME_LIMIT,
        }
    }

    /// Makes the client misbehave on purpose (see [`ClientBug`]).
    pub fn with_bugs(mut self, bugs: impl IntoIterator<Item = ClientBug>) -> Self {
        self.bugs.extend(bugs);
        self
    }

    /// Sends `X-Osaurus-Relay-Origin: 1` on every outer request, so a
    /// loopback server treats the client as remote.
    pub fn with_relay_origin(mut self, relay: bool) -> Self {
        self.relay_origin = relay;
        self
    }

    /// The longest a streamed response may take from head to end
    /// (default [`DEFAULT_STREAM_TIME_LIMIT`]).
    pub fn with_stream_time_limit(mut self, limit: std::time::Duration) -> Self {
        self.stream_time_limit = limit;
        self
    }

    /// Draws ephemeral keys and nonces from `rng` instead of the OS.
    pub fn with_rng(mut self, rng: impl RandomSource + Send + 'static) -> Self {
        self.rng = Box::new(rng);
        self
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The current session, if one is cached.
    pub fn session(&self) -> Option<&ClientSession> {
        self.session.as_ref()
    }

    /// Handshakes performed so far.
    pub fn handshakes(&self) -> u64 {
        self.handshakes
    }

    /// Drops the cached session, so the next call handshakes again.
    pub fn forget_session(&mut self) {
        self.session = None;
    }

    fn has(&self, bug: ClientBug) -> bool {
        self.bugs.contains(&bug)
    }

    fn outer(&self, mut request: OuterRequest) -> OuterRequest {
        if self.relay_origin {
            request.headers.push((RELAY_HEADER.into(), "1".into()));
        }
        request
    }

    /// Performs a fresh handshake, verifies the ServerHello against the
    /// pinned address and caches the new session.
    pub async fn handshake(&mut self) -> Result<&ClientSession, ClientError> {
        let mut secret = [0u8; 32];
        let mut nonce = [0u8; 16];
        self.rng.fill(&mut secret);
        self.rng.fill(&mut nonce);
        let mut hs = ClientHandshake::new(self.pinned, secret, nonce);
        if self.has(ClientBug::IdentityUnchecked) {
            hs = hs.dangerous_skip_identity_check();
        }
        if self.has(ClientBug::LowOrderKeyAccepted) {
            hs = hs.dangerous_accept_low_order();
        }
        let request = self.outer(OuterRequest::post_json(
            "/secure/session",
            hs.hello().to_json(),
        ));
        let response = transport::send(&self.target, &request, &self.limits).await?;
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
                        self.pinned
                    )));
                }
            }
            return Err(refused);
        }
        let hello = ServerHello::parse(&response.body)
            .map_err(|e| ClientError::protocol("reading the ServerHello", e))?;
        let session = hs.finish(&hello).map_err(|e| match e {
            HandshakeError::IdentityMismatch(m) => ClientError::IdentityMismatch(m),
            other => ClientError::protocol("checking the ServerHello", other),
        })?;
        let now = now_secs();
        if session.expires_at() <= now && !self.has(ClientBug::ExpiredSessionUsed) {
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
        match self.call_once(plaintext.as_bytes(), on_body).await {
            Err(e) if e.refusal_code() == Some("secure_session_unknown") => {
                self.session = None;
                self.handshake().await?;
                self.call_once(plaintext.as_bytes(), on_body).await
            }
            Err(e)
                if e.refusal_code() == Some("secure_replay") && self.has(ClientBug::RetryOn409) =>
            {
                self.call_once(plaintext.as_bytes(), on_body).await
            }
            other => other,
        }
    }

    async fn ensure_session(&mut self) -> Result<(), ClientError> {
        let reuse = match &self.session {
            Some(s) => {
                self.has(ClientBug::ExpiredSessionUsed)
                    || s.usable_at(now_secs(), SESSION_REUSE_MARGIN_SECS)
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
        let replay_same_seq = self.has(ClientBug::ReplaySameSeq);
        let expired_ok = self.has(ClientBug::ExpiredSessionUsed);
        let accept_reordered = self.has(ClientBug::ReorderedFramesAccepted);
        let ignore_missing_fin = self.has(ClientBug::MissingFinIgnored);
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
        let (seq, body) = if replay_same_seq {
            (1, session.seal_at(1, plaintext).to_json())
        } else {
            session
                .seal_call_json(plaintext, seal_now)
                .map_err(|e| match e {
                    ClientSessionError::Expired { .. } | ClientSessionError::Exhausted => {
                        ClientError::protocol("sealing the call", e)
                    }
                })?
        };
        let reader = FrameReader::new(session, seq, accept_reordered, ignore_missing_fin);
        let request = self.outer(OuterRequest::post_json("/secure/call", body));
        let response = transport::send_streaming(&self.target, &request, &self.limits).await?;
        let is_stream = response.header("content-type").is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        });
        if is_stream {
            read_stream(
                response,
                reader,
                self.limits.max_body_bytes,
                self.stream_time_limit,
                on_body,
            )
            .await
        } else {
            read_buffered(response, reader, &self.limits, on_body).await
        }
    }
}

async fn read_stream(
    mut response: StreamingResponse,
    mut reader: FrameReader,
    max_event: usize,
    limit: std::time::Duration,
    on_body: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<CallOutcome, ClientError> {
    let deadline = tokio::time::Instant::now() + limit;
    let inner_status = response.status;
    let content_type = response.header("content-type").map(str::to_string);
    let mut decoder = SseDecoder::new(max_event);
    let mut body = Vec::new();
    loop {
        // The idle timeout bounds each wait; this bounds a peer that drips
        // just often enough to never trip it.
        let next = tokio::time::timeout_at(deadline, response.next_chunk()).await;
        let Ok(next) = next else {
            return Err(ClientError::Transport(TransportError::Timeout {
                url: response.url().to_string(),
                during: "reading the event stream (whole-stream time limit)",
                after: limit,
            }));
        };
        let chunk = match next {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            // The body broke off mid-transfer: after fin that is harmless
            // noise; before it, the answer is incomplete.
            Err(TransportError::Protocol { detail, .. }) => {
                if reader.is_finished() {
                    break;
                }
                return Err(ClientError::Truncated {
                    detail: format!(
                        "the stream broke off after {} frame(s) without the final frame ({detail})",
                        reader.frames()
                    ),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let events = decoder.feed(&chunk).map_err(|e| {
            ClientError::protocol(
                "reading the event stream",
                format!("an event exceeds {} bytes", e.limit),
            )
        })?;
        for event in events {
            let frame = Frame::parse(&event)
                .map_err(|e| ClientError::protocol("reading a stream frame", e))?;
            let plaintext = reader.open(&frame)?;
            on_body(&plaintext);
            body.extend_from_slice(&plaintext);
        }
    }
    if !reader.is_finished() && !decoder.leftover().iter().all(u8::is_ascii_whitespace) {
        return Err(ClientError::Truncated {
            detail: format!(
                "the stream ended in the middle of an event, after {} complete frame(s)",
                reader.frames()
            ),
        });
    }
    reader.finish()?;
    Ok(CallOutcome {
        inner_status,
        content_type,
        body,
        streamed: true,
        frames: reader.frames(),
    })
}

async fn read_buffered(
    mut response: StreamingResponse,
    mut reader: FrameReader,
    limits: &Limits,
    on_body: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<CallOutcome, ClientError> {
    let status = response.status;
    let raw = read_all(&mut response, limits).await?;
    if status != 200 {
        return Err(refusal("call", status, &raw));
    }
    let frame =
        Frame::parse(&raw).map_err(|e| ClientError::protocol("reading the response frame", e))?;
    let plaintext = reader.open(&frame)?;
    reader.finish()?;
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
        frames: reader.frames(),
    })
}

async fn read_all(
    response: &mut StreamingResponse,
    limits: &Limits,
) -> Result<Vec<u8>, ClientError> {
    let deadline = tokio::time::Instant::now() + limits.response_timeout;
    let mut raw = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline, response.next_chunk())
            .await
            .map_err(|_| TransportError::Timeout {
                url: response.url().to_string(),
                during: "reading the response body",
                after: limits.response_timeout,
            })??;
        match next {
            Some(chunk) => raw.extend_from_slice(&chunk),
            None => return Ok(raw),
        }
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
