//! Runs a case's steps against a target: the session the steps share, the
//! bytes each step puts on the wire and what came back.

use std::time::{Duration, Instant};

use crate::protocol::session::{ClientSession, ReplayWindow};
use crate::protocol::wire::{InnerRequest, ServerHello};
use crate::rng::SeededRandom;
use crate::transport::{Limits, OuterRequest, TransportError};

use super::case::{Auth, ByteEdit, CallStep, EnvelopeEdit, Framing, Inner, SeqAt, Step};

use crate::peer::{self, Offer, RateLimitPolicy, RELAY_HEADER};

/// The fuzzer's view of the one [`peer::Target`]: the target, and how long
/// the fuzzer waits on it where a case asks it to wait.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    /// The target: where, which agent, the key, the relay marker, the
    /// limits and the handshake budget.
    pub target: peer::Target,
    /// Longest wait for a session to expire; a later expiry skips the step.
    pub expiry_wait: Duration,
    /// Longest wait for an answer to an incomplete request (framing that
    /// promises bytes never sent); held longer, it is a hang.
    pub slow_request_limit: Duration,
}

/// Why a run cannot go on (as opposed to a finding).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The target refused or failed the honest handshake.
    #[error("the honest handshake failed: {0}")]
    Handshake(String),
    /// The target could not be reached.
    #[error("{0}")]
    Transport(#[from] TransportError),
}

/// The fuzzer's handshake budget: the driver's one pacer.
pub use crate::peer::HandshakePacer as HandshakeBudget;

/// An open session and the seqs it has used.
#[derive(Debug)]
pub struct Session {
    session: ClientSession,
    next: u64,
    /// The seq of the latest call made on it.
    last_seq: u64,
    /// The window an honest target holds after the answers seen so far: a
    /// seq is marked exactly when its call was answered 200 (CALL-4).
    window: ReplayWindow,
    /// Whether a step may have moved the target's window unpredictably.
    pub burned: bool,
}

impl Session {
    /// Performs an honest handshake, waiting on the budget and on 429.
    pub async fn open(
        info: &TargetInfo,
        rng: &mut SeededRandom,
        budget: &HandshakeBudget,
    ) -> Result<Session, ExecError> {
        let offer = Offer::random(info.target.address, rng);
        let reply = peer::post_hello(
            &info.target,
            offer.body(),
            budget,
            RateLimitPolicy::new(7, Duration::from_secs(120)),
        )
        .await?;
        let response = reply.response;
        if response.status == 429 {
            return Err(ExecError::Handshake(
                "still rate limited (429) after eight tries".into(),
            ));
        }
        if response.status != 200 {
            return Err(ExecError::Handshake(format!(
                "HTTP {}: {}",
                response.status,
                lossy(&response.body, 300)
            )));
        }
        let hello = ServerHello::parse(&response.body)
            .map_err(|e| ExecError::Handshake(format!("bad ServerHello: {e}")))?;
        let session = offer
            .finish(&hello)
            .map_err(|e| ExecError::Handshake(e.to_string()))?;
        Ok(Session::new(session))
    }

    fn new(session: ClientSession) -> Session {
        Session {
            session,
            next: 1,
            last_seq: 0,
            window: ReplayWindow::new(),
            burned: false,
        }
    }

    /// Whether the session can take another call at `now`.
    pub fn usable(&self, now: i64) -> bool {
        !self.burned && self.session.usable_at(now, 5) && self.next < (1 << 52)
    }

    /// The seq a call step is sealed with; moves the session's counter.
    fn seq_for(&mut self, call: &CallStep) -> u64 {
        let highest = self.next - 1;
        let seq = match (call.at, call.seq) {
            (Some(SeqAt::Ahead { by }), _) => {
                let s = highest.saturating_add(by.max(1));
                self.next = s.saturating_add(1);
                s
            }
            (Some(SeqAt::Behind { by }), _) => highest.saturating_sub(by),
            (Some(SeqAt::Same), _) => self.last_seq,
            (None, Some(s)) => {
                if s >= self.next {
                    self.burned = true;
                }
                s
            }
            (None, None) => {
                let s = self.next;
                self.next += 1;
                s
            }
        };
        self.last_seq = seq;
        seq
    }
}

/// What came back for one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A complete HTTP response.
    Http {
        /// Status.
        status: u16,
        /// Content type.
        content_type: Option<String>,
        /// Body.
        body: Vec<u8>,
    },
    /// The connection closed without any answer (raw framing only).
    Closed,
    /// The connection dropped or broke HTTP.
    Dropped(String),
    /// No answer in time.
    Timeout(String),
    /// An incomplete request the target held longer than `--timeout`
    /// before it answered or closed (within `--slow-request-limit`).
    Held {
        /// How long.
        held: Duration,
        /// What came at the end.
        then: String,
    },
    /// The step was not run (why); never judged.
    Skipped(String),
}

impl Reply {
    fn from_error(e: TransportError) -> Reply {
        match e {
            TransportError::Timeout { .. } => Reply::Timeout(e.to_string()),
            // The raw bytes never left: nothing to judge.
            TransportError::NeedsHttp1 { .. } => Reply::Skipped(e.to_string()),
            other => Reply::Dropped(other.to_string()),
        }
    }

    /// A one-line account for findings.
    pub fn describe(&self) -> String {
        match self {
            Reply::Http { status, body, .. } => format!("HTTP {status}: {}", lossy(body, 4096)),
            Reply::Closed => "connection closed without an answer".into(),
            Reply::Dropped(e) => format!("dropped: {e}"),
            Reply::Timeout(e) => format!("timeout: {e}"),
            Reply::Held { held, then } => {
                format!("held {:.1}s, then {then}", held.as_secs_f64())
            }
            Reply::Skipped(why) => format!("skipped: {why}"),
        }
    }
}

/// One executed step: what was sent and what came back.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The endpoint hit.
    pub endpoint: &'static str,
    /// The body sent.
    pub sent: Vec<u8>,
    /// The answer.
    pub reply: Reply,
    /// The seq sealed with (calls only), for opening the response.
    pub seq: Option<u64>,
    /// Whether an honest target's window would take that seq (calls only).
    pub fresh: Option<bool>,
}

/// Text for people, cut at `max` bytes.
pub fn lossy(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > max {
        s.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    s
}

/// Runs one step on `session`.
pub async fn run_step(
    info: &TargetInfo,
    session: &mut Session,
    step: &Step,
    last_call: &mut Option<Vec<u8>>,
) -> Outcome {
    match step {
        Step::Call(call) => run_call(info, session, call, last_call).await,
        Step::CallAfterExpiry => {
            let wait = crate::clock::until_expired(session.core().expires_at());
            if wait > info.expiry_wait {
                return Outcome {
                    endpoint: "/secure/call",
                    sent: Vec::new(),
                    reply: Reply::Skipped(format!(
                        "the session expires in {}s, beyond --expiry-wait {}s",
                        wait.as_secs(),
                        info.expiry_wait.as_secs()
                    )),
                    seq: None,
                    fresh: None,
                };
            }
            tokio::time::sleep(wait).await;
            let call = super::gen::Generator::valid_call();
            run_call(info, session, &call, last_call).await
        }
        Step::Resend => {
            let body = last_call.clone().unwrap_or_default();
            let reply = post(info, "/secure/call", body.clone()).await;
            Outcome {
                endpoint: "/secure/call",
                sent: body,
                reply,
                seq: None,
                fresh: None,
            }
        }
        Step::Handshake { body } => {
            let body = info.target.expand(body).into_bytes();
            let reply = post(info, "/secure/session", body.clone()).await;
            Outcome {
                endpoint: "/secure/session",
                sent: body,
                reply,
                seq: None,
                fresh: None,
            }
        }
        Step::Plain {
            method,
            path,
            with_key,
            body,
        } => {
            let mut request = OuterRequest::post_json(info.target.expand(path), body.clone());
            request.method = method.clone();
            if *with_key {
                request.headers.push((
                    "Authorization".into(),
                    format!("Bearer {}", info.target.access_key),
                ));
            }
            let request = info.target.outer(request);
            let reply = match info.target.send(&request).await {
                Ok(r) => Reply::Http {
                    status: r.status,
                    content_type: r.header("content-type").map(str::to_string),
                    body: r.body,
                },
                Err(e) => Reply::from_error(e),
            };
            Outcome {
                endpoint: "plaintext",
                sent: body.as_bytes().to_vec(),
                reply,
                seq: None,
                fresh: None,
            }
        }
    }
}

async fn post(info: &TargetInfo, path: &str, body: Vec<u8>) -> Reply {
    let request = info.target.outer(OuterRequest::post_json(path, body));
    match info.target.send(&request).await {
        Ok(r) => Reply::Http {
            status: r.status,
            content_type: r.header("content-type").map(str::to_string),
            body: r.body,
        },
        Err(e) => Reply::from_error(e),
    }
}

/// The plaintext a call step seals.
pub fn inner_plaintext(info: &TargetInfo, inner: &Inner) -> Vec<u8> {
    match inner {
        Inner::Plaintext { text } => text.as_bytes().to_vec(),
        Inner::Request {
            method,
            path,
            auth,
            body,
        } => InnerRequest {
            method: method.clone(),
            path: info.target.expand(path),
            authorization: match auth {
                Auth::Key => Some(format!("Bearer {}", info.target.access_key)),
                Auth::None => None,
                Auth::Text(t) => Some(t.clone()),
            },
            accept: None,
            content_type: body.as_ref().map(|_| "application/json".to_string()),
            headers: None,
            body: body.clone(),
        }
        .to_json()
        .into_bytes(),
    }
}

async fn run_call(
    info: &TargetInfo,
    session: &mut Session,
    call: &CallStep,
    last_call: &mut Option<Vec<u8>>,
) -> Outcome {
    let seq = session.seq_for(call);
    let fresh = session.window.would_accept(seq);
    let plaintext = inner_plaintext(info, &call.inner);
    let envelope = session.session.seal_at(seq, &plaintext);
    let mut body = edit_envelope(&envelope.to_json(), &call.envelope);
    for edit in &call.bytes {
        apply_byte_edit(&mut body, edit);
    }
    *last_call = Some(body.clone());
    let reply = if call.framing.is_normal() {
        post(info, "/secure/call", body.clone()).await
    } else {
        let raw = frame_request(info, &body, &call.framing);
        // A target may wait for promised bytes until its own read timeout
        // (LIM-1): that wait is timed, and only past the limit a hang.
        let incomplete = call.framing.leaves_request_incomplete();
        // Only the status line matters here; a keep-alive peer would
        // otherwise hold the reply open for the whole idle timeout.
        let limits = Limits {
            idle_timeout: info
                .target
                .limits
                .idle_timeout
                .min(Duration::from_millis(250)),
            response_timeout: if incomplete {
                info.slow_request_limit
            } else {
                info.target.limits.response_timeout
            },
            ..info.target.limits
        };
        let started = Instant::now();
        let reply = match info.target.send_raw(&raw, &limits).await {
            Ok(bytes) => parse_raw_reply(&bytes),
            Err(e) => Reply::from_error(e),
        };
        let held = started.elapsed();
        match reply {
            Reply::Timeout(_) | Reply::Skipped(_) => reply,
            _ if incomplete && held > info.target.limits.response_timeout => Reply::Held {
                held,
                then: reply.describe(),
            },
            _ => reply,
        }
    };
    if matches!(reply, Reply::Http { status: 200, .. }) {
        session.window.mark(seq);
    }
    Outcome {
        endpoint: "/secure/call",
        sent: body,
        reply,
        seq: Some(seq),
        fresh: Some(fresh),
    }
}

/// Applies envelope edits to the sealed JSON text.
pub fn edit_envelope(json: &str, edits: &[EnvelopeEdit]) -> Vec<u8> {
    let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_str::<serde_json::Value>(json)
    else {
        return json.as_bytes().to_vec();
    };
    let mut duplicates = Vec::new();
    for edit in edits {
        match edit {
            EnvelopeEdit::FlipCt | EnvelopeEdit::FlipTag => {
                let ct = obj.get("ct").and_then(|v| v.as_str()).unwrap_or("");
                let flipped = peer::seal::flip_bit(ct, matches!(edit, EnvelopeEdit::FlipTag));
                if flipped != ct {
                    obj.insert("ct".into(), flipped.into());
                }
            }
            EnvelopeEdit::Set { field, json, .. } => {
                // Raw JSON that serde cannot hold (a lone surrogate) is
                // spliced in as text below.
                match serde_json::from_str::<serde_json::Value>(json) {
                    Ok(v) if !json.contains("\\ud8") => {
                        obj.insert(field.clone(), v);
                    }
                    _ => {
                        obj.remove(field);
                        duplicates.push((field.clone(), json.clone()));
                    }
                }
            }
            EnvelopeEdit::Remove { field } => {
                obj.remove(field);
            }
            EnvelopeEdit::Duplicate { field, json } => {
                duplicates.push((field.clone(), json.clone()));
            }
        }
    }
    let mut text = serde_json::Value::Object(obj).to_string();
    for (field, json) in duplicates {
        text.pop();
        if !text.ends_with('{') {
            text.push(',');
        }
        text.push_str(&format!("{}:{}}}", serde_json::Value::from(field), json));
    }
    text.into_bytes()
}

/// Applies one byte edit; positions wrap around the body length.
pub fn apply_byte_edit(body: &mut Vec<u8>, edit: &ByteEdit) {
    let len = body.len();
    match edit {
        ByteEdit::Truncate { keep } => {
            if len > 0 {
                body.truncate(keep % len);
            }
        }
        ByteEdit::Xor { at, mask } => {
            if len > 0 {
                body[at % len] ^= mask.max(&1);
            }
        }
        ByteEdit::Set { at, byte } => {
            if len > 0 {
                body[at % len] = *byte;
            }
        }
        ByteEdit::Insert { at, text } => {
            let at = at % (len + 1);
            body.splice(at..at, text.bytes());
        }
    }
}

fn frame_request(info: &TargetInfo, body: &[u8], framing: &Framing) -> Vec<u8> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nConnection: close\r\n",
        info.target.endpoint.join("/secure/call"),
        info.target.endpoint.authority()
    );
    if info.target.relay_origin {
        head.push_str(&format!("{RELAY_HEADER}: 1\r\n"));
    }
    let mut payload = Vec::new();
    if matches!(
        framing,
        Framing::Chunked { .. } | Framing::ChunkedBadSize | Framing::ChunkedUnterminated
    ) {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
    }
    match framing {
        Framing::Normal => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            payload.extend_from_slice(body);
        }
        Framing::LengthLie { extra } => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len() + extra));
            payload.extend_from_slice(body);
        }
        Framing::LengthShort { short } => {
            head.push_str(&format!(
                "Content-Length: {}\r\n\r\n",
                body.len().saturating_sub(*short)
            ));
            payload.extend_from_slice(body);
        }
        Framing::Chunked { size } => chunked(&mut payload, body, (*size).max(1)),
        Framing::LengthAndChunked => {
            head.push_str(&format!(
                "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
                body.len()
            ));
            chunked(&mut payload, body, 16);
        }
        Framing::ChunkedBadSize => {
            payload.extend_from_slice(b"zz\r\n");
            payload.extend_from_slice(body);
            payload.extend_from_slice(b"\r\n0\r\n\r\n");
        }
        Framing::ChunkedUnterminated => {
            payload.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            payload.extend_from_slice(body);
            payload.extend_from_slice(b"\r\n");
        }
    }
    let mut raw = head.into_bytes();
    raw.extend_from_slice(&payload);
    raw
}

fn chunked(payload: &mut Vec<u8>, body: &[u8], size: usize) {
    for chunk in body.chunks(size) {
        payload.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        payload.extend_from_slice(chunk);
        payload.extend_from_slice(b"\r\n");
    }
    payload.extend_from_slice(b"0\r\n\r\n");
}

/// Reads the status and body of a raw reply (enough for the oracles that
/// apply to framing cases).
pub fn parse_raw_reply(bytes: &[u8]) -> Reply {
    if bytes.is_empty() {
        return Reply::Closed;
    }
    let head_end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(status) => Reply::Http {
            status,
            content_type: head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-type")
                    .then(|| v.trim().to_string())
            }),
            body: bytes[(head_end + 4).min(bytes.len())..].to_vec(),
        },
        None => Reply::Dropped(format!("not an HTTP reply: {}", lossy(bytes, 200))),
    }
}

/// A fresh seeded source for handshake keys.
pub fn handshake_rng(seed: u64, worker: u64) -> SeededRandom {
    SeededRandom::new(seed, &format!("netfuzz-handshake-{worker}"))
}

/// A plain valid call on `session`: the liveness probe.
pub async fn probe(info: &TargetInfo, session: &mut Session) -> Result<(), String> {
    probe_with(info, session, super::gen::Generator::valid_call()).await
}

/// A liveness probe with this honest `call` (a run or a small dispatch).
pub async fn probe_with(
    info: &TargetInfo,
    session: &mut Session,
    call: CallStep,
) -> Result<(), String> {
    let mut last = None;
    let step = Step::Call(call);
    let outcome = run_step(info, session, &step, &mut last).await;
    match super::oracle::judge(info, session, &step, &outcome, &[]) {
        None => Ok(()),
        Some(v) => Err(v.detail),
    }
}

impl Session {
    /// A copy that owns the next seq, for a case run in the background.
    pub fn fork(&mut self) -> Session {
        let mut fork = Session::new(self.session.clone());
        fork.next = self.next;
        fork.window = self.window.clone();
        self.next += 1;
        fork
    }

    /// The underlying core session.
    pub fn core(&self) -> &ClientSession {
        &self.session
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_edits_reach_the_wire() {
        let json = r#"{"v":1,"sid":"s","seq":1,"ct":"AAAA"}"#;
        let dup = edit_envelope(
            json,
            &[EnvelopeEdit::Duplicate {
                field: "seq".into(),
                json: "2".into(),
            }],
        );
        let text = String::from_utf8(dup).unwrap();
        assert!(text.ends_with(r#","seq":2}"#), "{text}");
        let lone = edit_envelope(
            json,
            &[EnvelopeEdit::Set {
                field: "sid".into(),
                json: "\"\\ud800\"".into(),
                invalid: false,
            }],
        );
        assert!(String::from_utf8(lone)
            .unwrap()
            .contains(r#""sid":"\ud800""#));
        let gone = edit_envelope(json, &[EnvelopeEdit::Remove { field: "ct".into() }]);
        assert!(!String::from_utf8(gone).unwrap().contains("ct"));
    }

    #[test]
    fn byte_edits_wrap_and_never_panic() {
        let mut b = b"abc".to_vec();
        apply_byte_edit(&mut b, &ByteEdit::Xor { at: 4, mask: 1 });
        assert_eq!(b, b"acc");
        apply_byte_edit(&mut b, &ByteEdit::Truncate { keep: 5 });
        assert_eq!(b, b"ac");
        let mut empty = Vec::new();
        apply_byte_edit(&mut empty, &ByteEdit::Truncate { keep: 3 });
        apply_byte_edit(&mut empty, &ByteEdit::Xor { at: 3, mask: 9 });
        apply_byte_edit(
            &mut empty,
            &ByteEdit::Insert {
                at: 7,
                text: "x".into(),
            },
        );
        assert_eq!(empty, b"x");
    }

    fn sealed_body(secret: u8, edits: &[ByteEdit]) -> Vec<u8> {
        let keys = crate::protocol::keys::derive_session_keys(&[secret; 32], b"fuzz-test");
        let session = ClientSession::new("sid-fixed".into(), keys, i64::MAX);
        let plaintext = b"{\"method\":\"GET\",\"path\":\"/\"}";
        let mut body = session.seal_at(7, plaintext).to_json().into_bytes();
        for e in edits {
            apply_byte_edit(&mut body, e);
        }
        body
    }

    #[test]
    fn a_set_byte_is_the_same_on_any_session() {
        let a = sealed_body(1, &[]);
        let b = sealed_body(2, &[]);
        assert_eq!(a.len(), b.len());
        // A position inside the ciphertext, where the two sessions differ.
        let at = (0..a.len()).rev().find(|&i| a[i] != b[i]).unwrap();
        let set = [ByteEdit::Set { at, byte: b'=' }];
        let (a, b) = (sealed_body(1, &set), sealed_body(2, &set));
        assert_eq!((a[at], b[at]), (b'=', b'='));
        // A XOR there gives different bytes (the reason Set exists).
        let xor = [ByteEdit::Xor { at, mask: 0x20 }];
        assert_ne!(sealed_body(1, &xor)[at], sealed_body(2, &xor)[at]);
    }

    #[test]
    fn relative_seqs_follow_the_session() {
        let keys = crate::protocol::keys::derive_session_keys(&[3; 32], b"fuzz-test");
        let mut s = Session::new(ClientSession::new("s".into(), keys, i64::MAX));
        let plain = super::super::gen::Generator::valid_call();
        let with = |at| CallStep {
            at: Some(at),
            ..plain.clone()
        };
        assert_eq!(s.seq_for(&plain), 1);
        assert_eq!(s.seq_for(&with(SeqAt::Ahead { by: 70 })), 71);
        assert_eq!(s.seq_for(&with(SeqAt::Behind { by: 64 })), 7);
        assert_eq!(s.seq_for(&with(SeqAt::Same)), 7);
        assert_eq!(s.seq_for(&plain), 72);
        assert!(!s.burned);
    }

    #[test]
    fn raw_replies_are_read_leniently() {
        assert_eq!(parse_raw_reply(b""), Reply::Closed);
        match parse_raw_reply(b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n\r\nno") {
            Reply::Http {
                status,
                content_type,
                body,
            } => {
                assert_eq!(status, 400);
                assert_eq!(content_type.as_deref(), Some("text/plain"));
                assert_eq!(body, b"no");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_raw_reply(b"garbage"), Reply::Dropped(_)));
    }
}
