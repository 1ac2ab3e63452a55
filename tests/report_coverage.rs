//! Skips and coverage as a user meets them: a target on a non-loopback
//! address runs GATE-1 with no flag, and every report of `test` and
//! `test-client` states how many MUST requirements the run exercised.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};

use osc_harness::scenarios::runner::{caller_is_remote, remote_by_addresses};
use osc_harness::transport::Target;
use serde_json::Value;

use support::{describe, text};

/// An address of this machine that is not loopback, if it has one: the
/// source address the kernel picks towards a documentation address (a UDP
/// `connect` sends nothing), kept only if a listener can bind it.
fn own_non_loopback_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(198, 51, 100, 1), 9)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    if !remote_by_addresses(&[ip]) {
        return None;
    }
    TcpListener::bind((ip, 0)).ok()?;
    Some(ip)
}

/// `serve` on `listen` (with `extra` flags) and the `test` arguments that
/// reach it with no `--relay-origin` flag.
fn served(listen: &str, extra: &[&str]) -> (support::Running, Vec<String>) {
    support::served_for_test(listen, extra, "gate-plain-run-426")
}

/// The shim that drives the reference client (`osc-harness call`), as the
/// client self-test does.
fn reference_shim() -> String {
    let exe = support::EXE.replace('\'', r"'\''");
    format!(
        "'{exe}' call --target {{url}} --agent-address {{address}} --access-key {{access_key}} \
         --path {{path}} --repeat {{calls}} --timeout 5 --max-stream-secs 2 \
         $([ {{mode}} = stream ] && echo '--stream --data {{}}')"
    )
}

/// `test-client` with the reference client on the baseline only, plus `extra`.
fn baseline_only(extra: &[&str]) -> std::process::Output {
    let mut cmd = support::harness();
    cmd.args([
        "test-client",
        "--client-cmd",
        &reference_shim(),
        "--only",
        "client-honest-buffered",
    ])
    .args(extra);
    support::run(cmd)
}

/// Runs the harness; returns its exit code and its JSON report.
fn json_run(args: &[String]) -> (Option<i32>, Value) {
    let mut cmd = support::harness();
    cmd.args(args);
    let out = support::run(cmd);
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(&out)));
    (out.status.code(), json)
}

fn only_verdict(report: &Value) -> (String, String) {
    let s = &report["scenarios"][0];
    (
        s["verdict"].as_str().unwrap_or_default().to_owned(),
        s["reason"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn remote_is_decided_from_the_address_the_target_sees() {
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    assert!(remote_by_addresses(&[v4(192, 0, 2, 2)]));
    assert!(remote_by_addresses(&[v4(10, 0, 0, 1), v4(203, 0, 113, 9)]));
    // Every 127/8 address, ::1 and IPv4-mapped loopback are this machine.
    assert!(!remote_by_addresses(&[v4(127, 0, 0, 1)]));
    assert!(!remote_by_addresses(&[v4(127, 0, 0, 2)]));
    assert!(!remote_by_addresses(&[IpAddr::V6(Ipv6Addr::LOCALHOST)]));
    assert!(!remote_by_addresses(&[IpAddr::V6(
        Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped()
    )]));
    // A connection to the unspecified address arrives from loopback.
    assert!(!remote_by_addresses(&[v4(0, 0, 0, 0)]));
    // One loopback address among several, or none at all, is not remote.
    assert!(!remote_by_addresses(&[v4(192, 0, 2, 2), v4(127, 0, 0, 1)]));
    assert!(!remote_by_addresses(&[]));
}

#[tokio::test]
async fn a_target_url_is_remote_by_its_resolved_address_or_a_relay() {
    let within = std::time::Duration::from_secs(5);
    let remote = |url: &str, via_relay: bool| {
        let target = Target::parse(url).unwrap();
        async move { caller_is_remote(&target, via_relay, within).await }
    };
    assert!(remote("http://192.0.2.2:8080", false).await);
    assert!(remote("https://[2001:db8::1]:443/base", false).await);
    assert!(!remote("http://127.0.0.1:8080", false).await);
    assert!(!remote("http://[::1]:8080", false).await);
    // `localhost` resolves here, without asking a name server.
    assert!(!remote("http://localhost:8080", false).await);
    assert!(!remote("http://LOCALHOST:8080", false).await);
    // Behind a relay that marks every request, the caller is remote.
    assert!(remote("http://127.0.0.1:8080", true).await);
}

#[test]
fn gate1_runs_with_no_flag_against_a_non_loopback_target() {
    let Some(ip) = own_non_loopback_address() else {
        eprintln!(
            "this machine has no non-loopback address a listener can bind: \
             only the decision function is tested (remote_is_decided_from_the_address_the_target_sees)"
        );
        return;
    };
    let listen = format!("{ip}:0");

    // The honest server refuses the remote plaintext run: GATE-1 passes.
    let (_honest, args) = served(&listen, &[]);
    let (code, report) = json_run(&args);
    let (verdict, reason) = only_verdict(&report);
    assert_eq!(verdict, "pass", "{reason}");
    assert_eq!(code, Some(0), "{report}");
    assert!(
        !report["not_exercised"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "GATE-1"),
        "{report}"
    );

    // A server without the 426 gate executes it: GATE-1 fails.
    let (_broken, args) = served(&listen, &["--bug", "no-426-gate"]);
    let (code, report) = json_run(&args);
    let (verdict, reason) = only_verdict(&report);
    assert_eq!(verdict, "fail", "{reason}");
    assert_eq!(code, Some(1));
}

#[test]
fn gate1_still_skips_on_loopback_without_the_marker_and_says_why() {
    let (_server, mut args) = served("127.0.0.1:0", &["--trust-loopback", "false"]);
    args.extend(["--relay-origin", "off"].map(String::from));
    let (code, report) = json_run(&args);
    let (verdict, reason) = only_verdict(&report);
    assert_eq!(verdict, "skip");
    assert!(reason.contains("loopback"), "{reason}");
    assert_eq!(code, Some(0));
    // The skip shows in the coverage: GATE-1 is a MUST left unexercised.
    let cov = &report["must_coverage"];
    assert!(
        cov["not_exercised"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "GATE-1"),
        "{cov}"
    );
}

#[test]
fn test_reports_state_must_coverage_and_strict_fails_on_a_gap() {
    let base = ["test", "--target", "self", "--only", "replay-window"];
    let out = support::run({
        let mut cmd = support::harness();
        cmd.args(base);
        cmd
    });
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = text(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("MUST requirements exercised: "))
        .unwrap_or_else(|| panic!("no coverage line: {stdout}"));
    let (n, m) = line
        .trim_start_matches("MUST requirements exercised: ")
        .split_once(" of ")
        .unwrap();
    let (n, m): (usize, usize) = (n.parse().unwrap(), m.parse().unwrap());
    assert!(n >= 1 && n < m, "{line}");
    assert!(stdout.contains("MUST requirements not exercised: ENC-1,"));

    // --strict fails the same clean run, naming what it left out.
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("r.xml");
    let mut cmd = support::harness();
    cmd.args(base)
        .args(["--strict", "--format", "json", "--report"])
        .arg(&junit);
    let out = support::run(cmd);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["fail"], 0);
    assert_eq!(report["must_coverage"]["exercised"], n);
    assert_eq!(report["must_coverage"]["total"], m);
    let problems = report["run_problems"].to_string();
    assert!(
        problems.contains("--strict") && problems.contains("GATE-1"),
        "{problems}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(&format!("MUST requirements exercised: {n} of {m}")),
        "{xml}"
    );
    assert!(
        xml.contains("MUST requirements not exercised: ENC-1"),
        "{xml}"
    );
}

#[test]
fn test_client_reports_answer_for_the_client_suite() {
    let out = baseline_only(&["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cov = &report["must_coverage"];
    // The baseline exercises RESP-2; the rest of the client suite is listed.
    assert_eq!(cov["exercised"], 1, "{cov}");
    let missing: Vec<&str> = cov["not_exercised"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        missing.contains(&"HS-2") && missing.contains(&"RESP-5"),
        "{cov}"
    );
    // Server-only requirements are not the client's to exercise.
    assert!(
        !missing.contains(&"HS-9") && !missing.contains(&"GATE-2"),
        "{cov}"
    );
    assert_eq!(cov["total"], missing.len() + 1);

    let out = baseline_only(&["--strict"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(text(&out.stdout).contains("MUST requirements exercised: 1 of "));
}

/// The `must_coverage` of a real run's JSON report (the run must pass).
fn real_coverage(args: &[&str]) -> (u64, u64, Vec<String>) {
    let mut cmd = support::harness();
    cmd.args(args).args(["--format", "json"]);
    let out = support::run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cov = &report["must_coverage"];
    (
        cov["exercised"].as_u64().unwrap(),
        cov["total"].as_u64().unwrap(),
        cov["not_exercised"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
    )
}

fn coverage_sentence(command: &str, (n, m, missing): &(u64, u64, Vec<String>)) -> String {
    let left = if missing.is_empty() {
        "none left out".to_string()
    } else {
        format!("not exercised: {}", missing.join(", "))
    };
    format!("- {command}: MUST requirements exercised: {n} of {m} ({left}).\n")
}

/// The README's coverage lines come from real runs: `test --target self`
/// and `test-client` against the reference client (the self-test's shim).
/// `OSC_WRITE_DOCS=1` rewrites them.
#[test]
fn readme_states_the_must_coverage_of_real_runs() {
    let server = real_coverage(&["test", "--target", "self"]);
    let client = real_coverage(&["test-client", "--client-cmd", &reference_shim()]);
    let mut block = String::new();
    block.push_str(&coverage_sentence(
        "`osc-harness test --target self`",
        &server,
    ));
    let vectors = osc_harness::report::registry::Registry::builtin().vector_ids();
    let (by_vectors, unchecked): (Vec<&String>, Vec<&String>) =
        server.2.iter().partition(|id| vectors.contains(id));
    if !by_vectors.is_empty() {
        let ids: Vec<&str> = by_vectors.iter().map(|s| s.as_str()).collect();
        block.push_str(&format!(
            "  The vector suite checks {} (`osc-harness test --coverage`).\n",
            ids.join(", ")
        ));
    }
    if !unchecked.is_empty() {
        let ids: Vec<&str> = unchecked.iter().map(|s| s.as_str()).collect();
        block.push_str(&format!("  Nothing else checks {}.\n", ids.join(", ")));
    }
    block.push_str(&coverage_sentence(
        "`osc-harness test-client` against the reference client (`osc-harness call`)",
        &client,
    ));
    let (start, end) = (
        "<!-- must coverage: generated by tests/report_coverage.rs -->\n",
        "<!-- end of must coverage -->",
    );
    let path = support::repo("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (before, rest) = readme
        .split_once(start)
        .expect("README keeps the start marker");
    let (_, after) = rest.split_once(end).expect("README keeps the end marker");
    let expected = format!("{before}{start}{block}{end}{after}");
    if std::env::var_os("OSC_WRITE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    assert!(
        readme == expected,
        "README.md's MUST coverage is stale: run `OSC_WRITE_DOCS=1 cargo test --test report_coverage readme`\nnow:\n{block}"
    );
}
