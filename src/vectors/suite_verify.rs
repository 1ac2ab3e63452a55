//! Verification of the suite format: every case is re-run through the
//! core, and a refused case only counts when the core refuses it for the
//! reason its flag names.
//!
//! A case is run under up to three policies: strict (low-S, `v` 27/28,
//! canonical base64url), the reference (what upstream accepts) and a
//! permissive one (every UPSTREAM leniency on). `valid` must pass strict
//! and reference; `invalid` must fail all three, the reference for the
//! flagged reason (a reason that hangs on the verifier's leniency, such as
//! a raw `v`, is named as the reference policy gives it); `acceptable`
//! must fail strict for the flagged reason and be accepted by the
//! reference exactly when the notes say so.

use std::collections::BTreeSet;

use serde_json::Value;

use super::fields::{self, join};
use super::flags::{flag, FlagKind, Reason};
use super::suite::result_for;
use super::{CheckLine, VectorsError};
use crate::protocol::encoding::{b64url_decode, B64Strictness};
use crate::protocol::error::{CallError, FrameError, HandshakeError, SignatureError};
use crate::protocol::framing::ResponseOpener;
use crate::protocol::handshake::{
    respond, ClientHandshake, HonestServer, ServerHandshakeInputs, Transcript,
};
use crate::protocol::identity::{
    channel_digest, recover_channel_signer, Address, AgentIdentity, SignaturePolicy,
};
use crate::protocol::keys::{
    derive_session_keys, nonce_for, open_b64, request_aad, response_aad, response_key, OpenError,
    SessionKeys,
};
use crate::protocol::session::{HonestCalls, ReplayWindow, ServerSession};
use crate::protocol::wire::{CallRequest, ClientHello, Frame, ServerHello};

/// The requirement IDs of docs/PROTOCOL.md.
pub const KNOWN_REQUIREMENTS: &[&str] = &[
    "ENC-1", "ENC-2", "ENC-3", "ENC-4", "ID-1", "ID-2", "ID-3", "ID-4", "HS-1", "HS-2", "HS-3",
    "HS-4", "HS-5", "HS-6", "HS-7", "HS-8", "HS-9", "KS-1", "KS-2", "KS-3", "CALL-1", "CALL-2",
    "CALL-3", "CALL-4", "CALL-5", "CALL-6", "CALL-7", "CALL-8", "CALL-9", "CALL-10", "RESP-1",
    "RESP-2", "RESP-3", "RESP-4", "RESP-5", "SES-1", "SES-2", "SES-3", "SES-4", "SES-5", "GATE-1",
    "GATE-2", "GATE-3", "GATE-4", "GATE-5", "GATE-6", "GATE-7", "GATE-8",
];

/// The policy a case is run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only what a conforming sender emits.
    Strict,
    /// What the upstream reference accepts.
    Reference,
    /// Every UPSTREAM leniency at once.
    Permissive,
}

impl Mode {
    fn policy(self) -> SignaturePolicy {
        match self {
            Mode::Strict => SignaturePolicy::STRICT,
            Mode::Reference => SignaturePolicy::UPSTREAM,
            Mode::Permissive => SignaturePolicy {
                allow_raw_recovery_id: true,
                allow_reduced_x: true,
                allow_high_s: true,
            },
        }
    }

    /// Refuses non-canonical base64url in strict mode; the core itself
    /// decodes leniently, as upstream does.
    fn check_b64(self, text: &str) -> Result<(), Reason> {
        if self == Mode::Strict && b64url_decode(text, B64Strictness::Canonical).is_err() {
            return Err(Reason::Base64Refused);
        }
        Ok(())
    }
}

/// A case ran: accepted, or refused for a reason.
pub type Acceptance = Result<(), Reason>;

/// A case that cannot be judged, or whose positive values differ.
type Broken = String;

fn field_err(e: VectorsError) -> Broken {
    e.to_string()
}

fn hex32(v: &Value, path: &str, key: &str) -> Result<[u8; 32], Broken> {
    fields::hex_array_at::<32>(v, path, key).map_err(field_err)
}

fn s<'a>(v: &'a Value, path: &str, key: &str) -> Result<&'a str, Broken> {
    fields::str_at(v, path, key).map_err(field_err)
}

fn parse_with<T, E: std::fmt::Display>(
    v: &Value,
    path: &str,
    key: &str,
    parse: impl Fn(&[u8]) -> Result<T, E>,
) -> Result<T, Broken> {
    let value = fields::get(v, path, key).map_err(field_err)?;
    parse(value.to_string().as_bytes()).map_err(|e| format!("field `{}`: {e}", join(path, key)))
}

fn expect_eq(what: &str, file: &str, core: &str) -> Result<(), Broken> {
    if file == core {
        Ok(())
    } else {
        Err(format!(
            "{what}: file has {file:?}, the core gives {core:?}"
        ))
    }
}

fn signature_reason(e: &SignatureError) -> Reason {
    match e {
        SignatureError::Length(_) => Reason::SignatureLength,
        SignatureError::Encoding(_) => Reason::SignatureEncoding,
        SignatureError::RecoveryByte(_) => Reason::RecoveryByte,
        SignatureError::ScalarRange => Reason::ScalarRange,
        SignatureError::HighS => Reason::HighS,
        SignatureError::Recovery => Reason::NoRecovery,
    }
}

fn handshake_reason(e: &HandshakeError) -> Reason {
    match e {
        HandshakeError::UnsupportedVersion(_) => Reason::UnsupportedVersion,
        HandshakeError::Malformed(_) => Reason::MalformedHandshake,
        HandshakeError::LowOrderKey => Reason::LowOrderKey,
        HandshakeError::IdentityMismatch(_) => Reason::IdentityMismatch,
    }
}

fn call_reason(
    e: &CallError,
    session: &ServerSession,
    call: &CallRequest,
) -> Result<Reason, Broken> {
    Ok(match e {
        CallError::SessionUnknown => Reason::SessionUnknown,
        CallError::Version(_) => Reason::WrongVersion,
        CallError::Replay(_) => Reason::Replay,
        // The session reports AEAD failures as text; the typed cause comes
        // from the same core step run on its own.
        CallError::Decrypt(_) => {
            let aad = request_aad(session.sid(), call.seq);
            match open_b64(&session.keys().c2s, call.seq, aad.as_bytes(), &call.ct) {
                Err(OpenError::Tag) => Reason::AuthenticationFailed,
                Err(OpenError::Encoding) => Reason::CiphertextNotBase64,
                Err(OpenError::Short(_)) => Reason::CiphertextTooShort,
                Ok(_) => return Err(format!("the session refused a call that opens: {e}")),
            }
        }
        other => return Err(format!("unexpected call failure: {other}")),
    })
}

fn frame_reason(e: &FrameError) -> Reason {
    match e {
        FrameError::OutOfOrder { .. } => Reason::FrameOutOfOrder,
        FrameError::AfterFin(_) => Reason::FrameAfterFin,
        FrameError::Decrypt(_) => Reason::AuthenticationFailed,
        FrameError::Truncated { .. } | FrameError::SealAfterFin => Reason::Truncated,
    }
}

/// Runs one case of a group under `mode`.
pub fn run_case(kind: &str, g: &Value, t: &Value, mode: Mode) -> Result<Acceptance, Broken> {
    match kind {
        "AddressDerivation" => {
            let id = AgentIdentity::from_hex(s(t, "", "privateKeyHex")?)?;
            expect_eq("address", s(t, "", "address")?, &id.address().to_checksum())?;
            Ok(Ok(()))
        }
        "SignatureVerify" => {
            let payload = s(g, "group", "payload")?;
            expect_eq(
                "group digestHex",
                s(g, "group", "digestHex")?,
                &hex::encode(channel_digest(payload.as_bytes())),
            )?;
            let address = Address::parse(s(g, "group", "address")?)?;
            Ok(
                match recover_channel_signer(
                    payload.as_bytes(),
                    s(t, "", "signature")?,
                    mode.policy(),
                ) {
                    Err(e) => Err(signature_reason(&e)),
                    Ok(a) if a == address => Ok(()),
                    Ok(_) => Err(Reason::AddressMismatch),
                },
            )
        }
        "AddressMatch" => {
            let payload = s(g, "group", "payload")?;
            let signer = recover_channel_signer(
                payload.as_bytes(),
                s(g, "group", "signature")?,
                mode.policy(),
            )
            .map_err(|e| format!("the group signature does not recover: {e}"))?;
            Ok(match Address::parse(s(t, "", "pinned")?) {
                Err(_) => Err(Reason::AddressFormat),
                Ok(a) if a == signer => Ok(()),
                Ok(_) => Err(Reason::AddressMismatch),
            })
        }
        "HandshakeClient" => {
            let pinned = Address::parse(s(g, "group", "pinnedAddress")?)?;
            let secret = hex32(g, "group", "clientEphemeralPrivateHex")?;
            let hello = parse_with(g, "group", "clientHello", ClientHello::parse)?;
            let server = parse_with(t, "", "serverHello", ServerHello::parse)?;
            if let Err(r) = mode.check_b64(&server.enc_pub) {
                return Ok(Err(r));
            }
            if let Some(expected) = t.get("transcript") {
                let rendered = Transcript::from_hellos(&hello, &server).render();
                let expected = expected
                    .as_str()
                    .ok_or("field `transcript` must be a string")?;
                expect_eq("transcript", expected, &rendered)?;
            }
            let client =
                ClientHandshake::with_hello(pinned, secret, hello).with_policy(mode.policy());
            match client.finish(&server) {
                Err(e) => Ok(Err(handshake_reason(&e))),
                Ok(session) => {
                    if t.get("clientToServerKeyHex").is_some() {
                        let keys = session.keys();
                        expect_eq(
                            "clientToServerKeyHex",
                            s(t, "", "clientToServerKeyHex")?,
                            &hex::encode(keys.c2s),
                        )?;
                        expect_eq(
                            "serverToClientKeyHex",
                            s(t, "", "serverToClientKeyHex")?,
                            &hex::encode(keys.s2c),
                        )?;
                    }
                    Ok(Ok(()))
                }
            }
        }
        "HandshakeServer" => {
            let identity = AgentIdentity::from_hex(s(g, "group", "agentPrivateKeyHex")?)?;
            let sid: [u8; 16] = fields::hex_array_at(g, "group", "sidHex").map_err(field_err)?;
            let inputs = ServerHandshakeInputs {
                ephemeral_secret: hex32(g, "group", "serverEphemeralPrivateHex")?,
                sid,
                expires_at: fields::i64_at(g, "group", "expiresAt").map_err(field_err)?,
            };
            let hello = parse_with(t, "", "clientHello", ClientHello::parse)?;
            if let Err(r) = mode.check_b64(&hello.enc_pub) {
                return Ok(Err(r));
            }
            match respond(&hello, &identity, &inputs, &HonestServer) {
                Err(e) => Ok(Err(handshake_reason(&e))),
                Ok(hs) => {
                    if t.get("serverHello").is_some() {
                        let expected = parse_with(t, "", "serverHello", ServerHello::parse)?;
                        if expected != hs.hello {
                            return Err(format!(
                                "serverHello: file has {}, the core gives {}",
                                expected.to_json(),
                                hs.hello.to_json()
                            ));
                        }
                        expect_eq("transcript", s(t, "", "transcript")?, &hs.transcript)?;
                    }
                    Ok(Ok(()))
                }
            }
        }
        "KeySchedule" => {
            let shared = hex32(t, "", "sharedSecretHex")?;
            let keys = derive_session_keys(&shared, s(t, "", "transcript")?.as_bytes());
            expect_eq(
                "clientToServerKeyHex",
                s(t, "", "clientToServerKeyHex")?,
                &hex::encode(keys.c2s),
            )?;
            expect_eq(
                "serverToClientKeyHex",
                s(t, "", "serverToClientKeyHex")?,
                &hex::encode(keys.s2c),
            )?;
            Ok(Ok(()))
        }
        "ResponseKey" => {
            let s2c = hex32(g, "group", "serverToClientKeyHex")?;
            let sid = s(g, "group", "sid")?;
            let seq = fields::u64_at(t, "", "requestSeq").map_err(field_err)?;
            expect_eq(
                "responseKeyHex",
                s(t, "", "responseKeyHex")?,
                &hex::encode(response_key(&s2c, seq)),
            )?;
            expect_eq(
                "nonceHex",
                s(t, "", "nonceHex")?,
                &hex::encode(nonce_for(seq)),
            )?;
            expect_eq(
                "requestAad",
                s(t, "", "requestAad")?,
                &request_aad(sid, seq),
            )?;
            expect_eq(
                "finalFrameAad",
                s(t, "", "finalFrameAad")?,
                &response_aad(sid, seq, 0, true),
            )?;
            Ok(Ok(()))
        }
        "CallOpen" => {
            let mut session = server_session(g)?;
            let call = parse_with(t, "", "call", CallRequest::parse)?;
            let now = fields::i64_at(t, "", "now").map_err(field_err)?;
            if let Err(r) = mode.check_b64(&call.ct) {
                return Ok(Err(r));
            }
            open_one(&mut session, &call, now, s(t, "", "innerRequest")?)
        }
        "CallSequence" => {
            let mut session = server_session(g)?;
            let now = fields::i64_at(t, "", "now").map_err(field_err)?;
            let inner = s(t, "", "innerRequest")?;
            let steps = fields::array_at(t, "", "calls").map_err(field_err)?;
            for (i, step) in steps.iter().enumerate() {
                let path = format!("calls[{i}]");
                let call = parse_with(step, &path, "call", CallRequest::parse)?;
                let expect = s(step, &path, "expect")?;
                let got = match open_one(&mut session, &call, now, inner)? {
                    Ok(()) => "ok",
                    Err(r) => r.name(),
                };
                if got != expect {
                    return Err(format!(
                        "{path} (seq {}): expected {expect}, the core gives {got}",
                        call.seq
                    ));
                }
            }
            Ok(Ok(()))
        }
        "ReplayWindow" => {
            let seqs = fields::array_at(t, "", "seqs").map_err(field_err)?;
            let accepted = fields::array_at(t, "", "accepted").map_err(field_err)?;
            if seqs.len() != accepted.len() {
                return Err("seqs and accepted differ in length".into());
            }
            let mut window = ReplayWindow::new();
            for (i, (seq, want)) in seqs.iter().zip(accepted).enumerate() {
                let seq = seq
                    .as_u64()
                    .ok_or_else(|| format!("field `seqs[{i}]` must be an integer in 0..=2^64-1"))?;
                let want = want
                    .as_bool()
                    .ok_or_else(|| format!("field `accepted[{i}]` must be a boolean"))?;
                let got = window.mark(seq);
                if got != want {
                    return Err(format!(
                        "seqs[{i}] = {seq}: expected {}, the window {}",
                        verdict(want),
                        verdict(got)
                    ));
                }
            }
            Ok(Ok(()))
        }
        "ResponseOpen" => {
            let sid = s(g, "group", "sid")?;
            let s2c = hex32(g, "group", "serverToClientKeyHex")?;
            let rs = fields::u64_at(g, "group", "requestSeq").map_err(field_err)?;
            let mut opener = ResponseOpener::new(response_key(&s2c, rs), sid.to_owned(), rs);
            let frames = fields::array_at(t, "", "frames").map_err(field_err)?;
            let wanted = fields::array_at(t, "", "plaintexts").map_err(field_err)?;
            let mut opened = Vec::new();
            for (i, frame) in frames.iter().enumerate() {
                let frame = Frame::parse(frame.to_string().as_bytes())
                    .map_err(|e| format!("frames[{i}]: {e}"))?;
                if let Err(r) = mode.check_b64(&frame.ct) {
                    return Ok(Err(r));
                }
                match opener.open(&frame) {
                    Ok(pt) => opened.push(pt),
                    Err(e) => return Ok(Err(frame_reason(&e))),
                }
            }
            if let Err(e) = opener.finish() {
                return Ok(Err(frame_reason(&e)));
            }
            for (i, pt) in opened.iter().enumerate() {
                let want = wanted
                    .get(i)
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("field `plaintexts[{i}]` must be a string"))?;
                expect_eq(
                    &format!("plaintexts[{i}]"),
                    want,
                    &String::from_utf8_lossy(pt),
                )?;
            }
            Ok(Ok(()))
        }
        "Base64url" => {
            let strictness = if mode == Mode::Strict {
                B64Strictness::Canonical
            } else {
                B64Strictness::Upstream
            };
            match b64url_decode(s(t, "", "encoded")?, strictness) {
                Err(_) => Ok(Err(Reason::Base64Refused)),
                Ok(bytes) => {
                    expect_eq("decodedHex", s(t, "", "decodedHex")?, &hex::encode(bytes))?;
                    Ok(Ok(()))
                }
            }
        }
        other => Err(format!("unknown group type {other:?}")),
    }
}

fn verdict(accepted: bool) -> &'static str {
    if accepted {
        "accepts it"
    } else {
        "refuses it"
    }
}

fn server_session(g: &Value) -> Result<ServerSession, Broken> {
    Ok(ServerSession::new(
        s(g, "group", "sid")?.to_owned(),
        SessionKeys {
            c2s: hex32(g, "group", "clientToServerKeyHex")?,
            // Opening calls never touches s2c.
            s2c: [0; 32],
        },
        fields::i64_at(g, "group", "expiresAt").map_err(field_err)?,
    ))
}

/// The server's lookup by sid, then the core's checks.
fn open_one(
    session: &mut ServerSession,
    call: &CallRequest,
    now: i64,
    inner: &str,
) -> Result<Acceptance, Broken> {
    if call.sid != session.sid() {
        return Ok(Err(Reason::SessionUnknown));
    }
    match session.open_call(call, now, &HonestCalls) {
        Ok(opened) => {
            expect_eq(
                "innerRequest",
                inner,
                &String::from_utf8_lossy(&opened.plaintext),
            )?;
            Ok(Ok(()))
        }
        Err(e) => Ok(Err(call_reason(&e, session, call)?)),
    }
}

fn describe(outcome: &Acceptance) -> String {
    match outcome {
        Ok(()) => "accepts it".into(),
        Err(r) => format!("refuses it ({r})"),
    }
}

/// Judges one case against its `result` and flags.
pub fn check_case(kind: &str, g: &Value, t: &Value) -> Result<(), String> {
    let result = s(t, "", "result")?;
    let flag_names: Vec<&str> = fields::array_at(t, "", "flags")
        .map_err(field_err)?
        .iter()
        .map(|f| f.as_str().ok_or("field `flags` must hold strings"))
        .collect::<Result<_, _>>()?;
    let mut kinds = Vec::new();
    for name in &flag_names {
        kinds.push(
            flag(name)
                .ok_or_else(|| format!("unknown flag {name:?}"))?
                .kind,
        );
    }
    let requirements = fields::array_at(t, "", "requirements").map_err(field_err)?;
    if requirements.is_empty() {
        return Err("field `requirements` is empty".into());
    }
    for r in requirements {
        let known = r.as_str().is_some_and(|r| KNOWN_REQUIREMENTS.contains(&r));
        if !known {
            return Err(format!("requirement {r} is not an ID of docs/PROTOCOL.md"));
        }
    }
    let implied = result_for(&flag_names);
    if result != implied {
        return Err(format!(
            "result is {result:?} but its flags make it {implied:?}"
        ));
    }
    let run = |mode| run_case(kind, g, t, mode);
    match result {
        "valid" => {
            for mode in [Mode::Strict, Mode::Reference] {
                let got = run(mode)?;
                if got.is_err() {
                    return Err(format!(
                        "valid, but the core under the {mode:?} policy {}",
                        describe(&got)
                    ));
                }
            }
            Ok(())
        }
        "invalid" => {
            let reason = kinds
                .iter()
                .find_map(|k| match k {
                    FlagKind::Invalid(r) => Some(*r),
                    _ => None,
                })
                .expect("result_for found an Invalid flag");
            let got = run(Mode::Reference)?;
            if got != Err(reason) {
                return Err(format!(
                    "invalid for reason {reason}, but the core (reference policy) {}",
                    describe(&got)
                ));
            }
            for mode in [Mode::Permissive, Mode::Strict] {
                let got = run(mode)?;
                if got.is_ok() {
                    return Err(format!(
                        "invalid, but the core under the {mode:?} policy accepts it"
                    ));
                }
            }
            Ok(())
        }
        "acceptable" => {
            let (strict, reference) = kinds
                .iter()
                .find_map(|k| match k {
                    FlagKind::Acceptable {
                        strict,
                        reference_accepts,
                        ..
                    } => Some((*strict, *reference_accepts)),
                    _ => None,
                })
                .expect("result_for found an Acceptable flag");
            let got = run(Mode::Strict)?;
            if got != Err(strict) {
                return Err(format!(
                    "a strict verifier must refuse it ({strict}), but the core {}",
                    describe(&got)
                ));
            }
            if let Some(accepts) = reference {
                let lenient = run(Mode::Permissive)?;
                if lenient.is_err() {
                    return Err(format!(
                        "acceptable, but the permissive core {}",
                        describe(&lenient)
                    ));
                }
                let got = run(Mode::Reference)?;
                if got.is_ok() != accepts {
                    return Err(format!(
                        "the notes say the reference {}, but the core under the reference policy {}",
                        verdict(accepts),
                        describe(&got)
                    ));
                }
            }
            Ok(())
        }
        other => Err(format!(
            "result must be valid, invalid or acceptable, not {other:?}"
        )),
    }
}

/// Checks that the file's notes state the same reasons and reference
/// behaviour as the flag table the cases are judged by.
fn check_notes(notes: &Value) -> Result<(), String> {
    let notes = notes.as_object().ok_or("field `notes` must be an object")?;
    let mut differ = Vec::new();
    for (name, note) in notes {
        let Some(f) = flag(name) else {
            differ.push(format!("{name} is not a known flag"));
            continue;
        };
        let (key, want) = match f.kind {
            FlagKind::Info => continue,
            FlagKind::Invalid(r) => ("expectedReason", Value::from(r.name())),
            FlagKind::Acceptable {
                strict,
                reference_accepts,
                level,
            } => {
                if note.get("referenceAccepts") != Some(&Value::from(reference_accepts)) {
                    differ.push(format!(
                        "{name}.referenceAccepts should be {reference_accepts:?}"
                    ));
                }
                // Files written before levels had none: UPSTREAM.
                let stated = note
                    .get("level")
                    .and_then(Value::as_str)
                    .unwrap_or("UPSTREAM");
                if stated != level.name() {
                    differ.push(format!("{name}.level should be {}", level.name()));
                }
                ("strictReason", Value::from(strict.name()))
            }
        };
        if note.get(key) != Some(&want) {
            differ.push(format!("{name}.{key} should be {want}"));
        }
    }
    if differ.is_empty() {
        Ok(())
    } else {
        Err(differ.join("; "))
    }
}

/// Verifies a suite file: one line per case.
pub fn verify(file: &Value) -> Result<Vec<CheckLine>, VectorsError> {
    let groups = fields::array_at(file, "", "testGroups")?;
    let mut lines = Vec::new();
    let mut ids = BTreeSet::new();
    let mut count = 0u64;
    for (gi, g) in groups.iter().enumerate() {
        let gpath = format!("testGroups[{gi}]");
        let kind = fields::str_at(g, &gpath, "type")?;
        let tests = fields::array_at(g, &gpath, "tests")?;
        for (ti, t) in tests.iter().enumerate() {
            count += 1;
            let tpath = format!("{gpath}.tests[{ti}]");
            let id = fields::u64_at(t, &tpath, "tcId")?;
            let comment = t.get("comment").and_then(Value::as_str).unwrap_or("");
            let result = t.get("result").and_then(Value::as_str).unwrap_or("?");
            let flags: Vec<&str> = t
                .get("flags")
                .and_then(Value::as_array)
                .map(|f| f.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let name = format!("#{id} {kind} [{result}: {}]: {comment}", flags.join(","));
            if !ids.insert(id) {
                lines.push(CheckLine::fail(name, "duplicate tcId"));
                continue;
            }
            lines.push(CheckLine::from_result(name, check_case(kind, g, t)));
        }
    }
    if let Some(notes) = file.get("notes") {
        lines.push(CheckLine::from_result("notes", check_notes(notes)));
    }
    if let Some(n) = file.get("numberOfTests") {
        if n.as_u64() != Some(count) {
            lines.push(CheckLine::fail(
                "numberOfTests",
                format!("says {n}, the file holds {count}"),
            ));
        }
    }
    Ok(lines)
}
