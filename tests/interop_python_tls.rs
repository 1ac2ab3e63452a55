//! The independent Python server behind HTTPS (its `ssl` module) with a
//! certificate of its own: the harness passes `test`, `call` and `fuzz`
//! given its CA with `--ca-cert`, and exits 3 trusting another CA.
//!
//! The Python peer runs from the interop environment the tests build
//! themselves (`support::interop_python`); `OSC_SKIP_INTEROP=1` alone skips.

mod support;

use std::path::Path;
use std::process::Command;

use osc_harness::transport::tls::SelfSigned;
use serde_json::Value;
use support::{describe, harness, outcome, python_serve, run, start, Running};

/// Writes a fresh CA and leaf to `dir` as `{name}-ca.pem`,
/// `{name}-chain.pem` and `{name}-key.pem`.
fn certificate(dir: &Path, name: &str) -> SelfSigned {
    let pair = SelfSigned::generate(&[]).expect("generates");
    for (suffix, pem) in [
        ("ca", &pair.ca_pem),
        ("chain", &pair.chain_pem),
        ("key", &pair.key_pem),
    ] {
        std::fs::write(dir.join(format!("{name}-{suffix}.pem")), pem).expect("write PEM");
    }
    pair
}

fn python_tls_server(python: &Path, dir: &Path) -> Running {
    let mut cmd = python_serve(python);
    cmd.arg("--tls-cert")
        .arg(dir.join("python-chain.pem"))
        .arg("--tls-key")
        .arg(dir.join("python-key.pem"));
    start(cmd)
}

fn against(verb: &str, server: &Running, ca: &Path) -> Command {
    let mut cmd = harness();
    cmd.arg(verb)
        .args(["--target", &server.field("url")])
        .args(["--agent-address", &server.field("agentAddress")])
        .args(["--access-key", &server.field("accessKey")])
        .arg("--ca-cert")
        .arg(ca);
    cmd
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn the_python_server_behind_tls_passes_test_call_and_fuzz() {
    let Some(python) = support::interop_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    certificate(dir.path(), "python");
    certificate(dir.path(), "other");
    let server = python_tls_server(python, dir.path());
    assert!(server.field("url").starts_with("https://"));
    let ca = dir.path().join("python-ca.pem");

    let mut cmd = against("test", &server, &ca);
    cmd.args(["--agent-id", "interop-agent", "--format", "json"])
        .args(["--handshake-budget", "none", "--trusts-loopback"]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let doc: Value = support::stdout_json(&out);
    assert!(doc["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .all(|s| s["verdict"] != "fail"));

    let (code, out, err) = outcome(run(against("call", &server, &ca)));
    assert_eq!(code, 0, "{out}{err}");

    let findings = dir.path().join("findings");
    let mut cmd = against("fuzz", &server, &ca);
    cmd.args(["--duration", "3", "--seed", "7", "--quiet"])
        .args(["--handshake-budget", "0", "--relay-origin", "on"])
        .arg("--findings")
        .arg(&findings);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    let other = dir.path().join("other-ca.pem");
    let mut cmd = against("test", &server, &other);
    cmd.args(["--handshake-budget", "none"]);
    let (code, out, err) = outcome(run(cmd));
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("unknown issuer"), "{err}");
}
