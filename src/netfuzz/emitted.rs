//! What the target emitted, judged as the suite judges it: the encodings
//! it wrote (ENC-1, ENC-2), where it put `fin` in a stream (RESP-3), and
//! whether its hellos are fresh across the sessions a run opens (HS-3).
//! Small pure checks over the bytes as received; they belong with the
//! suite's twins in one judge once there is one below both rooms.

use std::collections::HashSet;

use serde_json::Value;

use crate::protocol::encoding::{b64url_decode, B64Strictness};

/// Whether `text` is canonical base64url: URL-safe alphabet, no padding,
/// no stray bits (ENC-1).
fn canonical_b64(text: &str) -> bool {
    b64url_decode(text, B64Strictness::Canonical).is_ok()
}

/// The first encoding problem of a ServerHello as the target wrote it:
/// `encPub` and `sid` unpadded base64url (ENC-1), the signature `0x` + 130
/// lowercase hex digits (ENC-2).
pub fn hello_problem(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    for field in ["encPub", "sid"] {
        match v.get(field).and_then(Value::as_str) {
            Some(t) if canonical_b64(t) => {}
            other => {
                return Some(format!(
                    "ServerHello {field} {other:?} is not canonical unpadded base64url (ENC-1)"
                ))
            }
        }
    }
    let signature = v.get("signature").and_then(Value::as_str).unwrap_or("");
    let digits = signature.strip_prefix("0x").unwrap_or("");
    let lower_hex = digits.len() == 130
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (!lower_hex).then(|| {
        format!(
            "ServerHello signature {:?} is not 0x + 130 lowercase hex digits (ENC-2)",
            crate::netfuzz::exec::lossy(signature.as_bytes(), 140)
        )
    })
}

/// The problem of one frame as the target wrote it: `ct` not canonical
/// unpadded base64url (ENC-1).
pub fn frame_problem(frame: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(frame).ok()?;
    match v.get("ct").and_then(Value::as_str) {
        Some(ct) if canonical_b64(ct) => None,
        Some(ct) => Some(format!(
            "frame {} writes ct as {:?}, not canonical unpadded base64url (ENC-1)",
            v.get("seq").and_then(Value::as_u64).unwrap_or(0),
            crate::netfuzz::exec::lossy(ct.as_bytes(), 60)
        )),
        None => None,
    }
}

/// Where a stream's `fin` is wrong (RESP-3): it ends with one frame whose
/// plaintext is empty and carries `fin`, and no earlier frame carries it.
/// `frames` holds each opened frame's (`fin`, plaintext length).
pub fn stream_fin_problem(frames: &[(bool, usize)]) -> Option<String> {
    let (last, before) = frames.split_last()?;
    if let Some(i) = before.iter().position(|(fin, _)| *fin) {
        return Some(format!(
            "stream frame {i} carries fin before the last frame"
        ));
    }
    match last {
        (true, 0) => None,
        (true, n) => Some(format!(
            "the stream's fin frame carries {n} bytes of data: fin belongs on a separate empty frame (RESP-3)"
        )),
        (false, _) => None,
    }
}

/// The values a server must never repeat across sessions (HS-3): its
/// ephemeral key, the sid, and the signature's `r` (a repeated `r` gives
/// the agent's key away).
#[derive(Debug, Default)]
pub struct Freshness {
    seen: HashSet<(&'static str, String)>,
}

impl Freshness {
    /// Takes note of a ServerHello's body; the first value it repeats from
    /// an earlier one, if any.
    pub fn admit(&mut self, body: &[u8]) -> Option<String> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let signature = text("signature");
        let r = signature
            .strip_prefix("0x")
            .unwrap_or(&signature)
            .get(..64)
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut repeated = None;
        for (name, value) in [("encPub", text("encPub")), ("sid", text("sid")), ("r", r)] {
            if value.is_empty() {
                continue;
            }
            if !self.seen.insert((name, value.clone())) && repeated.is_none() {
                repeated = Some(format!(
                    "the ServerHello repeats the {name} of an earlier session: {} (HS-3)",
                    crate::netfuzz::exec::lossy(value.as_bytes(), 70)
                ));
            }
        }
        repeated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = r#"{"encPub":"AAAA","sid":"AQID","signature":"0xSIG","expiresAt":1,"v":1}"#;

    fn hello(enc: &str, sid: &str, sig: &str) -> Vec<u8> {
        HELLO
            .replace("AAAA", enc)
            .replace("AQID", sid)
            .replace("0xSIG", sig)
            .into_bytes()
    }

    #[test]
    fn encodings_are_judged_as_written() {
        let sig = format!("0x{}", "ab".repeat(65));
        assert_eq!(hello_problem(&hello("AAAA", "AQID", &sig)), None);
        assert!(hello_problem(&hello("AA==", "AQID", &sig))
            .unwrap()
            .contains("ENC-1"));
        let upper = format!("0x{}", "AB".repeat(65));
        assert!(hello_problem(&hello("AAAA", "AQID", &upper))
            .unwrap()
            .contains("ENC-2"));
        assert_eq!(frame_problem(br#"{"seq":0,"ct":"AAAA","fin":true}"#), None);
        assert!(frame_problem(br#"{"seq":0,"ct":"AA==","fin":true}"#).is_some());
    }

    #[test]
    fn fin_goes_on_a_separate_empty_frame() {
        assert_eq!(stream_fin_problem(&[(false, 5), (true, 0)]), None);
        assert!(stream_fin_problem(&[(false, 5), (true, 3)]).is_some());
        assert!(stream_fin_problem(&[(true, 5), (true, 0)]).is_some());
        assert_eq!(stream_fin_problem(&[]), None);
    }

    #[test]
    fn a_repeated_key_sid_or_r_is_not_fresh() {
        let mut f = Freshness::default();
        let a = format!("0x{}{}", "11".repeat(32), "22".repeat(33));
        let b = format!("0x{}{}", "33".repeat(32), "22".repeat(33));
        assert_eq!(f.admit(&hello("AAAA", "AQID", &a)), None);
        assert!(f
            .admit(&hello("AAAA", "BBBB", &b))
            .unwrap()
            .contains("encPub"));
        assert!(f.admit(&hello("CCCC", "DDDD", &a)).unwrap().contains(" r "));
    }
}
