//! The strict reading of a call's sealed answer, as a client that takes it
//! or refuses it reads it: frame by frame as the answer arrives, each
//! opened piece handed on at once, and the first thing wrong is a
//! [`StrictError`]. The client hooks bend exactly the checks a client knob
//! names; the honest hooks keep them all. What came back is an
//! [`Answer`], built here as every answer is in `peer/`.

use std::ops::ControlFlow;
use std::time::Duration;

use super::{read_body, Answer, BodyEnd, FrameIssue, ResponseReader};
use crate::protocol::client_hooks::ClientResponseHooks;
use crate::protocol::encoding::{b64url_decode, B64Strictness};
use crate::protocol::error::FrameError;
use crate::protocol::wire::{Frame, InnerResponse};
use crate::transport::{StreamingResponse, TransportError};

/// Why a strict client does not take an answer.
#[derive(Debug, thiserror::Error)]
pub enum StrictError {
    /// The network failed, or the answer was too slow or too large.
    #[error("could not talk to the server: {0}")]
    Transport(#[from] TransportError),
    /// The answer stopped before its authenticated final frame (RESP-5).
    #[error("the response was cut short: {detail}")]
    Truncated {
        /// What was received before the end.
        detail: String,
    },
    /// The answer is something the protocol does not allow.
    #[error("the server broke the secure channel protocol while {during}: {detail}")]
    Protocol {
        /// What the reader was doing.
        during: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A buffered answer with an outer status other than 200: the body as
    /// it came, for the caller to read the refusal in.
    #[error("the server answered HTTP {status}")]
    Status {
        /// The outer status.
        status: u16,
        /// The outer body.
        body: Vec<u8>,
    },
}

fn protocol(during: &'static str, detail: impl ToString) -> StrictError {
    StrictError::Protocol {
        during,
        detail: detail.to_string(),
    }
}

/// How one answer is read: the reader for this call, the spare readers a
/// knob allows (this call's, for a frame taken as final whatever its fin
/// says; an earlier session's), the hooks, and the limits.
pub struct StrictRead<'h> {
    /// The reader for this call's keys and seq.
    pub reader: ResponseReader,
    /// Fresh readers a buffered answer the first refused is tried with.
    pub spares: Vec<ResponseReader>,
    /// The checks kept (honest: every one).
    pub hooks: &'h (dyn ClientResponseHooks + Sync),
    /// The largest buffered body, and the largest stream event.
    pub max_body: usize,
    /// How long a buffered answer may take.
    pub response_timeout: Duration,
    /// How long a streamed answer may take from head to end.
    pub stream_time_limit: Duration,
}

impl StrictRead<'_> {
    /// Reads the answer off `response`, handing each piece of the inner
    /// body to `on_body` as soon as its frame opens (for a stream, every
    /// frame; for a buffered answer, the whole body once). On success the
    /// answer holds the inner status, content type and body, whether it
    /// streamed, and the frames opened.
    pub async fn read(
        self,
        response: &mut StreamingResponse,
        on_body: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<Answer, StrictError> {
        if super::is_event_stream(response.header("content-type")) {
            read_stream(response, self, on_body).await
        } else {
            read_buffered(response, self, on_body).await
        }
    }
}

/// Opens one frame through the shared reader and applies the client's
/// strictness: any issue is an error, except a reordered frame that opened
/// when the reorder knob is on.
fn open_frame(
    reader: &mut ResponseReader,
    hooks: &(dyn ClientResponseHooks + Sync),
    stage: &'static str,
    bytes: &[u8],
) -> Result<Vec<u8>, StrictError> {
    let pushed = reader.push(bytes);
    let plaintext = pushed.plaintext.map(<[u8]>::to_vec);
    match (pushed.issue, plaintext) {
        (None, Some(p)) => Ok(p),
        (Some(FrameIssue::OutOfOrder { .. }), Some(p)) if hooks.accept_out_of_order() => Ok(p),
        (Some(FrameIssue::OutOfOrder { got, .. }), None) if hooks.accept_out_of_order() => Err(
            protocol("opening a response frame", FrameError::Decrypt(got)),
        ),
        (Some(FrameIssue::Malformed(e)), _) => Err(protocol(stage, e)),
        (Some(issue), _) => Err(protocol("opening the response", issue)),
        (None, None) => Err(protocol("opening the response", "the frame did not open")),
    }
}

/// The end-of-response check (RESP-5): an authenticated fin, unless the
/// missing-fin knob is on.
fn check_fin(
    reader: &ResponseReader,
    hooks: &(dyn ClientResponseHooks + Sync),
) -> Result<(), StrictError> {
    if reader.opened().iter().any(|f| f.fin) || hooks.accept_without_fin() {
        return Ok(());
    }
    Err(StrictError::Truncated {
        detail: format!(
            "{} frame(s) arrived but none was the authenticated final frame",
            reader.opened().len()
        ),
    })
}

/// The answer's facts once the frames opened.
fn taken(
    response: &StreamingResponse,
    reader: &ResponseReader,
    streamed: bool,
    inner: (u16, Option<String>, Vec<u8>),
) -> Answer {
    let (inner_status, inner_content_type, inner_body) = inner;
    Answer {
        status: response.status,
        headers: response.headers.clone(),
        streamed,
        frames: reader.opened().len(),
        opened: !reader.opened().is_empty(),
        key: reader.key(),
        per_call_key: reader.key() == Some(super::KeyUse::PerCall),
        fin: reader.opened().iter().any(|f| f.fin),
        inner_status: Some(inner_status),
        inner_content_type,
        inner_body,
        ..Answer::default()
    }
}

async fn read_stream(
    response: &mut StreamingResponse,
    how: StrictRead<'_>,
    on_body: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<Answer, StrictError> {
    let StrictRead {
        mut reader, hooks, ..
    } = how;
    let limit = how.stream_time_limit;
    let deadline = tokio::time::Instant::now() + limit;
    let content_type = response.header("content-type").map(str::to_string);
    let mut body = Vec::new();
    let mut failed = None;
    let read = read_body(
        response,
        deadline,
        how.max_body,
        false,
        |event| match open_frame(&mut reader, hooks, "reading a stream frame", event) {
            Ok(plaintext) => {
                on_body(&plaintext);
                body.extend_from_slice(&plaintext);
                let at_fin = reader.opened().last().is_some_and(|f| f.fin);
                if at_fin && hooks.stop_at_first_fin() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        },
    )
    .await?;
    if let Some(e) = failed {
        return Err(e);
    }
    let fin = reader.opened().iter().any(|f| f.fin);
    match read.end {
        BodyEnd::Complete | BodyEnd::Stopped => {}
        // The idle timeout bounds each wait; this bounds a peer that drips
        // just often enough to never trip it.
        BodyEnd::TimedOut => {
            return Err(StrictError::Transport(TransportError::Timeout {
                url: response.url().to_string(),
                during: "reading the event stream (whole-stream time limit)",
                after: limit,
            }))
        }
        // The body broke off mid-transfer: after fin that is harmless
        // noise; before it, the answer is incomplete.
        BodyEnd::Broke(TransportError::Protocol { detail, .. }) => {
            if !fin {
                return Err(StrictError::Truncated {
                    detail: format!(
                        "the stream broke off after {} frame(s) without the final frame ({detail})",
                        reader.opened().len()
                    ),
                });
            }
        }
        BodyEnd::Broke(e) => return Err(e.into()),
        BodyEnd::EventTooLarge(e) => {
            return Err(protocol(
                "reading the event stream",
                format!("an event exceeds {} bytes", e.limit),
            ))
        }
    }
    if !fin && read.mid_event && !hooks.accept_without_fin() {
        return Err(StrictError::Truncated {
            detail: format!(
                "the stream ended in the middle of an event, after {} complete frame(s)",
                reader.opened().len()
            ),
        });
    }
    check_fin(&reader, hooks)?;
    let inner = (response.status, content_type, body);
    Ok(taken(response, &reader, true, inner))
}

async fn read_buffered(
    response: &mut StreamingResponse,
    how: StrictRead<'_>,
    on_body: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<Answer, StrictError> {
    let StrictRead {
        mut reader,
        spares,
        hooks,
        ..
    } = how;
    let status = response.status;
    let deadline = tokio::time::Instant::now() + how.response_timeout;
    let read = read_body(response, deadline, how.max_body, false, |_| {
        ControlFlow::Continue(())
    })
    .await?;
    if let BodyEnd::TimedOut = read.end {
        return Err(StrictError::Transport(TransportError::Timeout {
            url: response.url().to_string(),
            during: "reading the response body",
            after: how.response_timeout,
        }));
    }
    let raw = read.body;
    if status != 200 {
        return Err(StrictError::Status { status, body: raw });
    }
    let plaintext = match open_frame(&mut reader, hooks, "reading the response frame", &raw) {
        Ok(p) => {
            check_fin(&reader, hooks)?;
            p
        }
        Err(e) => match bent_buffered(&raw, spares, hooks) {
            Some((p, r)) => {
                reader = r.unwrap_or(reader);
                p
            }
            None => return Err(e),
        },
    };
    let inner =
        InnerResponse::parse(&plaintext).map_err(|e| protocol("reading the inner response", e))?;
    let inner_status = u16::try_from(inner.status)
        .ok()
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| {
            protocol(
                "reading the inner response",
                format!("status {} is not an HTTP status", inner.status),
            )
        })?;
    let body = match &inner.body {
        Some(b) => b64url_decode(b, B64Strictness::Upstream)
            .map_err(|e| protocol("decoding the inner body", e))?,
        None => Vec::new(),
    };
    on_body(&body);
    let mut answer = taken(
        response,
        &reader,
        false,
        (inner_status, inner.content_type, body),
    );
    answer.body = raw;
    Ok(answer)
}

/// What the reading knobs make of a buffered answer the honest reader
/// refused: the plaintext, and the reader that opened it (`None` when
/// nothing was opened at all). `spares` are fresh readers: this call's
/// (for a frame opened as final whatever its fin flag says) and the
/// earlier session's.
fn bent_buffered(
    raw: &[u8],
    spares: Vec<ResponseReader>,
    hooks: &(dyn ClientResponseHooks + Sync),
) -> Option<(Vec<u8>, Option<ResponseReader>)> {
    if hooks.accept_plaintext_response()
        && Frame::parse(raw).is_err()
        && InnerResponse::parse(raw).is_ok()
    {
        return Some((raw.to_vec(), None));
    }
    let as_final = Frame::parse(raw).ok().map(|mut f| {
        f.fin = Some(true);
        f.to_json().into_bytes()
    });
    for mut r in spares {
        for bytes in [Some(raw.to_vec()), as_final.clone()].into_iter().flatten() {
            if bytes != raw && !hooks.accept_without_fin() {
                continue;
            }
            let mut tried = r;
            if let Ok(p) = open_frame(&mut tried, hooks, "reading the response frame", &bytes) {
                return Some((p, Some(tried)));
            }
            r = tried;
        }
    }
    None
}
