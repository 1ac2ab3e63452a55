//! The relay's side of the tunnel: the WebSocket upgrade on
//! `/tunnel/connect`, sign-in with a single-use nonce and a 30 s clock
//! window, the agents a tunnel holds (the newest session wins an
//! address), pings, and handing each answer frame to the request that
//! waits for it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;

use crate::protocol::identity::Address;
use crate::rng::{RandomSource, SystemRandom};
use crate::transport::OutBody;
use crate::tunnel::frame::{ws_config, AgentAuth, AgentUrl};
use crate::tunnel::sign::verify_sign_in;
use crate::tunnel::{Frame, CLOCK_WINDOW_SECS};

use super::{lock, State, Tunnel, MAX_AGENTS_PER_TUNNEL};

/// How long a host has to answer the challenge.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Most nonces waiting for an answer (older ones are dropped first).
const MAX_NONCES: usize = 10_000;

/// Control frames (`request_challenge`, `add_agent`, `remove_agent`)
/// allowed per minute per tunnel.
const CONTROL_PER_MINUTE: u32 = 10;

/// Answers the WebSocket upgrade and serves the tunnel in the background.
pub(crate) fn upgrade(state: Arc<State>, req: Request<Incoming>) -> Response<OutBody> {
    let headers = req.headers();
    let wants_ws = headers
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = headers
        .get("sec-websocket-key")
        .map(|k| k.as_bytes().to_vec())
    else {
        return super::route::own_error(&state, 400, "websocket_required");
    };
    if !wants_ws {
        return super::route::own_error(&state, 400, "websocket_required");
    }
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(ws_config()),
        )
        .await;
        serve(state, ws).await;
    });
    Response::builder()
        .status(101)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", accept)
        .body(OutBody::Full(None))
        .unwrap_or_else(|_| Response::new(OutBody::Full(None)))
}

fn fresh_nonce(state: &State) -> String {
    let nonce = hex::encode(SystemRandom.bytes::<32>());
    let mut nonces = lock(&state.nonces);
    if nonces.len() >= MAX_NONCES {
        let cutoff = Instant::now() - Duration::from_secs(60);
        nonces.retain(|_, at| *at > cutoff);
        if nonces.len() >= MAX_NONCES {
            nonces.clear();
        }
    }
    nonces.insert(nonce.clone(), Instant::now());
    nonce
}

/// Checks one sign-in: the nonce is one the relay sent and not used
/// before (it is used up now either way), the clock is within the window,
/// and every signature is its address's. All or nothing.
fn check_sign_in(
    state: &State,
    agents: &[AgentAuth],
    nonce: &str,
    timestamp: i64,
) -> Result<Vec<Address>, &'static str> {
    if lock(&state.nonces).remove(nonce).is_none() {
        return Err("invalid_nonce");
    }
    if (crate::clock::unix_secs() - timestamp).abs() > CLOCK_WINDOW_SECS {
        return Err("invalid_timestamp");
    }
    if agents.is_empty() || agents.len() > MAX_AGENTS_PER_TUNNEL {
        return Err("signature_verification_failed");
    }
    agents
        .iter()
        .map(|a| verify_sign_in(a, nonce, timestamp).map_err(|_| "signature_verification_failed"))
        .collect()
}

/// Puts `address` on `tunnel`; a tunnel that held it before is told it
/// was superseded.
fn register(state: &State, address: &Address, tunnel: &Arc<Tunnel>) -> AgentUrl {
    let lower = address.to_lower();
    let old = lock(&state.agents).insert(lower.clone(), tunnel.clone());
    if let Some(old) = old.filter(|o| !Arc::ptr_eq(o, tunnel)) {
        let _ = old.to_host.try_send(Frame::AgentRemoved {
            address: lower.clone(),
            reason: Some("superseded".into()),
        });
    }
    AgentUrl {
        url: state.agent_url(&lower),
        address: lower,
    }
}

async fn serve<S>(state: Arc<State>, ws: tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let nonce = fresh_nonce(&state);
    let send_now = |f: Frame| Message::text(f.to_text());
    if sink
        .send(send_now(Frame::Challenge { nonce }))
        .await
        .is_err()
    {
        return;
    }
    let refused = |error: &str| Frame::AuthError {
        error: error.to_string(),
    };
    let addresses = match tokio::time::timeout(AUTH_TIMEOUT, next_frame(&mut stream)).await {
        Ok(Some(Frame::Auth {
            agents,
            nonce,
            timestamp,
        })) => check_sign_in(&state, &agents, &nonce, timestamp),
        Ok(Some(_)) => Err("signature_verification_failed"),
        Ok(None) => return,
        Err(_) => Err("auth_timeout"),
    };
    let addresses = match addresses {
        Ok(a) => a,
        Err(error) => {
            state.observe(|o| o.sign_ins_refused += 1);
            let _ = sink.send(send_now(refused(error))).await;
            let _ = sink.close().await;
            return;
        }
    };
    let (to_host, mut queue) = mpsc::channel::<Frame>(64);
    let tunnel = Arc::new(Tunnel {
        to_host,
        pending: Default::default(),
        restart: state.restart.subscribe(),
    });
    let urls: Vec<AgentUrl> = addresses
        .iter()
        .map(|a| register(&state, a, &tunnel))
        .collect();
    state.observe(|o| o.tunnels += 1);
    let ok = Frame::AuthOk {
        agents: urls,
        region: Some(state.config.region.clone()),
    };
    if sink.send(send_now(ok)).await.is_err() {
        unregister(&state, &tunnel);
        return;
    }
    // The one writer: queued frames, pings, and the restart notice.
    let unanswered = Arc::new(AtomicU32::new(0));
    let mut restart = tunnel.restart.clone();
    let ping_every = state.config.ping_interval;
    let unanswered_w = unanswered.clone();
    let writer = tokio::spawn(async move {
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        loop {
            let frame = tokio::select! {
                f = queue.recv() => match f { Some(f) => f, None => break },
                _ = ping.tick() => {
                    if unanswered_w.fetch_add(1, Ordering::Relaxed) >= 3 {
                        break;
                    }
                    let ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0);
                    Frame::Ping { ts: ms.into() }
                }
                _ = async { let _ = restart.wait_for(|r| *r).await; } => {
                    let _ = sink.send(send_now(Frame::Error { error: "relay_restarting".into() })).await;
                    let _ = sink.send(Message::Close(Some(CloseFrame {
                        code: CloseCode::Restart,
                        reason: "relay restarting".into(),
                    }))).await;
                    break;
                }
            };
            if sink.send(send_now(frame)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut control = (Instant::now(), 0u32);
    loop {
        let next = tokio::select! {
            f = next_text(&mut stream) => f,
            _ = async { while !writer.is_finished() { tokio::time::sleep(Duration::from_millis(200)).await } } => None,
        };
        let Some((frame, text)) = next else {
            break;
        };
        match &frame {
            Frame::Pong { .. } => unanswered.store(0, Ordering::Relaxed),
            Frame::Response { id, .. }
            | Frame::StreamStart { id, .. }
            | Frame::StreamChunk { id, .. }
            | Frame::StreamEnd { id } => {
                state.carried(&frame, &text);
                let waiting = lock(&tunnel.pending).get(id).cloned();
                if let Some(waiting) = waiting {
                    // The request side reads quickly; one that cannot is
                    // cut off there, so a full queue here is a dead caller.
                    if waiting
                        .send_timeout(frame.clone(), state.config.idle_timeout)
                        .await
                        .is_err()
                    {
                        lock(&tunnel.pending).remove(id);
                        let _ = tunnel.to_host.try_send(Frame::Cancel { id: id.clone() });
                    }
                }
            }
            Frame::RequestChallenge | Frame::AddAgent { .. } | Frame::RemoveAgent { .. } => {
                if control.0.elapsed() >= Duration::from_secs(60) {
                    control = (Instant::now(), 0);
                }
                control.1 += 1;
                let answer = if control.1 > CONTROL_PER_MINUTE {
                    Frame::Error {
                        error: "rate_limited".into(),
                    }
                } else {
                    control_answer(&state, &tunnel, frame)
                };
                if tunnel.to_host.send(answer).await.is_err() {
                    break;
                }
            }
            _ => {}
        }
    }
    writer.abort();
    unregister(&state, &tunnel);
}

/// The answer to one control frame.
fn control_answer(state: &State, tunnel: &Arc<Tunnel>, frame: Frame) -> Frame {
    match frame {
        Frame::RequestChallenge => Frame::Challenge {
            nonce: fresh_nonce(state),
        },
        Frame::AddAgent {
            address,
            signature,
            nonce,
            timestamp,
        } => {
            let auth = AgentAuth { address, signature };
            match check_sign_in(state, std::slice::from_ref(&auth), &nonce, timestamp) {
                Ok(a)
                    if lock(&state.agents)
                        .values()
                        .filter(|t| Arc::ptr_eq(t, tunnel))
                        .count()
                        < MAX_AGENTS_PER_TUNNEL =>
                {
                    let added = register(state, &a[0], tunnel);
                    Frame::AgentAdded {
                        address: added.address,
                        url: added.url,
                        region: Some(state.config.region.clone()),
                    }
                }
                Ok(_) => Frame::Error {
                    error: "too_many_agents".into(),
                },
                Err(error) => Frame::Error {
                    error: error.into(),
                },
            }
        }
        Frame::RemoveAgent { address } => {
            let lower = address.to_ascii_lowercase();
            let mut agents = lock(&state.agents);
            if agents.get(&lower).is_some_and(|t| Arc::ptr_eq(t, tunnel)) {
                agents.remove(&lower);
            }
            Frame::AgentRemoved {
                address: lower,
                reason: None,
            }
        }
        other => other,
    }
}

/// Takes the tunnel's agents off the map (those no newer session took)
/// and ends every request waiting on it.
fn unregister(state: &State, tunnel: &Arc<Tunnel>) {
    lock(&state.agents).retain(|_, t| !Arc::ptr_eq(t, tunnel));
    lock(&tunnel.pending).clear();
}

async fn next_frame<S>(stream: &mut S) -> Option<Frame>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    next_text(stream).await.map(|(f, _)| f)
}

/// The next frame and its text; `None` when the socket ends, errs, or
/// breaks a limit. Malformed frames and unknown types are skipped.
async fn next_text<S>(stream: &mut S) -> Option<(Frame, String)>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => match Frame::parse(&text) {
                Ok(f) => return Some((f, text.to_string())),
                Err(e) => tracing::debug!("relay: skipping a tunnel frame: {e}"),
            },
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}
