//! The `serve` subcommand.

use std::process::ExitCode;

/// Arguments (not yet implemented).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

/// Runs the command.
pub fn run(_args: ServeArgs) -> ExitCode {
    eprintln!("not implemented yet");
    ExitCode::from(2)
}
