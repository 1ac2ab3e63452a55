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
/// is not what these tests are about), then `serve --tunnel` behind it.
fn relay_and_agent(extra_serve: &[&str]) -> (Running, Running) {
    let mut cmd = harness();
    cmd.args(["relay", "--listen", "127.0.0.1:0"]).args([
        "--agent-rate",
        "0",
        "--caller-rate",
        "0",
    ]);
    let relay = start(cmd);
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
