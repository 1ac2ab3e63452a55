//! Before any input: each target's first honest handshake and one honest
//! call, judged. A ServerHello that does not verify against the pinned
//! address, or a session whose keys do not open the target's answer, is a
//! finding with its requirement (no fuzz case could open a session to show
//! it); a target that does not answer, or does not speak the protocol at
//! all, stops the run. Also learns whether a target paces handshakes.

use crate::judge;
use crate::peer::edit::{CallStep, Inner, Step};
use crate::peer::{self, Conversation, HandshakePacer, HelloCheck, Offer, RateLimitPolicy};
use crate::rng::SeededRandom;

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
        requirement: String,
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

/// One honest handshake (no retry on `429`) and, when it verifies, one
/// honest buffered call on the session it gives, both through the engine
/// and judged by the judge.
pub async fn check(target: &peer::Target, seed: u64) -> Result<Preflight, PreflightError> {
    let mut rng = SeededRandom::new(seed, "diff-preflight");
    let offer = Offer::random(target.address, &mut rng);
    let unlimited = HandshakePacer::new(None);
    let mut conversation = Conversation::new(target, &unlimited, RateLimitPolicy::NONE);
    let reply = conversation
        .handshake(SESSION, &offer)
        .await
        .map_err(|e| PreflightError::Unreachable(e.to_string()))?;
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
    if let Some(HelloCheck::Unusable(e)) = &reply.hello {
        return Err(PreflightError::NotSpeaking(format!(
            "its ServerHello is unusable ({e})"
        )));
    }
    if let Err(f) = judge::handshake::hello_accepted(&reply, &target.address.to_string()) {
        return Ok(broken(f));
    }
    // A transport failure here is left to the inputs to judge.
    let Ok(answer) = conversation.run(SESSION, &honest_call()).await else {
        return Ok(Preflight::Sound);
    };
    Ok(match judge::response::honest_call_keys(&answer) {
        Ok(()) => Preflight::Sound,
        Err(f) => broken(f),
    })
}

/// The session the preflight opens.
const SESSION: &str = "preflight";

/// `GET /agents/{agent}` with the key, sealed as request 1.
fn honest_call() -> Step {
    Step::Call(CallStep {
        seq: Some(1),
        ..CallStep::honest(Inner::agent_card())
    })
}

fn broken(f: judge::Finding) -> Preflight {
    Preflight::Broken {
        requirement: f.requirement,
        detail: f.actual,
    }
}

#[cfg(test)]
mod tests {
    use crate::judge::handshake::hello_requirement;
    use crate::peer::{Answer, KeyUse};
    use crate::protocol::error::HandshakeError;

    #[test]
    fn each_hello_refusal_has_its_requirement() {
        use crate::report::Level;
        assert_eq!(
            hello_requirement(&HandshakeError::IdentityMismatch("x".into())),
            ("HS-1, HS-2, ID-1, ID-2, ID-3", Level::Must)
        );
        assert_eq!(
            hello_requirement(&HandshakeError::UnsupportedVersion(2)),
            ("HS-4", Level::Must)
        );
        // HS-7 is a SHOULD: the fuzzer and diff cite it alike.
        assert_eq!(
            hello_requirement(&HandshakeError::LowOrderKey),
            ("HS-7", Level::Should)
        );
    }

    #[test]
    fn each_wrong_key_has_its_requirement() {
        let opened_under = |key: Option<KeyUse>| Answer {
            status: 200,
            frames: 1,
            opened: key.is_some(),
            per_call_key: key == Some(KeyUse::PerCall),
            key,
            ..Answer::default()
        };
        let requirement = |a: &Answer| {
            crate::judge::response::honest_call_keys(a)
                .err()
                .map(|f| f.requirement)
        };
        assert_eq!(requirement(&opened_under(Some(KeyUse::PerCall))), None);
        assert_eq!(
            requirement(&opened_under(Some(KeyUse::SessionS2c))).as_deref(),
            Some("KS-2")
        );
        assert_eq!(
            requirement(&opened_under(Some(KeyUse::PerCallC2s))).as_deref(),
            Some("KS-1")
        );
        assert_eq!(requirement(&opened_under(None)).as_deref(), Some("KS-1"));
        // Not a frame at all: RESP-2's question, judged by the inputs.
        let plain = Answer {
            status: 200,
            ..Answer::default()
        };
        assert_eq!(requirement(&plain), None);
    }
}
