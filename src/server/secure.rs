//! The two channel endpoints: `POST /secure/session` (SPEC §4) and
//! `POST /secure/call` (§6), and the sealing of the inner response (§7).

use std::sync::Arc;

use bytes::Bytes;
use hyper::Response;
use tokio::sync::mpsc;

use crate::knobs::{cut_in_half, SwapFirstTwo};
use crate::protocol::encoding::{b64url_decode, b64url_encode, B64Strictness};
use crate::protocol::error::{CallError, HandshakeRefusal};
use crate::protocol::framing::ResponseSealer;
use crate::protocol::handshake::{respond, ServerHandshakeInputs};
use crate::protocol::keys::SessionKeys;
use crate::protocol::names::{RELAY_ORIGIN_HEADER, SECURE_CHANNEL_HEADER, SESSION_PATH};
use crate::protocol::session::{validate_inner, ServerSession};
use crate::protocol::sse::encode_event;
use crate::protocol::wire::{
    CallRequest, ClientHello, InnerRequest, InnerResponse, MAX_CALL_BYTES,
};
use crate::protocol::VERSION;
use crate::rng::{RandomSource, SystemRandom};
use crate::transport::OutBody;

use super::app::{AppBody, AppRequest, AppResponse, EVENT_STREAM, JSON};
use super::bugs::{self, StreamEnd};
use super::gate;
use super::http::{json_response, Shared};

/// Inner header names a sealed request may not set (CALL-7), beside
/// [`RELAY_ORIGIN_HEADER`].
const RESERVED: [&str; 6] = [
    "host",
    "content-length",
    "connection",
    "authorization",
    "accept",
    "content-type",
];
/// Stream frames buffered between the sealing task and the connection.
const FRAME_BUFFER: usize = 16;
/// How long a stream waits for a client that stopped reading before it
/// gives up (without fin, so the client sees a truncation, never a
/// silently short answer).
const STALLED_READER: std::time::Duration = std::time::Duration::from_secs(30);

/// The current Unix time in seconds.
pub use crate::clock::unix_secs as unix_now;

fn refusal(shared: &Shared, r: HandshakeRefusal) -> AppResponse {
    let (status, content_type, body) = shared.knobs.hello_refusal(r);
    AppResponse {
        status,
        content_type: Some(content_type.to_owned()),
        body: AppBody::Full(body.into_bytes()),
    }
}

/// `POST /secure/session`, after the rate limit: decode, version, agent,
/// handshake, register (SPEC §4, upstream's check order).
pub fn handshake(shared: &Shared, body: &[u8]) -> AppResponse {
    let Ok(mut hello) = ClientHello::parse(body) else {
        return refusal(shared, HandshakeRefusal::InvalidRequest);
    };
    hello.v = shared.knobs.hello_version(hello.v);
    if hello.v != VERSION {
        return refusal(shared, HandshakeRefusal::UnsupportedVersion);
    }
    let identity = &shared.config.identity;
    if hello.agent_address.to_lowercase() != shared.agent_address_lower {
        return refusal(shared, HandshakeRefusal::UnknownAgent);
    }
    let now = unix_now();
    let mut rng = SystemRandom;
    let inputs = ServerHandshakeInputs {
        ephemeral_secret: shared.knobs.ephemeral_secret(rng.bytes()),
        sid: rng.bytes(),
        expires_at: shared.knobs.expires_at(now, shared.config.session_ttl_secs),
    };
    match respond(&hello, identity, &inputs, &shared.knobs) {
        Ok(done) => {
            let json = done.hello.to_json();
            shared.store.insert(
                done.session,
                now,
                shared.knobs.store_bounded(),
                &shared.knobs,
            );
            AppResponse::json(200, json)
        }
        Err(e) => {
            tracing::debug!("handshake refused: {e}");
            refusal(shared, HandshakeRefusal::from(&e))
        }
    }
}

/// What the outer request of a call contributes to the inner one.
pub struct Outer {
    /// Whether the outer caller is remote.
    pub remote: bool,
    /// Whether the outer request carried the relay marker.
    pub relay_marker: bool,
    /// Outer `Host`.
    pub host: Option<String>,
    /// Outer `User-Agent`.
    pub user_agent: Option<String>,
}

/// `POST /secure/call`: open in CALL-2's order, run the inner request
/// through the app, seal its response.
pub async fn call(shared: Arc<Shared>, body: &[u8], outer: Outer) -> Response<OutBody> {
    let (sealer, inner) = match open(&shared, body) {
        Ok(v) => v,
        Err(e) => {
            let (status, body) = e.response();
            return json_response(status, body);
        }
    };
    if shared.knobs.origin_refused(&sealer.1.sid, outer.remote) {
        let (status, body) = CallError::SessionUnknown.response();
        return json_response(status, body);
    }
    let req = inner_app_request(inner, &outer);
    let resp = if req.method == "POST" && gate::normalize(&req.path) == SESSION_PATH {
        // Reachable only when the nesting check is bent (CALL-8): then,
        // as upstream would, the nested handshake runs and is sealed.
        handshake(&shared, &req.body)
    } else {
        shared.app.handle(&req, &shared.knobs)
    };
    seal_response(shared, sealer, resp).await
}

/// A response sealer, with what the knobs that seal by hand need.
type Sealers = (ResponseSealer, bugs::RawSealer);

fn open(shared: &Shared, body: &[u8]) -> Result<(Sealers, InnerRequest), CallError> {
    let call = CallRequest::parse(body).map_err(CallError::MalformedEnvelope)?;
    shared.knobs.crash_on_envelope(call.seq, &call.ct);
    let now = unix_now();
    let knobs = &shared.knobs;
    if knobs.version_before_session() && call.v != crate::protocol::VERSION {
        return Err(CallError::Version(call.v));
    }
    let (opened, sealer) = shared
        .store
        .with_session(&call.sid, now, knobs, |session| {
            if call.v == VERSION && knobs.replay_before_aead(&call.sid, call.seq) {
                return Err(CallError::Replay(call.seq));
            }
            let opened = match session.open_call(&call, now, knobs) {
                Err(CallError::Decrypt(_)) if knobs.either_direction_opens() => {
                    let keys = session.keys();
                    let swapped = SessionKeys {
                        c2s: keys.s2c,
                        s2c: keys.s2c,
                    };
                    ServerSession::new(call.sid.clone(), swapped, session.expires_at())
                        .open_call(&call, now, knobs)
                }
                other => other,
            }?;
            knobs.opened(&call.sid, opened.seq);
            let key = bugs::response_key(knobs, session, opened.seq);
            let sealer = session.response_sealer_with_key(opened.seq, key);
            let raw = bugs::RawSealer {
                key,
                sid: call.sid.clone(),
                request_seq: opened.seq,
            };
            Ok((opened, (sealer, raw)))
        })
        .ok_or(CallError::SessionUnknown)??;
    let inner = validate_inner(&opened.plaintext, |p| knobs.nesting_normalize(p), true)?;
    Ok((sealer, inner))
}

/// The inner request as the app sees it: inner headers minus the reserved
/// names, then the outer `Host`, relay marker and `User-Agent`, then the
/// inner authorization, accept, content type and length (CALL-7).
fn inner_app_request(inner: InnerRequest, outer: &Outer) -> AppRequest {
    let body = inner
        .body
        .as_deref()
        .and_then(|b| b64url_decode(b, B64Strictness::Upstream).ok())
        .unwrap_or_default();
    let mut headers: Vec<(String, String)> = inner
        .headers
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .filter(|(k, _)| {
            !RESERVED.contains(&k.as_str()) && !k.eq_ignore_ascii_case(RELAY_ORIGIN_HEADER)
        })
        .collect();
    if let Some(host) = &outer.host {
        headers.push(("host".into(), host.clone()));
    }
    if outer.relay_marker {
        headers.push((RELAY_ORIGIN_HEADER.to_ascii_lowercase(), "1".into()));
    }
    if let Some(ua) = &outer.user_agent {
        if crate::protocol::names::header(&headers, "user-agent").is_none() {
            headers.push(("user-agent".into(), ua.clone()));
        }
    }
    for (name, value) in [
        ("authorization", inner.authorization),
        ("accept", inner.accept),
        ("content-type", inner.content_type),
    ] {
        if let Some(v) = value {
            headers.push((name.into(), v));
        }
    }
    headers.push(("content-length".into(), body.len().to_string()));
    AppRequest {
        method: inner.method,
        path: inner.path,
        headers,
        body: Bytes::from(body),
        inside_channel: true,
        remote: outer.remote,
    }
}

fn is_event_stream(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| c.trim().to_ascii_lowercase().starts_with(EVENT_STREAM))
}

/// Seals an app response: an event stream frame by frame (RESP-3), anything
/// else as one fin frame holding the InnerResponse (RESP-2).
async fn seal_response(
    shared: Arc<Shared>,
    sealer: Sealers,
    resp: AppResponse,
) -> Response<OutBody> {
    if is_event_stream(resp.content_type.as_deref()) {
        return seal_stream(shared, sealer, resp);
    }
    let body = match resp.body {
        AppBody::Full(b) => b,
        AppBody::Stream(mut rx) => {
            let mut all = Vec::new();
            while let Some(chunk) = rx.recv().await {
                if all.len() + chunk.len() > MAX_CALL_BYTES {
                    return internal_error();
                }
                all.extend_from_slice(&chunk);
            }
            all
        }
    };
    let inner = InnerResponse {
        status: i64::from(resp.status),
        content_type: resp.content_type,
        body: Some(b64url_encode(&body)),
    };
    let frame = shared
        .knobs
        .seal_frame(&sealer.0, &sealer.1, 0, inner.to_json().as_bytes(), true);
    let outer_status = shared.knobs.buffered_outer_status(resp.status);
    Response::builder()
        .status(outer_status)
        .header("content-type", JSON)
        .header(SECURE_CHANNEL_HEADER, "1")
        .body(OutBody::full(frame.to_json()))
        .unwrap_or_else(|_| internal_error())
}

fn internal_error() -> Response<OutBody> {
    let (status, body) = (
        500,
        crate::protocol::error::channel_error_body(
            crate::protocol::error::ChannelErrorCode::Unavailable,
            "Secure channel is not available on this server",
        ),
    );
    json_response(status, body)
}

/// One frame per inner write, then the empty fin frame; the knobs bend
/// the fin flag, the order of the first two frames, and the ending.
fn seal_stream(shared: Arc<Shared>, sealer: Sealers, resp: AppResponse) -> Response<OutBody> {
    let (tx, rx) = mpsc::channel::<Bytes>(FRAME_BUFFER);
    let mut writes = match resp.body {
        AppBody::Stream(rx) => rx,
        AppBody::Full(b) => {
            let (wtx, wrx) = mpsc::channel(1);
            let _ = wtx.try_send(Bytes::from(b));
            wrx
        }
    };
    tokio::spawn(async move {
        let knobs = &shared.knobs;
        let mut seq = 0u64;
        let (sealer, raw) = &sealer;
        let mut swap = SwapFirstTwo::new(knobs.reorder_frames());
        // Under `fin-on-last-chunk` one write is held back, so the last
        // can be sealed with fin once the end is known.
        let hold = knobs.fin_on_last_chunk();
        let mut held: Option<Bytes> = None;
        loop {
            let next = writes.recv().await;
            let (chunk, fin) = if hold {
                match (held.take(), next) {
                    (None, Some(n)) => {
                        held = Some(n);
                        continue;
                    }
                    (Some(h), Some(n)) => {
                        held = Some(n);
                        (h, false)
                    }
                    (Some(h), None) => (h, true),
                    (None, None) => break,
                }
            } else {
                match next {
                    Some(c) => (c, knobs.fin_on_data_frame()),
                    None => break,
                }
            };
            let frame = knobs.seal_frame(sealer, raw, seq, &chunk, fin);
            let event = Bytes::from(encode_event(&frame));
            for event in swap.pass(event, true) {
                if tx.send_timeout(event, STALLED_READER).await.is_err() {
                    return;
                }
            }
            seq += 1;
            if hold && fin {
                return;
            }
        }
        if let Some(h) = swap.flush() {
            let _ = tx.send_timeout(h, STALLED_READER).await;
        }
        let fin = encode_event(&knobs.seal_frame(sealer, raw, seq, b"", true));
        match knobs.stream_end() {
            StreamEnd::Fin => {
                let _ = tx.send_timeout(Bytes::from(fin), STALLED_READER).await;
            }
            StreamEnd::NoFin => {}
            StreamEnd::CutMidFrame => {
                let _ = tx
                    .send_timeout(Bytes::copy_from_slice(cut_in_half(&fin)), STALLED_READER)
                    .await;
            }
        }
    });
    Response::builder()
        .status(resp.status)
        .header("content-type", EVENT_STREAM)
        .header("cache-control", "no-cache, no-transform")
        .header(SECURE_CHANNEL_HEADER, "1")
        .body(OutBody::Stream(rx))
        .unwrap_or_else(|_| internal_error())
}
