//! Snapshots of the three report formats for a fixed run covering every
//! verdict (durations are zero, as in `--stable` mode).

use osc_harness::report::{
    render_json, render_junit, render_text, Exchange, RunReport, ScenarioResult, TextOptions,
    Verdict,
};

fn result(
    id: &str,
    category: &str,
    level: &str,
    verdict: Verdict,
    reason: Option<&str>,
) -> ScenarioResult {
    let failed = matches!(verdict, Verdict::Fail | Verdict::Warn | Verdict::Info);
    ScenarioResult {
        id: id.into(),
        title: format!("title of {id}"),
        category: category.into(),
        level: level.into(),
        requirements: vec!["CALL-3".into()],
        verdict,
        reason: reason.map(str::to_owned),
        expected: failed.then(|| "status 409 secure_replay".to_string()),
        repro: failed.then(|| format!("osc-harness test --target self --only {id}")),
        precondition: false,
        known: false,
        duration_ms: 0,
        transcript: if verdict == Verdict::Fail {
            vec![Exchange {
                step: 1,
                action: "resend".into(),
                request_line: "POST /secure/call".into(),
                request_body: r#"{"ct":"AAAA","seq":1,"sid":"c2lk","v":1}"#.into(),
                inner_request: None,
                status: 200,
                response_body: r#"{"seq":0,"ct":"BBBB","fin":true}"#.into(),
                inner_response: Some(r#"200 application/json {"executions":2}"#.into()),
                note: None,
            }]
        } else {
            Vec::new()
        },
    }
}

fn fixed() -> RunReport {
    RunReport {
        target: "self".into(),
        insecure: false,
        duration_ms: 0,
        scenarios: vec![
            result("replay-window", "replay", "MUST", Verdict::Pass, None),
            result(
                "replay-same-envelope",
                "replay",
                "MUST",
                Verdict::Fail,
                Some("step 4 (resend): got status 200"),
            ),
            result(
                "mitm-low-order-key",
                "mitm",
                "SHOULD",
                Verdict::Warn,
                Some("step 1 (handshake): got status 200"),
            ),
            result(
                "gate-models-plaintext",
                "downgrade",
                "UPSTREAM",
                Verdict::Info,
                Some("step 1 (plain): got status 404"),
            ),
            result(
                "inside-scope",
                "inside",
                "MUST",
                Verdict::Skip,
                Some("no --scoped-key/--scoped-agent-id given"),
            ),
        ],
        not_exercised: vec!["ENC-1".into(), "HS-8".into(), "LIM-1".into()],
        run_problems: Vec::new(),
    }
}

#[test]
fn text_report() {
    let report = fixed();
    assert_eq!(report.exit_code(false), 1);
    insta::assert_snapshot!(
        "scenarios_text_report",
        render_text(
            &report,
            TextOptions {
                color: false,
                verbose: false
            }
        )
    );
}

#[test]
fn json_report() {
    insta::assert_snapshot!("scenarios_json_report", render_json(&fixed()));
}

#[test]
fn junit_report() {
    insta::assert_snapshot!("scenarios_junit_report", render_junit(&fixed()));
}

#[test]
fn colour_only_when_asked() {
    let plain = render_text(
        &fixed(),
        TextOptions {
            color: false,
            verbose: false,
        },
    );
    let coloured = render_text(
        &fixed(),
        TextOptions {
            color: true,
            verbose: false,
        },
    );
    assert!(!plain.contains('\x1b'));
    assert!(coloured.contains("\x1b[1;31mFAIL"));
}
