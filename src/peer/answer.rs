//! [`Answer`]: everything that came back for one step, as facts and
//! never as a verdict. Only the driver (`peer/`) builds one; the judge (`crate::judge`) is the only code that holds one
//! against what the protocol requires.

use std::ops::ControlFlow;
use std::time::Duration;

use serde_json::Value;

use super::{read_body, BodyEnd, FrameIssue, KeyUse, ResponseReader};
use crate::protocol::encoding::{b64url_decode, B64Strictness};
use crate::protocol::keys::SessionKeys;
use crate::protocol::wire::{Frame, InnerResponse};
use crate::transport::{StreamingResponse, TransportError};

/// How an exchange ended. A timeout is an event the judge weighs, not a
/// verdict: holding a request whose framing promised bytes never sent is
/// not the same as leaving a whole request unanswered.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Ending {
    /// An HTTP answer came.
    #[default]
    Answered,
    /// The connection closed without any answer.
    Closed,
    /// The target held an incomplete request this long without answering
    /// (the request promised bytes never sent).
    Held {
        /// How long it was held, in seconds.
        secs: f64,
    },
    /// No answer in time to a whole request.
    TimedOut {
        /// How long the engine waited, in seconds.
        secs: f64,
    },
    /// The connection dropped or broke HTTP.
    Dropped(String),
}

/// The encoding a value the target wrote must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Unpadded base64url (ENC-1).
    B64Url,
    /// A signature: `0x` + 130 lowercase hex digits (ENC-2) whose `v` is 27
    /// or 28 (ID-3).
    Signature,
    /// A frame's `seq`: a non-negative JSON integer.
    FrameSeq,
}

/// One value the target wrote, exactly as written, with the encoding it
/// must have.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    /// Where it was written: `encPub`, `sid`, `signature`, `frame 0 ct`,
    /// `frame seq`, `inner body`.
    pub place: String,
    /// The encoding it must have.
    pub encoding: Encoding,
    /// The JSON value as written; `None` when the field was missing.
    pub value: Option<Value>,
}

/// What the relay in front of an agent (`--via-relay`) said on its own
/// behalf: an answer the agent never gave, or information the relay added
/// to the agent's answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelayFacts {
    /// The relay's own error code when the answer is the relay's
    /// (`rate_limited`, `agent_offline`, `bad_host_response`,
    /// `tunnel_closed`, `gateway_timeout`, `body_too_large`, …).
    pub own_error: Option<String>,
    /// `x-relay-region`.
    pub region: Option<String>,
    /// `x-relay-machine`.
    pub machine: Option<String>,
    /// `server-timing`.
    pub server_timing: Option<String>,
}

/// Everything that came back for one step: the outer answer, the frames
/// and their order and fin facts, the inner response, what the target
/// emitted encoding by encoding, and how the exchange ended.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// Outer HTTP status (0: no HTTP answer, see [`Answer::ending`]).
    pub status: u16,
    /// Outer response headers, in wire order.
    pub headers: Vec<(String, String)>,
    /// Outer body bytes as they came.
    pub body: Vec<u8>,
    /// The answer was an event stream.
    pub streamed: bool,
    /// Frames parsed.
    pub frames: usize,
    /// Every frame opened under one of the session's keys.
    pub opened: bool,
    /// They opened under the per-call response key (KS-2).
    pub per_call_key: bool,
    /// Every frame opened, numbered 0, 1, 2, … ending in an authenticated
    /// fin (RESP-1, RESP-4).
    pub in_order: bool,
    /// The last frame, and only it, is an authenticated fin; a stream's fin
    /// frame is empty (RESP-3).
    pub fin: bool,
    /// An authenticated fin opened in sequence (whatever came after it).
    pub finished: bool,
    /// A stream's fin frame carries data instead of being a separate empty
    /// frame (RESP-3).
    pub fin_carries_data: bool,
    /// The first thing wrong with a single frame, as the reader saw it.
    pub frame_issue: Option<FrameIssue>,
    /// What was wrong with the frames or the body, in words.
    pub problems: Vec<String>,
    /// Values the target wrote, each with the encoding it must have.
    pub emitted: Vec<Emitted>,
    /// The inner status (a streamed answer: the outer status).
    pub inner_status: Option<u16>,
    /// The inner body: decoded from a buffered InnerResponse, or the
    /// stream's plaintext.
    pub inner_body: Vec<u8>,
    /// The inner response as a transcript shows it.
    pub inner_text: Option<String>,
    /// The demo app's execution counter, when the inner body reports one.
    pub executions: Option<u64>,
    /// The counter of the conversation's previous counted call.
    pub previous_executions: Option<u64>,
    /// A handshake: whether the ServerHello recovers to the pinned address
    /// over the transcript of the hello as sent (`None`: no ServerHello).
    pub verified: Option<bool>,
    /// A handshake: the ServerHello's `expiresAt`.
    pub expires_at: Option<i64>,
    /// How the exchange ended.
    pub ending: Ending,
    /// What the relay said on its own behalf (`--via-relay`).
    pub relay: RelayFacts,
}

impl Answer {
    /// An outer header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The time the exchange was held or waited on, when it did not end in
    /// an answer.
    pub fn waited(&self) -> Option<Duration> {
        match self.ending {
            Ending::Held { secs } | Ending::TimedOut { secs } => {
                Some(Duration::from_secs_f64(secs))
            }
            _ => None,
        }
    }
}

/// The values of a ServerHello as the target wrote them, each with its
/// encoding (ENC-1, ENC-2, ID-3); a body that is not JSON gives none.
pub fn hello_emitted(body: &[u8]) -> Vec<Emitted> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    [
        ("encPub", Encoding::B64Url),
        ("sid", Encoding::B64Url),
        ("signature", Encoding::Signature),
    ]
    .into_iter()
    .map(|(field, encoding)| Emitted {
        place: field.into(),
        encoding,
        value: v.get(field).cloned(),
    })
    .collect()
}

/// The values of the frames as the target wrote them: each `seq` and `ct`.
pub fn frames_emitted(raw: &[Vec<u8>]) -> Vec<Emitted> {
    let mut out = Vec::new();
    for bytes in raw {
        let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
            continue;
        };
        let seq = v.get("seq").cloned();
        let n = seq.as_ref().and_then(Value::as_u64).unwrap_or(0);
        out.push(Emitted {
            place: "frame seq".into(),
            encoding: Encoding::FrameSeq,
            value: seq,
        });
        out.push(Emitted {
            place: format!("frame {n} ct"),
            encoding: Encoding::B64Url,
            value: v.get("ct").cloned(),
        });
    }
    out
}

/// Reads the answer to call `seq` off `stream` and, when the session's
/// keys are known, opens it with the one sealed-response reader (trying
/// the keys a broken server might use, so only the key scenarios fail on a
/// key mix-up).
pub async fn read_call_answer(
    stream: &mut StreamingResponse,
    keys: Option<(&str, &SessionKeys)>,
    seq: u64,
    deadline: tokio::time::Instant,
    max_body: usize,
) -> Result<Answer, TransportError> {
    let started = tokio::time::Instant::now();
    let mut answer = Answer {
        status: stream.status,
        ..Answer::default()
    };
    let mut raw_frames: Vec<Vec<u8>> = Vec::new();
    let read = read_body(stream, deadline, max_body, false, |event| {
        raw_frames.push(event.to_vec());
        ControlFlow::Continue(())
    })
    .await?;
    // The head is read; the stream has no more use for it.
    answer.headers = std::mem::take(&mut stream.headers);
    answer.streamed = read.streamed;
    answer.body = read.body;
    match read.end {
        BodyEnd::Complete | BodyEnd::Stopped => {}
        BodyEnd::TimedOut => {
            answer
                .problems
                .push("the response did not finish in time".into());
            answer.ending = Ending::TimedOut {
                secs: started.elapsed().as_secs_f64(),
            };
        }
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
    // A buffered body is its one frame: lent, not copied.
    let buffered_frame = !answer.streamed && Frame::parse_view(&answer.body).is_ok();
    if buffered_frame {
        raw_frames.push(std::mem::take(&mut answer.body));
    }
    answer.emitted = frames_emitted(&raw_frames);
    if let Some((sid, keys)) = keys {
        open_frames(&mut answer, &raw_frames, sid, keys, seq);
    }
    if buffered_frame {
        answer.body = raw_frames.pop().unwrap_or_default();
    }
    // Frames open only under the session's keys.
    if answer.opened && answer.streamed {
        answer.inner_status = Some(answer.status);
        answer.inner_text = Some(String::from_utf8_lossy(&answer.inner_body).into_owned());
    } else if answer.opened {
        match InnerResponse::parse(&answer.inner_body) {
            Ok(r) => {
                answer.inner_status = u16::try_from(r.status).ok();
                if let Some(b) = r.body.as_deref() {
                    answer.emitted.push(Emitted {
                        place: "inner body".into(),
                        encoding: Encoding::B64Url,
                        value: Some(Value::from(b)),
                    });
                }
                let body = r
                    .body
                    .as_deref()
                    .and_then(|b| b64url_decode(b, B64Strictness::Upstream).ok())
                    .unwrap_or_default();
                answer.inner_text = Some(format!(
                    "{} {} {}",
                    r.status,
                    r.content_type.unwrap_or_default(),
                    String::from_utf8_lossy(&body)
                ));
                answer.inner_body = body;
            }
            Err(_) => {
                answer.inner_text = Some(String::from_utf8_lossy(&answer.inner_body).into_owned());
            }
        }
    }
    answer.executions = serde_json::from_slice::<Value>(&answer.inner_body)
        .ok()
        .and_then(|v| v.get("executions").and_then(Value::as_u64));
    Ok(answer)
}

/// Opens the frames and records the order, fin and key facts.
fn open_frames(answer: &mut Answer, raw: &[Vec<u8>], sid: &str, keys: &SessionKeys, seq: u64) {
    let mut reader = ResponseReader::trying_every_key(sid, keys, seq).without_raw();
    for frame in raw {
        reader.push(frame);
    }
    answer.frame_issue = reader.issues().first().cloned();
    answer.finished = reader.finished();
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
    // Strict order (RESP-1, RESP-4): a stream with no frame at all, or one
    // that never finished, is not "in order".
    answer.in_order = reader.in_order();
    let opened = reader.opened();
    let earlier_fin = opened.iter().rev().skip(1).any(|f| f.fin);
    let last = opened.last();
    answer.fin = last.is_some_and(|f| f.fin) && !earlier_fin && answer.problems.is_empty();
    // RESP-3: a stream ends in its own frame, whose plaintext is empty; a
    // buffered answer is one fin frame that carries the InnerResponse.
    if answer.streamed && answer.fin && last.is_some_and(|f| !f.plaintext.is_empty()) {
        answer.fin = false;
        answer.fin_carries_data = true;
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
