//! Client-role conformance: the suite turned around. For each scenario the
//! harness starts an adversary (the reference server with `--bug` knobs,
//! behind the relay of [`crate::mitm`] with attacks), runs the client under
//! test through a small shim command, and judges its exit status and what
//! the relay saw it do. The shim contract is in `docs/CLIENT-SHIM.md`.

pub mod cli;
pub mod model;
pub mod runner;
pub mod selftest;

pub use model::{builtin, ClientScenario, Mode};
pub use runner::{run_all, run_scenario, start_adversary, Front, EXIT_NOT_IMPLEMENTED};
