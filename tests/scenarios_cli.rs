//! `osc-harness test` as a user runs it: exit codes, selection, malformed
//! scenario files, expectations, and a URL target on loopback.

mod support;

use std::collections::BTreeSet;
use std::process::Output;

use osc_harness::server::{self, Bug, ServerConfig};

use support::text;

fn harness(args: &[&str]) -> Output {
    support::harness()
        .args(args)
        .output()
        .expect("run osc-harness")
}

/// Writes `dir/name`, a scenario file naming `requirement` (line 5) with
/// one `[[step]]` table (from line 7) holding `step`, lists the scenarios
/// of `dir`, expects the usage error (exit 2) a malformed file gets, and
/// returns its message.
fn listing_error(dir: &std::path::Path, name: &str, requirement: &str, step: &str) -> String {
    let id = name.trim_end_matches(".toml");
    let toml = format!("id = \"{id}\"\ntitle = \"t\"\ncategory = \"x\"\nlevel = \"MUST\"\nrequirements = [\"{requirement}\"]\n\n[[step]]\n{step}");
    std::fs::write(dir.join(name), toml).unwrap();
    let out = harness(&["test", "--list", "--scenarios", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    text(&out.stderr)
}

#[test]
fn a_selection_matching_nothing_is_a_usage_error() {
    let out = harness(&["test", "--target", "self", "--only", "no-such-scenario"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no scenario matched"));
}

#[test]
fn list_filters_by_category_and_requirement() {
    let out = harness(&["test", "--list", "--only", "CALL-3"]);
    assert_eq!(out.status.code(), Some(0));
    let listed = text(&out.stdout);
    assert!(listed.contains("replay-window"));
    assert!(!listed.contains("mitm-version-2"));
}

#[test]
fn coverage_leaves_no_must_unchecked() {
    let out = harness(&["test", "--coverage"]);
    assert_eq!(out.status.code(), Some(0));
    let table = text(&out.stdout);
    assert!(!table.contains("UNCHECKED"), "{table}");
    assert!(table.contains("CALL-3"));
}

#[test]
fn a_malformed_scenario_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let err = listing_error(
        dir.path(),
        "broken.toml",
        "CALL-3",
        "do = \"call\"\nsqe = 3\n",
    );
    assert!(err.contains("broken.toml:9"), "{err}");
    assert!(err.contains("sqe"), "{err}");

    let err = listing_error(dir.path(), "broken.toml", "NOPE-1", "do = \"call\"\n");
    assert!(
        err.contains("broken.toml:5") && err.contains("requirements"),
        "{err}"
    );
}

#[test]
fn a_user_scenario_from_a_directory_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("custom.toml"),
        r#"
id = "custom-health"
title = "Health through the channel"
category = "custom"
level = "MUST"
requirements = ["GATE-4"]

[[step]]
do = "handshake"

[[step]]
do = "call"
path = "/health"
expect = { status = 200, inner_status = 200, frames = 1, fin = true }
"#,
    )
    .unwrap();
    let out = harness(&[
        "test",
        "--target",
        "self",
        "--scenarios",
        dir.path().to_str().unwrap(),
        "--only",
        "custom",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("pass custom-health"));

    let err = listing_error(dir.path(), "custom.toml", "GATE-4", "path = \"/health\"\n");
    assert!(
        err.contains("custom.toml:7") && err.contains("`do`"),
        "{err}"
    );
}

/// `test` against `url` for an agent made up for the test, with `extra`.
fn test_made_up_agent(url: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "test",
        "--target",
        url,
        "--agent-address",
        "0x331565e19602986634610f4B33Ff7ad182860036",
        "--access-key",
        "osk-v1.x",
    ];
    args.extend_from_slice(extra);
    harness(&args)
}

#[test]
fn an_unreachable_target_exits_3() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let out = test_made_up_agent(&format!("http://127.0.0.1:{port}"), &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("unreachable"));
}

#[test]
fn a_silent_target_exits_3_without_hanging() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let out = test_made_up_agent(&url, &["--timeout", "1"]);
    drop(listener);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("went quiet"),
        "{}",
        text(&out.stderr)
    );
}

async fn serve(bugs: &[Bug]) -> server::RunningServer {
    let mut config = ServerConfig::generated();
    config.handshake_rate = None;
    config.bugs = bugs.iter().copied().collect::<BTreeSet<_>>();
    server::spawn(config).await.unwrap()
}

fn url_args(s: &server::RunningServer) -> Vec<String> {
    let mut args = support::target_args("test", s);
    args.extend(["--agent-id", &s.agent_id, "--handshake-budget", "none"].map(String::from));
    args
}

/// Runs the harness with `args` on a blocking thread, so the in-process
/// servers of the test keep answering.
async fn harness_off_thread(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        harness(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap()
}

/// `test` against the in-process server `s` with `extra` arguments.
async fn test_url(s: &server::RunningServer, extra: &[&str]) -> Output {
    let mut args = url_args(s);
    args.extend(extra.iter().map(|a| a.to_string()));
    harness_off_thread(args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_target_passes_fails_and_adopts_expectations() {
    let honest = serve(&[]).await;
    let out = test_url(&honest, &["--only", "replay-*", "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let doc: serde_json::Value = support::stdout_json(&out);
    assert_eq!(doc["schema"], "osc-harness/test-report/v1");
    assert!(doc["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["verdict"] == "pass"));
    assert!(!text(&out.stdout).contains(&honest.access_key));

    let broken = serve(&[Bug::SeqZeroAccepted]).await;
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("expect.toml").display().to_string();
    let junit = dir.path().join("report.xml").display().to_string();
    let out = test_url(
        &broken,
        &[
            "--only",
            "replay-seq-zero",
            "--write-expect",
            &expect,
            "--report",
            &junit,
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out.stdout);
    assert!(shown.contains("FAIL replay-seq-zero"), "{shown}");
    assert!(
        shown.contains("--access-key <redacted>") && shown.contains("--only replay-seq-zero"),
        "{shown}"
    );
    assert!(!shown.contains(&broken.access_key));
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("<failure"));

    // The same failure, now known, keeps the run green.
    let known = ["--only", "replay-seq-zero", "--expect", &expect];
    let out = test_url(&broken, &known).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // Against the honest server the known failure now passes: that fails the run.
    let out = test_url(&honest, &known).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("now passes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_echoing_the_key_does_not_leak_it_into_reports() {
    // Without the 426 gate the demo app executes the plaintext run and
    // echoes its headers, Authorization included.
    let broken = serve(&[Bug::No426Gate]).await;
    let key = broken.access_key.clone();
    let out = test_url(
        &broken,
        &["--only", "gate-plain-run-426", "--format", "json"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let json = text(&out.stdout);
    assert!(json.contains("\"verdict\": \"fail\""), "{json}");
    assert!(!json.contains(&key), "the access key leaked: {json}");
}

/// `serve` as its own process (its default trusts loopback callers unless
/// `extra` says otherwise), and the `test` arguments that reach it.
fn served(extra: &[&str]) -> (support::Running, Vec<String>) {
    support::served_for_test("127.0.0.1:0", extra, "gate-loopback-plaintext")
}

/// The GATE-2 scenario's verdict and the run's exit code.
fn gate2(args: &[String], extra: &[&str]) -> (Option<i32>, String) {
    let mut cmd = support::harness();
    cmd.args(args).args(extra);
    let out = support::run(cmd);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("report JSON ({e}): {}", support::describe(&out)));
    let scenario = doc["scenarios"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["id"] == "gate-loopback-plaintext"))
        .unwrap_or_else(|| panic!("no GATE-2 scenario: {doc:#}"));
    (
        out.status.code(),
        scenario["verdict"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn trusts_loopback_runs_gate2_against_a_url_target() {
    let (_honest, args) = served(&[]);
    assert_eq!(gate2(&args, &[]), (Some(0), "skip".into()), "unknown trust");
    assert_eq!(
        gate2(&args, &["--trusts-loopback"]),
        (Some(0), "pass".into()),
        "a loopback-trusting serve runs plaintext for an unmarked caller"
    );
    // A target that does not trust loopback although the flag says it
    // does: the scenario runs and fails rather than passing vacuously.
    let (_untrusting, args) = served(&["--trust-loopback", "false"]);
    assert_eq!(
        gate2(&args, &["--trusts-loopback"]),
        (Some(1), "fail".into())
    );
}

/// The report's entry for scenario `id`.
fn scenario_entry(out: &Output, id: &str) -> serde_json::Value {
    let doc = support::stdout_json(out);
    doc["scenarios"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["id"] == id).cloned())
        .unwrap_or_else(|| panic!("no {id} in {doc:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rerun_line_reproduces_the_target_flags() {
    let broken = serve(&[Bug::SeqZeroAccepted]).await;
    let out = test_url(
        &broken,
        &[
            "--via-relay",
            "--timeout",
            "7",
            "--only",
            "replay-seq-zero",
            "--format",
            "json",
        ],
    )
    .await;
    let entry = scenario_entry(&out, "replay-seq-zero");
    assert_eq!(entry["verdict"], "fail", "{entry:#}");
    let repro = entry["repro"].as_str().unwrap();
    for flag in [
        "--via-relay",
        "--timeout 7",
        "--handshake-budget none",
        "--access-key <redacted>",
        &format!("--agent-id {}", broken.agent_id),
        "--only replay-seq-zero",
    ] {
        assert!(repro.contains(flag), "{flag} missing: {repro}");
    }
    assert!(!repro.contains("--relay-origin"), "{repro}");
    assert!(!repro.contains(&broken.access_key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_outlived_by_the_budget_wait_is_never_judged() {
    // The budget makes the second handshake wait longer than the first
    // session lives: the step on that session must not be sent (and judged
    // against the 401 it would get); with no handshake to spare for a fresh
    // session, the scenario is inconclusive.
    let mut config = ServerConfig::generated();
    config.handshake_rate = None;
    config.session_ttl_secs = 2;
    let short = server::spawn(config).await.unwrap();
    let mut args = support::target_args("test", &short);
    args.extend(
        [
            "--agent-id",
            &short.agent_id,
            "--handshake-budget",
            "1/3",
            "--only",
            "replay-transplant",
            "--format",
            "json",
        ]
        .map(String::from),
    );
    let out = harness_off_thread(args).await;
    let entry = scenario_entry(&out, "replay-transplant");
    assert_eq!(entry["verdict"], "skip", "{entry:#}");
    assert!(
        entry["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("inconclusive"),
        "{entry:#}"
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::describe(&out));
}

/// How a loopback stand-in for the relay answers `/secure/call`.
#[derive(Clone, Copy)]
enum RelayPlay {
    /// Its own 429 to the first two calls, then it carries every request.
    RateLimitTwice,
    /// Its own 502 `agent_offline` to every call.
    AgentOffline,
}

/// A stand-in for the relay on loopback: it carries each request to
/// `upstream` and adds the relay's headers, or answers a call itself, with
/// the relay's documented bodies and headers. Returns its URL and the count
/// of answers it gave itself.
async fn relay_stand_in(
    upstream: &str,
    play: RelayPlay,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let upstream = osc_harness::transport::Target::parse(upstream).unwrap();
    let own = Arc::new(AtomicUsize::new(0));
    let counted = own.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (upstream, own) = (upstream.clone(), counted.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let mut lines = head.split("\r\n");
                let mut first = lines.next().unwrap_or("").split(' ');
                let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
                let mut headers = Vec::new();
                let mut length = 0usize;
                for line in lines.filter(|l| !l.is_empty()) {
                    if let Some((k, v)) = line.split_once(':') {
                        let (k, v) = (k.trim().to_string(), v.trim().to_string());
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.parse().unwrap_or(0);
                        } else if !k.eq_ignore_ascii_case("host")
                            && !k.eq_ignore_ascii_case("connection")
                        {
                            headers.push((k, v));
                        }
                    }
                }
                while buf.len() < head_end + length {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = buf[head_end..head_end + length].to_vec();
                let relay_headers = [
                    ("x-relay-region", "lo1"),
                    ("x-relay-machine", "stand-in"),
                    ("server-timing", "lookup;dur=0, host;dur=1, relay;dur=1"),
                ];
                let own_error = if path == "/secure/call" {
                    match play {
                        RelayPlay::RateLimitTwice if own.load(Ordering::SeqCst) < 2 => {
                            Some((429, "rate_limited"))
                        }
                        RelayPlay::AgentOffline => Some((502, "agent_offline")),
                        RelayPlay::RateLimitTwice => None,
                    }
                } else {
                    None
                };
                let (status, mut out_headers, out_body) = match own_error {
                    Some((status, code)) => {
                        own.fetch_add(1, Ordering::SeqCst);
                        (
                            status,
                            vec![("content-type".to_string(), "application/json".to_string())],
                            format!("{{\"error\":\"{code}\"}}").into_bytes(),
                        )
                    }
                    None => {
                        let req = osc_harness::transport::OuterRequest {
                            method: method.to_string(),
                            path: path.to_string(),
                            headers,
                            body,
                        };
                        match osc_harness::transport::send(
                            &upstream,
                            &req,
                            &osc_harness::transport::Limits::default(),
                        )
                        .await
                        {
                            Ok(r) => (r.status, r.headers, r.body),
                            Err(_) => (
                                504,
                                vec![("content-type".into(), "application/json".into())],
                                b"{\"error\":\"gateway_timeout\"}".to_vec(),
                            ),
                        }
                    }
                };
                out_headers.retain(|(k, _)| {
                    !["content-length", "transfer-encoding", "connection"]
                        .iter()
                        .any(|h| k.eq_ignore_ascii_case(h))
                });
                out_headers.extend(relay_headers.map(|(k, v)| (k.to_string(), v.to_string())));
                let mut reply = format!("HTTP/1.1 {status} X\r\n");
                for (k, v) in &out_headers {
                    reply.push_str(&format!("{k}: {v}\r\n"));
                }
                reply.push_str(&format!(
                    "content-length: {}\r\nconnection: close\r\n\r\n",
                    out_body.len()
                ));
                let mut bytes = reply.into_bytes();
                bytes.extend_from_slice(&out_body);
                let _ = sock.write_all(&bytes).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (url, own)
}

/// `test --via-relay` through the stand-in, one scenario, JSON report.
async fn through_relay(url: &str, s: &server::RunningServer, only: &str) -> Output {
    let args: Vec<String> = [
        "test",
        "--target",
        url,
        "--agent-address",
        &s.agent_address.to_checksum(),
        "--access-key",
        &s.access_key,
        "--agent-id",
        &s.agent_id,
        "--via-relay",
        "--relay-origin",
        "on",
        "--handshake-budget",
        "none",
        "--only",
        only,
        "--format",
        "json",
    ]
    .map(String::from)
    .to_vec();
    harness_off_thread(args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relays_own_answers_are_never_judged_as_the_agents() {
    let honest = serve(&[]).await;
    // The relay's 429s are waited out and the call sent again: the
    // scenario passes, and the relay's headers are information.
    let (url, own) = relay_stand_in(&honest.url, RelayPlay::RateLimitTwice).await;
    let out = through_relay(&url, &honest, "replay-seq-zero").await;
    let entry = scenario_entry(&out, "replay-seq-zero");
    assert_eq!(entry["verdict"], "pass", "{entry:#}");
    assert_eq!(own.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(
        entry
            .to_string()
            .contains("relay: region lo1, machine stand-in"),
        "{entry:#}"
    );
    // The relay's 502 in the agent's place: inconclusive, with its reason.
    let (url, _) = relay_stand_in(&honest.url, RelayPlay::AgentOffline).await;
    let out = through_relay(&url, &honest, "replay-seq-zero").await;
    let entry = scenario_entry(&out, "replay-seq-zero");
    assert_eq!(entry["verdict"], "skip", "{entry:#}");
    let reason = entry["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("inconclusive") && reason.contains("502 agent_offline"),
        "{entry:#}"
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::describe(&out));
}
