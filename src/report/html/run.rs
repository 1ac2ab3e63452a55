//! The page of a conformance run (`test`, `test-client`): the requirement
//! matrix, every scenario with its transcript, and what was not tested.

use std::fmt::Write as _;

use super::chart::BarChart;
use super::grid::{legend, Cell, Column, Grid, Row, RowGroup};
use super::page::{anchor, esc, Page};
use super::Tone;
use crate::report::{Exchange, RunReport, ScenarioResult, Verdict};

/// One requirement of the protocol document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueEntry {
    /// ID such as `CALL-3`.
    pub id: String,
    /// `MUST`, `SHOULD` or `UPSTREAM`.
    pub level: String,
    /// The heading of the document section it is in (`6. Calls — …`).
    pub section: String,
}

/// Every requirement, in document order: the rows of the matrix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalogue {
    /// The requirements.
    pub entries: Vec<CatalogueEntry>,
}

impl Catalogue {
    /// The requirements of the built-in protocol document
    /// (`docs/PROTOCOL.md`), grouped by its sections.
    pub fn builtin() -> Self {
        use crate::report::registry::{Registry, PROTOCOL_MD};
        Self::from_document(
            PROTOCOL_MD,
            Registry::builtin()
                .requirements
                .into_iter()
                .map(|r| (r.id, r.level)),
        )
    }

    /// The catalogue of `requirements` (`(id, level)` in document order),
    /// each placed under the last `## ` heading of `doc` before its bullet
    /// `- **ID**`; one not found there goes under "Other".
    pub fn from_document(
        doc: &str,
        requirements: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let mut sections: Vec<(usize, String)> = Vec::new();
        let mut offset = 0;
        for line in doc.split_inclusive('\n') {
            if let Some(h) = line.strip_prefix("## ") {
                // Markdown code marks mean nothing in a table heading.
                sections.push((offset, h.trim().replace('`', "")));
            }
            offset += line.len();
        }
        let entries = requirements
            .into_iter()
            .map(|(id, level)| {
                let section = doc
                    .find(&format!("- **{id}**"))
                    .and_then(|at| sections.iter().rev().find(|(o, _)| *o < at))
                    .map(|(_, h)| h.clone())
                    .unwrap_or_else(|| "Other".to_string());
                CatalogueEntry { id, level, section }
            })
            .collect();
        Catalogue { entries }
    }
}

fn level_pattern(level: &str) -> Option<&'static str> {
    match level {
        "SHOULD" => Some("lv-should"),
        "UPSTREAM" => Some("lv-upstream"),
        _ => None,
    }
}

fn verdict_symbol(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "✓",
        Verdict::Fail => "✗",
        Verdict::Warn => "!",
        Verdict::Info => "i",
        Verdict::Skip => "–",
    }
}

fn badge(v: Verdict) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        Tone::from(v).class(),
        v.label()
    )
}

/// The requirement matrix: rows are the catalogue's requirements grouped by
/// section (plus any a scenario names that the catalogue lacks), columns
/// the scenarios.
fn matrix(report: &RunReport, catalogue: &Catalogue) -> Grid {
    let columns = report
        .scenarios
        .iter()
        .map(|s| Column {
            label: s.id.clone(),
            href: Some(format!("#{}", anchor("s-", &s.id))),
            title: Some(format!("{} ({}): {}", s.id, s.verdict.label(), s.title)),
        })
        .collect();
    let mut entries = catalogue.entries.clone();
    for s in &report.scenarios {
        for r in &s.requirements {
            if !entries.iter().any(|e| &e.id == r) {
                entries.push(CatalogueEntry {
                    id: r.clone(),
                    level: s.level.clone(),
                    section: "Not in the protocol document".into(),
                });
            }
        }
    }
    let done = crate::report::exercised(&report.scenarios);
    let mut groups: Vec<RowGroup> = Vec::new();
    for e in &entries {
        if groups.last().is_none_or(|g| g.title != e.section) {
            groups.push(RowGroup {
                title: e.section.clone(),
                rows: Vec::new(),
            });
        }
        let cells: Vec<Cell> = report
            .scenarios
            .iter()
            .map(|s| {
                if !s.requirements.contains(&e.id) {
                    return Cell::default();
                }
                Cell {
                    tone: s.verdict.into(),
                    text: verdict_symbol(s.verdict).into(),
                    title: format!("{} × {}: {} ({})", e.id, s.id, s.verdict.label(), s.level),
                    pattern: level_pattern(&s.level),
                    stand_out: s.verdict == Verdict::Fail && !s.known,
                    href: Some(format!("#{}", anchor("s-", &s.id))),
                }
            })
            .collect();
        let exercised = done.contains(e.id.as_str());
        let row = Row {
            label: format!("{} {}", e.id, level_letter(&e.level)),
            title: Some(format!(
                "{} ({}){}",
                e.id,
                e.level,
                if exercised {
                    ""
                } else {
                    ": not exercised by this run"
                }
            )),
            dim: !exercised,
            cells,
        };
        if let Some(g) = groups.last_mut() {
            g.rows.push(row);
        }
    }
    Grid {
        corner: "requirement".into(),
        columns,
        groups,
        compact: true,
        caption: "requirements × scenarios".into(),
    }
}

fn level_letter(level: &str) -> &'static str {
    match level {
        "MUST" => "(M)",
        "SHOULD" => "(S)",
        "UPSTREAM" => "(U)",
        _ => "",
    }
}

/// The SSE events (or the one JSON frame) of an outer response body, as
/// text; empty when the body is neither.
fn frames_of(body: &str) -> Vec<String> {
    if body.contains("data:") {
        let mut frames = Vec::new();
        for event in body.split("\n\n") {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if !data.is_empty() {
                frames.push(data.join("\n"));
            }
        }
        return frames;
    }
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) if v.get("ct").is_some() && v.get("seq").is_some() => vec![body.to_owned()],
        _ => Vec::new(),
    }
}

/// `seq N`, `fin` of a frame's JSON, when it parses.
fn frame_label(frame: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(frame) else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(seq) = v.get("seq").and_then(|s| s.as_u64()) {
        parts.push(format!("seq {seq}"));
    }
    if v.get("fin").and_then(|f| f.as_bool()) == Some(true) {
        parts.push("fin".into());
    }
    parts.join(", ")
}

fn pre(text: &str) -> String {
    if text.is_empty() {
        "<p class=\"muted\">(empty)</p>".into()
    } else {
        format!("<pre>{}</pre>", esc(text))
    }
}

fn exchange(out: &mut String, x: &Exchange) {
    let status = if x.status == 0 {
        "no response".to_string()
    } else {
        x.status.to_string()
    };
    let _ = write!(
        out,
        "<div class=\"exchange\"><div class=\"head\">step {} · {} · <code>{}</code> → {}</div>",
        x.step,
        esc(&x.action),
        esc(&x.request_line),
        esc(&status)
    );
    if let Some(note) = &x.note {
        let _ = write!(out, "<p class=\"note\">{}</p>", esc(note));
    }
    out.push_str("<div class=\"sides\"><div><h4>outer request</h4>");
    out.push_str(&pre(&x.request_body));
    let _ = write!(out, "<h4>outer response {}</h4>", esc(&status));
    let frames = frames_of(&x.response_body);
    if frames.is_empty() {
        out.push_str(&pre(&x.response_body));
    } else {
        let _ = write!(
            out,
            "<ol class=\"frames\" start=\"0\" aria-label=\"{} frame(s)\">",
            frames.len()
        );
        for f in &frames {
            let label = frame_label(f);
            let _ = write!(
                out,
                "<li>{}{}</li>",
                if label.is_empty() {
                    String::new()
                } else {
                    format!("<span class=\"muted\">{}</span>", esc(&label))
                },
                pre(f)
            );
        }
        out.push_str("</ol>");
    }
    out.push_str("</div><div><h4>inner request</h4>");
    match &x.inner_request {
        Some(t) => out.push_str(&pre(t)),
        None => out.push_str("<p class=\"muted\">(none)</p>"),
    }
    out.push_str("<h4>inner response</h4>");
    match &x.inner_response {
        Some(t) => out.push_str(&pre(t)),
        None => out.push_str("<p class=\"muted\">(none opened)</p>"),
    }
    out.push_str("</div></div></div>\n");
}

fn scenario(out: &mut String, s: &ScenarioResult) {
    let open = if matches!(s.verdict, Verdict::Fail | Verdict::Warn) && !s.known {
        " open"
    } else {
        ""
    };
    let _ = write!(
        out,
        "<details class=\"scenario\" id=\"{}\"{open}><summary>{} <code>{}</code> {}{}</summary><div>",
        anchor("s-", &s.id),
        badge(s.verdict),
        esc(&s.id),
        esc(&s.title),
        if s.known { " <span class=\"muted\">(known)</span>" } else { "" }
    );
    out.push_str("<dl class=\"facts\">");
    let mut fact = |k: &str, v: String| {
        let _ = write!(out, "<dt>{}</dt><dd>{v}</dd>", esc(k));
    };
    fact("verdict", badge(s.verdict));
    fact("level", esc(&s.level));
    fact("category", esc(&s.category));
    fact("requirements", esc(&s.requirements.join(", ")));
    if let Some(r) = &s.reason {
        fact("reason", esc(r));
    }
    if let Some(e) = &s.expected {
        fact("expected", esc(e));
    }
    if s.precondition {
        fact("where", "an honest preparatory step failed".into());
    }
    if let Some(r) = &s.repro {
        fact("rerun", format!("<code>{}</code>", esc(r)));
    }
    fact("duration", format!("{} ms", s.duration_ms));
    out.push_str("</dl>");
    if s.transcript.is_empty() {
        out.push_str("<p class=\"muted\">No exchange was recorded.</p>");
    } else {
        let _ = write!(
            out,
            "<h3>Transcript ({} exchange(s), secrets redacted)</h3>",
            s.transcript.len()
        );
        for x in &s.transcript {
            exchange(out, x);
        }
    }
    out.push_str("</div></details>\n");
}

/// Renders a conformance run as one self-contained HTML page. `catalogue`
/// gives the matrix its rows; an empty one shows only the requirements the
/// scenarios name.
pub fn render_html(report: &RunReport, catalogue: &Catalogue) -> String {
    let c = report.counts();
    let cov = report.must_coverage();
    let mut page = Page::new("osc-harness conformance report");
    page.subtitle(format!("target: {}", report.target));
    if report.insecure {
        page.subtitle("--insecure: the target's TLS certificate was not verified".to_string());
    }
    page.subtitle(format!(
        "{} scenario(s) in {:.1} s",
        report.scenarios.len(),
        report.duration_ms as f64 / 1000.0
    ));
    // A count is coloured only when it is not zero.
    let tone_if = |n: usize, tone: Tone| if n > 0 { tone } else { Tone::Neutral };
    page.stat("pass", c.pass, Tone::Pass)
        .stat("fail", c.fail, tone_if(c.fail, Tone::Fail))
        .stat("warn", c.warn, tone_if(c.warn, Tone::Warn))
        .stat("info", c.info, tone_if(c.info, Tone::Info))
        .stat("skip", c.skip, Tone::Skip);
    if !catalogue.entries.is_empty() {
        page.stat(
            format!("of {} MUST exercised", cov.total),
            cov.exercised,
            if cov.not_exercised.is_empty() {
                Tone::Pass
            } else {
                Tone::Warn
            },
        );
    }
    if !report.run_problems.is_empty() {
        page.stat("run problem(s)", report.run_problems.len(), Tone::Fail);
        let mut body = String::from("<ul>");
        for p in &report.run_problems {
            let _ = write!(body, "<li>{}</li>", esc(p));
        }
        body.push_str("</ul>");
        page.section("problems", "Run problems", body);
    }

    let verdicts = [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::Warn,
        Verdict::Info,
        Verdict::Skip,
    ];
    let mut body = BarChart {
        title: "Verdicts".into(),
        bars: verdicts
            .iter()
            .map(|v| {
                let n = report.scenarios.iter().filter(|s| s.verdict == *v).count();
                (v.label().to_string(), n as u64)
            })
            .collect(),
        tones: verdicts.iter().map(|v| Tone::from(*v)).collect(),
    }
    .render();
    page.section("overview", "Overview", body);

    body = String::new();
    if catalogue.entries.is_empty() {
        body.push_str("<p>No requirement catalogue was given.</p>");
    } else {
        let _ = write!(
            body,
            "<p class=\"coverage\"><b>{}</b> ({} of {} MUST exercised by the scenarios that ran; a skipped scenario, or one that failed in a preparatory step, exercises nothing).{}</p>",
            esc(&cov.headline()),
            cov.exercised,
            cov.total,
            if cov.not_exercised.is_empty() {
                String::new()
            } else {
                format!(
                    " Not exercised: {}.",
                    esc(&cov.not_exercised.join(", "))
                )
            }
        );
    }
    body.push_str(&legend(&[
        (Tone::Pass, None, "✓ pass"),
        (Tone::Fail, None, "✗ fail (MUST)"),
        (Tone::Warn, None, "! warn (SHOULD)"),
        (Tone::Info, None, "i info (UPSTREAM)"),
        (Tone::Skip, None, "– skipped"),
        (Tone::Neutral, None, "solid: MUST scenario"),
        (Tone::Neutral, Some("lv-should"), "striped: SHOULD scenario"),
        (
            Tone::Neutral,
            Some("lv-upstream"),
            "dotted: UPSTREAM scenario",
        ),
    ]));
    body.push_str(&matrix(report, catalogue).render());
    page.section("matrix", "Requirement matrix", body);

    let mut body = String::from(
        "<table class=\"list\"><thead><tr><th>scenario</th><th>verdict</th><th>level</th><th>category</th><th>title</th><th>requirements</th></tr></thead><tbody>",
    );
    for s in &report.scenarios {
        let _ = write!(
            body,
            "<tr><td class=\"id\"><a href=\"#{}\"><code>{}</code></a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            anchor("s-", &s.id),
            esc(&s.id),
            badge(s.verdict),
            esc(&s.level),
            esc(&s.category),
            esc(&s.title),
            esc(&s.requirements.join(", "))
        );
    }
    body.push_str("</tbody></table>");
    page.section("scenarios", "Scenarios", body);

    let mut body = String::from(
        "<p><button type=\"button\" data-toggle=\"open\" hidden>open all</button><button type=\"button\" data-toggle=\"close\" hidden>close all</button></p>",
    );
    for s in &report.scenarios {
        scenario(&mut body, s);
    }
    page.section("details", "Each scenario", body);

    let mut body = String::new();
    let skipped: Vec<&ScenarioResult> = report
        .scenarios
        .iter()
        .filter(|s| s.verdict == Verdict::Skip)
        .collect();
    if skipped.is_empty() {
        body.push_str("<p>Skipped scenarios: none.</p>");
    } else {
        body.push_str("<p>Skipped scenarios:</p><ul>");
        for s in skipped {
            let _ = write!(
                body,
                "<li><a href=\"#{}\"><code>{}</code></a>: {}</li>",
                anchor("s-", &s.id),
                esc(&s.id),
                esc(s.reason.as_deref().unwrap_or("no reason given"))
            );
        }
        body.push_str("</ul>");
    }
    if report.not_exercised.is_empty() {
        body.push_str("<p>Requirements not exercised by this run: none listed.</p>");
    } else {
        let _ = write!(
            body,
            "<p>Requirements not exercised by this run (see <code>test --coverage</code> for vectors): {}</p>",
            esc(&report.not_exercised.join(", "))
        );
    }
    page.section("not-tested", "Not tested", body);
    page.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_come_from_the_document() {
        let doc =
            "# t\n## 1. One\n- **A-1** (MUST): x\n## 2. Two\n### 2.1 sub\n- **B-1** (SHOULD): y\n";
        let c = Catalogue::from_document(
            doc,
            [
                ("A-1".into(), "MUST".into()),
                ("B-1".into(), "SHOULD".into()),
                ("C-1".into(), "MUST".into()),
            ],
        );
        let s: Vec<&str> = c.entries.iter().map(|e| e.section.as_str()).collect();
        assert_eq!(s, ["1. One", "2. Two", "Other"]);
    }

    #[test]
    fn frames_are_split_per_event() {
        let body =
            "data: {\"seq\":0,\"ct\":\"a\"}\n\ndata: {\"seq\":1,\"fin\":true,\"ct\":\"b\"}\n\n";
        let f = frames_of(body);
        assert_eq!(f.len(), 2);
        assert_eq!(frame_label(&f[1]), "seq 1, fin");
        assert_eq!(frames_of("{\"seq\":0,\"ct\":\"x\"}").len(), 1);
        assert!(frames_of("{\"error\":\"nope\"}").is_empty());
    }
}
