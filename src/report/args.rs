//! The reporting flags `test` and `test-client` share: the output format,
//! report files, strictness and known failures of a finished run.

use std::io::IsTerminal;
use std::path::PathBuf;

use super::expect::{apply_expectations, write_expectations};
use super::html::Catalogue;
use super::{render_html, render_json, render_junit, render_text, RunReport, TextOptions};

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Terminal text.
    Text,
    /// JSON (schema `osc-harness/test-report/v1`).
    Json,
    /// JUnit XML.
    Junit,
    /// One self-contained HTML page (requirement matrix, transcripts).
    Html,
}

/// The reporting flags `test` and `test-client` share: what happens to a
/// finished run.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also write a report file (format from the extension: .json, .xml, .html; else text, or HTML with --format html; repeatable).
    #[arg(long)]
    pub report: Vec<PathBuf>,
    /// Print every scenario's transcript.
    #[arg(long)]
    pub verbose: bool,
    /// Warnings, information and an unexercised MUST requirement fail the run too.
    #[arg(long)]
    pub strict: bool,
    /// Known failures of this target (TOML; see --write-expect).
    #[arg(long)]
    pub expect: Option<PathBuf>,
    /// Write this run's failures as an expectations file.
    #[arg(long)]
    pub write_expect: Option<PathBuf>,
}

impl ReportArgs {
    /// Marks the expected failures, writes the expectations file, prints
    /// and writes the reports, and returns the exit code; an unreadable or
    /// unwritable file is an error message for the command's usage exit.
    pub fn finish(&self, report: &mut RunReport) -> Result<u8, String> {
        if let Some(path) = &self.expect {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            apply_expectations(report, &text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        if let Some(path) = &self.write_expect {
            std::fs::write(path, write_expectations(report))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        if self.strict {
            let cov = report.must_coverage();
            if !cov.not_exercised.is_empty() {
                report.run_problems.push(format!(
                    "--strict: {}; not exercised: {}",
                    cov.headline(),
                    cov.not_exercised.join(", ")
                ));
            }
        }
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let text_opts = TextOptions {
            color,
            verbose: self.verbose,
        };
        write_reports(report, self.format, text_opts, &self.report)?;
        Ok(report.exit_code(self.strict))
    }
}

/// Prints `report` on stdout in `format`, then writes each `--report`
/// file in the format its extension names (`.json`, `.xml`, `.html`/`.htm`,
/// else text).
pub fn write_reports(
    report: &RunReport,
    format: Format,
    text_opts: TextOptions,
    files: &[PathBuf],
) -> Result<(), String> {
    let out = match format {
        Format::Text => render_text(report, text_opts),
        Format::Json => render_json(report),
        Format::Junit => render_junit(report),
        Format::Html => render_html(report, &Catalogue::builtin()),
    };
    print!("{out}");
    for path in files {
        let body = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => render_json(report),
            Some("xml") => render_junit(report),
            Some("html" | "htm") => render_html(report, &Catalogue::builtin()),
            _ if format == Format::Html => render_html(report, &Catalogue::builtin()),
            _ => render_text(
                report,
                TextOptions {
                    color: false,
                    verbose: true,
                },
            ),
        };
        std::fs::write(path, body).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
