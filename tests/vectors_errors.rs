//! Bad input to `vectors verify`: clear errors and non-zero exits, never
//! a panic. Also drives the built binary end to end.

mod support;

use osc_harness::vectors::{self, VectorsError, MAX_FILE_BYTES};
use serde_json::{json, Value};
use support::{harness, repo};

const FIXTURE: &str = "vectors/upstream/secure-channel-v1-vectors.json";

fn fixture() -> Value {
    support::load(FIXTURE)
}

fn field_error(value: &Value) -> String {
    match vectors::verify_bytes(value.to_string().as_bytes()) {
        Err(e @ VectorsError::Field { .. }) => e.to_string(),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn not_json_and_not_a_vector_file() {
    assert!(matches!(
        vectors::verify_bytes(b"not json"),
        Err(VectorsError::NotJson(_))
    ));
    assert!(matches!(
        vectors::verify_bytes(b""),
        Err(VectorsError::NotJson(_))
    ));
    for text in ["[]", "{}", "null", "42", r#"{"foo":1}"#] {
        assert!(
            matches!(
                vectors::verify_bytes(text.as_bytes()),
                Err(VectorsError::UnknownFormat)
            ),
            "{text}"
        );
    }
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        vectors::verify_bytes(deep.as_bytes()),
        Err(VectorsError::NotJson(_))
    ));
}

#[test]
fn wrong_types_in_upstream_inputs_name_the_field() {
    let mut f = fixture();
    f["handshake"]["clientHello"]["nonce"] = json!(5);
    assert!(field_error(&f).contains("handshake.clientHello.nonce"));
    let mut f = fixture();
    f["handshake"]["clientHello"]["nonce"] = json!("AAEC");
    assert!(
        field_error(&f).contains("handshake.clientHello.nonce"),
        "wrong length"
    );
    let mut f = fixture();
    f["agent"] = json!("x");
    assert!(field_error(&f).contains("agent"));
    let mut f = fixture();
    f["streamResponse"]["frames"] = json!({"0": 1});
    assert!(field_error(&f).contains("streamResponse.frames"));
    let mut f = fixture();
    f["streamResponse"]["frames"][1] = json!(null);
    assert!(field_error(&f).contains("streamResponse.frames[1]"));
    let mut f = fixture();
    f["handshake"]["serverHello"]["expiresAt"] = json!("1800000000");
    assert!(field_error(&f).contains("handshake.serverHello.expiresAt"));
    let mut f = fixture();
    f["handshake"]
        .as_object_mut()
        .unwrap()
        .remove("serverEphemeralPrivateHex");
    assert!(field_error(&f).contains("handshake.serverEphemeralPrivateHex"));
}

#[test]
fn wrong_types_in_derived_upstream_fields_fail_their_line() {
    let mut f = fixture();
    f["call"]["body"]["seq"] = json!("1");
    f["handshake"]["serverHello"]["signature"] = json!(null);
    f["streamResponse"]["frames"][0]["ct"] = json!([1]);
    let report = vectors::verify_bytes(f.to_string().as_bytes()).unwrap();
    let failed: Vec<&str> = report.failures().map(|l| l.name.as_str()).collect();
    for name in [
        "call.body.seq",
        "handshake.serverHello.signature",
        "streamResponse.frames[0].ct",
        "streamResponse.frames[0].plaintext",
    ] {
        assert!(failed.contains(&name), "{name} not in {failed:?}");
    }
}

#[test]
fn wrong_types_in_suites() {
    let suite: Value = serde_json::from_str(&vectors::generate(1, vectors::Format::Suite)).unwrap();
    let mut f = suite.clone();
    f["testGroups"] = json!({});
    assert!(field_error(&f).contains("testGroups"));
    let mut f = suite.clone();
    f["testGroups"][0]["tests"] = json!("none");
    assert!(field_error(&f).contains("testGroups[0].tests"));
    let mut f = suite.clone();
    f["testGroups"][0]["tests"][0]["tcId"] = json!(-1);
    assert!(field_error(&f).contains("tcId"));
    // A malformed case fails its own line and names the field.
    let mut f = suite;
    let groups = f["testGroups"].as_array_mut().unwrap();
    let call_open = groups.iter_mut().find(|g| g["type"] == "CallOpen").unwrap();
    call_open["tests"][0]["call"] = json!(5);
    call_open["tests"][1]["now"] = json!("soon");
    call_open["tests"][2]["flags"] = json!("Valid");
    let report = vectors::verify_bytes(f.to_string().as_bytes()).unwrap();
    let failed: Vec<_> = report.failures().collect();
    assert_eq!(failed.len(), 3, "{}", report.render());
    assert!(failed[0].failure.as_deref().unwrap().contains("call"));
    assert!(failed[1].failure.as_deref().unwrap().contains("now"));
    assert!(failed[2].failure.as_deref().unwrap().contains("flags"));
}

#[test]
fn a_huge_file_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.json");
    // Sparse: no 64 MiB are written or read.
    std::fs::File::create(&path)
        .unwrap()
        .set_len(MAX_FILE_BYTES + 1)
        .unwrap();
    match vectors::verify_path(&path) {
        Err(VectorsError::TooLarge { len, limit, .. }) => {
            assert_eq!(len, MAX_FILE_BYTES + 1);
            assert_eq!(limit, MAX_FILE_BYTES);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(matches!(
        vectors::verify_path(&dir.path().join("missing.json")),
        Err(VectorsError::Io { .. })
    ));
}

#[test]
fn truncated_and_corrupted_files_never_panic() {
    let bytes = std::fs::read(repo(FIXTURE)).unwrap();
    for end in (0..bytes.len()).step_by(37) {
        let _ = vectors::verify_bytes(&bytes[..end]);
    }
    let suite = vectors::generate(1, vectors::Format::Suite).into_bytes();
    for (i, step) in [(0usize, 1999usize), (13, 2011)] {
        for pos in (i..suite.len()).step_by(step) {
            let mut copy = suite.clone();
            copy[pos] ^= 0x04;
            let _ = vectors::verify_bytes(&copy);
        }
    }
    for pos in (0..bytes.len()).step_by(11) {
        let mut copy = bytes.clone();
        copy[pos] ^= 0x01;
        if let Ok(report) = vectors::verify_bytes(&copy) {
            // Whitespace and key-order changes aside, a change must show.
            let reparsed: Result<Value, _> = serde_json::from_slice(&copy);
            if reparsed.ok() != Some(fixture()) {
                assert!(!report.passed(), "flip at byte {pos} went unnoticed");
            }
        }
    }
}

#[test]
fn the_binary_verifies_generates_and_fails_cleanly() {
    let out = harness()
        .args(["vectors", "verify"])
        .arg(repo(FIXTURE))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("ok   agent.privateKeyHex\n"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let mut f = fixture();
    let sig = f["handshake"]["serverHello"]["signature"]
        .as_str()
        .unwrap()
        .replace("0xfb", "0xfc");
    f["handshake"]["serverHello"]["signature"] = json!(sig);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, f.to_string()).unwrap();
    let out = harness()
        .args(["vectors", "verify"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("FAIL handshake.serverHello.signature: file has"),
        "{stdout}"
    );

    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, b"\x00\xffnot json").unwrap();
    let out = harness()
        .args(["vectors", "verify"])
        .arg(&garbage)
        .arg(repo(FIXTURE))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("garbage.json: not JSON"), "{stderr}");
    assert!(String::from_utf8(out.stdout).unwrap().contains("== "));

    let out = harness()
        .args(["vectors", "generate", "--seed", "1", "--format", "upstream"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        out.stdout,
        std::fs::read(repo("vectors/generated/seed-1.upstream.json")).unwrap()
    );

    let target = dir.path().join("suite.json");
    let out = harness()
        .args(["vectors", "generate", "--seed", "1", "--out"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(repo("vectors/generated/seed-1.suite.json")).unwrap()
    );
}
