//! What a command-line tool ships beside its jobs: the version line,
//! shell completions and the manual page, all generated from the one
//! subcommand table so they cannot drift from it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;

use super::Cli;

/// What `--version` prints after the name: the package version, the
/// commit it was built from (`unknown` for a source tree outside git and
/// not packaged by cargo) and the protocol it checks.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("OSC_HARNESS_COMMIT"),
    "; checks the Osaurus Secure Channel v1)"
);

/// Arguments of `completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the completion script for `args.shell` on stdout.
pub fn completions(args: CompletionsArgs) -> ExitCode {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "osc-harness", &mut out);
    emit(&out)
}

/// Arguments of `man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write every page (`osc-harness.1` and one per subcommand, as
    /// committed in `man/`) into this folder instead of printing the first.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The manual pages (roff) as (file name, page): `osc-harness.1` first,
/// then one per subcommand (`osc-harness-test.1`, …), as committed in
/// `man/`. They carry the package version without the commit, so the
/// committed pages stay current from one commit to the next.
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>, std::io::Error> {
    let mut cmd = Cli::command()
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    collect_pages(cmd, &mut pages)?;
    Ok(pages)
}

fn collect_pages(
    cmd: clap::Command,
    pages: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), std::io::Error> {
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let man = clap_mangen::Man::new(cmd);
    let mut page = Vec::new();
    man.render(&mut page)?;
    pages.push((man.get_filename(), page));
    for sub in subs {
        collect_pages(sub, pages)?;
    }
    Ok(())
}

/// Prints the main manual page on stdout, or writes every page into
/// `--dir`.
pub fn man(args: ManArgs) -> ExitCode {
    let written = man_pages().and_then(|pages| match &args.dir {
        None => Ok(pages
            .first()
            .map_or(ExitCode::SUCCESS, |(_, page)| emit(page))),
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            for (name, page) in &pages {
                std::fs::write(dir.join(name), page)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    });
    written.unwrap_or_else(|e| {
        eprintln!("osc-harness man: {e}");
        ExitCode::from(2)
    })
}

/// Writes `bytes` to stdout; a closed pipe (`| head`) is not an error
/// worth more than exit 2 and a line.
fn emit(bytes: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("osc-harness: cannot write to stdout: {e}");
            ExitCode::from(2)
        }
    }
}
