//! The reference client.

pub mod bench;
pub mod cli;
