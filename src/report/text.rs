//! The terminal report: grouped by category, failures explained, and a
//! closing "not tested" section so a green run is never read as full
//! coverage.

use std::fmt::Write as _;

use super::{Exchange, RunReport, Verdict};

/// How to render text.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextOptions {
    /// Use ANSI colours.
    pub color: bool,
    /// Print every scenario's transcript, not only failures'.
    pub verbose: bool,
}

fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

fn verdict_code(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "32",
        Verdict::Fail => "1;31",
        Verdict::Warn => "33",
        Verdict::Info => "36",
        Verdict::Skip => "2",
    }
}

/// The transcript as indented lines (no trailing newlines): `>` the
/// request, `<` the response, `!` the note; shared by the text and JUnit
/// reports so both show the same thing.
pub fn exchange_lines(transcript: &[Exchange]) -> Vec<String> {
    let mut lines = Vec::new();
    for x in transcript {
        lines.push(format!(
            "> [{}] {} {}",
            x.action, x.request_line, x.request_body
        ));
        if let Some(inner) = &x.inner_request {
            lines.push(format!("  inner: {inner}"));
        }
        lines.push(format!("< {} {}", x.status, x.response_body));
        if let Some(inner) = &x.inner_response {
            lines.push(format!("  inner: {inner}"));
        }
        if let Some(note) = &x.note {
            lines.push(format!("! {note}"));
        }
    }
    lines
}

/// Renders the text report.
pub fn render_text(report: &RunReport, opts: TextOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "osc-harness conformance suite against {}",
        report.target
    );
    if report.insecure {
        let _ = writeln!(
            out,
            "warning: --insecure: the target's TLS certificate was not verified"
        );
    }
    let mut categories: Vec<&str> = Vec::new();
    for s in &report.scenarios {
        if !categories.contains(&s.category.as_str()) {
            categories.push(&s.category);
        }
    }
    for category in categories {
        let _ = writeln!(out, "\n{}", paint(opts.color, "1", category));
        for s in report.scenarios.iter().filter(|s| s.category == category) {
            let label = format!("{:<4}", s.verdict.label());
            let known = if s.known { " (known)" } else { "" };
            let _ = writeln!(
                out,
                "  {} {:<32} {}{} [{}]",
                paint(opts.color, verdict_code(s.verdict), &label),
                s.id,
                s.title,
                known,
                s.requirements.join(", ")
            );
            if s.verdict != Verdict::Pass {
                if let Some(reason) = &s.reason {
                    let _ = writeln!(out, "       {reason}");
                }
            }
            let failed = matches!(s.verdict, Verdict::Fail | Verdict::Warn | Verdict::Info);
            if failed {
                if let Some(e) = &s.expected {
                    let _ = writeln!(out, "       expected: {e}");
                }
                let _ = writeln!(
                    out,
                    "       level: {} ({})",
                    s.level,
                    s.requirements.join(", ")
                );
                if let Some(r) = &s.repro {
                    let _ = writeln!(out, "       rerun: {r}");
                }
            }
            if (failed && s.verdict == Verdict::Fail) || opts.verbose {
                for line in exchange_lines(&s.transcript) {
                    let _ = writeln!(out, "       {line}");
                }
            }
        }
    }
    let c = report.counts();
    let _ = writeln!(
        out,
        "\nsummary: {} scenarios: {} pass, {} fail, {} warn, {} info, {} skip in {:.1}s",
        report.scenarios.len(),
        c.pass,
        c.fail,
        c.warn,
        c.info,
        c.skip,
        report.duration_ms as f64 / 1000.0
    );
    let cov = report.must_coverage();
    let _ = writeln!(out, "{}", cov.headline());
    for p in &report.run_problems {
        let _ = writeln!(out, "{} {p}", paint(opts.color, "1;31", "problem:"));
    }
    let _ = writeln!(out, "\nnot tested");
    let skipped: Vec<_> = report
        .scenarios
        .iter()
        .filter(|s| s.verdict == Verdict::Skip)
        .collect();
    if skipped.is_empty() {
        let _ = writeln!(out, "  skipped scenarios: none");
    } else {
        let _ = writeln!(out, "  skipped scenarios:");
        for s in skipped {
            let _ = writeln!(
                out,
                "    {}: {}",
                s.id,
                s.reason.as_deref().unwrap_or("no reason given")
            );
        }
    }
    let must_left = if cov.not_exercised.is_empty() {
        "none".to_string()
    } else {
        cov.not_exercised.join(", ")
    };
    let _ = writeln!(out, "  MUST requirements not exercised: {must_left}");
    if report.not_exercised.is_empty() {
        let _ = writeln!(out, "  requirements not exercised by this run: none");
    } else {
        let _ = writeln!(
            out,
            "  requirements not exercised by this run (see `test --coverage` for vectors): {}",
            report.not_exercised.join(", ")
        );
    }
    out
}
