//! The agent's side of the tunnel, as the Osaurus app plays it
//! (`serve --tunnel`): sign in, answer pings, serve each `request` frame
//! by proxying it to the reference server's own loopback listener (so
//! every `--bug` knob plays through the tunnel), answer as one `response`
//! or as a stream of chunks, honour `cancel`, and reconnect with backoff.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::Message;

use crate::protocol::identity::AgentIdentity;
use crate::protocol::names::RELAY_ORIGIN_HEADER;
use crate::rng::{RandomSource, SystemRandom};

use super::frame::{
    frame_headers, ws_config, Frame, Headers, Payload, MAX_BODY_BYTES, MAX_CHUNK_BYTES,
};
use super::sign::sign_in;
use super::AGENT_ID_HEADER;

/// Most relayed requests served at once; beyond it the host answers 503,
/// as the app does.
pub const MAX_IN_FLIGHT: usize = 64;

/// How long the relay may stay silent (it pings every 30 s and gives up
/// after three unanswered) before the host takes the tunnel for dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(100);

/// How long sign-in may take, each step.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers that belong to one HTTP hop and are not copied across the tunnel.
const HOP_BY_HOP: [&str; 7] = [
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "te",
];

/// What the host is told to do.
#[derive(Clone)]
pub struct HostConfig {
    /// The relay's tunnel URL, `ws://` or `wss://`.
    pub relay: String,
    /// TLS for `wss://` (the command's trust: platform roots, `--ca-cert`,
    /// `--insecure`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The agent's identity, which signs in.
    pub identity: AgentIdentity,
    /// The id stamped in [`AGENT_ID_HEADER`].
    pub agent_id: String,
    /// The reference server's loopback listener, which serves each request.
    pub local: SocketAddr,
    /// Most requests in flight ([`MAX_IN_FLIGHT`]).
    pub max_in_flight: usize,
}

impl std::fmt::Debug for HostConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostConfig")
            .field("relay", &self.relay)
            .field("agent_id", &self.agent_id)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// Where the host stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostState {
    /// Connecting or waiting to reconnect; the last failure, if any.
    Connecting(Option<String>),
    /// Signed in; the agent's public URL as the relay gave it.
    Online(String),
    /// Stopped for good: why (superseded, or a signature the relay refused).
    Stopped(String),
}

/// The reconnect delay: 1 s doubling to 60 s, each with ±20% jitter; back
/// to 1 s after a connection stayed healthy for 60 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Self::FIRST }
    }
}

impl Backoff {
    /// The first delay.
    pub const FIRST: Duration = Duration::from_secs(1);
    /// The longest delay.
    pub const MAX: Duration = Duration::from_secs(60);
    /// How long a connection must stay up to reset the delay.
    pub const HEALTHY: Duration = Duration::from_secs(60);

    /// Back to the first delay.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The delay before the next attempt; `unit` in `[0, 1)` picks the
    /// jitter (0 is -20%, 1 is +20%).
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        base.mul_f64(0.8 + 0.4 * unit.clamp(0.0, 1.0))
    }
}

/// A host running in this process. Dropping it closes the tunnel.
pub struct RunningHost {
    state: watch::Receiver<HostState>,
    task: Option<JoinHandle<()>>,
    backoff_waits: Arc<AtomicU64>,
}

impl RunningHost {
    /// Where the host stands now.
    pub fn state(&self) -> HostState {
        self.state.borrow().clone()
    }

    /// How many times the host has waited out a backoff delay before
    /// reconnecting (a reconnect after `relay_restarting` waits none).
    pub fn backoff_waits(&self) -> u64 {
        self.backoff_waits.load(Ordering::Relaxed)
    }

    /// Waits until the host is signed in (its public URL) or has stopped
    /// for good (why), at most `limit`.
    pub async fn online(&mut self, limit: Duration) -> Result<String, String> {
        let mut state = self.state.clone();
        let wait = state.wait_for(|s| matches!(s, HostState::Online(_) | HostState::Stopped(_)));
        let reached = match tokio::time::timeout(limit, wait).await {
            Ok(Ok(s)) => Some(s.clone()),
            Ok(Err(_)) => return Err("the host stopped".into()),
            Err(_) => None,
        };
        match reached {
            Some(HostState::Online(url)) => Ok(url),
            Some(HostState::Stopped(why)) => Err(why),
            Some(HostState::Connecting(_)) => Err("not signed in".into()),
            None => Err(match &*self.state.borrow() {
                HostState::Connecting(Some(why)) => {
                    format!("not signed in after {limit:?}: {why}")
                }
                _ => format!("not signed in after {limit:?}"),
            }),
        }
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Starts the host: it connects, signs in and serves until dropped,
/// reconnecting as the contract says. Must be called inside a runtime.
pub fn spawn(config: HostConfig) -> RunningHost {
    let (tx, rx) = watch::channel(HostState::Connecting(None));
    let backoff_waits = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(run(config, tx, backoff_waits.clone()));
    RunningHost {
        state: rx,
        task: Some(task),
        backoff_waits,
    }
}

/// How one tunnel session ended.
enum SessionEnd {
    /// The relay is restarting: reconnect at once.
    Restarting,
    /// Another session took the address: do not reconnect.
    Superseded,
    /// The relay refused the signature: retrying blindly would not help.
    SignatureRefused,
    /// Anything else: back off and reconnect.
    Failed(String),
}

async fn run(config: HostConfig, state: watch::Sender<HostState>, waits: Arc<AtomicU64>) {
    let mut backoff = Backoff::default();
    loop {
        let mut online_at = None;
        let end = session(&config, &state, &mut online_at).await;
        if online_at.is_some_and(|t: Instant| t.elapsed() >= Backoff::HEALTHY) {
            backoff.reset();
        }
        let why = match end {
            SessionEnd::Restarting => {
                tracing::info!("the relay is restarting; reconnecting at once");
                let _ = state.send(HostState::Connecting(Some("relay restarting".into())));
                continue;
            }
            SessionEnd::Superseded => {
                let why = "another session took this agent's address (superseded)".to_string();
                tracing::warn!("tunnel stopped: {why}");
                let _ = state.send(HostState::Stopped(why));
                return;
            }
            SessionEnd::SignatureRefused => {
                let why = "the relay refused the sign-in signature".to_string();
                tracing::error!("tunnel stopped: {why}");
                let _ = state.send(HostState::Stopped(why));
                return;
            }
            SessionEnd::Failed(why) => why,
        };
        let unit = (SystemRandom
            .bytes::<4>()
            .iter()
            .fold(0u32, |a, b| a << 8 | *b as u32) as f64)
            / (u32::MAX as f64 + 1.0);
        let wait = backoff.next_delay(unit);
        tracing::warn!("tunnel: {why}; reconnecting in {:.1} s", wait.as_secs_f64());
        let _ = state.send(HostState::Connecting(Some(why)));
        waits.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(wait).await;
    }
}

type Ws = tokio_tungstenite::WebSocketStream<Io>;

/// The stream under the WebSocket: TCP, or TLS over it.
pub(crate) enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl tokio::io::AsyncRead for Io {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Io {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The host, port and TLS of a `ws://` or `wss://` URL.
fn split_ws_url(url: &str) -> Result<(bool, String, u16), String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("ws://") {
        (false, r)
    } else {
        return Err(format!("{url:?} is not a ws:// or wss:// URL"));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse() {
            Ok(port) if !h.is_empty() => (h.to_string(), port),
            _ if authority.starts_with('[') && authority.ends_with(']') => {
                (authority.to_string(), default_port)
            }
            _ => return Err(format!("{url:?}: cannot read host:port")),
        },
        _ => (authority.to_string(), default_port),
    };
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    Ok((
        tls,
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    ))
}

async fn connect(config: &HostConfig) -> Result<Ws, String> {
    let (tls, host, port) = split_ws_url(&config.relay)?;
    let tcp = tokio::time::timeout(SIGN_IN_TIMEOUT, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| format!("connecting to {} timed out", config.relay))?
        .map_err(|e| format!("cannot connect to {}: {e}", config.relay))?;
    let _ = tcp.set_nodelay(true);
    let io = if tls {
        let tls_config = config
            .tls
            .clone()
            .ok_or_else(|| "wss:// needs a TLS configuration".to_string())?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("{host} cannot be a TLS server name: {e}"))?;
        let stream = tokio::time::timeout(
            SIGN_IN_TIMEOUT,
            tokio_rustls::TlsConnector::from(tls_config).connect(name, tcp),
        )
        .await
        .map_err(|_| "the TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake with {host} failed: {e}"))?;
        Io::Tls(Box::new(stream))
    } else {
        Io::Plain(tcp)
    };
    let (ws, _) = tokio::time::timeout(
        SIGN_IN_TIMEOUT,
        tokio_tungstenite::client_async_with_config(config.relay.as_str(), io, Some(ws_config())),
    )
    .await
    .map_err(|_| "the WebSocket upgrade timed out".to_string())?
    .map_err(|e| format!("the WebSocket upgrade failed: {e}"))?;
    Ok(ws)
}

/// The next frame from the relay, skipping WebSocket control messages and
/// frames of unknown types; `Err` when the socket ends or errs.
async fn next_frame<S>(stream: &mut S) -> Result<Frame, String>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = match stream.next().await {
            None => return Err("the relay closed the tunnel".into()),
            Some(Err(e)) => return Err(format!("tunnel read failed: {e}")),
            Some(Ok(m)) => m,
        };
        match msg {
            Message::Text(text) => match Frame::parse(&text) {
                Ok(f) => return Ok(f),
                Err(super::FrameError::UnknownType(t)) => {
                    tracing::debug!("ignoring a tunnel frame of unknown type {t:?}");
                }
                Err(e) => tracing::warn!("ignoring a tunnel frame: {e}"),
            },
            Message::Close(frame) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                return Err(match code {
                    Some(1012) => "relay_restarting".into(),
                    Some(c) => format!("the relay closed the tunnel (code {c})"),
                    None => "the relay closed the tunnel".into(),
                });
            }
            _ => {}
        }
    }
}

async fn session(
    config: &HostConfig,
    state: &watch::Sender<HostState>,
    online_at: &mut Option<Instant>,
) -> SessionEnd {
    let ws = match connect(config).await {
        Ok(ws) => ws,
        Err(e) => return SessionEnd::Failed(e),
    };
    let (mut sink, mut stream) = ws.split();
    let nonce = match tokio::time::timeout(SIGN_IN_TIMEOUT, next_frame(&mut stream)).await {
        Ok(Ok(Frame::Challenge { nonce })) => nonce,
        Ok(Ok(other)) => {
            return SessionEnd::Failed(format!("expected a challenge, got {}", other.kind()))
        }
        Ok(Err(e)) => return SessionEnd::Failed(e),
        Err(_) => return SessionEnd::Failed("no challenge from the relay".into()),
    };
    let timestamp = crate::clock::unix_secs();
    let auth = Frame::Auth {
        agents: vec![sign_in(&config.identity, &nonce, timestamp)],
        nonce,
        timestamp,
    };
    if let Err(e) = sink.send(Message::text(auth.to_text())).await {
        return SessionEnd::Failed(format!("cannot send the sign-in: {e}"));
    }
    let url = match tokio::time::timeout(SIGN_IN_TIMEOUT, next_frame(&mut stream)).await {
        Ok(Ok(Frame::AuthOk { agents, .. })) => {
            agents.into_iter().next().map(|a| a.url).unwrap_or_default()
        }
        Ok(Ok(Frame::AuthError { error })) if error == "signature_verification_failed" => {
            return SessionEnd::SignatureRefused
        }
        Ok(Ok(Frame::AuthError { error })) => {
            return SessionEnd::Failed(format!("sign-in refused: {error}"))
        }
        Ok(Ok(other)) => {
            return SessionEnd::Failed(format!("expected auth_ok, got {}", other.kind()))
        }
        Ok(Err(e)) => return SessionEnd::Failed(e),
        Err(_) => return SessionEnd::Failed("no answer to the sign-in".into()),
    };
    tracing::info!("tunnel signed in; public URL {url}");
    *online_at = Some(Instant::now());
    let _ = state.send(HostState::Online(url));

    // One writer owns the socket; answers wait for room in its queue, so a
    // slow relay slows the streams down rather than filling memory.
    let (tx, mut rx) = mpsc::channel::<Frame>(32);
    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if sink.send(Message::text(f.to_text())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let _writer = AbortOnDrop(writer);
    let permits = Arc::new(Semaphore::new(config.max_in_flight));
    let open: Arc<Mutex<HashMap<String, AbortHandle>>> = Arc::default();
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let frame = match tokio::time::timeout(SILENCE_LIMIT, next_frame(&mut stream)).await {
            Err(_) => {
                return SessionEnd::Failed(format!(
                    "no frame from the relay in {} s",
                    SILENCE_LIMIT.as_secs()
                ))
            }
            Ok(Err(e)) if e == "relay_restarting" => return SessionEnd::Restarting,
            Ok(Err(e)) => return SessionEnd::Failed(e),
            Ok(Ok(f)) => f,
        };
        match frame {
            Frame::Ping { ts } => {
                if tx.send(Frame::Pong { ts }).await.is_err() {
                    return SessionEnd::Failed("the tunnel writer stopped".into());
                }
            }
            Frame::Request {
                id,
                method,
                path,
                payload,
            } => {
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    let busy = json_answer(&id, 503, r#"{"error":"too_many_requests_in_flight"}"#);
                    let _ = tx.send(busy).await;
                    continue;
                };
                let request = Relayed {
                    id: id.clone(),
                    method,
                    path,
                    payload,
                };
                let (tx, open2, local, agent_id) = (
                    tx.clone(),
                    open.clone(),
                    config.local,
                    config.agent_id.clone(),
                );
                // Held while spawning, so the task cannot remove its entry
                // before it is there. A second request with the same id
                // takes the entry over (the relay's ids are unique).
                let mut slot = lock(&open);
                let key = id.clone();
                let handle = tasks.spawn(async move {
                    let _permit = permit;
                    serve(local, &agent_id, request, &tx).await;
                    lock(&open2).remove(&id);
                });
                slot.insert(key, handle);
            }
            Frame::Cancel { id } => {
                if let Some(h) = lock(&open).remove(&id) {
                    h.abort();
                }
            }
            Frame::Error { error } if error == "relay_restarting" => return SessionEnd::Restarting,
            Frame::Error { error } => tracing::warn!("the relay says: {error}"),
            Frame::AgentRemoved { reason, .. } if reason.as_deref() == Some("superseded") => {
                return SessionEnd::Superseded
            }
            Frame::AgentRemoved { .. } => {
                return SessionEnd::Failed("the relay removed the agent".into())
            }
            other => tracing::debug!("ignoring a {} frame", other.kind()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One `request` frame's fields.
struct Relayed {
    id: String,
    method: String,
    path: String,
    payload: Payload,
}

fn json_answer(id: &str, status: u16, body: &str) -> Frame {
    Frame::Response {
        id: id.to_string(),
        status,
        payload: Payload::new(
            Headers::from([("content-type".into(), "application/json".into())]),
            body.as_bytes(),
        ),
    }
}

/// Serves one request through the reference server's loopback listener;
/// a failure to reach it is answered 502 in the tunnel.
async fn serve(local: SocketAddr, agent_id: &str, req: Relayed, tx: &mpsc::Sender<Frame>) {
    let id = req.id.clone();
    if let Err(why) = forward(local, agent_id, req, tx).await {
        tracing::warn!("relayed request {id}: {why}");
        let body = serde_json::json!({ "error": "local_server_unreachable", "detail": why });
        let _ = tx.send(json_answer(&id, 502, &body.to_string())).await;
    }
}

/// Proxies one request as the app does: the caller's headers, then the
/// agent id, then, last, the relay-origin marker, overwriting any the
/// caller sent. An event stream goes back one line per chunk.
async fn forward(
    local: SocketAddr,
    agent_id: &str,
    req: Relayed,
    tx: &mpsc::Sender<Frame>,
) -> Result<(), String> {
    let body = req
        .payload
        .bytes()
        .ok_or("the request body is not valid base64")?;
    let tcp = tokio::time::timeout(SIGN_IN_TIMEOUT, TcpStream::connect(local))
        .await
        .map_err(|_| format!("connecting to {local} timed out"))?
        .map_err(|e| format!("cannot connect to {local}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("HTTP to {local}: {e}"))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let mut builder = hyper::Request::builder()
        .method(req.method.as_str())
        .uri(req.path.as_str());
    for (name, value) in &req.payload.headers {
        let lower = name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str())
            || lower.eq_ignore_ascii_case(AGENT_ID_HEADER)
            || lower.eq_ignore_ascii_case(RELAY_ORIGIN_HEADER)
        {
            continue;
        }
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = builder
        .header("host", local.to_string())
        .header(AGENT_ID_HEADER, agent_id)
        .header(RELAY_ORIGIN_HEADER, "1")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("the relayed request cannot be rebuilt: {e}"))?;
    let resp = sender
        .send_request(request)
        .await
        .map_err(|e| format!("the reference server did not answer: {e}"))?;
    let status = resp.status().as_u16();
    let headers = frame_headers(resp.headers(), |name| HOP_BY_HOP.contains(&name));
    let streamed = headers
        .get("content-type")
        .is_some_and(|c| c.trim_start().starts_with("text/event-stream"));
    let id = req.id;
    let gone = || "the tunnel closed".to_string();
    if !streamed {
        let bytes = Limited::new(resp.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| format!("the answer body: {e}"))?
            .to_bytes();
        let frame = Frame::Response {
            id,
            status,
            payload: Payload::new(headers, &bytes),
        };
        return tx.send(frame).await.map_err(|_| gone());
    }
    tx.send(Frame::StreamStart {
        id: id.clone(),
        status,
        headers,
    })
    .await
    .map_err(|_| gone())?;
    let mut body = resp.into_body();
    let mut pending: Vec<u8> = Vec::new();
    let send = |data: Vec<u8>| {
        let frame = Frame::StreamChunk {
            id: id.clone(),
            data: String::from_utf8_lossy(&data).into_owned(),
        };
        async move { tx.send(frame).await.map_err(|_| gone()) }
    };
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|e| format!("the stream: {e}"))?.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(at) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=at).collect();
            for piece in pieces(line) {
                send(piece).await?;
            }
        }
        while pending.len() >= MAX_CHUNK_BYTES {
            let cut = char_floor(&pending, MAX_CHUNK_BYTES);
            let piece: Vec<u8> = pending.drain(..cut).collect();
            send(piece).await?;
        }
    }
    if !pending.is_empty() {
        for piece in pieces(pending) {
            send(piece).await?;
        }
    }
    tx.send(Frame::StreamEnd { id: id.clone() })
        .await
        .map_err(|_| gone())
}

/// `bytes` in pieces of at most [`MAX_CHUNK_BYTES`], cut between UTF-8
/// characters.
fn pieces(mut bytes: Vec<u8>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while bytes.len() > MAX_CHUNK_BYTES {
        let cut = char_floor(&bytes, MAX_CHUNK_BYTES);
        out.push(bytes.drain(..cut).collect());
    }
    out.push(bytes);
    out
}

/// The largest cut at or below `max` that does not split a UTF-8
/// character (at most three bytes back; never zero).
fn char_floor(bytes: &[u8], max: usize) -> usize {
    let mut cut = max.min(bytes.len());
    for _ in 0..3 {
        if cut > 1 && cut < bytes.len() && bytes[cut] & 0xC0 == 0x80 {
            cut -= 1;
        }
    }
    cut.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_with_jitter_and_resets() {
        let mut b = Backoff::default();
        let mids: Vec<u64> = (0..8).map(|_| b.next_delay(0.5).as_secs()).collect();
        assert_eq!(mids, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        let mut b = Backoff::default();
        assert_eq!(b.next_delay(0.0), Duration::from_millis(800));
        assert_eq!(b.next_delay(1.0), Duration::from_millis(2400));
        b.reset();
        assert_eq!(b.next_delay(0.5), Duration::from_secs(1));
    }

    #[test]
    fn urls_and_chunks_are_read_as_the_contract_says() {
        assert_eq!(
            split_ws_url("wss://agent.osaurus.ai/tunnel/connect").unwrap(),
            (true, "agent.osaurus.ai".into(), 443)
        );
        assert_eq!(
            split_ws_url("ws://127.0.0.1:9000/tunnel/connect").unwrap(),
            (false, "127.0.0.1".into(), 9000)
        );
        assert_eq!(
            split_ws_url("ws://[::1]:9/x").unwrap(),
            (false, "::1".into(), 9)
        );
        assert!(split_ws_url("http://x/").is_err());
        assert!(split_ws_url("ws://:9/").is_err());
        let long = "é".repeat(MAX_CHUNK_BYTES);
        let parts = pieces(long.clone().into_bytes());
        assert!(parts.iter().all(|p| p.len() <= MAX_CHUNK_BYTES));
        assert!(parts.iter().all(|p| std::str::from_utf8(p).is_ok()));
        assert_eq!(parts.concat(), long.into_bytes());
    }
}
