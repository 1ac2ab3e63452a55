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
    assert_eq!(rows.len(), osc_harness::client::ClientBug::ALL.len() + 1);
    for row in &rows {
        assert!(row.ok(), "{}", selftest::render(&rows, &scenarios));
    }
    let unkilled = selftest::unkilled_musts(&rows, &scenarios);
    assert!(
        unkilled.is_empty(),
        "{}",
        selftest::render_unkilled(&unkilled)
    );
    let caught: usize = rows.iter().map(|r| r.failed.len()).sum();
    assert!(caught >= 10, "the knobs are caught by real scenarios");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_must_scenario_passes_against_a_null_client() {
    let scenarios = builtin().expect("built-in scenarios load");
    let rows =
        selftest::run_null_clients(Path::new(EXE), &scenarios, Duration::from_secs(20)).await;
    assert_eq!(rows.len(), selftest::NullClient::ALL.len());
    for row in &rows {
        assert_eq!(row.ran, scenarios.len());
        assert!(row.ok(), "{}", selftest::render_null(&rows));
    }
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

/// The verdict of every scenario of a JSON report, by ID.
fn verdicts(report: &str) -> Vec<(String, String)> {
    let report: serde_json::Value = serde_json::from_str(report).expect("json report");
    support::verdicts_by_id(&report)
}

#[test]
fn a_client_that_does_nothing_passes_nothing() {
    // `echo` prints what a body looks like and exits 0 without a call.
    for cmd in ["false", "true", "echo '{\"status\":\"ok\"}'"] {
        let (code, out, _) = test_client(&["--client-cmd", cmd, "--format", "json"]);
        assert_eq!(code, 1, "{cmd}");
        let all = verdicts(&out);
        assert_eq!(all.len(), builtin().unwrap().len());
        for (id, v) in &all {
            assert_ne!(v, "pass", "{cmd}: {id} passed");
        }
    }
}

#[test]
fn a_refusal_counts_only_after_the_baseline_of_its_mode_passed() {
    for cmd in ["false", "exit 6", "true"] {
        let (code, out, _) = test_client(&[
            "--client-cmd",
            cmd,
            "--only",
            "client-id-wrong-key",
            "--format",
            "json",
        ]);
        assert_eq!(code, 1, "{cmd}: {out}");
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        // The baseline ran first but was not asked for, so it is not shown.
        assert_eq!(report["scenarios"].as_array().unwrap().len(), 1);
        let s = &report["scenarios"][0];
        assert_eq!(s["verdict"], "fail", "{cmd}: {s:#}");
        assert_eq!(s["precondition"], true, "{s:#}");
        let reason = s["reason"].as_str().unwrap();
        assert!(reason.starts_with("inconclusive:"), "{reason}");
        assert!(reason.contains("client-honest-buffered"), "{reason}");
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
    assert!(out.contains("inconclusive"), "{out}");
}

#[test]
fn the_refusal_line_is_checked_against_the_scenario_class() {
    let shim = reference_shim("");
    let run = |line: &str| {
        let cmd = format!("{shim} || {{ echo 'osc-refusal: {line}'; exit 1; }}");
        let out = test_client(&[
            "--client-cmd",
            &cmd,
            "--only",
            "client-id-wrong-key",
            "--format",
            "json",
        ])
        .1;
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        report["scenarios"][0].clone()
    };
    assert_eq!(run("identity")["verdict"], "pass");
    let wrong = run("truncation");
    assert_eq!(wrong["verdict"], "fail");
    assert!(
        wrong["reason"]
            .as_str()
            .unwrap()
            .contains("refused for truncation"),
        "{wrong:#}"
    );
    let unknown = run("bad-luck");
    assert_eq!(unknown["verdict"], "fail");
    assert!(
        unknown["reason"]
            .as_str()
            .unwrap()
            .contains("no refusal class"),
        "{unknown:#}"
    );
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
        "echo {{url}} {{address}} {{access_key}} {{agent_id}} {{path}} {{mode}} {{calls}} > '{}'; exit 0",
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
    assert_eq!(parts.len(), 7, "{line}");
    assert!(parts[0].starts_with("http://127.0.0.1:"));
    assert!(parts[1].starts_with("0x") && parts[1].len() == 42);
    assert_eq!((parts[4], parts[5], parts[6]), ("/health", "buffered", "1"));
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("client-id-wrong-key"));
}

/// Serves one scenario with `adversary`, points the reference client at it
/// (`extra` flags appended, `{calls}` filled from the ready line), and
/// returns the client's output and what the adversary printed after it.
fn through_adversary(scenario: &str, extra: &[&str]) -> (std::process::Output, String) {
    let mut child = Command::new(EXE)
        .args([
            // No --listen: the default is a free loopback port.
            "adversary",
            "--scenario",
            scenario,
            "--idle",
            "1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let field = |name: &str| ready[name].as_str().unwrap_or_default().to_string();
    let args: Vec<String> = extra
        .iter()
        .map(|a| a.replace("{calls}", &field("calls")))
        .collect();
    let out = Command::new(EXE)
        .args(["call", "--target", &field("url")])
        .args(["--agent-address", &field("address")])
        .args(["--access-key", &field("access_key")])
        .args(["--path", &field("path")])
        .args(&args)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().unwrap().success());
    (out, rest.join("\n"))
}

#[test]
fn adversary_reports_what_the_client_did() {
    let (out, text) = through_adversary("client-session-409", &[]);
    assert_eq!(
        out.status.code(),
        Some(8),
        "the 409 is reported as a refusal"
    );
    assert!(text.contains("1 handshake(s) and 1 call(s)"), "{text}");
    assert!(!text.contains("retried"), "{text}");
    assert!(text.contains("> [call] POST /secure/call"), "{text}");
    assert!(text.contains("< 409 "), "{text}");
}

#[test]
fn adversary_counts_asked_for_calls_as_calls_not_retries() {
    let (out, text) = through_adversary("client-session-seq-rises", &["--repeat", "{calls}"]);
    assert_eq!(out.status.code(), Some(0));
    let bodies = String::from_utf8_lossy(&out.stdout);
    assert_eq!(bodies.lines().count(), 3, "one body per line: {bodies}");
    assert!(text.contains("1 handshake(s) and 3 call(s)"), "{text}");
    assert!(!text.contains("retried"), "{text}");
    assert!(!text.contains("reused a seq"), "{text}");
    assert!(text.contains("seq 3 on session"), "{text}");
}

/// The reference client through the shim, with `{calls}` and extra flags.
fn reference_shim(extra: &str) -> String {
    format!(
        "'{EXE}' call --target {{url}} --agent-address {{address}} --access-key {{access_key}} \
         --path {{path}} --repeat {{calls}} --timeout 5 --max-stream-secs 2 \
         $([ {{mode}} = stream ] && echo '--stream --data {{}}'){extra}"
    )
}

fn json_report(args: &[&str]) -> serde_json::Value {
    let (_, out, err) = test_client(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("json report ({e}): {out}\n{err}"))
}

fn only_scenario(report: &serde_json::Value) -> &serde_json::Value {
    let all = report["scenarios"].as_array().unwrap();
    assert_eq!(all.len(), 1, "{report:#}");
    &all[0]
}

fn exchanges<'a>(s: &'a serde_json::Value, action: &str) -> Vec<&'a serde_json::Value> {
    s["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["action"] == action)
        .collect()
}

#[test]
fn seq_rises_needs_calls_and_catches_a_seq_reusing_client() {
    let id = "client-session-seq-rises";
    // Honest, with {calls}: three calls on one handshake, seqs 1, 2, 3.
    let report = json_report(&[
        "--client-cmd",
        &reference_shim(""),
        "--only",
        id,
        "--format",
        "json",
    ]);
    let s = only_scenario(&report);
    assert_eq!(s["verdict"], "pass", "{s:#}");
    assert_eq!(exchanges(s, "handshake").len(), 1, "{s:#}");
    let calls = exchanges(s, "call");
    assert_eq!(calls.len(), 3, "{s:#}");
    for (i, x) in calls.iter().enumerate() {
        assert_eq!(x["status"], 200, "{x:#}");
        let note = x["note"].as_str().unwrap();
        assert!(
            note.starts_with(&format!("seq {} on session ", i + 1)),
            "{note}"
        );
    }

    // The same client sealing every call with seq 1: the second call is
    // the one the judge names, and the server's 409 is in the transcript.
    let report = json_report(&[
        "--client-cmd",
        &reference_shim(" --bug replay-same-seq"),
        "--only",
        id,
        "--format",
        "json",
    ]);
    let s = only_scenario(&report);
    assert_eq!(s["verdict"], "fail", "{s:#}");
    assert!(
        s["reason"].as_str().unwrap().contains("does not rise"),
        "{s:#}"
    );
    let calls = exchanges(s, "call");
    assert_eq!(calls.len(), 2, "it stops at the refused call: {s:#}");
    assert_eq!(calls[1]["status"], 409, "{s:#}");
    assert!(
        calls[1]["note"]
            .as_str()
            .unwrap()
            .contains("seq 1 on session"),
        "{s:#}"
    );

    // Without {calls} in the command the scenario is skipped, whatever
    // the client would have done.
    for cmd in ["exit 0", "exit 6"] {
        let report = json_report(&["--client-cmd", cmd, "--only", id, "--format", "json"]);
        let s = only_scenario(&report);
        assert_eq!(s["verdict"], "skip", "{cmd}: {s:#}");
        assert!(
            s["transcript"].as_array().unwrap().is_empty(),
            "nothing ran: {s:#}"
        );
    }
    // With {calls} but one call only, it fails: the client ignored it.
    let one = reference_shim("").replace("--repeat {calls}", "--repeat 1 #{calls}");
    let report = json_report(&["--client-cmd", &one, "--only", id, "--format", "json"]);
    let s = only_scenario(&report);
    assert_eq!(s["verdict"], "fail", "{s:#}");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("1 call(s); at least 3"),
        "{s:#}"
    );
}

#[test]
fn transcripts_show_each_exchange_and_never_the_key() {
    // Passing: the 409 scenario's transcript holds exactly one call, the
    // one the adversary refused, and says so.
    let report = json_report(&[
        "--client-cmd",
        &reference_shim(""),
        "--only",
        "client-session-409",
        "--format",
        "json",
    ]);
    let s = only_scenario(&report);
    assert_eq!(s["verdict"], "pass", "{s:#}");
    let calls = exchanges(s, "call");
    assert_eq!(calls.len(), 1, "{s:#}");
    assert_eq!(calls[0]["request_line"], "POST /secure/call");
    assert_eq!(calls[0]["status"], 409);
    assert!(
        calls[0]["response_body"]
            .as_str()
            .unwrap()
            .contains("secure_replay"),
        "{s:#}"
    );
    assert!(
        calls[0]["note"]
            .as_str()
            .unwrap()
            .contains("--bug replay-refused-once"),
        "{s:#}"
    );

    // Failing: the retrying client's second call is there too, and the
    // text report prints the transcript under the failure.
    let retrying = reference_shim(" --bug retry-on-409");
    let report = json_report(&[
        "--client-cmd",
        &retrying,
        "--only",
        "client-session-409",
        "--format",
        "json",
    ]);
    let s = only_scenario(&report);
    assert_eq!(s["verdict"], "fail", "{s:#}");
    let calls = exchanges(s, "call");
    assert_eq!(calls.len(), 2, "{s:#}");
    assert_eq!(calls[1]["status"], 200, "{s:#}");
    let (_, text, _) = test_client(&["--client-cmd", &retrying, "--only", "client-session-409"]);
    assert!(text.contains("> [call] POST /secure/call"), "{text}");
    assert!(text.contains("< 409 "), "{text}");
    assert!(text.contains("! seq 2 on session"), "{text}");

    // A stream is summarised by its frames; a server knob is named.
    let report = json_report(&[
        "--client-cmd",
        &reference_shim(""),
        "--only",
        "client-honest-stream",
        "--only",
        "client-fin-flipped",
        "--format",
        "json",
    ]);
    for s in report["scenarios"].as_array().unwrap() {
        let calls = exchanges(s, "call");
        assert_eq!(calls.len(), 1, "{s:#}");
        if s["id"] == "client-honest-stream" {
            let body = calls[0]["response_body"].as_str().unwrap();
            assert!(body.starts_with("stream of "), "{body}");
            assert!(!body.starts_with("stream of 0 "), "{body}");
        }
    }
}

#[test]
fn the_access_key_never_reaches_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let keyfile = dir.path().join("key");
    let junit = dir.path().join("r.xml");
    let save_key = format!("echo {{access_key}} > '{}'", keyfile.display());
    // A client that prints the key on stderr and fails: the reason quotes
    // its last line, redacted.
    let (code, out, _) = test_client(&[
        "--client-cmd",
        &format!("{save_key}; echo \"leaking {{access_key}}\" >&2; exit 3"),
        "--only",
        "client-honest-buffered",
        "--format",
        "json",
    ]);
    assert_eq!(code, 1, "{out}");
    let key = std::fs::read_to_string(&keyfile)
        .unwrap()
        .trim()
        .to_string();
    assert!(key.len() >= 8, "{key:?}");
    assert!(!out.contains(&key), "the key leaked into the reason");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let s = only_scenario(&report);
    assert!(
        s["reason"].as_str().unwrap().contains("leaking <redacted>"),
        "{s:#}"
    );
    // A client that falls back to plaintext with the key in the body: the
    // transcript shows the request, redacted, in JSON and JUnit alike.
    let (code, out, _) = test_client(&[
        "--client-cmd",
        &format!(
            "{save_key}; curl -s -X POST -d \"key={{access_key}}\" {{url}}/v1/chat >/dev/null; exit 0"
        ),
        "--only",
        "client-honest-buffered",
        "--format",
        "json",
        "--report",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    let key = std::fs::read_to_string(&keyfile)
        .unwrap()
        .trim()
        .to_string();
    let xml = std::fs::read_to_string(&junit).unwrap();
    for (name, text) in [("json", &out), ("junit", &xml)] {
        assert!(
            !text.contains(&key),
            "the key leaked into the {name} report"
        );
    }
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let s = only_scenario(&report);
    assert_eq!(s["verdict"], "fail", "{s:#}");
    let plain = exchanges(s, "plaintext");
    assert_eq!(plain.len(), 1, "{s:#}");
    assert_eq!(plain[0]["request_line"], "POST /v1/chat", "{s:#}");
    assert_eq!(plain[0]["request_body"], "key=<redacted>", "{s:#}");
    assert!(xml.contains("transcript:"), "{xml}");
    assert!(xml.contains("key=&lt;redacted&gt;"), "{xml}");
}
