//! The relay's answers in the server's place: the refusals (401, 409, 426)
//! and the plaintext inner response a client scenario needs, the sealed
//! response of another session, and the hostile streams (endless, a slow
//! drip, one huge event). Each answer stands in for the honest server's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Response;
use tokio::sync::mpsc;

use crate::protocol::encoding::b64url_encode;
use crate::protocol::error::{channel_error_body, ChannelErrorCode, UPGRADE_REQUIRED_BODY};
use crate::protocol::names::SECURE_CHANNEL_HEADER;
use crate::transport::{self, OutBody, OuterRequest};

use super::relay::{adversary_note, build, json_headers, pass_headers, upstream_failed};
use super::{Attack, LogEntry, State};

/// The refusal or plaintext answer the attacks in force make to the
/// `n`th call, if any: its status and body.
pub(super) fn fake_answer(state: &State, slot: Option<usize>, n: u64) -> Option<(u16, String)> {
    let refused = |status: u16, code: ChannelErrorCode, message: &str| {
        (status, channel_error_body(code, message))
    };
    if state.has(Attack::Unknown401Always) || (state.has(Attack::Unknown401Once) && n == 1) {
        state.note(
            slot,
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
        state.note(slot, adversary_note(Attack::Replay409));
        Some(refused(
            409,
            ChannelErrorCode::Replay,
            "Replayed secure call rejected",
        ))
    } else if state.has(Attack::Upgrade426) {
        state.note(slot, adversary_note(Attack::Upgrade426));
        Some((426, UPGRADE_REQUIRED_BODY.to_string()))
    } else if state.has(Attack::PlaintextFrame) {
        state.note(slot, adversary_note(Attack::PlaintextFrame));
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
    }
}

/// `foreign-frames`: the first call reaches the server but the client is
/// told its session is unknown; its retry, on a new session, gets the
/// first call's sealed response, which no honest client can open.
pub(super) async fn foreign_frames(
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

/// A response the relay makes up: an endless, dripping or oversized stream.
pub(super) fn hostile_stream(state: Arc<State>, mut entry: LogEntry) -> Response<OutBody> {
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
