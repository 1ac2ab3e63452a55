//! Runs a case's steps against a target: the session the steps share, the
//! bytes each step puts on the wire and what came back.

use std::time::{Duration, Instant};

use crate::protocol::session::{ClientSession, ReplayWindow};
use crate::protocol::wire::ServerHello;
use crate::rng::SeededRandom;
use crate::transport::{Limits, OuterRequest, TransportError};

use super::case::{CallStep, Inner, Step};

use crate::peer::edit::{self, SeqCursor};
use crate::peer::{self, Offer, RateLimitPolicy};

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
    /// The target answered the honest hello with a ServerHello the client
    /// must refuse: it does not verify against the pinned address, its key
    /// cannot be agreed, or it is already expired. A finding about the
    /// target, not a target that is gone.
    #[error("the ServerHello is refused ({field}): {detail}")]
    Hello {
        /// The signature field of the finding (`identity`, `version`, …).
        field: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl ExecError {
    /// The refused ServerHello as a fired oracle, for booking as a finding.
    pub fn hello_firing(&self) -> Option<super::oracle::Firing> {
        match self {
            ExecError::Hello { field, detail } => {
                Some(super::oracle::hello_refused(field, detail.clone()))
            }
            _ => None,
        }
    }
}

/// The signature field of a ServerHello the client refuses with `error`.
fn refused_hello_field(error: &crate::protocol::error::HandshakeError) -> &'static str {
    use crate::protocol::error::HandshakeError as E;
    match error {
        E::UnsupportedVersion(_) => "version",
        E::Malformed(_) => "malformed",
        E::LowOrderKey => "low-order-key",
        E::IdentityMismatch(_) => "identity",
    }
}

/// The fuzzer's handshake budget: the driver's one pacer.
pub use crate::peer::HandshakePacer as HandshakeBudget;

/// An open session and the seqs it has used.
#[derive(Debug)]
pub struct Session {
    session: ClientSession,
    /// The next fresh seq and the seq of the latest call made on it.
    cursor: SeqCursor,
    /// The window an honest target holds after the answers seen so far: a
    /// seq is marked exactly when its call was answered 200 (CALL-4).
    window: ReplayWindow,
    /// Whether a step may have moved the target's window unpredictably.
    pub burned: bool,
    /// The ServerHello as the target wrote it (empty for a fork).
    pub hello: Vec<u8>,
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
        let session = offer.finish(&hello).map_err(|e| ExecError::Hello {
            field: refused_hello_field(&e),
            detail: e.to_string(),
        })?;
        let now = crate::clock::unix_secs();
        if hello.expires_at <= now {
            return Err(ExecError::Hello {
                field: "expired",
                detail: format!(
                    "the ServerHello announces expiresAt {} (now {now}): the session is over before its first call",
                    hello.expires_at
                ),
            });
        }
        let mut session = Session::new(session);
        session.hello = response.body;
        Ok(session)
    }

    fn new(session: ClientSession) -> Session {
        Session {
            session,
            cursor: SeqCursor::default(),
            window: ReplayWindow::new(),
            burned: false,
            hello: Vec::new(),
        }
    }

    /// Whether the session can take another call at `now`.
    pub fn usable(&self, now: i64) -> bool {
        !self.burned && self.session.usable_at(now, 5) && self.cursor.next < (1 << 52)
    }

    /// The seq a call step is sealed with; moves the session's counter.
    fn seq_for(&mut self, call: &CallStep) -> u64 {
        if let Some(at) = call.at {
            return self.cursor.relative(at);
        }
        let seq = match call.seq {
            Some(s) => {
                if s >= self.cursor.next {
                    self.burned = true;
                }
                s
            }
            None => {
                let s = self.cursor.next;
                self.cursor.next += 1;
                s
            }
        };
        self.cursor.last = seq;
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
    edit::inner_plaintext(inner, &info.target.access_key, |p| info.target.expand(p))
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
    let envelope = if call.wrong_direction {
        // The server-to-client key, under the call's own AAD (CALL-5).
        let core = &session.session;
        let ct = peer::seal::sealed_ct(&core.keys().s2c, core.sid(), seq, &plaintext);
        String::from_utf8_lossy(&peer::seal::envelope(core.sid(), seq, ct, |_| {})).into_owned()
    } else {
        session.session.seal_at(seq, &plaintext).to_json()
    };
    let mut body = edit::edit_envelope(&envelope, &call.envelope);
    for e in &call.bytes {
        edit::apply_byte_edit(&mut body, e);
    }
    *last_call = Some(body.clone());
    let reply = if call.framing.is_normal() {
        post(info, "/secure/call", body.clone()).await
    } else {
        let raw = edit::frame_request(
            &info.target.endpoint,
            info.target.relay_origin,
            &body,
            &call.framing,
        );
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

/// Reads the status and body of a raw reply (enough for the oracles that
/// apply to framing cases).
pub fn parse_raw_reply(bytes: &[u8]) -> Reply {
    if bytes.is_empty() {
        return Reply::Closed;
    }
    match edit::parse_raw_reply(bytes) {
        Some(r) => Reply::Http {
            status: r.status,
            content_type: r.content_type,
            body: r.body,
        },
        None => Reply::Dropped(format!("not an HTTP reply: {}", lossy(bytes, 200))),
    }
}

/// A fresh seeded source for handshake keys.
pub fn handshake_rng(seed: u64, worker: u64) -> SeededRandom {
    SeededRandom::new(seed, &format!("netfuzz-handshake-{worker}"))
}

/// A plain valid call on `session`: the liveness probe.
pub async fn probe(info: &TargetInfo, session: &mut Session) -> Result<(), super::oracle::Firing> {
    probe_with(info, session, super::gen::Generator::valid_call()).await
}

/// A liveness probe with this honest `call` (a run or a small dispatch);
/// the oracle it fired when it failed.
pub async fn probe_with(
    info: &TargetInfo,
    session: &mut Session,
    call: CallStep,
) -> Result<(), super::oracle::Firing> {
    let mut last = None;
    let step = Step::Call(call);
    let outcome = run_step(info, session, &step, &mut last).await;
    match super::oracle::judge(info, session, &step, &outcome, &[]) {
        None => Ok(()),
        Some(v) => Err(v),
    }
}

impl Session {
    /// A copy that owns the next seq, for a case run in the background.
    pub fn fork(&mut self) -> Session {
        let mut fork = Session::new(self.session.clone());
        fork.cursor.next = self.cursor.next;
        fork.window = self.window.clone();
        self.cursor.next += 1;
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
    use crate::peer::edit::{apply_byte_edit, ByteEdit, SeqAt};

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
