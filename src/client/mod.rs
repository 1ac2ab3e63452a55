//! The reference client: a [`Channel`] that handshakes against a pinned
//! agent address, keeps its session while it is fresh, seals calls and opens
//! the response frames strictly. [`ClientBug`] bends one of its steps on
//! purpose, for the client-role self-tests.

pub mod bench;
mod bugs;
mod channel;
pub mod cli;
mod error;

pub use bugs::{ClientBug, ClientKnobs};
pub use channel::{CallOutcome, Channel, DEFAULT_STREAM_TIME_LIMIT, SESSION_REUSE_MARGIN_SECS};
pub use error::{exit, ClientError};
