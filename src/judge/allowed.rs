//! Inputs whose honest answer the protocol fixes only in part (the
//! fuzzer's): what an honest target may answer ([`Allowance`]: accept,
//! refuse, either; the exact refusal status; whether the inner status must
//! be 2xx), and each check of an [`Answer`] against it. Every check fires
//! one row of [`Check`], so its requirement and level come from the table.

use super::check::{Check, Hit};
use super::shorten;
use crate::peer::{Answer, Ending};
use crate::protocol::error::ChannelErrorCode;
use crate::protocol::wire::{CodedErrorBody, PlainErrorBody, ServerHello};

/// What an honest target may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// A sealed 200.
    Accept,
    /// A documented refusal; a 200 contradicts the input.
    Refuse,
    /// Either, as long as it is well formed.
    Either,
}

/// What an honest target may answer to one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// Accept, refuse or either.
    pub allowed: Allowed,
    /// The exact refusal status, when the protocol fixes it.
    pub status: Option<u16>,
    /// The inner status must be 2xx (true), must not be (false), or is free.
    pub inner_ok: Option<bool>,
}

/// How a request was put on the wire, as far as the judgement goes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sending {
    /// Sent as raw bytes with edited framing: a close or drop is a fair
    /// answer, and only the crash, hang and 5xx checks apply.
    pub framed: bool,
    /// The framing promised bytes never sent (LIM-2).
    pub incomplete: bool,
    /// An incomplete request held this long (seconds) before the target
    /// answered or closed it, when longer than the answer timeout.
    pub slow: Option<f64>,
}

fn body_text(body: &[u8]) -> String {
    shorten(&String::from_utf8_lossy(body), 300)
}

/// How the exchange ended, before any status is looked at: a whole
/// request left unanswered is a hang (CALL-2); an incomplete one held is
/// the LIM-2 wait, never a MUST; a drop is fair only for edited framing.
/// `Ok(false)`: nothing came to judge further (a fair close).
pub fn check_ending(sending: &Sending, a: &Answer) -> Result<bool, Hit> {
    match &a.ending {
        Ending::TimedOut { secs } | Ending::Held { secs } if sending.incomplete => Err((
            Check::HeldRequest,
            format!("an incomplete request held past --slow-request-limit ({secs:.1}s)"),
        )),
        Ending::Held { secs } | Ending::TimedOut { secs } => Err((
            Check::Timeout,
            format!("no answer within {secs:.1}s to a whole request"),
        )),
        _ if sending.incomplete && sending.slow.is_some() => Err((
            Check::SlowRequest,
            format!(
                "held the incomplete request {:.1}s, then {}",
                sending.slow.unwrap_or_default(),
                describe(a)
            ),
        )),
        Ending::Dropped(d) if !sending.framed => Err((Check::DroppedConnection, d.clone())),
        Ending::Dropped(_) | Ending::Closed => Ok(false),
        Ending::Answered if a.status >= 500 => Err((
            Check::ServerError,
            format!("HTTP {}: {}", a.status, body_text(&a.body)),
        )),
        Ending::Answered => Ok(true),
    }
}

/// A one-line account of an answer, for findings.
pub fn describe(a: &Answer) -> String {
    match &a.ending {
        Ending::Answered => format!(
            "HTTP {}: {}",
            a.status,
            shorten(&String::from_utf8_lossy(&a.body), 4096)
        ),
        Ending::Closed => "connection closed without an answer".into(),
        Ending::Dropped(e) => format!("dropped: {e}"),
        Ending::TimedOut { secs } => format!("timeout after {secs:.1}s"),
        Ending::Held { secs } => format!("held {secs:.1}s without an answer"),
    }
}

/// A refusal of a call is a documented channel error whose code belongs
/// with its status.
pub fn check_channel_refusal(status: u16, body: &[u8]) -> Result<(), Hit> {
    let pairing = CodedErrorBody::parse(body)
        .map_err(|e| format!("HTTP {status} body is not a channel error: {e}"))
        .and_then(|coded| {
            let code = coded.code.as_deref().unwrap_or("");
            ChannelErrorCode::check_pairing(code, status).map(|_| ())
        });
    pairing.map_err(|why| (Check::UndocumentedBody, why))
}

/// The answer to a hello, whatever it held: a 200 is a ServerHello, a
/// refusal a documented handshake error body.
pub fn check_hello_answer(status: u16, body: &[u8]) -> Result<(), Hit> {
    if status == 200 {
        return ServerHello::parse(body).map(|_| ()).map_err(|e| {
            (
                Check::UndocumentedBody,
                format!("HTTP 200 without a ServerHello: {e}"),
            )
        });
    }
    let plain = PlainErrorBody::parse(body).is_ok();
    let coded = CodedErrorBody::parse(body).is_ok_and(|c| c.code.is_some() || c.message.is_some());
    if plain || coded {
        Ok(())
    } else {
        Err((
            Check::UndocumentedBody,
            format!(
                "HTTP {status} refusal body is not a documented shape: {}",
                body_text(body)
            ),
        ))
    }
}

/// A call's answer against what an honest target may answer: a refusal
/// is documented, has the status the protocol fixes and is allowed at
/// all; a 200 is allowed, opens whole, and its inner status is what the
/// inner request calls for. Run after [`check_ending`].
pub fn check_call(allowance: &Allowance, a: &Answer) -> Result<(), Hit> {
    let status = a.status;
    if status != 200 {
        check_channel_refusal(status, &a.body)?;
        if allowance.allowed == Allowed::Accept {
            return Err((
                Check::RefusedValid,
                format!("HTTP {status}: {}", body_text(&a.body)),
            ));
        }
        if let Some(want) = allowance.status.filter(|w| *w != status) {
            return Err((
                Check::WrongStatus,
                format!(
                    "expected HTTP {want}, got HTTP {status}: {}",
                    body_text(&a.body)
                ),
            ));
        }
        return Ok(());
    }
    if allowance.allowed == Allowed::Refuse {
        return Err((
            Check::AcceptedInvalid,
            format!(
                "HTTP 200 for an input the protocol refuses: {}",
                body_text(&a.body)
            ),
        ));
    }
    let inner = super::response::sealed(a)?;
    let ok = (200..300).contains(&inner);
    match allowance.inner_ok {
        Some(false) if ok => Err((
            Check::InnerAuthBypass,
            format!("inner status {inner} for an inner request without the access key"),
        )),
        // The 426 gate is for plaintext requests; inside the channel an
        // agent run must execute (GATE-4), as the suite judges it.
        Some(true) if inner == 426 => Err((
            Check::ChannelGated,
            "inner status 426 for an agent request sent through the channel".into(),
        )),
        Some(true) if !ok => Err((
            Check::RefusedValid,
            format!("inner status {inner} for a valid call"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Level;

    fn refused(status: u16, code: ChannelErrorCode) -> Answer {
        Answer {
            status,
            body: crate::protocol::error::channel_error_body(code, "x").into_bytes(),
            ..Answer::default()
        }
    }

    #[test]
    fn refusals_are_documented_with_the_status_their_code_has() {
        let want = Allowance {
            allowed: Allowed::Refuse,
            status: Some(409),
            inner_ok: None,
        };
        assert!(check_call(&want, &refused(409, ChannelErrorCode::Replay)).is_ok());
        let (c, _) = check_call(&want, &refused(400, ChannelErrorCode::Replay)).unwrap_err();
        assert_eq!(c, Check::UndocumentedBody);
        let (c, _) = check_call(&want, &refused(400, ChannelErrorCode::Malformed)).unwrap_err();
        assert_eq!(c, Check::WrongStatus);
        let accept = Allowance {
            allowed: Allowed::Accept,
            ..want
        };
        let (c, _) = check_call(&accept, &refused(409, ChannelErrorCode::Replay)).unwrap_err();
        assert_eq!(c, Check::RefusedValid);
    }

    #[test]
    fn a_held_incomplete_request_is_never_a_must() {
        let held = Answer {
            ending: Ending::Held { secs: 60.0 },
            ..Answer::default()
        };
        let incomplete = Sending {
            framed: true,
            incomplete: true,
            slow: None,
        };
        let (c, _) = check_ending(&incomplete, &held).unwrap_err();
        assert_eq!((c, c.level()), (Check::HeldRequest, Level::Should));
        let (c, _) = check_ending(&Sending::default(), &held).unwrap_err();
        assert_eq!((c, c.level()), (Check::Timeout, Level::Must));
        let closed = Answer {
            ending: Ending::Closed,
            ..Answer::default()
        };
        assert_eq!(check_ending(&incomplete, &closed), Ok(false));
    }

    #[test]
    fn a_plaintext_200_to_a_valid_call_is_not_a_sealed_answer() {
        let a = Answer {
            status: 200,
            body: b"{\"ok\":true}".to_vec(),
            ..Answer::default()
        };
        let accept = Allowance {
            allowed: Allowed::Accept,
            status: None,
            inner_ok: Some(true),
        };
        assert_eq!(
            check_call(&accept, &a).unwrap_err().0,
            Check::PlaintextResponse
        );
    }
}
