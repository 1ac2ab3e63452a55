//! The relay path on one machine: `serve --tunnel` behind `relay`, the
//! suite and the reference client through it with `--via-relay`, the
//! relay's own answers and sign-in rules, and every relay attack caught
//! (the matrix of `osc_harness::relay::matrix`, whose table is in
//! docs/RELAY.md).

mod support;

use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use osc_harness::protocol::identity::AgentIdentity;
use osc_harness::relay::{matrix, RelayConfig};
use osc_harness::tunnel::frame::Frame;
use osc_harness::tunnel::sign::sign_in;
use serde_json::Value;
use support::{describe, harness, outcome, run, start, Running};
use tokio_tungstenite::tungstenite::Message;

/// `relay` with its rate limits off (the relay-aware pacing of the suite
/// is not what these tests are about).
fn relay_unlimited() -> Running {
    let mut cmd = harness();
    cmd.args(["relay", "--listen", "127.0.0.1:0"]).args([
        "--agent-rate",
        "0",
        "--caller-rate",
        "0",
    ]);
    start(cmd)
}

/// [`relay_unlimited`], then `serve --tunnel` behind it.
fn relay_and_agent(extra_serve: &[&str]) -> (Running, Running) {
    let relay = relay_unlimited();
    let mut cmd = harness();
    cmd.args(["serve", "--handshake-rate", "0", "--tunnel"])
        .arg(relay.field("tunnelUrl"))
        .args(extra_serve);
    let agent = start(cmd);
    (relay, agent)
}

/// `verb` aimed at the agent's public URL, through the relay as a proxy.
fn through(verb: &str, relay: &Running, agent: &Running) -> Command {
    let mut cmd = harness();
    cmd.arg(verb)
        .args(["--target", &agent.field("publicUrl")])
        .args(["--proxy", &relay.field("url")])
        .args(["--agent-address", &agent.field("agentAddress")])
        .args(["--access-key", &agent.field("accessKey")])
        .arg("--via-relay");
    cmd
}

#[test]
fn the_suite_and_the_reference_client_pass_through_serve_tunnel_behind_relay() {
    let (relay, agent) = relay_and_agent(&[]);
    let public = agent.field("publicUrl");
    let address = agent.field("agentAddress").to_ascii_lowercase();
    assert_eq!(
        public,
        format!(
            "http://{address}.localhost:{}",
            relay.field("url").rsplit(':').next().unwrap()
        )
    );

    let mut cmd = through("test", &relay, &agent);
    cmd.args(["--agent-id", &agent.field("agentId")]).args([
        "--handshake-budget",
        "none",
        "--format",
        "json",
    ]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let doc: Value = support::stdout_json(&out);
    let scenarios = doc["scenarios"].as_array().expect("scenarios");
    assert!(
        scenarios.iter().filter(|s| s["verdict"] == "pass").count() > 30,
        "{doc:#}"
    );
    assert!(scenarios.iter().all(|s| s["verdict"] != "fail"), "{doc:#}");

    let mut cmd = through("call", &relay, &agent);
    cmd.args([
        "--path",
        &format!("/agents/{}/dispatch", agent.field("agentId")),
    ])
    .args(["--data", r#"{"events":3,"size":4}"#, "--stream"]);
    let (code, out, err) = outcome(run(cmd));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
}

#[test]
fn a_bug_knob_plays_through_the_tunnel() {
    // A knob of the reference server answers through the tunnel as it
    // does directly: the suite's scenario for it fails.
    let (relay, agent) = relay_and_agent(&["--bug", "replay-check-off"]);
    let mut cmd = through("test", &relay, &agent);
    cmd.args(["--agent-id", &agent.field("agentId")])
        .args(["--handshake-budget", "none", "--format", "json"])
        .args(["--only", "replay-*"]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
}

#[test]
fn the_relay_answers_its_own_routes_and_errors_as_documented() {
    let (relay, agent) = relay_and_agent(&[]);
    let base = relay.field("url");
    let public = agent.field("publicUrl");
    let host = public.trim_start_matches("http://").to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let get = |path: &str, host: &str, method: &str, body: Vec<u8>| {
            let (base, path, host, method) = (
                base.clone(),
                path.to_string(),
                host.to_string(),
                method.to_string(),
            );
            async move {
                let target = osc_harness::transport::Target::parse(&base).unwrap();
                let mut req =
                    osc_harness::transport::OuterRequest::get(path).with_header("host", host);
                req.method = method;
                req.body = body;
                osc_harness::transport::send(&target, &req, &Default::default())
                    .await
                    .expect("an answer")
            }
        };
        let health = get("/health", "anything.example", "GET", vec![]).await;
        assert_eq!(health.status, 200);
        assert!(health.header("x-relay-region").is_some());
        let opts = get("/x", &host, "OPTIONS", vec![]).await;
        assert_eq!(opts.status, 204);
        assert_eq!(opts.header("access-control-allow-origin"), Some("*"));
        let bad = get("/x", "127.0.0.1", "GET", vec![]).await;
        assert_eq!(
            (bad.status, bad.body.as_slice()),
            (400, &br#"{"error":"invalid_subdomain"}"#[..])
        );
        let offline = get(
            "/x",
            &format!("0x{}.localhost", "ab".repeat(20)),
            "GET",
            vec![],
        )
        .await;
        assert_eq!(
            (offline.status, offline.body.as_slice()),
            (502, &br#"{"error":"agent_offline"}"#[..])
        );
        let big = get("/x", &host, "POST", vec![b'a'; 10 * 1024 * 1024 + 1]).await;
        assert_eq!(
            (big.status, big.body.as_slice()),
            (413, &br#"{"error":"body_too_large"}"#[..])
        );
        // The agent's own answer carries the relay's headers and CORS
        // (`/health` is the relay's own on any host; `/health/` is routed).
        let app = get("/health/", &host, "GET", vec![]).await;
        assert_ne!(app.body.as_slice(), health.body.as_slice());
        assert_eq!(app.header("access-control-allow-origin"), Some("*"));
        assert!(app.header("server-timing").is_some());
    });
}

#[test]
fn rate_limits_answer_429() {
    let mut cmd = harness();
    cmd.args(["relay", "--listen", "127.0.0.1:0", "--agent-rate", "2"]);
    let relay = start(cmd);
    let mut cmd = harness();
    cmd.args(["serve", "--tunnel"])
        .arg(relay.field("tunnelUrl"));
    let agent = start(cmd);
    let target = osc_harness::transport::Target::parse(&relay.field("url")).unwrap();
    let host = agent
        .field("publicUrl")
        .trim_start_matches("http://")
        .to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // `/models` is routed to the agent (the relay's own routes are never
    // limited); the third request in a minute is over a budget of two.
    let answers: Vec<(u16, Vec<u8>)> = rt.block_on(async {
        let mut out = Vec::new();
        for _ in 0..3 {
            let req = osc_harness::transport::OuterRequest::get("/models".to_string())
                .with_header("host", host.clone());
            let a = osc_harness::transport::send(&target, &req, &Default::default())
                .await
                .expect("an answer");
            out.push((a.status, a.body));
        }
        out
    });
    assert_ne!(answers[0].0, 429, "{answers:?}");
    assert_ne!(answers[1].0, 429, "{answers:?}");
    assert_eq!(
        (answers[2].0, answers[2].1.as_slice()),
        (429, &br#"{"error":"rate_limited"}"#[..]),
        "the third request is over 2/min"
    );
}

/// Sign-in over a raw WebSocket: a good answer is accepted once; the same
/// nonce again, a bad signature and a stale clock are refused.
#[test]
fn sign_in_needs_a_fresh_nonce_a_good_signature_and_the_clock() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut config = RelayConfig::new("127.0.0.1:0".parse().unwrap(), "localhost");
        config.agent_rate = None;
        let relay = osc_harness::relay::spawn(config).await.unwrap();
        let id = AgentIdentity::from_bytes(&[9u8; 32]).unwrap();
        let other = AgentIdentity::from_bytes(&[8u8; 32]).unwrap();
        let now = osc_harness::clock::unix_secs();
        let attempt = |edit: u8| {
            let (url, id, other) = (relay.tunnel_url.clone(), id.clone(), other.clone());
            async move {
                let (mut ws, _) = {
                    let addr = url
                        .trim_start_matches("ws://")
                        .split('/')
                        .next()
                        .unwrap()
                        .to_string();
                    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
                    tokio_tungstenite::client_async(url, tcp)
                        .await
                        .expect("upgrade")
                };
                let Some(Ok(Message::Text(t))) = ws.next().await else {
                    panic!("no challenge")
                };
                let Frame::Challenge { nonce } = Frame::parse(&t).unwrap() else {
                    panic!("{t}")
                };
                let (nonce, ts, signer) = match edit {
                    1 => ("00".repeat(32), now, &id),
                    2 => (nonce, now, &other),
                    3 => (nonce, now - 120, &id),
                    _ => (nonce, now, &id),
                };
                let mut auth = sign_in(signer, &nonce, ts);
                auth.address = id.address().to_lower();
                let frame = Frame::Auth {
                    agents: vec![auth],
                    nonce,
                    timestamp: ts,
                };
                ws.send(Message::text(frame.to_text())).await.unwrap();
                let Some(Ok(Message::Text(t))) = ws.next().await else {
                    panic!("no answer")
                };
                Frame::parse(&t).unwrap()
            }
        };
        assert!(matches!(attempt(0).await, Frame::AuthOk { .. }));
        for (edit, error) in [
            (1, "invalid_nonce"),
            (2, "signature_verification_failed"),
            (3, "invalid_timestamp"),
        ] {
            match attempt(edit).await {
                Frame::AuthError { error: e } => assert_eq!(e, error),
                other => panic!("edit {edit}: {other:?}"),
            }
        }
        assert_eq!(relay.observed().sign_ins_refused, 3);
    });
}

#[test]
fn a_newer_session_supersedes_the_older_which_stops() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut config = RelayConfig::new("127.0.0.1:0".parse().unwrap(), "localhost");
        config.agent_rate = None;
        let relay = osc_harness::relay::spawn(config).await.unwrap();
        let host = |relay: &osc_harness::relay::RunningRelay| {
            osc_harness::tunnel::host::spawn(osc_harness::tunnel::HostConfig {
                relay: relay.tunnel_url.clone(),
                tls: None,
                identity: AgentIdentity::from_bytes(&[5u8; 32]).unwrap(),
                agent_id: "a".into(),
                local: "127.0.0.1:9".parse().unwrap(),
                max_in_flight: 64,
            })
        };
        let mut first = host(&relay);
        first.online(Duration::from_secs(10)).await.expect("online");
        let mut second = host(&relay);
        second
            .online(Duration::from_secs(10))
            .await
            .expect("online");
        for _ in 0..100 {
            if matches!(first.state(), osc_harness::tunnel::HostState::Stopped(_)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match first.state() {
            osc_harness::tunnel::HostState::Stopped(why) => {
                assert!(why.contains("superseded"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            second.state(),
            osc_harness::tunnel::HostState::Online(_)
        ));
        assert_eq!(relay.agents_online(), 1);
    });
}

#[test]
fn every_relay_attack_is_caught_and_the_blind_pipe_holds() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows = rt.block_on(matrix::run_matrix());
    let missed: Vec<String> = rows
        .iter()
        .filter(|r| !r.caught)
        .map(|r| format!("{}: {}", r.attack, r.detail))
        .collect();
    assert!(missed.is_empty(), "not caught:\n{}", missed.join("\n"));
}

#[test]
fn the_attack_table_in_docs_relay_md_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/RELAY.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let table = matrix::doc_table();
    let (begin, end) = ("<!-- attacks:begin -->\n", "<!-- attacks:end -->");
    if std::env::var_os("OSC_WRITE_DOCS").is_some() {
        let (head, rest) = doc.split_once(begin).expect("begin marker");
        let (_, tail) = rest.split_once(end).expect("end marker");
        std::fs::write(&path, format!("{head}{begin}{table}{end}{tail}")).unwrap();
        return;
    }
    assert!(
        doc.contains(&format!("{begin}{table}{end}")),
        "docs/RELAY.md's attack table is out of date: OSC_WRITE_DOCS=1 cargo test --release --test relay_tunnel"
    );
}

/// A minimal relay for the reconnect rules: it signs the next tunnel in,
/// then ends it with `relay_restarting` and close code 1012 when
/// `restarting`, else with a plain close.
async fn sign_in_then(
    listener: &tokio::net::TcpListener,
    restarting: bool,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
    let (tcp, _) = listener.accept().await.expect("a tunnel");
    let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
    let challenge = Frame::Challenge {
        nonce: "ab".repeat(32),
    };
    ws.send(Message::text(challenge.to_text())).await.unwrap();
    let Some(Ok(Message::Text(t))) = ws.next().await else {
        panic!("no auth")
    };
    let Frame::Auth { agents, .. } = Frame::parse(&t).unwrap() else {
        panic!("{t}")
    };
    let ok = Frame::AuthOk {
        agents: vec![osc_harness::tunnel::frame::AgentUrl {
            url: format!("http://{}.localhost", agents[0].address),
            address: agents[0].address.clone(),
        }],
        region: None,
    };
    ws.send(Message::text(ok.to_text())).await.unwrap();
    if restarting {
        let bye = Frame::Error {
            error: "relay_restarting".into(),
        };
        ws.send(Message::text(bye.to_text())).await.unwrap();
        let _ = ws
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Restart,
                reason: "".into(),
            })))
            .await;
    } else {
        let _ = ws.send(Message::Close(None)).await;
    }
    ws
}

#[test]
fn the_host_reconnects_at_once_after_relay_restarting_and_backs_off_otherwise() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "ws://{}{}",
            listener.local_addr().unwrap(),
            osc_harness::tunnel::TUNNEL_PATH
        );
        let host = osc_harness::tunnel::host::spawn(osc_harness::tunnel::HostConfig {
            relay: url,
            tls: None,
            identity: AgentIdentity::from_bytes(&[6u8; 32]).unwrap(),
            agent_id: "a".into(),
            local: "127.0.0.1:9".parse().unwrap(),
            max_in_flight: 64,
        });
        let limit = Duration::from_secs(30);
        // First tunnel: the relay says it is restarting (code 1012).
        let _first = tokio::time::timeout(limit, sign_in_then(&listener, true))
            .await
            .expect("the first tunnel");
        // The next tunnel comes without a backoff wait; then a plain close.
        let _second = tokio::time::timeout(limit, sign_in_then(&listener, false))
            .await
            .expect("a tunnel again after relay_restarting");
        assert_eq!(
            host.backoff_waits(),
            0,
            "relay_restarting: reconnect at once"
        );
        let _third = tokio::time::timeout(limit, sign_in_then(&listener, false))
            .await
            .expect("a tunnel again after a plain close");
        assert_eq!(
            host.backoff_waits(),
            1,
            "any other end: back off before reconnecting"
        );
    });
}

/// The host serves at most 64 relayed requests at once: with 64 held by
/// a server that never answers, the 65th is answered 503 by the host.
#[test]
fn the_host_answers_503_beyond_64_requests_in_flight() {
    use osc_harness::transport::{OuterRequest, Target};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // A local "server" that takes each request and never answers.
        let hold = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = hold.local_addr().unwrap();
        let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = hold.accept().await else {
                    return;
                };
                let _ = held_tx.send(tcp);
            }
        });
        let mut config = RelayConfig::new("127.0.0.1:0".parse().unwrap(), "localhost");
        config.agent_rate = None;
        config.caller_rate = None;
        let relay = osc_harness::relay::spawn(config).await.unwrap();
        let id = AgentIdentity::from_bytes(&[7u8; 32]).unwrap();
        let mut host = osc_harness::tunnel::host::spawn(osc_harness::tunnel::HostConfig {
            relay: relay.tunnel_url.clone(),
            tls: None,
            identity: id.clone(),
            agent_id: "a".into(),
            local,
            max_in_flight: osc_harness::tunnel::MAX_IN_FLIGHT,
        });
        host.online(Duration::from_secs(10)).await.expect("online");
        let target = Target::parse(&relay.url).unwrap();
        let host_name = relay
            .agent_url(&id.address())
            .trim_start_matches("http://")
            .to_string();
        let ask = || {
            let (target, host_name) = (target.clone(), host_name.clone());
            async move {
                let req = OuterRequest::get("/models".to_string()).with_header("host", host_name);
                osc_harness::transport::send(&target, &req, &Default::default()).await
            }
        };
        let mut waiting = Vec::new();
        let mut held = Vec::new();
        for _ in 0..osc_harness::tunnel::MAX_IN_FLIGHT {
            waiting.push(tokio::spawn(ask()));
        }
        while held.len() < osc_harness::tunnel::MAX_IN_FLIGHT {
            let tcp = tokio::time::timeout(Duration::from_secs(30), held_rx.recv())
                .await
                .expect("the host passes each of the 64 on")
                .expect("held");
            held.push(tcp);
        }
        let over = ask().await.expect("an answer");
        assert_eq!(
            (over.status, over.body.as_slice()),
            (503, &br#"{"error":"too_many_requests_in_flight"}"#[..]),
            "the 65th request in flight"
        );
        for w in waiting {
            w.abort();
        }
    });
}

/// `test-client --tunnel`: each adversary signs in at the relay and the
/// reference client reaches it at its public URL through the relay; the
/// client suite passes as it does directly.
#[test]
fn test_client_passes_the_reference_client_through_the_relay() {
    let relay = relay_unlimited();
    let shim = osc_harness::clientrole::selftest::reference_command(
        std::path::Path::new(support::EXE),
        None,
    );
    let mut cmd = harness();
    cmd.args(["test-client", "--client-cmd", &shim, "--format", "json"])
        .args(["--tunnel", &relay.field("tunnelUrl")])
        .args(["--timeout", "20"]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let doc: Value = support::stdout_json(&out);
    let scenarios = doc["scenarios"].as_array().expect("scenarios");
    let passed: Vec<&Value> = scenarios
        .iter()
        .filter(|s| s["verdict"] == "pass")
        .collect();
    assert!(passed.len() > 10, "{doc:#}");
    assert!(scenarios.iter().all(|s| s["verdict"] != "fail"), "{doc:#}");
    // The client was told the public URL: it went through the relay.
    let transcript = doc.to_string();
    assert!(
        transcript.contains("--tunnel"),
        "the rerun lines name the relay"
    );
}

/// `fuzz --via-relay` through `serve --tunnel` behind `relay`, limits off
/// on both sides and `--relay-budget none`: no MUST finding (a bounded run;
/// docs/RELAY.md gives the 60 s run).
#[test]
fn a_fuzz_run_through_the_relay_finds_no_must() {
    let (relay, agent) = relay_and_agent(&[]);
    let mut cmd = through("fuzz", &relay, &agent);
    cmd.args(["--agent-id", &agent.field("agentId")])
        .args(["--relay-budget", "none", "--handshake-budget", "none"])
        .args(["--max-execs", "200", "--quiet"]);
    let dir = tempfile::tempdir().unwrap();
    cmd.arg("--findings").arg(dir.path());
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let summary: Value = support::stdout_json(&out);
    assert!(summary["execs"].as_u64().unwrap_or(0) >= 200, "{summary:#}");
    assert_eq!(summary["target_died_at"], Value::Null, "{summary:#}");
}

/// Scaled down from a 5/60 handshake budget against a 30 s session
/// lifetime: the replay scenarios open several sessions, each waits for
/// the budget longer than a session lives, and the harness's own waiting
/// never becomes a FAIL: a session it outlived is replaced by a fresh one,
/// or the scenario is inconclusive and says why.
#[test]
fn waiting_for_the_handshake_budget_never_fails_a_scenario() {
    let mut cmd = harness();
    cmd.args(["relay", "--listen", "127.0.0.1:0"]);
    let relay = start(cmd);
    let mut cmd = harness();
    cmd.args(["serve", "--handshake-rate", "2/6", "--session-ttl", "3"])
        .arg("--tunnel")
        .arg(relay.field("tunnelUrl"));
    let agent = start(cmd);
    let mut cmd = through("test", &relay, &agent);
    cmd.args(["--agent-id", &agent.field("agentId")])
        .args(["--handshake-budget", "2/6", "--session-ttl", "3"])
        .args(["--format", "json"])
        .args([
            "--only",
            "replay-transplant",
            "--only",
            "replay-cross-session",
        ]);
    let out = run(cmd);
    let doc: Value = support::stdout_json(&out);
    let scenarios = doc["scenarios"].as_array().expect("scenarios");
    assert!(!scenarios.is_empty(), "{doc:#}");
    assert!(
        scenarios.iter().all(|s| s["verdict"] != "fail"),
        "a FAIL from the harness's own waiting: {doc:#}"
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // The waiting did outlive a session: the engine replaced it, or said
    // why it could not.
    let text = doc.to_string();
    assert!(
        text.contains("a fresh session: the last one expired while the run waited")
            || text.contains("expired while the run waited"),
        "the budget never outlived a session, so nothing was tested: {doc:#}"
    );
}
