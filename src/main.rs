//! The `osc-harness` command line.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    osc_harness::cli::Cli::parse().run()
}
