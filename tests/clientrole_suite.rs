//! The client-role suite end to end: the reference client through the shim
//! (honest and with each `call --bug` knob), toy shims that are always
//! right or always wrong, skips, hangs, reports and the adversary command.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use osc_harness::clientrole::{builtin, selftest};

use support::EXE;

fn test_client(args: &[&str]) -> (i32, String, String) {
    support::outcome(
        support::harness()
            .arg("test-client")
            .args(args)
            .output()
            .expect("runs"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_client_passes_and_each_knob_fails_exactly_its_scenarios() {
    let scenarios = builtin().expect("built-in scenarios load");
    let rows = selftest::run_matrix(Path::new(EXE), &scenarios, Duration::from_secs(20)).await;
    assert_eq!(rows.len(), 7);
    for row in &rows {
        assert!(row.ok(), "{}", selftest::render(&rows));
    }
    let caught: usize = rows.iter().map(|r| r.failed.len()).sum();
    assert!(caught >= 10, "the knobs are caught by real scenarios");
}

#[test]
fn every_scenario_file_is_embedded_and_valid() {
    let ids: Vec<String> = builtin().unwrap().into_iter().map(|s| s.id).collect();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/client"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert_eq!(ids.len(), files, "add new files to src/clientrole/files.rs");
    for s in builtin().unwrap() {
        assert!(!s.requirements.is_empty(), "{}", s.id);
        assert_eq!(s.role, "client");
    }
}

#[test]
fn a_client_that_accepts_everything_fails_the_refusals_only() {
    let (code, out, _) = test_client(&[
        "--client-cmd",
        "echo '{\"status\":\"ok\"}'",
        "--format",
        "json",
    ]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out).expect("json report");
    for s in report["scenarios"].as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        let v = s["verdict"].as_str().unwrap();
        let must_complete = id.starts_with("client-honest")
            || id == "client-session-401-once"
            || id == "client-sig-high-s";
        if id == "client-session-401-once" {
            // It never re-handshakes, so the retry rule fails it anyway.
            assert_eq!(v, "fail", "{id}");
        } else if must_complete {
            assert_eq!(v, "pass", "{id}");
        } else {
            assert!(matches!(v, "fail" | "warn" | "info"), "{id}: {v}");
        }
    }
}

#[test]
fn a_client_that_refuses_everything_fails_the_completions() {
    let (code, out, _) = test_client(&[
        "--client-cmd",
        "exit 6",
        "--only",
        "client-honest-buffered",
        "--only",
        "client-id-wrong-key",
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("client-honest-buffered"), "{out}");
    let json = test_client(&[
        "--client-cmd",
        "exit 6",
        "--only",
        "client-id-wrong-key",
        "--format",
        "json",
    ])
    .1;
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["scenarios"][0]["verdict"], "pass");
}

#[test]
fn exit_89_skips() {
    let (code, out, _) = test_client(&[
        "--client-cmd",
        "exit 89",
        "--only",
        "client-honest-stream",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["scenarios"][0]["verdict"], "skip");
}

#[test]
fn a_hang_fails_and_the_process_group_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let cmd = format!("sleep 60 & echo $! > '{}'; wait", pidfile.display());
    let (code, out, _) = test_client(&[
        "--client-cmd",
        &cmd,
        "--timeout",
        "1",
        "--only",
        "client-honest-buffered",
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("hung past --timeout"), "{out}");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    // A killed process may linger as a zombie until its new parent reaps
    // it; only a process still running counts as having survived.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("");
    let alive = !stat.is_empty() && state != "Z" && state != "X";
    assert!(!alive, "the shim's grandchild {pid} survived");
}

#[test]
fn placeholders_are_filled_and_reports_and_expectations_work() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen");
    let junit = dir.path().join("r.xml");
    let expect = dir.path().join("expect.toml");
    let cmd = format!(
        "echo {{url}} {{address}} {{access_key}} {{agent_id}} {{path}} {{mode}} > '{}'; exit 0",
        seen.display()
    );
    std::fs::write(
        &expect,
        "[[known]]\nid = \"client-id-wrong-key\"\nverdict = \"fail\"\nreason = \"toy\"\n",
    )
    .unwrap();
    let (code, _, _) = test_client(&[
        "--client-cmd",
        &cmd,
        "--only",
        "client-id-wrong-key",
        "--report",
        junit.to_str().unwrap(),
        "--expect",
        expect.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "the known failure does not fail the run");
    let line = std::fs::read_to_string(&seen).unwrap();
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts.len(), 6, "{line}");
    assert!(parts[0].starts_with("http://127.0.0.1:"));
    assert!(parts[1].starts_with("0x") && parts[1].len() == 42);
    assert_eq!((parts[4], parts[5]), ("/health", "buffered"));
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("client-id-wrong-key"));
}

#[test]
fn adversary_reports_what_the_client_did() {
    let mut child = Command::new(EXE)
        .args([
            "adversary",
            "--scenario",
            "client-session-409",
            "--listen",
            "127.0.0.1:0",
            "--idle",
            "1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let status = Command::new(EXE)
        .args([
            "call",
            "--target",
            ready["url"].as_str().unwrap(),
            "--agent-address",
            ready["address"].as_str().unwrap(),
            "--access-key",
            ready["access_key"].as_str().unwrap(),
            "--path",
            ready["path"].as_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(8), "the 409 is reported as a refusal");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().unwrap().success());
    let text = rest.join("\n");
    assert!(text.contains("1 handshake(s) and 1 call(s)"), "{text}");
    assert!(!text.contains("retried"), "{text}");
}
