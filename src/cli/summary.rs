//! `osc-harness summary`: a Markdown summary of saved reports, for a CI
//! job's summary page (the GitHub Action appends it to
//! `GITHUB_STEP_SUMMARY`). It reads the JSON a run already wrote (`test
//! --report FILE.json`, the summary `fuzz` prints) and judges nothing
//! again: every verdict, count and rerun line is the run's own.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

/// Arguments of `summary`.
#[derive(Debug, clap::Args)]
pub struct SummaryArgs {
    /// The JSON report of `test` (`--report FILE.json`).
    #[arg(long, value_name = "FILE")]
    pub test: Option<PathBuf>,
    /// The exit code `test` ended with.
    #[arg(long, value_name = "N")]
    pub test_exit: Option<i32>,
    /// The JSON summary `fuzz` printed.
    #[arg(long, value_name = "FILE")]
    pub fuzz: Option<PathBuf>,
    /// The exit code `fuzz` ended with.
    #[arg(long, value_name = "N")]
    pub fuzz_exit: Option<i32>,
}

/// Why a report could not be summarised.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{path} is not a JSON report: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

/// Prints the summary; exit 2 when a report given exists but cannot be
/// read as JSON (a missing one is summarised as missing).
pub fn run(args: SummaryArgs) -> ExitCode {
    match render(&args) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("osc-harness summary: {e}");
            ExitCode::from(2)
        }
    }
}

/// The Markdown summary of the reports `args` names.
pub fn render(args: &SummaryArgs) -> Result<String, SummaryError> {
    let mut out = String::from("## osc-harness\n\n");
    if let Some(path) = &args.test {
        match load(path)? {
            Some(report) => test_section(&mut out, &report),
            None => missing(&mut out, "test", path, args.test_exit),
        }
        if let Some(code) = args.test_exit {
            let _ = writeln!(out, "`test` exit code: **{code}** ({}).\n", meaning(code));
        }
    }
    if let Some(path) = &args.fuzz {
        out.push_str("### Fuzzing\n\n");
        match load(path)? {
            Some(summary) => fuzz_section(&mut out, &summary),
            None => missing(&mut out, "fuzz", path, args.fuzz_exit),
        }
        if let Some(code) = args.fuzz_exit {
            let _ = writeln!(out, "`fuzz` exit code: **{code}** ({}).\n", meaning(code));
        }
    }
    Ok(out)
}

/// The report at `path`, or `None` when there is no such file (the run
/// ended before writing it).
fn load(path: &Path) -> Result<Option<Value>, SummaryError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SummaryError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| SummaryError::Json {
            path: path.to_owned(),
            source,
        })
}

fn missing(out: &mut String, command: &str, path: &Path, code: Option<i32>) {
    let _ = writeln!(
        out,
        "No `{command}` report (`{}`): the run ended{} before writing one; the job log says why.\n",
        path.display(),
        code.map(|c| format!(" with exit {c}")).unwrap_or_default()
    );
}

/// What an exit code of the harness means (the same for every command).
pub fn meaning(code: i32) -> &'static str {
    match code {
        0 => "every MUST holds",
        1 => "a MUST failed, or the run has a problem listed above",
        2 => "usage or configuration error",
        3 => "target unreachable or not speaking the protocol",
        _ => "the harness did not finish",
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// Text that stays on its table row or list item: no line breaks, no
/// cell separators.
fn inline(text: &str) -> String {
    text.replace(['\r', '\n'], " ").replace('|', "\\|")
}

fn test_section(out: &mut String, report: &Value) {
    let cov = &report["must_coverage"];
    let left_out: Vec<&str> = cov["not_exercised"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Target: `{}`\n\n**MUST requirements exercised: {} of {}** ({}).\n",
        inline(str_of(report, "target")),
        count(cov, "exercised"),
        count(cov, "total"),
        if left_out.is_empty() {
            "none left out".to_owned()
        } else {
            format!("left out: {}", left_out.join(", "))
        }
    );
    let s = &report["summary"];
    let _ = writeln!(
        out,
        "| pass | fail (MUST) | warn (SHOULD) | info (UPSTREAM) | skip |\n|---|---|---|---|---|\n| {} | {} | {} | {} | {} |\n",
        count(s, "pass"),
        count(s, "fail"),
        count(s, "warn"),
        count(s, "info"),
        count(s, "skip")
    );
    let scenarios = report["scenarios"].as_array().cloned().unwrap_or_default();
    let with = |verdict: &str, known: bool| {
        scenarios
            .iter()
            .filter(|s| {
                str_of(s, "verdict") == verdict && (s["known"].as_bool() == Some(true)) == known
            })
            .collect::<Vec<_>>()
    };
    for (title, verdict) in [("Failures (MUST)", "fail"), ("Warnings (SHOULD)", "warn")] {
        let list = with(verdict, false);
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "### {title}\n");
        for s in list {
            scenario_item(out, s);
        }
        out.push('\n');
    }
    let known: Vec<&Value> = ["fail", "warn", "info"]
        .into_iter()
        .flat_map(|v| with(v, true))
        .collect();
    if !known.is_empty() {
        out.push_str(
            "### Known failures (listed in the expectations file: information, not failures)\n\n",
        );
        for s in known {
            let _ = writeln!(
                out,
                "- `{}` ({}): {}",
                inline(str_of(s, "id")),
                str_of(s, "verdict"),
                inline(str_of(s, "reason"))
            );
        }
        out.push('\n');
    }
    let problems: Vec<&str> = report["run_problems"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !problems.is_empty() {
        out.push_str("### Problems with the run (each fails it)\n\n");
        for p in problems {
            let _ = writeln!(out, "- {}", inline(p));
        }
        out.push('\n');
    }
}

/// One scenario that did not pass: what it checks, why, and the command
/// that reruns it alone.
fn scenario_item(out: &mut String, s: &Value) {
    let reqs: Vec<&str> = s["requirements"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "- `{}` ({} {}): {}",
        inline(str_of(s, "id")),
        str_of(s, "level"),
        reqs.join(", "),
        inline(str_of(s, "reason"))
    );
    let repro = str_of(s, "repro");
    if !repro.is_empty() {
        let _ = writeln!(out, "  - rerun: `{}`", inline(repro));
    }
}

fn fuzz_section(out: &mut String, summary: &Value) {
    let findings = summary["findings"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(
        out,
        "{} executions in {:.0} s against `{}` (seed {}), {} finding(s).\n",
        count(summary, "execs"),
        summary["elapsed_secs"].as_f64().unwrap_or(0.0),
        inline(str_of(summary, "target")),
        count(summary, "seed"),
        findings.len()
    );
    if let Some(why) = summary["died_reason"].as_str() {
        let _ = writeln!(out, "The target stopped answering: {}\n", inline(why));
    }
    if findings.is_empty() {
        return;
    }
    out.push_str("| level | finding | requirement | count | detail |\n|---|---|---|---|---|\n");
    for f in &findings {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} |",
            f["level"].as_str().unwrap_or("?"),
            inline(str_of(f, "signature")),
            inline(str_of(f, "requirement")),
            count(f, "count"),
            inline(str_of(f, "detail"))
        );
    }
    out.push('\n');
    let files: Vec<&str> = findings.iter().filter_map(|f| f["file"].as_str()).collect();
    if !files.is_empty() {
        out.push_str("Rerun a finding with the run's target flags:\n\n");
        for file in files {
            let _ = writeln!(out, "- `osc-harness replay {} --target …`", inline(file));
        }
        out.push('\n');
    }
}
