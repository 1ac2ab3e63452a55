//! An in-process reference server for the server tests, driven over real
//! loopback HTTP with the protocol core: start it (with knobs), handshake,
//! seal calls and open the answers.

#![allow(dead_code)]

use std::time::Duration;

use osc_harness::peer::Offer;
use osc_harness::protocol::encoding::{b64url_decode, b64url_encode, B64Strictness};
use osc_harness::protocol::session::ClientSession;
use osc_harness::protocol::sse::SseDecoder;
use osc_harness::protocol::wire::{
    ClientHello, CodedErrorBody, Frame, InnerRequest, InnerResponse, ServerHello,
};
use osc_harness::rng::SystemRandom;
use osc_harness::server::{self, Bug, RunningServer, ServerConfig};
use osc_harness::transport::{self, Limits, OuterRequest, OuterResponse, Target};

/// The relay marker header.
pub const RELAY: &str = "X-Osaurus-Relay-Origin";

/// A test server config: no rate limit, short body deadline.
pub fn config() -> ServerConfig {
    let mut c = ServerConfig::generated();
    c.handshake_rate = None;
    c.body_read_timeout = Duration::from_secs(2);
    c
}

/// Starts a server with `bugs` and tweaks from `f`.
pub async fn start_with(bugs: &[Bug], f: impl FnOnce(&mut ServerConfig)) -> RunningServer {
    let mut c = config();
    c.bugs = bugs.iter().copied().collect();
    f(&mut c);
    server::spawn(c).await.expect("server starts")
}

/// Starts an honest server.
pub async fn start() -> RunningServer {
    start_with(&[], |_| {}).await
}

/// Starts a server with one bug.
pub async fn start_bug(bug: Bug) -> RunningServer {
    start_with(&[bug], |_| {}).await
}

/// Limits for test requests.
pub fn limits() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(20),
        idle_timeout: Duration::from_secs(10),
        max_body_bytes: 64 * 1024 * 1024,
    }
}

/// The server's target.
pub fn target(s: &RunningServer) -> Target {
    Target::parse(&s.url).expect("server url parses")
}

/// Sends one request.
pub async fn send(s: &RunningServer, req: OuterRequest) -> OuterResponse {
    transport::send(&target(s), &req, &limits())
        .await
        .expect("request completes")
}

/// A fresh honest hello through the driver, pinned to the server's agent.
pub fn client_handshake(s: &RunningServer) -> Offer {
    Offer::random(s.agent_address, &mut SystemRandom)
}

/// Posts a ClientHello body.
pub async fn post_hello(s: &RunningServer, body: impl Into<Vec<u8>>) -> OuterResponse {
    send(s, OuterRequest::post_json("/secure/session", body)).await
}

/// A completed handshake: the verified session and the raw hello.
pub async fn handshake_raw(s: &RunningServer) -> (ClientSession, ServerHello, ClientHello) {
    let hs = client_handshake(s);
    let hello = hs.hello().clone();
    let resp = post_hello(s, hello.to_json()).await;
    assert_eq!(resp.status, 200, "handshake: {}", text(&resp));
    let server_hello = ServerHello::parse(&resp.body).expect("ServerHello parses");
    let session = hs.finish(&server_hello).expect("ServerHello verifies");
    (session, server_hello, hello)
}

/// A verified session.
pub async fn handshake(s: &RunningServer) -> ClientSession {
    handshake_raw(s).await.0
}

/// The body as text.
pub fn text(r: &OuterResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// `error.code` of a coded error body.
pub fn error_code(r: &OuterResponse) -> Option<String> {
    CodedErrorBody::parse(&r.body).ok().and_then(|b| b.code)
}

/// An inner request.
pub fn inner(method: &str, path: &str) -> InnerRequest {
    InnerRequest {
        method: method.into(),
        path: path.into(),
        ..Default::default()
    }
}

/// An inner request with the server's access key.
pub fn authed(s: &RunningServer, method: &str, path: &str) -> InnerRequest {
    InnerRequest {
        authorization: Some(format!("Bearer {}", s.access_key)),
        ..inner(method, path)
    }
}

/// Posts a CallRequest body, as a relay-origin (remote) caller when `relay`.
pub async fn post_call(s: &RunningServer, body: impl Into<Vec<u8>>, relay: bool) -> OuterResponse {
    let mut req = OuterRequest::post_json("/secure/call", body);
    if relay {
        req = req.with_header(RELAY, "1");
    }
    send(s, req).await
}

/// Seals `inner` with the next seq and posts it; returns the seq and response.
pub async fn call(
    s: &RunningServer,
    session: &mut ClientSession,
    inner: &InnerRequest,
    relay: bool,
) -> (u64, OuterResponse) {
    let call = session.seal_call(inner, now()).expect("session usable");
    (call.seq, post_call(s, call.to_json(), relay).await)
}

/// Opens a buffered response strictly (RESP-1, RESP-2).
pub fn open_buffered(session: &ClientSession, seq: u64, r: &OuterResponse) -> InnerResponse {
    let frame = Frame::parse(&r.body).unwrap_or_else(|e| panic!("frame: {e}: {}", text(r)));
    let mut opener = session.response_opener(seq);
    let pt = opener.open(&frame).expect("the frame opens");
    opener.finish().expect("the single frame is fin");
    InnerResponse::parse(&pt).expect("InnerResponse parses")
}

/// The decoded body of an inner response.
pub fn inner_body(r: &InnerResponse) -> Vec<u8> {
    r.body
        .as_deref()
        .map(|b| b64url_decode(b, B64Strictness::Canonical).expect("body is base64url"))
        .unwrap_or_default()
}

/// The inner body as JSON.
pub fn inner_json(r: &InnerResponse) -> serde_json::Value {
    serde_json::from_slice(&inner_body(r)).expect("inner body is JSON")
}

/// A buffered sealed call that must succeed at the HTTP level.
pub async fn call_ok(
    s: &RunningServer,
    session: &mut ClientSession,
    inner: &InnerRequest,
    relay: bool,
) -> InnerResponse {
    let (seq, r) = call(s, session, inner, relay).await;
    assert_eq!(r.status, 200, "outer status: {}", text(&r));
    open_buffered(session, seq, &r)
}

/// The frames of an SSE body, in arrival order.
pub fn sse_frames(body: &[u8]) -> (Vec<Frame>, Vec<u8>) {
    let mut dec = SseDecoder::default();
    let events = dec.feed(body).expect("events within bounds");
    let frames = events
        .iter()
        .map(|e| Frame::parse(e).expect("event is a frame"))
        .collect();
    (frames, dec.leftover().to_vec())
}

/// A dispatch inner request asking for `events` events of `size` bytes.
pub fn dispatch(s: &RunningServer, events: u64, size: u64) -> InnerRequest {
    InnerRequest {
        body: Some(b64url_encode(
            format!("{{\"events\":{events},\"size\":{size}}}").as_bytes(),
        )),
        content_type: Some("application/json".into()),
        ..authed(s, "POST", &format!("/agents/{}/dispatch", s.agent_id))
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
