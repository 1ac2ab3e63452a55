//! The `bench` subcommand.

use std::process::ExitCode;

/// Arguments (not yet implemented).
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

/// Runs the command.
pub fn run(_args: BenchArgs) -> ExitCode {
    eprintln!("not implemented yet");
    ExitCode::from(2)
}
