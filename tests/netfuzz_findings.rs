//! How the network fuzzer keeps findings: one saved file per response
//! shape within a bucket, and minimisation that shortens long values.
//! The inputs are preloaded through `--corpus` (run first, in name order),
//! so each run is the same whatever the generator draws.

mod support;

use std::path::Path;

use osc_harness::netfuzz::case::{Auth, CorpusEntry, EnvelopeEdit, Inner, Step};
use osc_harness::netfuzz::gen::Generator;
use serde_json::Value;
use support::{exec, harness};

/// The honest inner body (base64url of `{"input":"fuzz"}`).
const RUN_BODY: &str = "eyJpbnB1dCI6ImZ1enoifQ";

/// Writes `cases` as corpus entries named so they load in this order.
fn corpus(dir: &Path, cases: &[Vec<Step>]) {
    std::fs::create_dir_all(dir).unwrap();
    for (i, steps) in cases.iter().enumerate() {
        let entry = CorpusEntry {
            shape: "preloaded".into(),
            steps: steps.clone(),
        };
        let text = serde_json::to_string(&entry).unwrap();
        std::fs::write(dir.join(format!("{i:02}.json")), text).unwrap();
    }
}

/// Fuzzes `--target self` with `bug` for exactly the preloaded cases.
fn fuzz_preloaded(dir: &Path, bug: &str, cases: &[Vec<Step>]) -> Value {
    let corpus_dir = dir.join("corpus");
    corpus(&corpus_dir, cases);
    let (code, out, err) = exec(
        harness()
            .args(["fuzz", "--target", "self", "--quiet", "--seed", "5"])
            .args(["--bug", bug, "--timeout", "10"])
            .arg("--max-execs")
            .arg(cases.len().to_string())
            .arg("--corpus")
            .arg(&corpus_dir)
            .arg("--findings")
            .arg(dir.join("findings")),
    );
    let summary: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\nstderr: {err}"));
    assert_eq!(code, 1, "findings mean exit 1: {summary}");
    summary
}

fn replay(file: &Path, bugs: &[&str]) -> (i32, String) {
    let mut cmd = harness();
    cmd.arg("replay").arg(file).args(["--target", "self"]);
    for b in bugs {
        cmd.args(["--bug", b]);
    }
    let (code, out, err) = exec(&mut cmd);
    (code, format!("{out}{err}"))
}

/// A call whose two tag flips cancel (so the envelope is honest again and
/// the call is judged on its answer alone) around this inner request.
fn flipped_twice(inner: Inner) -> Vec<Step> {
    let mut call = Generator::valid_call();
    call.inner = inner;
    call.envelope = vec![EnvelopeEdit::FlipTag, EnvelopeEdit::FlipTag];
    vec![Step::Call(call)]
}

#[test]
fn one_bucket_two_shapes_two_findings() {
    // Under status-outside the inner status leaks onto the outer answer:
    // a missing inner key comes back as 401, an unknown route as 404. Both
    // fire undocumented-body/envelope/tag, with different shapes.
    let dir = tempfile::tempdir().unwrap();
    let no_key = flipped_twice(Inner::Request {
        method: "POST".into(),
        path: "/agents/{agent}/run".into(),
        auth: Auth::None,
        body: Some(RUN_BODY.into()),
    });
    let no_route = flipped_twice(Inner::Request {
        method: "GET".into(),
        path: "/nope".into(),
        auth: Auth::Key,
        body: None,
    });
    let again = no_key.clone();
    let summary = fuzz_preloaded(dir.path(), "status-outside", &[no_key, no_route, again]);
    let buckets = summary["findings"].as_array().unwrap();
    assert_eq!(buckets.len(), 1, "{summary}");
    let bucket = &buckets[0];
    assert_eq!(bucket["signature"], "undocumented-body/envelope/tag");
    assert_eq!(bucket["count"], 3, "{bucket}");
    assert_eq!(bucket["other_shapes"], 0);
    let shapes = bucket["shapes"].as_array().unwrap();
    let listed: Vec<(&str, u64)> = shapes
        .iter()
        .map(|s| (s["shape"].as_str().unwrap(), s["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        listed,
        vec![("/secure/call 401 ", 2), ("/secure/call 404 ", 1)],
        "{bucket}"
    );
    let files: Vec<&str> = shapes.iter().map(|s| s["file"].as_str().unwrap()).collect();
    assert_ne!(files[0], files[1]);
    assert_eq!(bucket["file"], files[0]);
    for (file, (shape, count)) in files.iter().zip(&listed) {
        let saved: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert_eq!(saved["shape"], *shape, "{file}");
        assert_eq!(saved["count"], *count, "{file}");
        assert!(file.contains("undocumented-body-envelope-tag--"), "{file}");
        let (code, out) = replay(Path::new(file), &["status-outside"]);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.starts_with("STILL FAILING: undocumented-body/envelope/tag"),
            "{out}"
        );
        assert!(!out.contains("the answer is now"), "{out}");
        let (code, out) = replay(Path::new(file), &[]);
        assert_eq!(code, 0, "{out}");
        assert!(out.starts_with("FIXED"), "{out}");
    }
    // Exactly the two findings were written.
    let written = std::fs::read_dir(dir.path().join("findings"))
        .unwrap()
        .count();
    assert_eq!(written, 2);
}

#[test]
fn minimisation_shortens_a_long_value() {
    // panic-on-empty-ct drops the connection for any empty ct, so neither
    // the 4096-character sid nor the explicit seq near 2^64 is needed; the
    // sid edit itself stays (without it the signature's field changes).
    let dir = tempfile::tempdir().unwrap();
    let long_sid = format!("\"{}\"", "A".repeat(4096));
    let mut call = Generator::valid_call();
    call.seq = Some(u64::MAX - 1);
    call.envelope = vec![
        EnvelopeEdit::Set {
            field: "sid".into(),
            json: long_sid.clone(),
            invalid: true,
        },
        EnvelopeEdit::Set {
            field: "ct".into(),
            json: "\"\"".into(),
            invalid: true,
        },
    ];
    let summary = fuzz_preloaded(dir.path(), "panic-on-empty-ct", &[vec![Step::Call(call)]]);
    let bucket = &summary["findings"][0];
    assert_eq!(
        bucket["signature"], "dropped-connection/envelope/sid",
        "{summary}"
    );
    let file = bucket["shapes"][0]["file"].as_str().unwrap();
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let step = &saved["steps"][0];
    assert_eq!(
        step["seq"],
        Value::Null,
        "the explicit seq is removed: {step}"
    );
    let sid = step["envelope"][0]["json"].as_str().unwrap();
    assert_eq!(step["envelope"][0]["field"], "sid", "{step}");
    assert!(sid.len() < long_sid.len() / 100, "sid not shortened: {sid}");
    assert!(serde_json::from_str::<Value>(sid).unwrap().is_string());
    let (code, out) = replay(Path::new(file), &["panic-on-empty-ct"]);
    assert_eq!(code, 1, "the shortened finding still fires: {out}");
}

#[test]
fn a_finding_saved_without_a_shape_still_replays() {
    // Files from before findings were kept per shape have no `shape`.
    let dir = tempfile::tempdir().unwrap();
    let mut call = Generator::valid_call();
    call.inner = Inner::Request {
        method: "POST".into(),
        path: "/agents/{agent}/run".into(),
        auth: Auth::None,
        body: Some(RUN_BODY.into()),
    };
    let summary = fuzz_preloaded(
        dir.path(),
        "inner-auth-unchecked",
        &[vec![Step::Call(call)]],
    );
    let file = summary["findings"][0]["file"].as_str().unwrap().to_string();
    let mut saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(saved.as_object_mut().unwrap().remove("shape").is_some());
    let old = dir.path().join("old.json");
    std::fs::write(&old, serde_json::to_string_pretty(&saved).unwrap()).unwrap();

    let (code, out) = replay(&old, &["inner-auth-unchecked"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("STILL FAILING: inner-auth-bypass/inner/authorization"),
        "{out}"
    );
    let (code, out) = replay(&old, &[]);
    assert_eq!(code, 0, "{out}");

    let toml = dir.path().join("scenarios").join("old.toml");
    let (code, out, err) = exec(
        harness()
            .arg("replay")
            .arg(&old)
            .arg("--to-scenario")
            .arg(&toml),
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(std::fs::read_to_string(&toml).unwrap().contains("[[step]]"));
}
