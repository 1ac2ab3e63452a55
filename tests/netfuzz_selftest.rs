//! The network fuzzer against the reference server: silent on the honest
//! one, and each fuzzer-findable knob found, saved, replayed and turned
//! into a scenario. Runs are bounded by execution count, except the one
//! whose subject is what a timed run does with the time it has left; no
//! test asserts how fast anything ran.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{exec, harness};

fn fuzz(dir: &Path, bugs: &[&str], execs: u64, seed: u64, extra: &[&str]) -> (i32, Value) {
    let (code, summary, _) = fuzz_stderr(dir, bugs, execs, seed, extra);
    (code, summary)
}

/// [`fuzz`], with the run's stderr too.
fn fuzz_stderr(
    dir: &Path,
    bugs: &[&str],
    execs: u64,
    seed: u64,
    extra: &[&str],
) -> (i32, Value, String) {
    let mut cmd = harness();
    cmd.args(["fuzz", "--target", "self", "--quiet", "--seed"])
        .arg(seed.to_string())
        .arg("--max-execs")
        .arg(execs.to_string())
        .arg("--findings")
        .arg(dir.join("findings"));
    for b in bugs {
        cmd.args(["--bug", b]);
    }
    cmd.args(extra);
    let (code, out, err) = exec(&mut cmd);
    let summary: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("summary is JSON ({e}): {out}\nstderr: {err}"));
    (code, summary, err)
}

fn findings(summary: &Value) -> Vec<(String, String)> {
    summary["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .map(|f| {
            (
                f["signature"].as_str().unwrap_or_default().to_string(),
                f["file"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn honest_self_has_no_findings() {
    let dir = tempfile::tempdir().unwrap();
    // A generous timeout: a slow shared machine must not look like a hang.
    let (code, summary) = fuzz(dir.path(), &[], 400, 7, &["--timeout", "10"]);
    assert_eq!(summary["execs"], 400, "{summary}");
    assert_eq!(findings(&summary), vec![], "false alarms: {summary}");
    assert_eq!(summary["target_died_at"], Value::Null);
    assert_eq!(code, 0);
    assert!(summary["corpus_size"].as_u64().unwrap() > 3, "{summary}");
}

/// Fuzzes `bug`, expects a finding whose signature starts with `expected`,
/// and checks `replay` on its file: STILL FAILING with the knob, FIXED
/// without. Returns the finding's path.
fn knob_found(bug: &str, expected: &str, dir: &Path) -> PathBuf {
    knob_found_with(bug, expected, dir, &[])
}

/// [`knob_found`] with extra flags for the run and both replays.
fn knob_found_with(bug: &str, expected: &str, dir: &Path, extra: &[&str]) -> PathBuf {
    knob_found_at("MUST", bug, expected, dir, extra)
}

/// [`knob_found_with`] for a finding at `level`: only a MUST fails the run
/// (exit 1, listed under `failures`); a SHOULD is a warning (exit 0).
fn knob_found_at(level: &str, bug: &str, expected: &str, dir: &Path, extra: &[&str]) -> PathBuf {
    let must = level == "MUST";
    let (code, summary) = fuzz(dir, &[bug], 500, 1, extra);
    assert_eq!(
        code,
        i32::from(must),
        "{bug}: {level} findings mean exit {}: {summary}",
        i32::from(must)
    );
    let all = findings(&summary);
    let (sig, file) = all
        .iter()
        .find(|(s, _)| s.starts_with(expected))
        .unwrap_or_else(|| panic!("{bug}: no {expected} finding in {all:?}"))
        .clone();
    let bucket = summary["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["signature"] == sig.as_str())
        .unwrap();
    assert_eq!(bucket["level"], level, "{bucket}");
    assert!(
        summary[if must { "failures" } else { "warnings" }]
            .as_array()
            .unwrap()
            .contains(&Value::from(sig.as_str())),
        "{summary}"
    );
    let path = PathBuf::from(&file);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(saved["seed"], 1);
    assert_eq!(saved["level"], level, "{saved}");
    assert!(saved["requirement"].as_str().is_some(), "{saved}");
    assert!(!saved["steps"].as_array().unwrap().is_empty());
    assert!(!saved["exchanges"].as_array().unwrap().is_empty());

    let (code, out, err) = exec(
        harness()
            .arg("replay")
            .arg(&path)
            .args(["--target", "self", "--bug", bug])
            .args(extra),
    );
    assert_eq!(code, 1, "{bug}: replay against the knob: {out} {err}");
    assert!(out.starts_with("STILL FAILING"), "{out}");
    assert!(out.contains(&sig), "{out}");

    let (code, out, err) = exec(
        harness()
            .arg("replay")
            .arg(&path)
            .args(["--target", "self"])
            .args(extra),
    );
    assert_eq!(code, 0, "{bug}: replay against honest self: {out} {err}");
    assert!(out.starts_with("FIXED"), "{out}");
    path
}

macro_rules! knob_tests {
    ($($name:ident: $bug:literal => $expected:literal;)*) => {$(
        #[test]
        fn $name() {
            let dir = tempfile::tempdir().unwrap();
            knob_found($bug, $expected, dir.path());
        }
    )*};
}

knob_tests! {
    finds_replay_check_off: "replay-check-off" => "accepted-invalid/stateful/replay";
    finds_seq_zero_accepted: "seq-zero-accepted" => "accepted-invalid/stateful/seq-zero";
    finds_nested_secure_allowed: "nested-secure-allowed" => "accepted-invalid/inner/path-nesting";
    finds_inner_auth_unchecked: "inner-auth-unchecked" => "inner-auth-bypass/inner/authorization";
    finds_status_outside: "status-outside" => "undocumented-body/";
    finds_panic_on_empty_ct: "panic-on-empty-ct" => "dropped-connection/envelope/";
    finds_panic_on_huge_seq: "panic-on-huge-seq" => "dropped-connection/stateful/seq-edge";
    finds_window_off_by_one: "window-off-by-one" => "accepted-invalid/stateful/seq-too-old";
    finds_mark_before_open: "mark-before-open" => "refused-valid/stateful/seq-reuse";
    finds_stream_drops_fin: "stream-drops-fin" => "missing-fin/valid/dispatch";
    finds_stream_cut_mid_frame: "stream-cut-mid-frame" => "missing-fin/valid/dispatch";
    finds_frames_reordered: "frames-reordered" => "frame-not-opening/valid/dispatch";
    finds_fin_on_every_frame: "fin-on-every-frame" => "frame-not-opening/valid/dispatch";
}

/// A body shorter than its Content-Length, never given up on: held past
/// `--slow-request-limit` (small here, to keep the test short) it is a
/// held request, a SHOULD finding (LIM-2), as the suite judges it.
#[test]
fn finds_hang_on_length_lie() {
    let dir = tempfile::tempdir().unwrap();
    knob_found_at(
        "SHOULD",
        "hang-on-length-lie",
        "held-request/framing/",
        dir.path(),
        &["--slow-request-limit", "4"],
    );
}

#[test]
fn replay_check_off_is_found_on_a_reused_seq_too() {
    let dir = tempfile::tempdir().unwrap();
    // One worker: which cases a seed makes depends on the worker count.
    let (code, summary) = fuzz(
        dir.path(),
        &["replay-check-off"],
        300,
        1,
        &["--concurrency", "1"],
    );
    assert_eq!(code, 1, "{summary}");
    let sigs: Vec<String> = findings(&summary).into_iter().map(|f| f.0).collect();
    for want in [
        "accepted-invalid/stateful/seq-reuse",
        "accepted-invalid/stateful/seq-too-old",
    ] {
        assert!(sigs.iter().any(|s| s == want), "no {want} in {sigs:?}");
    }
}

/// The call after expiry: found with a short TTL and the knob, replayed
/// only where the session expires within `--expiry-wait`.
#[test]
fn an_expired_session_that_still_serves_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let ttl = ["--self-session-ttl", "3"];
    let (code, summary) = fuzz(dir.path(), &["sessions-never-expire"], 150, 1, &ttl);
    assert_eq!(code, 1, "{summary}");
    let all = findings(&summary);
    let (_, file) = all
        .iter()
        .find(|(s, _)| s == "accepted-invalid/stateful/expired")
        .unwrap_or_else(|| panic!("no expiry finding in {all:?}"));
    let replay = |extra: &[&str]| {
        let mut cmd = harness();
        cmd.arg("replay").arg(file).args(["--target", "self"]);
        cmd.args(extra);
        exec(&mut cmd)
    };
    let (code, out, _) = replay(&["--self-session-ttl", "3", "--bug", "sessions-never-expire"]);
    assert_eq!((code, out.starts_with("STILL FAILING")), (1, true), "{out}");
    let (code, out, _) = replay(&["--self-session-ttl", "3"]);
    assert_eq!((code, out.starts_with("FIXED")), (0, true), "{out}");
    // A session that outlives --expiry-wait: nothing is judged, and it is
    // never called FIXED.
    let (code, out, err) = replay(&[
        "--self-session-ttl",
        "600",
        "--bug",
        "sessions-never-expire",
    ]);
    assert_eq!(code, 2, "{out} {err}");
    assert!(err.contains("not judged"), "{err}");
    assert!(!out.contains("FIXED"), "{out}");

    let honest = tempfile::tempdir().unwrap();
    let (code, summary) = fuzz(honest.path(), &[], 150, 1, &ttl);
    assert_eq!(findings(&summary), vec![], "false alarms: {summary}");
    assert_eq!(summary["skipped"], 0, "{summary}");
    assert_eq!(code, 0);
}

/// A timed run against `self` with a 6 s TTL and `--expiry-wait 2`: each
/// session lives beyond the wait, but within the run's time left, so the
/// session kept aside is called after expiry (twice in 20 s: a hit and its
/// confirmation on a fresh session). The budget keeps the sessions opened
/// per TTL under the store's 256, so the one kept aside is not evicted.
fn timed_expiry_run(dir: &Path, bugs: &[&str], budget: &str) -> (i32, Value) {
    let timed = [
        "--self-session-ttl",
        "6",
        "--expiry-wait",
        "2",
        "--duration",
        "20s",
        "--concurrency",
        "1",
        "--handshake-budget",
        budget,
    ];
    fuzz(dir, bugs, u64::MAX, 1, &timed)
}

#[test]
fn a_timed_run_checks_expiry_on_a_session_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (code, summary) = timed_expiry_run(dir.path(), &["sessions-never-expire"], "60/6");
    assert_eq!(code, 1, "{summary}");
    assert!(summary["expiry_checks"].as_u64().unwrap() >= 2, "{summary}");
    let all = findings(&summary);
    let (_, file) = all
        .iter()
        .find(|(s, _)| s == "accepted-invalid/stateful/expired")
        .unwrap_or_else(|| panic!("no expiry finding in {summary}"));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(saved["steps"][0]["do"], "call-after-expiry", "{saved}");
}

#[test]
fn a_timed_run_on_the_honest_server_checks_expiry_and_finds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (code, summary) = timed_expiry_run(dir.path(), &[], "60/6");
    assert_eq!(findings(&summary), vec![], "false alarms: {summary}");
    assert!(summary["expiry_checks"].as_u64().unwrap() >= 2, "{summary}");
    assert_eq!(summary["unconfirmed"], 0, "{summary}");
    assert_eq!(code, 0);
}

#[test]
fn an_evicted_session_is_not_judged_and_the_run_says_so() {
    // No budget: the sessions opened in 20 s (thousands, at hundreds a
    // second) push the one kept aside out of the 256-session store long
    // before it expires. The knob would make any judged call after expiry
    // a finding.
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        "--self-session-ttl",
        "20",
        "--expiry-wait",
        "2",
        "--duration",
        "25s",
    ];
    let (_, summary, err) =
        fuzz_stderr(dir.path(), &["sessions-never-expire"], u64::MAX, 1, &extra);
    assert_eq!(summary["expiry_checks"], 0, "{summary}");
    assert!(
        summary["expiry_evicted"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    assert!(err.contains("no call after expiry was judged"), "{err}");
}

#[test]
fn one_call_waits_for_a_session_expiry_not_a_burst() {
    // One session serves these 1500 cases, and every stream step "call
    // after expiry" on it would wait for the same instant (8 s TTL, within
    // --expiry-wait 10). Only the first may wait; the others are skipped,
    // so the target never gets them all at once.
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--self-session-ttl", "8", "--expiry-wait", "10"];
    let (code, summary) = fuzz(dir.path(), &[], 1500, 1, &extra);
    assert!(summary["skipped"].as_u64().unwrap() >= 2, "{summary}");
    assert_eq!(findings(&summary), vec![], "{summary}");
    assert_eq!(code, 0);
}

#[test]
fn a_session_expiring_beyond_the_wait_is_skipped_not_judged() {
    let dir = tempfile::tempdir().unwrap();
    // The knob would make every judged call after expiry a finding.
    let (code, summary) = fuzz(
        dir.path(),
        &["sessions-never-expire"],
        300,
        1,
        &["--expiry-wait", "1"],
    );
    assert!(summary["skipped"].as_u64().unwrap() > 0, "{summary}");
    assert!(
        findings(&summary)
            .iter()
            .all(|(s, _)| !s.ends_with("/expired")),
        "{summary}"
    );
    assert_eq!(code, 0, "{summary}");
}

#[test]
fn a_finding_becomes_a_scenario_the_suite_runs() {
    let dir = tempfile::tempdir().unwrap();
    let finding = knob_found(
        "replay-check-off",
        "accepted-invalid/stateful/replay",
        dir.path(),
    );
    let scenarios = dir.path().join("scenarios");
    let toml = scenarios.join("fuzz-replay.toml");
    write_scenario(&finding, &toml);
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(text.contains("do = \"resend\""), "{text}");
    assert!(text.contains("status = 409"), "{text}");

    // The honest server passes it ...
    let (code, out, err) = exec(
        harness()
            .args([
                "test",
                "--target",
                "self",
                "--only",
                "fuzz-*",
                "--scenarios",
            ])
            .arg(&scenarios),
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("1 pass"), "{out}");

    // ... and a server with the knob fails it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(async {
        let mut config = osc_harness::server::ServerConfig::generated();
        config.handshake_rate = None;
        config.bugs.insert(osc_harness::server::Bug::ReplayCheckOff);
        osc_harness::server::spawn(config).await.unwrap()
    });
    let (code, out, err) = exec(
        harness()
            .args([
                "test",
                "--target",
                &server.url,
                "--only",
                "fuzz-*",
                "--handshake-budget",
                "none",
            ])
            .args(["--agent-address", &server.agent_address.to_string()])
            .args(["--access-key", &server.access_key])
            .args(["--agent-id", &server.agent_id])
            .arg("--scenarios")
            .arg(&scenarios),
    );
    assert_ne!(
        code, 0,
        "the knobbed server must fail the regression scenario: {out} {err}"
    );
    assert!(out.contains("1 fail"), "{out}");
    rt.block_on(server.shutdown());
}

#[test]
fn framing_findings_become_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let finding = knob_found_at(
        "SHOULD",
        "hang-on-length-lie",
        "held-request/framing/",
        dir.path(),
        &["--slow-request-limit", "4"],
    );
    let toml = dir.path().join("x.toml");
    write_scenario(&finding, &toml);
    // Judged in both directions by tests/editlang_findings.rs.
    let text = std::fs::read_to_string(&toml).unwrap();
    let written: toml::Value = toml::from_str(&text).expect("the scenario is TOML");
    let steps = written["step"].as_array().expect("steps");
    let framed = steps
        .iter()
        .filter_map(|step| step.get("framing")?.get("framing")?.as_str())
        .collect::<Vec<_>>();
    assert_eq!(framed.len(), 1, "one framed step: {text}");
    // The framing written is the one the finding's signature names.
    assert!(
        text.contains(&format!("held-request/framing/{}", framed[0])),
        "{text}"
    );
    assert!(text.contains("alive = true"), "{text}");
}

#[test]
fn the_corpus_carries_over_between_runs() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let corpus_arg = corpus.to_str().unwrap();
    let (code, first) = fuzz(
        dir.path(),
        &[],
        150,
        3,
        &["--corpus", corpus_arg, "--timeout", "10"],
    );
    assert_eq!(code, 0, "{first}");
    let saved = std::fs::read_dir(&corpus).unwrap().count();
    assert!(saved > 3, "new response shapes are saved: {saved}");
    assert_eq!(saved as u64, first["corpus_size"].as_u64().unwrap());
    // The second run starts from the saved inputs: nothing new is saved
    // for shapes it already knows, and nothing is lost.
    let (code, second) = fuzz(
        dir.path(),
        &[],
        150,
        4,
        &["--corpus", corpus_arg, "--timeout", "10"],
    );
    assert_eq!(code, 0, "{second}");
    assert!(std::fs::read_dir(&corpus).unwrap().count() >= saved);
    assert!(
        second["corpus_size"].as_u64().unwrap() >= saved as u64,
        "{second}"
    );
}

#[test]
fn same_seed_same_findings() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (_, x) = fuzz(a.path(), &["inner-auth-unchecked"], 120, 9, &[]);
    let (_, y) = fuzz(b.path(), &["inner-auth-unchecked"], 120, 9, &[]);
    let sigs = |v: &Value| findings(v).into_iter().map(|f| f.0).collect::<Vec<_>>();
    assert_eq!(sigs(&x), sigs(&y));
    assert!(!sigs(&x).is_empty());
}

#[test]
fn measure_prints_both_rates() {
    let (code, out, err) = exec(harness().args([
        "fuzz",
        "--target",
        "self",
        "--measure",
        "--duration",
        "1s",
        "--quiet",
    ]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rounds"], 5, "{v}");
    assert_eq!(v["bench_buffered_1kib"]["errors"], 0, "{v}");
    assert!(v["fuzz"]["execs"].as_u64().unwrap() > 0, "{v}");
    assert!(
        v["bench_buffered_1kib"]["calls"].as_u64().unwrap() > 0,
        "{v}"
    );
    assert_eq!(v["fuzz"]["findings"], serde_json::json!([]), "{v}");
    let ratio = v["ratio"].as_f64().unwrap();
    let (f, b) = (
        v["fuzz"]["execs_per_sec"].as_f64().unwrap(),
        v["bench_buffered_1kib"]["calls_per_sec"].as_f64().unwrap(),
    );
    assert!((ratio - f / b).abs() < 1e-9, "{v}");
    assert!(err.contains("ratio"), "{err}");
}

#[test]
fn a_seeded_run_with_several_workers_runs_the_same_cases() {
    // Three workers split --max-execs by case number; each draws from its
    // own seeded streams, so two runs find the same and run as many.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let extra = ["--concurrency", "3"];
    let (_, x) = fuzz(a.path(), &["inner-auth-unchecked"], 150, 9, &extra);
    let (_, y) = fuzz(b.path(), &["inner-auth-unchecked"], 150, 9, &extra);
    let sigs = |v: &Value| findings(v).into_iter().map(|f| f.0).collect::<Vec<_>>();
    assert_eq!(sigs(&x), sigs(&y));
    assert!(!sigs(&x).is_empty(), "{x}");
    assert_eq!(x["execs"], 150, "{x}");
    assert_eq!(y["execs"], 150, "{y}");
}

#[test]
fn a_tight_budget_leaves_mutated_hellos_out_instead_of_stalling() {
    // Two handshakes a minute: the worker's session and the one kept aside
    // for the expiry check take both, so a mutated hello would wait a
    // minute for the budget. The stream must go on without it.
    let dir = tempfile::tempdir().unwrap();
    let (code, summary) = fuzz(dir.path(), &[], 400, 7, &["--handshake-budget", "2/60"]);
    assert_eq!(summary["execs"], 400, "{summary}");
    assert!(
        summary["hellos_deferred"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert!(summary["handshakes"].as_u64().unwrap() <= 2, "{summary}");
    assert_eq!(findings(&summary), vec![], "{summary}");
    assert_eq!(code, 0);
}

#[test]
fn a_rate_limited_target_is_waited_for_not_reported() {
    // A URL target that allows 2 handshakes per 4 s, and a budget that
    // ignores that: the fuzzer must back off on 429, never report it. The
    // seeded stream makes at least four handshakes in its first 60 cases,
    // so the limit is met whatever the machine's speed.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(async {
        let mut config = osc_harness::server::ServerConfig::generated();
        config.handshake_rate = Some((2, 4));
        // Shorter than the fuzzer's --timeout, as the docs ask: a target
        // that gives up on a lying body later than that looks hung.
        config.body_read_timeout = std::time::Duration::from_secs(1);
        osc_harness::server::spawn(config).await.unwrap()
    });
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = exec(
        harness()
            .args(["fuzz", "--target", &server.url, "--quiet", "--seed", "2"])
            .args(["--agent-address", &server.agent_address.to_string()])
            .args(["--access-key", &server.access_key])
            .args(["--agent-id", &server.agent_id])
            .args(["--relay-origin", "true", "--handshake-budget", "0"])
            .args(["--max-execs", "60", "--timeout", "10"])
            .arg("--findings")
            .arg(dir.path().join("findings")),
    );
    let summary: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    assert_eq!(findings(&summary), vec![], "{summary}");
    assert_eq!(summary["execs"], 60, "{summary}");
    assert!(
        summary["rate_limited"].as_u64().unwrap() >= 1,
        "the limit was never met: {summary}"
    );
    assert_eq!(summary["target_died_at"], Value::Null, "{summary}");
    assert_eq!(code, 0);
    rt.block_on(server.shutdown());
}

/// `replay FINDING --to-scenario TOML`, which must succeed.
fn write_scenario(finding: &Path, toml: &Path) {
    let (code, out, err) = exec(
        harness()
            .arg("replay")
            .arg(finding)
            .arg("--to-scenario")
            .arg(toml),
    );
    assert_eq!(code, 0, "{out} {err}");
}
