//! `osc-harness diff` against real servers on loopback: the reference
//! (`self`) beside the independent Python server, beside `serve --bug X`
//! processes, and several at once; then `replay --targets` on a case the
//! run saved.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::{describe, harness, python_serve, run_bounded, start, Running};

/// A diff run sends the whole suite and the fuzz cases to every target.
const DIFF_WAIT: Duration = Duration::from_secs(300);

fn knob_server(bug: &str) -> Running {
    let mut cmd = harness();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--handshake-rate", "0"])
        .args(["--bug", bug]);
    start(cmd)
}

/// A `[[target]]` table for a server that printed a ready line.
fn table(name: &str, s: &Running) -> String {
    let key = s.ready["accessKey"].as_str().unwrap_or("osk-v1.interop");
    format!(
        "[[target]]\nname = \"{name}\"\nurl = \"{}\"\nagent_address = \"{}\"\n\
         access_key = \"{key}\"\nagent_id = \"{}\"\nhandshake_budget = \"none\"\n\n",
        s.field("url"),
        s.field("agentAddress"),
        s.field("agentId"),
    )
}

const REFERENCE: &str = "[[target]]\nname = \"reference\"\nurl = \"self\"\n\n";

/// Runs `diff` on `targets` with `extra` flags; the exit code, stdout and
/// the JSON report.
fn diff(dir: &Path, targets: &str, extra: &[&str]) -> (Option<i32>, String, Value) {
    let file = dir.join("targets.toml");
    std::fs::write(&file, targets).unwrap();
    let report = dir.join("report.json");
    let mut cmd = harness();
    cmd.arg("diff")
        .arg("--targets")
        .arg(&file)
        .arg("--save")
        .arg(dir.join("saved"))
        .arg("--report")
        .arg(&report)
        .args(extra);
    let out = run_bounded(cmd, DIFF_WAIT);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = std::fs::read_to_string(&report)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("no JSON report: {}", describe(&out)));
    (out.status.code(), stdout, json)
}

fn findings(report: &Value) -> Vec<(String, String, String)> {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(|r| r["findings"].as_array().cloned().unwrap_or_default())
        .map(|f| {
            (
                f["class"].as_str().unwrap_or("").to_owned(),
                f["target"].as_str().unwrap_or("*").to_owned(),
                f["requirement"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn the_reference_and_the_lenient_python_server_differ_only_where_spec_allows() {
    let Some(python) = support::interop_python() else {
        return;
    };
    // Upstream's leniency where the protocol leaves room: base64 decoded
    // as upstream decodes it, an undecodable inner body run as empty.
    let mut serve = python_serve(python);
    serve.arg("--lenient-base64");
    let py = start(serve);
    let dir = tempfile::tempdir().unwrap();
    // No handshake_budget: diff learns that the server does not pace
    // handshakes, as a newcomer's targets file would leave it.
    let unpaced = table("python", &py).replace("handshake_budget = \"none\"\n", "");
    let targets = format!("{REFERENCE}{unpaced}");
    let (code, stdout, report) = diff(dir.path(), &targets, &["--cases", "15"]);
    let found = findings(&report);
    let bad: Vec<_> = found
        .iter()
        .filter(|f| f.0 == "must" || f.0 == "unexplained")
        .collect();
    assert!(bad.is_empty(), "{bad:?}\n{stdout}");
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        found.iter().any(|f| f.0 == "information"),
        "no information rows: {stdout}"
    );
    assert!(
        stdout.contains("INFORMATION") && stdout.contains(" rule "),
        "the information rows are listed with their rule: {stdout}"
    );
    assert_eq!(report["summary"]["failed"], false);
}

/// The app behind the channel is information by rule, but where the
/// protocol fixes the inner answer (401 for a missing key, no 426 inside
/// the channel) a target that answers otherwise is still a MUST.
#[test]
fn the_app_rule_leaves_the_fixed_inner_answers_compared() {
    let unchecked = knob_server("inner-auth-unchecked");
    let gated = knob_server("channel-run-gated");
    let targets = format!(
        "{REFERENCE}{}{}",
        table("unchecked", &unchecked),
        table("gated", &gated)
    );
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, report) = diff(
        dir.path(),
        &targets,
        &[
            "--only",
            "inside-access-key",
            "--only",
            "gate-channel-executes",
            "--cases",
            "3",
        ],
    );
    assert_eq!(code, Some(1), "{stdout}");
    let found = findings(&report);
    for (target, req) in [("unchecked", "CALL-6"), ("gated", "GATE-4")] {
        assert!(
            found
                .iter()
                .any(|f| f.0 == "must" && f.1 == target && f.2.split(',').any(|r| r == req)),
            "{target} is not named with {req}: {found:?}"
        );
    }
    // No row of a broken target is explained away by a rule.
    for row in report["rows"].as_array().unwrap() {
        let broken = row["cells"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["verdict"] == "fail" || c["verdict"] == "fired");
        assert!(
            !(broken && row["class"] == "information"),
            "a broken answer is called information: {row}"
        );
    }
    assert!(
        !found.iter().any(|f| f.1 == "reference"),
        "the honest reference is blamed: {found:?}"
    );
}

/// `--max-wait` bounds the wait for a session's expiry on every target:
/// a server whose sessions outlive it leaves the expiry scenario
/// uncompared, and the text report says why under the row.
#[test]
fn max_wait_decides_which_targets_wait_for_expiry() {
    let mut cmd = harness();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--handshake-rate", "0"])
        .args(["--session-ttl", "3"]);
    let short = start(cmd);
    let mut cmd = harness();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--handshake-rate", "0"]);
    let long = start(cmd);
    let targets = format!("{}{}", table("short", &short), table("long", &long));
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, report) = diff(
        dir.path(),
        &targets,
        &[
            "--only",
            "expiry-known-v2",
            "--cases",
            "0",
            "--max-wait",
            "7",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}");
    let row = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["input"] == "expiry-known-v2")
        .unwrap_or_else(|| panic!("no expiry row: {stdout}"));
    assert_eq!(row["class"], "uncompared", "{row}");
    let cell = |name: &str| {
        row["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["target"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(cell("short")["verdict"], "pass", "{row}");
    let skipped = cell("long");
    assert_eq!(skipped["verdict"], "skip", "{row}");
    assert!(
        skipped["reason"]
            .as_str()
            .unwrap_or("")
            .contains("--max-wait 7s"),
        "{row}"
    );
    assert!(
        stdout.contains("long       not run: the session expires in"),
        "{stdout}"
    );
}

/// A ServerHello that does not verify against the pinned address, or a
/// session whose keys open nothing, is a MUST with its requirement even
/// when no scenario runs (no fuzz case can open a session to show it).
#[test]
fn a_hello_that_does_not_verify_is_a_must() {
    let forged = knob_server("wrong-signing-key");
    let crossed = knob_server("same-key-both-directions");
    let targets = format!(
        "{REFERENCE}{}{}",
        table("forged", &forged),
        table("crossed", &crossed)
    );
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, report) = diff(dir.path(), &targets, &["--skip", "*", "--cases", "2"]);
    assert_eq!(code, Some(1), "{stdout}");
    let row = &report["rows"][0];
    assert_eq!(row["kind"], "preflight", "{stdout}");
    let found = findings(&report);
    for (target, req) in [("forged", "HS-1"), ("crossed", "KS-1")] {
        assert!(
            found
                .iter()
                .any(|f| f.0 == "must" && f.1 == target && f.2.split(", ").any(|r| r == req)),
            "{target} is not named with {req}: {found:?}"
        );
    }
    assert!(
        stdout.contains("does not verify against the pinned address"),
        "{stdout}"
    );
    assert!(!found.iter().any(|f| f.1 == "reference"), "{found:?}");
}

/// Each knob with the requirement it breaks.
const KNOBS: [(&str, &str); 6] = [
    ("replay-check-off", "CALL-3"),
    ("signature-hex-uppercase", "ENC-2"),
    ("version-before-session", "CALL-2"),
    ("status-outside", "RESP-2"),
    ("no-426-gate", "GATE-1"),
    ("stream-drops-fin", "RESP-5"),
];

#[test]
fn each_broken_server_is_named_with_its_requirement() {
    let servers: Vec<Running> = KNOBS.iter().map(|(bug, _)| knob_server(bug)).collect();
    let mut targets = REFERENCE.to_owned();
    for ((bug, _), s) in KNOBS.iter().zip(&servers) {
        targets.push_str(&table(bug, s));
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, report) = diff(dir.path(), &targets, &["--cases", "10"]);
    assert_eq!(code, Some(1), "{stdout}");
    let found = findings(&report);
    for (bug, req) in KNOBS {
        assert!(
            found
                .iter()
                .any(|f| f.0 == "must" && f.1 == bug && f.2.split(',').any(|r| r == req)),
            "{bug} is not named with {req}: {found:?}"
        );
    }
    assert!(
        !found.iter().any(|f| f.1 == "reference" && f.0 == "must"),
        "the honest reference is blamed: {found:?}"
    );
    assert!(stdout.contains("MUST") && stdout.contains("version-before-session CALL-2"));
    assert!(stdout.contains("signature-hex-uppercase ENC-2"), "{stdout}");
}

#[test]
fn three_targets_at_once_and_a_saved_case_replays() {
    let broken = knob_server("status-outside");
    let honest = harness_honest();
    let dir = tempfile::tempdir().unwrap();
    let targets = format!(
        "{REFERENCE}{}{}",
        table("honest", &honest),
        table("broken", &broken)
    );
    let page = dir.path().join("diff.html");
    let page_arg = page.display().to_string();
    let (code, stdout, report) = diff(
        dir.path(),
        &targets,
        // Seed 6 draws inputs with an edited inner request in its first 30
        // cases, where `status-outside` shows.
        &["--cases", "30", "--seed", "6", "--report", &page_arg],
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(report["targets"].as_array().map(Vec::len), Some(3));
    // The HTML page: one self-contained file naming every target, the
    // broken requirement in its matrix, and diverging cells standing out.
    let html = std::fs::read_to_string(&page).expect("the HTML report is written");
    assert!(html.starts_with("<!DOCTYPE html>"));
    for needle in [
        "reference",
        "honest",
        "broken",
        "RESP-2",
        "Requirements × targets",
        "Inputs × targets",
        "stand-out",
        "<svg",
    ] {
        assert!(html.contains(needle), "the page lacks {needle}");
    }
    assert!(
        !html.contains("src=\"http"),
        "nothing is fetched from elsewhere"
    );
    let found = findings(&report);
    assert!(
        found
            .iter()
            .any(|f| f.0 == "must" && f.1 == "broken" && f.2.contains("RESP-2")),
        "{found:?}"
    );
    assert!(
        found.iter().all(|f| f.1 != "reference" && f.1 != "honest"),
        "an honest target is blamed: {found:?}"
    );
    // Every row has a cell for each target, honest ones agreeing.
    for row in report["rows"].as_array().unwrap() {
        assert_eq!(row["cells"].as_array().map(Vec::len), Some(3), "{row}");
    }
    // A fuzz divergence was minimised and saved; replay says it remains
    // against the same targets and is gone without the broken one.
    let saved: Vec<_> = std::fs::read_dir(dir.path().join("saved"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let case = saved
        .iter()
        .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("Must:broken:")))
        .unwrap_or_else(|| panic!("no saved case against `broken` in {saved:?}: {stdout}"));
    let replay = |targets: &Path| {
        let mut cmd = harness();
        cmd.arg("replay").arg(case).arg("--targets").arg(targets);
        run_bounded(cmd, DIFF_WAIT)
    };
    let out = replay(&dir.path().join("targets.toml"));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DIVERGENCE REMAINS"));
    let two = dir.path().join("two.toml");
    std::fs::write(&two, format!("{REFERENCE}{}", table("honest", &honest))).unwrap();
    let out = replay(&two);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("NO DIVERGENCE"));
}

fn harness_honest() -> Running {
    let mut cmd = harness();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--handshake-rate", "0"]);
    start(cmd)
}

#[test]
fn bad_targets_files_are_usage_errors_and_dead_targets_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    let run_diff = |text: &str| {
        std::fs::write(&file, text).unwrap();
        let mut cmd = harness();
        cmd.arg("diff")
            .arg("--targets")
            .arg(&file)
            .args(["--cases", "0"]);
        run_bounded(cmd, DIFF_WAIT)
    };
    let typo = format!("{REFERENCE}[[target]]\nname = \"b\"\nurl = \"self\"\nurll = \"x\"\n");
    let out = run_diff(&typo);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("t.toml:8: unknown key `urll`"),
        "file, line and key: {err}"
    );
    let out = run_diff(REFERENCE);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("two or more"));
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!(
        "{REFERENCE}[[target]]\nname = \"gone\"\nurl = \"http://127.0.0.1:{port}\"\n\
         agent_address = \"0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1\"\naccess_key = \"k\"\n"
    );
    let out = run_diff(&dead);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`gone` is unreachable"));
}
