//! Judging: a handshake's signature, a call's answer and the outer bytes
//! against what the step expects.

use serde_json::Value;

use crate::protocol::encoding::{b64url_decode, b64url_encode, B64Strictness};
use crate::protocol::handshake::{Transcript, TranscriptField};
use crate::protocol::identity::{recover_channel_signer, Address, SignaturePolicy};

use super::super::model::{Expect, Step};
use super::{random, truncate, Answer, Context, StepFailure, StepResult};

impl Context<'_> {
    pub(super) fn verify(&mut self, step: &Step) -> StepResult {
        let name = Self::session_name(step);
        let Some(s) = self.sessions.get(&name) else {
            return Err(StepFailure::new(
                format!("no session {name:?} to verify"),
                "a session",
                true,
            ));
        };
        // An edit that "breaks" a signature which never verified proves
        // nothing: the unedited hello must recover to the pinned address
        // before any edit is judged.
        let honest = Transcript::from_hellos(&s.hello, &s.server).render();
        let genuine = matches!(
            recover_channel_signer(honest.as_bytes(), &s.server.signature, SignaturePolicy::default()),
            Ok(a) if a == self.cfg.target.address
        );
        if !genuine {
            return Err(StepFailure::new(
                "the ServerHello signature does not recover to the pinned address, so no edit can be judged",
                "a ServerHello signed by the pinned agent",
                false,
            ));
        }
        let mut hello = s.hello.clone();
        let mut server = s.server.clone();
        match step.edit.as_deref() {
            None => {}
            Some("encPub") => server.enc_pub = b64url_encode(&random::<32>()),
            Some("sid") => server.sid = b64url_encode(&random::<16>()),
            Some("expiresAt") => server.expires_at += 1,
            Some("nonce") => hello.nonce = b64url_encode(&random::<16>()),
            Some("clientEncPub") => hello.enc_pub = b64url_encode(&random::<32>()),
            Some("agentAddress") => hello.agent_address = Address(random::<20>()).to_lower(),
            Some(other) => {
                return Err(StepFailure::new(
                    format!("unknown edit {other:?}"),
                    "a transcript field",
                    true,
                ))
            }
        }
        let without = match step.without.as_deref() {
            None => None,
            Some("encPub") => Some(TranscriptField::ServerEncPub),
            Some("sid") => Some(TranscriptField::Sid),
            Some("expiresAt") => Some(TranscriptField::ExpiresAt),
            Some("nonce") => Some(TranscriptField::ClientNonce),
            Some("clientEncPub") => Some(TranscriptField::ClientEncPub),
            Some("agentAddress") => Some(TranscriptField::AgentAddress),
            Some(other) => {
                return Err(StepFailure::new(
                    format!("unknown field {other:?}"),
                    "a transcript field",
                    true,
                ))
            }
        };
        let payload = Transcript::from_hellos(&hello, &server).render_without(without);
        let got = matches!(
            recover_channel_signer(payload.as_bytes(), &server.signature, SignaturePolicy::default()),
            Ok(a) if a == self.cfg.target.address
        );
        let want = step
            .expect
            .as_ref()
            .and_then(|e| e.verifies)
            .unwrap_or(step.edit.is_none() && step.without.is_none());
        if got == want {
            return Ok(());
        }
        let what = match (&step.edit, &step.without) {
            (Some(f), _) => format!("after a man in the middle edited `{f}`, the signature still recovers to the pinned address: `{f}` is not bound"),
            (None, Some(f)) => format!("the signature also verifies over the transcript without `{f}`: `{f}` is not signed"),
            (None, None) => "the ServerHello signature does not recover to the pinned address".into(),
        };
        Err(StepFailure::new(
            what,
            format!("signature verifies = {want}"),
            false,
        ))
    }

    pub(super) fn judge(&mut self, expect: Option<&Expect>, a: &Answer) -> StepResult {
        let Some(e) = expect else {
            let healthy = a.status == 200
                && a.opened
                && a.fin
                && a.in_order
                && a.inner_status.is_some_and(|s| (200..300).contains(&s));
            if !healthy {
                return Err(StepFailure::new(
                    format!(
                        "honest call got outer {} inner {:?} ({} frame(s), fin {}, in order {}, {}): {}",
                        a.status,
                        a.inner_status,
                        a.frames,
                        a.fin,
                        a.in_order,
                        if a.problems.is_empty() { "no frame problems".into() } else { a.problems.join("; ") },
                        truncate(&String::from_utf8_lossy(&a.body), 200)
                    ),
                    "200 with a complete, authenticated 2xx answer",
                    true,
                ));
            }
            return Ok(());
        };
        check_status(e, a.status, &a.headers, &a.body)?;
        let fail = |what: String, want: String| Err(StepFailure::new(what, want, false));
        if let Some(delta) = e.executions_delta {
            match (a.previous_executions, a.executions) {
                (_, None) => {
                    // Only this part cannot be judged; the rest of the step
                    // (status, 409, resend) still is.
                    if let Some(x) = self.transcript.last_mut() {
                        x.note = Some("not checked: how many times the call executed (the target's answers carry no execution counter; the demo app of `serve` reports one)".into());
                    }
                }
                (None, Some(_)) => {
                    return Err(StepFailure::new("no earlier call reported the execution counter", "an earlier counted call", true))
                }
                (Some(before), Some(now)) if now.wrapping_sub(before) != delta => {
                    return fail(
                        format!("the execution counter moved from {before} to {now}: something ran {} time(s)", now.wrapping_sub(before)),
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
            let got = a
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str());
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
                let why = if a.problems.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", a.problems.join("; "))
                };
                return fail(
                    format!(
                        "the response {} with an authenticated fin frame{why}",
                        if a.fin { "ended" } else { "did not end" }
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
                        if a.problems.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", a.problems.join("; "))
                        }
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
            if a.encoding.is_empty() != want {
                return fail(
                    if a.encoding.is_empty() {
                        "every encoding is canonical".into()
                    } else {
                        a.encoding.join("; ")
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
        if let Some(want) = &e.inner_contains {
            let want = self.expand(want);
            if !String::from_utf8_lossy(&a.inner_body).contains(&want) {
                return fail(
                    format!(
                        "inner body {}",
                        truncate(&self.redact(&String::from_utf8_lossy(&a.inner_body)), 200)
                    ),
                    format!("inner body containing {:?}", self.redact(&want)),
                );
            }
        }
        if let Some(bad) = &e.inner_lacks {
            let bad = self.expand(bad);
            if String::from_utf8_lossy(&a.inner_body)
                .to_ascii_lowercase()
                .contains(&bad.to_ascii_lowercase())
            {
                return fail(
                    format!("inner body contains {:?}", self.redact(&bad)),
                    format!("no {:?} in the inner body", self.redact(&bad)),
                );
            }
        }
        Ok(())
    }

    /// Adds an answer's outer response headers to the bytes the blind
    /// check searches: a secret echoed in a header leaks as surely as one
    /// in the body.
    pub(super) fn remember_headers(&mut self, headers: &[(String, String)]) {
        for (k, v) in headers {
            self.outer_bytes.extend_from_slice(k.as_bytes());
            self.outer_bytes.push(b':');
            self.outer_bytes.extend_from_slice(v.as_bytes());
            self.outer_bytes.push(b'\n');
        }
    }

    pub(super) fn blind(&mut self) -> StepResult {
        let hay = &self.outer_bytes;
        let contains =
            |needle: &[u8]| !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle);
        // A very short key turns up by chance inside base64 ciphertext and
        // sids, so it proves nothing either way; the random canaries below
        // still carry the check.
        let key = self.cfg.target.access_key.as_bytes();
        if key.len() >= MIN_SEARCHABLE_SECRET && contains(key) {
            return Err(StepFailure::new(
                "the access key appeared in clear on the outer connection",
                "only ciphertext and routing metadata on the outer connection",
                false,
            ));
        }
        for c in &self.canaries {
            if contains(c.as_bytes()) {
                return Err(StepFailure::new(
                    "inner plaintext (a canary header/body) appeared in clear on the outer connection",
                    "only ciphertext and routing metadata on the outer connection",
                    false,
                ));
            }
        }
        Ok(())
    }
}

/// Holds an outer answer against the step's status and body expectations;
/// an expected `error` is held against the whole documented error answer.
pub(super) fn check_status(
    e: &Expect,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> StepResult {
    super::answered::check(e, status, body)?;
    let text = String::from_utf8_lossy(body);
    if let Some(want) = e.status {
        if status != want {
            return Err(StepFailure::new(
                format!("got status {status}: {}", truncate(&text, 300)),
                format!(
                    "status {want}{}",
                    e.error
                        .as_deref()
                        .map(|c| format!(" {c}"))
                        .unwrap_or_default()
                ),
                false,
            ));
        }
    }
    if let Some(want) = &e.error {
        check_error_body(want, headers, body)?;
    }
    if let Some(want) = &e.body {
        if text != *want {
            return Err(StepFailure::new(
                format!("body {}", truncate(&text, 300)),
                format!("body {want}"),
                false,
            ));
        }
    }
    if let Some(want) = &e.body_contains {
        if !text.contains(want.as_str()) {
            return Err(StepFailure::new(
                format!("body {}", truncate(&text, 300)),
                format!("body containing {want:?}"),
                false,
            ));
        }
    }
    Ok(())
}

/// The documented `type` and messages of a channel error code (SPEC §6,
/// §9): `/secure/call` errors are `secure_channel_error`, the 426 gate's
/// is `upgrade_required`, the scope gate's `permission_error`.
fn documented_error(code: &str) -> Option<(&'static str, &'static [&'static str])> {
    Some(match code {
        "secure_malformed" => (
            "secure_channel_error",
            &["Malformed secure call", "Malformed inner request"],
        ),
        "secure_session_unknown" => (
            "secure_channel_error",
            &["Unknown or expired secure session"],
        ),
        "secure_decrypt_failed" => ("secure_channel_error", &["Decryption failed"]),
        "secure_replay" => ("secure_channel_error", &["Replayed secure call rejected"]),
        "secure_channel_unavailable" => (
            "secure_channel_error",
            &["Secure channel is not available on this server"],
        ),
        "secure_channel_required" => ("upgrade_required", &[ERROR_426_MESSAGE]),
        // The scope gate's messages are not documented word for word.
        "agent_scope_denied" | "peer_inference_disabled" => ("permission_error", &[]),
        _ => return None,
    })
}

const ERROR_426_MESSAGE: &str = "This peer requires end-to-end encryption for agent requests. Upgrade Osaurus to a version that supports the secure channel.";

/// An expected error against the whole answer: JSON content type, and
/// either the handshake form `{"error":"<message>"}` (when `want` is a
/// message) or the channel form `{"error":{"code","message","type"}}` with
/// the documented `type` and message (when `want` is a code).
fn check_error_body(want: &str, headers: &[(String, String)], body: &[u8]) -> StepResult {
    let text = String::from_utf8_lossy(body);
    let wrong = |what: String, expected: String| Err(StepFailure::new(what, expected, false));
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str());
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    if media.as_deref() != Some("application/json") {
        return wrong(
            format!("error answer with content type {content_type:?}"),
            format!("error {want:?} as application/json; charset=utf-8"),
        );
    }
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let error = v.as_ref().and_then(|v| v.get("error"));
    // A code is one word of the protocol's vocabulary; a handshake error
    // is a sentence.
    if want.contains(' ') {
        if error.and_then(Value::as_str) != Some(want) {
            return wrong(
                format!("error body {}", truncate(&text, 300)),
                format!("{{\"error\":{want:?}}}"),
            );
        }
        return Ok(());
    }
    let field = |name: &str| {
        error
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let code = field("code");
    if code.as_deref() != Some(want) {
        return wrong(
            format!("error {:?} in body {}", code, truncate(&text, 300)),
            format!("error {want:?}"),
        );
    }
    if let Some((kind, messages)) = documented_error(want) {
        let got_kind = field("type");
        let message = field("message");
        let message_ok =
            messages.is_empty() || message.as_deref().is_some_and(|m| messages.contains(&m));
        if got_kind.as_deref() != Some(kind) || !message_ok {
            return wrong(
                format!("error body {}", truncate(&text, 300)),
                format!(
                    "{{\"error\":{{\"code\":{want:?},\"message\":{},\"type\":{kind:?}}}}}",
                    if messages.is_empty() {
                        "…".to_string()
                    } else {
                        messages
                            .iter()
                            .map(|m| format!("{m:?}"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    }
                ),
            );
        }
    }
    Ok(())
}

/// Whether `text` is canonical base64url: URL-safe alphabet, no padding,
/// no stray bits (ENC-1).
pub(super) fn canonical_b64(text: &str) -> bool {
    b64url_decode(text, B64Strictness::Canonical).is_ok()
}

/// What is not canonical in a ServerHello as the target wrote it: `encPub`
/// and `sid` as unpadded base64url (ENC-1), the signature as `0x` + 130
/// lowercase hex digits (ENC-2) whose `v` is 27 or 28 (ID-3).
pub(super) fn hello_encoding_problems(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return vec!["the ServerHello is not JSON".into()];
    };
    let mut problems = Vec::new();
    for field in ["encPub", "sid"] {
        match v.get(field).and_then(Value::as_str) {
            Some(t) if canonical_b64(t) => {}
            other => problems.push(format!(
                "{field} {other:?} is not canonical unpadded base64url (ENC-1)"
            )),
        }
    }
    let signature = v.get("signature").and_then(Value::as_str).unwrap_or("");
    let digits = signature.strip_prefix("0x").unwrap_or("");
    let lower_hex = digits.len() == 130
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !lower_hex {
        problems.push(format!(
            "signature {:?} is not 0x + 130 lowercase hex digits (ENC-2)",
            truncate(signature, 140)
        ));
    } else if let Ok(bytes) = hex::decode(digits) {
        if !matches!(bytes[64], 27 | 28) {
            problems.push(format!(
                "the signature's v is {}, not 27 or 28 (ID-3)",
                bytes[64]
            ));
        }
    }
    problems
}

/// Whether the ServerHello's signature has a low `s` (ID-4); `None` when
/// it cannot be read.
pub(super) fn hello_low_s(body: &[u8]) -> Option<bool> {
    let v = serde_json::from_slice::<Value>(body).ok()?;
    let signature = v.get("signature")?.as_str()?;
    let bytes = hex::decode(signature.strip_prefix("0x")?).ok()?;
    let sig = k256::ecdsa::Signature::from_slice(bytes.get(..64)?).ok()?;
    Some(sig.normalize_s() == sig)
}

/// Secrets shorter than this are not searched for in the outer bytes: at
/// this length a chance match inside base64 becomes unlikely.
const MIN_SEARCHABLE_SECRET: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;

    fn json_headers() -> Vec<(String, String)> {
        vec![(
            "content-type".into(),
            "application/json; charset=utf-8".into(),
        )]
    }

    #[test]
    fn an_error_answer_is_held_against_the_whole_documented_body() {
        let exact = br#"{"error":{"code":"secure_replay","message":"Replayed secure call rejected","type":"secure_channel_error"}}"#;
        assert!(check_error_body("secure_replay", &json_headers(), exact).is_ok());
        let wrong_type = br#"{"error":{"code":"secure_replay","message":"Replayed secure call rejected","type":"invalid_request_error"}}"#;
        assert!(check_error_body("secure_replay", &json_headers(), wrong_type).is_err());
        let wrong_message =
            br#"{"error":{"code":"secure_replay","message":"nope","type":"secure_channel_error"}}"#;
        assert!(check_error_body("secure_replay", &json_headers(), wrong_message).is_err());
        let text = vec![("content-type".to_string(), "text/plain".to_string())];
        assert!(check_error_body("secure_replay", &text, exact).is_err());
        assert!(check_error_body(
            "secure_replay",
            &json_headers(),
            br#"{"error":"secure_replay"}"#
        )
        .is_err());
    }

    #[test]
    fn a_handshake_error_is_the_sentence_form() {
        let body = br#"{"error":"Invalid handshake request"}"#;
        assert!(check_error_body("Invalid handshake request", &json_headers(), body).is_ok());
        let coded = br#"{"error":{"code":"Invalid handshake request"}}"#;
        assert!(check_error_body("Invalid handshake request", &json_headers(), coded).is_err());
    }

    #[test]
    fn hello_encodings_are_judged_as_written() {
        let sig = format!("0x{}1b", "ab".repeat(64));
        let good =
            serde_json::json!({"encPub": "AAAA", "sid": "AAAA", "signature": sig}).to_string();
        assert!(hello_encoding_problems(good.as_bytes()).is_empty());
        let padded =
            serde_json::json!({"encPub": "AA==", "sid": "AAAA", "signature": sig}).to_string();
        assert_eq!(hello_encoding_problems(padded.as_bytes()).len(), 1);
        let upper = serde_json::json!({"encPub": "AAAA", "sid": "AAAA", "signature": sig.to_uppercase().replacen("0X", "0x", 1)}).to_string();
        assert_eq!(hello_encoding_problems(upper.as_bytes()).len(), 1);
        let raw_v = format!("0x{}01", "ab".repeat(64));
        let raw =
            serde_json::json!({"encPub": "AAAA", "sid": "AAAA", "signature": raw_v}).to_string();
        assert!(hello_encoding_problems(raw.as_bytes())[0].contains("ID-3"));
    }
}
