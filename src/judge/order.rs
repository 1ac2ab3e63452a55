//! The refusal the protocol fixes for an input, read off the order in
//! which a target checks it: a ClientHello with one bad field (SPEC §4:
//! decode, `v`, agent, key agreement) and a call whose edits first fail
//! one check of CALL-2's order (envelope, session, `v`, the AEAD under the
//! client-to-server key, replay window). Each fixed refusal carries the
//! requirement and level the suite judges the same input by
//! (`mitm-version-2`, `mitm-unknown-agent`, `mitm-low-order-key`,
//! `tamper-check-order`, `tamper-check-order-edges`, `replay-transplant`),
//! so the fuzzer and the suite give one input one verdict. An input whose
//! answer the order does not fix gets `None`: only a documented answer is
//! asked of it.

use serde_json::Value;

use super::check::{Check, Hit};
use super::refusal::check_status;
use super::{Checked, Claim, Expect};
use crate::peer::edit::{CallStep, EnvelopeEdit};
use crate::peer::Answer;
use crate::protocol::encoding::{b64url_decode, B64Strictness};
use crate::protocol::error::{ChannelErrorCode, HandshakeRefusal};
use crate::protocol::handshake::low_order_points;
use crate::report::Level;

/// A refusal the protocol fixes: the status and error it must carry, the
/// requirement the input tests, and which check decides (the field of a
/// fuzzer signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    /// The outer status.
    pub status: u16,
    /// The channel error code, or the handshake error message (empty:
    /// the protocol fixes the status alone).
    pub error: &'static str,
    /// The requirement IDs the input tests, joined with `, `.
    pub requirement: &'static str,
    /// Their level.
    pub level: Level,
    /// The check that decides, as a signature field (`version`, `sid`, …).
    pub field: &'static str,
}

impl Fixed {
    const fn hello(r: HandshakeRefusal, requirement: &'static str, level: Level) -> Fixed {
        Fixed {
            status: match r {
                HandshakeRefusal::UnknownAgent => 404,
                _ => 400,
            },
            error: match r {
                HandshakeRefusal::UnsupportedVersion => "Unsupported secure channel version",
                HandshakeRefusal::UnknownAgent => "Unknown agent address",
                _ => "Malformed handshake",
            },
            requirement,
            level,
            field: match r {
                HandshakeRefusal::UnsupportedVersion => "version",
                HandshakeRefusal::UnknownAgent => "unknown-agent",
                _ => "low-order-key",
            },
        }
    }

    const fn call(code: ChannelErrorCode, requirement: &'static str, field: &'static str) -> Fixed {
        Fixed {
            status: match code {
                ChannelErrorCode::SessionUnknown => 401,
                _ => 400,
            },
            error: match code {
                ChannelErrorCode::SessionUnknown => "secure_session_unknown",
                _ => "secure_decrypt_failed",
            },
            requirement,
            level: Level::Must,
            field,
        }
    }

    /// The claim a miss is filed under.
    pub fn claim(&self) -> Claim {
        Claim::new(self.requirement, self.level)
    }

    /// The expectation the suite writes for the same input.
    pub fn expect(&self) -> Expect {
        Expect {
            status: Some(self.status),
            error: (!self.error.is_empty()).then(|| self.error.to_owned()),
            ..Expect::default()
        }
    }
}

/// A ClientHello with `v` other than 1 (HS-4).
pub const HELLO_VERSION: Fixed =
    Fixed::hello(HandshakeRefusal::UnsupportedVersion, "HS-4", Level::Must);
/// A ClientHello for an agent the server does not hold (HS-6).
pub const HELLO_UNKNOWN_AGENT: Fixed =
    Fixed::hello(HandshakeRefusal::UnknownAgent, "HS-6", Level::Must);
/// A ClientHello whose `encPub` is a low-order point (HS-7, a SHOULD).
pub const HELLO_LOW_ORDER: Fixed = Fixed::hello(HandshakeRefusal::Malformed, "HS-7", Level::Should);
/// A call naming a session the server does not hold, whatever its `v`:
/// the session lookup comes before the version check (CALL-2).
pub const CALL_SESSION_UNKNOWN: Fixed =
    Fixed::call(ChannelErrorCode::SessionUnknown, "CALL-2", "sid");
/// A call with `v` other than 1 on a known session (CALL-2).
pub const CALL_VERSION: Fixed = Fixed::call(ChannelErrorCode::DecryptFailed, "CALL-2", "v");
/// A call whose tag or ciphertext was bent: the AEAD fails before the
/// replay window is asked, so even a used seq or seq 0 gets 400 (CALL-2).
pub const CALL_FORGED_TAG: Fixed = Fixed::call(ChannelErrorCode::DecryptFailed, "CALL-2", "tag");
/// The same for a bent first ciphertext byte.
pub const CALL_FORGED_CT: Fixed = Fixed::call(ChannelErrorCode::DecryptFailed, "CALL-2", "ct");
/// A call sealed with the server-to-client key: keys are directional
/// (CALL-5, KS-1).
pub const CALL_WRONG_DIRECTION: Fixed =
    Fixed::call(ChannelErrorCode::DecryptFailed, "CALL-5, KS-1", "direction");

/// A call envelope sent again byte for byte after the server answered it
/// 200: `409 secure_replay` (CALL-3), as `replay-same-envelope` judges it.
pub const CALL_REPLAYED: Fixed = Fixed {
    status: 409,
    error: "secure_replay",
    requirement: "CALL-3",
    level: Level::Must,
    field: "replay",
};
/// A plaintext agent run from a remote caller holding the access key:
/// the 426 gate (GATE-1), as `gate-plain-run-426` judges it.
pub const PLAIN_RUN_GATED: Fixed = Fixed {
    status: 426,
    error: "secure_channel_required",
    requirement: "GATE-1",
    level: Level::Must,
    field: "plaintext",
};
/// A plaintext agent run from a remote caller without the access key: the
/// key check answers 401 before the 426 gate (GATE-6, upstream's order),
/// as `gate-bearer-first` judges it.
pub const PLAIN_RUN_WITHOUT_KEY: Fixed = Fixed {
    status: 401,
    error: "",
    requirement: "GATE-6",
    level: Level::Upstream,
    field: "plaintext",
};

/// Every fixed refusal, for the tables that must agree with them.
pub const ALL: &[Fixed] = &[
    HELLO_VERSION,
    HELLO_UNKNOWN_AGENT,
    HELLO_LOW_ORDER,
    CALL_SESSION_UNKNOWN,
    CALL_VERSION,
    CALL_FORGED_TAG,
    CALL_FORGED_CT,
    CALL_WRONG_DIRECTION,
];

/// The refusal a ClientHello `body` (as sent) must get from a server
/// holding only `pinned`, when one field alone decides it in the
/// handshake's order: the hello decodes (`v` an integer, the other three
/// strings), then `v` (HS-4), then the agent (HS-6, only for a
/// well-formed address), then key agreement (HS-7, only for a low-order
/// `encPub` beside an honest nonce). `None` leaves the answer free.
pub fn hello_refusal(body: &[u8], pinned: &str) -> Option<Fixed> {
    let hello: Value = serde_json::from_slice(body).ok()?;
    let text = |k: &str| hello.get(k).and_then(Value::as_str);
    let (address, enc_pub, nonce) = (text("agentAddress")?, text("encPub")?, text("nonce")?);
    // Only an integer decodes; 1.0 or 1e0 may or may not, so not judged.
    let v = hello.get("v")?;
    if !(v.is_i64() || v.is_u64()) {
        return None;
    }
    if v.as_i64() != Some(1) {
        return Some(HELLO_VERSION);
    }
    if !address.eq_ignore_ascii_case(pinned) {
        let well_formed = address.len() == 42
            && address.starts_with("0x")
            && address[2..].bytes().all(|b| b.is_ascii_hexdigit());
        return well_formed.then_some(HELLO_UNKNOWN_AGENT);
    }
    let honest_nonce = b64url_decode(nonce, B64Strictness::Canonical).is_ok_and(|n| n.len() == 16);
    let key = b64url_decode(enc_pub, B64Strictness::Canonical).ok()?;
    let low_order = low_order_points().iter().any(|(_, p)| p[..] == key[..]);
    (honest_nonce && low_order).then_some(HELLO_LOW_ORDER)
}

/// The refusal `call` must get when its edits first fail one check of
/// CALL-2's order: a sid no session holds (401, whatever `v` says), a `v`
/// other than 1 on the session (400), a lone bent tag or ciphertext byte
/// (400, before the replay window: also on a used seq or seq 0), or an
/// unedited call sealed with the server-to-client key (400, CALL-5).
/// Broken framing and byte edits leave the answer free, and so does any
/// other mix of edits.
pub fn call_refusal(call: &CallStep) -> Option<Fixed> {
    if !call.framing.is_normal() || !call.bytes.is_empty() {
        return None;
    }
    let edits = &call.envelope;
    if edits.is_empty() {
        return call.wrong_direction.then_some(CALL_WRONG_DIRECTION);
    }
    if let [EnvelopeEdit::FlipTag] = edits.as_slice() {
        return Some(CALL_FORGED_TAG);
    }
    if let [EnvelopeEdit::FlipCt] = edits.as_slice() {
        return Some(CALL_FORGED_CT);
    }
    // Values of the right type: the envelope decodes, and the session
    // lookup, then the version check, decide.
    let mut sid = false;
    for edit in edits {
        let EnvelopeEdit::Set { field, json, .. } = edit else {
            return None;
        };
        let value: Value = serde_json::from_str(json).ok()?;
        match field.as_str() {
            "sid" if value.is_string() => sid = true,
            "v" if value.as_i64().is_some_and(|v| v != 1) => {}
            _ => return None,
        }
    }
    Some(if sid {
        CALL_SESSION_UNKNOWN
    } else {
        CALL_VERSION
    })
}

/// Holds an answer against a fixed refusal, as the suite holds the same
/// input: the status, then the whole documented error body.
pub fn check(fixed: &Fixed, status: u16, headers: &[(String, String)], body: &[u8]) -> Checked {
    check_status(&fixed.claim(), &fixed.expect(), status, headers, body)
}

/// The fuzzer's check of an answer against a fixed refusal: the suite's
/// [`check`], filed as an accepted invalid input (a 2xx) or the wrong
/// refusal (anything else). A 429 is a wait, never a verdict (HS-8).
/// Which requirement and level the hit judges is the check table's
/// (`check::REFINED` gives these signatures the fixed refusal's).
pub fn check_answer(fixed: &Fixed, a: &Answer) -> Result<(), Hit> {
    if a.status == 429 {
        return Ok(());
    }
    check(fixed, a.status, &a.headers, &a.body).map_err(|miss| {
        let check = if (200..300).contains(&a.status) {
            Check::AcceptedInvalid
        } else {
            Check::WrongStatus
        };
        (
            check,
            format!("{}; expected {}", miss.actual, miss.expected),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::edit::Inner;
    use crate::protocol::encoding::b64url_encode;

    const PINNED: &str = "0x00000000000000000000000000000000000000aa";

    #[test]
    fn the_relay_attacks_refusals_are_the_suites() {
        // Each fixed refusal a relay in the middle judges cites what the
        // scenario judging the same answer cites.
        for (fixed, file) in [
            (
                CALL_REPLAYED,
                include_str!("../../scenarios/replay-same-envelope.toml"),
            ),
            (
                PLAIN_RUN_GATED,
                include_str!("../../scenarios/gate-plain-run-426.toml"),
            ),
            (
                PLAIN_RUN_WITHOUT_KEY,
                include_str!("../../scenarios/gate-bearer-first.toml"),
            ),
        ] {
            let scenario: toml::Value = toml::from_str(file).unwrap();
            assert_eq!(scenario["level"].as_str(), Some(fixed.level.name()));
            let ids = scenario["requirements"].as_array().unwrap();
            assert!(
                ids.iter().any(|id| id.as_str() == Some(fixed.requirement)),
                "{}: {ids:?}",
                fixed.requirement
            );
            let steps = scenario["step"].as_array().unwrap();
            assert!(steps.iter().any(|step| step.get("expect").is_some_and(|e| {
                e.get("status").and_then(toml::Value::as_integer) == Some(i64::from(fixed.status))
                    && e.get("error").and_then(toml::Value::as_str)
                        == (!fixed.error.is_empty()).then_some(fixed.error)
            })));
        }
    }

    fn hello(v: &str, address: &str, key: &[u8]) -> Vec<u8> {
        format!(
            r#"{{"v":{v},"agentAddress":"{address}","encPub":"{}","nonce":"{}"}}"#,
            b64url_encode(key),
            b64url_encode(&[7u8; 16])
        )
        .into_bytes()
    }

    #[test]
    fn a_hello_is_judged_in_the_handshake_order() {
        let key = [9u8; 32];
        assert_eq!(hello_refusal(&hello("1", PINNED, &key), PINNED), None);
        let v2 = hello_refusal(&hello("2", PINNED, &key), PINNED).unwrap();
        assert_eq!((v2.status, v2.requirement), (400, "HS-4"));
        // The version comes before the agent.
        let other = "0x000000000000000000000000000000000000dEaD";
        assert_eq!(
            hello_refusal(&hello("0", other, &key), PINNED),
            Some(HELLO_VERSION)
        );
        assert_eq!(
            hello_refusal(&hello("1", other, &key), PINNED),
            Some(HELLO_UNKNOWN_AGENT)
        );
        assert_eq!(
            hello_refusal(
                &hello("1", &PINNED.to_uppercase().replace("0X", "0x"), &key),
                PINNED
            ),
            None
        );
        // Not an address, not a whole number: the answer is free.
        assert_eq!(hello_refusal(&hello("1", "é☃", &key), PINNED), None);
        assert_eq!(hello_refusal(&hello("1.5", PINNED, &key), PINNED), None);
        assert_eq!(hello_refusal(&hello("\"2\"", PINNED, &key), PINNED), None);
        assert_eq!(hello_refusal(b"{\"v\":2", PINNED), None);
        for (_, point) in low_order_points() {
            let fixed = hello_refusal(&hello("1", PINNED, &point), PINNED).unwrap();
            assert_eq!((fixed.requirement, fixed.level), ("HS-7", Level::Should));
        }
    }

    fn call(edits: Vec<EnvelopeEdit>, wrong_direction: bool) -> CallStep {
        CallStep {
            inner: Inner::honest_run(),
            seq: None,
            at: None,
            envelope: edits,
            bytes: Vec::new(),
            framing: Default::default(),
            wrong_direction,
            seal_with: None,
            relay: None,
            save: None,
        }
    }

    fn set(field: &str, json: &str) -> EnvelopeEdit {
        EnvelopeEdit::Set {
            field: field.into(),
            json: json.into(),
            invalid: true,
        }
    }

    #[test]
    fn a_call_is_judged_in_the_call_2_order() {
        assert_eq!(call_refusal(&call(vec![], false)), None);
        assert_eq!(
            call_refusal(&call(vec![], true)),
            Some(CALL_WRONG_DIRECTION)
        );
        // The session lookup comes before the version check.
        let unknown = call(vec![set("v", "2"), set("sid", "\"AAAA\"")], false);
        assert_eq!(call_refusal(&unknown).unwrap().status, 401);
        assert_eq!(
            call_refusal(&call(vec![set("v", "0")], true)),
            Some(CALL_VERSION)
        );
        let mut used = call(vec![EnvelopeEdit::FlipTag], false);
        used.seq = Some(0);
        assert_eq!(call_refusal(&used), Some(CALL_FORGED_TAG));
        // A wrong type, a second flip, a byte edit: not fixed here.
        assert_eq!(call_refusal(&call(vec![set("v", "\"1\"")], false)), None);
        assert_eq!(call_refusal(&call(vec![set("v", "1")], false)), None);
        assert_eq!(
            call_refusal(&call(
                vec![EnvelopeEdit::FlipTag, EnvelopeEdit::FlipTag],
                false
            )),
            None
        );
        assert_eq!(
            call_refusal(&call(vec![set("seq", "1000001")], false)),
            None
        );
    }

    #[test]
    fn an_answer_is_held_against_the_whole_refusal() {
        let json = vec![(
            "content-type".to_string(),
            "application/json; charset=utf-8".to_string(),
        )];
        let body = HandshakeRefusal::UnknownAgent.body();
        assert!(check(&HELLO_UNKNOWN_AGENT, 404, &json, body.as_bytes()).is_ok());
        let miss = check(
            &HELLO_UNKNOWN_AGENT,
            400,
            &json,
            HandshakeRefusal::Malformed.body().as_bytes(),
        )
        .unwrap_err();
        assert_eq!(
            (miss.requirement.as_str(), miss.level),
            ("HS-6", Level::Must)
        );
        for fixed in ALL {
            let r = HandshakeRefusal::from_response(fixed.status, fixed.error);
            let c = ChannelErrorCode::check_pairing(fixed.error, fixed.status);
            assert!(r.is_some() || c.is_ok(), "{fixed:?}");
        }
    }
}
