//! The differential run as one self-contained HTML page: a requirement
//! matrix (requirements × targets, the failing cells naming who broke
//! what) and the table of inputs × targets with every target's normal
//! form, where the cells of a diverging row stand out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::report::DiffReport;
use super::run::{Class, Row as DiffRow};
use crate::report::html::{
    esc, BarChart, Catalogue, Cell, Column, Grid, Page, Row, RowGroup, Tone,
};

/// One column per target, in file order.
fn target_columns(report: &DiffReport) -> Vec<Column> {
    report
        .targets
        .iter()
        .map(|t| Column {
            label: t.clone(),
            ..Column::default()
        })
        .collect()
}

fn tone_of(class: Class) -> Tone {
    match class {
        Class::Same => Tone::Pass,
        Class::Uncompared => Tone::Skip,
        Class::Information => Tone::Info,
        Class::Should => Tone::Warn,
        Class::Must | Class::Unexplained => Tone::Fail,
    }
}

fn class_label(class: Class) -> &'static str {
    match class {
        Class::Same => "same",
        Class::Uncompared => "uncompared",
        Class::Information => "information",
        Class::Should => "SHOULD broken",
        Class::Must => "MUST broken",
        Class::Unexplained => "unexplained",
    }
}

/// The requirement × target matrix: a cell is red (MUST) or amber
/// (SHOULD) where a finding names that target and requirement, blue where
/// a rule allowed a difference, green where inputs citing it agreed.
fn requirement_matrix(report: &DiffReport, catalogue: &Catalogue) -> Grid {
    // (requirement, target) -> worst class seen.
    let mut worst: BTreeMap<(String, String), Class> = BTreeMap::new();
    for row in &report.rows {
        for f in &row.findings {
            let Some(req) = &f.requirement else { continue };
            // A requirement field may list several IDs.
            for id in req.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let targets: Vec<&String> = match &f.target {
                    Some(t) => report.targets.iter().filter(|n| *n == t).collect(),
                    None => report.targets.iter().collect(),
                };
                for t in targets {
                    let e = worst.entry((id.to_string(), t.clone())).or_insert(f.class);
                    *e = (*e).max(f.class);
                }
            }
        }
    }
    let mut groups: Vec<RowGroup> = Vec::new();
    for entry in &catalogue.entries {
        let cells: Vec<Cell> = report
            .targets
            .iter()
            .map(|t| match worst.get(&(entry.id.clone(), t.clone())) {
                Some(&c) => Cell {
                    tone: tone_of(c),
                    text: match c {
                        Class::Must | Class::Unexplained => "✗".into(),
                        Class::Should => "!".into(),
                        Class::Information => "i".into(),
                        _ => String::new(),
                    },
                    title: format!("{} — {t}: {}", entry.id, class_label(c)),
                    stand_out: c.fails(),
                    ..Cell::default()
                },
                None => Cell::default(),
            })
            .collect();
        let dim = cells.iter().all(|c| c.tone == Tone::Empty);
        let row = Row {
            label: entry.id.clone(),
            title: Some(format!("{} ({})", entry.id, entry.level)),
            dim,
            cells,
        };
        match groups.last_mut() {
            Some(g) if g.title == entry.section => g.rows.push(row),
            _ => groups.push(RowGroup {
                title: entry.section.clone(),
                rows: vec![row],
            }),
        }
    }
    Grid {
        corner: "requirement".into(),
        columns: target_columns(report),
        groups,
        compact: true,
        caption: "requirements × targets: who broke what".into(),
    }
}

/// Whether `target`'s normal form differs from the most common one of the
/// row (the cell a reader should look at).
fn diverges(row: &DiffRow, target: &str) -> bool {
    let forms: Vec<Option<String>> = row
        .cells
        .iter()
        .map(|c| c.normal.as_ref().map(|n| n.to_string()))
        .collect();
    let mut counts: BTreeMap<&Option<String>, usize> = BTreeMap::new();
    for f in &forms {
        *counts.entry(f).or_default() += 1;
    }
    let common = counts.iter().max_by_key(|(_, n)| **n).map(|(f, _)| *f);
    let named = row
        .findings
        .iter()
        .any(|f| f.target.as_deref() == Some(target) && f.class.fails());
    let mine = row
        .cells
        .iter()
        .position(|c| c.target == target)
        .map(|i| &forms[i]);
    named || (row.class != Class::Same && mine.is_some() && mine != common)
}

fn inputs_grid(report: &DiffReport, verbose: bool) -> Grid {
    let mut groups: Vec<RowGroup> = Vec::new();
    for kind in ["scenario", "fuzz"] {
        let rows: Vec<Row> = report
            .rows
            .iter()
            .filter(|r| r.kind == kind && (verbose || r.class != Class::Same))
            .map(|r| Row {
                label: r.input.clone(),
                title: Some(class_label(r.class).into()),
                dim: r.class == Class::Same,
                cells: r
                    .cells
                    .iter()
                    .map(|c| {
                        let text = c.normal.as_ref().map_or_else(
                            || format!("(not run: {})", c.reason.as_deref().unwrap_or("-")),
                            |n| n.to_string(),
                        );
                        let stand_out = diverges(r, &c.target);
                        Cell {
                            tone: if stand_out {
                                tone_of(r.class)
                            } else {
                                Tone::Neutral
                            },
                            title: format!("{} — {}: {}", r.input, c.target, c.verdict),
                            text,
                            stand_out,
                            ..Cell::default()
                        }
                    })
                    .collect(),
            })
            .collect();
        if !rows.is_empty() {
            groups.push(RowGroup {
                title: format!("{kind} inputs"),
                rows,
            });
        }
    }
    Grid {
        corner: "input".into(),
        columns: target_columns(report),
        groups,
        compact: false,
        caption: "inputs × targets, each target's normal form".into(),
    }
}

fn findings_list(report: &DiffReport) -> String {
    let mut out = String::from("<ul class=\"findings\">");
    let mut any = false;
    for row in &report.rows {
        for f in &row.findings {
            any = true;
            let _ = write!(
                out,
                "<li><strong>{}</strong> {} — {}{}{}: {}</li>",
                esc(class_label(f.class)),
                esc(&row.input),
                esc(f.target.as_deref().unwrap_or("every target")),
                f.requirement
                    .as_deref()
                    .map(|r| format!(" ({})", esc(r)))
                    .unwrap_or_default(),
                f.rule
                    .as_deref()
                    .map(|r| format!(", rule {}", esc(r)))
                    .unwrap_or_default(),
                esc(&f.detail)
            );
        }
        if let Some(path) = &row.saved {
            let _ = write!(
                out,
                "<li>saved <code>{}</code>; replay it with <code>osc-harness replay {} --targets FILE</code></li>",
                esc(path),
                esc(path)
            );
        }
    }
    if !any {
        out.push_str("<li>no finding: every target gave the same answers</li>");
    }
    out.push_str("</ul>");
    out
}

/// Renders a differential run as one self-contained HTML page; `verbose`
/// also lists the inputs on which every target agreed.
pub fn render_diff_html(report: &DiffReport, catalogue: &Catalogue, verbose: bool) -> String {
    let summary = report.summary();
    let mut page = Page::new("osc-harness diff");
    page.subtitle(format!("targets: {}", report.targets.join(" · ")));
    page.subtitle(format!(
        "seed {} · {} input(s)",
        report.seed,
        report.rows.len()
    ));
    let count = |c: &str| summary.rows.get(c).copied().unwrap_or(0);
    page.stat(
        "verdict",
        if summary.failed { "FAILED" } else { "ok" },
        if summary.failed {
            Tone::Fail
        } else {
            Tone::Pass
        },
    )
    .stat("MUST broken", count("must"), Tone::Fail)
    .stat("unexplained", count("unexplained"), Tone::Fail)
    .stat("SHOULD broken", count("should"), Tone::Warn)
    .stat("information", count("information"), Tone::Info)
    .stat("same", count("same"), Tone::Pass);
    let classes = [
        ("same", Tone::Pass),
        ("information", Tone::Info),
        ("should", Tone::Warn),
        ("must", Tone::Fail),
        ("unexplained", Tone::Fail),
        ("uncompared", Tone::Skip),
    ];
    let chart = BarChart {
        title: "inputs by class".into(),
        bars: classes
            .iter()
            .map(|(k, _)| ((*k).to_string(), count(k) as u64))
            .collect(),
        tones: classes.iter().map(|(_, t)| *t).collect(),
    };
    page.section("classes", "Inputs by class", chart.render());
    page.section(
        "matrix",
        "Requirements × targets",
        requirement_matrix(report, catalogue).render(),
    );
    page.section(
        "inputs",
        "Inputs × targets",
        inputs_grid(report, verbose).render(),
    );
    page.section("findings", "Findings", findings_list(report));
    page.finish()
}
