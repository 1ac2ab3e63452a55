//! The HTML report: one self-contained page per run.
//!
//! # Entry points
//!
//! - [`render_html`]: a conformance run (`test`, `test-client`) from the
//!   same [`RunReport`] the text, JSON and JUnit reports use, with the
//!   requirement [`Catalogue`] for the matrix.
//! - [`render_selftest_html`]: the self-test kill matrices
//!   ([`KillMatrix`], knobs × scenarios).
//! - `netfuzz::html::render_fuzz_html` (in the fuzzer's room, built from these
//!   blocks): the summary of a `fuzz` run with its charts.
//!
//! # Building another page (e.g. a differential run)
//!
//! The blocks are general; a new report composes them:
//!
//! ```
//! use osc_harness::report::html::{Cell, Column, Grid, Page, Row, RowGroup, Tone, esc};
//! let grid = Grid {
//!     corner: "input".into(),
//!     columns: vec![Column { label: "reference".into(), ..Column::default() },
//!                   Column { label: "python".into(), ..Column::default() }],
//!     groups: vec![RowGroup { title: String::new(), rows: vec![Row {
//!         label: "CALL-2 replay".into(),
//!         cells: vec![
//!             Cell { tone: Tone::Neutral, text: "409 replay".into(), ..Cell::default() },
//!             Cell { tone: Tone::Fail, text: "200".into(), stand_out: true, ..Cell::default() },
//!         ],
//!         ..Row::default()
//!     }]}],
//!     compact: false,
//!     caption: "inputs × targets".into(),
//! };
//! let mut page = Page::new("osc-harness diff");
//! page.stat("divergences", 1, Tone::Fail);
//! page.section("diff", "Inputs × targets", grid.render());
//! page.section("notes", "Notes", format!("<p>{}</p>", esc("<script> is shown as text")));
//! let html = page.finish();
//! assert!(html.contains("stand-out"));
//! assert!(!html.contains("<script> is"));
//! ```
//!
//! [`Page`] gives the document (head, theme, print and motion rules,
//! header figures, sections); [`Grid`] a table of coloured cells
//! (`compact` for symbol matrices, wide for text such as normal forms;
//! `stand_out` marks a diverging cell); [`LineChart`] and [`BarChart`]
//! inline SVG; [`esc`] escapes every string that came from a target.

mod chart;
mod grid;
mod page;
mod run;
mod selftest;

pub use chart::{BarChart, LineChart, Series};
pub use grid::{legend, Cell, Column, Grid, Row, RowGroup};
pub use page::{anchor, esc, Page};
pub use run::{render_html, Catalogue, CatalogueEntry};
pub use selftest::{render_selftest_html, KillMatrix, KillRow};

use super::Verdict;

/// The colour of a cell, badge or figure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tone {
    /// Good (green).
    Pass,
    /// A MUST broken, a knob missed (red).
    Fail,
    /// A SHOULD broken (amber).
    Warn,
    /// Information, UPSTREAM (blue).
    Info,
    /// Not run (grey).
    Skip,
    /// Present, no judgement (grey-blue).
    Neutral,
    /// Nothing there.
    #[default]
    Empty,
}

impl Tone {
    /// The CSS class of the page's style sheet.
    pub fn class(self) -> &'static str {
        match self {
            Tone::Pass => "t-pass",
            Tone::Fail => "t-fail",
            Tone::Warn => "t-warn",
            Tone::Info => "t-info",
            Tone::Skip => "t-skip",
            Tone::Neutral => "t-neutral",
            Tone::Empty => "t-empty",
        }
    }
}

impl From<Verdict> for Tone {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Pass => Tone::Pass,
            Verdict::Fail => Tone::Fail,
            Verdict::Warn => Tone::Warn,
            Verdict::Info => Tone::Info,
            Verdict::Skip => Tone::Skip,
        }
    }
}
