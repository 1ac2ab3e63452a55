//! The reference client against the reference server over real loopback
//! HTTP: honest calls work through [`Channel`] and through the built
//! binary, and each server knob the client must notice gives the documented
//! exit code.

mod support;

use std::process::Output;
use std::time::Duration;

use osc_harness::client::{exit, Channel, ClientBug};
use osc_harness::protocol::encoding::b64url_encode;
use osc_harness::protocol::identity::AgentIdentity;
use osc_harness::protocol::wire::InnerRequest;
use osc_harness::server::{self, Bug, RunningServer, ServerConfig};
use osc_harness::transport::{Limits, Target};

fn limits() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(5),
        max_body_bytes: 4 * 1024 * 1024,
    }
}

async fn start(bugs: &[Bug]) -> RunningServer {
    let mut config = ServerConfig::generated();
    // Tests handshake far more often than the upstream budget allows.
    config.handshake_rate = None;
    config.bugs = bugs.iter().copied().collect();
    server::spawn(config)
        .await
        .expect("the reference server starts")
}

fn channel(s: &RunningServer) -> Channel {
    Channel::new(Target::parse(&s.url).unwrap(), s.agent_address, limits())
}

fn run_request(s: &RunningServer, body: &[u8]) -> InnerRequest {
    InnerRequest {
        method: "POST".into(),
        path: format!("/agents/{}/run", s.agent_id),
        authorization: Some(format!("Bearer {}", s.access_key)),
        content_type: Some("application/json".into()),
        body: Some(b64url_encode(body)),
        ..Default::default()
    }
}

fn dispatch_request(s: &RunningServer, events: usize, size: usize) -> InnerRequest {
    InnerRequest {
        method: "POST".into(),
        path: format!("/agents/{}/dispatch", s.agent_id),
        authorization: Some(format!("Bearer {}", s.access_key)),
        accept: Some("text/event-stream".into()),
        content_type: Some("application/json".into()),
        body: Some(b64url_encode(
            format!(r#"{{"events":{events},"size":{size}}}"#).as_bytes(),
        )),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_buffered_and_streamed_calls() {
    let s = start(&[]).await;
    let mut ch = channel(&s).with_relay_origin(true);
    let out = ch.call(run_request(&s, br#"{"hello":1}"#)).await.unwrap();
    assert_eq!(out.inner_status, 200);
    assert!(!out.streamed);
    assert_eq!(out.frames, 1);
    let echo: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["bodyLen"], 11);

    let mut pieces = 0;
    let out = ch
        .call_with(dispatch_request(&s, 5, 8), &mut |_| pieces += 1)
        .await
        .unwrap();
    assert!(out.streamed);
    assert_eq!(out.inner_status, 200);
    // Five events, the [DONE] event, then the empty fin frame.
    assert_eq!(out.frames, 7);
    assert_eq!(pieces, 7);
    let text = String::from_utf8(out.body).unwrap();
    assert_eq!(text.matches("data: {").count(), 5, "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(ch.handshakes(), 1, "one session serves both calls");

    // A wrong key inside the channel is the agent's 401, not a channel error.
    let mut bad = run_request(&s, b"{}");
    bad.authorization = Some("Bearer osk-v1.wrong".into());
    let out = ch.call(bad).await.unwrap();
    assert_eq!(out.inner_status, 401);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_forgets_sessions_and_the_client_recovers() {
    let mut config = ServerConfig::generated();
    config.handshake_rate = None;
    let secret = config.identity.secret_bytes();
    let agent_id = config.agent_id.clone();
    let first = server::spawn(config).await.unwrap();
    let target = Target::parse(&first.url).unwrap();
    let mut ch = channel(&first);
    ch.call(run_request(&first, b"{}")).await.unwrap();
    let request = run_request(&first, b"{}");
    first.shutdown().await;

    // The same agent comes back on the same port with an empty store
    // (SES-4): the cached session gets 401 and the client recovers once.
    let mut config = ServerConfig::generated();
    config.handshake_rate = None;
    config.identity = AgentIdentity::from_bytes(&secret).unwrap();
    config.agent_id = agent_id;
    config.listen = target.socket_addr().unwrap();
    let mut config_key = config;
    config_key.access_key = request.authorization.clone().unwrap()["Bearer ".len()..].to_string();
    let second = server::spawn(config_key).await.unwrap();
    let out = ch.call(request).await.unwrap();
    assert_eq!(out.inner_status, 200);
    assert_eq!(ch.handshakes(), 2);
    second.shutdown().await;
}

fn binary(args: &[&str]) -> Output {
    support::harness()
        .args(args)
        .output()
        .expect("the binary runs")
}

fn call_args(s: &RunningServer, path: &str) -> Vec<String> {
    let mut args = support::target_args("call", s);
    args.extend(["--path", path, "--timeout", "10"].map(String::from));
    args
}

async fn run_binary(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        binary(&refs)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_buffered_and_streamed() {
    let s = start(&[]).await;
    let mut args = call_args(&s, &format!("/agents/{}/run", s.agent_id));
    args.extend([
        "--data".into(),
        r#"{"x":1}"#.into(),
        "--relay-origin".into(),
    ]);
    let out = run_binary(args).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let echo: serde_json::Value = support::stdout_json(&out);
    assert_eq!(echo["bodyLen"], 7);

    let mut args = call_args(&s, &format!("/agents/{}/dispatch", s.agent_id));
    args.extend([
        "--data".into(),
        r#"{"events":3,"size":4}"#.into(),
        "--stream".into(),
    ]);
    let out = run_binary(args).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");

    let out = run_binary(call_args(&s, "/agents/nobody-here/run")).await;
    assert_eq!(out.status.code(), Some(i32::from(exit::INNER_STATUS)));

    let mut args = call_args(&s, "/health");
    args[4] = "0x000000000000000000000000000000000000dEaD".into();
    let out = run_binary(args).await;
    assert_eq!(out.status.code(), Some(i32::from(exit::IDENTITY_MISMATCH)));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the agent you pinned"));
    s.shutdown().await;
}

/// Each knob the client must notice, and the exit code it must give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_detects_broken_servers() {
    let cases: [(Bug, bool, u8); 4] = [
        (Bug::WrongSigningKey, false, exit::IDENTITY_MISMATCH),
        (Bug::StreamDropsFin, true, exit::TRUNCATED),
        (Bug::StreamCutMidFrame, true, exit::TRUNCATED),
        (Bug::FramesReordered, true, exit::PROTOCOL),
    ];
    for (bug, stream, code) in cases {
        let s = start(&[bug]).await;
        let mut args = if stream {
            let mut a = call_args(&s, &format!("/agents/{}/dispatch", s.agent_id));
            a.extend([
                "--data".into(),
                r#"{"events":4,"size":8}"#.into(),
                "--stream".into(),
            ]);
            a
        } else {
            call_args(&s, "/health")
        };
        args.push("--relay-origin".into());
        let out = run_binary(args).await;
        assert_eq!(
            out.status.code(),
            Some(i32::from(code)),
            "{}: {}",
            bug.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        s.shutdown().await;
    }
}

/// Further knobs the client sees through the same checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_detects_more_broken_servers() {
    for bug in [Bug::FinOnEveryFrame, Bug::SessionKeyForResponses] {
        let s = start(&[bug]).await;
        let e = channel(&s)
            .call(dispatch_request(&s, 3, 8))
            .await
            .unwrap_err();
        assert_eq!(e.exit_code(), exit::PROTOCOL, "{}: {e}", bug.name());
        s.shutdown().await;
    }
    let s = start(&[Bug::ExpiryInPast]).await;
    let e = channel(&s).call(run_request(&s, b"{}")).await.unwrap_err();
    assert_eq!(e.exit_code(), exit::PROTOCOL, "{e}");
    s.shutdown().await;
}

/// SES-3: a session with less than the margin left is not reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_sessions_are_renewed_before_use() {
    let mut config = ServerConfig::generated();
    config.handshake_rate = None;
    config.session_ttl_secs = 30;
    let s = server::spawn(config).await.unwrap();
    let mut ch = channel(&s);
    for _ in 0..3 {
        assert_eq!(
            ch.call(run_request(&s, b"{}")).await.unwrap().inner_status,
            200
        );
    }
    assert_eq!(ch.handshakes(), 3, "30 s left is inside the 60 s margin");
    s.shutdown().await;
}

/// The client knobs that bend what goes on the wire are visible there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_knobs_show_on_the_wire() {
    let s = start(&[]).await;
    let mut honest = channel(&s);
    let mut broken = channel(&s).with_bugs([ClientBug::ReplaySameSeq]);
    for _ in 0..2 {
        honest.call(run_request(&s, b"{}")).await.unwrap();
    }
    broken.call(run_request(&s, b"{}")).await.unwrap();
    let e = broken.call(run_request(&s, b"{}")).await.unwrap_err();
    assert_eq!(e.refusal_code(), Some("secure_replay"), "{e}");
    assert_eq!(e.exit_code(), exit::REFUSED);
    s.shutdown().await;

    // A hello announcing a past expiry: refused honestly, used when broken
    // (and then the server itself no longer knows the session).
    let s = start(&[Bug::ExpiryInPast]).await;
    let e = channel(&s)
        .with_bugs([ClientBug::ExpiredSessionUsed])
        .call(run_request(&s, b"{}"))
        .await
        .err();
    let honest = channel(&s).call(run_request(&s, b"{}")).await.unwrap_err();
    assert_eq!(honest.exit_code(), exit::PROTOCOL);
    assert!(
        e.as_ref().is_none_or(|e| e.exit_code() != exit::PROTOCOL),
        "the broken client seals anyway: {e:?}"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_sends_headers_and_file_bodies() {
    let s = start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.json");
    std::fs::write(&file, br#"{"from":"file"}"#).unwrap();
    let mut args = call_args(&s, &format!("/agents/{}/run", s.agent_id));
    args.extend([
        "--data".into(),
        format!("@{}", file.display()),
        "--header".into(),
        "X-Test: yes".into(),
        "-i".into(),
    ]);
    let out = run_binary(args).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let echo: serde_json::Value = support::stdout_json(&out);
    assert_eq!(echo["bodyLen"], 15);
    assert_eq!(echo["headers"]["x-test"], "yes");
    assert!(String::from_utf8_lossy(&out.stderr).contains("inner status 200"));

    let out = run_binary(vec![
        "call".into(),
        "--target".into(),
        "ftp://nowhere".into(),
        "--agent-address".into(),
        s.agent_address.to_checksum(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(i32::from(exit::USAGE)));
    let out = run_binary(vec!["call".into(), "--help".into()]).await;
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Exit codes") && help.contains("truncation"),
        "{help}"
    );
    s.shutdown().await;
}

/// `--relay-origin` reaches the server: a loopback caller without the
/// marker skips the inner key check (CALL-10), with it the key is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_origin_marks_the_outer_requests() {
    let s = start(&[]).await;
    let mut wrong_key = run_request(&s, b"{}");
    wrong_key.authorization = Some("Bearer osk-v1.wrong".into());
    let relayed = channel(&s)
        .with_relay_origin(true)
        .call(wrong_key.clone())
        .await
        .unwrap();
    assert_eq!(relayed.inner_status, 401);
    let local = channel(&s).call(wrong_key).await.unwrap();
    assert_eq!(local.inner_status, 200, "loopback keeps its trust");
    s.shutdown().await;
}
