//! The allowed divergences: where SPEC leaves a choice (an UPSTREAM point
//! or an open question), two correct implementations may answer the same
//! input differently. Each rule cites the requirement that leaves the room;
//! a difference no rule covers is unexplained, and fails the run.

use super::normal::{Answer, NormalForm};
use super::run::Cell;

/// One allowed divergence.
pub struct Rule {
    /// A short stable name.
    pub id: &'static str,
    /// The requirement that leaves the choice open.
    pub requirement: &'static str,
    /// Why either answer is correct.
    pub why: &'static str,
    /// Whether the rule covers one pair of differing answers at the same
    /// position (`kind` is `scenario` or `fuzz`).
    covers: fn(kind: &str, a: &Answer, b: &Answer) -> bool,
}

fn refusal(a: &Answer) -> bool {
    a.outer.starts_with('4')
}

/// The table, in the order rules are tried. docs/DIFF.md lists it.
pub const RULES: &[Rule] = &[
    Rule {
        id: "inner-body-is-the-agents",
        requirement: "GATE-4",
        why: "the inner body of an executed agent route is the agent's own output, \
              which the channel carries but does not define",
        covers: |_, a, b| {
            let strip = |x: &Answer| Answer {
                inner_body: None,
                ..x.clone()
            };
            strip(a) == strip(b) && a.inner_status.is_some_and(|s| (200..300).contains(&s))
        },
    },
    Rule {
        id: "model-list-fields",
        requirement: "GATE-5",
        why: "the plaintext model list is the server's own metadata for OpenAI SDK \
              clients: beyond `object` and `data`, which fields each model carries is \
              the server's choice",
        covers: |_, a, b| {
            let list = |x: &Answer| {
                x.outer.starts_with('2')
                    && x.frames.is_none()
                    && x.body.starts_with("{data:[")
                    && x.body.ends_with("],object:str}")
            };
            a.outer == b.outer && list(a) && list(b)
        },
    },
    Rule {
        id: "broken-http-framing",
        requirement: "LIM-1",
        why: "a request whose HTTP framing is broken may be refused with any 4xx \
              or by closing the connection; the protocol fixes no answer",
        covers: |kind, a, b| {
            let closed =
                |x: &Answer| matches!(x.outer.as_str(), "closed" | "dropped") || refusal(x);
            kind == "fuzz" && closed(a) && closed(b)
        },
    },
];

/// The first rule that covers every differing answer of `cells`, if any.
pub fn explain(kind: &str, _input: &str, cells: &[&Cell]) -> Option<&'static Rule> {
    let forms: Vec<&NormalForm> = cells.iter().filter_map(|c| c.normal.as_ref()).collect();
    let base = forms.first()?;
    RULES.iter().find(|rule| {
        forms.iter().all(|f| {
            f.first_check == base.first_check
                && f.answers.len() == base.answers.len()
                && f.answers
                    .iter()
                    .zip(&base.answers)
                    .all(|(a, b)| a == b || (rule.covers)(kind, a, b))
        })
    })
}

/// The rule table as Markdown rows (`| id | requirement | why |`), for
/// docs/DIFF.md and `diff --help`.
pub fn table() -> String {
    let mut out =
        String::from("| rule | requirement | why either answer is correct |\n|---|---|---|\n");
    for r in RULES {
        out.push_str(&format!("| `{}` | {} | {} |\n", r.id, r.requirement, r.why));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_hold_the_rule_table() {
        let doc = include_str!("../../docs/DIFF.md");
        assert!(
            doc.contains(&table()),
            "docs/DIFF.md lacks the current rule table:\n{}",
            table()
        );
    }

    #[test]
    fn a_rule_covers_only_its_own_difference() {
        let sealed = |inner: &str| Answer {
            outer: "200".into(),
            code: None,
            body: "frames".into(),
            frames: Some(1),
            fin: Some(true),
            inner_status: Some(200),
            inner_body: Some(inner.into()),
        };
        let agents = &RULES[0];
        assert!((agents.covers)(
            "fuzz",
            &sealed("{a:num}"),
            &sealed("{b:str}")
        ));
        let mut refused = sealed("{a:num}");
        refused.inner_status = Some(401);
        assert!(!(agents.covers)("fuzz", &refused, &sealed("{b:str}")));
        let framing = RULES
            .iter()
            .find(|r| r.id == "broken-http-framing")
            .unwrap();
        let closed = Answer {
            outer: "closed".into(),
            body: "-".into(),
            frames: None,
            fin: None,
            inner_status: None,
            inner_body: None,
            code: None,
        };
        assert!(!(framing.covers)("fuzz", &closed, &sealed("{a:num}")));
        assert!(!(framing.covers)("scenario", &closed, &closed));
    }
}
