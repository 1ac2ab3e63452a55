//! The reference server.

pub mod cli;
