//! One relayed request: read it (bounded), check it, forward it, and pump
//! the response back. The edits in the middle are in [`super::edits`];
//! the answers made in the server's place are in [`super::fake`].

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::sync::mpsc;

use crate::protocol::names::{CALL_PATH, RELAY_ORIGIN_HEADER, SECURE_PREFIX, SESSION_PATH};
use crate::protocol::sse::SseDecoder;
use crate::protocol::wire::{ClientHello, ServerHello};
use crate::transport::{self, OutBody, OuterRequest, StreamingResponse};

use super::body::CanaryScan;
use super::edits::{buffered_edit, edit_hello, StreamEdit};
use super::fake::foreign_frames;
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
    let response = match transport::send(&state.config.upstream, &outer, &state.config.limits).await
    {
        Ok(r) => r,
        Err(e) => return upstream_failed(&state, entry, started, &e.to_string()),
    };
    let mut body = response.body.clone();
    if response.status == 200 {
        match ServerHello::parse(&response.body) {
            Ok(mut hello) => {
                if let Some(edited) = edit_hello(&state, entry.slot, &mut hello) {
                    body = edited;
                }
            }
            Err(e) => state.problem(format!("a ServerHello is malformed: {e}")),
        }
        state.observe(|o| o.hellos_answered += 1);
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
    if state.has(Attack::ForeignFrames) {
        return foreign_frames(&state, &outer, entry, started, n).await;
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
        let finding = super::judge_server_answer(
            Attack::Plaintext,
            state.config.plaintext_key.is_some(),
            response.status,
            &response.headers,
            &response.body,
        );
        state.observe(|o| {
            o.plaintext_statuses.push(response.status);
            o.server_findings.extend(finding);
        });
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
        let answer = transport::send(&state.config.upstream, &call, &state.config.limits).await;
        let (status, finding) = match &answer {
            Ok(r) => (
                r.status,
                super::judge_server_answer(Attack::Replay, false, r.status, &r.headers, &r.body),
            ),
            Err(_) => (
                0,
                super::judge_server_answer(Attack::Replay, false, 0, &[], &[]),
            ),
        };
        state.observe(|o| {
            o.replay_statuses.push(status);
            o.server_findings.extend(finding);
        });
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

/// The HTTP-log note for an exchange that `attack` bent.
pub(super) fn adversary_note(attack: Attack) -> String {
    format!("adversary ({attack}): {}", attack.description())
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

pub(super) fn upstream_failed(
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

pub(super) fn pass_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| !HOP_BY_HOP.contains(&k.to_ascii_lowercase().as_str()))
        .cloned()
        .collect()
}

pub(super) fn json_headers() -> Vec<(String, String)> {
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
