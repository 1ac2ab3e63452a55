//! The self-test page: which scenario catches which knob, as grids of
//! knobs × scenarios.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::grid::{legend, Cell, Column, Grid, Row, RowGroup};
use super::page::{esc, Page};
use super::Tone;

/// One knob's run of the suite.
#[derive(Debug, Clone, Default)]
pub struct KillRow {
    /// The knob's name, or `(honest)`.
    pub knob: String,
    /// The requirement the knob breaks (empty for the honest row).
    pub requirement: String,
    /// Whether the row is as the self-test rule wants it.
    pub ok: bool,
    /// Scenarios that declare they catch the knob.
    pub declared: BTreeSet<String>,
    /// Scenarios that did not pass.
    pub failed: BTreeSet<String>,
    /// Failures that happened in an honest preparatory step the knob broke.
    pub collateral: BTreeSet<String>,
    /// Why the run could not happen, if it could not.
    pub error: Option<String>,
}

/// One matrix: its scenarios (the columns) and one row per knob.
#[derive(Debug, Clone, Default)]
pub struct KillMatrix {
    /// The heading (plain), e.g. "Server knobs".
    pub title: String,
    /// Scenario IDs in suite order.
    pub scenarios: Vec<String>,
    /// The honest row first, then one per knob.
    pub rows: Vec<KillRow>,
}

fn cell(row: &KillRow, id: &str) -> Cell {
    let declared = row.declared.contains(id);
    let failed = row.failed.contains(id);
    let (tone, text, what, stand_out) = match (declared, failed) {
        (true, true) => (Tone::Pass, "●", "caught (declared, failed)", false),
        (true, false) => (Tone::Fail, "○", "MISSED (declared, passed)", true),
        (false, true) if row.collateral.contains(id) => (
            Tone::Skip,
            "c",
            "collateral (an honest preparatory step broke)",
            false,
        ),
        (false, true) => (Tone::Fail, "✗", "UNEXPECTED failure", true),
        (false, false) => return Cell::default(),
    };
    Cell {
        tone,
        text: text.into(),
        title: format!("{} × {id}: {what}", row.knob),
        stand_out,
        ..Cell::default()
    }
}

fn grid(m: &KillMatrix) -> Grid {
    let rows = m
        .rows
        .iter()
        .map(|r| Row {
            label: format!(
                "{}{} {}",
                r.knob,
                if r.requirement.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.requirement)
                },
                if r.ok { "✓" } else { "WRONG" }
            ),
            title: r.error.clone(),
            dim: false,
            cells: m.scenarios.iter().map(|id| cell(r, id)).collect(),
        })
        .collect();
    Grid {
        corner: "knob".into(),
        columns: m
            .scenarios
            .iter()
            .map(|id| Column {
                label: id.clone(),
                href: None,
                title: Some(id.clone()),
            })
            .collect(),
        groups: vec![RowGroup {
            title: String::new(),
            rows,
        }],
        compact: true,
        caption: format!("{}: knobs × scenarios", m.title),
    }
}

/// Renders the self-test matrices as one self-contained page.
pub fn render_selftest_html(matrices: &[KillMatrix]) -> String {
    let mut page = Page::new("osc-harness self-test");
    page.subtitle(
        "The suite against the reference implementation with each knob on: exactly the \
         scenarios that declare a knob must fail, every other scenario must pass.",
    );
    let rows: Vec<&KillRow> = matrices.iter().flat_map(|m| &m.rows).collect();
    let wrong = rows.iter().filter(|r| !r.ok).count();
    page.stat("rows ok", rows.len() - wrong, Tone::Pass);
    page.stat(
        "rows wrong",
        wrong,
        if wrong > 0 { Tone::Fail } else { Tone::Neutral },
    );
    for (i, m) in matrices.iter().enumerate() {
        let mut body = legend(&[
            (Tone::Pass, None, "● caught: declared and failed"),
            (Tone::Fail, None, "○ missed: declared but passed"),
            (Tone::Fail, None, "✗ failed without declaring the knob"),
            (Tone::Skip, None, "c collateral: an honest step broke"),
        ]);
        body.push_str(&grid(m).render());
        let problems: Vec<&KillRow> = m.rows.iter().filter(|r| !r.ok).collect();
        if !problems.is_empty() {
            body.push_str("<h3>Rows that are wrong</h3><ul>");
            for r in problems {
                let missed: Vec<&String> = r.declared.difference(&r.failed).collect();
                let unexpected: Vec<&String> = r
                    .failed
                    .difference(&r.declared)
                    .filter(|id| !r.collateral.contains(*id))
                    .collect();
                let _ = write!(body, "<li><code>{}</code>:", esc(&r.knob));
                if let Some(e) = &r.error {
                    let _ = write!(body, " error: {};", esc(e));
                }
                if r.declared.is_empty() && !r.requirement.is_empty() {
                    body.push_str(" no scenario declares this knob;");
                }
                if !missed.is_empty() {
                    let _ = write!(body, " declared but passed: {};", esc(&join(&missed)));
                }
                if !unexpected.is_empty() {
                    let _ = write!(
                        body,
                        " failed without declaring it: {};",
                        esc(&join(&unexpected))
                    );
                }
                body.push_str("</li>");
            }
            body.push_str("</ul>");
        }
        page.section(&format!("kill-{i}"), m.title.clone(), body);
    }
    page.finish()
}

fn join(ids: &[&String]) -> String {
    ids.iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
