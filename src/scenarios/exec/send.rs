//! Sending: handshakes, calls, resends, plaintext requests and floods,
//! each through the engine ([`crate::peer::Conversation`]), each recorded
//! in the transcript.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::clock::unix_secs as now_secs;
use crate::judge::handshake::Fresh;
use crate::peer::edit::{self, CallStep, Framing, HelloStep, Inner};
use crate::peer::{Answer, EngineError, Offer, SealSpec, SentCall, Session};
use crate::rng::SystemRandom;
use crate::transport::OuterRequest;

use super::super::model::Expect;
use super::super::runner::SharedSession;
use super::{describe_inner, random, Context, StepFailure, StepResult, RELAY_HEADER};

/// The ClientHello a handshake step sends.
pub(super) enum HelloForm<'s> {
    /// This text as the whole body (placeholders expand).
    Raw(&'s str),
    /// The honest hello with these edits.
    Edited(&'s HelloStep),
}

impl Context<'_> {
    pub(super) async fn handshake(
        &mut self,
        name: &str,
        form: HelloForm<'_>,
        expect: Option<&Expect>,
    ) -> StepResult {
        let pre = expect.is_none();
        let shared = matches!(form, HelloForm::Edited(h) if h.shared);
        let pooled = shared && pre && !self.cfg.pacer.unlimited();
        if pooled {
            if let Some(shared) = self.pooled_session() {
                let mut session = Session::new(shared.hello, shared.server, shared.keys);
                session.cursor.next = 0;
                session.shared_seq = Some(shared.next_seq);
                self.conv.insert_session(name, session);
                return Ok(());
            }
        }
        let secret = random::<32>();
        let offer = match form {
            HelloForm::Raw(raw) => Offer::raw(
                self.cfg.target.address,
                secret,
                random::<16>(),
                self.expand(raw).into_bytes(),
            ),
            HelloForm::Edited(hello) => {
                Offer::edited(self.cfg.target.address, secret, random::<16>(), |h| {
                    edit::edit_hello(h, &hello.edits)
                })
            }
        };
        let body = offer.body().to_vec();
        let answer = self
            .conv
            .handshake(name, &offer)
            .await
            .map_err(|e| StepFailure::engine(e, pre))?;
        let req = OuterRequest::post_json("/secure/session", body);
        self.remember_headers(&answer.headers);
        self.record("handshake", &req, None, answer.status, &answer.body, None);
        self.relay_inconclusive(&answer)?;
        let Some(expect) = expect else {
            let usable = self.conv.session(name).is_some();
            crate::judge::handshake::honest_hello(&self.claim, &answer, usable, now_secs())?;
            if pooled {
                if let Some(s) = self.conv.session_mut(name) {
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

    pub(super) async fn freshness(&mut self, count: usize) -> StepResult {
        let count = count.max(2);
        let mut seen = Vec::new();
        for i in 0..count {
            // Each handshake is judged, not a precondition: freshness means
            // nothing for hellos the pinned agent did not sign.
            let signed = Expect {
                status: Some(200),
                verifies: Some(true),
                ..Expect::default()
            };
            self.handshake(
                &format!("fresh-{i}"),
                HelloForm::Edited(&HelloStep::default()),
                Some(&signed),
            )
            .await?;
            let Some(s) = self.conv.session(&format!("fresh-{i}")) else {
                return Err(StepFailure::new(
                    "a freshness handshake gave no session",
                    "a session",
                    true,
                ));
            };
            seen.push(Fresh {
                enc_pub: s.server.enc_pub.clone(),
                sid: s.server.sid.clone(),
                r: Fresh::r_of(&s.server.signature),
            });
        }
        Ok(crate::judge::handshake::check_freshness(
            &self.claim,
            &seen,
        )?)
    }

    pub(super) async fn flood(&mut self, extra: usize) -> StepResult {
        let Some(bound) = self.cfg.max_sessions else {
            return Err(StepFailure::skip(
                "the target's session bound is unknown (give --max-sessions)",
            ));
        };
        let n = bound + extra;
        self.flooded_at = Some(now_secs());
        for _ in 0..n {
            let offer = Offer::random(self.cfg.target.address, &mut SystemRandom);
            let resp = self
                .conv
                .handshake("flood", &offer)
                .await
                .map_err(|e| StepFailure::engine(e, true))?;
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

    pub(super) async fn call(
        &mut self,
        name: &str,
        step: &CallStep,
        expect: Option<&Expect>,
    ) -> StepResult {
        let pre = expect.is_none();
        if self.conv.session(name).is_none() {
            return Err(StepFailure::new(
                format!("no session {name:?}: its handshake failed"),
                "a session",
                true,
            ));
        }
        self.ensure_alive(step.seal_with.as_ref(), name).await?;
        let (plaintext, accept) = self.inner_request(&step.inner);
        let spec = SealSpec::for_call(name, step);
        let (body, seq) = self
            .conv
            .seal(&spec, plaintext.as_bytes())
            .map_err(|e| StepFailure::engine(e, true))?;
        let relay = step.relay.unwrap_or(self.cfg.target.relay_origin);
        let sent = SentCall {
            body: body.clone(),
            relay,
            accept: accept.clone(),
            session: name.to_owned(),
            seq,
        };
        if let Some(save) = &step.save {
            self.conv.save_call(save, sent.clone());
        }
        let shown = describe_inner(&plaintext);
        let answer = if step.framing.is_normal() {
            self.exchange("call", sent, Some(shown)).await
        } else {
            self.exchange_framed(body, relay, &step.framing, Some(shown))
                .await
        }
        .map_err(|e| StepFailure::engine(e, pre))?;
        self.relay_inconclusive(&answer)?;
        if let Some(secs) = answer.waited().filter(|_| answer.status == 0) {
            return Err(StepFailure::new(
                format!(
                    "the target held the incomplete request {:.1}s without answering",
                    secs.as_secs_f64()
                ),
                "an HTTP answer within the time and size limits",
                pre,
            ));
        }
        self.judge(expect, &answer)
    }

    /// Sends a call's body in `framing` as raw bytes; the answer holds the
    /// status and body only (status 0: closed without an answer).
    async fn exchange_framed(
        &mut self,
        body: Vec<u8>,
        relay: bool,
        framing: &Framing,
        inner: Option<String>,
    ) -> Result<Answer, EngineError> {
        let answer = self.conv.framed(&body, relay, framing).await?;
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
    pub(super) async fn call_after_expiry(
        &mut self,
        name: &str,
        relay: Option<bool>,
        expect: Option<&Expect>,
    ) -> StepResult {
        self.wait_for_expiry(name.to_owned()).await?;
        let call = CallStep {
            relay,
            ..CallStep::honest(Inner::honest_run())
        };
        self.call(name, &call, expect).await
    }

    /// Sends the envelope saved under `envelope` again, or without a name
    /// the previous call's body.
    pub(super) async fn resend(
        &mut self,
        envelope: Option<&String>,
        expect: Option<&Expect>,
    ) -> StepResult {
        let (name, saved) = match envelope {
            Some(name) => (name.clone(), self.conv.saved_call(name)),
            None => ("the previous call".to_string(), self.conv.last_call()),
        };
        let Some(saved) = saved else {
            return Err(StepFailure::new(
                format!("no saved envelope {name:?}"),
                "a saved envelope",
                true,
            ));
        };
        let sent = saved.clone();
        let answer = self
            .exchange("resend", sent, None)
            .await
            .map_err(|e| StepFailure::engine(e, false))?;
        self.relay_inconclusive(&answer)?;
        self.judge(expect, &answer)
    }

    /// Posts a sealed call through the engine and records it.
    pub(super) async fn exchange(
        &mut self,
        action: &str,
        sent: SentCall,
        inner: Option<String>,
    ) -> Result<Answer, EngineError> {
        let mut req = OuterRequest::post_json("/secure/call", sent.body.clone());
        if let Some(a) = &sent.accept {
            req = req.with_header("Accept", a.clone());
        }
        if sent.relay {
            req = req.with_header(RELAY_HEADER, "1");
        }
        let answer = self.conv.call(sent).await?;
        self.remember_headers(&answer.headers);
        self.record(
            action,
            &req,
            inner.as_deref(),
            answer.status,
            &answer.body,
            answer.inner_text.clone(),
        );
        Ok(answer)
    }

    /// A plaintext request ([`edit::Step::Plain`]), placeholders expanded
    /// in the path, body, authorization and headers.
    pub(super) async fn plain(&mut self, step: &edit::Step, expect: Option<&Expect>) -> StepResult {
        let edit::Step::Plain {
            method,
            path,
            with_key,
            body,
            headers,
            authorization,
            relay,
        } = step
        else {
            return Err(StepFailure::new(
                "not a plaintext request",
                "a plain step",
                true,
            ));
        };
        let pre = expect.is_none();
        let mut req = OuterRequest {
            method: method.clone(),
            path: self.expand(path),
            headers: Vec::new(),
            body: self.expand(body).into_bytes(),
        };
        if !req.body.is_empty() {
            req.headers
                .push(("Content-Type".into(), "application/json".into()));
        }
        match authorization {
            Some(a) => req.headers.push(("Authorization".into(), self.expand(a))),
            None if *with_key => req.headers.push((
                "Authorization".into(),
                format!("Bearer {}", self.cfg.target.access_key),
            )),
            None => {}
        }
        for (k, v) in headers {
            req.headers.push((k.clone(), self.expand(v)));
        }
        if relay.unwrap_or(self.cfg.target.relay_origin) {
            req.headers.push((RELAY_HEADER.into(), "1".into()));
        }
        let answer = self
            .conv
            .plain(&req)
            .await
            .map_err(|e| StepFailure::engine(e, pre))?;
        self.remember_headers(&answer.headers);
        self.record("plain", &req, None, answer.status, &answer.body, None);
        self.relay_inconclusive(&answer)?;
        Ok(crate::judge::response::check_plain(
            &self.claim,
            expect,
            &answer,
        )?)
    }
}
