//! The independent Python client (interop/python) through the shim: the
//! report must match what it really does. The client runs from the interop
//! Python environment (`support::interop_python`), which these tests set up
//! themselves.

mod support;

use std::path::Path;

use support::{harness, interop_python, peer_script, sh_quote};

/// The shim command that runs the Python client with `python`.
fn shim(python: &Path) -> String {
    format!(
        "{} {} call --target {{url}} --agent-address {{address}} \
         --access-key {{access_key}} --path {{path}} --repeat {{calls}} \
         $([ {{mode}} = stream ] && echo \"--stream --data {{}}\")",
        sh_quote(python),
        sh_quote(&peer_script()),
    )
}

fn report(python: &Path, extra: &[&str]) -> serde_json::Value {
    let out = harness()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "test-client",
            "--client-cmd",
            &shim(python),
            "--format",
            "json",
        ])
        .args(extra)
        .output()
        .unwrap();
    support::stdout_json(&out)
}

fn verdicts(python: &Path, extra: &[&str]) -> Vec<(String, String)> {
    support::verdicts_by_id(&report(python, extra))
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn python_client_passes_every_must_scenario() {
    let Some(python) = interop_python() else {
        return;
    };
    let got = verdicts(python, &["--skip", "client-hostile-drip"]);
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
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn python_client_drip_is_a_warning_not_a_failure() {
    let Some(python) = interop_python() else {
        return;
    };
    // It has a per-read timeout but no whole-stream limit, so a drip holds it.
    let got = verdicts(python, &["--only", "client-hostile-drip", "--timeout", "2"]);
    assert_eq!(
        got,
        vec![("client-hostile-drip".to_string(), "warn".to_string())]
    );
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn python_client_keeps_one_session_and_raises_its_seqs() {
    let Some(python) = interop_python() else {
        return;
    };
    let report = report(python, &["--only", "client-session-seq-rises"]);
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
