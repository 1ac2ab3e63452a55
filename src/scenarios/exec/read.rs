//! Reading: what came back for a call, through the driver's one
//! sealed-response reader, as an [`Answer`].

use std::ops::ControlFlow;

use crate::peer::{read_body, BodyEnd, FrameIssue, KeyUse, ResponseReader};
use crate::protocol::encoding::{b64url_decode, B64Strictness};
use crate::protocol::keys::SessionKeys;
use crate::protocol::wire::{Frame, InnerResponse};
use crate::transport::{StreamingResponse, TransportError};

use super::Answer;

/// Reads the answer to call `seq` and, when the session's keys are known,
/// opens it; returns the answer and the inner response as the transcript
/// shows it.
pub(super) async fn read_answer(
    stream: &mut StreamingResponse,
    keys: Option<(String, SessionKeys)>,
    seq: u64,
    deadline: tokio::time::Instant,
    max_body: usize,
) -> Result<(Answer, Option<String>), TransportError> {
    let mut answer = Answer {
        status: stream.status,
        headers: stream.headers.clone(),
        ..Answer::default()
    };
    let mut raw_frames: Vec<Vec<u8>> = Vec::new();
    let read = read_body(stream, deadline, max_body, false, |event| {
        raw_frames.push(event.to_vec());
        ControlFlow::Continue(())
    })
    .await?;
    answer.streamed = read.streamed;
    answer.body = read.body;
    match read.end {
        BodyEnd::Complete | BodyEnd::Stopped => {}
        BodyEnd::TimedOut => answer
            .problems
            .push("the response did not finish in time".into()),
        BodyEnd::Broke(e) => answer.problems.push(format!("the stream broke: {e}")),
        BodyEnd::EventTooLarge(e) => answer
            .problems
            .push(format!("an SSE event is too large: {e:?}")),
    }
    if read.mid_event {
        answer
            .problems
            .push("the stream ended in the middle of an event".into());
    }
    if !answer.streamed && Frame::parse_view(&answer.body).is_ok() {
        raw_frames.push(answer.body.clone());
    }
    answer.encoding = frame_encoding_problems(&raw_frames);
    let mut inner_text = None;
    if let Some((sid, keys)) = keys {
        open_frames(&mut answer, &raw_frames, &sid, &keys, seq);
        if answer.opened {
            inner_text = Some(String::from_utf8_lossy(&answer.inner_body).into_owned());
            if !answer.streamed {
                if let Ok(r) = InnerResponse::parse(&answer.inner_body) {
                    answer.inner_status = u16::try_from(r.status).ok();
                    if let Some(b) = r
                        .body
                        .as_deref()
                        .filter(|b| !super::judge::canonical_b64(b))
                    {
                        answer.encoding.push(format!(
                            "the inner response body {:?} is not canonical unpadded base64url (ENC-1)",
                            super::truncate(b, 60)
                        ));
                    }
                    let body = r
                        .body
                        .as_deref()
                        .and_then(|b| b64url_decode(b, B64Strictness::Upstream).ok())
                        .unwrap_or_default();
                    inner_text = Some(format!(
                        "{} {} {}",
                        r.status,
                        r.content_type.unwrap_or_default(),
                        String::from_utf8_lossy(&body)
                    ));
                    answer.inner_body = body;
                }
            } else {
                answer.inner_status = Some(answer.status);
            }
        }
    }
    Ok((answer, inner_text))
}

/// Opens the frames with the per-call key; if that fails, tries the
/// keys a broken server might use, so that only the scenarios about keys
/// (KS-1, KS-2) fail on a key mix-up.
fn open_frames(answer: &mut Answer, raw: &[Vec<u8>], sid: &str, keys: &SessionKeys, seq: u64) {
    let mut reader = ResponseReader::trying_every_key(sid, keys, seq);
    for frame in raw {
        reader.push(frame);
    }
    if reader
        .issues()
        .iter()
        .any(|i| matches!(i, FrameIssue::Malformed(_)))
    {
        answer
            .problems
            .push("a frame is not valid frame JSON".into());
    }
    answer.frames = reader.frames();
    if reader.frames() == 0 {
        return;
    }
    if reader.opened().len() != reader.frames() {
        answer
            .problems
            .push("no frame authenticates under the session's keys".into());
        return;
    }
    answer.opened = true;
    answer.per_call_key = reader.key() == Some(KeyUse::PerCall);
    // Strict order (RESP-1, RESP-4): every frame opened, numbered from 0,
    // ending in an authenticated fin with no fin before it. A stream with
    // no frame at all, or one that never finished, is not "in order".
    answer.in_order = reader.in_order();
    let opened = reader.opened();
    let earlier_fin = opened.iter().rev().skip(1).any(|f| f.fin);
    let last = opened.last();
    answer.fin = last.is_some_and(|f| f.fin) && !earlier_fin && answer.problems.is_empty();
    // RESP-3: a stream ends in its own frame, whose plaintext is empty; a
    // buffered answer is one fin frame that carries the InnerResponse.
    if answer.streamed && answer.fin && last.is_some_and(|f| !f.plaintext.is_empty()) {
        answer.fin = false;
        answer.problems.push(
            "the stream's fin frame carries data: the last chunk was sealed with fin instead of a separate empty fin frame".into(),
        );
    }
    if earlier_fin {
        answer
            .problems
            .push("a frame before the last one carries fin".into());
    }
    answer.inner_body = reader.plaintext();
}

/// What is not canonical in the frames exactly as the target wrote them:
/// `seq` a non-negative integer, `ct` unpadded base64url (ENC-1).
fn frame_encoding_problems(raw: &[Vec<u8>]) -> Vec<String> {
    let mut problems = Vec::new();
    for bytes in raw {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            continue;
        };
        if !v.get("seq").is_some_and(serde_json::Value::is_u64) {
            problems.push(format!(
                "a frame's seq is {:?}, not an integer",
                v.get("seq")
            ));
        }
        match v.get("ct").and_then(serde_json::Value::as_str) {
            Some(ct) if super::judge::canonical_b64(ct) => {}
            Some(ct) => problems.push(format!(
                "frame {} writes ct as {:?}, not canonical unpadded base64url (ENC-1)",
                v.get("seq")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0),
                super::truncate(ct, 60)
            )),
            None => problems.push("a frame has no ct string".into()),
        }
    }
    problems
}
