//! The page of a `fuzz` run: its figures, the progress charts and the
//! distribution of response classes, drawn from the run's own summary.

use std::fmt::Write as _;

use super::runner::Summary;
use crate::report::html::{esc, BarChart, LineChart, Page, Series, Tone};

/// Executions per second between consecutive samples, placed at the
/// later sample's time.
fn rate(summary: &Summary) -> Vec<(f64, f64)> {
    summary
        .timeline
        .windows(2)
        .filter_map(|w| {
            let dt = w[1].secs - w[0].secs;
            (dt > 0.0).then(|| (w[1].secs, w[1].execs.saturating_sub(w[0].execs) as f64 / dt))
        })
        .collect()
}

/// Renders a fuzz run's summary as one self-contained HTML page.
pub fn render_fuzz_html(summary: &Summary) -> String {
    let mut page = Page::new("osc-harness fuzz run");
    page.subtitle(format!("target: {}", summary.target));
    page.subtitle(format!(
        "seed {} · {} execution(s) in {:.1} s",
        summary.seed, summary.execs, summary.elapsed_secs
    ));
    let findings: u64 = summary.findings.iter().map(|b| b.count).sum();
    page.stat(
        "execs/s",
        format!("{:.1}", summary.execs_per_sec),
        Tone::Neutral,
    )
    .stat("corpus entries", summary.corpus_size, Tone::Neutral)
    .stat(
        "finding bucket(s)",
        summary.findings.len(),
        if summary.findings.is_empty() {
            Tone::Pass
        } else {
            Tone::Fail
        },
    )
    .stat("handshakes", summary.handshakes, Tone::Neutral);
    if let Some(case) = summary.target_died_at {
        page.stat(format!("target died at case {case}"), "!", Tone::Fail);
    }

    let mut body = String::new();
    if let (Some(case), Some(why)) = (summary.target_died_at, &summary.died_reason) {
        let _ = write!(
            body,
            "<p class=\"note\">The target died at case {case}: {}</p>",
            esc(why)
        );
    }
    body.push_str(
        &LineChart {
            title: "Executions per second".into(),
            x_label: "seconds".into(),
            y_label: "execs/s".into(),
            series: vec![Series {
                name: "execs/s".into(),
                points: rate(summary),
            }],
        }
        .render(),
    );
    body.push_str(
        &LineChart {
            title: "Corpus size and findings over time".into(),
            x_label: "seconds".into(),
            y_label: "count".into(),
            series: vec![
                Series {
                    name: "corpus entries".into(),
                    points: summary
                        .timeline
                        .iter()
                        .map(|s| (s.secs, s.corpus as f64))
                        .collect(),
                },
                Series {
                    name: "confirmed findings".into(),
                    points: summary
                        .timeline
                        .iter()
                        .map(|s| (s.secs, s.findings as f64))
                        .collect(),
                },
            ],
        }
        .render(),
    );
    page.section("progress", "Progress", body);

    let mut classes: Vec<(String, u64)> = summary
        .response_classes
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    classes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    page.section(
        "classes",
        "Response classes",
        BarChart {
            title: format!("Answers by class ({findings} confirmed finding(s) in all)"),
            bars: classes,
            tones: Vec::new(),
        }
        .render(),
    );

    let mut body = String::new();
    if summary.findings.is_empty() {
        body.push_str("<p>No finding.</p>");
    } else {
        body.push_str("<table class=\"list\"><thead><tr><th>signature</th><th>count</th><th>first detail</th><th>shapes (saved file)</th></tr></thead><tbody>");
        for b in &summary.findings {
            let mut shapes = String::new();
            for s in &b.shapes {
                let _ = write!(
                    shapes,
                    "<div><code>{}</code> ×{}{}</div>",
                    esc(&s.shape),
                    s.count,
                    s.file
                        .as_deref()
                        .map(|f| format!(" <span class=\"muted\">{}</span>", esc(f)))
                        .unwrap_or_default()
                );
            }
            let _ = write!(
                body,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{shapes}</td></tr>",
                esc(&b.signature),
                b.count,
                esc(&b.detail)
            );
        }
        body.push_str("</tbody></table>");
    }
    let _ = write!(
        body,
        "<dl class=\"facts\"><dt>unconfirmed hits</dt><dd>{}</dd><dt>skipped steps</dt><dd>{}</dd>\
         <dt>expiry checks</dt><dd>{}</dd><dt>sessions evicted before expiry</dt><dd>{}</dd>\
         <dt>handshakes rate-limited</dt><dd>{}</dd><dt>mutated hellos deferred</dt><dd>{}</dd></dl>",
        summary.unconfirmed,
        summary.skipped,
        summary.expiry_checks,
        summary.expiry_evicted,
        summary.rate_limited,
        summary.hellos_deferred
    );
    page.section("findings", "Findings", body);
    page.finish()
}
