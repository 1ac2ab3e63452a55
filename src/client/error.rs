//! How a call can fail, and the exit code each failure maps to.

use crate::peer::StrictError;
use crate::transport::TransportError;

/// The exit codes of `osc-harness call` (and the meaning of
/// [`ClientError::exit_code`]).
pub mod exit {
    /// The call completed and the inner status is 2xx.
    pub const OK: u8 = 0;
    /// The command line was wrong (clap uses the same code).
    pub const USAGE: u8 = 2;
    /// The call completed but the inner response status is not 2xx.
    pub const INNER_STATUS: u8 = 3;
    /// The server is not the pinned agent: its ServerHello is not signed by
    /// the pinned address.
    pub const IDENTITY_MISMATCH: u8 = 4;
    /// The response ended without its authenticated final frame.
    pub const TRUNCATED: u8 = 5;
    /// The server broke the protocol in another way (bad frame, wrong
    /// order, undecryptable data, malformed messages).
    pub const PROTOCOL: u8 = 6;
    /// The server could not be reached, or it was too slow or sent too much.
    pub const TRANSPORT: u8 = 7;
    /// The server refused the handshake or the call with a channel error
    /// (rate limit, unknown agent, replay, unknown session…).
    pub const REFUSED: u8 = 8;
}

/// Why a handshake or call did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The network failed, or the server was too slow or too large.
    #[error("could not talk to the server: {0}")]
    Transport(#[from] TransportError),
    /// The ServerHello was not signed by the pinned agent.
    #[error("the server is not the agent you pinned: {0}")]
    IdentityMismatch(String),
    /// The answer or the ServerHello broke the protocol, or the response
    /// was cut short before its authenticated final frame: the strict
    /// reading's own error, told in its words.
    #[error(transparent)]
    Strict(#[from] StrictError),
    /// The server refused with a channel error status.
    #[error("the server refused the {stage} with HTTP {status}: {message}")]
    Refused {
        /// `handshake` or `call`.
        stage: &'static str,
        /// The outer HTTP status.
        status: u16,
        /// The channel error code, when the body carried one.
        code: Option<String>,
        /// The server's message (or the raw body, shortened).
        message: String,
    },
}

impl ClientError {
    /// The process exit code for this failure (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Transport(_) => exit::TRANSPORT,
            ClientError::IdentityMismatch(_) => exit::IDENTITY_MISMATCH,
            ClientError::Strict(StrictError::Transport(_)) => exit::TRANSPORT,
            ClientError::Strict(StrictError::Truncated { .. }) => exit::TRUNCATED,
            ClientError::Strict(StrictError::Protocol { .. }) => exit::PROTOCOL,
            ClientError::Strict(StrictError::Status { .. }) | ClientError::Refused { .. } => {
                exit::REFUSED
            }
        }
    }

    /// The channel error code of a refusal (`secure_replay`, …), if any.
    pub fn refusal_code(&self) -> Option<&str> {
        match self {
            ClientError::Refused { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn protocol(during: &'static str, detail: impl ToString) -> Self {
        ClientError::Strict(StrictError::Protocol {
            during,
            detail: detail.to_string(),
        })
    }
}
