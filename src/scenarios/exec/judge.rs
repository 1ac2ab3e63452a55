//! Judging: a handshake's signature, a call's answer and the outer bytes
//! against what the step expects, each handed to the one judge
//! ([`crate::judge`]).

use crate::peer::Answer;
use crate::protocol::encoding::b64url_encode;
use crate::protocol::handshake::{Transcript, TranscriptField};
use crate::protocol::identity::{recover_channel_signer, Address, SignaturePolicy};

use super::super::model::Expect;
use super::{random, Context, StepFailure, StepResult};

impl Context<'_> {
    /// Verifies the session's stored ServerHello after a man in the
    /// middle edited transcript field `edit`, or against the transcript
    /// `without` one field.
    pub(super) fn verify(
        &mut self,
        name: &str,
        edit: Option<&str>,
        without: Option<&str>,
        expect: Option<&Expect>,
    ) -> StepResult {
        let Some(s) = self.conv.session(name) else {
            return Err(StepFailure::new(
                format!("no session {name:?} to verify"),
                "a session",
                true,
            ));
        };
        // An edit that "breaks" a signature which never verified proves
        // nothing: the unedited hello must recover to the pinned address
        // before any edit is judged.
        let honest = Transcript::from_hellos(&s.hello, &s.server).render();
        let genuine = matches!(
            recover_channel_signer(honest.as_bytes(), &s.server.signature, SignaturePolicy::default()),
            Ok(a) if a == self.cfg.target.address
        );
        if !genuine {
            return Err(StepFailure::new(
                "the ServerHello signature does not recover to the pinned address, so no edit can be judged",
                "a ServerHello signed by the pinned agent",
                false,
            ));
        }
        let mut hello = s.hello.clone();
        let mut server = s.server.clone();
        match edit {
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
        let without_field = match without {
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
        let payload = Transcript::from_hellos(&hello, &server).render_without(without_field);
        let got = matches!(
            recover_channel_signer(payload.as_bytes(), &server.signature, SignaturePolicy::default()),
            Ok(a) if a == self.cfg.target.address
        );
        crate::judge::handshake::check_binding(&self.claim, expect, edit, without, got)?;
        Ok(())
    }

    /// Holds a call's answer against the step's expectation (none: an
    /// honest call) with the one judge, after expanding its placeholders.
    pub(super) fn judge(&mut self, expect: Option<&Expect>, a: &Answer) -> StepResult {
        let Some(e) = expect else {
            return Ok(crate::judge::response::honest_call(&self.claim, a)?);
        };
        if e.executions_delta.is_some() && a.executions.is_none() {
            // Only this part cannot be judged; the rest of the step
            // (status, 409, resend) still is.
            if let Some(x) = self.transcript.last_mut() {
                x.note = Some("not checked: how many times the call executed (the target's answers carry no execution counter; the demo app of `serve` reports one)".into());
            }
        }
        let e = Expect {
            inner_contains: e.inner_contains.as_deref().map(|t| self.expand(t)),
            inner_lacks: e.inner_lacks.as_deref().map(|t| self.expand(t)),
            ..e.clone()
        };
        Ok(crate::judge::response::check_call(&self.claim, &e, a)?)
    }

    /// Adds an answer's outer response headers to the bytes the blind
    /// check searches: a secret echoed in a header leaks as surely as one
    /// in the body.
    pub(super) fn remember_headers(&mut self, headers: &[(String, String)]) {
        for (k, v) in headers {
            self.outer_bytes.extend_from_slice(k.as_bytes());
            self.outer_bytes.push(b':');
            self.outer_bytes.extend_from_slice(v.as_bytes());
            self.outer_bytes.push(b'\n');
        }
    }

    pub(super) fn blind(&mut self) -> StepResult {
        Ok(crate::judge::gate::check_blind(
            &self.claim,
            &self.outer_bytes,
            &self.cfg.target.access_key,
            &self.canaries,
        )?)
    }
}
