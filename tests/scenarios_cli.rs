//! `osc-harness test` as a user runs it: exit codes, selection, malformed
//! scenario files, expectations, and a URL target on loopback.

mod support;

use std::collections::BTreeSet;
use std::process::Output;

use osc_harness::server::{self, Bug, ServerConfig};

use support::text;

fn harness(args: &[&str]) -> Output {
    support::harness()
        .args(args)
        .output()
        .expect("run osc-harness")
}

/// Writes `toml` as `dir/name`, lists the scenarios of `dir`, expects the
/// usage error (exit 2) a malformed file gets, and returns its message.
fn listing_error(dir: &std::path::Path, name: &str, toml: &str) -> String {
    std::fs::write(dir.join(name), toml).unwrap();
    let out = harness(&["test", "--list", "--scenarios", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    text(&out.stderr)
}

#[test]
fn a_selection_matching_nothing_is_a_usage_error() {
    let out = harness(&["test", "--target", "self", "--only", "no-such-scenario"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no scenario matched"));
}

#[test]
fn list_filters_by_category_and_requirement() {
    let out = harness(&["test", "--list", "--only", "CALL-3"]);
    assert_eq!(out.status.code(), Some(0));
    let listed = text(&out.stdout);
    assert!(listed.contains("replay-window"));
    assert!(!listed.contains("mitm-version-2"));
}

#[test]
fn coverage_leaves_no_must_unchecked() {
    let out = harness(&["test", "--coverage"]);
    assert_eq!(out.status.code(), Some(0));
    let table = text(&out.stdout);
    assert!(!table.contains("UNCHECKED"), "{table}");
    assert!(table.contains("CALL-3"));
}

#[test]
fn a_malformed_scenario_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let err = listing_error(
        dir.path(),
        "broken.toml",
        "id = \"broken\"\ntitle = \"t\"\ncategory = \"x\"\nlevel = \"MUST\"\nrequirements = [\"CALL-3\"]\n\n[[step]]\ndo = \"call\"\nsqe = 3\n",
    );
    assert!(err.contains("broken.toml:9"), "{err}");
    assert!(err.contains("sqe"), "{err}");

    let err = listing_error(
        dir.path(),
        "broken.toml",
        "id = \"broken\"\ntitle = \"t\"\ncategory = \"x\"\nlevel = \"MUST\"\nrequirements = [\"NOPE-1\"]\n\n[[step]]\ndo = \"call\"\n",
    );
    assert!(
        err.contains("broken.toml:5") && err.contains("requirements"),
        "{err}"
    );
}

#[test]
fn a_user_scenario_from_a_directory_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("custom.toml"),
        r#"
id = "custom-health"
title = "Health through the channel"
category = "custom"
level = "MUST"
requirements = ["GATE-4"]

[[step]]
do = "handshake"

[[step]]
do = "call"
path = "/health"
expect = { status = 200, inner_status = 200, frames = 1, fin = true }
"#,
    )
    .unwrap();
    let out = harness(&[
        "test",
        "--target",
        "self",
        "--scenarios",
        dir.path().to_str().unwrap(),
        "--only",
        "custom",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("pass custom-health"));

    let err = listing_error(
        dir.path(),
        "custom.toml",
        "id = \"c\"\ntitle = \"t\"\ncategory = \"x\"\nlevel = \"MUST\"\nrequirements = [\"GATE-4\"]\n\n[[step]]\npath = \"/health\"\n",
    );
    assert!(
        err.contains("custom.toml:7") && err.contains("`do`"),
        "{err}"
    );
}

#[test]
fn an_unreachable_target_exits_3() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}");
    let out = harness(&[
        "test",
        "--target",
        &url,
        "--agent-address",
        "0x331565e19602986634610f4B33Ff7ad182860036",
        "--access-key",
        "osk-v1.x",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("unreachable"));
}

#[test]
fn a_silent_target_exits_3_without_hanging() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let out = harness(&[
        "test",
        "--target",
        &url,
        "--agent-address",
        "0x331565e19602986634610f4B33Ff7ad182860036",
        "--access-key",
        "osk-v1.x",
        "--timeout",
        "1",
    ]);
    drop(listener);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("went quiet"),
        "{}",
        text(&out.stderr)
    );
}

async fn serve(bugs: &[Bug]) -> server::RunningServer {
    let mut config = ServerConfig::generated();
    config.handshake_rate = None;
    config.bugs = bugs.iter().copied().collect::<BTreeSet<_>>();
    server::spawn(config).await.unwrap()
}

fn url_args(s: &server::RunningServer) -> Vec<String> {
    let mut args = support::target_args("test", s);
    args.extend(["--agent-id", &s.agent_id, "--handshake-budget", "none"].map(String::from));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_target_passes_fails_and_adopts_expectations() {
    let honest = serve(&[]).await;
    let mut args = url_args(&honest);
    args.extend(["--only", "replay-*", "--format", "json"].map(String::from));
    let out = tokio::task::spawn_blocking(move || {
        harness(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let doc: serde_json::Value = support::stdout_json(&out);
    assert_eq!(doc["schema"], "osc-harness/test-report/v1");
    assert!(doc["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["verdict"] == "pass"));
    assert!(!text(&out.stdout).contains(&honest.access_key));

    let broken = serve(&[Bug::SeqZeroAccepted]).await;
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("expect.toml");
    let junit = dir.path().join("report.xml");
    let mut args = url_args(&broken);
    args.extend(["--only", "replay-seq-zero"].map(String::from));
    args.extend(["--write-expect".to_string(), expect.display().to_string()]);
    args.extend(["--report".to_string(), junit.display().to_string()]);
    let run = args.clone();
    let out = tokio::task::spawn_blocking(move || {
        harness(&run.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out.stdout);
    assert!(shown.contains("FAIL replay-seq-zero"), "{shown}");
    assert!(
        shown.contains("--access-key <redacted>") && shown.contains("--only replay-seq-zero"),
        "{shown}"
    );
    assert!(!shown.contains(&broken.access_key));
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("<failure"));

    // The same failure, now known, keeps the run green.
    let mut args = url_args(&broken);
    args.extend(["--only", "replay-seq-zero"].map(String::from));
    args.extend(["--expect".to_string(), expect.display().to_string()]);
    let run = args.clone();
    let out = tokio::task::spawn_blocking(move || {
        harness(&run.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // Against the honest server the known failure now passes: that fails the run.
    let mut args = url_args(&honest);
    args.extend(["--only", "replay-seq-zero"].map(String::from));
    args.extend(["--expect".to_string(), expect.display().to_string()]);
    let out = tokio::task::spawn_blocking(move || {
        harness(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("now passes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_echoing_the_key_does_not_leak_it_into_reports() {
    // Without the 426 gate the demo app executes the plaintext run and
    // echoes its headers, Authorization included.
    let broken = serve(&[Bug::No426Gate]).await;
    let key = broken.access_key.clone();
    let mut args = url_args(&broken);
    args.extend(["--only", "gate-plain-run-426", "--format", "json"].map(String::from));
    let out = tokio::task::spawn_blocking(move || {
        harness(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json = text(&out.stdout);
    assert!(json.contains("\"verdict\": \"fail\""), "{json}");
    assert!(!json.contains(&key), "the access key leaked: {json}");
}

/// `serve` as its own process (its default trusts loopback callers unless
/// `extra` says otherwise), and the `test` arguments that reach it.
fn served(extra: &[&str]) -> (support::Running, Vec<String>) {
    support::served_for_test("127.0.0.1:0", extra, "gate-loopback-plaintext")
}

/// The GATE-2 scenario's verdict and the run's exit code.
fn gate2(args: &[String], extra: &[&str]) -> (Option<i32>, String) {
    let mut cmd = support::harness();
    cmd.args(args).args(extra);
    let out = support::run(cmd);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("report JSON ({e}): {}", support::describe(&out)));
    let scenario = doc["scenarios"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["id"] == "gate-loopback-plaintext"))
        .unwrap_or_else(|| panic!("no GATE-2 scenario: {doc:#}"));
    (
        out.status.code(),
        scenario["verdict"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn trusts_loopback_runs_gate2_against_a_url_target() {
    let (_honest, args) = served(&[]);
    assert_eq!(gate2(&args, &[]), (Some(0), "skip".into()), "unknown trust");
    assert_eq!(
        gate2(&args, &["--trusts-loopback"]),
        (Some(0), "pass".into()),
        "a loopback-trusting serve runs plaintext for an unmarked caller"
    );
    // A target that does not trust loopback although the flag says it
    // does: the scenario runs and fails rather than passing vacuously.
    let (_untrusting, args) = served(&["--trust-loopback", "false"]);
    assert_eq!(
        gate2(&args, &["--trusts-loopback"]),
        (Some(1), "fail".into())
    );
}

/// The report's entry for scenario `id`.
fn scenario_entry(out: &Output, id: &str) -> serde_json::Value {
    let doc = support::stdout_json(out);
    doc["scenarios"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["id"] == id).cloned())
        .unwrap_or_else(|| panic!("no {id} in {doc:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rerun_line_reproduces_the_target_flags() {
    let broken = serve(&[Bug::SeqZeroAccepted]).await;
    let mut args = url_args(&broken);
    args.extend(
        [
            "--via-relay",
            "--timeout",
            "7",
            "--only",
            "replay-seq-zero",
            "--format",
            "json",
        ]
        .map(String::from),
    );
    let out = tokio::task::spawn_blocking(move || {
        harness(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    let entry = scenario_entry(&out, "replay-seq-zero");
    assert_eq!(entry["verdict"], "fail", "{entry:#}");
    let repro = entry["repro"].as_str().unwrap();
    for flag in [
        "--via-relay",
        "--timeout 7",
        "--handshake-budget none",
        "--access-key <redacted>",
        &format!("--agent-id {}", broken.agent_id),
        "--only replay-seq-zero",
    ] {
        assert!(repro.contains(flag), "{flag} missing: {repro}");
    }
    assert!(!repro.contains("--relay-origin"), "{repro}");
    assert!(!repro.contains(&broken.access_key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_outlived_by_the_budget_wait_is_never_judged() {
    // The budget makes the second handshake wait longer than the first
    // session lives: the step on that session must not be sent (and judged
    // against the 401 it would get); with no handshake to spare for a fresh
    // session, the scenario is inconclusive.
    let mut config = ServerConfig::generated();
    config.handshake_rate = None;
    config.session_ttl_secs = 2;
    let short = server::spawn(config).await.unwrap();
    let mut args = support::target_args("test", &short);
    args.extend(
        [
            "--agent-id",
            &short.agent_id,
            "--handshake-budget",
            "1/3",
            "--only",
            "replay-transplant",
            "--format",
            "json",
        ]
        .map(String::from),
    );
    let out = tokio::task::spawn_blocking(move || {
        harness(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    let entry = scenario_entry(&out, "replay-transplant");
    assert_eq!(entry["verdict"], "skip", "{entry:#}");
    assert!(
        entry["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("inconclusive"),
        "{entry:#}"
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::describe(&out));
}
