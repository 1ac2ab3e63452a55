//! `osc-harness serve` as a user runs it: the ready line, --identity,
//! --list-bugs, argument errors, and a clean stop on SIGTERM.

mod support;

use std::process::Command;

use osc_harness::protocol::identity::AgentIdentity;
use osc_harness::server::Bug;
use support::harness;

#[test]
fn list_bugs_names_each_requirement() {
    let out = harness().args(["serve", "--list-bugs"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), Bug::ALL.len());
    for (line, bug) in text.lines().zip(Bug::ALL) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[0], bug.name());
        assert_eq!(words[1], bug.requirement());
    }
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    for args in [
        &["serve", "--bug", "no-such-bug"][..],
        &["serve", "--session-ttl", "5x"],
        &["serve", "--handshake-rate", "five"],
        &["serve", "--agent-key-hex", "zz"],
    ] {
        let out = harness().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

#[cfg(unix)]
#[test]
fn ready_line_then_clean_stop_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let key = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    let file = dir.path().join("agent.key");
    std::fs::write(&file, format!("0x{key}\n")).unwrap();
    let mut cmd = harness();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--session-ttl", "5m"])
        .args(["--bug", "status-outside", "--access-key", "osk-v1.test"])
        .arg("--identity")
        .arg(&file);
    let mut server = support::start(cmd);
    let ready = server.ready.clone();
    let expected = AgentIdentity::from_hex(key).unwrap().address();
    assert_eq!(ready["agentAddress"], expected.to_checksum().as_str());
    assert_eq!(ready["accessKey"], "osk-v1.test");
    assert_eq!(ready["sessionTtl"], 300);
    assert_eq!(ready["bugs"], serde_json::json!(["status-outside"]));
    assert!(ready["url"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    assert!(ready["agentId"].is_string());
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "stopped cleanly: {status:?}");
}
