//! The expectations a fuzzer finding leaves when the protocol fixes no
//! single answer: the target stayed up (`alive`), refused (`refused`),
//! refused in a documented shape (`documented`), and sealed whatever it
//! accepted (`sealed`).

use crate::protocol::error::ChannelErrorCode;
use crate::protocol::wire::{CodedErrorBody, PlainErrorBody};

use super::super::model::Expect;
use super::{truncate, Answer, StepFailure, StepResult};

/// Checks `alive`, `refused` and `documented` against an answer's status
/// and body (status 0: a connection closed without an answer, fair only
/// for broken framing, where no other status comes).
pub(super) fn check(e: &Expect, status: u16, body: &[u8]) -> StepResult {
    let text = || truncate(&String::from_utf8_lossy(body), 300);
    if e.alive == Some(true) && status >= 500 {
        return Err(StepFailure::new(
            format!("got status {status}: {}", text()),
            "an answer below 500: every bad input gets a documented 4xx refusal",
            false,
        ));
    }
    if let Some(want) = e.refused {
        let got = !(200..300).contains(&status);
        if got != want {
            return Err(StepFailure::new(
                format!("got status {status}: {}", text()),
                if want {
                    "a refusal (not 2xx)"
                } else {
                    "a 2xx answer"
                },
                false,
            ));
        }
    }
    if e.documented == Some(true) && status != 200 && status != 0 {
        if let Err(why) = documented(status, body) {
            return Err(StepFailure::new(
                format!("{why}: {}", text()),
                "a documented error body whose code belongs with its status",
                false,
            ));
        }
    }
    Ok(())
}

/// A channel error whose code belongs with `status`, or a handshake
/// refusal (`{"error":"…"}` or a coded body without a channel code).
fn documented(status: u16, body: &[u8]) -> Result<(), String> {
    if PlainErrorBody::parse(body).is_ok() {
        return Ok(());
    }
    let coded = CodedErrorBody::parse(body)
        .map_err(|e| format!("HTTP {status} body is not a documented error: {e}"))?;
    let Some(code) = coded.code.as_deref() else {
        return match coded.message {
            Some(_) => Ok(()),
            None => Err(format!("HTTP {status} error without code or message")),
        };
    };
    ChannelErrorCode::check_pairing(code, status).map(|_| ())
}

/// Checks `sealed`: a 200 answer to a call opened whole (every frame under
/// the per-call key, in order, ending in an authenticated `fin`); any
/// other status passes.
pub(super) fn check_sealed(e: &Expect, a: &Answer) -> StepResult {
    if e.sealed != Some(true) || a.status != 200 {
        return Ok(());
    }
    if a.opened && a.per_call_key && a.in_order && a.fin {
        return Ok(());
    }
    Err(StepFailure::new(
        format!(
            "a 200 answer that does not open whole: {} frame(s), opened {}, per-call key {}, in order {}, fin {}{}",
            a.frames,
            a.opened,
            a.per_call_key,
            a.in_order,
            a.fin,
            if a.problems.is_empty() {
                String::new()
            } else {
                format!(" ({})", a.problems.join("; "))
            }
        ),
        "every frame opened under the per-call key, in order, ending in an authenticated fin",
        false,
    ))
}
