//! The oracles: what the protocol allows as an answer to each input, and
//! the verdict when the target's answer falls outside it. Every oracle is
//! one row of [`Oracle`], with the requirement it guards and that
//! requirement's level; a few signatures judge another requirement at
//! another level ([`EXCEPTIONS`]). The oracle table of `docs/FUZZING.md`
//! is generated from both lists ([`oracle_table`]). Only a `MUST` firing
//! fails a run; `SHOULD` ones are warnings, `UPSTREAM` ones information.

use std::fmt::Write as _;

use crate::peer::{is_event_stream, FrameIssue, ResponseReader};
use crate::protocol::encoding::{b64url_decode, B64Strictness};
use crate::protocol::error::{ChannelErrorCode, FrameError};
use crate::protocol::sse::SseDecoder;
use crate::protocol::wire::{CodedErrorBody, InnerResponse, PlainErrorBody, ServerHello};

use crate::judge::order::{self, Fixed};
use crate::report::Level;

use super::case::{Auth, CallStep, EnvelopeEdit, Inner, Signature, Step};
use super::exec::{Outcome, Reply, Session, TargetInfo};

macro_rules! oracles {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $req:literal, $level:ident, $desc:literal; )*) => {
        /// One way a target's answer can fall outside what the protocol
        /// allows. The name is the first part of a finding's signature
        /// (`oracle/layer/field`) and of its file name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Oracle {
            $( $(#[$doc])* $variant, )*
        }

        impl Oracle {
            /// Every oracle, in the order of the table in `docs/FUZZING.md`.
            pub const ALL: &'static [Oracle] = &[$(Oracle::$variant),*];

            /// The kebab-case name findings carry.
            pub fn name(self) -> &'static str {
                match self { $(Oracle::$variant => $name,)* }
            }

            /// The requirement IDs (docs/PROTOCOL.md) a firing breaks.
            pub fn requirement(self) -> &'static str {
                match self { $(Oracle::$variant => $req,)* }
            }

            /// The level of those requirements.
            pub fn level(self) -> Level {
                match self { $(Oracle::$variant => Level::$level,)* }
            }

            /// What makes the oracle fire.
            pub fn description(self) -> &'static str {
                match self { $(Oracle::$variant => $desc,)* }
            }
        }
    };
}

oracles! {
    /// A 5xx answer.
    ServerError = "server-error", "CALL-2", Must, "a 5xx answer: the protocol answers every bad input with a documented 4xx refusal";
    /// The connection dropped before an answer.
    DroppedConnection = "dropped-connection", "CALL-2", Must, "the connection dropped or was reset before an answer (not judged for framing edits, where a drop is a fair answer)";
    /// No answer in time to a whole request.
    Timeout = "timeout", "CALL-2", Must, "no answer within `--timeout` to a whole request";
    /// An incomplete request held past the limit.
    HeldRequest = "held-request", "LIM-2", Should, "an incomplete request (framing that promises bytes never sent) held unanswered past `--slow-request-limit`: the target waits for the promised bytes without a bound; the detail says how long";
    /// An incomplete request held a long time, then answered or closed.
    SlowRequest = "slow-request", "LIM-2", Upstream, "an incomplete request (framing that promises bytes never sent) held longer than `--timeout` before the target answered or closed it, within `--slow-request-limit`: the wait was bounded; the detail says how long";
    /// A refusal in no documented shape.
    UndocumentedBody = "undocumented-body", "CALL-2, RESP-2", Must, "a refusal whose body is not a documented error shape, or whose code does not belong with its status; a 200 handshake answer that is not a ServerHello";
    /// A refusal where the protocol accepts.
    RefusedValid = "refused-valid", "CALL-3, CALL-4, GATE-4", Must, "a refusal, or a non-2xx inner status, for a valid call: e.g. 409 for an unseen seq inside the window or for the seq of a forged call, or an inner 426 for an agent run inside the channel";
    /// A refusal with another status than the protocol fixes.
    WrongStatus = "wrong-status", "CALL-2", Must, "a documented refusal with another status, or another error, than the one the protocol fixes for the input (`judge::order`: CALL-2's check order, a hello with one bad field)";
    /// A 200 for an input the protocol refuses.
    AcceptedInvalid = "accepted-invalid", "CALL-1, CALL-2, CALL-3, CALL-8, SES-1", Must, "200 for an input the protocol refuses: a flipped tag, a replay, seq 0, a reused or too-old seq, a call on an expired session, a nested `/secure/` path or a malformed inner request";
    /// A 2xx inside without the access key.
    InnerAuthBypass = "inner-auth-bypass", "CALL-6", Must, "2xx inside for an inner request without the access key";
    /// Plaintext where a sealed frame belongs.
    PlaintextResponse = "plaintext-response", "RESP-2, RESP-3", Must, "a 200 answer to a call that is plaintext where a sealed frame belongs";
    /// A frame that does not open.
    FrameNotOpening = "frame-not-opening", "RESP-1, RESP-4, KS-1, KS-2, KS-3", Must, "a frame that does not open under the per-call key, frames out of order, `fin` before the last frame, or an inner response that does not parse";
    /// A response without a final fin.
    MissingFin = "missing-fin", "RESP-2, RESP-3, RESP-5", Must, "a response (buffered or streamed) that ends without an authenticated `fin`";
    /// The honest hello's answer is a ServerHello the client must refuse.
    HelloRefused = "hello-refused", "HS-1, HS-2, ID-1, ID-2, ID-3", Must, "the ServerHello answering an honest hello does not recover to the pinned address (a wrong key, domain, transcript, address derivation or `v` byte): no session can be opened, so the run stops with this finding";
    /// An encoding the target wrote is not canonical.
    NotCanonical = "non-canonical", "ENC-1, ENC-2", Must, "the target wrote a value not as the protocol writes it: a ServerHello `encPub`/`sid` or a frame `ct` that is not unpadded base64url, a signature that is not `0x` + lowercase hex";
    /// A stream's fin is not on a separate empty last frame.
    FinMisplaced = "fin-misplaced", "RESP-3", Must, "a stream whose `fin` rides on a data frame, or on a frame before the last, instead of a separate empty last frame";
    /// A ServerHello repeats a value of an earlier session.
    NotFresh = "not-fresh", "HS-3", Must, "a ServerHello that repeats the ephemeral key, the sid or the signature's `r` of an earlier session of the run";
    /// A plaintext agent route served to a remote caller.
    PlaintextAccepted = "plaintext-accepted", "GATE-1", Must, "a plaintext agent route served to a remote caller (the relay marker set)";
}

impl std::fmt::Display for Oracle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A signature that judges another requirement, at another level, than
/// its oracle's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exception {
    /// The oracle.
    pub oracle: Oracle,
    /// The layer of the signature.
    pub layer: &'static str,
    /// The field of the signature.
    pub field: &'static str,
    /// The requirement judged instead.
    pub requirement: &'static str,
    /// Its level.
    pub level: Level,
    /// Why.
    pub why: &'static str,
}

/// The signatures whose requirement and level differ from their oracle's.
pub const EXCEPTIONS: &[Exception] = &[
    Exception {
        oracle: Oracle::UndocumentedBody,
        layer: "handshake",
        field: "hello",
        requirement: "ENC-3, HS-5",
        level: Level::Must,
        why: "a handshake refusal that is not a documented JSON error body",
    },
    Exception {
        oracle: Oracle::ServerError,
        layer: "handshake",
        field: "hello",
        requirement: "HS-5",
        level: Level::Must,
        why: "a 5xx answer to a hello: every bad hello has a documented 4xx refusal",
    },
    Exception {
        oracle: Oracle::HelloRefused,
        layer: "handshake",
        field: "version",
        requirement: "HS-4",
        level: Level::Must,
        why: "the ServerHello says `v` other than 1, which a client must refuse",
    },
    Exception {
        oracle: Oracle::HelloRefused,
        layer: "handshake",
        field: "malformed",
        requirement: "ENC-1, HS-5",
        level: Level::Must,
        why: "a ServerHello key or sid that does not decode or has the wrong size",
    },
    Exception {
        oracle: Oracle::HelloRefused,
        layer: "handshake",
        field: "low-order-key",
        requirement: "HS-7",
        level: Level::Should,
        why: "the ServerHello announces a low-order `encPub`: refusing it is a SHOULD, and the run stops for want of a session",
    },
    Exception {
        oracle: Oracle::HelloRefused,
        layer: "handshake",
        field: "expired",
        requirement: "SES-1, SES-3",
        level: Level::Must,
        why: "the ServerHello announces an `expiresAt` already past, as the suite judges it (`expiry-announced`)",
    },
    Exception {
        oracle: Oracle::AcceptedInvalid,
        layer: "inner",
        field: "body",
        requirement: "CALL-9",
        level: Level::Should,
        why: "an inner `body` that is not base64url even to a lenient decoder: refusing it is a SHOULD; upstream runs the request with an empty body",
    },
    Exception {
        oracle: Oracle::WrongStatus,
        layer: "inner",
        field: "body",
        requirement: "CALL-9",
        level: Level::Should,
        why: "the same input refused with another status than `400 secure_malformed`",
    },
    Exception {
        oracle: Oracle::AcceptedInvalid,
        layer: "envelope",
        field: "direction",
        requirement: "CALL-5, KS-1",
        level: Level::Must,
        why: "a call sealed with the server-to-client key was accepted: the keys are not directional",
    },
    Exception {
        oracle: Oracle::WrongStatus,
        layer: "envelope",
        field: "direction",
        requirement: "CALL-5, KS-1",
        level: Level::Must,
        why: "a call sealed with the server-to-client key got another refusal than `400 secure_decrypt_failed`, as the suite judges it (`replay-transplant`)",
    },
    Exception {
        oracle: Oracle::AcceptedInvalid,
        layer: "handshake",
        field: "version",
        requirement: "HS-4",
        level: Level::Must,
        why: "a ClientHello with `v` other than 1 was answered with a session",
    },
    Exception {
        oracle: Oracle::WrongStatus,
        layer: "handshake",
        field: "version",
        requirement: "HS-4",
        level: Level::Must,
        why: "a ClientHello with `v` other than 1 got another refusal than `400 Unsupported secure channel version`",
    },
    Exception {
        oracle: Oracle::AcceptedInvalid,
        layer: "handshake",
        field: "unknown-agent",
        requirement: "HS-6",
        level: Level::Must,
        why: "a ClientHello for an agent the server does not hold was answered with a session",
    },
    Exception {
        oracle: Oracle::WrongStatus,
        layer: "handshake",
        field: "unknown-agent",
        requirement: "HS-6",
        level: Level::Must,
        why: "a ClientHello for an agent the server does not hold got another refusal than `404 Unknown agent address`",
    },
    Exception {
        oracle: Oracle::AcceptedInvalid,
        layer: "handshake",
        field: "low-order-key",
        requirement: "HS-7",
        level: Level::Should,
        why: "a ClientHello with a low-order `encPub` was answered with a session whose keys anyone can compute; refusing it is a SHOULD",
    },
    Exception {
        oracle: Oracle::WrongStatus,
        layer: "handshake",
        field: "low-order-key",
        requirement: "HS-7",
        level: Level::Should,
        why: "a ClientHello with a low-order `encPub` got another refusal than `400 Malformed handshake`",
    },
];

/// The requirement and level a firing of `oracle` at `layer`/`field` judges.
pub fn judged(oracle: Oracle, layer: &str, field: &str) -> (&'static str, Level) {
    EXCEPTIONS
        .iter()
        .find(|x| x.oracle == oracle && x.layer == layer && x.field == field)
        .map_or((oracle.requirement(), oracle.level()), |x| {
            (x.requirement, x.level)
        })
}

/// The requirement and level of a saved signature (`None` for an oracle
/// name this version does not know).
pub fn judged_signature(sig: &Signature) -> Option<(&'static str, Level)> {
    let oracle = Oracle::ALL.iter().find(|o| o.name() == sig.oracle)?;
    Some(judged(*oracle, &sig.layer, &sig.field))
}

/// The oracle table of `docs/FUZZING.md`: one row per [`Oracle`], then
/// one per [`EXCEPTIONS`] entry.
pub fn oracle_table() -> String {
    let mut out = String::from("| oracle | requirement | level | fires on |\n|---|---|---|---|\n");
    for o in Oracle::ALL {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            o.name(),
            o.requirement(),
            o.level().name(),
            o.description()
        );
    }
    out.push_str(
        "\nSignatures judged at another requirement and level than their oracle:\n\n\
         | signature | requirement | level | why |\n|---|---|---|---|\n",
    );
    for x in EXCEPTIONS {
        let _ = writeln!(
            out,
            "| `{}/{}/{}` | {} | {} | {} |",
            x.oracle.name(),
            x.layer,
            x.field,
            x.requirement,
            x.level.name(),
            x.why
        );
    }
    out
}

/// The first and last line around the generated oracle table in
/// `docs/FUZZING.md`.
pub const TABLE_MARKERS: (&str, &str) = (
    "<!-- oracle table: generated from src/netfuzz/oracle.rs -->",
    "<!-- end of oracle table -->",
);

/// `doc` with the text between [`TABLE_MARKERS`] replaced by
/// [`oracle_table`]; `None` when a marker is missing.
pub fn with_oracle_table(doc: &str) -> Option<String> {
    let start = doc.find(TABLE_MARKERS.0)? + TABLE_MARKERS.0.len();
    let end = start + doc[start..].find(TABLE_MARKERS.1)?;
    Some(format!(
        "{}\n{}{}",
        &doc[..start],
        oracle_table(),
        &doc[end..]
    ))
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

/// What an honest target may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A sealed 200.
    Accept,
    /// A documented refusal; a 200 contradicts the input.
    Refuse,
    /// Either, as long as it is well formed.
    Either,
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

fn fire(e: &Expected, oracle: Oracle, detail: String) -> Option<Firing> {
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

/// Whether `body` is one of the documented channel error shapes with a
/// status that matches its code.
fn documented_call_error(status: u16, body: &[u8]) -> Result<(), String> {
    let coded = CodedErrorBody::parse(body)
        .map_err(|e| format!("HTTP {status} body is not a channel error: {e}"))?;
    let code = coded.code.as_deref().unwrap_or("");
    ChannelErrorCode::check_pairing(code, status).map(|_| ())
}

/// Judges one step's outcome; `prev` holds the case's earlier outcomes.
pub fn judge(
    info: &TargetInfo,
    session: &Session,
    step: &Step,
    outcome: &Outcome,
    prev: &[Outcome],
) -> Option<Firing> {
    let e = match step {
        Step::Call(call) => expect_call_in(call, outcome.fresh),
        Step::CallAfterExpiry => Expected::new(Class::Refuse, "stateful", "expired").status(401),
        Step::Resend => {
            let first_ok = matches!(
                prev.last().map(|o| &o.reply),
                Some(Reply::Http { status: 200, .. })
            );
            let e = Expected::new(Class::Refuse, "stateful", "replay");
            if first_ok {
                e.status(409)
            } else {
                e
            }
        }
        Step::Handshake { .. } => Expected::new(Class::Either, "handshake", "hello"),
        Step::Plain { .. } => Expected::new(Class::Refuse, "plaintext", "route"),
    };
    let framing = matches!(step, Step::Call(c) if !c.framing.is_normal());
    let (status, content_type, body) = match &outcome.reply {
        Reply::Timeout(d) => {
            let incomplete = matches!(step, Step::Call(c) if c.framing.leaves_request_incomplete());
            return if incomplete {
                fire(
                    &e,
                    Oracle::HeldRequest,
                    format!("an incomplete request held past --slow-request-limit: {d}"),
                )
            } else {
                fire(&e, Oracle::Timeout, d.clone())
            };
        }
        Reply::Held { held, then } => {
            return fire(
                &e,
                Oracle::SlowRequest,
                format!(
                    "held the incomplete request {:.1}s, then {then}",
                    held.as_secs_f64()
                ),
            )
        }
        Reply::Dropped(d) if !framing => return fire(&e, Oracle::DroppedConnection, d.clone()),
        Reply::Dropped(_) | Reply::Closed | Reply::Skipped(_) => return None,
        Reply::Http {
            status,
            content_type,
            body,
        } => (*status, content_type.as_deref(), body.as_slice()),
    };
    if status >= 500 {
        return fire(
            &e,
            Oracle::ServerError,
            format!("HTTP {status}: {}", super::exec::lossy(body, 300)),
        );
    }
    match step {
        Step::Handshake { .. } => {
            return judge_handshake(&e, status, body).or_else(|| {
                let pinned = info.target.address.to_string();
                let fixed = order::hello_refusal(&outcome.sent, &pinned)?;
                fixed_miss(
                    &Expected::fixed(fixed, "handshake"),
                    &fixed,
                    status,
                    content_type,
                    body,
                )
            })
        }
        Step::Plain { path, .. } => {
            if info.target.relay_origin && (200..300).contains(&status) && path.contains("{agent}")
            {
                return fire(
                    &e,
                    Oracle::PlaintextAccepted,
                    format!("a remote plaintext agent request got HTTP {status}"),
                );
            }
            return None;
        }
        _ => {}
    }
    if framing {
        return None;
    }
    if status != 200 {
        if let Err(why) = documented_call_error(status, body) {
            return fire(&e, Oracle::UndocumentedBody, why);
        }
        if e.class == Class::Accept {
            return fire(
                &e,
                Oracle::RefusedValid,
                format!("HTTP {status}: {}", super::exec::lossy(body, 300)),
            );
        }
        if let Some(want) = e.status {
            if want != status {
                return fire(
                    &e,
                    Oracle::WrongStatus,
                    format!(
                        "expected HTTP {want}, got HTTP {status}: {}",
                        super::exec::lossy(body, 300)
                    ),
                );
            }
        }
        return e
            .fixed
            .and_then(|f| fixed_miss(&e, &f, status, content_type, body));
    }
    if e.class == Class::Refuse {
        return fire(
            &e,
            Oracle::AcceptedInvalid,
            format!(
                "HTTP 200 for an input the protocol refuses: {}",
                super::exec::lossy(body, 300)
            ),
        );
    }
    let seq = outcome.seq?;
    match open_response(session, seq, content_type, body) {
        Err((oracle, why)) => fire(&e, oracle, why),
        Ok(inner_status) => {
            let ok = (200..300).contains(&inner_status);
            match e.inner_ok {
                Some(false) if ok => fire(
                    &e,
                    Oracle::InnerAuthBypass,
                    format!(
                        "inner status {inner_status} for an inner request without the access key"
                    ),
                ),
                Some(true) if !ok => fire(
                    &e,
                    Oracle::RefusedValid,
                    format!("inner status {inner_status} for a valid call"),
                ),
                _ => None,
            }
        }
    }
}

/// The firing when the refusal the protocol fixes did not come, judged by
/// the suite's own check (`judge::order::check`): a 200 is an accepted
/// invalid input, any other answer the wrong refusal. A 429 is a wait,
/// never a verdict (HS-8).
fn fixed_miss(
    e: &Expected,
    fixed: &Fixed,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Option<Firing> {
    if status == 429 {
        return None;
    }
    let headers: Vec<(String, String)> = content_type
        .map(|c| vec![("content-type".to_string(), c.to_string())])
        .unwrap_or_default();
    let miss = order::check(fixed, status, &headers, body).err()?;
    let oracle = if (200..300).contains(&status) {
        Oracle::AcceptedInvalid
    } else {
        Oracle::WrongStatus
    };
    fire(
        e,
        oracle,
        format!("{}; expected {}", miss.actual, miss.expected),
    )
}

fn judge_handshake(e: &Expected, status: u16, body: &[u8]) -> Option<Firing> {
    if status == 200 {
        return match ServerHello::parse(body) {
            Ok(_) => None,
            Err(err) => fire(
                e,
                Oracle::UndocumentedBody,
                format!("HTTP 200 without a ServerHello: {err}"),
            ),
        };
    }
    let plain = PlainErrorBody::parse(body).is_ok();
    let coded = CodedErrorBody::parse(body).is_ok_and(|c| c.code.is_some() || c.message.is_some());
    if plain || coded {
        None
    } else {
        fire(
            e,
            Oracle::UndocumentedBody,
            format!(
                "HTTP {status} refusal body is not a documented shape: {}",
                super::exec::lossy(body, 300)
            ),
        )
    }
}

/// What opening a 200 answer showed: how far it got and, for a buffered
/// answer, the inner response. `problem` names the first check that failed
/// (an oracle name) and why; the counts stop there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opened {
    /// Frames that parsed and opened, in order.
    pub frames: usize,
    /// Whether the last opened frame carried an authenticated `fin`.
    pub fin: bool,
    /// Whether the answer was an event stream.
    pub streamed: bool,
    /// The inner status of a buffered answer.
    pub inner_status: Option<u16>,
    /// The decoded inner body of a buffered answer, or the joined
    /// plaintext of a stream's frames.
    pub inner_body: Vec<u8>,
    /// The first check that failed: (oracle, detail).
    pub problem: Option<(Oracle, String)>,
}

/// Opens a 200 answer to the call sealed with `seq`: a buffered frame or
/// an event stream, every frame under the per-call key, in order, ending
/// in `fin`. Never fails: what went wrong is [`Opened::problem`].
pub fn open_answer(session: &Session, seq: u64, content_type: Option<&str>, body: &[u8]) -> Opened {
    let mut out = Opened::default();
    if let Err(p) = open_into(&mut out, session, seq, content_type, body) {
        out.problem = Some(p);
    }
    out
}

fn open_into(
    out: &mut Opened,
    session: &Session,
    seq: u64,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), (Oracle, String)> {
    let core = session.core();
    let mut reader = ResponseReader::new(core.sid(), core.keys(), seq).without_raw();
    out.streamed = is_event_stream(content_type);
    if out.streamed {
        let mut decoder = SseDecoder::new(body.len() + 1);
        let events = decoder
            .feed(body)
            .map_err(|e| (Oracle::FrameNotOpening, e.to_string()))?;
        for event in events {
            if let Some(why) = super::emitted::frame_problem(&event) {
                return Err((Oracle::NotCanonical, why));
            }
            let pushed = reader.push(&event);
            if let Some(issue) = pushed.issue {
                return Err(frame_problem(issue));
            }
            out.inner_body
                .extend_from_slice(pushed.plaintext.unwrap_or_default());
            out.frames += 1;
        }
        out.fin = reader.opened().last().is_some_and(|f| f.fin);
        finished(&reader, out.frames)?;
        let placed: Vec<(bool, usize)> = reader
            .opened()
            .iter()
            .map(|f| (f.fin, f.plaintext.len()))
            .collect();
        return match super::emitted::stream_fin_problem(&placed) {
            Some(why) => Err((Oracle::FinMisplaced, why)),
            None => Ok(()),
        };
    }
    let pushed = reader.push(body);
    match pushed.issue {
        Some(FrameIssue::Malformed(e)) => {
            return Err((
                Oracle::PlaintextResponse,
                format!(
                    "HTTP 200 body is not a sealed frame ({e}): {}",
                    super::exec::lossy(body, 300)
                ),
            ))
        }
        Some(issue) => return Err(frame_problem(issue)),
        None => {}
    }
    let plaintext = pushed.plaintext.unwrap_or_default().to_vec();
    if let Some(why) = super::emitted::frame_problem(body) {
        return Err((Oracle::NotCanonical, why));
    }
    out.frames = 1;
    out.fin = reader.finished();
    finished(&reader, out.frames)?;
    let inner = InnerResponse::parse(&plaintext).map_err(|e| {
        (
            Oracle::FrameNotOpening,
            format!("inner response unreadable: {e}"),
        )
    })?;
    out.inner_body = inner
        .body
        .as_deref()
        .and_then(|b| b64url_decode(b, B64Strictness::Upstream).ok())
        .unwrap_or_default();
    let status = u16::try_from(inner.status)
        .ok()
        .filter(|s| (100..=999).contains(s))
        .ok_or((
            Oracle::FrameNotOpening,
            format!("inner status {} is not HTTP", inner.status),
        ))?;
    out.inner_status = Some(status);
    Ok(())
}

/// The oracle a frame's problem trips, worded as the core's opener words it.
fn frame_problem(issue: FrameIssue) -> (Oracle, String) {
    let error = match issue {
        FrameIssue::Malformed(e) => return (Oracle::PlaintextResponse, e.to_string()),
        FrameIssue::AfterFin(seq) => FrameError::AfterFin(seq),
        FrameIssue::OutOfOrder { expected, got } => FrameError::OutOfOrder { expected, got },
        FrameIssue::Decrypt(seq) => FrameError::Decrypt(seq),
    };
    (Oracle::FrameNotOpening, error.to_string())
}

/// `Ok` when the answer ended in an authenticated `fin` after `frames`
/// frames, else the truncation (RESP-5).
fn finished(reader: &ResponseReader, frames: usize) -> Result<(), (Oracle, String)> {
    if reader.finished() {
        return Ok(());
    }
    let error = FrameError::Truncated {
        frames: frames as u64,
    };
    Err((Oracle::MissingFin, error.to_string()))
}

/// Opens a 200 answer; returns the inner status (200 for a stream, which
/// carries none) or the oracle the answer trips.
fn open_response(
    session: &Session,
    seq: u64,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<u16, (Oracle, String)> {
    let opened = open_answer(session, seq, content_type, body);
    match opened.problem {
        Some(p) => Err(p),
        None => Ok(opened.inner_status.unwrap_or(200)),
    }
}

/// A short description of the answer's shape, for the corpus.
pub fn shape(outcome: &Outcome) -> String {
    match &outcome.reply {
        Reply::Http { status, body, .. } => {
            let code = CodedErrorBody::parse(body)
                .ok()
                .and_then(|c| c.code)
                .unwrap_or_default();
            format!("{} {status} {code}", outcome.endpoint)
        }
        Reply::Closed => format!("{} closed", outcome.endpoint),
        Reply::Dropped(_) => format!("{} dropped", outcome.endpoint),
        Reply::Timeout(_) => format!("{} timeout", outcome.endpoint),
        Reply::Held { .. } => format!("{} held", outcome.endpoint),
        Reply::Skipped(_) => format!("{} skipped", outcome.endpoint),
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
        let f = fire(&e, Oracle::AcceptedInvalid, String::new()).unwrap();
        assert_eq!(f.signature.to_string(), "accepted-invalid/inner/body");
        assert_eq!((f.requirement, f.level), ("CALL-9", Level::Should));
        let e = expect_call(&call_with(vec![EnvelopeEdit::FlipTag]));
        let f = fire(&e, Oracle::AcceptedInvalid, String::new()).unwrap();
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
        let f = fire(&e, Oracle::AcceptedInvalid, String::new()).unwrap();
        assert_eq!((f.requirement, f.level), ("CALL-5, KS-1", Level::Must));
        // A forged tag on a used seq: 400 from the AEAD, not 409.
        let mut forged = Generator::valid_call();
        forged.envelope.push(EnvelopeEdit::FlipTag);
        forged.at = Some(crate::netfuzz::case::SeqAt::Same);
        let e = expect_call_in(&forged, Some(false));
        assert_eq!((e.class, e.status), (Class::Refuse, Some(400)));
    }

    #[test]
    fn documented_errors_need_a_matching_status() {
        let body = crate::protocol::error::channel_error_body(ChannelErrorCode::Replay, "x");
        assert!(documented_call_error(409, body.as_bytes()).is_ok());
        assert!(documented_call_error(400, body.as_bytes()).is_err());
        assert!(documented_call_error(404, b"{\"seq\":0,\"ct\":\"\",\"fin\":true}").is_err());
    }
}
