//! The one driver between the protocol core (plus the bounded transport)
//! and the commands: every command that talks to a server as a client
//! handshakes, seals, sends and reads the sealed answer through here.
//!
//! - [`Target`]: where the server is, which agent it must prove to be,
//!   the key, the agent id, the relay marker and the request limits;
//! - [`HandshakePacer`]: the one handshake budget, and its one parser;
//! - [`RateLimitPolicy`]: the one way a `429` is waited out;
//! - [`Offer`] and [`post_hello`]: a handshake, honest or with any edit of
//!   the ClientHello;
//! - [`seal`]: a sealed call, honest or with any edit of the envelope, and
//!   the ways to send it (buffered, streamed, raw bytes);
//! - [`edit`]: the one edit language (steps, envelope, byte and framing
//!   edits, relative seqs) that fuzz cases and scenario files share, and
//!   the one implementation that applies it;
//! - [`ResponseReader`] and [`read_body`]: the one sealed-response reader;
//! - [`StrictRead`]: a call's answer read as a client that takes it or
//!   refuses it reads it, frame by frame, under the client hooks;
//! - [`Answer`]: everything that came back for one step, as facts;
//! - [`Conversation`]: the one engine; it owns the sessions, seq cursors
//!   and pacing, runs any step and returns its [`Answer`];
//! - [`relay`]: the relay in front of an agent (`--via-relay`).

mod answer;
pub mod edit;
mod engine;
mod handshake;
mod pacer;
mod reader;
pub mod relay;
mod retry;
pub mod seal;
mod strict;
mod target;

pub use answer::{
    frames_emitted, hello_emitted, read_call_answer, Answer, Emitted, Encoding, Ending, HelloCheck,
    RelayFacts,
};
pub use engine::{Conversation, EngineError, SealSpec, SentCall, Session, StrictCall};
pub use handshake::{in_process_handshake, post_hello, HelloReply, Offer};
pub use pacer::{parse_budget, parse_handshake_budget, HandshakePacer};
pub use reader::{
    is_event_stream, read_body, BodyEnd, BodyRead, FrameIssue, KeyUse, OpenedFrame, Pushed,
    ResponseReader,
};
pub use retry::RateLimitPolicy;
pub use strict::{StrictError, StrictRead};
pub use target::{Target, RELAY_HEADER};
