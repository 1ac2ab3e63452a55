//! The pure protocol core of Osaurus Secure Channel v1.
//!
//! Nothing in this module touches a socket, a clock or a global random
//! number generator: time arrives as Unix seconds, randomness as explicit
//! bytes. Every step takes its inputs explicitly so that vectors are
//! reproducible and an adversary can override exactly one of them.
//!
//! Read top to bottom: [`encoding`] → [`wire`] → [`identity`] →
//! [`handshake`] → [`keys`] → [`session`] → [`framing`] → [`sse`];
//! [`error`] maps every failure to the protocol's error codes in one place;
//! [`names`] holds the header names and endpoint paths.

pub mod client_hooks;
pub mod encoding;
pub mod error;
pub mod framing;
pub mod handshake;
pub mod identity;
pub mod json;
pub mod keys;
pub mod names;
pub mod session;
pub mod sse;
pub mod wire;

/// The protocol version this crate speaks (`v` in every envelope).
pub const VERSION: i64 = 1;
/// The transcript and AAD domain label.
pub const DOMAIN: &str = "osaurus-sc1";
/// Session lifetime the reference server grants, in seconds.
pub const SESSION_TTL_SECS: i64 = 3600;
/// Width of the request replay window.
pub const REPLAY_WINDOW: u64 = 64;
/// ChaCha20-Poly1305 tag length.
pub const TAG_LEN: usize = 16;
