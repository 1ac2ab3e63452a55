//! The one sealed-response reader: [`read_body`] takes the body off the
//! wire (buffered, or as an event stream), [`ResponseReader`] opens each
//! frame and keeps the account a judge needs: the raw frames, which opened
//! under which key, and every problem seen.
//!
//! It is strict: [`ResponseReader::in_order`] holds only when every frame
//! opened, numbered 0, 1, 2, … and the last, and only the last, is an
//! authenticated `fin`.

use std::ops::ControlFlow;

use crate::protocol::error::WireError;
use crate::protocol::keys::{
    decode_b64_into, decode_canonical_into, open_in_place, response_key, SessionKeys, SymmetricKey,
};
use crate::protocol::sse::{SseDecoder, SseOverflow};
use crate::protocol::wire::Frame;
use crate::transport::{StreamingResponse, TransportError};

/// Whether a `Content-Type` names an event stream (the one place this is
/// decided).
pub fn is_event_stream(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.trim_start()
            .get(..17)
            .is_some_and(|head| head.eq_ignore_ascii_case("text/event-stream"))
    })
}

/// Which key a frame opened under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// The per-call response key HKDF(s2c, respkey:<seq>) (KS-2): honest.
    PerCall,
    /// The session's s2c key itself.
    SessionS2c,
    /// A per-call key derived from c2s: the wrong direction.
    PerCallC2s,
    /// The session's c2s key itself.
    SessionC2s,
}

/// What went wrong with one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameIssue {
    /// The bytes are not frame JSON.
    Malformed(WireError),
    /// A frame after the authenticated fin.
    AfterFin(u64),
    /// A frame other than the next one in sequence.
    OutOfOrder {
        /// The seq that was due.
        expected: u64,
        /// The seq that came.
        got: u64,
    },
    /// The frame does not authenticate under any key tried.
    Decrypt(u64),
}

impl std::fmt::Display for FrameIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameIssue::Malformed(e) => write!(f, "a frame is not valid frame JSON ({e})"),
            FrameIssue::AfterFin(seq) => write!(f, "frame {seq} arrived after the final frame"),
            FrameIssue::OutOfOrder { expected, got } => write!(
                f,
                "frames arrived out of order: expected frame {expected}, got frame {got}"
            ),
            FrameIssue::Decrypt(seq) => {
                write!(
                    f,
                    "frame {seq} does not decrypt under this call's response key"
                )
            }
        }
    }
}

/// A frame that opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedFrame {
    /// Its seq, as the frame says (and its AAD binds).
    pub seq: u64,
    /// Whether it is the authenticated fin.
    pub fin: bool,
    /// The key it opened under.
    pub key: KeyUse,
    /// Its plaintext.
    pub plaintext: Vec<u8>,
}

/// What one pushed frame came to.
#[derive(Debug)]
pub struct Pushed<'a> {
    /// The frame's seq, when it parsed.
    pub seq: Option<u64>,
    /// The plaintext, when it opened (whatever its place in the sequence).
    pub plaintext: Option<&'a [u8]>,
    /// The first thing wrong with it: malformed, after fin, out of order
    /// (checked before opening, as the core's opener does) or not
    /// authenticating.
    pub issue: Option<FrameIssue>,
}

/// Opens the frames of one call's response, one by one, and keeps the
/// account. Each frame is opened by its own seq, so a reordered answer
/// still tells "reordered" apart from "wrong key". The first key that
/// opens a frame is the one every later frame must open under.
#[derive(Debug)]
pub struct ResponseReader {
    sid: String,
    request_seq: u64,
    candidates: Vec<(SymmetricKey, KeyUse)>,
    /// The keys a broken server might use, derived only when the honest
    /// key opens nothing (an honest answer costs one key derivation).
    fallback: Option<SessionKeys>,
    locked: Option<usize>,
    expected: u64,
    fin_in_order: bool,
    sequence_ok: bool,
    parsed: usize,
    raw: Vec<Vec<u8>>,
    keep_raw: bool,
    opened: Vec<OpenedFrame>,
    issues: Vec<FrameIssue>,
    buf: Vec<u8>,
    aad: String,
}

impl ResponseReader {
    /// A strict reader for the answer to call `request_seq`: only the
    /// per-call response key (KS-2).
    pub fn new(sid: &str, keys: &SessionKeys, request_seq: u64) -> Self {
        Self::with_keys(
            sid,
            request_seq,
            vec![(response_key(&keys.s2c, request_seq), KeyUse::PerCall)],
        )
    }

    /// A reader that, after the per-call key, tries the keys a broken
    /// server might use, so that a key mix-up is told apart from garbage.
    pub fn trying_every_key(sid: &str, keys: &SessionKeys, request_seq: u64) -> Self {
        let mut reader = Self::new(sid, keys, request_seq);
        reader.fallback = Some(keys.clone());
        reader
    }

    fn with_keys(sid: &str, request_seq: u64, candidates: Vec<(SymmetricKey, KeyUse)>) -> Self {
        ResponseReader {
            sid: sid.to_owned(),
            request_seq,
            candidates,
            fallback: None,
            locked: None,
            expected: 0,
            fin_in_order: false,
            sequence_ok: true,
            parsed: 0,
            raw: Vec::new(),
            keep_raw: true,
            opened: Vec::new(),
            issues: Vec::new(),
            buf: Vec::new(),
            aad: String::new(),
        }
    }

    /// Stops keeping copies of the raw frames (a client that only needs
    /// the plaintext).
    pub fn without_raw(mut self) -> Self {
        self.keep_raw = false;
        self
    }

    /// Parses and opens one frame (one SSE event's data, or a whole
    /// buffered body).
    pub fn push(&mut self, bytes: &[u8]) -> Pushed<'_> {
        if self.keep_raw {
            self.raw.push(bytes.to_vec());
        }
        // The shape `Frame::to_json` writes, with a `ct` that decodes as
        // canonical base64url, gives the full parser's fields: the decoder
        // is the only pass over `ct`. Anything else takes the full parser.
        if let Some(shape) = Frame::parse_shape(bytes) {
            if decode_canonical_into(shape.ct, &mut self.buf) {
                return self.account(shape.seq, shape.fin == Some(true), true);
            }
        }
        let frame = match Frame::parse_view(bytes) {
            Ok(f) => f,
            Err(e) => {
                self.sequence_ok = false;
                let issue = FrameIssue::Malformed(e);
                self.issues.push(issue.clone());
                return Pushed {
                    seq: None,
                    plaintext: None,
                    issue: Some(issue),
                };
            }
        };
        let decoded = decode_b64_into(&frame.ct, &mut self.buf).is_ok();
        self.account(frame.seq, frame.is_fin(), decoded)
    }

    /// Places a parsed frame in the sequence and opens it; its sealed
    /// bytes are in `self.buf` when `decoded`.
    fn account(&mut self, seq: u64, fin: bool, decoded: bool) -> Pushed<'_> {
        let index = self.parsed as u64;
        self.parsed += 1;
        let mut issue = if self.fin_in_order {
            Some(FrameIssue::AfterFin(seq))
        } else if seq != self.expected {
            Some(FrameIssue::OutOfOrder {
                expected: self.expected,
                got: seq,
            })
        } else {
            None
        };
        if seq != index {
            self.sequence_ok = false;
        }
        let key = if decoded { self.open(seq, fin) } else { None };
        match key {
            Some(key) => {
                if issue.is_none() {
                    self.expected += 1;
                    self.fin_in_order = fin;
                }
                self.opened.push(OpenedFrame {
                    seq,
                    fin,
                    key,
                    plaintext: std::mem::take(&mut self.buf),
                });
            }
            None => {
                self.sequence_ok = false;
                issue.get_or_insert(FrameIssue::Decrypt(seq));
            }
        }
        if let Some(i) = &issue {
            self.issues.push(i.clone());
        }
        Pushed {
            seq: Some(seq),
            plaintext: key.and_then(|_| self.opened.last().map(|f| f.plaintext.as_slice())),
            issue,
        }
    }

    /// Opens the sealed bytes in `self.buf` under the locked key, or
    /// (before any frame opened) under each candidate in turn; a failed
    /// try leaves them as they were, and success leaves the plaintext.
    fn open(&mut self, seq: u64, fin: bool) -> Option<KeyUse> {
        use std::fmt::Write;
        self.aad.clear();
        let _ = write!(
            self.aad,
            "{}:resp:{}:{}:{seq}:{}",
            crate::protocol::DOMAIN,
            self.sid,
            self.request_seq,
            u8::from(fin)
        );
        let tries = match self.locked {
            Some(i) => i..i + 1,
            None => 0..self.candidates.len(),
        };
        if let Some(used) = self.try_keys(tries, seq) {
            return Some(used);
        }
        let keys = self.fallback.take().filter(|_| self.locked.is_none())?;
        let start = self.candidates.len();
        let request_seq = self.request_seq;
        self.candidates.extend([
            (keys.s2c, KeyUse::SessionS2c),
            (response_key(&keys.c2s, request_seq), KeyUse::PerCallC2s),
            (keys.c2s, KeyUse::SessionC2s),
        ]);
        self.try_keys(start..self.candidates.len(), seq)
    }

    /// Tries the candidates in `tries` on the sealed bytes in `self.buf`;
    /// the first that opens them is locked.
    fn try_keys(&mut self, tries: std::ops::Range<usize>, seq: u64) -> Option<KeyUse> {
        for i in tries {
            let (key, used) = self.candidates[i];
            if open_in_place(&key, seq, self.aad.as_bytes(), &mut self.buf).is_ok() {
                self.locked = Some(i);
                return Some(used);
            }
        }
        None
    }

    /// Frames that parsed.
    pub fn frames(&self) -> usize {
        self.parsed
    }

    /// Every frame pushed, as it came.
    pub fn raw(&self) -> &[Vec<u8>] {
        &self.raw
    }

    /// The frames that opened, in arrival order.
    pub fn opened(&self) -> &[OpenedFrame] {
        &self.opened
    }

    /// The key the frames opened under, once one did.
    pub fn key(&self) -> Option<KeyUse> {
        self.locked.map(|i| self.candidates[i].1)
    }

    /// Everything wrong with single frames, in order.
    pub fn issues(&self) -> &[FrameIssue] {
        &self.issues
    }

    /// Whether at least one frame came and every one parsed and opened.
    pub fn all_opened(&self) -> bool {
        self.parsed > 0 && self.parsed == self.raw_count() && self.opened.len() == self.parsed
    }

    fn raw_count(&self) -> usize {
        // Without raw copies, a malformed frame still shows as an issue.
        if self.keep_raw {
            self.raw.len()
        } else {
            self.parsed
                + self
                    .issues
                    .iter()
                    .filter(|i| matches!(i, FrameIssue::Malformed(_)))
                    .count()
        }
    }

    /// Whether an authenticated fin was opened in sequence.
    pub fn finished(&self) -> bool {
        self.fin_in_order
    }

    /// Whether the last frame that came opened as an authenticated fin.
    pub fn ends_in_fin(&self) -> bool {
        self.all_opened() && self.opened.last().is_some_and(|f| f.fin)
    }

    /// Every frame opened, numbered 0, 1, 2, … in arrival order, and no
    /// fin before the last: the order alone, whether or not the answer
    /// ended (see [`ResponseReader::in_order`] for the whole check).
    pub fn numbered_in_order(&self) -> bool {
        self.all_opened() && self.sequence_ok && self.opened.iter().rev().skip(1).all(|f| !f.fin)
    }

    /// Strict order: every frame opened, numbered 0, 1, 2, …, ending in
    /// an authenticated fin and with no fin before it.
    pub fn in_order(&self) -> bool {
        self.all_opened()
            && self.sequence_ok
            && self.fin_in_order
            && self.opened.iter().rev().skip(1).all(|f| !f.fin)
    }

    /// The plaintexts of the frames that opened, ordered by seq.
    pub fn plaintext(&self) -> Vec<u8> {
        let mut frames: Vec<&OpenedFrame> = self.opened.iter().collect();
        frames.sort_by_key(|f| f.seq);
        frames
            .into_iter()
            .flat_map(|f| f.plaintext.iter().copied())
            .collect()
    }
}

/// How reading a body ended.
#[derive(Debug)]
pub enum BodyEnd {
    /// The body ended normally.
    Complete,
    /// The caller's frame handler asked to stop.
    Stopped,
    /// The deadline passed first.
    TimedOut,
    /// The stream broke off (event streams only; a buffered body returns
    /// the error instead).
    Broke(TransportError),
    /// An event exceeded the size limit.
    EventTooLarge(SseOverflow),
}

/// A body as read.
#[derive(Debug)]
pub struct BodyRead {
    /// The outer body bytes, as they came.
    pub body: Vec<u8>,
    /// Whether the answer was an event stream.
    pub streamed: bool,
    /// How the reading ended.
    pub end: BodyEnd,
    /// An event stream ended in the middle of an event.
    pub mid_event: bool,
}

/// Reads the body of `response` until it ends, the `deadline` passes or
/// `on_frame` breaks. An event stream hands each event's data to
/// `on_frame` as it completes (events at most `max_event` bytes); a
/// buffered body is handed over whole at its end, when `frame_buffered`.
pub async fn read_body(
    response: &mut StreamingResponse,
    deadline: tokio::time::Instant,
    max_event: usize,
    frame_buffered: bool,
    mut on_frame: impl FnMut(&[u8]) -> ControlFlow<()>,
) -> Result<BodyRead, TransportError> {
    let streamed = is_event_stream(response.header("content-type"));
    let mut decoder = SseDecoder::new(max_event);
    let mut read = BodyRead {
        body: Vec::new(),
        streamed,
        end: BodyEnd::Complete,
        mid_event: false,
    };
    loop {
        let chunk = match tokio::time::timeout_at(deadline, response.next_chunk()).await {
            Err(_) => {
                read.end = BodyEnd::TimedOut;
                break;
            }
            Ok(Err(e)) if streamed => {
                read.end = BodyEnd::Broke(e);
                break;
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(c))) => c,
        };
        read.body.extend_from_slice(&chunk);
        if streamed {
            match decoder.feed(&chunk) {
                Ok(events) => {
                    for event in events {
                        if on_frame(&event).is_break() {
                            read.end = BodyEnd::Stopped;
                            return Ok(read);
                        }
                    }
                }
                Err(e) => {
                    read.end = BodyEnd::EventTooLarge(e);
                    return Ok(read);
                }
            }
        }
    }
    if streamed {
        read.mid_event = !decoder.leftover().iter().all(u8::is_ascii_whitespace);
    } else if frame_buffered
        && matches!(read.end, BodyEnd::Complete)
        && on_frame(&read.body).is_break()
    {
        read.end = BodyEnd::Stopped;
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::framing::ResponseSealer;
    use crate::protocol::keys::SessionKeys;

    fn keys() -> SessionKeys {
        SessionKeys {
            c2s: [1; 32],
            s2c: [2; 32],
        }
    }

    fn sealer(key: SymmetricKey) -> ResponseSealer {
        ResponseSealer::new(key, "sid".into(), 3)
    }

    fn frames(key: SymmetricKey, parts: &[(u64, &[u8], bool)]) -> Vec<Vec<u8>> {
        let s = sealer(key);
        parts
            .iter()
            .map(|(seq, p, fin)| s.seal_at(*seq, p, *fin).to_json().into_bytes())
            .collect()
    }

    fn read(reader: &mut ResponseReader, frames: &[Vec<u8>]) {
        for f in frames {
            reader.push(f);
        }
    }

    #[test]
    fn an_honest_answer_is_in_order() {
        let per_call = response_key(&keys().s2c, 3);
        let mut r = ResponseReader::new("sid", &keys(), 3);
        read(
            &mut r,
            &frames(per_call, &[(0, b"ab", false), (1, b"c", true)]),
        );
        assert!(r.in_order() && r.ends_in_fin() && r.finished());
        assert_eq!(r.key(), Some(KeyUse::PerCall));
        assert_eq!(r.plaintext(), b"abc");
        assert!(r.issues().is_empty());
    }

    #[test]
    fn order_is_strict() {
        let per_call = response_key(&keys().s2c, 3);
        let cases: [&[(u64, &[u8], bool)]; 4] = [
            &[(0, b"a", false), (1, b"b", false)],
            &[(1, b"b", false), (0, b"a", true)],
            &[(0, b"a", true), (1, b"b", true)],
            &[(0, b"a", false), (2, b"b", true)],
        ];
        for parts in cases {
            let mut r = ResponseReader::new("sid", &keys(), 3);
            read(&mut r, &frames(per_call, parts));
            assert!(!r.in_order(), "{parts:?}");
        }
        let mut nothing = ResponseReader::new("sid", &keys(), 3);
        assert!(!nothing.in_order(), "no frame is not in order");
        nothing.push(b"{}");
        assert!(!nothing.in_order() && !nothing.all_opened());
    }

    #[test]
    fn a_key_mixup_is_named() {
        let mut strict = ResponseReader::new("sid", &keys(), 3);
        let wrong = frames(keys().s2c, &[(0, b"x", true)]);
        read(&mut strict, &wrong);
        assert_eq!(strict.issues(), &[FrameIssue::Decrypt(0)]);
        let mut lenient = ResponseReader::trying_every_key("sid", &keys(), 3);
        read(&mut lenient, &wrong);
        assert_eq!(lenient.key(), Some(KeyUse::SessionS2c));
        assert!(lenient.in_order());
    }

    #[test]
    fn the_fast_frame_path_agrees_with_the_full_parser() {
        let per_call = response_key(&keys().s2c, 3);
        let honest = sealer(per_call).seal_at(0, b"hello", true);
        let spaced = format!(" {} ", honest.to_json());
        let escaped = honest
            .to_json()
            .replacen("\"ct\":\"", "\"ct\":\"\\u0041", 0);
        for text in [honest.to_json(), spaced, escaped] {
            let view = Frame::parse_view(text.as_bytes()).unwrap();
            let full = Frame::parse(text.as_bytes()).unwrap();
            assert_eq!(
                (view.seq, &*view.ct, view.fin),
                (full.seq, &*full.ct, full.fin)
            );
        }
        let esc = r#"{"seq":0,"ct":"\u0041AAA"}"#;
        assert_eq!(&*Frame::parse_view(esc.as_bytes()).unwrap().ct, "AAAA");
        assert!(Frame::parse_view(br#"{"seq":01,"ct":"x"}"#).is_err());
    }

    #[test]
    fn frames_off_the_fast_path_open_as_the_full_parser_reads_them() {
        let per_call = response_key(&keys().s2c, 3);
        // 6 + 16 sealed bytes: 30 base64url characters, padded with "==".
        let honest = sealer(per_call).seal_at(0, b"hello!", true).to_json();
        let ct_at = honest.find("\"ct\":\"").unwrap() + 6;
        let first = honest.as_bytes()[ct_at] as char;
        // The same ct with its first character escaped, and padded: the
        // shape is canonical, the base64url is not, the full parser reads it.
        let escaped = format!(
            "{}\\u{:04x}{}",
            &honest[..ct_at],
            first as u32,
            &honest[ct_at + 1..]
        );
        let padded = honest.replace("\",\"fin", "==\",\"fin");
        for text in [honest.clone(), escaped, padded, format!(" {honest}")] {
            let mut r = ResponseReader::new("sid", &keys(), 3);
            let pushed = r.push(text.as_bytes());
            assert_eq!(pushed.plaintext, Some(&b"hello!"[..]), "{text}");
            assert!(r.in_order(), "{text}");
        }
        let quoted = honest.replacen(first, "\"", 1);
        let mut r = ResponseReader::new("sid", &keys(), 3);
        assert!(matches!(
            r.push(quoted.as_bytes()).issue,
            Some(FrameIssue::Malformed(_) | FrameIssue::Decrypt(_))
        ));
    }

    #[test]
    fn event_streams_are_recognised_once() {
        assert!(is_event_stream(Some("text/event-stream")));
        assert!(is_event_stream(Some(" Text/Event-Stream; charset=utf-8")));
        assert!(!is_event_stream(Some("application/json")));
        assert!(!is_event_stream(None));
    }
}
