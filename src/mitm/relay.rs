//! One relayed request: read it (bounded), check it, forward it (or answer
//! in the server's place when an attack says so), and pump the response
//! back with the attack's edit applied.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::sync::mpsc;

use crate::knobs::{cut_in_half, SwapFirstTwo};
use crate::protocol::encoding::b64url_encode;
use crate::protocol::error::{
    channel_error_body, ChannelErrorCode, HandshakeRefusal, UPGRADE_REQUIRED_BODY,
};
use crate::protocol::names::{
    CALL_PATH, RELAY_ORIGIN_HEADER, SECURE_CHANNEL_HEADER, SECURE_PREFIX, SESSION_PATH,
};
use crate::protocol::sse::SseDecoder;
use crate::protocol::wire::{ClientHello, Frame, ServerHello};
use crate::transport::{self, OutBody, OuterRequest, StreamingResponse};

use super::body::CanaryScan;
use super::http_log::body_text;
use super::{Attack, LogEntry, State};

/// The largest request body the relay accepts (the server's own limit is
/// 64 KiB on the channel endpoints; plaintext routes may carry more).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// The largest single SSE event the relay decodes while checking.
const MAX_EVENT_BYTES: usize = 48 * 1024 * 1024;

const HOP_BY_HOP: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
];

/// Handles one request from the client.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<OutBody> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout(
        state.config.limits.response_timeout,
        Limited::new(body, MAX_REQUEST_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => return plain(413, "request body too large or broken"),
        Err(_) => return plain(408, "request body too slow"),
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    let mut head_text = format!("{} {}\n", parts.method, path);
    let mut headers = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        head_text.push_str(&value);
        head_text.push('\n');
        let lower = name.as_str();
        if HOP_BY_HOP.contains(&lower) || lower.eq_ignore_ascii_case(RELAY_ORIGIN_HEADER) {
            continue;
        }
        headers.push((name.as_str().to_string(), value));
    }
    if !state.has(Attack::StripMarker) {
        headers.push((RELAY_ORIGIN_HEADER.into(), "1".into()));
    }
    let mut up_scan = CanaryScan::new(&state.config.canaries);
    state.canary_hits(up_scan.feed(head_text.as_bytes()), "client to server");
    state.canary_hits(up_scan.feed(&body), "client to server");
    state.add_bytes_up(body.len());
    let outer = OuterRequest {
        method: parts.method.as_str().to_string(),
        path: path.clone(),
        headers,
        body: body.to_vec(),
    };
    let route = path.split('?').next().unwrap_or("");
    let action = match route {
        SESSION_PATH => "handshake",
        CALL_PATH => "call",
        _ => "plaintext",
    };
    let request_line = body_text(
        format!("{} {path}", outer.method).as_bytes(),
        &state.config.canaries,
    );
    let slot = state.open_exchange(action, request_line, &body);
    let entry = LogEntry {
        at_ms: state.started.elapsed().as_millis() as u64,
        method: outer.method.clone(),
        route: log_route(route),
        status: 0,
        request_bytes: body.len(),
        response_bytes: 0,
        duration_ms: 0,
        streamed: false,
        slot,
    };
    match route {
        SESSION_PATH => handshake(state, outer, entry, started).await,
        CALL_PATH => call(state, outer, entry, started).await,
        _ => {
            state.observe(|o| o.plaintext_requests += 1);
            forward_buffered(state, outer, entry, started).await
        }
    }
}

/// Paths are logged by route only: an agent id is not secret, but a
/// plaintext path could carry anything, so only its shape is kept.
fn log_route(route: &str) -> String {
    if route.starts_with(SECURE_PREFIX) {
        route.to_string()
    } else {
        "(plaintext route)".to_string()
    }
}

async fn handshake(
    state: Arc<State>,
    outer: OuterRequest,
    entry: LogEntry,
    started: Instant,
) -> Response<OutBody> {
    state.observe(|o| o.handshakes += 1);
    if let Err(e) = ClientHello::parse(&outer.body) {
        state.problem(format!("a ClientHello is malformed: {e}"));
    }
    if state.has(Attack::RateLimit429) {
        let r = HandshakeRefusal::RateLimited;
        state.note(entry.slot, adversary_note(Attack::RateLimit429));
        return state.finish_full(entry, started, r.status(), json_headers(), r.body().into());
    }
    let response = match transport::send(&state.config.upstream, &outer, &state.config.limits).await
    {
        Ok(r) => r,
        Err(e) => return upstream_failed(&state, entry, started, &e.to_string()),
    };
    let mut body = response.body.clone();
    if response.status == 200 {
        match ServerHello::parse(&response.body) {
            Ok(mut hello) => {
                let mut tampered = true;
                if state.has(Attack::SwapServerKey) {
                    let secret =
                        crate::rng::RandomSource::bytes::<32>(&mut crate::rng::SystemRandom);
                    let public =
                        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret));
                    hello.enc_pub = b64url_encode(public.as_bytes());
                } else if state.has(Attack::EditSid) {
                    let fresh =
                        crate::rng::RandomSource::bytes::<16>(&mut crate::rng::SystemRandom);
                    hello.sid = b64url_encode(&fresh);
                } else if state.has(Attack::EditExp) {
                    hello.expires_at = hello.expires_at.saturating_add(3600);
                } else if state.has(Attack::HelloV2) {
                    hello.v = 2;
                } else {
                    tampered = false;
                    // Re-encodings of the same signature: the hello still
                    // proves the agent, so calls on it are not counted.
                    if let Some((attack, sig)) = reencode_signature(&state, &hello.signature) {
                        hello.signature = sig;
                        body = hello.to_json().into_bytes();
                        state.note(entry.slot, adversary_note(attack));
                    }
                }
                if tampered {
                    for a in [
                        Attack::SwapServerKey,
                        Attack::EditSid,
                        Attack::EditExp,
                        Attack::HelloV2,
                    ] {
                        if state.has(a) {
                            state.note(entry.slot, adversary_note(a));
                            break;
                        }
                    }
                    body = hello.to_json().into_bytes();
                    state.observe(|o| o.tampered_hellos += 1);
                    state.tampered_sids_insert(hello.sid.clone());
                }
            }
            Err(e) => state.problem(format!("a ServerHello is malformed: {e}")),
        }
    }
    let headers = pass_headers(&response.headers);
    state.finish_full(entry, started, response.status, headers, body)
}

async fn call(
    state: Arc<State>,
    outer: OuterRequest,
    entry: LogEntry,
    started: Instant,
) -> Response<OutBody> {
    let n = state.observe(|o| {
        o.calls += 1;
        o.calls
    });
    state.check_envelope(&outer.body, entry.slot);
    let refused = |status: u16, code: ChannelErrorCode, message: &str| {
        (status, channel_error_body(code, message))
    };
    let answer = if state.has(Attack::Unknown401Always)
        || (state.has(Attack::Unknown401Once) && n == 1)
    {
        state.note(
            entry.slot,
            adversary_note(if state.has(Attack::Unknown401Always) {
                Attack::Unknown401Always
            } else {
                Attack::Unknown401Once
            }),
        );
        Some(refused(
            401,
            ChannelErrorCode::SessionUnknown,
            "Unknown or expired secure session",
        ))
    } else if state.has(Attack::Replay409) && n == 1 {
        state.note(entry.slot, adversary_note(Attack::Replay409));
        Some(refused(
            409,
            ChannelErrorCode::Replay,
            "Replayed secure call rejected",
        ))
    } else if state.has(Attack::Upgrade426) {
        state.note(entry.slot, adversary_note(Attack::Upgrade426));
        Some((426, UPGRADE_REQUIRED_BODY.to_string()))
    } else if state.has(Attack::PlaintextFrame) {
        state.note(entry.slot, adversary_note(Attack::PlaintextFrame));
        let inner = br#"{"status":"ok"}"#;
        Some((
            200,
            format!(
                r#"{{"status":200,"headers":{{"content-type":"application/json"}},"body":"{}"}}"#,
                b64url_encode(inner)
            ),
        ))
    } else {
        None
    };
    if let Some((status, text)) = answer {
        let mut headers = json_headers();
        if status == 200 {
            headers.push((SECURE_CHANNEL_HEADER.into(), "1".into()));
        }
        return state.finish_full(entry, started, status, headers, text.into_bytes());
    }
    if state.has(Attack::ForeignFrames) {
        return foreign_frames(&state, &outer, entry, started, n).await;
    }
    if state.has(Attack::EndlessStream)
        || state.has(Attack::SlowDrip)
        || state.has(Attack::HugeFrame)
    {
        return hostile_stream(state, entry);
    }
    if state.has(Attack::Plaintext) {
        state.note(entry.slot, adversary_note(Attack::Plaintext));
        let mut plain = OuterRequest::post_json(
            format!("/agents/{}/run", state.config.agent_id),
            r#"{"prompt":"relayed in plaintext by the mitm"}"#,
        )
        .with_header(RELAY_ORIGIN_HEADER, "1");
        if let Some(key) = &state.config.plaintext_key {
            plain = plain.with_header("Authorization", format!("Bearer {key}"));
        }
        let response =
            match transport::send(&state.config.upstream, &plain, &state.config.limits).await {
                Ok(r) => r,
                Err(e) => return upstream_failed(&state, entry, started, &e.to_string()),
            };
        state.observe(|o| o.plaintext_statuses.push(response.status));
        let headers = pass_headers(&response.headers);
        return state.finish_full(entry, started, response.status, headers, response.body);
    }
    let response =
        match transport::send_streaming(&state.config.upstream, &outer, &state.config.limits).await
        {
            Ok(r) => r,
            Err(e) => return upstream_failed(&state, entry, started, &e.to_string()),
        };
    let status = response.status;
    let headers = pass_headers(&response.headers);
    let is_stream = response.header("content-type").is_some_and(|ct| {
        ct.trim_start()
            .to_ascii_lowercase()
            .starts_with("text/event-stream")
    });
    let (tx, rx) = mpsc::channel(16);
    let replay = (state.has(Attack::Replay) && status == 200).then(|| outer.clone());
    tokio::spawn(pump(state, response, tx, is_stream, entry, started, replay));
    build(status, &headers, OutBody::Stream(rx))
}

/// `foreign-frames`: the first call reaches the server but the client is
/// told its session is unknown; its retry, on a new session, gets the
/// first call's sealed response, which no honest client can open.
async fn foreign_frames(
    state: &State,
    outer: &OuterRequest,
    entry: LogEntry,
    started: Instant,
    n: u64,
) -> Response<OutBody> {
    if n == 1 {
        state.note(
            entry.slot,
            "the adversary forwarded the call but answered 401 secure_session_unknown in the \
             server's place, keeping the sealed response"
                .into(),
        );
        match transport::send(&state.config.upstream, outer, &state.config.limits).await {
            Ok(r) => *state.captured.lock().unwrap_or_else(|e| e.into_inner()) = Some(r),
            Err(e) => return upstream_failed(state, entry, started, &e.to_string()),
        }
        let body = channel_error_body(
            ChannelErrorCode::SessionUnknown,
            "Unknown or expired secure session",
        );
        return state.finish_full(entry, started, 401, json_headers(), body.into_bytes());
    }
    let captured = state
        .captured
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match captured {
        Some(r) => {
            state.note(
                entry.slot,
                "the adversary answered with the first call's sealed response (another session's)"
                    .into(),
            );
            let headers = pass_headers(&r.headers);
            state.finish_full(entry, started, r.status, headers, r.body)
        }
        None => upstream_failed(state, entry, started, "no captured response"),
    }
}

/// Carries a call's response to the client, checking it and applying the
/// stream edits; then, under `replay`, sends the captured call again.
async fn pump(
    state: Arc<State>,
    mut response: StreamingResponse,
    tx: mpsc::Sender<Bytes>,
    is_stream: bool,
    mut entry: LogEntry,
    started: Instant,
    replay: Option<OuterRequest>,
) {
    entry.status = response.status;
    entry.streamed = is_stream;
    let mut scan = CanaryScan::new(&state.config.canaries);
    let mut edit = StreamEdit::new(&state);
    let mut decoder = SseDecoder::new(MAX_EVENT_BYTES);
    let mut buffered = Vec::new();
    let mut delivered = true;
    let mut broken = None;
    let mut frames = 0usize;
    if !edit.passive {
        for a in StreamEdit::ATTACKS {
            if state.has(a) && is_stream {
                state.note(entry.slot, adversary_note(a));
            }
        }
    }
    loop {
        let chunk = match response.next_chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                broken = Some(e.to_string());
                break;
            }
        };
        entry.response_bytes += chunk.len();
        state.add_bytes_down(chunk.len());
        state.canary_hits(scan.feed(&chunk), "server to client");
        if !is_stream {
            if buffered.len() + chunk.len() > state.config.limits.max_body_bytes {
                broken = Some("the buffered response passed the relay's size limit".into());
                break;
            }
            buffered.extend_from_slice(&chunk);
            continue;
        }
        let events = match decoder.feed(&chunk) {
            Ok(e) => e,
            Err(e) => {
                broken = Some(e.to_string());
                break;
            }
        };
        if edit.passive && tx.send(chunk).await.is_err() {
            delivered = false;
            break;
        }
        for event in events {
            frames += 1;
            edit.check(&state, &event);
            for out in edit.apply(event) {
                if tx.send(out).await.is_err() {
                    delivered = false;
                    break;
                }
            }
        }
        if !delivered || edit.done {
            break;
        }
    }
    if is_stream {
        // What the stream edits had to work on (reorder needs two frames).
        state.observe(|o| {
            o.streamed_responses += 1;
            o.multi_frame_streams += u64::from(frames >= 2);
        });
        for out in edit.flush() {
            if tx.send(out).await.is_err() {
                delivered = false;
            }
        }
        if !edit.saw_fin && broken.is_none() && response.status == 200 {
            state.observe(|o| o.responses_without_fin += 1);
            state.problem("a streamed response ended without a frame marked fin".into());
        }
    } else if broken.is_none() {
        let out = buffered_edit(&state, entry.slot, response.status, buffered);
        if tx.send(out.clone()).await.is_err() {
            delivered = false;
        }
        buffered = out.to_vec();
    }
    if let Some(why) = &broken {
        state.problem(format!("the upstream response broke off: {why}"));
    }
    drop(tx);
    state.observe(|o| {
        if delivered {
            o.responses_delivered += 1
        } else {
            o.client_hung_up += 1
        }
    });
    let mut shown = if is_stream {
        format!(
            "stream of {frames} frame(s) from the server, {} bytes",
            entry.response_bytes
        )
    } else {
        body_text(&buffered, &state.config.canaries)
    };
    if let Some(why) = &broken {
        shown.push_str(&format!(" (broke off: {why})"));
    }
    if !delivered {
        shown.push_str(" (the client stopped reading)");
    }
    entry.duration_ms = started.elapsed().as_millis() as u64;
    if let Some(call) = replay {
        let status =
            match transport::send(&state.config.upstream, &call, &state.config.limits).await {
                Ok(r) => r.status,
                Err(_) => 0,
            };
        state.observe(|o| o.replay_statuses.push(status));
        state.note(
            entry.slot,
            format!(
                "{}; the server answered the copy with {status}",
                adversary_note(Attack::Replay)
            ),
        );
    }
    state.close(entry.slot, entry.status, shown);
    state.log(entry);
}

/// The signature of a ServerHello in another encoding, under the
/// `sig-v-01` and `sig-high-s` attacks.
fn reencode_signature(state: &State, signature: &str) -> Option<(Attack, String)> {
    let raw = hex::decode(signature.strip_prefix("0x")?).ok()?;
    let mut sig: [u8; 65] = raw.try_into().ok()?;
    if !matches!(sig[64], 27 | 28) {
        return None;
    }
    let attack = if state.has(Attack::SigV01) {
        sig[64] -= 27;
        Attack::SigV01
    } else if state.has(Attack::SigHighS) {
        sig = crate::protocol::identity::to_high_s(&sig);
        Attack::SigHighS
    } else {
        return None;
    };
    Some((attack, format!("0x{}", hex::encode(sig))))
}

/// The HTTP-log note for an exchange that `attack` bent.
fn adversary_note(attack: Attack) -> String {
    format!("adversary ({attack}): {}", attack.description())
}

/// The buffered (one-frame) response after checks and edits.
fn buffered_edit(state: &State, slot: Option<usize>, status: u16, body: Vec<u8>) -> Bytes {
    for a in [Attack::Reorder, Attack::Duplicate] {
        if state.has(a) {
            state.note(
                slot,
                format!("adversary ({a}): not applicable to a buffered answer (one frame)"),
            );
        }
    }
    if status != 200 {
        return Bytes::from(body);
    }
    match Frame::parse(&body) {
        Ok(mut frame) => {
            if !frame.is_fin() {
                state.observe(|o| o.responses_without_fin += 1);
                state.problem("a buffered response frame is not marked fin".into());
            }
            if state.has(Attack::DropFin) {
                state.note(slot, adversary_note(Attack::DropFin));
                frame.fin = None;
                return Bytes::from(frame.to_json());
            }
        }
        Err(e) => state.problem(format!("a buffered response is not a frame: {e}")),
    }
    if state.has(Attack::CutMidFrame) {
        state.note(slot, adversary_note(Attack::CutMidFrame));
        return Bytes::copy_from_slice(cut_in_half(&body));
    }
    Bytes::from(body)
}

/// The stream edits, applied event by event.
struct StreamEdit {
    passive: bool,
    drop_fin: bool,
    cut: bool,
    reorder: SwapFirstTwo<Bytes>,
    duplicate: bool,
    after_fin: bool,
    first: Option<Vec<u8>>,
    index: usize,
    saw_fin: bool,
    last_seq: Option<u64>,
    done: bool,
}

impl StreamEdit {
    /// The attacks that edit a stream on its way to the client.
    const ATTACKS: [Attack; 5] = [
        Attack::DropFin,
        Attack::CutMidFrame,
        Attack::Reorder,
        Attack::Duplicate,
        Attack::FrameAfterFin,
    ];

    fn new(state: &State) -> Self {
        let drop_fin = state.has(Attack::DropFin);
        let cut = state.has(Attack::CutMidFrame);
        let reorder = state.has(Attack::Reorder);
        let duplicate = state.has(Attack::Duplicate);
        let after_fin = state.has(Attack::FrameAfterFin);
        StreamEdit {
            passive: !(drop_fin || cut || reorder || duplicate || after_fin),
            drop_fin,
            cut,
            reorder: SwapFirstTwo::new(reorder),
            duplicate,
            after_fin,
            first: None,
            index: 0,
            saw_fin: false,
            last_seq: None,
            done: false,
        }
    }

    /// The passive checks of one event: a well-formed frame, rising frame
    /// seqs, nothing after fin.
    fn check(&mut self, state: &State, event: &[u8]) {
        match Frame::parse(event) {
            Ok(frame) => {
                if self.saw_fin {
                    state.problem("a stream frame follows the fin frame".into());
                }
                if self.last_seq.is_some_and(|s| frame.seq <= s) {
                    state.problem(format!("stream frame seq {} does not rise", frame.seq));
                }
                self.last_seq = Some(frame.seq);
                self.saw_fin |= frame.is_fin();
            }
            Err(e) => state.problem(format!("a stream event is not a frame: {e}")),
        }
    }

    fn apply(&mut self, event: Vec<u8>) -> Vec<Bytes> {
        if self.passive || self.done {
            return Vec::new();
        }
        let index = self.index;
        self.index += 1;
        let fin = Frame::parse(&event).is_ok_and(|f| f.is_fin());
        let encoded = encode(&event);
        let mut out = Vec::new();
        if index == 0 {
            self.first = Some(event.clone());
        }
        if fin && self.drop_fin {
            self.done = true;
            return out;
        }
        if fin && self.cut {
            out.push(Bytes::copy_from_slice(cut_in_half(&encoded)));
            self.done = true;
            return out;
        }
        out.extend(self.reorder.pass(encoded, !fin));
        if out.is_empty() {
            return out;
        }
        if self.duplicate && index == 0 {
            out.push(encode(&event));
        }
        if fin && self.after_fin {
            if let Some(first) = &self.first {
                out.push(encode(first));
            }
        }
        out
    }

    fn flush(&mut self) -> Vec<Bytes> {
        self.reorder.flush().into_iter().collect()
    }
}

fn encode(event: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(event.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(event);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// A response the relay makes up: an endless, dripping or oversized stream.
fn hostile_stream(state: Arc<State>, mut entry: LogEntry) -> Response<OutBody> {
    let (tx, rx) = mpsc::channel(4);
    entry.status = 200;
    entry.streamed = true;
    let endless = state.has(Attack::EndlessStream);
    let drip = state.has(Attack::SlowDrip);
    let attack = if endless {
        Attack::EndlessStream
    } else if drip {
        Attack::SlowDrip
    } else {
        Attack::HugeFrame
    };
    state.note(entry.slot, adversary_note(attack));
    tokio::spawn(async move {
        let started = Instant::now();
        // Each hostile body ends on its own after a bound, so a client that
        // never hangs up cannot keep the relay busy forever.
        let give_up = Duration::from_secs(120);
        if endless {
            let block = Bytes::from(": keep-alive\n\n".repeat(4096));
            while started.elapsed() < give_up && tx.send(block.clone()).await.is_ok() {
                entry.response_bytes += block.len();
            }
        } else if drip {
            while started.elapsed() < give_up && tx.send(Bytes::from_static(b": .\n")).await.is_ok()
            {
                entry.response_bytes += 4;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        } else {
            let block = Bytes::from(vec![b'A'; 64 * 1024]);
            let _ = tx.send(Bytes::from_static(b"data: ")).await;
            for _ in 0..1024 {
                if tx.send(block.clone()).await.is_err() {
                    break;
                }
                entry.response_bytes += block.len();
            }
        }
        let hung_up = tx.is_closed();
        state.observe(|o| {
            if hung_up {
                o.client_hung_up += 1
            } else {
                o.responses_delivered += 1
            }
        });
        entry.duration_ms = started.elapsed().as_millis() as u64;
        let shown = format!(
            "made-up stream, {} bytes in {} ms{}",
            entry.response_bytes,
            entry.duration_ms,
            if hung_up {
                " until the client hung up"
            } else {
                " to its end"
            }
        );
        state.close(entry.slot, 200, shown);
        state.log(entry);
    });
    let headers = vec![
        ("content-type".to_string(), "text/event-stream".to_string()),
        (SECURE_CHANNEL_HEADER.to_string(), "1".to_string()),
    ];
    build(200, &headers, OutBody::Stream(rx))
}

async fn forward_buffered(
    state: Arc<State>,
    outer: OuterRequest,
    entry: LogEntry,
    started: Instant,
) -> Response<OutBody> {
    match transport::send(&state.config.upstream, &outer, &state.config.limits).await {
        Ok(r) => {
            let headers = pass_headers(&r.headers);
            state.finish_full(entry, started, r.status, headers, r.body)
        }
        Err(e) => upstream_failed(&state, entry, started, &e.to_string()),
    }
}

fn upstream_failed(
    state: &State,
    entry: LogEntry,
    started: Instant,
    why: &str,
) -> Response<OutBody> {
    state.problem(format!("the upstream server failed: {why}"));
    state.finish_full(
        entry,
        started,
        502,
        text_headers(),
        b"upstream failed".to_vec(),
    )
}

fn pass_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| !HOP_BY_HOP.contains(&k.to_ascii_lowercase().as_str()))
        .cloned()
        .collect()
}

fn json_headers() -> Vec<(String, String)> {
    vec![("content-type".into(), "application/json".into())]
}

fn text_headers() -> Vec<(String, String)> {
    vec![("content-type".into(), "text/plain".into())]
}

fn plain(status: u16, text: &'static str) -> Response<OutBody> {
    build(status, &text_headers(), OutBody::full(text))
}

/// A response with `headers`; a header hyper refuses is left out rather
/// than failing the whole response.
pub fn build(status: u16, headers: &[(String, String)], body: OutBody) -> Response<OutBody> {
    let mut builder = Response::builder().status(status);
    for (k, v) in headers {
        if hyper::header::HeaderName::from_bytes(k.as_bytes()).is_ok()
            && hyper::header::HeaderValue::from_str(v).is_ok()
        {
            builder = builder.header(k.as_str(), v.as_str());
        }
    }
    builder.body(body).unwrap_or_else(|_| {
        let mut r = Response::new(OutBody::full("relay error"));
        *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
        r
    })
}
