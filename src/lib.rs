//! osc-harness: conformance tests, known-answer vectors and fuzzing for the
//! Osaurus Secure Channel v1.
//!
//! [`protocol`] is the pure core (no sockets, clocks or global randomness);
//! every other module is built on it and they meet only through the
//! library's public types.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod clientrole;
pub mod clock;
pub mod diff;
pub mod flags;
pub mod fuzz_targets;
pub mod judge;
pub mod knobs;
pub mod mitm;
pub mod netfuzz;
pub mod peer;
pub mod protocol;
pub mod relay;
pub mod report;
pub mod rng;
pub mod runtime;
pub mod scenarios;
pub mod selftest;
pub mod server;
pub mod text;
pub mod transport;
pub mod tunnel;
pub mod vectors;
