//! A call's answer: the frames (how many, opened under which key, in
//! order, ending in an authenticated fin), the inner response, and an
//! honest call's whole answer.

use super::check::{Check, Hit};
use super::encoding;
use super::refusal::check_status;
use super::{shorten, Checked, Claim, Expect, Finding};
use crate::peer::{Answer, FrameIssue, KeyUse};
use crate::protocol::error::FrameError;
use crate::report::Level;

/// The keys of a session as an honest call's answer shows them (KS-1,
/// KS-2): a target that cannot open a call sealed with the `c2s` key its
/// own ServerHello gives, or a buffered 200 frame that does not open under
/// the per-call response key, is a MUST finding naming the key it does
/// open under. A refusal, a stream, or a body that is no frame at all
/// (RESP-2's question) passes here.
pub fn honest_call_keys(a: &Answer) -> Checked {
    let code = crate::protocol::wire::CodedErrorBody::parse(&a.body)
        .ok()
        .and_then(|c| c.code);
    if a.status == 400 && code.as_deref() == Some("secure_decrypt_failed") {
        return Err(Claim::new("KS-1", Level::Must).miss(
            "the target cannot open an honest call sealed with the c2s key its \
             own ServerHello gives (400 secure_decrypt_failed)",
            "the call opened under the session's c2s key",
        ));
    }
    if a.status != 200 || a.streamed || a.frames == 0 || (a.opened && a.per_call_key) {
        return Ok(());
    }
    let opened_with = if a.opened { a.key } else { None };
    // s2c itself instead of the per-call key derived from it is KS-2's; a
    // key derived from c2s, or nothing derivable, means the session keys
    // themselves are not the ones the hello fixes (KS-1).
    let requirement = match opened_with {
        Some(KeyUse::SessionS2c) => "KS-2",
        _ => "KS-1",
    };
    Err(Claim::new(requirement, Level::Must).miss(
        format!(
            "the answer to an honest call does not open under the per-call response key \
             the ServerHello's keys give{}",
            match opened_with {
                Some(k) => format!(" (it opens under {k:?})"),
                None => String::new(),
            }
        ),
        "every frame opened under the per-call response key",
    ))
}

fn problems_note(a: &Answer, open: &str, sep: &str, close: &str) -> String {
    if a.problems.is_empty() {
        String::new()
    } else {
        format!("{open}{}{close}", a.problems.join(sep))
    }
}

/// An honest call (a step with no expectation) must come back 200 with a
/// complete, authenticated 2xx answer; otherwise the precondition failed.
pub fn honest_call(claim: &Claim, a: &Answer) -> Checked {
    let healthy = a.status == 200
        && a.opened
        && a.fin
        && a.in_order
        && a.inner_status.is_some_and(|s| (200..300).contains(&s));
    if healthy {
        return Ok(());
    }
    Err(claim.unmet(
        format!(
            "honest call got outer {} inner {:?} ({} frame(s), fin {}, in order {}, {}): {}",
            a.status,
            a.inner_status,
            a.frames,
            a.fin,
            a.in_order,
            if a.problems.is_empty() {
                "no frame problems".into()
            } else {
                a.problems.join("; ")
            },
            shorten(&String::from_utf8_lossy(&a.body), 200)
        ),
        "200 with a complete, authenticated 2xx answer",
    ))
}

/// What a 200 answer to a call opened whole shows: every frame under
/// the per-call key, in order, ending in an authenticated `fin`.
const WHOLE: &str =
    "every frame opened under the per-call key, in order, ending in an authenticated fin";

/// The one judge of a 200 answer to a call opened whole, for the suite's
/// `sealed` expectation and the fuzzer's oracles alike: a sealed frame
/// (not plaintext), every value canonically encoded (ENC-1, ENC-2), every
/// frame under the per-call key in order, ending in an authenticated `fin`
/// on a separate empty frame for a stream, and for a buffered answer an
/// inner response that parses. The first fault found is a row of
/// [`Check`], which gives its requirement and level. Gives the inner
/// status (200 for a stream, which has none).
pub fn sealed(a: &Answer) -> Result<u16, Hit> {
    if !a.streamed && a.frames == 0 {
        return Err((
            Check::PlaintextResponse,
            format!(
                "HTTP 200 body is not a sealed frame: {}",
                shorten(&String::from_utf8_lossy(&a.body), 300)
            ),
        ));
    }
    if let Some(FrameIssue::Malformed(e)) = &a.frame_issue {
        return Err((Check::PlaintextResponse, e.to_string()));
    }
    if let Some(p) = encoding::problems(&a.emitted)
        .into_iter()
        .find(|p| p.requirement != "ID-3")
    {
        return Err((Check::NotCanonical, p.what));
    }
    let issue = match &a.frame_issue {
        Some(FrameIssue::AfterFin(seq)) => Some(FrameError::AfterFin(*seq)),
        Some(FrameIssue::OutOfOrder { expected, got }) => Some(FrameError::OutOfOrder {
            expected: *expected,
            got: *got,
        }),
        Some(FrameIssue::Decrypt(seq)) => Some(FrameError::Decrypt(*seq)),
        _ => None,
    };
    if let Some(e) = issue {
        return Err((Check::FrameNotOpening, e.to_string()));
    }
    if a.opened && !a.per_call_key {
        return Err((
            Check::FrameNotOpening,
            "the response opens, but not under the per-call response key HKDF(s2c, respkey:<seq>) (KS-2): it is sealed with another key".into(),
        ));
    }
    if !a.finished {
        let e = FrameError::Truncated {
            frames: a.frames as u64,
        };
        return Err((Check::MissingFin, e.to_string()));
    }
    if a.streamed && a.fin_carries_data {
        return Err((
            Check::FinMisplaced,
            "the stream's fin frame carries data: fin belongs on a separate empty frame (RESP-3)"
                .into(),
        ));
    }
    // Whatever the frame reader saw beyond the single faults above (a
    // stream that broke or ended mid-event after its fin) still leaves the
    // answer short of whole.
    if !(a.opened && a.per_call_key && a.in_order && a.fin) {
        return Err((
            Check::FrameNotOpening,
            format!(
                "a 200 answer that does not open whole: {} frame(s), opened {}, per-call key {}, in order {}, fin {}{}",
                a.frames,
                a.opened,
                a.per_call_key,
                a.in_order,
                a.fin,
                problems_note(a, " (", "; ", ")")
            ),
        ));
    }
    if a.streamed {
        return Ok(200);
    }
    match a.inner_status {
        None => Err((Check::FrameNotOpening, "inner response unreadable".into())),
        Some(s) if !(100..=999).contains(&s) => Err((
            Check::FrameNotOpening,
            format!("inner status {s} is not HTTP"),
        )),
        Some(s) => Ok(s),
    }
}

/// Checks `sealed`: a 200 answer to a call is judged by [`sealed`], and
/// its first fault is a finding of that check's requirement and level;
/// any other status passes.
pub fn check_sealed(e: &Expect, a: &Answer) -> Checked {
    if e.sealed != Some(true) || a.status != 200 {
        return Ok(());
    }
    sealed(a).map(|_| ()).map_err(|(check, what)| Finding {
        expected: WHOLE.into(),
        ..check.finding(what)
    })
}

/// Holds a call's answer against every expectation of the step: the outer
/// status and body, then the frames and the inner response. The caller
/// expands placeholders in `e` (`{key}`, `{agent}`) first; an expected
/// execution count with no counter in the answer is not judged here.
pub fn check_call(claim: &Claim, e: &Expect, a: &Answer) -> Checked {
    check_sealed(e, a)?;
    check_status(claim, e, a.status, &a.headers, &a.body)?;
    let fail = |what: String, want: String| Err(claim.miss(what, want));
    if let Some(delta) = e.executions_delta {
        match (a.previous_executions, a.executions) {
            (_, None) => {}
            (None, Some(_)) => {
                return Err(claim.unmet(
                    "no earlier call reported the execution counter",
                    "an earlier counted call",
                ))
            }
            (Some(before), Some(now)) if now.wrapping_sub(before) != delta => {
                return fail(
                    format!(
                    "the execution counter moved from {before} to {now}: something ran {} time(s)",
                    now.wrapping_sub(before)
                ),
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
        let got = a.header(name);
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
            return fail(
                format!(
                    "the response {} with an authenticated fin frame{}",
                    if a.fin { "ended" } else { "did not end" },
                    problems_note(a, " (", "; ", ")")
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
                format!(
                    "the frames are not all opened in order 0, 1, 2, … ending in an authenticated fin ({} frame(s){})",
                    a.frames,
                    problems_note(a, ": ", "; ", "")
                ),
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
    if let Some(want) = e.canonical {
        let problems = encoding::problems(&a.emitted);
        if problems.is_empty() != want {
            return fail(
                if problems.is_empty() {
                    "every encoding is canonical".into()
                } else {
                    problems
                        .iter()
                        .map(|p| p.what.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                },
                format!("canonical encodings = {want} (ENC-1)"),
            );
        }
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
    let inner = String::from_utf8_lossy(&a.inner_body);
    if let Some(want) = &e.inner_contains {
        if !inner.contains(want.as_str()) {
            return fail(
                format!("inner body {}", shorten(&inner, 200)),
                format!("inner body containing {want:?}"),
            );
        }
    }
    if let Some(bad) = &e.inner_lacks {
        if inner
            .to_ascii_lowercase()
            .contains(&bad.to_ascii_lowercase())
        {
            return fail(
                format!("inner body contains {bad:?}"),
                format!("no {bad:?} in the inner body"),
            );
        }
    }
    Ok(())
}

/// Holds a plaintext request's answer: with an expectation, its status and
/// body; without one (an honest precondition), a 2xx.
pub fn check_plain(claim: &Claim, e: Option<&Expect>, a: &Answer) -> Checked {
    match e {
        Some(e) => check_status(claim, e, a.status, &a.headers, &a.body),
        None if (200..300).contains(&a.status) => Ok(()),
        None => Err(claim.unmet(format!("got {}", a.status), "2xx")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::allowed::{check_call as fuzz_call, Allowance, Allowed};

    #[test]
    fn the_suite_and_the_fuzzer_judge_a_sealed_answer_alike() {
        let sealed = Expect {
            sealed: Some(true),
            ..Expect::default()
        };
        let either = Allowance {
            allowed: Allowed::Either,
            status: None,
            inner_ok: None,
        };
        let fin_on_data = Answer {
            status: 200,
            streamed: true,
            frames: 2,
            opened: true,
            per_call_key: true,
            in_order: true,
            finished: true,
            fin_carries_data: true,
            ..Answer::default()
        };
        let suite = check_sealed(&sealed, &fin_on_data).unwrap_err();
        let (check, _) = fuzz_call(&either, &fin_on_data).unwrap_err();
        assert_eq!(check, Check::FinMisplaced);
        assert_eq!(
            (suite.requirement.as_str(), suite.level),
            (check.requirement(), check.level())
        );
        let broke_after_fin = Answer {
            fin_carries_data: false,
            problems: vec!["the stream broke: reset".into()],
            ..fin_on_data.clone()
        };
        let suite = check_sealed(&sealed, &broke_after_fin).unwrap_err();
        let (check, _) = fuzz_call(&either, &broke_after_fin).unwrap_err();
        assert_eq!(check, Check::FrameNotOpening);
        assert_eq!(suite.requirement, check.requirement());
        let whole = Answer {
            fin: true,
            problems: Vec::new(),
            ..broke_after_fin
        };
        assert_eq!(check_sealed(&sealed, &whole), Ok(()));
        assert_eq!(fuzz_call(&either, &whole), Ok(()));
        let refused = Answer {
            status: 409,
            ..Answer::default()
        };
        assert_eq!(check_sealed(&sealed, &refused), Ok(()));
    }
}
