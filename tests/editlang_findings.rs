//! Fuzzer findings become regression scenarios that judge the server
//! that produced them: fuzz a broken server, write each MUST finding with
//! `replay --to-scenario`, then `test --scenarios DIR` fails every one of
//! them against the broken server and passes every one against the honest
//! one. Broken servers: the reference server's fuzzer-findable `--bug`
//! knobs, and the independent Python server's `--break`s.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{describe, harness, interop_python, run, start, Running};

/// How `test` reaches a server.
struct Peer {
    url: String,
    address: String,
    key: String,
    agent: String,
}

impl Peer {
    fn of(server: &Running) -> Peer {
        Peer {
            url: server.field("url"),
            address: server.field("agentAddress"),
            key: server.field("accessKey"),
            agent: server.field("agentId"),
        }
    }
}

/// `osc-harness serve` with these knobs and session TTL.
fn reference(bugs: &[&str], ttl: &str) -> Running {
    let mut cmd = harness();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--handshake-rate", "0"])
        .args(["--session-ttl", ttl]);
    for b in bugs {
        cmd.args(["--bug", b]);
    }
    start(cmd)
}

/// The Python server with these breaks and session TTL.
fn python(python: &Path, breaks: &[&str], ttl: &str) -> Running {
    let mut cmd = Command::new(python);
    cmd.arg(support::repo("interop/python/osc_peer.py"))
        .args(["serve", "--port", "0", "--access-key", "osk-v1.interop"])
        .args(["--agent-id", "interop-agent", "--session-ttl", ttl]);
    for b in breaks {
        cmd.args(["--break", b]);
    }
    start(cmd)
}

/// Runs `fuzz` with `args`; its findings at `level`, each with its file
/// when it is a replayable case.
fn findings_at(level: &str, args: &[&str], dir: &Path) -> Vec<Option<PathBuf>> {
    let mut cmd = harness();
    cmd.args(["fuzz", "--quiet", "--findings"])
        .arg(dir.join("findings"))
        .args(args);
    let out = run(cmd);
    let stdout = support::text(&out.stdout);
    let summary: Value = stdout
        .find('{')
        .and_then(|at| serde_json::from_str(&stdout[at..]).ok())
        .unwrap_or_else(|| panic!("no JSON summary: {}", describe(&out)));
    summary["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["level"] == level)
        // A finding about the ServerHello or the first honest call is the
        // run's own (no case to replay): `None`.
        .map(|f| f["file"].as_str().map(PathBuf::from))
        .collect()
}

/// The replayable files among `findings`.
fn files(findings: &[Option<PathBuf>]) -> Vec<PathBuf> {
    findings.iter().flatten().cloned().collect()
}

/// Writes each finding as a scenario in `dir/scenarios`; their ids.
fn to_scenarios(findings: &[PathBuf], dir: &Path) -> PathBuf {
    let scenarios = dir.join("scenarios");
    for (i, f) in findings.iter().enumerate() {
        let mut cmd = harness();
        cmd.arg("replay")
            .arg(f)
            .arg("--to-scenario")
            .arg(scenarios.join(format!("fuzz-{i}.toml")));
        let out = run(cmd);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    }
    scenarios
}

/// Runs the `fuzz-*` scenarios of `scenarios` against `peer`; each one's
/// id and verdict.
fn verdicts(peer: &Peer, scenarios: &Path, extra: &[&str]) -> Vec<(String, String, Value)> {
    let report = scenarios.with_extension("report.json");
    let mut cmd = harness();
    cmd.args(["test", "--target", &peer.url])
        .args(["--agent-address", &peer.address])
        .args(["--access-key", &peer.key, "--agent-id", &peer.agent])
        .args(["--handshake-budget", "none", "--relay-origin", "on"])
        .args(["--only", "fuzz-*", "--format", "json", "--report"])
        .arg(&report)
        .arg("--scenarios")
        .arg(scenarios)
        .args(extra);
    let out = run(cmd);
    let body = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", describe(&out)));
    let report: Value = serde_json::from_str(&body).expect("report JSON");
    report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or_default().to_string(),
                s["verdict"].as_str().unwrap_or_default().to_string(),
                s.clone(),
            )
        })
        .collect()
}

/// Every scenario written from `findings` fails on `broken` and passes on
/// `honest`.
fn judged_both_ways(
    what: &str,
    findings: &[PathBuf],
    dir: &Path,
    broken: &Peer,
    honest: &Peer,
    extra: &[&str],
) {
    assert!(!findings.is_empty(), "{what}: the fuzzer found nothing");
    let scenarios = to_scenarios(findings, dir);
    let on_broken = verdicts(broken, &scenarios, extra);
    assert_eq!(on_broken.len(), findings.len(), "{what}: {on_broken:#?}");
    for (id, verdict, s) in &on_broken {
        // A scenario keeps its finding's level: a MUST fails, a SHOULD warns.
        let want = if s["level"] == "SHOULD" {
            "warn"
        } else {
            "fail"
        };
        assert_eq!(verdict, want, "{what}: {id} on the broken server: {s:#}");
    }
    for (id, verdict, s) in verdicts(honest, &scenarios, extra) {
        assert_eq!(verdict, "pass", "{what}: {id} on the honest server: {s:#}");
    }
}

/// Fuzzes `--target self --bug KNOB`, then judges the scenarios against
/// `serve --bug KNOB` and plain `serve`.
fn knob(bug: &str, fuzz_extra: &[&str], ttl: &str, test_extra: &[&str]) {
    knob_at("MUST", bug, fuzz_extra, ttl, test_extra)
}

/// [`knob`] for a knob whose findings are at `level`.
fn knob_at(level: &str, bug: &str, fuzz_extra: &[&str], ttl: &str, test_extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--target", "self", "--seed", "1", "--bug", bug];
    if !fuzz_extra.contains(&"--max-execs") {
        args.extend(["--max-execs", "500"]);
    }
    args.extend_from_slice(fuzz_extra);
    let findings = files(&findings_at(level, &args, dir.path()));
    let broken = reference(&[bug], ttl);
    let honest = reference(&[], ttl);
    judged_both_ways(
        bug,
        &findings,
        dir.path(),
        &Peer::of(&broken),
        &Peer::of(&honest),
        test_extra,
    );
}

macro_rules! knob_tests {
    ($($name:ident: $bug:literal;)*) => {$(
        #[test]
        fn $name() {
            knob($bug, &[], "600", &[]);
        }
    )*};
}

knob_tests! {
    replay_check_off: "replay-check-off";
    seq_zero_accepted: "seq-zero-accepted";
    nested_secure_allowed: "nested-secure-allowed";
    inner_auth_unchecked: "inner-auth-unchecked";
    status_outside: "status-outside";
    panic_on_empty_ct: "panic-on-empty-ct";
    panic_on_huge_seq: "panic-on-huge-seq";
    window_off_by_one: "window-off-by-one";
    mark_before_open: "mark-before-open";
    stream_drops_fin: "stream-drops-fin";
    stream_cut_mid_frame: "stream-cut-mid-frame";
    frames_reordered: "frames-reordered";
    fin_on_every_frame: "fin-on-every-frame";
}

#[test]
fn hang_on_length_lie() {
    // Waiting for promised bytes is a SHOULD (LIM-2), judged alike by the
    // fuzzer and the suite.
    knob_at(
        "SHOULD",
        "hang-on-length-lie",
        &["--slow-request-limit", "4"],
        "600",
        &[],
    );
}

#[test]
fn sessions_never_expire() {
    knob(
        "sessions-never-expire",
        // Few executions, so few sessions: on a loaded machine a long run
        // fills the store and evicts the session kept aside for the check.
        &["--self-session-ttl", "3", "--max-execs", "150"],
        "3",
        &["--max-wait", "10"],
    );
}

/// Fuzzes the Python server with `--break NAME`, then judges the scenarios
/// against it and against the Python server without the break. Returns
/// how many MUST findings there were (none: the fuzzer cannot see it).
fn python_break(name: &str, ttl: &str, fuzz_extra: &[&str]) -> Option<usize> {
    let py = interop_python()?;
    let dir = tempfile::tempdir().unwrap();
    let broken = python(py, &[name], ttl);
    let honest = python(py, &[], ttl);
    let (broken, honest) = (Peer::of(&broken), Peer::of(&honest));
    let mut args = vec![
        "--target",
        &broken.url,
        "--agent-address",
        &broken.address,
        "--access-key",
        &broken.key,
        "--agent-id",
        &broken.agent,
        "--relay-origin",
        "true",
        "--timeout",
        "10",
        "--handshake-budget",
        "0",
        "--max-execs",
        "400",
        "--seed",
        "5",
    ];
    args.extend_from_slice(fuzz_extra);
    let all = findings_at("MUST", &args, dir.path());
    let findings = files(&all);
    if !findings.is_empty() {
        judged_both_ways(
            name,
            &findings,
            dir.path(),
            &broken,
            &honest,
            &["--max-wait", "10"],
        );
    }
    Some(all.len())
}

macro_rules! python_tests {
    ($($name:ident: $break:literal, $ttl:literal;)*) => {$(
        #[test]
        #[cfg_attr(
            osc_skip_interop,
            ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
        )]
        fn $name() {
            if let Some(n) = python_break($break, $ttl, &[]) {
                assert!(n > 0, "--break {}: the fuzzer found nothing", $break);
            }
        }
    )*};
}

python_tests! {
    python_no_replay_check: "no-replay-check", "600";
    python_drop_stream_fin: "drop-stream-fin", "600";
    python_status_outside: "status-outside", "600";
    python_no_expiry: "no-expiry", "3";
    python_session_key_responses: "session-key-responses", "600";
    python_mark_before_decrypt: "mark-before-decrypt", "600";
    python_no_inner_auth: "no-inner-auth", "600";
    python_nested_secure: "nested-secure", "600";
    python_no_426: "no-426", "600";
    python_relay_marker_ignored: "relay-marker-ignored", "600";
}

/// The breaks in the handshake's identity and key freshness: the fuzzer
/// judges every ServerHello (HS-1) and the freshness of keys, sids and
/// signatures across its sessions (HS-3), so a run finds each as a MUST,
/// and any finding that is a case still becomes a scenario that fails
/// broken and passes fixed.
#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn python_handshake_breaks_are_found() {
    for name in ["static-ephemeral", "sign-other-key"] {
        if let Some(n) = python_break(name, "600", &[]) {
            assert!(n > 0, "--break {name}: the fuzzer found nothing");
        }
    }
}
