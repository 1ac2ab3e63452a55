//! The `vectors` subcommand: `generate` and `verify`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{Format, VectorsError};

/// Arguments of `osc-harness vectors`.
#[derive(Debug, clap::Args)]
pub struct VectorsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: VectorsAction,
}

/// The two vector actions.
#[derive(Debug, clap::Subcommand)]
pub enum VectorsAction {
    /// Write a vector file, deterministic from the seed.
    Generate {
        /// Every key, nonce and sid is derived from this seed.
        #[arg(long)]
        seed: u64,
        /// `suite` (ours, positive and negative cases) or `upstream` (the
        /// official fixture's shape).
        #[arg(long, value_enum, default_value = "suite")]
        format: Format,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check vector files of either format against the protocol core.
    Verify {
        /// The files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs the command: 0 when everything holds, 1 when a check fails, 2
/// when a file cannot be checked at all.
pub fn run(args: VectorsArgs) -> ExitCode {
    match args.action {
        VectorsAction::Generate { seed, format, out } => {
            let text = super::generate(seed, format);
            match out {
                None => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Some(path) => match std::fs::write(&path, text) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: cannot write {}: {e}", path.display());
                        ExitCode::from(2)
                    }
                },
            }
        }
        VectorsAction::Verify { files } => {
            let mut worst = 0u8;
            for path in &files {
                match super::verify_path(path) {
                    Ok(report) => {
                        if files.len() > 1 {
                            println!("== {} ({} format)", path.display(), report.format.name());
                        }
                        print!("{}", report.render());
                        let failed = report.failures().count();
                        if failed > 0 {
                            eprintln!(
                                "{}: {failed} of {} checks failed",
                                path.display(),
                                report.lines.len()
                            );
                            worst = worst.max(1);
                        }
                    }
                    Err(e @ (VectorsError::Io { .. } | VectorsError::TooLarge { .. })) => {
                        eprintln!("error: {e}");
                        worst = 2;
                    }
                    Err(e) => {
                        eprintln!("error: {}: {e}", path.display());
                        worst = 2;
                    }
                }
            }
            ExitCode::from(worst)
        }
    }
}
