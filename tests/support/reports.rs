//! Reports for the renderer tests: a report full of hostile text, a short
//! fuzz run's HTML page, and the links of a page.

use std::path::Path;

use serde_json::Value;

use super::process::{describe, harness, run};

/// A string a hostile target could put anywhere in a report: if any
/// renderer let it through unescaped, a browser would run it.
pub const HOSTILE: &str =
    "<script>console.error('xss')</script><img src=x onerror=\"console.error('img')\">'\"&";

/// A report whose every target-controlled string is [`HOSTILE`], with a
/// failure, a skip and one long transcript (streamed frames included).
pub fn hostile_report(exchanges: usize) -> osc_harness::report::RunReport {
    use osc_harness::report::{Exchange, RunReport, ScenarioResult, Verdict};
    let exchange = |step: usize| {
        Exchange {
        step,
        action: format!("call {HOSTILE}"),
        request_line: "POST /secure/call".into(),
        request_body: format!("{{\"sid\":\"{HOSTILE}\"}}"),
        inner_request: Some(format!("GET /agents/x Authorization: Bearer <redacted> {HOSTILE}")),
        status: 200,
        response_body: format!(
            "data: {{\"seq\":0,\"ct\":\"AAAA\"}}\n\ndata: {{\"seq\":1,\"fin\":true,\"ct\":\"{HOSTILE}\"}}\n\n"
        ),
        inner_response: Some(format!("200 text/plain {HOSTILE}")),
        note: Some(format!("the relay changed {HOSTILE}")),
    }
    };
    let scenario = |id: &str, verdict: Verdict, n: usize| ScenarioResult {
        id: id.into(),
        title: format!("title {HOSTILE}"),
        category: "replay".into(),
        level: "MUST".into(),
        requirements: vec!["CALL-2".into(), "HS-1".into()],
        verdict,
        reason: (verdict != Verdict::Pass).then(|| format!("reason {HOSTILE}")),
        expected: (verdict == Verdict::Fail).then(|| format!("expected {HOSTILE}")),
        repro: Some(format!("osc-harness test --target self --only {id}")),
        precondition: false,
        known: false,
        duration_ms: 3,
        transcript: (0..n).map(exchange).collect(),
    };
    RunReport {
        target: format!("http://127.0.0.1:1/{HOSTILE}"),
        duration_ms: 1234,
        scenarios: vec![
            scenario("hostile-fail", Verdict::Fail, 2),
            scenario("hostile-skip", Verdict::Skip, 0),
            scenario("hostile-long", Verdict::Pass, exchanges),
            scenario(&format!("odd-id-{HOSTILE}"), Verdict::Warn, 1),
        ],
        not_exercised: vec!["ENC-1".into()],
        run_problems: vec![format!("problem {HOSTILE}")],
        insecure: false,
    }
}

/// The `fuzz` summary of a short run against the in-process reference
/// server, written as HTML to `path`; returns the JSON summary too.
pub fn fuzz_html(path: &Path, findings: &Path) -> Value {
    let mut cmd = harness();
    cmd.args(["fuzz", "--target", "self", "--max-execs", "400", "--quiet"])
        .arg("--findings")
        .arg(findings)
        .arg("--report")
        .arg(path);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).expect("the summary is JSON")
}

/// The `src`/`href`/`action`/`srcset` attribute values of an HTML page's
/// tags, read attribute by attribute so quoted values (escaped hostile
/// text included) are never mistaken for attributes.
pub fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for tag in html.split('<').skip(1) {
        let chars: Vec<char> = tag.chars().collect();
        // Skip the tag name.
        let mut i = chars
            .iter()
            .position(|c| c.is_whitespace() || *c == '>')
            .unwrap_or(chars.len());
        while i < chars.len() && chars[i] != '>' {
            while i < chars.len() && (chars[i].is_whitespace() || chars[i] == '/') {
                i += 1;
            }
            let start = i;
            while i < chars.len() && !"= \t\n>".contains(chars[i]) {
                i += 1;
            }
            let name: String = chars[start..i]
                .iter()
                .collect::<String>()
                .to_ascii_lowercase();
            let mut value = String::new();
            if i < chars.len() && chars[i] == '=' {
                i += 1;
                if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
                    let q = chars[i];
                    i += 1;
                    while i < chars.len() && chars[i] != q {
                        value.push(chars[i]);
                        i += 1;
                    }
                    i += 1;
                } else {
                    while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '>' {
                        value.push(chars[i]);
                        i += 1;
                    }
                }
            }
            if matches!(
                name.as_str(),
                "src" | "href" | "action" | "xlink:href" | "srcset"
            ) {
                out.push(value);
            }
            if start == i {
                i += 1;
            }
        }
    }
    out
}

/// Each scenario of a JSON run report (`test`, `test-client`) with its
/// verdict, as `(id, verdict)` in report order.
pub fn verdicts_by_id(report: &Value) -> Vec<(String, String)> {
    report["scenarios"]
        .as_array()
        .expect("a report has scenarios")
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or_default().to_string(),
                s["verdict"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}
