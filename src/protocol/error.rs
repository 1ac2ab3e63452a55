//! Every failure of the protocol core, and the one place where failures
//! map to the protocol's HTTP statuses, error codes and exact bodies.

use thiserror::Error;

use super::encoding::EncodingError;
use super::json::{ObjectWriter, SlashStyle};

/// A message that does not parse into its wire type. Names the field.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The body exceeds the size bound for its type.
    #[error("{what} is {len} bytes, above the {limit}-byte bound")]
    TooLarge {
        /// Which message.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The bound.
        limit: usize,
    },
    /// Not JSON, or not a JSON object.
    #[error("{what} is not a JSON object: {reason}")]
    NotJson {
        /// Which message.
        what: &'static str,
        /// The parser's words.
        reason: String,
    },
    /// A required field is absent.
    #[error("{what}: missing field `{field}`")]
    Missing {
        /// Which message.
        what: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A field has the wrong JSON type or an out-of-range number.
    #[error("{what}: field `{field}` must be {expected}")]
    WrongType {
        /// Which message.
        what: &'static str,
        /// The field.
        field: &'static str,
        /// What it should have been.
        expected: &'static str,
    },
}

/// A handshake that cannot complete, on either side.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// `v` is not 1 (HS-4).
    #[error("unsupported secure channel version {0}")]
    UnsupportedVersion(i64),
    /// A key, nonce or sid that does not decode or has the wrong size (HS-5).
    #[error("malformed handshake: {0}")]
    Malformed(String),
    /// The X25519 result is all zero: the peer sent a low-order key (HS-7).
    #[error("the peer's X25519 key is low-order: the shared secret would be all zero")]
    LowOrderKey,
    /// The recovered signer is not the pinned agent (HS-2).
    #[error("identity mismatch: {0}")]
    IdentityMismatch(String),
}

/// A signature that does not yield an address under the chosen policy.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// Not 65 bytes.
    #[error("signature is {0} bytes, not 65")]
    Length(usize),
    /// Not hex.
    #[error("signature is not hex: {0}")]
    Encoding(#[from] EncodingError),
    /// The `v` byte is refused by the policy.
    #[error("recovery byte v={0} is not accepted by the verification policy")]
    RecoveryByte(u8),
    /// `r` or `s` is zero or not below the group order.
    #[error("r or s is out of range")]
    ScalarRange,
    /// `s` is in the upper half and the policy requires low-S.
    #[error("s is high and the policy requires low-S")]
    HighS,
    /// No public key recovers from this signature.
    #[error("no public key recovers from this signature")]
    Recovery,
}

/// A call the server cannot accept.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The envelope does not parse (CALL-2).
    #[error("malformed secure call: {0}")]
    MalformedEnvelope(WireError),
    /// The sid is unknown or the session expired (SES-1).
    #[error("unknown or expired secure session")]
    SessionUnknown,
    /// Envelope `v` is not 1.
    #[error("envelope version {0} is not 1")]
    Version(i64),
    /// The AEAD does not open (wrong key, AAD, tag, or undecodable `ct`).
    #[error("decryption failed: {0}")]
    Decrypt(String),
    /// The replay window refuses the seq (CALL-3).
    #[error("request seq {0} refused by the replay window")]
    Replay(u64),
    /// The inner request does not parse, or names a forbidden path (CALL-8/9).
    #[error("malformed inner request: {0}")]
    MalformedInner(String),
}

/// A response frame a client cannot accept (RESP-4, RESP-5).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The frame's seq is not the next one expected.
    #[error("frame seq {got} out of order: expected {expected}")]
    OutOfOrder {
        /// The seq the opener wanted.
        expected: u64,
        /// The seq it got.
        got: u64,
    },
    /// A frame arrived after the `fin` frame.
    #[error("frame seq {0} arrived after fin")]
    AfterFin(u64),
    /// The frame does not authenticate under the per-call key and AAD.
    #[error("frame seq {0} does not authenticate")]
    Decrypt(u64),
    /// The stream ended without an authenticated `fin` (truncation).
    #[error("response truncated: {frames} frame(s) opened and no authenticated fin")]
    Truncated {
        /// Frames opened before the end.
        frames: u64,
    },
    /// The sealer was asked for a frame after `fin`.
    #[error("cannot seal after fin")]
    SealAfterFin,
}

/// The error codes of `/secure/call` (SPEC §10), with status and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelErrorCode {
    /// 400: bad envelope or bad inner request.
    Malformed,
    /// 401: unknown or expired sid.
    SessionUnknown,
    /// 400: AEAD failure or envelope `v != 1`.
    DecryptFailed,
    /// 409: replayed, too old, or seq 0.
    Replay,
    /// 500: the server cannot seal responses.
    Unavailable,
}

impl ChannelErrorCode {
    /// Every code, for tables and parsers.
    pub const ALL: [ChannelErrorCode; 5] = [
        ChannelErrorCode::Malformed,
        ChannelErrorCode::SessionUnknown,
        ChannelErrorCode::DecryptFailed,
        ChannelErrorCode::Replay,
        ChannelErrorCode::Unavailable,
    ];

    /// The wire code.
    pub fn code(self) -> &'static str {
        match self {
            ChannelErrorCode::Malformed => "secure_malformed",
            ChannelErrorCode::SessionUnknown => "secure_session_unknown",
            ChannelErrorCode::DecryptFailed => "secure_decrypt_failed",
            ChannelErrorCode::Replay => "secure_replay",
            ChannelErrorCode::Unavailable => "secure_channel_unavailable",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            ChannelErrorCode::Malformed | ChannelErrorCode::DecryptFailed => 400,
            ChannelErrorCode::SessionUnknown => 401,
            ChannelErrorCode::Replay => 409,
            ChannelErrorCode::Unavailable => 500,
        }
    }

    /// Parses a wire code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Whether wire code `code` is a documented one that comes with HTTP
    /// `status`; the error says which of the two is wrong.
    pub fn check_pairing(code: &str, status: u16) -> Result<Self, String> {
        match Self::from_code(code) {
            Some(c) if c.status() == status => Ok(c),
            Some(c) => Err(format!(
                "code {code} belongs with HTTP {}, came with HTTP {status}",
                c.status()
            )),
            None => Err(format!("HTTP {status} with undocumented code {code:?}")),
        }
    }
}

/// The exact error body of `/secure/call`:
/// `{"error":{"code":…,"message":…,"type":"secure_channel_error"}}`.
pub fn channel_error_body(code: ChannelErrorCode, message: &str) -> String {
    let mut inner = String::new();
    let mut w = ObjectWriter::new(&mut inner, SlashStyle::Plain);
    w.string("code", code.code())
        .string("message", message)
        .string("type", "secure_channel_error");
    w.finish();
    let mut out = String::new();
    let mut o = ObjectWriter::new(&mut out, SlashStyle::Plain);
    o.raw_json("error", &inner);
    o.finish();
    out
}

impl CallError {
    /// The protocol code this failure answers with (CALL-2's table).
    pub fn code(&self) -> ChannelErrorCode {
        match self {
            CallError::MalformedEnvelope(_) | CallError::MalformedInner(_) => {
                ChannelErrorCode::Malformed
            }
            CallError::SessionUnknown => ChannelErrorCode::SessionUnknown,
            CallError::Version(_) | CallError::Decrypt(_) => ChannelErrorCode::DecryptFailed,
            CallError::Replay(_) => ChannelErrorCode::Replay,
        }
    }

    /// The exact message upstream sends for this failure.
    pub fn wire_message(&self) -> &'static str {
        match self {
            CallError::MalformedEnvelope(_) => "Malformed secure call",
            CallError::MalformedInner(_) => "Malformed inner request",
            CallError::SessionUnknown => "Unknown or expired secure session",
            CallError::Version(_) | CallError::Decrypt(_) => "Decryption failed",
            CallError::Replay(_) => "Replayed secure call rejected",
        }
    }

    /// The status and exact JSON body of the error response.
    pub fn response(&self) -> (u16, String) {
        let code = self.code();
        (code.status(), channel_error_body(code, self.wire_message()))
    }
}

/// Why `/secure/session` refused a handshake (SPEC §4), with exact bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeRefusal {
    /// 429: the per-source attempt budget is spent (HS-8).
    RateLimited,
    /// 400: the body does not decode as a ClientHello (HS-5).
    InvalidRequest,
    /// 400: `v != 1` (HS-4).
    UnsupportedVersion,
    /// 404: the server holds no such agent (HS-6).
    UnknownAgent,
    /// 400: bad key, empty nonce, or key agreement failure (HS-5, HS-7).
    Malformed,
    /// 500: the server could not sign.
    Internal,
}

impl HandshakeRefusal {
    /// Every refusal.
    pub const ALL: [HandshakeRefusal; 6] = [
        HandshakeRefusal::RateLimited,
        HandshakeRefusal::InvalidRequest,
        HandshakeRefusal::UnsupportedVersion,
        HandshakeRefusal::UnknownAgent,
        HandshakeRefusal::Malformed,
        HandshakeRefusal::Internal,
    ];

    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            HandshakeRefusal::RateLimited => 429,
            HandshakeRefusal::InvalidRequest
            | HandshakeRefusal::UnsupportedVersion
            | HandshakeRefusal::Malformed => 400,
            HandshakeRefusal::UnknownAgent => 404,
            HandshakeRefusal::Internal => 500,
        }
    }

    /// The `error` string of the body.
    pub fn message(self) -> &'static str {
        match self {
            HandshakeRefusal::RateLimited => "Too many pairing attempts. Try again shortly.",
            HandshakeRefusal::InvalidRequest => "Invalid handshake request",
            HandshakeRefusal::UnsupportedVersion => "Unsupported secure channel version",
            HandshakeRefusal::UnknownAgent => "Unknown agent address",
            HandshakeRefusal::Malformed => "Malformed handshake",
            HandshakeRefusal::Internal => "Failed to establish secure session",
        }
    }

    /// The exact JSON body: `{"error":"…"}`.
    pub fn body(self) -> String {
        let mut out = String::new();
        let mut w = ObjectWriter::new(&mut out, SlashStyle::Plain);
        w.string("error", self.message());
        w.finish();
        out
    }

    /// Recognises a refusal from its status and `error` text.
    pub fn from_response(status: u16, message: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.status() == status && r.message() == message)
    }
}

impl From<&HandshakeError> for HandshakeRefusal {
    fn from(e: &HandshakeError) -> Self {
        match e {
            HandshakeError::UnsupportedVersion(_) => HandshakeRefusal::UnsupportedVersion,
            HandshakeError::Malformed(_) | HandshakeError::LowOrderKey => {
                HandshakeRefusal::Malformed
            }
            HandshakeError::IdentityMismatch(_) => HandshakeRefusal::Internal,
        }
    }
}

/// The 426 body of the plaintext gate (GATE-1).
pub const UPGRADE_REQUIRED_BODY: &str = r#"{"error":{"code":"secure_channel_required","message":"This peer requires end-to-end encryption for agent requests. Upgrade Osaurus to a version that supports the secure channel.","type":"upgrade_required"}}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_error_body_is_exact() {
        let (status, body) = CallError::Replay(3).response();
        assert_eq!(status, 409);
        assert_eq!(
            body,
            r#"{"error":{"code":"secure_replay","message":"Replayed secure call rejected","type":"secure_channel_error"}}"#
        );
    }

    #[test]
    fn handshake_refusal_bodies() {
        assert_eq!(
            HandshakeRefusal::UnknownAgent.body(),
            r#"{"error":"Unknown agent address"}"#
        );
        assert_eq!(
            HandshakeRefusal::from_response(400, "Malformed handshake"),
            Some(HandshakeRefusal::Malformed)
        );
    }
}
