//! Interop with an independent implementation: the Python peer in
//! `interop/python/`, written from the protocol text alone, talks to the
//! harness's client, server, suite and vector checker over loopback.
//!
//! The Python peer runs from the interop Python environment
//! (`support::interop_python`), which these tests set up themselves; when it
//! cannot be built they fail with the cause, unless `OSC_SKIP_INTEROP=1`.

mod support;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::{
    describe, harness, interop_python, peer_script, python_peer, python_serve, run, sh_quote,
    start, text, Running,
};

fn python_server(python: &Path, extra: &[&str]) -> Running {
    let mut cmd = python_serve(python);
    cmd.args(["--session-ttl", "3"]).args(extra);
    start(cmd)
}

fn harness_server(extra: &[&str]) -> Running {
    let mut cmd = harness();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--handshake-rate", "0"])
        .args([
            "--access-key",
            "osk-v1.interop",
            "--agent-id",
            "interop-agent",
        ])
        .args(extra);
    start(cmd)
}

fn call_args(server: &Running, path: &str) -> Vec<String> {
    vec![
        "call".into(),
        "--target".into(),
        server.field("url"),
        "--agent-address".into(),
        server.field("agentAddress"),
        "--access-key".into(),
        "osk-v1.interop".into(),
        "--relay-origin".into(),
        "--path".into(),
        path.into(),
    ]
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn harness_client_calls_the_python_server() {
    let Some(python) = interop_python() else {
        return;
    };
    let server = python_server(python, &[]);
    let mut cmd = harness();
    cmd.args(call_args(&server, "/agents/interop-agent/run"))
        .args(["--data", r#"{"prompt":"ping"}"#]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let body: Value = support::stdout_json(&out);
    assert_eq!(body["input"]["prompt"], "ping");
    assert_eq!(body["secure"], true);

    let mut cmd = harness();
    cmd.args(call_args(&server, "/agents/interop-agent/dispatch"))
        .args(["--data", r#"{"events":4,"size":8}"#, "--stream"]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let streamed = text(&out.stdout);
    assert_eq!(streamed.matches("data: {\"n\":").count(), 4, "{streamed}");
    assert!(streamed.contains("data: [DONE]"), "{streamed}");

    // Pinned to another identity, the harness client must refuse the server.
    let mut cmd = harness();
    let mut args = call_args(&server, "/health");
    args[4] = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf".into();
    cmd.args(args);
    let out = run(cmd);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn python_client_calls_the_harness_server() {
    let Some(python) = interop_python() else {
        return;
    };
    let server = harness_server(&[]);
    let mut cmd = python_peer(python);
    cmd.args(call_args(&server, "/agents/interop-agent/run"))
        .args(["--data", r#"{"prompt":"ping"}"#]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let body: Value = support::stdout_json(&out);
    assert_eq!(body["method"], "POST", "{body}");

    let mut cmd = python_peer(python);
    cmd.args(call_args(&server, "/agents/interop-agent/dispatch"))
        .args(["--data", "{}", "--stream"]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(text(&out.stdout).contains("data: "), "{}", describe(&out));

    // A server that signs with the wrong key is refused as an identity failure.
    let liar = harness_server(&["--bug", "wrong-signing-key"]);
    let out = run({
        let mut cmd = python_peer(python);
        cmd.args(call_args(&liar, "/health"));
        cmd
    });
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert!(text(&out.stderr).contains("identity"), "{}", describe(&out));

    // A stream without its fin frame is a truncation, not a complete answer.
    let cutter = harness_server(&["--bug", "stream-drops-fin"]);
    let out = run({
        let mut cmd = python_peer(python);
        cmd.args(call_args(&cutter, "/agents/interop-agent/dispatch"))
            .args(["--data", "{}", "--stream"]);
        cmd
    });
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    assert!(text(&out.stderr).contains("fin"), "{}", describe(&out));
}

/// Runs the conformance suite against a Python server; returns exit code and report.
fn suite(server: &Running, only: Option<&str>) -> (Option<i32>, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("report.json");
    let mut cmd = harness();
    cmd.args(["test", "--target", &server.field("url")])
        .args(["--agent-address", &server.field("agentAddress")])
        .args([
            "--access-key",
            "osk-v1.interop",
            "--agent-id",
            "interop-agent",
        ])
        .args(["--scoped-key", &server.field("scopedKey")])
        .args(["--scoped-agent-id", &server.field("scopedAgentId")])
        .args(["--relay-origin", "on", "--session-ttl", "3"])
        .args(["--max-sessions", "256", "--handshake-budget", "none"])
        // The Python server, like `serve`, trusts loopback callers (GATE-2).
        .arg("--trusts-loopback")
        .args(["--format", "json", "--report"])
        .arg(&report);
    if let Some(pattern) = only {
        cmd.args(["--only", pattern]);
    }
    let out = run(cmd);
    let body = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", describe(&out)));
    (
        out.status.code(),
        serde_json::from_str(&body).expect("report JSON"),
    )
}

fn scenarios(report: &Value) -> &Vec<Value> {
    report["scenarios"].as_array().expect("scenarios array")
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn suite_passes_every_must_against_the_python_server() {
    let Some(python) = interop_python() else {
        return;
    };
    let server = python_server(python, &[]);
    let (code, report) = suite(&server, None);
    let failing: Vec<&Value> = scenarios(&report)
        .iter()
        .filter(|s| s["verdict"] == "fail")
        .collect();
    assert!(failing.is_empty(), "failing scenarios: {failing:#?}");
    assert_eq!(code, Some(0));
    let passed = scenarios(&report)
        .iter()
        .filter(|s| s["verdict"] == "pass")
        .count();
    assert!(passed >= 30, "only {passed} scenarios passed");
    let scope = scenarios(&report)
        .iter()
        .find(|s| s["id"] == "inside-scope")
        .expect("the scope scenario ran");
    assert_eq!(scope["verdict"], "pass", "{scope:#}");
    let loopback = scenarios(&report)
        .iter()
        .find(|s| s["id"] == "gate-loopback-plaintext")
        .expect("the loopback scenario ran");
    assert_eq!(loopback["verdict"], "pass", "{loopback:#}");
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn suite_catches_every_python_breakage() {
    let Some(python) = interop_python() else {
        return;
    };
    let breaks = [
        ("no-replay-check", "CALL-3"),
        ("no-426", "GATE-1"),
        ("relay-marker-ignored", "GATE-3"),
        ("static-ephemeral", "HS-3"),
        ("sign-other-key", "HS-1"),
        ("drop-stream-fin", "RESP-5"),
        ("status-outside", "RESP-2"),
        ("no-expiry", "SES-1"),
        ("session-key-responses", "KS-2"),
        ("mark-before-decrypt", "CALL-4"),
        ("no-inner-auth", "CALL-6"),
        ("nested-secure", "CALL-8"),
    ];
    for (name, requirement) in breaks {
        let server = python_server(python, &["--break", name]);
        let (code, report) = suite(&server, Some(requirement));
        let cited = scenarios(&report).iter().any(|s| {
            s["verdict"] == "fail"
                && s["level"] == "MUST"
                && s["requirements"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|id| id == requirement))
        });
        assert!(
            cited,
            "--break {name}: no failing MUST scenario cites {requirement}: {report:#}"
        );
        assert_eq!(code, Some(1), "--break {name}");
    }
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn vectors_agree_both_ways() {
    let Some(python) = interop_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");

    // The Python peer reproduces the official fixture first.
    let out = run({
        let mut cmd = python_peer(python);
        cmd.arg("selfcheck");
        cmd
    });
    assert!(out.status.success(), "{}", describe(&out));

    // Python's own vectors pass the harness's checker...
    let ours = dir.path().join("python.json");
    let out = run({
        let mut cmd = python_peer(python);
        cmd.args(["vectors", "--out"]).arg(&ours);
        cmd
    });
    assert!(out.status.success(), "{}", describe(&out));
    let out = run({
        let mut cmd = harness();
        cmd.args(["vectors", "verify"]).arg(&ours);
        cmd
    });
    assert!(out.status.success(), "{}", describe(&out));

    // ...and the harness's vectors pass Python's.
    let theirs = dir.path().join("harness.json");
    let out = run({
        let mut cmd = harness();
        cmd.args(["vectors", "generate", "--seed", "7", "--format", "upstream"])
            .arg("--out")
            .arg(&theirs);
        cmd
    });
    assert!(out.status.success(), "{}", describe(&out));
    let out = run({
        let mut cmd = python_peer(python);
        cmd.arg("verify-vectors").arg(&theirs);
        cmd
    });
    assert!(out.status.success(), "{}", describe(&out));

    // One changed character in a key, a ciphertext or a signature is caught
    // by both checkers.
    let original: Value = serde_json::from_str(&std::fs::read_to_string(&ours).unwrap()).unwrap();
    let edits: [&[&str]; 3] = [
        &["handshake", "clientToServerKeyHex"],
        &["call", "ct"],
        &["handshake", "serverHello", "signature"],
    ];
    for path in edits {
        let mut doc = original.clone();
        let mut slot = &mut doc;
        for key in path {
            slot = &mut slot[*key];
        }
        let value = slot.as_str().expect("string field").to_string();
        // A middle character: every bit of it is significant in both hex
        // and base64url, unlike the last character of a base64url string.
        let mid = value.len() / 2;
        let swapped = if &value[mid..=mid] == "0" { "1" } else { "0" };
        *slot = Value::String(format!("{}{swapped}{}", &value[..mid], &value[mid + 1..]));
        let bad = dir.path().join("edited.json");
        std::fs::write(&bad, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        for cmd in [
            {
                let mut cmd = harness();
                cmd.args(["vectors", "verify"]).arg(&bad);
                cmd
            },
            {
                let mut cmd = python_peer(python);
                cmd.arg("verify-vectors").arg(&bad);
                cmd
            },
        ] {
            let program = format!("{:?}", cmd.get_program());
            let out = run(cmd);
            assert!(
                !out.status.success(),
                "{program} accepted an edit of {path:?}: {}",
                describe(&out)
            );
        }
    }
}

/// The shim command that makes the Python client the client under test.
fn python_shim(python: &Path, extra: &str) -> String {
    format!(
        "{} {} call --target {{url}} --agent-address {{address}} \
         --access-key {{access_key}} --path {{path}} --mode {{mode}} --repeat {{calls}} --max-secs 5{extra}",
        sh_quote(python),
        sh_quote(&peer_script())
    )
}

fn client_suite(shim: &str, only: &[&str]) -> (Option<i32>, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("client.json");
    let mut cmd = harness();
    cmd.args(["test-client", "--client-cmd", shim, "--format", "json"])
        .arg("--report")
        .arg(&report);
    for id in only {
        cmd.args(["--only", id]);
    }
    let out = run(cmd);
    let body = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", describe(&out)));
    (
        out.status.code(),
        serde_json::from_str(&body).expect("report JSON"),
    )
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn python_client_through_the_client_role_suite() {
    let Some(python) = interop_python() else {
        return;
    };
    // The honest Python client checks everything the client role asks for;
    // information-level differences (which `v` values it takes) may remain.
    let (code, report) = client_suite(&python_shim(python, ""), &[]);
    let not_passed: Vec<&Value> = scenarios(&report)
        .iter()
        .filter(|s| s["verdict"] == "fail" || s["verdict"] == "warn")
        .collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}");
    assert_eq!(code, Some(0));
    assert!(scenarios(&report).len() >= 20);

    // With its identity and fin checks switched off, the report blames
    // exactly those requirements and still passes the honest baselines.
    let only = [
        "client-honest-buffered",
        "client-honest-stream",
        "client-id-wrong-key",
        "client-trunc-stream-no-fin",
        "client-frames-reordered",
    ];
    let shim = python_shim(
        python,
        " --break identity-unchecked --break missing-fin-ignored",
    );
    let (code, report) = client_suite(&shim, &only);
    let verdict = |id: &str| {
        scenarios(&report)
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["verdict"].as_str().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("{id} missing from {report:#}"))
    };
    assert_eq!(verdict("client-honest-buffered"), "pass");
    assert_eq!(verdict("client-honest-stream"), "pass");
    assert_eq!(verdict("client-frames-reordered"), "pass");
    assert_eq!(verdict("client-id-wrong-key"), "fail");
    assert_eq!(verdict("client-trunc-stream-no-fin"), "fail");
    assert_eq!(code, Some(1));
}

fn mitm(upstream: &Running, extra: &[&str]) -> Running {
    let mut cmd = harness();
    cmd.args(["mitm", "--listen", "127.0.0.1:0", "--upstream"])
        .arg(upstream.field("url"))
        .args(extra);
    start(cmd)
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn harness_relay_between_python_client_and_python_server() {
    let Some(python) = interop_python() else {
        return;
    };
    let server = python_server(python, &[]);

    // Passive: both ends are Python, the harness only watches the bytes.
    let mut relay = mitm(
        &server,
        &[
            "--canary",
            "osk-v1.interop",
            "--canary",
            "interop-canary-prompt",
            "--duration",
            "10",
        ],
    );
    let mut args = call_args(&server, "/agents/interop-agent/run");
    args[2] = relay.field("url");
    let out = run({
        let mut cmd = python_peer(python);
        cmd.args(&args)
            .args(["--data", r#"{"prompt":"interop-canary-prompt"}"#]);
        cmd
    });
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(text(&out.stdout).contains("interop-canary-prompt"));
    let status = relay.child.wait().expect("relay exits after --duration");
    assert!(
        status.success(),
        "the passive relay saw a violation: {status:?}"
    );

    // Active: the Python client notices what the relay does to it.
    for (attack, path, stream, code) in [
        ("swap-server-key", "/health", false, 4),
        ("drop-fin", "/agents/interop-agent/dispatch", true, 5),
        ("reorder", "/agents/interop-agent/dispatch", true, 6),
    ] {
        let relay = mitm(&server, &["--attack", attack, "--duration", "30"]);
        let mut args = call_args(&server, path);
        args[2] = relay.field("url");
        let out = run({
            let mut cmd = python_peer(python);
            cmd.args(&args);
            if stream {
                cmd.args(["--data", r#"{"events":3}"#, "--stream"]);
            }
            cmd
        });
        assert_eq!(
            out.status.code(),
            Some(code),
            "{attack}: {}",
            describe(&out)
        );
    }
}

/// Runs `osc-harness fuzz` against a Python server; the process output
/// and its JSON summary.
fn fuzz_python(server: &Running, dir: &Path, extra: &[&str]) -> (Output, Value) {
    let out = run({
        let mut cmd = harness();
        cmd.args(["fuzz", "--target", &server.field("url")])
            .args(["--agent-address", &server.field("agentAddress")])
            .args([
                "--access-key",
                "osk-v1.interop",
                "--agent-id",
                "interop-agent",
            ])
            .args(["--relay-origin", "true", "--timeout", "10", "--quiet"])
            .arg("--findings")
            .arg(dir.join("findings"))
            .args(extra);
        cmd
    });
    let stdout = text(&out.stdout);
    let summary: Value = stdout
        .find('{')
        .and_then(|at| serde_json::from_str(&stdout[at..]).ok())
        .unwrap_or_else(|| panic!("no JSON summary: {}", describe(&out)));
    (out, summary)
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn short_seeded_fuzz_finds_nothing_in_the_python_server() {
    let Some(python) = interop_python() else {
        return;
    };
    let server = python_server(python, &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, summary) = fuzz_python(
        &server,
        dir.path(),
        &[
            "--handshake-budget",
            "0",
            "--max-execs",
            "400",
            "--seed",
            "5",
        ],
    );
    assert_eq!(summary["execs"], 400, "{summary:#}");
    assert_eq!(
        summary["findings"].as_array().map(Vec::len),
        Some(0),
        "{summary:#}"
    );
    assert!(summary["target_died_at"].is_null(), "{summary:#}");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn a_timed_fuzz_checks_expiry_on_the_python_server() {
    let Some(python) = interop_python() else {
        return;
    };
    // Sessions live 8 s, beyond --expiry-wait 2 but within the run's time
    // left; the budget keeps the sessions per lifetime under its store of
    // 256, so the session kept aside is still there just before expiry.
    const TIMED: [&str; 10] = [
        "--duration",
        "25s",
        "--expiry-wait",
        "2",
        "--handshake-budget",
        "40/8",
        "--concurrency",
        "1",
        "--seed",
        "3",
    ];
    let honest = std::thread::spawn(move || {
        let server = python_server(python, &["--session-ttl", "8"]);
        let dir = tempfile::tempdir().expect("tempdir");
        fuzz_python(&server, dir.path(), &TIMED).1
    });
    let server = python_server(python, &["--session-ttl", "8", "--break", "no-expiry"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, broken) = fuzz_python(&server, dir.path(), &TIMED);
    let signatures: Vec<&str> = broken["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["signature"].as_str())
        .collect();
    assert!(
        signatures.contains(&"accepted-invalid/stateful/expired"),
        "{broken:#}"
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));

    let honest = honest.join().expect("the honest run");
    assert_eq!(honest["findings"], serde_json::json!([]), "{honest:#}");
    assert!(honest["expiry_checks"].as_u64().unwrap() >= 2, "{honest:#}");
    assert_eq!(honest["unconfirmed"], 0, "{honest:#}");
}

/// The Python server in its upstream-lenient mode (`--lenient-base64`)
/// has no bug of its own: a seeded fuzz run finds no MUST finding and
/// exits 0, and whatever it reports is listed as a warning (SHOULD) or
/// information (UPSTREAM), with its requirement.
#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn fuzzing_the_upstream_lenient_python_server_finds_no_must() {
    let Some(python) = interop_python() else {
        return;
    };
    let server = python_server(python, &["--lenient-base64", "--session-ttl", "600"]);
    assert_eq!(server.ready["lenientBase64"], true, "{}", server.ready);
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, summary) = fuzz_python(
        &server,
        dir.path(),
        &[
            "--handshake-budget",
            "0",
            "--max-execs",
            "600",
            "--seed",
            "11",
            "--slow-request-limit",
            "20",
        ],
    );
    assert_eq!(summary["execs"], 600, "{summary:#}");
    assert!(summary["target_died_at"].is_null(), "{summary:#}");
    assert_eq!(summary["failures"], serde_json::json!([]), "{summary:#}");
    let err = text(&out.stderr);
    for bucket in summary["findings"].as_array().expect("findings") {
        let sig = bucket["signature"].as_str().expect("signature");
        let (list, word) = match bucket["level"].as_str() {
            Some("SHOULD") => ("warnings", "warning"),
            Some("UPSTREAM") => ("information", "information"),
            other => panic!("{sig} is at level {other:?}: {summary:#}"),
        };
        assert!(
            summary[list]
                .as_array()
                .unwrap()
                .contains(&Value::from(sig)),
            "{sig} not under {list}: {summary:#}"
        );
        assert!(bucket["requirement"].as_str().is_some(), "{bucket:#}");
        assert!(err.contains(&format!("{word} (")), "{err}");
    }
    // An inner body no decoder reads is run as an empty one, as upstream
    // does: CALL-9, a SHOULD.
    let body = summary["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["signature"] == "accepted-invalid/inner/body");
    if let Some(b) = body {
        assert_eq!(
            (&b["requirement"], &b["level"]),
            (&Value::from("CALL-9"), &Value::from("SHOULD"))
        );
    }
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    // The same findings fail the run under --strict.
    if !summary["findings"].as_array().unwrap().is_empty() {
        let (strict, _) = fuzz_python(
            &server,
            &dir.path().join("strict"),
            &[
                "--handshake-budget",
                "0",
                "--max-execs",
                "600",
                "--seed",
                "11",
                "--slow-request-limit",
                "20",
                "--strict",
            ],
        );
        assert_eq!(strict.status.code(), Some(1), "{}", describe(&strict));
    }
}
