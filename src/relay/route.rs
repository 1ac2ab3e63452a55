//! The caller's side of the relay: its own routes (`/health`, `/stats`,
//! `/presence`, `/tunnel/connect`), routing by `Host` subdomain, `OPTIONS`
//! and CORS, header stripping and injection, the body cap, the rate
//! limits, the first-byte and idle timeouts, the slow-reader cutoff, its
//! own error bodies — and, when asked, the attacks of [`RelayAttack`].
//! `CONNECT` is accepted too, so a client on a machine where
//! `*.<domain>` does not resolve can reach an agent by name through
//! `--proxy` (see docs/RELAY.md).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::knobs::SwapFirstTwo;
use crate::protocol::error::{channel_error_body, ChannelErrorCode, HandshakeRefusal};
use crate::protocol::names::{CALL_PATH, SESSION_PATH};
use crate::transport::OutBody;
use crate::tunnel::frame::{frame_headers, Headers, Payload, MAX_BODY_BYTES};
use crate::tunnel::{Frame, AGENT_ADDRESS_HEADER, TUNNEL_PATH};

use super::{lock, RelayAttack, State, Tunnel, MAX_CONNECTIONS};

/// Request headers the relay never carries to the host.
const STRIPPED: [&str; 10] = [
    "host",
    "cookie",
    "proxy-authorization",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
    "x-forwarded-for",
    AGENT_ADDRESS_HEADER,
    "content-length",
];

/// Headers of one hop, dropped both ways.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "te",
    "proxy-connection",
];

/// Most headers a host's answer may have.
const MAX_ANSWER_HEADERS: usize = 128;
/// Longest header value in a host's answer.
const MAX_HEADER_VALUE: usize = 16 * 1024;
/// Chunks the relay queues for a caller before it waits on the reader.
const CALLER_QUEUE: usize = 64;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Accepts connections until `stop` changes.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((tcp, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            serve_conn(state, Box::new(tcp), peer).await;
            drop(permit);
        });
    }
}

/// One connection (or one `CONNECT` tunnel inside one).
fn serve_conn(
    state: Arc<State>,
    io: Box<dyn Io>,
    peer: SocketAddr,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let service = service_fn(move |req: Request<Incoming>| {
            let state = state.clone();
            let switching =
                req.method() == Method::CONNECT || req.headers().contains_key("upgrade");
            async move {
                let mut resp = handle(state, peer, req).await;
                // One request per connection, as the reference server and
                // `mitm` do: raw clients (the fuzzer's framing edits) read
                // to the close. Not for an upgrade, which keeps the socket.
                if !switching {
                    resp.headers_mut().insert(
                        hyper::header::CONNECTION,
                        hyper::header::HeaderValue::from_static("close"),
                    );
                }
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let _ = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .max_buf_size(1024 * 1024)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades()
            .await;
    })
}

/// The JSON `{"error":code}` the relay answers with itself, with its
/// `x-relay-*` headers.
pub(crate) fn own_error(state: &State, status: u16, code: &str) -> Response<OutBody> {
    state.own_answer(code);
    let body = serde_json::json!({ "error": code }).to_string();
    own(state, status, "application/json", body)
}

fn own(state: &State, status: u16, content_type: &str, body: String) -> Response<OutBody> {
    relay_headers(
        state,
        Response::builder()
            .status(status)
            .header("content-type", content_type),
    )
    .header("access-control-allow-origin", "*")
    .body(OutBody::full(body))
    .unwrap_or_else(|_| Response::new(OutBody::full("")))
}

fn relay_headers(
    state: &State,
    b: hyper::http::response::Builder,
) -> hyper::http::response::Builder {
    b.header("x-relay-region", state.config.region.as_str())
        .header("x-relay-machine", state.config.machine.as_str())
}

/// The agent a `Host` names: `0x<40 hex>.<domain>`, any port; lower case.
pub(crate) fn agent_from_host(host: &str, domain: &str) -> Option<String> {
    let host = host.trim().to_ascii_lowercase();
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n.to_string(),
        _ => host,
    };
    let label = name.strip_suffix(&format!(".{domain}"))?;
    let hex = label.strip_prefix("0x")?;
    (hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| label.to_string())
}

/// `path?query` with `.` and `..` segments resolved, as the relay's URL
/// parser does.
pub(crate) fn normalize(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing = i == last,
            ".." => {
                out.pop();
                trailing = i == last;
            }
            s => {
                out.push(s);
                trailing = false;
            }
        }
    }
    let mut p = format!("/{}", out.join("/"));
    if trailing && !p.ends_with('/') {
        p.push('/');
    }
    match query {
        Some(q) => format!("{p}?{q}"),
        None => p,
    }
}

async fn handle(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Response<OutBody> {
    if req.method() == Method::CONNECT {
        let state2 = state.clone();
        tokio::spawn(async move {
            if let Ok(up) = hyper::upgrade::on(req).await {
                serve_conn(state2, Box::new(TokioIo::new(up)), peer).await;
            }
        });
        return Response::new(OutBody::Full(None));
    }
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/health" => {
            let body = serde_json::json!({"status": "ok", "agents": state.agents_count()});
            return own(&state, 200, "application/json", body.to_string());
        }
        "/stats" => {
            let o = state.observe(|o| o.clone());
            let body = serde_json::json!({"agents": state.agents_count(), "requests": o.requests, "tunnels": o.tunnels});
            return own(&state, 200, "application/json", body.to_string());
        }
        "/presence" => {
            let body = serde_json::json!({"agents": state.agents_count()});
            return own(&state, 200, "application/json", body.to_string());
        }
        TUNNEL_PATH => return super::tunnel::upgrade(state, req),
        _ => {}
    }
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let Some(address) = agent_from_host(&host, &state.config.base_domain) else {
        return own_error(&state, 400, "invalid_subdomain");
    };
    if req.method() == Method::OPTIONS {
        return relay_headers(&state, Response::builder().status(204))
            .header("access-control-allow-origin", "*")
            .header(
                "access-control-allow-methods",
                "GET, POST, PUT, PATCH, DELETE, OPTIONS",
            )
            .header("access-control-allow-headers", "*")
            .header("access-control-max-age", "86400")
            .body(OutBody::Full(None))
            .unwrap_or_else(|_| Response::new(OutBody::Full(None)));
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let caller = header("fly-client-ip")
        .map(str::to_owned)
        .or_else(|| {
            header("x-forwarded-for")
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| peer.ip().to_string());
    if !state.allow(&address, &caller) {
        return own_error(&state, 429, "rate_limited");
    }
    let crossed = if state.has(RelayAttack::CrossAgents) {
        state.other_tunnel(&address)
    } else {
        None
    };
    if crossed.is_some() {
        state.observe(|o| o.crossed += 1);
    }
    let Some(tunnel) = crossed.or_else(|| state.tunnel_for(&address)) else {
        return own_error(&state, 502, "agent_offline");
    };
    let method = req.method().as_str().to_string();
    let target = normalize(req.uri().path_and_query().map_or("/", |p| p.as_str()));
    let mut headers = frame_headers(req.headers(), |name| {
        STRIPPED.contains(&name)
            || HOP_BY_HOP.contains(&name)
            || name.starts_with("fly-")
            || name.starts_with("cf-")
            || name.starts_with("x-relay-")
    });
    headers.insert(AGENT_ADDRESS_HEADER.into(), address.clone());
    headers.insert("x-forwarded-for".into(), caller);
    let body = match tokio::time::timeout(
        state.config.first_byte_timeout,
        Limited::new(req.into_body(), MAX_BODY_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => return own_error(&state, 413, "body_too_large"),
        Err(_) => return own_error(&state, 504, "gateway_timeout"),
    };
    let route = target.split('?').next().unwrap_or("").to_string();
    if let Some(forged) = forge(&state, &method, &route) {
        return forged;
    }
    let id = state.next_id();
    let frame = Frame::Request {
        id: id.clone(),
        method: method.clone(),
        path: target,
        // Read as text, invalid UTF-8 replaced, as the relay does.
        payload: Payload {
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            body_encoding: None,
        },
    };
    state.observe(|o| {
        o.requests += 1;
        if method == "POST" && route == SESSION_PATH {
            o.handshakes += 1;
        }
        if method == "POST" && route == CALL_PATH {
            o.calls += 1;
        }
    });
    let replay = (state.has(RelayAttack::ReplayRequest) && method == "POST" && route == CALL_PATH)
        .then(|| frame.clone());
    let started = Instant::now();
    let answer = exchange(&state, &tunnel, frame, id).await;
    if let (Some(frame), Ok(_)) = (replay, &answer) {
        let (state, tunnel) = (state.clone(), tunnel.clone());
        tokio::spawn(async move { replay_request(&state, &tunnel, frame).await });
    }
    match answer {
        Ok(first) => answer_caller(&state, &tunnel, first, started),
        Err(r) => r,
    }
}

/// An answer made in the agent's place (`answer-401/409/429`), once.
fn forge(state: &State, method: &str, route: &str) -> Option<Response<OutBody>> {
    let (status, body) = if method != "POST" {
        return None;
    } else if route == CALL_PATH && state.has(RelayAttack::Answer401) {
        let code = ChannelErrorCode::SessionUnknown;
        (
            code.status(),
            channel_error_body(code, "Unknown or expired secure session"),
        )
    } else if route == CALL_PATH && state.has(RelayAttack::Answer409) {
        let code = ChannelErrorCode::Replay;
        (
            code.status(),
            channel_error_body(code, "Replayed secure request"),
        )
    } else if route == SESSION_PATH && state.has(RelayAttack::Answer429) {
        let r = HandshakeRefusal::RateLimited;
        (r.status(), r.body())
    } else {
        return None;
    };
    let first = state.observe(|o| {
        let first = o.forged_answers == 0;
        if first {
            o.forged_answers += 1;
        }
        first
    });
    first.then(|| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("access-control-allow-origin", "*")
            .body(OutBody::full(body))
            .unwrap_or_else(|_| Response::new(OutBody::full("")))
    })
}

/// A request waiting for its host's frames.
struct Waiting {
    id: String,
    frames: mpsc::Receiver<Frame>,
}

/// Sends `frame` down `tunnel` and waits for the first answer frame.
async fn exchange(
    state: &Arc<State>,
    tunnel: &Arc<Tunnel>,
    frame: Frame,
    id: String,
) -> Result<(Frame, Waiting), Response<OutBody>> {
    let (tx, rx) = mpsc::channel(CALLER_QUEUE);
    lock(&tunnel.pending).insert(id.clone(), tx);
    let text = frame.to_text();
    state.carried(&frame, &text);
    if tunnel.to_host.send(frame).await.is_err() {
        lock(&tunnel.pending).remove(&id);
        return Err(own_error(state, 502, "tunnel_send_failed"));
    }
    let mut waiting = Waiting { id, frames: rx };
    match tokio::time::timeout(state.config.first_byte_timeout, waiting.frames.recv()).await {
        Err(_) => {
            cancel(tunnel, &waiting.id);
            Err(own_error(state, 504, "gateway_timeout"))
        }
        Ok(None) => {
            state.own_answer("tunnel_closed");
            Err(own(
                state,
                502,
                "text/plain",
                r#"{"error":"tunnel_closed"}"#.into(),
            ))
        }
        Ok(Some(f)) => Ok((f, waiting)),
    }
}

fn cancel(tunnel: &Tunnel, id: &str) {
    lock(&tunnel.pending).remove(id);
    let _ = tunnel
        .to_host
        .try_send(Frame::Cancel { id: id.to_string() });
}

/// Whether a host's answer head keeps the rules: status 200..=599, at most
/// 128 headers, valid names and values of at most 16 KB.
fn check_head(status: u16, headers: &Headers) -> Result<(), String> {
    if !(200..=599).contains(&status) {
        return Err(format!("status {status} is outside 200..=599"));
    }
    if headers.len() > MAX_ANSWER_HEADERS {
        return Err(format!("{} headers", headers.len()));
    }
    for (name, value) in headers {
        if value.len() > MAX_HEADER_VALUE
            || hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err()
            || hyper::header::HeaderValue::from_str(value).is_err()
        {
            return Err(format!("header {name:?} is not valid"));
        }
    }
    Ok(())
}

/// The response head for the caller: the host's headers minus hop-by-hop
/// ones and its length, CORS unless the host set it, the relay's own.
fn head(
    state: &State,
    status: u16,
    headers: &Headers,
    started: Instant,
) -> hyper::http::response::Builder {
    let mut b = Response::builder().status(status);
    for (name, value) in headers {
        if HOP_BY_HOP.contains(&name.as_str()) || name == "content-length" {
            continue;
        }
        b = b.header(name.as_str(), value.as_str());
    }
    for cors in [
        "access-control-allow-origin",
        "access-control-expose-headers",
    ] {
        if !headers.contains_key(cors) {
            b = b.header(cors, "*");
        }
    }
    let host_ms = started.elapsed().as_secs_f64() * 1000.0;
    relay_headers(state, b).header(
        "server-timing",
        format!("lookup;dur=0, host;dur={host_ms:.1}, relay;dur=0"),
    )
}

fn bad_host(state: &State, tunnel: &Tunnel, id: &str, why: &str) -> Response<OutBody> {
    tracing::debug!("relay: bad host response to {id}: {why}");
    cancel(tunnel, id);
    own_error(state, 502, "bad_host_response")
}

fn answer_caller(
    state: &Arc<State>,
    tunnel: &Arc<Tunnel>,
    (first, waiting): (Frame, Waiting),
    started: Instant,
) -> Response<OutBody> {
    match first {
        Frame::Response {
            status, payload, ..
        } => {
            lock(&tunnel.pending).remove(&waiting.id);
            let headers = &payload.headers;
            if let Err(why) = check_head(status, headers) {
                return bad_host(state, tunnel, &waiting.id, &why);
            }
            let Some(bytes) = payload.bytes().filter(|b| b.len() <= MAX_BODY_BYTES) else {
                return bad_host(state, tunnel, &waiting.id, "body too large or not base64");
            };
            state.observe(|o| o.responses += 1);
            head(state, status, headers, started)
                .body(OutBody::full(bytes))
                .unwrap_or_else(|_| own_error(state, 502, "bad_host_response"))
        }
        Frame::StreamStart {
            status, headers, ..
        } => {
            if let Err(why) = check_head(status, &headers) {
                return bad_host(state, tunnel, &waiting.id, &why);
            }
            state.observe(|o| o.streams += 1);
            let (tx, rx) = mpsc::channel(CALLER_QUEUE);
            let builder = head(state, status, &headers, started);
            let (state, tunnel) = (state.clone(), tunnel.clone());
            tokio::spawn(async move { pump(&state, &tunnel, waiting, tx).await });
            builder
                .body(OutBody::Stream(rx))
                .unwrap_or_else(|_| Response::new(OutBody::Full(None)))
        }
        _ => bad_host(
            state,
            tunnel,
            &waiting.id,
            "a stream frame before stream_start",
        ),
    }
}

/// Delivers one piece to the caller; `false` when the caller is gone or
/// has not read for the idle timeout (the slow-reader cutoff).
async fn deliver(state: &State, out: &mpsc::Sender<Bytes>, piece: Bytes) -> bool {
    match tokio::time::timeout(state.config.idle_timeout, out.send(piece)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            state.own_answer("slow_reader_cut");
            false
        }
    }
}

/// The complete events (each ending in a blank line) in `buffer`, taken
/// out of it.
fn take_events(buffer: &mut Vec<u8>) -> Vec<Bytes> {
    let mut out = Vec::new();
    while let Some(at) = buffer.windows(2).position(|w| w == b"\n\n") {
        out.push(Bytes::from(buffer.drain(..at + 2).collect::<Vec<u8>>()));
    }
    out
}

/// Carries one stream to the caller, with the stream attacks in force.
async fn pump(state: &State, tunnel: &Tunnel, mut waiting: Waiting, out: mpsc::Sender<Bytes>) {
    let by_event = [
        RelayAttack::DuplicateChunk,
        RelayAttack::ReorderChunks,
        RelayAttack::CutMidStream,
    ]
    .into_iter()
    .any(|a| state.has(a));
    let mut buffer = Vec::new();
    let mut swap = SwapFirstTwo::new(state.has(RelayAttack::ReorderChunks));
    let mut events_seen = 0u64;
    let mut held: Option<Bytes> = None;
    let id = waiting.id.clone();
    'stream: loop {
        let frame =
            match tokio::time::timeout(state.config.idle_timeout, waiting.frames.recv()).await {
                Err(_) => {
                    // Idle: end the caller's stream as if it had ended.
                    cancel(tunnel, &id);
                    break;
                }
                Ok(None) => break,
                Ok(Some(f)) => f,
            };
        let data = match frame {
            Frame::StreamChunk { data, .. } => Bytes::from(data),
            Frame::StreamEnd { .. } if state.has(RelayAttack::DropStreamEnd) => continue,
            Frame::StreamEnd { .. } => break,
            _ => continue,
        };
        state.observe(|o| o.chunks += 1);
        if !by_event {
            let pieces: Vec<Bytes> = if state.has(RelayAttack::SplitChunks) && data.len() > 1 {
                let half = data.len() / 2;
                vec![data.slice(..half), data.slice(half..)]
            } else if state.has(RelayAttack::CoalesceChunks) {
                match held.take() {
                    None => {
                        held = Some(data);
                        Vec::new()
                    }
                    Some(h) => vec![Bytes::from([h.as_ref(), data.as_ref()].concat())],
                }
            } else {
                vec![data]
            };
            for p in pieces {
                if !deliver(state, &out, p).await {
                    cancel(tunnel, &id);
                    return;
                }
            }
            continue;
        }
        buffer.extend_from_slice(&data);
        for event in take_events(&mut buffer) {
            events_seen += 1;
            let mut pieces = Vec::new();
            if state.has(RelayAttack::CutMidStream) && events_seen == 2 {
                state.observe(|o| o.streams_edited += 1);
                cancel(tunnel, &id);
                break 'stream;
            }
            if state.has(RelayAttack::DuplicateChunk) && events_seen == 1 {
                state.observe(|o| o.streams_edited += 1);
                pieces.push(event.clone());
            }
            if state.has(RelayAttack::ReorderChunks) {
                if events_seen == 2 {
                    state.observe(|o| o.streams_edited += 1);
                }
                pieces.extend(swap.pass(event, true));
            } else {
                pieces.push(event);
            }
            for p in pieces {
                if !deliver(state, &out, p).await {
                    cancel(tunnel, &id);
                    return;
                }
            }
        }
    }
    lock(&tunnel.pending).remove(&id);
    let rest: Vec<Bytes> = swap
        .flush()
        .into_iter()
        .chain(held)
        .chain(
            (!buffer.is_empty() && !state.has(RelayAttack::CutMidStream))
                .then(|| Bytes::from(buffer)),
        )
        .collect();
    for p in rest {
        if !deliver(state, &out, p).await {
            return;
        }
    }
}

/// `replay-request`: the same request frame again, under a new id; the
/// host's status is recorded.
async fn replay_request(state: &Arc<State>, tunnel: &Arc<Tunnel>, frame: Frame) {
    let Frame::Request {
        method,
        path,
        payload,
        ..
    } = frame
    else {
        return;
    };
    let id = state.next_id();
    let again = Frame::Request {
        id: id.clone(),
        method,
        path,
        payload,
    };
    if let Ok((first, waiting)) = exchange(state, tunnel, again, id).await {
        let status = match first {
            Frame::Response { status, .. } | Frame::StreamStart { status, .. } => status,
            _ => 0,
        };
        cancel(tunnel, &waiting.id);
        state.observe(|o| super::push_bounded(&mut o.replay_statuses, status));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_agents_and_paths_are_normalised() {
        let a = format!("0x{}", "ab".repeat(20));
        assert_eq!(
            agent_from_host(&format!("{a}.localhost:8080"), "localhost"),
            Some(a.clone())
        );
        assert_eq!(
            agent_from_host(
                &format!("{}.Agent.Osaurus.AI", a.to_uppercase().replace("0X", "0x")),
                "agent.osaurus.ai"
            ),
            Some(a.clone())
        );
        assert_eq!(agent_from_host("127.0.0.1:80", "localhost"), None);
        assert_eq!(
            agent_from_host(&format!("{a}.evil.example"), "localhost"),
            None
        );
        assert_eq!(agent_from_host("0x12.localhost", "localhost"), None);
        assert_eq!(normalize("/a/../b"), "/b");
        assert_eq!(normalize("/secure/call?x=/../y"), "/secure/call?x=/../y");
        assert_eq!(normalize("/health/"), "/health/");
        assert_eq!(normalize("/a/./b/.."), "/a/");
        assert_eq!(normalize("/../../x"), "/x");
    }

    #[test]
    fn answer_heads_are_checked_and_events_split() {
        assert!(check_head(200, &Headers::new()).is_ok());
        assert!(check_head(199, &Headers::new()).is_err());
        assert!(check_head(600, &Headers::new()).is_err());
        let bad = Headers::from([("bad name".to_string(), "v".to_string())]);
        assert!(check_head(200, &bad).is_err());
        let long = Headers::from([("x".to_string(), "v".repeat(MAX_HEADER_VALUE + 1))]);
        assert!(check_head(200, &long).is_err());
        let mut buffer = b"data: a\n\ndata: b\n\ndata: c".to_vec();
        let events = take_events(&mut buffer);
        assert_eq!(
            events,
            vec![Bytes::from("data: a\n\n"), Bytes::from("data: b\n\n")]
        );
        assert_eq!(buffer, b"data: c");
    }
}
