//! The HTML report without a browser: structure, escaping of hostile
//! strings, self-containment, and the commands that write it.

mod support;

use osc_harness::report::html::{render_selftest_html, KillMatrix, KillRow};
use osc_harness::report::render_html;
use osc_harness::report::Catalogue;
use support::{harness, links, run, HOSTILE};

/// What every page must be: one document, nothing fetched, both themes,
/// print styles, reduced motion honoured.
fn assert_self_contained(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("</html>").count(), 1);
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    for link in links(html) {
        assert!(
            link.starts_with('#'),
            "a page may only link inside itself, found {link:?}"
        );
    }
    for banned in ["<link", "@import", "url(", "http-equiv=\"refresh"] {
        assert!(!html.contains(banned), "found {banned}");
    }
    for needed in [
        "prefers-color-scheme: dark",
        "prefers-reduced-motion: reduce",
        "@media print",
    ] {
        assert!(html.contains(needed), "missing {needed}");
    }
}

#[test]
fn hostile_strings_are_shown_as_text() {
    let report = support::hostile_report(3);
    let html = render_html(&report, &Catalogue::builtin());
    assert_self_contained(&html);
    // The page's own script is the only one.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(!html.contains("<img"));
    assert!(!html.contains("onerror=\""));
    assert!(html.contains("&lt;script&gt;console.error(&#39;xss&#39;)&lt;/script&gt;"));
    // An id full of markup still gets a safe anchor, and the matrix links to it.
    assert!(html.contains("id=\"s-odd-id-_3cscript_3e"));
    assert!(html.contains("href=\"#s-odd-id-_3cscript_3e"));
    // The link reader sees real links (so the self-containment check bites).
    assert!(links(&html).iter().any(|l| l == "#s-hostile-fail"));
}

#[test]
fn a_run_page_has_the_matrix_coverage_and_every_scenario() {
    let report = support::hostile_report(40);
    let html = render_html(&report, &Catalogue::builtin());
    assert!(html.contains("Requirement matrix"));
    assert!(html.contains("<table class=\"grid compact\""));
    // Requirements are grouped by the protocol document's sections.
    assert!(html.contains("6. Calls — POST /secure/call"));
    // The page states the coverage every report states: the MUSTs the
    // scenarios reached against those the run answers for.
    let cov = report.must_coverage();
    assert_eq!((cov.exercised, cov.total), (2, 3), "{cov:?}");
    assert!(html.contains("2 of 3 MUST exercised"), "coverage line");
    assert!(html.contains("MUST requirements exercised: 2 of 3"));
    assert!(html.contains("Not exercised: ENC-1."));
    for s in &report.scenarios {
        let anchor = osc_harness::report::html::anchor("s-", &s.id);
        assert!(html.contains(&format!("id=\"{anchor}\"")), "{}", s.id);
    }
    // A failure is open, a pass is folded; frames are listed one by one.
    assert!(html.contains("<details class=\"scenario\" id=\"s-hostile-fail\" open>"));
    assert!(html.contains("<details class=\"scenario\" id=\"s-hostile-long\">"));
    assert!(html.contains("Transcript (40 exchange(s), secrets redacted)"));
    assert!(html.contains("seq 0"));
    assert!(html.contains("<ol class=\"frames\""));
    assert!(html.contains("<svg"));
    assert!(html.contains("osc-harness test --target self --only hostile-fail"));
}

#[test]
fn the_kill_matrix_marks_caught_missed_and_unexpected() {
    let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect();
    let m = KillMatrix {
        title: format!("knobs {HOSTILE}"),
        scenarios: vec!["a".into(), "b".into(), "c".into()],
        rows: vec![
            KillRow::default(),
            KillRow {
                knob: Some(format!("knob-{HOSTILE}")),
                requirement: "CALL-2".into(),
                declared: set(&["a", "b"]),
                failed: set(&["a", "c"]),
                ..KillRow::default()
            },
        ],
    };
    let html = render_selftest_html(&[m]);
    assert_self_contained(&html);
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains("caught (declared, failed)"));
    assert!(html.contains("MISSED (declared, passed)"));
    assert!(html.contains("UNEXPECTED failure"));
    assert!(html.contains("declared but not caught: b;"));
    assert!(html.contains("1</b> rows wrong"));
}

#[test]
fn test_self_writes_html_by_extension_and_by_format() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.html");
    let mut cmd = harness();
    cmd.args(["test", "--target", "self", "--only", "replay-*", "--report"])
        .arg(&file);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", support::describe(&out));
    // Text on stdout, HTML in the file.
    assert!(support::text(&out.stdout).contains("summary:"));
    let html = std::fs::read_to_string(&file).unwrap();
    assert_self_contained(&html);
    assert!(html.contains("id=\"s-replay-seq-zero\""));

    let mut cmd = harness();
    cmd.args([
        "test", "--target", "self", "--only", "replay-*", "--format", "html",
    ]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", support::describe(&out));
    let stdout = support::text(&out.stdout);
    assert_self_contained(&stdout);
    assert!(stdout.contains("id=\"s-replay-window\""));
}

#[test]
fn a_fuzz_run_writes_its_charts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fuzz.html");
    let summary = support::fuzz_html(&file, &dir.path().join("findings"));
    // The JSON summary carries the series the charts are drawn from.
    let timeline = summary["timeline"].as_array().unwrap();
    assert!(timeline.len() >= 2, "{summary}");
    assert_eq!(timeline.last().unwrap()["execs"], 400);
    let classes = summary["response_classes"].as_object().unwrap();
    assert!(!classes.is_empty(), "{summary}");
    let html = std::fs::read_to_string(&file).unwrap();
    assert_self_contained(&html);
    assert!(html.contains("Executions per second"));
    assert!(html.contains("<polyline class=\"series s0\""));
    assert!(html.contains("Response classes"));
    for class in classes.keys() {
        assert!(
            html.contains(&osc_harness::report::html::esc(class)),
            "{class}"
        );
    }
}
