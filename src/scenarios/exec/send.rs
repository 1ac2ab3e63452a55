//! Sending: handshakes, calls, resends, plaintext requests and floods,
//! each through the driver, each recorded in the transcript.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::clock::unix_secs as now_secs;
use crate::peer::edit::{self, Framing, Inner, SeqCursor};
use crate::peer::{self, seal, Offer, Target};
use crate::protocol::encoding::b64url_encode;
use crate::protocol::handshake::{low_order_points, Transcript};
use crate::protocol::identity::{recover_channel_signer, SignaturePolicy};
use crate::protocol::keys::SymmetricKey;
use crate::protocol::wire::{ClientHello, ServerHello};
use crate::rng::SystemRandom;
use crate::transport::{self, OuterRequest, TransportError};

use super::super::model::{Action, EnvelopeKey, Expect, Step};
use super::super::runner::SharedSession;
use super::{
    describe_inner, random, Context, Saved, Session, StepFailure, StepResult, RELAY_HEADER,
};
use crate::judge::handshake::Fresh;
use crate::peer::{Answer, Ending};

impl Context<'_> {
    pub(super) async fn post_session(
        &mut self,
        body: &[u8],
    ) -> Result<transport::OuterResponse, TransportError> {
        // A 429 is the target protecting itself (HS-8), never a verdict.
        let peer = Target {
            relay_origin: false,
            ..self.cfg.target.clone()
        };
        Ok(
            peer::post_hello(&peer, body, &self.cfg.pacer, self.cfg.rate_limits())
                .await?
                .response,
        )
    }

    pub(super) async fn handshake(&mut self, step: &Step) -> StepResult {
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
                        last_seq: 0,
                        shared_seq: Some(shared.next_seq),
                    },
                );
                return Ok(());
            }
        }
        let secret = random::<32>();
        let offer = match &step.raw_body {
            Some(raw) => Offer::raw(
                self.cfg.target.address,
                secret,
                random::<16>(),
                self.expand(raw).into_bytes(),
            ),
            None => Offer::edited(self.cfg.target.address, secret, random::<16>(), |hello| {
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
            }),
        };
        let body = offer.body().to_vec();
        let resp = self
            .post_session(&body)
            .await
            .map_err(|e| StepFailure::transport(e, pre))?;
        let req = OuterRequest::post_json("/secure/session", body.clone());
        self.remember_headers(&resp.headers);
        self.record("handshake", &req, None, resp.status, &resp.body, None);

        let mut answer = Answer {
            status: resp.status,
            headers: resp.headers.clone(),
            body: resp.body.clone(),
            emitted: peer::hello_emitted(&resp.body),
            ..Answer::default()
        };
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
                answer.verified = Some(matches!(signer, Ok(a) if a == self.cfg.target.address));
                answer.expires_at = Some(server.expires_at);
                // The identity verdict belongs to the scenarios that ask for
                // it; the keys are needed either way.
                if let Some((_, session)) = offer.finish_as_sent(&server) {
                    self.sessions.insert(
                        name.clone(),
                        Session {
                            hello: sent,
                            server,
                            keys: session.keys().clone(),
                            next_seq: 1,
                            last_seq: 0,
                            shared_seq: None,
                        },
                    );
                }
            }
        }
        let Some(expect) = &step.expect else {
            let usable = self.sessions.contains_key(&name);
            crate::judge::handshake::honest_hello(&self.claim, &answer, usable, now_secs())?;
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
            return Ok(());
        };
        crate::judge::handshake::check_hello(
            &self.claim,
            expect,
            &answer,
            self.cfg.session_ttl,
            now_secs(),
        )?;
        Ok(())
    }

    pub(super) async fn freshness(&mut self, step: &Step) -> StepResult {
        let count = step.count.unwrap_or(3).max(2);
        let mut seen = Vec::new();
        for i in 0..count {
            // Each handshake is judged, not a precondition: freshness means
            // nothing for hellos the pinned agent did not sign.
            let sub = Step {
                action: Some(Action::Handshake),
                session: Some(format!("fresh-{i}")),
                expect: Some(Expect {
                    status: Some(200),
                    verifies: Some(true),
                    ..Expect::default()
                }),
                ..Step::default()
            };
            self.handshake(&sub).await?;
            let s = &self.sessions[&format!("fresh-{i}")];
            seen.push(Fresh {
                enc_pub: s.server.enc_pub.clone(),
                sid: s.server.sid.clone(),
                r: s.server.signature.get(..66).unwrap_or("").to_owned(),
            });
        }
        Ok(crate::judge::handshake::check_freshness(
            &self.claim,
            &seen,
        )?)
    }

    pub(super) async fn flood(&mut self, step: &Step) -> StepResult {
        let Some(bound) = self.cfg.max_sessions else {
            return Err(StepFailure::skip(
                "the target's session bound is unknown (give --max-sessions)",
            ));
        };
        let n = bound + step.count.unwrap_or(8);
        for _ in 0..n {
            let offer = Offer::random(self.cfg.target.address, &mut SystemRandom);
            let resp = self
                .post_session(offer.body())
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

    pub(super) async fn call(&mut self, step: &Step) -> StepResult {
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
        let seq = match (step.at, step.seq, &session.shared_seq) {
            (Some(at), _, _) => {
                let mut cursor = SeqCursor {
                    next: session.next_seq.max(1),
                    last: session.last_seq,
                };
                cursor.relative(at)
            }
            (None, Some(seq), _) => seq,
            (None, None, Some(counter)) => counter.fetch_add(1, Ordering::SeqCst),
            (None, None, None) => session.next_seq,
        };
        session.next_seq = session.next_seq.max(seq.saturating_add(1));
        session.last_seq = seq;
        let sid = session.server.sid.clone();
        let ct = seal::sealed_ct(&key, &seal_sid, seq, plaintext.as_bytes());
        let sealed = seal::envelope(&sid, seq, ct, |_| {});
        let mut body =
            edit::edit_envelope(&String::from_utf8_lossy(&sealed), &step.envelope_edits());
        for e in step.bytes.iter().flatten() {
            edit::apply_byte_edit(&mut body, e);
        }
        let relay = step.relay.unwrap_or(self.cfg.target.relay_origin);
        let saved = Saved {
            body: body.clone(),
            relay,
            accept: accept.clone(),
            session: name.clone(),
            seq,
        };
        if let Some(save) = &step.save {
            self.saved.insert(save.clone(), saved.clone());
        }
        self.last_call = Some(saved);
        let shown = describe_inner(&plaintext);
        let answer = match step.framing.as_ref().filter(|f| !f.is_normal()) {
            Some(framing) => {
                self.exchange_framed(body, relay, framing, Some(shown))
                    .await
            }
            None => {
                self.exchange("call", body, relay, accept, &name, seq, Some(shown))
                    .await
            }
        }
        .map_err(|e| StepFailure::transport(e, pre))?;
        self.judge(step.expect.as_ref(), &answer)
    }

    /// Sends a call's body in `framing` as raw bytes; the answer holds the
    /// status and body only (status 0: closed without an answer).
    async fn exchange_framed(
        &mut self,
        body: Vec<u8>,
        relay: bool,
        framing: &Framing,
        inner: Option<String>,
    ) -> Result<Answer, TransportError> {
        let raw = edit::frame_request(&self.cfg.target.endpoint, relay, &body, framing);
        // Only the status line matters; a keep-alive peer would otherwise
        // hold the reply open for the whole idle timeout.
        // A request that never ends may fairly be waited on for the
        // promised bytes (LIM-1): it gets `--max-wait` more to be answered.
        let response_timeout = if framing.leaves_request_incomplete() {
            self.cfg.target.limits.response_timeout
                + std::time::Duration::from_secs(self.cfg.max_wait)
        } else {
            self.cfg.target.limits.response_timeout
        };
        let limits = crate::transport::Limits {
            idle_timeout: self
                .cfg
                .target
                .limits
                .idle_timeout
                .min(std::time::Duration::from_millis(250)),
            response_timeout,
            ..self.cfg.target.limits
        };
        let bytes = transport::send_raw(&self.cfg.target.endpoint, &raw, &limits).await?;
        let answer = match edit::parse_raw_reply(&bytes) {
            Some(r) => Answer {
                status: r.status,
                headers: r
                    .content_type
                    .map(|c| vec![("content-type".to_string(), c)])
                    .unwrap_or_default(),
                body: r.body,
                ..Answer::default()
            },
            None => Answer {
                problems: vec![if bytes.is_empty() {
                    "the connection closed without an answer".to_string()
                } else {
                    format!("not an HTTP reply: {}", String::from_utf8_lossy(&bytes))
                }],
                ending: if bytes.is_empty() {
                    Ending::Closed
                } else {
                    Ending::Dropped("not an HTTP reply".into())
                },
                ..Answer::default()
            },
        };
        let req = OuterRequest::post_json("/secure/call", body);
        let action = format!("call ({})", framing.name());
        self.record(
            &action,
            &req,
            inner.as_deref(),
            answer.status,
            &answer.body,
            None,
        );
        Ok(answer)
    }

    /// Waits out the session's expiry, then makes an honest call on it.
    pub(super) async fn call_after_expiry(&mut self, step: &Step) -> StepResult {
        self.wait_for_expiry(step).await?;
        let call = Step {
            action: Some(Action::Call),
            session: step.session.clone(),
            inner: Some(Inner::honest_run()),
            relay: step.relay,
            expect: step.expect.clone(),
            ..Step::default()
        };
        self.call(&call).await
    }

    pub(super) async fn resend(&mut self, step: &Step) -> StepResult {
        let found = match &step.envelope {
            Some(EnvelopeKey::Saved(name)) => (name.clone(), self.saved.get(name)),
            _ => ("the previous call".to_string(), self.last_call.as_ref()),
        };
        let (name, saved) = found;
        let Some(saved) = saved else {
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
    pub(super) async fn exchange(
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
        let deadline = tokio::time::Instant::now() + self.cfg.target.limits.response_timeout;
        let mut stream = self.cfg.target.send_streaming(&req).await?;
        let mut answer = peer::read_call_answer(
            &mut stream,
            keys.as_ref().map(|(sid, k)| (sid.as_str(), k)),
            seq,
            deadline,
            self.cfg.target.limits.max_body_bytes,
        )
        .await?;
        if answer.executions.is_some() {
            answer.previous_executions = self.last_executions;
            self.last_executions = answer.executions;
        }
        self.remember_headers(&answer.headers);
        let shown_body = answer.body.clone();
        self.record(
            action,
            &req,
            inner.as_deref(),
            answer.status,
            &shown_body,
            answer.inner_text.clone(),
        );
        Ok(answer)
    }

    pub(super) async fn plain(&mut self, step: &Step) -> StepResult {
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
                format!("Bearer {}", self.cfg.target.access_key),
            )),
            Some(a) => req.headers.push(("Authorization".into(), self.expand(a))),
        }
        for (k, v) in step.headers.iter().flatten() {
            req.headers.push((k.clone(), self.expand(v)));
        }
        if step.relay.unwrap_or(self.cfg.target.relay_origin) {
            req.headers.push((RELAY_HEADER.into(), "1".into()));
        }
        let resp = self
            .cfg
            .target
            .send(&req)
            .await
            .map_err(|e| StepFailure::transport(e, pre))?;
        self.remember_headers(&resp.headers);
        self.record("plain", &req, None, resp.status, &resp.body, None);
        let answer = Answer {
            status: resp.status,
            headers: resp.headers,
            body: resp.body,
            ..Answer::default()
        };
        Ok(crate::judge::response::check_plain(
            &self.claim,
            step.expect.as_ref(),
            &answer,
        )?)
    }
}
