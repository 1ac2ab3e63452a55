//! The `vectors` subcommand.

use std::process::ExitCode;

/// Arguments (not yet implemented).
#[derive(Debug, clap::Args)]
pub struct VectorsArgs {}

/// Runs the command.
pub fn run(_args: VectorsArgs) -> ExitCode {
    eprintln!("not implemented yet");
    ExitCode::from(2)
}
