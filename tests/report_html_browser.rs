//! The HTML report in a real browser: headless Chromium opens reports with
//! a failure, with skips, with a long transcript and with hostile strings,
//! plus a fuzz summary and a kill matrix; each must render (a screenshot of
//! the asked size whose pixels vary), log nothing on the console (a script
//! error, a blocked fetch, or an injected script would), and show every
//! scenario and the matrix.
//!
//! Needs `chromium` (Debian's package; `CHROMIUM` names another binary),
//! so it is ignored by default and `.ci/run` runs it with `--ignored`.

mod support;

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use osc_harness::report::html::{anchor, render_selftest_html, KillMatrix, KillRow};
use osc_harness::report::render_html;
use osc_harness::report::Catalogue;
use osc_harness::server::{self, Bug, ServerConfig};
use support::{describe, harness, run, run_bounded, text};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 1600;
const BROWSER_WAIT: Duration = Duration::from_secs(180);

fn chromium(profile: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into()));
    // --no-sandbox: CI runs as root in a container, where the sandbox
    // cannot start.
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-extensions",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// What the browser made of a page.
struct Rendered {
    /// Console messages (`CONSOLE` lines of the browser's log).
    console: Vec<String>,
    /// The DOM after scripts ran.
    dom: String,
    /// The top-left pixel (RGB), which shows the theme.
    corner: [u8; 3],
}

fn open(page: &Path, dark: bool) -> Rendered {
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("shot.png");
    let url = format!("file://{}", page.display());
    let mut cmd = chromium(&dir.path().join("profile"));
    cmd.args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--window-size={WIDTH},{HEIGHT}"));
    if dark {
        cmd.arg("--force-dark-mode");
    }
    cmd.arg(&url);
    let out = run_bounded(cmd, BROWSER_WAIT);
    assert!(out.status.success(), "chromium: {}", describe(&out));
    let console: Vec<String> = text(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    let corner = check_png(&shot);

    let mut cmd = chromium(&dir.path().join("profile-dom"));
    cmd.arg("--dump-dom").arg(&url);
    let out = run_bounded(cmd, BROWSER_WAIT);
    assert!(out.status.success(), "chromium: {}", describe(&out));
    Rendered {
        console,
        dom: text(&out.stdout),
        corner,
    }
}

/// Decodes the screenshot (the `png` crate: Chromium compresses it, so the
/// pixels cannot be read without inflating), checks its size and that it is
/// not blank, and returns the top-left pixel.
fn check_png(path: &Path) -> [u8; 3] {
    let decoder = png::Decoder::new(BufReader::new(File::open(path).expect("a screenshot")));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a bounded PNG")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let pixels = &buf[..info.buffer_size()];
    let mut counts: HashMap<[u8; 3], usize> = HashMap::new();
    for p in pixels.chunks_exact(channels) {
        *counts.entry([p[0], p[1], p[2]]).or_default() += 1;
    }
    let total = (info.width * info.height) as usize;
    let most = counts.values().copied().max().unwrap_or(0);
    assert!(
        counts.len() > 50,
        "only {} colours: a blank page",
        counts.len()
    );
    assert!(
        most * 100 < total * 97,
        "one colour covers almost everything"
    );
    [pixels[0], pixels[1], pixels[2]]
}

fn luminance(p: [u8; 3]) -> u32 {
    (299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32) / 1000
}

/// Opens `page` in both themes; returns the light rendering after the
/// checks every page must pass.
fn open_both(page: &Path) -> Rendered {
    let light = open(page, false);
    assert!(
        light.console.is_empty(),
        "console messages: {:?}",
        light.console
    );
    assert!(luminance(light.corner) > 180, "{:?}", light.corner);
    let dark = open(page, true);
    assert!(
        dark.console.is_empty(),
        "console messages: {:?}",
        dark.console
    );
    assert!(luminance(dark.corner) < 80, "{:?}", dark.corner);
    // The page's script ran: the open/close buttons show.
    if light.dom.contains("data-toggle") {
        assert!(!light.dom.contains("data-toggle=\"open\" hidden"));
    }
    light
}

/// The checks of a conformance page: the matrix and every scenario of the
/// JSON report of the same run.
fn assert_run_page(r: &Rendered, ids: &[String]) {
    assert!(r.dom.contains("Requirement matrix"));
    assert!(r.dom.contains("<table class=\"grid compact\""));
    assert!(r.dom.contains("MUST exercised"));
    assert!(r.dom.contains("<svg"));
    assert!(!ids.is_empty());
    for id in ids {
        assert!(
            r.dom.contains(&format!("id=\"{}\"", anchor("s-", id))),
            "scenario {id} is missing"
        );
    }
}

/// Runs `test` with `args`, writing JSON and HTML; returns the exit code,
/// the scenario ids and verdicts, and the HTML file.
fn test_run(
    dir: &Path,
    name: &str,
    args: &[String],
) -> (i32, Vec<(String, String)>, std::path::PathBuf) {
    let html = dir.join(format!("{name}.html"));
    let json = dir.join(format!("{name}.json"));
    let mut cmd = harness();
    cmd.args(args)
        .arg("--report")
        .arg(&html)
        .arg("--report")
        .arg(&json);
    let out = run(cmd);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("a JSON report")).unwrap();
    let scenarios = support::verdicts_by_id(&doc);
    (out.status.code().unwrap_or(-1), scenarios, html)
}

#[test]
#[ignore = "needs chromium; .ci/run installs it"]
fn a_passing_run_renders() {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = ["test", "--target", "self"].map(String::from).to_vec();
    let (code, scenarios, html) = test_run(dir.path(), "self", &args);
    assert_eq!(code, 0);
    let r = open_both(&html);
    let ids: Vec<String> = scenarios.into_iter().map(|s| s.0).collect();
    assert_run_page(&r, &ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium; .ci/run installs it"]
async fn a_run_with_a_failure_and_skips_renders() {
    let mut config = ServerConfig::generated();
    config.handshake_rate = None;
    config.bugs.insert(Bug::SeqZeroAccepted);
    let broken = server::spawn(config).await.unwrap();
    let key = broken.access_key.clone();
    let mut args = support::target_args("test", &broken);
    args.extend(["--agent-id", &broken.agent_id, "--handshake-budget", "none"].map(String::from));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let (code, scenarios, html) =
        tokio::task::spawn_blocking(move || test_run(&path, "broken", &args))
            .await
            .unwrap();
    assert_eq!(code, 1);
    assert!(scenarios
        .iter()
        .any(|(id, v)| id == "replay-seq-zero" && v == "fail"));
    assert!(scenarios.iter().any(|(_, v)| v == "skip"), "{scenarios:?}");
    let r = tokio::task::spawn_blocking(move || open_both(&html))
        .await
        .unwrap();
    let ids: Vec<String> = scenarios.into_iter().map(|s| s.0).collect();
    assert_run_page(&r, &ids);
    assert!(r.dom.contains("<span class=\"badge t-fail\">FAIL</span>"));
    assert!(r.dom.contains("<span class=\"badge t-skip\">skip</span>"));
    // The failure is unfolded, with its rerun command and its key redacted.
    assert!(r
        .dom
        .contains("<details class=\"scenario\" id=\"s-replay-seq-zero\" open=\"\">"));
    assert!(r.dom.contains("--only replay-seq-zero"));
    assert!(!r.dom.contains(&key), "the access key leaked");
    broken.shutdown().await;
}

#[test]
#[ignore = "needs chromium; .ci/run installs it"]
fn a_long_hostile_transcript_renders_as_text() {
    let report = support::hostile_report(300);
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("hostile.html");
    std::fs::write(&html, render_html(&report, &Catalogue::builtin())).unwrap();
    // An injected script or image would log to the console.
    let r = open_both(&html);
    let ids: Vec<String> = report.scenarios.iter().map(|s| s.id.clone()).collect();
    assert_run_page(&r, &ids);
    assert!(r
        .dom
        .contains("Transcript (300 exchange(s), secrets redacted)"));
    assert_eq!(
        r.dom.matches("<div class=\"exchange\">").count(),
        300 + 2 + 1
    );
    assert!(!r.dom.contains("<img"));
}

#[test]
#[ignore = "needs chromium; .ci/run installs it"]
fn a_fuzz_summary_renders_its_charts() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("fuzz.html");
    support::fuzz_html(&html, &dir.path().join("findings"));
    let r = open_both(&html);
    assert!(r.dom.contains("Executions per second"));
    assert!(r.dom.contains("Corpus size and findings over time"));
    assert!(r.dom.contains("Response classes"));
    assert!(r.dom.matches("<svg").count() >= 3);
}

#[test]
#[ignore = "needs chromium; .ci/run installs it"]
fn a_kill_matrix_renders() {
    let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect();
    let scenarios: Vec<String> = (0..40).map(|i| format!("scenario-{i}")).collect();
    let rows = (0..20)
        .map(|k| KillRow {
            knob: Some(format!("knob-{k}")),
            requirement: "CALL-2".into(),
            declared: set(&[&format!("scenario-{}", k * 2)]),
            failed: if k == 3 {
                set(&["scenario-1"])
            } else {
                set(&[&format!("scenario-{}", k * 2)])
            },
            ..KillRow::default()
        })
        .collect();
    let page = render_selftest_html(&[KillMatrix {
        title: "Server knobs × server scenarios".into(),
        scenarios: scenarios.clone(),
        rows,
    }]);
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("selftest.html");
    std::fs::write(&html, page).unwrap();
    let r = open_both(&html);
    assert!(r.dom.contains("<table class=\"grid compact\""));
    for id in &scenarios {
        assert!(r.dom.contains(id.as_str()));
    }
    assert!(r.dom.contains("MISSED (declared, passed)"));
}
