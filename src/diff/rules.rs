//! The allowed divergences: where SPEC leaves a choice (an UPSTREAM point
//! or an open question), two correct implementations may answer the same
//! input differently. Each rule cites the requirement that leaves the room;
//! a difference no rule covers is unexplained, and fails the run.

use super::normal::{Answer, NormalForm};
use super::run::Cell;
use crate::netfuzz::case::{ByteEdit, Framing, Step};

/// One allowed divergence.
pub struct Rule {
    /// A short stable name.
    pub id: &'static str,
    /// The requirement that leaves the choice open.
    pub requirement: &'static str,
    /// Why either answer is correct.
    pub why: &'static str,
    /// Whether the rule covers one pair of differing answers at the same
    /// position (`kind` is `scenario` or `fuzz`; `step` is the fuzz step
    /// the answers are to, unknown for a scenario exchange).
    covers: fn(kind: &str, step: Option<&Step>, a: &Answer, b: &Answer) -> bool,
}

fn refusal(a: &Answer) -> bool {
    a.outer.starts_with('4')
}

/// Inner statuses the protocol fixes for an inner request, whatever the
/// app: 401 and 403 from the access-key gate (CALL-6) and 426, which an
/// agent route inside the channel never gets (GATE-4). Wherever one of
/// them appears, the answers are compared, never explained by the app.
pub const FIXED_INNER: [u16; 3] = [401, 403, 426];

/// An answer the channel delivered whole: the outer 200 with its frames,
/// the last one `fin` (a buffered answer in exactly one frame), and an
/// inner status the app chose rather than one of [`FIXED_INNER`].
fn delivered_app_answer(x: &Answer) -> bool {
    let stream = x.inner_status.is_none()
        && x.inner_body
            .as_deref()
            .is_some_and(|b| b.starts_with("stream"));
    x.outer == "200"
        && x.code.is_none()
        && x.body == "frames"
        && x.fin == Some(true)
        && (stream || x.frames == Some(1))
        && x.inner_status.is_none_or(|s| !FIXED_INNER.contains(&s))
}

/// The table, in the order rules are tried. docs/DIFF.md lists it.
pub const RULES: &[Rule] = &[
    Rule {
        id: "app-behind-the-channel",
        requirement: "GATE-4",
        why: "once the channel delivered an inner request past the access-key gate, the \
              app's answer is the app's own: its inner status and body, and how many \
              events (so frames, RESP-3) a stream takes. The channel facts are still \
              compared: the outer 200, the frames ending in `fin`, one frame for a \
              buffered answer, and the inner 401, 403 and 426 the protocol fixes",
        covers: |_, _, a, b| delivered_app_answer(a) && delivered_app_answer(b),
    },
    Rule {
        id: "model-list-fields",
        requirement: "GATE-5",
        why: "the plaintext model list is the server's own metadata for OpenAI SDK \
              clients: beyond `object` and `data`, which fields each model carries is \
              the server's choice",
        covers: |_, _, a, b| {
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
        covers: |kind, _, a, b| {
            let closed =
                |x: &Answer| matches!(x.outer.as_str(), "closed" | "dropped") || refusal(x);
            kind == "fuzz" && closed(a) && closed(b)
        },
    },
    Rule {
        id: "chunked-body-support",
        requirement: "LIM-1",
        why: "a call body sent with chunked transfer coding is valid HTTP/1.1, but an HTTP \
              layer may take only bodies with a Content-Length and refuse it (411 Length \
              Required, 501) before the channel sees it; one that carries both a \
              Content-Length and chunked coding may be refused or read by its chunks \
              (RFC 9112, section 6.3). The channel is defined on the body, not on its \
              HTTP framing",
        covers: |_, step, a, b| {
            let Some(Step::Call(call)) = step else {
                return false;
            };
            let not_taken = |x: &Answer| match call.framing {
                Framing::Chunked { .. } => {
                    matches!(x.outer.as_str(), "411" | "501") && x.code.is_none()
                }
                Framing::LengthAndChunked => {
                    (refusal(x) && x.code.is_none())
                        || matches!(x.outer.as_str(), "closed" | "dropped")
                }
                _ => false,
            };
            not_taken(a) || not_taken(b)
        },
    },
    Rule {
        id: "json-byte-order-mark",
        requirement: "ENC-3",
        why: "a body that starts with a UTF-8 byte order mark is not what a sender may \
              write, but RFC 8259 (section 8.1) lets a JSON parser ignore the mark or \
              refuse the text: either the call is taken as without it, or refused as \
              malformed",
        covers: |_, step, a, b| {
            let bom_first = matches!(
                step,
                Some(Step::Call(c)) if matches!(
                    c.bytes.first(),
                    Some(ByteEdit::Insert { at: 0, text }) if text.starts_with('\u{feff}')
                ) && c.bytes.len() == 1
            );
            let malformed =
                |x: &Answer| x.outer == "400" && x.code.as_deref() == Some("secure_malformed");
            bom_first && (malformed(a) || malformed(b))
        },
    },
];

/// The first rule that covers every differing answer of `cells`, if any.
/// `steps` are the fuzz case's steps, one per answer (`None` for a
/// scenario, whose rules look at the answers alone).
pub fn explain(kind: &str, steps: Option<&[Step]>, cells: &[&Cell]) -> Option<&'static Rule> {
    let forms: Vec<&NormalForm> = cells.iter().filter_map(|c| c.normal.as_ref()).collect();
    let base = forms.first()?;
    let step = |i: usize| steps.and_then(|s| s.get(i));
    RULES.iter().find(|rule| {
        forms.iter().all(|f| {
            f.first_check == base.first_check
                && f.answers.len() == base.answers.len()
                && f.answers
                    .iter()
                    .zip(&base.answers)
                    .enumerate()
                    .all(|(i, (a, b))| a == b || (rule.covers)(kind, step(i), a, b))
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

const TABLE_START: &str = "<!-- rule table: generated from src/diff/rules.rs -->\n";
const TABLE_END: &str = "<!-- end of rule table -->";

/// `doc` with the current [`table`] between its rule-table markers;
/// `None` when the markers are missing.
pub fn with_rule_table(doc: &str) -> Option<String> {
    let start = doc.find(TABLE_START)? + TABLE_START.len();
    let end = start + doc[start..].find(TABLE_END)?;
    Some(format!("{}{}{}", &doc[..start], table(), &doc[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `OSC_WRITE_DOCS=1` rewrites the table in docs/DIFF.md.
    #[test]
    fn the_docs_hold_the_rule_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/DIFF.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let expected = with_rule_table(&doc).expect("docs/DIFF.md keeps the rule-table markers");
        if std::env::var_os("OSC_WRITE_DOCS").is_some() {
            std::fs::write(path, &expected).unwrap();
            return;
        }
        assert!(
            doc == expected,
            "docs/DIFF.md lacks the current rule table: run \
             `OSC_WRITE_DOCS=1 cargo test --release --lib diff::rules`"
        );
    }

    #[test]
    fn every_rule_cites_a_protocol_requirement() {
        let protocol = include_str!("../../docs/PROTOCOL.md");
        for r in RULES {
            assert!(
                protocol.contains(&format!("**{}**", r.requirement)),
                "{}: {} is not in docs/PROTOCOL.md",
                r.id,
                r.requirement
            );
        }
    }

    fn sealed(status: u16, inner: &str) -> Answer {
        Answer {
            outer: "200".into(),
            code: None,
            body: "frames".into(),
            frames: Some(1),
            fin: Some(true),
            inner_status: Some(status),
            inner_body: Some(inner.into()),
        }
    }

    fn stream(frames: usize) -> Answer {
        Answer {
            frames: Some(frames),
            inner_status: None,
            inner_body: Some(format!("stream({frames} frame(s))")),
            ..sealed(200, "")
        }
    }

    fn rule(id: &str) -> &'static Rule {
        RULES.iter().find(|r| r.id == id).unwrap()
    }

    #[test]
    fn the_app_rule_covers_the_apps_answers() {
        let app = rule("app-behind-the-channel");
        let covers = |a: &Answer, b: &Answer| (app.covers)("fuzz", None, a, b);
        assert!(covers(&sealed(200, "{a:num}"), &sealed(200, "{b:str}")));
        assert!(covers(&sealed(404, "text"), &sealed(404, "{error:str}")));
        assert!(covers(&sealed(200, "{a:num}"), &sealed(400, "text")));
        assert!(covers(&stream(4), &stream(6)));
        assert!(covers(&stream(4), &sealed(400, "text")));
    }

    #[test]
    fn the_app_rule_cannot_swallow_a_channel_difference() {
        let app = rule("app-behind-the-channel");
        let covers = |a: &Answer, b: &Answer| (app.covers)("fuzz", None, a, b);
        // The inner statuses the protocol fixes.
        for fixed in FIXED_INNER {
            assert!(
                !covers(&sealed(fixed, "text"), &sealed(200, "{a:num}")),
                "{fixed}"
            );
            assert!(
                !covers(&sealed(404, "text"), &sealed(fixed, "text")),
                "{fixed}"
            );
        }
        // A refusal outside (nested /secure, 426 in plaintext) against a
        // delivered answer.
        let refused = Answer {
            outer: "400".into(),
            code: Some("secure_malformed".into()),
            body: "{error:{code:str,message:str,type:str}}".into(),
            frames: None,
            fin: None,
            inner_status: None,
            inner_body: None,
        };
        assert!(!covers(&refused, &sealed(404, "text")));
        let upgrade = Answer {
            outer: "426".into(),
            code: Some("secure_channel_required".into()),
            ..refused.clone()
        };
        assert!(!covers(&upgrade, &sealed(200, "{a:num}")));
        // Frames that end without fin, or a buffered answer in two frames.
        let mut cut = stream(3);
        cut.fin = Some(false);
        assert!(!covers(&cut, &stream(4)));
        let mut two = sealed(200, "{a:num}");
        two.frames = Some(2);
        assert!(!covers(&two, &sealed(200, "{a:num}")));
    }

    #[test]
    fn step_rules_need_their_step() {
        let closed = Answer {
            outer: "closed".into(),
            body: "-".into(),
            frames: None,
            fin: None,
            inner_status: None,
            inner_body: None,
            code: None,
        };
        let framing = rule("broken-http-framing");
        assert!(!(framing.covers)(
            "fuzz",
            None,
            &closed,
            &sealed(200, "{a:num}")
        ));
        assert!(!(framing.covers)("scenario", None, &closed, &closed));
        let length_required = Answer {
            outer: "411".into(),
            body: "text".into(),
            ..closed.clone()
        };
        let chunked: Step = serde_json::from_str(
            r#"{"do":"call","inner":{"kind":"request","method":"GET","path":"/health","auth":"key"},
                "framing":{"framing":"chunked","size":40}}"#,
        )
        .unwrap();
        let plain: Step = serde_json::from_str(
            r#"{"do":"call","inner":{"kind":"request","method":"GET","path":"/health","auth":"key"}}"#,
        )
        .unwrap();
        let support = rule("chunked-body-support");
        let ok = sealed(200, "{a:num}");
        assert!((support.covers)(
            "fuzz",
            Some(&chunked),
            &ok,
            &length_required
        ));
        assert!(!(support.covers)(
            "fuzz",
            Some(&plain),
            &ok,
            &length_required
        ));
        assert!(!(support.covers)("fuzz", None, &ok, &length_required));
    }
}
