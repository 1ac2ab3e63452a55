//! The oracles: what the protocol allows as an answer to each input, and
//! the judge's check that fires when the target's answer falls outside it.
//! An oracle is a row of the judge's check table
//! ([`crate::judge::check::Check`]), with the requirement it guards and
//! that requirement's level; a few signatures judge another requirement at
//! another level ([`crate::judge::check::REFINED`]). This file only maps a
//! step to what an honest target may answer
//! ([`crate::judge::allowed::Allowance`]) and the signature a hit is filed
//! under; every check of the answer is the judge's. Only a `MUST` firing
//! fails a run; `SHOULD` ones are warnings, `UPSTREAM` ones information.

use crate::judge::allowed::{self, Allowance, Allowed as Class, Sending};
use crate::judge::check::Hit;
use crate::judge::handshake::{Fresh, Freshness, Repeated};
use crate::judge::order::{self, Fixed};
use crate::judge::Claim;
use crate::peer::Ending;
use crate::protocol::encoding::{b64url_decode, B64Strictness};
use crate::protocol::wire::CodedErrorBody;

use crate::report::Level;

use super::case::{Auth, CallStep, EnvelopeEdit, Inner, Signature, Step};
use super::exec::{Outcome, TargetInfo};

/// The oracles are the judge's checks.
pub use crate::judge::check::Check as Oracle;
/// The oracle table of `docs/FUZZING.md`, generated from the judge.
pub use crate::judge::check::{
    judged, table as oracle_table, with_table as with_oracle_table, TABLE_MARKERS,
};

/// The requirement and level of a saved signature (`None` for an oracle
/// name this version does not know).
pub fn judged_signature(sig: &Signature) -> Option<(&'static str, Level)> {
    let oracle = Oracle::from_name(&sig.oracle)?;
    Some(judged(oracle, &sig.layer, &sig.field))
}

/// A fired oracle: the signature it files the finding under, the
/// requirement and level it judges, and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    /// The bucket.
    pub signature: Signature,
    /// The requirement IDs judged (see [`judged`]).
    pub requirement: &'static str,
    /// Their level: only `MUST` fails a run.
    pub level: Level,
    /// What was seen.
    pub detail: String,
}

#[derive(Debug, Clone)]
struct Expected {
    class: Class,
    /// The exact refusal status, when the protocol fixes it.
    status: Option<u16>,
    /// Inner status must be 2xx (true), must not be (false), or is free.
    inner_ok: Option<bool>,
    layer: &'static str,
    field: String,
    /// The whole refusal the protocol fixes, held as the suite holds it.
    fixed: Option<Fixed>,
}

impl Expected {
    fn new(class: Class, layer: &'static str, field: impl Into<String>) -> Self {
        Expected {
            class,
            status: None,
            inner_ok: None,
            layer,
            field: field.into(),
            fixed: None,
        }
    }

    fn fixed(fixed: Fixed, layer: &'static str) -> Self {
        Expected {
            fixed: Some(fixed),
            ..Expected::new(Class::Refuse, layer, fixed.field).status(fixed.status)
        }
    }

    fn status(mut self, s: u16) -> Self {
        self.status = Some(s);
        self
    }

    fn inner_ok(mut self, ok: bool) -> Self {
        self.inner_ok = Some(ok);
        self
    }
}

/// The inner path after the routing prefixes are stripped (GATE-2).
fn routed(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    for prefix in ["/v1/api", "/api", "/v1"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            if rest.is_empty() {
                return "/".into();
            }
            if rest.starts_with('/') {
                return rest.into();
            }
        }
    }
    path.into()
}

/// The first edit that still makes the call unacceptable once every later
/// edit has been applied: a flip counts only an odd number of times, and a
/// later edit of the same field supersedes an earlier one.
fn refusing_edit(edits: &[EnvelopeEdit]) -> Option<&EnvelopeEdit> {
    let rewrites_ct = |e: &EnvelopeEdit| {
        matches!(
            e,
            EnvelopeEdit::Set { .. } | EnvelopeEdit::Remove { .. } | EnvelopeEdit::Duplicate { .. }
        ) && e.field() == "ct"
    };
    edits.iter().enumerate().find_map(|(i, e)| {
        if !e.must_refuse() {
            return None;
        }
        let later = &edits[i + 1..];
        let kept = match e {
            EnvelopeEdit::FlipCt | EnvelopeEdit::FlipTag => {
                let same = edits.iter().filter(|x| *x == e).count();
                same % 2 == 1 && !later.iter().any(rewrites_ct)
            }
            _ => !later.iter().any(|x| {
                x.field() == e.field() && !matches!(x, EnvelopeEdit::FlipCt | EnvelopeEdit::FlipTag)
            }),
        };
        kept.then_some(e)
    })
}

/// What an honest target answers to `call`, given whether its window
/// would take the seq (`fresh`, known only once the call is on the wire).
fn expect_call_in(call: &CallStep, fresh: Option<bool>) -> Expected {
    // What the inner request alone asks for, as if sealed with the next seq.
    let e = expect_call(&CallStep {
        at: None,
        ..call.clone()
    });
    let plain = call.framing.is_normal()
        && call.bytes.is_empty()
        && call.envelope.is_empty()
        && !call.wrong_direction;
    match (call.at, fresh) {
        (Some(at), Some(false)) if plain => {
            Expected::new(Class::Refuse, "stateful", at.name()).status(409)
        }
        (Some(at), Some(true)) if plain && e.layer == "valid" => Expected {
            layer: "stateful",
            field: at.name().into(),
            ..e
        },
        _ => expect_call(call),
    }
}

fn expect_call(call: &CallStep) -> Expected {
    if !call.framing.is_normal() {
        return Expected::new(Class::Either, "framing", call.framing.name());
    }
    if !call.bytes.is_empty() {
        return Expected::new(Class::Either, "bytes", "body");
    }
    if let Some(fixed) = order::call_refusal(call) {
        return Expected::fixed(fixed, "envelope");
    }
    if call.wrong_direction {
        // Whatever else was edited, no reading of it opens (CALL-5).
        return Expected::new(Class::Refuse, "envelope", "direction");
    }
    if let Some(edit) = refusing_edit(&call.envelope) {
        return Expected::new(Class::Refuse, "envelope", edit.field());
    }
    if let Some(edit) = call.envelope.first() {
        return Expected::new(Class::Either, "envelope", edit.field());
    }
    if call.at.is_some() {
        // Only the window the call meets decides (see expect_call_in).
        return Expected::new(Class::Either, "stateful", "seq-relative");
    }
    match call.seq {
        Some(0) => return Expected::new(Class::Refuse, "stateful", "seq-zero").status(409),
        Some(_) => return Expected::new(Class::Either, "stateful", "seq-edge"),
        None => {}
    }
    match &call.inner {
        Inner::Plaintext { .. } => Expected::new(Class::Refuse, "inner", "plaintext").status(400),
        // The suite's fuller inner form: judged by its own expectation.
        Inner::Custom(_) => Expected::new(Class::Either, "inner", "custom"),
        Inner::Request {
            path, auth, body, ..
        } => {
            let r = routed(path);
            if r == "/secure" || r.starts_with("/secure/") {
                return Expected::new(Class::Refuse, "inner", "path-nesting").status(400);
            }
            if let Some(b) = body {
                if b64url_decode(b, B64Strictness::Upstream).is_err() {
                    return Expected::new(Class::Refuse, "inner", "body").status(400);
                }
            }
            if *auth != Auth::Key {
                return Expected::new(Class::Accept, "inner", "authorization").inner_ok(false);
            }
            let field = match path.as_str() {
                "/agents/{agent}/run" => "call",
                "/agents/{agent}/dispatch" => "dispatch",
                _ => return Expected::new(Class::Accept, "inner", "path"),
            };
            if app_accepts(body.as_deref()) {
                return Expected::new(Class::Accept, "valid", field).inner_ok(true);
            }
            let canonical = body
                .as_deref()
                .is_none_or(|b| b64url_decode(b, B64Strictness::Canonical).is_ok());
            if canonical {
                // Decodes, but the app may refuse what it holds.
                Expected::new(Class::Accept, "inner", "body-content")
            } else {
                // Only a lenient decoder reads it (ENC-1): a strict server
                // may refuse it, a lenient one passes it to the app.
                Expected::new(Class::Either, "inner", "body-lenient")
            }
        }
    }
}

fn fire(e: &Expected, (oracle, detail): Hit) -> Option<Firing> {
    let (requirement, level) = judged(oracle, e.layer, &e.field);
    Some(Firing {
        signature: Signature {
            oracle: oracle.name().into(),
            layer: e.layer.into(),
            field: e.field.clone(),
        },
        requirement,
        level,
        detail,
    })
}

/// The finding for a ServerHello the client refused (`field`: what was
/// wrong with it, as [`EXCEPTIONS`] names it).
pub fn hello_refused(field: &'static str, detail: String) -> Firing {
    let (requirement, level) = judged(Oracle::HelloRefused, "handshake", field);
    Firing {
        signature: Signature {
            oracle: Oracle::HelloRefused.name().into(),
            layer: "handshake".into(),
            field: field.into(),
        },
        requirement,
        level,
        detail,
    }
}

/// A finding about the ServerHello of an honest session (`oracle`: what
/// is wrong with it).
pub fn about_hello(oracle: Oracle, detail: String) -> Firing {
    let (requirement, level) = judged(oracle, "handshake", "hello");
    Firing {
        signature: Signature {
            oracle: oracle.name().into(),
            layer: "handshake".into(),
            field: "hello".into(),
        },
        requirement,
        level,
        detail,
    }
}

/// Whether the demo app takes `body` (the raw inner `body` text) as a
/// request it serves with a 2xx: a JSON object after canonical decoding.
/// A body only a lenient decoder reads, or one that is not a JSON object,
/// may get a fair refusal (upstream's run route answers `400 Invalid
/// request format`), so its inner status is not judged.
fn app_accepts(body: Option<&str>) -> bool {
    body.and_then(|b| b64url_decode(b, B64Strictness::Canonical).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|v| v.is_object())
}

/// Judges one step's outcome with the judge's checks; `prev` holds the
/// case's earlier outcomes.
pub fn judge(
    info: &TargetInfo,
    step: &Step,
    outcome: &Outcome,
    prev: &[Outcome],
) -> Option<Firing> {
    // An answer the relay gave in the agent's place (`--via-relay`: its 502,
    // 504, 413 or an unretried 429) says nothing about the agent.
    if outcome.skipped.is_some() || outcome.answer.relay.is_own() {
        return None;
    }
    if !step.is_fuzz_step() {
        return None;
    }
    let e = match step {
        Step::Call(call) => expect_call_in(call, outcome.fresh),
        Step::CallAfterExpiry => Expected::new(Class::Refuse, "stateful", "expired").status(401),
        Step::Resend => {
            let first_ok = prev
                .last()
                .is_some_and(|o| o.answer.status == 200 && o.answer.ending == Ending::Answered);
            let e = Expected::new(Class::Refuse, "stateful", "replay");
            if first_ok {
                e.status(409)
            } else {
                e
            }
        }
        Step::Handshake { .. } => Expected::new(Class::Either, "handshake", "hello"),
        Step::Plain { .. } => Expected::new(Class::Refuse, "plaintext", "route"),
        _ => return None,
    };
    let framed = matches!(step, Step::Call(c) if !c.framing.is_normal());
    let sending = Sending {
        framed,
        incomplete: matches!(step, Step::Call(c) if c.framing.leaves_request_incomplete()),
        slow: outcome.slow.map(|d| d.as_secs_f64()),
    };
    let a = &outcome.answer;
    match allowed::check_ending(&sending, a) {
        Err(hit) => return fire(&e, hit),
        Ok(false) => return None,
        Ok(true) => {}
    }
    match step {
        Step::Handshake { .. } => {
            if let Err(hit) = allowed::check_hello_answer(a.status, &a.body) {
                return fire(&e, hit);
            }
            // A hello with one bad field has the refusal the handshake's
            // order fixes (HS-4, HS-6, HS-7).
            let pinned = info.target.address.to_string();
            let fixed = order::hello_refusal(&outcome.sent, &pinned)?;
            let hit = order::check_answer(&fixed, a).err()?;
            return fire(&Expected::fixed(fixed, "handshake"), hit);
        }
        Step::Plain { path, .. } => {
            let served = (200..300).contains(&a.status);
            if info.target.relay_origin && served && path.contains("{agent}") {
                return fire(
                    &e,
                    (
                        Oracle::PlaintextAccepted,
                        format!("a remote plaintext agent request got HTTP {}", a.status),
                    ),
                );
            }
            return None;
        }
        _ => {}
    }
    if framed {
        return None;
    }
    let allowance = Allowance {
        allowed: e.class,
        status: e.status,
        inner_ok: e.inner_ok,
    };
    let fixed = |f: Fixed| order::check_answer(&f, a).err();
    let hit = allowed::check_call(&allowance, a)
        .err()
        .or_else(|| e.fixed.and_then(fixed))?;
    fire(&e, hit)
}

/// Judges an honest session's ServerHello as the target wrote it: its
/// encodings (ENC-1, ENC-2) and its freshness against the run's earlier
/// sessions (`fresh`, HS-3).
pub fn judge_hello(fresh: &mut Freshness, hello: &[u8]) -> Vec<Firing> {
    let canonical = crate::judge::encoding::problems(&crate::peer::hello_emitted(hello))
        .into_iter()
        .find(|p| p.requirement != "ID-3")
        .map(|p| (Oracle::NotCanonical, p.what));
    let stale = Fresh::of_hello(hello)
        .and_then(|f| fresh.admit(&f))
        .map(|r| {
            let claim = Claim::new(Oracle::NotFresh.requirement(), Oracle::NotFresh.level());
            let what = match r {
                Repeated::R => "signature's r",
                Repeated::EncPub => "encPub",
                Repeated::Sid => "sid",
            };
            let f = fresh.finding(&claim, r);
            (
                Oracle::NotFresh,
                format!(
                    "the ServerHello repeats the {what} of an earlier session: {}",
                    f.actual
                ),
            )
        });
    [canonical, stale]
        .into_iter()
        .flatten()
        .map(|(oracle, detail)| about_hello(oracle, detail))
        .collect()
}

/// A short description of the answer's shape, for the corpus.
pub fn shape(outcome: &Outcome) -> String {
    let endpoint = outcome.endpoint;
    let a = &outcome.answer;
    if outcome.skipped.is_some() {
        return format!("{endpoint} skipped");
    }
    if outcome.slow.is_some() {
        return format!("{endpoint} held");
    }
    match &a.ending {
        Ending::Answered => {
            let code = CodedErrorBody::parse(&a.body)
                .ok()
                .and_then(|c| c.code)
                .unwrap_or_default();
            format!("{endpoint} {} {code}", a.status)
        }
        Ending::Closed => format!("{endpoint} closed"),
        Ending::Dropped(_) => format!("{endpoint} dropped"),
        Ending::TimedOut { .. } | Ending::Held { .. } => format!("{endpoint} timeout"),
    }
}

/// The answer the protocol fixes for `step`, as (outer status, inner
/// status), for turning a finding into a regression scenario; `None` when
/// the protocol only asks for a well-formed answer.
pub fn fixed_answer(step: &Step, prev_accepted: bool) -> Option<(u16, Option<u16>)> {
    let e = match step {
        Step::Call(call) if call.at.is_some() => return None,
        Step::Call(call) => expect_call(call),
        Step::Resend if prev_accepted => return Some((409, None)),
        Step::Plain { .. } => return None,
        _ => return None,
    };
    match e.class {
        Class::Accept => Some((200, e.inner_ok.map(|ok| if ok { 200 } else { 401 }))),
        Class::Refuse => Some((
            e.status.unwrap_or(if e.field == "sid" { 401 } else { 400 }),
            None,
        )),
        Class::Either if e.field == "seq-edge" => Some((200, Some(200))),
        Class::Either => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfuzz::gen::Generator;

    fn call_with(edits: Vec<EnvelopeEdit>) -> CallStep {
        let mut c = Generator::valid_call();
        c.envelope = edits;
        c
    }

    #[test]
    fn flips_cancel_in_pairs() {
        let twice = call_with(vec![EnvelopeEdit::FlipTag, EnvelopeEdit::FlipTag]);
        assert_eq!(expect_call(&twice).class, Class::Either);
        let once = call_with(vec![EnvelopeEdit::FlipTag]);
        let e = expect_call(&once);
        assert_eq!((e.class, e.status), (Class::Refuse, Some(400)));
    }

    #[test]
    fn a_later_edit_of_the_same_field_supersedes() {
        let c = call_with(vec![
            EnvelopeEdit::Set {
                field: "seq".into(),
                json: "1000001".into(),
                invalid: true,
            },
            EnvelopeEdit::Duplicate {
                field: "seq".into(),
                json: "\"1\"".into(),
            },
        ]);
        assert_eq!(expect_call(&c).class, Class::Either);
        let c = call_with(vec![
            EnvelopeEdit::Set {
                field: "ct".into(),
                json: "\"\"".into(),
                invalid: true,
            },
            EnvelopeEdit::FlipCt,
        ]);
        assert_eq!(expect_call(&c).class, Class::Refuse);
    }

    #[test]
    fn nesting_is_judged_after_the_routing_prefixes() {
        for path in ["/v1/secure/session", "/api/secure/call", "/secure"] {
            let mut c = Generator::valid_call();
            c.inner = Inner::Request {
                method: "POST".into(),
                path: path.into(),
                auth: Auth::Key,
                body: None,
            };
            let e = expect_call(&c);
            assert_eq!(
                (e.class, e.field.as_str()),
                (Class::Refuse, "path-nesting"),
                "{path}"
            );
        }
        assert_eq!(routed("/v1secure/x"), "/v1secure/x");
    }

    #[test]
    fn relative_seqs_are_judged_by_the_window_they_meet() {
        let mut c = Generator::dispatch_call(3, 4);
        c.at = Some(crate::netfuzz::case::SeqAt::Same);
        let e = expect_call_in(&c, Some(false));
        assert_eq!((e.class, e.status), (Class::Refuse, Some(409)));
        let e = expect_call_in(&c, Some(true));
        assert_eq!((e.class, e.inner_ok), (Class::Accept, Some(true)));
        assert_eq!((e.layer, e.field.as_str()), ("stateful", "seq-reuse"));
        // A refusing edit decides, whatever the window.
        c.envelope.push(EnvelopeEdit::FlipTag);
        assert_eq!(expect_call_in(&c, Some(true)).class, Class::Refuse);
        assert_eq!(fixed_answer(&Step::Call(c), false), None);
    }

    fn run_with_body(body: &str) -> CallStep {
        let mut c = Generator::valid_call();
        c.inner = Inner::Request {
            method: "POST".into(),
            path: "/agents/{agent}/run".into(),
            auth: Auth::Key,
            body: Some(body.into()),
        };
        c
    }

    #[test]
    fn a_valid_call_expects_2xx_only_for_a_body_the_app_accepts() {
        let e = expect_call(&Generator::valid_call());
        assert_eq!((e.layer, e.inner_ok), ("valid", Some(true)));
        // `{"~` to a lenient decoder, nothing to a strict one.
        let e = expect_call(&run_with_body("eyJ+"));
        assert_eq!((e.class, e.field.as_str()), (Class::Either, "body-lenient"));
        // Canonical, but `"x"` is not a JSON object.
        let e = expect_call(&run_with_body("Ingi"));
        assert_eq!(
            (e.class, e.field.as_str(), e.inner_ok),
            (Class::Accept, "body-content", None)
        );
        let e = expect_call(&run_with_body("!!!"));
        assert_eq!((e.class, e.status), (Class::Refuse, Some(400)));
    }

    #[test]
    fn findings_carry_their_level() {
        let e = expect_call(&run_with_body("a b"));
        let f = fire(&e, (Oracle::AcceptedInvalid, String::new())).unwrap();
        assert_eq!(f.signature.to_string(), "accepted-invalid/inner/body");
        assert_eq!((f.requirement, f.level), ("CALL-9", Level::Should));
        let e = expect_call(&call_with(vec![EnvelopeEdit::FlipTag]));
        let f = fire(&e, (Oracle::AcceptedInvalid, String::new())).unwrap();
        assert_eq!(f.level, Level::Must);
        assert_eq!(Oracle::SlowRequest.level(), Level::Upstream);
        let sig = Signature {
            oracle: "slow-request".into(),
            layer: "framing".into(),
            field: "content-length-lie".into(),
        };
        assert_eq!(judged_signature(&sig), Some(("LIM-2", Level::Upstream)));
        assert_eq!(
            (
                Oracle::HeldRequest.requirement(),
                Oracle::HeldRequest.level()
            ),
            ("LIM-2", Level::Should)
        );
        assert!(oracle_table().contains("| `accepted-invalid/inner/body` | CALL-9 | SHOULD |"));
    }

    #[test]
    fn fixed_refusals_are_judged_at_the_suite_requirement() {
        for f in order::ALL {
            // Handshake errors are sentences, channel error codes words.
            let layer = if f.error.contains(' ') {
                "handshake"
            } else {
                "envelope"
            };
            for o in [Oracle::AcceptedInvalid, Oracle::WrongStatus] {
                let (req, level) = judged(o, layer, f.field);
                assert_eq!(level, f.level, "{o}/{layer}/{}", f.field);
                for id in f.requirement.split(", ") {
                    assert!(
                        req.split(", ").any(|r| r == id),
                        "{o}/{layer}/{}: {req}",
                        f.field
                    );
                }
            }
        }
    }

    #[test]
    fn a_wrong_direction_is_refused_before_the_window_is_asked() {
        let mut c = Generator::valid_call();
        c.wrong_direction = true;
        c.at = Some(crate::netfuzz::case::SeqAt::Same);
        let e = expect_call_in(&c, Some(false));
        assert_eq!(
            (e.class, e.status, e.field.as_str()),
            (Class::Refuse, Some(400), "direction")
        );
        c.envelope.push(EnvelopeEdit::Duplicate {
            field: "seq".into(),
            json: "1".into(),
        });
        let e = expect_call_in(&c, Some(true));
        assert_eq!((e.class, e.status), (Class::Refuse, None));
        let f = fire(&e, (Oracle::AcceptedInvalid, String::new())).unwrap();
        assert_eq!((f.requirement, f.level), ("CALL-5, KS-1", Level::Must));
        // A forged tag on a used seq: 400 from the AEAD, not 409.
        let mut forged = Generator::valid_call();
        forged.envelope.push(EnvelopeEdit::FlipTag);
        forged.at = Some(crate::netfuzz::case::SeqAt::Same);
        let e = expect_call_in(&forged, Some(false));
        assert_eq!((e.class, e.status), (Class::Refuse, Some(400)));
    }

    #[test]
    fn an_inner_426_cites_the_gate_as_the_suite_does() {
        let e = expect_call(&Generator::valid_call());
        let f = fire(&e, (Oracle::ChannelGated, String::new())).unwrap();
        assert_eq!(f.signature.to_string(), "channel-gated/valid/call");
        assert_eq!((f.requirement, f.level), ("GATE-4", Level::Must));
    }
}
