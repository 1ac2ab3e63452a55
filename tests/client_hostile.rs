//! The reference client against hostile servers on real loopback sockets.
//! Every fault the reference server has a knob for (`src/server/bugs.rs`)
//! is played by the reference server with that knob; the few it has none
//! for (a peer that stays silent, floods, answers garbage, or stalls a
//! stream after its first event) are played by one small raw peer. The
//! client must name each failure with the right exit code and never hang.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use osc_harness::client::{exit, CallOutcome, Channel, ClientBug, ClientError};
use osc_harness::protocol::identity::Address;
use osc_harness::protocol::wire::InnerRequest;
use osc_harness::server::{Bug, RunningServer};
use osc_harness::transport::{self, Limits, OuterRequest, Target};
use support::server::{self as reference, authed, dispatch, start, start_bug};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Short client limits, so every hostile answer ends quickly.
fn limits() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_millis(500),
        max_body_bytes: 256 * 1024,
    }
}

/// A channel to `server`, pinned to its agent.
fn channel(server: &RunningServer) -> Channel {
    Channel::new(reference::target(server), server.agent_address, limits())
}

/// The side-effecting agent run of `server` (it counts executions).
fn run(server: &RunningServer) -> InnerRequest {
    authed(server, "POST", &format!("/agents/{}/run", server.agent_id))
}

/// A stream of three events and `[DONE]` (four data frames and the fin).
fn stream(server: &RunningServer) -> InnerRequest {
    dispatch(server, 3, 0)
}

/// The inner body of [`stream`] with its events in the order `order`.
fn stream_body(order: [u64; 3]) -> Vec<u8> {
    let mut body: String = order
        .iter()
        .map(|n| format!("data: {{\"n\":{n},\"pad\":\"\"}}\n\n"))
        .collect();
    body.push_str("data: [DONE]\n\n");
    body.into_bytes()
}

/// `executions` as the run reported it.
fn executions(out: &CallOutcome) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&out.body).expect("run answers JSON");
    v["executions"].as_u64().expect("executions is a number")
}

/// One call from a fresh channel (with client `bugs`) to a reference
/// server running `bug`; `request` picks the inner request.
async fn against(
    bug: Bug,
    request: fn(&RunningServer) -> InnerRequest,
    bugs: &[ClientBug],
) -> Result<CallOutcome, ClientError> {
    let server = start_bug(bug).await;
    channel(&server)
        .with_bugs(bugs.iter().copied())
        .call(request(&server))
        .await
}

#[tokio::test]
async fn honest_server_buffered_and_streamed() {
    let server = start().await;
    let mut ch = channel(&server);
    let out = ch.call(run(&server)).await.unwrap();
    assert_eq!(
        (out.inner_status, out.streamed, out.frames),
        (200, false, 1)
    );
    assert_eq!(executions(&out), 1);
    let mut seen = Vec::new();
    let out = ch
        .call_with(stream(&server), &mut |b| seen.push(b.to_vec()))
        .await
        .unwrap();
    assert!(out.streamed);
    assert_eq!(out.frames, 5);
    assert_eq!(out.body, stream_body([0, 1, 2]));
    assert_eq!(seen.len(), 5, "each frame is handed over as it opens");
    assert_eq!(ch.handshakes(), 1, "the session is reused");
    let out = ch.call(authed(&server, "GET", "/missing")).await.unwrap();
    assert_eq!(out.inner_status, 404);
    assert!(!out.is_success());
}

#[tokio::test]
async fn wrong_signing_key_is_an_identity_mismatch() {
    let e = against(Bug::WrongSigningKey, run, &[]).await.unwrap_err();
    assert_eq!(e.exit_code(), exit::IDENTITY_MISMATCH, "{e}");
    let out = against(Bug::WrongSigningKey, run, &[ClientBug::IdentityUnchecked])
        .await
        .unwrap();
    assert_eq!(out.inner_status, 200);
}

#[tokio::test]
async fn dropped_fin_is_truncation() {
    let e = against(Bug::StreamDropsFin, stream, &[]).await.unwrap_err();
    assert_eq!(e.exit_code(), exit::TRUNCATED, "{e}");
    let out = against(Bug::StreamDropsFin, stream, &[ClientBug::MissingFinIgnored])
        .await
        .unwrap();
    assert_eq!(out.frames, 4, "every data frame, no fin");
    assert_eq!(out.body, stream_body([0, 1, 2]));
}

#[tokio::test]
async fn stream_cut_mid_frame_is_truncation() {
    let e = against(Bug::StreamCutMidFrame, stream, &[])
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), exit::TRUNCATED, "{e}");
}

#[tokio::test]
async fn reordered_frames_are_a_protocol_violation() {
    let e = against(Bug::FramesReordered, stream, &[])
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), exit::PROTOCOL, "{e}");
    assert!(e.to_string().contains("out of order"), "{e}");
    let out = against(
        Bug::FramesReordered,
        stream,
        &[ClientBug::ReorderedFramesAccepted],
    )
    .await
    .unwrap();
    assert_eq!(out.body, stream_body([1, 0, 2]));
}

#[tokio::test]
async fn session_announced_expired_is_refused() {
    let e = against(Bug::ExpiryInPast, run, &[]).await.unwrap_err();
    assert_eq!(e.exit_code(), exit::PROTOCOL, "{e}");
    assert!(e.to_string().contains("expired"), "{e}");
}

#[tokio::test]
async fn unknown_session_rehandshakes_once() {
    let server = start_bug(Bug::UnknownSessionOnce).await;
    let mut ch = channel(&server);
    let out = ch.call(run(&server)).await.unwrap();
    assert_eq!(out.inner_status, 200, "the retry runs on a fresh session");
    assert_eq!(ch.handshakes(), 2);
    assert_eq!(executions(&out), 1);
    assert_eq!(server.executions(), 1, "the refused call never ran");
}

#[tokio::test]
async fn replay_409_is_never_retried_unless_broken() {
    // The knob refuses only the first call: a client that sent it again
    // would get an answer, so the error alone shows no retry happened.
    let server = start_bug(Bug::ReplayRefusedOnce).await;
    let e = channel(&server).call(run(&server)).await.unwrap_err();
    assert_eq!(e.exit_code(), exit::REFUSED, "{e}");
    assert_eq!(e.refusal_code(), Some("secure_replay"));
    assert_eq!(server.executions(), 0);
    let server = start_bug(Bug::ReplayRefusedOnce).await;
    let out = channel(&server)
        .with_bugs([ClientBug::RetryOn409])
        .call(run(&server))
        .await
        .expect("the broken client sends it again");
    assert_eq!(out.inner_status, 200);
    assert_eq!(server.executions(), 1);
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
        if n == 0 || buf.len() > 1024 * 1024 {
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

/// The one small peer: serves every connection with `handler` after
/// reading the request (its path and body).
async fn raw_peer<F, Fut>(handler: F) -> Target
where
    F: Fn(TcpStream, String, Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = Target::from_socket_addr(listener.local_addr().unwrap());
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                if let Some((path, body)) = read_request(&mut s).await {
                    handler(s, path, body).await;
                }
            });
        }
    });
    target
}

/// A stream that stalls, which no knob plays: the raw peer in front of
/// `server` passes each request on, and answers an event stream with its
/// head and first event only, then holds the connection without a word.
async fn stalling_front(server: &RunningServer) -> Target {
    let upstream = reference::target(server);
    raw_peer(move |mut s, path, body| {
        let upstream = upstream.clone();
        async move {
            let request = OuterRequest::post_json(path, body);
            let Ok(r) = transport::send(&upstream, &request, &reference::limits()).await else {
                return;
            };
            let content_type = r.header("content-type").unwrap_or("").to_string();
            if !content_type.starts_with("text/event-stream") {
                reply(&mut s, r.status, &content_type, &r.body).await;
                return;
            }
            let first = r
                .body
                .windows(2)
                .position(|w| w == b"\n\n")
                .map_or(r.body.len(), |i| i + 2);
            let _ = s
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
                )
                .await;
            let _ = s.write_all(&r.body[..first]).await;
            let _ = s.flush().await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    })
    .await
}

#[tokio::test]
async fn hostile_servers_never_hang_the_client() {
    let address = Address([7; 20]);
    let silent = raw_peer(|s, _, _| async move {
        let _held = s;
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .await;
    let endless = raw_peer(|mut s, _, _| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{")
            .await;
        while s.write_all(&[b' '; 8192]).await.is_ok() {}
    })
    .await;
    let endless_stream = raw_peer(|mut s, _, _| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: ")
            .await;
        while s.write_all(&[b'a'; 8192]).await.is_ok() {}
    })
    .await;
    let garbage = raw_peer(|mut s, _, _| async move {
        reply(&mut s, 200, "application/json", b"not a hello").await;
    })
    .await;
    let limited = start_bug(Bug::RateLimitEveryHandshake).await;
    for (target, expected) in [
        (silent, exit::TRANSPORT),
        (endless, exit::TRANSPORT),
        (garbage, exit::PROTOCOL),
        (reference::target(&limited), exit::REFUSED),
    ] {
        let started = Instant::now();
        let e = Channel::new(target, address, limits())
            .call(InnerRequest::default())
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

    // Past the handshake: a stream of comments that never ends and an
    // event that never ends are bounded by the size limit, a stream that
    // stalls by the idle timeout. The whole-stream limit (short here, so
    // the test itself is bounded) is not what stops them.
    let endless = start_bug(Bug::EndlessStream).await;
    let huge = start_bug(Bug::HugeEvent).await;
    let honest = start().await;
    let stalled = Channel::new(
        stalling_front(&honest).await,
        honest.agent_address,
        limits(),
    );
    for (name, ch, request) in [
        ("endless", channel(&endless), stream(&endless)),
        ("huge", channel(&huge), stream(&huge)),
        ("stalled", stalled, stream(&honest)),
    ] {
        let mut ch = ch.with_stream_time_limit(Duration::from_secs(5));
        let started = Instant::now();
        let e = ch.call(request).await.unwrap_err();
        assert_eq!(e.exit_code(), exit::TRANSPORT, "{name}: {e}");
        assert!(!e.to_string().contains("whole-stream"), "{name}: {e}");
        assert_eq!(ch.handshakes(), 1, "{name}: the handshake went through");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "bounded by the limits"
        );
    }
}

#[tokio::test]
async fn dripping_stream_hits_the_whole_stream_limit() {
    let server = start_bug(Bug::SlowDrip).await;
    let started = Instant::now();
    let e = channel(&server)
        .with_stream_time_limit(Duration::from_secs(1))
        .call(stream(&server))
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), exit::TRANSPORT, "{e}");
    assert!(e.to_string().contains("whole-stream"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
