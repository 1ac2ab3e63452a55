//! The one kill-matrix row: a knob's run of a suite (or the honest run)
//! and which scenarios declared the knob, failed in a judged step, or
//! failed only in an honest precondition step. The server matrix
//! (`serve --bug` × server scenarios) and the client matrix (`call --bug`
//! × client scenarios) both build these rows; whether a row is right, and
//! its text and HTML forms, come from here alone, so the two matrices
//! cannot drift apart.

use std::collections::BTreeSet;
use std::fmt::Write as _;

/// What a matrix forgives a row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Forgiving {
    /// The server suite: a knob may break an honest precondition step of a
    /// scenario that does not declare it (collateral: the knob broke the
    /// setup, not the property), and a knob no scenario declares makes its
    /// row wrong.
    #[default]
    Collateral,
    /// The client suite: any scenario that failed only in an honest
    /// precondition (its baseline did not pass, so it proves nothing)
    /// makes the row wrong; a knob no scenario declares is right as long
    /// as nothing fails.
    Nothing,
}

/// One row of a kill matrix.
#[derive(Debug, Clone, Default)]
pub struct KillRow {
    /// The knob's name (`None`: the honest run).
    pub knob: Option<String>,
    /// The requirement IDs the knob breaks, comma-separated (empty for the
    /// honest run).
    pub requirement: String,
    /// What the matrix forgives.
    pub forgiving: Forgiving,
    /// Scenarios that declare they catch the knob.
    pub declared: BTreeSet<String>,
    /// Scenarios that failed in a judged step.
    pub failed: BTreeSet<String>,
    /// Scenarios that failed only in an honest precondition step: never a
    /// catch.
    pub precondition: BTreeSet<String>,
    /// Why the run could not happen, if it could not.
    pub error: Option<String>,
}

fn minus(a: &BTreeSet<String>, b: &BTreeSet<String>) -> BTreeSet<String> {
    a.difference(b).cloned().collect()
}

impl KillRow {
    /// The knob's name, or `(honest)`.
    pub fn name(&self) -> &str {
        self.knob.as_deref().unwrap_or("(honest)")
    }

    /// Whether the row is the honest run.
    pub fn honest(&self) -> bool {
        self.knob.is_none()
    }

    /// Declared and failed in a judged step.
    pub fn caught(&self) -> BTreeSet<String> {
        self.declared.intersection(&self.failed).cloned().collect()
    }

    /// Declared, but passed or failed only in an honest precondition step.
    pub fn missed(&self) -> BTreeSet<String> {
        minus(&self.declared, &self.failed)
    }

    /// Failed in a judged step without declaring the knob.
    pub fn unexpected(&self) -> BTreeSet<String> {
        minus(&self.failed, &self.declared)
    }

    /// Undeclared scenarios whose honest precondition the knob broke, when
    /// the matrix forgives that.
    pub fn collateral(&self) -> BTreeSet<String> {
        match self.forgiving {
            Forgiving::Collateral if !self.honest() => minus(&self.precondition, &self.declared),
            _ => BTreeSet::new(),
        }
    }

    /// Undeclared scenarios that failed only in an honest precondition
    /// step, when the matrix does not forgive that.
    pub fn inconclusive(&self) -> BTreeSet<String> {
        minus(
            &minus(&self.precondition, &self.declared),
            &self.collateral(),
        )
    }

    /// Whether the row is as the self-test wants it: it ran, every
    /// declared scenario caught the knob in a judged step, nothing else
    /// failed but what the matrix forgives, and a server knob is declared.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self.missed().is_empty()
            && self.unexpected().is_empty()
            && self.inconclusive().is_empty()
            && (self.honest()
                || self.forgiving != Forgiving::Collateral
                || !self.declared.is_empty())
    }

    /// Whether the knob breaks requirement `id`.
    pub fn breaks(&self, id: &str) -> bool {
        self.requirement.split(", ").any(|r| r == id)
    }
}

/// One matrix: its scenarios (the columns) and one row per knob.
#[derive(Debug, Clone, Default)]
pub struct KillMatrix {
    /// The heading (plain), e.g. "Server knobs (serve --bug) × server
    /// scenarios".
    pub title: String,
    /// Scenario IDs in suite order.
    pub scenarios: Vec<String>,
    /// The honest row first, then one per knob.
    pub rows: Vec<KillRow>,
}

fn list(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "-".into()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// The matrix as the text table `selftest` prints: a line per row, then
/// a line per thing wrong with it.
pub fn render_text(m: &KillMatrix) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", m.title);
    let _ = writeln!(
        out,
        "  {:<28} {:<6} {:<8} {:<10} scenarios that failed",
        "knob", "result", "caught", "collateral"
    );
    for r in &m.rows {
        let _ = writeln!(
            out,
            "  {:<28} {:<6} {:<8} {:<10} {}",
            r.name(),
            if r.ok() { "ok" } else { "WRONG" },
            format!("{}/{}", r.caught().len(), r.declared.len()),
            r.collateral().len(),
            list(&r.failed)
        );
        if let Some(e) = &r.error {
            let _ = writeln!(out, "      error: {e}");
        }
        let lines = [
            ("declared but not caught in a judged step", r.missed()),
            ("failed without declaring the knob", r.unexpected()),
            (
                "inconclusive (an honest precondition step failed)",
                r.inconclusive(),
            ),
        ];
        for (what, ids) in lines {
            if !ids.is_empty() {
                let _ = writeln!(out, "      {what}: {}", list(&ids));
            }
        }
        if !r.honest() && r.declared.is_empty() {
            let _ = writeln!(out, "      no scenario declares this knob");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn knob(forgiving: Forgiving) -> KillRow {
        KillRow {
            knob: Some("k".into()),
            requirement: "CALL-2".into(),
            forgiving,
            declared: ids(&["a"]),
            failed: ids(&["a"]),
            ..KillRow::default()
        }
    }

    #[test]
    fn a_broken_precondition_is_collateral_only_where_the_matrix_forgives_it() {
        let server = KillRow {
            precondition: ids(&["b"]),
            ..knob(Forgiving::Collateral)
        };
        assert!(server.ok());
        assert_eq!(server.collateral(), ids(&["b"]));
        let client = KillRow {
            forgiving: Forgiving::Nothing,
            ..server.clone()
        };
        assert!(!client.ok());
        assert_eq!(client.inconclusive(), ids(&["b"]));
        let honest = KillRow {
            knob: None,
            declared: BTreeSet::new(),
            failed: BTreeSet::new(),
            ..server
        };
        assert!(!honest.ok(), "the honest run forgives nothing");
    }

    #[test]
    fn a_declared_catch_in_a_precondition_is_missed() {
        let row = KillRow {
            failed: BTreeSet::new(),
            precondition: ids(&["a"]),
            ..knob(Forgiving::Collateral)
        };
        assert!(!row.ok());
        assert_eq!(row.missed(), ids(&["a"]));
        let text = render_text(&KillMatrix {
            title: "m".into(),
            scenarios: vec!["a".into()],
            rows: vec![row],
        });
        assert!(text.contains("WRONG"), "{text}");
        assert!(text.contains("declared but not caught in a judged step: a"));
    }

    #[test]
    fn only_a_server_knob_must_be_declared() {
        let undeclared = |forgiving| KillRow {
            declared: BTreeSet::new(),
            failed: BTreeSet::new(),
            ..knob(forgiving)
        };
        assert!(!undeclared(Forgiving::Collateral).ok());
        assert!(undeclared(Forgiving::Nothing).ok());
    }
}
