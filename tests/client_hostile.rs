//! The reference client against small scripted peers on real loopback
//! sockets: a peer built from the protocol core that breaks one step of
//! the response on purpose, and peers that stall, drip or flood. The client
//! must name each failure with the right exit code and never hang.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use osc_harness::client::{exit, Channel, ClientBug, ClientError};
use osc_harness::knobs::{cut_in_half, SwapFirstTwo};
use osc_harness::protocol::encoding::b64url_encode;
use osc_harness::protocol::handshake::{
    respond, HonestServer, ServerHandshakeHooks, ServerHandshakeInputs,
};
use osc_harness::protocol::identity::{Address, AgentIdentity};
use osc_harness::protocol::session::{HonestCalls, ServerSession};
use osc_harness::protocol::sse::encode_event;
use osc_harness::protocol::wire::{CallRequest, ClientHello, InnerRequest, InnerResponse};
use osc_harness::rng::{RandomSource, SeededRandom};
use osc_harness::transport::{Limits, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    None,
    ForeignSigner,
    DropFin,
    CutMidFrame,
    Reorder,
    AnnounceExpired,
    ForgetSessions,
    Replay409,
    EndlessStream,
    StalledStream,
    DripStream,
}

struct Peer {
    identity: AgentIdentity,
    other: AgentIdentity,
    fault: Fault,
    sessions: Mutex<HashMap<String, ServerSession>>,
    rng: Mutex<SeededRandom>,
    calls: Mutex<u32>,
}

struct ForeignSigner<'a>(&'a AgentIdentity);
impl ServerHandshakeHooks for ForeignSigner<'_> {
    fn sign(&self, _identity: &AgentIdentity, payload: &[u8]) -> [u8; 65] {
        self.0.sign_channel(payload)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn limits() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_millis(500),
        max_body_bytes: 256 * 1024,
    }
}

async fn read_request(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut b).await.ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&b[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut b).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&b[..n]);
    }
    let path = head.split_whitespace().nth(1)?.to_string();
    Some((path, buf[head_end..head_end + len].to_vec()))
}

async fn reply(s: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(body).await;
}

impl Peer {
    async fn handle(&self, mut s: TcpStream) {
        let Some((path, body)) = read_request(&mut s).await else {
            return;
        };
        if path.ends_with("/secure/session") {
            let hello = ClientHello::parse(&body).unwrap();
            let inputs = {
                let mut rng = self.rng.lock().unwrap();
                ServerHandshakeInputs {
                    ephemeral_secret: rng.bytes(),
                    sid: rng.bytes(),
                    expires_at: if self.fault == Fault::AnnounceExpired {
                        now() - 10
                    } else {
                        now() + 3600
                    },
                }
            };
            let done = if self.fault == Fault::ForeignSigner {
                respond(&hello, &self.identity, &inputs, &ForeignSigner(&self.other))
            } else {
                respond(&hello, &self.identity, &inputs, &HonestServer)
            }
            .unwrap();
            self.sessions
                .lock()
                .unwrap()
                .insert(done.hello.sid.clone(), done.session);
            reply(
                &mut s,
                200,
                "application/json",
                done.hello.to_json().as_bytes(),
            )
            .await;
            return;
        }
        let call = CallRequest::parse(&body).unwrap();
        let n = {
            let mut c = self.calls.lock().unwrap();
            *c += 1;
            *c
        };
        let coded = |code: &str| {
            format!(
                r#"{{"error":{{"code":"{code}","message":"m","type":"secure_channel_error"}}}}"#
            )
        };
        if (self.fault == Fault::ForgetSessions && n == 1)
            || !self.sessions.lock().unwrap().contains_key(&call.sid)
        {
            self.sessions.lock().unwrap().clear();
            reply(
                &mut s,
                401,
                "application/json",
                coded("secure_session_unknown").as_bytes(),
            )
            .await;
            return;
        }
        if self.fault == Fault::Replay409 {
            reply(
                &mut s,
                409,
                "application/json",
                coded("secure_replay").as_bytes(),
            )
            .await;
            return;
        }
        let (opened, sealer) = {
            let mut sessions = self.sessions.lock().unwrap();
            let session = sessions.get_mut(&call.sid).unwrap();
            let opened = session.open_call(&call, now(), &HonestCalls).unwrap();
            (opened.clone(), session.response_sealer(opened.seq))
        };
        let mut sealer = sealer;
        let inner = InnerRequest::parse(&opened.plaintext).unwrap();
        if !inner.path.starts_with("/stream") {
            let response = InnerResponse {
                status: if inner.path == "/missing" { 404 } else { 200 },
                content_type: Some("text/plain".into()),
                body: Some(b64url_encode(format!("seq {}", opened.seq).as_bytes())),
            };
            let frame = sealer.seal(response.to_json().as_bytes(), true).unwrap();
            reply(
                &mut s,
                200,
                "application/json; charset=utf-8",
                frame.to_json().as_bytes(),
            )
            .await;
            return;
        }
        let mut events: Vec<Vec<u8>> = (0..3)
            .map(|i| {
                encode_event(
                    &sealer
                        .seal(format!("data: {i}\n\n").as_bytes(), false)
                        .unwrap(),
                )
            })
            .collect();
        let fin = encode_event(&sealer.seal(b"", true).unwrap());
        match self.fault {
            Fault::DropFin => {}
            Fault::CutMidFrame => events.push(cut_in_half(&fin).to_vec()),
            Fault::Reorder => {
                let mut swap = SwapFirstTwo::new(true);
                events = events
                    .into_iter()
                    .flat_map(|e| swap.pass(e, true))
                    .collect();
                events.push(fin);
            }
            _ => events.push(fin),
        }
        let _ = s
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
            )
            .await;
        match self.fault {
            Fault::EndlessStream => {
                let _ = s.write_all(&events[0]).await;
                let _ = s.write_all(b"data: ").await;
                while s.write_all(&[b'a'; 8192]).await.is_ok() {}
                return;
            }
            Fault::DripStream => {
                let _ = s.write_all(&events[0]).await;
                // Comment lines keep the idle timer happy and carry nothing.
                while s.write_all(b": still here\n\n").await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                return;
            }
            Fault::StalledStream => {
                let _ = s.write_all(&events[0]).await;
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            _ => {}
        }
        for e in events {
            let _ = s.write_all(&e).await;
            let _ = s.flush().await;
        }
    }
}

async fn peer(fault: Fault) -> (Target, Address, Arc<Peer>) {
    let mut rng = SeededRandom::new(3, "client-hostile");
    let p = Arc::new(Peer {
        identity: AgentIdentity::from_bytes(&rng.bytes()).unwrap(),
        other: AgentIdentity::from_bytes(&rng.bytes()).unwrap(),
        fault,
        sessions: Mutex::new(HashMap::new()),
        rng: Mutex::new(rng),
        calls: Mutex::new(0),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = Target::from_socket_addr(listener.local_addr().unwrap());
    let serving = p.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let p = serving.clone();
            tokio::spawn(async move { p.handle(s).await });
        }
    });
    let address = p.identity.address();
    (target, address, p)
}

fn get(path: &str) -> InnerRequest {
    InnerRequest {
        method: "GET".into(),
        path: path.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn honest_peer_buffered_and_streamed() {
    let (target, address, _) = peer(Fault::None).await;
    let mut ch = Channel::new(target, address, limits());
    let out = ch.call(get("/run")).await.unwrap();
    assert_eq!(
        (out.inner_status, out.streamed, out.frames),
        (200, false, 1)
    );
    assert_eq!(out.body, b"seq 1");
    let mut seen = Vec::new();
    let out = ch
        .call_with(get("/stream"), &mut |b| seen.push(b.to_vec()))
        .await
        .unwrap();
    assert!(out.streamed);
    assert_eq!(out.frames, 4);
    assert_eq!(out.body, b"data: 0\n\ndata: 1\n\ndata: 2\n\n");
    assert_eq!(seen.len(), 4, "each frame is handed over as it opens");
    assert_eq!(ch.handshakes(), 1, "the session is reused");
    let out = ch.call(get("/missing")).await.unwrap();
    assert_eq!(out.inner_status, 404);
    assert!(!out.is_success());
}

async fn failing(
    fault: Fault,
    path: &str,
    bugs: &[ClientBug],
) -> Result<osc_harness::client::CallOutcome, ClientError> {
    let (target, address, _) = peer(fault).await;
    let mut ch = Channel::new(target, address, limits()).with_bugs(bugs.iter().copied());
    ch.call(get(path)).await
}

#[tokio::test]
async fn foreign_signer_is_an_identity_mismatch() {
    let e = failing(Fault::ForeignSigner, "/run", &[])
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), exit::IDENTITY_MISMATCH, "{e}");
    let out = failing(
        Fault::ForeignSigner,
        "/run",
        &[ClientBug::IdentityUnchecked],
    )
    .await
    .unwrap();
    assert_eq!(out.inner_status, 200);
}

#[tokio::test]
async fn dropped_fin_is_truncation() {
    let e = failing(Fault::DropFin, "/stream", &[]).await.unwrap_err();
    assert_eq!(e.exit_code(), exit::TRUNCATED, "{e}");
    let out = failing(Fault::DropFin, "/stream", &[ClientBug::MissingFinIgnored])
        .await
        .unwrap();
    assert_eq!(out.frames, 3);
}

#[tokio::test]
async fn stream_cut_mid_frame_is_truncation() {
    let e = failing(Fault::CutMidFrame, "/stream", &[])
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), exit::TRUNCATED, "{e}");
}

#[tokio::test]
async fn reordered_frames_are_a_protocol_violation() {
    let e = failing(Fault::Reorder, "/stream", &[]).await.unwrap_err();
    assert_eq!(e.exit_code(), exit::PROTOCOL, "{e}");
    assert!(e.to_string().contains("out of order"), "{e}");
    let out = failing(
        Fault::Reorder,
        "/stream",
        &[ClientBug::ReorderedFramesAccepted],
    )
    .await
    .unwrap();
    assert_eq!(out.body, b"data: 1\n\ndata: 0\n\ndata: 2\n\n");
}

#[tokio::test]
async fn session_announced_expired_is_refused() {
    let e = failing(Fault::AnnounceExpired, "/run", &[])
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), exit::PROTOCOL, "{e}");
    assert!(e.to_string().contains("expired"), "{e}");
}

#[tokio::test]
async fn unknown_session_rehandshakes_once() {
    let (target, address, p) = peer(Fault::ForgetSessions).await;
    let mut ch = Channel::new(target, address, limits());
    let out = ch.call(get("/run")).await.unwrap();
    assert_eq!(out.body, b"seq 1", "the retry runs on a fresh session");
    assert_eq!(ch.handshakes(), 2);
    assert_eq!(*p.calls.lock().unwrap(), 2);
}

#[tokio::test]
async fn replay_409_is_never_retried_unless_broken() {
    let (target, address, p) = peer(Fault::Replay409).await;
    let mut ch = Channel::new(target.clone(), address, limits());
    let e = ch.call(get("/run")).await.unwrap_err();
    assert_eq!(e.exit_code(), exit::REFUSED, "{e}");
    assert_eq!(e.refusal_code(), Some("secure_replay"));
    assert_eq!(*p.calls.lock().unwrap(), 1);
    let mut ch = Channel::new(target, address, limits()).with_bugs([ClientBug::RetryOn409]);
    let _ = ch.call(get("/run")).await;
    assert_eq!(
        *p.calls.lock().unwrap(),
        3,
        "the broken client sends it again"
    );
}

/// Serves every connection with `handler` after reading the request.
async fn raw_peer<F, Fut>(handler: F) -> Target
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = Target::from_socket_addr(listener.local_addr().unwrap());
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                if read_request(&mut s).await.is_some() {
                    handler(s).await;
                }
            });
        }
    });
    target
}

#[tokio::test]
async fn hostile_servers_never_hang_the_client() {
    let address = Address([7; 20]);
    let silent = raw_peer(|s| async move {
        let _held = s;
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .await;
    let endless = raw_peer(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{")
            .await;
        while s.write_all(&[b' '; 8192]).await.is_ok() {}
    })
    .await;
    let endless_stream = raw_peer(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: ")
            .await;
        while s.write_all(&[b'a'; 8192]).await.is_ok() {}
    })
    .await;
    let garbage = raw_peer(|mut s| async move {
        reply(&mut s, 200, "application/json", b"not a hello").await;
    })
    .await;
    let limited = raw_peer(|mut s| async move {
        reply(
            &mut s,
            429,
            "application/json",
            br#"{"error":"Too many pairing attempts. Try again shortly."}"#,
        )
        .await;
    })
    .await;
    for (target, expected) in [
        (silent, exit::TRANSPORT),
        (endless, exit::TRANSPORT),
        (garbage, exit::PROTOCOL),
        (limited, exit::REFUSED),
    ] {
        let started = Instant::now();
        let e = Channel::new(target, address, limits())
            .call(get("/x"))
            .await
            .unwrap_err();
        assert_eq!(e.exit_code(), expected, "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "bounded by the limits"
        );
    }
    let e = Channel::new(endless_stream, address, limits())
        .handshake()
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), exit::TRANSPORT, "{e}");
    for fault in [Fault::EndlessStream, Fault::StalledStream] {
        let started = Instant::now();
        let e = failing(fault, "/stream", &[]).await.unwrap_err();
        assert_eq!(e.exit_code(), exit::TRANSPORT, "{fault:?}: {e}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "bounded by the limits"
        );
    }
}

#[tokio::test]
async fn dripping_stream_hits_the_whole_stream_limit() {
    let (target, address, _) = peer(Fault::DripStream).await;
    let started = Instant::now();
    let e = Channel::new(target, address, limits())
        .with_stream_time_limit(Duration::from_secs(1))
        .call(get("/stream"))
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), exit::TRANSPORT, "{e}");
    assert!(e.to_string().contains("whole-stream"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
