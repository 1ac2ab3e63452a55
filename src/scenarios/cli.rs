//! The `test` and `selftest` subcommands.

use std::process::ExitCode;

/// Arguments (not yet implemented).
#[derive(Debug, clap::Args)]
pub struct TestArgs {}

/// Runs the command.
pub fn run(_args: TestArgs) -> ExitCode {
    eprintln!("not implemented yet");
    ExitCode::from(2)
}

/// Arguments of `selftest` (not yet implemented).
#[derive(Debug, clap::Args)]
pub struct SelftestArgs {}

/// Runs `selftest`.
pub fn run_selftest(_args: SelftestArgs) -> ExitCode {
    eprintln!("not implemented yet");
    ExitCode::from(2)
}
