//! The normal form of a target's answer: what two implementations must
//! agree on, with everything that differs by design (session ids, keys,
//! nonces, ciphertext, timings, message wording) abstracted away.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::netfuzz::exec::Outcome;
use crate::netfuzz::oracle::Firing as Verdict;
use crate::peer::Ending;
use crate::protocol::sse::SseDecoder;
use crate::protocol::wire::{CodedErrorBody, Frame, InnerResponse};
use crate::report::{Exchange, ScenarioResult};

/// One outer answer, reduced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// The outer status, or `closed` / `dropped` / `timeout` / `skipped`.
    pub outer: String,
    /// The channel error code of a refusal, if the body carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The shape of the outer body (see [`json_shape`]); for a sealed
    /// answer, `frames`.
    pub body: String,
    /// Frames that opened, for a sealed answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<usize>,
    /// Whether the last frame carried `fin`, for a sealed answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fin: Option<bool>,
    /// The inner status of a buffered sealed answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner_status: Option<u16>,
    /// The shape of the inner body of a sealed answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner_body: Option<String>,
}

/// A target's answer to one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NormalForm {
    /// Which check fired first: for a scenario, its verdict and the step
    /// that decided it; for a fuzz case, the oracle signature (`-` when
    /// none fired).
    pub first_check: String,
    /// The answers, one per outer exchange, in order.
    pub answers: Vec<Answer>,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.outer)?;
        if let Some(c) = &self.code {
            write!(f, " {c}")?;
        }
        write!(f, " {}", self.body)?;
        if let Some(n) = self.frames {
            write!(f, " frames={n}")?;
        }
        if let Some(fin) = self.fin {
            write!(f, " fin={fin}")?;
        }
        if let Some(s) = self.inner_status {
            write!(f, " inner={s}")?;
        }
        if let Some(b) = &self.inner_body {
            write!(f, " inner-body={b}")?;
        }
        Ok(())
    }
}

impl fmt::Display for NormalForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.first_check)?;
        for a in &self.answers {
            write!(f, " | {a}")?;
        }
        Ok(())
    }
}

/// The shape of a body: JSON values become their types (`str`, `num`,
/// `bool`, `null`), objects keep their keys sorted, arrays show their
/// first element; anything else is `empty`, `text` or `bytes`.
pub fn json_shape(bytes: &[u8]) -> String {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return "empty".into();
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => value_shape(&v, 0),
        Err(_) if std::str::from_utf8(bytes).is_ok() => "text".into(),
        Err(_) => "bytes".into(),
    }
}

fn value_shape(v: &Value, depth: usize) -> String {
    if depth > 4 {
        return "…".into();
    }
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "num".into(),
        Value::String(_) => "str".into(),
        Value::Array(a) => match a.first() {
            Some(x) => format!("[{}]", value_shape(x, depth + 1)),
            None => "[]".into(),
        },
        Value::Object(m) => {
            let mut keys: Vec<_> = m.iter().collect();
            keys.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = keys
                .iter()
                .map(|(k, x)| format!("{k}:{}", value_shape(x, depth + 1)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
    }
}

fn error_code(body: &[u8]) -> Option<String> {
    CodedErrorBody::parse(body).ok().and_then(|c| c.code)
}

/// The normal form of one fuzz step's outcome, from the answer the engine
/// read (a 200 answer to a call opened with the session it ran on).
pub fn of_outcome(outcome: &Outcome) -> Answer {
    let word = |w: &str| Answer {
        outer: w.into(),
        code: None,
        body: "-".into(),
        frames: None,
        fin: None,
        inner_status: None,
        inner_body: None,
    };
    let r = &outcome.answer;
    if outcome.skipped.is_some() {
        return word("skipped");
    }
    if outcome.slow.is_some() {
        return word("held");
    }
    match &r.ending {
        Ending::Closed => word("closed"),
        Ending::Dropped(_) => word("dropped"),
        Ending::TimedOut { .. } | Ending::Held { .. } => word("timeout"),
        Ending::Answered => {
            let mut a = Answer {
                code: error_code(&r.body),
                body: json_shape(&r.body),
                ..word(&r.status.to_string())
            };
            if r.status == 200 && outcome.seq.is_some() {
                a.body = "frames".into();
                a.frames = Some(r.frames);
                a.fin = Some(r.finished);
                a.inner_status = if r.streamed { None } else { r.inner_status };
                a.inner_body = Some(if r.streamed {
                    format!("stream({} frame(s))", r.frames)
                } else {
                    json_shape(&r.inner_body)
                });
            }
            a
        }
    }
}

/// The normal form of a fuzz case on one target: the oracle that fired
/// (if any) and each step's answer.
pub fn of_case(verdict: Option<&Verdict>, answers: Vec<Answer>) -> NormalForm {
    NormalForm {
        first_check: verdict
            .map(|v| v.signature.to_string())
            .unwrap_or_else(|| "-".into()),
        answers,
    }
}

/// The normal form of one scenario run, from its recorded transcript: the
/// verdict and deciding step, then each exchange but the accepted hellos.
/// Frames are counted from the recorded body; a body the transcript cut
/// short leaves them unknown.
pub fn of_scenario(r: &ScenarioResult) -> NormalForm {
    let step = r
        .reason
        .as_deref()
        .filter(|_| !matches!(r.verdict, crate::report::Verdict::Pass))
        .and_then(|reason| reason.split(':').next())
        .map(|s| format!(" at {s}"))
        .unwrap_or_default();
    NormalForm {
        first_check: format!("{}{step}", r.verdict.label()),
        answers: r
            .transcript
            .iter()
            // Whether a step opens a fresh session or reuses a pooled one
            // depends on the target's handshake budget, not on the target:
            // an accepted hello is the scenario verdict's to judge.
            // The same holds for a fresh session the engine opens inside a
            // step (its exchange carries the step's action, not `handshake`).
            .filter(|x| {
                !(x.status == 200
                    && (x.action == "handshake"
                        || x.request_line
                            .contains(crate::protocol::names::SESSION_PATH)))
            })
            .map(of_exchange)
            .collect(),
    }
}

/// The normal form of a recorded scenario exchange.
pub fn of_exchange(x: &Exchange) -> Answer {
    let body = x.response_body.as_bytes();
    let cut = x.response_body.ends_with(" bytes)") && x.response_body.contains("…(");
    let mut a = Answer {
        outer: x.status.to_string(),
        code: error_code(body),
        body: if cut { "long".into() } else { json_shape(body) },
        frames: None,
        fin: None,
        inner_status: None,
        inner_body: None,
    };
    if x.status == 200 && x.inner_response.is_some() && !cut {
        let frames: Vec<Frame> = match Frame::parse(body) {
            Ok(f) => vec![f],
            Err(_) => {
                let mut d = SseDecoder::new(body.len() + 1);
                d.feed(body)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|e| Frame::parse(e).ok())
                    .collect()
            }
        };
        a.body = "frames".into();
        a.frames = Some(frames.len());
        a.fin = Some(frames.last().is_some_and(Frame::is_fin));
    }
    if let Some(inner) = &x.inner_response {
        // Buffered answers are recorded as "STATUS CONTENT-TYPE BODY".
        let mut parts = inner.splitn(3, ' ');
        let status = parts.next().and_then(|s| s.parse::<u16>().ok());
        match status {
            Some(s) if InnerResponse::parse(inner.as_bytes()).is_err() => {
                a.inner_status = Some(s);
                let _content_type = parts.next();
                a.inner_body = Some(json_shape(parts.next().unwrap_or("").as_bytes()));
            }
            _ => a.inner_body = Some("stream".into()),
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_keep_keys_and_types_only() {
        assert_eq!(
            json_shape(br#"{"error":{"type":"x","code":"secure_replay","message":"m"}}"#),
            "{error:{code:str,message:str,type:str}}"
        );
        assert_eq!(json_shape(b"[1,2]"), "[num]");
        assert_eq!(json_shape(b"  "), "empty");
        assert_eq!(json_shape(b"not json"), "text");
        assert_eq!(json_shape(&[0xff, 0xfe]), "bytes");
    }

    #[test]
    fn an_exchange_loses_its_values() {
        let x = Exchange {
            status: 409,
            response_body: r#"{"error":{"code":"secure_replay","message":"Replay","type":"secure_channel_error"}}"#.into(),
            ..Exchange::default()
        };
        let a = of_exchange(&x);
        assert_eq!(a.code.as_deref(), Some("secure_replay"));
        assert_eq!(
            a.to_string(),
            "409 secure_replay {error:{code:str,message:str,type:str}}"
        );
        let ok = Exchange {
            status: 200,
            response_body: r#"{"seq":0,"ct":"AAAA","fin":true}"#.into(),
            inner_response: Some("200 application/json {\"executions\":1}".into()),
            ..Exchange::default()
        };
        assert_eq!(
            of_exchange(&ok).to_string(),
            "200 frames frames=1 fin=true inner=200 inner-body={executions:num}"
        );
    }
}
