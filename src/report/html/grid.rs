//! The grid: a table whose cells are coloured by a [`Tone`], with rows in
//! titled groups. It draws the requirement matrix and the kill matrix, and
//! is meant for any other "things × things" view (inputs × targets).

use std::fmt::Write as _;

use super::page::esc;
use super::Tone;

/// A column header.
#[derive(Debug, Clone, Default)]
pub struct Column {
    /// Its text (plain).
    pub label: String,
    /// Where it links to, an in-page fragment such as `#s-ID`
    /// (made by [`super::anchor`]); no link when `None`.
    pub href: Option<String>,
    /// Hover text (plain).
    pub title: Option<String>,
}

/// One cell.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    /// The colour.
    pub tone: Tone,
    /// Short text shown in the cell (plain; may be empty).
    pub text: String,
    /// Hover text (plain).
    pub title: String,
    /// An extra CSS class for a pattern on top of the colour: `lv-should`
    /// stripes, `lv-upstream` dots (see the page's style sheet).
    pub pattern: Option<&'static str>,
    /// Drawn with a heavy outline, for a cell that must catch the eye (a
    /// divergence, a knob the suite missed).
    pub stand_out: bool,
    /// An in-page link (fragment made by [`super::anchor`]).
    pub href: Option<String>,
}

/// One row: a header cell and one [`Cell`] per column.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// The row header (plain).
    pub label: String,
    /// Hover text of the header.
    pub title: Option<String>,
    /// Shows the header dimmed (a row with nothing in it).
    pub dim: bool,
    /// The cells, one per column (missing ones are drawn empty).
    pub cells: Vec<Cell>,
}

/// Rows under a heading row (an empty title draws no heading row).
#[derive(Debug, Clone, Default)]
pub struct RowGroup {
    /// The heading (plain).
    pub title: String,
    /// The rows.
    pub rows: Vec<Row>,
}

/// A table of coloured cells.
///
/// `compact` draws small square cells with vertical column headers (many
/// columns, one symbol per cell); otherwise cells are wide and hold text
/// (normal forms, answers).
#[derive(Debug, Clone, Default)]
pub struct Grid {
    /// The top-left header (plain).
    pub corner: String,
    /// The columns.
    pub columns: Vec<Column>,
    /// The row groups, in order.
    pub groups: Vec<RowGroup>,
    /// Small square cells and vertical headers.
    pub compact: bool,
    /// An accessible caption (plain).
    pub caption: String,
}

impl Grid {
    /// The table as HTML, in a horizontally scrolling box.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<div class=\"scroll\"><table class=\"grid{}\" aria-label=\"{}\">\n<thead><tr><th class=\"corner\" scope=\"col\">{}</th>",
            if self.compact { " compact" } else { "" },
            esc(&self.caption),
            esc(&self.corner)
        );
        for c in &self.columns {
            let title = c
                .title
                .as_deref()
                .map(|t| format!(" title=\"{}\"", esc(t)))
                .unwrap_or_default();
            let label = match &c.href {
                Some(h) => format!("<a href=\"{}\">{}</a>", esc(h), esc(&c.label)),
                None => esc(&c.label),
            };
            let _ = write!(out, "<th class=\"col\" scope=\"col\"{title}>{label}</th>");
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        let span = self.columns.len() + 1;
        for g in &self.groups {
            if !g.title.is_empty() {
                let _ = writeln!(
                    out,
                    "<tr class=\"group\"><th colspan=\"{span}\" scope=\"rowgroup\">{}</th></tr>",
                    esc(&g.title)
                );
            }
            for r in &g.rows {
                let title = r
                    .title
                    .as_deref()
                    .map(|t| format!(" title=\"{}\"", esc(t)))
                    .unwrap_or_default();
                let _ = write!(
                    out,
                    "<tr><th class=\"row{}\" scope=\"row\"{title}>{}</th>",
                    if r.dim { " dim" } else { "" },
                    esc(&r.label)
                );
                for i in 0..self.columns.len() {
                    match r.cells.get(i) {
                        Some(c) => render_cell(&mut out, c),
                        None => out.push_str("<td class=\"t-empty\"></td>"),
                    }
                }
                out.push_str("</tr>\n");
            }
        }
        out.push_str("</tbody></table></div>\n");
        out
    }
}

fn render_cell(out: &mut String, c: &Cell) {
    let mut class = format!("cell {}", c.tone.class());
    if let Some(p) = c.pattern {
        class.push(' ');
        class.push_str(p);
    }
    if c.stand_out {
        class.push_str(" stand-out");
    }
    let inner = match &c.href {
        Some(h) => format!("<a href=\"{}\">{}</a>", esc(h), esc(&c.text)),
        None if c.text.is_empty() => String::new(),
        None => format!("<span>{}</span>", esc(&c.text)),
    };
    let title = if c.title.is_empty() {
        String::new()
    } else {
        format!(" title=\"{}\"", esc(&c.title))
    };
    let _ = write!(out, "<td class=\"{class}\"{title}>{inner}</td>");
}

/// A legend: one swatch per (tone, pattern, meaning).
pub fn legend(items: &[(Tone, Option<&'static str>, &str)]) -> String {
    let mut out = String::from("<div class=\"legend\">");
    for (tone, pattern, text) in items {
        let _ = write!(
            out,
            "<span><span class=\"sw {}{}\"></span>{}</span>",
            tone.class(),
            pattern.map(|p| format!(" {p}")).unwrap_or_default(),
            esc(text)
        );
    }
    out.push_str("</div>\n");
    out
}
