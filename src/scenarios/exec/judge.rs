//! Judging: a handshake's signature, a call's answer and the outer bytes
//! against what the step expects.

use serde_json::Value;

use crate::protocol::encoding::b64url_encode;
use crate::protocol::handshake::{Transcript, TranscriptField};
use crate::protocol::identity::{recover_channel_signer, Address, SignaturePolicy};

use super::super::model::{Expect, Step};
use super::{random, truncate, Answer, Context, StepFailure, StepResult};

impl Context<'_> {
    pub(super) fn verify(&mut self, step: &Step) -> StepResult {
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

    pub(super) fn judge(&mut self, expect: Option<&Expect>, a: &Answer) -> StepResult {
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

    pub(super) fn blind(&mut self) -> StepResult {
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

pub(super) fn check_status(e: &Expect, status: u16, body: &[u8]) -> StepResult {
    super::answered::check(e, status, body)?;
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
