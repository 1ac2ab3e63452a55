//! The conformance suite: scenarios as data, the step executor, the runner,
//! the `test` and `selftest` commands.

pub mod builtin;
pub mod cli;
pub mod exec;
pub mod loader;
pub mod model;
pub use crate::report::registry;
pub mod runner;
pub mod selftest;
