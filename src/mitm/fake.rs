//! The relay's answer in the server's place: the sealed response of another
//! session's call (`foreign-frames`), which only a party in the middle can
//! capture and hand to a retried call. Answers that stand for a whole
//! server response are server knobs (`crate::server::Bug`).

use std::time::Instant;

use hyper::Response;

use crate::protocol::error::{channel_error_body, ChannelErrorCode};
use crate::transport::{self, OutBody, OuterRequest};

use super::relay::{json_headers, pass_headers, upstream_failed};
use super::{LogEntry, State};

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
