//! The independent Python client (interop/python) through the shim: the
//! report must match what it really does. Skipped when its dependencies
//! are not installed.

use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_osc-harness");
const SHIM: &str =
    "python3 interop/python/osc_peer.py call --target {url} --agent-address {address} \
    --access-key {access_key} --path {path} --repeat {calls} \
    $([ {mode} = stream ] && echo \"--stream --data {}\")";

fn python_ready() -> bool {
    Command::new("python3")
        .args(["-c", "import coincurve, cryptography"])
        .status()
        .is_ok_and(|s| s.success())
}

fn verdicts(extra: &[&str]) -> Vec<(String, String)> {
    let out = Command::new(EXE)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["test-client", "--client-cmd", SHIM, "--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn python_client_passes_every_must_scenario() {
    if !python_ready() {
        eprintln!("skipped: python3 with coincurve and cryptography is not available");
        return;
    }
    let got = verdicts(&["--skip", "client-hostile-drip"]);
    assert_eq!(got.len(), 31);
    assert!(
        got.iter().any(|(id, _)| id == "client-session-seq-rises"),
        "the multi-call scenario ran"
    );
    for (id, v) in got {
        assert_eq!(v, "pass", "{id}");
    }
}

#[test]
fn python_client_drip_is_a_warning_not_a_failure() {
    if !python_ready() {
        eprintln!("skipped: python3 with coincurve and cryptography is not available");
        return;
    }
    // It has a per-read timeout but no whole-stream limit, so a drip holds it.
    let got = verdicts(&["--only", "client-hostile-drip", "--timeout", "2"]);
    assert_eq!(
        got,
        vec![("client-hostile-drip".to_string(), "warn".to_string())]
    );
}

#[test]
fn python_client_keeps_one_session_and_raises_its_seqs() {
    if !python_ready() {
        eprintln!("skipped: python3 with coincurve and cryptography is not available");
        return;
    }
    let out = Command::new(EXE)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["test-client", "--client-cmd", SHIM, "--format", "json"])
        .args(["--only", "client-session-seq-rises"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    let s = &report["scenarios"][0];
    assert_eq!(s["verdict"], "pass", "{s:#}");
    let actions: Vec<&str> = s["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["handshake", "call", "call", "call"], "{s:#}");
}
