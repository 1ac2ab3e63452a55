//! What the target emitted, encoding by encoding: base64url without
//! padding (ENC-1), signatures as `0x` + lowercase hex (ENC-2) with `v` 27
//! or 28 (ID-3), frame seqs as integers, and the signature's low `s`
//! (ID-4).

use serde_json::Value;

use super::{shorten, Finding};
use crate::peer::{Emitted, Encoding};
use crate::protocol::encoding::{b64url_decode, B64Strictness};
use crate::report::Level;

/// Whether `text` is canonical base64url: URL-safe alphabet, no padding,
/// no stray bits (ENC-1).
pub fn canonical_b64(text: &str) -> bool {
    b64url_decode(text, B64Strictness::Canonical).is_ok()
}

/// One value written in a non-canonical way, with the requirement it
/// breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodingProblem {
    /// `ENC-1`, `ENC-2` or `ID-3`.
    pub requirement: &'static str,
    /// What is wrong, in words.
    pub what: String,
}

/// The first problem of one emitted value, if any.
pub fn problem(e: &Emitted) -> Option<EncodingProblem> {
    let text = e.value.as_ref().and_then(Value::as_str);
    let enc1 = |what: String| {
        Some(EncodingProblem {
            requirement: "ENC-1",
            what,
        })
    };
    match e.encoding {
        Encoding::B64Url => match (text, e.place.as_str()) {
            (Some(t), _) if canonical_b64(t) => None,
            (None, place) if place.starts_with("frame ") => enc1("a frame has no ct string".into()),
            (Some(t), place) if place.starts_with("frame ") => enc1(format!(
                "{} writes ct as {:?}, not canonical unpadded base64url (ENC-1)",
                place.trim_end_matches(" ct"),
                shorten(t, 60)
            )),
            (Some(t), "inner body") => enc1(format!(
                "the inner response body {:?} is not canonical unpadded base64url (ENC-1)",
                shorten(t, 60)
            )),
            (other, place) => enc1(format!(
                "{place} {other:?} is not canonical unpadded base64url (ENC-1)"
            )),
        },
        Encoding::FrameSeq => match &e.value {
            Some(v) if v.is_u64() => None,
            other => enc1(format!("a frame's seq is {other:?}, not an integer")),
        },
        Encoding::Signature => {
            let signature = text.unwrap_or("");
            let digits = signature.strip_prefix("0x").unwrap_or("");
            let lower_hex = digits.len() == 130
                && digits
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !lower_hex {
                return Some(EncodingProblem {
                    requirement: "ENC-2",
                    what: format!(
                        "signature {:?} is not 0x + 130 lowercase hex digits (ENC-2)",
                        shorten(signature, 140)
                    ),
                });
            }
            let v = hex::decode(digits).ok()?[64];
            (!matches!(v, 27 | 28)).then(|| EncodingProblem {
                requirement: "ID-3",
                what: format!("the signature's v is {v}, not 27 or 28 (ID-3)"),
            })
        }
    }
}

/// Every problem of what the target emitted, in the order written.
pub fn problems(emitted: &[Emitted]) -> Vec<EncodingProblem> {
    emitted.iter().filter_map(problem).collect()
}

/// The problems as MUST findings, each under its own requirement.
pub fn findings(emitted: &[Emitted]) -> Vec<Finding> {
    problems(emitted)
        .into_iter()
        .map(|p| Finding {
            requirement: p.requirement.into(),
            level: Level::Must,
            expected: "canonical encodings (ENC-1, ENC-2, ID-3)".into(),
            actual: p.what,
            precondition: false,
        })
        .collect()
}

/// Whether a ServerHello's signature has a low `s` (ID-4); `None` when it
/// cannot be read.
pub fn hello_low_s(body: &[u8]) -> Option<bool> {
    let v = serde_json::from_slice::<Value>(body).ok()?;
    let signature = v.get("signature")?.as_str()?;
    let bytes = hex::decode(signature.strip_prefix("0x")?).ok()?;
    let sig = k256::ecdsa::Signature::from_slice(bytes.get(..64)?).ok()?;
    Some(sig.normalize_s() == sig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::hello_emitted;

    fn texts(body: &serde_json::Value) -> Vec<EncodingProblem> {
        problems(&hello_emitted(body.to_string().as_bytes()))
    }

    #[test]
    fn hello_encodings_are_judged_as_written() {
        let sig = format!("0x{}1b", "ab".repeat(64));
        let good = serde_json::json!({"encPub": "AAAA", "sid": "AAAA", "signature": sig});
        assert!(texts(&good).is_empty());
        let padded = serde_json::json!({"encPub": "AA==", "sid": "AAAA", "signature": sig});
        assert_eq!(texts(&padded).len(), 1);
        let upper = serde_json::json!({"encPub": "AAAA", "sid": "AAAA", "signature": sig.to_uppercase().replacen("0X", "0x", 1)});
        assert_eq!(texts(&upper)[0].requirement, "ENC-2");
        let raw_v = format!("0x{}01", "ab".repeat(64));
        let raw = serde_json::json!({"encPub": "AAAA", "sid": "AAAA", "signature": raw_v});
        assert_eq!(texts(&raw)[0].requirement, "ID-3");
    }

    #[test]
    fn frame_values_are_judged_as_written() {
        let raw = vec![br#"{"seq":"0","ct":"AA=="}"#.to_vec()];
        let found = problems(&crate::peer::frames_emitted(&raw));
        assert_eq!(found.len(), 2);
        assert!(found[1].what.contains("frame 0 writes ct"));
    }
}
