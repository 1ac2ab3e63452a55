//! The command-line front end: one subcommand per job, each handing its
//! parsed arguments to the module that does the work. Nothing imports this
//! module but `main`; the flags the rooms share are in [`crate::flags`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod extras;
pub mod summary;

/// Exit codes and pointers, after `--help` and in the manual page.
const AFTER_HELP: &str = "\
Exit status: 0 every MUST holds, 1 a MUST failed, 2 usage or configuration \
error, 3 target unreachable or not speaking the protocol. SHOULD misses are \
warnings and UPSTREAM differences information; neither fails a run unless \
--strict.

Start with `osc-harness test --target self` (the whole suite against the \
built-in reference server); `osc-harness COMMAND --help` explains each job.";

/// Conformance tests, known-answer vectors and fuzzing for the Osaurus
/// Secure Channel v1.
#[derive(Debug, Parser)]
#[command(
    name = "osc-harness",
    version = extras::VERSION_LINE,
    about,
    after_long_help = AFTER_HELP
)]
pub struct Cli {
    /// The job to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate or verify known-answer vectors.
    Vectors(crate::vectors::cli::VectorsArgs),
    /// Run the reference server (optionally broken on purpose with --bug).
    Serve(crate::server::cli::ServeArgs),
    /// Run a relay keeping the Osaurus relay's tunnel contract, checking or attacking what it carries.
    Relay(crate::relay::cli::RelayArgs),
    /// Make one call through the channel with the reference client.
    Call(crate::client::cli::CallArgs),
    /// Measure a server's handshake and call throughput.
    Bench(crate::client::bench::BenchArgs),
    /// Run the conformance suite against a server.
    Test(crate::scenarios::cli::TestArgs),
    /// Run the suite against every --bug knob of the reference server.
    Selftest(crate::selftest::SelftestArgs),
    /// Relay between a real client and a real server, checking or attacking the traffic.
    Mitm(crate::mitm::cli::MitmArgs),
    /// Run the client-role conformance suite against a client through a shim command.
    TestClient(crate::clientrole::cli::TestClientArgs),
    /// Serve one client scenario's adversary and report what the client did.
    Adversary(crate::clientrole::cli::AdversaryArgs),
    /// Fuzz a server's channel endpoints by URL (or `self`).
    ///
    /// Every finding carries the requirement and level it judges. Exit 0
    /// without a MUST finding, 1 with one (under `--strict`, with any
    /// finding), 2 on bad usage, 3 when the target died. SHOULD findings
    /// are listed as warnings, UPSTREAM ones as information. Waiting for
    /// the bytes an incomplete request promised is not a hang until
    /// `--slow-request-limit`. See docs/FUZZING.md.
    Fuzz(crate::netfuzz::cli::FuzzArgs),
    /// Re-run a saved fuzzer finding: FIXED or STILL FAILING.
    Replay(crate::netfuzz::cli::ReplayArgs),
    /// Send the same inputs to several implementations and classify where they differ.
    Diff(crate::diff::cli::DiffArgs),
    /// Summarise saved reports as Markdown (for a CI job summary).
    Summary(summary::SummaryArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(extras::CompletionsArgs),
    /// Print the manual page (roff), or write every page with --dir (as committed in man/).
    Man(extras::ManArgs),
}

impl Cli {
    /// Runs the chosen subcommand and returns its exit code.
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Vectors(a) => crate::vectors::cli::run(a),
            Command::Serve(a) => crate::server::cli::run(a),
            Command::Relay(a) => crate::relay::cli::run(a),
            Command::Call(a) => crate::client::cli::run(a),
            Command::Bench(a) => crate::client::bench::run(a),
            Command::Test(a) => crate::scenarios::cli::run(a),
            Command::Selftest(a) => crate::selftest::run(a),
            Command::Mitm(a) => crate::mitm::cli::run(a),
            Command::TestClient(a) => crate::clientrole::cli::run(a),
            Command::Adversary(a) => crate::clientrole::cli::run_adversary(a),
            Command::Fuzz(a) => crate::netfuzz::cli::run(a),
            Command::Replay(a) => crate::diff::cli::run_replay_targets(a),
            Command::Diff(a) => crate::diff::cli::run(a),
            Command::Summary(a) => summary::run(a),
            Command::Completions(a) => extras::completions(a),
            Command::Man(a) => extras::man(a),
        }
    }
}
