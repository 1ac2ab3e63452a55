//! The step executor: runs one scenario's steps against a target, on top of
//! the protocol core and the bounded transport, and judges expectations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::clock::unix_secs as now_secs;
use crate::protocol::encoding::{b64url_decode, b64url_encode, B64Strictness};
use crate::protocol::handshake::{low_order_points, ClientHandshake, Transcript, TranscriptField};
use crate::protocol::identity::{recover_channel_signer, Address, SignaturePolicy};
use crate::protocol::keys::{
    open_b64, request_aad, response_aad, response_key, seal_b64, SessionKeys, SymmetricKey,
};
use crate::protocol::sse::SseDecoder;
use crate::protocol::wire::{ClientHello, Frame, InnerRequest, InnerResponse, ServerHello};
use crate::report::Exchange;
use crate::rng::{RandomSource, SystemRandom};
use crate::transport::{self, OuterRequest, TransportError};

use super::model::{Action, Expect, Step};
use super::runner::{RunConfig, SharedSession};

/// The relay marker header (GATE-3).
pub const RELAY_HEADER: &str = "X-Osaurus-Relay-Origin";

/// Why a step did not meet its expectations.
#[derive(Debug, Clone)]
pub struct StepFailure {
    /// What went wrong, in words.
    pub reason: String,
    /// What was expected.
    pub expected: Option<String>,
    /// The step was an honest precondition, not the subject of the scenario.
    pub precondition: bool,
    /// Not a failure: the scenario cannot run here (the reason says why).
    pub skip: bool,
}

impl StepFailure {
    fn new(reason: impl Into<String>, expected: impl Into<String>, precondition: bool) -> Self {
        StepFailure {
            reason: reason.into(),
            expected: Some(expected.into()),
            precondition,
            skip: false,
        }
    }
    fn skip(reason: impl Into<String>) -> Self {
        StepFailure {
            reason: reason.into(),
            expected: None,
            precondition: false,
            skip: true,
        }
    }
    fn transport(e: TransportError, precondition: bool) -> Self {
        StepFailure {
            reason: format!("transport: {e}"),
            expected: Some("an HTTP answer within the time and size limits".into()),
            precondition,
            skip: false,
        }
    }
}

type StepResult = Result<(), StepFailure>;

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    SystemRandom.fill(&mut b);
    b
}

/// The harness side of one session.
struct Session {
    hello: ClientHello,
    server: ServerHello,
    keys: SessionKeys,
    next_seq: u64,
    shared_seq: Option<Arc<AtomicU64>>,
}

/// A saved envelope.
struct Saved {
    body: Vec<u8>,
    relay: bool,
    accept: Option<String>,
    session: String,
    seq: u64,
}

/// What a call's answer looked like after frame-level checking.
#[derive(Debug, Default)]
struct Answer {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    streamed: bool,
    frames: usize,
    fin: bool,
    in_order: bool,
    per_call_key: bool,
    opened: bool,
    problems: Vec<String>,
    inner_status: Option<u16>,
    inner_body: Vec<u8>,
    executions: Option<u64>,
    previous_executions: Option<u64>,
}

/// Per-scenario state.
pub struct Context<'a> {
    cfg: &'a RunConfig,
    sessions: HashMap<String, Session>,
    saved: HashMap<String, Saved>,
    /// The transcript, secrets redacted.
    pub transcript: Vec<Exchange>,
    /// Every outer byte sent or received (for the blind-relay check).
    outer_bytes: Vec<u8>,
    canaries: Vec<String>,
    last_executions: Option<u64>,
    step: usize,
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &text[..end], text.len())
}

impl<'a> Context<'a> {
    /// Fresh state for one scenario.
    pub fn new(cfg: &'a RunConfig) -> Self {
        Context {
            cfg,
            sessions: HashMap::new(),
            saved: HashMap::new(),
            transcript: Vec::new(),
            outer_bytes: Vec::new(),
            canaries: Vec::new(),
            last_executions: None,
            step: 0,
        }
    }

    fn redact(&self, text: &str) -> String {
        self.cfg.redact(text)
    }

    fn record(
        &mut self,
        action: &str,
        req: &OuterRequest,
        inner: Option<&str>,
        status: u16,
        body: &[u8],
        inner_resp: Option<String>,
    ) {
        self.outer_bytes.extend_from_slice(req.path.as_bytes());
        for (k, v) in &req.headers {
            self.outer_bytes.extend_from_slice(k.as_bytes());
            self.outer_bytes.extend_from_slice(v.as_bytes());
        }
        self.outer_bytes.extend_from_slice(&req.body);
        self.outer_bytes.extend_from_slice(body);
        let x = Exchange {
            step: self.step,
            action: action.to_owned(),
            request_line: format!("{} {}", req.method, req.path),
            request_body: truncate(&self.redact(&String::from_utf8_lossy(&req.body)), 1000),
            inner_request: inner.map(|i| truncate(&self.redact(i), 1000)),
            status,
            response_body: truncate(&self.redact(&String::from_utf8_lossy(body)), 1000),
            inner_response: inner_resp.map(|i| truncate(&self.redact(&i), 1000)),
            note: None,
        };
        self.transcript.push(x);
    }

    fn expand(&self, text: &str) -> String {
        let agent = self
            .cfg
            .agent_id
            .clone()
            .unwrap_or_else(|| self.cfg.agent_address.to_checksum());
        text.replace("{agent}", &agent)
            .replace("{address}", &self.cfg.agent_address.to_checksum())
            .replace(
                "{scoped_agent}",
                self.cfg.scoped_agent_id.as_deref().unwrap_or("none"),
            )
            .replace("{key}", &self.cfg.access_key)
            .replace("{scoped_key}", self.cfg.scoped_key.as_deref().unwrap_or(""))
    }

    /// Runs one step.
    pub async fn run_step(&mut self, index: usize, step: &Step) -> StepResult {
        self.step = index;
        match step.action.unwrap_or(Action::Call) {
            Action::Handshake => self.handshake(step).await,
            Action::Verify => self.verify(step),
            Action::Freshness => self.freshness(step).await,
            Action::Call => self.call(step).await,
            Action::Resend => self.resend(step).await,
            Action::Wait => self.wait(step).await,
            Action::Plain => self.plain(step).await,
            Action::Flood => self.flood(step).await,
            Action::Blind => self.blind(),
        }
    }

    fn session_name(step: &Step) -> String {
        step.session.clone().unwrap_or_else(|| "main".into())
    }

    async fn post_session(
        &mut self,
        body: Vec<u8>,
    ) -> Result<transport::OuterResponse, TransportError> {
        let req = OuterRequest::post_json("/secure/session", body);
        let mut attempts = 0;
        loop {
            self.cfg.pacer.acquire().await;
            let resp = transport::send(&self.cfg.target, &req, &self.cfg.limits).await?;
            // A 429 is the target protecting itself (HS-8), never a verdict.
            if resp.status == 429 && attempts < 6 {
                attempts += 1;
                let wait = resp
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(self.cfg.pacer.backoff_secs())
                    .min(self.cfg.max_wait.max(1));
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            return Ok(resp);
        }
    }

    async fn handshake(&mut self, step: &Step) -> StepResult {
        let pre = step.expect.is_none();
        let name = Self::session_name(step);
        let pooled = step.shared == Some(true) && pre && !self.cfg.pacer.unlimited();
        if pooled {
            if let Some(shared) = self.pooled_session() {
                self.sessions.insert(
                    name,
                    Session {
                        hello: shared.hello,
                        server: shared.server,
                        keys: shared.keys,
                        next_seq: 0,
                        shared_seq: Some(shared.next_seq),
                    },
                );
                return Ok(());
            }
        }
        let secret = random::<32>();
        let honest = ClientHandshake::new(self.cfg.agent_address, secret, random::<16>());
        let mut hello = Map::new();
        hello.insert("v".into(), Value::from(1));
        hello.insert(
            "agentAddress".into(),
            Value::from(honest.hello().agent_address.clone()),
        );
        hello.insert("encPub".into(), Value::from(honest.hello().enc_pub.clone()));
        hello.insert("nonce".into(), Value::from(honest.hello().nonce.clone()));
        if let Some(v) = &step.version {
            hello.insert(
                "v".into(),
                serde_json::from_str(v).unwrap_or(Value::from(v.clone())),
            );
        }
        if let Some(a) = &step.agent_address {
            hello.insert("agentAddress".into(), Value::from(a.clone()));
        }
        if let Some(e) = &step.enc_pub {
            hello.insert("encPub".into(), Value::from(e.clone()));
        }
        if let Some(i) = step.low_order {
            let points = low_order_points();
            let (_, p) = points[i % points.len()];
            hello.insert("encPub".into(), Value::from(b64url_encode(&p)));
        }
        if let Some(n) = &step.nonce {
            hello.insert("nonce".into(), Value::from(n.clone()));
        }
        let body = match &step.raw_body {
            Some(raw) => raw.clone().into_bytes(),
            None => Value::Object(hello).to_string().into_bytes(),
        };
        let resp = self
            .post_session(body.clone())
            .await
            .map_err(|e| StepFailure::transport(e, pre))?;
        let req = OuterRequest::post_json("/secure/session", body.clone());
        self.record("handshake", &req, None, resp.status, &resp.body, None);

        let mut verified = None;
        let mut expires_at = None;
        if resp.status == 200 {
            let sent = ClientHello::parse(&body);
            let server = ServerHello::parse(&resp.body);
            if let (Ok(sent), Ok(server)) = (sent, server) {
                let transcript = Transcript::from_hellos(&sent, &server).render();
                let signer = recover_channel_signer(
                    transcript.as_bytes(),
                    &server.signature,
                    SignaturePolicy::default(),
                );
                verified = Some(matches!(signer, Ok(a) if a == self.cfg.agent_address));
                expires_at = Some(server.expires_at);
                // The identity verdict belongs to the scenarios that ask for
                // it; the keys are needed either way.
                let finished =
                    ClientHandshake::with_hello(self.cfg.agent_address, secret, sent.clone())
                        .dangerous_skip_identity_check()
                        .finish(&server);
                if let Ok(session) = finished {
                    self.sessions.insert(
                        name.clone(),
                        Session {
                            hello: sent,
                            server,
                            keys: session.keys().clone(),
                            next_seq: 1,
                            shared_seq: None,
                        },
                    );
                }
            }
        }
        let Some(expect) = &step.expect else {
            if let Some(exp) = expires_at.filter(|e| *e <= now_secs()) {
                // An honest client never seals with a session whose expiry
                // has passed (SES-3), so nothing after this can run.
                return Err(StepFailure::new(
                    format!("the ServerHello's expiresAt {exp} has already passed"),
                    "a session that expires in the future",
                    true,
                ));
            }
            if pooled {
                if let Some(s) = self.sessions.get_mut(&name) {
                    let counter = Arc::new(AtomicU64::new(1));
                    s.shared_seq = Some(counter.clone());
                    if let Ok(mut pool) = self.cfg.pool.lock() {
                        *pool = Some(SharedSession {
                            hello: s.hello.clone(),
                            server: s.server.clone(),
                            keys: s.keys.clone(),
                            next_seq: counter,
                        });
                    }
                }
            }
            if resp.status != 200 || !self.sessions.contains_key(&name) {
                return Err(StepFailure::new(
                    format!(
                        "honest handshake got {} {}",
                        resp.status,
                        String::from_utf8_lossy(&resp.body)
                    ),
                    "200 with a usable ServerHello",
                    true,
                ));
            }
            return Ok(());
        };
        check_status(expect, resp.status, &resp.body)?;
        if let Some(want) = expect.lowercase_hex {
            let signature = ServerHello::parse(&resp.body)
                .map(|s| s.signature)
                .unwrap_or_default();
            let got = signature.strip_prefix("0x").is_some_and(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            });
            if got != want {
                return Err(StepFailure::new(
                    format!("the ServerHello signature is {signature:?}"),
                    format!("0x + lowercase hex = {want}"),
                    false,
                ));
            }
        }
        if let Some(want) = expect.verifies {
            let got = verified.unwrap_or(false);
            if got != want {
                return Err(StepFailure::new(
                    if got {
                        "the ServerHello signature verifies".to_string()
                    } else {
                        "the ServerHello signature does not recover to the pinned address"
                            .to_string()
                    },
                    format!("signature verifies = {want}"),
                    false,
                ));
            }
        }
        if expect.expiry_near_ttl == Some(true) {
            let exp = expires_at.unwrap_or(0);
            let now = now_secs();
            if exp <= now {
                return Err(StepFailure::new(
                    format!("expiresAt {exp} is not in the future (now {now})"),
                    "expiresAt > now",
                    false,
                ));
            }
            if let Some(ttl) = self.cfg.session_ttl {
                if (exp - (now + ttl)).abs() > 5 {
                    return Err(StepFailure::new(
                        format!(
                            "expiresAt {exp} is {}s from now, the TTL is {ttl}s",
                            exp - now
                        ),
                        format!("expiresAt within 5 s of now + {ttl}"),
                        false,
                    ));
                }
            }
        }
        Ok(())
    }

    /// The run's shared session, if it has comfortably long to live.
    fn pooled_session(&self) -> Option<SharedSession> {
        let pool = self.cfg.pool.lock().ok()?;
        let shared = pool.as_ref()?;
        let margin = self
            .cfg
            .session_ttl
            .map(|t| (t / 4).clamp(5, 60))
            .unwrap_or(60);
        (shared.server.expires_at - now_secs() > margin).then(|| shared.clone())
    }

    fn verify(&mut self, step: &Step) -> StepResult {
        let name = Self::session_name(step);
        let Some(s) = self.sessions.get(&name) else {
            return Err(StepFailure::new(
                format!("no session {name:?} to verify"),
                "a session",
                true,
            ));
        };
        let mut hello = s.hello.clone();
        let mut server = s.server.clone();
        match step.edit.as_deref() {
            None => {}
            Some("encPub") => server.enc_pub = b64url_encode(&random::<32>()),
            Some("sid") => server.sid = b64url_encode(&random::<16>()),
            Some("expiresAt") => server.expires_at += 1,
            Some("nonce") => hello.nonce = b64url_encode(&random::<16>()),
            Some("clientEncPub") => hello.enc_pub = b64url_encode(&random::<32>()),
            Some("agentAddress") => hello.agent_address = Address(random::<20>()).to_lower(),
            Some(other) => {
                return Err(StepFailure::new(
                    format!("unknown edit {other:?}"),
                    "a transcript field",
                    true,
                ))
            }
        }
        let without = match step.without.as_deref() {
            None => None,
            Some("encPub") => Some(TranscriptField::ServerEncPub),
            Some("sid") => Some(TranscriptField::Sid),
            Some("expiresAt") => Some(TranscriptField::ExpiresAt),
            Some("nonce") => Some(TranscriptField::ClientNonce),
            Some("clientEncPub") => Some(TranscriptField::ClientEncPub),
            Some("agentAddress") => Some(TranscriptField::AgentAddress),
            Some(other) => {
                return Err(StepFailure::new(
                    format!("unknown field {other:?}"),
                    "a transcript field",
                    true,
                ))
            }
        };
        let payload = Transcript::from_hellos(&hello, &server).render_without(without);
        let got = matches!(
            recover_channel_signer(payload.as_bytes(), &server.signature, SignaturePolicy::default()),
            Ok(a) if a == self.cfg.agent_address
        );
        let want = step
            .expect
            .as_ref()
            .and_then(|e| e.verifies)
            .unwrap_or(step.edit.is_none() && step.without.is_none());
        if got == want {
            return Ok(());
        }
        let what = match (&step.edit, &step.without) {
            (Some(f), _) => format!("after a man in the middle edited `{f}`, the signature still recovers to the pinned address: `{f}` is not bound"),
            (None, Some(f)) => format!("the signature also verifies over the transcript without `{f}`: `{f}` is not signed"),
            (None, None) => "the ServerHello signature does not recover to the pinned address".into(),
        };
        Err(StepFailure::new(
            what,
            format!("signature verifies = {want}"),
            false,
        ))
    }

    async fn freshness(&mut self, step: &Step) -> StepResult {
        let count = step.count.unwrap_or(3).max(2);
        let mut keys = Vec::new();
        let mut sids = Vec::new();
        let mut rs = Vec::new();
        for i in 0..count {
            let sub = Step {
                action: Some(Action::Handshake),
                session: Some(format!("fresh-{i}")),
                ..Step::default()
            };
            self.handshake(&sub).await?;
            let s = &self.sessions[&format!("fresh-{i}")];
            keys.push(s.server.enc_pub.clone());
            sids.push(s.server.sid.clone());
            rs.push(s.server.signature.get(..66).unwrap_or("").to_owned());
        }
        let repeated = |v: &[String]| {
            let mut sorted = v.to_vec();
            sorted.sort();
            sorted.windows(2).any(|w| w[0] == w[1])
        };
        if repeated(&rs) {
            return Err(StepFailure::new(
                "two ServerHello signatures over different transcripts share the same r value: the ECDSA nonce repeats, which leaks the agent's private key",
                "a fresh r in every signature (RFC 6979)",
                false,
            ));
        }
        if repeated(&keys) {
            return Err(StepFailure::new(
                format!("the server's ephemeral key repeats across {count} handshakes: no forward secrecy"),
                "a new server encPub per session (HS-3)",
                false,
            ));
        }
        if repeated(&sids) {
            return Err(StepFailure::new(
                format!("a sid repeats across {count} handshakes"),
                "a new sid per session",
                false,
            ));
        }
        Ok(())
    }

    async fn flood(&mut self, step: &Step) -> StepResult {
        let Some(bound) = self.cfg.max_sessions else {
            return Err(StepFailure::skip(
                "the target's session bound is unknown (give --max-sessions)",
            ));
        };
        let n = bound + step.count.unwrap_or(8);
        for _ in 0..n {
            let hello =
                ClientHandshake::new(self.cfg.agent_address, random::<32>(), random::<16>())
                    .hello()
                    .to_json();
            let resp = self
                .post_session(hello.into_bytes())
                .await
                .map_err(|e| StepFailure::transport(e, true))?;
            if resp.status != 200 {
                return Err(StepFailure::new(
                    format!("handshake during the flood got {}", resp.status),
                    "200",
                    true,
                ));
            }
        }
        let req = OuterRequest::post_json("/secure/session", b"<flood>".to_vec());
        self.record(
            "flood",
            &req,
            None,
            200,
            format!("{n} handshakes").as_bytes(),
            None,
        );
        Ok(())
    }

    fn inner_request(&mut self, step: &Step) -> (String, Option<String>) {
        if let Some(p) = &step.plaintext {
            return (self.expand(p), None);
        }
        let method = step.method.clone().unwrap_or_else(|| "GET".into());
        let path = self.expand(step.path.as_deref().unwrap_or("/health"));
        let authorization = match step.authorization.as_deref() {
            None => Some(format!("Bearer {}", self.cfg.access_key)),
            Some("none") => None,
            Some(a) => Some(self.expand(a)),
        };
        let mut headers: Vec<(String, String)> = step
            .headers
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), self.expand(v)))
            .collect();
        let mut body_text = step.body.as_ref().map(|b| self.expand(b));
        if step.canary == Some(true) {
            let canary = format!("canary-{}", hex::encode(random::<12>()));
            headers.push(("X-Canary".into(), canary.clone()));
            body_text = Some(format!("{{\"secret\":\"{canary}\"}}"));
            self.canaries.push(canary);
        }
        let accept = step.accept.clone();
        let inner = InnerRequest {
            method,
            path,
            authorization,
            accept: accept.clone(),
            content_type: step
                .content_type
                .clone()
                .or_else(|| body_text.as_ref().map(|_| "application/json".to_string())),
            headers: if headers.is_empty() {
                None
            } else {
                Some(headers)
            },
            body: step
                .body_field
                .clone()
                .or_else(|| body_text.map(|b| b64url_encode(b.as_bytes()))),
        };
        (inner.to_json(), accept)
    }

    async fn call(&mut self, step: &Step) -> StepResult {
        let pre = step.expect.is_none();
        let name = Self::session_name(step);
        if !self.sessions.contains_key(&name) {
            return Err(StepFailure::new(
                format!("no session {name:?}: its handshake failed"),
                "a session",
                true,
            ));
        }
        let (plaintext, accept) = self.inner_request(step);
        let seal_name = step.seal_session.clone().unwrap_or_else(|| name.clone());
        let Some(sealer) = self.sessions.get(&seal_name) else {
            return Err(StepFailure::new(
                format!("no session {seal_name:?}"),
                "a session",
                true,
            ));
        };
        let seal_sid = sealer.server.sid.clone();
        let key: SymmetricKey = if step.wrong_direction == Some(true) {
            sealer.keys.s2c
        } else {
            sealer.keys.c2s
        };
        let session = self.sessions.get_mut(&name).expect("checked above");
        let seq = match (step.seq, &session.shared_seq) {
            (Some(seq), _) => seq,
            (None, Some(counter)) => counter.fetch_add(1, Ordering::SeqCst),
            (None, None) => session.next_seq,
        };
        session.next_seq = session.next_seq.max(seq.saturating_add(1));
        let sid = session.server.sid.clone();
        let mut ct = seal_b64(
            &key,
            seq,
            request_aad(&seal_sid, seq).as_bytes(),
            plaintext.as_bytes(),
        );
        if let Some(which) = &step.flip {
            let mut raw = b64url_decode(&ct, B64Strictness::Upstream).unwrap_or_default();
            if !raw.is_empty() {
                let i = if which == "tag" { raw.len() - 1 } else { 0 };
                raw[i] ^= 0x01;
            }
            ct = b64url_encode(&raw);
        }
        let mut env = Map::new();
        env.insert("v".into(), Value::from(1));
        env.insert("sid".into(), Value::from(sid));
        env.insert("seq".into(), Value::from(seq));
        env.insert("ct".into(), Value::from(ct));
        for (k, raw) in step.set.iter().flatten() {
            let v = serde_json::from_str(raw).unwrap_or_else(|_| Value::from(raw.clone()));
            env.insert(k.clone(), v);
        }
        for k in step.remove.iter().flatten() {
            env.remove(k);
        }
        let body = Value::Object(env).to_string().into_bytes();
        let relay = step.relay.unwrap_or(self.cfg.relay_origin);
        if let Some(save) = &step.save {
            self.saved.insert(
                save.clone(),
                Saved {
                    body: body.clone(),
                    relay,
                    accept: accept.clone(),
                    session: name.clone(),
                    seq,
                },
            );
        }
        let shown = describe_inner(&plaintext);
        let answer = self
            .exchange("call", body, relay, accept, &name, seq, Some(shown))
            .await
            .map_err(|e| StepFailure::transport(e, pre))?;
        self.judge(step.expect.as_ref(), &answer)
    }

    async fn resend(&mut self, step: &Step) -> StepResult {
        let name = step.envelope.clone().unwrap_or_default();
        let Some(saved) = self.saved.get(&name) else {
            return Err(StepFailure::new(
                format!("no saved envelope {name:?}"),
                "a saved envelope",
                true,
            ));
        };
        let (body, relay, accept, session, seq) = (
            saved.body.clone(),
            saved.relay,
            saved.accept.clone(),
            saved.session.clone(),
            saved.seq,
        );
        let answer = self
            .exchange("resend", body, relay, accept, &session, seq, None)
            .await
            .map_err(|e| StepFailure::transport(e, false))?;
        self.judge(step.expect.as_ref(), &answer)
    }

    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &mut self,
        action: &str,
        body: Vec<u8>,
        relay: bool,
        accept: Option<String>,
        session: &str,
        seq: u64,
        inner: Option<String>,
    ) -> Result<Answer, TransportError> {
        let mut req = OuterRequest::post_json("/secure/call", body);
        if let Some(a) = &accept {
            req = req.with_header("Accept", a.clone());
        }
        if relay {
            req = req.with_header(RELAY_HEADER, "1");
        }
        let keys = self
            .sessions
            .get(session)
            .map(|s| (s.server.sid.clone(), s.keys.clone()));
        let deadline = tokio::time::Instant::now() + self.cfg.limits.response_timeout;
        let mut stream =
            transport::send_streaming(&self.cfg.target, &req, &self.cfg.limits).await?;
        let mut answer = Answer {
            status: stream.status,
            headers: stream.headers.clone(),
            streamed: stream
                .header("content-type")
                .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/event-stream")),
            in_order: true,
            ..Answer::default()
        };
        let mut raw_frames: Vec<Vec<u8>> = Vec::new();
        let mut decoder = SseDecoder::new(self.cfg.limits.max_body_bytes);
        loop {
            let chunk = match tokio::time::timeout_at(deadline, stream.next_chunk()).await {
                Err(_) => {
                    answer
                        .problems
                        .push("the response did not finish in time".into());
                    break;
                }
                Ok(Err(e)) if answer.streamed => {
                    answer.problems.push(format!("the stream broke: {e}"));
                    break;
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => c,
            };
            answer.body.extend_from_slice(&chunk);
            if answer.streamed {
                match decoder.feed(&chunk) {
                    Ok(events) => raw_frames.extend(events),
                    Err(e) => {
                        answer
                            .problems
                            .push(format!("an SSE event is too large: {e:?}"));
                        break;
                    }
                }
            }
        }
        if answer.streamed {
            if !decoder.leftover().iter().all(|b| b.is_ascii_whitespace()) {
                answer
                    .problems
                    .push("the stream ended in the middle of an event".into());
            }
        } else if Frame::parse(&answer.body).is_ok() {
            raw_frames.push(answer.body.clone());
        }
        let mut inner_text = None;
        if let Some((sid, keys)) = keys {
            self.open_frames(&mut answer, &raw_frames, &sid, &keys, seq);
            if answer.opened {
                inner_text = Some(String::from_utf8_lossy(&answer.inner_body).into_owned());
                if !answer.streamed {
                    if let Ok(r) = InnerResponse::parse(&answer.inner_body) {
                        answer.inner_status = u16::try_from(r.status).ok();
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
        if let Some(v) = serde_json::from_slice::<Value>(&answer.inner_body)
            .ok()
            .and_then(|v| v.get("executions").and_then(Value::as_u64))
        {
            answer.executions = Some(v);
            answer.previous_executions = self.last_executions;
            self.last_executions = Some(v);
        }
        let shown_body = answer.body.clone();
        self.record(
            action,
            &req,
            inner.as_deref(),
            answer.status,
            &shown_body,
            inner_text,
        );
        Ok(answer)
    }

    /// Opens the frames with the per-call key; if that fails, tries the
    /// keys a broken server might use, so that only the scenarios about keys
    /// (KS-1, KS-2) fail on a key mix-up.
    fn open_frames(
        &self,
        answer: &mut Answer,
        raw: &[Vec<u8>],
        sid: &str,
        keys: &SessionKeys,
        seq: u64,
    ) {
        let frames: Vec<Frame> = raw.iter().filter_map(|r| Frame::parse(r).ok()).collect();
        if frames.len() != raw.len() {
            answer
                .problems
                .push("a frame is not valid frame JSON".into());
        }
        answer.frames = frames.len();
        if frames.is_empty() {
            return;
        }
        let candidates = [
            (response_key(&keys.s2c, seq), true),
            (keys.s2c, false),
            (response_key(&keys.c2s, seq), false),
            (keys.c2s, false),
        ];
        for (key, proper) in candidates {
            let mut out = Vec::new();
            let mut ok = true;
            let mut order = true;
            for (i, f) in frames.iter().enumerate() {
                if f.seq != i as u64 || (f.is_fin() && i + 1 != frames.len()) {
                    order = false;
                }
                // Open by the frame's own seq so a reordered stream still
                // tells "reordered" apart from "wrong key".
                match open_b64(
                    &key,
                    f.seq,
                    response_aad(sid, seq, f.seq, f.is_fin()).as_bytes(),
                    &f.ct,
                ) {
                    Ok(p) => out.push((f.seq, p)),
                    Err(_) => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                answer.opened = true;
                answer.per_call_key = proper;
                answer.in_order = order;
                answer.fin = frames.last().is_some_and(Frame::is_fin) && answer.problems.is_empty();
                out.sort_by_key(|(s, _)| *s);
                answer.inner_body = out.into_iter().flat_map(|(_, p)| p).collect();
                return;
            }
        }
        answer
            .problems
            .push("no frame authenticates under the session's keys".into());
    }

    fn judge(&mut self, expect: Option<&Expect>, a: &Answer) -> StepResult {
        let Some(e) = expect else {
            let healthy = a.status == 200
                && a.opened
                && a.fin
                && a.in_order
                && a.inner_status.is_some_and(|s| (200..300).contains(&s));
            if !healthy {
                return Err(StepFailure::new(
                    format!(
                        "honest call got outer {} inner {:?} ({} frame(s), fin {}, in order {}, {}): {}",
                        a.status,
                        a.inner_status,
                        a.frames,
                        a.fin,
                        a.in_order,
                        if a.problems.is_empty() { "no frame problems".into() } else { a.problems.join("; ") },
                        truncate(&String::from_utf8_lossy(&a.body), 200)
                    ),
                    "200 with a complete, authenticated 2xx answer",
                    true,
                ));
            }
            return Ok(());
        };
        check_status(e, a.status, &a.body)?;
        let fail = |what: String, want: String| Err(StepFailure::new(what, want, false));
        if let Some(delta) = e.executions_delta {
            match (a.previous_executions, a.executions) {
                (_, None) => {
                    return Err(StepFailure::skip(
                        "the target's answers carry no execution counter (the demo app of `serve` reports one), so double execution cannot be observed",
                    ))
                }
                (None, Some(_)) => {
                    return Err(StepFailure::new("no earlier call reported the execution counter", "an earlier counted call", true))
                }
                (Some(before), Some(now)) if now.wrapping_sub(before) != delta => {
                    return fail(
                        format!("the execution counter moved from {before} to {now}: something ran {} time(s)", now.wrapping_sub(before)),
                        format!("exactly {delta} execution(s) since the previous counted call"),
                    )
                }
                _ => {}
            }
        }
        if let Some(want) = e.header.as_deref() {
            let (name, value) = want
                .split_once('=')
                .map(|(n, v)| (n, Some(v)))
                .unwrap_or((want, None));
            let got = a
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str());
            if got.is_none() || value.is_some_and(|v| got != Some(v)) {
                return fail(
                    format!("outer header {name} is {got:?}"),
                    format!("header {want}"),
                );
            }
        }
        if let Some(want) = e.streamed {
            if a.streamed != want {
                return fail(
                    format!("streamed = {}", a.streamed),
                    format!("streamed = {want}"),
                );
            }
        }
        if let Some(want) = e.fin {
            if a.fin != want {
                let why = if a.problems.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", a.problems.join("; "))
                };
                return fail(
                    format!(
                        "the response {} with an authenticated fin frame{why}",
                        if a.fin { "ended" } else { "did not end" }
                    ),
                    format!("fin = {want}"),
                );
            }
        }
        if let Some(want) = e.frames {
            if a.frames != want {
                return fail(format!("{} frame(s)", a.frames), format!("{want} frame(s)"));
            }
        }
        if let Some(want) = e.in_order {
            if a.in_order != want {
                return fail(
                    "frames are not numbered 0, 1, 2, … with fin only on the last one".into(),
                    format!("in order = {want}"),
                );
            }
        }
        if e.per_call_key == Some(true) && (!a.opened || !a.per_call_key) {
            return fail(
                if a.opened {
                    "the response opens, but not under the per-call response key: it is sealed with a session key".into()
                } else {
                    format!("the response does not open: {}", a.problems.join("; "))
                },
                "frames sealed with HKDF(s2c, respkey:<seq>) (KS-2)".into(),
            );
        }
        if let Some(want) = e.inner_status {
            if a.inner_status != Some(want) {
                return fail(
                    format!(
                        "inner status {:?}{}",
                        a.inner_status,
                        if a.opened {
                            ""
                        } else {
                            " (the response did not open)"
                        }
                    ),
                    format!("inner status {want}"),
                );
            }
        }
        if let Some(want) = &e.inner_contains {
            let want = self.expand(want);
            if !String::from_utf8_lossy(&a.inner_body).contains(&want) {
                return fail(
                    format!(
                        "inner body {}",
                        truncate(&self.redact(&String::from_utf8_lossy(&a.inner_body)), 200)
                    ),
                    format!("inner body containing {:?}", self.redact(&want)),
                );
            }
        }
        if let Some(bad) = &e.inner_lacks {
            let bad = self.expand(bad);
            if String::from_utf8_lossy(&a.inner_body)
                .to_ascii_lowercase()
                .contains(&bad.to_ascii_lowercase())
            {
                return fail(
                    format!("inner body contains {:?}", self.redact(&bad)),
                    format!("no {:?} in the inner body", self.redact(&bad)),
                );
            }
        }
        Ok(())
    }

    async fn plain(&mut self, step: &Step) -> StepResult {
        let pre = step.expect.is_none();
        let method = step.method.clone().unwrap_or_else(|| "GET".into());
        let path = self.expand(step.path.as_deref().unwrap_or("/health"));
        let mut req = OuterRequest {
            method,
            path,
            headers: Vec::new(),
            body: step
                .body
                .as_ref()
                .map(|b| self.expand(b).into_bytes())
                .unwrap_or_default(),
        };
        if !req.body.is_empty() {
            req.headers
                .push(("Content-Type".into(), "application/json".into()));
        }
        match step.authorization.as_deref() {
            Some("none") => {}
            None => req.headers.push((
                "Authorization".into(),
                format!("Bearer {}", self.cfg.access_key),
            )),
            Some(a) => req.headers.push(("Authorization".into(), self.expand(a))),
        }
        for (k, v) in step.headers.iter().flatten() {
            req.headers.push((k.clone(), self.expand(v)));
        }
        if step.relay.unwrap_or(self.cfg.relay_origin) {
            req.headers.push((RELAY_HEADER.into(), "1".into()));
        }
        let resp = transport::send(&self.cfg.target, &req, &self.cfg.limits)
            .await
            .map_err(|e| StepFailure::transport(e, pre))?;
        self.record("plain", &req, None, resp.status, &resp.body, None);
        let Some(e) = &step.expect else {
            if !(200..300).contains(&resp.status) {
                return Err(StepFailure::new(
                    format!("got {}", resp.status),
                    "2xx",
                    true,
                ));
            }
            return Ok(());
        };
        check_status(e, resp.status, &resp.body)?;
        Ok(())
    }

    async fn wait(&mut self, step: &Step) -> StepResult {
        let secs = match step.seconds.as_deref() {
            Some("expiry") => {
                let name = Self::session_name(step);
                let Some(s) = self.sessions.get(&name) else {
                    return Err(StepFailure::new(
                        format!("no session {name:?}"),
                        "a session",
                        true,
                    ));
                };
                let left = (s.server.expires_at - now_secs() + 1).max(0) as u64;
                if left > self.cfg.max_wait {
                    return Err(StepFailure::skip(format!(
                        "the session expires in {left}s, more than --max-wait {}s",
                        self.cfg.max_wait
                    )));
                }
                let wait = crate::clock::until_expired(s.server.expires_at);
                tokio::time::sleep(wait + Duration::from_millis(50)).await;
                return Ok(());
            }
            Some(n) => n.parse::<u64>().unwrap_or(1),
            None => 1,
        };
        if secs > self.cfg.max_wait {
            return Err(StepFailure::skip(format!(
                "waiting {secs}s exceeds --max-wait"
            )));
        }
        tokio::time::sleep(Duration::from_secs(secs)).await;
        Ok(())
    }

    fn blind(&mut self) -> StepResult {
        let hay = &self.outer_bytes;
        let contains =
            |needle: &[u8]| !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle);
        // A very short key turns up by chance inside base64 ciphertext and
        // sids, so it proves nothing either way; the random canaries below
        // still carry the check.
        let key = self.cfg.access_key.as_bytes();
        if key.len() >= MIN_SEARCHABLE_SECRET && contains(key) {
            return Err(StepFailure::new(
                "the access key appeared in clear on the outer connection",
                "only ciphertext and routing metadata on the outer connection",
                false,
            ));
        }
        for c in &self.canaries {
            if contains(c.as_bytes()) {
                return Err(StepFailure::new(
                    "inner plaintext (a canary header/body) appeared in clear on the outer connection",
                    "only ciphertext and routing metadata on the outer connection",
                    false,
                ));
            }
        }
        Ok(())
    }
}

/// The inner request as the transcript shows it: the JSON, plus the body
/// decoded when it is text.
fn describe_inner(plaintext: &str) -> String {
    let decoded = InnerRequest::parse(plaintext.as_bytes())
        .ok()
        .and_then(|i| i.body)
        .and_then(|b| b64url_decode(&b, B64Strictness::Upstream).ok())
        .and_then(|b| String::from_utf8(b).ok());
    match decoded {
        Some(body) => format!("{plaintext} (body: {body})"),
        None => plaintext.to_owned(),
    }
}

fn check_status(e: &Expect, status: u16, body: &[u8]) -> StepResult {
    let text = String::from_utf8_lossy(body);
    if let Some(want) = e.status {
        if status != want {
            return Err(StepFailure::new(
                format!("got status {status}: {}", truncate(&text, 300)),
                format!(
                    "status {want}{}",
                    e.error
                        .as_deref()
                        .map(|c| format!(" {c}"))
                        .unwrap_or_default()
                ),
                false,
            ));
        }
    }
    if let Some(want) = &e.error {
        let v: Option<Value> = serde_json::from_slice(body).ok();
        let code = v.as_ref().and_then(|v| {
            v.pointer("/error/code")
                .and_then(Value::as_str)
                .or_else(|| v.get("error").and_then(Value::as_str))
                .map(str::to_owned)
        });
        if code.as_deref() != Some(want.as_str()) {
            return Err(StepFailure::new(
                format!("error {:?} in body {}", code, truncate(&text, 300)),
                format!("error {want:?}"),
                false,
            ));
        }
    }
    if let Some(want) = &e.body {
        if text != *want {
            return Err(StepFailure::new(
                format!("body {}", truncate(&text, 300)),
                format!("body {want}"),
                false,
            ));
        }
    }
    if let Some(want) = &e.body_contains {
        if !text.contains(want.as_str()) {
            return Err(StepFailure::new(
                format!("body {}", truncate(&text, 300)),
                format!("body containing {want:?}"),
                false,
            ));
        }
    }
    Ok(())
}

/// Secrets shorter than this are not searched for in the outer bytes: at
/// this length a chance match inside base64 becomes unlikely.
const MIN_SEARCHABLE_SECRET: usize = 12;
