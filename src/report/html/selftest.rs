//! The self-test page: which scenario catches which knob, as grids of
//! knobs × scenarios.

use std::fmt::Write as _;

use super::grid::{legend, Cell, Column, Grid, Row, RowGroup};
use super::page::{esc, Page};
use super::Tone;
pub use crate::report::kill::{KillMatrix, KillRow};

fn cell(row: &KillRow, id: &str) -> Cell {
    let declared = row.declared.contains(id);
    let failed = row.failed.contains(id);
    let precondition = row.precondition.contains(id);
    let (tone, text, what, stand_out) = match (declared, failed) {
        (true, true) => (Tone::Pass, "●", "caught (declared, failed)", false),
        (true, false) if precondition => (
            Tone::Fail,
            "○",
            "MISSED (declared, failed only in an honest preparatory step)",
            true,
        ),
        (true, false) => (Tone::Fail, "○", "MISSED (declared, passed)", true),
        (false, true) => (Tone::Fail, "✗", "UNEXPECTED failure", true),
        (false, false) if row.collateral().contains(id) => (
            Tone::Skip,
            "c",
            "collateral (an honest preparatory step broke)",
            false,
        ),
        (false, false) if precondition => (
            Tone::Fail,
            "?",
            "INCONCLUSIVE (an honest preparatory step broke)",
            true,
        ),
        (false, false) => return Cell::default(),
    };
    Cell {
        tone,
        text: text.into(),
        title: format!("{} × {id}: {what}", row.name()),
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
                r.name(),
                if r.requirement.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.requirement)
                },
                if r.ok() { "✓" } else { "WRONG" }
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
    let wrong = rows.iter().filter(|r| !r.ok()).count();
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
            (
                Tone::Fail,
                None,
                "? inconclusive: an honest step broke where nothing is forgiven",
            ),
        ]);
        body.push_str(&grid(m).render());
        let problems: Vec<&KillRow> = m.rows.iter().filter(|r| !r.ok()).collect();
        if !problems.is_empty() {
            body.push_str("<h3>Rows that are wrong</h3><ul>");
            for r in problems {
                let _ = write!(body, "<li><code>{}</code>:", esc(r.name()));
                if let Some(e) = &r.error {
                    let _ = write!(body, " error: {};", esc(e));
                }
                if r.declared.is_empty() && !r.honest() {
                    body.push_str(" no scenario declares this knob;");
                }
                let lines = [
                    ("declared but not caught", r.missed()),
                    ("failed without declaring it", r.unexpected()),
                    ("inconclusive", r.inconclusive()),
                ];
                for (what, ids) in lines {
                    if !ids.is_empty() {
                        let ids = ids.into_iter().collect::<Vec<_>>().join(", ");
                        let _ = write!(body, " {what}: {};", esc(&ids));
                    }
                }
                body.push_str("</li>");
            }
            body.push_str("</ul>");
        }
        page.section(&format!("kill-{i}"), m.title.clone(), body);
    }
    page.finish()
}
