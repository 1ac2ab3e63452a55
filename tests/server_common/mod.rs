//! The server tests' helpers under their first name; they live in
//! `tests/support/server.rs`, with the rest of the test support.

#![allow(dead_code)]

#[path = "../support/server.rs"]
mod server;

pub use server::*;
