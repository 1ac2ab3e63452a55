//! `osc-harness selftest`: the harness proves each of its checks can fail.
//! The server suite runs against the reference server broken by each
//! `--bug` knob ([`crate::scenarios::selftest`]), the client suite against
//! the reference client broken by each of its knobs
//! ([`crate::clientrole::selftest`]), and every relay attack against the
//! reference client through the relay ([`relay_matrix`]); this room sits
//! above them, runs the matrices and writes `docs/SELFTEST.md`.

pub mod fuzz_matrix;
pub mod null;
pub mod relay_matrix;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::client::ClientBug;
use crate::clientrole::selftest as client;
use crate::clientrole::ClientScenario;
use crate::knobs::{CaughtBy, KnobInfo};
use crate::mitm::Attack;
use crate::report::kill::KillRow;
use crate::scenarios::loader;
use crate::scenarios::model::Scenario;
use crate::scenarios::registry::Registry;
use crate::scenarios::selftest::{self, catching_nothing};
use crate::server::Bug;

/// The whole knob registry: every server knob, client knob and relay
/// attack, one row each, in that order.
pub fn registry() -> Vec<KnobInfo> {
    let server = Bug::ALL.iter().map(|k| k.info());
    let client = ClientBug::ALL.iter().map(|k| k.info());
    let relay = Attack::ALL.iter().map(|k| k.info());
    server.chain(client).chain(relay).collect()
}

/// Arguments of `selftest`.
#[derive(Debug, clap::Args)]
pub struct SelftestArgs {
    /// Reference servers run at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Write the bug-to-scenario table to this file (docs/SELFTEST.md) and exit.
    #[arg(long)]
    pub write_doc: Option<PathBuf>,
    /// Output on stdout: the text tables, or one HTML page of the kill matrices.
    #[arg(long, value_enum, default_value_t = SelftestFormat::Text)]
    pub format: SelftestFormat,
    /// Also write the kill matrices as a self-contained HTML page here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// The longest fuzz run per server knob in the fuzzer's kill matrix,
    /// in seconds (each stops at its first finding citing the knob).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub fuzz_secs: u64,
    /// Run only the fuzzer's kill matrix.
    #[arg(long)]
    pub fuzz_only: bool,
}

/// Output formats of `selftest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SelftestFormat {
    /// The text tables.
    Text,
    /// One self-contained HTML page (knobs × scenarios grids).
    Html,
}

/// Runs `selftest`.
pub fn run(args: SelftestArgs) -> ExitCode {
    let registry = Registry::builtin();
    let scenarios = match loader::load(None, &registry) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    if let Some(path) = &args.write_doc {
        return match std::fs::write(path, selftest_doc(&scenarios)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => usage(format!("cannot write {}: {e}", path.display())),
        };
    }
    let rt = match crate::runtime::runtime() {
        Ok(rt) => rt,
        Err(e) => return usage(e),
    };
    let html = args.format == SelftestFormat::Html;
    // With HTML on stdout, the text goes to stderr so the page stays whole.
    let say = |text: &str| {
        if html {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    };
    let fuzz_rows = rt.block_on(fuzz_matrix::run_matrix(
        std::time::Duration::from_secs(args.fuzz_secs.clamp(1, 60)),
        args.parallel,
        1,
    ));
    say(&fuzz_matrix::render(&fuzz_rows));
    let fuzz_ok = fuzz_rows.iter().all(fuzz_matrix::Row::ok);
    if args.fuzz_only {
        say(if fuzz_ok {
            "selftest: ok\n"
        } else {
            "selftest: WRONG\n"
        });
        return if fuzz_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    let rows = rt.block_on(selftest::run_matrix(&scenarios, &registry, args.parallel));
    say(&selftest::render_matrix(&rows, &scenarios));
    let uncaught = selftest::uncaught(&scenarios);
    if !uncaught.is_empty() {
        say(&format!(
            "knobs no scenario declares: {}\n",
            uncaught
                .iter()
                .map(|b| b.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let unkilled = selftest::unkilled_musts(&rows);
    if !unkilled.is_empty() {
        say(&format!(
            "server MUST requirements no knob was shown to break: {}\n",
            unkilled.join(", ")
        ));
    }
    let nulls = rt.block_on(null::run_nulls(&scenarios, &registry));
    say(&null::render(&nulls));
    let null_servers_ok = nulls.iter().all(null::NullRow::ok);
    let client = client::run_reference(&rt);
    let client_ok = match &client {
        Ok((clients, rows)) => {
            say(&client::render(rows, clients));
            let unkilled = client::unkilled_musts(rows, clients);
            say(&client::render_unkilled(&unkilled));
            rows.iter().all(KillRow::ok) && unkilled.is_empty()
        }
        Err(e) => {
            say(&format!("client-role selftest: {e}\n"));
            false
        }
    };
    let relay_rows = rt.block_on(relay_matrix::run_matrix());
    say(&relay_matrix::render(&relay_rows));
    let relay_ok = relay_matrix::all_caught(&relay_rows);
    let null_clients_ok = match client::run_null_reference(&rt) {
        Ok(rows) => {
            say(&client::render_null(&rows));
            rows.iter().all(client::NullRow::ok)
        }
        Err(e) => {
            say(&format!("client-role null clients: {e}\n"));
            false
        }
    };
    if html || args.report.is_some() {
        let mut matrices = vec![selftest::kill_matrix(&rows, &scenarios)];
        if let Ok((clients, rows)) = &client {
            matrices.push(client::kill_matrix(rows, clients));
        }
        let page = crate::report::html::render_selftest_html(&matrices);
        if html {
            print!("{page}");
        }
        if let Some(path) = &args.report {
            if let Err(e) = std::fs::write(path, &page) {
                return usage(format!("cannot write {}: {e}", path.display()));
            }
        }
    }
    if rows.iter().all(|r| r.ok())
        && fuzz_ok
        && uncaught.is_empty()
        && unkilled.is_empty()
        && null_servers_ok
        && null_clients_ok
        && client_ok
        && relay_ok
    {
        say("selftest: ok\n");
        ExitCode::SUCCESS
    } else {
        say("selftest: WRONG\n");
        ExitCode::from(1)
    }
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("osc-harness test: {msg}");
    ExitCode::from(2)
}

/// The client scenarios whose adversary runs with `bug`, for the doc row
/// of a server knob only the client suite can show.
fn client_scenarios_using(bug: Bug, clients: &[ClientScenario]) -> String {
    let ids: Vec<String> = clients
        .iter()
        .filter(|s| s.server_bugs.iter().any(|b| b == bug.name()))
        .map(|s| format!("`{}`", s.id))
        .collect();
    if ids.is_empty() {
        "**nothing** (client role only)".to_string()
    } else {
        format!("client role only: {}", ids.join(", "))
    }
}

/// One row of a knob table in `docs/SELFTEST.md` (the server's and the
/// client's tables share the columns).
fn knob_row(out: &mut String, knob: KnobInfo, caught: &str) {
    let _ = writeln!(
        out,
        "| `{}` | {} | {} | {caught} |",
        knob.name, knob.requirement, knob.description
    );
}

/// The bug-to-scenario table of `docs/SELFTEST.md`, generated from the
/// scenarios' `catches`.
pub fn selftest_doc(scenarios: &[Scenario]) -> String {
    let mut out = String::from(
        "# Self-test: which scenario catches which knob\n\n\
         Generated by `osc-harness selftest --write-doc docs/SELFTEST.md` from the\n\
         `catches` lists of `scenarios/*.toml` and `scenarios/client/*.toml`; a test\n\
         fails when it is out of date.\n\
         `osc-harness selftest` runs the suite against the reference server with\n\
         each knob on and checks that exactly these scenarios fail, and that every\n\
         other scenario passes (a failure in an honest preparatory step that the\n\
         knob broke is reported as collateral).\n\n\
         | knob | requirement | what it breaks | caught by |\n|---|---|---|---|\n",
    );
    // Embedded and validated by the client-role tests, so they load.
    let clients = crate::clientrole::builtin().unwrap_or_default();
    for bug in Bug::ALL {
        let by = catchers(scenarios.iter().map(|s| (&s.id, &s.catches)), bug.name());
        let caught = match bug.caught_by() {
            CaughtBy::FuzzerOnly => "fuzzer only".to_string(),
            CaughtBy::ClientSuite => client_scenarios_using(*bug, &clients),
            CaughtBy::Suite | CaughtBy::Mitm if by.is_empty() => "**nothing**".to_string(),
            CaughtBy::Suite | CaughtBy::Mitm => by.join(", "),
        };
        knob_row(&mut out, bug.info(), &caught);
    }
    let nothing = catching_nothing(scenarios);
    let _ = writeln!(
        out,
        "\nScenarios that catch no knob (they check properties no knob breaks): {}.",
        if nothing.is_empty() {
            "none".to_string()
        } else {
            nothing
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    out.push_str(&must_kill_section(scenarios));
    out.push_str(&fuzz_matrix::doc_section());
    out.push_str(&null::doc_section());
    out.push_str(&client_doc_section(&clients));
    out.push_str(&client::null_doc_section());
    out.push_str(&relay_matrix::doc_section());
    out
}

/// The server MUSTs and the knobs that show each can fail: `selftest`
/// fails when one has none.
fn must_kill_section(scenarios: &[Scenario]) -> String {
    let mut out = String::from(
        "\n## Server MUST requirements and the knobs that break them\n\n\
         Every MUST a server can break has at least one knob above that breaks it\n\
         and a scenario that catches that knob in a judged step (a failure only in\n\
         an honest preparatory step does not count); `osc-harness selftest` fails\n\
         otherwise. Client-only MUSTs (",
    );
    out.push_str(&selftest::CLIENT_ONLY_MUSTS.join(", "));
    out.push_str(") are shown by the client matrix.\n\n| requirement | knobs |\n|---|---|\n");
    for (id, knobs) in selftest::must_killers(scenarios) {
        let knobs = if knobs.is_empty() {
            "**none**".to_string()
        } else {
            knobs
                .iter()
                .map(|b| format!("`{}`", b.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "| {id} | {knobs} |");
    }
    out
}

/// The scenarios, as `` `id` ``, whose `catches` name `knob`.
fn catchers<'a>(
    scenarios: impl Iterator<Item = (&'a String, &'a Vec<String>)>,
    knob: &str,
) -> Vec<String> {
    scenarios
        .filter(|(_, catches)| catches.iter().any(|c| c == knob))
        .map(|(id, _)| format!("`{id}`"))
        .collect()
}

/// The client-knob table of `docs/SELFTEST.md`, generated from the client
/// scenarios' `catches`: the rows `run_matrix` must reproduce.
fn client_doc_section(scenarios: &[ClientScenario]) -> String {
    let mut out = String::from(
        "\n## The reference client's knobs (`osc-harness call --bug`)\n\n\
         `osc-harness selftest` (and `test-client --selftest`) then runs the client\n\
         scenarios with the reference client and with each of these knobs, and\n\
         checks that exactly these scenarios fail.\n\n\
         | knob | requirement | what the client does wrong | caught by |\n|---|---|---|---|\n",
    );
    for bug in ClientBug::ALL {
        let by = catchers(scenarios.iter().map(|s| (&s.id, &s.catches)), bug.name());
        let caught = if by.is_empty() {
            "**nothing**".to_string()
        } else {
            by.join(", ")
        };
        knob_row(&mut out, bug.info(), &caught);
    }
    out
}
