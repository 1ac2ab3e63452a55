//! The outer answer: its status, and a refusal's body held against the
//! documented error shapes (SPEC §6, §9). Also the expectations a fuzzer
//! finding leaves when the protocol fixes no single answer: the target
//! stayed up (`alive`), refused (`refused`), refused in a documented shape
//! (`documented`).

use serde_json::Value;

use super::{shorten, Checked, Claim, Expect};
use crate::protocol::error::ChannelErrorCode;
use crate::protocol::wire::{CodedErrorBody, PlainErrorBody};

/// Holds an outer answer against the step's status and body expectations;
/// an expected `error` is held against the whole documented error answer.
pub fn check_status(
    claim: &Claim,
    e: &Expect,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Checked {
    check_refusal(claim, e, status, body)?;
    let text = String::from_utf8_lossy(body);
    if let Some(want) = e.status {
        if status != want {
            return Err(claim.miss(
                format!("got status {status}: {}", shorten(&text, 300)),
                format!(
                    "status {want}{}",
                    e.error
                        .as_deref()
                        .map(|c| format!(" {c}"))
                        .unwrap_or_default()
                ),
            ));
        }
    }
    if let Some(want) = &e.error {
        check_error_body(claim, want, headers, body)?;
    }
    if let Some(want) = &e.body {
        if text != *want {
            return Err(claim.miss(
                format!("body {}", shorten(&text, 300)),
                format!("body {want}"),
            ));
        }
    }
    if let Some(want) = &e.body_contains {
        if !text.contains(want.as_str()) {
            return Err(claim.miss(
                format!("body {}", shorten(&text, 300)),
                format!("body containing {want:?}"),
            ));
        }
    }
    Ok(())
}

/// Checks `alive`, `refused` and `documented` against an answer's status
/// and body (status 0: a connection closed without an answer, fair only
/// for broken framing, where no other status comes).
pub fn check_refusal(claim: &Claim, e: &Expect, status: u16, body: &[u8]) -> Checked {
    let text = || shorten(&String::from_utf8_lossy(body), 300);
    if e.alive == Some(true) && status >= 500 {
        return Err(claim.miss(
            format!("got status {status}: {}", text()),
            "an answer below 500: every bad input gets a documented 4xx refusal",
        ));
    }
    if let Some(want) = e.refused {
        let got = !(200..300).contains(&status);
        if got != want {
            return Err(claim.miss(
                format!("got status {status}: {}", text()),
                if want {
                    "a refusal (not 2xx)"
                } else {
                    "a 2xx answer"
                },
            ));
        }
    }
    if e.documented == Some(true) && status != 200 && status != 0 {
        if let Err(why) = documented(status, body) {
            return Err(claim.miss(
                format!("{why}: {}", text()),
                "a documented error body whose code belongs with its status",
            ));
        }
    }
    Ok(())
}

/// A channel error whose code belongs with `status`, or a handshake
/// refusal (`{"error":"…"}` or a coded body without a channel code).
pub fn documented(status: u16, body: &[u8]) -> Result<(), String> {
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

/// The documented `type` and messages of a channel error code (SPEC §6,
/// §9): `/secure/call` errors are `secure_channel_error`, the 426 gate's
/// is `upgrade_required`, the scope gate's `permission_error`.
pub fn documented_error(code: &str) -> Option<(&'static str, &'static [&'static str])> {
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

/// The 426 gate's documented message.
pub const ERROR_426_MESSAGE: &str = "This peer requires end-to-end encryption for agent requests. Upgrade Osaurus to a version that supports the secure channel.";

/// An expected error against the whole answer: JSON content type, and
/// either the handshake form `{"error":"<message>"}` (when `want` is a
/// message) or the channel form `{"error":{"code","message","type"}}` with
/// the documented `type` and message (when `want` is a code).
pub fn check_error_body(
    claim: &Claim,
    want: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Checked {
    let text = String::from_utf8_lossy(body);
    let wrong = |what: String, expected: String| Err(claim.miss(what, expected));
    let content_type = crate::protocol::names::header(headers, "content-type");
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
                format!("error body {}", shorten(&text, 300)),
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
            format!("error {:?} in body {}", code, shorten(&text, 300)),
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
                format!("error body {}", shorten(&text, 300)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Level;

    fn json_headers() -> Vec<(String, String)> {
        vec![(
            "content-type".into(),
            "application/json; charset=utf-8".into(),
        )]
    }

    fn check(want: &str, headers: &[(String, String)], body: &[u8]) -> Checked {
        check_error_body(&Claim::new("CALL-4", Level::Must), want, headers, body)
    }

    #[test]
    fn an_error_answer_is_held_against_the_whole_documented_body() {
        let exact = br#"{"error":{"code":"secure_replay","message":"Replayed secure call rejected","type":"secure_channel_error"}}"#;
        assert!(check("secure_replay", &json_headers(), exact).is_ok());
        let wrong_type = br#"{"error":{"code":"secure_replay","message":"Replayed secure call rejected","type":"invalid_request_error"}}"#;
        let found = check("secure_replay", &json_headers(), wrong_type).unwrap_err();
        assert_eq!(found.requirement, "CALL-4");
        assert_eq!(found.level, Level::Must);
        let wrong_message =
            br#"{"error":{"code":"secure_replay","message":"nope","type":"secure_channel_error"}}"#;
        assert!(check("secure_replay", &json_headers(), wrong_message).is_err());
        let text = vec![("content-type".to_string(), "text/plain".to_string())];
        assert!(check("secure_replay", &text, exact).is_err());
        assert!(check(
            "secure_replay",
            &json_headers(),
            br#"{"error":"secure_replay"}"#
        )
        .is_err());
    }

    #[test]
    fn a_handshake_error_is_the_sentence_form() {
        let body = br#"{"error":"Invalid handshake request"}"#;
        assert!(check("Invalid handshake request", &json_headers(), body).is_ok());
        let coded = br#"{"error":{"code":"Invalid handshake request"}}"#;
        assert!(check("Invalid handshake request", &json_headers(), coded).is_err());
    }
}
