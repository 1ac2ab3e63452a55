//! `osc-harness bench --target self` end to end, kept short: the summary is
//! well formed, every workload ran without errors, and ratios are present.
//! No speed is asserted.

mod support;

use support::{describe, harness, run, stdout_json};

#[test]
fn bench_against_self_produces_a_complete_summary() {
    let mut cmd = harness();
    cmd.args([
        "bench",
        "--target",
        "self",
        "--duration",
        "250ms",
        "--concurrency",
        "1",
        "--stream-events",
        "16",
    ]);
    let out = run(cmd);
    assert!(out.status.success(), "{}", describe(&out));
    let summary = stdout_json(&out);
    let phases = &summary["phases"];
    for key in [
        "plaintextHealth",
        "handshakes",
        "buffered1KiB",
        "buffered64KiB",
        "stream",
    ] {
        let phase = &phases[key];
        assert!(phase["ops"].as_u64().unwrap() > 0, "{key}: {phase}");
        assert_eq!(phase["errors"], 0, "{key}: {phase}");
        assert!(phase["p99Ms"].as_f64().unwrap() >= phase["p50Ms"].as_f64().unwrap());
        if key != "plaintextHealth" {
            assert!(phase["ratioToPlaintext"].as_f64().unwrap() > 0.0, "{key}");
        }
    }
    // 16 events + [DONE] + fin per streamed call.
    assert_eq!(
        phases["stream"]["frames"].as_u64().unwrap(),
        phases["stream"]["ops"].as_u64().unwrap() * 18
    );
    assert!(summary["handshakeRatioToCore"].as_f64().unwrap() > 0.0);
}
