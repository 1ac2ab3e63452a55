//! The tunnel's frames: JSON text objects with a `type`, as the relay and
//! the agent's host exchange them over one WebSocket. This file only reads
//! and writes them; what each side does with them is in `host` (the
//! agent's side) and `crate::relay` (the relay's side).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The largest tunnel message either side reads: a 10 MB response body,
/// JSON-escaped, with room to spare. Anything larger ends the tunnel.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// The largest WebSocket frame either side reads (a message may span
/// several frames, up to [`MAX_MESSAGE_BYTES`]).
pub const MAX_WS_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// The largest `stream_chunk` data a host sends (1 MB).
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;

/// The largest `response` body the relay carries (10 MB).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Header names and values as the frames carry them: lower-case names, a
/// repeated header joined with `", "`.
pub type Headers = BTreeMap<String, String>;

/// One agent's answer to a sign-in challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentAuth {
    /// The agent's address, exactly as it appears in the signed message.
    pub address: String,
    /// The EIP-191 `personal_sign` signature, `0x` + hex of `r‖s‖v`.
    pub signature: String,
}

/// An agent the relay accepted, with its public URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentUrl {
    /// The address, lower case.
    pub address: String,
    /// `https://0x<address>.<domain>` (or what the relay says).
    pub url: String,
}

/// The headers and body a `request` or `response` frame carries: the body
/// as text when it is UTF-8, else base64 with `bodyEncoding: "base64"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The headers.
    #[serde(default)]
    pub headers: Headers,
    /// The body as text (see `body_encoding`).
    #[serde(default)]
    pub body: String,
    /// `base64` when the body is base64.
    #[serde(
        default,
        rename = "bodyEncoding",
        skip_serializing_if = "Option::is_none"
    )]
    pub body_encoding: Option<String>,
}

impl Payload {
    /// `headers` and `bytes`, the body encoded as [`encode_body`] does.
    pub fn new(headers: Headers, bytes: &[u8]) -> Self {
        let (body, body_encoding) = encode_body(bytes);
        Payload {
            headers,
            body,
            body_encoding,
        }
    }

    /// The body's bytes; `None` when it claims base64 and is not.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        decode_body(&self.body, self.body_encoding.as_deref())
    }
}

/// Headers as a frame carries them, from an HTTP message's: names in lower
/// case, a repeated header joined with `", "`, the names `skip` says left
/// out.
pub fn frame_headers(map: &hyper::HeaderMap, skip: impl Fn(&str) -> bool) -> Headers {
    let mut headers = Headers::new();
    for (name, value) in map {
        let name = name.as_str().to_ascii_lowercase();
        if skip(&name) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name)
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value)
            })
            .or_insert(value);
    }
    headers
}

/// Every frame of the tunnel contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// Relay → host: sign this single-use nonce.
    Challenge {
        /// 64 hex digits.
        nonce: String,
    },
    /// Host → relay: the signed answer for every agent (all or nothing).
    Auth {
        /// One entry per agent.
        agents: Vec<AgentAuth>,
        /// The challenge's nonce.
        nonce: String,
        /// Unix seconds; within 30 s of the relay's clock.
        timestamp: i64,
    },
    /// Relay → host: signed in.
    AuthOk {
        /// The agents and their URLs.
        agents: Vec<AgentUrl>,
        /// Where the relay runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
    },
    /// Relay → host: sign-in refused; the relay closes the socket.
    AuthError {
        /// `signature_verification_failed`, `invalid_nonce` or `auth_timeout`.
        error: String,
    },
    /// Host → relay: send a fresh challenge (to add an agent).
    RequestChallenge,
    /// Host → relay: one more agent on this tunnel.
    AddAgent {
        /// As in [`AgentAuth`].
        address: String,
        /// As in [`AgentAuth`].
        signature: String,
        /// The fresh challenge's nonce.
        nonce: String,
        /// Unix seconds.
        timestamp: i64,
    },
    /// Relay → host: the agent was added.
    AgentAdded {
        /// The address, lower case.
        address: String,
        /// Its public URL.
        url: String,
        /// Where the relay runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
    },
    /// Host → relay: take one agent off this tunnel.
    RemoveAgent {
        /// The address.
        address: String,
    },
    /// Relay → host: the agent is off this tunnel; `superseded` when a
    /// newer session took its address.
    AgentRemoved {
        /// The address.
        address: String,
        /// Why, when the relay removed it on its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Relay → host: keepalive, every 30 s.
    Ping {
        /// Echoed in the pong.
        ts: serde_json::Value,
    },
    /// Host → relay: the answer to a ping, with its `ts`.
    Pong {
        /// The ping's `ts`, unchanged.
        ts: serde_json::Value,
    },
    /// Relay → host: one caller's request.
    Request {
        /// Matches the answer frames.
        id: String,
        /// The HTTP method.
        method: String,
        /// Path and query.
        path: String,
        /// The caller's headers after the relay's stripping and injection,
        /// and the body.
        #[serde(flatten)]
        payload: Payload,
    },
    /// Host → relay: a whole answer.
    Response {
        /// The request's id.
        id: String,
        /// 200..=599.
        status: u16,
        /// The answer's headers and body.
        #[serde(flatten)]
        payload: Payload,
    },
    /// Host → relay: an event stream begins.
    StreamStart {
        /// The request's id.
        id: String,
        /// 200..=599.
        status: u16,
        /// The answer's headers.
        #[serde(default)]
        headers: Headers,
    },
    /// Host → relay: the next piece of a stream (at most 1 MB).
    StreamChunk {
        /// The request's id.
        id: String,
        /// The piece, as text.
        data: String,
    },
    /// Host → relay: the stream ended.
    StreamEnd {
        /// The request's id.
        id: String,
    },
    /// Relay → host: stop serving this request.
    Cancel {
        /// The request's id (unknown ids are ignored).
        id: String,
    },
    /// Either way: a control error (`rate_limited`, `relay_restarting`).
    Error {
        /// The code.
        error: String,
    },
}

/// Why a text message is not a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Not JSON, or not an object with the fields its type needs.
    #[error("malformed tunnel frame: {0}")]
    Malformed(String),
    /// A well-formed object of a type this contract does not name.
    #[error("unknown tunnel frame type {0:?}")]
    UnknownType(String),
}

impl Frame {
    /// Reads one text message. The caller has already bounded its size
    /// (the WebSocket's message limit).
    pub fn parse(text: &str) -> Result<Frame, FrameError> {
        match serde_json::from_str::<Frame>(text) {
            Ok(f) => Ok(f),
            Err(e) => {
                let kind = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned));
                match kind {
                    Some(t) if !KNOWN_TYPES.contains(&t.as_str()) => {
                        Err(FrameError::UnknownType(t))
                    }
                    _ => Err(FrameError::Malformed(e.to_string())),
                }
            }
        }
    }

    /// The frame as the text message sent.
    pub fn to_text(&self) -> String {
        // Serialising these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// The `type` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Challenge { .. } => "challenge",
            Frame::Auth { .. } => "auth",
            Frame::AuthOk { .. } => "auth_ok",
            Frame::AuthError { .. } => "auth_error",
            Frame::RequestChallenge => "request_challenge",
            Frame::AddAgent { .. } => "add_agent",
            Frame::AgentAdded { .. } => "agent_added",
            Frame::RemoveAgent { .. } => "remove_agent",
            Frame::AgentRemoved { .. } => "agent_removed",
            Frame::Ping { .. } => "ping",
            Frame::Pong { .. } => "pong",
            Frame::Request { .. } => "request",
            Frame::Response { .. } => "response",
            Frame::StreamStart { .. } => "stream_start",
            Frame::StreamChunk { .. } => "stream_chunk",
            Frame::StreamEnd { .. } => "stream_end",
            Frame::Cancel { .. } => "cancel",
            Frame::Error { .. } => "error",
        }
    }
}

const KNOWN_TYPES: [&str; 18] = [
    "challenge",
    "auth",
    "auth_ok",
    "auth_error",
    "request_challenge",
    "add_agent",
    "agent_added",
    "remove_agent",
    "agent_removed",
    "ping",
    "pong",
    "request",
    "response",
    "stream_start",
    "stream_chunk",
    "stream_end",
    "cancel",
    "error",
];

/// A body as a frame carries it: text when it is UTF-8, else base64 with
/// `bodyEncoding: "base64"`.
pub fn encode_body(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), None),
        Err(_) => (
            base64_simd::STANDARD.encode_to_string(bytes),
            Some("base64".into()),
        ),
    }
}

/// The bytes of a frame's body; `None` when it claims base64 and is not.
pub fn decode_body(body: &str, encoding: Option<&str>) -> Option<Vec<u8>> {
    match encoding {
        Some("base64") => base64_simd::STANDARD.decode_to_vec(body).ok(),
        _ => Some(body.as_bytes().to_vec()),
    }
}

/// The WebSocket limits both sides read under.
pub fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_WS_FRAME_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_hostile_text_is_an_error() {
        let f = Frame::Request {
            id: "7".into(),
            method: "POST".into(),
            path: "/secure/call?x=1".into(),
            payload: Payload::new(
                Headers::from([("x-agent-address".into(), "0xab".into())]),
                b"{}",
            ),
        };
        let text = f.to_text();
        assert!(text.contains(r#""type":"request""#), "{text}");
        assert!(
            text.contains(r#""body":"{}""#),
            "the payload is flat: {text}"
        );
        assert_eq!(Frame::parse(&text).unwrap(), f);
        let ping = Frame::parse(r#"{"type":"ping","ts":1700000000123}"#).unwrap();
        assert_eq!(
            ping,
            Frame::Ping {
                ts: serde_json::json!(1700000000123u64)
            }
        );
        assert!(matches!(
            Frame::parse(r#"{"type":"presence","x":1}"#),
            Err(FrameError::UnknownType(_))
        ));
        for bad in [
            "",
            "[]",
            "{",
            r#"{"type":"response","id":"1","status":70000}"#,
            r#"{"type":"cancel"}"#,
        ] {
            assert!(
                matches!(Frame::parse(bad), Err(FrameError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(
            Frame::parse(r#"{"type":"request_challenge"}"#).unwrap(),
            Frame::RequestChallenge
        );
        let (text, enc) = encode_body(&[0xff, 0, 1]);
        assert_eq!(enc.as_deref(), Some("base64"));
        assert_eq!(
            decode_body(&text, enc.as_deref()).unwrap(),
            vec![0xff, 0, 1]
        );
        assert!(decode_body("%%%", Some("base64")).is_none());
    }
}
