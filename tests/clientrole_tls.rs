//! The client-role suite over HTTPS: `test-client --tls` and
//! `adversary --tls` with the reference client, which must trust the CA
//! made for the run through `{ca_cert}` and is judged exactly as over
//! plain HTTP.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use osc_harness::clientrole::selftest;

use support::EXE;

/// An identity, a truncation, a framing and two session scenarios, and
/// both baselines.
const SCENARIOS: [&str; 7] = [
    "client-honest-buffered",
    "client-honest-stream",
    "client-id-wrong-key",
    "client-trunc-stream-no-fin",
    "client-frames-reordered",
    "client-session-401-once",
    "client-session-seq-rises",
];

/// Runs `test-client` (with `extra` flags) over [`SCENARIOS`] and returns
/// the exit code, each scenario's verdict and the JSON report.
fn run(command: &str, extra: &[&str]) -> (i32, BTreeMap<String, String>, serde_json::Value) {
    let mut cmd = support::harness();
    cmd.args(["test-client", "--client-cmd", command, "--format", "json"])
        .args(["--timeout", "20"])
        .args(extra);
    for id in SCENARIOS {
        cmd.args(["--only", id]);
    }
    let (code, out, err) = support::outcome(support::run(cmd));
    let report: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("json report ({e}): {out}\n{err}"));
    let verdicts = report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (code, verdicts, report)
}

/// The reference client's shim, with `prefix` run before it and `extra`
/// appended to its flags.
fn shim(prefix: &str, extra: &str) -> String {
    format!(
        "{prefix}{}{extra}",
        selftest::reference_command(Path::new(EXE), None)
    )
}

#[test]
fn the_reference_client_over_https_is_judged_as_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let urls = dir.path().join("urls");
    // The shim notes the URL it was given and insists on a real CA file.
    let record = format!(
        "echo {{url}} >> {}; grep -q 'BEGIN CERTIFICATE' {{ca_cert}} && ",
        support::sh_quote(&urls)
    );
    let (code, over_tls, report) = run(&shim(&record, " --ca-cert {ca_cert}"), &["--tls"]);
    assert_eq!(code, 0, "{report:#}");
    let seen = std::fs::read_to_string(&urls).unwrap();
    assert_eq!(seen.lines().count(), SCENARIOS.len(), "{seen}");
    for url in seen.lines() {
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    }
    for s in report["scenarios"].as_array().unwrap() {
        assert!(
            s["repro"].as_str().unwrap().contains("test-client --tls "),
            "{s:#}"
        );
    }

    let plain_urls = dir.path().join("plain-urls");
    let record = format!("echo {{url}} >> {}; ", support::sh_quote(&plain_urls));
    let (code, plain, report) = run(&shim(&record, ""), &[]);
    assert_eq!(code, 0, "{report:#}");
    for url in std::fs::read_to_string(&plain_urls).unwrap().lines() {
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    }

    assert_eq!(over_tls.len(), SCENARIOS.len());
    assert_eq!(over_tls, plain);
    assert!(over_tls.values().all(|v| v == "pass"), "{over_tls:?}");
}

#[test]
fn a_client_that_does_not_trust_the_run_ca_fails_the_baselines() {
    let (code, verdicts, report) = run(&shim("", ""), &["--tls"]);
    assert_eq!(code, 1, "{report:#}");
    for s in report["scenarios"].as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        if !id.starts_with("client-honest") {
            continue;
        }
        assert_eq!(verdicts[id], "fail", "{s:#}");
        let reason = s["reason"].as_str().unwrap();
        assert!(reason.contains("unknown issuer"), "{reason}");
        // The TLS handshake failed, so no request reached the relay.
        assert_eq!(s["transcript"].as_array().unwrap().len(), 0, "{s:#}");
    }
}

#[test]
fn ca_cert_without_tls_is_a_usage_error() {
    let (code, _, err) = support::outcome(support::run({
        let mut cmd = support::harness();
        cmd.args([
            "test-client",
            "--client-cmd",
            "true {ca_cert}",
            "--only",
            "client-honest-buffered",
        ]);
        cmd
    }));
    assert_eq!(code, 2);
    assert!(err.contains("{ca_cert}") && err.contains("--tls"), "{err}");
}

#[test]
fn adversary_over_https_names_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let mut cmd = support::harness();
    cmd.args(["adversary", "--scenario", "client-honest-buffered"])
        .args(["--listen", "127.0.0.1:0", "--idle", "1", "--tls"])
        .arg("--tls-ca-out")
        .arg(&ca);
    let adversary = support::start(cmd);
    let url = adversary.field("url");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert_eq!(adversary.field("caCert"), ca.display().to_string());
    assert_eq!(adversary.field("ca_cert"), ca.display().to_string());
    assert!(std::fs::read_to_string(&ca)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    let call = |trust: bool| {
        let mut cmd = support::harness();
        cmd.args(["call", "--target", &url])
            .args(["--agent-address", &adversary.field("address")])
            .args(["--access-key", &adversary.field("access_key")])
            .args(["--path", &adversary.field("path"), "--timeout", "5"]);
        if trust {
            cmd.arg("--ca-cert").arg(&ca);
        }
        support::outcome(support::run(cmd))
    };
    let (code, _, err) = call(false);
    assert_eq!(code, 7, "untrusted CA: {err}");
    assert!(err.contains("unknown issuer"), "{err}");
    let (code, out, err) = call(true);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok"), "{out}");
}
