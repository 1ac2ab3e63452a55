//! The `call` subcommand.

use std::process::ExitCode;

/// Arguments (not yet implemented).
#[derive(Debug, clap::Args)]
pub struct CallArgs {}

/// Runs the command.
pub fn run(_args: CallArgs) -> ExitCode {
    eprintln!("not implemented yet");
    ExitCode::from(2)
}
