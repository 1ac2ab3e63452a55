//! Before any input: each target's first honest handshake and one honest
//! call, judged. A ServerHello that does not verify against the pinned
//! address, or a session whose keys do not open the target's answer, is a
//! finding with its requirement (no fuzz case could open a session to show
//! it); a target that does not answer, or does not speak the protocol at
//! all, stops the run. Also learns whether a target paces handshakes.

use crate::peer::{self, seal, HandshakePacer, KeyUse, Offer, RateLimitPolicy, ResponseReader};
use crate::protocol::error::HandshakeError;
use crate::protocol::session::ClientSession;
use crate::protocol::wire::{CodedErrorBody, InnerRequest, ServerHello};
use crate::rng::SeededRandom;
use crate::transport::OuterRequest;

/// What the first honest exchange with a target showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// The hello verified and the keys opened the answer to a call.
    Sound,
    /// The target answered the hello `429`: it paces handshakes.
    RateLimited,
    /// The target speaks the protocol but breaks a requirement no input
    /// can get past: no session opens, or its keys open nothing.
    Broken {
        /// The requirement broken.
        requirement: &'static str,
        /// What was seen.
        detail: String,
    },
}

/// Why a target cannot be compared at all.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// Nothing answers.
    #[error("{0}")]
    Unreachable(String),
    /// The target holds no agent with the pinned address: the targets
    /// file names the wrong one.
    #[error("the target has no agent with address {0} (check agent_address)")]
    NoSuchAgent(String),
    /// The target answers, but not as a secure-channel server.
    #[error("the target does not speak the secure channel: {0}")]
    NotSpeaking(String),
}

/// The requirement a ServerHello breaks when the honest client refuses it.
pub fn hello_requirement(e: &HandshakeError) -> &'static str {
    match e {
        // The version a server answers with is fixed (HS-4).
        HandshakeError::UnsupportedVersion(_) => "HS-4",
        // encPub or sid not decoding as base64url of the right size.
        HandshakeError::Malformed(_) => "ENC-1",
        HandshakeError::LowOrderKey => "HS-7",
        // Signed by another key, under another domain, over another
        // transcript or with another address rule: the hello is not signed
        // by the agent of `agentAddress` as HS-1 demands.
        HandshakeError::IdentityMismatch(_) => "HS-1",
    }
}

/// The requirement an answer breaks when it does not open under the
/// per-call response key, from the key it does open under.
fn key_requirement(opened_with: Option<KeyUse>) -> &'static str {
    match opened_with {
        // s2c itself instead of the per-call key derived from it.
        Some(KeyUse::SessionS2c) => "KS-2",
        // A key derived from c2s, or nothing we can derive: the session
        // keys themselves are not the ones the hello fixes.
        _ => "KS-1",
    }
}

/// One honest handshake (no retry on `429`) and, when it verifies, one
/// honest buffered call on the session it gives.
pub async fn check(target: &peer::Target, seed: u64) -> Result<Preflight, PreflightError> {
    let mut rng = SeededRandom::new(seed, "diff-preflight");
    let offer = Offer::random(target.address, &mut rng);
    let unlimited = HandshakePacer::new(None);
    let reply = peer::post_hello(target, offer.body(), &unlimited, RateLimitPolicy::NONE)
        .await
        .map_err(|e| PreflightError::Unreachable(e.to_string()))?
        .response;
    match reply.status {
        200 => {}
        429 => return Ok(Preflight::RateLimited),
        404 if String::from_utf8_lossy(&reply.body).contains("Unknown agent address") => {
            return Err(PreflightError::NoSuchAgent(target.address.to_string()))
        }
        s => {
            return Err(PreflightError::NotSpeaking(format!(
                "POST /secure/session answered {s}: {}",
                crate::netfuzz::exec::lossy(&reply.body, 200)
            )))
        }
    }
    let hello = ServerHello::parse(&reply.body)
        .map_err(|e| PreflightError::NotSpeaking(format!("its ServerHello is unusable ({e})")))?;
    let session = match offer.finish(&hello) {
        Ok(s) => s,
        Err(e) => {
            return Ok(Preflight::Broken {
                requirement: hello_requirement(&e),
                detail: format!(
                    "the ServerHello does not verify against the pinned address {}: {e}",
                    target.address
                ),
            })
        }
    };
    Ok(honest_call(target, &session).await)
}

/// Seals `GET /agents/{agent}` as request 1 and opens the answer; a
/// transport failure here is left to the inputs to judge.
async fn honest_call(target: &peer::Target, session: &ClientSession) -> Preflight {
    let inner = InnerRequest {
        method: "GET".into(),
        path: format!("/agents/{}", target.agent()),
        authorization: Some(format!("Bearer {}", target.access_key)),
        ..InnerRequest::default()
    };
    let sid = session.sid().to_owned();
    let ct = seal::sealed_ct(&session.keys().c2s, &sid, 1, inner.to_json().as_bytes());
    let envelope = seal::envelope(&sid, 1, ct, |_| {});
    let call = target.outer(OuterRequest::post_json("/secure/call", envelope));
    let Ok(answer) = target.send(&call).await else {
        return Preflight::Sound;
    };
    let code = CodedErrorBody::parse(&answer.body)
        .ok()
        .and_then(|c| c.code);
    if answer.status == 400 && code.as_deref() == Some("secure_decrypt_failed") {
        return Preflight::Broken {
            requirement: "KS-1",
            detail: "the target cannot open an honest call sealed with the c2s key its \
                     own ServerHello gives (400 secure_decrypt_failed)"
                .into(),
        };
    }
    if answer.status != 200 || peer::is_event_stream(answer.header("content-type")) {
        return Preflight::Sound;
    }
    let mut strict = ResponseReader::new(&sid, session.keys(), 1).without_raw();
    if strict.push(&answer.body).plaintext.is_some() {
        return Preflight::Sound;
    }
    let mut any = ResponseReader::trying_every_key(&sid, session.keys(), 1).without_raw();
    let opened_with = any.push(&answer.body).plaintext.is_some().then(|| {
        any.opened()
            .last()
            .map(|f| f.key)
            .unwrap_or(KeyUse::PerCall)
    });
    if opened_with.is_none() && crate::protocol::wire::Frame::parse(&answer.body).is_err() {
        // Not a frame at all: a plaintext answer is RESP-2's, which the
        // inputs judge.
        return Preflight::Sound;
    }
    Preflight::Broken {
        requirement: key_requirement(opened_with),
        detail: format!(
            "the answer to an honest call does not open under the per-call response key \
             the ServerHello's keys give{}",
            match opened_with {
                Some(k) => format!(" (it opens under {k:?})"),
                None => String::new(),
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_hello_refusal_has_its_requirement() {
        assert_eq!(
            hello_requirement(&HandshakeError::IdentityMismatch("x".into())),
            "HS-1"
        );
        assert_eq!(
            hello_requirement(&HandshakeError::UnsupportedVersion(2)),
            "HS-4"
        );
        assert_eq!(hello_requirement(&HandshakeError::LowOrderKey), "HS-7");
        assert_eq!(key_requirement(Some(KeyUse::SessionS2c)), "KS-2");
        assert_eq!(key_requirement(Some(KeyUse::PerCallC2s)), "KS-1");
        assert_eq!(key_requirement(None), "KS-1");
    }
}
